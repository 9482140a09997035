//! `wrapguard`: runs a program with its network traffic carried through a
//! userspace WireGuard tunnel.
//!
//! Flow: parse the command line → logging → check the shim next to our
//! binary → attach to the running engine for our key, or start one
//! ([`share`]: a detached [`engine_proc`] running [`engine::tunnel`] —
//! WireGuard + TCP/IP stack + router on a UDP socket — and the bridge on
//! its control socket) → child with `LD_PRELOAD` → forward signals → exit
//! with the child's status. With `--no-share` (and the test backend) the
//! engine runs in this process instead, with a private control directory.
//! wrapguard never writes to stdout (it belongs to the child), except for
//! the subcommands (`up`, `status`, `down`, `ls`, `genkey`, `pubkey`,
//! `completions`) and the reports of `--doctor` and `--self-test`.

#![deny(clippy::undocumented_unsafe_blocks)]

mod cli;
mod ctldir;
mod doctor;
mod engine_proc;
mod frontends;
mod inspect;
mod keys;
mod logging;
mod probe;
mod rendezvous;
mod report;
mod selftest;
mod share;
mod shim;
mod status_log;
mod tunnels;

use anyhow::{anyhow, Context, Result};
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};
use cli::{Cli, Helper, LogLevel, Mode};
use engine::FlowBackend;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{debug, error, info};

/// How long wrapguard waits at exit for flows that are closing.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_millis(300);

fn main() {
    if let Some(code) = probe::run_if_requested() {
        std::process::exit(code);
    }
    // The shim's hand-off of an exec into seccomp mode (before clap: the
    // program's own arguments follow).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == control::SECCOMP_EXEC_ARG) {
        seccomp::attach::exec(&args[2..]);
    }
    let matches = Cli::command()
        .try_get_matches()
        .unwrap_or_else(|e| usage_error(e));
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some(fd) = cli.internal_engine {
        std::process::exit(engine_proc::run(&cli, fd));
    }
    if cli.doctor.is_some()
        || cli
            .helper
            .as_ref()
            .is_some_and(|h| !matches!(h, Helper::Exec { .. }))
    {
        die_on_closed_stdout();
    }
    match &cli.helper {
        Some(Helper::Up {
            config,
            name,
            exit_node,
            routes,
            log_level,
            log_file,
            timeout,
            tcp_congestion,
        }) => {
            let up = tunnels::Up {
                tcp_congestion: *tcp_congestion,
                config,
                name: name.as_deref(),
                exit_node: *exit_node,
                routes,
                log_level: *log_level,
                log_file: log_file.as_deref(),
                timeout: std::time::Duration::from_secs(*timeout),
            };
            std::process::exit(tunnels::up(&up).unwrap_or_else(|e| tunnels::fail(&e)));
        }
        Some(Helper::Status {
            name,
            json,
            flows: true,
        }) => std::process::exit(
            tunnels::flows(name.as_deref(), *json).unwrap_or_else(|e| tunnels::fail(&e)),
        ),
        Some(Helper::Status { name, json, .. }) => std::process::exit(
            tunnels::status(name.as_deref(), *json).unwrap_or_else(|e| tunnels::fail(&e)),
        ),
        Some(Helper::Down { name, config }) => std::process::exit(
            tunnels::down(name.as_deref(), config.as_deref()).unwrap_or_else(|e| tunnels::fail(&e)),
        ),
        Some(Helper::Ls { json }) => {
            std::process::exit(tunnels::ls(*json).unwrap_or_else(|e| tunnels::fail(&e)))
        }
        Some(Helper::Exec {
            name,
            config,
            mode,
            log_level,
            log_file,
            command,
        }) => {
            let (config, start) = match (name, config) {
                (Some(n), _) => match tunnels::config_of(n) {
                    Ok(c) => (c, share::Start::Never),
                    Err(e) => std::process::exit(tunnels::fail(&e)),
                },
                (None, Some(c)) => (c.clone(), share::Start::IfNeeded),
                (None, None) => unreachable_usage(),
            };
            let mut argv: Vec<std::ffi::OsString> =
                vec!["wrapguard".into(), "--config".into(), config.into()];
            argv.push(
                format!(
                    "--mode={}",
                    mode.to_possible_value()
                        .map(|v| v.get_name().to_string())
                        .unwrap_or_default()
                )
                .into(),
            );
            argv.push(format!("--log-level={}", log_level.name()).into());
            if let Some(f) = log_file {
                argv.push("--log-file".into());
                argv.push(f.into());
            }
            argv.push("--".into());
            argv.extend(command.iter().cloned());
            let exec_cli = Cli::try_parse_from(argv).unwrap_or_else(|e| usage_error(e));
            std::process::exit(finish(run(&exec_cli, exec_cli.log_level, start)));
        }
        Some(Helper::Genkey) => std::process::exit(keys::genkey()),
        Some(Helper::Pubkey) => std::process::exit(keys::pubkey()),
        Some(Helper::Completions { shell }) => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "wrapguard",
                &mut std::io::stdout(),
            );
            std::process::exit(0);
        }
        None => {}
    }
    if cli.command.is_empty() && !cli.self_test && cli.doctor.is_none() && !frontends::asked(&cli) {
        eprintln!("wrapguard: the following required arguments were not provided:; <COMMAND>... (put the program after --, e.g. wrapguard --config wg0.conf -- curl http://10.0.0.1/, or use --self-test, or serve a proxy: --socks5 127.0.0.1:1080); see wrapguard --help");
        std::process::exit(2);
    }
    if cli.doctor.is_some() {
        std::process::exit(doctor::run(&cli));
    }
    // The self-test's report is its output; logs only for problems unless asked.
    let level =
        if cli.self_test && matches.value_source("log_level") != Some(ValueSource::CommandLine) {
            LogLevel::Warn
        } else {
            cli.log_level
        };
    std::process::exit(finish(run(&cli, level, share::Start::IfNeeded)));
}

/// The exit code of a run; an error is printed as one line: the JSON log
/// line on stderr, or, when logs go to a file, the log line there plus a
/// plain line on stderr.
fn finish(r: Result<i32>) -> i32 {
    match r {
        Ok(code) => code,
        Err(e) => {
            error!("{e:#}");
            if !logging::to_stderr() {
                eprintln!("wrapguard: {e:#}");
            }
            1
        }
    }
}

/// For the commands whose output is a report (`status`, `ls`, `up`,
/// `down`, `genkey`, `pubkey`, `completions`, `--doctor`): a reader that
/// goes away (`wrapguard status | head -1`, `| true`) ends the process
/// quietly by `SIGPIPE`, as it ends `ls`, instead of a panic from the
/// Rust runtime's ignored `SIGPIPE` and a failed print. These processes
/// carry no tunnel traffic (an engine they start is a process of its own,
/// which ignores `SIGPIPE` again).
fn die_on_closed_stdout() {
    // SAFETY: restoring the default disposition of one signal; no handler.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// clap enforces a name or `--config` for `exec`.
fn unreachable_usage() -> ! {
    eprintln!("wrapguard: exec needs a tunnel name or --config; see wrapguard exec --help");
    std::process::exit(2);
}

/// Prints a command-line error as one line (what, then clap's tip, then
/// where to look) and exits with status 2; help and version pass through.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let text = e.render().to_string();
    let mut parts: Vec<String> = Vec::new();
    for l in text.lines() {
        let l = l.trim();
        if l.starts_with("Usage:") {
            // Usage and "For more information" follow the message.
            break;
        }
        if !l.is_empty() && !l.starts_with("For more information") {
            parts.push(l.trim_start_matches("error: ").to_string());
        }
    }
    let mut line = parts.join("; ");
    if e.kind() == ErrorKind::MissingRequiredArgument && line.contains("<COMMAND>") {
        line.push_str(" (put the program after --, e.g. wrapguard --config wg0.conf -- curl http://10.0.0.1/, or use --self-test)");
    }
    eprintln!("wrapguard: {line}; see wrapguard --help");
    std::process::exit(2);
}

/// Environment variable that lets a program the shim cannot enter run
/// anyway (its traffic then bypasses the tunnel).
const ENV_ALLOW_UNCARRIED: &str = "WRAPGUARD_ALLOW_UNCARRIED";

/// How the child's socket calls are carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Carry {
    /// `LD_PRELOAD` shim.
    Preload,
    /// Seccomp user notification.
    Seccomp,
}

/// Picks the mode for the program (`--mode`, and for `auto` what the
/// program is), and refuses, before anything starts, a program neither
/// mode can carry (set-user-ID, another architecture…): its traffic would
/// silently bypass the tunnel. `WRAPGUARD_ALLOW_UNCARRIED=1` runs it
/// anyway, with a warning.
fn choose_carry(cli: &Cli) -> Result<Carry> {
    let forced = match cli.mode {
        Mode::Auto => None,
        m => Some(m),
    };
    let fallback = if cli.mode == Mode::Seccomp {
        Carry::Seccomp
    } else {
        Carry::Preload
    };
    let (Some(prog), Ok(own)) = (cli.command.first(), inspect::ElfInfo::own()) else {
        return Ok(fallback); // nothing to inspect; the loader will tell
    };
    let path = std::env::var_os("PATH");
    let shown = prog.to_string_lossy();
    match inspect::choose_mode(prog, path.as_deref(), &own, forced) {
        inspect::ModeChoice::Preload => Ok(Carry::Preload),
        inspect::ModeChoice::Seccomp { why } => {
            if let Some(e) = seccomp::unsupported() {
                return Err(match why {
                    Some(w) => anyhow!("refusing to run {shown}: {w}; and {e}"),
                    None => anyhow!("{e}; use --mode=preload"),
                });
            }
            match why {
                Some(w) => info!("Mode: seccomp ({w})"),
                None => info!("Mode: seccomp"),
            }
            Ok(Carry::Seccomp)
        }
        inspect::ModeChoice::Refuse(c) => {
            if std::env::var_os(ENV_ALLOW_UNCARRIED).is_some_and(|v| v == "1") {
                tracing::warn!(
                    "{}; running it anyway ({ENV_ALLOW_UNCARRIED}=1): its traffic bypasses the tunnel",
                    c.what
                );
                return Ok(fallback);
            }
            Err(anyhow!(
                "refusing to run {shown}: {}; {} (or set {ENV_ALLOW_UNCARRIED}=1 to run it outside the tunnel)",
                c.what,
                c.fix
            ))
        }
    }
}

/// Everything; returns the exit code. All guards (control directory,
/// lease…) are dropped before this returns.
fn run(cli: &Cli, level: LogLevel, start: share::Start) -> Result<i32> {
    if let Err(e) = logging::init(level, cli.log_file.as_deref()) {
        let p = cli.log_file.as_deref().unwrap_or(std::path::Path::new(""));
        return Err(anyhow!(
            "cannot open log file {}: {e}; check that its directory exists and is writable, or drop --log-file",
            p.display()
        ));
    }
    info!("WrapGuard v{} initialized", env!("CARGO_PKG_VERSION"));
    if cli.self_test {
        return selftest::run(cli);
    }

    let carry = choose_carry(cli)?;
    // Seccomp mode does not load the shim into the program.
    let shim = match carry {
        Carry::Preload if cli.command.is_empty() => PathBuf::new(), // front-ends only
        Carry::Preload => {
            let s = shim::shim_path()?;
            info!("Shim: {}", s.display());
            s
        }
        Carry::Seccomp => PathBuf::new(),
    };

    let config = cli
        .config
        .as_deref()
        .ok_or_else(|| anyhow!("no config given; pass --config wg0.conf"))?;
    if let Err(e) = std::fs::metadata(config).and_then(|m| {
        if m.is_file() {
            Ok(())
        } else {
            Err(std::io::Error::other("not a regular file"))
        }
    }) {
        return Err(anyhow!(
            "cannot read config {}: {e}; check the path given to --config",
            config.display()
        ));
    }
    info!("Config: {}", config.display());
    let fronts = frontends::settings(cli)?;
    if let Some(ip) = cli.exit_node {
        info!("Exit node: {ip}");
    }
    for r in &cli.routes {
        info!("Route: {} via {}", r.prefix, r.peer);
    }

    let shared = cli.test_backend_map.is_empty() && !cli.no_share;
    let tunnel = if shared {
        let attached = share::attach(cli, start, &command_line(cli))?;
        let d = &attached.desc;
        info!(backend = "wireguard", "Engine: wireguard");
        for a in &d.interface {
            info!("Interface: {a}");
        }
        for p in &d.peers {
            info!("Peer: {p}");
        }
        if attached.started {
            info!(
                "Tunnel: {} (engine pid {}; later instances with this key share it)",
                d.name, d.pid
            );
        } else {
            info!(
                "Tunnel: {} (engine pid {}, shared with the programs already on it)",
                d.name, d.pid
            );
        }
        Tunnel::Shared(Box::new(attached))
    } else {
        if cli.no_share {
            tracing::warn!("--no-share: this instance runs a WireGuard session of its own; if another runs with the same private key, the peer follows whichever handshook last, so the two take turns losing traffic");
        }
        let backend = private_backend(cli)?;
        Tunnel::Private { backend, dir: None }
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // Signal handlers before the control directory exists, so no signal can
    // end us between its creation and its removal.
    let sigs = {
        let _in_rt = rt.enter();
        signals()?
    };
    let mut tunnel = tunnel;
    if let Tunnel::Private { dir, .. } = &mut tunnel {
        *dir = Some(ctldir::ControlDir::create()?);
    }
    let code = rt.block_on(supervise(cli, carry, &shim, &mut tunnel, sigs, fronts));
    rt.shutdown_background();
    if let Tunnel::Shared(a) = tunnel {
        a.release();
    }
    code
}

/// The program's command line, for the status report.
fn command_line(cli: &Cli) -> String {
    cli.command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// An engine in this process (`--no-share`, the test backend), with its
/// startup lines logged.
fn private_backend(cli: &Cli) -> Result<Arc<dyn FlowBackend>> {
    let backend: Arc<dyn FlowBackend> = if cli.test_backend_map.is_empty() {
        Arc::new(engine::tunnel::start(&cli.tunnel_options()?)?)
    } else {
        Arc::new(engine::loopback::HostLoopbackBackend::new(
            cli.test_backend_map
                .iter()
                .map(|m| (m.prefix.net(), m.target))
                .collect(),
            cli.test_backend_addr,
            cli.test_backend_inbound,
            cli.test_backend_peer,
        ))
    };
    let bi = backend.info();
    info!(backend = backend.name(), "Engine: {}", backend.name());
    if bi.interface.is_empty() {
        for a in &bi.addresses {
            info!("Interface: {a}");
        }
    }
    for a in &bi.interface {
        info!("Interface: {a}");
    }
    for p in &bi.peers {
        info!("Peer: {p}");
    }
    Ok(backend)
}

/// The engine carrying this instance's program.
enum Tunnel {
    /// In this process, with its private control directory.
    Private {
        backend: Arc<dyn FlowBackend>,
        dir: Option<ctldir::ControlDir>,
    },
    /// A shared engine process, through a lease.
    Shared(Box<share::Attached>),
}

impl Tunnel {
    fn socket_path(&self) -> PathBuf {
        match self {
            Tunnel::Private { dir, .. } => {
                dir.as_ref().map(|d| d.socket_path()).unwrap_or_default()
            }
            Tunnel::Shared(a) => a.socket.clone(),
        }
    }

    /// The shared engine's live report.
    fn report(&self) -> Option<engine::session::StatusReport> {
        let Tunnel::Shared(a) = self else { return None };
        match engine::session::client::ask(&a.socket, &engine::session::SessionRequest::Status) {
            Ok(engine::session::SessionReply::Status(r)) => Some(*r),
            _ => None,
        }
    }

    /// Logs the per-peer status report at `level`.
    fn log_status(&self, level: tracing::Level) {
        match self {
            Tunnel::Private { backend, .. } => status_log::log_status(backend.as_ref(), level),
            Tunnel::Shared(_) => {
                let Some(r) = tokio::task::block_in_place(|| self.report()) else {
                    return tracing::warn!("cannot read the tunnel's status from its engine");
                };
                let peers: Vec<engine::PeerStatus> =
                    r.peers.iter().map(engine::PeerStatus::from).collect();
                status_log::log_report(&peers, r.counters_line.as_deref(), level);
            }
        }
    }

    /// Open flows of this instance's program (all of the engine's when it
    /// is ours alone).
    fn own_flows(&self) -> usize {
        match self {
            Tunnel::Private { backend, .. } => backend.active_flows(),
            Tunnel::Shared(a) => self
                .report()
                .and_then(|r| {
                    r.programs
                        .iter()
                        .find(|p| p.lease == a.lease)
                        .map(|p| p.flows)
                })
                .unwrap_or(0),
        }
    }
}

/// Signal handlers: the ones forwarded to the child (with their numbers),
/// and SIGUSR1 (status report).
struct Signals {
    forward: Vec<(i32, tokio::signal::unix::Signal)>,
    status: tokio::signal::unix::Signal,
}

/// The number of the next of the `forward` signals that arrives.
async fn next_forwarded(forward: &mut [(i32, tokio::signal::unix::Signal)]) -> i32 {
    let futs = forward.iter_mut().map(|(n, s)| {
        let n = *n;
        Box::pin(async move {
            s.recv().await;
            n
        })
    });
    futures_select(futs).await
}

/// Installs handlers for the forwarded signals and SIGUSR1 (needs a
/// runtime context).
fn signals() -> Result<Signals> {
    let kinds = [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
        SignalKind::quit(),
    ];
    let mut sigs = Vec::new();
    for k in kinds {
        sigs.push((
            k.as_raw_value(),
            signal(k).context("cannot install signal handlers")?,
        ));
    }
    Ok(Signals {
        forward: sigs,
        status: signal(SignalKind::user_defined1()).context("cannot install signal handlers")?,
    })
}

async fn supervise(
    cli: &Cli,
    carry: Carry,
    shim: &std::path::Path,
    tunnel: &mut Tunnel,
    mut sigs: Signals,
    fronts: proxy::Settings,
) -> Result<i32> {
    let sock = tunnel.socket_path();
    let mut private_holds = None;
    if let Tunnel::Private { backend, .. } = &*tunnel {
        let listener = tokio::net::UnixListener::bind(&sock)
            .with_context(|| format!("cannot bind control socket {}", sock.display()))?;
        debug!(socket = %sock.display(), "control socket ready");
        private_holds = Some(engine::bridge::spawn(
            listener,
            backend.clone(),
            Some(Arc::new(seccomp::Attacher)),
            None,
        ));
    }

    frontends::start(fronts, &sock).await?;
    if cli.command.is_empty() {
        return serve_until_signal(tunnel, &mut sigs).await;
    }
    let (prog, args) = cli
        .command
        .split_first()
        .ok_or_else(|| anyhow!("no command given; put it after --, e.g. wrapguard --config wg0.conf -- curl http://10.0.0.1/"))?;
    let shown: Vec<String> = cli
        .command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    info!("Launching: {}", shown.join(" "));
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args);
    let mut handoff = None;
    match carry {
        Carry::Preload => {
            cmd.env("LD_PRELOAD", shim::ld_preload_value(shim))
                .env(control::ENV_CONTROL, &sock)
                .env(control::ENV_PRELOAD, shim);
            // Auto mode follows the program into what it execs: the shim
            // hands programs it cannot enter to us (`seccomp::attach`).
            if cli.mode == Mode::Auto && seccomp::unsupported().is_none() {
                match std::env::current_exe() {
                    Ok(me) => {
                        cmd.env(control::ENV_LAUNCHER, me);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot find our own binary: programs the shim cannot enter, exec'd by {}, would not be carried", prog.to_string_lossy())
                    }
                }
            }
        }
        Carry::Seccomp => {
            let (child_side, parent_side, ends) =
                seccomp::child::handoff(&seccomp::filter::program())
                    .context("cannot prepare the seccomp filter")?;
            // SAFETY: the hook runs between fork and exec and only makes
            // async-signal-safe system calls (prctl, seccomp, write, read).
            unsafe { cmd.pre_exec(move || child_side.install()) };
            handoff = Some((parent_side.receive(), ends));
        }
    }
    let child = cmd.spawn();
    if let Some((receiver, ends)) = handoff {
        drop(ends); // a child that failed before the hand-off: EOF
        match receiver.join() {
            Ok(Ok(listener)) if child.is_ok() => supervise_seccomp(tunnel, listener, &sock)?,
            Ok(Err(e)) if child.is_err() => {
                debug!(error = %e, "seccomp hand-off did not happen");
            }
            _ => {}
        }
    }
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            // As shells do: 127 for a missing command, 126 for one that cannot run.
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            let p = prog.to_string_lossy();
            let msg = format!("cannot launch {p}: {e}; check the name and PATH (wrapguard --doctor {p} explains what is wrong)");
            error!("{msg}");
            if !logging::to_stderr() {
                eprintln!("wrapguard: {msg}");
            }
            return Ok(code);
        }
    };
    let pid = child.id().map(|p| p as libc::pid_t);
    if let (Tunnel::Shared(a), Some(p)) = (&mut *tunnel, child.id()) {
        a.program(p);
    }

    let status = loop {
        let next_signal = next_forwarded(&mut sigs.forward);
        tokio::select! {
            st = child.wait() => break st.context("waiting for the child")?,
            _ = sigs.status.recv() => tunnel.log_status(tracing::Level::INFO),
            n = next_signal => {
                debug!(signal = n, "forwarding signal to the child");
                if let Some(pid) = pid {
                    // SAFETY: sending a signal to our own child.
                    unsafe { libc::kill(pid, n) };
                }
            }
        }
    };
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 1,
    };
    info!(code, "Child exited");
    // Flows the child just closed finish within milliseconds; wait a little
    // so their closing lines (bytes, duration) reach the log.
    let deadline = tokio::time::Instant::now() + EXIT_GRACE;
    while tokio::task::block_in_place(|| tunnel.own_flows()) > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // A flow closes as soon as the engine has read its last data; what
    // that data became must leave before the process does (a shared
    // engine outlives us, and settles when it exits).
    if let Tunnel::Private { backend, .. } = &*tunnel {
        let settling = backend.clone();
        let _ = tokio::task::spawn_blocking(move || settling.settle()).await;
    }
    if cli.log_level == LogLevel::Debug {
        tunnel.log_status(tracing::Level::DEBUG);
    }
    if let Some(holds) = private_holds {
        warn_background(&holds).await;
    }
    Ok(code)
}

/// Has the seccomp filter of the child supervised: by a shared engine,
/// which keeps doing it after we return, for as long as any process is
/// under the filter (a program that put itself in the background keeps
/// its tunnel); by this process with `--no-share` (the supervisor ends
/// with us), or when the engine cannot take it.
fn supervise_seccomp(
    tunnel: &Tunnel,
    listener: std::os::fd::OwnedFd,
    sock: &std::path::Path,
) -> Result<()> {
    use std::os::fd::AsRawFd;
    if let Tunnel::Shared(_) = tunnel {
        match tokio::task::block_in_place(|| seccomp::attach::hand_over(sock, listener.as_raw_fd()))
        {
            Ok(()) => {
                debug!("the tunnel engine supervises the seccomp filter");
                return Ok(());
            }
            Err(e) => tracing::warn!(
                error = %e,
                "the tunnel engine cannot supervise the seccomp filter ({e}); wrapguard does, so processes the program leaves in the background lose the tunnel when it exits"
            ),
        }
    }
    seccomp::start(listener, sock.to_path_buf()).context("cannot start the seccomp supervisor")
}

/// With an engine in this process (`--no-share`): processes started under
/// wrapguard that still run when the program has exited (it put them in
/// the background) lose the tunnel as we exit; say so, naming them.
async fn warn_background(holds: &engine::session::holds::Holds) {
    // The program's own hold closes as the engine notices its exit.
    let deadline = tokio::time::Instant::now() + EXIT_GRACE;
    while !holds.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let alive = |p: u32| std::path::Path::new(&format!("/proc/{p}")).exists();
    let left: Vec<String> = holds
        .background(&[], alive)
        .iter()
        .filter_map(|b| b.pid)
        .map(|p| p.to_string())
        .collect();
    if !left.is_empty() {
        tracing::warn!(
            pids = %left.join(","),
            "processes started under wrapguard still run (pid {}): with --no-share the tunnel ends with wrapguard, so their tunnel connections are cut and new ones fail; drop --no-share (a shared engine stays up for them) or use wrapguard up",
            left.join(", ")
        );
    }
}

/// With front-ends and no program: serve until SIGINT, SIGTERM, SIGHUP or
/// SIGQUIT (SIGUSR1 logs the status report).
async fn serve_until_signal(tunnel: &Tunnel, sigs: &mut Signals) -> Result<i32> {
    info!("Serving until interrupted (no program given)");
    loop {
        let next_signal = next_forwarded(&mut sigs.forward);
        tokio::select! {
            _ = sigs.status.recv() => tunnel.log_status(tracing::Level::INFO),
            n = next_signal => {
                info!(signal = n, "Stopping");
                return Ok(0);
            }
        }
    }
}

/// The first of several futures to complete (tiny `select_all`).
async fn futures_select<F: std::future::Future<Output = i32> + Unpin>(
    futs: impl Iterator<Item = F>,
) -> i32 {
    let mut futs: Vec<F> = futs.collect();
    std::future::poll_fn(move |cx| {
        for f in futs.iter_mut() {
            if let std::task::Poll::Ready(v) = std::pin::Pin::new(f).poll(cx) {
                return std::task::Poll::Ready(v);
            }
        }
        std::task::Poll::Pending
    })
    .await
}
