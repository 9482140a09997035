//! ICMP echo through the tunnel against wireguard-go: the peer pings our
//! tunnel address (our stack answers), and iputils `ping` under wrapguard
//! reaches the peer through ping sockets (`SOCK_DGRAM`/`IPPROTO_ICMP`) and
//! raw ICMP sockets (root), IPv4 and IPv6, with replies, TTL and round-trip
//! times as on a real interface; a reply that never comes is loss, not a
//! hang. Same harness as `e2e_udp.rs` (peer in its own namespace, the
//! client namespace leak-guarded). Needs root, wireguard-go,
//! wireguard-tools, iputils `ping`; prints `SKIPPED:` and passes otherwise.

use std::process::Output;
use std::time::{Duration, Instant};
use wrapguard_testnet::{
    on_path, show, skip_unless_ready, spawn_wrapguard, wait_log, wrapguard_limit, Conf, Configured,
    Endpoint, OnePeer, Wrapguard,
};

/// One wireguard-go peer (10.77.0.1, fd77::1); we are 10.77.0.2, fd77::2.
fn one_peer(tag: &str) -> Configured {
    OnePeer::new(tag).configured(Conf::DUAL)
}

/// Lets every group of the client namespace open ping sockets (the
/// namespace default, `1 0`, lets none: ping then uses a raw socket).
fn allow_ping_sockets(t: &Configured) {
    let o = t
        .client
        .run(&["sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"]);
    assert!(o.status.success(), "{}", show(&o));
}

/// `wrapguard --log-level=debug -- ping args…` in the client namespace.
///
/// Runs are spaced: wireguard-go drops a handshake initiation that comes
/// within ~20 ms of the previous one (its flood check; our whitened TAI64N
/// timestamps are also 16.8 ms coarse), and a short ping run from a fresh
/// wrapguard would then wait 5 s for the retry.
fn wrapped_ping(t: &Configured, args: &[&str]) -> Output {
    std::thread::sleep(Duration::from_millis(300));
    let mut argv = vec!["ping"];
    argv.extend_from_slice(args);
    wrapguard_limit(&t.client, &t.conf, &["--log-level=debug"], &argv, 40)
}

/// Asserts a ping run got `n` replies from `from` with TTL/hop limit 64
/// (wireguard-go's kernel answers; nothing on the way decrements it) and
/// round-trip times, and returns its stdout.
fn assert_replies(o: &Output, n: u32, from: &str) -> String {
    let s = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}", show(o));
    assert!(
        s.contains(&format!(
            "{n} packets transmitted, {n} received, 0% packet loss"
        )),
        "{}",
        show(o)
    );
    for seq in 1..=n {
        assert!(
            s.contains(&format!("from {from}: icmp_seq={seq} ttl=64 time=")),
            "reply {seq} missing:\n{}",
            show(o)
        );
    }
    let rtt = s.lines().find(|l| l.starts_with("rtt min/avg/max/mdev = "));
    assert!(rtt.is_some(), "{}", show(o));
    println!("{from}: {n} replies, {}", rtt.unwrap_or_default());
    s
}

/// Which socket the wrapped ping used, from the engine's flow log.
fn flow_kind(o: &Output) -> String {
    let e = String::from_utf8_lossy(&o.stderr);
    e.lines()
        .find(|l| l.contains("udp flow opened") && !l.contains(r#""kind":"Udp""#))
        .map(|l| l.to_string())
        .unwrap_or_else(|| panic!("no ICMP flow opened:\n{e}"))
}

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
    assert!(
        s4.contains("from 10.77.0.2: icmp_seq=1 ttl=64 time="),
        "{s4}"
    );
    assert!(p6.status.success(), "{}\n--- wrapguard\n{held}", show(&p6));
    assert!(s6.contains("2 received"), "{s6}");
    assert!(s6.contains("from fd77::2: icmp_seq=1 ttl=64 time="), "{s6}");
    assert_eq!(counter(&held, "echo_requests_answered"), 5, "{held}");
}

#[test]
fn ping_v4_and_v6_through_raw_sockets_as_root() {
    skip_unless_ready!();
    need_ping!();
    let t = one_peer("pr");
    let o = wrapped_ping(&t, &["-c", "3", "-i", "0.3", "-W", "5", "10.77.0.1"]);
    assert_replies(&o, 3, "10.77.0.1");
    assert!(
        flow_kind(&o).contains(r#""kind":"RawIcmp""#),
        "{}",
        show(&o)
    );
    let o = wrapped_ping(&t, &["-6", "-c", "2", "-i", "0.3", "-W", "5", "fd77::1"]);
    assert_replies(&o, 2, "fd77::1");
    assert!(
        flow_kind(&o).contains(r#""kind":"RawIcmp""#),
        "{}",
        show(&o)
    );
    // The largest echo that fits the tunnel MTU (1420 = 20 + 8 + 1392).
    let o = wrapped_ping(
        &t,
        &["-c", "1", "-s", "1392", "-M", "do", "-W", "5", "10.77.0.1"],
    );
    let s = assert_replies(&o, 1, "10.77.0.1");
    assert!(s.contains("1400 bytes from 10.77.0.1"), "{s}");
    // One byte more does not fit with -M do: a clear error, nothing sent.
    let o = wrapped_ping(
        &t,
        &["-c", "1", "-s", "1393", "-M", "do", "-W", "2", "10.77.0.1"],
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        !o.status.success() && all.contains("local error: message too long, mtu=1420"),
        "{}",
        show(&o)
    );
    // Without -M do it goes in fragments; -I binds to our tunnel address.
    let o = wrapped_ping(
        &t,
        &[
            "-c",
            "1",
            "-s",
            "4000",
            "-W",
            "5",
            "-I",
            "10.77.0.2",
            "10.77.0.1",
        ],
    );
    let s = assert_replies(&o, 1, "10.77.0.1");
    assert!(s.contains("4008 bytes from 10.77.0.1"), "{s}");
    let o = wrapped_ping(&t, &["-6", "-c", "1", "-s", "3000", "-W", "5", "fd77::1"]);
    let s = assert_replies(&o, 1, "fd77::1");
    assert!(s.contains("3008 bytes from fd77::1"), "{s}");
}

#[test]
fn ping_v4_and_v6_through_ping_sockets() {
    skip_unless_ready!();
    need_ping!();
    let t = one_peer("pd");
    allow_ping_sockets(&t);
    let o = wrapped_ping(&t, &["-c", "3", "-i", "0.3", "-W", "5", "10.77.0.1"]);
    assert_replies(&o, 3, "10.77.0.1");
    assert!(flow_kind(&o).contains(r#""kind":"Ping""#), "{}", show(&o));
    let o = wrapped_ping(&t, &["-6", "-c", "2", "-i", "0.3", "-W", "5", "fd77::1"]);
    assert_replies(&o, 2, "fd77::1");
    assert!(flow_kind(&o).contains(r#""kind":"Ping""#), "{}", show(&o));
    let o = wrapped_ping(
        &t,
        &[
            "-c",
            "1",
            "-s",
            "1392",
            "-W",
            "5",
            "-I",
            "10.77.0.2",
            "10.77.0.1",
        ],
    );
    let s = assert_replies(&o, 1, "10.77.0.1");
    assert!(s.contains("1400 bytes from 10.77.0.1"), "{s}");
}

#[test]
fn ping_as_an_ordinary_user_through_ping_sockets() {
    skip_unless_ready!();
    need_ping!();
    if !on_path("setpriv") {
        println!("SKIPPED: no setpriv");
        return;
    }
    let t = one_peer("pu");
    allow_ping_sockets(&t);
    // A copy of ping without its file capability (the loader would ignore
    // LD_PRELOAD for a capability-raising program run by a user), and a
    // config the user may read.
    let dir = t.tmp.join("user");
    std::fs::create_dir_all(&dir).expect("dir");
    let ping = dir.join("ping");
    std::fs::copy("/usr/bin/ping", &ping).expect("copy ping");
    let conf = dir.join("wg0.conf");
    std::fs::copy(&t.conf, &conf).expect("copy conf");
    let o = t
        .client
        .run(&["chown", "-R", "65534:65534", &dir.display().to_string()]);
    assert!(o.status.success(), "{}", show(&o));
    for d in [t.tmp.join("."), dir.clone()] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let mut argv = vec![
        "setpriv".to_string(),
        "--reuid=65534".into(),
        "--regid=65534".into(),
        "--clear-groups".into(),
        "--".into(),
    ];
    argv.extend(Wrapguard::under_test().argv(
        &conf,
        &["--log-level=debug"],
        &[
            &ping.display().to_string(),
            "-c",
            "2",
            "-i",
            "0.3",
            "-W",
            "5",
            "10.77.0.1",
        ],
        40,
    ));
    let o = t
        .client
        .run(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    assert_replies(&o, 2, "10.77.0.1");
    assert!(flow_kind(&o).contains(r#""kind":"Ping""#), "{}", show(&o));
    // The system's ping, with its file capability: carried by seccomp mode
    // without it (no_new_privs), it uses ping sockets the same way.
    let has_caps = std::process::Command::new("getcap")
        .arg("/usr/bin/ping")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("cap_net_raw"))
        .unwrap_or(false);
    if !has_caps {
        println!("SKIPPED (system ping part): /usr/bin/ping has no file capability here");
        return;
    }
    let i = argv
        .iter()
        .position(|a| a == &ping.display().to_string())
        .expect("ping in argv");
    argv[i] = "/usr/bin/ping".into();
    let o = t
        .client
        .run(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    assert_replies(&o, 2, "10.77.0.1");
    assert!(flow_kind(&o).contains(r#""kind":"Ping""#), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("Mode: seccomp (/usr/bin/ping has file capabilities"),
        "{}",
        show(&o)
    );
}

#[test]
fn a_lost_reply_is_loss_not_a_hang_and_local_ping_is_untouched() {
    skip_unless_ready!();
    need_ping!();
    let t = one_peer("pl");
    // 10.77.0.9 is routed to the peer, which has nobody there.
    let start = Instant::now();
    let o = wrapped_ping(&t, &["-c", "2", "-i", "0.5", "-W", "1", "10.77.0.9"]);
    let took = start.elapsed();
    let s = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        s.contains("2 packets transmitted, 0 received, 100% packet loss"),
        "{}",
        show(&o)
    );
    assert!(
        took < Duration::from_secs(15),
        "took {took:?}: {}",
        show(&o)
    );
    // Loopback is never tunnelled: the kernel answers, as without wrapguard.
    let o = wrapped_ping(&t, &["-c", "1", "-W", "2", "127.0.0.1"]);
    assert_replies(&o, 1, "127.0.0.1");
}

/// Builds `fixtures/ping_socket.c` statically into `dir` (`None` and a
/// SKIPPED line if gcc or a static libc is missing).
fn static_ping(dir: &std::path::Path) -> Option<String> {
    build_ping(dir, true)
}

/// Builds `fixtures/ping_socket.c` into `dir`, statically or not.
fn build_ping(dir: &std::path::Path, static_: bool) -> Option<String> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ping_socket.c");
    let bin = dir.join(if static_ {
        "ping_socket"
    } else {
        "ping_socket_dyn"
    });
    let flags: &[&str] = if static_ {
        &["-static", "-O1", "-o"]
    } else {
        &["-O1", "-o"]
    };
    let built = std::process::Command::new("gcc")
        .args(flags)
        .arg(&bin)
        .arg(&src)
        .output();
    if !built.as_ref().is_ok_and(|o| o.status.success()) {
        println!("SKIPPED: gcc -static failed: {built:?}");
        return None;
    }
    Some(bin.display().to_string())
}

#[test]
fn static_ping_socket_program_in_seccomp_mode() {
    skip_unless_ready!();
    let t = one_peer("ps");
    allow_ping_sockets(&t);
    let Some(bin) = static_ping(&t.tmp.join("")) else {
        return;
    };
    for args in [
        &["10.77.0.1", "3"][..],
        &["10.77.0.1", "2", "connect"][..],
        &["fd77::1", "2"][..],
        &["fd77::1", "2", "connect"][..],
    ] {
        let mut argv = vec![bin.as_str()];
        argv.extend_from_slice(args);
        // Spaced, as in `wrapped_ping`.
        std::thread::sleep(Duration::from_millis(300));
        let o = wrapguard_limit(
            &t.client,
            &t.conf,
            &["--log-level=debug", "--mode=seccomp"],
            &argv,
            40,
        );
        let s = String::from_utf8_lossy(&o.stdout);
        let n = args[1];
        assert!(o.status.success(), "{args:?}: {}", show(&o));
        assert!(
            s.contains(&format!("received {n}/{n}")),
            "{args:?}: {}",
            show(&o)
        );
        assert!(
            s.contains(&format!("reply seq=1 from {} bytes=", args[0])),
            "{args:?}: {}",
            show(&o)
        );
        assert!(flow_kind(&o).contains(r#""kind":"Ping""#), "{}", show(&o));
    }
}

#[test]
fn iputils_ping_in_seccomp_mode() {
    skip_unless_ready!();
    need_ping!();
    let t = one_peer("pq");
    let seccomp = |args: &[&str]| {
        std::thread::sleep(Duration::from_millis(300)); // as in `wrapped_ping`
        let mut argv = vec!["ping"];
        argv.extend_from_slice(args);
        wrapguard_limit(
            &t.client,
            &t.conf,
            &["--log-level=debug", "--mode=seccomp"],
            &argv,
            40,
        )
    };
    // Raw sockets (root): the TTL is read from the IPv4 header.
    let o = seccomp(&["-c", "2", "-i", "0.3", "-W", "5", "10.77.0.1"]);
    assert_replies(&o, 2, "10.77.0.1");
    assert!(
        flow_kind(&o).contains(r#""kind":"RawIcmp""#),
        "{}",
        show(&o)
    );
    std::thread::sleep(Duration::from_secs(1));
    let start = Instant::now();
    let o = seccomp(&["-c", "2", "-i", "0.5", "-W", "1", "10.77.0.9"]);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("2 packets transmitted, 0 received"),
        "{}",
        show(&o)
    );
    assert!(start.elapsed() < Duration::from_secs(15), "{}", show(&o));
    // Ping sockets: the TTL comes as IP_TTL / IPV6_HOPLIMIT ancillary data.
    allow_ping_sockets(&t);
    let o = seccomp(&["-c", "2", "-i", "0.3", "-W", "5", "10.77.0.1"]);
    assert_replies(&o, 2, "10.77.0.1");
    assert!(flow_kind(&o).contains(r#""kind":"Ping""#), "{}", show(&o));
    let o = seccomp(&["-6", "-c", "2", "-i", "0.3", "-W", "5", "fd77::1"]);
    assert_replies(&o, 2, "fd77::1");
}

const UNCARRIED: &str = r#"
import errno, socket, sys
def send(s, what):
    try:
        s.sendto(b"\x0d\x00\x00\x00\x00\x01\x00\x01" + b"x" * 12, ("10.77.0.1", 0))
        print(what, "SENT", flush=True)
    except OSError as e:
        print(what, errno.errorcode.get(e.errno, e.errno), flush=True)
send(socket.socket(socket.AF_INET, socket.SOCK_RAW, 253), "raw253")
send(socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP), "timestamp")
send(socket.socket(socket.AF_INET, socket.SOCK_RAW, 253), "again")
"#;

#[test]
fn uncarried_raw_traffic_to_the_tunnel_fails_with_one_warning() {
    skip_unless_ready!();
    let t = one_peer("pw");
    let o = wrapguard_limit(&t.client, &t.conf, &[], &["python3", "-c", UNCARRIED], 30);
    let s = String::from_utf8_lossy(&o.stdout);
    let e = String::from_utf8_lossy(&o.stderr);
    // Another IP protocol, and ICMP other than echo (a timestamp request):
    // refused at once, never sent anywhere (the leak guard watches).
    for what in [
        "raw253 ENETUNREACH",
        "timestamp ENETUNREACH",
        "again ENETUNREACH",
    ] {
        assert!(s.contains(what), "{what}: {}", show(&o));
    }
    let warns: Vec<&str> = e
        .lines()
        .filter(|l| l.contains(r#""level":"warn""#) && l.contains("not carried"))
        .collect();
    assert_eq!(warns.len(), 1, "one warning per process: {}", show(&o));
    assert!(warns[0].contains("IP protocol 253"), "{}", warns[0]);
}

#[test]
fn ping_socket_program_connected_and_not_in_shim_mode() {
    skip_unless_ready!();
    let t = one_peer("pc");
    allow_ping_sockets(&t);
    let Some(bin) = build_ping(&t.tmp.join(""), false) else {
        return;
    };
    // Connected with a port (ignored by ping sockets, as by Linux's).
    for args in [
        &["10.77.0.1", "2", "connect"][..],
        &["fd77::1", "2", "connect"][..],
        &["fd77::1", "2"][..],
    ] {
        std::thread::sleep(Duration::from_millis(300));
        let mut argv = vec![bin.as_str()];
        argv.extend_from_slice(args);
        let o = wrapguard_limit(&t.client, &t.conf, &["--log-level=debug"], &argv, 40);
        let s = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && s.contains("received 2/2"),
            "{args:?}: {}",
            show(&o)
        );
        assert!(flow_kind(&o).contains(r#""kind":"Ping""#), "{}", show(&o));
    }
}

/// A copy of `/usr/bin/ping` without its file capability that user 65534
/// may run (the loader ignores LD_PRELOAD for a capability-raising
/// program run by a user), in `t`'s temporary directory.
fn user_ping_copy(t: &Configured) -> String {
    let dir = t.tmp.join("user");
    std::fs::create_dir_all(&dir).expect("dir");
    let ping = dir.join("ping");
    std::fs::copy("/usr/bin/ping", &ping).expect("copy ping");
    for d in [t.tmp.join("."), dir.clone()] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    ping.display().to_string()
}

/// `wrapguard [flags] -- setpriv --reuid=65534 … -- argv…`: the program
/// drops to an ordinary user under wrapguard (the hold keeps its tunnel).
fn wrapped_as_nobody(t: &Configured, flags: &[&str], argv: &[&str]) -> Output {
    std::thread::sleep(Duration::from_millis(300)); // as in `wrapped_ping`
    let mut v = vec![
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
    ];
    v.extend_from_slice(argv);
    let mut f = vec!["--log-level=debug"];
    f.extend_from_slice(flags);
    wrapguard_limit(&t.client, &t.conf, &f, &v, 40)
}

#[test]
fn ping_as_an_ordinary_user_where_the_host_allows_no_ping_sockets() {
    skip_unless_ready!();
    need_ping!();
    if !on_path("setpriv") {
        println!("SKIPPED: no setpriv");
        return;
    }
    let t = one_peer("pn");
    // The namespace's default: no group may open ping sockets, and user
    // 65534 has no CAP_NET_RAW. Unwrapped, ping fails at socket().
    let range = t.client.run(&["sysctl", "-n", "net.ipv4.ping_group_range"]);
    assert_eq!(
        String::from_utf8_lossy(&range.stdout)
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["1", "0"],
        "{}",
        show(&range)
    );
    let ping = user_ping_copy(&t);
    let bare = t.client.run(&[
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
        &ping,
        "-c",
        "1",
        "10.77.0.1",
    ]);
    assert!(!bare.status.success(), "{}", show(&bare));
    // Shim mode: the refused ping socket gets wrapguard's stand-in.
    let o = wrapped_as_nobody(
        &t,
        &[],
        &[&ping, "-c", "2", "-i", "0.3", "-W", "5", "10.77.0.1"],
    );
    assert_replies(&o, 2, "10.77.0.1");
    assert!(flow_kind(&o).contains(r#""kind":"Ping""#), "{}", show(&o));
    let o = wrapped_as_nobody(
        &t,
        &[],
        &[&ping, "-6", "-c", "2", "-i", "0.3", "-W", "5", "fd77::1"],
    );
    assert_replies(&o, 2, "fd77::1");
    // Seccomp mode: the same (the copy: this host's kernel may raise the
    // system ping's file capability even under no_new_privs).
    let o = wrapped_as_nobody(
        &t,
        &["--mode=seccomp"],
        &[&ping, "-c", "2", "-i", "0.3", "-W", "5", "10.77.0.1"],
    );
    assert_replies(&o, 2, "10.77.0.1");
    assert!(flow_kind(&o).contains(r#""kind":"Ping""#), "{}", show(&o));
    // Outside the tunnel the host's refusal stands, in both modes: the
    // stand-in reaches the tunnel only (nothing leaves: the leak guard).
    // The shim also queues it as a local error, which ping prints.
    for flags in [&[][..], &["--mode=seccomp"][..]] {
        let o = wrapped_as_nobody(&t, flags, &[&ping, "-c", "1", "-W", "1", "192.0.2.7"]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(!o.status.success(), "{flags:?}: {}", show(&o));
        assert!(out.contains("0 received"), "{flags:?}: {}", show(&o));
        assert!(!out.contains("bytes from"), "{}", show(&o));
        if flags.is_empty() {
            assert!(
                String::from_utf8_lossy(&o.stderr).contains("local error: Permission denied"),
                "{}",
                show(&o)
            );
        }
    }
}
