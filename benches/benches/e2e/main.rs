//! `cargo bench --bench e2e`: wrapguard against wireguard-go with the
//! kernel's TCP, onetun, and itself, over real namespaces, side by side in
//! one run.
//!
//! Topology (built fresh each run, deleted on exit; no route out anywhere):
//! ```text
//!  netns A (peer)                    netns B (clients)          netns C
//!  wireguard-go wg: 10.77.0.1/24     wrapguard   10.77.0.2      wireguard-go TUN
//!  iperf3 -s, HTTP (256 MB file),    onetun      10.77.0.4      10.77.0.3 + kernel TCP
//!  RR server :7000, echo :7001
//!  192.168.77.1 ──── veth ────────── 192.168.77.2
//!  192.168.200.1 ─── veth ────────────────────────────────────  192.168.200.2
//!
//!  netns P (pair): wrapguard 10.88.0.1 (iperf3 -s, HTTP) ⇄ wrapguard 10.88.0.2 over loopback UDP
//! ```
//!
//! Sections (all by default; `E2E_ONLY=bulk,latency,scale,modes,udp,proxy` picks some):
//! - bulk: iperf3 upload/download and a curl download, 3 rounds (`E2E_ROUNDS`),
//!   `E2E_SECS` seconds per iperf3 run (default 5);
//! - latency: connect + 1-byte request/response, p50/p99 over `E2E_RR`
//!   iterations (default 10,000);
//! - scale: `E2E_CONNS` (default 10,000) concurrent connections, RSS of the
//!   wrapguard process idle, at 1,000 and at the full count;
//! - modes: seccomp mode against shim mode (`--mode=seccomp` vs
//!   `--mode=preload`, same clients, peer and config): the bulk tests
//!   (`E2E_ROUNDS`, `E2E_SECS`) and connect + 1-byte request/response
//!   (`E2E_MODES_RR`, default 2,000 iterations), side by side. Run alone:
//!   `E2E_ONLY=modes cargo bench -p wrapguard-benches --bench e2e`.
//!
//! - udp: `iperf3 -u -b 300M` (`E2E_UDP_RATE`) through wrapguard and
//!   wireguard-go: received rate, loss and datagram size, side by side;
//!
//! - wan (only when asked: `E2E_ONLY=wan`): internet-like paths through the
//!   fault relay (delay, loss, a capped bottleneck with a queue), wrapguard
//!   with CUBIC and BBR against the kernel (wireguard-go TUN in C) with
//!   CUBIC and BBR, upload and download (see `wan`);
//!
//! - fair (only when asked: `E2E_ONLY=fair`): two flows of one system
//!   through one relay bottleneck and the share each gets, and the delay
//!   an upload adds to ping, wrapguard and the kernel (see `fairness`);
//!
//! - proxy: the front-ends — curl through our SOCKS5 proxy, iperf3 and
//!   curl through our `--forward` and onetun's, against the same client
//!   wrapped (`E2E_ROUNDS`, `E2E_SECS`).
//!
//! At the end, one summary table (`summary`) puts the figures of every
//! section that ran side by side, with wrapguard / wireguard-go ratios.
//!
//! `E2E_TCP_CONGESTION=cubic|bbr` passes `--tcp-congestion` to the wrapped
//! clients (default: wrapguard's choice).
//!
//! `E2E_PERF_DIR=<dir>` also runs `perf record -g` on the wrapguard process
//! of every bulk run (`perf report -i <dir>/upload-<pid>.data`).
//!
//! Needs root, ip, wg, wireguard-go, iperf3, curl, python3; without them it
//! says why and exits 0. The release `wrapguard` and `libwrapguard.so` are
//! built by the bench (`cargo build --release`) unless `WRAPGUARD_BIN_DIR`
//! names a directory holding both. onetun is installed with `cargo install
//! --locked onetun` into `<target>/bench-tools`; if that fails its column is
//! skipped with the reason.
//!
//! The bench binary is also its own helper program: `__rr-server`,
//! `__rr-client`, `__echo-server`, `__hold-client` (see `tools`).

mod bins;
mod bulk;
mod fairness;
mod latency;
mod measure;
mod modes;
mod proxy;
mod scale;
mod summary;
mod table;
mod tools;
mod topology;
mod udp;
mod wan;

use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(cmd) = args.get(1).filter(|a| a.starts_with("__")) {
        std::process::exit(tools::run(cmd, &args[2..]));
    }
    if let Some(why) = skip_reason() {
        println!("e2e bench SKIPPED: {why}");
        return;
    }
    let nofile = measure::raise_nofile(65536);
    let bins = match bins::Bins::prepare() {
        Ok(b) => b,
        Err(e) => {
            println!("e2e bench SKIPPED: {e}");
            return;
        }
    };
    let only =
        std::env::var("E2E_ONLY").unwrap_or_else(|_| "bulk,latency,scale,modes,udp,proxy".into());
    let want = |s: &str| only.split(',').any(|o| o.trim() == s);
    println!("e2e bench: {}; RLIMIT_NOFILE {nofile}", measure::uptime());
    let topo = topology::Topology::build(&bins);
    // Let every handshake complete before anything is timed.
    std::thread::sleep(Duration::from_millis(500));
    let mut all = summary::Sections {
        bulk: None,
        latency: None,
        scale: None,
        modes: None,
    };
    if want("bulk") {
        let rounds = env_num("E2E_ROUNDS", 3);
        let secs = env_num("E2E_SECS", 5);
        let r = bulk::run(&topo, rounds, secs);
        r.print();
        all.bulk = Some(r);
    }
    if want("latency") {
        let r = latency::run(&topo, env_num("E2E_RR", 10_000));
        r.print();
        all.latency = Some(r);
    }
    if want("scale") {
        let r = scale::run(&topo, env_num("E2E_CONNS", 10_000));
        r.print();
        all.scale = Some(r);
    }
    if want("modes") {
        let rounds = env_num("E2E_ROUNDS", 3);
        let secs = env_num("E2E_SECS", 5);
        let r = modes::run(&topo, rounds, secs, env_num("E2E_MODES_RR", 2_000));
        r.print();
        all.modes = Some(r);
    }
    if want("udp") {
        let rounds = env_num("E2E_ROUNDS", 3);
        let secs = env_num("E2E_SECS", 5);
        udp::run(&topo, rounds, secs).print();
    }
    if want("wan") {
        wan::run(&topo, env_num("E2E_WAN_SECS", 8) as u64).print();
    }
    if want("fair") {
        fairness::run(&topo, env_num("E2E_FAIR_SECS", 20) as u64).print();
    }
    if want("proxy") {
        let rounds = env_num("E2E_ROUNDS", 3);
        let secs = env_num("E2E_SECS", 5);
        proxy::run(&topo, rounds, secs).print();
    }
    all.print();
    println!("e2e bench done: {}", measure::uptime());
}

/// Why the bench cannot run here, if it cannot.
fn skip_reason() -> Option<String> {
    if let Some(why) = wrapguard_testnet::skip_reason() {
        return Some(why);
    }
    ["iperf3", "ss"]
        .into_iter()
        .find(|t| !wrapguard_testnet::on_path(t))
        .map(|t| format!("{t} not installed (apt-get install -y iperf3 iproute2)"))
}

/// A number from the environment, or `default`.
fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
