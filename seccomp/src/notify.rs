//! The ioctl edge of seccomp user notification (seccomp_unotify(2)):
//! receive a notification, answer it (value, errno or "continue"), check
//! that it is still pending, and install a descriptor into the caller.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// One trapped system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notif {
    /// Cookie identifying it; valid until answered or the caller gives up.
    pub id: u64,
    /// Thread id of the caller (in our pid namespace).
    pub pid: u32,
    /// System call number.
    pub nr: i32,
    /// `AUDIT_ARCH_*` of the call.
    pub arch: u32,
    /// The six arguments.
    pub args: [u64; 6],
}

/// How a notification is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Let the kernel run the call as the caller made it.
    Continue,
    /// The call returns this value (>= 0).
    Value(i64),
    /// The call fails with this errno.
    Errno(i32),
}

/// The listener descriptor of a filter installed with
/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
}

fn ioctl_ret(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl Listener {
    /// Wraps a listener descriptor.
    pub fn new(fd: OwnedFd) -> Listener {
        Listener { fd }
    }

    /// The raw descriptor, for `poll`.
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Receives one notification (blocks unless `poll` said POLLIN).
    pub fn recv(&self) -> io::Result<Notif> {
        // SAFETY: plain old data; the kernel requires it zeroed.
        let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: NOTIF_RECV writes one seccomp_notif into `n`, which lives
        // across the call; the fd is a seccomp listener.
        ioctl_ret(unsafe { libc::ioctl(self.raw(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut n) })?;
        Ok(Notif {
            id: n.id,
            pid: n.pid,
            nr: n.data.nr,
            arch: n.data.arch,
            args: n.data.args,
        })
    }

    /// Whether the notification is still pending (the caller has not been
    /// interrupted or killed). Per seccomp_unotify(2), check this after
    /// reading the caller's memory or opening its pidfd: a recycled pid or
    /// reused memory is then ruled out.
    pub fn id_valid(&self, id: u64) -> bool {
        let mut id = id;
        // SAFETY: NOTIF_ID_VALID reads one u64 from the pointer, which lives
        // across the call.
        unsafe { libc::ioctl(self.raw(), libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &mut id) == 0 }
    }

    /// Answers a notification. `ENOENT`: the caller went away meanwhile.
    pub fn respond(&self, id: u64, a: Answer) -> io::Result<()> {
        // SAFETY: plain old data; all-zero is valid.
        let mut r: libc::seccomp_notif_resp = unsafe { std::mem::zeroed() };
        r.id = id;
        match a {
            Answer::Continue => r.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
            Answer::Value(v) => r.val = v,
            Answer::Errno(e) => {
                r.val = -1;
                r.error = -e.abs();
            }
        }
        // SAFETY: NOTIF_SEND reads one seccomp_notif_resp from `r`, which
        // lives across the call.
        ioctl_ret(unsafe { libc::ioctl(self.raw(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut r) })
            .map(|_| ())
    }

    /// Installs a duplicate of our `src` into the caller of `id`: at
    /// descriptor `target` (replacing what is there, like `dup2`) or at the
    /// lowest free number; with `O_CLOEXEC` if `cloexec`. With `send`, the
    /// same ioctl also answers the notification with the new number
    /// (`SECCOMP_ADDFD_FLAG_SEND`, Linux 5.14). Returns the number.
    pub fn add_fd(
        &self,
        id: u64,
        src: RawFd,
        target: Option<RawFd>,
        cloexec: bool,
        send: bool,
    ) -> io::Result<RawFd> {
        // SAFETY: plain old data; all-zero is valid.
        let mut a: libc::seccomp_notif_addfd = unsafe { std::mem::zeroed() };
        a.id = id;
        a.srcfd = src as u32;
        if let Some(t) = target {
            a.newfd = t as u32;
            a.flags |= libc::SECCOMP_ADDFD_FLAG_SETFD as u32;
        }
        if send {
            a.flags |= libc::SECCOMP_ADDFD_FLAG_SEND as u32;
        }
        if cloexec {
            a.newfd_flags = libc::O_CLOEXEC as u32;
        }
        // SAFETY: NOTIF_ADDFD reads one seccomp_notif_addfd from `a`, which
        // lives across the call; `src` is our open descriptor.
        ioctl_ret(unsafe { libc::ioctl(self.raw(), libc::SECCOMP_IOCTL_NOTIF_ADDFD, &mut a) })
    }
}
