//! A wireguard-go peer with its TUN inside a namespace of its own, joined
//! to a client namespace by a veth pair.

use crate::keys::{keys, Keys};
use crate::netns::{Bg, Netns};
use crate::tempdir::TempDir;
use crate::COUNTER;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// One wireguard-go peer in its own namespace, joined to `client` by a veth.
pub struct WgPeer {
    /// The peer's namespace (declared first: dropped before its files).
    pub ns: Netns,
    /// wireguard-go.
    pub wg: Bg,
    /// Its keys.
    pub keys: Keys,
    /// Its underlay address (reachable from the client namespace).
    pub underlay: String,
    /// Its IPv6 underlay address.
    pub underlay6: String,
    /// Its tunnel IPv4 address.
    pub v4: String,
    /// Its tunnel IPv6 address.
    pub v6: String,
    /// UDP port wireguard-go listens on.
    pub port: u16,
    /// Its interface name (unique on the host).
    pub ifname: String,
    /// The `wg set …` command that configures it.
    wg_set: Vec<String>,
    /// Our tunnel prefixes (routed back into the tunnel).
    our_allowed: Vec<String>,
}

/// A wireguard-go interface name unique on the host (its control socket
/// is /var/run/wireguard/<ifname>.sock, shared by every namespace).
fn unique_ifname() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("wg{:x}x{n}", std::process::id())
}

/// Starts wireguard-go in `ns` as `ifname` and waits for the interface.
fn wireguard_go_named(ns: &Netns, ifname: &str) -> Bg {
    let wg = ns
        .cmd(&["wireguard-go", ifname])
        .env("WG_PROCESS_FOREGROUND", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start wireguard-go");
    let wg = Bg { child: wg };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ns.run(&["ip", "link", "show", ifname]).status.success() {
        assert!(
            Instant::now() < deadline,
            "wireguard-go did not create {ifname}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    wg
}

/// Starts wireguard-go in `ns` on a fresh interface (unconfigured, down);
/// returns the process and the interface name.
pub fn wireguard_go(ns: &Netns) -> (Bg, String) {
    let ifname = unique_ifname();
    (wireguard_go_named(ns, &ifname), ifname)
}

/// Starts wireguard-go as `ifname` in `ns`, configures it with `wg_set`,
/// adds its tunnel addresses and routes `our_allowed` into it.
fn start_wireguard_go(
    ns: &Netns,
    ifname: &str,
    wg_set: &[String],
    v4: &str,
    v6: &str,
    our_allowed: &[String],
) -> Bg {
    let wg = wireguard_go_named(ns, ifname);
    let args: Vec<&str> = wg_set.iter().map(String::as_str).collect();
    let out = ns.run(&args);
    assert!(
        out.status.success(),
        "wg set: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", ifname]);
    ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", ifname, "nodad"]);
    ns.ip(&["link", "set", ifname, "up"]);
    // Replies to our tunnel addresses go back through the tunnel.
    for a in our_allowed {
        let _ = ns.run(&["ip", "route", "replace", a, "dev", ifname]);
    }
    wg
}

/// `python -u -m http.server <port> --bind <bind> --directory <dir>`.
pub fn http_server_argv(python: &str, port: u16, bind: &str, dir: &Path) -> Vec<String> {
    let port = port.to_string();
    let mut v: Vec<String> = [python, "-u", "-m", "http.server", &port, "--bind", bind]
        .iter()
        .map(|a| a.to_string())
        .collect();
    v.extend(["--directory".to_string(), dir.display().to_string()]);
    v
}

/// What the wireguard-go side knows about us.
pub struct PeerSetup<'a> {
    /// Peer number (1, 2…): picks its subnets.
    pub index: u8,
    /// Our public key.
    pub our_public: &'a str,
    /// Our tunnel addresses as the peer's AllowedIPs for us.
    pub our_allowed: &'a str,
    /// Our endpoint if the peer should know it (for peers we list without Endpoint).
    pub our_endpoint: Option<&'a str>,
    /// Extra addresses on the peer's loopback (services behind it).
    pub extra_addrs: &'a [&'a str],
    /// More `wg set … peer <us>` arguments (preshared-key, keepalive).
    pub extra_peer_args: &'a [&'a str],
}

impl Drop for WgPeer {
    fn drop(&mut self) {
        // SIGTERM first, so wireguard-go removes its control socket.
        self.wg.terminate();
        let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", self.ifname));
    }
}

impl WgPeer {
    /// Creates namespace A<i>, the veth to `client`, wireguard-go and its config.
    pub fn new(client: &Netns, tmp: &TempDir, s: PeerSetup<'_>) -> WgPeer {
        let i = s.index;
        let ns = Netns::new(&format!("a{i}"));
        let underlay = format!("192.168.{}.1", 76 + u32::from(i));
        let ours = format!("192.168.{}.2/24", 76 + u32::from(i));
        let (va, vb) = ns.veth_to(client, &format!("{underlay}/24"), &ours);
        // An IPv6 underlay too (nodad: usable at once).
        let underlay6 = format!("fd00:{}::1", 76 + u32::from(i));
        ns.ip(&[
            "addr",
            "add",
            &format!("{underlay6}/64"),
            "dev",
            &va,
            "nodad",
        ]);
        client.ip(&[
            "addr",
            "add",
            &format!("fd00:{}::2/64", 76 + u32::from(i)),
            "dev",
            &vb,
            "nodad",
        ]);
        for a in s.extra_addrs {
            ns.ip(&["addr", "add", a, "dev", "lo"]);
        }
        // The client side is guarded against leaks (see `leakguard`).
        let mut ranges = vec![
            format!("10.{}.0.0/24", 76 + u32::from(i)),
            format!("fd{}::/64", 76 + u32::from(i)),
        ];
        ranges.extend(s.extra_addrs.iter().map(|a| a.to_string()));
        client.guard_peer(&underlay, &underlay6, &ranges);

        let keys = keys();
        // wireguard-go's control socket is /var/run/wireguard/<ifname>.sock,
        // shared by every namespace: the name must be unique on the host.
        let ifname = unique_ifname();
        let key_file = tmp.write(&format!("peer{i}.key"), &keys.private);
        let port = 51820 + u16::from(i);
        let mut wg_set: Vec<String> = [
            "wg",
            "set",
            &ifname,
            "private-key",
            &key_file.display().to_string(),
            "listen-port",
            &port.to_string(),
            "peer",
            s.our_public,
            "allowed-ips",
            s.our_allowed,
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        if let Some(ep) = s.our_endpoint {
            wg_set.extend(["endpoint".to_string(), ep.to_string()]);
        }
        wg_set.extend(s.extra_peer_args.iter().map(|a| a.to_string()));
        let v4 = format!("10.{}.0.1", 76 + u32::from(i));
        let v6 = format!("fd{}::1", 76 + u32::from(i));
        let our_allowed: Vec<String> = s.our_allowed.split(',').map(String::from).collect();
        let wg = start_wireguard_go(&ns, &ifname, &wg_set, &v4, &v6, &our_allowed);
        WgPeer {
            ns,
            wg,
            keys,
            underlay,
            underlay6,
            v4,
            v6,
            port,
            ifname,
            wg_set,
            our_allowed,
        }
    }

    /// Kills wireguard-go (SIGKILL: no goodbye, its TUN disappears) and
    /// starts a fresh one with the same keys, port and addresses: a peer
    /// restart. The new process has no session and no endpoint for us.
    pub fn restart(&mut self) {
        self.kill();
        self.start();
    }

    /// Kills wireguard-go with SIGKILL and waits for its interface to go.
    pub fn kill(&mut self) {
        let _ = self.wg.child.kill();
        let _ = self.wg.child.wait();
        let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", self.ifname));
        let deadline = Instant::now() + Duration::from_secs(10);
        while self
            .ns
            .run(&["ip", "link", "show", &self.ifname])
            .status
            .success()
        {
            assert!(Instant::now() < deadline, "{} did not go away", self.ifname);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts wireguard-go again after [`WgPeer::kill`].
    pub fn start(&mut self) {
        self.wg = start_wireguard_go(
            &self.ns,
            &self.ifname,
            &self.wg_set,
            &self.v4,
            &self.v6,
            &self.our_allowed,
        );
    }

    /// Lets one more WireGuard peer in: `public` may send from `allowed`
    /// (comma-separated CIDRs), and replies to those go back through wg0.
    pub fn add_peer(&self, public: &str, allowed: &str) {
        let out = self.ns.run(&[
            "wg",
            "set",
            &self.ifname,
            "peer",
            public,
            "allowed-ips",
            allowed,
        ]);
        assert!(
            out.status.success(),
            "wg set: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for a in allowed.split(',') {
            let _ = self
                .ns
                .run(&["ip", "route", "replace", a, "dev", &self.ifname]);
        }
    }

    /// `wg show <if> <what>` inside the peer's namespace.
    pub fn wg_show(&self, what: &str) -> String {
        let out = self.ns.run(&["wg", "show", &self.ifname, what]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `Endpoint =` value for our config.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.underlay, self.port)
    }

    /// `Endpoint =` value over the IPv6 underlay.
    pub fn endpoint6(&self) -> String {
        format!("[{}]:{}", self.underlay6, self.port)
    }

    /// Starts a python HTTP server on `bind`:8080 serving `dir`; waits until it listens.
    pub fn http_server(&self, dir: &Path, bind: &str, log: &Path) -> Bg {
        self.http_server_on(8080, dir, bind, log)
    }

    /// [`WgPeer::http_server`] on TCP `port`.
    pub fn http_server_on(&self, port: u16, dir: &Path, bind: &str, log: &Path) -> Bg {
        let argv = http_server_argv("python3", port, bind, dir);
        let bg = self
            .ns
            .spawn(&argv.iter().map(String::as_str).collect::<Vec<_>>(), log);
        self.ns.wait_tcp_listen(port);
        bg
    }
}
