//! A diagnostic, not a check (ignored): an iperf3 upload through the fault
//! relay with `status --flows` sampled every half second, to see what holds
//! the sender back on a long path. `cargo test -p wrapguard --test
//! wan_probe -- --ignored --nocapture` (WAN_CC, WAN_DELAY_MS, WAN_MBIT,
//! WAN_LOSS pick the path).

use std::time::Duration;
use wrapguard_testnet::{skip_unless_ready, Conf, Endpoint, Faults, OnePeer, Relay, Wrapguard};

fn env<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

#[test]
#[ignore]
fn upload_with_flow_samples() {
    skip_unless_ready!();
    let t = OnePeer::new("wp");
    let _srv = t.peer.ns.spawn(
        &["iperf3", "-s", "-1", "-p", "5300"],
        &t.tmp.join("iperf.log"),
    );
    t.peer.ns.wait_tcp_listen(5300);
    let d: u64 = env("WAN_DELAY_MS", 20);
    let mbit: u64 = env("WAN_MBIT", 200);
    let faults = Faults {
        drop: env("WAN_LOSS", 0.0),
        delay: Duration::from_millis(d),
        rate: Some(mbit * 1_000_000 / 8),
        queue_limit: Some(Duration::from_millis(2 * d)),
        ..Faults::default()
    };
    let relay = Relay::start(
        &t.client.name,
        t.peer.endpoint().parse().expect("endpoint"),
        faults,
        7,
    );
    let at = relay.addr.to_string();
    let conf = t.conf(
        "wg0.conf",
        Conf {
            endpoint: Endpoint::At(&at),
            ..Conf::V4
        },
    );
    let bin = Wrapguard::under_test().bin.display().to_string();
    let cc = format!("--tcp-congestion={}", env("WAN_CC", "cubic".to_string()));
    let c = conf.display().to_string();
    let mut run = t.client.spawn(
        &[
            &bin,
            "--config",
            &c,
            &cc,
            "--",
            "iperf3",
            "-c",
            "10.77.0.1",
            "-p",
            "5300",
            "-t",
            "8",
        ],
        &t.tmp.join("run.log"),
    );
    for i in 0..18 {
        std::thread::sleep(Duration::from_millis(500));
        if i == 14 {
            let o = t.client.run(&[&bin, "status", "--json"]);
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
            for tun in v.as_array().into_iter().flatten() {
                println!("counters: {}", tun["counters_line"]);
            }
        }
        let o = t.client.run(&[&bin, "status", "--flows", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        for tun in v.as_array().into_iter().flatten() {
            for f in tun["flows"].as_array().into_iter().flatten() {
                if f["bytes_up"].as_u64().unwrap_or(0) < 1_000_000 {
                    continue;
                }
                println!(
                    "cwnd {:>9} ssthresh {:>9} srtt {:>6}us inflight {:>9} retrans {:>5} rto {:>2} recov {:>3} rate {:>6.1}Mb limit {} up {}",
                    f["cwnd"], f["ssthresh"], f["srtt_us"], f["in_flight"], f["retransmits"],
                    f["rto_count"], f["recoveries"],
                    f["delivery_rate"].as_f64().unwrap_or(0.0) * 8e-6, f["limited_by"], f["bytes_up"]
                );
            }
        }
    }
    let o = t.client.run(&[&bin, "status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    for tun in v.as_array().into_iter().flatten() {
        println!("counters: {}", tun["counters_line"]);
    }
    run.terminate();
    println!(
        "{}",
        std::fs::read_to_string(t.tmp.join("run.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("sender") || l.contains("receiver"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!("relay: {}", relay.stats.line());
    for ns in [&t.peer.ns, &t.client] {
        let o = ns.run(&[
            "nstat",
            "-az",
            "UdpRcvbufErrors",
            "UdpInErrors",
            "Udp6RcvbufErrors",
            "TcpExtTCPDSACKOldSent",
            "TcpExtTCPDSACKOfoSent",
            "TcpExtTCPOFOQueue",
            "UdpSndbufErrors",
            "TcpExtTCPRcvQDrop",
            "TcpExtTCPOFODrop",
        ]);
        println!("nstat {}:\n{}", ns.name, String::from_utf8_lossy(&o.stdout));
    }
}
