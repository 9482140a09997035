//! The listening side: `bind(2)` (a wildcard or tunnel address on a stream
//! socket is rewritten to loopback; on a datagram socket it may make a
//! carried one, [`dgram`]), `listen(2)` (tells the engine), `accept(2)` and
//! `accept4(2)` (show the peer's tunnel address).

use crate::addr;
use crate::dgram;
use crate::engine;
use crate::guard::{fail, hook};
use crate::real;
use crate::sys;
use crate::table::{self, Kind};
use control::{Reply, Request};
use libc::{c_int, sockaddr, socklen_t};
use std::net::SocketAddr;

unsafe fn do_bind(fd: c_int, a: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: forwarded application arguments.
    let pass = || unsafe { real::bind(fd, a, len) };
    // SAFETY: as above.
    let Some(requested) = (unsafe { addr::read(a, len) }) else {
        return pass();
    };
    let (Ok(ty), Ok(domain)) = (
        sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE),
        sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN),
    ) else {
        return pass();
    };
    if !matches!(domain, libc::AF_INET | libc::AF_INET6) {
        return pass();
    }
    let norm = control::normalize(requested);
    if ty == libc::SOCK_DGRAM {
        // SAFETY: forwarded application arguments.
        return unsafe { bind_udp(fd, norm, pass) };
    }
    if ty == libc::SOCK_RAW
        && !norm.ip().is_unspecified()
        && dgram::kind_of(fd) == Some(control::DatagramKind::RawIcmp)
    {
        // `ping -I <our tunnel address>` as root: carried from here on
        // (a raw socket has no port; the echo identifier comes later).
        // SAFETY: forwarded application arguments.
        return unsafe { bind_udp(fd, SocketAddr::new(norm.ip(), 0), pass) };
    }
    if ty != libc::SOCK_STREAM {
        return pass();
    }
    if norm.ip().is_loopback() || norm.ip().is_multicast() {
        return pass();
    }
    // A wildcard never opens on the host's interfaces, engine or not.
    let redirect = norm.ip().is_unspecified()
        || matches!(
            engine::query(&Request::Bind { addr: norm }),
            Ok(Reply::Bind { redirect: true })
        );
    if !redirect {
        return pass();
    }
    let (ss, sl) = addr::to_storage(addr::loopback_like(&requested));
    // SAFETY: `ss` holds a valid address of `sl` bytes.
    let r = unsafe { real::bind(fd, &ss as *const _ as *const sockaddr, sl) };
    if r == 0 {
        if let Some(old) = table::set(
            fd,
            Kind::Listener {
                requested,
                family: domain,
                listening: false,
            },
        ) {
            table::release(&old);
        }
    }
    r
}

/// `bind()` of a datagram socket: a fixed port on a wildcard, or any port
/// on one of our tunnel addresses, makes it a tunnel socket at once (a
/// server); anything else (port 0 on a wildcard, loopback, host
/// addresses) stays the kernel's.
unsafe fn bind_udp(fd: c_int, norm: SocketAddr, pass: impl FnOnce() -> c_int) -> c_int {
    let regs = match table::get(fd) {
        Some(Kind::Udp { .. }) => return fail(libc::EINVAL), // already bound
        Some(Kind::Fresh { regs }) => regs,
        _ => [None; table::MAX_EPOLL_REGS],
    };
    let ip = norm.ip();
    if ip.is_loopback() || ip.is_multicast() || (ip.is_unspecified() && norm.port() == 0) {
        return pass();
    }
    let carry = ip.is_unspecified()
        || matches!(
            engine::query(&Request::Bind { addr: norm }),
            Ok(Reply::Bind { redirect: true })
        );
    if !carry {
        return pass();
    }
    match dgram::open(fd, Some(norm), None, &regs) {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

fn do_listen(fd: c_int, backlog: c_int) -> c_int {
    // SAFETY: integer arguments.
    let r = unsafe { real::listen(fd, backlog) };
    if r != 0 {
        return r;
    }
    if let Some(Kind::Listener { mut requested, .. }) = table::get(fd) {
        if let Some(loopback) = sys::getsockname(fd)
            .ok()
            .and_then(|(ss, l)| addr::from_storage(&ss, l))
        {
            requested.set_port(loopback.port());
            table::update(fd, |k| {
                if let Kind::Listener {
                    requested: r,
                    listening,
                    ..
                } = k
                {
                    *listening = true;
                    r.set_port(loopback.port());
                }
            });
            let _ = engine::query(&Request::Listen {
                requested: control::normalize(requested),
                loopback,
            });
        }
    }
    0
}

unsafe fn do_accept4(
    fd: c_int,
    a: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
    plain: bool,
) -> c_int {
    let nfd = if plain {
        // SAFETY: forwarded application arguments.
        unsafe { real::accept(fd, a, len) }
    } else {
        // SAFETY: forwarded application arguments.
        unsafe { real::accept4(fd, a, len, flags) }
    };
    if nfd < 0 {
        return nfd;
    }
    if let Some(stale) = table::take(nfd) {
        table::release(&stale);
    }
    let Some(Kind::Listener { family, .. }) = table::get(fd) else {
        return nfd;
    };
    let listener = sys::getsockname(fd)
        .ok()
        .and_then(|(ss, l)| addr::from_storage(&ss, l));
    let peer = sys::getpeername(nfd)
        .ok()
        .and_then(|(ss, l)| addr::from_storage(&ss, l));
    let (Some(listener), Some(peer)) = (listener, peer) else {
        return nfd;
    };
    if let Ok(Reply::Accept(Some(p))) = engine::query(&Request::AcceptLookup { listener, peer }) {
        table::set(
            nfd,
            Kind::Accepted {
                peer: p.peer,
                local: p.local,
                family,
            },
        );
        if !a.is_null() && !len.is_null() {
            // SAFETY: the application's accept out-parameters.
            let _ = unsafe { addr::write_out(addr::in_family(p.peer, family), a, len) };
        }
    }
    nfd
}

/// Interposed `bind(2)`.
///
/// # Safety
/// As for `bind(2)`.
#[no_mangle]
pub unsafe extern "C" fn bind(fd: c_int, a: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: forwarded application arguments.
    hook(
        || unsafe { real::bind(fd, a, len) },
        || unsafe { do_bind(fd, a, len) },
        libc::EADDRNOTAVAIL,
    )
}

/// Interposed `listen(2)`.
///
/// # Safety
/// As for `listen(2)`.
#[no_mangle]
pub unsafe extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    // SAFETY: integer arguments.
    hook(
        || unsafe { real::listen(fd, backlog) },
        || do_listen(fd, backlog),
        libc::EINVAL,
    )
}

/// Interposed `accept(2)`.
///
/// # Safety
/// As for `accept(2)`.
#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, a: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: forwarded application arguments.
    hook(
        || unsafe { real::accept(fd, a, len) },
        || unsafe { do_accept4(fd, a, len, 0, true) },
        libc::ECONNABORTED,
    )
}

/// Interposed `accept4(2)`.
///
/// # Safety
/// As for `accept4(2)`.
#[no_mangle]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    a: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    hook(
        // SAFETY: forwarded application arguments.
        || unsafe { real::accept4(fd, a, len, flags) },
        // SAFETY: as above.
        || unsafe { do_accept4(fd, a, len, flags, false) },
        libc::ECONNABORTED,
    )
}
