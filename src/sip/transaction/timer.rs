//! Timer values (RFC 3261 §17 and Table 4 in §A) and timers as data.

use std::time::{Duration, Instant};

use super::error::TsxError;

/// RTT estimate (§17.1.1.1). 500 ms is the RFC default for when the RTT is unknown, which is
/// the case for carrier trunks and softphones alike.
pub const DEFAULT_T1: Duration = Duration::from_millis(500);
/// Cap on non-INVITE request and INVITE response retransmit intervals (§17.1.2.2). 4 s keeps
/// retransmissions from piling up on a congested path.
pub const DEFAULT_T2: Duration = Duration::from_secs(4);
/// Maximum time a message stays in the network (§17.1.2.2); sizes K and I so late duplicates
/// are still absorbed.
pub const DEFAULT_T4: Duration = Duration::from_secs(5);
/// Timer C (§16.6 step 11) "MUST be greater than 3 minutes". A UAC has no RFC bound on how
/// long an INVITE may ring, but an INVITE client transaction in Proceeding must not live
/// forever if every final response is lost, so we borrow the proxy's Timer C as a safety net.
pub const DEFAULT_TIMER_C: Duration = Duration::from_secs(181);
/// Timer D (§17.1.1.2) "at least 32 seconds" over unreliable transports, to absorb the
/// server's retransmitted non-2xx finals (the server gives up after 64·T1 = 32 s).
pub const DEFAULT_TIMER_D: Duration = Duration::from_secs(32);
/// §17.2.1: the INVITE server transaction MUST send 100 Trying if the TU has not answered
/// within 200 ms. Waiting (rather than sending at once) lets a fast TU's 180 stand alone.
pub const DEFAULT_TRYING_DELAY: Duration = Duration::from_millis(200);

/// Upper bound accepted for T1/T2/T4 so that 64·T1 and deadline arithmetic stay far from
/// overflow; values this large are configuration mistakes anyway.
const MAX_BASE_TIMER: Duration = Duration::from_secs(60);
/// Upper bound for Timer C and Timer D for the same reason.
const MAX_LONG_TIMER: Duration = Duration::from_secs(3600);

/// Timer base values for one transport context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerConfig {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
    pub timer_c: Duration,
    /// Timer D for unreliable transports (it is 0 over reliable ones).
    pub timer_d: Duration,
    /// Delay before the layer sends 100 Trying for an unanswered INVITE (§17.2.1).
    /// `Duration::ZERO` sends it as soon as [`super::TransactionLayer::handle_timeout`] runs.
    pub trying_delay: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: DEFAULT_T1,
            t2: DEFAULT_T2,
            t4: DEFAULT_T4,
            timer_c: DEFAULT_TIMER_C,
            timer_d: DEFAULT_TIMER_D,
            trying_delay: DEFAULT_TRYING_DELAY,
        }
    }
}

impl TimerConfig {
    /// Rejects values that break the RFC's relations or the overflow headroom.
    pub fn validate(&self) -> Result<(), TsxError> {
        if self.t1.is_zero() {
            return Err(TsxError::InvalidConfig("t1 must be positive"));
        }
        if self.t2 < self.t1 {
            return Err(TsxError::InvalidConfig("t2 must be at least t1"));
        }
        if self.t1 > MAX_BASE_TIMER || self.t2 > MAX_BASE_TIMER || self.t4 > MAX_BASE_TIMER {
            return Err(TsxError::InvalidConfig(
                "t1, t2 and t4 must be at most 60 s",
            ));
        }
        if self.timer_c > MAX_LONG_TIMER
            || self.timer_d > MAX_LONG_TIMER
            || self.trying_delay > MAX_LONG_TIMER
        {
            return Err(TsxError::InvalidConfig(
                "timer_c, timer_d and trying_delay must be at most 1 h",
            ));
        }
        Ok(())
    }

    /// 64·T1: Timers B, F, H and J over unreliable transports (§17.1.1.2, §17.1.2.2,
    /// §17.2.1, §17.2.2) and the UAS 2xx give-up time (§13.3.1.4).
    pub fn sixty_four_t1(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// The initial value of timer `timer` for the given transport, or `None` when the RFC says
    /// the timer is not used at all (A, E, G over reliable transports).
    pub fn initial(&self, timer: Timer, reliability: Reliability) -> Option<Duration> {
        let reliable = reliability == Reliability::Reliable;
        let zero_if_reliable = |d: Duration| Some(if reliable { Duration::ZERO } else { d });
        match timer {
            Timer::A | Timer::E | Timer::G => (!reliable).then_some(self.t1),
            Timer::B | Timer::F | Timer::H => Some(self.sixty_four_t1()),
            Timer::C => Some(self.timer_c),
            Timer::D => zero_if_reliable(self.timer_d),
            Timer::I | Timer::K => zero_if_reliable(self.t4),
            Timer::J => zero_if_reliable(self.sixty_four_t1()),
            Timer::Trying => Some(self.trying_delay),
        }
    }
}

/// Whether the transport retransmits for us (§17: TCP/TLS/SCTP) or not (UDP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reliability {
    Reliable,
    Unreliable,
}

/// The RFC 3261 transaction timers (§A, Table 4), plus Timer C (§16.6) and the 200 ms
/// 100-Trying rule (§17.2.1), which has no letter in the RFC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// INVITE request retransmit interval (UDP only).
    A,
    /// INVITE transaction timeout.
    B,
    /// INVITE client: Proceeding safety net (see [`DEFAULT_TIMER_C`]).
    C,
    /// Wait time for INVITE response retransmits.
    D,
    /// non-INVITE request retransmit interval (UDP only).
    E,
    /// non-INVITE transaction timeout.
    F,
    /// INVITE response retransmit interval (UDP only).
    G,
    /// Wait time for ACK receipt.
    H,
    /// Wait time for ACK retransmits.
    I,
    /// Wait time for non-INVITE request retransmits.
    J,
    /// Wait time for non-INVITE response retransmits.
    K,
    /// Send 100 Trying if the TU has not answered an INVITE yet.
    Trying,
}

impl Timer {
    /// Retransmission timers share one slot and lifetime timers the other; no state arms two
    /// of the same kind at once (§17 figures 5–8).
    fn slot(self) -> usize {
        match self {
            Timer::A | Timer::E | Timer::G => 0,
            _ => 1,
        }
    }

    /// Ordering for deadlines that coincide: a timer ending the transaction (B, F, H) must win
    /// over a retransmission due at the same instant, which would be pointless.
    pub(crate) fn priority(self) -> u8 {
        match self.slot() {
            0 => 1,
            _ => 0,
        }
    }
}

/// The (at most two) timers armed on one transaction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ArmedTimers {
    slots: [Option<(Timer, Instant)>; 2],
}

impl ArmedTimers {
    pub(crate) fn arm(&mut self, timer: Timer, at: Instant) {
        if let Some(slot) = self.slots.get_mut(timer.slot()) {
            *slot = Some((timer, at));
        }
    }

    pub(crate) fn disarm(&mut self, timer: Timer) {
        if let Some(slot) = self.slots.get_mut(timer.slot()) {
            if matches!(slot, Some((t, _)) if *t == timer) {
                *slot = None;
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.slots = [None, None];
    }

    pub(crate) fn is_armed_at(&self, timer: Timer, at: Instant) -> bool {
        self.slots
            .get(timer.slot())
            .is_some_and(|slot| *slot == Some((timer, at)))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (Timer, Instant)> + '_ {
        self.slots.iter().flatten().copied()
    }
}

/// `now + d`, saturating at `now` only in the unreachable case of overflowing the platform
/// clock (durations are capped by [`TimerConfig::validate`]).
pub(crate) fn deadline(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_rfc_values() {
        let c = TimerConfig::default();
        assert_eq!(c.t1, Duration::from_millis(500));
        assert_eq!(c.t2, Duration::from_secs(4));
        assert_eq!(c.t4, Duration::from_secs(5));
        assert_eq!(c.sixty_four_t1(), Duration::from_secs(32));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn reliable_transports_drop_retransmit_timers_and_zero_wait_timers() {
        let c = TimerConfig::default();
        for t in [Timer::A, Timer::E, Timer::G] {
            assert_eq!(c.initial(t, Reliability::Reliable), None);
            assert_eq!(c.initial(t, Reliability::Unreliable), Some(c.t1));
        }
        for t in [Timer::D, Timer::I, Timer::J, Timer::K] {
            assert_eq!(c.initial(t, Reliability::Reliable), Some(Duration::ZERO));
        }
        assert_eq!(
            c.initial(Timer::D, Reliability::Unreliable),
            Some(Duration::from_secs(32))
        );
        assert_eq!(c.initial(Timer::I, Reliability::Unreliable), Some(c.t4));
        assert_eq!(c.initial(Timer::K, Reliability::Unreliable), Some(c.t4));
        assert_eq!(
            c.initial(Timer::J, Reliability::Unreliable),
            Some(Duration::from_secs(32))
        );
        for t in [Timer::B, Timer::F, Timer::H] {
            assert_eq!(
                c.initial(t, Reliability::Reliable),
                Some(Duration::from_secs(32))
            );
        }
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let zero = TimerConfig {
            t1: Duration::ZERO,
            ..TimerConfig::default()
        };
        assert!(zero.validate().is_err());
        let inverted = TimerConfig {
            t2: Duration::from_millis(100),
            ..TimerConfig::default()
        };
        assert!(inverted.validate().is_err());
        let huge = TimerConfig {
            timer_c: Duration::from_secs(u64::MAX),
            ..TimerConfig::default()
        };
        assert!(huge.validate().is_err());
    }

    #[test]
    fn armed_timers_keep_one_retransmit_and_one_lifetime_timer() {
        let base = Instant::now();
        let mut armed = ArmedTimers::default();
        armed.arm(Timer::A, base);
        armed.arm(Timer::B, base);
        assert!(armed.is_armed_at(Timer::A, base));
        armed.disarm(Timer::E);
        assert!(armed.is_armed_at(Timer::A, base));
        armed.disarm(Timer::A);
        assert!(!armed.is_armed_at(Timer::A, base));
        assert_eq!(armed.iter().count(), 1);
    }
}
