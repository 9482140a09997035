//! A client's own connection handed over to carry a flow
//! ([`control::ConnectRequest::hand_over`]): the proxy front-ends pass
//! their client's TCP socket, so the bytes go between it and the tunnel
//! in one copy instead of through the proxy and a data socket.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tracing::debug;

/// The handed-over connection. Dropped before [`Handed::ended_cleanly`]
/// (the tunnel connection failed or was cut, the tunnel taken down), it
/// is reset (`SO_LINGER` 0), so the client sees an error and never an
/// end that would pass for a complete transfer.
#[derive(Debug)]
pub struct Handed {
    /// `None` once given away ([`Handed::into_fd`]).
    tcp: Option<TcpStream>,
    clean: bool,
}

impl Handed {
    /// The flow ended as TCP ends: close with a FIN.
    pub fn ended_cleanly(&mut self) {
        self.clean = true;
    }
}

impl Handed {
    /// The connection as a plain descriptor, for the engine thread to carry
    /// (which then resets it itself if the flow fails).
    pub fn into_fd(mut self) -> io::Result<OwnedFd> {
        let tcp = self.tcp.take().ok_or(io::ErrorKind::NotConnected)?;
        Ok(tcp.into_std()?.into())
    }

    fn tcp(&mut self) -> io::Result<&mut TcpStream> {
        self.tcp
            .as_mut()
            .ok_or_else(|| io::ErrorKind::NotConnected.into())
    }
}

impl Drop for Handed {
    fn drop(&mut self) {
        if let (false, Some(tcp)) = (self.clean, &self.tcp) {
            let _ = socket2::SockRef::from(tcp).set_linger(Some(std::time::Duration::ZERO));
        }
    }
}

/// Waits for the one byte with the connection attached on `stream`;
/// `None` if the client closes instead or sends anything else.
pub async fn take(stream: &UnixStream) -> Option<Handed> {
    let fd = loop {
        stream.readable().await.ok()?;
        let mut byte = [0u8; 1];
        match stream.try_io(Interest::READABLE, || {
            fdpass::recv_with_fd(stream.as_raw_fd(), &mut byte, libc::MSG_DONTWAIT)
        }) {
            Ok((0, _)) => return None,
            Ok((_, fd)) => break fd?,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                debug!(error = %e, "reading the handed-over connection");
                return None;
            }
        }
    };
    match tcp_stream(fd) {
        Ok(tcp) => Some(Handed {
            tcp: Some(tcp),
            clean: false,
        }),
        Err(e) => {
            debug!(error = %e, "the handed-over descriptor is not a TCP connection");
            None
        }
    }
}

/// `fd` as a tokio TCP stream, if it is a stream socket of IPv4 or IPv6.
fn tcp_stream(fd: OwnedFd) -> io::Result<TcpStream> {
    let sock = socket2::Socket::from(fd);
    let inet =
        matches!(sock.domain()?, d if d == socket2::Domain::IPV4 || d == socket2::Domain::IPV6);
    if !inet || sock.r#type()? != socket2::Type::STREAM {
        return Err(io::Error::from_raw_os_error(libc::ENOTSOCK));
    }
    sock.set_nonblocking(true)?;
    TcpStream::from_std(sock.into())
}

impl AsyncRead for Handed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.tcp() {
            Ok(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for Handed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.tcp() {
            Ok(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.tcp() {
            Ok(tcp) => Pin::new(tcp).poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.tcp() {
            Ok(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}
