//! Client side of the control protocol: one short unix-socket connection
//! per exchange (see the `control` crate doc), so there is nothing to lock
//! between threads and nothing to re-open after `fork`.

use crate::sys;
use control::{Reply, Request, MAX_FRAME, PREFIX_LEN};
use libc::{c_int, sockaddr, socklen_t};
use std::sync::OnceLock;

/// Seconds a query waits for the engine before failing with ETIMEDOUT.
const QUERY_TIMEOUT_SECS: libc::time_t = 10;

/// Where the engine listens, read once from the environment.
pub struct Engine {
    addr: libc::sockaddr_un,
    len: socklen_t,
}

/// The shim's configuration from the environment.
pub struct Config {
    /// The engine, if `WRAPGUARD_CONTROL` is set (and fits a sockaddr_un).
    pub engine: Option<Engine>,
    /// `WRAPGUARD_CONTROL` was set at all: the shim is active and fails
    /// closed if the engine cannot be reached.
    pub active: bool,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

/// The configuration, read from the environment on first use.
pub fn config() -> &'static Config {
    CONFIG.get_or_init(|| {
        let path = crate::env::env_bytes(control::ENV_CONTROL);
        let engine = path.as_ref().and_then(|p| Engine::new(p));
        Config {
            engine,
            active: path.is_some(),
        }
    })
}

impl Engine {
    fn new(path: &[u8]) -> Option<Engine> {
        // SAFETY: plain old data; all-zero is valid.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        if path.is_empty() || path.len() >= addr.sun_path.len() {
            return None;
        }
        for (d, s) in addr.sun_path.iter_mut().zip(path) {
            *d = *s as libc::c_char;
        }
        let len = (std::mem::size_of::<libc::sa_family_t>() + path.len() + 1) as socklen_t;
        Some(Engine { addr, len })
    }

    /// Whether a socket address (from `getpeername`) is the engine's
    /// control socket, i.e. the fd is one of our data sockets.
    pub fn is_control_address(&self, ss: &libc::sockaddr_storage, len: socklen_t) -> bool {
        if c_int::from(ss.ss_family) != libc::AF_UNIX || len != self.len {
            return false;
        }
        // SAFETY: an AF_UNIX address of `len` bytes fits in sockaddr_storage
        // and has sockaddr_un's layout.
        let un = unsafe { &*(ss as *const libc::sockaddr_storage as *const libc::sockaddr_un) };
        un.sun_path == self.addr.sun_path
    }

    /// Opens a new connection to the engine (CLOEXEC, blocking, with a
    /// receive timeout), optionally with a tiny send buffer. A process that
    /// dropped its privileges since it started under wrapguard (the control
    /// socket refuses it: `EACCES`) gets one through its hold instead
    /// ([`crate::hold`]).
    pub fn open(&self, small_sndbuf: bool) -> Result<c_int, c_int> {
        let fd = if crate::hold::dropped() {
            crate::hold::connection()?
        } else {
            match self.connect(libc::SOCK_CLOEXEC) {
                Err(libc::EACCES | libc::EPERM) if crate::hold::fd().is_some() => {
                    crate::hold::connection()?
                }
                other => other?,
            }
        };
        let tv = libc::timeval {
            tv_sec: QUERY_TIMEOUT_SECS,
            tv_usec: 0,
        };
        // SAFETY: `tv` lives across the call.
        unsafe {
            sys::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as socklen_t,
            )
        };
        if small_sndbuf {
            // The kernel raises this to its minimum (about 4.5 KiB).
            let _ = sys::setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, 1);
        }
        Ok(fd)
    }

    /// A blocking connection to the control socket; `flags` are added to
    /// the socket type (`SOCK_CLOEXEC`, or 0 for the hold, which `exec`
    /// keeps).
    pub fn connect(&self, flags: c_int) -> Result<c_int, c_int> {
        let fd = sys::socket(libc::AF_UNIX, libc::SOCK_STREAM | flags, 0)?;
        // SAFETY: `addr` is a valid sockaddr_un of `len` bytes.
        match unsafe { sys::connect(fd, &self.addr as *const _ as *const sockaddr, self.len) } {
            Ok(()) => Ok(fd),
            Err(e) => {
                sys::close(fd);
                Err(e)
            }
        }
    }
}

/// Sends one request frame on `fd`.
pub fn send(fd: c_int, req: &Request) -> Result<(), c_int> {
    let mut buf = [0u8; MAX_FRAME];
    let n = req.encode(&mut buf).map_err(|_| libc::EMSGSIZE)?;
    sys::send_all(fd, &buf[..n])
}

/// Reads exactly one reply frame from `fd` (never more: on a data socket
/// the application's bytes follow).
pub fn recv(fd: c_int) -> Result<Reply, c_int> {
    let mut buf = [0u8; MAX_FRAME];
    sys::recv_exact(fd, &mut buf[..PREFIX_LEN]).map_err(timeout_errno)?;
    let total = control::frame_len([buf[0], buf[1]]).map_err(|_| libc::EPROTO)?;
    sys::recv_exact(fd, &mut buf[PREFIX_LEN..total]).map_err(timeout_errno)?;
    Reply::decode(&buf[..total])
        .map(|(r, _)| r)
        .map_err(|_| libc::EPROTO)
}

fn timeout_errno(e: c_int) -> c_int {
    if e == libc::EAGAIN {
        libc::ETIMEDOUT
    } else {
        e
    }
}

/// One request/reply exchange on a fresh connection.
pub fn query(req: &Request) -> Result<Reply, c_int> {
    let engine = config().engine.as_ref().ok_or(libc::ENETUNREACH)?;
    let fd = engine.open(false)?;
    let r = send(fd, req).and_then(|()| recv(fd));
    sys::close(fd);
    r
}

/// One request/reply exchange whose reply may carry a descriptor
/// (`UdpOpen`); the descriptor is CLOEXEC and owned by the caller.
pub fn query_with_fd(req: &Request) -> Result<(Reply, Option<c_int>), c_int> {
    let engine = config().engine.as_ref().ok_or(libc::ENETUNREACH)?;
    let fd = engine.open(false)?;
    let r = send(fd, req).and_then(|()| {
        let mut buf = [0u8; MAX_FRAME];
        let (mut got, passed) = sys::recv_with_fd(fd, &mut buf).map_err(timeout_errno)?;
        let frame = (|| {
            while got < PREFIX_LEN {
                sys::recv_exact(fd, &mut buf[got..PREFIX_LEN]).map_err(timeout_errno)?;
                got = PREFIX_LEN;
            }
            let total = control::frame_len([buf[0], buf[1]]).map_err(|_| libc::EPROTO)?;
            if got < total {
                sys::recv_exact(fd, &mut buf[got..total]).map_err(timeout_errno)?;
            }
            Reply::decode(&buf[..total])
                .map(|(r, _)| r)
                .map_err(|_| libc::EPROTO)
        })();
        match frame {
            Ok(r) => Ok((r, passed)),
            Err(e) => {
                if let Some(p) = passed {
                    sys::close(p);
                }
                Err(e)
            }
        }
    });
    sys::close(fd);
    r
}

/// Fire-and-forget notification (used for `Hello`); never blocks long.
pub fn notify(req: &Request) {
    let Some(engine) = config().engine.as_ref() else {
        return;
    };
    if let Ok(fd) = engine.open(false) {
        let _ = send(fd, req);
        sys::close(fd);
    }
}
