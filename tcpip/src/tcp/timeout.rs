//! What a connection does when its timers fire (RFC 6298 retransmission
//! timeout, RFC 8985 §7 tail loss probe, RFC 8985 §6.2 reordering timer,
//! RFC 1122 §4.2.3.6 keepalive, TIME-WAIT and FIN-WAIT-2 expiry), and how
//! the timers are armed.

use super::{rack, State, Tcb, Timer};
use crate::error::Error;
use std::time::{Duration, Instant};

impl Tcb {
    /// Starts the keepalive idle timer, if keepalive is on.
    pub(super) fn arm_keepalive(&mut self, now: Instant) {
        if let Some(idle) = self.cfg.keepalive {
            self.timers.set(Timer::Keepalive, now + idle);
            self.keepalive_sent = 0;
        }
    }

    /// Runs expired timers.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.timers.expired(Timer::DelayedAck, now) && self.ack_pending {
            self.ack_now = true;
        }
        if self.timers.expired(Timer::Rto, now) {
            self.on_rto(now);
        }
        if self.timers.expired(Timer::Reorder, now) {
            self.detect_losses(now);
            // Losses found without an ACK: PRR releases the next segment as
            // for an ACK that delivered nothing.
            let (pipe, mss) = (self.pipe(), self.payload_mss());
            if let Some(p) = &mut self.prr {
                p.on_ack(0, pipe, mss);
            }
        }
        if self.timers.expired(Timer::Probe, now) {
            self.on_probe_timeout(now);
        }
        if self.timers.expired(Timer::Keepalive, now) {
            self.on_keepalive(now);
        }
        // Pacing: nothing to do but let the output run again.
        let _ = self.timers.expired(Timer::Pace, now);
        if self.timers.expired(Timer::Shrink, now) {
            self.rx.shrink();
            self.tx.shrink();
            self.sent.shrink();
            self.ooo.shrink();
        }
        if self.timers.expired(Timer::Linger, now) {
            match self.state {
                // The last ACK goes out before the connection is forgotten.
                State::TimeWait if self.ack_now => self.timers.set(Timer::Linger, now),
                State::TimeWait | State::FinWait2 => self.enter_closed(),
                _ => {}
            }
        }
    }

    fn on_rto(&mut self, now: Instant) {
        let data_end = self.tx_base + self.tx.len();
        let persist = self.is_synchronized()
            && self.snd_max == self.snd_una
            && self.snd_wnd == 0
            && (data_end > self.snd_nxt || self.fin_pending());
        if persist {
            // Zero-window probe (RFC 9293 §3.8.6.1).
            self.force_probe = true;
            self.backoff = (self.backoff + 1).min(10);
            return;
        }
        let outstanding = self.snd_max > self.snd_una
            || matches!(self.state, State::SynSent | State::SynReceived);
        if !outstanding {
            return;
        }
        self.retries += 1;
        let limit = match self.state {
            State::SynSent | State::SynReceived => self.cfg.syn_retries,
            _ => self.cfg.data_retries,
        };
        if self.retries > limit {
            let err = self.soft_error.unwrap_or(Error::TimedOut);
            if self.state == State::SynReceived && self.passive {
                self.enter_closed();
                self.app_closed = self.listener.is_some() || self.app_closed;
                return;
            }
            self.fail(err);
            return;
        }
        self.backoff = (self.backoff + 1).min(16);
        let flight = self.snd_max - self.snd_una;
        if self.is_synchronized() {
            self.cc.on_timeout(flight);
        }
        if self.backoff >= 2 {
            // Guard against a receiver that reneged on SACKed data.
            self.sent.clear_sacks();
        }
        self.recovery = None;
        self.prr = None;
        self.undo = None;
        self.dsack_undo = None;
        self.tlp = None;
        self.probe_due = false;
        self.timers.stop(Timer::Probe);
        self.timers.stop(Timer::Reorder);
        self.recover_prev = self.snd_max;
        self.dupacks = 0;
        self.rtt_seq = None;
        if self.is_synchronized() {
            // RFC 8985 §6.3: the first segment and every one older than
            // RACK.rtt + reo_wnd are lost; retransmitted in order, within
            // the one-segment window.
            let reo = self.rack.reo_wnd(true, false, self.rtt.srtt());
            self.sent.mark_lost_on_rto(self.rack.rtt() + reo, now);
        } else {
            self.snd_nxt = self.iss;
        }
        self.timers
            .set(Timer::Rto, now + self.rtt.rto_backoff(self.backoff));
        self.rto_count += 1;
        self.loss_since.get_or_insert(now);
    }

    fn on_keepalive(&mut self, now: Instant) {
        if !self.is_synchronized() || self.state == State::TimeWait {
            return;
        }
        if self.keepalive_sent >= self.cfg.keepalive_probes {
            self.fail(Error::TimedOut);
            return;
        }
        if self.snd_max == self.snd_una {
            self.keepalive_due = true;
            self.keepalive_sent += 1;
        }
        self.timers
            .set(Timer::Keepalive, now + self.cfg.keepalive_interval);
    }

    pub(super) fn arm_rto(&mut self, now: Instant) {
        if !self.timers.is_set(Timer::Rto) {
            self.timers
                .set(Timer::Rto, now + self.rtt.rto_backoff(self.backoff));
        }
    }

    /// Arms the tail loss probe (RFC 8985 §7.2) after new data was sent or
    /// an ACK arrived: only with SACK, with an RTT sample, outside loss
    /// recovery, with no probe outstanding, and when it would fire before
    /// the RTO.
    pub(super) fn arm_probe(&mut self, now: Instant) {
        let outstanding = self.snd_max - self.snd_una;
        let open = self.recovery.is_none()
            && self.snd_una >= self.recover_prev
            && self.sent.lost_bytes() == 0;
        if !self.sack_ok
            || !open
            || self.tlp.is_some()
            || !self.rtt.has_sample()
            || outstanding == 0
            || !self.is_synchronized()
        {
            self.timers.stop(Timer::Probe);
            return;
        }
        let at = now + rack::pto(self.rtt.srtt(), outstanding <= self.payload_mss());
        match self.timers.get(Timer::Rto) {
            Some(rto) if rto <= at => self.timers.stop(Timer::Probe),
            _ => self.timers.set(Timer::Probe, at),
        }
    }

    /// The probe timer fired (RFC 8985 §7.3): the next segment is a probe,
    /// and the RTO restarts from now.
    fn on_probe_timeout(&mut self, now: Instant) {
        if self.snd_max == self.snd_una || self.tlp.is_some() || !self.is_synchronized() {
            return;
        }
        self.probe_due = true;
        self.timers
            .set(Timer::Rto, now + self.rtt.rto_backoff(self.backoff));
    }

    /// Enables or disables keepalive (`SO_KEEPALIVE` + `TCP_KEEPIDLE`).
    pub(crate) fn set_keepalive(&mut self, idle: Option<Duration>, now: Instant) {
        self.cfg.keepalive = idle;
        match idle {
            Some(_) => self.arm_keepalive(now),
            None => self.timers.stop(Timer::Keepalive),
        }
    }

    /// Sets the probe interval and count (`TCP_KEEPINTVL`, `TCP_KEEPCNT`);
    /// they apply from the next probe on.
    pub(crate) fn set_keepalive_probes(&mut self, interval: Duration, probes: u32) {
        self.cfg.keepalive_interval = interval.max(Duration::from_secs(1));
        self.cfg.keepalive_probes = probes.max(1);
    }
}
