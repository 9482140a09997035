//! Starting the front-ends: every listener is bound (and every reverse
//! port registered with the engine) before [`start`] returns, so a wrong
//! address fails the run at once; then each serves in its own task.

use crate::accept::accept_loop;
use crate::auth::Credentials;
use crate::ctx::Ctx;
use crate::dial::Policy;
use crate::serve;
use crate::spec::{Forward, Reverse, Transport};
use crate::target::Target;
use crate::tunnel::{Engine, OpenError};
use control::{DatagramFraming, Proto, RouteDecision, UdpOpenRequest};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::{TcpListener, UdpSocket};
use tracing::{info, warn};

/// What to serve.
#[derive(Debug, Default)]
pub struct Settings {
    /// `--socks5` listeners.
    pub socks5: Vec<SocketAddr>,
    /// `--http-proxy` listeners.
    pub http: Vec<SocketAddr>,
    /// `--forward`s.
    pub forwards: Vec<Forward>,
    /// `--reverse`s.
    pub reverses: Vec<Reverse>,
    /// `--proxy-auth` credentials.
    pub auth: Option<Credentials>,
    /// `--proxy-open`: non-loopback listeners without credentials allowed.
    pub open: bool,
    /// `--proxy-direct`: destinations outside the tunnel allowed.
    pub direct: bool,
}

impl Settings {
    /// Refuses a non-loopback listener without credentials unless
    /// `--proxy-open` (then warns); call before starting anything.
    pub fn check(&self) -> Result<(), StartError> {
        let authed = self.auth.is_some();
        for a in &self.socks5 {
            exposure(&format!("--socks5 {a}"), *a, authed, self.open)?;
        }
        for a in &self.http {
            exposure(&format!("--http-proxy {a}"), *a, authed, self.open)?;
        }
        for f in &self.forwards {
            let what = format!("--forward {}:{}:{}", f.transport, f.listen, f.target);
            exposure(&what, f.listen, false, self.open)?;
        }
        Ok(())
    }

    /// Whether any front-end is asked for.
    pub fn any(&self) -> bool {
        !(self.socks5.is_empty()
            && self.http.is_empty()
            && self.forwards.is_empty()
            && self.reverses.is_empty())
    }
}

/// Why the front-ends could not start.
#[derive(Debug)]
pub enum StartError {
    /// A listener could not be bound.
    Bind(String, std::io::Error),
    /// A listener on a non-loopback address without credentials, and no
    /// `--proxy-open`.
    Exposed(String),
    /// A forward's target address is not routed into the tunnel (and no
    /// `--proxy-direct`).
    NotTunnel(String),
    /// The engine refused a reverse port (errno).
    Reverse(String, i32),
    /// The engine's control socket failed.
    Engine(String, std::io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Bind(w, e) => write!(f, "{w}: cannot listen: {e}"),
            StartError::Exposed(w) => write!(
                f,
                "{w}: refusing to listen on a non-loopback address without --proxy-auth (anyone who reaches it could use the tunnel); add --proxy-auth FILE, or --proxy-open to allow it"
            ),
            StartError::NotTunnel(w) => write!(
                f,
                "{w}: the target is not routed into the tunnel; fix the address, or add --proxy-direct to allow the host network"
            ),
            StartError::Reverse(w, e) => write!(
                f,
                "{w}: the engine cannot listen on that tunnel port: {}",
                std::io::Error::from_raw_os_error(*e)
            ),
            StartError::Engine(w, e) => write!(f, "{w}: the engine's control socket failed: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Refuses (or warns about) a non-loopback listener.
fn exposure(what: &str, addr: SocketAddr, authed: bool, open: bool) -> Result<(), StartError> {
    if addr.ip().is_loopback() || authed {
        return Ok(());
    }
    if !open {
        return Err(StartError::Exposed(what.to_string()));
    }
    warn!("{what}: listening on {addr} without credentials (--proxy-open): anyone who reaches it can use the tunnel");
    Ok(())
}

async fn bind_tcp(what: &str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| StartError::Bind(what.to_string(), e))
}

/// Binds and starts every front-end in `settings` (already
/// [`Settings::check`]ed) on the engine whose control socket is `control`;
/// needs a tokio runtime.
pub async fn start(settings: Settings, control: PathBuf) -> Result<(), StartError> {
    let ctx = Arc::new(Ctx {
        engine: Engine::new(control),
        auth: settings.auth,
        policy: Policy {
            direct: settings.direct,
        },
    });
    for addr in settings.socks5 {
        let what = format!("--socks5 {addr}");
        let l = bind_tcp(&what, addr).await?;
        info!("SOCKS5 proxy: {}", l.local_addr().unwrap_or(addr));
        let c = ctx.clone();
        tokio::spawn(accept_loop(what, l, move |s, from| {
            serve::socks5::client(c.clone(), s, from)
        }));
    }
    for addr in settings.http {
        let what = format!("--http-proxy {addr}");
        let l = bind_tcp(&what, addr).await?;
        info!("HTTP proxy: {}", l.local_addr().unwrap_or(addr));
        let c = ctx.clone();
        tokio::spawn(accept_loop(what, l, move |s, from| {
            serve::http::client(c.clone(), s, from)
        }));
    }
    for f in settings.forwards {
        start_forward(&ctx, f).await?;
    }
    for r in settings.reverses {
        start_reverse(&ctx, r).await?;
    }
    Ok(())
}

async fn start_forward(ctx: &Arc<Ctx>, f: Forward) -> Result<(), StartError> {
    let what = format!("--forward {}:{}:{}", f.transport, f.listen, f.target);
    if let Target::Addr(a) = f.target {
        let proto = match f.transport {
            Transport::Tcp => Proto::Tcp,
            Transport::Udp => Proto::Udp,
        };
        let d = ctx
            .engine
            .route(a, proto)
            .await
            .map_err(|e| StartError::Engine(what.clone(), e))?;
        if d != RouteDecision::Tunnel && !(ctx.policy.direct && f.transport == Transport::Tcp) {
            return Err(StartError::NotTunnel(what));
        }
    }
    match f.transport {
        Transport::Tcp => {
            let l = bind_tcp(&what, f.listen).await?;
            info!(
                "Forward: tcp {} -> {}",
                l.local_addr().unwrap_or(f.listen),
                f.target
            );
            let c = ctx.clone();
            let t = Arc::new(f.target);
            tokio::spawn(accept_loop(what, l, move |s, from| {
                serve::forward::tcp_client(c.clone(), s, from, t.clone())
            }));
        }
        Transport::Udp => {
            let s = UdpSocket::bind(f.listen)
                .await
                .map_err(|e| StartError::Bind(what.clone(), e))?;
            info!(
                "Forward: udp {} -> {}",
                s.local_addr().unwrap_or(f.listen),
                f.target
            );
            tokio::spawn(serve::forward::udp(ctx.clone(), s, f.target));
        }
    }
    Ok(())
}

async fn start_reverse(ctx: &Arc<Ctx>, r: Reverse) -> Result<(), StartError> {
    let what = format!("--reverse {}:{}:{}", r.transport, r.tunnel_port, r.local);
    let wildcard = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), r.tunnel_port);
    match r.transport {
        Transport::Tcp => {
            let l = bind_tcp(&what, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
            let lo = l
                .local_addr()
                .map_err(|e| StartError::Bind(what.clone(), e))?;
            let errno = ctx
                .engine
                .listen(wildcard, lo)
                .await
                .map_err(|e| StartError::Engine(what.clone(), e))?;
            if errno != 0 {
                return Err(StartError::Reverse(what, errno));
            }
            info!("Reverse: tcp tunnel port {} -> {}", r.tunnel_port, r.local);
            let c = ctx.clone();
            let local = r.local;
            tokio::spawn(accept_loop(what, l, move |s, from| {
                serve::reverse::tcp_client(c.clone(), s, from, lo, local)
            }));
        }
        Transport::Udp => {
            let req = UdpOpenRequest {
                v6_socket: false,
                v6_only: false,
                bind: wildcard,
                connect: None,
                fd: -1,
                framing: DatagramFraming::Headers,
                kind: control::DatagramKind::Udp,
            };
            let flow = match ctx.engine.udp_open(req).await {
                Ok(f) => f,
                Err(OpenError::Failed(e)) => return Err(StartError::Reverse(what, e)),
                Err(OpenError::Io(e)) => return Err(StartError::Engine(what, e)),
                Err(OpenError::NotRouted) => {
                    return Err(StartError::Reverse(what, libc::EADDRNOTAVAIL))
                }
            };
            info!("Reverse: udp tunnel port {} -> {}", r.tunnel_port, r.local);
            tokio::spawn(serve::reverse::udp(flow, r.local));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(socks: &str, forward: Option<&str>) -> Settings {
        Settings {
            socks5: vec![socks.parse().expect("addr")],
            forwards: forward
                .map(|f| vec![Forward::parse(f).expect("forward")])
                .unwrap_or_default(),
            ..Settings::default()
        }
    }

    #[test]
    fn non_loopback_listeners_need_credentials_or_proxy_open() {
        assert!(settings("127.0.0.1:1080", None).check().is_ok());
        assert!(settings("[::1]:1080", None).check().is_ok());
        let open = settings("0.0.0.0:1080", None);
        assert!(matches!(open.check(), Err(StartError::Exposed(w)) if w.contains("0.0.0.0:1080")));
        let mut allowed = settings("0.0.0.0:1080", None);
        allowed.open = true;
        assert!(allowed.check().is_ok());
        let mut authed = settings("192.0.2.7:1080", None);
        authed.auth = Some(Credentials::parse("a:b").expect("creds"));
        assert!(authed.check().is_ok());
        // Credentials do not cover forwards.
        let mut fwd = settings("127.0.0.1:1080", Some("tcp:0.0.0.0:5432:10.0.0.1:5432"));
        fwd.auth = Some(Credentials::parse("a:b").expect("creds"));
        assert!(matches!(fwd.check(), Err(StartError::Exposed(w)) if w.starts_with("--forward")));
        assert!(!Settings::default().any());
    }
}
