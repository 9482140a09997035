//! Network namespaces we create (and delete on drop, with every process in
//! them, even after a panic) and background processes killed on drop.

use crate::leakguard::LeakGuard;
use crate::COUNTER;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Whether `tool` is an executable on PATH.
pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p)
            .any(|d| std::fs::metadata(d.join(tool)).is_ok_and(|m| m.is_file()))
    })
}

/// Runs a command, panicking with its output if it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Moves the calling thread into the named network namespace.
pub fn enter_netns(name: &str) {
    let path = format!("/var/run/netns/{name}");
    let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    // SAFETY: setns(2) on an fd we own for the duration of the call; it
    // changes only the calling thread's network namespace.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

/// A network namespace, deleted (with every process in it) on drop.
///
/// If it has a leak guard (started by [`Netns::leak_guard`], which
/// [`crate::WgPeer::new`] calls on the client namespace), the drop checks it
/// after the processes are killed and fails the test with the list of
/// leaked packets.
pub struct Netns {
    /// Its name.
    pub name: String,
    guard: OnceLock<LeakGuard>,
}

impl Netns {
    /// A fresh namespace with loopback up.
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("wge{tag}{}x{n}", std::process::id());
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns {
            name,
            guard: OnceLock::new(),
        };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's leak guard, started on first use: from then on every
    /// packet leaving a non-loopback interface outside the WireGuard flow
    /// fails the test when the namespace is dropped.
    pub fn leak_guard(&self) -> &LeakGuard {
        self.guard.get_or_init(|| LeakGuard::start(&self.name))
    }

    /// Guards this namespace as the wrapguard side of a peer reached at
    /// `underlay`/`underlay6` whose tunnel ranges are `ranges`: UDP to the
    /// underlay is the WireGuard flow, and default routes toward the peer
    /// (added if there is none yet) are the bait that makes an escaped
    /// packet leave — and be seen — instead of failing with ENETUNREACH.
    pub(crate) fn guard_peer(&self, underlay: &str, underlay6: &str, ranges: &[String]) {
        let g = self.leak_guard();
        for ip in [underlay, underlay6] {
            g.allow_endpoint(ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}")));
        }
        for r in ranges {
            g.add_tunnel_range(r);
        }
        for (family, via) in [("-4", underlay), ("-6", underlay6)] {
            let has = Command::new("ip")
                .args(["-n", &self.name, family, "route", "show", "default"])
                .output()
                .is_ok_and(|o| !o.stdout.is_empty());
            if !has {
                self.ip(&[family, "route", "add", "default", "via", via]);
            }
        }
    }

    /// `ip -n <ns> args…`.
    pub fn ip(&self, args: &[&str]) {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        sh(&v);
    }

    /// `ip netns exec <ns> argv…` as a command to configure further.
    pub fn cmd(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]);
        c.args(argv);
        c.stdin(Stdio::null());
        c
    }

    /// Runs `argv` in the namespace and returns its output.
    pub fn run(&self, argv: &[&str]) -> Output {
        self.cmd(argv)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"))
    }

    /// Starts `argv` in the namespace in the background, output to `log`.
    pub fn spawn(&self, argv: &[&str], log: &Path) -> Bg {
        let f = std::fs::File::create(log).expect("log file");
        let f2 = f.try_clone().expect("log file clone");
        let child = self
            .cmd(argv)
            .stdout(f)
            .stderr(f2)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
        Bg { child }
    }

    /// A veth pair from this namespace to `other`, both ends up, with
    /// `addr` (CIDR) here and `other_addr` there; returns the two names.
    pub fn veth_to(&self, other: &Netns, addr: &str, other_addr: &str) -> (String, String) {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let (va, vb) = (
            format!("wa{}x{n}", std::process::id()),
            format!("wb{}x{n}", std::process::id()),
        );
        sh(&[
            "ip",
            "link",
            "add",
            &va,
            "netns",
            &self.name,
            "type",
            "veth",
            "peer",
            "name",
            &vb,
            "netns",
            &other.name,
        ]);
        self.ip(&["addr", "add", addr, "dev", &va]);
        self.ip(&["link", "set", &va, "up"]);
        other.ip(&["addr", "add", other_addr, "dev", &vb]);
        other.ip(&["link", "set", &vb, "up"]);
        (va, vb)
    }

    /// The pid of a process in the namespace whose command is `comm`.
    pub fn pid_named(&self, comm: &str) -> Option<i32> {
        let out = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
            .find(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm)
            })
    }

    /// Sends `sig` to the process of the namespace whose command is `comm`
    /// (a wrapguard started there); panics if there is none or the signal
    /// cannot be sent.
    pub fn signal(&self, comm: &str, sig: i32) {
        let pid = self
            .pid_named(comm)
            .unwrap_or_else(|| panic!("no {comm} in {}", self.name));
        // SAFETY: kill(2) on a process living in our own namespace.
        let r = unsafe { libc::kill(pid, sig) };
        assert_eq!(
            r,
            0,
            "kill {pid} ({comm}): {}",
            std::io::Error::last_os_error()
        );
    }

    /// Waits until something listens on TCP `port` in the namespace.
    pub fn wait_tcp_listen(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let filter = format!("sport = :{port}");
        while Instant::now() < deadline {
            let out = self.run(&["ss", "-Hltn", &filter]);
            if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nothing listens on port {port} in {}", self.name);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.kill_all();
        // After the kills: nothing more can be sent.
        let verdict = self.guard.get().map(LeakGuard::finish_once);
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        if let Some(Err(report)) = verdict {
            if std::thread::panicking() {
                eprintln!("{report}");
            } else {
                panic!("{report}");
            }
        }
    }
}

impl Netns {
    /// SIGKILLs every process in the namespace.
    fn kill_all(&self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    // SAFETY: plain kill(2) on a pid living in our own namespace.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
    }
}

/// A background process, killed on drop.
pub struct Bg {
    /// The process.
    pub child: Child,
}

impl Bg {
    /// Sends SIGTERM and waits up to 5 s for the exit.
    pub fn terminate(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
