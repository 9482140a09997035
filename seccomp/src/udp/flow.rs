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
use control::{
    DatagramFraming, DatagramKind, Reply, Request, UdpOpenRequest, UdpReply, MAX_FRAME, PREFIX_LEN,
};
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

fn wildcard(v4: bool, port: u16) -> SocketAddr {
    let ip = if v4 {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    SocketAddr::new(ip, port)
}

/// Reads one reply frame from `s`, with the descriptor passed alongside
/// it (`SCM_RIGHTS`), if any.
fn recv_with_fd(s: &mut UnixStream) -> io::Result<(Reply, Option<OwnedFd>)> {
    let mut buf = [0u8; MAX_FRAME];
    let mut cbuf = [0u8; 64];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: plain old data; all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = cbuf.len() as _;
    // SAFETY: `msg` describes live buffers for the duration of the call.
    let n = unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fd = None;
    // SAFETY: the kernel filled `msg_control` with `msg_controllen` bytes;
    // CMSG_FIRSTHDR/CMSG_NXTHDR stay within them, and an SCM_RIGHTS
    // message carries descriptors that are now ours.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let raw: RawFd = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                fd = Some(OwnedFd::from_raw_fd(raw));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let mut have = n as usize;
    if have < PREFIX_LEN {
        s.read_exact(&mut buf[have..PREFIX_LEN])?;
        have = PREFIX_LEN;
    }
    let proto = || io::Error::from_raw_os_error(libc::EPROTO);
    let total = control::frame_len([buf[0], buf[1]]).map_err(|_| proto())?;
    if have < total {
        s.read_exact(&mut buf[have..total])?;
    }
    let (reply, _) = Reply::decode(&buf[..total]).map_err(|_| proto())?;
    Ok((reply, fd))
}

/// Asks the engine for a datagram flow: (flow, our address, MTU, data socket).
fn open_flow(sv: &State, req: UdpOpenRequest) -> Result<(u64, SocketAddr, u16, OwnedFd), i32> {
    let mut s = sv.engine.open(false).map_err(|_| libc::ENETUNREACH)?;
    client::send(&mut s, &Request::UdpOpen(req)).map_err(|_| libc::ENETUNREACH)?;
    match recv_with_fd(&mut s) {
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
    let kind = datagram_kind(sock).ok_or(libc::ENETUNREACH)?;
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
