//! `wrapguard --doctor` and `wrapguard --self-test` as a user meets them:
//! a good config, a broken one, a missing shim, an unreachable peer, a
//! real peer (another wrapguard over loopback in a private network
//! namespace, and wireguard-go in namespaces of its own), and the SIGUSR1
//! status report. Assertions are on the printed lines. (The checks of
//! programs the shim cannot enter are in `doctor_programs.rs`.)

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use wrapguard_testnet::{
    conf_text, in_netns, lines_at, netns_ok, output_retrying, show, skip_unless_ready,
    wrapguard_direct, Conf, OnePeer, PeerSection, TempDir, Wrapguard,
};

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

macro_rules! skip_unless_netns {
    () => {
        if !netns_ok() {
            eprintln!(
                "SKIPPED: {}: cannot create a network namespace (unshare -rn)",
                module_path!()
            );
            return;
        }
    };
}

/// A key pair from our own genkey/pubkey: (private, public).
fn keys() -> (String, String) {
    let k = Wrapguard::under_test().keys();
    (k.private, k.public)
}

/// Two configs that are each other's peer over loopback: `one` listens on
/// 51801 (10.88.0.1) and knows no endpoint, `two` (10.88.0.2) dials it.
/// Returns (one.conf, two.conf, two's public key).
fn pair(tmp: &TempDir) -> (PathBuf, PathBuf, String) {
    let (k1, p1) = keys();
    let (k2, p2) = keys();
    let peer = |public_key, endpoint, allowed_ips| PeerSection {
        public_key,
        endpoint,
        allowed_ips,
        extra: "",
    };
    let one = tmp.write(
        "one.conf",
        &conf_text(
            &k1,
            "10.88.0.1/24",
            "ListenPort = 51801",
            &[peer(&p2, None, "10.88.0.2/32")],
        ),
    );
    let two = tmp.write(
        "two.conf",
        &conf_text(
            &k2,
            "10.88.0.2/24",
            "ListenPort = 51802",
            &[peer(&p1, Some("127.0.0.1:51801"), "10.88.0.0/24")],
        ),
    );
    (one, two, p2)
}

/// Inside a fresh network namespace: starts wrapguard with `one.conf`
/// running `server` (a shell command) in the background, waits until it
/// runs (and, if `ready` is given, until its output shows `ready`), then
/// runs `client` (a shell command; `$WG` is wrapguard, `$DIR` the temp
/// dir) and ends the server. The client's output is returned.
fn with_peer(tmp: &TempDir, server: &str, ready: Option<&str>, client: &str) -> Output {
    let script = format!(
        r#"
"$WG" --config "$DIR/one.conf" --log-level=debug -- {server} >"$DIR/one.out" 2>"$DIR/one.log" &
srv=$!
i=0
until grep -q 'Launching' "$DIR/one.log" 2>/dev/null; do
  i=$((i+1)); [ $i -gt 400 ] && {{ echo "server did not start" >&2; cat "$DIR/one.log" >&2; exit 99; }}
  sleep 0.05
done
if [ -n "$READY" ]; then
  i=0
  until grep -q "$READY" "$DIR/one.out" 2>/dev/null; do
    i=$((i+1)); [ $i -gt 400 ] && {{ echo "server not ready" >&2; exit 98; }}
    sleep 0.05
  done
fi
{client}
rc=$?
kill $srv 2>/dev/null
wait $srv 2>/dev/null
exit $rc
"#
    );
    in_netns(&["timeout", "90", "sh", "-c", &script])
        .env("WG", &Wrapguard::under_test().bin)
        .env("DIR", &tmp.path)
        .env("READY", ready.unwrap_or(""))
        .output()
        .expect("run in namespace")
}

#[test]
fn doctor_good_config_and_program() {
    let tmp = TempDir::new();
    let (_, two, pub2) = pair(&tmp);
    let out = wrapguard_direct(&[
        OsStr::new("--config"),
        two.as_os_str(),
        OsStr::new("--doctor"),
        OsStr::new("true"),
    ]);
    let t = text(&out);
    assert!(out.status.success(), "{}", show(&out));
    assert!(lines_at(&t, "fail").is_empty(), "{t}");
    assert!(lines_at(&t, "warn").is_empty(), "{t}");
    let shim = Wrapguard::under_test().shim.display().to_string();
    for want in [
        format!("ok    shim {shim} (64-bit"),
        format!("ok    shim {shim} loads into a program"),
        format!(
            "ok    config {} parsed: address 10.88.0.2/24, 1 peer",
            two.display()
        ),
        format!("our public key is {pub2}"),
        "endpoint 127.0.0.1:51801".to_string(),
        "UDP port 51802 (ListenPort) is free".to_string(),
        "is a dynamically linked 64-bit".to_string(),
        "the shim can enter it".to_string(),
        "doctor: all ".to_string(),
    ] {
        assert!(t.contains(&want), "missing {want:?} in:\n{t}");
    }
    // Every line is `ok|warn|fail  …` or the `doctor:` summary.
    for l in t.lines() {
        assert!(
            l.starts_with("ok    ")
                || l.starts_with("warn  ")
                || l.starts_with("fail  ")
                || l.starts_with("doctor: "),
            "odd line {l:?}"
        );
    }
}

#[test]
fn doctor_without_config_checks_the_shim_only() {
    let out = wrapguard_direct(&[OsStr::new("--doctor")]);
    let t = text(&out);
    assert!(out.status.success(), "{}", show(&out));
    assert!(t.contains("loads into a program"), "{t}");
    assert!(
        t.contains("add --config wg0.conf to check a config too"),
        "{t}"
    );
}

#[test]
fn doctor_broken_configs_say_where_and_what_to_do() {
    let tmp = TempDir::new();
    let (k, ours) = keys();
    // A bad key: file:line, no secret shown, a fix.
    let bad = tmp.write(
        "bad.conf",
        "[Interface]\nPrivateKey = abc\nAddress = 10.0.0.2/24\n",
    );
    let out = wrapguard_direct(&[
        OsStr::new("--config"),
        bad.as_os_str(),
        OsStr::new("--doctor"),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let fails = lines_at(&t, "fail");
    assert_eq!(fails.len(), 1, "{t}");
    assert!(
        fails[0].starts_with(&format!("fail  {}:2: invalid PrivateKey", bad.display())),
        "{t}"
    );
    assert!(fails[0].contains("  — "), "a fix after the dash: {t}");
    assert!(t.contains("doctor: 1 failed"), "{t}");

    // Missing file.
    let missing = tmp.join("nope.conf");
    let out = wrapguard_direct(&[
        OsStr::new("--config"),
        missing.as_os_str(),
        OsStr::new("--doctor"),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        t.contains(&format!("fail  cannot read config {}", missing.display())),
        "{t}"
    );
    assert!(t.contains("check the path given to --config"), "{t}");

    // Readable by others, a peer with our own key, a wg-quick key: warn/fail with fixes.
    let odd = tmp.write(
        "odd.conf",
        &format!(
            "[Interface]\nPrivateKey = {k}\nAddress = 10.0.0.2/24\nPostUp = iptables -A x\n\n\
             [Peer]\nPublicKey = {ours}\nAllowedIPs = 10.0.0.0/24\n"
        ),
    );
    std::fs::set_permissions(&odd, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = wrapguard_direct(&[
        OsStr::new("--config"),
        odd.as_os_str(),
        OsStr::new("--doctor"),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!(
            "warn  config {0} holds a private key and other users can read it (mode 0644)  — chmod 600 {0}",
            odd.display()
        )),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "warn  {}:4: PostUp is a wg-quick setting",
            odd.display()
        )),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "fail  {}:6: this [Peer]'s PublicKey is our own public key",
            odd.display()
        )),
        "{t}"
    );
}

#[test]
fn doctor_unresolvable_endpoint_fails_with_the_line() {
    skip_unless_netns!();
    let tmp = TempDir::new();
    let (k, _) = keys();
    let (_, p) = keys();
    let conf = tmp.write(
        "wg0.conf",
        &format!(
            "[Interface]\nPrivateKey = {k}\nAddress = 10.0.0.2/24\n\n[Peer]\nPublicKey = {p}\n\
             Endpoint = no-such-host.invalid:51820\nAllowedIPs = 10.0.0.0/24\n"
        ),
    );
    let b = Wrapguard::under_test();
    // In a namespace with no route out: the lookup fails here, nothing leaves.
    let out = in_netns(&[
        b.bin.as_os_str(),
        OsStr::new("--config"),
        conf.as_os_str(),
        OsStr::new("--doctor"),
    ])
    .output()
    .expect("run");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        t.contains(&format!(
            "fail  {}:5: cannot resolve the Endpoint no-such-host.invalid:51820 of peer",
            conf.display()
        )),
        "{t}"
    );
    assert!(
        t.contains("— check the name and your DNS, or use an IP address"),
        "{t}"
    );
}

#[test]
fn missing_shim_is_reported_by_doctor_self_test_and_launch() {
    let b = Wrapguard::under_test();
    let tmp = TempDir::new();
    let exe = tmp.join("wrapguard");
    std::fs::copy(&b.bin, &exe).expect("copy the binary alone");
    let expected = tmp.join("libwrapguard.so");
    let out = output_retrying(Command::new(&exe).arg("--doctor")).expect("doctor");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        t.contains(&format!("fail  shim {} not found", expected.display())),
        "{t}"
    );
    assert!(t.contains("copy or install them together"), "{t}");

    let (_, two, _) = pair(&tmp);
    let out = output_retrying(Command::new(&exe).args([
        OsStr::new("--config"),
        two.as_os_str(),
        OsStr::new("--self-test"),
    ]))
    .expect("self-test");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        t.contains("fail  libwrapguard.so not found next to the wrapguard binary"),
        "{t}"
    );
    assert!(t.contains("self-test: FAILED"), "{t}");

    // A normal run: one line on stderr, nothing launched.
    let out = output_retrying(Command::new(&exe).args([
        OsStr::new("--config"),
        two.as_os_str(),
        OsStr::new("--"),
        OsStr::new("echo"),
        OsStr::new("LAUNCHED"),
    ]))
    .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("\"level\":\"error\""))
        .collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("keep the two files together"), "{err}");
}

#[test]
fn self_test_passes_against_a_wrapguard_peer_refused_and_connected() {
    skip_unless_netns!();
    let tmp = TempDir::new();
    let (_, _, _) = pair(&tmp);
    // Port 9 is closed on the peer: refused, which proves the path.
    let out = with_peer(
        &tmp,
        "sleep 60",
        None,
        r#""$WG" --config "$DIR/two.conf" --self-test"#,
    );
    let t = text(&out);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        t.contains("ok    tunnel started: address 10.88.0.2/24, 1 peer"),
        "{t}"
    );
    let hs: Vec<&str> = t
        .lines()
        .filter(|l| l.contains("handshake with peer"))
        .collect();
    assert_eq!(hs.len(), 1, "{t}");
    assert!(
        hs[0].starts_with("ok    handshake with peer ") && hs[0].contains(" at 127.0.0.1:51801: "),
        "{t}"
    );
    assert!(hs[0].ends_with(" ms round trip"), "{t}");
    assert!(
        t.contains(
            "ok    intercepted connect to 10.88.0.1:9: refused by the far side through the tunnel"
        ),
        "{t}"
    );
    assert!(t.contains("self-test: passed"), "{t}");
    // The peer really saw our handshake.
    let peer_log = std::fs::read_to_string(tmp.join("one.log")).unwrap_or_default();
    assert!(
        peer_log.contains("handshake initiation received"),
        "{peer_log}"
    );

    // A listening server on the peer: connected, and the program saw our tunnel address.
    let tmp = TempDir::new();
    let _ = pair(&tmp);
    let out = with_peer(
        &tmp,
        "python3 -u -m http.server 8080 --bind 0.0.0.0",
        Some("Serving HTTP"),
        r#""$WG" --config "$DIR/two.conf" --self-test --self-test-connect 10.88.0.1:8080"#,
    );
    let t = text(&out);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        t.contains("ok    intercepted connect to 10.88.0.1:8080: connected through the tunnel (the program saw itself as 10.88.0.2:"),
        "{t}"
    );
    let peer_log = std::fs::read_to_string(tmp.join("one.log")).unwrap_or_default();
    assert!(
        peer_log.contains("tunnel connection accepted"),
        "{peer_log}"
    );
}

#[test]
fn self_test_unreachable_peer_fails_with_a_handshake_timeout() {
    skip_unless_netns!();
    let tmp = TempDir::new();
    let (_, two, pub2) = pair(&tmp);
    let b = Wrapguard::under_test();
    // Nobody listens on 127.0.0.1:51801 in this namespace.
    let started = std::time::Instant::now();
    let out = in_netns(&[
        b.bin.as_os_str(),
        OsStr::new("--config"),
        two.as_os_str(),
        OsStr::new("--self-test"),
        OsStr::new("--self-test-timeout"),
        OsStr::new("2"),
    ])
    .output()
    .expect("run");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        t.contains("at 127.0.0.1:51801: handshake timeout, no answer within 2 s  — check that the peer runs and lists our public key"),
        "{t}"
    );
    assert!(t.contains(&pub2), "our public key in the fix: {t}");
    assert!(
        t.contains("warn  intercepted connection not tried: no peer completed a handshake"),
        "{t}"
    );
    assert!(t.contains("self-test: FAILED (1 of 4 steps failed)"), "{t}");
    // Bounded: well under the default retry schedule (90 s).
    assert!(started.elapsed() < std::time::Duration::from_secs(40));
}

#[test]
fn self_test_broken_config_fails_before_the_tunnel() {
    let tmp = TempDir::new();
    let bad = tmp.write("bad.conf", "[Interface]\nAddress = 10.0.0.2/24\n");
    let out = wrapguard_direct(&[
        OsStr::new("--config"),
        bad.as_os_str(),
        OsStr::new("--self-test"),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(t.contains("ok    shim "), "{t}");
    assert!(
        t.contains(&format!("fail  tunnel did not start: {}:1:", bad.display())),
        "{t}"
    );
    assert!(t.contains("PrivateKey"), "{t}");
    assert!(
        t.contains(&format!("— wrapguard --doctor --config {}", bad.display())),
        "{t}"
    );
}

#[test]
fn sigusr1_logs_a_status_line_per_peer_and_exit_logs_it_at_debug() {
    skip_unless_netns!();
    let tmp = TempDir::new();
    let _ = pair(&tmp);
    let client = r#"
"$WG" --config "$DIR/two.conf" --log-level=debug -- python3 -c '
import socket, sys, time
s = socket.create_connection(("10.88.0.1", 8080), timeout=20)
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
data = s.recv(100)
print("READY", len(data), flush=True)
time.sleep(4)
' >"$DIR/two.out" 2>"$DIR/two.log" &
cli=$!
i=0
until grep -q READY "$DIR/two.out" 2>/dev/null; do
  i=$((i+1)); [ $i -gt 400 ] && { echo "client not ready" >&2; cat "$DIR/two.log" >&2; exit 97; }
  sleep 0.05
done
kill -USR1 $cli
wait $cli
"#;
    let out = with_peer(
        &tmp,
        "python3 -u -m http.server 8080 --bind 0.0.0.0",
        Some("Serving HTTP"),
        client,
    );
    let log = std::fs::read_to_string(tmp.join("two.log")).unwrap_or_default();
    assert!(out.status.success(), "{}\n--- two.log\n{log}", show(&out));
    let info: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"level\":\"info\"") && l.contains("\"message\":\"Status: peer "))
        .collect();
    assert_eq!(info.len(), 1, "{log}");
    let l = info[0];
    for want in [
        "endpoint 127.0.0.1:51801, latest handshake ",
        " seconds ago, transfer ",
        " received, ",
        " sent, 1 active flow\"",
        "\"active_flows\":1",
    ] {
        assert!(l.contains(want), "missing {want:?} in {l}");
    }
    assert!(!l.contains("\"rx_bytes\":0,"), "bytes were received: {l}");
    assert!(
        log.contains("\"message\":\"Status: 1 peer, 1 active flow\""),
        "{log}"
    );
    // At exit, at debug level.
    assert!(
        log.lines().any(|l| l.contains("\"level\":\"debug\"") && l.contains("\"message\":\"Status: peer ")),
        "{log}"
    );
    // The program kept running through the signal (it was not forwarded).
    let cout = std::fs::read_to_string(tmp.join("two.out")).unwrap_or_default();
    assert!(cout.contains("READY"), "{cout}");
    assert!(
        log.contains("\"message\":\"Child exited\",\"code\":0"),
        "{log}"
    );
}

#[test]
fn self_test_against_wireguard_go() {
    skip_unless_ready!();
    let t = OnePeer::new("d");
    let (client, peer, ours_public) = (&t.client, &t.peer, &t.ours.public);
    let conf = t.conf("wg0.conf", Conf::V4);
    let wgb = Wrapguard::under_test().bin.display().to_string();
    let c = conf.display().to_string();
    let out = client.run(&["timeout", "60", &wgb, "--config", &c, "--self-test"]);
    let t = text(&out);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        t.contains(&format!(" at {}: ", peer.endpoint())) && t.contains(" ms round trip"),
        "{t}"
    );
    // wireguard-go's kernel answers port 9 with a reset through the tunnel.
    assert!(
        t.contains(
            "ok    intercepted connect to 10.77.0.1:9: refused by the far side through the tunnel"
        ),
        "{t}"
    );
    // The peer saw our handshake and our tunnel traffic.
    let hs = peer.wg_show("latest-handshakes");
    assert!(hs.contains(ours_public), "{hs}");
    let transfer = peer.wg_show("transfer");
    let rx: u64 = transfer
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(rx > 0, "wireguard-go received nothing from us: {transfer}");
}
