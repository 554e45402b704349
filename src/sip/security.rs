//! Security events in one fail2ban-friendly shape (issue #9 §3).
//!
//! Every event is one line on the `smartdesk::security` target at WARN whose message is
//! `<kind> from <ip>`, e.g. `smartdesk::security: auth_failure from 192.0.2.7 …`. A fail2ban
//! filter needs one regex (see `systemd/fail2ban/`):
//!
//! ```text
//! failregex = smartdesk::security: \S+ from <HOST>
//! ```
//!
//! Only the peer's address is written, never the user name it claimed or a number: the
//! log must not become an oracle for which seat names exist, nor hold callers' data.
//! Callers rate-limit (a flood must not become a log flood); a suppressed line is still
//! counted in metrics.

use std::net::IpAddr;

/// A REGISTER whose digest credentials were wrong (unknown user, bad password, replay).
pub const AUTH_FAILURE: &str = "auth_failure";
/// An INVITE from an address of no configured trunk (403).
pub const ACL_REJECT: &str = "acl_reject";
/// A request from a known scanner User-Agent, dropped unanswered ([`super::guard`]).
pub const SCANNER: &str = "scanner";
/// A source over its request rate, dropped unanswered ([`super::guard`]).
pub const RATE_LIMITED: &str = "rate_limited";
/// A source banned by [`super::guard`] (failed credentials or flooding).
pub const BAN: &str = "ban";

/// Writes one security event line.
pub fn event(kind: &'static str, peer: IpAddr) {
    tracing::warn!(target: "smartdesk::security", kind, peer = %peer, "{kind} from {peer}");
}

/// At most [`PER_SECOND`] lines per unix second for one kind of event.
#[derive(Debug, Clone, Copy, Default)]
pub struct Budget {
    second: u64,
    used: u32,
    suppressed: u64,
}

pub const PER_SECOND: u32 = 20;

impl Budget {
    /// Logs the event unless this second's budget is spent.
    pub fn event(&mut self, unix_second: u64, kind: &'static str, peer: IpAddr) {
        if unix_second != self.second {
            if self.suppressed > 0 {
                tracing::warn!(
                    target: "smartdesk::security",
                    kind,
                    suppressed = self.suppressed,
                    "security events not logged (rate limit)"
                );
            }
            *self = Budget {
                second: unix_second,
                used: 0,
                suppressed: 0,
            };
        }
        if self.used < PER_SECOND {
            self.used += 1;
            event(kind, peer);
        } else {
            self.suppressed += 1;
        }
    }
}
