#![no_main]
//! Fuzzes the control protocol between the shim (or the seccomp
//! supervisor) and the engine: request and reply frames and the UDP data
//! socket's datagram header. Any bytes must give a value or an error, never
//! a panic; whatever decodes must encode back to the bytes it came from.
use control::datagram::{Header, RecvInfo, HEADER_LEN};
use control::{Reply, Request, MAX_FRAME};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((req, used)) = Request::decode(data) {
        let mut buf = [0u8; MAX_FRAME];
        let n = req.encode(&mut buf).expect("a decoded request encodes");
        assert_eq!(&buf[..n], &data[..used]);
    }
    if let Ok((rep, used)) = Reply::decode(data) {
        let mut buf = [0u8; MAX_FRAME];
        let n = rep.encode(&mut buf).expect("a decoded reply encodes");
        assert_eq!(&buf[..n], &data[..used]);
    }
    if let Ok(h) = Header::decode(data) {
        let again = Header::decode(&h.encode()).expect("an encoded header decodes");
        assert_eq!(again, h);
        assert!(data.len() >= HEADER_LEN);
        let info = RecvInfo::decode(data);
        assert_eq!(RecvInfo::decode(&h.encode_with(info)), info);
    }
});
