//! Reading and writing the trapped caller's memory with
//! `process_vm_readv`/`process_vm_writev`. Every length is bounded and a
//! short transfer is an error. What is read can change under us (another
//! thread of the caller): callers re-check the notification with
//! [`super::notify::Listener::id_valid`] after reading and treat the bytes
//! as untrusted input.

use std::io;

/// Largest single transfer (socket addresses and option values are tiny).
pub const MAX_TRANSFER: usize = 4096;

/// Reads `len` bytes at `addr` in thread `pid`.
pub fn read(pid: u32, addr: u64, len: usize) -> io::Result<Vec<u8>> {
    if len > MAX_TRANSFER {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    if addr == 0 {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    let mut buf = vec![0u8; len];
    if len == 0 {
        return Ok(buf);
    }
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: addr as usize as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: `local` describes `buf` (len bytes, alive across the call);
    // `remote` is only dereferenced by the kernel in the other process.
    let n = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != len {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(buf)
}

/// Writes `bytes` at `addr` in thread `pid`.
pub fn write(pid: u32, addr: u64, bytes: &[u8]) -> io::Result<()> {
    if bytes.len() > MAX_TRANSFER {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    if addr == 0 {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    if bytes.is_empty() {
        return Ok(());
    }
    let local = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as usize as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: `local` describes `bytes` (read only by the kernel); `remote`
    // is only dereferenced by the kernel in the other process.
    let n = unsafe { libc::process_vm_writev(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != bytes.len() {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(())
}

/// Reads a native-endian `u32` (a `socklen_t`) at `addr`.
pub fn read_u32(pid: u32, addr: u64) -> io::Result<u32> {
    let b = read(pid, addr, 4)?;
    Ok(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_our_own_memory() {
        let pid = std::process::id();
        let src = *b"hello seccomp";
        let got = read(pid, src.as_ptr() as u64, src.len()).expect("read self");
        assert_eq!(got, src);
        let mut dst = [0u8; 5];
        write(pid, dst.as_mut_ptr() as u64, b"abcde").expect("write self");
        assert_eq!(std::hint::black_box(dst), *b"abcde");
    }

    #[test]
    fn bad_addresses_and_lengths_are_errors() {
        let pid = std::process::id();
        assert!(read(pid, 0, 4).is_err());
        assert!(read(pid, 8, 4).is_err()); // unmapped
        assert!(read(pid, 0x1000, MAX_TRANSFER + 1).is_err());
        assert!(write(pid, 8, b"x").is_err());
    }
}
