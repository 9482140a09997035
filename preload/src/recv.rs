//! The receive calls — `recv`, `read`, `readv`, `recvfrom`, `recvmsg`,
//! `recvmmsg`: on a tunnel stream an error end is reported as its errno
//! ([`stream_end`]); on a carried datagram socket the header is stripped
//! and the peer's tunnel address shown ([`dgram`]).

use crate::dgram;
use crate::guard::hook;
use crate::iov::{iov_count, iov_sum, iov_total};
use crate::real;
use crate::stream_end;
use crate::sys::set_errno;
use crate::table::{self, Quick};
use libc::{c_int, c_void, sockaddr, socklen_t};

/// A receive on a carried socket into `iov`, as `recvmsg` would return it.
///
/// # Safety
/// As for `recvmsg(2)` with these pieces.
#[allow(clippy::too_many_arguments)]
unsafe fn recv_carried(
    fd: c_int,
    st: &dgram::Udp,
    iov: *const libc::iovec,
    iovlen: usize,
    flags: c_int,
    name: *mut sockaddr,
    namelen: *mut socklen_t,
    msg_flags: Option<&mut c_int>,
    info: Option<&mut control::datagram::RecvInfo>,
) -> isize {
    // SAFETY: per the caller.
    match unsafe { dgram::recv(fd, st, iov, iovlen, flags, name, namelen) } {
        Ok(r) => {
            if let Some(f) = msg_flags {
                *f = r.msg_flags;
            }
            if let Some(i) = info {
                *i = r.info;
            }
            r.len as isize
        }
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

/// [`recv_carried`] without a source address or message flags (`recv`,
/// `read`, `readv`).
///
/// # Safety
/// As for [`recv_carried`].
unsafe fn recv_nameless(
    fd: c_int,
    st: &dgram::Udp,
    iov: *const libc::iovec,
    iovlen: usize,
    flags: c_int,
) -> isize {
    let (name, len) = (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: per the caller.
    unsafe { recv_carried(fd, st, iov, iovlen, flags, name, len, None, None) }
}

/// Interposed `recvfrom(2)`: strips the datagram header on carried sockets
/// and reports the peer's tunnel address.
///
/// # Safety
/// As for `recvfrom(2)`.
#[no_mangle]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    len: usize,
    flags: c_int,
    a: *mut sockaddr,
    alen: *mut socklen_t,
) -> isize {
    // SAFETY: forwarded application arguments.
    let pass = || unsafe { real::recvfrom(fd, buf, len, flags, a, alen) };
    match table::quick(fd) {
        Quick::Other => return pass(),
        Quick::Stream => return hook(pass, || stream_end::after_recv(fd, pass(), len), libc::EIO),
        Quick::Udp => {}
    }
    hook(
        pass,
        || match dgram::get(fd) {
            // SAFETY: one iovec over the application's buffer.
            Some(st) => unsafe {
                recv_carried(
                    fd,
                    &st,
                    &dgram::iov1(buf, len),
                    1,
                    flags,
                    a,
                    alen,
                    None,
                    None,
                )
            },
            None => pass(),
        },
        libc::EIO,
    )
}

/// Interposed `recv(2)`.
///
/// # Safety
/// As for `recv(2)`.
#[no_mangle]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, len: usize, flags: c_int) -> isize {
    // SAFETY: forwarded application arguments.
    let pass = || unsafe { real::recv(fd, buf, len, flags) };
    match table::quick(fd) {
        Quick::Other => return pass(),
        Quick::Stream => return hook(pass, || stream_end::after_recv(fd, pass(), len), libc::EIO),
        Quick::Udp => {}
    }
    hook(
        pass,
        || match dgram::get(fd) {
            // SAFETY: as in recvfrom.
            Some(st) => unsafe { recv_nameless(fd, &st, &dgram::iov1(buf, len), 1, flags) },
            None => pass(),
        },
        libc::EIO,
    )
}

/// Interposed `read(2)` (only carried datagram sockets are looked at).
///
/// # Safety
/// As for `read(2)`.
#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, len: usize) -> isize {
    // SAFETY: forwarded application arguments.
    let pass = || unsafe { real::read(fd, buf, len) };
    match table::quick(fd) {
        Quick::Other => return pass(),
        Quick::Stream => return hook(pass, || stream_end::after_recv(fd, pass(), len), libc::EIO),
        Quick::Udp => {}
    }
    hook(
        pass,
        || match dgram::get(fd) {
            // SAFETY: as in recvfrom.
            Some(st) => unsafe { recv_nameless(fd, &st, &dgram::iov1(buf, len), 1, 0) },
            None => pass(),
        },
        libc::EIO,
    )
}

/// Interposed `readv(2)`: as `read` — an error end of a tunnel stream is
/// reported as its errno, and a carried datagram socket reads one
/// datagram into the buffers.
///
/// # Safety
/// As for `readv(2)`.
#[no_mangle]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const libc::iovec, n: c_int) -> isize {
    // SAFETY: forwarded application arguments.
    let pass = || unsafe { real::readv(fd, iov, n) };
    let quick = table::quick(fd);
    if quick == Quick::Other {
        return pass();
    }
    let Some(count) = iov_count(iov, n) else {
        return pass();
    };
    if quick == Quick::Stream {
        // SAFETY: the application's array of `count` iovecs.
        let len = unsafe { iov_sum(iov, count) };
        return hook(pass, || stream_end::after_recv(fd, pass(), len), libc::EIO);
    }
    hook(
        pass,
        || match dgram::get(fd) {
            // SAFETY: the application's `count` iovecs.
            Some(st) => unsafe { recv_nameless(fd, &st, iov, count, 0) },
            None => pass(),
        },
        libc::EIO,
    )
}

/// Interposed `recvmsg(2)`.
///
/// # Safety
/// As for `recvmsg(2)`.
#[no_mangle]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut libc::msghdr, flags: c_int) -> isize {
    // SAFETY: forwarded application arguments.
    let pass = || unsafe { real::recvmsg(fd, msg, flags) };
    if msg.is_null() {
        return pass();
    }
    match table::quick(fd) {
        Quick::Other if flags & libc::MSG_ERRQUEUE != 0 => {
            // An echo stand-in's refused send queues a local error.
            return hook(
                pass,
                || {
                    if crate::echo_standin::get(fd).is_none() {
                        return pass();
                    }
                    let family = crate::sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN)
                        .unwrap_or(libc::AF_INET);
                    // SAFETY: non-null msghdr from the application.
                    let m = unsafe { &mut *msg };
                    let room = dgram::controllen(m);
                    m.msg_flags = 0;
                    // SAFETY: the application's msghdr and control buffer.
                    unsafe { crate::errqueue::take(fd, family, m, room) }.unwrap_or_else(pass)
                },
                libc::EIO,
            );
        }
        Quick::Other => return pass(),
        Quick::Stream => {
            // SAFETY: non-null msghdr from the application.
            let len = unsafe { iov_total(&*msg) };
            return hook(pass, || stream_end::after_recv(fd, pass(), len), libc::EIO);
        }
        Quick::Udp => {}
    }
    hook(
        pass,
        || match dgram::get(fd) {
            Some(st) => {
                // SAFETY: non-null msghdr from the application.
                let m = unsafe { &mut *msg };
                let room = dgram::controllen(m);
                if flags & libc::MSG_ERRQUEUE != 0 {
                    m.msg_flags = 0;
                    // SAFETY: the application's msghdr and control buffer.
                    if let Some(r) = unsafe { crate::errqueue::take(fd, st.family, m, room) } {
                        return r;
                    }
                    // SAFETY: as above.
                    if let Some(r) = unsafe { dgram::take_remote_error(fd, &st, m, room) } {
                        return r;
                    }
                }
                m.msg_controllen = 0;
                let mut out_flags = 0;
                let mut info = control::datagram::RecvInfo::default();
                // SAFETY: the application's msghdr pieces.
                let r = unsafe {
                    recv_carried(
                        fd,
                        &st,
                        m.msg_iov,
                        dgram::iovlen(m),
                        flags,
                        m.msg_name as *mut sockaddr,
                        &mut m.msg_namelen,
                        Some(&mut out_flags),
                        Some(&mut info),
                    )
                };
                m.msg_flags = out_flags;
                if r >= 0 {
                    // SAFETY: the application's control buffer of `room` bytes.
                    unsafe { crate::cmsg::fill(m, room, st.shadow, st.family, info) };
                }
                r
            }
            None => pass(),
        },
        libc::EIO,
    )
}

/// Waits until `fd` is readable or `deadline` passes; false on timeout.
fn wait_readable(fd: c_int, deadline: std::time::Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms = left.as_millis().min(i32::MAX as u128) as c_int;
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r > 0 {
            return true;
        }
        if r == 0 || crate::sys::errno() != libc::EINTR {
            return r > 0;
        }
    }
}

/// The timeout of a `recvmmsg` call as a deadline (`None`: no timeout, or
/// not readable).
///
/// # Safety
/// `t` null or valid for reads.
unsafe fn deadline_of(t: *const libc::timespec) -> Option<std::time::Instant> {
    if t.is_null() {
        return None;
    }
    // SAFETY: per the caller.
    let t = unsafe { std::ptr::read_unaligned(t) };
    if t.tv_sec < 0 || !(0..1_000_000_000).contains(&t.tv_nsec) {
        return None;
    }
    let d = std::time::Duration::new(t.tv_sec as u64, t.tv_nsec as u32);
    std::time::Instant::now().checked_add(d)
}

/// Interposed `recvmmsg(2)`. On carried sockets the timeout bounds the
/// whole call (the first datagram included; none by then: `EAGAIN`), and
/// the time left is written back, as the kernel does.
///
/// # Safety
/// As for `recvmmsg(2)`.
#[no_mangle]
pub unsafe extern "C" fn recvmmsg(
    fd: c_int,
    msgs: *mut libc::mmsghdr,
    vlen: libc::c_uint,
    flags: c_int,
    timeout: *mut libc::timespec,
) -> c_int {
    // SAFETY: forwarded application arguments.
    let pass = || unsafe { real::recvmmsg(fd, msgs, vlen, flags, timeout) };
    if msgs.is_null() || !table::maybe_udp(fd) {
        return pass();
    }
    hook(
        pass,
        || {
            let Some(st) = dgram::get(fd) else {
                return pass();
            };
            // SAFETY: the application's timeout, if any.
            let deadline = unsafe { deadline_of(timeout) };
            let mut got = 0;
            for i in 0..vlen.min(1024) {
                let mut f = flags & !libc::MSG_WAITFORONE;
                if i > 0 && flags & libc::MSG_WAITFORONE != 0 {
                    f |= libc::MSG_DONTWAIT;
                }
                if let Some(d) = deadline {
                    if f & libc::MSG_DONTWAIT == 0 && !wait_readable(fd, d) {
                        if got == 0 {
                            set_errno(libc::EAGAIN);
                            return -1;
                        }
                        break;
                    }
                    f |= libc::MSG_DONTWAIT;
                }
                // SAFETY: `vlen` entries per the application.
                let m = unsafe { &mut (*msgs.add(i as usize)).msg_hdr };
                let room = dgram::controllen(m);
                m.msg_controllen = 0;
                let mut out_flags = 0;
                let mut info = control::datagram::RecvInfo::default();
                // SAFETY: the application's msghdr pieces.
                let r = unsafe {
                    recv_carried(
                        fd,
                        &st,
                        m.msg_iov,
                        dgram::iovlen(m),
                        f,
                        m.msg_name as *mut sockaddr,
                        &mut m.msg_namelen,
                        Some(&mut out_flags),
                        Some(&mut info),
                    )
                };
                if r < 0 {
                    if got == 0 {
                        return -1;
                    }
                    break;
                }
                m.msg_flags = out_flags;
                // SAFETY: the application's control buffer of `room` bytes.
                unsafe { crate::cmsg::fill(m, room, st.shadow, st.family, info) };
                // SAFETY: as above.
                unsafe { (*msgs.add(i as usize)).msg_len = r as libc::c_uint };
                got += 1;
            }
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(std::time::Instant::now());
                let t = libc::timespec {
                    tv_sec: left.as_secs() as libc::time_t,
                    tv_nsec: left.subsec_nanos() as _,
                };
                // SAFETY: non-null (a deadline came from it), the application's.
                unsafe { std::ptr::write_unaligned(timeout, t) };
            }
            got
        },
        libc::EIO,
    )
}
