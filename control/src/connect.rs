//! What a `connect()` means: the one decision the shim and the seccomp
//! supervisor share about a program's `connect(fd, addr)`.
//!
//! A front-end describes the descriptor as it knows it ([`Socket`]), gives
//! the address, and answers the few questions that need its own I/O
//! ([`Lookup`]: the socket's type, the `DNS =` redirect, the engine's
//! routing, whether a raw socket is ICMP). [`classify`] asks them only
//! when the decision needs them, in this order, and returns a [`Plan`]
//! that the front-end carries out, one function per variant:
//!
//! 1. A carried datagram socket gets a new default peer ([`Plan::Repeer`]).
//! 2. An address that is not IPv4/IPv6 is the kernel's.
//! 3. A tunnel stream: `connect()` again before its outcome was returned
//!    ([`Plan::Again`]), `EISCONN` after it, a new attempt after a failure.
//!    An echo stand-in carries to a tunnel destination, refuses the rest.
//! 4. By socket type, after the `DNS =` rewrite of TCP port 53 and the
//!    front-end's own rewrites ([`Lookup::effective`]): a local
//!    destination or one of another family is the kernel's; a datagram
//!    socket asks the route and is carried or left; a raw socket is
//!    carried (ICMP) or refused when routed; a stream socket connects
//!    through the engine ([`Plan::Tunnel`], whose `NotRouted` answer sends
//!    it back to the kernel).
//!
//! [`again`] and [`returned`] are the second half of the same decision: what
//! a `connect()` on a tunnel stream answers once the engine's progress
//! ([`OutState`]) is known.

use crate::RouteDecision;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};

/// Linux's `AF_INET`.
const AF_INET: i32 = 2;
/// Linux's `AF_INET6`.
const AF_INET6: i32 = 10;
/// Linux's `SOCK_STREAM`.
const SOCK_STREAM: i32 = 1;
/// Linux's `SOCK_DGRAM`.
const SOCK_DGRAM: i32 = 2;
/// Linux's `SOCK_RAW`.
const SOCK_RAW: i32 = 3;
/// Linux's `EALREADY`.
const EALREADY: i32 = 114;
/// Linux's `EISCONN`.
const EISCONN: i32 = 106;
/// Linux's `ENETUNREACH`.
const ENETUNREACH: i32 = 101;
/// Linux's `ECONNABORTED`.
const ECONNABORTED: i32 = 103;

/// What the front-end knows about the descriptor being connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Socket {
    /// Nothing that decides: a kernel socket (new, or not tracked),
    /// classified by its type and the destination.
    Plain,
    /// A socket the front-end leaves to the kernel whatever the
    /// destination (seccomp mode: accepted connections, listening sockets).
    Left,
    /// A stream socket whose wildcard or tunnel-address `bind` was
    /// redirected to loopback, not listening: outside the tunnel it must be
    /// bound again as asked before the kernel connects it.
    BoundHere {
        /// The address the program asked to bind.
        requested: SocketAddr,
        /// The socket's family (`AF_INET`/`AF_INET6`).
        family: i32,
    },
    /// A datagram socket carried by a datagram flow.
    CarriedDatagram,
    /// A tunnel stream whose `connect()` has not returned its outcome yet
    /// (the kernel's `SS_CONNECTING`).
    Connecting,
    /// A tunnel stream whose `connect()` returned, and did not fail.
    Connected,
    /// A tunnel stream whose `connect()` returned a failure: a new
    /// `connect()` starts anew (through the kernel or the tunnel).
    Failed,
    /// A kernel UDP socket standing in for an ICMP socket the host
    /// refused with `refused` (see [`crate::echo`]).
    EchoStandIn {
        /// The errno the kernel gave at `socket()`.
        refused: i32,
    },
}

/// A socket's type (`SO_TYPE`), as far as `connect()` cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockType {
    /// `SOCK_STREAM`.
    Stream,
    /// `SOCK_DGRAM`.
    Dgram,
    /// `SOCK_RAW`.
    Raw,
    /// Anything else (`SOCK_SEQPACKET`…): the kernel's.
    Other,
}

impl SockType {
    /// The type of a `SO_TYPE` value.
    pub fn from_raw(ty: i32) -> SockType {
        match ty {
            SOCK_STREAM => SockType::Stream,
            SOCK_DGRAM => SockType::Dgram,
            SOCK_RAW => SockType::Raw,
            _ => SockType::Other,
        }
    }
}

/// A socket's type and family (`SO_TYPE`, `SO_DOMAIN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketInfo {
    /// The type.
    pub ty: SockType,
    /// The family, as `SO_DOMAIN` reports it.
    pub domain: i32,
}

/// Which carrying a routing question is for: the shim answers a UDP
/// `connect()` from the engine at once and the others from its short
/// routing cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteFor {
    /// A UDP socket's `connect()`.
    Udp,
    /// An echo stand-in's or a raw socket's `connect()`.
    Echo,
}

/// The questions [`classify`] may ask, each answered with the
/// front-end's own I/O; asked only when the decision needs the answer.
pub trait Lookup {
    /// The socket's type and family; `None` when they cannot be read
    /// (the kernel's connect then).
    fn socket(&mut self) -> Option<SocketInfo>;
    /// `DNS =`: where a TCP connect to `dst` (as the program named it)
    /// goes instead, for port 53 of a host nameserver; `None` elsewhere.
    fn dns_redirect(&mut self, dst: SocketAddr) -> Option<SocketAddr>;
    /// Where traffic to `dst` (normalised) of a socket of type `ty` really
    /// goes, after the front-end's own rewrites; `Err` is an errno to fail
    /// with.
    fn effective(&mut self, dst: SocketAddr, ty: SockType) -> Result<SocketAddr, i32>;
    /// The engine's routing decision for `dst` (normalised).
    fn route(&mut self, dst: SocketAddr, why: RouteFor) -> RouteDecision;
    /// Whether the (raw) socket is a raw ICMP socket of its family.
    fn raw_icmp(&mut self) -> bool;
}

/// What a `connect()` is to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// The kernel's `connect()`, as the program called it.
    Kernel,
    /// The kernel's `connect()`, on a kernel TCP socket put back in place
    /// of a tunnel stream whose connect failed.
    KernelRestored,
    /// Fail with this errno.
    Refuse(i32),
    /// A new default peer (or, with `AF_UNSPEC`, none) for a carried
    /// datagram socket; the front-end reads the address itself.
    Repeer,
    /// `connect()` again on a tunnel stream whose first `connect()` has not
    /// returned its outcome: see [`again`].
    Again,
    /// Carry the datagram socket (UDP, an echo stand-in, a raw ICMP
    /// socket) as a datagram flow connected to `dst`.
    CarryDatagram {
        /// The destination as the program named it.
        raw: SocketAddr,
        /// Where it really goes (normalised, rewritten).
        dst: SocketAddr,
        /// Which socket it is.
        kind: Carried,
    },
    /// A raw socket of another protocol than ICMP to a tunnel destination:
    /// the tunnel cannot carry it and the host must not: `ENETUNREACH`,
    /// with one warning naming the protocol.
    RefuseUncarried {
        /// The destination (normalised).
        dst: SocketAddr,
    },
    /// Connect the stream through the engine (`Request::Connect` on a new
    /// data socket, swapped onto the program's fd when accepted).
    Tunnel(Tunnel),
}

/// The socket a [`Plan::CarryDatagram`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carried {
    /// A UDP socket.
    Udp,
    /// An echo stand-in ([`Socket::EchoStandIn`]).
    StandIn,
    /// A raw ICMP socket.
    RawIcmp,
}

/// A stream connect through the engine: [`Plan::Tunnel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tunnel {
    /// The destination as the program named it (after the `DNS =`
    /// rewrite: what `getpeername` shows).
    pub raw: SocketAddr,
    /// Where it really goes (normalised): the engine's `dst`.
    pub dst: SocketAddr,
    /// The socket's family (`AF_INET`/`AF_INET6`).
    pub family: i32,
    /// A new attempt on a tunnel stream whose connect failed: when the
    /// engine does not route it, the kernel socket is put back first.
    pub retry: bool,
    /// A loopback-bound socket ([`Socket::BoundHere`]: the address asked
    /// and the family) to bind again as asked if the engine does not
    /// route the destination.
    pub rebind: Option<(SocketAddr, i32)>,
}

/// Decides what `connect(fd, dst)` does for a descriptor the front-end
/// knows as `socket`; `dst` is `None` when the address is not an
/// IPv4/IPv6 one the front-end could read. See the module documentation
/// for the order of the questions.
pub fn classify(socket: Socket, dst: Option<SocketAddr>, ask: &mut impl Lookup) -> Plan {
    if socket == Socket::CarriedDatagram {
        return Plan::Repeer;
    }
    let Some(dst_raw) = dst else {
        return Plan::Kernel;
    };
    let mut retry = false;
    let mut rebind = None;
    match socket {
        Socket::Plain => {}
        Socket::Left | Socket::CarriedDatagram => return Plan::Kernel,
        Socket::Connecting => return Plan::Again,
        Socket::Connected => return Plan::Refuse(EISCONN),
        Socket::Failed => retry = true,
        Socket::BoundHere { requested, family } => rebind = Some((requested, family)),
        Socket::EchoStandIn { refused } => return echo_stand_in(refused, dst_raw, ask),
    }
    let Some(info) = ask.socket() else {
        return Plan::Kernel;
    };
    // `DNS =`: TCP to port 53 of a host nameserver goes to the tunnel's.
    let redirected = match info.ty {
        SockType::Stream => ask.dns_redirect(dst_raw),
        _ => None,
    };
    let dst_raw = match redirected {
        Some(to) => match (info.domain, to) {
            (AF_INET6, _) => in_family(to, info.domain),
            (AF_INET, SocketAddr::V4(_)) => to,
            _ => return Plan::Refuse(ENETUNREACH), // never to the host's resolver
        },
        None => dst_raw,
    };
    let dst = match ask.effective(crate::normalize(dst_raw), info.ty) {
        Ok(d) => d,
        Err(e) => return Plan::Refuse(e),
    };
    // Leaving the tunnel path: a failed tunnel stream gets its kernel
    // socket back first.
    let kernel = if retry {
        Plan::KernelRestored
    } else {
        Plan::Kernel
    };
    let family_ok = matches!(
        (info.domain, dst_raw),
        (AF_INET, SocketAddr::V4(_)) | (AF_INET6, SocketAddr::V6(_))
    );
    if !family_ok || is_local(&dst) {
        return kernel;
    }
    match info.ty {
        SockType::Dgram => match ask.route(dst, RouteFor::Udp) {
            RouteDecision::Direct => kernel,
            RouteDecision::Tunnel => Plan::CarryDatagram {
                raw: dst_raw,
                dst,
                kind: Carried::Udp,
            },
            RouteDecision::Unreachable(e) => Plan::Refuse(e),
        },
        SockType::Raw => raw(dst_raw, ask),
        SockType::Other => Plan::Kernel,
        SockType::Stream => Plan::Tunnel(Tunnel {
            raw: dst_raw,
            dst,
            family: info.domain,
            retry,
            rebind,
        }),
    }
}

/// An echo stand-in's `connect()`: to a tunnel destination it becomes a
/// carried echo socket; anywhere else it fails as the host's `socket()`
/// did (or with the engine's errno).
fn echo_stand_in(refused: i32, dst_raw: SocketAddr, ask: &mut impl Lookup) -> Plan {
    let dst = crate::normalize(dst_raw);
    if is_local(&dst) {
        return Plan::Refuse(refused);
    }
    match ask.route(dst, RouteFor::Echo) {
        RouteDecision::Direct => Plan::Refuse(refused),
        RouteDecision::Unreachable(e) => Plan::Refuse(e),
        RouteDecision::Tunnel => Plan::CarryDatagram {
            raw: dst_raw,
            dst,
            kind: Carried::StandIn,
        },
    }
}

/// A raw socket's `connect()` (`traceroute -I` connects its ICMP one): to
/// a tunnel destination a raw ICMP socket is carried as an echo socket and
/// any other protocol refused; nothing routed reaches the kernel, whose
/// next `send()` would leave by the host's routes.
fn raw(dst_raw: SocketAddr, ask: &mut impl Lookup) -> Plan {
    let dst = crate::normalize(dst_raw);
    if is_local(&dst) {
        return Plan::Kernel;
    }
    match ask.route(dst, RouteFor::Echo) {
        RouteDecision::Direct => Plan::Kernel,
        RouteDecision::Unreachable(e) => Plan::Refuse(e),
        RouteDecision::Tunnel if ask.raw_icmp() => Plan::CarryDatagram {
            raw: dst_raw,
            dst,
            kind: Carried::RawIcmp,
        },
        RouteDecision::Tunnel => Plan::RefuseUncarried { dst },
    }
}

/// Progress of an outgoing tunnel connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutState {
    /// The engine has not yet reported success or failure.
    Connecting,
    /// Established through the tunnel.
    Established,
    /// Failed with this errno; `reported` once `SO_ERROR` or `connect`
    /// returned it.
    Failed {
        /// The errno.
        errno: i32,
        /// Whether the program has been told already.
        reported: bool,
    },
}

/// What [`Plan::Again`] answers, the engine's progress `state` known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Again {
    /// Still handshaking, non-blocking: `EALREADY`.
    Already,
    /// Still handshaking, blocking (a connect restarted after a signal):
    /// wait for the outcome again.
    Wait,
    /// Settled: return the outcome ([`returned`]).
    Settled(OutState),
}

/// `connect()` again on a tunnel stream whose first `connect()` has not
/// returned its outcome (non-blocking, or interrupted), as the kernel
/// answers it: still handshaking, `EALREADY` (or wait, if blocking);
/// settled, the outcome, once. This is how Perl's `IO::Socket`, Ruby's
/// `Net::HTTP` and hiredis learn that a non-blocking connect finished.
pub fn again(state: OutState, nonblocking: bool) -> Again {
    match state {
        OutState::Connecting if nonblocking => Again::Already,
        OutState::Connecting => Again::Wait,
        settled => Again::Settled(settled),
    }
}

/// What `connect()` returns for a settled outcome: `Ok` for an established
/// socket, the errno for a failed one (`ECONNABORTED` when `SO_ERROR` took
/// it first, as the kernel's `sock_error() ?: -ECONNABORTED`), `EALREADY`
/// for one still connecting. Either way the socket leaves the kernel's
/// `SS_CONNECTING`: a later `connect()` is `EISCONN` or, after a failure,
/// a new attempt.
pub fn returned(state: OutState) -> Result<(), i32> {
    match state {
        OutState::Established => Ok(()),
        OutState::Failed {
            reported: false,
            errno,
        } => Err(errno),
        OutState::Failed { reported: true, .. } => Err(ECONNABORTED),
        OutState::Connecting => Err(EALREADY),
    }
}

/// Destinations that always stay on the host: loopback, unspecified,
/// multicast, broadcast (v4-mapped forms included).
pub fn is_local(a: &SocketAddr) -> bool {
    match crate::normalize(*a).ip() {
        IpAddr::V4(ip) => {
            ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast()
        }
        IpAddr::V6(ip) => ip.is_loopback() || ip.is_unspecified() || ip.is_multicast(),
    }
}

/// `a` in the form a socket of `family` uses: an IPv4 address becomes
/// v4-mapped for an `AF_INET6` socket.
pub fn in_family(a: SocketAddr, family: i32) -> SocketAddr {
    match (a, family) {
        (SocketAddr::V4(v4), AF_INET6) => {
            SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
        }
        _ => a,
    }
}

#[cfg(test)]
mod tests;
