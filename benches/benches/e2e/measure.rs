//! What the bench reads from the system: CPU time and RSS of a process
//! from /proc (CPU after it exited, before it is reaped), the load average,
//! and the file-descriptor limit.

use std::process::{Child, ExitStatus};

/// CPU time and exit status of a finished child.
pub struct Finished {
    /// How it ended.
    pub status: ExitStatus,
    /// utime + stime of the process itself (all its threads, not its
    /// children), in seconds.
    pub cpu_secs: f64,
}

/// Waits for `child` to exit, reads its own CPU time from /proc while it
/// is a zombie, then reaps it.
pub fn wait_with_cpu(child: &mut Child) -> std::io::Result<Finished> {
    let pid = child.id();
    // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waitid on our own child with WNOWAIT leaves it reapable;
        // `info` is a valid, writable siginfo_t.
        let r = unsafe { libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if r == 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    let cpu_secs = proc_cpu_secs(pid).unwrap_or(f64::NAN);
    let status = child.wait()?;
    Ok(Finished { status, cpu_secs })
}

/// utime + stime of `pid` in seconds (fields 14 and 15 of /proc/pid/stat).
pub fn proc_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields count from after ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14 → index 11.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / hz)
}

/// Busy CPU seconds of the whole machine since boot, all cores: user,
/// nice, system, irq and softirq time from /proc/stat (not idle, iowait
/// or steal).
pub fn machine_busy_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<f64> = cpu
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // user nice system idle iowait irq softirq steal …
    let busy = [0, 1, 2, 5, 6]
        .iter()
        .map(|&i| f.get(i).copied().unwrap_or(0.0));
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(busy.sum::<f64>() / hz)
}

/// The processes of network namespace `ns` now (`ip netns pids`).
pub fn netns_pids(ns: &str) -> Vec<u32> {
    std::process::Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// CPU seconds the machine spent on one client run, less what the
/// processes of the servers' side spent: taken at the start with
/// [`SideCpu::start`], read with [`SideCpu::secs`] when the client has
/// exited. What is left is the client side's whole cost: the client
/// program, its tunnel process, and the kernel's networking (including
/// the softirq work of the servers' side, which every system pays alike).
pub struct SideCpu {
    busy: f64,
    servers: Vec<(u32, f64)>,
}

impl SideCpu {
    /// Starts counting; the servers are the processes of namespace `ns`.
    pub fn start(ns: &str) -> Option<SideCpu> {
        let servers = netns_pids(ns)
            .into_iter()
            .filter_map(|p| Some((p, proc_cpu_secs(p)?)))
            .collect();
        Some(SideCpu {
            busy: machine_busy_secs()?,
            servers,
        })
    }

    /// Machine busy time since [`SideCpu::start`] less the servers'.
    pub fn secs(&self) -> Option<f64> {
        let busy = machine_busy_secs()? - self.busy;
        let servers: f64 = self
            .servers
            .iter()
            .filter_map(|&(p, t0)| Some(proc_cpu_secs(p)? - t0))
            .sum();
        Some(busy - servers)
    }
}

/// `VmRSS` and `VmHWM` (peak) of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Follows `pid` until it exits (or becomes a zombie) and returns its
/// peak RSS (`VmHWM`) in KiB, read every 200 ms.
pub fn watch_peak_rss(pid: u32) -> std::thread::JoinHandle<Option<u64>> {
    std::thread::spawn(move || {
        let mut peak = None;
        while let Some((_, hwm)) = rss_kib(pid) {
            peak = peak.max(Some(hwm));
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        peak
    })
}

/// The load average line, to print beside every figure.
pub fn uptime() -> String {
    let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let v: Vec<&str> = l.split_whitespace().take(3).collect();
    format!("load average {}", v.join(", "))
}

/// Raises the RLIMIT_NOFILE soft limit towards `n` (the hard limit too if
/// allowed); children inherit it. Returns the soft limit in force.
pub fn raise_nofile(n: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        let want = libc::rlimit {
            rlim_cur: lim.rlim_cur.max(n),
            rlim_max: lim.rlim_max.max(n),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
            return want.rlim_cur;
        }
        // No CAP_SYS_RESOURCE: the hard limit is as far as we go.
        lim.rlim_cur = lim.rlim_max.min(n).max(lim.rlim_cur);
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
            lim.rlim_cur
        } else {
            0
        }
    }
}
