//! io_uring would let a program do network I/O without any libc call the
//! shim sees, so it must not bypass the tunnel: `io_uring_setup` fails with
//! `ENOSYS` in wrapped programs, both through a libc/liburing-style
//! `io_uring_setup` symbol and through `syscall(SYS_io_uring_setup, …)`.
//! Runtimes (tokio-uring, libuv, liburing users) then fall back to epoll.
//! A program that issues the system call instruction itself (static, or
//! liburing built with inline syscalls) is out of reach, as with any
//! LD_PRELOAD shim.

use crate::engine::config;
use libc::{c_char, c_long, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Whether the shim is active (then io_uring is refused).
fn refuse() -> bool {
    config().active
}

/// Interposed `io_uring_setup(2)` wrapper: `ENOSYS` under wrapguard.
///
/// # Safety
/// As for `io_uring_setup(2)`; the arguments are not used.
#[no_mangle]
pub unsafe extern "C" fn io_uring_setup(entries: u32, params: *mut c_void) -> i32 {
    if refuse() {
        crate::sys::set_errno(libc::ENOSYS);
        return -1;
    }
    // SAFETY: the raw system call with the application's arguments.
    unsafe {
        real_syscall(
            libc::SYS_io_uring_setup,
            c_long::from(entries),
            params as c_long,
            0,
            0,
            0,
            0,
        ) as i32
    }
}

static REAL_SYSCALL: AtomicUsize = AtomicUsize::new(0);

type SyscallFn =
    unsafe extern "C" fn(c_long, c_long, c_long, c_long, c_long, c_long, c_long) -> c_long;

/// The next `syscall` (libc's).
unsafe fn real_syscall(
    n: c_long,
    a: c_long,
    b: c_long,
    c: c_long,
    d: c_long,
    e: c_long,
    f: c_long,
) -> c_long {
    let mut p = REAL_SYSCALL.load(Ordering::Acquire);
    if p == 0 {
        // SAFETY: NUL-terminated literal; dlsym is thread-safe.
        p = unsafe { libc::dlsym(libc::RTLD_NEXT, c"syscall".as_ptr() as *const c_char) } as usize;
        if p == 0 {
            crate::sys::set_errno(libc::ENOSYS);
            return -1;
        }
        REAL_SYSCALL.store(p, Ordering::Release);
    }
    // SAFETY: libc's `syscall` takes the number and up to six long
    // arguments in registers (variadic integer arguments are passed as
    // fixed ones on x86-64 and aarch64).
    let real: SyscallFn = unsafe { std::mem::transmute(p) };
    // SAFETY: forwarded arguments.
    unsafe { real(n, a, b, c, d, e, f) }
}

/// Interposed `syscall(2)`: `SYS_io_uring_setup` fails with `ENOSYS` under
/// wrapguard; every other number is passed on unchanged with six argument
/// registers (unused ones carry whatever the caller left there, which the
/// kernel ignores).
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
    if n == libc::SYS_io_uring_setup && refuse() {
        crate::sys::set_errno(libc::ENOSYS);
        return -1;
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
