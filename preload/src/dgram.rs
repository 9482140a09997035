//! UDP through the tunnel, on the shim's side.
//!
//! When a datagram socket first needs the tunnel — `connect()` or a send to
//! a destination the engine routes to a peer, or `bind()` of a wildcard
//! with a fixed port or of one of our tunnel addresses — the shim asks the
//! engine to open a datagram flow (`UdpOpen`) and receives one end of a
//! `SOCK_SEQPACKET` unix socket pair, which it `dup3`s onto the
//! application's fd (flags and earlier epoll registrations kept, the
//! original UDP socket kept as a hidden CLOEXEC "shadow" for IP-level
//! options). The fd stays a real pollable socket: readiness, blocking,
//! `O_NONBLOCK`/`EAGAIN`, timeouts and `fork` behave as the kernel's do.
//!
//! Each message on the pair is one datagram behind a small header
//! (`control::datagram`): the destination on the way out, the source on
//! the way in. The send and receive hooks (`send`, `sendto`, `sendmsg`,
//! `sendmmsg`, `write`, `recv`, `recvfrom`, `recvmsg`, `recvmmsg`, `read`)
//! add and strip it with scatter/gather I/O, so datagram boundaries and
//! sizes are preserved without copies, and the source shown is the peer's
//! real tunnel address. An error message from the engine (an ICMP error on
//! a connected socket) is returned by the next receive or send, as
//! `ECONNREFUSED` is on Linux.
//!
//! Ping sockets (`SOCK_DGRAM` with `IPPROTO_ICMP`/`IPPROTO_ICMPV6`) and
//! raw ICMP sockets are carried the same way, as ICMP echo flows
//! (`control::DatagramKind`): each message is one ICMP echo message; the
//! engine fills in the identifier of a ping socket, keeps a raw socket's,
//! and puts the IPv4 header in front of what a raw IPv4 socket reads. Only
//! echo requests are carried (other ICMP messages to the tunnel fail with
//! `EINVAL` on a ping socket, as Linux's do, and `ENETUNREACH` on a raw
//! one). Socket timeouts set before the first send are kept. Receive
//! ancillary data (TTL, hop limit, packet info, timestamp) is written by
//! [`crate::cmsg`] from what the engine tells about each datagram.
//!
//! Limits: once carried, a socket talks only to the tunnel (a send to a
//! destination outside it fails with `ENETUNREACH`); `UDP_SEGMENT` is not
//! handled; a socket inherited across `exec` is not recognised; the
//! `recvmmsg` timeout is ignored.

use crate::addr;
use crate::engine;
use crate::real;
use crate::redirect;
use crate::sys::{self, set_errno};
use crate::table::{self, EpollReg, Kind};
use control::datagram::{Header, RecvInfo, HEADER_LEN};
use control::{DatagramFraming, DatagramKind, Proto, Reply, Request, UdpOpenRequest, UdpReply};
use libc::{c_int, c_void, iovec, sockaddr, socklen_t};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Most iovecs one send or receive accepts (the kernel's `UIO_MAXIOV`).
const MAX_IOV: usize = 1024;

/// A carried socket's state, copied out of the table.
#[derive(Clone, Copy)]
pub struct Udp {
    /// The application's address family.
    pub family: c_int,
    /// Default peer as the application named it.
    pub peer: Option<SocketAddr>,
    /// Where the default peer's datagrams really go.
    pub peer_eff: Option<SocketAddr>,
    /// The tunnel MTU.
    pub mtu: u16,
    /// UDP, or ICMP echo through a ping or raw socket.
    pub kind: DatagramKind,
    /// The socket the program made (IP-level options live there).
    pub shadow: c_int,
}

/// The state of `fd` if it is a carried datagram socket.
pub fn get(fd: c_int) -> Option<Udp> {
    match table::get(fd) {
        Some(Kind::Udp {
            family,
            peer,
            peer_eff,
            mtu,
            dkind,
            shadow,
            ..
        }) => Some(Udp {
            family,
            peer,
            peer_eff,
            mtu,
            kind: dkind,
            shadow,
        }),
        _ => None,
    }
}

/// What kind of datagram socket `fd` is (`None`: not one we carry).
pub fn kind_of(fd: c_int) -> Option<DatagramKind> {
    if let Some((kind, _)) = crate::echo_standin::get(fd) {
        return Some(kind); // a UDP socket underneath
    }
    let ty = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE).ok()?;
    let proto = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL).ok()?;
    let icmp = proto == libc::IPPROTO_ICMP || proto == libc::IPPROTO_ICMPV6;
    match ty {
        libc::SOCK_DGRAM if icmp => Some(DatagramKind::Ping),
        libc::SOCK_DGRAM => Some(DatagramKind::Udp),
        libc::SOCK_RAW if icmp => Some(DatagramKind::RawIcmp),
        _ => None,
    }
}

fn wildcard(v4: bool, port: u16) -> SocketAddr {
    if v4 {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
    } else {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)
    }
}

/// Opens a datagram flow for `fd` and swaps it in. `bind` is the local
/// address (normalised; `None`: a wildcard, keeping the port the kernel
/// socket may already have); `connect` is (as named, effective) peer.
pub fn open(
    fd: c_int,
    bind: Option<SocketAddr>,
    connect: Option<(SocketAddr, SocketAddr)>,
    regs: &[Option<EpollReg>],
) -> Result<(), c_int> {
    let family = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN)?;
    let kind = kind_of(fd).ok_or(libc::ENETUNREACH)?;
    let v6_socket = family == libc::AF_INET6;
    let v6_only = v6_socket
        && (kind != DatagramKind::Udp
            || sys::getsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY).unwrap_or(0) != 0);
    let bind = bind.unwrap_or_else(|| {
        let port = sys::getsockname(fd)
            .ok()
            .and_then(|(ss, l)| addr::from_storage(&ss, l))
            .map_or(0, |a| a.port());
        let v4 = match connect {
            Some((_, eff)) => eff.is_ipv4(),
            None => !v6_socket,
        };
        // An AF_INET6 socket not yet connected may talk to both families.
        wildcard(
            v4 && !(v6_socket && connect.is_none() && kind == DatagramKind::Udp),
            port,
        )
    });
    let req = Request::UdpOpen(UdpOpenRequest {
        v6_socket,
        v6_only,
        bind,
        connect: connect.map(|c| c.1),
        fd,
        framing: DatagramFraming::Headers,
        kind,
    });
    let (flow, local, mtu, data) = match engine::query_with_fd(&req) {
        Ok((Reply::Udp(UdpReply::Opened { flow, local, mtu }), Some(data))) => {
            (flow, local, mtu, data)
        }
        Ok((Reply::Udp(UdpReply::Refused(e)), None)) => return Err(e),
        Ok((_, Some(data))) => {
            sys::close(data);
            return Err(libc::ENETUNREACH);
        }
        _ => return Err(libc::ENETUNREACH), // fail closed
    };
    let shadow = match crate::swap::swap(fd, data, None, regs) {
        Ok(s) => s,
        Err(e) => {
            sys::close(data);
            return Err(e);
        }
    };
    crate::swap::copy_timeouts(shadow, fd);
    crate::errqueue::clear(fd);
    let old = table::set(
        fd,
        Kind::Udp {
            flow,
            shadow,
            family,
            local,
            peer: connect.map(|c| c.0),
            peer_eff: connect.map(|c| c.1),
            mtu,
            dkind: kind,
        },
    );
    if let Some(old) = old {
        table::release(&old);
    }
    Ok(())
}

/// `connect()` on a carried socket: `to` is (as named, effective), or
/// `None` for `AF_UNSPEC` (disconnect).
pub fn reconnect(fd: c_int, to: Option<(SocketAddr, SocketAddr)>) -> Result<(), c_int> {
    let Some(Kind::Udp { flow, .. }) = table::get(fd) else {
        return Err(libc::EBADF);
    };
    match engine::query(&Request::UdpConnect {
        flow,
        peer: to.map(|t| t.1),
    }) {
        Ok(Reply::Udp(UdpReply::Opened {
            local: new_local, ..
        })) => {
            table::update(fd, |k| {
                if let Kind::Udp {
                    peer,
                    peer_eff,
                    local,
                    ..
                } = k
                {
                    *peer = to.map(|t| t.0);
                    *peer_eff = to.map(|t| t.1);
                    *local = new_local;
                }
            });
            Ok(())
        }
        Ok(Reply::Udp(UdpReply::Refused(e))) => Err(e),
        _ => Err(libc::ENETUNREACH),
    }
}

/// The effective destination of a send, or the errno to fail it with.
fn destination(st: &Udp, dst: Option<SocketAddr>) -> Result<SocketAddr, c_int> {
    match dst {
        None => st.peer_eff.ok_or(libc::EDESTADDRREQ),
        Some(d) => {
            let eff = redirect::outbound(control::normalize(d), Proto::Udp);
            if Some(control::normalize(d)) == st.peer.map(control::normalize) {
                if let Some(p) = st.peer_eff {
                    return Ok(p);
                }
            }
            if addr::is_local(&eff) || !crate::route_cache::routed(eff) {
                // A carried socket talks only to the tunnel.
                return Err(libc::ENETUNREACH);
            }
            Ok(eff)
        }
    }
}

/// Takes a pending error message (connected sockets), if one is first in
/// the queue.
fn pending_error(fd: c_int) -> Option<c_int> {
    let mut head = [0u8; HEADER_LEN];
    // SAFETY: `head` is valid for HEADER_LEN bytes.
    let n = unsafe {
        real::recv(
            fd,
            head.as_mut_ptr() as *mut c_void,
            HEADER_LEN,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n as usize != HEADER_LEN {
        return None;
    }
    if let Ok(Header::Error(e)) = Header::decode(&head) {
        let mut sink = [0u8; HEADER_LEN];
        // SAFETY: as above; consumes the error message.
        unsafe {
            real::recv(
                fd,
                sink.as_mut_ptr() as *mut c_void,
                HEADER_LEN,
                libc::MSG_DONTWAIT,
            )
        };
        return Some(e);
    }
    None
}

fn fail(e: c_int) -> isize {
    set_errno(e);
    -1
}

/// Sends one datagram made of `iov` to `dst` (or the default peer).
///
/// # Safety
/// `iov` must point to `iovlen` valid iovecs.
pub unsafe fn send(
    fd: c_int,
    st: &Udp,
    dst: Option<SocketAddr>,
    iov: *const iovec,
    iovlen: usize,
    flags: c_int,
) -> isize {
    let to = match destination(st, dst) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    if iovlen > MAX_IOV || (iovlen > 0 && iov.is_null()) {
        return fail(libc::EINVAL);
    }
    let mut parts: Vec<iovec> = Vec::with_capacity(iovlen + 1);
    let head = Header::Datagram(to).encode();
    parts.push(iovec {
        iov_base: head.as_ptr() as *mut c_void,
        iov_len: HEADER_LEN,
    });
    let mut total = 0usize;
    for i in 0..iovlen {
        // SAFETY: `i < iovlen` per the caller.
        let v = unsafe { *iov.add(i) };
        total = total.saturating_add(v.iov_len);
        parts.push(v);
    }
    let ip_l4 = match (st.kind, to.is_ipv4()) {
        (DatagramKind::Udp, true) => 28,
        (DatagramKind::Udp, false) => 48,
        (_, true) => 20,
        (_, false) => 40,
    };
    // Larger than the tunnel MTU: the engine sends it in fragments, as
    // Linux does, unless the program asked for path-MTU discovery
    // (`IP_MTU_DISCOVER`/`IPV6_MTU_DISCOVER` = DO or PROBE, `ping -M do`).
    if total + ip_l4 > usize::from(st.mtu) && (dont_fragment(st) || total + ip_l4 > max_ip(to)) {
        if total + ip_l4 <= max_ip(to) {
            // Path-MTU discovery said no: the kernel also queues the MTU.
            crate::errqueue::push_local(fd, st.shadow, st.family, libc::EMSGSIZE, st.mtu, to);
        }
        return fail(libc::EMSGSIZE);
    }
    if st.kind != DatagramKind::Udp {
        // SAFETY: `parts[1..]` are the application's iovecs.
        if let Err(e) = unsafe { check_echo(st.kind, to, &parts[1..], total) } {
            return fail(e);
        }
    }
    if st.peer.is_some() {
        if let Some(e) = pending_error(fd) {
            return fail(e);
        }
    }
    // SAFETY: plain old data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = parts.as_mut_ptr();
    msg.msg_iovlen = parts.len() as _;
    let f = (flags & libc::MSG_DONTWAIT) | libc::MSG_NOSIGNAL;
    // SAFETY: `msg` describes the header and the application's buffers.
    let n = unsafe { real::sendmsg(fd, &msg, f) };
    if n < 0 {
        if sys::errno() == libc::EPIPE || sys::errno() == libc::ECONNRESET {
            return fail(libc::ENETDOWN); // the engine is gone
        }
        return -1;
    }
    (n as usize).saturating_sub(HEADER_LEN) as isize
}

/// Whether the program forbade fragmentation on its socket.
fn dont_fragment(st: &Udp) -> bool {
    let v = if st.family == libc::AF_INET6 {
        sys::getsockopt_int(st.shadow, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER)
    } else {
        sys::getsockopt_int(st.shadow, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER)
    };
    matches!(v, Ok(libc::IP_PMTUDISC_DO | libc::IP_PMTUDISC_PROBE))
}

/// The largest IP datagram (headers counted as `ip_l4` counts them) to `to`:
/// IPv4's total length is 16 bits; IPv6's payload length excludes its
/// 40-byte header.
fn max_ip(to: SocketAddr) -> usize {
    if to.is_ipv4() {
        65_535
    } else {
        65_535 + 40
    }
}

/// Checks that an ICMP flow's message is an echo request of `to`'s
/// family: the only ICMP the tunnel carries.
///
/// # Safety
/// `iov` must be valid iovecs holding `total` bytes.
unsafe fn check_echo(
    kind: DatagramKind,
    to: SocketAddr,
    iov: &[iovec],
    total: usize,
) -> Result<(), c_int> {
    let mut head = [0u8; 2];
    let mut got = 0;
    for v in iov {
        let take = (head.len() - got).min(v.iov_len);
        if take > 0 {
            // SAFETY: the iovec holds at least `take` bytes.
            let src = unsafe { std::slice::from_raw_parts(v.iov_base as *const u8, take) };
            head[got..got + take].copy_from_slice(src);
            got += take;
        }
    }
    let want = if to.is_ipv4() { 8 } else { 128 };
    if total >= 8 && got == 2 && head == [want, 0] {
        return Ok(());
    }
    if kind == DatagramKind::Ping {
        Err(libc::EINVAL) // as a Linux ping socket refuses it
    } else {
        // Other ICMP is not carried.
        crate::uncarried::report(to, if to.is_ipv4() { 1 } else { 58 });
        Err(libc::ENETUNREACH)
    }
}

/// What one receive produced.
pub struct Received {
    /// Payload bytes returned (or the full length with `MSG_TRUNC`).
    pub len: usize,
    /// `msg_flags` of the receive (`MSG_TRUNC` when cut short).
    pub msg_flags: c_int,
    /// What the engine told about the datagram (for ancillary data).
    pub info: RecvInfo,
}

/// Receives one datagram into `iov`, writing the source (as the
/// application should see it) to `name`/`namelen` when given.
///
/// # Safety
/// `iov` must point to `iovlen` valid iovecs; `name`/`namelen` null or
/// valid as for `recvfrom`.
pub unsafe fn recv(
    fd: c_int,
    st: &Udp,
    iov: *const iovec,
    iovlen: usize,
    flags: c_int,
    name: *mut sockaddr,
    namelen: *mut socklen_t,
) -> Result<Received, c_int> {
    if iovlen > MAX_IOV || (iovlen > 0 && iov.is_null()) {
        return Err(libc::EINVAL);
    }
    if flags & libc::MSG_ERRQUEUE != 0 {
        // No queued errors: ICMP errors come in-band (see `Header::Error`).
        return Err(libc::EAGAIN);
    }
    let mut head = [0u8; HEADER_LEN];
    let mut parts: Vec<iovec> = Vec::with_capacity(iovlen + 1);
    parts.push(iovec {
        iov_base: head.as_mut_ptr() as *mut c_void,
        iov_len: HEADER_LEN,
    });
    for i in 0..iovlen {
        // SAFETY: `i < iovlen` per the caller.
        parts.push(unsafe { *iov.add(i) });
    }
    let f = flags & (libc::MSG_DONTWAIT | libc::MSG_PEEK | libc::MSG_TRUNC);
    loop {
        // SAFETY: plain old data; all-zero is valid.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = parts.as_mut_ptr();
        msg.msg_iovlen = parts.len() as _;
        // SAFETY: `msg` describes the header buffer and the application's.
        let n = unsafe { real::recvmsg(fd, &mut msg, f) };
        if n < 0 {
            return Err(sys::errno());
        }
        if n == 0 {
            return Err(libc::ENETDOWN); // the engine is gone
        }
        let n = n as usize;
        let header = if n >= HEADER_LEN {
            Header::decode(&head)
        } else {
            Err(control::datagram::HeaderError::Truncated)
        };
        match header {
            Ok(Header::Datagram(src)) => {
                let src = control::normalize(src);
                if let Some(p) = st.peer_eff {
                    let p = control::normalize(p);
                    // An ICMP socket's "port" means nothing on the wire.
                    let same = match st.kind {
                        DatagramKind::Udp => p == src,
                        _ => p.ip() == src.ip(),
                    };
                    if !same {
                        if f & libc::MSG_PEEK != 0 {
                            discard(fd);
                        }
                        continue; // not from the connected peer
                    }
                }
                if !name.is_null() && !namelen.is_null() {
                    let shown = match st.peer {
                        Some(p) if st.peer_eff.map(control::normalize) == Some(src) => p,
                        _ => addr::in_family(redirect::inbound(src, Proto::Udp), st.family),
                    };
                    // SAFETY: the application's out-parameters.
                    let _ = unsafe { addr::write_out(shown, name, namelen) };
                }
                return Ok(Received {
                    len: n - HEADER_LEN,
                    msg_flags: msg.msg_flags & libc::MSG_TRUNC,
                    info: RecvInfo::decode(&head),
                });
            }
            Ok(Header::Error(e)) => {
                if f & libc::MSG_PEEK != 0 {
                    discard(fd);
                }
                return Err(e);
            }
            Err(_) => {
                if f & libc::MSG_PEEK != 0 {
                    discard(fd);
                }
                continue; // malformed: dropped
            }
        }
    }
}

fn discard(fd: c_int) {
    let mut sink = [0u8; 1];
    // SAFETY: one-byte buffer; the rest of the message is dropped.
    unsafe { real::recv(fd, sink.as_mut_ptr() as *mut c_void, 1, libc::MSG_DONTWAIT) };
}

/// Whether an error message waits first on `fd` (not taken).
pub fn error_pending(fd: c_int) -> bool {
    let mut head = [0u8; HEADER_LEN];
    // SAFETY: `head` is valid for HEADER_LEN bytes.
    let n = unsafe {
        real::recv(
            fd,
            head.as_mut_ptr() as *mut c_void,
            HEADER_LEN,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n as usize == HEADER_LEN && matches!(Header::decode(&head), Ok(Header::Error(_)))
}

/// `recvmsg(…, MSG_ERRQUEUE)` on a carried connected socket that asked
/// for `IP_RECVERR`/`IPV6_RECVERR`: a pending error message (an ICMP error
/// from the far side) is taken and written into `m` as the kernel's error
/// queue shows it; `None` when none waits.
///
/// # Safety
/// `m` must be the application's valid msghdr whose control buffer held
/// `room` bytes.
pub unsafe fn take_remote_error(
    fd: c_int,
    st: &Udp,
    m: &mut libc::msghdr,
    room: usize,
) -> Option<isize> {
    let (peer, peer_eff) = (st.peer?, st.peer_eff?);
    let asked = if st.family == libc::AF_INET6 {
        sys::getsockopt_int(st.shadow, libc::IPPROTO_IPV6, libc::IPV6_RECVERR)
    } else {
        sys::getsockopt_int(st.shadow, libc::IPPROTO_IP, libc::IP_RECVERR)
    };
    if asked.unwrap_or(0) == 0 {
        return None;
    }
    let e = pending_error(fd)?;
    let ee = crate::errqueue::remote(e, peer_eff.is_ipv4());
    // SAFETY: per the caller. The peer answered itself: one hop.
    unsafe { crate::errqueue::write(st.family, m, room, peer, ee, Some(peer_eff)) };
    Some(0)
}

/// `SO_ERROR` on a carried socket: a pending error message, taken.
pub fn take_error(fd: c_int) -> c_int {
    pending_error(fd).unwrap_or(0)
}

/// A one-buffer iovec.
pub fn iov1(buf: *const c_void, len: usize) -> iovec {
    iovec {
        iov_base: buf as *mut c_void,
        iov_len: len,
    }
}

/// Reads the address of a `msghdr`'s `msg_name`, if any.
///
/// # Safety
/// `msg` must be a valid msghdr.
pub unsafe fn msg_dst(msg: &libc::msghdr) -> Option<SocketAddr> {
    if msg.msg_name.is_null() {
        return None;
    }
    // SAFETY: per the sendmsg contract.
    unsafe { addr::read(msg.msg_name as *const sockaddr, msg.msg_namelen) }
}

/// `msg_iovlen` as a count (its C type differs between libcs).
#[allow(clippy::unnecessary_cast)]
pub fn iovlen(msg: &libc::msghdr) -> usize {
    msg.msg_iovlen as usize
}

/// `msg_controllen` as a byte count (its C type differs between libcs).
#[allow(clippy::unnecessary_cast)]
pub fn controllen(msg: &libc::msghdr) -> usize {
    msg.msg_controllen as usize
}
