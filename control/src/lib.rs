//! The control protocol spoken between the LD_PRELOAD shim and the engine:
//! message types and their wire encoding, defined in exactly one place.
//!
//! # Transport
//!
//! The engine listens on one unix stream socket (path in [`ENV_CONTROL`],
//! inside a private 0700 directory; the engine also checks `SO_PEERCRED`).
//! Every exchange is a fresh connection that starts with one [`Request`]
//! frame:
//!
//! * **Queries** (`Route`, `FlowStatus`, `Bind`, `Listen`, `AcceptLookup`,
//!   `Adopt`, `TcpKeepalive`):
//!   the engine answers with one [`Reply`] frame and closes.
//! * **`DnsInfo`**: answered with [`Reply::DnsInfo`].
//! * **`Resolve`**: answered with one [`dns::ResolveReply`] in its own long
//!   frame (see [`dns`]), then the engine closes.
//! * **`Hello`**: fire and forget, no reply.
//! * **`SeccompAttach`**: answered with [`Reply::Done`] once the engine
//!   supervises the filter (or with the errno why it cannot).
//! * **`UdpOpen`**: the engine answers one [`Reply::Udp`] frame; when it is
//!   [`UdpReply::Opened`], the frame carries (`SCM_RIGHTS`) one end of a
//!   `SOCK_SEQPACKET` socket pair whose other end the engine keeps. Each
//!   message on it is one datagram: a [`datagram::Header`] followed by the
//!   payload (see [`datagram`]). `UdpConnect` is a query on an open one.
//!   With [`DatagramFraming::Plain`] (a program that reads the socket
//!   itself, seccomp mode) each message is exactly one payload and the flow
//!   is connected to one peer; see [`DatagramFraming`].
//! * **`Connect`**: the connection *becomes the data socket* of one TCP flow.
//!   The engine answers with one [`Reply::Connect`]. If it is
//!   [`ConnectReply::Accepted`], the shim writes exactly [`FILLER_LEN`] bytes
//!   of [`FILLER_BYTE`], swaps the socket onto the application's fd, and from
//!   then on the stream carries only application bytes in both directions.
//!   The engine discards the filler once the tunnel connection is
//!   established (this is what turns `POLLOUT` on for the application), or
//!   closes the socket with the filler unread if it failed (the application
//!   sees `POLLERR|POLLHUP`, and the shim asks `FlowStatus` for the errno).
//!
//! A connection per exchange means no shared channel to lock between
//! threads and nothing to re-open after `fork`.
//!
//! # Frame encoding
//!
//! ```text
//! u16 LE  length of what follows (2..=MAX_FRAME-2)
//! u8      PROTOCOL_VERSION
//! u8      message tag
//! ...     fields, fixed order, integers big-endian
//! ```
//!
//! A socket address is `u8 family (4|6)`, the address bytes, `u16 port`, and
//! for IPv6 also `u32 flowinfo`, `u32 scope_id`. Decoding checks every length
//! and every tag and never panics; trailing bytes inside a frame are an error.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

pub mod dns;
pub use dns::{DnsInfo, QueryName, ResolveKind, ResolveReply, ResolveRequest, ResolveStatus};

/// Version byte carried by every frame; a mismatch is rejected.
pub const PROTOCOL_VERSION: u8 = 1;
/// Largest frame, length prefix included. Every message fits well below it.
pub const MAX_FRAME: usize = 512;
/// Number of filler bytes the shim writes after an accepted `Connect`.
///
/// Sized so that with the minimum `SO_SNDBUF` of a unix stream socket the
/// single queued skb keeps `POLLOUT` off (`wmem_alloc * 4 > sndbuf`) while
/// still fitting without blocking (see `preload`'s module doc).
pub const FILLER_LEN: usize = 2048;
/// The value of every filler byte.
pub const FILLER_BYTE: u8 = 0xF1;

/// Environment variable holding the engine's control socket path.
pub const ENV_CONTROL: &str = "WRAPGUARD_CONTROL";
/// Environment variable holding the absolute path of `libwrapguard.so`, so
/// the shim can put itself back into `LD_PRELOAD` when a program clears it.
pub const ENV_PRELOAD: &str = "WRAPGUARD_PRELOAD";
/// Environment variable holding the absolute path of the `wrapguard`
/// binary, set in auto mode: when a carried process execs a program the
/// shim cannot enter, the shim execs it through `wrapguard`'s
/// [`SECCOMP_EXEC_ARG`] instead, which puts it under seccomp mode.
pub const ENV_LAUNCHER: &str = "WRAPGUARD_LAUNCHER";
/// First argument that makes `wrapguard` the seccomp hand-off of an exec:
/// `wrapguard SECCOMP_EXEC_ARG PATH ARGV0 ARGS…` installs the filter,
/// has the engine supervise it ([`Request::SeccompAttach`]), and execs
/// `PATH` with `ARGV0 ARGS…`.
pub const SECCOMP_EXEC_ARG: &str = "--internal-seccomp-exec";

pub mod datagram;
pub mod program;

/// Transport protocol of a route query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// Any other value, kept so every byte round-trips.
    Unknown(u8),
}

impl Proto {
    fn to_byte(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Unknown(b) => b,
        }
    }
    fn from_byte(b: u8) -> Self {
        match b {
            6 => Proto::Tcp,
            17 => Proto::Udp,
            other => Proto::Unknown(other),
        }
    }
}

/// The engine's routing decision for a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteDecision {
    /// Not routed into the tunnel: the host network is used, untouched.
    Direct,
    /// Routed into the tunnel.
    Tunnel,
    /// Must not leave, and cannot be carried: fail with this errno
    /// (e.g. `ENETUNREACH` for a family the tunnel has no address in).
    Unreachable(i32),
}

/// What the shim asks to connect (first frame on a data socket).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    /// Destination, normalised (an IPv4-mapped IPv6 address becomes IPv4).
    pub dst: SocketAddr,
    /// Whether the application's socket is non-blocking (for logs only).
    pub nonblocking: bool,
    /// The application's fd number (for logs only).
    pub fd: i32,
    /// Whether the application's socket is AF_INET6 (addresses are shown
    /// v4-mapped on it).
    pub v6_socket: bool,
    /// Inode of the shim's end of this data socket, so a process that
    /// inherits the fd across `exec` can find the flow again (`Adopt`).
    pub inode: u64,
}

/// What the engine knows about a data socket, for [`Request::Adopt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowInfo {
    /// Engine flow id.
    pub flow: u64,
    /// Destination (normalised).
    pub peer: SocketAddr,
    /// Our tunnel address for the flow.
    pub local: SocketAddr,
    /// Whether the application's socket was AF_INET6.
    pub v6_socket: bool,
    /// Current state.
    pub state: FlowState,
}

/// The engine's answer to [`Request::Connect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectReply {
    /// Not routed: the shim closes this socket and lets the kernel connect.
    NotRouted,
    /// The engine is connecting through the tunnel; filler follows.
    Accepted {
        /// Engine-wide id of the flow, for [`Request::FlowStatus`].
        flow: u64,
        /// Our tunnel address and port for this flow (`getsockname`).
        local: SocketAddr,
    },
    /// Fail the `connect()` at once with this errno.
    Refused(i32),
}

/// State of an outgoing flow, as reported by [`Request::FlowStatus`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowState {
    /// The engine knows no such flow (expired, or never existed).
    Unknown,
    /// The tunnel connection is still being set up.
    Connecting,
    /// The tunnel connection is established.
    Established,
    /// The tunnel connection failed with this errno: before it was
    /// established (`ECONNREFUSED`, `EHOSTUNREACH`…), or after (`ETIMEDOUT`
    /// after the retransmissions or keepalive probes, `ECONNRESET`), which
    /// the shim reports instead of the EOF the closed data socket shows.
    Failed(i32),
}

/// Who is behind a loopback connection the engine made to a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcceptedPeer {
    /// The peer's tunnel address (`accept`/`getpeername`).
    pub peer: SocketAddr,
    /// Our tunnel address the peer connected to (`getsockname`).
    pub local: SocketAddr,
}

/// What one message on a UDP data socket holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatagramFraming {
    /// A [`datagram::Header`] (peer address, or an error) then the payload:
    /// the shim reads and writes the socket and translates (any peer).
    Headers,
    /// Exactly one payload, nothing else: the program reads and writes the
    /// socket itself (seccomp mode), so the flow must be connected
    /// ([`UdpOpenRequest::connect`] is required). Outgoing messages go to
    /// that peer; only datagrams from that peer are delivered, as on a
    /// connected UDP socket. An empty message is an empty datagram. ICMP
    /// errors cannot be shown in-band: they are counted and logged only.
    Plain,
}

impl DatagramFraming {
    fn to_byte(self) -> u8 {
        match self {
            DatagramFraming::Headers => 0,
            DatagramFraming::Plain => 1,
        }
    }
    fn from_byte(b: u8) -> Result<Self, DecodeError> {
        match b {
            0 => Ok(DatagramFraming::Headers),
            1 => Ok(DatagramFraming::Plain),
            _ => Err(DecodeError::BadField("datagram framing")),
        }
    }
}

/// What the shim (or the seccomp supervisor) asks for when a datagram
/// socket starts using the tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpOpenRequest {
    /// Whether the application's socket is AF_INET6 (it then sends and
    /// receives both families unless `v6_only`).
    pub v6_socket: bool,
    /// `IPV6_V6ONLY` of the application's socket.
    pub v6_only: bool,
    /// The local address to bind (normalised; a wildcard or one of our
    /// tunnel addresses; port 0 picks one).
    pub bind: SocketAddr,
    /// The default peer, if the socket is connected (normalised).
    pub connect: Option<SocketAddr>,
    /// The application's fd number (for logs only).
    pub fd: i32,
    /// What a message on the data socket holds; [`DatagramFraming::Plain`]
    /// requires `connect` (decoding refuses it without).
    pub framing: DatagramFraming,
}

/// The engine's answer to [`Request::UdpOpen`] / [`Request::UdpConnect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpReply {
    /// Open (or re-connected); for `UdpOpen` the data socket comes with it.
    Opened {
        /// Engine-wide id of the datagram flow.
        flow: u64,
        /// Our tunnel address and port (`getsockname`).
        local: SocketAddr,
        /// The tunnel MTU: larger datagrams fail with `EMSGSIZE`.
        mtu: u16,
    },
    /// Fail the call with this errno.
    Refused(i32),
}

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
        /// [`PROTOCOL_VERSION`] of the shim, repeated for logs.
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
}

/// A socket's keepalive options: `SO_KEEPALIVE`, `TCP_KEEPIDLE`,
/// `TCP_KEEPINTVL`, `TCP_KEEPCNT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpKeepalive {
    /// `SO_KEEPALIVE`.
    pub enabled: bool,
    /// Seconds of idleness before the first probe (`TCP_KEEPIDLE`).
    pub idle_secs: u32,
    /// Seconds between probes (`TCP_KEEPINTVL`).
    pub interval_secs: u32,
    /// Unanswered probes before the connection times out (`TCP_KEEPCNT`).
    pub count: u32,
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
}

/// Why a frame could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The caller's buffer is smaller than the frame.
    BufferTooSmall {
        /// Bytes the frame needs.
        needed: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BufferTooSmall { needed } => {
                write!(
                    f,
                    "buffer too small for control frame ({needed} bytes needed)"
                )
            }
        }
    }
}

impl std::error::Error for EncodeError {}

/// Why bytes could not be decoded into a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// More bytes are needed: at least this many in total.
    Incomplete {
        /// Total bytes needed so far (prefix included).
        needed: usize,
    },
    /// The length prefix is below the minimum or above [`MAX_FRAME`].
    BadLength(usize),
    /// The version byte is not [`PROTOCOL_VERSION`].
    BadVersion(u8),
    /// The tag is not a known message of this direction.
    BadTag(u8),
    /// A field is out of range (address family, option tag, bool…).
    BadField(&'static str),
    /// A field runs past the end of the frame.
    Truncated,
    /// The frame has bytes after its last field.
    TrailingBytes,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Incomplete { needed } => {
                write!(f, "incomplete frame ({needed} bytes needed)")
            }
            DecodeError::BadLength(n) => write!(f, "bad frame length {n}"),
            DecodeError::BadVersion(v) => {
                write!(
                    f,
                    "control protocol version {v}, expected {PROTOCOL_VERSION}"
                )
            }
            DecodeError::BadTag(t) => write!(f, "unknown message tag {t}"),
            DecodeError::BadField(name) => write!(f, "invalid field {name}"),
            DecodeError::Truncated => f.write_str("field runs past the end of the frame"),
            DecodeError::TrailingBytes => f.write_str("trailing bytes in frame"),
        }
    }
}

impl std::error::Error for DecodeError {}

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

    pub const R_ROUTE: u8 = 0x81;
    pub const R_CONNECT: u8 = 0x82;
    pub const R_FLOW_STATUS: u8 = 0x83;
    pub const R_BIND: u8 = 0x84;
    pub const R_DONE: u8 = 0x85;
    pub const R_ACCEPT: u8 = 0x86;
    pub const R_ADOPT: u8 = 0x87;
    pub const R_DNS_INFO: u8 = 0x88;
    pub const R_UDP: u8 = 0x89;
}

/// Length of the `u16` length prefix.
pub const PREFIX_LEN: usize = 2;

/// Bounded writer over the caller's buffer; never panics.
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
    overflow: bool,
}

impl<'a> Writer<'a> {
    fn new(buf: &'a mut [u8]) -> Self {
        Writer {
            buf,
            pos: 0,
            overflow: false,
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        let end = self.pos + b.len();
        match self.buf.get_mut(self.pos..end) {
            Some(dst) if !self.overflow => dst.copy_from_slice(b),
            _ => self.overflow = true,
        }
        self.pos = end;
    }
    fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }
    fn u16(&mut self, v: u16) {
        self.bytes(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_be_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.bytes(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_be_bytes());
    }
    fn state(&mut self, s: FlowState) {
        match s {
            FlowState::Unknown => self.u8(0),
            FlowState::Connecting => self.u8(1),
            FlowState::Established => self.u8(2),
            FlowState::Failed(e) => {
                self.u8(3);
                self.i32(e);
            }
        }
    }
    fn opt_addr(&mut self, a: &Option<SocketAddr>) {
        match a {
            None => self.u8(0),
            Some(a) => {
                self.u8(1);
                self.addr(a);
            }
        }
    }
    fn addr(&mut self, a: &SocketAddr) {
        match a {
            SocketAddr::V4(v4) => {
                self.u8(4);
                self.bytes(&v4.ip().octets());
                self.u16(v4.port());
            }
            SocketAddr::V6(v6) => {
                self.u8(6);
                self.bytes(&v6.ip().octets());
                self.u16(v6.port());
                self.u32(v6.flowinfo());
                self.u32(v6.scope_id());
            }
        }
    }
}

/// Cursor over one frame body; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::BadField("bool")),
        }
    }
    fn state(&mut self) -> Result<FlowState, DecodeError> {
        Ok(match self.u8()? {
            0 => FlowState::Unknown,
            1 => FlowState::Connecting,
            2 => FlowState::Established,
            3 => FlowState::Failed(self.i32()?),
            _ => return Err(DecodeError::BadField("flow state")),
        })
    }
    fn opt_addr(&mut self) -> Result<Option<SocketAddr>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.addr()?)),
            _ => Err(DecodeError::BadField("address option")),
        }
    }
    fn addr(&mut self) -> Result<SocketAddr, DecodeError> {
        match self.u8()? {
            4 => {
                let ip = Ipv4Addr::from(self.array::<4>()?);
                let port = self.u16()?;
                Ok(SocketAddr::V4(SocketAddrV4::new(ip, port)))
            }
            6 => {
                let ip = Ipv6Addr::from(self.array::<16>()?);
                let port = self.u16()?;
                let flow = self.u32()?;
                let scope = self.u32()?;
                Ok(SocketAddr::V6(SocketAddrV6::new(ip, port, flow, scope)))
            }
            _ => Err(DecodeError::BadField("address family")),
        }
    }
    fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}

fn frame(
    buf: &mut [u8],
    tag: u8,
    body: impl FnOnce(&mut Writer<'_>),
) -> Result<usize, EncodeError> {
    let mut w = Writer::new(buf);
    w.u16(0);
    w.u8(PROTOCOL_VERSION);
    w.u8(tag);
    body(&mut w);
    let total = w.pos;
    if w.overflow || total > MAX_FRAME {
        return Err(EncodeError::BufferTooSmall { needed: total });
    }
    let len = (total - PREFIX_LEN) as u16;
    w.buf[..PREFIX_LEN].copy_from_slice(&len.to_le_bytes());
    Ok(total)
}

/// Splits one frame off the front of `buf`: `(tag, body, total_len)`.
fn unframe(buf: &[u8]) -> Result<(u8, Reader<'_>, usize), DecodeError> {
    let Some(prefix) = buf.get(..PREFIX_LEN) else {
        return Err(DecodeError::Incomplete { needed: PREFIX_LEN });
    };
    let len = usize::from(u16::from_le_bytes([prefix[0], prefix[1]]));
    if !(2..=MAX_FRAME - PREFIX_LEN).contains(&len) {
        return Err(DecodeError::BadLength(len));
    }
    let total = PREFIX_LEN + len;
    let Some(body) = buf.get(PREFIX_LEN..total) else {
        return Err(DecodeError::Incomplete { needed: total });
    };
    let mut r = Reader { buf: body };
    let version = r.u8()?;
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::BadVersion(version));
    }
    let tag = r.u8()?;
    Ok((tag, r, total))
}

/// Total frame length announced by a length prefix, if it is valid. Lets a
/// reader learn how many bytes to read after the first [`PREFIX_LEN`].
pub fn frame_len(prefix: [u8; PREFIX_LEN]) -> Result<usize, DecodeError> {
    let len = usize::from(u16::from_le_bytes(prefix));
    if !(2..=MAX_FRAME - PREFIX_LEN).contains(&len) {
        return Err(DecodeError::BadLength(len));
    }
    Ok(PREFIX_LEN + len)
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
            tag::RESOLVE => dns::decode_request(&mut r)?,
            tag::SECCOMP_ATTACH => Request::SeccompAttach {
                pid: r.u32()?,
                listener: r.i32()?,
            },
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

/// Turns an IPv4-mapped IPv6 socket address into plain IPv4; others unchanged.
pub fn normalize(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

#[cfg(test)]
mod tests;
