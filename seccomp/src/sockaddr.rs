//! C socket addresses as bytes (read from and written to the caller's
//! memory), sans-IO: decode, encode, the kernel's truncation rule for
//! out-parameters, and the address helpers the shim uses (`in_family`,
//! `is_local`, `loopback_like`), so both modes show the same addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Size of `struct sockaddr_in`.
pub const SOCKADDR_IN_LEN: usize = 16;
/// Size of `struct sockaddr_in6`.
pub const SOCKADDR_IN6_LEN: usize = 28;
/// Largest address the kernel accepts (`sizeof(struct sockaddr_storage)`).
pub const MAX_LEN: usize = 128;

const AF_INET: u16 = libc::AF_INET as u16;
const AF_INET6: u16 = libc::AF_INET6 as u16;

/// The address family stored in the first two bytes, if there are two.
pub fn family(b: &[u8]) -> Option<u16> {
    Some(u16::from_ne_bytes([*b.first()?, *b.get(1)?]))
}

/// Decodes an AF_INET/AF_INET6 address; `None` for other families or too
/// few bytes (as `connect` would refuse them, the kernel decides).
pub fn decode(b: &[u8]) -> Option<SocketAddr> {
    match family(b)? {
        AF_INET if b.len() >= SOCKADDR_IN_LEN => {
            let port = u16::from_be_bytes([b[2], b[3]]);
            let ip = Ipv4Addr::new(b[4], b[5], b[6], b[7]);
            Some(SocketAddr::V4(SocketAddrV4::new(ip, port)))
        }
        AF_INET6 if b.len() >= SOCKADDR_IN6_LEN => {
            let port = u16::from_be_bytes([b[2], b[3]]);
            let flow = u32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&b[8..24]);
            let scope = u32::from_ne_bytes([b[24], b[25], b[26], b[27]]);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                flow,
                scope,
            )))
        }
        _ => None,
    }
}

/// Encodes `a` as `struct sockaddr_in`/`sockaddr_in6` bytes.
pub fn encode(a: SocketAddr) -> Vec<u8> {
    match a {
        SocketAddr::V4(v4) => {
            let mut b = vec![0u8; SOCKADDR_IN_LEN];
            b[..2].copy_from_slice(&AF_INET.to_ne_bytes());
            b[2..4].copy_from_slice(&v4.port().to_be_bytes());
            b[4..8].copy_from_slice(&v4.ip().octets());
            b
        }
        SocketAddr::V6(v6) => {
            let mut b = vec![0u8; SOCKADDR_IN6_LEN];
            b[..2].copy_from_slice(&AF_INET6.to_ne_bytes());
            b[2..4].copy_from_slice(&v6.port().to_be_bytes());
            b[4..8].copy_from_slice(&v6.flowinfo().to_ne_bytes());
            b[8..24].copy_from_slice(&v6.ip().octets());
            b[24..28].copy_from_slice(&v6.scope_id().to_ne_bytes());
            b
        }
    }
}

/// What to write for an address out-parameter with room for `room` bytes
/// (the caller's `*addrlen`): the first `min(room, full)` bytes of the
/// address, and the full length for `*addrlen`, as the kernel does.
pub fn truncated(a: SocketAddr, room: u32) -> (Vec<u8>, u32) {
    let mut b = encode(a);
    let full = b.len() as u32;
    b.truncate(room.min(full) as usize);
    (b, full)
}

/// `a` as shown on a socket of `family`: IPv4 on an AF_INET6 socket
/// becomes IPv4-mapped (shared with the shim).
pub use control::connect::in_family;

/// Destinations that always stay on the host: loopback, unspecified,
/// multicast, broadcast (v4-mapped forms included; shared with the shim).
pub use control::connect::is_local;

/// The loopback address of the same family (and v4-mapped form) as `a`,
/// same port.
pub fn loopback_like(a: &SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V4(v4) => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), v4.port()),
        SocketAddr::V6(v6) if v6.ip().to_ipv4_mapped().is_some() => {
            SocketAddr::new(IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()), v6.port())
        }
        SocketAddr::V6(v6) => SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), v6.port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_both_families() {
        for a in [
            "10.77.0.1:8080".parse::<SocketAddr>().expect("v4"),
            "[fd77::1]:443".parse().expect("v6"),
            SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().expect("ll"), 1, 7, 3)),
        ] {
            assert_eq!(decode(&encode(a)), Some(a));
        }
    }

    #[test]
    fn matches_libc_layout() {
        let b = encode("10.77.0.1:8080".parse().expect("v4"));
        // SAFETY: 16 bytes read as sockaddr_in.
        let sin: libc::sockaddr_in = unsafe { std::ptr::read_unaligned(b.as_ptr().cast()) };
        assert_eq!(i32::from(sin.sin_family), libc::AF_INET);
        assert_eq!(u16::from_be(sin.sin_port), 8080);
        assert_eq!(u32::from_be(sin.sin_addr.s_addr), 0x0a4d_0001);
    }

    #[test]
    fn short_or_foreign_is_none() {
        let b = encode("10.77.0.1:80".parse().expect("v4"));
        assert_eq!(decode(&b[..15]), None);
        assert_eq!(decode(&[1, 0, 0, 0]), None); // AF_UNIX
        assert_eq!(decode(&[]), None);
        let b6 = encode("[fd77::1]:80".parse().expect("v6"));
        assert_eq!(decode(&b6[..27]), None);
    }

    #[test]
    fn truncation_follows_the_kernel() {
        let a: SocketAddr = "10.77.0.1:80".parse().expect("v4");
        let (b, full) = truncated(a, 4);
        assert_eq!((b.len(), full), (4, 16));
        let (b, full) = truncated(a, 100);
        assert_eq!((b.len(), full), (16, 16));
        let (b, full) = truncated(in_family(a, libc::AF_INET6), 0);
        assert_eq!((b.len(), full), (0, 28));
    }

    #[test]
    fn mapped_and_local() {
        let a: SocketAddr = "10.77.0.1:80".parse().expect("v4");
        assert_eq!(
            in_family(a, libc::AF_INET6).to_string(),
            "[::ffff:10.77.0.1]:80"
        );
        assert!(is_local(&"[::ffff:127.0.0.1]:1".parse().expect("m")));
        assert!(!is_local(&a));
        assert_eq!(
            loopback_like(&"[::]:80".parse().expect("w")).to_string(),
            "[::1]:80"
        );
    }
}
