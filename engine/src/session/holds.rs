//! Holds: what keeps an engine up besides the launchers' leases.
//!
//! Every process started under wrapguard holds the engine, not only the
//! launcher: the shim opens one control connection at load (a *hold*,
//! `control::Request::Hold`) that its process keeps, and its children
//! inherit, across `fork` and `exec`; the kernel closes it when the last of
//! them is gone. A seccomp supervisor running in the engine holds it the
//! same way while any process is under its filter. So a program that puts
//! itself in the background (`ssh -f`, `sh -c 'cmd & exit'`, a daemon that
//! forks and lets its parent exit) keeps the tunnel after its launcher has
//! returned, and the engine ends with the last of them.
//!
//! This registry records the holds, the processes that announced
//! themselves on each (`Hello`), and which lease started them, for the
//! exit decision ([`super::Host`]) and the status report.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use tokio::sync::Notify;

/// What holds the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldKind {
    /// A shim's hold connection.
    Shim,
    /// A seccomp supervisor in the engine, while processes are under its
    /// filter.
    Seccomp,
}

struct Hold {
    kind: HoldKind,
    /// The lease that started it (found from the opener's ancestry), if any.
    lease: Option<u64>,
    /// That lease's launcher and command, kept for after it ends.
    launcher_pid: u32,
    command: String,
    /// The processes that announced themselves on it (opener included).
    pids: BTreeSet<u32>,
}

/// A process that holds the engine, for the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldProcess {
    /// The hold's id.
    pub hold: u64,
    /// What holds it.
    pub kind: HoldKind,
    /// The lease that started it (it may have ended since).
    pub lease: Option<u64>,
    /// That lease's launcher (0: none known).
    pub launcher_pid: u32,
    /// That lease's command line.
    pub command: String,
    /// The process, if still alive (a seccomp hold whose first process is
    /// gone has none: its processes are under the filter, unnamed).
    pub pid: Option<u32>,
}

/// Who opened a hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Opener {
    /// The process.
    pub pid: u32,
    /// The lease it runs under, if known.
    pub lease: Option<u64>,
    /// That lease's launcher (0: none).
    pub launcher_pid: u32,
    /// That lease's command line.
    pub command: String,
}

/// See the module doc.
#[derive(Default)]
pub struct Holds {
    inner: Mutex<BTreeMap<u64, Hold>>,
    next: std::sync::atomic::AtomicU64,
    changed: Notify,
}

impl Holds {
    /// An empty registry.
    pub fn new() -> Holds {
        Holds::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Hold>> {
        // Plain inserts and removes: consistent after a panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a new hold; returns its id for [`Holds::hello`] and
    /// [`Holds::close`].
    pub fn open(&self, kind: HoldKind, opener: Opener) -> u64 {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let mut pids = BTreeSet::new();
        pids.insert(opener.pid);
        self.lock().insert(
            id,
            Hold {
                kind,
                lease: opener.lease,
                launcher_pid: opener.launcher_pid,
                command: opener.command,
                pids,
            },
        );
        self.changed.notify_waiters();
        id
    }

    /// Process `pid` announced itself on hold `id` (it loaded the shim, or
    /// forked).
    pub fn hello(&self, id: u64, pid: u32) {
        if let Some(h) = self.lock().get_mut(&id) {
            h.pids.insert(pid);
        }
    }

    /// Hold `id` ended (its last process is gone).
    pub fn close(&self, id: u64) {
        self.lock().remove(&id);
        self.changed.notify_waiters();
    }

    /// Whether nothing holds the engine.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// How many holds are open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Resolves when a hold opens or closes.
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// The processes holding the engine whose lease is not one of `live`
    /// (their launcher has returned: they run in the background), with
    /// `alive` telling which pids still run. Dead pids are forgotten.
    pub fn background(&self, live: &[u64], alive: impl Fn(u32) -> bool) -> Vec<HeldProcess> {
        let mut out = Vec::new();
        let mut g = self.lock();
        for (id, h) in g.iter_mut() {
            if h.lease.is_some_and(|l| live.contains(&l)) {
                continue;
            }
            h.pids.retain(|p| alive(*p));
            let entry = |pid| HeldProcess {
                hold: *id,
                kind: h.kind,
                lease: h.lease,
                launcher_pid: h.launcher_pid,
                command: h.command.clone(),
                pid,
            };
            if h.pids.is_empty() {
                out.push(entry(None));
            }
            for p in &h.pids {
                out.push(entry(Some(*p)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opener(pid: u32, lease: Option<u64>) -> Opener {
        Opener {
            pid,
            lease,
            launcher_pid: 7,
            command: "ssh -f".into(),
        }
    }

    #[test]
    fn holds_outlive_their_lease_and_list_their_live_processes() {
        let h = Holds::new();
        assert!(h.is_empty());
        let a = h.open(HoldKind::Shim, opener(100, Some(1)));
        h.hello(a, 101);
        h.hello(a, 101);
        assert_eq!(h.len(), 1);
        // Its lease is live: nothing in the background.
        assert!(h.background(&[1], |_| true).is_empty());
        // The lease ended; 100 exited, 101 runs on.
        let bg = h.background(&[], |p| p == 101);
        assert_eq!(bg.len(), 1);
        assert_eq!(bg[0].pid, Some(101));
        assert_eq!(bg[0].launcher_pid, 7);
        let s = h.open(HoldKind::Seccomp, opener(200, None));
        let bg = h.background(&[], |_| false);
        assert_eq!(bg.len(), 2, "{bg:?}");
        assert!(bg.iter().all(|p| p.pid.is_none()));
        h.close(a);
        h.close(s);
        assert!(h.is_empty());
    }
}
