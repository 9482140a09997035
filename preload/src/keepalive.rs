//! Keepalive options a program sets on a tunnel TCP socket reach the
//! tunnel connection.
//!
//! `SO_KEEPALIVE`, `TCP_KEEPIDLE`, `TCP_KEEPINTVL` and `TCP_KEEPCNT` are
//! set on the shadow TCP socket first (so validation, defaults and
//! `getsockopt` are the kernel's own); then the shadow's four values are
//! sent to the engine (`TcpKeepalive`), whose TCP probes an idle
//! connection and ends it with `ETIMEDOUT` when the probes go unanswered,
//! as Linux does. Options set before `connect()` are sent once the engine
//! accepted the connection. A failure to reach the engine does not fail
//! the program's `setsockopt` (the kernel took the value).

use crate::engine;
use crate::sys;
use control::{Reply, Request, TcpKeepalive};
use libc::c_int;

/// Whether `setsockopt(level, name)` is one of the keepalive options.
pub fn is_keepalive_option(level: c_int, name: c_int) -> bool {
    matches!(
        (level, name),
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE)
            | (
                libc::IPPROTO_TCP,
                libc::TCP_KEEPIDLE | libc::TCP_KEEPINTVL | libc::TCP_KEEPCNT
            )
    )
}

/// The keepalive options of `shadow` as the kernel holds them.
fn read(shadow: c_int) -> Option<TcpKeepalive> {
    let get = |level, name| sys::getsockopt_int(shadow, level, name).ok();
    Some(TcpKeepalive {
        enabled: get(libc::SOL_SOCKET, libc::SO_KEEPALIVE)? != 0,
        idle_secs: u32::try_from(get(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE)?).ok()?,
        interval_secs: u32::try_from(get(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL)?).ok()?,
        count: u32::try_from(get(libc::IPPROTO_TCP, libc::TCP_KEEPCNT)?).ok()?,
    })
}

/// Sends `shadow`'s keepalive options to the engine for `flow`.
pub fn forward(flow: u64, shadow: c_int) {
    if let Some(keepalive) = read(shadow) {
        let _: Result<Reply, c_int> = engine::query(&Request::TcpKeepalive { flow, keepalive });
    }
}

/// At connect: forwards the options if the program turned keepalive on
/// before connecting.
pub fn at_connect(flow: u64, shadow: c_int) {
    if sys::getsockopt_int(shadow, libc::SOL_SOCKET, libc::SO_KEEPALIVE).is_ok_and(|v| v != 0) {
        forward(flow, shadow);
    }
}
