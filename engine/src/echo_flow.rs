//! What differs for datagram flows that carry ICMP echo (ping sockets and
//! raw ICMP sockets, [`DatagramKind::Ping`] / [`DatagramKind::RawIcmp`])
//! from UDP flows: which stack socket backs them, what the router is asked,
//! the identifier a raw socket chose, and the IPv4 header a raw socket reads
//! in front of every reply. `udp_flows` calls these; the flow machinery
//! (data socket, headers, counters) is shared.

use control::DatagramKind;
use std::net::{IpAddr, SocketAddr};
use tcpip::wire::{ipv4, IpProtocol};
use tcpip::{Error, Stack, UdpHandle};

/// Length of the IPv4 header a raw IPv4 socket reads before the message.
pub const RAW_V4_HEADER: usize = ipv4::HEADER_LEN;

/// Opens the stack socket of a flow of `kind` at `at`.
pub fn bind(stack: &mut Stack, kind: DatagramKind, at: SocketAddr) -> Result<UdpHandle, Error> {
    match kind {
        DatagramKind::Udp => stack.udp_bind(at),
        DatagramKind::Ping | DatagramKind::RawIcmp => stack.echo_bind(at),
    }
}

/// Whether `kind` carries ICMP.
pub fn is_icmp(kind: DatagramKind) -> bool {
    kind != DatagramKind::Udp
}

/// What the router is asked for a datagram of `kind` to `dst`.
pub fn route_proto(kind: DatagramKind, dst: SocketAddr) -> (router::Proto, u16) {
    match kind {
        DatagramKind::Udp => (router::Proto::Udp, dst.port()),
        _ if dst.is_ipv4() => (router::Proto::Other(1), 0),
        _ => (router::Proto::Other(58), 0),
    }
}

/// The echo identifier in an ICMP message (bytes 4–5), if it is one.
pub fn ident(msg: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(4)?, *msg.get(5)?]))
}

/// The identifier a raw flow's echo socket must have for `msg`: `Some`
/// when it differs from the socket's current one (`current`).
pub fn raw_rebind_needed(kind: DatagramKind, current: u16, msg: &[u8]) -> Option<u16> {
    if kind != DatagramKind::RawIcmp {
        return None;
    }
    ident(msg).filter(|&i| i != current)
}

/// Writes into `out` (at least [`RAW_V4_HEADER`] bytes) the IPv4 header of
/// a `len`-byte ICMP message from `src` to `dst` that arrived with `ttl`,
/// as a raw socket reads it.
pub fn raw_v4_header(out: &mut [u8], src: IpAddr, dst: IpAddr, len: usize, ttl: u8) -> bool {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src, dst) else {
        return false;
    };
    let Some(h) = out.get_mut(..RAW_V4_HEADER) else {
        return false;
    };
    ipv4::Repr {
        src: s,
        dst: d,
        protocol: IpProtocol::Icmp,
        payload_len: len,
        ttl,
    }
    .emit(&mut ipv4::Packet::new_unchecked(h), 0);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_header_and_idents() {
        // The header of an 84-byte packet, checked with its 64-byte message.
        let mut b = [0xa5u8; 84];
        let (s, d) = (
            "10.77.0.1".parse().expect("a"),
            "10.77.0.2".parse().expect("a"),
        );
        assert!(raw_v4_header(&mut b, s, d, 64, 63));
        let p = ipv4::Packet::new_checked(&b[..]).expect("ip");
        assert_eq!(
            (p.src_addr(), p.dst_addr(), p.ttl()),
            (
                "10.77.0.1".parse().expect("a"),
                "10.77.0.2".parse().expect("a"),
                63
            )
        );
        assert_eq!(p.total_len(), 84);
        assert!(p.verify_checksum());
        assert!(!raw_v4_header(&mut b[..19], s, d, 1, 1));
        let msg = [8u8, 0, 0, 0, 0x12, 0x34, 0, 1];
        assert_eq!(
            raw_rebind_needed(DatagramKind::RawIcmp, 1, &msg),
            Some(0x1234)
        );
        assert_eq!(raw_rebind_needed(DatagramKind::RawIcmp, 0x1234, &msg), None);
        assert_eq!(raw_rebind_needed(DatagramKind::Ping, 1, &msg), None);
        assert_eq!(
            route_proto(DatagramKind::Ping, "[fd77::1]:58".parse().expect("a")),
            (router::Proto::Other(58), 0)
        );
    }
}
