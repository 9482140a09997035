//! ICMP echo: the stack answers echo requests to its addresses (counted,
//! not rate-limited), and echo sockets send requests with their identifier
//! and receive only the replies carrying it, with the TTL they arrived with.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;
use tcpip::wire::{icmp, ipv4, ipv6, IpProtocol};
use tcpip::{Error, Stack, StackConfig};

const US4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const US6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
const PEER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);

fn stack() -> Stack {
    Stack::new(StackConfig {
        addresses: vec![IpAddr::V4(US4), IpAddr::V6(US6)],
        seed: 5,
        control_rate: 2,
        ..StackConfig::default()
    })
}

fn out(st: &mut Stack, now: Instant) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    st.dispatch(now, |p| v.push(p.to_vec()));
    v
}

fn icmp_msg(ty: u8, ident: u16, seq: u16, data: &[u8], v6: Option<(IpAddr, IpAddr)>) -> Vec<u8> {
    let mut m = vec![0u8; 8 + data.len()];
    let mut p = icmp::Packet::new_unchecked(&mut m[..]);
    p.set_header(ty, 0, (ident, seq));
    p.data_mut().copy_from_slice(data);
    p.fill_checksum(v6);
    m
}

fn v4(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20 + payload.len()];
    ipv4::Repr {
        src,
        dst,
        protocol: IpProtocol::Icmp,
        payload_len: payload.len(),
        ttl,
    }
    .emit(&mut ipv4::Packet::new_unchecked(&mut p[..20]), 9);
    p[20..].copy_from_slice(payload);
    p
}

fn v6(src: Ipv6Addr, dst: Ipv6Addr, hops: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 40 + payload.len()];
    ipv6::Repr {
        src,
        dst,
        protocol: IpProtocol::Icmpv6,
        payload_offset: 0,
        payload_len: payload.len(),
        hop_limit: hops,
        frag: None,
    }
    .emit(&mut ipv6::Packet::new_unchecked(&mut p[..40]));
    p[40..].copy_from_slice(payload);
    p
}

#[test]
fn echo_requests_are_answered_without_rate_limit_and_counted() {
    let now = Instant::now();
    let mut st = stack();
    // control_rate is 2/s: five requests at one instant must all be answered.
    for seq in 0..5u16 {
        let m = icmp_msg(icmp::V4_ECHO_REQUEST, 0x4242, seq, b"hello", None);
        st.process(now, &v4(PEER4, US4, 64, &m));
        let pkts = out(&mut st, now);
        assert_eq!(pkts.len(), 1, "request {seq} unanswered");
        let ip = ipv4::Packet::new_checked(&pkts[0][..]).expect("ip");
        assert_eq!((ip.src_addr(), ip.dst_addr()), (US4, PEER4));
        let p = icmp::Packet::new_checked(&pkts[0][20..]).expect("icmp");
        assert_eq!(
            icmp::Repr::parse_v4(&p),
            Ok(icmp::Repr::EchoReply {
                ident: 0x4242,
                seq,
                data: b"hello"
            })
        );
    }
    assert_eq!(st.stats().echo_requests_answered, 5);
    // Not to us: no answer.
    let m = icmp_msg(icmp::V4_ECHO_REQUEST, 1, 1, b"x", None);
    st.process(now, &v4(PEER4, Ipv4Addr::new(10, 0, 0, 9), 64, &m));
    assert!(out(&mut st, now).is_empty());
    assert_eq!(st.stats().echo_requests_answered, 5);
}

#[test]
fn echo_socket_v4_sends_with_its_ident_and_gets_only_its_replies() {
    let now = Instant::now();
    let mut st = stack();
    let h = st
        .echo_bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
        .expect("bind");
    let ident = st.udp_local_addr(h).expect("local").port();
    assert_ne!(ident, 0);
    // The program's identifier (7) and checksum (garbage) are replaced.
    let mut req = icmp_msg(icmp::V4_ECHO_REQUEST, 7, 3, b"payload!", None);
    req[2] = 0xde;
    let to = SocketAddr::new(IpAddr::V4(PEER4), 0);
    assert_eq!(st.udp_send_to(h, &req, to), Ok(req.len()));
    let pkts = out(&mut st, now);
    assert_eq!(pkts.len(), 1);
    let ip = ipv4::Packet::new_checked(&pkts[0][..]).expect("ip");
    assert_eq!((ip.src_addr(), ip.dst_addr()), (US4, PEER4));
    assert_eq!(ip.protocol(), IpProtocol::Icmp);
    let p = icmp::Packet::new_checked(&pkts[0][20..]).expect("icmp");
    assert_eq!(
        icmp::Repr::parse_v4(&p),
        Ok(icmp::Repr::EchoRequest {
            ident,
            seq: 3,
            data: b"payload!"
        })
    );
    assert_eq!(st.stats().echo_requests_sent, 1);
    // A reply for another identifier is dropped (counted); ours is delivered.
    let other = icmp_msg(icmp::V4_ECHO_REPLY, ident.wrapping_add(1), 3, b"no", None);
    st.process(now, &v4(PEER4, US4, 60, &other));
    let reply = icmp_msg(icmp::V4_ECHO_REPLY, ident, 3, b"payload!", None);
    st.process(now, &v4(PEER4, US4, 61, &reply));
    let mut buf = [0u8; 64];
    let (n, from, ttl) = st.udp_recv_meta(h, &mut buf).expect("reply");
    assert_eq!(&buf[..n], &reply[..]);
    assert_eq!(from, to);
    assert_eq!(ttl, 61);
    assert_eq!(st.udp_recv_meta(h, &mut buf), Err(Error::WouldBlock));
    assert_eq!(st.stats().echo_replies_delivered, 1);
    assert_eq!(st.stats().echo_replies_dropped, 1);
    // Not an echo request, or too large: refused.
    let bad = icmp_msg(icmp::V4_ECHO_REPLY, 7, 3, b"", None);
    assert_eq!(st.udp_send_to(h, &bad, to), Err(Error::InvalidArgument));
    let huge = icmp_msg(icmp::V4_ECHO_REQUEST, 7, 3, &[0u8; 65_508], None);
    assert_eq!(st.udp_send_to(h, &huge, to), Err(Error::MessageTooLong));
    let fits = icmp_msg(icmp::V4_ECHO_REQUEST, 7, 3, &[0u8; 1392], None);
    assert_eq!(st.udp_send_to(h, &fits, to), Ok(1400));
    assert_eq!(out(&mut st, now)[0].len(), 1420);
    // Closing frees the identifier.
    st.udp_close(h).expect("close");
    let again = st
        .echo_bind(SocketAddr::new(IpAddr::V4(US4), ident))
        .expect("rebind");
    assert!(st.echo_bind(SocketAddr::new(IpAddr::V4(US4), ident)) == Err(Error::AddrInUse));
    let _ = again;
}

#[test]
fn echo_socket_v6_checksums_with_pseudo_header_and_keeps_hop_limit() {
    let now = Instant::now();
    let mut st = stack();
    let h = st
        .echo_bind(SocketAddr::new(IpAddr::V6(US6), 0x1234))
        .expect("bind");
    let (s6, p6) = (IpAddr::V6(US6), IpAddr::V6(PEER6));
    let req = icmp_msg(icmp::V6_ECHO_REQUEST, 0, 1, b"six", None);
    st.udp_send_to(h, &req, SocketAddr::new(p6, 0))
        .expect("send");
    let pkts = out(&mut st, now);
    assert_eq!(pkts.len(), 1);
    let p = icmp::Packet::new_checked(&pkts[0][40..]).expect("icmp");
    assert_eq!(
        icmp::Repr::parse_v6(&p, s6, p6),
        Ok(icmp::Repr::EchoRequest {
            ident: 0x1234,
            seq: 1,
            data: b"six"
        })
    );
    let reply = icmp_msg(icmp::V6_ECHO_REPLY, 0x1234, 1, b"six", Some((p6, s6)));
    st.process(now, &v6(PEER6, US6, 63, &reply));
    let mut buf = [0u8; 64];
    let (n, from, hops) = st.udp_recv_meta(h, &mut buf).expect("reply");
    assert_eq!((&buf[..n], from.ip(), hops), (&reply[..], p6, 63));
    // The peer pings us over IPv6 too.
    let ping = icmp_msg(icmp::V6_ECHO_REQUEST, 9, 9, b"q", Some((p6, s6)));
    st.process(now, &v6(PEER6, US6, 64, &ping));
    let pkts = out(&mut st, now);
    let p = icmp::Packet::new_checked(&pkts[0][40..]).expect("icmp");
    assert_eq!(
        icmp::Repr::parse_v6(&p, s6, p6),
        Ok(icmp::Repr::EchoReply {
            ident: 9,
            seq: 9,
            data: b"q"
        })
    );
}

#[test]
fn udp_datagrams_keep_their_ttl() {
    let now = Instant::now();
    let mut st = stack();
    let h = st
        .udp_bind(SocketAddr::new(IpAddr::V4(US4), 5000))
        .expect("bind");
    let mut d = vec![0u8; 8 + 2];
    tcpip::wire::udp::Repr {
        src_port: 9,
        dst_port: 5000,
        payload: b"hi",
    }
    .emit_header(&mut d);
    d[8..].copy_from_slice(b"hi");
    tcpip::wire::udp::Packet::new_unchecked(&mut d[..])
        .fill_checksum(IpAddr::V4(PEER4), IpAddr::V4(US4));
    let mut p = v4(PEER4, US4, 42, &d);
    p[9] = 17;
    // The IPv4 checksum covers the protocol byte: emit again as UDP.
    ipv4::Repr {
        src: PEER4,
        dst: US4,
        protocol: IpProtocol::Udp,
        payload_len: d.len(),
        ttl: 42,
    }
    .emit(&mut ipv4::Packet::new_unchecked(&mut p[..20]), 3);
    st.process(now, &p);
    let mut buf = [0u8; 16];
    let (n, _, ttl) = st.udp_recv_meta(h, &mut buf).expect("datagram");
    assert_eq!((&buf[..n], ttl), (&b"hi"[..], 42));
}
