//! Redis key layout (identical to upstream) and `resetUsedTokens` patterns (escaped: our fix).
//!
//! * `P:I` is the *prefixed id*: `[prefix, identifier].join(":")`, no escaping.
//! * Window algorithms keep one counter per aligned window: `P:I:<floor(now / window)>`.
//! * The token bucket keeps one hash at `P:I`.
//! * The optional dynamic limit lives at `P:dynamic:global`.

/// `[prefix, identifier].join(":")`, the id every key and the ephemeral cache are based on.
pub fn prefixed_id(prefix: &str, identifier: &str) -> String {
    format!("{prefix}:{identifier}")
}

/// The global dynamic-limit key of a prefix.
pub fn dynamic_limit_key(prefix: &str) -> String {
    format!("{prefix}:dynamic:global")
}

/// `Math.floor(now / window)`, computed in doubles like upstream. For `now < 2^53` this is the
/// integer quotient; doing it the JS way keeps even absurd inputs identical.
pub fn bucket(now_ms: u64, window_ms: u64) -> i64 {
    (now_ms as f64 / window_ms as f64).floor() as i64
}

/// The counter key of a window: `P:I:<bucket>`.
pub fn window_key(prefixed_id: &str, bucket: i64) -> String {
    format!("{prefixed_id}:{bucket}")
}

/// `(bucket + 1) * window`: the end of the aligned window, which upstream reports as `reset`
/// for every window algorithm (not first-request + window).
pub fn window_reset(bucket: i64, window_ms: u64) -> f64 {
    (bucket as f64 + 1.0) * window_ms as f64
}

/// Escapes the characters Redis's glob matcher treats specially (`\ * ? [ ]`), so a pattern
/// built from a prefix or identifier only matches that text literally.
pub fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        if matches!(c, '\\' | '*' | '?' | '[' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// What the reset script deletes. Passed to the script as KEYS `[pattern]`, ARGV `args`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetTarget {
    /// The SCAN MATCH pattern.
    pub pattern: String,
    /// Empty, or `[literal key prefix]`: then only keys that are that prefix followed by an
    /// integer (a window bucket) are deleted. See [`window_reset_target`].
    pub args: Vec<String>,
}

/// Reset of a window algorithm (fixed, sliding, cached): `escape(P:I) + ":*"`, restricted to
/// `P:I:<integer>`.
///
/// Escaping alone is not enough: `P:user:*` also matches `P:user:1:<bucket>`, the keys of the
/// identifier `user:1`. Bucket keys always end in an integer, so the script additionally checks
/// that whatever follows `P:I:` is one, which no key of another identifier's windows is.
pub fn window_reset_target(prefixed_id: &str) -> ResetTarget {
    ResetTarget {
        pattern: format!("{}:*", escape_glob(prefixed_id)),
        args: vec![format!("{prefixed_id}:")],
    }
}

/// Reset of a token bucket: the single key `escape(P:I)`.
pub fn token_bucket_reset_target(prefixed_id: &str) -> ResetTarget {
    ResetTarget {
        pattern: escape_glob(prefixed_id),
        args: Vec::new(),
    }
}

/// Whether the reset of a window algorithm for `prefixed_id` deletes `key`: the same rule the
/// reset script applies, for an in-memory store.
pub fn is_window_key_of(key: &str, prefixed_id: &str) -> bool {
    key.strip_prefix(prefixed_id)
        .and_then(|rest| rest.strip_prefix(':'))
        .is_some_and(is_integer_text)
}

/// Lua pattern `^%-?%d+$`, as checked by the reset script.
fn is_integer_text(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_upstream_keys() {
        assert_eq!(
            prefixed_id("@upstash/ratelimit", "user"),
            "@upstash/ratelimit:user"
        );
        assert_eq!(prefixed_id("P", ""), "P:");
        assert_eq!(dynamic_limit_key("P"), "P:dynamic:global");
        assert_eq!(bucket(1_700_000_012_345, 10_000), 170_000_001);
        assert_eq!(bucket(9_999, 10_000), 0);
        assert_eq!(bucket(10_000, 10_000), 1);
        assert_eq!(window_key("P:u", 170_000_001), "P:u:170000001");
        assert_eq!(window_key("P:u", -1), "P:u:-1");
        assert_eq!(window_reset(170_000_001, 10_000), 1_700_000_020_000.0);
    }

    #[test]
    fn escapes_glob_characters() {
        assert_eq!(escape_glob("user"), "user");
        assert_eq!(escape_glob("a*b?c[d]e\\f"), "a\\*b\\?c\\[d\\]e\\\\f");
        assert_eq!(escape_glob("é:^-"), "é:^-");
    }

    #[test]
    fn reset_targets_per_algorithm() {
        assert_eq!(
            window_reset_target("P:a*"),
            ResetTarget {
                pattern: "P:a\\*:*".into(),
                args: vec!["P:a*:".into()]
            }
        );
        assert_eq!(
            token_bucket_reset_target("P:a*"),
            ResetTarget {
                pattern: "P:a\\*".into(),
                args: vec![]
            }
        );
    }

    #[test]
    fn window_reset_only_takes_bucket_keys() {
        assert!(is_window_key_of("P:user:170000001", "P:user"));
        assert!(is_window_key_of("P:user:-1", "P:user"));
        assert!(!is_window_key_of("P:user:1:170000001", "P:user"));
        assert!(!is_window_key_of("P:userX:170000001", "P:user"));
        assert!(!is_window_key_of("P:user", "P:user"));
        assert!(!is_window_key_of("P:user:", "P:user"));
        assert!(!is_window_key_of("P:user:-", "P:user"));
        assert!(!is_window_key_of("P:user:12a", "P:user"));
        assert!(!is_window_key_of("P:ab:1", "P:a*"));
    }
}
