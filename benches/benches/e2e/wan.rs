//! Internet-like paths: the testnet fault relay (one-way delay, random
//! loss, a rate cap with a drop-tail queue) between the client and the
//! wireguard-go peer, for wrapguard in B and for the kernel reference
//! (wireguard-go TUN + Linux TCP in C) alike, never both at once. For each
//! profile, iperf3 upload and download of wrapguard with CUBIC and with
//! BBR, and of the kernel with CUBIC and with BBR (`iperf3 -C`, which
//! sets the sockets' `TCP_CONGESTION`; a download's sender is the peer's
//! kernel with the same control), round-robin within the profile.
//! `E2E_ONLY=wan` runs only this section; `E2E_WAN_SECS` (default 8) is
//! the iperf3 time, `E2E_WAN_ONLY=substring` picks profiles.

use crate::measure::uptime;
use crate::topology::{no_share_flag, Topology};
use std::process::Stdio;
use std::time::Duration;
use wrapguard_testnet::{Conf, Endpoint, Faults, Relay};

/// (name, one-way delay ms, loss, Mbit/s, queue in BDPs).
const PROFILES: [(&str, u64, f64, u64, f64); 8] = [
    ("20 ms, 0%, 200M", 20, 0.0, 200, 1.0),
    ("50 ms, 0%, 400M", 50, 0.0, 400, 1.0),
    ("25 ms, 0.1%, 100M", 25, 0.001, 100, 1.0),
    ("5 ms, 1%, 200M", 5, 0.01, 200, 1.0),
    ("20 ms, 0.5%, 200M", 20, 0.005, 200, 1.0),
    ("100 ms, 0.05%, 100M", 100, 0.0005, 100, 1.0),
    ("10 ms, 2%, 100M", 10, 0.02, 100, 1.0),
    ("20 ms, 0%, 100M, 8×BDP queue", 20, 0.0, 100, 8.0),
];

const CCS: [&str; 2] = ["cubic", "bbr"];

/// A measurement, or why it failed.
type Mbit = Result<f64, String>;

/// One profile's results: (system and control, upload, download).
struct Row {
    name: &'static str,
    cells: Vec<(String, Mbit, Mbit)>,
}

/// What the section measured.
pub struct Report {
    rows: Vec<Row>,
    secs: u64,
    notes: Vec<String>,
}

pub(crate) fn faults(delay_ms: u64, loss: f64, mbit: u64, bdps: f64) -> Faults {
    let rtt = Duration::from_millis(2 * delay_ms);
    Faults {
        drop: loss,
        delay: Duration::from_millis(delay_ms),
        rate: Some(mbit * 1_000_000 / 8),
        queue_limit: Some(rtt.mul_f64(bdps)),
        ..Faults::default()
    }
}

/// iperf3 `-J` → receiver Mbit/s.
pub(crate) fn mbit(out: &std::process::Output) -> Result<f64, String> {
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("iperf3 JSON: {e}"))?;
    if let Some(e) = v.get("error") {
        return Err(format!("iperf3: {e}"));
    }
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|b| b / 1e6)
        .ok_or_else(|| "no end.sum_received".into())
}

/// iperf3 as the client, its TCP (and, with `-R`, the server's) using
/// congestion control `cc` (`-C`: a namespace's
/// `net.ipv4.tcp_congestion_control` cannot be set here).
pub(crate) fn iperf_argv<'a>(
    secs: &'a str,
    port: &'a str,
    cc: &'a str,
    reverse: bool,
) -> Vec<&'a str> {
    let mut v = vec![
        "timeout",
        "60",
        "iperf3",
        "-c",
        "10.77.0.1",
        "-p",
        port,
        "-t",
        secs,
        "-J",
        "-C",
        cc,
    ];
    if reverse {
        v.push("-R");
    }
    v
}

/// A one-test iperf3 server in the peer's namespace on a port of its own
/// (a client that died mid-test leaves a shared server busy for the next).
pub(crate) fn one_off_server(topo: &Topology, port: u16) -> wrapguard_testnet::Bg {
    let p = port.to_string();
    let log = topo.one.tmp.join(&format!("iperf3-wan-{port}.log"));
    let bg = topo
        .one
        .peer
        .ns
        .spawn(&["timeout", "90", "iperf3", "-s", "-1", "-p", &p], &log);
    topo.one.peer.ns.wait_tcp_listen(port);
    bg
}

/// One iperf3 run against a one-test server on the next port: `client`
/// builds the command for that port.
fn measure(
    topo: &Topology,
    next_port: &std::cell::Cell<u16>,
    client: impl FnOnce(&str) -> std::process::Command,
) -> Mbit {
    next_port.set(next_port.get() + 1);
    let _srv = one_off_server(topo, next_port.get());
    let out = client(&next_port.get().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output();
    out.map_err(|e| e.to_string()).and_then(|o| mbit(&o))
}

/// A relay in B with `f` for wrapguard, and a config `name` whose
/// endpoint is that relay.
pub(crate) fn relay_for_wrapguard(
    topo: &Topology,
    f: Faults,
    seed: u64,
    name: &str,
) -> (Relay, std::path::PathBuf) {
    let upstream = topo.one.peer.endpoint().parse().expect("peer endpoint");
    let relay = Relay::start(&topo.one.client.name, upstream, f, seed);
    let at = relay.addr.to_string();
    let conf = topo.one.conf(
        name,
        Conf {
            endpoint: Endpoint::At(&at),
            ..Conf::V4
        },
    );
    (relay, conf)
}

/// A relay in C with `f` for the kernel reference: C's wireguard-go sends
/// to it until this is dropped.
pub(crate) struct KernelRelay<'a> {
    /// The relay.
    pub relay: Relay,
    topo: &'a Topology,
}

impl<'a> KernelRelay<'a> {
    /// Starts the relay and points C's peer endpoint at it.
    pub fn start(topo: &'a Topology, f: Faults, seed: u64) -> KernelRelay<'a> {
        let upstream = topo.tun_endpoint.parse().expect("C's endpoint");
        let relay = Relay::start(&topo.c.name, upstream, f, seed);
        set_kernel_endpoint(topo, &relay.addr.to_string());
        KernelRelay { relay, topo }
    }
}

impl Drop for KernelRelay<'_> {
    fn drop(&mut self) {
        set_kernel_endpoint(self.topo, &self.topo.tun_endpoint);
    }
}

fn set_kernel_endpoint(topo: &Topology, ep: &str) {
    let peer = &topo.one.peer.keys.public;
    topo.c
        .run(&["wg", "set", &topo.tun_ifname, "peer", peer, "endpoint", ep]);
}

/// `argv` run by wrapguard with `conf` and congestion control `cc`, in
/// namespace `ns`.
pub(crate) fn wrapguard_cmd(
    topo: &Topology,
    ns: &wrapguard_testnet::Netns,
    conf: &std::path::Path,
    cc: &str,
    argv: &[&str],
) -> std::process::Command {
    let wg = topo.wrapguard.display().to_string();
    let c = conf.display().to_string();
    let flag = format!("--tcp-congestion={cc}");
    let mut v = vec![wg.as_str(), "--config", &c, "--log-level=warn", &flag];
    v.extend(no_share_flag(&topo.wrapguard));
    v.push("--");
    v.extend(argv);
    ns.cmd(&v)
}

/// Runs every profile.
pub fn run(topo: &Topology, secs: u64) -> Report {
    let only = std::env::var("E2E_WAN_ONLY").ok();
    let secs_s = secs.to_string();
    let mut rep = Report {
        rows: Vec::new(),
        secs,
        notes: Vec::new(),
    };
    let next_port = std::cell::Cell::new(5300u16);
    let host_cc = topo
        .c
        .run(&["sysctl", "-n", "net.ipv4.tcp_congestion_control"]);
    let host_cc = String::from_utf8_lossy(&host_cc.stdout).trim().to_string();
    for (i, &(name, d, loss, rate, q)) in PROFILES.iter().enumerate() {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        eprintln!("e2e wan: {name} ({})", uptime());
        let f = faults(d, loss, rate, q);
        let mut row = Row {
            name,
            cells: Vec::new(),
        };
        // wrapguard in B, through a relay in B.
        let (relay, conf) =
            relay_for_wrapguard(topo, f, 0xa11 + i as u64, &format!("wan-{i}.conf"));
        for cc in CCS {
            let run = |reverse| {
                measure(topo, &next_port, |port| {
                    let argv = iperf_argv(&secs_s, port, cc, reverse);
                    wrapguard_cmd(topo, &topo.one.client, &conf, cc, &argv)
                })
            };
            let up = run(false);
            let down = run(true);
            eprintln!("  wrapguard {cc:<5} up {up:?} down {down:?}");
            row.cells.push((format!("wrapguard {cc}"), up, down));
        }
        rep.notes.push(format!(
            "{name}: relay for wrapguard: {}",
            relay.stats.line()
        ));
        drop(relay);
        // The kernel in C, through a relay in C.
        let kernel = KernelRelay::start(topo, f, 0xb11 + i as u64);
        for cc in CCS {
            let run = |reverse| {
                measure(topo, &next_port, |port| {
                    topo.c.cmd(&iperf_argv(&secs_s, port, cc, reverse))
                })
            };
            let up = run(false);
            let down = run(true);
            eprintln!("  kernel    {cc:<5} up {up:?} down {down:?}");
            row.cells.push((format!("kernel {cc}"), up, down));
        }
        rep.notes.push(format!(
            "{name}: relay for the kernel: {}",
            kernel.relay.stats.line()
        ));
        drop(kernel);
        rep.rows.push(row);
    }
    rep.notes.push(format!(
        "the host's net.ipv4.tcp_congestion_control: {host_cc}; after the runs: {}",
        uptime()
    ));
    rep
}

fn show(r: &Result<f64, String>) -> String {
    match r {
        Ok(v) => format!("{v:.1}"),
        Err(_) => "fail".into(),
    }
}

fn ratio(a: &Result<f64, String>, b: &Result<f64, String>) -> String {
    match (a, b) {
        (Ok(a), Ok(b)) if *b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".into(),
    }
}

impl Report {
    /// Prints the table: Mbit/s at the receiver, one row per profile and
    /// direction, with ours / the kernel's for the same control.
    pub fn print(&self) {
        println!(
            "\n## WAN paths through the fault relay: iperf3 -t {}, Mbit/s at the receiver",
            self.secs
        );
        let header = [
            "profile",
            "dir",
            "kernel cubic",
            "ours cubic",
            "ours/kernel cubic",
            "kernel bbr",
            "ours bbr",
            "ours/kernel bbr",
            "ours bbr / kernel cubic",
        ];
        let mut rows = Vec::new();
        for r in &self.rows {
            let get = |name: &str, down: bool| {
                r.cells
                    .iter()
                    .find(|c| c.0 == name)
                    .map(|c| if down { c.2.clone() } else { c.1.clone() })
                    .unwrap_or_else(|| Err("not run".into()))
            };
            for (dir, down) in [("up", false), ("down", true)] {
                let kc = get("kernel cubic", down);
                let oc = get("wrapguard cubic", down);
                let kb = get("kernel bbr", down);
                let ob = get("wrapguard bbr", down);
                rows.push(vec![
                    r.name.to_string(),
                    dir.to_string(),
                    show(&kc),
                    show(&oc),
                    ratio(&oc, &kc),
                    show(&kb),
                    show(&ob),
                    ratio(&ob, &kb),
                    ratio(&ob, &kc),
                ]);
            }
        }
        crate::table::print(&header, &rows);
        for n in &self.notes {
            println!("- {n}");
        }
    }
}
