//! `libwrapguard.so`, the LD_PRELOAD shim that carries a wrapped program's
//! TCP sockets into the wrapguard engine.
//!
//! # The data path: fd swap onto a unix socket, gated by filler bytes
//!
//! On `connect()` of an AF_INET/AF_INET6 stream socket to a destination the
//! engine routes into the tunnel, the shim
//!
//! 1. opens a unix stream socket to the engine with the smallest
//!    `SO_SNDBUF` (the kernel's minimum, ~4.5 KiB), sends a `Connect`
//!    frame and reads the engine's reply (`Accepted{flow, local}`; the
//!    engine answers at once and connects through the tunnel meanwhile);
//! 2. writes [`control::FILLER_LEN`] (2048) filler bytes: one unread skb
//!    whose truesize is above a quarter of the minimum send buffer keeps
//!    `wmem_alloc * 4 > sndbuf`, so the socket is *not writable*, and the
//!    frame plus filler still fit without blocking (test
//!    `filler_gates_pollout` checks both on the running kernel);
//! 3. keeps the original kernel TCP socket alive as a hidden CLOEXEC
//!    "shadow" fd and `dup3`s the unix socket onto the application's fd
//!    number, keeping its `FD_CLOEXEC` and `O_NONBLOCK` flags.
//!
//! A non-blocking `connect` then returns `EINPROGRESS` at once. When the
//! tunnel connection is established the engine reads the filler, `POLLOUT`
//! turns on, and from then on the stream carries only the application's
//! bytes (the shim restores a normal `SO_SNDBUF` at the first look at the
//! socket: `SO_ERROR`, `getpeername`, or the end of a blocking connect). If
//! it fails, the engine closes with the filler unread: the application sees
//! `POLLERR|POLLHUP` (and `POLLOUT`), and `getsockopt(SO_ERROR)` returns the
//! real errno (`ECONNREFUSED`, `ETIMEDOUT`, `EHOSTUNREACH`…) which the shim
//! asks the engine for (`FlowStatus`). A blocking `connect` is the same plus
//! a `poll()` for that outcome inside the call.
//!
//! Because the fd is now AF_UNIX, the shim answers as a TCP socket would:
//! `SO_DOMAIN`/`SO_PROTOCOL`/`SO_ERROR`/`SO_ACCEPTCONN` are emulated,
//! TCP/IP-level options and most `SOL_SOCKET` options go to the shadow TCP
//! socket (so values and validation are the kernel's own), timeouts and
//! linger act on the data socket, and `getsockname`/`getpeername` report the
//! tunnel addresses. Per-fd state lives in [`table`] (fds ≥ 1024 included).
//! `shutdown`, `read`/`write`/`send*`/`recv*`, `poll`/`epoll`, `sendfile`,
//! `splice` and `fork` need no hooks: the fd is a real kernel socket.
//!
//! Listening: `bind()` of a wildcard or tunnel address on a stream socket is
//! rewritten to loopback at the same port; `listen()` tells the engine
//! (`Listen`), which carries tunnel connections to that loopback port from
//! a source port it has registered, so `accept()`/`getpeername()` can ask
//! (`AcceptLookup`) and show the peer's tunnel address.
//!
//! # Measured (2 shared cores, python3 client, test backend to loopback)
//! * connect + close round trip through the tunnel path ≈ 0.25 ms, same
//!   order as a direct loopback connect (the engine answers `Connect` before
//!   dialling; it waits for the filler with readiness, not a timer).
//! * bulk send 512 MiB: 0.7–1.5 GB/s through the unix socket and engine
//!   copy, within the noise of direct loopback (1.0–1.2 GB/s) — the data
//!   path is not the bottleneck; the userspace TCP/IP stack will be.
//!
//! # Known limits (observed, by design for now)
//! * The end of an established stream: see [`stream_end`] (`ETIMEDOUT`
//!   instead of EOF for a connection that timed out; not for
//!   `sendfile`/`splice`).
//! * A program that never calls `SO_ERROR`/`getpeername` after a
//!   non-blocking connect keeps the minimum send buffer (~4.5 KiB) on the
//!   data socket: correct, but more wakeups on bulk sends.
//! * `TCP_INFO` and `TCP_MAXSEG` come from the engine's TCP; other
//!   read-only TCP state from the unconnected shadow socket.
//! * A dual-stack `[::]` listener is redirected to `[::1]`: tunnel peers
//!   of both families reach it, local IPv4 clients (127.0.0.1) do not.
//! * Listener state is not adopted after `exec` (accepted peers then show
//!   loopback addresses).
//! * epoll registrations made *before* `connect()` are moved to the data
//!   socket (`socket` and `epoll_ctl` are hooked for that; up to 4 epoll
//!   instances per socket). Registrations in an epoll set inherited from
//!   another process, or made through `syscall()`, are not seen.
//! * Socket state lives in the shim's memory; after `exec` an inherited
//!   tunnel socket is recognised (its peer is the control socket) and its
//!   state fetched from the engine by inode (`Adopt`) the first time it
//!   answers as AF_UNIX (`getsockname`, `getpeername`, `SO_DOMAIN`, or a
//!   failing TCP-level option); its shadow socket is then a fresh one.
//! * Until established, the app's `SO_SNDBUF` request is remembered and
//!   applied afterwards; TCP options reach the shadow socket; of them only
//!   the keepalive options also reach the engine's TCP ([`keepalive`]).
//! * UDP is carried through the tunnel by [`dgram`] (a SEQPACKET pair per
//!   socket with a per-datagram header); see its limits. Raw sockets to
//!   routed destinations fail with `ENETUNREACH` ([`send_plan`]); nothing routed
//!   leaks.
//! * `io_uring_setup` (libc wrapper or `syscall()`) fails with `ENOSYS`
//!   ([`uring`]) so runtimes fall back to epoll.
//! * `execl*` (variadic) are not hooked; statically linked programs and
//!   setuid programs are out of reach of LD_PRELOAD.
//!
//! # Rules followed by every hook
//! No panic crosses FFI (`catch_unwind` in [`guard`]); errno is preserved on
//! success and set exactly on failure; a thread-local guard sends calls made
//! from inside the shim straight to libc; the shim's own syscalls go through
//! [`sys`], never through its exported names; no logger, no panic hook, no
//! background thread; without `WRAPGUARD_CONTROL` in the environment the shim
//! is inert, and with it but no engine, routed connects fail with
//! `ENETUNREACH` (fail closed).

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod addr;
pub mod cmsg;
pub mod connect;
pub mod dgram;
pub mod echo_standin;
pub mod engine;
pub mod env;
pub mod epoll_regs;
pub mod epollerr;
pub mod errqueue;
pub mod exec;
pub mod fd_lifecycle;
pub mod guard;
pub mod hold;
pub mod iov;
pub mod keepalive;
pub mod listen;
pub mod pollerr;
pub mod real;
pub mod recv;
pub mod redirect;
pub mod resolve;
pub mod route_cache;
pub mod send;
pub mod send_plan;
pub mod sockname;
pub mod sockopt;
pub mod stream_end;
pub mod swap;
pub mod sys;
pub mod syscall;
pub mod table;
mod tcp_info;
pub mod uncarried;
pub mod uring;

/// Announces this process to the engine (`Hello`), on its hold when it
/// has one.
fn hello() {
    if hold::hello(sys::getpid()) {
        return;
    }
    engine::notify(&control::Request::Hello {
        pid: sys::getpid(),
        version: control::PROTOCOL_VERSION,
    });
}

extern "C" fn after_fork_child() {
    let _ = std::panic::catch_unwind(hello);
}

extern "C" fn init() {
    let _ = std::panic::catch_unwind(|| {
        if let Some(e) = engine::config().engine.as_ref() {
            // Before exec::init: what execs pass on names the hold.
            hold::init(|| e.connect(0));
        }
        exec::init();
        if engine::config().active {
            hello();
            // SAFETY: registering a plain extern "C" handler.
            unsafe { libc::pthread_atfork(None, None, Some(after_fork_child)) };
        }
    });
}

/// Runs [`init`] when the library is loaded.
#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = init;

#[cfg(test)]
mod tests;
