//! Measurements behind the data-path design (see `swap`).

use crate::sys;

fn pair() -> (i32, i32) {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for two fds.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(r, 0);
    (fds[0], fds[1])
}

/// The filler trick: with the minimum SO_SNDBUF, one queued frame plus the
/// filler keeps POLLOUT off; draining turns it on; closing the peer with
/// the filler unread gives POLLERR|POLLHUP and ECONNRESET.
#[test]
fn filler_gates_pollout() {
    let (app, engine) = pair();
    sys::setsockopt_int(app, libc::SOL_SOCKET, libc::SO_SNDBUF, 1).expect("sndbuf");
    let sndbuf = sys::getsockopt_int(app, libc::SOL_SOCKET, libc::SO_SNDBUF).expect("get sndbuf");
    assert!(sndbuf < 8192, "minimum sndbuf is {sndbuf}");
    // A Connect frame (about 20 bytes), then the filler, must not block.
    assert_eq!(
        sys::fcntl(app, libc::F_SETFL, libc::O_NONBLOCK as libc::c_long),
        Ok(0)
    );
    sys::send_all(app, &[7u8; 24]).expect("frame");
    sys::send_all(app, &[control::FILLER_BYTE; control::FILLER_LEN])
        .expect("filler fits without blocking");
    let rev = sys::poll1(app, libc::POLLOUT, 0).expect("poll");
    assert_eq!(
        rev & libc::POLLOUT,
        0,
        "POLLOUT must be off while the filler is unread"
    );

    // Drain: writable.
    let mut buf = vec![0u8; 24 + control::FILLER_LEN];
    sys::recv_exact(engine, &mut buf).expect("drain");
    let rev = sys::poll1(app, libc::POLLOUT, 0).expect("poll");
    assert_ne!(rev & libc::POLLOUT, 0);
    sys::close(app);
    sys::close(engine);

    // Failure: the engine closes with the filler unread.
    let (app, engine) = pair();
    sys::setsockopt_int(app, libc::SOL_SOCKET, libc::SO_SNDBUF, 1).expect("sndbuf");
    sys::send_all(app, &[control::FILLER_BYTE; control::FILLER_LEN]).expect("filler");
    sys::close(engine);
    let rev = sys::poll1(app, libc::POLLOUT, 0).expect("poll");
    assert_ne!(rev & libc::POLLERR, 0, "revents {rev:#x}");
    assert_ne!(rev & libc::POLLHUP, 0, "revents {rev:#x}");
    assert_eq!(
        sys::getsockopt_int(app, libc::SOL_SOCKET, libc::SO_ERROR),
        Ok(libc::ECONNRESET)
    );
    sys::close(app);
}

#[test]
fn v4_mapped_round_trip_in_family() {
    let a: std::net::SocketAddr = "10.77.0.2:4000".parse().expect("literal");
    let m = crate::addr::in_family(a, libc::AF_INET6);
    assert_eq!(m.to_string(), "[::ffff:10.77.0.2]:4000");
    assert_eq!(control::normalize(m), a);
    let (ss, l) = crate::addr::to_storage(m);
    assert_eq!(crate::addr::from_storage(&ss, l), Some(m));
}
