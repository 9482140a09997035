//! The longest-prefix-match structure: built once per config, then
//! lookups that never allocate.
//!
//! The prefixes of one address family split the address space into at
//! most `2n + 1` intervals, each covered by one innermost prefix (or none).
//! The table keeps the sorted interval starts and, per interval, the id of
//! its innermost prefix; every prefix knows its parent (the next shorter
//! prefix containing it), so a lookup can walk outwards when the innermost
//! prefix's entries do not match. A lookup reads one slot of a direct index
//! of up to 262,144 buckets spread evenly over the span of the interval
//! starts, then binary-searches the few intervals of that bucket.

use std::fmt::Debug;

/// "No prefix" in slot and parent arrays.
const NONE: u32 = u32::MAX;

/// Most bits of a direct index: up to 262,145 slots, about one per
/// interval at 100,000 prefixes, so most lookups search one or two cells.
const MAX_INDEX_BITS: u32 = 18;

/// An address of one family as an unsigned integer (`u32` for IPv4,
/// `u128` for IPv6).
pub(crate) trait Bits: Copy + Ord + Debug {
    /// The all-zero address.
    const ZERO: Self;
    /// The first address of the prefix `self/len`.
    fn first(self, len: u8) -> Self;
    /// The last address of the prefix `self/len`.
    fn last(self, len: u8) -> Self;
    /// `self + 1`, or `None` past the last address.
    fn checked_inc(self) -> Option<Self>;
    /// `(self - base) >> shift` clamped to `max`, or 0 below `base`.
    /// Non-decreasing in `self`.
    fn bucket(self, base: Self, shift: u32, max: usize) -> usize;
    /// Number of significant bits (0 for zero).
    fn bit_length(self) -> u32;
    /// `self - other`, wrapping.
    fn wrapping_sub(self, other: Self) -> Self;
}

macro_rules! impl_bits {
    ($t:ty) => {
        impl Bits for $t {
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
            fn bucket(self, base: Self, shift: u32, max: usize) -> usize {
                if self < base {
                    return 0;
                }
                let d = (self - base) >> shift;
                usize::try_from(d).map_or(max, |d| d.min(max))
            }
            #[inline]
            fn bit_length(self) -> u32 {
                <$t>::BITS - self.leading_zeros()
            }
            #[inline]
            fn wrapping_sub(self, other: Self) -> Self {
                <$t>::wrapping_sub(self, other)
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
    /// Sorted interval starts, each with the id of the innermost prefix
    /// covering the interval (or `NONE`) and a tag the owner derives from
    /// it ([`Lpm::set_tags`]); `cells[0]` starts at zero. Start, id and tag
    /// share a cache line, so the search's last read gives both.
    cells: Vec<(A, u32, u32)>,
    /// The direct index over all cells.
    top: Level<A>,
    /// Per top-level bucket `b`: the first cell whose bucket is `>= b`
    /// (as in [`Level`]) and, for buckets holding many cells, the id of
    /// its finer sub-level in `levels` (`NONE` elsewhere). Interleaved so
    /// the first step of a lookup reads one cache line.
    top_slots: Vec<[u32; 2]>,
    /// Sub-levels, for buckets where the cells are dense (clustered
    /// prefixes, such as a few /16s holding most of the routes).
    levels: Vec<Level<A>>,
    /// The bucket arrays of all sub-levels, back to back.
    index: Vec<u32>,
    /// Parent prefix id of each prefix, or `NONE`.
    parents: Vec<u32>,
}

/// A lookup between the steps of [`Lpm::find`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Step {
    lo: usize,
    hi: usize,
    sub: u32,
}

/// Top-level buckets holding more cells than this get a sub-level.
const SUB_LEVEL_MIN_CELLS: usize = 8;

/// One level of direct index: buckets spread evenly over (most of) the
/// starts of the cells `[candidate + 1, end)`, where cell `candidate`
/// starts at or below every address that reaches this level. Addresses
/// below the range fall in bucket 0, above it in the last bucket.
/// `index[offset + b]` is the first cell of the range whose bucket is
/// `>= b` (`end` if none), for `b` in `0..=last + 1`; an address in bucket
/// `b` then lies in cells `[index[offset + b] - 1, index[offset + b + 1])`.
#[derive(Debug, Clone, Copy)]
struct Level<A> {
    base: A,
    shift: u32,
    last: usize,
    offset: usize,
}

impl<A: Bits> Level<A> {
    /// Appends the bucket array for cells `[candidate + 1, end)` with
    /// `2^bits` buckets to `index`.
    fn build(
        cells: &[(A, u32, u32)],
        candidate: usize,
        end: usize,
        bits: u32,
        index: &mut Vec<u32>,
    ) -> Self {
        let first = candidate + 1;
        // Spread the buckets over the middle 98% of the starts: a few
        // outlying prefixes (say, ULA AllowedIPs next to global routes)
        // then share the edge buckets instead of leaving most buckets empty.
        let trim = end.saturating_sub(first) / 100;
        let (lo, hi) = (first + trim, end.saturating_sub(1 + trim));
        let base = cells.get(lo).filter(|_| lo < end).map_or(A::ZERO, |c| c.0);
        let span = match cells.get(hi) {
            Some(c) if hi >= lo && hi < end => c.0.wrapping_sub(base),
            _ => A::ZERO,
        };
        let shift = span.bit_length().saturating_sub(bits);
        let last = (1usize << bits) - 1;
        let offset = index.len();
        let mut i = first;
        for b in 0..=last + 1 {
            while i < end && cells[i].0.bucket(base, shift, last) < b {
                i += 1;
            }
            index.push(u32::try_from(i).unwrap_or(NONE));
        }
        Level {
            base,
            shift,
            last,
            offset,
        }
    }

    /// The cell range `[lo, hi)` holding `addr`'s interval.
    #[inline]
    fn narrow(&self, index: &[u32], addr: A) -> (usize, usize) {
        self.range(index, addr.bucket(self.base, self.shift, self.last))
    }

    /// The cell range `[lo, hi)` of bucket `b`.
    #[inline]
    fn range(&self, index: &[u32], b: usize) -> (usize, usize) {
        let i = self.offset + b;
        ((index[i] as usize).saturating_sub(1), index[i + 1] as usize)
    }
}

/// `ceil(log2(n))`, capped at [`MAX_INDEX_BITS`].
fn bits_for(n: usize) -> u32 {
    (usize::BITS - n.saturating_sub(1).leading_zeros()).min(MAX_INDEX_BITS)
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

        let cells: Vec<(A, u32, u32)> = starts
            .into_iter()
            .zip(slots)
            .map(|(start, slot)| (start, slot, 0))
            .collect();
        let mut top_index = Vec::new();
        let top = Level::build(
            &cells,
            0,
            cells.len(),
            bits_for(cells.len()),
            &mut top_index,
        );
        let mut index = Vec::new();
        let mut levels = Vec::new();
        let mut top_slots = Vec::with_capacity(top_index.len());
        for (b, &first) in top_index.iter().enumerate() {
            let lo = (first as usize).saturating_sub(1);
            let hi = top_index.get(b + 1).map_or(lo, |&h| h as usize);
            let mut sub = NONE;
            if hi.saturating_sub(lo) > SUB_LEVEL_MIN_CELLS {
                sub = u32::try_from(levels.len()).unwrap_or(NONE);
                let bits = bits_for(hi - lo) + 1;
                levels.push(Level::build(
                    &cells,
                    lo,
                    hi,
                    bits.min(MAX_INDEX_BITS),
                    &mut index,
                ));
            }
            top_slots.push([first, sub]);
        }
        index.shrink_to_fit();
        Lpm {
            cells,
            top,
            top_slots,
            levels,
            index,
            parents,
        }
    }

    /// The id of the longest prefix containing `addr`, if any.
    #[inline]
    pub(crate) fn innermost(&self, addr: A) -> Option<u32> {
        let (slot, _) = self.find(addr);
        (slot != NONE).then_some(slot)
    }

    /// The id of the longest prefix containing `addr` (`u32::MAX` if none)
    /// and the tag of its interval.
    #[inline]
    pub(crate) fn find(&self, addr: A) -> (u32, u32) {
        let step = self.step_top(addr);
        let step = self.step_sub(addr, step);
        self.step_search(addr, step)
    }

    /// First step of [`Lpm::find`]: the top-level bucket's cell range and
    /// sub-level.
    #[inline]
    pub(crate) fn step_top(&self, addr: A) -> Step {
        let b = addr.bucket(self.top.base, self.top.shift, self.top.last);
        let [first, sub] = self.top_slots[b];
        Step {
            lo: (first as usize).saturating_sub(1),
            hi: self.top_slots[b + 1][0] as usize,
            sub,
        }
    }

    /// Second step: narrow through the sub-level, if the bucket has one.
    #[inline]
    pub(crate) fn step_sub(&self, addr: A, step: Step) -> Step {
        match self.levels.get(step.sub as usize) {
            Some(level) => {
                let (lo, hi) = level.narrow(&self.index, addr);
                Step { lo, hi, sub: NONE }
            }
            None => step,
        }
    }

    /// Last step: binary search for the last cell in `[lo, hi)` starting
    /// at or below `addr` (cell `lo` always does); its prefix id and tag.
    #[inline]
    pub(crate) fn step_search(&self, addr: A, step: Step) -> (u32, u32) {
        let mut base = step.lo;
        let mut len = step.hi.saturating_sub(step.lo);
        while len > 1 {
            let half = len / 2;
            // Branch-free: a mispredicted branch costs more than the step.
            base += usize::from(self.cells[base + half].0 <= addr) * half;
            len -= half;
        }
        let (_, slot, tag) = self.cells[base];
        (slot, tag)
    }

    /// Sets each interval's tag to `tag(innermost prefix id)`.
    pub(crate) fn set_tags(&mut self, tag: impl Fn(Option<u32>) -> u32) {
        for cell in &mut self.cells {
            cell.2 = tag((cell.1 != NONE).then_some(cell.1));
        }
    }

    /// The parent of prefix `id` (the next shorter prefix containing it).
    #[inline]
    pub(crate) fn parent(&self, id: u32) -> Option<u32> {
        self.parents
            .get(id as usize)
            .copied()
            .filter(|&p| p != NONE)
    }

    /// The prefixes containing `addr`, longest first.
    #[cfg(test)]
    pub(crate) fn chain(&self, addr: A) -> Chain<'_> {
        Chain {
            parents: &self.parents,
            next: self.innermost(addr).unwrap_or(NONE),
        }
    }

    /// Number of intervals (for tests and sizing).
    #[cfg(test)]
    pub(crate) fn intervals(&self) -> usize {
        self.cells.len()
    }
}

/// Iterator over the prefixes containing an address, longest first.
#[cfg(test)]
#[derive(Debug, Clone)]
pub(crate) struct Chain<'a> {
    parents: &'a [u32],
    next: u32,
}

#[cfg(test)]
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

    #[test]
    fn dense_buckets_get_sub_levels() {
        let p: Vec<(u32, u8)> = (0..2000u32)
            .map(|i| (0x0a00_0000 | (i << 4), 28))
            .chain([(0xc000_0000, 8)])
            .collect();
        let t = Lpm::build(&p);
        assert!(!t.levels.is_empty());
        for (i, &(s, l)) in p.iter().enumerate() {
            assert_eq!(t.innermost(s), Some(i as u32));
            assert_eq!(t.innermost(s.last(l)), Some(i as u32));
        }
        assert_eq!(t.innermost(0x0a00_0000 + (2000 << 4)), None);
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
            raw in proptest::collection::vec((any::<bool>(), any::<u32>(), 0u8..=32), 0..300),
            probes in proptest::collection::vec(any::<u32>(), 1..50),
        ) {
            // Half the prefixes inside 10.0.0.0/16, so buckets get dense.
            let raw = raw
                .into_iter()
                .map(|(c, x, l)| (if c { 0x0a00_0000 | (x & 0xffff) } else { x }, l))
                .collect();
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
            raw in proptest::collection::vec((any::<bool>(), any::<u128>(), 0u8..=128), 0..300),
            probes in proptest::collection::vec(any::<u128>(), 1..50),
        ) {
            let raw = raw
                .into_iter()
                .map(|(c, x, l)| (if c { (0xfd00u128 << 112) | (x & 0xffff) << 100 } else { x }, l))
                .collect();
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
