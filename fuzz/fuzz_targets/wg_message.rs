#![no_main]
//! Fuzzes WireGuard message parsing: `Message::parse` and every typed view's
//! accessors must never panic, and a parsed message keeps its type and length.
use libfuzzer_sys::fuzz_target;
use noise::messages::{
    message_type, CookieReply, Data, Initiation, Message, Response, COOKIE_REPLY_LEN,
    INITIATION_LEN, RESPONSE_LEN,
};

fuzz_target!(|data: &[u8]| {
    let kind = message_type(data);
    match Message::parse(data) {
        Ok(Message::Initiation(m)) => {
            assert_eq!(data.len(), INITIATION_LEN);
            let _ = (m.sender_index(), m.ephemeral(), m.encrypted_static());
            let _ = (m.encrypted_timestamp(), m.mac1(), m.mac2());
        }
        Ok(Message::Response(m)) => {
            assert_eq!(data.len(), RESPONSE_LEN);
            let _ = (m.sender_index(), m.receiver_index(), m.ephemeral());
            let _ = (m.encrypted_nothing(), m.mac1(), m.mac2());
        }
        Ok(Message::CookieReply(m)) => {
            assert_eq!(data.len(), COOKIE_REPLY_LEN);
            let _ = (m.receiver_index(), m.nonce(), m.encrypted_cookie());
        }
        Ok(Message::Data(m)) => {
            let _ = (m.receiver_index(), m.counter(), m.encrypted().len());
        }
        Err(_) => assert!(kind.is_err()),
    }
    // The typed constructors agree with `parse`.
    let _ = Initiation::new_checked(data);
    let _ = Response::new_checked(data);
    let _ = CookieReply::new_checked(data);
    let _ = Data::new_checked(data);
});
