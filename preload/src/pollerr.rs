//! `POLLERR` for a pending ICMP error on a carried connected datagram
//! socket, as the kernel's `poll` shows `sk_err`: the engine's error
//! message waits first in the data socket (see `dgram`), which the kernel
//! reports as `POLLIN` only; after `poll`/`ppoll` return, each carried
//! datagram fd reported readable is peeked and, if an error waits, gets
//! `POLLERR` too. `select` needs nothing (the kernel shows a socket error
//! as readable there); `epoll` is `epollerr`'s (its events carry the
//! program's data, not the fd).

use crate::dgram;
use crate::guard::hook;
use crate::real;
use crate::table;
use libc::{c_int, nfds_t, pollfd};

/// Adds `POLLERR` where an error message waits; returns the new count of
/// fds with events.
///
/// # Safety
/// `fds` must point to `nfds` valid pollfds.
unsafe fn mark(fds: *mut pollfd, nfds: nfds_t, n: c_int) -> c_int {
    if n <= 0 || fds.is_null() {
        return n;
    }
    for i in 0..nfds as usize {
        // SAFETY: `i < nfds` per the caller.
        let p = unsafe { &mut *fds.add(i) };
        if p.revents & libc::POLLIN == 0 || p.revents & libc::POLLERR != 0 {
            continue;
        }
        if table::maybe_udp(p.fd) && dgram::error_pending(p.fd) {
            p.revents |= libc::POLLERR;
        }
    }
    n
}

/// Interposed `poll(2)`.
///
/// # Safety
/// As for `poll(2)`.
#[no_mangle]
pub unsafe extern "C" fn poll(fds: *mut pollfd, nfds: nfds_t, timeout: c_int) -> c_int {
    // SAFETY: forwarded application arguments.
    let n = unsafe { real::poll(fds, nfds, timeout) };
    // SAFETY: as above; only revents of the application's array change.
    hook(|| n, || unsafe { mark(fds, nfds, n) }, libc::EIO)
}

/// Interposed `ppoll(2)`.
///
/// # Safety
/// As for `ppoll(2)`.
#[no_mangle]
pub unsafe extern "C" fn ppoll(
    fds: *mut pollfd,
    nfds: nfds_t,
    timeout: *const libc::timespec,
    sigmask: *const libc::sigset_t,
) -> c_int {
    // SAFETY: forwarded application arguments.
    let n = unsafe { real::ppoll(fds, nfds, timeout, sigmask) };
    // SAFETY: as above.
    hook(|| n, || unsafe { mark(fds, nfds, n) }, libc::EIO)
}
