//! The send-side decision for sockets the shim may carry: a datagram to a
//! destination the engine routes into the tunnel opens a datagram flow
//! ([`dgram`]); other routed datagrams (raw sockets) fail with
//! `ENETUNREACH`, so nothing routed leaks. Decisions are cached per
//! destination for a few seconds in a small fixed table, so a busy UDP
//! program costs one engine round trip per destination, not per datagram.
//!
//! Also here: `sendto`/`sendmsg` with an address on a tunnel TCP socket (the
//! kernel ignores the address on a connected TCP socket; our AF_UNIX data
//! socket would refuse it, so it is dropped), and `MSG_FASTOPEN` on a new
//! TCP socket, which is an implicit `connect()` and goes through ours.

use crate::addr;
use crate::dgram;
use crate::engine;
use crate::redirect;
use crate::sys;
use crate::table::{self, EpollReg, Kind, MAX_EPOLL_REGS};
use control::{Proto, Reply, Request, RouteDecision};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

const CACHE: usize = 64;
const TTL_MS: u64 = 5_000;

#[derive(Clone, Copy)]
struct Entry {
    dst: SocketAddr,
    routed: bool,
    expires_ms: u64,
}

struct Cache {
    lock: AtomicBool,
    entries: std::cell::UnsafeCell<[Option<Entry>; CACHE]>,
}

// SAFETY: `entries` is only accessed while `lock` is held.
unsafe impl Sync for Cache {}

static ROUTES: Cache = Cache {
    lock: AtomicBool::new(false),
    entries: std::cell::UnsafeCell::new([None; CACHE]),
};

impl Cache {
    fn with<R>(&self, f: impl FnOnce(&mut [Option<Entry>; CACHE]) -> R) -> R {
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        // SAFETY: the lock is held.
        let r = f(unsafe { &mut *self.entries.get() });
        self.lock.store(false, Ordering::Release);
        r
    }
}

fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is valid for writes.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
}

fn slot_of(dst: &SocketAddr) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    };
    match dst {
        SocketAddr::V4(v4) => v4.ip().octets().iter().for_each(|b| eat(*b)),
        SocketAddr::V6(v6) => v6.ip().octets().iter().for_each(|b| eat(*b)),
    }
    dst.port().to_be_bytes().iter().for_each(|b| eat(*b));
    (h % CACHE as u64) as usize
}

/// Whether the engine routes datagrams to `dst` (normalised, non-local)
/// into the tunnel (or cannot say: fail closed).
pub(crate) fn routed(dst: SocketAddr) -> bool {
    let now = now_ms();
    let i = slot_of(&dst);
    if let Some(hit) = ROUTES.with(|e| e[i].filter(|x| x.dst == dst && x.expires_ms > now)) {
        return hit.routed;
    }
    let routed = !matches!(
        engine::query(&Request::Route {
            dst,
            proto: Proto::Udp
        }),
        Ok(Reply::Route(RouteDecision::Direct))
    );
    ROUTES.with(|e| {
        e[i] = Some(Entry {
            dst,
            routed,
            expires_ms: now + TTL_MS,
        })
    });
    routed
}

/// What to do with a send on `fd`.
pub enum SendPlan {
    /// Pass the call through unchanged.
    Pass,
    /// Pass it through without the address (tunnel TCP socket).
    DropAddress,
    /// `MSG_FASTOPEN` on a new TCP socket: connect through the shim first.
    ConnectFirst,
    /// Refuse with `ENETUNREACH` (routed, but not a datagram socket we can
    /// carry, e.g. raw).
    Refuse,
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
            } else if ty == libc::SOCK_DGRAM {
                SendPlan::Open(regs)
            } else {
                SendPlan::Refuse
            }
        }
    }
}
