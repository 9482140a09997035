//! HTTP proxy requests, sans-IO: the request head (`CONNECT host:port` or
//! an absolute-URI request), its rewrite for the origin server, `Basic`
//! proxy credentials and the proxy's own short responses.
//!
//! Read before changing: RFC 9112 sections 2 to 3 (message format, request
//! line, request target forms) and 9.6 (`Connection: close`), RFC 9110
//! section 11.7 (`Proxy-Authorization`) and 9.3.6 (`CONNECT`).

use crate::target::{parse_port, Target};
use std::fmt;

/// Largest request head accepted, request line and headers included.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most header lines accepted.
pub const MAX_HEADERS: usize = 100;

/// What the request asks the proxy for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ask {
    /// `CONNECT host:port`: a tunnel.
    Connect(Target),
    /// A request with an absolute `http://` URI: forwarded to `dest`
    /// with the target rewritten to `path` (origin form).
    Forward {
        /// The origin server.
        dest: Target,
        /// Path and query, at least `/`.
        path: String,
    },
}

/// A parsed request head (it borrows the received bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head<'a> {
    /// The method (`CONNECT`, `GET`…).
    pub method: &'a str,
    /// What it asks for.
    pub ask: Ask,
    /// The minor version of `HTTP/1.x`.
    pub minor: u8,
    /// The header lines, name and value (trimmed), in order.
    pub headers: Vec<(&'a str, &'a str)>,
    /// Length of the head in bytes, the blank line included.
    pub len: usize,
}

/// Why a request head is refused, with the status it is answered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// The head is longer than [`MAX_HEAD`] (431).
    TooLarge,
    /// More than [`MAX_HEADERS`] header lines (431).
    TooManyHeaders,
    /// The request line is not `METHOD TARGET HTTP/1.x` (400).
    BadRequestLine,
    /// Not HTTP/1.0 or 1.1 (505).
    BadVersion,
    /// A header line without a name or a colon, or with bytes not allowed
    /// (400).
    BadHeader,
    /// The target is not `host:port` (CONNECT) or an `http://` URI (400).
    BadTarget,
    /// An absolute URI of another scheme (`https://`, `ftp://`…) (501).
    UnsupportedScheme,
}

impl HttpError {
    /// The status code and reason phrase the proxy answers with.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            HttpError::TooLarge | HttpError::TooManyHeaders => {
                (431, "Request Header Fields Too Large")
            }
            HttpError::BadVersion => (505, "HTTP Version Not Supported"),
            HttpError::UnsupportedScheme => (501, "Not Implemented"),
            _ => (400, "Bad Request"),
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HttpError::TooLarge => "request head too large",
            HttpError::TooManyHeaders => "too many header lines",
            HttpError::BadRequestLine => "malformed request line",
            HttpError::BadVersion => "not HTTP/1.0 or HTTP/1.1",
            HttpError::BadHeader => "malformed header line",
            HttpError::BadTarget => "request target is neither host:port nor an http:// URI",
            HttpError::UnsupportedScheme => "only http:// URIs are forwarded (use CONNECT)",
        })
    }
}

impl std::error::Error for HttpError {}

/// Where the head ends (just past the blank line), if it has.
fn head_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

/// Parses the request head at the front of `b`: `Ok(None)` while the
/// blank line has not come (and `b` is within [`MAX_HEAD`]).
pub fn parse_head(b: &[u8]) -> Result<Option<Head<'_>>, HttpError> {
    let Some(len) = head_end(&b[..b.len().min(MAX_HEAD)]) else {
        return if b.len() >= MAX_HEAD {
            Err(HttpError::TooLarge)
        } else {
            Ok(None)
        };
    };
    let text = std::str::from_utf8(&b[..len - 4]).map_err(|_| HttpError::BadHeader)?;
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::BadRequestLine);
    };
    if !is_token(method) || target.is_empty() {
        return Err(HttpError::BadRequestLine);
    }
    let minor = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        v if v.starts_with("HTTP/") => return Err(HttpError::BadVersion),
        _ => return Err(HttpError::BadRequestLine),
    };
    let mut headers = Vec::new();
    for l in lines {
        if headers.len() == MAX_HEADERS {
            return Err(HttpError::TooManyHeaders);
        }
        let (name, value) = l.split_once(':').ok_or(HttpError::BadHeader)?;
        if !is_token(name) || value.bytes().any(|c| c.is_ascii_control() && c != b'\t') {
            return Err(HttpError::BadHeader);
        }
        headers.push((name, value.trim_matches([' ', '\t'])));
    }
    let ask = if method == "CONNECT" {
        Ask::Connect(Target::parse(target).map_err(|_| HttpError::BadTarget)?)
    } else {
        absolute(target)?
    };
    Ok(Some(Head {
        method,
        ask,
        minor,
        headers,
        len,
    }))
}

/// An absolute `http://host[:port][/path][?query]` target.
fn absolute(target: &str) -> Result<Ask, HttpError> {
    let Some((scheme, rest)) = target.split_once("://") else {
        return Err(HttpError::BadTarget); // origin form: not a proxy request
    };
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(if is_token(scheme) {
            HttpError::UnsupportedScheme
        } else {
            HttpError::BadTarget
        });
    }
    let cut = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(cut);
    if authority.contains('@') {
        return Err(HttpError::BadTarget); // no credentials in URIs
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, parse_port(p).map_err(|_| HttpError::BadTarget)?),
        _ => (authority, 80),
    };
    let dest = Target::from_host(host, port).map_err(|_| HttpError::BadTarget)?;
    let tail = tail.split('#').next().unwrap_or_default();
    let path = match tail.strip_prefix('?') {
        Some(_) => format!("/{tail}"),
        None if tail.is_empty() => "/".to_string(),
        None => tail.to_string(),
    };
    if path.bytes().any(|c| c <= b' ' || c == 0x7f) {
        return Err(HttpError::BadTarget);
    }
    Ok(Ask::Forward { dest, path })
}

/// Hop-by-hop and proxy headers that are not passed to the origin.
fn dropped(name: &str) -> bool {
    [
        "connection",
        "proxy-connection",
        "proxy-authorization",
        "keep-alive",
    ]
    .iter()
    .any(|d| name.eq_ignore_ascii_case(d))
}

/// The head to send to the origin server for a [`Ask::Forward`] request:
/// origin-form target, proxy headers dropped, `Connection: close` (one
/// request per proxied connection).
pub fn origin_head(head: &Head<'_>, path: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{} {path} HTTP/1.{}\r\n", head.method, head.minor).as_bytes());
    for (n, v) in &head.headers {
        if !dropped(n) {
            out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
}

/// The `Proxy-Authorization: Basic` user and password, if the head has one
/// that decodes.
pub fn basic_credentials(head: &Head<'_>) -> Option<(Vec<u8>, Vec<u8>)> {
    let (_, v) = head
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("proxy-authorization"))?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64_decode(b64.trim())?;
    let colon = raw.iter().position(|&c| c == b':')?;
    Some((raw[..colon].to_vec(), raw[colon + 1..].to_vec()))
}

/// Standard base64 with padding; `None` on any other byte.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if s.len() & 3 != 0 {
        return None;
    }
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for (i, q) in s.chunks(4).enumerate() {
        let last = i + 1 == s.len() / 4;
        let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &q[..4 - pad] {
            n = (n << 6) | val(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// A complete short response from the proxy itself (`Connection: close`,
/// empty body unless `body`), with `extra` header lines (each ending in
/// CRLF).
pub fn response(status: u16, reason: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {reason}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The answer to an accepted `CONNECT`.
pub const CONNECT_OK: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

#[cfg(test)]
mod tests;
