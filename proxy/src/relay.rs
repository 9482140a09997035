//! Carrying bytes both ways between a client and its destination, with
//! a debug line when the pair closes. A tunnel flow dialled with
//! `hand_over` takes the client's connection itself: the engine then
//! copies between it and the tunnel in one step, and this side only waits
//! for the end.

use crate::dial::Dialed;
use crate::tunnel::TunnelStream;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tracing::debug;

/// Relays between `client` and `dst` until both directions end; `early`
/// is client data received with the request, sent first.
pub async fn relay<C>(what: &str, from: SocketAddr, mut client: C, dst: Dialed, early: &[u8])
where
    C: AsyncRead + AsyncWrite + AsRawFd + Unpin,
{
    let started = Instant::now();
    let r = match dst {
        Dialed::Tunnel(mut t) if t.hand_over => {
            let flow = t.flow;
            let r = hand_over(&mut t, client).await;
            debug!(flow, "{what}: tunnel flow of {from} (handed over) done");
            match r {
                Ok(()) => return,
                Err(e) => Err(e),
            }
        }
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

async fn pump<C, D>(client: &mut C, dst: &mut D, early: &[u8]) -> io::Result<(u64, u64)>
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

/// Passes `client` to the engine on the flow's socket, closes our copy,
/// and waits until the engine closes the socket (the flow is over).
async fn hand_over<C: AsRawFd>(t: &mut TunnelStream, client: C) -> io::Result<()> {
    let sock = &t.stream;
    loop {
        sock.writable().await?;
        match sock.try_io(Interest::WRITABLE, || {
            fdpass::send_with_fd(sock.as_raw_fd(), &[0], client.as_raw_fd())
        }) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    drop(client);
    let mut sink = [0u8; 64];
    while t.stream.read(&mut sink).await? > 0 {}
    Ok(())
}
