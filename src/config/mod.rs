//! Configuration: raw TOML (+ environment) → validated [`Config`].
//!
//! Sources, later ones winning (issue #2 §2):
//! 1. built-in defaults that work out of the box ([`Config::default`]);
//! 2. the file given by `--config FILE`, else `./smartdesk.toml` if it exists;
//! 3. environment variables `SMARTDESK__SECTION__KEY` (e.g. `SMARTDESK__SIP__LISTEN`).
//!
//! The `config` crate merges the sources. Validation is ours because serde stops at the
//! first error while an admin fixing a file wants **all** of them at once, each with the
//! file (or "the environment") and the dotted key: every leaf is checked against
//! [`SCHEMA`] on its own, unknown keys are collected, then semantic checks run.

pub mod profiles;
pub mod security;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::hours::CalendarConfig;
pub use profiles::{NumberFormat, Profiles, SeatProfile, Transport, Trunk};
pub use security::SecurityConfig;

/// The environment prefix; `__` separates prefix, section and key so that single
/// underscores stay usable inside key names (`SMARTDESK__MEDIA__RTP_PORT_MIN`).
pub const ENV_PREFIX: &str = "SMARTDESK";
/// File read when no `--config` is given, if present in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "smartdesk.toml";
/// Data directory relative to the working directory, so a fresh checkout runs as is.
pub const DEFAULT_DATA_DIR: &str = "./data";
/// SQLite file inside the data directory when no ledger URL is configured.
pub const DEFAULT_SQLITE_FILE: &str = "smartdesk.db";
/// Standard SIP port; carriers expect it.
/// Calls the PostgreSQL spool holds: at 20 calls/s, over an hour and a half of outage, a
/// few tens of MB on disk.
pub const DEFAULT_SPOOL_MAX_CALLS: u64 = 100_000;
pub const DEFAULT_SIP_LISTEN: &str = "0.0.0.0:5060";
/// Loopback only: the console must not face the network without TLS in front (README).
pub const DEFAULT_WEB_LISTEN: &str = "127.0.0.1:8080";
/// 10,000 ports = 5,000 concurrent calls at two ports (RTP+RTCP) per leg pair side.
pub const DEFAULT_RTP_PORT_MIN: u16 = 20000;
pub const DEFAULT_RTP_PORT_MAX: u16 = 29999;
/// RFC 3261 §17.1.1.1 recommended timer values.
pub const DEFAULT_T1_MS: u64 = 500;
pub const DEFAULT_T2_MS: u64 = 4000;
pub const DEFAULT_T4_MS: u64 = 5000;
/// A call whose media stopped this long is treated as dead (lost BYE, crashed phone).
pub const DEFAULT_MEDIA_TIMEOUT_S: u64 = 60;
/// SIGTERM: how long calls in progress may go on before they are hung up. Most calls to an
/// answering service take a minute or two; 30 s lets the short ones finish while keeping a
/// restart quick. The systemd unit's TimeoutStopSec must stay above it.
pub const DEFAULT_SHUTDOWN_GRACE_S: u64 = 30;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub daemon: DaemonConfig,
    pub ledger: LedgerConfig,
    pub sip: SipConfig,
    pub media: MediaConfig,
    pub web: WebConfig,
    pub reports: ReportsConfig,
    pub log: LogConfig,
    pub billing: BillingConfig,
    pub hours: CalendarConfig,
    pub acd: AcdSection,
    pub security: SecurityConfig,
    pub metrics: MetricsConfig,
}

/// `[acd]`: call distribution (issue #6). Defaults: [`crate::acd`]'s constants, each
/// with its reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcdSection {
    /// A seat rings this long before the caller moves to the next one.
    pub ring_timeout_s: u64,
    /// Before a seat that let a call ring out is offered another.
    pub retry_no_answer_s: u64,
    /// Before a seat that answered 486 Busy is offered another.
    pub retry_busy_s: u64,
    /// Before a seat that declined (603 and other refusals) is offered another.
    pub retry_decline_s: u64,
    /// Consecutive no-answers that pause a seat with reason `no_answer`; 0 = never.
    pub max_no_answer: u32,
    /// Longest queue wait before the caller is asked to leave a message.
    pub max_wait_s: u64,
    /// Longest wrap-up after a call (ended earlier by the first-response record).
    pub wrap_up_max_s: u64,
    /// How long a caller waits for a seat with the contractor's preferred skill.
    pub skill_fallback_s: u64,
    /// Longest voice message.
    pub recording_max_s: u64,
}

impl Default for AcdSection {
    fn default() -> Self {
        let d = crate::acd::AcdConfig::default();
        AcdSection {
            ring_timeout_s: d.ring_timeout.as_secs(),
            retry_no_answer_s: d.retry_no_answer.as_secs(),
            retry_busy_s: d.retry_busy.as_secs(),
            retry_decline_s: d.retry_decline.as_secs(),
            max_no_answer: d.max_no_answer,
            max_wait_s: d.max_wait.as_secs(),
            wrap_up_max_s: d.wrap_up_max.as_secs(),
            skill_fallback_s: d.skill_fallback.as_secs(),
            recording_max_s: DEFAULT_RECORDING_MAX_S,
        }
    }
}

/// Two minutes: enough for name, number and a message; bounded so that one caller cannot
/// fill the disk (8 kB/s of G.711).
pub const DEFAULT_RECORDING_MAX_S: u64 = 120;

impl AcdSection {
    /// The ACD's rules from this section.
    pub fn rules(&self) -> crate::acd::AcdConfig {
        let s = std::time::Duration::from_secs;
        crate::acd::AcdConfig {
            ring_timeout: s(self.ring_timeout_s),
            retry_no_answer: s(self.retry_no_answer_s),
            retry_busy: s(self.retry_busy_s),
            retry_decline: s(self.retry_decline_s),
            max_no_answer: self.max_no_answer,
            max_wait: s(self.max_wait_s),
            wrap_up_max: s(self.wrap_up_max_s),
            skill_fallback: s(self.skill_fallback_s),
        }
    }

    fn validate(&self, p: &mut impl FnMut(&str, String)) {
        let range = |p: &mut dyn FnMut(&str, String), key: &str, v: u64, min: u64, max: u64| {
            if !(min..=max).contains(&v) {
                p(
                    key,
                    format!("must be between {min} and {max} seconds (got {v})"),
                );
            }
        };
        range(p, "acd.ring_timeout_s", self.ring_timeout_s, 5, 300);
        // At least a second: with 0 a seat that refuses at once would be rung in a loop.
        range(p, "acd.retry_no_answer_s", self.retry_no_answer_s, 1, 3600);
        range(p, "acd.retry_busy_s", self.retry_busy_s, 1, 3600);
        range(p, "acd.retry_decline_s", self.retry_decline_s, 1, 3600);
        range(p, "acd.max_wait_s", self.max_wait_s, 5, 3600);
        range(p, "acd.wrap_up_max_s", self.wrap_up_max_s, 0, 3600);
        range(p, "acd.skill_fallback_s", self.skill_fallback_s, 0, 3600);
        range(p, "acd.recording_max_s", self.recording_max_s, 5, 600);
        if self.max_no_answer > 100 {
            p(
                "acd.max_no_answer",
                format!("must be 100 or below (got {})", self.max_no_answer),
            );
        }
    }
}

/// The Prometheus endpoint (issue #9 §2): off unless `listen` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `IP:PORT` serving `GET /metrics`; empty = off.
    pub listen: String,
    /// Allow a non-loopback `listen` (metrics reveal traffic levels; keep them local
    /// unless a firewall or a scraper network is in front).
    pub allow_non_loopback: bool,
}

impl MetricsConfig {
    /// The address to serve on, if metrics are on and the address is valid.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.trim().parse().ok()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Holds the SQLite ledger, the control socket, spools and recordings.
    pub data_dir: PathBuf,
    /// SIGTERM: seconds calls in progress may continue before they are hung up.
    pub shutdown_grace_s: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerConfig {
    /// `sqlite:PATH` or `postgres://…`; empty means `sqlite:<data_dir>/smartdesk.db`.
    pub url: String,
    /// Pool size; PostgreSQL benefits from more, SQLite serialises writes anyway.
    pub max_connections: u32,
    /// PostgreSQL only: calls the local spool holds while the ledger is away; beyond it new
    /// calls get 503.
    pub spool_max_calls: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    pub listen: SocketAddr,
    pub udp: bool,
    pub tcp: bool,
    /// Address written into Via/Contact/SDP when `listen` is a wildcard; empty = derive.
    pub advertised_address: String,
    pub profiles_dir: PathBuf,
    pub t1_ms: u64,
    pub t2_ms: u64,
    pub t4_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    pub media_timeout_s: u64,
    pub prompts_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    pub listen: SocketAddr,
    /// An idle console session ends after this many minutes.
    pub session_idle_minutes: u64,
    /// Operators see the records of the calls they handled in this many past hours.
    pub records_hours: u64,
    /// Addresses the browser phone's ICE host candidates are gathered on (issue #11); empty:
    /// the SIP advertised address. No STUN or TURN server is ever used.
    pub phone_ice_addresses: Vec<std::net::IpAddr>,
}

/// Reports to contractors (issue #7 §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportsConfig {
    /// SMTP relay, `smtp://host:port` (plain SMTP to a local MTA that does TLS onward);
    /// empty: e-mail channels fail and are retried until it is set.
    pub smtp: String,
    /// The sender of report e-mails.
    pub from: String,
    /// Attempts per report and channel before it is marked failed and the admin alerted.
    pub max_attempts: u32,
    /// First retry pause; doubled per attempt up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter directive such as `info` or `smartdesk=debug`.
    pub level: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BillingConfig {
    /// SPEC §6 complaint rule: flag only (false, the company decides) or suspend at once.
    pub auto_suspend_on_complaints: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            daemon: DaemonConfig {
                data_dir: PathBuf::from(DEFAULT_DATA_DIR),
                shutdown_grace_s: DEFAULT_SHUTDOWN_GRACE_S,
            },
            ledger: LedgerConfig {
                url: String::new(),
                max_connections: 8,
                spool_max_calls: DEFAULT_SPOOL_MAX_CALLS,
            },
            sip: SipConfig {
                listen: DEFAULT_SIP_LISTEN.parse().expect("constant address"),
                udp: true,
                tcp: true,
                advertised_address: String::new(),
                profiles_dir: PathBuf::from("./sip-profiles"),
                t1_ms: DEFAULT_T1_MS,
                t2_ms: DEFAULT_T2_MS,
                t4_ms: DEFAULT_T4_MS,
            },
            media: MediaConfig {
                rtp_port_min: DEFAULT_RTP_PORT_MIN,
                rtp_port_max: DEFAULT_RTP_PORT_MAX,
                media_timeout_s: DEFAULT_MEDIA_TIMEOUT_S,
                prompts_dir: PathBuf::from("./prompts"),
            },
            web: WebConfig {
                listen: DEFAULT_WEB_LISTEN.parse().expect("constant address"),
                session_idle_minutes: 60,
                records_hours: 12,
                phone_ice_addresses: Vec::new(),
            },
            reports: ReportsConfig {
                smtp: String::new(),
                from: "smartdesk@localhost".into(),
                // 5 s doubling to 1 h: 20 attempts span about 16 hours.
                max_attempts: 20,
                retry_initial_ms: 5_000,
                retry_max_ms: 3_600_000,
            },
            log: LogConfig {
                format: LogFormat::Human,
                level: "info".into(),
            },
            billing: BillingConfig {
                auto_suspend_on_complaints: false,
            },
            hours: CalendarConfig::default(),
            acd: AcdSection::default(),
            security: SecurityConfig::default(),
            metrics: MetricsConfig {
                listen: String::new(),
                allow_non_loopback: false,
            },
        }
    }
}
impl Default for MetricsConfig {
    fn default() -> Self {
        Config::default().metrics
    }
}
impl Default for DaemonConfig {
    fn default() -> Self {
        Config::default().daemon
    }
}
impl Default for LedgerConfig {
    fn default() -> Self {
        Config::default().ledger
    }
}
impl Default for SipConfig {
    fn default() -> Self {
        Config::default().sip
    }
}
impl Default for MediaConfig {
    fn default() -> Self {
        Config::default().media
    }
}
impl Default for WebConfig {
    fn default() -> Self {
        Config::default().web
    }
}
impl Default for ReportsConfig {
    fn default() -> Self {
        Config::default().reports
    }
}
impl Default for LogConfig {
    fn default() -> Self {
        Config::default().log
    }
}
impl Default for BillingConfig {
    fn default() -> Self {
        Config::default().billing
    }
}

/// One problem found while loading; `origin` is a file path or "the environment".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub origin: String,
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.origin, self.key, self.message)
    }
}

/// All problems at once (issue #2 §2: `check-config` reports **all** errors).
#[derive(Debug, thiserror::Error)]
#[error("{} configuration error(s):\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

type LeafCheck = fn(config::Value) -> Result<(), String>;

fn check<T: serde::de::DeserializeOwned>(v: config::Value) -> Result<(), String> {
    v.try_deserialize::<T>()
        .map(|_| ())
        .map_err(|e| strip_origin(&e.to_string()))
}

/// The `config` crate appends " for key `x` in FILE"; we print origin and key ourselves.
fn strip_origin(msg: &str) -> String {
    match msg.find(" for key `") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Every leaf key with the type it must deserialize to. A unit test keeps this list
/// and the structs above in step (a key missing here would be reported as unknown).
const SCHEMA: &[(&str, LeafCheck)] = &[
    ("daemon.data_dir", check::<PathBuf>),
    ("daemon.shutdown_grace_s", check::<u64>),
    ("metrics.listen", check::<String>),
    ("metrics.allow_non_loopback", check::<bool>),
    ("ledger.url", check::<String>),
    ("ledger.max_connections", check::<u32>),
    ("ledger.spool_max_calls", check::<u64>),
    ("sip.listen", check::<SocketAddr>),
    ("sip.udp", check::<bool>),
    ("sip.tcp", check::<bool>),
    ("sip.advertised_address", check::<String>),
    ("sip.profiles_dir", check::<PathBuf>),
    ("sip.t1_ms", check::<u64>),
    ("sip.t2_ms", check::<u64>),
    ("sip.t4_ms", check::<u64>),
    ("media.rtp_port_min", check::<u16>),
    ("media.rtp_port_max", check::<u16>),
    ("media.media_timeout_s", check::<u64>),
    ("media.prompts_dir", check::<PathBuf>),
    ("web.listen", check::<SocketAddr>),
    ("web.session_idle_minutes", check::<u64>),
    ("web.records_hours", check::<u64>),
    ("web.phone_ice_addresses", check::<Vec<std::net::IpAddr>>),
    ("reports.smtp", check::<String>),
    ("reports.from", check::<String>),
    ("reports.max_attempts", check::<u32>),
    ("reports.retry_initial_ms", check::<u64>),
    ("reports.retry_max_ms", check::<u64>),
    ("log.format", check::<LogFormat>),
    ("log.level", check::<String>),
    ("billing.auto_suspend_on_complaints", check::<bool>),
    // The service calendar is validated as a whole by `hours::CalendarConfig`.
    ("hours", check::<CalendarConfig>),
    ("acd.ring_timeout_s", check::<u64>),
    ("acd.retry_no_answer_s", check::<u64>),
    ("acd.retry_busy_s", check::<u64>),
    ("acd.retry_decline_s", check::<u64>),
    ("acd.max_no_answer", check::<u32>),
    ("acd.max_wait_s", check::<u64>),
    ("acd.wrap_up_max_s", check::<u64>),
    ("acd.skill_fallback_s", check::<u64>),
    ("acd.recording_max_s", check::<u64>),
    ("security", check::<SecurityConfig>),
];

/// Where the configuration comes from.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// `--config FILE`; `None` = `./smartdesk.toml` if present.
    pub file: Option<PathBuf>,
    /// Environment to read `SMARTDESK__*` from; `None` = the process environment.
    /// Tests pass a map so they never mutate the global environment.
    pub env: Option<std::collections::HashMap<String, String>>,
}

impl Config {
    /// Load, merge and validate. Opens no socket and no database.
    pub fn load(source: &ConfigSource) -> Result<(Config, Option<PathBuf>), ConfigErrors> {
        let file = match &source.file {
            Some(f) => {
                if !f.is_file() {
                    return Err(ConfigErrors(vec![ConfigProblem {
                        origin: f.display().to_string(),
                        key: "--config".into(),
                        message: "file not found".into(),
                    }]));
                }
                Some(f.clone())
            }
            None => {
                let p = PathBuf::from(DEFAULT_CONFIG_FILE);
                p.is_file().then_some(p)
            }
        };
        let mut builder = config::Config::builder();
        if let Some(f) = &file {
            builder = builder.add_source(
                config::File::from(f.as_path())
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        let env = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(source.env.as_ref().map(|m| m.clone().into_iter().collect()));
        builder = builder.add_source(env);
        let origin_file = file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "the environment".into());
        let merged = builder.build().map_err(|e| {
            ConfigErrors(vec![ConfigProblem {
                origin: origin_file.clone(),
                key: "(file)".into(),
                message: e.to_string(),
            }])
        })?;
        let cfg = Self::from_tree(merged.cache)?;
        Ok((cfg, file))
    }

    /// Validate a merged tree leaf by leaf, then as a whole; every problem is kept.
    fn from_tree(root: config::Value) -> Result<Config, ConfigErrors> {
        let mut problems = Vec::new();
        let table = match root.kind {
            config::ValueKind::Table(t) => t,
            config::ValueKind::Nil => Default::default(),
            _ => {
                return Err(ConfigErrors(vec![ConfigProblem {
                    origin: "configuration".into(),
                    key: "(root)".into(),
                    message: "expected a table".into(),
                }]))
            }
        };
        let sections: BTreeSet<&str> = SCHEMA
            .iter()
            .map(|(k, _)| k.split('.').next().unwrap_or(k))
            .collect();
        for (section, value) in &table {
            if !sections.contains(section.as_str()) {
                problems.push(problem(value, section, "unknown section"));
                continue;
            }
            if let Some((_, chk)) = SCHEMA.iter().find(|(k, _)| k == section) {
                // a section validated as a whole (e.g. `hours`)
                if let Err(m) = chk(value.clone()) {
                    problems.push(problem(value, section, &m));
                }
                continue;
            }
            let config::ValueKind::Table(inner) = &value.kind else {
                problems.push(problem(value, section, "expected a table"));
                continue;
            };
            for (key, leaf) in inner {
                let path = format!("{section}.{key}");
                match SCHEMA.iter().find(|(k, _)| *k == path) {
                    None => problems.push(problem(leaf, &path, "unknown key")),
                    Some((_, chk)) => {
                        if let Err(m) = chk(leaf.clone()) {
                            problems.push(problem(leaf, &path, &m));
                        }
                    }
                }
            }
        }
        if !problems.is_empty() {
            return Err(ConfigErrors(problems));
        }
        let tree = config::Value::new(None, config::ValueKind::Table(table));
        let cfg: Config = tree.try_deserialize().map_err(|e| {
            ConfigErrors(vec![ConfigProblem {
                origin: "configuration".into(),
                key: "(structure)".into(),
                message: e.to_string(),
            }])
        })?;
        let semantic = cfg.validate();
        if semantic.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigErrors(semantic))
        }
    }

    /// Checks that need more than one key or more than a type.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        let mut p = |key: &str, message: String| {
            out.push(ConfigProblem {
                origin: "configuration".into(),
                key: key.into(),
                message,
            })
        };
        for (key, message) in self.security.problems() {
            p(key, message);
        }
        for ip in &self.web.phone_ice_addresses {
            if ip.is_unspecified() || ip.is_multicast() {
                p(
                    "web.phone_ice_addresses",
                    format!("{ip} is not an address of this host that browsers can reach"),
                );
            }
        }
        if self.media.rtp_port_min >= self.media.rtp_port_max {
            p(
                "media.rtp_port_min",
                format!(
                    "must be below media.rtp_port_max ({} >= {})",
                    self.media.rtp_port_min, self.media.rtp_port_max
                ),
            );
        }
        if self.media.rtp_port_min < 1024 {
            p(
                "media.rtp_port_min",
                "must be 1024 or above (privileged ports)".into(),
            );
        }
        if self.media.rtp_port_min % 2 != 0 {
            p(
                "media.rtp_port_min",
                "must be even (RTP on even ports, RTCP on the next odd one)".into(),
            );
        }
        if !self.sip.udp && !self.sip.tcp {
            p(
                "sip.udp",
                "at least one of sip.udp and sip.tcp must be true".into(),
            );
        }
        if self.sip.t1_ms == 0 || self.sip.t1_ms > 10_000 {
            p("sip.t1_ms", "must be between 1 and 10000".into());
        }
        if self.sip.t2_ms < self.sip.t1_ms {
            p("sip.t2_ms", "must not be below sip.t1_ms".into());
        }
        if self.sip.t4_ms == 0 {
            p("sip.t4_ms", "must be above 0".into());
        }
        if self.media.media_timeout_s < 5 {
            p("media.media_timeout_s", "must be at least 5 seconds".into());
        }
        if !self.sip.advertised_address.is_empty()
            && self
                .sip
                .advertised_address
                .parse::<std::net::IpAddr>()
                .is_err()
        {
            p(
                "sip.advertised_address",
                format!("not an IP address: {:?}", self.sip.advertised_address),
            );
        }
        if self.ledger.max_connections == 0 {
            p("ledger.max_connections", "must be at least 1".into());
        }
        if self.ledger.spool_max_calls == 0 {
            p("ledger.spool_max_calls", "must be at least 1".into());
        }
        let known_scheme = ["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|s| self.ledger.url.starts_with(s));
        if !self.ledger.url.is_empty() && !known_scheme {
            p(
                "ledger.url",
                "must start with sqlite:, postgres:// or postgresql://".into(),
            );
        }
        if self.log.level.trim().is_empty()
            || tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err()
        {
            p(
                "log.level",
                format!("not a log filter: {:?}", self.log.level),
            );
        }
        if self.web.session_idle_minutes == 0 {
            p("web.session_idle_minutes", "must be at least 1".into());
        }
        if !self.reports.smtp.is_empty() && !self.reports.smtp.starts_with("smtp://") {
            p(
                "reports.smtp",
                format!(
                    "must be smtp://HOST:PORT (a relay; TLS onward is the relay's job): {:?}",
                    self.reports.smtp
                ),
            );
        }
        if self.reports.from.parse::<lettre::Address>().is_err() {
            p(
                "reports.from",
                format!("not an e-mail address: {:?}", self.reports.from),
            );
        }
        if self.reports.max_attempts == 0 {
            p("reports.max_attempts", "must be at least 1".into());
        }
        if self.reports.retry_initial_ms == 0
            || self.reports.retry_max_ms < self.reports.retry_initial_ms
        {
            p(
                "reports.retry_initial_ms",
                "must be above 0 and not above reports.retry_max_ms".into(),
            );
        }
        for m in self.hours.validate() {
            p("hours", m);
        }
        self.acd.validate(&mut p);
        if !self.metrics.listen.trim().is_empty() {
            match self.metrics.listen_addr() {
                None => p(
                    "metrics.listen",
                    format!(
                        "not an IP:PORT address: {:?} (empty turns metrics off)",
                        self.metrics.listen
                    ),
                ),
                Some(a) if !a.ip().is_loopback() && !self.metrics.allow_non_loopback => p(
                    "metrics.listen",
                    format!(
                        "{a} is not a loopback address; set metrics.allow_non_loopback = true \
                         to expose metrics beyond this host"
                    ),
                ),
                Some(_) => {}
            }
        }
        if self.daemon.shutdown_grace_s > 3600 {
            p(
                "daemon.shutdown_grace_s",
                "must be at most 3600 seconds".into(),
            );
        }
        out
    }

    /// The ledger URL in force: the configured one, else SQLite in the data directory.
    pub fn ledger_url(&self) -> String {
        if self.ledger.url.is_empty() {
            format!(
                "sqlite:{}",
                self.daemon.data_dir.join(DEFAULT_SQLITE_FILE).display()
            )
        } else {
            self.ledger.url.clone()
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.daemon.data_dir
    }
}

fn problem(v: &config::Value, key: &str, message: &str) -> ConfigProblem {
    ConfigProblem {
        origin: v.origin().unwrap_or("configuration").to_string(),
        key: key.to_string(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load_str(toml_text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("smartdesk.toml");
        std::fs::write(&f, toml_text).expect("write");
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(&ConfigSource {
            file: Some(f),
            env: Some(env),
        })
        .map(|(c, _)| c)
    }

    #[test]
    fn defaults_work_out_of_the_box() {
        let c = load_str("", &[]).expect("defaults are valid");
        assert_eq!(c, Config::default());
        assert_eq!(c.ledger_url(), "sqlite:./data/smartdesk.db");
        assert_eq!(c.sip.listen.to_string(), "0.0.0.0:5060");
        assert_eq!((c.media.rtp_port_min, c.media.rtp_port_max), (20000, 29999));
    }

    #[test]
    fn schema_lists_every_key_of_the_structs() {
        let v = toml::Value::try_from(Config::default()).expect("serialize");
        let mut keys = BTreeSet::new();
        for (section, t) in v.as_table().expect("table") {
            if SCHEMA.iter().any(|(k, _)| k == section) {
                keys.insert(section.clone());
                continue;
            }
            for key in t.as_table().expect("section table").keys() {
                keys.insert(format!("{section}.{key}"));
            }
        }
        let schema: BTreeSet<String> = SCHEMA.iter().map(|(k, _)| k.to_string()).collect();
        assert_eq!(keys, schema);
    }

    #[test]
    fn environment_overrides_file() {
        let c = load_str(
            "[sip]\nlisten = \"127.0.0.1:5070\"\n",
            &[
                ("SMARTDESK__SIP__LISTEN", "127.0.0.1:5080"),
                ("SMARTDESK__MEDIA__RTP_PORT_MIN", "30000"),
                ("SMARTDESK__MEDIA__RTP_PORT_MAX", "30100"),
                ("SMARTDESK_TEST_POSTGRES_URL", "ignored: single underscore"),
            ],
        )
        .expect("valid");
        assert_eq!(c.sip.listen.to_string(), "127.0.0.1:5080");
        assert_eq!(c.media.rtp_port_min, 30000);
    }

    #[test]
    fn all_errors_reported_at_once_with_file_and_key() {
        let err = load_str(
            "[sip]\nlisten = \"nowhere\"\nbogus = 1\n[media]\nrtp_port_min = \"x\"\n[nosuch]\na = 1\n",
            &[("SMARTDESK__WEB__LISTEN", "not-an-addr")],
        )
        .expect_err("invalid");
        let keys: BTreeSet<&str> = err.0.iter().map(|p| p.key.as_str()).collect();
        for k in [
            "sip.listen",
            "sip.bogus",
            "media.rtp_port_min",
            "nosuch",
            "web.listen",
        ] {
            assert!(keys.contains(k), "missing {k} in {err}");
        }
        let web = err.0.iter().find(|p| p.key == "web.listen").expect("web");
        assert_eq!(web.origin, "the environment");
        let sip = err.0.iter().find(|p| p.key == "sip.listen").expect("sip");
        assert!(sip.origin.ends_with("smartdesk.toml"), "{}", sip.origin);
    }

    #[test]
    fn semantic_errors_are_all_reported() {
        let err = load_str(
            "[media]\nrtp_port_min = 30001\nrtp_port_max = 30000\n[sip]\nudp = false\ntcp = false\n[ledger]\nurl = \"mysql://x\"\n",
            &[],
        )
        .expect_err("invalid");
        let keys: Vec<&str> = err.0.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"media.rtp_port_min"));
        assert!(keys.contains(&"sip.udp"));
        assert!(keys.contains(&"ledger.url"));
    }

    #[test]
    fn phone_ice_addresses_must_be_host_addresses() {
        for bad in ["[\"nope\"]", "[\"0.0.0.0\"]", "\"127.0.0.1\""] {
            let err =
                load_str(&format!("[web]\nphone_ice_addresses = {bad}\n"), &[]).expect_err(bad);
            assert!(
                err.0.iter().any(|p| p.key == "web.phone_ice_addresses"),
                "{bad}: {err}"
            );
        }
        let ok = load_str(
            "[web]\nphone_ice_addresses = [\"127.0.0.1\", \"::1\"]\n",
            &[],
        )
        .expect("valid");
        assert_eq!(ok.web.phone_ice_addresses.len(), 2);
    }

    #[test]
    fn acd_section_is_validated_field_by_field() {
        let err = load_str(
            "[acd]\nring_timeout_s = 1\nretry_busy_s = 0\nmax_wait_s = 100000\nmax_no_answer = 1000\nrecording_max_s = 2\n",
            &[],
        )
        .expect_err("invalid");
        let keys: Vec<&str> = err.0.iter().map(|p| p.key.as_str()).collect();
        for k in [
            "acd.ring_timeout_s",
            "acd.retry_busy_s",
            "acd.max_wait_s",
            "acd.max_no_answer",
            "acd.recording_max_s",
        ] {
            assert!(keys.contains(&k), "{k} in {keys:?}");
        }
        let ok = load_str("[acd]\nring_timeout_s = 20\nwrap_up_max_s = 0\n", &[]).unwrap();
        assert_eq!(
            ok.acd.rules().ring_timeout,
            std::time::Duration::from_secs(20)
        );
        assert_eq!(
            Config::default().acd.rules(),
            crate::acd::AcdConfig::default()
        );
        let unknown = load_str("[acd]\nring_timeout = 20\n", &[]).expect_err("unknown key");
        assert!(
            unknown.0.iter().any(|p| p.key.contains("ring_timeout")),
            "{unknown}"
        );
    }

    #[test]
    fn missing_config_file_is_an_error() {
        let err = Config::load(&ConfigSource {
            file: Some("/nonexistent/smartdesk.toml".into()),
            env: Some(HashMap::new()),
        })
        .expect_err("missing");
        assert_eq!(err.0[0].key, "--config");
    }

    #[test]
    fn shipped_example_config_parses() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("smartdesk.example.toml");
        let (c, _) = Config::load(&ConfigSource {
            file: Some(p),
            env: Some(HashMap::new()),
        })
        .expect("example config is valid");
        assert_eq!(c.sip.listen.port(), 5060);
    }
}
