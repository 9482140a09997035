//! The life of a descriptor: `socket(2)` notes new sockets, `epoll_ctl(2)`
//! remembers their registrations until connect, `close(2)` (and
//! `close_range(2)`, `closefrom(3)`) releases their state, and the dup
//! family (`dup`, `dup2`, `dup3`, `fcntl`'s `F_DUPFD`) copies it to the
//! new fd. The same calls made through `syscall(2)` (libuv closes with
//! `syscall(SYS_close, fd)`) come here too ([`crate::syscall`]). `fork`
//! needs no hook: the table is process memory and the fds are the kernel's.
//!
//! An entry is always taken out of the table *before* the real close, so
//! once the number can be reused — by another thread's `open` — no call
//! on it is treated as a tunnel socket's.

use crate::guard::hook;
use crate::real;
use crate::sys::{errno, set_errno};
use crate::table::{self, Kind};
use libc::c_int;

fn do_socket(domain: c_int, ty: c_int, proto: c_int) -> c_int {
    let before = errno();
    // SAFETY: integer arguments.
    let fd = unsafe { real::socket(domain, ty, proto) };
    if fd < 0 {
        // An ICMP socket the host refused may get a stand-in.
        return crate::echo_standin::after_refusal(domain, ty, proto, errno(), before);
    }
    if fd >= 0 {
        if let Some(stale) = table::take(fd) {
            table::release(&stale);
        }
        if matches!(domain, libc::AF_INET | libc::AF_INET6)
            && matches!(ty & 0xf, libc::SOCK_STREAM | libc::SOCK_DGRAM)
        {
            table::set(
                fd,
                Kind::Fresh {
                    regs: [None; table::MAX_EPOLL_REGS],
                },
            );
        }
    }
    fd
}

unsafe fn do_epoll_ctl(epfd: c_int, op: c_int, fd: c_int, ev: *mut libc::epoll_event) -> c_int {
    // SAFETY: forwarded application arguments.
    let r = unsafe { real::epoll_ctl(epfd, op, fd, ev) };
    if r != 0 {
        return r;
    }
    // Only sockets that may be datagram ones: carried TCP streams and
    // listeners (most `EPOLL_CTL_MOD`s) need no SO_TYPE look.
    if matches!(
        table::get(fd),
        Some(Kind::Fresh { .. } | Kind::EchoStandIn { .. })
    ) || table::maybe_udp(fd)
    {
        let data = if ev.is_null() {
            0
        } else {
            // SAFETY: non-null, and the kernel just read it successfully.
            unsafe { std::ptr::read_unaligned(ev) }.u64
        };
        crate::epoll_regs::note(epfd, op, fd, data);
    }
    if let Some(Kind::Fresh { .. } | Kind::EchoStandIn { .. }) = table::get(fd) {
        let new = if op == libc::EPOLL_CTL_DEL || ev.is_null() {
            None
        } else {
            // SAFETY: non-null, and the kernel just read it successfully.
            let e = unsafe { std::ptr::read_unaligned(ev) };
            Some(table::EpollReg {
                epfd,
                events: e.events,
                data: e.u64,
            })
        };
        table::update(fd, |k| {
            if let Kind::Fresh { regs } | Kind::EchoStandIn { regs, .. } = k {
                let slot = regs.iter().position(|r| r.is_some_and(|r| r.epfd == epfd));
                match (slot, new) {
                    (Some(i), n) => regs[i] = n,
                    (None, Some(n)) => {
                        if let Some(free) = regs.iter_mut().find(|r| r.is_none()) {
                            *free = Some(n);
                        }
                    }
                    (None, None) => {}
                }
            }
        });
    }
    0
}

fn do_close(fd: c_int) -> c_int {
    if crate::hold::is_hold(fd) {
        set_errno(libc::EBADF);
        return -1;
    }
    crate::epoll_regs::forget(fd);
    let st = table::take(fd);
    // SAFETY: integer argument.
    let r = unsafe { real::close(fd) };
    if let Some(k) = st {
        let e = errno();
        table::release(&k);
        set_errno(e);
    }
    r
}

/// `close_range(first, last, flags)` with the entries of the range taken
/// out first, and the process's hold on the engine left out of it
/// ([`crate::hold`]). With `CLOSE_RANGE_CLOEXEC` nothing is closed now
/// (the entries go stale at `exec` and are dropped when next looked at).
fn do_close_range(
    first: u32,
    last: u32,
    flags: u32,
    real_call: impl Fn(u32, u32) -> c_int,
) -> c_int {
    let around_hold = |a: u32, b: u32| -> c_int {
        let hold = crate::hold::fd().and_then(|h| u32::try_from(h).ok());
        match hold {
            Some(h) if (a..=b).contains(&h) => {
                let mut r = 0;
                if h > a {
                    r = real_call(a, h - 1);
                }
                if r == 0 && h < b {
                    r = real_call(h + 1, b);
                }
                r
            }
            _ => real_call(a, b),
        }
    };
    if flags & libc::CLOSE_RANGE_CLOEXEC != 0 {
        return around_hold(first, last);
    }
    let lo = c_int::try_from(first).unwrap_or(c_int::MAX);
    let hi = c_int::try_from(last).unwrap_or(c_int::MAX);
    let taken = table::take_range(lo, hi);
    for (fd, _) in &taken {
        crate::epoll_regs::forget(*fd);
    }
    let r = around_hold(first, last);
    let e = errno();
    if r < 0 {
        // Nothing was closed (bad flags, or a kernel without the call).
        for (fd, kind) in taken {
            table::set(fd, kind);
        }
        set_errno(e);
        return r;
    }
    for (_, kind) in &taken {
        // A shadow socket inside the range was closed with it.
        if let Kind::Outbound { shadow, .. } | Kind::Udp { shadow, .. } = kind {
            if (lo..=hi).contains(shadow) {
                continue;
            }
        }
        table::release(kind);
    }
    set_errno(e);
    r
}

/// After a successful dup of `src` onto `dst`: state follows the fd.
fn follow_dup(src: c_int, dst: c_int) {
    if src == dst {
        return;
    }
    if let Some(old) = table::take(dst) {
        table::release(&old);
    }
    if let Some(k) = table::get(src).and_then(table::duplicate) {
        if let Some(old) = table::set(dst, k) {
            table::release(&old);
        }
    }
}

/// Interposed `socket(2)`: new TCP and UDP sockets are noted (see
/// [`Kind::Fresh`]); a refused ICMP socket may get a stand-in
/// ([`crate::echo_standin`]).
///
/// # Safety
/// As for `socket(2)`.
#[no_mangle]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, proto: c_int) -> c_int {
    // SAFETY: integer arguments.
    hook(
        || unsafe { real::socket(domain, ty, proto) },
        || do_socket(domain, ty, proto),
        libc::EMFILE,
    )
}

/// Interposed `epoll_ctl(2)`: registrations of not-yet-connected TCP
/// sockets are remembered so a tunnel connect can move them.
///
/// # Safety
/// As for `epoll_ctl(2)`.
#[no_mangle]
pub unsafe extern "C" fn epoll_ctl(
    epfd: c_int,
    op: c_int,
    fd: c_int,
    ev: *mut libc::epoll_event,
) -> c_int {
    hook(
        // SAFETY: forwarded application arguments.
        || unsafe { real::epoll_ctl(epfd, op, fd, ev) },
        // SAFETY: as above.
        || unsafe { do_epoll_ctl(epfd, op, fd, ev) },
        libc::EINVAL,
    )
}

/// Interposed `close(2)`.
///
/// # Safety
/// As for `close(2)`.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    // SAFETY: integer argument.
    hook(|| unsafe { real::close(fd) }, || do_close(fd), libc::EIO)
}

/// Interposed `close_range(2)` (glibc ≥ 2.34).
///
/// # Safety
/// As for `close_range(2)`.
#[no_mangle]
pub unsafe extern "C" fn close_range(
    first: libc::c_uint,
    last: libc::c_uint,
    flags: c_int,
) -> c_int {
    // SAFETY: integer arguments.
    let call = |a, b| unsafe { raw_close_range(a, b, flags as u32) };
    hook(
        || call(first, last),
        || do_close_range(first, last, flags as u32, call),
        libc::EINVAL,
    )
}

/// Interposed `closefrom(3)` (glibc ≥ 2.34; it closes with `close_range`
/// inside libc, out of reach of the `close_range` hook).
///
/// # Safety
/// As for `closefrom(3)`.
#[no_mangle]
pub unsafe extern "C" fn closefrom(low: c_int) {
    let first = u32::try_from(low).unwrap_or(0);
    let saved = errno();
    // SAFETY: integer arguments; closefrom ignores errors (glibc falls
    // back to closing one by one where close_range is missing).
    let call = |a, b| unsafe { raw_close_range(a, b, 0) };
    let r = hook(
        || call(first, u32::MAX),
        || do_close_range(first, u32::MAX, 0, call),
        libc::EINVAL,
    );
    if r < 0 {
        // No close_range (Linux < 5.9): close what /proc lists, as glibc does.
        let open: Vec<c_int> = std::fs::read_dir("/proc/self/fd")
            .map(|dir| {
                dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .filter(|&fd: &c_int| fd >= low)
                    .collect()
            })
            .unwrap_or_default();
        for fd in open {
            // SAFETY: integer argument; the directory's own fd is closed
            // already (EBADF, ignored).
            unsafe { close(fd) };
        }
    }
    set_errno(saved);
}

/// The `close_range` system call itself (through libc's `syscall`, not
/// ours: that would come back here).
///
/// # Safety
/// Closes descriptors: the caller asked for exactly that.
unsafe fn raw_close_range(first: u32, last: u32, flags: u32) -> c_int {
    // SAFETY: integer-only system call.
    unsafe {
        crate::sys::real_syscall(
            libc::SYS_close_range,
            libc::c_long::from(first),
            libc::c_long::from(last),
            libc::c_long::from(flags),
            0,
            0,
            0,
        ) as c_int
    }
}

/// Interposed `dup(2)`.
///
/// # Safety
/// As for `dup(2)`.
#[no_mangle]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    hook(
        // SAFETY: integer argument.
        || unsafe { real::dup(fd) },
        || {
            // SAFETY: integer argument.
            let r = unsafe { real::dup(fd) };
            if r >= 0 {
                follow_dup(fd, r);
            }
            r
        },
        libc::EMFILE,
    )
}

/// Interposed `dup2(2)`.
///
/// # Safety
/// As for `dup2(2)`.
#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    hook(
        // SAFETY: integer arguments.
        || unsafe { real::dup2(old, new) },
        || {
            // SAFETY: integer arguments.
            let r = unsafe { real::dup2(old, new) };
            if r >= 0 {
                follow_dup(old, r);
            }
            r
        },
        libc::EBADF,
    )
}

/// Interposed `dup3(2)`.
///
/// # Safety
/// As for `dup3(2)`.
#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    hook(
        // SAFETY: integer arguments.
        || unsafe { real::dup3(old, new, flags) },
        || {
            // SAFETY: integer arguments.
            let r = unsafe { real::dup3(old, new, flags) };
            if r >= 0 {
                follow_dup(old, r);
            }
            r
        },
        libc::EBADF,
    )
}

fn fcntl_common(fd: c_int, cmd: c_int, arg: usize) -> c_int {
    hook(
        // SAFETY: the argument is passed through unchanged in its register.
        || unsafe { real::fcntl(fd, cmd, arg) },
        || {
            // SAFETY: as above.
            let r = unsafe { real::fcntl(fd, cmd, arg) };
            if r >= 0 && (cmd == libc::F_DUPFD || cmd == libc::F_DUPFD_CLOEXEC) {
                follow_dup(fd, r);
            }
            r
        },
        libc::EBADF,
    )
}

/// Interposed `fcntl(2)` (only `F_DUPFD`/`F_DUPFD_CLOEXEC` are looked at).
/// The variadic argument is taken as one pointer-sized integer, which is
/// how every command's argument is passed on x86-64 and aarch64 Linux.
///
/// # Safety
/// As for `fcntl(2)`.
#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: usize) -> c_int {
    fcntl_common(fd, cmd, arg)
}

/// Interposed `fcntl64` (what `fcntl` becomes with `_FILE_OFFSET_BITS=64`).
///
/// # Safety
/// As for `fcntl(2)`.
#[no_mangle]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: usize) -> c_int {
    fcntl_common(fd, cmd, arg)
}
