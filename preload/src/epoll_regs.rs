//! The epoll registrations of datagram sockets, `(epoll fd, the program's
//! data) → fd`, remembered from `epoll_ctl` and from the re-registration
//! when a socket is carried, for `epollerr`. At most [`MAX_REGS`]; past
//! that, further ones are not remembered.

use crate::sys;
use libc::c_int;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Registrations remembered at most.
pub const MAX_REGS: usize = 256;

/// One registration: epoll fd, the program's data, the socket.
#[derive(Clone, Copy)]
struct Reg {
    epfd: c_int,
    data: u64,
    fd: c_int,
}

static REGS: Mutex<[Option<Reg>; MAX_REGS]> = Mutex::new([None; MAX_REGS]);
/// How many entries of [`REGS`] are used (the fast path skips the lock at 0).
static USED: AtomicUsize = AtomicUsize::new(0);

fn with_regs<R>(f: impl FnOnce(&mut [Option<Reg>; MAX_REGS]) -> R) -> R {
    let mut g = REGS.lock().unwrap_or_else(|p| p.into_inner());
    let r = f(&mut g);
    USED.store(g.iter().filter(|r| r.is_some()).count(), Ordering::Release);
    r
}

/// Notes a successful `epoll_ctl(epfd, op, fd, data)` on a socket we track.
pub fn note(epfd: c_int, op: c_int, fd: c_int, data: u64) {
    if op == libc::EPOLL_CTL_DEL {
        if USED.load(Ordering::Acquire) > 0 {
            with_regs(|regs| {
                for r in regs.iter_mut() {
                    if r.is_some_and(|r| r.epfd == epfd && r.fd == fd) {
                        *r = None;
                    }
                }
            });
        }
        return;
    }
    // Datagram sockets only: a UDP socket not yet carried, or the data
    // socket (SOCK_SEQPACKET) of a carried one.
    let ty = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE).unwrap_or(0);
    if ty != libc::SOCK_DGRAM && ty != libc::SOCK_SEQPACKET {
        return;
    }
    with_regs(|regs| {
        let new = Reg { epfd, data, fd };
        if let Some(r) = regs
            .iter_mut()
            .find(|r| r.is_some_and(|r| r.epfd == epfd && r.fd == fd))
        {
            *r = Some(new);
        } else if let Some(free) = regs.iter_mut().find(|r| r.is_none()) {
            *free = Some(new);
        }
    });
}

/// Forgets every registration of `fd`, as a socket or as an epoll fd
/// (it was closed).
pub fn forget(fd: c_int) {
    if USED.load(Ordering::Acquire) == 0 {
        return;
    }
    with_regs(|regs| {
        for r in regs.iter_mut() {
            if r.is_some_and(|r| r.fd == fd || r.epfd == fd) {
                *r = None;
            }
        }
    });
}

/// Whether nothing is remembered (the fast path of every `epoll_wait`).
pub fn is_empty() -> bool {
    USED.load(Ordering::Acquire) == 0
}

/// The socket registered in `epfd` with `data`, if remembered.
pub fn lookup(epfd: c_int, data: u64) -> Option<c_int> {
    with_regs(|regs| {
        regs.iter()
            .flatten()
            .find(|r| r.epfd == epfd && r.data == data)
            .map(|r| r.fd)
    })
}
