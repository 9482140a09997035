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
//! nameservers; [`redirect`] ([`nameserver`]) names the tunnel server to
//! send it to instead.
//!
//! The files: [`query`] (whether this process resolves through the tunnel,
//! and the `Resolve` exchange), [`nameserver`] (port-53 redirects),
//! [`addrinfo`] (`getaddrinfo`, `getnameinfo`), [`hostent`]
//! (`gethostby*`), [`res_query`] (`res_*`).

pub mod addrinfo;
pub mod hostent;
pub mod nameserver;
pub mod query;
pub mod res_query;

pub use nameserver::{redirect, unredirect};
