//! Connection churn: thousands of connect → accept → close cycles between
//! two stacks in real time with TIME-WAIT disabled; every cycle must finish
//! (regression test for timer re-arming at `now` and port reuse).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tcpip::{Stack, StackConfig, TcpConfig};

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

fn stack(a: IpAddr) -> Stack {
    Stack::new(StackConfig {
        addresses: vec![a],
        seed: 7,
        tcp: TcpConfig {
            rx_buffer: 16384,
            tx_buffer: 16384,
            time_wait: Duration::ZERO,
            ..TcpConfig::default()
        },
        ..StackConfig::default()
    })
}

fn pump(a: &mut Stack, b: &mut Stack, now: Instant, q: &mut Vec<Vec<u8>>) {
    a.dispatch(now, |p| q.push(p.to_vec()));
    for p in q.drain(..) {
        b.process(now, &p);
    }
    b.dispatch(now, |p| q.push(p.to_vec()));
    for p in q.drain(..) {
        a.process(now, &p);
    }
}

#[test]
fn thousands_of_open_close_cycles() {
    let (mut a, mut b) = (stack(A), stack(B));
    let l = b.tcp_listen(SocketAddr::new(B, 81), 1024).expect("listen");
    let mut q = Vec::new();
    let start = Instant::now();
    for it in 0..5000 {
        let c = a
            .tcp_connect(Instant::now(), None, SocketAddr::new(B, 81))
            .expect("connect");
        let mut spins = 0;
        let s = loop {
            pump(&mut a, &mut b, Instant::now(), &mut q);
            if let Some(s) = b.tcp_accept(l) {
                break s;
            }
            spins += 1;
            assert!(spins < 1000, "cycle {it}: accept never happened");
        };
        let now = Instant::now();
        a.tcp_close(now, c).expect("close");
        b.tcp_close(now, s).expect("close");
        let mut spins = 0;
        while a.tcp_socket_count() + b.tcp_socket_count() > 0 {
            let now = Instant::now();
            pump(&mut a, &mut b, now, &mut q);
            a.handle_timeout(now);
            b.handle_timeout(now);
            spins += 1;
            assert!(spins < 100_000, "cycle {it}: close never finished");
        }
    }
    println!("5000 open/close cycles in {:?}", start.elapsed());
}
