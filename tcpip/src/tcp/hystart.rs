//! HyStart: leave slow start when the window fills the path, before the
//! doubling window overflows the bottleneck's queue.
//!
//! Read first: Ha and Rhee, "Taming the elephants: new TCP slow start"
//! (HyStart, 2011); Linux `net/ipv4/tcp_cubic.c` (`hystart_update`); RFC
//! 9406 §4.2 (HyStart++'s delay test).
//!
//! Two tests, as Linux has them:
//! - **ACK train:** ACKs keep coming without a gap for longer than the
//!   path's minimum RTT since the round began. A paced sender's round
//!   below the bandwidth-delay product leaves a gap; one above it keeps
//!   the bottleneck busy, so its ACKs form one train. This fires one
//!   minimum RTT into the first round that starts above the BDP, with the
//!   window by then up to three BDPs. (A test that fired earlier, on the
//!   window against the train's rate times the RTT, was tried and
//!   dropped: a flow that joins a busy bottleneck sees its own small
//!   share as the rate, leaves slow start at that share, and then gets a
//!   quarter of the link against a kernel flow.)
//! - **Delay:** the minimum of a round's first eight RTT samples is above
//!   the connection's minimum by `clamp(min_rtt / 8, 4 ms, 16 ms)`: a
//!   queue is building (one round later than the train, but it also sees
//!   a queue that cross traffic fills).
//!
//! Without them, slow start doubles the window until the queue drops a
//! whole round's excess: on a 40 ms path with a queue of one BDP that is
//! thousands of segments lost at once and a long recovery. As Linux does,
//! a detection ends slow start at once (`ssthresh = cwnd`), and CUBIC's
//! growth takes over from there.

use super::seq::Seq;
use std::time::{Duration, Instant};

/// RTT samples a round needs before its minimum counts.
const MIN_SAMPLES: u32 = 8;
/// The smallest and largest RTT increase taken as a queue building.
const THRESH_MIN: Duration = Duration::from_millis(4);
const THRESH_MAX: Duration = Duration::from_millis(16);
/// The longest gap between ACKs of one train (Linux's `hystart_ack_delay`
/// for a paced sender, at most 1 ms).
const ACK_GAP: Duration = Duration::from_millis(1);
/// No detection below this window, in segments (Linux's
/// `hystart_low_window`).
pub const LOW_WINDOW: usize = 16;

/// Per-connection HyStart state.
#[derive(Debug, Clone, Default)]
pub struct HyStart {
    /// The round ends when this is acknowledged.
    end_seq: Option<Seq>,
    /// When the round's first ACK came.
    round_start: Option<Instant>,
    /// When the train's latest ACK came.
    last_ack: Option<Instant>,
    /// Minimum RTT seen in this round.
    round_min: Option<Duration>,
    /// RTT samples taken in this round (up to [`MIN_SAMPLES`]).
    samples: u32,
    /// Smallest RTT of the connection.
    delay_min: Option<Duration>,
    /// Detection fired; off until the next [`HyStart::restart`].
    found: bool,
}

impl HyStart {
    /// Arms detection again (a timeout sent the window back to slow start).
    pub fn restart(&mut self) {
        self.found = false;
        self.end_seq = None;
    }

    /// Whether detection fired since the last restart.
    pub fn found(&self) -> bool {
        self.found
    }

    /// An RTT sample `rtt` from an ACK of `snd_una` arriving at `now`,
    /// while `snd_max` is the highest sequence sent. `look` says whether
    /// the window is in slow start and large enough to look. Returns `true`
    /// once, when a test fires: slow start should end.
    pub fn on_rtt(
        &mut self,
        now: Instant,
        rtt: Duration,
        snd_una: Seq,
        snd_max: Seq,
        look: bool,
    ) -> bool {
        let rtt = rtt.max(Duration::from_micros(1));
        let min = *self.delay_min.get_or_insert(rtt);
        self.delay_min = Some(min.min(rtt));
        if self.found || !look {
            return false;
        }
        if self.end_seq.is_none_or(|end| snd_una > end) {
            // A new round.
            self.end_seq = Some(snd_max);
            self.round_start = Some(now);
            self.last_ack = Some(now);
            self.round_min = None;
            self.samples = 0;
        }
        let base = self.delay_min.unwrap_or(rtt);
        if let (Some(start), Some(last)) = (self.round_start, self.last_ack) {
            if now.saturating_duration_since(last) <= ACK_GAP {
                self.last_ack = Some(now);
                let train = now.saturating_duration_since(start);
                if train > base + ACK_GAP {
                    self.found = true;
                    return true;
                }
            }
        }
        let round_min = self.round_min.map_or(rtt, |m| m.min(rtt));
        self.round_min = Some(round_min);
        if self.samples < MIN_SAMPLES {
            self.samples += 1;
            return false;
        }
        let thresh = (base / 8).clamp(THRESH_MIN, THRESH_MAX);
        if round_min > base + thresh {
            self.found = true;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn t0() -> Instant {
        use std::sync::OnceLock;
        static T: OnceLock<Instant> = OnceLock::new();
        *T.get_or_init(Instant::now)
    }

    /// A round of ACKs: from `at` ms on, `n` ACKs `gap_us` apart, each of
    /// `mss` bytes and with RTT `rtt`. Returns
    /// the SND.UNA after it and whether the round fired.
    #[allow(clippy::too_many_arguments)]
    fn round(
        h: &mut HyStart,
        at: u64,
        una: u32,
        rtt: Duration,
        n: u32,
        gap_us: u64,
        mss: u32,
    ) -> (u32, bool) {
        let start = t0() + ms(at);
        let end = Seq(una + n * mss);
        let mut fired = false;
        for i in 0..n {
            let now = start + Duration::from_micros(gap_us * u64::from(i));
            let una = Seq(una + (i + 1) * mss);
            fired |= h.on_rtt(now, rtt, una, end, true);
        }
        (una + n * mss, fired)
    }

    #[test]
    fn a_growing_round_trip_ends_slow_start_once() {
        // ACKs 2 ms apart: no train; the delay test alone.
        let mut h = HyStart::default();
        let (u, f) = round(&mut h, 0, 0, ms(40), 20, 2000, 1000);
        assert!(!f);
        let (u, f) = round(&mut h, 100, u, ms(44), 20, 2000, 1000);
        assert!(!f, "4 ms is under 40/8");
        let (u, f) = round(&mut h, 200, u, ms(46), 20, 2000, 1000);
        assert!(f, "6 ms is over 5 ms");
        assert!(h.found());
        let (u, f) = round(&mut h, 300, u, ms(60), 20, 2000, 1000);
        assert!(!f, "fires once");
        h.restart();
        assert!(round(&mut h, 400, u, ms(60), 20, 2000, 1000).1);
    }

    #[test]
    fn a_train_shorter_than_the_round_trip_does_not_fire() {
        // 1000-byte ACKs 100 µs apart for 30 ms of a 40 ms path: the
        // window is below the BDP (or this flow's share of a busy link).
        let mut h = HyStart::default();
        let (u, f) = round(&mut h, 0, 0, ms(40), 300, 100, 1000);
        assert!(!f);
        assert!(!round(&mut h, 100, u, ms(40), 350, 100, 1000).1);
    }

    #[test]
    fn a_train_longer_than_the_round_trip_ends_slow_start() {
        // The ACKs run without a gap for 45 ms of a 40 ms path.
        let mut h = HyStart::default();
        assert!(!round(&mut h, 0, 0, ms(40), 300, 100, 1).1);
        assert!(round(&mut h, 100, 300, ms(40), 450, 100, 1).1);
    }

    #[test]
    fn a_few_slow_samples_or_no_window_to_look_at_do_not_fire() {
        let mut h = HyStart::default();
        let (u, _) = round(&mut h, 0, 0, ms(40), 20, 2000, 1000);
        // Seven late samples and one on time: the round's minimum is 40.
        let t = t0() + ms(100);
        let end = Seq(u + 20_000);
        let mut fired = false;
        for i in 0..9u32 {
            let rtt = if i == 7 { ms(40) } else { ms(80) };
            let now = t + ms(2 * u64::from(i));
            fired |= h.on_rtt(now, rtt, Seq(u + 1000 * (i + 1)), end, true);
        }
        assert!(!fired);
        // Not in slow start (or too small a window): never.
        let mut fired = false;
        for i in 0..400u32 {
            let now = t + ms(100) + Duration::from_micros(100 * u64::from(i));
            fired |= h.on_rtt(now, ms(90), Seq(u + 20_000 + i), Seq(u + 90_000), false);
        }
        assert!(!fired);
    }
}
