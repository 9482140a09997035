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
