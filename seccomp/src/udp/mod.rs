//! Datagrams in seccomp mode. The program reads and writes its sockets
//! itself, so a carried UDP socket must work without anyone in between for
//! the common calls:
//!
//! * **Connected** — `connect` of a UDP socket to a destination the engine
//!   routes into the tunnel (after the `DNS =` port-53 redirect: a host
//!   nameserver's port 53 means the tunnel's DNS server, the shim's rule,
//!   `control::DnsInfo::redirect`) opens a *plain* datagram flow
//!   (`control::DatagramFraming::Plain`: one message is one payload,
//!   connected to that one peer, only its datagrams delivered) whose data
//!   socket is installed on the program's fd number
//!   (`SECCOMP_IOCTL_NOTIF_ADDFD` + `SETFD`). `send`/`recv`/`read`/`write`
//!   and poll/epoll then work on it directly. This is what Go's resolver
//!   and most UDP clients do.
//! * **Unconnected** — the first `sendto`/`sendmsg`/`sendmmsg` to a tunnel
//!   destination installs a *headered* flow (as the shim's) on the fd; the
//!   supervisor then carries every send with a destination (it reads the
//!   payload from the caller's memory and writes header + payload), and
//!   emulates `recvfrom` with an address buffer, `recvmsg` and `recvmmsg`
//!   (payload into the caller's buffers, the peer's tunnel address — or the
//!   host nameserver the program asked, for redirected DNS — as the source).
//!   Poll/epoll readiness is the data socket's own. A blocking receive waits
//!   on a helper thread so other calls go on. This is what musl's resolver
//!   (static Rust and C programs' `getaddrinfo`) does.
//! * `connect` again: to another tunnel destination moves a plain flow
//!   (`UdpConnect`); a headered one is replaced by a plain one; to a host
//!   destination or `AF_UNSPEC` a fresh kernel UDP socket is put back first.
//! * `getsockname`/`getpeername`/`getsockopt(SO_TYPE…)` are answered from
//!   the table (the peer as the program named it).
//!
//! * `bind` to a wildcard with a fixed port or to our tunnel address makes
//!   it a carried unconnected socket at once: a UDP server, reachable by
//!   peers at our tunnel addresses (not by local programs, as in the shim).
//!
//! Limits (README): on an unconnected carried socket,
//! `read`/`recv` without an address buffer and `write`/`send` without a
//! destination are not trapped and do not work (the data socket carries
//! headers); ICMP errors are not reported on plain flows; the `recvmmsg`
//! timeout bounds only the first datagram's wait (`SO_RCVTIMEO` is
//! honoured); ancillary data is not
//! sent, and received only as `ancillary` says (options set before the
//! socket was carried).
//!
//! Here: `connect`, `bind` and the names of datagram sockets. Below it:
//! `send` and `recv` (the emulated calls of unconnected carried sockets),
//! `flow` (opening and installing the engine's flows), `route` (the
//! `DNS =` redirect and the routing cache), `ancillary` (receive control
//! messages) and `msg` (the caller's `msghdr`/`iovec` memory).

mod ancillary;
mod flow;
mod msg;
mod recv;
mod route;
mod send;

use crate::call::{put_addr, Call, Outcome};
use crate::fdops::sock_name;
use crate::sockaddr;
use crate::state::State;
use crate::table::Ours;
use control::connect::Carried;
use control::DatagramKind;
use control::{Reply, Request, RouteDecision, UdpReply};
use flow::{carry, kernel_socket};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use tracing::debug;

pub use crate::table::Datagram;
pub use recv::{recvfrom, recvmmsg, recvmsg};
pub use route::{effective, route};
pub use send::{refuse_raw, sendmmsg, sendmsg, sendto};

/// [`control::connect::Plan::CarryDatagram`]: the datagram socket `sock`
/// (not carried yet: UDP, an echo stand-in, a raw ICMP socket) becomes a
/// connected flow to `dst` (`raw` as the program named it). A port the
/// program bound stays its port (a raw socket has none).
pub fn carry_connected(
    sv: &mut State,
    c: &Call,
    sock: &OwnedFd,
    raw: SocketAddr,
    dst: SocketAddr,
    kind: Carried,
) -> Outcome {
    let fd = c.n.args[0];
    let port = match kind {
        Carried::RawIcmp => 0,
        Carried::Udp | Carried::StandIn => sock_name(sock, false).map_or(0, |a| a.port()),
    };
    match carry(sv, c, sock, Some((raw, dst)), None, port) {
        Ok((_, d)) if kind == Carried::RawIcmp => {
            debug!(pid = c.n.pid, fd, dst = %raw, flow = d.flow, "seccomp: connected raw ICMP socket through the tunnel");
            Outcome::value(0)
        }
        Ok((_, d)) => {
            debug!(pid = c.n.pid, fd, dst = %raw, via = %dst, flow = d.flow, local = %d.local, "seccomp: connected udp socket through the tunnel");
            Outcome::value(0)
        }
        Err(e) => {
            debug!(pid = c.n.pid, fd, dst = %dst, errno = e, "seccomp: udp connect refused");
            Outcome::errno(e)
        }
    }
}

/// Whether `sock` is a raw ICMP socket of its family.
pub fn raw_icmp(sock: &OwnedFd) -> bool {
    flow::datagram_kind(sock) == Some(DatagramKind::RawIcmp)
}

/// `connect` on a socket we carry (`d`, inode `ino`).
pub fn reconnect(sv: &mut State, c: &Call, ino: u64, d: Datagram) -> Outcome {
    let [fd, addr, len, ..] = c.n.args;
    let Ok(len) = usize::try_from(len as u32) else {
        return Outcome::errno(libc::EINVAL);
    };
    if len > sockaddr::MAX_LEN {
        return Outcome::errno(libc::EINVAL);
    }
    let Ok(bytes) = c.read(addr, len) else {
        return Outcome::errno(libc::EFAULT);
    };
    let raw = match sockaddr::family(&bytes).map(i32::from) {
        Some(libc::AF_UNSPEC) => None,
        Some(_) => match sockaddr::decode(&bytes) {
            Some(a) => Some(a),
            None => return Outcome::errno(libc::EINVAL),
        },
        None => return Outcome::errno(libc::EINVAL),
    };
    if let Some(raw) = raw {
        let eff = match effective(sv, control::normalize(raw)) {
            Ok(e) => e,
            Err(e) => return Outcome::errno(e),
        };
        if !sockaddr::is_local(&eff) {
            match route(sv, eff) {
                RouteDecision::Unreachable(e) => return Outcome::errno(e),
                RouteDecision::Tunnel if d.peer.is_some() => {
                    let r = sv.engine.query(&Request::UdpConnect {
                        flow: d.flow,
                        peer: Some(eff),
                    });
                    return match r {
                        Ok(Reply::Udp(UdpReply::Opened { local, .. })) => {
                            let moved = Datagram {
                                peer: Some(raw),
                                local,
                                ..d
                            };
                            sv.table.insert(ino, Ours::Udp(moved));
                            debug!(pid = c.n.pid, fd, dst = %raw, via = %eff, "seccomp: udp socket moved to another tunnel peer");
                            Outcome::value(0)
                        }
                        Ok(Reply::Udp(UdpReply::Refused(e))) => Outcome::errno(e),
                        _ => Outcome::errno(libc::ENETUNREACH),
                    };
                }
                RouteDecision::Tunnel => {
                    // Unconnected (headered) until now: a plain flow instead.
                    let Ok(sock) = c.fd(0) else {
                        return Outcome::errno(libc::EBADF);
                    };
                    sv.table.remove(ino);
                    return match carry(sv, c, &sock, Some((raw, eff)), None, 0) {
                        Ok(_) => Outcome::value(0),
                        Err(e) => Outcome::errno(e),
                    };
                }
                RouteDecision::Direct => {}
            }
        }
    }
    // To the host network, or dissolved: a kernel socket again.
    if let Err(e) = kernel_socket(c, fd, d.family) {
        return Outcome::errno(e);
    }
    sv.table.remove(ino);
    debug!(pid = c.n.pid, fd, dst = ?raw, "seccomp: udp socket leaves the tunnel");
    match raw {
        Some(_) => Outcome::cont(),
        None => Outcome::value(0),
    }
}

/// `getpeername` (`peer`) / `getsockname` of a socket we carry.
pub fn name(c: &Call, d: Datagram, peer: bool) -> Outcome {
    let [_, addr, len, ..] = c.n.args;
    let shown = if peer {
        match d.peer {
            Some(p) => p,
            None => return Outcome::errno(libc::ENOTCONN),
        }
    } else {
        d.local
    };
    put_addr(c, addr, len, sockaddr::in_family(shown, d.family))
}

/// The `int` a `getsockopt(SOL_SOCKET, name)` on a socket we carry reports
/// (it is a unix socket underneath), if it is one we answer.
pub fn sockopt(d: Datagram, name: i32) -> Option<i32> {
    match name {
        libc::SO_DOMAIN => Some(d.family),
        libc::SO_TYPE if d.kind == DatagramKind::RawIcmp => Some(libc::SOCK_RAW),
        libc::SO_TYPE => Some(libc::SOCK_DGRAM),
        libc::SO_PROTOCOL => Some(match (d.kind, d.family) {
            (DatagramKind::Udp, _) => libc::IPPROTO_UDP,
            (_, libc::AF_INET6) => libc::IPPROTO_ICMPV6,
            _ => libc::IPPROTO_ICMP,
        }),
        libc::SO_ERROR => Some(0),
        _ => None,
    }
}

/// `bind` of a datagram socket: to a wildcard with a fixed port or to one
/// of our tunnel addresses, the socket becomes an unconnected carried one
/// at once (a server: reachable by peers at our tunnel addresses, not by
/// local programs, as in the shim); anything else runs as asked.
pub fn bind(sv: &mut State, c: &Call, raw: SocketAddr, norm: SocketAddr) -> Outcome {
    if norm.port() == 0 && norm.ip().is_unspecified() {
        return Outcome::cont(); // a client's ephemeral port: carried at its first send
    }
    if !norm.ip().is_unspecified() && sockaddr::is_local(&norm) {
        return Outcome::cont(); // loopback, multicast, broadcast
    }
    match sv.engine.query(&Request::Bind { addr: norm }) {
        Ok(Reply::Bind { redirect: true }) => {}
        Ok(_) => return Outcome::cont(),
        Err(_) => return Outcome::errno(libc::EADDRNOTAVAIL), // fail closed
    }
    let Ok(sock) = c.fd(0) else {
        return Outcome::errno(libc::EBADF);
    };
    let at = (!norm.ip().is_unspecified()).then_some(norm.ip());
    match carry(sv, c, &sock, None, Some(at), norm.port()) {
        Ok((_, d)) => {
            debug!(pid = c.n.pid, fd = c.n.args[0], bind = %raw, flow = d.flow, local = %d.local, "seccomp: udp server socket through the tunnel");
            Outcome::value(0)
        }
        Err(e) => Outcome::errno(e),
    }
}
