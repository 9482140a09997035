//! `libwrapguard.so`, the LD_PRELOAD shim that carries a wrapped program's
//! sockets into the wrapguard engine.
//!
//! # Hooks
//!
//! Every exported libc name, where it lives (`preload/src/`), and what it
//! does beyond the kernel's call (checked against the library's symbols by
//! `scripts/docs-check.py`):
//!
//! | hooked libc function | file | behaviour |
//! |---|---|---|
//! | `connect` | `connect.rs` | decided once for the shim and seccomp mode (`control::connect::classify`): TCP to a routed destination swaps in a data socket to the engine ([`swap`]); a datagram socket connected into the tunnel becomes a carried one ([`dgram`]); raw ICMP to the tunnel is carried, other raw protocols fail with `ENETUNREACH`; `DNS =` moves TCP to port 53 of a host nameserver to the tunnel's; `connect()` again answers as the kernel would (`EALREADY`, the outcome, `EISCONN`); the rest is the kernel's |
//! | `shutdown` | `connect.rs` | on a carried datagram socket only checks its arguments (the flow stays) |
//! | `socket` | `fd_lifecycle.rs` | notes new AF_INET/AF_INET6 stream and datagram sockets; an ICMP socket the host refuses gets a stand-in ([`echo_standin`]) |
//! | `epoll_ctl` | `fd_lifecycle.rs` | remembers registrations made before `connect()` (up to 4 epoll instances per socket), moved to the data socket |
//! | `close`, `close_range`, `closefrom` | `fd_lifecycle.rs` | release the fd's state, before the real close |
//! | `dup`, `dup2`, `dup3`, `fcntl`, `fcntl64` | `fd_lifecycle.rs` | copy the fd's state to the new number (`F_DUPFD`…) |
//! | `bind` | `listen.rs` | a wildcard or tunnel address on a stream socket becomes loopback at the same port; on a datagram socket it may make a carried one |
//! | `listen` | `listen.rs` | tells the engine (`Listen`), which carries tunnel connections to that loopback port from a source port it registered |
//! | `accept`, `accept4` | `listen.rs` | show the peer's tunnel address (`AcceptLookup`) |
//! | `getsockname`, `getpeername` | `sockname.rs` | the tunnel addresses of swapped sockets, the requested address of a redirected listener |
//! | `getsockopt`, `setsockopt` | `sockopt.rs` | answered as the TCP or UDP socket the program made would answer ([`swap`] says which option goes where) |
//! | `send`, `write`, `writev`, `sendto`, `sendmsg`, `sendmmsg` | `send.rs` | on a tunnel stream the error end is reported ([`stream_end`]); on a datagram socket [`send_plan`] decides: the kernel, a carried flow, or refusal |
//! | `recv`, `read`, `readv`, `recvfrom`, `recvmsg`, `recvmmsg` | `recv.rs` | on a tunnel stream an error end is its errno; on a carried datagram socket the header is stripped and the peer's tunnel address shown |
//! | `poll`, `ppoll` | `pollerr.rs` | `POLLERR` for an ICMP error waiting on a carried datagram socket |
//! | `epoll_wait`, `epoll_pwait` | `epollerr.rs` | `EPOLLERR` for the same |
//! | `syscall` | `syscall.rs` | the numbers the shim must see go to the same hooks as the libc calls |
//! | `io_uring_setup` | `uring.rs` | fails with `ENOSYS`, so runtimes fall back to epoll |
//! | `execve`, `execv`, `execvp`, `execvpe`, `posix_spawn`, `posix_spawnp` | `exec.rs` | put our `LD_PRELOAD` entry and `WRAPGUARD_*` variables back into an environment that lost them |
//! | `getaddrinfo`, `getnameinfo` | `resolve/addrinfo.rs` | with `DNS =`, resolved by the engine through the tunnel ([`resolve`]) |
//! | `gethostbyname`, `gethostbyname2`, `gethostbyname_r`, `gethostbyname2_r`, `gethostbyaddr`, `gethostbyaddr_r` | `resolve/hostent.rs` | the same |
//! | `res_query`, `res_search`, `res_nquery`, `res_nsearch`, `__res_query`, `__res_search`, `__res_nquery`, `__res_nsearch` | `resolve/res_query.rs` | the same; the answer is the tunnel server's message |
//!
//! The data path (a unix data socket swapped onto the program's fd, gated
//! by filler bytes, the original socket kept as a shadow) is described in
//! [`swap`].
//!
//! # Rules followed by every hook
//! No panic crosses FFI (`catch_unwind` in [`guard`]); errno is preserved on
//! success and set exactly on failure; a thread-local guard sends calls made
//! from inside the shim straight to libc; the shim's own syscalls go through
//! [`sys`], never through its exported names; no logger, no panic hook, no
//! background thread; without `WRAPGUARD_CONTROL` in the environment the shim
//! is inert, and with it but no engine, routed connects fail with
//! `ENETUNREACH` (fail closed).
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
//! * Registrations in an epoll set inherited from another process, or made
//!   through `syscall()`, are not seen (so not moved to the data socket).
//! * Socket state lives in the shim's memory; after `exec` an inherited
//!   tunnel socket is recognised (its peer is the control socket) and its
//!   state fetched from the engine by inode (`Adopt`) the first time it
//!   answers as AF_UNIX (`getsockname`, `getpeername`, `SO_DOMAIN`, or a
//!   failing TCP-level option); its shadow socket is then a fresh one.
//! * Until established, the app's `SO_SNDBUF` request is remembered and
//!   applied afterwards; TCP options reach the shadow socket; of them only
//!   the keepalive options also reach the engine's TCP ([`keepalive`]).
//! * UDP is carried by [`dgram`] (a SEQPACKET pair per socket with a
//!   per-datagram header); see its limits. Nothing routed leaks.
//! * `execl*` (variadic) are not hooked; statically linked programs and
//!   setuid programs are out of reach of LD_PRELOAD.

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
