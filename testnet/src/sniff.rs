//! A packet socket (`AF_PACKET`, `SOCK_DGRAM`: frames arrive as IP packets)
//! opened inside a network namespace, seeing every interface of it, with a
//! classic BPF filter that keeps only outgoing IP packets on non-loopback
//! interfaces and drops UDP to the WireGuard endpoints (the tunnel's own
//! flow, which can be gigabytes in a bulk test). What passes is read on
//! demand, without a thread: the kernel queues packets as they are sent.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `ETH_P_ALL`, network order, as `socket(2)` and `sockaddr_ll` want it.
const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();
/// `SKF_AD_OFF` + the ancillary fields we load.
const AD_PROTOCOL: u32 = 0xffff_f000;
const AD_PKTTYPE: u32 = 0xffff_f004;
const AD_HATYPE: u32 = 0xffff_f01c;
/// `PACKET_OUTGOING`: sent by this host.
pub(crate) const PACKET_OUTGOING: u8 = 4;
/// `ARPHRD_LOOPBACK`.
pub(crate) const ARPHRD_LOOPBACK: u16 = 772;
/// Bytes kept of each packet: headers are all we report.
const SNAPLEN: u32 = 128;

/// One captured packet: its first bytes and where it was seen.
pub(crate) struct Frame {
    /// IP header onwards, at most [`SNAPLEN`] bytes.
    pub data: Vec<u8>,
    /// Interface index in the capture's namespace.
    pub ifindex: i32,
    /// `PACKET_OUTGOING`, `PACKET_HOST`, …
    pub pkttype: u8,
    /// ARPHRD_* of the interface.
    pub hatype: u16,
}

/// A packet socket in one namespace.
pub(crate) struct Sniffer {
    fd: OwnedFd,
}

/// One classic BPF instruction (`struct sock_filter`).
#[repr(C)]
#[derive(Clone, Copy)]
struct Insn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

/// An instruction with symbolic jump targets, resolved by [`assemble`].
enum Op {
    /// Load a word from the packet (`BPF_LD|BPF_W|BPF_ABS`).
    LdW(u32),
    /// Load a byte from the packet.
    LdB(u32),
    /// `if A == k goto t else goto f` (labels).
    Jeq(u32, usize, usize),
    /// Define label here.
    Label(usize),
    /// Return k (bytes to keep; 0 drops).
    Ret(u32),
}

const KEEP: usize = 0;
const DROP: usize = 1;

/// Resolves labels into forward jump offsets.
fn assemble(ops: &[Op]) -> Vec<Insn> {
    let mut at = std::collections::HashMap::new();
    let mut n = 0usize;
    for op in ops {
        match op {
            Op::Label(l) => {
                at.insert(*l, n);
            }
            _ => n += 1,
        }
    }
    let mut out = Vec::with_capacity(n);
    for op in ops {
        let i = out.len();
        let off = |l: &usize| -> u8 {
            let to = at[l];
            assert!(to > i, "BPF jumps only forward");
            u8::try_from(to - i - 1).expect("BPF program too long for a jump")
        };
        out.push(match op {
            Op::Label(_) => continue,
            Op::LdW(k) => Insn {
                code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
                jt: 0,
                jf: 0,
                k: *k,
            },
            Op::LdB(k) => Insn {
                code: (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16,
                jt: 0,
                jf: 0,
                k: *k,
            },
            Op::Jeq(k, t, f) => Insn {
                code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
                jt: off(t),
                jf: off(f),
                k: *k,
            },
            Op::Ret(k) => Insn {
                code: (libc::BPF_RET | libc::BPF_K) as u16,
                jt: 0,
                jf: 0,
                k: *k,
            },
        });
    }
    out
}

/// The filter: outgoing, not loopback, IPv4/IPv6, and not UDP to one of
/// `endpoints`.
fn program(endpoints: &[IpAddr]) -> Vec<Insn> {
    let (v4, v6, udp4, udp6) = (10, 11, 12, 13);
    let mut ops = vec![
        Op::LdW(AD_PKTTYPE),
        Op::Jeq(u32::from(PACKET_OUTGOING), 2, DROP),
        Op::Label(2),
        Op::LdW(AD_HATYPE),
        Op::Jeq(u32::from(ARPHRD_LOOPBACK), DROP, 3),
        Op::Label(3),
        Op::LdW(AD_PROTOCOL),
        Op::Jeq(0x0800, v4, 4),
        Op::Label(4),
        Op::Jeq(0x86dd, v6, DROP),
        // IPv4: UDP (protocol at 9) to an endpoint (destination at 16)?
        Op::Label(v4),
        Op::LdB(9),
        Op::Jeq(17, udp4, KEEP),
        Op::Label(udp4),
        Op::LdW(16),
    ];
    let mut label = 100;
    for ip in endpoints {
        if let IpAddr::V4(a) = ip {
            ops.push(Op::Jeq(u32::from_be_bytes(a.octets()), DROP, label));
            ops.push(Op::Label(label));
            label += 1;
        }
    }
    // IPv6: next header (6) UDP, destination at 24..40.
    ops.extend([
        Op::Ret(SNAPLEN),
        Op::Label(v6),
        Op::LdB(6),
        Op::Jeq(17, udp6, KEEP),
        Op::Label(udp6),
    ]);
    for ip in endpoints {
        if let IpAddr::V6(a) = ip {
            let o = a.octets();
            let next = label;
            label += 1;
            for w in 0..4u32 {
                let i = w as usize * 4;
                let word = u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
                ops.push(Op::LdW(24 + w * 4));
                let hit = if w == 3 { DROP } else { label };
                ops.push(Op::Jeq(word, hit, next));
                if w < 3 {
                    ops.push(Op::Label(label));
                    label += 1;
                }
            }
            ops.push(Op::Label(next));
        }
    }
    ops.extend([
        Op::Label(KEEP),
        Op::Ret(SNAPLEN),
        Op::Label(DROP),
        Op::Ret(0),
    ]);
    assemble(&ops)
}

impl Sniffer {
    /// Opens the socket inside namespace `ns` (by name, /var/run/netns).
    pub fn open(ns: &str) -> std::io::Result<Sniffer> {
        let path = format!("/var/run/netns/{ns}");
        // setns(2) changes the calling thread only: do it on a thread of
        // its own; the socket stays in the namespace it was made in.
        std::thread::scope(|s| {
            s.spawn(|| -> std::io::Result<Sniffer> {
                let f = std::fs::File::open(&path)?;
                // SAFETY: setns(2) on an fd we own for the call; it moves
                // only this short-lived thread.
                if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // SAFETY: plain socket(2); the fd is owned at once below.
                let fd = unsafe {
                    libc::socket(
                        libc::AF_PACKET,
                        libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                        i32::from(ETH_P_ALL_BE),
                    )
                };
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // SAFETY: fd is a fresh descriptor nobody else owns.
                let s = Sniffer {
                    fd: unsafe { OwnedFd::from_raw_fd(fd) },
                };
                s.set_filter(&[])?;
                // Room for what passes the filter between two drains.
                let size: libc::c_int = 8 << 20;
                // SAFETY: setsockopt with a live int; failure leaves the default.
                unsafe {
                    libc::setsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        libc::SO_RCVBUFFORCE,
                        (&size as *const libc::c_int).cast(),
                        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                    )
                };
                Ok(s)
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("sniffer thread panicked")))
        })
    }

    /// Replaces the filter: UDP to `endpoints` is no longer queued.
    pub fn set_filter(&self, endpoints: &[IpAddr]) -> std::io::Result<()> {
        let prog = program(endpoints);
        let fprog = libc::sock_fprog {
            len: u16::try_from(prog.len()).map_err(std::io::Error::other)?,
            filter: prog.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `Insn` has the layout of `struct sock_filter`; the kernel
        // copies the program during the call, while `prog` lives.
        let r = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&fprog as *const libc::sock_fprog).cast(),
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Every packet queued so far.
    pub fn drain(&self) -> Vec<Frame> {
        let mut out = Vec::new();
        let mut buf = [0u8; SNAPLEN as usize];
        loop {
            // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: buf and sll are live, writable and sized as passed.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                    (&mut sll as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return out;
            }
            let n = (n as usize).min(buf.len());
            out.push(Frame {
                data: buf[..n].to_vec(),
                ifindex: sll.sll_ifindex,
                pkttype: sll.sll_pkttype,
                hatype: sll.sll_hatype,
            });
        }
    }

    /// Packets the kernel dropped for want of queue room since the last call.
    pub fn drops(&self) -> u32 {
        let mut st = libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        };
        let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: getsockopt into a live tpacket_stats of the given size.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        if r == 0 {
            st.tp_drops
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_resolve_forward_and_end_in_returns() {
        let eps: Vec<IpAddr> = ["192.168.77.1", "fd00:77::1", "192.168.78.1", "fd00:78::1"]
            .iter()
            .map(|s| s.parse().expect("addr"))
            .collect();
        let p = program(&eps);
        let ret = (libc::BPF_RET | libc::BPF_K) as u16;
        assert_eq!(p.last().map(|i| (i.code, i.k)), Some((ret, 0)));
        for (i, insn) in p.iter().enumerate() {
            if insn.code == (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16 {
                assert!(i + 1 + usize::from(insn.jt) < p.len());
                assert!(i + 1 + usize::from(insn.jf) < p.len());
            }
        }
        // Both IPv4 endpoints are compared with the loaded destination.
        for a in ["192.168.77.1", "192.168.78.1"] {
            let a: std::net::Ipv4Addr = a.parse().expect("addr");
            assert!(p.iter().any(|i| i.k == u32::from_be_bytes(a.octets())));
        }
    }
}
