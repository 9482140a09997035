//! Installing the filter in the child (between `fork` and `exec`) and
//! handing its listener to the supervisor without any trapped call.
//!
//! The child runs [`ChildSide::install`] as a `pre_exec` hook:
//! `prctl(PR_SET_NO_NEW_PRIVS)`, `seccomp(SET_MODE_FILTER, NEW_LISTENER)`,
//! then writes `(getpid(), listener fd)` to a pipe and waits for one byte
//! on another. Meanwhile a thread of ours ([`ParentSide::receive`]) reads
//! the pair, takes the listener with `pidfd_getfd(pidfd_open(pid))` and
//! acknowledges; the child then execs (the listener and both pipes are
//! close-on-exec). `spawn()` itself blocks until the exec, which is why the
//! parent side is a thread. Only `write`, `read` and the two setup calls
//! run in the child: async-signal-safe, nothing allocated.

use super::caller;
use super::filter::Insn;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// What the `pre_exec` hook needs (raw numbers and the program, copied
/// into the child by `fork`).
pub struct ChildSide {
    prog: Vec<libc::sock_filter>,
    ready_w: RawFd,
    ack_r: RawFd,
}

/// The parent's ends of the two pipes.
pub struct ParentSide {
    ready_r: OwnedFd,
    ack_w: OwnedFd,
}

/// The child's ends as the parent holds them: close them once `spawn`
/// returned, so a child that failed before writing gives EOF.
pub struct ChildEnds {
    _ready_w: OwnedFd,
    _ack_r: OwnedFd,
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut p = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into `p`.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both are new descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) })
}

/// Prepares the hand-off for the filter `prog`.
pub fn handoff(prog: &[Insn]) -> io::Result<(ChildSide, ParentSide, ChildEnds)> {
    let (ready_r, ready_w) = pipe()?;
    let (ack_r, ack_w) = pipe()?;
    let prog = sock_filters(prog);
    Ok((
        ChildSide {
            prog,
            ready_w: ready_w.as_raw_fd(),
            ack_r: ack_r.as_raw_fd(),
        },
        ParentSide { ready_r, ack_w },
        ChildEnds {
            _ready_w: ready_w,
            _ack_r: ack_r,
        },
    ))
}

impl ChildSide {
    /// Runs in the child after `fork`: installs the filter and hands the
    /// listener over. Async-signal-safe.
    pub fn install(&self) -> io::Result<()> {
        let fd = install_filter(&self.prog)?;
        // SAFETY: getpid cannot fail.
        let pid = unsafe { libc::getpid() };
        let mut msg = [0u8; 8];
        msg[..4].copy_from_slice(&pid.to_ne_bytes());
        msg[4..].copy_from_slice(&fd.to_ne_bytes());
        // SAFETY: writes 8 bytes from `msg` to our pipe (8 < PIPE_BUF: atomic).
        if unsafe { libc::write(self.ready_w, msg.as_ptr().cast(), msg.len()) } != 8 {
            return Err(io::Error::last_os_error());
        }
        let mut ack = [0u8; 1];
        loop {
            // SAFETY: reads at most one byte into `ack`.
            let n = unsafe { libc::read(self.ack_r, ack.as_mut_ptr().cast(), 1) };
            if n == 1 {
                break;
            }
            if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(io::Error::from_raw_os_error(libc::EPIPE));
        }
        if ack[0] != 1 {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        Ok(())
    }
}

/// Sets `PR_SET_NO_NEW_PRIVS` and installs `prog` on the calling thread
/// with a new notification listener, whose descriptor it returns. Only
/// `prctl` and `seccomp`: async-signal-safe.
pub fn install_filter(prog: &[libc::sock_filter]) -> io::Result<RawFd> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let fprog = libc::sock_fprog {
        len: prog.len() as libc::c_ushort,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    let set = |flags: libc::c_ulong| {
        // SAFETY: `fprog` points to `len` valid instructions, alive
        // across the call.
        unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                flags,
                &fprog as *const libc::sock_fprog,
            )
        }
    };
    // WAIT_KILLABLE_RECV (5.19): once we have received a call, only a
    // fatal signal interrupts it, so a call whose effect we already
    // made (a socket installed, a connection accepted) is not undone
    // by the signals Go sends its threads all the time (SIGURG).
    let mut fd =
        set(libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV);
    if fd < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        fd = set(libc::SECCOMP_FILTER_FLAG_NEW_LISTENER);
    }
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd as RawFd)
}

/// The filter `prog` in the kernel's representation.
pub fn sock_filters(prog: &[Insn]) -> Vec<libc::sock_filter> {
    prog.iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect()
}

impl ParentSide {
    /// Waits (on a thread) for the child's listener; `Err` if the child
    /// failed before handing it over.
    pub fn receive(self) -> std::thread::JoinHandle<io::Result<OwnedFd>> {
        std::thread::spawn(move || {
            let mut msg = [0u8; 8];
            let mut got = 0;
            while got < msg.len() {
                // SAFETY: reads into the rest of `msg`.
                let n = unsafe {
                    libc::read(
                        self.ready_r.as_raw_fd(),
                        msg[got..].as_mut_ptr().cast(),
                        msg.len() - got,
                    )
                };
                if n == 0 {
                    return Err(io::Error::from_raw_os_error(libc::EPIPE));
                }
                if n < 0 {
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() == Some(libc::EINTR) {
                        continue;
                    }
                    return Err(e);
                }
                got += n as usize;
            }
            let pid = u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]);
            let fd = i32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]]);
            let r = caller::open(pid).and_then(|p| caller::get_fd(&p, fd as u64));
            let ack = [u8::from(r.is_ok())];
            // SAFETY: writes one byte from `ack` to our pipe.
            unsafe { libc::write(self.ack_w.as_raw_fd(), ack.as_ptr().cast(), 1) };
            r
        })
    }
}
