//! The engine thread: the one owner of the tcpip [`Stack`], the noise
//! [`Device`] and the UDP socket. Everything else talks to it through
//! lock-free queues ([`Command`]s, flow kicks) and an eventfd waker.
//!
//! One turn of the loop: read every queued datagram (decapsulate, check the
//! inner source against the router, feed the stack), run commands from the
//! bridge, move bytes between the flows' queues and their TCP sockets,
//! handle stack events, then drain the stack's output (route each packet to
//! a peer, encapsulate, send) and the device's output (handshakes,
//! keepalives), and sleep in `poll` until a datagram, a kick or the next
//! stack/device deadline.

use super::backlog::{Pending, MAX_PENDING, STACK_BACKLOG};
use super::counters::{Counters, LoadMeter};
use super::flow::{FlowShared, Kick, MAX_CHUNK};
use super::reach::{Change, Facts, Reach, Verdict, UNREACHABLE_AFTER};
use super::udp_flows::{self, UdpFlow};
use super::udp_tx::TxBatch;
use super::{packet, BoxedIo, Errno, InboundSink, InboundTcp, ListenSpec, PeerStatus};
use crossbeam_queue::SegQueue;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use noise::{Decapsulated, Device, Encapsulated};
use router::{Route, Router};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tcpip::{ListenerHandle, SocketEventKind, SocketHandle, Stack, TcpHandle, UdpHandle};
use tokio::sync::oneshot;
use tracing::{debug, info, trace, warn};

/// mio token of the UDP socket.
pub const UDP: Token = Token(0);
/// mio token of the waker.
pub const WAKER: Token = Token(1);
/// Datagrams read per loop turn before other work gets a chance.
const RX_BUDGET: usize = 512;
/// Largest UDP datagram.
const DATAGRAM: usize = 65_536;

/// A request from the bridge to the engine thread.
pub enum Command {
    /// Open a TCP connection to `dst` through router peer `peer`.
    Connect {
        /// Destination.
        dst: SocketAddr,
        /// Router peer index.
        peer: usize,
        /// The flow's shared state (made by the caller).
        shared: Arc<FlowShared>,
        /// Immediate answer: our local address, or the errno.
        reply: SyncSender<Result<SocketAddr, Errno>>,
        /// Completion of the TCP handshake.
        done: oneshot::Sender<Result<(), Errno>>,
    },
    /// Open a datagram flow on the engine end `fd` of a data socket pair.
    UdpOpen {
        /// What the shim asked for.
        req: control::UdpOpenRequest,
        /// The engine's end of the pair (non-blocking).
        fd: OwnedFd,
        /// Immediate answer: (id, our address, MTU), or the errno.
        reply: SyncSender<Result<(u64, SocketAddr, u16), Errno>>,
    },
    /// Set or clear the default peer of a datagram flow.
    UdpConnect {
        /// The flow.
        flow: u64,
        /// The peer, or `None` to disconnect.
        peer: Option<SocketAddr>,
        /// Our address for it, or the errno.
        reply: SyncSender<Result<SocketAddr, Errno>>,
    },
    /// Accept tunnel connections for `spec`.
    Listen {
        /// What the application listens on.
        spec: ListenSpec,
        /// Where accepted connections go.
        sink: InboundSink,
        /// Immediate answer.
        reply: SyncSender<Result<(), Errno>>,
    },
    /// Start a handshake with router peer `peer` now; `done` gets the time
    /// from then to its completion (the self-test's round trip).
    Handshake {
        /// Router peer index.
        peer: usize,
        /// Completion.
        done: oneshot::Sender<Duration>,
    },
    /// Keepalive options of an outgoing TCP flow (the application's
    /// `SO_KEEPALIVE`, `TCP_KEEPIDLE`, `TCP_KEEPINTVL`, `TCP_KEEPCNT`).
    TcpKeepalive {
        /// Engine flow id.
        flow: u64,
        /// The options.
        keepalive: control::TcpKeepalive,
        /// Done, or the errno.
        reply: SyncSender<Result<(), Errno>>,
    },
    /// Answered at the engine's next loop turn, so after the output of
    /// the turn in progress has been sent (the launcher, before exiting).
    Settle {
        /// Told when done.
        reply: SyncSender<()>,
    },
    /// A listener's backlog has room again: accept what waits.
    AcceptMore,
    /// The engine counters as one `key=value` line (SIGUSR1, exit).
    Counters {
        /// The answer.
        reply: SyncSender<String>,
    },
    /// A status snapshot of every peer (SIGUSR1, exit, self-test).
    Status {
        /// The answer, one entry per configured peer.
        reply: SyncSender<Vec<PeerStatus>>,
    },
    /// A name `Endpoint =` of peer `peer` was resolved again (`None`: it
    /// did not resolve; the last address stays).
    Reresolved {
        /// Router peer index.
        peer: usize,
        /// The new address.
        addr: Option<SocketAddr>,
    },
    /// Send one DNS query over UDP to `server` (through the router's peer);
    /// the first answer goes to `reply`, which is dropped on failure.
    DnsUdp {
        /// The DNS server (port 53).
        server: SocketAddr,
        /// The DNS message.
        payload: Vec<u8>,
        /// Where the answer goes.
        reply: oneshot::Sender<Vec<u8>>,
    },
}

/// One configured peer as the engine thread sees it.
pub struct PeerState {
    /// The device's handle.
    pub noise: noise::PeerId,
    /// Where its datagrams go: configured, then its latest authenticated source.
    pub endpoint: Option<SocketAddr>,
    /// Short name for logs (never a secret).
    pub label: String,
    /// Device drop counter seen last (a rise without a session: gave up).
    pub dropped_seen: u64,
    /// Whether `PersistentKeepalive` is on.
    pub keepalive: bool,
    /// Whether it answers: connects to a peer known down fail at once
    /// (like a failed neighbour entry); see [`super::reach`].
    pub reach: Reach,
    /// `Endpoint =` as a host name and port: resolved again while
    /// handshakes keep failing (a peer on a dynamic address).
    pub host: Option<(String, u16)>,
    /// Since when handshakes have been failing (no session), for the
    /// re-resolution cadence.
    pub failing_since: Option<Instant>,
    /// A re-resolution runs on a helper thread.
    pub reresolving: bool,
}

/// How long handshakes to a peer with a host-name endpoint fail before
/// the name is resolved again (three handshake retries).
const RERESOLVE_AFTER: Duration = Duration::from_secs(15);

/// A TCP flow on the engine side.
struct Flow {
    shared: Arc<FlowShared>,
    handle: TcpHandle,
    /// Part of an `up` chunk the stack had no room for.
    pending: Option<(Vec<u8>, usize)>,
    /// Set until an outbound connection is established.
    connecting: Option<oneshot::Sender<Result<(), Errno>>>,
    peer: Option<usize>,
    remote: SocketAddr,
    started: Instant,
    bytes_up: u64,
    bytes_down: u64,
    fin_sent: bool,
    stack_closed: bool,
}

struct ListenEntry {
    target: SocketAddr,
    sink: InboundSink,
    /// Connections handed to the bridge, not yet queued by the program's
    /// listener (bounded, see [`super::backlog`]).
    pending: Pending,
}

/// The engine thread's state.
pub struct Engine {
    pub(super) stack: Stack,
    device: Device,
    pub(super) router: Arc<Router>,
    peers: Vec<PeerState>,
    by_noise: HashMap<noise::PeerId, usize>,
    sock: UdpSocket,
    /// Whether the socket is IPv6 (dual-stack): IPv4 endpoints are mapped.
    sock_v6: bool,
    pub(super) poll: Poll,
    kick: Arc<Kick>,
    commands: Arc<SegQueue<Command>>,
    pub(super) live: Arc<AtomicUsize>,
    flows: HashMap<u64, Flow>,
    pub(super) udp_flows: HashMap<u64, UdpFlow>,
    pub(super) udp_by_handle: HashMap<UdpHandle, u64>,
    /// Datagram flows whose data socket may have messages to read.
    pub(super) udp_ready: Vec<u64>,
    pub(super) next_udp: u64,
    /// Buffer for one message of a data socket.
    pub(super) dgram: Vec<u8>,
    by_handle: HashMap<TcpHandle, u64>,
    listeners: HashMap<ListenerHandle, ListenEntry>,
    listening: HashMap<SocketAddr, ListenerHandle>,
    next_inbound: u64,
    rx: Vec<u8>,
    plain: Vec<u8>,
    ip: Vec<u8>,
    wire: Vec<u8>,
    /// Encrypted datagrams waiting to leave together (UDP GSO).
    tx: TxBatch,
    pub(super) counters: Counters,
    /// Handshake rate, for the under-load switch.
    load: LoadMeter,
    /// What the device was last told by `set_under_load`.
    under_load: bool,
    /// Handshakes asked for by [`Command::Handshake`], with when.
    handshake_waiters: Vec<(usize, Instant, oneshot::Sender<Duration>)>,
    dns: super::dns_udp::DnsUdp,
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
}

impl Engine {
    /// Registers the socket; fails only if the poller refuses it.
    pub fn new(p: EngineParts) -> io::Result<Engine> {
        let mut sock = UdpSocket::from_std(p.sock);
        p.poll
            .registry()
            .register(&mut sock, UDP, Interest::READABLE)?;
        let by_noise = p
            .peers
            .iter()
            .enumerate()
            .map(|(i, s)| (s.noise, i))
            .collect();
        let mtu = p.stack.config().mtu;
        Ok(Engine {
            stack: p.stack,
            device: p.device,
            router: p.router,
            peers: p.peers,
            by_noise,
            sock,
            sock_v6: p.sock_v6,
            poll: p.poll,
            kick: p.kick,
            commands: p.commands,
            live: p.live,
            flows: HashMap::new(),
            udp_flows: HashMap::new(),
            udp_by_handle: HashMap::new(),
            udp_ready: Vec::new(),
            next_udp: 1,
            dgram: vec![0; udp_flows::MESSAGE],
            by_handle: HashMap::new(),
            listeners: HashMap::new(),
            listening: HashMap::new(),
            next_inbound: 1 << 62,
            rx: vec![0; DATAGRAM],
            plain: vec![0; DATAGRAM],
            ip: vec![0; mtu.max(1500)],
            wire: vec![0; mtu.max(1500) + 64],
            tx: TxBatch::new(true),
            counters: Counters::default(),
            load: LoadMeter::default(),
            under_load: false,
            handshake_waiters: Vec::new(),
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
            self.run_commands(now);
            self.run_kicks(now);
            self.udp_service_ready();
            self.turn(now);

            // Sleep unless work is known to be waiting.
            self.kick.sleeping.store(true, Ordering::SeqCst);
            let busy = more_rx
                || !self.kick.queue.is_empty()
                || !self.commands.is_empty()
                || !self.udp_ready.is_empty();
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
                if let Some(id) = ev.token().0.checked_sub(udp_flows::TOKEN_BASE) {
                    self.udp_ready.push(id as u64);
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
            let sent = self.flush_stack(now) + self.flush_device(now);
            if sent == 0 {
                break;
            }
        }
        self.handle_events(now);
    }

    // ---- network input ----

    /// Reads datagrams; true if the budget ran out with more waiting.
    fn receive(&mut self, now: Instant) -> bool {
        for _ in 0..RX_BUDGET {
            let mut rx = std::mem::take(&mut self.rx);
            let r = self.sock.recv_from(&mut rx);
            match r {
                Ok((n, src)) => {
                    let src = canonical(src);
                    self.counters.rx_datagrams += 1;
                    self.handle_datagram(src, &rx[..n], now);
                    self.rx = rx;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.rx = rx;
                    return false;
                }
                Err(e) => {
                    // Interrupted, or an ICMP error from an earlier send
                    // (e.g. port unreachable at an old endpoint): go on.
                    self.rx = rx;
                    trace!(error = %e, "udp receive");
                }
            }
        }
        true
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
            Ok(Decapsulated::Data { peer, len }) => {
                self.roam(peer, src);
                let pkt = &plain[..len];
                let allowed = match (self.by_noise.get(&peer), packet::source(pkt)) {
                    (Some(&i), Some(ip)) => {
                        self.router.inbound_allowed(router::PeerId(i as u32), ip)
                    }
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
            Err(e) => {
                match e {
                    noise::DecapsulateError::Message(_) => self.counters.rx_malformed += 1,
                    noise::DecapsulateError::InvalidMac1 => self.counters.rx_bad_mac1 += 1,
                    _ => self.counters.rx_rejected += 1,
                }
                trace!(from = %src, error = %e, "datagram rejected");
            }
        }
        self.plain = plain;
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

    /// The address to send to on our socket (IPv4-mapped on a v6 socket).
    fn wire_addr(&self, to: SocketAddr) -> SocketAddr {
        match to {
            SocketAddr::V4(a) if self.sock_v6 => {
                SocketAddr::new(IpAddr::V6(a.ip().to_ipv6_mapped()), a.port())
            }
            other => other,
        }
    }

    /// Sends one datagram now (after whatever is batched, keeping order).
    fn send_udp(&mut self, to: SocketAddr, data: &[u8]) {
        self.queue_udp(to, data);
        self.flush_tx();
    }

    /// Adds a datagram to the outgoing batch, sending the batch first if
    /// the datagram cannot join it.
    fn queue_udp(&mut self, to: SocketAddr, data: &[u8]) {
        let to = self.wire_addr(to);
        if !self.tx.fits(to, data.len()) {
            self.flush_tx();
        }
        self.tx.push(to, data);
    }

    /// Sends the batched datagrams.
    fn flush_tx(&mut self) {
        use std::os::fd::AsRawFd;
        if self.tx.is_empty() {
            return;
        }
        let sock = &self.sock;
        let lost = self.tx.send(sock.as_raw_fd(), || wait_writable(sock));
        self.counters.tx_errors += lost as u64;
    }

    /// Sends the stack's packets to the peers the router names.
    fn flush_stack(&mut self, now: Instant) -> usize {
        let mut ip = std::mem::take(&mut self.ip);
        let mut n_sent = 0;
        while let Some(n) = self.stack.poll_transmit(now, &mut ip) {
            if n == 0 {
                continue;
            }
            n_sent += 1;
            let pkt = &ip[..n];
            let Some((dst, proto, port)) = packet::destination(pkt) else {
                continue;
            };
            match self.router.lookup(dst, proto, port) {
                Route::Peer(p) => self.send_to_peer(p.0 as usize, pkt, now),
                Route::Direct => {
                    self.counters.no_route_dropped += 1;
                    trace!(dst = %dst, "dropped: no peer routes this destination");
                }
            }
        }
        self.ip = ip;
        self.flush_tx();
        n_sent
    }

    fn send_to_peer(&mut self, i: usize, pkt: &[u8], now: Instant) {
        let Some(p) = self.peers.get(i) else {
            return;
        };
        let (id, endpoint) = (p.noise, p.endpoint);
        let mut wire = std::mem::take(&mut self.wire);
        match self.device.encapsulate(id, pkt, now, &mut wire) {
            Ok(Encapsulated::Data(len)) | Ok(Encapsulated::Handshake(len)) => match endpoint {
                Some(ep) => self.queue_udp(ep, &wire[..len]),
                None => self.counters.no_endpoint_dropped += 1,
            },
            Ok(Encapsulated::Queued) => {}
            Err(e) => {
                self.counters.tx_errors += 1;
                trace!(error = %e, "encapsulate failed");
            }
        }
        self.wire = wire;
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
                let ids: Vec<u64> = self
                    .flows
                    .iter()
                    .filter(|(_, f)| f.connecting.is_some() && f.peer == Some(i))
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    self.fail_connect(id, libc::EHOSTUNREACH, now);
                }
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
                let addr = super::tunnel::resolve(&host, port).ok();
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
                    let _ = reply.send(self.udp_open(req, fd));
                }
                Command::UdpConnect { flow, peer, reply } => {
                    let _ = reply.send(self.udp_set_peer(flow, peer));
                }
                Command::Listen { spec, sink, reply } => {
                    let _ = reply.send(self.listen(spec, sink));
                }
                Command::Handshake { peer, done } => {
                    if let Some(p) = self.peers.get(peer) {
                        let id = p.noise;
                        self.handshake_waiters.push((peer, now, done));
                        let _ = self.device.force_handshake(id, now);
                    }
                }
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
                Command::AcceptMore => {
                    let ls: Vec<ListenerHandle> = self.listeners.keys().copied().collect();
                    for l in ls {
                        self.accept_all(l, now);
                    }
                }
                Command::TcpKeepalive {
                    flow,
                    keepalive,
                    reply,
                } => {
                    let _ = reply.send(self.tcp_keepalive(flow, keepalive, now));
                }
                Command::Settle { reply } => {
                    let _ = reply.send(());
                }
                Command::Counters { reply } => {
                    let st = self.stack.stats();
                    let mut waiting: HashMap<SocketAddr, usize> = HashMap::new();
                    for e in self.listeners.values() {
                        waiting.insert(e.target, e.pending.waiting());
                    }
                    let _ = reply.send(format!(
                        "{} syn_dropped={} listen_overflows={} inbound_pending={} flows={}",
                        self.counters,
                        st.syn_dropped,
                        st.listen_overflows,
                        waiting.values().sum::<usize>(),
                        self.flows.len()
                    ));
                }
            }
        }
    }

    /// Sets a flow's keepalive as the application's socket options say.
    fn tcp_keepalive(
        &mut self,
        flow: u64,
        k: control::TcpKeepalive,
        now: Instant,
    ) -> Result<(), Errno> {
        let f = self.flows.get(&flow).ok_or(libc::ENOTCONN)?;
        let idle = k
            .enabled
            .then(|| Duration::from_secs(u64::from(k.idle_secs.max(1))));
        debug!(
            flow,
            idle_s = ?idle.map(|d| d.as_secs()),
            interval_s = k.interval_secs,
            count = k.count,
            "tunnel TCP keepalive set by the program"
        );
        self.stack
            .tcp_configure_keepalive(
                now,
                f.handle,
                idle,
                Duration::from_secs(u64::from(k.interval_secs)),
                k.count,
            )
            .map_err(|e| e.errno())
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
        let mut flows = vec![0usize; self.peers.len()];
        for f in self.flows.values() {
            let peer = f.peer.or_else(|| {
                let (ip, port) = (f.remote.ip(), f.remote.port());
                match self.router.lookup(ip, router::Proto::Tcp, port) {
                    Route::Peer(p) => Some(p.0 as usize),
                    Route::Direct => None,
                }
            });
            if let Some(n) = peer.and_then(|p| flows.get_mut(p)) {
                *n += 1;
            }
        }
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
        let p = &self.peers[peer];
        let h = match self.stack.tcp_connect(now, None, dst) {
            Ok(h) => h,
            Err(tcpip::Error::NoBufferSpace) => {
                // The socket table is full: refuse new work, keep the old.
                self.counters.flows_refused += 1;
                debug!(dst = %dst, refused = self.counters.flows_refused, "flow cap reached; connect refused (ENOBUFS)");
                return Err(libc::ENOBUFS);
            }
            Err(e) => return Err(e.errno()),
        };
        let local = self.stack.local_addr(h).map_err(|e| e.errno())?;
        debug!(flow = shared.id, dst = %dst, local = %local, peer = %p.label, "tunnel connect");
        self.by_handle.insert(h, shared.id);
        self.live.fetch_add(1, Ordering::Relaxed);
        self.flows.insert(
            shared.id,
            Flow {
                shared,
                handle: h,
                pending: None,
                connecting: Some(done),
                peer: Some(peer),
                remote: dst,
                started: now,
                bytes_up: 0,
                bytes_down: 0,
                fin_sent: false,
                stack_closed: false,
            },
        );
        Ok(local)
    }

    fn listen(&mut self, spec: ListenSpec, sink: InboundSink) -> Result<(), Errno> {
        let port = spec.requested.port();
        let req = spec.requested.ip();
        let addrs: Vec<IpAddr> = self
            .stack
            .config()
            .addresses
            .iter()
            .copied()
            .filter(|a| {
                if req.is_unspecified() {
                    // An IPv6 wildcard is dual-stack, as on Linux by default.
                    req.is_ipv6() || a.is_ipv4()
                } else {
                    *a == req
                }
            })
            .collect();
        if addrs.is_empty() {
            return Err(libc::EADDRNOTAVAIL);
        }
        // One bound per listen() of the program, shared by its addresses;
        // a released place makes the engine accept again.
        let pending = {
            let (commands, kick) = (Arc::clone(&self.commands), Arc::clone(&self.kick));
            Pending::new(Arc::new(move || {
                commands.push(Command::AcceptMore);
                kick.wake();
            }))
        };
        for a in addrs {
            let at = SocketAddr::new(a, port);
            if let Some(l) = self.listening.get(&at) {
                // Same port again (e.g. the app re-listens): newest target wins.
                if let Some(e) = self.listeners.get_mut(l) {
                    e.target = spec.loopback;
                    e.sink = sink.clone();
                }
                continue;
            }
            let l = self
                .stack
                .tcp_listen(at, STACK_BACKLOG)
                .map_err(|e| e.errno())?;
            debug!(addr = %at, target = %spec.loopback, "tunnel listener");
            self.listening.insert(at, l);
            self.listeners.insert(
                l,
                ListenEntry {
                    target: spec.loopback,
                    sink: sink.clone(),
                    pending: pending.clone(),
                },
            );
        }
        Ok(())
    }

    // ---- flows ----

    fn run_kicks(&mut self, now: Instant) {
        let mut ids = Vec::new();
        while let Some(id) = self.kick.queue.pop() {
            ids.push(id);
        }
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            self.service(id, now);
        }
    }

    /// Moves bytes both ways for one flow, and finishes it if released.
    fn service(&mut self, id: u64, now: Instant) {
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        if f.connecting.is_some() {
            if f.shared.released.load(Ordering::Acquire) {
                // The bridge gave up before the connection was established.
                let _ = self.stack.tcp_abort(now, f.handle);
                self.remove(id, "abandoned");
            }
            return;
        }
        self.push_up(id, now);
        self.pull_down(id);
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        if f.shared.released.load(Ordering::Acquire) {
            // Application bytes still waiting for send-buffer room are
            // flushed first (Writable events call back here), as a kernel
            // socket's close() would; an error or a closed stack socket
            // ends the wait.
            let unsent = f.pending.is_some() || !f.shared.up.is_empty();
            let failed = f.shared.error.load(Ordering::Acquire) != 0;
            if unsent && !failed && !f.stack_closed {
                return;
            }
            if !f.stack_closed {
                let _ = self.stack.tcp_close(now, f.handle);
            }
            self.remove(id, "closed");
        }
    }

    /// Application bytes into the TCP send buffer; FIN when asked and drained.
    fn push_up(&mut self, id: u64, now: Instant) {
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        let mut took = false;
        loop {
            if f.pending.is_none() {
                match f.shared.up.pop() {
                    Some(c) => {
                        took = true;
                        f.pending = Some((c, 0));
                    }
                    None => break,
                }
            }
            let Some((chunk, off)) = &mut f.pending else {
                break;
            };
            match self.stack.tcp_send(f.handle, &chunk[*off..]) {
                Ok(n) => {
                    *off += n;
                    f.bytes_up += n as u64;
                    if *off >= chunk.len() {
                        f.pending = None;
                    } else {
                        break;
                    }
                }
                Err(tcpip::Error::WouldBlock) => break,
                Err(e) => {
                    f.pending = None;
                    while f.shared.up.pop().is_some() {}
                    f.shared.fail(e.errno());
                    break;
                }
            }
        }
        if took {
            f.shared.writer.wake();
        }
        if f.pending.is_none()
            && f.shared.up.is_empty()
            && f.shared.up_fin.load(Ordering::Acquire)
            && !f.fin_sent
        {
            f.fin_sent = true;
            let _ = self.stack.tcp_shutdown_write(now, f.handle);
        }
    }

    /// Received bytes into the flow's `down` queue, EOF and errors too.
    fn pull_down(&mut self, id: u64) {
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        let mut woke = false;
        loop {
            if f.shared.down.is_full() {
                f.shared.down_blocked.store(true, Ordering::SeqCst);
                if f.shared.down.is_full() {
                    break;
                }
            }
            let queued = self.stack.tcp_recv_queue(f.handle).unwrap_or(0);
            if queued == 0 {
                let mut probe = [0u8; 1];
                match self.stack.tcp_recv(f.handle, &mut probe) {
                    Ok(0) => {
                        if !f.shared.down_fin.swap(true, Ordering::AcqRel) {
                            woke = true;
                        }
                    }
                    Ok(n) => {
                        f.bytes_down += n as u64;
                        let _ = f.shared.down.push(probe[..n].to_vec());
                        woke = true;
                        continue;
                    }
                    Err(tcpip::Error::WouldBlock) | Err(tcpip::Error::InvalidHandle) => {}
                    Err(e) => f.shared.fail(e.errno()),
                }
                break;
            }
            let mut v = vec![0u8; queued.min(MAX_CHUNK)];
            match self.stack.tcp_recv(f.handle, &mut v) {
                Ok(n) => {
                    v.truncate(n);
                    f.bytes_down += n as u64;
                    // Cannot fail: only this thread pushes, and it was not full.
                    let _ = f.shared.down.push(v);
                    woke = true;
                }
                Err(_) => break,
            }
        }
        if woke {
            f.shared.reader.wake();
        }
    }

    fn remove(&mut self, id: u64, why: &str) {
        if let Some(f) = self.flows.remove(&id) {
            self.live.fetch_sub(1, Ordering::Relaxed);
            self.by_handle.remove(&f.handle);
            debug!(
                flow = id,
                remote = %f.remote,
                bytes_out = f.bytes_up,
                bytes_in = f.bytes_down,
                duration_ms = f.started.elapsed().as_millis() as u64,
                "tunnel flow {why}"
            );
        }
    }

    fn fail_connect(&mut self, id: u64, errno: Errno, now: Instant) {
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        if let Some(done) = f.connecting.take() {
            let _ = done.send(Err(errno));
        }
        f.shared.fail(errno);
        let _ = self.stack.tcp_abort(now, f.handle);
        debug!(flow = id, remote = %f.remote, errno, "tunnel connect failed");
        self.remove(id, "failed");
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
                    self.accept_all(l, now);
                }
            }
            SocketHandle::Tcp(h) => {
                let Some(&id) = self.by_handle.get(&h) else {
                    return;
                };
                match kind {
                    SocketEventKind::Connected => {
                        let Some(f) = self.flows.get_mut(&id) else {
                            return;
                        };
                        if let Some(done) = f.connecting.take() {
                            if done.send(Ok(())).is_err() {
                                let _ = self.stack.tcp_abort(now, h);
                                self.remove(id, "abandoned");
                                return;
                            }
                            debug!(flow = id, remote = %f.remote, "tunnel flow established");
                        }
                        self.service(id, now);
                    }
                    SocketEventKind::Error(e) => {
                        let connecting =
                            self.flows.get(&id).is_some_and(|f| f.connecting.is_some());
                        if connecting {
                            self.fail_connect(id, e.errno(), now);
                        } else {
                            // Deliver what arrived before the error first.
                            self.pull_down(id);
                            if let Some(f) = self.flows.get(&id) {
                                f.shared.fail(e.errno());
                            }
                            self.service(id, now);
                        }
                    }
                    SocketEventKind::Readable => self.pull_down(id),
                    SocketEventKind::Writable => self.service(id, now),
                    SocketEventKind::Closed => {
                        let connecting =
                            self.flows.get(&id).is_some_and(|f| f.connecting.is_some());
                        if connecting {
                            self.fail_connect(id, libc::ECONNREFUSED, now);
                            return;
                        }
                        self.pull_down(id);
                        if let Some(f) = self.flows.get_mut(&id) {
                            f.stack_closed = true;
                            if f.shared.error.load(Ordering::Acquire) == 0 {
                                f.shared.down_fin.store(true, Ordering::Release);
                            }
                            f.shared.reader.wake();
                            f.shared.writer.wake();
                        }
                        self.service(id, now);
                    }
                    SocketEventKind::Incoming => {}
                }
            }
            SocketHandle::Udp(h) => {
                if self.dns.owns(h) {
                    self.dns.event(&mut self.stack, h, kind);
                    return;
                }
                match kind {
                    SocketEventKind::Readable => self.udp_down(h),
                    SocketEventKind::Error(e) => self.udp_error(h, e.errno()),
                    _ => {}
                }
            }
        }
    }

    fn accept_all(&mut self, l: ListenerHandle, now: Instant) {
        loop {
            let Some(entry) = self.listeners.get(&l) else {
                while let Some(h) = self.stack.tcp_accept(l) {
                    let _ = self.stack.tcp_abort(now, h);
                }
                return;
            };
            if entry.sink.capacity() == 0 {
                // The bridge has not taken the last ones yet; the tickets
                // they hold bring us back here when released.
                return;
            }
            let Some(ticket) = entry.pending.admit() else {
                // MAX_PENDING wait for the program: the rest stay in the
                // stack's listen queue (then SYNs go unanswered) until a
                // place is released (Command::AcceptMore).
                trace!(target = %entry.target, max = MAX_PENDING, "listener backlog full");
                return;
            };
            let Some(h) = self.stack.tcp_accept(l) else {
                ticket.cancel();
                return;
            };
            let (Ok(local), Ok(peer)) = (self.stack.local_addr(h), self.stack.peer_addr(h)) else {
                ticket.cancel();
                continue;
            };
            let id = self.next_inbound;
            self.next_inbound += 1;
            let shared = FlowShared::new(id);
            let io: BoxedIo = Box::new(super::flow::TunnelStream::new(
                shared.clone(),
                self.kick.clone(),
            ));
            let inbound = InboundTcp {
                peer,
                local,
                target: entry.target,
                io,
                ticket,
            };
            // Registered before the hand-off, so kicks from the bridge find it.
            self.by_handle.insert(h, id);
            self.live.fetch_add(1, Ordering::Relaxed);
            self.flows.insert(
                id,
                Flow {
                    shared,
                    handle: h,
                    pending: None,
                    connecting: None,
                    peer: None,
                    remote: peer,
                    started: now,
                    bytes_up: 0,
                    bytes_down: 0,
                    fin_sent: false,
                    stack_closed: false,
                },
            );
            debug!(flow = id, peer = %peer, local = %local, "tunnel connection accepted");
            if entry.sink.try_send(inbound).is_err() {
                // The bridge is gone or swamped: dropping the stream
                // releases the flow, which closes it.
                warn!(peer = %peer, "inbound connection dropped: bridge queue full");
            }
            self.service(id, now);
        }
    }

    /// Logs the counters at debug level when they changed (every 10 s at most).
    fn log_counters(&mut self, last: &mut (Instant, Counters)) {
        if last.0.elapsed() >= Duration::from_secs(10) && last.1 != self.counters {
            debug!(
                flows = self.flows.len(),
                udp_flows = self.udp_flows.len(),
                "engine counters: {}",
                self.counters
            );
            *last = (Instant::now(), self.counters.clone());
        }
    }
}

/// IPv4-mapped IPv6 addresses as IPv4.
pub fn canonical(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        v4 => v4,
    }
}

/// Waits up to 5 ms for room in the socket's send buffer.
fn wait_writable(sock: &UdpSocket) -> bool {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call; the fd lives
    // as long as `sock`.
    let r = unsafe { libc::poll(&mut pfd, 1, 5) };
    r > 0
}
