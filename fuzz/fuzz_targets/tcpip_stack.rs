#![no_main]
//! Feeds arbitrary packets into a stack that has a listener, a UDP socket,
//! a connection in SYN-SENT and an ESTABLISHED one. Nothing may panic, and
//! every packet the stack emits must be a well-formed IP packet within the
//! MTU. Input format: repeated `[flags, time_step, len_hi, len_lo, bytes…]`;
//! flag bit 0 asks the harness to fix the checksums so the fuzzer gets past
//! them, bit 1 runs the application side (reads, writes, closes).
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tcpip::wire::{ipv4, ipv6, tcp, udp, IpProtocol};
use tcpip::{Stack, StackConfig};

const US: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

fn fix_checksums(p: &mut [u8]) {
    match p.first().map(|b| b >> 4) {
        Some(4) => {
            let Ok(mut v) = ipv4::Packet::new_checked(&mut *p) else {
                return;
            };
            v.fill_checksum();
            let (hl, tl) = (v.header_len(), usize::from(v.total_len()));
            let (src, dst, proto) = (v.src_addr(), v.dst_addr(), v.protocol());
            fix_l4(&mut p[hl..tl], src.into(), dst.into(), proto);
        }
        Some(6) => {
            let Ok(v) = ipv6::Packet::new_checked(&*p) else {
                return;
            };
            let Ok(r) = ipv6::Repr::parse(&v) else { return };
            let start = ipv6::HEADER_LEN + r.payload_offset;
            let end = ipv6::HEADER_LEN + usize::from(v.payload_len());
            fix_l4(&mut p[start..end], r.src.into(), r.dst.into(), r.protocol);
        }
        _ => {}
    }
}

fn fix_l4(l4: &mut [u8], src: IpAddr, dst: IpAddr, proto: IpProtocol) {
    match proto {
        IpProtocol::Tcp if l4.len() >= tcp::HEADER_LEN => {
            tcp::Packet::new_unchecked(l4).fill_checksum(src, dst)
        }
        IpProtocol::Udp if l4.len() >= udp::HEADER_LEN => {
            let n = l4.len() as u16;
            l4[4..6].copy_from_slice(&n.to_be_bytes());
            udp::Packet::new_unchecked(l4).fill_checksum(src, dst)
        }
        IpProtocol::Icmp if l4.len() >= 8 => {
            tcpip::wire::icmp::Packet::new_unchecked(l4).fill_checksum(None)
        }
        IpProtocol::Icmpv6 if l4.len() >= 8 => {
            tcpip::wire::icmp::Packet::new_unchecked(l4).fill_checksum(Some((src, dst)))
        }
        _ => {}
    }
}

fn check_output(st: &mut Stack, now: Instant, buf: &mut [u8]) {
    let mut guard = 0;
    while let Some(n) = st.poll_transmit(now, buf) {
        assert!(n <= 1420);
        if n > 0 {
            let p = &buf[..n];
            match p[0] >> 4 {
                4 => {
                    let v = ipv4::Packet::new_checked(p).expect("we emit valid IPv4");
                    assert!(v.verify_checksum());
                }
                6 => {
                    ipv6::Packet::new_checked(p).expect("we emit valid IPv6");
                }
                _ => panic!("bad version"),
            }
        }
        guard += 1;
        if guard > 10_000 {
            break;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::now();
    let mut st = Stack::new(StackConfig {
        addresses: vec![US, "fd00::2".parse().expect("addr")],
        seed: 1,
        tcp: tcpip::TcpConfig {
            rx_buffer: 8192,
            tx_buffer: 8192,
            ..Default::default()
        },
        ..StackConfig::default()
    });
    let l = st.tcp_listen(SocketAddr::new(US, 80), 4).expect("listen");
    let u = st.udp_bind(SocketAddr::new(US, 53)).expect("udp");
    let pending = st
        .tcp_connect(now, None, SocketAddr::new(PEER, 81))
        .expect("connect");
    let est = st
        .tcp_connect(now, None, SocketAddr::new(PEER, 80))
        .expect("connect");
    let mut buf = vec![0u8; 2048];
    // Complete the second connection's handshake by hand.
    let local = st.local_addr(est).expect("local");
    while let Some(n) = st.poll_transmit(now, &mut buf) {
        let Ok(ip) = ipv4::Packet::new_checked(&buf[..n]) else {
            continue;
        };
        let Ok(t) = tcp::Packet::new_checked(ip.payload()) else {
            continue;
        };
        if t.src_port() != local.port() {
            continue;
        }
        let syn_ack = tcp::Repr {
            src_port: 80,
            dst_port: local.port(),
            seq: 1000,
            ack: t.seq_number().wrapping_add(1),
            flags: tcp::Flags::SYN.with(tcp::Flags::ACK),
            window: 8192,
            options: tcp::Options {
                mss: Some(1000),
                ..Default::default()
            },
            payload: &[],
        };
        let mut pkt = vec![0u8; 20 + syn_ack.header_len()];
        ipv4::Repr {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            protocol: IpProtocol::Tcp,
            payload_len: syn_ack.header_len(),
            ttl: 64,
        }
        .emit(&mut ipv4::Packet::new_unchecked(&mut pkt[..20]), 1);
        syn_ack.emit_header(&mut pkt[20..]);
        tcp::Packet::new_unchecked(&mut pkt[20..]).fill_checksum(PEER, US);
        st.process(now, &pkt);
        break;
    }
    let _ = st.tcp_send(est, b"some data to have in flight");
    check_output(&mut st, now, &mut buf);

    let mut rest = data;
    while rest.len() >= 4 {
        let flags = rest[0];
        now += Duration::from_millis(u64::from(rest[1]) * 7);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]))
            .min(rest.len() - 4)
            .min(2000);
        let mut pkt = rest[4..4 + len].to_vec();
        rest = &rest[4 + len..];
        if flags & 1 != 0 {
            fix_checksums(&mut pkt);
        }
        st.process(now, &pkt);
        if flags & 2 != 0 {
            let mut r = [0u8; 512];
            let _ = st.tcp_recv(est, &mut r);
            let _ = st.tcp_send(est, &r[..usize::from(flags >> 2)]);
            let _ = st.udp_recv_from(u, &mut r);
            if let Some(h) = st.tcp_accept(l) {
                let _ = st.tcp_send(h, b"hi");
                if flags & 4 != 0 {
                    let _ = st.tcp_close(now, h);
                }
            }
            if flags & 0x80 != 0 {
                let _ = st.tcp_shutdown_write(now, est);
            }
        }
        st.handle_timeout(now);
        check_output(&mut st, now, &mut buf);
        while st.poll_event().is_some() {}
    }
    let _ = st.tcp_state(pending);
    let _ = st.poll_at();
});
