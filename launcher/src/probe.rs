//! Hidden modes of the `wrapguard` binary, run as a child with the shim
//! preloaded by `--doctor` and `--self-test` (the child is wrapguard
//! itself, so no other program needs to be installed):
//!
//! * `wrapguard __wrapguard-probe shim SHIM` prints `shim loaded` if
//!   `SHIM` is mapped into this process (the loader honoured `LD_PRELOAD`),
//!   else `shim not loaded`.
//! * `wrapguard __wrapguard-probe connect SHIM IP:PORT MILLIS` prints the
//!   same, then makes one TCP connection with that timeout and prints
//!   `connect connected LOCAL`, `connect refused`, `connect timeout`, or
//!   `connect error ERRNO TEXT`.
//!
//! Only the parent reads this output; it is not a user interface.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// First argument that selects a probe mode.
pub const PROBE_ARG: &str = "__wrapguard-probe";

/// Runs a probe if the command line asks for one; returns its exit code.
pub fn run_if_requested() -> Option<i32> {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if args.first().map(String::as_str) != Some(PROBE_ARG) {
        return None;
    }
    let mut out = Vec::new();
    let code = match args.get(1..).unwrap_or_default() {
        [mode, shim] if mode == "shim" => {
            shim_line(Path::new(shim), &mut out);
            0
        }
        [mode, shim, addr, millis] if mode == "connect" => {
            shim_line(Path::new(shim), &mut out);
            match (addr.parse::<SocketAddr>(), millis.parse::<u64>()) {
                (Ok(a), Ok(ms)) => {
                    out.push(connect_line(a, Duration::from_millis(ms.max(1))));
                    0
                }
                _ => 2,
            }
        }
        _ => 2,
    };
    let mut stdout = std::io::stdout().lock();
    for l in out {
        let _ = writeln!(stdout, "{l}");
    }
    Some(code)
}

/// Whether `shim` is mapped into this process.
fn shim_line(shim: &Path, out: &mut Vec<String>) {
    let want = std::fs::canonicalize(shim).unwrap_or_else(|_| shim.to_path_buf());
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let loaded = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .any(|p| Path::new(p) == want);
    out.push(
        if loaded {
            "shim loaded"
        } else {
            "shim not loaded"
        }
        .to_string(),
    );
}

fn connect_line(addr: SocketAddr, timeout: Duration) -> String {
    match TcpStream::connect_timeout(&addr, timeout) {
        Ok(s) => {
            let local = s
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "?".into());
            format!("connect connected {local}")
        }
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => "connect refused".into(),
        Err(e)
            if e.kind() == std::io::ErrorKind::TimedOut
                || e.raw_os_error() == Some(libc::ETIMEDOUT) =>
        {
            "connect timeout".into()
        }
        Err(e) => format!("connect error {} {e}", e.raw_os_error().unwrap_or(0)),
    }
}

/// What a probe child reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    /// The shim was mapped into the child.
    pub shim_loaded: bool,
    /// The connection outcome, if one was made.
    pub connect: Option<ConnectOutcome>,
}

/// How the probe's connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectOutcome {
    /// Established; our local address as the program saw it.
    Connected(String),
    /// `ECONNREFUSED`: something answered with a reset.
    Refused,
    /// No answer within the timeout.
    Timeout,
    /// Another errno, with its text.
    Error(i32, String),
}

impl ProbeReport {
    /// Parses a probe's stdout.
    pub fn parse(stdout: &str) -> ProbeReport {
        let mut r = ProbeReport {
            shim_loaded: false,
            connect: None,
        };
        for l in stdout.lines() {
            if l == "shim loaded" {
                r.shim_loaded = true;
            } else if let Some(rest) = l.strip_prefix("connect ") {
                let (word, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                r.connect = Some(match word {
                    "connected" => ConnectOutcome::Connected(tail.to_string()),
                    "refused" => ConnectOutcome::Refused,
                    "timeout" => ConnectOutcome::Timeout,
                    _ => {
                        let (n, text) = tail.split_once(' ').unwrap_or((tail, ""));
                        ConnectOutcome::Error(n.parse().unwrap_or(0), text.to_string())
                    }
                });
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_reports() {
        let r = ProbeReport::parse("shim loaded\nconnect connected 10.77.0.2:4000\n");
        assert!(r.shim_loaded);
        assert_eq!(
            r.connect,
            Some(ConnectOutcome::Connected("10.77.0.2:4000".into()))
        );
        let r = ProbeReport::parse(
            "shim not loaded\nconnect error 113 No route to host (os error 113)\n",
        );
        assert!(!r.shim_loaded);
        assert_eq!(
            r.connect,
            Some(ConnectOutcome::Error(
                113,
                "No route to host (os error 113)".into()
            ))
        );
        assert_eq!(
            ProbeReport::parse("connect refused").connect,
            Some(ConnectOutcome::Refused)
        );
        assert_eq!(ProbeReport::parse("").connect, None);
    }
}
