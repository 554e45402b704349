//! RTP port allocation for the media anchor.
//!
//! RTP uses an even port and RTCP the next odd one (RFC 3550 §11). Ports are handed out from a
//! FIFO of free pairs: a released pair goes to the back of the queue, so it is reused as late as
//! possible and stray packets of a finished call are unlikely to land in a new call's session.
//! Allocate and release are O(1); an `in_use` bitmap makes a double release an error instead of
//! a duplicate queue entry (which would later hand the same port to two calls).

use std::collections::VecDeque;

/// Errors from the port allocator.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PortError {
    #[error("port range {0}..={1} holds no even/odd RTP/RTCP pair")]
    EmptyRange(u16, u16),
    #[error("no free RTP port left")]
    Exhausted,
    #[error("port {0} is not an allocated RTP port of this range")]
    NotAllocated(u16),
}

/// An even RTP port; its RTCP port is the next one up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RtpPort(u16);

impl RtpPort {
    /// The RTP port number.
    pub fn get(self) -> u16 {
        self.0
    }

    /// RTCP port: RTP + 1 (RFC 3550 §11).
    pub fn rtcp(self) -> u16 {
        // Allocator ranges end at most at 65534/65535, so this cannot overflow.
        self.0.saturating_add(1)
    }
}

/// Hands out RTP/RTCP port pairs from a configured range.
/// The edge's say on a pair before the sans-IO core hands it out. The core cannot bind a
/// socket, and a pair of our range may be held by another process; the edge opens (binds)
/// the pair when asked, keeps the sockets for the relay that will use them, and the core
/// moves on to the next pair when the edge cannot.
pub trait PortGate: Send {
    /// Open RTP and RTCP of `port`; false if the edge cannot.
    fn open(&mut self, port: u16) -> bool;
    /// The pair was given back without a relay taking its sockets: close what `open` kept.
    fn close(&mut self, port: u16);
}

#[derive(Debug, Clone)]
pub struct PortAllocator {
    first: u16,
    free: VecDeque<u16>,
    in_use: Vec<bool>,
    used: usize,
}

impl PortAllocator {
    /// Pairs are the even ports `p` with `first <= p` and `p + 1 <= last`.
    pub fn new(first: u16, last: u16) -> Result<Self, PortError> {
        let start = first
            .checked_add(first & 1)
            .ok_or(PortError::EmptyRange(first, last))?;
        let ports: VecDeque<u16> = (u32::from(start)..u32::from(last))
            .step_by(2)
            .filter_map(|p| u16::try_from(p).ok())
            .collect();
        if ports.is_empty() {
            return Err(PortError::EmptyRange(first, last));
        }
        Ok(Self {
            first: start,
            in_use: vec![false; ports.len()],
            free: ports,
            used: 0,
        })
    }

    /// Total number of pairs in the range.
    pub fn capacity(&self) -> usize {
        self.in_use.len()
    }

    /// Pairs currently handed out.
    pub fn in_use(&self) -> usize {
        self.used
    }

    /// Take the least recently released free pair.
    pub fn allocate(&mut self) -> Result<RtpPort, PortError> {
        self.allocate_usable(1, |_| true)
    }

    /// Take the least recently released free pair that `usable` accepts, looking at no more
    /// than `tries` pairs. A refused pair stays free and goes to the back (another process
    /// may hold it now and let go of it later).
    pub fn allocate_usable(
        &mut self,
        tries: usize,
        mut usable: impl FnMut(u16) -> bool,
    ) -> Result<RtpPort, PortError> {
        for _ in 0..tries.min(self.free.len()) {
            let port = self.free.pop_front().ok_or(PortError::Exhausted)?;
            if usable(port) {
                if let Some(slot) = self.slot(port) {
                    *slot = true;
                }
                self.used += 1;
                return Ok(RtpPort(port));
            }
            self.free.push_back(port);
        }
        Err(PortError::Exhausted)
    }

    /// Give a pair back. Releasing a port that is not currently allocated is an error and
    /// changes nothing.
    pub fn release(&mut self, port: RtpPort) -> Result<(), PortError> {
        match self.slot(port.0) {
            Some(slot) if *slot => {
                *slot = false;
                self.used -= 1;
                self.free.push_back(port.0);
                Ok(())
            }
            _ => Err(PortError::NotAllocated(port.0)),
        }
    }

    fn slot(&mut self, port: u16) -> Option<&mut bool> {
        let off = port.checked_sub(self.first)?;
        if off & 1 == 1 {
            return None;
        }
        self.in_use.get_mut(usize::from(off / 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn pairs_are_even_and_in_range() {
        let mut a = PortAllocator::new(10_001, 10_010).unwrap();
        assert_eq!(a.capacity(), 4); // 10002, 10004, 10006, 10008 (10010 has no RTCP port)
        let p = a.allocate().unwrap();
        assert_eq!((p.get(), p.rtcp()), (10_002, 10_003));
        let mut all = vec![p];
        while let Ok(p) = a.allocate() {
            all.push(p);
        }
        assert_eq!(
            all.iter().map(|p| p.get()).collect::<Vec<_>>(),
            [10_002, 10_004, 10_006, 10_008]
        );
        assert_eq!(a.allocate(), Err(PortError::Exhausted));
        assert_eq!(a.in_use(), 4);
    }

    #[test]
    fn release_goes_to_the_back_and_rejects_doubles() {
        let mut a = PortAllocator::new(20_000, 20_005).unwrap();
        let p0 = a.allocate().unwrap();
        a.release(p0).unwrap();
        assert_eq!(a.release(p0), Err(PortError::NotAllocated(20_000)));
        assert_eq!(
            a.release(RtpPort(20_001)),
            Err(PortError::NotAllocated(20_001))
        );
        assert_eq!(
            a.release(RtpPort(30_000)),
            Err(PortError::NotAllocated(30_000))
        );
        assert_eq!(a.allocate().unwrap().get(), 20_002);
        assert_eq!(a.allocate().unwrap().get(), 20_004);
        assert_eq!(a.allocate().unwrap().get(), 20_000);
    }

    #[test]
    fn unusable_pairs_are_skipped_and_stay_free() {
        let mut a = PortAllocator::new(20_000, 20_007).unwrap();
        let p = a
            .allocate_usable(8, |p| p != 20_000 && p != 20_002)
            .unwrap();
        assert_eq!(p.get(), 20_004);
        assert_eq!(a.in_use(), 1);
        // The skipped pairs went to the back, still free.
        assert_eq!(a.allocate().unwrap().get(), 20_006);
        assert_eq!(a.allocate().unwrap().get(), 20_000);
        // Bounded: nothing usable within the tries is Exhausted, and changes nothing.
        assert_eq!(a.allocate_usable(5, |_| false), Err(PortError::Exhausted));
        assert_eq!(a.in_use(), 3);
        assert_eq!(a.allocate().unwrap().get(), 20_002);
    }

    #[test]
    fn bad_ranges() {
        assert_eq!(
            PortAllocator::new(5, 5).unwrap_err(),
            PortError::EmptyRange(5, 5)
        );
        assert!(PortAllocator::new(65_535, 65_535).is_err());
        assert_eq!(PortAllocator::new(65_534, 65_535).unwrap().capacity(), 1);
        assert!(PortAllocator::new(100, 50).is_err());
    }

    proptest! {
        #[test]
        fn never_double_allocates(
            first in 1024u16..1100,
            len in 2u16..40,
            ops in proptest::collection::vec((any::<bool>(), any::<usize>()), 0..200),
        ) {
            let mut a = PortAllocator::new(first, first + len).unwrap();
            let cap = a.capacity();
            let mut held: Vec<RtpPort> = Vec::new();
            for (alloc, pick) in ops {
                if alloc {
                    match a.allocate() {
                        Ok(p) => {
                            prop_assert!(!held.contains(&p), "double allocation of {:?}", p);
                            prop_assert_eq!(p.get() % 2, 0);
                            prop_assert!(p.get() >= first && p.rtcp() <= first + len);
                            held.push(p);
                        }
                        Err(e) => {
                            prop_assert_eq!(e, PortError::Exhausted);
                            prop_assert_eq!(held.len(), cap);
                        }
                    }
                } else if !held.is_empty() {
                    let p = held.swap_remove(pick % held.len());
                    prop_assert!(a.release(p).is_ok());
                    prop_assert!(a.release(p).is_err());
                }
                prop_assert_eq!(a.in_use(), held.len());
            }
            // Releasing everything returns the full capacity.
            for p in held.drain(..) {
                prop_assert!(a.release(p).is_ok());
            }
            prop_assert_eq!(a.in_use(), 0);
            let mut seen = HashSet::new();
            for _ in 0..cap {
                prop_assert!(seen.insert(a.allocate().unwrap()));
            }
            prop_assert!(a.allocate().is_err());
        }
    }
}
