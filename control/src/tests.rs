use super::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

fn v4(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port)
}

fn v6() -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x77),
        443,
        7,
        3,
    ))
}

fn all_requests() -> Vec<Request> {
    vec![
        Request::Hello {
            pid: 4242,
            version: PROTOCOL_VERSION,
        },
        Request::Route {
            dst: v4(10, 77, 0, 1, 80),
            proto: Proto::Tcp,
        },
        Request::Route {
            dst: v6(),
            proto: Proto::Udp,
        },
        Request::Route {
            dst: v6(),
            proto: Proto::Unknown(132),
        },
        Request::Connect(ConnectRequest {
            dst: v4(10, 77, 0, 1, 8080),
            nonblocking: true,
            fd: 2000,
            v6_socket: false,
            inode: 123_456,
            hand_over: false,
        }),
        Request::Connect(ConnectRequest {
            dst: v6(),
            nonblocking: false,
            fd: 3,
            v6_socket: true,
            inode: u64::MAX,
            hand_over: true,
        }),
        Request::Adopt { inode: 77 },
        Request::Session,
        Request::TcpInfo { flow: u64::MAX },
        Request::Hold { pid: 4_000_001 },
        Request::Serve,
        Request::SeccompAttach {
            pid: 4_000_000,
            listener: -1,
        },
        Request::TcpKeepalive {
            flow: 9,
            keepalive: TcpKeepalive {
                enabled: true,
                idle_secs: 2,
                interval_secs: 1,
                count: u32::MAX,
            },
        },
        Request::FlowStatus { flow: u64::MAX - 1 },
        Request::Bind {
            addr: v4(0, 0, 0, 0, 0),
        },
        Request::Listen {
            requested: v4(0, 0, 0, 0, 5555),
            loopback: v4(127, 0, 0, 1, 5555),
        },
        Request::AcceptLookup {
            listener: v4(127, 0, 0, 1, 5555),
            peer: v6(),
        },
        Request::DnsInfo,
        Request::Resolve(ResolveRequest {
            kind: ResolveKind::Addr {
                v4: true,
                v6: false,
            },
            name: QueryName::new(b"only-tunnel.test").expect("name"),
        }),
        Request::Resolve(ResolveRequest {
            kind: ResolveKind::Reverse(v6().ip()),
            name: QueryName::empty(),
        }),
        Request::Resolve(ResolveRequest {
            kind: ResolveKind::Raw {
                class: 1,
                qtype: 16,
                search: true,
            },
            name: QueryName::new(&[b'x'; 255]).expect("longest name"),
        }),
        Request::UdpOpen(UdpOpenRequest {
            v6_socket: true,
            v6_only: false,
            bind: v4(0, 0, 0, 0, 0),
            connect: Some(v6()),
            fd: 9,
            framing: DatagramFraming::Headers,
            kind: crate::DatagramKind::Udp,
        }),
        Request::UdpOpen(UdpOpenRequest {
            v6_socket: false,
            v6_only: false,
            bind: v4(0, 0, 0, 0, 0),
            connect: Some(v4(10, 77, 0, 1, 53)),
            fd: 7,
            framing: DatagramFraming::Plain,
            kind: crate::DatagramKind::Udp,
        }),
        Request::UdpOpen(UdpOpenRequest {
            v6_socket: false,
            v6_only: true,
            bind: v4(10, 77, 0, 2, 53),
            connect: None,
            fd: -1,
            framing: DatagramFraming::Headers,
            kind: crate::DatagramKind::Udp,
        }),
        Request::UdpConnect {
            flow: 3,
            peer: None,
        },
        Request::UdpConnect {
            flow: u64::MAX,
            peer: Some(v4(10, 77, 0, 1, 9)),
        },
    ]
}

fn all_replies() -> Vec<Reply> {
    vec![
        Reply::Route(RouteDecision::Direct),
        Reply::Route(RouteDecision::Tunnel),
        Reply::Route(RouteDecision::Unreachable(101)),
        Reply::Connect(ConnectReply::NotRouted),
        Reply::Connect(ConnectReply::Accepted {
            flow: 9,
            local: v4(10, 77, 0, 2, 40000),
        }),
        Reply::Connect(ConnectReply::Accepted {
            flow: 10,
            local: v6(),
        }),
        Reply::Connect(ConnectReply::Refused(111)),
        Reply::FlowStatus(FlowState::Unknown),
        Reply::FlowStatus(FlowState::Connecting),
        Reply::FlowStatus(FlowState::Established),
        Reply::FlowStatus(FlowState::Failed(110)),
        Reply::Bind { redirect: true },
        Reply::Bind { redirect: false },
        Reply::Done(0),
        Reply::DnsInfo(DnsInfo {
            server: Some(v4(10, 77, 0, 1, 0).ip()),
            host_servers: [Some(v4(127, 0, 0, 53, 0).ip()), Some(v6().ip()), None, None],
        }),
        Reply::DnsInfo(DnsInfo {
            server: None,
            host_servers: [None; dns::MAX_HOST_NAMESERVERS],
        }),
        Reply::Done(98),
        Reply::Accept(None),
        Reply::Adopt(None),
        Reply::Adopt(Some(FlowInfo {
            flow: 5,
            peer: v4(10, 77, 0, 1, 80),
            local: v6(),
            v6_socket: true,
            state: FlowState::Failed(113),
        })),
        Reply::Accept(Some(AcceptedPeer {
            peer: v4(10, 77, 0, 1, 33000),
            local: v6(),
        })),
        Reply::Udp(UdpReply::Opened {
            flow: 12,
            local: v6(),
            mtu: 1420,
        }),
        Reply::Udp(UdpReply::Refused(101)),
        Reply::TcpInfo(None),
        Reply::TcpInfo(Some(SAMPLE_TCP_INFO)),
    ]
}

#[test]
fn requests_round_trip() {
    for req in all_requests() {
        let mut buf = [0xa5u8; MAX_FRAME];
        let n = req.encode(&mut buf).expect("fits");
        assert_eq!(frame_len([buf[0], buf[1]]), Ok(n));
        let (back, used) = Request::decode(&buf[..n]).expect("decodes");
        assert_eq!(back, req);
        assert_eq!(used, n);
        // Followed by more bytes (e.g. filler): only the frame is consumed.
        let (back2, used2) = Request::decode(&buf).expect("decodes with trailing stream");
        assert_eq!((back2, used2), (req, n));
    }
}

#[test]
fn replies_round_trip() {
    for rep in all_replies() {
        let mut buf = [0xa5u8; MAX_FRAME];
        let n = rep.encode(&mut buf).expect("fits");
        let (back, used) = Reply::decode(&buf[..n]).expect("decodes");
        assert_eq!(back, rep);
        assert_eq!(used, n);
    }
}

#[test]
fn truncated_input_is_incomplete_or_error_never_panics() {
    for req in all_requests() {
        let mut buf = [0u8; MAX_FRAME];
        let n = req.encode(&mut buf).expect("fits");
        for cut in 0..n {
            match Request::decode(&buf[..cut]) {
                Err(DecodeError::Incomplete { needed }) => assert!(needed > cut),
                other => panic!("cut {cut} of {req:?}: {other:?}"),
            }
        }
    }
}

#[test]
fn short_length_prefix_inside_frame_is_truncated() {
    // A frame whose declared length is shorter than its fields.
    let mut buf = [0u8; MAX_FRAME];
    let n = Request::FlowStatus { flow: 1 }
        .encode(&mut buf)
        .expect("fits");
    let short = (n - PREFIX_LEN - 1) as u16;
    buf[..2].copy_from_slice(&short.to_le_bytes());
    assert_eq!(Request::decode(&buf[..n]), Err(DecodeError::Truncated));
}

#[test]
fn trailing_bytes_inside_frame_are_rejected() {
    let mut buf = [0u8; MAX_FRAME];
    let n = Request::FlowStatus { flow: 1 }
        .encode(&mut buf)
        .expect("fits");
    let long = (n - PREFIX_LEN + 1) as u16;
    buf[..2].copy_from_slice(&long.to_le_bytes());
    assert_eq!(
        Request::decode(&buf[..n + 1]),
        Err(DecodeError::TrailingBytes)
    );
}

#[test]
fn bad_version_tag_length_and_fields() {
    let mut buf = [0u8; MAX_FRAME];
    let n = Request::Bind {
        addr: v4(1, 2, 3, 4, 5),
    }
    .encode(&mut buf)
    .expect("fits");

    let mut b = buf;
    b[2] = PROTOCOL_VERSION + 1;
    assert_eq!(
        Request::decode(&b[..n]),
        Err(DecodeError::BadVersion(PROTOCOL_VERSION + 1))
    );

    let mut b = buf;
    b[3] = 0x7f;
    assert_eq!(Request::decode(&b[..n]), Err(DecodeError::BadTag(0x7f)));

    // A reply tag is not a request.
    let mut b = buf;
    b[3] = 0x81;
    assert_eq!(Request::decode(&b[..n]), Err(DecodeError::BadTag(0x81)));

    let mut b = buf;
    b[4] = 5; // address family
    assert_eq!(
        Request::decode(&b[..n]),
        Err(DecodeError::BadField("address family"))
    );

    assert_eq!(Request::decode(&[0, 0]), Err(DecodeError::BadLength(0)));
    assert_eq!(Request::decode(&[1, 0, 1]), Err(DecodeError::BadLength(1)));
    assert_eq!(
        Request::decode(&[0xff, 0xff]),
        Err(DecodeError::BadLength(0xffff))
    );
    assert_eq!(frame_len([0xff, 0x7f]), Err(DecodeError::BadLength(0x7fff)));
}

#[test]
fn udp_open_framing_is_checked() {
    let plain = UdpOpenRequest {
        v6_socket: true,
        v6_only: false,
        bind: v4(0, 0, 0, 0, 0),
        connect: Some(v6()),
        fd: 4,
        framing: DatagramFraming::Plain,
        kind: crate::DatagramKind::Udp,
    };
    let mut buf = [0xa5u8; MAX_FRAME];
    let n = Request::UdpOpen(plain).encode(&mut buf).expect("fits");
    // The framing and the kind are the last two bytes of the frame.
    assert_eq!((buf[n - 2], buf[n - 1]), (1, 0));
    let mut b = buf;
    b[n - 2] = 2;
    assert_eq!(
        Request::decode(&b[..n]),
        Err(DecodeError::BadField("datagram framing"))
    );
    let mut b = buf;
    b[n - 1] = 3;
    assert_eq!(
        Request::decode(&b[..n]),
        Err(DecodeError::BadField("datagram kind"))
    );
    for k in [crate::DatagramKind::Ping, crate::DatagramKind::RawIcmp] {
        let r = Request::UdpOpen(UdpOpenRequest { kind: k, ..plain });
        let n = r.encode(&mut buf).expect("fits");
        assert_eq!(Request::decode(&buf[..n]), Ok((r, n)));
    }
    // Plain framing needs a peer: there is no header to name one.
    let n = Request::UdpOpen(UdpOpenRequest {
        connect: None,
        ..plain
    })
    .encode(&mut buf)
    .expect("fits");
    assert_eq!(
        Request::decode(&buf[..n]),
        Err(DecodeError::BadField("plain framing without a peer"))
    );
    // The same without a peer is fine with headers.
    let headers = UdpOpenRequest {
        connect: None,
        framing: DatagramFraming::Headers,
        ..plain
    };
    let n = Request::UdpOpen(headers).encode(&mut buf).expect("fits");
    assert_eq!(
        Request::decode(&buf[..n]),
        Ok((Request::UdpOpen(headers), n))
    );
}

#[test]
fn dns_redirect_applies_to_port_53_of_host_nameservers_only() {
    let tunnel: IpAddr = "10.77.0.1".parse().expect("ip");
    let info = DnsInfo {
        server: Some(tunnel),
        host_servers: [
            Some("127.0.0.53".parse().expect("ip")),
            Some("192.0.2.53".parse().expect("ip")),
            None,
            None,
        ],
    };
    let to = SocketAddr::new(tunnel, 53);
    assert_eq!(info.redirect(v4(127, 0, 0, 53, 53)), Some(to));
    assert_eq!(info.redirect(v4(192, 0, 2, 53, 53)), Some(to));
    // v4-mapped on an AF_INET6 socket.
    assert_eq!(
        info.redirect("[::ffff:192.0.2.53]:53".parse().expect("addr")),
        Some(to)
    );
    assert_eq!(info.redirect(v4(192, 0, 2, 53, 5353)), None);
    assert_eq!(info.redirect(v4(192, 0, 2, 54, 53)), None);
    // Without `DNS =` nothing is redirected.
    let host = DnsInfo {
        server: None,
        ..info
    };
    assert_eq!(host.redirect(v4(127, 0, 0, 53, 53)), None);
}

#[test]
fn bool_must_be_zero_or_one() {
    let mut buf = [0u8; MAX_FRAME];
    let n = Reply::Bind { redirect: true }
        .encode(&mut buf)
        .expect("fits");
    buf[4] = 2;
    assert_eq!(Reply::decode(&buf[..n]), Err(DecodeError::BadField("bool")));
}

#[test]
fn encode_into_small_buffer_is_an_error() {
    let req = Request::Listen {
        requested: v6(),
        loopback: v6(),
    };
    let mut big = [0u8; MAX_FRAME];
    let n = req.encode(&mut big).expect("fits");
    for size in 0..n {
        let mut small = vec![0u8; size];
        assert_eq!(
            req.encode(&mut small),
            Err(EncodeError::BufferTooSmall { needed: n })
        );
    }
}

/// Deterministic pseudo-random garbage: decode must never panic.
#[test]
fn garbage_never_panics() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let len = (next() % 80) as usize;
        let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if len >= 4 && next() % 2 == 0 {
            // Make the header plausible so field decoding is exercised.
            let body = (len - 2) as u16;
            buf[..2].copy_from_slice(&body.to_le_bytes());
            buf[2] = PROTOCOL_VERSION;
            buf[3] = if next() % 2 == 0 {
                (next() % 9) as u8
            } else {
                0x80 | (next() % 8) as u8
            };
        }
        let _ = Request::decode(&buf);
        let _ = Reply::decode(&buf);
    }
}

#[test]
fn normalize_unmaps_v4_mapped() {
    let mapped: SocketAddr = "[::ffff:10.77.0.1]:80".parse().expect("literal");
    assert_eq!(normalize(mapped), v4(10, 77, 0, 1, 80));
    assert_eq!(normalize(v6()), v6());
    assert_eq!(normalize(v4(1, 1, 1, 1, 1)), v4(1, 1, 1, 1, 1));
}

#[test]
fn largest_message_fits_max_frame() {
    let mut buf = [0u8; MAX_FRAME];
    let n = Reply::Accept(Some(AcceptedPeer {
        peer: v6(),
        local: v6(),
    }))
    .encode(&mut buf)
    .expect("fits");
    assert!(n < 64, "{n}");
}

#[test]
fn resolve_reply_round_trips_and_rejects_damage() {
    let r = ResolveReply {
        status: ResolveStatus::Ok,
        name: b"web.only-tunnel.test".to_vec(),
        addrs: vec![v4(10, 77, 0, 1, 0).ip(), v6().ip()],
        raw: vec![0xa5; 70_000],
    };
    let bytes = r.encode();
    let back = ResolveReply::decode(&bytes).expect("decodes");
    assert_eq!(back.status, ResolveStatus::Ok);
    assert_eq!(back.name, r.name);
    assert_eq!(back.addrs, r.addrs);
    // Over-long raw answers are cut at the 16-bit DNS limit.
    assert_eq!(back.raw.len(), 65_535);
    let small = ResolveReply::status(ResolveStatus::TryAgain).encode();
    assert_eq!(
        ResolveReply::decode(&small),
        Ok(ResolveReply::status(ResolveStatus::TryAgain))
    );
    for n in 0..small.len() {
        assert!(ResolveReply::decode(&small[..n]).is_err(), "prefix {n}");
    }
    let mut bad = small.clone();
    bad[6] = 9;
    assert_eq!(
        ResolveReply::decode(&bad),
        Err(DecodeError::BadField("resolve status"))
    );
    let mut long = small;
    long.push(0);
    assert_eq!(ResolveReply::decode(&long), Err(DecodeError::TrailingBytes));
    assert!(ResolveReply::frame_len([0xff; 4]).is_err());
}

#[test]
fn query_names_are_checked() {
    assert!(QueryName::new(b"").is_none());
    assert!(QueryName::new(&[b'a'; 256]).is_none());
    assert!(QueryName::new(&[b'a', 0, b'b']).is_none());
    assert_eq!(
        QueryName::new(b"x.test").expect("name").as_bytes(),
        b"x.test"
    );
}

#[test]
fn tcp_info_patch_writes_linux_offsets_and_stops_at_the_buffer() {
    let i = SAMPLE_TCP_INFO;
    let mut full = [0xeeu8; 232];
    i.patch_tcp_info(&mut full);
    let at = |b: &[u8], o: usize| u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    assert_eq!(full[0], 1);
    assert_eq!(full[1], 0xee, "tcpi_ca_state is the kernel's");
    assert_eq!(at(&full, 16), 1368);
    assert_eq!(at(&full, 68), 1500);
    assert_eq!(at(&full, 76), 0x7fff_ffff);
    assert_eq!(at(&full, 80), 10);
    assert_eq!(at(&full, 100), 7);
    // A program asking for the first 20 bytes gets no write past them.
    let mut short = [0u8; 20];
    i.patch_tcp_info(&mut short);
    assert_eq!(
        u32::from_ne_bytes([short[16], short[17], short[18], short[19]]),
        1368
    );
    i.patch_tcp_info(&mut []);
}

/// A `TcpInfo` answer with every field set.
const SAMPLE_TCP_INFO: crate::TcpFlowInfo = crate::TcpFlowInfo {
    state: 1,
    mss: 1368,
    rtt_us: 1500,
    rttvar_us: 750,
    rto_us: 201_000,
    cwnd: 10,
    ssthresh: u32::MAX,
    unacked: 3,
    total_retrans: 7,
};
