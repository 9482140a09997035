//! UDP through the tunnel against wireguard-go (same harness as
//! `e2e_wireguard_go.rs`: the peer in its own namespace, wrapguard in a
//! client namespace with no route but the underlay veth). Every test checks
//! content (a unique token) *and* where it went (the far side logs the
//! source address it saw). Needs root, wireguard-go, wireguard-tools;
//! prints `SKIPPED:` and passes otherwise.

use std::path::PathBuf;
use wrapguard_testnet::{
    on_path, read, show, skip_unless_ready, spawn_wrapguard, token, wait_line, wrapguard, Bg, Conf,
    Configured, OnePeer, Wrapguard, RUN_LIMIT_SECS, UDP_PING_CLIENT,
};

/// One wireguard-go peer (10.77.0.1, fd77::1) and our config (10.77.0.2,
/// fd77::2); `t.peer`, `t.client`, `t.tmp` through `Deref`.
fn one_peer() -> Configured {
    OnePeer::new("u").configured(Conf::DUAL)
}

/// A UDP echo server (both families, one port): answers `ECHO:<data>` and
/// logs `FROM <ip> <port> <len> <data>` for every datagram.
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
        print("FROM %s %d %d %s" % (a[0], a[1], len(d), d[:80].decode(errors="replace")), flush=True)
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

fn python(t: &Configured, script: &str, args: &[&str]) -> std::process::Output {
    let mut argv = vec!["python3", "-c", script];
    argv.extend_from_slice(args);
    wrapguard(&t.client, &t.conf, &["--log-level=debug"], &argv)
}

const CLIENT: &str = r#"
import errno, select, socket, sys
tok, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
def check(c, what):
    if not c:
        print("FAIL", what, flush=True); sys.exit(1)
# connected: send/recv, names, boundaries, sizes
s = socket.socket(fam, socket.SOCK_DGRAM)
s.settimeout(20)
s.connect((host, port))
check(s.getpeername()[:2] == (host, port), "getpeername %r" % (s.getpeername(),))
me = s.getsockname()
check(me[0] in ("10.77.0.2", "fd77::2"), "getsockname %r" % (me,))
check(s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_DGRAM, "SO_TYPE")
s.send(("A" + tok).encode()); s.send(("B" + tok).encode())
check(s.recv(4096) == ("ECHO:A" + tok).encode(), "first datagram")
check(s.recv(4096) == ("ECHO:B" + tok).encode(), "second datagram (boundaries kept)")
big = (tok * 100).encode()[:1300]
s.send(big)
check(s.recv(4096) == b"ECHO:" + big, "1300-byte datagram")
# writev/readv: one datagram from the buffers, one datagram into them
import os
check(os.writev(s.fileno(), [b"V", tok.encode()]) == 1 + len(tok), "writev")
select.select([s], [], [], 20)  # settimeout made the fd non-blocking
b1, b2 = bytearray(5), bytearray(4096)
n = os.readv(s.fileno(), [b1, b2])
check(bytes(b1 + b2)[:n] == ("ECHO:V" + tok).encode(), "readv %r" % bytes(b1 + b2)[:max(n, 0)])
# through syscall() (libuv does this): sendto/recvfrom on the carried socket
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
m = ("H" + tok).encode()
check(libc.syscall(44, s.fileno(), m, len(m), 0, None, 0) == len(m), "syscall(SYS_sendto)")
buf = ctypes.create_string_buffer(4096)
select.select([s], [], [], 20)  # settimeout made the fd non-blocking
n = libc.syscall(45, s.fileno(), buf, 4096, 0, None, None)
check(buf.raw[:n] == b"ECHO:" + m, "syscall(SYS_recvfrom) %r" % buf.raw[:max(n, 0)])
# non-blocking: EAGAIN, then poll readiness
s.setblocking(False)
try:
    s.recv(10); check(False, "recv on empty socket succeeded")
except BlockingIOError:
    pass
s.send(("C" + tok).encode())
p = select.poll(); p.register(s, select.POLLIN)
check(p.poll(20000), "poll timed out")
d, a = s.recvfrom(4096)
check(d == ("ECHO:C" + tok).encode() and a[:2] == (host, port), "recvfrom on connected %r %r" % (d, a))
s.close()
# unconnected: sendto/recvfrom report the peer's tunnel address
u = socket.socket(fam, socket.SOCK_DGRAM); u.settimeout(20)
u.sendto(("D" + tok).encode(), (host, port))
d, a = u.recvfrom(4096)
check(d == ("ECHO:D" + tok).encode(), "unconnected echo %r" % d)
check(a[:2] == (host, port), "recvfrom source %r" % (a,))
# sendmsg/recvmsg with scatter/gather
u.sendmsg([b"E", tok.encode()], [], 0, (host, port))
d, anc, fl, a = u.recvmsg(4096)
check(d == ("ECHO:E" + tok).encode() and a[:2] == (host, port), "recvmsg %r %r" % (d, a))
# truncation: MSG_TRUNC flag, rest of the datagram dropped
u.sendto(("F" + tok).encode(), (host, port))
d, anc, fl, a = u.recvmsg(4)
check(d == b"ECHO" and fl & socket.MSG_TRUNC, "truncated recvmsg %r %r" % (d, fl))
u.sendto(("G" + tok).encode(), (host, port))
check(u.recv(4096) == ("ECHO:G" + tok).encode(), "next datagram after truncation")
print("OK", me[0], flush=True)
"#;

#[test]
fn udp_echo_python_v4_connected_unconnected_msg() {
    skip_unless_ready!();
    let t = one_peer();
    let (_srv, log) = echo_server(&t, 7000);
    let tok = token("udp4");
    let out = python(&t, CLIENT, &[&tok, "10.77.0.1", "7000"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("OK 10.77.0.2"),
        "{}",
        show(&out)
    );
    let l = read(&log);
    for tag in ["A", "B", "C", "D", "E", "F", "G", "H", "V"] {
        assert!(
            l.contains("FROM 10.77.0.2 ") && l.contains(&format!("{tag}{tok}")),
            "server did not see {tag} from our tunnel address: {l}"
        );
    }
    let err = String::from_utf8_lossy(&out.stderr);
    for want in ["udp flow opened", "udp flow connected", "udp flow closed"] {
        assert!(err.contains(want), "missing {want:?} in logs:\n{err}");
    }
}

#[test]
fn udp_echo_python_v6() {
    skip_unless_ready!();
    let t = one_peer();
    let (_srv, log) = echo_server(&t, 7001);
    let tok = token("udp6");
    let out = python(&t, CLIENT, &[&tok, "fd77::1", "7001"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("OK fd77::2"),
        "{}",
        show(&out)
    );
    let l = read(&log);
    assert!(
        l.contains("FROM fd77::2 ") && l.contains(&format!("D{tok}")),
        "server log: {l}"
    );
}

#[test]
fn udp_echo_socat() {
    skip_unless_ready!();
    if !on_path("socat") {
        eprintln!("SKIPPED: socat not installed");
        return;
    }
    let t = one_peer();
    let (_srv, log) = echo_server(&t, 7002);
    let tok = token("socat");
    let input = t.tmp.write("in.txt", &format!("{tok}\n"));
    let i = input.display().to_string();
    let out = wrapguard(
        &t.client,
        &t.conf,
        &[],
        &[
            "sh",
            "-c",
            &format!("socat -T 5 UDP:10.77.0.1:7002 - < {i}"),
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("ECHO:{tok}")),
        "{}",
        show(&out)
    );
    let l = read(&log);
    assert!(
        l.contains("FROM 10.77.0.2 ") && l.contains(&tok),
        "server log: {l}"
    );
}

/// A UDP server under wrapguard (dual-stack `[::]`): logs every peer it
/// hears from and answers `REPLY:<token>:<data>`; ends after two peers.
const WRAPPED_SERVER: &str = r#"
import socket, sys
tok, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", port))
print("READY", s.getsockname()[1], flush=True)
seen = set()
s.settimeout(40)
while len(seen) < 2:
    d, a = s.recvfrom(2048)
    print("SAW", a[0], a[1], d.decode(), flush=True)
    s.sendto(("REPLY:%s:" % tok).encode() + d, a)
    seen.add(a[0])
print("DONE", flush=True)
"#;

#[test]
fn udp_server_under_wrapguard_answers_peers_v4_and_v6() {
    skip_unless_ready!();
    // Keepalive: we handshake at start, so the peer knows our endpoint.
    let t = OnePeer::listening("u", 51820).configured(Conf {
        peer: "PersistentKeepalive = 25",
        ..Conf::DUAL
    });
    let tok = token("srv");
    let log = t.tmp.join("server.log");
    let _srv = spawn_wrapguard(
        &t.client,
        &t.conf,
        &["--log-level=debug"],
        &["python3", "-u", "-c", WRAPPED_SERVER, &tok, "9000"],
        &log,
        55,
    );
    let l = wait_line(&log, &["READY"], 20);
    assert_eq!(l, "READY 9000", "server did not start: {}", read(&log));
    for (dst, from, tag) in [
        ("10.77.0.2", "10.77.0.1", "v4"),
        ("fd77::2", "fd77::1", "v6"),
    ] {
        let msg = format!("{tag}-{tok}");
        let out = t
            .peer
            .ns
            .run(&["python3", "-c", UDP_PING_CLIENT, dst, "9000", &msg]);
        let got = String::from_utf8_lossy(&out.stdout);
        assert!(
            got.contains(&format!("GOT {dst} REPLY:{tok}:{msg}")),
            "peer got no reply from {dst}: {}\n--- wrapguard and server:\n{}",
            show(&out),
            read(&log)
        );
        let l = read(&log);
        assert!(
            l.lines()
                .any(|x| x.starts_with("SAW ") && x.contains(from) && x.ends_with(&msg)),
            "server did not see {from}: {l}"
        );
    }
    let l = wait_line(&log, &["DONE"], 20);
    assert_eq!(l, "DONE", "{}", read(&log));
}

#[test]
fn icmp_port_unreachable_is_econnrefused_on_connected_socket() {
    skip_unless_ready!();
    let t = one_peer();
    let script = r#"
import errno, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(20)
s.connect(("10.77.0.1", 7999))
s.send(b"anyone?")
try:
    s.recv(100); print("FAIL got data"); sys.exit(1)
except ConnectionRefusedError:
    pass
# The error is reported once; the socket stays usable, and a second
# datagram to the closed port is refused again on the next call.
s.send(b"again")
t = time.time() + 20
while time.time() < t:
    try:
        s.send(b"x"); time.sleep(0.2)
    except ConnectionRefusedError:
        print("OK refused twice"); sys.exit(0)
print("FAIL second refusal"); sys.exit(1)
"#;
    let out = python(&t, script, &[]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK refused twice"));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ICMP error"),
        "{}",
        show(&out)
    );
}

const URING: &str = r#"
import ctypes, ctypes.util, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)
ctypes.set_errno(0)
r = libc.syscall(425, 8, params)
e = ctypes.get_errno()
if r >= 0:
    os.close(r)
print("SYSCALL", r, e)
try:
    f = libc.io_uring_setup
except AttributeError:
    print("SYMBOL absent")
else:
    ctypes.set_errno(0)
    r = f(8, params)
    print("SYMBOL", r, ctypes.get_errno())
"#;

#[test]
fn io_uring_setup_fails_with_enosys_in_the_child() {
    skip_unless_ready!();
    let t = one_peer();
    // Outside wrapguard the kernel must allow it, or the test proves nothing.
    let base = t.client.run(&["python3", "-c", URING]);
    let base_out = String::from_utf8_lossy(&base.stdout).to_string();
    if !base_out
        .lines()
        .any(|l| l.starts_with("SYSCALL ") && !l.starts_with("SYSCALL -1"))
    {
        eprintln!("SKIPPED: io_uring is not available on this kernel: {base_out}");
        return;
    }
    let out = python(&t, URING, &[]);
    let o = String::from_utf8_lossy(&out.stdout);
    assert!(o.contains("SYSCALL -1 38"), "syscall(): {}", show(&out));
    assert!(
        o.contains("SYMBOL -1 38"),
        "io_uring_setup symbol: {}",
        show(&out)
    );
}

#[test]
fn static_program_is_refused_before_launch() {
    skip_unless_ready!();
    let t = one_peer();
    let src = t.tmp.write(
        "hello.c",
        "#include <stdio.h>\nint main(void){puts(\"hello-static-ran\");return 0;}\n",
    );
    let bin = t.tmp.join("hello-static");
    let built = std::process::Command::new("gcc")
        .args(["-static", "-o"])
        .arg(&bin)
        .arg(&src)
        .output();
    if !built.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: gcc -static failed (gcc or static libc missing: apt-get install gcc libc6-dev)");
        return;
    }
    let b = bin.display().to_string();
    // Only the shim mode refuses it (auto runs it under seccomp).
    let out = wrapguard(&t.client, &t.conf, &["--mode=preload"], &[&b]);
    assert!(!out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to run") && err.contains("statically linked"),
        "{}",
        show(&out)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hello-static-ran"));
    // The escape hatch runs it (outside the tunnel), with a warning.
    let mut argv = vec!["env".to_string(), "WRAPGUARD_ALLOW_UNCARRIED=1".to_string()];
    argv.extend(Wrapguard::under_test().argv(&t.conf, &["--mode=preload"], &[&b], RUN_LIMIT_SECS));
    let out = t
        .client
        .run(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("hello-static-ran"));
}

const MMSG_C: &str = r#"
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct timeval tv = {20, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in to = {0};
    to.sin_family = AF_INET; to.sin_port = htons(7003);
    inet_pton(AF_INET, "10.77.0.1", &to.sin_addr);
    char out[3][64]; struct iovec oiov[3]; struct mmsghdr om[3];
    memset(om, 0, sizeof om);
    for (int i = 0; i < 3; i++) {
        snprintf(out[i], 64, "M%d-%s", i, argv[1]);
        oiov[i].iov_base = out[i]; oiov[i].iov_len = strlen(out[i]);
        om[i].msg_hdr.msg_iov = &oiov[i]; om[i].msg_hdr.msg_iovlen = 1;
        om[i].msg_hdr.msg_name = &to; om[i].msg_hdr.msg_namelen = sizeof to;
    }
    int n = sendmmsg(s, om, 3, 0);
    if (n != 3) { printf("sendmmsg %d\n", n); return 1; }
    char in[3][128]; struct iovec iiov[3]; struct mmsghdr im[3];
    struct sockaddr_in from[3];
    int got = 0;
    while (got < 3) {
        memset(im, 0, sizeof im);
        for (int i = 0; i < 3; i++) {
            iiov[i].iov_base = in[i]; iiov[i].iov_len = 127;
            im[i].msg_hdr.msg_iov = &iiov[i]; im[i].msg_hdr.msg_iovlen = 1;
            im[i].msg_hdr.msg_name = &from[i]; im[i].msg_hdr.msg_namelen = sizeof from[i];
        }
        int r = recvmmsg(s, im, 3 - got, MSG_WAITFORONE, NULL);
        if (r <= 0) { printf("recvmmsg %d\n", r); return 1; }
        for (int i = 0; i < r; i++) {
            char a[32];
            inet_ntop(AF_INET, &from[i].sin_addr, a, sizeof a);
            in[i][im[i].msg_len] = 0;
            printf("RECV %s %d %s\n", a, ntohs(from[i].sin_port), in[i]);
        }
        got += r;
    }
    return 0;
}
"#;

#[test]
fn sendmmsg_recvmmsg_from_c() {
    skip_unless_ready!();
    let t = one_peer();
    let (_srv, log) = echo_server(&t, 7003);
    let src = t.tmp.write("mmsg.c", MMSG_C);
    let bin = t.tmp.join("mmsg");
    let built = std::process::Command::new("gcc")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("gcc");
    assert!(built.status.success(), "gcc: {}", show(&built));
    let tok = token("mmsg");
    let out = wrapguard(&t.client, &t.conf, &[], &[&bin.display().to_string(), &tok]);
    assert!(out.status.success(), "{}", show(&out));
    let o = String::from_utf8_lossy(&out.stdout);
    for i in 0..3 {
        assert!(
            o.contains(&format!("RECV 10.77.0.1 7003 ECHO:M{i}-{tok}")),
            "{}",
            show(&out)
        );
        let l = read(&log);
        assert!(
            l.contains(&format!("M{i}-{tok}")) && l.contains("FROM 10.77.0.2 "),
            "{l}"
        );
    }
}

#[test]
fn iperf3_udp_completes_through_the_tunnel() {
    skip_unless_ready!();
    if !on_path("iperf3") {
        eprintln!("SKIPPED: iperf3 not installed");
        return;
    }
    let t = one_peer();
    let slog = t.tmp.join("iperf3-server.log");
    let _srv = t
        .peer
        .ns
        .spawn(&["iperf3", "-s", "-1", "-B", "10.77.0.1"], &slog);
    t.peer.ns.wait_tcp_listen(5201);
    let out = wrapguard(
        &t.client,
        &t.conf,
        &[],
        &[
            "iperf3",
            "-u",
            "-c",
            "10.77.0.1",
            "-b",
            "20M",
            "-t",
            "3",
            "-l",
            "1200",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    let o = String::from_utf8_lossy(&out.stdout);
    // The receiver (the far side) counted our datagrams.
    let packets = o
        .split("\"sum\"")
        .nth(1)
        .and_then(|x| x.split("\"packets\":").nth(1))
        .and_then(|x| x.trim().split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|x| x.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(packets > 100, "too few packets ({packets}): {}", show(&out));
    let sl = read(&slog);
    assert!(sl.contains("10.77.0.2"), "server log: {sl}");
}

/// The harness's leak guard (see `wrapguard_testnet::LeakGuard`) watches
/// the client namespace in every test; this one drives it hard: a positive
/// control, wrapped UDP and TCP with the tunnel up, then with it down.
#[test]
fn nothing_for_the_tunnel_reaches_the_host_network_even_when_the_tunnel_is_down() {
    skip_unless_ready!();
    let mut t = one_peer();
    let (_srv, _elog) = echo_server(&t, 7004);
    // The client namespace *could* send tunnel destinations out of its
    // underlay interface (the guard's bait routes): an unwrapped program's
    // datagrams are seen leaving, so the detector works.
    let send = r#"
import socket
for fam, host in ((socket.AF_INET, "10.77.0.1"), (socket.AF_INET6, "fd77::1")):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        s.sendto(b"x", (host, 7004))
    except OSError as e:
        print("send", host, e)
"#;
    let (_, seen) = t
        .client
        .leak_guard()
        .expect_leaks_to(&["10.77.0.1", "fd77::1"], || {
            t.client.run(&["python3", "-c", send])
        });
    assert!(
        seen.iter().all(|l| l.proto == 17 && l.dport == Some(7004)),
        "{seen:?}"
    );

    // Wrapped: UDP (connected, unconnected, v4 and v6) and TCP, tunnel up.
    let tok = token("leak");
    let out = python(&t, CLIENT, &[&tok, "10.77.0.1", "7004"]);
    assert!(out.status.success(), "{}", show(&out));
    let out = python(&t, CLIENT, &[&tok, "fd77::1", "7004"]);
    assert!(out.status.success(), "{}", show(&out));

    // Tunnel down: sends and connects fail or vanish into the engine, fast.
    t.peer.kill();
    let down = r#"
import errno, socket, time
t0 = time.time()
for fam, host in ((socket.AF_INET, "10.77.0.1"), (socket.AF_INET6, "fd77::1")):
    u = socket.socket(fam, socket.SOCK_DGRAM)
    u.sendto(b"down", (host, 7004))
    u.connect((host, 7004)); u.send(b"down2")
    c = socket.socket(fam, socket.SOCK_STREAM); c.settimeout(5)
    try:
        c.connect((host, 7004)); print("TCP connected?!")
    except OSError as e:
        print("TCP", host, type(e).__name__, errno.errorcode.get(e.errno, e.errno))
print("DONE %.1f" % (time.time() - t0))
"#;
    let out = python(&t, down, &[]);
    let o = String::from_utf8_lossy(&out.stdout);
    assert!(o.contains("DONE"), "{}", show(&out));
    assert!(!o.contains("connected?!"), "{}", show(&out));
    assert_eq!(
        t.client.leak_guard().finish(),
        Ok(()),
        "wrapped traffic reached the host network"
    );
}
