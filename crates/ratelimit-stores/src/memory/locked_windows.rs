//! A batch's run of window-counter updates under every shard lock of the compact table, taken
//! once for the run.
//!
//! Why: a call on a new key costs a fraction of a microsecond of work, and the per-call locking
//! around it cost as much again. Each call took its shard's write lock and released it, its
//! prefetch took a read lock, and it bumped three shared counters. Every one of those is a
//! locked instruction, and a locked instruction waits for the memory operations before it, the
//! prefetches of the next calls' slots among them. Holding every shard for the run (a few dozen
//! calls, tens of microseconds) leaves no locked instruction per call. The counters are added
//! once, when the run ends.
//!
//! Order and atomicity are those of the calls one by one: the run applies them in call order,
//! and no other thread sees the table between two of them. Shards are locked in index order,
//! and every other path holds at most one shard lock, so two runs (on two worker threads) cannot
//! deadlock. The store's cap is checked for the whole run up front ([`MemoryStore::lock_windows`]
//! declines a run that could pass it); the sweep and its bookkeeping run after the locks are
//! released ([`Drop`]), because a sweep locks shards itself.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use dashmap::{RwLockWriteGuard, SharedValue};
use hashbrown::raw::RawTable;

use super::{window_write, Expiring, MemoryStore, WindowCounter};
use crate::window_key::WindowKey;
use ratelimit_core::algorithms::CounterWrite;
use ratelimit_core::reply::StoreError;

/// One shard of the compact table, as dashmap keeps it.
type WindowShard = RawTable<(WindowKey, SharedValue<WindowCounter>)>;

/// Every window shard of one store, write-locked, until dropped.
pub struct LockedWindows<'a> {
    store: &'a Arc<MemoryStore>,
    shards: Vec<RwLockWriteGuard<'a, WindowShard>>,
    /// Keys the run may still insert under the cap.
    room: usize,
    inserted: usize,
    writes: usize,
    latest_now: u64,
}

impl MemoryStore {
    /// Locks every window shard for a run of at most `calls` window updates; `None` when the
    /// run must go call by call: a SET wrote window-shaped text keys (reads must look there
    /// too), or the store is too near its cap for every call of the run to insert a key.
    pub fn lock_windows(self: &Arc<Self>, calls: usize) -> Option<LockedWindows<'_>> {
        if self.text_window_keys.load(Ordering::Relaxed) {
            return None;
        }
        let room = self
            .max_keys()
            .checked_sub(self.keys_bound.load(Ordering::Relaxed))?;
        if room < calls {
            return None;
        }
        Some(LockedWindows {
            store: self,
            shards: self.windows.shards().iter().map(|s| s.write()).collect(),
            room,
            inserted: 0,
            writes: 0,
            latest_now: 0,
        })
    }
}

impl LockedWindows<'_> {
    fn hash(&self, key: &WindowKey) -> (u64, usize) {
        let hash = self.store.windows.hash_usize(key);
        (hash as u64, self.store.windows.determine_shard(hash))
    }

    /// Starts loading the table memory a lookup of `key` will touch (see
    /// [`Self::lookup_lines`]), without waiting for it: the run prefetches the next calls'
    /// counters while it works on the current one, so their cache misses overlap. A hint only.
    pub fn prefetch(&self, key: &WindowKey) {
        for line in self.lookup_lines(key).into_iter().flatten() {
            super::prefetch(line);
        }
    }

    /// Where a lookup of `key` starts in its shard: the control byte of its probe's first slot,
    /// and the first slots of the probe (the key, or the free slot an insert takes, is nearly
    /// always one of them). `None` for a table with no slots yet.
    pub(super) fn lookup_lines(&self, key: &WindowKey) -> Option<[*const u8; 4]> {
        let (hash, shard) = self.hash(key);
        let table = self.shards.get(shard)?;
        if table.buckets() < 2 {
            return None; // the shared empty table: no slots
        }
        // hashbrown probes from `hash & (buckets - 1)`; control bytes start at `data_end`, slots
        // run downwards from it.
        let mask = table.buckets() - 1;
        let index = hash as usize & mask;
        // SAFETY: the indexes are masked below `buckets()`; the pointers are only prefetched
        // (or compared, in tests), never read through.
        let slot = |next: usize| {
            unsafe { table.bucket((index + next) & mask) }
                .as_ptr()
                .cast::<u8>()
                .cast_const()
        };
        let control = table.data_end().as_ptr().cast::<u8>().wrapping_add(index);
        Some([control.cast_const(), slot(0), slot(1), slot(3)])
    }

    /// [`MemoryStore::window_count`] under the run's locks.
    pub fn count(&self, key: WindowKey, now: u64) -> Option<i64> {
        let (hash, shard) = self.hash(&key);
        self.shards
            .get(shard)?
            .get(hash, |(k, _)| *k == key)
            .map(|(_, counter)| counter.get())
            .filter(|c| c.live(now))
            .map(|c| c.count)
    }

    /// [`MemoryStore::update_window`] under the run's locks: `step` gets the live count (an
    /// expired one reads as absent) and returns the write to apply.
    pub fn update<R>(
        &mut self,
        key: WindowKey,
        now: u64,
        step: impl FnOnce(Option<i64>) -> Result<(Option<CounterWrite>, R), StoreError>,
    ) -> Result<R, StoreError> {
        let (hash, shard) = self.hash(&key);
        let windows = &self.store.windows;
        let table = self
            .shards
            .get_mut(shard)
            .ok_or_else(|| StoreError::Internal("window shard out of range".into()))?;
        // The rehash closure hashes as dashmap does, so dashmap finds what is inserted here.
        let rehash =
            |(k, _): &(WindowKey, SharedValue<WindowCounter>)| windows.hash_usize(k) as u64;
        let out = match table.find_or_find_insert_slot(hash, |(k, _)| *k == key, rehash) {
            Ok(bucket) => {
                // SAFETY: `bucket` is a full bucket of `table`, which this run holds the write
                // lock of, and no other reference into the table is alive.
                let counter = unsafe { bucket.as_mut() }.1.get_mut();
                let live = counter.live(now);
                let (write, out) = window_write(step, live.then_some(&*counter), now)?;
                match write {
                    Some(value) => *counter = value,
                    // SAFETY: as above; `counter` is not used after this.
                    None if !live => unsafe { table.erase(bucket) },
                    None => {}
                }
                out
            }
            Err(slot) => {
                let (write, out) = window_write(step, None, now)?;
                if let Some(value) = write {
                    if self.room == 0 {
                        // Unreachable: the run was sized to its room up front.
                        return Err(StoreError::Full {
                            max_keys: self.store.max_keys(),
                        });
                    }
                    // SAFETY: `slot` was found by the call above, and the table has not changed
                    // since.
                    unsafe { table.insert_in_slot(hash, slot, (key, SharedValue::new(value))) };
                    self.room -= 1;
                    self.inserted += 1;
                }
                out
            }
        };
        self.writes += 1;
        self.latest_now = self.latest_now.max(now);
        Ok(out)
    }
}

impl Drop for LockedWindows<'_> {
    fn drop(&mut self) {
        // Locks first: the bookkeeping may sweep on this thread, and a sweep locks shards.
        self.shards.clear();
        if self.inserted > 0 {
            self.store
                .keys_bound
                .fetch_add(self.inserted, Ordering::Relaxed);
        }
        if self.writes > 0 {
            self.store.note_writes(self.writes, self.latest_now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window_key::WindowKeys;

    fn add(
        count: i64,
        ttl_ms: u64,
    ) -> impl FnOnce(Option<i64>) -> Result<(Option<CounterWrite>, i64), StoreError> {
        move |current| {
            let counter = current.unwrap_or(0) + count;
            Ok((
                Some(CounterWrite {
                    counter,
                    ttl_ms: Some(ttl_ms),
                }),
                counter,
            ))
        }
    }

    /// What a run inserts, dashmap finds (through every resize of the shards), and the other
    /// way round; expired counters read as absent in both.
    #[test]
    fn runs_and_single_calls_see_the_same_counters() {
        let store = MemoryStore::new(1_000_000);
        let keys = WindowKeys::new();
        let key = |n: usize| WindowKey::at(keys.base(&format!("p:{n}")), 3);
        // 40,000 keys in runs of 100: the shards grow many times while a run holds them.
        for start in (0..40_000).step_by(100) {
            let mut run = store.lock_windows(100).unwrap();
            for n in start..start + 100 {
                run.prefetch(&key(n));
                assert_eq!(run.update(key(n), 0, add(1, 1000)), Ok(1));
            }
        }
        assert_eq!(store.windows.len(), 40_000);
        assert_eq!(store.keys_bound.load(Ordering::Relaxed), 40_000);
        for n in (0..40_000).step_by(7) {
            assert_eq!(store.window_count(key(n), "", 999), Some(1), "key {n}");
            assert_eq!(store.update_window(key(n), 999, add(1, 1000)), Ok(2));
        }
        let run = store.lock_windows(1).unwrap();
        assert_eq!(run.count(key(7), 999), Some(2));
        assert_eq!(run.count(key(8), 999), Some(1));
        assert_eq!(run.count(key(8), 1000), None, "expired");
        assert_eq!(run.count(key(40_000), 0), None, "never written");
        drop(run);
        // An expired counter starts again from nothing, in place.
        let mut run = store.lock_windows(2).unwrap();
        assert_eq!(run.update(key(8), 5000, add(5, 1000)), Ok(5));
        // A step that writes nothing on an expired counter removes it.
        assert_eq!(run.update(key(9), 5000, |c| Ok((None, c))), Ok(None));
        drop(run);
        assert_eq!(store.window_count(key(8), "", 5000), Some(5));
        assert_eq!(store.windows.len(), 39_999);
        assert_eq!(
            store.latest_now.load(Ordering::Relaxed),
            5000,
            "the run's bookkeeping ran when it ended"
        );
    }

    #[test]
    fn runs_are_declined_near_the_cap_and_beside_window_shaped_text_keys() {
        let store = MemoryStore::new(10);
        assert!(store.lock_windows(10).is_some());
        assert!(store.lock_windows(11).is_none(), "could pass the cap");
        let keys = WindowKeys::new();
        let mut run = store.lock_windows(4).unwrap();
        for n in 0..4 {
            let k = WindowKey::at(keys.base(&format!("p:{n}")), 0);
            run.update(k, 0, add(1, 1000)).unwrap();
        }
        drop(run);
        assert!(store.lock_windows(6).is_some());
        assert!(store.lock_windows(7).is_none());
        let set = ["SET", "p:x:12", "1"].map(String::from);
        store.command(&set, 0).unwrap();
        assert!(
            store.lock_windows(1).is_none(),
            "a SET wrote a window-shaped text key: reads must look at the text table too"
        );
    }

    /// A run on one thread and single calls on another, on the same counters: every increment
    /// lands exactly once.
    #[test]
    fn runs_and_single_calls_are_atomic_together() {
        let store = MemoryStore::new(1_000);
        let keys = Arc::new(WindowKeys::new());
        let key =
            move |keys: &WindowKeys, n: usize| WindowKey::at(keys.base(&format!("hot:{n}")), 1);
        let single = {
            let (store, keys) = (Arc::clone(&store), Arc::clone(&keys));
            std::thread::spawn(move || {
                for i in 0..20_000 {
                    store
                        .update_window(key(&keys, i % 50), 0, add(1, 60_000))
                        .unwrap();
                }
            })
        };
        for start in (0..20_000).step_by(64) {
            let mut run = store.lock_windows(64).unwrap();
            for i in start..start + 64 {
                run.update(key(&keys, i % 50), 0, add(1, 60_000)).unwrap();
            }
        }
        single.join().unwrap();
        let total: i64 = (0..50)
            .map(|n| store.window_count(key(&keys, n), "", 0).unwrap())
            .sum();
        assert_eq!(total, 20_000 + 20_032);
    }
}
