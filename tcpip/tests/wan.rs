//! The sender on internet paths, on a virtual clock (see `path`): a
//! bottleneck with a queue, delay and random loss. Deterministic from the
//! seed; the figures say what fraction of the bottleneck a bulk transfer
//! gets.

mod path;

use path::{show, Fate, Link, Pair};
use std::time::Duration;
use tcpip::tcp::congestion::Algorithm;
use tcpip::TcpConfig;

/// The profiles of the WAN bench: (name, one-way ms, loss, Mbit/s, queue in BDPs).
const PROFILES: [(&str, u64, f64, u64, f64); 8] = [
    ("20ms 0% 200M", 20, 0.0, 200, 1.0),
    ("50ms 0% 400M", 50, 0.0, 400, 1.0),
    ("25ms 0.1% 100M", 25, 0.001, 100, 1.0),
    ("5ms 1% 200M", 5, 0.01, 200, 1.0),
    ("20ms 0.5% 200M", 20, 0.005, 200, 1.0),
    ("100ms 0.05% 100M", 100, 0.0005, 100, 1.0),
    ("10ms 2% 100M", 10, 0.02, 100, 1.0),
    ("20ms 0% 100M bloat", 20, 0.0, 100, 8.0),
];

fn engine_tcp(alg: Algorithm) -> TcpConfig {
    TcpConfig {
        congestion: alg,
        tx_buffer: std::env::var("WAN_BUF")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(TcpConfig::default().tx_buffer),
        rx_buffer: std::env::var("WAN_BUF")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(TcpConfig::default().rx_buffer),
        ..TcpConfig::default()
    }
}

/// Prints every profile (run with `--ignored --nocapture`).
#[test]
#[ignore]
fn wan_profiles_report() {
    let secs: f64 = std::env::var("WAN_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0);
    let algs: Vec<Algorithm> = match std::env::var("WAN_CC").as_deref() {
        Ok(n) => n.split(',').filter_map(Algorithm::from_name).collect(),
        Err(_) => vec![Algorithm::Cubic, Algorithm::Bbr],
    };
    let only = std::env::var("WAN_ONLY").ok();
    for (name, d, loss, mbit, q) in PROFILES {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let link = Link::profile(d, loss, mbit, q);
        for &alg in &algs {
            let started = std::time::Instant::now();
            let r = Pair::new(link, engine_tcp(alg), 42).bulk(secs);
            let label = format!("{name} {}", alg.name());
            println!("{}  [{:?}]", show(&label, &link, &r), started.elapsed());
        }
    }
    let _ = Duration::ZERO;
}

fn run(link: Link, alg: Algorithm, secs: f64) -> path::Run {
    Pair::new(link, engine_tcp(alg), 42).bulk(secs)
}

/// `fate` for the `n`-th data packet A sends (from 1), the others pass.
fn nth_data(n: u64, fate: Fate) -> impl FnMut(u64, &[u8]) -> Fate {
    let mut data = 0u64;
    move |_, p| {
        // A packet of TCP data: an IPv4 packet longer than its headers.
        if p.len() > 100 {
            data += 1;
            if data == n {
                return fate;
            }
        }
        Fate::Pass
    }
}

#[test]
fn one_loss_in_a_large_flight_is_repaired_by_fast_recovery_not_a_timeout() {
    // 20 ms each way, 100 Mbit/s, a deep queue: only the one drop.
    let link = Link::profile(20, 0.0, 100, 4.0);
    let r = Pair::new(link, engine_tcp(Algorithm::Cubic), 7)
        .with_fate(nth_data(400, Fate::Drop))
        .bulk(3.0);
    assert_eq!(r.info.rto_count, 0, "{r:?}");
    assert_eq!(r.info.recoveries, 1, "{r:?}");
    assert!(r.info.retransmits <= 2, "{r:?}");
    assert!(r.mbit > 40.0, "{r:?}");
}

#[test]
fn cubic_leaves_recovery_with_beta_times_the_window_it_lost_at() {
    let link = Link::profile(20, 0.0, 100, 4.0);
    let mut before = 0usize;
    let mut after = None;
    let r = Pair::new(link, engine_tcp(Algorithm::Cubic), 7)
        .with_fate(nth_data(400, Fate::Drop))
        .bulk_observed(2.0, |_, i| {
            if i.recoveries == 0 {
                before = before.max(i.cwnd);
            } else if after.is_none() {
                after = Some(i.ssthresh);
            }
        });
    let ssthresh = after.expect("a recovery") as f64;
    let ratio = ssthresh / before as f64;
    // β = 0.7 of the window when the loss was found (which may have grown
    // a little past the last window seen before it).
    assert!((0.6..=0.75).contains(&ratio), "{ratio}: {r:?}");
    assert!(r.info.cwnd >= after.unwrap_or(0), "{r:?}");
}

#[test]
fn a_reordered_segment_taken_for_lost_is_undone_by_its_dsack() {
    // One segment arrives 30 ms late: RACK's reordering window (a
    // quarter of the 40 ms RTT) is past, so it is retransmitted; the
    // original then arrives, the peer reports the duplicate (DSACK), and
    // the window reduction is undone.
    // No bottleneck (nothing else is lost), 20 ms each way.
    let link = Link {
        delay: Duration::from_millis(20),
        rate: 0,
        queue: 0,
        loss: 0.0,
    };
    let r = Pair::new(link, engine_tcp(Algorithm::Cubic), 7)
        .with_fate(nth_data(200, Fate::Delay(Duration::from_millis(30))))
        .bulk(0.5);
    assert_eq!(r.info.retransmits, 1, "{r:?}");
    assert_eq!(r.info.recoveries, 1, "{r:?}");
    assert_eq!(
        r.info.ssthresh,
        usize::MAX,
        "undone: still in slow start: {r:?}"
    );
    assert_eq!(r.info.rto_count, 0, "{r:?}");
}

#[test]
fn slow_start_reaches_the_bandwidth_delay_product_in_a_few_round_trips() {
    // BDP 500 kB (365 segments): from 10 segments, about five doublings
    // (one per round trip: ABC with L = 2 against an ACK every second
    // segment).
    let link = Link::profile(20, 0.0, 100, 8.0);
    let bdp = 100_000_000 / 8 * 40 / 1000;
    let mut reached = None;
    Pair::new(link, engine_tcp(Algorithm::Cubic), 7).bulk_observed(2.0, |t, i| {
        if reached.is_none() && i.cwnd >= bdp {
            reached = Some(t);
        }
    });
    let t = reached.expect("cwnd reached the BDP");
    let rtts = t.as_secs_f64() / 0.040;
    // log2(36.5) ≈ 5.2 doublings, plus the handshake's round trip and
    // what pacing and the growing queue add: nine at most.
    assert!(rtts <= 9.0, "{rtts:.1} round trips ({t:?})");
}

#[test]
fn bbr_holds_the_bottleneck_rate_through_random_loss() {
    for (d, loss, mbit) in [(5, 0.01, 200), (10, 0.02, 100), (20, 0.005, 200)] {
        let link = Link::profile(d, loss, mbit, 1.0);
        let r = run(link, Algorithm::Bbr, 4.0);
        let share = r.mbit / mbit as f64;
        assert!(share >= 0.8, "{d} ms {loss}: {}", show("bbr", &link, &r));
        assert_eq!(r.info.rto_count, 0, "{}", show("bbr", &link, &r));
    }
}

#[test]
fn cubic_fills_a_clean_path_and_bbr_keeps_a_bloated_queue_short() {
    let link = Link::profile(20, 0.0, 200, 1.0);
    let r = run(link, Algorithm::Cubic, 4.0);
    assert!(r.mbit >= 0.85 * 200.0, "{}", show("cubic", &link, &r));
    // A queue of 8 BDPs: CUBIC grows into it (HyStart leaves slow start
    // when the queue starts to build, and CUBIC's probing fills it over
    // the following seconds); BBR, after its start-up, keeps the RTT near
    // the path's 40 ms at the same rate.
    let bloat = Link::profile(20, 0.0, 100, 8.0);
    let b = run(bloat, Algorithm::Bbr, 4.0);
    assert!(b.mbit >= 0.85 * 100.0, "{}", show("bbr", &bloat, &b));
    assert!(
        b.info.srtt < Duration::from_millis(60),
        "{}",
        show("bbr", &bloat, &b)
    );
    let c = run(bloat, Algorithm::Cubic, 4.0);
    assert!(
        c.info.srtt > b.info.srtt + Duration::from_millis(20),
        "{}\n{}",
        show("cubic", &bloat, &c),
        show("bbr", &bloat, &b)
    );
}

#[test]
fn hystart_ends_slow_start_before_a_loss_does() {
    // 40 ms round trip, 200 Mbit/s, a queue of one BDP (1 MB, 730
    // segments). Slow start without HyStart doubles until the queue
    // overflows; with it, the ACK train of the first round that starts
    // above the BDP ends slow start one RTT in, at up to three BDPs (as
    // Linux's does), before any loss is seen.
    let link = Link::profile(20, 0.0, 200, 1.0);
    let bdp = 200_000_000 / 8 * 40 / 1000;
    let mut left_at = None;
    let r = Pair::new(link, engine_tcp(Algorithm::Cubic), 7).bulk_observed(2.0, |_, i| {
        if left_at.is_none() && i.ssthresh != usize::MAX {
            left_at = Some((i.cwnd, i.recoveries));
        }
    });
    let (cwnd, recoveries) = left_at.expect("slow start ended");
    assert_eq!(recoveries, 0, "ended by HyStart, not a loss: {r:?}");
    assert!(
        (bdp..=3 * bdp).contains(&cwnd),
        "left at {cwnd} B, BDP {bdp}: {}",
        show("cubic", &link, &r)
    );
    assert_eq!(r.info.rto_count, 0, "{}", show("cubic", &link, &r));
    assert!(r.mbit > 150.0, "{}", show("cubic", &link, &r));
}

/// Two flows of `alg` through one bottleneck, the second starting
/// `stagger` seconds after the first: what each got from 20 s to 60 s.
fn two_flows(alg: Algorithm, link: Link, stagger: f64) -> path::Share {
    Pair::new(link, engine_tcp(alg), 11).shared(&[0.0, stagger], 60.0, 20.0)
}

/// Asserts each flow got `lo..=1 − lo` of what both got, and both
/// together at least 80% of the bottleneck.
fn assert_shares(name: &str, link: &Link, sh: &path::Share, lo: f64) {
    let f = sh.fractions();
    let total: f64 = sh.mbit().iter().sum();
    let cap = link.rate as f64 / 1e6;
    let msg = format!(
        "{name}: shares {f:.3?}, Mbit/s {:.1?} of {cap}, cwnd {:?}",
        sh.mbit(),
        sh.info.iter().map(|i| i.cwnd).collect::<Vec<_>>()
    );
    println!("{msg}");
    assert!(f.iter().all(|s| (lo..=1.0 - lo).contains(s)), "{msg}");
    assert!(total >= 0.8 * cap, "{msg}");
}

const FAIRNESS_PATHS: [(u64, f64, u64, f64); 2] = [(20, 0.0, 100, 1.0), (10, 0.0, 200, 2.0)];

#[test]
fn two_bbr_flows_share_a_bottleneck_evenly() {
    // 50 ± 15% each, the second starting two seconds late.
    for (d, loss, mbit, q) in FAIRNESS_PATHS {
        let link = Link::profile(d, loss, mbit, q);
        assert_shares("bbr", &link, &two_flows(Algorithm::Bbr, link, 2.0), 0.35);
    }
}

#[test]
fn two_cubic_flows_both_get_a_fair_part_of_a_bottleneck() {
    // On this drop-tail model CUBIC converges slowly: 60/40 to 70/30
    // over 40 s for most seeds, whether the flows start together or not
    // (and with HyStart off as well). What is asserted is that neither
    // is starved: at least a quarter each.
    for (d, loss, mbit, q) in FAIRNESS_PATHS {
        let link = Link::profile(d, loss, mbit, q);
        for stagger in [0.1, 2.0] {
            let sh = two_flows(Algorithm::Cubic, link, stagger);
            assert_shares("cubic", &link, &sh, 0.25);
        }
    }
}
