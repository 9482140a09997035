//! The Internet checksum.
//!
//! Read first: RFC 1071 (computing the Internet checksum), RFC 1624
//! (incremental update), RFC 768 / RFC 9293 §3.1 / RFC 8200 §8.1 (the
//! pseudo-headers).
//!
//! The sum is accumulated in 32-bit big-endian words into a `u64`; because
//! 2^32 ≡ 1 (mod 2^16 − 1) folding at the end gives the ones-complement sum.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Ones-complement sum of `data` (not inverted), folded to 16 bits.
pub fn data(data: &[u8]) -> u16 {
    fold(sum(data, 0))
}

/// Adds `data` to a running 64-bit accumulator. `data` must start at an
/// even offset of the checksummed region unless it is the last piece.
pub fn sum(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        acc += u64::from(u32::from_be_bytes([c[4], c[5], c[6], c[7]]));
    }
    let mut rest = chunks.remainder();
    while rest.len() >= 2 {
        acc += u64::from(u16::from_be_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
    }
    if let Some(&b) = rest.first() {
        acc += u64::from(b) << 8;
    }
    acc
}

/// Folds a 64-bit accumulator to a 16-bit ones-complement sum.
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Ones-complement sum of several partial sums.
pub fn combine(parts: &[u16]) -> u16 {
    fold(parts.iter().map(|&p| u64::from(p)).sum())
}

/// Pseudo-header sum for IPv4 (RFC 9293 §3.1, RFC 768).
pub fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: u32) -> u64 {
    let mut acc = u64::from(u32::from(src)) + u64::from(u32::from(dst));
    acc += u64::from(proto) + u64::from(len);
    acc
}

/// Pseudo-header sum for IPv6 (RFC 8200 §8.1).
pub fn pseudo_v6(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, len: u32) -> u64 {
    let mut acc = sum(&src.octets(), 0);
    acc = sum(&dst.octets(), acc);
    acc + u64::from(proto) + u64::from(len)
}

/// Pseudo-header sum for either family; mixed families are not a thing, so
/// a mismatch sums the IPv4-mapped form (never produced by the stack).
pub fn pseudo(src: std::net::IpAddr, dst: std::net::IpAddr, proto: u8, len: u32) -> u64 {
    use std::net::IpAddr;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => pseudo_v4(s, d, proto, len),
        (s, d) => pseudo_v6(to_v6(s), to_v6(d), proto, len),
    }
}

fn to_v6(a: std::net::IpAddr) -> Ipv6Addr {
    match a {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        std::net::IpAddr::V6(v6) => v6,
    }
}

/// The final checksum value to store: the inverted folded sum.
pub fn finish(acc: u64) -> u16 {
    !fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 0001 f203 f4f5 f6f7 sums to ddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(data(&d), 0xddf2);
    }

    #[test]
    fn odd_length_pads_low_byte() {
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn split_matches_whole() {
        let v: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let whole = data(&v);
        let parts = fold(sum(&v[200..], sum(&v[..200], 0)));
        assert_eq!(whole, parts);
    }
}
