//! The shell every exported hook runs in: `hook` sends calls made from
//! inside the shim (or with the shim inert) straight to libc, catches
//! unwinds so no panic crosses into C, and keeps errno as libc would.

use crate::engine::config;
use crate::sys::{errno, set_errno};
use libc::c_int;
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as inside the shim; `None` if it already is (a hook
/// reached from inside another hook goes straight to libc).
struct Guard;

impl Guard {
    fn enter() -> Option<Guard> {
        IN_HOOK
            .try_with(|f| {
                if f.get() {
                    None
                } else {
                    f.set(true);
                    Some(Guard)
                }
            })
            .ok()
            .flatten()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = IN_HOOK.try_with(|f| f.set(false));
    }
}

/// Return types of hooked functions: `-1` means failure with errno.
pub(crate) trait Ret: Copy {
    /// Whether this value is a success.
    fn ok(self) -> bool;
    /// The failure value.
    fn failure() -> Self;
}

impl Ret for c_int {
    fn ok(self) -> bool {
        self >= 0
    }
    fn failure() -> Self {
        -1
    }
}

impl Ret for isize {
    fn ok(self) -> bool {
        self >= 0
    }
    fn failure() -> Self {
        -1
    }
}

/// Runs `body` for an active, non-re-entrant call, else `pass`. A panic
/// never crosses into C: it becomes `-1` with errno `on_panic`. On success
/// the caller's errno is restored, as libc leaves it untouched.
pub(crate) fn hook<R: Ret>(
    pass: impl FnOnce() -> R,
    body: impl FnOnce() -> R,
    on_panic: c_int,
) -> R {
    if !config().active {
        return pass();
    }
    let Some(_guard) = Guard::enter() else {
        return pass();
    };
    let saved = errno();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) if r.ok() => {
            set_errno(saved);
            r
        }
        Ok(r) => r,
        Err(_) => {
            set_errno(on_panic);
            R::failure()
        }
    }
}

/// Sets errno to `e` and returns the failure value `-1`.
pub(crate) fn fail(e: c_int) -> c_int {
    set_errno(e);
    -1
}
