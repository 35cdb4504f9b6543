//! A built-in [`Algorithm`] on the memory store: the dispatch the bindings call, over the
//! per-algorithm functions of [`crate::memory_limiters`]. Outcomes are plain numbers, as the
//! bindings hand them back: `[success (1/0), limit, remaining, reset]` and
//! `[remaining, reset, limit]`.

use std::sync::Arc;

use ratelimit_core::algorithm::Algorithm;
use ratelimit_core::args::{limit_array, remaining_array};
use ratelimit_core::reply::StoreError;

use crate::memory::{LockedWindows, MemoryStore};
use crate::memory_limiters as mem;
use crate::window_key::WindowKey;

/// limit(), synchronously: the same state transitions as the scripts. cachedFixedWindow counts
/// (its JS side owns the cache arithmetic): `[counter]`.
pub fn limit(
    store: &Arc<MemoryStore>,
    algorithm: &Algorithm,
    key: &str,
    now: u64,
    rate: f64,
    dynamic_keys: &[&str],
) -> Result<Vec<f64>, StoreError> {
    if let Algorithm::Cached(a) = algorithm {
        return mem::cached_fixed_window_increment(store, a, key, now, rate)
            .map(|used| vec![used as f64]);
    }
    limit_numbers(store, algorithm, key, now, rate, dynamic_keys).map(|numbers| numbers.to_vec())
}

/// limit() of a counter algorithm (fixed window, sliding window, token bucket), without an
/// allocation: the hot path of `Redis.memory()`.
pub fn limit_numbers(
    store: &Arc<MemoryStore>,
    algorithm: &Algorithm,
    key: &str,
    now: u64,
    rate: f64,
    dynamic_keys: &[&str],
) -> Result<[f64; 4], StoreError> {
    let outcome = match algorithm {
        Algorithm::Fixed(a) => mem::fixed_window_limit(store, a, key, now, rate, dynamic_keys),
        Algorithm::Sliding(a) => mem::sliding_window_limit(store, a, key, now, rate, dynamic_keys),
        Algorithm::Bucket(a) => mem::token_bucket_limit(store, a, key, now, rate, dynamic_keys),
        Algorithm::Cached(_) => {
            return Err(StoreError::InvalidConfig(
                "the cached fixed window counts; it has no limit outcome".into(),
            ))
        }
    };
    outcome.map(limit_array)
}

/// The window counter a limit call at `now` updates, for the algorithms that keep one (fixed
/// and sliding window): a batch works it out once, to prefetch it and to update it.
pub fn window_of(
    store: &MemoryStore,
    algorithm: &Algorithm,
    key: &str,
    now: u64,
) -> Option<WindowKey> {
    match algorithm {
        Algorithm::Fixed(a) => Some(mem::window_key(store, key, a.window_ms, now)),
        Algorithm::Sliding(a) => Some(mem::window_key(store, key, a.window_ms, now)),
        Algorithm::Bucket(_) | Algorithm::Cached(_) => None,
    }
}

/// [`limit_numbers`] of a window algorithm in a batch's locked run, on the call's counter
/// `window` (from [`window_of`]).
pub fn limit_numbers_locked(
    windows: &mut LockedWindows,
    algorithm: &Algorithm,
    key: &str,
    window: WindowKey,
    now: u64,
    rate: f64,
) -> Result<[f64; 4], StoreError> {
    let outcome = match algorithm {
        Algorithm::Fixed(a) => mem::fixed_window_limit_at(windows, a, window, now, rate, None),
        Algorithm::Sliding(a) => {
            mem::sliding_window_limit_at(windows, a, key, window, now, rate, None)
        }
        Algorithm::Bucket(_) | Algorithm::Cached(_) => {
            return Err(StoreError::InvalidConfig(
                "only window algorithms run in a batch's locked run".into(),
            ))
        }
    };
    outcome.map(limit_array)
}

/// getRemaining().
pub fn remaining(
    store: &MemoryStore,
    algorithm: &Algorithm,
    key: &str,
    now: u64,
    dynamic_keys: &[&str],
) -> [f64; 3] {
    remaining_array(match algorithm {
        Algorithm::Fixed(a) => mem::fixed_window_remaining(store, a, key, now, dynamic_keys),
        Algorithm::Sliding(a) => mem::sliding_window_remaining(store, a, key, now, dynamic_keys),
        Algorithm::Bucket(a) => mem::token_bucket_remaining(store, a, key, now, dynamic_keys),
        Algorithm::Cached(a) => a.remaining_outcome(
            mem::cached_fixed_window_used(store, a, key, now) as f64,
            now,
        ),
    })
}

/// resetUsedTokens().
pub fn reset(store: &MemoryStore, algorithm: &Algorithm, key: &str, now: u64) {
    match algorithm {
        Algorithm::Bucket(_) => mem::reset_bucket(store, key, now),
        _ => mem::reset_windows(store, key, now),
    };
}
