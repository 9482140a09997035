//! The life of a descriptor: `socket(2)` notes new sockets, `epoll_ctl(2)`
//! remembers their registrations until connect, `close(2)` releases
//! their state, and the dup family (`dup`, `dup2`, `dup3`, `fcntl`'s
//! `F_DUPFD`) copies it to the new fd. `fork` needs no hook: the table is
//! process memory and the fds are the kernel's.

use crate::guard::hook;
use crate::real;
use crate::sys::{errno, set_errno};
use crate::table::{self, Kind};
use libc::c_int;

fn do_socket(domain: c_int, ty: c_int, proto: c_int) -> c_int {
    // SAFETY: integer arguments.
    let fd = unsafe { real::socket(domain, ty, proto) };
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
    if matches!(table::get(fd), Some(Kind::Fresh { .. })) || table::maybe_udp(fd) {
        let data = if ev.is_null() {
            0
        } else {
            // SAFETY: non-null, and the kernel just read it successfully.
            unsafe { std::ptr::read_unaligned(ev) }.u64
        };
        crate::epoll_regs::note(epfd, op, fd, data);
    }
    if let Some(Kind::Fresh { .. }) = table::get(fd) {
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
            if let Kind::Fresh { regs } = k {
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

/// Interposed `socket(2)`: new TCP sockets are noted (see [`Kind::Fresh`]).
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
