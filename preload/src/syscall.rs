//! `syscall(2)`, interposed: programs (libuv, Go's cgo, sandboxes) call
//! some system calls through it instead of their libc wrappers, so the
//! numbers the shim must see are sent to the same hooks as the libc calls:
//! io_uring is refused ([`crate::uring`]), the descriptor's life
//! ([`crate::fd_lifecycle`]), and socket I/O on carried datagram sockets.

use crate::sys::real_syscall;
use libc::{c_int, c_long, c_uint, c_void};

/// Interposed `syscall(2)`: `SYS_io_uring_setup` fails with `ENOSYS` under
/// wrapguard; `close`, `close_range` and the dup family go through their
/// hooks ([`crate::fd_lifecycle`]), and so do socket calls on a carried
/// datagram socket; every other number is passed on unchanged with six
/// argument registers (unused ones carry whatever the caller left there,
/// which the kernel ignores).
///
/// # Safety
/// As for `syscall(2)`.
#[no_mangle]
pub unsafe extern "C" fn syscall(
    n: c_long,
    a: c_long,
    b: c_long,
    c: c_long,
    d: c_long,
    e: c_long,
    f: c_long,
) -> c_long {
    if n == libc::SYS_io_uring_setup && crate::uring::refuse() {
        crate::sys::set_errno(libc::ENOSYS);
        return -1;
    }
    // The descriptor's life through syscall() goes through the same hooks
    // as libc's calls, so the fd table never outlives a close (libuv
    // closes every descriptor with syscall(SYS_close, fd)).
    if let Some(r) = fd_lifecycle(n, a, b, c) {
        return r;
    }
    // Socket calls made through syscall() (libuv does) on a datagram socket
    // the shim carries go through the same hooks as the libc calls.
    if is_datagram_io(n) && crate::table::maybe_udp(a as libc::c_int) {
        // SAFETY: the application's arguments, as the kernel would take them.
        return unsafe { datagram_io(n, a, b, c, d, e, f) };
    }
    // SAFETY: forwarded application arguments.
    unsafe { real_syscall(n, a, b, c, d, e, f) }
}

/// `close`/`close_range`/`dup`/`dup2`/`dup3` made through `syscall(2)`,
/// done by their hooks; `None` for every other number.
fn fd_lifecycle(n: c_long, a: c_long, b: c_long, c: c_long) -> Option<c_long> {
    use crate::fd_lifecycle as fdl;
    // Nothing to keep in step before a socket is ours or the hold is
    // open (and the shim must not start up inside a malloc's start-up:
    // jemalloc opens, reads and closes a /proc file with syscall()).
    if !crate::table::ever_used() && crate::hold::fd().is_none() {
        return None;
    }
    let (fd, fd2) = (a as c_int, b as c_int);
    // Integer arguments in every arm, as the kernel takes them.
    let r = match n {
        // SAFETY: integer argument.
        libc::SYS_close => unsafe { fdl::close(fd) },
        // SAFETY: integer arguments.
        libc::SYS_close_range => unsafe { fdl::close_range(a as c_uint, b as c_uint, c as c_int) },
        // SAFETY: integer argument.
        libc::SYS_dup => unsafe { fdl::dup(fd) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: integer arguments.
        libc::SYS_dup2 => unsafe { fdl::dup2(fd, fd2) },
        // SAFETY: integer arguments.
        libc::SYS_dup3 => unsafe { fdl::dup3(fd, fd2, c as c_int) },
        _ => return None,
    };
    Some(c_long::from(r))
}

fn is_datagram_io(n: c_long) -> bool {
    matches!(
        n,
        libc::SYS_sendto
            | libc::SYS_recvfrom
            | libc::SYS_sendmsg
            | libc::SYS_recvmsg
            | libc::SYS_sendmmsg
            | libc::SYS_recvmmsg
            | libc::SYS_read
            | libc::SYS_write
    )
}

/// Dispatches a socket system call on a carried fd to its hook.
///
/// # Safety
/// The arguments must be valid for system call `n`.
unsafe fn datagram_io(
    n: c_long,
    a: c_long,
    b: c_long,
    c: c_long,
    d: c_long,
    e: c_long,
    f: c_long,
) -> c_long {
    use crate::{recv, send};
    let fd = a as libc::c_int;
    // SAFETY: in each arm the pointers and lengths come from the caller as
    // the kernel's ABI defines them for this call.
    let r: c_long = unsafe {
        match n {
            libc::SYS_sendto => send::sendto(
                fd,
                b as *const c_void,
                c as usize,
                d as libc::c_int,
                e as *const libc::sockaddr,
                f as libc::socklen_t,
            ) as c_long,
            libc::SYS_recvfrom => recv::recvfrom(
                fd,
                b as *mut c_void,
                c as usize,
                d as libc::c_int,
                e as *mut libc::sockaddr,
                f as *mut libc::socklen_t,
            ) as c_long,
            libc::SYS_sendmsg => {
                send::sendmsg(fd, b as *const libc::msghdr, c as libc::c_int) as c_long
            }
            libc::SYS_recvmsg => {
                recv::recvmsg(fd, b as *mut libc::msghdr, c as libc::c_int) as c_long
            }
            libc::SYS_sendmmsg => c_long::from(send::sendmmsg(
                fd,
                b as *mut libc::mmsghdr,
                c as libc::c_uint,
                d as libc::c_int,
            )),
            libc::SYS_recvmmsg => c_long::from(recv::recvmmsg(
                fd,
                b as *mut libc::mmsghdr,
                c as libc::c_uint,
                d as libc::c_int,
                e as *mut libc::timespec,
            )),
            libc::SYS_read => recv::read(fd, b as *mut c_void, c as usize) as c_long,
            _ => send::write(fd, b as *const c_void, c as usize) as c_long,
        }
    };
    r
}
