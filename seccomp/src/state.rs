//! What the handlers act on: the supervisor's [`State`] (the listener, the
//! engine, the table of our files, the calls and connections in progress),
//! owned by the [`Supervisor`](super::supervisor::Supervisor) and lent to
//! each handler it dispatches to, and the [`Wait`]s its poll loop finishes.

use super::client::Engine;
use super::notify::{Answer, Listener};
use super::table::Table;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use tracing::debug;

/// A blocking `accept` waiting for a connection.
pub struct PendingAccept {
    /// Notification id.
    pub id: u64,
    /// Caller thread (for its memory).
    pub pid: u32,
    /// Our copy of the listening socket.
    pub listener: OwnedFd,
    /// The caller's `addr` and `addrlen` pointers.
    pub addr: (u64, u64),
    /// `accept4` flags (`SOCK_NONBLOCK`, `SOCK_CLOEXEC`).
    pub flags: i32,
    /// The listener's family.
    pub family: i32,
}

/// A call or connection the poll loop finishes later.
pub enum Wait {
    /// A tunnel connect in progress: its data socket (our copy). When it
    /// settles, the entry is updated and `waiter` (a blocking `connect`)
    /// answered.
    Connect {
        /// Our copy of the data socket.
        data: OwnedFd,
        /// Its inode (the table key).
        ino: u64,
        /// The blocking `connect` waiting for it, if any.
        waiter: Option<u64>,
    },
    /// A blocking `accept` on one of our listeners.
    Accept(PendingAccept),
}

impl Wait {
    /// The descriptor the poll loop watches.
    pub fn fd(&self) -> i32 {
        match self {
            Wait::Connect { data, .. } => data.as_raw_fd(),
            Wait::Accept(a) => a.listener.as_raw_fd(),
        }
    }
    /// The events it waits for.
    pub fn events(&self) -> i16 {
        match self {
            Wait::Connect { .. } => libc::POLLOUT,
            Wait::Accept(_) => libc::POLLIN,
        }
    }
    /// The notification it answers, if a call waits on it.
    pub fn waiter(&self) -> Option<u64> {
        match self {
            Wait::Connect { waiter, .. } => *waiter,
            Wait::Accept(a) => Some(a.id),
        }
    }
}

/// The supervisor's state, which every handler acts on.
pub struct State {
    /// The filter's listener.
    pub listener: Rc<Listener>,
    /// The engine's control socket.
    pub engine: Engine,
    /// Our files in the child.
    pub table: Table,
    /// Calls and connections in progress.
    pub waits: Vec<Wait>,
    /// Whether `SECCOMP_ADDFD_FLAG_SEND` is available (Linux 5.14).
    pub addfd_send: bool,
    /// How the engine resolves names (asked once, see [`State::dns_info`]).
    dns: Option<control::DnsInfo>,
}

impl State {
    /// The state for `listener`, asking `engine`.
    pub fn new(listener: Listener, engine: Engine, addfd_send: bool) -> State {
        State {
            listener: Rc::new(listener),
            engine,
            table: Table::default(),
            waits: Vec::new(),
            addfd_send,
            dns: None,
        }
    }

    /// How the engine resolves names (`DnsInfo`), asked on first use and
    /// kept; `None` while the engine cannot be asked.
    pub fn dns_info(&mut self) -> Option<control::DnsInfo> {
        if self.dns.is_none() {
            if let Ok(control::Reply::DnsInfo(i)) = self.engine.query(&control::Request::DnsInfo) {
                self.dns = Some(i);
            }
        }
        self.dns
    }

    /// Answers `id`; a caller that went away meanwhile is not an error.
    pub fn answer(&self, id: u64, a: Answer) {
        if let Err(e) = self.listener.respond(id, a) {
            if e.raw_os_error() != Some(libc::ENOENT) {
                debug!(error = %e, "seccomp supervisor: answer failed");
            }
        }
    }
}
