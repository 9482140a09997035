//! wrapguard against a WireGuard implementation we did not write:
//! wireguard-go with its TUN in a namespace of its own, wrapguard in a
//! client namespace whose only links are the underlay veths (no default
//! route). Real programs (curl, python3, node, iperf3) are the wrapped
//! applications; assertions check content *and* where traffic went (the
//! peer's server logs). Needs root, wireguard-go, wireguard-tools; prints
//! `SKIPPED:` and passes otherwise.

mod common;
#[macro_use]
mod wg;

use std::path::PathBuf;
use wg::{show, token, wrapguard, Netns, PeerSetup, TempDir, WgPeer, BULK_CLIENT, BULK_SERVER};

/// Our tunnel addresses.
const OUR_V4: &str = "10.77.0.2";

/// One wireguard-go peer (index 1: 10.77.0.1, fd77::1) and our config.
struct One {
    peer: WgPeer,
    client: Netns,
    conf: PathBuf,
    tmp: TempDir,
}

fn one_peer(our_conf_extra: &str, peer_extra: &str) -> One {
    let tmp = TempDir::new();
    let client = Netns::new("b");
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
            "[Interface]\nPrivateKey = {}\nAddress = 10.77.0.2/24, fd77::2/64\n{our_conf_extra}\n\
             [Peer]\nPublicKey = {}\nEndpoint = {}\nAllowedIPs = 10.77.0.0/24, fd77::/64\n{peer_extra}\n",
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

/// A web root holding `index.html` with `tok`.
fn webroot(tmp: &TempDir, name: &str, tok: &str) -> PathBuf {
    let d = tmp.join(name);
    std::fs::create_dir_all(&d).expect("webroot");
    std::fs::write(d.join("index.html"), tok).expect("index.html");
    d
}

fn log_of(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[test]
fn curl_fetches_token_and_server_sees_tunnel_address() {
    skip_unless_ready!();
    let t = one_peer("", "");
    let tok = token("curl");
    let root = webroot(&t.tmp, "www", &tok);
    let log = t.tmp.join("http.log");
    let _srv = t.peer.http_server(&root, "0.0.0.0", &log);
    let out = wrapguard(
        &t.client,
        &t.conf,
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
    let l = log_of(&log);
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
    let t = one_peer("", "");
    let tok = token("v6");
    let root = webroot(&t.tmp, "www", &tok);
    let log = t.tmp.join("http.log");
    let _srv = t.peer.http_server(&root, "::", &log);
    let out = wrapguard(
        &t.client,
        &t.conf,
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
    let l = log_of(&log);
    assert!(l.contains("fd77::2 - - "), "server log: {l}");
}

#[test]
fn node_http_client_gets_token() {
    skip_unless_ready!();
    if !wg::on_path("node") {
        eprintln!("SKIPPED: node not installed");
        return;
    }
    let t = one_peer("", "");
    let tok = token("node");
    let root = webroot(&t.tmp, "www", &tok);
    let log = t.tmp.join("http.log");
    let _srv = t.peer.http_server(&root, "0.0.0.0", &log);
    let js = "require('http').get('http://10.77.0.1:8080/', r => { let d = ''; \
              r.on('data', c => d += c); r.on('end', () => console.log('GOT ' + d)); })\
              .on('error', e => { console.error(e); process.exit(3); });";
    let out = wrapguard(&t.client, &t.conf, &[], &["node", "-e", js]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("GOT {tok}")),
        "{}",
        show(&out)
    );
    assert!(log_of(&log).contains(&format!("{OUR_V4} - - ")));
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
    let t = one_peer("", "");
    let tok = token("py");
    let root = webroot(&t.tmp, "www", &tok);
    let log = t.tmp.join("http.log");
    let _srv = t.peer.http_server(&root, "0.0.0.0", &log);
    let script = format!("TOKEN = {tok:?}\n{SOCKET_SEMANTICS}");
    let py = common::bins().python.display().to_string();
    let out = wrapguard(&t.client, &t.conf, &[], &[&py, "-c", &script]);
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
    let tmp = TempDir::new();
    let client = Netns::new("b");
    let ours = wg::keys();
    let peer = WgPeer::new(
        &client,
        &tmp,
        PeerSetup {
            index: 1,
            our_public: &ours.public,
            our_allowed: "10.77.0.2/32,fd77::2/128",
            our_endpoint: Some("192.168.77.2:51900"),
            extra_addrs: &[],
            extra_peer_args: &[],
        },
    );
    let conf = tmp.write(
        "wg0.conf",
        &format!(
            "[Interface]\nPrivateKey = {}\nAddress = 10.77.0.2/24\nListenPort = 51900\n\
             [Peer]\nPublicKey = {}\nAllowedIPs = 10.77.0.0/24\n",
            ours.private, peer.keys.public
        ),
    );
    let tok = token("in");
    let root = webroot(&tmp, "www", &tok);
    let wg_bin = common::bins().wrapguard.display().to_string();
    let py = common::bins().python.display().to_string();
    let conf_s = conf.display().to_string();
    let root_s = root.display().to_string();
    let child_log = tmp.join("wrapped.log");
    let mut server = client.spawn(
        &[
            &wg_bin,
            "--config",
            &conf_s,
            "--",
            &py,
            "-u",
            "-m",
            "http.server",
            "8080",
            "--bind",
            "0.0.0.0",
            "--directory",
            &root_s,
        ],
        &child_log,
    );
    // Retry until the wrapped server listens in the tunnel (RST before that).
    let out = peer.ns.run(&[
        "curl",
        "-sS",
        "--max-time",
        "5",
        "--retry",
        "40",
        "--retry-delay",
        "0",
        "--retry-all-errors",
        "--retry-max-time",
        "30",
        "http://10.77.0.2:8080/",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(200));
    server.terminate();
    let l = log_of(&child_log);
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
    let t = one_peer("", "");
    let n = (100 * 1024 * 1024).to_string();
    let srv_py = t.tmp.write("bulk_server.py", BULK_SERVER);
    let cli_py = t.tmp.write("bulk_client.py", BULK_CLIENT);
    let log = t.tmp.join("bulk.log");
    let py = common::bins().python.display().to_string();
    let _srv = t
        .peer
        .ns
        .spawn(&[&py, &srv_py.display().to_string(), &n], &log);
    t.peer.ns.wait_tcp_listen(9002);
    let started = std::time::Instant::now();
    let out = wrapguard(
        &t.client,
        &t.conf,
        &[],
        &[&py, &cli_py.display().to_string(), &n],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("PASS"),
        "{}\n{}",
        show(&out),
        log_of(&log)
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
    let t = one_peer("", "");
    let log = t.tmp.join("iperf.log");
    let _srv = t.peer.ns.spawn(&["iperf3", "-s", "-B", "10.77.0.1"], &log);
    t.peer.ns.wait_tcp_listen(5201);
    for (label, extra) in [("upload", None), ("download (-R)", Some("-R"))] {
        let mut argv = vec!["iperf3", "-c", "10.77.0.1", "-t", "3"];
        argv.extend(extra);
        let out = wrapguard(&t.client, &t.conf, &[], &argv);
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && s.contains("receiver"),
            "{}\n{}",
            show(&out),
            log_of(&log)
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
    let _s1 = p1.http_server(&webroot(&tmp, "www1", &tok1), "0.0.0.0", &log1);
    let _s2 = p2.http_server(&webroot(&tmp, "www2", &tok2), "0.0.0.0", &log2);
    // Peer 2 carries 10.99.0.0/24 by a `Route =` line (a policy route: its
    // AllowedIPs stay 10.78.0.0/24).
    let conf = tmp.write(
        "wg0.conf",
        &format!(
            "[Interface]\nPrivateKey = {}\nAddress = 10.77.0.2/24\n\
             [Peer]\nPublicKey = {}\nEndpoint = {}\nAllowedIPs = 10.77.0.0/24\n\
             [Peer]\nPublicKey = {}\nEndpoint = {}\nAllowedIPs = 10.78.0.0/24\nRoute = 10.99.0.0/24\n",
            ours.private,
            p1.keys.public,
            p1.endpoint(),
            p2.keys.public,
            p2.endpoint()
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
    let count = |p: &std::path::Path| log_of(p).matches("10.77.0.2 - - ").count();
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

/// One peer set up with extra `wg set` arguments, and our config text.
fn one_peer_with(tmp: &TempDir, client: &Netns, ours: &wg::Keys, peer_args: &[&str]) -> WgPeer {
    WgPeer::new(
        client,
        tmp,
        PeerSetup {
            index: 1,
            our_public: &ours.public,
            our_allowed: "10.77.0.2/32,fd77::2/128",
            our_endpoint: None,
            extra_addrs: &[],
            extra_peer_args: peer_args,
        },
    )
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
    let tmp = TempDir::new();
    let client = Netns::new("b");
    let ours = wg::keys();
    let psk = wg::sh(&["wg", "genpsk"]).trim().to_string();
    let psk_file = tmp.write("psk", &psk);
    let psk_s = psk_file.display().to_string();
    let peer = one_peer_with(&tmp, &client, &ours, &["preshared-key", &psk_s]);
    let conf_for = |psk: &str, name: &str| {
        tmp.write(
            name,
            &format!(
                "[Interface]\nPrivateKey = {}\nAddress = 10.77.0.2/24\n\
                 [Peer]\nPublicKey = {}\nPresharedKey = {psk}\nEndpoint = {}\n\
                 AllowedIPs = 10.77.0.0/24\nPersistentKeepalive = 1\n",
                ours.private,
                peer.keys.public,
                peer.endpoint()
            ),
        )
    };
    // Keepalive: a session and traffic with no application traffic at all.
    let good = conf_for(&psk, "good.conf");
    let out = wrapguard(&client, &good, &[], &["sleep", "2.5"]);
    assert!(out.status.success(), "{}", show(&out));
    let hs = first_number_after_key(&peer.wg_show("latest-handshakes"));
    assert!(hs > 0, "keepalive should have made a handshake");
    let rx = first_number_after_key(&peer.wg_show("transfer"));
    // Handshake (148) + at least two keepalives (32 each).
    assert!(rx >= 148 + 64, "peer received {rx} bytes");
    // PSK in use: a fetch works with the right key…
    let tok = token("psk");
    let root = webroot(&tmp, "www", &tok);
    let _srv = peer.http_server(&root, "0.0.0.0", &tmp.join("http.log"));
    let url = "http://10.77.0.1:8080/";
    let out = wrapguard(
        &client,
        &good,
        &[],
        &["curl", "-sS", "--max-time", "15", url],
    );
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), tok);
    // …and fails with a wrong one (the handshake never completes).
    let other = wg::sh(&["wg", "genpsk"]).trim().to_string();
    let bad = conf_for(&other, "bad.conf");
    let out = wrapguard(&client, &bad, &[], &["curl", "-sS", "--max-time", "3", url]);
    assert!(
        !out.status.success(),
        "wrong PSK must not connect: {}",
        show(&out)
    );
}

#[test]
fn endpoint_roams_to_latest_authenticated_source() {
    skip_unless_ready!();
    let tmp = TempDir::new();
    let client = Netns::new("b");
    let ours = wg::keys();
    let peer = one_peer_with(&tmp, &client, &ours, &[]);
    // We start the handshake (keepalive), so the peer learns our endpoint.
    let conf = tmp.write(
        "wg0.conf",
        &format!(
            "[Interface]\nPrivateKey = {}\nAddress = 10.77.0.2/24\n\
             [Peer]\nPublicKey = {}\nEndpoint = {}\nAllowedIPs = 10.77.0.0/24\nPersistentKeepalive = 1\n",
            ours.private,
            peer.keys.public,
            peer.endpoint()
        ),
    );
    let tok = token("roam");
    let root = webroot(&tmp, "www", &tok).display().to_string();
    let b = common::bins();
    let (wg_bin, py, conf_s) = (
        b.wrapguard.display().to_string(),
        b.python.display().to_string(),
        conf.display().to_string(),
    );
    let log = tmp.join("wrapped.log");
    let mut server = client.spawn(
        &[
            &wg_bin,
            "--config",
            &conf_s,
            "--log-level=debug",
            "--",
            &py,
            "-u",
            "-m",
            "http.server",
            "8080",
            "--bind",
            "0.0.0.0",
            "--directory",
            &root,
        ],
        &log,
    );
    let curl = |what: &str| {
        let out = peer.ns.run(&[
            "curl",
            "-sS",
            "--max-time",
            "5",
            "--retry",
            "40",
            "--retry-delay",
            "0",
            "--retry-all-errors",
            "--retry-max-time",
            "20",
            "http://10.77.0.2:8080/",
        ]);
        assert!(
            out.status.success(),
            "{what}: {}\n{}",
            show(&out),
            log_of(&log)
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
    let l = log_of(&log);
    assert!(
        l.contains("peer endpoint updated") && l.contains("192.168.77.1:51999"),
        "roaming should be logged:\n{l}"
    );
}

#[test]
fn icmp_unreachable_from_the_peer_is_ehostunreach() {
    skip_unless_ready!();
    let tmp = TempDir::new();
    let client = Netns::new("b");
    let ours = wg::keys();
    let peer = one_peer_with(&tmp, &client, &ours, &[]);
    // The peer forwards, and has no way to 10.77.9.0/24: its kernel
    // answers with ICMP host unreachable through the tunnel.
    let out = peer
        .ns
        .run(&["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
    assert!(out.status.success(), "{}", show(&out));
    peer.ns.ip(&["route", "add", "unreachable", "10.77.9.0/24"]);
    let conf = tmp.write(
        "wg0.conf",
        &format!(
            "[Interface]\nPrivateKey = {}\nAddress = 10.77.0.2/24\n\
             [Peer]\nPublicKey = {}\nEndpoint = {}\nAllowedIPs = 10.77.0.0/16\n",
            ours.private,
            peer.keys.public,
            peer.endpoint()
        ),
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
    let py = common::bins().python.display().to_string();
    let out = wrapguard(&client, &conf, &[], &[&py, "-c", script]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ERRNO EHOSTUNREACH"), "{}", show(&out));
}

#[test]
fn inbound_source_outside_allowed_ips_is_dropped() {
    skip_unless_ready!();
    let tmp = TempDir::new();
    let client = Netns::new("b");
    let ours = wg::keys();
    let peer = one_peer_with(&tmp, &client, &ours, &[]);
    // A second address on the peer's side of the tunnel, which our config
    // does not allow that peer to send from.
    peer.ns
        .ip(&["addr", "add", "10.77.0.5/24", "dev", &peer.ifname]);
    let conf = tmp.write(
        "wg0.conf",
        &format!(
            "[Interface]\nPrivateKey = {}\nAddress = 10.77.0.2/24\n\
             [Peer]\nPublicKey = {}\nEndpoint = {}\nAllowedIPs = 10.77.0.1/32\nPersistentKeepalive = 1\n",
            ours.private,
            peer.keys.public,
            peer.endpoint()
        ),
    );
    let tok = token("src");
    let root = webroot(&tmp, "www", &tok).display().to_string();
    let b = common::bins();
    let (wg_bin, py, conf_s) = (
        b.wrapguard.display().to_string(),
        b.python.display().to_string(),
        conf.display().to_string(),
    );
    let log = tmp.join("wrapped.log");
    let mut server = client.spawn(
        &[
            &wg_bin,
            "--config",
            &conf_s,
            "--log-level=debug",
            "--",
            &py,
            "-u",
            "-m",
            "http.server",
            "8080",
            "--bind",
            "0.0.0.0",
            "--directory",
            &root,
        ],
        &log,
    );
    let allowed = peer.ns.run(&[
        "curl",
        "-sS",
        "--max-time",
        "5",
        "--retry",
        "40",
        "--retry-delay",
        "0",
        "--retry-all-errors",
        "--retry-max-time",
        "20",
        "http://10.77.0.2:8080/",
    ]);
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
    let l = log_of(&log);
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

const ECHO_SERVER: &str = r#"
import socket, threading
def echo(c):
    while True:
        d = c.recv(65536)
        if not d: break
        c.sendall(d)
    c.close()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7000)); s.listen(128)
while True:
    c, _ = s.accept(); threading.Thread(target=echo, args=(c,), daemon=True).start()
"#;

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
    let t = one_peer("", "");
    let py = common::bins().python.display().to_string();
    let srv = t.tmp.write("echo_server.py", ECHO_SERVER);
    let _srv = t
        .peer
        .ns
        .spawn(&[&py, &srv.display().to_string()], &t.tmp.join("echo.log"));
    t.peer.ns.wait_tcp_listen(7000);
    let out = wrapguard(&t.client, &t.conf, &[], &[&py, "-c", ECHO_CLIENTS]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("PASS"),
        "{}",
        show(&out)
    );
}

#[test]
fn ipv6_underlay_endpoint() {
    skip_unless_ready!();
    let tmp = TempDir::new();
    let client = Netns::new("b");
    let ours = wg::keys();
    let peer = one_peer_with(&tmp, &client, &ours, &[]);
    let conf = tmp.write(
        "wg0.conf",
        &format!(
            "[Interface]\nPrivateKey = {}\nAddress = 10.77.0.2/24\n\
             [Peer]\nPublicKey = {}\nEndpoint = {}\nAllowedIPs = 10.77.0.0/24\n",
            ours.private,
            peer.keys.public,
            peer.endpoint6()
        ),
    );
    let tok = token("u6");
    let root = webroot(&tmp, "www", &tok);
    let _srv = peer.http_server(&root, "0.0.0.0", &tmp.join("http.log"));
    let out = wrapguard(
        &client,
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
    let t = one_peer("", "");
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
    let py = common::bins().python.display().to_string();
    // Not in the peer's AllowedIPs: a --route sends it there.
    let out = wrapguard(
        &t.client,
        &t.conf,
        &["--route=10.77.8.0/24:10.77.0.1"],
        &[&py, "-c", script],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("TIMEOUT after 2."), "{}", show(&out));
}

#[test]
fn incoming_ipv6_and_ipv4_to_a_dual_stack_wrapped_server() {
    skip_unless_ready!();
    let tmp = TempDir::new();
    let client = Netns::new("b");
    let ours = wg::keys();
    let peer = one_peer_with(&tmp, &client, &ours, &[]);
    let conf = tmp.write(
        "wg0.conf",
        &format!(
            "[Interface]\nPrivateKey = {}\nAddress = 10.77.0.2/24, fd77::2/64\n\
             [Peer]\nPublicKey = {}\nEndpoint = {}\nAllowedIPs = 10.77.0.0/24, fd77::/64\n\
             PersistentKeepalive = 1\n",
            ours.private,
            peer.keys.public,
            peer.endpoint()
        ),
    );
    let tok = token("in6");
    let root = webroot(&tmp, "www", &tok).display().to_string();
    let b = common::bins();
    let (wg_bin, py, conf_s) = (
        b.wrapguard.display().to_string(),
        b.python.display().to_string(),
        conf.display().to_string(),
    );
    let log = tmp.join("wrapped.log");
    let mut server = client.spawn(
        &[
            &wg_bin,
            "--config",
            &conf_s,
            "--",
            &py,
            "-u",
            "-m",
            "http.server",
            "8080",
            "--bind",
            "::",
            "--directory",
            &root,
        ],
        &log,
    );
    let fetch = |url: &str| {
        peer.ns.run(&[
            "curl",
            "-sS",
            "-g",
            "--max-time",
            "5",
            "--retry",
            "40",
            "--retry-delay",
            "0",
            "--retry-all-errors",
            "--retry-max-time",
            "20",
            url,
        ])
    };
    let v6 = fetch("http://[fd77::2]:8080/");
    let v4 = fetch("http://10.77.0.2:8080/");
    std::thread::sleep(std::time::Duration::from_millis(200));
    server.terminate();
    let l = log_of(&log);
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
    let tmp = TempDir::new();
    let client = Netns::new("b");
    let ours = wg::keys();
    let peer = one_peer_with(&tmp, &client, &ours, &[]);
    // Nothing answers on this port: no handshake can complete.
    let conf = tmp.write(
        "wg0.conf",
        &format!(
            "[Interface]\nPrivateKey = {}\nAddress = 10.77.0.2/24\n\
             [Peer]\nPublicKey = {}\nEndpoint = {}:9\nAllowedIPs = 10.77.0.0/24\n",
            ours.private, peer.keys.public, peer.underlay
        ),
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
    let py = common::bins().python.display().to_string();
    let b = common::bins();
    let (wg_bin, conf_s) = (
        b.wrapguard.display().to_string(),
        conf.display().to_string(),
    );
    let out = client.run(&[
        "timeout", "150", &wg_bin, "--config", &conf_s, "--", &py, "-c", script,
    ]);
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
