//! A bounded byte ring whose storage is allocated on first use and grows
//! on demand up to its capacity, so an idle connection costs a few
//! kilobytes rather than its full window.
//!
//! Besides FIFO enqueue/dequeue it supports reading at an offset without
//! consuming (TCP retransmission reads the send ring by sequence offset)
//! and writing past the end without committing (out-of-order TCP data is
//! placed where it belongs and committed when the hole fills).
//!
//! Storage given up: [`RingBuffer::shrink`] frees it when the ring holds
//! nothing (not even bytes past the end), so a connection that moved a
//! burst and went idle is back to no storage; its owner decides when (TCP:
//! after the ring stayed empty for a while, so bulk transfers, whose rings
//! empty and fill all the time, do not reallocate on every turn).

/// A byte ring buffer.
#[derive(Debug, Default)]
pub struct RingBuffer {
    /// Storage: empty until the first write, then grown by doubling.
    buf: Vec<u8>,
    /// The most the ring may hold (what windows are computed from).
    cap: usize,
    head: usize,
    len: usize,
    /// How far from the head any byte was written (stored or past the
    /// end): zero means the storage holds nothing worth keeping.
    reach: usize,
}

/// First allocation, in bytes: a small request or response fits, and a
/// held connection that moved a few bytes costs little until its rings
/// are shrunk (bulk flows double from here to their capacity in a few
/// steps).
const MIN_ALLOC: usize = 512;

impl RingBuffer {
    /// A ring that holds up to `capacity` bytes; nothing is allocated yet.
    pub fn new(capacity: usize) -> Self {
        RingBuffer {
            buf: Vec::new(),
            cap: capacity,
            head: 0,
            len: 0,
            reach: 0,
        }
    }
    /// Capacity in bytes (the bound, not the storage allocated so far).
    pub fn capacity(&self) -> usize {
        self.cap
    }
    /// Bytes of storage allocated now.
    pub fn allocated(&self) -> usize {
        self.buf.len()
    }
    /// Bytes stored.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether no bytes are stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Free bytes.
    pub fn free(&self) -> usize {
        self.cap - self.len
    }
    /// Releases the storage and the capacity (the connection is done).
    pub fn release(&mut self) {
        self.buf = Vec::new();
        self.cap = 0;
        self.head = 0;
        self.len = 0;
        self.reach = 0;
    }

    /// Whether [`RingBuffer::shrink`] would free anything: storage is
    /// allocated and no byte is kept in it.
    pub fn can_shrink(&self) -> bool {
        self.reach == 0 && !self.buf.is_empty()
    }

    /// Frees the storage if the ring holds nothing (no stored bytes and
    /// none written past the end); the capacity stays, and the next write
    /// allocates again from the smallest size. Returns whether it freed.
    pub fn shrink(&mut self) -> bool {
        if !self.can_shrink() {
            return false;
        }
        self.buf = Vec::new();
        self.head = 0;
        true
    }

    /// Makes the storage hold at least `need` bytes from the head (at most
    /// the capacity), keeping every byte at its offset from the head,
    /// uncommitted ones past the end included.
    fn reserve(&mut self, need: usize) {
        let need = need.min(self.cap);
        let old = self.buf.len();
        if need <= old {
            return;
        }
        let mut n = old.max(MIN_ALLOC);
        while n < need {
            n = n.saturating_mul(2);
        }
        let mut nb = vec![0u8; n.min(self.cap)];
        let first = old - self.head;
        nb[..first].copy_from_slice(&self.buf[self.head..]);
        nb[first..old].copy_from_slice(&self.buf[..self.head]);
        self.buf = nb;
        self.head = 0;
    }

    fn wrap(&self, i: usize) -> usize {
        let cap = self.buf.len();
        if i >= cap {
            i - cap
        } else {
            i
        }
    }

    /// Appends as much of `data` as fits; returns the count.
    pub fn enqueue_slice(&mut self, data: &[u8]) -> usize {
        let n = self.write_at(0, data);
        self.len += n;
        n
    }

    /// Removes up to `out.len()` bytes into `out`; returns the count.
    pub fn dequeue_slice(&mut self, out: &mut [u8]) -> usize {
        let n = self.read_at(0, out);
        self.consume(n);
        n
    }

    /// Drops `n` bytes from the front (clamped to `len`).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        if self.buf.is_empty() {
            return;
        }
        self.head = self.wrap(self.head + n);
        // The head is not reset when empty: bytes written past the end
        // (out-of-order data) stay where they were put.
        self.len -= n;
        self.reach = self.reach.saturating_sub(n);
    }

    /// Marks `n` bytes already written past the end as stored.
    pub fn commit(&mut self, n: usize) {
        self.len = (self.len + n).min(self.buf.len());
        self.reach = self.reach.max(self.len);
    }

    /// Copies stored bytes starting `offset` bytes after the front into
    /// `out`; returns the count.
    pub fn read_at(&self, offset: usize, out: &mut [u8]) -> usize {
        if offset >= self.len {
            return 0;
        }
        let n = out.len().min(self.len - offset);
        let start = self.wrap(self.head + offset);
        let first = n.min(self.buf.len() - start);
        out[..first].copy_from_slice(&self.buf[start..start + first]);
        out[first..n].copy_from_slice(&self.buf[..n - first]);
        n
    }

    /// Writes `data` at `offset` bytes past the end of the stored bytes
    /// without committing them; returns how many fit.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> usize {
        let free = self.free();
        if offset >= free {
            return 0;
        }
        let n = data.len().min(free - offset);
        self.reserve(self.len + offset + n);
        let start = self.wrap(self.head + self.len + offset);
        let first = n.min(self.buf.len() - start);
        self.buf[start..start + first].copy_from_slice(&data[..first]);
        self.buf[..n - first].copy_from_slice(&data[first..n]);
        self.reach = self.reach.max(self.len + offset + n);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_and_reads_at_offsets() {
        let mut r = RingBuffer::new(8);
        assert_eq!(r.enqueue_slice(b"abcdef"), 6);
        let mut o = [0u8; 4];
        assert_eq!(r.dequeue_slice(&mut o), 4);
        assert_eq!(&o, b"abcd");
        assert_eq!(r.enqueue_slice(b"ghijklmn"), 6);
        assert_eq!(r.len(), 8);
        let mut o = [0u8; 8];
        assert_eq!(r.read_at(2, &mut o), 6);
        assert_eq!(&o[..6], b"ghijkl");
        r.consume(8);
        assert!(r.is_empty());
    }

    #[test]
    fn storage_grows_on_demand_and_keeps_out_of_order_bytes() {
        let mut r = RingBuffer::new(64 * 1024);
        assert_eq!(r.allocated(), 0, "nothing before the first write");
        assert_eq!(r.free(), 64 * 1024, "windows see the full capacity");
        r.enqueue_slice(b"0123");
        assert_eq!(r.allocated(), MIN_ALLOC);
        let mut o = [0u8; 2];
        r.dequeue_slice(&mut o); // head moves: growth must rotate
                                 // Out-of-order bytes far past the end force growth; the stored
                                 // bytes and the hole keep their offsets.
        let far = vec![0xa5u8; 5000];
        assert_eq!(r.write_at(3000, &far), 5000);
        assert!(r.allocated() >= 8002 && r.allocated() <= 64 * 1024);
        assert_eq!(r.write_at(0, &[7u8; 3000]), 3000);
        r.commit(8000);
        let mut all = vec![0u8; 8002];
        assert_eq!(r.dequeue_slice(&mut all), 8002);
        assert_eq!(&all[..2], b"23");
        assert!(all[2..3002].iter().all(|&b| b == 7));
        assert!(all[3002..].iter().all(|&b| b == 0xa5));
        // Never beyond the capacity.
        let big = vec![1u8; 100 * 1024];
        assert_eq!(r.enqueue_slice(&big), 64 * 1024);
        assert_eq!(r.allocated(), 64 * 1024);
    }

    #[test]
    fn shrinks_only_when_nothing_is_kept_and_data_survives_regrowth() {
        let mut r = RingBuffer::new(64 * 1024);
        assert!(!r.shrink(), "nothing allocated yet");
        // A burst grows the storage, and the ring wraps.
        let burst: Vec<u8> = (0..40_000u32).map(|i| (i * 7) as u8).collect();
        assert_eq!(r.enqueue_slice(&burst), burst.len());
        let big = r.allocated();
        assert!(big >= 40_000);
        let mut out = vec![0u8; 30_000];
        assert_eq!(r.dequeue_slice(&mut out), 30_000);
        assert!(!r.shrink(), "10,000 bytes still stored");
        assert_eq!(r.allocated(), big);
        // Out-of-order bytes past the end keep the storage too.
        let mut rest = vec![0u8; 10_000];
        assert_eq!(r.dequeue_slice(&mut rest), 10_000);
        assert_eq!(&rest[..], &burst[30_000..]);
        assert_eq!(r.write_at(100, b"later"), 5);
        assert!(
            r.is_empty() && !r.can_shrink(),
            "bytes past the end are kept"
        );
        assert!(!r.shrink());
        assert_eq!(r.write_at(0, &[9u8; 100]), 100);
        r.commit(105);
        let mut got = [0u8; 105];
        assert_eq!(r.dequeue_slice(&mut got), 105);
        assert_eq!(&got[100..], b"later");
        // Now empty with nothing past the end: the storage goes.
        assert!(r.shrink());
        assert_eq!(r.allocated(), 0);
        assert_eq!(r.capacity(), 64 * 1024, "the bound stays");
        assert_eq!(r.free(), 64 * 1024);
        // And it works as before, from the smallest size.
        assert_eq!(r.enqueue_slice(b"again"), 5);
        assert_eq!(r.allocated(), MIN_ALLOC);
        assert_eq!(r.enqueue_slice(&burst), burst.len());
        let mut all = vec![0u8; 5 + burst.len()];
        assert_eq!(r.dequeue_slice(&mut all), all.len());
        assert_eq!(&all[..5], b"again");
        assert_eq!(&all[5..], &burst[..]);
    }

    #[test]
    fn write_past_end_then_commit() {
        let mut r = RingBuffer::new(8);
        r.enqueue_slice(b"ab");
        assert_eq!(r.write_at(2, b"ef"), 2);
        assert_eq!(r.write_at(0, b"cd"), 2);
        r.commit(4);
        let mut o = [0u8; 6];
        assert_eq!(r.dequeue_slice(&mut o), 6);
        assert_eq!(&o, b"abcdef");
        assert_eq!(r.write_at(9, b"x"), 0);
    }
}
