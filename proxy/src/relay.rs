//! Carrying bytes both ways between a client and its destination, with
//! a debug line when the pair closes.

use crate::dial::Dialed;
use std::net::SocketAddr;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tracing::debug;

/// Relays between `client` and `dst` until both directions end; `early`
/// is client data received with the request, sent first.
pub async fn relay<C>(what: &str, from: SocketAddr, mut client: C, dst: Dialed, early: &[u8])
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let r = match dst {
        Dialed::Tunnel(mut t) => {
            let flow = t.flow;
            let r = pump(&mut client, &mut t.stream, early).await;
            debug!(flow, "{what}: tunnel flow of {from} done");
            r
        }
        Dialed::Direct(mut s) => pump(&mut client, &mut s, early).await,
    };
    match r {
        Ok((up, down)) => debug!(
            client = %from,
            bytes_out = up,
            bytes_in = down,
            duration_ms = started.elapsed().as_millis() as u64,
            "{what}: client closed"
        ),
        Err(e) => debug!(client = %from, error = %e, "{what}: client ended with an error"),
    }
}

async fn pump<C, D>(client: &mut C, dst: &mut D, early: &[u8]) -> std::io::Result<(u64, u64)>
where
    C: AsyncRead + AsyncWrite + Unpin,
    D: AsyncRead + AsyncWrite + Unpin,
{
    if !early.is_empty() {
        dst.write_all(early).await?;
    }
    let (up, down) = tokio::io::copy_bidirectional(client, dst).await?;
    Ok((up + early.len() as u64, down))
}
