//! wrapguard against wireguard-go through a seeded fault relay
//! ([`faults::Relay`]): bulk transfers under loss, reordering, duplication
//! and corruption arrive intact (sha256 checked at both ends), and a
//! throughput table is printed. Needs root, wireguard-go, wireguard-tools;
//! prints `SKIPPED:` and passes otherwise.
//!
//! Replay a run with `WRAPGUARD_FAULT_SEED=<n>` (the seed is printed).

mod common;
mod faults;
#[macro_use]
mod wg;

use faults::{Faults, Relay};
use std::sync::atomic::Ordering;
use std::time::Duration;
use wg::{show, wrapguard_limit, Netns, PeerSetup, TempDir, WgPeer, BULK_CLIENT, BULK_SERVER};

/// Bytes each way per run.
const N: usize = 50 * 1000 * 1000;

/// One row of the throughput table.
struct Row {
    loss: f64,
    result: String,
    relay: String,
}

fn seed() -> u64 {
    std::env::var("WRAPGUARD_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0001)
}

/// The faults for one loss level: loss split into drops and a little
/// corruption, plus reordering and duplication at every level.
fn faults_at(loss: f64) -> Faults {
    Faults {
        drop: loss * 0.9,
        corrupt: loss * 0.1,
        duplicate: 0.01,
        reorder: 0.02,
        reorder_delay: Duration::from_millis(3),
        ..Faults::default()
    }
}

/// Runs the bulk client through a fresh relay with `faults`; panics with
/// all logs if the transfer fails or a digest differs.
fn bulk_through_relay(losses: &[f64], n: usize, limit_secs: u32) -> Vec<Row> {
    let tmp = TempDir::new();
    let client = Netns::new("f");
    let ours = wg::keys();
    let peer = WgPeer::new(
        &client,
        &tmp,
        PeerSetup {
            index: 1,
            our_public: &ours.public,
            our_allowed: "10.77.0.2/32",
            our_endpoint: None,
            extra_addrs: &[],
            extra_peer_args: &[],
        },
    );
    let py = common::bins().python.display().to_string();
    let srv_py = tmp.write("bulk_server.py", BULK_SERVER);
    let cli_py = tmp.write("bulk_client.py", BULK_CLIENT);
    let srv_log = tmp.join("bulk.log");
    let n_s = n.to_string();
    let _srv = peer
        .ns
        .spawn(&[&py, &srv_py.display().to_string(), &n_s], &srv_log);
    peer.ns.wait_tcp_listen(9002);
    let upstream = peer.endpoint().parse().expect("peer endpoint");
    let mut rows = Vec::new();
    for (i, &loss) in losses.iter().enumerate() {
        let seed = seed().wrapping_add(i as u64);
        let relay = Relay::start(&client.name, upstream, faults_at(loss), seed);
        let conf = tmp.write(
            &format!("wg{i}.conf"),
            &format!(
                "[Interface]\nPrivateKey = {}\nAddress = 10.77.0.2/24\n\
                 [Peer]\nPublicKey = {}\nEndpoint = {}\nAllowedIPs = 10.77.0.0/24\n",
                ours.private, peer.keys.public, relay.addr
            ),
        );
        let out = wrapguard_limit(
            &client,
            &conf,
            &["--log-level=debug"],
            &[&py, &cli_py.display().to_string(), &n_s],
            limit_secs,
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && stdout.contains("PASS"),
            "loss {loss} seed {seed}: {}\n--- server\n{}\n--- relay {}",
            show(&out),
            std::fs::read_to_string(&srv_log).unwrap_or_default(),
            relay.stats.line()
        );
        // The traffic really went through the relay, which really dropped.
        let st = &relay.stats;
        let min_datagrams = (2 * n / 1500) as u64;
        assert!(
            st.received.load(Ordering::Relaxed) > min_datagrams,
            "relay saw too little: {}",
            st.line()
        );
        if loss > 0.0 {
            assert!(
                st.dropped.load(Ordering::Relaxed) > 0 && st.corrupted.load(Ordering::Relaxed) > 0,
                "{}",
                st.line()
            );
        }
        assert!(
            st.duplicated.load(Ordering::Relaxed) > 0 && st.reordered.load(Ordering::Relaxed) > 0
        );
        rows.push(Row {
            loss,
            result: stdout
                .lines()
                .find(|l| l.starts_with("UP "))
                .unwrap_or("?")
                .to_string(),
            relay: format!("{} (seed {seed})", st.line()),
        });
    }
    print_table(n, &rows);
    rows
}

fn print_table(n: usize, rows: &[Row]) {
    let mut t = format!(
        "\nthroughput through the fault relay, {} MB each way (reorder 2% +3 ms, duplicate 1%, \
         loss = 90% drop + 10% corrupt):\n{:>6} | {}\n",
        n / 1_000_000,
        "loss",
        "result / relay counters"
    );
    for r in rows {
        t += &format!(
            "{:>5.0}% | {}\n       | {}\n",
            r.loss * 100.0,
            r.result,
            r.relay
        );
    }
    println!("{t}");
    eprintln!("{t}");
}

#[test]
fn bulk_50mb_each_way_intact_at_0_1_5_percent_loss_with_reorder_and_duplicates() {
    skip_unless_ready!();
    bulk_through_relay(&[0.0, 0.01, 0.05], N, 900);
}

#[test]
#[ignore = "long: 50 MB each way at 10% loss takes minutes on a loaded 2-core machine; run with --ignored"]
fn bulk_50mb_each_way_intact_at_10_percent_loss_long() {
    skip_unless_ready!();
    bulk_through_relay(&[0.10], N, 1800);
}

/// A transfer that spans several rekeys: we rekey after 1 s (hidden test
/// flag; initiations stay ≥ 5 s apart) while a 1 MB/s bottleneck in the
/// relay stretches 12 MB each way over about 25 s.
#[test]
fn transfer_spans_several_rekeys_with_short_rekey_after_time() {
    skip_unless_ready!();
    let tmp = TempDir::new();
    let client = Netns::new("k");
    let ours = wg::keys();
    let peer = WgPeer::new(
        &client,
        &tmp,
        PeerSetup {
            index: 1,
            our_public: &ours.public,
            our_allowed: "10.77.0.2/32",
            our_endpoint: None,
            extra_addrs: &[],
            extra_peer_args: &[],
        },
    );
    let n = (12 * 1000 * 1000).to_string();
    let py = common::bins().python.display().to_string();
    let srv_py = tmp.write("bulk_server.py", BULK_SERVER);
    let cli_py = tmp.write("bulk_client.py", BULK_CLIENT);
    let srv_log = tmp.join("bulk.log");
    let _srv = peer
        .ns
        .spawn(&[&py, &srv_py.display().to_string(), &n], &srv_log);
    peer.ns.wait_tcp_listen(9002);
    let relay = Relay::start(
        &client.name,
        peer.endpoint().parse().expect("endpoint"),
        Faults {
            rate: Some(1_000_000),
            queue_limit: Some(Duration::from_millis(100)),
            ..Faults::default()
        },
        seed(),
    );
    let conf = tmp.write(
        "wg0.conf",
        &format!(
            "[Interface]\nPrivateKey = {}\nAddress = 10.77.0.2/24\n\
             [Peer]\nPublicKey = {}\nEndpoint = {}\nAllowedIPs = 10.77.0.0/24\n",
            ours.private, peer.keys.public, relay.addr
        ),
    );
    let out = wrapguard_limit(
        &client,
        &conf,
        &["--log-level=debug", "--test-rekey-after-secs=1"],
        &[&py, &cli_py.display().to_string(), &n],
        600,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("PASS"),
        "{}\n--- relay {}",
        show(&out),
        relay.stats.line()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let handshakes = err.matches("handshake complete").count();
    println!(
        "rekey run: {} handshakes; {}; relay {}",
        handshakes,
        stdout.lines().find(|l| l.starts_with("UP ")).unwrap_or("?"),
        relay.stats.line()
    );
    // The first handshake plus at least three rekeys during the transfer.
    assert!(
        handshakes >= 4,
        "only {handshakes} handshakes:\n{}",
        show(&out)
    );
    assert!(err.contains("TEST FLAG: rekeying after 1 s"));
}

/// Waits up to `secs` for `child` to exit.
fn wait_exit(child: &mut std::process::Child, secs: u64) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// The peer's wireguard-go is killed (SIGKILL) in the middle of an upload
/// and started again with the same keys: the new process knows no session
/// and not our endpoint, so we must handshake again on our own; the one
/// long-lived TCP connection survives by retransmission and both digests
/// match.
#[test]
fn peer_restart_mid_transfer_long_lived_connection_completes() {
    skip_unless_ready!();
    let tmp = TempDir::new();
    let client = Netns::new("r");
    let ours = wg::keys();
    let mut peer = WgPeer::new(
        &client,
        &tmp,
        PeerSetup {
            index: 1,
            our_public: &ours.public,
            our_allowed: "10.77.0.2/32",
            our_endpoint: None,
            extra_addrs: &[],
            extra_peer_args: &[],
        },
    );
    let n = (16 * 1000 * 1000).to_string();
    let py = common::bins().python.display().to_string();
    let srv_py = tmp.write("bulk_server.py", BULK_SERVER);
    let cli_py = tmp.write("bulk_client.py", BULK_CLIENT);
    let srv_log = tmp.join("bulk.log");
    let _srv = peer
        .ns
        .spawn(&[&py, &srv_py.display().to_string(), &n], &srv_log);
    peer.ns.wait_tcp_listen(9002);
    // A 2 MB/s bottleneck keeps the upload going long enough to cut it.
    let relay = Relay::start(
        &client.name,
        peer.endpoint().parse().expect("endpoint"),
        Faults {
            rate: Some(2_000_000),
            queue_limit: Some(Duration::from_millis(100)),
            ..Faults::default()
        },
        seed(),
    );
    let conf = tmp.write(
        "wg0.conf",
        &format!(
            "[Interface]\nPrivateKey = {}\nAddress = 10.77.0.2/24\n\
             [Peer]\nPublicKey = {}\nEndpoint = {}\nAllowedIPs = 10.77.0.0/24\n",
            ours.private, peer.keys.public, relay.addr
        ),
    );
    let b = common::bins();
    let log = tmp.join("wrapguard.log");
    let mut run = client.spawn(
        &[
            "timeout",
            "400",
            &b.wrapguard.display().to_string(),
            "--config",
            &conf.display().to_string(),
            "--log-level=debug",
            "--",
            &py,
            &cli_py.display().to_string(),
            &n,
        ],
        &log,
    );
    // Cut once about 4 MB went up.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while relay.stats.forwarded.load(Ordering::Relaxed) < 3000 {
        assert!(
            std::time::Instant::now() < deadline,
            "no traffic: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    peer.kill();
    std::thread::sleep(Duration::from_secs(2));
    peer.start();
    let status = wait_exit(&mut run.child, 420);
    let out = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.is_some_and(|s| s.success()) && out.contains("PASS"),
        "{status:?}\n{out}\n--- server\n{}\n--- relay {}",
        std::fs::read_to_string(&srv_log).unwrap_or_default(),
        relay.stats.line()
    );
    let handshakes = out.matches("handshake complete").count();
    println!(
        "peer restart: {handshakes} handshakes; {}; relay {}",
        out.lines().find(|l| l.starts_with("UP ")).unwrap_or("?"),
        relay.stats.line()
    );
    assert!(
        handshakes >= 2,
        "no new handshake after the restart:\n{out}"
    );
}
