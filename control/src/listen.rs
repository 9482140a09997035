//! Listening sockets: `Bind` (is the address redirected to loopback?),
//! `Listen` (make the port reachable from the tunnel) and `AcceptLookup`
//! (who is the tunnel peer behind an accepted loopback connection).

use std::net::SocketAddr;

/// Who is behind a loopback connection the engine made to a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcceptedPeer {
    /// The peer's tunnel address (`accept`/`getpeername`).
    pub peer: SocketAddr,
    /// Our tunnel address the peer connected to (`getsockname`).
    pub local: SocketAddr,
}
