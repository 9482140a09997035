//! The stack: addresses, sockets and the packet paths between them.
//!
//! Read first: RFC 1122 §3.2–§4.2 (host requirements for IP, ICMP, UDP,
//! TCP), RFC 9293 §3.10.7.1 (segments for closed ports), RFC 6528 (ISNs),
//! RFC 6056 (ephemeral ports), RFC 4443 §2.4 (ICMP error rate limiting).
//!
//! # How a driver uses [`Stack`] (one owner thread)
//! - inputs: [`Stack::process`] for each IP packet from the tunnel;
//! - commands: `tcp_*` and `udp_*` socket operations by handle;
//! - outputs: [`Stack::poll_transmit`] (or [`Stack::dispatch`]) until it
//!   returns `None`, sending each packet into the tunnel;
//! - events: [`Stack::poll_event`] until `None`, to learn which sockets
//!   became readable, writable, connected, closed or failed;
//! - timers: [`Stack::poll_at`] for the next deadline, then
//!   [`Stack::handle_timeout`] (also run by `poll_transmit`).

mod api;
mod echo;
mod emit;
mod input;

use crate::frag::Reassembler;
use crate::frag_out::FragOut;
use crate::rand::{siphash, Rng};
use crate::slab::Slab;
use crate::tcp::{Tcb, TcpConfig};
use crate::udp::UdpSocket;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

pub use api::{ListenerHandle, SocketEvent, SocketEventKind, SocketHandle, TcpHandle, UdpHandle};

/// Stack configuration.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Our tunnel addresses (IPv4 and/or IPv6).
    pub addresses: Vec<IpAddr>,
    /// Largest IP packet we send or expect (default 1420, WireGuard's).
    pub mtu: usize,
    /// Seed for the ISN secret, ephemeral ports and other randomness.
    pub seed: u64,
    /// The host's clock for ISNs (RFC 6528) and TCP timestamps:
    /// `Some((at, read))` says that at `at` a clock shared by every process
    /// of the host (the engine uses the wall clock) read `read`. With it and
    /// [`StackConfig::clock_key`], ISNs and TSvals towards a peer keep
    /// increasing from one process to the next, so a peer still holding
    /// TIME-WAIT for the previous process's connection on the same ports
    /// accepts the new SYN (RFC 6191) instead of answering it with an ACK
    /// for the old one (which costs a 1 s SYN retransmission). `None`:
    /// both clocks start at the stack's first `now`.
    pub clock_anchor: Option<(Instant, Duration)>,
    /// Secret of the ISN and timestamp-offset hashes. Give every process of
    /// one tunnel identity the same one (see `clock_anchor`); `None`: drawn
    /// from `seed`.
    pub clock_key: Option<(u64, u64)>,
    /// TCP parameters for new connections.
    pub tcp: TcpConfig,
    /// Upper bound for listen backlogs.
    pub max_backlog: usize,
    /// Most TCP connections at once (SYNs beyond it are dropped).
    pub max_tcp_sockets: usize,
    /// UDP receive queue size in bytes per socket.
    pub udp_rx_buffer: usize,
    /// UDP send queue size in bytes per socket.
    pub udp_tx_buffer: usize,
    /// Most queued datagrams per direction per socket.
    pub udp_max_datagrams: usize,
    /// RSTs for closed ports and ICMP errors we send, per second (burst equal).
    pub control_rate: u32,
    /// Concurrent fragment reassemblies (each up to 64 KiB).
    pub reassembly_slots: usize,
    /// How long an incomplete reassembly is kept.
    pub reassembly_timeout: Duration,
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig {
            addresses: Vec::new(),
            mtu: 1420,
            seed: 0,
            clock_anchor: None,
            clock_key: None,
            tcp: TcpConfig::default(),
            max_backlog: 4096,
            max_tcp_sockets: 65536,
            udp_rx_buffer: 256 * 1024,
            udp_tx_buffer: 256 * 1024,
            udp_max_datagrams: 512,
            control_rate: 200,
            reassembly_slots: 4,
            reassembly_timeout: Duration::from_secs(30),
        }
    }
}

/// Counters, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets given to `process`.
    pub rx_packets: u64,
    /// Packets dropped for a bad IP/TCP/UDP/ICMP checksum.
    pub rx_bad_checksum: u64,
    /// Packets dropped as malformed or unsupported.
    pub rx_malformed: u64,
    /// Packets not addressed to us.
    pub rx_not_for_us: u64,
    /// SYNs dropped because a backlog or the socket table was full.
    pub syn_dropped: u64,
    /// Of `syn_dropped`, those dropped because the listener's backlog was
    /// full (left unanswered, as Linux does).
    pub listen_overflows: u64,
    /// Packets produced by `poll_transmit`.
    pub tx_packets: u64,
    /// RSTs sent for closed ports.
    pub rst_sent: u64,
    /// ICMP messages sent (echo replies and errors).
    pub icmp_sent: u64,
    /// Echo requests to our addresses answered with an echo reply (the
    /// peer pinging us).
    pub echo_requests_answered: u64,
    /// Echo requests sent from echo sockets.
    pub echo_requests_sent: u64,
    /// Echo replies delivered to an echo socket.
    pub echo_replies_delivered: u64,
    /// Echo replies no echo socket waited for (or whose queue was full).
    pub echo_replies_dropped: u64,
    /// Control packets suppressed by rate limiting or a full queue.
    pub control_dropped: u64,
    /// Datagrams dropped because a UDP receive queue was full.
    pub udp_dropped: u64,
    /// Fragments received.
    pub fragments: u64,
    /// Packets reassembled from fragments.
    pub reassembled: u64,
    /// Datagrams larger than the MTU sent in fragments.
    pub fragmented: u64,
    /// Fragments sent.
    pub fragments_sent: u64,
}

/// A token bucket for control packets.
#[derive(Debug)]
struct Bucket {
    tokens: u32,
    max: u32,
    last: Option<Instant>,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let add = (now.saturating_duration_since(last).as_millis() as u64
                * u64::from(self.max))
                / 1000;
            if add > 0 {
                self.tokens = (u64::from(self.tokens) + add).min(u64::from(self.max)) as u32;
                self.last = Some(now);
            }
        } else {
            self.last = Some(now);
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }
}

/// Pre-allocated buffers for packets the stack originates itself (RSTs
/// for closed ports, ICMP replies and errors).
#[derive(Debug)]
struct ControlQueue {
    bufs: Vec<Vec<u8>>,
    lens: VecDeque<(usize, usize)>,
    free: Vec<usize>,
}

impl ControlQueue {
    fn new(slots: usize, mtu: usize) -> Self {
        ControlQueue {
            bufs: (0..slots).map(|_| vec![0u8; mtu]).collect(),
            lens: VecDeque::with_capacity(slots),
            free: (0..slots).collect(),
        }
    }
    /// Builds a packet with `f` (which returns its length, 0 to cancel).
    fn push_with(&mut self, f: impl FnOnce(&mut [u8]) -> usize) -> bool {
        let Some(i) = self.free.pop() else {
            return false;
        };
        let n = f(&mut self.bufs[i]);
        if n == 0 {
            self.free.push(i);
            return false;
        }
        self.lens.push_back((i, n));
        true
    }
    fn pop_into(&mut self, out: &mut [u8]) -> Option<usize> {
        let (i, n) = self.lens.pop_front()?;
        self.free.push(i);
        if out.len() < n {
            return Some(0);
        }
        out[..n].copy_from_slice(&self.bufs[i][..n]);
        Some(n)
    }
    fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }
}

/// A listening TCP socket.
#[derive(Debug)]
pub(crate) struct Listener {
    pub addr: SocketAddr,
    pub backlog: usize,
    /// Connections in SYN-RECEIVED.
    pub half_open: usize,
    /// Established connections waiting for `tcp_accept`: (index, generation).
    pub queue: VecDeque<(u32, u32)>,
    /// An `Incoming` event is queued and not yet taken.
    pub incoming_queued: bool,
}

/// The TCP/IP stack. See the module documentation for the driving order.
#[derive(Debug)]
pub struct Stack {
    cfg: StackConfig,
    rng: Rng,
    isn_key: (u64, u64),
    port_key: (u64, u64),
    /// RFC 6056 algorithm 3's `next_ephemeral`: successive connections to
    /// one destination take successive ports, so a port comes back only
    /// after the whole range (not at random, into a peer's TIME-WAIT).
    port_next: u32,
    epoch: Option<Instant>,
    last_now: Option<Instant>,
    pub(crate) tcp: Slab<Tcb>,
    tcp_map: HashMap<(SocketAddr, SocketAddr), u32>,
    tcp_dirty: Vec<bool>,
    tcp_deadline: Vec<Option<Instant>>,
    /// Earliest heap entry per connection (so the heap holds at most one
    /// live entry per connection; later deadlines are re-pushed lazily).
    tcp_scheduled: Vec<Option<Instant>>,
    timers: BinaryHeap<Reverse<(Instant, u32)>>,
    due: Vec<u32>,
    dirty: VecDeque<u32>,
    listeners: Slab<Listener>,
    listen_map: HashMap<SocketAddr, u32>,
    udp: Slab<UdpSocket>,
    udp_map: HashMap<SocketAddr, u32>,
    /// Echo sockets by (local address, echo identifier).
    echo_map: HashMap<SocketAddr, u32>,
    udp_dirty: VecDeque<u32>,
    events: VecDeque<SocketEvent>,
    ctrl: ControlQueue,
    bucket: Bucket,
    frag: Reassembler,
    /// The datagram being sent in fragments.
    frag_out: FragOut,
    ip_ident: u16,
    scratch: Vec<u8>,
    stats: Stats,
}

impl Stack {
    /// Creates a stack owning `config.addresses`.
    pub fn new(config: StackConfig) -> Stack {
        let mut rng = Rng::new(config.seed);
        let drawn = (rng.next_u64(), rng.next_u64());
        let isn_key = config.clock_key.unwrap_or(drawn);
        let port_key = (rng.next_u64(), rng.next_u64());
        let port_next = rng.next_u64() as u32;
        let ip_ident = rng.next_u64() as u16;
        let mtu = config.mtu.clamp(1280, 65535);
        let mut cfg = config;
        cfg.mtu = mtu;
        Stack {
            rng,
            isn_key,
            port_key,
            port_next,
            epoch: None,
            last_now: None,
            tcp: Slab::default(),
            tcp_map: HashMap::new(),
            tcp_dirty: Vec::new(),
            tcp_deadline: Vec::new(),
            tcp_scheduled: Vec::new(),
            timers: BinaryHeap::with_capacity(64),
            due: Vec::with_capacity(64),
            dirty: VecDeque::with_capacity(64),
            listeners: Slab::default(),
            listen_map: HashMap::new(),
            udp: Slab::default(),
            udp_map: HashMap::new(),
            echo_map: HashMap::new(),
            udp_dirty: VecDeque::with_capacity(16),
            events: VecDeque::with_capacity(256),
            ctrl: ControlQueue::new(16, mtu),
            bucket: Bucket {
                tokens: cfg.control_rate,
                max: cfg.control_rate,
                last: None,
            },
            frag: Reassembler::new(cfg.reassembly_slots, cfg.reassembly_timeout),
            frag_out: FragOut::default(),
            ip_ident,
            scratch: vec![0u8; mtu],
            stats: Stats::default(),
            cfg,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &StackConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Number of TCP connections held (including TIME-WAIT).
    pub fn tcp_socket_count(&self) -> usize {
        self.tcp.len()
    }

    fn touch(&mut self, now: Instant) {
        if self.epoch.is_none() {
            self.epoch = Some(now);
        }
        self.last_now = Some(now);
    }

    pub(crate) fn is_local(&self, a: IpAddr) -> bool {
        self.cfg.addresses.contains(&a)
    }

    /// The host clock at `now` (see [`StackConfig::clock_anchor`]), or
    /// the time since the stack's first `now`.
    fn clock(&self, now: Instant) -> Duration {
        match self.cfg.clock_anchor {
            Some((at, read)) if now >= at => read.saturating_add(now - at),
            Some((at, read)) => read.saturating_sub(at - now),
            None => self
                .epoch
                .map_or(Duration::ZERO, |e| now.saturating_duration_since(e)),
        }
    }

    /// RFC 6528: ISN = M + F(localip, localport, remoteip, remoteport, secretkey),
    /// M a 4-microsecond clock.
    fn isn(&self, now: Instant, local: SocketAddr, remote: SocketAddr) -> u32 {
        let m = (self.clock(now).as_micros() / 4) as u32;
        let mut b = [0u8; 36];
        let n = addr_bytes(local, remote, &mut b);
        m.wrapping_add(siphash(self.isn_key, &b[..n]) as u32)
    }

    /// The TSval offset of a new connection, as Linux picks it: a clock in
    /// milliseconds plus a keyed hash of the address pair only (not the
    /// ports). TSvals towards one peer then keep increasing from one
    /// connection to the next, so a peer still holding TIME-WAIT for an
    /// earlier connection on the same ports accepts our new SYN (RFC 6191)
    /// instead of answering it with an ACK for the old one — with a random
    /// offset per connection half of those SYNs were refused and waited for
    /// a 1 s retransmission. Across processes the same holds with a shared
    /// [`StackConfig::clock_anchor`] and [`StackConfig::clock_key`].
    pub(crate) fn ts_offset(&self, now: Instant, local: IpAddr, remote: IpAddr) -> u32 {
        let ms = self.clock(now).as_millis() as u32;
        let mut b = [0u8; 36];
        let n = addr_bytes(
            SocketAddr::new(local, 0),
            SocketAddr::new(remote, 0),
            &mut b,
        );
        ms.wrapping_add(siphash(self.isn_key, &b[..n]) as u32)
    }

    fn mss_for(&self, addr: IpAddr) -> u16 {
        let hdr = if addr.is_ipv4() { 40 } else { 60 };
        (self.cfg.mtu - hdr) as u16
    }

    fn source_for(&self, remote: IpAddr) -> Option<IpAddr> {
        self.cfg
            .addresses
            .iter()
            .copied()
            .find(|a| a.is_ipv4() == remote.is_ipv4())
    }

    /// Picks an ephemeral port free for (local ip, remote) (RFC 6056 alg. 3).
    fn ephemeral_port(&mut self, local: IpAddr, remote: SocketAddr, udp: bool) -> Option<u16> {
        const LOW: u32 = 32768;
        const COUNT: u32 = 28232; // Linux's default 32768..60999
        let mut b = [0u8; 36];
        let n = addr_bytes(SocketAddr::new(local, 0), remote, &mut b);
        let offset = siphash(self.port_key, &b[..n]) as u32;
        for _ in 0..COUNT {
            let next = self.port_next;
            self.port_next = next.wrapping_add(1);
            let port = (LOW + offset.wrapping_add(next) % COUNT) as u16;
            let l = SocketAddr::new(local, port);
            let taken = if udp {
                self.udp_map.contains_key(&l)
            } else {
                self.tcp_map.contains_key(&(l, remote)) || self.listen_map.contains_key(&l)
            };
            if !taken {
                return Some(port);
            }
        }
        None
    }

    /// The next deadline at which `handle_timeout` (or `poll_transmit`)
    /// must be called; the last `now` seen if output is pending already.
    pub fn poll_at(&self) -> Option<Instant> {
        if !self.dirty.is_empty()
            || !self.ctrl.is_empty()
            || !self.udp_dirty.is_empty()
            || self.frag_out.busy()
        {
            return self.last_now;
        }
        let tcp = self.timers.peek().map(|r| r.0 .0);
        match (tcp, self.frag.poll_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.touch(now);
        self.frag.expire(now);
        // Take the due entries first: a connection that re-arms a timer at
        // `now` runs again on the next call, not in a loop here.
        let mut due = std::mem::take(&mut self.due);
        while let Some(&Reverse((at, idx))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let i = idx as usize;
            if self.tcp_scheduled[i] == Some(at) {
                self.tcp_scheduled[i] = None;
            }
            due.push(idx);
        }
        for &idx in &due {
            match self.tcp_deadline[idx as usize] {
                Some(d) if d <= now => {
                    if let Some(t) = self.tcp.at_mut(idx) {
                        t.handle_timeout(now);
                    }
                    self.after_tcb(idx, now);
                }
                // The deadline moved later: reschedule.
                Some(d) => self.schedule(idx, d),
                None => {}
            }
        }
        due.clear();
        self.due = due;
    }

    /// Whether a connection timer is due.
    pub(crate) fn timer_due(&self, now: Instant) -> bool {
        self.timers.peek().is_some_and(|r| r.0 .0 <= now)
    }

    fn schedule(&mut self, idx: u32, at: Instant) {
        let i = idx as usize;
        let earlier = match self.tcp_scheduled[i] {
            Some(s) => at < s,
            None => true,
        };
        if earlier {
            self.tcp_scheduled[i] = Some(at);
            self.timers.push(Reverse((at, idx)));
        }
    }

    /// Bookkeeping after anything touched connection `idx`: events,
    /// listener queues, dispatch queue, deadline, reclamation.
    pub(crate) fn after_tcb(&mut self, idx: u32, now: Instant) {
        self.after_tcb_inner(idx, now, true)
    }

    /// As `after_tcb`; `redirty` false when the connection just said it has
    /// nothing to send (so it is not queued again until something changes).
    pub(crate) fn after_tcb_inner(&mut self, idx: u32, _now: Instant, redirty: bool) {
        let gen = self.tcp.gen(idx);
        let Some(t) = self.tcp.at_mut(idx) else {
            if let Some(d) = self.tcp_deadline.get_mut(idx as usize) {
                *d = None;
            }
            return;
        };
        let mut events = std::mem::take(&mut t.events);
        if t.app_closed && t.listener.is_none() {
            events = 0; // the application has let go of this handle
        }
        if t.listener.is_none() {
            // At most one queued event of each kind per connection, so the
            // queue stays bounded even if the driver drains it late.
            events &= !t.queued_events;
            t.queued_events |= events;
        }
        let listener = t.listener;
        let handle = TcpHandle { idx, gen };
        let closed_child = listener.is_some() && t.state == crate::tcp::State::Closed;
        let wants = redirty && t.wants_dispatch();
        let deadline = t.poll_at();
        let error = t.error;
        if events != 0 {
            use crate::tcp::ev;
            if let Some((li, lg)) = listener {
                if events & ev::ACCEPTABLE != 0 {
                    if let Some(l) = self.listeners.get_mut(li, lg) {
                        l.half_open = l.half_open.saturating_sub(1);
                        l.queue.push_back((idx, gen));
                        if !l.incoming_queued {
                            l.incoming_queued = true;
                            self.events.push_back(SocketEvent {
                                handle: SocketHandle::Listener(ListenerHandle { idx: li, gen: lg }),
                                kind: SocketEventKind::Incoming,
                            });
                        }
                    }
                    if let Some(t) = self.tcp.at_mut(idx) {
                        t.listener = None;
                    }
                }
            } else {
                let h = SocketHandle::Tcp(handle);
                let mut push = |kind| self.events.push_back(SocketEvent { handle: h, kind });
                if events & ev::CONNECTED != 0 {
                    push(SocketEventKind::Connected);
                }
                if events & ev::ERROR != 0 {
                    if let Some(e) = error {
                        push(SocketEventKind::Error(e));
                    }
                }
                if events & ev::READABLE != 0 {
                    push(SocketEventKind::Readable);
                }
                if events & ev::WRITABLE != 0 {
                    push(SocketEventKind::Writable);
                }
                if events & ev::CLOSED != 0 {
                    push(SocketEventKind::Closed);
                }
            }
        }
        if closed_child {
            // A half-open passive connection died before being established.
            if let Some((li, lg)) = listener {
                if let Some(l) = self.listeners.get_mut(li, lg) {
                    l.half_open = l.half_open.saturating_sub(1);
                }
            }
            if let Some(t) = self.tcp.at_mut(idx) {
                t.listener = None;
                t.app_closed = true;
            }
        }
        let reclaim = self.tcp.at(idx).is_some_and(|t| t.reclaimable());
        if reclaim && !(redirty && self.tcp.at(idx).is_some_and(|t| t.wants_dispatch())) {
            self.remove_tcb(idx);
            return;
        }
        if wants && !self.tcp_dirty[idx as usize] {
            self.tcp_dirty[idx as usize] = true;
            self.dirty.push_back(idx);
        }
        self.tcp_deadline[idx as usize] = deadline;
        if let Some(d) = deadline {
            self.schedule(idx, d);
        }
    }

    fn remove_tcb(&mut self, idx: u32) {
        if let Some(t) = self.tcp.remove(idx) {
            self.tcp_map.remove(&(t.local, t.remote));
        }
        self.tcp_deadline[idx as usize] = None;
    }

    fn insert_tcb(&mut self, t: Tcb) -> TcpHandle {
        let key = (t.local, t.remote);
        let (idx, gen) = self.tcp.insert(t);
        let i = idx as usize;
        if self.tcp_dirty.len() <= i {
            self.tcp_dirty.resize(i + 1, false);
            self.tcp_deadline.resize(i + 1, None);
            self.tcp_scheduled.resize(i + 1, None);
        }
        self.tcp_map.insert(key, idx);
        TcpHandle { idx, gen }
    }

    fn next_ident(&mut self) -> u16 {
        self.ip_ident = self.ip_ident.wrapping_add(1);
        self.ip_ident
    }
}

fn addr_bytes(local: SocketAddr, remote: SocketAddr, b: &mut [u8; 36]) -> usize {
    let mut n = 0;
    for a in [local, remote] {
        match a.ip() {
            IpAddr::V4(v) => {
                b[n..n + 4].copy_from_slice(&v.octets());
                n += 4;
            }
            IpAddr::V6(v) => {
                b[n..n + 16].copy_from_slice(&v.octets());
                n += 16;
            }
        }
        b[n..n + 2].copy_from_slice(&a.port().to_be_bytes());
        n += 2;
    }
    n
}
