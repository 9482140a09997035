//! The few header fields the engine routes on, read through tcpip's typed
//! views (no offsets here): destination or source address, protocol, and
//! the destination port of TCP/UDP.

use std::net::IpAddr;
use tcpip::wire::{ipv4, ipv6, IpProtocol};

/// Where an outgoing IP packet goes: (destination, protocol, destination port).
pub fn destination(packet: &[u8]) -> Option<(IpAddr, router::Proto, u16)> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => {
            let p = ipv4::Packet::new_checked(packet).ok()?;
            let (proto, port) = transport(p.protocol(), p.payload());
            Some((IpAddr::V4(p.dst_addr()), proto, port))
        }
        Some(6) => {
            let p = ipv6::Packet::new_checked(packet).ok()?;
            let (proto, port) = transport(p.next_header(), p.payload());
            Some((IpAddr::V6(p.dst_addr()), proto, port))
        }
        _ => None,
    }
}

/// The source address of an incoming IP packet.
pub fn source(packet: &[u8]) -> Option<IpAddr> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => ipv4::Packet::new_checked(packet)
            .ok()
            .map(|p| IpAddr::V4(p.src_addr())),
        Some(6) => ipv6::Packet::new_checked(packet)
            .ok()
            .map(|p| IpAddr::V6(p.src_addr())),
        _ => None,
    }
}

fn transport(proto: IpProtocol, payload: &[u8]) -> (router::Proto, u16) {
    // TCP and UDP both start with source port, destination port.
    let dport = || {
        payload
            .get(2..4)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    };
    match proto {
        IpProtocol::Tcp => (router::Proto::Tcp, dport()),
        IpProtocol::Udp => (router::Proto::Udp, dport()),
        other => (router::Proto::Other(u8::from(other)), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_v4_tcp_destination_and_source() {
        // 20-byte IPv4 header + 20-byte TCP header, checksum not needed here.
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&40u16.to_be_bytes());
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 77, 0, 2]);
        p[16..20].copy_from_slice(&[10, 77, 0, 1]);
        p[22..24].copy_from_slice(&8080u16.to_be_bytes());
        let d = destination(&p);
        assert_eq!(
            d,
            Some(("10.77.0.1".parse().expect("ip"), router::Proto::Tcp, 8080))
        );
        assert_eq!(source(&p), Some("10.77.0.2".parse().expect("ip")));
        assert_eq!(destination(&p[..10]), None);
        assert_eq!(source(&[0x00]), None);
    }
}
