//! The embedded store: limiter state in this process, no server.
//!
//! Every algorithm runs the same state transitions as its Lua twin (`limit_step`,
//! `remaining_step` in [`crate::algorithms`]), here applied to a concurrent map instead of Redis:
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

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;

use crate::algorithms::{BucketState, BucketWrite, CounterWrite};
use crate::num::lua_tonumber;
use crate::stores::{Reply, StoreError};

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

impl Entry {
    fn live(&self, now: u64) -> bool {
        self.expires_at == 0 || now < self.expires_at
    }
}

fn expiry(now: u64, ttl_ms: u64) -> u64 {
    now.saturating_add(ttl_ms).max(1)
}

pub struct MemoryStore {
    map: DashMap<Box<str>, Entry>,
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
            map: DashMap::new(),
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

    pub fn set_max_keys(&self, max_keys: usize) {
        self.max_keys.store(max_keys.max(1), Ordering::Relaxed);
    }

    pub fn max_keys(&self) -> usize {
        self.max_keys.load(Ordering::Relaxed)
    }

    /// Keys currently held (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Removes every expired entry now.
    pub fn sweep(&self, now: u64) -> usize {
        let before = self.map.len();
        self.map.retain(|_, e| e.live(now));
        before.saturating_sub(self.map.len())
    }

    /// Forgets everything (tests).
    pub fn clear(&self) {
        self.map.clear();
    }

    fn note_write(self: &Arc<Self>, now: u64) {
        self.latest_now.fetch_max(now, Ordering::Relaxed);
        let writes = self.writes_since_sweep.fetch_add(1, Ordering::Relaxed) + 1;
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
                store.map.len().max(MIN_WRITES_BETWEEN_SWEEPS),
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
        if self.map.len() < max_keys {
            return Ok(());
        }
        self.sweep(now);
        if self.map.len() < max_keys {
            Ok(())
        } else {
            Err(StoreError::Full { max_keys })
        }
    }

    fn read(&self, key: &str, now: u64) -> Option<Value> {
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

    /// The atomic read-modify-write under the key's shard lock. `f` gets the live entry (or
    /// `None`) and returns the entry to store (`None` = leave as is).
    fn update<R>(
        self: &Arc<Self>,
        key: &str,
        now: u64,
        f: impl FnOnce(Option<&Entry>) -> Result<(Option<Entry>, R), StoreError>,
    ) -> Result<R, StoreError> {
        // Fast path: the key exists and is live; update it in place without allocating.
        let mut f = Some(f);
        if let Some(mut slot) = self.map.get_mut(key) {
            if slot.live(now) {
                let run = f
                    .take()
                    .ok_or_else(|| StoreError::Internal("step reused".into()))?;
                let (write, out) = run(Some(&slot))?;
                if let Some(entry) = write {
                    *slot = entry;
                    drop(slot);
                    self.note_write(now);
                }
                return Ok(out);
            }
        }
        // New (or expired) key: make room first, outside any shard lock.
        self.ensure_room(now)?;
        let run = f
            .take()
            .ok_or_else(|| StoreError::Internal("step reused".into()))?;
        let out = match self.map.entry(Box::from(key)) {
            MapEntry::Occupied(mut occupied) => {
                let live = occupied.get().live(now);
                let (write, out) = run(live.then_some(occupied.get()))?;
                match write {
                    Some(entry) => {
                        occupied.insert(entry);
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
                if let Some(entry) = write {
                    vacant.insert(entry);
                }
                out
            }
        };
        self.note_write(now);
        Ok(out)
    }

    /// Deletes `key`; true when a live key was removed.
    pub fn delete(&self, key: &str, now: u64) -> bool {
        self.map
            .remove(key)
            .map(|(_, e)| e.live(now))
            .unwrap_or(false)
    }

    /// Deletes every key for which `matches` is true; returns how many live keys went.
    pub fn delete_where(&self, now: u64, matches: impl Fn(&str) -> bool) -> usize {
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
