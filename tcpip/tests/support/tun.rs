//! Test-only FFI: a fresh network namespace with a TUN device, so our stack
//! can talk to the Linux kernel's TCP. Nothing leaves the namespace: it has
//! no route out, only the TUN (our stack) and loopback.
//!
//! All `unsafe` of the tcpip tests lives here.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tcpip::Stack;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: i16 = 0x0001;
const IFF_NO_PI: i16 = 0x1000;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace deleted on drop, with a TUN device inside.
pub struct NetNs {
    pub name: String,
    tun: File,
}

fn quiet(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

impl NetNs {
    /// Creates the namespace and the TUN device; `None` (after a loud
    /// message) when not root or /dev/net/tun is missing.
    pub fn create() -> Option<NetNs> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        if !root || !std::path::Path::new("/dev/net/tun").exists() || !quiet(&["ip", "-V"]) {
            eprintln!("\n*** SKIPPED: needs root + /dev/net/tun (and iproute2) ***\n");
            return None;
        }
        let name = format!(
            "wgtest-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        if !sh(&["ip", "netns", "add", &name]) {
            eprintln!("\n*** SKIPPED: cannot create a network namespace ***\n");
            return None;
        }
        let path = format!("/var/run/netns/{name}");
        let tun = std::thread::scope(|s| {
            s.spawn(|| {
                enter(&path);
                open_tun("tun0")
            })
            .join()
            .ok()
            .flatten()
        });
        let Some(tun) = tun else {
            sh(&["ip", "netns", "del", &name]);
            eprintln!("\n*** SKIPPED: cannot open /dev/net/tun ***\n");
            return None;
        };
        let ns = NetNs { name, tun };
        for cmd in [
            "sysctl -qw net.ipv6.conf.all.accept_dad=0",
            "sysctl -qw net.ipv6.conf.default.accept_dad=0",
            "ip link set lo up",
            "ip link set tun0 mtu 1420",
            "ip addr add 10.88.0.1/24 dev tun0",
            "ip -6 addr add fd88::1/64 dev tun0 nodad",
            "ip link set tun0 up",
        ] {
            let mut args = vec!["ip", "netns", "exec", ns.name.as_str()];
            args.extend(cmd.split(' '));
            assert!(sh(&args), "setup failed: {cmd}");
        }
        set_nonblocking(&ns.tun);
        Some(ns)
    }

    /// Runs `f` on a thread inside the namespace (kernel sockets made there
    /// belong to it).
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            enter(&path);
            f()
        })
    }

    /// A command line run inside the namespace.
    pub fn command(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, prog]);
        c
    }

    /// Drives `stack` over the TUN until `app` returns true or `timeout`
    /// passes; returns whether `app` finished.
    pub fn drive(
        &mut self,
        stack: &mut Stack,
        timeout: Duration,
        mut app: impl FnMut(&mut Stack, Instant) -> bool,
    ) -> bool {
        let end = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            let now = Instant::now();
            if app(stack, now) {
                return true;
            }
            if now >= end {
                return false;
            }
            // Outbound.
            while let Some(n) = stack.poll_transmit(now, &mut buf) {
                if n > 0 {
                    write_all_retry(&mut self.tun, &buf[..n]);
                }
            }
            // Inbound: drain what is there, else wait a little.
            let mut got = 0;
            loop {
                match self.tun.read(&mut buf) {
                    Ok(n) if n > 0 => {
                        stack.process(Instant::now(), &buf[..n]);
                        got += 1;
                        if got >= 64 {
                            break;
                        }
                    }
                    _ => break,
                }
            }
            if got == 0 {
                let wait = stack
                    .poll_at()
                    .map(|t| t.saturating_duration_since(Instant::now()))
                    .unwrap_or(Duration::from_millis(5))
                    .min(Duration::from_millis(2));
                poll_readable(&self.tun, wait);
            }
            stack.handle_timeout(Instant::now());
        }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        sh(&["ip", "netns", "del", &self.name]);
    }
}

fn write_all_retry(f: &mut File, pkt: &[u8]) {
    for _ in 0..1000 {
        match f.write(pkt) {
            Ok(_) => return,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_micros(50))
            }
            Err(_) => return, // e.g. EIO before the link is up: a lost packet
        }
    }
}

fn enter(path: &str) {
    let f = File::open(path).expect("open netns");
    // SAFETY: `f` is an open namespace file descriptor for the duration of
    // the call; setns only changes this thread's network namespace.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns failed: {}", std::io::Error::last_os_error());
}

fn open_tun(name: &str) -> Option<File> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .ok()?;
    let mut ifr = [0u8; 40];
    ifr[..name.len()].copy_from_slice(name.as_bytes());
    ifr[16..18].copy_from_slice(&(IFF_TUN | IFF_NO_PI).to_ne_bytes());
    // SAFETY: TUNSETIFF reads and writes a `struct ifreq` (40 bytes on
    // Linux); `ifr` is a live, writable buffer of that size.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), TUNSETIFF as _, ifr.as_mut_ptr()) };
    if r < 0 {
        return None;
    }
    Some(f)
}

fn set_nonblocking(f: &File) {
    // SAFETY: fcntl on an fd we own with F_GETFL/F_SETFL and integer flags.
    unsafe {
        let fl = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(f.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

fn poll_readable(f: &File, wait: Duration) {
    let mut pfd = libc::pollfd {
        fd: f.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = wait.as_millis().min(1000) as libc::c_int;
    // SAFETY: `pfd` is a valid pollfd array of length 1 for the call.
    unsafe {
        libc::poll(&mut pfd, 1, ms);
    }
}

/// Sets SO_RCVBUF on a kernel socket (accepted sockets inherit it).
pub fn set_rcvbuf(l: &std::net::TcpListener, bytes: libc::c_int) {
    // SAFETY: setsockopt with a pointer to a live c_int and its exact size.
    unsafe {
        libc::setsockopt(
            l.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Sends `count` ICMP echo requests to `dst` from a raw socket (call from a
/// thread inside the namespace); returns how many matching replies came back.
pub fn raw_ping(dst: std::net::IpAddr, count: u16) -> u16 {
    let v6 = dst.is_ipv6();
    let (domain, proto) = if v6 {
        (libc::AF_INET6, libc::IPPROTO_ICMPV6)
    } else {
        (libc::AF_INET, libc::IPPROTO_ICMP)
    };
    // SAFETY: plain socket(2) call; the fd is closed below.
    let fd = unsafe { libc::socket(domain, libc::SOCK_RAW, proto) };
    assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
    let tv = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    // SAFETY: setsockopt with a pointer to a live timeval and its size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
    }
    let ident: u16 = 0x5747;
    let mut replies = 0;
    for seq in 0..count {
        let mut pkt = [0u8; 24];
        pkt[0] = if v6 { 128 } else { 8 };
        pkt[4..6].copy_from_slice(&ident.to_be_bytes());
        pkt[6..8].copy_from_slice(&seq.to_be_bytes());
        pkt[8..].copy_from_slice(b"wrapguard ping!!");
        if !v6 {
            let c = !tcpip::wire::checksum::data(&pkt);
            pkt[2..4].copy_from_slice(&c.to_be_bytes());
        }
        // For ICMPv6 raw sockets the kernel fills in the checksum.
        let sent = match dst {
            std::net::IpAddr::V4(a) => {
                // SAFETY: zeroed sockaddr_in is a valid value; fields set below.
                let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
                // SAFETY: pkt and sin are live for the call, lengths exact.
                unsafe {
                    libc::sendto(
                        fd,
                        pkt.as_ptr().cast(),
                        pkt.len(),
                        0,
                        (&sin as *const libc::sockaddr_in).cast(),
                        std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    )
                }
            }
            std::net::IpAddr::V6(a) => {
                // SAFETY: zeroed sockaddr_in6 is a valid value; fields set below.
                let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_addr.s6_addr = a.octets();
                // SAFETY: pkt and sin6 are live for the call, lengths exact.
                unsafe {
                    libc::sendto(
                        fd,
                        pkt.as_ptr().cast(),
                        pkt.len(),
                        0,
                        (&sin6 as *const libc::sockaddr_in6).cast(),
                        std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                    )
                }
            }
        };
        assert!(sent > 0, "sendto: {}", std::io::Error::last_os_error());
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            let mut buf = [0u8; 1500];
            // SAFETY: buf is a live writable buffer of the given length.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                break;
            }
            let b = &buf[..n as usize];
            // IPv4 raw sockets deliver the IP header; IPv6 ones do not.
            let icmp = if v6 {
                b
            } else {
                &b[usize::from(b[0] & 0x0f) * 4..]
            };
            let reply = if v6 { 129 } else { 0 };
            if icmp.len() >= 24
                && icmp[0] == reply
                && icmp[4..6] == ident.to_be_bytes()
                && icmp[6..8] == seq.to_be_bytes()
                && &icmp[8..24] == b"wrapguard ping!!"
            {
                replies += 1;
                break;
            }
        }
    }
    // SAFETY: closing the fd we opened above.
    unsafe {
        libc::close(fd);
    }
    replies
}

/// SO_LINGER {on, 0}: closing the socket sends a RST instead of a FIN.
pub fn set_linger_zero(s: &std::net::TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt with a pointer to a live linger and its size.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
