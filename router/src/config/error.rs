//! Config errors and warnings. Every message is one line that names the
//! file and line, the offending text (never a key) and what to write.

use std::fmt;
use std::path::PathBuf;

use ipnet::IpNet;

use super::keys::KeyError;
use crate::route::RouteSpecError;

/// A section of a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    /// `[Interface]`: this side of the tunnel.
    Interface,
    /// `[Peer]`: one remote peer.
    Peer,
}

impl fmt::Display for Section {
    /// `[Interface]` or `[Peer]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::Interface => "[Interface]",
            Section::Peer => "[Peer]",
        })
    }
}

/// A hint attached to an unknown key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyHint {
    /// A known key of this section with a similar spelling.
    DidYouMean(&'static str),
    /// The key exists, but in the other section.
    WrongSection(&'static str, Section),
}

/// A config file that cannot be used: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The source name given to the parser (usually the file path).
    pub file: String,
    /// 1-based line number; 0 when the problem is the file as a whole.
    pub line: usize,
    /// What is wrong.
    pub kind: ConfigErrorKind,
}

/// What is wrong with a config. Text fields hold the offending text as it
/// is shown: shortened, with anything key-like replaced by `<redacted>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// A `Key = value` line before any section header.
    OutsideSection {
        /// The key as written.
        key: String,
    },
    /// `[Name]` with a name other than Interface or Peer.
    UnknownSection {
        /// The name as written.
        name: String,
        /// A known section with a similar spelling.
        suggestion: Option<Section>,
    },
    /// A line starting with `[` that is not `[Name]`.
    BadSectionHeader {
        /// The line as written.
        text: String,
    },
    /// A line with no `=`.
    MissingEquals {
        /// The line as written.
        text: String,
    },
    /// A key the section does not have.
    UnknownKey {
        /// The key as written.
        key: String,
        /// The section it appeared in.
        section: Section,
        /// A likely intended key.
        hint: Option<KeyHint>,
    },
    /// A single-valued key given twice in one section.
    DuplicateKey {
        /// The key's canonical name.
        key: &'static str,
        /// The section.
        section: Section,
        /// Where it was first given.
        first_line: usize,
    },
    /// A second `[Interface]` section.
    SecondInterface {
        /// Where the first one starts.
        first_line: usize,
    },
    /// The file has no `[Interface]` section.
    NoInterface,
    /// A required key is missing from a section (the line is the header's).
    MissingKey {
        /// The key's canonical name.
        key: &'static str,
        /// The section.
        section: Section,
    },
    /// A key's value is not a 32-byte base64 key.
    InvalidKey {
        /// `PrivateKey`, `PublicKey` or `PresharedKey`.
        key: &'static str,
        /// The text, for public keys only; `None` for secrets.
        text: Option<String>,
        /// What is wrong with it.
        error: KeyError,
    },
    /// A value (or one item of a list) that does not parse.
    InvalidValue {
        /// The key's canonical name.
        key: &'static str,
        /// The offending value or list item.
        value: String,
        /// What would be accepted.
        expected: &'static str,
    },
    /// A `Route =` value that does not parse.
    InvalidRoute {
        /// The value as written.
        value: String,
        /// What is wrong with it.
        error: RouteSpecError,
    },
    /// Two `[Peer]` sections with the same public key.
    DuplicatePeer {
        /// Where the first of them starts.
        first_line: usize,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.kind)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.kind)
        }
    }
}

impl std::error::Error for ConfigError {}

fn key_example(key: &str) -> &'static str {
    match key {
        "PrivateKey" => "\"PrivateKey = <output of wg genkey>\"",
        "PublicKey" => "\"PublicKey = <the peer's key, from wg pubkey>\"",
        "Address" => "\"Address = 10.0.0.2/32\" (the tunnel address this side uses)",
        _ => "it",
    }
}

impl fmt::Display for ConfigErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ConfigErrorKind as K;
        match self {
            K::OutsideSection { key } => write!(
                f,
                "\"{key}\" is outside any section; put [Interface] or [Peer] above it"
            ),
            K::UnknownSection { name, suggestion } => {
                write!(f, "unknown section \"[{name}]\"; ")?;
                match suggestion {
                    Some(s) => write!(f, "did you mean \"{s}\"?"),
                    None => f.write_str("expected [Interface] or [Peer]"),
                }
            }
            K::BadSectionHeader { text } => write!(
                f,
                "malformed section header \"{text}\"; expected [Interface] or [Peer]"
            ),
            K::MissingEquals { text } => {
                write!(f, "expected \"Key = value\", found \"{text}\"")
            }
            K::UnknownKey { key, section, hint } => {
                write!(f, "unknown key \"{key}\" in {section}; ")?;
                match hint {
                    Some(KeyHint::DidYouMean(k)) => write!(f, "did you mean \"{k}\"?"),
                    Some(KeyHint::WrongSection(k, s)) => {
                        write!(f, "\"{k}\" belongs in {s}")
                    }
                    None => match section {
                        Section::Interface => f.write_str(
                            "expected PrivateKey, Address, ListenPort, DNS or MTU",
                        ),
                        Section::Peer => f.write_str(
                            "expected PublicKey, PresharedKey, Endpoint, AllowedIPs, PersistentKeepalive or Route",
                        ),
                    },
                }
            }
            K::DuplicateKey {
                key,
                section,
                first_line,
            } => write!(
                f,
                "{key} is given twice in {section} (first at line {first_line}); keep one"
            ),
            K::SecondInterface { first_line } => write!(
                f,
                "second [Interface] section (the first is at line {first_line}); a config has exactly one"
            ),
            K::NoInterface => {
                f.write_str("no [Interface] section; add one with PrivateKey and Address")
            }
            K::MissingKey { key, section } => write!(
                f,
                "{section} has no {key}; add {}",
                key_example(key)
            ),
            K::InvalidKey { key, text, error } => {
                let tool = if *key == "PublicKey" {
                    "wg pubkey"
                } else if *key == "PresharedKey" {
                    "wg genpsk"
                } else {
                    "wg genkey"
                };
                match text {
                    Some(t) => write!(f, "invalid {key} \"{t}\": {error}")?,
                    None => write!(f, "invalid {key} (value not shown): {error}")?,
                }
                write!(f, "; expected 44 characters of base64 as printed by {tool}")
            }
            K::InvalidValue {
                key,
                value,
                expected,
            } => write!(f, "invalid {key} \"{value}\"; expected {expected}"),
            K::InvalidRoute { value, error } => {
                write!(f, "invalid Route \"{value}\": {error}")
            }
            K::DuplicatePeer { first_line } => write!(
                f,
                "this [Peer] has the same PublicKey as the [Peer] at line {first_line}; merge the two sections"
            ),
        }
    }
}

/// Something in a config that works but deserves the user's attention.
/// The parser returns these as data; the launcher logs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The source name given to the parser.
    pub file: String,
    /// 1-based line number; 0 for the file as a whole.
    pub line: usize,
    /// What deserves attention.
    pub kind: WarningKind,
}

/// The kinds of [`Warning`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarningKind {
    /// A wg-quick key (Table, PreUp, PostUp, PreDown, PostDown, SaveConfig,
    /// FwMark) that wrapguard accepts and ignores; one warning per key name.
    IgnoredKey {
        /// The key's canonical name.
        key: &'static str,
    },
    /// The file holds a private key and other users may read it.
    ReadableByOthers {
        /// The file's permission bits.
        mode: u32,
    },
    /// The same AllowedIPs prefix is in two peers; as with `wg`, the later
    /// peer receives the traffic.
    AllowedIpsOverlap {
        /// The prefix.
        net: IpNet,
        /// The line of the earlier peer's `AllowedIPs`.
        first_line: usize,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: ", self.file)?;
        } else {
            write!(f, "{}:{}: ", self.file, self.line)?;
        }
        match &self.kind {
            WarningKind::IgnoredKey { key } => write!(
                f,
                "{key} is a wg-quick setting that wrapguard ignores (it creates no interface, routes or hooks)"
            ),
            WarningKind::ReadableByOthers { mode } => write!(
                f,
                "other users can read this file (mode {:04o}) and it holds a private key; run chmod 600 {}",
                mode & 0o7777,
                self.file
            ),
            WarningKind::AllowedIpsOverlap { net, first_line } => write!(
                f,
                "AllowedIPs {net} is also given at line {first_line}; this later peer receives its traffic"
            ),
        }
    }
}

/// The warning for a config file with permission bits `mode`, if group or
/// other users can read it. The caller reads the file's metadata.
pub fn permission_warning(file: &str, mode: u32) -> Option<Warning> {
    (mode & 0o044 != 0).then(|| Warning {
        file: file.to_string(),
        line: 0,
        kind: WarningKind::ReadableByOthers { mode },
    })
}

/// Why [`Config::from_path`](super::Config::from_path) failed.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Io {
        /// The path.
        path: PathBuf,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// The file is not UTF-8 text.
    NotUtf8 {
        /// The path.
        path: PathBuf,
    },
    /// The file was read but is not a valid config.
    Config(ConfigError),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io { path, error } => {
                write!(f, "cannot read config {}: {error}", path.display())
            }
            LoadError::NotUtf8 { path } => write!(
                f,
                "config {} is not UTF-8 text; expected a wg-quick config file",
                path.display()
            ),
            LoadError::Config(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Io { error, .. } => Some(error),
            LoadError::NotUtf8 { .. } => None,
            LoadError::Config(e) => Some(e),
        }
    }
}

impl From<ConfigError> for LoadError {
    fn from(e: ConfigError) -> Self {
        LoadError::Config(e)
    }
}
