//! UDP sockets: bounded datagram queues in both directions.
//!
//! Read first: RFC 768, RFC 1122 §4.1 (UDP host requirements: ICMP port
//! unreachable, §4.1.3.3 passing ICMP errors to the application).

use crate::error::Error;
use crate::ring::RingBuffer;
use std::collections::VecDeque;
use std::net::SocketAddr;

/// A bounded queue of datagrams: metadata in a pre-sized deque, bytes in a
/// ring, so steady-state use never allocates.
#[derive(Debug)]
pub(crate) struct DatagramQueue {
    /// (peer, length, TTL or hop limit it arrived with; 0 on the send side).
    meta: VecDeque<(SocketAddr, usize, u8)>,
    data: RingBuffer,
    max: usize,
}

impl DatagramQueue {
    pub(crate) fn new(bytes: usize, max: usize) -> Self {
        DatagramQueue {
            meta: VecDeque::with_capacity(max),
            data: RingBuffer::new(bytes),
            max,
        }
    }
    pub(crate) fn push(&mut self, addr: SocketAddr, payload: &[u8]) -> bool {
        self.push_ttl(addr, payload, 0)
    }
    /// As `push`, noting the TTL (hop limit) the datagram arrived with.
    pub(crate) fn push_ttl(&mut self, addr: SocketAddr, payload: &[u8], ttl: u8) -> bool {
        if self.meta.len() >= self.max || self.data.free() < payload.len() {
            return false;
        }
        self.data.enqueue_slice(payload);
        self.meta.push_back((addr, payload.len(), ttl));
        true
    }
    pub(crate) fn peek(&self) -> Option<(SocketAddr, usize)> {
        self.meta.front().map(|m| (m.0, m.1))
    }
    /// Copies the front datagram into `out` (truncating) and drops it:
    /// (peer, bytes copied, TTL).
    pub(crate) fn pop(&mut self, out: &mut [u8]) -> Option<(SocketAddr, usize, u8)> {
        let (addr, len, ttl) = self.meta.pop_front()?;
        let take = len.min(out.len());
        let n = self.data.read_at(0, &mut out[..take]);
        self.data.consume(len);
        Some((addr, n, ttl))
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }
}

/// One UDP socket.
#[derive(Debug)]
pub(crate) struct UdpSocket {
    pub local: SocketAddr,
    pub remote: Option<SocketAddr>,
    pub rx: DatagramQueue,
    pub tx: DatagramQueue,
    pub error: Option<Error>,
    pub readable_notified: bool,
    pub dirty: bool,
    /// Closed by its owner with datagrams still queued: it only sends them
    /// (as a kernel socket's already-sent datagrams still leave after
    /// `close`), then the stack frees it.
    pub closing: bool,
    /// An ICMP echo ("ping") socket: its port is the echo identifier, it
    /// sends echo requests and receives the matching echo replies
    /// (`stack::echo`).
    pub echo: bool,
}
