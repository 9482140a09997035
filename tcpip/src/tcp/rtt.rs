//! Round-trip time estimation and the retransmission timeout.
//!
//! Read first: RFC 6298 §2–§5 (SRTT, RTTVAR, RTO, backoff), RFC 7323 §4
//! (RTTM with timestamps), Karn's algorithm (RFC 6298 §3).

use std::time::Duration;

/// RFC 6298 estimator.
#[derive(Debug, Clone)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
    min_rto: Duration,
    max_rto: Duration,
    latest: Duration,
}

/// Clock granularity G (RFC 6298 §2).
const G: Duration = Duration::from_millis(1);

impl RttEstimator {
    /// Creates an estimator with the RFC 6298 initial RTO of one second.
    pub fn new(min_rto: Duration, max_rto: Duration) -> Self {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            rto: Duration::from_secs(1).max(min_rto),
            min_rto,
            max_rto,
            latest: Duration::ZERO,
        }
    }

    /// The RTT variation (RFC 6298's RTTVAR).
    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }

    /// Feeds one RTT measurement (RFC 6298 §2.2–§2.3).
    pub fn sample(&mut self, r: Duration) {
        self.latest = r;
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                let err = srtt.max(r) - srtt.min(r); // abs_diff needs Rust 1.81
                                                     // RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R'|; SRTT <- 7/8 SRTT + 1/8 R'
                self.rttvar = (self.rttvar * 3 + err) / 4;
                self.srtt = Some((srtt * 7 + r) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        // RTO <- SRTT + max(G, K*RTTVAR), K = 4, with the lower bound on
        // the variation term rather than on the sum, as Linux bounds it
        // (`rttvar_us >= tcp_rto_min`): on a steady 200 ms path RFC 6298's
        // clamp gives an RTO of 201 ms, which the repair of any hole by
        // fast recovery (an extra round trip) outlasts.
        self.rto = (srtt + G.max(self.rttvar * 4).max(self.min_rto)).min(self.max_rto);
    }

    /// The current RTO before backoff.
    pub fn rto(&self) -> Duration {
        self.rto
    }

    /// The RTO after `backoff` doublings (RFC 6298 §5.5), capped.
    pub fn rto_backoff(&self, backoff: u32) -> Duration {
        self.rto
            .saturating_mul(1u32 << backoff.min(16))
            .min(self.max_rto)
    }

    /// Smoothed RTT, or the initial guess.
    pub fn srtt(&self) -> Duration {
        self.srtt.unwrap_or(Duration::from_millis(100))
    }

    /// Whether any sample was taken.
    pub fn has_sample(&self) -> bool {
        self.srtt.is_some()
    }

    /// Most recent sample.
    pub fn latest(&self) -> Duration {
        self.latest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6298_first_and_second_sample() {
        let mut e = RttEstimator::new(Duration::from_millis(200), Duration::from_secs(60));
        assert_eq!(e.rto(), Duration::from_secs(1));
        e.sample(Duration::from_millis(100));
        // SRTT = 100, RTTVAR = 50, RTO = 100 + 200 = 300
        assert_eq!(e.rto(), Duration::from_millis(300));
        e.sample(Duration::from_millis(100));
        // RTTVAR = 37.5, SRTT = 100: 4 × RTTVAR is below the 200 ms floor
        // of the variation term, RTO = 100 + 200 = 300 (as Linux)
        assert_eq!(e.rto(), Duration::from_millis(300));
        assert_eq!(e.rto_backoff(2), Duration::from_millis(1200));
        // A steady long path: the RTO stays 200 ms above the RTT.
        for _ in 0..50 {
            e.sample(Duration::from_millis(200));
        }
        assert!(e.rto() >= Duration::from_millis(399), "{:?}", e.rto());
        assert_eq!(e.rto_backoff(30), Duration::from_secs(60));
    }
}
