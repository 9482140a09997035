//! Small operations on our copies of the child's descriptors (same open
//! file as the child's): `int` socket options, `O_NONBLOCK`, the socket's
//! own and peer address. Shared by the handlers (`tcp`, `listen`, `udp`).

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

/// An `int` socket option of our copy of a descriptor.
pub fn sockopt_int(fd: &OwnedFd, level: i32, name: i32) -> Option<i32> {
    let mut v: libc::c_int = 0;
    let mut l = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v`/`l` live across the call and describe an int.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut v as *mut libc::c_int).cast(),
            &mut l,
        )
    };
    (r == 0).then_some(v)
}

/// Sets an `int` socket option on our copy.
pub fn set_sockopt_int(fd: &OwnedFd, level: i32, name: i32, v: i32) {
    // SAFETY: `v` lives across the call and is an int.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// Whether the open file is non-blocking.
pub fn nonblocking(fd: &OwnedFd) -> bool {
    // SAFETY: F_GETFL on our open descriptor.
    let fl = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    fl >= 0 && fl & libc::O_NONBLOCK != 0
}

/// Sets or clears `O_NONBLOCK` on the open file.
pub fn set_nonblocking(fd: &OwnedFd, on: bool) {
    // SAFETY: fcntl on our open descriptor.
    unsafe {
        let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if fl >= 0 {
            let nfl = if on {
                fl | libc::O_NONBLOCK
            } else {
                fl & !libc::O_NONBLOCK
            };
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, nfl);
        }
    }
}

/// The socket's own (or peer's) address.
pub fn sock_name(fd: &OwnedFd, peer: bool) -> Option<SocketAddr> {
    let s = socket2::SockRef::from(fd);
    let a = if peer { s.peer_addr() } else { s.local_addr() };
    a.ok().and_then(|a| a.as_socket())
}
