//! The usual world of one test: a client namespace (the wrapguard side,
//! leak-guarded) joined to one wireguard-go peer, our keys, a temp dir, and
//! our WireGuard config for that peer.

use crate::conf::{conf_text, PeerSection};
use crate::keys::{keys, Keys};
use crate::netns::{Bg, Netns};
use crate::peer::{PeerSetup, WgPeer};
use crate::tempdir::TempDir;
use std::path::PathBuf;

/// The peer's AllowedIPs for us by default: our tunnel addresses.
pub const OUR_ALLOWED: &str = "10.77.0.2/32,fd77::2/128";

/// Our tunnel IPv4 address.
pub const OUR_V4: &str = "10.77.0.2";

/// Our underlay address toward peer 1 (the client end of its veth).
pub const OUR_UNDERLAY: &str = "192.168.77.2";

/// What the peer knows beyond our key and tunnel addresses.
#[derive(Clone, Copy, Default)]
pub struct PeerOpts<'a> {
    /// Our endpoint, if the peer should know it (it can then initiate).
    pub our_endpoint: Option<&'a str>,
    /// Extra addresses on the peer's loopback (services behind it).
    pub extra_addrs: &'a [&'a str],
    /// More `wg set … peer <us>` arguments (preshared-key, keepalive).
    pub extra_peer_args: &'a [&'a str],
}

/// Where our config sends the peer's traffic.
#[derive(Clone, Copy)]
pub enum Endpoint<'a> {
    /// The peer's IPv4 underlay address and port.
    Peer,
    /// The peer's IPv6 underlay address and port.
    Peer6,
    /// Somewhere else (a relay, a dead port).
    At(&'a str),
    /// No `Endpoint =` line: the peer must call us first.
    None,
}

/// Our config for the one peer. `Conf::DUAL` (v4 + v6) and `Conf::V4` are
/// the bases; change fields with `Conf { peer: "…", ..Conf::V4 }`.
#[derive(Clone, Copy)]
pub struct Conf<'a> {
    /// `Address =`.
    pub address: &'a str,
    /// `AllowedIPs =` of the peer.
    pub allowed_ips: &'a str,
    /// `Endpoint =` of the peer.
    pub endpoint: Endpoint<'a>,
    /// More `[Interface]` lines (`ListenPort = …`, `DNS = …`).
    pub interface: &'a str,
    /// More `[Peer]` lines (`PersistentKeepalive = …`, `Route = …`).
    pub peer: &'a str,
}

impl Conf<'static> {
    /// Both families: 10.77.0.2/24 and fd77::2/64, the peer carrying
    /// 10.77.0.0/24 and fd77::/64, reached at its IPv4 underlay.
    pub const DUAL: Conf<'static> = Conf {
        address: "10.77.0.2/24, fd77::2/64",
        allowed_ips: "10.77.0.0/24, fd77::/64",
        endpoint: Endpoint::Peer,
        interface: "",
        peer: "",
    };
    /// IPv4 only: 10.77.0.2/24, the peer carrying 10.77.0.0/24.
    pub const V4: Conf<'static> = Conf {
        address: "10.77.0.2/24",
        allowed_ips: "10.77.0.0/24",
        endpoint: Endpoint::Peer,
        interface: "",
        peer: "",
    };
}

/// A client namespace joined to wireguard-go peer 1 (10.77.0.1, fd77::1;
/// we are 10.77.0.2, fd77::2). Fields drop in order: the peer first.
pub struct OnePeer {
    /// The wireguard-go peer.
    pub peer: WgPeer,
    /// The wrapguard side (leak-guarded).
    pub client: Netns,
    /// Our keys.
    pub ours: Keys,
    /// Files of the test; removed last.
    pub tmp: TempDir,
    /// Our `ListenPort`, if the peer knows our endpoint ([`OnePeer::listening`]).
    pub listen_port: Option<u16>,
}

impl OnePeer {
    /// The default world: the peer does not know our endpoint.
    pub fn new(tag: &str) -> OnePeer {
        OnePeer::with(tag, PeerOpts::default())
    }

    /// With what the peer should know beyond the defaults.
    pub fn with(tag: &str, o: PeerOpts<'_>) -> OnePeer {
        let tmp = TempDir::new();
        let client = Netns::new(tag);
        let ours = keys();
        let peer = WgPeer::new(
            &client,
            &tmp,
            PeerSetup {
                index: 1,
                our_public: &ours.public,
                our_allowed: OUR_ALLOWED,
                our_endpoint: o.our_endpoint,
                extra_addrs: o.extra_addrs,
                extra_peer_args: o.extra_peer_args,
            },
        );
        OnePeer {
            peer,
            client,
            ours,
            tmp,
            listen_port: None,
        }
    }

    /// The peer knows our endpoint, our underlay address ([`OUR_UNDERLAY`])
    /// and `port`, so it can call us first; our configs listen on `port`.
    pub fn listening(tag: &str, port: u16) -> OnePeer {
        let ours = format!("{OUR_UNDERLAY}:{port}");
        let mut t = OnePeer::with(
            tag,
            PeerOpts {
                our_endpoint: Some(&ours),
                ..PeerOpts::default()
            },
        );
        t.listen_port = Some(port);
        t
    }

    /// Our config `c` written as `wg0.conf`, kept with the world.
    pub fn configured(self, c: Conf<'_>) -> Configured {
        let conf = self.conf("wg0.conf", c);
        Configured { t: self, conf }
    }

    /// The text of our config `c` (with `ListenPort =` first if the peer
    /// was told our endpoint by [`OnePeer::listening`]).
    pub fn conf_text(&self, c: Conf<'_>) -> String {
        let endpoint = match c.endpoint {
            Endpoint::Peer => Some(self.peer.endpoint()),
            Endpoint::Peer6 => Some(self.peer.endpoint6()),
            Endpoint::At(e) => Some(e.to_string()),
            Endpoint::None => None,
        };
        let interface = match self.listen_port {
            Some(p) if c.interface.is_empty() => format!("ListenPort = {p}"),
            Some(p) => format!("ListenPort = {p}\n{}", c.interface),
            None => c.interface.to_string(),
        };
        conf_text(
            &self.ours.private,
            c.address,
            &interface,
            &[PeerSection {
                public_key: &self.peer.keys.public,
                endpoint: endpoint.as_deref(),
                allowed_ips: c.allowed_ips,
                extra: c.peer,
            }],
        )
    }

    /// Writes our config `c` as `name` in the temp dir.
    pub fn conf(&self, name: &str, c: Conf<'_>) -> PathBuf {
        self.tmp.write(name, &self.conf_text(c))
    }

    /// Serves `text` as `/` over HTTP on the peer (`bind`:8080); returns
    /// the server and its access log.
    pub fn serve_page(&self, text: &str, bind: &str) -> (Bg, PathBuf) {
        let root = self
            .tmp
            .webroot(&format!("www-{}", bind.replace(':', "_")), text);
        let log = self
            .tmp
            .join(&format!("http-{}.log", bind.replace(':', "_")));
        (self.peer.http_server(&root, bind, &log), log)
    }
}

/// A [`OnePeer`] with our config for it (`wg0.conf`); the world's fields
/// (`client`, `peer`, `tmp`, …) through `Deref`.
pub struct Configured {
    /// The world.
    pub t: OnePeer,
    /// Our config.
    pub conf: PathBuf,
}

impl std::ops::Deref for Configured {
    type Target = OnePeer;
    fn deref(&self) -> &OnePeer {
        &self.t
    }
}

impl std::ops::DerefMut for Configured {
    fn deref_mut(&mut self) -> &mut OnePeer {
        &mut self.t
    }
}
