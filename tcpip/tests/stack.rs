//! Stack-level behaviour driven with hand-made packets: ICMP errors reach
//! the right socket with the right errno, fragments are reassembled, IPv6
//! extension headers are walked, bad checksums are counted, control replies
//! are rate-limited, and events tell the driver what changed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};
use tcpip::wire::{icmp, ipv4, ipv6, tcp, udp, IpProtocol};
use tcpip::{Error, SocketEventKind, SocketHandle, Stack, StackConfig, TcpState};

const US4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const US6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
const PEER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);

fn stack() -> Stack {
    Stack::new(StackConfig {
        addresses: vec![IpAddr::V4(US4), IpAddr::V6(US6)],
        seed: 3,
        control_rate: 10,
        ..StackConfig::default()
    })
}

fn out(st: &mut Stack, now: Instant) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    st.dispatch(now, |p| v.push(p.to_vec()));
    v
}

fn v4(proto: IpProtocol, src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20 + payload.len()];
    ipv4::Repr {
        src,
        dst,
        protocol: proto,
        payload_len: payload.len(),
        ttl: 64,
    }
    .emit(&mut ipv4::Packet::new_unchecked(&mut p[..20]), 9);
    p[20..].copy_from_slice(payload);
    p
}

fn udp_payload(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut d = vec![0u8; 8 + data.len()];
    udp::Repr {
        src_port: sport,
        dst_port: dport,
        payload: data,
    }
    .emit_header(&mut d);
    d[8..].copy_from_slice(data);
    udp::Packet::new_unchecked(&mut d[..]).fill_checksum(src, dst);
    d
}

fn icmp_v4(ty: u8, code: u8, rest: (u16, u16), quote: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; 8 + quote.len()];
    let mut p = icmp::Packet::new_unchecked(&mut m[..]);
    p.set_header(ty, code, rest);
    p.data_mut().copy_from_slice(quote);
    p.fill_checksum(None);
    v4(IpProtocol::Icmp, PEER4, US4, &m)
}

fn connect_and_take_syn(st: &mut Stack, now: Instant) -> (tcpip::TcpHandle, Vec<u8>) {
    let h = st
        .tcp_connect(now, None, SocketAddr::new(IpAddr::V4(PEER4), 80))
        .expect("connect");
    let pkts = out(st, now);
    assert_eq!(pkts.len(), 1);
    (h, pkts[0].clone())
}

#[test]
fn icmp_port_unreachable_refuses_connect() {
    let now = Instant::now();
    let mut st = stack();
    let (h, syn) = connect_and_take_syn(&mut st, now);
    st.process(
        now,
        &icmp_v4(icmp::V4_DST_UNREACHABLE, 3, (0, 0), &syn[..28]),
    );
    assert_eq!(st.tcp_state(h), Ok(TcpState::Closed));
    assert_eq!(st.tcp_error(h), Ok(Some(Error::ConnectionRefused)));
    let ev: Vec<_> = std::iter::from_fn(|| st.poll_event()).collect();
    assert!(ev.iter().any(|e| e.handle == SocketHandle::Tcp(h)
        && e.kind == SocketEventKind::Error(Error::ConnectionRefused)));
}

#[test]
fn icmp_host_unreachable_fails_connect_with_ehostunreach() {
    let now = Instant::now();
    let mut st = stack();
    let (h, syn) = connect_and_take_syn(&mut st, now);
    st.process(
        now,
        &icmp_v4(icmp::V4_DST_UNREACHABLE, 1, (0, 0), &syn[..28]),
    );
    assert_eq!(st.tcp_error(h), Ok(Some(Error::HostUnreachable)));
    assert_eq!(Error::HostUnreachable.errno(), 113);
}

#[test]
fn icmp_with_wrong_quote_is_ignored() {
    let now = Instant::now();
    let mut st = stack();
    let (h, mut syn) = connect_and_take_syn(&mut st, now);
    syn[24] ^= 0xff; // a sequence number we never sent
    st.process(
        now,
        &icmp_v4(icmp::V4_DST_UNREACHABLE, 3, (0, 0), &syn[..28]),
    );
    assert_eq!(st.tcp_state(h), Ok(TcpState::SynSent));
}

#[test]
fn closed_udp_port_gets_icmp_and_closed_tcp_port_rst_rate_limited() {
    let now = Instant::now();
    let mut st = stack();
    let d = udp_payload(PEER4.into(), US4.into(), 5000, 9999, b"hi");
    st.process(now, &v4(IpProtocol::Udp, PEER4, US4, &d));
    let pkts = out(&mut st, now);
    assert_eq!(pkts.len(), 1);
    let ip = ipv4::Packet::new_checked(&pkts[0][..]).expect("ip");
    assert_eq!(ip.protocol(), IpProtocol::Icmp);
    let m = icmp::Packet::new_checked(ip.payload()).expect("icmp");
    assert_eq!((m.msg_type(), m.msg_code()), (3, 3));
    // A flood of SYNs to a closed port: at most `control_rate` RSTs.
    for i in 0..100u16 {
        let syn = tcp::Repr {
            src_port: 1000 + i,
            dst_port: 4444,
            seq: 1,
            ack: 0,
            flags: tcp::Flags::SYN,
            window: 1000,
            options: tcp::Options::default(),
            payload: &[],
        };
        let mut s = vec![0u8; 20];
        syn.emit_header(&mut s);
        tcp::Packet::new_unchecked(&mut s[..]).fill_checksum(PEER4.into(), US4.into());
        st.process(now, &v4(IpProtocol::Tcp, PEER4, US4, &s));
    }
    let rsts = out(&mut st, now).len();
    assert!(rsts <= 10 && rsts > 0, "{rsts} RSTs");
    assert!(st.stats().control_dropped > 0);
}

#[test]
fn bad_checksums_are_dropped_and_counted() {
    let now = Instant::now();
    let mut st = stack();
    let u = st
        .udp_bind(SocketAddr::new(IpAddr::V4(US4), 53))
        .expect("bind");
    let mut d = udp_payload(PEER4.into(), US4.into(), 5000, 53, b"query");
    d[9] ^= 1;
    st.process(now, &v4(IpProtocol::Udp, PEER4, US4, &d));
    assert_eq!(st.stats().rx_bad_checksum, 1);
    assert_eq!(st.udp_recv_from(u, &mut [0u8; 16]), Err(Error::WouldBlock));
    let mut p = v4(
        IpProtocol::Udp,
        PEER4,
        US4,
        &udp_payload(PEER4.into(), US4.into(), 1, 53, b"x"),
    );
    p[8] ^= 1; // IP header checksum
    st.process(now, &p);
    assert_eq!(st.stats().rx_bad_checksum, 2);
}

#[test]
fn ipv4_fragments_are_reassembled() {
    let now = Instant::now();
    let mut st = stack();
    let u = st
        .udp_bind(SocketAddr::new(IpAddr::V4(US4), 53))
        .expect("bind");
    let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    let d = udp_payload(PEER4.into(), US4.into(), 5000, 53, &data);
    // Three fragments, sent last first.
    let cuts = [(0usize, 1480usize), (1480, 2960), (2960, d.len())];
    for &(a, b) in cuts.iter().rev() {
        let mut p = v4(IpProtocol::Udp, PEER4, US4, &d[a..b]);
        let mut ip = ipv4::Packet::new_unchecked(&mut p[..]);
        ip.set_ident(77);
        ip.set_flags_offset(false, b != d.len(), a as u16);
        ip.fill_checksum();
        st.process(now, &p);
    }
    let mut buf = [0u8; 4000];
    let (n, from) = st.udp_recv_from(u, &mut buf).expect("datagram");
    assert_eq!(&buf[..n], &data[..]);
    assert_eq!(from, SocketAddr::new(IpAddr::V4(PEER4), 5000));
    assert_eq!(st.stats().reassembled, 1);
    // An incomplete datagram expires.
    let mut p = v4(IpProtocol::Udp, PEER4, US4, &d[..1480]);
    let mut ip = ipv4::Packet::new_unchecked(&mut p[..]);
    ip.set_ident(78);
    ip.set_flags_offset(false, true, 0);
    ip.fill_checksum();
    st.process(now, &p);
    assert!(st.poll_at().is_some());
    st.handle_timeout(now + Duration::from_secs(31));
    assert_eq!(st.poll_at(), None);
}

#[test]
fn ipv6_extension_headers_are_walked_and_echo_answered() {
    let now = Instant::now();
    let mut st = stack();
    let u = st
        .udp_bind(SocketAddr::new(IpAddr::V6(US6), 53))
        .expect("bind");
    let d = udp_payload(PEER6.into(), US6.into(), 7, 53, b"v6");
    // Hop-by-hop (8 bytes) → destination options (8 bytes) → UDP.
    let mut pl = vec![60, 0, 1, 4, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0];
    pl.extend_from_slice(&d);
    let mut p = vec![0u8; 40 + pl.len()];
    ipv6::Repr {
        src: PEER6,
        dst: US6,
        protocol: IpProtocol::HopByHop,
        payload_offset: 0,
        payload_len: pl.len(),
        hop_limit: 64,
        frag: None,
    }
    .emit(&mut ipv6::Packet::new_unchecked(&mut p[..40]));
    p[40..].copy_from_slice(&pl);
    st.process(now, &p);
    let mut buf = [0u8; 16];
    assert_eq!(st.udp_recv_from(u, &mut buf).map(|(n, _)| n), Ok(2));
    // Echo request → echo reply with the same data.
    let mut m = vec![0u8; 12];
    let mut e = icmp::Packet::new_unchecked(&mut m[..]);
    e.set_header(icmp::V6_ECHO_REQUEST, 0, (5, 6));
    e.data_mut().copy_from_slice(b"ping");
    e.fill_checksum(Some((PEER6.into(), US6.into())));
    let mut p = vec![0u8; 40 + m.len()];
    ipv6::Repr {
        src: PEER6,
        dst: US6,
        protocol: IpProtocol::Icmpv6,
        payload_offset: 0,
        payload_len: m.len(),
        hop_limit: 64,
        frag: None,
    }
    .emit(&mut ipv6::Packet::new_unchecked(&mut p[..40]));
    p[40..].copy_from_slice(&m);
    st.process(now, &p);
    let pkts = out(&mut st, now);
    assert_eq!(pkts.len(), 1);
    let r = ipv6::Packet::new_checked(&pkts[0][..]).expect("v6");
    let reply = icmp::Packet::new_checked(r.payload()).expect("icmp");
    assert!(reply.verify_checksum_v6(US6.into(), PEER6.into()));
    assert_eq!(
        icmp::Repr::parse_v6(&reply, US6.into(), PEER6.into()),
        Ok(icmp::Repr::EchoReply {
            ident: 5,
            seq: 6,
            data: b"ping"
        })
    );
}

#[test]
fn packet_too_big_lowers_mss() {
    let now = Instant::now();
    let mut st = stack();
    let (h, syn) = connect_and_take_syn(&mut st, now);
    // Complete the handshake.
    let sp = ipv4::Packet::new_checked(&syn[..]).expect("ip");
    let t = tcp::Packet::new_checked(sp.payload()).expect("tcp");
    let sa = tcp::Repr {
        src_port: 80,
        dst_port: t.src_port(),
        seq: 5000,
        ack: t.seq_number().wrapping_add(1),
        flags: tcp::Flags::SYN.with(tcp::Flags::ACK),
        window: 65535,
        options: tcp::Options {
            mss: Some(1380),
            ..Default::default()
        },
        payload: &[],
    };
    let mut s = vec![0u8; sa.header_len()];
    sa.emit_header(&mut s);
    tcp::Packet::new_unchecked(&mut s[..]).fill_checksum(PEER4.into(), US4.into());
    st.process(now, &v4(IpProtocol::Tcp, PEER4, US4, &s));
    assert_eq!(st.tcp_state(h), Ok(TcpState::Established));
    out(&mut st, now);
    st.tcp_send(h, &[0u8; 4000]).expect("send");
    let pkts = out(&mut st, now);
    assert_eq!(pkts[0].len(), 1420);
    st.process(
        now,
        &icmp_v4(icmp::V4_DST_UNREACHABLE, 4, (0, 1000), &pkts[0][..28]),
    );
    assert_eq!(st.tcp_info(h).map(|i| i.mss), Ok(960));
    let pkts = out(&mut st, now);
    assert!(
        pkts.iter().all(|p| p.len() <= 1000),
        "resent within the new MTU"
    );
}

#[test]
fn isns_follow_rfc6528_and_are_seeded() {
    let now = Instant::now();
    let isn = |seed: u64, port: u16| {
        let mut st = Stack::new(StackConfig {
            addresses: vec![IpAddr::V4(US4)],
            seed,
            ..StackConfig::default()
        });
        st.tcp_connect(
            now,
            Some(SocketAddr::new(IpAddr::V4(US4), 40000)),
            SocketAddr::new(IpAddr::V4(PEER4), port),
        )
        .expect("connect");
        let p = out(&mut st, now).remove(0);
        let ip = ipv4::Packet::new_checked(&p[..]).expect("ip");
        tcp::Packet::new_checked(ip.payload())
            .expect("tcp")
            .seq_number()
    };
    assert_eq!(
        isn(1, 80),
        isn(1, 80),
        "same secret, same tuple, same clock"
    );
    assert_ne!(isn(1, 80), isn(1, 81), "F() depends on the 4-tuple");
    assert_ne!(isn(1, 80), isn(2, 80), "F() depends on the secret");
}

#[test]
fn tsvals_keep_increasing_across_connections_to_one_peer() {
    // A peer in TIME-WAIT for an earlier connection on the same ports
    // accepts a new SYN only if its TSval is newer (RFC 6191): the offset
    // must follow the address pair, not the connection.
    let t0 = Instant::now();
    let mut st = stack();
    let tsval = |st: &mut Stack, now: Instant, port: u16| {
        st.tcp_connect(
            now,
            Some(SocketAddr::new(IpAddr::V4(US4), port)),
            SocketAddr::new(IpAddr::V4(PEER4), 80),
        )
        .expect("connect");
        let p = out(st, now).remove(0);
        let ip = ipv4::Packet::new_checked(&p[..]).expect("ip");
        let t = tcp::Packet::new_checked(ip.payload()).expect("tcp");
        let r = tcp::Repr::parse(&t, IpAddr::V4(US4), IpAddr::V4(PEER4)).expect("repr");
        r.options.timestamp.expect("SYN carries a timestamp").0
    };
    let a = tsval(&mut st, t0, 40000);
    let b = tsval(&mut st, t0 + Duration::from_millis(500), 40001);
    let c = tsval(&mut st, t0 + Duration::from_millis(1500), 40002);
    assert_eq!(b.wrapping_sub(a), 500, "one clock per address pair");
    assert_eq!(c.wrapping_sub(b), 1000);
    // Another peer gets another (unpredictable) offset.
    let other = st
        .tcp_connect(
            t0,
            Some(SocketAddr::new(IpAddr::V4(US4), 40003)),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)), 80),
        )
        .map(|_| out(&mut st, t0).remove(0))
        .expect("connect");
    let ip = ipv4::Packet::new_checked(&other[..]).expect("ip");
    let t = tcp::Packet::new_checked(ip.payload()).expect("tcp");
    let r = tcp::Repr::parse(&t, IpAddr::V4(US4), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)))
        .expect("repr");
    assert_ne!(r.options.timestamp.map(|t| t.0), Some(a));
}

#[test]
fn keepalive_can_be_enabled_per_socket() {
    let now = Instant::now();
    let mut st = stack();
    let (h, _) = connect_and_take_syn(&mut st, now);
    st.tcp_set_keepalive(now, h, Some(Duration::from_secs(5)))
        .expect("keepalive");
    assert!(st.poll_at().is_some());
}

/// A program that sends a datagram and closes its socket at once (then
/// exits) expects the datagram to leave, as with a kernel socket: closing
/// frees the address and stops delivery, but what was queued is still sent.
#[test]
fn udp_close_still_sends_queued_datagrams_then_frees_the_socket() {
    let now = Instant::now();
    let mut st = stack();
    let local = SocketAddr::new(IpAddr::V4(US4), 4000);
    let u = st.udp_bind(local).expect("bind");
    let peer = SocketAddr::new(IpAddr::V4(PEER4), 53);
    st.udp_send_to(u, b"first", peer).expect("queued");
    st.udp_send_to(u, b"second", peer).expect("queued");
    st.udp_close(u).expect("close");
    assert_eq!(st.udp_close(u), Err(Error::InvalidHandle), "closed once");

    // The address is free at once, and nothing is delivered to the old one.
    let again = st.udp_bind(local).expect("address free after close");
    let sent = out(&mut st, now);
    let payloads: Vec<&[u8]> = sent.iter().map(|p| &p[28..]).collect();
    assert_eq!(payloads, [&b"first"[..], &b"second"[..]]);
    assert!(out(&mut st, now).is_empty(), "sent once");
    assert_eq!(st.udp_close(u), Err(Error::InvalidHandle), "freed");

    // The new socket at the same address works as usual.
    let d = udp_payload(PEER4.into(), US4.into(), 53, 4000, b"reply");
    st.process(now, &v4(IpProtocol::Udp, PEER4, US4, &d));
    let mut buf = [0u8; 16];
    assert_eq!(st.udp_recv_from(again, &mut buf), Ok((5, peer)));
}

/// The SYN a fresh connection from `st` to PEER4:80 sends at `now`: its
/// source port, sequence number and TSval.
fn first_syn(st: &mut Stack, now: Instant, port: Option<u16>) -> (u16, u32, u32) {
    st.tcp_connect(
        now,
        port.map(|p| SocketAddr::new(IpAddr::V4(US4), p)),
        SocketAddr::new(IpAddr::V4(PEER4), 80),
    )
    .expect("connect");
    let p = out(st, now).remove(0);
    let ip = ipv4::Packet::new_checked(&p[..]).expect("ip");
    let t = tcp::Packet::new_checked(ip.payload()).expect("tcp");
    let r = tcp::Repr::parse(&t, IpAddr::V4(US4), IpAddr::V4(PEER4)).expect("repr");
    let ts = r.options.timestamp.expect("SYN carries a timestamp").0;
    (r.src_port, r.seq, ts)
}

#[test]
fn a_second_process_of_one_key_continues_the_isn_and_tsval_clocks() {
    // Two stacks, as two wrapguard processes of one key one after the
    // other: the second's SYN on the same ports must be newer than the
    // first's (TSval and ISN), or a peer in TIME-WAIT for the first
    // process's connection refuses it and the connect waits 1 s.
    let anchor = Duration::from_secs(1_800_000_000);
    let proc = |seed: u64, at: Instant, read: Duration| {
        Stack::new(StackConfig {
            addresses: vec![IpAddr::V4(US4)],
            seed,
            clock_anchor: Some((at, read)),
            clock_key: Some((7, 8)),
            ..StackConfig::default()
        })
    };
    let t0 = Instant::now();
    let mut first = proc(1, t0, anchor);
    let (_, isn1, ts1) = first_syn(&mut first, t0 + Duration::from_millis(900), Some(40000));
    // The second process starts 100 ms after that SYN (its own Instant origin).
    let t1 = t0 + Duration::from_secs(1);
    let mut second = proc(2, t1, anchor + Duration::from_secs(1));
    let (_, isn2, ts2) = first_syn(&mut second, t1 + Duration::from_millis(5), Some(40000));
    assert_eq!(
        ts2.wrapping_sub(ts1),
        105,
        "one TSval clock for both processes"
    );
    assert_eq!(
        isn2.wrapping_sub(isn1),
        105_000 / 4,
        "one ISN clock (4 µs) for both processes"
    );
    // Without the shared key the offsets are unrelated (the old behaviour).
    let mut lone = Stack::new(StackConfig {
        addresses: vec![IpAddr::V4(US4)],
        seed: 2,
        clock_anchor: Some((t1, anchor + Duration::from_secs(1))),
        ..StackConfig::default()
    });
    let (_, _, ts3) = first_syn(&mut lone, t1 + Duration::from_millis(5), Some(40000));
    assert_ne!(ts3.wrapping_sub(ts1), 105);
}

#[test]
fn successive_connections_take_successive_ephemeral_ports() {
    // RFC 6056 algorithm 3: a port comes back only after the whole range,
    // not at random into a peer's TIME-WAIT of an earlier connection.
    let t0 = Instant::now();
    let mut st = stack();
    let ports: Vec<u16> = (0..50)
        .map(|i| first_syn(&mut st, t0 + Duration::from_millis(i), None).0)
        .collect();
    for w in ports.windows(2) {
        let next = if w[0] == 60999 { 32768 } else { w[0] + 1 };
        assert_eq!(w[1], next, "ports {ports:?}");
    }
}
