//! Whether this process resolves names through the tunnel (`mode`, asked
//! of the engine once), and the `Resolve` exchange with it (`ask`);
//! the resolver's error codes the hooks share.

use crate::engine::{self, config};
use crate::sys;
use control::{DnsInfo, QueryName, Reply, Request, ResolveKind, ResolveReply, ResolveRequest};
use libc::{c_char, c_int, c_void, socklen_t};
use std::ffi::CStr;
use std::sync::OnceLock;

// glibc's `h_errno` values (netdb.h), spelled out: the libc crate lacks them.
/// `h_errno`: the name does not exist.
pub(crate) const HOST_NOT_FOUND: c_int = 1;
/// `h_errno`: a temporary failure; try again.
pub(crate) const TRY_AGAIN: c_int = 2;
/// `h_errno`: a permanent failure.
pub(crate) const NO_RECOVERY: c_int = 3;
/// `h_errno`: the name exists but has no data of the asked type.
pub(crate) const NO_DATA: c_int = 4;
/// `h_errno`: see errno.
pub(crate) const NETDB_INTERNAL: c_int = -1;
/// Seconds a `Resolve` waits for the engine (its own retries take at most
/// a few seconds per server).
const RESOLVE_TIMEOUT_SECS: libc::time_t = 30;

extern "C" {
    fn __h_errno_location() -> *mut c_int;
    fn inet_aton(cp: *const c_char, inp: *mut libc::in_addr) -> c_int;
}

/// Sets this thread's `h_errno`.
pub(crate) fn set_h_errno(v: c_int) {
    // SAFETY: glibc's per-thread h_errno slot, always valid.
    unsafe { *__h_errno_location() = v };
}

/// How this process resolves names.
pub(crate) enum Mode {
    /// No `DNS =`: the host's resolver, untouched.
    Host,
    /// Through the tunnel.
    Tunnel(DnsInfo),
    /// The engine cannot be asked: fail closed.
    Broken,
}

static INFO: OnceLock<DnsInfo> = OnceLock::new();

/// How this process resolves names (the engine is asked once).
pub(crate) fn mode() -> Mode {
    if !config().active {
        return Mode::Host;
    }
    let info = match INFO.get() {
        Some(i) => *i,
        None => match engine::query(&Request::DnsInfo) {
            Ok(Reply::DnsInfo(i)) => *INFO.get_or_init(|| i),
            _ => return Mode::Broken,
        },
    };
    if info.server.is_some() {
        Mode::Tunnel(info)
    } else {
        Mode::Host
    }
}

/// One `Resolve` exchange; `Err` if the engine cannot be asked.
pub(crate) fn ask(kind: ResolveKind, name: &[u8]) -> Result<ResolveReply, ()> {
    let name = if name.is_empty() {
        QueryName::empty()
    } else {
        QueryName::new(name).ok_or(())?
    };
    let eng = config().engine.as_ref().ok_or(())?;
    let fd = eng.open(false).map_err(|_| ())?;
    let tv = libc::timeval {
        tv_sec: RESOLVE_TIMEOUT_SECS,
        tv_usec: 0,
    };
    // SAFETY: `tv` lives across the call.
    unsafe {
        sys::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const c_void,
            std::mem::size_of::<libc::timeval>() as socklen_t,
        )
    };
    let r = (|| {
        engine::send(fd, &Request::Resolve(ResolveRequest { kind, name })).map_err(|_| ())?;
        let mut prefix = [0u8; control::dns::RESOLVE_PREFIX_LEN];
        sys::recv_exact(fd, &mut prefix).map_err(|_| ())?;
        let total = ResolveReply::frame_len(prefix).map_err(|_| ())?;
        let mut buf = vec![0u8; total];
        buf[..prefix.len()].copy_from_slice(&prefix);
        sys::recv_exact(fd, &mut buf[prefix.len()..]).map_err(|_| ())?;
        ResolveReply::decode(&buf).map_err(|_| ())
    })();
    sys::close(fd);
    r
}

/// Whether `name` is a numeric address libc handles without a lookup
/// (dotted IPv4 in any `inet_aton` form, or anything with a colon).
pub(crate) fn is_numeric(name: &CStr) -> bool {
    if name.to_bytes().contains(&b':') {
        return true;
    }
    let mut a = libc::in_addr { s_addr: 0 };
    // SAFETY: a C string and an out-parameter of the right type.
    unsafe { inet_aton(name.as_ptr(), &mut a) != 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_names_are_left_to_libc() {
        for n in [&b"10.77.0.1\0"[..], b"127.1\0", b"::1\0", b"fe80::1%eth0\0"] {
            assert!(
                is_numeric(CStr::from_bytes_with_nul(n).expect("c str")),
                "{n:?}"
            );
        }
        for n in [
            &b"only-tunnel.test\0"[..],
            b"localhost\0",
            b"10.77.0.1.example\0",
        ] {
            assert!(
                !is_numeric(CStr::from_bytes_with_nul(n).expect("c str")),
                "{n:?}"
            );
        }
    }
}
