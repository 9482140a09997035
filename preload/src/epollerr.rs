//! `EPOLLERR` for a pending ICMP error on a carried datagram socket, as
//! `pollerr` does for `poll`: an epoll event carries the program's data,
//! not the fd, so the registrations of datagram sockets are remembered
//! (`epoll_ctl`, and the re-registration when a socket is carried) as
//! `(epoll fd, data) → fd`; after `epoll_wait`/`epoll_pwait` return, each
//! event with `EPOLLIN` whose fd is a carried datagram socket with an
//! error message waiting gets `EPOLLERR` too.
//!
//! The registrations are [`epoll_regs`]'.

use crate::dgram;
use crate::epoll_regs;
use crate::guard::hook;
use crate::real;
use crate::table;
use libc::{c_int, epoll_event};

/// Adds `EPOLLERR` where an error message waits; returns `n`.
///
/// # Safety
/// `events` must point to at least `n` valid events.
unsafe fn mark(epfd: c_int, events: *mut epoll_event, n: c_int) -> c_int {
    if n <= 0 || events.is_null() || epoll_regs::is_empty() {
        return n;
    }
    for i in 0..n as usize {
        // SAFETY: `i < n` per the caller; epoll_event may be packed.
        let ev = unsafe { std::ptr::read_unaligned(events.add(i)) };
        let bits = ev.events;
        if bits & libc::EPOLLIN as u32 == 0 || bits & libc::EPOLLERR as u32 != 0 {
            continue;
        }
        let data = ev.u64;
        if let Some(fd) = epoll_regs::lookup(epfd, data) {
            if table::maybe_udp(fd) && dgram::error_pending(fd) {
                let marked = epoll_event {
                    events: bits | libc::EPOLLERR as u32,
                    u64: data,
                };
                // SAFETY: as above.
                unsafe { std::ptr::write_unaligned(events.add(i), marked) };
            }
        }
    }
    n
}

/// Interposed `epoll_wait(2)`.
///
/// # Safety
/// As for `epoll_wait(2)`.
#[no_mangle]
pub unsafe extern "C" fn epoll_wait(
    epfd: c_int,
    events: *mut epoll_event,
    max: c_int,
    timeout: c_int,
) -> c_int {
    // SAFETY: forwarded application arguments.
    let n = unsafe { real::epoll_wait(epfd, events, max, timeout) };
    // SAFETY: the kernel filled `n` events; only their flags change.
    hook(|| n, || unsafe { mark(epfd, events, n) }, libc::EIO)
}

/// Interposed `epoll_pwait(2)`.
///
/// # Safety
/// As for `epoll_pwait(2)`.
#[no_mangle]
pub unsafe extern "C" fn epoll_pwait(
    epfd: c_int,
    events: *mut epoll_event,
    max: c_int,
    timeout: c_int,
    sigmask: *const libc::sigset_t,
) -> c_int {
    // SAFETY: forwarded application arguments.
    let n = unsafe { real::epoll_pwait(epfd, events, max, timeout, sigmask) };
    // SAFETY: as above.
    hook(|| n, || unsafe { mark(epfd, events, n) }, libc::EIO)
}
