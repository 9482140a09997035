//! Listening in seccomp mode, mirroring the shim: a TCP `bind` to a
//! wildcard or to one of our tunnel addresses binds the program's socket
//! to loopback instead (through our copy of it: same open file); `listen`
//! asks the engine to listen on the tunnel address too; `accept` on such a
//! listener is done here, so the program sees the tunnel peer's address,
//! and the new connection is handed over with `SECCOMP_ADDFD_FLAG_SEND`.

use super::call::{Call, Outcome};
use super::caller::{self, FileId};
use super::fdops::{nonblocking, set_nonblocking, sock_name, sockopt_int};
use super::notify::Answer;
use super::sockaddr;
use super::state::{State, Wait};
use super::table::Ours;
use super::udp;
use control::{Reply, Request};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use tracing::debug;

// Defined with the other waits; named here first.
pub use super::state::PendingAccept;

/// `bind(fd, addr, len)`.
pub fn bind(sv: &mut State, c: &Call) -> Outcome {
    let [_, addr_p, len, ..] = c.n.args;
    let len = len as u32 as usize;
    if len > sockaddr::MAX_LEN {
        return Outcome::cont();
    }
    let Some(requested) = c.read(addr_p, len).ok().and_then(|b| sockaddr::decode(&b)) else {
        return Outcome::cont();
    };
    let Ok(sock) = c.fd(0) else {
        return Outcome::cont();
    };
    let (Some(ty), Some(domain)) = (
        sockopt_int(&sock, libc::SOL_SOCKET, libc::SO_TYPE),
        sockopt_int(&sock, libc::SOL_SOCKET, libc::SO_DOMAIN),
    ) else {
        return Outcome::cont();
    };
    if !matches!(domain, libc::AF_INET | libc::AF_INET6) {
        return Outcome::cont();
    }
    let norm = control::normalize(requested);
    if ty == libc::SOCK_DGRAM {
        return udp::bind(sv, c, requested, norm);
    }
    if ty != libc::SOCK_STREAM || norm.ip().is_loopback() || norm.ip().is_multicast() {
        return Outcome::cont();
    }
    // A wildcard never opens on the host's interfaces, engine or not.
    let redirect = norm.ip().is_unspecified()
        || matches!(
            sv.engine.query(&Request::Bind { addr: norm }),
            Ok(Reply::Bind { redirect: true })
        );
    if !redirect {
        return Outcome::cont();
    }
    let Ok(FileId { ino, .. }) = caller::file_id(&sock) else {
        return Outcome::cont();
    };
    let lo = sockaddr::loopback_like(&requested);
    if let Err(e) = socket2::SockRef::from(&sock).bind(&lo.into()) {
        return Outcome::errno(e.raw_os_error().unwrap_or(libc::EINVAL));
    }
    sv.table.insert(
        ino,
        Ours::Listener {
            requested,
            family: domain,
            listening: false,
        },
    );
    debug!(pid = c.n.pid, requested = %requested, loopback = %lo, "seccomp: bind redirected to loopback");
    Outcome::value(0)
}

/// `listen(fd, backlog)`.
pub fn listen(sv: &mut State, c: &Call) -> Outcome {
    let Ok(sock) = c.fd(0) else {
        return Outcome::cont();
    };
    let Ok(FileId { ino, .. }) = caller::file_id(&sock) else {
        return Outcome::cont();
    };
    let Some(Ours::Listener { mut requested, .. }) = sv.table.get(ino) else {
        return Outcome::cont();
    };
    let backlog = c.n.args[1] as i32;
    // SAFETY: listen on our copy of the caller's socket (same open file).
    if unsafe { libc::listen(sock.as_raw_fd(), backlog) } != 0 {
        let e = std::io::Error::last_os_error();
        return Outcome::errno(e.raw_os_error().unwrap_or(libc::EINVAL));
    }
    let Some(loopback) = sock_name(&sock, false) else {
        return Outcome::value(0);
    };
    requested.set_port(loopback.port());
    sv.table.update(ino, |e| {
        if let Ours::Listener {
            requested: r,
            listening,
            ..
        } = e
        {
            *listening = true;
            r.set_port(loopback.port());
        }
    });
    let r = sv.engine.query(&Request::Listen {
        requested: control::normalize(requested),
        loopback,
    });
    debug!(pid = c.n.pid, requested = %requested, loopback = %loopback, result = ?r, "seccomp: listening through the tunnel");
    Outcome::value(0)
}

/// `accept(fd, addr, len)` / `accept4(fd, addr, len, flags)`.
pub fn accept(sv: &mut State, c: &Call, four: bool) -> Outcome {
    let [_, addr, len, flags, ..] = c.n.args;
    let flags = if four { flags as i32 } else { 0 };
    if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
        return Outcome::cont(); // the kernel says EINVAL
    }
    let Ok(sock) = c.fd(0) else {
        return Outcome::cont();
    };
    let Ok(FileId { ino, .. }) = caller::file_id(&sock) else {
        return Outcome::cont();
    };
    let Some(Ours::Listener {
        family,
        listening: true,
        ..
    }) = sv.table.get(ino)
    else {
        return Outcome::cont();
    };
    let p = PendingAccept {
        id: c.n.id,
        pid: c.n.pid,
        listener: sock,
        addr: (addr, len),
        flags,
        family,
    };
    match try_accept(sv, &p) {
        Some(o) => o,
        None if nonblocking(&p.listener) => Outcome::errno(libc::EAGAIN),
        None => {
            sv.waits.push(Wait::Accept(p));
            Outcome::Pending
        }
    }
}

/// A waiting `accept`'s listener is readable. Returns whether it is finished.
pub fn accept_progress(sv: &mut State, i: usize) -> bool {
    let Wait::Accept(p) = &sv.waits[i] else {
        return true;
    };
    if !sv.listener.id_valid(p.id) {
        return true;
    }
    // Borrow juggling: take a view of the pending call without removing it.
    let view = PendingAccept {
        id: p.id,
        pid: p.pid,
        // SAFETY: F_DUPFD_CLOEXEC on our open descriptor; owned below.
        listener: match unsafe { libc::fcntl(p.listener.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) } {
            fd if fd >= 0 => {
                // SAFETY: a new descriptor we own.
                unsafe { OwnedFd::from_raw_fd(fd) }
            }
            _ => return true,
        },
        addr: p.addr,
        flags: p.flags,
        family: p.family,
    };
    match try_accept(sv, &view) {
        Some(Outcome::Answer(a)) => {
            sv.answer(view.id, a);
            true
        }
        Some(_) => true,
        None => false,
    }
}

/// One non-blocking accept on our copy; `None` if nothing is queued.
fn try_accept(sv: &mut State, p: &PendingAccept) -> Option<Outcome> {
    // SAFETY: accept4 on our copy; no address wanted.
    let nfd = unsafe {
        libc::accept4(
            p.listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if nfd < 0 {
        let e = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        return match e {
            libc::EAGAIN | libc::EINTR => None,
            e => Some(Outcome::errno(e)),
        };
    }
    // SAFETY: a new descriptor we own.
    let conn = unsafe { OwnedFd::from_raw_fd(nfd) };
    if p.flags & libc::SOCK_NONBLOCK == 0 {
        set_nonblocking(&conn, false);
    }
    let real_peer = sock_name(&conn, true);
    let listener_addr = sock_name(&p.listener, false);
    let mut shown: Option<SocketAddr> = real_peer;
    if let (Some(listener), Some(peer)) = (listener_addr, real_peer) {
        if let Ok(Reply::Accept(Some(a))) =
            sv.engine.query(&Request::AcceptLookup { listener, peer })
        {
            shown = Some(sockaddr::in_family(a.peer, p.family));
            if let Ok(id) = caller::file_id(&conn) {
                sv.table.insert(
                    id.ino,
                    Ours::Accepted {
                        peer: a.peer,
                        local: a.local,
                        family: p.family,
                    },
                );
            }
            debug!(pid = p.pid, peer = %a.peer, local = %a.local, "seccomp: accepted from the tunnel");
        }
    }
    let (addr, len) = p.addr;
    if addr != 0 {
        if let Some(a) = shown {
            let call_like = AddrOut { pid: p.pid };
            if let Err(e) = call_like.put(addr, len, a) {
                return Some(Outcome::errno(e));
            }
        }
    }
    let cloexec = p.flags & libc::SOCK_CLOEXEC != 0;
    if sv.addfd_send {
        match sv
            .listener
            .add_fd(p.id, conn.as_raw_fd(), None, cloexec, true)
        {
            Ok(_) => Some(Outcome::Answered),
            Err(e) => Some(Outcome::errno(e.raw_os_error().unwrap_or(libc::EMFILE))),
        }
    } else {
        match sv
            .listener
            .add_fd(p.id, conn.as_raw_fd(), None, cloexec, false)
        {
            Ok(n) => Some(Outcome::Answer(Answer::Value(i64::from(n)))),
            Err(e) => Some(Outcome::errno(e.raw_os_error().unwrap_or(libc::EMFILE))),
        }
    }
}

/// Address out-parameters of a caller known only by thread id (a waiting
/// accept has no [`Call`] any more).
struct AddrOut {
    pid: u32,
}

impl AddrOut {
    fn put(&self, addr: u64, len: u64, a: SocketAddr) -> Result<(), i32> {
        let room = super::memory::read_u32(self.pid, len).map_err(|_| libc::EFAULT)?;
        if (room as i32) < 0 {
            return Err(libc::EINVAL);
        }
        let (bytes, full) = sockaddr::truncated(a, room);
        super::memory::write(self.pid, addr, &bytes).map_err(|_| libc::EFAULT)?;
        super::memory::write(self.pid, len, &full.to_ne_bytes()).map_err(|_| libc::EFAULT)?;
        Ok(())
    }
}
