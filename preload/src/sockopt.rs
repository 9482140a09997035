//! `getsockopt(2)`/`setsockopt(2)` on swapped sockets: answered as the TCP
//! or UDP socket the application made would answer (see the [`crate::swap`]
//! module doc for which option goes to the data socket and which to the
//! shadow).

use crate::dgram;
use crate::guard::{fail, hook};
use crate::keepalive;
use crate::real;
use crate::stream_end;
use crate::swap::{adopted, set_state, settle};
use crate::table::{self, Kind, OutState};
use libc::{c_int, c_void, socklen_t};

/// Reads an `int` option value the kernel just stored.
///
/// # Safety
/// `val`/`len` as after a successful `getsockopt`.
unsafe fn read_int(val: *const c_void, len: *const socklen_t) -> Option<c_int> {
    if val.is_null() || len.is_null() {
        return None;
    }
    // SAFETY: non-null, valid per the caller.
    if (unsafe { *len } as usize) < std::mem::size_of::<c_int>() {
        return None;
    }
    // SAFETY: at least an int is readable.
    Some(unsafe { std::ptr::read_unaligned(val as *const c_int) })
}

/// Stores an `int` option value the way the kernel does.
unsafe fn put_int(val: *mut c_void, len: *mut socklen_t, v: c_int) -> c_int {
    if val.is_null() || len.is_null() {
        return fail(libc::EFAULT);
    }
    // SAFETY: non-null, and valid per the getsockopt contract.
    let room = unsafe { *len } as i32;
    if room < 0 {
        return fail(libc::EINVAL);
    }
    let n = (room as usize).min(std::mem::size_of::<c_int>());
    // SAFETY: `n` bytes fit in the caller's buffer.
    unsafe {
        std::ptr::copy_nonoverlapping(&v as *const c_int as *const u8, val as *mut u8, n);
        *len = n as socklen_t;
    }
    0
}

/// SOL_SOCKET options that act on the data path itself (the unix socket).
fn on_data_socket(name: c_int) -> bool {
    matches!(
        name,
        libc::SO_RCVTIMEO
            | libc::SO_SNDTIMEO
            | 66 // SO_RCVTIMEO_NEW
            | 67 // SO_SNDTIMEO_NEW
            | libc::SO_RCVLOWAT
            | libc::SO_SNDLOWAT
            | libc::SO_LINGER
            | libc::SO_TYPE
    )
}

unsafe fn do_getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    // SAFETY: forwarded application arguments.
    let pass = |target: c_int| unsafe { real::getsockopt(target, level, name, val, len) };
    if let Some(Kind::EchoStandIn { dkind, .. }) = table::get(fd) {
        // SAFETY: forwarded application arguments.
        return unsafe { crate::echo_standin::getsockopt(fd, dkind, level, name, val, len, pass) };
    }
    if let Some(Kind::Udp {
        shadow,
        family,
        dkind,
        ..
    }) = table::get(fd)
    {
        if level != libc::SOL_SOCKET {
            return pass(shadow);
        }
        let v = match name {
            libc::SO_ERROR => dgram::take_error(fd),
            // What the program asked for (the shadow of a stand-in is UDP).
            libc::SO_TYPE => control::echo::reported(dkind, family).0,
            libc::SO_PROTOCOL => control::echo::reported(dkind, family).1,
            libc::SO_DOMAIN => family,
            libc::SO_ACCEPTCONN => 0,
            n if on_data_socket(n) || n == libc::SO_RCVBUF || n == libc::SO_SNDBUF => {
                return pass(fd)
            }
            _ => return pass(shadow),
        };
        // SAFETY: application buffer, checked in put_int.
        return unsafe { put_int(val, len, v) };
    }
    let Some(Kind::Outbound {
        shadow,
        family,
        flow,
        ..
    }) = table::get(fd)
    else {
        let r = pass(fd);
        // An inherited tunnel socket (after exec) answers as AF_UNIX: adopt it.
        let suspicious = if level == libc::SOL_SOCKET {
            // SAFETY: after a successful getsockopt, `val` holds `*len` bytes.
            r == 0
                && name == libc::SO_DOMAIN
                && unsafe { read_int(val, len) } == Some(libc::AF_UNIX)
        } else {
            r != 0
        };
        if suspicious && adopted(fd) {
            // SAFETY: same arguments; the fd is tracked now.
            return unsafe { do_getsockopt(fd, level, name, val, len) };
        }
        return r;
    };
    if level == libc::IPPROTO_TCP && crate::tcp_info::answers(name) {
        // SAFETY: the application's buffer, as it passed it.
        return unsafe { crate::tcp_info::getsockopt(flow, name, val, len, || pass(shadow)) };
    }
    if level != libc::SOL_SOCKET {
        return pass(shadow);
    }
    match name {
        libc::SO_ERROR => {
            let v = match settle(fd) {
                Some(OutState::Failed {
                    errno,
                    reported: false,
                }) => {
                    table::update(fd, |k| {
                        set_state(
                            k,
                            OutState::Failed {
                                errno,
                                reported: true,
                            },
                        )
                    });
                    errno
                }
                Some(OutState::Established) => match stream_end::so_error(fd) {
                    Some(e) => e,
                    None => return pass(fd),
                },
                _ => 0,
            };
            // SAFETY: application buffer, checked in put_int.
            unsafe { put_int(val, len, v) }
        }
        // SAFETY: application buffer, checked in put_int.
        libc::SO_DOMAIN => unsafe { put_int(val, len, family) },
        // SAFETY: as above.
        libc::SO_PROTOCOL => unsafe { put_int(val, len, libc::IPPROTO_TCP) },
        // SAFETY: as above.
        libc::SO_ACCEPTCONN => unsafe { put_int(val, len, 0) },
        n if on_data_socket(n) => pass(fd),
        _ => pass(shadow),
    }
}

unsafe fn do_setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: socklen_t,
) -> c_int {
    // SAFETY: forwarded application arguments.
    let pass = |target: c_int| unsafe { real::setsockopt(target, level, name, val, len) };
    if let Some(Kind::EchoStandIn { dkind, .. }) = table::get(fd) {
        if crate::echo_standin::raw_only_option(dkind, fd, level, name) {
            return 0;
        }
        return pass(fd);
    }
    if let Some(Kind::Udp { shadow, dkind, .. }) = table::get(fd) {
        if crate::echo_standin::raw_only_option(dkind, shadow, level, name) {
            return 0;
        }
        if level != libc::SOL_SOCKET {
            return pass(shadow);
        }
        return match name {
            n if on_data_socket(n) => pass(fd),
            libc::SO_SNDBUF | libc::SO_SNDBUFFORCE | libc::SO_RCVBUF | libc::SO_RCVBUFFORCE => {
                let r = pass(shadow);
                if r == 0 {
                    let _ = pass(fd);
                }
                r
            }
            _ => pass(shadow),
        };
    }
    let Some(Kind::Outbound {
        shadow,
        state,
        flow,
        ..
    }) = table::get(fd)
    else {
        let r = pass(fd);
        if r != 0 && level != libc::SOL_SOCKET && adopted(fd) {
            // SAFETY: same arguments; the fd is tracked now.
            return unsafe { do_setsockopt(fd, level, name, val, len) };
        }
        return r;
    };
    if keepalive::is_keepalive_option(level, name) {
        let r = pass(shadow);
        if r == 0 {
            keepalive::forward(flow, shadow);
        }
        return r;
    }
    if level != libc::SOL_SOCKET {
        return pass(shadow);
    }
    match name {
        n if on_data_socket(n) => pass(fd),
        libc::SO_SNDBUF | libc::SO_SNDBUFFORCE => {
            let r = pass(shadow);
            if r == 0 {
                if state == OutState::Established {
                    let _ = pass(fd);
                } else if !val.is_null() && len as usize >= std::mem::size_of::<c_int>() {
                    // SAFETY: checked non-null and long enough.
                    let v = unsafe { std::ptr::read_unaligned(val as *const c_int) };
                    table::update(fd, |k| {
                        if let Kind::Outbound { sndbuf, .. } = k {
                            *sndbuf = v.max(1);
                        }
                    });
                }
            }
            r
        }
        libc::SO_RCVBUF | libc::SO_RCVBUFFORCE => {
            let r = pass(shadow);
            if r == 0 {
                let _ = pass(fd);
            }
            r
        }
        _ => pass(shadow),
    }
}

/// Interposed `getsockopt(2)`.
///
/// # Safety
/// As for `getsockopt(2)`.
#[no_mangle]
pub unsafe extern "C" fn getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    hook(
        // SAFETY: forwarded application arguments.
        || unsafe { real::getsockopt(fd, level, name, val, len) },
        // SAFETY: as above.
        || unsafe { do_getsockopt(fd, level, name, val, len) },
        libc::ENOPROTOOPT,
    )
}

/// Interposed `setsockopt(2)`.
///
/// # Safety
/// As for `setsockopt(2)`.
#[no_mangle]
pub unsafe extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: socklen_t,
) -> c_int {
    hook(
        // SAFETY: forwarded application arguments.
        || unsafe { real::setsockopt(fd, level, name, val, len) },
        // SAFETY: as above.
        || unsafe { do_setsockopt(fd, level, name, val, len) },
        libc::ENOPROTOOPT,
    )
}
