//! A batch of limit() calls on the memory store, answered in one go: the limit() calls one JS
//! turn made (`memoryLimitBatch` in both bindings), handed over in one crossing instead of one each.
//!
//! On the memory store the state change itself takes a fraction of a microsecond; most of a
//! single `memoryLimit` call is the crossing (napi-rs converting nine arguments, borrowing the
//! output array, and V8 entering and leaving the callback). The facade (`lib/memory-batch.js`)
//! instead writes each call's numbers into a reused `Float64Array` and appends its key to one
//! string, and hands the turn's calls over at the end of the turn (a microtask): one crossing,
//! one string conversion and one array borrow per turn.
//!
//! Consecutive window calls (fixed and sliding window) run under every shard lock of the
//! counter table, taken once for up to `RUN_MAX` calls (`MemoryStore::lock_windows`): no locked
//! instruction per call. A run also knows its next calls: while it works on one, it prefetches
//! the table slots of the call a few places ahead, so the cache misses of new keys overlap
//! instead of following one another. Other calls (token buckets), and every call when the store
//! is near its cap, go one by one, each under its own key's lock.
//!
//! Record layout (`RECORD` numbers per call; `lib/memory-batch.js` writes the same):
//! `[kind, a, b, c, now, rate, keyLength]`, where `kind, a, b, c` is the algorithm as
//! `Algorithm::from_numbers` reads it and `keyLength` counts UTF-16 units of that call's key in
//! `keys`, the keys of all records in order. Answers go to `out`, four numbers per record:
//! `[success (1/0), limit, remaining, reset]`.

use std::sync::Arc;

use ratelimit_core::algorithm::Algorithm;
use ratelimit_core::args::{clock, cost, ArgError};
use ratelimit_core::batch_records::{push_key, Algorithms};

use crate::memory::MemoryStore;
use crate::memory_algorithm as in_memory;
use crate::window_key::WindowKey;

/// Numbers per call in a batch's records.
pub const RECORD: usize = 7;
/// Numbers per answer in `out`.
pub const ANSWER: usize = 4;
/// How many calls ahead the batch prefetches counters: enough for their cache misses to be
/// under way together, few enough that the lines are still cached when their call comes.
const PREFETCH_AHEAD: usize = 4;
/// Most calls one locked run takes: other threads using the store (worker threads) wait for a
/// run to end, a few dozen microseconds at most.
const RUN_MAX: usize = 128;

/// One record, read.
struct Call {
    kind: Algorithm,
    key: std::ops::Range<usize>,
    now: u64,
    rate: f64,
    /// The window counter it updates (window algorithms), worked out once.
    window: Option<WindowKey>,
}

/// Answers records `from..count` in order and returns the index of the first one it could not
/// answer (`count` when it answered all). The facade replays that call through `memoryLimit`,
/// which throws its error, and resumes after it: a refused call changes no state, so the replay
/// sees what the batch saw. `keys`: the batch's keys as UTF-16 units.
pub fn answer_batch(
    store: &Arc<MemoryStore>,
    records: &[f64],
    count: u32,
    keys: &[u16],
    out: &mut [f64],
    from: u32,
) -> Result<u32, ArgError> {
    let count = count as usize;
    if records.len() < count.saturating_mul(RECORD) || out.len() < count.saturating_mul(ANSWER) {
        return Err(ArgError(
            "memoryLimitBatch: records or out hold fewer calls than count".into(),
        ));
    }
    // First the calls as Rust values (keys decoded into one buffer), then the store work, so
    // the work on one call can prefetch the counters of the calls after it.
    let mut text = String::new();
    let mut calls: Vec<Option<Call>> = Vec::with_capacity(count);
    let mut offset = 0usize;
    let mut algorithms = Algorithms::default();
    for record in records.chunks_exact(RECORD).take(count) {
        let end = offset.saturating_add(record[6] as usize);
        let Some(units) = keys.get(offset..end) else {
            return Err(ArgError(
                "memoryLimitBatch: keys are shorter than the records say".into(),
            ));
        };
        offset = end;
        let key_start = text.len();
        push_key(&mut text, units);
        let kind = algorithms.read([record[0], record[1], record[2], record[3]]);
        calls.push(match (kind, clock(record[4]), cost(record[5])) {
            (Ok(kind), Ok(now), Ok(rate)) => Some(Call {
                window: in_memory::window_of(store, &kind, &text[key_start..], now),
                kind,
                key: key_start..text.len(),
                now,
                rate,
            }),
            _ => None,
        });
    }
    let mut index = from as usize;
    while index < count {
        let run = calls[index..count.min(index + RUN_MAX)]
            .iter()
            .take_while(|call| call.as_ref().is_some_and(|c| c.window.is_some()))
            .count();
        if run > 0 {
            if let Some(mut windows) = store.lock_windows(run) {
                let run = &calls[index..index + run];
                let window_of = |i: usize| run.get(i).and_then(|c| c.as_ref()?.window);
                for ahead in (0..PREFETCH_AHEAD).filter_map(window_of) {
                    windows.prefetch(&ahead);
                }
                for (i, call) in run.iter().enumerate() {
                    if let Some(ahead) = window_of(i + PREFETCH_AHEAD) {
                        windows.prefetch(&ahead);
                    }
                    // Every call of the run is valid and has a window (it was cut that way).
                    let Some((call, window)) = call.as_ref().and_then(|c| Some((c, c.window?)))
                    else {
                        return Ok((index + i) as u32);
                    };
                    let key = &text[call.key.clone()];
                    match in_memory::limit_numbers_locked(
                        &mut windows,
                        &call.kind,
                        key,
                        window,
                        call.now,
                        call.rate,
                    ) {
                        Ok(numbers) => out[(index + i) * ANSWER..(index + i + 1) * ANSWER]
                            .copy_from_slice(&numbers),
                        Err(_) => return Ok((index + i) as u32),
                    }
                }
                index += run.len();
                continue;
            }
        }
        // One call alone, under its own key's lock.
        let Some(call) = &calls[index] else {
            return Ok(index as u32);
        };
        let key = &text[call.key.clone()];
        match in_memory::limit_numbers(store, &call.kind, key, call.now, call.rate, &[]) {
            Ok(numbers) => out[index * ANSWER..(index + 1) * ANSWER].copy_from_slice(&numbers),
            Err(_) => return Ok(index as u32),
        }
        index += 1;
    }
    Ok(count as u32)
}
