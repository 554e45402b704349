//! `[security]`: the SIP front door's limits (see [`crate::sip::guard`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::sip::guard::GuardConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// New INVITEs + OPTIONS per second from one source that is no trunk (0 = unlimited).
    pub request_rate: f64,
    pub request_burst: f64,
    /// The same for a configured trunk address (0 = unlimited).
    pub trunk_rate: f64,
    pub trunk_burst: f64,
    /// REGISTERs per second from one source (0 = unlimited). The default admits 500 seats
    /// behind one NAT address re-registering within a few seconds.
    pub register_rate: f64,
    pub register_burst: f64,
    /// Failed digest credentials from one source within `failure_window_s` that ban it.
    pub ban_after_auth_failures: u32,
    /// Requests dropped by the rate limits within `failure_window_s` that ban the source.
    pub ban_after_drops: u32,
    pub failure_window_s: u64,
    pub ban_s: u64,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        let g = GuardConfig::default();
        SecurityConfig {
            request_rate: g.request_rate,
            request_burst: g.request_burst,
            trunk_rate: g.trunk_rate,
            trunk_burst: g.trunk_burst,
            register_rate: g.register_rate,
            register_burst: g.register_burst,
            ban_after_auth_failures: g.ban_after_auth_failures,
            ban_after_drops: g.ban_after_drops,
            failure_window_s: g.failure_window.as_secs(),
            ban_s: g.ban_duration.as_secs(),
        }
    }
}

impl SecurityConfig {
    /// Problems as `(key, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (key, v) in [
            ("security.request_rate", self.request_rate),
            ("security.request_burst", self.request_burst),
            ("security.trunk_rate", self.trunk_rate),
            ("security.trunk_burst", self.trunk_burst),
            ("security.register_rate", self.register_rate),
            ("security.register_burst", self.register_burst),
        ] {
            if !v.is_finite() || v < 0.0 {
                out.push((
                    key,
                    format!("must be a number ≥ 0 (0 = unlimited), not {v}"),
                ));
            }
        }
        for (key, rate, burst) in [
            (
                "security.request_burst",
                self.request_rate,
                self.request_burst,
            ),
            ("security.trunk_burst", self.trunk_rate, self.trunk_burst),
            (
                "security.register_burst",
                self.register_rate,
                self.register_burst,
            ),
        ] {
            if rate > 0.0 && burst < 1.0 {
                out.push((
                    key,
                    "must be at least 1 when the rate is limited".to_owned(),
                ));
            }
        }
        if self.ban_after_auth_failures == 0 {
            out.push((
                "security.ban_after_auth_failures",
                "must be at least 1".to_owned(),
            ));
        }
        if self.ban_after_drops == 0 {
            out.push(("security.ban_after_drops", "must be at least 1".to_owned()));
        }
        if self.failure_window_s == 0 {
            out.push(("security.failure_window_s", "must be at least 1".to_owned()));
        }
        out
    }

    pub fn guard(&self) -> GuardConfig {
        // 0 = unlimited: a rate no source can reach.
        let limit = |rate: f64, burst: f64| {
            if rate == 0.0 {
                (f64::MAX / 4.0, f64::MAX / 4.0)
            } else {
                (rate, burst)
            }
        };
        let (request_rate, request_burst) = limit(self.request_rate, self.request_burst);
        let (trunk_rate, trunk_burst) = limit(self.trunk_rate, self.trunk_burst);
        let (register_rate, register_burst) = limit(self.register_rate, self.register_burst);
        GuardConfig {
            request_rate,
            request_burst,
            trunk_rate,
            trunk_burst,
            register_rate,
            register_burst,
            ban_after_auth_failures: self.ban_after_auth_failures,
            ban_after_drops: self.ban_after_drops,
            failure_window: Duration::from_secs(self.failure_window_s),
            ban_duration: Duration::from_secs(self.ban_s),
            ..GuardConfig::default()
        }
    }
}
