#![no_main]
//! Fuzzes the DNS response parser, the lookup state machine that consumes
//! it, the hosts/resolv.conf parsers, and the control protocol's resolve
//! reply decoder: any bytes must give a value or an error, never a panic;
//! a response that parses must parse again identically from a copy, and a
//! lookup fed any answer must still finish.
use control::ResolveReply;
use dns::{Event, Lookup, LookupConfig, Query, Step};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = dns::wire::parse_response(data);
    if let Ok(r) = &parsed {
        assert_eq!(dns::wire::parse_response(&data.to_vec()).as_ref(), Ok(r));
        for a in &r.answers {
            assert!(a.name.len() <= 4 * 255);
        }
    }
    let _ = ResolveReply::decode(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let h = dns::hosts::Hosts::parse(text);
        let _ = h.lookup("localhost", true, true);
        let _ = dns::resolv_conf::nameservers(text);
    }

    // A lookup whose server answers with these bytes, with the first
    // query's id patched in (so the parse reaches the record logic).
    let config = LookupConfig {
        servers: vec!["10.0.0.53".parse().expect("ip")],
        search: vec!["corp.test".into()],
        ..LookupConfig::default()
    };
    let q = Query::Addr {
        name: "www".into(),
        v4: true,
        v6: true,
    };
    let mut l = Lookup::new(q, &config, 42);
    for _ in 0..64 {
        match l.step() {
            Step::Send(t) => {
                let mut answer = data.to_vec();
                if answer.len() >= 2 && t.payload.len() >= 2 {
                    answer[..2].copy_from_slice(&t.payload[..2]);
                }
                l.handle(Event::Response(answer));
            }
            Step::Done(_) => return,
        }
    }
    panic!("lookup did not finish within 64 steps");
});
