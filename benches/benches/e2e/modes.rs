//! The cost of seccomp mode against shim mode: the same clients (iperf3,
//! curl, the `__rr-client` helper; all dynamically linked, so either mode
//! can carry them) through the same wrapguard config and peer, once with
//! `--mode=preload` and once with `--mode=seccomp`, round-robin so that both
//! see the same machine load. `E2E_ONLY=modes` runs only this section.

use crate::bulk::{self, Sample, Test, TESTS};
use crate::latency;
use crate::measure::uptime;
use crate::table::{self, Stats};
use crate::topology::{Topology, Via};
use std::collections::HashMap;

/// The two modes, shim first.
const MODES: [Via; 2] = [Via::Wrapguard, Via::Seccomp];

/// What the section measured.
pub struct Report {
    bulk: HashMap<(Test, Via), Vec<Sample>>,
    rr: Vec<(Via, Result<[f64; 3], String>)>,
    notes: Vec<String>,
    rounds: usize,
    secs: usize,
    rr_n: usize,
    load: String,
}

/// `rounds` rounds of every bulk test and one latency run of `rr_n`
/// iterations, in both modes.
pub fn run(topo: &Topology, rounds: usize, secs: usize, rr_n: usize) -> Report {
    let mut r = Report {
        bulk: HashMap::new(),
        rr: Vec::new(),
        notes: Vec::new(),
        rounds,
        secs,
        rr_n,
        load: String::new(),
    };
    for round in 1..=rounds {
        eprintln!("e2e modes: bulk round {round}/{rounds} ({})", uptime());
        for test in TESTS {
            for via in MODES {
                match bulk::run_one(topo, test, via, secs) {
                    Ok(s) => {
                        eprintln!(
                            "  {:<22} {:<20} {:>8.1} Mbit/s",
                            test.label(),
                            via.label(),
                            s.mbit
                        );
                        r.bulk.entry((test, via)).or_default().push(s);
                    }
                    Err(e) => {
                        eprintln!("  {:<22} {:<20} FAILED: {e}", test.label(), via.label());
                        r.notes.push(format!(
                            "round {round} {} via {}: {e}",
                            test.label(),
                            via.label()
                        ));
                    }
                }
            }
        }
    }
    eprintln!("e2e modes: {rr_n} connect+RR each ({})", uptime());
    r.rr = MODES
        .into_iter()
        .map(|via| (via, latency::measure(topo, via, rr_n)))
        .collect();
    r.load = uptime();
    r
}

impl Report {
    /// Median throughput (Mbit/s, `cpu`: CPU s/GB) of `test` in mode `via`.
    pub fn median(&self, test: Test, via: Via, cpu: bool) -> Option<f64> {
        self.stats(test, via, cpu).map(|s| s.median)
    }

    /// [p50, p99, mean] µs of connect + request/response in mode `via`.
    pub fn rr(&self, via: Via) -> Option<[f64; 3]> {
        self.rr
            .iter()
            .find(|(v, _)| *v == via)
            .and_then(|(_, r)| r.as_ref().ok().copied())
    }

    /// Peak RSS (MiB) of the wrapguard processes of mode `via`.
    pub fn peak_rss_mib(&self, via: Via) -> Option<f64> {
        TESTS
            .iter()
            .filter_map(|&t| self.bulk.get(&(t, via)))
            .flatten()
            .filter_map(|s| s.peak_rss_kib)
            .max()
            .map(|k| k as f64 / 1024.0)
    }

    fn stats(&self, test: Test, via: Via, cpu: bool) -> Option<Stats> {
        let v: Vec<f64> = self
            .bulk
            .get(&(test, via))?
            .iter()
            .filter_map(|s| if cpu { s.cpu_per_gb } else { Some(s.mbit) })
            .filter(|x| x.is_finite())
            .collect();
        Stats::of(&v)
    }

    /// Prints the bulk and latency tables, seccomp next to shim.
    pub fn print(&self) {
        println!(
            "\n## Seccomp mode vs shim mode: bulk, Mbit/s, median (min–max) of {} rounds, iperf3 -t {}",
            self.rounds, self.secs
        );
        let rows: Vec<Vec<String>> = TESTS
            .iter()
            .map(|&t| {
                let shim = self.stats(t, Via::Wrapguard, false);
                let sec = self.stats(t, Via::Seccomp, false);
                vec![
                    t.label().to_string(),
                    shim.map_or("–".into(), |s| s.show(0)),
                    sec.map_or("–".into(), |s| s.show(0)),
                    table::ratio(sec, shim),
                    self.stats(t, Via::Wrapguard, true)
                        .map_or("–".into(), |s| s.show(2)),
                    self.stats(t, Via::Seccomp, true)
                        .map_or("–".into(), |s| s.show(2)),
                ]
            })
            .collect();
        table::print(
            &[
                "test",
                "shim",
                "seccomp",
                "seccomp / shim",
                "shim CPU s/GB",
                "seccomp CPU s/GB",
            ],
            &rows,
        );
        println!(
            "\n## Seccomp mode vs shim mode: connect() + 1-byte request/response, µs, {} iterations ({})",
            self.rr_n, self.load
        );
        let rows: Vec<Vec<String>> = self
            .rr
            .iter()
            .map(|(via, r)| match r {
                Ok([p50, p99, mean]) => vec![
                    via.label().into(),
                    format!("{p50:.0}"),
                    format!("{p99:.0}"),
                    format!("{mean:.0}"),
                ],
                Err(e) => vec![
                    via.label().into(),
                    format!("FAILED: {e}"),
                    "".into(),
                    "".into(),
                ],
            })
            .collect();
        table::print(&["mode", "p50", "p99", "mean"], &rows);
        if let [(_, Ok(shim)), (_, Ok(sec))] = &self.rr[..] {
            println!(
                "- seccomp / shim: p50 {:.2}×, p99 {:.2}×",
                sec[0] / shim[0],
                sec[1] / shim[1]
            );
        }
        for n in &self.notes {
            println!("- {n}");
        }
    }
}
