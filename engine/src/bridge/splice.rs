//! Copies bytes both ways between two streams, like
//! `tokio::io::copy_bidirectional`, but with no buffer owned by an idle
//! flow: reads land in one scratch buffer per worker thread, go straight
//! on to the other side, and only what that side cannot take now is kept
//! (and freed as soon as it is written). With thousands of mostly idle
//! flows this is the difference between 16 KiB per flow (tokio's two
//! 8 KiB buffers) and nothing; bulk flows move 64 KiB per call instead of
//! 8 KiB.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Size of each worker thread's scratch buffer (one read at most).
const SCRATCH: usize = 64 * 1024;
/// Reads per direction per poll before yielding to other tasks.
const BUDGET: usize = 16;

thread_local! {
    static SCRATCH_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// One direction's state.
#[derive(Default)]
struct Pipe {
    /// Bytes read but not yet written (empty, unallocated, when idle).
    pending: Vec<u8>,
    /// How much of `pending` was written.
    off: usize,
    /// The reader reached EOF.
    eof: bool,
    /// EOF was passed on (shutdown of the writer) — this direction is done.
    done: bool,
    /// Written since the last flush.
    unflushed: bool,
    /// Bytes moved.
    bytes: u64,
}

enum Step {
    /// Bytes were read (some may be left in `pending`), or EOF.
    Moved,
    /// The reader had nothing.
    Idle,
}

impl Pipe {
    /// Writes what is pending; Ready(Ok) once nothing is.
    fn flush_pending<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        w: &mut W,
    ) -> Poll<io::Result<()>> {
        while self.off < self.pending.len() {
            match Pin::new(&mut *w).poll_write(cx, &self.pending[self.off..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.off += n;
                    self.bytes += n as u64;
                    self.unflushed = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        // Release the storage: an idle flow holds none.
        self.pending = Vec::new();
        self.off = 0;
        Poll::Ready(Ok(()))
    }

    /// One read into the thread's scratch buffer, written on at once.
    fn read_once<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        r: &mut R,
        w: &mut W,
    ) -> Poll<io::Result<Step>>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        SCRATCH_BUF.with(|cell| {
            let mut scratch = cell.borrow_mut();
            if scratch.len() < SCRATCH {
                scratch.resize(SCRATCH, 0);
            }
            let mut rb = ReadBuf::new(&mut scratch[..]);
            match Pin::new(&mut *r).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Ready(Ok(Step::Idle)),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            let data = rb.filled();
            if data.is_empty() {
                self.eof = true;
                return Poll::Ready(Ok(Step::Moved));
            }
            let mut off = 0;
            while off < data.len() {
                match Pin::new(&mut *w).poll_write(cx, &data[off..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => {
                        off += n;
                        self.bytes += n as u64;
                        self.unflushed = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => break,
                }
            }
            if off < data.len() {
                self.pending = data[off..].to_vec();
                self.off = 0;
            }
            Poll::Ready(Ok(Step::Moved))
        })
    }

    /// Moves bytes from `r` to `w` until both would block; Ready once EOF
    /// has been passed on.
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        r: &mut R,
        w: &mut W,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        if self.done {
            return Poll::Ready(Ok(()));
        }
        for _ in 0..BUDGET {
            match self.flush_pending(cx, w) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            if self.eof {
                match Pin::new(&mut *w).poll_shutdown(cx) {
                    Poll::Ready(Ok(())) => {
                        self.done = true;
                        return Poll::Ready(Ok(()));
                    }
                    other => return other,
                }
            }
            match self.read_once(cx, r, w) {
                Poll::Ready(Ok(Step::Moved)) => continue,
                Poll::Ready(Ok(Step::Idle)) => {
                    if self.unflushed {
                        match Pin::new(&mut *w).poll_flush(cx) {
                            Poll::Ready(Ok(())) => self.unflushed = false,
                            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                            Poll::Pending => {}
                        }
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        // Out of budget with more to do: let other flows run first.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Copies `a` → `b` and `b` → `a` until both directions reached EOF (each
/// EOF is passed on as a shutdown of the other side) or one fails.
/// Returns the bytes moved (a → b, b → a).
pub async fn splice<A, B>(a: &mut A, b: &mut B) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let (mut ab, mut ba) = (Pipe::default(), Pipe::default());
    poll_fn(|cx| {
        let x = ab.poll_copy(cx, a, b)?;
        let y = ba.poll_copy(cx, b, a)?;
        if x.is_ready() && y.is_ready() {
            Poll::Ready(Ok((ab.bytes, ba.bytes)))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// A stream that remembers the first error it returned (its errno), so
/// that after [`splice`] the caller can tell which side failed and why.
pub struct Watched<T> {
    inner: T,
    error: Option<i32>,
}

impl<T> Watched<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        Watched { inner, error: None }
    }

    /// The errno of the first error `inner` returned, if any.
    pub fn error(&self) -> Option<i32> {
        self.error
    }

    fn note<V>(&mut self, p: Poll<io::Result<V>>) -> Poll<io::Result<V>> {
        if let Poll::Ready(Err(e)) = &p {
            if self.error.is_none() {
                self.error = Some(e.raw_os_error().unwrap_or(libc::EIO));
            }
        }
        p
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let p = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.note(p)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let p = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note(p)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let p = Pin::new(&mut self.inner).poll_flush(cx);
        self.note(p)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let p = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.note(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn moves_both_ways_with_half_close_and_counts() {
        let (app, mut a) = tokio::io::duplex(1024);
        let (mut b, far) = tokio::io::duplex(1024);
        let t = tokio::spawn(async move { splice(&mut a, &mut b).await });
        // More than both pipes and one scratch read hold, so writes block.
        let up: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 256) as u8).collect();
        let down: Vec<u8> = (0..200_000u32).map(|i| (i * 13) as u8).collect();
        let (up2, down2) = (up.clone(), down.clone());
        let far_side = tokio::spawn(async move {
            let mut got = Vec::new();
            let (mut r, mut w) = tokio::io::split(far);
            let writer = tokio::spawn(async move {
                w.write_all(&down2).await.expect("far write");
                w.shutdown().await.expect("far shutdown");
            });
            r.read_to_end(&mut got).await.expect("far read");
            writer.await.expect("writer");
            assert_eq!(got, up2, "upload arrived intact");
        });
        let (mut r, mut w) = tokio::io::split(app);
        let writer = tokio::spawn(async move {
            w.write_all(&up).await.expect("app write");
            w.shutdown().await.expect("app shutdown");
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.expect("app read");
        assert_eq!(got, down, "download arrived intact");
        writer.await.expect("writer");
        far_side.await.expect("far side");
        let (ab, ba) = t.await.expect("join").expect("splice ok");
        assert_eq!((ab, ba), (300_000, 200_000));
    }

    /// A stream whose reads fail with ETIMEDOUT (a tunnel flow that timed out).
    struct TimedOut;

    impl AsyncRead for TimedOut {
        fn poll_read(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            _buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Err(io::Error::from_raw_os_error(libc::ETIMEDOUT)))
        }
    }

    impl AsyncWrite for TimedOut {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            _buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Err(io::Error::from_raw_os_error(libc::ETIMEDOUT)))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn watched_tells_which_side_failed_and_why() {
        let (_app, mut a) = tokio::io::duplex(64);
        let mut app_side = Watched::new(&mut a);
        let mut tunnel = Watched::new(TimedOut);
        let r = splice(&mut app_side, &mut tunnel).await;
        assert_eq!(r.expect_err("fails").raw_os_error(), Some(libc::ETIMEDOUT));
        assert_eq!(tunnel.error(), Some(libc::ETIMEDOUT));
        assert_eq!(app_side.error(), None);
    }
}
