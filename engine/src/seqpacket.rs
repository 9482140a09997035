//! The engine's end of the UDP data sockets: a `SOCK_SEQPACKET` unix socket
//! pair per datagram flow (one message = one datagram with its
//! [`control::datagram`] header), and handing the shim's end over with
//! `SCM_RIGHTS` (and receiving a proxy client's connection the same way).
//! Thin, safe wrappers over the few libc calls involved.

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

/// Sends `bytes` on a stream socket with `pass` attached (`SCM_RIGHTS`),
/// once, without blocking; returns how many bytes went.
pub fn send_with_fd(sock: RawFd, bytes: &[u8], pass: RawFd) -> io::Result<usize> {
    const SPACE: usize = 64;
    let mut cbuf = [0u8; SPACE];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: plain old data; all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    if space > SPACE {
        return Err(io::Error::from_raw_os_error(libc::EOVERFLOW));
    }
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points to `space` bytes, enough for one cmsg
    // holding one descriptor, so CMSG_FIRSTHDR is non-null and in bounds.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), pass);
    }
    // SAFETY: `msg` describes live buffers for the duration of the call.
    let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Receives without blocking into `buf`, and the descriptor passed with
/// the bytes (`SCM_RIGHTS`), if any: how a proxy front-end hands over its
/// client's connection ([`control::ConnectRequest::hand_over`]). `Ok((0,
/// _))` is end of file. Descriptors beyond the first are closed.
pub fn recv_with_fd(sock: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut cbuf = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: plain old data; all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    // SAFETY: `msg` describes live buffers for the duration of the call.
    let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `msg_control` with `msg_controllen` bytes;
    // CMSG_FIRSTHDR/CMSG_NXTHDR stay within them, and the descriptors of
    // an SCM_RIGHTS message (as many as fit its length) are now ours.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c);
                let len = (*c).cmsg_len as usize - (data as usize - c as usize);
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    let raw: RawFd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    fds.push(OwnedFd::from_raw_fd(raw));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let first = if fds.is_empty() {
        None
    } else {
        Some(fds.swap_remove(0))
    };
    Ok((n as usize, first))
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

    #[test]
    fn a_passed_descriptor_arrives_with_its_byte() {
        use std::io::{Read, Write};
        let (a, b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let (mut x, y) = std::os::unix::net::UnixStream::pair().expect("pair");
        let mut buf = [0u8; 8];
        assert_eq!(
            recv_with_fd(b.as_raw_fd(), &mut buf)
                .map(|(n, _)| n)
                .map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock)
        );
        assert_eq!(
            send_with_fd(a.as_raw_fd(), b"H", y.as_raw_fd()).expect("send"),
            1
        );
        drop(y);
        let (n, fd) = recv_with_fd(b.as_raw_fd(), &mut buf).expect("recv");
        assert_eq!(&buf[..n], b"H");
        // The passed end is the same socket: what goes in at x comes out of it.
        let mut got = std::os::unix::net::UnixStream::from(fd.expect("a descriptor"));
        x.write_all(b"through").expect("write");
        let mut seen = [0u8; 7];
        got.read_exact(&mut seen).expect("read");
        assert_eq!(&seen, b"through");
        // A plain byte carries none; the end of the stream reads 0.
        (&a).write_all(b"P").expect("write");
        assert!(recv_with_fd(b.as_raw_fd(), &mut buf)
            .expect("plain")
            .1
            .is_none());
        drop(a);
        assert_eq!(recv_with_fd(b.as_raw_fd(), &mut buf).expect("eof").0, 0);
    }
}
