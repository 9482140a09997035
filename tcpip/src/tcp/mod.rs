//! The TCP connection state machine (one [`Tcb`] per connection).
//!
//! Read first: RFC 9293 §3.3.2 (state diagram), §3.10 (event processing),
//! RFC 5961 (blind RST/SYN/data protections), RFC 6528 (ISNs), RFC 7323
//! (window scale, timestamps, PAWS), RFC 2018 + RFC 6675 (SACK and SACK
//! loss recovery), RFC 2883 (DSACK), RFC 8985 (RACK-TLP loss detection and
//! tail loss probes), RFC 6937 (proportional rate reduction), RFC 6298
//! (RTO), RFC 5681 + RFC 6582 (fast retransmit, NewReno), RFC 9438 (CUBIC), RFC 1122 §4.2.3.2 (delayed ACK),
//! §4.2.2.17 (zero-window probes), §4.2.3.6 (keepalive), RFC 1337 (TIME-WAIT
//! assassination).
//!
//! Layout: this file holds the control block (its fields, construction,
//! option negotiation and state changes); `app.rs` has the
//! application-facing operations, `timeout.rs` what the timers do,
//! `input.rs` processes arriving segments, `output.rs` decides the next
//! segment to send. Below them: `config.rs` (states and configuration),
//! `timer.rs` (the timer table), `sent.rs` keeps one record per segment in
//! flight, `rack.rs` decides when one is lost, `prr.rs` paces sending
//! during recovery.
//!
//! Driving order (by the stack): `process` for each arriving segment,
//! `handle_timeout` when `poll_at` has passed, then `poll_segment` until it
//! returns `None`; app calls (`send`, `recv`, `shutdown`, `close`) at any
//! time between. Events accumulate in `events` for the stack to drain.

mod app;
pub mod bbr;
mod config;
pub mod congestion;
pub mod hystart;
mod input;
mod output;
mod prr;
mod rack;
pub mod ranges;
pub mod rate;
pub mod rtt;
mod sent;
pub mod seq;
mod timeout;
mod timer;

use crate::error::Error;
use crate::ring::RingBuffer;
use crate::wire::tcp::Options;
pub use config::{State, TcpConfig};
use congestion::Controller;
use prr::Prr;
use rack::Rack;
use ranges::RangeSet;
use rtt::RttEstimator;
use sent::SentLog;
pub use seq::Seq;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
pub(crate) use timer::{Timer, TimerTable};

/// Event bits accumulated for the stack.
pub(crate) mod ev {
    pub const READABLE: u8 = 1;
    pub const WRITABLE: u8 = 2;
    pub const CONNECTED: u8 = 4;
    pub const ERROR: u8 = 8;
    pub const CLOSED: u8 = 16;
    /// A passively opened connection reached ESTABLISHED.
    pub const ACCEPTABLE: u8 = 32;
}

/// The transmission control block of one connection.
#[derive(Debug)]
pub struct Tcb {
    pub(crate) state: State,
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    pub(crate) cfg: TcpConfig,
    passive: bool,
    // Send sequence space (RFC 9293 §3.3.1).
    iss: Seq,
    snd_una: Seq,
    snd_nxt: Seq,
    snd_max: Seq,
    snd_wnd: usize,
    max_snd_wnd: usize,
    snd_wl1: Seq,
    snd_wl2: Seq,
    snd_wscale: u8,
    tx: RingBuffer,
    /// Sequence number of `tx[0]`.
    tx_base: Seq,
    fin_queued: bool,
    // Receive sequence space.
    irs: Seq,
    rcv_nxt: Seq,
    rcv_wscale: u8,
    rx: RingBuffer,
    ooo: RangeSet,
    fin_received: bool,
    rx_fin_seq: Option<Seq>,
    last_adv_wnd: usize,
    last_ack_sent: Seq,
    // Options.
    /// Largest payload the peer accepts, before option overhead.
    mss: usize,
    our_mss: u16,
    ts_ok: bool,
    ts_recent: u32,
    ts_base: Instant,
    ts_offset: u32,
    sack_ok: bool,
    // Reliability and congestion.
    rtt: RttEstimator,
    cc: Controller,
    /// Pacing (with a pacing controller): bytes that may leave now, and
    /// when they were last topped up.
    pace_tokens: f64,
    pace_at: Option<Instant>,
    pub(crate) timers: TimerTable,
    backoff: u32,
    retries: u32,
    rtt_seq: Option<(Seq, Instant)>,
    dupacks: u32,
    /// The recovery point of the fast recovery in progress.
    recovery: Option<Seq>,
    /// The recovery point of the last loss episode (fast recovery or RTO):
    /// no new window reduction for losses below it (RFC 6582 §3.2).
    recover_prev: Seq,
    /// Congestion state before the current recovery and the TSval of its
    /// first retransmission, to undo a spurious recovery (RFC 3522 Eifel).
    undo: Option<(Controller, u32)>,
    /// Congestion state before the last recovery and how many of its
    /// retransmissions the peer has not yet reported as duplicates: when
    /// every one was (DSACK), the recovery was spurious and is undone
    /// (RFC 3708 §3).
    dsack_undo: Option<(Controller, u32)>,
    /// Challenge ACKs sent in the current one-second window.
    challenge: Option<(Instant, u32)>,
    /// One record per segment between SND.UNA and SND.MAX.
    sent: SentLog,
    rack: Rack,
    /// Proportional rate reduction while in fast recovery.
    prr: Option<Prr>,
    /// SND.MAX when the outstanding tail loss probe left, and whether it
    /// was a retransmission (TLP.end_seq, TLP.is_retrans; RFC 8985 §7).
    tlp: Option<(Seq, bool)>,
    /// The probe timer fired: the next segment is a tail loss probe.
    probe_due: bool,
    /// A duplicate segment arrived: report it as the first SACK block of
    /// the next ACK (DSACK, RFC 2883 §4).
    dsack: Option<(Seq, Seq)>,
    force_probe: bool,
    keepalive_due: bool,
    keepalive_sent: u32,
    // ACK scheduling.
    ack_pending: bool,
    ack_now: bool,
    unacked_bytes: usize,
    rst_pending: Option<(Seq, Option<Seq>)>,
    // Application side.
    pub(crate) error: Option<Error>,
    soft_error: Option<Error>,
    pub(crate) app_closed: bool,
    pub(crate) events: u8,
    /// Event kinds already queued in the stack and not yet polled.
    pub(crate) queued_events: u8,
    readable_notified: bool,
    want_write: bool,
    /// Listener slot this connection belongs to until accepted.
    pub(crate) listener: Option<(u32, u32)>,
    /// Counters (retransmitted segments).
    pub(crate) retransmits: u64,
    pub(crate) rto_count: u64,
    pub(crate) recoveries: u64,
    /// Segments the peer reported as received twice (DSACK).
    dsack_dups: u64,
    /// Tail loss probes sent.
    pub(crate) probes: u64,
    /// When the current loss episode (fast recovery or RTO recovery)
    /// began; it ends when SND.UNA reaches its recovery point.
    loss_since: Option<Instant>,
    /// Time spent in finished loss episodes.
    recovery_time: Duration,
}

/// Per-connection diagnostics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TcpInfo {
    /// Segments retransmitted.
    pub retransmits: u64,
    /// Retransmission timeouts.
    pub rto_count: u64,
    /// Fast-recovery episodes.
    pub recoveries: u64,
    /// Time spent recovering from losses (fast recovery and after
    /// retransmission timeouts, until the data outstanding when the loss
    /// was detected is acknowledged); finished episodes only.
    pub recovery_time: Duration,
    /// Tail loss probes sent (RFC 8985 §7).
    pub probes: u64,
    /// Congestion window in bytes.
    pub cwnd: usize,
    /// Smoothed RTT.
    pub srtt: Duration,
    /// Peer's window in bytes.
    pub snd_wnd: usize,
    /// Payload bytes per full segment.
    pub mss: usize,
    /// RTT variation (RFC 6298 RTTVAR).
    pub rttvar: Duration,
    /// The retransmission timeout now (with any backoff).
    pub rto: Duration,
    /// Slow-start threshold in bytes (`usize::MAX` before the first loss).
    pub ssthresh: usize,
    /// Bytes sent and not yet acknowledged.
    pub in_flight: usize,
    /// The latest delivery rate measured, bytes per second (0 before one).
    pub delivery_rate: f64,
    /// What holds the sender back now.
    pub limit: SendLimit,
    /// The congestion control.
    pub congestion: congestion::Algorithm,
}

/// What holds a sender back, as `ss -ti` tells it (`cwnd_limited`,
/// `rwnd_limited`, `sndbuf_limited`, `app_limited`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendLimit {
    /// The application gives no more data.
    Application,
    /// The congestion window is full.
    Cwnd,
    /// The peer's receive window is full.
    ReceiverWindow,
    /// Everything the send buffer holds is in flight, and it is full.
    SendBuffer,
    /// Waiting for the pacing rate.
    Pacing,
}

impl SendLimit {
    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            SendLimit::Application => "application",
            SendLimit::Cwnd => "cwnd",
            SendLimit::ReceiverWindow => "receiver window",
            SendLimit::SendBuffer => "send buffer",
            SendLimit::Pacing => "pacing",
        }
    }
}

/// What an opening SYN carried (for passive opens).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SynInfo {
    pub seq: Seq,
    pub window: u16,
    pub options: Options,
}

impl Tcb {
    fn new(
        cfg: &TcpConfig,
        local: SocketAddr,
        remote: SocketAddr,
        iss: Seq,
        mtu_mss: u16,
        now: Instant,
        ts_offset: u32,
    ) -> Tcb {
        let mut rcv_wscale = 0u8;
        if cfg.window_scaling {
            while rcv_wscale < 14 && (cfg.rx_buffer >> rcv_wscale) > 0xffff {
                rcv_wscale += 1;
            }
        }
        let mss = usize::from(mtu_mss);
        Tcb {
            state: State::Closed,
            local,
            remote,
            cfg: cfg.clone(),
            passive: false,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: Seq(0),
            snd_wl2: iss,
            snd_wscale: 0,
            tx: RingBuffer::new(cfg.tx_buffer),
            tx_base: iss + 1,
            fin_queued: false,
            irs: Seq(0),
            rcv_nxt: Seq(0),
            rcv_wscale,
            rx: RingBuffer::new(cfg.rx_buffer),
            ooo: RangeSet::new(),
            fin_received: false,
            rx_fin_seq: None,
            last_adv_wnd: 0,
            last_ack_sent: Seq(0),
            mss: if local.is_ipv4() { 536 } else { 1220 }.min(mss),
            our_mss: mtu_mss,
            ts_ok: false,
            ts_recent: 0,
            ts_base: now,
            ts_offset,
            sack_ok: false,
            rtt: RttEstimator::new(cfg.min_rto, cfg.max_rto),
            cc: Controller::new(cfg.congestion, mss),
            pace_tokens: 0.0,
            pace_at: None,
            timers: TimerTable::default(),
            backoff: 0,
            retries: 0,
            rtt_seq: None,
            dupacks: 0,
            recovery: None,
            recover_prev: iss,
            undo: None,
            dsack_undo: None,
            challenge: None,
            sent: SentLog::new(cfg.tx_buffer / 512 + 64),
            rack: Rack::default(),
            prr: None,
            tlp: None,
            probe_due: false,
            dsack: None,
            force_probe: false,
            keepalive_due: false,
            keepalive_sent: 0,
            ack_pending: false,
            ack_now: false,
            unacked_bytes: 0,
            rst_pending: None,
            error: None,
            soft_error: None,
            app_closed: false,
            events: 0,
            queued_events: 0,
            readable_notified: false,
            want_write: false,
            listener: None,
            retransmits: 0,
            rto_count: 0,
            recoveries: 0,
            dsack_dups: 0,
            probes: 0,
            loss_since: None,
            recovery_time: Duration::ZERO,
        }
    }

    /// An active open: the SYN goes out on the next `poll_segment`.
    pub(crate) fn connect(
        cfg: &TcpConfig,
        local: SocketAddr,
        remote: SocketAddr,
        iss: Seq,
        mtu_mss: u16,
        now: Instant,
        ts_offset: u32,
    ) -> Tcb {
        let mut t = Tcb::new(cfg, local, remote, iss, mtu_mss, now, ts_offset);
        t.state = State::SynSent;
        t.arm_keepalive(now);
        t
    }

    /// A passive open from a listener's SYN: the SYN-ACK goes out next.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn accept_syn(
        cfg: &TcpConfig,
        local: SocketAddr,
        remote: SocketAddr,
        iss: Seq,
        mtu_mss: u16,
        now: Instant,
        ts_offset: u32,
        syn: &SynInfo,
    ) -> Tcb {
        let mut t = Tcb::new(cfg, local, remote, iss, mtu_mss, now, ts_offset);
        t.state = State::SynReceived;
        t.passive = true;
        t.irs = syn.seq;
        t.rcv_nxt = syn.seq + 1;
        t.snd_wnd = usize::from(syn.window);
        t.max_snd_wnd = t.snd_wnd;
        t.snd_wl1 = syn.seq;
        t.negotiate(&syn.options, true);
        t.arm_keepalive(now);
        t
    }

    /// Applies the options of the peer's SYN (RFC 7323 §2.2, §3.2; RFC 2018 §2).
    fn negotiate(&mut self, o: &Options, we_offered: bool) {
        let we = we_offered;
        match o.window_scale {
            Some(ws) if we && self.cfg.window_scaling => self.snd_wscale = ws.min(14),
            _ => {
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
        self.ts_ok = we && self.cfg.timestamps && o.timestamp.is_some();
        if let Some((val, _)) = o.timestamp {
            self.ts_recent = val;
        }
        self.sack_ok = we && self.cfg.sack && o.sack_permitted;
        let peer = usize::from(
            o.mss
                .unwrap_or(if self.local.is_ipv4() { 536 } else { 1220 }),
        );
        self.mss = peer.min(usize::from(self.our_mss)).max(64);
        self.cc.set_mss(self.payload_mss());
        self.cc = Controller::new(self.cfg.congestion, self.payload_mss());
    }

    /// Payload bytes per full segment after option overhead.
    pub(crate) fn payload_mss(&self) -> usize {
        self.mss - if self.ts_ok { 12 } else { 0 }
    }

    /// Lowers the MSS after ICMP fragmentation-needed / packet-too-big.
    pub(crate) fn lower_mss(&mut self, path_mtu: usize, now: Instant) {
        let hdr = if self.local.is_ipv4() { 40 } else { 60 };
        let new = path_mtu
            .saturating_sub(hdr)
            .max(if self.local.is_ipv4() { 536 } else { 1220 } - 12);
        if new < self.mss {
            self.mss = new;
            self.cc.set_mss(self.payload_mss());
            // Retransmit what was sent with the bigger size at once (the
            // timeout marks it lost; it is cut to the new size on the way).
            if self.snd_max > self.snd_una {
                self.timers.set(Timer::Rto, now);
            }
        }
    }

    /// Records an ICMP error (RFC 5927 / RFC 1122 §4.2.3.9): hard for a
    /// connection attempt, soft (reported on timeout) otherwise.
    pub(crate) fn icmp_error(&mut self, err: Error, seq: Seq) {
        if seq < self.snd_una || seq > self.snd_max {
            return; // Not for data in flight: ignore (RFC 5927 §4.1).
        }
        match self.state {
            State::SynSent => self.fail(err),
            _ => self.soft_error = Some(err),
        }
    }

    /// The TSval to send now.
    fn ts_now(&self, now: Instant) -> u32 {
        let ms = now.saturating_duration_since(self.ts_base).as_millis() as u32;
        ms.wrapping_add(self.ts_offset)
    }

    /// Bytes we can accept right now beyond `rcv_nxt`.
    fn rcv_wnd(&self) -> usize {
        self.rx.free()
    }

    /// The window field value to advertise (scaled, never over 16 bits).
    fn window_field(&self) -> u16 {
        let w = self.rcv_wnd() >> self.rcv_wscale;
        w.min(0xffff) as u16
    }

    /// Ends the connection with an error the application will see.
    pub(crate) fn fail(&mut self, err: Error) {
        self.error = Some(err);
        self.enter_closed();
        self.events |= ev::ERROR | ev::READABLE | ev::WRITABLE;
    }

    fn enter_closed(&mut self) {
        self.state = State::Closed;
        self.timers = TimerTable::default();
        self.events |= ev::CLOSED;
        if self.app_closed {
            self.tx.release();
            self.rx.release();
            self.sent.release();
        }
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.timers = TimerTable::default();
        self.timers.set(Timer::Linger, now + self.cfg.time_wait);
        if self.app_closed {
            // Nothing more will be sent or read: give the memory back.
            self.tx.release();
            self.rx.release();
            self.sent.release();
        }
        self.events |= ev::CLOSED;
    }

    /// Whether the stack may forget this connection.
    pub(crate) fn reclaimable(&self) -> bool {
        self.app_closed && self.state == State::Closed && self.rst_pending.is_none()
    }

    /// Arms the shrink timer when a ring holds nothing but still has
    /// storage (see [`TcpConfig::shrink_after`]); called where rings empty.
    pub(crate) fn note_emptied(&mut self, now: Instant) {
        if !self.timers.is_set(Timer::Shrink) && (self.rx.can_shrink() || self.tx.can_shrink()) {
            self.timers.set(Timer::Shrink, now + self.cfg.shrink_after);
        }
    }

    /// Storage the two rings hold now (send, receive), in bytes.
    pub(crate) fn ring_storage(&self) -> (usize, usize) {
        (self.tx.allocated(), self.rx.allocated())
    }

    /// Earliest timer deadline.
    pub(crate) fn poll_at(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Whether a segment may be ready to send without a timer firing.
    pub(crate) fn wants_dispatch(&self) -> bool {
        self.ack_now
            || self.rst_pending.is_some()
            || self.force_probe
            || self.keepalive_due
            || (matches!(self.state, State::SynSent | State::SynReceived)
                && self.snd_nxt == self.iss)
            || (self.is_synchronized()
                && (self.tx_base + self.tx.len() > self.snd_nxt
                    || self.fin_pending()
                    || self.probe_due
                    || self.sent.lost_bytes() > 0))
    }

    fn is_synchronized(&self) -> bool {
        !matches!(
            self.state,
            State::Closed | State::Listen | State::SynSent | State::SynReceived
        )
    }

    fn fin_pending(&self) -> bool {
        self.fin_queued && self.snd_nxt <= self.tx_base + self.tx.len()
    }

    /// Public view of the state for tests.
    pub fn state(&self) -> State {
        self.state
    }

    /// Current congestion window in bytes.
    pub fn cwnd(&self) -> usize {
        self.cc.window()
    }

    /// Diagnostics.
    pub fn info(&self) -> TcpInfo {
        TcpInfo {
            retransmits: self.retransmits,
            rto_count: self.rto_count,
            recoveries: self.recoveries,
            recovery_time: self.recovery_time,
            probes: self.probes,
            cwnd: self.cc.window(),
            srtt: self.rtt.srtt(),
            snd_wnd: self.snd_wnd,
            mss: self.payload_mss(),
            rttvar: self.rtt.rttvar(),
            rto: self.rtt.rto_backoff(self.backoff),
            ssthresh: self.cc.ssthresh(),
            in_flight: self.snd_max - self.snd_una,
            delivery_rate: self.sent.rate.last_rate(),
            limit: self.send_limit(),
            congestion: self.cc.algorithm(),
        }
    }

    fn send_limit(&self) -> SendLimit {
        let unsent = (self.tx_base + self.tx.len()) - self.snd_nxt;
        let mss = self.payload_mss();
        if unsent == 0 {
            return if self.tx.free() < mss {
                SendLimit::SendBuffer
            } else {
                SendLimit::Application
            };
        }
        if self.pipe() >= self.cc.window() {
            return SendLimit::Cwnd;
        }
        if (self.snd_una + self.snd_wnd) - self.snd_nxt < mss {
            return SendLimit::ReceiverWindow;
        }
        SendLimit::Pacing
    }
}

#[cfg(test)]
mod tests;
