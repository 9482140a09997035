//! Keeping the tunnel across `exec`: if a program hands a child an
//! environment without our `LD_PRELOAD` entry or `WRAPGUARD_*` variables,
//! they are put back (our library first in `LD_PRELOAD`, existing entries
//! kept). Hooked: `execve`, `execv`, `execvp`, `execvpe`, `posix_spawn`,
//! `posix_spawnp`. Not hooked: the variadic `execl*` (glibc calls its
//! internal `execve` from them) — they pass `environ`, which a program
//! rarely clears.
//!
//! The entries are built once at load time; an exec whose environment is
//! intact allocates nothing for it (it may run in a `vfork` child).
//!
//! Auto mode also follows the program into what it execs: every hook
//! first reads the target (`control::program::exec_needs_seccomp`; for the
//! `p` variants after the `PATH` search `execvp` does), and a statically
//! linked, musl or Go program — which the shim could not enter — is exec'd
//! through `wrapguard` instead (`$WRAPGUARD_LAUNCHER`
//! `--internal-seccomp-exec PATH ARGV…`), which puts the process under
//! seccomp mode before it becomes that program. Without
//! `WRAPGUARD_LAUNCHER` (`--mode=preload`) the exec goes ahead as it is.

use crate::real;
use control::program::{exec_needs_seccomp, ElfInfo};
use libc::{c_char, c_int, pid_t};
use std::ffi::{CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

struct ExecEnv {
    /// Path of libwrapguard.so.
    preload: Vec<u8>,
    /// `WRAPGUARD_CONTROL=…`, `WRAPGUARD_PRELOAD=…` and, in auto mode,
    /// `WRAPGUARD_LAUNCHER=…`.
    required: Vec<CString>,
    /// Path of `wrapguard`, in auto mode (the seccomp hand-off).
    launcher: Option<CString>,
    /// `WRAPGUARD_HOLD=…` ([`crate::hold`]): replaces any other value.
    hold: Option<CString>,
}

static EXEC_ENV: OnceLock<Option<ExecEnv>> = OnceLock::new();

/// Reads what must survive exec from the environment (called at load).
pub fn init() {
    EXEC_ENV.get_or_init(|| {
        let control = crate::env::env_bytes(control::ENV_CONTROL)?;
        let preload = crate::env::env_bytes(control::ENV_PRELOAD)?;
        let launcher = crate::env::env_bytes(control::ENV_LAUNCHER).filter(|l| !l.is_empty());
        let mut required = Vec::new();
        for (k, v) in [
            (control::ENV_CONTROL, Some(&control)),
            (control::ENV_PRELOAD, Some(&preload)),
            (control::ENV_LAUNCHER, launcher.as_ref()),
        ] {
            let Some(v) = v else { continue };
            let mut s = k.as_bytes().to_vec();
            s.push(b'=');
            s.extend_from_slice(v);
            required.push(CString::new(s).ok()?);
        }
        let launcher = match launcher {
            Some(l) => Some(CString::new(l).ok()?),
            None => None,
        };
        Some(ExecEnv {
            preload,
            required,
            launcher,
            hold: crate::hold::env_entry().cloned(),
        })
    });
}

/// The entries of a NULL-terminated array of pointers (`argv`, `envp`);
/// none for a null array.
///
/// # Safety
/// `arr` must be null or a NULL-terminated array that stays valid while
/// the iterator is used.
unsafe fn c_array(arr: *const *const c_char) -> impl Iterator<Item = *const c_char> {
    let mut i = 0;
    std::iter::from_fn(move || {
        if arr.is_null() {
            return None;
        }
        // SAFETY: within the NULL-terminated array per the caller (we stop
        // at its terminator).
        let p = unsafe { *arr.add(i) };
        i += 1;
        (!p.is_null()).then_some(p)
    })
    .fuse()
}

/// An environment block rebuilt with our entries; keeps its storage alive.
struct Fixed {
    _owned: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

/// The entries of an `LD_PRELOAD` value (the loader splits on `:` and ` `).
fn preload_entries(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b':' || *b == b' ')
        .filter(|e| !e.is_empty())
}

fn has_preload(value: &[u8], ours: &[u8]) -> bool {
    preload_entries(value).any(|e| e == ours)
}

/// `LD_PRELOAD=` followed by `value`, kept alive in `owned` and pointed to
/// from `ptrs`; `None` if it cannot be a C string.
fn push_preload(
    owned: &mut Vec<CString>,
    ptrs: &mut Vec<*const c_char>,
    value: &[u8],
) -> Option<()> {
    let mut s = b"LD_PRELOAD=".to_vec();
    s.extend_from_slice(value);
    let c = CString::new(s).ok()?;
    ptrs.push(c.as_ptr());
    owned.push(c);
    Some(())
}

/// `envp` with our variables, and our library in `LD_PRELOAD` when `shim`
/// (an exec the shim enters) or out of it otherwise (the seccomp hand-off:
/// `wrapguard` and the program after it run without the shim). Returns
/// `None` when `envp` is already so (the common case).
///
/// # Safety
/// `envp` must be null or a valid NULL-terminated array of C strings.
unsafe fn fix(envp: *const *const c_char, shim: bool) -> Option<Fixed> {
    let env = EXEC_ENV.get()?.as_ref()?;
    let mut entries: Vec<&CStr> = Vec::new();
    let mut ours_in = false;
    let mut seen = [false; 3];
    let hold_key = hold_key();
    // Ours is in (or we have none), and no other value is.
    let mut hold_ok = true;
    let mut hold_in = env.hold.is_none();
    // SAFETY: per the caller.
    for p in unsafe { c_array(envp) } {
        // SAFETY: each entry is a C string.
        let e = unsafe { CStr::from_ptr(p) };
        let b = e.to_bytes();
        if b.starts_with(hold_key) {
            if env.hold.as_ref().is_some_and(|h| h.as_bytes() == b) {
                hold_in = true;
            } else {
                hold_ok = false;
            }
        }
        if let Some(v) = b.strip_prefix(b"LD_PRELOAD=") {
            ours_in = has_preload(v, &env.preload);
        }
        for (j, req) in env.required.iter().enumerate() {
            let key_len = req.as_bytes().iter().position(|c| *c == b'=').unwrap_or(0) + 1;
            if b.starts_with(&req.as_bytes()[..key_len]) {
                seen[j] = true;
            }
        }
        entries.push(e);
    }
    if ours_in == shim && hold_ok && hold_in && seen[..env.required.len()].iter().all(|s| *s) {
        return None;
    }
    // From here on we allocate: only when the program changed the environment.
    let mut owned = Vec::new();
    let mut ptrs: Vec<*const c_char> = Vec::with_capacity(entries.len() + 4);
    let mut preload_done = false;
    for e in &entries {
        let b = e.to_bytes();
        if b.starts_with(hold_key) {
            continue; // ours is added below
        }
        if let Some(v) = b.strip_prefix(b"LD_PRELOAD=") {
            if preload_done {
                continue;
            }
            preload_done = true;
            let has = has_preload(v, &env.preload);
            if shim && !has {
                let mut value = env.preload.clone();
                if !v.is_empty() {
                    value.push(b':');
                    value.extend_from_slice(v);
                }
                push_preload(&mut owned, &mut ptrs, &value)?;
                continue;
            }
            if !shim && has {
                let rest: Vec<&[u8]> = preload_entries(v)
                    .filter(|x| *x != env.preload.as_slice())
                    .collect();
                if !rest.is_empty() {
                    push_preload(&mut owned, &mut ptrs, &rest.join(&b':'))?;
                }
                continue;
            }
        }
        ptrs.push(e.as_ptr());
    }
    if !preload_done && shim {
        push_preload(&mut owned, &mut ptrs, &env.preload)?;
    }
    for (j, req) in env.required.iter().enumerate() {
        if !seen[j] {
            ptrs.push(req.as_ptr());
        }
    }
    if let Some(h) = &env.hold {
        ptrs.push(h.as_ptr());
    }
    ptrs.push(std::ptr::null());
    Some(Fixed {
        _owned: owned,
        ptrs,
    })
}

/// `WRAPGUARD_HOLD=`.
fn hold_key() -> &'static [u8] {
    const KEY: &[u8] = b"WRAPGUARD_HOLD=";
    debug_assert_eq!(&KEY[..KEY.len() - 1], control::ENV_HOLD.as_bytes());
    KEY
}

extern "C" {
    static environ: *const *const c_char;
}

fn current_environ() -> *const *const c_char {
    // SAFETY: reading the process's environ pointer.
    unsafe { environ }
}

/// Runs `f` with `envp` or its fixed copy (see [`fix`] for `shim`).
fn with_env<R>(
    envp: *const *const c_char,
    shim: bool,
    f: impl FnOnce(*const *const c_char) -> R,
) -> R {
    // SAFETY: `envp` comes from the application's exec call (or environ).
    let fixed = std::panic::catch_unwind(|| unsafe { fix(envp, shim) })
        .ok()
        .flatten();
    match &fixed {
        Some(fx) => f(fx.ptrs.as_ptr()),
        None => f(envp),
    }
}

/// The argument vector of a seccomp hand-off: `wrapguard
/// --internal-seccomp-exec PATH ARGV…`; keeps its storage alive.
struct Handoff {
    _owned: Vec<CString>,
    argv: Vec<*const c_char>,
}

impl Handoff {
    /// The program to exec: `wrapguard`, the first argument.
    fn path(&self) -> *const c_char {
        self.argv[0]
    }
}

/// The shim's architecture (the programs it can be loaded into).
static OWN: OnceLock<Option<ElfInfo>> = OnceLock::new();

/// `Some` when the program at `path` must be carried in seccomp mode and
/// auto mode can do it: the argument vector to exec `wrapguard` with.
///
/// # Safety
/// `path` must be a C string; `argv` null or a NULL-terminated array of
/// C strings.
unsafe fn handoff(path: &CStr, argv: *const *const c_char) -> Option<Handoff> {
    let env = EXEC_ENV.get()?.as_ref()?;
    let launcher = env.launcher.as_ref()?;
    let own = OWN.get_or_init(ElfInfo::native).as_ref()?;
    if !exec_needs_seccomp(Path::new(OsStr::from_bytes(path.to_bytes())), own) {
        return None;
    }
    let owned = vec![
        launcher.clone(),
        CString::new(control::SECCOMP_EXEC_ARG).ok()?,
        path.to_owned(),
    ];
    let mut ptrs: Vec<*const c_char> = owned.iter().map(|c| c.as_ptr()).collect();
    // SAFETY: per the caller.
    ptrs.extend(unsafe { c_array(argv) });
    ptrs.push(std::ptr::null());
    Some(Handoff {
        _owned: owned,
        argv: ptrs,
    })
}

/// The file `execvp` runs for `file`: itself if it has a `/`, else the
/// first executable regular file of that name on `PATH` (glibc's default
/// `/bin:/usr/bin` when unset).
fn search_path(file: &CStr) -> Option<CString> {
    let name = file.to_bytes();
    if name.is_empty() {
        return None;
    }
    if name.contains(&b'/') {
        return Some(file.to_owned());
    }
    let path = crate::env::env_bytes("PATH").unwrap_or_else(|| b"/bin:/usr/bin".to_vec());
    for dir in path.split(|c| *c == b':') {
        let mut cand = if dir.is_empty() {
            b".".to_vec()
        } else {
            dir.to_vec()
        };
        cand.push(b'/');
        cand.extend_from_slice(name);
        let Ok(c) = CString::new(cand) else { continue };
        let p = Path::new(OsStr::from_bytes(c.as_bytes()));
        // SAFETY: `c` is a C string alive across the call.
        let exec_ok = unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0;
        if exec_ok && p.metadata().is_ok_and(|m| m.is_file()) {
            return Some(c);
        }
    }
    None
}

/// The hand-off for an exec of `path` (resolved on `PATH` when `search`),
/// never panicking across the FFI boundary.
///
/// # Safety
/// `path` null or a C string; `argv` as for [`handoff`].
unsafe fn plan(path: *const c_char, argv: *const *const c_char, search: bool) -> Option<Handoff> {
    if path.is_null() {
        return None;
    }
    std::panic::catch_unwind(|| {
        // SAFETY: a C string from the application's exec call.
        let p = unsafe { CStr::from_ptr(path) };
        if search {
            let found = search_path(p)?;
            // SAFETY: as for this function.
            unsafe { handoff(&found, argv) }
        } else {
            // SAFETY: as for this function.
            unsafe { handoff(p, argv) }
        }
    })
    .ok()
    .flatten()
}

/// Execs `path` with `argv` and `envp` (fixed), or `wrapguard` in its place.
///
/// # Safety
/// As for `execve(2)` (or `execvpe(3)` when `search`).
unsafe fn exec_with(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    search: bool,
) -> c_int {
    // SAFETY: forwarded application arguments.
    let h = unsafe { plan(path, argv, search) };
    with_env(envp, h.is_none(), |e| match &h {
        // SAFETY: our argument vector (NULL-terminated) and a C string path.
        Some(h) => unsafe { real::execve(h.path(), h.argv.as_ptr(), e) },
        // SAFETY: forwarded application arguments.
        _ if search => unsafe { real::execvpe(path, argv, e) },
        // SAFETY: forwarded application arguments.
        _ => unsafe { real::execve(path, argv, e) },
    })
}

/// Interposed `execve(2)`.
///
/// # Safety
/// As for `execve(2)`.
#[no_mangle]
pub unsafe extern "C" fn execve(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: forwarded application arguments.
    unsafe { exec_with(path, argv, envp, false) }
}

/// Interposed `execv(3)`.
///
/// # Safety
/// As for `execv(3)`.
#[no_mangle]
pub unsafe extern "C" fn execv(path: *const c_char, argv: *const *const c_char) -> c_int {
    // SAFETY: forwarded application arguments.
    unsafe { exec_with(path, argv, current_environ(), false) }
}

/// Interposed `execvp(3)`.
///
/// # Safety
/// As for `execvp(3)`.
#[no_mangle]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int {
    // SAFETY: forwarded application arguments.
    unsafe { exec_with(file, argv, current_environ(), true) }
}

/// Interposed `execvpe(3)`.
///
/// # Safety
/// As for `execvpe(3)`.
#[no_mangle]
pub unsafe extern "C" fn execvpe(
    file: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: forwarded application arguments.
    unsafe { exec_with(file, argv, envp, true) }
}

/// Interposed `posix_spawn(3)`.
///
/// # Safety
/// As for `posix_spawn(3)`.
#[no_mangle]
pub unsafe extern "C" fn posix_spawn(
    pid: *mut pid_t,
    path: *const c_char,
    fa: *const libc::c_void,
    attr: *const libc::c_void,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    // SAFETY: forwarded application arguments.
    unsafe { spawn_with(pid, path, fa, attr, argv, envp, false) }
}

/// Interposed `posix_spawnp(3)`.
///
/// # Safety
/// As for `posix_spawnp(3)`.
#[no_mangle]
pub unsafe extern "C" fn posix_spawnp(
    pid: *mut pid_t,
    file: *const c_char,
    fa: *const libc::c_void,
    attr: *const libc::c_void,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    // SAFETY: forwarded application arguments.
    unsafe { spawn_with(pid, file, fa, attr, argv, envp, true) }
}

/// `posix_spawn(p)` of `path` (fixed environment), or of `wrapguard` in its place.
///
/// # Safety
/// As for `posix_spawn(3)` (or `posix_spawnp(3)` when `search`).
unsafe fn spawn_with(
    pid: *mut pid_t,
    path: *const c_char,
    fa: *const libc::c_void,
    attr: *const libc::c_void,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
    search: bool,
) -> c_int {
    // SAFETY: forwarded application arguments.
    let h = unsafe { plan(path, argv as *const *const c_char, search) };
    with_env(envp as *const *const c_char, h.is_none(), |e| {
        let e = e as *const *mut c_char;
        match &h {
            // SAFETY: our argument vector (NULL-terminated) and a C string path.
            Some(h) => unsafe {
                real::posix_spawn(
                    pid,
                    h.path(),
                    fa,
                    attr,
                    h.argv.as_ptr() as *const *mut c_char,
                    e,
                )
            },
            // SAFETY: forwarded application arguments.
            _ if search => unsafe { real::posix_spawnp(pid, path, fa, attr, argv, e) },
            // SAFETY: forwarded application arguments.
            _ => unsafe { real::posix_spawn(pid, path, fa, attr, argv, e) },
        }
    })
}
