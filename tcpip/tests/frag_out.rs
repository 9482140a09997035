//! Datagrams larger than the MTU leave in fragments (IPv4 without DF,
//! IPv6 with a Fragment header), each within the MTU, and a second stack
//! reassembles them into the original datagram; a large echo request to us
//! is answered in fragments too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;
use tcpip::wire::{icmp, ipv4, ipv6, IpProtocol};
use tcpip::{Stack, StackConfig};

const A4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const B4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const A6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
const B6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);

fn stack(v4: Ipv4Addr, v6: Ipv6Addr, seed: u64) -> Stack {
    Stack::new(StackConfig {
        addresses: vec![IpAddr::V4(v4), IpAddr::V6(v6)],
        seed,
        ..StackConfig::default()
    })
}

fn out(st: &mut Stack, now: Instant) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    st.dispatch(now, |p| v.push(p.to_vec()));
    v
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn udp_4000_bytes_v4_leaves_in_three_fragments_and_reassembles() {
    let now = Instant::now();
    let (mut a, mut b) = (stack(A4, A6, 1), stack(B4, B6, 2));
    let ha = a
        .udp_bind(SocketAddr::new(IpAddr::V4(A4), 4000))
        .expect("bind");
    let hb = b
        .udp_bind(SocketAddr::new(IpAddr::V4(B4), 7))
        .expect("bind");
    let data = payload(4000);
    let to = SocketAddr::new(IpAddr::V4(B4), 7);
    assert_eq!(a.udp_send_to(ha, &data, to), Ok(4000));
    let pkts = out(&mut a, now);
    assert_eq!(pkts.len(), 3, "4008 bytes of UDP in 1400-byte pieces");
    let mut offsets = Vec::new();
    for p in &pkts {
        assert!(p.len() <= 1420, "fragment of {} bytes", p.len());
        let ip = ipv4::Packet::new_checked(&p[..]).expect("ip");
        assert!(ip.verify_checksum());
        assert!(!ip.dont_frag());
        assert_eq!(ip.protocol(), IpProtocol::Udp);
        offsets.push((ip.frag_offset(), ip.more_frags(), ip.ident()));
    }
    let id = offsets[0].2;
    assert_eq!(
        offsets,
        vec![(0, true, id), (1400, true, id), (2800, false, id)]
    );
    assert_eq!(a.stats().fragmented, 1);
    assert_eq!(a.stats().fragments_sent, 3);
    // Out of order on the way: still one datagram at the far end.
    for i in [2, 0, 1] {
        b.process(now, &pkts[i]);
    }
    let mut buf = vec![0u8; 5000];
    let (n, from) = b.udp_recv_from(hb, &mut buf).expect("reassembled");
    assert_eq!(
        (&buf[..n], from),
        (&data[..], SocketAddr::new(IpAddr::V4(A4), 4000))
    );
    // Small datagrams still go whole, with DF.
    a.udp_send_to(ha, b"small", to).expect("send");
    let pkts = out(&mut a, now);
    assert_eq!(pkts.len(), 1);
    assert!(ipv4::Packet::new_checked(&pkts[0][..])
        .expect("ip")
        .dont_frag());
}

#[test]
fn udp_v6_fragments_carry_a_fragment_header_and_reassemble() {
    let now = Instant::now();
    let (mut a, mut b) = (stack(A4, A6, 3), stack(B4, B6, 4));
    let ha = a
        .udp_bind(SocketAddr::new(IpAddr::V6(A6), 4000))
        .expect("bind");
    let hb = b
        .udp_bind(SocketAddr::new(IpAddr::V6(B6), 7))
        .expect("bind");
    let data = payload(3000);
    a.udp_send_to(ha, &data, SocketAddr::new(IpAddr::V6(B6), 7))
        .expect("send");
    let pkts = out(&mut a, now);
    assert_eq!(pkts.len(), 3, "3008 bytes in 1368-byte pieces");
    for p in &pkts {
        assert!(p.len() <= 1420);
        let ip = ipv6::Packet::new_checked(&p[..]).expect("ip");
        assert_eq!(ip.next_header(), IpProtocol::Ipv6Frag);
        let r = ipv6::Repr::parse(&ip).expect("parse");
        assert_eq!(r.protocol, IpProtocol::Udp);
        assert!(r.frag.is_some());
    }
    for p in &pkts {
        b.process(now, p);
    }
    let mut buf = vec![0u8; 4000];
    let (n, _) = b.udp_recv_from(hb, &mut buf).expect("reassembled");
    assert_eq!(&buf[..n], &data[..]);
}

#[test]
fn large_echo_is_sent_and_answered_in_fragments() {
    let now = Instant::now();
    let (mut a, mut b) = (stack(A4, A6, 5), stack(B4, B6, 6));
    let h = a
        .echo_bind(SocketAddr::new(IpAddr::V4(A4), 99))
        .expect("bind");
    let mut req = vec![0u8; 8 + 4000];
    req[0] = icmp::V4_ECHO_REQUEST;
    req[7] = 1;
    req[8..].copy_from_slice(&payload(4000));
    a.udp_send_to(h, &req, SocketAddr::new(IpAddr::V4(B4), 0))
        .expect("send");
    let pkts = out(&mut a, now);
    assert_eq!(pkts.len(), 3);
    for p in &pkts {
        b.process(now, p);
    }
    // B reassembles the request and answers it in fragments.
    let replies = out(&mut b, now);
    assert_eq!(replies.len(), 3);
    assert_eq!(b.stats().echo_requests_answered, 1);
    for p in &replies {
        a.process(now, p);
    }
    let mut buf = vec![0u8; 5000];
    let (n, from, ttl) = a.udp_recv_meta(h, &mut buf).expect("reply");
    assert_eq!((n, from.ip(), ttl), (4008, IpAddr::V4(B4), 64));
    assert_eq!(buf[0], icmp::V4_ECHO_REPLY);
    assert_eq!(&buf[8..n], &req[8..]);
}
