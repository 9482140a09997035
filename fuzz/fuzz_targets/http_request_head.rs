#![no_main]
//! Fuzzes the HTTP proxy's request-head parser and what is derived from a
//! head (the origin-form rewrite, `Basic` credentials): any bytes give a
//! head, "incomplete" or a typed error with a status, never a panic; a
//! head never claims more bytes than it was given or than `MAX_HEAD`.
use libfuzzer_sys::fuzz_target;
use proxy::http::{basic_credentials, origin_head, parse_head, Ask, MAX_HEAD};

fuzz_target!(|data: &[u8]| {
    match parse_head(data) {
        Ok(Some(h)) => {
            assert!(h.len <= data.len() && h.len <= MAX_HEAD);
            let _ = basic_credentials(&h);
            if let Ask::Forward { path, .. } = &h.ask {
                let mut out = Vec::new();
                origin_head(&h, path, &mut out);
                assert!(out.ends_with(b"\r\n\r\n"));
            }
        }
        Ok(None) => assert!(data.len() < MAX_HEAD),
        Err(e) => assert!(e.status().0 >= 400),
    }
});
