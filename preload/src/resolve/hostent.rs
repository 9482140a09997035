//! The `hostent` interfaces through the tunnel: `gethostbyname{,2}{,_r}`
//! and `gethostbyaddr{,_r}`. The `_r` forms fill the caller's buffer; the
//! others use a per-thread slot.

use super::query::{
    ask, is_numeric, mode, set_h_errno, Mode, HOST_NOT_FOUND, NETDB_INTERNAL, NO_DATA, NO_RECOVERY,
    TRY_AGAIN,
};
use crate::guard::hook;
use crate::real;
use control::{ResolveKind, ResolveStatus};
use libc::{c_char, c_int, c_void, hostent, socklen_t};
use std::ffi::CStr;
use std::net::IpAddr;

/// Fills `ret` and `buf` with one `hostent`; `Err(ERANGE)` if `buf` is small.
///
/// # Safety
/// `ret` and `buf[..buflen]` must be writable.
unsafe fn fill_hostent(
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: usize,
    name: &[u8],
    af: c_int,
    addrs: &[IpAddr],
) -> Result<(), c_int> {
    let alen = if af == libc::AF_INET { 4 } else { 16 };
    let ptr = std::mem::size_of::<*mut c_char>();
    let base = buf as usize;
    // Pointer arrays first (aligned), then address bytes, then the name.
    let align = (ptr - base % ptr) % ptr;
    let need = align + ptr * (addrs.len() + 1) + ptr + alen * addrs.len() + name.len() + 1;
    if buf.is_null() || need > buflen {
        return Err(libc::ERANGE);
    }
    // SAFETY: every write below is inside buf[..need] ⊆ buf[..buflen];
    // the pointer arrays are aligned.
    unsafe {
        let list = buf.add(align) as *mut *mut c_char;
        let aliases = list.add(addrs.len() + 1);
        let mut data = aliases.add(1) as *mut c_char;
        for (i, a) in addrs.iter().enumerate() {
            let bytes: Vec<u8> = match a {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), data as *mut u8, alen);
            *list.add(i) = data;
            data = data.add(alen);
        }
        *list.add(addrs.len()) = std::ptr::null_mut();
        *aliases = std::ptr::null_mut();
        std::ptr::copy_nonoverlapping(name.as_ptr(), data as *mut u8, name.len());
        *data.add(name.len()) = 0;
        (*ret).h_name = data;
        (*ret).h_aliases = aliases;
        (*ret).h_addrtype = af;
        (*ret).h_length = alen as c_int;
        (*ret).h_addr_list = list;
    }
    Ok(())
}

/// The `gethostbyname2_r` logic; `None` means "let libc do it".
unsafe fn hostbyname(
    name: *const c_char,
    af: c_int,
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: usize,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
) -> Option<c_int> {
    if name.is_null() || result.is_null() || h_errnop.is_null() || ret.is_null() {
        return None;
    }
    // SAFETY: the caller passes a C string.
    let cname = unsafe { CStr::from_ptr(name) };
    if is_numeric(cname) || !matches!(af, libc::AF_INET | libc::AF_INET6) {
        return None;
    }
    // SAFETY: out-parameters from the caller.
    let fail = |herr: c_int, rc: c_int| unsafe {
        *result = std::ptr::null_mut();
        *h_errnop = herr;
        Some(rc)
    };
    match mode() {
        Mode::Host => return None,
        Mode::Broken => return fail(TRY_AGAIN, libc::EAGAIN),
        Mode::Tunnel(_) => {}
    }
    let kind = ResolveKind::Addr {
        v4: af == libc::AF_INET,
        v6: af == libc::AF_INET6,
    };
    let Ok(reply) = ask(kind, cname.to_bytes()) else {
        return fail(TRY_AGAIN, libc::EAGAIN);
    };
    match reply.status {
        ResolveStatus::Ok => {}
        ResolveStatus::NotConfigured => return None,
        ResolveStatus::NxDomain => return fail(HOST_NOT_FOUND, 0),
        ResolveStatus::NoData => return fail(NO_DATA, 0),
        ResolveStatus::TryAgain => return fail(TRY_AGAIN, libc::EAGAIN),
        ResolveStatus::NoRecovery => return fail(NO_RECOVERY, 0),
    }
    let addrs: Vec<IpAddr> = reply
        .addrs
        .iter()
        .copied()
        .filter(|a| a.is_ipv4() == (af == libc::AF_INET))
        .collect();
    if addrs.is_empty() {
        return fail(NO_DATA, 0);
    }
    let hname = if reply.name.is_empty() {
        cname.to_bytes()
    } else {
        &reply.name[..]
    };
    // SAFETY: the caller's buffers.
    match unsafe { fill_hostent(ret, buf, buflen, hname, af, &addrs) } {
        Ok(()) => {
            // SAFETY: the caller's out-parameters.
            unsafe {
                *result = ret;
                *h_errnop = 0;
            }
            Some(0)
        }
        Err(e) => fail(NETDB_INTERNAL, e),
    }
}

/// `gethostbyname2_r`, through the tunnel when the config has `DNS =`.
///
/// # Safety
/// As for libc's `gethostbyname2_r`.
#[no_mangle]
pub unsafe extern "C" fn gethostbyname2_r(
    name: *const c_char,
    af: c_int,
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: usize,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
) -> c_int {
    // SAFETY: forwarded unchanged.
    let pass = || unsafe { real::gethostbyname2_r(name, af, ret, buf, buflen, result, h_errnop) };
    hook(
        pass,
        // SAFETY: as above.
        || unsafe { hostbyname(name, af, ret, buf, buflen, result, h_errnop) }.unwrap_or_else(pass),
        libc::EIO,
    )
}

/// `gethostbyname_r` (IPv4), through the tunnel when the config has `DNS =`.
///
/// # Safety
/// As for libc's `gethostbyname_r`.
#[no_mangle]
pub unsafe extern "C" fn gethostbyname_r(
    name: *const c_char,
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: usize,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
) -> c_int {
    // SAFETY: forwarded unchanged.
    let pass = || unsafe { real::gethostbyname_r(name, ret, buf, buflen, result, h_errnop) };
    hook(
        pass,
        || {
            // SAFETY: the caller's arguments, as above.
            unsafe { hostbyname(name, libc::AF_INET, ret, buf, buflen, result, h_errnop) }
                .unwrap_or_else(pass)
        },
        libc::EIO,
    )
}

/// Per-thread storage behind `gethostbyname{,2}` (libc's is per process and
/// not thread-safe; ours is at least per thread).
struct HostentSlot {
    ent: hostent,
    buf: [u64; 2048],
}

thread_local! {
    static SLOT: std::cell::UnsafeCell<Option<Box<HostentSlot>>> = const { std::cell::UnsafeCell::new(None) };
}

/// This thread's `hostent` slot (made on first use).
fn slot() -> Option<*mut HostentSlot> {
    SLOT.try_with(|s| {
        // SAFETY: only this thread touches its slot, and never re-entrantly
        // (the returned pointer is the caller's until its next call).
        let s = unsafe { &mut *s.get() };
        let b = s.get_or_insert_with(|| {
            Box::new(HostentSlot {
                // SAFETY: plain old data; all-zero is valid.
                ent: unsafe { std::mem::zeroed() },
                buf: [0; 2048],
            })
        });
        &mut **b as *mut HostentSlot
    })
    .ok()
}

/// Runs a `*_r` lookup into this thread's static slot, as the non-`_r`
/// functions do: the result (or null, with `h_errno` set) is the caller's
/// until the thread's next such call.
fn in_slot(
    lookup: impl FnOnce(*mut hostent, *mut c_char, usize, *mut *mut hostent, *mut c_int) -> c_int,
) -> *mut hostent {
    let Some(slot) = slot() else {
        set_h_errno(NO_RECOVERY);
        return std::ptr::null_mut();
    };
    let mut result: *mut hostent = std::ptr::null_mut();
    let mut herr: c_int = 0;
    // SAFETY: the slot lives as long as the thread and is not borrowed
    // elsewhere; the buffer length is its real size.
    let (ent, buf, len) = unsafe {
        (
            std::ptr::addr_of_mut!((*slot).ent),
            (*slot).buf.as_mut_ptr() as *mut c_char,
            std::mem::size_of_val(&(*slot).buf),
        )
    };
    lookup(ent, buf, len, &mut result, &mut herr);
    if result.is_null() {
        set_h_errno(herr);
    }
    result
}

/// `gethostbyname2`, through the tunnel when the config has `DNS =`.
///
/// # Safety
/// As for libc's `gethostbyname2`.
#[no_mangle]
pub unsafe extern "C" fn gethostbyname2(name: *const c_char, af: c_int) -> *mut hostent {
    if !matches!(mode(), Mode::Tunnel(_)) {
        // SAFETY: forwarded unchanged.
        return unsafe { real::gethostbyname2(name, af) };
    }
    // SAFETY: `in_slot` hands over a live hostent and buffer of that size.
    in_slot(|ent, buf, len, result, herr| unsafe {
        gethostbyname2_r(name, af, ent, buf, len, result, herr)
    })
}

/// `gethostbyname` (IPv4), through the tunnel when the config has `DNS =`.
///
/// # Safety
/// As for libc's `gethostbyname`.
#[no_mangle]
pub unsafe extern "C" fn gethostbyname(name: *const c_char) -> *mut hostent {
    // SAFETY: as for gethostbyname2.
    unsafe { gethostbyname2(name, libc::AF_INET) }
}

/// The `gethostbyaddr_r` logic; `None` means "let libc do it".
#[allow(clippy::too_many_arguments)] // the C signature
unsafe fn hostbyaddr(
    addr: *const c_void,
    len: socklen_t,
    ty: c_int,
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: usize,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
) -> Option<c_int> {
    if addr.is_null() || result.is_null() || h_errnop.is_null() || ret.is_null() {
        return None;
    }
    let ip = match (ty, len) {
        (libc::AF_INET, 4) => {
            let mut o = [0u8; 4];
            // SAFETY: the caller's 4-byte address.
            unsafe { std::ptr::copy_nonoverlapping(addr as *const u8, o.as_mut_ptr(), 4) };
            IpAddr::from(o)
        }
        (libc::AF_INET6, 16) => {
            let mut o = [0u8; 16];
            // SAFETY: the caller's 16-byte address.
            unsafe { std::ptr::copy_nonoverlapping(addr as *const u8, o.as_mut_ptr(), 16) };
            IpAddr::from(o)
        }
        _ => return None,
    };
    // SAFETY: out-parameters from the caller.
    let fail = |herr: c_int, rc: c_int| unsafe {
        *result = std::ptr::null_mut();
        *h_errnop = herr;
        Some(rc)
    };
    match mode() {
        Mode::Host => return None,
        Mode::Broken => return fail(TRY_AGAIN, libc::EAGAIN),
        Mode::Tunnel(_) => {}
    }
    let Ok(reply) = ask(ResolveKind::Reverse(ip), b"") else {
        return fail(TRY_AGAIN, libc::EAGAIN);
    };
    match reply.status {
        ResolveStatus::Ok if !reply.name.is_empty() && !reply.name.contains(&0) => {}
        ResolveStatus::NotConfigured => return None,
        ResolveStatus::TryAgain => return fail(TRY_AGAIN, libc::EAGAIN),
        ResolveStatus::NoRecovery => return fail(NO_RECOVERY, 0),
        _ => return fail(HOST_NOT_FOUND, 0),
    }
    // SAFETY: the caller's buffers.
    match unsafe { fill_hostent(ret, buf, buflen, &reply.name, ty, &[ip]) } {
        Ok(()) => {
            // SAFETY: the caller's out-parameters.
            unsafe {
                *result = ret;
                *h_errnop = 0;
            }
            Some(0)
        }
        Err(e) => fail(NETDB_INTERNAL, e),
    }
}

/// `gethostbyaddr_r`, reverse lookups through the tunnel when the config
/// has `DNS =`.
///
/// # Safety
/// As for libc's `gethostbyaddr_r`.
#[no_mangle]
pub unsafe extern "C" fn gethostbyaddr_r(
    addr: *const c_void,
    len: socklen_t,
    ty: c_int,
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: usize,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
) -> c_int {
    let pass =
        // SAFETY: forwarded unchanged.
        || unsafe { real::gethostbyaddr_r(addr, len, ty, ret, buf, buflen, result, h_errnop) };
    hook(
        pass,
        || {
            // SAFETY: the caller's arguments, as above.
            unsafe { hostbyaddr(addr, len, ty, ret, buf, buflen, result, h_errnop) }
                .unwrap_or_else(pass)
        },
        libc::EIO,
    )
}

/// `gethostbyaddr`, through the tunnel when the config has `DNS =`.
///
/// # Safety
/// As for libc's `gethostbyaddr`.
#[no_mangle]
pub unsafe extern "C" fn gethostbyaddr(
    addr: *const c_void,
    len: socklen_t,
    ty: c_int,
) -> *mut hostent {
    if !matches!(mode(), Mode::Tunnel(_)) {
        // SAFETY: forwarded unchanged.
        return unsafe { real::gethostbyaddr(addr, len, ty) };
    }
    // SAFETY: `in_slot` hands over a live hostent and buffer of that size.
    in_slot(|ent, buf, buflen, result, herr| unsafe {
        gethostbyaddr_r(addr, len, ty, ent, buf, buflen, result, herr)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostent_is_laid_out_in_the_callers_buffer() {
        // SAFETY: plain old data; all-zero is valid.
        let mut ent: hostent = unsafe { std::mem::zeroed() };
        let mut buf = [0u64; 32];
        let addrs: Vec<IpAddr> = vec![
            "10.77.0.1".parse().expect("ip"),
            "10.77.0.9".parse().expect("ip"),
        ];
        let len = std::mem::size_of_val(&buf);
        // SAFETY: `ent` and `buf` are writable for the sizes given.
        let r = unsafe {
            fill_hostent(
                &mut ent,
                buf.as_mut_ptr() as *mut c_char,
                len,
                b"a.test",
                libc::AF_INET,
                &addrs,
            )
        };
        assert_eq!(r, Ok(()));
        // SAFETY: filled just above, pointing into `buf`.
        unsafe {
            assert_eq!(CStr::from_ptr(ent.h_name).to_bytes(), b"a.test");
            assert!((*ent.h_aliases).is_null());
            assert_eq!(ent.h_addrtype, libc::AF_INET);
            assert_eq!(ent.h_length, 4);
            let a0 = std::slice::from_raw_parts(*ent.h_addr_list as *const u8, 4);
            let a1 = std::slice::from_raw_parts(*ent.h_addr_list.add(1) as *const u8, 4);
            assert_eq!((a0, a1), (&[10, 77, 0, 1][..], &[10, 77, 0, 9][..]));
            assert!((*ent.h_addr_list.add(2)).is_null());
        }
        // Too small, at every size below what it needs: ERANGE, no write past.
        for small in 0..40 {
            // SAFETY: as above, with a shorter length.
            let r = unsafe {
                fill_hostent(
                    &mut ent,
                    buf.as_mut_ptr() as *mut c_char,
                    small,
                    b"a.test",
                    libc::AF_INET,
                    &addrs,
                )
            };
            assert_eq!(r, Err(libc::ERANGE), "{small}");
        }
    }
}
