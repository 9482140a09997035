//! Local port forwards into the tunnel: each TCP connection to the
//! listener becomes a tunnel flow to the target; each UDP peer of the
//! listening socket gets a datagram flow connected to the target, closed
//! after [`UDP_IDLE`] without traffic.

use crate::ctx::{SharedCtx, MAX_DATAGRAM, MAX_UDP_PEERS, UDP_IDLE};
use crate::dial::{dial, resolve};
use crate::relay::relay;
use crate::target::Target;
use control::{DatagramFraming, Proto, RouteDecision, UdpOpenRequest};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::debug;

/// One TCP connection to a forward's listener.
pub async fn tcp_client(ctx: SharedCtx, s: TcpStream, from: SocketAddr, target: Arc<Target>) {
    match dial(&ctx.engine, &target, ctx.policy, true).await {
        Ok(d) => {
            debug!(client = %from, target = %target, "forward: connection");
            relay("forward", from, s, d, &[]).await;
        }
        Err(e) => debug!(client = %from, target = %target, error = %e, "forward: refused"),
    }
}

/// Serves a UDP forward's socket forever.
pub async fn udp(ctx: SharedCtx, sock: UdpSocket, target: Target) {
    let sock = Arc::new(sock);
    let mut peers: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let data = buf[..n].to_vec();
        if let Some(tx) = peers.get(&from) {
            match tx.try_send(data) {
                Ok(()) => continue,
                Err(mpsc::error::TrySendError::Full(_)) => continue, // dropped, as UDP may
                Err(mpsc::error::TrySendError::Closed(d)) => {
                    peers.remove(&from);
                    start_peer(&ctx, &sock, &target, &mut peers, from, d);
                }
            }
        } else {
            start_peer(&ctx, &sock, &target, &mut peers, from, data);
        }
    }
}

fn start_peer(
    ctx: &SharedCtx,
    sock: &Arc<UdpSocket>,
    target: &Target,
    peers: &mut HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    from: SocketAddr,
    first: Vec<u8>,
) {
    peers.retain(|_, tx| !tx.is_closed());
    if peers.len() >= MAX_UDP_PEERS {
        return debug!(client = %from, "forward: too many udp peers ({MAX_UDP_PEERS}); datagram dropped");
    }
    let (tx, rx) = mpsc::channel(64);
    let _ = tx.try_send(first);
    peers.insert(from, tx);
    tokio::spawn(udp_peer(
        ctx.clone(),
        sock.clone(),
        target.clone(),
        from,
        rx,
    ));
}

/// One UDP peer of a forward: its datagram flow, both ways, until idle.
async fn udp_peer(
    ctx: SharedCtx,
    sock: Arc<UdpSocket>,
    target: Target,
    from: SocketAddr,
    mut rx: mpsc::Receiver<Vec<u8>>,
) {
    let dst = match resolve(&ctx.engine, &target).await {
        Ok(a) => control::normalize(a[0]),
        Err(e) => {
            return debug!(client = %from, target = %target, error = %e, "forward: udp target not found")
        }
    };
    if !matches!(
        ctx.engine.route(dst, Proto::Udp).await,
        Ok(RouteDecision::Tunnel)
    ) {
        return debug!(client = %from, dst = %dst, "forward: udp target not routed into the tunnel; dropped");
    }
    let bind = if dst.is_ipv4() {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
    };
    let req = UdpOpenRequest {
        v6_socket: dst.is_ipv6(),
        v6_only: dst.is_ipv6(),
        bind,
        connect: Some(dst),
        fd: -1,
        framing: DatagramFraming::Plain,
        kind: control::DatagramKind::Udp,
    };
    let flow = match ctx.engine.udp_open(req).await {
        Ok(f) => f,
        Err(e) => {
            return debug!(client = %from, dst = %dst, error = ?e, "forward: cannot open a udp flow")
        }
    };
    debug!(client = %from, dst = %dst, flow = flow.flow, local = %flow.local, "forward: udp flow opened");
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let (mut up, mut down) = (0u64, 0u64);
    loop {
        tokio::select! {
            d = rx.recv() => {
                let Some(d) = d else { break };
                if flow.socket.send(&d).await.is_err() { break }
                up += d.len() as u64;
            }
            r = flow.socket.recv(&mut buf) => {
                let Ok(n) = r else { break };
                let _ = sock.send_to(&buf[..n], from).await;
                down += n as u64;
            }
            _ = tokio::time::sleep(UDP_IDLE) => break,
        }
    }
    debug!(client = %from, flow = flow.flow, bytes_out = up, bytes_in = down, "forward: udp flow closed");
}
