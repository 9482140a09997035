//! The sliding replay window for transport counters.
//!
//! Read first: WireGuard paper §5.4.6 ("the receiver ... must keep track of
//! the counters it has seen, using a sliding window") and RFC 6479 (the
//! bitmap ring this follows: blocks of 64 bits, whole blocks cleared as the
//! window advances, so advancing costs at most one pass over the ring).

use crate::timers::REJECT_AFTER_MESSAGES;

const BLOCK_BITS: u64 = 64;
const BLOCK_BITS_LOG: u32 = 6;
const RING_BLOCKS: usize = 64;
const BLOCK_MASK: u64 = RING_BLOCKS as u64 - 1;
const BIT_MASK: u64 = BLOCK_BITS - 1;

/// How far behind the newest counter an unseen counter is still accepted:
/// 4032 packets (RFC 6479 keeps one block of the ring as slack).
pub const WINDOW_SIZE: u64 = (RING_BLOCKS as u64 - 1) * BLOCK_BITS;

/// A replay filter over 64-bit message counters.
#[derive(Clone)]
pub struct ReplayWindow {
    last: u64,
    ring: [u64; RING_BLOCKS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl ReplayWindow {
    /// An empty window (no counter seen yet).
    pub const fn new() -> Self {
        ReplayWindow {
            last: 0,
            ring: [0; RING_BLOCKS],
        }
    }

    /// Whether `counter` would be accepted, without recording it. Use this
    /// before authenticating a packet and [`ReplayWindow::update`] after.
    #[inline]
    pub fn check(&self, counter: u64) -> bool {
        if counter >= REJECT_AFTER_MESSAGES {
            return false;
        }
        if counter > self.last {
            return true;
        }
        if self.last - counter > WINDOW_SIZE {
            return false;
        }
        let block = ((counter >> BLOCK_BITS_LOG) & BLOCK_MASK) as usize;
        self.ring[block] & (1 << (counter & BIT_MASK)) == 0
    }

    /// Records `counter`; returns false (and changes nothing) if it is a
    /// replay, too old, or beyond `REJECT_AFTER_MESSAGES`.
    #[inline]
    pub fn update(&mut self, counter: u64) -> bool {
        if counter >= REJECT_AFTER_MESSAGES {
            return false;
        }
        let index = counter >> BLOCK_BITS_LOG;
        if counter > self.last {
            let current = self.last >> BLOCK_BITS_LOG;
            let diff = (index - current).min(RING_BLOCKS as u64);
            for i in current + 1..=current + diff {
                self.ring[(i & BLOCK_MASK) as usize] = 0;
            }
            self.last = counter;
        } else if self.last - counter > WINDOW_SIZE {
            return false;
        }
        let block = (index & BLOCK_MASK) as usize;
        let bit = 1u64 << (counter & BIT_MASK);
        let old = self.ring[block];
        self.ring[block] = old | bit;
        old & bit == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_window() {
        let mut w = ReplayWindow::new();
        assert!(w.update(0));
        assert!(!w.update(0));
        assert!(w.update(5000));
        assert!(!w.check(5000 - WINDOW_SIZE - 1));
        assert!(w.check(5000 - WINDOW_SIZE));
        assert!(w.update(4999));
        assert!(!w.update(4999));
        assert!(!w.update(REJECT_AFTER_MESSAGES));
    }
}
