//! The WireGuard protocol, sans-IO: keys, the Noise_IKpsk2 handshake, cookies,
//! transport data, the replay window and the timers of the WireGuard paper.
//!
//! No sockets and no clocks: every call takes `now: Instant`, the RNG is
//! injected, output goes into caller-owned buffers, and errors are typed.
//!
//! # Driving a [`Device`]
//!
//! One `Device` holds our static key and any number of peers. An engine with
//! one UDP socket drives it like this:
//!
//! - **Setup (commands):** [`Device::new`], [`Device::add_peer`] (returns a
//!   [`PeerId`]), optionally [`Device::force_handshake`] for peers with a
//!   persistent keepalive, [`Device::set_under_load`] when the handshake
//!   queue is long, [`Device::remove_peer`].
//! - **Inputs (`handle_*`):** for each UDP datagram, [`Device::decapsulate`]
//!   (send back `WriteToNetwork` replies to the datagram's source, hand
//!   `Data` to the IP stack); for each IP packet routed to a peer,
//!   [`Device::encapsulate`] (send `Data`/`Handshake` output to the peer's
//!   endpoint); when the deadline passes, [`Device::handle_timeout`].
//! - **Outputs (`poll_*`):** after every input above, call
//!   [`Device::poll_transmit`] until it returns `Ok(None)` and send each
//!   [`Transmit`] to its peer's endpoint; then sleep until
//!   [`Device::poll_timeout`] (or the next datagram/packet).
//! - **Getters:** [`Device::peer_stats`], [`Device::peer_by_key`],
//!   [`Device::public_key`].
//!
//! Buffers: `out` for `encapsulate`/`poll_transmit` needs
//! `payload + 32` bytes (rounded up to 16) and at least 148; for
//! `decapsulate`, at least the datagram's length and 92. Too small is an
//! error, never a panic.
//!
//! For crypto off the owning thread, [`session::Sender`] and
//! [`session::Receiver`] are `Send` and usable on their own.
#![forbid(unsafe_code)]

pub mod cookie;
pub mod crypto;
mod device;
pub mod error;
mod handshake;
pub mod keys;
pub mod messages;
mod peer;
pub mod replay;
pub mod session;
pub mod timers;

/// The RNG traits the device takes (re-exported so callers need no extra dependency).
pub use rand_core;

pub use device::{Decapsulated, Device, Encapsulated, PeerId, Transmit};
pub use error::{DecapsulateError, EncapsulateError, PeerError};
pub use handshake::tai64n_whitened;
pub use keys::{KeyError, PresharedKey, PrivateKey, PublicKey};
pub use messages::MessageError;
pub use peer::{PeerConfig, PeerStats, MAX_QUEUED_PACKETS};
