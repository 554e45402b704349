//! The seat registrar TU: operators' softphones REGISTER here with digest authentication, and
//! the call path asks here where a seat can be reached. Sans-IO: time comes in as unix seconds,
//! persistence goes out as [`RegistryEffect`]s.
//!
//! ```text
//!  REGISTER ─► handle_register(now, request, source, dest)
//!               │ no/invalid credentials ─► 401 (stale=true for a good response on an old nonce)
//!               │ Verdict::Ok{user} ─► To AOR: host accepted? (404) user == authenticated? (403)
//!               │ Registrar::apply (423 Min-Expires, 400, 500 out of order) ─► 200 + Contacts
//!               ▼
//!  in-memory bindings ──► poll_effect(): Upsert / Remove  ──► edge writes the ledger
//!        ▲  │
//!        │  └──► contacts(seat) / registered_seats()  (call path)
//!  restore(ledger rows) at start;  poll_timeout()/handle_timeout(now): expiry ─► Remove
//! ```
//!
//! The in-memory table is the working copy; the ledger is its durable mirror, written behind
//! (the edge performs effects in order, off the core task). A restart reloads every live row
//! with [`SeatRegistry::restore`]: UDP seats are reachable again at once (requests go to the
//! address the REGISTER came from), stream seats are not, because their connection died with
//! the old process (see [`SeatRegistry::restore`]).
//!
//! Unknown users and wrong passwords get byte-for-byte the same kind of 401 (only the random
//! nonce differs): the verifier hashes against a dummy HA1 for unknown users, and nothing in
//! the challenge depends on who asked.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;

use super::auth::{
    parse_authorization, Algorithm, AuthError, DigestResponse, Ha1, ServerSecret, Verdict,
    Verifier, NONCE_LIFETIME_SECS,
};
use super::endpoint::{ConnId, Destination};
use super::message::{reason_phrase, Message};
use super::registrar::{
    parse_contacts, sip_uri_eq, Aor, Binding, ExpiryBounds, QValue, RegisterError, RegisterOutcome,
    RegisterRequest, Registrar,
};

/// One seat's digest credentials as the ledger holds them (lowercase hex HA1s for the seat
/// profile's realm). A seat without a usable HA1 for an algorithm cannot authenticate with it.
#[derive(Clone, PartialEq, Eq)]
pub struct SeatCredential {
    pub seat_id: i64,
    /// The seat name: the digest username and the user part of its AOR.
    pub name: String,
    pub ha1_md5: Option<String>,
    pub ha1_sha256: Option<String>,
}

impl std::fmt::Debug for SeatCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeatCredential")
            .field("seat_id", &self.seat_id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// How a binding's REGISTER arrived, which decides how requests reach the seat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SeatTransport {
    Udp,
    Tcp,
}

impl SeatTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            SeatTransport::Udp => "udp",
            SeatTransport::Tcp => "tcp",
        }
    }

    pub fn parse(s: &str) -> Option<SeatTransport> {
        match s {
            "udp" => Some(SeatTransport::Udp),
            "tcp" => Some(SeatTransport::Tcp),
            _ => None,
        }
    }

    fn of(dest: Destination) -> SeatTransport {
        match dest {
            Destination::Udp(_) => SeatTransport::Udp,
            Destination::Stream(_) => SeatTransport::Tcp,
        }
    }
}

/// A binding as the ledger keeps it (table `registrations`, key `(aor, contact)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBinding {
    pub seat_id: i64,
    /// Canonical AOR, `sip:<seat>@<domain>`.
    pub aor: String,
    /// The contact URI as the phone wrote it.
    pub contact: String,
    /// Where the REGISTER came from: requests to the seat go there (NAT traversal).
    pub source: SocketAddr,
    pub transport: SeatTransport,
    pub call_id: String,
    pub cseq: u32,
    /// Unix seconds; the binding is gone at this instant.
    pub expires_at: u64,
    /// Contact `q` in thousandths.
    pub q: Option<u16>,
    /// Other contact parameters verbatim (`;+sip.instance=...;reg-id=1`).
    pub params: String,
}

/// A ledger write for the edge to perform, in the order emitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryEffect {
    /// Insert or replace the row with this `(aor, contact)`.
    Upsert(StoredBinding),
    /// Delete the row with this `(aor, contact)` (unregistered or expired).
    Remove { aor: String, contact: String },
}

/// Where to send requests for a seat (one per reachable binding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatContact {
    pub seat_id: i64,
    pub seat: String,
    /// Request-URI for requests to the phone.
    pub contact_uri: String,
    /// `Destination::Udp(source)` for UDP, the REGISTER's connection for TCP.
    pub dest: Destination,
    pub source: SocketAddr,
    pub expires_at: u64,
}

/// Registration policy, from the seat profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Digest realm (the seat profile's `realm`).
    pub realm: String,
    /// Hosts accepted in the `To` AOR (RFC 3261 §10.3 step 5). Empty accepts any host: with a
    /// wildcard listen address the daemon cannot know under which names phones reach it.
    /// Whatever the host, bindings are stored under one canonical AOR `sip:<seat>@<domain>`.
    pub aor_hosts: Vec<String>,
    pub bounds: ExpiryBounds,
    /// Offered in this order (one `WWW-Authenticate` each), and the only ones accepted.
    pub algorithms: Vec<Algorithm>,
    pub nonce_lifetime: u64,
}

impl RegistryConfig {
    /// Defaults: any AOR host, registrar default bounds, MD5 then SHA-256 (see
    /// `SeatProfile::digest_algorithms` for why), [`NONCE_LIFETIME_SECS`].
    pub fn new(realm: &str) -> RegistryConfig {
        RegistryConfig {
            realm: realm.to_owned(),
            aor_hosts: Vec::new(),
            bounds: ExpiryBounds::default(),
            algorithms: vec![Algorithm::Md5, Algorithm::Sha256],
            nonce_lifetime: NONCE_LIFETIME_SECS,
        }
    }

    /// The host of canonical AORs: the realm, lowercased, reduced to host characters.
    fn domain(&self) -> String {
        let d: String = self
            .realm
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        if d.is_empty() {
            "seats.invalid".to_owned()
        } else {
            d
        }
    }
}

#[derive(Debug, Clone)]
struct Credential {
    seat_id: i64,
    md5: Option<Ha1>,
    sha256: Option<Ha1>,
}

#[derive(Debug, Clone)]
struct Entry {
    seat_id: i64,
    binding: Binding,
    source: SocketAddr,
    transport: SeatTransport,
    /// `None` when the binding's connection is gone (closed, or from before a restart).
    dest: Option<Destination>,
}

impl Entry {
    fn stored(&self) -> StoredBinding {
        StoredBinding {
            seat_id: self.seat_id,
            aor: self.binding.aor.as_str().to_owned(),
            contact: self.binding.contact_uri.clone(),
            source: self.source,
            transport: self.transport,
            call_id: self.binding.call_id.clone(),
            cseq: self.binding.cseq,
            expires_at: self.binding.expires_at,
            q: self.binding.q.map(QValue::thousandths),
            params: self.binding.params.clone(),
        }
    }
}

/// Errors building a [`SeatRegistry`] (configuration, reported at start).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("digest auth: {0}")]
    Auth(#[from] AuthError),
}

/// Digest verifier + registrar policy + the seats' bindings. One owner (the endpoint task).
#[derive(Debug)]
pub struct SeatRegistry {
    verifier: Verifier,
    registrar: Registrar,
    domain: String,
    aor_hosts: Vec<String>,
    credentials: HashMap<String, Credential>,
    /// Seat name → its bindings. Ordered, so iteration (and the ACD's view) is deterministic.
    bindings: BTreeMap<String, Vec<Entry>>,
    /// The earliest `expires_at` among the bindings, kept with them (see
    /// [`Self::bindings_changed`]): the endpoint asks for it after every input.
    next_expiry: Option<u64>,
    effects: VecDeque<RegistryEffect>,
    /// Effects queued since start: the n-th effect polled is number n.
    emitted: u64,
    /// Set when a REGISTER carried credentials that did not verify; taken by the endpoint's
    /// guard (brute-force bans).
    auth_failed: bool,
    /// Refused digest credentials so far (metrics), and the security log's rate limit.
    auth_failures: u64,
    security_log: crate::sip::security::Budget,
}

impl SeatRegistry {
    /// A registry whose nonce salts come from OS entropy. `secret` keys the nonces: a fresh
    /// one per process only costs each phone one silent `stale=true` round trip after a restart.
    pub fn new(
        config: RegistryConfig,
        secret: ServerSecret,
    ) -> Result<SeatRegistry, RegistryError> {
        let verifier = Verifier::new(&config.realm, secret)?;
        Ok(SeatRegistry::build(config, verifier))
    }

    /// Deterministic nonce salts, for tests and simulations.
    pub fn with_rng_seed(
        config: RegistryConfig,
        secret: ServerSecret,
        seed: [u8; 32],
    ) -> Result<SeatRegistry, RegistryError> {
        let verifier = Verifier::with_rng_seed(&config.realm, secret, seed)?;
        Ok(SeatRegistry::build(config, verifier))
    }

    fn build(config: RegistryConfig, verifier: Verifier) -> SeatRegistry {
        let domain = config.domain();
        SeatRegistry {
            verifier: verifier
                .with_nonce_lifetime(config.nonce_lifetime)
                .with_algorithms(&config.algorithms),
            registrar: Registrar::new(&domain, config.bounds),
            domain,
            aor_hosts: config
                .aor_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            credentials: HashMap::new(),
            bindings: BTreeMap::new(),
            next_expiry: None,
            effects: VecDeque::new(),
            emitted: 0,
            auth_failed: false,
            auth_failures: 0,
            security_log: Default::default(),
        }
    }

    /// Did the last REGISTER carry credentials that failed? Resets the flag.
    pub fn take_auth_failure(&mut self) -> bool {
        std::mem::take(&mut self.auth_failed)
    }

    pub fn realm(&self) -> &str {
        self.verifier.realm()
    }

    /// Host part of the canonical AORs (`sip:<seat>@<domain>`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Replaces every seat's credentials (the edge reloads them from the ledger). HA1 values
    /// that are not lowercase hex of the right length are treated as absent. Bindings are not
    /// touched: a seat whose password changed stays reachable until its binding expires or
    /// it re-registers (with the new password).
    pub fn set_credentials(&mut self, credentials: Vec<SeatCredential>) {
        let ha1 = |v: Option<String>, alg: Algorithm| {
            v.and_then(|h| Ha1::from_hex(&h).ok())
                .filter(|h| h.as_str().len() == alg.hex_len())
        };
        self.credentials = credentials
            .into_iter()
            .map(|c| {
                let cred = Credential {
                    seat_id: c.seat_id,
                    md5: ha1(c.ha1_md5, Algorithm::Md5),
                    sha256: ha1(c.ha1_sha256, Algorithm::Sha256),
                };
                (c.name, cred)
            })
            .collect();
    }

    /// Number of seats with credentials loaded.
    pub fn credential_count(&self) -> usize {
        self.credentials.len()
    }

    /// Processes a REGISTER and returns the final response (without To tag: the endpoint adds
    /// it). `source` is where it came from, `dest` where answers and later requests go.
    pub fn handle_register(
        &mut self,
        now: u64,
        request: &Message,
        source: SocketAddr,
        dest: Destination,
    ) -> Message {
        self.handle_timeout(now);
        match self.register(now, request, source, dest) {
            Ok(m) => m,
            Err(m) => *m,
        }
    }

    fn register(
        &mut self,
        now: u64,
        request: &Message,
        source: SocketAddr,
        dest: Destination,
    ) -> Result<Message, Box<Message>> {
        let plain = |code: u16| Message::response_to(request, code, reason_phrase(code));
        let boxed = |code: u16| Box::new(plain(code));
        let uri = request.request_uri().ok_or_else(|| boxed(400))?;
        let credentials = self.credentials_in(request).map_err(|e| {
            Box::new(if e.status_code() == 400 {
                plain(400)
            } else {
                self.challenge(request, now, false)
            })
        })?;
        let Some(resp) = credentials else {
            return Err(Box::new(self.challenge(request, now, false)));
        };
        let creds = &self.credentials;
        let verdict = self
            .verifier
            .verify(now, "REGISTER", uri, &resp, |user, alg| {
                let c = creds.get(user)?;
                match alg {
                    Algorithm::Md5 => c.md5.clone(),
                    Algorithm::Sha256 => c.sha256.clone(),
                }
            });
        let user = match verdict {
            Verdict::Ok { user } => user,
            Verdict::Stale => return Err(Box::new(self.challenge(request, now, true))),
            Verdict::Reject { reason } => {
                // The peer address, never the claimed user name: logs must not become an
                // oracle for which names exist.
                tracing::debug!(peer = %source, ?reason, "REGISTER authentication refused");
                self.auth_failed = true;
                self.auth_failures += 1;
                self.security_log
                    .event(now, crate::sip::security::AUTH_FAILURE, source.ip());
                return Err(Box::new(self.challenge(request, now, false)));
            }
        };
        let Some(seat_id) = self.credentials.get(&user).map(|c| c.seat_id) else {
            return Err(Box::new(self.challenge(request, now, false)));
        };

        let failed = |e: RegisterError| {
            let code = e.status_code();
            let m = plain(code);
            Box::new(match e.min_expires() {
                Some(min) => with(m, "Min-Expires", &min.to_string()),
                None => m,
            })
        };
        let to = Aor::parse(&request.to().uri).map_err(failed)?;
        if !self.aor_hosts.is_empty() && !self.aor_hosts.iter().any(|h| h == to.host()) {
            return Err(failed(RegisterError::NotOurDomain));
        }
        // `Aor` ends with its host: swap it for the canonical domain.
        let canonical = to
            .as_str()
            .strip_suffix(to.host())
            .map(|prefix| format!("{prefix}{}", self.domain))
            .ok_or_else(|| boxed(500))?;
        let expires_header = match request.header("Expires") {
            None => None,
            Some(v) => Some(parse_delta_seconds(v).ok_or_else(|| boxed(400))?),
        };
        let transport = SeatTransport::of(dest);
        let req = RegisterRequest {
            aor: canonical,
            authenticated_user: user.clone(),
            contacts: parse_contacts(request.headers("Contact")).map_err(failed)?,
            expires_header,
            call_id: request.call_id().to_owned(),
            cseq: request.cseq(),
            source: format!("{source}/{}", transport.as_str()),
        };
        let existing: Vec<Binding> = self
            .bindings
            .get(to.user())
            .map(|v| v.iter().map(|e| e.binding.clone()).collect())
            .unwrap_or_default();
        let outcome = self.registrar.apply(now, &req, &existing).map_err(failed)?;
        let contacts = outcome
            .response_contacts
            .iter()
            .map(|c| c.header_value())
            .collect::<Vec<_>>();
        self.commit(&user, seat_id, source, dest, outcome);
        tracing::debug!(seat = %user, peer = %source, bindings = contacts.len(), "REGISTER accepted");

        let mut ok = plain(200);
        for c in &contacts {
            ok = with(ok, "Contact", c);
        }
        // RFC 3261 §10.3 step 8: the 200 SHOULD carry a Date (lets phones without a clock
        // learn the time).
        if let Some(date) = http_date(now) {
            ok = with(ok, "Date", &date);
        }
        Ok(ok)
    }

    /// The `Authorization` to verify: the one for our realm if several are present.
    fn credentials_in(&self, request: &Message) -> Result<Option<DigestResponse>, AuthError> {
        let mut first_err = None;
        let mut other_realm = None;
        for value in request.headers("Authorization") {
            match parse_authorization(value) {
                Ok(r) if r.realm == self.verifier.realm() => return Ok(Some(r)),
                Ok(r) => other_realm = other_realm.or(Some(r)),
                Err(e) => first_err = first_err.or(Some(e)),
            }
        }
        match (other_realm, first_err) {
            (Some(r), _) => Ok(Some(r)),
            (None, Some(e)) => Err(e),
            (None, None) => Ok(None),
        }
    }

    fn challenge(&mut self, request: &Message, now: u64, stale: bool) -> Message {
        let mut m = Message::response_to(request, 401, reason_phrase(401));
        for c in self.verifier.challenge(now, stale) {
            m = with(m, "WWW-Authenticate", &c);
        }
        m
    }

    /// Mirrors an accepted outcome into memory and queues the ledger writes.
    fn commit(
        &mut self,
        seat: &str,
        seat_id: i64,
        source: SocketAddr,
        dest: Destination,
        outcome: RegisterOutcome,
    ) {
        let entries = self.bindings.entry(seat.to_owned()).or_default();
        for r in outcome.removals {
            entries.retain(|e| !sip_uri_eq(&e.binding.contact_uri, &r.contact_uri));
            self.emitted += 1;
            self.effects.push_back(RegistryEffect::Remove {
                aor: r.aor.as_str().to_owned(),
                contact: r.contact_uri,
            });
        }
        for b in outcome.upserts {
            let dest = match dest {
                Destination::Udp(_) => Destination::Udp(udp_target(&b.contact_uri, source)),
                stream => stream,
            };
            let entry = Entry {
                seat_id,
                binding: b,
                source,
                transport: SeatTransport::of(dest),
                dest: Some(dest),
            };
            self.emitted += 1;
            self.effects
                .push_back(RegistryEffect::Upsert(entry.stored()));
            match entries
                .iter_mut()
                .find(|e| sip_uri_eq(&e.binding.contact_uri, &entry.binding.contact_uri))
            {
                Some(slot) => *slot = entry,
                None => entries.push(entry),
            }
        }
        if entries.is_empty() {
            self.bindings.remove(seat);
        }
        self.bindings_changed();
    }

    /// Recomputes [`Self::poll_timeout`]'s answer: call after any change to the bindings
    /// (REGISTERs, expiry, restore are rare next to the calls that ask).
    fn bindings_changed(&mut self) {
        self.next_expiry = self
            .bindings
            .values()
            .flatten()
            .map(|e| e.binding.expires_at)
            .min();
    }

    /// The next ledger write to perform, in order.
    pub fn poll_effect(&mut self) -> Option<RegistryEffect> {
        self.effects.pop_front()
    }

    /// How many effects have been queued since start. Effects are numbered from 1 in
    /// [`Self::poll_effect`] order, so "effect n is durable" identifies a prefix.
    pub fn effects_emitted(&self) -> u64 {
        self.emitted
    }

    /// When the next binding expires (unix seconds): call [`Self::handle_timeout`] then.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.next_expiry
    }

    /// Drops every binding whose lifetime is over at `now` and queues its removal.
    pub fn handle_timeout(&mut self, now: u64) {
        if self.next_expiry.is_none_or(|next| next > now) {
            return;
        }
        let effects = &mut self.effects;
        let emitted = &mut self.emitted;
        self.bindings.retain(|seat, entries| {
            entries.retain(|e| {
                let live = e.binding.expires_at > now;
                if !live {
                    tracing::debug!(seat = %seat, "seat binding expired");
                    *emitted += 1;
                    effects.push_back(RegistryEffect::Remove {
                        aor: e.binding.aor.as_str().to_owned(),
                        contact: e.binding.contact_uri.clone(),
                    });
                }
                live
            });
            !entries.is_empty()
        });
        self.bindings_changed();
    }

    /// Start-up: reload the ledger's bindings (no effects are queued). Rows already expired
    /// at `now` or with an unparsable AOR are skipped (the edge purges expired rows).
    ///
    /// UDP bindings are reachable at once: requests go to the stored source address, which
    /// is where the phone (or its NAT) listens. TCP bindings are kept but not offered by
    /// [`Self::contacts`]: their connection died with the previous process and a phone
    /// behind NAT cannot be connected to. They become reachable when the phone registers
    /// again, which a TCP phone does when it notices the closed connection (RFC 5626 §4.4
    /// flow recovery) or at the latest at its next refresh; until then the binding still
    /// counts against the per-AOR limit and expires normally. Returns how many were restored.
    pub fn restore(&mut self, stored: Vec<StoredBinding>, now: u64) -> usize {
        let mut n = 0;
        for s in stored {
            if s.expires_at <= now {
                continue;
            }
            let Ok(aor) = Aor::parse(&s.aor) else {
                tracing::warn!(aor = %s.aor, "skipping stored binding with an invalid AOR");
                continue;
            };
            let seat = aor.user().to_owned();
            let dest = match s.transport {
                SeatTransport::Udp => Some(Destination::Udp(udp_target(&s.contact, s.source))),
                SeatTransport::Tcp => None,
            };
            let entry = Entry {
                seat_id: s.seat_id,
                binding: Binding {
                    aor,
                    contact_uri: s.contact,
                    expires_at: s.expires_at,
                    call_id: s.call_id,
                    cseq: s.cseq,
                    source: format!("{}/{}", s.source, s.transport.as_str()),
                    q: s.q.and_then(qvalue),
                    params: s.params,
                },
                source: s.source,
                transport: s.transport,
                dest,
            };
            let entries = self.bindings.entry(seat).or_default();
            match entries
                .iter_mut()
                .find(|e| sip_uri_eq(&e.binding.contact_uri, &entry.binding.contact_uri))
            {
                Some(slot) => *slot = entry,
                None => entries.push(entry),
            }
            n += 1;
        }
        self.bindings_changed();
        n
    }

    /// A stream connection closed: bindings that used it stay (until expiry or re-REGISTER)
    /// but are no longer offered to the call path.
    pub fn connection_closed(&mut self, conn: ConnId) {
        for e in self.bindings.values_mut().flatten() {
            if e.dest == Some(Destination::Stream(conn)) {
                e.dest = None;
            }
        }
    }

    /// Reachable contacts of a seat, highest `q` first (absent `q` counts as 1), then in
    /// registration order.
    pub fn contacts(&self, seat: &str) -> Vec<SeatContact> {
        let mut out: Vec<(u16, SeatContact)> = self
            .bindings
            .get(seat)
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let dest = e.dest?;
                let q = e.binding.q.map_or(1000, QValue::thousandths);
                Some((
                    q,
                    SeatContact {
                        seat_id: e.seat_id,
                        seat: seat.to_owned(),
                        contact_uri: e.binding.contact_uri.clone(),
                        dest,
                        source: e.source,
                        expires_at: e.binding.expires_at,
                    },
                ))
            })
            .collect();
        // Preferred first (q), then the binding refreshed last (latest expiry): a phone that
        // moved (new address, new Call-ID) is reached at its new contact at once instead of
        // at the stale one until that expires.
        out.sort_by_key(|c| std::cmp::Reverse((c.0, c.1.expires_at)));
        out.into_iter().map(|(_, c)| c).collect()
    }

    /// Seats with at least one reachable contact, by name: `(seat_id, name)`.
    pub fn registered_seats(&self) -> impl Iterator<Item = (i64, &str)> + '_ {
        self.bindings.iter().filter_map(|(name, entries)| {
            entries
                .iter()
                .find(|e| e.dest.is_some())
                .map(|e| (e.seat_id, name.as_str()))
        })
    }

    /// REGISTERs refused for wrong credentials since start.
    pub fn auth_failures(&self) -> u64 {
        self.auth_failures
    }

    /// New expiry bounds, accepted AOR hosts and digest algorithms (a profile reload).
    /// The realm cannot change: the stored HA1s are bound to it.
    pub fn set_policy(&mut self, config: &RegistryConfig) -> Result<(), String> {
        if config.realm != self.realm() {
            return Err(format!(
                "seats.realm: cannot change from {:?} to {:?} without a restart \
                 (seat passwords are stored for the realm)",
                self.realm(),
                config.realm
            ));
        }
        self.registrar = Registrar::new(&self.domain, config.bounds);
        self.verifier.set_algorithms(&config.algorithms);
        self.aor_hosts = config
            .aor_hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        Ok(())
    }

    /// A browser seat (issue #11) is reachable at `target`, the loopback SIP address of the
    /// daemon's own user agent for it: the call path rings it exactly like a softphone.
    /// Nothing is written to the ledger (the agent dies with the process) and the binding
    /// lives until `expires_at` unless refreshed. `false` if the seat has no credentials.
    pub fn attach_browser(
        &mut self,
        now: u64,
        seat: &str,
        target: SocketAddr,
        expires_at: u64,
    ) -> bool {
        let Some(seat_id) = self.credentials.get(seat).map(|c| c.seat_id) else {
            return false;
        };
        let contact = browser_contact(seat, target);
        let restored = self.restore(
            vec![StoredBinding {
                seat_id,
                aor: format!("sip:{seat}@{}", self.domain),
                contact,
                source: target,
                transport: SeatTransport::Udp,
                call_id: format!("browser-{seat_id}"),
                cseq: 1,
                expires_at,
                q: None,
                params: String::new(),
            }],
            now,
        );
        restored == 1
    }

    /// The browser seat's agent at `target` is gone: its binding goes at once.
    pub fn detach_browser(&mut self, seat: &str, target: SocketAddr) {
        let contact = browser_contact(seat, target);
        if let Some(entries) = self.bindings.get_mut(seat) {
            entries.retain(|e| !sip_uri_eq(&e.binding.contact_uri, &contact));
            if entries.is_empty() {
                self.bindings.remove(seat);
            }
        }
    }

    /// All bindings held, reachable or not (for status and tests).
    pub fn binding_count(&self) -> usize {
        self.bindings.values().map(Vec::len).sum()
    }
}

/// Appends a header we built ourselves; should it not validate, the response goes without it
/// rather than not at all.
fn with(m: Message, name: &str, value: &str) -> Message {
    match m.clone().with_header(name, value) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(header = name, error = %e, "could not add a header to a response");
            m
        }
    }
}

/// `delta-seconds` (RFC 3261 §20.19, §25.1): digits only, saturating at `u32::MAX`.
fn parse_delta_seconds(v: &str) -> Option<u32> {
    let v = v.trim();
    if v.is_empty() || v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u128 = v.parse().ok()?;
    Some(u32::try_from(n).unwrap_or(u32::MAX))
}

/// RFC 3261 §20.17 `SIP-date` (RFC 1123 form, always GMT).
fn http_date(unix: u64) -> Option<String> {
    let t = chrono::DateTime::<chrono::Utc>::from_timestamp(i64::try_from(unix).ok()?, 0)?;
    Some(t.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
}

fn qvalue(thousandths: u16) -> Option<QValue> {
    if thousandths >= 1000 {
        QValue::parse("1")
    } else {
        QValue::parse(&format!("0.{thousandths:03}"))
    }
}

/// The Contact URI of a browser seat's agent.
fn browser_contact(seat: &str, target: SocketAddr) -> String {
    format!("sip:{seat}@{target}")
}

#[cfg(test)]
mod tests;

/// Where UDP requests to a phone go. A phone whose Contact names the very address its
/// REGISTER came from is not behind NAT, so the Contact's port is right (it may listen on
/// another port than it sent from, as SIPp and some desk phones do). Otherwise the Contact
/// is a private address behind NAT and only the REGISTER's source reaches the phone
/// (symmetric response routing, Kamailio's `fix_nated_contact`, Asterisk's `force_rport`).
pub fn udp_target(contact_uri: &str, source: SocketAddr) -> SocketAddr {
    let rest = contact_uri
        .strip_prefix("sip:")
        .or_else(|| contact_uri.strip_prefix("SIP:"))
        .unwrap_or(contact_uri);
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let hostport = hostport.split([';', '?', '>']).next().unwrap_or_default();
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':')),
            None => return source,
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let Ok(ip) = host.parse::<std::net::IpAddr>() else {
        return source;
    };
    if ip != source.ip() {
        return source;
    }
    match port.map(str::parse::<u16>) {
        None => SocketAddr::new(ip, 5060),
        Some(Ok(p)) if p != 0 => SocketAddr::new(ip, p),
        Some(_) => source,
    }
}

#[cfg(test)]
mod udp_target_tests {
    use super::udp_target;

    #[test]
    fn contact_port_is_used_only_when_not_behind_nat() {
        let src = "192.0.2.7:40000".parse().unwrap();
        let t = |c| udp_target(c, src).to_string();
        assert_eq!(t("sip:op1@192.0.2.7:5071"), "192.0.2.7:5071");
        assert_eq!(t("sip:op1@192.0.2.7;transport=udp"), "192.0.2.7:5060");
        assert_eq!(
            t("sip:op1@10.0.0.5:5060"),
            "192.0.2.7:40000",
            "NAT: the source"
        );
        assert_eq!(t("sip:op1@phone.example:5060"), "192.0.2.7:40000");
        assert_eq!(t("sip:op1@192.0.2.7:0"), "192.0.2.7:40000");
        let v6 = "[2001:db8::1]:4000".parse().unwrap();
        assert_eq!(
            udp_target("sip:a@[2001:db8::1]:5062", v6).to_string(),
            "[2001:db8::1]:5062"
        );
    }
}
