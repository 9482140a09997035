//! Route queries and outgoing TCP flows: `Route`, `Connect` (and the
//! filler that follows an accepted one), `FlowStatus`, `Adopt` and
//! `TcpKeepalive`.

use crate::wire::{DecodeError, Reader, Writer};
use std::net::SocketAddr;

/// Number of filler bytes the shim writes after an accepted `Connect`.
///
/// Sized so that with the minimum `SO_SNDBUF` of a unix stream socket the
/// single queued skb keeps `POLLOUT` off (`wmem_alloc * 4 > sndbuf`) while
/// still fitting without blocking (see `preload`'s module doc).
pub const FILLER_LEN: usize = 2048;
/// The value of every filler byte.
pub const FILLER_BYTE: u8 = 0xF1;

/// Transport protocol of a route query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// Any other value, kept so every byte round-trips.
    Unknown(u8),
}

impl Proto {
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Unknown(b) => b,
        }
    }
    pub(crate) fn from_byte(b: u8) -> Self {
        match b {
            6 => Proto::Tcp,
            17 => Proto::Udp,
            other => Proto::Unknown(other),
        }
    }
}

/// The engine's routing decision for a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteDecision {
    /// Not routed into the tunnel: the host network is used, untouched.
    Direct,
    /// Routed into the tunnel.
    Tunnel,
    /// Must not leave, and cannot be carried: fail with this errno
    /// (e.g. `ENETUNREACH` for a family the tunnel has no address in).
    Unreachable(i32),
}

/// What the shim asks to connect (first frame on a data socket).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    /// Destination, normalised (an IPv4-mapped IPv6 address becomes IPv4).
    pub dst: SocketAddr,
    /// Whether the application's socket is non-blocking (for logs only).
    pub nonblocking: bool,
    /// The application's fd number (for logs only).
    pub fd: i32,
    /// Whether the application's socket is AF_INET6 (addresses are shown
    /// v4-mapped on it).
    pub v6_socket: bool,
    /// Inode of the shim's end of this data socket, so a process that
    /// inherits the fd across `exec` can find the flow again (`Adopt`).
    pub inode: u64,
    /// The client hands over a stream socket of its own to carry the
    /// flow's bytes instead of this data socket (the proxy front-ends,
    /// passing their client's TCP connection): once the flow is
    /// established, the client sends one byte with the socket attached
    /// (`SCM_RIGHTS`) and the engine reads and writes that socket directly;
    /// the data socket then only says when the flow is over (the engine
    /// closes it). Without a socket (the client closes instead) the flow
    /// ends.
    pub hand_over: bool,
}

/// What the engine knows about a data socket, for
/// [`Request::Adopt`](crate::Request::Adopt).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowInfo {
    /// Engine flow id.
    pub flow: u64,
    /// Destination (normalised).
    pub peer: SocketAddr,
    /// Our tunnel address for the flow.
    pub local: SocketAddr,
    /// Whether the application's socket was AF_INET6.
    pub v6_socket: bool,
    /// Current state.
    pub state: FlowState,
}

/// The engine's answer to [`Request::Connect`](crate::Request::Connect).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectReply {
    /// Not routed: the shim closes this socket and lets the kernel connect.
    NotRouted,
    /// The engine is connecting through the tunnel; filler follows.
    Accepted {
        /// Engine-wide id of the flow, for
        /// [`Request::FlowStatus`](crate::Request::FlowStatus).
        flow: u64,
        /// Our tunnel address and port for this flow (`getsockname`).
        local: SocketAddr,
    },
    /// Fail the `connect()` at once with this errno.
    Refused(i32),
}

/// State of an outgoing flow, as reported by
/// [`Request::FlowStatus`](crate::Request::FlowStatus).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowState {
    /// The engine knows no such flow (expired, or never existed).
    Unknown,
    /// The tunnel connection is still being set up.
    Connecting,
    /// The tunnel connection is established.
    Established,
    /// The tunnel connection failed with this errno: before it was
    /// established (`ECONNREFUSED`, `EHOSTUNREACH`…), or after (`ETIMEDOUT`
    /// after the retransmissions or keepalive probes, `ECONNRESET`), which
    /// the shim reports instead of the EOF the closed data socket shows.
    Failed(i32),
}

/// A socket's keepalive options: `SO_KEEPALIVE`, `TCP_KEEPIDLE`,
/// `TCP_KEEPINTVL`, `TCP_KEEPCNT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpKeepalive {
    /// `SO_KEEPALIVE`.
    pub enabled: bool,
    /// Seconds of idleness before the first probe (`TCP_KEEPIDLE`).
    pub idle_secs: u32,
    /// Seconds between probes (`TCP_KEEPINTVL`).
    pub interval_secs: u32,
    /// Unanswered probes before the connection times out (`TCP_KEEPCNT`).
    pub count: u32,
}

impl Writer<'_> {
    pub(crate) fn state(&mut self, s: FlowState) {
        match s {
            FlowState::Unknown => self.u8(0),
            FlowState::Connecting => self.u8(1),
            FlowState::Established => self.u8(2),
            FlowState::Failed(e) => {
                self.u8(3);
                self.i32(e);
            }
        }
    }
}

impl Reader<'_> {
    pub(crate) fn state(&mut self) -> Result<FlowState, DecodeError> {
        Ok(match self.u8()? {
            0 => FlowState::Unknown,
            1 => FlowState::Connecting,
            2 => FlowState::Established,
            3 => FlowState::Failed(self.i32()?),
            _ => return Err(DecodeError::BadField("flow state")),
        })
    }
}
