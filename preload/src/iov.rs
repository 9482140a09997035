//! Sizes of the application's iovec arrays, shared by the send and
//! receive hooks.

use libc::c_int;

/// The iovec count of a `readv`/`writev` call, or `None` when it is not
/// valid (negative, above `IOV_MAX`, or no array): the kernel then reports
/// the error itself.
pub(crate) fn iov_count(iov: *const libc::iovec, n: c_int) -> Option<usize> {
    usize::try_from(n)
        .ok()
        .filter(|n| *n <= 1024 && !iov.is_null())
}

/// Bytes the iovecs of `m` can hold (0 when it has none).
///
/// # Safety
/// `m.msg_iov` points to `m.msg_iovlen` readable iovecs (or is null).
pub(crate) unsafe fn iov_total(m: &libc::msghdr) -> usize {
    // SAFETY: per the caller.
    unsafe { iov_sum(m.msg_iov, m.msg_iovlen) }
}

/// Bytes `n` iovecs at `iov` can hold (0 for a null array).
///
/// # Safety
/// `iov` points to `n` readable iovecs (or is null).
pub(crate) unsafe fn iov_sum(iov: *const libc::iovec, n: usize) -> usize {
    if iov.is_null() {
        return 0;
    }
    (0..n)
        // SAFETY: per the caller, `n` entries are readable.
        .map(|i| unsafe { (*iov.add(i)).iov_len })
        .fold(0usize, usize::saturating_add)
}
