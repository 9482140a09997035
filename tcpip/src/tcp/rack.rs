//! RACK-TLP: time-based loss detection and tail loss probes.
//!
//! Read first: RFC 8985 §6.1 (RACK state), §6.2 (on each ACK: update
//! RACK.xmit_ts / end_seq / rtt, detect reordering, the reordering window
//! with its DSACK-driven multiplier, detect losses, the reordering timer),
//! §7 (TLP: PTO = 2·SRTT, + WCDelAckT with one segment in flight; the
//! probe; detecting a loss the probe repaired), RFC 2883 §4 (DSACK).
//!
//! The per-segment half (which segment is lost) is in `sent.rs`; this file
//! holds the connection-wide RACK variables and the timer arithmetic.

use super::seq::Seq;
use std::time::{Duration, Instant};

/// Worst-case delayed-ACK time WCDelAckT (RFC 8985 §7.2).
pub(crate) const WC_DEL_ACK: Duration = Duration::from_millis(200);
/// Recoveries after which a grown reordering window shrinks back
/// (RACK.reo_wnd_persist, RFC 8985 §6.2 step 4).
const REO_WND_PERSIST: u32 = 16;
/// Largest reordering-window multiplier (the window is capped at SRTT
/// anyway).
const MAX_REO_WND_MULT: u32 = 64;

/// The connection-wide RACK state (RFC 8985 §6.1).
#[derive(Debug, Clone)]
pub(crate) struct Rack {
    /// xmit_ts and end_seq of the most recently sent delivered segment.
    latest: Option<(Instant, Seq)>,
    /// RTT of that segment.
    rtt: Duration,
    /// Highest end_seq delivered (RACK.fack).
    fack: Option<Seq>,
    /// RACK.fack before the ACK being processed: a segment that this ACK
    /// delivers below it was reordered (the SACK blocks of one ACK come
    /// in any order).
    fack_before: Option<Seq>,
    /// Smallest RTT seen (RACK.min_RTT).
    min_rtt: Option<Duration>,
    /// Whether the peer's ACKs showed reordering.
    reordering_seen: bool,
    reo_wnd_mult: u32,
    reo_wnd_persist: u32,
    /// SND.NXT when the multiplier last grew (one step per round trip).
    dsack_round: Option<Seq>,
}

impl Default for Rack {
    fn default() -> Self {
        Rack {
            latest: None,
            rtt: Duration::ZERO,
            fack: None,
            fack_before: None,
            min_rtt: None,
            reordering_seen: false,
            reo_wnd_mult: 1,
            reo_wnd_persist: REO_WND_PERSIST,
            dsack_round: None,
        }
    }
}

impl Rack {
    /// Feeds an RTT sample of the connection (RACK.min_RTT).
    pub(crate) fn on_rtt_sample(&mut self, rtt: Duration) {
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
    }

    /// An ACK arrives: what it delivers is compared with what earlier ACKs
    /// delivered (RFC 8985 §6.2 step 3).
    pub(crate) fn start_ack(&mut self) {
        self.fack_before = self.fack;
    }

    /// A segment sent at `xmit` and ending at `end` was newly acknowledged
    /// (cumulatively or selectively) at `now` (RFC 8985 §6.2 steps 2–3).
    pub(crate) fn on_delivered(
        &mut self,
        xmit: Instant,
        end: Seq,
        retransmitted: bool,
        now: Instant,
    ) {
        let rtt = now.saturating_duration_since(xmit);
        if !retransmitted {
            self.on_rtt_sample(rtt);
        }
        if retransmitted && self.min_rtt.is_some_and(|m| rtt < m) {
            // Too fast for the retransmission: the original was delivered,
            // so this tells nothing about when the retransmission left.
            return;
        }
        if !retransmitted && self.fack_before.is_some_and(|f| end < f) {
            self.reordering_seen = true;
        }
        if !matches!(self.fack, Some(f) if end <= f) {
            self.fack = Some(end);
        }
        let newer = match self.latest {
            None => true,
            Some((x, e)) => xmit > x || (xmit == x && end > e),
        };
        if newer {
            self.latest = Some((xmit, end));
            self.rtt = rtt;
        }
    }

    /// A DSACK arrived (RFC 8985 §6.2 step 4): grow the reordering window
    /// by one RACK.min_RTT/4 step, at most once per round trip.
    pub(crate) fn on_dsack(&mut self, snd_una: Seq, snd_max: Seq) {
        if !matches!(self.dsack_round, Some(r) if snd_una < r) {
            self.dsack_round = Some(snd_max);
            self.reo_wnd_mult = (self.reo_wnd_mult + 1).min(MAX_REO_WND_MULT);
            self.reo_wnd_persist = REO_WND_PERSIST;
        }
    }

    /// A loss recovery began: after `REO_WND_PERSIST` of them without a
    /// DSACK the window shrinks back.
    pub(crate) fn on_recovery(&mut self) {
        self.reo_wnd_persist = self.reo_wnd_persist.saturating_sub(1);
        if self.reo_wnd_persist == 0 {
            self.reo_wnd_mult = 1;
            self.reo_wnd_persist = REO_WND_PERSIST;
        }
    }

    /// The reordering window RACK.reo_wnd (RFC 8985 §6.2 step 4):
    /// zero while no reordering was seen and we are already recovering or
    /// DupThresh segments are SACKed; else min_RTT/4 per multiplier step,
    /// at most SRTT.
    pub(crate) fn reo_wnd(
        &self,
        recovering: bool,
        dupthresh_sacked: bool,
        srtt: Duration,
    ) -> Duration {
        if !self.reordering_seen && (recovering || dupthresh_sacked) {
            return Duration::ZERO;
        }
        let step = self.min_rtt.unwrap_or(srtt) / 4;
        step.saturating_mul(self.reo_wnd_mult).min(srtt)
    }

    /// The most recently sent delivered segment: `(xmit_ts, end_seq)`.
    pub(crate) fn latest(&self) -> Option<(Instant, Seq)> {
        self.latest
    }

    /// RACK.rtt.
    pub(crate) fn rtt(&self) -> Duration {
        self.rtt
    }
}

/// The probe timeout (RFC 8985 §7.2): 2·SRTT, plus WCDelAckT when only
/// one segment is in flight (its ACK may be delayed).
pub(crate) fn pto(srtt: Duration, one_segment: bool) -> Duration {
    let p = srtt * 2;
    if one_segment {
        p + WC_DEL_ACK
    } else {
        p.max(Duration::from_millis(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reordering_window_grows_with_dsack_and_shrinks_back() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut r = Rack::default();
        r.on_rtt_sample(ms(8));
        // No reordering seen: zero in recovery, min_RTT/4 otherwise.
        assert_eq!(r.reo_wnd(true, false, ms(10)), ms(0));
        assert_eq!(r.reo_wnd(false, false, ms(10)), ms(2));
        // Blocks of one ACK in any order are no reordering...
        r.start_ack();
        r.on_delivered(t0, Seq(200), false, t0 + ms(9));
        r.on_delivered(t0, Seq(100), false, t0 + ms(9));
        assert_eq!(r.reo_wnd(true, false, ms(10)), ms(0));
        // ...a segment below RACK.fack delivered by a later ACK is.
        r.start_ack();
        r.on_delivered(t0, Seq(50), false, t0 + ms(9));
        assert_eq!(r.reo_wnd(true, false, ms(10)), ms(2));
        r.on_dsack(Seq(0), Seq(1000));
        r.on_dsack(Seq(500), Seq(2000)); // same round: no second step
        assert_eq!(r.reo_wnd(true, false, ms(10)), ms(4));
        r.on_dsack(Seq(1000), Seq(3000));
        r.on_dsack(Seq(3000), Seq(4000));
        r.on_dsack(Seq(4000), Seq(5000));
        assert_eq!(r.reo_wnd(true, false, ms(10)), ms(10), "capped at SRTT");
        for _ in 0..REO_WND_PERSIST {
            r.on_recovery();
        }
        assert_eq!(r.reo_wnd(true, false, ms(10)), ms(2));
    }

    #[test]
    fn ambiguous_retransmission_acks_are_ignored() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut r = Rack::default();
        r.on_rtt_sample(ms(10));
        r.on_delivered(t0, Seq(100), true, t0 + ms(2));
        assert_eq!(r.latest(), None);
        r.on_delivered(t0, Seq(100), true, t0 + ms(12));
        assert_eq!((r.latest(), r.rtt()), (Some((t0, Seq(100))), ms(12)));
    }

    #[test]
    fn probe_timeout() {
        let ms = Duration::from_millis;
        assert_eq!(pto(ms(5), false), ms(10));
        assert_eq!(pto(ms(5), true), ms(210));
    }
}
