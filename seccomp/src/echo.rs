//! `socket()` of an ICMP socket in seccomp mode: where the kernel would
//! refuse it (no ping sockets for the caller's groups in
//! `net.ipv4.ping_group_range`, no `CAP_NET_RAW`), the supervisor installs
//! a stand-in instead, a UDP socket of the same family recorded as
//! [`Ours::EchoStandIn`] (the decision is `control::echo`'s, shared with
//! the shim). The filter traps only `socket()` calls whose protocol is
//! ICMP or ICMPv6; every call the kernel would allow runs untouched.
//!
//! The kernel's checks are read, not tried: a ping socket is allowed when
//! the caller's effective group or a supplementary group is in the range
//! (`ping_init_sock`), a raw socket when `CAP_NET_RAW` is in its effective
//! set (`inet_create`); both from `/proc/<pid>/status`. If they cannot be
//! read, the call runs untouched (the kernel answers).

use crate::call::{Call, Outcome};
use crate::caller::{self, FileId};
use crate::state::State;
use crate::table::Ours;
use control::DatagramKind;
use std::os::fd::{AsRawFd, OwnedFd};
use tracing::debug;

/// `CAP_NET_RAW`'s bit in the capability sets.
const CAP_NET_RAW: u32 = 13;

/// What `/proc/<pid>/status` says about a caller's privileges.
#[derive(Debug, Default, PartialEq, Eq)]
struct Creds {
    egid: u32,
    groups: Vec<u32>,
    cap_eff: u64,
}

/// Parses the `Gid:`, `Groups:` and `CapEff:` lines of a status file.
fn parse_status(s: &str) -> Option<Creds> {
    let mut c = Creds::default();
    let (mut gid, mut cap) = (false, false);
    for line in s.lines() {
        if let Some(v) = line.strip_prefix("Gid:") {
            c.egid = v.split_whitespace().nth(1)?.parse().ok()?;
            gid = true;
        } else if let Some(v) = line.strip_prefix("Groups:") {
            c.groups = v
                .split_whitespace()
                .filter_map(|g| g.parse().ok())
                .collect();
        } else if let Some(v) = line.strip_prefix("CapEff:") {
            c.cap_eff = u64::from_str_radix(v.trim(), 16).ok()?;
            cap = true;
        }
    }
    (gid && cap).then_some(c)
}

/// Parses `net.ipv4.ping_group_range` (`low high`).
fn parse_range(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split_whitespace().map(|v| v.parse::<u32>().ok());
    Some((it.next()??, it.next()??))
}

impl Creds {
    fn ping_allowed(&self, (low, high): (u32, u32)) -> bool {
        let inside = |g: &u32| low <= *g && *g <= high;
        inside(&self.egid) || self.groups.iter().any(inside)
    }

    fn raw_allowed(&self) -> bool {
        self.cap_eff & (1 << CAP_NET_RAW) != 0
    }
}

/// `socket(domain, type, protocol)` with an ICMP protocol (the filter
/// traps no other).
pub fn socket(sv: &mut State, c: &Call) -> Outcome {
    let [domain, ty, proto, ..] = c.n.args;
    let (domain, ty, proto) = (domain as i32, ty as i32, proto as i32);
    let Some(kind) = control::echo::asked(domain, ty, proto) else {
        return Outcome::cont();
    };
    let status = std::fs::read_to_string(format!("/proc/{}/status", c.n.pid));
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range");
    let (Some(creds), Some(range)) = (
        status.ok().as_deref().and_then(parse_status),
        range.ok().as_deref().and_then(parse_range),
    ) else {
        return Outcome::cont();
    };
    let raw = creds.raw_allowed();
    let refused = match kind {
        DatagramKind::Ping if creds.ping_allowed(range) => return Outcome::cont(),
        DatagramKind::RawIcmp if raw => return Outcome::cont(),
        DatagramKind::Ping => libc::EACCES,
        _ => libc::EPERM,
    };
    if !control::echo::stand_in(kind, refused, raw) {
        return Outcome::cont(); // the kernel refuses it; the program falls back
    }
    let Ok(s) = socket2::Socket::new(socket2::Domain::from(domain), socket2::Type::DGRAM, None)
    else {
        return Outcome::cont();
    };
    if ty & libc::SOCK_NONBLOCK != 0 && s.set_nonblocking(true).is_err() {
        return Outcome::cont();
    }
    let sock = OwnedFd::from(s);
    let Ok(FileId { ino, .. }) = caller::file_id(&sock) else {
        return Outcome::cont();
    };
    sv.table.insert(
        ino,
        Ours::EchoStandIn {
            kind,
            family: domain,
            refused,
        },
    );
    let cloexec = ty & libc::SOCK_CLOEXEC != 0;
    debug!(
        pid = c.n.pid,
        ?kind,
        refused,
        "seccomp: the host refuses this ICMP socket; a stand-in reaches tunnel destinations"
    );
    let r = sv
        .listener
        .add_fd(c.n.id, sock.as_raw_fd(), None, cloexec, sv.addfd_send);
    match r {
        Ok(_) if sv.addfd_send => Outcome::Answered,
        Ok(n) => Outcome::value(i64::from(n)),
        Err(e) => {
            sv.table.remove(ino);
            Outcome::errno(e.raw_os_error().unwrap_or(libc::EMFILE))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernels_checks() {
        let s = "Name:\tping\nUid:\t65534\t65534\t65534\t65534\nGid:\t100\t65534\t65534\t65534\n\
                 Groups:\t27 1000 \nCapInh:\t0000000000000000\nCapEff:\t0000000000002000\n";
        let c = parse_status(s).expect("status");
        assert_eq!(c.egid, 65534);
        assert_eq!(c.groups, [27, 1000]);
        assert!(c.raw_allowed());
        assert!(!c.ping_allowed((1, 0)), "the default range allows nobody");
        assert!(c.ping_allowed((1000, 1000)), "a supplementary group");
        assert!(c.ping_allowed((0, 2_147_483_647)));
        assert_eq!(parse_range("1\t0\n"), Some((1, 0)));
        assert_eq!(parse_range("1"), None);
        assert!(parse_status("Gid:\t1\t2\n").is_none(), "no CapEff");
    }
}
