//! ICMP echo through the tunnel against wireguard-go: the peer pings our
//! tunnel address (our stack answers), and iputils `ping` under wrapguard
//! reaches the peer through ping sockets (`SOCK_DGRAM`/`IPPROTO_ICMP`) and
//! raw ICMP sockets (root), IPv4 and IPv6, with replies, TTL and round-trip
//! times as on a real interface; a reply that never comes is loss, not a
//! hang. Same harness as `e2e_udp.rs` (peer in its own namespace, the
//! client namespace leak-guarded). Needs root, wireguard-go,
//! wireguard-tools, iputils `ping`; prints `SKIPPED:` and passes otherwise.

use std::time::{Duration, Instant};
use wrapguard_testnet::{
    on_path, read, show, skip_unless_ready, spawn_wrapguard, wait_log, wrapguard_limit, Conf,
    Configured, Endpoint, OnePeer,
};

/// `key=value` from the last `Engine counters:` line of a log.
fn counter(log: &str, key: &str) -> u64 {
    log.lines()
        .rev()
        .find(|l| l.contains("Engine counters: "))
        .and_then(|l| {
            l.split_whitespace().find_map(|w| {
                w.trim_matches('"')
                    .strip_prefix(&format!("{key}="))
                    .map(String::from)
            })
        })
        .and_then(|v| v.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok())
        .unwrap_or_else(|| panic!("no counter {key} in:\n{log}"))
}

/// iputils `ping`, or a loud skip.
macro_rules! need_ping {
    () => {
        if !on_path("ping") {
            println!("SKIPPED: iputils ping not installed");
            eprintln!("SKIPPED: iputils ping not installed");
            return;
        }
    };
}

#[test]
fn peer_pings_our_tunnel_address_v4_and_v6() {
    skip_unless_ready!();
    need_ping!();
    // The peer knows our endpoint and calls first; we only run `sleep`.
    let t = OnePeer::listening("pi", 51930);
    let conf = t.conf(
        "wg0.conf",
        Conf {
            endpoint: Endpoint::None,
            ..Conf::DUAL
        },
    );
    let log = t.tmp.join("wrapguard.log");
    let _wg = spawn_wrapguard(
        &t.client,
        &conf,
        &["--log-level=debug"],
        &["sleep", "40"],
        &log,
        45,
    );
    wait_log(&log, "Peer: ", 20);
    std::thread::sleep(Duration::from_millis(300));
    let p4 = t
        .peer
        .ns
        .run(&["ping", "-c", "3", "-i", "0.3", "-W", "3", "10.77.0.2"]);
    let p6 = t
        .peer
        .ns
        .run(&["ping", "-6", "-c", "2", "-i", "0.3", "-W", "3", "fd77::2"]);
    t.client.signal("wrapguard", libc::SIGUSR1);
    let held = wait_log(&log, "Engine counters:", 20);
    let s4 = String::from_utf8_lossy(&p4.stdout).to_string();
    let s6 = String::from_utf8_lossy(&p6.stdout).to_string();
    assert!(p4.status.success(), "{}\n--- wrapguard\n{held}", show(&p4));
    assert!(s4.contains("3 received"), "{s4}");
    assert!(s4.contains("from 10.77.0.2: icmp_seq=1 ttl=64 time="), "{s4}");
    assert!(p6.status.success(), "{}\n--- wrapguard\n{held}", show(&p6));
    assert!(s6.contains("2 received"), "{s6}");
    assert!(s6.contains("from fd77::2: icmp_seq=1 ttl=64 time="), "{s6}");
    assert_eq!(counter(&held, "echo_requests_answered"), 5, "{held}");
}
