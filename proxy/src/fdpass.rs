//! Receiving a reply frame with a descriptor passed alongside it
//! (`SCM_RIGHTS`): how the engine hands over a datagram flow's socket.

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
