//! A blocking session client: what the launcher and the subcommands use to
//! talk to a running engine.

use super::proto::{LeaseEvent, SessionReply, SessionRequest};
use super::MAX_LINE;
use control::{Request, MAX_FRAME};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// How long a one-shot exchange may take (a handshake request sets its own).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// An open session connection.
pub struct Session {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Session {
    /// Connects to the engine at `socket` and switches to the session
    /// protocol. `ENOENT`/`ECONNREFUSED` mean no engine runs there.
    pub fn connect(socket: &Path) -> io::Result<Session> {
        let mut s = UnixStream::connect(socket)?;
        s.set_read_timeout(Some(EXCHANGE_TIMEOUT))?;
        let mut buf = [0u8; MAX_FRAME];
        let n = Request::Session
            .encode(&mut buf)
            .map_err(|_| io::Error::other("cannot encode the session request"))?;
        s.write_all(&buf[..n])?;
        let writer = s.try_clone()?;
        Ok(Session {
            reader: BufReader::new(s),
            writer,
        })
    }

    /// Sets how long a reply may take (`None`: forever, for leases).
    pub fn set_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.writer.set_read_timeout(t)
    }

    /// Sends one request line.
    pub fn send(&mut self, req: &SessionRequest) -> io::Result<()> {
        let mut line = serde_json::to_string(req).map_err(io::Error::other)?;
        line.push('\n');
        self.writer.write_all(line.as_bytes())
    }

    fn line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        let n = (&mut self.reader)
            .take(MAX_LINE as u64)
            .read_line(&mut line)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the engine closed the session",
            ));
        }
        Ok(line)
    }

    /// Reads one reply line.
    pub fn reply(&mut self) -> io::Result<SessionReply> {
        let line = self.line()?;
        serde_json::from_str(&line)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    }

    /// Reads one event line of a lease.
    pub fn event(&mut self) -> io::Result<LeaseEvent> {
        let line = self.line()?;
        serde_json::from_str(&line)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    }

    /// One request and its reply.
    pub fn exchange(&mut self, req: &SessionRequest) -> io::Result<SessionReply> {
        self.send(req)?;
        self.reply()
    }

    /// A second handle for writing on the same connection (a lease's
    /// `Program`/`Release` while another thread reads its events).
    pub fn writer(&self) -> io::Result<SessionWriter> {
        Ok(SessionWriter(self.writer.try_clone()?))
    }
}

/// Writes requests on a session another thread reads.
pub struct SessionWriter(UnixStream);

impl SessionWriter {
    /// Sends one request line.
    pub fn send(&mut self, req: &SessionRequest) -> io::Result<()> {
        let mut line = serde_json::to_string(req).map_err(io::Error::other)?;
        line.push('\n');
        self.0.write_all(line.as_bytes())
    }
}

/// One request on a fresh connection to `socket`.
pub fn ask(socket: &Path, req: &SessionRequest) -> io::Result<SessionReply> {
    Session::connect(socket)?.exchange(req)
}
