//! The connection's timers: one deadline per [`Timer`] in a small table
//! (quinn-style), whose earliest entry is the connection's `poll_at`.

use std::time::Instant;

/// Timers, indexed (quinn-style table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Retransmission, or the persist timer when the peer's window is zero.
    Rto = 0,
    /// Delayed ACK.
    DelayedAck = 1,
    /// Keepalive idle/probe.
    Keepalive = 2,
    /// TIME-WAIT or FIN-WAIT-2 expiry.
    Linger = 3,
    /// RACK reordering timer: a segment may be declared lost then
    /// (RFC 8985 §6.2 step 6).
    Reorder = 4,
    /// Tail loss probe (RFC 8985 §7.2).
    Probe = 5,
    /// A ring emptied with storage allocated: free what is still empty then.
    Shrink = 6,
    /// Pacing: the next segment may leave then.
    Pace = 7,
}

const TIMER_COUNT: usize = 8;

#[derive(Debug, Clone, Default)]
pub(crate) struct TimerTable([Option<Instant>; TIMER_COUNT]);

impl TimerTable {
    pub(crate) fn set(&mut self, t: Timer, at: Instant) {
        self.0[t as usize] = Some(at);
    }
    pub(crate) fn stop(&mut self, t: Timer) {
        self.0[t as usize] = None;
    }
    pub(crate) fn is_set(&self, t: Timer) -> bool {
        self.0[t as usize].is_some()
    }
    pub(crate) fn get(&self, t: Timer) -> Option<Instant> {
        self.0[t as usize]
    }
    pub(crate) fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
    /// Takes the timer if it expired at `now`.
    pub(crate) fn expired(&mut self, t: Timer, now: Instant) -> bool {
        match self.0[t as usize] {
            Some(at) if at <= now => {
                self.0[t as usize] = None;
                true
            }
            _ => false,
        }
    }
}
