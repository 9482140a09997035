//! The longest-prefix-match structure: built once per config, then
//! lookups that never allocate.
//!
//! The prefixes of one address family split the address space into at
//! most `2n + 1` intervals, each covered by one innermost prefix (or none).
//! The table keeps the sorted interval starts and, per interval, the id of
//! its innermost prefix; every prefix knows its parent (the next shorter
//! prefix containing it), so a lookup can walk outwards when the innermost
//! prefix's entries do not match. A lookup reads one slot of a direct index
//! on the top (up to 16) address bits, then binary-searches the few
//! intervals of that bucket.

use std::fmt::Debug;

/// "No prefix" in slot and parent arrays.
const NONE: u32 = u32::MAX;

/// Most bits of the direct index (65,537 slots of 4 bytes).
const MAX_INDEX_BITS: u32 = 16;

/// An address of one family as an unsigned integer (`u32` for IPv4,
/// `u128` for IPv6).
pub(crate) trait Bits: Copy + Ord + Debug {
    /// Address width in bits.
    const BITS: u32;
    /// The all-zero address.
    const ZERO: Self;
    /// The first address of the prefix `self/len`.
    fn first(self, len: u8) -> Self;
    /// The last address of the prefix `self/len`.
    fn last(self, len: u8) -> Self;
    /// `self + 1`, or `None` past the last address.
    fn checked_inc(self) -> Option<Self>;
    /// The top `bits` bits as an index (`bits <= 16`).
    fn top(self, bits: u32) -> usize;
}

macro_rules! impl_bits {
    ($t:ty) => {
        impl Bits for $t {
            const BITS: u32 = <$t>::BITS;
            const ZERO: Self = 0;
            #[inline]
            fn first(self, len: u8) -> Self {
                self & !<$t>::MAX.checked_shr(u32::from(len)).unwrap_or(0)
            }
            #[inline]
            fn last(self, len: u8) -> Self {
                self | <$t>::MAX.checked_shr(u32::from(len)).unwrap_or(0)
            }
            #[inline]
            fn checked_inc(self) -> Option<Self> {
                self.checked_add(1)
            }
            #[inline]
            fn top(self, bits: u32) -> usize {
                if bits == 0 {
                    0
                } else {
                    // bits <= 16, so the shifted value fits in usize.
                    (self >> (Self::BITS - bits)) as usize
                }
            }
        }
    };
}

impl_bits!(u32);
impl_bits!(u128);

/// A static longest-prefix-match table over prefixes identified by their
/// position in the slice given to [`Lpm::build`].
#[derive(Debug, Clone)]
pub(crate) struct Lpm<A> {
    /// Sorted starts of the intervals; `starts[0]` is the zero address.
    starts: Vec<A>,
    /// Innermost prefix id of each interval, or `NONE`.
    slots: Vec<u32>,
    /// `index[b]`: the first interval whose start has top bits `>= b`;
    /// `2^index_bits + 1` entries.
    index: Vec<u32>,
    /// Width of the direct index.
    index_bits: u32,
    /// Parent prefix id of each prefix, or `NONE`.
    parents: Vec<u32>,
}

impl<A: Bits> Lpm<A> {
    /// Builds the table for `prefixes` as `(first address, length)`, with
    /// host bits already clear and no duplicates. Prefix ids are positions
    /// in the slice; there must be fewer than `u32::MAX` of them.
    pub(crate) fn build(prefixes: &[(A, u8)]) -> Self {
        let count = u32::try_from(prefixes.len()).unwrap_or(NONE - 1);
        let mut order: Vec<u32> = (0..count).collect();
        order.sort_unstable_by_key(|&i| prefixes[i as usize]);

        let mut starts: Vec<A> = Vec::with_capacity(prefixes.len() * 2 + 1);
        let mut slots: Vec<u32> = Vec::with_capacity(prefixes.len() * 2 + 1);
        let mut parents = vec![NONE; count as usize];
        let mut emit = |at: A, slot: u32| {
            if slots.last() != Some(&slot) {
                starts.push(at);
                slots.push(slot);
            }
        };
        // Open prefixes, outermost first, with their last address.
        let mut stack: Vec<(u32, A)> = Vec::new();
        // The first address not yet assigned to an interval.
        let mut cur: Option<A> = Some(A::ZERO);
        for &id in &order {
            let (start, len) = prefixes[id as usize];
            debug_assert_eq!(start, start.first(len), "host bits must be clear");
            while let Some(&(top, top_end)) = stack.last() {
                if top_end >= start {
                    break;
                }
                if let Some(c) = cur.filter(|&c| c <= top_end) {
                    emit(c, top);
                }
                cur = top_end.checked_inc();
                stack.pop();
            }
            let enclosing = stack.last().map_or(NONE, |&(t, _)| t);
            if let Some(c) = cur.filter(|&c| c < start) {
                emit(c, enclosing);
            }
            cur = Some(start);
            parents[id as usize] = enclosing;
            stack.push((id, start.last(len)));
        }
        while let Some((top, top_end)) = stack.pop() {
            if let Some(c) = cur.filter(|&c| c <= top_end) {
                emit(c, top);
            }
            cur = top_end.checked_inc();
        }
        if let Some(c) = cur {
            emit(c, NONE);
        }

        let index_bits = usize::BITS - starts.len().saturating_sub(1).leading_zeros();
        let index_bits = index_bits.min(MAX_INDEX_BITS).min(A::BITS);
        let buckets = 1usize << index_bits;
        let mut index = Vec::with_capacity(buckets + 1);
        let mut i = 0usize;
        for b in 0..=buckets {
            while i < starts.len() && starts[i].top(index_bits) < b {
                i += 1;
            }
            index.push(u32::try_from(i).unwrap_or(NONE));
        }
        starts.shrink_to_fit();
        slots.shrink_to_fit();
        Lpm {
            starts,
            slots,
            index,
            index_bits,
            parents,
        }
    }

    /// The id of the longest prefix containing `addr`, if any.
    #[inline]
    pub(crate) fn innermost(&self, addr: A) -> Option<u32> {
        let b = addr.top(self.index_bits);
        // Every interval before index[b] starts below addr's bucket, and
        // starts[0] is zero, so `lo` is always a candidate.
        let lo = (self.index[b] as usize).saturating_sub(1);
        let hi = self.index[b + 1] as usize;
        let mut base = lo;
        let mut len = hi.saturating_sub(lo);
        while len > 1 {
            let half = len / 2;
            if self.starts[base + half] <= addr {
                base += half;
            }
            len -= half;
        }
        let slot = self.slots[base];
        (slot != NONE).then_some(slot)
    }

    /// The prefixes containing `addr`, longest first.
    #[inline]
    pub(crate) fn chain(&self, addr: A) -> Chain<'_> {
        Chain {
            parents: &self.parents,
            next: self.innermost(addr).unwrap_or(NONE),
        }
    }

    /// Number of intervals (for tests and sizing).
    #[cfg(test)]
    pub(crate) fn intervals(&self) -> usize {
        self.starts.len()
    }
}

/// Iterator over the prefixes containing an address, longest first.
#[derive(Debug, Clone)]
pub(crate) struct Chain<'a> {
    parents: &'a [u32],
    next: u32,
}

impl Iterator for Chain<'_> {
    type Item = u32;
    #[inline]
    fn next(&mut self) -> Option<u32> {
        let id = self.next;
        if id == NONE {
            return None;
        }
        self.next = self.parents.get(id as usize).copied().unwrap_or(NONE);
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn masks() {
        assert_eq!(0x0a01_0203u32.first(8), 0x0a00_0000);
        assert_eq!(0x0a01_0203u32.last(8), 0x0aff_ffff);
        assert_eq!(0x0a01_0203u32.first(0), 0);
        assert_eq!(0x0a01_0203u32.last(0), u32::MAX);
        assert_eq!(0x0a01_0203u32.first(32), 0x0a01_0203);
        assert_eq!(0x0a01_0203u32.last(32), 0x0a01_0203);
        assert_eq!(1u128.last(127), 1);
        assert_eq!(2u128.last(127), 3);
        assert_eq!(u128::MAX.first(1), 1 << 127);
    }

    #[test]
    fn empty_and_default_route() {
        let t = Lpm::<u32>::build(&[]);
        assert_eq!(t.innermost(0), None);
        assert_eq!(t.innermost(u32::MAX), None);
        let t = Lpm::<u32>::build(&[(0, 0)]);
        assert_eq!(t.innermost(0), Some(0));
        assert_eq!(t.innermost(u32::MAX), Some(0));
        assert_eq!(t.intervals(), 1);
    }

    #[test]
    fn nested_prefixes() {
        let p = [
            (0x0a00_0000u32, 8),
            (0x0a01_0000, 16),
            (0x0a01_0200, 24),
            (0xffff_ffff, 32),
            (0x0a01_0000, 24),
        ];
        let t = Lpm::build(&p);
        assert_eq!(t.innermost(0x0a01_0203), Some(2));
        assert_eq!(t.chain(0x0a01_0203).collect::<Vec<_>>(), vec![2, 1, 0]);
        assert_eq!(t.innermost(0x0a01_0003), Some(4));
        assert_eq!(t.innermost(0x0a01_0303), Some(1));
        assert_eq!(t.innermost(0x0a02_0303), Some(0));
        assert_eq!(t.innermost(0x0b00_0000), None);
        assert_eq!(t.innermost(0x09ff_ffff), None);
        assert_eq!(t.innermost(u32::MAX), Some(3));
        assert_eq!(t.innermost(u32::MAX - 1), None);
    }

    fn naive<A: Bits>(p: &[(A, u8)], addr: A) -> Vec<u32> {
        let mut hits: Vec<(u8, u32)> = p
            .iter()
            .enumerate()
            .filter(|(_, &(s, l))| addr.first(l) == s)
            .map(|(i, &(_, l))| (l, i as u32))
            .collect();
        hits.sort_by(|a, b| b.cmp(a));
        hits.into_iter().map(|(_, i)| i).collect()
    }

    fn dedup<A: Bits>(raw: Vec<(A, u8)>) -> Vec<(A, u8)> {
        let mut seen = std::collections::BTreeSet::new();
        raw.into_iter()
            .map(|(a, l)| (a.first(l), l))
            .filter(|p| seen.insert(*p))
            .collect()
    }

    proptest! {
        #[test]
        fn chain_matches_naive_v4(
            raw in proptest::collection::vec((any::<u32>(), 0u8..=32), 0..300),
            probes in proptest::collection::vec(any::<u32>(), 1..50),
        ) {
            let p = dedup(raw);
            let t = Lpm::build(&p);
            let mut addrs = probes;
            // Also probe the edges of every prefix.
            for &(s, l) in p.iter().take(50) {
                addrs.extend([s, s.last(l), s.wrapping_sub(1), s.last(l).wrapping_add(1)]);
            }
            for a in addrs {
                prop_assert_eq!(t.chain(a).collect::<Vec<_>>(), naive(&p, a));
            }
        }

        #[test]
        fn chain_matches_naive_v6(
            raw in proptest::collection::vec((any::<u128>(), 0u8..=128), 0..300),
            probes in proptest::collection::vec(any::<u128>(), 1..50),
        ) {
            let p = dedup(raw);
            let t = Lpm::build(&p);
            let mut addrs = probes;
            for &(s, l) in p.iter().take(50) {
                addrs.extend([s, s.last(l), s.wrapping_sub(1), s.last(l).wrapping_add(1)]);
            }
            for a in addrs {
                prop_assert_eq!(t.chain(a).collect::<Vec<_>>(), naive(&p, a));
            }
        }
    }
}
