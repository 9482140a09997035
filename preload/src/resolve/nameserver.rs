//! Programs with their own resolvers send UDP/TCP to port 53 of the host's
//! nameservers: with `DNS =`, [`redirect`] names the tunnel server to send
//! it to instead and [`unredirect`] shows its replies as coming from the
//! nameserver the program asked.

use super::query::{mode, Mode};
use std::net::SocketAddr;

/// Where port-53 traffic to `dst` goes instead, if `dst` is one of the
/// host's nameservers (or 127.0.0.53) and the config has `DNS =`. The
/// original is remembered for [`unredirect`].
pub fn redirect(dst: SocketAddr) -> Option<SocketAddr> {
    if dst.port() != 53 {
        return None;
    }
    let Mode::Tunnel(info) = mode() else {
        return None;
    };
    let to = info.redirect(dst)?;
    LAST_ORIGINAL.with(|o| *o = Some(control::normalize(dst)));
    Some(to)
}

/// The host nameserver address most recently redirected.
struct LastOriginal {
    lock: std::sync::atomic::AtomicBool,
    addr: std::cell::UnsafeCell<Option<SocketAddr>>,
}

// SAFETY: `addr` is only accessed while `lock` is held.
unsafe impl Sync for LastOriginal {}

static LAST_ORIGINAL: LastOriginal = LastOriginal {
    lock: std::sync::atomic::AtomicBool::new(false),
    addr: std::cell::UnsafeCell::new(None),
};

impl LastOriginal {
    fn with<R>(&self, f: impl FnOnce(&mut Option<SocketAddr>) -> R) -> R {
        use std::sync::atomic::Ordering;
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        // SAFETY: the lock is held.
        let r = f(unsafe { &mut *self.addr.get() });
        self.lock.store(false, Ordering::Release);
        r
    }
}

/// The inverse of [`redirect`] for a datagram's source: a reply from the
/// tunnel's DNS server is shown as coming from the host nameserver the
/// program last sent to (resolvers such as c-ares check the source), or
/// the first host nameserver if none was.
pub fn unredirect(src: SocketAddr) -> Option<SocketAddr> {
    if src.port() != 53 {
        return None;
    }
    let Mode::Tunnel(info) = mode() else {
        return None;
    };
    if info.server != Some(control::normalize(src).ip()) {
        return None;
    }
    LAST_ORIGINAL.with(|o| *o).or_else(|| {
        info.host_servers
            .iter()
            .flatten()
            .next()
            .map(|h| SocketAddr::new(*h, 53))
    })
}
