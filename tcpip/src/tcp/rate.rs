//! Delivery rate estimation: how fast the path delivered data, sampled on
//! every ACK from the segments it acknowledged, for model-based
//! congestion control (BBR).
//!
//! Read first: draft-cheng-iccrg-delivery-rate-estimation §3 (per-packet
//! state at transmission: `delivered`, `delivered_time`,
//! `first_sent_time`, `is_app_limited`; the rate sample is the data
//! delivered between the packet's send and its ACK over the longer of the
//! send and ACK intervals), §3.4 (application-limited periods).

use std::time::{Duration, Instant};

/// The connection's delivery state when a segment left (its snapshot).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxSnap {
    /// Bytes delivered when it was sent.
    pub delivered: u64,
    /// When the last of those bytes was delivered.
    pub delivered_at: Instant,
    /// Send time of the segment delivered last before it was sent (the
    /// start of its send interval).
    pub first_sent: Instant,
    /// Sent while the application had nothing more to send.
    pub app_limited: bool,
}

/// One rate sample (per ACK that delivered data).
#[derive(Debug, Clone, Copy)]
pub struct RateSample {
    /// Bytes per second delivered over the sample's interval.
    pub delivery_rate: f64,
    /// Bytes the connection has delivered in all, now.
    pub delivered: u64,
    /// [`RateSample::delivered`] when the sampled segment was sent (a
    /// round trip ends when this reaches the mark of its start).
    pub prior_delivered: u64,
    /// Bytes this ACK delivered (cumulatively or by SACK).
    pub newly_delivered: u64,
    /// The sample's interval.
    pub interval: Duration,
    /// Round-trip time of the sampled segment (none if it was
    /// retransmitted: which copy arrived is unknown).
    pub rtt: Option<Duration>,
    /// The sampled segment was sent in an application-limited period: the
    /// rate says little about the path's capacity unless it is higher
    /// than what is known.
    pub app_limited: bool,
}

/// The connection-level delivery state.
#[derive(Debug, Clone, Default)]
pub(crate) struct RateState {
    delivered: u64,
    delivered_at: Option<Instant>,
    first_sent: Option<Instant>,
    /// `delivered` mark that ends the application-limited period (0: none).
    app_limited_until: u64,
    /// The most recently sent segment this ACK delivered: its snapshot,
    /// send time and whether it was retransmitted.
    best: Option<(TxSnap, Instant, bool)>,
    newly: u64,
    /// The latest non-zero delivery rate, bytes per second.
    last_rate: f64,
}

impl RateState {
    /// The snapshot for a segment sent at `now`; `idle` when nothing was in
    /// flight (the send and ACK intervals restart, §3.2).
    pub(crate) fn snapshot(&mut self, now: Instant, idle: bool) -> TxSnap {
        if idle || self.delivered_at.is_none() {
            self.first_sent = Some(now);
            self.delivered_at = Some(now);
        }
        TxSnap {
            delivered: self.delivered,
            delivered_at: self.delivered_at.unwrap_or(now),
            first_sent: self.first_sent.unwrap_or(now),
            app_limited: self.app_limited_until > 0,
        }
    }

    /// `len` bytes of a segment sent at `xmit` with `snap` were delivered
    /// (cumulatively or by SACK) at `now`.
    pub(crate) fn on_delivered(
        &mut self,
        snap: TxSnap,
        xmit: Instant,
        len: usize,
        retrans: bool,
        now: Instant,
    ) {
        self.delivered += len as u64;
        self.newly += len as u64;
        self.delivered_at = Some(now);
        let newer = self.best.is_none_or(|(b, bx, _)| {
            snap.delivered > b.delivered || (snap.delivered == b.delivered && xmit >= bx)
        });
        if newer {
            self.best = Some((snap, xmit, retrans));
            // The next send interval starts at this segment's send.
            self.first_sent = Some(xmit);
        }
    }

    /// The application ran out of data with `pipe` bytes in flight: samples
    /// until those are delivered are application-limited (§3.4).
    pub(crate) fn mark_app_limited(&mut self, pipe: usize) {
        self.app_limited_until = (self.delivered + pipe as u64).max(1);
    }

    /// The latest delivery rate measured, bytes per second (0 before one).
    pub(crate) fn last_rate(&self) -> f64 {
        self.last_rate
    }

    /// The sample of the ACK just processed, if it delivered data.
    pub(crate) fn take_sample(&mut self, now: Instant) -> Option<RateSample> {
        let newly = std::mem::take(&mut self.newly);
        let (snap, xmit, retrans) = self.best.take()?;
        if self.app_limited_until > 0 && self.delivered > self.app_limited_until {
            self.app_limited_until = 0;
        }
        let send_elapsed = xmit.saturating_duration_since(snap.first_sent);
        let ack_elapsed = self
            .delivered_at
            .unwrap_or(now)
            .saturating_duration_since(snap.delivered_at);
        let interval = send_elapsed.max(ack_elapsed);
        let bytes = self.delivered.saturating_sub(snap.delivered);
        let rtt = (!retrans).then(|| now.saturating_duration_since(xmit));
        // An interval shorter than the round trip would overstate the rate
        // (ACK compression); such samples carry no rate (§3.3).
        let too_short = interval.is_zero() || rtt.is_some_and(|r| interval < r / 2);
        let delivery_rate = if too_short {
            0.0
        } else {
            bytes as f64 / interval.as_secs_f64()
        };
        if delivery_rate > 0.0 {
            self.last_rate = delivery_rate;
        }
        Some(RateSample {
            delivery_rate,
            delivered: self.delivered,
            prior_delivered: snap.delivered,
            newly_delivered: newly,
            interval,
            rtt,
            app_limited: snap.app_limited,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_flight_samples_its_rate() {
        // 10 segments of 1000 bytes, one per ms, each ACKed 20 ms after it
        // left: 1000 bytes per ms once the pipe is full.
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut r = RateState::default();
        let mut snaps = Vec::new();
        for i in 0..80u64 {
            snaps.push((r.snapshot(ms(i), i == 0), ms(i)));
            if i >= 20 {
                let (s, x) = snaps[(i - 20) as usize];
                r.on_delivered(s, x, 1000, false, ms(i));
                let rs = r.take_sample(ms(i)).expect("a sample");
                assert_eq!(rs.rtt, Some(Duration::from_millis(20)));
                // Once the sampled segments left after the first ACKs.
                if i >= 45 {
                    let rate = rs.delivery_rate;
                    assert!((rate - 1_000_000.0).abs() < 60_000.0, "{i}: {rate}");
                }
            }
        }
    }

    #[test]
    fn app_limited_marks_the_samples_until_the_flight_is_delivered() {
        let t0 = Instant::now();
        let mut r = RateState::default();
        let s = r.snapshot(t0, true);
        r.mark_app_limited(1000);
        let s2 = r.snapshot(t0, false);
        assert!(!s.app_limited && s2.app_limited);
        r.on_delivered(s2, t0, 1000, false, t0 + Duration::from_millis(10));
        assert!(
            r.take_sample(t0 + Duration::from_millis(10))
                .expect("sample")
                .app_limited
        );
        let s3 = r.snapshot(t0 + Duration::from_millis(10), true);
        r.on_delivered(s3, t0, 1000, false, t0 + Duration::from_millis(20));
        assert!(r.take_sample(t0 + Duration::from_millis(20)).is_some());
        let s4 = r.snapshot(t0 + Duration::from_millis(20), false);
        assert!(!s4.app_limited, "the period ended with its flight");
        assert!(r.take_sample(t0).is_none(), "one sample per ACK");
    }
}
