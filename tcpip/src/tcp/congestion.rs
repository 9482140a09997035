//! Congestion control: slow start, CUBIC congestion avoidance with its
//! Reno-friendly region, multiplicative decrease on loss; and the
//! [`Controller`] a connection holds, CUBIC or BBR ([`super::bbr`]).
//!
//! Read first: RFC 9438 §4 (CUBIC: W_cubic, K, β_cubic = 0.7, C = 0.4,
//! Reno-friendly W_est, fast convergence, §4.6 multiplicative decrease,
//! §4.8 timeout), RFC 5681 §3 (slow start, ssthresh), RFC 6928 (IW10),
//! RFC 3465 (appropriate byte counting), RFC 7661 (don't grow when
//! application-limited); slow start ends early by [`super::hystart`].

use super::hystart::{self, HyStart};
use super::seq::Seq;
use std::time::{Duration, Instant};

const BETA: f64 = 0.7;
const C: f64 = 0.4;
/// α_cubic = 3(1 − β)/(1 + β) (RFC 9438 §4.3).
const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// CUBIC state in bytes.
#[derive(Debug, Clone)]
pub struct Cubic {
    mss: usize,
    cwnd: usize,
    ssthresh: usize,
    w_max: f64,
    k: f64,
    epoch: Option<Instant>,
    w_est: f64,
    cwnd_at_epoch: f64,
    hystart: HyStart,
}

impl Cubic {
    /// Starts with the RFC 6928 initial window of 10 segments.
    pub fn new(mss: usize) -> Self {
        let mss = mss.max(1);
        Cubic {
            mss,
            cwnd: 10 * mss,
            ssthresh: usize::MAX,
            w_max: 0.0,
            k: 0.0,
            epoch: None,
            w_est: 0.0,
            cwnd_at_epoch: 0.0,
            hystart: HyStart::default(),
        }
    }

    /// Congestion window in bytes.
    pub fn window(&self) -> usize {
        self.cwnd
    }

    /// Slow-start threshold in bytes.
    pub fn ssthresh(&self) -> usize {
        self.ssthresh
    }

    /// Updates the segment size (e.g. after PMTU changes).
    pub fn set_mss(&mut self, mss: usize) {
        self.mss = mss.max(1);
        self.cwnd = self.cwnd.max(self.mss);
    }

    /// `acked` new bytes were acknowledged. `cwnd_limited` says whether the
    /// sender was using its window (RFC 7661); `rtt` is the smoothed RTT.
    pub fn on_ack(&mut self, now: Instant, acked: usize, rtt: Duration, cwnd_limited: bool) {
        if !cwnd_limited || acked == 0 {
            return;
        }
        if self.cwnd < self.ssthresh {
            // Slow start with ABC, L = 2 SMSS (RFC 3465).
            self.cwnd += acked.min(2 * self.mss);
            return;
        }
        let mss = self.mss as f64;
        let cwnd_seg = self.cwnd as f64 / mss;
        let epoch = *self.epoch.get_or_insert_with(|| {
            // A new congestion-avoidance epoch (RFC 9438 §4.2).
            if self.w_max <= cwnd_seg {
                self.k = 0.0;
                self.w_max = cwnd_seg;
            } else {
                self.k = ((self.w_max - cwnd_seg) / C).cbrt();
            }
            self.w_est = cwnd_seg;
            self.cwnd_at_epoch = cwnd_seg;
            now
        });
        let t = (now.saturating_duration_since(epoch) + rtt).as_secs_f64();
        // W_cubic(t) = C (t − K)^3 + W_max
        let target = (C * (t - self.k).powi(3) + self.w_max).clamp(cwnd_seg, 1.5 * cwnd_seg);
        let acked_seg = acked as f64 / mss;
        // W_est += α_cubic · segments_acked / cwnd (RFC 9438 §4.3)
        self.w_est += ALPHA * acked_seg / cwnd_seg;
        let next = if self.w_est > target {
            // Reno-friendly region.
            cwnd_seg + (self.w_est - cwnd_seg).max(0.0).min(acked_seg / cwnd_seg)
        } else {
            // Concave / convex regions: cwnd += (target − cwnd)/cwnd per ACKed segment.
            cwnd_seg + (target - cwnd_seg) / cwnd_seg * acked_seg
        };
        self.cwnd = ((next * mss) as usize).max(self.cwnd);
    }

    /// An RTT sample from an ACK of `snd_una` at `now` with `snd_max`
    /// sent: HyStart ends slow start (`ssthresh = cwnd`) when the window
    /// fills the path.
    pub fn on_rtt(&mut self, now: Instant, rtt: Duration, snd_una: Seq, snd_max: Seq) {
        let look = self.cwnd < self.ssthresh && self.cwnd >= hystart::LOW_WINDOW * self.mss;
        if self.hystart.on_rtt(now, rtt, snd_una, snd_max, look) {
            self.ssthresh = self.cwnd;
        }
    }

    /// A loss detected by duplicate ACKs or SACK (RFC 9438 §4.6–§4.7).
    pub fn on_congestion(&mut self, flight: usize) {
        let mss = self.mss as f64;
        let cwnd_seg = (self.cwnd.min(flight.max(self.mss))) as f64 / mss;
        let cwnd_seg = cwnd_seg.max(self.cwnd as f64 / mss);
        // Fast convergence.
        self.w_max = if cwnd_seg < self.w_max {
            cwnd_seg * (1.0 + BETA) / 2.0
        } else {
            cwnd_seg
        };
        self.ssthresh = ((cwnd_seg * BETA * mss).round() as usize).max(2 * self.mss);
        self.cwnd = self.ssthresh;
        self.epoch = None;
    }

    /// A retransmission timeout (RFC 9438 §4.8, RFC 5681 §3.1).
    pub fn on_timeout(&mut self, flight: usize) {
        let first = self.epoch.is_some() || self.cwnd > self.mss;
        if first {
            let mss = self.mss as f64;
            let cwnd_seg = self.cwnd.max(flight.min(self.cwnd)) as f64 / mss;
            self.w_max = cwnd_seg;
            self.ssthresh = ((cwnd_seg * BETA * mss).round() as usize).max(2 * self.mss);
        }
        self.cwnd = self.mss;
        self.epoch = None;
        self.hystart.restart();
    }
}

/// Which congestion control a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// CUBIC (RFC 9438) with fast recovery paced by PRR: Linux's default.
    #[default]
    Cubic,
    /// BBR v1 (see [`super::bbr`]): paced at the measured bottleneck rate,
    /// loss does not shrink it.
    Bbr,
}

impl Algorithm {
    /// The name, as Linux's `tcp_congestion_control` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Cubic => "cubic",
            Algorithm::Bbr => "bbr",
        }
    }

    /// The algorithm named `s` (`cubic`, `bbr`), if one of ours.
    pub fn from_name(s: &str) -> Option<Algorithm> {
        match s.trim() {
            "cubic" => Some(Algorithm::Cubic),
            "bbr" => Some(Algorithm::Bbr),
            _ => None,
        }
    }
}

/// A connection's congestion controller.
#[derive(Debug, Clone)]
pub enum Controller {
    /// Loss-based.
    Cubic(Cubic),
    /// Model-based.
    Bbr(super::bbr::Bbr),
}

impl Controller {
    /// A fresh controller for `mss`-byte segments.
    pub fn new(alg: Algorithm, mss: usize) -> Controller {
        match alg {
            Algorithm::Cubic => Controller::Cubic(Cubic::new(mss)),
            Algorithm::Bbr => Controller::Bbr(super::bbr::Bbr::new(mss)),
        }
    }

    /// Which algorithm it is.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Controller::Cubic(_) => Algorithm::Cubic,
            Controller::Bbr(_) => Algorithm::Bbr,
        }
    }

    /// Congestion window in bytes.
    pub fn window(&self) -> usize {
        match self {
            Controller::Cubic(c) => c.window(),
            Controller::Bbr(b) => b.window(),
        }
    }

    /// Slow-start threshold in bytes (`usize::MAX` for BBR, which has none).
    pub fn ssthresh(&self) -> usize {
        match self {
            Controller::Cubic(c) => c.ssthresh(),
            Controller::Bbr(_) => usize::MAX,
        }
    }

    /// Updates the segment size.
    pub fn set_mss(&mut self, mss: usize) {
        match self {
            Controller::Cubic(c) => c.set_mss(mss),
            Controller::Bbr(b) => b.set_mss(mss),
        }
    }

    /// New data acknowledged outside recovery (CUBIC's growth).
    pub fn on_ack(&mut self, now: Instant, acked: usize, rtt: Duration, cwnd_limited: bool) {
        if let Controller::Cubic(c) = self {
            c.on_ack(now, acked, rtt, cwnd_limited);
        }
    }

    /// An RTT sample from an ACK (CUBIC's HyStart).
    pub fn on_rtt(&mut self, now: Instant, rtt: Duration, snd_una: Seq, snd_max: Seq) {
        if let Controller::Cubic(c) = self {
            c.on_rtt(now, rtt, snd_una, snd_max);
        }
    }

    /// The rate sample of an ACK (BBR's model), with `inflight` bytes left
    /// in the network and `lost` whether the ACK revealed a loss.
    pub fn on_sample(
        &mut self,
        now: Instant,
        rs: &super::rate::RateSample,
        inflight: usize,
        lost: bool,
    ) {
        if let Controller::Bbr(b) = self {
            b.on_sample(now, rs, inflight, lost);
        }
    }

    /// A loss episode began with `flight` bytes outstanding.
    pub fn on_congestion(&mut self, flight: usize) {
        match self {
            Controller::Cubic(c) => c.on_congestion(flight),
            Controller::Bbr(b) => b.on_congestion(flight),
        }
    }

    /// The loss episode ended.
    pub fn on_recovered(&mut self) {
        if let Controller::Bbr(b) = self {
            b.on_recovered();
        }
    }

    /// A retransmission timeout with `flight` bytes outstanding.
    pub fn on_timeout(&mut self, flight: usize) {
        match self {
            Controller::Cubic(c) => c.on_timeout(flight),
            Controller::Bbr(b) => b.on_timeout(),
        }
    }

    /// Bytes per second to pace at: BBR's model rate; for CUBIC, as
    /// Linux paces it under `fq` (`tcp_update_pacing_rate`), twice the
    /// window per RTT in slow start and 1.2 times it after, so a window's
    /// worth leaves spread over the round trip instead of in one burst
    /// that a shallow bottleneck queue (or a relay's socket buffer) drops.
    /// `None` before the first RTT sample (`srtt`), and for a CUBIC window
    /// of ten segments or less after a loss.
    pub fn pacing_rate(&self, srtt: Option<Duration>) -> Option<f64> {
        match self {
            Controller::Cubic(c) => {
                let srtt = srtt.filter(|s| !s.is_zero())?;
                // After a loss, a window of ten segments or less leaves
                // unpaced: every queue takes such a burst, and spreading it
                // over the RTT only delays the segments whose ACKs detect
                // the next loss (the simulator's 1 ms rows at 5% and 10%
                // loss took twice the timeouts, at half the rate, with it
                // paced). Slow start from the initial window stays paced.
                if c.window() <= 10 * c.mss && c.ssthresh() != usize::MAX {
                    return None;
                }
                let ca: f64 = std::env::var("WG_CUBIC_CA_GAIN")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1.2);
                if ca == 0.0 {
                    return None;
                }
                let gain = if c.window() < c.ssthresh() { 2.0 } else { ca };
                Some(gain * c.window() as f64 / srtt.as_secs_f64())
            }
            Controller::Bbr(b) => Some(b.pacing_rate(srtt.unwrap_or_default())),
        }
    }

    /// Whether fast recovery is paced by PRR (loss-based control) rather
    /// than by the controller's own window.
    pub fn uses_prr(&self) -> bool {
        matches!(self, Controller::Cubic(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_then_decrease() {
        let now = Instant::now();
        let mut c = Cubic::new(1000);
        assert_eq!(c.window(), 10_000);
        c.on_ack(now, 1000, Duration::from_millis(10), true);
        assert_eq!(c.window(), 11_000);
        c.on_ack(now, 1000, Duration::from_millis(10), false);
        assert_eq!(c.window(), 11_000);
        c.on_congestion(11_000);
        assert_eq!(c.window(), 7_700);
        assert_eq!(c.ssthresh(), 7_700);
        c.on_timeout(7_700);
        assert_eq!(c.window(), 1_000);
    }

    #[test]
    fn cubic_grows_back_towards_w_max() {
        let mut now = Instant::now();
        let mut c = Cubic::new(1000);
        for _ in 0..100 {
            c.on_ack(now, 2000, Duration::from_millis(10), true);
        }
        let before = c.window();
        c.on_congestion(before);
        for _ in 0..10_000 {
            now += Duration::from_millis(1);
            c.on_ack(now, 1000, Duration::from_millis(10), true);
        }
        assert!(c.window() > before, "{} <= {}", c.window(), before);
    }
}
