//! Harness for the end-to-end tests against wireguard-go: network
//! namespaces we create (and delete on drop, even after a panic), a
//! wireguard-go peer with its TUN inside its own namespace, and wrapguard
//! run in a client namespace that has no route anywhere but the underlay
//! veths, so a leak fails loudly instead of leaving the machine.
//!
//! Topology per test (names carry pid + counter):
//! ```text
//!  netns A<i> (peer i)                      netns B (wrapguard)
//!  wg0: 10.<76+i>.0.1/24, fd<76+i>::1/64     lo
//!  va: 192.168.<76+i>.1/24  <── veth ──>    vb<i>: 192.168.<76+i>.2/24
//! ```

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Why the tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (ip netns and wireguard-go need root)".into());
    }
    for tool in ["ip", "wg", "wireguard-go", "curl", "python3"] {
        if !on_path(tool) {
            return Some(format!(
                "{tool} not installed (apt-get install -y wireguard-go wireguard-tools iperf3 curl iproute2)"
            ));
        }
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun missing".into());
    }
    None
}

/// Whether `tool` is an executable on PATH.
pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p)
            .any(|d| std::fs::metadata(d.join(tool)).is_ok_and(|m| m.is_file()))
    })
}

/// Prints the loud skip line and returns true if the test must skip.
#[macro_export]
macro_rules! skip_unless_ready {
    () => {
        if let Some(why) = wg::skip_reason() {
            eprintln!("SKIPPED: {}: {why}", module_path!());
            println!("SKIPPED: {why}");
            return;
        }
    };
}

/// Runs a command, panicking with its output if it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted (with every process in it) on drop.
pub struct Netns {
    /// Its name.
    pub name: String,
}

impl Netns {
    /// A fresh namespace with loopback up.
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("wge{tag}{}x{n}", std::process::id());
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n <ns> args…`.
    pub fn ip(&self, args: &[&str]) {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        sh(&v);
    }

    /// `ip netns exec <ns> argv…` as a command to configure further.
    pub fn cmd(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]);
        c.args(argv);
        c.stdin(Stdio::null());
        c
    }

    /// Runs `argv` in the namespace and returns its output.
    pub fn run(&self, argv: &[&str]) -> Output {
        self.cmd(argv)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"))
    }

    /// Starts `argv` in the namespace in the background, output to `log`.
    pub fn spawn(&self, argv: &[&str], log: &Path) -> Bg {
        let f = std::fs::File::create(log).expect("log file");
        let f2 = f.try_clone().expect("log file clone");
        let child = self
            .cmd(argv)
            .stdout(f)
            .stderr(f2)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
        Bg { child }
    }

    /// Waits until something listens on TCP `port` in the namespace.
    pub fn wait_tcp_listen(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let filter = format!("sport = :{port}");
        while Instant::now() < deadline {
            let out = self.run(&["ss", "-Hltn", &filter]);
            if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nothing listens on port {port} in {}", self.name);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    // SAFETY: plain kill(2) on a pid living in our own namespace.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A background process, killed on drop.
pub struct Bg {
    /// The process.
    pub child: Child,
}

impl Bg {
    /// Sends SIGTERM and waits up to 5 s for the exit.
    pub fn terminate(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary directory, removed on drop.
pub struct TempDir {
    /// Its path.
    pub path: PathBuf,
}

impl TempDir {
    /// A fresh directory under the system temp dir.
    pub fn new() -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("wge2e-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir { path }
    }

    /// A path inside.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes a file inside (mode 0600) and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.join(name);
        std::fs::write(&p, text).expect("write temp file");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A key pair from `wg genkey` / `wg pubkey`.
pub struct Keys {
    /// Private key, base64.
    pub private: String,
    /// Public key, base64.
    pub public: String,
}

/// Generates keys with wireguard-tools.
pub fn keys() -> Keys {
    let private = sh(&["wg", "genkey"]).trim().to_string();
    let mut c = Command::new("wg")
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("wg pubkey");
    {
        use std::io::Write;
        let mut stdin = c.stdin.take().expect("stdin");
        stdin.write_all(private.as_bytes()).expect("write key");
    }
    let out = c.wait_with_output().expect("wg pubkey output");
    Keys {
        private,
        public: String::from_utf8_lossy(&out.stdout).trim().to_string(),
    }
}

/// One wireguard-go peer in its own namespace, joined to `client` by a veth.
pub struct WgPeer {
    /// The peer's namespace (declared first: dropped before its files).
    pub ns: Netns,
    /// wireguard-go.
    pub wg: Bg,
    /// Its keys.
    pub keys: Keys,
    /// Its underlay address (reachable from the client namespace).
    pub underlay: String,
    /// Its IPv6 underlay address.
    pub underlay6: String,
    /// Its tunnel IPv4 address.
    pub v4: String,
    /// Its tunnel IPv6 address.
    pub v6: String,
    /// UDP port wireguard-go listens on.
    pub port: u16,
    /// Its interface name (unique on the host).
    pub ifname: String,
    /// The `wg set …` command that configures it.
    wg_set: Vec<String>,
    /// Our tunnel prefixes (routed back into the tunnel).
    our_allowed: Vec<String>,
}

/// Starts wireguard-go as `ifname` in `ns`, configures it with `wg_set`,
/// adds its tunnel addresses and routes `our_allowed` into it.
fn start_wireguard_go(
    ns: &Netns,
    ifname: &str,
    wg_set: &[String],
    v4: &str,
    v6: &str,
    our_allowed: &[String],
) -> Bg {
    let wg = ns
        .cmd(&["wireguard-go", ifname])
        .env("WG_PROCESS_FOREGROUND", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start wireguard-go");
    let wg = Bg { child: wg };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ns.run(&["ip", "link", "show", ifname]).status.success() {
        assert!(Instant::now() < deadline, "wireguard-go did not create wg0");
        std::thread::sleep(Duration::from_millis(20));
    }
    let args: Vec<&str> = wg_set.iter().map(String::as_str).collect();
    let out = ns.run(&args);
    assert!(
        out.status.success(),
        "wg set: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", ifname]);
    ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", ifname, "nodad"]);
    ns.ip(&["link", "set", ifname, "up"]);
    // Replies to our tunnel addresses go back through the tunnel.
    for a in our_allowed {
        let _ = ns.run(&["ip", "route", "replace", a, "dev", ifname]);
    }
    wg
}

/// What the wireguard-go side knows about us.
pub struct PeerSetup<'a> {
    /// Peer number (1, 2…): picks its subnets.
    pub index: u8,
    /// Our public key.
    pub our_public: &'a str,
    /// Our tunnel addresses as the peer's AllowedIPs for us.
    pub our_allowed: &'a str,
    /// Our endpoint if the peer should know it (for peers we list without Endpoint).
    pub our_endpoint: Option<&'a str>,
    /// Extra addresses on the peer's loopback (services behind it).
    pub extra_addrs: &'a [&'a str],
    /// More `wg set … peer <us>` arguments (preshared-key, keepalive).
    pub extra_peer_args: &'a [&'a str],
}

impl Drop for WgPeer {
    fn drop(&mut self) {
        // SIGTERM first, so wireguard-go removes its control socket.
        self.wg.terminate();
        let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", self.ifname));
    }
}

impl WgPeer {
    /// Creates namespace A<i>, the veth to `client`, wireguard-go and its config.
    pub fn new(client: &Netns, tmp: &TempDir, s: PeerSetup<'_>) -> WgPeer {
        let i = s.index;
        let ns = Netns::new(&format!("a{i}"));
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let (va, vb) = (
            format!("wa{}x{n}", std::process::id()),
            format!("wb{}x{n}", std::process::id()),
        );
        let underlay = format!("192.168.{}.1", 76 + u32::from(i));
        let ours = format!("192.168.{}.2/24", 76 + u32::from(i));
        sh(&[
            "ip",
            "link",
            "add",
            &va,
            "netns",
            &ns.name,
            "type",
            "veth",
            "peer",
            "name",
            &vb,
            "netns",
            &client.name,
        ]);
        ns.ip(&["addr", "add", &format!("{underlay}/24"), "dev", &va]);
        ns.ip(&["link", "set", &va, "up"]);
        client.ip(&["addr", "add", &ours, "dev", &vb]);
        client.ip(&["link", "set", &vb, "up"]);
        // An IPv6 underlay too (nodad: usable at once).
        let underlay6 = format!("fd00:{}::1", 76 + u32::from(i));
        ns.ip(&[
            "addr",
            "add",
            &format!("{underlay6}/64"),
            "dev",
            &va,
            "nodad",
        ]);
        client.ip(&[
            "addr",
            "add",
            &format!("fd00:{}::2/64", 76 + u32::from(i)),
            "dev",
            &vb,
            "nodad",
        ]);
        for a in s.extra_addrs {
            ns.ip(&["addr", "add", a, "dev", "lo"]);
        }

        let keys = keys();
        // wireguard-go's control socket is /var/run/wireguard/<ifname>.sock,
        // shared by every namespace: the name must be unique on the host.
        let ifname = format!("wg{:x}x{n}", std::process::id());
        let key_file = tmp.write(&format!("peer{i}.key"), &keys.private);
        let port = 51820 + u16::from(i);
        let mut wg_set: Vec<String> = [
            "wg",
            "set",
            &ifname,
            "private-key",
            &key_file.display().to_string(),
            "listen-port",
            &port.to_string(),
            "peer",
            s.our_public,
            "allowed-ips",
            s.our_allowed,
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        if let Some(ep) = s.our_endpoint {
            wg_set.extend(["endpoint".to_string(), ep.to_string()]);
        }
        wg_set.extend(s.extra_peer_args.iter().map(|a| a.to_string()));
        let v4 = format!("10.{}.0.1", 76 + u32::from(i));
        let v6 = format!("fd{}::1", 76 + u32::from(i));
        let our_allowed: Vec<String> = s.our_allowed.split(',').map(String::from).collect();
        let wg = start_wireguard_go(&ns, &ifname, &wg_set, &v4, &v6, &our_allowed);
        WgPeer {
            ns,
            wg,
            keys,
            underlay,
            underlay6,
            v4,
            v6,
            port,
            ifname,
            wg_set,
            our_allowed,
        }
    }

    /// Kills wireguard-go (SIGKILL: no goodbye, its TUN disappears) and
    /// starts a fresh one with the same keys, port and addresses: a peer
    /// restart. The new process has no session and no endpoint for us.
    pub fn restart(&mut self) {
        self.kill();
        self.start();
    }

    /// Kills wireguard-go with SIGKILL and waits for its interface to go.
    pub fn kill(&mut self) {
        let _ = self.wg.child.kill();
        let _ = self.wg.child.wait();
        let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", self.ifname));
        let deadline = Instant::now() + Duration::from_secs(10);
        while self
            .ns
            .run(&["ip", "link", "show", &self.ifname])
            .status
            .success()
        {
            assert!(Instant::now() < deadline, "{} did not go away", self.ifname);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts wireguard-go again after [`WgPeer::kill`].
    pub fn start(&mut self) {
        self.wg = start_wireguard_go(
            &self.ns,
            &self.ifname,
            &self.wg_set,
            &self.v4,
            &self.v6,
            &self.our_allowed,
        );
    }

    /// `wg show <if> <what>` inside the peer's namespace.
    pub fn wg_show(&self, what: &str) -> String {
        let out = self.ns.run(&["wg", "show", &self.ifname, what]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `Endpoint =` value for our config.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.underlay, self.port)
    }

    /// `Endpoint =` value over the IPv6 underlay.
    pub fn endpoint6(&self) -> String {
        format!("[{}]:{}", self.underlay6, self.port)
    }

    /// Starts a python HTTP server on `bind`:8080 serving `dir`; waits until it listens.
    pub fn http_server(&self, dir: &Path, bind: &str, log: &Path) -> Bg {
        let d = dir.display().to_string();
        let bg = self.ns.spawn(
            &[
                "python3",
                "-u",
                "-m",
                "http.server",
                "8080",
                "--bind",
                bind,
                "--directory",
                &d,
            ],
            log,
        );
        self.ns.wait_tcp_listen(8080);
        bg
    }
}

/// Runs `wrapguard --config conf [flags] -- argv` in `ns` with a wall-clock limit.
pub fn wrapguard(ns: &Netns, conf: &Path, flags: &[&str], argv: &[&str]) -> Output {
    wrapguard_limit(ns, conf, flags, argv, 55)
}

/// [`wrapguard`] with a wall-clock limit of `secs`.
pub fn wrapguard_limit(
    ns: &Netns,
    conf: &Path,
    flags: &[&str],
    argv: &[&str],
    secs: u32,
) -> Output {
    let b = crate::common::bins();
    let wg = b.wrapguard.display().to_string();
    let c = conf.display().to_string();
    let limit = secs.to_string();
    let mut v: Vec<&str> = vec!["timeout", &limit, &wg, "--config", &c];
    v.extend_from_slice(flags);
    v.push("--");
    v.extend_from_slice(argv);
    ns.run(&v)
}

/// Shows an output for assertion messages.
pub fn show(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A unique token.
pub fn token(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("TOKEN-{tag}-{}-{n}-{t:x}", std::process::id())
}

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
