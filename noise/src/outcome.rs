//! What the device's calls report: [`Encapsulated`], [`Decapsulated`] and
//! [`Transmit`]. Below `device` and `peer`, which both produce them.

use crate::ctx::PeerId;

/// What [`Device::encapsulate`](crate::Device::encapsulate) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encapsulated {
    /// `out[..len]` is a data message: send it to the peer's endpoint.
    Data(usize),
    /// No session yet: the packet was queued and `out[..len]` is a
    /// handshake initiation to send to the peer's endpoint.
    Handshake(usize),
    /// The packet was queued until the pending handshake completes.
    Queued,
}

/// What [`Device::decapsulate`](crate::Device::decapsulate) did. Any
/// variant naming a peer means the datagram was authenticated as coming
/// from that peer: the engine may update the peer's endpoint to the
/// datagram's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decapsulated {
    /// `out[..len]` (a handshake response or a cookie reply) must be sent
    /// back to the datagram's source address.
    WriteToNetwork {
        /// The peer the reply belongs to; `None` for a cookie reply.
        peer: Option<PeerId>,
        /// Length of the reply in `out`.
        len: usize,
    },
    /// A handshake we initiated completed; queued packets and a keepalive
    /// are now ready in [`Device::poll_transmit`](crate::Device::poll_transmit).
    HandshakeComplete {
        /// The peer.
        peer: PeerId,
    },
    /// A cookie reply was accepted; the next initiation will carry mac2.
    CookieReceived {
        /// The peer.
        peer: PeerId,
    },
    /// `out[..len]` is an IP packet from `peer` (padding removed). Check its
    /// source address against the peer's AllowedIPs before using it.
    Data {
        /// The peer.
        peer: PeerId,
        /// Length of the IP packet in `out`.
        len: usize,
    },
    /// An authenticated keepalive (empty data message).
    Keepalive {
        /// The peer.
        peer: PeerId,
    },
}

/// A message [`Device::poll_transmit`](crate::Device::poll_transmit) wrote:
/// send `out[..len]` to `peer`'s endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// The destination peer.
    pub peer: PeerId,
    /// Length of the message in `out`.
    pub len: usize,
}
