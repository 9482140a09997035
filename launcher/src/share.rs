//! One tunnel per key: an instance attaches to the engine already running
//! for its private key (in this network namespace), or starts one
//! ([`crate::engine_proc`]) and attaches to it. Attached, it holds a lease
//! for as long as its program runs, and writes the engine's log lines it
//! receives as its own.
//!
//! A running engine whose config means something else (other peers,
//! routes, addresses, DNS…) is not attached to: the instance fails with
//! what differs and what to do.

use crate::cli::Cli;
use crate::{engine_proc, logging, rendezvous};
use anyhow::{anyhow, bail, Context, Result};
use engine::session::client::{Session, SessionWriter};
use engine::session::{facts, Description, LeaseEvent, SessionReply, SessionRequest};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;
use tracing::{debug, info, warn};

/// How long the starting instance waits for a new engine to be ready
/// (resolving endpoint names may take a while).
const START_WAIT: Duration = Duration::from_secs(60);
/// How often an instance retries when the engine it found was just stopping.
const ATTACH_TRIES: usize = 100;
/// How long an instance waits, at its exit, for the engine to flush its
/// lines and end the lease.
const RELEASE_WAIT: Duration = Duration::from_millis(500);

/// Whether a new engine may be started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Attach, or start one (the main form).
    IfNeeded,
    /// Attach only (`exec NAME`).
    Never,
}

/// A lease on a shared engine.
pub struct Attached {
    /// The engine.
    pub desc: Description,
    /// Its control socket.
    pub socket: PathBuf,
    /// Whether this instance started it.
    pub started: bool,
    /// The lease's id.
    pub lease: u64,
    writer: SessionWriter,
    released: mpsc::Receiver<()>,
}

impl Attached {
    /// Tells the engine the program runs as `pid`.
    pub fn program(&mut self, pid: u32) {
        let _ = self.writer.send(&SessionRequest::Program { pid });
    }

    /// Ends the lease once the engine has sent every line queued for it.
    pub fn release(mut self) {
        if self.writer.send(&SessionRequest::Release).is_ok() {
            let _ = self.released.recv_timeout(RELEASE_WAIT);
        }
    }
}

/// What the config given to this instance means, and its key.
fn our_facts(
    cli: &Cli,
    config: &Path,
) -> Result<(String, std::collections::BTreeMap<String, String>)> {
    let parsed = router::Config::from_path(config).map_err(|e| anyhow!("{e}"))?;
    Ok((
        facts::public_key(&parsed.config),
        facts::facts(&parsed.config, &cli.overrides()?),
    ))
}

/// Attaches this instance (running `command`) to the engine for its key,
/// starting one first if there is none and `start` allows.
pub fn attach(cli: &Cli, start: Start, command: &str) -> Result<Attached> {
    let config = cli
        .config
        .as_deref()
        .ok_or_else(|| anyhow!("no config given; pass --config wg0.conf"))?;
    let config = std::fs::canonicalize(config)
        .with_context(|| format!("cannot read config {}", config.display()))?;
    let (key, ours) = our_facts(cli, &config)?;
    let dir = rendezvous::dir()?;
    let socket = rendezvous::socket_path(&dir, &key);
    let mut started = false;
    for _ in 0..ATTACH_TRIES {
        let lock = rendezvous::StartLock::take(&socket)?;
        match Session::connect(&socket) {
            Ok(mut s) => {
                drop(lock);
                let desc = match s.exchange(&SessionRequest::Describe)? {
                    SessionReply::Described(d) => d,
                    other => bail!("unexpected answer from the tunnel engine: {other:?}"),
                };
                let diff = facts::differences(&ours, &desc.facts);
                if !diff.is_empty() {
                    bail!(
                        "tunnel {} (engine pid {}, from {}) already runs with this private key and another config: {}; use the same config, stop it first (wrapguard down {}), or pass --no-share for a second session (the two then fight over the peer)",
                        desc.name,
                        desc.pid,
                        desc.config,
                        diff.join("; "),
                        desc.name
                    );
                }
                // One request per connection: the lease is a new one.
                drop(s);
                let s = match Session::connect(&socket) {
                    Ok(s) => s,
                    // Gone since: start again.
                    Err(_) => continue,
                };
                match lease(s, &desc, cli, command)? {
                    Some((lease, writer, released)) => {
                        return Ok(Attached {
                            desc,
                            socket,
                            started,
                            lease,
                            writer,
                            released,
                        })
                    }
                    // It is stopping: it removes its socket; try again.
                    None => std::thread::sleep(Duration::from_millis(30)),
                }
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ECONNREFUSED)) => {
                if start == Start::Never {
                    bail!("no tunnel runs for {} (its engine is gone); start it with wrapguard up --config {}", config.display(), config.display());
                }
                if e.raw_os_error() == Some(libc::ECONNREFUSED) {
                    debug!(socket = %socket.display(), "removing the socket of an engine that is gone");
                    let _ = std::fs::remove_file(&socket);
                }
                spawn_engine(cli, &config, &socket, None, false, None)?;
                started = true;
                drop(lock);
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot reach the tunnel engine at {}", socket.display())
                })
            }
        }
    }
    bail!(
        "the tunnel engine at {} kept stopping; try again",
        socket.display()
    )
}

type Lease = (u64, SessionWriter, mpsc::Receiver<()>);

/// Takes a lease on `s`; `None` when the engine is stopping. Starts the
/// thread that writes the engine's lines and notices its end.
fn lease(mut s: Session, desc: &Description, cli: &Cli, command: &str) -> Result<Option<Lease>> {
    let r = s.exchange(&SessionRequest::Attach {
        pid: std::process::id(),
        command: command.to_string(),
        log_level: cli.log_level.name().to_string(),
    })?;
    let id = match r {
        SessionReply::Attached { lease } => lease,
        SessionReply::Refused { reason } if reason == "stopping" => return Ok(None),
        SessionReply::Refused { reason } => bail!("the tunnel engine refused us: {reason}"),
        other => bail!("unexpected answer from the tunnel engine: {other:?}"),
    };
    s.set_timeout(None)?;
    let writer = s.writer()?;
    let (tx, released) = mpsc::channel();
    let (name, pid) = (desc.name.clone(), desc.pid);
    std::thread::Builder::new()
        .name("lease".into())
        .spawn(move || loop {
            match s.event() {
                Ok(LeaseEvent::Log { level, line }) => logging::write_forwarded(&level, &line),
                Ok(LeaseEvent::Down { cut }) => warn!(
                    cut,
                    "tunnel {name} was taken down (wrapguard down): {cut} tunnel connections cut; the program goes on without the tunnel"
                ),
                Ok(LeaseEvent::Released) => {
                    let _ = tx.send(());
                    return;
                }
                Err(_) => {
                    warn!("the engine of tunnel {name} (pid {pid}) is gone: the program's tunnel connections are cut");
                    let _ = tx.send(());
                    return;
                }
            }
        })
        .context("cannot start the lease thread")?;
    Ok(Some((id, writer, released)))
}

/// Starts a detached engine process for `config` at `socket` and waits
/// until it is ready (or says why it cannot start).
pub fn spawn_engine(
    cli: &Cli,
    config: &Path,
    socket: &Path,
    name: Option<&str>,
    persistent: bool,
    log_file: Option<&Path>,
) -> Result<()> {
    let me =
        std::env::current_exe().context("cannot find our own binary to start the tunnel engine")?;
    let (rd, wr) = pipe()?;
    let wr_fd = wr.as_raw_fd();
    let mut cmd = std::process::Command::new(me);
    cmd.arg("--internal-engine")
        .arg(wr_fd.to_string())
        .arg("--engine-socket")
        .arg(socket)
        .arg("--engine-name")
        .arg(
            name.map(str::to_string)
                .unwrap_or_else(|| engine_proc::default_name(config)),
        );
    if persistent {
        cmd.arg("--engine-persist");
    }
    let mut args = cli.engine_args(config);
    if let Some(f) = log_file {
        // `up`'s log file replaces the instance's.
        let mut kept = Vec::new();
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            if a == "--log-file" {
                it.next();
            } else {
                kept.push(a);
            }
        }
        args = kept;
        args.push("--log-file".into());
        args.push(f.into());
    }
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .env_remove("LD_PRELOAD")
        .env_remove(control::ENV_CONTROL)
        .env_remove(control::ENV_PRELOAD)
        .env_remove(control::ENV_LAUNCHER)
        .current_dir("/");
    // SAFETY: between fork and exec only async-signal-safe calls: setsid
    // and fcntl on the inherited write end.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            if libc::fcntl(wr_fd, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let mut child = cmd.spawn().context("cannot start the tunnel engine")?;
    drop(wr);
    let mut answer = String::new();
    let mut rd = std::fs::File::from(rd);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = rd.read_to_string(&mut s);
        let _ = tx.send(s);
    });
    match rx.recv_timeout(START_WAIT) {
        Ok(s) => answer = s,
        Err(_) => {
            let _ = child.kill();
        }
    }
    let answer = answer.trim();
    if answer == "OK" {
        info!(
            pid = child.id(),
            "started the tunnel engine (pid {})",
            child.id()
        );
        // Reaped by whoever inherits it when we exit; no zombie meanwhile
        // matters, it outlives us.
        std::mem::forget(child);
        return Ok(());
    }
    if let Some(reason) = answer.strip_prefix("ERR ") {
        let _ = child.wait();
        return Err(anyhow!("{reason}"));
    }
    let st = child.wait().ok();
    bail!(
        "the tunnel engine did not start ({}); run with --log-level=debug to see why",
        st.map(|s| s.to_string())
            .unwrap_or_else(|| "no answer".into())
    )
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error()).context("cannot create a pipe");
    }
    // SAFETY: both descriptors are new and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Every running tunnel of this user in this namespace: its description
/// and socket. Sockets of engines that are gone are removed.
pub fn running() -> Result<Vec<Description>> {
    let dir = rendezvous::dir()?;
    let mut out = Vec::new();
    for sock in rendezvous::sockets(&dir) {
        match engine::session::client::ask(&sock, &SessionRequest::Describe) {
            Ok(SessionReply::Described(d)) => out.push(d),
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                let _lock = rendezvous::StartLock::take(&sock)?;
                if engine::session::client::Session::connect(&sock)
                    .err()
                    .and_then(|e| e.raw_os_error())
                    == Some(libc::ECONNREFUSED)
                {
                    let _ = std::fs::remove_file(&sock);
                }
            }
            Err(_) => {}
        }
    }
    Ok(out)
}

/// The running tunnel called `name`.
pub fn find(name: &str) -> Result<Description> {
    let all = running()?;
    let mut hits: Vec<Description> = all.iter().filter(|d| d.name == name).cloned().collect();
    match hits.len() {
        1 => Ok(hits.remove(0)),
        0 => {
            let names: Vec<&str> = all.iter().map(|d| d.name.as_str()).collect();
            if names.is_empty() {
                bail!("no tunnel named {name} runs (none runs); start one with wrapguard up --config {name}.conf")
            }
            bail!(
                "no tunnel named {name} runs; running: {} (wrapguard ls lists them)",
                names.join(", ")
            )
        }
        _ => bail!(
            "{} tunnels are named {name}; use --config to say which",
            hits.len()
        ),
    }
}
