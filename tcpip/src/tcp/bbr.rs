//! BBR congestion control (version 1): a model of the path — its
//! bottleneck bandwidth (the highest delivery rate of the last ten round
//! trips) and its round-trip propagation time (the lowest RTT of the last
//! ten seconds) — from which the sender paces at the bandwidth and keeps
//! about two bandwidth-delay products in flight. Random loss does not
//! shrink the model, which is why BBR holds its rate on lossy long paths
//! where loss-based control (CUBIC) collapses.
//!
//! Read first: draft-cardwell-iccrg-bbr-congestion-control-00 §4 (the
//! model, the state machine: Startup, Drain, ProbeBW, ProbeRTT; gains;
//! `BBRUpdateModelAndState`, `BBRUpdateControlParameters`), Linux's
//! `net/ipv4/tcp_bbr.c` (the reference implementation: the 1 % pacing
//! margin, packet conservation in the first round of recovery).

use super::rate::RateSample;
use std::time::{Duration, Instant};

/// 2/ln 2: the smallest gain that doubles the delivery rate each round.
const HIGH_GAIN: f64 = 2.885;
const DRAIN_GAIN: f64 = 1.0 / HIGH_GAIN;
const CWND_GAIN: f64 = 2.0;
/// ProbeBW's eight-phase pacing gain cycle.
const CYCLE: [f64; 8] = [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
/// Round trips the bandwidth filter covers.
const BW_WINDOW: u64 = 10;
const MIN_RTT_WINDOW: Duration = Duration::from_secs(10);
const PROBE_RTT_TIME: Duration = Duration::from_millis(200);
/// Segments of the smallest window (ProbeRTT's).
const MIN_CWND_SEGS: usize = 4;
/// Startup ends when three rounds grow the bandwidth by less than 25 %.
const FULL_BW_GROWTH: f64 = 1.25;
const FULL_BW_ROUNDS: u32 = 3;
/// Pace 1 % below the estimate (Linux's margin), so queues drain.
const PACING_MARGIN: f64 = 0.99;

/// BBR's modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Doubling the rate each round until the bandwidth stops growing.
    Startup,
    /// Draining the queue Startup built.
    Drain,
    /// Cruising at the bandwidth, probing for more every eight rounds.
    ProbeBw,
    /// Briefly a tiny window, to measure the propagation time anew.
    ProbeRtt,
}

/// A windowed maximum over round counts (Kathleen Nichols' three-sample
/// filter, as Linux's `minmax`).
#[derive(Debug, Clone, Copy, Default)]
struct MaxFilter {
    s: [(u64, f64); 3],
}

impl MaxFilter {
    fn get(&self) -> f64 {
        self.s[0].1
    }

    fn reset(&mut self, t: u64, v: f64) {
        self.s = [(t, v); 3];
    }

    fn update(&mut self, t: u64, v: f64, window: u64) {
        if v >= self.s[0].1 || t.saturating_sub(self.s[2].0) > window {
            self.reset(t, v);
            return;
        }
        if v >= self.s[1].1 {
            self.s[1] = (t, v);
            self.s[2] = (t, v);
        } else if v >= self.s[2].1 {
            self.s[2] = (t, v);
        }
        // Expire the best samples as they leave the window.
        if t.saturating_sub(self.s[0].0) > window {
            self.s[0] = self.s[1];
            self.s[1] = self.s[2];
            self.s[2] = (t, v);
            if t.saturating_sub(self.s[0].0) > window {
                self.s[0] = self.s[1];
                self.s[1] = self.s[2];
            }
        } else if self.s[1].0 == self.s[0].0 && t.saturating_sub(self.s[1].0) > window / 4 {
            self.s[1] = (t, v);
            self.s[2] = (t, v);
        } else if self.s[2].0 == self.s[1].0 && t.saturating_sub(self.s[2].0) > window / 2 {
            self.s[2] = (t, v);
        }
    }
}

/// BBR state, in bytes and bytes per second.
#[derive(Debug, Clone)]
pub struct Bbr {
    mss: usize,
    mode: Mode,
    cwnd: usize,
    pacing_rate: f64,
    btl_bw: MaxFilter,
    min_rtt: Option<Duration>,
    min_rtt_stamp: Option<Instant>,
    round_count: u64,
    next_round_delivered: u64,
    round_start: bool,
    full_bw: f64,
    full_bw_count: u32,
    filled_pipe: bool,
    pacing_gain: f64,
    cwnd_gain: f64,
    cycle_index: usize,
    cycle_stamp: Option<Instant>,
    probe_rtt_done: Option<Instant>,
    probe_rtt_round_done: bool,
    prior_cwnd: usize,
    /// In the first round of a recovery: send only as much as is
    /// delivered (packet conservation).
    conservation_until: Option<u64>,
    /// Losses seen in this round (bytes), for ProbeBW's probing phase.
    lost_in_round: bool,
}

impl Bbr {
    /// Starts in Startup with the RFC 6928 window of 10 segments.
    pub fn new(mss: usize) -> Self {
        let mss = mss.max(1);
        Bbr {
            mss,
            mode: Mode::Startup,
            cwnd: 10 * mss,
            pacing_rate: 0.0,
            btl_bw: MaxFilter::default(),
            min_rtt: None,
            min_rtt_stamp: None,
            round_count: 0,
            next_round_delivered: 0,
            round_start: false,
            full_bw: 0.0,
            full_bw_count: 0,
            filled_pipe: false,
            pacing_gain: HIGH_GAIN,
            cwnd_gain: HIGH_GAIN,
            cycle_index: 0,
            cycle_stamp: None,
            probe_rtt_done: None,
            probe_rtt_round_done: false,
            prior_cwnd: 0,
            conservation_until: None,
            lost_in_round: false,
        }
    }

    /// Congestion window in bytes.
    pub fn window(&self) -> usize {
        self.cwnd
    }

    /// The mode the model is in.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The bottleneck bandwidth estimate, bytes per second.
    pub fn bandwidth(&self) -> f64 {
        self.btl_bw.get()
    }

    /// Updates the segment size.
    pub fn set_mss(&mut self, mss: usize) {
        self.mss = mss.max(1);
        self.cwnd = self.cwnd.max(self.min_cwnd());
    }

    fn min_cwnd(&self) -> usize {
        MIN_CWND_SEGS * self.mss
    }

    /// Pacing rate in bytes per second; before the first sample, the
    /// initial window over the smoothed RTT (`srtt`, 1 ms if none yet).
    pub fn pacing_rate(&self, srtt: Duration) -> f64 {
        if self.pacing_rate > 0.0 {
            return self.pacing_rate;
        }
        let rtt = if srtt.is_zero() {
            Duration::from_millis(1)
        } else {
            srtt
        };
        HIGH_GAIN * self.cwnd as f64 / rtt.as_secs_f64()
    }

    /// The bandwidth-delay product times `gain`, in bytes.
    fn bdp(&self, gain: f64) -> Option<usize> {
        let rtt = self.min_rtt?;
        let bw = self.btl_bw.get();
        if bw <= 0.0 {
            return None;
        }
        Some((gain * bw * rtt.as_secs_f64()) as usize)
    }

    /// The window BBR aims for: `gain` BDPs plus room for delayed,
    /// stretched and aggregated ACKs — Linux's three send quanta, each
    /// about a millisecond at the pacing rate (two segments at least, 64
    /// KiB at most): at sub-millisecond RTTs, where ACKs come in batches,
    /// two BDPs alone would starve the pipe.
    fn target_cwnd(&self, gain: f64) -> usize {
        let quantum = ((self.pacing_rate * 0.001) as usize).clamp(2 * self.mss, 65536);
        match self.bdp(gain) {
            Some(b) => (b + 3 * quantum).max(self.min_cwnd()),
            None => 10 * self.mss,
        }
    }

    /// One ACK's rate sample, with `inflight` bytes still in the network
    /// and `lost` whether this ACK revealed a loss.
    pub fn on_sample(&mut self, now: Instant, rs: &RateSample, inflight: usize, lost: bool) {
        self.lost_in_round |= lost;
        self.update_round(rs);
        if rs.delivery_rate > 0.0 && (!rs.app_limited || rs.delivery_rate >= self.btl_bw.get()) {
            self.btl_bw
                .update(self.round_count, rs.delivery_rate, BW_WINDOW);
        }
        self.check_cycle_phase(now, inflight);
        self.check_full_pipe(rs);
        self.check_drain(now, inflight);
        self.update_min_rtt(now, rs, inflight);
        self.set_pacing_rate();
        self.set_cwnd(rs, inflight);
    }

    fn update_round(&mut self, rs: &RateSample) {
        self.round_start = false;
        if rs.prior_delivered >= self.next_round_delivered {
            self.next_round_delivered = rs.delivered;
            self.round_count += 1;
            self.round_start = true;
            self.lost_in_round = false;
        }
        if self
            .conservation_until
            .is_some_and(|r| self.round_count > r)
        {
            self.conservation_until = None;
        }
    }

    fn check_cycle_phase(&mut self, now: Instant, inflight: usize) {
        if self.mode != Mode::ProbeBw {
            return;
        }
        let Some(rtt) = self.min_rtt else {
            return;
        };
        let elapsed = self
            .cycle_stamp
            .is_none_or(|s| now.saturating_duration_since(s) > rtt);
        let gain = self.pacing_gain;
        let next = if gain > 1.0 {
            // Probe until the extra data is in flight, or a loss says the
            // queue is full.
            elapsed && (self.lost_in_round || inflight >= self.target_cwnd(gain))
        } else if gain < 1.0 {
            // Drain what the probe queued, or a round trip at most.
            elapsed || inflight <= self.target_cwnd(1.0)
        } else {
            elapsed
        };
        if next {
            self.cycle_index = (self.cycle_index + 1) % CYCLE.len();
            self.cycle_stamp = Some(now);
            self.pacing_gain = CYCLE[self.cycle_index];
        }
    }

    fn check_full_pipe(&mut self, rs: &RateSample) {
        if self.filled_pipe || !self.round_start || rs.app_limited {
            return;
        }
        let bw = self.btl_bw.get();
        if bw >= self.full_bw * FULL_BW_GROWTH {
            self.full_bw = bw;
            self.full_bw_count = 0;
            return;
        }
        self.full_bw_count += 1;
        if self.full_bw_count >= FULL_BW_ROUNDS {
            self.filled_pipe = true;
        }
    }

    fn check_drain(&mut self, now: Instant, inflight: usize) {
        if self.mode == Mode::Startup && self.filled_pipe {
            self.mode = Mode::Drain;
            self.pacing_gain = DRAIN_GAIN;
            self.cwnd_gain = HIGH_GAIN;
        }
        if self.mode == Mode::Drain && inflight <= self.target_cwnd(1.0) {
            self.enter_probe_bw(now);
        }
    }

    fn enter_probe_bw(&mut self, now: Instant) {
        self.mode = Mode::ProbeBw;
        self.cwnd_gain = CWND_GAIN;
        // Start anywhere but the draining phase (as Linux, from the
        // round count rather than a random draw: deterministic).
        self.cycle_index = (self.round_count as usize % 7 + 2) % CYCLE.len();
        self.pacing_gain = CYCLE[self.cycle_index];
        self.cycle_stamp = Some(now);
    }

    fn update_min_rtt(&mut self, now: Instant, rs: &RateSample, inflight: usize) {
        let expired = self
            .min_rtt_stamp
            .is_some_and(|s| now.saturating_duration_since(s) > MIN_RTT_WINDOW);
        if let Some(rtt) = rs.rtt {
            if self.min_rtt.is_none_or(|m| rtt <= m) || expired {
                self.min_rtt = Some(rtt.max(Duration::from_micros(1)));
                self.min_rtt_stamp = Some(now);
            }
        }
        if expired && self.mode != Mode::ProbeRtt {
            self.mode = Mode::ProbeRtt;
            self.pacing_gain = 1.0;
            self.prior_cwnd = self.prior_cwnd.max(self.cwnd);
            self.probe_rtt_done = None;
        }
        if self.mode != Mode::ProbeRtt {
            return;
        }
        match self.probe_rtt_done {
            None if inflight <= self.min_cwnd() => {
                self.probe_rtt_done = Some(now + PROBE_RTT_TIME);
                self.probe_rtt_round_done = false;
                self.next_round_delivered = rs.delivered;
            }
            None => {}
            Some(done) => {
                if self.round_start {
                    self.probe_rtt_round_done = true;
                }
                if self.probe_rtt_round_done && now >= done {
                    self.min_rtt_stamp = Some(now);
                    self.cwnd = self.cwnd.max(self.prior_cwnd);
                    self.prior_cwnd = 0;
                    if self.filled_pipe {
                        self.enter_probe_bw(now);
                    } else {
                        self.mode = Mode::Startup;
                        self.pacing_gain = HIGH_GAIN;
                        self.cwnd_gain = HIGH_GAIN;
                    }
                }
            }
        }
    }

    fn set_pacing_rate(&mut self) {
        let bw = self.btl_bw.get();
        if bw <= 0.0 {
            return;
        }
        let rate = self.pacing_gain * bw * PACING_MARGIN;
        // In Startup the rate only grows (a low early sample must not
        // slow the ramp).
        if self.filled_pipe || rate > self.pacing_rate {
            self.pacing_rate = rate;
        }
    }

    fn set_cwnd(&mut self, rs: &RateSample, inflight: usize) {
        let acked = rs.newly_delivered as usize;
        let target = self.target_cwnd(self.cwnd_gain);
        if self.conservation_until.is_some() {
            // Packet conservation: what was delivered may be sent again.
            self.cwnd = self.cwnd.max(inflight + acked);
        } else if self.filled_pipe {
            self.cwnd = (self.cwnd + acked).min(target);
        } else if self.cwnd < target || rs.delivered < (10 * self.mss) as u64 {
            self.cwnd += acked;
        }
        self.cwnd = self.cwnd.max(self.min_cwnd());
        if self.mode == Mode::ProbeRtt {
            self.cwnd = self.cwnd.min(self.min_cwnd());
        }
    }

    /// A loss episode began (fast recovery) with `inflight` bytes in the
    /// network: the first round sends only what is delivered; the model
    /// is not cut.
    pub fn on_congestion(&mut self, inflight: usize) {
        self.prior_cwnd = self.prior_cwnd.max(self.cwnd);
        self.cwnd = inflight.max(self.min_cwnd());
        self.conservation_until = Some(self.round_count + 1);
        self.lost_in_round = true;
    }

    /// The recovery ended: the window from before it comes back.
    pub fn on_recovered(&mut self) {
        if self.prior_cwnd > 0 {
            self.cwnd = self.cwnd.max(self.prior_cwnd);
            self.prior_cwnd = 0;
        }
        self.conservation_until = None;
    }

    /// A retransmission timeout: one segment, growing back by what is
    /// delivered; the model stays.
    pub fn on_timeout(&mut self) {
        self.prior_cwnd = self.prior_cwnd.max(self.cwnd);
        self.cwnd = self.mss;
        self.conservation_until = Some(self.round_count + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(delivered: u64, prior: u64, rate: f64, rtt_ms: u64, newly: u64) -> RateSample {
        RateSample {
            delivery_rate: rate,
            delivered,
            prior_delivered: prior,
            newly_delivered: newly,
            interval: Duration::from_millis(rtt_ms),
            rtt: Some(Duration::from_millis(rtt_ms)),
            app_limited: false,
        }
    }

    #[test]
    fn startup_leaves_once_the_bandwidth_stops_growing_and_cruises_at_it() {
        // A path of 1,000,000 B/s and 20 ms: each round delivers the
        // window, the rate doubling until it meets the bottleneck.
        let mut b = Bbr::new(1000);
        let mut now = Instant::now();
        let (mut delivered, mut rate) = (0u64, 100_000.0f64);
        for _ in 0..30 {
            now += Duration::from_millis(20);
            let prior = delivered;
            let got = (rate * 0.02) as u64;
            delivered += got;
            b.on_sample(now, &sample(delivered, prior, rate, 20, got), 0, false);
            rate = (rate * 2.0).min(1_000_000.0);
        }
        assert_eq!(b.mode(), Mode::ProbeBw, "{b:?}");
        assert!((b.bandwidth() - 1_000_000.0).abs() < 1.0);
        // About two BDPs (2 × 20,000 B) plus the allowance.
        assert!(
            b.window() >= 40_000 && b.window() <= 50_000,
            "{}",
            b.window()
        );
        let pace = b.pacing_rate(Duration::from_millis(20));
        assert!(pace > 700_000.0 && pace < 1_300_000.0, "{pace}");
    }

    #[test]
    fn random_loss_does_not_shrink_the_model() {
        let mut b = Bbr::new(1000);
        let now = Instant::now();
        b.on_sample(now, &sample(50_000, 0, 1_000_000.0, 20, 50_000), 0, false);
        let bw = b.bandwidth();
        b.on_congestion(30_000);
        b.on_recovered();
        assert_eq!(b.bandwidth(), bw);
        assert!(b.window() >= 30_000);
    }
}
