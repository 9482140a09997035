//! The engine side of sharing: who is attached (the leases), the log
//! lines forwarded to them, and when the engine exits.
//!
//! An engine exits when it is taken down, or when its last lease ends,
//! nothing holds it any more ([`super::holds`]: every process started
//! under it, background ones included) and it is not persistent
//! (`wrapguard up`). The decision and every attach are
//! made under one lock, so an instance that attaches while the engine
//! decides to go is refused ("stopping") and starts a new engine instead
//! of attaching to one that is going away.

use super::holds::Holds;
use super::proto::{Description, LeaseEvent};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Notify};
use tracing::Level;

/// Lines queued per lease before new ones are dropped (a lease whose
/// instance stopped reading must not hold the engine's memory).
const LEASE_QUEUE: usize = 4096;
/// How long a new engine waits for its first lease before it exits.
const FIRST_LEASE_WAIT: Duration = Duration::from_secs(10);

/// One attached instance.
struct Lease {
    launcher_pid: u32,
    pid: Option<u32>,
    command: String,
    since: Instant,
    level: Level,
    events: mpsc::Sender<LeaseEvent>,
}

struct Inner {
    desc: Description,
    leases: BTreeMap<u64, Lease>,
    next: u64,
    ever_attached: bool,
    /// Set once the engine has decided to exit; attaches are refused.
    stopping: bool,
    /// Taken down by `wrapguard down`.
    down: bool,
    /// Forwarded log lines dropped because a lease's queue was full.
    dropped_lines: u64,
}

/// What one attached program looks like in the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The lease's id.
    pub lease: u64,
    /// The wrapguard instance.
    pub launcher_pid: u32,
    /// Its program, once it runs.
    pub pid: Option<u32>,
    /// Its command line.
    pub command: String,
    /// How long ago it attached.
    pub attached: Duration,
}

/// Why the engine exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// `wrapguard down`.
    Down,
    /// The last attached program is gone (or none came).
    Unused,
}

/// See the module doc.
pub struct Host {
    inner: Mutex<Inner>,
    wake: Notify,
    started: Instant,
    on_attach: std::sync::OnceLock<Box<dyn Fn(Level) + Send + Sync>>,
    cut: watch::Sender<bool>,
    holds: Arc<Holds>,
}

impl Host {
    /// A host for the engine described by `desc`.
    pub fn new(desc: Description) -> Host {
        Host {
            inner: Mutex::new(Inner {
                desc,
                leases: BTreeMap::new(),
                next: 1,
                ever_attached: false,
                stopping: false,
                down: false,
                dropped_lines: 0,
            }),
            wake: Notify::new(),
            started: Instant::now(),
            on_attach: std::sync::OnceLock::new(),
            cut: watch::channel(false).0,
            holds: Arc::new(Holds::new()),
        }
    }

    /// The processes and supervisors that hold this engine besides the
    /// leases (the bridge records them).
    pub fn holds(&self) -> &Arc<Holds> {
        &self.holds
    }

    /// Turns `true` when the engine is taken down: the bridge cuts its
    /// flows then.
    pub fn cut_signal(&self) -> watch::Receiver<bool> {
        self.cut.subscribe()
    }

    /// Calls `f` with the log level of every instance that attaches
    /// (the engine process raises its own level to it).
    pub fn on_attach(&self, f: impl Fn(Level) + Send + Sync + 'static) {
        let _ = self.on_attach.set(Box::new(f));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (plain
        // inserts and removes): go on with it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The engine's description now.
    pub fn description(&self) -> Description {
        self.lock().desc.clone()
    }

    /// How long the engine has run.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Takes a lease; the receiver yields what to push to the instance.
    /// Refused (with the reason) once the engine is stopping.
    pub fn attach(
        &self,
        launcher_pid: u32,
        command: String,
        level: Level,
    ) -> Result<(u64, mpsc::Receiver<LeaseEvent>), String> {
        let (tx, rx) = mpsc::channel(LEASE_QUEUE);
        let mut g = self.lock();
        if g.stopping {
            return Err("stopping".into());
        }
        let id = g.next;
        g.next += 1;
        g.ever_attached = true;
        g.leases.insert(
            id,
            Lease {
                launcher_pid,
                pid: None,
                command,
                since: Instant::now(),
                level,
                events: tx,
            },
        );
        drop(g);
        if let Some(f) = self.on_attach.get() {
            f(level);
        }
        Ok((id, rx))
    }

    /// Records the pid of lease `id`'s program.
    pub fn set_program(&self, id: u64, pid: u32) {
        if let Some(l) = self.lock().leases.get_mut(&id) {
            l.pid = Some(pid);
        }
    }

    /// Ends lease `id` (its connection closed, or it was released).
    pub fn release(&self, id: u64) {
        self.lock().leases.remove(&id);
        self.wake.notify_one();
    }

    /// A sender for lease `id`'s events (to queue `Released` behind its
    /// pending lines).
    pub fn events(&self, id: u64) -> Option<mpsc::Sender<LeaseEvent>> {
        self.lock().leases.get(&id).map(|l| l.events.clone())
    }

    /// The attached programs, in attach order.
    pub fn leases(&self) -> Vec<LeaseInfo> {
        self.lock()
            .leases
            .iter()
            .map(|(id, l)| LeaseInfo {
                lease: *id,
                launcher_pid: l.launcher_pid,
                pid: l.pid,
                command: l.command.clone(),
                attached: l.since.elapsed(),
            })
            .collect()
    }

    /// Keep running without leases, under `name` (`wrapguard up` adopting
    /// a running engine).
    pub fn persist(&self, name: String) {
        let mut g = self.lock();
        g.desc.persistent = true;
        g.desc.name = name;
    }

    /// Whether the engine is stopping (new flows are refused).
    pub fn stopping(&self) -> bool {
        self.lock().stopping
    }

    /// Takes the engine down: every lease is told that `cut` flows were
    /// cut, and [`Host::wait_exit`] returns.
    pub fn take_down(&self, cut: usize) {
        let mut g = self.lock();
        g.stopping = true;
        g.down = true;
        for l in g.leases.values() {
            let _ = l.events.try_send(LeaseEvent::Down { cut });
        }
        drop(g);
        let _ = self.cut.send(true);
        self.wake.notify_one();
    }

    /// Forwards one log line at `level` to every lease that shows it.
    pub fn forward_log(&self, level: Level, line: &str) {
        let mut g = self.lock();
        let mut dropped = 0;
        for l in g.leases.values() {
            // `Level` orders by verbosity: DEBUG > INFO.
            if level <= l.level {
                let ev = LeaseEvent::Log {
                    level: level.as_str().to_ascii_lowercase(),
                    line: line.to_string(),
                };
                if l.events.try_send(ev).is_err() {
                    dropped += 1;
                }
            }
        }
        g.dropped_lines += dropped;
    }

    /// The most verbose level any lease shows (`None`: no lease).
    pub fn max_level(&self) -> Option<Level> {
        self.lock().leases.values().map(|l| l.level).max()
    }

    /// Forwarded log lines dropped so far (full lease queues).
    pub fn dropped_lines(&self) -> u64 {
        self.lock().dropped_lines
    }

    /// Returns once the engine is to exit, and why. From then on attaches
    /// are refused.
    pub async fn wait_exit(&self) -> ExitReason {
        loop {
            let notified = self.wake.notified();
            let held = self.holds.changed();
            {
                let mut g = self.lock();
                if g.down {
                    return ExitReason::Down;
                }
                let idle = g.leases.is_empty() && self.holds.is_empty() && !g.desc.persistent;
                if idle && (g.ever_attached || self.started.elapsed() >= FIRST_LEASE_WAIT) {
                    g.stopping = true;
                    return ExitReason::Unused;
                }
            }
            // Re-checked at least once a second (the first-lease wait).
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                tokio::select! {
                    _ = notified => {}
                    _ = held => {}
                }
            })
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(persistent: bool) -> Description {
        Description {
            name: "wg0".into(),
            pid: 1,
            config: "/x/wg0.conf".into(),
            public_key: "k".into(),
            persistent,
            started_unix: 0,
            version: "0".into(),
            facts: BTreeMap::new(),
            interface: Vec::new(),
            peers: Vec::new(),
            socket: "/s".into(),
        }
    }

    #[tokio::test]
    async fn last_lease_ends_a_shared_engine_and_later_attaches_are_refused() {
        let h = Host::new(desc(false));
        let (a, _ra) = h.attach(10, "curl".into(), Level::INFO).expect("attach a");
        let (b, mut rb) = h.attach(11, "wget".into(), Level::DEBUG).expect("attach b");
        h.set_program(b, 12);
        assert_eq!(h.leases().len(), 2);
        assert_eq!(h.leases()[1].pid, Some(12));
        h.forward_log(Level::DEBUG, "{\"x\":1}");
        match rb.try_recv() {
            Ok(LeaseEvent::Log { level, line }) => {
                assert_eq!(level, "debug");
                assert_eq!(line, "{\"x\":1}");
            }
            other => panic!("expected a log line, got {other:?}"),
        }
        assert_eq!(h.max_level(), Some(Level::DEBUG));
        h.release(a);
        let early = tokio::time::timeout(Duration::from_millis(50), h.wait_exit()).await;
        assert!(early.is_err(), "one lease left: keeps running");
        h.release(b);
        assert_eq!(h.wait_exit().await, ExitReason::Unused);
        assert!(h.attach(13, "late".into(), Level::INFO).is_err());
    }

    #[tokio::test]
    async fn a_hold_keeps_the_engine_after_the_last_lease() {
        use crate::session::holds::{HoldKind, Opener};
        let h = Host::new(desc(false));
        let (a, _ra) = h.attach(10, "ssh -f".into(), Level::INFO).expect("attach");
        let hold = h.holds().open(
            HoldKind::Shim,
            Opener {
                pid: 11,
                lease: Some(a),
                ..Opener::default()
            },
        );
        h.release(a);
        let early = tokio::time::timeout(Duration::from_millis(50), h.wait_exit()).await;
        assert!(
            early.is_err(),
            "held by a background process: keeps running"
        );
        h.holds().close(hold);
        let r = tokio::time::timeout(Duration::from_millis(500), h.wait_exit()).await;
        assert_eq!(
            r.ok(),
            Some(ExitReason::Unused),
            "the hold's end wakes the exit decision"
        );
    }

    #[tokio::test]
    async fn a_persistent_engine_runs_on_until_taken_down() {
        let h = Host::new(desc(true));
        let (a, mut ra) = h.attach(10, "curl".into(), Level::INFO).expect("attach");
        h.release(a);
        let early = tokio::time::timeout(Duration::from_millis(50), h.wait_exit()).await;
        assert!(early.is_err(), "persistent: no exit without leases");
        let (_b, mut rb) = h.attach(11, "x".into(), Level::INFO).expect("attach");
        h.take_down(4);
        assert_eq!(h.wait_exit().await, ExitReason::Down);
        assert_eq!(rb.try_recv().ok(), Some(LeaseEvent::Down { cut: 4 }));
        assert!(ra.try_recv().is_err());
        assert!(h.stopping());
    }
}
