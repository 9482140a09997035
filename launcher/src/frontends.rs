//! The proxy and port-forward front-ends of this run: from the command
//! line (`--socks5`, `--http-proxy`, `--forward`, `--reverse`, …) and the
//! config's `[WrapGuard]` section, started on the engine's control socket.

use crate::cli::Cli;
use anyhow::{anyhow, Result};
use std::path::{Path, PathBuf};

/// The front-ends asked for (the config's section first, then the command
/// line's; a flag's `--proxy-auth` wins), checked (credentials file,
/// exposure) before anything starts.
pub fn settings(cli: &Cli) -> Result<proxy::Settings> {
    let mut keys = proxy::conf_section::SectionKeys::default();
    let mut auth_path: Option<PathBuf> = None;
    if let Some(conf) = &cli.config {
        let text = std::fs::read_to_string(conf)
            .map_err(|e| anyhow!("cannot read config {}: {e}", conf.display()))?;
        keys = proxy::conf_section::parse(&text).map_err(|e| anyhow!("{}:{e}", conf.display()))?;
        // A relative ProxyAuth path is relative to the config's directory.
        auth_path = keys.proxy_auth.as_ref().map(|p| {
            let p = Path::new(p);
            match conf.parent() {
                Some(dir) if p.is_relative() => dir.join(p),
                _ => p.to_path_buf(),
            }
        });
    }
    if let Some(p) = &cli.proxy_auth {
        auth_path = Some(p.clone());
    }
    let auth = match &auth_path {
        Some(p) => Some(proxy::auth_file::load(p).map_err(|e| anyhow!("{e}"))?),
        None => None,
    };
    keys.socks5.extend(cli.socks5.iter().copied());
    keys.http.extend(cli.http_proxy.iter().copied());
    keys.forwards.extend(cli.forward.iter().cloned());
    keys.reverses.extend(cli.reverse.iter().cloned());
    let s = proxy::Settings {
        socks5: keys.socks5,
        http: keys.http,
        forwards: keys.forwards,
        reverses: keys.reverses,
        auth,
        open: cli.proxy_open || keys.proxy_open,
        direct: cli.proxy_direct || keys.proxy_direct,
    };
    s.check().map_err(|e| anyhow!("{e}"))?;
    Ok(s)
}

/// Whether the command line or the config's `[WrapGuard]` section asks
/// for a front-end (a section that does not parse counts: the run then
/// reports its line).
pub fn asked(cli: &Cli) -> bool {
    if !(cli.socks5.is_empty()
        && cli.http_proxy.is_empty()
        && cli.forward.is_empty()
        && cli.reverse.is_empty())
    {
        return true;
    }
    let Some(text) = cli
        .config
        .as_ref()
        .and_then(|c| std::fs::read_to_string(c).ok())
    else {
        return false;
    };
    match proxy::conf_section::parse(&text) {
        Ok(k) => {
            !(k.socks5.is_empty()
                && k.http.is_empty()
                && k.forwards.is_empty()
                && k.reverses.is_empty())
        }
        Err(_) => true,
    }
}

/// Starts them (if any) on the engine behind `socket`.
pub async fn start(settings: proxy::Settings, socket: &Path) -> Result<()> {
    if !settings.any() {
        return Ok(());
    }
    proxy::start(settings, socket.to_path_buf())
        .await
        .map_err(|e| anyhow!("{e}"))
}
