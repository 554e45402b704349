//! SIP profiles: `sip-profiles/*.toml` (issue #2 §3).
//!
//! A profile file holds any number of `[[trunk]]` tables (carrier trunks) and at most one
//! `[seats]` table (the operator seat profile) across the whole directory. Files are
//! read in name order so errors come out in a stable order. Every problem of every
//! file is collected before reporting.
//!
//! ```toml
//! [[trunk]]
//! name = "carrier-a"
//! sources = ["127.0.0.1/32", "::1/128"]   # who may send us INVITEs
//! number_format = "national"               # 0ABJ… (or "e164": +81…)
//! transports = ["udp", "tcp"]
//! codecs = ["PCMU", "PCMA"]
//!
//! [seats]
//! realm = "smartdesk"
//! min_expires = 60
//! max_expires = 3600
//! default_expires = 600
//! codecs = ["PCMU", "PCMA"]
//! digest_algorithms = ["MD5"]              # WWW-Authenticate order; ["SHA-256", "MD5"] for RFC 8760 fleets
//! domains = []                              # accepted To hosts; empty = any
//! ```

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::ConfigProblem;

/// How a carrier writes the called number in the Request-URI user part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NumberFormat {
    /// Japanese national format with trunk prefix: `0312345678`.
    National,
    /// E.164 with `+81`: `+81312345678`.
    E164,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
}

/// Codecs the relay can carry without transcoding (issue #4 §6).
pub const KNOWN_CODECS: &[&str] = &["PCMU", "PCMA"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trunk {
    pub name: String,
    pub sources: Vec<IpNet>,
    pub number_format: NumberFormat,
    #[serde(default = "default_transports")]
    pub transports: Vec<Transport>,
    #[serde(default = "default_codecs")]
    pub codecs: Vec<String>,
}

fn default_transports() -> Vec<Transport> {
    vec![Transport::Udp, Transport::Tcp]
}
fn default_codecs() -> Vec<String> {
    KNOWN_CODECS.iter().map(|s| s.to_string()).collect()
}

impl Trunk {
    /// Does a packet from `ip` belong to this trunk? (RFC 3261 has no trunk notion:
    /// source address ACLs are how carriers and SBCs are told apart in practice.)
    pub fn admits(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.sources.iter().any(|n| n.contains(&ip))
    }
}

/// Seat registration rules. Bounds are RFC 3261 §10.2.1 / §10.3 step 7 (423 below min).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeatProfile {
    pub realm: String,
    #[serde(default = "default_min_expires")]
    pub min_expires: u32,
    #[serde(default = "default_max_expires")]
    pub max_expires: u32,
    #[serde(default = "default_default_expires")]
    pub default_expires: u32,
    #[serde(default = "default_codecs")]
    pub codecs: Vec<String>,
    /// Digest algorithms offered to softphones, one `WWW-Authenticate` each in this order, and
    /// the only ones accepted. Values: `"MD5"` (RFC 3261) and `"SHA-256"` (RFC 8760).
    ///
    /// Why MD5 first by default, although RFC 8760 §2.4 lists the preferred (SHA-256) first:
    /// clients that look only at the first challenge and know only MD5 fail outright when it
    /// says SHA-256 (PJSIP up to 2.10, hence older MicroSIP builds; Twinkle; SIPp 3.6, which
    /// answers the first `algorithm=` it sees). With MD5 first every client registers,
    /// and a client that prefers SHA-256 may still pick it. Offering MD5 at all is what sets
    /// the security level (its HA1 is stored and accepted), so the order costs little.
    /// A fleet known to speak SHA-256 can use `["SHA-256", "MD5"]` or `["SHA-256"]`.
    ///
    /// Why only MD5 by default: baresip 1.0 (Debian 12) gives up on the whole 401 when any
    /// challenge in it names an algorithm it does not know ("Register: Function not
    /// implemented"), even with an MD5 one beside it (tests/call_path.rs shows it working
    /// with the default). Since offering MD5 is what sets the security level anyway, the
    /// default offers what every softphone understands; RFC 8760 SHA-256 is one line away.
    #[serde(default = "default_digest_algorithms")]
    pub digest_algorithms: Vec<String>,
    /// Host names and addresses phones may use in the `To` of a REGISTER (RFC 3261 §10.3
    /// step 5), besides the realm, `sip.advertised_address` and a non-wildcard listen address.
    /// Empty (the default) accepts any host: behind a wildcard listen address the daemon
    /// cannot know under which names it is reached. Other hosts get 404.
    #[serde(default)]
    pub domains: Vec<String>,
}

fn default_digest_algorithms() -> Vec<String> {
    vec!["MD5".into()]
}

/// Below a minute, a few hundred seats re-registering would dominate the signalling load.
fn default_min_expires() -> u32 {
    60
}
/// An hour: a crashed phone is noticed within that time even without the reconciler.
fn default_max_expires() -> u32 {
    3600
}
fn default_default_expires() -> u32 {
    600
}

impl Default for SeatProfile {
    fn default() -> Self {
        SeatProfile {
            realm: "smartdesk".into(),
            min_expires: default_min_expires(),
            max_expires: default_max_expires(),
            default_expires: default_default_expires(),
            codecs: default_codecs(),
            digest_algorithms: default_digest_algorithms(),
            domains: Vec::new(),
        }
    }
}

impl SeatProfile {
    /// [`Self::digest_algorithms`] parsed, in order, duplicates and unknown names dropped
    /// (validation reports those).
    pub fn algorithms(&self) -> Vec<crate::sip::auth::Algorithm> {
        let mut out = Vec::new();
        for a in &self.digest_algorithms {
            if let Some(a) = crate::sip::auth::Algorithm::from_token(a) {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Profiles {
    pub trunks: Vec<Trunk>,
    pub seats: SeatProfile,
    /// The files that were read, for `check-config` output.
    pub files: Vec<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    #[serde(default)]
    trunk: Vec<toml::Value>,
    #[serde(default)]
    seats: Option<toml::Value>,
}

impl Profiles {
    /// Read every `*.toml` in `dir`. A missing directory yields no trunks and the
    /// default seat profile (the daemon then answers no carrier: safe by default).
    pub fn load_dir(dir: &Path) -> Result<Profiles, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut out = Profiles::default();
        let mut seats_from: Option<PathBuf> = None;
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("toml"))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(vec![ConfigProblem {
                    origin: dir.display().to_string(),
                    key: "sip.profiles_dir".into(),
                    message: e.to_string(),
                }])
            }
        };
        files.sort();
        for file in &files {
            let origin = file.display().to_string();
            let mut p = |key: String, message: String| {
                problems.push(ConfigProblem {
                    origin: origin.clone(),
                    key,
                    message,
                })
            };
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => {
                    p("(file)".into(), e.to_string());
                    continue;
                }
            };
            let parsed: ProfileFile = match toml::from_str(&text) {
                Ok(v) => v,
                Err(e) => {
                    p("(file)".into(), e.message().to_string());
                    continue;
                }
            };
            for (i, raw) in parsed.trunk.into_iter().enumerate() {
                let key = format!("trunk[{i}]");
                match raw.try_into::<Trunk>() {
                    Ok(t) => {
                        for m in t.problems() {
                            p(format!("{key}.{}", m.0), m.1);
                        }
                        out.trunks.push(t);
                    }
                    Err(e) => p(key, e.message().to_string()),
                }
            }
            if let Some(raw) = parsed.seats {
                if let Some(prev) = &seats_from {
                    p(
                        "seats".into(),
                        format!("a [seats] profile is already defined in {}", prev.display()),
                    );
                    continue;
                }
                match raw.try_into::<SeatProfile>() {
                    Ok(s) => {
                        for m in s.problems() {
                            p(format!("seats.{}", m.0), m.1);
                        }
                        out.seats = s;
                        seats_from = Some(file.clone());
                    }
                    Err(e) => p("seats".into(), e.message().to_string()),
                }
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for t in &out.trunks {
            if !names.insert(t.name.clone()) {
                problems.push(ConfigProblem {
                    origin: dir.display().to_string(),
                    key: format!("trunk {:?}", t.name),
                    message: "trunk name used twice".into(),
                });
            }
        }
        out.files = files;
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }

    /// The trunk a source address belongs to (first match in file order).
    pub fn trunk_for(&self, ip: IpAddr) -> Option<&Trunk> {
        self.trunks.iter().find(|t| t.admits(ip))
    }
}

fn codec_problems(codecs: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if codecs.is_empty() {
        out.push(("codecs".into(), "at least one codec is required".into()));
    }
    for (i, c) in codecs.iter().enumerate() {
        if !KNOWN_CODECS.iter().any(|k| k.eq_ignore_ascii_case(c)) {
            out.push((
                format!("codecs[{i}]"),
                format!("unknown codec {c:?} (known: {})", KNOWN_CODECS.join(", ")),
            ));
        }
    }
    out
}

impl Trunk {
    fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.name.trim().is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            out.push((
                "name".into(),
                "must be non-empty: letters, digits, - _ .".into(),
            ));
        }
        if self.sources.is_empty() {
            out.push((
                "sources".into(),
                "at least one source CIDR is required".into(),
            ));
        }
        if self.transports.is_empty() {
            out.push(("transports".into(), "at least one transport".into()));
        }
        out.extend(codec_problems(&self.codecs));
        out
    }
}

impl SeatProfile {
    fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.realm.trim().is_empty() || self.realm.contains('"') {
            out.push((
                "realm".into(),
                "must be non-empty and contain no quote".into(),
            ));
        }
        if self.min_expires == 0 || self.min_expires > self.max_expires {
            out.push((
                "min_expires".into(),
                format!("must be between 1 and max_expires ({})", self.max_expires),
            ));
        }
        if self.default_expires < self.min_expires || self.default_expires > self.max_expires {
            out.push((
                "default_expires".into(),
                "must lie between min_expires and max_expires".into(),
            ));
        }
        if self.digest_algorithms.is_empty() {
            out.push((
                "digest_algorithms".into(),
                "at least one of \"MD5\", \"SHA-256\"".into(),
            ));
        }
        for (i, a) in self.digest_algorithms.iter().enumerate() {
            if crate::sip::auth::Algorithm::from_token(a).is_none() {
                out.push((
                    format!("digest_algorithms[{i}]"),
                    format!("unknown algorithm {a:?} (known: \"MD5\", \"SHA-256\")"),
                ));
            } else if self
                .digest_algorithms
                .iter()
                .take(i)
                .any(|b| b.eq_ignore_ascii_case(a))
            {
                out.push((format!("digest_algorithms[{i}]"), "listed twice".into()));
            }
        }
        for (i, d) in self.domains.iter().enumerate() {
            let ok = !d.is_empty()
                && d.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']')
                });
            if !ok {
                out.push((
                    format!("domains[{i}]"),
                    format!("{d:?} is not a host name or address"),
                ));
            }
        }
        out.extend(codec_problems(&self.codecs));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).expect("write");
    }

    #[test]
    fn shipped_profiles_parse_and_allow_only_loopback() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sip-profiles");
        let p = Profiles::load_dir(&dir).expect("shipped profiles are valid");
        assert!(!p.trunks.is_empty());
        for t in &p.trunks {
            for net in &t.sources {
                assert!(
                    net.network().is_loopback() && net.broadcast().is_loopback(),
                    "shipped trunk {} allows non-loopback {net}",
                    t.name
                );
            }
            assert!(t.admits("127.0.0.1".parse().expect("ip")));
            assert!(!t.admits("192.0.2.1".parse().expect("ip")));
        }
        assert!(!p.seats.realm.is_empty());
    }

    #[test]
    fn trunk_acl_matches_cidrs_and_mapped_v4() {
        let t = Trunk {
            name: "a".into(),
            sources: vec!["10.1.0.0/16".parse().expect("net")],
            number_format: NumberFormat::National,
            transports: default_transports(),
            codecs: default_codecs(),
        };
        assert!(t.admits("10.1.2.3".parse().expect("ip")));
        assert!(t.admits("::ffff:10.1.2.3".parse().expect("ip")));
        assert!(!t.admits("10.2.0.1".parse().expect("ip")));
    }

    #[test]
    fn all_problems_of_all_files_are_reported() {
        let d = tempfile::tempdir().expect("tmp");
        write(
            d.path(),
            "a.toml",
            "[[trunk]]\nname = \"x\"\nsources = []\nnumber_format = \"national\"\ncodecs = [\"G729\"]\n",
        );
        write(
            d.path(),
            "b.toml",
            "[[trunk]]\nname = \"y\"\nsources = [\"nonsense\"]\nnumber_format = \"national\"\n[seats]\nrealm = \"r\"\nmin_expires = 100\nmax_expires = 50\n",
        );
        write(d.path(), "c.toml", "[[trunk]]\nname = \"z\"\nbogus = 1\n");
        let err = Profiles::load_dir(d.path()).expect_err("invalid");
        let text: Vec<String> = err.iter().map(|p| p.to_string()).collect();
        let joined = text.join("\n");
        assert!(joined.contains("a.toml: trunk[0].sources"), "{joined}");
        assert!(joined.contains("a.toml: trunk[0].codecs[0]"), "{joined}");
        assert!(joined.contains("b.toml: trunk[0]"), "{joined}");
        assert!(joined.contains("b.toml: seats.min_expires"), "{joined}");
        assert!(joined.contains("c.toml: trunk[0]"), "{joined}");
    }

    #[test]
    fn seat_digest_algorithms_and_domains() {
        use crate::sip::auth::Algorithm;
        let d = SeatProfile::default();
        assert_eq!(d.algorithms(), vec![Algorithm::Md5]);
        assert!(d.problems().is_empty());
        let s = SeatProfile {
            digest_algorithms: vec!["sha-256".into()],
            domains: vec!["pbx.example.jp".into(), "192.0.2.1".into()],
            ..SeatProfile::default()
        };
        assert_eq!(s.algorithms(), vec![Algorithm::Sha256]);
        assert!(s.problems().is_empty());
        let bad = SeatProfile {
            digest_algorithms: vec!["MD5".into(), "md5".into(), "SHA-512".into()],
            domains: vec!["a b".into()],
            ..SeatProfile::default()
        };
        let keys: Vec<String> = bad.problems().into_iter().map(|p| p.0).collect();
        assert_eq!(
            keys,
            vec!["digest_algorithms[1]", "digest_algorithms[2]", "domains[0]"]
        );
        let none = SeatProfile {
            digest_algorithms: vec![],
            ..SeatProfile::default()
        };
        assert_eq!(none.problems()[0].0, "digest_algorithms");
    }

    #[test]
    fn missing_dir_means_no_trunks() {
        let p = Profiles::load_dir(Path::new("/nonexistent/profiles")).expect("ok");
        assert!(p.trunks.is_empty());
        assert_eq!(p.seats, SeatProfile::default());
    }
}
