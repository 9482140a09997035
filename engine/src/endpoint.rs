//! The engine's UDP socket toward the WireGuard peers: receiving in
//! `recvmmsg`/GRO batches ([`crate::udp_rx`]), and sending in GSO batches
//! ([`crate::udp_tx`]). A dual-stack IPv6 socket takes IPv4 endpoints as
//! IPv4-mapped addresses (and reports IPv4 senders so).

use crate::udp_rx::{self, RxBatch};
use crate::udp_tx::TxBatch;
use mio::net::UdpSocket;
use mio::{Interest, Poll, Token};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

/// The bound UDP socket and its outgoing batch.
pub struct Endpoint {
    sock: UdpSocket,
    /// Whether the socket is IPv6 (dual-stack): IPv4 endpoints are mapped.
    v6: bool,
    /// Encrypted datagrams waiting to leave together (UDP GSO).
    tx: TxBatch,
}

impl Endpoint {
    /// Takes the bound socket and registers it in `poll` as `token`.
    pub fn new(sock: std::net::UdpSocket, v6: bool, poll: &Poll, token: Token) -> io::Result<Self> {
        let mut sock = UdpSocket::from_std(sock);
        poll.registry()
            .register(&mut sock, token, Interest::READABLE)?;
        let gro = udp_rx::enable_gro(sock.as_raw_fd());
        tracing::debug!(
            gro,
            "UDP receive batching (recvmmsg; GRO if the kernel has it)"
        );
        Ok(Endpoint {
            sock,
            v6,
            tx: TxBatch::new(true),
        })
    }

    /// Receives what is waiting into `batch` without blocking (one
    /// `recvmmsg`); returns the number of datagrams.
    pub fn recv_batch(&self, batch: &mut RxBatch) -> io::Result<usize> {
        batch.recv(self.sock.as_raw_fd())
    }

    /// The address to send to on our socket (IPv4-mapped on a v6 socket).
    fn wire_addr(&self, to: SocketAddr) -> SocketAddr {
        match to {
            SocketAddr::V4(a) if self.v6 => {
                SocketAddr::new(IpAddr::V6(a.ip().to_ipv6_mapped()), a.port())
            }
            other => other,
        }
    }

    /// Sends one datagram now (after whatever is batched, keeping order);
    /// returns how many datagrams were lost.
    pub fn send(&mut self, to: SocketAddr, data: &[u8]) -> u64 {
        self.queue(to, data) + self.flush()
    }

    /// Adds a datagram to the outgoing batch, sending the batch first if
    /// the datagram cannot join it; returns how many datagrams were lost.
    pub fn queue(&mut self, to: SocketAddr, data: &[u8]) -> u64 {
        let to = self.wire_addr(to);
        let mut lost = 0;
        if !self.tx.fits(to, data.len()) {
            lost = self.flush();
        }
        self.tx.push(to, data);
        lost
    }

    /// Sends the batched datagrams; returns how many were lost.
    pub fn flush(&mut self) -> u64 {
        if self.tx.is_empty() {
            return 0;
        }
        let sock = &self.sock;
        self.tx.send(sock.as_raw_fd(), || wait_writable(sock)) as u64
    }
}

/// Waits up to 5 ms for room in the socket's send buffer.
fn wait_writable(sock: &UdpSocket) -> bool {
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call; the fd lives
    // as long as `sock`.
    let r = unsafe { libc::poll(&mut pfd, 1, 5) };
    r > 0
}
