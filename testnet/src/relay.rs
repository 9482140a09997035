//! A seeded UDP fault relay for the end-to-end tests: it sits between
//! wrapguard and a wireguard-go peer and drops, corrupts, duplicates,
//! reorders, delays and rate-limits datagrams in both directions, so a test
//! can check that every byte still arrives. The same seed gives the same
//! decisions for the same packet sequence.
//!
//! ```text
//!  wrapguard ──> 127.0.0.1:<inner> [relay thread, in the client netns] ──> peer endpoint
//!            <──                                                       <──
//! ```
//!
//! The relay runs on a thread of the test process that has joined the
//! client namespace with `setns(2)`, so it reaches only addresses inside
//! that namespace (loopback and the underlay veth).
//!
//! Several clients may share one relay (and so its bottleneck): each
//! client address gets an outer socket of its own, so the peer sees each
//! at its own endpoint.

use crate::netns::enter_netns;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the relay does to each datagram (probabilities in 0.0..=1.0, drawn
/// independently per datagram and direction).
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Drop the datagram.
    pub drop: f64,
    /// Flip one random bit (the receiver's AEAD must reject it).
    pub corrupt: f64,
    /// Send it twice.
    pub duplicate: f64,
    /// Hold it back by `reorder_delay` so later datagrams overtake it.
    pub reorder: f64,
    /// Extra delay of a reordered datagram.
    pub reorder_delay: Duration,
    /// Fixed one-way delay of every datagram.
    pub delay: Duration,
    /// Uniform random extra delay in `0..jitter`.
    pub jitter: Duration,
    /// Bandwidth cap per direction in bytes per second (`None`: unlimited).
    pub rate: Option<u64>,
    /// With `rate`: drop arrivals once this much is queued for the link
    /// (a drop-tail bottleneck; `None` queues without limit).
    pub queue_limit: Option<Duration>,
}

impl Faults {
    /// No faults but a drop-tail bottleneck of `rate` bytes per second
    /// (100 ms of queue): keeps a transfer going long enough to act on it.
    pub fn bottleneck(rate: u64) -> Faults {
        Faults {
            rate: Some(rate),
            queue_limit: Some(Duration::from_millis(100)),
            ..Faults::default()
        }
    }
}

/// Counters of what the relay did (both directions).
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Datagrams received.
    pub received: AtomicU64,
    /// Datagrams forwarded (duplicates included).
    pub forwarded: AtomicU64,
    /// Dropped on purpose.
    pub dropped: AtomicU64,
    /// Corrupted on purpose.
    pub corrupted: AtomicU64,
    /// Duplicated on purpose.
    pub duplicated: AtomicU64,
    /// Held back to be overtaken.
    pub reordered: AtomicU64,
    /// Dropped because the rate-limited link's queue was full.
    pub overflowed: AtomicU64,
}

impl RelayStats {
    /// One-line summary.
    pub fn line(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "rx {} fwd {} drop {} corrupt {} dup {} reorder {} overflow {}",
            g(&self.received),
            g(&self.forwarded),
            g(&self.dropped),
            g(&self.corrupted),
            g(&self.duplicated),
            g(&self.reordered),
            g(&self.overflowed)
        )
    }
}

/// SplitMix64: small, seedable, good enough for fault decisions.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0.0..1.0`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }
    /// Uniform in `0..n` (0 if `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

/// A running relay; stopped and joined on drop.
pub struct Relay {
    /// Where wrapguard should send (its `Endpoint =`).
    pub addr: SocketAddr,
    /// The relay's address as the peer sees it (port on the wildcard).
    pub outer: SocketAddr,
    /// What the relay did so far.
    pub stats: Arc<RelayStats>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A datagram waiting for its release time.
struct Held {
    at: Instant,
    seq: u64,
    to_upstream: bool,
    /// Which client's outer socket it belongs to.
    client: usize,
    data: Vec<u8>,
}

/// One client of the relay and the outer socket the peer sees it at.
struct Client {
    addr: Option<SocketAddr>,
    outer: UdpSocket,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

fn udp_socket(bind: SocketAddr) -> UdpSocket {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(bind), Type::DGRAM, None).expect("udp socket");
    let _ = s.set_recv_buffer_size(8 << 20);
    let _ = s.set_send_buffer_size(8 << 20);
    s.bind(&bind.into()).expect("bind relay socket");
    s.set_nonblocking(true).expect("non-blocking");
    s.into()
}

impl Relay {
    /// Starts a relay in namespace `ns` that forwards to `upstream`.
    pub fn start(ns: &str, upstream: SocketAddr, faults: Faults, seed: u64) -> Relay {
        let bind = "127.0.0.1:0".parse().expect("addr");
        Relay::start_at(ns, bind, upstream, faults, seed, None)
    }

    /// Like [`Relay::start`], with the inner socket bound to `bind` and,
    /// if given, the wrapguard address to send the peer's datagrams to
    /// before wrapguard has sent anything through this relay.
    pub fn start_at(
        ns: &str,
        bind: SocketAddr,
        upstream: SocketAddr,
        faults: Faults,
        seed: u64,
        client: Option<SocketAddr>,
    ) -> Relay {
        let stats = Arc::new(RelayStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let ns = ns.to_string();
        let (st, sp) = (stats.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("fault-relay".into())
            .spawn(move || {
                enter_netns(&ns);
                let inner = udp_socket(bind);
                let outer = udp_socket(if upstream.is_ipv4() {
                    "0.0.0.0:0".parse().expect("addr")
                } else {
                    "[::]:0".parse().expect("addr")
                });
                tx.send((
                    inner.local_addr().expect("local addr"),
                    outer.local_addr().expect("local addr"),
                ))
                .expect("report address");
                run(inner, outer, upstream, client, faults, seed, &st, &sp);
            })
            .expect("spawn relay");
        let (addr, outer) = rx.recv().expect("relay address");
        Relay {
            addr,
            outer,
            stats,
            stop,
            thread: Some(thread),
        }
    }
}

impl Relay {
    /// Waits up to `secs` until the relay has forwarded `n` datagrams;
    /// panics with the text of `log` (wrapguard's) otherwise.
    pub fn wait_forwarded(&self, n: u64, secs: u64, log: &std::path::Path) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.stats.forwarded.load(Ordering::Relaxed) < n {
            assert!(
                Instant::now() < deadline,
                "no traffic through the relay ({}): {}",
                self.stats.line(),
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    inner: UdpSocket,
    outer: UdpSocket,
    upstream: SocketAddr,
    client: Option<SocketAddr>,
    f: Faults,
    seed: u64,
    stats: &RelayStats,
    stop: &AtomicBool,
) {
    let mut rng = Rng::new(seed);
    let wildcard: SocketAddr = if upstream.is_ipv4() {
        "0.0.0.0:0".parse().expect("addr")
    } else {
        "[::]:0".parse().expect("addr")
    };
    let mut clients = vec![Client {
        addr: client,
        outer,
    }];
    let mut heap: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    let mut seq = 0u64;
    // When each direction's link is free again (bandwidth cap), shared by
    // every client.
    let mut link_free = [Instant::now(), Instant::now()];
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        // Release what is due.
        while heap.peek().is_some_and(|h| h.0.at <= now) {
            let Some(Reverse(h)) = heap.pop() else { break };
            forward(
                &inner,
                &clients[h.client],
                upstream,
                h.to_upstream,
                &h.data,
                stats,
            );
        }
        let wait_ms = heap
            .peek()
            .map(|h| h.0.at.saturating_duration_since(now).as_millis() as i32)
            .unwrap_or(50)
            .clamp(0, 50);
        let mut fds: Vec<libc::pollfd> = std::iter::once(&inner)
            .chain(clients.iter().map(|c| &c.outer))
            .map(|s| libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of `fds.len()` pollfds that lives
        // across the call; the fds belong to sockets owned by this function.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
        for from in 0..=clients.len() {
            for _ in 0..256 {
                let to_upstream = from == 0;
                let sock = if to_upstream {
                    &inner
                } else {
                    &clients[from - 1].outer
                };
                let Ok((n, src)) = sock.recv_from(&mut buf) else {
                    break;
                };
                let idx = if to_upstream {
                    match clients.iter().position(|c| c.addr == Some(src)) {
                        Some(i) => i,
                        None if clients[0].addr.is_none() => {
                            clients[0].addr = Some(src);
                            0
                        }
                        None => {
                            clients.push(Client {
                                addr: Some(src),
                                outer: udp_socket(wildcard),
                            });
                            clients.len() - 1
                        }
                    }
                } else if src != upstream {
                    continue;
                } else {
                    from - 1
                };
                stats.received.fetch_add(1, Ordering::Relaxed);
                if rng.chance(f.drop) {
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let mut data = buf[..n].to_vec();
                if n > 0 && rng.chance(f.corrupt) {
                    let bit = rng.below(n as u64 * 8);
                    data[(bit / 8) as usize] ^= 1 << (bit % 8);
                    stats.corrupted.fetch_add(1, Ordering::Relaxed);
                }
                let copies = if rng.chance(f.duplicate) {
                    stats.duplicated.fetch_add(1, Ordering::Relaxed);
                    2
                } else {
                    1
                };
                let now = Instant::now();
                let mut at = now + f.delay;
                if !f.jitter.is_zero() {
                    at += Duration::from_micros(rng.below(f.jitter.as_micros() as u64));
                }
                if let Some(rate) = f.rate.filter(|r| *r > 0) {
                    let d = usize::from(!to_upstream);
                    let start = link_free[d].max(now);
                    if f.queue_limit.is_some_and(|q| start - now > q) {
                        stats.overflowed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    link_free[d] = start + Duration::from_nanos(n as u64 * 1_000_000_000 / rate);
                    at = at.max(link_free[d]);
                }
                if rng.chance(f.reorder) {
                    stats.reordered.fetch_add(1, Ordering::Relaxed);
                    at += f.reorder_delay;
                }
                for _ in 0..copies {
                    if at <= now && heap.is_empty() {
                        forward(&inner, &clients[idx], upstream, to_upstream, &data, stats);
                    } else {
                        seq += 1;
                        heap.push(Reverse(Held {
                            at,
                            seq,
                            to_upstream,
                            client: idx,
                            data: data.clone(),
                        }));
                    }
                }
            }
        }
    }
}

fn forward(
    inner: &UdpSocket,
    client: &Client,
    upstream: SocketAddr,
    to_upstream: bool,
    data: &[u8],
    stats: &RelayStats,
) {
    let r = if to_upstream {
        client.outer.send_to(data, upstream)
    } else if let Some(c) = client.addr {
        inner.send_to(data, c)
    } else {
        return;
    };
    if r.is_ok() {
        stats.forwarded.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn same_seed_same_decisions() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        let da: Vec<bool> = (0..1000).map(|_| a.chance(0.1)).collect();
        let db: Vec<bool> = (0..1000).map(|_| b.chance(0.1)).collect();
        assert_eq!(da, db);
        let hits = da.iter().filter(|x| **x).count();
        assert!((50..150).contains(&hits), "{hits} of 1000 at p=0.1");
    }
}
