//! The subcommands of shared tunnels: `up`, `status`, `down`, `ls` (and
//! the lookup `exec NAME` uses). Their reports go to stdout; errors are one
//! line on stderr and exit status 1.

use crate::cli::{Cli, LogLevel, RouteArg};
use crate::{engine_proc, rendezvous, share};
use anyhow::{anyhow, bail, Context, Result};
use engine::session::client::ask;
use engine::session::{Description, SessionReply, SessionRequest, StatusReport};
use engine::status::{human_age, human_bytes};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `wrapguard up` settings.
pub struct Up<'a> {
    /// `--config`.
    pub config: &'a Path,
    /// `--name`.
    pub name: Option<&'a str>,
    /// `--exit-node`.
    pub exit_node: Option<IpAddr>,
    /// `--route`.
    pub routes: &'a [RouteArg],
    /// `--log-level`.
    pub log_level: LogLevel,
    /// `--log-file`.
    pub log_file: Option<&'a Path>,
    /// `--timeout`.
    pub timeout: Duration,
    /// `--tcp-congestion`.
    pub tcp_congestion: Option<crate::cli::TcpCongestionArg>,
}

/// Prints `e` as wrapguard's one error line; returns 1.
pub fn fail(e: &anyhow::Error) -> i32 {
    eprintln!("wrapguard: {e:#}");
    1
}

/// `wrapguard up`: starts the tunnel detached and waits for the handshakes.
pub fn up(u: &Up) -> Result<i32> {
    let config = std::fs::canonicalize(u.config).with_context(|| {
        format!(
            "cannot read config {}; check the path given to --config",
            u.config.display()
        )
    })?;
    let name = u
        .name
        .map(str::to_string)
        .unwrap_or_else(|| engine_proc::default_name(&config));
    if name.is_empty() || name.contains(['/', '\0']) || name.starts_with('-') {
        bail!("--name {name:?} is not a usable name; use letters, digits, - and _");
    }
    // The same command line the main form would build, for the engine.
    let mut argv: Vec<std::ffi::OsString> =
        vec!["wrapguard".into(), "--config".into(), config.clone().into()];
    if let Some(ip) = u.exit_node {
        argv.push(format!("--exit-node={ip}").into());
    }
    for r in u.routes {
        argv.push(format!("--route={}:{}", r.prefix, r.peer).into());
    }
    if let Some(c) = u.tcp_congestion {
        argv.push(format!("--tcp-congestion={}", c.algorithm().name()).into());
    }
    argv.push(format!("--log-level={}", u.log_level.name()).into());
    argv.extend(["--".into(), "true".into()]);
    let cli = <Cli as clap::Parser>::try_parse_from(argv).map_err(|e| anyhow!("{e}"))?;
    let parsed = router::Config::from_path(&config).map_err(|e| anyhow!("{e}"))?;
    let key = engine::session::facts::public_key(&parsed.config);
    let ours = engine::session::facts::facts(&parsed.config, &cli.overrides()?);
    let dir = rendezvous::dir()?;
    let socket = rendezvous::socket_path(&dir, &key);
    if let Some(other) = share::running()?
        .into_iter()
        .find(|d| d.name == name && Path::new(&d.socket) != socket)
    {
        bail!(
            "a tunnel named {name} runs already with another key (engine pid {}, from {}); pick another --name",
            other.pid, other.config
        );
    }
    let log_file = u
        .log_file
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join(format!("{name}.log")));
    {
        let lock = rendezvous::StartLock::take(&socket)?;
        match ask(&socket, &SessionRequest::Describe) {
            Ok(SessionReply::Described(d)) => {
                drop(lock);
                let diff = engine::session::facts::differences(&ours, &d.facts);
                if !diff.is_empty() {
                    bail!(
                        "tunnel {} (engine pid {}, from {}) already runs with this private key and another config: {}; stop it first (wrapguard down {})",
                        d.name, d.pid, d.config, diff.join("; "), d.name
                    );
                }
                if d.persistent {
                    bail!(
                        "tunnel {} is up already (engine pid {}); run programs on it with wrapguard exec {} -- COMMAND",
                        d.name, d.pid, d.name
                    );
                }
                // Started by an instance: it now stays up, under this name.
                expect_ok(ask(
                    &socket,
                    &SessionRequest::Persist { name: name.clone() },
                )?)?;
            }
            Ok(other) => bail!("unexpected answer from the tunnel engine: {other:?}"),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ECONNREFUSED)) => {
                if e.raw_os_error() == Some(libc::ECONNREFUSED) {
                    let _ = std::fs::remove_file(&socket);
                }
                share::spawn_engine(&cli, &config, &socket, Some(&name), true, Some(&log_file))?;
                drop(lock);
            }
            Err(e) => return Err(e).with_context(|| format!("cannot reach {}", socket.display())),
        }
    }
    let desc = describe(&socket)?;
    let timeout_ms = u.timeout.as_millis() as u64;
    let mut s = engine::session::client::Session::connect(&socket)?;
    s.set_timeout(Some(
        u.timeout * (desc.peers.len().max(1) as u32) + Duration::from_secs(5),
    ))?;
    let peers = match s.exchange(&SessionRequest::Handshake { timeout_ms })? {
        SessionReply::Handshakes { peers } => peers,
        other => bail!("unexpected answer from the tunnel engine: {other:?}"),
    };
    let failed: Vec<String> = peers
        .iter()
        .filter(|p| p.2.is_none())
        .map(|p| format!("peer {} at {}", p.0, p.1))
        .collect();
    if !failed.is_empty() {
        let _ = ask(&socket, &SessionRequest::Down);
        bail!(
            "no handshake within {} s with {}; check the Endpoint, that the peer runs and has our public key {} in its config, and that UDP reaches it (the tunnel is not up; its log: {})",
            u.timeout.as_secs(),
            failed.join(", "),
            desc.public_key,
            log_file.display()
        );
    }
    let mut line = format!(
        "tunnel {} is up: {}, engine pid {}",
        desc.name,
        desc.interface.join(", "),
        desc.pid
    );
    for (label, ep, ms) in &peers {
        let _ = write!(
            line,
            "; handshake with {label} at {ep} in {} ms",
            ms.unwrap_or(0)
        );
    }
    if peers.is_empty() {
        line.push_str("; no peer has an Endpoint, so none was contacted (peers reach us first)");
    }
    println!("{line}");
    println!(
        "run programs on it: wrapguard exec {} -- COMMAND; wrapguard status {}; wrapguard down {}; log: {}",
        desc.name,
        desc.name,
        desc.name,
        log_file.display()
    );
    Ok(0)
}

fn expect_ok(r: SessionReply) -> Result<()> {
    match r {
        SessionReply::Ok => Ok(()),
        SessionReply::Refused { reason } => bail!("the tunnel engine refused: {reason}"),
        other => bail!("unexpected answer from the tunnel engine: {other:?}"),
    }
}

fn describe(socket: &Path) -> Result<Description> {
    match ask(socket, &SessionRequest::Describe)
        .with_context(|| format!("cannot reach the tunnel engine at {}", socket.display()))?
    {
        SessionReply::Described(d) => Ok(d),
        other => bail!("unexpected answer from the tunnel engine: {other:?}"),
    }
}

/// The tunnel `name`, or the one running for `config`.
fn target(name: Option<&str>, config: Option<&Path>) -> Result<Description> {
    if let Some(n) = name {
        return share::find(n);
    }
    let config = config
        .ok_or_else(|| anyhow!("name a tunnel (wrapguard ls lists them) or pass --config"))?;
    let parsed = router::Config::from_path(config).map_err(|e| anyhow!("{e}"))?;
    let key = engine::session::facts::public_key(&parsed.config);
    let socket = rendezvous::socket_path(&rendezvous::dir()?, &key);
    describe(&socket).map_err(|_| anyhow!("no tunnel runs for {}", config.display()))
}

/// The config of the tunnel `name` (for `exec NAME`).
pub fn config_of(name: &str) -> Result<PathBuf> {
    Ok(PathBuf::from(share::find(name)?.config))
}

/// `wrapguard status [NAME] [--json]`.
pub fn status(name: Option<&str>, json: bool) -> Result<i32> {
    let tunnels = match name {
        Some(n) => vec![share::find(n)?],
        None => share::running()?,
    };
    let mut reports = Vec::new();
    for d in &tunnels {
        match ask(Path::new(&d.socket), &SessionRequest::Status) {
            Ok(SessionReply::Status(r)) => reports.push(*r),
            Ok(other) => bail!("unexpected answer from tunnel {}: {other:?}", d.name),
            // Gone between the listing and now.
            Err(_) if name.is_none() => {}
            Err(e) => return Err(e).with_context(|| format!("cannot reach tunnel {}", d.name)),
        }
    }
    if json {
        let text = if name.is_some() {
            serde_json::to_string_pretty(&reports[0])
        } else {
            serde_json::to_string_pretty(&reports)
        }?;
        println!("{text}");
    } else if reports.is_empty() {
        println!("no tunnels run (start one with wrapguard up --config wg0.conf)");
    } else {
        let texts: Vec<String> = reports.iter().map(status_text).collect();
        print!("{}", texts.join("\n"));
    }
    Ok(0)
}

/// `wrapguard status --flows [NAME] [--json]`: every TCP connection of
/// each running tunnel (or of `NAME`), like `ss -ti`.
pub fn flows(name: Option<&str>, json: bool) -> Result<i32> {
    let tunnels = match name {
        Some(n) => vec![share::find(n)?],
        None => share::running()?,
    };
    let mut all = Vec::new();
    for d in &tunnels {
        match ask(Path::new(&d.socket), &SessionRequest::Flows) {
            Ok(SessionReply::Flows { flows }) => all.push((d.name.clone(), flows)),
            Ok(other) => bail!("unexpected answer from tunnel {}: {other:?}", d.name),
            Err(_) if name.is_none() => {}
            Err(e) => return Err(e).with_context(|| format!("cannot reach tunnel {}", d.name)),
        }
    }
    if json {
        let v: Vec<serde_json::Value> = all
            .iter()
            .map(|(n, f)| serde_json::json!({ "tunnel": n, "flows": f }))
            .collect();
        let text = if name.is_some() {
            serde_json::to_string_pretty(&v[0])
        } else {
            serde_json::to_string_pretty(&v)
        }?;
        println!("{text}");
        return Ok(0);
    }
    if all.is_empty() {
        println!("no tunnels run (start one with wrapguard up --config wg0.conf)");
        return Ok(0);
    }
    let mut o = String::new();
    for (n, flows) in &all {
        let _ = writeln!(o, "tunnel: {n}: {} TCP connections", flows.len());
        for f in flows {
            let who = match (&f.pid, &f.program) {
                (Some(p), Some(c)) => format!("pid {p}: {c}"),
                (Some(p), None) => format!("pid {p}"),
                _ => "(inbound, or the program is gone)".into(),
            };
            let _ = writeln!(o, "{} {} -> {}  {who}", f.state, f.local, f.remote);
            let _ = writeln!(
                o,
                "  {} cwnd {} ssthresh {} srtt {:.1}/{:.1} ms rto {} ms mss {} in flight {}",
                f.congestion,
                human_bytes(f.cwnd),
                f.ssthresh.map_or_else(|| "-".into(), human_bytes),
                f.srtt_us as f64 / 1000.0,
                f.rttvar_us as f64 / 1000.0,
                f.rto_us / 1000,
                f.mss,
                human_bytes(f.in_flight),
            );
            let _ = writeln!(
                o,
                "  retrans {} rto {} recoveries {} delivery rate {} limited by {}; {} sent, {} received, {} s",
                f.retransmits,
                f.rto_count,
                f.recoveries,
                engine::flow_report::human_rate(f.delivery_rate),
                f.limited_by,
                human_bytes(f.bytes_up),
                human_bytes(f.bytes_down),
                f.age_secs,
            );
        }
    }
    print!("{o}");
    Ok(0)
}

/// One tunnel's report, laid out like `wg show`.
pub fn status_text(r: &StatusReport) -> String {
    let d = &r.tunnel;
    let mut o = String::new();
    let _ = writeln!(o, "tunnel: {}", d.name);
    let _ = writeln!(o, "  public key: {}", d.public_key);
    let _ = writeln!(o, "  address: {}", d.interface.join(", "));
    let _ = writeln!(
        o,
        "  engine: pid {}, up {}, {}",
        d.pid,
        human_age(Duration::from_secs(r.uptime_secs)).trim_end_matches(" ago"),
        if d.persistent {
            "stays up until wrapguard down"
        } else {
            "ends with its last program"
        }
    );
    let _ = writeln!(o, "  config: {}", d.config);
    let _ = writeln!(o, "  flows: {}", r.flows);
    for p in &r.peers {
        let _ = writeln!(o);
        let _ = writeln!(o, "peer: {}", p.label);
        let _ = writeln!(
            o,
            "  endpoint: {}",
            p.endpoint.as_deref().unwrap_or("(none yet)")
        );
        let hs = match p.latest_handshake_secs {
            Some(s) => human_age(Duration::from_secs(s)),
            None => "(none)".to_string(),
        };
        let _ = writeln!(o, "  latest handshake: {hs}");
        let _ = writeln!(
            o,
            "  transfer: {} received, {} sent",
            human_bytes(p.rx_bytes),
            human_bytes(p.tx_bytes)
        );
        let _ = writeln!(o, "  flows: {}", p.flows);
        if p.unreachable {
            let _ = writeln!(o, "  state: unreachable (handshakes unanswered)");
        }
    }
    for p in &r.programs {
        let _ = writeln!(o);
        let pid = p.pid.map(|p| p.to_string()).unwrap_or_else(|| {
            if p.background {
                "(unnamed)".into()
            } else {
                "(starting)".into()
            }
        });
        let _ = writeln!(o, "program: pid {pid}: {}", p.command);
        if p.background {
            let _ = writeln!(
                o,
                "  background: started under wrapguard pid {}, which has returned; holds the tunnel",
                p.launcher_pid
            );
        } else {
            let _ = writeln!(
                o,
                "  launcher: wrapguard pid {}, attached {}",
                p.launcher_pid,
                human_age(Duration::from_secs(p.attached_secs))
            );
        }
        let _ = writeln!(o, "  flows: {}", p.flows);
    }
    if let Some(line) = &r.counters_line {
        let _ = writeln!(o);
        let _ = writeln!(o, "counters: {line}");
    }
    o
}

/// `wrapguard down NAME`.
pub fn down(name: Option<&str>, config: Option<&Path>) -> Result<i32> {
    let d = target(name, config)?;
    match ask(Path::new(&d.socket), &SessionRequest::Down)
        .with_context(|| format!("cannot reach tunnel {}", d.name))?
    {
        SessionReply::Down { cut } => {
            println!(
                "tunnel {} is down: {cut} tunnel connection{} cut",
                d.name,
                if cut == 1 { "" } else { "s" }
            );
            // Returns once the engine is gone (its socket removed).
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while Path::new(&d.socket).exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(0)
        }
        other => bail!("unexpected answer from tunnel {}: {other:?}", d.name),
    }
}

/// `wrapguard ls [--json]`.
pub fn ls(json: bool) -> Result<i32> {
    let all = share::running()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(0);
    }
    if all.is_empty() {
        println!("no tunnels run (start one with wrapguard up --config wg0.conf)");
        return Ok(0);
    }
    println!(
        "{:<16} {:>8}  {:<24} {:<10} CONFIG",
        "NAME", "PID", "ADDRESS", "KIND"
    );
    for d in &all {
        println!(
            "{:<16} {:>8}  {:<24} {:<10} {}",
            d.name,
            d.pid,
            d.interface.join(","),
            if d.persistent { "up" } else { "shared" },
            d.config
        );
    }
    Ok(0)
}
