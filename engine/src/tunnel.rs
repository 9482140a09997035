//! The real engine: [`TunnelBackend`] implements [`FlowBackend`] with the
//! router answering route questions on the caller's thread (it is
//! immutable and shared), and every stack or device operation sent to the
//! engine thread ([`crate::stack_thread`]).
//!
//! [`start`] reads the config, resolves hostname endpoints, builds the
//! device, stack and router, binds the UDP socket and spawns the thread.
//! Any failure there is one clear error before the child is launched.

use crate::addr::resolve;
use crate::command::Command;
use crate::flow::{FlowShared, Kick, TunnelStream};
use crate::peer_state::PeerState;
use crate::stack_thread::{Engine, EngineParts, WAKER};
use crate::{
    seqpacket, BackendInfo, BoxedIo, DirectDone, DnsAnswer, Errno, FlowBackend, HandshakeWait,
    InboundSink, ListenSpec, OpenedUdp, OutboundTcp, PeerStatus,
};
use anyhow::{anyhow, Context, Result};
use control::{Proto, RouteDecision, UdpOpenRequest};
use crossbeam_queue::SegQueue;
use noise::rand_core::{OsRng, RngCore};
use noise::Device;
use router::{Config, Endpoint, Route, RouteFlag, Router, RoutingOptions};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tcpip::{Stack, StackConfig};
use tracing::{debug, info, warn};

/// How long the bridge waits for the engine thread to answer a command.
const COMMAND_WAIT: Duration = Duration::from_secs(5);
/// Socket buffer sizes asked for the UDP socket.
const SOCKET_BUFFER: usize = 4 << 20;
/// Overrides the number of crypto worker threads (0: all crypto on the
/// engine thread); for measurements.
pub const ENV_CRYPTO_WORKERS: &str = "WRAPGUARD_CRYPTO_WORKERS";
/// `0` keeps every TCP flow's bytes in the bridge (spliced through its
/// chunk queues) instead of on the engine thread
/// ([`FlowBackend::tcp_direct`]); for measurements.
pub const ENV_DIRECT: &str = "WRAPGUARD_DIRECT";
/// Most crypto workers started by default.
const MAX_CRYPTO_WORKERS: usize = 8;

/// Crypto workers besides the engine thread, unless [`ENV_CRYPTO_WORKERS`]
/// says otherwise: one per core beyond two (those two go to the engine
/// thread and to the bridge and the program), at most
/// [`MAX_CRYPTO_WORKERS`]. On two cores a worker only competes with them:
/// measured there, the same throughput for about 20% more CPU per byte.
fn crypto_workers() -> usize {
    let set = std::env::var(ENV_CRYPTO_WORKERS)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok());
    match set {
        Some(n) => n.min(64),
        None => std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .saturating_sub(2)
            .min(MAX_CRYPTO_WORKERS),
    }
}

/// The stack's ISN and timestamp secret for the identity with private key
/// `private`: the same in every process of that key, and telling nothing
/// about the key (BLAKE2s of a label and the key).
fn clock_key(private: &[u8; 32]) -> (u64, u64) {
    use blake2::Digest;
    let h = blake2::Blake2s256::new()
        .chain_update(b"wrapguard tcp clock key v1")
        .chain_update(private)
        .finalize();
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&h[i..i + 8]);
        u64::from_le_bytes(w)
    };
    (word(0), word(8))
}

/// The WireGuard + TCP/IP engine, as seen by the bridge.
pub struct TunnelBackend {
    router: Arc<Router>,
    addresses: Vec<IpAddr>,
    info: BackendInfo,
    kick: Arc<Kick>,
    commands: Arc<SegQueue<Command>>,
    next_flow: AtomicU64,
    live: Arc<AtomicUsize>,
    peer_count: usize,
    /// Established flows move on the engine thread (see [`ENV_DIRECT`]).
    direct: bool,
}

/// What [`start`] needs: the config file and the command line's overrides.
#[derive(Clone, Debug, Default)]
pub struct TunnelOptions {
    /// The config file (wg-quick format plus `Route =`).
    pub config: PathBuf,
    /// `--exit-node`: all traffic to the peer whose AllowedIPs hold it.
    pub exit_node: Option<IpAddr>,
    /// `--route` values (they override `Route =` lines).
    pub routes: Vec<RouteFlag>,
    /// The congestion control of the tunnel's TCP (`--tcp-congestion`,
    /// `TcpCongestion =`); `None`: the host's choice if it is one of ours
    /// ([`host_congestion`]), else CUBIC.
    pub tcp_congestion: Option<TcpCongestion>,
    /// TESTS ONLY: rekey after this many seconds instead of 120.
    pub test_rekey_after_secs: Option<u64>,
    /// TESTS ONLY: at most this many TCP sockets in the stack.
    pub test_max_flows: Option<u64>,
    /// TESTS ONLY: data retransmissions before a connection times out.
    pub test_tcp_data_retries: Option<u32>,
}

/// The congestion controls the tunnel's TCP offers.
pub use tcpip::tcp::congestion::Algorithm as TcpCongestion;

/// The congestion control a tunnel uses when `asked` is what the command
/// line or config asked for, and why: that, else the host's
/// `net.ipv4.tcp_congestion_control` if it is one of ours, else CUBIC.
pub fn congestion_for(asked: Option<TcpCongestion>) -> (TcpCongestion, &'static str) {
    match asked {
        Some(c) => (c, "asked for"),
        None => match host_congestion() {
            Some(c) => (c, "the host's net.ipv4.tcp_congestion_control"),
            None => (TcpCongestion::Cubic, "the default"),
        },
    }
}

/// The host's `net.ipv4.tcp_congestion_control`, if it names one of ours:
/// a tunnel connection then answers a lossy or long path as the host's
/// own connections would.
pub fn host_congestion() -> Option<TcpCongestion> {
    let s = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control").ok()?;
    TcpCongestion::from_name(&s)
}

/// Reads the config and starts the engine thread.
pub fn start(opts: &TunnelOptions) -> Result<TunnelBackend> {
    let path = opts.config.as_path();
    let parsed = Config::from_path(path).map_err(|e| anyhow!("{e}"))?;
    for w in &parsed.warnings {
        warn!("{w}");
    }
    let config = parsed.config;
    let options = RoutingOptions {
        routes: opts.routes.clone(),
        exit_node: opts.exit_node,
    };
    let router = Arc::new(Router::new(&config, &options).map_err(|e| anyhow!("{e}"))?);
    let source = path.display().to_string();

    // Endpoints first: an unresolvable name stops us before anything starts.
    let mut endpoints = Vec::with_capacity(config.peers.len());
    for p in &config.peers {
        endpoints.push(match &p.endpoint {
            None => None,
            Some(Endpoint::Addr(a)) => Some(*a),
            Some(Endpoint::Host { host, port }) => Some(resolve(host, *port).with_context(|| {
                format!(
                    "{source}:{}: cannot resolve the Endpoint {host}:{port} of this [Peer] (check the name, or use an IP address)",
                    p.line
                )
            })?),
        });
    }

    let now = Instant::now();
    let private = noise::PrivateKey::from_bytes(*config.interface.private_key.as_bytes());
    let mut device = Device::new(private, OsRng, now, SystemTime::now());
    if let Some(secs) = opts.test_rekey_after_secs {
        warn!("TEST FLAG: rekeying after {secs} s instead of 120 s");
        device.set_timing(noise::Timing {
            rekey_after_time: Duration::from_secs(secs),
        });
    }
    let mut peers = Vec::with_capacity(config.peers.len());
    let mut peer_lines = Vec::new();
    for (p, endpoint) in config.peers.iter().zip(endpoints) {
        let public = noise::PublicKey::from_bytes(*p.public_key.as_bytes());
        let id = device
            .add_peer(noise::PeerConfig {
                public_key: public,
                preshared_key: p
                    .preshared_key
                    .as_ref()
                    .map(|k| noise::PresharedKey::from_bytes(*k.as_bytes())),
                persistent_keepalive: p.persistent_keepalive,
            })
            .map_err(|e| anyhow!("{source}:{}: {e}", p.line))?;
        let b64 = public.to_base64();
        let label = format!("{}…", b64.get(..8).unwrap_or(&b64));
        let allowed: Vec<String> = p.allowed_ips.iter().map(|n| n.to_string()).collect();
        peer_lines.push(format!(
            "{label} endpoint {} allowed-ips {}{}{}",
            endpoint.map_or_else(
                || "(none: waits for the peer)".to_string(),
                |e| e.to_string()
            ),
            if allowed.is_empty() {
                "(none)".to_string()
            } else {
                allowed.join(",")
            },
            p.persistent_keepalive
                .map(|k| format!(" keepalive {k}s"))
                .unwrap_or_default(),
            if p.preshared_key.is_some() {
                " psk"
            } else {
                ""
            },
        ));
        peers.push(PeerState {
            noise: id,
            endpoint,
            label,
            dropped_seen: 0,
            keepalive: p.persistent_keepalive.is_some_and(|k| k > 0),
            reach: Default::default(),
            host: match &p.endpoint {
                Some(Endpoint::Host { host, port }) => Some((host.clone(), *port)),
                _ => None,
            },
            failing_since: None,
            reresolving: false,
        });
    }

    for r in router.policy_routes() {
        let via = peers
            .get(r.peer.0 as usize)
            .map_or("?", |p: &PeerState| p.label.as_str());
        debug!("Policy route: {} via {via} ({})", r.spec, r.origin);
    }

    let addresses: Vec<IpAddr> = config
        .interface
        .addresses
        .iter()
        .map(|n| n.addr())
        .collect();
    let interface: Vec<String> = config
        .interface
        .addresses
        .iter()
        .map(|n| n.to_string())
        .collect();
    if addresses.is_empty() {
        return Err(anyhow!("{source}: [Interface] has no Address"));
    }
    let (congestion, why) = congestion_for(opts.tcp_congestion);
    info!("TCP congestion control: {} ({why})", congestion.name());
    let stack = Stack::new(StackConfig {
        addresses: addresses.clone(),
        mtu: usize::from(config.interface.mtu),
        seed: OsRng.next_u64(),
        // Every process of this key counts ISNs and TSvals on one clock
        // (see `StackConfig::clock_anchor`).
        clock_anchor: Some((
            Instant::now(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        )),
        clock_key: Some(clock_key(config.interface.private_key.as_bytes())),
        max_tcp_sockets: opts
            .test_max_flows
            .map_or(StackConfig::default().max_tcp_sockets, |n| n as usize),
        tcp: tcpip::TcpConfig {
            congestion,
            data_retries: opts
                .test_tcp_data_retries
                .unwrap_or(tcpip::TcpConfig::default().data_retries),
            ..tcpip::TcpConfig::default()
        },
        ..StackConfig::default()
    });

    let (sock, sock_v6) = bind_udp(config.interface.listen_port)?;
    let port = sock.local_addr().map(|a| a.port()).unwrap_or(0);
    info!("Listening on UDP port {port}");

    let poll = mio::Poll::new().context("cannot create the engine's poller")?;
    let waker =
        mio::Waker::new(poll.registry(), WAKER).context("cannot create the engine's waker")?;
    let kick = Arc::new(Kick {
        queue: SegQueue::new(),
        sleeping: AtomicBool::new(false),
        waker,
    });
    let commands = Arc::new(SegQueue::new());
    let live = Arc::new(AtomicUsize::new(0));
    let engine = Engine::new(EngineParts {
        stack,
        device,
        router: router.clone(),
        peers,
        sock,
        sock_v6,
        poll,
        kick: kick.clone(),
        commands: commands.clone(),
        live: live.clone(),
        crypto_workers: crypto_workers(),
    })
    .context("cannot register the UDP socket")?;
    std::thread::Builder::new()
        .name("wrapguard-engine".into())
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| engine.run()));
            if r.is_err() {
                // A bug: without the engine no flow can move. Say so and
                // end, rather than leave the program hanging.
                tracing::error!("the tunnel engine thread crashed (a bug in wrapguard); exiting");
                std::process::exit(70);
            }
        })
        .context("cannot start the engine thread")?;

    Ok(TunnelBackend {
        router,
        info: BackendInfo {
            addresses: addresses.clone(),
            peers: peer_lines,
            interface,
            dns: config.interface.dns.clone(),
            dns_search: config.interface.dns_search.clone(),
        },
        addresses,
        kick,
        commands,
        next_flow: AtomicU64::new(1),
        live,
        peer_count: config.peers.len(),
        direct: std::env::var(ENV_DIRECT).map_or(true, |v| v != "0"),
    })
}

/// A dual-stack IPv6 socket if the host has IPv6, else IPv4 only.
fn bind_udp(port: Option<u16>) -> Result<(std::net::UdpSocket, bool)> {
    use socket2::{Domain, Socket, Type};
    let port = port.unwrap_or(0);
    let v6 = (|| -> std::io::Result<Socket> {
        let s = Socket::new(Domain::IPV6, Type::DGRAM, None)?;
        s.set_only_v6(false)?;
        s.bind(&SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port).into())?;
        Ok(s)
    })();
    let (s, is_v6) = match v6 {
        Ok(s) => (s, true),
        Err(e6) => {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, None)
                .and_then(|s| {
                    s.bind(&SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port).into())?;
                    Ok(s)
                })
                .map_err(|e| {
                    anyhow!(
                        "cannot bind UDP port {port} (ListenPort): {e} (IPv6: {e6}); \
                         stop the program using it (another wrapguard or WireGuard?), \
                         pick another ListenPort, or remove ListenPort for an ephemeral port"
                    )
                })?;
            (s, false)
        }
    };
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    s.set_nonblocking(true)
        .context("cannot make the UDP socket non-blocking")?;
    Ok((s.into(), is_v6))
}

fn to_router_proto(p: Proto) -> router::Proto {
    match p {
        Proto::Tcp => router::Proto::Tcp,
        Proto::Udp => router::Proto::Udp,
        Proto::Unknown(n) => router::Proto::Other(n),
    }
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl TunnelBackend {
    fn lookup(&self, dst: SocketAddr, proto: Proto) -> Result<Option<usize>, Errno> {
        let ip = canonical_ip(dst.ip());
        match self.router.lookup(ip, to_router_proto(proto), dst.port()) {
            Route::Direct => Ok(None),
            Route::Peer(p) => {
                if self.addresses.iter().any(|a| a.is_ipv4() == ip.is_ipv4()) {
                    Ok(Some(p.0 as usize))
                } else {
                    // Routed into the tunnel but we have no address of
                    // that family there: it must not leak to the host.
                    Err(libc::ENETUNREACH)
                }
            }
        }
    }

    fn send(&self, c: Command) {
        self.commands.push(c);
        self.kick.wake();
    }
}

impl FlowBackend for TunnelBackend {
    fn name(&self) -> &'static str {
        "wireguard"
    }

    fn info(&self) -> BackendInfo {
        self.info.clone()
    }

    fn is_local_address(&self, ip: IpAddr) -> bool {
        self.addresses.contains(&canonical_ip(ip))
    }

    fn route(&self, dst: SocketAddr, proto: Proto) -> RouteDecision {
        match self.lookup(dst, proto) {
            Ok(None) => RouteDecision::Direct,
            Ok(Some(_)) => RouteDecision::Tunnel,
            Err(e) => RouteDecision::Unreachable(e),
        }
    }

    fn open_tcp(&self, dst: SocketAddr) -> Result<OutboundTcp, Errno> {
        let dst = SocketAddr::new(canonical_ip(dst.ip()), dst.port());
        let peer = self.lookup(dst, Proto::Tcp)?.ok_or(libc::ENETUNREACH)?;
        let id = self.next_flow.fetch_add(1, Ordering::Relaxed);
        let shared = FlowShared::new(id);
        let (reply, answer) = sync_channel(1);
        let (done, established) = tokio::sync::oneshot::channel();
        self.send(Command::Connect {
            dst,
            peer,
            shared: shared.clone(),
            reply,
            done,
        });
        let local = answer
            .recv_timeout(COMMAND_WAIT)
            .map_err(|_| libc::ETIMEDOUT)??;
        // Made now so that dropping the future releases the flow.
        let stream = TunnelStream::new(shared, self.kick.clone());
        let established = Box::pin(async move {
            match established.await {
                Ok(Ok(())) => Ok(Box::new(stream) as BoxedIo),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(libc::ECONNABORTED),
            }
        });
        Ok(OutboundTcp {
            id,
            local,
            established,
        })
    }

    fn carries_direct(&self) -> bool {
        self.direct
    }

    fn tcp_direct(&self, id: u64, fd: OwnedFd, reset: bool) -> DirectDone {
        let (done, rx) = tokio::sync::oneshot::channel();
        self.send(Command::TcpDirect {
            flow: id,
            fd,
            reset,
            done,
        });
        rx
    }

    fn tcp_keepalive(&self, id: u64, keepalive: control::TcpKeepalive) -> Result<(), Errno> {
        let (reply, answer) = sync_channel(1);
        self.send(Command::TcpKeepalive {
            flow: id,
            keepalive,
            reply,
        });
        answer
            .recv_timeout(COMMAND_WAIT)
            .map_err(|_| libc::ETIMEDOUT)?
    }

    fn tcp_flows(&self) -> Vec<crate::flow_report::TcpFlowStatus> {
        let (reply, answer) = sync_channel(1);
        self.send(Command::TcpFlows { reply });
        answer.recv_timeout(COMMAND_WAIT).unwrap_or_default()
    }

    fn tcp_info(&self, id: u64) -> Result<control::TcpFlowInfo, Errno> {
        let (reply, answer) = sync_channel(1);
        self.send(Command::TcpInfo { flow: id, reply });
        answer
            .recv_timeout(COMMAND_WAIT)
            .map_err(|_| libc::ETIMEDOUT)?
    }

    fn active_flows(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    fn dns_udp(&self, server: SocketAddr, payload: Vec<u8>) -> Result<DnsAnswer, Errno> {
        let server = SocketAddr::new(canonical_ip(server.ip()), server.port());
        // Only through the tunnel: a server no peer routes is unreachable.
        self.lookup(server, Proto::Udp)?.ok_or(libc::ENETUNREACH)?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(Command::DnsUdp {
            server,
            payload,
            reply,
        });
        Ok(answer)
    }

    fn open_udp(&self, mut req: UdpOpenRequest) -> Result<OpenedUdp, Errno> {
        req.bind = SocketAddr::new(canonical_ip(req.bind.ip()), req.bind.port());
        if let Some(dst) = req.connect {
            let dst = SocketAddr::new(canonical_ip(dst.ip()), dst.port());
            self.lookup(dst, Proto::Udp)?.ok_or(libc::ENETUNREACH)?;
            req.connect = Some(dst);
        }
        let (ours, theirs) =
            seqpacket::pair().map_err(|e| e.raw_os_error().unwrap_or(libc::EMFILE))?;
        let (reply, answer) = sync_channel(1);
        self.send(Command::UdpOpen {
            req,
            fd: ours,
            reply,
        });
        let (flow, local, mtu) = answer
            .recv_timeout(COMMAND_WAIT)
            .map_err(|_| libc::ETIMEDOUT)??;
        Ok(OpenedUdp {
            flow,
            local,
            mtu,
            app_end: theirs,
        })
    }

    fn udp_connect(&self, flow: u64, peer: Option<SocketAddr>) -> Result<SocketAddr, Errno> {
        let peer = match peer {
            Some(dst) => {
                let dst = SocketAddr::new(canonical_ip(dst.ip()), dst.port());
                self.lookup(dst, Proto::Udp)?.ok_or(libc::ENETUNREACH)?;
                Some(dst)
            }
            None => None,
        };
        let (reply, answer) = sync_channel(1);
        self.send(Command::UdpConnect { flow, peer, reply });
        answer
            .recv_timeout(COMMAND_WAIT)
            .map_err(|_| libc::ETIMEDOUT)?
    }

    fn listen(&self, spec: ListenSpec, sink: InboundSink) -> Result<(), Errno> {
        let (reply, answer) = sync_channel(1);
        self.send(Command::Listen { spec, sink, reply });
        answer
            .recv_timeout(COMMAND_WAIT)
            .map_err(|_| libc::ETIMEDOUT)?
    }

    fn settle(&self) {
        let (reply, answer) = sync_channel(1);
        self.send(Command::Settle { reply });
        // Bounded: exiting must not hang on a stuck engine.
        let _ = answer.recv_timeout(Duration::from_secs(1));
    }

    fn counters(&self) -> Option<String> {
        let (reply, answer) = sync_channel(1);
        self.send(Command::Counters { reply });
        answer.recv_timeout(COMMAND_WAIT).ok()
    }

    fn status(&self) -> Vec<PeerStatus> {
        let (reply, answer) = sync_channel(1);
        self.send(Command::Status { reply });
        answer.recv_timeout(COMMAND_WAIT).unwrap_or_default()
    }

    fn handshake(&self, peer: usize) -> Option<HandshakeWait> {
        if peer >= self.peer_count {
            return None;
        }
        let (done, wait) = tokio::sync::oneshot::channel();
        self.send(Command::Handshake { peer, done });
        Some(Box::pin(async move {
            match wait.await {
                Ok(d) => d,
                // The engine dropped the request: it will never complete.
                Err(_) => std::future::pending().await,
            }
        }))
    }
}
