//! Packet queues for the engine's threads (lock-free, bounded, no
//! allocation once warm): a pool of reusable buffers and a queue of filled
//! ones, both `crossbeam_queue::ArrayQueue`s.

use crossbeam_queue::ArrayQueue;

/// A bounded, lock-free queue of IP packets with a buffer pool.
#[derive(Debug)]
pub struct PacketQueue {
    pool: ArrayQueue<Vec<u8>>,
    full: ArrayQueue<Vec<u8>>,
    buf_size: usize,
}

impl PacketQueue {
    /// Creates a queue of `depth` packets of up to `buf_size` bytes,
    /// allocating all buffers now.
    pub fn new(depth: usize, buf_size: usize) -> Self {
        let depth = depth.max(1);
        let pool = ArrayQueue::new(depth);
        for _ in 0..depth {
            let _ = pool.push(Vec::with_capacity(buf_size));
        }
        PacketQueue {
            pool,
            full: ArrayQueue::new(depth),
            buf_size,
        }
    }

    /// Copies `packet` in; returns false (drop) when full or too big.
    pub fn push(&self, packet: &[u8]) -> bool {
        if packet.len() > self.buf_size {
            return false;
        }
        let Some(mut b) = self.pool.pop() else {
            return false;
        };
        b.clear();
        b.extend_from_slice(packet);
        match self.full.push(b) {
            Ok(()) => true,
            Err(b) => {
                let _ = self.pool.push(b);
                false
            }
        }
    }

    /// Takes the oldest packet; hand the buffer back with [`Self::recycle`].
    pub fn pop(&self) -> Option<Vec<u8>> {
        self.full.pop()
    }

    /// Returns a buffer to the pool.
    pub fn recycle(&self, b: Vec<u8>) {
        let _ = self.pool.push(b);
    }

    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.full.len()
    }

    /// Whether no packets wait.
    pub fn is_empty(&self) -> bool {
        self.full.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_recycled() {
        let q = PacketQueue::new(2, 16);
        assert!(q.push(b"a"));
        assert!(q.push(b"b"));
        assert!(!q.push(b"c"));
        assert!(!q.push(&[0; 17]));
        let p = q.pop().expect("packet");
        assert_eq!(p, b"a");
        q.recycle(p);
        assert!(q.push(b"d"));
        assert_eq!(q.len(), 2);
    }
}
