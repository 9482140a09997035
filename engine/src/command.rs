//! What the bridge side ([`crate::tunnel::TunnelBackend`]) asks of the
//! engine thread: one [`Command`] per request, pushed on a lock-free queue
//! and answered through the channel it carries.

use crate::flow::FlowShared;
use crate::{Errno, InboundSink, ListenSpec, PeerStatus};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

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
    /// Carry established TCP flow `flow` on the engine thread, between its
    /// tunnel connection and `fd` ([`crate::FlowBackend::tcp_direct`]).
    TcpDirect {
        /// The flow.
        flow: u64,
        /// The program's side (non-blocking).
        fd: OwnedFd,
        /// Reset `fd` (SO_LINGER 0) if the flow fails (a handed-over
        /// connection).
        reset: bool,
        /// Told when the flow ends.
        done: oneshot::Sender<crate::DirectEnd>,
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
    /// What the TCP knows of an outgoing flow (`TCP_MAXSEG`, `TCP_INFO`).
    TcpInfo {
        /// Engine flow id.
        flow: u64,
        /// The numbers, or the errno (`ENOTCONN`: no such flow).
        reply: SyncSender<Result<control::TcpFlowInfo, Errno>>,
    },
    /// Every TCP flow's numbers (`status --flows`).
    TcpFlows {
        /// The answer.
        reply: SyncSender<Vec<crate::flow_report::TcpFlowStatus>>,
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
