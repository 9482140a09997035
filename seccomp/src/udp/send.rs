//! Sends with a destination (`sendto`, `sendmsg`, `sendmmsg`): passed to
//! the kernel, refused, or carried — the first to a tunnel destination
//! makes the socket an unconnected carried one (a headered flow), and the
//! supervisor then writes header + payload on its data socket.

use super::flow::{self, carry};
use super::msg::{
    read_addr, read_mem, read_msghdr, u32_at, u64_at, write_mem, MAX_DATAGRAM, MAX_VEC, MMSGHDR,
    MSGHDR,
};
use super::route::{effective, route};
use crate::call::{Call, Outcome};
use crate::caller::{self, FileId};
use crate::fdops::{sock_name, sockopt_int};
use crate::memory;
use crate::sockaddr;
use crate::state::State;
use crate::table::{Datagram, Ours};
use control::datagram::Header;
use control::{DatagramKind, RouteDecision};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use tracing::{debug, warn};

/// What to do with sends to `raw` (as named) on the caller's socket.
enum SendPlan {
    /// Let the kernel do it.
    Pass,
    /// Fail with this errno.
    Fail(i32),
    /// Carry it: our copy of the data socket, the entry, where it goes.
    Carry(OwnedFd, Datagram, SocketAddr),
}

fn plan(sv: &mut State, c: &Call, raw: SocketAddr) -> SendPlan {
    let Ok(sock) = c.fd(0) else {
        return SendPlan::Pass; // the kernel says EBADF
    };
    let Ok(FileId { ino, socket: true }) = caller::file_id(&sock) else {
        return SendPlan::Pass;
    };
    let dst = control::normalize(raw);
    let entry = sv.table.get(ino);
    if let Some(Ours::Udp(d)) = entry {
        if let Some(peer) = d.peer {
            // The address is ignored on our data socket: it goes to the peer.
            return if control::normalize(peer) == dst {
                SendPlan::Pass
            } else {
                SendPlan::Fail(libc::EISCONN)
            };
        }
    } else if let Some(Ours::EchoStandIn { refused, .. }) = entry {
        // An ICMP socket the host refused: the tunnel or the kernel's errno.
        let dst = match effective(sv, dst) {
            Ok(d) => d,
            Err(e) => return SendPlan::Fail(e),
        };
        if sockaddr::is_local(&dst) {
            return SendPlan::Fail(refused);
        }
        return match route(sv, dst) {
            RouteDecision::Tunnel => match carry(sv, c, &sock, None, None, {
                // A port it bound is its echo identifier.
                sock_name(&sock, false).map_or(0, |a| a.port())
            }) {
                Ok((_, d)) => match c.fd(0) {
                    Ok(data) => SendPlan::Carry(data, d, dst),
                    Err(_) => SendPlan::Fail(libc::EBADF),
                },
                Err(e) => SendPlan::Fail(e),
            },
            _ => SendPlan::Fail(refused),
        };
    } else if entry.is_some() {
        return SendPlan::Pass;
    }
    // Redirected first: a host nameserver on loopback is the tunnel's.
    let eff = match effective(sv, dst) {
        Ok(e) => e,
        Err(e) => return SendPlan::Fail(e),
    };
    let carried = matches!(entry, Some(Ours::Udp(_)));
    if sockaddr::is_local(&eff) {
        return if carried {
            SendPlan::Fail(libc::ENETUNREACH)
        } else {
            SendPlan::Pass
        };
    }
    let decision = route(sv, eff);
    if let Some(Ours::Udp(d)) = entry {
        // Once carried, a socket talks only to the tunnel (as the shim).
        return match decision {
            RouteDecision::Tunnel => SendPlan::Carry(sock, d, eff),
            RouteDecision::Unreachable(e) => SendPlan::Fail(e),
            RouteDecision::Direct => SendPlan::Fail(libc::ENETUNREACH),
        };
    }
    match sockopt_int(&sock, libc::SOL_SOCKET, libc::SO_TYPE) {
        Some(libc::SOCK_STREAM) | None => return SendPlan::Pass,
        Some(libc::SOCK_DGRAM) => {}
        // Raw ICMP (ping as root): carried as an echo flow.
        Some(libc::SOCK_RAW) if flow::datagram_kind(&sock) == Some(DatagramKind::RawIcmp) => {}
        Some(_) => {
            // Raw and others: nothing routed may leave (as the shim).
            return match decision {
                RouteDecision::Direct => SendPlan::Pass,
                _ => SendPlan::Fail(refuse_raw(c, &sock, eff)),
            };
        }
    }
    match decision {
        RouteDecision::Direct => SendPlan::Pass,
        RouteDecision::Unreachable(e) => SendPlan::Fail(e),
        RouteDecision::Tunnel => {
            let port = sock_name(&sock, false).map_or(0, |a| a.port());
            match carry(sv, c, &sock, None, None, port) {
                Ok((_, d)) => {
                    debug!(pid = c.n.pid, fd = c.n.args[0], flow = d.flow, local = %d.local, "seccomp: unconnected udp socket through the tunnel");
                    // Our copy still names the old file: the new one is in
                    // the caller's table now.
                    match c.fd(0) {
                        Ok(data) => SendPlan::Carry(data, d, eff),
                        Err(_) => SendPlan::Fail(libc::EBADF),
                    }
                }
                Err(e) => {
                    warn!(pid = c.n.pid, dst = %raw, errno = e, "seccomp mode: cannot carry an unconnected UDP socket through the tunnel; the send fails");
                    SendPlan::Fail(e)
                }
            }
        }
    }
}

/// Whether the raw-socket warning was logged (once per run).
static RAW_WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A raw socket of a protocol we do not carry named a tunnel destination
/// (a send or a `connect`): one warning per run, and the errno the call
/// fails with, `ENETUNREACH`. Nothing reaches the kernel.
pub fn refuse_raw(c: &Call, sock: &OwnedFd, eff: SocketAddr) -> i32 {
    let proto = sockopt_int(sock, libc::SOL_SOCKET, libc::SO_PROTOCOL);
    if !RAW_WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        warn!(pid = c.n.pid, dst = %eff.ip(), protocol = proto.unwrap_or(-1), "seccomp mode: IP protocol {} (a raw socket) to {} is not carried through the tunnel (TCP, UDP and ICMP echo are); the call fails with ENETUNREACH", proto.unwrap_or(-1), eff.ip());
    }
    libc::ENETUNREACH
}

/// Writes one datagram for `dst` on our copy of a headered data socket.
fn send_headered(data: &OwnedFd, d: &Datagram, dst: SocketAddr, payload: &[u8]) -> Result<(), i32> {
    let head_room = match (d.kind, dst.is_ipv4()) {
        (DatagramKind::Udp, true) => 28,
        (DatagramKind::Udp, false) => 48,
        (_, true) => 20,
        (_, false) => 40,
    };
    // Larger than the MTU goes in fragments (the engine's stack); the IP
    // length field is the limit.
    let max = if dst.is_ipv4() { 65_535 } else { 65_575 };
    if payload.len() + head_room > max {
        return Err(libc::EMSGSIZE);
    }
    if d.kind != DatagramKind::Udp {
        // Only echo requests are carried (as in the shim).
        let want = if dst.is_ipv4() { 8 } else { 128 };
        if payload.len() < 8 || payload[..2] != [want, 0] {
            return Err(if d.kind == DatagramKind::Ping {
                libc::EINVAL
            } else {
                libc::ENETUNREACH
            });
        }
    }
    let head = Header::Datagram(dst).encode();
    engine::seqpacket::send2(data.as_raw_fd(), &head, payload).or_else(|e| {
        match e.raw_os_error() {
            // A full queue drops the datagram, as a kernel UDP socket may.
            Some(libc::EAGAIN) => Ok(()),
            Some(n) => Err(n),
            None => Err(libc::EIO),
        }
    })
}

/// `sendto` with a destination (the filter traps no other).
pub fn sendto(sv: &mut State, c: &Call) -> Outcome {
    let [_, buf, len, _, addr, alen] = c.n.args;
    let Some(raw) = read_addr(c.n.pid, addr, alen) else {
        return Outcome::cont();
    };
    match plan(sv, c, raw) {
        SendPlan::Pass => Outcome::cont(),
        SendPlan::Fail(e) => Outcome::errno(e),
        SendPlan::Carry(data, d, dst) => {
            let len = len as usize;
            if len > MAX_DATAGRAM {
                return Outcome::errno(libc::EMSGSIZE);
            }
            Outcome::result(
                read_mem(c.n.pid, buf, len)
                    .and_then(|p| send_headered(&data, &d, dst, &p))
                    .map(|()| len as i64),
            )
        }
    }
}

/// `sendmsg`.
pub fn sendmsg(sv: &mut State, c: &Call) -> Outcome {
    let h = match memory::read(c.n.pid, c.n.args[1], MSGHDR as usize) {
        Ok(h) => h,
        Err(_) => return Outcome::cont(), // the kernel says EFAULT
    };
    let Some(raw) = read_addr(c.n.pid, u64_at(&h, 0), u64::from(u32_at(&h, 8))) else {
        return Outcome::cont();
    };
    match plan(sv, c, raw) {
        SendPlan::Pass => Outcome::cont(),
        SendPlan::Fail(e) => Outcome::errno(e),
        SendPlan::Carry(data, d, dst) => {
            Outcome::result(read_msghdr(c.n.pid, c.n.args[1]).and_then(|m| {
                send_headered(&data, &d, dst, &m.payload).map(|()| m.payload.len() as i64)
            }))
        }
    }
}

/// `sendmmsg`: carried if its first message with a destination is.
pub fn sendmmsg(sv: &mut State, c: &Call) -> Outcome {
    let [_, vec, vlen, ..] = c.n.args;
    let n = (vlen as u32 as u64).min(MAX_VEC);
    let pid = c.n.pid;
    // Decide on the first destination named.
    let mut first = None;
    for i in 0..n {
        if let Ok(m) = read_msghdr(pid, vec + i * MMSGHDR) {
            if let Some(dst) = m.dst {
                first = Some(dst);
                break;
            }
        }
    }
    let Some(raw) = first else {
        return Outcome::cont();
    };
    let (data, d) = match plan(sv, c, raw) {
        SendPlan::Pass => {
            // Later messages may still name tunnel destinations: refuse
            // the call rather than let one leave.
            for i in 0..n {
                if let Some(dst) = read_msghdr(pid, vec + i * MMSGHDR).ok().and_then(|m| m.dst) {
                    if !matches!(plan(sv, c, dst), SendPlan::Pass) {
                        return Outcome::errno(libc::ENETUNREACH);
                    }
                }
            }
            return Outcome::cont();
        }
        SendPlan::Fail(e) => return Outcome::errno(e),
        SendPlan::Carry(data, d, _) => (data, d),
    };
    let mut sent = 0u64;
    for i in 0..n {
        let at = vec + i * MMSGHDR;
        let r = read_msghdr(pid, at).and_then(|m| {
            let dst = match m.dst {
                Some(raw) => {
                    let eff = effective(sv, control::normalize(raw))?;
                    match route(sv, eff) {
                        RouteDecision::Tunnel => eff,
                        RouteDecision::Unreachable(e) => return Err(e),
                        RouteDecision::Direct => return Err(libc::ENETUNREACH),
                    }
                }
                None => return Err(libc::EDESTADDRREQ),
            };
            send_headered(&data, &d, dst, &m.payload)?;
            write_mem(pid, at + MSGHDR, &(m.payload.len() as u32).to_ne_bytes())
        });
        match r {
            Ok(()) => sent += 1,
            Err(e) if sent == 0 => return Outcome::errno(e),
            Err(_) => break,
        }
    }
    Outcome::value(sent as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use control::datagram::HEADER_LEN;
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

    #[test]
    fn headered_sends_check_the_mtu() {
        let (engine_end, app_end) = seqpacket::pair().expect("pair");
        let d = dgram(None);
        let to: SocketAddr = "10.77.0.1:53".parse().expect("a");
        send_headered(&app_end, &d, to, b"q").expect("send");
        let mut buf = [0u8; 64];
        let n = seqpacket::recv(engine_end.as_raw_fd(), &mut buf).expect("recv");
        assert_eq!(Header::decode(&buf[..n]), Ok(Header::Datagram(to)));
        assert_eq!(&buf[HEADER_LEN..n], b"q");
        assert_eq!(
            send_headered(&app_end, &d, to, &[0u8; 65_508]),
            Err(libc::EMSGSIZE)
        );
        // Above the MTU: sent whole to the engine, which fragments it.
        send_headered(&app_end, &d, to, &[0u8; 4000]).expect("fragmented");
        // A ping socket sends echo requests only, up to MTU - 20.
        let p = Datagram {
            kind: DatagramKind::Ping,
            ..d
        };
        let mut echo = [0u8; 1400];
        echo[0] = 8;
        send_headered(&app_end, &p, to, &echo).expect("echo fits");
        assert_eq!(
            send_headered(&app_end, &p, to, &[0u8; 8]),
            Err(libc::EINVAL)
        );
        assert_eq!(
            send_headered(&app_end, &p, to, &[8u8; 65_516]),
            Err(libc::EMSGSIZE)
        );
    }
}
