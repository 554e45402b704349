//! Registrar core (RFC 3261 §10.3), sans-IO and storage-free.
//!
//! ```text
//!  REGISTER ──► (auth: Verdict::Ok{user}) ──► parse_contacts ──► RegisterRequest
//!                                                                   │
//!            ledger: bindings of this AOR ──► Registrar::apply(now, req, existing)
//!                                                                   │
//!          Ok(RegisterOutcome{upserts, removals, response_contacts}) │ Err(e) → e.status_code()
//!            ledger writes upserts/removals atomically, then 200 OK  │ (423 adds Min-Expires)
//!            with one Contact per response_contacts entry            ▼
//! ```
//!
//! The registrar owns no bindings: it receives the current ones and returns the changes, so
//! that the ledger is the one durable truth and a restart loses nothing. Everything in a
//! request is applied or nothing is (RFC 3261 §10.3 step 7, last paragraph): `apply` returns
//! either a complete outcome or an error, never a partial one.

mod contact;
mod uri;

pub use contact::{
    parse_contacts, ContactParam, ContactSpec, QValue, RegisterContacts, MAX_CONTACTS_PER_REQUEST,
    MAX_CONTACT_VALUE_LEN,
};
pub use uri::{sip_uri_eq, Aor};

/// Shortest registration we accept unless the seat profile says otherwise. Why 60: RFC 3261
/// §10.2.8 suggests a minimum exists to bound refresh load; one minute keeps a NAT binding
/// warm without letting a misconfigured softphone re-REGISTER every second.
pub const DEFAULT_MIN_EXPIRES: u32 = 60;
/// Longest registration we grant. Why 3600: a seat that vanished (laptop closed, network
/// gone) must stop being offered calls within the hour (the ACD only offers registered seats).
pub const DEFAULT_MAX_EXPIRES: u32 = 3600;
/// Used when neither the contact nor the request says (RFC 3261 §10.2.1.1 suggests 3600).
pub const DEFAULT_EXPIRES: u32 = 3600;
/// Bindings per AOR. Why 10: an operator has one softphone, perhaps a desk phone and a
/// mobile; ten leaves room for stale contacts after IP changes while capping what one
/// account can make the ledger store.
pub const DEFAULT_MAX_BINDINGS_PER_AOR: usize = 10;

/// Everything that makes a REGISTER fail. One enum for the layer, one status mapping.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// RFC 3261 §10.3 step 5: the AOR is not in the domain this registrar serves.
    #[error("address-of-record is not in this registrar's domain")]
    NotOurDomain,
    /// RFC 3261 §10.3 step 6: the authenticated user may only register its own AOR.
    #[error("authenticated user may not modify bindings of this address-of-record")]
    Forbidden,
    #[error("more than {max} bindings for one address-of-record")]
    TooManyBindings { max: usize },
    /// RFC 3261 §10.3 step 7: answer 423 with `Min-Expires`.
    #[error("registration interval too brief (minimum {min_expires} s)")]
    IntervalTooBrief { min_expires: u32 },
    /// RFC 3261 §10.3 steps 6 and 7: same Call-ID with a CSeq not higher than the stored one
    /// ("the update MUST be aborted and the request fails"); RFC 3261 names no code, 500
    /// tells the client to retry (with a new CSeq) rather than that it is wrong.
    #[error("REGISTER out of order (CSeq not higher for the same Call-ID)")]
    OutOfOrder,
    /// Configuration error, reported at startup.
    #[error("invalid expiry bounds: need 1 <= min <= default <= max")]
    InvalidBounds,
}

impl RegisterError {
    /// The SIP status code for the response.
    pub fn status_code(&self) -> u16 {
        match self {
            RegisterError::BadRequest(_) => 400,
            RegisterError::NotOurDomain => 404,
            RegisterError::Forbidden | RegisterError::TooManyBindings { .. } => 403,
            RegisterError::IntervalTooBrief { .. } => 423,
            RegisterError::OutOfOrder | RegisterError::InvalidBounds => 500,
        }
    }

    /// Value for the `Min-Expires` header of a 423 (RFC 3261 §20.23).
    pub fn min_expires(&self) -> Option<u32> {
        match self {
            RegisterError::IntervalTooBrief { min_expires } => Some(*min_expires),
            _ => None,
        }
    }
}

/// Registration interval policy from the seat profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryBounds {
    min: u32,
    max: u32,
    default: u32,
}

impl ExpiryBounds {
    pub fn new(min: u32, max: u32, default: u32) -> Result<ExpiryBounds, RegisterError> {
        if min == 0 || min > default || default > max {
            return Err(RegisterError::InvalidBounds);
        }
        Ok(ExpiryBounds { min, max, default })
    }

    pub fn min(&self) -> u32 {
        self.min
    }

    pub fn max(&self) -> u32 {
        self.max
    }

    pub fn default_expires(&self) -> u32 {
        self.default
    }
}

impl Default for ExpiryBounds {
    fn default() -> Self {
        ExpiryBounds {
            min: DEFAULT_MIN_EXPIRES,
            max: DEFAULT_MAX_EXPIRES,
            default: DEFAULT_EXPIRES,
        }
    }
}

/// One stored registration (RFC 3261 §10.3 step 7 lists what must be remembered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub aor: Aor,
    /// The contact URI as the UA wrote it (with URI parameters). Callers building requests to
    /// it must not apply URI headers (`?Route=`) blindly (RFC 4475 §3.3.14).
    pub contact_uri: String,
    /// Unix seconds; the binding is gone at this instant.
    pub expires_at: u64,
    pub call_id: String,
    pub cseq: u32,
    /// Where the REGISTER came from (`ip:port` and transport), for NAT traversal.
    pub source: String,
    pub q: Option<QValue>,
    /// Other contact parameters (`+sip.instance`, `reg-id`, ...) verbatim, e.g. `;reg-id=1`.
    pub params: String,
}

/// A REGISTER reduced to what the registrar decides on. The message layer fills it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterRequest {
    /// The `To` URI (or whole `To` value); must be sip/sips (else 400).
    pub aor: String,
    /// From [`crate::sip::auth::Verdict::Ok`].
    pub authenticated_user: String,
    pub contacts: RegisterContacts,
    /// The `Expires` header, if present.
    pub expires_header: Option<u32>,
    pub call_id: String,
    pub cseq: u32,
    pub source: String,
}

/// A binding to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub aor: Aor,
    pub contact_uri: String,
}

/// One `Contact` of the 200 OK: every current binding with its remaining lifetime
/// (RFC 3261 §10.3 step 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseContact {
    pub uri: String,
    pub expires: u64,
}

impl ResponseContact {
    /// `<uri>;expires=N`, ready for a `Contact` header.
    pub fn header_value(&self) -> String {
        format!("<{}>;expires={}", self.uri, self.expires)
    }
}

/// What the ledger must persist (atomically) and what the 200 OK must list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegisterOutcome {
    /// New or refreshed bindings; key is (aor, contact_uri compared with [`sip_uri_eq`]).
    pub upserts: Vec<Binding>,
    /// Bindings to delete, including ones of this AOR found already expired.
    pub removals: Vec<Removal>,
    pub response_contacts: Vec<ResponseContact>,
}

/// The registrar policy for one domain.
#[derive(Debug, Clone)]
pub struct Registrar {
    domain: String,
    bounds: ExpiryBounds,
    max_bindings: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Existing { changed: bool },
    New,
}

struct Slot {
    binding: Binding,
    origin: Origin,
}

impl Registrar {
    /// `domain` is the host part AORs must have (RFC 3261 §10.3 step 5), compared without case.
    pub fn new(domain: &str, bounds: ExpiryBounds) -> Registrar {
        Registrar {
            domain: domain.to_ascii_lowercase(),
            bounds,
            max_bindings: DEFAULT_MAX_BINDINGS_PER_AOR,
        }
    }

    pub fn with_max_bindings(mut self, max: usize) -> Registrar {
        self.max_bindings = max;
        self
    }

    /// Processes one authenticated REGISTER against the AOR's current bindings (RFC 3261
    /// §10.3 steps 5–8). `existing` may contain bindings of other AORs; they are ignored.
    pub fn apply(
        &self,
        now: u64,
        req: &RegisterRequest,
        existing: &[Binding],
    ) -> Result<RegisterOutcome, RegisterError> {
        let aor = Aor::parse(&req.aor)?;
        if aor.host() != self.domain {
            return Err(RegisterError::NotOurDomain);
        }
        if aor.user() != req.authenticated_user {
            return Err(RegisterError::Forbidden);
        }

        let mut removals = Vec::new();
        let mut slots = Vec::new();
        for b in existing.iter().filter(|b| b.aor == aor) {
            if b.expires_at <= now {
                removals.push(removal(b));
            } else {
                slots.push(Slot {
                    binding: b.clone(),
                    origin: Origin::Existing { changed: false },
                });
            }
        }

        match &req.contacts {
            RegisterContacts::Star => {
                // RFC 3261 §10.3 step 6: `*` only with Expires: 0.
                if req.expires_header != Some(0) {
                    return Err(RegisterError::BadRequest("'*' requires Expires: 0"));
                }
                if slots.iter().any(|s| is_out_of_order(&s.binding, req)) {
                    return Err(RegisterError::OutOfOrder);
                }
                removals.extend(slots.drain(..).map(|s| removal(&s.binding)));
            }
            RegisterContacts::List(contacts) => {
                for c in contacts {
                    self.apply_contact(now, req, &aor, c, &mut slots, &mut removals)?;
                }
                if slots.len() > self.max_bindings {
                    return Err(RegisterError::TooManyBindings {
                        max: self.max_bindings,
                    });
                }
            }
        }

        let response_contacts = slots
            .iter()
            .map(|s| ResponseContact {
                uri: s.binding.contact_uri.clone(),
                expires: s.binding.expires_at.saturating_sub(now),
            })
            .collect();
        let upserts = slots
            .into_iter()
            .filter(|s| s.origin != Origin::Existing { changed: false })
            .map(|s| s.binding)
            .collect();
        Ok(RegisterOutcome {
            upserts,
            removals,
            response_contacts,
        })
    }

    /// RFC 3261 §10.3 step 7 for one contact.
    fn apply_contact(
        &self,
        now: u64,
        req: &RegisterRequest,
        aor: &Aor,
        c: &ContactSpec,
        slots: &mut Vec<Slot>,
        removals: &mut Vec<Removal>,
    ) -> Result<(), RegisterError> {
        if !uri::is_sip_uri(&c.uri) {
            return Err(RegisterError::BadRequest(
                "Contact must be a sip or sips URI",
            ));
        }
        let requested = c
            .expires_param
            .or(req.expires_header)
            .unwrap_or(self.bounds.default);
        // Zero means "remove" and is never too brief; 423 only for a positive interval.
        if requested != 0 && requested < self.bounds.min {
            return Err(RegisterError::IntervalTooBrief {
                min_expires: self.bounds.min,
            });
        }
        let granted = requested.min(self.bounds.max);

        let found = slots
            .iter()
            .position(|s| sip_uri_eq(&s.binding.contact_uri, &c.uri));
        let Some(idx) = found else {
            if granted > 0 {
                slots.push(Slot {
                    binding: Binding {
                        aor: aor.clone(),
                        contact_uri: c.uri.clone(),
                        expires_at: now.saturating_add(u64::from(granted)),
                        call_id: req.call_id.clone(),
                        cseq: req.cseq,
                        source: req.source.clone(),
                        q: c.q,
                        params: c.opaque_params(),
                    },
                    origin: Origin::New,
                });
            }
            return Ok(());
        };
        let Some(slot) = slots.get_mut(idx) else {
            return Ok(());
        };
        // A contact repeated within this request simply overrides the earlier one.
        if matches!(slot.origin, Origin::Existing { .. }) && is_out_of_order(&slot.binding, req) {
            return Err(RegisterError::OutOfOrder);
        }
        if granted == 0 {
            let gone = slots.remove(idx);
            if matches!(gone.origin, Origin::Existing { .. }) {
                removals.push(removal(&gone.binding));
            }
            return Ok(());
        }
        let b = &mut slot.binding;
        b.expires_at = now.saturating_add(u64::from(granted));
        b.call_id = req.call_id.clone();
        b.cseq = req.cseq;
        b.source = req.source.clone();
        b.q = c.q;
        b.params = c.opaque_params();
        if let Origin::Existing { changed } = &mut slot.origin {
            *changed = true;
        }
        Ok(())
    }
}

/// RFC 3261 §10.3 step 7: same Call-ID and a CSeq not higher than the stored one.
fn is_out_of_order(b: &Binding, req: &RegisterRequest) -> bool {
    b.call_id == req.call_id && req.cseq <= b.cseq
}

fn removal(b: &Binding) -> Removal {
    Removal {
        aor: b.aor.clone(),
        contact_uri: b.contact_uri.clone(),
    }
}

/// Bindings whose lifetime is over at `now` (for the ledger's sweep and for the ACD, which
/// must stop offering calls to them).
pub fn expired(now: u64, bindings: &[Binding]) -> Vec<&Binding> {
    bindings.iter().filter(|b| b.expires_at <= now).collect()
}

/// When the next binding expires: the deadline the owner task should wake up for.
pub fn next_expiry(bindings: &[Binding]) -> Option<u64> {
    bindings.iter().map(|b| b.expires_at).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000;
    const DOMAIN: &str = "desk.example.jp";

    fn registrar() -> Registrar {
        Registrar::new(
            "Desk.Example.JP",
            ExpiryBounds::new(60, 3600, 1800).unwrap(),
        )
    }

    fn req(contacts: &[&str], expires: Option<u32>, call_id: &str, cseq: u32) -> RegisterRequest {
        RegisterRequest {
            aor: format!("<sip:op1@{DOMAIN}>"),
            authenticated_user: "op1".into(),
            contacts: parse_contacts(contacts.iter().copied()).unwrap(),
            expires_header: expires,
            call_id: call_id.into(),
            cseq,
            source: "192.0.2.10:5062/udp".into(),
        }
    }

    /// Applies and merges the outcome into `store`, as the ledger would.
    fn commit(store: &mut Vec<Binding>, out: &RegisterOutcome) {
        store.retain(|b| {
            !out.removals
                .iter()
                .any(|r| r.aor == b.aor && sip_uri_eq(&r.contact_uri, &b.contact_uri))
                && !out
                    .upserts
                    .iter()
                    .any(|u| u.aor == b.aor && sip_uri_eq(&u.contact_uri, &b.contact_uri))
        });
        store.extend(out.upserts.iter().cloned());
    }

    fn register(
        r: &Registrar,
        now: u64,
        q: &RegisterRequest,
        store: &mut Vec<Binding>,
    ) -> RegisterOutcome {
        let out = r.apply(now, q, store).unwrap();
        commit(store, &out);
        out
    }

    #[test]
    fn new_binding_uses_header_param_or_default() {
        let r = registrar();
        let out = r
            .apply(
                T0,
                &req(
                    &["<sip:op1@192.0.2.10:5062>;expires=600"],
                    Some(900),
                    "c1",
                    1,
                ),
                &[],
            )
            .unwrap();
        assert_eq!(out.upserts.len(), 1);
        let b = &out.upserts[0];
        assert_eq!(b.aor.as_str(), "sip:op1@desk.example.jp");
        assert_eq!(b.expires_at, T0 + 600, "contact param beats Expires header");
        assert_eq!((b.call_id.as_str(), b.cseq), ("c1", 1));
        assert_eq!(
            out.response_contacts,
            vec![ResponseContact {
                uri: "sip:op1@192.0.2.10:5062".into(),
                expires: 600
            }]
        );
        assert_eq!(
            out.response_contacts[0].header_value(),
            "<sip:op1@192.0.2.10:5062>;expires=600"
        );

        let out = r
            .apply(T0, &req(&["<sip:op1@h>"], Some(900), "c1", 1), &[])
            .unwrap();
        assert_eq!(out.upserts[0].expires_at, T0 + 900, "Expires header");
        let out = r
            .apply(T0, &req(&["<sip:op1@h>"], None, "c1", 1), &[])
            .unwrap();
        assert_eq!(out.upserts[0].expires_at, T0 + 1800, "profile default");
    }

    #[test]
    fn too_brief_is_423_with_min_expires_and_zero_is_not() {
        let r = registrar();
        let e = r
            .apply(T0, &req(&["<sip:op1@h>;expires=59"], None, "c1", 1), &[])
            .unwrap_err();
        assert_eq!(e, RegisterError::IntervalTooBrief { min_expires: 60 });
        assert_eq!(e.status_code(), 423);
        assert_eq!(e.min_expires(), Some(60));
        assert!(r
            .apply(T0, &req(&["<sip:op1@h>"], Some(1), "c1", 1), &[])
            .is_err());
        assert!(r
            .apply(T0, &req(&["<sip:op1@h>;expires=60"], None, "c1", 1), &[])
            .is_ok());
        let out = r
            .apply(T0, &req(&["<sip:op1@h>;expires=0"], None, "c1", 1), &[])
            .unwrap();
        assert_eq!(out, RegisterOutcome::default());
    }

    #[test]
    fn too_long_is_clamped_to_max() {
        let out = registrar()
            .apply(
                T0,
                &req(&["<sip:op1@h>;expires=4294967295"], None, "c1", 1),
                &[],
            )
            .unwrap();
        assert_eq!(out.upserts[0].expires_at, T0 + 3600);
        assert_eq!(out.response_contacts[0].expires, 3600);
    }

    #[test]
    fn refresh_updates_expiry_and_keeps_one_binding() {
        let r = registrar();
        let mut store = Vec::new();
        let out = r
            .apply(
                T0,
                &req(
                    &["<sip:op1@192.0.2.10;transport=udp>;reg-id=1"],
                    Some(600),
                    "c1",
                    1,
                ),
                &store,
            )
            .unwrap();
        commit(&mut store, &out);
        // Same contact, other spelling per RFC 3261 §19.1.4, later and with a higher CSeq.
        let out = r
            .apply(
                T0 + 300,
                &req(&["<SIP:op1@192.0.2.10;Transport=UDP>"], Some(600), "c1", 2),
                &store,
            )
            .unwrap();
        assert_eq!(out.upserts.len(), 1);
        assert!(out.removals.is_empty());
        assert_eq!(out.upserts[0].expires_at, T0 + 900);
        assert_eq!(out.upserts[0].cseq, 2);
        assert_eq!(out.upserts[0].params, "");
        commit(&mut store, &out);
        assert_eq!(store.len(), 1);
        // A query (no Contact) changes nothing and lists the binding with its remaining time.
        let out = r.apply(T0 + 400, &req(&[], None, "c1", 3), &store).unwrap();
        assert!(out.upserts.is_empty() && out.removals.is_empty());
        assert_eq!(out.response_contacts[0].expires, 500);
    }

    #[test]
    fn other_call_id_with_lower_cseq_is_fine() {
        let r = registrar();
        let mut store = Vec::new();
        register(&r, T0, &req(&["<sip:op1@h>"], None, "c1", 50), &mut store);
        // The phone rebooted: new Call-ID, CSeq restarts at 1 (RFC 3261 §10.2.4).
        let out = r
            .apply(T0 + 5, &req(&["<sip:op1@h>"], None, "c2", 1), &store)
            .unwrap();
        assert_eq!(out.upserts[0].call_id, "c2");
    }

    #[test]
    fn out_of_order_cseq_is_500() {
        let r = registrar();
        let mut store = Vec::new();
        register(&r, T0, &req(&["<sip:op1@h>"], None, "c1", 5), &mut store);
        for cseq in [4, 5] {
            let e = r
                .apply(T0 + 1, &req(&["<sip:op1@h>"], None, "c1", cseq), &store)
                .unwrap_err();
            assert_eq!(e, RegisterError::OutOfOrder);
            assert_eq!(e.status_code(), 500);
            let e = r.apply(
                T0 + 1,
                &req(&["<sip:op1@h>;expires=0"], None, "c1", cseq),
                &store,
            );
            assert_eq!(e, Err(RegisterError::OutOfOrder), "removal is checked too");
            let e = r.apply(T0 + 1, &req(&["*"], Some(0), "c1", cseq), &store);
            assert_eq!(e, Err(RegisterError::OutOfOrder), "wildcard is checked too");
        }
        assert!(r
            .apply(T0 + 1, &req(&["<sip:op1@h>"], None, "c1", 6), &store)
            .is_ok());
    }

    #[test]
    fn failure_is_atomic() {
        let r = registrar();
        let mut store = Vec::new();
        register(&r, T0, &req(&["<sip:op1@a>"], None, "c1", 5), &mut store);
        // First contact would be fine, the second is too brief: nothing may change.
        let e = r.apply(
            T0,
            &req(&["<sip:op1@b>", "<sip:op1@c>;expires=10"], None, "c1", 6),
            &store,
        );
        assert!(e.is_err());
    }

    #[test]
    fn wildcard_removes_all_and_needs_expires_zero() {
        let r = registrar();
        let mut store = Vec::new();
        let both = req(&["<sip:op1@a>", "<sip:op1@b>"], None, "c1", 1);
        register(&r, T0, &both, &mut store);
        // Someone else's binding must survive.
        let mut other = store[0].clone();
        other.aor = Aor::parse("sip:op2@desk.example.jp").unwrap();
        store.push(other.clone());
        assert_eq!(
            r.apply(T0, &req(&["*"], None, "c9", 1), &store),
            Err(RegisterError::BadRequest("'*' requires Expires: 0"))
        );
        assert!(r
            .apply(T0, &req(&["*"], Some(60), "c9", 1), &store)
            .is_err());
        let out = r
            .apply(T0 + 1, &req(&["*"], Some(0), "c9", 1), &store)
            .unwrap();
        assert_eq!(out.removals.len(), 2);
        assert!(out.upserts.is_empty() && out.response_contacts.is_empty());
        commit(&mut store, &out);
        assert_eq!(store, vec![other]);
    }

    #[test]
    fn remove_one_contact_by_expires_zero() {
        let r = registrar();
        let mut store = Vec::new();
        let both = req(&["<sip:op1@a>", "<sip:op1@b>"], None, "c1", 1);
        register(&r, T0, &both, &mut store);
        let out = r
            .apply(T0, &req(&["<sip:op1@a>"], Some(0), "c1", 2), &store)
            .unwrap();
        assert_eq!(
            out.removals,
            vec![Removal {
                aor: Aor::parse("sip:op1@desk.example.jp").unwrap(),
                contact_uri: "sip:op1@a".into()
            }]
        );
        assert_eq!(out.response_contacts.len(), 1);
        assert_eq!(out.response_contacts[0].uri, "sip:op1@b");
    }

    #[test]
    fn aor_rules() {
        let r = registrar();
        let mut q = req(&["<sip:op1@h>"], None, "c1", 1);
        q.authenticated_user = "op2".into();
        let e = r.apply(T0, &q, &[]).unwrap_err();
        assert_eq!(
            (e.clone(), e.status_code()),
            (RegisterError::Forbidden, 403)
        );
        q.authenticated_user = "OP1".into();
        assert_eq!(
            r.apply(T0, &q, &[]),
            Err(RegisterError::Forbidden),
            "user part is case-sensitive"
        );
        q.authenticated_user = "op1".into();
        q.aor = "sip:op1@elsewhere.example".into();
        let e = r.apply(T0, &q, &[]).unwrap_err();
        assert_eq!(
            (e.clone(), e.status_code()),
            (RegisterError::NotOurDomain, 404)
        );
        q.aor = "tel:+81312345678".into();
        assert_eq!(r.apply(T0, &q, &[]).map_err(|e| e.status_code()), Err(400));
        q.aor = "sip:%6Fp1@DESK.example.jp:5060;transport=tcp".into();
        assert!(r.apply(T0, &q, &[]).is_ok());
        let mut q = req(&["<tel:+81312345678>"], None, "c1", 1);
        q.aor = format!("sip:op1@{DOMAIN}");
        assert_eq!(r.apply(T0, &q, &[]).map_err(|e| e.status_code()), Err(400));
    }

    #[test]
    fn per_aor_binding_cap() {
        let r = registrar().with_max_bindings(2);
        let mut store = Vec::new();
        let both = req(&["<sip:op1@a>", "<sip:op1@b>"], None, "c1", 1);
        register(&r, T0, &both, &mut store);
        let e = r
            .apply(T0, &req(&["<sip:op1@c>"], None, "c2", 1), &store)
            .unwrap_err();
        assert_eq!(e, RegisterError::TooManyBindings { max: 2 });
        assert_eq!(e.status_code(), 403);
        // Replacing one in the same request fits.
        assert!(r
            .apply(
                T0,
                &req(&["<sip:op1@a>;expires=0", "<sip:op1@c>"], None, "c1", 2),
                &store
            )
            .is_ok());
        // Expired bindings do not count, and are swept.
        let out = r
            .apply(T0 + 1800, &req(&["<sip:op1@c>"], None, "c2", 1), &store)
            .unwrap();
        assert_eq!(out.removals.len(), 2);
        assert_eq!(out.response_contacts.len(), 1);
    }

    #[test]
    fn expiry_timing() {
        let r = registrar();
        let out = r
            .apply(
                T0,
                &req(
                    &["<sip:op1@a>;expires=120", "<sip:op1@b>;expires=60"],
                    None,
                    "c1",
                    1,
                ),
                &[],
            )
            .unwrap();
        let store = out.upserts;
        assert_eq!(next_expiry(&store), Some(T0 + 60));
        assert!(expired(T0 + 59, &store).is_empty());
        let gone = expired(T0 + 60, &store);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].contact_uri, "sip:op1@b");
        assert_eq!(expired(T0 + 120, &store).len(), 2);
        assert_eq!(next_expiry(&[]), None);
        // At exactly expires_at the binding no longer exists for the registrar either.
        let out = r.apply(T0 + 60, &req(&[], None, "c1", 2), &store).unwrap();
        assert_eq!(out.response_contacts.len(), 1);
        assert_eq!(out.response_contacts[0].expires, 60);
    }

    #[test]
    fn duplicate_contact_in_one_request_last_wins() {
        let out = registrar()
            .apply(
                T0,
                &req(
                    &["<sip:op1@a>;expires=100, <sip:op1@a>;expires=200"],
                    None,
                    "c1",
                    1,
                ),
                &[],
            )
            .unwrap();
        assert_eq!(out.upserts.len(), 1);
        assert_eq!(out.upserts[0].expires_at, T0 + 200);
    }

    #[test]
    fn bounds_validation() {
        assert_eq!(
            ExpiryBounds::new(0, 10, 5),
            Err(RegisterError::InvalidBounds)
        );
        assert_eq!(
            ExpiryBounds::new(60, 30, 40),
            Err(RegisterError::InvalidBounds)
        );
        assert_eq!(
            ExpiryBounds::new(60, 3600, 30),
            Err(RegisterError::InvalidBounds)
        );
        assert!(ExpiryBounds::new(60, 60, 60).is_ok());
        let d = ExpiryBounds::default();
        assert_eq!((d.min(), d.max(), d.default_expires()), (60, 3600, 3600));
    }
}
