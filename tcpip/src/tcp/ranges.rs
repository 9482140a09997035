//! A bounded, sorted set of sequence ranges: the receive-side out-of-order
//! assembler and the SACK blocks it reports (the send side keeps its
//! per-segment scoreboard in `sent.rs`).
//!
//! Read first: RFC 2018 §4 (generating SACK blocks: the first block holds
//! the most recently received segment), RFC 6675 §3–§4 (the scoreboard),
//! RFC 9293 §3.10.7.4 (queueing out-of-order segments).

use super::seq::Seq;

/// Most disjoint ranges kept; more out-of-order islands are dropped, which
/// bounds memory per connection.
pub const MAX_RANGES: usize = 16;

/// A sorted set of disjoint, non-adjacent half-open ranges `[start, end)`.
#[derive(Debug, Clone, Default)]
pub struct RangeSet {
    r: [(Seq, Seq); MAX_RANGES],
    len: usize,
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
        self.len
    }
    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Removes everything.
    pub fn clear(&mut self) {
        self.len = 0;
        self.last = None;
    }
    /// The ranges, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = (Seq, Seq)> + '_ {
        self.r[..self.len].iter().copied()
    }
    /// The lowest range.
    pub fn first(&self) -> Option<(Seq, Seq)> {
        self.r[..self.len].first().copied()
    }
    /// The highest right edge.
    pub fn highest(&self) -> Option<Seq> {
        self.r[..self.len].last().map(|r| r.1)
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
        self.iter().find(|&(s, e)| s <= seq && seq < e).map(|r| r.1)
    }

    /// Adds `[start, end)`, merging neighbours. Returns false (and changes
    /// nothing) if it would need more than `MAX_RANGES` ranges.
    pub fn insert(&mut self, start: Seq, end: Seq) -> bool {
        if end <= start {
            return true;
        }
        let (mut s, mut e) = (start, end);
        // First range whose end is >= s (may merge), last whose start is <= e.
        let mut i = 0;
        while i < self.len && self.r[i].1 < s {
            i += 1;
        }
        let mut j = i;
        while j < self.len && self.r[j].0 <= e {
            s = s.min(self.r[j].0);
            e = e.max(self.r[j].1);
            j += 1;
        }
        let merged = j - i;
        if merged == 0 {
            if self.len == MAX_RANGES {
                return false;
            }
            self.r.copy_within(i..self.len, i + 1);
            self.len += 1;
        } else if merged > 1 {
            self.r.copy_within(j..self.len, i + 1);
            self.len -= merged - 1;
        }
        self.r[i] = (s, e);
        self.last = Some(start);
        true
    }

    /// Drops everything below `seq`, trimming a range that straddles it.
    pub fn remove_below(&mut self, seq: Seq) {
        let mut k = 0;
        while k < self.len && self.r[k].1 <= seq {
            k += 1;
        }
        if k > 0 {
            self.r.copy_within(k..self.len, 0);
            self.len -= k;
        }
        if self.len > 0 && self.r[0].0 < seq {
            self.r[0].0 = seq;
        }
    }

    /// If the lowest range starts at or before `seq`, removes it and
    /// returns its end (the assembler's "advance rcv_nxt").
    pub fn pop_contiguous(&mut self, seq: Seq) -> Option<Seq> {
        let (s, e) = self.first()?;
        if s <= seq {
            self.r.copy_within(1..self.len, 0);
            self.len -= 1;
            Some(e.max(seq))
        } else {
            None
        }
    }

    /// Fills `out` with SACK blocks, most recently changed first
    /// (RFC 2018 §4); returns how many were written.
    pub fn sack_blocks(&self, out: &mut [(u32, u32)]) -> usize {
        let mut n = 0;
        let first = self
            .last
            .and_then(|l| self.iter().position(|(s, e)| s <= l && l < e));
        if let Some(p) = first {
            if let Some(slot) = out.get_mut(0) {
                *slot = (self.r[p].0 .0, self.r[p].1 .0);
                n = 1;
            }
        }
        for (k, &(s, e)) in self.r[..self.len].iter().enumerate().rev() {
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
        assert!(!r.insert(s(1000), s(1001)));
        assert!(r.insert(s(22), s(23)));
        let mut out = [(0, 0); 3];
        assert_eq!(r.sack_blocks(&mut out), 3);
        assert_eq!(out[0], (20, 25));
        assert_eq!(out[1], (150, 155));
        assert_eq!(r.bytes_above(s(152)), 3);
    }
}
