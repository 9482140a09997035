//! Descriptors passed alongside bytes (`SCM_RIGHTS`): receiving a reply
//! frame with one (how the engine hands over a datagram flow's socket),
//! and sending one byte with one (how a relay hands its client's
//! connection to the engine).

use control::{Reply, MAX_FRAME, PREFIX_LEN};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

fn proto_err() -> io::Error {
    io::Error::from_raw_os_error(libc::EPROTO)
}

/// Reads one reply frame from `s`, and the descriptor passed with it, if
/// any.
pub fn recv_reply_with_fd(s: &mut UnixStream) -> io::Result<(Reply, Option<OwnedFd>)> {
    let mut buf = [0u8; MAX_FRAME];
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
    let n = unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fd = None;
    // SAFETY: the kernel filled `msg_control` with `msg_controllen` bytes;
    // CMSG_FIRSTHDR/CMSG_NXTHDR stay within them, and an SCM_RIGHTS
    // message carries descriptors that are now ours.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let raw: RawFd = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                fd = Some(OwnedFd::from_raw_fd(raw));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let mut have = n as usize;
    if have == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if have < PREFIX_LEN {
        s.read_exact(&mut buf[have..PREFIX_LEN])?;
        have = PREFIX_LEN;
    }
    let total = control::frame_len([buf[0], buf[1]]).map_err(|_| proto_err())?;
    if have < total {
        s.read_exact(&mut buf[have..total])?;
    }
    let (reply, _) = Reply::decode(&buf[..total]).map_err(|_| proto_err())?;
    Ok((reply, fd))
}

/// Sends one byte with `pass` attached on `sock` without blocking;
/// `Ok(1)` once sent.
pub fn send_byte_with_fd(sock: RawFd, pass: RawFd) -> io::Result<usize> {
    let byte = [0u8; 1];
    let mut cbuf = [0u64; 4];
    let mut iov = libc::iovec {
        iov_base: byte.as_ptr() as *mut libc::c_void,
        iov_len: 1,
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
