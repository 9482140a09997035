//! Runs against wrapguard's test-only host-loopback backend: no WireGuard
//! peer, the "tunnel" prefixes carried to loopback servers, each run in a
//! namespace of its own with only loopback up ([`in_netns`]).

use crate::unshare::in_netns;
use crate::wrapguard::Wrapguard;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Output;

/// Standard test-backend flags: 10.77.0.0/16 and fd77::/64 carried to loopback.
pub fn backend_flags() -> Vec<String> {
    [
        "--test-backend-map=10.77.0.0/16=127.0.0.1",
        "--test-backend-map=fd77::/64=::1",
        "--test-backend-inbound=127.0.0.3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The repository's `example-wg0.conf` (a config the test backend does not
/// use beyond parsing it).
pub fn example_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("example-wg0.conf")
}

/// Runs `wrapguard --config example [backend flags] [extra] -- python3 -c
/// PRELUDE+script` in a namespace of its own.
pub fn run_python(extra: &[&str], script: &str) -> Output {
    let b = Wrapguard::under_test();
    let code = format!("{PRELUDE}\n{script}");
    let mut args: Vec<OsString> = vec![
        b.bin.clone().into(),
        "--config".into(),
        example_config().into(),
    ];
    args.extend(backend_flags().into_iter().map(Into::into));
    args.extend(extra.iter().map(|s| (*s).into()));
    args.push("--".into());
    args.push(b.python.clone().into());
    args.push("-c".into());
    args.push(code.into());
    in_netns(&args).output().expect("run wrapguard")
}

/// Asserts a zero exit and `PASS` on stdout; shows everything otherwise.
pub fn assert_pass(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("PASS"),
        "status {:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    stdout
}

/// Python helpers shared by the [`run_python`] scripts.
pub const PRELUDE: &str = r#"
import errno, os, select, socket, struct, sys, threading, uuid

def server(port=0, host="127.0.0.1", family=socket.AF_INET):
    """A loopback server that accepts one connection, records its peer and
    sends a unique token. Returns (port, token, seen) where seen fills in."""
    token = ("TOKEN-" + uuid.uuid4().hex).encode()
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(8)
    seen = {}
    def run():
        c, a = srv.accept()
        seen["peer"] = a
        c.sendall(token)
        try:
            seen["got"] = c.recv(100)
        except OSError:
            pass
        c.close()
        srv.close()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    seen["thread"] = t
    return srv.getsockname()[1], token, seen

def recv_all(s, n):
    buf = b""
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            break
        buf += d
    return buf
"#;
