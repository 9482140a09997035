//! Segment arrival (RFC 9293 §3.10.7).
//!
//! Read first: RFC 9293 §3.10.7.3 (SYN-SENT), §3.10.7.4 (other states:
//! the eight checks in order), §3.10.7.4 "first check sequence number"
//! (acceptability table), RFC 5961 §3–§5 (RST/SYN challenge ACKs, ACK
//! acceptability), RFC 7323 §5 (PAWS), §4.3 (TS.Recent update), RFC 6675
//! §5 (entering loss recovery), RFC 6582 §3.2 (NewReno partial ACKs),
//! RFC 8985 §6.2 (RACK on every ACK), §7.4 (TLP episodes), RFC 2883 §4
//! (sending and reading DSACK), RFC 6937 (PRR),
//! RFC 1337 (ignore RST in TIME-WAIT).

use super::{ev, Prr, Seq, State, Tcb, Timer};
use crate::error::Error;
use crate::wire::tcp::{Flags, Repr};
use std::time::{Duration, Instant};

/// DupThresh (RFC 5681 §3.2, RFC 6675 §2).
const DUP_THRESH: u32 = 3;
/// Challenge ACKs per second per connection (RFC 5961 §7).
const CHALLENGE_ACK_LIMIT: u32 = 10;

impl Tcb {
    /// Processes one arriving segment for this connection.
    pub(crate) fn process(&mut self, now: Instant, seg: &Repr<'_>) {
        match self.state {
            State::Closed | State::Listen => {}
            State::SynSent => self.process_syn_sent(now, seg),
            _ => self.process_synchronized(now, seg),
        }
    }

    fn process_syn_sent(&mut self, now: Instant, seg: &Repr<'_>) {
        let f = seg.flags;
        let ack = Seq(seg.ack);
        // First: the ACK bit.
        let ack_ok = if f.has(Flags::ACK) {
            if ack <= self.iss || ack > self.snd_max {
                if !f.has(Flags::RST) {
                    self.rst_pending = Some((ack, None));
                }
                return;
            }
            true
        } else {
            false
        };
        // Second: RST.
        if f.has(Flags::RST) {
            if ack_ok {
                self.fail(Error::ConnectionRefused);
            }
            return;
        }
        // Fourth: SYN.
        if !f.has(Flags::SYN) {
            return;
        }
        self.irs = Seq(seg.seq);
        self.rcv_nxt = self.irs + 1;
        self.negotiate(&seg.options, true);
        // The window in a SYN is never scaled (RFC 7323 §2.2).
        self.snd_wnd = usize::from(seg.window);
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = Seq(seg.seq);
        self.snd_wl2 = ack;
        if ack_ok {
            self.snd_una = ack;
            self.rtt_sample_syn(now, seg);
            self.backoff = 0;
            self.retries = 0;
            self.timers.stop(Timer::Rto);
            self.state = State::Established;
            self.ack_now = true;
            self.events |= ev::CONNECTED | ev::WRITABLE;
            if self.fin_queued {
                self.state = State::FinWait1;
            }
        } else {
            // Simultaneous open: answer with SYN-ACK (RFC 9293 Figure 8).
            self.state = State::SynReceived;
            self.snd_nxt = self.iss;
        }
    }

    fn rtt_sample_syn(&mut self, now: Instant, seg: &Repr<'_>) {
        if self.backoff > 0 {
            return; // Karn: the SYN was retransmitted.
        }
        if let (true, Some((_, ecr))) = (self.ts_ok, seg.options.timestamp) {
            let d = self.ts_now(now).wrapping_sub(ecr);
            if d < 60_000 {
                self.rtt.sample(Duration::from_millis(u64::from(d.max(1))));
                return;
            }
        }
        if let Some((_, sent)) = self.rtt_seq.take() {
            self.rtt.sample(now.saturating_duration_since(sent));
        }
    }

    fn process_synchronized(&mut self, now: Instant, seg: &Repr<'_>) {
        let f = seg.flags;
        let mut seq = Seq(seg.seq);
        let mut payload = seg.payload;
        let mut fin = f.has(Flags::FIN);

        // A retransmitted SYN while in SYN-RECEIVED: send the SYN-ACK again.
        if self.state == State::SynReceived
            && f.has(Flags::SYN)
            && !f.has(Flags::ACK)
            && seq == self.irs
        {
            self.snd_nxt = self.iss;
            return;
        }

        // PAWS (RFC 7323 §5.3).
        if self.ts_ok && !f.has(Flags::RST) {
            if let Some((val, _)) = seg.options.timestamp {
                if (val.wrapping_sub(self.ts_recent) as i32) < 0 {
                    self.ack_now = true;
                    return;
                }
            }
        }

        // First: sequence number acceptability.
        let seg_len = seg.segment_len();
        let wnd = self.rcv_wnd();
        let nxt = self.rcv_nxt;
        let in_wnd = |s: Seq| nxt <= s && s < nxt + wnd;
        let acceptable = match (seg_len, wnd) {
            (0, 0) => seq == nxt,
            (0, _) => in_wnd(seq),
            (_, 0) => false,
            (n, _) => in_wnd(seq) || in_wnd(seq + (n - 1)),
        };
        if !acceptable {
            if wnd == 0 && seq == nxt && !f.has(Flags::RST) && !f.has(Flags::SYN) {
                // Zero window: still take the ACK (RFC 9293 §3.10.7.4).
                payload = &[];
                fin = false;
            } else {
                if !f.has(Flags::RST) {
                    self.ack_now = true;
                    if !payload.is_empty() && seq + payload.len() <= nxt && self.sack_ok {
                        // Already received: say so (DSACK, RFC 2883 §4).
                        self.dsack = Some((seq, seq + payload.len()));
                    }
                    if self.state == State::TimeWait && fin {
                        self.timers.set(Timer::Linger, now + self.cfg.time_wait);
                    }
                }
                return;
            }
        }
        // Trim to the window: drop what we already have on the left...
        if seq < nxt {
            let skip = (nxt - seq).min(payload.len());
            if skip > 0 && self.sack_ok && !f.has(Flags::RST) {
                // The part we had already (DSACK, RFC 2883 §4.1).
                self.dsack = Some((seq, seq + skip));
            }
            payload = &payload[skip..];
            seq = nxt;
            if f.has(Flags::SYN) {
                // The SYN itself is old; treat as a duplicate.
            }
        }
        // ...and what does not fit on the right.
        if payload.len() > wnd.saturating_sub(seq - nxt) {
            payload = &payload[..wnd.saturating_sub(seq - nxt)];
            fin = false;
        }

        // TS.Recent update (RFC 7323 §4.3).
        if self.ts_ok {
            if let Some((val, _)) = seg.options.timestamp {
                if Seq(seg.seq) <= self.last_ack_sent {
                    self.ts_recent = val;
                }
            }
        }

        // Second: RST (RFC 5961 §3.2).
        if f.has(Flags::RST) {
            if Seq(seg.seq) != self.rcv_nxt {
                self.challenge_ack(now);
                return;
            }
            match self.state {
                State::SynReceived if self.passive => {
                    self.enter_closed();
                    self.app_closed = true;
                }
                State::SynReceived => self.fail(Error::ConnectionRefused),
                State::Established | State::FinWait1 | State::FinWait2 | State::CloseWait => {
                    self.fail(Error::ConnectionReset)
                }
                State::TimeWait => {} // RFC 1337
                _ => self.enter_closed(),
            }
            return;
        }

        // Fourth: SYN in a synchronized state (RFC 5961 §4.2).
        if f.has(Flags::SYN) {
            self.challenge_ack(now);
            return;
        }

        // Fifth: the ACK field.
        if !f.has(Flags::ACK) {
            return;
        }
        self.arm_keepalive(now);
        let ack = Seq(seg.ack);
        if self.state == State::SynReceived {
            if self.snd_una < ack && ack <= self.snd_max {
                self.state = if self.fin_queued {
                    State::FinWait1
                } else {
                    State::Established
                };
                self.snd_wnd = usize::from(seg.window) << self.snd_wscale;
                self.max_snd_wnd = self.snd_wnd;
                self.snd_wl1 = seq;
                self.snd_wl2 = ack;
                self.events |= if self.passive {
                    ev::ACCEPTABLE
                } else {
                    ev::CONNECTED
                };
                self.events |= ev::WRITABLE;
            } else {
                self.rst_pending = Some((ack, None));
                return;
            }
        }
        // RFC 5961 §5.2: acceptable ACK range.
        if ack > self.snd_max {
            self.ack_now = true;
            return;
        }
        if ack < self.snd_una - self.max_snd_wnd.max(1) {
            self.challenge_ack(now);
            return;
        }
        self.process_ack(now, seg, seq, ack, payload.is_empty() && !fin);

        let fin_seq = self.tx_base + self.tx.len();
        let fin_acked = self.fin_queued && self.snd_una > fin_seq;
        match self.state {
            State::FinWait1 if fin_acked => {
                self.state = State::FinWait2;
                if self.app_closed {
                    self.timers
                        .set(Timer::Linger, now + self.cfg.fin_wait2_timeout);
                }
            }
            State::Closing if fin_acked => self.enter_time_wait(now),
            State::LastAck if fin_acked => {
                self.enter_closed();
                return;
            }
            State::TimeWait => {
                if fin {
                    self.ack_now = true;
                    self.timers.set(Timer::Linger, now + self.cfg.time_wait);
                }
                return;
            }
            _ => {}
        }

        // Seventh: segment text.
        let can_receive = matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        );
        if !payload.is_empty() {
            if !can_receive {
                return; // The peer already sent FIN; ignore.
            }
            if self.app_closed {
                // Nobody will read this (Linux answers with a reset).
                self.abort();
                return;
            }
            self.receive_data(now, seq, payload, seg.payload.len());
        }

        // Eighth: FIN.
        if fin && can_receive {
            let fs = seq + payload.len();
            if fs == self.rcv_nxt {
                self.consume_fin(now);
            } else if fs > self.rcv_nxt {
                self.rx_fin_seq = Some(fs);
                self.ack_now = true;
            }
        }
    }

    /// Sends a challenge ACK, at most `CHALLENGE_ACK_LIMIT` per second per
    /// connection (RFC 5961 §7).
    fn challenge_ack(&mut self, now: Instant) {
        match self.challenge {
            Some((start, n)) if now.saturating_duration_since(start) < Duration::from_secs(1) => {
                if n >= CHALLENGE_ACK_LIMIT {
                    return;
                }
                self.challenge = Some((start, n + 1));
            }
            _ => self.challenge = Some((now, 1)),
        }
        self.ack_now = true;
    }

    fn consume_fin(&mut self, now: Instant) {
        self.rcv_nxt = self.rcv_nxt + 1;
        self.rx_fin_seq = None;
        self.fin_received = true;
        self.ack_now = true;
        self.events |= ev::READABLE;
        let fin_seq = self.tx_base + self.tx.len();
        let fin_acked = self.fin_queued && self.snd_una > fin_seq;
        match self.state {
            State::SynReceived | State::Established => self.state = State::CloseWait,
            State::FinWait1 if fin_acked => self.enter_time_wait(now),
            State::FinWait1 => self.state = State::Closing,
            State::FinWait2 => self.enter_time_wait(now),
            _ => {}
        }
    }

    fn receive_data(&mut self, now: Instant, seq: Seq, payload: &[u8], full_len: usize) {
        let off = seq - self.rcv_nxt;
        if off == 0 {
            let n = self.rx.enqueue_slice(payload);
            self.rcv_nxt = self.rcv_nxt + n;
            let mut filled_hole = false;
            while let Some(end) = self.ooo.pop_contiguous(self.rcv_nxt) {
                let extra = end - self.rcv_nxt;
                self.rx.commit(extra);
                self.rcv_nxt = end;
                filled_hole = true;
            }
            self.ooo.remove_below(self.rcv_nxt);
            if let Some(fs) = self.rx_fin_seq {
                if fs == self.rcv_nxt {
                    self.consume_fin(now);
                }
            }
            if !self.readable_notified {
                self.readable_notified = true;
                self.events |= ev::READABLE;
            }
            // Delayed ACK: at least every second full segment (RFC 5681 §4.2),
            // at once when filling a hole (RFC 5681 §4.2, RFC 2018 §4).
            self.unacked_bytes += n;
            if filled_hole
                || !self.ooo.is_empty()
                || self.unacked_bytes >= 2 * self.payload_mss()
                || full_len < self.payload_mss() / 2
                    && self.unacked_bytes > 0
                    && self.rx.free() < self.rx.capacity() / 2
            {
                self.ack_now = true;
            } else {
                self.ack_pending = true;
                if !self.timers.is_set(Timer::DelayedAck) {
                    self.timers
                        .set(Timer::DelayedAck, now + self.cfg.delayed_ack);
                }
            }
        } else {
            // Out of order: place it and remember the range; ACK at once
            // with SACK (RFC 5681 §4.2).
            let end = seq + payload.len();
            if self.sack_ok && self.ooo.containing(seq).is_some_and(|e| e >= end) {
                // A duplicate of out-of-order data (DSACK, RFC 2883 §4.1).
                self.dsack = Some((seq, end));
            }
            if self.ooo.insert(seq, end) {
                // Fits: the payload was trimmed to the window above.
                self.rx.write_at(off, payload);
            }
            self.ack_now = true;
        }
    }

    fn process_ack(&mut self, now: Instant, seg: &Repr<'_>, seq: Seq, ack: Seq, pure: bool) {
        let window = usize::from(seg.window) << self.snd_wscale;
        let mss = self.payload_mss();
        // SACK scoreboard (RFC 6675 §4) and DSACK (RFC 2883 §4): a first
        // block below the cumulative ACK, or inside the second block,
        // reports a duplicate.
        self.rack.start_ack();
        let mut delivered = 0;
        let mut new_sack = false;
        let mut dsack = false;
        if self.sack_ok {
            let o = &seg.options;
            let blocks = &o.sack[..usize::from(o.sack_len).min(o.sack.len())];
            for (k, &(l, r)) in blocks.iter().enumerate() {
                let (l, r) = (Seq(l), Seq(r));
                if k == 0 {
                    let inside_next = blocks
                        .get(1)
                        .is_some_and(|&(l2, r2)| Seq(l2) <= l && r <= Seq(r2));
                    if l < r && (r <= ack || inside_next) {
                        dsack = true;
                        // Duplicates we did not cause by retransmitting
                        // (the network copied a packet) say nothing about
                        // reordering (as Linux's tcp_dsack_seen).
                        self.dsack_dups += ((r - l) / mss.max(1)).max(1) as u64;
                        if self.dsack_dups <= self.retransmits {
                            self.rack.on_dsack(self.snd_una, self.snd_max);
                            self.dsack_undo_step();
                        }
                        continue;
                    }
                }
                if l < r && l >= ack && r <= self.snd_max {
                    let n = self.sent.sack(l, r, &mut self.rack, now);
                    new_sack |= n > 0;
                    delivered += n;
                }
            }
        }
        let una_before = self.snd_una;
        if ack > self.snd_una {
            let acked = ack - self.snd_una;
            let data_acked = (ack - self.tx_base).min(self.tx.len());
            if data_acked > 0 {
                self.tx.consume(data_acked);
                self.tx_base = self.tx_base + data_acked;
                if self.tx.is_empty() {
                    self.note_emptied(now);
                }
                if self.want_write {
                    self.want_write = false;
                    self.events |= ev::WRITABLE;
                }
            }
            let flight_before = self.snd_max - self.snd_una;
            self.snd_una = ack;
            if self.snd_nxt < ack {
                self.snd_nxt = ack;
            }
            delivered += self.sent.ack(ack, &mut self.rack, now);
            if let Some(rtt) = self.take_rtt_sample(now, seg, ack) {
                self.cc.on_rtt(now, rtt, self.snd_una, self.snd_max);
            }
            if let (Some((saved, retx_ts)), Some((_, ecr))) = (&self.undo, seg.options.timestamp) {
                // Eifel detection (RFC 3522): the ACK echoes a timestamp from
                // before the retransmission, so the original arrived: the
                // window comes back; the episode goes on for other holes.
                if (ecr.wrapping_sub(*retx_ts) as i32) < 0 {
                    self.cc = saved.clone();
                    self.prr = None;
                }
                self.undo = None;
            }
            match self.recovery {
                Some(recover) if ack >= recover => {
                    self.recovery = None;
                    self.prr = None;
                    self.dupacks = 0;
                    self.cc.on_recovered();
                }
                Some(_) => {
                    // Partial ACK (RFC 6582 §3.2 step 5): without SACK,
                    // the next hole is the segment at the new SND.UNA.
                    if !self.sack_ok {
                        self.sent.mark_first_lost();
                    }
                }
                None => {
                    let cwnd_limited = flight_before + mss >= self.cc.window();
                    self.cc.on_ack(now, acked, self.rtt.srtt(), cwnd_limited);
                    self.dupacks = 0;
                }
            }
            self.backoff = 0;
            self.retries = 0;
            if self.recovery.is_none() && self.snd_una >= self.recover_prev {
                if let Some(since) = self.loss_since.take() {
                    self.recovery_time += now.saturating_duration_since(since);
                }
            }
            if self.snd_una >= self.snd_max {
                self.timers.stop(Timer::Rto);
            } else {
                self.timers.set(Timer::Rto, now + self.rtt.rto());
            }
        } else if ack == self.snd_una
            && pure
            && self.snd_max > self.snd_una
            && (window == self.snd_wnd || new_sack)
        {
            self.dupacks += 1;
            if !self.sack_ok {
                // RFC 6937 §3.1: without SACK a duplicate ACK stands for
                // one delivered segment.
                delivered += mss;
            }
        }
        if ack == self.snd_una && window == 0 {
            self.retries = 0; // the peer is alive and answering probes
        }

        self.tlp_ack(ack, una_before, dsack, new_sack);

        // Loss detection: RACK (RFC 8985 §6.2) with or without SACK, and
        // fast retransmit on DupThresh duplicate ACKs without SACK
        // (RFC 5681 §3.2).
        if !self.sack_ok
            && self.dupacks == DUP_THRESH
            && self.recovery.is_none()
            && self.snd_una >= self.recover_prev
        {
            self.sent.mark_first_lost();
            self.enter_recovery(now);
        }
        if self.sent.has_sacked()
            || self.recovery.is_some()
            || self.snd_una < self.recover_prev
            || self.timers.is_set(Timer::Reorder)
        {
            self.detect_losses(now);
        }
        if let Some(p) = &mut self.prr {
            p.on_ack(delivered, self.sent.pipe(self.snd_max - self.snd_una), mss);
        }
        // The delivery rate of this ACK, for a model-based controller.
        if let Some(rs) = self.sent.rate.take_sample(now) {
            let inflight = self.pipe();
            let lost = self.sent.lost_bytes() > 0;
            self.cc.on_sample(now, &rs, inflight, lost);
        }
        self.arm_probe(now);

        // Window update (RFC 9293 §3.10.7.4, SND.WL1/SND.WL2 rule).
        if self.snd_wl1 < seq || (self.snd_wl1 == seq && self.snd_wl2 <= ack) {
            self.snd_wnd = window;
            self.max_snd_wnd = self.max_snd_wnd.max(window);
            self.snd_wl1 = seq;
            self.snd_wl2 = ack;
            if window > 0 {
                self.force_probe = false;
                if self.snd_max == self.snd_una && self.timers.is_set(Timer::Rto) {
                    self.timers.stop(Timer::Rto);
                    self.backoff = 0;
                }
            }
        }
    }

    /// RACK loss detection (RFC 8985 §6.2 steps 4–6): marks lost segments,
    /// arms the reordering timer for those that may still arrive, and
    /// starts fast recovery on a first loss.
    pub(crate) fn detect_losses(&mut self, now: Instant) {
        if !self.is_synchronized() {
            return;
        }
        let recovering = self.recovery.is_some() || self.snd_una < self.recover_prev;
        let dupthresh = self.sent.sacked_bytes() >= DUP_THRESH as usize * self.payload_mss();
        let reo = self.rack.reo_wnd(recovering, dupthresh, self.rtt.srtt());
        let scan = self.sent.detect_losses(&self.rack, reo, now);
        match scan.timeout {
            Some(at) => self.timers.set(Timer::Reorder, at),
            None => self.timers.stop(Timer::Reorder),
        }
        if scan.newly_lost > 0 {
            self.timers.stop(Timer::Probe);
            if self.recovery.is_none() && self.snd_una >= self.recover_prev {
                self.enter_recovery(now);
            }
        }
    }

    /// Enters fast recovery (RFC 6675 §5 step 4, RFC 6582 §3.2 step 2):
    /// one window reduction for every loss below the recovery point,
    /// paced by PRR (RFC 6937).
    fn enter_recovery(&mut self, now: Instant) {
        let flight = self.snd_max - self.snd_una;
        self.undo = if self.ts_ok {
            Some((self.cc.clone(), self.ts_now(now)))
        } else {
            None
        };
        self.dsack_undo = Some((self.cc.clone(), 0));
        self.cc.on_congestion(flight);
        self.prr = self
            .cc
            .uses_prr()
            .then(|| Prr::new(flight, self.cc.ssthresh(), self.payload_mss()));
        self.recovery = Some(self.snd_max);
        self.recover_prev = self.snd_max;
        self.rtt_seq = None;
        self.recoveries += 1;
        self.rack.on_recovery();
        self.tlp = None;
        self.loss_since.get_or_insert(now);
    }

    /// One retransmission of the last recovery was a duplicate (DSACK):
    /// when that was the last one outstanding, none was needed, and the
    /// window comes back (RFC 3708 §3, as Linux's undo_retrans).
    fn dsack_undo_step(&mut self) {
        if let Some((saved, n)) = &mut self.dsack_undo {
            if *n == 0 {
                return;
            }
            *n -= 1;
            if *n == 0 {
                if saved.window() > self.cc.window() {
                    self.cc = saved.clone();
                    self.prr = None;
                }
                self.dsack_undo = None;
                self.undo = None;
            }
        }
    }

    /// Ends a tail loss probe episode (RFC 8985 §7.4): a probe of new
    /// data, or one whose duplicate the peer reported (DSACK), needed
    /// nothing; an ACK that covers a retransmitted probe without a DSACK
    /// means the probe repaired a loss, so the window is reduced once; a
    /// pure duplicate ACK means both copies arrived.
    fn tlp_ack(&mut self, ack: Seq, una_before: Seq, dsack: bool, new_sack: bool) {
        let Some((end, retrans)) = self.tlp else {
            return;
        };
        if !retrans || dsack {
            // A probe of new data needs no congestion response: once an
            // ACK makes progress the next tail may be probed again (else a
            // lost probe behind a delayed ACK waits for the RTO).
            if ack > una_before || dsack {
                self.tlp = None;
            }
            return;
        }
        if ack >= end && ack > una_before {
            let flight = (self.snd_max - self.snd_una).max(end - una_before);
            self.cc.on_congestion(flight);
            self.tlp = None;
        } else if ack == una_before && !new_sack && ack >= end {
            self.tlp = None;
        }
    }

    /// Takes the ACK's RTT measurement, if it has one, and returns it.
    fn take_rtt_sample(&mut self, now: Instant, seg: &Repr<'_>, ack: Seq) -> Option<Duration> {
        if let (true, Some((_, ecr))) = (self.ts_ok, seg.options.timestamp) {
            // RTTM (RFC 7323 §4.1); retransmissions are fine with timestamps.
            let d = self.ts_now(now).wrapping_sub(ecr);
            if d < 60_000 {
                let r = Duration::from_millis(u64::from(d.max(1)));
                self.rtt.sample(r);
                return Some(r);
            }
            return None;
        }
        if let Some((s, sent)) = self.rtt_seq {
            if ack >= s {
                let r = now.saturating_duration_since(sent);
                self.rtt.sample(r);
                self.rtt_seq = None;
                return Some(r);
            }
        }
        None
    }
}
