//! The engine boundary: what the front-ends (the [`crate::bridge`], which
//! serves the shim and seccomp mode) need from whatever carries flows. The real implementation is
//! [`crate::tunnel::TunnelBackend`] (tcpip + noise + router on a UDP socket, driven
//! by one engine thread, [`crate::stack_thread`]); the test-only
//! [`crate::loopback::HostLoopbackBackend`] carries flows over host loopback.
//!
//! Contract, in the order the bridge uses it:
//! 1. [`FlowBackend::route`] decides per destination, synchronously (the
//!    router is the only authority; loopback never reaches it).
//! 2. [`FlowBackend::open_tcp`] starts a tunnel connection and returns at
//!    once with our local tunnel address (the stack allocates the port) and a
//!    future that resolves to a byte stream once the handshake completes, or
//!    to the errno a kernel would report (`ECONNREFUSED` for a RST,
//!    `ETIMEDOUT`, `EHOSTUNREACH`/`ENETUNREACH` for ICMP or no peer).
//! 3. [`FlowBackend::listen`] makes a port reachable at our tunnel
//!    address(es); each accepted tunnel connection is handed to the bridge
//!    through the [`InboundSink`], which connects it to the application's
//!    loopback listener (carried by [`FlowBackend::tcp_direct`] where the
//!    backend can, spliced otherwise) and answers the shim's `AcceptLookup`.
//!
//! 4. [`FlowBackend::open_udp`] opens a datagram flow: the engine keeps one
//!    end of a `SOCK_SEQPACKET` pair and returns the other for the shim
//!    (see [`crate::seqpacket`] and `control::datagram`); [`FlowBackend::udp_connect`]
//!    sets its default peer. With `DatagramFraming::Plain` (seccomp mode,
//!    where the program reads the socket itself) messages are bare payloads
//!    and the flow is connected to one peer (see `udp_flows`).
//!
//! Streams are plain `AsyncRead + AsyncWrite` (a `tokio::io::duplex` pair
//! fed by the stack thread works); half-close is `shutdown()` (FIN).

use crate::status::PeerStatus;
use control::{Proto, RouteDecision, UdpOpenRequest};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// A Linux errno value, as the application should see it.
pub type Errno = i32;

/// A bidirectional byte stream of one flow.
pub trait FlowIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> FlowIo for T {}

/// A boxed [`FlowIo`].
pub type BoxedIo = Box<dyn FlowIo>;

/// Resolves when a tunnel connection is established or has failed.
pub type Establishing = Pin<Box<dyn Future<Output = Result<BoxedIo, Errno>> + Send>>;

/// An outgoing tunnel connection being set up.
pub struct OutboundTcp {
    /// The backend's id of the flow (for [`FlowBackend::tcp_keepalive`]).
    pub id: u64,
    /// Our tunnel address and port for this flow.
    pub local: SocketAddr,
    /// Completes with the stream, or the errno to report.
    pub established: Establishing,
}

/// What the application listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenSpec {
    /// What the application asked for (wildcard or a tunnel address), with
    /// the real port.
    pub requested: SocketAddr,
    /// Where the application's socket really is (loopback, same port).
    pub loopback: SocketAddr,
}

/// A connection a tunnel peer made to one of our listeners.
pub struct InboundTcp {
    /// The backend's id of the flow (for [`FlowBackend::tcp_direct`]).
    pub id: u64,
    /// The peer's tunnel address.
    pub peer: SocketAddr,
    /// Our tunnel address it connected to.
    pub local: SocketAddr,
    /// The application's loopback listener to splice it to.
    pub target: SocketAddr,
    /// The stream.
    pub io: BoxedIo,
    /// Its place in the listener's bounded backlog: drop it once the
    /// program's listener has queued the connection (see [`backlog`]).
    pub ticket: crate::backlog::Ticket,
}

/// A datagram flow the engine opened.
#[derive(Debug)]
pub struct OpenedUdp {
    /// Engine-wide id.
    pub flow: u64,
    /// Our tunnel address and port (`getsockname`).
    pub local: SocketAddr,
    /// The tunnel MTU.
    pub mtu: u16,
    /// The shim's end of the data socket.
    pub app_end: OwnedFd,
}

/// Where a backend delivers inbound connections.
pub type InboundSink = mpsc::Sender<InboundTcp>;

/// Startup facts for the log.
#[derive(Clone, Debug, Default)]
pub struct BackendInfo {
    /// Our tunnel addresses.
    pub addresses: Vec<IpAddr>,
    /// The addresses as configured, with prefix length (`10.77.0.2/24`),
    /// for the log; empty means "log `addresses`".
    pub interface: Vec<String>,
    /// One line per peer (`"<public key> endpoint <addr>"`, never a key
    /// that is secret).
    pub peers: Vec<String>,
    /// `DNS =` servers (empty: names are resolved by the host).
    pub dns: Vec<IpAddr>,
    /// `DNS =` search domains.
    pub dns_search: Vec<String>,
}

/// The answer to one DNS query sent over UDP through the tunnel; the
/// sender is dropped if the server cannot be reached.
pub type DnsAnswer = tokio::sync::oneshot::Receiver<Vec<u8>>;

/// How a flow carried on the engine thread ([`FlowBackend::tcp_direct`])
/// ended.
#[derive(Debug)]
pub struct DirectEnd {
    /// Bytes from the program's socket into the tunnel.
    pub bytes_up: u64,
    /// Bytes from the tunnel into the program's socket.
    pub bytes_down: u64,
    /// The errno that ended the tunnel connection (`ETIMEDOUT`,
    /// `ECONNRESET`…); `None` if both directions ended as TCP ends, or the
    /// program closed its socket.
    pub errno: Option<Errno>,
    /// The program's socket, given back to be closed once the outcome is
    /// recorded (`None` if the engine closed it).
    pub fd: Option<OwnedFd>,
}

/// Resolves when a flow carried on the engine thread ends; the sender is
/// dropped if the engine gave the flow up (treat it as `ECONNRESET`).
pub type DirectDone = tokio::sync::oneshot::Receiver<DirectEnd>;

/// What carries the child's flows. Methods are called from tokio tasks.
pub trait FlowBackend: Send + Sync + 'static {
    /// Short name for logs.
    fn name(&self) -> &'static str;
    /// Addresses and peers, for the startup log.
    fn info(&self) -> BackendInfo;
    /// Whether `ip` is one of our tunnel addresses (for `bind()`).
    fn is_local_address(&self, ip: IpAddr) -> bool {
        self.info().addresses.contains(&ip)
    }
    /// Routing decision for a (normalised) destination.
    fn route(&self, dst: SocketAddr, proto: Proto) -> RouteDecision;
    /// Starts a TCP connection through the tunnel.
    fn open_tcp(&self, dst: SocketAddr) -> Result<OutboundTcp, Errno>;
    /// Accepts tunnel connections for `spec` (idempotent per port).
    fn listen(&self, spec: ListenSpec, sink: InboundSink) -> Result<(), Errno>;
    /// Applies the keepalive options the application set on its socket to
    /// the tunnel connection of flow `id` ([`OutboundTcp::id`]).
    fn tcp_keepalive(&self, id: u64, keepalive: control::TcpKeepalive) -> Result<(), Errno> {
        let _ = (id, keepalive);
        Ok(())
    }
    /// What the backend's TCP knows of flow `id` ([`OutboundTcp::id`]), for
    /// `TCP_MAXSEG` and `TCP_INFO` on the program's socket; `ENOTSUP` for
    /// a backend whose TCP is the host's (the program's socket then
    /// answers as it did).
    fn tcp_info(&self, id: u64) -> Result<control::TcpFlowInfo, Errno> {
        let _ = id;
        Err(libc::ENOTSUP)
    }
    /// Every TCP flow of the backend's own TCP, with the backend's flow
    /// ids ([`OutboundTcp::id`]); empty for a backend whose TCP is the
    /// host's.
    fn tcp_flows(&self) -> Vec<crate::flow_report::TcpFlowStatus> {
        Vec::new()
    }
    /// Whether this backend carries established flows on its engine thread
    /// ([`FlowBackend::tcp_direct`]); if not, the bridge splices them.
    fn carries_direct(&self) -> bool {
        false
    }
    /// Carries established flow `id` ([`OutboundTcp::id`], [`InboundTcp::id`]) on the engine
    /// thread itself, if [`FlowBackend::carries_direct`]: it reads and
    /// writes `fd` (the data socket, or a connection handed over, which it
    /// resets if the flow fails: `reset`; non-blocking) and the tunnel
    /// connection directly, so no bridge task copies the bytes and no
    /// thread hop lies between them. The caller keeps the flow's stream
    /// (dropping it aborts the flow) until the end, which gives `fd` back.
    /// A backend that cannot drops `fd` and the sender (`ECONNRESET`).
    fn tcp_direct(&self, id: u64, fd: OwnedFd, reset: bool) -> DirectDone {
        let _ = (id, fd, reset);
        tokio::sync::oneshot::channel().1
    }
    /// Sends one DNS query over UDP to `server` through the tunnel.
    fn dns_udp(&self, server: SocketAddr, payload: Vec<u8>) -> Result<DnsAnswer, Errno> {
        let _ = (server, payload);
        Err(libc::ENETUNREACH)
    }
    /// Opens a datagram flow (bound, and connected if asked).
    fn open_udp(&self, _req: UdpOpenRequest) -> Result<OpenedUdp, Errno> {
        Err(libc::ENETUNREACH)
    }
    /// Sets (`Some`) or clears the default peer of a datagram flow;
    /// returns our address for it.
    fn udp_connect(&self, _flow: u64, _peer: Option<SocketAddr>) -> Result<SocketAddr, Errno> {
        Err(libc::ENETUNREACH)
    }
    /// Flows still open (the launcher waits briefly for them at exit, so
    /// their closing log lines are written).
    fn active_flows(&self) -> usize {
        0
    }
    /// Returns once the engine has sent everything already handed to it
    /// (e.g. the last datagrams of a flow that just closed), or after a
    /// short wait; the launcher calls it before exiting.
    fn settle(&self) {}
    /// The engine's counters as one `key=value` line (drops by reason,
    /// cookie replies…), if this backend keeps any.
    fn counters(&self) -> Option<String> {
        None
    }
    /// A status snapshot of every peer (empty for backends without peers).
    fn status(&self) -> Vec<PeerStatus> {
        Vec::new()
    }
    /// Starts a handshake with configured peer `peer` (config order) now;
    /// the future resolves with the time it took, or never if no answer
    /// comes (the caller bounds the wait). `None`: this backend has no
    /// such peer.
    fn handshake(&self, peer: usize) -> Option<HandshakeWait> {
        let _ = peer;
        None
    }
}

/// Resolves when a handshake asked for with [`FlowBackend::handshake`]
/// completes, with the time from the request to the completion.
pub type HandshakeWait = Pin<Box<dyn Future<Output = Duration> + Send>>;
