//! The helper programs, run as `e2e __<name> args…` (the bench binary
//! re-executed): small Rust clients and servers, so the timing is not
//! that of an interpreter.
//!
//! - `__rr-server ADDR`: accepts, reads 1 byte, writes 1 byte, closes.
//! - `__rr-client ADDR N`: N × (connect, write 1 byte, read 1 byte, close);
//!   prints `RR <n> <p50 µs> <p99 µs> <mean µs>`.
//! - `__echo-server ADDR`: echoes on any number of connections (mio).
//! - `__hold-client ADDR STEP…`: prints `READY`, then for each STEP opens
//!   connections up to that many (each exchanging 64 bytes with the echo
//!   server), exchanges once more on all of them, prints `HELD <n>` and
//!   waits for a line on stdin before going on. Above
//!   [`CONNS_PER_PROCESS`] connections it splits the work over child
//!   processes (each inherits the shim), so no one process needs more
//!   descriptors than a 20,000 hard `RLIMIT_NOFILE` allows (the shim keeps
//!   two per tunnelled socket).

use crate::table::quantile;
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Runs helper `cmd`; returns the exit code.
pub fn run(cmd: &str, args: &[String]) -> i32 {
    let addr = args.first().and_then(|a| a.parse::<SocketAddr>().ok());
    let Some(addr) = addr else {
        eprintln!("{cmd}: first argument must be ADDR:PORT");
        return 2;
    };
    let nums: Vec<usize> = args[1..].iter().filter_map(|a| a.parse().ok()).collect();
    let r = match cmd {
        "__rr-server" => rr_server(addr),
        "__rr-client" => rr_client(addr, nums.first().copied().unwrap_or(1000)),
        "__echo-server" => echo_server(addr),
        "__hold-client" => match hold_processes(&nums) {
            0 | 1 => hold_client(addr, &nums),
            procs => hold_split(addr, &nums, procs),
        },
        _ => Err(std::io::Error::other(format!("unknown helper {cmd}"))),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{cmd}: {e}");
            1
        }
    }
}

fn rr_server(addr: SocketAddr) -> std::io::Result<()> {
    let l = TcpListener::bind(addr)?;
    loop {
        let Ok((mut s, _)) = l.accept() else { continue };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut b = [0u8; 1];
        if s.read_exact(&mut b).is_ok() {
            let _ = s.write_all(&b);
        }
    }
}

fn rr_client(addr: SocketAddr, n: usize) -> std::io::Result<()> {
    let once = || -> std::io::Result<Duration> {
        let t = Instant::now();
        let mut s = TcpStream::connect(addr)?;
        s.write_all(b"x")?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b)?;
        let d = t.elapsed();
        if &b != b"x" {
            return Err(std::io::Error::other("wrong reply byte"));
        }
        Ok(d)
    };
    for _ in 0..n / 100 {
        once()?; // warm-up, not counted
    }
    let mut us = Vec::with_capacity(n);
    for _ in 0..n {
        us.push(once()?.as_secs_f64() * 1e6);
    }
    let mean = us.iter().sum::<f64>() / us.len().max(1) as f64;
    us.sort_by(|a, b| a.total_cmp(b));
    println!(
        "RR {} {:.1} {:.1} {:.1}",
        us.len(),
        quantile(&us, 0.5),
        quantile(&us, 0.99),
        mean
    );
    Ok(())
}

fn echo_server(addr: SocketAddr) -> std::io::Result<()> {
    use mio::net::TcpListener;
    use mio::{Events, Interest, Poll, Token};
    let mut poll = Poll::new()?;
    let mut l = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut l, Token(usize::MAX), Interest::READABLE)?;
    let mut conns: std::collections::HashMap<usize, mio::net::TcpStream> = Default::default();
    let mut next = 0usize;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        poll.poll(&mut events, None)?;
        for ev in events.iter() {
            if ev.token() == Token(usize::MAX) {
                while let Ok((mut s, _)) = l.accept() {
                    next += 1;
                    poll.registry()
                        .register(&mut s, Token(next), Interest::READABLE)?;
                    conns.insert(next, s);
                }
                continue;
            }
            let id = ev.token().0;
            let mut close = false;
            if let Some(s) = conns.get_mut(&id) {
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => {
                            close = true;
                            break;
                        }
                        // Small messages: the send buffer always has room.
                        Ok(n) => close = s.write_all(&buf[..n]).is_err(),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            close = true;
                            break;
                        }
                    }
                }
            }
            if close {
                conns.remove(&id);
            }
        }
    }
}

/// Most connections one hold-client process opens.
const CONNS_PER_PROCESS: usize = 4_000;

/// How many processes hold `steps` (1 inside a child of [`hold_split`]).
fn hold_processes(steps: &[usize]) -> usize {
    if std::env::var_os("E2E_HOLD_CHILD").is_some() {
        return 1;
    }
    steps
        .iter()
        .max()
        .map_or(1, |&n| n.div_ceil(CONNS_PER_PROCESS))
}

/// `__hold-client` over `procs` child processes: each holds its share of
/// every step; the parent speaks the same READY/HELD protocol with the
/// summed counts.
fn hold_split(addr: SocketAddr, steps: &[usize], procs: usize) -> std::io::Result<()> {
    use std::process::{Command, Stdio};
    let me = std::env::current_exe()?;
    let mut kids = Vec::new();
    for i in 0..procs {
        let share: Vec<String> = steps
            .iter()
            .map(|&s| (s / procs + usize::from(i < s % procs)).to_string())
            .collect();
        let mut child = Command::new(&me)
            .arg("__hold-client")
            .arg(addr.to_string())
            .args(&share)
            .env("E2E_HOLD_CHILD", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(std::io::Error::other("hold child without pipes"));
        };
        kids.push((stdin, std::io::BufReader::new(stdout), child));
    }
    // The next line of every child: its count after "HELD", or 0 for READY.
    let gather = |kids: &mut Vec<(_, std::io::BufReader<_>, _)>| -> std::io::Result<usize> {
        let mut total = 0;
        for (_, out, _) in kids.iter_mut() {
            let mut line = String::new();
            if out.read_line(&mut line)? == 0 {
                return Err(std::io::Error::other("a hold child ended early"));
            }
            total += line
                .trim()
                .strip_prefix("HELD ")
                .and_then(|k| k.parse::<usize>().ok())
                .unwrap_or(0);
        }
        Ok(total)
    };
    let go_on = |kids: &mut Vec<(std::process::ChildStdin, _, _)>| -> std::io::Result<()> {
        let mut line = String::new();
        std::io::stdout().flush()?;
        std::io::stdin().lock().read_line(&mut line)?;
        for (input, _, _) in kids.iter_mut() {
            input.write_all(b"\n")?;
        }
        Ok(())
    };
    gather(&mut kids)?;
    println!("READY");
    go_on(&mut kids)?;
    let mut result = Ok(());
    for _ in steps {
        match gather(&mut kids) {
            Ok(total) => println!("HELD {total}"),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
        go_on(&mut kids)?;
    }
    for (input, _, mut child) in kids {
        drop(input);
        if !child.wait()?.success() && result.is_ok() {
            result = Err(std::io::Error::other("a hold child failed"));
        }
    }
    result
}

fn hold_client(addr: SocketAddr, steps: &[usize]) -> std::io::Result<()> {
    let stdin = std::io::stdin();
    let mut line = String::new();
    let mut wait = || -> std::io::Result<()> {
        std::io::stdout().flush()?;
        line.clear();
        stdin.lock().read_line(&mut line)?;
        Ok(())
    };
    println!("READY");
    wait()?;
    let msg = [0x5au8; 64];
    let exchange = |s: &mut TcpStream| -> std::io::Result<()> {
        s.write_all(&msg)?;
        let mut back = [0u8; 64];
        s.read_exact(&mut back)?;
        if back != msg {
            return Err(std::io::Error::other("echo mismatch"));
        }
        Ok(())
    };
    let mut held: Vec<TcpStream> = Vec::new();
    let mut failed = None;
    for &target in steps {
        while held.len() < target && failed.is_none() {
            match TcpStream::connect(addr) {
                Ok(mut s) => {
                    s.set_read_timeout(Some(Duration::from_secs(30)))?;
                    exchange(&mut s)?;
                    held.push(s);
                }
                // Report what was reached (RSS is still measured there).
                Err(e) => failed = Some(format!("connection {}: {e}", held.len() + 1)),
            }
        }
        for s in held.iter_mut() {
            exchange(s)?;
        }
        println!("HELD {}", held.len());
        wait()?;
        if let Some(e) = failed {
            return Err(std::io::Error::other(e));
        }
    }
    Ok(())
}
