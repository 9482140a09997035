//! Many concurrent connections: the `__hold-client` helper under
//! wrapguard opens and holds connections to the echo server behind the
//! peer, each exchanging data; the wrapguard process's RSS is read idle,
//! at 1,000 and at the full count.

use crate::measure::{rss_kib, uptime};
use crate::table;
use crate::topology::{Topology, Via, ECHO_PORT};
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Instant;

/// RSS figures (KiB) per step.
pub struct Report {
    /// (connections held, VmRSS, VmHWM, seconds to open this step).
    steps: Vec<(usize, u64, u64, f64)>,
    error: Option<String>,
    load: String,
}

/// Holds up to `n` connections through wrapguard.
pub fn run(topo: &Topology, n: usize) -> Report {
    eprintln!("e2e scale: {n} connections ({})", uptime());
    let me = topo.me.display().to_string();
    let addr = format!("10.77.0.1:{ECHO_PORT}");
    let mut steps = vec![1000.min(n), n];
    steps.dedup();
    let step_s: Vec<String> = steps.iter().map(|s| s.to_string()).collect();
    let mut argv = vec!["timeout", "900", me.as_str(), "__hold-client", &addr];
    argv.extend(step_s.iter().map(String::as_str));
    let mut report = Report {
        steps: Vec::new(),
        error: None,
        load: String::new(),
    };
    let mut child = match topo
        .client(Via::Wrapguard, &argv)
        .stdin(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            report.error = Some(format!("spawn: {e}"));
            return report;
        }
    };
    let pid = child.id();
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        report.error = Some("no pipes".into());
        return report;
    };
    let mut t = Instant::now();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let held = match line.split_whitespace().collect::<Vec<_>>()[..] {
            ["READY"] => {
                // Let the engine settle (handshake done, shim connected).
                std::thread::sleep(std::time::Duration::from_secs(1));
                Some(0)
            }
            ["HELD", k] => k.parse().ok(),
            _ => None,
        };
        if let Some(k) = held {
            let secs = t.elapsed().as_secs_f64();
            if let Some((rss, hwm)) = rss_kib(pid) {
                eprintln!("  {k} connections: RSS {rss} KiB, peak {hwm} KiB");
                report.steps.push((k, rss, hwm, secs));
            }
            if stdin.write_all(b"\n").is_err() {
                break;
            }
            t = Instant::now();
        }
    }
    drop(stdin);
    let out = child.wait_with_output();
    report.load = uptime();
    if report.steps.last().map(|s| s.0) != Some(n) {
        let err = out
            .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
            .unwrap_or_else(|e| e.to_string());
        report.error = Some(format!("did not reach {n} connections: {err}"));
    }
    report
}

impl Report {
    /// Idle RSS (MiB) and KiB per held connection beyond idle (from the
    /// peak at the full count), if the section got that far.
    pub fn figures(&self) -> Option<(f64, f64, usize)> {
        let (idle, last) = (self.steps.first()?, self.steps.last()?);
        if last.0 == 0 || self.error.is_some() {
            return None;
        }
        let per = (last.2 as f64 - idle.1 as f64) / last.0 as f64;
        Some((idle.1 as f64 / 1024.0, per, last.0))
    }

    /// Prints the RSS table and the per-connection cost against the targets.
    pub fn print(&self) {
        println!(
            "\n## Concurrent connections through wrapguard: wrapguard RSS ({})",
            self.load
        );
        let rows: Vec<Vec<String>> = self
            .steps
            .iter()
            .map(|&(k, rss, hwm, secs)| {
                vec![
                    k.to_string(),
                    format!("{:.1}", rss as f64 / 1024.0),
                    format!("{:.1}", hwm as f64 / 1024.0),
                    if k == 0 {
                        "–".into()
                    } else {
                        format!("{secs:.1}")
                    },
                ]
            })
            .collect();
        table::print(
            &[
                "connections held",
                "RSS MiB",
                "peak RSS MiB",
                "seconds to open",
            ],
            &rows,
        );
        if let (Some(idle), Some(last)) = (self.steps.first(), self.steps.last()) {
            if last.0 > 0 {
                let per = (last.2 as f64 - idle.1 as f64) / last.0 as f64;
                println!(
                    "- idle {:.1} MiB (target ≤ 20); {:.1} KiB per connection beyond idle (target ≤ 16)",
                    idle.1 as f64 / 1024.0,
                    per
                );
            }
        }
        if let Some(e) = &self.error {
            println!("- FAILED: {e}");
        }
    }
}
