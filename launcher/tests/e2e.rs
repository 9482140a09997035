//! End to end: real programs (python3) under `wrapguard` with the
//! test-only host-loopback backend, each run inside its own network
//! namespace with only loopback up: socket semantics (connect, errors,
//! names, options, listeners, fork, exec, epoll, asyncio, errno). The
//! launcher around the program is in `e2e_launch.rs`.

use wrapguard_testnet::{assert_pass, run_python};

#[test]
fn blocking_connect_reaches_loopback_server_through_backend() {
    let out = run_python(
        &[],
        r#"
port, token, seen = server()
s = socket.socket()
s.connect(("10.77.0.1", port))
got = recv_all(s, len(token))
assert got == token, got
s.sendall(b"hello")
seen["thread"].join(5)
assert seen["got"] == b"hello", seen
# The loopback server saw the engine's connection, not a tunnel address.
assert seen["peer"][0] == "127.0.0.1", seen
print("PASS")
"#,
    );
    assert_pass(&out);
}

#[test]
fn nonblocking_connect_einprogress_then_writable() {
    let out = run_python(
        &[],
        r#"
port, token, seen = server()
s = socket.socket()
s.setblocking(False)
r = s.connect_ex(("10.77.0.1", port))
assert r == errno.EINPROGRESS, r
p = select.poll()
p.register(s, select.POLLOUT)
ev = p.poll(5000)
assert ev and ev[0][1] & select.POLLOUT and not ev[0][1] & (select.POLLERR | select.POLLHUP), ev
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
s.setblocking(True)
assert recv_all(s, len(token)) == token
# connect again: 0 the first time (the connect finished; the kernel's
# SS_CONNECTING becomes SS_CONNECTED), EISCONN after, as the kernel says.
assert s.connect_ex(("10.77.0.1", port)) == 0
assert s.connect_ex(("10.77.0.1", port)) == errno.EISCONN
print("PASS")
"#,
    );
    assert_pass(&out);
}

#[test]
fn refused_port_gives_econnrefused_blocking_and_nonblocking() {
    let out = run_python(
        &[],
        r#"
# A port nobody listens on (bind+close to find one).
t = socket.socket(); t.bind(("127.0.0.1", 0)); port = t.getsockname()[1]; t.close()
s = socket.socket()
r = s.connect_ex(("10.77.0.1", port))
assert r == errno.ECONNREFUSED, r
# The same socket can connect again, through the tunnel or directly.
p1, tok1, _ = server()
assert s.connect_ex(("10.77.0.1", p1)) == 0
assert recv_all(s, len(tok1)) == tok1
s2 = socket.socket()
assert s2.connect_ex(("10.77.0.1", port)) == errno.ECONNREFUSED
p2, tok2, _ = server()
assert s2.connect_ex(("127.0.0.1", p2)) == 0
assert recv_all(s2, len(tok2)) == tok2
assert s2.getpeername() == ("127.0.0.1", p2)
n = socket.socket()
n.setblocking(False)
assert n.connect_ex(("10.77.0.1", port)) == errno.EINPROGRESS
p = select.poll(); p.register(n, select.POLLOUT)
ev = p.poll(5000)
assert ev and ev[0][1] & (select.POLLERR | select.POLLHUP), ev
assert n.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
# Reported once, as the kernel clears it.
assert n.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
# Python's timeout path (non-blocking + poll + SO_ERROR) raises the right error.
c = socket.socket(); c.settimeout(5)
try:
    c.connect(("10.77.0.1", port)); raise SystemExit("connected?")
except ConnectionRefusedError:
    pass
print("PASS")
"#,
    );
    assert_pass(&out);
}

#[test]
fn names_and_options_look_like_tcp() {
    let out = run_python(
        &[],
        r#"
port, token, seen = server()
s = socket.socket()
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.connect(("10.77.0.1", port))
assert s.getpeername() == ("10.77.0.1", port), s.getpeername()
ip, lport = s.getsockname()
assert ip == "10.77.0.2" and lport > 0, (ip, lport)
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN) == socket.AF_INET
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL) == socket.IPPROTO_TCP
assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 65536
# An unknown TCP option fails like the kernel's.
try:
    s.getsockopt(socket.IPPROTO_TCP, 9999); raise SystemExit("no error?")
except OSError as e:
    assert e.errno == errno.ENOPROTOOPT, e
# A dup'd fd keeps the state.
d = s.dup()
assert d.getpeername() == ("10.77.0.1", port)
assert recv_all(d, len(token)) == token
# Python rebuilding a socket from an fd (SO_DOMAIN/SO_TYPE/getsockname).
f = socket.socket(fileno=os.dup(s.fileno()))
assert f.family == socket.AF_INET and f.type == socket.SOCK_STREAM, (f.family, f.type)
s.shutdown(socket.SHUT_WR)
print("PASS")
"#,
    );
    assert_pass(&out);
}

#[test]
fn fd_above_1024_works() {
    let out = run_python(
        &[],
        r#"
port, token, seen = server()
s = socket.socket()
os.dup2(s.fileno(), 2000)
s.close()
s = socket.socket(fileno=2000)
s.connect(("10.77.0.1", port))
assert s.fileno() == 2000
assert s.getpeername() == ("10.77.0.1", port), s.getpeername()
assert recv_all(s, len(token)) == token
print("PASS")
"#,
    );
    assert_pass(&out);
}

#[test]
fn ipv6_and_v4_mapped_destinations() {
    let out = run_python(
        &[],
        r#"
port, token, seen = server(host="::1", family=socket.AF_INET6)
s = socket.socket(socket.AF_INET6)
s.connect(("fd77::1", port))
assert s.getpeername()[:2] == ("fd77::1", port), s.getpeername()
assert recv_all(s, len(token)) == token
port, token, seen = server()
m = socket.socket(socket.AF_INET6)
m.connect(("::ffff:10.77.0.1", port))
assert m.getpeername()[:2] == ("::ffff:10.77.0.1", port), m.getpeername()
assert m.getsockname()[0] == "::ffff:10.77.0.2", m.getsockname()
assert recv_all(m, len(token)) == token
print("PASS")
"#,
    );
    assert_pass(&out);
}

#[test]
fn forked_child_connects_through_tunnel() {
    let out = run_python(
        &[],
        r#"
port, token, seen = server()
pid = os.fork()
if pid == 0:
    try:
        s = socket.socket()
        s.connect(("10.77.0.1", port))
        ok = recv_all(s, len(token)) == token and s.getpeername() == ("10.77.0.1", port)
    except Exception as e:
        print("child error", e, file=sys.stderr); ok = False
    os._exit(0 if ok else 1)
_, st = os.waitpid(pid, 0)
assert os.WEXITSTATUS(st) == 0, st
print("PASS")
"#,
    );
    assert_pass(&out);
}

#[test]
fn wildcard_listener_port0_reachable_through_backend_inbound() {
    let out = run_python(
        &[],
        r#"
srv = socket.socket()
srv.bind(("0.0.0.0", 0))
srv.listen(4)
host, port = srv.getsockname()
assert host == "0.0.0.0" and port > 0, (host, port)
token = ("IN-" + uuid.uuid4().hex).encode()
def client():
    # The test backend's "tunnel face": as if a peer connected to 10.77.0.2:port.
    c = socket.create_connection(("127.0.0.3", port), timeout=5)
    c.sendall(token)
    c.close()
threading.Thread(target=client, daemon=True).start()
conn, peer = srv.accept()
assert peer[0] == "10.77.0.1", peer
assert conn.getpeername()[0] == "10.77.0.1", conn.getpeername()
assert conn.getsockname() == ("10.77.0.2", port), conn.getsockname()
assert recv_all(conn, len(token)) == token
# A loopback client still reaches the wildcard listener, and is shown as loopback.
l = socket.create_connection(("127.0.0.1", port), timeout=5)
conn2, peer2 = srv.accept()
assert peer2[0] == "127.0.0.1", peer2
print("PASS")
"#,
    );
    assert_pass(&out);
}

#[test]
fn unrouted_destinations_are_untouched() {
    let out = run_python(
        &[],
        r#"
# Not in any test prefix: the kernel answers (no route in this namespace).
s = socket.socket()
r = s.connect_ex(("192.0.2.1", 80))
assert r == errno.ENETUNREACH, r
# A 127.0.0.1 listener stays local and keeps its address.
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
assert l.getsockname()[0] == "127.0.0.1"
print("PASS")
"#,
    );
    assert_pass(&out);
}

#[test]
fn asyncio_event_loop_connects_and_sees_refusal() {
    let out = run_python(
        &[],
        r#"
import asyncio
port, token, seen = server()
t = socket.socket(); t.bind(("127.0.0.1", 0)); closed = t.getsockname()[1]; t.close()
async def main():
    r, w = await asyncio.open_connection("10.77.0.1", port)
    assert await r.readexactly(len(token)) == token
    assert w.get_extra_info("peername") == ("10.77.0.1", port)
    w.close()
    try:
        await asyncio.open_connection("10.77.0.1", closed)
        raise SystemExit("connected?")
    except ConnectionRefusedError:
        pass
asyncio.run(main())
print("PASS")
"#,
    );
    assert_pass(&out);
}

#[test]
fn bind_to_tunnel_address_is_redirected_and_reported() {
    let out = run_python(
        &[],
        r#"
srv = socket.socket()
srv.bind(("10.77.0.2", 0))
srv.listen(1)
host, port = srv.getsockname()
assert host == "10.77.0.2" and port > 0, (host, port)
# An address that is neither ours nor loopback: the kernel refuses, as usual.
o = socket.socket()
try:
    o.bind(("192.0.2.7", 0)); raise SystemExit("bound?")
except OSError as e:
    assert e.errno == errno.EADDRNOTAVAIL, e
print("PASS")
"#,
    );
    assert_pass(&out);
}

#[test]
fn epoll_registration_made_before_connect_follows_the_socket() {
    let out = run_python(
        &[],
        r#"
port, token, seen = server()
ep = select.epoll()
s = socket.socket()
s.setblocking(False)
ep.register(s.fileno(), select.EPOLLOUT | select.EPOLLET)
assert s.connect_ex(("10.77.0.1", port)) == errno.EINPROGRESS
ev = ep.poll(5)
assert ev and ev[0][0] == s.fileno() and ev[0][1] & select.EPOLLOUT, ev
assert not ev[0][1] & (select.EPOLLERR | select.EPOLLHUP), ev
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
ep.modify(s.fileno(), select.EPOLLIN)
ev = ep.poll(5)
assert ev and ev[0][1] & select.EPOLLIN, ev
assert s.recv(100) == token
# Refused, registered before connect: the error shows through epoll.
t = socket.socket(); t.bind(("127.0.0.1", 0)); closed = t.getsockname()[1]; t.close()
n = socket.socket(); n.setblocking(False)
ep.register(n.fileno(), select.EPOLLOUT)
assert n.connect_ex(("10.77.0.1", closed)) == errno.EINPROGRESS
ev = dict(ep.poll(5))
assert n.fileno() in ev and ev[n.fileno()] & (select.EPOLLERR | select.EPOLLHUP), ev
assert n.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
print("PASS")
"#,
    );
    assert_pass(&out);
}

#[test]
fn many_threads_connect_concurrently() {
    let out = run_python(
        &[],
        r#"
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0)); srv.listen(256)
port = srv.getsockname()[1]
def serve():
    while True:
        c, _ = srv.accept()
        def echo(c=c):
            d = recv_all(c, 36)
            c.sendall(d[::-1]); c.close()
        threading.Thread(target=echo, daemon=True).start()
threading.Thread(target=serve, daemon=True).start()
errors = []
def worker(i):
    try:
        for j in range(5):
            s = socket.socket()
            if j % 2:
                s.settimeout(10)
            s.connect(("10.77.0.%d" % (1 + (i % 200)), port))
            msg = uuid.uuid4().hex.encode() + b"%04d" % i
            s.sendall(msg)
            assert recv_all(s, 36) == msg[::-1]
            assert s.getpeername()[0].startswith("10.77.0.")
            s.close()
    except Exception as e:
        errors.append(repr(e))
ts = [threading.Thread(target=worker, args=(i,)) for i in range(24)]
[t.start() for t in ts]; [t.join(30) for t in ts]
assert not errors, errors
print("PASS")
"#,
    );
    assert_pass(&out);
}

#[test]
fn dual_stack_wildcard_listener_is_reachable_through_backend() {
    let out = run_python(
        &[],
        r#"
srv = socket.create_server(("", 0), family=socket.AF_INET6, dualstack_ipv6=True)
port = srv.getsockname()[1]
assert srv.getsockname()[0] == "::", srv.getsockname()
def client():
    c = socket.create_connection(("127.0.0.3", port), timeout=5)
    c.sendall(b"v6-listener"); c.close()
threading.Thread(target=client, daemon=True).start()
conn, peer = srv.accept()
assert peer[0] == "::ffff:10.77.0.1", peer
assert recv_all(conn, 11) == b"v6-listener"
print("PASS")
"#,
    );
    assert_pass(&out);
}

#[test]
fn spawned_children_inherit_the_tunnel() {
    let out = run_python(
        &[],
        r#"
import subprocess
child = r'''
import socket, sys
s = socket.socket(); s.connect(("10.77.0.1", int(sys.argv[1])))
d = b""
while len(d) < int(sys.argv[2]):
    x = s.recv(100)
    if not x: break
    d += x
sys.stdout.write(d.decode())
'''
port, token, seen = server()
r = subprocess.run([sys.executable, "-c", child, str(port), str(len(token))], capture_output=True, timeout=20)
assert r.stdout == token, (r.stdout, r.stderr)
# posix_spawn with an empty environment: the shim puts itself back.
port, token, seen = server()
rfd, wfd = os.pipe()
pid = os.posix_spawn(sys.executable, [sys.executable, "-c", child, str(port), str(len(token))], {},
                     file_actions=[(os.POSIX_SPAWN_DUP2, wfd, 1)])
os.close(wfd)
_, st = os.waitpid(pid, 0)
got = os.read(rfd, 200)
assert os.WEXITSTATUS(st) == 0 and got == token, (st, got)
print("PASS")
"#,
    );
    assert_pass(&out);
}

#[test]
fn forked_child_keeps_state_of_inherited_socket() {
    let out = run_python(
        &[],
        r#"
port, token, seen = server()
s = socket.socket()
s.connect(("10.77.0.1", port))
pid = os.fork()
if pid == 0:
    ok = s.getpeername() == ("10.77.0.1", port) and recv_all(s, len(token)) == token
    os._exit(0 if ok else 1)
_, st = os.waitpid(pid, 0)
assert os.WEXITSTATUS(st) == 0, st
print("PASS")
"#,
    );
    assert_pass(&out);
}

#[test]
fn errno_is_preserved_on_success_and_exact_on_failure() {
    let out = run_python(
        &[],
        r#"
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
port, token, seen = server()
s = socket.socket()
sa = struct.pack("!HH4s8x", socket.AF_INET, port, socket.inet_aton("10.77.0.1"))
sa = struct.pack("=H", socket.AF_INET) + sa[2:]
ctypes.set_errno(1234)
assert libc.connect(s.fileno(), sa, len(sa)) == 0
assert ctypes.get_errno() == 1234, ctypes.get_errno()
buf = ctypes.create_string_buffer(128); ln = ctypes.c_uint32(128)
ctypes.set_errno(4321)
assert libc.getsockname(s.fileno(), buf, ctypes.byref(ln)) == 0
assert ctypes.get_errno() == 4321
v = ctypes.c_int(7); vl = ctypes.c_uint32(4)
assert libc.getsockopt(s.fileno(), socket.SOL_SOCKET, socket.SO_ERROR, ctypes.byref(v), ctypes.byref(vl)) == 0
assert v.value == 0 and ctypes.get_errno() == 4321
# A second connect: -1 with EISCONN exactly.
assert libc.connect(s.fileno(), sa, len(sa)) == -1 and ctypes.get_errno() == errno.EISCONN
# getpeername on a bad fd: libc's own EBADF.
assert libc.getpeername(999, buf, ctypes.byref(ln)) == -1 and ctypes.get_errno() == errno.EBADF
print("PASS")
"#,
    );
    assert_pass(&out);
}

#[test]
fn routed_datagrams_fail_closed_and_local_ones_pass() {
    let out = run_python(
        &[],
        r#"
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for attempt in range(2):  # second time from the shim's route cache
    try:
        u.sendto(b"x", ("10.77.0.53", 53)); raise SystemExit("sent?")
    except OSError as e:
        assert e.errno == errno.ENETUNREACH, e
try:
    u.sendmsg([b"x"], [], 0, ("10.77.0.53", 53)); raise SystemExit("sent?")
except OSError as e:
    assert e.errno == errno.ENETUNREACH, e
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
assert c.connect_ex(("10.77.0.53", 53)) == errno.ENETUNREACH
# Loopback datagrams are untouched.
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(("127.0.0.1", 0))
u.sendto(b"local", r.getsockname())
assert r.recvfrom(10)[0] == b"local"
# sendto with an address on a tunnel TCP socket: the address is ignored, as on TCP.
port, token, seen = server()
s = socket.socket(); s.connect(("10.77.0.1", port))
assert s.sendto(b"hi", ("10.77.0.1", port)) == 2
seen["thread"].join(5)
assert seen.get("got") == b"hi", seen
print("PASS")
"#,
    );
    assert_pass(&out);
}

#[test]
fn tunnel_socket_inherited_across_exec_is_adopted() {
    let out = run_python(
        &[],
        r#"
port, token, seen = server()
s = socket.socket()
s.connect(("10.77.0.1", port))
s.set_inheritable(True)
# The server lives in this process image: let its token arrive before exec.
p = select.poll(); p.register(s, select.POLLIN)
assert p.poll(5000)
child = (
    "import socket, sys\n"
    "fd, port, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])\n"
    "s = socket.socket(fileno=fd)\n"
    "assert s.family == socket.AF_INET, s.family\n"
    "assert s.getpeername() == ('10.77.0.1', port), s.getpeername()\n"
    "assert s.getsockname()[0] == '10.77.0.2', s.getsockname()\n"
    "assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) in (0, 1)\n"
    "d = b''\n"
    "while len(d) < n:\n"
    "    x = s.recv(100)\n"
    "    if not x: break\n"
    "    d += x\n"
    "sys.stdout.write(d.decode() + '\\nPASS\\n')\n"
)
os.execv(sys.executable, [sys.executable, "-c", child, str(s.fileno()), str(port), str(len(token))])
"#,
    );
    let stdout = assert_pass(&out);
    assert!(stdout.contains("TOKEN-"), "{stdout}");
}
