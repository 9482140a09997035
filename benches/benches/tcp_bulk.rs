//! TCP over an in-memory link (MTU 1420, no loss, packets handed over at
//! once), our `tcpip` side by side with smoltcp in the same setup and run.
//!
//! - `tcp_bulk/{tcpip,smoltcp}`: one connection moving 8 MiB client → server
//!   per iteration (connection set-up included, < 1% of the time); both
//!   stacks get 256 KiB socket buffers and the same link driver.
//! - `tcp_conn/tcpip_open_close`: connect, accept, FIN both ways until both
//!   sides have released the connection (TIME-WAIT set to zero here).
//! - Before criterion runs, the bench prints the heap bytes held per idle
//!   ESTABLISHED connection (one side), measured with a counting allocator
//!   over 1,000 connections, for 256 KiB and 16 KiB buffers.
//!
//! Run: `cargo bench -p wrapguard-benches --bench tcp_bulk`.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, Criterion, Throughput};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

const MTU: usize = 1420;
const BUF: usize = 256 * 1024;
const BULK: usize = 8 * 1024 * 1024;

// ---- counting allocator (for bytes per idle connection) ----

struct Counting;
static ALLOCATED: AtomicIsize = AtomicIsize::new(0);
static ALLOC_CALLS: AtomicIsize = AtomicIsize::new(0);

// SAFETY: defers to the system allocator; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(l.size() as isize, Ordering::Relaxed);
        ALLOC_CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        ALLOCATED.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        ALLOC_CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---- the shared link: two queues of recycled buffers ----

struct Wire {
    q: VecDeque<Vec<u8>>,
    pool: Vec<Vec<u8>>,
}

impl Default for Wire {
    /// Pre-sized so the harness itself does not allocate in steady state.
    fn default() -> Self {
        Wire {
            q: VecDeque::with_capacity(1024),
            pool: (0..1024).map(|_| Vec::with_capacity(MTU)).collect(),
        }
    }
}

impl Wire {
    fn push(&mut self, p: &[u8]) {
        let mut b = self.pool.pop().unwrap_or_else(|| Vec::with_capacity(MTU));
        b.clear();
        b.extend_from_slice(p);
        self.q.push_back(b);
    }
}

// ---- ours ----

mod ours {
    use super::*;
    use tcpip::{Error, Stack, StackConfig, TcpConfig, TcpHandle, TcpState};

    pub const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    pub const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    pub fn stack(addr: IpAddr, buf: usize, time_wait: Duration) -> Stack {
        Stack::new(StackConfig {
            addresses: vec![addr],
            mtu: MTU,
            seed: 7,
            tcp: TcpConfig {
                rx_buffer: buf,
                tx_buffer: buf,
                time_wait,
                ..TcpConfig::default()
            },
            ..StackConfig::default()
        })
    }

    pub struct Pair {
        pub a: Stack,
        pub b: Stack,
        ab: Wire,
        ba: Wire,
    }

    impl Pair {
        pub fn new(buf: usize, time_wait: Duration) -> Pair {
            Pair {
                a: stack(A, buf, time_wait),
                b: stack(B, buf, time_wait),
                ab: Wire::default(),
                ba: Wire::default(),
            }
        }

        /// Moves every due packet across; returns how many moved.
        pub fn pump(&mut self, now: Instant) -> usize {
            let ab = &mut self.ab;
            let mut n = self.a.dispatch(now, |p| ab.push(p));
            while let Some(p) = self.ab.q.pop_front() {
                self.b.process(now, &p);
                self.ab.pool.push(p);
            }
            let ba = &mut self.ba;
            n += self.b.dispatch(now, |p| ba.push(p));
            while let Some(p) = self.ba.q.pop_front() {
                self.a.process(now, &p);
                self.ba.pool.push(p);
            }
            n
        }

        pub fn connect(&mut self, port: u16) -> (TcpHandle, TcpHandle) {
            let l = match self.b.tcp_listen(SocketAddr::new(B, port), 1024) {
                Ok(l) => l,
                Err(e) => panic!("listen: {e}"),
            };
            let c = self
                .a
                .tcp_connect(Instant::now(), None, SocketAddr::new(B, port))
                .expect("connect");
            loop {
                self.pump(Instant::now());
                if let Some(s) = self.b.tcp_accept(l) {
                    if self.a.tcp_state(c) == Ok(TcpState::Established) {
                        let _ = self.b.tcp_close_listener(Instant::now(), l);
                        return (c, s);
                    }
                }
            }
        }
    }

    pub fn bulk(total: usize) {
        bulk_counting(total, usize::MAX);
    }

    /// Bulk transfer; returns the allocator calls made after `warm` bytes
    /// arrived (the steady state).
    pub fn bulk_counting(total: usize, warm: usize) -> isize {
        let mut base = None;
        let mut p = Pair::new(BUF, Duration::from_secs(60));
        let (c, s) = p.connect(80);
        let chunk = vec![0x5au8; 64 * 1024];
        let mut sink = vec![0u8; 64 * 1024];
        let (mut sent, mut got) = (0, 0);
        while got < total {
            while sent < total {
                match p.a.tcp_send(c, &chunk[..(total - sent).min(chunk.len())]) {
                    Ok(n) => sent += n,
                    Err(Error::WouldBlock) => break,
                    Err(e) => panic!("send: {e}"),
                }
            }
            p.pump(Instant::now());
            while let Ok(n) = p.b.tcp_recv(s, &mut sink) {
                if n == 0 {
                    break;
                }
                got += n;
            }
            if got >= warm && base.is_none() {
                base = Some(ALLOC_CALLS.load(Ordering::Relaxed));
            }
        }
        base.map_or(0, |b| ALLOC_CALLS.load(Ordering::Relaxed) - b)
    }

    /// Opens and gracefully closes one connection on an existing pair.
    pub fn open_close(p: &mut Pair, l: tcpip::ListenerHandle) {
        let c =
            p.a.tcp_connect(Instant::now(), None, SocketAddr::new(B, 81))
                .expect("connect");
        let s = loop {
            p.pump(Instant::now());
            if let Some(s) = p.b.tcp_accept(l) {
                break s;
            }
        };
        let now = Instant::now();
        p.a.tcp_close(now, c).expect("close");
        p.b.tcp_close(now, s).expect("close");
        while p.a.tcp_socket_count() + p.b.tcp_socket_count() > 0 {
            let now = Instant::now();
            p.pump(now);
            p.a.handle_timeout(now);
            p.b.handle_timeout(now);
        }
    }
}

// ---- smoltcp ----

mod smol {
    use super::*;
    use smoltcp::iface::{Config, Interface, SocketSet};
    use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
    use smoltcp::socket::tcp;
    use smoltcp::time::Instant as SInstant;
    use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

    pub struct Dev {
        rx: Wire,
        tx: Wire,
    }

    pub struct Rx(Vec<u8>);
    pub struct Tx<'a>(&'a mut Wire);

    impl RxToken for Rx {
        fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
            f(&self.0)
        }
    }

    impl TxToken for Tx<'_> {
        fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
            let mut b = self.0.pool.pop().unwrap_or_else(|| Vec::with_capacity(MTU));
            b.clear();
            b.resize(len, 0);
            let r = f(&mut b);
            self.0.q.push_back(b);
            r
        }
    }

    impl Device for Dev {
        type RxToken<'a> = Rx;
        type TxToken<'a> = Tx<'a>;
        fn receive(&mut self, _: SInstant) -> Option<(Rx, Tx<'_>)> {
            let p = self.rx.q.pop_front()?;
            Some((Rx(p), Tx(&mut self.tx)))
        }
        fn transmit(&mut self, _: SInstant) -> Option<Tx<'_>> {
            Some(Tx(&mut self.tx))
        }
        fn capabilities(&self) -> DeviceCapabilities {
            let mut c = DeviceCapabilities::default();
            c.medium = Medium::Ip;
            c.max_transmission_unit = MTU;
            c
        }
    }

    fn iface(dev: &mut Dev, addr: [u8; 4]) -> Interface {
        let cfg = Config::new(HardwareAddress::Ip);
        let mut i = Interface::new(cfg, dev, SInstant::from_micros(0));
        i.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(
                IpAddress::v4(addr[0], addr[1], addr[2], addr[3]),
                24,
            ));
        });
        i
    }

    fn socket() -> tcp::Socket<'static> {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; BUF]),
            tcp::SocketBuffer::new(vec![0; BUF]),
        )
    }

    fn now(start: Instant) -> SInstant {
        SInstant::from_micros(start.elapsed().as_micros() as i64)
    }

    pub fn bulk(total: usize) {
        let start = Instant::now();
        let mut da = Dev {
            rx: Wire::default(),
            tx: Wire::default(),
        };
        let mut db = Dev {
            rx: Wire::default(),
            tx: Wire::default(),
        };
        let mut ia = iface(&mut da, [10, 0, 0, 1]);
        let mut ib = iface(&mut db, [10, 0, 0, 2]);
        let mut sa = SocketSet::new(vec![]);
        let mut sb = SocketSet::new(vec![]);
        let c = sa.add(socket());
        let s = sb.add(socket());
        sb.get_mut::<tcp::Socket>(s).listen(80).expect("listen");
        sa.get_mut::<tcp::Socket>(c)
            .connect(ia.context(), (IpAddress::v4(10, 0, 0, 2), 80), 49152)
            .expect("connect");
        let chunk = vec![0x5au8; 64 * 1024];
        let mut sink = vec![0u8; 64 * 1024];
        let (mut sent, mut got) = (0, 0);
        while got < total {
            {
                let cs = sa.get_mut::<tcp::Socket>(c);
                while sent < total && cs.can_send() {
                    match cs.send_slice(&chunk[..(total - sent).min(chunk.len())]) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => sent += n,
                    }
                }
            }
            let t = now(start);
            ia.poll(t, &mut da, &mut sa);
            while let Some(p) = da.tx.q.pop_front() {
                db.rx.q.push_back(p);
            }
            ib.poll(t, &mut db, &mut sb);
            while let Some(p) = db.tx.q.pop_front() {
                da.rx.q.push_back(p);
            }
            let ss = sb.get_mut::<tcp::Socket>(s);
            while ss.can_recv() {
                match ss.recv_slice(&mut sink) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
        }
    }
}

// ---- memory per idle connection ----

fn bytes_per_idle_connection(buf: usize) -> isize {
    const N: usize = 1000;
    let mut p = ours::Pair::new(buf, Duration::from_secs(60));
    let l =
        p.b.tcp_listen(SocketAddr::new(ours::B, 90), 4096)
            .expect("listen");
    // Warm up maps and queues so their growth is not charged to the sample.
    let mut keep = Vec::with_capacity(2 * N + 16);
    for _ in 0..8 {
        keep.push(
            p.a.tcp_connect(Instant::now(), None, SocketAddr::new(ours::B, 90))
                .expect("connect"),
        );
    }
    for _ in 0..4 {
        p.pump(Instant::now());
    }
    while p.b.tcp_accept(l).is_some() {}
    let before = ALLOCATED.load(Ordering::Relaxed);
    for _ in 0..N {
        keep.push(
            p.a.tcp_connect(Instant::now(), None, SocketAddr::new(ours::B, 90))
                .expect("connect"),
        );
    }
    for _ in 0..4 {
        p.pump(Instant::now());
    }
    let mut accepted = 0;
    while p.b.tcp_accept(l).is_some() {
        accepted += 1;
    }
    assert_eq!(accepted, N);
    let after = ALLOCATED.load(Ordering::Relaxed);
    // Both sides hold N connections: per connection per side.
    (after - before) / (2 * N as isize)
}

fn bench(c: &mut Criterion) {
    for buf in [256 * 1024, 16 * 1024] {
        println!(
            "tcpip: heap bytes per idle ESTABLISHED connection (one side, {} KiB buffers): {}",
            buf / 1024,
            bytes_per_idle_connection(buf)
        );
    }
    println!(
        "tcpip: allocator calls during the last 7 MiB of an 8 MiB transfer (both stacks): {}",
        ours::bulk_counting(BULK, BULK / 8)
    );
    let mut g = c.benchmark_group("tcp_bulk");
    g.throughput(Throughput::Bytes(BULK as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("tcpip", |b| b.iter(|| ours::bulk(BULK)));
    g.bench_function("smoltcp", |b| b.iter(|| smol::bulk(BULK)));
    g.finish();

    let mut g = c.benchmark_group("tcp_conn");
    g.throughput(Throughput::Elements(1));
    let mut p = ours::Pair::new(16 * 1024, Duration::ZERO);
    let l =
        p.b.tcp_listen(SocketAddr::new(ours::B, 81), 1024)
            .expect("listen");
    g.bench_function("tcpip_open_close", |b| {
        b.iter(|| ours::open_close(&mut p, l))
    });
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
