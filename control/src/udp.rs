//! Datagram flows: `UdpOpen` (answered with the data socket) and
//! `UdpConnect`; the messages on the data socket are in [`crate::datagram`].

use crate::wire::DecodeError;
use std::net::SocketAddr;

/// What one message on a UDP data socket holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatagramFraming {
    /// A [`datagram::Header`](crate::datagram::Header) (peer address, or an
    /// error) then the payload: the shim reads and writes the socket and
    /// translates (any peer).
    Headers,
    /// Exactly one payload, nothing else: the program reads and writes the
    /// socket itself (seccomp mode), so the flow must be connected
    /// ([`UdpOpenRequest::connect`] is required). Outgoing messages go to
    /// that peer; only datagrams from that peer are delivered, as on a
    /// connected UDP socket. An empty message is an empty datagram. ICMP
    /// errors cannot be shown in-band: they are counted and logged only.
    Plain,
}

impl DatagramFraming {
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            DatagramFraming::Headers => 0,
            DatagramFraming::Plain => 1,
        }
    }
    pub(crate) fn from_byte(b: u8) -> Result<Self, DecodeError> {
        match b {
            0 => Ok(DatagramFraming::Headers),
            1 => Ok(DatagramFraming::Plain),
            _ => Err(DecodeError::BadField("datagram framing")),
        }
    }
}

/// What kind of datagram socket a flow carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatagramKind {
    /// A UDP socket: messages are UDP payloads.
    Udp,
    /// A ping socket (`SOCK_DGRAM`, `IPPROTO_ICMP`/`IPPROTO_ICMPV6`):
    /// messages are ICMP echo messages (header and data); the port of the
    /// local address is the echo identifier, which the engine writes into
    /// every request, and only replies carrying it are delivered.
    Ping,
    /// A raw ICMP socket (`SOCK_RAW`, `IPPROTO_ICMP`/`IPPROTO_ICMPV6`):
    /// outgoing messages are ICMP echo requests with the program's own
    /// identifier (kept); incoming ones are the echo replies carrying it,
    /// IPv4 ones behind an IPv4 header as a raw socket reads them.
    RawIcmp,
}

impl DatagramKind {
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            DatagramKind::Udp => 0,
            DatagramKind::Ping => 1,
            DatagramKind::RawIcmp => 2,
        }
    }
    pub(crate) fn from_byte(b: u8) -> Result<Self, DecodeError> {
        match b {
            0 => Ok(DatagramKind::Udp),
            1 => Ok(DatagramKind::Ping),
            2 => Ok(DatagramKind::RawIcmp),
            _ => Err(DecodeError::BadField("datagram kind")),
        }
    }
}

/// What the shim (or the seccomp supervisor) asks for when a datagram
/// socket starts using the tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpOpenRequest {
    /// Whether the application's socket is AF_INET6 (it then sends and
    /// receives both families unless `v6_only`).
    pub v6_socket: bool,
    /// `IPV6_V6ONLY` of the application's socket.
    pub v6_only: bool,
    /// The local address to bind (normalised; a wildcard or one of our
    /// tunnel addresses; port 0 picks one).
    pub bind: SocketAddr,
    /// The default peer, if the socket is connected (normalised).
    pub connect: Option<SocketAddr>,
    /// The application's fd number (for logs only).
    pub fd: i32,
    /// What a message on the data socket holds; [`DatagramFraming::Plain`]
    /// requires `connect` (decoding refuses it without).
    pub framing: DatagramFraming,
    /// UDP, or ICMP echo through a ping or raw socket.
    pub kind: DatagramKind,
}

/// The engine's answer to [`Request::UdpOpen`](crate::Request::UdpOpen) /
/// [`Request::UdpConnect`](crate::Request::UdpConnect).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpReply {
    /// Open (or re-connected); for `UdpOpen` the data socket comes with it.
    Opened {
        /// Engine-wide id of the datagram flow.
        flow: u64,
        /// Our tunnel address and port (`getsockname`).
        local: SocketAddr,
        /// The tunnel MTU: larger datagrams fail with `EMSGSIZE`.
        mtu: u16,
    },
    /// Fail the call with this errno.
    Refused(i32),
}
