//! Receives on carried sockets (`recvfrom` with an address buffer,
//! `recvmsg`, `recvmmsg`): the payload into the caller's buffers and the
//! source as the program expects it; a blocking one waits on a helper
//! thread, so other calls go on.

use super::flow::ours;
use super::msg::{iovecs, u32_at, u64_at, write_mem, MAX_DATAGRAM, MAX_VEC, MMSGHDR, MSGHDR};
use super::route::shown_source;
use crate::call::{Call, Outcome};
use crate::fdops::nonblocking;
use crate::memory;
use crate::notify::{Answer, Listener};
use crate::sockaddr;
use crate::state::State;
use crate::table::Datagram;
use control::datagram::{Header, RecvInfo, HEADER_LEN};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Blocking receives waiting on helper threads at most (then `EAGAIN`).
const MAX_WAITERS: usize = 256;
/// How often a waiting receive checks that its caller is still there.
const WAIT_POLL_MS: i32 = 200;

/// Blocking receives waiting now.
static WAITERS: AtomicUsize = AtomicUsize::new(0);

/// Which receive call, with its arguments.
#[derive(Clone, Copy, Debug)]
enum RecvCall {
    /// `recvfrom(fd, buf, len, flags, addr, addrlen)`.
    From {
        buf: u64,
        len: u64,
        addr: u64,
        alen: u64,
    },
    /// `recvmsg(fd, msg, flags)`.
    Msg { msg: u64 },
    /// `recvmmsg(fd, vec, vlen, flags, timeout)`.
    MMsg { vec: u64, vlen: u64 },
}

/// Everything a receive needs, owned, so a helper thread can finish it.
#[derive(Clone, Copy, Debug)]
struct Recv {
    pid: u32,
    call: RecvCall,
    flags: i32,
    d: Datagram,
}

/// One message off the data socket: (payload, source as shown, what the
/// engine told about it) or the errno an error message carries.
/// `Err(EAGAIN)`: nothing queued.
fn take(data: &OwnedFd, d: &Datagram, peek: bool) -> Result<(Vec<u8>, SocketAddr, RecvInfo), i32> {
    let mut buf = vec![0u8; HEADER_LEN + MAX_DATAGRAM + 1];
    let flags = libc::MSG_DONTWAIT | if peek { libc::MSG_PEEK } else { 0 };
    // SAFETY: `buf` is valid for `buf.len()` bytes of writes.
    let n = unsafe { libc::recv(data.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        return Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    let n = n as usize;
    buf.truncate(n);
    match d.peer {
        // Plain: the payload alone, from the peer.
        Some(peer) => Ok((buf, peer, RecvInfo::default())),
        None => match Header::decode(&buf) {
            Ok(Header::Datagram(src)) => {
                let shown = shown_source(control::normalize(src));
                let info = RecvInfo::decode(&buf);
                Ok((buf.split_off(HEADER_LEN), shown, info))
            }
            Ok(Header::Error(e)) => Err(e),
            Err(_) => Err(libc::EIO),
        },
    }
}

/// Writes `src` to the caller's (`addr`, `alen`) out-parameters, the
/// kernel's way (truncated to the room given, full length reported).
fn put_name(pid: u32, addr: u64, alen: u64, src: SocketAddr, family: i32) -> Result<(), i32> {
    if addr == 0 || alen == 0 {
        return Ok(());
    }
    let room = memory::read_u32(pid, alen).map_err(|_| libc::EFAULT)?;
    if (room as i32) < 0 {
        return Err(libc::EINVAL);
    }
    let (bytes, full) = sockaddr::truncated(sockaddr::in_family(src, family), room);
    write_mem(pid, addr, &bytes)?;
    write_mem(pid, alen, &full.to_ne_bytes())
}

/// Scatters `payload` into the `msghdr` at `msg` (name, iovecs, flags);
/// returns the bytes stored (or the full length with `MSG_TRUNC`).
fn fill_msghdr(
    r: &Recv,
    msg: u64,
    payload: &[u8],
    src: SocketAddr,
    info: RecvInfo,
) -> Result<usize, i32> {
    let h = memory::read(r.pid, msg, MSGHDR as usize).map_err(|_| libc::EFAULT)?;
    let name = u64_at(&h, 0);
    if name != 0 {
        let room = u32_at(&h, 8);
        let (bytes, full) = sockaddr::truncated(sockaddr::in_family(src, r.d.family), room);
        write_mem(r.pid, name, &bytes)?;
        write_mem(r.pid, msg + 8, &full.to_ne_bytes())?;
    }
    let mut left = payload;
    let mut stored = 0;
    for (base, len) in iovecs(r.pid, u64_at(&h, 16), u64_at(&h, 24))? {
        if left.is_empty() {
            break;
        }
        let k = len.min(left.len());
        write_mem(r.pid, base, &left[..k])?;
        left = &left[k..];
        stored += k;
    }
    // Ancillary data as asked (see `ancillary`); MSG_TRUNC if the
    // datagram did not fit, MSG_CTRUNC if the control messages did not.
    let ctl = super::ancillary::build(r.d.recv_opts, r.d.family, info);
    let (control, room) = (u64_at(&h, 32), u64_at(&h, 40) as usize);
    let fits = if control == 0 { 0 } else { ctl.len().min(room) };
    if fits > 0 {
        write_mem(r.pid, control, &ctl[..fits])?;
    }
    write_mem(r.pid, msg + 40, &(fits as u64).to_ne_bytes())?;
    let mut flags: i32 = if left.is_empty() { 0 } else { libc::MSG_TRUNC };
    if fits < ctl.len() {
        flags |= libc::MSG_CTRUNC;
    }
    write_mem(r.pid, msg + 48, &flags.to_ne_bytes())?;
    Ok(if r.flags & libc::MSG_TRUNC != 0 {
        payload.len()
    } else {
        stored
    })
}

/// Tries the receive once, without waiting. `Err(EAGAIN)`: nothing yet.
fn try_recv(data: &OwnedFd, r: &Recv) -> Result<i64, i32> {
    let peek = r.flags & libc::MSG_PEEK != 0;
    match r.call {
        RecvCall::From {
            buf,
            len,
            addr,
            alen,
        } => {
            let (payload, src, _) = take(data, &r.d, peek)?;
            let k = payload.len().min(len as usize);
            write_mem(r.pid, buf, &payload[..k])?;
            put_name(r.pid, addr, alen, src, r.d.family)?;
            Ok(if r.flags & libc::MSG_TRUNC != 0 {
                payload.len() as i64
            } else {
                k as i64
            })
        }
        RecvCall::Msg { msg } => {
            let (payload, src, info) = take(data, &r.d, peek)?;
            fill_msghdr(r, msg, &payload, src, info).map(|n| n as i64)
        }
        RecvCall::MMsg { vec, vlen } => {
            let n = (vlen as u32 as u64).min(MAX_VEC);
            let mut got = 0u64;
            while got < n {
                let (payload, src, info) = match take(data, &r.d, false) {
                    Ok(x) => x,
                    Err(e) if got == 0 => return Err(e),
                    Err(_) => break,
                };
                let at = vec + got * MMSGHDR;
                let k = fill_msghdr(r, at, &payload, src, info)?;
                write_mem(r.pid, at + MSGHDR, &(k as u32).to_ne_bytes())?;
                // After the first, only what is queued already (as with
                // MSG_WAITFORONE; without it Linux would wait, we do not).
                got += 1;
            }
            Ok(got as i64)
        }
    }
}

/// A receive with the caller's flags and socket: now, or on a helper thread
/// that waits for a datagram (a blocking socket), so other calls go on.
fn receive(c: &Call, call: RecvCall, flags: i32, data: OwnedFd, d: Datagram) -> Outcome {
    receive_within(c, call, flags, data, d, None)
}

/// [`receive`], a blocking wait also ending (`EAGAIN`) after `limit`
/// (`recvmmsg`'s timeout).
fn receive_within(
    c: &Call,
    call: RecvCall,
    flags: i32,
    data: OwnedFd,
    d: Datagram,
    limit: Option<std::time::Duration>,
) -> Outcome {
    let r = Recv {
        pid: c.n.pid,
        call,
        flags,
        d,
    };
    if flags & libc::MSG_ERRQUEUE != 0 {
        // No queued errors: ICMP errors come in-band (as in the shim).
        return Outcome::errno(libc::EAGAIN);
    }
    match try_recv(&data, &r) {
        Err(libc::EAGAIN) => {}
        other => return Outcome::result(other),
    }
    if flags & libc::MSG_DONTWAIT != 0 || nonblocking(&data) {
        return Outcome::errno(libc::EAGAIN);
    }
    if WAITERS.load(Ordering::Relaxed) >= MAX_WAITERS {
        return Outcome::errno(libc::EAGAIN);
    }
    // SAFETY: F_DUPFD_CLOEXEC on the listener descriptor, which is open.
    let dup = unsafe { libc::fcntl(c.listener.raw(), libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Outcome::errno(libc::EAGAIN);
    }
    // SAFETY: a new descriptor we own.
    let listener = Listener::new(unsafe { OwnedFd::from_raw_fd(dup) });
    let id = c.n.id;
    // SO_RCVTIMEO of the socket: the wait ends with EAGAIN, as the kernel's.
    let wait = match (receive_timeout(&data), limit) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let deadline = wait.map(|t| std::time::Instant::now() + t);
    WAITERS.fetch_add(1, Ordering::Relaxed);
    let spawned = std::thread::Builder::new()
        .name("wrapguard-udp-recv".into())
        .spawn(move || {
            wait_and_receive(&listener, id, &data, &r, deadline);
            WAITERS.fetch_sub(1, Ordering::Relaxed);
        });
    match spawned {
        Ok(_) => Outcome::Answered,
        Err(_) => {
            WAITERS.fetch_sub(1, Ordering::Relaxed);
            Outcome::errno(libc::EAGAIN)
        }
    }
}

/// The socket's `SO_RCVTIMEO`, if set.
fn receive_timeout(data: &OwnedFd) -> Option<std::time::Duration> {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    let mut len = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: `tv` is a timeval and `len` its size.
    let r = unsafe {
        libc::getsockopt(
            data.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&mut tv as *mut libc::timeval).cast(),
            &mut len,
        )
    };
    let t = std::time::Duration::from_secs(tv.tv_sec.max(0) as u64)
        + std::time::Duration::from_micros(tv.tv_usec.max(0) as u64);
    (r == 0 && !t.is_zero()).then_some(t)
}

/// The helper thread of a blocking receive: waits for a datagram while the
/// caller is still there (until `deadline`, then `EAGAIN`), then finishes
/// the call and answers it.
fn wait_and_receive(
    listener: &Listener,
    id: u64,
    data: &OwnedFd,
    r: &Recv,
    deadline: Option<std::time::Instant>,
) {
    loop {
        if !listener.id_valid(id) {
            return; // interrupted by a signal, or gone
        }
        let wait = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    let _ = listener.respond(id, Answer::Errno(libc::EAGAIN));
                    return;
                }
                (left.as_millis() as i32).clamp(1, WAIT_POLL_MS)
            }
            None => WAIT_POLL_MS,
        };
        let mut p = libc::pollfd {
            fd: data.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, wait) };
        if p.revents == 0 {
            continue;
        }
        let a = match try_recv(data, r) {
            Err(libc::EAGAIN) if p.revents & libc::POLLHUP == 0 => continue,
            Err(libc::EAGAIN) => Answer::Value(0), // the engine is gone
            Ok(v) => Answer::Value(v),
            Err(e) => Answer::Errno(e),
        };
        let _ = listener.respond(id, a);
        return;
    }
}

/// `recvfrom` with an address buffer (the filter traps no other).
pub fn recvfrom(sv: &mut State, c: &Call) -> Outcome {
    let [_, buf, len, flags, addr, alen] = c.n.args;
    let Some((data, _, d)) = ours(sv, c) else {
        return Outcome::cont();
    };
    let call = RecvCall::From {
        buf,
        len,
        addr,
        alen,
    };
    receive(c, call, flags as i32, data, d)
}

/// `recvmsg`.
pub fn recvmsg(sv: &mut State, c: &Call) -> Outcome {
    let [_, msg, flags, ..] = c.n.args;
    let Some((data, _, d)) = ours(sv, c) else {
        return Outcome::cont();
    };
    receive(c, RecvCall::Msg { msg }, flags as i32, data, d)
}

/// `recvmmsg`: its timeout bounds the wait for the first datagram (none
/// by then: `EAGAIN`); after the first, what is queued already is taken.
pub fn recvmmsg(sv: &mut State, c: &Call) -> Outcome {
    let [_, vec, vlen, flags, timeout, _] = c.n.args;
    let Some((data, _, d)) = ours(sv, c) else {
        return Outcome::cont();
    };
    let limit = if timeout == 0 {
        None
    } else {
        match memory::read(c.n.pid, timeout, 16) {
            Ok(t) => {
                let (s, ns) = (u64_at(&t, 0) as i64, u64_at(&t, 8) as i64);
                if s < 0 || !(0..1_000_000_000).contains(&ns) {
                    return Outcome::errno(libc::EINVAL);
                }
                Some(std::time::Duration::new(s as u64, ns as u32))
            }
            Err(_) => return Outcome::errno(libc::EFAULT),
        }
    };
    receive_within(
        c,
        RecvCall::MMsg { vec, vlen },
        flags as i32,
        data,
        d,
        limit,
    )
}

#[cfg(test)]
mod tests {
    //! The emulation against our own memory (the "caller" is this process)
    //! and a real socket pair carrying headered messages.
    use super::*;
    use engine::seqpacket;

    fn dgram(peer: Option<&str>) -> Datagram {
        Datagram {
            flow: 1,
            peer: peer.map(|p| p.parse().expect("peer")),
            local: "10.77.0.2:40000".parse().expect("local"),
            family: libc::AF_INET,
            mtu: 1420,
            kind: control::DatagramKind::Udp,
            recv_opts: 0,
        }
    }

    fn push(engine_end: &OwnedFd, from: &str, payload: &[u8]) {
        let head = Header::Datagram(from.parse().expect("from")).encode();
        seqpacket::send2(engine_end.as_raw_fd(), &head, payload).expect("send");
    }

    fn sockaddr_of(b: &[u8]) -> SocketAddr {
        sockaddr::decode(b).expect("an address was written")
    }

    #[test]
    fn recvfrom_fills_buffer_address_and_truncates_as_linux() {
        let (engine_end, app_end) = seqpacket::pair().expect("pair");
        let pid = std::process::id();
        let d = dgram(None);
        push(&engine_end, "10.77.0.1:5353", b"hello, tunnel");
        let mut buf = [0u8; 5];
        let mut name = [0u8; 16];
        let mut nlen: u32 = 16;
        let r = Recv {
            pid,
            call: RecvCall::From {
                buf: buf.as_mut_ptr() as u64,
                len: 5,
                addr: name.as_mut_ptr() as u64,
                alen: &mut nlen as *mut u32 as u64,
            },
            flags: 0,
            d,
        };
        assert_eq!(try_recv(&app_end, &r), Ok(5));
        assert_eq!(std::hint::black_box(buf), *b"hello");
        assert_eq!(std::hint::black_box(nlen), 16);
        assert_eq!(sockaddr_of(&name), "10.77.0.1:5353".parse().expect("a"));
        // The rest of the datagram is gone (as UDP); MSG_TRUNC reports the
        // real length.
        push(&engine_end, "10.77.0.1:5353", b"second one");
        let r = Recv {
            flags: libc::MSG_TRUNC,
            ..r
        };
        assert_eq!(try_recv(&app_end, &r), Ok(10));
        // Nothing queued: EAGAIN (the caller decides whether to wait).
        assert_eq!(try_recv(&app_end, &r), Err(libc::EAGAIN));
        // An ICMP error message is the errno of the next receive.
        let head = Header::Error(libc::ECONNREFUSED).encode();
        seqpacket::send2(engine_end.as_raw_fd(), &head, b"").expect("send");
        assert_eq!(try_recv(&app_end, &r), Err(libc::ECONNREFUSED));
    }

    #[test]
    fn recvmsg_scatters_and_flags_truncation() {
        let (engine_end, app_end) = seqpacket::pair().expect("pair");
        let pid = std::process::id();
        push(&engine_end, "[fd77::1]:53", b"abcdefgh");
        let mut a = [0u8; 3];
        let mut b = [0u8; 3];
        let iov = [
            libc::iovec {
                iov_base: a.as_mut_ptr().cast(),
                iov_len: 3,
            },
            libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: 3,
            },
        ];
        let mut name = [0u8; 28];
        // SAFETY: plain old data; all-zero is a valid msghdr.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = name.as_mut_ptr().cast();
        msg.msg_namelen = 28;
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = 2;
        msg.msg_controllen = 99;
        let d = Datagram {
            family: libc::AF_INET6,
            ..dgram(None)
        };
        let r = Recv {
            pid,
            call: RecvCall::Msg {
                msg: &mut msg as *mut libc::msghdr as u64,
            },
            flags: 0,
            d,
        };
        assert_eq!(try_recv(&app_end, &r), Ok(6));
        let msg = std::hint::black_box(msg);
        assert_eq!(std::hint::black_box(a), *b"abc");
        assert_eq!(std::hint::black_box(b), *b"def");
        assert_eq!(msg.msg_flags, libc::MSG_TRUNC);
        assert_eq!(msg.msg_controllen, 0);
        assert_eq!(msg.msg_namelen, 28);
        assert_eq!(sockaddr_of(&name), "[fd77::1]:53".parse().expect("a"));
    }

    #[test]
    fn plain_flows_report_their_peer_and_keep_payloads_whole() {
        let (engine_end, app_end) = seqpacket::pair().expect("pair");
        let pid = std::process::id();
        let d = dgram(Some("127.0.0.53:53"));
        seqpacket::send2(engine_end.as_raw_fd(), b"", b"answer").expect("send");
        let mut buf = [0u8; 32];
        let mut name = [0u8; 16];
        let mut nlen: u32 = 16;
        let r = Recv {
            pid,
            call: RecvCall::From {
                buf: buf.as_mut_ptr() as u64,
                len: 32,
                addr: name.as_mut_ptr() as u64,
                alen: &mut nlen as *mut u32 as u64,
            },
            flags: 0,
            d,
        };
        assert_eq!(try_recv(&app_end, &r), Ok(6));
        assert_eq!(&std::hint::black_box(buf)[..6], b"answer");
        // The peer as the program named it (a host nameserver, redirected).
        assert_eq!(sockaddr_of(&name), "127.0.0.53:53".parse().expect("a"));
    }
}
