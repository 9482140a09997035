//! `traceroute` and `mtr` to a tunnel address, against wireguard-go: the
//! peer is the one hop (every probe, whatever its TTL, reaches it through
//! the tunnel), with ICMP echo probes (`traceroute -I`: a connected raw
//! ICMP socket, or a ping socket), UDP probes (the peer's port unreachable
//! read from the error queue, `IP_RECVERR`/`MSG_ERRQUEUE`); `mtr`'s
//! whole-IP-packet probes and a raw socket of another protocol connected
//! to a tunnel address are refused, never the kernel's. The client namespace is leak-guarded (an
//! escaped probe fails the test). Needs root, wireguard-go,
//! wireguard-tools, traceroute, mtr (mtr-tiny); prints `SKIPPED:` and passes otherwise.

use std::process::Output;
use std::time::Duration;
use wrapguard_testnet::{
    on_path, show, skip_unless_ready, wrapguard_limit, Conf, Configured, OnePeer,
};

/// One wireguard-go peer (10.77.0.1, fd77::1); we are 10.77.0.2, fd77::2.
fn one_peer(tag: &str) -> Configured {
    OnePeer::new(tag).configured(Conf::DUAL)
}

/// `wrapguard --log-level=debug [flags] -- argv…` in the client namespace,
/// spaced from the previous run (see `e2e_icmp.rs`'s `wrapped_ping`).
fn wrapped(t: &Configured, flags: &[&str], argv: &[&str]) -> Output {
    std::thread::sleep(Duration::from_millis(300));
    let mut f = vec!["--log-level=debug"];
    f.extend_from_slice(flags);
    wrapguard_limit(&t.client, &t.conf, &f, argv, 60)
}

/// Asserts a `traceroute -n` run ended at its first hop, `peer`.
fn assert_one_hop(o: &Output, peer: &str) {
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", show(o));
    let hops: Vec<&str> = s
        .lines()
        .skip_while(|l| l.starts_with("traceroute"))
        .collect();
    assert_eq!(hops.len(), 1, "one hop: {}", show(o));
    let words: Vec<&str> = hops[0].split_whitespace().collect();
    assert_eq!(words.first(), Some(&"1"), "{}", show(o));
    assert_eq!(words.get(1), Some(&peer), "{}", show(o));
    assert!(hops[0].contains(" ms"), "a round-trip time: {}", show(o));
    assert!(!hops[0].contains('*'), "no probe lost: {}", show(o));
    println!("{}", hops[0]);
}

macro_rules! need {
    ($prog:expr) => {
        if !on_path($prog) {
            println!("SKIPPED: {} not installed", $prog);
            eprintln!("SKIPPED: {} not installed", $prog);
            return;
        }
    };
}

#[test]
fn traceroute_icmp_shows_the_peer_as_the_one_hop_in_both_modes() {
    skip_unless_ready!();
    need!("traceroute");
    let t = one_peer("ti");
    for flags in [&[][..], &["--mode=seccomp"][..]] {
        let o = wrapped(
            &t,
            flags,
            &["traceroute", "-I", "-n", "-w", "2", "10.77.0.1"],
        );
        assert_one_hop(&o, "10.77.0.1");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(r#""kind":"RawIcmp""#), "{flags:?}: {}", show(&o));
    }
    let o = wrapped(
        &t,
        &[],
        &["traceroute", "-6", "-I", "-n", "-w", "2", "fd77::1"],
    );
    assert_one_hop(&o, "fd77::1");
}

#[test]
fn traceroute_udp_reads_the_peers_port_unreachable() {
    skip_unless_ready!();
    need!("traceroute");
    let t = one_peer("tu");
    let o = wrapped(
        &t,
        &[],
        &["traceroute", "-n", "-q", "1", "-w", "2", "10.77.0.1"],
    );
    assert_one_hop(&o, "10.77.0.1");
}

#[test]
fn mtr_probes_are_refused_not_leaked() {
    skip_unless_ready!();
    need!("mtr");
    let t = one_peer("tm");
    // mtr-packet writes whole IP packets (IPPROTO_RAW, IP_HDRINCL): not
    // carried, so refused at the send, and nothing reaches the underlay
    // (the leak guard); mtr reports no hop rather than a wrong one.
    let o = wrapped(&t, &[], &["mtr", "-r", "-c", "2", "-n", "10.77.0.1"]);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(!s.contains("|--"), "no hop: {}", show(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.lines()
            .any(|l| l.contains(r#""level":"warn""#) && l.contains("IP protocol 255")),
        "{}",
        show(&o)
    );
}

const RAW_CONNECT: &str = r#"
import errno, socket
def attempt(what, proto, payload):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
    try:
        s.connect(("10.77.0.1", 0))
        s.send(payload)
        print(what, "SENT", flush=True)
    except OSError as e:
        print(what, errno.errorcode.get(e.errno, e.errno), flush=True)
attempt("raw253", 253, b"probe")
attempt("rawudp", socket.IPPROTO_UDP, b"\x82\x9a\x82\x9a\x00\x0d\x00\x00probe")
# An echo request on a connected raw ICMP socket: carried, answered.
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.connect(("10.77.0.1", 0))
s.settimeout(5)
req = bytearray(b"\x08\x00\x00\x00\x12\x34\x00\x01" + b"x" * 16)
c = sum(int.from_bytes(req[i:i+2], "big") for i in range(0, len(req), 2))
c = (c & 0xffff) + (c >> 16); c = (c & 0xffff) + (c >> 16)
req[2:4] = (~c & 0xffff).to_bytes(2, "big")
s.send(bytes(req))
r = s.recv(200)
print("echo", "REPLY" if r[20] == 0 and r[24:26] == b"\x12\x34" else r.hex(), r[12:16] == bytes([10, 77, 0, 1]), flush=True)
"#;

#[test]
fn raw_sockets_connected_to_the_tunnel_are_carried_or_refused_never_sent() {
    skip_unless_ready!();
    let t = one_peer("tr");
    for flags in [&[][..], &["--mode=seccomp"][..]] {
        let o = wrapped(&t, flags, &["python3", "-c", RAW_CONNECT]);
        let s = String::from_utf8_lossy(&o.stdout);
        // Refused at connect(): the kernel never saw the destination (the
        // leak guard would see the send on the client's underlay).
        for what in [
            "raw253 ENETUNREACH",
            "rawudp ENETUNREACH",
            "echo REPLY True",
        ] {
            assert!(s.contains(what), "{flags:?} {what}: {}", show(&o));
        }
        let e = String::from_utf8_lossy(&o.stderr);
        let warns = e
            .lines()
            .filter(|l| l.contains(r#""level":"warn""#) && l.contains("not carried"))
            .count();
        assert_eq!(warns, 1, "{flags:?}: one warning: {}", show(&o));
    }
}
