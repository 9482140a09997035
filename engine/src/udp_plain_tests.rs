//! Plain (header-less) datagram flows through the real engine: two engines
//! in this process are each other's WireGuard peer over host loopback (the
//! tunnel addresses exist only inside the two stacks; nothing but the
//! encrypted UDP on 127.0.0.1 touches the kernel). Engine A's program side
//! is a plain flow, as a program in seccomp mode sees it; engine B's is a
//! headered flow, so the test sees addresses.

use super::tunnel::{self, TunnelBackend};
use super::{FlowBackend, OpenedUdp};
use control::datagram::{Header, HEADER_LEN};
use control::{DatagramFraming, UdpOpenRequest};
use noise::rand_core::OsRng;
use noise::PrivateKey;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

/// Engines A (10.77.0.2) and B (10.77.0.1, fixed port on 127.0.0.1),
/// each the other's only peer.
fn pair(tag: &str) -> (TunnelBackend, TunnelBackend) {
    let ka = PrivateKey::generate(&mut OsRng);
    let kb = PrivateKey::generate(&mut OsRng);
    let port_b = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
        .port();
    let dir = std::env::temp_dir().join(format!("wg-plain-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let conf_a = format!(
        "[Interface]\nPrivateKey = {}\nAddress = 10.77.0.2/24\n\n[Peer]\nPublicKey = {}\n\
         Endpoint = 127.0.0.1:{port_b}\nAllowedIPs = 10.77.0.1/32\n",
        ka.to_base64().as_str(),
        kb.public_key().to_base64()
    );
    let conf_b = format!(
        "[Interface]\nPrivateKey = {}\nAddress = 10.77.0.1/24\nListenPort = {port_b}\n\n\
         [Peer]\nPublicKey = {}\nAllowedIPs = 10.77.0.2/32\n",
        kb.to_base64().as_str(),
        ka.public_key().to_base64()
    );
    let start = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write config");
        let opts = tunnel::TunnelOptions {
            tcp_congestion: None,
            config: p,
            ..Default::default()
        };
        tunnel::start(&opts).expect("engine starts")
    };
    let b = start("b.conf", &conf_b);
    let a = start("a.conf", &conf_a);
    (a, b)
}

fn open(
    e: &TunnelBackend,
    bind: &str,
    connect: Option<&str>,
    framing: DatagramFraming,
) -> (OpenedUdp, UnixDatagram) {
    let o = e
        .open_udp(UdpOpenRequest {
            v6_socket: false,
            v6_only: false,
            bind: addr(bind),
            connect: connect.map(addr),
            fd: -1,
            framing,
            kind: control::DatagramKind::Udp,
        })
        .expect("udp flow opens");
    let sock = UnixDatagram::from(o.app_end.try_clone().expect("dup"));
    sock.set_read_timeout(Some(WAIT)).expect("timeout");
    (o, sock)
}

fn recv(s: &UnixDatagram) -> Vec<u8> {
    let mut buf = vec![0u8; 70_000];
    let n = s.recv(&mut buf).expect("a message within the timeout");
    buf.truncate(n);
    buf
}

fn send_headered(s: &UnixDatagram, to: SocketAddr, payload: &[u8]) {
    let mut m = Header::Datagram(to).encode().to_vec();
    m.extend_from_slice(payload);
    s.send(&m).expect("send");
}

/// `(source, payload)` of one message on a headered flow.
fn recv_headered(s: &UnixDatagram) -> (SocketAddr, Vec<u8>) {
    let m = recv(s);
    match Header::decode(&m) {
        Ok(Header::Datagram(from)) => (from, m[HEADER_LEN..].to_vec()),
        other => panic!("expected a datagram, got {other:?}"),
    }
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn plain_flow_carries_bare_payloads_to_and_from_its_one_peer() {
    let (a, b) = pair("bare");
    let (_srv, srv) = open(&b, "0.0.0.0:5353", None, DatagramFraming::Headers);
    let idle = a.active_flows();
    let (plain, app) = open(
        &a,
        "0.0.0.0:0",
        Some("10.77.0.1:5353"),
        DatagramFraming::Plain,
    );
    assert_eq!(plain.local.ip(), addr("10.77.0.2:0").ip(), "getsockname");
    assert_ne!(plain.local.port(), 0);

    // Up: the program writes the payload alone; it arrives from our tunnel
    // address, byte for byte, with no header in front.
    app.send(b"ping").expect("send");
    let (from, payload) = recv_headered(&srv);
    assert_eq!(from, plain.local);
    assert_eq!(payload, b"ping");

    // Down: the peer's datagram is the whole message.
    send_headered(&srv, plain.local, b"pong");
    assert_eq!(recv(&app), b"pong");

    // Boundaries and sizes are kept both ways (up to the MTU).
    let big: Vec<u8> = (0..1300u32).map(|i| (i * 7) as u8).collect();
    app.send(&big).expect("send big");
    app.send(b"x").expect("send small");
    assert_eq!(recv_headered(&srv).1, big);
    assert_eq!(recv_headered(&srv).1, b"x");

    // An empty datagram is a datagram, not end of file: the flow lives on.
    app.send(b"").expect("send empty");
    assert_eq!(recv_headered(&srv).1, b"");
    app.send(b"after-empty").expect("send");
    assert_eq!(recv_headered(&srv).1, b"after-empty");
    send_headered(&srv, plain.local, b"");
    assert_eq!(recv(&app), b"");
    send_headered(&srv, plain.local, b"after-empty-down");
    assert_eq!(recv(&app), b"after-empty-down");

    // Closing the program's end closes the flow.
    drop(app);
    drop(plain);
    eventually("the plain flow to close", || a.active_flows() == idle);
}

#[test]
fn plain_flow_takes_nothing_from_other_addresses() {
    let (a, b) = pair("stray");
    let (_srv, srv) = open(&b, "0.0.0.0:5353", None, DatagramFraming::Headers);
    let (_other, other) = open(&b, "0.0.0.0:5354", None, DatagramFraming::Headers);
    let (_mark, marker_rx) = open(&a, "0.0.0.0:7000", None, DatagramFraming::Headers);
    let (plain, app) = open(
        &a,
        "0.0.0.0:0",
        Some("10.77.0.1:5353"),
        DatagramFraming::Plain,
    );
    app.send(b"hello").expect("send");
    assert_eq!(recv_headered(&srv).1, b"hello");

    // The same peer host, another port: not the flow's peer. Then a marker
    // on the same path to another socket of A: once it is in, the stray
    // datagram (sent before it, same session) has been dealt with.
    send_headered(&other, plain.local, b"stray");
    send_headered(&other, addr("10.77.0.2:7000"), b"marker");
    assert_eq!(recv_headered(&marker_rx).1, b"marker");
    app.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 64];
    match app.recv(&mut buf) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!(
            "a datagram from another port reached the plain flow: {:?}",
            other.map(|n| buf[..n].to_vec())
        ),
    }
    app.set_nonblocking(false).expect("blocking");
    send_headered(&srv, plain.local, b"from-peer");
    assert_eq!(recv(&app), b"from-peer");
}

#[test]
fn plain_flow_needs_a_peer_of_a_family_we_have() {
    let (a, _b) = pair("refuse");
    let req = UdpOpenRequest {
        v6_socket: false,
        v6_only: false,
        bind: addr("0.0.0.0:0"),
        connect: None,
        fd: -1,
        framing: DatagramFraming::Plain,
        kind: control::DatagramKind::Udp,
    };
    assert_eq!(a.open_udp(req).err(), Some(libc::EDESTADDRREQ));
    // No IPv6 tunnel address: refused, never sent anywhere else.
    let v6 = UdpOpenRequest {
        v6_socket: true,
        connect: Some(addr("[fd77::1]:53")),
        bind: addr("[::]:0"),
        ..req
    };
    assert!(a.open_udp(v6).is_err());
    // Not routed into the tunnel: not ours to carry.
    let direct = UdpOpenRequest {
        connect: Some(addr("192.0.2.1:53")),
        ..req
    };
    assert_eq!(a.open_udp(direct).err(), Some(libc::ENETUNREACH));
}
