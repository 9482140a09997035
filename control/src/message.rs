//! The two message enums, [`Request`] (shim to engine) and [`Reply`]
//! (engine to shim), their tags, and their frame encoding. The types of
//! each family's fields live below: `flow`, `listen`, `udp`, [`crate::dns`];
//! the framing in `wire`.

use crate::dns::{self, DnsInfo, ResolveRequest};
use crate::flow::{
    ConnectReply, ConnectRequest, FlowInfo, FlowState, Proto, RouteDecision, TcpFlowInfo,
    TcpKeepalive,
};
use crate::listen::AcceptedPeer;
use crate::udp::{DatagramFraming, DatagramKind, UdpOpenRequest, UdpReply};
use crate::wire::{frame, unframe, DecodeError, EncodeError};
use std::net::SocketAddr;

/// A message from the shim to the engine.
// `Resolve` carries its name inline (~260 bytes) so requests stay `Copy`
// and allocation-free; one is built per exchange, never stored in bulk.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// A process loaded the shim (at load and after `fork`); no reply.
    Hello {
        /// The process id.
        pid: u32,
        /// [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION) of the shim, repeated for logs.
        version: u8,
    },
    /// Is this destination routed? Answered by [`Reply::Route`].
    Route {
        /// Destination, normalised.
        dst: SocketAddr,
        /// Transport.
        proto: Proto,
    },
    /// Open a TCP flow; this connection becomes its data socket.
    Connect(ConnectRequest),
    /// Outcome of a flow; answered by [`Reply::FlowStatus`].
    FlowStatus {
        /// The id from [`ConnectReply::Accepted`].
        flow: u64,
    },
    /// Should a `bind()` to this address be redirected to loopback (it is a
    /// wildcard or one of our tunnel addresses)? Answered by [`Reply::Bind`].
    Bind {
        /// The address the application asked for, normalised.
        addr: SocketAddr,
    },
    /// The application listens; make the port reachable from the tunnel.
    /// Answered by [`Reply::Done`].
    Listen {
        /// What the application asked for, with the real port.
        requested: SocketAddr,
        /// The loopback address the socket is really bound to.
        loopback: SocketAddr,
    },
    /// Which flow is behind the data socket whose shim-side inode is this?
    /// (After `exec`, the new image's shim has no state.) Answered by
    /// [`Reply::Adopt`].
    Adopt {
        /// Inode of the socket the application holds.
        inode: u64,
    },
    /// Open a datagram flow; answered by [`Reply::Udp`] with a data socket.
    UdpOpen(UdpOpenRequest),
    /// Set (or clear, `None`) the default peer of a datagram flow; answered
    /// by [`Reply::Udp`] (no data socket).
    UdpConnect {
        /// The id from [`UdpReply::Opened`].
        flow: u64,
        /// The new default peer (normalised), or `None` to disconnect.
        peer: Option<SocketAddr>,
    },
    /// Who is the tunnel peer behind this accepted loopback connection?
    /// Answered by [`Reply::Accept`].
    AcceptLookup {
        /// The loopback address the listener is really bound to.
        listener: SocketAddr,
        /// The loopback peer address `accept()` returned.
        peer: SocketAddr,
    },
    /// How does the engine resolve names? Answered by [`Reply::DnsInfo`].
    DnsInfo,
    /// Resolve a name through the tunnel; answered by a
    /// [`dns::ResolveReply`] frame.
    Resolve(ResolveRequest),
    /// The application set keepalive options on a tunnel TCP socket; the
    /// tunnel connection of `flow` is to use them. Answered by
    /// [`Reply::Done`].
    TcpKeepalive {
        /// The id from [`ConnectReply::Accepted`].
        flow: u64,
        /// The socket's values (as `getsockopt` reads them).
        keepalive: TcpKeepalive,
    },
    /// A carried process is about to exec a program the shim cannot enter
    /// (statically linked, musl, Go): it has installed the seccomp filter
    /// of seccomp mode on itself, and asks the engine to supervise it. The
    /// engine takes `listener` from process `pid` (which must be the
    /// process on the other end of this connection) and answers
    /// [`Reply::Done`]; only then may the process exec.
    SeccompAttach {
        /// The process that installed the filter.
        pid: u32,
        /// Its descriptor of the filter's notification listener.
        listener: i32,
    },
    /// What the engine's TCP knows of an outgoing connection (for
    /// `TCP_MAXSEG` and `TCP_INFO`); answered by [`Reply::TcpInfo`].
    TcpInfo {
        /// The id from [`ConnectReply::Accepted`].
        flow: u64,
    },
    /// Switches this connection to the session protocol of the launcher
    /// and the `wrapguard` subcommands (describe, attach, status, down):
    /// JSON lines both ways after this frame (`engine::session`). No frame
    /// reply.
    Session,
    /// Opens a *hold*: a connection the shim keeps open for the life of
    /// every process started under wrapguard (inherited across `fork` and
    /// `exec`). The engine stays up while any hold is open, and what comes
    /// on it is authorised by who opened it — the process started under
    /// wrapguard — not by who sends: after this frame only [`Request::Hello`]
    /// and [`Request::Serve`] frames follow, one `sendmsg` each. No reply.
    Hold {
        /// The process that opened it.
        pid: u32,
    },
    /// On a hold only: the frame carries (`SCM_RIGHTS`) one end of a new
    /// unix stream socket pair; the engine serves that end as a new
    /// control connection of the sender (which may have dropped its
    /// privileges since the hold was opened, and cannot reach the control
    /// socket itself any more). No reply.
    Serve,
}

/// A message from the engine to the shim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Answer to [`Request::Route`].
    Route(RouteDecision),
    /// Answer to [`Request::Connect`].
    Connect(ConnectReply),
    /// Answer to [`Request::FlowStatus`].
    FlowStatus(FlowState),
    /// Answer to [`Request::Bind`]: redirect to loopback or not.
    Bind {
        /// Whether the shim rewrites the bind to loopback.
        redirect: bool,
    },
    /// Success without data, or an errno (0 means success).
    Done(i32),
    /// Answer to [`Request::AcceptLookup`]; `None` for a genuine local client.
    Accept(Option<AcceptedPeer>),
    /// Answer to [`Request::Adopt`]; `None` if no live flow has that inode.
    Adopt(Option<FlowInfo>),
    /// Answer to [`Request::DnsInfo`].
    DnsInfo(DnsInfo),
    /// Answer to [`Request::UdpOpen`] and [`Request::UdpConnect`].
    Udp(UdpReply),
    /// Answer to [`Request::TcpInfo`]; `None` if the flow is gone or its
    /// backend keeps no TCP of its own.
    TcpInfo(Option<TcpFlowInfo>),
}

mod tag {
    pub const HELLO: u8 = 1;
    pub const ROUTE: u8 = 2;
    pub const CONNECT: u8 = 3;
    pub const FLOW_STATUS: u8 = 4;
    pub const BIND: u8 = 5;
    pub const LISTEN: u8 = 6;
    pub const ACCEPT_LOOKUP: u8 = 7;
    pub const ADOPT: u8 = 8;
    pub const DNS_INFO: u8 = 9;
    pub const RESOLVE: u8 = 10;
    pub const UDP_OPEN: u8 = 11;
    pub const UDP_CONNECT: u8 = 12;
    pub const TCP_KEEPALIVE: u8 = 13;
    pub const SECCOMP_ATTACH: u8 = 14;
    pub const SESSION: u8 = 15;
    pub const TCP_INFO: u8 = 24;
    pub const HOLD: u8 = 16;
    pub const SERVE: u8 = 17;

    pub const R_ROUTE: u8 = 0x81;
    pub const R_CONNECT: u8 = 0x82;
    pub const R_FLOW_STATUS: u8 = 0x83;
    pub const R_BIND: u8 = 0x84;
    pub const R_DONE: u8 = 0x85;
    pub const R_ACCEPT: u8 = 0x86;
    pub const R_ADOPT: u8 = 0x87;
    pub const R_DNS_INFO: u8 = 0x88;
    pub const R_UDP: u8 = 0x89;
    pub const R_TCP_INFO: u8 = 0x98;
}

impl Request {
    /// Encodes this request as one frame into `buf`; returns its length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        match *self {
            Request::Hello { pid, version } => frame(buf, tag::HELLO, |w| {
                w.u32(pid);
                w.u8(version);
            }),
            Request::Route { dst, proto } => frame(buf, tag::ROUTE, |w| {
                w.addr(&dst);
                w.u8(proto.to_byte());
            }),
            Request::Connect(c) => frame(buf, tag::CONNECT, |w| {
                w.addr(&c.dst);
                w.u8(u8::from(c.nonblocking));
                w.i32(c.fd);
                w.u8(u8::from(c.v6_socket));
                w.u64(c.inode);
                w.u8(u8::from(c.hand_over));
            }),
            Request::Adopt { inode } => frame(buf, tag::ADOPT, |w| w.u64(inode)),
            Request::FlowStatus { flow } => frame(buf, tag::FLOW_STATUS, |w| w.u64(flow)),
            Request::Bind { addr } => frame(buf, tag::BIND, |w| w.addr(&addr)),
            Request::Listen {
                requested,
                loopback,
            } => frame(buf, tag::LISTEN, |w| {
                w.addr(&requested);
                w.addr(&loopback);
            }),
            Request::UdpOpen(u) => frame(buf, tag::UDP_OPEN, |w| {
                w.u8(u8::from(u.v6_socket));
                w.u8(u8::from(u.v6_only));
                w.addr(&u.bind);
                w.opt_addr(&u.connect);
                w.i32(u.fd);
                w.u8(u.framing.to_byte());
                w.u8(u.kind.to_byte());
            }),
            Request::UdpConnect { flow, peer } => frame(buf, tag::UDP_CONNECT, |w| {
                w.u64(flow);
                w.opt_addr(&peer);
            }),
            Request::AcceptLookup { listener, peer } => frame(buf, tag::ACCEPT_LOOKUP, |w| {
                w.addr(&listener);
                w.addr(&peer);
            }),
            Request::DnsInfo => frame(buf, tag::DNS_INFO, |_| {}),
            Request::TcpKeepalive { flow, keepalive } => frame(buf, tag::TCP_KEEPALIVE, |w| {
                w.u64(flow);
                w.u8(u8::from(keepalive.enabled));
                w.u32(keepalive.idle_secs);
                w.u32(keepalive.interval_secs);
                w.u32(keepalive.count);
            }),
            Request::Resolve(q) => frame(buf, tag::RESOLVE, |w| dns::encode_request(w, &q)),
            Request::SeccompAttach { pid, listener } => frame(buf, tag::SECCOMP_ATTACH, |w| {
                w.u32(pid);
                w.i32(listener);
            }),
            Request::Session => frame(buf, tag::SESSION, |_| {}),
            Request::TcpInfo { flow } => frame(buf, tag::TCP_INFO, |w| w.u64(flow)),
            Request::Hold { pid } => frame(buf, tag::HOLD, |w| w.u32(pid)),
            Request::Serve => frame(buf, tag::SERVE, |_| {}),
        }
    }

    /// Decodes one request frame from the front of `buf`; returns it and the
    /// number of bytes it used.
    pub fn decode(buf: &[u8]) -> Result<(Request, usize), DecodeError> {
        let (t, mut r, total) = unframe(buf)?;
        let req = match t {
            tag::HELLO => Request::Hello {
                pid: r.u32()?,
                version: r.u8()?,
            },
            tag::ROUTE => Request::Route {
                dst: r.addr()?,
                proto: Proto::from_byte(r.u8()?),
            },
            tag::CONNECT => Request::Connect(ConnectRequest {
                dst: r.addr()?,
                nonblocking: r.bool()?,
                fd: r.i32()?,
                v6_socket: r.bool()?,
                inode: r.u64()?,
                hand_over: r.bool()?,
            }),
            tag::ADOPT => Request::Adopt { inode: r.u64()? },
            tag::FLOW_STATUS => Request::FlowStatus { flow: r.u64()? },
            tag::BIND => Request::Bind { addr: r.addr()? },
            tag::LISTEN => Request::Listen {
                requested: r.addr()?,
                loopback: r.addr()?,
            },
            tag::UDP_OPEN => {
                let u = UdpOpenRequest {
                    v6_socket: r.bool()?,
                    v6_only: r.bool()?,
                    bind: r.addr()?,
                    connect: r.opt_addr()?,
                    fd: r.i32()?,
                    framing: DatagramFraming::from_byte(r.u8()?)?,
                    kind: DatagramKind::from_byte(r.u8()?)?,
                };
                if u.framing == DatagramFraming::Plain && u.connect.is_none() {
                    return Err(DecodeError::BadField("plain framing without a peer"));
                }
                Request::UdpOpen(u)
            }
            tag::UDP_CONNECT => Request::UdpConnect {
                flow: r.u64()?,
                peer: r.opt_addr()?,
            },
            tag::ACCEPT_LOOKUP => Request::AcceptLookup {
                listener: r.addr()?,
                peer: r.addr()?,
            },
            tag::DNS_INFO => Request::DnsInfo,
            tag::TCP_KEEPALIVE => Request::TcpKeepalive {
                flow: r.u64()?,
                keepalive: TcpKeepalive {
                    enabled: r.bool()?,
                    idle_secs: r.u32()?,
                    interval_secs: r.u32()?,
                    count: r.u32()?,
                },
            },
            tag::RESOLVE => Request::Resolve(dns::decode_request(&mut r)?),
            tag::SECCOMP_ATTACH => Request::SeccompAttach {
                pid: r.u32()?,
                listener: r.i32()?,
            },
            tag::SESSION => Request::Session,
            tag::TCP_INFO => Request::TcpInfo { flow: r.u64()? },
            tag::HOLD => Request::Hold { pid: r.u32()? },
            tag::SERVE => Request::Serve,
            other => return Err(DecodeError::BadTag(other)),
        };
        r.finish()?;
        Ok((req, total))
    }
}

impl Reply {
    /// Encodes this reply as one frame into `buf`; returns its length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        match *self {
            Reply::Route(d) => frame(buf, tag::R_ROUTE, |w| match d {
                RouteDecision::Direct => w.u8(0),
                RouteDecision::Tunnel => w.u8(1),
                RouteDecision::Unreachable(e) => {
                    w.u8(2);
                    w.i32(e);
                }
            }),
            Reply::Connect(c) => frame(buf, tag::R_CONNECT, |w| match c {
                ConnectReply::NotRouted => w.u8(0),
                ConnectReply::Accepted { flow, local } => {
                    w.u8(1);
                    w.u64(flow);
                    w.addr(&local);
                }
                ConnectReply::Refused(e) => {
                    w.u8(2);
                    w.i32(e);
                }
            }),
            Reply::FlowStatus(s) => frame(buf, tag::R_FLOW_STATUS, |w| w.state(s)),
            Reply::Adopt(info) => frame(buf, tag::R_ADOPT, |w| match info {
                None => w.u8(0),
                Some(i) => {
                    w.u8(1);
                    w.u64(i.flow);
                    w.addr(&i.peer);
                    w.addr(&i.local);
                    w.u8(u8::from(i.v6_socket));
                    w.state(i.state);
                }
            }),
            Reply::Bind { redirect } => frame(buf, tag::R_BIND, |w| w.u8(u8::from(redirect))),
            Reply::Done(e) => frame(buf, tag::R_DONE, |w| w.i32(e)),
            Reply::TcpInfo(i) => frame(buf, tag::R_TCP_INFO, |w| match i {
                None => w.u8(0),
                Some(i) => {
                    w.u8(1);
                    w.tcp_info(&i);
                }
            }),
            Reply::DnsInfo(i) => frame(buf, tag::R_DNS_INFO, |w| dns::encode_info(w, &i)),
            Reply::Udp(u) => frame(buf, tag::R_UDP, |w| match u {
                UdpReply::Opened { flow, local, mtu } => {
                    w.u8(1);
                    w.u64(flow);
                    w.addr(&local);
                    w.u16(mtu);
                }
                UdpReply::Refused(e) => {
                    w.u8(2);
                    w.i32(e);
                }
            }),
            Reply::Accept(p) => frame(buf, tag::R_ACCEPT, |w| match p {
                None => w.u8(0),
                Some(p) => {
                    w.u8(1);
                    w.addr(&p.peer);
                    w.addr(&p.local);
                }
            }),
        }
    }

    /// Decodes one reply frame from the front of `buf`; returns it and the
    /// number of bytes it used.
    pub fn decode(buf: &[u8]) -> Result<(Reply, usize), DecodeError> {
        let (t, mut r, total) = unframe(buf)?;
        let reply = match t {
            tag::R_ROUTE => Reply::Route(match r.u8()? {
                0 => RouteDecision::Direct,
                1 => RouteDecision::Tunnel,
                2 => RouteDecision::Unreachable(r.i32()?),
                _ => return Err(DecodeError::BadField("route decision")),
            }),
            tag::R_CONNECT => Reply::Connect(match r.u8()? {
                0 => ConnectReply::NotRouted,
                1 => ConnectReply::Accepted {
                    flow: r.u64()?,
                    local: r.addr()?,
                },
                2 => ConnectReply::Refused(r.i32()?),
                _ => return Err(DecodeError::BadField("connect reply")),
            }),
            tag::R_FLOW_STATUS => Reply::FlowStatus(r.state()?),
            tag::R_ADOPT => Reply::Adopt(match r.u8()? {
                0 => None,
                1 => Some(FlowInfo {
                    flow: r.u64()?,
                    peer: r.addr()?,
                    local: r.addr()?,
                    v6_socket: r.bool()?,
                    state: r.state()?,
                }),
                _ => return Err(DecodeError::BadField("adopt option")),
            }),
            tag::R_BIND => Reply::Bind {
                redirect: r.bool()?,
            },
            tag::R_DONE => Reply::Done(r.i32()?),
            tag::R_TCP_INFO => Reply::TcpInfo(match r.u8()? {
                0 => None,
                1 => Some(r.tcp_info()?),
                _ => return Err(DecodeError::BadField("tcp info option")),
            }),
            tag::R_DNS_INFO => Reply::DnsInfo(dns::decode_info(&mut r)?),
            tag::R_UDP => Reply::Udp(match r.u8()? {
                1 => UdpReply::Opened {
                    flow: r.u64()?,
                    local: r.addr()?,
                    mtu: r.u16()?,
                },
                2 => UdpReply::Refused(r.i32()?),
                _ => return Err(DecodeError::BadField("udp reply")),
            }),
            tag::R_ACCEPT => Reply::Accept(match r.u8()? {
                0 => None,
                1 => Some(AcceptedPeer {
                    peer: r.addr()?,
                    local: r.addr()?,
                }),
                _ => return Err(DecodeError::BadField("accept option")),
            }),
            other => return Err(DecodeError::BadTag(other)),
        };
        r.finish()?;
        Ok((reply, total))
    }
}
