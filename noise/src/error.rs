//! Error enums, one per operation, each with `Display`.

use std::fmt;

use crate::messages::MessageError;

/// Why [`crate::Device::add_peer`] refused a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerError {
    /// A peer with this public key already exists.
    Duplicate,
    /// The public key is our own.
    OwnKey,
    /// The handle does not name a live peer.
    UnknownPeer,
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PeerError::Duplicate => "a peer with this public key is already configured",
            PeerError::OwnKey => "a peer cannot have our own public key",
            PeerError::UnknownPeer => "no such peer (it was removed)",
        })
    }
}

impl std::error::Error for PeerError {}

/// Why an outgoing packet could not be encapsulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncapsulateError {
    /// The output buffer is too small; `needed` bytes are required.
    BufferTooSmall {
        /// Bytes required.
        needed: usize,
    },
    /// The peer handle does not name a live peer.
    UnknownPeer,
    /// The plain text is larger than a UDP datagram can carry.
    PacketTooLarge {
        /// Its length.
        len: usize,
    },
}

impl fmt::Display for EncapsulateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncapsulateError::BufferTooSmall { needed } => {
                write!(f, "output buffer too small: {needed} bytes needed")
            }
            EncapsulateError::UnknownPeer => f.write_str("no such peer (it was removed)"),
            EncapsulateError::PacketTooLarge { len } => {
                write!(f, "packet of {len} bytes is too large to encapsulate")
            }
        }
    }
}

impl std::error::Error for EncapsulateError {}

/// Why an incoming datagram was rejected. Every variant means "drop it".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecapsulateError {
    /// Not a well-formed message (length, type).
    Message(MessageError),
    /// The output buffer is too small; `needed` bytes are required.
    BufferTooSmall {
        /// Bytes required.
        needed: usize,
    },
    /// mac1 does not match our public key.
    InvalidMac1,
    /// The handshake did not decrypt or authenticate.
    HandshakeFailed,
    /// The initiator's static key is not one of our peers.
    UnknownPeer,
    /// The initiation's timestamp is not newer than the last one accepted
    /// from that peer (a replayed initiation).
    ReplayedInitiation,
    /// An initiation from this peer arrived less than 1/50 s after the previous one.
    InitiationFlood,
    /// A response or cookie reply that matches no handshake we started.
    UnexpectedMessage,
    /// The receiver index names no live session.
    UnknownIndex(u32),
    /// The session for this index is too old (`REJECT_AFTER_TIME`).
    SessionExpired,
    /// The counter was seen before or is outside the replay window.
    Replay {
        /// The rejected counter.
        counter: u64,
    },
    /// The data packet failed authentication.
    DecryptFailed,
    /// The cookie reply failed authentication.
    InvalidCookieReply,
    /// The decrypted packet is not a valid IPv4/IPv6 packet.
    InvalidInnerPacket,
}

impl From<MessageError> for DecapsulateError {
    fn from(e: MessageError) -> Self {
        DecapsulateError::Message(e)
    }
}

impl fmt::Display for DecapsulateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecapsulateError::Message(e) => write!(f, "malformed message: {e}"),
            DecapsulateError::BufferTooSmall { needed } => {
                write!(f, "output buffer too small: {needed} bytes needed")
            }
            DecapsulateError::InvalidMac1 => f.write_str("handshake message has an invalid mac1"),
            DecapsulateError::HandshakeFailed => {
                f.write_str("handshake message failed to authenticate")
            }
            DecapsulateError::UnknownPeer => {
                f.write_str("handshake from a public key that is not a configured peer")
            }
            DecapsulateError::ReplayedInitiation => f.write_str(
                "handshake initiation with a timestamp not newer than the last one (replay)",
            ),
            DecapsulateError::InitiationFlood => {
                f.write_str("handshake initiations arriving too fast from one peer")
            }
            DecapsulateError::UnexpectedMessage => {
                f.write_str("handshake response or cookie reply for no handshake in progress")
            }
            DecapsulateError::UnknownIndex(i) => {
                write!(f, "no session with receiver index {i:#010x}")
            }
            DecapsulateError::SessionExpired => f.write_str("data for an expired session"),
            DecapsulateError::Replay { counter } => {
                write!(f, "replayed or too old data packet (counter {counter})")
            }
            DecapsulateError::DecryptFailed => f.write_str("data packet failed to authenticate"),
            DecapsulateError::InvalidCookieReply => {
                f.write_str("cookie reply failed to authenticate")
            }
            DecapsulateError::InvalidInnerPacket => {
                f.write_str("decrypted packet is not a valid IP packet")
            }
        }
    }
}

impl std::error::Error for DecapsulateError {}
