//! Servers and clients the tests run on the peer side, and the waits
//! that go with them: a bulk transfer with sha256 checks at both ends, a
//! TCP echo server, any python server script, a UDP client that sends
//! until answered, `curl` retried while a wrapped server starts, and
//! waits for a log line or a condition.

use crate::netns::{Bg, Netns};
use crate::peer::WgPeer;
use crate::tempdir::{read, TempDir};
use crate::wrapguard::python;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

/// Peer-side bulk server: port 9001 takes an upload and answers
/// `<bytes> <sha256>`; port 9002 sends N seeded random bytes.
pub const BULK_SERVER: &str = r#"
import hashlib, random, socket, sys, threading
N = int(sys.argv[1])
def up(c):
    h = hashlib.sha256(); n = 0
    while True:
        d = c.recv(1 << 20)
        if not d: break
        h.update(d); n += len(d)
    c.sendall(("%d %s\n" % (n, h.hexdigest())).encode()); c.close()
def down(c):
    data = random.Random(7).randbytes(N)
    c.sendall(data); c.close()
def serve(port, f):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(4)
    while True:
        c, _ = s.accept(); threading.Thread(target=f, args=(c,), daemon=True).start()
threading.Thread(target=serve, args=(9001, up), daemon=True).start()
serve(9002, down)
"#;

/// Wrapped bulk client: uploads N seeded bytes to 9001, downloads N from
/// 9002, checks both sha256 digests, prints `UP … DOWN …` and `PASS`.
pub const BULK_CLIENT: &str = r#"
import hashlib, random, socket, sys, time
N = int(sys.argv[1])
data = random.Random(7).randbytes(N)
want = hashlib.sha256(data).hexdigest()
t = time.time()
s = socket.create_connection(("10.77.0.1", 9001), timeout=300)
view = memoryview(data)
for i in range(0, N, 1 << 20):
    s.sendall(view[i:i + (1 << 20)])
s.shutdown(socket.SHUT_WR)
reply = b""
while not reply.endswith(b"\n"):
    d = s.recv(200)
    if not d: break
    reply += d
up = time.time() - t
n, digest = reply.decode().split()
assert int(n) == N and digest == want, "upload mismatch %r" % reply
t = time.time()
s = socket.create_connection(("10.77.0.1", 9002), timeout=300)
h = hashlib.sha256(); got = 0
while True:
    d = s.recv(1 << 20)
    if not d: break
    h.update(d); got += len(d)
down = time.time() - t
assert got == N and h.hexdigest() == want, "download mismatch %d" % got
print("UP %.2f s %.1f Mbit/s DOWN %.2f s %.1f Mbit/s" % (up, N * 8 / up / 1e6, down, N * 8 / down / 1e6))
print("PASS")
"#;

/// `curl` in `ns`, retried for up to `secs` until it gets an answer (a
/// wrapped server that is still starting resets or does not answer).
pub fn curl_retrying(ns: &Netns, url: &str, secs: u32) -> Output {
    let limit = secs.to_string();
    ns.run(&[
        "curl",
        "-sS",
        "-g",
        "--max-time",
        "5",
        "--retry",
        "40",
        "--retry-delay",
        "0",
        "--retry-all-errors",
        "--retry-max-time",
        &limit,
        url,
    ])
}

/// Waits up to `secs` for a line of `path` that starts with one of `what`
/// (so a logged command line quoting a script does not count); returns
/// that line, or "" on timeout. When the program's output and wrapguard's
/// log share the file, a log line (`{"timestamp":…}` and its newline, one
/// write) may land inside a line of the program's (`python3 -u` writes
/// `print`'s pieces separately): such log lines are taken out first, and
/// only whole lines count (a line caught half-written does not).
pub fn wait_line(path: &Path, what: &[&str], secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = without_log_lines(&read(path));
        let whole = s.split_inclusive('\n').filter_map(|l| l.strip_suffix('\n'));
        if let Some(l) = whole
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .find(|l| what.iter().any(|w| l.starts_with(w)))
        {
            return l.to_string();
        }
        if Instant::now() > deadline {
            return String::new();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The sha256 of the file at `p`, in hex (`sha256sum`).
pub fn sha256_file(p: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(p)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `s` without wrapguard's log lines, wherever they start: a program's own
/// output from a file it shares with wrapguard's log (see [`wait_line`]).
pub fn without_log_lines(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("{\"timestamp\":") {
        out.push_str(&rest[..i]);
        rest = match rest[i..].find('\n') {
            Some(j) => &rest[i + j + 1..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// [`BULK_SERVER`] running on the peer for `n` bytes, and the path of
/// [`BULK_CLIENT`] to run wrapped.
pub struct Bulk {
    /// The server (killed on drop).
    pub server: Bg,
    /// Its output.
    pub log: PathBuf,
    /// The client script.
    pub client: String,
    /// Bytes each way, as an argument.
    pub n: String,
}

/// Starts [`BULK_SERVER`] for `n` bytes in `peer`'s namespace and waits
/// until it listens.
pub fn bulk_server(peer: &WgPeer, tmp: &TempDir, n: usize) -> Bulk {
    let py = python();
    let srv_py = tmp.write("bulk_server.py", BULK_SERVER);
    let client = tmp
        .write("bulk_client.py", BULK_CLIENT)
        .display()
        .to_string();
    let log = tmp.join("bulk.log");
    let n = n.to_string();
    let server = peer
        .ns
        .spawn(&[&py, &srv_py.display().to_string(), &n], &log);
    peer.ns.wait_tcp_listen(9002);
    Bulk {
        server,
        log,
        client,
        n,
    }
}

/// Runs the python `script` (unbuffered) in `peer`'s namespace, output to
/// `<name>.log` in `tmp`, and waits until it listens on TCP `port`.
/// Returns the process and its log.
pub fn peer_server(
    peer: &WgPeer,
    tmp: &TempDir,
    name: &str,
    script: &str,
    port: u16,
) -> (Bg, PathBuf) {
    let file = tmp.write(&format!("{name}.py"), script);
    let log = tmp.join(&format!("{name}.log"));
    let bg = peer
        .ns
        .spawn(&[&python(), "-u", &file.display().to_string()], &log);
    peer.ns.wait_tcp_listen(port);
    (bg, log)
}

/// A TCP echo server on `port` (all addresses) in `peer`'s namespace, one
/// thread per connection; returns once it listens.
pub fn tcp_echo_server(peer: &WgPeer, tmp: &TempDir, port: u16) -> Bg {
    let script = format!(
        r#"
import socket, threading
def echo(c):
    try:
        while True:
            d = c.recv(65536)
            if not d: break
            c.sendall(d)
    except OSError:
        pass
    c.close()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", {port})); s.listen(128)
while True:
    c, _ = s.accept(); threading.Thread(target=echo, args=(c,), daemon=True).start()
"#
    );
    peer_server(peer, tmp, &format!("echo{port}"), &script, port).0
}

/// Peer side: sends `argv[3]` to `argv[1]`:`argv[2]` over UDP until an
/// answer comes (30 s) and prints `GOT <source> <answer>`, else `NO ANSWER`.
pub const UDP_PING_CLIENT: &str = r#"
import socket, sys, time
host, port, msg = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(0.5)
end = time.time() + 30
while time.time() < end:
    s.sendto(msg, (host, port))
    try:
        d, a = s.recvfrom(2048)
        print("GOT", a[0], d.decode(), flush=True); sys.exit(0)
    except socket.timeout:
        pass
print("NO ANSWER", flush=True); sys.exit(1)
"#;

/// Waits up to `secs` until `ok()`; panics with `what` otherwise.
pub fn wait_until(secs: u64, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits up to `secs` until the file at `path` (a log) contains `text`;
/// returns its text then, and panics with it on timeout.
pub fn wait_log(path: &Path, text: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = read(path);
        if s.contains(text) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {text:?} in {}:\n{s}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
