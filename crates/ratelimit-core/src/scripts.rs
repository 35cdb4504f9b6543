//! The Lua scripts, sent EVALSHA-first with an EVAL fallback on `NOSCRIPT` (like upstream).
//!
//! They are our own text (in `src/lua/`), so their SHA1s differ from upstream's hard-coded ones.
//! Every algorithm script starts with `#!lua flags=allow-key-locking` (Upstash locks only the
//! keys in KEYS, so every key a script touches is declared there); the reset script has no
//! shebang because it scans arbitrary keys. Stock Redis rejects the flag: a bridge such as our
//! `upstash-rest-server` strips it (`upstash_rest_server::strip_key_locking`).
//!
//! The Rust state transitions in [`crate::algorithms`] are the specification; each script is a
//! transcription of its `*_step` function, and `tests/lua_vs_rust.rs` checks they agree.

use std::fmt;
use std::sync::OnceLock;

use sha1::{Digest, Sha1};

/// The first line of every algorithm script.
pub const KEY_LOCKING_SHEBANG: &str = "#!lua flags=allow-key-locking";

/// A Lua script and its (lazily computed) SHA1.
pub struct Script {
    /// A short stable name, e.g. `"fixedWindow.limit"`, for errors and logs.
    pub name: &'static str,
    /// The exact script text; its SHA1 is what EVALSHA sends.
    pub source: &'static str,
    sha1: OnceLock<String>,
    stock_sha1: OnceLock<String>,
}

impl Script {
    /// A script built at run time (composed scripts); it lives for the rest of the process.
    pub(crate) fn leak(name: &'static str, source: String) -> &'static Script {
        Box::leak(Box::new(Script::new(
            name,
            Box::leak(source.into_boxed_str()),
        )))
    }

    const fn new(name: &'static str, source: &'static str) -> Script {
        Script {
            name,
            source,
            sha1: OnceLock::new(),
            stock_sha1: OnceLock::new(),
        }
    }

    /// Lower-case hex SHA1 of [`Script::source`], as Redis names cached scripts.
    /// (`'static` when called on the statics below.)
    pub fn sha1(&self) -> &str {
        self.sha1.get_or_init(|| hex_sha1(self.source))
    }

    /// The text stock Redis runs: the key-locking line emptied (Redis 7 rejects the unknown
    /// flag; the line stays, blank, so Lua error line numbers match the source).
    pub fn stock_source(&self) -> &'static str {
        let source: &'static str = self.source;
        stock_source_of(source)
    }

    /// SHA1 of [`Script::stock_source`], for EVALSHA on stock Redis.
    pub fn stock_sha1(&self) -> &str {
        self.stock_sha1
            .get_or_init(|| hex_sha1(self.stock_source()))
    }
}

/// The text stock Redis runs for a script text with the key-locking line (the line emptied), or
/// the text itself when it has none.
pub fn stock_source_of(source: &str) -> &str {
    source.strip_prefix(KEY_LOCKING_SHEBANG).unwrap_or(source)
}

/// Lower-case hex SHA1 of a script text, as Redis names cached scripts.
pub fn hex_sha1(text: &str) -> String {
    Sha1::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Script")
            .field("name", &self.name)
            .field("sha1", &self.sha1())
            .finish()
    }
}

pub static FIXED_WINDOW_LIMIT: Script = Script::new(
    "fixedWindow.limit",
    include_str!("lua/fixed_window_limit.lua"),
);
pub static FIXED_WINDOW_REMAINING: Script = Script::new(
    "fixedWindow.getRemaining",
    include_str!("lua/fixed_window_remaining.lua"),
);
pub static SLIDING_WINDOW_LIMIT: Script = Script::new(
    "slidingWindow.limit",
    include_str!("lua/sliding_window_limit.lua"),
);
pub static SLIDING_WINDOW_REMAINING: Script = Script::new(
    "slidingWindow.getRemaining",
    include_str!("lua/sliding_window_remaining.lua"),
);
pub static TOKEN_BUCKET_LIMIT: Script = Script::new(
    "tokenBucket.limit",
    include_str!("lua/token_bucket_limit.lua"),
);
pub static TOKEN_BUCKET_REMAINING: Script = Script::new(
    "tokenBucket.getRemaining",
    include_str!("lua/token_bucket_remaining.lua"),
);
pub static CACHED_FIXED_WINDOW_LIMIT: Script = Script::new(
    "cachedFixedWindow.limit",
    include_str!("lua/cached_fixed_window_limit.lua"),
);
pub static CACHED_FIXED_WINDOW_REMAINING: Script = Script::new(
    "cachedFixedWindow.getRemaining",
    include_str!("lua/cached_fixed_window_remaining.lua"),
);
pub static MULTI_FIXED_WINDOW_LIMIT: Script = Script::new(
    "multiRegion.fixedWindow.limit",
    include_str!("lua/multi_fixed_window_limit.lua"),
);
pub static MULTI_FIXED_WINDOW_REMAINING: Script = Script::new(
    "multiRegion.fixedWindow.getRemaining",
    include_str!("lua/multi_fixed_window_remaining.lua"),
);
pub static MULTI_SLIDING_WINDOW_LIMIT: Script = Script::new(
    "multiRegion.slidingWindow.limit",
    include_str!("lua/multi_sliding_window_limit.lua"),
);
pub static MULTI_SLIDING_WINDOW_REMAINING: Script = Script::new(
    "multiRegion.slidingWindow.getRemaining",
    include_str!("lua/multi_sliding_window_remaining.lua"),
);
/// `resetUsedTokens`; see [`crate::keys::ResetTarget`] for its KEYS / ARGV.
pub static RESET: Script = Script::new("resetUsedTokens", include_str!("lua/reset.lua"));

/// The deny-list check on its own (used when no limit script runs in the same call, e.g. after
/// an ephemeral-cache block). KEYS `[P:denyList:all, P:ipDenyListStatus]`, ARGV the members.
pub static DENY_LIST_CHECK: Script =
    Script::new("denyList.check", include_str!("lua/deny_list_check.lua"));

static ALL: [&Script; 14] = [
    &FIXED_WINDOW_LIMIT,
    &FIXED_WINDOW_REMAINING,
    &SLIDING_WINDOW_LIMIT,
    &SLIDING_WINDOW_REMAINING,
    &TOKEN_BUCKET_LIMIT,
    &TOKEN_BUCKET_REMAINING,
    &CACHED_FIXED_WINDOW_LIMIT,
    &CACHED_FIXED_WINDOW_REMAINING,
    &MULTI_FIXED_WINDOW_LIMIT,
    &MULTI_FIXED_WINDOW_REMAINING,
    &MULTI_SLIDING_WINDOW_LIMIT,
    &MULTI_SLIDING_WINDOW_REMAINING,
    &RESET,
    &DENY_LIST_CHECK,
];

/// Every script, e.g. to preload them or to map a SHA1 back to its text.
pub fn all() -> &'static [&'static Script] {
    &ALL
}

/// The package's script named `name` (see [`Script::name`]).
pub fn named(name: &str) -> Option<&'static Script> {
    ALL.iter().copied().find(|s| s.name == name)
}

/// For a script text with the key-locking line: the text stock Redis runs and its SHA1; `None`
/// for a text without that line.
pub fn stock_variant(source: &str) -> Option<(&str, String)> {
    let stock = stock_source_of(source);
    (stock.len() != source.len()).then(|| (stock, hex_sha1(stock)))
}

/// The script whose SHA1 is `sha1` (lower or upper case hex).
pub fn by_sha1(sha1: &str) -> Option<&'static Script> {
    ALL.iter()
        .copied()
        .find(|s| s.sha1().eq_ignore_ascii_case(sha1))
}

/// One script invocation: what EVALSHA / EVAL need (`numkeys` is `keys.len()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptCall {
    pub script: &'static Script,
    pub keys: Vec<String>,
    pub args: Vec<String>,
}

impl PartialEq for Script {
    fn eq(&self, other: &Script) -> bool {
        self.source == other.source
    }
}

impl Eq for Script {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_scripts_start_with_the_key_locking_shebang() {
        for script in all() {
            let first_line = script.source.lines().next().unwrap_or("");
            if script.name == RESET.name {
                assert!(!script.source.starts_with("#!"), "{}", script.name);
            } else {
                assert_eq!(first_line, KEY_LOCKING_SHEBANG, "{}", script.name);
                assert!(script.source.starts_with("#!lua flags=allow-key-locking\n"));
            }
        }
    }

    #[test]
    fn sha1s_are_lower_case_hex_of_the_source_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for script in all() {
            let sha = script.sha1();
            assert_eq!(sha.len(), 40);
            assert!(sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
            assert!(seen.insert(sha.to_string()), "duplicate {}", script.name);
            assert_eq!(by_sha1(&sha.to_ascii_uppercase()), Some(*script));
        }
        assert_eq!(by_sha1("0000000000000000000000000000000000000000"), None);
        // A known vector, so the hashing itself is checked too.
        let probe = Script::new("probe", "return 1");
        assert_eq!(probe.sha1(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    }

    #[test]
    fn scripts_use_no_upstream_text() {
        // Upstream's scripts were indented template literals with these names; ours are not.
        for script in all() {
            for marker in [
                "effectiveLimit",
                "dynamicLimitKey",
                "incrementBy",
                "  local key ",
            ] {
                assert!(!script.source.contains(marker), "{} {marker}", script.name);
            }
        }
    }
}
