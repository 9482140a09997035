//! A SOCKS5 UDP association: a UDP socket on the listener's address
//! relays the client's datagrams into the tunnel (one datagram flow per
//! address family, opened on first use) and the answers back, for as long
//! as the client's TCP connection stays open (RFC 1928 section 7).

use crate::ctx::{SharedCtx, MAX_DATAGRAM};
use crate::dial::resolve;
use crate::socks5::{encode_reply, encode_udp_header, parse_udp, ReplyCode};
use crate::target::Target;
use crate::tunnel::TunnelDatagrams;
use control::datagram::{Header, HEADER_LEN};
use control::{DatagramFraming, Proto, RouteDecision, UdpOpenRequest};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket, UnixDatagram};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::debug;

/// Destinations whose route is remembered per association.
const ROUTE_CACHE: usize = 1024;

/// The association's tunnel side: a flow per family, and their readers.
#[derive(Default)]
struct Flows {
    v4: Option<Arc<UnixDatagram>>,
    v6: Option<Arc<UnixDatagram>>,
    readers: Vec<JoinHandle<()>>,
}

impl Drop for Flows {
    fn drop(&mut self) {
        for r in &self.readers {
            r.abort();
        }
    }
}

/// Serves the association until the client's TCP connection closes.
pub async fn serve(ctx: SharedCtx, mut control: TcpStream, from: SocketAddr, hint: Target) {
    let bound = match control.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    let udp = match UdpSocket::bind(SocketAddr::new(bound.ip(), 0)).await {
        Ok(u) => u,
        Err(e) => {
            debug!(client = %from, error = %e, "socks5: cannot bind the UDP relay");
            let mut out = Vec::new();
            encode_reply(ReplyCode::GeneralFailure, bound, &mut out);
            let _ = control.write_all(&out).await;
            return;
        }
    };
    let relay_addr = udp.local_addr().unwrap_or(bound);
    let mut out = Vec::new();
    encode_reply(ReplyCode::Succeeded, relay_addr, &mut out);
    if control.write_all(&out).await.is_err() {
        return;
    }
    debug!(client = %from, relay = %relay_addr, "socks5: udp associate");
    // The client's datagrams must come from its address; the port is the
    // one it named, or the first one it uses.
    let mut client = match hint {
        Target::Addr(a) if !a.ip().is_unspecified() && a.port() != 0 => Some(a),
        _ => None,
    };
    let (tx, mut rx) = mpsc::channel::<(SocketAddr, Vec<u8>)>(256);
    let mut flows = Flows::default();
    let mut routes: HashMap<SocketAddr, bool> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut ctl_buf = [0u8; 64];
    loop {
        tokio::select! {
            r = control.read(&mut ctl_buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(_) => {} // nothing is expected; ignore
            },
            r = udp.recv_from(&mut buf) => {
                let Ok((n, src)) = r else { break };
                if src.ip() != from.ip() || client.is_some_and(|c| c != src) {
                    debug!(client = %from, src = %src, "socks5: udp datagram from a stranger dropped");
                    continue;
                }
                client.get_or_insert(src);
                let d = match parse_udp(&buf[..n]) {
                    Ok(d) => d,
                    Err(e) => {
                        debug!(client = %from, error = %e, "socks5: bad udp datagram dropped");
                        continue;
                    }
                };
                let dst = match resolve(&ctx.engine, &d.target).await {
                    Ok(a) => a[0],
                    Err(e) => {
                        debug!(client = %from, target = %d.target, error = %e, "socks5: udp destination not found");
                        continue;
                    }
                };
                let dst = control::normalize(dst);
                if !routed(&ctx, &mut routes, dst).await {
                    debug!(client = %from, dst = %dst, "socks5: udp destination not routed into the tunnel; dropped");
                    continue;
                }
                let Some(flow) = flow_for(&ctx, &mut flows, dst.ip(), &tx).await else {
                    continue;
                };
                let head = Header::Datagram(dst).encode();
                let mut msg = Vec::with_capacity(HEADER_LEN + d.payload.len());
                msg.extend_from_slice(&head);
                msg.extend_from_slice(d.payload);
                if let Err(e) = flow.send(&msg).await {
                    debug!(client = %from, error = %e, "socks5: udp send into the tunnel failed");
                }
            }
            Some((src, payload)) = rx.recv() => {
                let Some(c) = client else { continue };
                let mut msg = Vec::with_capacity(22 + payload.len());
                encode_udp_header(src, &mut msg);
                msg.extend_from_slice(&payload);
                let _ = udp.send_to(&msg, c).await;
            }
        }
    }
    debug!(client = %from, "socks5: udp association closed");
}

/// Whether datagrams to `dst` go into the tunnel (remembered).
async fn routed(ctx: &SharedCtx, cache: &mut HashMap<SocketAddr, bool>, dst: SocketAddr) -> bool {
    if let Some(&r) = cache.get(&dst) {
        return r;
    }
    let r = matches!(
        ctx.engine.route(dst, Proto::Udp).await,
        Ok(RouteDecision::Tunnel)
    );
    if cache.len() >= ROUTE_CACHE {
        cache.clear();
    }
    cache.insert(dst, r);
    r
}

/// The flow for `ip`'s family, opened (and its reader started) on first use.
async fn flow_for(
    ctx: &SharedCtx,
    flows: &mut Flows,
    ip: IpAddr,
    tx: &mpsc::Sender<(SocketAddr, Vec<u8>)>,
) -> Option<Arc<UnixDatagram>> {
    let v4 = ip.is_ipv4();
    let slot = if v4 { &flows.v4 } else { &flows.v6 };
    if let Some(f) = slot {
        return Some(f.clone());
    }
    let bind = if v4 {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
    };
    let req = UdpOpenRequest {
        v6_socket: !v4,
        v6_only: !v4,
        bind,
        connect: None,
        fd: -1,
        framing: DatagramFraming::Headers,
        kind: control::DatagramKind::Udp,
    };
    let TunnelDatagrams {
        socket,
        local,
        flow,
    } = match ctx.engine.udp_open(req).await {
        Ok(f) => f,
        Err(e) => {
            debug!(error = ?e, "socks5: cannot open a udp flow");
            return None;
        }
    };
    debug!(flow, local = %local, "socks5: udp flow opened");
    let socket = Arc::new(socket);
    let reader = socket.clone();
    let tx = tx.clone();
    flows.readers.push(tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while let Ok(n) = reader.recv(&mut buf).await {
            if n == 0 {
                break; // the engine closed the flow
            }
            if let Ok(Header::Datagram(src)) = Header::decode(&buf[..n]) {
                let payload = buf[HEADER_LEN..n].to_vec();
                if tx.send((control::normalize(src), payload)).await.is_err() {
                    break;
                }
            }
        }
    }));
    if v4 {
        flows.v4 = Some(socket.clone());
    } else {
        flows.v6 = Some(socket.clone());
    }
    Some(socket)
}
