//! Byte-level tests of the SOCKS5 codec: every message whole, cut short at
//! every length, and each class of malformed input.

use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

#[test]
fn greeting_whole_partial_and_bad() {
    let g = [5, 2, 0, 2];
    assert_eq!(
        parse_greeting(&g),
        Ok(Some((
            Greeting {
                no_auth: true,
                user_pass: true
            },
            4
        )))
    );
    for cut in 0..g.len() {
        assert_eq!(parse_greeting(&g[..cut]), Ok(None), "cut at {cut}");
    }
    assert_eq!(parse_greeting(&[4, 1, 0]), Err(Socks5Error::BadVersion(4)));
    assert_eq!(parse_greeting(&[5, 0]), Err(Socks5Error::NoMethods));
    // Unknown methods only: parsed, nothing acceptable.
    assert_eq!(
        parse_greeting(&[5, 1, 0x80]),
        Ok(Some((Greeting::default(), 3)))
    );
}

#[test]
fn user_pass_whole_partial_and_bad() {
    let m = [1, 3, b'b', b'o', b'b', 2, b'p', b'w'];
    let want = UserPass {
        user: b"bob".to_vec(),
        pass: b"pw".to_vec(),
    };
    assert_eq!(parse_user_pass(&m), Ok(Some((want, 8))));
    for cut in 0..m.len() {
        assert_eq!(parse_user_pass(&m[..cut]), Ok(None), "cut at {cut}");
    }
    assert_eq!(parse_user_pass(&[5, 1]), Err(Socks5Error::BadVersion(5)));
    assert_eq!(parse_user_pass(&[1, 0, 0]), Err(Socks5Error::EmptyUser));
    // An empty password is allowed by RFC 1929.
    assert!(matches!(
        parse_user_pass(&[1, 1, b'a', 0]),
        Ok(Some((_, 4)))
    ));
}

#[test]
fn requests_of_every_address_type() {
    let v4 = [5, 1, 0, 1, 10, 77, 0, 1, 0x1f, 0x90];
    assert_eq!(
        parse_request(&v4),
        Ok(Some((
            Request {
                command: Command::Connect,
                target: Target::Addr(addr("10.77.0.1:8080"))
            },
            10
        )))
    );
    let mut v6 = vec![5, 3, 0, 4];
    v6.extend_from_slice(
        &addr("[fd77::1]:53")
            .ip()
            .to_string()
            .parse::<Ipv6Addr>()
            .expect("v6")
            .octets(),
    );
    v6.extend_from_slice(&53u16.to_be_bytes());
    let (r, n) = parse_request(&v6).expect("ok").expect("whole");
    assert_eq!(n, v6.len());
    assert_eq!(r.command, Command::UdpAssociate);
    assert_eq!(r.target, Target::Addr(addr("[fd77::1]:53")));
    let mut name = vec![5, 1, 0, 3, 7];
    name.extend_from_slice(b"web.lan");
    name.extend_from_slice(&80u16.to_be_bytes());
    let (r, n) = parse_request(&name).expect("ok").expect("whole");
    assert_eq!(n, name.len());
    assert_eq!(
        r.target,
        Target::Name {
            host: "web.lan".into(),
            port: 80
        }
    );
    for m in [&v4[..], &v6[..], &name[..]] {
        for cut in 0..m.len() {
            assert_eq!(parse_request(&m[..cut]), Ok(None), "cut at {cut} of {m:?}");
        }
    }
    // A literal address sent as a name is that address.
    let mut lit = vec![5, 1, 0, 3, 8];
    lit.extend_from_slice(b"10.0.0.9");
    lit.extend_from_slice(&22u16.to_be_bytes());
    let (r, _) = parse_request(&lit).expect("ok").expect("whole");
    assert_eq!(r.target, Target::Addr(addr("10.0.0.9:22")));
}

#[test]
fn malformed_requests_name_their_reply() {
    let cases: [(&[u8], Socks5Error, ReplyCode); 6] = [
        (
            &[4, 1, 0, 1],
            Socks5Error::BadVersion(4),
            ReplyCode::GeneralFailure,
        ),
        (
            &[5, 9, 0, 1],
            Socks5Error::UnknownCommand(9),
            ReplyCode::CommandNotSupported,
        ),
        (
            &[5, 1, 1, 1],
            Socks5Error::BadReserved,
            ReplyCode::GeneralFailure,
        ),
        (
            &[5, 1, 0, 7],
            Socks5Error::UnknownAddressType(7),
            ReplyCode::AddressTypeNotSupported,
        ),
        (
            &[5, 1, 0, 3, 0, 0, 80],
            Socks5Error::BadName,
            ReplyCode::HostUnreachable,
        ),
        (
            &[5, 1, 0, 3, 3, b'a', 0, b'b', 0, 80],
            Socks5Error::BadName,
            ReplyCode::HostUnreachable,
        ),
    ];
    for (m, err, code) in cases {
        assert_eq!(parse_request(m), Err(err), "{m:?}");
        assert_eq!(err.reply_code(), code);
    }
    // BIND parses (the server refuses it).
    assert!(matches!(
        parse_request(&[5, 2, 0, 1, 0, 0, 0, 0, 0, 0]),
        Ok(Some((
            Request {
                command: Command::Bind,
                ..
            },
            10
        )))
    ));
}

#[test]
fn replies_encode_every_field() {
    let mut out = vec![0xa5; 0];
    encode_reply(ReplyCode::NotAllowed, addr("10.77.0.2:4000"), &mut out);
    assert_eq!(out, [5, 2, 0, 1, 10, 77, 0, 2, 0x0f, 0xa0]);
    out.clear();
    encode_reply(ReplyCode::Succeeded, addr("[::1]:1"), &mut out);
    assert_eq!(out.len(), 4 + 16 + 2);
    assert_eq!(out[3], 4);
    assert_eq!(&out[20..], &[0, 1]);
}

#[test]
fn udp_datagrams_round_trip_and_bad_ones_are_refused() {
    let mut d = Vec::new();
    encode_udp_header(addr("10.77.0.1:7"), &mut d);
    d.extend_from_slice(b"ping");
    let u = parse_udp(&d).expect("parses");
    assert_eq!(u.target, Target::Addr(addr("10.77.0.1:7")));
    assert_eq!(u.payload, b"ping");
    assert_eq!(parse_udp(&d[..3]), Err(Socks5Error::Truncated));
    assert_eq!(parse_udp(&d[..8]), Err(Socks5Error::Truncated));
    let mut frag = d.clone();
    frag[2] = 1;
    assert_eq!(parse_udp(&frag), Err(Socks5Error::Fragment));
    let mut rsv = d.clone();
    rsv[0] = 1;
    assert_eq!(parse_udp(&rsv), Err(Socks5Error::BadReserved));
    let mut atyp = d;
    atyp[3] = 9;
    assert_eq!(parse_udp(&atyp), Err(Socks5Error::UnknownAddressType(9)));
}
