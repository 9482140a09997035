//! The process behind a notification: its pidfd, copies of its
//! descriptors (`pidfd_getfd`), their flags (`/proc/PID/fdinfo`), and the
//! identity of an open file (inode), which is how the supervisor
//! recognises the sockets it installed whatever their fd number.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `PIDFD_THREAD` (Linux 6.9): a pidfd for a thread that is not a leader.
const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;

fn pidfd_open(pid: u32, flags: libc::c_uint) -> io::Result<OwnedFd> {
    // SAFETY: plain system call with integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, flags) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pidfd_open returned a new descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// The thread-group id of thread `tid` (from `/proc/TID/status`).
fn tgid_of(tid: u32) -> io::Result<u32> {
    let s = std::fs::read_to_string(format!("/proc/{tid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))
}

/// A pidfd for the process of thread `tid`. Check the notification is
/// still valid afterwards, so a recycled id is ruled out.
pub fn open(tid: u32) -> io::Result<OwnedFd> {
    // A thread that is not the leader: EINVAL before Linux 6.9, ENOENT
    // after (6.18 here); either way try it as a thread, then its process.
    match pidfd_open(tid, 0) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => {
            pidfd_open(tid, PIDFD_THREAD).or_else(|_| pidfd_open(tgid_of(tid)?, 0))
        }
        r => r,
    }
}

/// A duplicate (same open file) of the caller's descriptor `fd`; ours is
/// close-on-exec.
pub fn get_fd(pidfd: &OwnedFd, fd: u64) -> io::Result<OwnedFd> {
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: plain system call with integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pidfd_getfd returned a new descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// Whether the caller's `fd` is close-on-exec (`flags:` in fdinfo, octal).
pub fn cloexec(pid: u32, fd: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .is_some_and(|f| f & libc::O_CLOEXEC as u32 != 0)
}

/// What kind of open file a descriptor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    /// Inode number (unique among live sockets).
    pub ino: u64,
    /// Whether it is a socket.
    pub socket: bool,
}

/// The identity of the open file behind `fd`.
pub fn file_id(fd: &OwnedFd) -> io::Result<FileId> {
    // SAFETY: plain old data; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` lives across the call; the fd is open.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(FileId {
        ino: st.st_ino,
        socket: st.st_mode & libc::S_IFMT == libc::S_IFSOCK,
    })
}
