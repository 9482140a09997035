// About 1,100 lines: the engine loop and the per-peer work it does between flows, kept in one reading order.
//! The engine thread: the one owner of the tcpip [`Stack`], the noise
//! [`Device`] and the UDP socket. Everything else talks to it through
//! lock-free queues ([`Command`]s, flow kicks) and an eventfd waker.
//!
//! One turn of the loop: read every queued datagram (`recvmmsg` batches;
//! decapsulate, check the inner source against the router, feed the
//! stack), run commands from the bridge, move bytes between the flows'
//! queues and their TCP sockets, handle stack events, then drain the
//! stack's output (route each packet to a peer, encapsulate, send) and the
//! device's output (handshakes, keepalives), and sleep in `poll` until a
//! datagram, a kick, a finished crypto job or the next stack/device
//! deadline.
//!
//! The ChaCha20-Poly1305 of data messages runs on the workers of
//! [`crate::crypto_pool`] when a turn has more than [`INLINE_CRYPTO`] of
//! them: the engine thread takes a ticket from the device (counter, key,
//! replay check), queues the job, and goes on; results come back in
//! submission order and are finished here (replay window commit, timers,
//! AllowedIPs check, stack input; or the send). Handshakes, cookie replies
//! and keepalives never leave this thread, and a turn with one or two
//! packets does its crypto inline (a hand-off would cost more than it saves).
//!
//! [`Engine`] owns everything and drives, below it, the TCP flow table
//! ([`crate::tcp_flows`]) and the datagram flows ([`crate::udp_flows`]),
//! lending them the stack for each call ([`Lent`]); peers' reachability
//! is [`crate::reach`], the UDP socket toward the peers [`crate::endpoint`].

use crate::addr::canonical;
use crate::command::Command;
use crate::counters::{Counters, LoadMeter};
use crate::crypto_pool::{CryptoError, CryptoPool, Job, Work};
use crate::endpoint::Endpoint;
use crate::flow::{FlowShared, Kick};
use crate::lend::Lent;
use crate::peer_state::PeerState;
use crate::reach::{Change, Facts, Verdict, UNREACHABLE_AFTER};

use crate::tcp_direct;
use crate::tcp_flows::TcpFlows;
use crate::udp_flows::{self, UdpFlows};
use crate::udp_rx::{self, RxBatch};
use crate::{packet, Errno, PeerStatus};
use crossbeam_queue::SegQueue;
use mio::{Events, Poll, Token};
use noise::messages::{DATA_HEADER_LEN, DATA_MIN_LEN, TYPE_DATA};
use noise::session::data_message_len;
use noise::{Decapsulated, Device, Encapsulated};
use router::{Route, Router};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tcpip::{SocketEventKind, SocketHandle, Stack};
use tokio::sync::oneshot;
use tracing::{debug, info, trace, warn};

/// Lends the flow tables what they act on ([`Lent`]), as borrows of the
/// engine's fields disjoint from `tcp` and `udp`.
macro_rules! lend {
    ($e:ident) => {
        Lent {
            stack: &mut $e.stack,
            router: &$e.router,
            poll: &$e.poll,
            counters: &mut $e.counters,
            live: &$e.live,
            kick: &$e.kick,
            commands: &$e.commands,
        }
    };
}

/// mio token of the UDP socket.
pub const UDP: Token = Token(0);
/// mio token of the waker.
pub const WAKER: Token = Token(1);
/// Datagrams read per loop turn before other work gets a chance.
const RX_BUDGET: usize = 512;
/// Largest UDP datagram.
const DATAGRAM: usize = 65_536;
/// Data messages in one batch up to which the engine thread seals or opens
/// them itself when no job is in flight (the connect and request/response
/// path: one packet at a time, where waking a worker only adds latency).
pub const INLINE_CRYPTO: usize = 2;
/// Jobs gathered before they are handed to the workers mid-batch (so they
/// start while the stack produces the rest).
const HAND_OFF: usize = 32;

/// How long handshakes to a peer with a host-name endpoint fail before
/// the name is resolved again (three handshake retries).
const RERESOLVE_AFTER: Duration = Duration::from_secs(15);
/// A session whose handshake completed this soon after the engine started
/// is the engine's first: its handshake took that long (reported by
/// [`Command::Handshake`]); a later one's duration is not known and
/// reported as zero.
const FIRST_HANDSHAKE_WINDOW: Duration = Duration::from_secs(5);

/// The engine thread's state.
pub struct Engine {
    stack: Stack,
    device: Device,
    router: Arc<Router>,
    peers: Vec<PeerState>,
    by_noise: HashMap<noise::PeerId, usize>,
    /// The UDP socket toward the peers.
    endpoint: Endpoint,
    poll: Poll,
    kick: Arc<Kick>,
    commands: Arc<SegQueue<Command>>,
    live: Arc<AtomicUsize>,
    /// TCP flows and tunnel listeners.
    tcp: TcpFlows,
    /// Datagram flows.
    udp: UdpFlows,
    /// The last `recvmmsg` batch.
    rx: RxBatch,
    plain: Vec<u8>,
    /// Longest IP packet the stack writes.
    ip_len: usize,
    wire: Vec<u8>,
    /// Workers sealing and opening data messages, results in order.
    crypto: CryptoPool<Carry>,
    /// Crypto jobs of this batch not yet handed to `crypto`.
    jobs: Vec<Job<Carry>>,
    counters: Counters,
    /// Handshake rate, for the under-load switch.
    load: LoadMeter,
    /// What the device was last told by `set_under_load`.
    under_load: bool,
    /// Handshakes asked for by [`Command::Handshake`], with when.
    handshake_waiters: Vec<(usize, Instant, oneshot::Sender<Duration>)>,
    /// When the engine was made (the first handshakes start then).
    started: Instant,
    dns: crate::dns_udp::DnsUdp,
}

/// What [`Engine::new`] needs.
pub struct EngineParts {
    /// The stack, with our addresses.
    pub stack: Stack,
    /// The device, peers added in config order.
    pub device: Device,
    /// The routing table.
    pub router: Arc<Router>,
    /// Peers in config (router) order.
    pub peers: Vec<PeerState>,
    /// The bound UDP socket.
    pub sock: std::net::UdpSocket,
    /// Whether it is a dual-stack IPv6 socket.
    pub sock_v6: bool,
    /// Poll instance the waker of `kick` belongs to.
    pub poll: Poll,
    /// Flow kicks.
    pub kick: Arc<Kick>,
    /// Commands.
    pub commands: Arc<SegQueue<Command>>,
    /// Count of live flows, kept here for the launcher.
    pub live: Arc<AtomicUsize>,
    /// Crypto worker threads besides the engine thread (0: all inline).
    pub crypto_workers: usize,
}

/// Where a crypto job's result goes.
#[derive(Debug)]
pub enum Carry {
    /// A sealed data message, to send to this endpoint.
    Out {
        /// The peer's endpoint.
        to: SocketAddr,
    },
    /// A data message that came from this address, opened.
    In {
        /// The datagram's source.
        from: SocketAddr,
    },
}

impl Engine {
    /// Registers the socket; fails only if the poller refuses it.
    pub fn new(p: EngineParts) -> io::Result<Engine> {
        let endpoint = Endpoint::new(p.sock, p.sock_v6, &p.poll, UDP)?;
        let by_noise = p
            .peers
            .iter()
            .enumerate()
            .map(|(i, s)| (s.noise, i))
            .collect();
        let mtu = p.stack.config().mtu;
        let kick = Arc::clone(&p.kick);
        // The worker fenced after queuing its result; the engine thread
        // sets `sleeping` before its last look at the pool: one of the two
        // sees the other (no lost wakeup), and an awake thread costs a load.
        let crypto = CryptoPool::new(p.crypto_workers, move || {
            if kick.sleeping.load(Ordering::SeqCst) {
                kick.wake();
            }
        });
        debug!(workers = crypto.workers(), "crypto workers started");
        Ok(Engine {
            stack: p.stack,
            device: p.device,
            router: p.router,
            peers: p.peers,
            by_noise,
            endpoint,
            poll: p.poll,
            kick: p.kick,
            commands: p.commands,
            live: p.live,
            tcp: TcpFlows::default(),
            udp: UdpFlows::default(),
            rx: RxBatch::new(udp_rx::SLOTS, DATAGRAM),
            plain: vec![0; DATAGRAM],
            ip_len: mtu.max(1500),
            wire: vec![0; mtu.max(1500) + 64],
            crypto,
            jobs: Vec::with_capacity(HAND_OFF * 2),
            counters: Counters::default(),
            load: LoadMeter::default(),
            under_load: false,
            handshake_waiters: Vec::new(),
            started: Instant::now(),
            dns: Default::default(),
        })
    }

    /// Runs forever (the process exits around it).
    pub fn run(mut self) {
        let now = Instant::now();
        for p in &self.peers {
            // Peers with a persistent keepalive get a session at once, as
            // with `wg set … persistent-keepalive`.
            if p.endpoint.is_some() && p.keepalive {
                debug!(peer = %p.label, "persistent keepalive: handshake at start");
                let _ = self.device.force_handshake(p.noise, now);
            }
        }
        let mut events = Events::with_capacity(64);
        let mut last_log = (Instant::now(), Counters::default());
        loop {
            self.log_counters(&mut last_log);
            let now = Instant::now();
            let more_rx = self.receive(now);
            self.deliver(now);
            self.run_commands(now);
            self.tcp.run_kicks(&mut lend!(self), now);
            self.tcp.service_ready(&mut lend!(self), now);
            self.udp.service_ready(&mut lend!(self));
            self.turn(now);

            // Nothing else to do: take on crypto no worker started yet.
            self.crypto.help();
            // Sleep unless work is known to be waiting.
            self.kick.sleeping.store(true, Ordering::SeqCst);
            let busy = more_rx
                || !self.kick.queue.is_empty()
                || !self.commands.is_empty()
                || self.tcp.has_ready()
                || self.udp.has_ready()
                || self.crypto.has_ready();
            let timeout = if busy {
                Some(Duration::ZERO)
            } else {
                self.next_deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()))
            };
            // Polled even when busy (timeout 0): datagram flows learn
            // their readiness only from the poller.
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    warn!(error = %e, "engine poll failed");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            for ev in events.iter() {
                if let Some(id) = ev.token().0.checked_sub(tcp_direct::TOKEN_BASE) {
                    self.tcp.mark_ready(id as u64, ev);
                } else if let Some(id) = ev.token().0.checked_sub(udp_flows::TOKEN_BASE) {
                    self.udp.mark_ready(id as u64);
                }
            }
            self.kick.sleeping.store(false, Ordering::SeqCst);
        }
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        match (self.stack.poll_at(), self.device.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Stack events, timers and output until nothing is left to do now.
    fn turn(&mut self, now: Instant) {
        if self.under_load && !self.load.under_load(now) {
            self.set_under_load(false);
        }
        if self.device.poll_timeout().is_some_and(|d| d <= now) {
            self.device.handle_timeout(now);
            for i in 0..self.peers.len() {
                self.update_reach(i, now);
            }
            self.check_gave_up(now);
            self.check_reresolve(now);
        }
        // poll_transmit runs due TCP timers itself; this also covers the
        // others (fragment reassembly expiry).
        if self.stack.poll_at().is_some_and(|d| d <= now) {
            self.stack.handle_timeout(now);
        }
        for _ in 0..64 {
            self.handle_events(now);
            let sent = self.deliver(now) + self.flush_stack(now) + self.flush_device(now);
            if sent == 0 {
                break;
            }
        }
        self.handle_events(now);
    }

    // ---- network input ----

    /// Reads datagrams; true if the budget ran out with more waiting.
    fn receive(&mut self, now: Instant) -> bool {
        let mut rx = std::mem::take(&mut self.rx);
        let mut read = 0;
        let mut more = true;
        while read < RX_BUDGET {
            match self.endpoint.recv_batch(&mut rx) {
                Ok(n) => {
                    read += n.max(1);
                    self.counters.rx_datagrams += n as u64;
                    for k in 0..n {
                        if let Some((src, d)) = rx.get(k) {
                            self.handle_received(canonical(src), d, now);
                        }
                    }
                    self.dispatch(now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    more = false;
                    break;
                }
                Err(e) => {
                    // Interrupted, or an ICMP error from an earlier send
                    // (e.g. port unreachable at an old endpoint): go on.
                    read += 1;
                    trace!(error = %e, "udp receive");
                }
            }
        }
        self.rx = rx;
        more
    }

    /// A data message with content becomes a crypto job; everything else
    /// (handshakes, cookie replies, keepalives) is handled here and now.
    fn handle_received(&mut self, src: SocketAddr, datagram: &[u8], now: Instant) {
        if datagram.first() != Some(&TYPE_DATA) || datagram.len() <= DATA_MIN_LEN {
            self.handle_datagram(src, datagram, now);
            return;
        }
        match self.device.prepare_open(datagram, now) {
            Ok(ticket) => {
                let mut buf = self.crypto.buffer(datagram.len());
                buf.copy_from_slice(datagram);
                let work = Work::Open {
                    ticket,
                    len: datagram.len(),
                };
                self.jobs.push(Job::new(work, buf, Carry::In { from: src }));
            }
            Err(e) => self.rejected(src, &e),
        }
    }

    /// Counts a datagram the device refused.
    fn rejected(&mut self, src: SocketAddr, e: &noise::DecapsulateError) {
        match e {
            noise::DecapsulateError::Message(_) => self.counters.rx_malformed += 1,
            noise::DecapsulateError::InvalidMac1 => self.counters.rx_bad_mac1 += 1,
            _ => self.counters.rx_rejected += 1,
        }
        trace!(from = %src, error = %e, "datagram rejected");
    }

    // ---- crypto jobs ----

    /// Hands this batch's crypto jobs on: done here when they are few and
    /// nothing is in flight, else queued for the workers (in order).
    fn dispatch(&mut self, now: Instant) {
        if self.jobs.is_empty() {
            return;
        }
        let mut jobs = std::mem::take(&mut self.jobs);
        if jobs.len() <= INLINE_CRYPTO && self.crypto.in_flight() == 0 {
            for mut job in jobs.drain(..) {
                job.run();
                self.finish_job(job, now);
            }
        } else {
            for job in jobs.drain(..) {
                while self.crypto.is_full() {
                    match self.crypto.wait_next() {
                        Some(j) => self.finish_job(j, now),
                        None => break,
                    }
                }
                self.crypto.submit(job);
            }
        }
        self.jobs = jobs;
        self.deliver(now);
    }

    /// Finishes the crypto jobs that came back, in order; returns how many.
    fn deliver(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while let Some(job) = self.crypto.next_ready() {
            n += 1;
            self.finish_job(job, now);
        }
        self.flush_tx();
        n
    }

    /// The engine thread's half after the crypto: send a sealed message;
    /// commit an opened one and give its packet to the stack.
    fn finish_job(&mut self, job: Job<Carry>, now: Instant) {
        let Job {
            work,
            buf,
            meta,
            outcome,
            ..
        } = job;
        match (meta, outcome) {
            (Carry::Out { to }, Ok(len)) => match buf.get(..len) {
                Some(msg) => self.queue_udp(to, msg),
                None => self.counters.tx_errors += 1,
            },
            (Carry::Out { .. }, Err(e)) => {
                self.counters.tx_errors += 1;
                trace!(error = ?e, "sealing failed");
            }
            (Carry::In { from }, Ok(len)) => {
                let plain = buf.get(DATA_HEADER_LEN..DATA_HEADER_LEN + len);
                match (&work, plain) {
                    (Work::Open { ticket, .. }, Some(plain)) => {
                        match self.device.finish_open(ticket, plain, now) {
                            Ok(Decapsulated::Data { peer, len }) => {
                                self.data_in(peer, from, &plain[..len.min(plain.len())], now);
                            }
                            Ok(Decapsulated::Keepalive { peer }) => self.roam(peer, from),
                            Ok(_) => {}
                            Err(e) => self.rejected(from, &e),
                        }
                    }
                    _ => self.counters.rx_rejected += 1,
                }
            }
            (Carry::In { from }, Err(CryptoError::Open(e))) => self.rejected(from, &e),
            (Carry::In { .. }, Err(_)) => self.counters.rx_rejected += 1,
        }
        self.crypto.recycle(buf);
    }

    fn handle_datagram(&mut self, src: SocketAddr, datagram: &[u8], now: Instant) {
        let mut src_bytes = [0u8; 18];
        let src_len = match src.ip() {
            IpAddr::V4(a) => {
                src_bytes[..4].copy_from_slice(&a.octets());
                src_bytes[4..6].copy_from_slice(&src.port().to_be_bytes());
                6
            }
            IpAddr::V6(a) => {
                src_bytes[..16].copy_from_slice(&a.octets());
                src_bytes[16..18].copy_from_slice(&src.port().to_be_bytes());
                18
            }
        };
        if matches!(datagram.first(), Some(1) | Some(2)) {
            self.counters.rx_handshakes += 1;
            let busy = self.load.on_handshake(now);
            self.set_under_load(busy);
        }
        let mut plain = std::mem::take(&mut self.plain);
        let r = self
            .device
            .decapsulate(&src_bytes[..src_len], datagram, now, &mut plain);
        match r {
            Ok(Decapsulated::WriteToNetwork { peer, len }) => {
                if let Some(p) = peer {
                    self.roam(p, src);
                    if let Some(&i) = self.by_noise.get(&p) {
                        debug!(peer = %self.peers[i].label, from = %src, "handshake initiation received; responding");
                    }
                } else {
                    self.counters.cookie_replies += 1;
                }
                self.send_udp(src, &plain[..len]);
            }
            Ok(Decapsulated::HandshakeComplete { peer }) => {
                self.roam(peer, src);
                if let Some(&i) = self.by_noise.get(&peer) {
                    debug!(peer = %self.peers[i].label, endpoint = %src, "handshake complete");
                    self.handshake_done(i, now);
                }
            }
            Ok(Decapsulated::CookieReceived { peer }) => {
                if let Some(&i) = self.by_noise.get(&peer) {
                    debug!(peer = %self.peers[i].label, "cookie reply received (peer under load)");
                }
            }
            Ok(Decapsulated::Keepalive { peer }) => self.roam(peer, src),
            Ok(Decapsulated::Data { peer, len }) => self.data_in(peer, src, &plain[..len], now),
            Err(e) => self.rejected(src, &e),
        }
        self.plain = plain;
    }

    /// An authenticated IP packet from `peer`: to the stack if its source
    /// is in the peer's AllowedIPs.
    fn data_in(&mut self, peer: noise::PeerId, src: SocketAddr, pkt: &[u8], now: Instant) {
        self.roam(peer, src);
        let allowed = match (self.by_noise.get(&peer), packet::source(pkt)) {
            (Some(&i), Some(ip)) => self.router.inbound_allowed(router::PeerId(i as u32), ip),
            _ => false,
        };
        if allowed {
            self.stack.process(now, pkt);
        } else {
            self.counters.inbound_source_dropped += 1;
            let n = self.counters.inbound_source_dropped;
            // Logged at 1, 2, 4, 8… drops: visible, never a flood.
            if n.is_power_of_two() {
                let label = self
                    .by_noise
                    .get(&peer)
                    .map(|&i| self.peers[i].label.as_str());
                debug!(
                    peer = label.unwrap_or("?"),
                    source = ?packet::source(pkt),
                    dropped_total = n,
                    "dropped a packet whose source is outside the peer's AllowedIPs"
                );
            }
        }
    }

    /// Switches the device's under-load mode (§5.3: cookie replies).
    fn set_under_load(&mut self, busy: bool) {
        if busy == self.under_load {
            return;
        }
        self.under_load = busy;
        self.device.set_under_load(busy);
        if busy {
            self.counters.under_load_periods += 1;
            debug!(
                periods = self.counters.under_load_periods,
                "under load: handshakes without a valid mac2 get cookie replies"
            );
        } else {
            debug!(
                cookie_replies = self.counters.cookie_replies,
                "no longer under load"
            );
        }
    }

    /// A peer's endpoint follows its latest authenticated datagram.
    fn roam(&mut self, peer: noise::PeerId, src: SocketAddr) {
        let Some(&i) = self.by_noise.get(&peer) else {
            return;
        };
        if self.peers[i].reach.is_down() {
            self.update_reach(i, Instant::now());
        }
        let p = &mut self.peers[i];
        if p.endpoint != Some(src) {
            debug!(peer = %p.label, old = ?p.endpoint, new = %src, "peer endpoint updated");
            p.endpoint = Some(src);
        }
    }

    // ---- network output ----

    /// Sends one datagram now (after whatever is batched, keeping order).
    fn send_udp(&mut self, to: SocketAddr, data: &[u8]) {
        self.counters.tx_errors += self.endpoint.send(to, data);
    }

    /// Adds a datagram to the outgoing batch (see [`Endpoint::queue`]).
    fn queue_udp(&mut self, to: SocketAddr, data: &[u8]) {
        self.counters.tx_errors += self.endpoint.queue(to, data);
    }

    /// Sends the batched datagrams.
    fn flush_tx(&mut self) {
        self.counters.tx_errors += self.endpoint.flush();
    }

    /// Sends the stack's packets to the peers the router names. Each
    /// packet is written where its data message will be sealed (a crypto
    /// job's buffer, after the 16-byte header).
    fn flush_stack(&mut self, now: Instant) -> usize {
        let mut n_sent = 0;
        let (ip_len, cap) = (self.ip_len, data_message_len(self.ip_len));
        loop {
            let mut buf = self.crypto.buffer(cap);
            let Some(n) = self
                .stack
                .poll_transmit(now, &mut buf[DATA_HEADER_LEN..DATA_HEADER_LEN + ip_len])
            else {
                self.crypto.recycle(buf);
                break;
            };
            let dst = packet::destination(&buf[DATA_HEADER_LEN..DATA_HEADER_LEN + n]);
            if n == 0 {
                self.crypto.recycle(buf);
                continue;
            }
            n_sent += 1;
            let Some((dst, proto, port)) = dst else {
                self.crypto.recycle(buf);
                continue;
            };
            match self.router.lookup(dst, proto, port) {
                Route::Peer(p) => self.send_to_peer(p.0 as usize, buf, n, now),
                Route::Direct => {
                    self.crypto.recycle(buf);
                    self.counters.no_route_dropped += 1;
                    trace!(dst = %dst, "dropped: no peer routes this destination");
                }
            }
            if self.jobs.len() >= HAND_OFF {
                self.dispatch(now);
            }
        }
        self.dispatch(now);
        self.flush_tx();
        n_sent
    }

    /// Encapsulates the packet `buf[16..16 + len]` for peer `i`: a crypto
    /// job when the device hands out a ticket, else the device's own path
    /// (no session yet: queued, maybe a handshake to send).
    fn send_to_peer(&mut self, i: usize, mut buf: Vec<u8>, len: usize, now: Instant) {
        let Some(p) = self.peers.get(i) else {
            self.crypto.recycle(buf);
            return;
        };
        let (id, endpoint) = (p.noise, p.endpoint);
        if let Some(ticket) = self.device.prepare_data(id, len, now) {
            match endpoint {
                Some(to) => {
                    let work = Work::Seal {
                        ticket,
                        payload_len: len,
                    };
                    self.jobs.push(Job::new(work, buf, Carry::Out { to }));
                }
                None => {
                    self.counters.no_endpoint_dropped += 1;
                    self.crypto.recycle(buf);
                }
            }
            return;
        }
        let mut wire = std::mem::take(&mut self.wire);
        let pkt = &buf[DATA_HEADER_LEN..DATA_HEADER_LEN + len];
        match self.device.encapsulate(id, pkt, now, &mut wire) {
            Ok(Encapsulated::Data(n)) | Ok(Encapsulated::Handshake(n)) => match endpoint {
                Some(ep) if self.jobs.is_empty() && self.crypto.in_flight() == 0 => {
                    self.queue_udp(ep, &wire[..n]);
                }
                Some(to) => {
                    // Behind the jobs in flight, to keep the peer's order.
                    buf.clear();
                    buf.extend_from_slice(&wire[..n]);
                    self.jobs
                        .push(Job::new(Work::Ready { len: n }, buf, Carry::Out { to }));
                    self.wire = wire;
                    return;
                }
                None => self.counters.no_endpoint_dropped += 1,
            },
            Ok(Encapsulated::Queued) => {}
            Err(e) => {
                self.counters.tx_errors += 1;
                trace!(error = %e, "encapsulate failed");
            }
        }
        self.wire = wire;
        self.crypto.recycle(buf);
    }

    /// Handshakes, queued data and keepalives the device wants sent.
    fn flush_device(&mut self, now: Instant) -> usize {
        let mut wire = std::mem::take(&mut self.wire);
        let mut n = 0;
        while let Ok(Some(t)) = self.device.poll_transmit(now, &mut wire) {
            n += 1;
            let ep = self
                .by_noise
                .get(&t.peer)
                .and_then(|&i| self.peers[i].endpoint);
            match ep {
                Some(ep) => self.send_udp(ep, &wire[..t.len]),
                None => self.counters.no_endpoint_dropped += 1,
            }
        }
        self.wire = wire;
        n
    }

    /// Re-evaluates whether peer `i` answers (see [`super::reach`]) and
    /// acts on a change: fails the connects waiting on a peer that went
    /// down, restarts handshakes in the background while programs want it.
    fn update_reach(&mut self, i: usize, now: Instant) {
        let Some(p) = self.peers.get_mut(i) else {
            return;
        };
        let Some(st) = self.device.peer_stats(p.noise, now) else {
            return;
        };
        match p.reach.update(now, Facts::from_stats(&st)) {
            None => {}
            Some(Change::Down) => {
                self.counters.peers_down += 1;
                warn!(
                    peer = %p.label,
                    endpoint = ?p.endpoint,
                    "peer unreachable: no answer to handshakes for {} s; connections to it fail with EHOSTUNREACH until it answers (handshakes go on in the background)",
                    UNREACHABLE_AFTER.as_secs()
                );
                self.tcp
                    .fail_connecting_to(&mut lend!(self), i, libc::EHOSTUNREACH, now);
            }
            Some(Change::Up) => {
                info!(peer = %p.label, endpoint = ?p.endpoint, "peer reachable again");
            }
            Some(Change::Retry) => {
                debug!(peer = %p.label, "peer still unreachable: handshaking again in the background");
                let id = p.noise;
                let _ = self.device.force_handshake(id, now);
            }
            Some(Change::Forgotten) => {
                debug!(peer = %p.label, "unreachable peer not asked for lately: background handshakes stop; the next connect tries afresh");
            }
        }
    }

    /// Resolves a host-name endpoint again when a handshake gives up.
    fn check_gave_up(&mut self, now: Instant) {
        for i in 0..self.peers.len() {
            let Some(st) = self.device.peer_stats(self.peers[i].noise, now) else {
                continue;
            };
            let rose = st.dropped > self.peers[i].dropped_seen;
            self.peers[i].dropped_seen = st.dropped;
            if rose && !st.has_session && st.handshake_started.is_none() {
                debug!(peer = %self.peers[i].label, "handshake gave up");
                if self.peers[i].host.is_some() {
                    self.peers[i].failing_since = Some(now);
                    self.spawn_reresolve(i);
                }
            }
        }
    }

    /// Resolves the host-name endpoint of each peer whose handshakes have
    /// been failing for [`RERESOLVE_AFTER`] again (as wireguard-tools'
    /// reresolve-dns does), on a helper thread: the name may now point
    /// elsewhere (dynamic DNS, a moved server).
    fn check_reresolve(&mut self, now: Instant) {
        for i in 0..self.peers.len() {
            if self.peers[i].host.is_none() || self.peers[i].reresolving {
                continue;
            }
            let id = self.peers[i].noise;
            let Some(st) = self.device.peer_stats(id, now) else {
                continue;
            };
            if st.has_session || st.handshake_attempts == 0 {
                self.peers[i].failing_since = None;
                continue;
            }
            let since = *self.peers[i].failing_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= RERESOLVE_AFTER {
                self.peers[i].failing_since = Some(now);
                self.spawn_reresolve(i);
            }
        }
    }

    /// Starts resolving peer `i`'s endpoint name; the answer comes back as
    /// [`Command::Reresolved`] (the engine thread never blocks on DNS).
    fn spawn_reresolve(&mut self, i: usize) {
        let Some((host, port)) = self.peers[i].host.clone() else {
            return;
        };
        debug!(peer = %self.peers[i].label, %host, "handshakes failing: resolving the endpoint again");
        let commands = Arc::clone(&self.commands);
        let kick = Arc::clone(&self.kick);
        let spawned = std::thread::Builder::new()
            .name("wg-reresolve".into())
            .spawn(move || {
                let addr = crate::addr::resolve(&host, port).ok();
                commands.push(Command::Reresolved { peer: i, addr });
                kick.wake();
            });
        self.peers[i].reresolving = spawned.is_ok();
    }

    /// Takes a re-resolved endpoint: a new address is used at once (a
    /// handshake is started towards it).
    fn reresolved(&mut self, i: usize, addr: Option<SocketAddr>, now: Instant) {
        let Some(p) = self.peers.get_mut(i) else {
            return;
        };
        p.reresolving = false;
        let host = p.host.as_ref().map_or("", |(h, _)| h.as_str());
        match addr {
            None => {
                debug!(peer = %p.label, %host, "endpoint name did not resolve; keeping the last address");
            }
            Some(a) if p.endpoint != Some(a) => {
                info!(peer = %p.label, %host, old = ?p.endpoint, new = %a, "peer endpoint re-resolved");
                p.endpoint = Some(a);
                let id = p.noise;
                let _ = self.device.force_handshake(id, now);
            }
            Some(_) => {}
        }
    }

    // ---- commands from the bridge ----

    fn run_commands(&mut self, now: Instant) {
        while let Some(c) = self.commands.pop() {
            match c {
                Command::Connect {
                    dst,
                    peer,
                    shared,
                    reply,
                    done,
                } => {
                    let r = self.connect(dst, peer, shared, done, now);
                    let _ = reply.send(r);
                }
                Command::UdpOpen { req, fd, reply } => {
                    let _ = reply.send(self.udp.open(&mut lend!(self), req, fd));
                }
                Command::UdpConnect { flow, peer, reply } => {
                    let _ = reply.send(self.udp.set_peer(&mut lend!(self), flow, peer));
                }
                Command::Listen { spec, sink, reply } => {
                    let _ = reply.send(self.tcp.listen(&mut lend!(self), spec, sink));
                }
                Command::Handshake { peer, done } => self.wait_for_handshake(peer, done, now),
                Command::Status { reply } => {
                    let _ = reply.send(self.status(now));
                }
                Command::DnsUdp {
                    server,
                    payload,
                    reply,
                } => {
                    // A down peer: the resolver hears at once (the reply
                    // dropped) instead of waiting out its timeouts.
                    let route = self
                        .router
                        .lookup(server.ip(), router::Proto::Udp, server.port());
                    if let Route::Peer(p) = route {
                        if self.refuse_if_down(p.0 as usize, now) {
                            debug!(server = %server, "dns query refused at once: peer unreachable");
                            continue;
                        }
                    }
                    let addresses = &self.stack.config().addresses;
                    let local = addresses
                        .iter()
                        .copied()
                        .find(|a| a.is_ipv4() == server.is_ipv4());
                    if let Some(local) = local {
                        let r = self
                            .dns
                            .start(&mut self.stack, local, server, &payload, reply);
                        if let Err(e) = r {
                            debug!(server = %server, errno = e, "dns query not sent");
                        }
                    }
                }
                Command::Reresolved { peer, addr } => self.reresolved(peer, addr, now),
                Command::AcceptMore => self.tcp.accept_more(&mut lend!(self), now),
                Command::TcpDirect {
                    flow,
                    fd,
                    reset,
                    done,
                } => {
                    self.tcp
                        .attach(&mut lend!(self), flow, fd, reset, done, now);
                }
                Command::TcpKeepalive {
                    flow,
                    keepalive,
                    reply,
                } => {
                    let r = self.tcp.keepalive(&mut lend!(self), flow, keepalive, now);
                    let _ = reply.send(r);
                }
                Command::TcpFlows { reply } => {
                    let _ = reply.send(self.tcp.report(&lend!(self), now));
                }
                Command::TcpInfo { flow, reply } => {
                    let _ = reply.send(self.tcp.info(&lend!(self), flow));
                }
                Command::Settle { reply } => {
                    let _ = reply.send(());
                }
                Command::Counters { reply } => {
                    let st = self.stack.stats();
                    let _ = reply.send(format!(
                        "{} syn_dropped={} listen_overflows={} echo_requests_answered={} \
                         echo_requests_sent={} echo_replies_delivered={} \
                         echo_replies_dropped={} inbound_pending={} flows={}",
                        self.counters,
                        st.syn_dropped,
                        st.listen_overflows,
                        st.echo_requests_answered,
                        st.echo_requests_sent,
                        st.echo_replies_delivered,
                        st.echo_replies_dropped,
                        self.tcp.inbound_pending(),
                        self.tcp.len()
                    ));
                }
            }
        }
    }

    /// [`Command::Handshake`]: answered at once when the peer has a
    /// session (`wrapguard up` on an engine whose first handshake is done
    /// must not force another and wait out `REKEY_TIMEOUT` for it), after
    /// the handshake in progress when there is one, else after a new one.
    /// The time reported is the handshake's own: from its first
    /// initiation (or from the engine's start, for the first one) to its
    /// completion.
    fn wait_for_handshake(&mut self, peer: usize, done: oneshot::Sender<Duration>, now: Instant) {
        let Some(p) = self.peers.get(peer) else {
            return;
        };
        let id = p.noise;
        let st = self.device.peer_stats(id, now).unwrap_or_default();
        if st.has_session {
            let took = st
                .last_handshake
                .filter(|t| t.saturating_duration_since(self.started) < FIRST_HANDSHAKE_WINDOW)
                .map(|t| t.saturating_duration_since(self.started))
                .unwrap_or_default();
            let _ = done.send(took);
            return;
        }
        if let Some(since) = st.handshake_started {
            self.handshake_waiters.push((peer, since, done));
            return;
        }
        self.handshake_waiters.push((peer, now, done));
        let _ = self.device.force_handshake(id, now);
    }

    /// Answers the [`Command::Handshake`]s waiting for peer `i`.
    fn handshake_done(&mut self, i: usize, now: Instant) {
        let mut k = 0;
        while k < self.handshake_waiters.len() {
            if self.handshake_waiters[k].0 == i {
                let (_, asked, done) = self.handshake_waiters.swap_remove(k);
                let _ = done.send(now.saturating_duration_since(asked));
            } else {
                k += 1;
            }
        }
    }

    /// One [`PeerStatus`] per configured peer.
    fn status(&mut self, now: Instant) -> Vec<PeerStatus> {
        let flows = self.tcp.per_peer(&self.router, self.peers.len());
        self.peers
            .iter()
            .zip(flows)
            .map(|(p, active_flows)| {
                let st = self.device.peer_stats(p.noise, now).unwrap_or_default();
                PeerStatus {
                    label: p.label.clone(),
                    endpoint: p.endpoint,
                    handshake_age: st.last_handshake.map(|t| now.saturating_duration_since(t)),
                    rx_bytes: st.rx_bytes,
                    tx_bytes: st.tx_bytes,
                    active_flows,
                    has_session: st.has_session,
                    unreachable: p.reach.is_down(),
                }
            })
            .collect()
    }

    /// Whether new work for `peer` is refused at once because the peer is
    /// down ([`Reach::on_connect`]); counted, and a refusal keeps the
    /// background handshakes going so the peer is usable as soon as it
    /// answers.
    fn refuse_if_down(&mut self, peer: usize, now: Instant) -> bool {
        let Some(p) = self.peers.get(peer) else {
            return false;
        };
        let id = p.noise;
        let facts = self
            .device
            .peer_stats(id, now)
            .map(|st| Facts::from_stats(&st))
            .unwrap_or_default();
        let Verdict::Refuse { retry_now } = self.peers[peer].reach.on_connect(now, facts) else {
            return false;
        };
        self.counters.connects_unreachable += 1;
        if retry_now {
            let _ = self.device.force_handshake(id, now);
        }
        true
    }

    fn connect(
        &mut self,
        dst: SocketAddr,
        peer: usize,
        shared: Arc<FlowShared>,
        done: oneshot::Sender<Result<(), Errno>>,
        now: Instant,
    ) -> Result<SocketAddr, Errno> {
        let p = self.peers.get(peer).ok_or(libc::ENETUNREACH)?;
        if p.endpoint.is_none() {
            // Nobody to send to until this peer contacts us.
            debug!(dst = %dst, peer = %p.label, "no endpoint known for the peer");
            return Err(libc::EHOSTUNREACH);
        }
        if self.refuse_if_down(peer, now) {
            debug!(dst = %dst, peer = %self.peers[peer].label, "connect refused at once: peer unreachable (EHOSTUNREACH)");
            return Err(libc::EHOSTUNREACH);
        }
        let label = &self.peers[peer].label;
        self.tcp
            .connect(&mut lend!(self), dst, peer, label, shared, done, now)
    }

    // ---- stack events ----

    fn handle_events(&mut self, now: Instant) {
        while let Some(ev) = self.stack.poll_event() {
            self.handle_event(ev.handle, ev.kind, now);
        }
    }

    fn handle_event(&mut self, handle: SocketHandle, kind: SocketEventKind, now: Instant) {
        match handle {
            SocketHandle::Listener(l) => {
                if kind == SocketEventKind::Incoming {
                    self.tcp.accept_all(&mut lend!(self), l, now);
                }
            }
            SocketHandle::Tcp(h) => self.tcp.on_event(&mut lend!(self), h, kind, now),
            SocketHandle::Udp(h) => {
                if self.dns.owns(h) {
                    self.dns.event(&mut self.stack, h, kind);
                    return;
                }
                match kind {
                    SocketEventKind::Readable => self.udp.down(&mut lend!(self), h),
                    SocketEventKind::Error(e) => self.udp.error(&mut lend!(self), h, e.errno()),
                    _ => {}
                }
            }
        }
    }

    /// Logs the counters at debug level when they changed (every 10 s at most).
    fn log_counters(&mut self, last: &mut (Instant, Counters)) {
        if last.0.elapsed() >= Duration::from_secs(10) && last.1 != self.counters {
            debug!(
                flows = self.tcp.len(),
                udp_flows = self.udp.len(),
                "engine counters: {}",
                self.counters
            );
            *last = (Instant::now(), self.counters.clone());
        }
    }
}
