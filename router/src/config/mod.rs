//! The config model and its parser: wg-quick files plus wrapguard's
//! `Route =` extension.
//!
//! ```text
//! [Interface]
//! PrivateKey = <base64>            # required
//! Address = 10.0.0.2/24, fd00::2/64 # required; repeatable, comma-separated
//! ListenPort = 51820                # optional; 0 or absent: ephemeral
//! DNS = 10.0.0.1, corp.example      # addresses and search domains
//! MTU = 1420                        # default 1420
//!
//! [Peer]                            # any number
//! PublicKey = <base64>              # required, unique
//! PresharedKey = <base64>
//! Endpoint = host:port | [v6]:port | hostname:port
//! AllowedIPs = 10.0.0.0/24, fd00::/64
//! PersistentKeepalive = 25 | off
//! Route = CIDR[:proto[:port|port-port]]
//! ```
//!
//! Keys and section names are case-insensitive, `#` starts a comment
//! anywhere, whitespace around keys, values and list items is ignored.
//! wg-quick-only keys are accepted with a warning. Parsing works on `&str`
//! with a source name for messages; [`Config::from_path`] is the only code
//! here that touches the file system.

mod error;
mod keys;
mod model;
mod parse;
pub(crate) mod text;

use std::path::Path;

pub use error::{
    permission_warning, ConfigError, ConfigErrorKind, KeyHint, LoadError, Section, Warning,
    WarningKind,
};
pub use keys::{KeyError, PresharedKey, PrivateKey, PublicKey, KEY_LEN};
pub use model::{Config, ConfigRoute, Endpoint, Interface, ParsedConfig, Peer, DEFAULT_MTU};

impl Config {
    /// Parses config text. `source` names it in messages (usually the
    /// path as the user wrote it).
    pub fn parse(text: &str, source: &str) -> Result<ParsedConfig, ConfigError> {
        parse::parse(text, source)
    }

    /// Reads and parses a file, adding a warning if other users can read
    /// it. The text read is wiped from memory afterwards.
    pub fn from_path(path: &Path) -> Result<ParsedConfig, LoadError> {
        use std::io::Read as _;
        use zeroize::Zeroize as _;

        let io = |error| LoadError::Io {
            path: path.to_path_buf(),
            error,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mode = file.metadata().map_err(io)?.permissions();
        let mut bytes = Vec::new();
        let read = file.read_to_end(&mut bytes);
        let source = path.display().to_string();
        let result = match read {
            Err(e) => Err(io(e)),
            Ok(_) => match std::str::from_utf8(&bytes) {
                Err(_) => Err(LoadError::NotUtf8 {
                    path: path.to_path_buf(),
                }),
                Ok(text) => parse::parse(text, &source).map_err(LoadError::Config),
            },
        };
        bytes.zeroize();
        let mut parsed = result?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            if let Some(w) = permission_warning(&source, mode.mode()) {
                parsed.warnings.insert(0, w);
            }
        }
        #[cfg(not(unix))]
        let _ = mode;
        Ok(parsed)
    }
}
