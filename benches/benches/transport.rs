//! Transport and handshake benchmarks for `noise`, side by side with the raw
//! AEAD and with boringtun, in the same run.
//!
//! - `encapsulate_1420/{raw_aead,noise,boringtun}`: seal one 1420-byte IP
//!   packet into a data message (raw: ChaCha20-Poly1305 seal in place of the
//!   same 1424-byte padded buffer, no header or counter).
//! - `decapsulate_1420/{raw_aead,noise,boringtun}`: open one such message
//!   (fresh counter each time, so the replay window accepts it).
//! - `handshake/{noise,boringtun}`: a full initiation → response →
//!   completion between two peers; handshakes/s = 1 / time.
//!
//! Run: `cargo bench -p wrapguard-benches --bench transport`.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519;
use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use noise::{Decapsulated, Device, Encapsulated, PeerConfig, PeerId, PrivateKey};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

const PACKET: usize = 1420;
const BUF: usize = 2048;

fn ip_packet() -> Vec<u8> {
    let mut p = vec![0x5a; PACKET];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(PACKET as u16).to_be_bytes());
    p[12..16].copy_from_slice(&[10, 0, 0, 2]);
    p[16..20].copy_from_slice(&[10, 0, 0, 1]);
    p
}

/// Two of our devices with an established session: (a, a's peer id for b, b, b's id for a).
fn noise_pair() -> (Device, PeerId, Device, PeerId, Instant) {
    let now = Instant::now();
    let wall = SystemTime::now();
    let ka = PrivateKey::from_bytes([1; 32]);
    let kb = PrivateKey::from_bytes([2; 32]);
    let mut a = Device::new(ka.clone(), ChaCha20Rng::seed_from_u64(1), now, wall);
    let mut b = Device::new(kb.clone(), ChaCha20Rng::seed_from_u64(2), now, wall);
    let cfg = |k: &PrivateKey| PeerConfig {
        public_key: k.public_key(),
        preshared_key: None,
        persistent_keepalive: None,
    };
    let pb = a.add_peer(cfg(&kb)).expect("new peer");
    let pa = b.add_peer(cfg(&ka)).expect("new peer");
    noise_handshake(&mut a, pb, &mut b, now);
    (a, pb, b, pa, now)
}

fn noise_handshake(a: &mut Device, pb: PeerId, b: &mut Device, now: Instant) {
    let mut buf = [0u8; BUF];
    let mut out = [0u8; BUF];
    a.force_handshake(pb, now).expect("peer");
    let t = a
        .poll_transmit(now, &mut buf)
        .expect("buffer")
        .expect("initiation");
    let len = match b.decapsulate(&[], &buf[..t.len], now, &mut out) {
        Ok(Decapsulated::WriteToNetwork { len, .. }) => len,
        other => panic!("no response: {other:?}"),
    };
    match a.decapsulate(&[], &out[..len], now, &mut buf) {
        Ok(Decapsulated::HandshakeComplete { .. }) => {}
        other => panic!("no completion: {other:?}"),
    }
    // Confirm the session to b (a's keepalive).
    while let Some(t) = a.poll_transmit(now, &mut buf).expect("buffer") {
        let _ = b.decapsulate(&[], &buf[..t.len], now, &mut out);
    }
}

fn boringtun_pair() -> (Tunn, Tunn) {
    let sa = x25519::StaticSecret::from([1; 32]);
    let sb = x25519::StaticSecret::from([2; 32]);
    let pa = x25519::PublicKey::from(&sa);
    let pb = x25519::PublicKey::from(&sb);
    // No handshake rate limiting, so the handshake benchmark measures crypto.
    let la = Arc::new(RateLimiter::new(&pa, u64::MAX));
    let lb = Arc::new(RateLimiter::new(&pb, u64::MAX));
    let mut a = Tunn::new(sa, pb, None, None, 1, Some(la));
    let mut b = Tunn::new(sb, pa, None, None, 2, Some(lb));
    boringtun_handshake(&mut a, &mut b);
    (a, b)
}

fn boringtun_handshake(a: &mut Tunn, b: &mut Tunn) {
    let mut buf = [0u8; BUF];
    let mut out = [0u8; BUF];
    let init = match a.format_handshake_initiation(&mut buf, true) {
        TunnResult::WriteToNetwork(p) => p.len(),
        other => panic!("no initiation: {other:?}"),
    };
    let resp = match b.decapsulate(None, &buf[..init], &mut out) {
        TunnResult::WriteToNetwork(p) => p.len(),
        other => panic!("no response: {other:?}"),
    };
    let ka = match a.decapsulate(None, &out[..resp], &mut buf) {
        TunnResult::WriteToNetwork(p) => p.len(),
        other => panic!("no keepalive: {other:?}"),
    };
    let _ = b.decapsulate(None, &buf[..ka], &mut out);
}

fn encapsulate(c: &mut Criterion) {
    let packet = ip_packet();
    let mut g = c.benchmark_group("encapsulate_1420");
    g.throughput(Throughput::Bytes(PACKET as u64));

    let cipher = ChaCha20Poly1305::new(&[7u8; 32].into());
    let mut buf = vec![0u8; 16 + 1424 + 16];
    let mut counter = 0u64;
    g.bench_function("raw_aead", |bench| {
        bench.iter(|| {
            buf[16..16 + PACKET].copy_from_slice(&packet);
            let mut n = [0u8; 12];
            n[4..].copy_from_slice(&counter.to_le_bytes());
            counter += 1;
            let tag = cipher
                .encrypt_inout_detached(&Nonce::from(n), &[], (&mut buf[16..16 + 1424]).into())
                .expect("seal");
            buf[16 + 1424..].copy_from_slice(&tag);
            black_box(&buf);
        })
    });

    let (mut a, pb, _b, _pa, now) = noise_pair();
    let mut out = vec![0u8; BUF];
    g.bench_function("noise", |bench| {
        bench.iter(
            || match a.encapsulate(pb, black_box(&packet), now, &mut out) {
                Ok(Encapsulated::Data(len)) => black_box(len),
                other => panic!("{other:?}"),
            },
        )
    });

    let (mut ta, _tb) = boringtun_pair();
    g.bench_function("boringtun", |bench| {
        bench.iter(|| match ta.encapsulate(black_box(&packet), &mut out) {
            TunnResult::WriteToNetwork(p) => black_box(p.len()),
            other => panic!("{other:?}"),
        })
    });
    g.finish();
}

fn decapsulate(c: &mut Criterion) {
    let packet = ip_packet();
    let mut g = c.benchmark_group("decapsulate_1420");
    g.throughput(Throughput::Bytes(PACKET as u64));

    let cipher = ChaCha20Poly1305::new(&[7u8; 32].into());
    let mut sealed = packet.clone();
    sealed.resize(1424, 0);
    let tag = cipher
        .encrypt_inout_detached(&Nonce::from([0u8; 12]), &[], sealed.as_mut_slice().into())
        .expect("seal");
    sealed.extend_from_slice(&tag);
    let mut buf = vec![0u8; BUF];
    g.bench_function("raw_aead", |bench| {
        bench.iter_batched_ref(
            || sealed.clone(),
            |msg| {
                // The same copy-then-open-in-place the tunnels do.
                let body = &mut buf[..msg.len()];
                body.copy_from_slice(msg);
                let (data, tag) = body.split_at_mut(1424);
                let tag = chacha20poly1305::Tag::try_from(&*tag).expect("16 bytes");
                cipher
                    .decrypt_inout_detached(&Nonce::from([0u8; 12]), &[], data.into(), &tag)
                    .expect("open");
                black_box(&buf);
            },
            BatchSize::SmallInput,
        )
    });

    let (mut a, pb, mut b, _pa, now) = noise_pair();
    let mut out = vec![0u8; BUF];
    g.bench_function("noise", |bench| {
        bench.iter_batched_ref(
            || {
                let mut msg = vec![0u8; BUF];
                match a.encapsulate(pb, &packet, now, &mut msg) {
                    Ok(Encapsulated::Data(len)) => msg.truncate(len),
                    other => panic!("{other:?}"),
                }
                msg
            },
            |msg| match b.decapsulate(&[], msg, now, &mut out) {
                Ok(Decapsulated::Data { len, .. }) => black_box(len),
                other => panic!("{other:?}"),
            },
            BatchSize::SmallInput,
        )
    });

    let (mut ta, mut tb) = boringtun_pair();
    let src: Option<IpAddr> = None;
    g.bench_function("boringtun", |bench| {
        bench.iter_batched_ref(
            || {
                let mut msg = vec![0u8; BUF];
                let len = match ta.encapsulate(&packet, &mut msg) {
                    TunnResult::WriteToNetwork(p) => p.len(),
                    other => panic!("{other:?}"),
                };
                msg.truncate(len);
                msg
            },
            |msg| match tb.decapsulate(src, msg, &mut out) {
                TunnResult::WriteToTunnelV4(p, _) => black_box(p.len()),
                other => panic!("{other:?}"),
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn handshake(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake");
    g.throughput(Throughput::Elements(1));
    let (mut a, pb, mut b, _pa, mut now) = noise_pair();
    g.bench_function("noise", |bench| {
        bench.iter(|| {
            // Initiations from one peer are accepted at most every 20 ms.
            now += Duration::from_millis(25);
            noise_handshake(&mut a, pb, &mut b, now);
        })
    });
    let (mut ta, mut tb) = boringtun_pair();
    g.bench_function("boringtun", |bench| {
        bench.iter(|| boringtun_handshake(&mut ta, &mut tb))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = encapsulate, decapsulate, handshake
}
criterion_main!(benches);
