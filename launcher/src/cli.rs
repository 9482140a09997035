//! The command line.

use clap::{Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// Examples shown at the end of `--help`.
const EXAMPLES: &str = "\
Examples:
  wrapguard --config wg0.conf -- curl http://10.77.0.1:8080/
  wrapguard --config wg0.conf -- python3 -m http.server 8080
  wrapguard --config wg0.conf --exit-node 10.77.0.1 -- curl https://example.com/
  wrapguard --config wg0.conf --route 192.168.0.0/16:10.77.0.1 -- ssh 192.168.1.5
  wrapguard --config wg0.conf --socks5 127.0.0.1:1080   # a proxy into the tunnel
  wrapguard --config wg0.conf --forward tcp:127.0.0.1:5432:10.77.0.1:5432
  wrapguard --config wg0.conf --doctor curl      # will this work? what to fix
  wrapguard --config wg0.conf --self-test        # handshake + an intercepted connect
  wrapguard up --config wg0.conf                 # a tunnel of its own, in the background
  wrapguard exec wg0 -- curl http://10.77.0.1/   # a program on it
  wrapguard status wg0 && wrapguard down wg0
  wrapguard genkey > wg0.key && wrapguard pubkey < wg0.key
  wrapguard completions bash > /etc/bash_completion.d/wrapguard

Instances started by one user with the same private key share one tunnel
(one address, one WireGuard session); --no-share gives an instance its own.
While it runs, `kill -USR1 <wrapguard pid>` logs a status line per peer
(endpoint, latest handshake, bytes received/sent, active flows).
Exit status: the program's; 1 when wrapguard itself fails (one error line
on stderr); for --doctor and --self-test, 1 when any check fails.
Docs: README.md and the annotated example-wg0.conf.";

/// `wrapguard [OPTIONS] --config <PATH> -- <COMMAND> [ARGS]...`
#[derive(Debug, Parser)]
#[command(
    name = "wrapguard",
    version,
    about = "Run a program with its network traffic carried through a userspace WireGuard tunnel",
    override_usage = "wrapguard [OPTIONS] --config <PATH> -- <COMMAND> [ARGS]...\n       \
                      wrapguard --doctor [PROGRAM] [--config <PATH>] [-- <COMMAND> [ARGS]...]\n       \
                      wrapguard --config <PATH> --self-test\n       \
                      wrapguard --config <PATH> --socks5 ADDR:PORT | --http-proxy ADDR:PORT | --forward SPEC | --reverse SPEC [-- <COMMAND> [ARGS]...]\n       \
                      wrapguard up --config <PATH> [--name <NAME>]\n       \
                      wrapguard exec <NAME> -- <COMMAND> [ARGS]...\n       \
                      wrapguard status [NAME] [--json] [--flows] | ls [--json] | down <NAME>\n       \
                      wrapguard genkey | pubkey | completions <SHELL>",
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// Subcommands: shared tunnels, and helpers.
    #[command(subcommand)]
    pub helper: Option<Helper>,

    /// WireGuard configuration file (wg-quick format, plus `Route =` lines).
    #[arg(
        long,
        value_name = "PATH",
        required_unless_present_any = ["doctor", "internal_engine"]
    )]
    pub config: Option<PathBuf>,

    /// Start a tunnel engine of our own even when one with the same private
    /// key runs already (its WireGuard session and ours then fight over the
    /// peer, which follows the newest handshake and endpoint).
    #[arg(long = "no-share")]
    pub no_share: bool,

    /// INTERNAL: run as a shared tunnel engine, reporting readiness on
    /// this descriptor (see `engine_proc`).
    #[arg(long = "internal-engine", hide = true, value_name = "FD")]
    pub internal_engine: Option<i32>,

    /// INTERNAL: the engine's control socket.
    #[arg(long = "engine-socket", hide = true, requires = "internal_engine")]
    pub engine_socket: Option<PathBuf>,

    /// INTERNAL: the engine's name.
    #[arg(long = "engine-name", hide = true, requires = "internal_engine")]
    pub engine_name: Option<String>,

    /// INTERNAL: the engine keeps running without attached programs.
    #[arg(long = "engine-persist", hide = true, requires = "internal_engine")]
    pub engine_persist: bool,

    /// Route all traffic through the peer with this tunnel IP.
    #[arg(long = "exit-node", value_name = "IP")]
    pub exit_node: Option<IpAddr>,

    /// Route a subnet through a peer: CIDR:PEER_IP (repeatable).
    #[arg(long = "route", value_name = "CIDR:PEER_IP")]
    pub routes: Vec<RouteArg>,

    /// How the program's socket calls are intercepted: auto (the LD_PRELOAD
    /// shim for dynamically linked programs it can enter, seccomp for
    /// static, Go and musl programs), preload (the shim only; programs it
    /// cannot enter are refused), or seccomp (seccomp user notification for
    /// every program; Linux 5.9 or newer).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = Mode::Auto)]
    pub mode: Mode,

    /// Log level.
    #[arg(long = "log-level", value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,

    /// Write logs to this file instead of stderr.
    #[arg(long = "log-file", value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    /// Check the setup and say what to fix: the shim next to wrapguard,
    /// the config (with --config), and whether the shim can enter PROGRAM
    /// (or the command after --). Exits 1 if any check fails.
    #[arg(long, value_name = "PROGRAM", num_args = 0..=1, conflicts_with = "self_test")]
    pub doctor: Option<Option<OsString>>,

    /// Start the tunnel, complete a handshake with every peer that has an
    /// Endpoint, make one intercepted connection through it from a child
    /// process, report each step and exit (1 if any step fails).
    #[arg(long = "self-test")]
    pub self_test: bool,

    /// With --self-test: the tunnel address and port the child connects to
    /// (default: the first peer's tunnel address, port 9). A refused
    /// connection still proves the path.
    #[arg(
        long = "self-test-connect",
        value_name = "IP:PORT",
        requires = "self_test"
    )]
    pub self_test_connect: Option<std::net::SocketAddr>,

    /// With --self-test: how long to wait for each handshake and for the
    /// connection, in seconds.
    #[arg(
        long = "self-test-timeout",
        value_name = "SECS",
        default_value_t = 10,
        requires = "self_test",
        hide = true
    )]
    pub self_test_timeout: u64,

    /// TESTS ONLY: carry flows to these "tunnel" prefixes to a host loopback
    /// address instead of a WireGuard peer: PREFIX=LOOPBACK_IP (repeatable).
    #[arg(long = "test-backend-map", hide = true, value_name = "CIDR=IP")]
    pub test_backend_map: Vec<MapArg>,

    /// TESTS ONLY: our tunnel address in the test backend.
    #[arg(long = "test-backend-addr", hide = true, default_value = "10.77.0.2")]
    pub test_backend_addr: IpAddr,

    /// TESTS ONLY: host address where the test backend exposes listeners
    /// as if they were reached from the tunnel.
    #[arg(long = "test-backend-inbound", hide = true)]
    pub test_backend_inbound: Option<IpAddr>,

    /// TESTS ONLY: the tunnel peer address inbound test flows appear from.
    #[arg(long = "test-backend-peer", hide = true, default_value = "10.77.0.1")]
    pub test_backend_peer: IpAddr,

    /// TESTS ONLY: the initiator rekeys when its session is this many
    /// seconds old instead of WireGuard's 120 (`REKEY_AFTER_TIME`), so a
    /// test can span several rekeys. Initiations stay at least 5 s apart.
    #[arg(long = "test-rekey-after-secs", hide = true, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=120))]
    pub test_rekey_after_secs: Option<u64>,

    /// TESTS ONLY: at most this many TCP sockets in the tunnel stack
    /// (default 65536); new connects past it fail with ENOBUFS and are
    /// counted (`flows_refused`), inbound SYNs are dropped (`syn_dropped`).
    #[arg(long = "test-max-flows", hide = true, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub test_max_flows: Option<u64>,

    /// TESTS ONLY: data retransmissions before a tunnel TCP connection
    /// times out (default 15, as Linux's tcp_retries2), so a test can see a
    /// vanished peer time out in seconds instead of many minutes.
    #[arg(long = "test-tcp-data-retries", hide = true, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=15))]
    pub test_tcp_data_retries: Option<u32>,

    /// Congestion control of the tunnel's TCP connections: cubic (Linux's
    /// default) or bbr (holds its rate on lossy and long paths); also
    /// `TcpCongestion =` in [WrapGuard]. Default: the host's
    /// net.ipv4.tcp_congestion_control if it is one of these, else cubic.
    #[arg(long = "tcp-congestion", value_name = "NAME", value_enum)]
    pub tcp_congestion: Option<TcpCongestionArg>,

    /// SOCKS5 proxy into the tunnel on ADDR:PORT (CONNECT, UDP ASSOCIATE;
    /// names resolved through the tunnel with `DNS =`); repeatable.
    #[arg(long = "socks5", value_name = "ADDR:PORT")]
    pub socks5: Vec<std::net::SocketAddr>,

    /// HTTP proxy into the tunnel on ADDR:PORT (CONNECT and absolute-URI
    /// requests); repeatable.
    #[arg(long = "http-proxy", value_name = "ADDR:PORT")]
    pub http_proxy: Vec<std::net::SocketAddr>,

    /// Local port forward into the tunnel:
    /// tcp|udp:LISTEN_ADDR:PORT:TARGET:PORT (target an address or a name);
    /// repeatable.
    #[arg(long = "forward", value_name = "SPEC", value_parser = parse_forward)]
    pub forward: Vec<proxy::spec::Forward>,

    /// Reverse forward: peers reaching our tunnel address at TUNNEL_PORT
    /// reach LOCAL_ADDR:PORT: tcp|udp:TUNNEL_PORT:LOCAL_ADDR:PORT;
    /// repeatable.
    #[arg(long = "reverse", value_name = "SPEC", value_parser = parse_reverse)]
    pub reverse: Vec<proxy::spec::Reverse>,

    /// Proxy credentials, one user:password per line (mode 0600): the SOCKS5
    /// and HTTP proxies then require them.
    #[arg(long = "proxy-auth", value_name = "FILE")]
    pub proxy_auth: Option<PathBuf>,

    /// Allow proxy or forward listeners on non-loopback addresses without
    /// --proxy-auth (anyone who reaches them can use the tunnel).
    #[arg(long = "proxy-open")]
    pub proxy_open: bool,

    /// Let the proxies and forwards reach destinations not routed into the
    /// tunnel through the host network (refused by default).
    #[arg(long = "proxy-direct")]
    pub proxy_direct: bool,

    /// The program to run, and its arguments (required unless --doctor,
    /// --self-test or a front-end is given: see `main`).
    #[arg(
        last = true,
        num_args = 1..,
        value_name = "COMMAND"
    )]
    pub command: Vec<OsString>,
}

fn parse_forward(s: &str) -> Result<proxy::spec::Forward, String> {
    proxy::spec::Forward::parse(s)
        .map_err(|e| format!("{e} (expected tcp|udp:LISTEN_ADDR:PORT:TARGET:PORT)"))
}

fn parse_reverse(s: &str) -> Result<proxy::spec::Reverse, String> {
    proxy::spec::Reverse::parse(s)
        .map_err(|e| format!("{e} (expected tcp|udp:TUNNEL_PORT:LOCAL_ADDR:PORT)"))
}

/// `wrapguard up|exec|status|down|ls|genkey|pubkey|completions`.
#[derive(Debug, Subcommand)]
pub enum Helper {
    /// Start a tunnel in the background and return once the first
    /// handshake is done; programs then run on it with `exec`.
    Up {
        /// WireGuard configuration file.
        #[arg(long, value_name = "PATH")]
        config: PathBuf,
        /// The tunnel's name (default: the config file's name without `.conf`).
        #[arg(long)]
        name: Option<String>,
        /// Route all traffic through the peer with this tunnel IP.
        #[arg(long = "exit-node", value_name = "IP")]
        exit_node: Option<IpAddr>,
        /// Route a subnet through a peer: CIDR:PEER_IP (repeatable).
        #[arg(long = "route", value_name = "CIDR:PEER_IP")]
        routes: Vec<RouteArg>,
        /// The engine's log level.
        #[arg(long = "log-level", value_enum, default_value_t = LogLevel::Info)]
        log_level: LogLevel,
        /// The engine's log file (default: NAME.log in the tunnels' directory).
        #[arg(long = "log-file", value_name = "PATH")]
        log_file: Option<PathBuf>,
        /// How long to wait for each peer's handshake, in seconds.
        #[arg(long, value_name = "SECS", default_value_t = 10)]
        timeout: u64,
        /// As for the main form.
        #[arg(long = "tcp-congestion", value_name = "NAME", value_enum)]
        tcp_congestion: Option<TcpCongestionArg>,
    },
    /// Run a program on a running tunnel (by name, or the one of a config).
    Exec {
        /// The tunnel's name (as `wrapguard ls` shows).
        #[arg(required_unless_present = "config", conflicts_with = "config")]
        name: Option<String>,
        /// Or: the config file (attaches, or starts the tunnel).
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// As for the main form.
        #[arg(long, value_enum, value_name = "MODE", default_value_t = Mode::Auto)]
        mode: Mode,
        /// Log level.
        #[arg(long = "log-level", value_enum, default_value_t = LogLevel::Info)]
        log_level: LogLevel,
        /// Write logs to this file instead of stderr.
        #[arg(long = "log-file", value_name = "PATH")]
        log_file: Option<PathBuf>,
        /// The program to run, and its arguments.
        #[arg(last = true, required = true, num_args = 1.., value_name = "COMMAND")]
        command: Vec<OsString>,
    },
    /// Print the running tunnels' peers, programs and counters, live.
    Status {
        /// Only this tunnel.
        name: Option<String>,
        /// As JSON (one object for a named tunnel, else an array).
        #[arg(long)]
        json: bool,
        /// Every tunnel TCP connection instead, like `ss -ti`: program,
        /// addresses, state, congestion window, RTT, in flight,
        /// retransmissions, delivery rate and what limits the sender.
        #[arg(long)]
        flows: bool,
    },
    /// End a tunnel: its programs' tunnel connections are cut.
    Down {
        /// The tunnel's name.
        #[arg(required_unless_present = "config", conflicts_with = "config")]
        name: Option<String>,
        /// Or: the config file of the tunnel.
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// List the running tunnels.
    Ls {
        /// As a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Print a new base64 private key (like `wg genkey`).
    Genkey,
    /// Read a private key on stdin, print its public key (like `wg pubkey`).
    Pubkey,
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `--tcp-congestion` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TcpCongestionArg {
    /// CUBIC with PRR fast recovery (RFC 9438), Linux's default.
    Cubic,
    /// BBR v1: paced at the measured bottleneck bandwidth.
    Bbr,
}

impl TcpCongestionArg {
    /// The engine's value.
    pub fn algorithm(self) -> engine::tunnel::TcpCongestion {
        match self {
            TcpCongestionArg::Cubic => engine::tunnel::TcpCongestion::Cubic,
            TcpCongestionArg::Bbr => engine::tunnel::TcpCongestion::Bbr,
        }
    }
}

/// `--mode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// The shim where it can enter the program, seccomp otherwise (default).
    Auto,
    /// The LD_PRELOAD shim only.
    Preload,
    /// Seccomp user notification only.
    Seccomp,
}

impl Cli {
    /// The command line's part of the tunnel's meaning, to compare with a
    /// running engine's.
    pub fn overrides(&self) -> anyhow::Result<engine::session::facts::Overrides> {
        let t = self.tunnel_options()?;
        let mut test_flags = Vec::new();
        if let Some(v) = self.test_rekey_after_secs {
            test_flags.push(format!("--test-rekey-after-secs={v}"));
        }
        if let Some(v) = self.test_max_flows {
            test_flags.push(format!("--test-max-flows={v}"));
        }
        if let Some(v) = self.test_tcp_data_retries {
            test_flags.push(format!("--test-tcp-data-retries={v}"));
        }
        Ok(engine::session::facts::Overrides {
            exit_node: t.exit_node,
            routes: t.routes,
            test_flags,
            tcp_congestion: t.tcp_congestion,
        })
    }

    /// The arguments that start a shared engine process for this command
    /// line's tunnel (`config` made absolute by the caller).
    pub fn engine_args(&self, config: &std::path::Path) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["--config".into(), config.into()];
        a.push(format!("--log-level={}", self.log_level.name()).into());
        if let Some(f) = &self.log_file {
            a.push("--log-file".into());
            a.push(f.into());
        }
        if let Some(ip) = self.exit_node {
            a.push(format!("--exit-node={ip}").into());
        }
        if let Some(c) = self.tcp_congestion {
            a.push(format!("--tcp-congestion={}", c.algorithm().name()).into());
        }
        for r in &self.routes {
            a.push(format!("--route={}:{}", r.prefix, r.peer).into());
        }
        if let Some(v) = self.test_rekey_after_secs {
            a.push(format!("--test-rekey-after-secs={v}").into());
        }
        if let Some(v) = self.test_max_flows {
            a.push(format!("--test-max-flows={v}").into());
        }
        if let Some(v) = self.test_tcp_data_retries {
            a.push(format!("--test-tcp-data-retries={v}").into());
        }
        a
    }

    /// What the engine needs from the command line to start the tunnel.
    pub fn tunnel_options(&self) -> anyhow::Result<engine::tunnel::TunnelOptions> {
        let config = self
            .config
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no config given; pass --config wg0.conf"))?;
        let tcp_congestion = match self.tcp_congestion {
            Some(c) => Some(c.algorithm()),
            None => section_congestion(&config)?,
        };
        Ok(engine::tunnel::TunnelOptions {
            config,
            tcp_congestion,
            exit_node: self.exit_node,
            routes: self
                .routes
                .iter()
                .map(|r| {
                    let text = format!("{}:{}", r.prefix, r.peer);
                    router::RouteFlag::parse(&text)
                        .map_err(|e| anyhow::anyhow!("--route={text}: {e}"))
                })
                .collect::<anyhow::Result<_>>()?,
            test_rekey_after_secs: self.test_rekey_after_secs,
            test_max_flows: self.test_max_flows,
            test_tcp_data_retries: self.test_tcp_data_retries,
        })
    }
}

/// `TcpCongestion =` of the config's `[WrapGuard]` section, if set (a
/// config that cannot be read is reported by the engine's own reading).
fn section_congestion(
    config: &std::path::Path,
) -> anyhow::Result<Option<engine::tunnel::TcpCongestion>> {
    let Ok(text) = std::fs::read_to_string(config) else {
        return Ok(None);
    };
    let keys = proxy::conf_section::parse(&text)
        .map_err(|e| anyhow::anyhow!("{}:{e}", config.display()))?;
    Ok(keys
        .tcp_congestion
        .as_deref()
        .and_then(engine::tunnel::TcpCongestion::from_name))
}

/// `--log-level` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Only errors.
    Error,
    /// Warnings and errors.
    Warn,
    /// General information (default).
    Info,
    /// Every intercepted call and flow.
    Debug,
}

impl LogLevel {
    /// The `--log-level` value (`error`, `warn`, `info`, `debug`).
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

/// An IP prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub len: u8,
}

impl Cidr {
    /// The same prefix as an [`ipnet::IpNet`] (what the engine takes).
    pub fn net(&self) -> ipnet::IpNet {
        // The length was checked against the family when parsed.
        ipnet::IpNet::new(self.addr, self.len).unwrap_or_else(|_| ipnet::IpNet::from(self.addr))
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR (e.g. 10.0.0.0/8)"))?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{a:?} is not an IP address"))?;
        let len: u8 = l
            .parse()
            .map_err(|_| format!("{l:?} is not a prefix length"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(format!("prefix length {len} is longer than {max}"));
        }
        Ok(Cidr { addr, len })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// `--route=CIDR:PEER_IP`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteArg {
    /// Destination prefix.
    pub prefix: Cidr,
    /// Tunnel IP of the peer that carries it.
    pub peer: IpAddr,
}

impl FromStr for RouteArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // The prefix length ends the CIDR, so IPv6 colons are unambiguous.
        let slash = s
            .find('/')
            .ok_or_else(|| format!("{s:?} is not CIDR:PEER_IP"))?;
        let colon = s[slash..]
            .find(':')
            .map(|i| i + slash)
            .ok_or_else(|| format!("{s:?} is not CIDR:PEER_IP"))?;
        let prefix: Cidr = s[..colon].parse()?;
        let peer: IpAddr = s[colon + 1..]
            .parse()
            .map_err(|_| format!("{:?} is not a peer IP", &s[colon + 1..]))?;
        Ok(RouteArg { prefix, peer })
    }
}

/// `--test-backend-map=CIDR=IP`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapArg {
    /// "Tunnel" prefix.
    pub prefix: Cidr,
    /// Host address its flows are carried to.
    pub target: IpAddr,
}

impl FromStr for MapArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (p, t) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?} is not CIDR=IP"))?;
        Ok(MapArg {
            prefix: p.parse()?,
            target: t
                .parse()
                .map_err(|_| format!("{t:?} is not an IP address"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_routes_and_cidrs() {
        let r: RouteArg = "192.168.0.0/16:10.150.0.3".parse().expect("v4 route");
        assert_eq!(r.prefix.to_string(), "192.168.0.0/16");
        assert_eq!(r.peer.to_string(), "10.150.0.3");
        let r: RouteArg = "fd00::/64:fd00::1".parse().expect("v6 route");
        assert_eq!(r.prefix.len, 64);
        assert_eq!(r.peer.to_string(), "fd00::1");
        assert!("10.0.0.0/33:1.1.1.1".parse::<RouteArg>().is_err());
        assert!("10.0.0.0:1.1.1.1".parse::<RouteArg>().is_err());
        let c: Cidr = "10.77.0.0/16".parse().expect("cidr");
        assert!(c
            .net()
            .contains(&"10.77.200.1".parse::<IpAddr>().expect("ip")));
        assert!(!c
            .net()
            .contains(&"10.78.0.1".parse::<IpAddr>().expect("ip")));
        assert!(!c.net().contains(&"::1".parse::<IpAddr>().expect("ip")));
        let all: Cidr = "0.0.0.0/0".parse().expect("cidr");
        assert!(all
            .net()
            .contains(&"8.8.8.8".parse::<IpAddr>().expect("ip")));
    }

    #[test]
    fn command_after_double_dash() {
        let cli = Cli::try_parse_from([
            "wrapguard",
            "--config",
            "x.conf",
            "--",
            "curl",
            "-s",
            "--help",
        ])
        .expect("parses");
        assert_eq!(cli.command, vec!["curl", "-s", "--help"]);
        assert_eq!(cli.log_level, LogLevel::Info);
        // Parses; `main` then requires a command unless a front-end
        // (flag or `[WrapGuard]` section), --doctor or --self-test.
        let bare = Cli::try_parse_from(["wrapguard", "--config", "x.conf"]).expect("parses");
        assert!(bare.command.is_empty());
        assert!(Cli::try_parse_from(["wrapguard", "--", "curl"]).is_err());
    }

    #[test]
    fn doctor_self_test_and_helpers() {
        let cli = Cli::try_parse_from(["wrapguard", "--doctor"]).expect("bare doctor");
        assert_eq!(cli.doctor, Some(None));
        assert!(cli.config.is_none());
        let cli = Cli::try_parse_from(["wrapguard", "--doctor", "curl", "--config", "x.conf"])
            .expect("doctor with program");
        assert_eq!(cli.doctor, Some(Some("curl".into())));
        let cli = Cli::try_parse_from(["wrapguard", "--doctor", "--", "curl", "-s"])
            .expect("doctor with command");
        assert_eq!(cli.doctor, Some(None));
        assert_eq!(cli.command, vec!["curl", "-s"]);
        let cli = Cli::try_parse_from(["wrapguard", "--config", "x.conf", "--self-test"])
            .expect("self-test");
        assert!(cli.self_test && cli.command.is_empty());
        assert!(Cli::try_parse_from(["wrapguard", "--self-test"]).is_err());
        assert!(Cli::try_parse_from(["wrapguard", "--doctor", "--self-test"]).is_err());
        let cli = Cli::try_parse_from(["wrapguard", "completions", "bash"]).expect("completions");
        assert!(matches!(cli.helper, Some(Helper::Completions { .. })));
        let cli = Cli::try_parse_from(["wrapguard", "genkey"]).expect("genkey");
        assert!(matches!(cli.helper, Some(Helper::Genkey)));
        // After `--`, a helper's name is the program to run.
        let cli = Cli::try_parse_from(["wrapguard", "--config", "x", "--", "genkey"])
            .expect("genkey as a program");
        assert!(cli.helper.is_none());
        assert_eq!(cli.command, vec!["genkey"]);
    }
}
