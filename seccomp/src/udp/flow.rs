//! Datagram flows of the engine on the caller's sockets: opening one
//! (`UdpOpen`, its data socket passed back alongside the reply), installing
//! it on the program's fd number, putting a kernel socket back, and finding
//! the carried socket behind a call.

use crate::call::Call;
use crate::caller::{self, FileId};
use crate::client;
use crate::fdops::{nonblocking, set_nonblocking, sockopt_int};
use crate::state::State;
use crate::table::{Datagram, Ours};
use control::{DatagramFraming, DatagramKind, Reply, Request, UdpOpenRequest, UdpReply};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

fn wildcard(v4: bool, port: u16) -> SocketAddr {
    let ip = if v4 {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    SocketAddr::new(ip, port)
}

/// Asks the engine for a datagram flow: (flow, our address, MTU, data socket).
fn open_flow(sv: &State, req: UdpOpenRequest) -> Result<(u64, SocketAddr, u16, OwnedFd), i32> {
    let mut s = sv.engine.open(false).map_err(|_| libc::ENETUNREACH)?;
    client::send(&mut s, &Request::UdpOpen(req)).map_err(|_| libc::ENETUNREACH)?;
    match fdpass::recv_reply_with_fd(&mut s) {
        Ok((Reply::Udp(UdpReply::Opened { flow, local, mtu }), Some(fd))) => {
            Ok((flow, local, mtu, fd))
        }
        Ok((Reply::Udp(UdpReply::Refused(e)), _)) => Err(e),
        _ => Err(libc::ENETUNREACH), // fail closed
    }
}

/// Opens a flow for the caller's socket `sock` (fd number `fd`) and
/// installs it there; returns the table entry and its inode.
pub fn carry(
    sv: &mut State,
    c: &Call,
    sock: &OwnedFd,
    connect: Option<(SocketAddr, SocketAddr)>,
    at: Option<Option<IpAddr>>,
    port: u16,
) -> Result<(u64, Datagram), i32> {
    let fd = c.n.args[0];
    let family = sockopt_int(sock, libc::SOL_SOCKET, libc::SO_DOMAIN).ok_or(libc::ENETUNREACH)?;
    let standin = caller::file_id(sock)
        .ok()
        .and_then(|id| match sv.table.get(id.ino) {
            Some(Ours::EchoStandIn { kind, .. }) => Some(kind),
            _ => None,
        });
    let kind = match standin {
        Some(k) => k,
        None => datagram_kind(sock).ok_or(libc::ENETUNREACH)?,
    };
    let v6_socket = family == libc::AF_INET6;
    let v6_only = v6_socket
        && (kind != DatagramKind::Udp
            || sockopt_int(sock, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) == Some(1));
    let bind = match (connect, at) {
        (_, Some(Some(ip))) => SocketAddr::new(ip, port),
        (Some((_, eff)), _) => wildcard(eff.is_ipv4(), port),
        // An AF_INET6 UDP socket not connected may talk to both families.
        (None, _) => wildcard(!v6_socket, port),
    };
    let req = UdpOpenRequest {
        v6_socket,
        v6_only,
        bind,
        connect: connect.map(|c| c.1),
        fd: fd as i32,
        framing: if connect.is_some() {
            DatagramFraming::Plain
        } else {
            DatagramFraming::Headers
        },
        kind,
    };
    let (flow, local, mtu, data) = open_flow(sv, req)?;
    if nonblocking(sock) {
        set_nonblocking(&data, true);
    }
    copy_timeouts(sock, &data);
    let FileId { ino, .. } = caller::file_id(&data).map_err(|_| libc::ENETUNREACH)?;
    let target = i32::try_from(fd).map_err(|_| libc::EBADF)?;
    let cloexec = caller::cloexec(c.n.pid, fd);
    c.listener
        .add_fd(c.n.id, data.as_raw_fd(), Some(target), cloexec, false)
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EBADF))?;
    let d = Datagram {
        flow,
        peer: connect.map(|c| c.0),
        local,
        family,
        mtu,
        kind,
        recv_opts: super::ancillary::options(sock, family),
    };
    sv.table.insert(ino, Ours::Udp(d));
    Ok((ino, d))
}

/// Copies `SO_RCVTIMEO`/`SO_SNDTIMEO` from the program's socket to the
/// data socket that replaces it (ping waits for replies this way).
fn copy_timeouts(from: &OwnedFd, to: &OwnedFd) {
    for opt in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        let mut tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        };
        let mut len = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
        let p: *mut libc::c_void = (&mut tv as *mut libc::timeval).cast();
        // SAFETY: `tv` is a timeval and `len` its size.
        let r = unsafe { libc::getsockopt(from.as_raw_fd(), libc::SOL_SOCKET, opt, p, &mut len) };
        if r == 0 && (tv.tv_sec != 0 || tv.tv_usec != 0) {
            // SAFETY: as above, onto the data socket.
            unsafe { libc::setsockopt(to.as_raw_fd(), libc::SOL_SOCKET, opt, p, len) };
        }
    }
}

/// What kind of datagram socket `sock` is: UDP, a ping socket or a raw
/// ICMP socket (`None`: none we carry).
pub fn datagram_kind(sock: &OwnedFd) -> Option<DatagramKind> {
    let ty = sockopt_int(sock, libc::SOL_SOCKET, libc::SO_TYPE)?;
    let proto = sockopt_int(sock, libc::SOL_SOCKET, libc::SO_PROTOCOL)?;
    let icmp = proto == libc::IPPROTO_ICMP || proto == libc::IPPROTO_ICMPV6;
    match ty {
        libc::SOCK_DGRAM if icmp => Some(DatagramKind::Ping),
        libc::SOCK_DGRAM => Some(DatagramKind::Udp),
        libc::SOCK_RAW if icmp => Some(DatagramKind::RawIcmp),
        _ => None,
    }
}

/// Puts a fresh, unbound kernel UDP socket of `family` at the caller's `fd`.
pub fn kernel_socket(c: &Call, fd: u64, family: i32) -> Result<(), i32> {
    let s = socket2::Socket::new(socket2::Domain::from(family), socket2::Type::DGRAM, None)
        .map_err(|e| e.raw_os_error().unwrap_or(libc::ENOBUFS))?;
    let owned = OwnedFd::from(s);
    let target = i32::try_from(fd).map_err(|_| libc::EBADF)?;
    let cloexec = caller::cloexec(c.n.pid, fd);
    c.listener
        .add_fd(c.n.id, owned.as_raw_fd(), Some(target), cloexec, false)
        .map(|_| ())
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EBADF))
}

/// Our socket behind the caller's argument 0, if it is a carried datagram
/// socket: (our copy, inode, entry).
pub fn ours(sv: &State, c: &Call) -> Option<(OwnedFd, u64, Datagram)> {
    let sock = c.fd(0).ok()?;
    let id = caller::file_id(&sock).ok()?;
    match sv.table.get(id.ino) {
        Some(Ours::Udp(d)) if id.socket => Some((sock, id.ino, d)),
        _ => None,
    }
}
