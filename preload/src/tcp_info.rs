//! `TCP_MAXSEG` and `TCP_INFO` on a tunnel stream: the kernel socket the
//! program made never connected (the shadow), so it would say 536 and
//! `TCP_CLOSE`; the engine's TCP knows the real segment size, state, RTT
//! and windows ([`control::TcpFlowInfo`]). iperf3 sizes its UDP datagrams
//! from `TCP_MAXSEG`; programs check `tcpi_state` and read `tcpi_rtt`.

use crate::engine;
use crate::guard::fail;
use control::{Reply, Request, TcpFlowInfo};
use libc::{c_int, c_void, socklen_t};

/// Whether the engine answers option `name` at level `IPPROTO_TCP`.
pub(crate) fn answers(name: c_int) -> bool {
    matches!(name, libc::TCP_MAXSEG | libc::TCP_INFO)
}

fn query(flow: u64) -> Option<TcpFlowInfo> {
    match engine::query(&Request::TcpInfo { flow }) {
        Ok(Reply::TcpInfo(i)) => i,
        _ => None,
    }
}

/// `getsockopt(fd, IPPROTO_TCP, name, val, len)` for a tunnel stream of
/// flow `flow`: the shadow's answer (`pass`) for the layout and length,
/// then the engine's numbers over it. Without them (an old engine, a
/// backend whose TCP is the host's) the shadow's answer stands.
///
/// # Safety
/// `val`/`len` as the program passed them to `getsockopt`.
pub(crate) unsafe fn getsockopt(
    flow: u64,
    name: c_int,
    val: *mut c_void,
    len: *mut socklen_t,
    pass: impl FnOnce() -> c_int,
) -> c_int {
    let r = pass();
    if r != 0 || val.is_null() || len.is_null() {
        return r;
    }
    let Some(info) = query(flow) else {
        return r;
    };
    // SAFETY: after a successful getsockopt `*len` bytes at `val` are the
    // program's buffer, filled by the kernel.
    let buf = unsafe { std::slice::from_raw_parts_mut(val as *mut u8, *len as usize) };
    match name {
        libc::TCP_MAXSEG => {
            let v = c_int::try_from(info.mss)
                .unwrap_or(c_int::MAX)
                .to_ne_bytes();
            let n = buf.len().min(v.len());
            buf[..n].copy_from_slice(&v[..n]);
        }
        libc::TCP_INFO => info.patch_tcp_info(buf),
        _ => return fail(libc::ENOPROTOOPT),
    }
    0
}
