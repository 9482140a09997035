//! A fixed-capacity byte ring allocated once, at socket creation.
//!
//! Besides FIFO enqueue/dequeue it supports reading at an offset without
//! consuming (TCP retransmission reads the send ring by sequence offset)
//! and writing past the end without committing (out-of-order TCP data is
//! placed where it belongs and committed when the hole fills).

/// A byte ring buffer.
#[derive(Debug, Default)]
pub struct RingBuffer {
    buf: Vec<u8>,
    head: usize,
    len: usize,
}

impl RingBuffer {
    /// Allocates a ring of `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        RingBuffer {
            buf: vec![0; capacity],
            head: 0,
            len: 0,
        }
    }
    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
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
        self.buf.len() - self.len
    }
    /// Releases the storage (used when a connection no longer needs it).
    pub fn release(&mut self) {
        self.buf = Vec::new();
        self.head = 0;
        self.len = 0;
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
    }

    /// Marks `n` bytes already written past the end as stored.
    pub fn commit(&mut self, n: usize) {
        self.len = (self.len + n).min(self.buf.len());
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
        let start = self.wrap(self.head + self.len + offset);
        let first = n.min(self.buf.len() - start);
        self.buf[start..start + first].copy_from_slice(&data[..first]);
        self.buf[..n - first].copy_from_slice(&data[first..n]);
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
