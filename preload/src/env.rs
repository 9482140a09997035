//! Reading the process environment from inside the shim, safely before
//! `main` (the shim's configuration and what must survive `exec`).

/// The raw bytes of an environment variable, if set (no allocation beyond
/// the copy; safe before `main`).
pub fn env_bytes(name: &str) -> Option<Vec<u8>> {
    let mut key = [0u8; 64];
    let kb = name.as_bytes();
    if kb.len() >= key.len() {
        return None;
    }
    key[..kb.len()].copy_from_slice(kb);
    // SAFETY: `key` is NUL-terminated; getenv returns null or a C string.
    let p = unsafe { libc::getenv(key.as_ptr() as *const libc::c_char) };
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null C string from the environment.
    Some(unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes().to_vec())
}
