//! The trapped call a handler works on ([`Call`]) and what it decides
//! ([`Outcome`]): the types every handler (`tcp`, `listen`, `udp`) shares
//! with the supervisor that dispatches to them.

use super::caller;
use super::memory;
use super::notify::{Answer, Listener, Notif};
use super::sockaddr;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::rc::Rc;

/// What a handler did with a notification.
#[derive(Debug)]
pub enum Outcome {
    /// Answer it now.
    Answer(Answer),
    /// Already answered (e.g. `SECCOMP_ADDFD_FLAG_SEND`).
    Answered,
    /// A [`Wait`](super::state::Wait) was queued; it answers later.
    Pending,
}

impl Outcome {
    /// Fail with `e`.
    pub fn errno(e: i32) -> Outcome {
        Outcome::Answer(Answer::Errno(e))
    }
    /// Let the kernel run the call.
    pub fn cont() -> Outcome {
        Outcome::Answer(Answer::Continue)
    }
    /// Return `v`.
    pub fn value(v: i64) -> Outcome {
        Outcome::Answer(Answer::Value(v))
    }
    /// Return the value, or fail with the errno.
    pub fn result(r: Result<i64, i32>) -> Outcome {
        match r {
            Ok(v) => Outcome::value(v),
            Err(e) => Outcome::errno(e),
        }
    }
}

/// The trapped call being handled: the notification and the caller's pidfd.
pub struct Call {
    /// The notification.
    pub n: Notif,
    /// The caller's process.
    pub pidfd: OwnedFd,
    /// The listener, to re-check validity.
    pub listener: Rc<Listener>,
}

impl Call {
    /// A copy of the caller's descriptor in argument `i`.
    pub fn fd(&self, i: usize) -> io::Result<OwnedFd> {
        caller::get_fd(&self.pidfd, self.n.args[i])
    }

    /// Reads the caller's memory, then checks the call is still pending.
    pub fn read(&self, addr: u64, len: usize) -> io::Result<Vec<u8>> {
        let b = memory::read(self.n.pid, addr, len)?;
        if !self.listener.id_valid(self.n.id) {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        Ok(b)
    }

    /// Reads a `socklen_t` of the caller.
    pub fn read_u32(&self, addr: u64) -> io::Result<u32> {
        let b = self.read(addr, 4)?;
        Ok(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Writes the caller's memory.
    pub fn write(&self, addr: u64, bytes: &[u8]) -> io::Result<()> {
        memory::write(self.n.pid, addr, bytes)
    }
}

/// Writes an address to the caller's (`addr`, `len`) out-parameters.
pub fn put_addr(c: &Call, addr: u64, len: u64, a: SocketAddr) -> Outcome {
    let Ok(room) = c.read_u32(len) else {
        return Outcome::errno(libc::EFAULT);
    };
    if (room as i32) < 0 {
        return Outcome::errno(libc::EINVAL);
    }
    let (bytes, full) = sockaddr::truncated(a, room);
    if c.write(addr, &bytes).is_err() || c.write(len, &full.to_ne_bytes()).is_err() {
        return Outcome::errno(libc::EFAULT);
    }
    Outcome::value(0)
}
