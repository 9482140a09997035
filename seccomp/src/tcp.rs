//! TCP in seccomp mode, mirroring the shim's `connect`, socket options and
//! names (`preload/src/connect.rs`, `preload/src/sockopt.rs`,
//! `preload/src/sockname.rs`; both front-ends decide a `connect()` with
//! `control::connect::classify`): a connect to a tunnel destination gets
//! the engine's data socket installed on the program's fd number
//! (`SECCOMP_IOCTL_NOTIF_ADDFD` + `SETFD`), with the filler protocol of the
//! `control` crate; the calls on that fd that must look like TCP are
//! answered from the [`Table`](super::table::Table).

use super::call::{Call, Outcome};
use super::caller::{self, FileId};
use super::client;
use super::notify::Answer;
use super::sockaddr;
use super::state::{State, Wait};
use super::table::{Ours, OutState, Outbound};
use super::udp;
use control::connect::{
    self, classify, Again, Lookup, Plan, RouteFor, SockType, Socket, SocketInfo, Tunnel,
};
use control::{ConnectReply, ConnectRequest, FlowState, Reply, Request, TcpKeepalive};
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use tracing::debug;

// The descriptor helpers and `put_addr` lived here first; other modules
// may still name them through `tcp`.
pub use super::call::put_addr;
pub use super::fdops::{nonblocking, set_nonblocking, set_sockopt_int, sock_name, sockopt_int};

/// Default `SO_SNDBUF` request restored once a flow is established (as the shim).
const DEFAULT_SNDBUF: i32 = 106_496;

/// Linux's keepalive defaults (tcp(7)): off, 7200 s idle, 75 s between
/// probes, 9 probes.
const KEEPALIVE_DEFAULT: TcpKeepalive = TcpKeepalive {
    enabled: false,
    idle_secs: 7200,
    interval_secs: 75,
    count: 9,
};

/// The keepalive options of the program's kernel socket (our copy), read
/// before the data socket replaces it: options set before `connect()`.
fn keepalive_of(sock: &OwnedFd) -> TcpKeepalive {
    let d = KEEPALIVE_DEFAULT;
    let tcp = |name, default| {
        sockopt_int(sock, libc::IPPROTO_TCP, name)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(default)
    };
    TcpKeepalive {
        enabled: sockopt_int(sock, libc::SOL_SOCKET, libc::SO_KEEPALIVE).is_some_and(|v| v != 0),
        idle_secs: tcp(libc::TCP_KEEPIDLE, d.idle_secs),
        interval_secs: tcp(libc::TCP_KEEPINTVL, d.interval_secs),
        count: tcp(libc::TCP_KEEPCNT, d.count),
    }
}

/// Reads the caller's socket address argument (`addr`, `len`).
fn read_addr(c: &Call, addr: u64, len: u64) -> Option<SocketAddr> {
    let len = usize::try_from(len as u32).ok()?;
    if len > sockaddr::MAX_LEN {
        return None; // the kernel says EINVAL
    }
    sockaddr::decode(&c.read(addr, len).ok()?)
}

/// Puts a fresh kernel TCP socket of `family` at the caller's `fd` (after
/// a failed tunnel connect, or to undo a loopback bind), so a connect the
/// engine does not carry reaches the kernel with a real socket.
fn restore_kernel_socket(c: &Call, fd: u64, family: i32, bind: Option<SocketAddr>) -> bool {
    let Ok(s) = socket2::Socket::new(socket2::Domain::from(family), socket2::Type::STREAM, None)
    else {
        return false;
    };
    if let Some(b) = bind {
        if s.bind(&b.into()).is_err() {
            let mut any = b;
            any.set_port(0);
            let _ = s.bind(&any.into());
        }
    }
    let owned = OwnedFd::from(s);
    let Ok(dst) = i32::try_from(fd) else {
        return false;
    };
    let cloexec = caller::cloexec(c.n.pid, fd);
    c.listener
        .add_fd(c.n.id, owned.as_raw_fd(), Some(dst), cloexec, false)
        .is_ok()
}

/// The supervisor's answers to the classifier's questions about the
/// caller's socket (`sock`, our copy).
struct Ask<'a> {
    sv: &'a mut State,
    sock: &'a OwnedFd,
    /// The family of a tunnel stream whose connect failed (its data
    /// socket is a unix one: the type and family are the program's).
    redo_family: Option<i32>,
}

impl Lookup for Ask<'_> {
    fn socket(&mut self) -> Option<SocketInfo> {
        let (domain, ty) = match self.redo_family {
            Some(f) => (f, libc::SOCK_STREAM),
            None => (
                sockopt_int(self.sock, libc::SOL_SOCKET, libc::SO_DOMAIN)?,
                sockopt_int(self.sock, libc::SOL_SOCKET, libc::SO_TYPE)?,
            ),
        };
        Some(SocketInfo {
            ty: SockType::from_raw(ty),
            domain,
        })
    }

    fn dns_redirect(&mut self, dst: SocketAddr) -> Option<SocketAddr> {
        if dst.port() != 53 {
            return None;
        }
        self.sv.dns_info().and_then(|i| i.redirect(dst))
    }

    fn effective(&mut self, dst: SocketAddr, _ty: SockType) -> Result<SocketAddr, i32> {
        // Port 53 of a host nameserver means the tunnel's DNS server (`DNS =`).
        udp::effective(self.sv, dst)
    }

    fn route(&mut self, dst: SocketAddr, _why: RouteFor) -> control::RouteDecision {
        udp::route(self.sv, dst)
    }

    fn raw_icmp(&mut self) -> bool {
        udp::raw_icmp(self.sock)
    }
}

/// `connect(fd, addr, len)`: [`control::connect::classify`] decides, one
/// function here (or in [`udp`]) per [`Plan`] carries it out. An address
/// that cannot be read goes to the kernel before the table is looked at.
pub fn connect(sv: &mut State, c: &Call) -> Outcome {
    let [_, addr_p, len, ..] = c.n.args;
    let Some(dst_raw) = read_addr(c, addr_p, len) else {
        return Outcome::cont();
    };
    let Ok(sock) = c.fd(0) else {
        return Outcome::cont();
    };
    let Ok(FileId { ino, socket: true }) = caller::file_id(&sock) else {
        return Outcome::cont();
    };
    let entry = sv.table.get(ino);
    let socket = match entry {
        None => Socket::Plain,
        Some(Ours::Udp(_)) => Socket::CarriedDatagram,
        Some(Ours::Outbound(o)) if !o.connect_done => Socket::Connecting,
        Some(Ours::Outbound(o)) => match o.state {
            OutState::Failed { .. } => Socket::Failed,
            _ => Socket::Connected,
        },
        Some(Ours::Listener {
            requested,
            family,
            listening: false,
        }) => Socket::BoundHere { requested, family },
        Some(Ours::Accepted { .. } | Ours::Listener { .. }) => Socket::Left,
        Some(Ours::EchoStandIn { refused, .. }) => Socket::EchoStandIn { refused },
    };
    let redo_family = match (socket, entry) {
        (Socket::Failed, Some(Ours::Outbound(o))) => Some(o.family),
        _ => None,
    };
    let plan = classify(
        socket,
        Some(dst_raw),
        &mut Ask {
            sv,
            sock: &sock,
            redo_family,
        },
    );
    match plan {
        Plan::Kernel => Outcome::cont(),
        Plan::KernelRestored => match redo_family {
            Some(f) => kernel_restored(sv, c, ino, f),
            None => Outcome::cont(),
        },
        Plan::Refuse(e) => Outcome::errno(e),
        Plan::Repeer => match entry {
            Some(Ours::Udp(d)) => udp::reconnect(sv, c, ino, d),
            _ => Outcome::cont(),
        },
        Plan::Again => again(sv, c, ino, sock),
        Plan::CarryDatagram { raw, dst, kind } => {
            udp::carry_connected(sv, c, &sock, raw, dst, kind)
        }
        Plan::RefuseUncarried { dst } => Outcome::errno(udp::refuse_raw(c, &sock, dst)),
        Plan::Tunnel(t) => tunnel(sv, c, ino, &sock, t),
    }
}

/// [`Plan::KernelRestored`]: a tunnel stream whose connect failed gets a
/// kernel socket of its `family` back, which the kernel then connects.
fn kernel_restored(sv: &mut State, c: &Call, ino: u64, family: i32) -> Outcome {
    sv.table.remove(ino);
    if !restore_kernel_socket(c, c.n.args[0], family, None) {
        return Outcome::errno(libc::ENETUNREACH);
    }
    Outcome::cont()
}

/// [`Plan::Again`]: `connect()` again before one returned the outcome
/// (the kernel's `SS_CONNECTING`), answered as
/// [`control::connect::again`] says.
fn again(sv: &mut State, c: &Call, ino: u64, sock: OwnedFd) -> Outcome {
    let Some(st) = settle(sv, ino, &sock, None) else {
        return Outcome::cont();
    };
    let nb = st == OutState::Connecting && nonblocking(&sock);
    match connect::again(st, nb) {
        Again::Already => Outcome::errno(libc::EALREADY),
        Again::Wait => {
            // A blocking connect restarted after a signal: wait again.
            sv.waits.push(Wait::Connect {
                data: sock,
                ino,
                waiter: Some(c.n.id),
            });
            Outcome::Pending
        }
        Again::Settled(st) => Outcome::Answer(outcome_returned(sv, ino, st)),
    }
}

/// [`Plan::Tunnel`]: connects the stream through the engine and installs
/// the data socket on the caller's fd; a destination the engine does not
/// route goes to the kernel, on a kernel socket again if ours was not.
fn tunnel(sv: &mut State, c: &Call, ino: u64, sock: &OwnedFd, t: Tunnel) -> Outcome {
    let fd = c.n.args[0];
    let nb = nonblocking(sock);
    let keepalive = keepalive_of(sock);
    let Ok(mut data) = sv.engine.open(true) else {
        return Outcome::errno(libc::ENETUNREACH); // fail closed
    };
    let data_fd = OwnedFd::from(match data.try_clone() {
        Ok(d) => d,
        Err(_) => return Outcome::errno(libc::ENETUNREACH),
    });
    let data_ino = caller::file_id(&data_fd).map(|f| f.ino).unwrap_or(0);
    let req = Request::Connect(ConnectRequest {
        dst: t.dst,
        nonblocking: nb,
        fd: fd as i32,
        v6_socket: t.family == libc::AF_INET6,
        inode: data_ino,
        hand_over: false,
    });
    let reply = client::send(&mut data, &req).and_then(|()| client::recv(&mut data));
    let (flow, local) = match reply {
        Ok(Reply::Connect(ConnectReply::Accepted { flow, local })) => (flow, local),
        Ok(Reply::Connect(ConnectReply::NotRouted)) => {
            if let Some((requested, family)) = t.rebind {
                // bind(wildcard) then connect() outside the tunnel: undo
                // the loopback redirect, keeping the port when possible.
                let mut want = requested;
                want.set_port(sock_name(sock, false).map(|a| a.port()).unwrap_or(0));
                sv.table.remove(ino);
                if !restore_kernel_socket(c, fd, family, Some(want)) {
                    return Outcome::errno(libc::EADDRNOTAVAIL);
                }
            }
            // Leaving the tunnel path: a socket that is ours gets a kernel
            // socket back.
            if t.retry {
                return kernel_restored(sv, c, ino, t.family);
            }
            return Outcome::cont();
        }
        Ok(Reply::Connect(ConnectReply::Refused(e))) => return Outcome::errno(e),
        _ => return Outcome::errno(libc::ENETUNREACH),
    };
    // Keeps POLLOUT off until the engine drains it (control crate doc). A
    // failure here means the engine gave up already; FlowStatus says why.
    let _ = data.write_all(&[control::FILLER_BYTE; control::FILLER_LEN]);
    let _ = data.set_read_timeout(None);
    if nb {
        set_nonblocking(&data_fd, true);
    }
    let cloexec = caller::cloexec(c.n.pid, fd);
    let Ok(target) = i32::try_from(fd) else {
        return Outcome::errno(libc::EBADF);
    };
    if let Err(e) = c
        .listener
        .add_fd(c.n.id, data_fd.as_raw_fd(), Some(target), cloexec, false)
    {
        debug!(error = %e, "seccomp: cannot install the data socket");
        return Outcome::errno(e.raw_os_error().unwrap_or(libc::EBADF));
    }
    if t.retry || t.rebind.is_some() {
        sv.table.remove(ino);
    }
    sv.table.insert(
        data_ino,
        Ours::Outbound(Outbound {
            flow,
            peer: t.raw,
            local,
            family: t.family,
            state: OutState::Connecting,
            keepalive,
            connect_done: false,
        }),
    );
    if keepalive.enabled {
        let _ = sv.engine.query(&Request::TcpKeepalive { flow, keepalive });
    }
    debug!(pid = c.n.pid, fd, dst = %t.dst, flow, nonblocking = nb, "seccomp: connect through the tunnel");
    drop(data);
    sv.waits.push(Wait::Connect {
        data: data_fd,
        ino: data_ino,
        waiter: (!nb).then_some(c.n.id),
    });
    if nb {
        Outcome::errno(libc::EINPROGRESS)
    } else {
        Outcome::Pending
    }
}

/// Where a connecting data socket stands, without blocking: `POLLOUT`
/// alone means established; `POLLERR`/`POLLHUP` means the engine gave up
/// (or finished) and says why.
fn settle_state(sv: &State, data: &OwnedFd, flow: u64, revents: Option<i16>) -> OutState {
    let rev = revents.unwrap_or_else(|| {
        let mut p = libc::pollfd {
            fd: data.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        unsafe { libc::poll(&mut p, 1, 0) };
        p.revents
    });
    if rev & (libc::POLLERR | libc::POLLHUP) != 0 {
        // Clear the unix socket's ECONNRESET; the real errno comes from the engine.
        let _ = sockopt_int(data, libc::SOL_SOCKET, libc::SO_ERROR);
        let errno = match sv.engine.query(&Request::FlowStatus { flow }) {
            Ok(Reply::FlowStatus(FlowState::Failed(e))) => e,
            Ok(Reply::FlowStatus(FlowState::Established)) => return OutState::Established,
            Ok(_) => libc::ECONNRESET,
            Err(_) => libc::ENETUNREACH,
        };
        OutState::Failed {
            errno,
            reported: false,
        }
    } else if rev & libc::POLLOUT != 0 {
        OutState::Established
    } else {
        OutState::Connecting
    }
}

/// Brings the entry of `ino` (an outbound data socket, `data` our copy)
/// up to date; returns the new state.
fn settle(sv: &mut State, ino: u64, data: &OwnedFd, revents: Option<i16>) -> Option<OutState> {
    let Some(Ours::Outbound(o)) = sv.table.get(ino) else {
        return None;
    };
    if o.state != OutState::Connecting {
        return Some(o.state);
    }
    let new = settle_state(sv, data, o.flow, revents);
    if new == OutState::Established {
        set_sockopt_int(data, libc::SOL_SOCKET, libc::SO_SNDBUF, DEFAULT_SNDBUF);
    }
    sv.table.update(ino, |e| {
        if let Ours::Outbound(o) = e {
            o.state = new;
        }
    });
    Some(new)
}

/// A watched data socket is ready: settle it and answer a blocking
/// `connect`. Returns whether the watch is finished.
pub fn connect_progress(sv: &mut State, i: usize, revents: i16) -> bool {
    let Wait::Connect { data, ino, waiter } = &sv.waits[i] else {
        return true;
    };
    let (ino, waiter) = (*ino, *waiter);
    // SAFETY: F_DUPFD_CLOEXEC on our open descriptor.
    let dup = unsafe { libc::fcntl(data.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return true;
    }
    // SAFETY: a new descriptor we own.
    let data: OwnedFd = unsafe { std::os::fd::FromRawFd::from_raw_fd(dup) };
    match settle(sv, ino, &data, Some(revents)) {
        None => true,
        Some(OutState::Connecting) => false,
        Some(st) => {
            if let Some(id) = waiter {
                let a = outcome_returned(sv, ino, st);
                sv.answer(id, a);
            }
            true
        }
    }
}

/// `connect()` returns a settled outcome ([`control::connect::returned`]).
/// Either way the socket leaves the kernel's `SS_CONNECTING`: a later
/// `connect()` is `EISCONN` or, after a failure, a new attempt.
fn outcome_returned(sv: &mut State, ino: u64, st: OutState) -> Answer {
    sv.table.update(ino, |e| {
        if let Ours::Outbound(o) = e {
            o.connect_done = true;
            if let OutState::Failed { reported, .. } = &mut o.state {
                *reported = true;
            }
        }
    });
    match connect::returned(st) {
        Ok(()) => Answer::Value(0),
        Err(e) => Answer::Errno(e),
    }
}

/// Writes an `int` option value the way the kernel does (`optval`, `optlen`).
fn put_int(c: &Call, val: u64, len: u64, v: i32) -> Outcome {
    let Ok(room) = c.read_u32(len) else {
        return Outcome::errno(libc::EFAULT);
    };
    if (room as i32) < 0 {
        return Outcome::errno(libc::EINVAL);
    }
    let n = (room as usize).min(4);
    if c.write(val, &v.to_ne_bytes()[..n]).is_err()
        || c.write(len, &(n as u32).to_ne_bytes()).is_err()
    {
        return Outcome::errno(libc::EFAULT);
    }
    Outcome::value(0)
}

/// The entry behind argument 0, with our copy of the descriptor.
fn ours(sv: &State, c: &Call) -> Option<(u64, OwnedFd, Ours)> {
    let sock = c.fd(0).ok()?;
    let id = caller::file_id(&sock).ok()?;
    if !id.socket {
        return None;
    }
    sv.table.get(id.ino).map(|o| (id.ino, sock, o))
}

/// `getsockopt(fd, SOL_SOCKET, SO_ERROR|SO_DOMAIN|SO_TYPE|SO_PROTOCOL, …)`
/// (the filter traps nothing else).
pub fn getsockopt(sv: &mut State, c: &Call) -> Outcome {
    let [_, level, name, val, len, _] = c.n.args;
    if let Some((_, _, Ours::EchoStandIn { kind, family, .. })) = ours(sv, c) {
        let (ty, proto) = control::echo::reported(kind, family);
        return match (level as i32, name as i32) {
            (libc::SOL_SOCKET, libc::SO_TYPE) => put_int(c, val, len, ty),
            (libc::SOL_SOCKET, libc::SO_PROTOCOL) => put_int(c, val, len, proto),
            _ => Outcome::cont(),
        };
    }
    if let Some((_, _, Ours::Udp(d))) = ours(sv, c) {
        return match udp::sockopt(d, name as i32) {
            Some(v) if level as i32 == libc::SOL_SOCKET => put_int(c, val, len, v),
            _ => Outcome::cont(),
        };
    }
    let Some((ino, sock, Ours::Outbound(o))) = ours(sv, c) else {
        return Outcome::cont();
    };
    let k = o.keepalive;
    let kept = match (level as i32, name as i32) {
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => Some(i32::from(k.enabled)),
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => i32::try_from(k.idle_secs).ok(),
        (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => i32::try_from(k.interval_secs).ok(),
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => i32::try_from(k.count).ok(),
        _ => None,
    };
    if let Some(v) = kept {
        return put_int(c, val, len, v);
    }
    if level as i32 == libc::IPPROTO_TCP {
        let info = match name as i32 {
            libc::TCP_MAXSEG | libc::TCP_INFO => {
                match sv.engine.query(&Request::TcpInfo { flow: o.flow }) {
                    Ok(Reply::TcpInfo(i)) => i,
                    _ => None,
                }
            }
            _ => None,
        };
        return tcp_level_option(c, o.family, name as i32, info, val, len);
    }
    if level as i32 != libc::SOL_SOCKET {
        return Outcome::cont();
    }
    let v = match name as i32 {
        libc::SO_ERROR => match settle(sv, ino, &sock, None) {
            Some(OutState::Failed {
                errno,
                reported: false,
            }) => {
                sv.table.update(ino, |e| {
                    if let Ours::Outbound(o) = e {
                        o.state = OutState::Failed {
                            errno,
                            reported: true,
                        };
                    }
                });
                errno
            }
            _ => 0,
        },
        libc::SO_DOMAIN => o.family,
        libc::SO_TYPE => libc::SOCK_STREAM,
        libc::SO_PROTOCOL => libc::IPPROTO_TCP,
        _ => return Outcome::cont(),
    };
    put_int(c, val, len, v)
}

/// A TCP-level option (`TCP_INFO`, `TCP_MAXSEG`…) of a data socket, a unix
/// socket underneath: read from a fresh unconnected TCP socket of the
/// program's family, as the shim reads its unconnected shadow socket,
/// with what the engine's TCP knows of the connection (`info`: segment
/// size, state, RTT, windows) written over it.
fn tcp_level_option(
    c: &Call,
    family: i32,
    name: i32,
    info: Option<control::TcpFlowInfo>,
    val: u64,
    len: u64,
) -> Outcome {
    let Ok(room) = c.read_u32(len) else {
        return Outcome::errno(libc::EFAULT);
    };
    if (room as i32) < 0 {
        return Outcome::errno(libc::EINVAL);
    }
    let Ok(s) = socket2::Socket::new(socket2::Domain::from(family), socket2::Type::STREAM, None)
    else {
        return Outcome::errno(libc::ENOBUFS);
    };
    let mut buf = vec![0u8; (room as usize).min(1024)];
    let mut l = buf.len() as libc::socklen_t;
    // SAFETY: `buf`/`l` live across the call and describe `buf`.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            name,
            buf.as_mut_ptr().cast(),
            &mut l,
        )
    };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        return Outcome::errno(e.raw_os_error().unwrap_or(libc::EINVAL));
    }
    let l = (l as usize).min(buf.len());
    if let Some(i) = info {
        match name {
            libc::TCP_MAXSEG => {
                let v = i32::try_from(i.mss).unwrap_or(i32::MAX).to_ne_bytes();
                let n = l.min(v.len());
                buf[..n].copy_from_slice(&v[..n]);
            }
            _ => i.patch_tcp_info(&mut buf[..l]),
        }
    }
    if c.write(val, &buf[..l]).is_err() || c.write(len, &(l as u32).to_ne_bytes()).is_err() {
        return Outcome::errno(libc::EFAULT);
    }
    Outcome::value(0)
}

/// `setsockopt` at TCP/IPv6 level or `SO_KEEPALIVE`: on our data sockets
/// the options have no kernel socket to act on; accepted as a no-op.
pub fn setsockopt(sv: &mut State, c: &Call) -> Outcome {
    match ours(sv, c) {
        Some((ino, _, Ours::Outbound(o))) => {
            let [_, level, name, val, len, _] = c.n.args;
            set_keepalive(sv, c, ino, &o, (level as i32, name as i32), val, len)
                .unwrap_or(Outcome::value(0))
        }
        Some((_, _, Ours::Udp(_))) => Outcome::value(0),
        // A raw stand-in's ICMP filters (`ICMP_FILTER`, `ICMP6_FILTER`):
        // the engine delivers only the socket's echo replies anyway.
        Some((_, _, Ours::EchoStandIn { kind, .. }))
            if kind == control::DatagramKind::RawIcmp
                && matches!(c.n.args[1] as i32, 255 | libc::IPPROTO_ICMPV6) =>
        {
            Outcome::value(0)
        }
        _ => Outcome::cont(),
    }
}

/// A keepalive option set on a tunnel stream (`None` for other options):
/// validated as Linux does, kept in the table, and sent to the engine
/// (`TcpKeepalive`), whose TCP then probes the idle connection and ends
/// it when the probes go unanswered — as the shim forwards them.
fn set_keepalive(
    sv: &mut State,
    c: &Call,
    ino: u64,
    o: &Outbound,
    (level, name): (i32, i32),
    val: u64,
    len: u64,
) -> Option<Outcome> {
    let known = matches!(
        (level, name),
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE)
            | (
                libc::IPPROTO_TCP,
                libc::TCP_KEEPIDLE | libc::TCP_KEEPINTVL | libc::TCP_KEEPCNT
            )
    );
    if !known {
        return None;
    }
    if (len as u32 as usize) < std::mem::size_of::<libc::c_int>() {
        return Some(Outcome::errno(libc::EINVAL));
    }
    let Ok(b) = c.read(val, 4) else {
        return Some(Outcome::errno(libc::EFAULT));
    };
    let v = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
    let mut k = o.keepalive;
    match name {
        libc::SO_KEEPALIVE if level == libc::SOL_SOCKET => k.enabled = v != 0,
        libc::TCP_KEEPIDLE if (1..=32_767).contains(&v) => k.idle_secs = v as u32,
        libc::TCP_KEEPINTVL if (1..=32_767).contains(&v) => k.interval_secs = v as u32,
        libc::TCP_KEEPCNT if (1..=127).contains(&v) => k.count = v as u32,
        _ => return Some(Outcome::errno(libc::EINVAL)),
    }
    sv.table.update(ino, |e| {
        if let Ours::Outbound(o) = e {
            o.keepalive = k;
        }
    });
    if k != o.keepalive && (k.enabled || o.keepalive.enabled) {
        let r = sv.engine.query(&Request::TcpKeepalive {
            flow: o.flow,
            keepalive: k,
        });
        debug!(flow = o.flow, keepalive = ?k, ok = r.is_ok(), "seccomp: keepalive options");
    }
    Some(Outcome::value(0))
}

/// `getpeername` (`peer`) / `getsockname` on our sockets.
pub fn name(sv: &mut State, c: &Call, peer: bool) -> Outcome {
    let [_, addr, len, ..] = c.n.args;
    let Some((ino, sock, o)) = ours(sv, c) else {
        return Outcome::cont();
    };
    let shown = match (o, peer) {
        (Ours::Udp(d), p) => return udp::name(c, d, p),
        (Ours::Outbound(o), true) => match settle(sv, ino, &sock, None) {
            Some(OutState::Established) => o.peer,
            _ => return Outcome::errno(libc::ENOTCONN),
        },
        (Ours::Outbound(o), false) => sockaddr::in_family(o.local, o.family),
        (
            Ours::Accepted {
                peer: p, family, ..
            },
            true,
        ) => sockaddr::in_family(p, family),
        (Ours::Accepted { local, family, .. }, false) => sockaddr::in_family(local, family),
        (Ours::Listener { requested, .. }, false) => {
            let Some(real) = sock_name(&sock, false) else {
                return Outcome::cont();
            };
            let mut shown = requested;
            shown.set_port(real.port());
            shown
        }
        (Ours::Listener { .. }, true) => return Outcome::cont(),
        (Ours::EchoStandIn { .. }, _) => return Outcome::cont(),
    };
    put_addr(c, addr, len, shown)
}
