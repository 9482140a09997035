//! Our stack against the Linux kernel's TCP/IP, through a TUN device in a
//! fresh network namespace (root only; skipped loudly otherwise). The
//! kernel owns 10.88.0.1 / fd88::1, our stack 10.88.0.2 / fd88::2.

mod support;

use sha2::{Digest, Sha256};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::tun::NetNs;
use tcpip::{Error, Stack, StackConfig, TcpConfig, TcpHandle, TcpState};

const K4: &str = "10.88.0.1";
const U4: &str = "10.88.0.2";
const K6: &str = "fd88::1";
const U6: &str = "fd88::2";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn sa(ip_s: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip(ip_s), port)
}

fn our_stack() -> Stack {
    Stack::new(StackConfig {
        addresses: vec![ip(U4), ip(U6)],
        mtu: 1420,
        seed: 0x5eed,
        tcp: TcpConfig {
            rx_buffer: 1 << 20,
            tx_buffer: 1 << 20,
            ..TcpConfig::default()
        },
        ..StackConfig::default()
    })
}

fn setup() -> Option<(NetNs, Stack)> {
    Some((NetNs::create()?, our_stack()))
}

/// Deterministic test data.
fn fill(buf: &mut [u8], offset: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        let x = offset + i as u64;
        *b = (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8;
    }
}

fn expected_hash(total: u64) -> Vec<u8> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 65536];
    let mut off = 0;
    while off < total {
        let n = (total - off).min(buf.len() as u64) as usize;
        fill(&mut buf[..n], off);
        h.update(&buf[..n]);
        off += n as u64;
    }
    h.finalize().to_vec()
}

fn echo_roundtrip(kernel_connects: bool, v6: bool) {
    let Some((mut ns, mut st)) = setup() else {
        return;
    };
    let (kip, uip) = if v6 { (K6, U6) } else { (K4, U4) };
    let done = if kernel_connects {
        let l = st.tcp_listen(sa(uip, 7000), 8).expect("listen");
        let dst = sa(uip, 7000);
        let k = ns.spawn(move || {
            let mut s =
                TcpStream::connect_timeout(&dst, Duration::from_secs(5)).expect("kernel connect");
            s.write_all(b"hello from the kernel").expect("write");
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).expect("read");
            (s.peer_addr().expect("peer"), buf[..n].to_vec())
        });
        let mut conn = None;
        let mut buf = [0u8; 64];
        let ok = ns.drive(&mut st, Duration::from_secs(10), |st, _| {
            if conn.is_none() {
                conn = st.tcp_accept(l);
            }
            if let Some(c) = conn {
                if let Ok(n) = st.tcp_recv(c, &mut buf) {
                    let mut reply = b"echo: ".to_vec();
                    reply.extend_from_slice(&buf[..n]);
                    st.tcp_send(c, &reply).expect("send");
                }
            }
            k.is_finished()
        });
        assert!(ok, "kernel client did not finish");
        let (peer, data) = k.join().expect("kernel thread");
        assert_eq!(peer, dst);
        assert_eq!(data, b"echo: hello from the kernel");
        let c = conn.expect("accepted");
        assert_eq!(st.peer_addr(c).map(|a| a.ip()), Ok(ip(kip)));
        true
    } else {
        let (tx, rx) = std::sync::mpsc::channel();
        let bind = sa(kip, 7001);
        let k = ns.spawn(move || {
            let l = TcpListener::bind(bind).expect("kernel bind");
            tx.send(()).expect("ready");
            let (mut s, peer) = l.accept().expect("accept");
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).expect("read");
            s.write_all(&buf[..n]).expect("write");
            peer
        });
        rx.recv().expect("kernel listening");
        let now = Instant::now();
        let c = st.tcp_connect(now, None, sa(kip, 7001)).expect("connect");
        let mut sent = false;
        let mut got = Vec::new();
        let ok = ns.drive(&mut st, Duration::from_secs(10), |st, _| {
            if !sent && st.tcp_state(c) == Ok(TcpState::Established) {
                st.tcp_send(c, b"hello kernel").expect("send");
                sent = true;
            }
            let mut buf = [0u8; 64];
            if let Ok(n) = st.tcp_recv(c, &mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
            got.len() == 12
        });
        assert!(ok, "no echo from the kernel");
        assert_eq!(got, b"hello kernel");
        let peer = k.join().expect("kernel thread");
        assert_eq!(peer, st.local_addr(c).expect("local"));
        true
    };
    assert!(done);
}

#[test]
fn kernel_connects_to_us_v4() {
    echo_roundtrip(true, false);
}

#[test]
fn kernel_connects_to_us_v6() {
    echo_roundtrip(true, true);
}

#[test]
fn we_connect_to_kernel_v4() {
    echo_roundtrip(false, false);
}

#[test]
fn we_connect_to_kernel_v6() {
    echo_roundtrip(false, true);
}

fn bulk(v6: bool, total: u64) {
    let Some((mut ns, mut st)) = setup() else {
        return;
    };
    let uip = if v6 { U6 } else { U4 };
    let l = st.tcp_listen(sa(uip, 7100), 8).expect("listen");
    let dst = sa(uip, 7100);
    let k = ns.spawn(move || {
        let s = TcpStream::connect_timeout(&dst, Duration::from_secs(5)).expect("connect");
        let mut w = s.try_clone().expect("clone");
        let writer = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            let mut off = 0u64;
            while off < total {
                let n = (total - off).min(buf.len() as u64) as usize;
                fill(&mut buf[..n], off);
                w.write_all(&buf[..n]).expect("kernel write");
                off += n as u64;
            }
            w.shutdown(Shutdown::Write).expect("shutdown");
        });
        let mut r = s;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 65536];
        let mut got = 0u64;
        loop {
            let n = r.read(&mut buf).expect("kernel read");
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            got += n as u64;
        }
        writer.join().expect("writer");
        (got, h.finalize().to_vec())
    });
    let mut conn: Option<TcpHandle> = None;
    let mut h = Sha256::new();
    let (mut got, mut sent) = (0u64, 0u64);
    let mut eof = false;
    let mut shut = false;
    let mut buf = vec![0u8; 65536];
    let mut out = vec![0u8; 65536];
    let start = Instant::now();
    let ok = ns.drive(&mut st, Duration::from_secs(120), |st, now| {
        if conn.is_none() {
            conn = st.tcp_accept(l);
        }
        let Some(c) = conn else { return false };
        while !eof {
            match st.tcp_recv(c, &mut buf) {
                Ok(0) => eof = true,
                Ok(n) => {
                    h.update(&buf[..n]);
                    got += n as u64;
                }
                Err(Error::WouldBlock) => break,
                Err(e) => panic!("recv: {e}"),
            }
        }
        while sent < total {
            let n = (total - sent).min(out.len() as u64) as usize;
            fill(&mut out[..n], sent);
            match st.tcp_send(c, &out[..n]) {
                Ok(k) => sent += k as u64,
                Err(Error::WouldBlock) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        if sent == total && !shut {
            st.tcp_shutdown_write(now, c).expect("shutdown");
            shut = true;
        }
        eof && k.is_finished()
    });
    let secs = start.elapsed().as_secs_f64();
    assert!(
        ok,
        "bulk transfer did not finish: received {got}, sent {sent}"
    );
    let (kgot, khash) = k.join().expect("kernel");
    let want = expected_hash(total);
    assert_eq!(got, total);
    assert_eq!(h.finalize().to_vec(), want, "kernel→us data differs");
    assert_eq!(kgot, total);
    assert_eq!(khash, want, "us→kernel data differs");
    println!(
        "bulk {} MB each way over TUN ({}): {:.1} s, {:.1} MB/s total",
        total / 1_000_000,
        if v6 { "IPv6" } else { "IPv4" },
        secs,
        2.0 * total as f64 / secs / 1e6
    );
}

#[test]
fn bulk_50mb_each_way_sha256_v4() {
    bulk(false, 50_000_000);
}

#[test]
fn bulk_50mb_each_way_sha256_v6() {
    bulk(true, 50_000_000);
}

#[test]
fn half_close_from_kernel_then_we_send() {
    let Some((mut ns, mut st)) = setup() else {
        return;
    };
    let l = st.tcp_listen(sa(U4, 7200), 8).expect("listen");
    let dst = sa(U4, 7200);
    let k = ns.spawn(move || {
        let mut s = TcpStream::connect(dst).expect("connect");
        s.write_all(b"request").expect("write");
        s.shutdown(Shutdown::Write).expect("shutdown");
        let mut v = Vec::new();
        s.read_to_end(&mut v).expect("read to end");
        v
    });
    let mut conn = None;
    let mut req = Vec::new();
    let mut replied = false;
    let ok = ns.drive(&mut st, Duration::from_secs(10), |st, now| {
        conn = conn.or_else(|| st.tcp_accept(l));
        let Some(c) = conn else { return false };
        let mut buf = [0u8; 64];
        if !replied {
            match st.tcp_recv(c, &mut buf) {
                Ok(0) => {
                    // The kernel half-closed: we are in CLOSE-WAIT and may still send.
                    assert_eq!(st.tcp_state(c), Ok(TcpState::CloseWait));
                    st.tcp_send(c, b"response after your FIN")
                        .expect("send in CLOSE-WAIT");
                    st.tcp_close(now, c).expect("close");
                    replied = true;
                }
                Ok(n) => req.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
        replied && k.is_finished()
    });
    assert!(ok);
    assert_eq!(req, b"request");
    assert_eq!(k.join().expect("kernel"), b"response after your FIN");
}

#[test]
fn closed_port_gets_rst_v4_and_v6() {
    let Some((mut ns, mut st)) = setup() else {
        return;
    };
    let k = ns.spawn(|| {
        let r4 = TcpStream::connect_timeout(&sa(U4, 7999), Duration::from_secs(3)).map(|_| ());
        let r6 = TcpStream::connect_timeout(&sa(U6, 7999), Duration::from_secs(3)).map(|_| ());
        (r4.map_err(|e| e.kind()), r6.map_err(|e| e.kind()))
    });
    assert!(ns.drive(&mut st, Duration::from_secs(10), |_, _| k.is_finished()));
    let (r4, r6) = k.join().expect("kernel");
    assert_eq!(r4, Err(ErrorKind::ConnectionRefused));
    assert_eq!(r6, Err(ErrorKind::ConnectionRefused));
    assert!(st.stats().rst_sent >= 2);
}

#[test]
fn we_get_refused_by_kernel_closed_port() {
    let Some((mut ns, mut st)) = setup() else {
        return;
    };
    let c = st
        .tcp_connect(Instant::now(), None, sa(K6, 7998))
        .expect("connect");
    assert!(
        ns.drive(&mut st, Duration::from_secs(10), |st, _| st.tcp_state(c)
            == Ok(TcpState::Closed))
    );
    assert_eq!(st.tcp_error(c), Ok(Some(Error::ConnectionRefused)));
    assert_eq!(st.tcp_error(c).ok().flatten().map(Error::errno), Some(111));
}

#[test]
fn zero_window_peer_that_stops_reading() {
    let Some((mut ns, mut st)) = setup() else {
        return;
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let go = Arc::new(AtomicBool::new(false));
    let go2 = go.clone();
    const TOTAL: usize = 4_000_000;
    let k = ns.spawn(move || {
        let sock = socket2_listener(sa(K4, 7300));
        tx.send(()).expect("ready");
        let (mut s, _) = sock.accept().expect("accept");
        while !go2.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut v = Vec::new();
        s.read_to_end(&mut v).expect("read");
        v.len()
    });
    rx.recv().expect("listening");
    let c = st
        .tcp_connect(Instant::now(), None, sa(K4, 7300))
        .expect("connect");
    let mut sent = 0usize;
    let mut stalled_since: Option<Instant> = None;
    let chunk = vec![7u8; 65536];
    // Fill until the kernel's window closes and our queue stops draining.
    let ok = ns.drive(&mut st, Duration::from_secs(20), |st, now| {
        if st.tcp_state(c) != Ok(TcpState::Established) {
            return false;
        }
        while sent < TOTAL {
            match st.tcp_send(c, &chunk[..(TOTAL - sent).min(chunk.len())]) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        let full = st.tcp_send_capacity(c) == Ok(0);
        match (full, stalled_since) {
            (true, None) => stalled_since = Some(now),
            (false, _) => stalled_since = None,
            _ => {}
        }
        stalled_since.is_some_and(|s| now - s > Duration::from_secs(3))
    });
    assert!(ok, "the kernel's window never closed");
    assert_eq!(
        st.tcp_state(c),
        Ok(TcpState::Established),
        "probing must keep the connection"
    );
    // Now the kernel reads everything.
    go.store(true, Ordering::SeqCst);
    let mut closed = false;
    let ok = ns.drive(&mut st, Duration::from_secs(30), |st, now| {
        while sent < TOTAL {
            match st.tcp_send(c, &chunk[..(TOTAL - sent).min(chunk.len())]) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        if sent == TOTAL && !closed {
            st.tcp_close(now, c).expect("close");
            closed = true;
        }
        k.is_finished()
    });
    assert!(ok, "transfer did not resume after the window opened");
    assert_eq!(k.join().expect("kernel"), TOTAL);
}

/// A kernel listener with a small receive buffer (so its window closes soon).
fn socket2_listener(addr: SocketAddr) -> TcpListener {
    let l = TcpListener::bind(addr).expect("bind");
    // Accepted sockets inherit SO_RCVBUF from the listener.
    support::tun::set_rcvbuf(&l, 32 * 1024);
    l
}

#[test]
fn listener_backlog_full_drops_syns_until_accept() {
    let Some((mut ns, mut st)) = setup() else {
        return;
    };
    let l = st.tcp_listen(sa(U4, 7400), 2).expect("listen");
    let third_timed_out = Arc::new(AtomicBool::new(false));
    let flag = third_timed_out.clone();
    let dst = sa(U4, 7400);
    let k = ns.spawn(move || {
        let a = TcpStream::connect_timeout(&dst, Duration::from_secs(3)).expect("first");
        let b = TcpStream::connect_timeout(&dst, Duration::from_secs(3)).expect("second");
        let third = TcpStream::connect_timeout(&dst, Duration::from_millis(1500));
        assert!(
            third.is_err(),
            "third connection must wait while the backlog is full"
        );
        flag.store(true, Ordering::SeqCst);
        // After one accept, a new attempt gets in.
        let c = TcpStream::connect_timeout(&dst, Duration::from_secs(8)).expect("after accept");
        drop((a, b, c));
    });
    let mut accepted = 0;
    let ok = ns.drive(&mut st, Duration::from_secs(20), |st, _| {
        if third_timed_out.load(Ordering::SeqCst) && accepted == 0 && st.tcp_accept(l).is_some() {
            accepted += 1;
        }
        k.is_finished()
    });
    assert!(ok);
    k.join().expect("kernel side assertions");
    assert!(st.stats().syn_dropped >= 1);
}

#[test]
fn ping_v4_and_v6() {
    let Some((mut ns, mut st)) = setup() else {
        return;
    };
    let k = ns.spawn(|| {
        (
            support::tun::raw_ping(ip(U4), 3),
            support::tun::raw_ping(ip(U6), 3),
        )
    });
    assert!(ns.drive(&mut st, Duration::from_secs(15), |_, _| k.is_finished()));
    let (r4, r6) = k.join().expect("pinger");
    assert_eq!(r4, 3, "IPv4 echo replies");
    assert_eq!(r6, 3, "IPv6 echo replies");
    assert!(st.stats().icmp_sent >= 6);
}

#[test]
fn udp_echo_and_port_unreachable() {
    let Some((mut ns, mut st)) = setup() else {
        return;
    };
    let u = st.udp_bind(sa(U4, 5300)).expect("bind");
    let k = ns.spawn(|| {
        let s = UdpSocket::bind(sa(K4, 0)).expect("bind");
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        s.send_to(b"dgram", sa(U4, 5300)).expect("send");
        let mut buf = [0u8; 64];
        let (n, from) = s.recv_from(&mut buf).expect("reply");
        // A connected UDP socket to a closed port sees ECONNREFUSED.
        let c = UdpSocket::bind(sa(K4, 0)).expect("bind");
        c.connect(sa(U4, 5399)).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        c.send(b"anyone?").expect("send");
        let refused = c.recv(&mut buf).map_err(|e| e.kind());
        // The same over IPv6 (ICMPv6 destination unreachable, port).
        let c6 = UdpSocket::bind(sa(K6, 0)).expect("bind v6");
        c6.connect(sa(U6, 5399)).expect("connect v6");
        c6.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        c6.send(b"anyone?").expect("send v6");
        let refused6 = c6.recv(&mut [0u8; 16]).map_err(|e| e.kind());
        assert_eq!(
            refused6,
            Err(ErrorKind::ConnectionRefused),
            "ICMPv6 port unreachable"
        );
        (buf[..n].to_vec(), from, refused)
    });
    let ok = ns.drive(&mut st, Duration::from_secs(10), |st, _| {
        let mut buf = [0u8; 64];
        if let Ok((n, from)) = st.udp_recv_from(u, &mut buf) {
            let mut r = b"re: ".to_vec();
            r.extend_from_slice(&buf[..n]);
            st.udp_send_to(u, &r, from).expect("send_to");
        }
        k.is_finished()
    });
    assert!(ok);
    let (data, from, refused) = k.join().expect("kernel");
    assert_eq!(data, b"re: dgram");
    assert_eq!(from, sa(U4, 5300));
    assert_eq!(refused, Err(ErrorKind::ConnectionRefused));
}

#[test]
fn kernel_reset_maps_to_econnreset_then_epipe() {
    let Some((mut ns, mut st)) = setup() else {
        return;
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let k = ns.spawn(move || {
        let l = TcpListener::bind(sa(K4, 7500)).expect("bind");
        tx.send(()).expect("ready");
        let (s, _) = l.accept().expect("accept");
        support::tun::set_linger_zero(&s);
        drop(s); // RST
    });
    rx.recv().expect("listening");
    let c = st
        .tcp_connect(Instant::now(), None, sa(K4, 7500))
        .expect("connect");
    let mut saw_event = false;
    let ok = ns.drive(&mut st, Duration::from_secs(10), |st, _| {
        while let Some(e) = st.poll_event() {
            if e.kind == tcpip::SocketEventKind::Error(Error::ConnectionReset) {
                saw_event = true;
            }
        }
        saw_event
    });
    assert!(ok, "no reset event");
    k.join().expect("kernel");
    let err = st.tcp_recv(c, &mut [0u8; 8]).expect_err("reset");
    assert_eq!((err, err.errno()), (Error::ConnectionReset, 104));
    let err = st.tcp_send(c, b"x").expect_err("broken");
    assert_eq!((err, err.errno()), (Error::BrokenPipe, 32));
}

#[test]
fn our_zero_window_while_kernel_keeps_sending() {
    let Some((mut ns, mut st)) = setup() else {
        return;
    };
    let l = st.tcp_listen(sa(U6, 7600), 8).expect("listen");
    const TOTAL: usize = 6_000_000;
    let dst = sa(U6, 7600);
    let k = ns.spawn(move || {
        let mut s = TcpStream::connect(dst).expect("connect");
        let chunk = vec![9u8; 65536];
        let mut sent = 0;
        while sent < TOTAL {
            let n = (TOTAL - sent).min(chunk.len());
            s.write_all(&chunk[..n]).expect("write");
            sent += n;
        }
    });
    let mut conn = None;
    let start = Instant::now();
    // Do not read for two seconds: our 1 MiB window closes, the kernel probes.
    assert!(!ns.drive(&mut st, Duration::from_secs(2), |st, _| {
        conn = conn.or_else(|| st.tcp_accept(l));
        false
    }));
    let c = conn.expect("accepted");
    // Full up to the window-scale granularity.
    let queued = st.tcp_recv_queue(c).expect("queue");
    assert!(queued > (1 << 20) - 1024, "receive buffer full: {queued}");
    assert!(start.elapsed() >= Duration::from_secs(2));
    let mut got = 0;
    let mut buf = vec![0u8; 65536];
    let ok = ns.drive(&mut st, Duration::from_secs(30), |st, _| loop {
        match st.tcp_recv(c, &mut buf) {
            Ok(0) => return true,
            Ok(n) => got += n,
            Err(_) => return false,
        }
    });
    assert!(
        ok,
        "stream did not finish after reopening the window: {got}"
    );
    assert_eq!(got, TOTAL);
    k.join().expect("kernel");
}
