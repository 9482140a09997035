//! `connect(2)` and `shutdown(2)`. What a `connect()` means is decided by
//! [`control::connect::classify`], the decision seccomp mode shares, from
//! what the table knows of the fd ([`Socket`]) and the answers of `Ask`
//! (socket type, `DNS =`, routing); one function here carries out each
//! [`Plan`]: a TCP connect to a routed destination swaps in a data socket
//! to the engine (`tunnel`, [`crate::swap`]); a datagram socket connected
//! into the tunnel becomes a carried one (`carry_datagram`, [`dgram`]);
//! `connect()` again on a tunnel stream answers as the kernel would
//! (`connect_again`); anything else is the kernel's. `DNS =` moves TCP to
//! port 53 of a host nameserver to the tunnel's.

use crate::addr;
use crate::dgram;
use crate::engine::{self, config};
use crate::guard::{fail, hook};
use crate::keepalive;
use crate::real;
use crate::redirect;
use crate::route_cache;
use crate::swap::{self, settle};
use crate::sys;
use crate::table::{self, Kind, OutState};
use control::connect::{
    again, classify, returned, Again, Lookup, Plan, RouteFor, SockType, Socket, SocketInfo, Tunnel,
};
use control::{ConnectReply, ConnectRequest, Proto, Reply, Request, RouteDecision};
use libc::{c_int, sockaddr, socklen_t};
use std::net::SocketAddr;

/// What the shim holds for the fd being connected, besides what
/// [`control::connect::classify`] decides on.
struct Held {
    /// The kept kernel TCP socket of a tunnel stream.
    shadow: Option<c_int>,
    /// Epoll registrations to move to a data socket.
    regs: [Option<table::EpollReg>; table::MAX_EPOLL_REGS],
}

impl Held {
    /// Nothing held.
    const NOTHING: Held = Held {
        shadow: None,
        regs: [None; table::MAX_EPOLL_REGS],
    };
}

/// The shim's answers to the classifier's questions about `fd`; socket
/// type and family come from `info_fd` (the shadow of a tunnel stream
/// whose connect failed, else `fd`).
struct Ask {
    fd: c_int,
    info_fd: c_int,
}

impl Lookup for Ask {
    fn socket(&mut self) -> Option<SocketInfo> {
        let ty = sys::getsockopt_int(self.info_fd, libc::SOL_SOCKET, libc::SO_TYPE).ok()?;
        let domain = sys::getsockopt_int(self.info_fd, libc::SOL_SOCKET, libc::SO_DOMAIN).ok()?;
        Some(SocketInfo {
            ty: SockType::from_raw(ty),
            domain,
        })
    }

    fn dns_redirect(&mut self, dst: SocketAddr) -> Option<SocketAddr> {
        crate::resolve::redirect(dst)
    }

    fn effective(&mut self, dst: SocketAddr, ty: SockType) -> Result<SocketAddr, c_int> {
        let proto = match ty {
            SockType::Dgram => Proto::Udp,
            _ => Proto::Tcp,
        };
        Ok(redirect::outbound(dst, proto))
    }

    fn route(&mut self, dst: SocketAddr, why: RouteFor) -> RouteDecision {
        match why {
            // Asked afresh; anything but a clear answer: never let a
            // routed datagram socket leak.
            RouteFor::Udp => match engine::query(&Request::Route {
                dst,
                proto: Proto::Udp,
            }) {
                Ok(Reply::Route(d @ (RouteDecision::Direct | RouteDecision::Tunnel))) => d,
                _ => RouteDecision::Unreachable(libc::ENETUNREACH),
            },
            RouteFor::Echo if route_cache::routed(dst) => RouteDecision::Tunnel,
            RouteFor::Echo => RouteDecision::Direct,
        }
    }

    fn raw_icmp(&mut self) -> bool {
        dgram::kind_of(self.fd) == Some(control::DatagramKind::RawIcmp)
    }
}

/// What the table says about `fd` for a `connect()`, and what it holds.
/// A new socket leaves the table here: from now on it is either ours
/// (a tunnel stream, a carried datagram socket) or the kernel's, and its
/// epoll registrations are no longer watched either way.
fn socket_of(fd: c_int) -> (Socket, Held) {
    let mut held = Held::NOTHING;
    let socket = match table::get(fd) {
        Some(Kind::Listener {
            requested,
            family,
            listening: false,
        }) => Socket::BoundHere { requested, family },
        Some(Kind::Outbound {
            shadow,
            state,
            connect_done,
            ..
        }) => {
            held.shadow = Some(shadow);
            match (connect_done, state) {
                (false, _) => Socket::Connecting,
                (true, OutState::Failed { .. }) => Socket::Failed,
                (true, _) => Socket::Connected,
            }
        }
        Some(Kind::EchoStandIn { refused, regs, .. }) => {
            held.regs = regs;
            Socket::EchoStandIn { refused }
        }
        Some(Kind::Fresh { regs }) => {
            held.regs = regs;
            table::take(fd);
            Socket::Plain
        }
        // Listening, accepted, untracked: by type and destination.
        _ => Socket::Plain,
    };
    (socket, held)
}

/// The `connect()` logic (also the implicit connect of a `MSG_FASTOPEN`
/// send): [`control::connect::classify`] decides, one function here per
/// [`Plan`] carries it out.
///
/// # Safety
/// As for `connect(2)`.
pub(crate) unsafe fn do_connect(fd: c_int, a: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: the application passes a valid (addr, len) to connect.
    let pass = || unsafe { real::connect(fd, a, len) };
    let carried = table::maybe_udp(fd) && dgram::get(fd).is_some();
    let dst = if carried {
        None
    } else {
        // SAFETY: as above.
        unsafe { addr::read(a, len) }
    };
    let (socket, held) = match (carried, dst) {
        (true, _) => (Socket::CarriedDatagram, Held::NOTHING),
        // Not an address of ours: the table is left as it is.
        (false, None) => (Socket::Plain, Held::NOTHING),
        (false, Some(_)) => socket_of(fd),
    };
    let info_fd = match socket {
        Socket::Failed => held.shadow.unwrap_or(fd),
        _ => fd,
    };
    match classify(socket, dst, &mut Ask { fd, info_fd }) {
        Plan::Kernel => pass(),
        Plan::KernelRestored => {
            if let Some(shadow) = held.shadow {
                restore_shadow(fd, shadow);
            }
            pass()
        }
        Plan::Refuse(e) => fail(e),
        // SAFETY: as above.
        Plan::Repeer => unsafe { connect_carried_udp(fd, a, len) },
        Plan::Again => match held.shadow {
            Some(shadow) => connect_again(fd, shadow),
            None => fail(libc::EBADF),
        },
        Plan::CarryDatagram { raw, dst, .. } => carry_datagram(fd, raw, dst, &held.regs),
        Plan::RefuseUncarried { dst } => refuse_uncarried(fd, dst),
        Plan::Tunnel(t) => tunnel(fd, t, &held, pass),
    }
}

/// [`Plan::CarryDatagram`]: the socket becomes a carried datagram socket
/// (UDP, an echo stand-in, a raw ICMP socket) connected to `dst`.
fn carry_datagram(
    fd: c_int,
    raw: SocketAddr,
    dst: SocketAddr,
    regs: &[Option<table::EpollReg>],
) -> c_int {
    match dgram::open(fd, None, Some((raw, dst)), regs) {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

/// [`Plan::RefuseUncarried`]: a raw socket of another protocol than ICMP
/// to a tunnel destination fails with `ENETUNREACH` (one warning);
/// nothing routed reaches the kernel, whose next `send()` would go out by
/// the host's routes.
fn refuse_uncarried(fd: c_int, dst: SocketAddr) -> c_int {
    let proto = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL);
    crate::uncarried::report(dst, proto.map_or(255, |p| p as u8));
    fail(libc::ENETUNREACH)
}

/// [`Plan::Tunnel`]: connects the stream through the engine and swaps the
/// data socket onto `fd` ([`crate::swap`]); a destination the engine does
/// not route goes to the kernel (`pass`), on the program's own socket.
fn tunnel(fd: c_int, t: Tunnel, held: &Held, pass: impl FnOnce() -> c_int) -> c_int {
    let reuse_shadow = if t.retry { held.shadow } else { None };
    let Some(eng) = config().engine.as_ref() else {
        return fail(libc::ENETUNREACH);
    };
    let nonblocking = sys::fcntl(fd, libc::F_GETFL, 0)
        .map(|f| f & libc::O_NONBLOCK != 0)
        .unwrap_or(false);

    let data = match eng.open(true) {
        Ok(d) => d,
        Err(_) => return fail(libc::ENETUNREACH), // fail closed
    };
    let inode = sys::file_id(data).map(|(_, ino)| ino).unwrap_or(0);
    let req = Request::Connect(ConnectRequest {
        dst: t.dst,
        nonblocking,
        fd,
        v6_socket: t.family == libc::AF_INET6,
        inode,
        hand_over: false,
    });
    let reply = engine::send(data, &req).and_then(|()| engine::recv(data));
    let (flow, local) = match reply {
        Ok(Reply::Connect(ConnectReply::Accepted { flow, local })) => (flow, local),
        Ok(Reply::Connect(ConnectReply::NotRouted)) => {
            sys::close(data);
            if let Some((requested, family)) = t.rebind {
                // bind(wildcard) then connect() outside the tunnel: the
                // loopback redirect would make the kernel's connect fail.
                if let Err(e) = rebind_as_requested(fd, requested, family) {
                    return fail(e);
                }
            }
            // Leaving the tunnel path: a socket whose earlier tunnel
            // connect failed gets its original TCP socket back first.
            if let Some(shadow) = reuse_shadow {
                restore_shadow(fd, shadow);
            }
            return pass();
        }
        Ok(Reply::Connect(ConnectReply::Refused(e))) => {
            sys::close(data);
            return fail(e);
        }
        _ => {
            sys::close(data);
            return fail(libc::ENETUNREACH);
        }
    };
    // Keeps POLLOUT off until the engine drains it (see `crate::swap`). A
    // failure here means the engine already gave up; FlowStatus will say why.
    let _ = sys::send_all(data, &[control::FILLER_BYTE; control::FILLER_LEN]);

    let shadow = match swap::swap(fd, data, reuse_shadow, &held.regs) {
        Ok(s) => s,
        Err(e) => {
            sys::close(data);
            return fail(e);
        }
    };
    let old = table::set(
        fd,
        Kind::Outbound {
            flow,
            state: OutState::Connecting,
            shadow,
            family: t.family,
            peer: t.raw,
            local,
            sndbuf: 0,
            end: Default::default(),
            connect_done: false,
        },
    );
    if let Some(Kind::Outbound {
        shadow: old_shadow, ..
    }) = old
    {
        if old_shadow != shadow {
            sys::close(old_shadow);
        }
    }
    keepalive::at_connect(flow, shadow);
    if nonblocking {
        return fail(libc::EINPROGRESS);
    }
    wait_connected(fd, shadow, libc::EINPROGRESS)
}

/// [`Plan::Again`]: `connect()` again on a tunnel socket whose first
/// `connect()` has not returned its outcome, answered as
/// [`control::connect::again`] says (`EALREADY`, a wait if blocking, or
/// the outcome: 0 once, later ones `EISCONN`; a failure's errno, after
/// which a `connect()` starts anew).
fn connect_again(fd: c_int, shadow: c_int) -> c_int {
    let Some(state) = settle(fd) else {
        return fail(libc::EBADF);
    };
    let nonblocking = || {
        sys::fcntl(fd, libc::F_GETFL, 0)
            .map(|f| f & libc::O_NONBLOCK != 0)
            .unwrap_or(false)
    };
    let nonblocking = state == OutState::Connecting && nonblocking();
    match again(state, nonblocking) {
        Again::Already => fail(libc::EALREADY),
        Again::Wait => wait_connected(fd, shadow, libc::EALREADY),
        Again::Settled(state) => outcome_returned(fd, state),
    }
}

/// A blocking `connect()`: waits for the engine's verdict, at most the
/// socket's `SO_SNDTIMEO`, then fails with `timed_out` (`EINPROGRESS` for
/// the first connect, `EALREADY` for a later one; the connect goes on, as
/// in the kernel).
fn wait_connected(fd: c_int, shadow: c_int, timed_out: c_int) -> c_int {
    let timeout = send_timeout_ms(shadow);
    loop {
        match sys::poll1(fd, libc::POLLOUT, timeout) {
            Err(libc::EINTR) => return fail(libc::EINTR), // connect continues, as in the kernel
            Err(e) => return fail(e),
            Ok(0) if timeout >= 0 => return fail(timed_out),
            Ok(_) => match settle(fd) {
                Some(OutState::Connecting) if timeout >= 0 => return fail(timed_out),
                Some(OutState::Connecting) => continue,
                Some(state) => return outcome_returned(fd, state),
                None => return fail(libc::EBADF),
            },
        }
    }
}

/// `connect()` returns a settled outcome ([`control::connect::returned`]).
/// Either way the socket has left the kernel's `SS_CONNECTING`.
fn outcome_returned(fd: c_int, state: OutState) -> c_int {
    let answer = returned(state);
    if let (OutState::Failed { .. }, Some(Kind::Outbound { shadow, .. })) = (state, table::get(fd))
    {
        // The kernel's socket is unconnected again (`SS_UNCONNECTED`,
        // `TCP_CLOSE`): the program's own socket comes back, so poll,
        // getpeername and a new connect see what they would on it.
        restore_shadow(fd, shadow);
        return answer.map_or_else(fail, |()| 0);
    }
    table::update(fd, |k| {
        if let Kind::Outbound {
            state: st,
            connect_done,
            ..
        } = k
        {
            *connect_done = true;
            if let OutState::Failed { reported, .. } = st {
                *reported = true;
            }
        }
    });
    answer.map_or_else(fail, |()| 0)
}

/// The socket's `SO_SNDTIMEO` in milliseconds for `poll`, -1 for none.
fn send_timeout_ms(shadow: c_int) -> i64 {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    let mut len = std::mem::size_of::<libc::timeval>() as socklen_t;
    // SAFETY: `tv` and `len` are valid for the kernel to write.
    let rc = unsafe {
        sys::getsockopt(
            shadow,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&mut tv as *mut libc::timeval).cast(),
            &mut len,
        )
    };
    if rc != 0 || (tv.tv_sec == 0 && tv.tv_usec == 0) {
        return -1;
    }
    (tv.tv_sec.saturating_mul(1000) + (tv.tv_usec + 999) / 1000).max(1)
}

/// `connect()` on a datagram socket we carry: a new default peer (which
/// must be in the tunnel) or, with `AF_UNSPEC`, none.
unsafe fn connect_carried_udp(fd: c_int, a: *const sockaddr, len: socklen_t) -> c_int {
    if a.is_null() || (len as usize) < std::mem::size_of::<libc::sa_family_t>() {
        return fail(libc::EINVAL);
    }
    // SAFETY: at least the family field is readable.
    let fam = c_int::from(unsafe { std::ptr::read_unaligned(a as *const libc::sa_family_t) });
    let to = if fam == libc::AF_UNSPEC {
        None
    } else {
        // SAFETY: the application's (addr, len).
        let Some(raw) = (unsafe { addr::read(a, len) }) else {
            return fail(libc::EAFNOSUPPORT);
        };
        let eff = redirect::outbound(control::normalize(raw), Proto::Udp);
        if addr::is_local(&eff) || !route_cache::routed(eff) {
            // A carried socket talks only to the tunnel.
            return fail(libc::ENETUNREACH);
        }
        Some((raw, eff))
    };
    match dgram::reconnect(fd, to) {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

/// Puts the original TCP socket (`shadow`) back at `fd` and forgets the
/// tunnel state.
fn restore_shadow(fd: c_int, shadow: c_int) {
    let cloexec = match sys::fcntl(fd, libc::F_GETFD, 0) {
        Ok(f) if f & libc::FD_CLOEXEC != 0 => libc::O_CLOEXEC,
        _ => 0,
    };
    let nonblocking = sys::fcntl(fd, libc::F_GETFL, 0).map(|f| f & libc::O_NONBLOCK != 0);
    if sys::dup3(shadow, fd, cloexec).is_ok() {
        if let Ok(nb) = nonblocking {
            let fl = sys::fcntl(fd, libc::F_GETFL, 0).unwrap_or(0);
            let fl = if nb {
                fl | libc::O_NONBLOCK
            } else {
                fl & !libc::O_NONBLOCK
            };
            let _ = sys::fcntl(fd, libc::F_SETFL, libc::c_long::from(fl));
        }
    }
    sys::close(shadow);
    table::take(fd);
}

/// Replaces a socket whose wildcard bind we redirected to loopback by a new
/// one bound as the application asked (same port when possible), carrying
/// the common options over, so it can connect outside the tunnel.
fn rebind_as_requested(fd: c_int, requested: SocketAddr, family: c_int) -> Result<(), c_int> {
    let ty = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)?;
    let fl = sys::fcntl(fd, libc::F_GETFL, 0)?;
    let fdfl = sys::fcntl(fd, libc::F_GETFD, 0)?;
    let port = sys::getsockname(fd)
        .ok()
        .and_then(|(ss, l)| addr::from_storage(&ss, l))
        .map(|a| a.port())
        .unwrap_or(0);
    let new = sys::socket(family, ty | libc::SOCK_CLOEXEC, 0)?;
    let mut opts = vec![
        (libc::SOL_SOCKET, libc::SO_REUSEADDR, false),
        (libc::SOL_SOCKET, libc::SO_REUSEPORT, false),
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE, false),
        (libc::SOL_SOCKET, libc::SO_PRIORITY, false),
        (libc::SOL_SOCKET, libc::SO_RCVBUF, true),
        (libc::SOL_SOCKET, libc::SO_SNDBUF, true),
        (libc::IPPROTO_TCP, libc::TCP_NODELAY, false),
    ];
    if family == libc::AF_INET6 {
        opts.push((libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, false));
        opts.push((libc::IPPROTO_IPV6, libc::IPV6_TCLASS, false));
    } else {
        opts.push((libc::IPPROTO_IP, libc::IP_TOS, false));
    }
    for (level, name, doubled) in opts {
        if let Ok(v) = sys::getsockopt_int(fd, level, name) {
            let _ = sys::setsockopt_int(new, level, name, if doubled { v / 2 } else { v });
        }
    }
    let cloexec = if fdfl & libc::FD_CLOEXEC != 0 {
        libc::O_CLOEXEC
    } else {
        0
    };
    let r = sys::dup3(new, fd, cloexec);
    sys::close(new);
    r?;
    if fl & libc::O_NONBLOCK != 0 {
        let _ = sys::fcntl(fd, libc::F_SETFL, libc::c_long::from(libc::O_NONBLOCK));
    }
    table::take(fd);
    let mut want = requested;
    want.set_port(port);
    let (ss, l) = addr::to_storage(want);
    // SAFETY: `ss` holds a valid address of `l` bytes.
    if unsafe { sys::bind(fd, &ss as *const _ as *const sockaddr, l) }.is_err() {
        want.set_port(requested.port());
        let (ss, l) = addr::to_storage(want);
        // SAFETY: as above.
        unsafe { sys::bind(fd, &ss as *const _ as *const sockaddr, l) }?;
    }
    Ok(())
}

/// Interposed `connect(2)`.
///
/// # Safety
/// As for `connect(2)`.
#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, a: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: forwarded application arguments.
    hook(
        || unsafe { real::connect(fd, a, len) },
        || unsafe { do_connect(fd, a, len) },
        libc::ENETUNREACH,
    )
}

/// Interposed `shutdown(2)`: on a carried datagram socket it only checks
/// the arguments (shutting the data socket would end the flow; a UDP
/// socket keeps receiving after `SHUT_WR`).
///
/// # Safety
/// As for `shutdown(2)`.
#[no_mangle]
pub unsafe extern "C" fn shutdown(fd: c_int, how: c_int) -> c_int {
    // SAFETY: integer arguments.
    let pass = || unsafe { real::shutdown(fd, how) };
    if !table::maybe_udp(fd) {
        return pass();
    }
    hook(
        pass,
        || match dgram::get(fd) {
            Some(_) if !matches!(how, libc::SHUT_RD | libc::SHUT_WR | libc::SHUT_RDWR) => {
                fail(libc::EINVAL)
            }
            Some(st) if st.peer.is_none() => fail(libc::ENOTCONN),
            Some(_) => 0,
            None => pass(),
        },
        libc::EINVAL,
    )
}
