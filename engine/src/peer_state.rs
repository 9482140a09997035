//! One configured peer as the engine thread keeps it: the device handle,
//! where its datagrams go, and whether it answers.

use crate::reach::Reach;
use std::net::SocketAddr;
use std::time::Instant;

/// One configured peer as the engine thread sees it.
pub struct PeerState {
    /// The device's handle.
    pub noise: noise::PeerId,
    /// Where its datagrams go: configured, then its latest authenticated source.
    pub endpoint: Option<SocketAddr>,
    /// Short name for logs (never a secret).
    pub label: String,
    /// Device drop counter seen last (a rise without a session: gave up).
    pub dropped_seen: u64,
    /// Whether `PersistentKeepalive` is on.
    pub keepalive: bool,
    /// Whether it answers: connects to a peer known down fail at once
    /// (like a failed neighbour entry); see [`crate::reach`].
    pub reach: Reach,
    /// `Endpoint =` as a host name and port: resolved again while
    /// handshakes keep failing (a peer on a dynamic address).
    pub host: Option<(String, u16)>,
    /// Since when handshakes have been failing (no session), for the
    /// re-resolution cadence.
    pub failing_since: Option<Instant>,
    /// A re-resolution runs on a helper thread.
    pub reresolving: bool,
}
