//! Which of the child's open files are ours, keyed by inode (the identity
//! of the open file), so `dup`, `fork` and `exec` in the child keep
//! working: a socket keeps its inode whatever descriptor names it.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

/// Entries kept at most; the oldest go first (their sockets are long
/// closed in any ordinary program).
pub const CAPACITY: usize = 65_536;

/// State of an outgoing tunnel connection (the connect decision's own
/// type, shared with the shim).
pub use control::connect::OutState;

/// An outgoing TCP connection carried by the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outbound {
    /// Engine flow id (`FlowStatus`).
    pub flow: u64,
    /// The destination as the program named it (`getpeername`).
    pub peer: SocketAddr,
    /// Our tunnel address for it (`getsockname`).
    pub local: SocketAddr,
    /// `AF_INET` or `AF_INET6`: the family the program's socket had.
    pub family: i32,
    /// Where it is.
    pub state: OutState,
    /// Its keepalive options (`SO_KEEPALIVE`, `TCP_KEEP*`), as the program
    /// set them: forwarded to the tunnel connection, read back by
    /// `getsockopt`.
    pub keepalive: control::TcpKeepalive,
    /// Whether a `connect()` has returned its outcome (0 or the error):
    /// the kernel's `SS_CONNECTED`/`SS_UNCONNECTED` against
    /// `SS_CONNECTING`. Until then a `connect()` after the handshake
    /// returns that outcome; after it, `EISCONN` (or a new attempt).
    pub connect_done: bool,
}

/// A UDP socket carried by a datagram flow (see `udp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// Engine flow id (`UdpConnect`).
    pub flow: u64,
    /// Connected (plain flow): the peer as the program named it
    /// (`getpeername`). `None`: unconnected (headered flow; the supervisor
    /// carries sends and receives).
    pub peer: Option<SocketAddr>,
    /// Our tunnel address and port (`getsockname`).
    pub local: SocketAddr,
    /// `AF_INET` or `AF_INET6`: the family of the program's socket.
    pub family: i32,
    /// The tunnel MTU: larger datagrams fail with `EMSGSIZE`.
    pub mtu: u16,
    /// UDP, or ICMP echo through a ping or raw socket.
    pub kind: control::DatagramKind,
    /// Receive options the program had set (`udp::ancillary` bits).
    pub recv_opts: u8,
}

/// One of our open files in the child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ours {
    /// A data socket we installed in place of a TCP socket.
    Outbound(Outbound),
    /// A TCP socket whose bind we redirected to loopback.
    Listener {
        /// What the program asked to bind (the port becomes the real one at `listen`).
        requested: SocketAddr,
        /// The socket's family.
        family: i32,
        /// Whether the engine listens for it.
        listening: bool,
    },
    /// A UDP socket carried by a datagram flow (see `udp`).
    Udp(Datagram),
    /// A UDP socket we made for an ICMP socket the kernel would have
    /// refused (see `echo` and `control::echo`): carried as an echo flow
    /// once it sends or connects to a tunnel destination; other
    /// destinations fail with `refused`.
    EchoStandIn {
        /// A ping socket or a raw ICMP socket.
        kind: control::DatagramKind,
        /// `AF_INET` or `AF_INET6`.
        family: i32,
        /// The errno the kernel would have given at `socket()`.
        refused: i32,
    },
    /// A connection we accepted for the program from a tunnel peer.
    Accepted {
        /// The peer's tunnel address.
        peer: SocketAddr,
        /// Our tunnel address it connected to.
        local: SocketAddr,
        /// The listener's family.
        family: i32,
    },
}

/// The table.
#[derive(Debug, Default)]
pub struct Table {
    map: HashMap<u64, Ours>,
    order: VecDeque<u64>,
}

impl Table {
    /// What inode `ino` is, if it is ours.
    pub fn get(&self, ino: u64) -> Option<Ours> {
        self.map.get(&ino).copied()
    }

    /// Records (or replaces) `ino`.
    pub fn insert(&mut self, ino: u64, v: Ours) {
        if self.map.insert(ino, v).is_none() {
            self.order.push_back(ino);
            while self.order.len() > CAPACITY {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }

    /// Changes an entry in place, if present.
    pub fn update(&mut self, ino: u64, f: impl FnOnce(&mut Ours)) {
        if let Some(v) = self.map.get_mut(&ino) {
            f(v);
        }
    }

    /// Forgets `ino`.
    pub fn remove(&mut self, ino: u64) {
        if self.map.remove(&ino).is_some() {
            self.order.retain(|i| *i != ino);
        }
    }

    /// Number of entries.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there is no entry.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(port: u16) -> Ours {
        Ours::Listener {
            requested: SocketAddr::from(([0, 0, 0, 0], port)),
            family: libc::AF_INET,
            listening: false,
        }
    }

    #[test]
    fn insert_update_remove() {
        let mut t = Table::default();
        t.insert(7, listener(80));
        t.update(7, |o| {
            if let Ours::Listener { listening, .. } = o {
                *listening = true
            }
        });
        assert!(matches!(
            t.get(7),
            Some(Ours::Listener {
                listening: true,
                ..
            })
        ));
        t.remove(7);
        assert_eq!(t.get(7), None);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn bounded_oldest_first() {
        let mut t = Table::default();
        for i in 0..(CAPACITY as u64 + 10) {
            t.insert(i, listener(1));
        }
        assert_eq!(t.len(), CAPACITY);
        assert_eq!(t.get(0), None);
        assert!(t.get(CAPACITY as u64 + 9).is_some());
    }
}
