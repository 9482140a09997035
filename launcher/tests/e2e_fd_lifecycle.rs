//! End to end: the shim's descriptor table never outlives a close, so a
//! number that a tunnel socket had and a file now has is written as the
//! file (issue 25 item 7: Node's libuv closes with `syscall(SYS_close)`,
//! another thread opens a file at the same number, and writes to it came
//! out as `sendto` → `ENOTSOCK`). Python under `wrapguard` with the
//! test-only loopback backend, in a namespace of its own.

use wrapguard_testnet::{assert_pass, run_python};

/// Helpers for the scripts: libc's `syscall` (the shim's, since it is
/// interposed), and a loopback server whose backlog holds the connections.
const HELPERS: &str = r#"
import ctypes, tempfile
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_close, SYS_close_range, SYS_dup2 = 3, 436, 33

def sink_server():
    # Connections wait in the backlog, never accepted: no other thread
    # takes descriptor numbers while a test expects one.
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1024)
    sink_server.keep = srv
    return srv.getsockname()[1]

def tunnel_fd(port):
    s = socket.socket()
    s.connect(("10.77.0.1", port))
    return s.detach()

def write_file_at(fd_expected, token):
    d = tempfile.mkdtemp()
    path = os.path.join(d, "f")
    f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    assert f == fd_expected, (f, fd_expected)
    n = os.write(f, token)
    assert n == len(token), n
    os.close(f)
    with open(path, "rb") as r:
        got = r.read()
    assert got == token, got
"#;

fn run(script: &str) {
    let out = run_python(&[], &format!("{HELPERS}\n{script}"));
    assert_pass(&out);
}

#[test]
fn a_number_closed_with_syscall_close_is_a_plain_file_again() {
    run(r#"
port = sink_server()
for i in range(20):
    fd = tunnel_fd(port)
    assert libc.syscall(SYS_close, fd) == 0, ctypes.get_errno()
    write_file_at(fd, ("TOKEN-%d-" % i + uuid.uuid4().hex).encode())
print("PASS")
"#);
}

#[test]
fn close_range_and_dup2_through_syscall_release_the_entry() {
    run(r#"
port = sink_server()
# close_range over a tunnel socket (and its neighbours).
fd = tunnel_fd(port)
assert libc.syscall(SYS_close_range, fd, fd, 0) == 0, ctypes.get_errno()
write_file_at(fd, b"after-close-range-" + uuid.uuid4().hex.encode())
# libc's close_range wrapper too.
fd = tunnel_fd(port)
assert libc.close_range(fd, fd, 0) == 0, ctypes.get_errno()
write_file_at(fd, b"after-libc-close-range-" + uuid.uuid4().hex.encode())
# dup2 of a pipe onto a tunnel socket's number: the number is a pipe now.
fd = tunnel_fd(port)
r, w = os.pipe()
assert libc.syscall(SYS_dup2, w, fd) == fd, ctypes.get_errno()
os.close(w)
token = b"through-the-pipe-" + uuid.uuid4().hex.encode()
assert os.write(fd, token) == len(token)
os.close(fd)
assert os.read(r, 100) == token
print("PASS")
"#);
}

#[test]
fn threads_closing_sockets_while_others_open_and_write_files() {
    run(r#"
port = sink_server()
d = tempfile.mkdtemp()
errors = []
stop = threading.Event()

def closer(k):
    try:
        for i in range(150):
            fd = tunnel_fd(port)
            if i % 2:
                assert libc.syscall(SYS_close, fd) == 0, ctypes.get_errno()
            else:
                os.close(fd)
    except Exception as e:
        errors.append(("closer", k, repr(e)))
    finally:
        stop.set()

def writer(k):
    n = 0
    try:
        while not stop.is_set() or n < 50:
            path = os.path.join(d, "w%d-%d" % (k, n))
            token = ("%d-%d-" % (k, n)).encode() + uuid.uuid4().hex.encode()
            f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            assert os.write(f, token) == len(token)
            os.close(f)
            with open(path, "rb") as r:
                assert r.read() == token, path
            n += 1
    except Exception as e:
        errors.append(("writer", k, n, repr(e)))

ts = [threading.Thread(target=closer, args=(k,)) for k in range(2)]
ts += [threading.Thread(target=writer, args=(k,)) for k in range(3)]
for t in ts:
    t.start()
for t in ts:
    t.join(120)
assert not errors, errors[:5]
print("PASS")
"#);
}
