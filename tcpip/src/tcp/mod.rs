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
//! Layout: this file holds the control block, its configuration, the
//! application-facing operations and the timers; `input.rs` processes
//! arriving segments, `output.rs` decides the next segment to send,
//! `sent.rs` keeps one record per segment in flight, `rack.rs` decides
//! when one is lost, `prr.rs` paces sending during recovery.
//!
//! Driving order (by the stack): `process` for each arriving segment,
//! `handle_timeout` when `poll_at` has passed, then `poll_segment` until it
//! returns `None`; app calls (`send`, `recv`, `shutdown`, `close`) at any
//! time between. Events accumulate in `events` for the stack to drain.

pub mod congestion;
mod input;
mod output;
mod prr;
mod rack;
pub mod ranges;
pub mod rtt;
mod sent;
pub mod seq;

use crate::error::Error;
use crate::ring::RingBuffer;
use crate::wire::tcp::Options;
use congestion::Cubic;
use prr::Prr;
use rack::Rack;
use ranges::RangeSet;
use rtt::RttEstimator;
use sent::SentLog;
pub use seq::Seq;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// RFC 9293 connection states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// No connection.
    Closed,
    /// Waiting for a SYN (listeners only).
    Listen,
    /// SYN sent, waiting for SYN-ACK.
    SynSent,
    /// SYN received and SYN-ACK sent.
    SynReceived,
    /// Open.
    Established,
    /// We closed; our FIN is not yet acknowledged.
    FinWait1,
    /// Our FIN is acknowledged; waiting for the peer's FIN.
    FinWait2,
    /// The peer closed; we may still send.
    CloseWait,
    /// Both closed simultaneously; waiting for the ACK of our FIN.
    Closing,
    /// The peer closed first, then we did; waiting for the ACK of our FIN.
    LastAck,
    /// Waiting 2·MSL before forgetting the connection.
    TimeWait,
}

/// Per-connection TCP parameters.
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// Receive ring size in bytes (bounds out-of-order memory too).
    pub rx_buffer: usize,
    /// Send ring size in bytes.
    pub tx_buffer: usize,
    /// Lower bound on the RTO (Linux uses 200 ms; RFC 6298 says 1 s).
    pub min_rto: Duration,
    /// Upper bound on the RTO.
    pub max_rto: Duration,
    /// SYN / SYN-ACK retransmissions before giving up.
    pub syn_retries: u32,
    /// Data retransmissions before ETIMEDOUT.
    pub data_retries: u32,
    /// Delayed-ACK timeout.
    pub delayed_ack: Duration,
    /// TIME-WAIT duration (2·MSL).
    pub time_wait: Duration,
    /// FIN-WAIT-2 timeout for connections the application closed.
    pub fin_wait2_timeout: Duration,
    /// Keepalive idle time; `None` disables keepalive.
    pub keepalive: Option<Duration>,
    /// Interval between keepalive probes.
    pub keepalive_interval: Duration,
    /// Unanswered keepalive probes before ETIMEDOUT.
    pub keepalive_probes: u32,
    /// Offer timestamps (RFC 7323).
    pub timestamps: bool,
    /// Offer SACK (RFC 2018).
    pub sack: bool,
    /// Offer window scaling (RFC 7323).
    pub window_scaling: bool,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            rx_buffer: 256 * 1024,
            tx_buffer: 256 * 1024,
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(60),
            syn_retries: 6,
            data_retries: 15,
            delayed_ack: Duration::from_millis(40),
            time_wait: Duration::from_secs(60),
            fin_wait2_timeout: Duration::from_secs(60),
            keepalive: None,
            keepalive_interval: Duration::from_secs(75),
            keepalive_probes: 9,
            timestamps: true,
            sack: true,
            window_scaling: true,
        }
    }
}

/// Timers, indexed (quinn-style table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Retransmission, or the persist timer when the peer's window is zero.
    Rto = 0,
    /// Delayed ACK.
    DelayedAck = 1,
    /// Keepalive idle/probe.
    Keepalive = 2,
    /// TIME-WAIT or FIN-WAIT-2 expiry.
    Linger = 3,
    /// RACK reordering timer: a segment may be declared lost then
    /// (RFC 8985 §6.2 step 6).
    Reorder = 4,
    /// Tail loss probe (RFC 8985 §7.2).
    Probe = 5,
}

const TIMER_COUNT: usize = 6;

#[derive(Debug, Clone, Default)]
pub(crate) struct TimerTable([Option<Instant>; TIMER_COUNT]);

impl TimerTable {
    pub(crate) fn set(&mut self, t: Timer, at: Instant) {
        self.0[t as usize] = Some(at);
    }
    pub(crate) fn stop(&mut self, t: Timer) {
        self.0[t as usize] = None;
    }
    pub(crate) fn is_set(&self, t: Timer) -> bool {
        self.0[t as usize].is_some()
    }
    pub(crate) fn get(&self, t: Timer) -> Option<Instant> {
        self.0[t as usize]
    }
    pub(crate) fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
    /// Takes the timer if it expired at `now`.
    pub(crate) fn expired(&mut self, t: Timer, now: Instant) -> bool {
        match self.0[t as usize] {
            Some(at) if at <= now => {
                self.0[t as usize] = None;
                true
            }
            _ => false,
        }
    }
}

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
    cc: Cubic,
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
    undo: Option<(Cubic, u32)>,
    /// Congestion state before the last recovery and how many of its
    /// retransmissions the peer has not yet reported as duplicates: when
    /// every one was (DSACK), the recovery was spurious and is undone
    /// (RFC 3708 §3).
    dsack_undo: Option<(Cubic, u32)>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
            cc: Cubic::new(mss),
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
        self.cc = Cubic::new(self.payload_mss());
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

    fn arm_keepalive(&mut self, now: Instant) {
        if let Some(idle) = self.cfg.keepalive {
            self.timers.set(Timer::Keepalive, now + idle);
            self.keepalive_sent = 0;
        }
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

    // ---- Application operations ----

    /// Queues bytes to send; returns how many were accepted.
    pub(crate) fn send(&mut self, data: &[u8]) -> Result<usize, Error> {
        if let Some(e) = self.error {
            return Err(if e == Error::ConnectionReset {
                Error::BrokenPipe
            } else {
                e
            });
        }
        if self.fin_queued || self.app_closed {
            return Err(Error::BrokenPipe);
        }
        match self.state {
            State::SynSent | State::SynReceived | State::Established | State::CloseWait => {}
            State::Closed | State::Listen => return Err(Error::NotConnected),
            _ => return Err(Error::BrokenPipe),
        }
        let n = self.tx.enqueue_slice(data);
        if n < data.len() {
            self.want_write = true;
        }
        if n == 0 && !data.is_empty() {
            return Err(Error::WouldBlock);
        }
        Ok(n)
    }

    /// Reads received bytes; `Ok(0)` is end of stream.
    pub(crate) fn recv(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        let before_wnd = self.last_adv_wnd;
        let n = self.rx.dequeue_slice(out);
        if self.rx.is_empty() {
            self.readable_notified = false;
        }
        if n > 0 {
            // Window update when the window grew enough (RFC 9293 §3.8.6.2.2).
            let wnd = self.rcv_wnd();
            let thresh = (2 * self.payload_mss()).min(self.rx.capacity() / 2);
            if self.is_synchronized() && !self.fin_received && wnd >= before_wnd + thresh {
                self.ack_now = true;
            }
            return Ok(n);
        }
        if out.is_empty() {
            return Ok(0);
        }
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.fin_received {
            return Ok(0);
        }
        match self.state {
            State::Closed | State::Listen => Err(Error::NotConnected),
            _ => Err(Error::WouldBlock),
        }
    }

    /// Bytes waiting to be read.
    pub(crate) fn recv_queue(&self) -> usize {
        self.rx.len()
    }

    /// Bytes that can be queued for sending.
    pub(crate) fn send_capacity(&self) -> usize {
        self.tx.free()
    }

    /// Bytes queued and not yet acknowledged.
    pub(crate) fn send_queue(&self) -> usize {
        self.tx.len()
    }

    /// Shuts down the write side: a FIN follows the queued data.
    pub(crate) fn shutdown_write(&mut self) {
        if self.fin_queued {
            return;
        }
        match self.state {
            State::SynSent => {
                self.enter_closed();
            }
            State::SynReceived | State::Established => {
                self.fin_queued = true;
                self.state = State::FinWait1;
            }
            State::CloseWait => {
                self.fin_queued = true;
                self.state = State::LastAck;
            }
            _ => {}
        }
    }

    /// The application is done with the socket: graceful close, or a reset
    /// when unread data would be lost (as Linux does).
    pub(crate) fn close(&mut self, now: Instant) {
        self.app_closed = true;
        if !self.rx.is_empty() && self.is_synchronized() {
            self.abort();
            return;
        }
        self.shutdown_write();
        if self.state == State::FinWait2 {
            self.timers
                .set(Timer::Linger, now + self.cfg.fin_wait2_timeout);
        }
        if matches!(self.state, State::Closed) {
            self.tx.release();
            self.rx.release();
            self.sent.release();
        }
    }

    /// Sends a RST (if synchronized) and closes at once.
    pub(crate) fn abort(&mut self) {
        if matches!(
            self.state,
            State::SynReceived
                | State::Established
                | State::FinWait1
                | State::FinWait2
                | State::CloseWait
                | State::Closing
                | State::LastAck
        ) {
            self.rst_pending = Some((self.snd_nxt.max(self.snd_una), None));
        }
        self.enter_closed();
        if self.app_closed {
            self.tx.release();
            self.rx.release();
            self.sent.release();
        }
    }

    /// The error, if the connection failed.
    pub(crate) fn take_error(&self) -> Option<Error> {
        self.error
    }

    // ---- Timers ----

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

    fn arm_rto(&mut self, now: Instant) {
        if !self.timers.is_set(Timer::Rto) {
            self.timers
                .set(Timer::Rto, now + self.rtt.rto_backoff(self.backoff));
        }
    }

    /// Arms the tail loss probe (RFC 8985 §7.2) after new data was sent or
    /// an ACK arrived: only with SACK, with an RTT sample, outside loss
    /// recovery, with no probe outstanding, and when it would fire before
    /// the RTO.
    fn arm_probe(&mut self, now: Instant) {
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
        }
    }
}

#[cfg(test)]
mod tests;
