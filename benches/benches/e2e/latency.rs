//! Connect + 1-byte request/response latency: the `__rr-client` helper
//! under wrapguard (namespace B) and on kernel TCP through wireguard-go's
//! TUN (namespace C), against the same `__rr-server` behind the peer.

use crate::measure::uptime;
use crate::table;
use crate::topology::{Topology, Via, RR_PORT};

/// p50/p99/mean in µs per system, or why it failed.
pub struct Report {
    rows: Vec<(Via, Result<[f64; 3], String>)>,
    n: usize,
    load: String,
}

/// Runs `n` iterations through wrapguard and through wireguard-go.
pub fn run(topo: &Topology, n: usize) -> Report {
    eprintln!("e2e latency: {n} connect+RR each ({})", uptime());
    let rows = [Via::Wrapguard, Via::WireguardGo]
        .into_iter()
        .map(|via| (via, measure(topo, via, n)))
        .collect();
    Report {
        rows,
        n,
        load: uptime(),
    }
}

/// `n` connect + 1-byte request/response through `via`: p50, p99 and
/// mean in µs, or why it failed.
pub fn measure(topo: &Topology, via: Via, n: usize) -> Result<[f64; 3], String> {
    let me = topo.me.display().to_string();
    let addr = format!("10.77.0.1:{RR_PORT}");
    let n_s = n.to_string();
    topo.client(via, &["timeout", "600", &me, "__rr-client", &addr, &n_s])
        .output()
        .map_err(|e| e.to_string())
        .and_then(|o| {
            let s = String::from_utf8_lossy(&o.stdout).into_owned();
            parse(&s).ok_or_else(|| {
                format!(
                    "{}: {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                )
            })
        })
}

fn parse(out: &str) -> Option<[f64; 3]> {
    let l = out.lines().find(|l| l.starts_with("RR "))?;
    let v: Vec<f64> = l
        .split_whitespace()
        .skip(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    Some([*v.first()?, *v.get(1)?, *v.get(2)?])
}

impl Report {
    /// [p50, p99, mean] in µs through `via`, if measured.
    pub fn get(&self, via: Via) -> Option<[f64; 3]> {
        self.rows
            .iter()
            .find(|(v, _)| *v == via)
            .and_then(|(_, r)| r.as_ref().ok().copied())
    }

    /// Prints the latency table and the p50 ratio.
    pub fn print(&self) {
        println!(
            "\n## connect() + 1-byte request/response, µs, {} iterations ({})",
            self.n, self.load
        );
        let rows: Vec<Vec<String>> = self
            .rows
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
        table::print(&["system", "p50", "p99", "mean"], &rows);
        if let [(_, Ok(ours)), (_, Ok(theirs))] = &self.rows[..] {
            println!(
                "- p50 ratio wrapguard / wireguard-go: {:.2}× (target ≤ 1.5×)",
                ours[0] / theirs[0]
            );
        }
    }
}
