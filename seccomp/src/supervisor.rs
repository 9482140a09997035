//! The supervisor thread: receives the notifications of every process of
//! the child's tree (the filter is inherited across `fork` and `exec`),
//! dispatches each by system call number ([`Supervisor::dispatch`], the
//! one place that maps calls to handlers), and finishes the calls that
//! wait (blocking `connect`/`accept`) from one `poll` loop, so no child
//! ever blocks the others.
//!
//! The supervisor is the state owner: it keeps the [`State`] and lends it
//! to the handlers (`tcp`, `listen`, `udp`), which take `&mut State` and
//! the [`Call`] and return an [`Outcome`].

use super::caller;
use super::client::Engine;
use super::filter::{nr, AUDIT_ARCH_X86_64};
use super::listen;
use super::notify::{Listener, Notif};
use super::tcp;
use super::udp;
use std::io;
use tracing::{debug, warn};

pub use super::call::{Call, Outcome};
pub use super::state::{State, Wait};

/// How often waiting calls are checked for callers that went away.
const SWEEP_MS: i32 = 500;
/// Calls waiting and connections watched at most.
const MAX_WAITS: usize = 8192;

/// The supervisor: its state and the poll loop that drives the handlers.
pub struct Supervisor {
    st: State,
}

impl Supervisor {
    /// A supervisor for `listener`, asking `engine`.
    pub fn new(listener: Listener, engine: Engine, addfd_send: bool) -> Supervisor {
        Supervisor {
            st: State::new(listener, engine, addfd_send),
        }
    }

    /// Runs until no process uses the filter any more.
    pub fn run(mut self) {
        loop {
            let mut fds = Vec::with_capacity(1 + self.st.waits.len());
            fds.push(libc::pollfd {
                fd: self.st.listener.raw(),
                events: libc::POLLIN,
                revents: 0,
            });
            for w in &self.st.waits {
                fds.push(libc::pollfd {
                    fd: w.fd(),
                    events: w.events(),
                    revents: 0,
                });
            }
            let timeout = if self.st.waits.iter().any(|w| w.waiter().is_some()) {
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
                self.st.waits.swap_remove(i);
            }
            let lrev = fds[0].revents;
            if lrev & libc::POLLIN != 0 {
                match self.st.listener.recv() {
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
            if self.st.waits.len() > MAX_WAITS {
                // Drop the oldest watches nobody waits on.
                let excess = self.st.waits.len() - MAX_WAITS;
                let mut dropped = 0;
                self.st.waits.retain(|w| {
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
        for (i, w) in self.st.waits.iter_mut().enumerate() {
            match w {
                Wait::Connect { waiter, .. } => {
                    if waiter.is_some_and(|id| !self.st.listener.id_valid(id)) {
                        *waiter = None;
                    }
                }
                Wait::Accept(a) => {
                    if !self.st.listener.id_valid(a.id) {
                        done.push(i);
                    }
                }
            }
        }
    }

    /// A wait's descriptor is ready; returns whether it is finished.
    fn progress(&mut self, i: usize, revents: i16) -> bool {
        match &self.st.waits[i] {
            Wait::Connect { .. } => tcp::connect_progress(&mut self.st, i, revents),
            Wait::Accept(_) => listen::accept_progress(&mut self.st, i),
        }
    }

    fn handle(&mut self, n: Notif) {
        let outcome = if n.arch != AUDIT_ARCH_X86_64 {
            Outcome::cont()
        } else {
            match caller::open(n.pid) {
                Ok(pidfd) if self.st.listener.id_valid(n.id) => {
                    let call = Call {
                        n,
                        pidfd,
                        listener: self.st.listener.clone(),
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
            self.st.answer(n.id, a);
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
            nr::SOCKET => crate::echo::socket(&mut self.st, c),
            nr::CONNECT => tcp::connect(&mut self.st, c),
            nr::GETSOCKOPT => tcp::getsockopt(&mut self.st, c),
            nr::SETSOCKOPT => tcp::setsockopt(&mut self.st, c),
            nr::GETPEERNAME => tcp::name(&mut self.st, c, true),
            nr::GETSOCKNAME => tcp::name(&mut self.st, c, false),
            nr::BIND => listen::bind(&mut self.st, c),
            nr::LISTEN => listen::listen(&mut self.st, c),
            nr::ACCEPT => listen::accept(&mut self.st, c, false),
            nr::ACCEPT4 => listen::accept(&mut self.st, c, true),
            nr::SENDTO => udp::sendto(&mut self.st, c),
            nr::SENDMSG => udp::sendmsg(&mut self.st, c),
            nr::SENDMMSG => udp::sendmmsg(&mut self.st, c),
            nr::RECVFROM => udp::recvfrom(&mut self.st, c),
            nr::RECVMSG => udp::recvmsg(&mut self.st, c),
            nr::RECVMMSG => udp::recvmmsg(&mut self.st, c),
            _ => Outcome::cont(),
        }
    }
}
