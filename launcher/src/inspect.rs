//! What a program file is, as far as `LD_PRELOAD` is concerned: found on
//! `PATH` or not, executable or not, a script (and its interpreter) or an
//! ELF file, and for ELF files the facts that decide whether the dynamic
//! loader will load our shim into it — class (32/64-bit), machine, the
//! loader it asks for (`PT_INTERP`; none means statically linked), Go
//! (which makes its socket calls without libc), set-user-ID/set-group-ID
//! bits and file capabilities (secure execution: the loader ignores
//! `LD_PRELOAD` paths).
//!
//! Layers, so each can be used on its own (the doctor, the self-test and
//! the launcher's refusal of programs the shim cannot enter):
//! * [`ElfInfo`] and [`shebang`] — the file's bytes (in
//!   `control::program`, shared with the shim, which decides again for
//!   every program a carried process execs).
//! * [`resolve_command`] — `PATH` lookup as `execvp` does it.
//! * [`Program::inspect`] — one file: ELF, script with `#!`, or other.
//! * [`shim_entry`] — the verdict: a list of [`Check`]s saying whether the
//!   shim can enter the program and, if not, what to do.

use crate::report::{Check, Level};
use control::program::{read_head, MAX_INTERPRETER_DEPTH};
pub use control::program::{shebang, ElfInfo, ElfType};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a command could not be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// The command was empty.
    Empty,
    /// No file of that name in any `PATH` directory.
    NotOnPath(OsString),
    /// A path (with a `/`) that does not exist.
    Missing(PathBuf),
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::Empty => f.write_str("empty command"),
            ResolveError::NotOnPath(n) => {
                write!(f, "{} not found on PATH", n.to_string_lossy())
            }
            ResolveError::Missing(p) => write!(f, "{} does not exist", p.display()),
        }
    }
}

impl std::error::Error for ResolveError {}

/// Finds the file `execvp` would run for `name`: a name with a `/` is
/// used as it is; otherwise the first `PATH` entry holding a regular file
/// of that name that we may execute (or, failing that, the first one that
/// exists, so the caller can say it is not executable). `path` is the
/// `PATH` value (`None`: the default `/usr/local/bin:/usr/bin:/bin`).
pub fn resolve_command(name: &OsStr, path: Option<&OsStr>) -> Result<PathBuf, ResolveError> {
    if name.is_empty() {
        return Err(ResolveError::Empty);
    }
    if name.as_bytes().contains(&b'/') {
        let p = PathBuf::from(name);
        return if p.exists() {
            Ok(p)
        } else {
            Err(ResolveError::Missing(p))
        };
    }
    let default = OsStr::new("/usr/local/bin:/usr/bin:/bin");
    let mut found_not_exec = None;
    for dir in std::env::split_paths(path.unwrap_or(default)) {
        // An empty entry means the current directory.
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let cand = dir.join(name);
        if let Ok(m) = std::fs::metadata(&cand) {
            if m.is_file() {
                if executable_by_us(&cand) {
                    return Ok(cand);
                }
                found_not_exec.get_or_insert(cand);
            }
        }
    }
    found_not_exec.ok_or_else(|| ResolveError::NotOnPath(name.to_os_string()))
}

/// `access(path, X_OK)` for the real user (as `execve` will check).
pub fn executable_by_us(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

/// What a program file is.
#[derive(Debug)]
pub enum ProgramKind {
    /// An ELF file.
    Elf(ElfInfo),
    /// A script run by `interpreter` (from its `#!` line).
    Script {
        /// The interpreter path as written.
        interpreter: PathBuf,
        /// The optional argument on the `#!` line (e.g. `python3` for `/usr/bin/env python3`).
        arg: Option<OsString>,
    },
    /// Neither (the kernel refuses it; shells run such files as `sh` scripts).
    Other,
    /// Starts with `\x7fELF` but could not be parsed.
    BadElf(String),
}

/// One program file and the facts about it.
#[derive(Debug)]
pub struct Program {
    /// Its path.
    pub path: PathBuf,
    /// Permission bits, including set-user-ID (0o4000) and set-group-ID (0o2000).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Whether we may execute it.
    pub executable: bool,
    /// Whether it carries file capabilities (`security.capability`).
    pub capabilities: bool,
    /// ELF, script or other.
    pub kind: ProgramKind,
}

impl Program {
    /// Reads the metadata and the first bytes of `path`.
    pub fn inspect(path: &Path) -> io::Result<Program> {
        let meta = std::fs::metadata(path)?;
        if !meta.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        let head = read_head(&std::fs::File::open(path)?)?;
        let kind = if head.starts_with(b"\x7fELF") {
            match ElfInfo::from_path(path) {
                Ok(i) => ProgramKind::Elf(i),
                Err(e) => ProgramKind::BadElf(e.to_string()),
            }
        } else if let Some((interpreter, arg)) = shebang(&head) {
            ProgramKind::Script { interpreter, arg }
        } else {
            ProgramKind::Other
        };
        Ok(Program {
            path: path.to_path_buf(),
            mode: meta.permissions().mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            executable: executable_by_us(path),
            capabilities: has_file_capabilities(path),
            kind,
        })
    }

    /// Whether running it is "secure execution" for us (`AT_SECURE`): the
    /// loader then ignores `LD_PRELOAD` entries with a `/`.
    pub fn secure_execution(&self) -> Option<&'static str> {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        // The new effective id differs from the real one: AT_SECURE.
        if self.mode & 0o4000 != 0 && self.uid != uid {
            Some("set-user-ID")
        } else if self.mode & 0o2000 != 0 && self.gid != gid {
            Some("set-group-ID")
        } else if self.capabilities && uid != 0 {
            Some("file capabilities")
        } else {
            None
        }
    }
}

/// Whether `path` has a `security.capability` extended attribute.
fn has_file_capabilities(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let name = c"security.capability";
    // SAFETY: both strings are NUL-terminated and live through the call; a
    // null buffer with size 0 only asks for the attribute's length.
    let n = unsafe { libc::getxattr(c.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
    n > 0
}

/// Whether the shim can enter the program `argv0` (resolved on `path`),
/// following `#!` interpreters; `own` is the shim's architecture (the
/// running binary's). Each line is a [`Check`]; any [`Level::Fail`] means
/// the program's connections would not go through the tunnel.
pub fn shim_entry(argv0: &OsStr, path: Option<&OsStr>, own: &ElfInfo) -> Vec<Check> {
    let mut out = Vec::new();
    let shown = argv0.to_string_lossy().into_owned();
    let resolved = match resolve_command(argv0, path) {
        Ok(p) => p,
        Err(e) => {
            out.push(Check::fail(
                format!("command {shown}: {e}"),
                "check the spelling, install it, or give its full path",
            ));
            return out;
        }
    };
    if resolved.as_os_str() != argv0 {
        out.push(Check::ok(format!(
            "command {shown} is {}",
            resolved.display()
        )));
    }
    let mut file = resolved;
    for _ in 0..MAX_INTERPRETER_DEPTH {
        match entry_of_file(&file, own, &mut out) {
            Next::Done => return out,
            Next::Interpreter(interp, arg) => {
                // `#!/usr/bin/env NAME`: the program is NAME on PATH.
                let is_env = interp.file_name() == Some(OsStr::new("env"));
                match (is_env, arg) {
                    (true, Some(a)) => {
                        let name = a
                            .to_string_lossy()
                            .split_whitespace()
                            .find(|w| !w.starts_with('-'))
                            .map(OsString::from);
                        let Some(name) = name else {
                            return out;
                        };
                        match resolve_command(&name, path) {
                            Ok(p) => {
                                out.push(Check::ok(format!(
                                    "{} runs {} (through env)",
                                    file.display(),
                                    p.display()
                                )));
                                file = p;
                            }
                            Err(e) => {
                                out.push(Check::fail(
                                    format!("interpreter of {}: {e}", file.display()),
                                    "install the interpreter its #! line names",
                                ));
                                return out;
                            }
                        }
                    }
                    _ => file = interp,
                }
            }
        }
    }
    out.push(Check::warn(
        format!("{}: too many nested #! interpreters", file.display()),
        "the kernel refuses more than 4 levels; run the interpreter directly",
    ));
    out
}

/// What [`entry_of_file`] found.
enum Next {
    /// Verdict complete.
    Done,
    /// A script: look at its interpreter next.
    Interpreter(PathBuf, Option<OsString>),
}

/// How the launcher carries a program (see [`choose_mode`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModeChoice {
    /// The LD_PRELOAD shim can enter it.
    Preload,
    /// Seccomp user notification; `why`: the reason the shim cannot
    /// (`None` when forced).
    Seccomp {
        /// Why the shim cannot enter it, if that is the reason.
        why: Option<String>,
    },
    /// Neither mode carries it: this failed check says why.
    Refuse(Check),
}

/// Whether seccomp mode carries a program the shim cannot enter for the
/// reason in `c` (statically linked, musl, Go: the kernel sees their
/// system calls all the same).
fn seccomp_carries(c: &Check) -> bool {
    c.what.contains(STATIC_WHAT)
        || c.what.contains(MUSL_WHAT)
        || c.what.contains(GO_WHAT)
        || c.what.contains(CAPS_WHAT)
}

/// The interception mode for `argv0` (resolved on `path`) under `--mode`
/// `forced` (`None`: auto). Programs that cannot be launched at all get
/// the mode anyway (launching reports the error); set-user-ID programs and
/// other architectures are refused by both modes.
pub fn choose_mode(
    argv0: &OsStr,
    path: Option<&OsStr>,
    own: &ElfInfo,
    forced: Option<crate::cli::Mode>,
) -> ModeChoice {
    use crate::cli::Mode;
    let launchable = |c: &Check| {
        c.what.starts_with("command ")
            || c.what.ends_with("does not exist")
            || c.what.starts_with("cannot read ")
            || c.what.contains(" is not executable ")
            || c.what.contains("neither an ELF program")
            || c.what.starts_with("interpreter of ")
    };
    let fails: Vec<Check> = shim_entry(argv0, path, own)
        .into_iter()
        .filter(|c| c.level == Level::Fail && !launchable(c))
        .collect();
    match forced {
        Some(Mode::Preload) => match fails.into_iter().next() {
            Some(c) => ModeChoice::Refuse(c),
            None => ModeChoice::Preload,
        },
        Some(Mode::Seccomp) => match fails.into_iter().find(|c| !seccomp_carries(c)) {
            Some(c) => ModeChoice::Refuse(c),
            None => ModeChoice::Seccomp { why: None },
        },
        Some(Mode::Auto) | None => {
            if fails.is_empty() {
                ModeChoice::Preload
            } else if let Some(c) = fails.iter().find(|c| !seccomp_carries(c)) {
                ModeChoice::Refuse(c.clone())
            } else {
                ModeChoice::Seccomp {
                    why: fails.first().map(|c| c.what.clone()),
                }
            }
        }
    }
}

/// The doctor's view of a program: [`shim_entry`]'s checks — with what
/// seccomp mode carries shown as fine when the program gets that mode —
/// and one line naming the mode `wrapguard --mode=forced` (`None`: auto)
/// would use. `seccomp_unsupported`: why seccomp mode cannot run on this
/// machine, if it cannot.
pub fn mode_checks(
    argv0: &OsStr,
    path: Option<&OsStr>,
    own: &ElfInfo,
    forced: Option<crate::cli::Mode>,
    seccomp_unsupported: Option<String>,
) -> Vec<Check> {
    let mut checks = shim_entry(argv0, path, own);
    let shown = argv0.to_string_lossy();
    match choose_mode(argv0, path, own, forced) {
        ModeChoice::Preload => {
            if !checks.iter().any(|c| c.level == Level::Fail) {
                checks.push(Check::ok(format!(
                    "mode for {shown}: preload (the LD_PRELOAD shim carries its socket calls)"
                )));
            }
        }
        ModeChoice::Seccomp { .. } => {
            for c in checks.iter_mut() {
                if c.level == Level::Fail && seccomp_carries(c) {
                    // Without its capabilities: say what ICMP it then gets.
                    let caps = if c.what.contains(CAPS_WHAT) {
                        format!(" without them ({})", echo_sockets_note())
                    } else {
                        String::new()
                    };
                    *c = Check::ok(format!(
                        "{}: the shim cannot enter it, seccomp mode carries it{caps}",
                        carried_fact(&c.what)
                    ));
                }
            }
            checks.push(match seccomp_unsupported {
                None => Check::ok(format!(
                    "mode for {shown}: seccomp (its socket calls are trapped by a seccomp filter)"
                )),
                Some(e) => Check::fail(
                    format!("mode for {shown}: seccomp, but {e}"),
                    "run it on a newer kernel, or use a dynamically linked glibc build with --mode=preload",
                ),
            });
        }
        ModeChoice::Refuse(_) => checks.push(Check::fail(
            format!("mode for {shown}: none (wrapguard refuses to run it: see above)"),
            match forced {
                Some(crate::cli::Mode::Preload) => "drop --mode=preload (auto runs static, Go and musl programs in seccomp mode), or fix what is above",
                _ => "fix what is above",
            },
        )),
    }
    checks
}

/// The fact of a check that seccomp mode carries, without the consequence
/// that no longer holds ("X is statically linked (no program interpreter)").
fn carried_fact(what: &str) -> &str {
    for p in [STATIC_WHAT, MUSL_WHAT, GO_WHAT, CAPS_WHAT] {
        if let Some(i) = what.find(p) {
            return what[..i + p.len()].trim_end_matches(": ");
        }
    }
    what
}

/// What ICMP sockets a program without `CAP_NET_RAW` gets here: the host's
/// ping sockets when `net.ipv4.ping_group_range` holds one of our groups,
/// else wrapguard's stand-ins (`control::echo`), which reach tunnel
/// destinations only.
fn echo_sockets_note() -> &'static str {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").ok();
    let range = range.as_deref().and_then(|s| {
        let mut it = s.split_whitespace().map(|v| v.parse::<u32>().ok());
        Some((it.next()??, it.next()??))
    });
    // SAFETY: getegid takes no arguments and cannot fail.
    let mut groups = vec![unsafe { libc::getegid() }];
    let mut more = [0 as libc::gid_t; 256];
    // SAFETY: `more` holds 256 gids, the size passed.
    let n = unsafe { libc::getgroups(256, more.as_mut_ptr()) };
    if let Ok(n) = usize::try_from(n) {
        groups.extend_from_slice(&more[..n.min(more.len())]);
    }
    match range {
        Some((low, high)) if groups.iter().any(|g| low <= *g && *g <= high) => {
            "ping then uses the host's ping sockets"
        }
        _ => "no ping sockets for your groups here, net.ipv4.ping_group_range: ping gets wrapguard's echo sockets, which reach tunnel destinations only",
    }
}

/// Phrases of the [`Check`]s that name what seccomp mode can carry.
const STATIC_WHAT: &str = " is statically linked (no program interpreter)";
const MUSL_WHAT: &str = " is linked against musl libc";
const GO_WHAT: &str = " is a Go program: ";
/// The phrase of the [`Check`] of a program with file capabilities
/// (carried by seccomp mode, without them).
const CAPS_WHAT: &str = " has file capabilities";

fn entry_of_file(file: &Path, own: &ElfInfo, out: &mut Vec<Check>) -> Next {
    let shown = file.display();
    let p = match Program::inspect(file) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            out.push(Check::fail(
                format!("{shown} does not exist"),
                "install it or fix the path (for a script: its #! line)",
            ));
            return Next::Done;
        }
        Err(e) => {
            out.push(Check::fail(
                format!("cannot read {shown}: {e}"),
                "give a readable regular file",
            ));
            return Next::Done;
        }
    };
    let shown = p.path.display();
    if !p.executable {
        out.push(Check::fail(
            format!("{shown} is not executable (mode {:04o})", p.mode & 0o7777),
            format!("chmod +x {shown}"),
        ));
        return Next::Done;
    }
    match p.secure_execution() {
        // Seccomp mode carries it: its filter needs no_new_privs, under
        // which the kernel does not raise the capabilities at exec.
        Some("file capabilities") => out.push(Check::fail(
            format!("{shown}{CAPS_WHAT}: the loader ignores LD_PRELOAD for it"),
            format!(
                "wrapguard runs it in seccomp mode, without the capabilities (no_new_privs; {}); run as root to keep them",
                echo_sockets_note()
            ),
        )),
        Some(why) => out.push(Check::fail(
            format!("{shown} is {why}: the loader ignores LD_PRELOAD for it"),
            "run an unprivileged copy of the program (without the bit), or run it as its owner",
        )),
        None => {}
    }
    match p.kind {
        ProgramKind::Script { interpreter, arg } => {
            out.push(Check::ok(format!(
                "{shown} is a script for {}",
                interpreter.display()
            )));
            return Next::Interpreter(interpreter, arg);
        }
        ProgramKind::Other => out.push(Check::fail(
            format!("{shown} is neither an ELF program nor a #! script"),
            "add a #! line, or run it through its interpreter (e.g. -- sh FILE)",
        )),
        ProgramKind::BadElf(e) => out.push(Check::fail(
            format!("{shown}: {e}"),
            "reinstall the program",
        )),
        ProgramKind::Elf(info) => elf_entry(&shown.to_string(), &info, own, out),
    }
    Next::Done
}

fn elf_entry(shown: &str, info: &ElfInfo, own: &ElfInfo, out: &mut Vec<Check>) {
    let before = out.len();
    if !info.same_arch(own) {
        out.push(Check::fail(
            format!(
                "{shown} is {}, the shim is {}: the loader will not load it",
                info.arch(),
                own.arch()
            ),
            format!("use a {} build of the program", own.arch()),
        ));
    }
    if info.is_static() {
        out.push(Check::fail(
            format!("{shown}{STATIC_WHAT}: LD_PRELOAD cannot enter it, its traffic would bypass the tunnel"),
            "use a dynamically linked build of the program (e.g. your distribution's package)",
        ));
    } else if info.is_musl() {
        out.push(Check::fail(
            format!("{shown}{MUSL_WHAT}; the shim is built for glibc"),
            "use a glibc build of the program",
        ));
    }
    if info.go {
        out.push(Check::fail(
            format!("{shown}{GO_WHAT}Go makes its socket calls without libc, so the shim cannot see them"),
            "no LD_PRELOAD tool can carry it; use a kernel WireGuard interface (wg-quick) or the program's proxy settings",
        ));
    }
    if out.len() == before {
        out.push(Check::ok(format!(
            "{shown} is a dynamically linked {} program (loader {}): the shim can enter it",
            info.arch(),
            info.interpreter.as_deref().unwrap_or("?")
        )));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Level;
    #[test]
    fn resolves_on_path() {
        let sh = resolve_command(
            OsStr::new("sh"),
            Some(OsStr::new("/nonexistent:/bin:/usr/bin")),
        )
        .expect("sh is on PATH");
        assert!(sh.ends_with("sh"));
        assert_eq!(
            resolve_command(OsStr::new("no-such-cmd-xyz"), Some(OsStr::new("/bin"))),
            Err(ResolveError::NotOnPath("no-such-cmd-xyz".into()))
        );
        assert!(matches!(
            resolve_command(OsStr::new("./no/such"), None),
            Err(ResolveError::Missing(_))
        ));
        assert_eq!(
            resolve_command(OsStr::new(""), None),
            Err(ResolveError::Empty)
        );
    }

    #[test]
    fn verdicts_for_scripts_and_missing() {
        let own = ElfInfo::own().expect("own");
        let dir = std::env::temp_dir().join(format!("wg-inspect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let script = dir.join("s.sh");
        std::fs::write(&script, "#!/bin/sh\necho hi\n").expect("write");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let v = shim_entry(script.as_os_str(), None, &own);
        let text: Vec<String> = v.iter().map(|c| c.to_string()).collect();
        assert!(v.iter().all(|c| c.level != Level::Fail), "{text:#?}");
        assert!(
            text.iter().any(|l| l.contains("script for /bin/sh")),
            "{text:#?}"
        );
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let v = shim_entry(script.as_os_str(), None, &own);
        // Root may execute anything with any x bit; 0644 has none.
        assert!(
            v.iter()
                .any(|c| c.level == Level::Fail && c.to_string().contains("not executable")),
            "{v:#?}"
        );
        let v = shim_entry(
            OsStr::new("no-such-cmd-xyz"),
            Some(OsStr::new("/bin")),
            &own,
        );
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].level, Level::Fail);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn mode_per_program_and_flag() {
        use crate::cli::Mode;
        let own = ElfInfo::own().expect("own");
        let sh = OsStr::new("/bin/sh");
        assert_eq!(choose_mode(sh, None, &own, None), ModeChoice::Preload);
        assert_eq!(
            choose_mode(sh, None, &own, Some(Mode::Seccomp)),
            ModeChoice::Seccomp { why: None }
        );
        // A command that cannot be found: launching says so, in any mode.
        let missing = OsStr::new("no-such-cmd-xyz");
        assert_eq!(
            choose_mode(missing, Some(OsStr::new("/bin")), &own, None),
            ModeChoice::Preload
        );

        let dir = std::env::temp_dir().join(format!("wg-mode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let put = |name: &str, bytes: &[u8]| {
            let p = dir.join(name);
            std::fs::write(&p, bytes).expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            p
        };
        // /sbin/ldconfig is static-pie on glibc systems.
        let ldconfig = Path::new("/sbin/ldconfig");
        if ElfInfo::from_path(ldconfig).is_ok_and(|i| i.is_static() && i.same_arch(&own)) {
            let l = ldconfig.as_os_str();
            assert!(
                matches!(choose_mode(l, None, &own, None),
                    ModeChoice::Seccomp { why: Some(w) } if w.contains("statically linked")),
                "{:?}",
                choose_mode(l, None, &own, None)
            );
            assert!(matches!(
                choose_mode(l, None, &own, Some(Mode::Preload)),
                ModeChoice::Refuse(c) if c.what.contains("statically linked")
            ));
            // A script whose interpreter is static: seccomp too.
            let script = put("static-interp.sh", b"#!/sbin/ldconfig\n");
            assert!(matches!(
                choose_mode(script.as_os_str(), None, &own, None),
                ModeChoice::Seccomp { why: Some(_) }
            ));
        }
        // Another architecture (a bare AArch64 header): neither mode.
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2; // 64-bit
        h[5] = 1; // little-endian
        h[6] = 1;
        h[16] = 2; // ET_EXEC
        h[18] = 183; // AArch64
        let arm = put("arm64", &h);
        for forced in [None, Some(Mode::Seccomp), Some(Mode::Preload)] {
            assert!(
                matches!(
                    choose_mode(arm.as_os_str(), None, &own, forced),
                    ModeChoice::Refuse(ref c) if c.what.contains("AArch64")
                ),
                "{forced:?}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
