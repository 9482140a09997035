//! `getsockname(2)`/`getpeername(2)`: the tunnel addresses of swapped
//! sockets, the requested address of a redirected listener.

use crate::addr;
use crate::guard::{fail, hook};
use crate::real;
use crate::swap::{adopted, settle};
use crate::sys;
use crate::table::{self, Kind, OutState};
use libc::{c_int, sockaddr, socklen_t};

/// Whether a name call just returned an AF_UNIX address.
///
/// # Safety
/// `a`/`len` as after a successful `getsockname`/`getpeername`.
unsafe fn is_unix_result(a: *const sockaddr, len: *const socklen_t) -> bool {
    if a.is_null() || len.is_null() {
        return false;
    }
    // SAFETY: non-null, valid per the caller.
    if (unsafe { *len } as usize) < std::mem::size_of::<libc::sa_family_t>() {
        return false;
    }
    // SAFETY: the family field is readable.
    c_int::from(unsafe { std::ptr::read_unaligned(a as *const libc::sa_family_t) }) == libc::AF_UNIX
}

unsafe fn do_getsockname(fd: c_int, a: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: forwarded application arguments.
    let pass = || unsafe { real::getsockname(fd, a, len) };
    let shown = match table::get(fd) {
        Some(Kind::Outbound { local, family, .. }) => addr::in_family(local, family),
        Some(Kind::Accepted { local, family, .. }) => addr::in_family(local, family),
        Some(Kind::Udp { local, family, .. }) => addr::in_family(local, family),
        Some(Kind::Listener { requested, .. }) => {
            let Ok((ss, l)) = sys::getsockname(fd) else {
                return pass();
            };
            let Some(real_addr) = addr::from_storage(&ss, l) else {
                return pass();
            };
            let mut shown = requested;
            shown.set_port(real_addr.port());
            shown
        }
        _ => {
            let r = pass();
            // SAFETY: after success the kernel filled `a`/`len`.
            if r == 0 && unsafe { is_unix_result(a, len) } && adopted(fd) {
                // SAFETY: same arguments; the fd is tracked now.
                return unsafe { do_getsockname(fd, a, len) };
            }
            return r;
        }
    };
    // SAFETY: application out-parameters, checked in write_out.
    match unsafe { addr::write_out(shown, a, len) } {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

unsafe fn do_getpeername(fd: c_int, a: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: forwarded application arguments.
    let pass = || unsafe { real::getpeername(fd, a, len) };
    let shown = match table::get(fd) {
        Some(Kind::Outbound { peer, .. }) => match settle(fd) {
            Some(OutState::Established) => peer,
            _ => return fail(libc::ENOTCONN),
        },
        Some(Kind::Accepted { peer, family, .. }) => addr::in_family(peer, family),
        Some(Kind::Udp { peer, .. }) => match peer {
            Some(p) => p,
            None => return fail(libc::ENOTCONN),
        },
        _ => {
            let r = pass();
            // SAFETY: after success the kernel filled `a`/`len`.
            if r == 0 && unsafe { is_unix_result(a, len) } && adopted(fd) {
                // SAFETY: same arguments; the fd is tracked now.
                return unsafe { do_getpeername(fd, a, len) };
            }
            return r;
        }
    };
    // SAFETY: application out-parameters, checked in write_out.
    match unsafe { addr::write_out(shown, a, len) } {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

/// Interposed `getsockname(2)`.
///
/// # Safety
/// As for `getsockname(2)`.
#[no_mangle]
pub unsafe extern "C" fn getsockname(fd: c_int, a: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: forwarded application arguments.
    hook(
        || unsafe { real::getsockname(fd, a, len) },
        || unsafe { do_getsockname(fd, a, len) },
        libc::EBADF,
    )
}

/// Interposed `getpeername(2)`.
///
/// # Safety
/// As for `getpeername(2)`.
#[no_mangle]
pub unsafe extern "C" fn getpeername(fd: c_int, a: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: forwarded application arguments.
    hook(
        || unsafe { real::getpeername(fd, a, len) },
        || unsafe { do_getpeername(fd, a, len) },
        libc::ENOTCONN,
    )
}
