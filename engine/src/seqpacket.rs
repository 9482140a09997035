//! The engine's end of the UDP data sockets: a `SOCK_SEQPACKET` unix socket
//! pair per datagram flow (one message = one datagram with its
//! [`control::datagram`] header), and handing the shim's end over with
//! `SCM_RIGHTS` (the `fdpass` crate). Thin, safe wrappers over the few
//! libc calls involved.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A socket pair: (engine end, non-blocking; shim end, blocking). Both
/// CLOEXEC; the shim's end keeps CLOEXEC on receipt (`MSG_CMSG_CLOEXEC`)
/// and takes the application's flags when it is swapped in.
pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: plain fcntl on a descriptor we own.
    let fl = unsafe { libc::fcntl(ours.as_raw_fd(), libc::F_GETFL) };
    // SAFETY: as above.
    if fl < 0 || unsafe { libc::fcntl(ours.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK) } < 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok((ours, theirs))
}

/// Receives one message without blocking; `Ok(0)` is end of file (every
/// real message has a header, so it is never empty).
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes of writes.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Whether the other end of the pair is gone (`POLLHUP`/`POLLRDHUP`), so a
/// `recv` of 0 bytes is end of file rather than an empty message.
pub fn hung_up(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    r > 0 && p.revents & (libc::POLLHUP | libc::POLLRDHUP) != 0
}

/// Sends one message made of `head` then `body`, without blocking.
pub fn send2(fd: RawFd, head: &[u8], body: &[u8]) -> io::Result<()> {
    let mut iov = [
        libc::iovec {
            iov_base: head.as_ptr() as *mut libc::c_void,
            iov_len: head.len(),
        },
        libc::iovec {
            iov_base: body.as_ptr() as *mut libc::c_void,
            iov_len: body.len(),
        },
    ];
    // SAFETY: plain old data; all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len() as _;
    // SAFETY: `msg` points to two iovecs over live slices the kernel only reads.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_keeps_message_boundaries_and_reports_eof() {
        let (a, b) = pair().expect("pair");
        send2(a.as_raw_fd(), b"head", b"body").expect("send");
        send2(a.as_raw_fd(), b"x", b"").expect("send");
        let mut buf = [0u8; 64];
        // SAFETY: reading into a live buffer.
        let n = unsafe { libc::recv(b.as_raw_fd(), buf.as_mut_ptr().cast(), 64, 0) };
        assert_eq!(&buf[..n as usize], b"headbody");
        // SAFETY: as above.
        let n = unsafe { libc::recv(b.as_raw_fd(), buf.as_mut_ptr().cast(), 64, 0) };
        assert_eq!(&buf[..n as usize], b"x");
        assert_eq!(
            recv(a.as_raw_fd(), &mut buf).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock)
        );
        // An empty message reads as 0 bytes too; only a hang-up is EOF.
        send2(b.as_raw_fd(), b"", b"").expect("send empty");
        assert_eq!(recv(a.as_raw_fd(), &mut buf).expect("empty"), 0);
        assert!(!hung_up(a.as_raw_fd()));
        drop(b);
        assert!(hung_up(a.as_raw_fd()));
        assert_eq!(recv(a.as_raw_fd(), &mut buf).expect("eof"), 0);
    }
}
