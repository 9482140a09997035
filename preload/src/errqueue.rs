//! The socket error queue (`IP_RECVERR`/`IPV6_RECVERR`, read with
//! `MSG_ERRQUEUE`) of carried datagram sockets, for the one error the shim
//! itself raises: a send larger than the tunnel MTU on a socket that
//! forbade fragmentation fails with `EMSGSIZE` and, when the program asked
//! for `IP_RECVERR`, leaves a local error with the MTU in the queue, as the
//! kernel does (`ping -M do` prints `local error: message too long,
//! mtu=1420` from it). One pending error per socket; ICMP errors from the
//! far side are not queued here (see `dgram`).

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
    if !m.msg_name.is_null() {
        let shown = crate::addr::in_family(e.dst, family);
        // SAFETY: the application's name buffer and length.
        let _ = unsafe {
            crate::addr::write_out(
                shown,
                m.msg_name as *mut sockaddr,
                &mut m.msg_namelen as *mut socklen_t,
            )
        };
    }
    let ee = libc::sock_extended_err {
        ee_errno: e.errno as u32,
        ee_origin: libc::SO_EE_ORIGIN_LOCAL,
        ee_type: 0,
        ee_code: 0,
        ee_pad: 0,
        ee_info: e.mtu,
        ee_data: 0,
    };
    // The offender address follows; for a local error its family is AF_UNSPEC.
    let mut data = [0u8; std::mem::size_of::<libc::sock_extended_err>() + 16];
    // SAFETY: plain old data copied into a buffer of its size.
    unsafe {
        std::ptr::copy_nonoverlapping(
            &ee as *const libc::sock_extended_err as *const u8,
            data.as_mut_ptr(),
            std::mem::size_of::<libc::sock_extended_err>(),
        )
    };
    let (level, ty) = if family == libc::AF_INET6 {
        (libc::IPPROTO_IPV6, libc::IPV6_RECVERR)
    } else {
        (libc::IPPROTO_IP, libc::IP_RECVERR)
    };
    // SAFETY: per the caller.
    unsafe { crate::cmsg::put_one(m, room, level, ty, &data) };
    m.msg_flags |= libc::MSG_ERRQUEUE;
    Some(0)
}
