//! What the device and its peers share: the [`PeerId`] handle and the
//! context ([`Ctx`]) every peer call borrows from the device — our static
//! identity, the RNG, the receiver index table and the wall clock for
//! handshake timestamps. Below both `device` and `peer`, so a peer never
//! reaches back into the device that owns it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant, SystemTime};

use rand_core::CryptoRngCore;
use tai64::Tai64N;

use crate::handshake::{tai64n_whitened, LocalStatic, TIMESTAMP_LEN};
use crate::timers::{Timing, REKEY_TIMEOUT_JITTER_MAX};

/// A handle to a peer of a [`Device`](crate::Device). Handles are never
/// reused by a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u32);

/// Fibonacci hashing for receiver indices (they are random already).
#[derive(Default)]
pub(crate) struct IndexHasher(u64);

impl Hasher for IndexHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.0 = u64::from(v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(crate) type IndexMap = HashMap<u32, PeerId, BuildHasherDefault<IndexHasher>>;

/// What every peer shares: our identity, the RNG, the index table and the
/// wall clock for timestamps.
pub(crate) struct Ctx {
    pub(crate) local: LocalStatic,
    pub(crate) rng: Box<dyn CryptoRngCore + Send>,
    pub(crate) indices: IndexMap,
    pub(crate) wall_at: Instant,
    pub(crate) wall: SystemTime,
    pub(crate) last_timestamp: Option<Tai64N>,
    pub(crate) timing: Timing,
}

impl Ctx {
    /// A fresh random index that no live handshake or session uses.
    pub(crate) fn allocate_index(&mut self, peer: PeerId) -> u32 {
        loop {
            let i = self.rng.next_u32();
            if let std::collections::hash_map::Entry::Vacant(e) = self.indices.entry(i) {
                e.insert(peer);
                return i;
            }
        }
    }

    pub(crate) fn free_index(&mut self, index: u32) {
        self.indices.remove(&index);
    }

    /// Uniform jitter in 0..=333 ms for `REKEY_TIMEOUT`.
    pub(crate) fn jitter(&mut self) -> Duration {
        let max = REKEY_TIMEOUT_JITTER_MAX.as_millis() as u32 + 1;
        Duration::from_millis(u64::from(self.rng.next_u32() % max))
    }

    /// A TAI64N timestamp formed as wireguard-go forms it from the wall
    /// clock, made strictly increasing within this process.
    pub(crate) fn timestamp(&mut self, now: Instant) -> [u8; TIMESTAMP_LEN] {
        let wall = match now.checked_duration_since(self.wall_at) {
            Some(d) => self.wall.checked_add(d),
            None => self.wall.checked_sub(self.wall_at.duration_since(now)),
        }
        .unwrap_or(self.wall);
        let since_epoch = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let mut t = tai64n_whitened(since_epoch);
        if let Some(last) = self.last_timestamp {
            if t <= last {
                t = last + Duration::from_nanos(1);
            }
        }
        self.last_timestamp = Some(t);
        t.to_bytes()
    }
}
