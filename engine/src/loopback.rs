//! `HostLoopbackBackend`: a TEST-ONLY backend. Flows to configured "tunnel"
//! prefixes are carried to a host address (normally loopback, inside the
//! test's own network namespace) at the same port; listeners are exposed on
//! a host "inbound face" address as if tunnel peers connected to them. It
//! exercises the shim and the bridge end to end without noise/tcpip. It is
//! only reachable through hidden `--test-backend-*` flags and is never the
//! default.

use super::{
    BackendInfo, BoxedIo, Errno, FlowBackend, InboundSink, InboundTcp, ListenSpec, OutboundTcp,
};
use control::{Proto, RouteDecision};
use ipnet::IpNet;
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Mutex;
use tokio::net::{TcpListener, TcpStream};

/// See the module doc.
pub struct HostLoopbackBackend {
    maps: Vec<(IpNet, IpAddr)>,
    local_ip: IpAddr,
    inbound_face: Option<IpAddr>,
    inbound_peer: IpAddr,
    next_port: AtomicU16,
    listening: Mutex<HashSet<u16>>,
}

impl HostLoopbackBackend {
    /// `maps`: "tunnel" prefix → host address; `local_ip`: our pretend
    /// tunnel address; `inbound_face`: where listeners are exposed;
    /// `inbound_peer`: the tunnel address inbound flows appear from.
    pub fn new(
        maps: Vec<(IpNet, IpAddr)>,
        local_ip: IpAddr,
        inbound_face: Option<IpAddr>,
        inbound_peer: IpAddr,
    ) -> Self {
        HostLoopbackBackend {
            maps,
            local_ip,
            inbound_face,
            inbound_peer,
            next_port: AtomicU16::new(40_000),
            listening: Mutex::new(HashSet::new()),
        }
    }

    fn target(&self, dst: SocketAddr) -> Option<SocketAddr> {
        self.maps
            .iter()
            .find(|(c, _)| c.contains(&dst.ip()))
            .map(|(_, t)| SocketAddr::new(*t, dst.port()))
    }
}

fn errno_of(e: &std::io::Error) -> Errno {
    e.raw_os_error().unwrap_or(libc::ECONNREFUSED)
}

impl FlowBackend for HostLoopbackBackend {
    fn name(&self) -> &'static str {
        "host-loopback test backend"
    }

    fn info(&self) -> BackendInfo {
        BackendInfo {
            addresses: vec![self.local_ip],
            peers: self
                .maps
                .iter()
                .map(|(c, t)| format!("test map {c} -> {t}"))
                .collect(),
            interface: Vec::new(),
            ..BackendInfo::default()
        }
    }

    fn route(&self, dst: SocketAddr, _proto: Proto) -> RouteDecision {
        if self.target(dst).is_some() {
            RouteDecision::Tunnel
        } else {
            RouteDecision::Direct
        }
    }

    fn open_tcp(&self, dst: SocketAddr) -> Result<OutboundTcp, Errno> {
        let target = self.target(dst).ok_or(libc::ENETUNREACH)?;
        let port = self.next_port.fetch_add(1, Ordering::Relaxed).max(1024);
        let local = SocketAddr::new(self.local_ip, port);
        let established = Box::pin(async move {
            match TcpStream::connect(target).await {
                Ok(s) => Ok(Box::new(s) as BoxedIo),
                Err(e) => Err(errno_of(&e)),
            }
        });
        Ok(OutboundTcp {
            id: 0,
            local,
            established,
        })
    }

    fn listen(&self, spec: ListenSpec, sink: InboundSink) -> Result<(), Errno> {
        let Some(face) = self.inbound_face else {
            return Ok(());
        };
        let port = spec.loopback.port();
        let mut set = self.listening.lock().map_err(|_| libc::EIO)?;
        if !set.insert(port) {
            return Ok(());
        }
        let std_listener =
            std::net::TcpListener::bind(SocketAddr::new(face, port)).map_err(|e| errno_of(&e))?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| errno_of(&e))?;
        let listener = TcpListener::from_std(std_listener).map_err(|e| errno_of(&e))?;
        let (peer_ip, local_ip) = (self.inbound_peer, self.local_ip);
        tokio::spawn(async move {
            while let Ok((stream, from)) = listener.accept().await {
                let inbound = InboundTcp {
                    // Never carried directly (this backend has no engine thread).
                    id: 0,
                    peer: SocketAddr::new(peer_ip, from.port()),
                    local: SocketAddr::new(local_ip, port),
                    target: spec.loopback,
                    io: Box::new(stream),
                    ticket: super::backlog::Ticket::none(),
                };
                if sink.send(inbound).await.is_err() {
                    break;
                }
            }
        });
        Ok(())
    }
}
