//! Choosing the next segment to send.
//!
//! Read first: RFC 9293 §3.8.6.2.1 (sender SWS avoidance), §3.8.6.1
//! (zero-window probing), RFC 6675 §4–§5 (pipe, NextSeg, HighRxt), RFC 6582
//! (NewReno without SACK), RFC 5681 §3.1 (cwnd limits), RFC 7323 §3.2–§4.3
//! (timestamps on every segment, TS.Recent echo), RFC 2018 §4 (SACK blocks).

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

    /// Bytes the network is assumed to hold (RFC 6675 §4 "pipe").
    fn pipe(&self) -> usize {
        if self.recovery.is_some() {
            if self.sack_ok {
                let high = self
                    .sacked
                    .highest()
                    .unwrap_or(self.snd_una)
                    .max(self.snd_una);
                let above = self.snd_max - high;
                let rx_end = self.high_rxt.min(high);
                let retx = (rx_end - self.snd_una)
                    .saturating_sub(self.sacked.total() - self.sacked.bytes_above(rx_end));
                above + retx
            } else {
                (self.snd_max - self.snd_una)
                    .saturating_sub(self.dupacks as usize * self.payload_mss())
            }
        } else {
            (self.snd_nxt - self.snd_una)
                .saturating_sub(self.sacked.total() - self.sacked.bytes_above(self.snd_nxt))
        }
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

    fn add_sack(&self, r: &mut Repr<'static>) {
        if !self.sack_ok || self.ooo.is_empty() {
            return;
        }
        let max = if r.options.timestamp.is_some() {
            3
        } else {
            MAX_SACK_BLOCKS
        };
        let n = self.ooo.sack_blocks(&mut r.options.sack[..max]);
        r.options.sack_len = n as u8;
    }

    fn note_ack_sent(&mut self) {
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
        let fin_seq = if self.fin_queued {
            Some(data_end)
        } else {
            None
        };
        let wnd_end = self.snd_una + self.snd_wnd;
        let cwnd = self.cc.window();

        // Loss recovery: retransmit the first lost hole (RFC 6675 NextSeg
        // rule 1, with holes below the highest SACK treated as lost), or
        // the next segment after a NewReno partial ACK.
        let mut start: Option<Seq> = None;
        let mut limit = usize::MAX;
        if self.recovery.is_some() {
            let mut s = self.high_rxt.max(self.snd_una);
            let high = if self.sack_ok {
                self.sacked.highest().unwrap_or(self.snd_una)
            } else {
                self.snd_una + mss.min(self.snd_max - self.snd_una)
            };
            while let Some(e) = self.sacked.containing(s) {
                s = e;
            }
            if s < high && s < self.snd_max {
                start = Some(s);
                limit = self.next_sacked_start(s).unwrap_or(self.snd_max) - s;
            } else if self.sack_ok && self.rxt_round_mark.is_none() {
                self.rxt_round_mark = Some(self.snd_max);
            }
            if start.is_none() && self.pipe() >= cwnd {
                return None;
            }
        }
        let retransmission_in_recovery = start.is_some();
        let s = match start {
            Some(s) => s,
            None => {
                if self.recovery.is_none() && self.pipe() >= cwnd && !self.force_probe {
                    return None;
                }
                let mut s = self.snd_nxt;
                while let Some(e) = self.sacked.containing(s) {
                    s = e;
                }
                if s < self.snd_max {
                    limit = self.next_sacked_start(s).unwrap_or(self.snd_max) - s;
                }
                s
            }
        };
        let avail = data_end - s;
        let mut len = avail.min(mss).min(limit);
        let retransmission = s < self.snd_max;
        if !retransmission_in_recovery {
            let room = wnd_end - s;
            if len > room {
                if self.force_probe && room == 0 && len > 0 {
                    len = 1; // zero-window probe: one byte beyond the window
                } else if retransmission || room >= self.max_snd_wnd / 2 || room >= mss {
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
        }
        let with_fin = fin_seq == Some(s + len);
        if len == 0 && !with_fin {
            return None;
        }
        self.force_probe = false;
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
        if retransmission {
            self.retransmits += 1;
            if let Some((rs, _)) = self.rtt_seq {
                if rs > s {
                    self.rtt_seq = None; // Karn's algorithm
                }
            }
        } else if self.rtt_seq.is_none() && !self.ts_ok {
            self.rtt_seq = Some((end, now));
        }
        if retransmission_in_recovery {
            self.high_rxt = end;
        } else {
            self.snd_nxt = end;
        }
        self.snd_max = self.snd_max.max(end);
        self.arm_rto(now);
        self.note_ack_sent();
        Some(Outgoing {
            repr: r,
            payload_off: s - self.tx_base,
            payload_len: len,
        })
    }

    fn next_sacked_start(&self, s: Seq) -> Option<Seq> {
        self.sacked.iter().map(|r| r.0).find(|&b| b > s)
    }
}
