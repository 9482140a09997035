//! The request-head parser on good heads, heads cut short, and every class
//! of malformed head.

use super::*;

fn head(s: &str) -> Result<Option<Head<'_>>, HttpError> {
    parse_head(s.as_bytes())
}

#[test]
fn connect_and_absolute_requests() {
    let h = head("CONNECT 10.77.0.1:443 HTTP/1.1\r\nHost: 10.77.0.1:443\r\n\r\nextra")
        .expect("ok")
        .expect("whole");
    assert_eq!(h.method, "CONNECT");
    assert_eq!(
        h.ask,
        Ask::Connect(Target::Addr("10.77.0.1:443".parse().expect("a")))
    );
    assert_eq!(
        h.len,
        "CONNECT 10.77.0.1:443 HTTP/1.1\r\nHost: 10.77.0.1:443\r\n\r\n".len()
    );
    let h = head("GET http://web.lan:8080/a/b?c=d HTTP/1.0\r\nHost: web.lan\r\nProxy-Connection: keep-alive\r\n\r\n")
        .expect("ok")
        .expect("whole");
    assert_eq!(
        h.ask,
        Ask::Forward {
            dest: Target::Name {
                host: "web.lan".into(),
                port: 8080
            },
            path: "/a/b?c=d".into()
        }
    );
    assert_eq!(h.minor, 0);
    let h = head("GET http://[fd77::1] HTTP/1.1\r\n\r\n")
        .expect("ok")
        .expect("whole");
    assert_eq!(
        h.ask,
        Ask::Forward {
            dest: Target::Addr("[fd77::1]:80".parse().expect("a")),
            path: "/".into()
        }
    );
    let h = head("GET http://h?x HTTP/1.1\r\n\r\n")
        .expect("ok")
        .expect("whole");
    assert!(matches!(h.ask, Ask::Forward { ref path, .. } if path == "/?x"));
}

#[test]
fn incomplete_heads_wait_and_huge_ones_fail() {
    let full = "CONNECT a:1 HTTP/1.1\r\nX: y\r\n\r\n";
    for cut in 0..full.len() {
        assert_eq!(head(&full[..cut]), Ok(None), "cut at {cut}");
    }
    let big = format!("GET http://a/ HTTP/1.1\r\nX: {}\r\n", "y".repeat(MAX_HEAD));
    assert_eq!(head(&big), Err(HttpError::TooLarge));
    let many: String = (0..=MAX_HEADERS).map(|i| format!("X{i}: v\r\n")).collect();
    let many = format!("GET http://a/ HTTP/1.1\r\n{many}\r\n");
    assert_eq!(head(&many), Err(HttpError::TooManyHeaders));
}

#[test]
fn malformed_heads_by_class() {
    let cases = [
        ("GET\r\n\r\n", HttpError::BadRequestLine),
        ("GET  http://a/ HTTP/1.1\r\n\r\n", HttpError::BadRequestLine),
        (
            "GET http://a/ HTTP/1.1 x\r\n\r\n",
            HttpError::BadRequestLine,
        ),
        ("G(T http://a/ HTTP/1.1\r\n\r\n", HttpError::BadRequestLine),
        ("GET http://a/ HTTP/2.0\r\n\r\n", HttpError::BadVersion),
        ("GET http://a/ FTP/1.0\r\n\r\n", HttpError::BadRequestLine),
        (
            "GET http://a/ HTTP/1.1\r\nnocolon\r\n\r\n",
            HttpError::BadHeader,
        ),
        (
            "GET http://a/ HTTP/1.1\r\n: v\r\n\r\n",
            HttpError::BadHeader,
        ),
        (
            "GET http://a/ HTTP/1.1\r\nA B: v\r\n\r\n",
            HttpError::BadHeader,
        ),
        (
            "GET http://a/ HTTP/1.1\r\nA: v\x01\r\n\r\n",
            HttpError::BadHeader,
        ),
        ("GET /local HTTP/1.1\r\n\r\n", HttpError::BadTarget),
        (
            "GET https://a/ HTTP/1.1\r\n\r\n",
            HttpError::UnsupportedScheme,
        ),
        ("GET http://u:p@a/ HTTP/1.1\r\n\r\n", HttpError::BadTarget),
        ("GET http://a:0/ HTTP/1.1\r\n\r\n", HttpError::BadTarget),
        (
            "GET http://a b/ HTTP/1.1\r\n\r\n",
            HttpError::BadRequestLine,
        ),
        ("GET http:///x HTTP/1.1\r\n\r\n", HttpError::BadTarget),
        ("CONNECT a HTTP/1.1\r\n\r\n", HttpError::BadTarget),
        ("CONNECT a:99999 HTTP/1.1\r\n\r\n", HttpError::BadTarget),
        ("CONNECT fd00::1:443 HTTP/1.1\r\n\r\n", HttpError::BadTarget),
    ];
    for (h, want) in cases {
        assert_eq!(head(h), Err(want), "{h:?}");
    }
    assert_eq!(
        parse_head(b"GET http://a/ HTTP/1.1\r\nA: \xff\r\n\r\n"),
        Err(HttpError::BadHeader)
    );
    assert_eq!(HttpError::TooLarge.status().0, 431);
    assert_eq!(HttpError::UnsupportedScheme.status().0, 501);
    assert_eq!(HttpError::BadHeader.status().0, 400);
}

#[test]
fn origin_head_drops_proxy_headers() {
    let h = head("GET http://a:81/x HTTP/1.1\r\nHost: a:81\r\nProxy-Authorization: Basic eA==\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n")
        .expect("ok")
        .expect("whole");
    let mut out = Vec::new();
    origin_head(&h, "/x", &mut out);
    assert_eq!(
        String::from_utf8(out).expect("utf8"),
        "GET /x HTTP/1.1\r\nHost: a:81\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
}

#[test]
fn basic_credentials_decode() {
    // "alice:s3cr:et" (a colon inside the password is kept).
    let h = head("CONNECT a:1 HTTP/1.1\r\nProxy-Authorization: Basic YWxpY2U6czNjcjpldA==\r\n\r\n")
        .expect("ok")
        .expect("whole");
    assert_eq!(
        basic_credentials(&h),
        Some((b"alice".to_vec(), b"s3cr:et".to_vec()))
    );
    for bad in [
        "Bearer abc",
        "Basic ***",
        "Basic YWxpY2U",
        "Basic YQ==YQ==",
        "Basic",
    ] {
        let t = format!("CONNECT a:1 HTTP/1.1\r\nProxy-Authorization: {bad}\r\n\r\n");
        let h = head(&t).expect("ok").expect("whole");
        assert_eq!(basic_credentials(&h), None, "{bad}");
    }
    assert_eq!(base64_decode("YWI="), Some(b"ab".to_vec()));
    assert_eq!(base64_decode("YQ=="), Some(b"a".to_vec()));
    assert_eq!(base64_decode(""), Some(Vec::new()));
}
