//! `wrapguard --doctor [PROGRAM]`: checks, without starting a tunnel,
//! everything a run needs, and prints one line per fact —
//! `ok|warn|fail  <what>  — <fix>` — then a summary. Exit status 1 if any
//! check failed.
//!
//! * the shim next to the binary: present, an ELF shared object of our
//!   architecture, and really loaded by the dynamic loader into a child
//!   (wrapguard itself in a hidden probe mode, [`crate::probe`]);
//! * with `--config`: parsed (file:line errors), keys valid, routing
//!   options valid, endpoints resolvable, permissions, the UDP port free;
//! * with a program: found on `PATH`, executable, enterable by the shim
//!   ([`crate::inspect::shim_entry`]: static, setuid, Go, 32-bit, musl,
//!   scripts and their interpreters), and the interception mode it gets
//!   under `--mode` ([`crate::inspect::mode_checks`]).

use crate::cli::Cli;
use crate::inspect::{self, ElfInfo, ElfType};
use crate::probe::{ProbeReport, PROBE_ARG};
use crate::report::{peer_label, worst, Check, Level};
use router::config::{LoadError, WarningKind};
use router::{Config, Endpoint, RouteFlag, Router, RoutingOptions};
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Public key of the (published) private key in example-wg0.conf.
const EXAMPLE_PUBLIC_KEY: &str = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";

/// How long a probe child may take.
const PROBE_WAIT: Duration = Duration::from_secs(10);

/// Runs every check, prints them, returns the exit code.
pub fn run(cli: &Cli) -> i32 {
    let mut all = Vec::new();
    let mut out = std::io::stdout().lock();
    let mut emit = |checks: Vec<Check>, all: &mut Vec<Check>| {
        for c in checks {
            let _ = writeln!(out, "{c}");
            all.push(c);
        }
    };
    let (own, binary) = binary_checks();
    emit(binary, &mut all);
    emit(shim_checks(own.as_ref()), &mut all);
    if let Some(path) = &cli.config {
        emit(config_checks(path, cli), &mut all);
    }
    let program = match &cli.doctor {
        Some(Some(p)) => Some(p.clone()),
        _ => cli.command.first().cloned(),
    };
    if let Some(p) = program {
        match &own {
            Some(own) => {
                let path = std::env::var_os("PATH");
                let forced = match cli.mode {
                    crate::cli::Mode::Auto => None,
                    m => Some(m),
                };
                emit(
                    inspect::mode_checks(&p, path.as_deref(), own, forced, seccomp::unsupported()),
                    &mut all,
                );
            }
            None => emit(
                vec![Check::warn(
                    format!("cannot check {}", p.to_string_lossy()),
                    "the wrapguard binary itself could not be read",
                )],
                &mut all,
            ),
        }
    }
    let fails = all.iter().filter(|c| c.level == Level::Fail).count();
    let warns = all.iter().filter(|c| c.level == Level::Warn).count();
    let _ = match worst(&all) {
        Level::Ok => writeln!(out, "doctor: all {} checks passed", all.len()),
        _ => writeln!(
            out,
            "doctor: {fails} failed, {warns} warning{} (of {} checks)",
            if warns == 1 { "" } else { "s" },
            all.len()
        ),
    };
    if cli.config.is_none() {
        let _ = writeln!(out, "doctor: add --config wg0.conf to check a config too");
    }
    i32::from(fails > 0)
}

/// The running binary: its path and architecture.
fn binary_checks() -> (Option<ElfInfo>, Vec<Check>) {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "wrapguard".into());
    match ElfInfo::own() {
        Ok(i) => {
            let c = Check::ok(format!(
                "wrapguard {} at {exe} ({})",
                env!("CARGO_PKG_VERSION"),
                i.arch()
            ));
            (Some(i), vec![c])
        }
        Err(e) => (
            None,
            vec![Check::warn(
                format!("cannot read the wrapguard binary {exe}: {e}"),
                "run wrapguard from a normal file (not a deleted or unreadable one)",
            )],
        ),
    }
}

/// The shim next to the binary: present, right kind and architecture, loadable.
pub fn shim_checks(own: Option<&ElfInfo>) -> Vec<Check> {
    let mut v = Vec::new();
    let shim = match crate::shim::shim_location() {
        Ok(p) => p,
        Err(e) => {
            v.push(Check::fail(
                format!("{e:#}"),
                "run wrapguard from its build or install directory",
            ));
            return v;
        }
    };
    let shown = shim.display();
    if !shim.is_file() {
        v.push(Check::fail(
            format!("shim {shown} not found: wrapguard needs libwrapguard.so next to its binary"),
            "cargo build --release builds both into target/release/; copy or install them together",
        ));
        return v;
    }
    match ElfInfo::from_path(&shim) {
        Err(e) => {
            v.push(Check::fail(
                format!("shim {shown}: {e}"),
                "rebuild it: cargo build --release",
            ));
            return v;
        }
        Ok(i) => {
            if i.kind != ElfType::SharedObject {
                v.push(Check::fail(
                    format!("shim {shown} is not a shared library"),
                    "rebuild it: cargo build --release",
                ));
                return v;
            }
            if let Some(own) = own {
                if !i.same_arch(own) {
                    v.push(Check::fail(
                        format!("shim {shown} is {}, wrapguard is {}", i.arch(), own.arch()),
                        "build both for the same target: cargo build --release",
                    ));
                    return v;
                }
            }
            v.push(Check::ok(format!("shim {shown} ({})", i.arch())));
        }
    }
    v.push(shim_load_check(&shim));
    v
}

/// Runs wrapguard itself with the shim preloaded and asks whether the
/// loader mapped it.
fn shim_load_check(shim: &Path) -> Check {
    let shown = shim.display();
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            return Check::warn(
                format!("cannot test-load the shim: {e}"),
                "run wrapguard from a normal file",
            )
        }
    };
    let mut c = Command::new(exe);
    c.args([PROBE_ARG, "shim"])
        .arg(shim)
        .env("LD_PRELOAD", shim)
        .env_remove(control::ENV_CONTROL);
    match run_bounded(c, PROBE_WAIT) {
        Err(e) => Check::fail(
            format!("cannot test-load the shim {shown}: {e}"),
            "check that /proc is mounted and the binary runs",
        ),
        Ok(o) => {
            let report = ProbeReport::parse(&String::from_utf8_lossy(&o.stdout));
            if report.shim_loaded {
                Check::ok(format!("shim {shown} loads into a program"))
            } else {
                let why = String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .find(|l| l.contains("ld.so") || l.contains("preload"))
                    .map(|l| format!(": {}", l.trim()))
                    .unwrap_or_default();
                Check::fail(
                    format!("the dynamic loader did not load the shim {shown}{why}"),
                    "rebuild it (cargo build --release) and make sure its directory and file are readable",
                )
            }
        }
    }
}

/// Runs `c` with its output captured, killing it after `limit`.
pub fn run_bounded(mut c: Command, limit: Duration) -> std::io::Result<Output> {
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn()?;
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait()?.is_some() {
            return child.wait_with_output();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait_with_output();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", limit.as_secs()),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The config: parsed, keys, routes, endpoints, permissions, UDP port.
pub fn config_checks(path: &Path, cli: &Cli) -> Vec<Check> {
    let mut v = Vec::new();
    let shown = path.display().to_string();
    let parsed = match Config::from_path(path) {
        Ok(p) => p,
        Err(e) => {
            let fix = match &e {
                LoadError::Io { .. } => {
                    "check the path given to --config (and that you may read it)"
                }
                LoadError::NotUtf8 { .. } => "give a wg-quick text config (see example-wg0.conf)",
                LoadError::Config(_) => {
                    "fix that line; example-wg0.conf shows every key with its format"
                }
            };
            v.push(Check::fail(e.to_string(), fix));
            return v;
        }
    };
    let config = parsed.config;
    let addrs: Vec<String> = config
        .interface
        .addresses
        .iter()
        .map(|a| a.to_string())
        .collect();
    v.push(Check::ok(format!(
        "config {shown} parsed: address {}, {} peer{}",
        if addrs.is_empty() {
            "(none)".to_string()
        } else {
            addrs.join(", ")
        },
        config.peers.len(),
        if config.peers.len() == 1 { "" } else { "s" }
    )));
    for w in &parsed.warnings {
        if let WarningKind::ReadableByOthers { mode } = w.kind {
            v.push(Check::warn(
                format!(
                    "config {shown} holds a private key and other users can read it (mode {:04o})",
                    mode & 0o7777
                ),
                format!("chmod 600 {shown}"),
            ));
            continue;
        }
        let fix = match &w.kind {
            WarningKind::ReadableByOthers { .. } => String::new(),
            WarningKind::IgnoredKey { .. } => {
                "remove the line (wrapguard creates no interface, routes or hooks)".into()
            }
            WarningKind::AllowedIpsOverlap { .. } => {
                "give each prefix to one peer (or use Route = to pick one)".into()
            }
        };
        v.push(Check::warn(w.to_string(), fix));
    }
    let private_file = !parsed
        .warnings
        .iter()
        .any(|w| matches!(w.kind, WarningKind::ReadableByOthers { .. }));
    if private_file {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path) {
            v.push(Check::ok(format!(
                "config {shown} is private (mode {:04o})",
                m.permissions().mode() & 0o7777
            )));
        }
    }
    if config.interface.addresses.is_empty() {
        v.push(Check::fail(
            format!(
                "{shown}:{}: [Interface] has no Address",
                config.interface.line
            ),
            "add Address = <our tunnel address>/<prefix>, e.g. Address = 10.77.0.2/24",
        ));
    }

    // Keys: the parser checked their form; a peer with our own key is an error.
    let private = noise::PrivateKey::from_bytes(*config.interface.private_key.as_bytes());
    let ours = private.public_key().to_base64();
    v.push(Check::ok(format!(
        "keys valid; our public key is {} (each peer lists it as a [Peer] PublicKey)",
        ours.as_str()
    )));
    if ours.as_str() == EXAMPLE_PUBLIC_KEY {
        v.push(Check::warn(
            format!("{shown} uses the private key of example-wg0.conf, which everyone can read"),
            "make your own: wrapguard genkey > wg0.key, put it in PrivateKey, and give wrapguard pubkey < wg0.key to the peer",
        ));
    }
    for p in &config.peers {
        if p.public_key.as_bytes() == private.public_key().as_bytes() {
            v.push(Check::fail(
                format!(
                    "{shown}:{}: this [Peer]'s PublicKey is our own public key",
                    p.line
                ),
                "put the peer's public key here (the output of wrapguard pubkey on the peer's private key)",
            ));
        }
    }

    // Routing options, as the launcher would build them.
    let mut options = RoutingOptions {
        routes: Vec::new(),
        exit_node: cli.exit_node,
    };
    for r in &cli.routes {
        let text = format!("{}:{}", r.prefix, r.peer);
        match RouteFlag::parse(&text) {
            Ok(f) => options.routes.push(f),
            Err(e) => v.push(Check::fail(
                format!("--route={text}: {e}"),
                "use --route CIDR:PEER_IP with PEER_IP inside a peer's AllowedIPs",
            )),
        }
    }
    match Router::new(&config, &options) {
        Ok(r) => v.push(Check::ok(format!(
            "routing table built ({} policy route{})",
            r.policy_routes().len(),
            if r.policy_routes().len() == 1 {
                ""
            } else {
                "s"
            }
        ))),
        Err(e) => v.push(Check::fail(
            e.to_string(),
            "name a peer by an address inside its AllowedIPs",
        )),
    }

    // Peers and endpoints.
    if config.peers.is_empty() {
        v.push(Check::warn(
            format!("{shown}: no [Peer] section: nothing is reachable through the tunnel"),
            "add a [Peer] with PublicKey, AllowedIPs and (usually) Endpoint",
        ));
    }
    for p in &config.peers {
        let label = peer_label(&noise::PublicKey::from_bytes(*p.public_key.as_bytes()).to_base64());
        match &p.endpoint {
            None => v.push(Check::ok(format!(
                "peer {label} ({shown}:{}) has no Endpoint: reachable once it contacts us",
                p.line
            ))),
            Some(Endpoint::Addr(a)) => {
                v.push(Check::ok(format!("peer {label} endpoint {a}")));
            }
            Some(Endpoint::Host { host, port }) => match resolve(host, *port) {
                Ok(a) => v.push(Check::ok(format!(
                    "peer {label} endpoint {host}:{port} resolves to {a}"
                ))),
                Err(e) => v.push(Check::fail(
                    format!(
                        "{shown}:{}: cannot resolve the Endpoint {host}:{port} of peer {label}: {e}",
                        p.line
                    ),
                    "check the name and your DNS, or use an IP address",
                )),
            },
        }
        if p.allowed_ips.is_empty() && p.routes.is_empty() {
            v.push(Check::warn(
                format!(
                    "peer {label} ({shown}:{}) has no AllowedIPs: nothing is routed to it and nothing it sends is accepted",
                    p.line
                ),
                "add AllowedIPs = <the peer's tunnel address>/32 (and the networks behind it)",
            ));
        }
    }

    if let Some(port) = config.interface.listen_port {
        v.push(udp_port_check(port));
    }
    v
}

fn resolve(host: &str, port: u16) -> std::io::Result<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    addrs.sort_by_key(|a| a.is_ipv6());
    addrs
        .into_iter()
        .next()
        .ok_or_else(|| std::io::Error::other("no address found"))
}

/// Whether UDP port `port` can be bound (as the engine will).
fn udp_port_check(port: u16) -> Check {
    let v6 = std::net::UdpSocket::bind(("::", port));
    let r = match v6 {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(e),
        Err(_) => std::net::UdpSocket::bind(("0.0.0.0", port)).map(|_| ()),
    };
    match r {
        Ok(()) => Check::ok(format!("UDP port {port} (ListenPort) is free")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Check::warn(
            format!("UDP port {port} (ListenPort) is in use now (another wrapguard or WireGuard?)"),
            "stop that program, or change ListenPort (remove it for an ephemeral port)",
        ),
        Err(e) => Check::fail(
            format!("cannot bind UDP port {port} (ListenPort): {e}"),
            "pick a port above 1023, or remove ListenPort for an ephemeral port",
        ),
    }
}
