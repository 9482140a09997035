//! A bounded, sorted set of sequence ranges: the receive-side out-of-order
//! assembler and the SACK blocks it reports (the send side keeps its
//! per-segment scoreboard in `sent.rs`).
//!
//! Read first: RFC 2018 §4 (generating SACK blocks: the first block holds
//! the most recently received segment), RFC 6675 §3–§4 (the scoreboard),
//! RFC 9293 §3.10.7.4 (queueing out-of-order segments).

use super::seq::Seq;

/// Most disjoint ranges kept; more out-of-order islands are dropped, which
/// bounds memory per connection (8 bytes a range, allocated only while
/// there are islands). A 4 MiB window holds about 3,000 full segments, so
/// at 10% loss a few hundred holes can be open at once: with 16, the
/// islands past the 16th were dropped and sent again.
pub const MAX_RANGES: usize = 512;

/// A sorted set of disjoint, non-adjacent half-open ranges `[start, end)`.
#[derive(Debug, Clone, Default)]
pub struct RangeSet {
    /// Lowest first; starts and ends both increase.
    r: Vec<(Seq, Seq)>,
    /// The range most recently added (for SACK block ordering).
    last: Option<Seq>,
}

impl RangeSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Number of ranges.
    pub fn len(&self) -> usize {
        self.r.len()
    }
    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.r.is_empty()
    }
    /// Removes everything.
    pub fn clear(&mut self) {
        self.r.clear();
        self.last = None;
    }
    /// Gives the storage back if the set is empty (an idle connection
    /// keeps none); returns whether it freed anything.
    pub fn shrink(&mut self) -> bool {
        if !self.r.is_empty() || self.r.capacity() == 0 {
            return false;
        }
        self.r = Vec::new();
        true
    }
    /// The ranges, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = (Seq, Seq)> + '_ {
        self.r.iter().copied()
    }
    /// The lowest range.
    pub fn first(&self) -> Option<(Seq, Seq)> {
        self.r.first().copied()
    }
    /// The highest right edge.
    pub fn highest(&self) -> Option<Seq> {
        self.r.last().map(|r| r.1)
    }
    /// Total bytes covered.
    pub fn total(&self) -> usize {
        self.iter().map(|(s, e)| e - s).sum()
    }
    /// Bytes covered at or above `seq`.
    pub fn bytes_above(&self, seq: Seq) -> usize {
        self.iter()
            .map(|(s, e)| if e <= seq { 0 } else { e - s.max(seq) })
            .sum()
    }
    /// Whether `seq` lies inside a range; returns that range's end.
    pub fn containing(&self, seq: Seq) -> Option<Seq> {
        self.index_of(seq).map(|i| self.r[i].1)
    }
    /// The index of the range holding `seq` (a binary search: sent with
    /// every ACK while hundreds of islands may be open).
    fn index_of(&self, seq: Seq) -> Option<usize> {
        let i = self.r.partition_point(|r| r.1 <= seq);
        self.r.get(i).filter(|r| r.0 <= seq).map(|_| i)
    }

    /// Adds `[start, end)`, merging neighbours. Returns false (and changes
    /// nothing) if it would need more than `MAX_RANGES` ranges.
    pub fn insert(&mut self, start: Seq, end: Seq) -> bool {
        if end <= start {
            return true;
        }
        let (mut s, mut e) = (start, end);
        // First range whose end is >= s (may merge), last whose start is <= e.
        let i = self.r.partition_point(|r| r.1 < s);
        let mut j = i;
        while j < self.r.len() && self.r[j].0 <= e {
            s = s.min(self.r[j].0);
            e = e.max(self.r[j].1);
            j += 1;
        }
        if j == i {
            if self.r.len() == MAX_RANGES {
                return false;
            }
            self.r.insert(i, (s, e));
        } else {
            self.r.drain(i + 1..j);
            self.r[i] = (s, e);
        }
        self.last = Some(start);
        true
    }

    /// Drops everything below `seq`, trimming a range that straddles it.
    pub fn remove_below(&mut self, seq: Seq) {
        let k = self.r.partition_point(|r| r.1 <= seq);
        self.r.drain(..k);
        if let Some(first) = self.r.first_mut() {
            if first.0 < seq {
                first.0 = seq;
            }
        }
    }

    /// If the lowest range starts at or before `seq`, removes it and
    /// returns its end (the assembler's "advance rcv_nxt").
    pub fn pop_contiguous(&mut self, seq: Seq) -> Option<Seq> {
        let (s, e) = self.first()?;
        if s <= seq {
            self.r.remove(0);
            Some(e.max(seq))
        } else {
            None
        }
    }

    /// Fills `out` with SACK blocks, most recently changed first
    /// (RFC 2018 §4); returns how many were written.
    pub fn sack_blocks(&self, out: &mut [(u32, u32)]) -> usize {
        let mut n = 0;
        let first = self.last.and_then(|l| self.index_of(l));
        if let Some(p) = first {
            if let Some(slot) = out.get_mut(0) {
                *slot = (self.r[p].0 .0, self.r[p].1 .0);
                n = 1;
            }
        }
        for (k, &(s, e)) in self.r.iter().enumerate().rev() {
            if Some(k) == first {
                continue;
            }
            match out.get_mut(n) {
                Some(slot) => *slot = (s.0, e.0),
                None => break,
            }
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: u32) -> Seq {
        Seq(v)
    }

    #[test]
    fn insert_merges_and_pops() {
        let mut r = RangeSet::new();
        assert!(r.insert(s(10), s(20)));
        assert!(r.insert(s(30), s(40)));
        assert!(r.insert(s(20), s(30)));
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![(s(10), s(40))]);
        assert!(r.insert(s(50), s(60)));
        assert_eq!(r.pop_contiguous(s(5)), None);
        assert_eq!(r.pop_contiguous(s(12)), Some(s(40)));
        assert_eq!(r.len(), 1);
        r.remove_below(s(55));
        assert_eq!(r.first(), Some((s(55), s(60))));
    }

    #[test]
    fn bounded_and_sack_order() {
        let mut r = RangeSet::new();
        for k in 0..MAX_RANGES as u32 {
            assert!(r.insert(s(k * 10), s(k * 10 + 5)));
        }
        let top = (MAX_RANGES as u32 - 1) * 10;
        assert!(!r.insert(s(top + 100), s(top + 101)), "one island too many");
        assert_eq!(r.len(), MAX_RANGES);
        assert!(r.insert(s(22), s(23)));
        let mut out = [(0, 0); 3];
        assert_eq!(r.sack_blocks(&mut out), 3);
        assert_eq!(out[0], (20, 25));
        assert_eq!(out[1], (top, top + 5));
        assert_eq!(r.bytes_above(s(top + 2)), 3);
        assert_eq!(r.containing(s(top + 4)), Some(s(top + 5)));
        assert_eq!(r.containing(s(top + 5)), None);
        assert_eq!(r.containing(s(25)), None);
        assert_eq!(r.containing(s(20)), Some(s(25)));
        // Bridging two islands merges them; draining frees the storage.
        assert!(r.insert(s(25), s(30)));
        assert_eq!(r.first(), Some((s(0), s(5))));
        assert_eq!(r.containing(s(27)), Some(s(35)));
        assert!(!r.shrink(), "kept while islands remain");
        r.remove_below(s(top + 5));
        assert!(r.is_empty());
        assert!(r.shrink());
    }
}
