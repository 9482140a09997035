//! UDP at a fixed offered rate: `iperf3 -u -b 300M` (`E2E_UDP_RATE`)
//! through wrapguard and through wireguard-go with the kernel's UDP,
//! round-robin. iperf3 sizes its datagrams from the control connection's
//! `TCP_MAXSEG`, so the datagram size is part of what is compared (it was
//! 536 under wrapguard, 1368 under the kernel, until the shim asked the
//! engine). `E2E_ONLY=udp` runs only this section.

use crate::measure::uptime;
use crate::table::{self, Stats};
use crate::topology::{Topology, Via};
use std::collections::HashMap;

const VIAS: [Via; 2] = [Via::Wrapguard, Via::WireguardGo];

/// One run's receiver-side figures.
#[derive(Clone, Copy)]
struct Sample {
    mbit: f64,
    lost_percent: f64,
    blksize: f64,
}

/// What the section measured.
pub struct Report {
    samples: HashMap<Via, Vec<Sample>>,
    notes: Vec<String>,
    rounds: usize,
    secs: usize,
    rate: String,
}

/// `rounds` rounds of `iperf3 -u -b <rate> -t <secs>` through each system.
pub fn run(topo: &Topology, rounds: usize, secs: usize) -> Report {
    let rate = std::env::var("E2E_UDP_RATE").unwrap_or_else(|_| "300M".into());
    let mut r = Report {
        samples: HashMap::new(),
        notes: Vec::new(),
        rounds,
        secs,
        rate,
    };
    for round in 1..=rounds {
        eprintln!("e2e udp: round {round}/{rounds} ({})", uptime());
        for via in VIAS.into_iter().filter(|v| topo.available(*v).is_ok()) {
            match run_one(topo, via, secs, &r.rate) {
                Ok(s) => {
                    eprintln!(
                        "  {:<20} {:>8.1} Mbit/s, {:.2}% lost, {} B datagrams",
                        via.label(),
                        s.mbit,
                        s.lost_percent,
                        s.blksize
                    );
                    r.samples.entry(via).or_default().push(s);
                }
                Err(e) => {
                    eprintln!("  {:<20} FAILED: {e}", via.label());
                    r.notes
                        .push(format!("round {round} via {}: {e}", via.label()));
                }
            }
        }
    }
    r.notes.push(format!("after the runs: {}", uptime()));
    r
}

fn run_one(topo: &Topology, via: Via, secs: usize, rate: &str) -> Result<Sample, String> {
    let t = topo.target(via);
    let port = t.iperf.to_string();
    let secs = secs.to_string();
    let argv = [
        "timeout", "120", "iperf3", "-u", "-b", rate, "-c", t.host, "-p", &port, "-t", &secs, "-J",
    ];
    let out = topo
        .client(via, &argv)
        .output()
        .map_err(|e| format!("spawn: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("iperf3 JSON: {e}"))?;
    if let Some(e) = v.get("error") {
        return Err(format!("iperf3: {e}"));
    }
    // The receiver's view: sum_received in iperf3 ≥ 3.13, else sum.
    let end = &v["end"];
    let sum = if end["sum_received"].is_object() {
        &end["sum_received"]
    } else {
        &end["sum"]
    };
    let lost = end["sum"]["lost_percent"].as_f64();
    match (
        sum["bits_per_second"].as_f64(),
        lost,
        v["start"]["test_start"]["blksize"].as_f64(),
    ) {
        (Some(bps), Some(lost_percent), Some(blksize)) => Ok(Sample {
            mbit: bps / 1e6,
            lost_percent,
            blksize,
        }),
        _ => Err("iperf3 -u JSON without end.sum".into()),
    }
}

impl Report {
    fn stats(&self, via: Via, f: impl Fn(&Sample) -> f64) -> Option<Stats> {
        let v: Vec<f64> = self.samples.get(&via)?.iter().map(f).collect();
        Stats::of(&v)
    }

    /// Prints the table: median (min–max) of the rounds.
    pub fn print(&self) {
        println!(
            "\n## UDP, iperf3 -u -b {} -t {}: median (min–max) of {} rounds",
            self.rate, self.secs, self.rounds
        );
        let header = ["system", "received Mbit/s", "lost %", "datagram bytes"];
        let rows: Vec<Vec<String>> = VIAS
            .iter()
            .map(|&v| {
                let cell =
                    |f: fn(&Sample) -> f64, p| self.stats(v, f).map_or("–".into(), |s| s.show(p));
                vec![
                    v.label().to_string(),
                    cell(|s| s.mbit, 1),
                    cell(|s| s.lost_percent, 2),
                    cell(|s| s.blksize, 0),
                ]
            })
            .collect();
        table::print(&header, &rows);
        let loss = |v| self.stats(v, |s| s.lost_percent);
        println!(
            "- loss, wrapguard / wg-go: {}",
            table::ratio(loss(Via::Wrapguard), loss(Via::WireguardGo))
        );
        for n in &self.notes {
            println!("- {n}");
        }
    }
}
