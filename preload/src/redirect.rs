//! Where a connection or datagram really goes: the one place that maps the
//! destination an application names to the destination the shim uses
//! (routing decision, engine requests), and back for the addresses the
//! application is shown (`recvfrom`/`recvmsg` source, `getpeername`).
//!
//! With `DNS =`, UDP to port 53 of the host's nameservers (127.0.0.53
//! included) goes to the tunnel's DNS server ([`crate::resolve::redirect`]),
//! and replies are shown as coming from the nameserver the program asked
//! (resolvers such as c-ares check it). TCP port 53 is rewritten in
//! `connect()` itself. Other rewrites belong here, so every hook — UDP
//! `connect`/`sendto`/`sendmsg`/`sendmmsg` and the receive side — sees
//! them alike.

use control::Proto;
use std::net::SocketAddr;

/// The destination to use for `dst` (normalised, as the application named
/// it) over `proto`.
pub fn outbound(dst: SocketAddr, proto: Proto) -> SocketAddr {
    match proto {
        Proto::Udp => crate::resolve::redirect(dst)
            .map(control::normalize)
            .unwrap_or(dst),
        _ => dst,
    }
}

/// The address to show the application for `src` (normalised), the peer a
/// datagram came from or a connection is to: the inverse of [`outbound`].
pub fn inbound(src: SocketAddr, proto: Proto) -> SocketAddr {
    match proto {
        Proto::Udp => crate::resolve::unredirect(src)
            .map(control::normalize)
            .unwrap_or(src),
        _ => src,
    }
}
