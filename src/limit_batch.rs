//! `limitBatch`: the limit() calls one JS turn made on a remote store, handed over in one N-API
//! call instead of one each.
//!
//! A limit call made through its own N-API method cost about 1.5 µs of the JS thread (measured
//! on this machine), most of it napi-rs's per-call work: unwrapping two class instances with
//! their borrow bookkeeping, converting seven arguments, and a queue lock. The facade instead
//! writes each call's numbers into a reused `Float64Array` and appends its key to one string
//! (about 0.05 µs), and hands both over when it flushes: one crossing, one string conversion and
//! one unwrap per batch.
//!
//! Record layout (`RECORD` numbers per call; `lib/redis.js` writes the same):
//! `[id, kind, a, b, c, now, rate, waitMs, keyLength]`, where `kind, a, b, c` is the algorithm
//! as `Algorithm::from_numbers` reads it, `waitMs` ≤ 0 means "no timeout", and `keyLength` counts
//! UTF-16 units of that call's key in `keys`, the keys of all records in order.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::algorithm::{queue_limit, wait_limit};
use crate::args::{clock, cost};
use crate::errors::invalid_arg;
use crate::store::{NativeStore, StoreKind};
use ratelimit_core::batch_records::{push_key, Algorithms};

/// Numbers per call in a batch's records.
const RECORD: usize = 9;

/// Queues `count` limit calls, each answered through the store's completion callback under its
/// id (as `limitQueue`). A call whose numbers are refused fails alone, with the message its own
/// `limitQueue` would have thrown.
#[napi(catch_unwind, js_name = "limitBatch")]
pub fn limit_batch(
    store: &NativeStore,
    records: Float64ArraySlice,
    count: u32,
    #[napi(ts_arg_type = "string")] keys: Utf16String,
) -> Result<()> {
    let StoreKind::Remote(client) = &store.kind else {
        return Err(invalid_arg("limitBatch is for remote stores"));
    };
    let count = count as usize;
    if records.len() < count.saturating_mul(RECORD) {
        return Err(invalid_arg("limitBatch: fewer records than count"));
    }
    let sink = &store.completions;
    let mut key = String::new();
    let mut offset = 0usize;
    let mut algorithms = Algorithms::default();
    let mut refused = false;
    for record in records.chunks_exact(RECORD).take(count) {
        let id = record[0] as u32;
        let end = offset.saturating_add(record[8] as usize);
        let Some(units) = keys.get(offset..end) else {
            sink.fail(
                id,
                "ratelimit-native: limitBatch keys are shorter than the records say".into(),
            );
            refused = true;
            continue;
        };
        offset = end;
        key.clear();
        push_key(&mut key, units);
        let kind = algorithms
            .read([record[1], record[2], record[3], record[4]])
            .map_err(crate::args::arg_error);
        let queued = kind.and_then(|kind| {
            queue_limit(
                kind,
                client,
                sink,
                id,
                &key,
                clock(record[5])?,
                cost(record[6])?,
                &[],
                wait_limit(Some(record[7])),
            )
        });
        if let Err(error) = queued {
            sink.fail(id, error.reason.clone());
            refused = true;
        }
    }
    if refused {
        // Nothing else may deliver soon (the refused calls were never sent).
        sink.deliver();
    }
    Ok(())
}
