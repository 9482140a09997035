//! The interposed socket API. Each exported symbol is a thin `extern "C"`
//! shell around [`hook`], which handles re-entrancy, unwinding and errno;
//! the logic lives in the `do_*` functions.

use crate::addr;
use crate::dgram;
use crate::engine::{self, config};
use crate::keepalive;
use crate::real;
use crate::redirect;
use crate::stream_end;
use crate::sys::{self, errno, set_errno};
use crate::table::{self, Kind, OutState, Quick};
use crate::udp::{self, SendPlan};
use control::{ConnectReply, ConnectRequest, FlowState, Proto, Reply, Request, RouteDecision};
use libc::{c_int, c_void, sockaddr, socklen_t};
use std::cell::Cell;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as inside the shim; `None` if it already is (a hook
/// reached from inside another hook goes straight to libc).
struct Guard;

impl Guard {
    fn enter() -> Option<Guard> {
        IN_HOOK
            .try_with(|f| {
                if f.get() {
                    None
                } else {
                    f.set(true);
                    Some(Guard)
                }
            })
            .ok()
            .flatten()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = IN_HOOK.try_with(|f| f.set(false));
    }
}

/// Return types of hooked functions: `-1` means failure with errno.
pub(crate) trait Ret: Copy {
    /// Whether this value is a success.
    fn ok(self) -> bool;
    /// The failure value.
    fn failure() -> Self;
}

impl Ret for c_int {
    fn ok(self) -> bool {
        self >= 0
    }
    fn failure() -> Self {
        -1
    }
}

impl Ret for isize {
    fn ok(self) -> bool {
        self >= 0
    }
    fn failure() -> Self {
        -1
    }
}

/// Runs `body` for an active, non-re-entrant call, else `pass`. A panic
/// never crosses into C: it becomes `-1` with errno `on_panic`. On success
/// the caller's errno is restored, as libc leaves it untouched.
pub(crate) fn hook<R: Ret>(
    pass: impl FnOnce() -> R,
    body: impl FnOnce() -> R,
    on_panic: c_int,
) -> R {
    if !config().active {
        return pass();
    }
    let Some(_guard) = Guard::enter() else {
        return pass();
    };
    let saved = errno();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) if r.ok() => {
            set_errno(saved);
            r
        }
        Ok(r) => r,
        Err(_) => {
            set_errno(on_panic);
            R::failure()
        }
    }
}

fn fail(e: c_int) -> c_int {
    set_errno(e);
    -1
}

/// Default `SO_SNDBUF` request restored once a flow is established (the
/// kernel doubles it to the usual unix-socket default of 208 KiB).
const DEFAULT_SNDBUF: c_int = 106_496;

// ---------------------------------------------------------------- connect

unsafe fn do_connect(fd: c_int, a: *const sockaddr, len: socklen_t) -> c_int {
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
        Some(Kind::Outbound { state, shadow, .. }) => match state {
            OutState::Connecting => return fail(libc::EALREADY),
            OutState::Established => return fail(libc::EISCONN),
            OutState::Failed { .. } => reuse_shadow = Some(shadow),
        },
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

    let shadow = match swap(fd, data, reuse_shadow, &regs) {
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
    loop {
        match sys::poll1(fd, libc::POLLOUT, -1) {
            Err(libc::EINTR) => return fail(libc::EINTR), // connect continues, as in the kernel
            Err(e) => return fail(e),
            Ok(_) => match settle(fd) {
                Some(OutState::Established) => return 0,
                Some(OutState::Failed { errno, .. }) => {
                    table::update(fd, |k| {
                        set_state(
                            k,
                            OutState::Failed {
                                errno,
                                reported: true,
                            },
                        )
                    });
                    return fail(errno);
                }
                Some(OutState::Connecting) => continue,
                None => return fail(libc::EBADF),
            },
        }
    }
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
        if addr::is_local(&eff) || !udp::routed(eff) {
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

/// Puts the data socket `data` at the application's `fd`, keeping the fd's
/// CLOEXEC and O_NONBLOCK flags and moving its epoll registrations (made
/// before connect) onto the data socket; returns the shadow fd that keeps
/// the original TCP socket alive.
pub(crate) fn swap(
    fd: c_int,
    data: c_int,
    reuse_shadow: Option<c_int>,
    regs: &[Option<table::EpollReg>],
) -> Result<c_int, c_int> {
    let fl = sys::fcntl(fd, libc::F_GETFL, 0)?;
    let fdfl = sys::fcntl(fd, libc::F_GETFD, 0)?;
    let shadow = match reuse_shadow {
        Some(s) => s,
        None => sys::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0)?,
    };
    let flags = if fdfl & libc::FD_CLOEXEC != 0 {
        libc::O_CLOEXEC
    } else {
        0
    };
    // Registrations are keyed by (file, fd): remove them while `fd` still
    // names the TCP socket, re-add them once it names the data socket.
    for r in regs.iter().flatten() {
        let _ = sys::epoll_ctl(r.epfd, libc::EPOLL_CTL_DEL, fd, (0, 0));
    }
    if let Err(e) = sys::dup3(data, fd, flags) {
        if reuse_shadow.is_none() {
            sys::close(shadow);
        }
        return Err(e);
    }
    sys::close(data);
    for r in regs.iter().flatten() {
        let _ = sys::epoll_ctl(r.epfd, libc::EPOLL_CTL_ADD, fd, (r.events, r.data));
    }
    if fl & libc::O_NONBLOCK != 0 {
        let _ = sys::fcntl(fd, libc::F_SETFL, libc::c_long::from(libc::O_NONBLOCK));
    }
    Ok(shadow)
}

fn set_state(k: &mut Kind, new: OutState) {
    if let Kind::Outbound { state, .. } = k {
        *state = new;
    }
}

/// Brings the state of an outbound fd up to date without blocking:
/// `POLLOUT` alone means established; `POLLERR`/`POLLHUP` means the engine
/// gave up (or finished), and the engine says which and why.
pub(crate) fn settle(fd: c_int) -> Option<OutState> {
    let Some(Kind::Outbound {
        state,
        flow,
        sndbuf,
        ..
    }) = table::get(fd)
    else {
        return None;
    };
    if state != OutState::Connecting {
        return Some(state);
    }
    let rev = sys::poll1(fd, libc::POLLOUT, 0).unwrap_or(0);
    let new = if rev & (libc::POLLERR | libc::POLLHUP) != 0 {
        // Clear the unix socket's ECONNRESET; the real errno comes from the engine.
        let _ = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR);
        match engine::query(&Request::FlowStatus { flow }) {
            Ok(Reply::FlowStatus(FlowState::Failed(e))) => OutState::Failed {
                errno: e,
                reported: false,
            },
            Ok(Reply::FlowStatus(FlowState::Established)) => OutState::Established,
            Ok(_) => OutState::Failed {
                errno: libc::ECONNRESET,
                reported: false,
            },
            Err(_) => OutState::Failed {
                errno: libc::ENETUNREACH,
                reported: false,
            },
        }
    } else if rev & libc::POLLOUT != 0 {
        OutState::Established
    } else {
        OutState::Connecting
    };
    if new == OutState::Established {
        let want = if sndbuf > 0 { sndbuf } else { DEFAULT_SNDBUF };
        let _ = sys::setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, want);
    }
    table::update(fd, |k| set_state(k, new));
    Some(new)
}

// ------------------------------------------------------- after exec

/// Reads an `int` option value the kernel just stored.
///
/// # Safety
/// `val`/`len` as after a successful `getsockopt`.
unsafe fn read_int(val: *const c_void, len: *const socklen_t) -> Option<c_int> {
    if val.is_null() || len.is_null() {
        return None;
    }
    // SAFETY: non-null, valid per the caller.
    if (unsafe { *len } as usize) < std::mem::size_of::<c_int>() {
        return None;
    }
    // SAFETY: at least an int is readable.
    Some(unsafe { std::ptr::read_unaligned(val as *const c_int) })
}

/// Whether a name call just returned an AF_UNIX address.
///
/// # Safety
/// `a`/`len` as after a successful `getsockname`/`getpeername`.
unsafe fn is_unix_result(a: *const sockaddr, len: *const socklen_t) -> bool {
    if a.is_null() || len.is_null() {
        return false;
    }
    // SAFETY: non-null, valid per the caller.
    if (unsafe { *len } as usize) < std::mem::size_of::<libc::sa_family_t>() {
        return false;
    }
    // SAFETY: the family field is readable.
    c_int::from(unsafe { std::ptr::read_unaligned(a as *const libc::sa_family_t) }) == libc::AF_UNIX
}

/// Takes over an untracked fd that is one of our data sockets (its peer is
/// the engine's control socket): a tunnel socket inherited across `exec`,
/// whose state the previous image's shim held in memory. The engine knows
/// the flow by the inode of our end. Returns whether the fd is now tracked;
/// errno is left as it was.
fn adopted(fd: c_int) -> bool {
    let saved = errno();
    let done = adopt(fd).is_some();
    set_errno(saved);
    done
}

fn adopt(fd: c_int) -> Option<()> {
    let eng = config().engine.as_ref()?;
    let (ss, len) = sys::getpeername(fd).ok()?;
    if !eng.is_control_address(&ss, len) {
        return None;
    }
    let (_, inode) = sys::file_id(fd)?;
    let Ok(Reply::Adopt(Some(info))) = engine::query(&Request::Adopt { inode }) else {
        return None;
    };
    let family = if info.v6_socket {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    let shadow = sys::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0).ok()?;
    let state = match info.state {
        FlowState::Established => OutState::Established,
        FlowState::Connecting => OutState::Connecting,
        FlowState::Failed(e) => OutState::Failed {
            errno: e,
            reported: false,
        },
        FlowState::Unknown => OutState::Failed {
            errno: libc::ECONNRESET,
            reported: true,
        },
    };
    table::set(
        fd,
        Kind::Outbound {
            flow: info.flow,
            state,
            shadow,
            family,
            peer: addr::in_family(info.peer, family),
            local: info.local,
            sndbuf: 0,
            end: Default::default(),
        },
    );
    match table::get(fd) {
        Some(Kind::Outbound { .. }) => Some(()),
        _ => {
            sys::close(shadow);
            None
        }
    }
}

// ------------------------------------------------------- socket options

/// Stores an `int` option value the way the kernel does.
unsafe fn put_int(val: *mut c_void, len: *mut socklen_t, v: c_int) -> c_int {
    if val.is_null() || len.is_null() {
        return fail(libc::EFAULT);
    }
    // SAFETY: non-null, and valid per the getsockopt contract.
    let room = unsafe { *len } as i32;
    if room < 0 {
        return fail(libc::EINVAL);
    }
    let n = (room as usize).min(std::mem::size_of::<c_int>());
    // SAFETY: `n` bytes fit in the caller's buffer.
    unsafe {
        std::ptr::copy_nonoverlapping(&v as *const c_int as *const u8, val as *mut u8, n);
        *len = n as socklen_t;
    }
    0
}

/// SOL_SOCKET options that act on the data path itself (the unix socket).
fn on_data_socket(name: c_int) -> bool {
    matches!(
        name,
        libc::SO_RCVTIMEO
            | libc::SO_SNDTIMEO
            | 66 // SO_RCVTIMEO_NEW
            | 67 // SO_SNDTIMEO_NEW
            | libc::SO_RCVLOWAT
            | libc::SO_SNDLOWAT
            | libc::SO_LINGER
            | libc::SO_TYPE
    )
}

unsafe fn do_getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    // SAFETY: forwarded application arguments.
    let pass = |target: c_int| unsafe { real::getsockopt(target, level, name, val, len) };
    if let Some(Kind::Udp { shadow, family, .. }) = table::get(fd) {
        if level != libc::SOL_SOCKET {
            return pass(shadow);
        }
        let v = match name {
            libc::SO_ERROR => dgram::take_error(fd),
            libc::SO_TYPE => libc::SOCK_DGRAM,
            libc::SO_DOMAIN => family,
            libc::SO_PROTOCOL => libc::IPPROTO_UDP,
            libc::SO_ACCEPTCONN => 0,
            n if on_data_socket(n) || n == libc::SO_RCVBUF || n == libc::SO_SNDBUF => {
                return pass(fd)
            }
            _ => return pass(shadow),
        };
        // SAFETY: application buffer, checked in put_int.
        return unsafe { put_int(val, len, v) };
    }
    let Some(Kind::Outbound { shadow, family, .. }) = table::get(fd) else {
        let r = pass(fd);
        // An inherited tunnel socket (after exec) answers as AF_UNIX: adopt it.
        let suspicious = if level == libc::SOL_SOCKET {
            // SAFETY: after a successful getsockopt, `val` holds `*len` bytes.
            r == 0
                && name == libc::SO_DOMAIN
                && unsafe { read_int(val, len) } == Some(libc::AF_UNIX)
        } else {
            r != 0
        };
        if suspicious && adopted(fd) {
            // SAFETY: same arguments; the fd is tracked now.
            return unsafe { do_getsockopt(fd, level, name, val, len) };
        }
        return r;
    };
    if level != libc::SOL_SOCKET {
        return pass(shadow);
    }
    match name {
        libc::SO_ERROR => {
            let v = match settle(fd) {
                Some(OutState::Failed {
                    errno,
                    reported: false,
                }) => {
                    table::update(fd, |k| {
                        set_state(
                            k,
                            OutState::Failed {
                                errno,
                                reported: true,
                            },
                        )
                    });
                    errno
                }
                Some(OutState::Established) => match stream_end::so_error(fd) {
                    Some(e) => e,
                    None => return pass(fd),
                },
                _ => 0,
            };
            // SAFETY: application buffer, checked in put_int.
            unsafe { put_int(val, len, v) }
        }
        // SAFETY: application buffer, checked in put_int.
        libc::SO_DOMAIN => unsafe { put_int(val, len, family) },
        // SAFETY: as above.
        libc::SO_PROTOCOL => unsafe { put_int(val, len, libc::IPPROTO_TCP) },
        // SAFETY: as above.
        libc::SO_ACCEPTCONN => unsafe { put_int(val, len, 0) },
        n if on_data_socket(n) => pass(fd),
        _ => pass(shadow),
    }
}

unsafe fn do_setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: socklen_t,
) -> c_int {
    // SAFETY: forwarded application arguments.
    let pass = |target: c_int| unsafe { real::setsockopt(target, level, name, val, len) };
    if let Some(Kind::Udp { shadow, .. }) = table::get(fd) {
        if level != libc::SOL_SOCKET {
            return pass(shadow);
        }
        return match name {
            n if on_data_socket(n) => pass(fd),
            libc::SO_SNDBUF | libc::SO_SNDBUFFORCE | libc::SO_RCVBUF | libc::SO_RCVBUFFORCE => {
                let r = pass(shadow);
                if r == 0 {
                    let _ = pass(fd);
                }
                r
            }
            _ => pass(shadow),
        };
    }
    let Some(Kind::Outbound {
        shadow,
        state,
        flow,
        ..
    }) = table::get(fd)
    else {
        let r = pass(fd);
        if r != 0 && level != libc::SOL_SOCKET && adopted(fd) {
            // SAFETY: same arguments; the fd is tracked now.
            return unsafe { do_setsockopt(fd, level, name, val, len) };
        }
        return r;
    };
    if keepalive::is_keepalive_option(level, name) {
        let r = pass(shadow);
        if r == 0 {
            keepalive::forward(flow, shadow);
        }
        return r;
    }
    if level != libc::SOL_SOCKET {
        return pass(shadow);
    }
    match name {
        n if on_data_socket(n) => pass(fd),
        libc::SO_SNDBUF | libc::SO_SNDBUFFORCE => {
            let r = pass(shadow);
            if r == 0 {
                if state == OutState::Established {
                    let _ = pass(fd);
                } else if !val.is_null() && len as usize >= std::mem::size_of::<c_int>() {
                    // SAFETY: checked non-null and long enough.
                    let v = unsafe { std::ptr::read_unaligned(val as *const c_int) };
                    table::update(fd, |k| {
                        if let Kind::Outbound { sndbuf, .. } = k {
                            *sndbuf = v.max(1);
                        }
                    });
                }
            }
            r
        }
        libc::SO_RCVBUF | libc::SO_RCVBUFFORCE => {
            let r = pass(shadow);
            if r == 0 {
                let _ = pass(fd);
            }
            r
        }
        _ => pass(shadow),
    }
}

// --------------------------------------------------------------- names

unsafe fn do_getsockname(fd: c_int, a: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: forwarded application arguments.
    let pass = || unsafe { real::getsockname(fd, a, len) };
    let shown = match table::get(fd) {
        Some(Kind::Outbound { local, family, .. }) => addr::in_family(local, family),
        Some(Kind::Accepted { local, family, .. }) => addr::in_family(local, family),
        Some(Kind::Udp { local, family, .. }) => addr::in_family(local, family),
        Some(Kind::Listener { requested, .. }) => {
            let Ok((ss, l)) = sys::getsockname(fd) else {
                return pass();
            };
            let Some(real_addr) = addr::from_storage(&ss, l) else {
                return pass();
            };
            let mut shown = requested;
            shown.set_port(real_addr.port());
            shown
        }
        _ => {
            let r = pass();
            // SAFETY: after success the kernel filled `a`/`len`.
            if r == 0 && unsafe { is_unix_result(a, len) } && adopted(fd) {
                // SAFETY: same arguments; the fd is tracked now.
                return unsafe { do_getsockname(fd, a, len) };
            }
            return r;
        }
    };
    // SAFETY: application out-parameters, checked in write_out.
    match unsafe { addr::write_out(shown, a, len) } {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

unsafe fn do_getpeername(fd: c_int, a: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: forwarded application arguments.
    let pass = || unsafe { real::getpeername(fd, a, len) };
    let shown = match table::get(fd) {
        Some(Kind::Outbound { peer, .. }) => match settle(fd) {
            Some(OutState::Established) => peer,
            _ => return fail(libc::ENOTCONN),
        },
        Some(Kind::Accepted { peer, family, .. }) => addr::in_family(peer, family),
        Some(Kind::Udp { peer, .. }) => match peer {
            Some(p) => p,
            None => return fail(libc::ENOTCONN),
        },
        _ => {
            let r = pass();
            // SAFETY: after success the kernel filled `a`/`len`.
            if r == 0 && unsafe { is_unix_result(a, len) } && adopted(fd) {
                // SAFETY: same arguments; the fd is tracked now.
                return unsafe { do_getpeername(fd, a, len) };
            }
            return r;
        }
    };
    // SAFETY: application out-parameters, checked in write_out.
    match unsafe { addr::write_out(shown, a, len) } {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

// ------------------------------------------------------------ listening

unsafe fn do_bind(fd: c_int, a: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: forwarded application arguments.
    let pass = || unsafe { real::bind(fd, a, len) };
    // SAFETY: as above.
    let Some(requested) = (unsafe { addr::read(a, len) }) else {
        return pass();
    };
    let (Ok(ty), Ok(domain)) = (
        sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE),
        sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN),
    ) else {
        return pass();
    };
    if !matches!(domain, libc::AF_INET | libc::AF_INET6) {
        return pass();
    }
    let norm = control::normalize(requested);
    if ty == libc::SOCK_DGRAM {
        // SAFETY: forwarded application arguments.
        return unsafe { bind_udp(fd, norm, pass) };
    }
    if ty != libc::SOCK_STREAM {
        return pass();
    }
    if norm.ip().is_loopback() || norm.ip().is_multicast() {
        return pass();
    }
    // A wildcard never opens on the host's interfaces, engine or not.
    let redirect = norm.ip().is_unspecified()
        || matches!(
            engine::query(&Request::Bind { addr: norm }),
            Ok(Reply::Bind { redirect: true })
        );
    if !redirect {
        return pass();
    }
    let (ss, sl) = addr::to_storage(addr::loopback_like(&requested));
    // SAFETY: `ss` holds a valid address of `sl` bytes.
    let r = unsafe { real::bind(fd, &ss as *const _ as *const sockaddr, sl) };
    if r == 0 {
        if let Some(old) = table::set(
            fd,
            Kind::Listener {
                requested,
                family: domain,
                listening: false,
            },
        ) {
            table::release(&old);
        }
    }
    r
}

/// `bind()` of a datagram socket: a fixed port on a wildcard, or any port
/// on one of our tunnel addresses, makes it a tunnel socket at once (a
/// server); anything else (port 0 on a wildcard, loopback, host
/// addresses) stays the kernel's.
unsafe fn bind_udp(fd: c_int, norm: SocketAddr, pass: impl FnOnce() -> c_int) -> c_int {
    let regs = match table::get(fd) {
        Some(Kind::Udp { .. }) => return fail(libc::EINVAL), // already bound
        Some(Kind::Fresh { regs }) => regs,
        _ => [None; table::MAX_EPOLL_REGS],
    };
    let ip = norm.ip();
    if ip.is_loopback() || ip.is_multicast() || (ip.is_unspecified() && norm.port() == 0) {
        return pass();
    }
    let carry = ip.is_unspecified()
        || matches!(
            engine::query(&Request::Bind { addr: norm }),
            Ok(Reply::Bind { redirect: true })
        );
    if !carry {
        return pass();
    }
    match dgram::open(fd, Some(norm), None, &regs) {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

fn do_listen(fd: c_int, backlog: c_int) -> c_int {
    // SAFETY: integer arguments.
    let r = unsafe { real::listen(fd, backlog) };
    if r != 0 {
        return r;
    }
    if let Some(Kind::Listener { mut requested, .. }) = table::get(fd) {
        if let Some(loopback) = sys::getsockname(fd)
            .ok()
            .and_then(|(ss, l)| addr::from_storage(&ss, l))
        {
            requested.set_port(loopback.port());
            table::update(fd, |k| {
                if let Kind::Listener {
                    requested: r,
                    listening,
                    ..
                } = k
                {
                    *listening = true;
                    r.set_port(loopback.port());
                }
            });
            let _ = engine::query(&Request::Listen {
                requested: control::normalize(requested),
                loopback,
            });
        }
    }
    0
}

unsafe fn do_accept4(
    fd: c_int,
    a: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
    plain: bool,
) -> c_int {
    let nfd = if plain {
        // SAFETY: forwarded application arguments.
        unsafe { real::accept(fd, a, len) }
    } else {
        // SAFETY: forwarded application arguments.
        unsafe { real::accept4(fd, a, len, flags) }
    };
    if nfd < 0 {
        return nfd;
    }
    if let Some(stale) = table::take(nfd) {
        table::release(&stale);
    }
    let Some(Kind::Listener { family, .. }) = table::get(fd) else {
        return nfd;
    };
    let listener = sys::getsockname(fd)
        .ok()
        .and_then(|(ss, l)| addr::from_storage(&ss, l));
    let peer = sys::getpeername(nfd)
        .ok()
        .and_then(|(ss, l)| addr::from_storage(&ss, l));
    let (Some(listener), Some(peer)) = (listener, peer) else {
        return nfd;
    };
    if let Ok(Reply::Accept(Some(p))) = engine::query(&Request::AcceptLookup { listener, peer }) {
        table::set(
            nfd,
            Kind::Accepted {
                peer: p.peer,
                local: p.local,
                family,
            },
        );
        if !a.is_null() && !len.is_null() {
            // SAFETY: the application's accept out-parameters.
            let _ = unsafe { addr::write_out(addr::in_family(p.peer, family), a, len) };
        }
    }
    nfd
}

// ------------------------------------------------------------- fd life

fn do_socket(domain: c_int, ty: c_int, proto: c_int) -> c_int {
    // SAFETY: integer arguments.
    let fd = unsafe { real::socket(domain, ty, proto) };
    if fd >= 0 {
        if let Some(stale) = table::take(fd) {
            table::release(&stale);
        }
        if matches!(domain, libc::AF_INET | libc::AF_INET6)
            && matches!(ty & 0xf, libc::SOCK_STREAM | libc::SOCK_DGRAM)
        {
            table::set(
                fd,
                Kind::Fresh {
                    regs: [None; table::MAX_EPOLL_REGS],
                },
            );
        }
    }
    fd
}

unsafe fn do_epoll_ctl(epfd: c_int, op: c_int, fd: c_int, ev: *mut libc::epoll_event) -> c_int {
    // SAFETY: forwarded application arguments.
    let r = unsafe { real::epoll_ctl(epfd, op, fd, ev) };
    if r != 0 {
        return r;
    }
    if let Some(Kind::Fresh { .. }) = table::get(fd) {
        let new = if op == libc::EPOLL_CTL_DEL || ev.is_null() {
            None
        } else {
            // SAFETY: non-null, and the kernel just read it successfully.
            let e = unsafe { std::ptr::read_unaligned(ev) };
            Some(table::EpollReg {
                epfd,
                events: e.events,
                data: e.u64,
            })
        };
        table::update(fd, |k| {
            if let Kind::Fresh { regs } = k {
                let slot = regs.iter().position(|r| r.is_some_and(|r| r.epfd == epfd));
                match (slot, new) {
                    (Some(i), n) => regs[i] = n,
                    (None, Some(n)) => {
                        if let Some(free) = regs.iter_mut().find(|r| r.is_none()) {
                            *free = Some(n);
                        }
                    }
                    (None, None) => {}
                }
            }
        });
    }
    0
}

fn do_close(fd: c_int) -> c_int {
    let st = table::take(fd);
    // SAFETY: integer argument.
    let r = unsafe { real::close(fd) };
    if let Some(k) = st {
        let e = errno();
        table::release(&k);
        set_errno(e);
    }
    r
}

/// After a successful dup of `src` onto `dst`: state follows the fd.
fn follow_dup(src: c_int, dst: c_int) {
    if src == dst {
        return;
    }
    if let Some(old) = table::take(dst) {
        table::release(&old);
    }
    if let Some(k) = table::get(src).and_then(table::duplicate) {
        if let Some(old) = table::set(dst, k) {
            table::release(&old);
        }
    }
}

// ------------------------------------------------------------- exports

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

/// Interposed `bind(2)`.
///
/// # Safety
/// As for `bind(2)`.
#[no_mangle]
pub unsafe extern "C" fn bind(fd: c_int, a: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: forwarded application arguments.
    hook(
        || unsafe { real::bind(fd, a, len) },
        || unsafe { do_bind(fd, a, len) },
        libc::EADDRNOTAVAIL,
    )
}

/// Interposed `listen(2)`.
///
/// # Safety
/// As for `listen(2)`.
#[no_mangle]
pub unsafe extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    // SAFETY: integer arguments.
    hook(
        || unsafe { real::listen(fd, backlog) },
        || do_listen(fd, backlog),
        libc::EINVAL,
    )
}

/// Interposed `accept(2)`.
///
/// # Safety
/// As for `accept(2)`.
#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, a: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: forwarded application arguments.
    hook(
        || unsafe { real::accept(fd, a, len) },
        || unsafe { do_accept4(fd, a, len, 0, true) },
        libc::ECONNABORTED,
    )
}

/// Interposed `accept4(2)`.
///
/// # Safety
/// As for `accept4(2)`.
#[no_mangle]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    a: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    hook(
        // SAFETY: forwarded application arguments.
        || unsafe { real::accept4(fd, a, len, flags) },
        // SAFETY: as above.
        || unsafe { do_accept4(fd, a, len, flags, false) },
        libc::ECONNABORTED,
    )
}

/// Interposed `getsockname(2)`.
///
/// # Safety
/// As for `getsockname(2)`.
#[no_mangle]
pub unsafe extern "C" fn getsockname(fd: c_int, a: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: forwarded application arguments.
    hook(
        || unsafe { real::getsockname(fd, a, len) },
        || unsafe { do_getsockname(fd, a, len) },
        libc::EBADF,
    )
}

/// Interposed `getpeername(2)`.
///
/// # Safety
/// As for `getpeername(2)`.
#[no_mangle]
pub unsafe extern "C" fn getpeername(fd: c_int, a: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: forwarded application arguments.
    hook(
        || unsafe { real::getpeername(fd, a, len) },
        || unsafe { do_getpeername(fd, a, len) },
        libc::ENOTCONN,
    )
}

/// Interposed `getsockopt(2)`.
///
/// # Safety
/// As for `getsockopt(2)`.
#[no_mangle]
pub unsafe extern "C" fn getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    hook(
        // SAFETY: forwarded application arguments.
        || unsafe { real::getsockopt(fd, level, name, val, len) },
        // SAFETY: as above.
        || unsafe { do_getsockopt(fd, level, name, val, len) },
        libc::ENOPROTOOPT,
    )
}

/// Interposed `setsockopt(2)`.
///
/// # Safety
/// As for `setsockopt(2)`.
#[no_mangle]
pub unsafe extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: socklen_t,
) -> c_int {
    hook(
        // SAFETY: forwarded application arguments.
        || unsafe { real::setsockopt(fd, level, name, val, len) },
        // SAFETY: as above.
        || unsafe { do_setsockopt(fd, level, name, val, len) },
        libc::ENOPROTOOPT,
    )
}

/// Interposed `socket(2)`: new TCP sockets are noted (see [`Kind::Fresh`]).
///
/// # Safety
/// As for `socket(2)`.
#[no_mangle]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, proto: c_int) -> c_int {
    // SAFETY: integer arguments.
    hook(
        || unsafe { real::socket(domain, ty, proto) },
        || do_socket(domain, ty, proto),
        libc::EMFILE,
    )
}

/// Interposed `epoll_ctl(2)`: registrations of not-yet-connected TCP
/// sockets are remembered so a tunnel connect can move them.
///
/// # Safety
/// As for `epoll_ctl(2)`.
#[no_mangle]
pub unsafe extern "C" fn epoll_ctl(
    epfd: c_int,
    op: c_int,
    fd: c_int,
    ev: *mut libc::epoll_event,
) -> c_int {
    hook(
        // SAFETY: forwarded application arguments.
        || unsafe { real::epoll_ctl(epfd, op, fd, ev) },
        // SAFETY: as above.
        || unsafe { do_epoll_ctl(epfd, op, fd, ev) },
        libc::EINVAL,
    )
}

/// Opens a datagram flow for a first send into the tunnel; the state to
/// send with.
fn open_for_send(fd: c_int, regs: &[Option<table::EpollReg>]) -> Result<dgram::Udp, c_int> {
    dgram::open(fd, None, None, regs)?;
    dgram::get(fd).ok_or(libc::EBADF)
}

unsafe fn do_sendto(
    fd: c_int,
    buf: *const c_void,
    len: usize,
    flags: c_int,
    a: *const sockaddr,
    alen: socklen_t,
) -> isize {
    // SAFETY: the application's arguments.
    let dst = || unsafe { addr::read(a, alen) };
    let iov = dgram::iov1(buf, len);
    // SAFETY: the application's arguments.
    match unsafe { udp::plan(fd, a, alen, flags) } {
        // SAFETY: forwarded application arguments.
        SendPlan::Pass => unsafe { real::sendto(fd, buf, len, flags, a, alen) },
        SendPlan::DropAddress => {
            // SAFETY: as above, without the address.
            unsafe {
                real::sendto(
                    fd,
                    buf,
                    len,
                    flags & !libc::MSG_FASTOPEN,
                    std::ptr::null(),
                    0,
                )
            }
        }
        SendPlan::ConnectFirst => {
            // SAFETY: the application's address.
            if unsafe { do_connect(fd, a, alen) } != 0 {
                return -1;
            }
            // SAFETY: forwarded application arguments.
            unsafe { real::send(fd, buf, len, flags & !libc::MSG_FASTOPEN) }
        }
        SendPlan::Refuse => {
            set_errno(libc::ENETUNREACH);
            -1
        }
        // SAFETY: one iovec over the application's buffer.
        SendPlan::Carried(st) => unsafe { dgram::send(fd, &st, dst(), &iov, 1, flags) },
        SendPlan::Open(regs) => match open_for_send(fd, &regs) {
            // SAFETY: as above.
            Ok(st) => unsafe { dgram::send(fd, &st, dst(), &iov, 1, flags) },
            Err(e) => {
                set_errno(e);
                -1
            }
        },
    }
}

unsafe fn do_sendmsg(fd: c_int, msg: *const libc::msghdr, flags: c_int) -> isize {
    // SAFETY: forwarded application arguments.
    let pass = |m: *const libc::msghdr, f: c_int| unsafe { real::sendmsg(fd, m, f) };
    if msg.is_null() {
        return pass(msg, flags);
    }
    // SAFETY: non-null msghdr from the application.
    let mut copy = unsafe { *msg };
    // SAFETY: msg_name/msg_namelen describe the application's address.
    let plan = unsafe {
        udp::plan(
            fd,
            copy.msg_name as *const sockaddr,
            copy.msg_namelen,
            flags,
        )
    };
    let carried = |st: dgram::Udp| {
        // SAFETY: the application's msghdr.
        unsafe {
            dgram::send(
                fd,
                &st,
                dgram::msg_dst(&copy),
                copy.msg_iov,
                dgram::iovlen(&copy),
                flags,
            )
        }
    };
    match plan {
        SendPlan::Pass => pass(msg, flags),
        SendPlan::DropAddress => {
            copy.msg_name = std::ptr::null_mut();
            copy.msg_namelen = 0;
            pass(&copy, flags & !libc::MSG_FASTOPEN)
        }
        SendPlan::ConnectFirst => {
            // SAFETY: the application's address.
            if unsafe { do_connect(fd, copy.msg_name as *const sockaddr, copy.msg_namelen) } != 0 {
                return -1;
            }
            copy.msg_name = std::ptr::null_mut();
            copy.msg_namelen = 0;
            pass(&copy, flags & !libc::MSG_FASTOPEN)
        }
        SendPlan::Refuse => {
            set_errno(libc::ENETUNREACH);
            -1
        }
        SendPlan::Carried(st) => carried(st),
        SendPlan::Open(regs) => match open_for_send(fd, &regs) {
            Ok(st) => carried(st),
            Err(e) => {
                set_errno(e);
                -1
            }
        },
    }
}

unsafe fn do_sendmmsg(
    fd: c_int,
    msgs: *mut libc::mmsghdr,
    vlen: libc::c_uint,
    flags: c_int,
) -> c_int {
    if msgs.is_null() || vlen == 0 {
        // SAFETY: forwarded application arguments.
        return unsafe { real::sendmmsg(fd, msgs, vlen, flags) };
    }
    let vlen = vlen.min(1024);
    // Decide on the first datagram; a carried socket then sends each one
    // through the hook (partial counts as the kernel reports them).
    // SAFETY: `vlen` entries per the application.
    let first = unsafe { (*msgs).msg_hdr };
    // SAFETY: the entry's address, as the application gave it.
    let plan = unsafe {
        udp::plan(
            fd,
            first.msg_name as *const sockaddr,
            first.msg_namelen,
            flags,
        )
    };
    let st = match plan {
        SendPlan::Carried(st) => st,
        SendPlan::Open(regs) => match open_for_send(fd, &regs) {
            Ok(st) => st,
            Err(e) => return fail(e),
        },
        SendPlan::Refuse => return fail(libc::ENETUNREACH),
        _ => {
            // Not carried: the kernel's, unless a later datagram is routed.
            let mut n = vlen;
            for i in 1..vlen {
                // SAFETY: `vlen` entries per the application.
                let h = unsafe { (*msgs.add(i as usize)).msg_hdr };
                // SAFETY: the entry's address, as the application gave it.
                let p =
                    unsafe { udp::plan(fd, h.msg_name as *const sockaddr, h.msg_namelen, flags) };
                if matches!(p, SendPlan::Refuse | SendPlan::Open(_)) {
                    // Send the part before it, as the kernel reports a
                    // partial batch; the next call carries the rest.
                    n = i;
                    break;
                }
            }
            // SAFETY: forwarded application arguments (a prefix of them).
            return unsafe { real::sendmmsg(fd, msgs, n, flags) };
        }
    };
    let mut sent = 0;
    for i in 0..vlen {
        // SAFETY: `vlen` entries per the application.
        let m = unsafe { &mut *msgs.add(i as usize) };
        // SAFETY: the application's msghdr.
        let r = unsafe {
            dgram::send(
                fd,
                &st,
                dgram::msg_dst(&m.msg_hdr),
                m.msg_hdr.msg_iov,
                dgram::iovlen(&m.msg_hdr),
                flags,
            )
        };
        if r < 0 {
            if sent == 0 {
                return -1;
            }
            break;
        }
        m.msg_len = r as libc::c_uint;
        sent += 1;
    }
    sent
}

/// A receive on a carried socket into `iov`, as `recvmsg` would return it.
///
/// # Safety
/// As for `recvmsg(2)` with these pieces.
#[allow(clippy::too_many_arguments)]
unsafe fn recv_carried(
    fd: c_int,
    st: &dgram::Udp,
    iov: *const libc::iovec,
    iovlen: usize,
    flags: c_int,
    name: *mut sockaddr,
    namelen: *mut socklen_t,
    msg_flags: Option<&mut c_int>,
) -> isize {
    // SAFETY: per the caller.
    match unsafe { dgram::recv(fd, st, iov, iovlen, flags, name, namelen) } {
        Ok(r) => {
            if let Some(f) = msg_flags {
                *f = r.msg_flags;
            }
            r.len as isize
        }
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

/// [`recv_carried`] without a source address or message flags (`recv`,
/// `read`, `readv`).
///
/// # Safety
/// As for [`recv_carried`].
unsafe fn recv_nameless(
    fd: c_int,
    st: &dgram::Udp,
    iov: *const libc::iovec,
    iovlen: usize,
    flags: c_int,
) -> isize {
    let (name, len) = (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: per the caller.
    unsafe { recv_carried(fd, st, iov, iovlen, flags, name, len, None) }
}

/// Interposed `recvfrom(2)`: strips the datagram header on carried sockets
/// and reports the peer's tunnel address.
///
/// # Safety
/// As for `recvfrom(2)`.
#[no_mangle]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    len: usize,
    flags: c_int,
    a: *mut sockaddr,
    alen: *mut socklen_t,
) -> isize {
    // SAFETY: forwarded application arguments.
    let pass = || unsafe { real::recvfrom(fd, buf, len, flags, a, alen) };
    match table::quick(fd) {
        Quick::Other => return pass(),
        Quick::Stream => return hook(pass, || stream_end::after_recv(fd, pass(), len), libc::EIO),
        Quick::Udp => {}
    }
    hook(
        pass,
        || match dgram::get(fd) {
            // SAFETY: one iovec over the application's buffer.
            Some(st) => unsafe {
                recv_carried(fd, &st, &dgram::iov1(buf, len), 1, flags, a, alen, None)
            },
            None => pass(),
        },
        libc::EIO,
    )
}

/// Interposed `recv(2)`.
///
/// # Safety
/// As for `recv(2)`.
#[no_mangle]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, len: usize, flags: c_int) -> isize {
    // SAFETY: forwarded application arguments.
    let pass = || unsafe { real::recv(fd, buf, len, flags) };
    match table::quick(fd) {
        Quick::Other => return pass(),
        Quick::Stream => return hook(pass, || stream_end::after_recv(fd, pass(), len), libc::EIO),
        Quick::Udp => {}
    }
    hook(
        pass,
        || match dgram::get(fd) {
            // SAFETY: as in recvfrom.
            Some(st) => unsafe { recv_nameless(fd, &st, &dgram::iov1(buf, len), 1, flags) },
            None => pass(),
        },
        libc::EIO,
    )
}

/// Interposed `read(2)` (only carried datagram sockets are looked at).
///
/// # Safety
/// As for `read(2)`.
#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, len: usize) -> isize {
    // SAFETY: forwarded application arguments.
    let pass = || unsafe { real::read(fd, buf, len) };
    match table::quick(fd) {
        Quick::Other => return pass(),
        Quick::Stream => return hook(pass, || stream_end::after_recv(fd, pass(), len), libc::EIO),
        Quick::Udp => {}
    }
    hook(
        pass,
        || match dgram::get(fd) {
            // SAFETY: as in recvfrom.
            Some(st) => unsafe { recv_nameless(fd, &st, &dgram::iov1(buf, len), 1, 0) },
            None => pass(),
        },
        libc::EIO,
    )
}

/// The iovec count of a `readv`/`writev` call, or `None` when it is not
/// valid (negative, above `IOV_MAX`, or no array): the kernel then reports
/// the error itself.
fn iov_count(iov: *const libc::iovec, n: c_int) -> Option<usize> {
    usize::try_from(n)
        .ok()
        .filter(|n| *n <= 1024 && !iov.is_null())
}

/// Interposed `readv(2)`: as `read` — an error end of a tunnel stream is
/// reported as its errno, and a carried datagram socket reads one
/// datagram into the buffers.
///
/// # Safety
/// As for `readv(2)`.
#[no_mangle]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const libc::iovec, n: c_int) -> isize {
    // SAFETY: forwarded application arguments.
    let pass = || unsafe { real::readv(fd, iov, n) };
    let quick = table::quick(fd);
    if quick == Quick::Other {
        return pass();
    }
    let Some(count) = iov_count(iov, n) else {
        return pass();
    };
    if quick == Quick::Stream {
        // SAFETY: the application's array of `count` iovecs.
        let len = unsafe { iov_sum(iov, count) };
        return hook(pass, || stream_end::after_recv(fd, pass(), len), libc::EIO);
    }
    hook(
        pass,
        || match dgram::get(fd) {
            // SAFETY: the application's `count` iovecs.
            Some(st) => unsafe { recv_nameless(fd, &st, iov, count, 0) },
            None => pass(),
        },
        libc::EIO,
    )
}

/// Interposed `writev(2)`: as `write` — on a tunnel stream an error end
/// is reported as its errno (and `SIGPIPE` only for a plain `EPIPE`); a
/// carried datagram socket sends the buffers as one datagram to its peer.
///
/// # Safety
/// As for `writev(2)`.
#[no_mangle]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const libc::iovec, n: c_int) -> isize {
    // SAFETY: forwarded application arguments.
    let pass = || unsafe { real::writev(fd, iov, n) };
    let quick = table::quick(fd);
    if quick == Quick::Other {
        return pass();
    }
    let Some(count) = iov_count(iov, n) else {
        return pass();
    };
    if quick == Quick::Stream {
        return hook(
            pass,
            || {
                stream_end::send(fd, 0, |x| {
                    // SAFETY: a zeroed msghdr is valid; it points to the
                    // application's iovecs for the duration of the call.
                    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
                    m.msg_iov = iov as *mut libc::iovec;
                    m.msg_iovlen = count;
                    // SAFETY: writev(2) on a socket is sendmsg(2) without flags.
                    unsafe { real::sendmsg(fd, &m, x) }
                })
            },
            libc::EIO,
        );
    }
    hook(
        pass,
        || match dgram::get(fd) {
            // SAFETY: the application's `n` iovecs.
            Some(st) => unsafe { dgram::send(fd, &st, None, iov, count, 0) },
            None => pass(),
        },
        libc::EIO,
    )
}

/// Interposed `recvmsg(2)`.
///
/// # Safety
/// As for `recvmsg(2)`.
#[no_mangle]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut libc::msghdr, flags: c_int) -> isize {
    // SAFETY: forwarded application arguments.
    let pass = || unsafe { real::recvmsg(fd, msg, flags) };
    if msg.is_null() {
        return pass();
    }
    match table::quick(fd) {
        Quick::Other => return pass(),
        Quick::Stream => {
            // SAFETY: non-null msghdr from the application.
            let len = unsafe { iov_total(&*msg) };
            return hook(pass, || stream_end::after_recv(fd, pass(), len), libc::EIO);
        }
        Quick::Udp => {}
    }
    hook(
        pass,
        || match dgram::get(fd) {
            Some(st) => {
                // SAFETY: non-null msghdr from the application.
                let m = unsafe { &mut *msg };
                m.msg_controllen = 0;
                let mut out_flags = 0;
                // SAFETY: the application's msghdr pieces.
                let r = unsafe {
                    recv_carried(
                        fd,
                        &st,
                        m.msg_iov,
                        dgram::iovlen(m),
                        flags,
                        m.msg_name as *mut sockaddr,
                        &mut m.msg_namelen,
                        Some(&mut out_flags),
                    )
                };
                m.msg_flags = out_flags;
                r
            }
            None => pass(),
        },
        libc::EIO,
    )
}

/// Interposed `recvmmsg(2)` (the timeout is not applied on carried sockets).
///
/// # Safety
/// As for `recvmmsg(2)`.
#[no_mangle]
pub unsafe extern "C" fn recvmmsg(
    fd: c_int,
    msgs: *mut libc::mmsghdr,
    vlen: libc::c_uint,
    flags: c_int,
    timeout: *mut libc::timespec,
) -> c_int {
    // SAFETY: forwarded application arguments.
    let pass = || unsafe { real::recvmmsg(fd, msgs, vlen, flags, timeout) };
    if msgs.is_null() || !table::maybe_udp(fd) {
        return pass();
    }
    hook(
        pass,
        || {
            let Some(st) = dgram::get(fd) else {
                return pass();
            };
            let mut got = 0;
            for i in 0..vlen.min(1024) {
                let mut f = flags & !libc::MSG_WAITFORONE;
                if i > 0 && flags & libc::MSG_WAITFORONE != 0 {
                    f |= libc::MSG_DONTWAIT;
                }
                // SAFETY: `vlen` entries per the application.
                let m = unsafe { &mut (*msgs.add(i as usize)).msg_hdr };
                m.msg_controllen = 0;
                let mut out_flags = 0;
                // SAFETY: the application's msghdr pieces.
                let r = unsafe {
                    recv_carried(
                        fd,
                        &st,
                        m.msg_iov,
                        dgram::iovlen(m),
                        f,
                        m.msg_name as *mut sockaddr,
                        &mut m.msg_namelen,
                        Some(&mut out_flags),
                    )
                };
                if r < 0 {
                    if got == 0 {
                        return -1;
                    }
                    break;
                }
                m.msg_flags = out_flags;
                // SAFETY: as above.
                unsafe { (*msgs.add(i as usize)).msg_len = r as libc::c_uint };
                got += 1;
            }
            got
        },
        libc::EIO,
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

/// Interposed `send(2)`.
///
/// # Safety
/// As for `send(2)`.
#[no_mangle]
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, len: usize, flags: c_int) -> isize {
    // SAFETY: forwarded application arguments.
    let pass = || unsafe { real::send(fd, buf, len, flags) };
    match table::quick(fd) {
        Quick::Other => return pass(),
        Quick::Stream => {
            return hook(
                pass,
                || {
                    // SAFETY: forwarded application arguments, one flag added.
                    let go = |x| unsafe { real::send(fd, buf, len, flags | x) };
                    stream_end::send(fd, flags, go)
                },
                libc::EIO,
            );
        }
        Quick::Udp => {}
    }
    hook(
        pass,
        || match dgram::get(fd) {
            // SAFETY: one iovec over the application's buffer.
            Some(st) => unsafe { dgram::send(fd, &st, None, &dgram::iov1(buf, len), 1, flags) },
            None => pass(),
        },
        libc::EIO,
    )
}

/// Interposed `write(2)` (only carried datagram sockets are looked at).
///
/// # Safety
/// As for `write(2)`.
#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, len: usize) -> isize {
    // SAFETY: forwarded application arguments.
    let pass = || unsafe { real::write(fd, buf, len) };
    match table::quick(fd) {
        Quick::Other => return pass(),
        Quick::Stream => {
            return hook(
                pass,
                // SAFETY: write(2) on a socket is send(2) without flags.
                || stream_end::send(fd, 0, |x| unsafe { real::send(fd, buf, len, x) }),
                libc::EIO,
            );
        }
        Quick::Udp => {}
    }
    hook(
        pass,
        || match dgram::get(fd) {
            // SAFETY: as in send.
            Some(st) => unsafe { dgram::send(fd, &st, None, &dgram::iov1(buf, len), 1, 0) },
            None => pass(),
        },
        libc::EIO,
    )
}

/// Interposed `sendto(2)` (see [`udp`]).
///
/// # Safety
/// As for `sendto(2)`.
#[no_mangle]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    len: usize,
    flags: c_int,
    a: *const sockaddr,
    alen: socklen_t,
) -> isize {
    if a.is_null() {
        match table::quick(fd) {
            // Fast path: no destination, nothing to decide.
            // SAFETY: forwarded application arguments.
            Quick::Other => return unsafe { real::sendto(fd, buf, len, flags, a, alen) },
            Quick::Stream => {
                return hook(
                    // SAFETY: forwarded application arguments.
                    || unsafe { real::sendto(fd, buf, len, flags, a, alen) },
                    || {
                        stream_end::send(fd, flags, |x| {
                            // SAFETY: as above, one flag added.
                            unsafe { real::sendto(fd, buf, len, flags | x, a, alen) }
                        })
                    },
                    libc::EIO,
                );
            }
            Quick::Udp => {}
        }
    }
    hook(
        // SAFETY: forwarded application arguments.
        || unsafe { real::sendto(fd, buf, len, flags, a, alen) },
        // SAFETY: as above.
        || unsafe { do_sendto(fd, buf, len, flags, a, alen) },
        libc::ENETUNREACH,
    )
}

/// Interposed `sendmsg(2)` (see [`udp`]).
///
/// # Safety
/// As for `sendmsg(2)`.
#[no_mangle]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const libc::msghdr, flags: c_int) -> isize {
    // SAFETY: a non-null msghdr is readable per the sendmsg contract.
    if !msg.is_null() && unsafe { (*msg).msg_name.is_null() } {
        match table::quick(fd) {
            // SAFETY: forwarded application arguments.
            Quick::Other => return unsafe { real::sendmsg(fd, msg, flags) },
            Quick::Stream => {
                return hook(
                    // SAFETY: forwarded application arguments.
                    || unsafe { real::sendmsg(fd, msg, flags) },
                    || {
                        // SAFETY: as above, one flag added.
                        let go = |x| unsafe { real::sendmsg(fd, msg, flags | x) };
                        stream_end::send(fd, flags, go)
                    },
                    libc::EIO,
                );
            }
            Quick::Udp => {}
        }
    }
    if msg.is_null() {
        // SAFETY: forwarded application arguments.
        return unsafe { real::sendmsg(fd, msg, flags) };
    }
    hook(
        // SAFETY: forwarded application arguments.
        || unsafe { real::sendmsg(fd, msg, flags) },
        // SAFETY: as above.
        || unsafe { do_sendmsg(fd, msg, flags) },
        libc::ENETUNREACH,
    )
}

/// Interposed `sendmmsg(2)` (see [`udp`]).
///
/// # Safety
/// As for `sendmmsg(2)`.
#[no_mangle]
pub unsafe extern "C" fn sendmmsg(
    fd: c_int,
    msgs: *mut libc::mmsghdr,
    vlen: libc::c_uint,
    flags: c_int,
) -> c_int {
    hook(
        // SAFETY: forwarded application arguments.
        || unsafe { real::sendmmsg(fd, msgs, vlen, flags) },
        // SAFETY: as above.
        || unsafe { do_sendmmsg(fd, msgs, vlen, flags) },
        libc::ENETUNREACH,
    )
}

/// Interposed `close(2)`.
///
/// # Safety
/// As for `close(2)`.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    // SAFETY: integer argument.
    hook(|| unsafe { real::close(fd) }, || do_close(fd), libc::EIO)
}

/// Interposed `dup(2)`.
///
/// # Safety
/// As for `dup(2)`.
#[no_mangle]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    hook(
        // SAFETY: integer argument.
        || unsafe { real::dup(fd) },
        || {
            // SAFETY: integer argument.
            let r = unsafe { real::dup(fd) };
            if r >= 0 {
                follow_dup(fd, r);
            }
            r
        },
        libc::EMFILE,
    )
}

/// Interposed `dup2(2)`.
///
/// # Safety
/// As for `dup2(2)`.
#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    hook(
        // SAFETY: integer arguments.
        || unsafe { real::dup2(old, new) },
        || {
            // SAFETY: integer arguments.
            let r = unsafe { real::dup2(old, new) };
            if r >= 0 {
                follow_dup(old, r);
            }
            r
        },
        libc::EBADF,
    )
}

/// Interposed `dup3(2)`.
///
/// # Safety
/// As for `dup3(2)`.
#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    hook(
        // SAFETY: integer arguments.
        || unsafe { real::dup3(old, new, flags) },
        || {
            // SAFETY: integer arguments.
            let r = unsafe { real::dup3(old, new, flags) };
            if r >= 0 {
                follow_dup(old, r);
            }
            r
        },
        libc::EBADF,
    )
}

fn fcntl_common(fd: c_int, cmd: c_int, arg: usize) -> c_int {
    hook(
        // SAFETY: the argument is passed through unchanged in its register.
        || unsafe { real::fcntl(fd, cmd, arg) },
        || {
            // SAFETY: as above.
            let r = unsafe { real::fcntl(fd, cmd, arg) };
            if r >= 0 && (cmd == libc::F_DUPFD || cmd == libc::F_DUPFD_CLOEXEC) {
                follow_dup(fd, r);
            }
            r
        },
        libc::EBADF,
    )
}

/// Interposed `fcntl(2)` (only `F_DUPFD`/`F_DUPFD_CLOEXEC` are looked at).
/// The variadic argument is taken as one pointer-sized integer, which is
/// how every command's argument is passed on x86-64 and aarch64 Linux.
///
/// # Safety
/// As for `fcntl(2)`.
#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: usize) -> c_int {
    fcntl_common(fd, cmd, arg)
}

/// Interposed `fcntl64` (what `fcntl` becomes with `_FILE_OFFSET_BITS=64`).
///
/// # Safety
/// As for `fcntl(2)`.
#[no_mangle]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: usize) -> c_int {
    fcntl_common(fd, cmd, arg)
}

/// Bytes the iovecs of `m` can hold (0 when it has none).
///
/// # Safety
/// `m.msg_iov` points to `m.msg_iovlen` readable iovecs (or is null).
unsafe fn iov_total(m: &libc::msghdr) -> usize {
    // SAFETY: per the caller.
    unsafe { iov_sum(m.msg_iov, m.msg_iovlen) }
}

/// Bytes `n` iovecs at `iov` can hold (0 for a null array).
///
/// # Safety
/// `iov` points to `n` readable iovecs (or is null).
unsafe fn iov_sum(iov: *const libc::iovec, n: usize) -> usize {
    if iov.is_null() {
        return 0;
    }
    (0..n)
        // SAFETY: per the caller, `n` entries are readable.
        .map(|i| unsafe { (*iov.add(i)).iov_len })
        .fold(0usize, usize::saturating_add)
}
