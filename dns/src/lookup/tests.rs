use super::*;
use crate::wire::{build_query, CLASS_IN, TYPE_A, TYPE_AAAA, TYPE_CNAME};
use std::net::Ipv4Addr;

/// A fake server: answers a query with `rcode`, `tc` and records given by
/// `answer(qname, qtype)`.
fn answer(q: &[u8], rcode: u16, tc: bool, records: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut r = q.to_vec();
    let flags = 0x8180 | rcode | if tc { 0x0200 } else { 0 };
    r[2..4].copy_from_slice(&flags.to_be_bytes());
    r[6..8].copy_from_slice(&(records.len() as u16).to_be_bytes());
    for (t, data) in records {
        r.extend_from_slice(&[0xc0, 12]);
        r.extend_from_slice(&t.to_be_bytes());
        r.extend_from_slice(&CLASS_IN.to_be_bytes());
        r.extend_from_slice(&30u32.to_be_bytes());
        r.extend_from_slice(&(data.len() as u16).to_be_bytes());
        r.extend_from_slice(data);
    }
    r
}

fn qname(q: &[u8]) -> (String, u16) {
    let p = crate::wire::parse_response(&{
        let mut r = q.to_vec();
        r[2] |= 0x80;
        r
    })
    .expect("own query parses");
    let (n, t, _) = p.question.expect("question");
    (n, t)
}

fn cfg(servers: &[&str], search: &[&str]) -> LookupConfig {
    LookupConfig {
        servers: servers.iter().map(|s| s.parse().expect("ip")).collect(),
        search: search.iter().map(|s| s.to_string()).collect(),
        ..LookupConfig::default()
    }
}

/// Drives a lookup with `server(transmit) -> Event`; returns the outcome
/// and every transmit seen.
fn drive(mut l: Lookup, mut server: impl FnMut(&Transmit) -> Event) -> (Outcome, Vec<Transmit>) {
    let mut seen = Vec::new();
    for _ in 0..100 {
        match l.step() {
            Step::Send(t) => {
                let ev = server(&t);
                seen.push(t);
                l.handle(ev);
            }
            Step::Done(o) => return (o, seen),
        }
    }
    panic!("lookup did not finish");
}

#[test]
fn a_and_aaaa_are_collected() {
    let l = Lookup::new(
        Query::Addr {
            name: "host.test".into(),
            v4: true,
            v6: true,
        },
        &cfg(&["10.0.0.53"], &[]),
        1,
    );
    let (o, seen) = drive(l, |t| {
        let (_, ty) = qname(&t.payload);
        let rec = if ty == TYPE_A {
            vec![(TYPE_A, vec![10, 77, 0, 1])]
        } else {
            vec![(TYPE_AAAA, vec![0xfd; 16])]
        };
        Event::Response(answer(&t.payload, 0, false, &rec))
    });
    assert_eq!(
        o,
        Outcome::Addrs {
            canonical: "host.test".into(),
            addrs: vec![
                IpAddr::V4(Ipv4Addr::new(10, 77, 0, 1)),
                IpAddr::V6([0xfd; 16].into())
            ]
        }
    );
    assert_eq!(seen.len(), 2);
    assert!(seen
        .iter()
        .all(|t| !t.tcp && t.server == "10.0.0.53:53".parse().expect("sa")));
}

#[test]
fn search_domains_and_ndots() {
    let c = cfg(&["10.0.0.53"], &["corp.test", "lab.test"]);
    assert_eq!(
        candidates("db", &c, true),
        ["db.corp.test", "db.lab.test", "db"]
    );
    assert_eq!(
        candidates("db.x", &c, true),
        ["db.x", "db.x.corp.test", "db.x.lab.test"]
    );
    assert_eq!(candidates("db.", &c, true), ["db"]);
    assert_eq!(candidates("db", &c, false), ["db"]);
    // NXDOMAIN for the first, found under the second search domain.
    let l = Lookup::new(
        Query::Addr {
            name: "db".into(),
            v4: true,
            v6: false,
        },
        &c,
        2,
    );
    let (o, seen) = drive(l, |t| {
        let (n, _) = qname(&t.payload);
        if n == "db.lab.test" {
            Event::Response(answer(&t.payload, 0, false, &[(TYPE_A, vec![1, 2, 3, 4])]))
        } else {
            Event::Response(answer(&t.payload, 3, false, &[]))
        }
    });
    assert_eq!(seen.len(), 2);
    assert!(matches!(o, Outcome::Addrs { ref canonical, .. } if canonical == "db.lab.test"));
}

#[test]
fn nxdomain_everywhere_is_nxdomain_and_empty_is_nodata() {
    let c = cfg(&["10.0.0.53"], &["corp.test"]);
    let q = Query::Addr {
        name: "gone".into(),
        v4: true,
        v6: true,
    };
    let (o, seen) = drive(Lookup::new(q.clone(), &c, 3), |t| {
        Event::Response(answer(&t.payload, 3, false, &[]))
    });
    assert!(
        matches!(
            o,
            Outcome::Failed {
                error: LookupError::NxDomain,
                raw: Some(_)
            }
        ),
        "{o:?}"
    );
    // NXDOMAIN skips the AAAA query of the same candidate.
    assert_eq!(seen.len(), 2);
    let (o, _) = drive(Lookup::new(q, &c, 3), |t| {
        Event::Response(answer(&t.payload, 0, false, &[]))
    });
    assert!(
        matches!(
            o,
            Outcome::Failed {
                error: LookupError::NoData,
                ..
            }
        ),
        "{o:?}"
    );
}

#[test]
fn timeouts_rotate_servers_then_fail_closed() {
    let c = cfg(&["10.0.0.53", "10.0.0.54"], &["corp.test"]);
    let l = Lookup::new(
        Query::Addr {
            name: "x".into(),
            v4: true,
            v6: false,
        },
        &c,
        4,
    );
    let (o, seen) = drive(l, |_| Event::Timeout);
    assert_eq!(
        o,
        Outcome::Failed {
            error: LookupError::TryAgain,
            raw: None
        }
    );
    // attempts (2) × servers (2), and no other candidate name tried.
    let servers: Vec<String> = seen.iter().map(|t| t.server.ip().to_string()).collect();
    assert_eq!(
        servers,
        ["10.0.0.53", "10.0.0.54", "10.0.0.53", "10.0.0.54"]
    );
    // A second server answers after the first fails.
    let l = Lookup::new(
        Query::Addr {
            name: "x.test".into(),
            v4: true,
            v6: false,
        },
        &c,
        4,
    );
    let (o, _) = drive(l, |t| {
        if t.server.ip().to_string() == "10.0.0.53" {
            Event::Response(answer(&t.payload, 2, false, &[])) // SERVFAIL
        } else {
            Event::Response(answer(&t.payload, 0, false, &[(TYPE_A, vec![9, 9, 9, 9])]))
        }
    });
    assert!(matches!(o, Outcome::Addrs { .. }), "{o:?}");
}

#[test]
fn truncated_answer_retried_over_tcp_same_server() {
    let l = Lookup::new(
        Query::Addr {
            name: "big.test".into(),
            v4: true,
            v6: false,
        },
        &cfg(&["10.0.0.53"], &[]),
        5,
    );
    let (o, seen) = drive(l, |t| {
        if t.tcp {
            Event::Response(answer(&t.payload, 0, false, &[(TYPE_A, vec![5, 5, 5, 5])]))
        } else {
            Event::Response(answer(&t.payload, 0, true, &[]))
        }
    });
    assert!(
        matches!(o, Outcome::Addrs { ref addrs, .. } if addrs.len() == 1),
        "{o:?}"
    );
    assert_eq!(
        seen.iter().map(|t| t.tcp).collect::<Vec<_>>(),
        [false, true]
    );
    assert_eq!(seen[0].server, seen[1].server);
}

#[test]
fn wrong_id_or_question_is_not_accepted() {
    let l = Lookup::new(
        Query::Addr {
            name: "a.test".into(),
            v4: true,
            v6: false,
        },
        &cfg(&["10.0.0.53"], &[]),
        6,
    );
    let (o, seen) = drive(l, |t| {
        let other = build_query(1, "evil.test", TYPE_A, CLASS_IN).expect("q");
        let mut forged = answer(&other, 0, false, &[(TYPE_A, vec![6, 6, 6, 6])]);
        forged[0..2].copy_from_slice(&t.payload[0..2]);
        Event::Response(forged)
    });
    assert_eq!(
        o,
        Outcome::Failed {
            error: LookupError::TryAgain,
            raw: None
        }
    );
    assert_eq!(seen.len(), 2);
}

#[test]
fn cname_sets_canonical_and_ptr_reverse() {
    let l = Lookup::new(
        Query::Addr {
            name: "www.test".into(),
            v4: true,
            v6: false,
        },
        &cfg(&["10.0.0.53"], &[]),
        7,
    );
    let (o, _) = drive(l, |t| {
        Event::Response(answer(
            &t.payload,
            0,
            false,
            &[
                (TYPE_CNAME, vec![3, b'w', b'e', b'b', 0xc0, 16]),
                (TYPE_A, vec![7, 7, 7, 7]),
            ],
        ))
    });
    assert!(
        matches!(o, Outcome::Addrs { ref canonical, .. } if canonical == "web.test"),
        "{o:?}"
    );
    let l = Lookup::new(
        Query::Reverse("10.77.0.1".parse().expect("ip")),
        &cfg(&["10.0.0.53"], &[]),
        8,
    );
    let (o, seen) = drive(l, |t| {
        Event::Response(answer(
            &t.payload,
            0,
            false,
            &[(
                crate::wire::TYPE_PTR,
                vec![2, b'p', b't', 4, b't', b'e', b's', b't', 0],
            )],
        ))
    });
    assert_eq!(o, Outcome::Name("pt.test".into()));
    assert_eq!(qname(&seen[0].payload).0, "1.0.77.10.in-addr.arpa");
}

#[test]
fn raw_queries_return_the_whole_answer() {
    let l = Lookup::new(
        Query::Raw {
            name: "t.test".into(),
            class: CLASS_IN,
            qtype: 16,
            search: false,
        },
        &cfg(&["10.0.0.53"], &["corp.test"]),
        9,
    );
    let mut sent = Vec::new();
    let (o, seen) = drive(l, |t| {
        let r = answer(&t.payload, 0, false, &[(16, vec![2, b'h', b'i'])]);
        sent = r.clone();
        Event::Response(r)
    });
    assert_eq!(o, Outcome::Raw(sent));
    assert_eq!(seen.len(), 1);
    assert_eq!(qname(&seen[0].payload), ("t.test".to_string(), 16));
}

#[test]
fn no_servers_or_bad_name_fail_at_once() {
    let l = Lookup::new(
        Query::Addr {
            name: "a.test".into(),
            v4: true,
            v6: true,
        },
        &cfg(&[], &[]),
        1,
    );
    let (o, seen) = drive(l, |_| Event::Timeout);
    assert!(seen.is_empty());
    assert_eq!(
        o,
        Outcome::Failed {
            error: LookupError::TryAgain,
            raw: None
        }
    );
    let l = Lookup::new(
        Query::Addr {
            name: "a..b".into(),
            v4: true,
            v6: true,
        },
        &cfg(&["10.0.0.53"], &[]),
        1,
    );
    let (o, seen) = drive(l, |_| Event::Timeout);
    assert!(seen.is_empty());
    assert!(
        matches!(
            o,
            Outcome::Failed {
                error: LookupError::NxDomain,
                ..
            }
        ),
        "{o:?}"
    );
}

#[test]
fn one_family_failing_keeps_the_other() {
    let l = Lookup::new(
        Query::Addr {
            name: "h.test".into(),
            v4: true,
            v6: true,
        },
        &cfg(&["10.0.0.53"], &[]),
        10,
    );
    let (o, seen) = drive(l, |t| {
        if qname(&t.payload).1 == TYPE_A {
            Event::Response(answer(&t.payload, 0, false, &[(TYPE_A, vec![4, 4, 4, 4])]))
        } else {
            Event::Response(answer(&t.payload, 5, false, &[])) // REFUSED
        }
    });
    assert_eq!(
        o,
        Outcome::Addrs {
            canonical: "h.test".into(),
            addrs: vec![IpAddr::V4(Ipv4Addr::new(4, 4, 4, 4))]
        }
    );
    assert_eq!(seen.len(), 3);
}
