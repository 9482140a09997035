//! `getaddrinfo` and `getnameinfo` through the tunnel. `getaddrinfo`
//! results are built by libc's own `getaddrinfo` on each numeric address
//! (`AI_NUMERICHOST`), chained, with `ai_canonname` from `strdup`, so
//! libc's `freeaddrinfo` frees them as its own.

use super::query::{ask, is_numeric, mode, Mode};
use crate::guard::hook;
use crate::real;
use control::{ResolveKind, ResolveStatus};
use libc::{addrinfo, c_char, c_int, sockaddr, socklen_t};
use std::ffi::CStr;
use std::net::IpAddr;

// glibc's values (netdb.h), spelled out: the libc crate lacks some.
const EAI_NONAME: c_int = -2;
const EAI_AGAIN: c_int = -3;
const EAI_FAIL: c_int = -4;
const EAI_NODATA: c_int = -5;
const EAI_MEMORY: c_int = -10;
const EAI_OVERFLOW: c_int = -12;
const AI_CANONNAME: c_int = 0x2;
const AI_NUMERICHOST: c_int = 0x4;
const AI_V4MAPPED: c_int = 0x8;
const AI_ALL: c_int = 0x10;
const AI_ADDRCONFIG: c_int = 0x20;
const NI_NUMERICHOST: c_int = 1;
const NI_NAMEREQD: c_int = 8;

unsafe fn do_getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const addrinfo,
    res: *mut *mut addrinfo,
) -> c_int {
    // SAFETY: forwarded unchanged.
    let pass = || unsafe { real::getaddrinfo(node, service, hints, res) };
    if node.is_null() || res.is_null() {
        return pass();
    }
    // SAFETY: the caller passes a C string.
    let name = unsafe { CStr::from_ptr(node) };
    // SAFETY: null or a valid addrinfo from the caller.
    let h = unsafe { hints.as_ref() };
    let (family, flags) = h.map_or((libc::AF_UNSPEC, 0), |h| (h.ai_family, h.ai_flags));
    if flags & AI_NUMERICHOST != 0 || is_numeric(name) {
        return pass();
    }
    if !matches!(family, libc::AF_UNSPEC | libc::AF_INET | libc::AF_INET6) {
        return pass();
    }
    match mode() {
        Mode::Host => return pass(),
        Mode::Broken => return EAI_AGAIN,
        Mode::Tunnel(_) => {}
    }
    let mapped = family == libc::AF_INET6 && flags & AI_V4MAPPED != 0;
    let kind = ResolveKind::Addr {
        v4: family != libc::AF_INET6 || mapped,
        v6: family != libc::AF_INET,
    };
    let Ok(reply) = ask(kind, name.to_bytes()) else {
        return EAI_AGAIN;
    };
    match reply.status {
        ResolveStatus::Ok => {}
        ResolveStatus::NotConfigured => return pass(),
        ResolveStatus::NxDomain => return EAI_NONAME,
        ResolveStatus::NoData => return EAI_NODATA,
        ResolveStatus::TryAgain => return EAI_AGAIN,
        ResolveStatus::NoRecovery => return EAI_FAIL,
    }
    let mut addrs: Vec<IpAddr> = match family {
        libc::AF_INET => reply
            .addrs
            .iter()
            .copied()
            .filter(IpAddr::is_ipv4)
            .collect(),
        libc::AF_INET6 => {
            let v6: Vec<IpAddr> = reply
                .addrs
                .iter()
                .copied()
                .filter(IpAddr::is_ipv6)
                .collect();
            let want_mapped = mapped && (v6.is_empty() || flags & AI_ALL != 0);
            let mut out = v6;
            if want_mapped {
                out.extend(reply.addrs.iter().filter_map(|a| match a {
                    IpAddr::V4(v4) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
                    IpAddr::V6(_) => None,
                }));
            }
            out
        }
        _ => reply.addrs.clone(),
    };
    addrs.dedup();
    if addrs.is_empty() {
        return EAI_NODATA;
    }
    // SAFETY: `service`/`hints` come from the caller; `res` is writable.
    unsafe { build_addrinfo(&addrs, &reply.name, name, service, h, res) }
}

/// Chains libc's own results for each numeric address.
unsafe fn build_addrinfo(
    addrs: &[IpAddr],
    canonical: &[u8],
    asked: &CStr,
    service: *const c_char,
    hints: Option<&addrinfo>,
    res: *mut *mut addrinfo,
) -> c_int {
    // SAFETY: plain old data; all-zero is a valid addrinfo.
    let mut inner: addrinfo = unsafe { std::mem::zeroed() };
    if let Some(h) = hints {
        inner.ai_socktype = h.ai_socktype;
        inner.ai_protocol = h.ai_protocol;
        inner.ai_flags = h.ai_flags & !(AI_CANONNAME | AI_ADDRCONFIG | AI_V4MAPPED | AI_ALL);
    }
    inner.ai_flags |= AI_NUMERICHOST;
    inner.ai_family = libc::AF_UNSPEC;
    let mut head: *mut addrinfo = std::ptr::null_mut();
    let mut tail: *mut addrinfo = std::ptr::null_mut();
    for a in addrs {
        let text = match std::ffi::CString::new(a.to_string()) {
            Ok(t) => t,
            Err(_) => continue,
        };
        let mut part: *mut addrinfo = std::ptr::null_mut();
        // SAFETY: valid C strings and hints; `part` receives the list.
        let r = unsafe { real::getaddrinfo(text.as_ptr(), service, &inner, &mut part) };
        if r != 0 {
            if !head.is_null() {
                // SAFETY: a list libc made.
                unsafe { libc::freeaddrinfo(head) };
            }
            return r;
        }
        if part.is_null() {
            continue;
        }
        if head.is_null() {
            head = part;
        } else {
            // SAFETY: `tail` is the last node of our chain.
            unsafe { (*tail).ai_next = part };
        }
        tail = part;
        // SAFETY: walking libc's list to its end.
        unsafe {
            while !(*tail).ai_next.is_null() {
                tail = (*tail).ai_next;
            }
        }
    }
    if head.is_null() {
        return EAI_NODATA;
    }
    if hints.is_some_and(|h| h.ai_flags & AI_CANONNAME != 0) {
        let canon = if canonical.is_empty() {
            asked.to_bytes().to_vec()
        } else {
            canonical.to_vec()
        };
        let Ok(c) = std::ffi::CString::new(canon) else {
            // SAFETY: a list libc made.
            unsafe { libc::freeaddrinfo(head) };
            return EAI_FAIL;
        };
        // SAFETY: strdup returns malloc'd memory, which freeaddrinfo frees.
        let dup = unsafe { libc::strdup(c.as_ptr()) };
        if dup.is_null() {
            // SAFETY: a list libc made.
            unsafe { libc::freeaddrinfo(head) };
            return EAI_MEMORY;
        }
        // SAFETY: head is a valid node; with AI_NUMERICHOST and no
        // AI_CANONNAME libc left its canonname null.
        unsafe { (*head).ai_canonname = dup };
    }
    // SAFETY: the caller's out-pointer.
    unsafe { *res = head };
    0
}

/// `getaddrinfo`, through the tunnel when the config has `DNS =`.
///
/// # Safety
/// As for libc's `getaddrinfo`.
#[no_mangle]
pub unsafe extern "C" fn getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const addrinfo,
    res: *mut *mut addrinfo,
) -> c_int {
    hook(
        // SAFETY: forwarded unchanged.
        || unsafe { real::getaddrinfo(node, service, hints, res) },
        // SAFETY: as above.
        || unsafe { do_getaddrinfo(node, service, hints, res) },
        libc::EIO,
    )
}

unsafe fn do_getnameinfo(
    sa: *const sockaddr,
    salen: socklen_t,
    host: *mut c_char,
    hostlen: socklen_t,
    serv: *mut c_char,
    servlen: socklen_t,
    flags: c_int,
) -> c_int {
    // SAFETY: forwarded unchanged.
    let pass = || unsafe { real::getnameinfo(sa, salen, host, hostlen, serv, servlen, flags) };
    if host.is_null() || hostlen == 0 || flags & NI_NUMERICHOST != 0 {
        return pass();
    }
    // SAFETY: the caller's (sa, salen).
    let Some(addr) = (unsafe { crate::addr::read(sa, salen) }) else {
        return pass();
    };
    match mode() {
        Mode::Host => return pass(),
        Mode::Broken | Mode::Tunnel(_) => {}
    }
    // The numeric form and the service first: libc's own work.
    let r = unsafe {
        // SAFETY: forwarded, with NI_NUMERICHOST (no lookup).
        real::getnameinfo(
            sa,
            salen,
            host,
            hostlen,
            serv,
            servlen,
            (flags | NI_NUMERICHOST) & !NI_NAMEREQD,
        )
    };
    if r != 0 {
        return r;
    }
    let ip = control::normalize(addr).ip();
    let reply = if matches!(mode(), Mode::Broken) {
        Err(())
    } else {
        ask(ResolveKind::Reverse(ip), b"")
    };
    let name = match reply {
        Ok(r) if r.status == ResolveStatus::Ok && !r.name.is_empty() => r.name,
        Ok(r) if r.status == ResolveStatus::TryAgain => {
            return if flags & NI_NAMEREQD != 0 {
                EAI_AGAIN
            } else {
                0
            };
        }
        Ok(_) => {
            return if flags & NI_NAMEREQD != 0 {
                EAI_NONAME
            } else {
                0
            }
        }
        Err(()) => {
            return if flags & NI_NAMEREQD != 0 {
                EAI_AGAIN
            } else {
                0
            }
        }
    };
    if name.len() + 1 > hostlen as usize || name.contains(&0) {
        return EAI_OVERFLOW;
    }
    // SAFETY: host[..hostlen] is the caller's buffer and the name fits.
    unsafe {
        std::ptr::copy_nonoverlapping(name.as_ptr(), host as *mut u8, name.len());
        *host.add(name.len()) = 0;
    }
    0
}

/// `getnameinfo`, reverse lookups through the tunnel when the config has
/// `DNS =`.
///
/// # Safety
/// As for libc's `getnameinfo`.
#[no_mangle]
pub unsafe extern "C" fn getnameinfo(
    sa: *const sockaddr,
    salen: socklen_t,
    host: *mut c_char,
    hostlen: socklen_t,
    serv: *mut c_char,
    servlen: socklen_t,
    flags: c_int,
) -> c_int {
    hook(
        // SAFETY: forwarded unchanged.
        || unsafe { real::getnameinfo(sa, salen, host, hostlen, serv, servlen, flags) },
        // SAFETY: as above.
        || unsafe { do_getnameinfo(sa, salen, host, hostlen, serv, servlen, flags) },
        libc::EIO,
    )
}
