//! Clean ends against a wireguard-go peer: the wrapped program exits → its
//! connection ends with a FIN the peer reads as EOF; wrapguard is killed
//! with SIGKILL → the program's socket gets EOF or a reset at once instead
//! of hanging; the peer vanishes mid-transfer → the connection times out
//! after the TCP retransmissions (fewer with a hidden test flag) and the
//! program gets ETIMEDOUT on send, recv and SO_ERROR; a dead peer fails
//! connects fast with EHOSTUNREACH and is used again once it returns. Needs root, wireguard-go, wireguard-tools; prints
//! `SKIPPED:` and passes otherwise.

use std::time::{Duration, Instant};
use wrapguard_testnet::{
    peer_server, python, read, show, skip_unless_ready, spawn_wrapguard, tcp_echo_server, token,
    wait_line, wait_log, without_log_lines, wrapguard, Conf, Configured, OnePeer, Wrapguard,
};

/// Peer 1 and our IPv4 config for it.
fn setup(tag: &str) -> Configured {
    OnePeer::new(tag).configured(Conf::V4)
}

/// Peer side: accepts one connection, reads to the end and logs how it
/// ended (`EOF <bytes>` for a FIN, `ERR <errno>` for a reset).
const ONE_SHOT_SERVER: &str = r#"
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9200)); s.listen(1)
c, a = s.accept()
c.settimeout(120)
got = b""
try:
    while True:
        d = c.recv(65536)
        if not d:
            print("EOF", len(got), got.decode(errors="replace"), "from", a[0], flush=True); break
        got += d
except OSError as e:
    print("ERR", e.errno, got.decode(errors="replace"), flush=True)
"#;

#[test]
fn child_exit_closes_its_flow_with_a_fin() {
    skip_unless_ready!();
    let t = setup("e");
    let py = python();
    let (_srv, srv_log) = peer_server(&t.peer, &t.tmp, "one", ONE_SHOT_SERVER, 9200);
    let tok = token("fin");
    // Send, then exit without close() or shutdown(): the exit closes it.
    let code = format!(
        "import os, socket\ns = socket.create_connection(('10.77.0.1', 9200), timeout=20)\n\
         s.sendall(b'{tok}')\nos._exit(0)\n"
    );
    let out = wrapguard(
        &t.client,
        &t.conf,
        &["--log-level=debug"],
        &[&py, "-c", &code],
    );
    assert!(out.status.success(), "{}", show(&out));
    let log = wait_line(&srv_log, &["EOF", "ERR"], 60);
    let log = if log.is_empty() { read(&srv_log) } else { log };
    assert!(
        log.contains(&format!("EOF {} {tok} from 10.77.0.2", tok.len())),
        "the peer should read our bytes then EOF (a FIN), got: {log}\n{}",
        show(&out)
    );
}

/// An established flow's bytes move on the engine thread (the debug log
/// says so) with both directions counted and the peer's FIN passed on as
/// EOF; with `WRAPGUARD_DIRECT=0` the bridge splices them, and the program
/// sees the same.
#[test]
fn established_flows_move_on_the_engine_thread_unless_turned_off() {
    skip_unless_ready!();
    let t = setup("d");
    let py = python();
    let _srv = tcp_echo_server(&t.peer, &t.tmp, 9100);
    let tok = token("direct");
    let n = tok.len();
    // Echo, then our FIN: the echo server closes, and we must read EOF.
    let code = format!(
        "import socket\ns = socket.create_connection(('10.77.0.1', 9100), timeout=20)\n\
         s.sendall(b'{tok}')\ngot = b''\n\
         while len(got) < {n}:\n    d = s.recv(100)\n    if not d: break\n    got += d\n\
         s.shutdown(socket.SHUT_WR)\nend = s.recv(10)\n\
         print('GOT', got.decode(), 'EOF' if end == b'' else 'DATA', flush=True)\n"
    );
    for direct in [true, false] {
        let mut v = Wrapguard::under_test().argv(
            &t.conf,
            &["--log-level=debug", "--no-share"],
            &[&py, "-c", &code],
            60,
        );
        if !direct {
            v.splice(0..0, ["env".to_string(), "WRAPGUARD_DIRECT=0".to_string()]);
        }
        let out = t
            .client
            .run(&v.iter().map(String::as_str).collect::<Vec<_>>());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(&format!("GOT {tok} EOF")),
            "direct={direct}: {}",
            show(&out)
        );
        let log = String::from_utf8_lossy(&out.stderr);
        assert_carried(&log, direct, "flow closed", n);
    }
}

/// The log says the flow was carried on the engine thread exactly when
/// `direct`, and its `closing` line counts `n` bytes each way.
fn assert_carried(log: &str, direct: bool, closing: &str, n: usize) {
    assert_eq!(
        log.contains("flow carried on the engine thread"),
        direct,
        "direct={direct}: {log}"
    );
    let counted = log.lines().any(|l| {
        l.contains(&format!("\"message\":\"{closing}\""))
            && l.contains(&format!("\"bytes_out\":{n}"))
            && l.contains(&format!("\"bytes_in\":{n}"))
    });
    assert!(counted, "direct={direct}: the flow's bytes: {log}");
}

/// Wrapped server: accepts one connection on 9300, reads to EOF, sends
/// it all back, closes, and says what it served.
const ECHO_ONE: &str = r#"
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9300)); s.listen(1)
print("LISTENING", flush=True)
c, a = s.accept()
got = b""
while True:
    d = c.recv(65536)
    if not d: break
    got += d
c.sendall(got); c.close()
print("SERVED", len(got), "from", a[0], flush=True)
"#;

/// A peer's connection to a wrapped server (an inbound flow) moves on the
/// engine thread too: its bytes both ways and the FIN each way arrive and
/// are counted, and the log says it is carried there; with
/// `WRAPGUARD_DIRECT=0` the bridge splices it, and both ends see the same.
#[test]
fn inbound_flows_move_on_the_engine_thread_unless_turned_off() {
    skip_unless_ready!();
    let t = OnePeer::listening("j", 51_910).configured(Conf::V4);
    let py = python();
    let tok = token("inbound");
    let n = tok.len();
    // Peer side: retried until the wrapped server listens in the tunnel.
    let client = format!(
        "import socket, time\n\
         deadline = time.time() + 30\n\
         while True:\n    try:\n        s = socket.create_connection(('10.77.0.2', 9300), timeout=5); break\n\
         \x20   except OSError:\n        if time.time() > deadline: raise\n        time.sleep(0.2)\n\
         s.sendall(b'{tok}')\ns.shutdown(socket.SHUT_WR)\ngot = b''\n\
         while True:\n    d = s.recv(100)\n    if not d: break\n    got += d\n\
         print('GOT', got.decode(), 'EOF', flush=True)\n"
    );
    for direct in [true, false] {
        let log = t.tmp.join(&format!("inbound-direct-{direct}.log"));
        let mut v = Wrapguard::under_test().argv(
            &t.conf,
            &["--log-level=debug", "--no-share"],
            &[&py, "-c", ECHO_ONE],
            60,
        );
        if !direct {
            v.splice(0..0, ["env".to_string(), "WRAPGUARD_DIRECT=0".to_string()]);
        }
        let mut server = t
            .client
            .spawn(&v.iter().map(String::as_str).collect::<Vec<_>>(), &log);
        let out = t.peer.ns.run(&[&py, "-c", &client]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && !matches!(server.child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let l = read(&log);
        assert!(
            out.status.success()
                && String::from_utf8_lossy(&out.stdout).contains(&format!("GOT {tok} EOF")),
            "direct={direct}: {}\n--- wrapguard log\n{l}",
            show(&out)
        );
        // The program's line, wherever wrapguard's lines cut into it.
        assert!(
            without_log_lines(&l).contains(&format!("SERVED {n} from 10.77.0.1")),
            "direct={direct}: the server should see the peer's tunnel address:\n{l}"
        );
        assert_carried(&l, direct, "inbound flow closed", n);
        server.terminate();
    }
}

/// Wrapped client prologue: connects to the peer's echo server (9100),
/// checks one echo and prints `READY`.
const CONNECTED: &str = "import socket, sys, time\n\
     s = socket.create_connection(('10.77.0.1', 9100), timeout=20)\n\
     s.sendall(b'ping'); assert s.recv(10) == b'ping'\n\
     print('READY', flush=True)\n";

/// With `--no-share` the engine lives in the wrapguard process: a SIGKILL
/// of it ends the program's tunnel connection at once (EOF or
/// ECONNRESET), never a hang.
#[test]
fn sigkill_of_wrapguard_ends_the_programs_connection_without_a_hang() {
    skip_unless_ready!();
    let t = setup("g");
    let py = python();
    let _srv = tcp_echo_server(&t.peer, &t.tmp, 9100);
    let code = &format!(
        "{CONNECTED}\
         s.settimeout(90); t = time.time()\n\
         try:\n    d = s.recv(10)\n    print('ENDED EOF' if not d else 'ENDED DATA', flush=True)\n\
         except OSError as e:\n    print('ENDED ERR', e.errno, flush=True)\n"
    );
    let log = t.tmp.join("run.log");
    let _run = spawn_wrapguard(
        &t.client,
        &t.conf,
        &["--no-share"],
        &[&py, "-c", code],
        &log,
        300,
    );
    let s = wait_line(&log, &["READY"], 60);
    assert_eq!(s, "READY", "{}", read(&log));
    t.client.signal("wrapguard", libc::SIGKILL);
    let killed = Instant::now();
    let s = wait_line(&log, &["ENDED"], 60);
    assert!(
        s == "ENDED EOF" || s == "ENDED ERR 104",
        "the program's recv should end with EOF or ECONNRESET: {s:?}\n{}",
        read(&log)
    );
    // Well before the program's own 90 s timeout (not a timing claim: a
    // hang would run into it).
    assert!(killed.elapsed() < Duration::from_secs(60), "{s}");
}

/// On a shared engine the program holds the tunnel itself (issue 25 item
/// 2): a SIGKILL of the wrapguard that started it leaves its connection
/// working; `wrapguard down` then ends it at once.
#[test]
fn sigkill_of_wrapguard_leaves_a_shared_tunnel_to_its_program_until_down() {
    skip_unless_ready!();
    let t = setup("gs");
    let py = python();
    let _srv = tcp_echo_server(&t.peer, &t.tmp, 9100);
    let flag = t.tmp.join("killed.flag");
    let code = &format!(
        "{CONNECTED}\
         import os\n\
         while not os.path.exists({flag:?}): time.sleep(0.1)\n\
         s.sendall(b'again'); print('ALIVE', s.recv(10).decode(), flush=True)\n\
         s.settimeout(90)\n\
         try:\n    d = s.recv(10)\n    print('ENDED EOF' if not d else 'ENDED DATA', flush=True)\n\
         except OSError as e:\n    print('ENDED ERR', e.errno, flush=True)\n",
        flag = flag.display().to_string()
    );
    let log = t.tmp.join("run.log");
    let _run = spawn_wrapguard(&t.client, &t.conf, &[], &[&py, "-c", code], &log, 300);
    let s = wait_line(&log, &["READY"], 60);
    assert_eq!(s, "READY", "{}", read(&log));
    t.client.signal("wrapguard", libc::SIGKILL);
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(&flag, "").expect("flag");
    let s = wait_line(&log, &["ALIVE"], 60);
    assert_eq!(s, "ALIVE again", "{}", read(&log));
    let bin = wrapguard_testnet::Wrapguard::under_test()
        .bin
        .display()
        .to_string();
    let down = t.client.run(&[&bin, "down", "wg0"]);
    assert!(down.status.success(), "{}", show(&down));
    let s = wait_line(&log, &["ENDED"], 60);
    assert!(
        s == "ENDED EOF" || s == "ENDED ERR 104",
        "down ends the connection: {s:?}\n{}",
        read(&log)
    );
}

/// Wrapped client for the vanished-peer test: five connections; one keeps
/// sending, one keeps sending with `writev`; once the flag file `argv[1]`
/// appears (the peer is gone), one sends and waits in recv, one sends and
/// waits in `readv`, one sends, polls, then asks SO_ERROR.
const VANISH_CLIENT: &str = r#"
import os, select, socket, sys, threading, time
def say(*parts):
    # One write per line: the threads' lines must not interleave.
    os.write(1, (" ".join(str(p) for p in parts) + "\n").encode())
def conn():
    s = socket.create_connection(("10.77.0.1", 9100), timeout=20)
    s.sendall(b"ping"); assert s.recv(10) == b"ping"
    s.settimeout(300)
    return s
w, r, p, wv, rv = conn(), conn(), conn(), conn(), conn()
wv.settimeout(None); rv.settimeout(None)  # blocking fds for os.writev/os.readv
say("READY")
def sender():
    try:
        while True:
            w.sendall(b"x" * 1000); time.sleep(0.05)
    except OSError as e:
        say("SEND ERR", e.errno)
threading.Thread(target=sender, daemon=True).start()
def vsender():
    try:
        while True:
            os.writev(wv.fileno(), [b"x" * 500, b"y" * 500]); time.sleep(0.05)
    except OSError as e:
        say("WRITEV ERR", e.errno)
threading.Thread(target=vsender, daemon=True).start()
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
r.sendall(b"unacked"); p.sendall(b"unacked"); rv.sendall(b"unacked")
def vreader():
    try:
        n = os.readv(rv.fileno(), [bytearray(5), bytearray(5)])
        say("READV EOF" if n == 0 else "READV DATA")
    except OSError as e:
        say("READV ERR", e.errno)
threading.Thread(target=vreader, daemon=True).start()
def reader():
    try:
        d = r.recv(10)
        say("RECV EOF" if not d else "RECV DATA")
    except OSError as e:
        say("RECV ERR", e.errno)
threading.Thread(target=reader, daemon=True).start()
pl = select.poll(); pl.register(p.fileno(), select.POLLIN)
ev = pl.poll(300000)
say("POLL", ev[0][1] if ev else 0, "SO_ERROR", p.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
time.sleep(60)
"#;

#[test]
fn vanished_peer_times_out_the_connection_after_retransmissions() {
    skip_unless_ready!();
    let mut t = setup("v");
    let py = python();
    let _srv = tcp_echo_server(&t.peer, &t.tmp, 9100);
    // Five connections, each with bytes in flight when the peer is gone:
    // one keeps sending (send, writev), one waits in recv (recv, readv),
    // one polls and then asks SO_ERROR. Each must end with ETIMEDOUT
    // (110), never EOF or EPIPE.
    let flags = t.tmp.join("flags");
    std::fs::create_dir_all(&flags).expect("flag dir");
    let killed_flag = flags.join("killed");
    let script = t.tmp.write("vanish.py", VANISH_CLIENT);
    let log = t.tmp.join("run.log");
    let mut run = spawn_wrapguard(
        &t.client,
        &t.conf,
        &["--log-level=debug", "--test-tcp-data-retries=4"],
        &[
            &py,
            "-u",
            &script.display().to_string(),
            &killed_flag.display().to_string(),
        ],
        &log,
        300,
    );
    let s = wait_line(&log, &["READY"], 60);
    assert_eq!(s, "READY", "{}", read(&log));
    t.peer.kill();
    std::fs::write(&killed_flag, "").expect("flag");
    let killed = Instant::now();
    let send = wait_line(&log, &["SEND"], 240);
    let recv = wait_line(&log, &["RECV"], 240);
    let poll = wait_line(&log, &["POLL"], 240);
    let writev = wait_line(&log, &["WRITEV"], 240);
    let readv = wait_line(&log, &["READV"], 240);
    let s = format!("{send}; {recv}; {poll}; {writev}; {readv}");
    let _ = run.child.kill();
    let _ = run.child.wait();
    let all = read(&log);
    assert_eq!(
        send, "SEND ERR 110",
        "a send must fail with ETIMEDOUT once TCP gives up: {s}\n{all}"
    );
    assert_eq!(
        recv, "RECV ERR 110",
        "a blocked recv must fail with ETIMEDOUT, not EOF: {s}\n{all}"
    );
    assert!(
        poll.starts_with("POLL ") && poll.ends_with(" SO_ERROR 110"),
        "poll wakes, and SO_ERROR is ETIMEDOUT: {s}\n{all}"
    );
    assert_eq!(
        writev, "WRITEV ERR 110",
        "writev must fail with ETIMEDOUT, not EPIPE: {s}\n{all}"
    );
    assert_eq!(
        readv, "READV ERR 110",
        "a blocked readv must fail with ETIMEDOUT, not EOF: {s}\n{all}"
    );
    println!(
        "vanished peer: {s} after {:?}; {}",
        killed.elapsed(),
        all.lines()
            .filter(|l| l.contains("tunnel flow closed"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Wrapped client for the dead-peer test: one echo while the peer is up;
/// after `killed` appears, two connects (the first may wait for the peer
/// to be found down, the second must fail at once); after `restarted`
/// appears, connects until one works and echoes a token.
const DEAD_PEER_CLIENT: &str = r#"
import errno, os, socket, sys, time
tok, flag_dir = sys.argv[1].encode(), sys.argv[2]
def wait_flag(name):
    while not os.path.exists(os.path.join(flag_dir, name)):
        time.sleep(0.1)
def echo(timeout):
    s = socket.create_connection(("10.77.0.1", 9100), timeout=timeout)
    s.sendall(tok); got = b""
    while len(got) < len(tok):
        d = s.recv(100)
        if not d: break
        got += d
    s.close()
    return got
assert echo(20) == tok
print("UP1", flush=True)
wait_flag("killed")
for n in (1, 2):
    t = time.time()
    try:
        echo(120); print("FAIL%d connected?!" % n, flush=True)
    except OSError as e:
        print("FAIL%d %s %.1f" % (n, errno.errorcode.get(e.errno, e.errno), time.time() - t), flush=True)
# Name resolution through the tunnel (DNS = the peer) fails at once too,
# not after the resolver's timeouts (2 attempts x 3 s).
t = time.time()
try:
    socket.getaddrinfo("only-tunnel.test", 80, socket.AF_INET, socket.SOCK_STREAM)
    print("DNS resolved?!", flush=True)
except socket.gaierror as e:
    print("DNS %d %.1f" % (e.errno, time.time() - t), flush=True)
print("DOWN-DONE", flush=True)
wait_flag("restarted")
t = time.time(); tries = 0
while time.time() - t < 90:
    tries += 1
    try:
        if echo(30) == tok:
            print("UP2 %d tries %.1f s" % (tries, time.time() - t), flush=True); break
    except OSError as e:
        last = e.errno
        time.sleep(0.5)
else:
    print("NEVER-UP", last, flush=True)
"#;

#[test]
fn dead_peer_fails_connects_fast_with_ehostunreach_and_recovers_when_it_returns() {
    skip_unless_ready!();
    let mut t = OnePeer::new("d");
    let conf = t.conf(
        "wg0.conf",
        Conf {
            interface: "DNS = 10.77.0.1",
            ..Conf::V4
        },
    );
    let py = python();
    let _srv = tcp_echo_server(&t.peer, &t.tmp, 9100);

    // The shared leak guard watches the client namespace (bait default
    // routes make an escaped packet really leave); asserted below too.
    let guard = t.client.leak_guard();
    let tok = token("dead");
    let flags = t.tmp.join("flags");
    std::fs::create_dir_all(&flags).expect("flag dir");
    let code = t.tmp.write("client.py", DEAD_PEER_CLIENT);
    let log = t.tmp.join("run.log");
    let mut run = spawn_wrapguard(
        &t.client,
        &conf,
        &["--log-level=debug"],
        &[
            &py,
            "-u",
            &code.display().to_string(),
            &tok,
            &flags.display().to_string(),
        ],
        &log,
        400,
    );
    let all = || read(&log);
    assert_eq!(wait_line(&log, &["UP1"], 60), "UP1", "{}", all());

    t.peer.kill();
    std::fs::write(flags.join("killed"), "").expect("flag");
    let done = wait_line(&log, &["DOWN-DONE"], 200);
    assert_eq!(done, "DOWN-DONE", "{}", all());
    let fail1 = wait_line(&log, &["FAIL1"], 1);
    let fail2 = wait_line(&log, &["FAIL2"], 1);
    let dns = wait_line(&log, &["DNS "], 1);
    let secs = |l: &str| -> f64 {
        l.split_whitespace()
            .nth(2)
            .and_then(|x| x.parse().ok())
            .unwrap_or(f64::MAX)
    };
    // The first connect waits until the peer is found down (its session
    // goes unanswered, then two handshake initiations), well before the
    // 90 s handshake give-up; the second fails at once.
    assert!(
        fail1.starts_with("FAIL1 EHOSTUNREACH ") && secs(&fail1) < 60.0,
        "{fail1}\n{}",
        all()
    );
    assert!(
        fail2.starts_with("FAIL2 EHOSTUNREACH ") && secs(&fail2) < 5.0,
        "the second connect should fail at once: {fail2}\n{}",
        all()
    );
    // EAI_AGAIN (-3), as when the server cannot be reached.
    assert!(
        dns.starts_with("DNS -3 ") && secs(&dns) < 2.5,
        "a lookup through the down peer should fail at once: {dns}\n{}",
        all()
    );
    assert!(
        all().contains("peer unreachable: no answer to handshakes"),
        "{}",
        all()
    );
    // The SIGUSR1 status report says so too.
    t.client.signal("wrapguard", libc::SIGUSR1);
    wait_log(&log, "connects fail with EHOSTUNREACH)", 20);
    // The second connect, and the lookup's queries.
    let refused: u64 = all()
        .rsplit("connects_unreachable=")
        .next()
        .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(refused >= 2, "connects_unreachable={refused}\n{}", all());

    // The peer returns: the next connects work without restarting wrapguard.
    t.peer.start();
    std::fs::write(flags.join("restarted"), "").expect("flag");
    let up2 = wait_line(&log, &["UP2", "NEVER-UP"], 150);
    let _ = run.child.wait();
    assert!(up2.starts_with("UP2 "), "{up2:?}\n{}", all());
    assert!(all().contains("peer reachable again"), "{}", all());
    let leaks = guard.leaks();
    assert!(
        leaks.is_empty(),
        "wrapped traffic reached the host network: {leaks:?}"
    );
    println!("dead peer: {fail1}; {fail2}; {dns}; {up2}");
}

/// Wrapped client for the keepalive test: `a` sets keepalive after
/// connecting, `b` before, `c` not at all; all three then wait idle in
/// recv. Once the flag file `argv[1]` appears, `c` is asked to wait a
/// little longer than the others need.
const KEEPALIVE_CLIENT: &str = r#"
import os, socket, sys, threading, time
def say(*parts):
    os.write(1, (" ".join(str(p) for p in parts) + "\n").encode())
def keepalive(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 2)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
def opts(s):
    return (s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT))
def ping(s):
    s.sendall(b"ping"); assert s.recv(10) == b"ping"
a = socket.create_connection(("10.77.0.1", 9100), timeout=20); keepalive(a); ping(a)
b = socket.socket(); keepalive(b); b.settimeout(20); b.connect(("10.77.0.1", 9100)); ping(b)
c = socket.create_connection(("10.77.0.1", 9100), timeout=20); ping(c)
say("OPTS", opts(a), opts(b), opts(c))
def idle(name, s, limit):
    s.settimeout(limit); t = time.time()
    try:
        d = s.recv(10)
        say(name, "EOF" if not d else "DATA", "%.1f" % (time.time() - t))
    except OSError as e:
        # ETIMEDOUT is a TimeoutError too; the timeout of settimeout has no errno.
        if e.errno is None:
            say(name, "IDLE", "%.1f" % (time.time() - t))
        else:
            say(name, "ERR", e.errno, "%.1f" % (time.time() - t))
ts = [threading.Thread(target=idle, args=(n, s, 120)) for n, s in (("A", a), ("B", b))]
for t in ts: t.start()
say("READY")
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
for t in ts: t.join()
idle("C", c, 5)
"#;

#[test]
fn keepalive_set_by_the_program_times_out_an_idle_connection_to_a_vanished_peer() {
    skip_unless_ready!();
    let mut t = setup("k");
    let py = python();
    let _srv = tcp_echo_server(&t.peer, &t.tmp, 9100);
    let flag = t.tmp.join("killed");
    let script = t.tmp.write("keepalive.py", KEEPALIVE_CLIENT);
    let log = t.tmp.join("run.log");
    let mut run = spawn_wrapguard(
        &t.client,
        &t.conf,
        &["--log-level=debug"],
        &[
            &py,
            "-u",
            &script.display().to_string(),
            &flag.display().to_string(),
        ],
        &log,
        300,
    );
    assert_eq!(wait_line(&log, &["READY"], 60), "READY", "{}", read(&log));
    // getsockopt returns what was set (and the kernel's defaults for `c`).
    let opts = wait_line(&log, &["OPTS"], 1);
    assert_eq!(
        opts,
        "OPTS (1, 2, 1, 3) (1, 2, 1, 3) (0, 7200, 75, 9)",
        "{}",
        read(&log)
    );
    t.peer.kill();
    std::fs::write(&flag, "").expect("flag");
    let a = wait_line(&log, &["A "], 150);
    let b = wait_line(&log, &["B "], 150);
    let c = wait_line(&log, &["C "], 60);
    let _ = run.child.kill();
    let _ = run.child.wait();
    let all = read(&log);
    let secs = |l: &str| -> f64 {
        l.rsplit(' ')
            .next()
            .and_then(|x| x.parse().ok())
            .unwrap_or(f64::MAX)
    };
    // Idle 2 s + 3 probes 1 s apart: ETIMEDOUT after ~5 s (Linux's default
    // without the options would be 2 hours 11 minutes).
    for l in [&a, &b] {
        assert!(
            l.contains(" ERR 110 ") && secs(l) < 60.0,
            "keepalive should time the idle connection out with ETIMEDOUT: {l:?}\n{all}"
        );
    }
    assert!(
        c.starts_with("C IDLE"),
        "a socket without keepalive stays open: {c:?}\n{all}"
    );
    assert!(
        all.contains("tunnel TCP keepalive set by the program"),
        "{all}"
    );
    println!("keepalive: {a}; {b}; {c}");
}
