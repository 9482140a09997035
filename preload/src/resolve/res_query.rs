//! The raw DNS query interfaces through the tunnel: `res_query`,
//! `res_search`, their `res_n*` (`res_state`) forms and the
//! `__`-prefixed aliases. The answer is the tunnel server's message.

use super::query::{ask, mode, set_h_errno, Mode, HOST_NOT_FOUND, NO_DATA, NO_RECOVERY, TRY_AGAIN};
use crate::guard::hook;
use crate::real;
use control::{ResolveKind, ResolveStatus};
use libc::{c_char, c_int, c_void};
use std::ffi::CStr;

/// The `res_query`/`res_search` logic; `None` means "let libc do it".
unsafe fn raw_query(
    dname: *const c_char,
    class: c_int,
    ty: c_int,
    answer: *mut u8,
    anslen: c_int,
    search: bool,
) -> Option<c_int> {
    if dname.is_null() {
        return None;
    }
    match mode() {
        Mode::Host => return None,
        Mode::Broken => {
            set_h_errno(TRY_AGAIN);
            return Some(-1);
        }
        Mode::Tunnel(_) => {}
    }
    // SAFETY: the caller passes a C string.
    let name = unsafe { CStr::from_ptr(dname) }.to_bytes();
    let (Ok(class), Ok(qtype)) = (u16::try_from(class), u16::try_from(ty)) else {
        set_h_errno(NO_RECOVERY);
        return Some(-1);
    };
    let Ok(reply) = ask(
        ResolveKind::Raw {
            class,
            qtype,
            search,
        },
        name,
    ) else {
        set_h_errno(TRY_AGAIN);
        return Some(-1);
    };
    let copied = if answer.is_null() || anslen <= 0 {
        0
    } else {
        let n = reply.raw.len().min(anslen as usize);
        // SAFETY: answer[..anslen] is the caller's buffer.
        unsafe { std::ptr::copy_nonoverlapping(reply.raw.as_ptr(), answer, n) };
        n
    };
    let herr = match reply.status {
        ResolveStatus::Ok => {
            set_h_errno(0);
            return Some(copied as c_int);
        }
        ResolveStatus::NotConfigured => return None,
        ResolveStatus::NxDomain => HOST_NOT_FOUND,
        ResolveStatus::NoData => NO_DATA,
        ResolveStatus::TryAgain => TRY_AGAIN,
        ResolveStatus::NoRecovery => NO_RECOVERY,
    };
    set_h_errno(herr);
    Some(-1)
}

macro_rules! res_hooks {
    ($($name:ident / $alias:ident => $real:ident, search: $search:expr;)*) => {$(
        /// Raw DNS query through the tunnel when the config has `DNS =`.
        ///
        /// # Safety
        /// As for the libc function of the same name.
        #[no_mangle]
        pub unsafe extern "C" fn $name(
            dname: *const c_char,
            class: c_int,
            ty: c_int,
            answer: *mut u8,
            anslen: c_int,
        ) -> c_int {
            // SAFETY: forwarded unchanged.
            let pass = || unsafe { real::$real(dname, class, ty, answer, anslen) };
            hook(
                pass,
                // SAFETY: as above.
                || unsafe { raw_query(dname, class, ty, answer, anslen, $search) }.unwrap_or_else(pass),
                libc::EIO,
            )
        }

        /// The `__`-prefixed name older programs link against.
        ///
        /// # Safety
        /// As for the libc function of the same name.
        #[no_mangle]
        pub unsafe extern "C" fn $alias(
            dname: *const c_char,
            class: c_int,
            ty: c_int,
            answer: *mut u8,
            anslen: c_int,
        ) -> c_int {
            // SAFETY: same contract.
            unsafe { $name(dname, class, ty, answer, anslen) }
        }
    )*};
}

res_hooks! {
    res_query / __res_query => res_query, search: false;
    res_search / __res_search => res_search, search: true;
}

macro_rules! res_n_hooks {
    ($($name:ident / $alias:ident => $real:ident, search: $search:expr;)*) => {$(
        /// Raw DNS query (`res_state` variant) through the tunnel when the
        /// config has `DNS =`; the state's own servers are not used.
        ///
        /// # Safety
        /// As for the libc function of the same name.
        #[no_mangle]
        pub unsafe extern "C" fn $name(
            statp: *mut c_void,
            dname: *const c_char,
            class: c_int,
            ty: c_int,
            answer: *mut u8,
            anslen: c_int,
        ) -> c_int {
            // SAFETY: forwarded unchanged.
            let pass = || unsafe { real::$real(statp, dname, class, ty, answer, anslen) };
            hook(
                pass,
                // SAFETY: as above.
                || unsafe { raw_query(dname, class, ty, answer, anslen, $search) }.unwrap_or_else(pass),
                libc::EIO,
            )
        }

        /// The `__`-prefixed name older programs link against.
        ///
        /// # Safety
        /// As for the libc function of the same name.
        #[no_mangle]
        pub unsafe extern "C" fn $alias(
            statp: *mut c_void,
            dname: *const c_char,
            class: c_int,
            ty: c_int,
            answer: *mut u8,
            anslen: c_int,
        ) -> c_int {
            // SAFETY: same contract.
            unsafe { $name(statp, dname, class, ty, answer, anslen) }
        }
    )*};
}

res_n_hooks! {
    res_nquery / __res_nquery => res_nquery, search: false;
    res_nsearch / __res_nsearch => res_nsearch, search: true;
}
