//! `wrapguard --config … --self-test`: proves the whole path works, step
//! by step, and says which step fails and why:
//!
//! 1. the shim is next to the binary;
//! 2. the tunnel starts (config, endpoints, UDP port);
//! 3. a handshake completes with every peer that has an `Endpoint`
//!    (reported with its round trip; bounded wait, `--self-test-timeout`);
//! 4. a child process — wrapguard itself in a hidden probe mode
//!    ([`crate::probe`]), with the shim preloaded exactly as a wrapped
//!    program gets it — connects to a peer's tunnel address; the step
//!    passes if the shim loaded, the engine saw the flow (it was
//!    intercepted, not sent to the host network) and the peer's side
//!    answered (connected, or refused: a reset also proves the path).
//!
//! One `ok|warn|fail` line per step on stdout, then a summary; exit 1 if
//! any step failed.

use crate::cli::Cli;
use crate::probe::{ConnectOutcome, ProbeReport, PROBE_ARG};
use crate::report::{peer_label, Check, Level};
use anyhow::{Context, Result};
use control::{Proto, RouteDecision};
use engine::{BackendInfo, Errno, FlowBackend, InboundSink, ListenSpec, OutboundTcp};
use ipnet::IpNet;
use router::Config;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Port the probe connects to when `--self-test-connect` is not given
/// (discard; usually closed, and a refusal proves the path as well).
const DEFAULT_PORT: u16 = 9;

/// A backend that remembers which connections it was asked to open, so
/// the self-test knows the shim handed the child's connect to the engine.
struct Watch {
    inner: Arc<dyn FlowBackend>,
    opened: Mutex<Vec<SocketAddr>>,
}

impl FlowBackend for Watch {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn info(&self) -> BackendInfo {
        self.inner.info()
    }
    fn is_local_address(&self, ip: IpAddr) -> bool {
        self.inner.is_local_address(ip)
    }
    fn route(&self, dst: SocketAddr, proto: Proto) -> RouteDecision {
        self.inner.route(dst, proto)
    }
    fn open_tcp(&self, dst: SocketAddr) -> Result<OutboundTcp, Errno> {
        if let Ok(mut o) = self.opened.lock() {
            o.push(dst);
        }
        self.inner.open_tcp(dst)
    }
    fn listen(&self, spec: ListenSpec, sink: InboundSink) -> Result<(), Errno> {
        self.inner.listen(spec, sink)
    }
    fn dns_udp(&self, server: SocketAddr, payload: Vec<u8>) -> Result<engine::DnsAnswer, Errno> {
        self.inner.dns_udp(server, payload)
    }
    fn active_flows(&self) -> usize {
        self.inner.active_flows()
    }
    fn settle(&self) {
        self.inner.settle()
    }
    fn status(&self) -> Vec<engine::PeerStatus> {
        self.inner.status()
    }
    fn handshake(&self, peer: usize) -> Option<engine::HandshakeWait> {
        self.inner.handshake(peer)
    }
}

/// Prints checks as they come and keeps them for the summary.
struct Steps(Vec<Check>);

impl Steps {
    fn push(&mut self, c: Check) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{c}");
        let _ = out.flush();
        self.0.push(c);
    }

    fn finish(self) -> i32 {
        let failed = self.0.iter().filter(|c| c.level == Level::Fail).count();
        let mut out = std::io::stdout().lock();
        if failed == 0 {
            let _ = writeln!(out, "self-test: passed ({} steps)", self.0.len());
            0
        } else {
            let _ = writeln!(
                out,
                "self-test: FAILED ({failed} of {} steps failed)",
                self.0.len()
            );
            1
        }
    }
}

/// Runs the self-test; returns the exit code. `Err` only for local
/// failures outside the steps (no runtime, no control directory).
pub fn run(cli: &Cli) -> Result<i32> {
    let mut steps = Steps(Vec::new());
    let wait = Duration::from_secs(cli.self_test_timeout.max(1));
    let config_path = cli.config.clone().unwrap_or_default();
    let shown = config_path.display().to_string();

    // 1. The shim.
    let shim = match crate::shim::shim_path() {
        Ok(p) => {
            steps.push(Check::ok(format!("shim {}", p.display())));
            p
        }
        Err(e) => {
            steps.push(Check::fail(
                format!("{e:#}"),
                "wrapguard --doctor says more; cargo build --release builds both files",
            ));
            return Ok(steps.finish());
        }
    };

    // 2. The tunnel.
    let backend = match cli.tunnel_options().and_then(|o| engine::tunnel::start(&o)) {
        Ok(b) => b,
        Err(e) => {
            steps.push(Check::fail(
                format!("tunnel did not start: {e:#}"),
                format!("wrapguard --doctor --config {shown} checks the config in detail"),
            ));
            return Ok(steps.finish());
        }
    };
    let info = backend.info();
    let config = match Config::from_path(&config_path) {
        Ok(p) => p.config,
        Err(e) => {
            steps.push(Check::fail(format!("{e}"), "fix the config"));
            return Ok(steps.finish());
        }
    };
    steps.push(Check::ok(format!(
        "tunnel started: address {}, {} peer{}",
        if info.interface.is_empty() {
            "(none)".to_string()
        } else {
            info.interface.join(", ")
        },
        config.peers.len(),
        if config.peers.len() == 1 { "" } else { "s" }
    )));
    let watch = Arc::new(Watch {
        inner: Arc::new(backend),
        opened: Mutex::new(Vec::new()),
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let dir = crate::ctldir::ControlDir::create()?;
    let r = rt.block_on(async {
        // 3. Handshakes, all at once.
        let labels: Vec<String> = config
            .peers
            .iter()
            .map(|p| peer_label(&noise::PublicKey::from_bytes(*p.public_key.as_bytes()).to_base64()))
            .collect();
        let ours = noise::PrivateKey::from_bytes(*config.interface.private_key.as_bytes())
            .public_key()
            .to_base64();
        let mut pending = Vec::new();
        for (i, p) in config.peers.iter().enumerate() {
            let Some(ep) = &p.endpoint else {
                steps.push(Check::warn(
                    format!("peer {} has no Endpoint: no handshake tried", labels[i]),
                    "it becomes reachable once it contacts us; add Endpoint = host:port to test it",
                ));
                continue;
            };
            let Some(fut) = watch.handshake(i) else {
                continue;
            };
            let ep = ep.to_string();
            pending.push((i, ep, tokio::spawn(tokio::time::timeout(wait, fut))));
        }
        let mut handshaken = Vec::new();
        for (i, ep, task) in pending {
            match task.await {
                Ok(Ok(rtt)) => {
                    handshaken.push(i);
                    steps.push(Check::ok(format!(
                        "handshake with peer {} at {ep}: {:.1} ms round trip",
                        labels[i],
                        rtt.as_secs_f64() * 1000.0
                    )));
                }
                _ => steps.push(Check::fail(
                    format!(
                        "handshake with peer {} at {ep}: handshake timeout, no answer within {} s",
                        labels[i],
                        wait.as_secs()
                    ),
                    format!(
                        "check that the peer runs and lists our public key {} with our address in its AllowedIPs, \
                         that UDP to {ep} is not blocked, and that this [Peer]'s PublicKey is the peer's",
                        ours.as_str()
                    ),
                )),
            }
        }

        // 4. An intercepted connection from a child under the shim.
        let target = match cli.self_test_connect {
            Some(t) => Some(t),
            None => handshaken.first().and_then(|&i| {
                guess_peer_address(&config.peers[i].allowed_ips, &config.interface.addresses)
                    .map(|ip| SocketAddr::new(ip, DEFAULT_PORT))
            }),
        };
        let Some(target) = target else {
            let why = if handshaken.is_empty() {
                "no peer completed a handshake"
            } else {
                "cannot tell the peer's tunnel address from its AllowedIPs"
            };
            steps.push(Check::warn(
                format!("intercepted connection not tried: {why}"),
                "pass --self-test-connect <peer tunnel IP>:<port> to choose the destination",
            ));
            return Ok::<(), anyhow::Error>(());
        };
        let sock = dir.socket_path();
        let listener = tokio::net::UnixListener::bind(&sock)
            .with_context(|| format!("cannot bind control socket {}", sock.display()))?;
        engine::bridge::spawn(
            listener,
            watch.clone(),
            Some(Arc::new(seccomp::Attacher)),
            None,
        );
        steps.push(connect_step(&shim, &sock, target, wait, &watch).await);
        Ok(())
    });
    rt.shutdown_background();
    drop(dir);
    r?;
    Ok(steps.finish())
}

/// Runs the probe child and judges what happened.
async fn connect_step(
    shim: &std::path::Path,
    sock: &std::path::Path,
    target: SocketAddr,
    wait: Duration,
    watch: &Watch,
) -> Check {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            return Check::fail(
                format!("cannot find the wrapguard binary to run the test child: {e}"),
                "run wrapguard from a normal file",
            )
        }
    };
    let child = tokio::process::Command::new(exe)
        .args([PROBE_ARG, "connect"])
        .arg(shim)
        .arg(target.to_string())
        .arg(wait.as_millis().to_string())
        .env("LD_PRELOAD", crate::shim::ld_preload_value(shim))
        .env(control::ENV_CONTROL, sock)
        .env(control::ENV_PRELOAD, shim)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(wait + Duration::from_secs(10), child).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            return Check::fail(
                format!("cannot start the test child: {e}"),
                "check that the wrapguard binary is executable",
            )
        }
        Err(_) => {
            return Check::fail(
                format!("the test child connecting to {target} did not finish"),
                "run with --log-level=debug to see where it stops",
            )
        }
    };
    let report = ProbeReport::parse(&String::from_utf8_lossy(&out.stdout));
    if !report.shim_loaded {
        let why = String::from_utf8_lossy(&out.stderr)
            .lines()
            .find(|l| l.contains("ld.so"))
            .map(|l| format!(": {}", l.trim()))
            .unwrap_or_default();
        return Check::fail(
            format!("the shim did not load into the test child{why}"),
            "run wrapguard --doctor to check the shim",
        );
    }
    let intercepted = watch
        .opened
        .lock()
        .map(|o| {
            o.iter()
                .any(|d| d.ip() == target.ip() && d.port() == target.port())
        })
        .unwrap_or(false);
    let what = format!("intercepted connect to {target}");
    match (intercepted, report.connect) {
        (false, Some(outcome)) => Check::fail(
            format!("connect to {target} from the test child was not intercepted (the engine never saw it; outcome: {outcome:?})"),
            format!("is {} inside a peer's AllowedIPs (or a Route)? Otherwise it uses the host network", target.ip()),
        ),
        (_, None) => Check::fail(
            format!("the test child made no connection to {target}"),
            "run with --log-level=debug and report it as a bug",
        ),
        (true, Some(ConnectOutcome::Connected(local))) => Check::ok(format!(
            "{what}: connected through the tunnel (the program saw itself as {local})"
        )),
        (true, Some(ConnectOutcome::Refused)) => Check::ok(format!(
            "{what}: refused by the far side through the tunnel — nothing listens on port {}, but the path works",
            target.port()
        )),
        (true, Some(ConnectOutcome::Timeout)) => Check::fail(
            format!("{what}: went into the tunnel but no answer within {} s", wait.as_secs()),
            format!(
                "the peer does not answer for {}: check that it is the peer's tunnel address, its firewall, \
                 and that the peer routes our address back through WireGuard (or pick a target with --self-test-connect)",
                target.ip()
            ),
        ),
        (true, Some(ConnectOutcome::Error(n, text))) => Check::fail(
            format!("{what}: failed through the tunnel: {text}"),
            if n == libc::EHOSTUNREACH {
                "the handshake with the peer for this address failed; see the handshake lines above".to_string()
            } else if n == libc::ENETUNREACH {
                "no peer routes this address for our address family; check AllowedIPs and Address".to_string()
            } else {
                "run with --log-level=debug for details".to_string()
            },
        ),
    }
}

/// A likely tunnel address of the peer: a host entry of its AllowedIPs,
/// else the first address of the subnet we share with it that is not ours.
fn guess_peer_address(allowed: &[IpNet], ours: &[IpNet]) -> Option<IpAddr> {
    let mine: Vec<IpAddr> = ours.iter().map(|n| n.addr()).collect();
    let families = |ip: &IpAddr| mine.iter().any(|m| m.is_ipv4() == ip.is_ipv4());
    // IPv4 first when we have it: the common case.
    let mut nets: Vec<&IpNet> = allowed.iter().collect();
    nets.sort_by_key(|n| n.addr().is_ipv6());
    for n in &nets {
        if n.prefix_len() == n.max_prefix_len() && !mine.contains(&n.addr()) && families(&n.addr())
        {
            return Some(n.addr());
        }
    }
    for n in &nets {
        if !mine.iter().any(|m| n.contains(m)) {
            continue;
        }
        if let Some(ip) = n.hosts().take(16).find(|h| !mine.contains(h)) {
            return Some(ip);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().expect("net")).collect()
    }

    #[test]
    fn guesses_the_peer_address() {
        let ours = nets(&["10.77.0.2/24", "fd77::2/64"]);
        assert_eq!(
            guess_peer_address(&nets(&["10.77.0.0/24", "fd77::/64"]), &ours),
            Some("10.77.0.1".parse().expect("ip"))
        );
        assert_eq!(
            guess_peer_address(&nets(&["0.0.0.0/0", "10.77.0.9/32"]), &ours),
            Some("10.77.0.9".parse().expect("ip"))
        );
        let ours1 = nets(&["10.77.0.1/24"]);
        assert_eq!(
            guess_peer_address(&nets(&["10.77.0.0/24"]), &ours1),
            Some("10.77.0.2".parse().expect("ip"))
        );
        assert_eq!(guess_peer_address(&nets(&["192.168.0.0/16"]), &ours), None);
        assert_eq!(
            guess_peer_address(&nets(&["fd77::5/128"]), &nets(&["10.1.0.2/24"])),
            None
        );
    }
}
