//! The wrapguard under test and the one way to run a program under it:
//! `timeout <secs> wrapguard --config <conf> [flags] -- argv` inside a
//! namespace (in a [`Netns`] joined to a peer, the namespace's leak guard
//! watches every run).

use crate::keys::{pubkey, Keys};
use crate::netns::{Bg, Netns};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The default wall-clock limit of a wrapped run, in seconds.
pub const RUN_LIMIT_SECS: u32 = 55;

/// A `wrapguard` binary with its `libwrapguard.so` beside it, and the real
/// python3 the tests run under it.
pub struct Wrapguard {
    /// Directory with both files.
    pub dir: PathBuf,
    /// The `wrapguard` binary.
    pub bin: PathBuf,
    /// The `libwrapguard.so` beside it.
    pub shim: PathBuf,
    /// A real python3 executable (not a shell shim).
    pub python: PathBuf,
}

static UNDER_TEST: OnceLock<Wrapguard> = OnceLock::new();

impl Wrapguard {
    /// The wrapguard of the launcher's integration tests, prepared once per
    /// test process: the binary cargo built for them
    /// (`CARGO_BIN_EXE_wrapguard`, else `wrapguard` two directories above
    /// the test executable) copied into `<target>/e2e-bin`, with a
    /// `libwrapguard.so` built beside it (in its own target directory, so no
    /// lock is shared with the cargo running the test).
    pub fn under_test() -> &'static Wrapguard {
        UNDER_TEST.get_or_init(|| {
            let exe = std::env::var_os("CARGO_BIN_EXE_wrapguard")
                .map(PathBuf::from)
                .or_else(|| {
                    let me = std::env::current_exe().ok()?;
                    Some(me.parent()?.parent()?.join("wrapguard"))
                })
                .expect("the wrapguard binary of the tests (CARGO_BIN_EXE_wrapguard)");
            Wrapguard::prepare(&exe)
        })
    }

    /// Copies `exe` into `<target>/e2e-bin` and builds the shim beside it.
    fn prepare(exe: &Path) -> Wrapguard {
        let target = exe
            .parent()
            .and_then(Path::parent)
            .expect("target dir above the binary")
            .to_path_buf();
        let shim_target = target.join("e2e-shim");
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let st = Command::new(cargo)
            .current_dir(workspace)
            .args(["build", "-q", "-p", "wrapguard-preload", "--target-dir"])
            .arg(&shim_target)
            .status()
            .expect("run cargo build for the shim");
        assert!(st.success(), "building libwrapguard.so failed");
        let dir = target.join("e2e-bin");
        std::fs::create_dir_all(&dir).expect("e2e-bin dir");
        let bin = dir.join("wrapguard");
        let shim = dir.join("libwrapguard.so");
        copy_atomic(exe, &bin);
        copy_atomic(&shim_target.join("debug").join("libwrapguard.so"), &shim);
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 is needed by the end-to-end tests");
        let python = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Wrapguard {
            dir,
            bin,
            shim,
            python,
        }
    }

    /// `timeout secs wrapguard --config conf [flags] -- argv`.
    pub fn argv(&self, conf: &Path, flags: &[&str], argv: &[&str], secs: u32) -> Vec<String> {
        let mut v = vec![
            "timeout".to_string(),
            secs.to_string(),
            self.bin.display().to_string(),
            "--config".to_string(),
            conf.display().to_string(),
        ];
        v.extend(flags.iter().map(|f| f.to_string()));
        v.push("--".to_string());
        v.extend(argv.iter().map(|a| a.to_string()));
        v
    }

    /// `wrapguard args…` as a command to run directly (stdin closed): for
    /// runs that send no packet (`--doctor`, `--help`, a refused launch).
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args).stdin(std::process::Stdio::null());
        c
    }

    /// A key pair from this wrapguard's own `genkey` / `pubkey`.
    pub fn keys(&self) -> Keys {
        let out = Command::new(&self.bin)
            .arg("genkey")
            .output()
            .expect("genkey");
        let private = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let public = pubkey(Command::new(&self.bin).arg("pubkey"), &private);
        Keys { private, public }
    }
}

/// Runs `wrapguard args…` directly, in the test's own namespace: for runs
/// that send no packet (`--doctor`, `--help`, a refused launch).
pub fn wrapguard_direct<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Wrapguard::under_test()
        .command(args)
        .output()
        .expect("run wrapguard")
}

/// `cmd.output()`, retried while the executable just copied for the test
/// is busy: another test thread may have forked while the copy's file was
/// open for writing, and its child holds that descriptor until it execs
/// (ETXTBSY, errno 26, in the meantime).
pub fn output_retrying(cmd: &mut Command) -> std::io::Result<Output> {
    let mut tries = 0;
    loop {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(26) && tries < 200 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

/// The lines of `--doctor` / `--self-test` output at `level` (`ok`,
/// `warn`, `fail`).
pub fn lines_at<'a>(out: &'a str, level: &str) -> Vec<&'a str> {
    out.lines()
        .filter(|l| l.starts_with(&format!("{level:<4}  ")))
        .collect()
}

fn copy_atomic(from: &Path, to: &Path) {
    let tmp = to.with_extension(format!("tmp{}", std::process::id()));
    std::fs::copy(from, &tmp)
        .unwrap_or_else(|e| panic!("copy {} -> {}: {e}", from.display(), tmp.display()));
    std::fs::rename(&tmp, to).expect("rename into place");
}

/// Runs `wrapguard --config conf [flags] -- argv` in `ns` with the default
/// wall-clock limit ([`RUN_LIMIT_SECS`]).
pub fn wrapguard(ns: &Netns, conf: &Path, flags: &[&str], argv: &[&str]) -> Output {
    wrapguard_limit(ns, conf, flags, argv, RUN_LIMIT_SECS)
}

/// [`wrapguard`] with a wall-clock limit of `secs`.
pub fn wrapguard_limit(
    ns: &Netns,
    conf: &Path,
    flags: &[&str],
    argv: &[&str],
    secs: u32,
) -> Output {
    let v = Wrapguard::under_test().argv(conf, flags, argv, secs);
    ns.run(&v.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Starts `timeout secs wrapguard --config conf [flags] -- argv` in `ns` in
/// the background, output to `log`.
pub fn spawn_wrapguard(
    ns: &Netns,
    conf: &Path,
    flags: &[&str],
    argv: &[&str],
    log: &Path,
    secs: u32,
) -> Bg {
    let v = Wrapguard::under_test().argv(conf, flags, argv, secs);
    ns.spawn(&v.iter().map(String::as_str).collect::<Vec<_>>(), log)
}

/// The real python3 executable, as an argument.
pub fn python() -> String {
    Wrapguard::under_test().python.display().to_string()
}
