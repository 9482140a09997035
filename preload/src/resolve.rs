//! Name resolution through the tunnel, when the config has `DNS =`.
//!
//! glibc's resolver sends its queries with internal socket calls that no
//! preload can see, so the shim takes over the resolver's entry points
//! instead — `getaddrinfo`, `gethostbyname{,2}{,_r}`, `gethostbyaddr{,_r}`,
//! `getnameinfo`,
//! `res_{n,}{query,search}` — and asks the engine (`Resolve`), which
//! consults `/etc/hosts` and then queries the `DNS =` servers through the
//! tunnel. Without `DNS =` (the engine says so once per process, `DnsInfo`)
//! every call goes to libc untouched. With it, nothing ever reaches the
//! host's resolver: an engine that cannot be asked, or a tunnel server that
//! does not answer, fails the call with the usual error (`EAI_AGAIN`,
//! `TRY_AGAIN`).
//!
//! `getaddrinfo` results are built by libc's own `getaddrinfo` on each
//! numeric address (`AI_NUMERICHOST`), chained, with `ai_canonname` from
//! `strdup`, so libc's `freeaddrinfo` frees them as its own.
//!
//! Programs with their own resolvers send UDP/TCP to port 53 of the host's
//! nameservers; [`redirect`] names the tunnel server to send it to instead.

use crate::engine::{self, config};
use crate::guard::hook;
use crate::real;
use crate::sys;
use control::{
    DnsInfo, QueryName, Reply, Request, ResolveKind, ResolveReply, ResolveRequest, ResolveStatus,
};
use libc::{addrinfo, c_char, c_int, c_void, hostent, sockaddr, socklen_t};
use std::ffi::CStr;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

// glibc's values (netdb.h), spelled out: the libc crate lacks some.
const EAI_NONAME: c_int = -2;
const EAI_AGAIN: c_int = -3;
const EAI_FAIL: c_int = -4;
const EAI_NODATA: c_int = -5;
const EAI_MEMORY: c_int = -10;
const EAI_OVERFLOW: c_int = -12;
const HOST_NOT_FOUND: c_int = 1;
const TRY_AGAIN: c_int = 2;
const NO_RECOVERY: c_int = 3;
const NO_DATA: c_int = 4;
const NETDB_INTERNAL: c_int = -1;
const AI_CANONNAME: c_int = 0x2;
const AI_NUMERICHOST: c_int = 0x4;
const AI_V4MAPPED: c_int = 0x8;
const AI_ALL: c_int = 0x10;
const AI_ADDRCONFIG: c_int = 0x20;
const NI_NUMERICHOST: c_int = 1;
const NI_NAMEREQD: c_int = 8;
/// Seconds a `Resolve` waits for the engine (its own retries take at most
/// a few seconds per server).
const RESOLVE_TIMEOUT_SECS: libc::time_t = 30;

extern "C" {
    fn __h_errno_location() -> *mut c_int;
    fn inet_aton(cp: *const c_char, inp: *mut libc::in_addr) -> c_int;
}

fn set_h_errno(v: c_int) {
    // SAFETY: glibc's per-thread h_errno slot, always valid.
    unsafe { *__h_errno_location() = v };
}

/// How this process resolves names.
enum Mode {
    /// No `DNS =`: the host's resolver, untouched.
    Host,
    /// Through the tunnel.
    Tunnel(DnsInfo),
    /// The engine cannot be asked: fail closed.
    Broken,
}

static INFO: OnceLock<DnsInfo> = OnceLock::new();

fn mode() -> Mode {
    if !config().active {
        return Mode::Host;
    }
    let info = match INFO.get() {
        Some(i) => *i,
        None => match engine::query(&Request::DnsInfo) {
            Ok(Reply::DnsInfo(i)) => *INFO.get_or_init(|| i),
            _ => return Mode::Broken,
        },
    };
    if info.server.is_some() {
        Mode::Tunnel(info)
    } else {
        Mode::Host
    }
}

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

/// One `Resolve` exchange; `Err` if the engine cannot be asked.
fn ask(kind: ResolveKind, name: &[u8]) -> Result<ResolveReply, ()> {
    let name = if name.is_empty() {
        QueryName::empty()
    } else {
        QueryName::new(name).ok_or(())?
    };
    let eng = config().engine.as_ref().ok_or(())?;
    let fd = eng.open(false).map_err(|_| ())?;
    let tv = libc::timeval {
        tv_sec: RESOLVE_TIMEOUT_SECS,
        tv_usec: 0,
    };
    // SAFETY: `tv` lives across the call.
    unsafe {
        sys::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const c_void,
            std::mem::size_of::<libc::timeval>() as socklen_t,
        )
    };
    let r = (|| {
        engine::send(fd, &Request::Resolve(ResolveRequest { kind, name })).map_err(|_| ())?;
        let mut prefix = [0u8; control::dns::RESOLVE_PREFIX_LEN];
        sys::recv_exact(fd, &mut prefix).map_err(|_| ())?;
        let total = ResolveReply::frame_len(prefix).map_err(|_| ())?;
        let mut buf = vec![0u8; total];
        buf[..prefix.len()].copy_from_slice(&prefix);
        sys::recv_exact(fd, &mut buf[prefix.len()..]).map_err(|_| ())?;
        ResolveReply::decode(&buf).map_err(|_| ())
    })();
    sys::close(fd);
    r
}

/// Whether `name` is a numeric address libc handles without a lookup
/// (dotted IPv4 in any `inet_aton` form, or anything with a colon).
fn is_numeric(name: &CStr) -> bool {
    if name.to_bytes().contains(&b':') {
        return true;
    }
    let mut a = libc::in_addr { s_addr: 0 };
    // SAFETY: a C string and an out-parameter of the right type.
    unsafe { inet_aton(name.as_ptr(), &mut a) != 0 }
}

// ---------------------------------------------------------------- getaddrinfo

unsafe fn do_getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const addrinfo,
    res: *mut *mut addrinfo,
) -> c_int {
    // SAFETY: forwarded unchanged.
    let pass = || unsafe { real::getaddrinfo(node, service, hints, res) };
    if node.is_null() || res.is_null() {
        return pass();
    }
    // SAFETY: the caller passes a C string.
    let name = unsafe { CStr::from_ptr(node) };
    // SAFETY: null or a valid addrinfo from the caller.
    let h = unsafe { hints.as_ref() };
    let (family, flags) = h.map_or((libc::AF_UNSPEC, 0), |h| (h.ai_family, h.ai_flags));
    if flags & AI_NUMERICHOST != 0 || is_numeric(name) {
        return pass();
    }
    if !matches!(family, libc::AF_UNSPEC | libc::AF_INET | libc::AF_INET6) {
        return pass();
    }
    match mode() {
        Mode::Host => return pass(),
        Mode::Broken => return EAI_AGAIN,
        Mode::Tunnel(_) => {}
    }
    let mapped = family == libc::AF_INET6 && flags & AI_V4MAPPED != 0;
    let kind = ResolveKind::Addr {
        v4: family != libc::AF_INET6 || mapped,
        v6: family != libc::AF_INET,
    };
    let Ok(reply) = ask(kind, name.to_bytes()) else {
        return EAI_AGAIN;
    };
    match reply.status {
        ResolveStatus::Ok => {}
        ResolveStatus::NotConfigured => return pass(),
        ResolveStatus::NxDomain => return EAI_NONAME,
        ResolveStatus::NoData => return EAI_NODATA,
        ResolveStatus::TryAgain => return EAI_AGAIN,
        ResolveStatus::NoRecovery => return EAI_FAIL,
    }
    let mut addrs: Vec<IpAddr> = match family {
        libc::AF_INET => reply
            .addrs
            .iter()
            .copied()
            .filter(IpAddr::is_ipv4)
            .collect(),
        libc::AF_INET6 => {
            let v6: Vec<IpAddr> = reply
                .addrs
                .iter()
                .copied()
                .filter(IpAddr::is_ipv6)
                .collect();
            let want_mapped = mapped && (v6.is_empty() || flags & AI_ALL != 0);
            let mut out = v6;
            if want_mapped {
                out.extend(reply.addrs.iter().filter_map(|a| match a {
                    IpAddr::V4(v4) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
                    IpAddr::V6(_) => None,
                }));
            }
            out
        }
        _ => reply.addrs.clone(),
    };
    addrs.dedup();
    if addrs.is_empty() {
        return EAI_NODATA;
    }
    // SAFETY: `service`/`hints` come from the caller; `res` is writable.
    unsafe { build_addrinfo(&addrs, &reply.name, name, service, h, res) }
}

/// Chains libc's own results for each numeric address.
unsafe fn build_addrinfo(
    addrs: &[IpAddr],
    canonical: &[u8],
    asked: &CStr,
    service: *const c_char,
    hints: Option<&addrinfo>,
    res: *mut *mut addrinfo,
) -> c_int {
    // SAFETY: plain old data; all-zero is a valid addrinfo.
    let mut inner: addrinfo = unsafe { std::mem::zeroed() };
    if let Some(h) = hints {
        inner.ai_socktype = h.ai_socktype;
        inner.ai_protocol = h.ai_protocol;
        inner.ai_flags = h.ai_flags & !(AI_CANONNAME | AI_ADDRCONFIG | AI_V4MAPPED | AI_ALL);
    }
    inner.ai_flags |= AI_NUMERICHOST;
    inner.ai_family = libc::AF_UNSPEC;
    let mut head: *mut addrinfo = std::ptr::null_mut();
    let mut tail: *mut addrinfo = std::ptr::null_mut();
    for a in addrs {
        let text = match std::ffi::CString::new(a.to_string()) {
            Ok(t) => t,
            Err(_) => continue,
        };
        let mut part: *mut addrinfo = std::ptr::null_mut();
        // SAFETY: valid C strings and hints; `part` receives the list.
        let r = unsafe { real::getaddrinfo(text.as_ptr(), service, &inner, &mut part) };
        if r != 0 {
            if !head.is_null() {
                // SAFETY: a list libc made.
                unsafe { libc::freeaddrinfo(head) };
            }
            return r;
        }
        if part.is_null() {
            continue;
        }
        if head.is_null() {
            head = part;
        } else {
            // SAFETY: `tail` is the last node of our chain.
            unsafe { (*tail).ai_next = part };
        }
        tail = part;
        // SAFETY: walking libc's list to its end.
        unsafe {
            while !(*tail).ai_next.is_null() {
                tail = (*tail).ai_next;
            }
        }
    }
    if head.is_null() {
        return EAI_NODATA;
    }
    if hints.is_some_and(|h| h.ai_flags & AI_CANONNAME != 0) {
        let canon = if canonical.is_empty() {
            asked.to_bytes().to_vec()
        } else {
            canonical.to_vec()
        };
        let Ok(c) = std::ffi::CString::new(canon) else {
            // SAFETY: a list libc made.
            unsafe { libc::freeaddrinfo(head) };
            return EAI_FAIL;
        };
        // SAFETY: strdup returns malloc'd memory, which freeaddrinfo frees.
        let dup = unsafe { libc::strdup(c.as_ptr()) };
        if dup.is_null() {
            // SAFETY: a list libc made.
            unsafe { libc::freeaddrinfo(head) };
            return EAI_MEMORY;
        }
        // SAFETY: head is a valid node; with AI_NUMERICHOST and no
        // AI_CANONNAME libc left its canonname null.
        unsafe { (*head).ai_canonname = dup };
    }
    // SAFETY: the caller's out-pointer.
    unsafe { *res = head };
    0
}

/// `getaddrinfo`, through the tunnel when the config has `DNS =`.
///
/// # Safety
/// As for libc's `getaddrinfo`.
#[no_mangle]
pub unsafe extern "C" fn getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const addrinfo,
    res: *mut *mut addrinfo,
) -> c_int {
    hook(
        // SAFETY: forwarded unchanged.
        || unsafe { real::getaddrinfo(node, service, hints, res) },
        // SAFETY: as above.
        || unsafe { do_getaddrinfo(node, service, hints, res) },
        libc::EIO,
    )
}

// ---------------------------------------------------------------- gethostbyname

/// Fills `ret` and `buf` with one `hostent`; `Err(ERANGE)` if `buf` is small.
///
/// # Safety
/// `ret` and `buf[..buflen]` must be writable.
unsafe fn fill_hostent(
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: usize,
    name: &[u8],
    af: c_int,
    addrs: &[IpAddr],
) -> Result<(), c_int> {
    let alen = if af == libc::AF_INET { 4 } else { 16 };
    let ptr = std::mem::size_of::<*mut c_char>();
    let base = buf as usize;
    // Pointer arrays first (aligned), then address bytes, then the name.
    let align = (ptr - base % ptr) % ptr;
    let need = align + ptr * (addrs.len() + 1) + ptr + alen * addrs.len() + name.len() + 1;
    if buf.is_null() || need > buflen {
        return Err(libc::ERANGE);
    }
    // SAFETY: every write below is inside buf[..need] ⊆ buf[..buflen];
    // the pointer arrays are aligned.
    unsafe {
        let list = buf.add(align) as *mut *mut c_char;
        let aliases = list.add(addrs.len() + 1);
        let mut data = aliases.add(1) as *mut c_char;
        for (i, a) in addrs.iter().enumerate() {
            let bytes: Vec<u8> = match a {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), data as *mut u8, alen);
            *list.add(i) = data;
            data = data.add(alen);
        }
        *list.add(addrs.len()) = std::ptr::null_mut();
        *aliases = std::ptr::null_mut();
        std::ptr::copy_nonoverlapping(name.as_ptr(), data as *mut u8, name.len());
        *data.add(name.len()) = 0;
        (*ret).h_name = data;
        (*ret).h_aliases = aliases;
        (*ret).h_addrtype = af;
        (*ret).h_length = alen as c_int;
        (*ret).h_addr_list = list;
    }
    Ok(())
}

/// The `gethostbyname2_r` logic; `None` means "let libc do it".
unsafe fn hostbyname(
    name: *const c_char,
    af: c_int,
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: usize,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
) -> Option<c_int> {
    if name.is_null() || result.is_null() || h_errnop.is_null() || ret.is_null() {
        return None;
    }
    // SAFETY: the caller passes a C string.
    let cname = unsafe { CStr::from_ptr(name) };
    if is_numeric(cname) || !matches!(af, libc::AF_INET | libc::AF_INET6) {
        return None;
    }
    // SAFETY: out-parameters from the caller.
    let fail = |herr: c_int, rc: c_int| unsafe {
        *result = std::ptr::null_mut();
        *h_errnop = herr;
        Some(rc)
    };
    match mode() {
        Mode::Host => return None,
        Mode::Broken => return fail(TRY_AGAIN, libc::EAGAIN),
        Mode::Tunnel(_) => {}
    }
    let kind = ResolveKind::Addr {
        v4: af == libc::AF_INET,
        v6: af == libc::AF_INET6,
    };
    let Ok(reply) = ask(kind, cname.to_bytes()) else {
        return fail(TRY_AGAIN, libc::EAGAIN);
    };
    match reply.status {
        ResolveStatus::Ok => {}
        ResolveStatus::NotConfigured => return None,
        ResolveStatus::NxDomain => return fail(HOST_NOT_FOUND, 0),
        ResolveStatus::NoData => return fail(NO_DATA, 0),
        ResolveStatus::TryAgain => return fail(TRY_AGAIN, libc::EAGAIN),
        ResolveStatus::NoRecovery => return fail(NO_RECOVERY, 0),
    }
    let addrs: Vec<IpAddr> = reply
        .addrs
        .iter()
        .copied()
        .filter(|a| a.is_ipv4() == (af == libc::AF_INET))
        .collect();
    if addrs.is_empty() {
        return fail(NO_DATA, 0);
    }
    let hname = if reply.name.is_empty() {
        cname.to_bytes()
    } else {
        &reply.name[..]
    };
    // SAFETY: the caller's buffers.
    match unsafe { fill_hostent(ret, buf, buflen, hname, af, &addrs) } {
        Ok(()) => {
            // SAFETY: the caller's out-parameters.
            unsafe {
                *result = ret;
                *h_errnop = 0;
            }
            Some(0)
        }
        Err(e) => fail(NETDB_INTERNAL, e),
    }
}

/// `gethostbyname2_r`, through the tunnel when the config has `DNS =`.
///
/// # Safety
/// As for libc's `gethostbyname2_r`.
#[no_mangle]
pub unsafe extern "C" fn gethostbyname2_r(
    name: *const c_char,
    af: c_int,
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: usize,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
) -> c_int {
    // SAFETY: forwarded unchanged.
    let pass = || unsafe { real::gethostbyname2_r(name, af, ret, buf, buflen, result, h_errnop) };
    hook(
        pass,
        // SAFETY: as above.
        || unsafe { hostbyname(name, af, ret, buf, buflen, result, h_errnop) }.unwrap_or_else(pass),
        libc::EIO,
    )
}

/// `gethostbyname_r` (IPv4), through the tunnel when the config has `DNS =`.
///
/// # Safety
/// As for libc's `gethostbyname_r`.
#[no_mangle]
pub unsafe extern "C" fn gethostbyname_r(
    name: *const c_char,
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: usize,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
) -> c_int {
    // SAFETY: forwarded unchanged.
    let pass = || unsafe { real::gethostbyname_r(name, ret, buf, buflen, result, h_errnop) };
    hook(
        pass,
        || {
            // SAFETY: the caller's arguments, as above.
            unsafe { hostbyname(name, libc::AF_INET, ret, buf, buflen, result, h_errnop) }
                .unwrap_or_else(pass)
        },
        libc::EIO,
    )
}

/// Per-thread storage behind `gethostbyname{,2}` (libc's is per process and
/// not thread-safe; ours is at least per thread).
struct HostentSlot {
    ent: hostent,
    buf: [u64; 2048],
}

thread_local! {
    static SLOT: std::cell::UnsafeCell<Option<Box<HostentSlot>>> = const { std::cell::UnsafeCell::new(None) };
}

/// This thread's `hostent` slot (made on first use).
fn slot() -> Option<*mut HostentSlot> {
    SLOT.try_with(|s| {
        // SAFETY: only this thread touches its slot, and never re-entrantly
        // (the returned pointer is the caller's until its next call).
        let s = unsafe { &mut *s.get() };
        let b = s.get_or_insert_with(|| {
            Box::new(HostentSlot {
                // SAFETY: plain old data; all-zero is valid.
                ent: unsafe { std::mem::zeroed() },
                buf: [0; 2048],
            })
        });
        &mut **b as *mut HostentSlot
    })
    .ok()
}

/// Runs a `*_r` lookup into this thread's static slot, as the non-`_r`
/// functions do: the result (or null, with `h_errno` set) is the caller's
/// until the thread's next such call.
fn in_slot(
    lookup: impl FnOnce(*mut hostent, *mut c_char, usize, *mut *mut hostent, *mut c_int) -> c_int,
) -> *mut hostent {
    let Some(slot) = slot() else {
        set_h_errno(NO_RECOVERY);
        return std::ptr::null_mut();
    };
    let mut result: *mut hostent = std::ptr::null_mut();
    let mut herr: c_int = 0;
    // SAFETY: the slot lives as long as the thread and is not borrowed
    // elsewhere; the buffer length is its real size.
    let (ent, buf, len) = unsafe {
        (
            std::ptr::addr_of_mut!((*slot).ent),
            (*slot).buf.as_mut_ptr() as *mut c_char,
            std::mem::size_of_val(&(*slot).buf),
        )
    };
    lookup(ent, buf, len, &mut result, &mut herr);
    if result.is_null() {
        set_h_errno(herr);
    }
    result
}

/// `gethostbyname2`, through the tunnel when the config has `DNS =`.
///
/// # Safety
/// As for libc's `gethostbyname2`.
#[no_mangle]
pub unsafe extern "C" fn gethostbyname2(name: *const c_char, af: c_int) -> *mut hostent {
    if !matches!(mode(), Mode::Tunnel(_)) {
        // SAFETY: forwarded unchanged.
        return unsafe { real::gethostbyname2(name, af) };
    }
    // SAFETY: `in_slot` hands over a live hostent and buffer of that size.
    in_slot(|ent, buf, len, result, herr| unsafe {
        gethostbyname2_r(name, af, ent, buf, len, result, herr)
    })
}

/// `gethostbyname` (IPv4), through the tunnel when the config has `DNS =`.
///
/// # Safety
/// As for libc's `gethostbyname`.
#[no_mangle]
pub unsafe extern "C" fn gethostbyname(name: *const c_char) -> *mut hostent {
    // SAFETY: as for gethostbyname2.
    unsafe { gethostbyname2(name, libc::AF_INET) }
}

/// The `gethostbyaddr_r` logic; `None` means "let libc do it".
#[allow(clippy::too_many_arguments)] // the C signature
unsafe fn hostbyaddr(
    addr: *const c_void,
    len: socklen_t,
    ty: c_int,
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: usize,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
) -> Option<c_int> {
    if addr.is_null() || result.is_null() || h_errnop.is_null() || ret.is_null() {
        return None;
    }
    let ip = match (ty, len) {
        (libc::AF_INET, 4) => {
            let mut o = [0u8; 4];
            // SAFETY: the caller's 4-byte address.
            unsafe { std::ptr::copy_nonoverlapping(addr as *const u8, o.as_mut_ptr(), 4) };
            IpAddr::from(o)
        }
        (libc::AF_INET6, 16) => {
            let mut o = [0u8; 16];
            // SAFETY: the caller's 16-byte address.
            unsafe { std::ptr::copy_nonoverlapping(addr as *const u8, o.as_mut_ptr(), 16) };
            IpAddr::from(o)
        }
        _ => return None,
    };
    // SAFETY: out-parameters from the caller.
    let fail = |herr: c_int, rc: c_int| unsafe {
        *result = std::ptr::null_mut();
        *h_errnop = herr;
        Some(rc)
    };
    match mode() {
        Mode::Host => return None,
        Mode::Broken => return fail(TRY_AGAIN, libc::EAGAIN),
        Mode::Tunnel(_) => {}
    }
    let Ok(reply) = ask(ResolveKind::Reverse(ip), b"") else {
        return fail(TRY_AGAIN, libc::EAGAIN);
    };
    match reply.status {
        ResolveStatus::Ok if !reply.name.is_empty() && !reply.name.contains(&0) => {}
        ResolveStatus::NotConfigured => return None,
        ResolveStatus::TryAgain => return fail(TRY_AGAIN, libc::EAGAIN),
        ResolveStatus::NoRecovery => return fail(NO_RECOVERY, 0),
        _ => return fail(HOST_NOT_FOUND, 0),
    }
    // SAFETY: the caller's buffers.
    match unsafe { fill_hostent(ret, buf, buflen, &reply.name, ty, &[ip]) } {
        Ok(()) => {
            // SAFETY: the caller's out-parameters.
            unsafe {
                *result = ret;
                *h_errnop = 0;
            }
            Some(0)
        }
        Err(e) => fail(NETDB_INTERNAL, e),
    }
}

/// `gethostbyaddr_r`, reverse lookups through the tunnel when the config
/// has `DNS =`.
///
/// # Safety
/// As for libc's `gethostbyaddr_r`.
#[no_mangle]
pub unsafe extern "C" fn gethostbyaddr_r(
    addr: *const c_void,
    len: socklen_t,
    ty: c_int,
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: usize,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
) -> c_int {
    let pass =
        // SAFETY: forwarded unchanged.
        || unsafe { real::gethostbyaddr_r(addr, len, ty, ret, buf, buflen, result, h_errnop) };
    hook(
        pass,
        || {
            // SAFETY: the caller's arguments, as above.
            unsafe { hostbyaddr(addr, len, ty, ret, buf, buflen, result, h_errnop) }
                .unwrap_or_else(pass)
        },
        libc::EIO,
    )
}

/// `gethostbyaddr`, through the tunnel when the config has `DNS =`.
///
/// # Safety
/// As for libc's `gethostbyaddr`.
#[no_mangle]
pub unsafe extern "C" fn gethostbyaddr(
    addr: *const c_void,
    len: socklen_t,
    ty: c_int,
) -> *mut hostent {
    if !matches!(mode(), Mode::Tunnel(_)) {
        // SAFETY: forwarded unchanged.
        return unsafe { real::gethostbyaddr(addr, len, ty) };
    }
    // SAFETY: `in_slot` hands over a live hostent and buffer of that size.
    in_slot(|ent, buf, buflen, result, herr| unsafe {
        gethostbyaddr_r(addr, len, ty, ent, buf, buflen, result, herr)
    })
}

// ---------------------------------------------------------------- getnameinfo

unsafe fn do_getnameinfo(
    sa: *const sockaddr,
    salen: socklen_t,
    host: *mut c_char,
    hostlen: socklen_t,
    serv: *mut c_char,
    servlen: socklen_t,
    flags: c_int,
) -> c_int {
    // SAFETY: forwarded unchanged.
    let pass = || unsafe { real::getnameinfo(sa, salen, host, hostlen, serv, servlen, flags) };
    if host.is_null() || hostlen == 0 || flags & NI_NUMERICHOST != 0 {
        return pass();
    }
    // SAFETY: the caller's (sa, salen).
    let Some(addr) = (unsafe { crate::addr::read(sa, salen) }) else {
        return pass();
    };
    match mode() {
        Mode::Host => return pass(),
        Mode::Broken | Mode::Tunnel(_) => {}
    }
    // The numeric form and the service first: libc's own work.
    let r = unsafe {
        // SAFETY: forwarded, with NI_NUMERICHOST (no lookup).
        real::getnameinfo(
            sa,
            salen,
            host,
            hostlen,
            serv,
            servlen,
            (flags | NI_NUMERICHOST) & !NI_NAMEREQD,
        )
    };
    if r != 0 {
        return r;
    }
    let ip = control::normalize(addr).ip();
    let reply = if matches!(mode(), Mode::Broken) {
        Err(())
    } else {
        ask(ResolveKind::Reverse(ip), b"")
    };
    let name = match reply {
        Ok(r) if r.status == ResolveStatus::Ok && !r.name.is_empty() => r.name,
        Ok(r) if r.status == ResolveStatus::TryAgain => {
            return if flags & NI_NAMEREQD != 0 {
                EAI_AGAIN
            } else {
                0
            };
        }
        Ok(_) => {
            return if flags & NI_NAMEREQD != 0 {
                EAI_NONAME
            } else {
                0
            }
        }
        Err(()) => {
            return if flags & NI_NAMEREQD != 0 {
                EAI_AGAIN
            } else {
                0
            }
        }
    };
    if name.len() + 1 > hostlen as usize || name.contains(&0) {
        return EAI_OVERFLOW;
    }
    // SAFETY: host[..hostlen] is the caller's buffer and the name fits.
    unsafe {
        std::ptr::copy_nonoverlapping(name.as_ptr(), host as *mut u8, name.len());
        *host.add(name.len()) = 0;
    }
    0
}

/// `getnameinfo`, reverse lookups through the tunnel when the config has
/// `DNS =`.
///
/// # Safety
/// As for libc's `getnameinfo`.
#[no_mangle]
pub unsafe extern "C" fn getnameinfo(
    sa: *const sockaddr,
    salen: socklen_t,
    host: *mut c_char,
    hostlen: socklen_t,
    serv: *mut c_char,
    servlen: socklen_t,
    flags: c_int,
) -> c_int {
    hook(
        // SAFETY: forwarded unchanged.
        || unsafe { real::getnameinfo(sa, salen, host, hostlen, serv, servlen, flags) },
        // SAFETY: as above.
        || unsafe { do_getnameinfo(sa, salen, host, hostlen, serv, servlen, flags) },
        libc::EIO,
    )
}

// ---------------------------------------------------------------- res_*

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostent_is_laid_out_in_the_callers_buffer() {
        // SAFETY: plain old data; all-zero is valid.
        let mut ent: hostent = unsafe { std::mem::zeroed() };
        let mut buf = [0u64; 32];
        let addrs: Vec<IpAddr> = vec![
            "10.77.0.1".parse().expect("ip"),
            "10.77.0.9".parse().expect("ip"),
        ];
        let len = std::mem::size_of_val(&buf);
        // SAFETY: `ent` and `buf` are writable for the sizes given.
        let r = unsafe {
            fill_hostent(
                &mut ent,
                buf.as_mut_ptr() as *mut c_char,
                len,
                b"a.test",
                libc::AF_INET,
                &addrs,
            )
        };
        assert_eq!(r, Ok(()));
        // SAFETY: filled just above, pointing into `buf`.
        unsafe {
            assert_eq!(CStr::from_ptr(ent.h_name).to_bytes(), b"a.test");
            assert!((*ent.h_aliases).is_null());
            assert_eq!(ent.h_addrtype, libc::AF_INET);
            assert_eq!(ent.h_length, 4);
            let a0 = std::slice::from_raw_parts(*ent.h_addr_list as *const u8, 4);
            let a1 = std::slice::from_raw_parts(*ent.h_addr_list.add(1) as *const u8, 4);
            assert_eq!((a0, a1), (&[10, 77, 0, 1][..], &[10, 77, 0, 9][..]));
            assert!((*ent.h_addr_list.add(2)).is_null());
        }
        // Too small, at every size below what it needs: ERANGE, no write past.
        for small in 0..40 {
            // SAFETY: as above, with a shorter length.
            let r = unsafe {
                fill_hostent(
                    &mut ent,
                    buf.as_mut_ptr() as *mut c_char,
                    small,
                    b"a.test",
                    libc::AF_INET,
                    &addrs,
                )
            };
            assert_eq!(r, Err(libc::ERANGE), "{small}");
        }
    }

    #[test]
    fn numeric_names_are_left_to_libc() {
        for n in [&b"10.77.0.1\0"[..], b"127.1\0", b"::1\0", b"fe80::1%eth0\0"] {
            assert!(
                is_numeric(CStr::from_bytes_with_nul(n).expect("c str")),
                "{n:?}"
            );
        }
        for n in [
            &b"only-tunnel.test\0"[..],
            b"localhost\0",
            b"10.77.0.1.example\0",
        ] {
            assert!(
                !is_numeric(CStr::from_bytes_with_nul(n).expect("c str")),
                "{n:?}"
            );
        }
    }
}
