//! The engine's stub resolver (when the config has `DNS =`): answers the
//! shim's `Resolve` requests from `/etc/hosts` first, then by driving a
//! [`dns::Lookup`] whose queries go to the `DNS =` servers *through the
//! tunnel* — UDP through the stack's UDP sockets ([`FlowBackend::dns_udp`]),
//! TCP (after a truncated answer) through a tunnel TCP flow
//! ([`FlowBackend::open_tcp`]). It never asks the host's resolver: a server
//! that cannot be reached gives `TryAgain`.

use super::{Errno, FlowBackend};
use control::{DnsInfo, ResolveKind, ResolveReply, ResolveRequest, ResolveStatus};
use dns::hosts::Hosts;
use dns::{Event, Lookup, LookupConfig, LookupError, Outcome, Query, Step, Transmit};
use rand_core::{OsRng, RngCore};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, warn};

/// Environment variable naming the hosts file to use instead of
/// `/etc/hosts` (tests).
pub const ENV_HOSTS_FILE: &str = "WRAPGUARD_HOSTS_FILE";
/// Environment variable naming the resolv.conf whose nameservers are
/// redirected, instead of `/etc/resolv.conf` (tests).
pub const ENV_RESOLV_CONF: &str = "WRAPGUARD_RESOLV_CONF";
/// Time one query waits for its answer.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// Rounds over the servers.
const ATTEMPTS: usize = 2;

/// The resolver service.
pub struct DnsService {
    config: LookupConfig,
    hosts_path: PathBuf,
    host_servers: Vec<IpAddr>,
    backend: Arc<dyn FlowBackend>,
}

impl DnsService {
    /// The service for `backend`, or `None` if its config has no `DNS =`
    /// server (the host then resolves names, untouched).
    pub fn new(backend: Arc<dyn FlowBackend>) -> Option<Arc<DnsService>> {
        let info = backend.info();
        if info.dns.is_empty() {
            return None;
        }
        let hosts_path = std::env::var_os(ENV_HOSTS_FILE)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/etc/hosts"));
        let resolv = std::env::var_os(ENV_RESOLV_CONF)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/etc/resolv.conf"));
        let mut host_servers = vec![dns::resolv_conf::SYSTEMD_RESOLVED];
        if let Ok(text) = std::fs::read_to_string(&resolv) {
            for ip in dns::resolv_conf::nameservers(&text) {
                // A host nameserver that is itself a tunnel DNS server
                // needs no redirect.
                if !host_servers.contains(&ip) && !info.dns.contains(&ip) {
                    host_servers.push(ip);
                }
            }
        }
        host_servers.truncate(control::dns::MAX_HOST_NAMESERVERS);
        for server in &info.dns {
            let at = std::net::SocketAddr::new(*server, 53);
            if backend.route(at, control::Proto::Udp) != control::RouteDecision::Tunnel {
                warn!(
                    "DNS server {server} is not routed into the tunnel (no AllowedIPs or Route covers it): lookups sent to it will fail"
                );
            }
        }
        debug!(servers = ?info.dns, search = ?info.dns_search, redirected = ?host_servers, "names resolved through the tunnel");
        Some(Arc::new(DnsService {
            config: LookupConfig {
                servers: info.dns,
                search: info.dns_search,
                ndots: 1,
                timeout: QUERY_TIMEOUT,
                attempts: ATTEMPTS,
            },
            hosts_path,
            host_servers,
            backend,
        }))
    }

    /// What the shim needs to know (`Request::DnsInfo`).
    pub fn info(&self) -> DnsInfo {
        let mut host_servers = [None; control::dns::MAX_HOST_NAMESERVERS];
        for (slot, ip) in host_servers.iter_mut().zip(&self.host_servers) {
            *slot = Some(*ip);
        }
        DnsInfo {
            server: self.config.servers.first().copied(),
            host_servers,
        }
    }

    fn hosts(&self) -> Hosts {
        std::fs::read_to_string(&self.hosts_path)
            .map(|t| Hosts::parse(&t))
            .unwrap_or_default()
    }

    /// Answers one request.
    pub async fn resolve(&self, req: ResolveRequest) -> ResolveReply {
        let started = Instant::now();
        let name = String::from_utf8_lossy(req.name.as_bytes()).into_owned();
        let query = match req.kind {
            ResolveKind::Addr { v4, v6 } => {
                if let Some((canonical, addrs)) = self.hosts().lookup(&name, v4, v6) {
                    debug!(name = %name, addrs = ?addrs, "resolved from the hosts file");
                    return ResolveReply {
                        status: ResolveStatus::Ok,
                        name: canonical.into_bytes(),
                        addrs,
                        raw: Vec::new(),
                    };
                }
                Query::Addr {
                    name: name.clone(),
                    v4,
                    v6,
                }
            }
            ResolveKind::Reverse(ip) => {
                if let Some(n) = self.hosts().reverse(ip) {
                    return ResolveReply {
                        status: ResolveStatus::Ok,
                        name: n.as_bytes().to_vec(),
                        addrs: Vec::new(),
                        raw: Vec::new(),
                    };
                }
                Query::Reverse(ip)
            }
            ResolveKind::Raw {
                class,
                qtype,
                search,
            } => Query::Raw {
                name: name.clone(),
                class,
                qtype,
                search,
            },
        };
        let outcome = self.run(query).await;
        debug!(name = %name, kind = ?req.kind, outcome = ?summary(&outcome), ms = started.elapsed().as_millis() as u64, "dns lookup through the tunnel");
        to_reply(outcome)
    }

    async fn run(&self, query: Query) -> Outcome {
        let mut l = Lookup::new(query, &self.config, OsRng.next_u64());
        loop {
            match l.step() {
                Step::Send(t) => {
                    let ev = self.exchange(&t).await;
                    l.handle(ev);
                }
                Step::Done(o) => return o,
            }
        }
    }

    async fn exchange(&self, t: &Transmit) -> Event {
        let r = if t.tcp {
            tokio::time::timeout(self.config.timeout, self.tcp(t)).await
        } else {
            match self.backend.dns_udp(t.server, t.payload.clone()) {
                Err(_) => return Event::Unreachable,
                Ok(answer) => {
                    tokio::time::timeout(self.config.timeout, async {
                        answer.await.map_err(|_| libc::ECONNREFUSED)
                    })
                    .await
                }
            }
        };
        match r {
            Ok(Ok(bytes)) => Event::Response(bytes),
            Ok(Err(_)) => Event::Unreachable,
            Err(_) => Event::Timeout,
        }
    }

    /// One query over a tunnel TCP connection (RFC 1035 §4.2.2).
    async fn tcp(&self, t: &Transmit) -> Result<Vec<u8>, Errno> {
        let out = self.backend.open_tcp(t.server)?;
        let mut io = out.established.await?;
        let len = u16::try_from(t.payload.len()).map_err(|_| libc::EMSGSIZE)?;
        let mut msg = Vec::with_capacity(2 + t.payload.len());
        msg.extend_from_slice(&len.to_be_bytes());
        msg.extend_from_slice(&t.payload);
        io.write_all(&msg).await.map_err(|_| libc::ECONNRESET)?;
        let mut hdr = [0u8; 2];
        io.read_exact(&mut hdr)
            .await
            .map_err(|_| libc::ECONNRESET)?;
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(hdr))];
        io.read_exact(&mut answer)
            .await
            .map_err(|_| libc::ECONNRESET)?;
        let _ = io.shutdown().await;
        Ok(answer)
    }
}

fn summary(o: &Outcome) -> String {
    match o {
        Outcome::Addrs { canonical, addrs } => format!("{canonical} {addrs:?}"),
        Outcome::Name(n) => n.clone(),
        Outcome::Raw(r) => format!("{} bytes", r.len()),
        Outcome::Failed { error, .. } => format!("{error:?}"),
    }
}

fn to_reply(o: Outcome) -> ResolveReply {
    match o {
        Outcome::Addrs { canonical, addrs } => ResolveReply {
            status: ResolveStatus::Ok,
            name: canonical.into_bytes(),
            addrs,
            raw: Vec::new(),
        },
        Outcome::Name(n) => ResolveReply {
            status: ResolveStatus::Ok,
            name: n.into_bytes(),
            addrs: Vec::new(),
            raw: Vec::new(),
        },
        Outcome::Raw(raw) => ResolveReply {
            status: ResolveStatus::Ok,
            name: Vec::new(),
            addrs: Vec::new(),
            raw,
        },
        Outcome::Failed { error, raw } => ResolveReply {
            status: match error {
                LookupError::NxDomain => ResolveStatus::NxDomain,
                LookupError::NoData => ResolveStatus::NoData,
                LookupError::TryAgain => ResolveStatus::TryAgain,
                LookupError::NoRecovery => ResolveStatus::NoRecovery,
            },
            name: Vec::new(),
            addrs: Vec::new(),
            raw: raw.unwrap_or_default(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BackendInfo, DnsAnswer, InboundSink, ListenSpec, OutboundTcp};
    use control::RouteDecision;
    use control::{Proto, QueryName};
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A backend whose "tunnel" DNS server answers A queries for
    /// `known.test` with 10.77.0.1 and NXDOMAIN otherwise, or is
    /// unreachable; it counts the queries it carries.
    struct Fake {
        reachable: bool,
        queries: AtomicUsize,
    }

    impl FlowBackend for Fake {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn info(&self) -> BackendInfo {
            BackendInfo {
                dns: vec!["10.77.0.1".parse().expect("ip")],
                dns_search: vec!["corp.test".into()],
                ..BackendInfo::default()
            }
        }
        fn route(&self, _dst: SocketAddr, _proto: Proto) -> RouteDecision {
            RouteDecision::Tunnel
        }
        fn open_tcp(&self, _dst: SocketAddr) -> Result<OutboundTcp, Errno> {
            Err(libc::ECONNREFUSED)
        }
        fn listen(&self, _spec: ListenSpec, _sink: InboundSink) -> Result<(), Errno> {
            Ok(())
        }
        fn dns_udp(&self, server: SocketAddr, payload: Vec<u8>) -> Result<DnsAnswer, Errno> {
            assert_eq!(server, "10.77.0.1:53".parse().expect("sa"));
            self.queries.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = tokio::sync::oneshot::channel();
            if self.reachable {
                let mut r = payload.clone();
                r[2] |= 0x80; // QR
                let known = payload.windows(5).any(|w| w == b"known");
                if known && r[r.len() - 3] == 1 {
                    r[7] = 1; // ANCOUNT
                    r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 77, 0, 1]);
                } else {
                    r[3] |= 3; // NXDOMAIN
                }
                let _ = tx.send(r);
            } // else: dropped, as the engine does on ICMP unreachable
            Ok(rx)
        }
    }

    fn service(reachable: bool, hosts: &str) -> (Arc<DnsService>, Arc<Fake>) {
        let fake = Arc::new(Fake {
            reachable,
            queries: AtomicUsize::new(0),
        });
        let dir = std::env::temp_dir().join(format!(
            "wrapguard-dns-unit-{}-{}",
            std::process::id(),
            reachable
        ));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let hosts_path = dir.join("hosts");
        std::fs::write(&hosts_path, hosts).expect("hosts");
        let mut s = DnsService::new(fake.clone()).expect("DNS = configured");
        Arc::get_mut(&mut s).expect("sole owner").hosts_path = hosts_path;
        (s, fake)
    }

    fn addr(name: &str) -> ResolveRequest {
        ResolveRequest {
            kind: ResolveKind::Addr {
                v4: true,
                v6: false,
            },
            name: QueryName::new(name.as_bytes()).expect("name"),
        }
    }

    #[tokio::test]
    async fn hosts_file_first_then_the_tunnel_server() {
        let (s, fake) = service(true, "10.9.9.9 printer.lan\n");
        let r = s.resolve(addr("printer.lan")).await;
        assert_eq!(r.status, ResolveStatus::Ok);
        assert_eq!(r.addrs, ["10.9.9.9".parse::<IpAddr>().expect("ip")]);
        assert_eq!(
            fake.queries.load(Ordering::Relaxed),
            0,
            "hosts file answered"
        );
        let r = s.resolve(addr("known")).await;
        assert_eq!(r.status, ResolveStatus::Ok, "{r:?}");
        assert_eq!(r.name, b"known.corp.test");
        assert_eq!(r.addrs, ["10.77.0.1".parse::<IpAddr>().expect("ip")]);
        let r = s.resolve(addr("gone.example")).await;
        assert_eq!(r.status, ResolveStatus::NxDomain);
        assert_eq!(s.info().server, Some("10.77.0.1".parse().expect("ip")));
        assert!(s
            .info()
            .host_servers
            .contains(&Some("127.0.0.53".parse().expect("ip"))));
    }

    #[tokio::test]
    async fn unreachable_server_is_try_again_never_the_host() {
        let (s, fake) = service(false, "");
        let r = s.resolve(addr("known")).await;
        assert_eq!(r.status, ResolveStatus::TryAgain);
        // Every try went to the tunnel server (2 rounds × 1 server).
        assert_eq!(fake.queries.load(Ordering::Relaxed), 2);
    }
}
