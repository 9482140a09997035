//! The fd swap: a data socket to the engine put at the application's fd
//! number, the original socket kept as a hidden shadow; and the state of a
//! swapped TCP socket — settled from the data socket's readiness and the
//! engine's `FlowStatus`, or adopted from the engine after `exec`.
//!
//! # The data path: fd swap onto a unix socket, gated by filler bytes
//!
//! On `connect()` of an AF_INET/AF_INET6 stream socket to a destination the
//! engine routes into the tunnel ([`crate::connect`]), the shim
//!
//! 1. opens a unix stream socket to the engine with the smallest
//!    `SO_SNDBUF` (the kernel's minimum, ~4.5 KiB), sends a `Connect`
//!    frame and reads the engine's reply (`Accepted{flow, local}`; the
//!    engine answers at once and connects through the tunnel meanwhile);
//! 2. writes [`control::FILLER_LEN`] (2048) filler bytes: one unread skb
//!    whose truesize is above a quarter of the minimum send buffer keeps
//!    `wmem_alloc * 4 > sndbuf`, so the socket is *not writable*, and the
//!    frame plus filler still fit without blocking (test
//!    `filler_gates_pollout` checks both on the running kernel);
//! 3. keeps the original kernel TCP socket alive as a hidden CLOEXEC
//!    "shadow" fd and `dup3`s the unix socket onto the application's fd
//!    number, keeping its `FD_CLOEXEC` and `O_NONBLOCK` flags (`swap`).
//!
//! A non-blocking `connect` then returns `EINPROGRESS` at once. When the
//! tunnel connection is established the engine reads the filler, `POLLOUT`
//! turns on, and from then on the stream carries only the application's
//! bytes (the shim restores a normal `SO_SNDBUF` at the first look at the
//! socket: `SO_ERROR`, `getpeername`, or the end of a blocking connect). If
//! it fails, the engine closes with the filler unread: the application sees
//! `POLLERR|POLLHUP` (and `POLLOUT`), and `getsockopt(SO_ERROR)` returns the
//! real errno (`ECONNREFUSED`, `ETIMEDOUT`, `EHOSTUNREACH`…) which the shim
//! asks the engine for (`FlowStatus`, `settle`). A blocking `connect` is
//! the same plus a `poll()` for that outcome inside the call.
//!
//! Because the fd is now AF_UNIX, the shim answers as a TCP socket would:
//! `SO_DOMAIN`/`SO_PROTOCOL`/`SO_ERROR`/`SO_ACCEPTCONN` are emulated,
//! TCP/IP-level options and most `SOL_SOCKET` options go to the shadow TCP
//! socket (so values and validation are the kernel's own), timeouts and
//! linger act on the data socket ([`crate::sockopt`]), and
//! `getsockname`/`getpeername` report the tunnel addresses
//! ([`crate::sockname`]). Per-fd state lives in [`crate::table`] (fds ≥
//! 1024 included). `poll`/`epoll`, `sendfile`, `splice` and `fork` need
//! nothing for the data path: the fd is a real kernel socket (the send and
//! receive hooks only report how a stream ended, [`crate::stream_end`]).

use crate::addr;
use crate::engine::{self, config};
use crate::sys::{self, errno, set_errno};
use crate::table::{self, Kind, OutState};
use control::{FlowState, Reply, Request};
use libc::c_int;

/// Default `SO_SNDBUF` request restored once a flow is established (the
/// kernel doubles it to the usual unix-socket default of 208 KiB).
const DEFAULT_SNDBUF: c_int = 106_496;

/// Puts the data socket `data` at the application's `fd`, keeping the fd's
/// CLOEXEC and O_NONBLOCK flags and moving its epoll registrations (made
/// before connect) onto the data socket; returns the shadow fd that keeps
/// the original TCP socket alive.
pub(crate) fn swap(
    fd: c_int,
    data: c_int,
    reuse_shadow: Option<c_int>,
    regs: &[Option<table::EpollReg>],
) -> Result<c_int, c_int> {
    let fl = sys::fcntl(fd, libc::F_GETFL, 0)?;
    let fdfl = sys::fcntl(fd, libc::F_GETFD, 0)?;
    let shadow = match reuse_shadow {
        Some(s) => s,
        None => sys::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0)?,
    };
    let flags = if fdfl & libc::FD_CLOEXEC != 0 {
        libc::O_CLOEXEC
    } else {
        0
    };
    // Registrations are keyed by (file, fd): remove them while `fd` still
    // names the TCP socket, re-add them once it names the data socket.
    for r in regs.iter().flatten() {
        let _ = sys::epoll_ctl(r.epfd, libc::EPOLL_CTL_DEL, fd, (0, 0));
    }
    if let Err(e) = sys::dup3(data, fd, flags) {
        if reuse_shadow.is_none() {
            sys::close(shadow);
        }
        return Err(e);
    }
    sys::close(data);
    for r in regs.iter().flatten() {
        if sys::epoll_ctl(r.epfd, libc::EPOLL_CTL_ADD, fd, (r.events, r.data)).is_ok() {
            crate::epoll_regs::note(r.epfd, libc::EPOLL_CTL_ADD, fd, r.data);
        }
    }
    if fl & libc::O_NONBLOCK != 0 {
        let _ = sys::fcntl(fd, libc::F_SETFL, libc::c_long::from(libc::O_NONBLOCK));
    }
    // Timeouts set before the connect act on, and read back from, the
    // socket the program now holds.
    copy_timeouts(shadow, fd);
    Ok(shadow)
}

/// Copies `SO_RCVTIMEO`/`SO_SNDTIMEO` from the program's socket (now the
/// shadow) to the data socket, so a receive set to time out still does
/// (ping waits for replies this way), and reads back as set.
pub(crate) fn copy_timeouts(shadow: c_int, fd: c_int) {
    for opt in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        let mut tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        };
        let mut len = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
        let p = &mut tv as *mut libc::timeval as *mut libc::c_void;
        // SAFETY: `tv` is a timeval and `len` its size.
        let r = unsafe { crate::real::getsockopt(shadow, libc::SOL_SOCKET, opt, p, &mut len) };
        if r == 0 && (tv.tv_sec != 0 || tv.tv_usec != 0) {
            // SAFETY: as above, read back into the data socket.
            unsafe { crate::real::setsockopt(fd, libc::SOL_SOCKET, opt, p, len) };
        }
    }
}

/// Sets the state of an outbound entry (other kinds are left alone).
pub(crate) fn set_state(k: &mut Kind, new: OutState) {
    if let Kind::Outbound { state, .. } = k {
        *state = new;
    }
}

/// Brings the state of an outbound fd up to date without blocking:
/// `POLLOUT` alone means established; `POLLERR`/`POLLHUP` means the engine
/// gave up (or finished), and the engine says which and why.
pub(crate) fn settle(fd: c_int) -> Option<OutState> {
    let Some(Kind::Outbound {
        state,
        flow,
        sndbuf,
        ..
    }) = table::get(fd)
    else {
        return None;
    };
    if state != OutState::Connecting {
        return Some(state);
    }
    let rev = sys::poll1(fd, libc::POLLOUT, 0).unwrap_or(0);
    let new = if rev & (libc::POLLERR | libc::POLLHUP) != 0 {
        // Clear the unix socket's ECONNRESET; the real errno comes from the engine.
        let _ = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR);
        match engine::query(&Request::FlowStatus { flow }) {
            Ok(Reply::FlowStatus(FlowState::Failed(e))) => OutState::Failed {
                errno: e,
                reported: false,
            },
            Ok(Reply::FlowStatus(FlowState::Established)) => OutState::Established,
            Ok(_) => OutState::Failed {
                errno: libc::ECONNRESET,
                reported: false,
            },
            Err(_) => OutState::Failed {
                errno: libc::ENETUNREACH,
                reported: false,
            },
        }
    } else if rev & libc::POLLOUT != 0 {
        OutState::Established
    } else {
        OutState::Connecting
    };
    if new == OutState::Established {
        let want = if sndbuf > 0 { sndbuf } else { DEFAULT_SNDBUF };
        let _ = sys::setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, want);
    }
    table::update(fd, |k| set_state(k, new));
    Some(new)
}

/// Takes over an untracked fd that is one of our data sockets (its peer is
/// the engine's control socket): a tunnel socket inherited across `exec`,
/// whose state the previous image's shim held in memory. The engine knows
/// the flow by the inode of our end. Returns whether the fd is now tracked;
/// errno is left as it was.
pub(crate) fn adopted(fd: c_int) -> bool {
    let saved = errno();
    let done = adopt(fd).is_some();
    set_errno(saved);
    done
}

fn adopt(fd: c_int) -> Option<()> {
    let eng = config().engine.as_ref()?;
    let (ss, len) = sys::getpeername(fd).ok()?;
    if !eng.is_control_address(&ss, len) {
        return None;
    }
    let (_, inode) = sys::file_id(fd)?;
    let Ok(Reply::Adopt(Some(info))) = engine::query(&Request::Adopt { inode }) else {
        return None;
    };
    let family = if info.v6_socket {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    let shadow = sys::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0).ok()?;
    let state = match info.state {
        FlowState::Established => OutState::Established,
        FlowState::Connecting => OutState::Connecting,
        FlowState::Failed(e) => OutState::Failed {
            errno: e,
            reported: false,
        },
        FlowState::Unknown => OutState::Failed {
            errno: libc::ECONNRESET,
            reported: true,
        },
    };
    table::set(
        fd,
        Kind::Outbound {
            flow: info.flow,
            state,
            shadow,
            family,
            peer: addr::in_family(info.peer, family),
            local: info.local,
            sndbuf: 0,
            end: Default::default(),
            // Adopted across exec: the program connected it in its old image.
            connect_done: true,
        },
    );
    match table::get(fd) {
        Some(Kind::Outbound { .. }) => Some(()),
        _ => {
            sys::close(shadow);
            None
        }
    }
}
