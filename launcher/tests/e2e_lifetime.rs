//! How long the tunnel lives, and for whom (issue 25, items 2 and 8):
//!
//! * A program that puts itself in the background (`sh -c 'cmd & exit'`,
//!   a daemon that forks and lets its parent exit) keeps its tunnel after
//!   wrapguard has returned with its child's status: every process started
//!   under wrapguard holds the engine, in both modes; `status` lists it.
//! * A process that drops its privileges (`setpriv --reuid`, `setresuid`)
//!   keeps its tunnel; a process of another user that never started under
//!   wrapguard still cannot use it.
//!
//! Against wireguard-go in namespaces, under the leak guard. Needs root,
//! wireguard-go, wireguard-tools; prints `SKIPPED:` and passes otherwise.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};
use wrapguard_testnet::{
    python, read, show, skip_unless_ready, token, wait_until, wrapguard, Conf, Configured, OnePeer,
    Wrapguard,
};

/// The uid and gid the privilege-drop tests become (`nobody`).
const NOBODY: &str = "65534";

fn world(tag: &str) -> Configured {
    OnePeer::new(tag).configured(Conf::V4)
}

/// `wrapguard args…` inside the client namespace (subcommands).
fn wg(t: &OnePeer, args: &[&str]) -> Output {
    let bin = Wrapguard::under_test().bin.display().to_string();
    let mut v = vec!["timeout", "60", bin.as_str()];
    v.extend_from_slice(args);
    t.client.run(&v)
}

/// A python program for the background: it opens a tunnel connection to
/// the peer's web server, says so in `ready`, waits `wait` seconds (the
/// launcher returns meanwhile), then sends a request on that connection
/// and one on a new connection, and writes both bodies to `out`.
const BACKGROUND: &str = r#"
import socket, sys, time, urllib.request
ready, out, wait = sys.argv[1], sys.argv[2], float(sys.argv[3])
res = []
try:
    s = socket.create_connection(("10.77.0.1", 8080), timeout=20)
    open(ready, "w").write("connected")
    time.sleep(wait)
    s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    res.append("old=" + data.decode(errors="replace").split("\r\n\r\n", 1)[-1].strip())
except Exception as e:
    res.append("old-error=" + repr(e))
try:
    body = urllib.request.urlopen("http://10.77.0.1:8080/", timeout=20).read().decode()
    res.append("new=" + body.strip())
except Exception as e:
    res.append("new-error=" + repr(e))
open(out, "w").write("\n".join(res) + "\n")
"#;

/// Runs the background program under wrapguard (`flags`): wrapguard must
/// return at once with its child's status (7) while the background
/// process runs on; returns what the process wrote once it is done, and
/// what `status` said meanwhile.
fn run_backgrounded(t: &Configured, flags: &[&str], tag: &str) -> (String, String) {
    let script = t.tmp.write(&format!("bg-{tag}.py"), BACKGROUND);
    let ready = t.tmp.join(&format!("bg-{tag}.ready"));
    let out = t.tmp.join(&format!("bg-{tag}.out"));
    let line = format!(
        "{} {} {} {} 6 </dev/null >/dev/null 2>&1 & exit 7",
        python(),
        script.display(),
        ready.display(),
        out.display()
    );
    let started = Instant::now();
    let o = wrapguard(&t.client, &t.conf, flags, &["sh", "-c", &line]);
    let took = started.elapsed();
    assert_eq!(o.status.code(), Some(7), "the child's status: {}", show(&o));
    assert!(
        took < Duration::from_secs(5),
        "wrapguard returns when its child exits, without waiting for the background process (took {took:?})"
    );
    wait_until(20, "the background connection", || {
        read(&ready).contains("connected")
    });
    let status = String::from_utf8_lossy(&wg(t, &["status"]).stdout).into_owned();
    wait_until(40, "the background process's report", || {
        read(&out).lines().count() >= 2
    });
    (read(&out), status)
}

/// The page's token came back on both connections, and the peer's web
/// server saw them from our tunnel address.
fn assert_carried(result: &str, page: &str, log: &Path) {
    assert!(
        result.contains(&format!("old={page}")),
        "the connection opened before wrapguard returned still works: {result}"
    );
    assert!(
        result.contains(&format!("new={page}")),
        "a new connection after wrapguard returned works: {result}"
    );
    let access = read(log);
    assert!(
        access.matches("10.77.0.2").count() >= 2,
        "the peer saw both requests from our tunnel address: {access}"
    );
}

#[test]
fn a_program_that_puts_itself_in_the_background_keeps_the_tunnel() {
    skip_unless_ready!();
    let t = world("bgk");
    let page = token("bg-page");
    let (_srv, log) = t.serve_page(&page, "0.0.0.0");
    let (result, status) = run_backgrounded(&t, &[], "shim");
    assert_carried(&result, &page, &log);
    assert!(
        status.contains("background: started under wrapguard pid"),
        "status lists the background process: {status}"
    );
    assert!(status.contains("bg-shim.py"), "{status}");
    // With the last background process gone, the shared engine ends.
    wait_until(20, "the engine to end", || {
        String::from_utf8_lossy(&wg(&t, &["ls"]).stdout).contains("no tunnels run")
    });
}

#[test]
fn a_program_in_seccomp_mode_that_puts_itself_in_the_background_keeps_the_tunnel() {
    skip_unless_ready!();
    if seccomp_unavailable() {
        return;
    }
    let t = world("bgs");
    let page = token("bg-seccomp-page");
    let (_srv, log) = t.serve_page(&page, "0.0.0.0");
    let (result, status) = run_backgrounded(&t, &["--mode=seccomp"], "seccomp");
    assert_carried(&result, &page, &log);
    assert!(
        status.contains("background: started under wrapguard pid"),
        "status lists the background processes: {status}"
    );
    wait_until(20, "the engine to end", || {
        String::from_utf8_lossy(&wg(&t, &["ls"]).stdout).contains("no tunnels run")
    });
}

#[test]
fn with_no_share_a_background_process_loses_the_tunnel_and_wrapguard_says_so() {
    skip_unless_ready!();
    let t = world("bgn");
    let page = token("bg-noshare-page");
    let (_srv, log) = t.serve_page(&page, "0.0.0.0");
    let script = t.tmp.write("bg-ns.py", BACKGROUND);
    let ready = t.tmp.join("bg-ns.ready");
    let out = t.tmp.join("bg-ns.out");
    let line = format!(
        "{} {} {} {} 3 </dev/null >/dev/null 2>&1 & sleep 1; exit 0",
        python(),
        script.display(),
        ready.display(),
        out.display()
    );
    let o = wrapguard(&t.client, &t.conf, &["--no-share"], &["sh", "-c", &line]);
    assert!(o.status.success(), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.lines().any(|l| l.contains("\"level\":\"warn\"")
            && l.contains("with --no-share the tunnel ends with wrapguard")),
        "{}",
        show(&o)
    );
    wait_until(40, "the background process's report", || {
        read(&out).lines().count() >= 2
    });
    let result = read(&out);
    assert!(
        result.contains("old-error=") && result.contains("new-error="),
        "fails closed once the engine is gone: {result}"
    );
    assert!(!read(&log).contains("GET / HTTP/1.0"), "{}", read(&log));
}

/// A command that drops to `nobody` before it fetches the page (setpriv
/// execs curl with the privileges gone).
fn setpriv_curl(url: &str) -> Vec<String> {
    [
        "setpriv",
        "--reuid",
        NOBODY,
        "--regid",
        NOBODY,
        "--clear-groups",
        "curl",
        "-sS",
        "--max-time",
        "20",
        url,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn a_process_that_drops_its_privileges_keeps_the_tunnel() {
    skip_unless_ready!();
    let t = world("drp");
    let page = token("drop-page");
    let (_srv, log) = t.serve_page(&page, "0.0.0.0");
    // setpriv then exec: the new image takes over the hold.
    let argv = setpriv_curl("http://10.77.0.1:8080/");
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let o = wrapguard(&t.client, &t.conf, &[], &argv);
    assert!(o.status.success(), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&page),
        "{}",
        show(&o)
    );
    // The process drops its privileges itself (as apt's methods do), with
    // no exec after it.
    let code = "import encodings.idna, os, urllib.request\n\
                os.setgroups([]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)\n\
                assert os.geteuid() == 65534\n\
                print(urllib.request.urlopen('http://10.77.0.1:8080/', timeout=20).read().decode())\n";
    let py = python();
    let o = wrapguard(&t.client, &t.conf, &[], &[py.as_str(), "-c", code]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&page),
        "{}",
        show(&o)
    );
    let access = read(&log);
    assert!(
        access.matches("10.77.0.2").count() >= 2,
        "the peer saw both from our tunnel address: {access}"
    );
}

#[test]
fn a_process_of_another_user_that_never_started_under_wrapguard_cannot_attach() {
    skip_unless_ready!();
    let t = world("drn");
    let page = token("other-user-page");
    let (_srv, log) = t.serve_page(&page, "0.0.0.0");
    let conf = t.conf.display().to_string();
    let up = wg(&t, &["up", "--config", &conf]);
    assert!(up.status.success(), "{}", show(&up));
    let st = wg(&t, &["status", "wg0", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).expect("status --json");
    let socket = v["tunnel"]["socket"].as_str().expect("socket").to_string();
    let shim = Wrapguard::under_test().shim.display().to_string();
    // nobody from the start, with the shim and the engine's socket in its
    // environment, but not started under wrapguard: it has no hold, and
    // the socket refuses it. (Dropped first: a root process with the shim
    // would be one of ours.)
    let argv: Vec<String> = [
        "setpriv",
        "--reuid",
        NOBODY,
        "--regid",
        NOBODY,
        "--clear-groups",
        "env",
        &format!("LD_PRELOAD={shim}"),
        &format!("WRAPGUARD_CONTROL={socket}"),
        &format!("WRAPGUARD_PRELOAD={shim}"),
        "curl",
        "-sS",
        "--max-time",
        "20",
        "http://10.77.0.1:8080/",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let o = t.client.run(&argv);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains(&page),
        "{}",
        show(&o)
    );
    // Nor can it talk to the socket itself.
    let probe = format!(
        "import socket\ns = socket.socket(socket.AF_UNIX)\ntry:\n    s.connect({socket:?})\n    print('connected')\nexcept OSError as e:\n    print('refused', e.errno)\n"
    );
    let py = python();
    let o = t.client.run(&[
        "setpriv",
        "--reuid",
        NOBODY,
        "--regid",
        NOBODY,
        "--clear-groups",
        &py,
        "-c",
        &probe,
    ]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("refused 13"),
        "EACCES: {}",
        show(&o)
    );
    // The same command started under wrapguard is carried.
    let argv = setpriv_curl("http://10.77.0.1:8080/");
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let o = wrapguard(&t.client, &t.conf, &[], &argv);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&page),
        "{}",
        show(&o)
    );
    assert_eq!(read(&log).matches("10.77.0.2").count(), 1, "{}", read(&log));
    let down = wg(&t, &["down", "wg0"]);
    assert!(down.status.success(), "{}", show(&down));
}

/// Seccomp mode needs Linux ≥ 5.9 on x86-64; says why when it is missing.
fn seccomp_unavailable() -> bool {
    if let Some(why) = seccomp::unsupported() {
        eprintln!("SKIPPED: seccomp mode: {why}");
        return true;
    }
    false
}

/// `ssh -f -N -L` (the issue's own case): ssh forks into the background
/// once authenticated and its parent exits, so `wrapguard` returns to the
/// prompt; the forward it leaves keeps working through the tunnel. sshd
/// runs in the peer's namespace with keys of the test's own.
#[test]
fn ssh_f_n_l_returns_and_leaves_a_working_forward() {
    skip_unless_ready!();
    if !wrapguard_testnet::on_path("ssh") || !Path::new("/usr/sbin/sshd").exists() {
        println!("SKIPPED: no ssh/sshd (apt-get install openssh-client openssh-server)");
        return;
    }
    let t = world("sshf");
    let page = token("ssh-forward-page");
    // The page is served on the peer's loopback only: only the forward
    // through ssh (through the tunnel) reaches it.
    let (_srv, log) = t.serve_page(&page, "127.0.0.1");
    let keygen = |path: &Path| {
        let o = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path)
            .output()
            .expect("ssh-keygen");
        assert!(o.status.success(), "{}", show(&o));
    };
    let host_key = t.tmp.join("host_key");
    let user_key = t.tmp.join("user_key");
    keygen(&host_key);
    keygen(&user_key);
    let auth = t.tmp.join("authorized_keys");
    std::fs::copy(t.tmp.join("user_key.pub"), &auth).expect("authorized_keys");
    std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
    let sshd_log = t.tmp.join("sshd.log");
    let _sshd = t.peer.ns.spawn(
        &[
            "/usr/sbin/sshd",
            "-D",
            "-e",
            "-p",
            "2222",
            "-h",
            &host_key.display().to_string(),
            "-o",
            &format!("AuthorizedKeysFile={}", auth.display()),
            "-o",
            "StrictModes=no",
            "-o",
            "PermitRootLogin=prohibit-password",
            "-o",
            "UsePAM=no",
            "-o",
            "ListenAddress=10.77.0.1",
        ],
        &sshd_log,
    );
    t.peer.ns.wait_tcp_listen(2222);
    let started = Instant::now();
    let key = user_key.display().to_string();
    let o = wrapguard(
        &t.client,
        &t.conf,
        &[],
        &[
            "ssh",
            "-f",
            "-N",
            "-L",
            "12280:127.0.0.1:8080",
            "-i",
            &key,
            "-p",
            "2222",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ExitOnForwardFailure=yes",
            "root@10.77.0.1",
        ],
    );
    assert!(o.status.success(), "{}\n{}", show(&o), read(&sshd_log));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "wrapguard returned to the prompt"
    );
    // The forward lives on after wrapguard returned: an unwrapped curl in
    // the client namespace reaches the peer's loopback-only page.
    let got = t
        .client
        .run(&["curl", "-sS", "--max-time", "20", "http://127.0.0.1:12280/"]);
    let body = String::from_utf8_lossy(&got.stdout);
    assert_eq!(body.trim(), page, "{}\n{}", show(&got), read(&sshd_log));
    // sshd saw our tunnel address.
    assert!(
        read(&sshd_log).contains("from 10.77.0.2"),
        "{}",
        read(&sshd_log)
    );
    assert!(read(&log).contains("127.0.0.1"), "{}", read(&log));
    let status = String::from_utf8_lossy(&wg(&t, &["status"]).stdout).into_owned();
    assert!(
        status.contains("ssh"),
        "status lists the background ssh: {status}"
    );
    // End it: the backgrounded ssh is ours to stop.
    let _ = t.client.run(&["pkill", "-f", "12280:127.0.0.1:8080"]);
}
