//! Typed views of the four WireGuard messages (paper §5.4.2–§5.4.7, §5.4.6).
//!
//! Read first: WireGuard paper §5.4 (message layouts). Every field is
//! little-endian; the first byte is the type and the next three are zero.
//!
//! Each view wraps a buffer (`T: AsRef<[u8]>`); `new_checked` validates the
//! length and the type once so that no accessor can panic afterwards.
//! Lengths: initiation 148, response 92, cookie reply 64, data ≥ 32
//! (16-byte header plus at least the 16-byte tag).

use std::fmt;

type Field = core::ops::Range<usize>;

/// Message type 1: handshake initiation.
pub const TYPE_INITIATION: u8 = 1;
/// Message type 2: handshake response.
pub const TYPE_RESPONSE: u8 = 2;
/// Message type 3: cookie reply.
pub const TYPE_COOKIE_REPLY: u8 = 3;
/// Message type 4: transport data.
pub const TYPE_DATA: u8 = 4;

/// Length of a handshake initiation.
pub const INITIATION_LEN: usize = 148;
/// Length of a handshake response.
pub const RESPONSE_LEN: usize = 92;
/// Length of a cookie reply.
pub const COOKIE_REPLY_LEN: usize = 64;
/// Length of the transport data header (type, receiver, counter).
pub const DATA_HEADER_LEN: usize = 16;
/// Bytes a data message adds to its padded plain text: header plus tag.
pub const DATA_OVERHEAD: usize = DATA_HEADER_LEN + 16;
/// Smallest data message: an encrypted keepalive.
pub const DATA_MIN_LEN: usize = DATA_OVERHEAD;

mod field {
    use super::Field;
    pub const TYPE: Field = 0..4;

    pub mod init {
        use super::Field;
        pub const SENDER: Field = 4..8;
        pub const EPHEMERAL: Field = 8..40;
        pub const STATIC: Field = 40..88;
        pub const TIMESTAMP: Field = 88..116;
        pub const MAC1: Field = 116..132;
        pub const MAC2: Field = 132..148;
    }
    pub mod resp {
        use super::Field;
        pub const SENDER: Field = 4..8;
        pub const RECEIVER: Field = 8..12;
        pub const EPHEMERAL: Field = 12..44;
        pub const EMPTY: Field = 44..60;
        pub const MAC1: Field = 60..76;
        pub const MAC2: Field = 76..92;
    }
    pub mod cookie {
        use super::Field;
        pub const RECEIVER: Field = 4..8;
        pub const NONCE: Field = 8..32;
        pub const COOKIE: Field = 32..64;
    }
    pub mod data {
        use super::Field;
        pub const RECEIVER: Field = 4..8;
        pub const COUNTER: Field = 8..16;
        pub const PAYLOAD: usize = 16;
    }
}

/// Why bytes are not a well-formed WireGuard message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageError {
    /// Shorter than the 4-byte type field.
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// The type byte is not 1–4, or a reserved byte is not zero.
    UnknownType(u32),
    /// The length does not match the message type.
    WrongLength {
        /// The message type.
        kind: MessageType,
        /// Bytes received.
        len: usize,
    },
    /// A valid message, but not of the type the caller asked for.
    UnexpectedType {
        /// The type asked for.
        expected: MessageType,
        /// The type received.
        actual: MessageType,
    },
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::Truncated { len } => {
                write!(
                    f,
                    "datagram of {len} bytes is too short for a WireGuard message"
                )
            }
            MessageError::UnknownType(t) => write!(f, "unknown WireGuard message type {t:#010x}"),
            MessageError::WrongLength { kind, len } => {
                write!(f, "{kind} message has wrong length {len}")
            }
            MessageError::UnexpectedType { expected, actual } => {
                write!(f, "expected a {expected} message, got a {actual} message")
            }
        }
    }
}

impl std::error::Error for MessageError {}

/// The four message types, plus any other value seen on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// Handshake initiation (1).
    Initiation,
    /// Handshake response (2).
    Response,
    /// Cookie reply (3).
    CookieReply,
    /// Transport data (4).
    Data,
    /// Anything else (the whole little-endian 32-bit type word).
    Unknown(u32),
}

impl From<u32> for MessageType {
    fn from(v: u32) -> Self {
        match v {
            1 => MessageType::Initiation,
            2 => MessageType::Response,
            3 => MessageType::CookieReply,
            4 => MessageType::Data,
            other => MessageType::Unknown(other),
        }
    }
}

impl From<MessageType> for u32 {
    fn from(v: MessageType) -> u32 {
        match v {
            MessageType::Initiation => 1,
            MessageType::Response => 2,
            MessageType::CookieReply => 3,
            MessageType::Data => 4,
            MessageType::Unknown(other) => other,
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageType::Initiation => f.write_str("handshake initiation"),
            MessageType::Response => f.write_str("handshake response"),
            MessageType::CookieReply => f.write_str("cookie reply"),
            MessageType::Data => f.write_str("transport data"),
            MessageType::Unknown(v) => write!(f, "unknown ({v:#x})"),
        }
    }
}

#[inline(always)]
fn read_u32(b: &[u8], f: Field) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[f]);
    u32::from_le_bytes(a)
}

#[inline(always)]
fn read_array<const N: usize>(b: &[u8], f: Field) -> &[u8; N] {
    // Field ranges are constants of exactly N bytes and lengths were checked.
    match <&[u8; N]>::try_from(&b[f]) {
        Ok(a) => a,
        Err(_) => unreachable_field(),
    }
}

#[cold]
fn unreachable_field() -> ! {
    // Only reachable if a field constant is wrong: a bug in this file.
    panic!("field range does not match its declared size")
}

/// Reads the type word of a datagram and checks its length for that type.
pub fn message_type(bytes: &[u8]) -> Result<MessageType, MessageError> {
    if bytes.len() < 4 {
        return Err(MessageError::Truncated { len: bytes.len() });
    }
    let kind = MessageType::from(read_u32(bytes, field::TYPE));
    let ok = match kind {
        MessageType::Initiation => bytes.len() == INITIATION_LEN,
        MessageType::Response => bytes.len() == RESPONSE_LEN,
        MessageType::CookieReply => bytes.len() == COOKIE_REPLY_LEN,
        MessageType::Data => bytes.len() >= DATA_MIN_LEN,
        MessageType::Unknown(t) => return Err(MessageError::UnknownType(t)),
    };
    if ok {
        Ok(kind)
    } else {
        Err(MessageError::WrongLength {
            kind,
            len: bytes.len(),
        })
    }
}

macro_rules! view {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Wraps a buffer after checking its type word and length.
            pub fn new_checked(buffer: T) -> Result<Self, MessageError> {
                let actual = message_type(buffer.as_ref())?;
                if actual == $kind {
                    Ok($name { buffer })
                } else {
                    Err(MessageError::UnexpectedType { expected: $kind, actual })
                }
            }

            /// Wraps a buffer for writing; only its length is checked.
            /// Call `init` to set the type word.
            pub fn new_unchecked_type(buffer: T) -> Result<Self, MessageError> {
                let len = buffer.as_ref().len();
                let ok = match $kind {
                    MessageType::Data => len >= DATA_MIN_LEN,
                    _ => len == Self::LEN,
                };
                if ok {
                    Ok($name { buffer })
                } else {
                    Err(MessageError::WrongLength { kind: $kind, len })
                }
            }

            /// The underlying buffer.
            pub fn into_inner(self) -> T {
                self.buffer
            }

            /// The whole message.
            pub fn as_bytes(&self) -> &[u8] {
                self.buffer.as_ref()
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
            /// Writes the type word (type byte and three zero bytes).
            pub fn init(&mut self) {
                self.buffer.as_mut()[field::TYPE].copy_from_slice(&u32::from($kind).to_le_bytes());
            }
        }
    };
}

view!(
    /// A handshake initiation (type 1, 148 bytes).
    Initiation, MessageType::Initiation
);
view!(
    /// A handshake response (type 2, 92 bytes).
    Response, MessageType::Response
);
view!(
    /// A cookie reply (type 3, 64 bytes).
    CookieReply, MessageType::CookieReply
);
view!(
    /// A transport data message (type 4, at least 32 bytes).
    Data, MessageType::Data
);

impl<T: AsRef<[u8]>> Initiation<T> {
    /// Message length.
    pub const LEN: usize = INITIATION_LEN;
    /// Offset of mac1: mac1 covers everything before it.
    pub const MAC1_OFFSET: usize = field::init::MAC1.start;
    /// Offset of mac2: mac2 covers everything before it.
    pub const MAC2_OFFSET: usize = field::init::MAC2.start;
    /// `sender_index`.
    pub fn sender_index(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::init::SENDER)
    }
    /// `unencrypted_ephemeral`.
    pub fn ephemeral(&self) -> &[u8; 32] {
        read_array(self.buffer.as_ref(), field::init::EPHEMERAL)
    }
    /// `encrypted_static` (32 + 16 bytes).
    pub fn encrypted_static(&self) -> &[u8; 48] {
        read_array(self.buffer.as_ref(), field::init::STATIC)
    }
    /// `encrypted_timestamp` (12 + 16 bytes).
    pub fn encrypted_timestamp(&self) -> &[u8; 28] {
        read_array(self.buffer.as_ref(), field::init::TIMESTAMP)
    }
    /// `mac1`.
    pub fn mac1(&self) -> &[u8; 16] {
        read_array(self.buffer.as_ref(), field::init::MAC1)
    }
    /// `mac2`.
    pub fn mac2(&self) -> &[u8; 16] {
        read_array(self.buffer.as_ref(), field::init::MAC2)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Initiation<T> {
    /// Sets `sender_index`.
    pub fn set_sender_index(&mut self, v: u32) {
        self.buffer.as_mut()[field::init::SENDER].copy_from_slice(&v.to_le_bytes());
    }
    /// Mutable `unencrypted_ephemeral`.
    pub fn ephemeral_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::init::EPHEMERAL]
    }
    /// Mutable `encrypted_static`.
    pub fn encrypted_static_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::init::STATIC]
    }
    /// Mutable `encrypted_timestamp`.
    pub fn encrypted_timestamp_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::init::TIMESTAMP]
    }
}

impl<T: AsRef<[u8]>> Response<T> {
    /// Message length.
    pub const LEN: usize = RESPONSE_LEN;
    /// Offset of mac1.
    pub const MAC1_OFFSET: usize = field::resp::MAC1.start;
    /// Offset of mac2.
    pub const MAC2_OFFSET: usize = field::resp::MAC2.start;
    /// `sender_index`.
    pub fn sender_index(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::resp::SENDER)
    }
    /// `receiver_index`.
    pub fn receiver_index(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::resp::RECEIVER)
    }
    /// `unencrypted_ephemeral`.
    pub fn ephemeral(&self) -> &[u8; 32] {
        read_array(self.buffer.as_ref(), field::resp::EPHEMERAL)
    }
    /// `encrypted_nothing` (the 16-byte tag).
    pub fn encrypted_nothing(&self) -> &[u8; 16] {
        read_array(self.buffer.as_ref(), field::resp::EMPTY)
    }
    /// `mac1`.
    pub fn mac1(&self) -> &[u8; 16] {
        read_array(self.buffer.as_ref(), field::resp::MAC1)
    }
    /// `mac2`.
    pub fn mac2(&self) -> &[u8; 16] {
        read_array(self.buffer.as_ref(), field::resp::MAC2)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Response<T> {
    /// Sets `sender_index`.
    pub fn set_sender_index(&mut self, v: u32) {
        self.buffer.as_mut()[field::resp::SENDER].copy_from_slice(&v.to_le_bytes());
    }
    /// Sets `receiver_index`.
    pub fn set_receiver_index(&mut self, v: u32) {
        self.buffer.as_mut()[field::resp::RECEIVER].copy_from_slice(&v.to_le_bytes());
    }
    /// Mutable `unencrypted_ephemeral`.
    pub fn ephemeral_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::resp::EPHEMERAL]
    }
    /// Mutable `encrypted_nothing`.
    pub fn encrypted_nothing_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::resp::EMPTY]
    }
}

impl<T: AsRef<[u8]>> CookieReply<T> {
    /// Message length.
    pub const LEN: usize = COOKIE_REPLY_LEN;
    /// `receiver_index`.
    pub fn receiver_index(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::cookie::RECEIVER)
    }
    /// `nonce` (24 bytes).
    pub fn nonce(&self) -> &[u8; 24] {
        read_array(self.buffer.as_ref(), field::cookie::NONCE)
    }
    /// `encrypted_cookie` (16 + 16 bytes).
    pub fn encrypted_cookie(&self) -> &[u8; 32] {
        read_array(self.buffer.as_ref(), field::cookie::COOKIE)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> CookieReply<T> {
    /// Sets `receiver_index`.
    pub fn set_receiver_index(&mut self, v: u32) {
        self.buffer.as_mut()[field::cookie::RECEIVER].copy_from_slice(&v.to_le_bytes());
    }
    /// Mutable `nonce`.
    pub fn nonce_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::cookie::NONCE]
    }
    /// Mutable `encrypted_cookie`.
    pub fn encrypted_cookie_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::cookie::COOKIE]
    }
}

impl<T: AsRef<[u8]>> Data<T> {
    /// Header length.
    pub const LEN: usize = DATA_HEADER_LEN;
    /// `receiver_index`.
    pub fn receiver_index(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::data::RECEIVER)
    }
    /// `counter`.
    pub fn counter(&self) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.buffer.as_ref()[field::data::COUNTER]);
        u64::from_le_bytes(a)
    }
    /// `encrypted_encapsulated_packet` (cipher text and tag).
    pub fn encrypted(&self) -> &[u8] {
        &self.buffer.as_ref()[field::data::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Data<T> {
    /// Sets `receiver_index`.
    pub fn set_receiver_index(&mut self, v: u32) {
        self.buffer.as_mut()[field::data::RECEIVER].copy_from_slice(&v.to_le_bytes());
    }
    /// Sets `counter`.
    pub fn set_counter(&mut self, v: u64) {
        self.buffer.as_mut()[field::data::COUNTER].copy_from_slice(&v.to_le_bytes());
    }
    /// Mutable `encrypted_encapsulated_packet`.
    pub fn encrypted_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::data::PAYLOAD..]
    }
}

/// Any of the four messages, borrowed from a datagram.
#[derive(Debug, Clone, Copy)]
pub enum Message<'a> {
    /// Type 1.
    Initiation(Initiation<&'a [u8]>),
    /// Type 2.
    Response(Response<&'a [u8]>),
    /// Type 3.
    CookieReply(CookieReply<&'a [u8]>),
    /// Type 4.
    Data(Data<&'a [u8]>),
}

impl<'a> Message<'a> {
    /// Parses a datagram: checks the type word and the length for that type.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, MessageError> {
        Ok(match message_type(bytes)? {
            MessageType::Initiation => Message::Initiation(Initiation { buffer: bytes }),
            MessageType::Response => Message::Response(Response { buffer: bytes }),
            MessageType::CookieReply => Message::CookieReply(CookieReply { buffer: bytes }),
            MessageType::Data => Message::Data(Data { buffer: bytes }),
            MessageType::Unknown(t) => return Err(MessageError::UnknownType(t)),
        })
    }

    /// The message type.
    pub fn kind(&self) -> MessageType {
        match self {
            Message::Initiation(_) => MessageType::Initiation,
            Message::Response(_) => MessageType::Response,
            Message::CookieReply(_) => MessageType::CookieReply,
            Message::Data(_) => MessageType::Data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_types_are_checked() {
        assert!(matches!(
            message_type(&[1, 0, 0]),
            Err(MessageError::Truncated { len: 3 })
        ));
        let mut b = [0u8; 148];
        b[0] = 1;
        assert_eq!(message_type(&b), Ok(MessageType::Initiation));
        assert!(message_type(&b[..147]).is_err());
        b[1] = 1; // reserved byte set
        assert!(matches!(
            message_type(&b),
            Err(MessageError::UnknownType(_))
        ));
        let mut d = [0u8; 32];
        d[0] = 4;
        assert!(Data::new_checked(&d[..]).is_ok());
        assert!(Data::new_checked(&d[..31]).is_err());
        assert!(Initiation::new_checked(&d[..]).is_err());
    }

    #[test]
    fn emit_sets_every_field() {
        let mut buf = [0xa5u8; RESPONSE_LEN];
        let mut r = Response::new_unchecked_type(&mut buf[..]).expect("length");
        r.init();
        r.set_sender_index(0x01020304);
        r.set_receiver_index(0x0a0b0c0d);
        assert_eq!(
            &buf[..12],
            &[2, 0, 0, 0, 4, 3, 2, 1, 0x0d, 0x0c, 0x0b, 0x0a]
        );
        let r = Response::new_checked(&buf[..]).expect("valid");
        assert_eq!(r.sender_index(), 0x01020304);
        assert_eq!(r.receiver_index(), 0x0a0b0c0d);
    }
}
