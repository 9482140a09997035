//! How the end of an established tunnel stream reaches the application.
//!
//! The data socket is a unix stream to the engine; when the tunnel TCP
//! connection ends, the engine closes it. A FIN and an error look alike on
//! the unix socket (EOF, or `EPIPE`/`ECONNRESET`), but not to a program: a
//! connection to a peer that vanished must fail with `ETIMEDOUT` after the
//! retransmissions or keepalive probes (RFC 1122 §4.2.3.5, §4.2.3.6), as on
//! Linux, not look like a complete transfer. The engine records the errno
//! (`FlowStatus` → `Failed(errno)`) before it closes, so when a data call
//! on a tunnel stream sees the end — `read`/`readv`/`recv*` returning 0, a
//! `write`/`writev`/`send*` failing with `EPIPE`/`ECONNRESET`, or
//! `SO_ERROR` asked of a hung-up
//! socket — the shim asks once and, for an error end, returns that errno
//! (once, like a kernel socket's pending error; later calls see EOF /
//! `EPIPE`). Sends go out with `MSG_NOSIGNAL` so that the error end does
//! not raise `SIGPIPE` (Linux does not either when it reports the error);
//! a plain `EPIPE` raises it as the kernel would have.
//!
//! When the engine itself is gone (taken down, or killed), the end is a
//! reset (`ECONNRESET`).
//!
//! Not covered: `sendfile`/`splice` (they see EOF / `EPIPE`).

use crate::engine;
use crate::sys::{errno, set_errno};
use crate::table::{self, Kind, OutState, StreamEnd};
use control::{FlowState, Reply, Request};
use libc::c_int;

/// The error end of `fd` to report now, if its stream ended with one that
/// was not reported yet. Asks the engine the first time.
fn take_error(fd: c_int) -> Option<c_int> {
    // A stream the application used without looking at the connect's
    // outcome: settle it first (a failed connect reports its errno here).
    if let Some(OutState::Failed {
        errno,
        reported: false,
    }) = crate::swap::settle(fd)
    {
        table::update(fd, |k| {
            if let Kind::Outbound { state, .. } = k {
                *state = OutState::Failed {
                    errno,
                    reported: true,
                };
            }
        });
        return Some(errno);
    }
    let Some(Kind::Outbound {
        flow,
        state: OutState::Established,
        end,
        ..
    }) = table::get(fd)
    else {
        return None;
    };
    let new_end = match end {
        StreamEnd::Open => match engine::query(&Request::FlowStatus { flow }) {
            Ok(Reply::FlowStatus(FlowState::Failed(e))) if e > 0 => StreamEnd::Error {
                errno: e,
                reported: false,
            },
            Ok(Reply::FlowStatus(FlowState::Established)) => StreamEnd::Clean,
            // The engine itself is gone (`wrapguard down`, killed): the end
            // of its data socket says nothing about the peer's, so it is a
            // reset, never a clean end that would pass for a complete transfer.
            Err(libc::ENOENT | libc::ECONNREFUSED) => StreamEnd::Error {
                errno: libc::ECONNRESET,
                reported: false,
            },
            // The engine forgot the flow: the kernel's answer stands.
            _ => return None,
        },
        other => other,
    };
    let (report, stored) = match new_end {
        StreamEnd::Error {
            errno,
            reported: false,
        } => (
            Some(errno),
            StreamEnd::Error {
                errno,
                reported: true,
            },
        ),
        other => (None, other),
    };
    table::update(fd, |k| {
        if let Kind::Outbound { end, .. } = k {
            *end = stored;
        }
    });
    report
}

/// After a receive on a tunnel stream returned `r` (for a buffer of
/// `len` bytes): an EOF or a reset that was really an error end becomes
/// `-1` with that errno.
pub fn after_recv(fd: c_int, r: isize, len: usize) -> isize {
    let e = errno();
    let ended = (r == 0 && len > 0) || (r < 0 && e == libc::ECONNRESET);
    if !ended {
        return r;
    }
    match take_error(fd) {
        Some(err) => {
            set_errno(err);
            -1
        }
        None => {
            set_errno(e);
            r
        }
    }
}

/// A send on a tunnel stream: `send(extra_flags)` performs it with
/// `MSG_NOSIGNAL` added; an `EPIPE`/`ECONNRESET` that was really an error
/// end becomes that errno; a plain `EPIPE` raises `SIGPIPE` unless the
/// application passed `MSG_NOSIGNAL`.
pub fn send(fd: c_int, app_flags: c_int, send: impl FnOnce(c_int) -> isize) -> isize {
    let r = send(libc::MSG_NOSIGNAL);
    if r >= 0 {
        return r;
    }
    let e = errno();
    if e != libc::EPIPE && e != libc::ECONNRESET {
        return r;
    }
    if let Some(err) = take_error(fd) {
        set_errno(err);
        return -1;
    }
    if e == libc::EPIPE && app_flags & libc::MSG_NOSIGNAL == 0 {
        // SAFETY: raise(3) with a valid signal number; the application's
        // disposition of SIGPIPE applies, as for the kernel's own.
        unsafe { libc::raise(libc::SIGPIPE) };
    }
    set_errno(e);
    r
}

/// A `write`/`writev` on what the table says is a tunnel stream: as
/// [`send`], but when the descriptor turns out not to be a socket at all
/// (`ENOTSOCK`: the tunnel socket was closed behind the table's back —
/// `syscall(SYS_close)`, `close_range` — or by another thread after the
/// table was read, and the number now names a file or a pipe), the stale
/// entry is dropped and the call is the plain `write` the application
/// made. A write meant for a file is never treated as a tunnel write.
pub fn write(
    fd: c_int,
    send_call: impl FnOnce(c_int) -> isize,
    plain: impl FnOnce() -> isize,
) -> isize {
    let r = send(fd, 0, send_call);
    if r < 0 && errno() == libc::ENOTSOCK {
        table::forget_stale(fd);
        return plain();
    }
    r
}

/// `SO_ERROR` of an established tunnel stream: the error end if the data
/// socket has hung up and one is pending, else `None` (ask the socket).
pub fn so_error(fd: c_int) -> Option<c_int> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    if n <= 0 || pfd.revents & (libc::POLLHUP | libc::POLLRDHUP | libc::POLLERR) == 0 {
        return None;
    }
    take_error(fd)
}
