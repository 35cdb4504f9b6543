//! Compact keys for the memory store's window counters.
//!
//! Nearly every key a limiter writes is a window counter, `<prefix>:<identifier>:<window>`. The
//! memory store keeps those without the key text: a 128-bit keyed hash of `<prefix>:<identifier>`
//! plus the window number, 24 bytes inline in the table slot, where a `Box<str>` key costs a
//! 16-byte slot field plus a heap allocation (64 bytes for a typical 40-byte key). At a million
//! keys that halves the store's memory and saves an allocation per new key.
//!
//! The hash is two independently keyed SipHash-1-3 (keys from std's `RandomState`, seeded from
//! the OS per process, mixed with the host's randomness where there is no OS: `seed_hash_keys`),
//! so identifiers chosen by clients cannot be crafted to collide; a chance collision of both
//! 64-bit halves among a million keys is about 2^-88. Resets by identifier stay exact: they match
//! the hash of `<prefix>:<identifier>`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

use siphasher::sip::SipHasher13;

/// Randomness the host hands in (the WebAssembly binding: `crypto.getRandomValues`), mixed into
/// every hash key. On `wasm32-unknown-unknown` std's `RandomState` has no OS randomness and its
/// keys are the same in every isolate, so without this identifiers could be crafted to collide
/// in the memory store's tables.
static HOST_SEED: OnceLock<[u64; 2]> = OnceLock::new();

/// Mixes `seed` into the hash keys of every memory store made from now on (the first call wins;
/// false when a seed was already set).
pub fn seed_hash_keys(seed: [u64; 2]) -> bool {
    HOST_SEED.set(seed).is_ok()
}

/// A SipHash-1-3 `BuildHasher` with secret keys: the OS's (through `RandomState`, new keys each
/// time) mixed with the host's seed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyedState {
    k0: u64,
    k1: u64,
}

impl KeyedState {
    pub(crate) fn new() -> KeyedState {
        let os = RandomState::new();
        let host = HOST_SEED.get().copied().unwrap_or_default();
        KeyedState {
            k0: os.hash_one(0u8) ^ host[0],
            k1: os.hash_one(1u8) ^ host[1],
        }
    }
}

impl BuildHasher for KeyedState {
    type Hasher = SipHasher13;

    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.k0, self.k1)
    }
}

/// `<prefix>:<identifier>` hashed, plus the window number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowKey {
    base: [u64; 2],
    window: i64,
}

impl std::hash::Hash for WindowKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // One half of the keyed hash is random enough for the table; the window tells apart a
        // base's current and previous windows.
        state.write_u64(self.base[0]);
        state.write_i64(self.window);
    }
}

/// The hash keys of one store.
pub(crate) struct WindowKeys {
    first: KeyedState,
    second: KeyedState,
}

impl WindowKeys {
    pub(crate) fn new() -> WindowKeys {
        WindowKeys {
            first: KeyedState::new(),
            second: KeyedState::new(),
        }
    }

    /// The hash of a `<prefix>:<identifier>` base.
    pub(crate) fn base(&self, base: &str) -> [u64; 2] {
        [self.first.hash_one(base), self.second.hash_one(base)]
    }

    /// The compact form of `key` when it is `<base>:<integer>` with the integer written the one
    /// way Rust prints it (so distinct texts never share a compact key: "007" and "-0" stay text
    /// keys); otherwise `None`, and the key is kept as text.
    pub(crate) fn parse(&self, key: &str) -> Option<WindowKey> {
        let (base, text) = key.rsplit_once(':')?;
        let digits = text.strip_prefix('-').unwrap_or(text);
        let canonical = match digits.as_bytes() {
            [] => false,
            [b'0'] => digits.len() == text.len(), // "0", not "-0"
            [first, ..] => *first != b'0' && digits.bytes().all(|b| b.is_ascii_digit()),
        };
        if !canonical {
            return None;
        }
        let window: i64 = text.parse().ok()?;
        Some(WindowKey {
            base: self.base(base),
            window,
        })
    }
}

impl WindowKey {
    /// The key of window `window` of an already hashed base: what `parse("<base>:<window>")`
    /// gives, without writing and re-reading the text.
    pub(crate) fn at(base: [u64; 2], window: i64) -> WindowKey {
        WindowKey { base, window }
    }

    /// The same base's previous window (the sliding window reads it beside the current one).
    pub(crate) fn previous(&self) -> WindowKey {
        WindowKey {
            base: self.base,
            window: self.window - 1,
        }
    }

    pub(crate) fn window(&self) -> i64 {
        self.window
    }

    pub(crate) fn has_base(&self, base: [u64; 2]) -> bool {
        self.base == base
    }
}

/// The table's hasher: the key is already a keyed hash, so it only folds it (no second SipHash).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        // splitmix64's finaliser: every input bit reaches the top bits (the shard choice) and
        // the bottom bits (the bucket).
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(23) ^ value).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_i64(&mut self, value: i64) {
        self.write_u64(value as u64);
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BuildFoldHasher;

impl BuildHasher for BuildFoldHasher {
    type Hasher = FoldHasher;

    fn build_hasher(&self) -> FoldHasher {
        FoldHasher::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_keyed_state_has_its_own_keys_and_the_host_seed_changes_them() {
        let a = KeyedState::new();
        let b = KeyedState::new();
        assert_ne!((a.k0, a.k1), (b.k0, b.k1));
        assert_ne!(a.hash_one("p:user"), b.hash_one("p:user"));
        assert_eq!(a.hash_one("p:user"), a.hash_one("p:user"));
        // The seed is XORed into the keys: the same OS keys with another seed hash otherwise.
        let seeded = KeyedState {
            k0: a.k0 ^ 0x1234_5678_9abc_def0,
            k1: a.k1 ^ 0x0fed_cba9_8765_4321,
        };
        assert_ne!(a.hash_one("p:user"), seeded.hash_one("p:user"));
    }

    #[test]
    fn only_canonical_window_keys_are_compacted() {
        let keys = WindowKeys::new();
        let k = keys.parse("@upstash/ratelimit:user:29012345").unwrap();
        assert_eq!(k.window, 29012345);
        assert!(k.has_base(keys.base("@upstash/ratelimit:user")));
        assert_eq!(keys.parse("p:i:-3").map(|k| k.window), Some(-3));
        assert_eq!(keys.parse("p:i:0").map(|k| k.window), Some(0));
        for text in [
            "p:i",
            "p:i:",
            "p:i:007",
            "p:i:-0",
            "p:i:-",
            "p:i:+1",
            "p:i:1.5",
            "p:i:1e3",
            "p:i:99999999999999999999",
            "noseparator",
        ] {
            assert_eq!(keys.parse(text), None, "{text}");
        }
        assert_ne!(keys.parse("a:b:1"), keys.parse("a:b:2"));
        assert_ne!(keys.parse("a:b:1"), keys.parse("a:c:1"));
        assert_eq!(keys.parse("a:b:1"), keys.parse("a:b:1"));
        assert_eq!(
            keys.parse("a:b:-12"),
            Some(WindowKey::at(keys.base("a:b"), -12))
        );
    }
}
