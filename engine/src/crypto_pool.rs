//! ChaCha20-Poly1305 of WireGuard transport data on worker threads, as
//! wireguard-go's per-core encryption and decryption workers do, with the
//! order kept: the engine thread sees results in the order it submitted
//! the jobs, whatever order the workers finish them in.
//!
//! The engine thread keeps everything with state (the stack, handshakes,
//! timers, the replay window): it asks the device for a ticket
//! ([`noise::SealTicket`], [`noise::OpenTicket`]), wraps it with its
//! buffer into a [`Job`] and [`CryptoPool::submit`]s it; workers take jobs
//! from a lock-free queue, seal or open in place, and put them on a second
//! lock-free queue, waking the engine thread through `notify` (its mio
//! waker). [`CryptoPool::next_ready`] hands results back strictly in
//! submission order — a job that finished early waits in its sequence slot
//! until every earlier one is back — so a peer's packets reach the stack,
//! and the network, in the order they arrived or were produced.
//!
//! No lock on the per-job path: the queues are crossbeam `ArrayQueue`s, the
//! sequence slots are the engine thread's own, and idle workers park
//! (futex) after a short spin, woken by the submitter through an atomic
//! flag. With zero workers every job runs inside `submit` (same order, no
//! threads). Dropping the pool stops and joins the workers.

use crossbeam_queue::ArrayQueue;
use noise::{DecapsulateError, EncapsulateError, OpenTicket, SealTicket};
use std::collections::VecDeque;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Most jobs submitted and not yet taken back by [`CryptoPool::next_ready`].
pub const IN_FLIGHT: usize = 1024;
/// Times an idle worker looks at the queue before it parks.
const SPINS: u32 = 256;
/// Spare buffers kept for reuse.
const SPARE_BUFFERS: usize = IN_FLIGHT + 64;

/// The crypto a [`Job`] asks for.
#[derive(Debug)]
pub enum Work {
    /// Seal `buf[16..16 + payload_len]` into a data message at `buf[..]`.
    Seal {
        /// Counter and key.
        ticket: SealTicket,
        /// Length of the plain text.
        payload_len: usize,
    },
    /// Open the data message `buf[..len]` in place (plain text at `buf[16..]`).
    Open {
        /// Counter, session and key.
        ticket: OpenTicket,
        /// Length of the message.
        len: usize,
    },
    /// Nothing: `buf[..len]` is already final and only keeps its place in
    /// the order (a message the device sealed on the engine thread).
    Ready {
        /// Length of the message.
        len: usize,
    },
    /// TESTS ONLY: sleeps, then succeeds with `len`, to finish out of order.
    #[cfg(test)]
    Sleep {
        /// How long.
        micros: u64,
        /// The result length.
        len: usize,
    },
}

/// Why a job's crypto failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoError {
    /// Sealing failed (the buffer was too small for the message).
    Seal(EncapsulateError),
    /// Opening failed (authentication, or a message too short).
    Open(DecapsulateError),
    /// The worker panicked on this job (a bug); the job is dropped in order.
    Panicked,
}

/// One packet's crypto, with the buffer it happens in and what the engine
/// needs afterwards (`meta`).
#[derive(Debug)]
pub struct Job<M> {
    /// What to do.
    pub work: Work,
    /// The bytes, sealed or opened in place.
    pub buf: Vec<u8>,
    /// The engine's notes (where the result goes).
    pub meta: M,
    /// After running: the message length (seal, ready) or the padded plain
    /// text length (open, starting at `buf[16..]`).
    pub outcome: Result<usize, CryptoError>,
    seq: u64,
}

impl<M> Job<M> {
    /// A job not yet run.
    pub fn new(work: Work, buf: Vec<u8>, meta: M) -> Self {
        Job {
            work,
            buf,
            meta,
            outcome: Err(CryptoError::Panicked),
            seq: 0,
        }
    }

    /// Does the crypto on this thread and records the outcome.
    pub fn run(&mut self) {
        self.outcome = match &self.work {
            Work::Seal {
                ticket,
                payload_len,
            } => ticket
                .seal(&mut self.buf, *payload_len)
                .map_err(CryptoError::Seal),
            Work::Open { ticket, len } => match self.buf.get_mut(..*len) {
                Some(msg) => ticket.open(msg).map_err(CryptoError::Open),
                None => Err(CryptoError::Open(DecapsulateError::DecryptFailed)),
            },
            Work::Ready { len } => Ok(*len),
            #[cfg(test)]
            Work::Sleep { micros, len } => {
                std::thread::sleep(std::time::Duration::from_micros(*micros));
                Ok(*len)
            }
        };
    }

    /// [`Job::run`], a panic turned into [`CryptoError::Panicked`].
    fn run_caught(&mut self) {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run()));
        if r.is_err() {
            self.outcome = Err(CryptoError::Panicked);
        }
    }
}

/// What the engine thread and the workers share.
struct Shared<M> {
    /// Submitted jobs no worker took yet.
    todo: ArrayQueue<Job<M>>,
    /// Finished jobs, in any order.
    done: ArrayQueue<Job<M>>,
    /// Set when the pool is dropped.
    stop: AtomicBool,
    /// Per worker: parked (or about to park) waiting for jobs.
    parked: Vec<AtomicBool>,
    /// Workers running (for the shutdown test and the status line).
    live: Arc<AtomicUsize>,
    /// Wakes the engine thread when a job finished.
    notify: Box<dyn Fn() + Send + Sync>,
}

/// The workers and the engine thread's side of the queues.
pub struct CryptoPool<M: Send + 'static> {
    shared: Arc<Shared<M>>,
    workers: Vec<JoinHandle<()>>,
    /// Sequence number of the next job submitted.
    next_seq: u64,
    /// Sequence number of the next job handed back.
    head: u64,
    /// Slots `head..next_seq`: `Some` once finished.
    slots: VecDeque<Option<Job<M>>>,
    /// Buffers to reuse.
    spare: Vec<Vec<u8>>,
}

impl<M: Send + 'static> CryptoPool<M> {
    /// Starts `workers` threads (0: every job runs inside `submit`);
    /// `notify` is called on a worker when a job finished. A worker that
    /// cannot be spawned is left out (logged).
    pub fn new(workers: usize, notify: impl Fn() + Send + Sync + 'static) -> Self {
        let shared = Arc::new(Shared {
            todo: ArrayQueue::new(IN_FLIGHT),
            done: ArrayQueue::new(IN_FLIGHT),
            stop: AtomicBool::new(false),
            parked: (0..workers).map(|_| AtomicBool::new(false)).collect(),
            live: Arc::new(AtomicUsize::new(0)),
            notify: Box::new(notify),
        });
        let mut handles = Vec::with_capacity(workers);
        for i in 0..workers {
            let s = Arc::clone(&shared);
            s.live.fetch_add(1, Ordering::SeqCst);
            let spawned = std::thread::Builder::new()
                .name(format!("wg-crypto-{i}"))
                .spawn(move || worker(&s, i));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    shared.live.fetch_sub(1, Ordering::SeqCst);
                    tracing::warn!(error = %e, "cannot start a crypto worker; going on with fewer");
                    break;
                }
            }
        }
        CryptoPool {
            shared,
            workers: handles,
            next_seq: 0,
            head: 0,
            slots: VecDeque::with_capacity(IN_FLIGHT),
            spare: Vec::new(),
        }
    }

    /// How many worker threads run.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Jobs submitted and not yet handed back.
    pub fn in_flight(&self) -> usize {
        self.slots.len()
    }

    /// Whether [`CryptoPool::submit`] would have to wait: hand results back
    /// ([`CryptoPool::wait_next`], [`CryptoPool::next_ready`]) first.
    pub fn is_full(&self) -> bool {
        self.slots.len() >= IN_FLIGHT
    }

    /// A buffer of `len` bytes (contents unspecified), reused if possible.
    pub fn buffer(&mut self, len: usize) -> Vec<u8> {
        let mut b = self.spare.pop().unwrap_or_default();
        b.resize(len, 0);
        b
    }

    /// Gives a buffer back for reuse.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS {
            self.spare.push(buf);
        }
    }

    /// Queues a job behind every earlier one. Check [`CryptoPool::is_full`]
    /// first: a full pool runs the job here, which keeps the order but
    /// costs the engine thread the crypto.
    pub fn submit(&mut self, mut job: Job<M>) {
        job.seq = self.next_seq;
        self.next_seq += 1;
        self.slots.push_back(None);
        let direct = matches!(job.work, Work::Ready { .. }) || self.workers.is_empty();
        if direct {
            job.run_caught();
            self.finished(job);
            return;
        }
        if let Err(mut job) = self.shared.todo.push(job) {
            job.run_caught();
            self.finished(job);
            return;
        }
        // Pairs with the fence in `worker` between `parked` and `todo`.
        fence(Ordering::SeqCst);
        for (i, p) in self.shared.parked.iter().enumerate() {
            if p.load(Ordering::Relaxed) && p.swap(false, Ordering::AcqRel) {
                if let Some(h) = self.workers.get(i) {
                    h.thread().unpark();
                }
                break;
            }
        }
    }

    /// The next job in submission order, if it has finished.
    pub fn next_ready(&mut self) -> Option<Job<M>> {
        while let Some(job) = self.shared.done.pop() {
            self.finished(job);
        }
        match self.slots.front() {
            Some(Some(_)) => {
                self.head += 1;
                self.slots.pop_front().flatten()
            }
            _ => None,
        }
    }

    /// Whether [`CryptoPool::next_ready`] has a job now.
    pub fn has_ready(&self) -> bool {
        matches!(self.slots.front(), Some(Some(_))) || !self.shared.done.is_empty()
    }

    /// Runs queued jobs no worker took yet on this thread (when it has
    /// nothing better to do).
    pub fn help(&mut self) {
        while let Some(mut job) = self.shared.todo.pop() {
            job.run_caught();
            self.finished(job);
        }
    }

    /// Waits until the oldest job in flight has finished (helping, then
    /// yielding to the worker that has it) and returns it; `None` if
    /// nothing is in flight.
    pub fn wait_next(&mut self) -> Option<Job<M>> {
        if self.slots.is_empty() {
            return None;
        }
        loop {
            if let Some(j) = self.next_ready() {
                return Some(j);
            }
            self.help();
            if let Some(j) = self.next_ready() {
                return Some(j);
            }
            std::thread::yield_now();
        }
    }

    /// Puts a finished job into its slot.
    fn finished(&mut self, job: Job<M>) {
        let Some(k) = job.seq.checked_sub(self.head) else {
            return; // cannot happen: every slot below head was handed back
        };
        if let Some(slot) = self.slots.get_mut(k as usize) {
            *slot = Some(job);
        }
    }

    /// The count of running workers, shared (tests watch it reach 0).
    #[cfg(test)]
    fn live(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.shared.live)
    }
}

impl<M: Send + 'static> Drop for CryptoPool<M> {
    /// Stops the workers and joins them.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for h in &self.workers {
            h.thread().unpark();
        }
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

/// One worker: take, run, hand back; spin a little, then park when idle.
fn worker<M>(s: &Shared<M>, i: usize) {
    struct Live<'a>(&'a AtomicUsize);
    impl Drop for Live<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let _live = Live(&s.live);
    let mut idle = 0u32;
    loop {
        if let Some(mut job) = s.todo.pop() {
            idle = 0;
            job.run_caught();
            let mut job = job;
            // Never full: at most IN_FLIGHT jobs exist.
            while let Err(j) = s.done.push(job) {
                job = j;
                std::thread::yield_now();
            }
            // Pairs with the engine thread's "sleeping, then check done".
            fence(Ordering::SeqCst);
            (s.notify)();
            continue;
        }
        if s.stop.load(Ordering::Acquire) {
            return;
        }
        if idle < SPINS {
            idle += 1;
            std::hint::spin_loop();
            continue;
        }
        let Some(parked) = s.parked.get(i) else {
            return;
        };
        parked.store(true, Ordering::SeqCst);
        // Pairs with the fence in `submit` between `todo` and `parked`.
        fence(Ordering::SeqCst);
        if s.todo.is_empty() && !s.stop.load(Ordering::Acquire) {
            std::thread::park();
        }
        parked.store(false, Ordering::Relaxed);
        idle = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn sleep_job(micros: u64, tag: usize) -> Job<usize> {
        Job::new(Work::Sleep { micros, len: tag }, Vec::new(), tag)
    }

    /// Takes `n` jobs back, waiting for each, and returns their tags.
    fn take(pool: &mut CryptoPool<usize>, n: usize) -> Vec<usize> {
        (0..n)
            .map(|_| {
                let j = pool.wait_next().expect("in flight");
                assert_eq!(j.outcome, Ok(j.meta), "outcome of job {}", j.meta);
                j.meta
            })
            .collect()
    }

    #[test]
    fn out_of_order_completion_is_handed_back_in_submission_order() {
        let notified = Arc::new(AtomicUsize::new(0));
        let n2 = Arc::clone(&notified);
        let mut pool = CryptoPool::new(2, move || {
            n2.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(pool.workers(), 2);
        // Job 0 is slow; jobs 1..8 finish long before it.
        pool.submit(sleep_job(100_000, 0));
        // Let a worker take job 0 before the others are queued.
        std::thread::sleep(Duration::from_millis(10));
        for t in 1..8 {
            pool.submit(sleep_job(0, t));
        }
        let t0 = Instant::now();
        while notified.load(Ordering::SeqCst) < 7 && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Seven later jobs are done, yet nothing comes back before job 0.
        assert!(notified.load(Ordering::SeqCst) >= 7);
        assert_eq!(pool.in_flight(), 8);
        assert!(pool.next_ready().is_none(), "job 0 still runs");
        assert_eq!(take(&mut pool, 8), (0..8).collect::<Vec<_>>());
        assert_eq!(pool.in_flight(), 0);
        assert!(pool.wait_next().is_none());
    }

    #[test]
    fn many_jobs_over_capacity_keep_their_order() {
        let mut pool = CryptoPool::new(1, || {});
        let mut got = Vec::new();
        for t in 0..IN_FLIGHT * 3 {
            if pool.is_full() {
                got.extend(take(&mut pool, 1));
            }
            pool.submit(sleep_job(u64::from(t % 7 == 0), t));
            while let Some(j) = pool.next_ready() {
                got.push(j.meta);
            }
        }
        let left = pool.in_flight();
        got.extend(take(&mut pool, left));
        assert_eq!(got, (0..IN_FLIGHT * 3).collect::<Vec<_>>());
    }

    #[test]
    fn ready_jobs_wait_for_earlier_crypto_and_zero_workers_run_inline() {
        let mut pool = CryptoPool::new(1, || {});
        pool.submit(sleep_job(50_000, 0));
        pool.submit(Job::new(Work::Ready { len: 1 }, vec![7], 1));
        assert!(pool.next_ready().is_none(), "the ready job keeps its place");
        assert_eq!(take(&mut pool, 2), vec![0, 1]);

        let mut inline = CryptoPool::new(0, || {});
        assert_eq!(inline.workers(), 0);
        for t in 0..3 {
            inline.submit(sleep_job(0, t));
        }
        let tags: Vec<_> = std::iter::from_fn(|| inline.next_ready().map(|j| j.meta)).collect();
        assert_eq!(tags, vec![0, 1, 2]);
    }

    #[test]
    fn dropping_the_pool_joins_every_worker_even_with_jobs_queued() {
        let mut pool = CryptoPool::new(2, || {});
        let live = pool.live();
        let t0 = Instant::now();
        while live.load(Ordering::SeqCst) != 2 && t0.elapsed() < Duration::from_secs(5) {
            std::thread::yield_now();
        }
        assert_eq!(live.load(Ordering::SeqCst), 2);
        for t in 0..16 {
            pool.submit(sleep_job(1_000, t));
        }
        drop(pool);
        // Drop returned only after the joins: nobody is left running.
        assert_eq!(live.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_parked_worker_wakes_for_a_new_job() {
        let mut pool = CryptoPool::new(1, || {});
        // Long enough for the worker to spin out and park.
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            pool.shared.parked[0].load(Ordering::SeqCst),
            "worker parked"
        );
        pool.submit(sleep_job(0, 5));
        let t0 = Instant::now();
        while !pool.has_ready() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Done by the worker (the engine side never helped).
        assert_eq!(pool.next_ready().map(|j| j.meta), Some(5));
    }
}
