//! Conversions between C socket addresses and `std::net::SocketAddr`
//! (plain values: no std::net sockets are ever created in the shim).

use libc::{c_int, sockaddr, socklen_t};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Reads an AF_INET/AF_INET6 address; `None` for anything else or too short.
///
/// # Safety
/// `addr` must be null or point to `len` readable bytes.
pub unsafe fn read(addr: *const sockaddr, len: socklen_t) -> Option<SocketAddr> {
    if addr.is_null() || (len as usize) < std::mem::size_of::<libc::sa_family_t>() {
        return None;
    }
    // SAFETY: at least the family field is readable (checked above).
    let family = unsafe { (*addr).sa_family } as c_int;
    match family {
        libc::AF_INET if len as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: length checked; read_unaligned copes with any alignment.
            let sin = unsafe { std::ptr::read_unaligned(addr as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: length checked; read_unaligned copes with any alignment.
            let sin6 = unsafe { std::ptr::read_unaligned(addr as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Reads a `sockaddr_storage` filled by the kernel.
pub fn from_storage(ss: &libc::sockaddr_storage, len: socklen_t) -> Option<SocketAddr> {
    // SAFETY: `ss` is a valid sockaddr_storage of at least `len` bytes.
    unsafe { read(ss as *const _ as *const sockaddr, len) }
}

/// Expresses `a` in the address family of a socket: IPv4 on an AF_INET6
/// socket becomes IPv4-mapped (shared with seccomp mode).
pub use control::connect::in_family;

/// Encodes `a` into a C socket address; returns it and its length.
pub fn to_storage(a: SocketAddr) -> (libc::sockaddr_storage, socklen_t) {
    // SAFETY: plain old data; all-zero is valid.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as socklen_t)
}

/// Writes `a` to the application's `(addr, len)` out-parameters the way the
/// kernel does: copies at most `*len` bytes and stores the full length.
///
/// # Safety
/// `addr`/`len` must be null or valid as for `getsockname(2)`.
pub unsafe fn write_out(
    a: SocketAddr,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> Result<(), c_int> {
    if addr.is_null() || len.is_null() {
        return Err(libc::EFAULT);
    }
    let (ss, full) = to_storage(a);
    // SAFETY: `len` is non-null and valid per the caller.
    let room = unsafe { *len };
    let n = (room as usize).min(full as usize);
    // SAFETY: the caller gave `room` writable bytes at `addr`; `n <= room`.
    unsafe {
        std::ptr::copy_nonoverlapping(&ss as *const _ as *const u8, addr as *mut u8, n);
        *len = full;
    }
    Ok(())
}

/// True for destinations that always stay on the host: loopback,
/// unspecified, multicast, broadcast (v4-mapped forms included; shared with
/// seccomp mode).
pub use control::connect::is_local;

/// The loopback address of the same family (and v4-mapped form) as `a`.
pub fn loopback_like(a: &SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V4(v4) => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), v4.port()),
        SocketAddr::V6(v6) if v6.ip().to_ipv4_mapped().is_some() => {
            SocketAddr::new(IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()), v6.port())
        }
        SocketAddr::V6(v6) => SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), v6.port()),
    }
}
