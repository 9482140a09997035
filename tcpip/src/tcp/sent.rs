//! The send log: one record per transmitted segment between SND.UNA and
//! SND.MAX with its last transmission time and its SACK / lost /
//! retransmitted state — the per-segment scoreboard RACK needs.
//!
//! Read first: RFC 8985 §5.2 (per-segment variables: xmit_ts, end_seq,
//! retransmitted, lost, SACKed), §6.2 (RACK_detect_loss), §6.3 (RTO),
//! RFC 6675 §4 ("pipe": what the network still holds).
//!
//! Storage is a `VecDeque` allocated on first use: 16 records, then the
//! whole `limit` once a flight needs more, so an idle connection holds
//! nothing and a bulk sender allocates twice; records past `limit` are
//! merged into the newest one.

use super::rack::Rack;
use super::rate::{RateState, TxSnap};
use super::seq::Seq;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Record state bits.
mod flag {
    /// Selectively acknowledged.
    pub const SACKED: u8 = 1;
    /// Marked lost and not retransmitted since.
    pub const LOST: u8 = 2;
    /// Retransmitted at least once (`xmit` is the latest transmission).
    pub const RETRANS: u8 = 4;
    /// Carries our FIN (its last sequence number).
    pub const FIN: u8 = 8;
}

/// One transmitted segment `[start, end)` (`end` counts a FIN).
#[derive(Debug, Clone, Copy)]
struct Sent {
    start: Seq,
    end: Seq,
    xmit: Instant,
    flags: u8,
    /// The delivery state when it (last) left, for rate samples.
    snap: TxSnap,
}

impl Sent {
    fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
    fn len(&self) -> usize {
        self.end - self.start
    }
}

/// Records allocated for a connection's first flights.
const SMALL: usize = 16;

/// What the scan for losses found (RFC 8985 §6.2 step 5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LossScan {
    /// Bytes newly marked lost.
    pub newly_lost: usize,
    /// When the next not-yet-lost segment times out (the RACK reordering
    /// timer), if any may.
    pub timeout: Option<Instant>,
}

/// The per-segment scoreboard.
#[derive(Debug, Default)]
pub(crate) struct SentLog {
    q: VecDeque<Sent>,
    limit: usize,
    sacked: usize,
    lost: usize,
    /// Delivery rate estimation over the records.
    pub(crate) rate: RateState,
}

impl SentLog {
    /// A log that keeps at most `limit` records (at least 16).
    pub(crate) fn new(limit: usize) -> Self {
        SentLog {
            q: VecDeque::new(),
            limit: limit.max(16),
            sacked: 0,
            lost: 0,
            rate: RateState::default(),
        }
    }

    /// Bytes selectively acknowledged above SND.UNA.
    pub(crate) fn sacked_bytes(&self) -> usize {
        self.sacked
    }

    /// Bytes marked lost and waiting for retransmission.
    pub(crate) fn lost_bytes(&self) -> usize {
        self.lost
    }

    /// Whether any segment is SACKed.
    pub(crate) fn has_sacked(&self) -> bool {
        self.sacked > 0
    }

    /// Bytes the network holds (RFC 6675 "pipe" with RACK's marks): sent,
    /// neither cumulatively nor selectively acknowledged, and not lost (a
    /// retransmitted lost segment is in flight again).
    pub(crate) fn pipe(&self, outstanding: usize) -> usize {
        outstanding.saturating_sub(self.sacked + self.lost)
    }

    /// Records a transmission of `[start, end)` at `now`: new data is
    /// appended, a retransmission updates its record (which
    /// [`SentLog::next_lost`] / [`SentLog::last_unsacked`] aligned).
    pub(crate) fn on_send(&mut self, start: Seq, end: Seq, fin: bool, now: Instant) {
        if end <= start {
            return;
        }
        let f = if fin { flag::FIN } else { 0 };
        let idle = self.q.is_empty();
        let snap = self.rate.snapshot(now, idle);
        let back_end = self.q.back().map(|b| b.end);
        if back_end.is_some_and(|e| start < e) {
            // A retransmission of a logged segment.
            if let Some(i) = self.index_of(start) {
                if self.q[i].end > end {
                    self.split(i, end);
                }
                let r = &mut self.q[i];
                if r.has(flag::LOST) {
                    self.lost -= r.len();
                }
                r.flags = (r.flags & !flag::LOST) | flag::RETRANS;
                r.xmit = now;
                r.snap = snap;
            }
            return;
        }
        if self.q.len() >= self.limit {
            // Full: merge into the newest record, timed now (a later time
            // only delays loss detection).
            if let Some(b) = self.q.back_mut() {
                if b.flags & flag::SACKED != 0 {
                    self.sacked -= b.end - b.start;
                }
                if b.flags & flag::LOST != 0 {
                    self.lost -= b.end - b.start;
                }
                b.end = end;
                b.xmit = now;
                b.flags = f;
            }
            return;
        }
        if self.q.len() == self.q.capacity() {
            // Room for a request/response exchange first; once a flight
            // outgrows that, room for the largest one at once, so a bulk
            // transfer stops allocating after its first round trips.
            let want = if self.q.capacity() < SMALL {
                SMALL
            } else {
                self.limit
            };
            self.q
                .reserve_exact(want.saturating_sub(self.q.len()).max(1));
        }
        self.q.push_back(Sent {
            start,
            end,
            xmit: now,
            flags: f,
            snap,
        });
    }

    /// The record that starts at `seq`.
    fn index_of(&self, seq: Seq) -> Option<usize> {
        let i = self.q.partition_point(|r| r.end <= seq);
        (i < self.q.len() && self.q[i].start == seq).then_some(i)
    }

    /// Splits record `i` at `at` (inside it) into two with the same state.
    fn split(&mut self, i: usize, at: Seq) {
        let r = self.q[i];
        if at <= r.start || at >= r.end {
            return;
        }
        self.q[i].end = at;
        self.q[i].flags &= !flag::FIN;
        self.q.insert(
            i + 1,
            Sent {
                start: at,
                flags: r.flags,
                ..r
            },
        );
    }

    /// Drops everything below the cumulative ACK `una`, reporting each
    /// fully acknowledged record to RACK; returns bytes newly delivered
    /// that were not SACKed before.
    pub(crate) fn ack(&mut self, una: Seq, rack: &mut Rack, now: Instant) -> usize {
        let mut delivered = 0;
        while let Some(r) = self.q.front().copied() {
            if r.start >= una {
                break;
            }
            if r.end > una {
                // A partial ACK of a record: keep the rest.
                let gone = una - r.start;
                if r.has(flag::SACKED) {
                    self.sacked -= gone;
                } else {
                    delivered += gone;
                    self.rate
                        .on_delivered(r.snap, r.xmit, gone, r.has(flag::RETRANS), now);
                }
                if r.has(flag::LOST) {
                    self.lost -= gone;
                }
                if let Some(f) = self.q.front_mut() {
                    f.start = una;
                }
                break;
            }
            self.q.pop_front();
            if r.has(flag::SACKED) {
                self.sacked -= r.len();
            } else {
                delivered += r.len();
                rack.on_delivered(r.xmit, r.end, r.has(flag::RETRANS), now);
                self.rate
                    .on_delivered(r.snap, r.xmit, r.len(), r.has(flag::RETRANS), now);
            }
            if r.has(flag::LOST) {
                self.lost -= r.len();
            }
        }
        delivered
    }

    /// Marks the records inside the SACK block `[l, r)` (RFC 2018 §3),
    /// reporting each to RACK; returns the bytes newly SACKed.
    pub(crate) fn sack(&mut self, l: Seq, r: Seq, rack: &mut Rack, now: Instant) -> usize {
        let mut newly = 0;
        let mut i = self.q.partition_point(|x| x.end <= l);
        while i < self.q.len() {
            let x = self.q[i];
            if x.start >= r {
                break;
            }
            if x.start >= l && x.end <= r && !x.has(flag::SACKED) {
                if x.has(flag::LOST) {
                    self.lost -= x.len();
                }
                self.sacked += x.len();
                newly += x.len();
                self.q[i].flags = (x.flags & !flag::LOST) | flag::SACKED;
                rack.on_delivered(x.xmit, x.end, x.has(flag::RETRANS), now);
                self.rate
                    .on_delivered(x.snap, x.xmit, x.len(), x.has(flag::RETRANS), now);
            }
            i += 1;
        }
        newly
    }

    /// Forgets every SACK (RFC 6675 §5.1, RFC 2018 §8: after a timeout the
    /// receiver may have reneged).
    pub(crate) fn clear_sacks(&mut self) {
        for r in self.q.iter_mut() {
            r.flags &= !flag::SACKED;
        }
        self.sacked = 0;
    }

    /// RACK loss detection (RFC 8985 §6.2 step 5): a segment sent before
    /// the most recently delivered one (`rack.xmit`, `rack.end`) is lost
    /// once `rack.rtt + reo_wnd` has passed since its transmission.
    pub(crate) fn detect_losses(
        &mut self,
        rack: &Rack,
        reo_wnd: Duration,
        now: Instant,
    ) -> LossScan {
        let mut scan = LossScan::default();
        let Some((rx, rend)) = rack.latest() else {
            return scan;
        };
        let wait = rack.rtt() + reo_wnd;
        for r in self.q.iter_mut() {
            if r.has(flag::SACKED | flag::LOST) {
                continue;
            }
            let sent_before = r.xmit < rx || (r.xmit == rx && r.end < rend);
            if !sent_before {
                continue;
            }
            let deadline = r.xmit + wait;
            if deadline <= now {
                r.flags |= flag::LOST;
                self.lost += r.len();
                scan.newly_lost += r.len();
            } else {
                scan.timeout = Some(scan.timeout.map_or(deadline, |t: Instant| t.min(deadline)));
            }
        }
        scan
    }

    /// Marks losses after a retransmission timeout (RFC 8985 §6.3): the
    /// first unacknowledged segment, and every other one sent at least
    /// `wait` ago, unless SACKed.
    pub(crate) fn mark_lost_on_rto(&mut self, wait: Duration, now: Instant) {
        for (i, r) in self.q.iter_mut().enumerate() {
            if r.has(flag::SACKED | flag::LOST) {
                continue;
            }
            if i == 0 || r.xmit + wait <= now {
                r.flags |= flag::LOST;
                self.lost += r.len();
            }
        }
    }

    /// Marks the first unacknowledged segment lost (RFC 6582 / RFC 5681
    /// fast retransmit without SACK); returns whether it changed.
    pub(crate) fn mark_first_lost(&mut self) -> bool {
        match self.q.front_mut() {
            Some(r) if !r.has(flag::SACKED | flag::LOST) => {
                r.flags |= flag::LOST;
                self.lost += r.len();
                true
            }
            _ => false,
        }
    }

    /// The lowest segment waiting for retransmission, cut to `max` bytes of
    /// payload: `(start, payload_len, fin)`.
    pub(crate) fn next_lost(&mut self, max: usize) -> Option<(Seq, usize, bool)> {
        if self.lost == 0 {
            return None;
        }
        let i = self.q.iter().position(|r| r.has(flag::LOST))?;
        Some(self.cut(i, max))
    }

    /// The highest segment not SACKed (the TLP retransmission, RFC 8985
    /// §7.3), cut to `max` bytes from its end.
    pub(crate) fn last_unsacked(&mut self, max: usize) -> Option<(Seq, usize, bool)> {
        let i = self.q.iter().rposition(|r| !r.has(flag::SACKED))?;
        let r = self.q[i];
        let fin = usize::from(r.has(flag::FIN));
        let payload = r.len() - fin;
        if payload > max.max(1) {
            self.split(i, r.end - fin - max.max(1));
            return Some(self.cut(i + 1, max));
        }
        Some(self.cut(i, max))
    }

    /// Record `i` as a segment of at most `max` payload bytes, splitting it
    /// when it is bigger (after the MSS shrank).
    fn cut(&mut self, i: usize, max: usize) -> (Seq, usize, bool) {
        let r = self.q[i];
        let fin = r.has(flag::FIN);
        let payload = r.len() - usize::from(fin);
        if payload > max.max(1) {
            self.split(i, r.start + max.max(1));
            return (r.start, max.max(1), false);
        }
        (r.start, payload, fin)
    }

    /// Number of records (tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.q.len()
    }

    /// Forgets everything (the connection is done).
    /// Gives the record storage back when nothing is in flight (an idle
    /// connection keeps none; the next send allocates again). Returns
    /// whether it freed anything.
    pub(crate) fn shrink(&mut self) -> bool {
        if !self.q.is_empty() || self.q.capacity() == 0 {
            return false;
        }
        self.q = VecDeque::new();
        true
    }

    pub(crate) fn release(&mut self) {
        self.q = VecDeque::new();
        self.sacked = 0;
        self.lost = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(n: u32, now: Instant) -> SentLog {
        let mut l = SentLog::new(64);
        for k in 0..n {
            l.on_send(Seq(k * 100), Seq(k * 100 + 100), false, now);
        }
        l
    }

    #[test]
    fn shrink_frees_the_records_only_when_nothing_is_in_flight() {
        let now = Instant::now();
        let mut rack = Rack::default();
        let mut l = log_with(3, now);
        assert!(!l.shrink(), "records in flight are kept");
        assert_eq!(l.len(), 3);
        l.ack(Seq(300), &mut rack, now);
        assert!(l.shrink());
        assert_eq!(l.q.capacity(), 0);
        assert!(!l.shrink(), "nothing left to free");
        l.on_send(Seq(300), Seq(400), false, now);
        assert_eq!(l.len(), 1, "the log works again after a shrink");
    }

    #[test]
    fn sack_ack_and_pipe() {
        let now = Instant::now();
        let mut rack = Rack::default();
        let mut l = log_with(5, now);
        assert_eq!(l.pipe(500), 500);
        assert_eq!(l.sack(Seq(200), Seq(400), &mut rack, now), 200);
        assert_eq!(l.sack(Seq(200), Seq(400), &mut rack, now), 0, "idempotent");
        assert_eq!(l.pipe(500), 300);
        assert_eq!(l.ack(Seq(100), &mut rack, now), 100);
        assert_eq!(l.pipe(400), 200);
        assert_eq!(
            l.ack(Seq(400), &mut rack, now),
            100,
            "SACKed bytes are not new"
        );
        assert_eq!((l.len(), l.sacked_bytes()), (1, 0));
    }

    #[test]
    fn rack_marks_older_segments_lost_and_arms_a_timer_for_the_rest() {
        // RFC 8985 §6.2: a segment sent before a delivered one is lost
        // after RACK.rtt + reo_wnd.
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut rack = Rack::default();
        let mut l = SentLog::new(64);
        l.on_send(Seq(0), Seq(100), false, t0);
        l.on_send(Seq(100), Seq(200), false, t0 + ms(1));
        l.on_send(Seq(200), Seq(300), false, t0 + ms(2));
        // The third is SACKed 10 ms after it was sent: RACK.rtt = 10 ms.
        l.sack(Seq(200), Seq(300), &mut rack, t0 + ms(12));
        let s = l.detect_losses(&rack, ms(0), t0 + ms(12));
        assert_eq!(s.newly_lost, 200);
        assert_eq!(l.next_lost(1000), Some((Seq(0), 100, false)));
        // With a reordering window of 2 ms nothing is lost yet, and the
        // timer fires when the first one times out.
        let mut l2 = SentLog::new(64);
        l2.on_send(Seq(0), Seq(100), false, t0);
        l2.on_send(Seq(100), Seq(200), false, t0 + ms(1));
        l2.sack(Seq(100), Seq(200), &mut rack, t0 + ms(11));
        let s = l2.detect_losses(&rack, ms(2), t0 + ms(11));
        assert_eq!((s.newly_lost, s.timeout), (0, Some(t0 + ms(12))));
    }

    #[test]
    fn retransmission_clears_lost_and_a_lost_retransmission_is_found_again() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut rack = Rack::default();
        let mut l = log_with(3, t0);
        assert!(l.mark_first_lost());
        assert_eq!(l.lost_bytes(), 100);
        assert_eq!(l.pipe(300), 200);
        let (s, n, _) = l.next_lost(1000).expect("lost");
        l.on_send(s, s + n, false, t0 + ms(5));
        assert_eq!((l.lost_bytes(), l.pipe(300)), (0, 300));
        // New data sent after the retransmission is SACKed: the
        // retransmission, sent before it, is lost again.
        l.on_send(Seq(300), Seq(400), false, t0 + ms(6));
        l.sack(Seq(300), Seq(400), &mut rack, t0 + ms(16));
        let scan = l.detect_losses(&rack, ms(0), t0 + ms(16));
        assert!(scan.newly_lost >= 100);
        assert_eq!(l.next_lost(1000).map(|x| x.0), Some(Seq(0)));
    }

    #[test]
    fn big_records_are_cut_to_the_mss_and_full_logs_merge() {
        let now = Instant::now();
        let mut l = SentLog::new(16);
        l.on_send(Seq(0), Seq(1001), true, now);
        l.mark_lost_on_rto(Duration::ZERO, now);
        assert_eq!(l.next_lost(600), Some((Seq(0), 600, false)));
        l.on_send(Seq(0), Seq(600), false, now);
        assert_eq!(l.next_lost(600), Some((Seq(600), 400, true)));
        let mut l = SentLog::new(16);
        for k in 0..40u32 {
            l.on_send(Seq(k * 10), Seq(k * 10 + 10), false, now);
        }
        assert_eq!(l.len(), 16);
        assert_eq!(l.pipe(400), 400);
    }
}
