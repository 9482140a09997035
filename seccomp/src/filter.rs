//! The classic-BPF program the child installs before `exec`: which system
//! calls go to the supervisor (`SECCOMP_RET_USER_NOTIF`), which fail at
//! once, and which run untouched. Pure: builds instructions, no syscalls.
//!
//! Layout (seccomp_filter.rst, "Return values", and `struct seccomp_data`):
//!
//! ```text
//! arch != AUDIT_ARCH_X86_64        → ERRNO(ENOSYS)   (i386 int 0x80 …)
//! nr has the x32 bit               → ERRNO(ENOSYS)
//! connect bind listen accept accept4
//! getsockname getpeername           → USER_NOTIF
//! getsockopt SOL_SOCKET {SO_ERROR, SO_DOMAIN, SO_TYPE, SO_PROTOCOL},
//! getsockopt level IPPROTO_TCP      → USER_NOTIF, other options ALLOW
//! setsockopt level IPPROTO_TCP / IPPROTO_IPV6 / IPPROTO_IP / SOL_RAW /
//! IPPROTO_ICMPV6, SOL_SOCKET SO_KEEPALIVE
//!                                   → USER_NOTIF, other options ALLOW
//! sendto with a destination (arg4 != 0), sendmsg, sendmmsg
//!                                   → USER_NOTIF
//! recvfrom with an address buffer (arg4 != 0), recvmsg, recvmmsg
//!                                   → USER_NOTIF (unconnected UDP, `udp`)
//! socket with protocol ICMP or ICMPv6 → USER_NOTIF (stand-ins, `echo`)
//! io_uring_setup                    → ERRNO(ENOSYS) (its rings would bypass us)
//! anything else                     → ALLOW
//! ```

/// `AUDIT_ARCH_X86_64` (`EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`).
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// The x32 ABI marks its system call numbers with this bit.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Offsets in `struct seccomp_data` (`int nr; __u32 arch; __u64
/// instruction_pointer; __u64 args[6];`).
mod data {
    pub const NR: u32 = 0;
    pub const ARCH: u32 = 4;
    /// Low 32 bits of `args[i]` (little-endian).
    pub const fn arg_lo(i: u32) -> u32 {
        16 + 8 * i
    }
    /// High 32 bits of `args[i]`.
    pub const fn arg_hi(i: u32) -> u32 {
        16 + 8 * i + 4
    }
}

/// Classic BPF opcodes used here (`linux/bpf_common.h`).
pub mod op {
    /// `BPF_LD (0x00) | BPF_W (0x00) | BPF_ABS (0x20)`: A = data[k..k+4].
    pub const LD_W_ABS: u16 = 0x20;
    /// `BPF_JMP | BPF_JEQ | BPF_K`.
    pub const JEQ_K: u16 = 0x05 | 0x10;
    /// `BPF_JMP | BPF_JSET | BPF_K`.
    pub const JSET_K: u16 = 0x05 | 0x40;
    /// `BPF_RET | BPF_K`.
    pub const RET_K: u16 = 0x06;
}

/// One instruction (`struct sock_filter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Constant.
    pub k: u32,
}

/// `SECCOMP_RET_ALLOW`.
pub const RET_ALLOW: u32 = 0x7fff_0000;
/// `SECCOMP_RET_USER_NOTIF`.
pub const RET_USER_NOTIF: u32 = 0x7fc0_0000;
/// `SECCOMP_RET_ERRNO` (the errno goes in the low 16 bits).
pub const RET_ERRNO: u32 = 0x0005_0000;

/// System call numbers on x86-64 (`arch/x86/entry/syscalls/syscall_64.tbl`).
pub mod nr {
    /// `sendto`.
    pub const SENDTO: u32 = 44;
    /// `sendmsg`.
    pub const SENDMSG: u32 = 46;
    /// `recvfrom`.
    pub const RECVFROM: u32 = 45;
    /// `recvmsg`.
    pub const RECVMSG: u32 = 47;
    /// `recvmmsg`.
    pub const RECVMMSG: u32 = 299;
    /// `socket`.
    pub const SOCKET: u32 = 41;
    /// `connect`.
    pub const CONNECT: u32 = 42;
    /// `accept`.
    pub const ACCEPT: u32 = 43;
    /// `bind`.
    pub const BIND: u32 = 49;
    /// `listen`.
    pub const LISTEN: u32 = 50;
    /// `getsockname`.
    pub const GETSOCKNAME: u32 = 51;
    /// `getpeername`.
    pub const GETPEERNAME: u32 = 52;
    /// `setsockopt`.
    pub const SETSOCKOPT: u32 = 54;
    /// `getsockopt`.
    pub const GETSOCKOPT: u32 = 55;
    /// `accept4`.
    pub const ACCEPT4: u32 = 288;
    /// `sendmmsg`.
    pub const SENDMMSG: u32 = 307;
    /// `io_uring_setup`.
    pub const IO_URING_SETUP: u32 = 425;
}

/// Socket option constants the filter matches on.
mod so {
    pub const SOL_SOCKET: u32 = 1;
    pub const IPPROTO_ICMP: u32 = 1;
    pub const IPPROTO_IP: u32 = 0;
    pub const SOL_RAW: u32 = 255;
    pub const IPPROTO_ICMPV6: u32 = 58;
    pub const IPPROTO_TCP: u32 = 6;
    pub const IPPROTO_IPV6: u32 = 41;
    pub const SO_TYPE: u32 = 3;
    pub const SO_ERROR: u32 = 4;
    pub const SO_KEEPALIVE: u32 = 9;
    pub const SO_PROTOCOL: u32 = 38;
    pub const SO_DOMAIN: u32 = 39;
}

/// ENOSYS, for the calls that fail at once.
const ENOSYS: u32 = 38;

/// Jump targets while building: an instruction index known later.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    Next,
    Label(Label),
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Label {
    Allow,
    Notify,
    NoSys,
    GetSockOpt,
    SetSockOpt,
    SendTo,
    RecvFrom,
    Socket,
}

enum Item {
    Plain(Insn),
    Jump {
        code: u16,
        k: u32,
        jt: Target,
        jf: Target,
    },
    Mark(Label),
}

/// Why the program could not be assembled (a jump too far for 8 bits).
#[derive(Debug, PartialEq, Eq)]
pub struct TooFar;

fn assemble(items: &[Item]) -> Result<Vec<Insn>, TooFar> {
    let mut at = std::collections::HashMap::new();
    let mut n = 0usize;
    for it in items {
        match it {
            Item::Mark(l) => {
                at.insert(*l, n);
            }
            _ => n += 1,
        }
    }
    let mut out = Vec::with_capacity(n);
    for it in items {
        let here = out.len();
        let off = |t: Target| -> Result<u8, TooFar> {
            match t {
                Target::Next => Ok(0),
                Target::Label(l) => {
                    let dst = *at.get(&l).ok_or(TooFar)?;
                    let d = dst.checked_sub(here + 1).ok_or(TooFar)?;
                    u8::try_from(d).map_err(|_| TooFar)
                }
            }
        };
        match *it {
            Item::Plain(i) => out.push(i),
            Item::Jump { code, k, jt, jf } => out.push(Insn {
                code,
                jt: off(jt)?,
                jf: off(jf)?,
                k,
            }),
            Item::Mark(_) => {}
        }
    }
    Ok(out)
}

fn ld(k: u32) -> Item {
    Item::Plain(Insn {
        code: op::LD_W_ABS,
        jt: 0,
        jf: 0,
        k,
    })
}

fn ret(k: u32) -> Item {
    Item::Plain(Insn {
        code: op::RET_K,
        jt: 0,
        jf: 0,
        k,
    })
}

fn jeq(k: u32, jt: Target, jf: Target) -> Item {
    Item::Jump {
        code: op::JEQ_K,
        k,
        jt,
        jf,
    }
}

/// The filter program described in the module doc.
pub fn program() -> Vec<Insn> {
    use Label::*;
    use Target::{Label as L, Next};
    let mut p = vec![
        ld(data::ARCH),
        jeq(AUDIT_ARCH_X86_64, Next, L(NoSys)),
        ld(data::NR),
        Item::Jump {
            code: op::JSET_K,
            k: X32_SYSCALL_BIT,
            jt: L(NoSys),
            jf: Next,
        },
    ];
    for n in [
        nr::CONNECT,
        nr::BIND,
        nr::LISTEN,
        nr::ACCEPT,
        nr::ACCEPT4,
        nr::GETSOCKNAME,
        nr::GETPEERNAME,
        nr::SENDMSG,
        nr::SENDMMSG,
        nr::RECVMSG,
        nr::RECVMMSG,
    ] {
        p.push(jeq(n, L(Notify), Next));
    }
    p.push(jeq(nr::GETSOCKOPT, L(GetSockOpt), Next));
    p.push(jeq(nr::SETSOCKOPT, L(SetSockOpt), Next));
    p.push(jeq(nr::SENDTO, L(SendTo), Next));
    p.push(jeq(nr::SOCKET, L(Socket), Next));
    p.push(jeq(nr::RECVFROM, L(RecvFrom), Next));
    p.push(jeq(nr::IO_URING_SETUP, L(NoSys), L(Allow)));
    // getsockopt(fd, level, optname, …)
    p.push(Item::Mark(GetSockOpt));
    p.push(ld(data::arg_lo(1)));
    // TCP-level options: a tunnel data socket is a unix socket underneath.
    p.push(jeq(so::IPPROTO_TCP, L(Notify), Next));
    p.push(jeq(so::SOL_SOCKET, Next, L(Allow)));
    p.push(ld(data::arg_lo(2)));
    for o in [so::SO_ERROR, so::SO_DOMAIN, so::SO_TYPE, so::SO_KEEPALIVE] {
        p.push(jeq(o, L(Notify), Next));
    }
    p.push(jeq(so::SO_PROTOCOL, L(Notify), L(Allow)));
    // setsockopt(fd, level, optname, …)
    p.push(Item::Mark(SetSockOpt));
    p.push(ld(data::arg_lo(1)));
    p.push(jeq(so::IPPROTO_TCP, L(Notify), Next));
    p.push(jeq(so::IPPROTO_IPV6, L(Notify), Next));
    // IP-level options (traceroute's IP_RECVERR after connect, IP_TTL):
    // a carried datagram socket is a unix socket underneath; SOL_RAW and
    // IPPROTO_ICMPV6 filters: a stand-in is a UDP socket underneath.
    p.push(jeq(so::IPPROTO_IP, L(Notify), Next));
    p.push(jeq(so::SOL_RAW, L(Notify), Next));
    p.push(jeq(so::IPPROTO_ICMPV6, L(Notify), Next));
    p.push(jeq(so::SOL_SOCKET, Next, L(Allow)));
    p.push(ld(data::arg_lo(2)));
    p.push(jeq(so::SO_KEEPALIVE, L(Notify), L(Allow)));
    // sendto(fd, buf, len, flags, dest_addr, addrlen): a destination?
    p.push(Item::Mark(SendTo));
    p.push(ld(data::arg_lo(4)));
    p.push(jeq(0, Next, L(Notify)));
    p.push(ld(data::arg_hi(4)));
    p.push(jeq(0, L(Allow), L(Notify)));
    // recvfrom(fd, buf, len, flags, src_addr, addrlen): an address buffer?
    p.push(Item::Mark(RecvFrom));
    p.push(ld(data::arg_lo(4)));
    p.push(jeq(0, Next, L(Notify)));
    p.push(ld(data::arg_hi(4)));
    p.push(jeq(0, L(Allow), L(Notify)));
    // socket(domain, type, protocol): ICMP or ICMPv6 (`echo`)?
    p.push(Item::Mark(Socket));
    p.push(ld(data::arg_lo(2)));
    p.push(jeq(so::IPPROTO_ICMP, L(Notify), Next));
    p.push(jeq(so::IPPROTO_ICMPV6, L(Notify), L(Allow)));
    p.push(Item::Mark(Allow));
    p.push(ret(RET_ALLOW));
    p.push(Item::Mark(Notify));
    p.push(ret(RET_USER_NOTIF));
    p.push(Item::Mark(NoSys));
    p.push(ret(RET_ERRNO | ENOSYS));
    // The program is fixed and short: every jump fits (tested).
    assemble(&p).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `struct seccomp_data` as the kernel lays it out.
    fn seccomp_data(nr: u32, arch: u32, args: [u64; 6]) -> Vec<u8> {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(&nr.to_le_bytes());
        b.extend_from_slice(&arch.to_le_bytes());
        b.extend_from_slice(&0x4000_1234u64.to_le_bytes());
        for a in args {
            b.extend_from_slice(&a.to_le_bytes());
        }
        b
    }

    /// A classic-BPF interpreter for the instructions seccomp allows that
    /// the program uses; anything else fails the test.
    fn run(prog: &[Insn], data: &[u8]) -> u32 {
        let mut a: u32 = 0;
        let mut pc = 0usize;
        for _ in 0..prog.len() + 1 {
            let i = prog[pc];
            pc += 1;
            match i.code {
                op::LD_W_ABS => {
                    let k = i.k as usize;
                    assert!(k & 3 == 0 && k + 4 <= data.len(), "bad load at {k}");
                    a = u32::from_le_bytes(data[k..k + 4].try_into().expect("4 bytes"));
                }
                op::JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                op::JSET_K => pc += usize::from(if a & i.k != 0 { i.jt } else { i.jf }),
                op::RET_K => return i.k,
                c => panic!("unexpected opcode {c:#x}"),
            }
            assert!(pc < prog.len(), "fell off the end");
        }
        panic!("no return (loop?)")
    }

    fn verdict(nr: u32, args: [u64; 6]) -> u32 {
        run(&program(), &seccomp_data(nr, AUDIT_ARCH_X86_64, args))
    }

    const NOSYS: u32 = RET_ERRNO | 38;

    #[test]
    fn assembles_within_kernel_limits() {
        let p = program();
        assert!(!p.is_empty() && p.len() < 4096);
        // Every jump lands inside the program.
        for (i, insn) in p.iter().enumerate() {
            if insn.code == op::JEQ_K || insn.code == op::JSET_K {
                assert!(i + 1 + usize::from(insn.jt.max(insn.jf)) < p.len());
            }
        }
        assert_eq!(p.last().map(|i| i.code), Some(op::RET_K));
    }

    #[test]
    fn socket_calls_are_trapped() {
        for n in [
            nr::CONNECT,
            nr::BIND,
            nr::LISTEN,
            nr::ACCEPT,
            nr::ACCEPT4,
            nr::GETSOCKNAME,
            nr::GETPEERNAME,
            nr::SENDMSG,
            nr::SENDMMSG,
        ] {
            assert_eq!(
                verdict(n, [3, 0x1000, 16, 0, 0, 0]),
                RET_USER_NOTIF,
                "nr {n}"
            );
        }
    }

    #[test]
    fn other_calls_run_untouched() {
        // read, write, socket, close, recvfrom, epoll_wait, execve
        for n in [0, 1, 41, 3, 45, 232, 59] {
            assert_eq!(verdict(n, [3, 0, 0, 0, 0, 0]), RET_ALLOW, "nr {n}");
        }
    }

    #[test]
    fn icmp_sockets_are_trapped_other_sockets_not() {
        // socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP), (AF_INET6, SOCK_RAW, ICMPV6)
        assert_eq!(verdict(nr::SOCKET, [2, 2, 1, 0, 0, 0]), RET_USER_NOTIF);
        assert_eq!(verdict(nr::SOCKET, [10, 3, 58, 0, 0, 0]), RET_USER_NOTIF);
        // TCP, UDP, protocol 0, raw 255.
        for p in [6, 17, 0, 255] {
            assert_eq!(verdict(nr::SOCKET, [2, 2, p, 0, 0, 0]), RET_ALLOW, "{p}");
        }
    }

    #[test]
    fn getsockopt_only_for_the_emulated_options() {
        for o in [so::SO_ERROR, so::SO_DOMAIN, so::SO_TYPE, so::SO_PROTOCOL] {
            assert_eq!(
                verdict(nr::GETSOCKOPT, [3, 1, u64::from(o), 0x10, 0x20, 0]),
                RET_USER_NOTIF
            );
        }
        // SO_RCVBUF, SO_REUSEADDR.
        assert_eq!(verdict(nr::GETSOCKOPT, [3, 1, 8, 0, 0, 0]), RET_ALLOW);
        assert_eq!(verdict(nr::GETSOCKOPT, [3, 1, 2, 0, 0, 0]), RET_ALLOW);
        // Every IPPROTO_TCP option (TCP_INFO, TCP_MAXSEG): a data socket
        // is a unix socket underneath.
        assert_eq!(verdict(nr::GETSOCKOPT, [3, 6, 11, 0, 0, 0]), RET_USER_NOTIF);
        assert_eq!(verdict(nr::GETSOCKOPT, [3, 6, 2, 0, 0, 0]), RET_USER_NOTIF);
        // SO_ERROR's number at another level is not SO_ERROR.
        assert_eq!(verdict(nr::GETSOCKOPT, [3, 41, 4, 0, 0, 0]), RET_ALLOW);
    }

    #[test]
    fn setsockopt_for_tcp_ip_ipv6_icmp_and_keepalive() {
        assert_eq!(verdict(nr::SETSOCKOPT, [3, 6, 1, 0, 4, 0]), RET_USER_NOTIF);
        assert_eq!(
            verdict(nr::SETSOCKOPT, [3, 41, 26, 0, 4, 0]),
            RET_USER_NOTIF
        );
        assert_eq!(verdict(nr::SETSOCKOPT, [3, 1, 9, 0, 4, 0]), RET_USER_NOTIF);
        // SO_REUSEADDR, SO_RCVBUF stay with the kernel.
        assert_eq!(verdict(nr::SETSOCKOPT, [3, 1, 2, 0, 4, 0]), RET_ALLOW);
        assert_eq!(verdict(nr::SETSOCKOPT, [3, 1, 8, 0, 4, 0]), RET_ALLOW);
        // IP-level options (IP_RECVERR after traceroute's connect), and the
        // ICMP filters of a raw stand-in: trapped.
        for level in [0, 255, 58] {
            assert_eq!(
                verdict(nr::SETSOCKOPT, [3, level, 11, 0, 4, 0]),
                RET_USER_NOTIF,
                "{level}"
            );
        }
    }

    #[test]
    fn receives_with_an_address_buffer_are_trapped() {
        assert_eq!(verdict(nr::RECVFROM, [3, 0x10, 5, 0, 0, 0]), RET_ALLOW);
        assert_eq!(
            verdict(nr::RECVFROM, [3, 0x10, 5, 0, 0x7fff_0000_0000, 0x7ffc]),
            RET_USER_NOTIF
        );
        assert_eq!(verdict(nr::RECVMSG, [3, 0x10, 0, 0, 0, 0]), RET_USER_NOTIF);
        assert_eq!(verdict(nr::RECVMMSG, [3, 0x10, 2, 0, 0, 0]), RET_USER_NOTIF);
    }

    #[test]
    fn sendto_only_with_a_destination() {
        assert_eq!(verdict(nr::SENDTO, [3, 0x10, 5, 0, 0, 0]), RET_ALLOW);
        assert_eq!(
            verdict(nr::SENDTO, [3, 0x10, 5, 0, 0x7ffc_0000, 16]),
            RET_USER_NOTIF
        );
        // A pointer above 4 GiB with zero low bits still counts.
        assert_eq!(
            verdict(nr::SENDTO, [3, 0x10, 5, 0, 0x7fff_0000_0000, 16]),
            RET_USER_NOTIF
        );
    }

    #[test]
    fn io_uring_x32_and_foreign_arch_fail_with_enosys() {
        assert_eq!(verdict(nr::IO_URING_SETUP, [8, 0, 0, 0, 0, 0]), NOSYS);
        assert_eq!(
            verdict(nr::CONNECT | X32_SYSCALL_BIT, [3, 0, 0, 0, 0, 0]),
            NOSYS
        );
        // i386 (AUDIT_ARCH_I386): socketcall and everything else.
        let i386 = 0x4000_0003;
        assert_eq!(run(&program(), &seccomp_data(102, i386, [0; 6])), NOSYS);
    }

    #[test]
    fn too_far_jump_is_an_error() {
        let mut items = vec![jeq(1, Target::Label(Label::Allow), Target::Next)];
        for _ in 0..300 {
            items.push(ret(0));
        }
        items.push(Item::Mark(Label::Allow));
        items.push(ret(RET_ALLOW));
        assert_eq!(assemble(&items), Err(TooFar));
    }
}
