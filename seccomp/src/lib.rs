//! The seccomp interception mode, for programs the shim cannot enter
//! (statically linked, Go, musl…): the child installs a seccomp filter
//! before `exec` (with `PR_SET_NO_NEW_PRIVS`) that sends the socket calls
//! that matter to us as user notifications (seccomp_unotify(2), Linux ≥ 5.9;
//! `SECCOMP_ADDFD_FLAG_SEND` from 5.14 is used when present), and a
//! supervisor thread in this process decides per call: let it continue
//! (host network), answer it, or install the engine's own socket into the
//! child (`SECCOMP_IOCTL_NOTIF_ADDFD`) so the program's fd is bridged into
//! the tunnel exactly as in the shim mode.
//!
//! The supervisor is a *client of the engine's control protocol* (the
//! requests the shim makes: `Route`, `Connect` + filler, `FlowStatus`,
//! `Bind`, `Listen`, `AcceptLookup`), so the engine has one code path and
//! both modes behave alike (errno, `getpeername`, listening).
//!
//! Pieces:
//! * [`filter`] — the BPF program (pure; which calls are trapped).
//! * [`child`] — installing it in the child and handing its listener over.
//! * [`notify`] — the ioctl edge (receive, answer, id valid, add fd).
//! * [`memory`] / [`caller`] — the caller's memory, pidfd, descriptors.
//! * [`supervisor`] — the state owner at the top: the poll loop and **the
//!   dispatch**: `Supervisor::dispatch` maps the system call number to one
//!   handler `fn(&mut State, &Call) -> Outcome` — `tcp::{connect,
//!   getsockopt, setsockopt, name}`, `listen::{bind, listen, accept}`,
//!   `udp::{sendto, sendmsg, sendmmsg, recvfrom, recvmsg, recvmmsg}` (plus
//!   `udp::carry_connected`/`udp::reconnect`/`udp::bind`, reached from
//!   `connect`/`bind` for `SOCK_DGRAM`; `connect` decides with
//!   `control::connect::classify`, shared with the shim). Imports run one way: supervisor → handlers → the
//!   shared pieces below.
//! * [`state`] — what the handlers act on: the supervisor's [`state::State`]
//!   (listener, engine, table, waits), lent to each handler, and the
//!   [`state::Wait`]s the poll loop finishes.
//! * [`call`] — the trapped [`call::Call`] and the handler's
//!   [`call::Outcome`]: it answers now (continue / value / errno), says
//!   the handler answered itself, or that a `Wait` will answer later.
//! * [`table`] — which open files in the child are ours, by inode.
//! * [`sockaddr`] — socket addresses as bytes.
//! * [`fdops`] — socket options, `O_NONBLOCK` and names of our copies of
//!   the child's descriptors.
//! * [`attach`] — auto mode's hand-off: a process the shim carries execs
//!   a program the shim cannot enter, and goes under seccomp mode first.
//!
//! **Not a security boundary.** The supervisor reads arguments from the
//! child's memory, which another thread of the child can change between
//! our read and the kernel's (TOCTOU; seccomp_unotify(2) says so). The
//! goal is that no ordinary program leaks by accident, not to contain a
//! hostile one.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod attach;
pub mod call;
pub mod caller;
pub mod child;
pub mod client;
pub mod echo;
pub mod fdops;
pub mod filter;
pub mod listen;
pub mod memory;
pub mod notify;
pub mod sockaddr;
pub mod state;
pub mod supervisor;
pub mod table;
pub mod tcp;
pub mod udp;

use std::path::PathBuf;

/// The kernel release as (major, minor), from `uname`.
pub fn kernel_version() -> Option<(u32, u32)> {
    // SAFETY: plain old data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` lives across the call.
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let rel: Vec<u8> = u
        .release
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    parse_release(&String::from_utf8_lossy(&rel))
}

/// `"6.1.0-13-amd64"` → `(6, 1)`.
pub fn parse_release(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// Why seccomp mode cannot run here, as one line, or `None`.
pub fn unsupported() -> Option<String> {
    if !cfg!(target_arch = "x86_64") {
        return Some("seccomp mode is implemented for x86-64 only".into());
    }
    match kernel_version() {
        Some(v) if v >= (5, 9) => None,
        Some((a, b)) => Some(format!(
            "seccomp mode needs Linux 5.9 or newer (SECCOMP_IOCTL_NOTIF_ADDFD); this kernel is {a}.{b}"
        )),
        None => Some("seccomp mode: cannot read the kernel version".into()),
    }
}

/// Starts the supervisor thread for `listener`, asking the engine at `control`.
pub fn start(listener: std::os::fd::OwnedFd, control: PathBuf) -> std::io::Result<()> {
    start_then(listener, control, Box::new(|| {}))
}

/// [`start`], calling `done` once no process is left under the filter
/// (or at once, if the thread cannot start).
pub fn start_then(
    listener: std::os::fd::OwnedFd,
    control: PathBuf,
    done: Box<dyn FnOnce() + Send>,
) -> std::io::Result<()> {
    let addfd_send = kernel_version().is_some_and(|v| v >= (5, 14));
    let done = std::sync::Arc::new(std::sync::Mutex::new(Some(done)));
    let on_end = done.clone();
    let started = std::thread::Builder::new()
        .name("wg-seccomp".into())
        .spawn(move || {
            supervisor::Supervisor::new(
                notify::Listener::new(listener),
                client::Engine::new(control),
                addfd_send,
            )
            .run();
            call_once(&on_end);
        })
        .map(|_| ());
    if started.is_err() {
        call_once(&done);
    }
    started
}

type Done = std::sync::Arc<std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>>;

fn call_once(done: &Done) {
    let f = done.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(f) = f {
        f();
    }
}

/// The engine's hook for auto mode's hand-off: the bridge passes it the
/// seccomp listener of a carried process that execs a program the shim
/// cannot enter, and this starts a supervisor for it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Attacher;

impl engine::bridge::Supervise for Attacher {
    fn attach(
        &self,
        pid: u32,
        fd: u64,
        control: PathBuf,
        done: Box<dyn FnOnce() + Send>,
    ) -> Result<(), i32> {
        let owned = match caller::open(pid).and_then(|p| caller::get_fd(&p, fd)) {
            Ok(o) => o,
            Err(e) => {
                done();
                return Err(e.raw_os_error().unwrap_or(libc::EIO));
            }
        };
        start_then(owned, control, done).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_release;

    #[test]
    fn releases() {
        assert_eq!(parse_release("6.18.44-fc-v857"), Some((6, 18)));
        assert_eq!(parse_release("5.9.0"), Some((5, 9)));
        assert_eq!(parse_release("garbage"), None);
    }
}
