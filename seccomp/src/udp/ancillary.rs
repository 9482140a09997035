//! Receive ancillary data for the emulated `recvmsg`/`recvmmsg` of
//! unconnected carried sockets: which options the program set on its
//! socket before it was carried (read once from it, since the data socket
//! that replaces it cannot hold IP-level options), and the control
//! messages the kernel would write for them — `SO_TIMESTAMP`, `IP_TTL`
//! (`IP_RECVTTL`), `IP_PKTINFO`, `IPV6_HOPLIMIT` (`IPV6_RECVHOPLIMIT`),
//! `IPV6_PKTINFO` (`IPV6_RECVPKTINFO`) — from what the engine told about
//! the datagram (`control::datagram::RecvInfo`). Interface index 0.

use crate::fdops::sockopt_int;
use control::datagram::RecvInfo;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;

/// `SO_TIMESTAMP` was set.
pub const TIMESTAMP: u8 = 1;
/// `IP_RECVTTL` / `IPV6_RECVHOPLIMIT` was set.
pub const TTL: u8 = 2;
/// `IP_PKTINFO` / `IPV6_RECVPKTINFO` was set.
pub const PKTINFO: u8 = 4;

/// The receive options set on the program's socket `sock` of `family`.
pub fn options(sock: &OwnedFd, family: i32) -> u8 {
    let on = |level, name| sockopt_int(sock, level, name).unwrap_or(0) != 0;
    let v6 = family == libc::AF_INET6;
    let mut o = 0;
    if on(libc::SOL_SOCKET, libc::SO_TIMESTAMP) {
        o |= TIMESTAMP;
    }
    let (ttl, pkt) = if v6 {
        (
            on(libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT),
            on(libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO),
        )
    } else {
        (
            on(libc::IPPROTO_IP, libc::IP_RECVTTL),
            on(libc::IPPROTO_IP, libc::IP_PKTINFO),
        )
    };
    if ttl {
        o |= TTL;
    }
    if pkt {
        o |= PKTINFO;
    }
    o
}

/// Appends one control message the kernel's way (`cmsghdr` then the data,
/// padded to 8 bytes).
fn put(out: &mut Vec<u8>, level: i32, ty: i32, data: &[u8]) {
    let len = 16 + data.len();
    out.extend_from_slice(&(len as u64).to_ne_bytes());
    out.extend_from_slice(&level.to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(data);
    while !out.len().is_multiple_of(8) {
        out.push(0);
    }
}

/// The control messages for one datagram (empty when none was asked).
pub fn build(opts: u8, family: i32, info: RecvInfo) -> Vec<u8> {
    let mut out = Vec::new();
    if opts & TIMESTAMP != 0 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut tv = (now.as_secs() as i64).to_ne_bytes().to_vec();
        tv.extend_from_slice(&i64::from(now.subsec_micros()).to_ne_bytes());
        put(&mut out, libc::SOL_SOCKET, libc::SCM_TIMESTAMP, &tv);
    }
    if family == libc::AF_INET6 {
        if opts & PKTINFO != 0 {
            let dst = match info.dst {
                Some(IpAddr::V6(a)) => a,
                Some(IpAddr::V4(a)) => a.to_ipv6_mapped(),
                None => Ipv6Addr::UNSPECIFIED,
            };
            let mut d = dst.octets().to_vec();
            d.extend_from_slice(&0u32.to_ne_bytes());
            put(&mut out, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &d);
        }
        if let (true, Some(h)) = (opts & TTL != 0, info.ttl) {
            put(
                &mut out,
                libc::IPPROTO_IPV6,
                libc::IPV6_HOPLIMIT,
                &i32::from(h).to_ne_bytes(),
            );
        }
    } else {
        if opts & PKTINFO != 0 {
            let dst = match info.dst {
                Some(IpAddr::V4(a)) => a,
                _ => Ipv4Addr::UNSPECIFIED,
            };
            // struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }
            let mut d = 0i32.to_ne_bytes().to_vec();
            d.extend_from_slice(&dst.octets());
            d.extend_from_slice(&dst.octets());
            put(&mut out, libc::IPPROTO_IP, libc::IP_PKTINFO, &d);
        }
        if let (true, Some(t)) = (opts & TTL != 0, info.ttl) {
            put(
                &mut out,
                libc::IPPROTO_IP,
                libc::IP_TTL,
                &i32::from(t).to_ne_bytes(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_laid_out_as_the_kernel_does() {
        let info = RecvInfo {
            ttl: Some(63),
            dst: Some("10.77.0.2".parse().expect("a")),
        };
        assert!(build(0, libc::AF_INET, info).is_empty());
        let b = build(TTL | PKTINFO, libc::AF_INET, info);
        // in_pktinfo: 16 + 12 → 32 after padding; then IP_TTL: 16 + 4 → 24.
        assert_eq!(b.len(), 32 + 24);
        assert_eq!(u64::from_ne_bytes(b[0..8].try_into().expect("8")), 28);
        assert_eq!(
            i32::from_ne_bytes(b[12..16].try_into().expect("4")),
            libc::IP_PKTINFO
        );
        assert_eq!(&b[24..28], &[10, 77, 0, 2]);
        assert_eq!(
            i32::from_ne_bytes(b[44..48].try_into().expect("4")),
            libc::IP_TTL
        );
        assert_eq!(i32::from_ne_bytes(b[48..52].try_into().expect("4")), 63);
        let b6 = build(
            TTL,
            libc::AF_INET6,
            RecvInfo {
                ttl: Some(64),
                dst: None,
            },
        );
        assert_eq!(
            i32::from_ne_bytes(b6[12..16].try_into().expect("4")),
            libc::IPV6_HOPLIMIT
        );
    }
}
