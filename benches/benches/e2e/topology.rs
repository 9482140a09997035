//! The namespaces, peers and servers every measurement shares (see the
//! picture in `main.rs`), and how each system under test runs a client.

use crate::bins::Bins;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use wrapguard_testnet::{keys, wireguard_go, Bg, Conf, Netns, OnePeer, TempDir, WgPeer};

/// The systems compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Via {
    /// `wrapguard -- client` in namespace B.
    Wrapguard,
    /// The client on kernel TCP in namespace C, through wireguard-go's TUN.
    WireguardGo,
    /// The client in namespace B to onetun's local port forward.
    Onetun,
    /// `wrapguard -- client` against a second wrapguard (namespace P).
    Pair,
    /// `wrapguard --mode=seccomp -- client` in namespace B: the same
    /// client and peer as [`Via::Wrapguard`], intercepted by seccomp user
    /// notification instead of the LD_PRELOAD shim.
    Seccomp,
}

impl Via {
    /// Column heading.
    pub fn label(self) -> &'static str {
        match self {
            Via::Wrapguard => "wrapguard",
            Via::WireguardGo => "wireguard-go+kernel",
            Via::Onetun => "onetun",
            Via::Pair => "wrapguard↔wrapguard",
            Via::Seccomp => "wrapguard seccomp",
        }
    }
}

/// Where a client reaches the servers.
pub struct Target {
    /// Host to connect to.
    pub host: &'static str,
    /// iperf3 port.
    pub iperf: u16,
    /// HTTP port (serves `/big.bin`).
    pub http: u16,
}

/// Size of the file the curl test downloads.
pub const BIG_FILE: usize = 256 << 20;
/// Port of the connect + 1-byte request/response server.
pub const RR_PORT: u16 = 7000;
/// Port of the echo server the scale test holds connections to.
pub const ECHO_PORT: u16 = 7001;
/// The proxy instance's SOCKS5 port in B ([`Topology::start_proxy`]).
pub const SOCKS_PORT: u16 = 11080;
/// The proxy instance's forward to iperf3 in B.
pub const FWD_IPERF: u16 = 25201;
/// The proxy instance's forward to the HTTP server in B.
pub const FWD_HTTP: u16 = 28080;

/// Everything built for one bench run; dropping it tears it all down.
pub struct Topology {
    // Processes first: dropped (killed) before their namespaces go.
    _servers: Vec<Bg>,
    onetun: Result<Bg, String>,
    tun_client: Bg,
    /// Peer A1 and namespace B (`one.client`), our keys and the files.
    pub(crate) one: OnePeer,
    /// Namespace C (wireguard-go TUN client, the kernel's TCP).
    pub(crate) c: Netns,
    /// The TUN interface in C.
    pub(crate) tun_ifname: String,
    /// The peer's endpoint as C reaches it.
    pub(crate) tun_endpoint: String,
    pair: Netns,
    pub(crate) wrapguard: PathBuf,
    conf_b: PathBuf,
    conf_pair: PathBuf,
    /// This bench binary (helper subcommands).
    pub me: PathBuf,
}

impl Topology {
    /// Builds namespaces A, B, C and P, starts every server and peer.
    pub fn build(bins: &Bins) -> Topology {
        let one = OnePeer::new("b");
        let c = Netns::new("c");
        let (b, peer, tmp) = (&one.client, &one.peer, &one.tmp);
        let conf_b = one.conf("b.conf", Conf::V4);

        // Servers behind the peer.
        let www = tmp.join("www");
        std::fs::create_dir_all(&www).expect("web root");
        write_big_file(&www.join("big.bin"));
        let me = bins.me.display().to_string();
        let rr = format!("0.0.0.0:{RR_PORT}");
        let echo = format!("0.0.0.0:{ECHO_PORT}");
        let servers = vec![
            peer.ns.spawn(&["iperf3", "-s"], &tmp.join("iperf3.log")),
            peer.http_server(&www, "0.0.0.0", &tmp.join("http.log")),
            peer.ns
                .spawn(&[&me, "__rr-server", &rr], &tmp.join("rr.log")),
            peer.ns
                .spawn(&[&me, "__echo-server", &echo], &tmp.join("echo.log")),
        ];
        for port in [5201, RR_PORT, ECHO_PORT] {
            peer.ns.wait_tcp_listen(port);
        }

        // wireguard-go as a TUN client in C, on a veth of its own.
        peer.ns.veth_to(&c, "192.168.200.1/24", "192.168.200.2/24");
        let tun_keys = keys();
        peer.add_peer(&tun_keys.public, "10.77.0.3/32");
        let (tun_client, ifname) = wireguard_go(&c);
        let key_file = tmp.write("c.key", &tun_keys.private);
        let endpoint = format!("192.168.200.1:{}", peer.port);
        let key_s = key_file.display().to_string();
        let out = c.run(&[
            "wg",
            "set",
            &ifname,
            "private-key",
            &key_s,
            "peer",
            &peer.keys.public,
            "endpoint",
            &endpoint,
            "allowed-ips",
            "10.77.0.0/24",
        ]);
        assert!(out.status.success(), "wg set in C failed");
        c.ip(&["addr", "add", "10.77.0.3/24", "dev", &ifname]);
        c.ip(&["link", "set", &ifname, "up"]);

        let onetun = bins
            .onetun
            .clone()
            .map(|bin| start_onetun(&bin, b, peer, tmp));

        // Two wrapguard instances in P, peered over loopback.
        let pair = Netns::new("p");
        let (conf_pair_server, conf_pair) = pair_configs(tmp);
        let serve = format!(
            "iperf3 -s & exec python3 -m http.server {} --bind 0.0.0.0 --directory {}",
            8080,
            www.display()
        );
        let wg = bins.wrapguard.display().to_string();
        let cs = conf_pair_server.display().to_string();
        let mut servers = servers;
        servers.push(pair.spawn(
            &[
                &wg,
                "--config",
                &cs,
                "--log-level=warn",
                "--",
                "sh",
                "-c",
                &serve,
            ],
            &tmp.join("pair-server.log"),
        ));
        pair.wait_tcp_listen(5201);
        pair.wait_tcp_listen(8080);

        Topology {
            _servers: servers,
            onetun,
            tun_client,
            one,
            c,
            tun_ifname: ifname,
            tun_endpoint: endpoint,
            pair,
            wrapguard: bins.wrapguard.clone(),
            conf_b,
            conf_pair,
            me: bins.me.clone(),
        }
    }

    /// The pid of the long-running process that carries `via`'s traffic
    /// (wireguard-go of namespace C, onetun); `None` for the wrapguard
    /// systems, whose process is the client command itself.
    pub fn tunnel_pid(&self, via: Via) -> Option<u32> {
        match via {
            Via::WireguardGo => Some(self.tun_client.child.id()),
            Via::Onetun => self.onetun.as_ref().ok().map(|b| b.child.id()),
            _ => None,
        }
    }

    /// The namespace of the servers `via`'s clients reach and of the peer
    /// that carries them there: wireguard-go's A, or P for the pair (whose
    /// processes, before a client starts, are the serving side's).
    pub fn servers_ns(&self, via: Via) -> &str {
        match via {
            Via::Pair => &self.pair.name,
            _ => &self.one.peer.ns.name,
        }
    }

    /// Whether `via` can be measured, or why not.
    pub fn available(&self, via: Via) -> Result<(), String> {
        match (via, &self.onetun) {
            (Via::Onetun, Err(e)) => Err(e.clone()),
            _ => Ok(()),
        }
    }

    /// Where `via`'s clients connect.
    pub fn target(&self, via: Via) -> Target {
        match via {
            Via::Wrapguard | Via::WireguardGo | Via::Seccomp => Target {
                host: "10.77.0.1",
                iperf: 5201,
                http: 8080,
            },
            Via::Onetun => Target {
                host: "127.0.0.1",
                iperf: 15201,
                http: 18080,
            },
            Via::Pair => Target {
                host: "10.88.0.1",
                iperf: 5201,
                http: 8080,
            },
        }
    }

    /// A command running `argv` as a client of `via` (wrapped by wrapguard
    /// for the wrapguard systems, so the spawned process *is* wrapguard).
    /// With a wrapguard that shares tunnels, `--no-share` keeps the engine
    /// in that process, where the bench reads CPU time and RSS (a shared
    /// engine is a process of its own; the data path is the same).
    pub fn client(&self, via: Via, argv: &[&str]) -> Command {
        let no_share = no_share_flag(&self.wrapguard);
        // E2E_TCP_CONGESTION=cubic|bbr: the wrapped clients' congestion
        // control (default: wrapguard's own choice).
        let cc_flag = std::env::var("E2E_TCP_CONGESTION")
            .ok()
            .map(|c| format!("--tcp-congestion={c}"));
        let wrapped = |ns: &Netns, conf: &PathBuf, mode: &str| {
            let wg = self.wrapguard.display().to_string();
            let c = conf.display().to_string();
            let mut v = vec![wg.as_str(), "--config", &c, "--log-level=warn", mode];
            v.extend(no_share);
            if let Some(cc) = &cc_flag {
                v.push(cc);
            }
            v.push("--");
            v.extend_from_slice(argv);
            ns.cmd(&v)
        };
        let mut cmd = match via {
            Via::Wrapguard => wrapped(&self.one.client, &self.conf_b, "--mode=preload"),
            Via::Seccomp => wrapped(&self.one.client, &self.conf_b, "--mode=seccomp"),
            Via::Pair => wrapped(&self.pair, &self.conf_pair, "--mode=preload"),
            Via::WireguardGo => self.c.cmd(argv),
            Via::Onetun => self.one.client.cmd(argv),
        };
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }
}

impl Topology {
    /// Starts wrapguard as a proxy in B, with no program: a peer of its
    /// own (10.77.0.5, so it never fights the wrapped clients' engine over
    /// one key), SOCKS5 on [`SOCKS_PORT`] and TCP forwards to iperf3
    /// ([`FWD_IPERF`]) and HTTP ([`FWD_HTTP`]) — onetun's model, the same
    /// ports onetun forwards. `Err` if this wrapguard has no front-ends.
    pub fn start_proxy(&self) -> Result<Bg, String> {
        if !has_flag(&self.wrapguard, "--socks5") {
            return Err("this wrapguard has no --socks5 (a build before proxies)".into());
        }
        let (b, peer, tmp) = (&self.one.client, &self.one.peer, &self.one.tmp);
        let k = keys();
        peer.add_peer(&k.public, "10.77.0.5/32");
        let endpoint = peer.endpoint();
        let text = wrapguard_testnet::conf_text(
            &k.private,
            "10.77.0.5/24",
            "",
            &[wrapguard_testnet::PeerSection {
                public_key: &peer.keys.public,
                endpoint: Some(&endpoint),
                allowed_ips: "10.77.0.0/24",
                extra: "",
            }],
        );
        let conf = tmp.write("proxy.conf", &text).display().to_string();
        let wg = self.wrapguard.display().to_string();
        let socks = format!("127.0.0.1:{SOCKS_PORT}");
        let fwd_iperf = format!("tcp:127.0.0.1:{FWD_IPERF}:10.77.0.1:5201");
        let fwd_http = format!("tcp:127.0.0.1:{FWD_HTTP}:10.77.0.1:8080");
        let mut argv = vec![wg.as_str(), "--config", &conf, "--log-level=warn"];
        argv.extend(no_share_flag(&self.wrapguard));
        argv.extend(["--socks5", &socks, "--forward", &fwd_iperf]);
        argv.extend(["--forward", &fwd_http]);
        let bg = b.spawn(&argv, &tmp.join("proxy.log"));
        for port in [SOCKS_PORT, FWD_IPERF, FWD_HTTP] {
            b.wait_tcp_listen(port);
        }
        Ok(bg)
    }

    /// A command running `argv` in B, not wrapped: a client of the
    /// proxies there.
    pub fn in_b(&self, argv: &[&str]) -> Command {
        let mut cmd = self.one.client.cmd(argv);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }
}

/// Writes `BIG_FILE` bytes of a non-trivial pattern.
fn write_big_file(path: &std::path::Path) {
    use std::io::Write;
    let mut chunk = vec![0u8; 1 << 20];
    for (i, b) in chunk.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("big file"));
    for _ in 0..BIG_FILE / chunk.len() {
        f.write_all(&chunk).expect("write big file");
    }
    f.flush().expect("flush big file");
}

/// onetun in B forwarding 15201 → iperf3 and 18080 → HTTP as peer 10.77.0.4.
fn start_onetun(bin: &std::path::Path, b: &Netns, peer: &WgPeer, tmp: &TempDir) -> Bg {
    let k = keys();
    peer.add_peer(&k.public, "10.77.0.4/32");
    let bin = bin.display().to_string();
    let ep = peer.endpoint();
    let bg = b.spawn(
        &[
            &bin,
            "127.0.0.1:15201:10.77.0.1:5201:TCP",
            "127.0.0.1:18080:10.77.0.1:8080:TCP",
            "--endpoint-addr",
            &ep,
            "--endpoint-public-key",
            &peer.keys.public,
            "--private-key",
            &k.private,
            "--source-peer-ip",
            "10.77.0.4",
            "--keep-alive",
            "10",
            "--log",
            "warn",
        ],
        &tmp.join("onetun.log"),
    );
    b.wait_tcp_listen(15201);
    std::thread::sleep(Duration::from_millis(200));
    bg
}

/// `["--no-share"]` if `wrapguard` has the flag (builds before shared
/// tunnels do not), else nothing.
pub(crate) fn no_share_flag(wrapguard: &std::path::Path) -> &'static [&'static str] {
    if has_flag(wrapguard, "--no-share") {
        &["--no-share"]
    } else {
        &[]
    }
}

/// Whether `wrapguard --help` names `flag`.
fn has_flag(wrapguard: &std::path::Path, flag: &str) -> bool {
    static HELP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HELP.get_or_init(|| {
        Command::new(wrapguard)
            .arg("--help")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    })
    .contains(flag)
}

/// Configs of the two wrapguard instances in P: (server 10.88.0.1, client 10.88.0.2).
fn pair_configs(tmp: &TempDir) -> (PathBuf, PathBuf) {
    let (k1, k2) = (keys(), keys());
    let conf = |k: &wrapguard_testnet::Keys, me: u8, other: &wrapguard_testnet::Keys| {
        let o = 3 - me;
        format!(
            "[Interface]\nPrivateKey = {}\nAddress = 10.88.0.{me}/24\nListenPort = 5180{me}\n\n\
             [Peer]\nPublicKey = {}\nEndpoint = 127.0.0.1:5180{o}\nAllowedIPs = 10.88.0.{o}/32\n",
            k.private, other.public
        )
    };
    (
        tmp.write("pair1.conf", &conf(&k1, 1, &k2)),
        tmp.write("pair2.conf", &conf(&k2, 2, &k1)),
    )
}
