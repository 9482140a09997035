//! The `[WrapGuard]` section of the config file, sans-IO: the front-ends
//! as config keys (`Socks5`, `HttpProxy`, `Forward`, `Reverse` —
//! repeatable, or comma-separated — and `ProxyAuth`, `ProxyOpen`,
//! `ProxyDirect`), and `TcpCongestion`, each error with its line. The WireGuard parser
//! (`router`) skips this section.

use crate::spec::{Forward, Reverse};
use std::fmt;
use std::net::SocketAddr;

/// What the section asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SectionKeys {
    /// `Socks5 =` listeners.
    pub socks5: Vec<SocketAddr>,
    /// `HttpProxy =` listeners.
    pub http: Vec<SocketAddr>,
    /// `Forward =` specs.
    pub forwards: Vec<Forward>,
    /// `Reverse =` specs.
    pub reverses: Vec<Reverse>,
    /// `ProxyAuth =` path, as written.
    pub proxy_auth: Option<String>,
    /// `ProxyOpen = true`.
    pub proxy_open: bool,
    /// `ProxyDirect = true`.
    pub proxy_direct: bool,
    /// `TcpCongestion =`: the congestion control of the tunnel's TCP
    /// (`cubic` or `bbr`), checked here, applied by the engine.
    pub tcp_congestion: Option<String>,
}

/// A wrong line of the section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionError {
    /// 1-based line number in the file.
    pub line: usize,
    /// What is wrong and what is expected.
    pub what: String,
}

impl fmt::Display for SectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.line, self.what)
    }
}

impl std::error::Error for SectionError {}

/// The keys of the section.
const KEYS: &[&str] = &[
    "Socks5",
    "HttpProxy",
    "Forward",
    "Reverse",
    "ProxyAuth",
    "ProxyOpen",
    "ProxyDirect",
    "TcpCongestion",
];

/// The congestion controls `TcpCongestion =` may name.
pub const TCP_CONGESTION: &[&str] = &["cubic", "bbr"];

fn items(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn boolean(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => Some(true),
        "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Reads every `[WrapGuard]` section of the config text (lines outside it
/// are left to the WireGuard parser).
pub fn parse(text: &str) -> Result<SectionKeys, SectionError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut k = SectionKeys::default();
    let mut inside = false;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.split_once('#').map_or(raw, |(b, _)| b).trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            inside = name.trim().eq_ignore_ascii_case("wrapguard");
            continue;
        }
        if !inside {
            continue;
        }
        let err = |what: String| SectionError { line: n, what };
        let Some((key, value)) = line.split_once('=') else {
            return Err(err(format!("expected Key = value, found {line:?}")));
        };
        let (key, value) = (key.trim(), value.trim());
        let Some(canon) = KEYS.iter().find(|c| c.eq_ignore_ascii_case(key)) else {
            return Err(err(format!(
                "unknown key {key:?} in [WrapGuard]; expected one of {}",
                KEYS.join(", ")
            )));
        };
        match *canon {
            "Socks5" | "HttpProxy" => {
                for v in items(value) {
                    let a: SocketAddr = v.parse().map_err(|_| {
                        err(format!(
                            "{canon} = {v:?}: expected ADDR:PORT like 127.0.0.1:1080 or [::1]:1080"
                        ))
                    })?;
                    if *canon == "Socks5" {
                        k.socks5.push(a);
                    } else {
                        k.http.push(a);
                    }
                }
            }
            "Forward" => {
                for v in items(value) {
                    k.forwards.push(Forward::parse(v).map_err(|e| {
                        err(format!(
                            "Forward = {v:?}: {e} (expected tcp|udp:LISTEN_ADDR:PORT:TARGET:PORT)"
                        ))
                    })?);
                }
            }
            "Reverse" => {
                for v in items(value) {
                    k.reverses.push(Reverse::parse(v).map_err(|e| {
                        err(format!(
                            "Reverse = {v:?}: {e} (expected tcp|udp:TUNNEL_PORT:LOCAL_ADDR:PORT)"
                        ))
                    })?);
                }
            }
            "TcpCongestion" => {
                let v = value.to_ascii_lowercase();
                if !TCP_CONGESTION.contains(&v.as_str()) {
                    return Err(err(format!(
                        "TcpCongestion = {value:?}: expected one of {}",
                        TCP_CONGESTION.join(", ")
                    )));
                }
                k.tcp_congestion = Some(v);
            }
            "ProxyAuth" if !value.is_empty() => k.proxy_auth = Some(value.to_string()),
            "ProxyAuth" => return Err(err("ProxyAuth = needs a file path".into())),
            flag => {
                let b = boolean(value)
                    .ok_or_else(|| err(format!("{flag} = {value:?}: expected true or false")))?;
                if flag == "ProxyOpen" {
                    k.proxy_open = b;
                } else {
                    k.proxy_direct = b;
                }
            }
        }
    }
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_section_only() {
        let text = "[Interface]\nSocks5 = not ours\n[WrapGuard]\n# front-ends\nSocks5 = 127.0.0.1:1080, [::1]:1080\nhttpproxy = 127.0.0.1:3128\nForward = tcp:127.0.0.1:5432:10.77.0.1:5432\nReverse = udp:53:127.0.0.1:5353\nProxyAuth = /etc/wg/users\nProxyOpen = yes\n[Peer]\nForward = ignored\n";
        let k = parse(text).expect("parses");
        assert_eq!(k.socks5.len(), 2);
        assert_eq!(k.http, vec!["127.0.0.1:3128".parse().expect("a")]);
        assert_eq!(k.forwards.len(), 1);
        assert_eq!(k.reverses[0].local.port(), 5353);
        assert_eq!(k.proxy_auth.as_deref(), Some("/etc/wg/users"));
        assert!(k.proxy_open && !k.proxy_direct);
        assert_eq!(parse("[Peer]\nX = y\n"), Ok(SectionKeys::default()));
        let k = parse("[WrapGuard]\nTcpCongestion = BBR\n").expect("parses");
        assert_eq!(k.tcp_congestion.as_deref(), Some("bbr"));
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("[WrapGuard]\nSocks = 1.2.3.4:5\n", 2, "unknown key"),
            (
                "[WrapGuard]\n\nSocks5 = localhost:1080\n",
                3,
                "expected ADDR:PORT",
            ),
            (
                "[WrapGuard]\nForward = tcp:1:2\n",
                2,
                "wrong number of parts",
            ),
            (
                "[WrapGuard]\nReverse = sctp:1:127.0.0.1:2\n",
                2,
                "tcp: or udp:",
            ),
            ("[WrapGuard]\nProxyOpen = maybe\n", 2, "true or false"),
            ("[WrapGuard]\nProxyAuth =\n", 2, "file path"),
            ("[WrapGuard]\njust text\n", 2, "Key = value"),
            ("[WrapGuard]\nTcpCongestion = reno\n", 2, "cubic, bbr"),
        ];
        for (text, line, what) in cases {
            let e = parse(text).expect_err(text);
            assert_eq!(e.line, line, "{text}");
            assert!(e.what.contains(what), "{text}: {}", e.what);
        }
    }
}
