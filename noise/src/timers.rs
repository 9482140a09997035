//! The protocol constants and the per-peer timer table.
//!
//! Read first: WireGuard paper §6 (timers and stateless UX), §6.1–§6.5, and
//! the timer events of wireguard-go's `timers.go`, which this follows:
//! each `Timer` is one deadline in an enum-indexed table; `peer.rs` arms and
//! stops them on the events named in §6, and `poll_timeout` is the minimum.

use std::time::{Duration, Instant};

/// Start a new handshake after this many messages on one session (2^60).
pub const REKEY_AFTER_MESSAGES: u64 = 1 << 60;
/// Never use a session for more than this many messages (2^64 − 2^13 − 1).
pub const REJECT_AFTER_MESSAGES: u64 = u64::MAX - (1 << 13);
/// The initiator starts a new handshake when its session is this old.
pub const REKEY_AFTER_TIME: Duration = Duration::from_secs(120);
/// A session is never used after this age.
pub const REJECT_AFTER_TIME: Duration = Duration::from_secs(180);
/// Give up a handshake after retrying for this long.
pub const REKEY_ATTEMPT_TIME: Duration = Duration::from_secs(90);
/// Retransmit an unanswered initiation after this (plus jitter).
pub const REKEY_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest random jitter added to `REKEY_TIMEOUT` (exclusive bound 334 ms).
pub const REKEY_TIMEOUT_JITTER_MAX: Duration = Duration::from_millis(333);
/// Send a keepalive when we received data but sent nothing for this long.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Retransmissions of one handshake before giving up (90 s / 5 s = 18).
pub const MAX_TIMER_HANDSHAKES: u32 =
    (REKEY_ATTEMPT_TIME.as_secs() / REKEY_TIMEOUT.as_secs()) as u32;
/// Zero all key material after this long without a new session.
pub const ZERO_KEY_MATERIAL_AFTER: Duration = Duration::from_secs(3 * 180);
/// Minimum spacing of accepted initiations from one peer (wireguard-go: 1/50 s).
pub const INITIATION_MIN_INTERVAL: Duration = Duration::from_millis(20);

/// The protocol times a [`crate::Device`] may be told to use instead of the
/// constants above. `Timing::default()` is the paper's values; anything
/// else is for tests that need rekeying to happen within seconds (the
/// launcher only sets it from a hidden test flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The initiator starts a new handshake when its session is this old
    /// (default [`REKEY_AFTER_TIME`]). New initiations stay spaced by at
    /// least [`REKEY_TIMEOUT`], so values below it rekey every `REKEY_TIMEOUT`.
    pub rekey_after_time: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            rekey_after_time: REKEY_AFTER_TIME,
        }
    }
}

/// The per-peer timers of §6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Resend the initiation if no response came (`REKEY_TIMEOUT` + jitter).
    RetransmitHandshake = 0,
    /// We received data and sent nothing back for `KEEPALIVE_TIMEOUT`.
    SendKeepalive = 1,
    /// We sent data and heard nothing for `KEEPALIVE_TIMEOUT + REKEY_TIMEOUT`.
    NewHandshake = 2,
    /// No new session for `3 × REJECT_AFTER_TIME`: erase all keys.
    ZeroKeyMaterial = 3,
    /// The configured persistent keepalive interval elapsed.
    PersistentKeepalive = 4,
}

impl Timer {
    /// All timers, in table order.
    pub const ALL: [Timer; 5] = [
        Timer::RetransmitHandshake,
        Timer::SendKeepalive,
        Timer::NewHandshake,
        Timer::ZeroKeyMaterial,
        Timer::PersistentKeepalive,
    ];
}

/// One optional deadline per [`Timer`].
#[derive(Debug, Clone, Default)]
pub(crate) struct TimerTable([Option<Instant>; 5]);

impl TimerTable {
    pub(crate) fn set(&mut self, t: Timer, at: Instant) {
        self.0[t as usize] = Some(at);
    }
    pub(crate) fn stop(&mut self, t: Timer) {
        self.0[t as usize] = None;
    }
    pub(crate) fn get(&self, t: Timer) -> Option<Instant> {
        self.0[t as usize]
    }
    pub(crate) fn is_set(&self, t: Timer) -> bool {
        self.0[t as usize].is_some()
    }
    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
    /// Stops and returns the first timer due at `now`, if any.
    pub(crate) fn take_expired(&mut self, now: Instant) -> Option<Timer> {
        for t in Timer::ALL {
            if matches!(self.0[t as usize], Some(at) if at <= now) {
                self.0[t as usize] = None;
                return Some(t);
            }
        }
        None
    }
}
