//! Sequence-number arithmetic modulo 2^32.
//!
//! Read first: RFC 9293 §3.4 (sequence numbers), RFC 1982 (serial number
//! arithmetic).

use core::cmp::Ordering;
use core::ops::{Add, Sub};

/// A TCP sequence number; comparisons are modulo 2^32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Seq(pub u32);

impl Seq {
    /// Signed distance `self − other`.
    pub fn diff(self, other: Seq) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }
    /// The larger of two sequence numbers.
    pub fn max(self, other: Seq) -> Seq {
        if self >= other {
            self
        } else {
            other
        }
    }
    /// The smaller of two sequence numbers.
    pub fn min(self, other: Seq) -> Seq {
        if self <= other {
            self
        } else {
            other
        }
    }
}

impl Add<usize> for Seq {
    type Output = Seq;
    fn add(self, n: usize) -> Seq {
        Seq(self.0.wrapping_add(n as u32))
    }
}

impl Sub<usize> for Seq {
    type Output = Seq;
    fn sub(self, n: usize) -> Seq {
        Seq(self.0.wrapping_sub(n as u32))
    }
}

impl Sub<Seq> for Seq {
    type Output = usize;
    /// Distance `self − other`, saturating at zero when `self` is before.
    fn sub(self, other: Seq) -> usize {
        let d = self.diff(other);
        if d < 0 {
            0
        } else {
            d as usize
        }
    }
}

impl PartialOrd for Seq {
    fn partial_cmp(&self, other: &Seq) -> Option<Ordering> {
        Some(self.diff(*other).cmp(&0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps() {
        let a = Seq(u32::MAX - 1);
        let b = a + 4;
        assert_eq!(b, Seq(2));
        assert!(a < b);
        assert_eq!(b - a, 4);
        assert_eq!(a - b, 0);
        assert_eq!(a.max(b), b);
    }
}
