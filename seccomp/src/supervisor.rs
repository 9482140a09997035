//! The supervisor thread: receives the notifications of every process of
//! the child's tree (the filter is inherited across `fork` and `exec`),
//! dispatches each by system call number ([`Supervisor::dispatch`], the
//! one place that maps calls to handlers), and finishes the calls that
//! wait (blocking `connect`/`accept`) from one `poll` loop, so no child
//! ever blocks the others.

use super::caller;
use super::client::Engine;
use super::filter::{nr, AUDIT_ARCH_X86_64};
use super::memory;
use super::notify::{Answer, Listener, Notif};
use super::table::Table;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use tracing::{debug, warn};

/// How often waiting calls are checked for callers that went away.
const SWEEP_MS: i32 = 500;
/// Calls waiting and connections watched at most.
const MAX_WAITS: usize = 8192;

/// What a handler did with a notification.
#[derive(Debug)]
pub enum Outcome {
    /// Answer it now.
    Answer(Answer),
    /// Already answered (e.g. `SECCOMP_ADDFD_FLAG_SEND`).
    Answered,
    /// A [`Wait`] was queued; it answers later.
    Pending,
}

impl Outcome {
    /// Fail with `e`.
    pub fn errno(e: i32) -> Outcome {
        Outcome::Answer(Answer::Errno(e))
    }
    /// Let the kernel run the call.
    pub fn cont() -> Outcome {
        Outcome::Answer(Answer::Continue)
    }
    /// Return `v`.
    pub fn value(v: i64) -> Outcome {
        Outcome::Answer(Answer::Value(v))
    }
}

/// The trapped call being handled: the notification and the caller's pidfd.
pub struct Call {
    /// The notification.
    pub n: Notif,
    /// The caller's process.
    pub pidfd: OwnedFd,
    /// The listener, to re-check validity.
    pub listener: Rc<Listener>,
}

impl Call {
    /// A copy of the caller's descriptor in argument `i`.
    pub fn fd(&self, i: usize) -> io::Result<OwnedFd> {
        caller::get_fd(&self.pidfd, self.n.args[i])
    }

    /// Reads the caller's memory, then checks the call is still pending.
    pub fn read(&self, addr: u64, len: usize) -> io::Result<Vec<u8>> {
        let b = memory::read(self.n.pid, addr, len)?;
        if !self.listener.id_valid(self.n.id) {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        Ok(b)
    }

    /// Reads a `socklen_t` of the caller.
    pub fn read_u32(&self, addr: u64) -> io::Result<u32> {
        let b = self.read(addr, 4)?;
        Ok(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Writes the caller's memory.
    pub fn write(&self, addr: u64, bytes: &[u8]) -> io::Result<()> {
        memory::write(self.n.pid, addr, bytes)
    }
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
    Accept(super::listen::PendingAccept),
}

impl Wait {
    fn fd(&self) -> i32 {
        match self {
            Wait::Connect { data, .. } => data.as_raw_fd(),
            Wait::Accept(a) => a.listener.as_raw_fd(),
        }
    }
    fn events(&self) -> i16 {
        match self {
            Wait::Connect { .. } => libc::POLLOUT,
            Wait::Accept(_) => libc::POLLIN,
        }
    }
    fn waiter(&self) -> Option<u64> {
        match self {
            Wait::Connect { waiter, .. } => *waiter,
            Wait::Accept(a) => Some(a.id),
        }
    }
}

/// The supervisor's state.
pub struct Supervisor {
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
    /// How the engine resolves names (asked once, see [`Supervisor::dns_info`]).
    dns: Option<control::DnsInfo>,
}

impl Supervisor {
    /// A supervisor for `listener`, asking `engine`.
    pub fn new(listener: Listener, engine: Engine, addfd_send: bool) -> Supervisor {
        Supervisor {
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

    /// Runs until no process uses the filter any more.
    pub fn run(mut self) {
        loop {
            let mut fds = Vec::with_capacity(1 + self.waits.len());
            fds.push(libc::pollfd {
                fd: self.listener.raw(),
                events: libc::POLLIN,
                revents: 0,
            });
            for w in &self.waits {
                fds.push(libc::pollfd {
                    fd: w.fd(),
                    events: w.events(),
                    revents: 0,
                });
            }
            let timeout = if self.waits.iter().any(|w| w.waiter().is_some()) {
                SWEEP_MS
            } else {
                -1
            };
            // SAFETY: `fds` is a valid array of fds.len() pollfds.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                warn!(error = %e, "seccomp supervisor: poll failed");
                return;
            }
            // Waits first: their indices match `fds` until a handler adds one.
            let ready: Vec<usize> = fds[1..]
                .iter()
                .enumerate()
                .filter(|(_, p)| p.revents != 0)
                .map(|(i, _)| i)
                .collect();
            let revs: Vec<i16> = ready.iter().map(|i| fds[i + 1].revents).collect();
            let mut done = Vec::new();
            for (i, rev) in ready.into_iter().zip(revs) {
                if self.progress(i, rev) {
                    done.push(i);
                }
            }
            if r == 0 || !done.is_empty() {
                self.sweep(&mut done);
            }
            done.sort_unstable();
            done.dedup();
            for i in done.into_iter().rev() {
                self.waits.swap_remove(i);
            }
            let lrev = fds[0].revents;
            if lrev & libc::POLLIN != 0 {
                match self.listener.recv() {
                    Ok(n) => self.handle(n),
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {} // caller gone
                    Err(e) => {
                        warn!(error = %e, "seccomp supervisor: receive failed");
                        return;
                    }
                }
            } else if lrev & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                debug!("seccomp supervisor: no process left under the filter");
                return;
            }
            if self.waits.len() > MAX_WAITS {
                // Drop the oldest watches nobody waits on.
                let excess = self.waits.len() - MAX_WAITS;
                let mut dropped = 0;
                self.waits.retain(|w| {
                    if dropped < excess && w.waiter().is_none() {
                        dropped += 1;
                        false
                    } else {
                        true
                    }
                });
            }
        }
    }

    /// Marks waits whose caller went away (signal, exit) as done.
    fn sweep(&mut self, done: &mut Vec<usize>) {
        for (i, w) in self.waits.iter_mut().enumerate() {
            match w {
                Wait::Connect { waiter, .. } => {
                    if waiter.is_some_and(|id| !self.listener.id_valid(id)) {
                        *waiter = None;
                    }
                }
                Wait::Accept(a) => {
                    if !self.listener.id_valid(a.id) {
                        done.push(i);
                    }
                }
            }
        }
    }

    /// A wait's descriptor is ready; returns whether it is finished.
    fn progress(&mut self, i: usize, revents: i16) -> bool {
        match &self.waits[i] {
            Wait::Connect { .. } => super::tcp::connect_progress(self, i, revents),
            Wait::Accept(_) => super::listen::accept_progress(self, i),
        }
    }

    fn handle(&mut self, n: Notif) {
        let outcome = if n.arch != AUDIT_ARCH_X86_64 {
            Outcome::cont()
        } else {
            match caller::open(n.pid) {
                Ok(pidfd) if self.listener.id_valid(n.id) => {
                    let call = Call {
                        n,
                        pidfd,
                        listener: self.listener.clone(),
                    };
                    self.dispatch(&call)
                }
                Ok(_) => return, // gone already
                // Without the caller's descriptors nothing can be checked:
                // calls that could send somewhere fail closed (a silent
                // "continue" here once let every non-leader thread's
                // traffic bypass the tunnel), the rest run as asked.
                Err(e) => match n.nr as u32 {
                    nr::CONNECT | nr::SENDTO | nr::SENDMSG | nr::SENDMMSG | nr::BIND => {
                        warn!(pid = n.pid, nr = n.nr, error = %e, "seccomp supervisor: cannot open the calling process; the call fails (ENETUNREACH)");
                        Outcome::errno(libc::ENETUNREACH)
                    }
                    _ => Outcome::cont(),
                },
            }
        };
        if let Outcome::Answer(a) = outcome {
            self.answer(n.id, a);
        }
    }

    /// Answers `id`; a caller that went away meanwhile is not an error.
    pub fn answer(&self, id: u64, a: Answer) {
        if let Err(e) = self.listener.respond(id, a) {
            if e.raw_os_error() != Some(libc::ENOENT) {
                debug!(error = %e, "seccomp supervisor: answer failed");
            }
        }
    }

    /// The one place that maps a trapped call to its handler. TCP lives in
    /// `tcp` (connect, socket options, names) and `listen` (bind, listen,
    /// accept); datagrams in `udp`.
    fn dispatch(&mut self, c: &Call) -> Outcome {
        let n = c.n.nr;
        if n < 0 {
            return Outcome::cont();
        }
        match n as u32 {
            nr::CONNECT => super::tcp::connect(self, c),
            nr::GETSOCKOPT => super::tcp::getsockopt(self, c),
            nr::SETSOCKOPT => super::tcp::setsockopt(self, c),
            nr::GETPEERNAME => super::tcp::name(self, c, true),
            nr::GETSOCKNAME => super::tcp::name(self, c, false),
            nr::BIND => super::listen::bind(self, c),
            nr::LISTEN => super::listen::listen(self, c),
            nr::ACCEPT => super::listen::accept(self, c, false),
            nr::ACCEPT4 => super::listen::accept(self, c, true),
            nr::SENDTO => super::udp::sendto(self, c),
            nr::SENDMSG => super::udp::sendmsg(self, c),
            nr::SENDMMSG => super::udp::sendmmsg(self, c),
            nr::RECVFROM => super::udp::recvfrom(self, c),
            nr::RECVMSG => super::udp::recvmsg(self, c),
            nr::RECVMMSG => super::udp::recvmmsg(self, c),
            _ => Outcome::cont(),
        }
    }
}
