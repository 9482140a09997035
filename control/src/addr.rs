//! Socket address helpers shared by the messages.

use std::net::{IpAddr, SocketAddr};

/// Turns an IPv4-mapped IPv6 socket address into plain IPv4; others unchanged.
pub fn normalize(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}
