//! The WireGuard protocol, sans-IO: keys, the Noise_IKpsk2 handshake, cookies,
//! transport data, the replay window and the timers of the WireGuard paper.
//!
//! No sockets and no clocks: every call takes `now: Instant`, the RNG is
//! injected, output goes into caller-owned buffers, and errors are typed.
//!
//! [`Device`] is the entry point; its type-level documentation states the
//! calling order.
//!
//! For crypto off the owning thread, [`session::Sender`] and
//! [`session::Receiver`] are `Send` and usable on their own.
#![forbid(unsafe_code)]

pub mod cookie;
pub mod crypto;
mod ctx;
mod device;
pub mod error;
mod handshake;
pub mod keys;
pub mod messages;
mod outcome;
mod peer;
pub mod replay;
pub mod session;
pub mod timers;

/// The RNG traits the device takes (re-exported so callers need no extra dependency).
pub use rand_core;

pub use ctx::PeerId;
pub use device::Device;
pub use error::{DecapsulateError, EncapsulateError, PeerError};
pub use handshake::tai64n_whitened;
pub use keys::{KeyError, PresharedKey, PrivateKey, PublicKey};
pub use messages::MessageError;
pub use outcome::{Decapsulated, Encapsulated, Transmit};
pub use peer::{OpenTicket, PeerConfig, PeerStats, SealTicket, MAX_QUEUED_PACKETS};
pub use timers::Timing;
