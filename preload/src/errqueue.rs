//! The socket error queue (`IP_RECVERR`/`IPV6_RECVERR`, read with
//! `MSG_ERRQUEUE`) of carried datagram sockets, for the one error the shim
//! itself raises: a send larger than the tunnel MTU on a socket that
//! forbade fragmentation fails with `EMSGSIZE` and, when the program asked
//! for `IP_RECVERR`, leaves a local error with the MTU in the queue, as the
//! kernel does (`ping -M do` prints `local error: message too long,
//! mtu=1420` from it). One pending error per socket. ICMP errors from the
//! far side come in-band on the flow (see `dgram`); [`write`] shows one
//! as the kernel's queue would ([`remote`]: `SO_EE_ORIGIN_ICMP`, the type
//! and code of the errno, the peer as offender), which UDP `traceroute`
//! reads as the last hop's port unreachable.

use crate::sys;
use libc::{c_int, sockaddr, socklen_t};
use std::net::SocketAddr;
use std::sync::Mutex;

/// A queued local error.
#[derive(Clone, Copy)]
struct LocalError {
    fd: c_int,
    errno: c_int,
    mtu: u32,
    dst: SocketAddr,
}

/// Pending errors, by fd (rare: only failed sends put one here). Only
/// ever `try_lock`ed: a lock held by a thread that a `fork` left behind
/// must not hang the child (it then loses the queued error, no more).
static QUEUE: Mutex<Vec<LocalError>> = Mutex::new(Vec::new());

/// Queues a local error for `fd` (its program socket `shadow` decides
/// whether it asked for one) about a send to `dst`.
pub fn push_local(
    fd: c_int,
    shadow: c_int,
    family: c_int,
    errno: c_int,
    mtu: u16,
    dst: SocketAddr,
) {
    let asked = if family == libc::AF_INET6 {
        sys::getsockopt_int(shadow, libc::IPPROTO_IPV6, libc::IPV6_RECVERR)
    } else {
        sys::getsockopt_int(shadow, libc::IPPROTO_IP, libc::IP_RECVERR)
    };
    if asked.unwrap_or(0) == 0 {
        return;
    }
    if let Ok(mut q) = QUEUE.try_lock() {
        q.retain(|e| e.fd != fd);
        q.push(LocalError {
            fd,
            errno,
            mtu: u32::from(mtu),
            dst,
        });
    }
}

/// Forgets what is queued for `fd` (a new socket at that number).
pub fn clear(fd: c_int) {
    if let Ok(mut q) = QUEUE.try_lock() {
        if !q.is_empty() {
            q.retain(|e| e.fd != fd);
        }
    }
}

/// A `recvmsg(…, MSG_ERRQUEUE)` on a carried socket: writes the queued
/// error into `m` (no data, the destination as the name, one
/// `IP_RECVERR`/`IPV6_RECVERR` control message) and returns 0, or `None`
/// when nothing is queued.
///
/// # Safety
/// `m` must be the application's valid msghdr whose control buffer held
/// `room` bytes.
pub unsafe fn take(fd: c_int, family: c_int, m: &mut libc::msghdr, room: usize) -> Option<isize> {
    let e = {
        let mut q = QUEUE.try_lock().ok()?;
        let i = q.iter().position(|e| e.fd == fd)?;
        q.swap_remove(i)
    };
    let ee = libc::sock_extended_err {
        ee_errno: e.errno as u32,
        ee_origin: libc::SO_EE_ORIGIN_LOCAL,
        ee_type: 0,
        ee_code: 0,
        ee_pad: 0,
        ee_info: e.mtu,
        ee_data: 0,
    };
    // SAFETY: per the caller.
    unsafe { write(family, m, room, e.dst, ee, None) };
    Some(0)
}

/// The extended error of an ICMP error from the far side that a carried
/// socket's flow reported as `errno` (the engine tells the errno only:
/// the ICMP type and code are the ones Linux maps to it).
pub fn remote(errno: c_int, v4: bool) -> libc::sock_extended_err {
    let (ty, code) = match (v4, errno) {
        (true, libc::ECONNREFUSED) => (3, 3), // port unreachable
        (true, libc::ENETUNREACH) => (3, 0),
        (true, libc::EMSGSIZE) => (3, 4),
        (true, libc::EACCES) => (3, 13),
        (true, libc::EPROTO) => (3, 2),
        (true, _) => (3, 1), // host unreachable
        (false, libc::ECONNREFUSED) => (1, 4),
        (false, libc::ENETUNREACH) => (1, 0),
        (false, libc::EMSGSIZE) => (2, 0),
        (false, libc::EACCES) => (1, 1),
        (false, _) => (1, 3),
    };
    libc::sock_extended_err {
        ee_errno: errno as u32,
        ee_origin: if v4 {
            libc::SO_EE_ORIGIN_ICMP
        } else {
            libc::SO_EE_ORIGIN_ICMP6
        },
        ee_type: ty,
        ee_code: code,
        ee_pad: 0,
        ee_info: 0,
        ee_data: 0,
    }
}

/// Writes one queued error into `m` as `recvmsg(…, MSG_ERRQUEUE)` does: no
/// data, `dst` (the destination of the failed datagram) as the name, one
/// `IP_RECVERR`/`IPV6_RECVERR` control message holding `ee` and the
/// offender (`None`: a local error, `AF_UNSPEC`).
///
/// # Safety
/// `m` must be the application's valid msghdr whose control buffer held
/// `room` bytes.
pub unsafe fn write(
    family: c_int,
    m: &mut libc::msghdr,
    room: usize,
    dst: SocketAddr,
    ee: libc::sock_extended_err,
    offender: Option<SocketAddr>,
) {
    if !m.msg_name.is_null() {
        let shown = crate::addr::in_family(dst, family);
        // SAFETY: the application's name buffer and length.
        let _ = unsafe {
            crate::addr::write_out(
                shown,
                m.msg_name as *mut sockaddr,
                &mut m.msg_namelen as *mut socklen_t,
            )
        };
    }
    const EE: usize = std::mem::size_of::<libc::sock_extended_err>();
    // The offender address follows (a sockaddr_in or sockaddr_in6).
    let mut data = [0u8; EE + std::mem::size_of::<libc::sockaddr_in6>()];
    // SAFETY: plain old data copied into a buffer of its size.
    unsafe {
        std::ptr::copy_nonoverlapping(
            &ee as *const libc::sock_extended_err as *const u8,
            data.as_mut_ptr(),
            EE,
        )
    };
    let mut used = EE + 16;
    if let Some(o) = offender {
        // SAFETY: plain old data; all-zero is valid.
        let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut sl = std::mem::size_of::<libc::sockaddr_storage>() as socklen_t;
        let o = crate::addr::in_family(std::net::SocketAddr::new(o.ip(), 0), family);
        // SAFETY: `ss` is a sockaddr_storage and `sl` its size.
        if unsafe { crate::addr::write_out(o, &mut ss as *mut _ as *mut sockaddr, &mut sl) }.is_ok()
        {
            let n = (sl as usize).min(data.len() - EE);
            // SAFETY: `n` bytes of `ss` into the room after the error.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    &ss as *const _ as *const u8,
                    data.as_mut_ptr().add(EE),
                    n,
                )
            };
            used = EE + n;
        }
    }
    let (level, ty) = if family == libc::AF_INET6 {
        (libc::IPPROTO_IPV6, libc::IPV6_RECVERR)
    } else {
        (libc::IPPROTO_IP, libc::IP_RECVERR)
    };
    // SAFETY: per the caller.
    unsafe { crate::cmsg::put_one(m, room, level, ty, &data[..used]) };
    m.msg_flags |= libc::MSG_ERRQUEUE;
}
