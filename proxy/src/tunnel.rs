//! The engine as the async serving code sees it: each control exchange of
//! [`crate::client`] on tokio's blocking pool, and a TCP flow handed over
//! only once the tunnel connection is established (or has failed).

use crate::client::{Connected, Control, UdpFlow};
use control::{AcceptedPeer, FlowState, Proto, ResolveStatus, RouteDecision, UdpOpenRequest};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{UnixDatagram, UnixStream};
use tokio::sync::OnceCell;

/// How long a tunnel connection may take to establish.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest pause between two questions about a connecting flow.
const STATUS_EVERY: Duration = Duration::from_millis(50);

/// Why the engine did not give a flow.
#[derive(Debug)]
pub enum OpenError {
    /// The destination is not routed into the tunnel.
    NotRouted,
    /// The tunnel connection failed (or was refused) with this errno.
    Failed(i32),
    /// The control socket failed.
    Io(io::Error),
}

/// How a name lookup through the tunnel ended without addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupError {
    /// The name does not exist, or has no address.
    NotFound,
    /// The tunnel DNS server did not answer.
    TryAgain,
    /// The engine could not be asked.
    Engine,
}

/// A TCP flow through the tunnel, established.
#[derive(Debug)]
pub struct TunnelStream {
    /// The data socket: application bytes both ways, or, with
    /// `hand_over`, the socket the client's connection is passed on
    /// (closed by the engine when the flow is over).
    pub stream: UnixStream,
    /// The engine waits for the client's own connection
    /// ([`control::ConnectRequest::hand_over`]).
    pub hand_over: bool,
    /// Our tunnel address for the flow.
    pub local: SocketAddr,
    /// The engine's flow id.
    pub flow: u64,
}

/// A datagram flow through the tunnel.
#[derive(Debug)]
pub struct TunnelDatagrams {
    /// The `SOCK_SEQPACKET` data socket (one message per datagram).
    pub socket: UnixDatagram,
    /// Our tunnel address and port.
    pub local: SocketAddr,
    /// The engine's flow id.
    pub flow: u64,
}

/// The engine behind one control socket.
#[derive(Debug)]
pub struct Engine {
    ctl: Arc<Control>,
    tunnel_dns: OnceCell<bool>,
}

impl Engine {
    /// The engine whose control socket is at `path`.
    pub fn new(path: PathBuf) -> Engine {
        Engine {
            ctl: Arc::new(Control::new(path)),
            tunnel_dns: OnceCell::new(),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Control) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let ctl = self.ctl.clone();
        tokio::task::spawn_blocking(move || f(&ctl))
            .await
            .map_err(io::Error::other)?
    }

    /// Whether names are resolved through the tunnel (`DNS =` is set).
    pub async fn tunnel_dns(&self) -> bool {
        *self
            .tunnel_dns
            .get_or_init(|| async {
                self.blocking(|c| c.dns_info())
                    .await
                    .map(|d| d.server.is_some())
                    .unwrap_or(false)
            })
            .await
    }

    /// The addresses of `name`, from the tunnel DNS.
    pub async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, LookupError> {
        let n = name.to_string();
        let r = self
            .blocking(move |c| c.resolve(&n))
            .await
            .map_err(|_| LookupError::Engine)?;
        match r.status {
            ResolveStatus::Ok if !r.addrs.is_empty() => Ok(r.addrs),
            ResolveStatus::TryAgain => Err(LookupError::TryAgain),
            _ => Err(LookupError::NotFound),
        }
    }

    /// Where the engine sends `dst`.
    pub async fn route(&self, dst: SocketAddr, proto: Proto) -> io::Result<RouteDecision> {
        self.blocking(move |c| c.route(dst, proto)).await
    }

    /// A TCP flow to `dst` through the tunnel, once established; with
    /// `hand_over` the engine waits for the client's connection
    /// ([`TunnelStream::hand_over`]).
    pub async fn connect(
        &self,
        dst: SocketAddr,
        hand_over: bool,
    ) -> Result<TunnelStream, OpenError> {
        let opened = match self.blocking(move |c| c.connect(dst, hand_over)).await {
            Ok(Connected::Opened(o)) => o,
            Ok(Connected::NotRouted) => return Err(OpenError::NotRouted),
            Ok(Connected::Refused(e)) => return Err(OpenError::Failed(e)),
            Err(e) => return Err(OpenError::Io(e)),
        };
        opened.data.set_nonblocking(true).map_err(OpenError::Io)?;
        let stream = UnixStream::from_std(opened.data).map_err(OpenError::Io)?;
        let flow = opened.flow;
        // The flow's state is asked with a growing pause (1 ms to
        // STATUS_EVERY): the readiness of the data socket cannot be used,
        // as the filler does not always keep POLLOUT off.
        let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
        let mut pause = Duration::from_millis(1);
        loop {
            let state = self
                .blocking(move |c| c.flow_status(flow))
                .await
                .map_err(OpenError::Io)?;
            match state {
                FlowState::Established => break,
                FlowState::Failed(e) => return Err(OpenError::Failed(e)),
                FlowState::Unknown => return Err(OpenError::Failed(libc::ECONNRESET)),
                FlowState::Connecting => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(OpenError::Failed(libc::ETIMEDOUT));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(STATUS_EVERY);
        }
        Ok(TunnelStream {
            stream,
            local: opened.local,
            flow,
            hand_over,
        })
    }

    /// Opens a datagram flow.
    pub async fn udp_open(&self, req: UdpOpenRequest) -> Result<TunnelDatagrams, OpenError> {
        let f: UdpFlow = match self.blocking(move |c| c.udp_open(req)).await {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => return Err(OpenError::Failed(e)),
            Err(e) => return Err(OpenError::Io(e)),
        };
        // A SOCK_SEQPACKET socket: send(2)/recv(2) keep message
        // boundaries as on a datagram socket, so tokio's type fits.
        let std_sock = std::os::unix::net::UnixDatagram::from(f.socket);
        std_sock.set_nonblocking(true).map_err(OpenError::Io)?;
        Ok(TunnelDatagrams {
            socket: UnixDatagram::from_std(std_sock).map_err(OpenError::Io)?,
            local: f.local,
            flow: f.flow,
        })
    }

    /// Makes `requested` reachable from the tunnel, spliced to `loopback`;
    /// `Err(errno)` if the engine refuses.
    pub async fn listen(&self, requested: SocketAddr, loopback: SocketAddr) -> io::Result<i32> {
        self.blocking(move |c| c.listen(requested, loopback)).await
    }

    /// The tunnel peer behind a connection the engine made to `listener`.
    pub async fn accept_lookup(
        &self,
        listener: SocketAddr,
        peer: SocketAddr,
    ) -> io::Result<Option<AcceptedPeer>> {
        self.blocking(move |c| c.accept_lookup(listener, peer))
            .await
    }
}
