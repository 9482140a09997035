//! Incoming datagrams in batches: one `recvmmsg` reads up to [`SLOTS`]
//! messages, and with UDP GRO (`UDP_GRO` socket option, Linux ≥ 5.0) each
//! message may hold several datagrams of one sender coalesced by the
//! kernel, their size given by a `UDP_GRO` control message; [`RxBatch`]
//! cuts them apart again. If the kernel refuses the option, messages are
//! single datagrams and nothing else changes.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Messages read per `recvmmsg`.
pub const SLOTS: usize = 32;
/// Bytes per message: a GRO message is at most one UDP length.
#[cfg(test)]
const SLOT_LEN: usize = 65_536;
/// Room for one cmsghdr carrying an int, in u64 words (8-byte aligned).
const CONTROL_WORDS: usize = 4;

/// Asks the kernel to coalesce incoming datagrams (UDP GRO); false if it
/// refuses (old kernel), in which case messages stay single datagrams.
pub fn enable_gro(fd: RawFd) -> bool {
    let on: libc::c_int = 1;
    // SAFETY: `on` is a valid c_int for the duration of the call and its
    // size is passed; the kernel only reads it.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_UDP,
            libc::UDP_GRO,
            &on as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    r == 0
}

/// The datagrams of the last [`RxBatch::recv`], and the buffers they live in.
pub struct RxBatch {
    /// [`SLOTS`] message buffers of `slot_len` bytes, back to back.
    buf: Vec<u8>,
    slot_len: usize,
    names: Vec<libc::sockaddr_storage>,
    control: Vec<[u64; CONTROL_WORDS]>,
    /// Each datagram: offset in `buf`, length, sender.
    parts: Vec<(usize, usize, SocketAddr)>,
    /// Messages the last read returned (fewer than `parts` with GRO).
    messages: usize,
}

impl Default for RxBatch {
    /// An empty placeholder without buffers (it reads nothing).
    fn default() -> Self {
        RxBatch {
            buf: Vec::new(),
            slot_len: 0,
            names: Vec::new(),
            control: Vec::new(),
            parts: Vec::new(),
            messages: 0,
        }
    }
}

impl RxBatch {
    /// Room for `slots` messages of `slot_len` bytes each.
    pub fn new(slots: usize, slot_len: usize) -> Self {
        let slots = slots.max(1);
        RxBatch {
            buf: vec![0; slots * slot_len],
            slot_len,
            // SAFETY: an all-zero sockaddr_storage is valid.
            names: vec![unsafe { std::mem::zeroed() }; slots],
            control: vec![[0; CONTROL_WORDS]; slots],
            parts: Vec::with_capacity(slots * 4),
            messages: 0,
        }
    }

    /// Messages (system-level, before the GRO split) of the last read.
    #[cfg(test)]
    fn messages(&self) -> usize {
        self.messages
    }

    /// Datagram `k` of the last read and its sender.
    pub fn get(&self, k: usize) -> Option<(SocketAddr, &[u8])> {
        let &(off, len, from) = self.parts.get(k)?;
        Some((from, self.buf.get(off..off + len)?))
    }

    /// Reads what is waiting on the non-blocking socket `fd` (one
    /// `recvmmsg`); returns the number of datagrams, GRO messages split.
    /// `WouldBlock` when nothing waits.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.parts.clear();
        self.messages = 0;
        if self.names.is_empty() {
            return Ok(0);
        }
        let slots = self.names.len();
        let mut iovs: Vec<libc::iovec> = self
            .buf
            .chunks_mut(self.slot_len)
            .take(slots)
            .map(|c| libc::iovec {
                iov_base: c.as_mut_ptr() as *mut libc::c_void,
                iov_len: c.len(),
            })
            .collect();
        // SAFETY: an all-zero mmsghdr is valid (no name, iov or control).
        let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; slots];
        for (k, m) in msgs.iter_mut().enumerate() {
            let h = &mut m.msg_hdr;
            h.msg_name = &mut self.names[k] as *mut _ as *mut libc::c_void;
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut iovs[k];
            h.msg_iovlen = 1;
            h.msg_control = self.control[k].as_mut_ptr() as *mut libc::c_void;
            h.msg_controllen = CONTROL_WORDS * 8;
        }
        // SAFETY: every mmsghdr points at a live name, one iovec over its
        // own slot of `buf` and its own control buffer, all sized as
        // declared and alive for the call; `slots` is the vector's length.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                slots as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.messages = n as usize;
        for (k, m) in msgs.iter().enumerate().take(n as usize) {
            let Some(from) = sockaddr_to(&self.names[k]) else {
                continue;
            };
            let len = (m.msg_len as usize).min(self.slot_len);
            let seg = gro_segment(&m.msg_hdr).filter(|&s| s > 0).unwrap_or(len);
            let base = k * self.slot_len;
            let mut off = 0;
            while off < len {
                let l = seg.min(len - off);
                self.parts.push((base + off, l, from));
                off += l;
            }
            if len == 0 {
                // An empty datagram is still a datagram (rejected later).
                self.parts.push((base, 0, from));
            }
        }
        Ok(self.parts.len())
    }
}

/// The segment size of a GRO message, from its `UDP_GRO` control message.
fn gro_segment(h: &libc::msghdr) -> Option<usize> {
    // SAFETY: `h` was filled by recvmmsg: msg_control/msg_controllen
    // describe our control buffer and the kernel's headers in it; the CMSG
    // macros stay within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == libc::UDP_GRO {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::c_int);
                return usize::try_from(v).ok();
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

/// The sender address the kernel wrote.
fn sockaddr_to(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in;
            // sockaddr_storage is larger than and aligned for it.
            let sin = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6;
            // sockaddr_storage is larger than and aligned for it.
            let sin6 = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::udp_tx::TxBatch;
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    /// Reads until `want` datagrams arrived (or 5 s passed).
    fn read_all(rx: &mut RxBatch, fd: RawFd, want: usize) -> Vec<(SocketAddr, Vec<u8>)> {
        read_counting(rx, fd, want).0
    }

    /// [`read_all`], and how many messages carried the datagrams.
    fn read_counting(
        rx: &mut RxBatch,
        fd: RawFd,
        want: usize,
    ) -> (Vec<(SocketAddr, Vec<u8>)>, usize) {
        let mut got = Vec::new();
        let mut messages = 0;
        let t0 = Instant::now();
        while got.len() < want && t0.elapsed() < Duration::from_secs(5) {
            match rx.recv(fd) {
                Ok(n) => {
                    messages += rx.messages();
                    for k in 0..n {
                        let (from, d) = rx.get(k).expect("in batch");
                        got.push((from, d.to_vec()));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("recvmmsg: {e}"),
            }
        }
        (got, messages)
    }

    #[test]
    fn a_batch_of_datagrams_arrives_intact_and_separately_with_senders() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let c = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        b.set_nonblocking(true).expect("nonblocking");
        let dst = b.local_addr().expect("addr");
        let mut sent = Vec::new();
        for i in 0..40u8 {
            let (s, d) = if i % 3 == 0 {
                (&c, vec![i; 100 + usize::from(i)])
            } else {
                (&a, vec![i; 1200])
            };
            s.send_to(&d, dst).expect("send");
            sent.push((s.local_addr().expect("addr"), d));
        }
        let mut rx = RxBatch::new(8, 2048);
        let mut nothing = RxBatch::new(1, 64);
        let got = read_all(&mut rx, b.as_raw_fd(), sent.len());
        assert_eq!(got, sent, "every datagram, in order, with its sender");
        let r = nothing.recv(b.as_raw_fd());
        assert_eq!(r.map_err(|e| e.kind()), Err(io::ErrorKind::WouldBlock));
    }

    #[test]
    fn ipv6_senders_are_reported() {
        let Ok(a) = std::net::UdpSocket::bind("[::1]:0") else {
            return; // no IPv6 loopback here
        };
        let b = std::net::UdpSocket::bind("[::1]:0").expect("bind");
        b.set_nonblocking(true).expect("nonblocking");
        a.send_to(b"six", b.local_addr().expect("addr"))
            .expect("send");
        let mut rx = RxBatch::new(4, 2048);
        let got = read_all(&mut rx, b.as_raw_fd(), 1);
        assert_eq!(got, vec![(a.local_addr().expect("addr"), b"six".to_vec())]);
    }

    #[test]
    fn gro_messages_are_split_by_segment_size() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        b.set_nonblocking(true).expect("nonblocking");
        let gro = enable_gro(b.as_raw_fd());
        let dst = b.local_addr().expect("addr");
        // A GSO send is what the kernel coalesces again on loopback.
        let mut tx = TxBatch::new(true);
        let mut sent = Vec::new();
        for i in 0..20u8 {
            let d = if i == 19 { vec![i; 333] } else { vec![i; 1000] };
            tx.push(dst, &d);
            sent.push((a.local_addr().expect("addr"), d));
        }
        assert_eq!(tx.send(a.as_raw_fd(), || false), 0);
        let mut rx = RxBatch::new(4, SLOT_LEN);
        let (got, messages) = read_counting(&mut rx, b.as_raw_fd(), sent.len());
        assert_eq!(got, sent, "split back into the datagrams sent (GRO {gro})");
        if gro {
            assert!(messages < sent.len(), "coalesced: {messages} messages");
        }
    }

    #[test]
    fn gro_segment_reads_the_control_message() {
        let mut control = [0u64; CONTROL_WORDS];
        // SAFETY: an all-zero msghdr is valid.
        let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
        h.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        // SAFETY: CMSG_SPACE only computes a size.
        h.msg_controllen = unsafe { libc::CMSG_SPACE(4) } as usize;
        // SAFETY: `control` holds CMSG_SPACE(4) bytes, aligned for cmsghdr.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&h);
            (*c).cmsg_level = libc::SOL_UDP;
            (*c).cmsg_type = libc::UDP_GRO;
            (*c).cmsg_len = libc::CMSG_LEN(4) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut libc::c_int, 1372);
        }
        assert_eq!(gro_segment(&h), Some(1372));
        h.msg_controllen = 0;
        assert_eq!(gro_segment(&h), None);
    }
}
