//! Helpers for the end-to-end tests: a `wrapguard` binary with a freshly
//! built `libwrapguard.so` beside it, python3, and a private network
//! namespace (only loopback up) around every run, so nothing that tries to
//! reach a "tunnel" address can leave the machine.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// Where the test copies of `wrapguard` and `libwrapguard.so` live.
pub struct Bins {
    /// Directory with both files.
    pub dir: PathBuf,
    /// The `wrapguard` copy.
    pub wrapguard: PathBuf,
    /// The `libwrapguard.so` copy.
    pub shim: PathBuf,
    /// A real python3 executable (not a shell shim).
    pub python: PathBuf,
}

static BINS: OnceLock<Bins> = OnceLock::new();

/// Builds the shim (own target subdirectory, so no lock is shared with the
/// cargo running this test) and places it next to a copy of `wrapguard`.
pub fn bins() -> &'static Bins {
    BINS.get_or_init(|| {
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_wrapguard"));
        let target = exe
            .parent()
            .and_then(Path::parent)
            .expect("target dir above the binary")
            .to_path_buf();
        let shim_target = target.join("e2e-shim");
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let st = Command::new(env!("CARGO"))
            .current_dir(workspace)
            .args(["build", "-q", "-p", "wrapguard-preload", "--target-dir"])
            .arg(&shim_target)
            .status()
            .expect("run cargo build for the shim");
        assert!(st.success(), "building libwrapguard.so failed");
        let dir = target.join("e2e-bin");
        std::fs::create_dir_all(&dir).expect("e2e-bin dir");
        let wrapguard = dir.join("wrapguard");
        let shim = dir.join("libwrapguard.so");
        copy_atomic(&exe, &wrapguard);
        copy_atomic(&shim_target.join("debug").join("libwrapguard.so"), &shim);
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 is needed by the end-to-end tests");
        let python = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Bins {
            dir,
            wrapguard,
            shim,
            python,
        }
    })
}

fn copy_atomic(from: &Path, to: &Path) {
    let tmp = to.with_extension(format!("tmp{}", std::process::id()));
    std::fs::copy(from, &tmp)
        .unwrap_or_else(|e| panic!("copy {} -> {}: {e}", from.display(), tmp.display()));
    std::fs::rename(&tmp, to).expect("rename into place");
}

/// `unshare -n` (as root) or `unshare -rn`, loopback up, then `argv`.
pub fn in_netns(argv: &[&std::ffi::OsStr]) -> Command {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let mut c = Command::new("unshare");
    c.arg(if root { "-n" } else { "-rn" });
    c.args(["sh", "-c", "ip link set lo up && exec \"$@\"", "sh"]);
    c.args(argv);
    c.stdin(Stdio::null());
    c
}

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

/// A config file path for the tests (not parsed by the test backend).
pub fn config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("example-wg0.conf")
}

/// Runs `wrapguard [extra] -- python3 -c PRELUDE+script` in a namespace.
pub fn run_python(extra: &[&str], script: &str) -> Output {
    let b = bins();
    let code = format!("{PRELUDE}\n{script}");
    let mut args: Vec<std::ffi::OsString> = vec![
        b.wrapguard.clone().into(),
        "--config".into(),
        config().into(),
    ];
    args.extend(backend_flags().into_iter().map(Into::into));
    args.extend(extra.iter().map(|s| (*s).into()));
    args.push("--".into());
    args.push(b.python.clone().into());
    args.push("-c".into());
    args.push(code.into());
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    in_netns(&refs).output().expect("run wrapguard")
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

/// Python helpers shared by the scripts.
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
