//! Echo sockets the host refused: the one decision the shim and the
//! seccomp supervisor share about an ICMP socket the kernel would not make.
//!
//! Where `net.ipv4.ping_group_range` lets no group of the program open
//! ping sockets (`socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)` fails with
//! `EACCES`) and the program lacks `CAP_NET_RAW` (a raw ICMP socket fails
//! with `EPERM`), an echo to a tunnel destination still needs nothing from
//! the kernel. wrapguard then hands the program a *stand-in*: a kernel UDP
//! socket of the same family that looks like the ICMP socket asked for
//! (`SO_TYPE`, `SO_PROTOCOL`), is carried as an echo flow at its first send
//! or `connect()` to a tunnel destination, and refuses every other
//! destination with the errno the kernel gave at `socket()` (so the program
//! reports what it would have reported without wrapguard, one call later).
//!
//! A refused ping socket is not stood in for when a raw ICMP socket would
//! be allowed: the program's own fallback to a raw socket (iputils `ping`,
//! `traceroute -I`) then works for every destination, and wrapguard carries
//! the raw socket for tunnel ones.

use crate::DatagramKind;

/// Linux's `AF_INET`.
const AF_INET: i32 = 2;
/// Linux's `AF_INET6`.
const AF_INET6: i32 = 10;
/// Linux's `SOCK_DGRAM`.
const SOCK_DGRAM: i32 = 2;
/// Linux's `SOCK_RAW`.
const SOCK_RAW: i32 = 3;
/// The socket type bits of `socket()`'s type argument (the rest are
/// `SOCK_NONBLOCK`/`SOCK_CLOEXEC`).
const SOCK_TYPE_MASK: i32 = 0xf;
/// `IPPROTO_ICMP`.
const IPPROTO_ICMP: i32 = 1;
/// `IPPROTO_ICMPV6`.
const IPPROTO_ICMPV6: i32 = 58;
/// Linux's `EPERM`.
const EPERM: i32 = 1;
/// Linux's `EACCES`.
const EACCES: i32 = 13;

/// Which echo socket `socket(domain, ty, proto)` asks for, if it asks for
/// one: a ping socket (`SOCK_DGRAM`) or a raw ICMP socket (`SOCK_RAW`),
/// ICMP for `AF_INET`, ICMPv6 for `AF_INET6`.
pub fn asked(domain: i32, ty: i32, proto: i32) -> Option<DatagramKind> {
    let icmp = matches!(
        (domain, proto),
        (AF_INET, IPPROTO_ICMP) | (AF_INET6, IPPROTO_ICMPV6)
    );
    match ty & SOCK_TYPE_MASK {
        SOCK_DGRAM if icmp => Some(DatagramKind::Ping),
        SOCK_RAW if icmp => Some(DatagramKind::RawIcmp),
        _ => None,
    }
}

/// Whether wrapguard stands in for an echo socket of `kind` that the
/// kernel refused with `errno`; `raw_allowed` says whether the program
/// could open a raw ICMP socket instead (see the module documentation).
pub fn stand_in(kind: DatagramKind, errno: i32, raw_allowed: bool) -> bool {
    if errno != EACCES && errno != EPERM {
        return false; // not a policy refusal (EMFILE, EAFNOSUPPORT …)
    }
    match kind {
        DatagramKind::Ping => !raw_allowed,
        DatagramKind::RawIcmp => true,
        DatagramKind::Udp => false,
    }
}

/// The socket type (`SOCK_DGRAM`/`SOCK_RAW`) and protocol an echo socket
/// of `kind` in `domain` reports (`SO_TYPE`, `SO_PROTOCOL`).
pub fn reported(kind: DatagramKind, domain: i32) -> (i32, i32) {
    let proto = if domain == AF_INET6 {
        IPPROTO_ICMPV6
    } else {
        IPPROTO_ICMP
    };
    match kind {
        DatagramKind::RawIcmp => (SOCK_RAW, proto),
        DatagramKind::Ping => (SOCK_DGRAM, proto),
        DatagramKind::Udp => (SOCK_DGRAM, 17),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_sockets_are_echo_sockets() {
        assert_eq!(asked(2, 2, 1), Some(DatagramKind::Ping));
        // SOCK_NONBLOCK | SOCK_CLOEXEC do not change the type.
        assert_eq!(
            asked(2, 3 | 0o4000 | 0o2000000, 1),
            Some(DatagramKind::RawIcmp)
        );
        assert_eq!(asked(10, 2, 58), Some(DatagramKind::Ping));
        assert_eq!(asked(10, 2, 1), None, "ICMPv4 on an IPv6 socket");
        assert_eq!(asked(2, 2, 17), None);
        assert_eq!(asked(2, 3, 255), None);
        assert_eq!(asked(2, 1, 1), None, "a stream");
    }

    #[test]
    fn stand_in_only_where_no_echo_socket_is_possible() {
        use DatagramKind::*;
        assert!(stand_in(Ping, EACCES, false));
        assert!(
            !stand_in(Ping, EACCES, true),
            "the program falls back to raw"
        );
        assert!(stand_in(RawIcmp, EPERM, false));
        assert!(stand_in(RawIcmp, EACCES, true));
        assert!(!stand_in(Ping, 24, false), "EMFILE is not a policy refusal");
        assert!(!stand_in(Udp, EACCES, false));
        assert_eq!(reported(RawIcmp, AF_INET6), (SOCK_RAW, IPPROTO_ICMPV6));
        assert_eq!(reported(Ping, AF_INET), (SOCK_DGRAM, IPPROTO_ICMP));
    }
}
