//! Whether the engine routes datagrams to a destination into the tunnel,
//! cached per destination for a few seconds in a small fixed table, so a
//! busy UDP program costs one engine round trip per destination, not per
//! datagram.

use crate::engine;
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
