//! Descriptors passed alongside bytes on unix sockets (`SCM_RIGHTS`), the
//! one FFI edge every side of the control protocol shares: the engine
//! hands over a datagram flow's socket with its reply frame, a proxy
//! front-end hands its client's connection to the engine with one byte,
//! and the control clients (proxy, seccomp mode) read a reply frame with
//! its descriptor. Thin, safe wrappers over `sendmsg`/`recvmsg`.

use control::{Reply, MAX_FRAME, PREFIX_LEN};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// Sends `bytes` with `pass` attached on `sock` without blocking; returns
/// how many bytes went (the descriptor goes with the first of them).
pub fn send_with_fd(sock: RawFd, bytes: &[u8], pass: RawFd) -> io::Result<usize> {
    let mut cbuf = [0u64; 4];
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
    if space > std::mem::size_of_val(&cbuf) {
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

/// Receives into `buf`, and the descriptor passed with the bytes, if any;
/// `flags` are `recvmsg`'s (`MSG_DONTWAIT` for a non-blocking read;
/// `MSG_CMSG_CLOEXEC` is always added). `Ok((0, _))` is end of file.
/// Descriptors beyond the first are closed.
pub fn recv_with_fd(
    sock: RawFd,
    buf: &mut [u8],
    flags: libc::c_int,
) -> io::Result<(usize, Option<OwnedFd>)> {
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
    let n = unsafe { libc::recvmsg(sock, &mut msg, flags | libc::MSG_CMSG_CLOEXEC) };
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
                let len = ((*c).cmsg_len as usize).saturating_sub(data as usize - c as usize);
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

/// Reads one reply frame from the blocking `s`, and the descriptor passed
/// with it, if any. A malformed frame is `EPROTO`.
pub fn recv_reply_with_fd(s: &mut UnixStream) -> io::Result<(Reply, Option<OwnedFd>)> {
    let proto = || io::Error::from_raw_os_error(libc::EPROTO);
    let mut buf = [0u8; MAX_FRAME];
    let (mut have, fd) = recv_with_fd(s.as_raw_fd(), &mut buf, 0)?;
    if have == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if have < PREFIX_LEN {
        s.read_exact(&mut buf[have..PREFIX_LEN])?;
        have = PREFIX_LEN;
    }
    let total = control::frame_len([buf[0], buf[1]]).map_err(|_| proto())?;
    if have < total {
        s.read_exact(&mut buf[have..total])?;
    }
    let (reply, _) = Reply::decode(&buf[..total]).map_err(|_| proto())?;
    Ok((reply, fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_passed_descriptor_arrives_with_its_bytes() {
        let (a, b) = UnixStream::pair().expect("pair");
        let (mut x, y) = UnixStream::pair().expect("pair");
        let mut buf = [0u8; 8];
        let r = recv_with_fd(b.as_raw_fd(), &mut buf, libc::MSG_DONTWAIT);
        assert_eq!(
            r.map(|(n, _)| n).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock)
        );
        assert_eq!(
            send_with_fd(a.as_raw_fd(), b"H", y.as_raw_fd()).expect("send"),
            1
        );
        drop(y);
        let (n, fd) = recv_with_fd(b.as_raw_fd(), &mut buf, 0).expect("recv");
        assert_eq!(&buf[..n], b"H");
        // The passed end is the same socket: what goes in at x comes out of it.
        let mut got = UnixStream::from(fd.expect("a descriptor"));
        x.write_all(b"through").expect("write");
        let mut seen = [0u8; 7];
        got.read_exact(&mut seen).expect("read");
        assert_eq!(&seen, b"through");
        // A plain byte carries none; the end of the stream reads 0.
        (&a).write_all(b"P").expect("write");
        assert!(recv_with_fd(b.as_raw_fd(), &mut buf, 0)
            .expect("plain")
            .1
            .is_none());
        drop(a);
        assert_eq!(recv_with_fd(b.as_raw_fd(), &mut buf, 0).expect("eof").0, 0);
    }

    #[test]
    fn a_reply_frame_comes_with_its_descriptor_or_without() {
        let (a, mut b) = UnixStream::pair().expect("pair");
        let (_x, y) = UnixStream::pair().expect("pair");
        let mut frame = [0u8; MAX_FRAME];
        let n = Reply::Done(0).encode(&mut frame).expect("encode");
        assert_eq!(
            send_with_fd(a.as_raw_fd(), &frame[..n], y.as_raw_fd()).expect("send"),
            n
        );
        let (r, fd) = recv_reply_with_fd(&mut b).expect("reply");
        assert_eq!(r, Reply::Done(0));
        assert!(fd.is_some());
        (&a).write_all(&frame[..n]).expect("write");
        let (r, fd) = recv_reply_with_fd(&mut b).expect("reply");
        assert_eq!(r, Reply::Done(0));
        assert!(fd.is_none());
        // A frame that does not decode is EPROTO, not a panic.
        (&a).write_all(&[2, 0, 99, 99]).expect("write");
        let e = recv_reply_with_fd(&mut b).expect_err("garbage");
        assert_eq!(e.raw_os_error(), Some(libc::EPROTO));
        drop(a);
        assert!(recv_reply_with_fd(&mut b).is_err());
    }
}
