//! The front-ends as a blocking client of the engine's control socket
//! (the exchanges are in the `control` crate's doc): the same requests the
//! shim and the seccomp supervisor make, so a private engine and a shared
//! one (`wrapguard up`) serve them alike. Callers run these on tokio's
//! blocking pool ([`crate::tunnel`]).

use control::{
    AcceptedPeer, ConnectReply, ConnectRequest, DnsInfo, FlowState, Proto, QueryName, Reply,
    Request, ResolveKind, ResolveReply, ResolveRequest, RouteDecision, UdpOpenRequest, UdpReply,
    MAX_FRAME, PREFIX_LEN,
};
use fdpass::recv_reply_with_fd;
use socket2::{Domain, SockAddr, Socket, Type};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// How long a query waits for the engine.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a name lookup waits (the engine retries within this).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(15);

fn proto_err() -> io::Error {
    io::Error::from_raw_os_error(libc::EPROTO)
}

/// Where the engine's control socket is.
#[derive(Clone, Debug)]
pub struct Control {
    path: PathBuf,
}

/// A TCP flow the engine accepted: its data socket (the filler written)
/// and ids.
#[derive(Debug)]
pub struct Opened {
    /// The data socket; application bytes once the flow is established.
    pub data: UnixStream,
    /// The engine's flow id (`FlowStatus`).
    pub flow: u64,
    /// Our tunnel address for the flow.
    pub local: SocketAddr,
}

/// The answer to a `Connect`.
#[derive(Debug)]
pub enum Connected {
    /// Accepted; establishing.
    Opened(Opened),
    /// Not routed into the tunnel.
    NotRouted,
    /// Refused at once with this errno.
    Refused(i32),
}

/// A datagram flow: the `SOCK_SEQPACKET` data socket and ids.
#[derive(Debug)]
pub struct UdpFlow {
    /// One message per datagram (see `control::datagram`).
    pub socket: OwnedFd,
    /// The engine's flow id.
    pub flow: u64,
    /// Our tunnel address and port.
    pub local: SocketAddr,
}

impl Control {
    /// A client of the control socket at `path`.
    pub fn new(path: PathBuf) -> Control {
        Control { path }
    }

    fn open(&self, small_sndbuf: bool, timeout: Duration) -> io::Result<UnixStream> {
        let s = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        if small_sndbuf {
            // The kernel raises this to its minimum; the filler then keeps
            // POLLOUT off until the engine drains it (control crate doc).
            s.set_send_buffer_size(1)?;
        }
        s.set_read_timeout(Some(timeout))?;
        s.connect(&SockAddr::unix(&self.path)?)?;
        Ok(UnixStream::from(OwnedFd::from(s)))
    }

    fn query(&self, req: &Request) -> io::Result<Reply> {
        let mut s = self.open(false, QUERY_TIMEOUT)?;
        send(&mut s, req)?;
        recv(&mut s)
    }

    /// Is `dst` routed into the tunnel?
    pub fn route(&self, dst: SocketAddr, proto: Proto) -> io::Result<RouteDecision> {
        match self.query(&Request::Route {
            dst: control::normalize(dst),
            proto,
        })? {
            Reply::Route(d) => Ok(d),
            _ => Err(proto_err()),
        }
    }

    /// The engine's DNS setup.
    pub fn dns_info(&self) -> io::Result<DnsInfo> {
        match self.query(&Request::DnsInfo)? {
            Reply::DnsInfo(d) => Ok(d),
            _ => Err(proto_err()),
        }
    }

    /// Resolves `name` through the tunnel DNS.
    pub fn resolve(&self, name: &str) -> io::Result<ResolveReply> {
        let name = QueryName::new(name.as_bytes()).ok_or(proto_err())?;
        let mut s = self.open(false, RESOLVE_TIMEOUT)?;
        send(
            &mut s,
            &Request::Resolve(ResolveRequest {
                kind: ResolveKind::Addr { v4: true, v6: true },
                name,
            }),
        )?;
        let mut prefix = [0u8; control::dns::RESOLVE_PREFIX_LEN];
        s.read_exact(&mut prefix)?;
        let total = ResolveReply::frame_len(prefix).map_err(|_| proto_err())?;
        let mut buf = vec![0u8; total];
        buf[..prefix.len()].copy_from_slice(&prefix);
        s.read_exact(&mut buf[prefix.len()..])?;
        ResolveReply::decode(&buf).map_err(|_| proto_err())
    }

    /// Asks for a TCP flow to `dst`; on acceptance writes the filler.
    /// With `hand_over` the engine, once the flow is established, waits
    /// for the client's own connection instead of data (see
    /// [`control::ConnectRequest::hand_over`]).
    pub fn connect(&self, dst: SocketAddr, hand_over: bool) -> io::Result<Connected> {
        let mut data = self.open(true, QUERY_TIMEOUT)?;
        let req = Request::Connect(ConnectRequest {
            dst: control::normalize(dst),
            nonblocking: true,
            fd: -1,
            v6_socket: false,
            inode: 0,
            hand_over,
        });
        send(&mut data, &req)?;
        Ok(match recv(&mut data)? {
            Reply::Connect(ConnectReply::Accepted { flow, local }) => {
                // A failure here means the engine gave up already;
                // FlowStatus says why.
                let _ = data.write_all(&[control::FILLER_BYTE; control::FILLER_LEN]);
                data.set_read_timeout(None)?;
                Connected::Opened(Opened { data, flow, local })
            }
            Reply::Connect(ConnectReply::NotRouted) => Connected::NotRouted,
            Reply::Connect(ConnectReply::Refused(e)) => Connected::Refused(e),
            _ => return Err(proto_err()),
        })
    }

    /// Where flow `flow` stands.
    pub fn flow_status(&self, flow: u64) -> io::Result<FlowState> {
        match self.query(&Request::FlowStatus { flow })? {
            Reply::FlowStatus(s) => Ok(s),
            _ => Err(proto_err()),
        }
    }

    /// Opens a datagram flow; `Err(errno)` if the engine refuses.
    pub fn udp_open(&self, req: UdpOpenRequest) -> io::Result<Result<UdpFlow, i32>> {
        let mut s = self.open(false, QUERY_TIMEOUT)?;
        send(&mut s, &Request::UdpOpen(req))?;
        match recv_reply_with_fd(&mut s)? {
            (Reply::Udp(UdpReply::Opened { flow, local, .. }), Some(socket)) => Ok(Ok(UdpFlow {
                socket,
                flow,
                local,
            })),
            (Reply::Udp(UdpReply::Refused(e)), _) => Ok(Err(e)),
            _ => Err(proto_err()),
        }
    }

    /// Makes `requested` (a wildcard and port: every tunnel address)
    /// reachable from the tunnel, spliced to our listener at `loopback`;
    /// returns the engine's errno (0: done).
    pub fn listen(&self, requested: SocketAddr, loopback: SocketAddr) -> io::Result<i32> {
        match self.query(&Request::Listen {
            requested,
            loopback,
        })? {
            Reply::Done(e) => Ok(e),
            _ => Err(proto_err()),
        }
    }

    /// The tunnel peer behind a connection the engine made to our
    /// listener at `listener` from `peer`.
    pub fn accept_lookup(
        &self,
        listener: SocketAddr,
        peer: SocketAddr,
    ) -> io::Result<Option<AcceptedPeer>> {
        match self.query(&Request::AcceptLookup { listener, peer })? {
            Reply::Accept(a) => Ok(a),
            _ => Err(proto_err()),
        }
    }
}

fn send(s: &mut UnixStream, req: &Request) -> io::Result<()> {
    let mut buf = [0u8; MAX_FRAME];
    let n = req.encode(&mut buf).map_err(|_| proto_err())?;
    s.write_all(&buf[..n])
}

/// Reads exactly one reply frame (never more: application bytes follow on
/// a data socket).
fn recv(s: &mut UnixStream) -> io::Result<Reply> {
    let mut buf = [0u8; MAX_FRAME];
    s.read_exact(&mut buf[..PREFIX_LEN])?;
    let total = control::frame_len([buf[0], buf[1]]).map_err(|_| proto_err())?;
    s.read_exact(&mut buf[PREFIX_LEN..total])?;
    Reply::decode(&buf[..total])
        .map(|(r, _)| r)
        .map_err(|_| proto_err())
}
