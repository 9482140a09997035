//! IP fragment reassembly with bounded memory and a timeout.
//!
//! Read first: RFC 791 §3.2 (reassembly), RFC 815 (hole descriptors),
//! RFC 8200 §4.5 (IPv6 fragments), RFC 5722 (overlapping IPv6 fragments
//! are dropped), RFC 4963 (why reassembly state must be bounded).
//!
//! At most `slots` datagrams are reassembled at once, each at most 64 KiB;
//! buffers are allocated on first use and reused afterwards. A new datagram
//! when all slots are busy evicts the oldest.

use crate::wire::IpProtocol;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Largest reassembled payload.
const MAX_DATAGRAM: usize = 65535;
/// Most fragments (disjoint ranges) per datagram.
const MAX_PIECES: usize = 64;

/// What identifies one datagram's fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Identification (16 bits for IPv4, 32 for IPv6).
    pub ident: u32,
    /// Upper-layer protocol.
    pub proto: IpProtocol,
}

#[derive(Debug)]
struct Slot {
    key: Option<Key>,
    data: Vec<u8>,
    pieces: Vec<(usize, usize)>,
    total: Option<usize>,
    deadline: Instant,
    started: Instant,
}

/// The reassembler.
#[derive(Debug)]
pub struct Reassembler {
    slots: Vec<Slot>,
    max_slots: usize,
    timeout: Duration,
    output: Vec<u8>,
}

impl Reassembler {
    /// Creates a reassembler with `slots` concurrent datagrams.
    pub fn new(slots: usize, timeout: Duration) -> Self {
        Reassembler {
            slots: Vec::new(),
            max_slots: slots,
            timeout,
            output: Vec::new(),
        }
    }

    /// Lends the output buffer (reassembled datagrams are swapped into it).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// Returns the output buffer.
    pub fn put_output(&mut self, b: Vec<u8>) {
        self.output = b;
    }

    /// Earliest expiry.
    pub fn poll_at(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter(|s| s.key.is_some())
            .map(|s| s.deadline)
            .min()
    }

    /// Drops timed-out reassemblies.
    pub fn expire(&mut self, now: Instant) {
        for s in &mut self.slots {
            if s.key.is_some() && s.deadline <= now {
                s.key = None;
            }
        }
    }

    /// Adds one fragment. When the datagram is complete its payload is
    /// swapped into `out` and its length returned.
    pub fn add(
        &mut self,
        now: Instant,
        key: Key,
        offset: usize,
        more: bool,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<usize> {
        let end = offset + data.len();
        if end > MAX_DATAGRAM || (more && data.len() & 7 != 0) || self.max_slots == 0 {
            return None;
        }
        self.expire(now);
        let i = match self.slots.iter().position(|s| s.key == Some(key)) {
            Some(i) => i,
            None => {
                let i = match self.slots.iter().position(|s| s.key.is_none()) {
                    Some(i) => i,
                    None if self.slots.len() < self.max_slots => {
                        self.slots.push(Slot {
                            key: None,
                            data: vec![0; MAX_DATAGRAM],
                            pieces: Vec::with_capacity(MAX_PIECES),
                            total: None,
                            deadline: now,
                            started: now,
                        });
                        self.slots.len() - 1
                    }
                    None => {
                        // Evict the oldest.
                        let (i, _) = self
                            .slots
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, s)| s.started)?;
                        i
                    }
                };
                let s = &mut self.slots[i];
                s.key = Some(key);
                s.pieces.clear();
                s.total = None;
                s.started = now;
                s.deadline = now + self.timeout;
                i
            }
        };
        let s = &mut self.slots[i];
        // Overlaps are dropped with the whole datagram (RFC 5722 spirit).
        if s.pieces.iter().any(|&(a, b)| offset < b && a < end) {
            s.key = None;
            return None;
        }
        if !more {
            if s.total.is_some_and(|t| t != end) || s.pieces.iter().any(|&(_, b)| b > end) {
                s.key = None;
                return None;
            }
            s.total = Some(end);
        } else if s.total.is_some_and(|t| end > t) {
            s.key = None;
            return None;
        }
        if s.pieces.len() >= MAX_PIECES {
            s.key = None;
            return None;
        }
        s.data[offset..end].copy_from_slice(data);
        s.pieces.push((offset, end));
        let total = s.total?;
        let covered: usize = s.pieces.iter().map(|&(a, b)| b - a).sum();
        if covered != total {
            return None;
        }
        s.key = None;
        if out.len() < MAX_DATAGRAM {
            out.resize(MAX_DATAGRAM, 0);
        }
        std::mem::swap(&mut s.data, out);
        Some(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn key(id: u32) -> Key {
        Key {
            src: IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(2, 2, 2, 2)),
            ident: id,
            proto: IpProtocol::Udp,
        }
    }

    #[test]
    fn out_of_order_reassembly_and_timeout() {
        let now = Instant::now();
        let mut r = Reassembler::new(2, Duration::from_secs(1));
        let mut out = Vec::new();
        assert_eq!(r.add(now, key(1), 8, false, b"tail", &mut out), None);
        assert_eq!(r.add(now, key(1), 0, true, b"01234567", &mut out), Some(12));
        assert_eq!(&out[..12], b"01234567tail");
        assert_eq!(r.add(now, key(2), 0, true, b"01234567", &mut out), None);
        r.expire(now + Duration::from_secs(2));
        assert_eq!(
            r.add(
                now + Duration::from_secs(2),
                key(2),
                8,
                false,
                b"x",
                &mut out
            ),
            None
        );
        // Overlap drops the datagram.
        assert_eq!(r.add(now, key(3), 0, true, b"01234567", &mut out), None);
        assert_eq!(r.add(now, key(3), 4, false, b"zzzz", &mut out), None);
    }
}
