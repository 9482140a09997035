//! `connect()` again on a non-blocking socket once it is writable, as
//! Perl's `IO::Socket::INET` (with `Timeout`), Ruby's `Net::HTTP` and
//! hiredis (`redis-cli`) do to learn that the connect finished: the kernel
//! returns 0 (then `EISCONN`), or the error once (then a new attempt).
//! Against wireguard-go in namespaces of the test's own: a C fixture that
//! prints every step (compared with what the kernel says on loopback, the
//! same program, the same run), and the real programs fetching a unique
//! token, in both modes. Needs root, wireguard-go, wireguard-tools, gcc;
//! the real programs are skipped one by one where not installed.

use wrapguard_testnet::{
    on_path, peer_server, read, show, skip_unless_ready, token, wrapguard, Conf, Configured,
    OnePeer,
};

/// The two modes every check runs in.
const MODES: [&[&str]; 2] = [&[], &["--mode=seccomp"]];

fn one_peer() -> Configured {
    OnePeer::new("ca").configured(Conf::V4)
}

/// The lines the fixture prints, the fetched body replaced by `BODY`.
fn steps(stdout: &[u8], tok: &str) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.starts_with('{'))
        .map(|l| l.replace(tok, "BODY"))
        .collect()
}

#[test]
fn connect_again_answers_as_the_kernel_does_in_both_modes() {
    skip_unless_ready!();
    let t = one_peer();
    let Some(bin) = wrapguard_testnet::c_fixture("connect_again", &t.tmp.join("")) else {
        return;
    };
    // The reference: the same program against the kernel's TCP on the
    // peer's loopback (its own namespace), with a server of the same kind.
    let tok = token("again");
    let (_srv, log) = t.serve_page(&tok, "0.0.0.0");
    let kernel = t.peer.ns.run(&[&bin, "127.0.0.1", "8080", "8099"]);
    assert!(kernel.status.success(), "{}", show(&kernel));
    let want = steps(&kernel.stdout, &tok);
    assert!(
        want.iter().any(|l| l == "again second 0")
            && want.iter().any(|l| l == "taken second ECONNABORTED"),
        "the kernel's answers changed? {want:?}"
    );
    assert_eq!(
        want.iter().filter(|l| l.ends_with("fetch BODY")).count(),
        4,
        "{want:?}"
    );
    for mode in MODES {
        let out = wrapguard(
            &t.client,
            &t.conf,
            mode,
            &[&bin, "10.77.0.1", "8080", "8099"],
        );
        assert!(out.status.success(), "{mode:?}: {}", show(&out));
        let got = steps(&out.stdout, &tok);
        assert_eq!(got, want, "{mode:?}: {}", show(&out));
    }
    // The fetches went through the tunnel: the server saw our address.
    assert!(read(&log).contains("10.77.0.2"), "{}", read(&log));
}

/// Runs `argv` under wrapguard in each mode; it must succeed and print
/// exactly `tok`.
fn prints_in_both_modes(t: &Configured, argv: &[&str], tok: &str) {
    for mode in MODES {
        let out = wrapguard(&t.client, &t.conf, mode, argv);
        assert!(out.status.success(), "{mode:?}: {}", show(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            tok,
            "{mode:?}: {}",
            show(&out)
        );
    }
}

/// `python3 -m http.server` on the peer serving `tok`; returns its log.
fn page(t: &Configured, tok: &str) -> (wrapguard_testnet::Bg, std::path::PathBuf) {
    t.serve_page(tok, "0.0.0.0")
}

#[test]
fn perl_io_socket_with_timeout_connects() {
    skip_unless_ready!();
    if !on_path("perl") {
        println!("SKIPPED: no perl");
        return;
    }
    let t = one_peer();
    let tok = token("perl");
    let (_srv, log) = page(&t, &tok);
    let script = r#"use IO::Socket::INET;
my $s = IO::Socket::INET->new(PeerAddr => "10.77.0.1:8080", Timeout => 5)
    or die "connect: $! ($@)\n";
print $s "GET / HTTP/1.0\r\n\r\n";
my $r = join("", <$s>);
$r =~ s/.*\r\n\r\n//s;
print $r;"#;
    prints_in_both_modes(&t, &["perl", "-e", script], &tok);
    assert!(read(&log).contains("10.77.0.2"), "{}", read(&log));
}

#[test]
fn ruby_net_http_with_open_timeout_fetches() {
    skip_unless_ready!();
    if !on_path("ruby") {
        println!("SKIPPED: no ruby");
        return;
    }
    let t = one_peer();
    let tok = token("ruby");
    let (_srv, log) = page(&t, &tok);
    let script = r#"require "net/http"
h = Net::HTTP.new("10.77.0.1", 8080)
h.open_timeout = 5
print h.get("/").body"#;
    prints_in_both_modes(&t, &["ruby", "-e", script], &tok);
    assert!(read(&log).contains("10.77.0.2"), "{}", read(&log));
}

#[test]
fn redis_cli_talks_to_a_server_behind_the_tunnel() {
    skip_unless_ready!();
    if !on_path("redis-cli") {
        println!("SKIPPED: no redis-cli (apt-get install redis-tools)");
        return;
    }
    let t = one_peer();
    let tok = token("redis");
    // A one-command RESP server: answers every request with a status reply
    // carrying the token and logs who asked.
    let script = format!(
        r#"
import socket, threading
def serve(c, a):
    print("client", a[0], flush=True)
    buf = b""
    while b"PING" not in buf:
        d = c.recv(4096)
        if not d: return
        buf += d
    c.sendall(b"+{tok}\r\n")
    c.recv(4096)
    c.close()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 6379)); s.listen(16)
while True:
    c, a = s.accept(); threading.Thread(target=serve, args=(c, a), daemon=True).start()
"#
    );
    let (_srv, log) = peer_server(&t.peer, &t.tmp, "resp", &script, 6379);
    let argv = ["redis-cli", "-h", "10.77.0.1", "-p", "6379", "PING"];
    prints_in_both_modes(&t, &argv, &tok);
    let l = read(&log);
    assert_eq!(l.matches("client 10.77.0.2").count(), 2, "{l}");
}

/// `TCP_MAXSEG` and `TCP_INFO` on a tunnel stream say what the path
/// carries (MTU 1420: 1368 payload bytes over IPv4 with timestamps, 1348
/// over IPv6 — what Linux says through a wg-quick interface), not what the
/// never-connected kernel socket underneath would (536, `TCP_CLOSE`).
#[test]
fn tcp_maxseg_and_tcp_info_describe_the_tunnel_connection() {
    skip_unless_ready!();
    let t = OnePeer::new("mss").configured(Conf::DUAL);
    let Some(bin) = wrapguard_testnet::c_fixture("tcp_opts", &t.tmp.join("")) else {
        return;
    };
    // An echo server on both families.
    let script = r#"
import socket, threading
def echo(c):
    while True:
        d = c.recv(4096)
        if not d: break
        c.sendall(d)
    c.close()
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("::", 7000)); s.listen(16)
while True:
    c, _ = s.accept(); threading.Thread(target=echo, args=(c,), daemon=True).start()
"#;
    let _echo = peer_server(&t.peer, &t.tmp, "echo6", script, 7000);
    for (host, mss) in [("10.77.0.1", 1368), ("fd77::1", 1348)] {
        let want = [
            "maxseg_unconnected 536".to_string(),
            format!("maxseg {mss} len 4"),
            "tcp_info_len_ok 1".to_string(),
            "state 1".to_string(),
            format!("snd_mss {mss}"),
            "rtt_set 1".to_string(),
            "rto_set 1".to_string(),
            "cwnd_set 1".to_string(),
            "unacked 0".to_string(),
            "short_len 8 state 1 mss_untouched 1".to_string(),
        ];
        for mode in MODES {
            let out = wrapguard(&t.client, &t.conf, mode, &[&bin, host, "7000"]);
            assert!(out.status.success(), "{mode:?} {host}: {}", show(&out));
            let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.starts_with('{'))
                .map(str::to_string)
                .collect();
            assert_eq!(got, want, "{mode:?} {host}: {}", show(&out));
        }
    }
}
