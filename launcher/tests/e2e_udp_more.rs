//! The UDP gaps real programs hit, against wireguard-go (same harness as
//! `e2e_udp.rs`): receive ancillary data (`IP_PKTINFO`/`IP_RECVTTL`,
//! `IPV6_RECVPKTINFO`/`IPV6_RECVHOPLIMIT`) and `recvmmsg`'s timeout from a
//! C client, and datagrams above the tunnel MTU fragmented on the way out
//! (counted on the peer's tunnel interface) and reassembled on the way in,
//! echoed intact. Needs root, wireguard-go, wireguard-tools, gcc; prints
//! `SKIPPED:` and passes otherwise.

use std::path::PathBuf;
use wrapguard_testnet::{
    read, show, skip_unless_ready, token, wait_line, wrapguard, Bg, Conf, Configured, OnePeer,
};

fn one_peer(tag: &str) -> Configured {
    OnePeer::new(tag).configured(Conf::DUAL)
}

/// A UDP echo server (both families, one port): answers `ECHO:<data>` and
/// logs `FROM <ip> <port> <len>` for every datagram.
const ECHO_SERVER: &str = r#"
import select, socket, sys
port = int(sys.argv[1])
s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s4.bind(("0.0.0.0", port))
s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1); s6.bind(("::", port))
print("READY", flush=True)
while True:
    r, _, _ = select.select([s4, s6], [], [])
    for s in r:
        d, a = s.recvfrom(65535)
        print("FROM %s %d %d" % (a[0], a[1], len(d)), flush=True)
        s.sendto(b"ECHO:" + d, a)
"#;

fn echo_server(t: &OnePeer, port: u16) -> (Bg, PathBuf) {
    let log = t.tmp.join(&format!("echo{port}.log"));
    let bg = t.peer.ns.spawn(
        &["python3", "-u", "-c", ECHO_SERVER, &port.to_string()],
        &log,
    );
    let l = wait_line(&log, &["READY"], 20);
    assert!(!l.is_empty(), "echo server did not start: {}", read(&log));
    (bg, log)
}

/// Counts, on the peer's tunnel interface, the IP fragments that arrive
/// (IPv4 with MF or an offset, IPv6 with a Fragment header) until killed;
/// prints `FRAG <family> <offset> <more>` for each.
const FRAG_SNIFFER: &str = r#"
import socket, struct, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0003))
s.bind((sys.argv[1], 0))
print("READY", flush=True)
while True:
    p, a = s.recvfrom(65535)
    if a[2] != socket.PACKET_HOST or not p:
        continue
    v = p[0] >> 4
    if v == 4 and len(p) >= 20:
        fo = struct.unpack("!H", p[6:8])[0]
        if fo & 0x3fff:
            print("FRAG 4 %d %d" % ((fo & 0x1fff) * 8, (fo >> 13) & 1), flush=True)
    elif v == 6 and len(p) >= 48 and p[6] == 44:
        fo = struct.unpack("!H", p[42:44])[0]
        print("FRAG 6 %d %d" % (fo & 0xfff8, fo & 1), flush=True)
"#;

#[test]
fn c_client_gets_pktinfo_ttl_and_a_recvmmsg_timeout() {
    skip_unless_ready!();
    let t = one_peer("ua");
    let (_srv, log) = echo_server(&t, 7100);
    let Some(bin) = wrapguard_testnet::c_fixture("udp_ancillary", &t.tmp.join("")) else {
        return;
    };
    for (host, ours) in [("10.77.0.1", "10.77.0.2"), ("fd77::1", "fd77::2")] {
        let tok = token("anc");
        let o = wrapguard(&t.client, &t.conf, &[], &[&bin, host, "7100", &tok]);
        let s = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{}", show(&o));
        // wireguard-go's kernel sends with TTL/hop limit 64; nothing on the
        // way decrements it.
        assert!(
            s.contains(&format!("echo ECHO:{tok} dst={ours} ttl=64")),
            "{}",
            show(&o)
        );
        // Both datagrams came back before the 1.5 s timeout ended the call.
        let line = s
            .lines()
            .find(|l| l.starts_with("recvmmsg "))
            .unwrap_or_else(|| panic!("{}", show(&o)));
        let w: Vec<&str> = line.split_whitespace().collect();
        let (got, after): (i32, i64) = (w[1].parse().expect("count"), w[3].parse().expect("ms"));
        assert_eq!(got, 2, "{line}");
        assert!((1300..4000).contains(&after), "{line}");
        assert_empty_recvmmsg_times_out(&s);
        assert!(read(&log).contains(&format!("FROM {ours} ")));
        // Seccomp mode emulates recvmsg for the unconnected socket and
        // writes the same control messages (its recvmmsg timeout is not
        // applied: only the echo line is checked).
        std::thread::sleep(std::time::Duration::from_millis(300));
        let tok = token("anc-seccomp");
        let o = wrapguard(
            &t.client,
            &t.conf,
            &["--mode=seccomp"],
            &[&bin, host, "7100", &tok],
        );
        let s = String::from_utf8_lossy(&o.stdout);
        assert!(
            s.contains(&format!("echo ECHO:{tok} dst={ours} ttl=64")),
            "seccomp: {}",
            show(&o)
        );
        assert_empty_recvmmsg_times_out(&s);
    }
}

/// The fixture's step 3: `recvmmsg` with a 0.5 s timeout and nothing
/// coming ends with `EAGAIN` after about 0.5 s (never a hang).
fn assert_empty_recvmmsg_times_out(out: &str) {
    let line = out
        .lines()
        .find(|l| l.starts_with("recvmmsg-empty "))
        .unwrap_or_else(|| panic!("no recvmmsg-empty line:\n{out}"));
    let w: Vec<&str> = line.split_whitespace().collect();
    assert_eq!((w[1], w[2]), ("-1", "EAGAIN"), "{line}");
    let ms: i64 = w[4].parse().expect("ms");
    assert!((400..3000).contains(&ms), "{line}");
}

const BIG_CLIENT: &str = r#"
import socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(10)
data = bytes((i * 7 + i // 251) % 256 for i in range(n))
s.sendto(data, (host, port))
d, a = s.recvfrom(65535)
print("OK" if d == b"ECHO:" + data else "BAD %d" % len(d), len(d), flush=True)
"#;

#[test]
fn datagrams_above_the_mtu_are_fragmented_and_echoed_intact() {
    skip_unless_ready!();
    let t = one_peer("uf");
    let (_srv, log) = echo_server(&t, 7101);
    let slog = t.tmp.join("frags.log");
    let _sniff = t.peer.ns.spawn(
        &["python3", "-u", "-c", FRAG_SNIFFER, &t.peer.ifname],
        &slog,
    );
    assert!(
        !wait_line(&slog, &["READY"], 20).is_empty(),
        "{}",
        read(&slog)
    );
    for (host, size, family, pieces) in [("10.77.0.1", "4000", "4", 3), ("fd77::1", "3000", "6", 3)]
    {
        let o = wrapguard(
            &t.client,
            &t.conf,
            &[],
            &["python3", "-c", BIG_CLIENT, host, "7101", size],
        );
        let s = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{}", show(&o));
        let want = size.parse::<usize>().expect("size") + 5;
        assert!(s.contains(&format!("OK {want}")), "{}", show(&o));
        assert!(read(&log).contains(&format!(
            "FROM {} ",
            if family == "4" {
                "10.77.0.2"
            } else {
                "fd77::2"
            }
        )));
        std::thread::sleep(std::time::Duration::from_millis(300));
        let frags = read(&slog)
            .lines()
            .filter(|l| l.starts_with(&format!("FRAG {family} ")))
            .count();
        assert_eq!(frags, pieces, "fragments seen:\n{}", read(&slog));
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

const POLLERR_CLIENT: &str = r#"
import errno, select, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.connect((host, port))
s.send(b"anyone?")
p = select.poll(); p.register(s, select.POLLIN)
ev = p.poll(10000)
print("EVENTS", ev[0][1] & select.POLLERR != 0 if ev else "none", flush=True)
try:
    s.recv(100); print("RECV ok", flush=True)
except OSError as e:
    print("RECV", errno.errorcode.get(e.errno, e.errno), flush=True)
"#;

/// The same with epoll, registered before and after the socket is carried.
const EPOLLERR_CLIENT: &str = r#"
import errno, select, socket, sys
host, port, when = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
ep = select.epoll()
if when == "before":
    ep.register(s.fileno(), select.EPOLLIN)
s.connect((host, port))
if when == "after":
    ep.register(s.fileno(), select.EPOLLIN)
s.send(b"anyone?")
ev = ep.poll(10)
print("EVENTS", ev[0][1] & select.EPOLLERR != 0 if ev else "none", flush=True)
try:
    s.recv(100); print("RECV ok", flush=True)
except OSError as e:
    print("RECV", errno.errorcode.get(e.errno, e.errno), flush=True)
"#;

#[test]
fn a_pending_icmp_error_shows_as_epollerr() {
    skip_unless_ready!();
    let t = one_peer("ue");
    for (host, when) in [("10.77.0.1", "after"), ("fd77::1", "before")] {
        let o = wrapguard(
            &t.client,
            &t.conf,
            &[],
            &["python3", "-c", EPOLLERR_CLIENT, host, "7999", when],
        );
        let s = String::from_utf8_lossy(&o.stdout);
        assert!(s.contains("EVENTS True"), "{host} {when}: {}", show(&o));
        assert!(s.contains("RECV ECONNREFUSED"), "{}", show(&o));
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

#[test]
fn a_pending_icmp_error_shows_as_pollerr() {
    skip_unless_ready!();
    let t = one_peer("up");
    for host in ["10.77.0.1", "fd77::1"] {
        // Nothing listens on the peer's port 7999: its kernel answers port
        // unreachable.
        let o = wrapguard(
            &t.client,
            &t.conf,
            &[],
            &["python3", "-c", POLLERR_CLIENT, host, "7999"],
        );
        let s = String::from_utf8_lossy(&o.stdout);
        assert!(s.contains("EVENTS True"), "{}", show(&o));
        assert!(s.contains("RECV ECONNREFUSED"), "{}", show(&o));
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}
