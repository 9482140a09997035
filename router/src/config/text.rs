//! Helpers for the text that error messages echo: shortening, redaction of
//! anything that looks like a key, and "did you mean" suggestions.

use super::keys::KEY_BASE64_LEN;

/// At most this many characters of user text are echoed in a message.
const MAX_ECHO: usize = 64;

fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='
}

/// True for a run of base64-alphabet characters that could be key
/// material, whole or in part: 40 or more characters, or 12 or more mixing
/// upper case, lower case and digits (or `+`, `/`), which key names and
/// words do not. Such runs are never echoed.
fn looks_like_key(token: &str) -> bool {
    let b = token.as_bytes();
    if !b.iter().copied().all(is_b64) {
        return false;
    }
    b.len() >= KEY_BASE64_LEN - 4
        || (b.len() >= 12
            && b.iter().any(u8::is_ascii_uppercase)
            && b.iter().any(u8::is_ascii_lowercase)
            && b.iter()
                .any(|&c| c.is_ascii_digit() || c == b'+' || c == b'/'))
}

/// The form of `text` safe to put in an error message: key-like tokens
/// replaced by `<redacted>`, control characters escaped, long text cut.
pub(crate) fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_ECHO + 8));
    let mut count = 0usize;
    // Split into runs of base64-alphabet characters and runs of others.
    let mut pieces: Vec<&str> = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let b64 = rest.as_bytes()[0].is_ascii() && is_b64(rest.as_bytes()[0]);
        let len = rest
            .char_indices()
            .find(|&(_, c)| (c.is_ascii() && is_b64(c as u8)) != b64)
            .map_or(rest.len(), |(i, _)| i);
        let (piece, tail) = rest.split_at(len);
        // A key may be glued to its name by '=' ("PrivateKey=…=").
        match piece.find('=') {
            Some(i) if b64 && !looks_like_key(piece) && looks_like_key(&piece[i + 1..]) => {
                pieces.push(&piece[..=i]);
                pieces.push(&piece[i + 1..]);
            }
            _ => pieces.push(piece),
        }
        rest = tail;
    }
    for part in pieces {
        if looks_like_key(part) {
            out.push_str("<redacted>");
            count += 10;
            continue;
        }
        for c in part.chars() {
            if count >= MAX_ECHO {
                out.push('…');
                return out;
            }
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
            count += 1;
        }
    }
    out
}

/// Levenshtein distance between two short ASCII-case-folded strings.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().flat_map(char::to_lowercase).collect();
    let b: Vec<char> = b.chars().flat_map(char::to_lowercase).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a typo
/// (or `word` is a prefix of it, like "Persistent").
pub(crate) fn suggest(word: &str, candidates: &[&'static str]) -> Option<&'static str> {
    if word.len() > 40 {
        return None;
    }
    let lower = word.to_ascii_lowercase();
    let mut best: Option<(usize, &'static str)> = None;
    for &c in candidates {
        let d = distance(word, c);
        let prefix = lower.len() >= 4 && c.to_ascii_lowercase().starts_with(&lower);
        let limit = (c.len() / 3).clamp(1, 3);
        if (d <= limit || prefix) && !matches!(best, Some((bd, _)) if bd <= d) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_redacted() {
        let key = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
        for text in [
            format!("PrivateKey {key}"),
            format!("PrivateKey={key}"),
            key.to_string(),
            key[..43].to_string(),
            format!("PrivateKey{}", &key[..43]),
            format!("{} {}", &key[..21], &key[21..]),
            format!("[{key}]"),
        ] {
            let s = shown(&text);
            assert!(!s.contains(&key[..20]), "{s}");
            assert!(s.contains("<redacted>"), "{s}");
        }
    }

    #[test]
    fn long_text_is_cut_and_controls_escaped() {
        let s = shown(&"a.".repeat(50));
        assert_eq!(s.chars().count(), 65);
        assert_eq!(shown("a\u{1b}b"), "a\\u{1b}b");
    }

    #[test]
    fn suggestions() {
        let keys = ["PublicKey", "AllowedIPs", "PersistentKeepalive", "Endpoint"];
        assert_eq!(suggest("AllowedIP", &keys), Some("AllowedIPs"));
        assert_eq!(suggest("allowed_ips", &keys), Some("AllowedIPs"));
        assert_eq!(suggest("Persistent", &keys), Some("PersistentKeepalive"));
        assert_eq!(suggest("EndPont", &keys), Some("Endpoint"));
        assert_eq!(suggest("Colour", &keys), None);
    }
}
