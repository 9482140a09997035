//! Raw system calls used by the shim for its own work.
//!
//! The shim exports `connect`, `close`, `dup3`… itself, so calling those
//! names through libc from inside the shim would land in our own hooks.
//! Everything the shim does for itself goes through `syscall(2)` here;
//! everything done on behalf of the application goes through [`crate::real`].

use libc::{c_char, c_int, c_long, c_void, sockaddr, socklen_t};
use std::sync::atomic::{AtomicUsize, Ordering};

/// libc's `syscall()`, never the shim's hook of it ([`crate::syscall`]):
/// the shim's own system calls are not the program's, and must not be
/// routed to the hooks that keep the fd table (a `close` of a descriptor
/// the shim manages, a `sendto` on a carried datagram socket).
macro_rules! raw_syscall {
    ($n:expr $(, $a:expr)* $(,)?) => {{
        let a = six_args([$($a as c_long),*]);
        real_syscall($n, a[0], a[1], a[2], a[3], a[4], a[5])
    }};
}

static REAL_SYSCALL: AtomicUsize = AtomicUsize::new(0);

type SyscallFn =
    unsafe extern "C" fn(c_long, c_long, c_long, c_long, c_long, c_long, c_long) -> c_long;

/// The next `syscall` (libc's).
///
/// # Safety
/// The arguments must be valid for system call `n`.
pub(crate) unsafe fn real_syscall(
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
            set_errno(libc::ENOSYS);
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

/// Pads a system call's arguments to the six registers.
fn six_args<const N: usize>(given: [c_long; N]) -> [c_long; 6] {
    let mut a = [0; 6];
    a[..N].copy_from_slice(&given);
    a
}

/// Reads the calling thread's errno.
pub fn errno() -> c_int {
    // SAFETY: __errno_location always returns a valid thread-local pointer.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's errno.
pub fn set_errno(e: c_int) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = e }
}

/// Converts a raw syscall return into `Ok(value)` or `Err(errno)`.
fn check(r: c_long) -> Result<c_long, c_int> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

/// `socket(2)`.
pub fn socket(domain: c_int, ty: c_int, proto: c_int) -> Result<c_int, c_int> {
    // SAFETY: integer-only syscall.
    check(unsafe {
        raw_syscall!(
            libc::SYS_socket,
            domain as c_long,
            ty as c_long,
            proto as c_long,
        )
    })
    .map(|r| r as c_int)
}

/// `connect(2)`; retried on EINTR (used only on unix sockets to the engine).
///
/// # Safety
/// `addr` must point to `len` readable bytes.
pub unsafe fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> Result<(), c_int> {
    loop {
        // SAFETY: the caller guarantees `addr`/`len`.
        let r = unsafe { raw_syscall!(libc::SYS_connect, fd as c_long, addr, len as c_long) };
        match check(r) {
            Err(libc::EINTR) => continue,
            other => return other.map(|_| ()),
        }
    }
}

/// `close(2)`, errno untouched.
pub fn close(fd: c_int) {
    let saved = errno();
    // SAFETY: integer-only syscall.
    unsafe { raw_syscall!(libc::SYS_close, fd as c_long) };
    set_errno(saved);
}

/// `dup3(2)`.
pub fn dup3(old: c_int, new: c_int, flags: c_int) -> Result<c_int, c_int> {
    // SAFETY: integer-only syscall.
    check(unsafe {
        raw_syscall!(
            libc::SYS_dup3,
            old as c_long,
            new as c_long,
            flags as c_long,
        )
    })
    .map(|r| r as c_int)
}

/// `fcntl(2)` with an integer argument.
pub fn fcntl(fd: c_int, cmd: c_int, arg: c_long) -> Result<c_int, c_int> {
    // SAFETY: integer-only commands are used with this wrapper.
    check(unsafe { raw_syscall!(libc::SYS_fcntl, fd as c_long, cmd as c_long, arg) })
        .map(|r| r as c_int)
}

/// `getsockopt(2)` of an `int` option.
pub fn getsockopt_int(fd: c_int, level: c_int, name: c_int) -> Result<c_int, c_int> {
    let mut v: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as socklen_t;
    // SAFETY: `v` and `len` are valid for the kernel to write.
    let r = unsafe {
        raw_syscall!(
            libc::SYS_getsockopt,
            fd as c_long,
            level as c_long,
            name as c_long,
            &mut v as *mut c_int,
            &mut len as *mut socklen_t,
        )
    };
    check(r).map(|_| v)
}

/// `getsockopt(2)` with the caller's buffer.
///
/// # Safety
/// `val`/`len` as for the system call.
pub unsafe fn getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: *mut socklen_t,
) -> c_long {
    // SAFETY: forwarded from the caller.
    unsafe {
        raw_syscall!(
            libc::SYS_getsockopt,
            fd as c_long,
            level as c_long,
            name as c_long,
            val,
            len,
        )
    }
}

/// `setsockopt(2)` with the caller's buffer.
///
/// # Safety
/// `val`/`len` as for the system call.
pub unsafe fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: socklen_t,
) -> c_long {
    // SAFETY: forwarded from the caller.
    unsafe {
        raw_syscall!(
            libc::SYS_setsockopt,
            fd as c_long,
            level as c_long,
            name as c_long,
            val,
            len as c_long,
        )
    }
}

/// `setsockopt(2)` of an `int` option.
pub fn setsockopt_int(fd: c_int, level: c_int, name: c_int, v: c_int) -> Result<(), c_int> {
    // SAFETY: `v` lives across the call.
    let r = unsafe {
        setsockopt(
            fd,
            level,
            name,
            &v as *const c_int as *const c_void,
            std::mem::size_of::<c_int>() as socklen_t,
        )
    };
    check(r).map(|_| ())
}

/// `getsockname(2)` into a `sockaddr_storage`.
pub fn getsockname(fd: c_int) -> Result<(libc::sockaddr_storage, socklen_t), c_int> {
    name_call(libc::SYS_getsockname, fd)
}

/// `getpeername(2)` into a `sockaddr_storage`.
pub fn getpeername(fd: c_int) -> Result<(libc::sockaddr_storage, socklen_t), c_int> {
    name_call(libc::SYS_getpeername, fd)
}

fn name_call(nr: c_long, fd: c_int) -> Result<(libc::sockaddr_storage, socklen_t), c_int> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as socklen_t;
    // SAFETY: `ss`/`len` are valid for the kernel to write.
    let r = unsafe {
        raw_syscall!(
            nr,
            fd as c_long,
            &mut ss as *mut _ as *mut sockaddr,
            &mut len as *mut socklen_t,
        )
    };
    check(r).map(|_| (ss, len))
}

/// `bind(2)`.
///
/// # Safety
/// `addr` must point to `len` readable bytes.
pub unsafe fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> Result<(), c_int> {
    // SAFETY: forwarded from the caller.
    check(unsafe { raw_syscall!(libc::SYS_bind, fd as c_long, addr, len as c_long) }).map(|_| ())
}

/// Sends all of `buf` (MSG_NOSIGNAL, EINTR retried).
pub fn send_all(fd: c_int, mut buf: &[u8]) -> Result<(), c_int> {
    while !buf.is_empty() {
        // SAFETY: `buf` is valid for reads of its length.
        let r = unsafe {
            raw_syscall!(
                libc::SYS_sendto,
                fd as c_long,
                buf.as_ptr(),
                buf.len(),
                libc::MSG_NOSIGNAL as c_long,
                std::ptr::null::<sockaddr>(),
                0 as c_long,
            )
        };
        match check(r) {
            Ok(n) => buf = buf.get(n as usize..).unwrap_or(&[]),
            Err(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Receives exactly `buf.len()` bytes (EINTR retried); EOF is `ECONNRESET`.
pub fn recv_exact(fd: c_int, buf: &mut [u8]) -> Result<(), c_int> {
    let mut got = 0;
    while got < buf.len() {
        let rest = &mut buf[got..];
        // SAFETY: `rest` is valid for writes of its length.
        let r = unsafe {
            raw_syscall!(
                libc::SYS_recvfrom,
                fd as c_long,
                rest.as_mut_ptr(),
                rest.len(),
                0 as c_long,
                std::ptr::null_mut::<sockaddr>(),
                std::ptr::null_mut::<socklen_t>(),
            )
        };
        match check(r) {
            Ok(0) => return Err(libc::ECONNRESET),
            Ok(n) => got += n as usize,
            Err(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Receives up to `buf.len()` bytes and at most one descriptor passed with
/// `SCM_RIGHTS` (made CLOEXEC); EINTR retried, EOF is `ECONNRESET`.
pub fn recv_with_fd(fd: c_int, buf: &mut [u8]) -> Result<(usize, Option<c_int>), c_int> {
    let mut cbuf = [0u64; 8];
    loop {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut c_void,
            iov_len: buf.len(),
        };
        // SAFETY: plain old data; all-zero is valid.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr() as *mut c_void;
        msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
        // SAFETY: `msg` describes live buffers for the duration of the call.
        let r = unsafe {
            raw_syscall!(
                libc::SYS_recvmsg,
                fd as c_long,
                &mut msg as *mut libc::msghdr,
                libc::MSG_CMSG_CLOEXEC as c_long,
            )
        };
        let n = match check(r) {
            Ok(0) => return Err(libc::ECONNRESET),
            Ok(n) => n as usize,
            Err(libc::EINTR) => continue,
            Err(e) => return Err(e),
        };
        let mut passed = None;
        // SAFETY: the kernel filled msg_control/msg_controllen; the CMSG
        // macros walk within them.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let data = libc::CMSG_DATA(c) as *const c_int;
                    let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                        / std::mem::size_of::<c_int>();
                    for i in 0..count {
                        let got = std::ptr::read_unaligned(data.add(i));
                        if passed.is_none() {
                            passed = Some(got);
                        } else {
                            close(got);
                        }
                    }
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        return Ok((n, passed));
    }
}

/// Sends all of `buf` in one `sendmsg` with descriptor `pass` attached
/// (`SCM_RIGHTS`; MSG_NOSIGNAL, EINTR retried). A short send is `EMSGSIZE`:
/// the frame must arrive whole, with its descriptor.
pub fn send_with_fd(fd: c_int, buf: &[u8], pass: c_int) -> Result<(), c_int> {
    let mut cbuf = [0u64; 4];
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<c_int>() as u32) } as usize;
    if space > std::mem::size_of_val(&cbuf) {
        return Err(libc::EOVERFLOW);
    }
    loop {
        let mut iov = libc::iovec {
            iov_base: buf.as_ptr() as *mut c_void,
            iov_len: buf.len(),
        };
        // SAFETY: plain old data; all-zero is valid.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr() as *mut c_void;
        msg.msg_controllen = space as _;
        // SAFETY: msg_control holds `space` bytes, room for one cmsg with
        // one descriptor, so CMSG_FIRSTHDR is non-null and in bounds.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<c_int>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut c_int, pass);
        }
        // SAFETY: `msg` describes live buffers for the duration of the call.
        let r = unsafe {
            raw_syscall!(
                libc::SYS_sendmsg,
                fd as c_long,
                &msg as *const libc::msghdr,
                libc::MSG_NOSIGNAL as c_long,
            )
        };
        match check(r) {
            Ok(n) if n as usize == buf.len() => return Ok(()),
            Ok(_) => return Err(libc::EMSGSIZE),
            Err(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `socketpair(2)`.
pub fn socketpair(domain: c_int, ty: c_int) -> Result<(c_int, c_int), c_int> {
    let mut fds = [-1 as c_int; 2];
    // SAFETY: socketpair writes two ints into `fds`.
    check(unsafe {
        raw_syscall!(
            libc::SYS_socketpair,
            domain as c_long,
            ty as c_long,
            0 as c_long,
            fds.as_mut_ptr(),
        )
    })?;
    Ok((fds[0], fds[1]))
}

/// `geteuid(2)`.
pub fn geteuid() -> u32 {
    // SAFETY: no arguments.
    unsafe { raw_syscall!(libc::SYS_geteuid) as u32 }
}

/// `ppoll(2)` on one fd; `timeout_ms < 0` waits forever. EINTR is returned.
pub fn poll1(fd: c_int, events: i16, timeout_ms: i64) -> Result<i16, c_int> {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: timeout_ms.max(0) / 1000,
        tv_nsec: (timeout_ms.max(0) % 1000) * 1_000_000,
    };
    let tsp: *const libc::timespec = if timeout_ms < 0 {
        std::ptr::null()
    } else {
        &ts
    };
    // SAFETY: `p` and `ts` live across the call.
    let r = unsafe {
        raw_syscall!(
            libc::SYS_ppoll,
            &mut p as *mut libc::pollfd,
            1 as c_long,
            tsp,
            std::ptr::null::<c_void>(),
            0 as c_long,
        )
    };
    check(r).map(|_| p.revents)
}

/// The (device, inode) identity of the open file behind `fd`.
pub fn file_id(fd: c_int) -> Option<(u64, u64)> {
    // SAFETY: plain old data; all-zero is valid.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is valid for the kernel to write; fstat is not a hooked name.
    let r = unsafe { libc::fstat(fd, &mut st) };
    if r < 0 {
        return None;
    }
    Some((st.st_dev, st.st_ino))
}

/// `getpid(2)`.
pub fn getpid() -> u32 {
    // SAFETY: no arguments.
    unsafe { raw_syscall!(libc::SYS_getpid) as u32 }
}

/// `epoll_ctl(2)`; `ev` is `(events, data)` (ignored for `EPOLL_CTL_DEL`).
pub fn epoll_ctl(epfd: c_int, op: c_int, fd: c_int, ev: (u32, u64)) -> Result<(), c_int> {
    let mut e = libc::epoll_event {
        events: ev.0,
        u64: ev.1,
    };
    // SAFETY: `e` lives across the call.
    let r = unsafe {
        raw_syscall!(
            libc::SYS_epoll_ctl,
            epfd as c_long,
            op as c_long,
            fd as c_long,
            &mut e as *mut libc::epoll_event,
        )
    };
    check(r).map(|_| ())
}
