//! The proxies under bad and hostile clients, on the test-only loopback
//! backend (a namespace with only loopback; the "tunnel" 10.77.0.0/16 is
//! carried to 127.0.0.1): every malformed request gets its protocol's
//! error reply or is closed, too many clients are cut at the limit, and a
//! good client connected all along is not disturbed.

use wrapguard_testnet::{assert_pass, run_python};

const SCRIPT: &str = r#"
import socket, struct, threading, time

def echo_server():
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("127.0.0.1", 9999)); l.listen(64)
    def one(c):
        while True:
            d = c.recv(65536)
            if not d: break
            c.sendall(d)
        c.close()
    while True:
        c, _ = l.accept()
        threading.Thread(target=one, args=(c,), daemon=True).start()
threading.Thread(target=echo_server, daemon=True).start()
time.sleep(0.3)

def socks(payloads, n=64):
    s = socket.create_connection(("127.0.0.1", 11080), timeout=5)
    out = b""
    try:
        for p in payloads:
            s.sendall(p)
            time.sleep(0.05)
        while len(out) < n:
            d = s.recv(n)
            if not d: break
            out += d
    except (socket.timeout, ConnectionResetError, BrokenPipeError):
        pass
    s.close()
    return out

def good_client():
    s = socket.create_connection(("127.0.0.1", 11080), timeout=5)
    s.sendall(b"\x05\x01\x00"); assert s.recv(2) == b"\x05\x00"
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("10.77.0.1") + struct.pack(">H", 9999))
    r = s.recv(10); assert r[:2] == b"\x05\x00", r
    return s

def echo(s, msg):
    s.sendall(msg); got = b""
    while len(got) < len(msg):
        got += s.recv(65536)
    assert got == msg, got

keep = good_client()
echo(keep, b"before")

# Greetings: bad version / no methods: closed without a reply;
# no acceptable method: 05 FF.
assert socks([b"\x04\x01\x00"]) == b"", "bad version"
assert socks([b"\x05\x00"]) == b"", "no methods"
assert socks([b"\x05\x01\x80"]) == b"\x05\xff", "no acceptable method"
# Requests: each class gets its reply code.
G = b"\x05\x01\x00"
def rep(req):
    r = socks([G, req], 12)
    assert r[:2] == b"\x05\x00", r
    return r[3]
assert rep(b"\x05\x09\x00\x01\x00\x00\x00\x00\x00\x00") == 7, "unknown command"
assert rep(b"\x05\x02\x00\x01\x00\x00\x00\x00\x00\x00") == 7, "BIND"
assert rep(b"\x05\x01\x00\x07\x00\x00\x00\x00\x00\x00") == 8, "address type"
assert rep(b"\x05\x01\x01\x01\x00\x00\x00\x00\x00\x00") == 1, "reserved byte"
assert rep(b"\x05\x01\x00\x03\x03a\x00b\x00\x50") == 4, "bad name"
assert rep(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", 9999)) == 2, "not routed"
assert rep(b"\x05\x01\x00\x01" + socket.inet_aton("10.77.0.1") + struct.pack(">H", 9998)) == 5, "refused"
# A megabyte of garbage: answered with an error, closed (or reset).
assert len(socks([b"\x05\xff" + bytes(range(256)) * 4096], 1 << 20)) <= 12, "garbage"
# A request cut short, then silence: the proxy keeps waiting (no crash);
# we give up.
socks([b"\x05\x01"], 1)

def http(raw):
    s = socket.create_connection(("127.0.0.1", 13128), timeout=5)
    try:
        s.sendall(raw)
    except OSError:
        pass
    out = b""
    try:
        while True:
            d = s.recv(4096)
            if not d: break
            out += d
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return out.split(b" ")[1].decode() if out.startswith(b"HTTP/1.1 ") else out

assert http(b"GET http://10.77.0.1:9999/ HTTP/1.1\r\nX: " + b"y" * 17000 + b"\r\n\r\n") == "431"
assert http(b"GET http://10.77.0.1:9999/ HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n") == "431"
assert http(b"GET https://10.77.0.1:9999/ HTTP/1.1\r\n\r\n") == "501"
assert http(b"GET http://10.77.0.1:9999/ HTTP/2.0\r\n\r\n") == "505"
assert http(b"GET /local HTTP/1.1\r\n\r\n") == "400"
assert http(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n") == "400"
assert http(b"CONNECT 127.0.0.1:9999 HTTP/1.1\r\n\r\n") == "403"
assert http(b"CONNECT 10.77.0.1:9998 HTTP/1.1\r\n\r\n") == "502"

# More clients than the limit (512): the extra ones are closed at once.
many = []
for _ in range(540):
    many.append(socket.create_connection(("127.0.0.1", 11080), timeout=5))
time.sleep(0.5)
cut = 0
for s in many:
    s.settimeout(0.02)
    try:
        if s.recv(1) == b"": cut += 1
    except socket.timeout:
        pass
    except ConnectionResetError:
        cut += 1
for s in many: s.close()
assert 25 <= cut <= 30, f"{cut} of 540 cut"
time.sleep(0.3)

# The good client all along, and a new one, still work.
echo(keep, b"after" * 1000)
fresh = good_client()
echo(fresh, b"fresh")
print("PASS")
"#;

#[test]
fn hostile_clients_get_error_replies_and_do_not_disturb_others() {
    let out = run_python(
        &[
            "--socks5",
            "127.0.0.1:11080",
            "--http-proxy",
            "127.0.0.1:13128",
            "--log-level=debug",
        ],
        SCRIPT,
    );
    let stdout = assert_pass(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("socks5: refused: request: unknown command 9"),
        "{log}"
    );
    assert!(log.contains("http proxy: bad request"), "{log}");
    assert!(log.contains("too many clients"), "{log}");
    assert!(stdout.contains("PASS"));
}

#[test]
fn proxy_direct_lets_the_proxy_reach_the_host_network() {
    // 127.0.0.1 is not routed into the tunnel: refused without
    // --proxy-direct (above), connected through the host network with it.
    let out = run_python(
        &[
            "--socks5",
            "127.0.0.1:11080",
            "--proxy-direct",
            "--log-level=debug",
        ],
        r#"
import socket, struct
port, token, seen = server()
s = socket.create_connection(("127.0.0.1", 11080), timeout=5)
s.sendall(b"\x05\x01\x00"); assert s.recv(2) == b"\x05\x00"
s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", port))
r = s.recv(10); assert r[1] == 0, r
assert recv_all(s, len(token)) == token
print("PASS")
"#,
    );
    assert_pass(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("direct connection (not routed into the tunnel)"),
        "{log}"
    );
}
