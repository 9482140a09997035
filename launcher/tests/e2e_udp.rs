//! UDP through the tunnel against wireguard-go (same harness as
//! `e2e_wireguard_go.rs`: the peer in its own namespace, wrapguard in a
//! client namespace with no route but the underlay veth). Every test checks
//! content (a unique token) *and* where it went (the far side logs the
//! source address it saw). Needs root, wireguard-go, wireguard-tools;
//! prints `SKIPPED:` and passes otherwise.

mod common;
#[macro_use]
mod wg;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wg::{show, token, wrapguard, Bg, Netns, PeerSetup, TempDir, WgPeer};

/// One wireguard-go peer (10.77.0.1, fd77::1) and our config (10.77.0.2, fd77::2).
struct One {
    peer: WgPeer,
    client: Netns,
    conf: PathBuf,
    tmp: TempDir,
}

fn one_peer() -> One {
    let tmp = TempDir::new();
    let client = Netns::new("u");
    let ours = wg::keys();
    let peer = WgPeer::new(
        &client,
        &tmp,
        PeerSetup {
            index: 1,
            our_public: &ours.public,
            our_allowed: "10.77.0.2/32,fd77::2/128",
            our_endpoint: None,
            extra_addrs: &[],
            extra_peer_args: &[],
        },
    );
    let conf = tmp.write(
        "wg0.conf",
        &format!(
            "[Interface]\nPrivateKey = {}\nAddress = 10.77.0.2/24, fd77::2/64\n\n\
             [Peer]\nPublicKey = {}\nEndpoint = {}\nAllowedIPs = 10.77.0.0/24, fd77::/64\n",
            ours.private,
            peer.keys.public,
            peer.endpoint()
        ),
    );
    One {
        peer,
        client,
        conf,
        tmp,
    }
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

fn wait_for(path: &Path, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let l = std::fs::read_to_string(path).unwrap_or_default();
        if l.contains(what) || Instant::now() > deadline {
            return l;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn echo_server(t: &One, port: u16) -> (Bg, PathBuf) {
    let log = t.tmp.join(&format!("echo{port}.log"));
    let bg = t.peer.ns.spawn(
        &["python3", "-u", "-c", ECHO_SERVER, &port.to_string()],
        &log,
    );
    let l = wait_for(&log, "READY");
    assert!(l.contains("READY"), "echo server did not start: {l}");
    (bg, log)
}

fn python(t: &One, script: &str, args: &[&str]) -> std::process::Output {
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
    let l = std::fs::read_to_string(&log).unwrap_or_default();
    for tag in ["A", "B", "C", "D", "E", "F", "G"] {
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
    let l = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        l.contains("FROM fd77::2 ") && l.contains(&format!("D{tok}")),
        "server log: {l}"
    );
}

#[test]
fn udp_echo_socat() {
    skip_unless_ready!();
    if !wg::on_path("socat") {
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
    let l = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        l.contains("FROM 10.77.0.2 ") && l.contains(&tok),
        "server log: {l}"
    );
}
