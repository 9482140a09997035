//! Outgoing datagrams in batches. Consecutive datagrams to the same
//! endpoint with the same size (a TCP flow's full-size segments, once
//! encrypted, all are) leave in one `sendmsg` with `UDP_SEGMENT` (UDP GSO,
//! Linux ≥ 4.18): the kernel cuts the buffer into datagrams, so the engine
//! pays one system call for up to [`MAX_SEGMENTS`] of them. If the kernel
//! refuses GSO the batch goes out datagram by datagram and GSO stays off.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

/// Most datagrams in one GSO send (the kernel's limit is 64).
pub const MAX_SEGMENTS: usize = 64;
/// Most bytes in one GSO send (the UDP length field bounds the total).
const MAX_BYTES: usize = 65_000;

/// Datagrams waiting to be sent together.
pub struct TxBatch {
    /// The datagrams, back to back.
    buf: Vec<u8>,
    /// Size of the first datagram (every one but the last has this size).
    seg: usize,
    count: usize,
    dst: Option<SocketAddr>,
    /// Whether to try GSO at all.
    gso: bool,
}

impl TxBatch {
    /// An empty batch; `gso` false sends every datagram on its own.
    pub fn new(gso: bool) -> Self {
        TxBatch {
            buf: Vec::with_capacity(MAX_BYTES + 2048),
            seg: 0,
            count: 0,
            dst: None,
            gso,
        }
    }

    /// Whether a datagram of `len` bytes to `dst` can join the batch
    /// (otherwise send the batch first).
    pub fn fits(&self, dst: SocketAddr, len: usize) -> bool {
        self.count == 0
            || (self.gso
                && self.dst == Some(dst)
                && len <= self.seg
                // Only the last datagram may be shorter.
                && self.buf.len() == self.seg * self.count
                && self.count < MAX_SEGMENTS
                && self.buf.len() + len <= MAX_BYTES)
    }

    /// Adds a datagram; call [`TxBatch::fits`] first.
    pub fn push(&mut self, dst: SocketAddr, data: &[u8]) {
        if self.count == 0 {
            self.dst = Some(dst);
            self.seg = data.len();
        }
        self.buf.extend_from_slice(data);
        self.count += 1;
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Sends the batch on `fd` (retrying through `wait` when the socket
    /// buffer is full, as long as it returns true); returns the number of
    /// datagrams that could not be sent. The batch is empty afterwards.
    pub fn send(&mut self, fd: RawFd, mut wait: impl FnMut() -> bool) -> usize {
        let Some(dst) = self.dst else {
            return 0;
        };
        let mut lost = 0;
        if self.count > 1 {
            match send_retrying(fd, dst, &self.buf, Some(self.seg), &mut wait) {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINVAL | libc::EIO | libc::ENOPROTOOPT)
                    ) =>
                {
                    tracing::debug!(error = %e, "UDP GSO refused; sending datagrams one by one");
                    self.gso = false;
                    for d in self.buf.chunks(self.seg) {
                        lost += usize::from(send_retrying(fd, dst, d, None, &mut wait).is_err());
                    }
                }
                Err(_) => lost = self.count,
            }
        } else {
            lost = usize::from(send_retrying(fd, dst, &self.buf, None, &mut wait).is_err());
        }
        self.buf.clear();
        self.count = 0;
        self.dst = None;
        lost
    }
}

fn send_retrying(
    fd: RawFd,
    dst: SocketAddr,
    data: &[u8],
    seg: Option<usize>,
    wait: &mut impl FnMut() -> bool,
) -> io::Result<()> {
    loop {
        match send_one(fd, dst, data, seg) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // The socket buffer is full: wait briefly for room rather
                // than lose packets TCP must then recover.
                if !wait() {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// The socket address of `a` for the kernel.
fn sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is valid.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
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
    (ss, len as libc::socklen_t)
}

/// One `sendmsg`, with a `UDP_SEGMENT` control message when `seg` is set.
fn send_one(fd: RawFd, dst: SocketAddr, data: &[u8], seg: Option<usize>) -> io::Result<()> {
    let (mut ss, ss_len) = sockaddr(dst);
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // Room for one cmsghdr carrying a u16, 8-byte aligned.
    let mut control = [0u64; 4];
    // SAFETY: an all-zero msghdr is valid (no name, no iov, no control).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = &mut ss as *mut _ as *mut libc::c_void;
    msg.msg_namelen = ss_len;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(seg) = seg {
        let seg = u16::try_from(seg).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        // SAFETY: CMSG_SPACE only computes a size.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(2) } as usize;
        // SAFETY: msg_control points at `control`, which is at least
        // CMSG_SPACE(2) bytes and aligned for cmsghdr, so the first header
        // and its 2 data bytes are in bounds.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_UDP;
            (*c).cmsg_type = libc::UDP_SEGMENT;
            (*c).cmsg_len = libc::CMSG_LEN(2) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, seg);
        }
    }
    // SAFETY: msg points at live, correctly sized name, iovec and control
    // buffers for the duration of the call; `data` outlives it.
    let r = unsafe { libc::sendmsg(fd, &msg, 0) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn pair() -> (std::net::UdpSocket, std::net::UdpSocket) {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        b.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        (a, b)
    }

    #[test]
    fn same_size_datagrams_batch_and_arrive_separately() {
        let (a, b) = pair();
        let dst = b.local_addr().expect("addr");
        let mut t = TxBatch::new(true);
        let mut sent = Vec::new();
        for i in 0..10u8 {
            let d = if i == 9 { vec![i; 300] } else { vec![i; 1000] };
            assert!(t.fits(dst, d.len()), "datagram {i} joins");
            t.push(dst, &d);
            sent.push(d);
        }
        assert!(!t.fits(dst, 1000), "nothing after a short last datagram");
        let other: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        assert!(!t.fits(other, 10), "another endpoint needs a new batch");
        assert_eq!(t.send(a.as_raw_fd(), || false), 0);
        assert!(t.is_empty());
        let mut buf = [0u8; 2000];
        for want in sent {
            let n = b.recv(&mut buf).expect("each datagram arrives on its own");
            assert_eq!(&buf[..n], &want[..]);
        }
    }

    #[test]
    fn without_gso_every_datagram_is_its_own_batch() {
        let (a, b) = pair();
        let dst = b.local_addr().expect("addr");
        let mut t = TxBatch::new(false);
        t.push(dst, b"one");
        assert!(!t.fits(dst, 3));
        assert_eq!(t.send(a.as_raw_fd(), || false), 0);
        let mut buf = [0u8; 16];
        let n = b.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"one");
    }

    #[test]
    fn ipv6_destinations_work() {
        let Ok(a) = std::net::UdpSocket::bind("[::1]:0") else {
            return; // no IPv6 loopback here
        };
        let b = std::net::UdpSocket::bind("[::1]:0").expect("bind");
        b.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        let dst = b.local_addr().expect("addr");
        let mut t = TxBatch::new(true);
        t.push(dst, &[1u8; 500]);
        t.push(dst, &[2u8; 500]);
        assert_eq!(t.send(a.as_raw_fd(), || false), 0);
        let mut buf = [0u8; 1000];
        assert_eq!(b.recv(&mut buf).expect("first"), 500);
        assert_eq!(buf[0], 1);
        assert_eq!(b.recv(&mut buf).expect("second"), 500);
        assert_eq!(buf[0], 2);
    }
}
