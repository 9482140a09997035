//! Keeping the tunnel across `exec`: if a program hands a child an
//! environment without our `LD_PRELOAD` entry or `WRAPGUARD_*` variables,
//! they are put back (our library first in `LD_PRELOAD`, existing entries
//! kept). Hooked: `execve`, `execv`, `execvp`, `execvpe`, `posix_spawn`,
//! `posix_spawnp`. Not hooked: the variadic `execl*` (glibc calls its
//! internal `execve` from them) — they pass `environ`, which a program
//! rarely clears.
//!
//! The entries are built once at load time; an exec whose environment is
//! intact allocates nothing (it may run in a `vfork` child).

use crate::real;
use libc::{c_char, c_int, pid_t};
use std::ffi::{CStr, CString};
use std::sync::OnceLock;

struct ExecEnv {
    /// Path of libwrapguard.so.
    preload: Vec<u8>,
    /// `WRAPGUARD_CONTROL=…` and `WRAPGUARD_PRELOAD=…`.
    required: Vec<CString>,
}

static EXEC_ENV: OnceLock<Option<ExecEnv>> = OnceLock::new();

/// Reads what must survive exec from the environment (called at load).
pub fn init() {
    EXEC_ENV.get_or_init(|| {
        let control = crate::env_bytes(control::ENV_CONTROL)?;
        let preload = crate::env_bytes(control::ENV_PRELOAD)?;
        let mut required = Vec::new();
        for (k, v) in [
            (control::ENV_CONTROL, &control),
            (control::ENV_PRELOAD, &preload),
        ] {
            let mut s = k.as_bytes().to_vec();
            s.push(b'=');
            s.extend_from_slice(v);
            required.push(CString::new(s).ok()?);
        }
        Some(ExecEnv { preload, required })
    });
}

/// An environment block rebuilt with our entries; keeps its storage alive.
struct Fixed {
    _owned: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

fn has_preload(value: &[u8], ours: &[u8]) -> bool {
    value.split(|b| *b == b':' || *b == b' ').any(|e| e == ours)
}

/// Returns `None` when `envp` already carries everything (the common case).
///
/// # Safety
/// `envp` must be null or a valid NULL-terminated array of C strings.
unsafe fn fix(envp: *const *const c_char) -> Option<Fixed> {
    let env = EXEC_ENV.get()?.as_ref()?;
    let mut entries: Vec<&CStr> = Vec::new();
    let mut ok_preload = false;
    let mut seen = [false; 2];
    if !envp.is_null() {
        let mut i = 0;
        loop {
            // SAFETY: NULL-terminated array per the caller.
            let p = unsafe { *envp.add(i) };
            if p.is_null() {
                break;
            }
            // SAFETY: each entry is a C string.
            let e = unsafe { CStr::from_ptr(p) };
            let b = e.to_bytes();
            if let Some(v) = b.strip_prefix(b"LD_PRELOAD=") {
                ok_preload = has_preload(v, &env.preload);
            }
            for (j, req) in env.required.iter().enumerate() {
                let key_len = req.as_bytes().iter().position(|c| *c == b'=').unwrap_or(0) + 1;
                if b.starts_with(&req.as_bytes()[..key_len]) {
                    seen[j] = true;
                }
            }
            entries.push(e);
            i += 1;
        }
    }
    if ok_preload && seen.iter().all(|s| *s) {
        return None;
    }
    // From here on we allocate: only when the program changed the environment.
    let mut owned = Vec::new();
    let mut ptrs: Vec<*const c_char> = Vec::with_capacity(entries.len() + 4);
    let mut preload_done = false;
    for e in &entries {
        let b = e.to_bytes();
        if let Some(v) = b.strip_prefix(b"LD_PRELOAD=") {
            if preload_done {
                continue;
            }
            preload_done = true;
            if !has_preload(v, &env.preload) {
                let mut s = b"LD_PRELOAD=".to_vec();
                s.extend_from_slice(&env.preload);
                if !v.is_empty() {
                    s.push(b':');
                    s.extend_from_slice(v);
                }
                let c = CString::new(s).ok()?;
                ptrs.push(c.as_ptr());
                owned.push(c);
                continue;
            }
        }
        ptrs.push(e.as_ptr());
    }
    if !preload_done {
        let mut s = b"LD_PRELOAD=".to_vec();
        s.extend_from_slice(&env.preload);
        let c = CString::new(s).ok()?;
        ptrs.push(c.as_ptr());
        owned.push(c);
    }
    for (j, req) in env.required.iter().enumerate() {
        if !seen[j] {
            ptrs.push(req.as_ptr());
        }
    }
    ptrs.push(std::ptr::null());
    Some(Fixed {
        _owned: owned,
        ptrs,
    })
}

extern "C" {
    static environ: *const *const c_char;
}

fn current_environ() -> *const *const c_char {
    // SAFETY: reading the process's environ pointer.
    unsafe { environ }
}

/// Runs `f` with `envp` or its fixed copy.
fn with_env<R>(envp: *const *const c_char, f: impl FnOnce(*const *const c_char) -> R) -> R {
    // SAFETY: `envp` comes from the application's exec call (or environ).
    let fixed = std::panic::catch_unwind(|| unsafe { fix(envp) })
        .ok()
        .flatten();
    match &fixed {
        Some(fx) => f(fx.ptrs.as_ptr()),
        None => f(envp),
    }
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
    with_env(envp, |e| unsafe { real::execve(path, argv, e) })
}

/// Interposed `execv(3)`.
///
/// # Safety
/// As for `execv(3)`.
#[no_mangle]
pub unsafe extern "C" fn execv(path: *const c_char, argv: *const *const c_char) -> c_int {
    // SAFETY: forwarded application arguments.
    with_env(current_environ(), |e| unsafe {
        real::execve(path, argv, e)
    })
}

/// Interposed `execvp(3)`.
///
/// # Safety
/// As for `execvp(3)`.
#[no_mangle]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int {
    // SAFETY: forwarded application arguments.
    with_env(current_environ(), |e| unsafe {
        real::execvpe(file, argv, e)
    })
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
    with_env(envp, |e| unsafe { real::execvpe(file, argv, e) })
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
    with_env(envp as *const *const c_char, |e| {
        // SAFETY: forwarded application arguments.
        unsafe { real::posix_spawn(pid, path, fa, attr, argv, e as *const *mut c_char) }
    })
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
    with_env(envp as *const *const c_char, |e| {
        // SAFETY: forwarded application arguments.
        unsafe { real::posix_spawnp(pid, file, fa, attr, argv, e as *const *mut c_char) }
    })
}
