//! Programs the shim cannot enter, carried in seccomp mode, against
//! wireguard-go (the `DNS =` world of `e2e_dns.rs`: dnsmasq and an HTTP
//! server with a unique token page behind the peer, a counting host
//! resolver in the client namespace). The programs are built at test time
//! (`fixtures/`): a statically linked Rust client (musl), a statically
//! linked C client (`gcc -static`), and a Go client and server
//! (`CGO_ENABLED=0`). Every test ends with the verdict of the client
//! namespace's leak guard (`testnet`: a capture on its interfaces, bait
//! routes toward the peer; shown to catch the unwrapped static client
//! first): nothing may leave outside the WireGuard flow. Needs root, wireguard-go, wireguard-tools and dnsmasq (and
//! the compilers); prints `SKIPPED:` with the reason and passes otherwise.

mod fixtures;

use std::path::Path;
use wrapguard_testnet::dnsworld::World;
use wrapguard_testnet::{
    dns_world_or_skip, on_path, read, show, spawn_wrapguard, token, wait_until, wrapguard,
    UDP_PING_CLIENT,
};

macro_rules! fixture_or_skip {
    ($f:expr) => {
        match $f {
            Ok(p) => p,
            Err(why) => {
                eprintln!("SKIPPED: {}: {why}", module_path!());
                println!("SKIPPED: {why}");
                return;
            }
        }
    };
}

/// Runs a client that resolves the tunnel-only name and fetches the token
/// page by that name, then checks content, where it went, and that
/// nothing leaked (to the host resolver or to the underlay).
fn fetch_by_name(w: &World, argv: &[&str]) -> String {
    let conf = w.conf(true);
    let out = wrapguard(&w.client, &conf, &["--log-level=debug"], argv);
    let so = String::from_utf8_lossy(&out.stdout).into_owned();
    let shown = show(&out);
    assert!(
        out.status.success(),
        "{shown}\n--- dnsmasq:\n{}\n--- host resolver: {:?}",
        read(&w.dnsmasq_log),
        w.host_queries()
    );
    assert!(
        so.lines()
            .any(|l| l == format!("RESOLVED {} 10.77.0.1", w.name)),
        "the tunnel-only name did not resolve to the far side's answer\n{shown}"
    );
    assert!(
        so.lines().any(|l| l == format!("BODY {}", w.tok)),
        "the token page did not come back\n{shown}"
    );
    // The far side's dnsmasq answered us through the tunnel…
    let dl = read(&w.dnsmasq_log);
    assert!(
        dl.contains(&format!("query[A] {} from 10.77.0.2", w.name)),
        "dnsmasq did not see our query from the tunnel address:\n{dl}\n{shown}"
    );
    // …the HTTP server saw our tunnel address…
    let hl = read(&w.http_log);
    assert!(
        hl.lines()
            .any(|l| l.starts_with("10.77.0.2 ") && l.contains("GET / ")),
        "the HTTP server did not see 10.77.0.2:\n{hl}\n{shown}"
    );
    // …the host resolver nothing, and the underlay nothing.
    assert!(
        !w.host_queries().iter().any(|q| q.contains(&w.name)),
        "the host resolver was asked: {:?}\n{shown}",
        w.host_queries()
    );
    assert_eq!(
        w.client.leak_guard().finish(),
        Ok(()),
        "traffic left outside the tunnel\n{shown}"
    );
    so
}

#[test]
fn static_rust_client_resolves_and_fetches_through_the_tunnel() {
    let bin = fixture_or_skip!(fixtures::rust_static());
    let w = dns_world_or_skip!();
    let b = bin.display().to_string();
    // Without wrapguard this very binary leaves the namespace (the
    // guard's bait route): the guard sees it.
    w.client.leak_guard().expect_leaks_to(&["10.77.0.1"], || {
        w.client
            .run(&["timeout", "10", &b, "fetch", "10.77.0.1", "8080", "/"])
    });
    fetch_by_name(&w, &[&b, "fetch", &w.name, "8080", "/"]);
}

#[test]
fn static_rust_client_getaddrinfo_over_unconnected_udp_resolves_through_the_tunnel() {
    // musl's getaddrinfo (behind std's ToSocketAddrs) sends its queries
    // with sendto on an unconnected socket and reads them with recvmsg,
    // checking that the answer comes from the nameserver it asked: the
    // supervisor carries both, and shows the tunnel server's answer as
    // coming from the host nameserver.
    let bin = fixture_or_skip!(fixtures::rust_static());
    let w = dns_world_or_skip!();
    let conf = w.conf(true);
    let b = bin.display().to_string();
    let out = wrapguard(
        &w.client,
        &conf,
        &["--log-level=debug"],
        &[&b, "libc-resolve", &w.name],
    );
    let so = String::from_utf8_lossy(&out.stdout).into_owned();
    let shown = show(&out);
    assert!(
        so.lines()
            .any(|l| l == format!("RESOLVED {} 10.77.0.1", w.name)),
        "{shown}"
    );
    let dl = read(&w.dnsmasq_log);
    assert!(
        dl.contains(&format!("query[A] {} from 10.77.0.2", w.name)),
        "dnsmasq did not see our query from the tunnel address:\n{dl}\n{shown}"
    );
    assert!(
        !w.host_queries().iter().any(|q| q.contains(&w.name)),
        "the host resolver was asked\n{shown}"
    );
    assert_eq!(w.client.leak_guard().finish(), Ok(()), "{shown}");
}

#[test]
fn static_c_client_resolves_and_fetches_through_the_tunnel() {
    let bin = fixture_or_skip!(fixtures::c_static());
    let w = dns_world_or_skip!();
    let b = bin.display().to_string();
    fetch_by_name(&w, &[&b, "fetch", &w.name, "8080", "/"]);
}

#[test]
fn go_client_resolves_and_fetches_through_the_tunnel() {
    let bin = fixture_or_skip!(fixtures::go_client());
    let w = dns_world_or_skip!();
    let b = bin.display().to_string();
    fetch_by_name(&w, &[&b, &w.name, "8080", "/"]);
}

/// Auto mode follows a program into what it execs: `sh` (dynamic) gets
/// the shim, and the static client it runs — which the shim could not
/// enter — is handed to seccomp mode by the shim's exec hook. Without that
/// hand-off the client resolves through the host and connects past the
/// tunnel, and the checks of [`fetch_by_name`] (tunnel DNS, token, source
/// address, leak guard) fail.
#[test]
fn static_client_run_by_a_dynamic_shell_is_carried_too() {
    let bin = fixture_or_skip!(fixtures::c_static());
    let w = dns_world_or_skip!();
    let script = format!(
        "{} fetch {} 8080 /; echo SHELL-DONE $?",
        bin.display(),
        w.name
    );
    let so = fetch_by_name(&w, &["sh", "-c", &script]);
    assert!(so.lines().any(|l| l == "SHELL-DONE 0"), "{so}");
}

/// The same through `posix_spawnp` with a `PATH` search (the caller's
/// `PATH`, as glibc searches) and an empty environment for the child
/// (python's `os.posix_spawnp(..., env={})`): the shim puts its variables
/// back, finds the Go client on `PATH`, and hands it to seccomp mode.
#[test]
fn go_client_spawned_by_name_with_a_cleared_environment_is_carried_too() {
    let bin = fixture_or_skip!(fixtures::go_client());
    let w = dns_world_or_skip!();
    let dir = bin.parent().expect("fixture dir").display().to_string();
    let file = bin
        .file_name()
        .expect("fixture name")
        .to_string_lossy()
        .into_owned();
    let py = "import os, sys\n\
              os.environ['PATH'] = sys.argv[5]\n\
              pid = os.posix_spawnp(sys.argv[1], sys.argv[1:5], {})\n\
              _, st = os.waitpid(pid, 0)\n\
              print('SPAWNED', os.waitstatus_to_exitcode(st), flush=True)\n";
    let so = fetch_by_name(
        &w,
        &["python3", "-c", py, &file, &w.name, "8080", "/", &dir],
    );
    assert!(so.lines().any(|l| l == "SPAWNED 0"), "{so}");
}

#[test]
fn go_server_is_reachable_from_the_peer_at_our_tunnel_address() {
    let bin = fixture_or_skip!(fixtures::go_server());
    let w = dns_world_or_skip!();
    // Keepalive: we handshake at start, so the peer knows our endpoint.
    let conf = w.conf_keepalive("server.conf");
    let tok = token("goserver");
    let log = w.tmp.join("go-server.log");
    let b = bin.display().to_string();
    let _srv = spawn_wrapguard(
        &w.client,
        &conf,
        &["--log-level=debug"],
        &[&b, "9090", &tok],
        &log,
        90,
    );
    wait_until(15, "the Go server", || {
        read(&log).lines().any(|l| l.starts_with("READY "))
    });
    for (url, from) in [
        ("http://10.77.0.2:9090/", "10.77.0.1:"),
        ("http://[fd77::2]:9090/", "[fd77::1]:"),
    ] {
        let out = w.peer.ns.run(&["curl", "-sS", "--max-time", "20", url]);
        let got = String::from_utf8_lossy(&out.stdout);
        assert!(
            got.starts_with(&format!("GOSERVER {tok} REMOTE {from}")),
            "{url}: {}\n--- wrapguard and server:\n{}",
            show(&out),
            read(&log)
        );
        assert!(
            read(&log)
                .lines()
                .any(|l| l.starts_with(&format!("SERVED {from}"))),
            "{}",
            read(&log)
        );
    }
    assert_eq!(w.client.leak_guard().finish(), Ok(()), "leaked");
}

/// The fixtures build (and are what they claim: static, no interpreter).
#[test]
fn fixtures_are_static_programs() {
    for (name, f) in [
        ("rust", fixtures::rust_static()),
        ("c", fixtures::c_static()),
        ("go client", fixtures::go_client()),
        ("go server", fixtures::go_server()),
    ] {
        let bin: &Path = match f {
            Ok(b) => b,
            Err(why) => {
                println!("SKIPPED {name}: {why}");
                continue;
            }
        };
        let out = std::process::Command::new("file")
            .arg(bin)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if out.is_empty() {
            continue; // no `file` here
        }
        assert!(
            out.contains("statically linked") || out.contains("static-pie linked"),
            "{name}: {out}"
        );
    }
}

#[test]
fn iperf3_forced_into_seccomp_mode_completes() {
    // iperf3 reads TCP_MAXSEG/TCP_INFO of its data socket: in seccomp mode
    // that is a unix socket underneath, so the supervisor answers them.
    if !on_path("iperf3") {
        println!("SKIPPED: iperf3 not installed");
        return;
    }
    let w = dns_world_or_skip!();
    let _srv = w
        .peer
        .ns
        .spawn(&["iperf3", "-s", "-1"], &w.tmp.join("iperf3-server.log"));
    w.peer.ns.wait_tcp_listen(5201);
    let conf = w.conf(true);
    let out = wrapguard(
        &w.client,
        &conf,
        &["--mode=seccomp"],
        &["iperf3", "-c", "10.77.0.1", "-t", "1", "-J"],
    );
    let so = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        so.contains("\"sum_received\"") && !so.contains("\"error\""),
        "{}",
        show(&out)
    );
    assert_eq!(w.client.leak_guard().finish(), Ok(()), "{}", show(&out));
}

#[test]
fn static_udp_server_answers_the_peer_through_the_tunnel() {
    // bind(0.0.0.0:PORT) carries the socket at once; recv_from and send_to
    // (recvfrom/sendto with addresses) are carried by the supervisor.
    let bin = fixture_or_skip!(fixtures::rust_static());
    let w = dns_world_or_skip!();
    let conf = w.conf_keepalive("udp-server.conf");
    let log = w.tmp.join("udp-server.log");
    let b = bin.display().to_string();
    let _srv = spawn_wrapguard(
        &w.client,
        &conf,
        &["--log-level=debug"],
        &[&b, "udp-echo", "9300"],
        &log,
        90,
    );
    wait_until(15, "the static UDP server", || {
        wrapguard_testnet::without_log_lines(&read(&log))
            .lines()
            .any(|l| l == "READY")
    });
    let tok = token("udpsrv");
    for i in 0..2 {
        let msg = format!("{tok}-{i}");
        let out = w
            .peer
            .ns
            .run(&["python3", "-c", UDP_PING_CLIENT, "10.77.0.2", "9300", &msg]);
        let got = String::from_utf8_lossy(&out.stdout);
        assert!(
            got.contains(&format!("GOT 10.77.0.2 REPLY:{msg}")),
            "{}\n--- wrapguard and server:\n{}",
            show(&out),
            read(&log)
        );
        assert!(
            read(&log)
                .lines()
                .any(|l| l.starts_with("SAW 10.77.0.1:") && l.ends_with(&msg)),
            "{}",
            read(&log)
        );
    }
    assert_eq!(w.client.leak_guard().finish(), Ok(()), "{}", read(&log));
}
