//! io_uring would let a program do network I/O without any libc call the
//! shim sees, so it must not bypass the tunnel: `io_uring_setup` fails with
//! `ENOSYS` in wrapped programs, both through a libc/liburing-style
//! `io_uring_setup` symbol and through `syscall(SYS_io_uring_setup, …)`.
//! Runtimes (tokio-uring, libuv, liburing users) then fall back to epoll.
//! A program that issues the system call instruction itself (static, or
//! liburing built with inline syscalls) is out of reach, as with any
//! LD_PRELOAD shim.

use crate::engine::config;
use crate::sys::real_syscall;
use libc::{c_long, c_void};

/// Whether the shim is active (then io_uring is refused).
pub(crate) fn refuse() -> bool {
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
