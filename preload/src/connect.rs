//! `connect(2)` and `shutdown(2)`. A TCP connect to a routed destination
//! swaps in a data socket to the engine ([`crate::swap`]); a datagram
//! socket connected into the tunnel becomes a carried one ([`dgram`]);
//! anything else is the kernel's. `DNS =` moves TCP to port 53 of a host
//! nameserver to the tunnel's.

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
use control::{ConnectReply, ConnectRequest, Proto, Reply, Request, RouteDecision};
use libc::{c_int, sockaddr, socklen_t};
use std::net::SocketAddr;

/// The `connect()` logic (also the implicit connect of a `MSG_FASTOPEN`
/// send).
///
/// # Safety
/// As for `connect(2)`.
pub(crate) unsafe fn do_connect(fd: c_int, a: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: the application passes a valid (addr, len) to connect.
    let pass = || unsafe { real::connect(fd, a, len) };
    if table::maybe_udp(fd) && dgram::get(fd).is_some() {
        // SAFETY: as above.
        return unsafe { connect_carried_udp(fd, a, len) };
    }
    // SAFETY: as above.
    let Some(dst_raw) = (unsafe { addr::read(a, len) }) else {
        return pass();
    };

    // Where to read the socket's type/domain: the fd itself, or the shadow
    // of an already swapped socket whose tunnel connect failed (retry).
    let mut reuse_shadow = None;
    let mut regs = [None; table::MAX_EPOLL_REGS];
    let mut bound_here = None;
    match table::get(fd) {
        Some(Kind::Listener {
            requested,
            family,
            listening: false,
        }) => bound_here = Some((requested, family)),
        Some(Kind::Outbound {
            shadow,
            connect_done: false,
            ..
        }) => return connect_again(fd, shadow),
        Some(Kind::Outbound {
            state,
            shadow,
            connect_done: true,
            ..
        }) => match state {
            OutState::Failed { .. } => reuse_shadow = Some(shadow),
            _ => return fail(libc::EISCONN),
        },
        Some(Kind::EchoStandIn { refused, regs, .. }) => {
            // An ICMP socket the host refused: the tunnel, or its errno.
            let dst = control::normalize(dst_raw);
            if addr::is_local(&dst) || !route_cache::routed(dst) {
                return fail(refused);
            }
            return match dgram::open(fd, None, Some((dst_raw, dst)), &regs) {
                Ok(()) => 0,
                Err(e) => fail(e),
            };
        }
        Some(Kind::Fresh { regs: r }) => {
            regs = r;
            // From here on the socket is either ours (Outbound) or the
            // kernel's: stop watching its epoll registrations either way.
            table::take(fd);
        }
        _ => {}
    }
    let info_fd = reuse_shadow.unwrap_or(fd);
    let (Ok(ty), Ok(domain)) = (
        sys::getsockopt_int(info_fd, libc::SOL_SOCKET, libc::SO_TYPE),
        sys::getsockopt_int(info_fd, libc::SOL_SOCKET, libc::SO_DOMAIN),
    ) else {
        return pass();
    };
    // `DNS =`: TCP to port 53 of a host nameserver goes to the tunnel's.
    let dst_raw = match crate::resolve::redirect(dst_raw) {
        Some(to) if ty == libc::SOCK_STREAM => match (domain, to) {
            (libc::AF_INET6, _) => addr::in_family(to, domain),
            (libc::AF_INET, SocketAddr::V4(_)) => to,
            _ => return fail(libc::ENETUNREACH), // never to the host's resolver
        },
        _ => dst_raw,
    };
    // Leaving the tunnel path: a socket whose earlier tunnel connect failed
    // gets its original TCP socket back first, so the kernel connects it.
    let direct = || {
        if let Some(shadow) = reuse_shadow {
            restore_shadow(fd, shadow);
        }
        pass()
    };
    let family_ok = matches!(
        (domain, dst_raw),
        (libc::AF_INET, SocketAddr::V4(_)) | (libc::AF_INET6, SocketAddr::V6(_))
    );
    let proto = if ty == libc::SOCK_DGRAM {
        Proto::Udp
    } else {
        Proto::Tcp
    };
    let dst = redirect::outbound(control::normalize(dst_raw), proto);
    if !family_ok || addr::is_local(&dst) {
        return direct();
    }

    if ty == libc::SOCK_DGRAM {
        return match engine::query(&Request::Route {
            dst,
            proto: Proto::Udp,
        }) {
            Ok(Reply::Route(RouteDecision::Direct)) => direct(),
            Ok(Reply::Route(RouteDecision::Tunnel)) => {
                match dgram::open(fd, None, Some((dst_raw, dst)), &regs) {
                    Ok(()) => 0,
                    Err(e) => fail(e),
                }
            }
            // Never let a routed datagram socket leak.
            _ => fail(libc::ENETUNREACH),
        };
    }
    if ty == libc::SOCK_RAW {
        return connect_raw(fd, dst_raw, pass);
    }
    if ty != libc::SOCK_STREAM {
        return pass();
    }
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
        dst,
        nonblocking,
        fd,
        v6_socket: domain == libc::AF_INET6,
        inode,
        hand_over: false,
    });
    let reply = engine::send(data, &req).and_then(|()| engine::recv(data));
    let (flow, local) = match reply {
        Ok(Reply::Connect(ConnectReply::Accepted { flow, local })) => (flow, local),
        Ok(Reply::Connect(ConnectReply::NotRouted)) => {
            sys::close(data);
            if let Some((requested, family)) = bound_here {
                // bind(wildcard) then connect() outside the tunnel: the
                // loopback redirect would make the kernel's connect fail.
                if let Err(e) = rebind_as_requested(fd, requested, family) {
                    return fail(e);
                }
            }
            return direct();
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
    // Keeps POLLOUT off until the engine drains it (see the crate doc). A
    // failure here means the engine already gave up; FlowStatus will say why.
    let _ = sys::send_all(data, &[control::FILLER_BYTE; control::FILLER_LEN]);

    let shadow = match swap::swap(fd, data, reuse_shadow, &regs) {
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
            family: domain,
            peer: dst_raw,
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

/// `connect()` again on a tunnel socket whose first `connect()` has not
/// returned its outcome (non-blocking, or interrupted), as the kernel
/// answers it: still handshaking, `EALREADY` (or wait, if blocking);
/// established, 0 (once: later ones are `EISCONN`); failed, the error
/// (`ECONNABORTED` if `SO_ERROR` already said it), after which a
/// `connect()` starts anew. This is how Perl's `IO::Socket`, Ruby's
/// `Net::HTTP` and hiredis learn that a non-blocking connect finished.
fn connect_again(fd: c_int, shadow: c_int) -> c_int {
    match settle(fd) {
        Some(OutState::Connecting) => {
            let nonblocking = sys::fcntl(fd, libc::F_GETFL, 0)
                .map(|f| f & libc::O_NONBLOCK != 0)
                .unwrap_or(false);
            if nonblocking {
                fail(libc::EALREADY)
            } else {
                wait_connected(fd, shadow, libc::EALREADY)
            }
        }
        Some(state) => outcome_returned(fd, state),
        None => fail(libc::EBADF),
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

/// `connect()` returns a settled outcome: 0 for an established socket, the
/// error for a failed one (`ECONNABORTED` when `SO_ERROR` took it first,
/// as the kernel's `sock_error() ?: -ECONNABORTED`). Either way the socket
/// has left the kernel's `SS_CONNECTING`.
fn outcome_returned(fd: c_int, state: OutState) -> c_int {
    if let (OutState::Failed { .. }, Some(Kind::Outbound { shadow, .. })) = (state, table::get(fd))
    {
        // The kernel's socket is unconnected again (`SS_UNCONNECTED`,
        // `TCP_CLOSE`): the program's own socket comes back, so poll,
        // getpeername and a new connect see what they would on it.
        let r = match state {
            OutState::Failed {
                reported: false,
                errno,
            } => errno,
            _ => libc::ECONNABORTED,
        };
        restore_shadow(fd, shadow);
        return fail(r);
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
    match state {
        OutState::Established => 0,
        OutState::Failed {
            reported: false,
            errno,
        } => fail(errno),
        OutState::Failed { reported: true, .. } => fail(libc::ECONNABORTED),
        OutState::Connecting => fail(libc::EALREADY),
    }
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

/// `connect()` of a raw socket (`traceroute -I` connects its ICMP one):
/// to a tunnel destination a raw ICMP socket becomes a carried echo
/// socket, any other protocol fails with `ENETUNREACH` (one warning);
/// nothing routed reaches the kernel, whose next `send()` would go out by
/// the host's routes.
fn connect_raw(fd: c_int, dst_raw: SocketAddr, pass: impl FnOnce() -> c_int) -> c_int {
    let dst = control::normalize(dst_raw);
    if !route_cache::routed(dst) {
        return pass();
    }
    if dgram::kind_of(fd) == Some(control::DatagramKind::RawIcmp) {
        return match dgram::open(fd, None, Some((dst_raw, dst)), &[]) {
            Ok(()) => 0,
            Err(e) => fail(e),
        };
    }
    let proto = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL);
    crate::uncarried::report(dst, proto.map_or(255, |p| p as u8));
    fail(libc::ENETUNREACH)
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
