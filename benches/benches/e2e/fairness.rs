//! Sharing a bottleneck, through the testnet fault relay (see `wan`): two
//! flows of one system (`iperf3 -P 2`) and the share each gets, and the
//! queueing delay an upload adds (ping through the tunnel while it runs,
//! against ping on the idle path), for wrapguard in B and for the kernel
//! reference in C, with CUBIC and with BBR; then one wrapguard flow
//! against one kernel flow through one relay in C (wrapguard there with
//! B's key and 10.77.0.2, beside the kernel's 10.77.0.3), same control on
//! both. `E2E_ONLY=fair` runs only
//! this section; `E2E_FAIR_SECS` (default 20) is the iperf3 time,
//! `E2E_FAIR_ONLY=substring` picks profiles, `E2E_FAIR_VERSUS=only`
//! runs only the wrapguard-against-kernel part, `E2E_FAIR_CC=cubic` one
//! control.

use crate::measure::uptime;
use crate::topology::Topology;
use crate::wan::{
    faults, iperf_argv, mbit, one_off_server, relay_for_wrapguard, wrapguard_cmd, KernelRelay,
};
use std::process::{Command, Stdio};
use wrapguard_testnet::{conf_text, PeerSection};

/// (name, one-way delay ms, loss, Mbit/s, queue in BDPs).
const PROFILES: [(&str, u64, f64, u64, f64); 2] = [
    ("20 ms, 0%, 100M", 20, 0.0, 100, 1.0),
    ("20 ms, 0%, 100M, 8×BDP queue", 20, 0.0, 100, 8.0),
];

const CCS: [&str; 2] = ["cubic", "bbr"];

/// The controls `E2E_FAIR_CC` picks (all by default).
fn ccs() -> Vec<&'static str> {
    let pick = std::env::var("E2E_FAIR_CC").unwrap_or_default();
    CCS.into_iter()
        .filter(|c| pick.is_empty() || pick.split(',').any(|p| p.trim() == *c))
        .collect()
}

/// Ping's interval and count under load.
const PINGS: &str = "25";
const PING_GAP: &str = "0.2";

/// One system and control on one profile.
struct Cell {
    who: String,
    /// Receiver Mbit/s of the two streams of `iperf3 -P 2`.
    streams: Result<Vec<f64>, String>,
    /// Median ping RTT in ms: idle, then during an upload.
    idle_ms: Result<f64, String>,
    loaded_ms: Result<f64, String>,
}

struct Row {
    name: &'static str,
    cells: Vec<Cell>,
    versus: Vec<Versus>,
}

/// Wrapguard's flow and the kernel's sharing one relay, one control.
struct Versus {
    cc: &'static str,
    /// Whether wrapguard's flow started first.
    ours_first: bool,
    ours: Result<f64, String>,
    kernel: Result<f64, String>,
}

/// What the section measured.
pub struct Report {
    rows: Vec<Row>,
    secs: u64,
    notes: Vec<String>,
}

/// iperf3 `-J` → each stream's receiver Mbit/s.
fn stream_mbit(out: &std::process::Output) -> Result<Vec<f64>, String> {
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("iperf3 JSON: {e}"))?;
    if let Some(e) = v.get("error") {
        return Err(format!("iperf3: {e}"));
    }
    let streams = v["end"]["streams"]
        .as_array()
        .ok_or("no end.streams")?
        .iter()
        .filter_map(|s| s["receiver"]["bits_per_second"].as_f64())
        .map(|b| b / 1e6)
        .collect::<Vec<_>>();
    if streams.len() == 2 {
        Ok(streams)
    } else {
        Err(format!("{} streams", streams.len()))
    }
}

/// `ping` output → the median of its `time=` values, in ms.
fn median_ping(out: &std::process::Output) -> Result<f64, String> {
    let text = String::from_utf8_lossy(&out.stdout);
    let mut t: Vec<f64> = text
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("time="))
        .filter_map(|v| v.parse().ok())
        .collect();
    if t.is_empty() {
        return Err(format!(
            "no replies: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    t.sort_by(f64::total_cmp);
    Ok(t[t.len() / 2])
}

fn output(mut c: Command) -> Result<std::process::Output, String> {
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| e.to_string())
}

/// Runs one system's measurements: `wrap` turns an argv into the command
/// that runs it through that system.
fn measure(
    topo: &Topology,
    next_port: &std::cell::Cell<u16>,
    secs: &str,
    cc: &str,
    who: String,
    wrap: &dyn Fn(&[&str]) -> Command,
) -> Cell {
    next_port.set(next_port.get() + 1);
    let port = next_port.get().to_string();
    let streams = {
        let _srv = one_off_server(topo, next_port.get());
        let mut argv = iperf_argv(secs, &port, cc, false);
        argv.extend(["-P", "2"]);
        output(wrap(&argv)).and_then(|o| stream_mbit(&o))
    };
    let ping = ["ping", "-n", "-c", "10", "-i", PING_GAP, "10.77.0.1"];
    let idle_ms = output(wrap(&ping)).and_then(|o| median_ping(&o));
    next_port.set(next_port.get() + 1);
    let port = next_port.get().to_string();
    let loaded_ms = {
        let _srv = one_off_server(topo, next_port.get());
        let upload = iperf_argv(secs, &port, cc, false).join(" ");
        // The upload in the background; ping from its third second on;
        // with E2E_FAIR_SS set, the kernel's view of the flows after it.
        let ss = if std::env::var_os("E2E_FAIR_SS").is_some() {
            "ss -tin dst 10.77.0.1 >&2;"
        } else {
            ""
        };
        let script = format!(
            "{upload} >/dev/null 2>&1 & up=$!; sleep 3; \
             ping -n -c {PINGS} -i {PING_GAP} 10.77.0.1; {ss} \
             wait $up; echo upload-exit=$?"
        );
        output(wrap(&["sh", "-c", &script])).and_then(|o| {
            if !ss.is_empty() {
                eprintln!("{}", String::from_utf8_lossy(&o.stderr));
            }
            if !String::from_utf8_lossy(&o.stdout).contains("upload-exit=0") {
                return Err("the upload under the pings failed".into());
            }
            median_ping(&o)
        })
    };
    eprintln!("  {who:<16} streams {streams:.1?} ping idle {idle_ms:.1?} loaded {loaded_ms:.1?}");
    Cell {
        who,
        streams,
        idle_ms,
        loaded_ms,
    }
}

/// How long the first flow of [`versus`] runs alone. It covers
/// wrapguard's start (engine, handshake, iperf3's control connection), so
/// the flow started first is first on the link either way.
const HEAD_START: std::time::Duration = std::time::Duration::from_millis(1500);

/// One upload of wrapguard (in C, `conf`) and one of the kernel (in C)
/// through the relay both use, control `cc` on both, the one `ours_first`
/// says started [`HEAD_START`] before the other: (wrapguard's Mbit/s, the
/// kernel's).
fn versus(
    topo: &Topology,
    next_port: &std::cell::Cell<u16>,
    secs: &str,
    cc: &str,
    conf: &std::path::Path,
    ours_first: bool,
) -> (Result<f64, String>, Result<f64, String>) {
    let p1 = next_port.get() + 1;
    let p2 = next_port.get() + 2;
    next_port.set(p2);
    let (s1, s2) = (p1.to_string(), p2.to_string());
    let _srv1 = one_off_server(topo, p1);
    let _srv2 = one_off_server(topo, p2);
    let spawn = |mut c: Command| {
        c.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())
    };
    let ours = wrapguard_cmd(topo, &topo.c, conf, cc, &iperf_argv(secs, &s1, cc, false));
    let kernel = topo.c.cmd(&iperf_argv(secs, &s2, cc, false));
    let (ours, kernel) = if ours_first {
        let o = spawn(ours);
        std::thread::sleep(HEAD_START);
        (o, spawn(kernel))
    } else {
        let k = spawn(kernel);
        std::thread::sleep(HEAD_START);
        (spawn(ours), k)
    };
    let done = |c: Result<std::process::Child, String>| {
        c.and_then(|c| c.wait_with_output().map_err(|e| e.to_string()))
            .and_then(|o| mbit(&o))
    };
    (done(ours), done(kernel))
}

/// Runs every profile.
pub fn run(topo: &Topology, secs: u64) -> Report {
    let secs_s = secs.to_string();
    let mut rep = Report {
        rows: Vec::new(),
        secs,
        notes: Vec::new(),
    };
    let next_port = std::cell::Cell::new(5600u16);
    let only = std::env::var("E2E_FAIR_ONLY").ok();
    let versus_only = std::env::var("E2E_FAIR_VERSUS").is_ok_and(|v| v == "only");
    for (i, &(name, d, loss, rate, q)) in PROFILES.iter().enumerate() {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        eprintln!("e2e fair: {name} ({})", uptime());
        let f = faults(d, loss, rate, q);
        let mut row = Row {
            name,
            cells: Vec::new(),
            versus: Vec::new(),
        };
        let (relay, conf) =
            relay_for_wrapguard(topo, f, 0xfa1 + i as u64, &format!("fair-{i}.conf"));
        for cc in ccs().into_iter().filter(|_| !versus_only) {
            let wrap = |argv: &[&str]| wrapguard_cmd(topo, &topo.one.client, &conf, cc, argv);
            let cell = measure(
                topo,
                &next_port,
                &secs_s,
                cc,
                format!("wrapguard {cc}"),
                &wrap,
            );
            row.cells.push(cell);
        }
        rep.notes.push(format!(
            "{name}: relay for wrapguard: {}",
            relay.stats.line()
        ));
        drop(relay);
        let kernel = KernelRelay::start(topo, f, 0xfb1 + i as u64);
        let at = kernel.relay.addr.to_string();
        let peer = &topo.one.peer.keys.public;
        for cc in ccs().into_iter().filter(|_| !versus_only) {
            let wrap = |argv: &[&str]| topo.c.cmd(argv);
            let cell = measure(topo, &next_port, &secs_s, cc, format!("kernel {cc}"), &wrap);
            row.cells.push(cell);
        }
        rep.notes.push(format!(
            "{name}: relay for the kernel: {}",
            kernel.relay.stats.line()
        ));
        // Ours against the kernel's, both in C through this one relay.
        let conf = topo.one.tmp.write(
            &format!("fair-versus-{i}.conf"),
            &conf_text(
                &topo.one.ours.private,
                "10.77.0.2/24",
                "",
                &[PeerSection {
                    public_key: peer,
                    endpoint: Some(&at),
                    allowed_ips: "10.77.0.0/24",
                    extra: "",
                }],
            ),
        );
        for cc in ccs() {
            for ours_first in [true, false] {
                let (ours, kernel) = versus(topo, &next_port, &secs_s, cc, &conf, ours_first);
                eprintln!(
                    "  versus {cc:<5} first {} wrapguard {ours:.1?} kernel {kernel:.1?}",
                    if ours_first { "wrapguard" } else { "kernel" }
                );
                row.versus.push(Versus {
                    cc,
                    ours_first,
                    ours,
                    kernel,
                });
            }
        }
        rep.notes.push(format!(
            "{name}: relay shared by wrapguard and the kernel (from its start): {}",
            kernel.relay.stats.line()
        ));
        drop(kernel);
        rep.rows.push(row);
    }
    rep.notes.push(format!("after the runs: {}", uptime()));
    rep
}

fn ms(r: &Result<f64, String>) -> String {
    match r {
        Ok(v) => format!("{v:.1}"),
        Err(_) => "fail".into(),
    }
}

impl Report {
    /// Prints one line per profile and system: both streams' Mbit/s and
    /// shares, and ping's median RTT idle and under the upload.
    pub fn print(&self) {
        println!(
            "\n## Sharing a bottleneck: iperf3 -P 2 -t {}, Mbit/s at the receiver; ping median, ms",
            self.secs
        );
        let header = [
            "profile",
            "system",
            "stream 1",
            "stream 2",
            "shares",
            "sum",
            "ping idle",
            "ping loaded",
            "added delay",
        ];
        let mut rows = Vec::new();
        for r in &self.rows {
            for c in &r.cells {
                let (s1, s2, share, sum) = match &c.streams {
                    Ok(v) => {
                        let sum = v[0] + v[1];
                        let lo = v[0].min(v[1]) / sum.max(1e-9);
                        (
                            format!("{:.1}", v[0]),
                            format!("{:.1}", v[1]),
                            format!("{:.0}/{:.0}%", 100.0 * (1.0 - lo), 100.0 * lo),
                            format!("{sum:.1}"),
                        )
                    }
                    Err(e) => ("fail".into(), e.clone(), "–".into(), "–".into()),
                };
                let added = match (&c.idle_ms, &c.loaded_ms) {
                    (Ok(i), Ok(l)) => format!("{:.1}", l - i),
                    _ => "–".into(),
                };
                rows.push(vec![
                    r.name.to_string(),
                    c.who.clone(),
                    s1,
                    s2,
                    share,
                    sum,
                    ms(&c.idle_ms),
                    ms(&c.loaded_ms),
                    added,
                ]);
            }
        }
        crate::table::print(&header, &rows);
        println!(
            "\nOne wrapguard flow against one kernel flow through one relay, the first {} s ahead, Mbit/s:",
            HEAD_START.as_secs_f64()
        );
        let header = [
            "profile",
            "control",
            "first",
            "wrapguard",
            "kernel",
            "wrapguard's share",
        ];
        let mut rows = Vec::new();
        for r in &self.rows {
            for Versus {
                cc,
                ours_first,
                ours: o,
                kernel: k,
            } in &r.versus
            {
                let first = if *ours_first { "wrapguard" } else { "kernel" };
                let share = match (o, k) {
                    (Ok(o), Ok(k)) if o + k > 0.0 => format!("{:.0}%", 100.0 * o / (o + k)),
                    _ => "–".into(),
                };
                rows.push(vec![
                    r.name.to_string(),
                    cc.to_string(),
                    first.to_string(),
                    ms(o),
                    ms(k),
                    share,
                ]);
            }
        }
        crate::table::print(&header, &rows);
        for n in &self.notes {
            println!("- {n}");
        }
    }
}
