//! The send calls — `send`, `write`, `writev`, `sendto`, `sendmsg`,
//! `sendmmsg`: on a tunnel stream the error end is reported
//! ([`stream_end`]); on a datagram socket the plan ([`send_plan`]) decides
//! between the kernel, a carried flow ([`dgram`]) and refusal.

use crate::addr;
use crate::connect::do_connect;
use crate::dgram;
use crate::guard::{fail, hook};
use crate::iov::iov_count;
use crate::real;
use crate::send_plan::{self, SendPlan};
use crate::stream_end;
use crate::sys::set_errno;
use crate::table::{self, Quick};
use libc::{c_int, c_void, sockaddr, socklen_t};

/// Opens a datagram flow for a first send into the tunnel; the state to
/// send with.
fn open_for_send(fd: c_int, regs: &[Option<table::EpollReg>]) -> Result<dgram::Udp, c_int> {
    dgram::open(fd, None, None, regs)?;
    dgram::get(fd).ok_or(libc::EBADF)
}

unsafe fn do_sendto(
    fd: c_int,
    buf: *const c_void,
    len: usize,
    flags: c_int,
    a: *const sockaddr,
    alen: socklen_t,
) -> isize {
    // SAFETY: the application's arguments.
    let dst = || unsafe { addr::read(a, alen) };
    let iov = dgram::iov1(buf, len);
    // SAFETY: the application's arguments.
    match unsafe { send_plan::plan(fd, a, alen, flags) } {
        // SAFETY: forwarded application arguments.
        SendPlan::Pass => unsafe { real::sendto(fd, buf, len, flags, a, alen) },
        SendPlan::DropAddress => {
            // SAFETY: as above, without the address.
            unsafe {
                real::sendto(
                    fd,
                    buf,
                    len,
                    flags & !libc::MSG_FASTOPEN,
                    std::ptr::null(),
                    0,
                )
            }
        }
        SendPlan::ConnectFirst => {
            // SAFETY: the application's address.
            if unsafe { do_connect(fd, a, alen) } != 0 {
                return -1;
            }
            // SAFETY: forwarded application arguments.
            unsafe { real::send(fd, buf, len, flags & !libc::MSG_FASTOPEN) }
        }
        SendPlan::Refuse(e) => {
            set_errno(e);
            -1
        }
        // SAFETY: one iovec over the application's buffer.
        SendPlan::Carried(st) => unsafe { dgram::send(fd, &st, dst(), &iov, 1, flags) },
        SendPlan::Open(regs) => match open_for_send(fd, &regs) {
            // SAFETY: as above.
            Ok(st) => unsafe { dgram::send(fd, &st, dst(), &iov, 1, flags) },
            Err(e) => {
                set_errno(e);
                -1
            }
        },
    }
}

unsafe fn do_sendmsg(fd: c_int, msg: *const libc::msghdr, flags: c_int) -> isize {
    // SAFETY: forwarded application arguments.
    let pass = |m: *const libc::msghdr, f: c_int| unsafe { real::sendmsg(fd, m, f) };
    if msg.is_null() {
        return pass(msg, flags);
    }
    // SAFETY: non-null msghdr from the application.
    let mut copy = unsafe { *msg };
    // SAFETY: msg_name/msg_namelen describe the application's address.
    let plan = unsafe {
        send_plan::plan(
            fd,
            copy.msg_name as *const sockaddr,
            copy.msg_namelen,
            flags,
        )
    };
    let carried = |st: dgram::Udp| {
        // SAFETY: the application's msghdr.
        unsafe {
            dgram::send(
                fd,
                &st,
                dgram::msg_dst(&copy),
                copy.msg_iov,
                dgram::iovlen(&copy),
                flags,
            )
        }
    };
    match plan {
        SendPlan::Pass => pass(msg, flags),
        SendPlan::DropAddress => {
            copy.msg_name = std::ptr::null_mut();
            copy.msg_namelen = 0;
            pass(&copy, flags & !libc::MSG_FASTOPEN)
        }
        SendPlan::ConnectFirst => {
            // SAFETY: the application's address.
            if unsafe { do_connect(fd, copy.msg_name as *const sockaddr, copy.msg_namelen) } != 0 {
                return -1;
            }
            copy.msg_name = std::ptr::null_mut();
            copy.msg_namelen = 0;
            pass(&copy, flags & !libc::MSG_FASTOPEN)
        }
        SendPlan::Refuse(e) => {
            set_errno(e);
            -1
        }
        SendPlan::Carried(st) => carried(st),
        SendPlan::Open(regs) => match open_for_send(fd, &regs) {
            Ok(st) => carried(st),
            Err(e) => {
                set_errno(e);
                -1
            }
        },
    }
}

unsafe fn do_sendmmsg(
    fd: c_int,
    msgs: *mut libc::mmsghdr,
    vlen: libc::c_uint,
    flags: c_int,
) -> c_int {
    if msgs.is_null() || vlen == 0 {
        // SAFETY: forwarded application arguments.
        return unsafe { real::sendmmsg(fd, msgs, vlen, flags) };
    }
    let vlen = vlen.min(1024);
    // Decide on the first datagram; a carried socket then sends each one
    // through the hook (partial counts as the kernel reports them).
    // SAFETY: `vlen` entries per the application.
    let first = unsafe { (*msgs).msg_hdr };
    // SAFETY: the entry's address, as the application gave it.
    let plan = unsafe {
        send_plan::plan(
            fd,
            first.msg_name as *const sockaddr,
            first.msg_namelen,
            flags,
        )
    };
    let st = match plan {
        SendPlan::Carried(st) => st,
        SendPlan::Open(regs) => match open_for_send(fd, &regs) {
            Ok(st) => st,
            Err(e) => return fail(e),
        },
        SendPlan::Refuse(e) => return fail(e),
        _ => {
            // Not carried: the kernel's, unless a later datagram is routed.
            let mut n = vlen;
            for i in 1..vlen {
                // SAFETY: `vlen` entries per the application.
                let h = unsafe { (*msgs.add(i as usize)).msg_hdr };
                // SAFETY: the entry's address, as the application gave it.
                let p = unsafe {
                    send_plan::plan(fd, h.msg_name as *const sockaddr, h.msg_namelen, flags)
                };
                if matches!(p, SendPlan::Refuse(_) | SendPlan::Open(_)) {
                    // Send the part before it, as the kernel reports a
                    // partial batch; the next call carries the rest.
                    n = i;
                    break;
                }
            }
            // SAFETY: forwarded application arguments (a prefix of them).
            return unsafe { real::sendmmsg(fd, msgs, n, flags) };
        }
    };
    let mut sent = 0;
    for i in 0..vlen {
        // SAFETY: `vlen` entries per the application.
        let m = unsafe { &mut *msgs.add(i as usize) };
        // SAFETY: the application's msghdr.
        let r = unsafe {
            dgram::send(
                fd,
                &st,
                dgram::msg_dst(&m.msg_hdr),
                m.msg_hdr.msg_iov,
                dgram::iovlen(&m.msg_hdr),
                flags,
            )
        };
        if r < 0 {
            if sent == 0 {
                return -1;
            }
            break;
        }
        m.msg_len = r as libc::c_uint;
        sent += 1;
    }
    sent
}

/// Interposed `send(2)`.
///
/// # Safety
/// As for `send(2)`.
#[no_mangle]
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, len: usize, flags: c_int) -> isize {
    // SAFETY: forwarded application arguments.
    let pass = || unsafe { real::send(fd, buf, len, flags) };
    match table::quick(fd) {
        Quick::Other => return pass(),
        Quick::Stream => {
            return hook(
                pass,
                || {
                    // SAFETY: forwarded application arguments, one flag added.
                    let go = |x| unsafe { real::send(fd, buf, len, flags | x) };
                    stream_end::send(fd, flags, go)
                },
                libc::EIO,
            );
        }
        Quick::Udp => {}
    }
    hook(
        pass,
        || match dgram::get(fd) {
            // SAFETY: one iovec over the application's buffer.
            Some(st) => unsafe { dgram::send(fd, &st, None, &dgram::iov1(buf, len), 1, flags) },
            None => pass(),
        },
        libc::EIO,
    )
}

/// Interposed `write(2)` (only carried datagram sockets are looked at).
///
/// # Safety
/// As for `write(2)`.
#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, len: usize) -> isize {
    // SAFETY: forwarded application arguments.
    let pass = || unsafe { real::write(fd, buf, len) };
    match table::quick(fd) {
        Quick::Other => return pass(),
        Quick::Stream => {
            return hook(
                pass,
                // SAFETY: write(2) on a socket is send(2) without flags.
                || stream_end::write(fd, |x| unsafe { real::send(fd, buf, len, x) }, pass),
                libc::EIO,
            );
        }
        Quick::Udp => {}
    }
    hook(
        pass,
        || match dgram::get(fd) {
            // SAFETY: as in send.
            Some(st) => unsafe { dgram::send(fd, &st, None, &dgram::iov1(buf, len), 1, 0) },
            None => pass(),
        },
        libc::EIO,
    )
}

/// Interposed `writev(2)`: as `write` — on a tunnel stream an error end
/// is reported as its errno (and `SIGPIPE` only for a plain `EPIPE`); a
/// carried datagram socket sends the buffers as one datagram to its peer.
///
/// # Safety
/// As for `writev(2)`.
#[no_mangle]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const libc::iovec, n: c_int) -> isize {
    // SAFETY: forwarded application arguments.
    let pass = || unsafe { real::writev(fd, iov, n) };
    let quick = table::quick(fd);
    if quick == Quick::Other {
        return pass();
    }
    let Some(count) = iov_count(iov, n) else {
        return pass();
    };
    if quick == Quick::Stream {
        return hook(
            pass,
            || {
                let sendmsg = |x| {
                    // SAFETY: a zeroed msghdr is valid; it points to the
                    // application's iovecs for the duration of the call.
                    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
                    m.msg_iov = iov as *mut libc::iovec;
                    m.msg_iovlen = count;
                    // SAFETY: writev(2) on a socket is sendmsg(2) without flags.
                    unsafe { real::sendmsg(fd, &m, x) }
                };
                stream_end::write(fd, sendmsg, pass)
            },
            libc::EIO,
        );
    }
    hook(
        pass,
        || match dgram::get(fd) {
            // SAFETY: the application's `n` iovecs.
            Some(st) => unsafe { dgram::send(fd, &st, None, iov, count, 0) },
            None => pass(),
        },
        libc::EIO,
    )
}

/// Interposed `sendto(2)` (see [`send_plan`]).
///
/// # Safety
/// As for `sendto(2)`.
#[no_mangle]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    len: usize,
    flags: c_int,
    a: *const sockaddr,
    alen: socklen_t,
) -> isize {
    if a.is_null() {
        match table::quick(fd) {
            // Fast path: no destination, nothing to decide.
            // SAFETY: forwarded application arguments.
            Quick::Other => return unsafe { real::sendto(fd, buf, len, flags, a, alen) },
            Quick::Stream => {
                return hook(
                    // SAFETY: forwarded application arguments.
                    || unsafe { real::sendto(fd, buf, len, flags, a, alen) },
                    || {
                        stream_end::send(fd, flags, |x| {
                            // SAFETY: as above, one flag added.
                            unsafe { real::sendto(fd, buf, len, flags | x, a, alen) }
                        })
                    },
                    libc::EIO,
                );
            }
            Quick::Udp => {}
        }
    }
    hook(
        // SAFETY: forwarded application arguments.
        || unsafe { real::sendto(fd, buf, len, flags, a, alen) },
        // SAFETY: as above.
        || unsafe { do_sendto(fd, buf, len, flags, a, alen) },
        libc::ENETUNREACH,
    )
}

/// Interposed `sendmsg(2)` (see [`send_plan`]).
///
/// # Safety
/// As for `sendmsg(2)`.
#[no_mangle]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const libc::msghdr, flags: c_int) -> isize {
    // SAFETY: a non-null msghdr is readable per the sendmsg contract.
    if !msg.is_null() && unsafe { (*msg).msg_name.is_null() } {
        match table::quick(fd) {
            // SAFETY: forwarded application arguments.
            Quick::Other => return unsafe { real::sendmsg(fd, msg, flags) },
            Quick::Stream => {
                return hook(
                    // SAFETY: forwarded application arguments.
                    || unsafe { real::sendmsg(fd, msg, flags) },
                    || {
                        // SAFETY: as above, one flag added.
                        let go = |x| unsafe { real::sendmsg(fd, msg, flags | x) };
                        stream_end::send(fd, flags, go)
                    },
                    libc::EIO,
                );
            }
            Quick::Udp => {}
        }
    }
    if msg.is_null() {
        // SAFETY: forwarded application arguments.
        return unsafe { real::sendmsg(fd, msg, flags) };
    }
    hook(
        // SAFETY: forwarded application arguments.
        || unsafe { real::sendmsg(fd, msg, flags) },
        // SAFETY: as above.
        || unsafe { do_sendmsg(fd, msg, flags) },
        libc::ENETUNREACH,
    )
}

/// Interposed `sendmmsg(2)` (see [`send_plan`]).
///
/// # Safety
/// As for `sendmmsg(2)`.
#[no_mangle]
pub unsafe extern "C" fn sendmmsg(
    fd: c_int,
    msgs: *mut libc::mmsghdr,
    vlen: libc::c_uint,
    flags: c_int,
) -> c_int {
    hook(
        // SAFETY: forwarded application arguments.
        || unsafe { real::sendmmsg(fd, msgs, vlen, flags) },
        // SAFETY: as above.
        || unsafe { do_sendmmsg(fd, msgs, vlen, flags) },
        libc::ENETUNREACH,
    )
}
