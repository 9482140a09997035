//! The proxy front-ends: curl through our SOCKS5 proxy, iperf3 and curl
//! through our TCP forward and through onetun's, against the same client
//! wrapped by wrapguard, round-robin so that one round sees one load.
//!
//! The proxy instance is one `wrapguard --socks5 … --forward …` with no
//! program, in namespace B beside onetun, on a peer of its own
//! ([`Topology::start_proxy`]); its clients run in B unwrapped.

use crate::bulk::{self, Test, TESTS};
use crate::measure::{proc_cpu_secs, uptime};
use crate::table::{self, Stats};
use crate::topology::{Target, Topology, Via, FWD_HTTP, FWD_IPERF, SOCKS_PORT};
use std::collections::HashMap;

/// How a client reaches the servers behind the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Way {
    /// Wrapped by wrapguard (the reference).
    Wrapped,
    /// Through our SOCKS5 proxy (`socks5h://`, curl only).
    Socks5,
    /// Through our `--forward`.
    Forward,
    /// Through onetun's forward.
    Onetun,
}

impl Way {
    fn label(self) -> &'static str {
        match self {
            Way::Wrapped => "wrapped",
            Way::Socks5 => "our SOCKS5",
            Way::Forward => "our forward",
            Way::Onetun => "onetun forward",
        }
    }

    /// Whether `test` can go this way (iperf3 speaks no SOCKS).
    fn carries(self, test: Test) -> bool {
        self != Way::Socks5 || test == Test::Curl
    }
}

const WAYS: [Way; 4] = [Way::Wrapped, Way::Socks5, Way::Forward, Way::Onetun];

/// One measured run: throughput, and CPU s/GB of the process doing the
/// tunnel work (the wrapped client's wrapguard, or the proxy instance).
#[derive(Clone, Copy)]
struct Sample {
    mbit: f64,
    cpu_per_gb: Option<f64>,
}

/// Everything the proxy section measured.
pub struct Report {
    samples: HashMap<(Test, Way), Vec<Sample>>,
    notes: Vec<String>,
    rounds: usize,
}

/// Runs `rounds` rounds of every test every way it can go.
pub fn run(topo: &Topology, rounds: usize, secs: usize) -> Report {
    let mut r = Report {
        samples: HashMap::new(),
        notes: Vec::new(),
        rounds,
    };
    let proxy = match topo.start_proxy() {
        Ok(p) => p,
        Err(e) => {
            r.notes.push(format!("skipped: {e}"));
            return r;
        }
    };
    // The proxy's handshake completes before anything is timed.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let onetun = topo.available(Via::Onetun);
    if let Err(e) = &onetun {
        r.notes.push(format!("onetun: skipped: {e}"));
    }
    let pid = proxy.child.id();
    for round in 1..=rounds {
        eprintln!("e2e proxy: round {round}/{rounds} ({})", uptime());
        for test in TESTS {
            for way in WAYS {
                if !way.carries(test) || (way == Way::Onetun && onetun.is_err()) {
                    continue;
                }
                match run_one(topo, test, way, secs, pid) {
                    Ok(s) => {
                        eprintln!(
                            "  {:<22} {:<16} {:>8.1} Mbit/s",
                            test.label(),
                            way.label(),
                            s.mbit
                        );
                        r.samples.entry((test, way)).or_default().push(s);
                    }
                    Err(e) => {
                        eprintln!("  {:<22} {:<16} FAILED: {e}", test.label(), way.label());
                        r.notes.push(format!(
                            "round {round} {} {}: {e}",
                            test.label(),
                            way.label()
                        ));
                    }
                }
            }
        }
    }
    r.notes.push(format!("after the runs: {}", uptime()));
    r
}

fn run_one(
    topo: &Topology,
    test: Test,
    way: Way,
    secs: usize,
    proxy: u32,
) -> Result<Sample, String> {
    let (target, curl_proxy) = match way {
        Way::Wrapped => return sample(bulk::run_one(topo, test, Via::Wrapguard, secs)),
        Way::Onetun => return sample(bulk::run_one(topo, test, Via::Onetun, secs)),
        Way::Socks5 => (
            topo.target(Via::Wrapguard),
            Some(format!("socks5h://127.0.0.1:{SOCKS_PORT}")),
        ),
        Way::Forward => (
            Target {
                host: "127.0.0.1",
                iperf: FWD_IPERF,
                http: FWD_HTTP,
            },
            None,
        ),
    };
    let before = proc_cpu_secs(proxy).ok_or("proxy instance gone")?;
    let ran = bulk::run_client(
        |a| topo.in_b(a),
        test,
        &target,
        curl_proxy.as_deref(),
        secs,
        bulk::Watch::default(),
    )?;
    let after = proc_cpu_secs(proxy).ok_or("proxy instance gone")?;
    Ok(Sample {
        mbit: ran.mbit,
        cpu_per_gb: Some((after - before) / (ran.bytes / 1e9)),
    })
}

fn sample(s: Result<bulk::Sample, String>) -> Result<Sample, String> {
    s.map(|s| Sample {
        mbit: s.mbit,
        cpu_per_gb: s.cpu_per_gb,
    })
}

impl Report {
    fn stats(&self, test: Test, way: Way, f: impl Fn(&Sample) -> Option<f64>) -> Option<Stats> {
        let v: Vec<f64> = self
            .samples
            .get(&(test, way))?
            .iter()
            .filter_map(f)
            .filter(|x| x.is_finite())
            .collect();
        Stats::of(&v)
    }

    fn mbit(&self, test: Test, way: Way) -> Option<Stats> {
        self.stats(test, way, |s| Some(s.mbit))
    }

    /// Prints the table (Mbit/s, median (min–max) of the rounds).
    pub fn print(&self) {
        println!(
            "\n## Proxy front-ends, Mbit/s: median (min–max) of {} rounds",
            self.rounds
        );
        let mut header = vec!["test"];
        header.extend(WAYS.iter().map(|w| w.label()));
        header.extend([
            "SOCKS5 / wrapped",
            "forward / wrapped",
            "SOCKS5 / onetun",
            "forward / onetun",
            "proxy CPU s/GB",
            "wrapped CPU s/GB",
        ]);
        let rows: Vec<Vec<String>> = TESTS
            .iter()
            .map(|&t| {
                let mut row = vec![t.label().to_string()];
                row.extend(
                    WAYS.iter()
                        .map(|&w| self.mbit(t, w).map_or("–".into(), |s| s.show(0))),
                );
                let (wrapped, onetun) = (self.mbit(t, Way::Wrapped), self.mbit(t, Way::Onetun));
                for ours in [Way::Socks5, Way::Forward] {
                    row.push(table::ratio(self.mbit(t, ours), wrapped));
                }
                for ours in [Way::Socks5, Way::Forward] {
                    row.push(table::ratio(self.mbit(t, ours), onetun));
                }
                let cpu = |w: Way| self.stats(t, w, |s| s.cpu_per_gb);
                let proxy = cpu(Way::Socks5).or(cpu(Way::Forward));
                row.push(proxy.map_or("–".into(), |s| s.show(2)));
                row.push(cpu(Way::Wrapped).map_or("–".into(), |s| s.show(2)));
                row
            })
            .collect();
        table::print(&header, &rows);
        println!("- proxy CPU: the SOCKS5 runs where there are any, else the forward's");
        for n in &self.notes {
            println!("- {n}");
        }
    }
}
