//! Proportional Rate Reduction during fast recovery.
//!
//! Read first: RFC 6937 §3 (the algorithm: RecoverFS, prr_delivered,
//! prr_out, the proportional part while pipe > ssthresh and the
//! slow-start reduction bound (PRR-SSRB) below it), §3.1 (DeliveredData
//! counts SACKed bytes too; without SACK each duplicate ACK is one MSS).
//!
//! PRR spreads the window reduction over the recovery round: one segment
//! leaves for about every 1/β delivered, instead of a silence until pipe
//! falls below the new window and then a burst.

/// PRR state for one recovery episode (bytes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prr {
    /// FlightSize when recovery began (RecoverFS).
    recover_fs: usize,
    /// The window to reduce to (ssthresh).
    ssthresh: usize,
    /// Bytes delivered to the receiver since recovery began.
    delivered: usize,
    /// Bytes sent since recovery began.
    out: usize,
    /// Bytes that may be sent now (sndcnt, less what was sent since).
    allowance: usize,
}

impl Prr {
    /// Starts an episode (RFC 6937 §3 "on entering recovery"); the fast
    /// retransmit may leave at once, even when recovery began on a timer
    /// rather than an ACK.
    pub(crate) fn new(recover_fs: usize, ssthresh: usize, mss: usize) -> Self {
        Prr {
            recover_fs: recover_fs.max(1),
            ssthresh,
            delivered: 0,
            out: 0,
            allowance: mss,
        }
    }

    /// On every ACK in recovery (RFC 6937 §3 "on every ACK"):
    /// `delivered` bytes newly reached the receiver, `pipe` is what the
    /// network still holds after the ACK.
    pub(crate) fn on_ack(&mut self, delivered: usize, pipe: usize, mss: usize) {
        self.delivered += delivered;
        let sndcnt = if pipe > self.ssthresh {
            // Proportional rate reduction.
            let target = (self.delivered * self.ssthresh).div_ceil(self.recover_fs);
            target.saturating_sub(self.out)
        } else {
            // PRR-SSRB: grow back towards ssthresh like slow start.
            let limit = self.delivered.saturating_sub(self.out).max(delivered) + mss;
            (self.ssthresh - pipe).min(limit)
        };
        // The fast retransmit itself always goes out (RFC 6937 §3).
        self.allowance = if self.out == 0 && sndcnt == 0 {
            mss
        } else {
            sndcnt
        };
    }

    /// Whether a segment may be sent now.
    pub(crate) fn may_send(&self) -> bool {
        self.allowance > 0
    }

    /// `len` bytes were sent.
    pub(crate) fn on_send(&mut self, len: usize) {
        self.out += len;
        self.allowance = self.allowance.saturating_sub(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_segment_per_delivered_beta_then_ssrb() {
        // RFC 6937 Figure 1-like: 20 segments in flight, one lost,
        // ssthresh 14 (β = 0.7): about 0.7 segments leave per delivered.
        let mss = 1000;
        let mut p = Prr::new(20 * mss, 14 * mss, mss);
        assert!(p.may_send(), "entering recovery allows the fast retransmit");
        p.on_ack(mss, 17 * mss, mss);
        assert!(p.may_send(), "the fast retransmit goes out at once");
        p.on_send(mss);
        let mut sent = 1;
        for _ in 2..=10 {
            p.on_ack(mss, 17 * mss, mss);
            while p.may_send() {
                p.on_send(mss);
                sent += 1;
            }
        }
        // 10 delivered → ceil(10 · 14/20) = 7 sent.
        assert_eq!(sent, 7);
        // Below ssthresh (PRR-SSRB): delivered − out (11 − 7) + 1 MSS.
        p.on_ack(mss, 5 * mss, mss);
        let mut burst = 0;
        while p.may_send() {
            p.on_send(mss);
            burst += 1;
        }
        assert_eq!(burst, 5);
    }
}
