//! The caller's memory as the datagram calls lay it out (`msghdr`,
//! `mmsghdr`, `iovec`, socket addresses), read and written in pieces of at
//! most `memory::MAX_TRANSFER`.

use crate::memory;
use crate::sockaddr;
use std::net::SocketAddr;

/// Largest vector `sendmmsg`/`recvmmsg` take (`UIO_MAXIOV`), and largest
/// `iovec` count of one message.
pub const MAX_VEC: u64 = 1024;
/// `struct msghdr` on x86-64.
pub const MSGHDR: u64 = 56;
/// `struct mmsghdr` on x86-64 (`msghdr`, `msg_len`, padding).
pub const MMSGHDR: u64 = 64;
/// Largest datagram.
pub const MAX_DATAGRAM: usize = 65_535;

/// `len` bytes of the caller's memory at `addr` (`EFAULT` if unreadable).
pub fn read_mem(pid: u32, addr: u64, len: usize) -> Result<Vec<u8>, i32> {
    let mut out = Vec::with_capacity(len);
    let mut at = addr;
    while out.len() < len {
        let n = (len - out.len()).min(memory::MAX_TRANSFER);
        out.extend(memory::read(pid, at, n).map_err(|_| libc::EFAULT)?);
        at += n as u64;
    }
    Ok(out)
}

/// Writes `bytes` to the caller's memory at `addr` (`EFAULT` if unwritable).
pub fn write_mem(pid: u32, addr: u64, bytes: &[u8]) -> Result<(), i32> {
    for (i, chunk) in bytes.chunks(memory::MAX_TRANSFER).enumerate() {
        let at = addr + (i * memory::MAX_TRANSFER) as u64;
        memory::write(pid, at, chunk).map_err(|_| libc::EFAULT)?;
    }
    Ok(())
}

/// The native-endian `u64` at `off` of `b` (0 past its end).
pub fn u64_at(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_ne_bytes)
}

/// The native-endian `u32` at `off` of `b` (0 past its end).
pub fn u32_at(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_ne_bytes)
}

/// The `iovec`s at `iov` (`n` of them) as (base, len).
pub fn iovecs(pid: u32, iov: u64, n: u64) -> Result<Vec<(u64, usize)>, i32> {
    if n > MAX_VEC {
        return Err(libc::EMSGSIZE);
    }
    let b = read_mem(pid, iov, n as usize * 16)?;
    Ok((0..n as usize)
        .map(|i| (u64_at(&b, i * 16), u64_at(&b, i * 16 + 8) as usize))
        .collect())
}

/// A socket address argument (`addr`, `len`) of the caller.
pub fn read_addr(pid: u32, addr: u64, len: u64) -> Option<SocketAddr> {
    let len = usize::try_from(len as u32).ok()?;
    if addr == 0 || len == 0 || len > sockaddr::MAX_LEN {
        return None;
    }
    sockaddr::decode(&memory::read(pid, addr, len).ok()?)
}

/// One message to send, read from the caller: destination and payload.
pub struct Outgoing {
    /// Where it goes, if the message names it.
    pub dst: Option<SocketAddr>,
    /// What it carries, gathered from its `iovec`s.
    pub payload: Vec<u8>,
}

/// The `msghdr` at `at`: its destination and gathered payload.
pub fn read_msghdr(pid: u32, at: u64) -> Result<Outgoing, i32> {
    let h = memory::read(pid, at, MSGHDR as usize).map_err(|_| libc::EFAULT)?;
    let dst = read_addr(pid, u64_at(&h, 0), u64::from(u32_at(&h, 8)));
    let mut payload = Vec::new();
    for (base, len) in iovecs(pid, u64_at(&h, 16), u64_at(&h, 24))? {
        if payload.len() + len > MAX_DATAGRAM {
            return Err(libc::EMSGSIZE);
        }
        payload.extend(read_mem(pid, base, len)?);
    }
    Ok(Outgoing { dst, payload })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sendmsg_payload_is_gathered_from_every_iovec() {
        let pid = std::process::id();
        let a = *b"GET ";
        let b = *b"/x";
        let iov = [
            libc::iovec {
                iov_base: a.as_ptr() as *mut libc::c_void,
                iov_len: 4,
            },
            libc::iovec {
                iov_base: b.as_ptr() as *mut libc::c_void,
                iov_len: 2,
            },
        ];
        let to = sockaddr::encode("10.77.0.1:53".parse().expect("a"));
        // SAFETY: plain old data; all-zero is a valid msghdr.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = to.as_ptr() as *mut libc::c_void;
        msg.msg_namelen = to.len() as u32;
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = 2;
        let m = read_msghdr(pid, &msg as *const libc::msghdr as u64).expect("read");
        assert_eq!(m.payload, b"GET /x");
        assert_eq!(m.dst, Some("10.77.0.1:53".parse().expect("a")));
        // Over-long vectors are refused, not read.
        msg.msg_iovlen = (MAX_VEC + 1) as usize;
        assert_eq!(
            read_msghdr(pid, &msg as *const libc::msghdr as u64).err(),
            Some(libc::EMSGSIZE)
        );
    }
}
