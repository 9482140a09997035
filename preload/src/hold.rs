//! The process's hold on the engine (`control::Request::Hold`): one
//! connection opened when the shim first loads under wrapguard, inherited
//! by every child (`fork`) and kept across `exec` (not CLOEXEC; the new
//! image finds it through `WRAPGUARD_HOLD=FD:INODE:EUID`, which the exec
//! hooks put into the environment they pass on).
//!
//! It does two things:
//!
//! * The engine stays up while any process holds it, so a program that
//!   puts itself in the background (`ssh -f`, `cmd &` in a shell that
//!   exits, a forking daemon) keeps its tunnel after wrapguard returned.
//! * A process that dropped its privileges (`setuid`, `setresuid`: apt's
//!   `_apt` methods, `setpriv`, a daemon's workers) can no longer reach the
//!   control socket in the starting user's 0700 directory. It then makes a
//!   socket pair, sends one end on the hold (`Serve`), and uses the other
//!   as its control connection: the engine authorises it by the hold,
//!   opened by the process that started under wrapguard. A process of
//!   another user that never started under wrapguard has no hold and
//!   still cannot attach.
//!
//! Every message on the hold is one frame in one `sendmsg`, so processes
//! sharing it never interleave inside a message. The hold is never read.

use crate::sys;
use control::{Request, MAX_FRAME};
use libc::c_int;
use std::ffi::CString;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::OnceLock;

/// The lowest descriptor number the hold is moved to (if the limit allows).
const HIGH_FD: libc::c_long = 512;

/// The hold's descriptor, or -1.
static FD: AtomicI32 = AtomicI32::new(-1);
/// The effective uid of the process that opened the hold.
static EUID: AtomicU32 = AtomicU32::new(u32::MAX);
/// `WRAPGUARD_HOLD=FD:INODE:EUID`, for the environment of an `exec`.
static ENTRY: OnceLock<Option<CString>> = OnceLock::new();

/// Takes over the hold inherited across `exec` (`WRAPGUARD_HOLD`, checked
/// against the descriptor's inode), or opens one with `connect` (a
/// blocking, not-CLOEXEC connection to the engine) and sends `Hold`.
/// Called once, at load.
pub fn init(connect: impl FnOnce() -> Result<c_int, c_int>) {
    ENTRY.get_or_init(|| {
        let (fd, ino, euid) = match inherited() {
            Some(x) => x,
            None => open(connect)?,
        };
        FD.store(fd, Ordering::Relaxed);
        EUID.store(euid, Ordering::Relaxed);
        CString::new(format!("{}={fd}:{ino}:{euid}", control::ENV_HOLD)).ok()
    });
}

/// The hold named by `WRAPGUARD_HOLD`, if that descriptor is still it.
fn inherited() -> Option<(c_int, u64, u32)> {
    let v = crate::env::env_bytes(control::ENV_HOLD)?;
    let v = std::str::from_utf8(&v).ok()?;
    let mut it = v.split(':');
    let fd: c_int = it.next()?.parse().ok()?;
    let ino: u64 = it.next()?.parse().ok()?;
    let euid: u32 = it.next()?.parse().ok()?;
    if fd < 0 || sys::file_id(fd)?.1 != ino {
        return None;
    }
    Some((fd, ino, euid))
}

fn open(connect: impl FnOnce() -> Result<c_int, c_int>) -> Option<(c_int, u64, u32)> {
    let low = connect().ok()?;
    // Out of the way of the numbers programs pick themselves (`exec 3>`).
    let fd = match sys::fcntl(low, libc::F_DUPFD, HIGH_FD) {
        Ok(high) => {
            sys::close(low);
            high
        }
        Err(_) => low,
    };
    let mut buf = [0u8; MAX_FRAME];
    let sent = Request::Hold { pid: sys::getpid() }
        .encode(&mut buf)
        .ok()
        .and_then(|n| sys::send_all(fd, &buf[..n]).ok());
    let ino = sys::file_id(fd).map(|(_, i)| i);
    match (sent, ino) {
        (Some(()), Some(ino)) => Some((fd, ino, sys::geteuid())),
        _ => {
            sys::close(fd);
            None
        }
    }
}

/// The hold's descriptor, if this process has one.
pub fn fd() -> Option<c_int> {
    let fd = FD.load(Ordering::Relaxed);
    (fd >= 0).then_some(fd)
}

/// Whether `fd` is the hold: the program never had that descriptor, so
/// its `close` of it fails as for a closed one (`EBADF`) and its
/// `close_range`/`closefrom` go around it (`ssh` closes every descriptor
/// above 2 at start).
pub fn is_hold(fd: c_int) -> bool {
    fd >= 0 && self::fd() == Some(fd)
}

/// `WRAPGUARD_HOLD=…` for the environment of an `exec`.
pub fn env_entry() -> Option<&'static CString> {
    ENTRY.get()?.as_ref()
}

/// Whether this process has dropped the privileges the hold was opened
/// with (its direct connections would be refused).
pub fn dropped() -> bool {
    fd().is_some() && sys::geteuid() != EUID.load(Ordering::Relaxed)
}

/// Announces process `pid` on the hold; `false` if there is none.
pub fn hello(pid: u32) -> bool {
    let Some(fd) = fd() else { return false };
    let mut buf = [0u8; MAX_FRAME];
    let Ok(n) = (Request::Hello {
        pid,
        version: control::PROTOCOL_VERSION,
    })
    .encode(&mut buf) else {
        return false;
    };
    sys::send_all(fd, &buf[..n]).is_ok()
}

/// A new control connection authorised by the hold: one end of a socket
/// pair (CLOEXEC, blocking) whose other end goes to the engine (`Serve`).
/// `ENETUNREACH` without a hold.
pub fn connection() -> Result<c_int, c_int> {
    let hold = fd().ok_or(libc::ENETUNREACH)?;
    let (ours, theirs) = sys::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC)?;
    let mut buf = [0u8; MAX_FRAME];
    let sent = Request::Serve
        .encode(&mut buf)
        .map_err(|_| libc::EMSGSIZE)
        .and_then(|n| sys::send_with_fd(hold, &buf[..n], theirs));
    sys::close(theirs);
    match sent {
        Ok(()) => Ok(ours),
        Err(e) => {
            sys::close(ours);
            // The engine is gone (taken down): as an unreachable engine.
            Err(if e == libc::EPIPE {
                libc::ECONNREFUSED
            } else {
                e
            })
        }
    }
}
