//! The shared tunnel engine as a process of its own:
//! `wrapguard --internal-engine FD --engine-socket PATH --engine-name NAME
//! [--engine-persist] --config … `, started detached (its own session) by
//! the first wrapguard instance of a key ([`crate::share`]) or by `up`.
//!
//! It starts the tunnel, binds the control socket, and reports on `FD`:
//! `OK` once instances may attach, or `ERR <reason>` (the starting
//! instance prints the reason as its own error). Until then its log lines
//! go where the starting instance's go; from then on they are forwarded to
//! the attached instances (and, for `up`, written to the tunnel's log
//! file), so no terminal or pipe is held by a process that outlives its
//! instance.
//!
//! It exits when taken down (`wrapguard down`, SIGTERM, SIGINT) or, unless
//! persistent, when its last attached instance is gone; it removes its
//! socket first, so the next instance starts a fresh engine.

use crate::cli::Cli;
use crate::{logging, rendezvous};
use anyhow::{anyhow, Context, Result};
use engine::session::facts;
use engine::session::host::ExitReason;
use engine::session::{Description, Host};
use engine::FlowBackend;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{info, warn};

/// How long a taken-down engine keeps running so the "taken down" events
/// reach the attached instances.
const DOWN_FLUSH: Duration = Duration::from_millis(300);

/// Runs the engine process; returns its exit code.
pub fn run(cli: &Cli, fd: i32) -> i32 {
    // SAFETY: the starting instance passed us this descriptor (the write
    // end of a pipe) for our use alone.
    let mut ready = unsafe { std::fs::File::from_raw_fd(fd) };
    if let Err(e) = logging::init(cli.log_level, cli.log_file.as_deref()) {
        let _ = writeln!(ready, "ERR cannot open the log file: {e}");
        return 1;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(ready, "ERR cannot start the async runtime: {e}");
            return 1;
        }
    };
    let started = {
        let _in_rt = rt.enter();
        start(cli)
    };
    let Started {
        backend,
        host,
        socket,
        ino,
    } = match started {
        Ok(x) => x,
        Err(e) => {
            let _ = writeln!(ready, "ERR {e:#}");
            return 1;
        }
    };
    // Detached from here on: lines go to the attached instances (and a
    // persistent engine's log file), never to the starter's stderr.
    let keep = if cli.engine_persist {
        cli.log_file.as_deref().and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
                .map(|f| Box::new(f) as Box<dyn Write + Send>)
        })
    } else {
        None
    };
    logging::stop_direct(keep);
    detach_stdio();
    let _ = writeln!(ready, "OK");
    drop(ready);

    let reason = rt.block_on(serve(&host, backend.as_ref()));
    // Unlinked first (under the start lock, so never a successor's): the
    // next instance starts a fresh engine instead of finding this one. The
    // lock is held until the process is gone: the next engine must not
    // start before this one's UDP socket (its ListenPort) is closed. (The
    // lock's descriptor is the newest, so the kernel closes it last.)
    let lock = rendezvous::StartLock::take(&socket).ok();
    rendezvous::remove_if_ours(&socket, ino);
    if reason == ExitReason::Down {
        std::thread::sleep(DOWN_FLUSH);
    }
    let settling = backend.clone();
    let _ = std::thread::spawn(move || settling.settle()).join();
    info!("tunnel engine exits");
    rt.shutdown_timeout(Duration::from_millis(100));
    std::mem::forget(lock);
    0
}

/// A started engine.
struct Started {
    backend: Arc<dyn FlowBackend>,
    host: Arc<Host>,
    /// The control socket, and its inode (to remove it only if still ours).
    socket: PathBuf,
    ino: u64,
}

/// Starts the tunnel and the bridge.
fn start(cli: &Cli) -> Result<Started> {
    let socket = cli
        .engine_socket
        .clone()
        .ok_or_else(|| anyhow!("no --engine-socket"))?;
    let config = cli
        .config
        .clone()
        .ok_or_else(|| anyhow!("no config given"))?;
    let parsed = router::Config::from_path(&config).map_err(|e| anyhow!("{e}"))?;
    let overrides = cli.overrides()?;
    let backend: Arc<dyn FlowBackend> = Arc::new(engine::tunnel::start(&cli.tunnel_options()?)?);
    let info = backend.info();
    let listener = tokio::net::UnixListener::bind(&socket)
        .with_context(|| format!("cannot bind the tunnel's socket {}", socket.display()))?;
    let ino = std::fs::symlink_metadata(&socket)
        .map(|m| m.ino())
        .unwrap_or(0);
    let interface = if info.interface.is_empty() {
        info.addresses.iter().map(|a| a.to_string()).collect()
    } else {
        info.interface.clone()
    };
    let desc = Description {
        name: cli
            .engine_name
            .clone()
            .unwrap_or_else(|| default_name(&config)),
        pid: std::process::id(),
        config: config.display().to_string(),
        public_key: facts::public_key(&parsed.config),
        persistent: cli.engine_persist,
        started_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        version: env!("CARGO_PKG_VERSION").to_string(),
        facts: facts::facts(&parsed.config, &overrides),
        interface,
        peers: info.peers.clone(),
        socket: socket.display().to_string(),
    };
    let host = Arc::new(Host::new(desc));
    let fwd = host.clone();
    logging::forward_to(move |level, line| fwd.forward_log(level, line));
    host.on_attach(logging::raise_level);
    engine::bridge::spawn(
        listener,
        backend.clone(),
        Some(Arc::new(seccomp::Attacher)),
        Some(host.clone()),
    );
    Ok(Started {
        backend,
        host,
        socket,
        ino,
    })
}

/// A tunnel's default name: its config file's name without `.conf`.
pub fn default_name(config: &Path) -> String {
    config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "wg".to_string())
}

/// Points stdin, stdout and stderr at /dev/null, so that the engine holds
/// no terminal or pipe of the instance that started it.
fn detach_stdio() {
    let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    else {
        return;
    };
    use std::os::fd::AsRawFd;
    for fd in 0..=2 {
        // SAFETY: dup2 onto the standard descriptors, from one we own.
        unsafe { libc::dup2(null.as_raw_fd(), fd) };
    }
}

/// Runs until the engine is to exit; SIGUSR1 logs the status report,
/// SIGTERM and SIGINT take the tunnel down.
async fn serve(host: &Host, backend: &dyn FlowBackend) -> ExitReason {
    let (Ok(mut usr1), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::user_defined1()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot install the engine's signal handlers");
        return host.wait_exit().await;
    };
    loop {
        tokio::select! {
            r = host.wait_exit() => return r,
            _ = usr1.recv() => crate::status_log::log_status(backend, tracing::Level::INFO),
            _ = term.recv() => host.take_down(backend.active_flows()),
            _ = int.recv() => host.take_down(backend.active_flows()),
        }
    }
}
