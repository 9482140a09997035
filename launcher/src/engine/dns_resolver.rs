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
