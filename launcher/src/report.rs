//! One line of a diagnosis (`--doctor`, `--self-test`):
//! `ok|warn|fail  <what>  — <fix>`.

use std::fmt;

/// Short public key for messages (`AbCdEfGh…`), as the engine's logs show it.
pub fn peer_label(b64: &str) -> String {
    format!("{}…", b64.get(..8).unwrap_or(b64))
}

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Fine.
    Ok,
    /// Works, but deserves attention.
    Warn,
    /// Will not work as it is.
    Fail,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        })
    }
}

/// One checked fact and, unless it is fine, what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// Outcome.
    pub level: Level,
    /// What was checked and what was found (one line).
    pub what: String,
    /// What to do (empty when nothing needs doing).
    pub fix: String,
}

impl Check {
    /// A passed check.
    pub fn ok(what: impl Into<String>) -> Check {
        Check {
            level: Level::Ok,
            what: what.into(),
            fix: String::new(),
        }
    }

    /// A warning with its fix.
    pub fn warn(what: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            level: Level::Warn,
            what: what.into(),
            fix: fix.into(),
        }
    }

    /// A failure with its fix.
    pub fn fail(what: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            level: Level::Fail,
            what: what.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for Check {
    /// `fail  what  — fix` (one line; newlines in the parts become spaces).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let one = |s: &str| s.replace(['\n', '\r'], " ");
        write!(f, "{:<4}  {}", self.level.to_string(), one(&self.what))?;
        if !self.fix.is_empty() {
            write!(f, "  — {}", one(&self.fix))?;
        }
        Ok(())
    }
}

/// The worst level in `checks` (`Ok` for none).
pub fn worst(checks: &[Check]) -> Level {
    checks.iter().map(|c| c.level).max().unwrap_or(Level::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_one_line() {
        assert_eq!(Check::ok("shim loads").to_string(), "ok    shim loads");
        assert_eq!(
            Check::fail("no\nkey", "add one").to_string(),
            "fail  no key  — add one"
        );
        assert_eq!(worst(&[Check::ok("a"), Check::warn("b", "c")]), Level::Warn);
        assert_eq!(worst(&[]), Level::Ok);
    }
}
