//! The proxy and port-forward front-ends of this run (`--socks5`,
//! `--http-proxy`, `--forward`, `--reverse`): their settings from the
//! command line, started on the engine's control socket.

use crate::cli::Cli;
use anyhow::{anyhow, Result};
use std::path::Path;

/// The front-ends the command line asks for, checked (credentials file,
/// exposure) before anything starts.
pub fn settings(cli: &Cli) -> Result<proxy::Settings> {
    let auth = match &cli.proxy_auth {
        Some(p) => Some(proxy::auth_file::load(p).map_err(|e| anyhow!("{e}"))?),
        None => None,
    };
    let s = proxy::Settings {
        socks5: cli.socks5.clone(),
        http: cli.http_proxy.clone(),
        forwards: cli.forward.clone(),
        reverses: cli.reverse.clone(),
        auth,
        open: cli.proxy_open,
        direct: cli.proxy_direct,
    };
    s.check().map_err(|e| anyhow!("{e}"))?;
    Ok(s)
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
