//! Following a carried process into a program the shim cannot enter.
//!
//! In auto mode a dynamically linked program runs with the shim; when it
//! execs a statically linked, musl or Go program (`sh -c ./static`), the
//! shim's exec hooks see it (`control::program::exec_needs_seccomp`) and
//! exec `wrapguard` [`control::SECCOMP_EXEC_ARG`] `PATH ARGV…` instead.
//! That is [`exec`]: in the same process (so the program keeps its pid,
//! its parent and its descriptors) it
//! 1. connects to the engine's control socket (before the filter exists,
//!    so nothing it does is trapped with no one to answer),
//! 2. installs seccomp mode's filter with a notification listener,
//! 3. sends `SeccompAttach { pid, listener }` and waits for the engine to
//!    take the listener (`pidfd_getfd`) and start a supervisor for it —
//!    with `write`/`read`, which the filter lets through,
//! 4. execs `PATH` with the original argv and the environment the shim
//!    passed, which no longer has the shim in `LD_PRELOAD` (the kernel
//!    carries the filter across exec and into children;
//!    a dynamic grandchild is then carried by seccomp alone, as in
//!    seccomp mode, not by both).
//!
//! The shim execs us without itself in `LD_PRELOAD`; step 4 is the raw
//! system call all the same, so that a shim loaded some other way could
//! not hand the program over a second time.
//!
//! Fails closed: if any step fails, the program is not run (exit status
//! 126, one line on stderr saying why); it never runs untunnelled.

use super::{child, filter};
use control::{Reply, Request, MAX_FRAME, PREFIX_LEN};
use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;

/// Exit status when the program cannot be carried (as a shell's "cannot run").
const CANNOT_RUN: i32 = 126;
/// Exit status when the program does not exist (as a shell's "not found").
const NOT_FOUND: i32 = 127;

/// Runs the hand-off for `args` (`PATH ARGV…`, what follows
/// [`control::SECCOMP_EXEC_ARG`]); never returns.
pub fn exec(args: &[OsString]) -> ! {
    let Some((path, argv)) = args.split_first() else {
        fail(
            CANNOT_RUN,
            format_args!(
                "{} needs the program to run (it is used by the shim, not by hand)",
                control::SECCOMP_EXEC_ARG
            ),
        );
    };
    let shown = path.to_string_lossy().into_owned();
    if let Some(why) = super::unsupported() {
        fail(
            CANNOT_RUN,
            format_args!("cannot carry {shown} into the tunnel (the shim cannot enter it): {why}"),
        );
    }
    if let Err(e) = attach() {
        fail(
            CANNOT_RUN,
            format_args!("cannot carry {shown} into the tunnel in seccomp mode: {e}"),
        );
    }
    let e = execve(path, argv);
    let code = if e.kind() == io::ErrorKind::NotFound {
        NOT_FOUND
    } else {
        CANNOT_RUN
    };
    fail(code, format_args!("cannot run {shown}: {e}"));
}

fn fail(code: i32, msg: std::fmt::Arguments<'_>) -> ! {
    eprintln!("wrapguard: {msg}");
    std::process::exit(code)
}

/// Steps 1–3: after `Ok`, the engine supervises this process's filter.
fn attach() -> io::Result<()> {
    let control = std::env::var_os(control::ENV_CONTROL).ok_or_else(|| {
        io::Error::other(format!(
            "{} is not set (not started by wrapguard?)",
            control::ENV_CONTROL
        ))
    })?;
    let stream = connect_engine(std::path::Path::new(&control))?;
    let prog = child::sock_filters(&filter::program());
    let listener = child::install_filter(&prog).map_err(|e| {
        if e.raw_os_error() == Some(libc::EBUSY) {
            io::Error::other("this process already has a seccomp notification filter (another supervisor); seccomp mode cannot add one")
        } else {
            io::Error::new(e.kind(), format!("installing the seccomp filter: {e}"))
        }
    })?;
    let r = ask_attach(&stream, listener);
    // SAFETY: our descriptor of the listener; the engine holds its own.
    unsafe { libc::close(listener) };
    r
}

/// Hands the seccomp listener of a child this process launched to the
/// engine at `control`, which supervises it from then on, for as long as
/// any process is under the filter (background ones too), so this process
/// may exit first. The caller keeps (and closes) its `listener`.
pub fn hand_over(control: &std::path::Path, listener: RawFd) -> io::Result<()> {
    let stream = connect_engine(control)?;
    let r = ask_attach(&stream, listener);
    // SAFETY: prctl with plain integers; 0 clears the tracer we allowed.
    unsafe { libc::prctl(libc::PR_SET_PTRACER, 0 as libc::c_ulong, 0, 0, 0) };
    r
}

/// Asks the engine on `stream` to take `listener` from this process and
/// supervise it (`SeccompAttach`); `Ok` once it does.
fn ask_attach(stream: &UnixStream, listener: RawFd) -> io::Result<()> {
    // SAFETY: getpid cannot fail.
    let pid = unsafe { libc::getpid() } as u32;
    let mut buf = [0u8; MAX_FRAME];
    let n = Request::SeccompAttach { pid, listener }
        .encode(&mut buf)
        .map_err(io::Error::other)?;
    let sock = stream.as_raw_fd();
    write_all(sock, &buf[..n])?;
    read_exact(sock, &mut buf[..PREFIX_LEN])?;
    let total = control::frame_len([buf[0], buf[1]]).map_err(io::Error::other)?;
    read_exact(sock, &mut buf[PREFIX_LEN..total])?;
    match Reply::decode(&buf[..total]) {
        Ok((Reply::Done(0), _)) => Ok(()),
        Ok((Reply::Done(errno), _)) => Err(io::Error::from_raw_os_error(errno)),
        _ => Err(io::Error::other("unexpected answer from the engine")),
    }
}

/// Connects to the engine's control socket and lets the engine take
/// descriptors from this process.
fn connect_engine(control: &std::path::Path) -> io::Result<UnixStream> {
    let stream = UnixStream::connect(control)
        .map_err(|e| io::Error::new(e.kind(), format!("engine control socket: {e}")))?;
    // The engine takes the listener with pidfd_getfd, which needs ptrace
    // access to us; a shared engine is not our ancestor, so under Yama
    // (ptrace_scope 1) we name it as our tracer. Without Yama this fails
    // with EINVAL and is not needed. (Before the filter: it traps getsockopt.)
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED writes one ucred of `len` bytes into `cred`.
    let r = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r == 0 && cred.pid > 0 {
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_PTRACER, cred.pid as libc::c_ulong, 0, 0, 0) };
    }
    Ok(stream)
}

/// `write(2)` until done: `send` would be trapped by our own filter.
fn write_all(fd: RawFd, mut b: &[u8]) -> io::Result<()> {
    while !b.is_empty() {
        // SAFETY: writes from the live slice `b`.
        let n = unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        b = &b[n as usize..];
    }
    Ok(())
}

/// `read(2)` until full: `recv` would be trapped by our own filter.
fn read_exact(fd: RawFd, mut b: &mut [u8]) -> io::Result<()> {
    while !b.is_empty() {
        // SAFETY: reads into the live slice `b`.
        let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), b.len()) };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the engine closed the control connection",
            ));
        }
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        b = &mut b[n as usize..];
    }
    Ok(())
}

extern "C" {
    static environ: *const *const libc::c_char;
}

/// Step 4; returns only on failure.
fn execve(path: &OsString, argv: &[OsString]) -> io::Error {
    let Ok(p) = CString::new(path.as_bytes()) else {
        return io::Error::from_raw_os_error(libc::ENOENT);
    };
    let args: Vec<CString> = argv
        .iter()
        .filter_map(|a| CString::new(a.as_bytes()).ok())
        .collect();
    let mut argp: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argp.push(std::ptr::null());
    // The system call itself: were the shim loaded into this process, its
    // `execve` would hand the same program to us again. The environment is
    // ours as the shim handed it over (without itself in `LD_PRELOAD`).
    // SAFETY: `p` and `argp` are NUL-terminated and outlive the call;
    // `environ` is the process's NULL-terminated environment.
    unsafe { libc::syscall(libc::SYS_execve, p.as_ptr(), argp.as_ptr(), environ) };
    io::Error::last_os_error()
}
