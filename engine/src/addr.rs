//! Address helpers shared by the engine's parts: IPv4-mapped IPv6 as IPv4
//! (the UDP socket is dual-stack), and resolving an `Endpoint =` host name.

use anyhow::{anyhow, Result};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// IPv4-mapped IPv6 addresses as IPv4.
pub fn canonical(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        v4 => v4,
    }
}

/// The address of `host:port`, IPv4 first (as wg does when both exist).
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    // Prefer IPv4, as wg does when both exist.
    addrs.sort_by_key(|a| a.is_ipv6());
    addrs
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no address found"))
}
