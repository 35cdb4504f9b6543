//! The embedded store: limiter state in this process, no server.
//!
//! Every algorithm runs the same state transitions as its Lua twin (`limit_step`,
//! `remaining_step` in [`ratelimit_core::algorithms`]), here applied to a concurrent map instead of Redis:
//! a call reads its keys, runs the step, and applies the write while holding the lock of the
//! key's shard, so each call is atomic for its key, also across worker threads (the store is
//! one per process: the addon is loaded once).
//!
//! Time is the caller's clock (`now`, from JS `Date.now()`), as for the Redis scripts' windows;
//! TTLs expire against it too. Memory stays bounded without per-key timers:
//! - expired entries are treated as absent when touched, and removed by a sweep that runs on a
//!   background thread once the number of writes since the last sweep exceeds the map's size
//!   (so each entry is visited O(1) times per write, amortised);
//! - a cap on the number of keys (`max_keys`): inserting a new key into a full store first sweeps
//!   synchronously; if every entry is still live, the call fails with [`StoreError::Full`]
//!   rather than evicting live limits (which would let callers reset their own limits).
//!
//! Two tables: window counters (`<prefix>:<identifier>:<window>`, nearly every key a limiter
//! writes) live in a compact one keyed by hash (see [`crate::window_key`]: 40 bytes a
//! slot, no key allocation); every other key (token buckets, dynamic limits, text) in one keyed
//! by its text. A window-shaped key is looked up in the compact table first.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;

use crate::window_key::{BuildFoldHasher, KeyedState, WindowKey, WindowKeys};
use ratelimit_core::algorithms::{BucketState, BucketWrite, CounterWrite};
use ratelimit_core::num::lua_tonumber;
use ratelimit_core::reply::{Reply, StoreError};

mod locked_windows;
pub use locked_windows::LockedWindows;

/// Default cap: about 100 MB of limiter state.
pub const DEFAULT_MAX_KEYS: usize = 1_000_000;

/// Fewest writes between two background sweeps.
const MIN_WRITES_BETWEEN_SWEEPS: usize = 4096;

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Counter(i64),
    Bucket(BucketState),
    Text(Box<str>),
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    value: Value,
    /// Unix ms at which the key is gone; 0 = no TTL.
    expires_at: u64,
}

/// A stored value with an expiry (Unix ms; 0 = no TTL).
trait Expiring {
    fn expires_at(&self) -> u64;

    fn live(&self, now: u64) -> bool {
        let at = self.expires_at();
        at == 0 || now < at
    }
}

impl Expiring for Entry {
    fn expires_at(&self) -> u64 {
        self.expires_at
    }
}

fn expiry(now: u64, ttl_ms: u64) -> u64 {
    now.saturating_add(ttl_ms).max(1)
}

/// A window counter: its value and its expiry (Unix ms; 0 = no TTL).
#[derive(Debug, Clone, Copy, PartialEq)]
struct WindowCounter {
    count: i64,
    expires_at: u64,
}

impl Expiring for WindowCounter {
    fn expires_at(&self) -> u64 {
        self.expires_at
    }
}

pub struct MemoryStore {
    /// Window counters, by hashed key.
    windows: DashMap<WindowKey, WindowCounter, BuildFoldHasher>,
    window_keys: WindowKeys,
    /// Every other key, by its text (keyed like the window hashes: see window_key.rs).
    map: DashMap<Box<str>, Entry, KeyedState>,
    /// At least the number of keys held (new keys add one; removals do not subtract), reset to
    /// the exact count by every sweep and whenever it reaches `max_keys`. The cap check reads
    /// it instead of counting: `DashMap::len` locks every shard of both tables.
    keys_bound: AtomicUsize,
    /// Whether `map` may hold a window-shaped key (only a SET writes one there): until then,
    /// window reads by compact key need not look at it.
    text_window_keys: AtomicBool,
    max_keys: AtomicUsize,
    writes_since_sweep: AtomicUsize,
    sweep_after: AtomicUsize,
    sweeping: AtomicBool,
    /// The latest caller clock seen: what the background sweep expires against.
    latest_now: AtomicU64,
}

static GLOBAL: LazyLock<Arc<MemoryStore>> = LazyLock::new(|| MemoryStore::new(DEFAULT_MAX_KEYS));

impl MemoryStore {
    pub fn new(max_keys: usize) -> Arc<MemoryStore> {
        Arc::new(MemoryStore {
            windows: DashMap::with_hasher(BuildFoldHasher),
            window_keys: WindowKeys::new(),
            map: DashMap::with_hasher(KeyedState::new()),
            text_window_keys: AtomicBool::new(false),
            keys_bound: AtomicUsize::new(0),
            max_keys: AtomicUsize::new(max_keys.max(1)),
            writes_since_sweep: AtomicUsize::new(0),
            sweep_after: AtomicUsize::new(MIN_WRITES_BETWEEN_SWEEPS),
            sweeping: AtomicBool::new(false),
            latest_now: AtomicU64::new(0),
        })
    }

    /// The process-wide store behind `Redis.memory()`.
    pub fn global() -> Arc<MemoryStore> {
        GLOBAL.clone()
    }

    /// The same store, borrowed: a hot call need not count a reference up and down.
    pub fn global_ref() -> &'static Arc<MemoryStore> {
        &GLOBAL
    }

    pub fn set_max_keys(&self, max_keys: usize) {
        self.max_keys.store(max_keys.max(1), Ordering::Relaxed);
    }

    pub fn max_keys(&self) -> usize {
        self.max_keys.load(Ordering::Relaxed)
    }

    /// Keys currently held (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.windows.len() + self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty() && self.map.is_empty()
    }

    /// Removes every expired entry now.
    pub fn sweep(&self, now: u64) -> usize {
        let mut removed = 0;
        let mut live = |e: &dyn Expiring| {
            let keep = e.live(now);
            removed += usize::from(!keep);
            keep
        };
        self.windows.retain(|_, e| live(e));
        self.map.retain(|_, e| live(e));
        // Subtract what went, rather than store a recount: keys inserted while the sweep (often
        // a background one) counted would be lost from the bound, and each lost one is a key
        // let in past the cap later.
        let _ = self
            .keys_bound
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bound| {
                Some(bound.saturating_sub(removed))
            });
        removed
    }

    /// Forgets everything (tests).
    pub fn clear(&self) {
        self.windows.clear();
        self.map.clear();
        self.keys_bound.store(0, Ordering::Relaxed);
    }

    /// Counts `writes` writes made at caller time up to `now`, and starts a background sweep
    /// once enough have accumulated.
    fn note_writes(self: &Arc<Self>, writes: usize, now: u64) {
        self.latest_now.fetch_max(now, Ordering::Relaxed);
        let writes = self.writes_since_sweep.fetch_add(writes, Ordering::Relaxed) + writes;
        if writes < self.sweep_after.load(Ordering::Relaxed)
            || self.sweeping.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let store = Arc::clone(self);
        let job = move || {
            store.sweep(store.latest_now.load(Ordering::Relaxed));
            store.writes_since_sweep.store(0, Ordering::Relaxed);
            store.sweep_after.store(
                store.len().max(MIN_WRITES_BETWEEN_SWEEPS),
                Ordering::Relaxed,
            );
            store.sweeping.store(false, Ordering::Release);
        };
        // Off the caller's thread (the JS thread); inline only if no thread can be started.
        let spare = Arc::clone(self);
        if std::thread::Builder::new()
            .name("ratelimit-native-sweep".into())
            .spawn(job)
            .is_err()
        {
            spare.sweep(now);
            spare.writes_since_sweep.store(0, Ordering::Relaxed);
            spare.sweeping.store(false, Ordering::Release);
        }
    }

    /// Room for one more key, or `Full`. Must not be called while holding a shard lock.
    fn ensure_room(&self, now: u64) -> Result<(), StoreError> {
        let max_keys = self.max_keys();
        if self.keys_bound.load(Ordering::Relaxed) < max_keys {
            return Ok(());
        }
        let exact = self.len();
        self.keys_bound.store(exact, Ordering::Relaxed);
        if exact < max_keys {
            return Ok(());
        }
        self.sweep(now);
        if self.len() < max_keys {
            Ok(())
        } else {
            Err(StoreError::Full { max_keys })
        }
    }

    fn read(&self, key: &str, now: u64) -> Option<Value> {
        if let Some(window) = self.window_keys.parse(key) {
            let counter = self
                .windows
                .get(&window)
                .filter(|c| c.live(now))
                .map(|c| c.count);
            if let Some(count) = counter {
                return Some(Value::Counter(count));
            }
        }
        self.map
            .get(key)
            .filter(|e| e.live(now))
            .map(|e| e.value.clone())
    }

    /// Whether `key` exists and has not expired at `now`.
    pub fn is_live(&self, key: &str, now: u64) -> bool {
        self.read(key, now).is_some()
    }

    /// A counter's value (`None` when absent or expired). A non-counter value is Redis'
    /// WRONGTYPE-like situation; it reads as absent here because the key layouts never mix.
    pub fn counter(&self, key: &str, now: u64) -> Option<i64> {
        match self.read(key, now) {
            Some(Value::Counter(c)) => Some(c),
            Some(Value::Text(t)) => t.parse().ok(),
            _ => None,
        }
    }

    /// The dynamic limit stored at `key`, as the scripts read it (`tonumber(GET key)`).
    pub fn number(&self, key: &str, now: u64) -> Option<f64> {
        match self.read(key, now)? {
            Value::Text(t) => lua_tonumber(&t),
            Value::Counter(c) => Some(c as f64),
            Value::Bucket(_) => None,
        }
    }

    pub fn bucket(&self, key: &str, now: u64) -> Option<BucketState> {
        match self.read(key, now) {
            Some(Value::Bucket(b)) => Some(b),
            _ => None,
        }
    }

    /// Runs `step` on the counter at `key` and applies its write, atomically for that key.
    pub fn update_counter<R>(
        self: &Arc<Self>,
        key: &str,
        now: u64,
        step: impl FnOnce(Option<i64>) -> Result<(Option<CounterWrite>, R), StoreError>,
    ) -> Result<R, StoreError> {
        if let Some(window) = self.window_keys.parse(key) {
            return self.update_window(window, now, step);
        }
        self.update(key, now, |current| {
            let counter = match current {
                Some(Entry {
                    value: Value::Counter(c),
                    ..
                }) => Some(*c),
                _ => None,
            };
            let (write, out) = step(counter)?;
            let write = write.map(|w| {
                let kept = current.map(|e| e.expires_at).unwrap_or(0);
                Entry {
                    value: Value::Counter(w.counter),
                    expires_at: w.ttl_ms.map(|t| expiry(now, t)).unwrap_or(kept),
                }
            });
            Ok((write, out))
        })
    }

    /// The hashed form of a window counter's base (`<prefix>:<identifier>`): with
    /// [`WindowKey::at`], the counter's key without building its text.
    pub(crate) fn window_base(&self, base: &str) -> [u64; 2] {
        self.window_keys.base(base)
    }

    /// [`Self::counter`] of `<base>:<window>` by compact key (`base` is the text of
    /// `key`'s base, for the rare window-shaped text key a SET wrote).
    pub(crate) fn window_count(&self, key: WindowKey, base: &str, now: u64) -> Option<i64> {
        let count = self
            .windows
            .get(&key)
            .filter(|c| c.live(now))
            .map(|c| c.count);
        if count.is_none() && self.text_window_keys.load(Ordering::Relaxed) {
            return self.counter(&ratelimit_core::keys::window_key(base, key.window()), now);
        }
        count
    }

    /// `update_counter` for a window counter: the same read-step-write under the key's shard
    /// lock, in the compact table.
    pub(crate) fn update_window<R>(
        self: &Arc<Self>,
        key: WindowKey,
        now: u64,
        step: impl FnOnce(Option<i64>) -> Result<(Option<CounterWrite>, R), StoreError>,
    ) -> Result<R, StoreError> {
        self.upsert(
            &self.windows,
            &key,
            || key,
            false,
            now,
            |current| window_write(step, current, now),
        )
    }

    /// Runs `step` on the token bucket at `key` and applies its write, atomically for that key.
    pub fn update_bucket<R>(
        self: &Arc<Self>,
        key: &str,
        now: u64,
        step: impl FnOnce(Option<BucketState>) -> (Option<BucketWrite>, Result<R, StoreError>),
    ) -> Result<R, StoreError> {
        let mut outcome = None;
        self.update(key, now, |current| {
            let state = match current {
                Some(Entry {
                    value: Value::Bucket(b),
                    ..
                }) => Some(*b),
                _ => None,
            };
            let (write, out) = step(state);
            outcome = Some(out);
            let write = write.map(|w| {
                let kept = current.map(|e| e.expires_at).unwrap_or(0);
                Entry {
                    value: Value::Bucket(w.state),
                    expires_at: w.ttl_ms.map(|t| expiry(now, t)).unwrap_or(kept),
                }
            });
            Ok((write, ()))
        })?;
        outcome.unwrap_or_else(|| Err(StoreError::Internal("bucket step did not run".into())))
    }

    /// The atomic read-modify-write of a text key under its shard lock. `f` gets the live entry
    /// (or `None`) and returns the entry to store (`None` = leave as is).
    fn update<R>(
        self: &Arc<Self>,
        key: &str,
        now: u64,
        f: impl FnOnce(Option<&Entry>) -> Result<(Option<Entry>, R), StoreError>,
    ) -> Result<R, StoreError> {
        // Probed first: a live key is then updated without allocating its text again.
        self.upsert(&self.map, key, || Box::from(key), true, now, f)
    }

    /// The read-modify-write both tables share, under the key's shard lock: `f` gets the live
    /// value (an expired one reads as absent) and returns the value to store (`None` = leave
    /// as is; an expired value is then removed). `owned` makes the table's key for an insert;
    /// `probe_first` looks the key up before taking the entry (worth it when `owned` allocates).
    fn upsert<K, Q, V, S, R>(
        self: &Arc<Self>,
        map: &DashMap<K, V, S>,
        key: &Q,
        owned: impl FnOnce() -> K,
        probe_first: bool,
        now: u64,
        f: impl FnOnce(Option<&V>) -> Result<(Option<V>, R), StoreError>,
    ) -> Result<R, StoreError>
    where
        K: Borrow<Q> + Hash + Eq,
        Q: Hash + Eq + ?Sized,
        V: Expiring,
        S: BuildHasher + Clone,
    {
        let mut f = Some(f);
        // With room for a new key (the cap check is one atomic load), the entry alone serves
        // both cases. Near the cap, a live key is served first, without asking for room.
        if probe_first || self.keys_bound.load(Ordering::Relaxed) >= self.max_keys() {
            if let Some(mut slot) = map.get_mut(key) {
                if slot.live(now) {
                    let run = f
                        .take()
                        .ok_or_else(|| StoreError::Internal("step reused".into()))?;
                    let (write, out) = run(Some(&slot))?;
                    if let Some(value) = write {
                        *slot = value;
                        drop(slot);
                        self.note_writes(1, now);
                    }
                    return Ok(out);
                }
            }
        }
        // New (or expired) key: make room first (outside any shard lock; one atomic load while
        // far from the cap).
        self.ensure_room(now)?;
        let run = f
            .take()
            .ok_or_else(|| StoreError::Internal("step reused".into()))?;
        let out = match map.entry(owned()) {
            MapEntry::Occupied(mut occupied) => {
                let live = occupied.get().live(now);
                let (write, out) = run(live.then_some(occupied.get()))?;
                match write {
                    Some(value) => {
                        occupied.insert(value);
                    }
                    None if !live => {
                        occupied.remove();
                    }
                    None => {}
                }
                out
            }
            MapEntry::Vacant(vacant) => {
                let (write, out) = run(None)?;
                if let Some(value) = write {
                    vacant.insert(value);
                    self.keys_bound.fetch_add(1, Ordering::Relaxed);
                }
                out
            }
        };
        self.note_writes(1, now);
        Ok(out)
    }

    /// Deletes `key`; true when a live key was removed.
    pub fn delete(&self, key: &str, now: u64) -> bool {
        let window = self
            .window_keys
            .parse(key)
            .and_then(|w| self.windows.remove(&w))
            .is_some_and(|(_, c)| c.live(now));
        let text = self
            .map
            .remove(key)
            .map(|(_, e)| e.live(now))
            .unwrap_or(false);
        window || text
    }

    /// Deletes the window counters `<base>:<integer>` of one base (what a window algorithm's
    /// reset deletes); returns how many live keys went.
    pub fn delete_windows_of(&self, base: &str, now: u64) -> usize {
        let hashed = self.window_keys.base(base);
        let mut deleted = 0;
        self.windows.retain(|k, c| {
            if k.has_base(hashed) {
                deleted += usize::from(c.live(now));
                false
            } else {
                true
            }
        });
        deleted + self.delete_where(now, |key| ratelimit_core::keys::is_window_key_of(key, base))
    }

    /// Deletes every text-keyed entry for which `matches` is true; returns how many live keys
    /// went. (Window counters are deleted by base: [`Self::delete_windows_of`].)
    fn delete_where(&self, now: u64, matches: impl Fn(&str) -> bool) -> usize {
        let mut deleted = 0;
        self.map.retain(|k, e| {
            if matches(k) {
                deleted += usize::from(e.live(now));
                false
            } else {
                true
            }
        });
        deleted
    }

    /// The plain commands `Redis.memory()` serves (for dynamic limits): GET, SET [EX s|PX ms],
    /// DEL. Other commands, scripts included, are refused with a clear error.
    pub fn command(self: &Arc<Self>, parts: &[String], now: u64) -> Result<Reply, StoreError> {
        let name = parts
            .first()
            .map(|p| p.to_ascii_uppercase())
            .unwrap_or_default();
        match (name.as_str(), parts.len()) {
            ("GET", 2) => Ok(match self.read(&parts[1], now) {
                Some(Value::Text(t)) => Reply::Bytes(t.as_bytes().to_vec()),
                Some(Value::Counter(c)) => Reply::Bytes(c.to_string().into_bytes()),
                Some(Value::Bucket(_)) => {
                    return Err(StoreError::Redis(
                        "WRONGTYPE Operation against a key holding the wrong kind of value".into(),
                    ))
                }
                None => Reply::Nil,
            }),
            ("SET", n) if n == 3 || n == 5 => {
                let ttl_ms = if n == 5 {
                    let amount: u64 = parts[4]
                        .parse()
                        .ok()
                        .filter(|v| *v > 0)
                        .ok_or_else(|| {
                            StoreError::Redis("ERR invalid expire time in 'set' command".into())
                        })?;
                    match parts[3].to_ascii_uppercase().as_str() {
                        "EX" => Some(amount.saturating_mul(1000)),
                        "PX" => Some(amount),
                        _ => return Err(StoreError::Redis("ERR syntax error".into())),
                    }
                } else {
                    None
                };
                let value: Box<str> = parts[2].as_str().into();
                // SET replaces whatever the key held, a window counter included.
                if let Some(window) = self.window_keys.parse(&parts[1]) {
                    self.text_window_keys.store(true, Ordering::Relaxed);
                    self.windows.remove(&window);
                }
                self.update(&parts[1], now, |_| {
                    Ok((
                        Some(Entry {
                            value: Value::Text(value),
                            expires_at: ttl_ms.map(|t| expiry(now, t)).unwrap_or(0),
                        }),
                        (),
                    ))
                })?;
                Ok(Reply::Bytes(b"OK".to_vec()))
            }
            ("DEL", n) if n >= 2 => Ok(Reply::Int(
                parts[1..].iter().filter(|k| self.delete(k, now)).count() as i64,
            )),
            _ => Err(StoreError::Redis(format!(
                "ERR '{}' is not supported by the memory store (it serves GET, SET and DEL; limiters run natively)",
                name.to_ascii_lowercase()
            ))),
        }
    }
}

/// A window counter's step applied to its live value (`None`: absent or expired): the counter to
/// store (a write without a TTL keeps the current one) and the step's answer.
fn window_write<R>(
    step: impl FnOnce(Option<i64>) -> Result<(Option<CounterWrite>, R), StoreError>,
    current: Option<&WindowCounter>,
    now: u64,
) -> Result<(Option<WindowCounter>, R), StoreError> {
    let (write, out) = step(current.map(|c| c.count))?;
    let write = write.map(|w| WindowCounter {
        count: w.counter,
        expires_at: w
            .ttl_ms
            .map(|t| expiry(now, t))
            .unwrap_or(current.map_or(0, |c| c.expires_at)),
    });
    Ok((write, out))
}

/// A cache prefetch of the line at `address` (no-op where not available). Never faults.
#[inline(always)]
fn prefetch<T>(address: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing architecturally and cannot fault, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above (PRFM is a hint).
    unsafe {
        std::arch::asm!("prfm pldl1keep, [{0}]", in(reg) address, options(nostack, readonly, preserves_flags));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = address;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(counter: i64, ttl_ms: Option<u64>) -> Option<CounterWrite> {
        Some(CounterWrite { counter, ttl_ms })
    }

    #[test]
    fn counters_keep_their_ttl_until_a_write_sets_one() {
        let store = MemoryStore::new(10);
        store
            .update_counter("k", 1000, |c| {
                Ok((write(c.unwrap_or(0) + 1, Some(500)), ()))
            })
            .unwrap();
        store
            .update_counter("k", 1200, |c| Ok((write(c.unwrap_or(0) + 1, None), ())))
            .unwrap();
        assert_eq!(store.counter("k", 1499), Some(2));
        assert_eq!(store.counter("k", 1500), None, "expired at 1000 + 500");
        store
            .update_counter("k", 1600, |c| {
                assert_eq!(c, None, "an expired counter starts again from nothing");
                Ok((write(1, None), ()))
            })
            .unwrap();
        assert_eq!(store.counter("k", 10_000_000), Some(1), "no TTL now");
    }

    #[test]
    fn a_full_store_sweeps_then_refuses_new_keys_but_serves_existing_ones() {
        let store = MemoryStore::new(2);
        store
            .update_counter("a", 0, |_| Ok((write(1, Some(100)), ())))
            .unwrap();
        store
            .update_counter("b", 0, |_| Ok((write(1, None), ())))
            .unwrap();
        let full = store.update_counter("c", 50, |_| Ok((write(1, None), ())));
        assert_eq!(full, Err(StoreError::Full { max_keys: 2 }));
        store
            .update_counter("b", 50, |c| Ok((write(c.unwrap_or(0) + 1, None), ())))
            .unwrap();
        assert_eq!(store.counter("b", 50), Some(2));
        // Once "a" has expired, the sweep makes room.
        store
            .update_counter("c", 100, |_| Ok((write(1, None), ())))
            .unwrap();
        assert_eq!(store.len(), 2);
    }

    /// A sweep running beside inserts (the background sweep does) must not lose their count:
    /// a bound left lower than the keys held lets that many extra keys past the cap later
    /// (the next check against the cap trusts the bound until it reaches the cap).
    #[test]
    fn sweeps_beside_inserts_never_let_the_store_past_its_cap() {
        for round in 0..40 {
            let store = MemoryStore::new(5_000);
            // A few sweeps while the first keys go in, none near the cap.
            let sweeper = {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        store.sweep(0);
                    }
                })
            };
            let mut admitted = 0;
            for i in 0..6_000u64 {
                let key = format!("r{round}:k{i}");
                if store
                    .update_counter(&key, 0, |_| Ok((write(1, None), ())))
                    .is_ok()
                {
                    admitted += 1;
                }
            }
            sweeper.join().unwrap_or_default();
            assert_eq!(admitted, 5_000, "round {round}");
            assert_eq!(store.len(), 5_000, "round {round}");
        }
    }

    #[test]
    fn background_sweeps_bound_memory_under_key_churn() {
        let store = MemoryStore::new(1_000_000);
        for i in 0..50_000u64 {
            let now = i;
            store
                .update_counter(&format!("k{i}"), now, |_| Ok((write(1, Some(10)), ())))
                .unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while store.sweeping.load(Ordering::Acquire) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(
            store.len() < 20_000,
            "{} keys left of 50000 short-lived ones",
            store.len()
        );
    }

    #[test]
    fn window_counters_live_in_the_compact_table_and_behave_like_text_keys() {
        let store = MemoryStore::new(10);
        let bump = |key: &str, now| {
            store
                .update_counter(key, now, |c| {
                    Ok((write(c.unwrap_or(0) + 1, Some(1000)), ()))
                })
                .unwrap()
        };
        bump("p:u:7", 0);
        bump("p:u:7", 10);
        bump("p:u:8", 10);
        bump("p:v:7", 10);
        bump("p:u:007", 10); // not canonical: a text key of its own
        assert_eq!((store.windows.len(), store.map.len()), (3, 1));
        assert_eq!(store.counter("p:u:7", 20), Some(2));
        assert_eq!(store.counter("p:u:007", 20), Some(1));
        assert_eq!(store.counter("p:u:7", 1009), Some(2));
        assert_eq!(store.counter("p:u:7", 1010), None, "expired at 10 + 1000");
        assert!(store.delete("p:v:7", 20));
        assert!(!store.delete("p:v:7", 20));
        // A reset deletes the base's windows in both tables, and nothing of other bases.
        bump("p:v:7", 20);
        assert_eq!(store.delete_windows_of("p:u", 20), 3);
        assert_eq!(store.counter("p:u:8", 20), None);
        assert_eq!(store.counter("p:v:7", 20), Some(1));
        // SET replaces a window counter; GET reads either kind.
        let parts = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            store.command(&parts(&["GET", "p:v:7"]), 20),
            Ok(Reply::Bytes(b"1".to_vec()))
        );
        store.command(&parts(&["SET", "p:v:7", "x"]), 20).unwrap();
        assert_eq!(
            store.command(&parts(&["GET", "p:v:7"]), 20),
            Ok(Reply::Bytes(b"x".to_vec()))
        );
        // The cap counts both tables.
        store.set_max_keys(store.len());
        let full = store.update_counter("p:w:1", 20, |_| Ok((write(1, None), ())));
        assert_eq!(
            full,
            Err(StoreError::Full {
                max_keys: store.len()
            })
        );
    }

    #[test]
    fn prefetches_point_at_the_slots_lookups_use() {
        let store = MemoryStore::new(100_000);
        let keys = WindowKeys::new();
        let key = |n: usize| WindowKey::at(keys.base(&format!("p:{n}")), 7);
        // An empty table: nothing to point at that could hurt.
        store.lock_windows(1).unwrap().prefetch(&key(0));
        for n in 0..20_000 {
            store
                .update_window(key(n), 0, |_| Ok((write(1, Some(1000)), ())))
                .unwrap();
        }
        // The layout the addresses assume (hashbrown's probe start, slots below the control
        // bytes) is checked against where the table really keeps each key.
        let all_lines: Vec<_> = {
            let locked = store.lock_windows(1).unwrap();
            (0..20_000)
                .map(|n| locked.lookup_lines(&key(n)).unwrap())
                .collect()
        };
        let mut near = 0;
        for (n, lines) in all_lines.into_iter().enumerate() {
            let k = key(n);
            let hash = store.windows.hash_usize(&k);
            let shard = store.windows.shards()[store.windows.determine_shard(hash)].read();
            let bucket = shard.find(hash as u64, |(stored, _)| *stored == k).unwrap();
            let slot = bucket.as_ptr().cast::<u8>().cast_const();
            // SAFETY: `bucket` is a full bucket of this table.
            let index = unsafe { shard.bucket_index(&bucket) };
            let ctrl = shard.data_end().as_ptr().cast::<u8>().cast_const();
            // The control byte prefetched is the probe's first; the key's own is a few after.
            let first = lines[0] as usize - ctrl as usize;
            if lines[1..].contains(&slot) {
                assert!([0, 1, 3].contains(&(index.wrapping_sub(first) & (shard.buckets() - 1))));
                near += 1;
            }
        }
        assert!(
            near > 15_000,
            "{near} of 20000 keys sit in a prefetched slot"
        );
        assert_eq!(store.windows.len(), 20_000, "prefetching changed nothing");
    }

    #[test]
    fn serves_get_set_del_and_refuses_the_rest() {
        let store = MemoryStore::new(10);
        let cmd = |parts: &[&str], now| {
            let parts: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
            store.command(&parts, now)
        };
        assert_eq!(cmd(&["GET", "d"], 0), Ok(Reply::Nil));
        assert_eq!(cmd(&["set", "d", "3"], 0), Ok(Reply::Bytes(b"OK".to_vec())));
        assert_eq!(store.number("d", 0), Some(3.0));
        assert_eq!(cmd(&["GET", "d"], 0), Ok(Reply::Bytes(b"3".to_vec())));
        assert_eq!(
            cmd(&["SET", "t", "x", "PX", "10"], 0),
            Ok(Reply::Bytes(b"OK".to_vec()))
        );
        assert_eq!(cmd(&["GET", "t"], 10), Ok(Reply::Nil));
        assert_eq!(cmd(&["DEL", "d", "nope"], 0), Ok(Reply::Int(1)));
        assert!(matches!(
            cmd(&["EVALSHA", "x", "0"], 0),
            Err(StoreError::Redis(_))
        ));
        assert!(matches!(
            cmd(&["SET", "t", "x", "EX", "0"], 0),
            Err(StoreError::Redis(_))
        ));
    }
}
