//! Per-fd state of the sockets the shim has taken over.
//!
//! A two-level table indexed by fd number (1024 chunks of 1024 slots, so any
//! fd below 2^20 — the kernel's default `nr_open` — including fds ≥ 1024).
//! Chunks are allocated on first use and never freed; lookups of untracked
//! fds touch only atomics. Each slot has a tiny spin lock around a `Copy`
//! value, held only to copy it in or out.
//!
//! A slot also records the (device, inode) of the open file it describes;
//! lookups re-check it with `fstat`, so a stale slot (the fd was closed
//! behind our back — `fclose`, `close_range`, a raw syscall — and its number
//! reused) is discarded instead of misdescribing the new file.

use libc::c_int;
use std::cell::UnsafeCell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

const CHUNK: usize = 1024;
const CHUNKS: usize = 1024;

/// Progress of an outgoing tunnel connection (the connect decision's own
/// type, shared with seccomp mode).
pub use control::connect::OutState;

/// How an established tunnel stream ended, as far as the shim has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StreamEnd {
    /// Not seen ending (or not yet asked).
    #[default]
    Open,
    /// It ended and the engine said: a FIN, an EOF is right.
    Clean,
    /// The tunnel connection failed with this errno (`ETIMEDOUT` after the
    /// retransmissions or keepalive probes, `ECONNRESET` for a reset).
    Error {
        /// The errno.
        errno: c_int,
        /// Whether a call returned it already (it is reported once, as a
        /// kernel socket's pending error is).
        reported: bool,
    },
}

/// How many epoll registrations of a not-yet-connected socket are carried
/// over to its data socket.
pub const MAX_EPOLL_REGS: usize = 4;

/// One epoll registration (`epoll_ctl(epfd, ADD/MOD, fd, {events, data})`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpollReg {
    /// The epoll instance.
    pub epfd: c_int,
    /// Requested events.
    pub events: u32,
    /// The application's cookie.
    pub data: u64,
}

/// What the shim knows about one fd.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A new AF_INET/AF_INET6 stream or datagram socket, not yet connected or bound
    /// through us: only its epoll registrations are remembered, so they can
    /// be moved to the data socket if it connects through the tunnel.
    Fresh {
        /// Registrations made so far.
        regs: [Option<EpollReg>; MAX_EPOLL_REGS],
    },
    /// An ICMP socket the kernel refused (`EACCES`/`EPERM`: no ping
    /// sockets for this group, no `CAP_NET_RAW`), stood in for by a kernel
    /// UDP socket of the same family (see [`crate::echo_standin`]): it
    /// becomes a carried echo socket ([`Kind::Udp`]) at its first send or
    /// `connect()` into the tunnel; anywhere else fails with `refused`.
    EchoStandIn {
        /// A ping socket or a raw ICMP socket.
        dkind: control::DatagramKind,
        /// The errno the kernel gave at `socket()`.
        refused: c_int,
        /// Registrations made so far (moved to the data socket).
        regs: [Option<EpollReg>; MAX_EPOLL_REGS],
    },
    /// An application TCP socket swapped for a data socket to the engine.
    Outbound {
        /// Engine flow id.
        flow: u64,
        /// Progress.
        state: OutState,
        /// The original kernel TCP socket, kept (CLOEXEC, at another fd) to
        /// answer and validate TCP/IP-level socket options.
        shadow: c_int,
        /// The application's address family (AF_INET or AF_INET6).
        family: c_int,
        /// The destination as the application gave it.
        peer: SocketAddr,
        /// Our tunnel address for this flow (normalised).
        local: SocketAddr,
        /// SO_SNDBUF the application asked for, applied once established.
        sndbuf: c_int,
        /// How the established stream ended (see [`crate::stream_end`]).
        end: StreamEnd,
        /// Whether a `connect()` has returned its outcome (0 or the error):
        /// the kernel's `SS_CONNECTED`/`SS_UNCONNECTED` against
        /// `SS_CONNECTING`. Until then a `connect()` after the handshake
        /// returns that outcome; after it, `EISCONN` (or a new attempt).
        connect_done: bool,
    },
    /// A stream socket whose wildcard/tunnel-address bind was redirected
    /// to loopback (normally a listener; see `listening`).
    Listener {
        /// The address the application asked for (port updated once known).
        requested: SocketAddr,
        /// The application's address family.
        family: c_int,
        /// Whether `listen()` was called (before that, a `connect()` to a
        /// destination outside the tunnel re-binds it as asked).
        listening: bool,
    },
    /// A datagram socket carried through the tunnel: the fd is now one end
    /// of a `SOCK_SEQPACKET` pair to the engine (see [`crate::dgram`]).
    Udp {
        /// Engine flow id.
        flow: u64,
        /// The original kernel UDP socket, kept (CLOEXEC) to answer
        /// IP-level socket options.
        shadow: c_int,
        /// The application's address family.
        family: c_int,
        /// Our tunnel address and port (normalised; may be a wildcard).
        local: SocketAddr,
        /// The default peer as the application named it, if connected.
        peer: Option<SocketAddr>,
        /// Where datagrams for `peer` really go (normalised; see
        /// [`crate::redirect`]).
        peer_eff: Option<SocketAddr>,
        /// The tunnel MTU.
        mtu: u16,
        /// UDP, or ICMP echo through a ping or raw socket.
        dkind: control::DatagramKind,
    },
    /// A connection accepted from a redirected listener, made by the engine
    /// on behalf of a tunnel peer.
    Accepted {
        /// The tunnel peer (normalised).
        peer: SocketAddr,
        /// Our tunnel address it connected to (normalised).
        local: SocketAddr,
        /// The application's address family.
        family: c_int,
    },
}

#[derive(Clone, Copy)]
struct Entry {
    kind: Kind,
    id: (u64, u64),
}

struct Slot {
    used: AtomicBool,
    lock: AtomicBool,
    entry: UnsafeCell<Option<Entry>>,
}

// SAFETY: `entry` is only accessed while `lock` is held.
unsafe impl Sync for Slot {}

impl Slot {
    const fn new() -> Self {
        Slot {
            used: AtomicBool::new(false),
            lock: AtomicBool::new(false),
            entry: UnsafeCell::new(None),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Option<Entry>) -> R) -> R {
        let mut spins = 0u32;
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spins += 1;
            if spins > 64 {
                // SAFETY: no arguments.
                unsafe { libc::sched_yield() };
            } else {
                std::hint::spin_loop();
            }
        }
        // SAFETY: the lock is held, so this is the only access.
        let r = f(unsafe { &mut *self.entry.get() });
        self.lock.store(false, Ordering::Release);
        r
    }
}

/// Set by the first [`set`]: until then no fd can be ours.
static EVER_USED: AtomicBool = AtomicBool::new(false);

/// Whether any fd has ever been tracked. Until then the descriptor calls
/// a program makes through `syscall(2)` need no hook: the shim has nothing
/// to keep in step, and must not run (allocate, read its config) inside a
/// malloc's own start-up — jemalloc opens, reads and closes a `/proc`
/// file with `syscall()` while holding its init lock.
pub fn ever_used() -> bool {
    EVER_USED.load(Ordering::Acquire)
}

static TOP: [AtomicPtr<Slot>; CHUNKS] = [const { AtomicPtr::new(std::ptr::null_mut()) }; CHUNKS];

fn slot(fd: c_int, create: bool) -> Option<&'static Slot> {
    let fd = usize::try_from(fd).ok()?;
    let (hi, lo) = (fd / CHUNK, fd % CHUNK);
    let top = TOP.get(hi)?;
    let mut p = top.load(Ordering::Acquire);
    if p.is_null() {
        if !create {
            return None;
        }
        let chunk: Box<[Slot]> = (0..CHUNK).map(|_| Slot::new()).collect();
        let fresh = Box::into_raw(chunk) as *mut Slot;
        match top.compare_exchange(
            std::ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => p = fresh,
            Err(existing) => {
                // SAFETY: `fresh` came from Box::into_raw of a CHUNK-long slice just above
                // and was never shared.
                drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(fresh, CHUNK)) });
                p = existing;
            }
        }
    }
    // SAFETY: every non-null TOP entry points to a leaked CHUNK-long slice; lo < CHUNK.
    Some(unsafe { &*p.add(lo) })
}

/// The state of `fd`, if the shim tracks it and it still is the same file.
pub fn get(fd: c_int) -> Option<Kind> {
    let s = slot(fd, false)?;
    if !s.used.load(Ordering::Acquire) {
        return None;
    }
    let entry = s.with(|e| *e)?;
    if crate::sys::file_id(fd) == Some(entry.id) {
        Some(entry.kind)
    } else {
        // Stale: the fd was closed without us seeing it and its number reused.
        if let Some(stale) = take(fd) {
            release(&stale);
        }
        None
    }
}

/// Drops the entry of `fd` if it no longer describes the open file at that
/// number (see [`get`]); a current entry is kept.
pub fn forget_stale(fd: c_int) {
    let _ = get(fd);
}

/// What a tracked fd is, for the read/write fast path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quick {
    /// Not ours (or not a kind the data calls care about).
    Other,
    /// A carried datagram socket.
    Udp,
    /// A tunnel stream (established, or not yet known to be).
    Stream,
}

/// [`Quick`] for `fd`, without checking that the file is still the same
/// (cheap; callers then use [`get`]).
pub fn quick(fd: c_int) -> Quick {
    let Some(s) = slot(fd, false) else {
        return Quick::Other;
    };
    if !s.used.load(Ordering::Acquire) {
        return Quick::Other;
    }
    s.with(|e| match e {
        Some(Entry {
            kind: Kind::Udp { .. },
            ..
        }) => Quick::Udp,
        Some(Entry {
            kind:
                Kind::Outbound {
                    state: OutState::Established | OutState::Connecting,
                    ..
                },
            ..
        }) => Quick::Stream,
        _ => Quick::Other,
    })
}

/// Whether `fd` is tracked as a datagram socket of ours, without checking
/// that the file is still the same (cheap: for the read/write fast path;
/// callers then use [`get`]).
pub fn maybe_udp(fd: c_int) -> bool {
    let Some(s) = slot(fd, false) else {
        return false;
    };
    if !s.used.load(Ordering::Acquire) {
        return false;
    }
    s.with(|e| {
        matches!(
            e,
            Some(Entry {
                kind: Kind::Udp { .. },
                ..
            })
        )
    })
}

/// Starts or replaces tracking of `fd`; returns what it replaces.
pub fn set(fd: c_int, kind: Kind) -> Option<Kind> {
    let id = crate::sys::file_id(fd)?;
    let s = slot(fd, true)?;
    EVER_USED.store(true, Ordering::Release);
    let old = s.with(|e| e.replace(Entry { kind, id }));
    s.used.store(true, Ordering::Release);
    old.map(|e| e.kind)
}

/// Updates the state of `fd` in place, if tracked.
pub fn update(fd: c_int, f: impl FnOnce(&mut Kind)) {
    if let Some(s) = slot(fd, false) {
        s.with(|e| {
            if let Some(entry) = e {
                f(&mut entry.kind)
            }
        });
    }
}

/// Stops tracking `fd`; returns what it was.
pub fn take(fd: c_int) -> Option<Kind> {
    let s = slot(fd, false)?;
    if !s.used.load(Ordering::Acquire) {
        return None;
    }
    let old = s.with(|e| e.take());
    s.used.store(false, Ordering::Release);
    old.map(|e| e.kind)
}

/// Stops tracking every fd in `lo..=hi`; returns what they were.
/// Walks only the chunks that exist.
pub fn take_range(lo: c_int, hi: c_int) -> Vec<(c_int, Kind)> {
    let mut out = Vec::new();
    let (Ok(lo), Ok(hi)) = (usize::try_from(lo), usize::try_from(hi)) else {
        return out;
    };
    if lo > hi {
        return out;
    }
    let last_chunk = (hi / CHUNK).min(CHUNKS - 1);
    for (c, top) in TOP.iter().enumerate().take(last_chunk + 1).skip(lo / CHUNK) {
        if top.load(Ordering::Acquire).is_null() {
            continue;
        }
        let from = (c * CHUNK).max(lo);
        let to = ((c + 1) * CHUNK - 1).min(hi);
        for fd in from..=to {
            let Ok(fd) = c_int::try_from(fd) else { break };
            if let Some(kind) = take(fd) {
                out.push((fd, kind));
            }
        }
    }
    out
}

/// Frees what a state owns (the shadow fd of an outbound socket).
pub fn release(kind: &Kind) {
    if let Kind::Outbound { shadow, .. } | Kind::Udp { shadow, .. } = kind {
        crate::sys::close(*shadow);
    }
}

/// A copy of `kind` for a duplicated fd (its own shadow fd).
pub fn duplicate(kind: Kind) -> Option<Kind> {
    match kind {
        Kind::Outbound {
            shadow,
            flow,
            state,
            family,
            peer,
            local,
            sndbuf,
            end,
            connect_done,
        } => {
            let shadow = crate::sys::fcntl(shadow, libc::F_DUPFD_CLOEXEC, 0).ok()?;
            Some(Kind::Outbound {
                shadow,
                flow,
                state,
                family,
                peer,
                local,
                sndbuf,
                end,
                connect_done,
            })
        }
        Kind::Udp {
            flow,
            shadow,
            family,
            local,
            peer,
            peer_eff,
            mtu,
            dkind,
        } => {
            let shadow = crate::sys::fcntl(shadow, libc::F_DUPFD_CLOEXEC, 0).ok()?;
            Some(Kind::Udp {
                flow,
                shadow,
                family,
                local,
                peer,
                peer_eff,
                mtu,
                dkind,
            })
        }
        // Registrations belong to the (file, fd) pair: the new fd has none.
        Kind::Fresh { .. } => Some(Kind::Fresh {
            regs: [None; MAX_EPOLL_REGS],
        }),
        Kind::EchoStandIn { dkind, refused, .. } => Some(Kind::EchoStandIn {
            dkind,
            refused,
            regs: [None; MAX_EPOLL_REGS],
        }),
        other => Some(other),
    }
}
