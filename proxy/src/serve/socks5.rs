//! One SOCKS5 client: method selection, optional username/password, the
//! request, then a relayed stream (`CONNECT`) or a UDP association.

use super::udp_assoc;
use crate::ctx::{SharedCtx, HANDSHAKE_TIMEOUT};
use crate::dial::dial;
use crate::relay::relay;
use crate::socks5::{
    encode_reply, parse_greeting, parse_request, parse_user_pass, Command, Parsed, ReplyCode,
    AUTH_VERSION, METHOD_NONE, METHOD_UNACCEPTABLE, METHOD_USER_PASS, VERSION,
};
use std::net::{Ipv4Addr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

/// The longest handshake message (a username/password request).
const MAX_MESSAGE: usize = 1 + 1 + 255 + 1 + 255;

/// Why a handshake ended without a relay (the reply, if any, was sent).
#[derive(Debug)]
enum End {
    /// The client went away or sent too much.
    Gone,
    /// Refused; logged with this reason.
    Refused(String),
}

/// Reads until `parse` has a whole message; keeps the rest in `buf`.
async fn read_msg<T>(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    parse: fn(&[u8]) -> Parsed<T>,
) -> Result<Result<T, crate::socks5::Socks5Error>, End> {
    loop {
        match parse(buf) {
            Ok(Some((m, used))) => {
                buf.drain(..used);
                return Ok(Ok(m));
            }
            Ok(None) => {}
            Err(e) => return Ok(Err(e)),
        }
        if buf.len() >= MAX_MESSAGE {
            return Err(End::Gone);
        }
        let mut chunk = [0u8; 512];
        let n = s.read(&mut chunk).await.map_err(|_| End::Gone)?;
        if n == 0 {
            return Err(End::Gone);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn reply(s: &mut TcpStream, code: ReplyCode, bound: SocketAddr) {
    let mut out = Vec::with_capacity(22);
    encode_reply(code, bound, &mut out);
    let _ = s.write_all(&out).await;
}

fn unspecified() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
}

/// Serves one client to the end.
pub async fn client(ctx: SharedCtx, mut s: TcpStream, from: SocketAddr) {
    let mut buf = Vec::new();
    let req = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&ctx, &mut s, &mut buf)).await
    {
        Ok(Ok(r)) => r,
        Ok(Err(End::Refused(why))) => return debug!(client = %from, "socks5: refused: {why}"),
        Ok(Err(End::Gone)) => {
            return debug!(client = %from, "socks5: client gone during the handshake")
        }
        Err(_) => return debug!(client = %from, "socks5: handshake timed out"),
    };
    match req.command {
        Command::Connect => {
            match dial(&ctx.engine, &req.target, ctx.policy, buf.is_empty()).await {
                Ok(d) => {
                    debug!(client = %from, target = %req.target, "socks5: connect");
                    reply(
                        &mut s,
                        ReplyCode::Succeeded,
                        d.local().unwrap_or_else(unspecified),
                    )
                    .await;
                    relay("socks5", from, s, d, &buf).await;
                }
                Err(e) => {
                    debug!(client = %from, target = %req.target, error = %e, "socks5: connect refused");
                    reply(&mut s, e.socks_code(), unspecified()).await;
                }
            }
        }
        Command::UdpAssociate => udp_assoc::serve(ctx, s, from, req.target).await,
        Command::Bind => {
            debug!(client = %from, "socks5: BIND is not supported");
            reply(&mut s, ReplyCode::CommandNotSupported, unspecified()).await;
        }
    }
}

/// Method selection, authentication and the request; errors are replied
/// to before they return.
async fn handshake(
    ctx: &SharedCtx,
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<crate::socks5::Request, End> {
    let g = match read_msg(s, buf, parse_greeting).await? {
        Ok(g) => g,
        Err(e) => return Err(End::Refused(format!("greeting: {e}"))),
    };
    let method = match (&ctx.auth, g.user_pass, g.no_auth) {
        (Some(_), true, _) => METHOD_USER_PASS,
        (None, _, true) => METHOD_NONE,
        _ => METHOD_UNACCEPTABLE,
    };
    let _ = s.write_all(&[VERSION, method]).await;
    if method == METHOD_UNACCEPTABLE {
        return Err(End::Refused("no acceptable authentication method".into()));
    }
    if let Some(creds) = &ctx.auth {
        let up = match read_msg(s, buf, parse_user_pass).await? {
            Ok(up) => up,
            Err(e) => {
                let _ = s.write_all(&[AUTH_VERSION, 1]).await;
                return Err(End::Refused(format!("authentication: {e}")));
            }
        };
        if !creds.check(&up.user, &up.pass) {
            let _ = s.write_all(&[AUTH_VERSION, 1]).await;
            return Err(End::Refused(format!(
                "wrong user or password (user {:?})",
                String::from_utf8_lossy(&up.user)
            )));
        }
        let _ = s.write_all(&[AUTH_VERSION, 0]).await;
    }
    match read_msg(s, buf, parse_request).await? {
        Ok(r) => Ok(r),
        Err(e) => {
            reply(s, e.reply_code(), unspecified()).await;
            Err(End::Refused(format!("request: {e}")))
        }
    }
}
