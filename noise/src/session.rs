//! Transport keypairs: the `Sender` and `Receiver` halves of a session, and
//! in-place encryption/decryption of data messages.
//!
//! Read first: WireGuard paper §5.4.6 (transport data messages: 64-bit
//! little-endian counter as nonce, zero padding to a multiple of 16, the
//! empty packet as keepalive).
//!
//! The halves are `Send` and carry no timer state, so an engine can move the
//! AEAD work off its stack thread: reserve counters with
//! [`Sender::next_counter`] on the owning thread, then call
//! a [`Sealer`] (from [`Sender::sealer`]) elsewhere; for receiving, an
//! [`Opener`] (from [`Receiver::opener`]) authenticates without touching the
//! replay window and [`Receiver::commit_counter`] records the counter
//! afterwards on the owning thread.

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Tag};

use crate::crypto::{nonce, TAG_LEN};
use crate::error::{DecapsulateError, EncapsulateError};
use crate::messages::{Data, DATA_HEADER_LEN, TYPE_DATA};
use crate::replay::ReplayWindow;
use crate::timers::REJECT_AFTER_MESSAGES;

/// Largest plain text we encapsulate (a UDP datagram minus our overhead).
pub const MAX_PLAINTEXT: usize = 65_535 - 8 - 40 - DATA_HEADER_LEN - TAG_LEN - 15;

/// Length of the plain text once padded to a multiple of 16.
#[inline(always)]
pub fn padded_len(len: usize) -> usize {
    (len + 15) & !15
}

/// Length of the data message carrying `len` bytes of plain text.
#[inline(always)]
pub fn data_message_len(len: usize) -> usize {
    DATA_HEADER_LEN + padded_len(len) + TAG_LEN
}

/// A stateless copy of a session's sending key: seals with counters that
/// the owning [`Sender`] reserved. `Clone + Send + Sync`, for worker threads.
#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
    receiver_index: u32,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("receiver_index", &self.receiver_index)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Sealer {
    /// Seals in place, as [`Sender::seal`]. Use each counter once, and only
    /// counters obtained from [`Sender::next_counter`].
    #[inline]
    pub fn seal(
        &self,
        counter: u64,
        buf: &mut [u8],
        payload_len: usize,
    ) -> Result<usize, EncapsulateError> {
        seal_with(&self.cipher, self.receiver_index, counter, buf, payload_len)
    }
}

/// A stateless copy of a session's receiving key: authenticates and
/// decrypts without the replay window (commit counters afterwards with
/// [`Receiver::commit_counter`] on the owning thread).
#[derive(Clone)]
pub struct Opener {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Opener(<redacted>)")
    }
}

impl Opener {
    /// Decrypts `buf` (cipher text then tag) in place for `counter`;
    /// returns the padded plain text length.
    #[inline]
    pub fn open(&self, counter: u64, buf: &mut [u8]) -> Result<usize, DecapsulateError> {
        open_with(&self.cipher, counter, buf)
    }
}

#[inline(always)]
fn seal_with(
    cipher: &ChaCha20Poly1305,
    receiver_index: u32,
    counter: u64,
    buf: &mut [u8],
    payload_len: usize,
) -> Result<usize, EncapsulateError> {
    let total = data_message_len(payload_len);
    if buf.len() < total {
        return Err(EncapsulateError::BufferTooSmall { needed: total });
    }
    let padded = padded_len(payload_len);
    let msg = &mut buf[..total];
    msg[DATA_HEADER_LEN + payload_len..DATA_HEADER_LEN + padded].fill(0);
    msg[..4].copy_from_slice(&u32::from(TYPE_DATA).to_le_bytes());
    msg[4..8].copy_from_slice(&receiver_index.to_le_bytes());
    msg[8..16].copy_from_slice(&counter.to_le_bytes());
    let (body, tag) = msg[DATA_HEADER_LEN..].split_at_mut(padded);
    let t = cipher
        .encrypt_inout_detached(&nonce(counter), &[], body.into())
        .map_err(|_| EncapsulateError::PacketTooLarge { len: payload_len })?;
    tag.copy_from_slice(&t);
    Ok(total)
}

#[inline(always)]
fn open_with(
    cipher: &ChaCha20Poly1305,
    counter: u64,
    buf: &mut [u8],
) -> Result<usize, DecapsulateError> {
    let Some(split) = buf.len().checked_sub(TAG_LEN) else {
        return Err(DecapsulateError::DecryptFailed);
    };
    let (body, tag) = buf.split_at_mut(split);
    let tag = Tag::try_from(&*tag).map_err(|_| DecapsulateError::DecryptFailed)?;
    cipher
        .decrypt_inout_detached(&nonce(counter), &[], body.into(), &tag)
        .map_err(|_| DecapsulateError::DecryptFailed)?;
    Ok(split)
}

/// The sending half of a transport keypair.
pub struct Sender {
    cipher: ChaCha20Poly1305,
    receiver_index: u32,
    counter: u64,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("receiver_index", &self.receiver_index)
            .field("counter", &self.counter)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Sender {
    pub(crate) fn new(key: &[u8; 32], receiver_index: u32) -> Self {
        Sender {
            cipher: ChaCha20Poly1305::new(key.into()),
            receiver_index,
            counter: 0,
        }
    }

    /// The peer's index that every message of this session carries.
    pub fn receiver_index(&self) -> u32 {
        self.receiver_index
    }

    #[cfg(test)]
    pub(crate) fn set_counter(&mut self, counter: u64) {
        self.counter = counter;
    }

    /// How many counters were used so far.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// Reserves the next counter; `None` once `REJECT_AFTER_MESSAGES` is hit.
    #[inline]
    pub fn next_counter(&mut self) -> Option<u64> {
        let c = self.counter;
        if c >= REJECT_AFTER_MESSAGES {
            return None;
        }
        self.counter = c + 1;
        Some(c)
    }

    /// Seals in place. `buf[16..16 + payload_len]` holds the plain text;
    /// `buf` must hold at least [`data_message_len`]`(payload_len)` bytes.
    /// Writes header, padding and tag; returns the message length.
    #[inline]
    pub fn seal(
        &self,
        counter: u64,
        buf: &mut [u8],
        payload_len: usize,
    ) -> Result<usize, EncapsulateError> {
        seal_with(&self.cipher, self.receiver_index, counter, buf, payload_len)
    }

    /// A stateless copy of this key for sealing on another thread.
    pub fn sealer(&self) -> Sealer {
        Sealer {
            cipher: self.cipher.clone(),
            receiver_index: self.receiver_index,
        }
    }

    /// Copies `payload` into `out` and seals it with the next counter.
    /// `payload` may be empty (a keepalive). Returns the message length.
    #[inline]
    pub fn encapsulate(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, SendError> {
        if payload.len() > MAX_PLAINTEXT {
            return Err(SendError::Encapsulate(EncapsulateError::PacketTooLarge {
                len: payload.len(),
            }));
        }
        let total = data_message_len(payload.len());
        if out.len() < total {
            return Err(SendError::Encapsulate(EncapsulateError::BufferTooSmall {
                needed: total,
            }));
        }
        let counter = self.next_counter().ok_or(SendError::Exhausted)?;
        out[DATA_HEADER_LEN..DATA_HEADER_LEN + payload.len()].copy_from_slice(payload);
        self.seal(counter, out, payload.len())
            .map_err(SendError::Encapsulate)
    }
}

/// Why a [`Sender`] could not seal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// Buffer or size problem.
    Encapsulate(EncapsulateError),
    /// All counters of this session are used (`REJECT_AFTER_MESSAGES`).
    Exhausted,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Encapsulate(e) => e.fmt(f),
            SendError::Exhausted => f.write_str("session reached REJECT_AFTER_MESSAGES"),
        }
    }
}

impl std::error::Error for SendError {}

/// The receiving half of a transport keypair, with its replay window.
pub struct Receiver {
    cipher: ChaCha20Poly1305,
    local_index: u32,
    replay: ReplayWindow,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("local_index", &self.local_index)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Receiver {
    pub(crate) fn new(key: &[u8; 32], local_index: u32) -> Self {
        Receiver {
            cipher: ChaCha20Poly1305::new(key.into()),
            local_index,
            replay: ReplayWindow::new(),
        }
    }

    /// Our index, which the peer puts in every message of this session.
    pub fn local_index(&self) -> u32 {
        self.local_index
    }

    /// Authenticates and decrypts the data message in `msg` in place,
    /// without touching the replay window (only checking it). On success
    /// returns the counter and the padded plain text length, which starts
    /// at `msg[16..]`.
    #[inline]
    pub fn open_detached(&self, msg: &mut [u8]) -> Result<(u64, usize), DecapsulateError> {
        let view = Data::new_checked(&*msg)?;
        let counter = view.counter();
        if !self.replay.check(counter) {
            return Err(DecapsulateError::Replay { counter });
        }
        let len = open_with(&self.cipher, counter, &mut msg[DATA_HEADER_LEN..])?;
        Ok((counter, len))
    }

    /// Authenticates and decrypts `buf` (cipher text then tag, the data
    /// message without its 16-byte header) in place for `counter`, checking
    /// but not updating the replay window. Returns the padded plain text
    /// length (the plain text is `buf[..len]`).
    #[inline]
    pub fn open_payload(&self, counter: u64, buf: &mut [u8]) -> Result<usize, DecapsulateError> {
        if !self.replay.check(counter) {
            return Err(DecapsulateError::Replay { counter });
        }
        open_with(&self.cipher, counter, buf)
    }

    /// Whether `counter` would pass the replay window now.
    pub fn check_counter(&self, counter: u64) -> bool {
        self.replay.check(counter)
    }

    /// A stateless copy of this key for opening on another thread.
    pub fn opener(&self) -> Opener {
        Opener {
            cipher: self.cipher.clone(),
        }
    }

    /// Records an authenticated counter in the replay window; false if it
    /// was a replay after all (two copies authenticated concurrently).
    #[inline]
    pub fn commit_counter(&mut self, counter: u64) -> bool {
        self.replay.update(counter)
    }

    /// [`Receiver::open_detached`] then [`Receiver::commit_counter`].
    #[inline]
    pub fn open(&mut self, msg: &mut [u8]) -> Result<usize, DecapsulateError> {
        let (counter, len) = self.open_detached(msg)?;
        if !self.commit_counter(counter) {
            return Err(DecapsulateError::Replay { counter });
        }
        Ok(len)
    }
}

/// Given a decrypted, padded plain text, returns the length of the IP packet
/// in it (`Some(0)` for a keepalive), or `None` if it is not IPv4/IPv6 with a
/// length that fits.
pub fn inner_packet_len(plain: &[u8]) -> Option<usize> {
    let first = *plain.first()?;
    let len = match first >> 4 {
        4 if plain.len() >= 20 => usize::from(u16::from_be_bytes([plain[2], plain[3]])),
        6 if plain.len() >= 40 => 40 + usize::from(u16::from_be_bytes([plain[4], plain[5]])),
        _ => return None,
    };
    if len <= plain.len() && (first >> 4 != 4 || len >= 20) {
        Some(len)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_with_padding() {
        let key = [9u8; 32];
        let mut s = Sender::new(&key, 77);
        let mut r = Receiver::new(&key, 77);
        let mut out = [0xa5u8; 64];
        let n = s.encapsulate(b"abc", &mut out).expect("fits");
        assert_eq!(n, 16 + 16 + 16);
        let mut copy = out;
        let len = r.open(&mut out[..n]).expect("authentic");
        assert_eq!(len, 16);
        assert_eq!(&out[16..19], b"abc");
        assert_eq!(&out[19..32], &[0u8; 13]);
        assert_eq!(
            r.open(&mut copy[..n]),
            Err(DecapsulateError::Replay { counter: 0 })
        );
        let n = s.encapsulate(b"", &mut out).expect("fits");
        assert_eq!(n, 32);
        assert_eq!(r.open(&mut out[..n]), Ok(0));
        // Off-thread halves produce the same messages.
        let c = s.next_counter().expect("counter");
        let mut buf = [0u8; 48];
        buf[16..19].copy_from_slice(b"xyz");
        let n = std::thread::scope(|t| {
            let sealer = s.sealer();
            t.spawn(move || sealer.seal(c, &mut buf, 3).map(|n| (n, buf)))
                .join()
                .expect("no panic")
        })
        .expect("fits");
        let (n, mut msg) = n;
        let opener = r.opener();
        let len = opener.open(c, &mut msg[16..n]).expect("authentic");
        assert_eq!((len, &msg[16..19]), (16, &b"xyz"[..]));
        assert!(r.commit_counter(c));
        assert!(!r.check_counter(c));
        assert!(matches!(
            s.encapsulate(b"x", &mut [0u8; 20]),
            Err(SendError::Encapsulate(EncapsulateError::BufferTooSmall {
                needed: 48
            }))
        ));
    }
}
