//! The next definitions of the functions we interpose (`dlsym(RTLD_NEXT)`),
//! resolved once and cached. Used for everything done on behalf of the
//! application, so libc's own behaviour (cancellation points, other
//! preloaded libraries) is kept.

use libc::{c_char, c_int, c_void, pid_t, sockaddr, socklen_t};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Resolves `name` (NUL-terminated) with `RTLD_NEXT`, caching it in `cache`.
fn resolve(cache: &AtomicUsize, name: &[u8]) -> usize {
    let p = cache.load(Ordering::Acquire);
    if p != 0 {
        return p;
    }
    // SAFETY: `name` is a NUL-terminated literal; dlsym is thread-safe.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr() as *const c_char) } as usize;
    cache.store(p, Ordering::Release);
    p
}

macro_rules! real {
    ($(fn $name:ident($($a:ident: $t:ty),*) -> $r:ty;)*) => {$(
        /// Calls the next definition of this libc function; ENOSYS if none.
        ///
        /// # Safety
        /// As for the libc function of the same name.
        #[allow(clippy::too_many_arguments)] // C signatures
        pub unsafe fn $name($($a: $t),*) -> $r {
            static CACHE: AtomicUsize = AtomicUsize::new(0);
            let p = resolve(&CACHE, concat!(stringify!($name), "\0").as_bytes());
            if p == 0 {
                crate::sys::set_errno(libc::ENOSYS);
                return -1 as $r;
            }
            // SAFETY: the symbol has this C signature in every libc we support.
            let f: unsafe extern "C" fn($($t),*) -> $r = unsafe { std::mem::transmute(p) };
            // SAFETY: forwarded from the caller.
            unsafe { f($($a),*) }
        }
    )*};
}

real! {
    fn socket(domain: c_int, ty: c_int, proto: c_int) -> c_int;
    fn epoll_ctl(epfd: c_int, op: c_int, fd: c_int, ev: *mut libc::epoll_event) -> c_int;
    fn poll(fds: *mut libc::pollfd, nfds: libc::nfds_t, timeout: c_int) -> c_int;
    fn epoll_wait(epfd: c_int, events: *mut libc::epoll_event, max: c_int, timeout: c_int) -> c_int;
    fn epoll_pwait(epfd: c_int, events: *mut libc::epoll_event, max: c_int, timeout: c_int, sigmask: *const libc::sigset_t) -> c_int;
    fn ppoll(fds: *mut libc::pollfd, nfds: libc::nfds_t, timeout: *const libc::timespec, sigmask: *const libc::sigset_t) -> c_int;
    fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
    fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
    fn listen(fd: c_int, backlog: c_int) -> c_int;
    fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    fn accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int;
    fn getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    fn getsockopt(fd: c_int, level: c_int, name: c_int, val: *mut c_void, len: *mut socklen_t) -> c_int;
    fn setsockopt(fd: c_int, level: c_int, name: c_int, val: *const c_void, len: socklen_t) -> c_int;
    fn close(fd: c_int) -> c_int;
    fn sendto(fd: c_int, buf: *const c_void, len: usize, flags: c_int, addr: *const sockaddr, alen: socklen_t) -> isize;
    fn send(fd: c_int, buf: *const c_void, len: usize, flags: c_int) -> isize;
    fn sendmsg(fd: c_int, msg: *const libc::msghdr, flags: c_int) -> isize;
    fn sendmmsg(fd: c_int, msgs: *mut libc::mmsghdr, vlen: libc::c_uint, flags: c_int) -> c_int;
    fn recv(fd: c_int, buf: *mut c_void, len: usize, flags: c_int) -> isize;
    fn recvfrom(fd: c_int, buf: *mut c_void, len: usize, flags: c_int, addr: *mut sockaddr, alen: *mut socklen_t) -> isize;
    fn recvmsg(fd: c_int, msg: *mut libc::msghdr, flags: c_int) -> isize;
    fn recvmmsg(fd: c_int, msgs: *mut libc::mmsghdr, vlen: libc::c_uint, flags: c_int, timeout: *mut libc::timespec) -> c_int;
    fn read(fd: c_int, buf: *mut c_void, len: usize) -> isize;
    fn write(fd: c_int, buf: *const c_void, len: usize) -> isize;
    fn readv(fd: c_int, iov: *const libc::iovec, n: c_int) -> isize;
    fn writev(fd: c_int, iov: *const libc::iovec, n: c_int) -> isize;
    fn shutdown(fd: c_int, how: c_int) -> c_int;
    fn dup(fd: c_int) -> c_int;
    fn dup2(old: c_int, new: c_int) -> c_int;
    fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int;
    fn fcntl(fd: c_int, cmd: c_int, arg: usize) -> c_int;
    fn execve(path: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int;
    fn execvpe(file: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int;
    fn posix_spawn(pid: *mut pid_t, path: *const c_char, fa: *const c_void, attr: *const c_void, argv: *const *mut c_char, envp: *const *mut c_char) -> c_int;
    fn posix_spawnp(pid: *mut pid_t, file: *const c_char, fa: *const c_void, attr: *const c_void, argv: *const *mut c_char, envp: *const *mut c_char) -> c_int;
}

// Name resolution (hooked only when the engine resolves names: `DNS =`).
real! {
    fn getaddrinfo(node: *const c_char, service: *const c_char, hints: *const libc::addrinfo, res: *mut *mut libc::addrinfo) -> c_int;
    fn getnameinfo(sa: *const sockaddr, salen: socklen_t, host: *mut c_char, hostlen: socklen_t, serv: *mut c_char, servlen: socklen_t, flags: c_int) -> c_int;
    fn gethostbyname2_r(name: *const c_char, af: c_int, ret: *mut libc::hostent, buf: *mut c_char, buflen: usize, result: *mut *mut libc::hostent, h_errnop: *mut c_int) -> c_int;
    fn gethostbyname_r(name: *const c_char, ret: *mut libc::hostent, buf: *mut c_char, buflen: usize, result: *mut *mut libc::hostent, h_errnop: *mut c_int) -> c_int;
    fn gethostbyaddr_r(addr: *const c_void, len: socklen_t, ty: c_int, ret: *mut libc::hostent, buf: *mut c_char, buflen: usize, result: *mut *mut libc::hostent, h_errnop: *mut c_int) -> c_int;
    fn res_query(dname: *const c_char, class: c_int, ty: c_int, answer: *mut u8, anslen: c_int) -> c_int;
    fn res_search(dname: *const c_char, class: c_int, ty: c_int, answer: *mut u8, anslen: c_int) -> c_int;
    fn res_nquery(statp: *mut c_void, dname: *const c_char, class: c_int, ty: c_int, answer: *mut u8, anslen: c_int) -> c_int;
    fn res_nsearch(statp: *mut c_void, dname: *const c_char, class: c_int, ty: c_int, answer: *mut u8, anslen: c_int) -> c_int;
}

/// `gethostbyaddr` (returns a pointer, so outside the `real!` shape).
///
/// # Safety
/// As for the libc function.
pub unsafe fn gethostbyaddr(addr: *const c_void, len: socklen_t, ty: c_int) -> *mut libc::hostent {
    static CACHE: AtomicUsize = AtomicUsize::new(0);
    let p = resolve(&CACHE, b"gethostbyaddr\0");
    if p == 0 {
        return std::ptr::null_mut();
    }
    // SAFETY: the symbol has this C signature in every libc we support.
    let f: unsafe extern "C" fn(*const c_void, socklen_t, c_int) -> *mut libc::hostent =
        unsafe { std::mem::transmute(p) };
    // SAFETY: forwarded from the caller.
    unsafe { f(addr, len, ty) }
}

/// `gethostbyname2` (returns a pointer, so outside the `real!` shape).
///
/// # Safety
/// As for the libc function.
pub unsafe fn gethostbyname2(name: *const c_char, af: c_int) -> *mut libc::hostent {
    static CACHE: AtomicUsize = AtomicUsize::new(0);
    let p = resolve(&CACHE, b"gethostbyname2\0");
    if p == 0 {
        return std::ptr::null_mut();
    }
    // SAFETY: the symbol has this C signature in every libc we support.
    let f: unsafe extern "C" fn(*const c_char, c_int) -> *mut libc::hostent =
        unsafe { std::mem::transmute(p) };
    // SAFETY: forwarded from the caller.
    unsafe { f(name, af) }
}
