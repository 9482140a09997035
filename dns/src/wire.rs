//! DNS messages on the wire: queries built, responses parsed.
//!
//! Read first: RFC 1035 §4.1 (header, question, resource records) and
//! §4.1.4 (compression), RFC 3596 (AAAA), RFC 1035 §4.2.2 (TCP: a two-byte
//! length before every message).
//!
//! Parsing checks every length; a compression pointer must point strictly
//! backwards (so no loop is possible) and a name is at most 255 bytes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Record type A (IPv4 address).
pub const TYPE_A: u16 = 1;
/// Record type CNAME.
pub const TYPE_CNAME: u16 = 5;
/// Record type PTR.
pub const TYPE_PTR: u16 = 12;
/// Record type AAAA (IPv6 address).
pub const TYPE_AAAA: u16 = 28;
/// Class IN.
pub const CLASS_IN: u16 = 1;
/// Largest name in wire form (RFC 1035 §3.1).
pub const MAX_NAME: usize = 255;
/// Header length.
pub const HEADER_LEN: usize = 12;

mod field {
    use std::ops::Range;
    pub const ID: Range<usize> = 0..2;
    pub const FLAGS: Range<usize> = 2..4;
    pub const QDCOUNT: Range<usize> = 4..6;
    pub const ANCOUNT: Range<usize> = 6..8;
    pub const NSCOUNT: Range<usize> = 8..10;
    pub const ARCOUNT: Range<usize> = 10..12;
}

/// Flag bits of the header's second word.
const FLAG_QR: u16 = 0x8000;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;

/// Response code (RFC 1035 §4.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rcode {
    /// No error.
    NoError,
    /// Format error.
    FormErr,
    /// Server failure.
    ServFail,
    /// The name does not exist.
    NxDomain,
    /// Not implemented.
    NotImp,
    /// Refused.
    Refused,
    /// Any other value.
    Unknown(u8),
}

impl Rcode {
    fn from_u8(v: u8) -> Rcode {
        match v {
            0 => Rcode::NoError,
            1 => Rcode::FormErr,
            2 => Rcode::ServFail,
            3 => Rcode::NxDomain,
            4 => Rcode::NotImp,
            5 => Rcode::Refused,
            other => Rcode::Unknown(other),
        }
    }
}

/// Why a message could not be built or parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The name is empty, has an empty label, a label over 63 bytes, or is
    /// over 255 bytes in wire form.
    BadName,
    /// The message ends inside a field.
    Truncated,
    /// A compression pointer does not point backwards.
    BadPointer,
    /// The message is not a response (QR clear).
    NotResponse,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WireError::BadName => "invalid domain name",
            WireError::Truncated => "DNS message truncated",
            WireError::BadPointer => "invalid compression pointer",
            WireError::NotResponse => "not a DNS response",
        })
    }
}

impl std::error::Error for WireError {}

/// Appends `name` in wire form (labels, then the root). A trailing dot is
/// allowed; `"."` and `""` are the root.
pub fn encode_name(name: &str, out: &mut Vec<u8>) -> Result<(), WireError> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let start = out.len();
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            let b = label.as_bytes();
            if b.is_empty() || b.len() > 63 {
                out.truncate(start);
                return Err(WireError::BadName);
            }
            out.push(b.len() as u8);
            out.extend_from_slice(b);
        }
    }
    out.push(0);
    if out.len() - start > MAX_NAME {
        out.truncate(start);
        return Err(WireError::BadName);
    }
    Ok(())
}

/// Builds a recursive query for (`name`, `qtype`, `class`) with `id`.
pub fn build_query(id: u16, name: &str, qtype: u16, class: u16) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(HEADER_LEN + name.len() + 6);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&FLAG_RD.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    out.extend_from_slice(&[0; 6]); // AN, NS, AR
    encode_name(name, &mut out)?;
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&class.to_be_bytes());
    Ok(out)
}

/// The reverse-lookup name of an address (`4.3.2.1.in-addr.arpa`, nibbles
/// under `ip6.arpa`).
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(a) => {
            let mut s = String::with_capacity(72);
            for b in a.octets().iter().rev() {
                s.push(nibble(b & 0xf));
                s.push('.');
                s.push(nibble(b >> 4));
                s.push('.');
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

fn nibble(n: u8) -> char {
    char::from_digit(u32::from(n), 16).unwrap_or('0')
}

/// Data of one resource record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RData {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// An alias target.
    Cname(String),
    /// A reverse-lookup name.
    Ptr(String),
    /// Anything else (kept out of the parse).
    Other,
}

/// One answer record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Owner name (text, no trailing dot).
    pub name: String,
    /// Record type.
    pub rtype: u16,
    /// Class.
    pub class: u16,
    /// Time to live, seconds.
    pub ttl: u32,
    /// Parsed data.
    pub data: RData,
}

/// A parsed response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Message id.
    pub id: u16,
    /// TC: the answer did not fit (retry over TCP).
    pub truncated: bool,
    /// Response code.
    pub rcode: Rcode,
    /// The first question (name, type, class), if any.
    pub question: Option<(String, u16, u16)>,
    /// Answer-section records.
    pub answers: Vec<Record>,
}

/// Bounds-checked cursor.
struct Cursor<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Truncated)?;
        let s = self.msg.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// Reads a (possibly compressed) name at the cursor, as text.
    fn name(&mut self) -> Result<String, WireError> {
        let (name, next) = read_name(self.msg, self.pos)?;
        self.pos = next;
        Ok(name)
    }
}

/// Reads a name starting at `pos`; returns it and the position after it in
/// the original (uncompressed) sequence.
fn read_name(msg: &[u8], mut pos: usize) -> Result<(String, usize), WireError> {
    let mut out = String::new();
    let mut wire_len = 1usize;
    let mut after: Option<usize> = None;
    // Every jump goes strictly backwards, so this ends; the bound is a
    // second guard.
    let mut floor = pos;
    for _ in 0..256 {
        let len = *msg.get(pos).ok_or(WireError::Truncated)?;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    return Ok((out, after.unwrap_or(pos + 1)));
                }
                let l = usize::from(len);
                let label = msg.get(pos + 1..pos + 1 + l).ok_or(WireError::Truncated)?;
                wire_len += l + 1;
                if wire_len > MAX_NAME {
                    return Err(WireError::BadName);
                }
                if !out.is_empty() {
                    out.push('.');
                }
                for &c in label {
                    // Printable ASCII kept as is, everything else escaped
                    // as the classic \DDD.
                    if c.is_ascii_graphic() && c != b'.' && c != b'\\' {
                        out.push(char::from(c));
                    } else {
                        out.push_str(&format!("\\{c:03}"));
                    }
                }
                pos += 1 + l;
            }
            0xc0 => {
                let lo = *msg.get(pos + 1).ok_or(WireError::Truncated)?;
                let target = (usize::from(len & 0x3f) << 8) | usize::from(lo);
                if target >= floor {
                    return Err(WireError::BadPointer);
                }
                if after.is_none() {
                    after = Some(pos + 2);
                }
                floor = target;
                pos = target;
            }
            _ => return Err(WireError::BadName),
        }
    }
    Err(WireError::BadPointer)
}

/// Parses a response message.
pub fn parse_response(msg: &[u8]) -> Result<Response, WireError> {
    let hdr = msg.get(..HEADER_LEN).ok_or(WireError::Truncated)?;
    let word = |r: std::ops::Range<usize>| u16::from_be_bytes([hdr[r.start], hdr[r.start + 1]]);
    let id = word(field::ID);
    let flags = word(field::FLAGS);
    if flags & FLAG_QR == 0 {
        return Err(WireError::NotResponse);
    }
    let qd = word(field::QDCOUNT);
    let an = word(field::ANCOUNT);
    let _ = (word(field::NSCOUNT), word(field::ARCOUNT));
    let mut c = Cursor {
        msg,
        pos: HEADER_LEN,
    };
    let mut question = None;
    for i in 0..qd {
        let name = c.name()?;
        let qtype = c.u16()?;
        let class = c.u16()?;
        if i == 0 {
            question = Some((name, qtype, class));
        }
    }
    let mut answers = Vec::with_capacity(usize::from(an).min(64));
    for _ in 0..an {
        let name = c.name()?;
        let rtype = c.u16()?;
        let class = c.u16()?;
        let ttl = c.u32()?;
        let rdlen = usize::from(c.u16()?);
        let start = c.pos;
        let rdata = c.take(rdlen)?;
        let data = match (rtype, rdlen) {
            (TYPE_A, 4) => RData::A(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3])),
            (TYPE_AAAA, 16) => {
                let mut o = [0u8; 16];
                o.copy_from_slice(rdata);
                RData::Aaaa(Ipv6Addr::from(o))
            }
            (TYPE_CNAME, _) | (TYPE_PTR, _) => {
                let (target, end) = read_name(msg, start)?;
                if end > c.pos {
                    return Err(WireError::Truncated);
                }
                if rtype == TYPE_CNAME {
                    RData::Cname(target)
                } else {
                    RData::Ptr(target)
                }
            }
            _ => RData::Other,
        };
        answers.push(Record {
            name,
            rtype,
            class,
            ttl,
            data,
        });
    }
    Ok(Response {
        id,
        truncated: flags & FLAG_TC != 0,
        rcode: Rcode::from_u8((flags & 0x000f) as u8),
        question,
        answers,
    })
}

/// Names compare case-insensitively, with or without a trailing dot.
pub fn same_name(a: &str, b: &str) -> bool {
    let a = a.strip_suffix('.').unwrap_or(a);
    let b = b.strip_suffix('.').unwrap_or(b);
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response to `q` (a query built by [`build_query`]) with `answers`
    /// appended as raw records (owner = pointer to the question name).
    pub(crate) fn respond(q: &[u8], flags: u16, answers: &[(u16, &[u8])]) -> Vec<u8> {
        let mut r = q.to_vec();
        r[2..4].copy_from_slice(&(flags | FLAG_QR | FLAG_RD).to_be_bytes());
        r[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
        for (t, data) in answers {
            r.extend_from_slice(&[0xc0, 12]);
            r.extend_from_slice(&t.to_be_bytes());
            r.extend_from_slice(&CLASS_IN.to_be_bytes());
            r.extend_from_slice(&60u32.to_be_bytes());
            r.extend_from_slice(&(data.len() as u16).to_be_bytes());
            r.extend_from_slice(data);
        }
        r
    }

    #[test]
    fn query_bytes_are_exact() {
        let q = build_query(0x1234, "a.bc", TYPE_AAAA, CLASS_IN).expect("query");
        assert_eq!(
            q,
            [
                0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 2, b'b', b'c', 0, 0, 28,
                0, 1
            ]
        );
        assert_eq!(
            build_query(1, "a.bc.", TYPE_A, CLASS_IN).map(|v| v.len()),
            Ok(22)
        );
    }

    #[test]
    fn bad_names_are_refused() {
        assert_eq!(
            build_query(1, "a..b", TYPE_A, CLASS_IN),
            Err(WireError::BadName)
        );
        let long = "x".repeat(64);
        assert_eq!(
            build_query(1, &long, TYPE_A, CLASS_IN),
            Err(WireError::BadName)
        );
        let many = vec!["abcdefghi"; 30].join(".");
        assert_eq!(
            build_query(1, &many, TYPE_A, CLASS_IN),
            Err(WireError::BadName)
        );
    }

    #[test]
    fn parses_a_aaaa_cname_with_compression() {
        let q = build_query(7, "www.example.test", TYPE_A, CLASS_IN).expect("query");
        // CNAME www → "web" + pointer to "example.test" (offset 16).
        let cname = [3, b'w', b'e', b'b', 0xc0, 16];
        let r = respond(
            &q,
            0,
            &[
                (TYPE_CNAME, &cname),
                (TYPE_A, &[10, 77, 0, 1]),
                (TYPE_AAAA, &[0xfd; 16]),
            ],
        );
        let p = parse_response(&r).expect("parse");
        assert_eq!(p.id, 7);
        assert_eq!(p.rcode, Rcode::NoError);
        assert!(!p.truncated);
        assert_eq!(
            p.question,
            Some(("www.example.test".into(), TYPE_A, CLASS_IN))
        );
        assert_eq!(p.answers.len(), 3);
        assert_eq!(p.answers[0].data, RData::Cname("web.example.test".into()));
        assert_eq!(p.answers[1].data, RData::A(Ipv4Addr::new(10, 77, 0, 1)));
        assert_eq!(p.answers[1].name, "www.example.test");
        assert_eq!(p.answers[2].data, RData::Aaaa(Ipv6Addr::from([0xfd; 16])));
    }

    #[test]
    fn rcode_and_tc_bits() {
        let q = build_query(9, "x.test", TYPE_A, CLASS_IN).expect("query");
        let p = parse_response(&respond(&q, 3, &[])).expect("parse");
        assert_eq!(p.rcode, Rcode::NxDomain);
        let p = parse_response(&respond(&q, FLAG_TC, &[])).expect("parse");
        assert!(p.truncated);
        assert_eq!(parse_response(&q), Err(WireError::NotResponse));
    }

    #[test]
    fn pointer_loops_and_forward_pointers_are_rejected() {
        let q = build_query(1, "x.test", TYPE_A, CLASS_IN).expect("query");
        let mut r = respond(&q, 0, &[(TYPE_A, &[1, 2, 3, 4])]);
        // Owner name of the answer points at itself.
        let at = q.len();
        r[at] = 0xc0;
        r[at + 1] = at as u8;
        assert_eq!(parse_response(&r), Err(WireError::BadPointer));
        r[at + 1] = 200;
        assert_eq!(parse_response(&r), Err(WireError::BadPointer));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let q = build_query(1, "www.example.test", TYPE_A, CLASS_IN).expect("query");
        let r = respond(
            &q,
            0,
            &[
                (TYPE_CNAME, &[3, b'w', b'e', b'b', 0xc0, 16]),
                (TYPE_A, &[1, 2, 3, 4]),
            ],
        );
        for n in 0..r.len() {
            assert!(parse_response(&r[..n]).is_err(), "prefix {n} parsed");
        }
        assert!(parse_response(&r).is_ok());
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("10.77.0.1".parse().expect("ip")),
            "1.0.77.10.in-addr.arpa"
        );
        let v6 = reverse_name("fd77::1".parse().expect("ip"));
        assert!(v6.starts_with("1.0.0.0.0.0.0.0."), "{v6}");
        assert!(v6.ends_with("7.7.d.f.ip6.arpa"), "{v6}");
    }
}
