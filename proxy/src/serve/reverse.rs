//! Reverse forwards: tunnel peers reach a local service. TCP: the engine
//! splices connections to our tunnel port onto a loopback listener of
//! ours (the `Listen` exchange, as for a wrapped program), and each is
//! relayed to the local service, which sees a loopback client. UDP: a
//! datagram flow bound to the tunnel port; each tunnel peer gets a local
//! socket connected to the service, closed after [`UDP_IDLE`].

use crate::ctx::{SharedCtx, MAX_DATAGRAM, MAX_UDP_PEERS, UDP_IDLE};
use crate::dial::Dialed;
use crate::relay::relay;
use crate::tunnel::TunnelDatagrams;
use control::datagram::{Header, HEADER_LEN};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use tokio::net::{TcpStream, UdpSocket, UnixDatagram};
use tokio::sync::mpsc;
use tracing::debug;

/// One connection the engine made to our loopback listener at `listener`.
pub async fn tcp_client(
    ctx: SharedCtx,
    s: TcpStream,
    from: SocketAddr,
    listener: SocketAddr,
    local: SocketAddr,
) {
    let peer = match ctx.engine.accept_lookup(listener, from).await {
        Ok(Some(p)) => p,
        _ => {
            // Not one the engine made: someone on this host.
            return debug!(client = %from, "reverse: connection not from the tunnel; closed");
        }
    };
    let svc = match TcpStream::connect(local).await {
        Ok(c) => c,
        Err(e) => {
            return debug!(peer = %peer.peer, local = %local, error = %e, "reverse: local service refused")
        }
    };
    debug!(peer = %peer.peer, tunnel = %peer.local, local = %local, "reverse: connection from the tunnel");
    relay("reverse", peer.peer, s, Dialed::Direct(svc), &[]).await;
}

/// Serves a UDP reverse forward's flow forever.
pub async fn udp(flow: TunnelDatagrams, local: SocketAddr) {
    let tun = Arc::new(flow.socket);
    let mut peers: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let n = match tun.recv(&mut buf).await {
            Ok(n) => n,
            Err(e) => return debug!(error = %e, "reverse: udp flow ended"),
        };
        let Ok(Header::Datagram(src)) = Header::decode(&buf[..n]) else {
            continue;
        };
        let src = control::normalize(src);
        let data = buf[HEADER_LEN..n].to_vec();
        if let Some(tx) = peers.get(&src) {
            if !matches!(
                tx.try_send(data.clone()),
                Err(mpsc::error::TrySendError::Closed(_))
            ) {
                continue;
            }
            peers.remove(&src);
        }
        peers.retain(|_, tx| !tx.is_closed());
        if peers.len() >= MAX_UDP_PEERS {
            debug!(peer = %src, "reverse: too many udp peers ({MAX_UDP_PEERS}); datagram dropped");
            continue;
        }
        let (tx, rx) = mpsc::channel(64);
        let _ = tx.try_send(data);
        peers.insert(src, tx);
        tokio::spawn(udp_peer(tun.clone(), src, local, rx));
    }
}

async fn udp_peer(
    tun: Arc<UnixDatagram>,
    peer: SocketAddr,
    local: SocketAddr,
    mut rx: mpsc::Receiver<Vec<u8>>,
) {
    let bind = if local.is_ipv4() {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
    } else {
        SocketAddr::from((Ipv6Addr::LOCALHOST, 0))
    };
    let sock = match UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(e) => return debug!(error = %e, "reverse: cannot bind a udp socket"),
    };
    if let Err(e) = sock.connect(local).await {
        return debug!(local = %local, error = %e, "reverse: cannot reach the local service");
    }
    debug!(peer = %peer, local = %local, "reverse: udp peer from the tunnel");
    let head = Header::Datagram(peer).encode();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            d = rx.recv() => {
                let Some(d) = d else { break };
                let _ = sock.send(&d).await;
            }
            r = sock.recv(&mut buf[HEADER_LEN..]) => {
                let Ok(n) = r else { continue };
                buf[..HEADER_LEN].copy_from_slice(&head);
                let _ = tun.send(&buf[..HEADER_LEN + n]).await;
            }
            _ = tokio::time::sleep(UDP_IDLE) => break,
        }
    }
    debug!(peer = %peer, "reverse: udp peer idle; closed");
}
