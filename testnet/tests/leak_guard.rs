//! The leak guard can fail: packets sent from the wrapguard-side namespace
//! without wrapguard are counted, listed, and fail the namespace's drop;
//! an expectation without its packets panics, and does not hide other
//! leaks. Needs root, wireguard-go, wireguard-tools; prints `SKIPPED:` and
//! passes otherwise.

use std::panic::{catch_unwind, AssertUnwindSafe};
use wrapguard_testnet::{show, skip_reason, Netns, OnePeer};

/// A client namespace joined to one wireguard-go peer (10.77.0.1, fd77::1).
fn setup() -> Option<OnePeer> {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED: {why}");
        println!("SKIPPED: {why}");
        return None;
    }
    Some(OnePeer::new("g"))
}

/// A plain (unwrapped) UDP datagram to each `host:port`, then a TCP connect.
const SEND: &str = r#"
import socket, sys
for hp in sys.argv[1:]:
    host, port = hp.rsplit(":", 1)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    u = socket.socket(fam, socket.SOCK_DGRAM)
    u.sendto(b"plain", (host.strip("[]"), int(port)))
    t = socket.socket(fam, socket.SOCK_STREAM); t.settimeout(3)
    try:
        t.connect((host.strip("[]"), int(port)))
    except OSError as e:
        print(hp, e)
print("SENT")
"#;

fn send(ns: &Netns, to: &[&str]) {
    let mut argv = vec!["python3", "-c", SEND];
    argv.extend_from_slice(to);
    let out = ns.run(&argv);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("SENT"),
        "{}",
        show(&out)
    );
}

fn panic_text(e: Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn an_unwrapped_send_is_counted_and_fails_the_namespace_drop() {
    let Some(OnePeer {
        client,
        peer: _peer,
        tmp: _tmp,
        ..
    }) = setup()
    else {
        return;
    };
    send(&client, &["10.77.0.1:7004", "[fd77::1]:8080"]);
    let leaks = client.leak_guard().leaks();
    let shown: Vec<String> = leaks.iter().map(|l| l.to_string()).collect();
    for want in [
        "udp 192.168.77.2:",
        "-> 10.77.0.1:7004 (interface #",
        "tcp [fd00:77::2]:",
        "-> [fd77::1]:8080 (interface #",
        "to tunnel range 10.77.0.0/24",
        "to tunnel range fd77::/64",
    ] {
        assert!(
            shown.iter().any(|l| l.contains(want)),
            "missing {want:?} in {shown:#?}"
        );
    }
    // The end of the test: the namespace's drop fails it, listing them.
    let e = catch_unwind(AssertUnwindSafe(move || drop(client)))
        .expect_err("dropping a namespace that leaked must fail the test");
    let report = panic_text(e);
    assert!(
        report.contains("left outside the WireGuard flow")
            && report.contains("-> 10.77.0.1:7004")
            && report.contains("-> [fd77::1]:8080"),
        "{report}"
    );
}

#[test]
fn an_expected_leak_must_happen_and_does_not_hide_others() {
    let Some(t) = setup() else {
        return;
    };
    let (client, g) = (&t.client, t.client.leak_guard());
    // Nothing sent: the expectation fails instead of passing vacuously.
    let e = catch_unwind(AssertUnwindSafe(|| {
        g.expect_leaks_to(&["10.77.0.1"], || ())
    }))
    .expect_err("an expectation with no packets must panic");
    assert!(panic_text(e).contains("saw none"));
    // Expected packets are returned; the others are still leaks.
    let ((), seen) = g.expect_leaks_to(&["10.77.0.1"], || {
        send(client, &["10.77.0.1:7005", "[fd77::1]:7006"])
    });
    assert!(
        seen.iter()
            .any(|l| l.dport == Some(7005) && l.proto == 17 && l.dst.to_string() == "10.77.0.1"),
        "{seen:?}"
    );
    let leaks = g.leaks();
    assert!(
        !leaks.is_empty() && leaks.iter().all(|l| l.dst.to_string() == "fd77::1"),
        "{leaks:?}"
    );
    let report = g.finish().expect_err("the fd77::1 packets are leaks");
    assert!(report.contains("-> [fd77::1]:7006"), "{report}");
}

#[test]
fn udp_to_the_peer_endpoint_is_the_tunnel_flow_not_a_leak() {
    let Some(t) = setup() else {
        return;
    };
    let (client, peer) = (&t.client, &t.peer);
    send_udp_only(client, &peer.endpoint());
    send_udp_only(client, &peer.endpoint6());
    assert_eq!(client.leak_guard().leaks(), vec![]);
    assert_eq!(client.leak_guard().finish(), Ok(()));
}

fn send_udp_only(ns: &Netns, hp: &str) {
    let py = r#"
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
host = host.strip("[]")
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
socket.socket(fam, socket.SOCK_DGRAM).sendto(b"\x01\x00\x00\x00", (host, int(port)))
print("SENT")
"#;
    let out = ns.run(&["python3", "-c", py, hp]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("SENT"),
        "{}",
        show(&out)
    );
}
