#![no_main]
//! Fuzzes the SOCKS5 parsers (greeting, username/password, request, UDP
//! datagram header): any bytes give a message, "incomplete" or a typed
//! error, never a panic; a parsed message never claims more bytes than it
//! was given, and every prefix of a whole message is incomplete.
use libfuzzer_sys::fuzz_target;
use proxy::socks5::{parse_greeting, parse_request, parse_udp, parse_user_pass, Parsed};

fn check<T>(data: &[u8], parse: fn(&[u8]) -> Parsed<T>) {
    if let Ok(Some((_, used))) = parse(data) {
        assert!(used <= data.len());
        for cut in 0..used {
            assert!(matches!(parse(&data[..cut]), Ok(None) | Err(_)));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data, parse_greeting);
    check(data, parse_user_pass);
    check(data, parse_request);
    if let Ok(d) = parse_udp(data) {
        assert!(d.payload.len() < data.len());
    }
});
