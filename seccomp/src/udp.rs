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
//! timeout is ignored; ancillary data is neither sent nor received.

use super::caller::{self, FileId};
use super::client;
use super::memory;
use super::notify::{Answer, Listener};
use super::sockaddr;
use super::supervisor::{Call, Outcome, Supervisor};
use super::table::Ours;
use super::tcp::{nonblocking, put_addr, set_nonblocking, sock_name, sockopt_int};
use control::datagram::{Header, HEADER_LEN};
use control::{
    DatagramFraming, DnsInfo, Proto, Reply, Request, RouteDecision, UdpOpenRequest, UdpReply,
    MAX_FRAME, PREFIX_LEN,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// How long a routing decision for a destination is reused.
const ROUTE_TTL: Duration = Duration::from_secs(5);
/// Destinations remembered at most.
const ROUTE_CACHE: usize = 256;
/// Largest vector `sendmmsg`/`recvmmsg` take (`UIO_MAXIOV`), and largest
/// `iovec` count of one message.
const MAX_VEC: u64 = 1024;
/// `struct msghdr` on x86-64.
const MSGHDR: u64 = 56;
/// `struct mmsghdr` on x86-64 (`msghdr`, `msg_len`, padding).
const MMSGHDR: u64 = 64;
/// Largest datagram.
const MAX_DATAGRAM: usize = 65_535;
/// Blocking receives waiting on helper threads at most (then `EAGAIN`).
const MAX_WAITERS: usize = 256;
/// How often a waiting receive checks that its caller is still there.
const WAIT_POLL_MS: i32 = 200;

/// A UDP socket carried by a datagram flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// Engine flow id (`UdpConnect`).
    pub flow: u64,
    /// Connected (plain flow): the peer as the program named it
    /// (`getpeername`). `None`: unconnected (headered flow; the supervisor
    /// carries sends and receives).
    pub peer: Option<SocketAddr>,
    /// Our tunnel address and port (`getsockname`).
    pub local: SocketAddr,
    /// `AF_INET` or `AF_INET6`: the family of the program's socket.
    pub family: i32,
    /// The tunnel MTU: larger datagrams fail with `EMSGSIZE`.
    pub mtu: u16,
}

/// What the supervisor knows about name resolution, shared with waiter
/// threads: the engine's DNS setup and the host nameserver last asked
/// (replies from the tunnel's server are shown as coming from it).
struct Dns {
    info: Option<Option<DnsInfo>>,
    last_asked: Option<SocketAddr>,
}

static DNS: Mutex<Dns> = Mutex::new(Dns {
    info: None,
    last_asked: None,
});

thread_local! {
    static ROUTES: RefCell<HashMap<SocketAddr, (RouteDecision, Instant)>> =
        RefCell::new(HashMap::new());
}

/// Blocking receives waiting now.
static WAITERS: AtomicUsize = AtomicUsize::new(0);

fn dns() -> std::sync::MutexGuard<'static, Dns> {
    DNS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where traffic to `dst` (normalised) really goes: the tunnel's DNS
/// server for port 53 of a host nameserver when the config has `DNS =`
/// (the shim's rule), else `dst`. `Err`: it is port 53 and the engine could
/// not say (fail closed).
pub fn effective(sv: &Supervisor, dst: SocketAddr) -> Result<SocketAddr, i32> {
    if dst.port() != 53 {
        return Ok(dst);
    }
    let known = dns().info;
    let info = match known {
        Some(i) => i,
        None => {
            let i = match sv.engine.query(&Request::DnsInfo) {
                Ok(Reply::DnsInfo(i)) => Some(i),
                _ => None,
            };
            // Not remembered when the engine could not say: ask again.
            if i.is_some() {
                dns().info = Some(i);
            }
            i
        }
    };
    let Some(info) = info else {
        return Err(libc::ENETUNREACH);
    };
    match info.redirect(dst) {
        Some(to) => {
            dns().last_asked = Some(dst);
            Ok(control::normalize(to))
        }
        None => Ok(dst),
    }
}

/// The source to show for a datagram from `src` (the inverse of
/// [`effective`]): the host nameserver the program asked last, for an
/// answer of the tunnel's DNS server.
fn shown_source(src: SocketAddr) -> SocketAddr {
    let d = dns();
    match (d.info, d.last_asked) {
        (Some(Some(i)), Some(asked)) if src.port() == 53 && i.server == Some(src.ip()) => asked,
        _ => src,
    }
}

/// The engine's decision for UDP to `dst` (normalised), cached briefly.
fn route(sv: &Supervisor, dst: SocketAddr) -> RouteDecision {
    let now = Instant::now();
    if let Some(d) = ROUTES.with(|r| {
        r.borrow()
            .get(&dst)
            .filter(|(_, at)| now.duration_since(*at) < ROUTE_TTL)
            .map(|(d, _)| *d)
    }) {
        return d;
    }
    let d = match sv.engine.query(&Request::Route {
        dst,
        proto: Proto::Udp,
    }) {
        Ok(Reply::Route(d)) => d,
        _ => RouteDecision::Unreachable(libc::ENETUNREACH), // fail closed
    };
    ROUTES.with(|r| {
        let mut r = r.borrow_mut();
        if r.len() >= ROUTE_CACHE {
            r.retain(|_, (_, at)| now.duration_since(*at) < ROUTE_TTL);
            if r.len() >= ROUTE_CACHE {
                r.clear();
            }
        }
        r.insert(dst, (d, now));
    });
    d
}

fn wildcard(v4: bool, port: u16) -> SocketAddr {
    let ip = if v4 {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    SocketAddr::new(ip, port)
}

// ---- the caller's memory, in pieces of at most memory::MAX_TRANSFER ----

fn read_mem(pid: u32, addr: u64, len: usize) -> Result<Vec<u8>, i32> {
    let mut out = Vec::with_capacity(len);
    let mut at = addr;
    while out.len() < len {
        let n = (len - out.len()).min(memory::MAX_TRANSFER);
        out.extend(memory::read(pid, at, n).map_err(|_| libc::EFAULT)?);
        at += n as u64;
    }
    Ok(out)
}

fn write_mem(pid: u32, addr: u64, bytes: &[u8]) -> Result<(), i32> {
    for (i, chunk) in bytes.chunks(memory::MAX_TRANSFER).enumerate() {
        let at = addr + (i * memory::MAX_TRANSFER) as u64;
        memory::write(pid, at, chunk).map_err(|_| libc::EFAULT)?;
    }
    Ok(())
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_ne_bytes)
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_ne_bytes)
}

/// The `iovec`s at `iov` (`n` of them) as (base, len).
fn iovecs(pid: u32, iov: u64, n: u64) -> Result<Vec<(u64, usize)>, i32> {
    if n > MAX_VEC {
        return Err(libc::EMSGSIZE);
    }
    let b = read_mem(pid, iov, n as usize * 16)?;
    Ok((0..n as usize)
        .map(|i| (u64_at(&b, i * 16), u64_at(&b, i * 16 + 8) as usize))
        .collect())
}

/// A socket address argument (`addr`, `len`) of the caller.
fn read_addr(pid: u32, addr: u64, len: u64) -> Option<SocketAddr> {
    let len = usize::try_from(len as u32).ok()?;
    if addr == 0 || len == 0 || len > sockaddr::MAX_LEN {
        return None;
    }
    sockaddr::decode(&memory::read(pid, addr, len).ok()?)
}

/// One message to send, read from the caller: destination and payload.
struct Outgoing {
    dst: Option<SocketAddr>,
    payload: Vec<u8>,
}

/// The `msghdr` at `at`: its destination and gathered payload.
fn read_msghdr(pid: u32, at: u64) -> Result<Outgoing, i32> {
    let h = memory::read(pid, at, MSGHDR as usize).map_err(|_| libc::EFAULT)?;
    let dst = read_addr(pid, u64_at(&h, 0), u64::from(u32_at(&h, 8)));
    let mut payload = Vec::new();
    for (base, len) in iovecs(pid, u64_at(&h, 16), u64_at(&h, 24))? {
        if payload.len() + len > MAX_DATAGRAM {
            return Err(libc::EMSGSIZE);
        }
        payload.extend(read_mem(pid, base, len)?);
    }
    Ok(Outgoing { dst, payload })
}

// ---- the engine ----

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
fn open_flow(sv: &Supervisor, req: UdpOpenRequest) -> Result<(u64, SocketAddr, u16, OwnedFd), i32> {
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
fn carry(
    sv: &mut Supervisor,
    c: &Call,
    sock: &OwnedFd,
    connect: Option<(SocketAddr, SocketAddr)>,
    at: Option<Option<IpAddr>>,
    port: u16,
) -> Result<(u64, Datagram), i32> {
    let fd = c.n.args[0];
    let family = sockopt_int(sock, libc::SOL_SOCKET, libc::SO_DOMAIN).ok_or(libc::ENETUNREACH)?;
    let v6_socket = family == libc::AF_INET6;
    let v6_only = v6_socket && sockopt_int(sock, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) == Some(1);
    let bind = match (connect, at) {
        (_, Some(Some(ip))) => SocketAddr::new(ip, port),
        (Some((_, eff)), _) => wildcard(eff.is_ipv4(), port),
        // An AF_INET6 socket not connected may talk to both families.
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
    };
    let (flow, local, mtu, data) = open_flow(sv, req)?;
    if nonblocking(sock) {
        set_nonblocking(&data, true);
    }
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
    };
    sv.table.insert(ino, Ours::Udp(d));
    Ok((ino, d))
}

/// Puts a fresh, unbound kernel UDP socket of `family` at the caller's `fd`.
fn kernel_socket(c: &Call, fd: u64, family: i32) -> Result<(), i32> {
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
fn ours(sv: &Supervisor, c: &Call) -> Option<(OwnedFd, u64, Datagram)> {
    let sock = c.fd(0).ok()?;
    let id = caller::file_id(&sock).ok()?;
    match sv.table.get(id.ino) {
        Some(Ours::Udp(d)) if id.socket => Some((sock, id.ino, d)),
        _ => None,
    }
}

// ---- connect, names ----

/// `connect` of a datagram socket that is not carried, to `dst`
/// (`raw` as the program named it, `dst` normalised and already
/// redirected by [`effective`]).
pub fn connect(sv: &mut Supervisor, c: &Call, raw: SocketAddr, dst: SocketAddr) -> Outcome {
    let fd = c.n.args[0];
    match route(sv, dst) {
        RouteDecision::Direct => return Outcome::cont(),
        RouteDecision::Unreachable(e) => return Outcome::errno(e),
        RouteDecision::Tunnel => {}
    }
    let Ok(sock) = c.fd(0) else {
        return Outcome::errno(libc::EBADF);
    };
    // A port the program bound stays its port.
    let port = sock_name(&sock, false).map_or(0, |a| a.port());
    match carry(sv, c, &sock, Some((raw, dst)), None, port) {
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

/// `connect` on a socket we carry (`d`, inode `ino`).
pub fn reconnect(sv: &mut Supervisor, c: &Call, ino: u64, d: Datagram) -> Outcome {
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
        libc::SO_TYPE => Some(libc::SOCK_DGRAM),
        libc::SO_PROTOCOL => Some(libc::IPPROTO_UDP),
        libc::SO_ERROR => Some(0),
        _ => None,
    }
}

/// `bind` of a datagram socket: to a wildcard with a fixed port or to one
/// of our tunnel addresses, the socket becomes an unconnected carried one
/// at once (a server: reachable by peers at our tunnel addresses, not by
/// local programs, as in the shim); anything else runs as asked.
pub fn bind(sv: &mut Supervisor, c: &Call, raw: SocketAddr, norm: SocketAddr) -> Outcome {
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

// ---- sends ----

/// What to do with sends to `raw` (as named) on the caller's socket.
enum SendPlan {
    /// Let the kernel do it.
    Pass,
    /// Fail with this errno.
    Fail(i32),
    /// Carry it: our copy of the data socket, the entry, where it goes.
    Carry(OwnedFd, Datagram, SocketAddr),
}

fn plan(sv: &mut Supervisor, c: &Call, raw: SocketAddr) -> SendPlan {
    let Ok(sock) = c.fd(0) else {
        return SendPlan::Pass; // the kernel says EBADF
    };
    let Ok(FileId { ino, socket: true }) = caller::file_id(&sock) else {
        return SendPlan::Pass;
    };
    let dst = control::normalize(raw);
    let entry = sv.table.get(ino);
    if let Some(Ours::Udp(d)) = entry {
        if let Some(peer) = d.peer {
            // The address is ignored on our data socket: it goes to the peer.
            return if control::normalize(peer) == dst {
                SendPlan::Pass
            } else {
                SendPlan::Fail(libc::EISCONN)
            };
        }
    } else if entry.is_some() {
        return SendPlan::Pass;
    }
    // Redirected first: a host nameserver on loopback is the tunnel's.
    let eff = match effective(sv, dst) {
        Ok(e) => e,
        Err(e) => return SendPlan::Fail(e),
    };
    let carried = matches!(entry, Some(Ours::Udp(_)));
    if sockaddr::is_local(&eff) {
        return if carried {
            SendPlan::Fail(libc::ENETUNREACH)
        } else {
            SendPlan::Pass
        };
    }
    let decision = route(sv, eff);
    if let Some(Ours::Udp(d)) = entry {
        // Once carried, a socket talks only to the tunnel (as the shim).
        return match decision {
            RouteDecision::Tunnel => SendPlan::Carry(sock, d, eff),
            RouteDecision::Unreachable(e) => SendPlan::Fail(e),
            RouteDecision::Direct => SendPlan::Fail(libc::ENETUNREACH),
        };
    }
    match sockopt_int(&sock, libc::SOL_SOCKET, libc::SO_TYPE) {
        Some(libc::SOCK_STREAM) | None => return SendPlan::Pass,
        Some(libc::SOCK_DGRAM) => {}
        Some(_) => {
            // Raw and others: nothing routed may leave (as the shim).
            return match decision {
                RouteDecision::Direct => SendPlan::Pass,
                _ => SendPlan::Fail(libc::ENETUNREACH),
            };
        }
    }
    match decision {
        RouteDecision::Direct => SendPlan::Pass,
        RouteDecision::Unreachable(e) => SendPlan::Fail(e),
        RouteDecision::Tunnel => {
            let port = sock_name(&sock, false).map_or(0, |a| a.port());
            match carry(sv, c, &sock, None, None, port) {
                Ok((_, d)) => {
                    debug!(pid = c.n.pid, fd = c.n.args[0], flow = d.flow, local = %d.local, "seccomp: unconnected udp socket through the tunnel");
                    // Our copy still names the old file: the new one is in
                    // the caller's table now.
                    match c.fd(0) {
                        Ok(data) => SendPlan::Carry(data, d, eff),
                        Err(_) => SendPlan::Fail(libc::EBADF),
                    }
                }
                Err(e) => {
                    warn!(pid = c.n.pid, dst = %raw, errno = e, "seccomp mode: cannot carry an unconnected UDP socket through the tunnel; the send fails");
                    SendPlan::Fail(e)
                }
            }
        }
    }
}

/// Writes one datagram for `dst` on our copy of a headered data socket.
fn send_headered(data: &OwnedFd, d: &Datagram, dst: SocketAddr, payload: &[u8]) -> Result<(), i32> {
    if payload.len() > usize::from(d.mtu) && d.mtu != 0 {
        return Err(libc::EMSGSIZE);
    }
    let head = Header::Datagram(dst).encode();
    engine::seqpacket::send2(data.as_raw_fd(), &head, payload).or_else(|e| {
        match e.raw_os_error() {
            // A full queue drops the datagram, as a kernel UDP socket may.
            Some(libc::EAGAIN) => Ok(()),
            Some(n) => Err(n),
            None => Err(libc::EIO),
        }
    })
}

fn answer(r: Result<i64, i32>) -> Outcome {
    match r {
        Ok(v) => Outcome::value(v),
        Err(e) => Outcome::errno(e),
    }
}

/// `sendto` with a destination (the filter traps no other).
pub fn sendto(sv: &mut Supervisor, c: &Call) -> Outcome {
    let [_, buf, len, _, addr, alen] = c.n.args;
    let Some(raw) = read_addr(c.n.pid, addr, alen) else {
        return Outcome::cont();
    };
    match plan(sv, c, raw) {
        SendPlan::Pass => Outcome::cont(),
        SendPlan::Fail(e) => Outcome::errno(e),
        SendPlan::Carry(data, d, dst) => {
            let len = len as usize;
            if len > MAX_DATAGRAM {
                return Outcome::errno(libc::EMSGSIZE);
            }
            answer(
                read_mem(c.n.pid, buf, len)
                    .and_then(|p| send_headered(&data, &d, dst, &p))
                    .map(|()| len as i64),
            )
        }
    }
}

/// `sendmsg`.
pub fn sendmsg(sv: &mut Supervisor, c: &Call) -> Outcome {
    let h = match memory::read(c.n.pid, c.n.args[1], MSGHDR as usize) {
        Ok(h) => h,
        Err(_) => return Outcome::cont(), // the kernel says EFAULT
    };
    let Some(raw) = read_addr(c.n.pid, u64_at(&h, 0), u64::from(u32_at(&h, 8))) else {
        return Outcome::cont();
    };
    match plan(sv, c, raw) {
        SendPlan::Pass => Outcome::cont(),
        SendPlan::Fail(e) => Outcome::errno(e),
        SendPlan::Carry(data, d, dst) => answer(read_msghdr(c.n.pid, c.n.args[1]).and_then(|m| {
            send_headered(&data, &d, dst, &m.payload).map(|()| m.payload.len() as i64)
        })),
    }
}

/// `sendmmsg`: carried if its first message with a destination is.
pub fn sendmmsg(sv: &mut Supervisor, c: &Call) -> Outcome {
    let [_, vec, vlen, ..] = c.n.args;
    let n = (vlen as u32 as u64).min(MAX_VEC);
    let pid = c.n.pid;
    // Decide on the first destination named.
    let mut first = None;
    for i in 0..n {
        if let Ok(m) = read_msghdr(pid, vec + i * MMSGHDR) {
            if let Some(dst) = m.dst {
                first = Some(dst);
                break;
            }
        }
    }
    let Some(raw) = first else {
        return Outcome::cont();
    };
    let (data, d) = match plan(sv, c, raw) {
        SendPlan::Pass => {
            // Later messages may still name tunnel destinations: refuse
            // the call rather than let one leave.
            for i in 0..n {
                if let Some(dst) = read_msghdr(pid, vec + i * MMSGHDR).ok().and_then(|m| m.dst) {
                    if !matches!(plan(sv, c, dst), SendPlan::Pass) {
                        return Outcome::errno(libc::ENETUNREACH);
                    }
                }
            }
            return Outcome::cont();
        }
        SendPlan::Fail(e) => return Outcome::errno(e),
        SendPlan::Carry(data, d, _) => (data, d),
    };
    let mut sent = 0u64;
    for i in 0..n {
        let at = vec + i * MMSGHDR;
        let r = read_msghdr(pid, at).and_then(|m| {
            let dst = match m.dst {
                Some(raw) => {
                    let eff = effective(sv, control::normalize(raw))?;
                    match route(sv, eff) {
                        RouteDecision::Tunnel => eff,
                        RouteDecision::Unreachable(e) => return Err(e),
                        RouteDecision::Direct => return Err(libc::ENETUNREACH),
                    }
                }
                None => return Err(libc::EDESTADDRREQ),
            };
            send_headered(&data, &d, dst, &m.payload)?;
            write_mem(pid, at + MSGHDR, &(m.payload.len() as u32).to_ne_bytes())
        });
        match r {
            Ok(()) => sent += 1,
            Err(e) if sent == 0 => return Outcome::errno(e),
            Err(_) => break,
        }
    }
    Outcome::value(sent as i64)
}

// ---- receives (unconnected carried sockets, and any with an address buffer) ----

/// Which receive call, with its arguments.
#[derive(Clone, Copy, Debug)]
enum RecvCall {
    /// `recvfrom(fd, buf, len, flags, addr, addrlen)`.
    From {
        buf: u64,
        len: u64,
        addr: u64,
        alen: u64,
    },
    /// `recvmsg(fd, msg, flags)`.
    Msg { msg: u64 },
    /// `recvmmsg(fd, vec, vlen, flags, timeout)`.
    MMsg { vec: u64, vlen: u64 },
}

/// Everything a receive needs, owned, so a helper thread can finish it.
#[derive(Clone, Copy, Debug)]
struct Recv {
    pid: u32,
    call: RecvCall,
    flags: i32,
    d: Datagram,
}

/// One message off the data socket: (payload, source as shown) or the
/// errno an error message carries. `Err(EAGAIN)`: nothing queued.
fn take(data: &OwnedFd, d: &Datagram, peek: bool) -> Result<(Vec<u8>, SocketAddr), i32> {
    let mut buf = vec![0u8; HEADER_LEN + MAX_DATAGRAM + 1];
    let flags = libc::MSG_DONTWAIT | if peek { libc::MSG_PEEK } else { 0 };
    // SAFETY: `buf` is valid for `buf.len()` bytes of writes.
    let n = unsafe { libc::recv(data.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        return Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    let n = n as usize;
    buf.truncate(n);
    match d.peer {
        // Plain: the payload alone, from the peer.
        Some(peer) => Ok((buf, peer)),
        None => match Header::decode(&buf) {
            Ok(Header::Datagram(src)) => {
                let shown = shown_source(control::normalize(src));
                Ok((buf.split_off(HEADER_LEN), shown))
            }
            Ok(Header::Error(e)) => Err(e),
            Err(_) => Err(libc::EIO),
        },
    }
}

/// Writes `src` to the caller's (`addr`, `alen`) out-parameters, the
/// kernel's way (truncated to the room given, full length reported).
fn put_name(pid: u32, addr: u64, alen: u64, src: SocketAddr, family: i32) -> Result<(), i32> {
    if addr == 0 || alen == 0 {
        return Ok(());
    }
    let room = memory::read_u32(pid, alen).map_err(|_| libc::EFAULT)?;
    if (room as i32) < 0 {
        return Err(libc::EINVAL);
    }
    let (bytes, full) = sockaddr::truncated(sockaddr::in_family(src, family), room);
    write_mem(pid, addr, &bytes)?;
    write_mem(pid, alen, &full.to_ne_bytes())
}

/// Scatters `payload` into the `msghdr` at `msg` (name, iovecs, flags);
/// returns the bytes stored (or the full length with `MSG_TRUNC`).
fn fill_msghdr(r: &Recv, msg: u64, payload: &[u8], src: SocketAddr) -> Result<usize, i32> {
    let h = memory::read(r.pid, msg, MSGHDR as usize).map_err(|_| libc::EFAULT)?;
    let name = u64_at(&h, 0);
    if name != 0 {
        let room = u32_at(&h, 8);
        let (bytes, full) = sockaddr::truncated(sockaddr::in_family(src, r.d.family), room);
        write_mem(r.pid, name, &bytes)?;
        write_mem(r.pid, msg + 8, &full.to_ne_bytes())?;
    }
    let mut left = payload;
    let mut stored = 0;
    for (base, len) in iovecs(r.pid, u64_at(&h, 16), u64_at(&h, 24))? {
        if left.is_empty() {
            break;
        }
        let k = len.min(left.len());
        write_mem(r.pid, base, &left[..k])?;
        left = &left[k..];
        stored += k;
    }
    // No ancillary data; MSG_TRUNC if the datagram did not fit.
    write_mem(r.pid, msg + 40, &0u64.to_ne_bytes())?;
    let flags: i32 = if left.is_empty() { 0 } else { libc::MSG_TRUNC };
    write_mem(r.pid, msg + 48, &flags.to_ne_bytes())?;
    Ok(if r.flags & libc::MSG_TRUNC != 0 {
        payload.len()
    } else {
        stored
    })
}

/// Tries the receive once, without waiting. `Err(EAGAIN)`: nothing yet.
fn try_recv(data: &OwnedFd, r: &Recv) -> Result<i64, i32> {
    let peek = r.flags & libc::MSG_PEEK != 0;
    match r.call {
        RecvCall::From {
            buf,
            len,
            addr,
            alen,
        } => {
            let (payload, src) = take(data, &r.d, peek)?;
            let k = payload.len().min(len as usize);
            write_mem(r.pid, buf, &payload[..k])?;
            put_name(r.pid, addr, alen, src, r.d.family)?;
            Ok(if r.flags & libc::MSG_TRUNC != 0 {
                payload.len() as i64
            } else {
                k as i64
            })
        }
        RecvCall::Msg { msg } => {
            let (payload, src) = take(data, &r.d, peek)?;
            fill_msghdr(r, msg, &payload, src).map(|n| n as i64)
        }
        RecvCall::MMsg { vec, vlen } => {
            let n = (vlen as u32 as u64).min(MAX_VEC);
            let mut got = 0u64;
            while got < n {
                let (payload, src) = match take(data, &r.d, false) {
                    Ok(x) => x,
                    Err(e) if got == 0 => return Err(e),
                    Err(_) => break,
                };
                let at = vec + got * MMSGHDR;
                let k = fill_msghdr(r, at, &payload, src)?;
                write_mem(r.pid, at + MSGHDR, &(k as u32).to_ne_bytes())?;
                // After the first, only what is queued already (as with
                // MSG_WAITFORONE; without it Linux would wait, we do not).
                got += 1;
            }
            Ok(got as i64)
        }
    }
}

/// A receive with the caller's flags and socket: now, or on a helper thread
/// that waits for a datagram (a blocking socket), so other calls go on.
fn receive(c: &Call, call: RecvCall, flags: i32, data: OwnedFd, d: Datagram) -> Outcome {
    let r = Recv {
        pid: c.n.pid,
        call,
        flags,
        d,
    };
    match try_recv(&data, &r) {
        Err(libc::EAGAIN) => {}
        other => return answer(other),
    }
    if flags & libc::MSG_DONTWAIT != 0 || nonblocking(&data) {
        return Outcome::errno(libc::EAGAIN);
    }
    if WAITERS.load(Ordering::Relaxed) >= MAX_WAITERS {
        return Outcome::errno(libc::EAGAIN);
    }
    // SAFETY: F_DUPFD_CLOEXEC on the listener descriptor, which is open.
    let dup = unsafe { libc::fcntl(c.listener.raw(), libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Outcome::errno(libc::EAGAIN);
    }
    // SAFETY: a new descriptor we own.
    let listener = Listener::new(unsafe { OwnedFd::from_raw_fd(dup) });
    let id = c.n.id;
    WAITERS.fetch_add(1, Ordering::Relaxed);
    let spawned = std::thread::Builder::new()
        .name("wrapguard-udp-recv".into())
        .spawn(move || {
            wait_and_receive(&listener, id, &data, &r);
            WAITERS.fetch_sub(1, Ordering::Relaxed);
        });
    match spawned {
        Ok(_) => Outcome::Answered,
        Err(_) => {
            WAITERS.fetch_sub(1, Ordering::Relaxed);
            Outcome::errno(libc::EAGAIN)
        }
    }
}

/// The helper thread of a blocking receive: waits for a datagram while the
/// caller is still there, then finishes the call and answers it.
fn wait_and_receive(listener: &Listener, id: u64, data: &OwnedFd, r: &Recv) {
    loop {
        if !listener.id_valid(id) {
            return; // interrupted by a signal, or gone
        }
        let mut p = libc::pollfd {
            fd: data.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, WAIT_POLL_MS) };
        if p.revents == 0 {
            continue;
        }
        let a = match try_recv(data, r) {
            Err(libc::EAGAIN) if p.revents & libc::POLLHUP == 0 => continue,
            Err(libc::EAGAIN) => Answer::Value(0), // the engine is gone
            Ok(v) => Answer::Value(v),
            Err(e) => Answer::Errno(e),
        };
        let _ = listener.respond(id, a);
        return;
    }
}

/// `recvfrom` with an address buffer (the filter traps no other).
pub fn recvfrom(sv: &mut Supervisor, c: &Call) -> Outcome {
    let [_, buf, len, flags, addr, alen] = c.n.args;
    let Some((data, _, d)) = ours(sv, c) else {
        return Outcome::cont();
    };
    let call = RecvCall::From {
        buf,
        len,
        addr,
        alen,
    };
    receive(c, call, flags as i32, data, d)
}

/// `recvmsg`.
pub fn recvmsg(sv: &mut Supervisor, c: &Call) -> Outcome {
    let [_, msg, flags, ..] = c.n.args;
    let Some((data, _, d)) = ours(sv, c) else {
        return Outcome::cont();
    };
    receive(c, RecvCall::Msg { msg }, flags as i32, data, d)
}

/// `recvmmsg` (its timeout is ignored).
pub fn recvmmsg(sv: &mut Supervisor, c: &Call) -> Outcome {
    let [_, vec, vlen, flags, ..] = c.n.args;
    let Some((data, _, d)) = ours(sv, c) else {
        return Outcome::cont();
    };
    receive(c, RecvCall::MMsg { vec, vlen }, flags as i32, data, d)
}

#[cfg(test)]
mod tests {
    //! The emulation against our own memory (the "caller" is this process)
    //! and a real socket pair carrying headered messages.
    use super::*;
    use engine::seqpacket;

    fn dgram(peer: Option<&str>) -> Datagram {
        Datagram {
            flow: 1,
            peer: peer.map(|p| p.parse().expect("peer")),
            local: "10.77.0.2:40000".parse().expect("local"),
            family: libc::AF_INET,
            mtu: 1420,
        }
    }

    fn push(engine_end: &OwnedFd, from: &str, payload: &[u8]) {
        let head = Header::Datagram(from.parse().expect("from")).encode();
        seqpacket::send2(engine_end.as_raw_fd(), &head, payload).expect("send");
    }

    fn sockaddr_of(b: &[u8]) -> SocketAddr {
        sockaddr::decode(b).expect("an address was written")
    }

    #[test]
    fn recvfrom_fills_buffer_address_and_truncates_as_linux() {
        let (engine_end, app_end) = seqpacket::pair().expect("pair");
        let pid = std::process::id();
        let d = dgram(None);
        push(&engine_end, "10.77.0.1:5353", b"hello, tunnel");
        let mut buf = [0u8; 5];
        let mut name = [0u8; 16];
        let mut nlen: u32 = 16;
        let r = Recv {
            pid,
            call: RecvCall::From {
                buf: buf.as_mut_ptr() as u64,
                len: 5,
                addr: name.as_mut_ptr() as u64,
                alen: &mut nlen as *mut u32 as u64,
            },
            flags: 0,
            d,
        };
        assert_eq!(try_recv(&app_end, &r), Ok(5));
        assert_eq!(std::hint::black_box(buf), *b"hello");
        assert_eq!(std::hint::black_box(nlen), 16);
        assert_eq!(sockaddr_of(&name), "10.77.0.1:5353".parse().expect("a"));
        // The rest of the datagram is gone (as UDP); MSG_TRUNC reports the
        // real length.
        push(&engine_end, "10.77.0.1:5353", b"second one");
        let r = Recv {
            flags: libc::MSG_TRUNC,
            ..r
        };
        assert_eq!(try_recv(&app_end, &r), Ok(10));
        // Nothing queued: EAGAIN (the caller decides whether to wait).
        assert_eq!(try_recv(&app_end, &r), Err(libc::EAGAIN));
        // An ICMP error message is the errno of the next receive.
        let head = Header::Error(libc::ECONNREFUSED).encode();
        seqpacket::send2(engine_end.as_raw_fd(), &head, b"").expect("send");
        assert_eq!(try_recv(&app_end, &r), Err(libc::ECONNREFUSED));
    }

    #[test]
    fn recvmsg_scatters_and_flags_truncation() {
        let (engine_end, app_end) = seqpacket::pair().expect("pair");
        let pid = std::process::id();
        push(&engine_end, "[fd77::1]:53", b"abcdefgh");
        let mut a = [0u8; 3];
        let mut b = [0u8; 3];
        let iov = [
            libc::iovec {
                iov_base: a.as_mut_ptr().cast(),
                iov_len: 3,
            },
            libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: 3,
            },
        ];
        let mut name = [0u8; 28];
        // SAFETY: plain old data; all-zero is a valid msghdr.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = name.as_mut_ptr().cast();
        msg.msg_namelen = 28;
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = 2;
        msg.msg_controllen = 99;
        let d = Datagram {
            family: libc::AF_INET6,
            ..dgram(None)
        };
        let r = Recv {
            pid,
            call: RecvCall::Msg {
                msg: &mut msg as *mut libc::msghdr as u64,
            },
            flags: 0,
            d,
        };
        assert_eq!(try_recv(&app_end, &r), Ok(6));
        let msg = std::hint::black_box(msg);
        assert_eq!(std::hint::black_box(a), *b"abc");
        assert_eq!(std::hint::black_box(b), *b"def");
        assert_eq!(msg.msg_flags, libc::MSG_TRUNC);
        assert_eq!(msg.msg_controllen, 0);
        assert_eq!(msg.msg_namelen, 28);
        assert_eq!(sockaddr_of(&name), "[fd77::1]:53".parse().expect("a"));
    }

    #[test]
    fn plain_flows_report_their_peer_and_keep_payloads_whole() {
        let (engine_end, app_end) = seqpacket::pair().expect("pair");
        let pid = std::process::id();
        let d = dgram(Some("127.0.0.53:53"));
        seqpacket::send2(engine_end.as_raw_fd(), b"", b"answer").expect("send");
        let mut buf = [0u8; 32];
        let mut name = [0u8; 16];
        let mut nlen: u32 = 16;
        let r = Recv {
            pid,
            call: RecvCall::From {
                buf: buf.as_mut_ptr() as u64,
                len: 32,
                addr: name.as_mut_ptr() as u64,
                alen: &mut nlen as *mut u32 as u64,
            },
            flags: 0,
            d,
        };
        assert_eq!(try_recv(&app_end, &r), Ok(6));
        assert_eq!(&std::hint::black_box(buf)[..6], b"answer");
        // The peer as the program named it (a host nameserver, redirected).
        assert_eq!(sockaddr_of(&name), "127.0.0.53:53".parse().expect("a"));
    }

    #[test]
    fn sendmsg_payload_is_gathered_from_every_iovec() {
        let pid = std::process::id();
        let a = *b"GET ";
        let b = *b"/x";
        let iov = [
            libc::iovec {
                iov_base: a.as_ptr() as *mut libc::c_void,
                iov_len: 4,
            },
            libc::iovec {
                iov_base: b.as_ptr() as *mut libc::c_void,
                iov_len: 2,
            },
        ];
        let to = sockaddr::encode("10.77.0.1:53".parse().expect("a"));
        // SAFETY: plain old data; all-zero is a valid msghdr.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = to.as_ptr() as *mut libc::c_void;
        msg.msg_namelen = to.len() as u32;
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = 2;
        let m = read_msghdr(pid, &msg as *const libc::msghdr as u64).expect("read");
        assert_eq!(m.payload, b"GET /x");
        assert_eq!(m.dst, Some("10.77.0.1:53".parse().expect("a")));
        // Over-long vectors are refused, not read.
        msg.msg_iovlen = (MAX_VEC + 1) as usize;
        assert_eq!(
            read_msghdr(pid, &msg as *const libc::msghdr as u64).err(),
            Some(libc::EMSGSIZE)
        );
    }

    #[test]
    fn headered_sends_check_the_mtu() {
        let (engine_end, app_end) = seqpacket::pair().expect("pair");
        let d = dgram(None);
        let to: SocketAddr = "10.77.0.1:53".parse().expect("a");
        send_headered(&app_end, &d, to, b"q").expect("send");
        let mut buf = [0u8; 64];
        let n = seqpacket::recv(engine_end.as_raw_fd(), &mut buf).expect("recv");
        assert_eq!(Header::decode(&buf[..n]), Ok(Header::Datagram(to)));
        assert_eq!(&buf[HEADER_LEN..n], b"q");
        assert_eq!(
            send_headered(&app_end, &d, to, &[0u8; 1421]),
            Err(libc::EMSGSIZE)
        );
    }
}
