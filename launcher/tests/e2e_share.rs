//! One tunnel per key: wrapguard instances with the same private key share
//! one engine (one address, one port space, one WireGuard session), and
//! `up` / `exec` / `status` / `ls` / `down` manage a tunnel of its own.
//! Against wireguard-go in namespaces, under the leak guard (every target
//! is a tunnel address inside the test's namespaces). Needs root,
//! wireguard-go, wireguard-tools; prints `SKIPPED:` and passes otherwise.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};
use wrapguard_testnet::{
    python, read, show, skip_unless_ready, spawn_wrapguard, token, wait_log, wait_until, Bg, Conf,
    Configured, OnePeer, Wrapguard,
};

/// Peer 1 (10.77.0.1) and our IPv4 config for it (`wg0.conf`).
fn world(tag: &str) -> Configured {
    OnePeer::new(tag).configured(Conf::V4)
}

/// [`world`] with its tunnel up (`wrapguard up`, named `wg0`).
fn world_up(tag: &str) -> Configured {
    let t = world(tag);
    let conf = t.conf.display().to_string();
    let up = wg(&t, &["up", "--config", &conf]);
    assert!(up.status.success(), "{}", show(&up));
    t
}

/// `wrapguard down NAME`, which must succeed.
fn down(t: &OnePeer, name: &str) {
    let out = wg(t, &["down", name]);
    assert!(out.status.success(), "{}", show(&out));
}

/// `wrapguard args…` inside the client namespace (subcommands).
fn wg(t: &OnePeer, args: &[&str]) -> Output {
    let bin = Wrapguard::under_test().bin.display().to_string();
    let mut v = vec!["timeout", "60", bin.as_str()];
    v.extend_from_slice(args);
    t.client.run(&v)
}

/// `wrapguard args…` in the client namespace, in the background.
fn wg_bg(t: &OnePeer, args: &[&str], log: &Path) -> Bg {
    let bin = Wrapguard::under_test().bin.display().to_string();
    let mut v = vec!["timeout", "120", bin.as_str()];
    v.extend_from_slice(args);
    t.client.spawn(&v, log)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The engine pid an instance's log names (`Tunnel: NAME (engine pid N…`).
fn engine_pid(log: &str) -> Option<u32> {
    let at = log.find("(engine pid ")? + "(engine pid ".len();
    let digits: String = log[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A file of `mib` MiB of random bytes in a web root on the peer side,
/// served on 8080; returns the server, its access log and the file's sha256.
fn blob_server(t: &OnePeer, mib: usize) -> (Bg, PathBuf, String) {
    blob_server_on(t, 8080, mib)
}

/// [`blob_server`] on TCP `port`.
fn blob_server_on(t: &OnePeer, port: u16, mib: usize) -> (Bg, PathBuf, String) {
    let root = t.tmp.webroot(&format!("www-blob-{port}"), "index");
    let blob = root.join("blob");
    let st = std::process::Command::new("head")
        .args(["-c", &format!("{}", mib << 20), "/dev/urandom"])
        .stdout(std::fs::File::create(&blob).expect("blob"))
        .status()
        .expect("head");
    assert!(st.success());
    let sum = sha256(&blob);
    let log = t.tmp.join(&format!("http-blob-{port}.log"));
    let srv = t.peer.http_server_on(port, &root, "0.0.0.0", &log);
    (srv, log, sum)
}

fn sha256(p: &Path) -> String {
    wrapguard_testnet::sha256_file(p)
}

/// curl's `-w` report: `speed=<bytes/s> size=<bytes>`.
fn curl_speed(out: &str) -> Option<(f64, f64)> {
    let l = out.lines().find(|l| l.starts_with("speed="))?;
    let mut speed = None;
    let mut size = None;
    for kv in l.split_whitespace() {
        match kv.split_once('=') {
            Some(("speed", v)) => speed = v.parse().ok(),
            Some(("size", v)) => size = v.parse().ok(),
            _ => {}
        }
    }
    Some((speed?, size?))
}

#[test]
fn two_instances_share_the_tunnel_and_the_first_leaving_does_not_disturb_the_second() {
    skip_unless_ready!();
    let t = world("sh2");
    // 30 s at 2 MiB/s each.
    const RATE: usize = 2 << 20;
    let (_srv, access, sum) = blob_server(&t, 60);
    let curl = |out: &Path| -> Vec<String> {
        [
            "curl",
            "-sS",
            "--max-time",
            "90",
            "--limit-rate",
            &RATE.to_string(),
            "-o",
            &out.display().to_string(),
            "-w",
            "speed=%{speed_download} size=%{size_download}\n",
            "http://10.77.0.1:8080/blob",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let (out_a, out_b) = (t.tmp.join("a.bin"), t.tmp.join("b.bin"));
    let (log_a, log_b) = (t.tmp.join("a.log"), t.tmp.join("b.log"));
    let argv_a = curl(&out_a);
    let argv_b = curl(&out_b);
    let started = Instant::now();
    let mut a = spawn_wrapguard(
        &t.client,
        &t.conf,
        &[],
        &argv_a.iter().map(String::as_str).collect::<Vec<_>>(),
        &log_a,
        120,
    );
    wait_log(&log_a, "Launching:", 20);
    // The second starts while the first downloads; it finishes ~5 s after
    // the first has exited.
    std::thread::sleep(Duration::from_secs(5));
    let mut b = spawn_wrapguard(
        &t.client,
        &t.conf,
        &[],
        &argv_b.iter().map(String::as_str).collect::<Vec<_>>(),
        &log_b,
        120,
    );
    let st_a = a.child.wait().expect("wait a");
    let a_done = started.elapsed();
    let b_running = b.child.try_wait().expect("try_wait b").is_none();
    let st_b = b.child.wait().expect("wait b");
    let (la, lb) = (read(&log_a), read(&log_b));
    assert!(st_a.success(), "first instance failed:\n{la}");
    assert!(st_b.success(), "second instance failed:\n{lb}");
    assert!(
        b_running,
        "the second download was over before the first instance exited ({a_done:?}):\n{lb}"
    );
    // One engine for both: the second attached to the first's.
    let (pa, pb) = (engine_pid(&la), engine_pid(&lb));
    assert!(
        pa.is_some() && pa == pb,
        "engine pids {pa:?} / {pb:?}:\n{la}\n{lb}"
    );
    assert!(la.contains("started the tunnel engine"), "{la}");
    assert!(!lb.contains("started the tunnel engine"), "{lb}");
    assert!(
        lb.contains("shared with the programs already on it"),
        "{lb}"
    );
    for (name, log, file) in [("first", &la, &out_a), ("second", &lb, &out_b)] {
        let (speed, size) = curl_speed(log).unwrap_or_else(|| panic!("no curl report:\n{log}"));
        assert_eq!(size as usize, 60 << 20, "{name}: size\n{log}");
        assert!(
            speed >= 0.9 * RATE as f64,
            "{name}: {speed:.0} B/s is below 90% of its {RATE} B/s limit:\n{log}"
        );
        assert_eq!(sha256(file), sum, "{name}: bytes differ");
    }
    // The server saw both requests from our tunnel address.
    let acc = read(&access);
    assert_eq!(
        acc.lines()
            .filter(|l| l.starts_with("10.77.0.2 ") && l.contains("GET /blob"))
            .count(),
        2,
        "{acc}"
    );
    // One WireGuard session: the peer knows one endpoint for us, the
    // engine's one UDP port.
    let eps = t.peer.wg_show("endpoints");
    let port = la
        .lines()
        .find_map(|l| l.split("Listening on UDP port ").nth(1))
        .map(|p| {
            p.trim_end_matches(|c: char| !c.is_ascii_digit())
                .to_string()
        })
        .expect("engine's UDP port in the first log");
    assert!(
        eps.contains(&format!(":{port}")),
        "peer endpoints {eps:?}, port {port}"
    );
}

#[test]
fn eight_instances_started_at_once_share_one_engine_and_one_session() {
    skip_unless_ready!();
    let t = world("sh8");
    let tok = token("eight");
    let (_srv, access) = t.serve_page(&tok, "0.0.0.0");
    let bin = Wrapguard::under_test().bin.display().to_string();
    let conf = t.conf.display().to_string();
    let dir = t.tmp.join("eight");
    std::fs::create_dir_all(&dir).expect("dir");
    let script = format!(
        "for i in 1 2 3 4 5 6 7 8; do \
           {bin} --config {conf} -- curl -sS --max-time 30 http://10.77.0.1:8080/ \
             >{d}/out.$i 2>{d}/log.$i & \
         done; wait",
        d = dir.display()
    );
    let out = t.client.run(&["timeout", "90", "sh", "-c", &script]);
    assert!(out.status.success(), "{}", show(&out));
    let mut pids = Vec::new();
    let mut started = 0;
    let mut ports = Vec::new();
    for i in 1..=8 {
        let o = read(&dir.join(format!("out.{i}")));
        let l = read(&dir.join(format!("log.{i}")));
        assert_eq!(o.trim(), tok, "instance {i}:\n{l}");
        pids.push(engine_pid(&l).unwrap_or_else(|| panic!("instance {i}: no engine pid\n{l}")));
        if l.contains("started the tunnel engine") {
            started += 1;
        }
        ports.extend(
            l.lines()
                .filter_map(|x| x.split("Listening on UDP port ").nth(1))
                .map(|p| {
                    p.chars()
                        .take_while(char::is_ascii_digit)
                        .collect::<String>()
                }),
        );
    }
    pids.dedup();
    assert_eq!(pids.len(), 1, "more than one engine: {pids:?}");
    assert_eq!(started, 1, "engines started by the 8 instances");
    assert_eq!(ports.len(), 1, "UDP sockets opened: {ports:?}");
    let eps = t.peer.wg_show("endpoints");
    assert!(eps.contains(&format!(":{}", ports[0])), "{eps}");
    let acc = read(&access);
    assert_eq!(
        acc.lines().filter(|l| l.starts_with("10.77.0.2 ")).count(),
        8,
        "{acc}"
    );
}

/// A python program that connects to the peer's echo-less HTTP server
/// and holds the connection open until killed, printing `HELD` once
/// connected: a flow `status` can count.
const HOLD: &str = r#"
import socket, sys, time
s = socket.create_connection(("10.77.0.1", 8080), timeout=10)
print("HELD", flush=True)
try:
    s.settimeout(120)
    while True:
        d = s.recv(65536)
        if not d:
            print("EOF", flush=True); sys.exit(3)
except OSError as e:
    print("ERR", e.errno, flush=True); sys.exit(4)
"#;

#[test]
fn up_exec_status_ls_down() {
    skip_unless_ready!();
    let t = world("shup");
    let tok = token("upexec");
    let (_srv, access) = t.serve_page(&tok, "0.0.0.0");
    let (_blob_srv, _blob_access, _sum) = blob_server_on(&t, 8081, 20);
    let conf = t.conf.display().to_string();
    let up = wg(&t, &["up", "--config", &conf, "--name", "tun7"]);
    assert!(up.status.success(), "{}", show(&up));
    let so = stdout(&up);
    assert!(so.starts_with("tunnel tun7 is up: 10.77.0.2/24"), "{so}");
    assert!(so.contains("handshake with "), "{so}");

    // A program on it, by name; at debug it shows the engine's flow lines
    // (the engine, started at info, follows the most verbose instance).
    let ex = wg(
        &t,
        &[
            "exec",
            "tun7",
            "--log-level=debug",
            "--",
            "curl",
            "-sS",
            "--max-time",
            "20",
            "http://10.77.0.1:8080/",
        ],
    );
    assert!(ex.status.success(), "{}", show(&ex));
    assert_eq!(stdout(&ex).trim(), tok, "{}", show(&ex));
    assert!(read(&access).lines().any(|l| l.starts_with("10.77.0.2 ")));
    let exec_log = String::from_utf8_lossy(&ex.stderr).into_owned();
    assert!(
        exec_log.contains("shared with the programs already on it"),
        "{exec_log}"
    );
    assert!(
        exec_log.lines().any(|l| l.contains("\"level\":\"debug\"")
            && l.contains("flow opened")
            && l.contains("10.77.0.1:8080")),
        "no engine flow line forwarded:\n{exec_log}"
    );

    // A program holding a connection, and a transfer (20 MiB at 1 MiB/s).
    let hold = t.tmp.write("hold.py", HOLD);
    let hold_log = t.tmp.join("hold.log");
    let py = python();
    let marker = token("held");
    let mut held = wg_bg(
        &t,
        &[
            "exec",
            "tun7",
            "--",
            &py,
            &hold.display().to_string(),
            &marker,
        ],
        &hold_log,
    );
    wait_log(&hold_log, "HELD", 30);
    let curl_log = t.tmp.join("curl.log");
    let mut transfer = wg_bg(
        &t,
        &[
            "exec",
            "tun7",
            "--",
            "curl",
            "-sS",
            "--limit-rate",
            "1048576",
            "-o",
            "/dev/null",
            "-w",
            "size=%{size_download}\n",
            "http://10.77.0.1:8081/blob",
        ],
        &curl_log,
    );

    // ls
    let ls = wg(&t, &["ls"]);
    assert!(ls.status.success(), "{}", show(&ls));
    let l = stdout(&ls);
    assert!(
        l.lines()
            .any(|x| x.starts_with("tun7 ") && x.contains("10.77.0.2/24") && x.contains(" up ")),
        "{l}"
    );

    // status, text: peer, handshake, transfer, both programs with their flows.
    let mut text = String::new();
    wait_until(10, "status to show both flows", || {
        let st = wg(&t, &["status", "tun7"]);
        text = stdout(&st);
        text.contains(&marker) && text.contains("  flows: 2") && text.contains(": curl ")
    });
    assert!(text.starts_with("tunnel: tun7\n"), "{text}");
    assert!(text.contains("\npeer: "), "{text}");
    assert!(
        text.contains("latest handshake: ") && text.contains(" ago"),
        "{text}"
    );
    assert!(
        text.contains("transfer: ") && text.contains(" received, "),
        "{text}"
    );
    assert!(text.contains("\nprogram: pid "), "{text}");
    assert!(text.contains("counters: rx_datagrams="), "{text}");

    // status, JSON.
    let st = wg(&t, &["status", "tun7", "--json"]);
    assert!(st.status.success(), "{}", show(&st));
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).expect("status --json is JSON");
    assert_eq!(v["tunnel"]["name"], "tun7");
    assert_eq!(v["tunnel"]["persistent"], true);
    assert!(v["peers"][0]["rx_bytes"].as_u64().unwrap_or(0) > 0, "{v}");
    assert!(v["peers"][0]["latest_handshake_secs"].is_u64(), "{v}");
    let progs = v["programs"].as_array().expect("programs");
    let p = progs
        .iter()
        .find(|p| p["command"].as_str().is_some_and(|c| c.contains(&marker)))
        .unwrap_or_else(|| panic!("held program not listed: {v}"));
    assert_eq!(p["flows"], 1, "{v}");
    assert!(p["pid"].is_u64(), "{v}");
    let c = progs
        .iter()
        .find(|p| {
            p["command"]
                .as_str()
                .is_some_and(|c| c.starts_with("curl "))
        })
        .unwrap_or_else(|| panic!("curl not listed: {v}"));
    assert_eq!(c["flows"], 1, "{v}");
    assert!(v["flows"].as_u64().unwrap_or(0) >= 2, "{v}");
    assert!(
        v["counters"]["rx_datagrams"].as_u64().unwrap_or(0) > 0,
        "{v}"
    );

    // down during the transfer and while the connection is held: both are
    // cut (a reset, not an EOF that would pass for a complete transfer).
    std::thread::sleep(Duration::from_secs(2));
    let down = wg(&t, &["down", "tun7"]);
    assert!(down.status.success(), "{}", show(&down));
    assert_eq!(
        stdout(&down).trim(),
        "tunnel tun7 is down: 2 tunnel connections cut",
        "{}",
        show(&down)
    );
    let st = transfer.child.wait().expect("curl exits");
    let cl = read(&curl_log);
    assert_eq!(st.code(), Some(56), "curl was not cut by a reset:\n{cl}");
    assert!(cl.contains("Connection reset by peer"), "{cl}");
    let got: usize = cl
        .lines()
        .find_map(|l| l.strip_prefix("size="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(usize::MAX);
    assert!(got > 0 && got < 20 << 20, "curl got {got} bytes:\n{cl}");
    let st = held.child.wait().expect("held exits");
    let hl = read(&hold_log);
    assert_eq!(
        st.code(),
        Some(4),
        "the held connection was not reset:\n{hl}"
    );
    assert!(hl.contains(&format!("ERR {}", libc::ECONNRESET)), "{hl}");
    assert!(hl.contains("was taken down (wrapguard down)"), "{hl}");
    let ls = wg(&t, &["ls"]);
    assert!(stdout(&ls).contains("no tunnels run"), "{}", show(&ls));
    let ex = wg(&t, &["exec", "tun7", "--", "true"]);
    assert_eq!(ex.status.code(), Some(1), "{}", show(&ex));
    assert!(
        String::from_utf8_lossy(&ex.stderr).contains("no tunnel named tun7 runs"),
        "{}",
        show(&ex)
    );
}

/// Listens on the tunnel port 8090 and serves one line per connection
/// (`srv <tag>`); or, with `bind`, reports what binding 8090 gives.
const LISTEN: &str = r#"
import socket, sys
tag = sys.argv[1]
s = socket.socket()
try:
    s.bind(("0.0.0.0", 8090))
except OSError as e:
    print("BIND", e.errno, flush=True); sys.exit(0)
s.listen(8)
print("LISTENING", flush=True)
while True:
    c, a = s.accept()
    c.sendall(("srv %s\n" % tag).encode()); c.close()
"#;

#[test]
fn programs_of_different_instances_share_one_port_space() {
    skip_unless_ready!();
    let t = world_up("shport");
    let script = t.tmp.write("listen.py", LISTEN);
    let py = python();
    let log1 = t.tmp.join("l1.log");
    let _first = wg_bg(
        &t,
        &[
            "exec",
            "wg0",
            "--",
            &py,
            &script.display().to_string(),
            "one",
        ],
        &log1,
    );
    wait_log(&log1, "LISTENING", 30);
    let second = wg(
        &t,
        &[
            "exec",
            "wg0",
            "--",
            &py,
            &script.display().to_string(),
            "two",
        ],
    );
    let so = stdout(&second);
    assert_eq!(
        so.trim(),
        format!("BIND {}", libc::EADDRINUSE),
        "{}",
        show(&second)
    );
    // From the peer, the port reaches the program that listens.
    let got = t.peer.ns.run(&["timeout", "20", &py, "-c",
        "import socket; s=socket.create_connection(('10.77.0.2',8090),timeout=10); print(s.recv(100).decode().strip())"]);
    assert_eq!(stdout(&got).trim(), "srv one", "{}", show(&got));
    down(&t, "wg0");
}

#[test]
fn a_killed_engine_leaves_nothing_that_stops_the_next_start() {
    skip_unless_ready!();
    let t = world("shkill");
    let tok = token("afterkill");
    let (_srv, _access) = t.serve_page(&tok, "0.0.0.0");
    let log = t.tmp.join("first.log");
    let mut first = spawn_wrapguard(&t.client, &t.conf, &[], &["sleep", "60"], &log, 90);
    let l = wait_log(&log, "Launching:", 20);
    let pid = engine_pid(&l).expect("engine pid");
    // SAFETY: kill(2) with a pid we read from our own test's log.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    wait_log(&log, "is gone", 10);
    let out = wrapguard_testnet::wrapguard(
        &t.client,
        &t.conf,
        &[],
        &["curl", "-sS", "--max-time", "20", "http://10.77.0.1:8080/"],
    );
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(stdout(&out).trim(), tok);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("started the tunnel engine"), "{err}");
    assert_ne!(engine_pid(&err), Some(pid), "{err}");
    first.terminate();
}

#[test]
fn a_different_config_on_the_same_key_is_refused_with_the_difference() {
    skip_unless_ready!();
    let t = world_up("shdiff");
    let other = t.conf(
        "other.conf",
        Conf {
            address: "10.77.0.3/24",
            ..Conf::V4
        },
    );
    let out = wrapguard_testnet::wrapguard(&t.client, &other, &[], &["true"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        err.lines()
            .filter(|l| l.contains("\"level\":\"error\""))
            .count(),
        1,
        "{err}"
    );
    assert!(
        err.contains("Address: 10.77.0.3/24 here, 10.77.0.2/24 in the running tunnel"),
        "{err}"
    );
    assert!(
        err.contains("wrapguard down wg0") && err.contains("--no-share"),
        "{err}"
    );
    // The same config asking for the other congestion control than the
    // running engine's (the host's default when none is asked for).
    let host =
        std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control").unwrap_or_default();
    let (ask, running) = if host.trim() == "bbr" {
        ("cubic", "bbr")
    } else {
        ("bbr", "cubic")
    };
    let flag = format!("--tcp-congestion={ask}");
    let out = wrapguard_testnet::wrapguard(&t.client, &t.conf, &[&flag], &["true"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains(&format!(
            "TcpCongestion: {ask} here, {running} in the running tunnel"
        )),
        "{err}"
    );
    // --no-share runs anyway, with the warning.
    let out = wrapguard_testnet::wrapguard(&t.client, &other, &["--no-share"], &["true"]);
    assert!(out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.lines()
            .any(|l| l.contains("\"level\":\"warn\"") && l.contains("--no-share")),
        "{err}"
    );
    down(&t, "wg0");
}

/// Connects to a unix socket, sends the session frame and a describe
/// request, prints `REPLY <line>`, `NOANSWER` (closed or reset without a
/// reply), or `ERR <errno>`.
const ATTACH_PROBE: &str = r#"
import socket, sys
try:
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.sendall(bytes([2, 0, 1, 15]) + b'{"op":"describe"}\n')
    s.settimeout(5)
    d = s.recv(4096)
    print("REPLY " + d.decode() if d else "NOANSWER", flush=True)
except (ConnectionResetError, BrokenPipeError):
    print("NOANSWER", flush=True)
except OSError as e:
    print("ERR", e.errno, flush=True)
"#;

#[test]
fn another_user_cannot_attach() {
    skip_unless_ready!();
    let t = world_up("shuid");
    let ls = wg(&t, &["ls", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&ls.stdout).expect("ls --json");
    let socket = v[0]["socket"].as_str().expect("socket path").to_string();
    // A python every uid can run (a per-user install, e.g. pyenv, may not be).
    let py = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3".to_string()
    } else {
        python()
    };
    // Our own probe gets an answer (the probe works) …
    let me = t.client.run(&[&py, "-c", ATTACH_PROBE, &socket]);
    assert!(
        stdout(&me).starts_with("REPLY {\"reply\":\"described\""),
        "{}",
        show(&me)
    );
    // … another uid does not even reach the socket (0700 directory) …
    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    let mut argv: Vec<&str> = nobody.to_vec();
    argv.extend([py.as_str(), "-c", ATTACH_PROBE, &socket]);
    let other = t.client.run(&argv);
    assert_eq!(
        stdout(&other).trim(),
        format!("ERR {}", libc::EACCES),
        "{}",
        show(&other)
    );
    // … and one that can pass the directory (CAP_DAC_OVERRIDE) is refused
    // by the engine (SO_PEERCRED): no answer.
    let mut argv: Vec<&str> = nobody.to_vec();
    argv.extend([
        "--inh-caps=+dac_override",
        "--ambient-caps=+dac_override",
        py.as_str(),
        "-c",
        ATTACH_PROBE,
        &socket,
    ]);
    let other = t.client.run(&argv);
    assert_eq!(stdout(&other).trim(), "NOANSWER", "{}", show(&other));
    down(&t, "wg0");
}

#[test]
fn up_fails_with_the_reason_when_no_handshake_comes() {
    skip_unless_ready!();
    let mut t = world("shnohs");
    t.peer.kill();
    let conf = t.conf.display().to_string();
    let started = Instant::now();
    let up = wg(&t, &["up", "--config", &conf, "--timeout", "3"]);
    assert_eq!(up.status.code(), Some(1), "{}", show(&up));
    let err = String::from_utf8_lossy(&up.stderr).into_owned();
    assert!(
        err.starts_with("wrapguard: no handshake within 3 s with peer ")
            && err.contains(&t.peer.endpoint())
            && err.contains(&t.ours.public),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // Nothing is left running.
    let ls = wg(&t, &["ls"]);
    assert!(stdout(&ls).contains("no tunnels run"), "{}", show(&ls));
}

/// `up` reports the engine's first handshake instead of forcing a second
/// one (which waited out REKEY_TIMEOUT: 5 s), and the report commands end
/// quietly when their reader goes away (`status | true` panicked).
#[test]
fn up_reports_the_first_handshake_and_reports_survive_a_closed_pipe() {
    skip_unless_ready!();
    let t = world("shfirst");
    let conf = t.conf.display().to_string();
    // An instance starts the engine (at debug, so the engine's handshake
    // lines reach its log) and its first connection makes the handshake...
    let inst_log = t.tmp.join("instance.log");
    let _inst = wg_bg(
        &t,
        &[
            "--config",
            &conf,
            "--log-level=debug",
            "--",
            "sh",
            "-c",
            "curl -s --max-time 5 http://10.77.0.1:9/; sleep 60",
        ],
        &inst_log,
    );
    wait_log(&inst_log, "handshake complete", 30);
    // ...then `up` of the same config keeps that engine and its session.
    let up = wg(&t, &["up", "--config", &conf, "--name", "first"]);
    assert!(up.status.success(), "{}", show(&up));
    assert!(stdout(&up).contains("handshake with "), "{}", show(&up));
    // Still one handshake when `up` has returned: none was forced.
    let lines = read(&inst_log);
    let done = lines
        .lines()
        .filter(|l| l.contains("handshake complete"))
        .count();
    assert_eq!(done, 1, "{lines}");

    // A reader that is gone before anything is written: the process ends
    // by SIGPIPE, as `ls` does (-13 from Python), with nothing on stderr.
    const CLOSED: &str = "import os, subprocess, sys\n\
        r, w = os.pipe()\n\
        os.close(r)\n\
        p = subprocess.run(sys.argv[1:], stdout=w, stderr=subprocess.PIPE)\n\
        print('rc', p.returncode)\n\
        sys.stdout.write(p.stderr.decode())\n";
    let bin = Wrapguard::under_test().bin.display().to_string();
    let py = python();
    for cmd in [
        &["status", "first"][..],
        &["status", "first", "--json"],
        &["ls"],
        &["ls", "--json"],
        &["genkey"],
    ] {
        let mut argv = vec![py.as_str(), "-c", CLOSED, bin.as_str()];
        argv.extend_from_slice(cmd);
        let out = t.client.run(&argv);
        assert_eq!(stdout(&out).trim(), "rc -13", "{cmd:?}: {}", show(&out));
        // And it still prints in full to a reader that stays.
        let mut argv = vec![bin.as_str()];
        argv.extend_from_slice(cmd);
        let whole = t.client.run(&argv);
        assert!(
            whole.status.success() && !stdout(&whole).is_empty(),
            "{cmd:?}: {}",
            show(&whole)
        );
    }
    down(&t, "first");
}

/// `status --flows` shows each tunnel TCP connection as the engine's TCP
/// sees it, with the program that opened it: a wrapped python holds a
/// connection to an echo server on the peer after moving 2 MB through it.
#[test]
fn status_flows_shows_each_connection_with_its_program_and_tcp_numbers() {
    skip_unless_ready!();
    let t = world_up("shfl");
    let _echo = wrapguard_testnet::tcp_echo_server(&t.peer, &t.tmp, 7000);
    let ready = t.tmp.join("flows.ready");
    let script = format!(
        r#"
import os, socket, time
s = socket.create_connection(("10.77.0.1", 7000))
data = b"x" * 65536
sent = got = 0
while sent < 2_000_000:
    s.sendall(data); sent += len(data)
    while got < sent - 262144:
        got += len(s.recv(1 << 20))
while got < sent:
    got += len(s.recv(1 << 20))
open({ready:?}, "w").write(str(os.getpid()))
time.sleep(30)
"#,
        ready = ready.display().to_string()
    );
    let file = t.tmp.write("flows.py", &script);
    let log = t.tmp.join("flows.log");
    let py = python();
    let _held = wg_bg(
        &t,
        &["exec", "wg0", "--", &py, &file.display().to_string()],
        &log,
    );
    wait_until(30, "the held connection", || ready.exists());
    let pid: u32 = std::fs::read_to_string(&ready)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .expect("pid");
    let out = wg(&t, &["status", "--flows", "--json", "wg0"]);
    assert!(out.status.success(), "{}", show(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let flows = v["flows"].as_array().expect("flows");
    let f = flows
        .iter()
        .find(|f| f["remote"] == "10.77.0.1:7000")
        .unwrap_or_else(|| panic!("no flow to the echo server: {v}"));
    assert_eq!(f["state"], "ESTABLISHED", "{f}");
    assert_eq!(f["pid"].as_u64(), Some(u64::from(pid)), "{f}");
    assert!(
        f["program"]
            .as_str()
            .is_some_and(|p| p.contains("flows.py")),
        "{f}"
    );
    assert!(
        f["local"]
            .as_str()
            .is_some_and(|l| l.starts_with("10.77.0.2:")),
        "{f}"
    );
    assert!(
        f["bytes_up"].as_u64().is_some_and(|b| b >= 2_000_000),
        "{f}"
    );
    assert!(f["srtt_us"].as_u64().is_some_and(|r| r > 0), "{f}");
    assert!(f["cwnd"].as_u64().is_some_and(|c| c >= 2 * 1368), "{f}");
    assert_eq!(f["mss"].as_u64(), Some(1368), "{f}");
    assert!(
        ["cubic", "bbr"].contains(&f["congestion"].as_str().unwrap_or("")),
        "{f}"
    );
    assert_eq!(f["limited_by"], "application", "idle: {f}");
    let text = stdout(&wg(&t, &["status", "--flows"]));
    assert!(
        text.contains("ESTABLISHED 10.77.0.2:") && text.contains(&format!("pid {pid}")),
        "{text}"
    );
    assert!(text.contains("limited by application"), "{text}");
    down(&t, "wg0");
}
