//! Choosing the next segment to send.
//!
//! Read first: RFC 9293 §3.8.6.2.1 (sender SWS avoidance), §3.8.6.1
//! (zero-window probing), RFC 6675 §4–§5 (pipe, NextSeg: lost segments
//! first, then new data), RFC 8985 §7.3 (the tail loss probe), RFC 6937
//! (PRR sending limit in recovery), RFC 5681 §3.1 (cwnd limits), RFC 7323
//! §3.2–§4.3 (timestamps on every segment, TS.Recent echo), RFC 2018 §4
//! (SACK blocks), RFC 2883 §4 (a DSACK block first).

use super::{Seq, State, Tcb, Timer};
use crate::wire::tcp::{Flags, Options, Repr, MAX_SACK_BLOCKS};
use std::time::Instant;

/// A segment to emit: the header, plus where its payload lies in the send
/// ring (copied straight into the caller's buffer by the stack).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outgoing {
    pub repr: Repr<'static>,
    pub payload_off: usize,
    pub payload_len: usize,
}

impl Tcb {
    /// Copies `len` payload bytes at send-ring offset `off` into `out`.
    pub(crate) fn copy_payload(&self, off: usize, out: &mut [u8]) -> usize {
        self.tx.read_at(off, out)
    }

    fn base_repr(&self, now: Instant, seq: Seq, flags: Flags) -> Repr<'static> {
        let mut options = Options::default();
        if self.ts_ok {
            options.timestamp = Some((self.ts_now(now), self.ts_recent));
        }
        Repr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: seq.0,
            ack: self.rcv_nxt.0,
            flags,
            window: self.window_field(),
            options,
            payload: &[],
        }
    }

    fn syn_repr(&self, now: Instant) -> Repr<'static> {
        let synack = self.state == State::SynReceived;
        let mut r = self.base_repr(now, self.iss, Flags::SYN);
        r.window = self.rcv_wnd().min(0xffff) as u16;
        r.options.mss = Some(self.our_mss);
        if synack {
            r.flags = r.flags.with(Flags::ACK);
            if self.snd_wscale > 0 || self.rcv_wscale > 0 {
                r.options.window_scale = Some(self.rcv_wscale);
            }
            r.options.sack_permitted = self.sack_ok;
            if !self.ts_ok {
                r.options.timestamp = None;
            }
        } else {
            r.ack = 0;
            if self.cfg.window_scaling {
                r.options.window_scale = Some(self.rcv_wscale);
            }
            r.options.sack_permitted = self.cfg.sack;
            r.options.timestamp = if self.cfg.timestamps {
                Some((self.ts_now(now), 0))
            } else {
                None
            };
        }
        r
    }

    /// Bytes the network is assumed to hold (RFC 6675 §4 "pipe", with
    /// RACK's loss marks).
    pub(crate) fn pipe(&self) -> usize {
        self.sent.pipe(self.snd_max - self.snd_una)
    }

    /// The next segment to send, if any.
    pub(crate) fn poll_segment(&mut self, now: Instant) -> Option<Outgoing> {
        if let Some((seq, ack)) = self.rst_pending.take() {
            let mut r = self.base_repr(now, seq, Flags::RST);
            r.options = Options::default();
            r.window = 0;
            match ack {
                Some(a) => {
                    r.ack = a.0;
                    r.flags = r.flags.with(Flags::ACK);
                }
                None => r.ack = 0,
            }
            return Some(Outgoing {
                repr: r,
                payload_off: 0,
                payload_len: 0,
            });
        }
        match self.state {
            State::Closed | State::Listen => return None,
            State::SynSent | State::SynReceived => {
                if self.snd_nxt == self.iss {
                    let r = self.syn_repr(now);
                    if self.rtt_seq.is_none() && self.backoff == 0 {
                        self.rtt_seq = Some((self.iss + 1, now));
                    }
                    self.snd_nxt = self.iss + 1;
                    self.snd_max = self.snd_max.max(self.snd_nxt);
                    self.arm_rto(now);
                    self.ack_now = false;
                    return Some(Outgoing {
                        repr: r,
                        payload_off: 0,
                        payload_len: 0,
                    });
                }
                if self.state == State::SynSent {
                    return None;
                }
            }
            _ => {}
        }
        if self.state != State::TimeWait && self.state != State::SynReceived {
            if let Some(out) = self.data_segment(now) {
                return Some(out);
            }
        }
        if self.keepalive_due {
            self.keepalive_due = false;
            let r = self.base_repr(now, self.snd_una - 1, Flags::ACK);
            self.note_ack_sent();
            return Some(Outgoing {
                repr: r,
                payload_off: 0,
                payload_len: 0,
            });
        }
        if self.ack_now {
            let mut r = self.base_repr(now, self.snd_nxt.max(self.snd_una), Flags::ACK);
            self.add_sack(&mut r);
            self.note_ack_sent();
            return Some(Outgoing {
                repr: r,
                payload_off: 0,
                payload_len: 0,
            });
        }
        self.force_probe = false;
        None
    }

    /// Whether pacing lets a full segment leave now; if not, the pacing
    /// timer is set for when it may. Without a pacing controller, always.
    /// Tokens accrue at the pacing rate up to a burst of two milliseconds
    /// of it (two segments at least), so a driver whose timers fire with
    /// millisecond granularity (epoll) still reaches the rate.
    fn pace_ready(&mut self, now: Instant) -> bool {
        let srtt = self.rtt.has_sample().then(|| self.rtt.srtt());
        let Some(rate) = self.cc.pacing_rate(srtt) else {
            return true;
        };
        let mss = self.payload_mss() as f64;
        let burst = (rate * 0.002).max(2.0 * mss);
        self.pace_tokens = match self.pace_at {
            Some(at) => {
                let dt = now.saturating_duration_since(at).as_secs_f64();
                (self.pace_tokens + dt * rate).min(burst)
            }
            None => burst,
        };
        self.pace_at = Some(now);
        // Half a byte of slack: the tokens are a float sum.
        let need = mss.min(burst) - 0.5;
        if self.pace_tokens >= need {
            return true;
        }
        let wait = (need - self.pace_tokens) / rate.max(1.0);
        let wait =
            std::time::Duration::from_secs_f64(wait).max(std::time::Duration::from_micros(1));
        self.timers.set(Timer::Pace, now + wait);
        false
    }

    fn add_sack(&self, r: &mut Repr<'static>) {
        if !self.sack_ok || (self.ooo.is_empty() && self.dsack.is_none()) {
            return;
        }
        let max = if r.options.timestamp.is_some() {
            3
        } else {
            MAX_SACK_BLOCKS
        };
        let mut n = 0;
        if let Some((l, e)) = self.dsack {
            r.options.sack[0] = (l.0, e.0);
            n = 1;
        }
        n += self.ooo.sack_blocks(&mut r.options.sack[n..max]);
        r.options.sack_len = n as u8;
    }

    fn note_ack_sent(&mut self) {
        self.dsack = None;
        self.ack_now = false;
        self.ack_pending = false;
        self.unacked_bytes = 0;
        self.timers.stop(Timer::DelayedAck);
        self.last_ack_sent = self.rcv_nxt;
        self.last_adv_wnd = self.rcv_wnd();
    }

    fn data_segment(&mut self, now: Instant) -> Option<Outgoing> {
        let mss = self.payload_mss();
        let data_end = self.tx_base + self.tx.len();
        let wnd_end = self.snd_una + self.snd_wnd;

        // A tail loss probe (RFC 8985 §7.3): new data if the window has
        // room, else the highest segment again; cwnd does not apply.
        if self.probe_due {
            self.probe_due = false;
            self.probes += 1;
            let room = wnd_end - self.snd_nxt;
            if data_end > self.snd_nxt && room > 0 {
                let len = (data_end - self.snd_nxt).min(mss).min(room);
                let fin = self.fin_queued && self.snd_nxt + len == data_end;
                self.tlp = Some((self.snd_nxt + len + usize::from(fin), false));
                return Some(self.emit_data(now, self.snd_nxt, len, fin));
            }
            if let Some((s, len, fin)) = self.sent.last_unsacked(mss) {
                self.tlp = Some((self.snd_max, true));
                return Some(self.emit_data(now, s, len, fin));
            }
        }

        // May a segment leave now? PRR during fast recovery (RFC 6937),
        // else pipe < cwnd (RFC 6675 §5, RFC 5681 §3.1).
        // With nothing in flight no ACK will come to clock PRR: send.
        let pipe = self.pipe();
        let allowed = match &self.prr {
            Some(p) => p.may_send() || pipe == 0,
            None => pipe < self.cc.window(),
        };

        // A pacing controller spreads the window over the round trip.
        if allowed && !self.force_probe && !self.pace_ready(now) {
            return None;
        }

        // Lost segments first, lowest first (RFC 6675 NextSeg rule 1).
        if allowed {
            if let Some((s, len, fin)) = self.sent.next_lost(mss) {
                return Some(self.emit_data(now, s, len, fin));
            }
        }
        if !allowed && !self.force_probe {
            return None;
        }

        // New data (NextSeg rule 2) within the peer's window.
        let s = self.snd_nxt;
        let fin_seq = if self.fin_queued {
            Some(data_end)
        } else {
            None
        };
        let avail = data_end - s;
        if avail == 0 && allowed && !self.fin_queued {
            // The window has room the application does not fill: rate
            // samples until this flight is delivered are app-limited.
            self.sent.rate.mark_app_limited(pipe);
        }
        let mut len = avail.min(mss);
        let room = wnd_end - s;
        if len > room {
            if self.force_probe && room == 0 && len > 0 {
                len = 1; // zero-window probe: one byte beyond the window
            } else if room >= self.max_snd_wnd / 2 || room >= mss {
                len = room;
            } else {
                len = 0;
                // Nothing fits: wait for the window (persist timer).
                if self.snd_max == self.snd_una && !self.timers.is_set(Timer::Rto) {
                    self.arm_rto(now);
                }
                if avail > 0 {
                    return None;
                }
            }
        }
        let with_fin = fin_seq == Some(s + len);
        if len == 0 && !with_fin {
            return None;
        }
        self.force_probe = false;
        Some(self.emit_data(now, s, len, with_fin))
    }

    /// Builds the data segment `[s, s + len)` (plus FIN), and records it:
    /// in the send log, the counters, the RTT probe, the timers.
    fn emit_data(&mut self, now: Instant, s: Seq, len: usize, with_fin: bool) -> Outgoing {
        let data_end = self.tx_base + self.tx.len();
        let mut flags = Flags::ACK;
        if with_fin {
            flags = flags.with(Flags::FIN);
        }
        if len > 0 && s + len == data_end {
            flags = flags.with(Flags::PSH);
        }
        let mut r = self.base_repr(now, s, flags);
        self.add_sack(&mut r);
        let end = s + len + usize::from(with_fin);
        let retransmission = s < self.snd_max;
        if retransmission {
            self.retransmits += 1;
            if let Some((_, n)) = &mut self.dsack_undo {
                *n += 1;
            }
            if let Some((rs, _)) = self.rtt_seq {
                if rs > s {
                    self.rtt_seq = None; // Karn's algorithm
                }
            }
        } else if self.rtt_seq.is_none() && !self.ts_ok {
            self.rtt_seq = Some((end, now));
        }
        self.sent.on_send(s, end, with_fin, now);
        self.pace_tokens -= len as f64;
        if let Some(p) = &mut self.prr {
            p.on_send(end - s);
        }
        if end > self.snd_nxt {
            self.snd_nxt = end;
        }
        self.snd_max = self.snd_max.max(end);
        if retransmission && s == self.snd_una {
            // The oldest segment went again: its timeout counts from now
            // (as Linux's tcp_xmit_retransmit_queue), else on a long path
            // a hole repaired by fast recovery, whose ACK takes a round
            // trip, meets an RTO armed at the last cumulative ACK.
            self.timers
                .set(Timer::Rto, now + self.rtt.rto_backoff(self.backoff));
        }
        self.arm_rto(now);
        if !retransmission {
            self.arm_probe(now);
        }
        self.note_ack_sent();
        Outgoing {
            repr: r,
            payload_off: s - self.tx_base,
            payload_len: len,
        }
    }
}
