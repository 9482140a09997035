//! One HTTP proxy client: the request head, `Basic` proxy credentials when
//! required, then `CONNECT` (a relayed tunnel) or an absolute-URI request
//! (forwarded in origin form with `Connection: close`, then relayed).

use crate::ctx::{SharedCtx, HANDSHAKE_TIMEOUT};
use crate::dial::dial;
use crate::http::{
    basic_credentials, origin_head, parse_head, response, Ask, CONNECT_OK, MAX_HEAD,
};
use crate::relay::relay;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

/// What the head asked, owned (the head itself borrows the buffer).
struct Asked {
    ask: Ask,
    authorized: bool,
    /// For a forwarded request: the head for the origin server.
    origin: Vec<u8>,
    /// Length of the client's head.
    len: usize,
}

async fn answer(s: &mut TcpStream, status: u16, reason: &str, extra: &str) {
    let body = format!("{status} {reason}\n");
    let _ = s.write_all(&response(status, reason, extra, &body)).await;
}

/// Reads the head; `None` if the client went away (or was answered with
/// an error, logged).
async fn read_head(
    ctx: &SharedCtx,
    s: &mut TcpStream,
    from: SocketAddr,
    buf: &mut Vec<u8>,
) -> Option<Asked> {
    loop {
        match parse_head(buf) {
            Ok(Some(h)) => {
                let authorized = match &ctx.auth {
                    None => true,
                    Some(c) => basic_credentials(&h).is_some_and(|(u, p)| c.check(&u, &p)),
                };
                let mut origin = Vec::new();
                if let Ask::Forward { path, .. } = &h.ask {
                    origin_head(&h, path, &mut origin);
                }
                return Some(Asked {
                    ask: h.ask,
                    authorized,
                    origin,
                    len: h.len,
                });
            }
            Ok(None) => {}
            Err(e) => {
                debug!(client = %from, error = %e, "http proxy: bad request");
                let (status, reason) = e.status();
                answer(s, status, reason, "").await;
                return None;
            }
        }
        let mut chunk = [0u8; 4096];
        let room = (MAX_HEAD + 1).saturating_sub(buf.len()).min(chunk.len());
        let n = s.read(&mut chunk[..room.max(1)]).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Serves one client to the end.
pub async fn client(ctx: SharedCtx, mut s: TcpStream, from: SocketAddr) {
    let mut buf = Vec::new();
    let asked = match tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        read_head(&ctx, &mut s, from, &mut buf),
    )
    .await
    {
        Ok(Some(a)) => a,
        Ok(None) => return,
        Err(_) => {
            debug!(client = %from, "http proxy: request head timed out");
            return answer(&mut s, 408, "Request Timeout", "").await;
        }
    };
    if !asked.authorized {
        debug!(client = %from, "http proxy: refused: missing or wrong proxy credentials");
        return answer(
            &mut s,
            407,
            "Proxy Authentication Required",
            "Proxy-Authenticate: Basic realm=\"wrapguard\"\r\n",
        )
        .await;
    }
    let rest = &buf[asked.len..];
    let (target, early) = match &asked.ask {
        Ask::Connect(t) => (t, rest.to_vec()),
        Ask::Forward { dest, .. } => {
            let mut e = asked.origin.clone();
            e.extend_from_slice(rest);
            (dest, e)
        }
    };
    match dial(&ctx.engine, target, ctx.policy, early.is_empty()).await {
        Ok(d) => {
            debug!(client = %from, target = %target, connect = matches!(asked.ask, Ask::Connect(_)), "http proxy: request");
            if matches!(asked.ask, Ask::Connect(_)) && s.write_all(CONNECT_OK).await.is_err() {
                return;
            }
            relay("http proxy", from, s, d, &early).await;
        }
        Err(e) => {
            debug!(client = %from, target = %target, error = %e, "http proxy: refused");
            let (status, reason) = e.http_status();
            answer(&mut s, status, reason, "").await;
        }
    }
}
