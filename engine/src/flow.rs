//! One tunnel TCP flow as the bridge sees it: a [`TunnelStream`]
//! (`AsyncRead + AsyncWrite`) whose bytes travel to and from the stack
//! thread through two bounded lock-free chunk queues, with wakeups both
//! ways. No lock is taken on the data path: the queues are
//! `crossbeam_queue::ArrayQueue`s (allocated on first use), the wakers
//! `AtomicWaker`s, and the
//! stack thread is woken through [`Kick`] (one eventfd write, skipped
//! while the thread is already awake).

use crossbeam_queue::{ArrayQueue, SegQueue};
use futures_util::task::AtomicWaker;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Chunks in flight per direction per flow.
pub const QUEUE_CHUNKS: usize = 64;
/// Largest chunk the bridge hands to the stack thread in one write.
pub const MAX_CHUNK: usize = 64 * 1024;

/// Wakes the stack thread: which flow needs attention, then one eventfd
/// write unless the thread is known to be awake.
pub struct Kick {
    /// Flows with news (data queued, half-close, close, room freed).
    pub queue: SegQueue<u64>,
    /// True while the stack thread sleeps (or is about to) in `poll`.
    pub sleeping: AtomicBool,
    /// The stack thread's mio waker.
    pub waker: mio::Waker,
}

impl Kick {
    /// Records that `flow` needs attention and wakes the thread if needed.
    pub fn kick(&self, flow: u64) {
        self.queue.push(flow);
        self.wake();
    }

    /// Wakes the thread if it sleeps.
    pub fn wake(&self) {
        if self.sleeping.swap(false, Ordering::AcqRel) {
            // A failed eventfd write only means the counter is saturated,
            // i.e. a wakeup is pending anyway.
            let _ = self.waker.wake();
        }
    }
}

/// A bounded chunk queue of [`QUEUE_CHUNKS`] whose storage is allocated by
/// the first push: a flow whose bytes the engine thread moves itself
/// (`tcp_direct`) never uses its queues, and 10,000 held connections would
/// otherwise keep 5 KiB each of them. Lock-free like the `ArrayQueue` it
/// holds (one atomic load more per call).
#[derive(Default)]
pub struct ChunkQueue(OnceLock<Box<ArrayQueue<Vec<u8>>>>);

impl ChunkQueue {
    /// Appends `chunk`, or gives it back if the queue is full.
    pub fn push(&self, chunk: Vec<u8>) -> Result<(), Vec<u8>> {
        self.0
            .get_or_init(|| Box::new(ArrayQueue::new(QUEUE_CHUNKS)))
            .push(chunk)
    }
    /// Takes the oldest chunk.
    pub fn pop(&self) -> Option<Vec<u8>> {
        self.0.get()?.pop()
    }
    /// Whether no chunk is queued.
    pub fn is_empty(&self) -> bool {
        self.0.get().is_none_or(|q| q.is_empty())
    }
    /// Whether a push would fail.
    pub fn is_full(&self) -> bool {
        self.0.get().is_some_and(|q| q.is_full())
    }
}

/// State shared by the bridge's [`TunnelStream`] and the stack thread.
pub struct FlowShared {
    /// Flow id (the stack thread's key).
    pub id: u64,
    /// Application bytes towards the tunnel.
    pub up: ChunkQueue,
    /// Tunnel bytes towards the application.
    pub down: ChunkQueue,
    /// The bridge will write no more (after `up` drains: FIN).
    pub up_fin: AtomicBool,
    /// The peer sent FIN; `down` holds everything that came before it.
    pub down_fin: AtomicBool,
    /// The stack thread could not push into a full `down`: kick it after
    /// taking a chunk.
    pub down_blocked: AtomicBool,
    /// The bridge dropped its stream.
    pub released: AtomicBool,
    /// The errno that ended the flow, 0 while it is healthy.
    pub error: AtomicI32,
    /// Woken when `down` gains data, EOF or an error.
    pub reader: AtomicWaker,
    /// Woken when `up` gains room or an error.
    pub writer: AtomicWaker,
}

impl FlowShared {
    /// A fresh flow.
    pub fn new(id: u64) -> Arc<Self> {
        Arc::new(FlowShared {
            id,
            up: ChunkQueue::default(),
            down: ChunkQueue::default(),
            up_fin: AtomicBool::new(false),
            down_fin: AtomicBool::new(false),
            down_blocked: AtomicBool::new(false),
            released: AtomicBool::new(false),
            error: AtomicI32::new(0),
            reader: AtomicWaker::new(),
            writer: AtomicWaker::new(),
        })
    }

    /// Ends the flow with `errno` and wakes both sides of the bridge.
    pub fn fail(&self, errno: i32) {
        let _ = self
            .error
            .compare_exchange(0, errno, Ordering::AcqRel, Ordering::Acquire);
        self.reader.wake();
        self.writer.wake();
    }

    /// The errno that ended the flow, 0 while it is healthy.
    pub fn errno(&self) -> i32 {
        self.error.load(Ordering::Acquire)
    }
}

/// The bridge's end of a tunnel flow.
pub struct TunnelStream {
    shared: Arc<FlowShared>,
    kick: Arc<Kick>,
    /// The chunk being read, and how much of it was consumed.
    cur: Option<(Vec<u8>, usize)>,
}

impl TunnelStream {
    /// Wraps the shared state of an established flow.
    pub fn new(shared: Arc<FlowShared>, kick: Arc<Kick>) -> Self {
        TunnelStream {
            shared,
            kick,
            cur: None,
        }
    }

    fn next_chunk(&mut self) -> Option<Vec<u8>> {
        let c = self.shared.down.pop()?;
        if self.shared.down_blocked.swap(false, Ordering::AcqRel) {
            self.kick.kick(self.shared.id);
        }
        Some(c)
    }
}

impl AsyncRead for TunnelStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if let Some((chunk, off)) = &mut this.cur {
                let n = (chunk.len() - *off).min(buf.remaining());
                buf.put_slice(&chunk[*off..*off + n]);
                *off += n;
                if *off >= chunk.len() {
                    this.cur = None;
                }
                // Take more while there is room, without waiting.
                if buf.remaining() == 0 {
                    return Poll::Ready(Ok(()));
                }
                match this.next_chunk() {
                    Some(c) => this.cur = Some((c, 0)),
                    None => return Poll::Ready(Ok(())),
                }
                continue;
            }
            if let Some(c) = this.next_chunk() {
                this.cur = Some((c, 0));
                continue;
            }
            this.shared.reader.register(cx.waker());
            // Re-check after registering, so a push in between is not missed.
            if let Some(c) = this.next_chunk() {
                this.cur = Some((c, 0));
                continue;
            }
            if this.shared.down_fin.load(Ordering::Acquire) {
                // The queue may have been filled just before the FIN flag.
                if let Some(c) = this.next_chunk() {
                    this.cur = Some((c, 0));
                    continue;
                }
                return Poll::Ready(Ok(())); // EOF
            }
            let e = this.shared.errno();
            if e != 0 {
                return Poll::Ready(Err(io::Error::from_raw_os_error(e)));
            }
            return Poll::Pending;
        }
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let e = self.shared.errno();
        if e != 0 {
            return Poll::Ready(Err(io::Error::from_raw_os_error(e)));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if self.shared.up.is_full() {
            self.shared.writer.register(cx.waker());
            if self.shared.up.is_full() {
                // The stack thread may be asleep with nothing left to push
                // (e.g. TCP window full): make sure it looks again.
                self.kick.kick(self.shared.id);
                return Poll::Pending;
            }
        }
        let n = buf.len().min(MAX_CHUNK);
        match self.shared.up.push(buf[..n].to_vec()) {
            Ok(()) => {
                self.kick.kick(self.shared.id);
                Poll::Ready(Ok(n))
            }
            Err(_) => {
                // Only the bridge pushes; the queue cannot have filled since
                // the check above, but stay correct if it did.
                self.shared.writer.register(cx.waker());
                self.kick.kick(self.shared.id);
                Poll::Pending
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.shared.up_fin.swap(true, Ordering::AcqRel) {
            self.kick.kick(self.shared.id);
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for TunnelStream {
    fn drop(&mut self) {
        self.shared.released.store(true, Ordering::Release);
        self.kick.kick(self.shared.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn chunk_queues_take_storage_on_the_first_push_and_stay_bounded() {
        let sh = FlowShared::new(7);
        assert!(sh.up.0.get().is_none() && sh.down.0.get().is_none());
        assert!(sh.down.is_empty() && !sh.down.is_full());
        assert_eq!(sh.down.pop(), None);
        for i in 0..QUEUE_CHUNKS {
            sh.down.push(vec![i as u8]).expect("room");
        }
        assert!(sh.down.is_full());
        assert_eq!(sh.down.push(vec![0xff]), Err(vec![0xff]));
        assert_eq!(sh.down.pop(), Some(vec![0]));
        assert!(sh.up.0.get().is_none(), "the other direction stays empty");
    }

    fn kick() -> (Arc<Kick>, mio::Poll) {
        let poll = mio::Poll::new().expect("poll");
        let waker = mio::Waker::new(poll.registry(), mio::Token(1)).expect("waker");
        (
            Arc::new(Kick {
                queue: SegQueue::new(),
                sleeping: AtomicBool::new(true),
                waker,
            }),
            poll,
        )
    }

    #[tokio::test]
    async fn reads_chunks_then_eof_after_fin() {
        let (k, _poll) = kick();
        let sh = FlowShared::new(7);
        let mut s = TunnelStream::new(sh.clone(), k.clone());
        sh.down.push(b"hello ".to_vec()).expect("room");
        sh.down.push(b"world".to_vec()).expect("room");
        sh.down_fin.store(true, Ordering::Release);
        let mut got = String::new();
        s.read_to_string(&mut got).await.expect("read");
        assert_eq!(got, "hello world");
    }

    #[tokio::test]
    async fn error_after_data_and_wakeup_from_another_thread() {
        let (k, _poll) = kick();
        let sh = FlowShared::new(1);
        let mut s = TunnelStream::new(sh.clone(), k);
        let sh2 = sh.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(30));
            sh2.down.push(b"abc".to_vec()).expect("room");
            sh2.reader.wake();
            std::thread::sleep(std::time::Duration::from_millis(30));
            sh2.fail(libc::ECONNRESET);
        });
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).await.expect("data first");
        assert_eq!(&buf[..n], b"abc");
        let e = s.read(&mut buf).await.expect_err("then the error");
        assert_eq!(e.raw_os_error(), Some(libc::ECONNRESET));
        let e = s.write(b"x").await.expect_err("writes fail too");
        assert_eq!(e.raw_os_error(), Some(libc::ECONNRESET));
        t.join().expect("thread");
    }

    #[tokio::test]
    async fn writes_kick_the_engine_and_block_when_full() {
        let (k, _poll) = kick();
        let sh = FlowShared::new(3);
        let mut s = TunnelStream::new(sh.clone(), k.clone());
        for _ in 0..QUEUE_CHUNKS {
            s.write_all(b"x").await.expect("room");
        }
        assert!(k.queue.pop() == Some(3), "the engine was told");
        // Full: the next write waits until the engine takes a chunk.
        let sh2 = sh.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(30));
            let _ = sh2.up.pop();
            sh2.writer.wake();
        });
        s.write_all(b"y").await.expect("room again");
        t.join().expect("thread");
        // Shutdown is FIN; drop releases the flow.
        s.shutdown().await.expect("shutdown");
        assert!(sh.up_fin.load(Ordering::Acquire));
        drop(s);
        assert!(sh.released.load(Ordering::Acquire));
    }

    #[tokio::test]
    async fn taking_from_a_blocked_queue_kicks_the_engine() {
        let (k, _poll) = kick();
        let sh = FlowShared::new(9);
        let mut s = TunnelStream::new(sh.clone(), k.clone());
        sh.down.push(b"z".to_vec()).expect("room");
        sh.down_blocked.store(true, Ordering::Release);
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.expect("read");
        assert_eq!(k.queue.pop(), Some(9));
        assert!(!sh.down_blocked.load(Ordering::Acquire));
    }
}
