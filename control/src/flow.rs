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

/// What the engine's TCP knows of an outgoing tunnel connection, for the
/// TCP-level options a program reads (`TCP_MAXSEG`, `TCP_INFO`): the
/// kernel's socket underneath a tunnel socket knows none of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpFlowInfo {
    /// The connection's state as Linux numbers it (`TCP_ESTABLISHED` = 1 …
    /// `TCP_CLOSING` = 11), as `tcpi_state` reports it.
    pub state: u8,
    /// Payload bytes per full segment after options (`TCP_MAXSEG`,
    /// `tcpi_snd_mss`).
    pub mss: u32,
    /// Smoothed round-trip time, µs (`tcpi_rtt`; 0 before a sample).
    pub rtt_us: u32,
    /// Round-trip time variation, µs (`tcpi_rttvar`).
    pub rttvar_us: u32,
    /// Retransmission timeout, µs (`tcpi_rto`).
    pub rto_us: u32,
    /// Congestion window in segments (`tcpi_snd_cwnd`).
    pub cwnd: u32,
    /// Slow-start threshold in segments (`tcpi_snd_ssthresh`; `u32::MAX`
    /// for none yet, as Linux's "infinite" 0x7fffffff is shown).
    pub ssthresh: u32,
    /// Segments sent and not yet acknowledged (`tcpi_unacked`).
    pub unacked: u32,
    /// Segments retransmitted over the connection's life
    /// (`tcpi_total_retrans`).
    pub total_retrans: u32,
}

/// Byte offsets in Linux's `struct tcp_info` (`include/uapi/linux/tcp.h`).
mod tcpi {
    pub const STATE: usize = 0;
    pub const RTO: usize = 8;
    pub const SND_MSS: usize = 16;
    pub const RCV_MSS: usize = 20;
    pub const UNACKED: usize = 24;
    pub const RTT: usize = 68;
    pub const RTTVAR: usize = 72;
    pub const SND_SSTHRESH: usize = 76;
    pub const SND_CWND: usize = 80;
    pub const TOTAL_RETRANS: usize = 100;
}

/// Linux's `TCP_INFINITE_SSTHRESH`, what `tcpi_snd_ssthresh` shows before
/// the first loss.
const INFINITE_SSTHRESH: u32 = 0x7fff_ffff;

impl TcpFlowInfo {
    /// Writes these numbers over the fields of a `struct tcp_info` that a
    /// kernel socket of the same family filled in (`buf`, as long as the
    /// program asked for; fields past its end are left out, as the kernel
    /// leaves them). The fields the engine does not know keep the kernel's
    /// values.
    pub fn patch_tcp_info(&self, buf: &mut [u8]) {
        if let Some(b) = buf.get_mut(tcpi::STATE) {
            *b = self.state;
        }
        let ssthresh = if self.ssthresh == u32::MAX {
            INFINITE_SSTHRESH
        } else {
            self.ssthresh
        };
        for (at, v) in [
            (tcpi::RTO, self.rto_us),
            (tcpi::SND_MSS, self.mss),
            (tcpi::RCV_MSS, self.mss),
            (tcpi::UNACKED, self.unacked),
            (tcpi::RTT, self.rtt_us),
            (tcpi::RTTVAR, self.rttvar_us),
            (tcpi::SND_SSTHRESH, ssthresh),
            (tcpi::SND_CWND, self.cwnd),
            (tcpi::TOTAL_RETRANS, self.total_retrans),
        ] {
            if let Some(field) = buf.get_mut(at..at + 4) {
                field.copy_from_slice(&v.to_ne_bytes());
            }
        }
    }
}

impl Writer<'_> {
    pub(crate) fn tcp_info(&mut self, i: &TcpFlowInfo) {
        self.u8(i.state);
        for v in [
            i.mss,
            i.rtt_us,
            i.rttvar_us,
            i.rto_us,
            i.cwnd,
            i.ssthresh,
            i.unacked,
            i.total_retrans,
        ] {
            self.u32(v);
        }
    }

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
    pub(crate) fn tcp_info(&mut self) -> Result<TcpFlowInfo, DecodeError> {
        Ok(TcpFlowInfo {
            state: self.u8()?,
            mss: self.u32()?,
            rtt_us: self.u32()?,
            rttvar_us: self.u32()?,
            rto_us: self.u32()?,
            cwnd: self.u32()?,
            ssthresh: self.u32()?,
            unacked: self.u32()?,
            total_retrans: self.u32()?,
        })
    }

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
