//! `memoryLimitBatch`: the limit() calls one JS turn made on the memory store, answered in one
//! N-API call instead of one each.
//!
//! On the memory store the state change itself takes a fraction of a microsecond; most of a
//! single `memoryLimit` call is the crossing: napi-rs converting nine arguments, borrowing the
//! output array, and V8 entering and leaving the callback. The facade (`lib/memory-batch.js`)
//! instead writes each call's numbers into a reused `Float64Array` and appends its key to one
//! string, and hands the turn's calls over at the end of the turn (a microtask): one crossing,
//! one string conversion and one array borrow per turn.
//!
//! A batch also knows its next calls: while it works on one, it prefetches the table slots of
//! the call a few places ahead (`MemoryStore::prefetch_window`), so the cache misses of new keys
//! overlap instead of following one another.
//!
//! Record layout (`RECORD` numbers per call; `lib/memory-batch.js` writes the same):
//! `[kind, a, b, c, now, rate, keyLength]`, where `kind, a, b, c` is the algorithm as
//! `Kind::from_numbers` reads it and `keyLength` counts UTF-16 units of that call's key in
//! `keys`, the keys of all records in order. Answers go to `out`, four numbers per record:
//! `[success (1/0), limit, remaining, reset]`.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use ratelimit_core::stores::memory::MemoryStore;

use crate::algorithm::Kind;
use crate::args::{clock, cost};
use crate::batch_records::{push_key, Algorithms};
use crate::errors::invalid_arg;

/// Numbers per call in a batch's records.
const RECORD: usize = 7;
/// Numbers per answer in `out`.
const ANSWER: usize = 4;
/// How many calls ahead the batch prefetches counters: enough for their cache misses to be
/// under way together, few enough that the lines are still cached when their call comes.
const PREFETCH_AHEAD: usize = 4;

/// One record, read.
struct Call {
    kind: Kind,
    key: std::ops::Range<usize>,
    now: u64,
    rate: f64,
}

/// Answers records `from..count` in order and returns the index of the first one it could not
/// answer (`count` when it answered all). The facade replays that call through `memoryLimit`,
/// which throws its error, and resumes after it: a refused call changes no state, so the replay
/// sees what the batch saw.
#[napi(catch_unwind, js_name = "memoryLimitBatch")]
pub fn memory_limit_batch(
    records: Float64ArraySlice,
    count: u32,
    #[napi(ts_arg_type = "string")] keys: Utf16String,
    mut out: Float64ArraySlice,
    from: u32,
) -> Result<u32> {
    // SAFETY: the typed array's memory stays valid for this synchronous call, and no JS runs
    // (so nothing else can touch it) until the call returns.
    let out = unsafe { out.as_mut() };
    let count = count as usize;
    if records.len() < count.saturating_mul(RECORD) || out.len() < count.saturating_mul(ANSWER) {
        return Err(invalid_arg(
            "memoryLimitBatch: records or out hold fewer calls than count",
        ));
    }
    let store = MemoryStore::global();
    // First the calls as Rust values (keys decoded into one buffer), then the store work, so
    // the work on one call can prefetch the counters of the calls after it.
    let mut text = String::new();
    let mut calls: Vec<Option<Call>> = Vec::with_capacity(count);
    let mut offset = 0usize;
    let mut algorithms = Algorithms::default();
    for record in records.chunks_exact(RECORD).take(count) {
        let end = offset.saturating_add(record[6] as usize);
        let Some(units) = keys.get(offset..end) else {
            return Err(invalid_arg(
                "memoryLimitBatch: keys are shorter than the records say",
            ));
        };
        offset = end;
        let key_start = text.len();
        push_key(&mut text, units);
        let kind = algorithms.read([record[0], record[1], record[2], record[3]]);
        calls.push(match (kind, clock(record[4]), cost(record[5])) {
            (Ok(kind), Ok(now), Ok(rate)) => Some(Call {
                kind,
                key: key_start..text.len(),
                now,
                rate,
            }),
            _ => None,
        });
    }
    let from = from as usize;
    for call in calls.iter().skip(from).take(PREFETCH_AHEAD).flatten() {
        call.kind
            .prefetch_in_memory(&store, &text[call.key.clone()], call.now);
    }
    for (index, call) in calls.iter().enumerate().skip(from) {
        if let Some(Some(ahead)) = calls.get(index + PREFETCH_AHEAD) {
            ahead
                .kind
                .prefetch_in_memory(&store, &text[ahead.key.clone()], ahead.now);
        }
        let Some(call) = call else {
            return Ok(index as u32);
        };
        let key = &text[call.key.clone()];
        match call
            .kind
            .limit_numbers_in_memory(&store, key, call.now, call.rate, &[])
        {
            Ok(numbers) => out[index * ANSWER..(index + 1) * ANSWER].copy_from_slice(&numbers),
            Err(_) => return Ok(index as u32),
        }
    }
    Ok(count as u32)
}
