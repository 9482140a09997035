//! The send-side decision for sockets the shim may carry: a datagram (UDP,
//! ping socket, raw ICMP socket) to a destination the engine routes into
//! the tunnel opens a datagram flow ([`dgram`]); other routed datagrams
//! (other raw sockets) fail with `ENETUNREACH`, so nothing routed leaks.
//! An echo stand-in ([`crate::echo_standin`]) opens its flow at a send to a
//! tunnel destination and refuses any other with the kernel's `socket()`
//! errno. The routing decision comes from [`crate::route_cache`].
//!
//! Also here: `sendto`/`sendmsg` with an address on a tunnel TCP socket (the
//! kernel ignores the address on a connected TCP socket; our AF_UNIX data
//! socket would refuse it, so it is dropped), and `MSG_FASTOPEN` on a new
//! TCP socket, which is an implicit `connect()` and goes through ours.

use crate::addr;
use crate::dgram;
use crate::redirect;
use crate::route_cache::routed;
use crate::sys;
use crate::table::{self, EpollReg, Kind, MAX_EPOLL_REGS};
use control::Proto;

/// What to do with a send on `fd`.
pub enum SendPlan {
    /// Pass the call through unchanged.
    Pass,
    /// Pass it through without the address (tunnel TCP socket).
    DropAddress,
    /// `MSG_FASTOPEN` on a new TCP socket: connect through the shim first.
    ConnectFirst,
    /// Refuse with this errno: `ENETUNREACH` for a routed destination that
    /// is not a datagram socket we can carry (e.g. raw); the kernel's
    /// `socket()` errno for an echo stand-in sent outside the tunnel.
    Refuse(libc::c_int),
    /// The socket is carried through the tunnel already (see [`dgram`]).
    Carried(dgram::Udp),
    /// A datagram socket's first send into the tunnel: open a flow (moving
    /// these epoll registrations), then send through it.
    Open([Option<EpollReg>; MAX_EPOLL_REGS]),
}

/// Decides for a send on `fd` to `(a, len)` (null: no address) with `flags`.
///
/// # Safety
/// `a` must be null or point to `len` readable bytes.
pub unsafe fn plan(
    fd: libc::c_int,
    a: *const libc::sockaddr,
    len: libc::socklen_t,
    flags: libc::c_int,
) -> SendPlan {
    let mut regs = [None; MAX_EPOLL_REGS];
    match table::get(fd) {
        Some(Kind::Udp { .. }) => {
            return dgram::get(fd).map_or(SendPlan::Pass, SendPlan::Carried);
        }
        Some(Kind::Outbound { .. }) if !a.is_null() => return SendPlan::DropAddress,
        Some(Kind::Fresh { .. }) if flags & libc::MSG_FASTOPEN != 0 => {
            return SendPlan::ConnectFirst
        }
        Some(Kind::Fresh { regs: r }) => regs = r,
        Some(Kind::EchoStandIn { refused, regs, .. }) => {
            // SAFETY: per the caller.
            return match unsafe { addr::read(a, len) } {
                // Unconnected without an address: the kernel's EDESTADDRREQ.
                None => SendPlan::Pass,
                Some(dst) => {
                    let eff = control::normalize(dst);
                    if !addr::is_local(&eff) && routed(eff) {
                        SendPlan::Open(regs)
                    } else {
                        // Also a local error in its queue (with IP_RECVERR),
                        // so ping says why: "local error: Permission denied".
                        let family = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN)
                            .unwrap_or(libc::AF_INET);
                        crate::errqueue::push_local(fd, fd, family, refused, 0, dst);
                        SendPlan::Refuse(refused)
                    }
                }
            };
        }
        Some(_) => return SendPlan::Pass,
        None => {}
    }
    // SAFETY: per the caller.
    let Some(dst) = (unsafe { addr::read(a, len) }) else {
        return SendPlan::Pass;
    };
    let eff = redirect::outbound(control::normalize(dst), Proto::Udp);
    if addr::is_local(&eff) {
        return SendPlan::Pass;
    }
    // Only datagram/raw sockets reach here in practice; a stream socket
    // that the shim did not take over ignores (or refuses) the address.
    match sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE) {
        Ok(libc::SOCK_STREAM) | Err(_) => SendPlan::Pass,
        Ok(ty) => {
            if !routed(eff) {
                SendPlan::Pass
            } else if ty == libc::SOCK_DGRAM
                || dgram::kind_of(fd) == Some(control::DatagramKind::RawIcmp)
            {
                // UDP, ping sockets, and raw ICMP sockets (ping as root).
                SendPlan::Open(regs)
            } else {
                let proto = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL);
                crate::uncarried::report(eff, proto.map_or(255, |p| p as u8));
                SendPlan::Refuse(libc::ENETUNREACH)
            }
        }
    }
}
