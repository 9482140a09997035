//! The supervisor as a client of the engine's control socket: the same
//! requests the shim makes (see the `control` crate), over blocking unix
//! sockets with a timeout, so both modes share one engine code path.

use control::{Reply, Request, MAX_FRAME, PREFIX_LEN};
use socket2::{Domain, SockAddr, Socket, Type};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// How long a query waits for the engine.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the engine's control socket is.
#[derive(Clone, Debug)]
pub struct Engine {
    path: PathBuf,
}

fn proto_err() -> io::Error {
    io::Error::from_raw_os_error(libc::EPROTO)
}

impl Engine {
    /// A client of the control socket at `path`.
    pub fn new(path: PathBuf) -> Engine {
        Engine { path }
    }

    /// A new connection; `small_sndbuf` for a data socket (the filler
    /// then keeps `POLLOUT` off until the engine drains it).
    pub fn open(&self, small_sndbuf: bool) -> io::Result<UnixStream> {
        let s = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        if small_sndbuf {
            // The kernel raises this to its minimum (about 4.5 KiB).
            s.set_send_buffer_size(1)?;
        }
        s.set_read_timeout(Some(QUERY_TIMEOUT))?;
        s.connect(&SockAddr::unix(&self.path)?)?;
        Ok(UnixStream::from(std::os::fd::OwnedFd::from(s)))
    }

    /// One request/reply exchange on a fresh connection.
    pub fn query(&self, req: &Request) -> io::Result<Reply> {
        let mut s = self.open(false)?;
        send(&mut s, req)?;
        recv(&mut s)
    }
}

/// Sends one request frame.
pub fn send(s: &mut UnixStream, req: &Request) -> io::Result<()> {
    let mut buf = [0u8; MAX_FRAME];
    let n = req.encode(&mut buf).map_err(|_| proto_err())?;
    s.write_all(&buf[..n])
}

/// Reads exactly one reply frame (never more: application bytes follow
/// on a data socket).
pub fn recv(s: &mut UnixStream) -> io::Result<Reply> {
    let mut buf = [0u8; MAX_FRAME];
    s.read_exact(&mut buf[..PREFIX_LEN])?;
    let total = control::frame_len([buf[0], buf[1]]).map_err(|_| proto_err())?;
    s.read_exact(&mut buf[PREFIX_LEN..total])?;
    Reply::decode(&buf[..total])
        .map(|(r, _)| r)
        .map_err(|_| proto_err())
}
