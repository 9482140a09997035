//! Proxy credentials, sans-IO: the `--proxy-auth` file's text (one
//! `user:password` per line; blank lines and `#` comments ignored) and the
//! check of a client's pair against it.

use std::fmt;

/// The accepted user/password pairs.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Credentials({} users, passwords redacted)",
            self.pairs.len()
        )
    }
}

/// Why the credentials file was refused (`line` is 1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFileError {
    /// A line is not `user:password` with a user of 1..=255 bytes and a
    /// password of 0..=255 bytes (RFC 1929's limits).
    BadLine {
        /// The line number.
        line: usize,
    },
    /// No pair at all.
    Empty,
}

impl fmt::Display for AuthFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthFileError::BadLine { line } => write!(
                f,
                "line {line}: expected user:password (user 1 to 255 bytes, password at most 255)"
            ),
            AuthFileError::Empty => f.write_str("no user:password line"),
        }
    }
}

impl std::error::Error for AuthFileError {}

impl Credentials {
    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<Credentials, AuthFileError> {
        let mut pairs = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let l = raw.trim_end_matches('\r');
            if l.trim().is_empty() || l.trim_start().starts_with('#') {
                continue;
            }
            let bad = AuthFileError::BadLine { line: i + 1 };
            let (u, p) = l.split_once(':').ok_or(bad)?;
            if u.is_empty() || u.len() > 255 || p.len() > 255 {
                return Err(bad);
            }
            pairs.push((u.as_bytes().to_vec(), p.as_bytes().to_vec()));
        }
        if pairs.is_empty() {
            return Err(AuthFileError::Empty);
        }
        Ok(Credentials { pairs })
    }

    /// Whether `user`/`pass` is one of the pairs (every pair is compared
    /// in full, so the time taken does not say which byte differed).
    pub fn check(&self, user: &[u8], pass: &[u8]) -> bool {
        let mut ok = false;
        for (u, p) in &self.pairs {
            ok |= same(u, user) & same(p, pass);
        }
        ok
    }
}

/// Equality that reads every byte of equal-length inputs.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        let c = Credentials::parse("# users\nalice:wonder:land\n\nbob:\n").expect("parses");
        assert!(c.check(b"alice", b"wonder:land"));
        assert!(c.check(b"bob", b""));
        assert!(!c.check(b"alice", b"wonder"));
        assert!(!c.check(b"carol", b""));
        assert!(!format!("{c:?}").contains("wonder"));
        assert_eq!(
            Credentials::parse("alice\n"),
            Err(AuthFileError::BadLine { line: 1 })
        );
        assert_eq!(
            Credentials::parse("# x\n:pw\n"),
            Err(AuthFileError::BadLine { line: 2 })
        );
        assert_eq!(Credentials::parse("# only\n"), Err(AuthFileError::Empty));
    }
}
