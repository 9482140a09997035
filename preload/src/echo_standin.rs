//! Stand-ins for the echo sockets the host refused (see
//! `control::echo`): when `socket()` of a ping or raw ICMP socket fails
//! with `EACCES`/`EPERM` and no echo socket is possible at all, the shim
//! makes a kernel UDP socket of the same family instead and notes it as
//! [`Kind::EchoStandIn`]. Its first send or `connect()` to a tunnel
//! destination opens an echo flow (`dgram::open`, as for a real ping
//! socket); any other destination fails with the errno the kernel gave at
//! `socket()`, so nothing reaches the host's network through it.

use crate::real;
use crate::sys::{self, set_errno};
use crate::table::{self, Kind};
use control::DatagramKind;
use libc::c_int;

/// What `socket(domain, ty, proto)` returns once the kernel refused it
/// with `errno`: a stand-in's fd (errno back to `before`, its value before
/// the call), or -1 with `errno` kept.
pub fn after_refusal(domain: c_int, ty: c_int, proto: c_int, errno: c_int, before: c_int) -> c_int {
    let refused = || {
        set_errno(errno);
        -1
    };
    let Some(dkind) = control::echo::asked(domain, ty, proto) else {
        return refused();
    };
    if crate::engine::config().engine.is_none() {
        return refused();
    }
    let raw_allowed = dkind == DatagramKind::Ping && raw_possible(domain, proto);
    if !control::echo::stand_in(dkind, errno, raw_allowed) {
        return refused();
    }
    let flags = ty & (libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
    // SAFETY: integer arguments.
    let fd = unsafe { real::socket(domain, libc::SOCK_DGRAM | flags, 0) };
    if fd < 0 {
        return refused();
    }
    if let Some(stale) = table::set(
        fd,
        Kind::EchoStandIn {
            dkind,
            refused: errno,
            regs: [None; table::MAX_EPOLL_REGS],
        },
    ) {
        table::release(&stale);
    }
    set_errno(before);
    fd
}

/// Whether this process may open a raw ICMP socket (`CAP_NET_RAW`).
fn raw_possible(domain: c_int, proto: c_int) -> bool {
    match sys::socket(domain, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) {
        Ok(fd) => {
            sys::close(fd);
            true
        }
        Err(_) => false,
    }
}

/// The stand-in state of `fd`: (kind, errno to refuse with), if it is one.
pub fn get(fd: c_int) -> Option<(DatagramKind, c_int)> {
    match table::get(fd) {
        Some(Kind::EchoStandIn { dkind, refused, .. }) => Some((dkind, refused)),
        _ => None,
    }
}

/// Whether a `setsockopt` is one only a raw ICMP socket has (`ICMP_FILTER`,
/// `ICMP6_FILTER`, `IPV6_CHECKSUM`) made on a raw stand-in, or on the UDP
/// shadow of a carried one (`sock`): accepted and ignored, as the engine
/// delivers only the echo replies of the socket's identifier anyway.
pub fn raw_only_option(dkind: DatagramKind, sock: c_int, level: c_int, name: c_int) -> bool {
    const SOL_RAW: c_int = 255;
    const ICMP_FILTER: c_int = 1;
    const ICMP6_FILTER: c_int = 1;
    let raw_only = matches!(
        (level, name),
        (SOL_RAW, ICMP_FILTER)
            | (libc::IPPROTO_ICMPV6, ICMP6_FILTER)
            | (libc::IPPROTO_IPV6, libc::IPV6_CHECKSUM)
    );
    raw_only
        && dkind == DatagramKind::RawIcmp
        && sys::getsockopt_int(sock, libc::SOL_SOCKET, libc::SO_TYPE) == Ok(libc::SOCK_DGRAM)
}

/// `getsockopt` on a stand-in not yet carried: `SO_TYPE`/`SO_PROTOCOL`
/// say what the program asked for, the rest is the UDP socket's.
///
/// # Safety
/// `val`/`len` as for `getsockopt(2)`.
pub unsafe fn getsockopt(
    fd: c_int,
    dkind: DatagramKind,
    level: c_int,
    name: c_int,
    val: *mut libc::c_void,
    len: *mut libc::socklen_t,
    pass: impl Fn(c_int) -> c_int,
) -> c_int {
    if level != libc::SOL_SOCKET || !matches!(name, libc::SO_TYPE | libc::SO_PROTOCOL) {
        return pass(fd);
    }
    let family =
        sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN).unwrap_or(libc::AF_INET);
    let (ty, proto) = control::echo::reported(dkind, family);
    let v = if name == libc::SO_TYPE { ty } else { proto };
    if val.is_null() || len.is_null() {
        set_errno(libc::EFAULT);
        return -1;
    }
    // SAFETY: non-null, valid per the getsockopt contract.
    let room = unsafe { *len };
    let n = (room as usize).min(std::mem::size_of::<c_int>());
    // SAFETY: `n` bytes fit in the caller's buffer.
    unsafe {
        std::ptr::copy_nonoverlapping(&v as *const c_int as *const u8, val as *mut u8, n);
        *len = n as libc::socklen_t;
    }
    0
}
