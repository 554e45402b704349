//! Nonce-count replay window (RFC 2617 §3.2.2: the server "can" reject a repeated `nc`; we do).
//!
//! Remembers, for recently used nonces, the highest `nc` accepted. Memory is hard-capped at
//! [`REPLAY_WINDOW_CAPACITY`] entries. The invariant that matters is *never accept the same
//! (nonce, nc) twice*, even after forgetting: every entry that leaves the window raises a
//! `floor` to its issue time, and a nonce not in the window but issued at or before the floor
//! may have been seen, so it is refused as stale (the client retries with a fresh nonce, issued
//! after the floor). Forgetting therefore costs a round trip, never security.

use std::collections::{HashMap, VecDeque};

use super::nonce::NonceKey;

/// Hard cap on remembered nonces. Each entry is ~60 bytes across the map and the queue, so the
/// window stays under ~5 MB. 65,536 nonces in one [`super::NONCE_LIFETIME_SECS`] is far beyond
/// what a seat pool produces (a few REGISTER/INVITE per seat per lifetime); reaching it means a
/// flood of *authenticated* requests, and then degrading to extra challenges is the right cost.
pub const REPLAY_WINDOW_CAPACITY: usize = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NcCheck {
    /// First time this (nonce, nc) is seen with a higher nc than before: accept.
    Fresh,
    /// nc not higher than one already accepted for this nonce: reject.
    Replay,
    /// The window may have forgotten this nonce: answer stale.
    Forgotten,
}

#[derive(Debug)]
pub(crate) struct ReplayWindow {
    highest_nc: HashMap<NonceKey, u32>,
    /// Insertion order with issue time, oldest first; the eviction order.
    order: VecDeque<(NonceKey, u64)>,
    capacity: usize,
    floor: Option<u64>,
}

impl ReplayWindow {
    pub(crate) fn new(capacity: usize) -> Self {
        ReplayWindow {
            highest_nc: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            floor: None,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    /// Records `nc` for the nonce if it is strictly higher than anything accepted before.
    /// Call only after the digest response has been verified, so that unauthenticated requests
    /// cannot push a legitimate client's nonce-count out of reach.
    pub(crate) fn check_and_record(
        &mut self,
        key: NonceKey,
        issued_at: u64,
        nc: u32,
        now: u64,
        lifetime: u64,
    ) -> NcCheck {
        self.drop_expired(now, lifetime);
        if let Some(highest) = self.highest_nc.get_mut(&key) {
            return if nc > *highest {
                *highest = nc;
                NcCheck::Fresh
            } else {
                NcCheck::Replay
            };
        }
        if self.floor.is_some_and(|f| issued_at <= f) {
            return NcCheck::Forgotten;
        }
        while self.order.len() >= self.capacity {
            self.evict_oldest();
        }
        self.highest_nc.insert(key, nc);
        self.order.push_back((key, issued_at));
        NcCheck::Fresh
    }

    /// Entries whose nonce has expired are useless (the age check refuses them first).
    fn drop_expired(&mut self, now: u64, lifetime: u64) {
        while self
            .order
            .front()
            .is_some_and(|(_, issued)| now.saturating_sub(*issued) > lifetime)
        {
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        if let Some((key, issued)) = self.order.pop_front() {
            self.highest_nc.remove(&key);
            self.floor = Some(self.floor.map_or(issued, |f| f.max(issued)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn key(n: u8) -> NonceKey {
        [n; 24]
    }

    #[test]
    fn nc_must_strictly_increase() {
        let mut w = ReplayWindow::new(8);
        assert_eq!(w.check_and_record(key(1), 100, 1, 100, 300), NcCheck::Fresh);
        assert_eq!(
            w.check_and_record(key(1), 100, 1, 100, 300),
            NcCheck::Replay
        );
        assert_eq!(w.check_and_record(key(1), 100, 3, 100, 300), NcCheck::Fresh);
        assert_eq!(
            w.check_and_record(key(1), 100, 2, 100, 300),
            NcCheck::Replay
        );
        assert_eq!(w.check_and_record(key(2), 100, 1, 100, 300), NcCheck::Fresh);
    }

    #[test]
    fn capacity_is_a_hard_bound_and_eviction_never_reaccepts() {
        let mut w = ReplayWindow::new(4);
        for i in 0..4u8 {
            assert_eq!(
                w.check_and_record(key(i), 100 + u64::from(i), 1, 110, 300),
                NcCheck::Fresh
            );
        }
        // A fifth nonce evicts key(0), issued at 100.
        assert_eq!(w.check_and_record(key(9), 104, 1, 110, 300), NcCheck::Fresh);
        assert_eq!(w.len(), 4);
        // key(0) was used with nc=1; replaying it must not be accepted.
        assert_eq!(
            w.check_and_record(key(0), 100, 1, 110, 300),
            NcCheck::Forgotten
        );
        assert_eq!(
            w.check_and_record(key(0), 100, 2, 110, 300),
            NcCheck::Forgotten
        );
        // Nonces issued after the floor are still new.
        assert_eq!(
            w.check_and_record(key(10), 105, 1, 110, 300),
            NcCheck::Fresh
        );
        assert_eq!(w.len(), 4);
    }

    #[test]
    fn expired_entries_are_dropped() {
        let mut w = ReplayWindow::new(100);
        w.check_and_record(key(1), 100, 1, 100, 300);
        w.check_and_record(key(2), 200, 1, 200, 300);
        w.check_and_record(key(3), 450, 1, 450, 300);
        assert_eq!(w.len(), 2);
    }

    proptest! {
        /// The security invariant: whatever the order, clock and capacity, a (nonce, nc) pair
        /// is accepted at most once, and the window never exceeds its capacity.
        #[test]
        fn never_accepts_a_pair_twice(
            cap in 1usize..6,
            ops in proptest::collection::vec((0u8..10, 0u32..6, 0u64..40), 1..200),
        ) {
            let mut w = ReplayWindow::new(cap);
            let mut accepted = HashSet::new();
            let mut now = 1000u64;
            for (k, nc, dt) in ops {
                now += dt / 10;
                let issued = 1000 + u64::from(k) * 3;
                if w.check_and_record(key(k), issued, nc, now, 30) == NcCheck::Fresh {
                    prop_assert!(accepted.insert((k, nc)), "accepted twice: {:?}", (k, nc));
                }
                prop_assert!(w.len() <= cap);
            }
        }
    }
}
