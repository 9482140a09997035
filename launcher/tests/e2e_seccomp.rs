//! Seccomp mode end to end against wireguard-go (peer in a namespace of
//! its own, wrapguard in a client namespace with no route but the
//! underlay): a statically linked C program (built here with
//! `gcc -static` from `fixtures/seccomp_tcp.c`, so the LD_PRELOAD shim
//! cannot enter it) fetches a unique token over the tunnel with blocking
//! and non-blocking connects, sees tunnel addresses in
//! getpeername/getsockname, gets ECONNREFUSED from a closed port, and
//! serves a peer that connects to its tunnel address (accept reports the
//! peer's tunnel address); curl forced into seccomp mode works too.
//! Needs root, wireguard-go, wireguard-tools and gcc with a static libc;
//! prints `SKIPPED:` and passes otherwise.

use std::path::Path;
use wrapguard_testnet::{
    read, show, skip_unless_ready, spawn_wrapguard, tcp_echo_server, token, wait_line, wrapguard,
    Conf, Configured, OnePeer,
};

/// One wireguard-go peer (10.77.0.1, fd77::1) that also knows our
/// endpoint (so it can reach a wrapped server first), and our dual-stack
/// config listening on a fixed port.
fn one_peer() -> Configured {
    OnePeer::listening("s", 51900).configured(Conf::DUAL)
}

/// Builds the static fixture into `dir`; `None` (and a SKIPPED line) if
/// gcc or a static libc is missing.
fn static_fixture(dir: &Path) -> Option<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seccomp_tcp.c");
    let bin = dir.join("seccomp_tcp");
    let built = std::process::Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(&bin)
        .arg(&src)
        .output();
    if !built.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: gcc -static failed (apt-get install gcc libc6-dev): {built:?}");
        println!("SKIPPED: gcc -static");
        return None;
    }
    let file = std::process::Command::new("file")
        .arg(&bin)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(
        file.is_empty() || file.contains("statically linked"),
        "fixture is not static: {file}"
    );
    Some(bin.display().to_string())
}

#[test]
fn static_client_fetches_token_in_seccomp_and_auto_mode() {
    skip_unless_ready!();
    let t = one_peer();
    let Some(bin) = static_fixture(&t.tmp.join("")) else {
        return;
    };
    let tok = token("static");
    let (_srv, log) = t.serve_page(&tok, "::");
    for (flags, args) in [
        (&["--mode=seccomp"][..], &["get", "10.77.0.1", "8080"][..]),
        (&[][..], &["get", "10.77.0.1", "8080", "nb"][..]),
        (&["--mode=auto"][..], &["get", "fd77::1", "8080", "nb"][..]),
        (&["--mode=seccomp"][..], &["get", "fd77::1", "8080"][..]),
    ] {
        let mut argv = vec![bin.as_str()];
        argv.extend_from_slice(args);
        let before = read(&log).lines().count();
        let out = wrapguard(&t.client, &t.conf, flags, &argv);
        let o = String::from_utf8_lossy(&out.stdout);
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{flags:?} {args:?}: {}", show(&out));
        assert!(o.contains(&format!("BODY {tok}")), "{}", show(&out));
        // The seccomp path, not a shim: auto picked seccomp for a static program.
        assert!(e.contains("\"Mode: seccomp"), "{}", show(&out));
        let (peer, ours) = if args[1].contains(':') {
            ("fd77::1", "fd77::2")
        } else {
            ("10.77.0.1", "10.77.0.2")
        };
        assert!(o.contains(&format!("PEER {peer} 8080")), "{}", show(&out));
        assert!(o.contains(&format!("LOCAL {ours} ")), "{}", show(&out));
        let fam = if peer.contains(':') { 10 } else { 2 };
        assert!(
            o.contains(&format!("DOMAIN {fam} TYPE 1")),
            "{}",
            show(&out)
        );
        // The server saw our tunnel address, for this very request.
        let l = read(&log);
        let new: Vec<&str> = l.lines().skip(before).collect();
        assert!(
            new.iter().any(|x| x.contains(&format!("{ours} - - "))),
            "server log: {l}"
        );
    }
}

#[test]
fn static_client_refused_port_gives_econnrefused() {
    skip_unless_ready!();
    let t = one_peer();
    let Some(bin) = static_fixture(&t.tmp.join("")) else {
        return;
    };
    let out = wrapguard(
        &t.client,
        &t.conf,
        &[],
        &[&bin, "refused", "10.77.0.1", "9"],
    );
    let o = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", show(&out));
    assert!(o.contains("REFUSED blocking"), "{}", show(&out));
    assert!(o.contains("REFUSED nonblocking"), "{}", show(&out));
}

#[test]
fn static_server_is_reachable_from_the_peer_with_its_tunnel_address() {
    skip_unless_ready!();
    let t = one_peer();
    let Some(bin) = static_fixture(&t.tmp.join("")) else {
        return;
    };
    let tok = token("srv");
    let child_log = t.tmp.join("wrapped.log");
    let mut server = spawn_wrapguard(
        &t.client,
        &t.conf,
        &["--log-level=debug"],
        &[&bin, "serve", "8090", &tok],
        &child_log,
        120,
    );
    // Retry until the wrapped server listens in the tunnel.
    let script = r#"
import socket, sys, time
deadline = time.time() + 40
while True:
    try:
        s = socket.create_connection(("10.77.0.2", 8090), timeout=5)
        data = b""
        while True:
            d = s.recv(200)
            if not d: break
            data += d
        print(data.decode()); sys.exit(0)
    except OSError as e:
        if time.time() > deadline:
            print("FAIL", e); sys.exit(1)
        time.sleep(0.2)
"#;
    let out = t.peer.ns.run(&["timeout", "55", "python3", "-c", script]);
    for _ in 0..100 {
        if read(&child_log).contains("Child exited") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server.terminate();
    let l = read(&child_log);
    assert!(out.status.success(), "{}\n--- wrapped\n{l}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), tok, "{l}");
    assert!(l.contains("LISTENING 0.0.0.0 8090"), "{l}");
    assert!(
        l.contains("ACCEPTED 10.77.0.1 "),
        "accept shows the peer's tunnel address:\n{l}"
    );
    assert!(l.contains("NAME 10.77.0.1 "), "getpeername too:\n{l}");
    assert!(l.contains("\"Mode: seccomp"), "{l}");
}

#[test]
fn dynamic_curl_forced_into_seccomp_mode_fetches_token() {
    skip_unless_ready!();
    let t = one_peer();
    let tok = token("curlsc");
    let (_srv, log) = t.serve_page(&tok, "0.0.0.0");
    let out = wrapguard(
        &t.client,
        &t.conf,
        &["--mode=seccomp"],
        &["curl", "-sS", "--max-time", "20", "http://10.77.0.1:8080/"],
    );
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        tok,
        "{}",
        show(&out)
    );
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("\"Mode: seccomp\""), "{}", show(&out));
    assert!(
        !e.contains("\"Shim: "),
        "the shim is not loaded: {}",
        show(&out)
    );
    assert!(read(&log).contains("10.77.0.2 - - "), "{}", read(&log));
}

#[test]
fn static_client_tcp_to_the_host_resolver_reaches_the_tunnel_dns_server() {
    skip_unless_ready!();
    let w = OnePeer::new("sd");
    let conf = w.conf(
        "wg0.conf",
        Conf {
            interface: "DNS = 10.77.0.1",
            ..Conf::DUAL
        },
    );
    let Some(bin) = static_fixture(&w.tmp.join("")) else {
        return;
    };
    // A "DNS server" that speaks HTTP on TCP port 53 of the peer: what
    // answers proves where the connection went.
    let tok = token("dns53");
    let root = w.tmp.webroot("www53", &tok);
    let log = w.tmp.join("http53.log");
    let _srv = w.peer.http_server_on(53, &root, "0.0.0.0", &log);
    // 127.0.0.53 is always one of the host's nameservers for the engine.
    let out = wrapguard(&w.client, &conf, &[], &[&bin, "get", "127.0.0.53", "53"]);
    let o = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", show(&out));
    assert!(o.contains(&format!("BODY {tok}")), "{}", show(&out));
    assert!(o.contains("PEER 10.77.0.1 53"), "{}", show(&out));
    assert!(read(&log).contains("10.77.0.2 - - "), "{}", read(&log));
}

/// Keepalive set by a static program after `connect()` reaches the tunnel
/// connection: `getsockopt` reads the values back, and once the peer
/// vanishes the idle connection ends after the probes (~5 s) instead of
/// waiting forever. (In seccomp mode the program's socket is the engine's
/// unix socket, so the end reads as EOF, not `ETIMEDOUT`: see README.)
#[test]
fn keepalive_set_by_a_static_program_ends_an_idle_connection_to_a_vanished_peer() {
    skip_unless_ready!();
    let mut t = one_peer();
    let Some(bin) = static_fixture(&t.tmp.join("")) else {
        return;
    };
    let _srv = tcp_echo_server(&t.peer, &t.tmp, 9100);
    let log = t.tmp.join("idle.log");
    let mut run = spawn_wrapguard(
        &t.client,
        &t.conf,
        &["--log-level=debug"],
        &[&bin, "idle", "10.77.0.1", "9100"],
        &log,
        200,
    );
    assert_eq!(wait_line(&log, &["READY"], 60), "READY", "{}", read(&log));
    assert_eq!(
        wait_line(&log, &["KEEPALIVE "], 1),
        "KEEPALIVE 1 2 1 3",
        "{}",
        read(&log)
    );
    t.peer.kill();
    let end = wait_line(&log, &["END "], 60);
    let _ = run.child.kill();
    let _ = run.child.wait();
    let all = read(&log);
    assert!(
        end == "END EOF" || end == "END ERR 110",
        "the idle connection should end once the keepalive probes go unanswered: {end:?}\n{all}"
    );
}
