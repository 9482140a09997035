//! Receive ancillary data on carried datagram sockets, as the kernel would
//! write it: `SO_TIMESTAMP` (`SCM_TIMESTAMP`), `IP_RECVTTL` (`IP_TTL`),
//! `IP_PKTINFO`, `IPV6_RECVHOPLIMIT` (`IPV6_HOPLIMIT`) and
//! `IPV6_RECVPKTINFO` (`IPV6_PKTINFO`). Whether the program asked for each
//! is read from the shadow (the socket it made, where its `setsockopt`
//! calls went); the values come from the engine with each datagram
//! (`control::datagram::RecvInfo`). The interface index reported is 0:
//! there is no tunnel interface. Only looked at when the program passes a
//! control buffer.

use crate::sys;
use control::datagram::RecvInfo;
use libc::c_int;
use std::net::IpAddr;

/// Whether the int option `level`/`name` is set on `fd`.
fn on(fd: c_int, level: c_int, name: c_int) -> bool {
    sys::getsockopt_int(fd, level, name).unwrap_or(0) != 0
}

/// Appends control messages into a buffer of `room` bytes.
struct Writer {
    buf: *mut u8,
    room: usize,
    used: usize,
    truncated: bool,
}

impl Writer {
    /// Appends one message with `data` (the kernel's `put_cmsg`).
    fn put(&mut self, level: c_int, ty: c_int, data: &[u8]) {
        // SAFETY: CMSG_* only compute lengths.
        let (len, space) = unsafe {
            (
                libc::CMSG_LEN(data.len() as u32) as usize,
                libc::CMSG_SPACE(data.len() as u32) as usize,
            )
        };
        if self.used + len > self.room {
            self.truncated = true;
            return;
        }
        let hdr = libc::cmsghdr {
            cmsg_len: len as _,
            cmsg_level: level,
            cmsg_type: ty,
        };
        let head = std::mem::size_of::<libc::cmsghdr>();
        // SAFETY: `used + len <= room` bytes of the program's control
        // buffer are writable; unaligned writes, as the buffer may be.
        unsafe {
            let at = self.buf.add(self.used);
            std::ptr::write_unaligned(at as *mut libc::cmsghdr, hdr);
            std::ptr::copy_nonoverlapping(data.as_ptr(), at.add(head), data.len());
        }
        self.used = (self.used + space).min(self.room);
    }
}

/// Writes one control message (`data`) as the whole control data of `m`
/// (`MSG_CTRUNC` when it does not fit in `room` bytes).
///
/// # Safety
/// `m.msg_control` must be null or valid for `room` bytes.
pub unsafe fn put_one(m: &mut libc::msghdr, room: usize, level: c_int, ty: c_int, data: &[u8]) {
    m.msg_controllen = 0;
    if m.msg_control.is_null() {
        m.msg_flags |= libc::MSG_CTRUNC;
        return;
    }
    let mut w = Writer {
        buf: m.msg_control as *mut u8,
        room,
        used: 0,
        truncated: false,
    };
    w.put(level, ty, data);
    m.msg_controllen = w.used as _;
    if w.truncated {
        m.msg_flags |= libc::MSG_CTRUNC;
    }
}

fn bytes_of<T>(v: &T) -> &[u8] {
    // SAFETY: plain old data viewed as its bytes.
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>()) }
}

/// Writes the ancillary data the program asked for on its socket `shadow`
/// (of `family`) into `m` (whose control buffer held `room` bytes before
/// the receive); sets `msg_controllen` and `MSG_CTRUNC` in `msg_flags`.
///
/// # Safety
/// `m.msg_control` must be null or valid for `room` bytes.
pub unsafe fn fill(
    m: &mut libc::msghdr,
    room: usize,
    shadow: c_int,
    family: c_int,
    info: RecvInfo,
) {
    m.msg_controllen = 0;
    if m.msg_control.is_null() || room == 0 {
        return;
    }
    let mut w = Writer {
        buf: m.msg_control as *mut u8,
        room,
        used: 0,
        truncated: false,
    };
    let sh = shadow;
    if on(sh, libc::SOL_SOCKET, libc::SO_TIMESTAMP) {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-parameter.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
        let tv = libc::timeval {
            tv_sec: ts.tv_sec,
            tv_usec: (ts.tv_nsec / 1000) as _,
        };
        w.put(libc::SOL_SOCKET, libc::SCM_TIMESTAMP, bytes_of(&tv));
    }
    if family == libc::AF_INET {
        let dst = match info.dst {
            Some(IpAddr::V4(a)) => a,
            _ => std::net::Ipv4Addr::UNSPECIFIED,
        };
        if on(sh, libc::IPPROTO_IP, libc::IP_PKTINFO) {
            let a = libc::in_addr {
                s_addr: u32::from_ne_bytes(dst.octets()),
            };
            let pi = libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: a,
                ipi_addr: a,
            };
            w.put(libc::IPPROTO_IP, libc::IP_PKTINFO, bytes_of(&pi));
        }
        if let Some(ttl) = info.ttl {
            if on(sh, libc::IPPROTO_IP, libc::IP_RECVTTL) {
                w.put(libc::IPPROTO_IP, libc::IP_TTL, bytes_of(&c_int::from(ttl)));
            }
        }
    } else {
        let dst = match info.dst {
            Some(IpAddr::V6(a)) => a,
            Some(IpAddr::V4(a)) => a.to_ipv6_mapped(),
            None => std::net::Ipv6Addr::UNSPECIFIED,
        };
        if on(sh, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO) {
            let pi = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: dst.octets(),
                },
                ipi6_ifindex: 0,
            };
            w.put(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, bytes_of(&pi));
        }
        if let Some(hops) = info.ttl {
            if on(sh, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT) {
                w.put(
                    libc::IPPROTO_IPV6,
                    libc::IPV6_HOPLIMIT,
                    bytes_of(&c_int::from(hops)),
                );
            }
        }
    }
    m.msg_controllen = w.used as _;
    if w.truncated {
        m.msg_flags |= libc::MSG_CTRUNC;
    }
}
