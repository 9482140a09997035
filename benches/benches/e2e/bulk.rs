//! Bulk throughput: iperf3 upload and download and a curl download of the
//! 256 MB file, each through every system, round-robin so that the
//! systems of one round see the same machine load.

use crate::measure::{rss_kib, uptime, wait_with_cpu, watch_peak_rss, SideCpu};
use crate::table::{self, Stats};
use crate::topology::{Target, Topology, Via, BIG_FILE};
use std::collections::HashMap;
use std::io::Read;

/// The bulk tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Test {
    /// `iperf3 -c` (client sends).
    Upload,
    /// `iperf3 -c -R` (server sends).
    Download,
    /// `curl` of the 256 MB file.
    Curl,
}

impl Test {
    /// Row heading.
    pub fn label(self) -> &'static str {
        match self {
            Test::Upload => "iperf3 upload",
            Test::Download => "iperf3 download (-R)",
            Test::Curl => "curl 256 MB download",
        }
    }
}

/// Every bulk test, in run order.
pub const TESTS: [Test; 3] = [Test::Upload, Test::Download, Test::Curl];
const VIAS: [Via; 4] = [Via::Wrapguard, Via::WireguardGo, Via::Onetun, Via::Pair];

/// One measured run.
#[derive(Clone, Copy)]
pub struct Sample {
    /// Throughput at the receiver.
    pub mbit: f64,
    /// CPU seconds of the wrapguard process per GB moved (wrapguard systems).
    pub cpu_per_gb: Option<f64>,
    /// Peak RSS of the wrapguard process in KiB (wrapguard systems).
    pub peak_rss_kib: Option<u64>,
    /// CPU seconds per GB of the whole client side: the machine's busy
    /// time less the servers' processes (every system; see [`SideCpu`]).
    pub side_cpu_per_gb: Option<f64>,
}

/// Everything the bulk section measured.
pub struct Report {
    samples: HashMap<(Test, Via), Vec<Sample>>,
    notes: Vec<String>,
    rounds: usize,
    secs: usize,
    /// Peak RSS (KiB) of the long-running tunnel processes (wireguard-go,
    /// onetun) after the section.
    tunnel_peak: HashMap<Via, u64>,
}

/// Runs `rounds` rounds of every test through every available system.
pub fn run(topo: &Topology, rounds: usize, secs: usize) -> Report {
    let mut r = Report {
        samples: HashMap::new(),
        notes: Vec::new(),
        rounds,
        secs,
        tunnel_peak: HashMap::new(),
    };
    for via in VIAS {
        if let Err(why) = topo.available(via) {
            r.notes.push(format!("{}: skipped: {why}", via.label()));
        }
    }
    for round in 1..=rounds {
        eprintln!("e2e bulk: round {round}/{rounds} ({})", uptime());
        for test in TESTS {
            for via in VIAS.into_iter().filter(|v| topo.available(*v).is_ok()) {
                match run_one(topo, test, via, secs) {
                    Ok(s) => {
                        eprintln!(
                            "  {:<22} {:<20} {:>8.1} Mbit/s",
                            test.label(),
                            via.label(),
                            s.mbit
                        );
                        r.samples.entry((test, via)).or_default().push(s);
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
    for via in [Via::WireguardGo, Via::Onetun] {
        if let Some((_, hwm)) = topo.tunnel_pid(via).and_then(rss_kib) {
            r.tunnel_peak.insert(via, hwm);
        }
    }
    r.notes.push(format!("after the runs: {}", uptime()));
    r
}

/// One run of `test` through `via`.
pub fn run_one(topo: &Topology, test: Test, via: Via, secs: usize) -> Result<Sample, String> {
    let t = topo.target(via);
    let cmd = |argv: &[&str]| topo.client(via, argv);
    let wrapped = matches!(via, Via::Wrapguard | Via::Pair | Via::Seccomp);
    let watch = Watch {
        perf: via == Via::Wrapguard,
        rss: wrapped,
        servers: Some(topo.servers_ns(via)),
    };
    let ran = run_client(cmd, test, &t, None, secs, watch)?;
    let gb = ran.bytes / 1e9;
    Ok(Sample {
        mbit: ran.mbit,
        cpu_per_gb: wrapped.then(|| ran.cpu_secs / gb),
        peak_rss_kib: ran.peak_rss_kib,
        side_cpu_per_gb: ran.side_cpu_secs.map(|s| s / gb),
    })
}

/// What one client run measured.
pub struct Ran {
    /// Bytes received.
    pub bytes: f64,
    /// Throughput at the receiver.
    pub mbit: f64,
    /// CPU seconds of the spawned process itself.
    pub cpu_secs: f64,
    /// Peak RSS of the spawned process, if watched.
    pub peak_rss_kib: Option<u64>,
    /// The client side's CPU seconds ([`SideCpu`]), if watched.
    pub side_cpu_secs: Option<f64>,
}

/// What [`run_client`] watches of the spawned process besides its CPU.
#[derive(Clone, Copy, Default)]
pub struct Watch<'a> {
    /// Profile it when `E2E_PERF_DIR` is set.
    pub perf: bool,
    /// Sample its peak RSS.
    pub rss: bool,
    /// Count the client side's CPU ([`SideCpu`]); the servers are the
    /// processes of this namespace.
    pub servers: Option<&'a str>,
}

/// Runs the client of `test` against `t`, spawned by `cmd`; curl goes
/// through `curl_proxy` (`-x` URL) if given; `watch` says what else is
/// read of the spawned process.
pub fn run_client(
    cmd: impl Fn(&[&str]) -> std::process::Command,
    test: Test,
    t: &Target,
    curl_proxy: Option<&str>,
    secs: usize,
    watch: Watch<'_>,
) -> Result<Ran, String> {
    let secs_s = secs.to_string();
    let port = t.iperf.to_string();
    let url = format!("http://{}:{}/big.bin", t.host, t.http);
    let mut argv: Vec<&str> = match test {
        Test::Upload => vec![
            "timeout", "120", "iperf3", "-c", t.host, "-p", &port, "-t", &secs_s, "-J",
        ],
        Test::Download => {
            vec![
                "timeout", "120", "iperf3", "-c", t.host, "-p", &port, "-t", &secs_s, "-J", "-R",
            ]
        }
        Test::Curl => vec![
            "timeout",
            "300",
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download} %{speed_download}",
        ],
    };
    if test == Test::Curl {
        if let Some(p) = curl_proxy {
            argv.extend(["-x", p]);
        }
        argv.push(&url);
    }
    let side = watch.servers.and_then(SideCpu::start);
    let mut child = cmd(&argv).spawn().map_err(|e| format!("spawn: {e}"))?;
    let peak = watch.rss.then(|| watch_peak_rss(child.id()));
    let profiler = watch.perf.then(|| profile(child.id(), test)).flatten();
    let mut stderr = child.stderr.take().ok_or("no stderr pipe")?;
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut out = String::new();
    if let Some(mut so) = child.stdout.take() {
        let _ = so.read_to_string(&mut out);
    }
    let fin = wait_with_cpu(&mut child).map_err(|e| format!("wait: {e}"))?;
    let side_cpu_secs = side.and_then(|s| s.secs());
    if let Some(mut p) = profiler {
        // perf record -p ends by itself when the process it follows exits.
        let _ = p.wait();
    }
    let err = err_reader.join().unwrap_or_default();
    let peak_rss_kib = peak.and_then(|h| h.join().ok().flatten());
    if !fin.status.success() {
        let why = iperf_error(&out).unwrap_or_else(|| err.lines().last().unwrap_or("").to_string());
        return Err(format!("{}: {why}", fin.status));
    }
    let (bytes, bits_per_sec) = match test {
        Test::Curl => parse_curl(&out)?,
        _ => parse_iperf(&out)?,
    };
    if test == Test::Curl && bytes as usize != BIG_FILE {
        return Err(format!("curl got {bytes} bytes, want {BIG_FILE}"));
    }
    Ok(Ran {
        bytes,
        mbit: bits_per_sec / 1e6,
        cpu_secs: fin.cpu_secs,
        peak_rss_kib,
        side_cpu_secs,
    })
}

/// With `E2E_PERF_DIR` set: `perf record -g` on the wrapguard process
/// `pid` into `<dir>/<test>-<pid>.data` (read with `perf report -i`).
fn profile(pid: u32, test: Test) -> Option<std::process::Child> {
    let dir = std::env::var_os("E2E_PERF_DIR")?;
    let out = std::path::Path::new(&dir).join(format!("{test:?}-{pid}.data").to_lowercase());
    std::process::Command::new("perf")
        .args(["record", "-g", "-q", "-p", &pid.to_string(), "-o"])
        .arg(out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| eprintln!("e2e: perf record: {e}"))
        .ok()
}

/// (bytes received, bits/s at the receiver) from `iperf3 -J`.
fn parse_iperf(out: &str) -> Result<(f64, f64), String> {
    let v: serde_json::Value =
        serde_json::from_str(out).map_err(|e| format!("iperf3 JSON: {e}"))?;
    if let Some(e) = v.get("error") {
        return Err(format!("iperf3: {e}"));
    }
    let s = &v["end"]["sum_received"];
    match (s["bytes"].as_f64(), s["bits_per_second"].as_f64()) {
        (Some(b), Some(r)) if b > 0.0 => Ok((b, r)),
        _ => Err("iperf3 JSON without end.sum_received".into()),
    }
}

fn iperf_error(out: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(out).ok()?;
    v.get("error").map(|e| e.to_string())
}

/// (bytes, bits/s) from curl's `-w '%{size_download} %{speed_download}'`.
fn parse_curl(out: &str) -> Result<(f64, f64), String> {
    let mut it = out.split_whitespace().map(str::parse::<f64>);
    match (it.next(), it.next()) {
        (Some(Ok(b)), Some(Ok(s))) => Ok((b, s * 8.0)),
        _ => Err(format!("unexpected curl output {out:?}")),
    }
}

impl Report {
    /// Median throughput (Mbit/s) of `test` through `via`.
    pub fn median(&self, test: Test, via: Via) -> Option<f64> {
        self.stats(test, via).map(|s| s.median)
    }

    /// Median CPU s/GB of `test` through `via` (wrapguard systems).
    pub fn cpu_median(&self, test: Test, via: Via) -> Option<f64> {
        self.cpu(test, via).map(|s| s.median)
    }

    /// Peak RSS (MiB) seen for `via` over the section: its wrapguard
    /// processes, or the long-running wireguard-go/onetun process.
    pub fn peak_rss_mib(&self, via: Via) -> Option<f64> {
        let runs = TESTS
            .iter()
            .filter_map(|&t| self.samples.get(&(t, via)))
            .flatten()
            .filter_map(|s| s.peak_rss_kib);
        runs.chain(self.tunnel_peak.get(&via).copied())
            .max()
            .map(|k| k as f64 / 1024.0)
    }

    fn stats(&self, test: Test, via: Via) -> Option<Stats> {
        let v: Vec<f64> = self
            .samples
            .get(&(test, via))?
            .iter()
            .map(|s| s.mbit)
            .collect();
        Stats::of(&v)
    }

    /// Median client-side CPU s/GB of `test` through `via` ([`SideCpu`]).
    pub fn side_cpu_median(&self, test: Test, via: Via) -> Option<f64> {
        self.side_cpu(test, via).map(|s| s.median)
    }

    fn cpu(&self, test: Test, via: Via) -> Option<Stats> {
        self.figure(test, via, |s| s.cpu_per_gb)
    }

    fn side_cpu(&self, test: Test, via: Via) -> Option<Stats> {
        self.figure(test, via, |s| s.side_cpu_per_gb)
    }

    fn figure(&self, test: Test, via: Via, f: impl Fn(&Sample) -> Option<f64>) -> Option<Stats> {
        let v: Vec<f64> = self
            .samples
            .get(&(test, via))?
            .iter()
            .filter_map(f)
            .filter(|c| c.is_finite())
            .collect();
        Stats::of(&v)
    }

    /// Prints the table (Mbit/s, median (min–max) of the rounds).
    pub fn print(&self) {
        println!(
            "\n## Bulk throughput, Mbit/s: median (min–max) of {} rounds, iperf3 -t {}",
            self.rounds, self.secs
        );
        let header = header(&[
            "wrapguard / wg-go",
            "wrapguard / onetun",
            "wrapguard CPU s/GB",
        ]);
        let rows = self.rows(
            |t, v| self.stats(t, v),
            0,
            |t| {
                let ours = self.stats(t, Via::Wrapguard);
                vec![
                    table::ratio(ours, self.stats(t, Via::WireguardGo)),
                    table::ratio(ours, self.stats(t, Via::Onetun)),
                    self.cpu(t, Via::Wrapguard)
                        .map_or("–".into(), |s| s.show(2)),
                ]
            },
        );
        table::print(&header, &rows);
        self.print_cpu();
        for n in &self.notes {
            println!("- {n}");
        }
    }
}

impl Report {
    /// The CPU table: the client side's s/GB for every system, and the
    /// wrapguard process's own against wireguard-go's client side.
    fn print_cpu(&self) {
        println!(
            "\n## CPU s/GB of the client side (machine busy time less the servers' \
             namespace): median (min–max)"
        );
        let header = header(&[
            "wrapguard / wg-go",
            "wrapguard process",
            "wrapguard process / wg-go side",
        ]);
        let rows = self.rows(
            |t, v| self.side_cpu(t, v),
            2,
            |t| {
                let theirs = self.side_cpu(t, Via::WireguardGo);
                let own = self.cpu(t, Via::Wrapguard);
                vec![
                    table::ratio(self.side_cpu(t, Via::Wrapguard), theirs),
                    own.map_or("–".into(), |s| s.show(2)),
                    table::ratio(own, theirs),
                ]
            },
        );
        table::print(&header, &rows);
        println!(
            "- client side: the client program, the tunnel's process and the kernel's networking \
             (the servers' softirq work too, alike for every system); wrapguard process: its own \
             threads only"
        );
    }
}

impl Report {
    /// A row per test: `fig` for every system (`prec` decimals), then the
    /// cells of `tail`.
    fn rows(
        &self,
        fig: impl Fn(Test, Via) -> Option<Stats>,
        prec: usize,
        tail: impl Fn(Test) -> Vec<String>,
    ) -> Vec<Vec<String>> {
        TESTS
            .iter()
            .map(|&t| {
                let mut row = vec![t.label().to_string()];
                row.extend(
                    VIAS.iter()
                        .map(|&v| fig(t, v).map_or("–".into(), |s| s.show(prec))),
                );
                row.extend(tail(t));
                row
            })
            .collect()
    }
}

/// A per-test table's header: the systems, then `tail`.
fn header(tail: &[&'static str]) -> Vec<&'static str> {
    let mut h = vec!["test"];
    h.extend(VIAS.iter().map(|v| v.label()));
    h.extend(tail);
    h
}
