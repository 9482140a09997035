//! The leak guard: a capture on every non-loopback interface of the
//! wrapguard namespace that counts each packet leaving it outside the
//! WireGuard UDP flow to the peer endpoints — above all packets to a tunnel
//! destination (a peer's AllowedIPs, v4 or v6) that escaped the tunnel.
//!
//! [`crate::WgPeer::new`] starts it on the client namespace it is joined to
//! (with bait default routes toward the peer, so an escaped packet is really
//! sent and seen instead of failing with ENETUNREACH), and
//! [`crate::Netns`]'s drop checks it: a test that leaked fails with the
//! packets listed. What is allowed:
//! - UDP to a peer endpoint address (the WireGuard flow; any port, since
//!   peers move ports in some tests);
//! - ICMP/ICMPv6 errors to a peer endpoint address (the kernel answering a
//!   datagram wireguard-go sent to a port nobody listens on any more);
//! - IPv6 neighbour discovery and MLD (link housekeeping, not traffic).

use crate::sniff::{Frame, Sniffer};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A packet that left the namespace outside the WireGuard flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leak {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6…).
    pub proto: u8,
    /// Source port (TCP/UDP).
    pub sport: Option<u16>,
    /// Destination port (TCP/UDP).
    pub dport: Option<u16>,
    /// Interface index it left by.
    pub ifindex: i32,
    /// The tunnel range the destination is in, if any.
    pub tunnel_range: Option<String>,
}

impl fmt::Display for Leak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.proto {
            6 => "tcp".to_string(),
            17 => "udp".to_string(),
            1 => "icmp".to_string(),
            58 => "icmpv6".to_string(),
            p => format!("proto {p}"),
        };
        let at = |ip: &IpAddr, port: Option<u16>| match (ip, port) {
            (IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}"),
            (a, Some(p)) => format!("{a}:{p}"),
            (a, None) => a.to_string(),
        };
        write!(
            f,
            "{proto} {} -> {} (interface #{})",
            at(&self.src, self.sport),
            at(&self.dst, self.dport),
            self.ifindex
        )?;
        if let Some(r) = &self.tunnel_range {
            write!(f, " to tunnel range {r}")?;
        }
        Ok(())
    }
}

/// What one frame is, for the guard.
#[derive(Debug, PartialEq, Eq)]
enum Class {
    /// Not ours to judge: incoming, loopback, not IP, ND/MLD.
    Ignored,
    /// The WireGuard flow (or the kernel's ICMP error about it).
    Tunnel,
    /// Anything else that left.
    Leak(Leak),
}

/// An address prefix.
#[derive(Clone, Debug)]
struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    fn parse(s: &str) -> Option<Prefix> {
        let (a, l) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = if l.is_empty() { max } else { l.parse().ok()? };
        (len <= max).then_some(Prefix { addr, len })
    }

    fn contains(&self, ip: &IpAddr) -> bool {
        let bits = |a: &IpAddr| match a {
            IpAddr::V4(v) => (u128::from(u32::from(*v)) << 96, true),
            IpAddr::V6(v) => (u128::from(*v), false),
        };
        // IPv4 sits in the top 32 bits, so the prefix length counts from the top for both.
        let ((p, p4), (x, x4)) = (bits(&self.addr), bits(ip));
        let len = u32::from(self.len);
        p4 == x4 && (len == 0 || (p ^ x) >> (128 - len) == 0)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Parses the IP packet in `f` and decides.
fn classify(f: &Frame, endpoints: &[IpAddr], tunnel: &[Prefix]) -> Class {
    if f.pkttype != crate::sniff::PACKET_OUTGOING || f.hatype == crate::sniff::ARPHRD_LOOPBACK {
        return Class::Ignored;
    }
    let d = &f.data;
    let (src, dst, mut proto, mut l4) = match d.first().map(|b| b >> 4) {
        Some(4) if d.len() >= 20 => {
            let ihl = usize::from(d[0] & 0x0f) * 4;
            let src = Ipv4Addr::new(d[12], d[13], d[14], d[15]);
            let dst = Ipv4Addr::new(d[16], d[17], d[18], d[19]);
            (IpAddr::V4(src), IpAddr::V4(dst), d[9], ihl)
        }
        Some(6) if d.len() >= 40 => {
            let a = |o: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&d[o..o + 16]);
                Ipv6Addr::from(b)
            };
            (IpAddr::V6(a(8)), IpAddr::V6(a(24)), d[6], 40)
        }
        _ => return Class::Ignored,
    };
    // One hop-by-hop header (MLD reports carry a router alert).
    if dst.is_ipv6() && proto == 0 && d.len() >= l4 + 2 {
        proto = d[l4];
        l4 += (usize::from(d[l4 + 1]) + 1) * 8;
    }
    let icmp_type = d.get(l4).copied();
    if proto == 58 && icmp_type.is_some_and(|t| (130..=137).contains(&t) || t == 143) {
        return Class::Ignored;
    }
    let to_endpoint = endpoints.contains(&dst);
    let icmp_error = match proto {
        1 => icmp_type.is_some_and(|t| t == 3 || t == 11),
        58 => icmp_type.is_some_and(|t| (1..=4).contains(&t)),
        _ => false,
    };
    if to_endpoint && (proto == 17 || icmp_error) {
        return Class::Tunnel;
    }
    let port = |o: usize| {
        (matches!(proto, 6 | 17) && d.len() >= l4 + o + 2)
            .then(|| u16::from_be_bytes([d[l4 + o], d[l4 + o + 1]]))
    };
    Class::Leak(Leak {
        src,
        dst,
        proto,
        sport: port(0),
        dport: port(2),
        ifindex: f.ifindex,
        tunnel_range: tunnel
            .iter()
            .find(|p| p.contains(&dst))
            .map(|p| p.to_string()),
    })
}

/// State shared by the guard's calls.
#[derive(Default)]
struct State {
    endpoints: Vec<IpAddr>,
    tunnel: Vec<Prefix>,
    /// Unexpected packets so far.
    leaks: Vec<Leak>,
    /// Destinations of an [`LeakGuard::expect_leaks_to`] in progress.
    expecting: Vec<IpAddr>,
    /// Packets that matched `expecting`.
    expected: Vec<Leak>,
    /// Packets the kernel could not queue for us.
    drops: u64,
    finished: bool,
}

/// The leak guard of one namespace (see the module doc).
pub struct LeakGuard {
    ns: String,
    sniffer: Sniffer,
    state: Mutex<State>,
}

impl LeakGuard {
    /// Starts capturing on every interface of namespace `ns` (present and
    /// future). Panics if the capture cannot be opened: a test that asked
    /// for a guard must not run unguarded.
    pub fn start(ns: &str) -> LeakGuard {
        let sniffer =
            Sniffer::open(ns).unwrap_or_else(|e| panic!("leak guard: capture in {ns}: {e}"));
        LeakGuard {
            ns: ns.to_string(),
            sniffer,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// UDP to `ip` is the WireGuard flow from now on (a peer endpoint).
    pub fn allow_endpoint(&self, ip: IpAddr) {
        self.drain();
        let mut st = self.state();
        if !st.endpoints.contains(&ip) {
            st.endpoints.push(ip);
        }
        if let Err(e) = self.sniffer.set_filter(&st.endpoints) {
            panic!("leak guard: filter in {}: {e}", self.ns);
        }
    }

    /// Names `cidr` a tunnel range: leaks into it are marked so in reports
    /// (every leak counts; this only says why it matters).
    pub fn add_tunnel_range(&self, cidr: &str) {
        if let Some(p) = Prefix::parse(cidr) {
            self.state().tunnel.push(p);
        }
    }

    /// Reads what the kernel queued and sorts it.
    fn drain(&self) {
        let frames = self.sniffer.drain();
        let drops = self.sniffer.drops();
        let mut st = self.state();
        st.drops += u64::from(drops);
        for f in &frames {
            if let Class::Leak(l) = classify(f, &st.endpoints, &st.tunnel) {
                if st.expecting.contains(&l.dst) {
                    st.expected.push(l);
                } else {
                    st.leaks.push(l);
                }
            }
        }
    }

    /// The unexpected packets seen so far.
    pub fn leaks(&self) -> Vec<Leak> {
        self.drain();
        self.state().leaks.clone()
    }

    /// Runs `f`, during which packets to `dsts` are expected to leave the
    /// namespace outside the tunnel (a positive control, or traffic that a
    /// test means to send to the host network). After `f`, waits up to 10 s
    /// until each of `dsts` has been seen, and panics if one was not: an
    /// expectation never passes without its packets. Packets to other
    /// destinations still count as leaks. Returns `f`'s result and the
    /// packets it sent to `dsts`.
    pub fn expect_leaks_to<R>(&self, dsts: &[&str], f: impl FnOnce() -> R) -> (R, Vec<Leak>) {
        let want: Vec<IpAddr> = dsts
            .iter()
            .map(|d| d.parse().unwrap_or_else(|e| panic!("address {d}: {e}")))
            .collect();
        self.drain();
        {
            let mut st = self.state();
            st.expected.clear();
            st.expecting = want.clone();
        }
        let r = f();
        let deadline = Instant::now() + Duration::from_secs(10);
        let missing = loop {
            self.drain();
            let st = self.state();
            let missing: Vec<IpAddr> = want
                .iter()
                .filter(|w| !st.expected.iter().any(|l| l.dst == **w))
                .copied()
                .collect();
            drop(st);
            if missing.is_empty() || Instant::now() > deadline {
                break missing;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let seen = {
            let mut st = self.state();
            st.expecting.clear();
            std::mem::take(&mut st.expected)
        };
        assert!(
            missing.is_empty(),
            "leak guard in {}: expected packets to {missing:?} leaving outside the tunnel, saw none (saw: {})",
            self.ns,
            list(&seen)
        );
        (r, seen)
    }

    /// The verdict: `Err` with a report listing every unexpected packet
    /// (src, dst, protocol, ports), or saying that the capture lost some.
    /// After this, dropping the guard checks nothing more.
    pub fn finish(&self) -> Result<(), String> {
        self.drain();
        let mut st = self.state();
        st.finished = true;
        if st.leaks.is_empty() && st.drops == 0 {
            return Ok(());
        }
        Err(format!(
            "leak guard in {}: {} packet(s) left outside the WireGuard flow{}:\n{}",
            self.ns,
            st.leaks.len(),
            if st.drops > 0 {
                format!(" (and the capture lost {}: inconclusive)", st.drops)
            } else {
                String::new()
            },
            list(&st.leaks)
        ))
    }
}

impl LeakGuard {
    /// [`LeakGuard::finish`] unless it was called already (by the test).
    pub(crate) fn finish_once(&self) -> Result<(), String> {
        if self.state().finished {
            return Ok(());
        }
        self.finish()
    }
}

fn list(l: &[Leak]) -> String {
    let mut s: Vec<String> = l.iter().take(50).map(|l| format!("  {l}")).collect();
    if l.len() > 50 {
        s.push(format!("  … and {} more", l.len() - 50));
    }
    s.join("\n")
}

impl Drop for LeakGuard {
    fn drop(&mut self) {
        if let Err(report) = self.finish_once() {
            if std::thread::panicking() {
                eprintln!("{report}");
            } else {
                panic!("{report}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sniff::{ARPHRD_LOOPBACK, PACKET_OUTGOING};

    fn v4(proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0];
        p.extend(src);
        p.extend(dst);
        p.extend(l4);
        p
    }

    fn v6(nh: u8, dst: &str, l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, nh, 64];
        p.extend("fd00:77::2".parse::<Ipv6Addr>().expect("addr").octets());
        p.extend(dst.parse::<Ipv6Addr>().expect("addr").octets());
        p.extend(l4);
        p
    }

    fn out(data: Vec<u8>) -> Frame {
        Frame {
            data,
            ifindex: 3,
            pkttype: PACKET_OUTGOING,
            hatype: 1,
        }
    }

    fn eps() -> Vec<IpAddr> {
        vec![
            "192.168.77.1".parse().expect("addr"),
            "fd00:77::1".parse().expect("addr"),
        ]
    }

    fn ranges() -> Vec<Prefix> {
        ["10.77.0.0/24", "fd77::/64"]
            .iter()
            .filter_map(|s| Prefix::parse(s))
            .collect()
    }

    #[test]
    fn udp_to_a_tunnel_address_is_a_leak_with_ports_and_range() {
        let udp = [0x9c, 0x40, 0x1b, 0x5c, 0, 9, 0, 0, b'x'];
        let f = out(v4(17, [192, 168, 77, 2], [10, 77, 0, 1], &udp));
        let Class::Leak(l) = classify(&f, &eps(), &ranges()) else {
            panic!("not a leak")
        };
        assert_eq!((l.sport, l.dport, l.proto), (Some(40000), Some(7004), 17));
        assert_eq!(l.tunnel_range.as_deref(), Some("10.77.0.0/24"));
        assert_eq!(
            l.to_string(),
            "udp 192.168.77.2:40000 -> 10.77.0.1:7004 (interface #3) to tunnel range 10.77.0.0/24"
        );
    }

    #[test]
    fn wireguard_flow_and_icmp_errors_to_the_endpoint_are_allowed() {
        let udp = [0xca, 0x6c, 0xca, 0x6d, 0, 40, 0, 0, 1, 0, 0, 0];
        let f = out(v4(17, [192, 168, 77, 2], [192, 168, 77, 1], &udp));
        assert_eq!(classify(&f, &eps(), &ranges()), Class::Tunnel);
        let f = out(v6(17, "fd00:77::1", &udp));
        assert_eq!(classify(&f, &eps(), &ranges()), Class::Tunnel);
        let f = out(v4(1, [192, 168, 77, 2], [192, 168, 77, 1], &[3, 3, 0, 0]));
        assert_eq!(classify(&f, &eps(), &ranges()), Class::Tunnel);
        // TCP to the endpoint address is not the WireGuard flow.
        let tcp = [0x9c, 0x40, 0, 80, 0, 0, 0, 0];
        let f = out(v4(6, [192, 168, 77, 2], [192, 168, 77, 1], &tcp));
        assert!(matches!(classify(&f, &eps(), &ranges()), Class::Leak(_)));
        // An ICMP echo to the endpoint is not an error about the flow.
        let f = out(v4(1, [192, 168, 77, 2], [192, 168, 77, 1], &[8, 0, 0, 0]));
        assert!(matches!(classify(&f, &eps(), &ranges()), Class::Leak(_)));
    }

    #[test]
    fn ipv6_tcp_leak_neighbour_discovery_and_mld_ignored() {
        let tcp = [0x9c, 0x40, 0x1f, 0x90, 0, 0, 0, 0];
        let Class::Leak(l) = classify(&out(v6(6, "fd77::1", &tcp)), &eps(), &ranges()) else {
            panic!("not a leak")
        };
        assert_eq!(l.dport, Some(8080));
        assert_eq!(l.tunnel_range.as_deref(), Some("fd77::/64"));
        assert!(l
            .to_string()
            .starts_with("tcp [fd00:77::2]:40000 -> [fd77::1]:8080"));
        let ns = out(v6(58, "ff02::1:ff00:1", &[135, 0, 0, 0]));
        assert_eq!(classify(&ns, &eps(), &ranges()), Class::Ignored);
        // MLDv2 report behind a hop-by-hop header.
        let hbh = [58, 0, 5, 2, 0, 0, 1, 0, 143, 0, 0, 0];
        let mld = out(v6(0, "ff02::16", &hbh));
        assert_eq!(classify(&mld, &eps(), &ranges()), Class::Ignored);
    }

    #[test]
    fn incoming_and_loopback_frames_are_not_judged() {
        let udp = [0, 1, 0, 2, 0, 9, 0, 0, b'x'];
        let mut f = out(v4(17, [127, 0, 0, 1], [10, 77, 0, 1], &udp));
        f.hatype = ARPHRD_LOOPBACK;
        assert_eq!(classify(&f, &eps(), &ranges()), Class::Ignored);
        let mut f = out(v4(17, [192, 168, 77, 1], [10, 77, 0, 1], &udp));
        f.pkttype = 0;
        assert_eq!(classify(&f, &eps(), &ranges()), Class::Ignored);
    }

    #[test]
    fn prefixes_match_by_family_and_length() {
        let p = Prefix::parse("10.77.0.0/24").expect("prefix");
        assert!(p.contains(&"10.77.0.200".parse().expect("addr")));
        assert!(!p.contains(&"10.77.1.1".parse().expect("addr")));
        assert!(!p.contains(&"fd77::1".parse().expect("addr")));
        let all = Prefix::parse("0.0.0.0/0").expect("prefix");
        assert!(all.contains(&"8.8.8.8".parse().expect("addr")));
        let p6 = Prefix::parse("fd77::/64").expect("prefix");
        assert!(p6.contains(&"fd77::2".parse().expect("addr")));
        assert!(!p6.contains(&"fd78::2".parse().expect("addr")));
        assert!(Prefix::parse("10.0.0.0/33").is_none());
    }
}
