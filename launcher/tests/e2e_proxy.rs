//! The proxy and port-forward front-ends (`--socks5`, `--http-proxy`,
//! `--forward`, `--reverse`) against wireguard-go in namespaces, under the
//! leak guard: real clients (curl, iperf3, python) in the client namespace
//! talk to wrapguard on loopback, and every target is a tunnel address in
//! the peer's namespace or loopback. Needs root, wireguard-go,
//! wireguard-tools; prints `SKIPPED:` and passes otherwise.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use wrapguard_testnet::{
    on_path, python, read, show, skip_unless_ready, spawn_wrapguard, token, wait_log, wait_until,
    wrapguard, Bg, Conf, Configured, OnePeer, UDP_PING_CLIENT,
};

/// wrapguard in the client namespace with front-ends and no program.
fn serve(t: &Configured, flags: &[&str], name: &str) -> (Bg, PathBuf) {
    let log = t.tmp.join(&format!("{name}.log"));
    let mut f = vec!["--log-level=debug"];
    f.extend_from_slice(flags);
    let bg = spawn_wrapguard(&t.client, &t.conf, &f, &[], &log, 300);
    wait_log(&log, "Serving until interrupted", 30);
    (bg, log)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn sha256(p: &Path) -> String {
    wrapguard_testnet::sha256_file(p)
}

/// A web root on the peer with `index.html` = `tok` and a `blob` of `mib`
/// MiB, served on 8080; returns the server, its access log, blob sha256.
fn web(t: &OnePeer, tok: &str, mib: usize) -> (Bg, PathBuf, String) {
    let root = t.tmp.webroot("www-proxy", tok);
    let blob = root.join("blob");
    let st = std::process::Command::new("head")
        .args(["-c", &format!("{}", mib << 20), "/dev/urandom"])
        .stdout(std::fs::File::create(&blob).expect("blob"))
        .status()
        .expect("head");
    assert!(st.success());
    let sum = sha256(&blob);
    let log = t.tmp.join("http-proxy-web.log");
    let srv = t.peer.http_server_on(8080, &root, "0.0.0.0", &log);
    (srv, log, sum)
}

/// dnsmasq on the peer's tunnel address answering `web.tunnel.test`.
fn dns(t: &OnePeer) -> Bg {
    let bg = t.peer.ns.spawn(
        &[
            "dnsmasq",
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--user=root",
            "--pid-file",
            "--bind-interfaces",
            "--listen-address=10.77.0.1",
            "--port=53",
            "--host-record=web.tunnel.test,10.77.0.1",
            "--local=/tunnel.test/",
            "--log-queries",
            "--log-facility=-",
        ],
        &t.tmp.join("dnsmasq.log"),
    );
    let ns = &t.peer.ns;
    wait_until(20, "dnsmasq", || {
        let out = ns.run(&["ss", "-Hlun", "sport = :53"]);
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    });
    bg
}

fn curl(t: &OnePeer, args: &[&str]) -> Output {
    let mut v = vec!["curl", "-sS", "--max-time", "120"];
    v.extend_from_slice(args);
    t.client.run(&v)
}

#[test]
fn socks5_and_http_proxies_carry_downloads_by_name_and_refuse_other_destinations() {
    skip_unless_ready!();
    if !on_path("dnsmasq") {
        return println!("SKIPPED: dnsmasq not installed");
    }
    let t = OnePeer::new("px1").configured(Conf {
        interface: "DNS = 10.77.0.1",
        ..Conf::V4
    });
    let _dns = dns(&t);
    let tok = token("px1");
    let (_srv, access, sum) = web(&t, &tok, 64);
    let (_wg, log) = serve(
        &t,
        &[
            "--socks5",
            "127.0.0.1:1080",
            "--http-proxy",
            "127.0.0.1:3128",
        ],
        "px1",
    );

    // SOCKS5 with the name resolved through the tunnel (socks5h).
    let out_s = t.tmp.join("socks.bin");
    let o = curl(
        &t,
        &[
            "--socks5-hostname",
            "127.0.0.1:1080",
            "-o",
            &out_s.display().to_string(),
            "-w",
            "%{speed_download}",
            "http://web.tunnel.test:8080/blob",
        ],
    );
    assert!(o.status.success(), "{}\n{}", show(&o), read(&log));
    assert_eq!(sha256(&out_s), sum, "socks5 download corrupted");
    // The engine carried curl's own connection (handed over: one copy).
    wait_log(&log, "socks5: tunnel flow of 127.0.0.1", 10);
    wait_log(&log, "(handed over) done", 10);
    let socks_speed: f64 = stdout(&o).trim().parse().unwrap_or(0.0);
    // The same download by a wrapped curl on the same (shared) tunnel.
    let out_w = t.tmp.join("wrapped.bin");
    let o = wrapguard(
        &t.client,
        &t.conf,
        &[],
        &[
            "curl",
            "-sS",
            "-o",
            &out_w.display().to_string(),
            "-w",
            "%{speed_download}",
            "http://10.77.0.1:8080/blob",
        ],
    );
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(sha256(&out_w), sum, "wrapped download corrupted");
    let wrapped_speed: f64 = stdout(&o).trim().parse().unwrap_or(0.0);
    println!(
        "64 MiB download: SOCKS5 {:.1} Mbit/s, wrapped curl {:.1} Mbit/s (same tunnel)",
        socks_speed * 8.0 / 1e6,
        wrapped_speed * 8.0 / 1e6
    );
    let o = curl(
        &t,
        &[
            "--socks5-hostname",
            "127.0.0.1:1080",
            "http://web.tunnel.test:8080/",
        ],
    );
    assert_eq!(stdout(&o).trim(), tok, "{}", show(&o));

    // HTTP: an absolute-URI request, and CONNECT.
    let out_h = t.tmp.join("http.bin");
    let o = curl(
        &t,
        &[
            "-x",
            "http://127.0.0.1:3128",
            "-o",
            &out_h.display().to_string(),
            "http://web.tunnel.test:8080/blob",
        ],
    );
    assert!(o.status.success(), "{}\n{}", show(&o), read(&log));
    assert_eq!(sha256(&out_h), sum, "http proxy download corrupted");
    // An absolute-URI request is rewritten, so the proxy relays it itself.
    wait_until(10, "the http proxy's relayed flow", || {
        read(&log)
            .lines()
            .any(|l| l.contains("http proxy: tunnel flow of") && !l.contains("handed over"))
    });
    let o = curl(
        &t,
        &["-x", "http://127.0.0.1:3128", "http://10.77.0.1:8080/"],
    );
    assert_eq!(stdout(&o).trim(), tok, "{}", show(&o));
    let o = curl(
        &t,
        &[
            "-p",
            "-x",
            "http://127.0.0.1:3128",
            "http://10.77.0.1:8080/",
        ],
    );
    assert_eq!(stdout(&o).trim(), tok, "CONNECT: {}", show(&o));
    wait_until(10, "the CONNECT flow handed over", || {
        read(&log)
            .lines()
            .any(|l| l.contains("http proxy: tunnel flow of") && l.contains("handed over"))
    });

    // The server saw our tunnel address, six times.
    let a = read(&access);
    assert_eq!(a.matches("10.77.0.2").count(), 6, "access log: {a}");

    // Destinations not routed into the tunnel are refused: SOCKS reply
    // 0x02, HTTP 403 (loopback here: nothing leaves the namespace).
    let o = curl(
        &t,
        &["--socks5", "127.0.0.1:1080", "http://127.0.0.1:3128/"],
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("(2)"),
        "{}",
        show(&o)
    );
    let o = curl(
        &t,
        &[
            "-x",
            "http://127.0.0.1:3128",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://127.0.0.1:1080/",
        ],
    );
    assert_eq!(stdout(&o), "403", "{}", show(&o));
    // A malformed request gets 400 and does not disturb the proxy.
    let o = t.client.run(&[
        &python(), "-c",
        "import socket; s=socket.create_connection(('127.0.0.1',3128)); s.sendall(b'GET /x HTTP/1.1\\r\\n\\r\\n'); print(s.recv(100).decode().split()[1])",
    ]);
    assert_eq!(stdout(&o).trim(), "400", "{}", show(&o));

    // Flow lines, as for wrapped programs.
    let l = read(&log);
    assert!(
        l.contains("\"message\":\"flow opened\"") && l.contains("10.77.0.1:8080"),
        "{l}"
    );
    assert!(l.contains("destination not routed into the tunnel"), "{l}");
    assert_eq!(t.client.leak_guard().finish(), Ok(()));
}

#[test]
fn proxy_credentials_are_required_when_given_and_checked_for_mode() {
    skip_unless_ready!();
    let t = OnePeer::new("px2").configured(Conf::DUAL);
    let tok = token("px2");
    let (_srv, page_log) = t.serve_page(&tok, "::");
    let auth = t.tmp.write("proxy-auth", "# proxy users\nalice:s3cret\n");
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    // World-readable: refused before anything starts.
    // (Both refusals come before any engine starts; run in the namespace
    // anyway.)
    let bin = wrapguard_testnet::Wrapguard::under_test()
        .bin
        .display()
        .to_string();
    let conf = t.conf.display().to_string();
    let a = auth.display().to_string();
    let o = t.client.run(&[
        &bin,
        "--config",
        &conf,
        "--socks5",
        "127.0.0.1:1080",
        "--proxy-auth",
        &a,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("chmod 600"),
        "{}",
        show(&o)
    );
    // Without credentials, a non-loopback listener is refused.
    let o = t
        .client
        .run(&[&bin, "--config", &conf, "--socks5", "0.0.0.0:1080"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--proxy-open"),
        "{}",
        show(&o)
    );

    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (_wg, log) = serve(
        &t,
        &[
            "--socks5",
            "127.0.0.1:1080",
            "--socks5",
            "[::1]:1080",
            "--http-proxy",
            "127.0.0.1:3128",
            "--proxy-auth",
            &a,
        ],
        "px2",
    );
    let url = "http://10.77.0.1:8080/";
    let o = curl(
        &t,
        &[
            "--socks5",
            "127.0.0.1:1080",
            "--proxy-user",
            "alice:s3cret",
            url,
        ],
    );
    assert_eq!(stdout(&o).trim(), tok, "{}\n{}", show(&o), read(&log));
    // IPv6 destinations, through an IPv6 listener.
    let o = curl(
        &t,
        &[
            "--socks5",
            "[::1]:1080",
            "--proxy-user",
            "alice:s3cret",
            "http://[fd77::1]:8080/",
        ],
    );
    assert_eq!(stdout(&o).trim(), tok, "{}\n{}", show(&o), read(&log));
    assert!(read(&page_log).contains("fd77::2"), "{}", read(&page_log));
    let o = curl(
        &t,
        &[
            "--socks5",
            "127.0.0.1:1080",
            "--proxy-user",
            "alice:wrong",
            url,
        ],
    );
    assert!(!o.status.success() && stdout(&o).is_empty(), "{}", show(&o));
    let o = curl(&t, &["--socks5", "127.0.0.1:1080", url]);
    assert!(!o.status.success() && stdout(&o).is_empty(), "{}", show(&o));
    let o = curl(&t, &["-x", "http://alice:s3cret@127.0.0.1:3128", url]);
    assert_eq!(stdout(&o).trim(), tok, "{}", show(&o));
    let o = curl(
        &t,
        &[
            "-x",
            "http://127.0.0.1:3128",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            url,
        ],
    );
    assert_eq!(stdout(&o), "407", "{}", show(&o));
    let o = curl(
        &t,
        &[
            "-x",
            "http://alice:nope@127.0.0.1:3128",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            url,
        ],
    );
    assert_eq!(stdout(&o), "407", "{}", show(&o));
    let l = read(&log);
    assert!(l.contains("wrong user or password"), "{l}");
    assert!(!l.contains("s3cret"), "a password reached the log: {l}");

    // The same from the config's [WrapGuard] section (a second instance on
    // the same tunnel; ProxyAuth relative to the config's directory).
    let base = t.conf_text(Conf::DUAL);
    let conf2 = t.tmp.write(
        "wg0-front.conf",
        &format!("{base}\n[WrapGuard]\nSocks5 = 127.0.0.1:1081\nProxyAuth = proxy-auth\n"),
    );
    let log2 = t.tmp.join("px2-conf.log");
    let _wg2 = spawn_wrapguard(&t.client, &conf2, &["--log-level=debug"], &[], &log2, 300);
    wait_log(&log2, "Serving until interrupted", 30);
    let o = curl(
        &t,
        &[
            "--socks5",
            "127.0.0.1:1081",
            "--proxy-user",
            "alice:s3cret",
            url,
        ],
    );
    assert_eq!(stdout(&o).trim(), tok, "{}\n{}", show(&o), read(&log2));
    let o = curl(&t, &["--socks5", "127.0.0.1:1081", url]);
    assert!(!o.status.success(), "{}", show(&o));
    // A wrong line is reported with file:line before anything starts.
    let lines = base.lines().count();
    let bad = t.tmp.write(
        "wg0-bad.conf",
        &format!("{base}\n[WrapGuard]\nForward = tcp:127.0.0.1:1:nowhere\n"),
    );
    let o = t
        .client
        .run(&[&bin, "--config", &bad.display().to_string()]);
    let err = String::from_utf8_lossy(&o.stderr);
    let want = format!("wg0-bad.conf:{}: Forward", lines + 3);
    assert!(
        o.status.code() == Some(1) && err.contains(&want),
        "want {want}: {}",
        show(&o)
    );
    assert_eq!(t.client.leak_guard().finish(), Ok(()));
}

/// Peer side: a UDP echo on 7007 that answers `<source ip> <payload>`.
const UDP_ECHO: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 7007))
while True:
    d, a = s.recvfrom(65535)
    s.sendto(a[0].encode() + b" " + d, a)
"#;

/// Client side: a SOCKS5 UDP ASSOCIATE through 127.0.0.1:1080 to
/// 10.77.0.1:7007, then a plain datagram to the UDP forward on 17007;
/// prints what came back.
const UDP_CLIENT: &str = r#"
import socket, struct, sys
tok = sys.argv[1].encode()
c = socket.create_connection(("127.0.0.1", 1080), timeout=10)
c.sendall(b"\x05\x01\x00"); assert c.recv(2) == b"\x05\x00"
c.sendall(b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00")
r = c.recv(10); assert r[1] == 0, r
relay = (socket.inet_ntoa(r[4:8]), struct.unpack(">H", r[8:10])[0])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(1)
head = b"\x00\x00\x00\x01" + socket.inet_aton("10.77.0.1") + struct.pack(">H", 7007)
for _ in range(20):
    u.sendto(head + tok, relay)
    try:
        d, _ = u.recvfrom(65535); break
    except socket.timeout:
        pass
assert d[:10] == head, d
print("SOCKS", d[10:].decode(), flush=True)
f = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); f.settimeout(1)
for _ in range(20):
    f.sendto(tok, ("127.0.0.1", 17007))
    try:
        d, _ = f.recvfrom(65535); break
    except socket.timeout:
        pass
print("FORWARD", d.decode(), flush=True)
"#;

#[test]
fn socks5_udp_associate_and_udp_forwards_both_ways_reach_udp_echoes() {
    skip_unless_ready!();
    let t = OnePeer::new("px3").configured(Conf::V4);
    let echo = t.tmp.write("udp-echo.py", UDP_ECHO);
    let _echo = t.peer.ns.spawn(
        &[&python(), "-u", &echo.display().to_string()],
        &t.tmp.join("echo.log"),
    );
    let ns = &t.peer.ns;
    wait_until(20, "udp echo", || {
        let out = ns.run(&["ss", "-Hlun", "sport = :7007"]);
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    });
    // A local UDP echo in our namespace for the reverse forward.
    let local_echo = t.tmp.write(
        "local-echo.py",
        &UDP_ECHO.replace("(\"0.0.0.0\", 7007)", "(\"127.0.0.1\", 17008)"),
    );
    let _local = t.client.spawn(
        &[&python(), "-u", &local_echo.display().to_string()],
        &t.tmp.join("local-echo.log"),
    );
    let (_wg, log) = serve(
        &t,
        &[
            "--socks5",
            "127.0.0.1:1080",
            "--forward",
            "udp:127.0.0.1:17007:10.77.0.1:7007",
            "--reverse",
            "udp:7008:127.0.0.1:17008",
        ],
        "px3",
    );
    let tok = token("px3");
    let client = t.tmp.write("udp-client.py", UDP_CLIENT);
    let o = t.client.run(&[
        "timeout",
        "60",
        &python(),
        &client.display().to_string(),
        &tok,
    ]);
    let so = stdout(&o);
    assert!(o.status.success(), "{}\n{}", show(&o), read(&log));
    // The echo saw our tunnel address both times.
    assert!(so.contains(&format!("SOCKS 10.77.0.2 {tok}")), "{so}");
    assert!(so.contains(&format!("FORWARD 10.77.0.2 {tok}")), "{so}");
    // The peer (which knows our endpoint now) reaches the local echo at
    // our tunnel address, port 7008; the local service sees loopback.
    let msg = token("px3r");
    let o = t
        .peer
        .ns
        .run(&[&python(), "-c", UDP_PING_CLIENT, "10.77.0.2", "7008", &msg]);
    assert!(
        stdout(&o).contains(&format!("GOT 10.77.0.2 127.0.0.1 {msg}")),
        "{}\n{}",
        show(&o),
        read(&log)
    );
    assert_eq!(t.client.leak_guard().finish(), Ok(()));
}

#[test]
fn a_forward_carries_iperf3_and_a_reverse_forward_is_reached_from_the_peer() {
    skip_unless_ready!();
    if !on_path("iperf3") {
        return println!("SKIPPED: iperf3 not installed");
    }
    let t = OnePeer::new("px4").configured(Conf::V4);
    let _iperf = t
        .peer
        .ns
        .spawn(&["iperf3", "-s", "-1"], &t.tmp.join("iperf3-server.log"));
    t.peer.ns.wait_tcp_listen(5201);
    // The local service of the reverse forward, on loopback in our namespace.
    let tok = token("px4");
    let root = t.tmp.webroot("www-local", &tok);
    let local_log = t.tmp.join("local-http.log");
    let _local = t.client.spawn(
        &[
            &python(),
            "-m",
            "http.server",
            "18088",
            "--bind",
            "127.0.0.1",
            "--directory",
            &root.display().to_string(),
        ],
        &local_log,
    );
    t.client.wait_tcp_listen(18088);
    let (_wg, log) = serve(
        &t,
        &[
            "--forward",
            "tcp:127.0.0.1:15201:10.77.0.1:5201",
            "--reverse",
            "tcp:8088:127.0.0.1:18088",
        ],
        "px4",
    );
    let o = t.client.run(&[
        "timeout",
        "60",
        "iperf3",
        "-c",
        "127.0.0.1",
        "-p",
        "15201",
        "-t",
        "3",
        "-J",
    ]);
    let so = stdout(&o);
    assert!(
        o.status.success() && so.contains("\"sum_received\""),
        "{}\n{}",
        show(&o),
        read(&log)
    );
    let bps: f64 = so
        .split("\"sum_received\"")
        .nth(1)
        .and_then(|s| s.split("\"bits_per_second\":").nth(1))
        .and_then(|s| s.split([',', '\n', '}']).next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0.0);
    println!("iperf3 through --forward: {:.1} Mbit/s", bps / 1e6);
    assert!(bps > 1e6, "{so}");
    // The peer reaches our tunnel address at 8088 (it knows our endpoint
    // from the iperf3 traffic).
    let o = t
        .peer
        .ns
        .run(&["curl", "-sS", "--max-time", "30", "http://10.77.0.2:8088/"]);
    assert_eq!(stdout(&o).trim(), tok, "{}\n{}", show(&o), read(&log));
    let l = read(&log);
    assert!(
        l.contains("reverse: connection from the tunnel") && l.contains("\"peer\":\"10.77.0.1:"),
        "{l}"
    );
    // The local service saw a loopback client.
    assert!(
        read(&local_log).contains("127.0.0.1 - -"),
        "{}",
        read(&local_log)
    );
    assert_eq!(t.client.leak_guard().finish(), Ok(()));
}

#[test]
fn headless_chromium_fetches_a_page_by_name_through_the_socks5_proxy() {
    skip_unless_ready!();
    if !on_path("chromium") || !on_path("dnsmasq") {
        return println!("SKIPPED: chromium or dnsmasq not installed");
    }
    let t = OnePeer::new("px5").configured(Conf {
        interface: "DNS = 10.77.0.1",
        ..Conf::V4
    });
    let _dns = dns(&t);
    let tok = token("px5");
    let (_srv, access, _) = web(&t, &tok, 1);
    let (_wg, log) = serve(&t, &["--socks5", "127.0.0.1:1080"], "px5");
    let profile = t.tmp.join("chromium-profile");
    let o = t.client.run(&[
        "timeout",
        "120",
        "chromium",
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        &format!("--user-data-dir={}", profile.display()),
        "--proxy-server=socks5://127.0.0.1:1080",
        "--dump-dom",
        "http://web.tunnel.test:8080/",
    ]);
    assert!(stdout(&o).contains(&tok), "{}\n{}", show(&o), read(&log));
    assert!(read(&access).contains("10.77.0.2"), "{}", read(&access));
    assert_eq!(t.client.leak_guard().finish(), Ok(()));
}

/// The engine holds a SOCKS5 client's connection while it carries the
/// flow: taking the tunnel down under a download resets that connection,
/// so curl reports a reset and never a short transfer that ended cleanly.
#[test]
fn a_tunnel_taken_down_resets_a_socks5_client_mid_download() {
    skip_unless_ready!();
    let t = OnePeer::new("pxd").configured(Conf::V4);
    let tok = token("pxd");
    let (_srv, _access, _sum) = web(&t, &tok, 16);
    let (_wg, log) = serve(&t, &["--socks5", "127.0.0.1:1080"], "pxd");
    let out = t.tmp.join("cut.bin");
    let out_s = out.display().to_string();
    let mut transfer = t.client.spawn(
        &[
            "curl",
            "-sS",
            "--limit-rate",
            "1M",
            "--socks5",
            "127.0.0.1:1080",
            "-o",
            &out_s,
            "http://10.77.0.1:8080/blob",
        ],
        &t.tmp.join("cut-curl.log"),
    );
    wait_until(20, "the download to start", || {
        std::fs::metadata(&out)
            .map(|m| m.len() > 256 << 10)
            .unwrap_or(false)
    });
    let bin = wrapguard_testnet::Wrapguard::under_test()
        .bin
        .display()
        .to_string();
    let conf = t.conf.display().to_string();
    let down = t
        .client
        .run(&["timeout", "60", &bin, "down", "--config", &conf]);
    assert!(down.status.success(), "{}", show(&down));
    let st = transfer.child.wait().expect("curl exits");
    let cl = read(&t.tmp.join("cut-curl.log"));
    assert_eq!(
        st.code(),
        Some(56),
        "curl was not cut by a reset:\n{cl}\n{}",
        read(&log)
    );
    assert!(cl.contains("reset by peer"), "{cl}");
    let got = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    assert!(got < 16 << 20, "the whole file arrived ({got} bytes)");
    assert!(read(&log).contains("\"hand_over\":true"), "{}", read(&log));
}
