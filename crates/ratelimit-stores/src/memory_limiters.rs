//! The built-in algorithms on the [`MemoryStore`]: read the keys, run the algorithm's state
//! transition (the same `*_step` functions the Lua scripts transcribe), apply the write, and
//! turn the reply into the outcome with the same arithmetic as for Redis.

use std::sync::Arc;

use crate::memory::{LockedWindows, MemoryStore};
use crate::window_key::WindowKey;
use ratelimit_core::algorithms::CounterWrite;
use ratelimit_core::algorithms::{
    CachedFixedWindow, FixedWindow, LimitOutcome, RemainingOutcome, SlidingWindow, TokenBucket,
};
use ratelimit_core::error::ScriptError;
use ratelimit_core::keys;
use ratelimit_core::reply::StoreError;

/// The counter key `P:I:<floor(now / window)>` (the key the scripts use), in compact form.
pub fn window_key(store: &MemoryStore, prefixed_id: &str, window_ms: u64, now: u64) -> WindowKey {
    WindowKey::at(store.window_base(prefixed_id), keys::bucket(now, window_ms))
}

/// Where a window algorithm reads and writes its counters: the store, each call under its
/// key's shard lock, or a batch's run holding every shard ([`LockedWindows`]). The algorithms
/// below are written once, against this.
pub trait WindowCounters {
    /// The live count of counter `key` (`base`: the `<prefix>:<identifier>` it belongs to).
    fn count(&self, key: WindowKey, base: &str, now: u64) -> Option<i64>;

    /// Runs `step` on counter `key` and applies its write, atomically for that key.
    fn update<R>(
        &mut self,
        key: WindowKey,
        now: u64,
        step: impl FnOnce(Option<i64>) -> Result<(Option<CounterWrite>, R), StoreError>,
    ) -> Result<R, StoreError>;
}

impl WindowCounters for &Arc<MemoryStore> {
    fn count(&self, key: WindowKey, base: &str, now: u64) -> Option<i64> {
        self.window_count(key, base, now)
    }

    fn update<R>(
        &mut self,
        key: WindowKey,
        now: u64,
        step: impl FnOnce(Option<i64>) -> Result<(Option<CounterWrite>, R), StoreError>,
    ) -> Result<R, StoreError> {
        self.update_window(key, now, step)
    }
}

impl WindowCounters for LockedWindows<'_> {
    fn count(&self, key: WindowKey, _base: &str, now: u64) -> Option<i64> {
        // A locked run only exists while no text key is window-shaped: the table is all.
        LockedWindows::count(self, key, now)
    }

    fn update<R>(
        &mut self,
        key: WindowKey,
        now: u64,
        step: impl FnOnce(Option<i64>) -> Result<(Option<CounterWrite>, R), StoreError>,
    ) -> Result<R, StoreError> {
        LockedWindows::update(self, key, now, step)
    }
}

/// Script errors read as Redis' own error text, as they would through Redis.
fn script_error(err: ScriptError) -> StoreError {
    StoreError::Redis(err.to_string())
}

/// The dynamic limit, as the scripts find it: the first of the keys (most specific first) set.
fn dynamic(store: &MemoryStore, dynamic_keys: &[&str], now: u64) -> Option<f64> {
    dynamic_keys
        .iter()
        .find(|key| store.is_live(key, now))
        .and_then(|key| store.number(key, now))
}

pub fn fixed_window_limit(
    store: &Arc<MemoryStore>,
    algo: &FixedWindow,
    prefixed_id: &str,
    now: u64,
    rate: f64,
    dynamic_keys: &[&str],
) -> Result<LimitOutcome, StoreError> {
    let dynamic_limit = dynamic(store, dynamic_keys, now);
    let key = window_key(store, prefixed_id, algo.window_ms, now);
    fixed_window_limit_at(&mut &*store, algo, key, now, rate, dynamic_limit)
}

/// [`fixed_window_limit`] on the call's counter `key` (see [`window_key`]).
pub fn fixed_window_limit_at(
    counters: &mut impl WindowCounters,
    algo: &FixedWindow,
    key: WindowKey,
    now: u64,
    rate: f64,
    dynamic_limit: Option<f64>,
) -> Result<LimitOutcome, StoreError> {
    let reply = counters.update(key, now, |counter| {
        let step = algo
            .limit_step(counter, rate, dynamic_limit)
            .map_err(script_error)?;
        Ok((Some(step.write), step.reply))
    })?;
    Ok(algo.limit_outcome(&reply, now))
}

pub fn fixed_window_remaining(
    store: &MemoryStore,
    algo: &FixedWindow,
    prefixed_id: &str,
    now: u64,
    dynamic_keys: &[&str],
) -> RemainingOutcome {
    let key = window_key(store, prefixed_id, algo.window_ms, now);
    let counter = store.window_count(key, prefixed_id, now);
    let reply = algo.remaining_step(counter, dynamic(store, dynamic_keys, now));
    algo.remaining_outcome(&reply, now)
}

pub fn sliding_window_limit(
    store: &Arc<MemoryStore>,
    algo: &SlidingWindow,
    prefixed_id: &str,
    now: u64,
    rate: f64,
    dynamic_keys: &[&str],
) -> Result<LimitOutcome, StoreError> {
    let dynamic_limit = dynamic(store, dynamic_keys, now);
    let key = window_key(store, prefixed_id, algo.window_ms, now);
    sliding_window_limit_at(
        &mut &*store,
        algo,
        prefixed_id,
        key,
        now,
        rate,
        dynamic_limit,
    )
}

/// [`sliding_window_limit`] on the call's current counter `key` (see [`window_key`]).
pub fn sliding_window_limit_at(
    counters: &mut impl WindowCounters,
    algo: &SlidingWindow,
    prefixed_id: &str,
    key: WindowKey,
    now: u64,
    rate: f64,
    dynamic_limit: Option<f64>,
) -> Result<LimitOutcome, StoreError> {
    // The previous window is read before the current one is updated (on the store, never two
    // shard locks at once); it only changes when callers' clocks disagree about which window is
    // current.
    let previous = counters.count(key.previous(), prefixed_id, now);
    let reply = counters.update(key, now, |current| {
        let step = algo
            .limit_step(current, previous, now, rate, dynamic_limit)
            .map_err(script_error)?;
        Ok((step.write, step.reply))
    })?;
    Ok(algo.limit_outcome(&reply, now))
}

pub fn sliding_window_remaining(
    store: &MemoryStore,
    algo: &SlidingWindow,
    prefixed_id: &str,
    now: u64,
    dynamic_keys: &[&str],
) -> RemainingOutcome {
    let current_key = window_key(store, prefixed_id, algo.window_ms, now);
    let previous_key = current_key.previous();
    let reply = algo.remaining_step(
        store.window_count(current_key, prefixed_id, now),
        store.window_count(previous_key, prefixed_id, now),
        now,
        dynamic(store, dynamic_keys, now),
    );
    algo.remaining_outcome(&reply, now)
}

pub fn token_bucket_limit(
    store: &Arc<MemoryStore>,
    algo: &TokenBucket,
    prefixed_id: &str,
    now: u64,
    rate: f64,
    dynamic_keys: &[&str],
) -> Result<LimitOutcome, StoreError> {
    let dynamic_limit = dynamic(store, dynamic_keys, now);
    let reply = store.update_bucket(&TokenBucket::key(prefixed_id), now, |state| {
        let step = algo.limit_step(state, now, rate, dynamic_limit);
        (step.write, step.reply.map_err(script_error))
    })?;
    Ok(algo.limit_outcome(&reply))
}

pub fn token_bucket_remaining(
    store: &MemoryStore,
    algo: &TokenBucket,
    prefixed_id: &str,
    now: u64,
    dynamic_keys: &[&str],
) -> RemainingOutcome {
    let state = store.bucket(&TokenBucket::key(prefixed_id), now);
    let reply = algo.remaining_step(state, dynamic(store, dynamic_keys, now));
    algo.remaining_outcome(&reply, now)
}

/// cachedFixedWindow's script: increments the window counter and returns it.
pub fn cached_fixed_window_increment(
    store: &Arc<MemoryStore>,
    algo: &CachedFixedWindow,
    prefixed_id: &str,
    now: u64,
    rate: f64,
) -> Result<i64, StoreError> {
    let key = window_key(store, prefixed_id, algo.window_ms, now);
    store.update_window(key, now, |counter| {
        let step = algo.limit_step(counter, rate).map_err(script_error)?;
        Ok((Some(step.write), step.reply))
    })
}

pub fn cached_fixed_window_used(
    store: &MemoryStore,
    algo: &CachedFixedWindow,
    prefixed_id: &str,
    now: u64,
) -> i64 {
    let key = window_key(store, prefixed_id, algo.window_ms, now);
    CachedFixedWindow::remaining_step(store.window_count(key, prefixed_id, now))
}

/// resetUsedTokens of a window algorithm: the keys `P:I:<integer>`, as the reset script.
pub fn reset_windows(store: &MemoryStore, prefixed_id: &str, now: u64) -> usize {
    store.delete_windows_of(prefixed_id, now)
}

/// resetUsedTokens of a token bucket: the key `P:I` itself.
pub fn reset_bucket(store: &MemoryStore, prefixed_id: &str, now: u64) -> usize {
    usize::from(store.delete(&TokenBucket::key(prefixed_id), now))
}
