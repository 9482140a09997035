//! wrapguard against a WireGuard implementation we did not write:
//! wireguard-go with its TUN in a namespace of its own, wrapguard in a
//! client namespace whose only links are the underlay veths (no default
//! route). Real programs (curl, python3, node, iperf3) are the wrapped
//! applications; assertions check content *and* where traffic went (the
//! peer's server logs). Needs root, wireguard-go, wireguard-tools; prints
//! `SKIPPED:` and passes otherwise.

use std::path::{Path, PathBuf};
use wrapguard_testnet as wg;
use wrapguard_testnet::{
    conf_text, curl_retrying, python, read, show, skip_unless_ready, spawn_wrapguard, token,
    wrapguard, Bg, Conf, Configured, Endpoint, Netns, OnePeer, PeerOpts, PeerSection, PeerSetup,
    TempDir, WgPeer, OUR_V4,
};

/// Peer 1 (10.77.0.1, fd77::1) and our dual-stack config for it.
fn one_peer() -> Configured {
    OnePeer::new("b").configured(Conf::DUAL)
}

/// Serves `tok` from a `python3 -m http.server` on 8080 (bound to `bind`)
/// run under wrapguard with `conf` in the client namespace; returns the
/// wrapguard process and its log (wrapguard's lines and the access log).
fn wrapped_http_server(
    t: &OnePeer,
    conf: &Path,
    flags: &[&str],
    bind: &str,
    tok: &str,
) -> (Bg, PathBuf) {
    let root = t.tmp.webroot("www-wrapped", tok);
    let log = t.tmp.join("wrapped.log");
    let argv = wg::http_server_argv(&python(), 8080, bind, &root);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let bg = spawn_wrapguard(&t.client, conf, flags, &argv, &log, 300);
    (bg, log)
}

#[test]
fn curl_fetches_token_and_server_sees_tunnel_address() {
    skip_unless_ready!();
    let t = one_peer();
    let conf = &t.conf;
    let tok = token("curl");
    let (_srv, log) = t.serve_page(&tok, "0.0.0.0");
    let out = wrapguard(
        &t.client,
        conf,
        &["--log-level=debug"],
        &["curl", "-sS", "--max-time", "20", "http://10.77.0.1:8080/"],
    );
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        tok,
        "{}",
        show(&out)
    );
    let l = read(&log);
    assert!(l.contains(&format!("{OUR_V4} - - ")), "server log: {l}");
    // The startup and debug lines we promise, and no key material.
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "\"Config: ",
        "\"Interface: 10.77.0.2/24\"",
        "handshake complete",
        "tunnel flow closed",
    ] {
        assert!(err.contains(want), "missing {want:?} in logs:\n{err}");
    }
    assert!(!err.contains(&t.peer.keys.private), "private key in logs");
}

#[test]
fn ipv6_curl_gets_token() {
    skip_unless_ready!();
    let t = one_peer();
    let conf = &t.conf;
    let tok = token("v6");
    let (_srv, log) = t.serve_page(&tok, "::");
    let out = wrapguard(
        &t.client,
        conf,
        &[],
        &[
            "curl",
            "-sS",
            "--max-time",
            "20",
            "-g",
            "http://[fd77::1]:8080/",
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), tok);
    let l = read(&log);
    assert!(l.contains("fd77::2 - - "), "server log: {l}");
}

#[test]
fn node_http_client_gets_token() {
    skip_unless_ready!();
    if !wg::on_path("node") {
        eprintln!("SKIPPED: node not installed");
        return;
    }
    let t = one_peer();
    let conf = &t.conf;
    let tok = token("node");
    let (_srv, log) = t.serve_page(&tok, "0.0.0.0");
    let js = "require('http').get('http://10.77.0.1:8080/', r => { let d = ''; \
              r.on('data', c => d += c); r.on('end', () => console.log('GOT ' + d)); })\
              .on('error', e => { console.error(e); process.exit(3); });";
    let out = wrapguard(&t.client, conf, &[], &["node", "-e", js]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("GOT {tok}")),
        "{}",
        show(&out)
    );
    assert!(read(&log).contains(&format!("{OUR_V4} - - ")));
}

const SOCKET_SEMANTICS: &str = r#"
import errno, select, socket, sys
def check(cond, what):
    if not cond:
        print("FAIL", what); sys.exit(1)
# blocking connect
s = socket.create_connection(("10.77.0.1", 8080), timeout=20)
check(s.getpeername() == ("10.77.0.1", 8080), "getpeername %r" % (s.getpeername(),))
check(s.getsockname()[0] == "10.77.0.2", "getsockname %r" % (s.getsockname(),))
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
body = b""
while True:
    d = s.recv(65536)
    if not d: break
    body += d
check(TOKEN.encode() in body, "token in body")
s.close()
# non-blocking connect, poll, SO_ERROR
s = socket.socket(); s.setblocking(False)
r = s.connect_ex(("10.77.0.1", 8080))
check(r in (0, errno.EINPROGRESS), "connect_ex %d" % r)
p = select.poll(); p.register(s, select.POLLOUT)
check(p.poll(20000), "poll timed out")
check(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0, "SO_ERROR after connect")
check(s.getpeername() == ("10.77.0.1", 8080), "nb getpeername")
s.close()
# closed port: exact errno, blocking and non-blocking
s = socket.socket(); s.settimeout(20)
try:
    s.connect(("10.77.0.1", 8081)); check(False, "connect to closed port succeeded")
except OSError as e:
    check(e.errno == errno.ECONNREFUSED, "blocking errno %r" % e.errno)
s.close()
s = socket.socket(); s.setblocking(False)
r = s.connect_ex(("10.77.0.1", 8081))
if r == errno.EINPROGRESS:
    p = select.poll(); p.register(s, select.POLLOUT)
    check(p.poll(20000), "poll timed out (refused)")
    r = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
check(r == errno.ECONNREFUSED, "SO_ERROR %r" % r)
s.close()
print("PASS")
"#;

#[test]
fn python_socket_semantics_through_the_tunnel() {
    skip_unless_ready!();
    let t = one_peer();
    let conf = &t.conf;
    let tok = token("py");
    let (_srv, _log) = t.serve_page(&tok, "0.0.0.0");
    let script = format!("TOKEN = {tok:?}\n{SOCKET_SEMANTICS}");
    let py = python();
    let out = wrapguard(&t.client, conf, &[], &[&py, "-c", &script]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("PASS"),
        "{}",
        show(&out)
    );
}

#[test]
fn incoming_connection_reaches_wrapped_server_from_peer_without_endpoint() {
    skip_unless_ready!();
    // We list the peer WITHOUT an Endpoint and a fixed ListenPort; the peer
    // knows our endpoint and initiates: we are reachable once it contacts us.
    let t = OnePeer::listening("b", 51900);
    let conf = t.conf(
        "wg0.conf",
        Conf {
            endpoint: Endpoint::None,
            ..Conf::V4
        },
    );
    let tok = token("in");
    let (mut server, child_log) = wrapped_http_server(&t, &conf, &[], "0.0.0.0", &tok);
    // Retry until the wrapped server listens in the tunnel (RST before that).
    let out = curl_retrying(&t.peer.ns, "http://10.77.0.2:8080/", 30);
    std::thread::sleep(std::time::Duration::from_millis(200));
    server.terminate();
    let l = read(&child_log);
    assert!(
        out.status.success(),
        "{}\n--- wrapguard log\n{l}",
        show(&out)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), tok);
    assert!(
        l.contains("10.77.0.1 - - "),
        "child's access log should show the peer's tunnel address:\n{l}"
    );
}

#[test]
fn bulk_100mb_upload_and_download_sha256() {
    skip_unless_ready!();
    let t = one_peer();
    let conf = &t.conf;
    let bulk = wg::bulk_server(&t.peer, &t.tmp, 100 * 1024 * 1024);
    let log = &bulk.log;
    let started = std::time::Instant::now();
    let out = wrapguard(&t.client, conf, &[], &[&python(), &bulk.client, &bulk.n]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("PASS"),
        "{}\n{}",
        show(&out),
        read(log)
    );
    println!(
        "100 MiB each way: {} (total {:?})",
        stdout.lines().next().unwrap_or(""),
        started.elapsed()
    );
}

fn iperf_rate(out: &str) -> String {
    out.lines()
        .filter(|l| l.contains("receiver"))
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.iter()
                .position(|x| x.ends_with("bits/sec"))
                .map(|i| format!("{} {}", w[i - 1], w[i]))
        })
        .next()
        .unwrap_or_else(|| "?".into())
}

#[test]
fn iperf3_both_directions() {
    skip_unless_ready!();
    if !wg::on_path("iperf3") {
        eprintln!("SKIPPED: iperf3 not installed (apt-get install -y iperf3)");
        return;
    }
    let t = one_peer();
    let conf = &t.conf;
    let log = t.tmp.join("iperf.log");
    let _srv = t.peer.ns.spawn(&["iperf3", "-s", "-B", "10.77.0.1"], &log);
    t.peer.ns.wait_tcp_listen(5201);
    for (label, extra) in [("upload", None), ("download (-R)", Some("-R"))] {
        let mut argv = vec!["iperf3", "-c", "10.77.0.1", "-t", "3"];
        argv.extend(extra);
        let out = wrapguard(&t.client, conf, &[], &argv);
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && s.contains("receiver"),
            "{}\n{}",
            show(&out),
            read(&log)
        );
        println!("iperf3 {label}: {}", iperf_rate(&s));
        eprintln!("iperf3 {label}: {}", iperf_rate(&s));
    }
}

/// Two wireguard-go peers: peer 1 (10.77.0.1) and peer 2 (10.78.0.1). Both
/// also serve the same "service" addresses 10.99.0.1 and 10.98.0.1 on their
/// loopback, each with its own page; which page comes back (and which
/// server logged the request) shows which peer the rule chose.
#[test]
fn routing_two_peers_route_lines_flags_and_exit_node() {
    skip_unless_ready!();
    let tmp = TempDir::new();
    let client = Netns::new("b");
    let ours = wg::keys();
    let mk = |i: u8| {
        WgPeer::new(
            &client,
            &tmp,
            PeerSetup {
                index: i,
                our_public: &ours.public,
                our_allowed: "10.77.0.2/32",
                our_endpoint: None,
                extra_addrs: &["10.99.0.1/32", "10.98.0.1/32"],
                extra_peer_args: &[],
            },
        )
    };
    let p1 = mk(1);
    let p2 = mk(2);
    let (tok1, tok2) = (token("peer1"), token("peer2"));
    let (log1, log2) = (tmp.join("http1.log"), tmp.join("http2.log"));
    let _s1 = p1.http_server(&tmp.webroot("www1", &tok1), "0.0.0.0", &log1);
    let _s2 = p2.http_server(&tmp.webroot("www2", &tok2), "0.0.0.0", &log2);
    // Peer 2 carries 10.99.0.0/24 by a `Route =` line (a policy route: its
    // AllowedIPs stay 10.78.0.0/24).
    let (e1, e2) = (p1.endpoint(), p2.endpoint());
    let conf = tmp.write(
        "wg0.conf",
        &conf_text(
            &ours.private,
            "10.77.0.2/24",
            "",
            &[
                PeerSection {
                    public_key: &p1.keys.public,
                    endpoint: Some(&e1),
                    allowed_ips: "10.77.0.0/24",
                    extra: "",
                },
                PeerSection {
                    public_key: &p2.keys.public,
                    endpoint: Some(&e2),
                    allowed_ips: "10.78.0.0/24",
                    extra: "Route = 10.99.0.0/24",
                },
            ],
        ),
    );
    let fetch = |flags: &[&str], url: &str| {
        wrapguard(
            &client,
            &conf,
            flags,
            &["curl", "-sS", "--max-time", "15", url],
        )
    };
    let count = |p: &std::path::Path| read(p).matches("10.77.0.2 - - ").count();
    let expect = |flags: &[&str], url: &str, tok: &str, what: &str| {
        let (b1, b2) = (count(&log1), count(&log2));
        let out = fetch(flags, url);
        assert!(out.status.success(), "{what}: {}", show(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), tok, "{what}");
        let (a1, a2) = (count(&log1), count(&log2));
        if tok == tok1 {
            assert_eq!((a1 - b1, a2 - b2), (1, 0), "{what}: peer 1 only");
        } else {
            assert_eq!((a1 - b1, a2 - b2), (0, 1), "{what}: peer 2 only");
        }
    };
    // AllowedIPs: each tunnel subnet to its peer.
    expect(&[], "http://10.77.0.1:8080/", &tok1, "AllowedIPs peer 1");
    expect(&[], "http://10.78.0.1:8080/", &tok2, "AllowedIPs peer 2");
    // `Route =` in the config.
    expect(&[], "http://10.99.0.1:8080/", &tok2, "Route = line");
    // `--route` overrides the config.
    expect(
        &["--route=10.99.0.0/24:10.77.0.1"],
        "http://10.99.0.1:8080/",
        &tok1,
        "--route",
    );
    // Nothing routes 10.98.0.1: it goes to the host network (the leak
    // guard's bait route toward peer 1's underlay), where the guard sees it
    // leave outside the tunnel, and no peer sees our tunnel address.
    let (b1, b2) = (count(&log1), count(&log2));
    let (out, seen) = client
        .leak_guard()
        .expect_leaks_to(&["10.98.0.1"], || fetch(&[], "http://10.98.0.1:8080/"));
    assert!(
        seen.iter().all(|l| l.dport == Some(8080) && l.proto == 6),
        "10.98.0.1 must go to the host network as plain TCP: {seen:?}\n{}",
        show(&out)
    );
    assert_eq!((count(&log1), count(&log2)), (b1, b2), "{}", show(&out));
    // --exit-node sends everything else to the named peer.
    expect(
        &["--exit-node=10.78.0.1"],
        "http://10.98.0.1:8080/",
        &tok2,
        "--exit-node peer 2",
    );
    expect(
        &["--exit-node=10.77.0.1"],
        "http://10.98.0.1:8080/",
        &tok1,
        "--exit-node peer 1",
    );
}

fn first_number_after_key(s: &str) -> u64 {
    s.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn preshared_key_and_persistent_keepalive() {
    skip_unless_ready!();
    let psk_dir = TempDir::new();
    let psk = wg::sh(&["wg", "genpsk"]).trim().to_string();
    let psk_s = psk_dir.write("psk", &psk).display().to_string();
    let t = OnePeer::with(
        "b",
        PeerOpts {
            extra_peer_args: &["preshared-key", &psk_s],
            ..PeerOpts::default()
        },
    );
    let (client, peer) = (&t.client, &t.peer);
    let conf_for = |psk: &str, name: &str| {
        t.conf(
            name,
            Conf {
                peer: &format!("PresharedKey = {psk}\nPersistentKeepalive = 1"),
                ..Conf::V4
            },
        )
    };
    // Keepalive: a session and traffic with no application traffic at all.
    let good = conf_for(&psk, "good.conf");
    let out = wrapguard(client, &good, &[], &["sleep", "2.5"]);
    assert!(out.status.success(), "{}", show(&out));
    let hs = first_number_after_key(&peer.wg_show("latest-handshakes"));
    assert!(hs > 0, "keepalive should have made a handshake");
    let rx = first_number_after_key(&peer.wg_show("transfer"));
    // Handshake (148) + at least two keepalives (32 each).
    assert!(rx >= 148 + 64, "peer received {rx} bytes");
    // PSK in use: a fetch works with the right key…
    let tok = token("psk");
    let _srv = t.serve_page(&tok, "0.0.0.0");
    let url = "http://10.77.0.1:8080/";
    let out = wrapguard(
        client,
        &good,
        &[],
        &["curl", "-sS", "--max-time", "15", url],
    );
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), tok);
    // …and fails with a wrong one (the handshake never completes).
    let other = wg::sh(&["wg", "genpsk"]).trim().to_string();
    let bad = conf_for(&other, "bad.conf");
    let out = wrapguard(client, &bad, &[], &["curl", "-sS", "--max-time", "3", url]);
    assert!(
        !out.status.success(),
        "wrong PSK must not connect: {}",
        show(&out)
    );
}

#[test]
fn endpoint_roams_to_latest_authenticated_source() {
    skip_unless_ready!();
    let t = OnePeer::new("b");
    let peer = &t.peer;
    // We start the handshake (keepalive), so the peer learns our endpoint.
    let conf = t.conf(
        "wg0.conf",
        Conf {
            peer: "PersistentKeepalive = 1",
            ..Conf::V4
        },
    );
    let tok = token("roam");
    let (mut server, log) = wrapped_http_server(&t, &conf, &["--log-level=debug"], "0.0.0.0", &tok);
    let curl = |what: &str| {
        let out = curl_retrying(&peer.ns, "http://10.77.0.2:8080/", 20);
        assert!(
            out.status.success(),
            "{what}: {}\n{}",
            show(&out),
            read(&log)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), tok, "{what}");
    };
    curl("before the peer moves");
    // The peer moves to another port: only roaming lets our replies reach it.
    let out = peer
        .ns
        .run(&["wg", "set", &peer.ifname, "listen-port", "51999"]);
    assert!(out.status.success(), "{}", show(&out));
    curl("after the peer moved");
    server.terminate();
    let l = read(&log);
    assert!(
        l.contains("peer endpoint updated") && l.contains("192.168.77.1:51999"),
        "roaming should be logged:\n{l}"
    );
}

#[test]
fn icmp_unreachable_from_the_peer_is_ehostunreach() {
    skip_unless_ready!();
    let t = OnePeer::new("b");
    let (client, peer) = (&t.client, &t.peer);
    // The peer forwards, and has no way to 10.77.9.0/24: its kernel
    // answers with ICMP host unreachable through the tunnel.
    let out = peer
        .ns
        .run(&["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
    assert!(out.status.success(), "{}", show(&out));
    peer.ns.ip(&["route", "add", "unreachable", "10.77.9.0/24"]);
    let conf = t.conf(
        "wg0.conf",
        Conf {
            allowed_ips: "10.77.0.0/16",
            ..Conf::V4
        },
    );
    let script = r#"
import errno, socket, time
t = time.time()
s = socket.socket(); s.settimeout(20)
try:
    s.connect(("10.77.9.9", 80)); print("FAIL connected")
except OSError as e:
    print("ERRNO", errno.errorcode.get(e.errno), "after %.2f s" % (time.time() - t))
"#;
    let py = python();
    let out = wrapguard(client, &conf, &[], &[&py, "-c", script]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ERRNO EHOSTUNREACH"), "{}", show(&out));
}

#[test]
fn inbound_source_outside_allowed_ips_is_dropped() {
    skip_unless_ready!();
    let t = OnePeer::new("b");
    let peer = &t.peer;
    // A second address on the peer's side of the tunnel, which our config
    // does not allow that peer to send from.
    peer.ns
        .ip(&["addr", "add", "10.77.0.5/24", "dev", &peer.ifname]);
    let conf = t.conf(
        "wg0.conf",
        Conf {
            allowed_ips: "10.77.0.1/32",
            peer: "PersistentKeepalive = 1",
            ..Conf::V4
        },
    );
    let tok = token("src");
    let (mut server, log) = wrapped_http_server(&t, &conf, &["--log-level=debug"], "0.0.0.0", &tok);
    let allowed = curl_retrying(&peer.ns, "http://10.77.0.2:8080/", 20);
    let spoofed = peer.ns.run(&[
        "curl",
        "-sS",
        "--max-time",
        "3",
        "--interface",
        "10.77.0.5",
        "http://10.77.0.2:8080/",
    ]);
    server.terminate();
    let l = read(&log);
    assert!(allowed.status.success(), "{}\n{l}", show(&allowed));
    assert_eq!(String::from_utf8_lossy(&allowed.stdout).trim(), tok);
    assert!(
        !spoofed.status.success(),
        "must be dropped: {}",
        show(&spoofed)
    );
    assert!(
        l.contains("source is outside the peer's AllowedIPs") && l.contains("10.77.0.5"),
        "the drop should be logged:\n{l}"
    );
    assert!(
        !l.contains("10.77.0.5 - - "),
        "the server must not see it:\n{l}"
    );
}

const ECHO_CLIENTS: &str = r#"
import hashlib, os, socket, sys, threading
N, SIZE = 32, 1 << 20
bad = []
def one(i):
    data = os.urandom(SIZE)
    s = socket.create_connection(("10.77.0.1", 7000), timeout=30)
    def send():
        s.sendall(data); s.shutdown(socket.SHUT_WR)
    t = threading.Thread(target=send); t.start()
    got = bytearray()
    while True:
        d = s.recv(65536)
        if not d: break
        got += d
    t.join(); s.close()
    if bytes(got) != data: bad.append((i, len(got)))
ts = [threading.Thread(target=one, args=(i,)) for i in range(N)]
for t in ts: t.start()
for t in ts: t.join()
print("BAD", bad) if bad else print("PASS")
"#;

#[test]
fn many_concurrent_echo_flows_both_directions_at_once() {
    skip_unless_ready!();
    let t = one_peer();
    let conf = &t.conf;
    let py = python();
    let _srv = wg::tcp_echo_server(&t.peer, &t.tmp, 7000);
    let out = wrapguard(&t.client, conf, &[], &[&py, "-c", ECHO_CLIENTS]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("PASS"),
        "{}",
        show(&out)
    );
}

#[test]
fn ipv6_underlay_endpoint() {
    skip_unless_ready!();
    let t = OnePeer::new("b");
    let (client, peer) = (&t.client, &t.peer);
    let conf = t.conf(
        "wg0.conf",
        Conf {
            endpoint: Endpoint::Peer6,
            ..Conf::V4
        },
    );
    let tok = token("u6");
    let _srv = t.serve_page(&tok, "0.0.0.0");
    let out = wrapguard(
        client,
        &conf,
        &[],
        &["curl", "-sS", "--max-time", "15", "http://10.77.0.1:8080/"],
    );
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), tok);
    // wireguard-go saw us over IPv6.
    let ep = peer.wg_show("endpoints");
    assert!(
        ep.contains("[fd00:77::2]:"),
        "peer's view of our endpoint: {ep}"
    );
}

#[test]
fn application_connect_timeout_is_honoured() {
    skip_unless_ready!();
    let t = one_peer();
    let conf = &t.conf;
    // The peer silently drops everything for 10.77.8.0/24.
    t.peer
        .ns
        .run(&["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
    t.peer.ns.ip(&["route", "add", "blackhole", "10.77.8.0/24"]);
    let script = r#"
import socket, time
t = time.time()
s = socket.socket(); s.settimeout(2)
try:
    s.connect(("10.77.8.8", 80)); print("FAIL connected")
except socket.timeout:
    print("TIMEOUT after %.1f s" % (time.time() - t))
except OSError as e:
    print("FAIL errno", e.errno)
"#;
    let py = python();
    // Not in the peer's AllowedIPs: a --route sends it there.
    let out = wrapguard(
        &t.client,
        conf,
        &["--route=10.77.8.0/24:10.77.0.1"],
        &[&py, "-c", script],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("TIMEOUT after 2."), "{}", show(&out));
}

#[test]
fn incoming_ipv6_and_ipv4_to_a_dual_stack_wrapped_server() {
    skip_unless_ready!();
    let t = OnePeer::new("b");
    let conf = t.conf(
        "wg0.conf",
        Conf {
            peer: "PersistentKeepalive = 1",
            ..Conf::DUAL
        },
    );
    let tok = token("in6");
    let (mut server, log) = wrapped_http_server(&t, &conf, &[], "::", &tok);
    let fetch = |url: &str| curl_retrying(&t.peer.ns, url, 20);
    let v6 = fetch("http://[fd77::2]:8080/");
    let v4 = fetch("http://10.77.0.2:8080/");
    std::thread::sleep(std::time::Duration::from_millis(200));
    server.terminate();
    let l = read(&log);
    for (what, out) in [("IPv6", &v6), ("IPv4", &v4)] {
        assert!(out.status.success(), "{what}: {}\n{l}", show(out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), tok, "{what}");
    }
    assert!(
        l.contains("fd77::1 - - "),
        "IPv6 peer address in the access log:\n{l}"
    );
    assert!(
        l.contains("10.77.0.1 - - "),
        "IPv4 peer address in the access log:\n{l}"
    );
}

/// No session yet and nothing answers: the first connect waits one short
/// handshake window (two unanswered initiations, ~10 s; not the 90 s
/// give-up) and fails with EHOSTUNREACH; the next fails at once.
#[test]
fn unanswered_handshakes_fail_the_first_connect_within_one_window_then_fast() {
    skip_unless_ready!();
    let t = OnePeer::new("b");
    // Nothing answers on this port: no handshake can complete.
    let dead = format!("{}:9", t.peer.underlay);
    let conf = t.conf(
        "wg0.conf",
        Conf {
            endpoint: Endpoint::At(&dead),
            ..Conf::V4
        },
    );
    let script = r#"
import errno, socket, time
for i in range(2):
    t = time.time()
    s = socket.socket()
    try:
        s.connect(("10.77.0.1", 8080)); print("FAIL connected")
    except OSError as e:
        print("ERRNO%d" % i, errno.errorcode.get(e.errno), "after %.1f s" % (time.time() - t))
    s.close()
"#;
    let out = wg::wrapguard_limit(&t.client, &conf, &[], &[&python(), "-c", script], 150);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout
        .lines()
        .find(|l| l.starts_with("ERRNO0 EHOSTUNREACH"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|s| s.parse::<f64>().ok());
    assert!(
        first.is_some_and(|s| s < 60.0),
        "the first connect fails well before the 90 s give-up: {}",
        show(&out)
    );
    let fast = stdout
        .lines()
        .find(|l| l.starts_with("ERRNO1 EHOSTUNREACH"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|s| s.parse::<f64>().ok());
    assert!(
        fast.is_some_and(|s| s < 1.0),
        "second connect fails fast: {}",
        show(&out)
    );
}
