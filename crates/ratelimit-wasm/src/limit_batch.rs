//! `limitBatchBody` / `limitBatchOutcomes`: the limit() calls one JS turn made on a REST store,
//! on the WebAssembly engine. One crossing writes their `/pipeline` items, one does the
//! arithmetic on their replies, instead of a crossing (and a script text copied out) per call.
//!
//! Records use the napi binding's `limitBatch` layout (lib/redis.js `LimitBatch` writes it):
//! `[id, kind, a, b, c, now, rate, waitMs, keyLength]` per call, `keyLength` in UTF-16 units of
//! that call's key in `keys`. The request goes through JS (lib/fetch-pipeline.js), which owns the
//! transport, the items' errors and the NOSCRIPT retry.

use ratelimit_core::args::{clock, cost};
use ratelimit_core::batch_records::Algorithms;
use ratelimit_core::pipeline::{write_item, Command};
use wasm_bindgen::prelude::*;

use crate::errors::js_error;

/// Numbers per call in a batch's records.
const RECORD: usize = 9;
/// Numbers per call in `limitBatchOutcomes`' output at most: `[id, n, value × 4]`.
const OUTCOME: usize = 6;

fn records_of(records: &[f64], count: u32) -> Result<impl Iterator<Item = &[f64]>, JsError> {
    let count = count as usize;
    if records.len() < count.saturating_mul(RECORD) {
        return Err(JsError::new(
            "ratelimit-native: limitBatch: fewer records than count",
        ));
    }
    Ok(records.chunks_exact(RECORD).take(count))
}

/// The `/pipeline` items of `count` limit calls, comma-separated (no brackets: JS joins them
/// with the other commands of the request), as the core's body writer writes each item. Scripts go as EVALSHA, or as EVAL (`as_eval`) for
/// the calls whose EVALSHA answered NOSCRIPT.
#[wasm_bindgen(js_name = limitBatchBody)]
pub fn limit_batch_body(
    records: &[f64],
    count: u32,
    keys: &str,
    as_eval: bool,
) -> Result<String, JsError> {
    let mut chars = keys.chars();
    let mut algorithms = Algorithms::default();
    // About 200 bytes an item (EVALSHA, the SHA1, keys and arguments), written straight here.
    let mut body = Vec::with_capacity(count as usize * 256);
    let mut key = String::new();
    for record in records_of(records, count)? {
        // `keyLength` counts UTF-16 units; a lone surrogate arrived as U+FFFD, also one unit.
        key.clear();
        let mut units = 0usize;
        let want = record[8] as usize;
        while units < want {
            let c = chars.next().ok_or_else(|| {
                JsError::new("ratelimit-native: limitBatch keys are shorter than the records say")
            })?;
            units += c.len_utf16();
            key.push(c);
        }
        let algorithm = algorithms
            .read([record[1], record[2], record[3], record[4]])
            .map_err(js_error)?;
        let call = algorithm.limit_call(
            &key,
            clock(record[5]).map_err(js_error)?,
            cost(record[6]).map_err(js_error)?,
            &[],
        );
        let command = Command::Script {
            script: call.script,
            keys: call.keys,
            args: call.args,
        };
        if !body.is_empty() {
            body.push(b',');
        }
        write_item(&mut body, &command, as_eval).map_err(js_error)?;
    }
    String::from_utf8(body).map_err(js_error)
}

/// The limit outcomes of `count` calls from their script replies.
///
/// `replies` holds, per call, `[n, value × n]` (a null value as NaN), or `[-1]` for a call whose
/// item JS answered itself (an error item). `out` gets `out[0]` = how many numbers follow, then
/// `[id, n, outcome × n]` per answered call, as the napi binding's completions carry them
/// (`[success, limit, remaining, reset]`, cachedFixedWindow `[counter]`). Returns the failures
/// as `[id, message, …]` (a reply the arithmetic cannot read), as its completions do too.
#[wasm_bindgen(js_name = limitBatchOutcomes)]
pub fn limit_batch_outcomes(
    records: &[f64],
    count: u32,
    replies: &[f64],
    out: &mut [f64],
) -> Result<Vec<String>, JsError> {
    if out.len() < 1 + (count as usize).saturating_mul(OUTCOME) {
        return Err(JsError::new(
            "ratelimit-native: limitBatchOutcomes: output too small",
        ));
    }
    let mut algorithms = Algorithms::default();
    let mut failures = Vec::new();
    let mut at = 1usize;
    let mut read = 0usize;
    let mut reply: Vec<Option<i64>> = Vec::with_capacity(4);
    for record in records_of(records, count)? {
        let n = *replies.get(read).ok_or_else(|| {
            JsError::new("ratelimit-native: limitBatchOutcomes: fewer replies than calls")
        })?;
        read += 1;
        if n < 0.0 {
            continue;
        }
        let n = n as usize;
        let values = replies.get(read..read + n).ok_or_else(|| {
            JsError::new("ratelimit-native: limitBatchOutcomes: a reply is cut short")
        })?;
        read += n;
        reply.clear();
        reply.extend(values.iter().map(|v| v.is_finite().then_some(*v as i64)));
        let outcome = algorithms
            .read([record[1], record[2], record[3], record[4]])
            .map_err(|e| e.to_string())
            .and_then(|algorithm| {
                let now = clock(record[5]).map_err(|e| e.to_string())?;
                algorithm
                    .limit_outcome(&reply, now)
                    .map_err(|e| e.to_string())
            });
        match outcome {
            Ok(numbers) if numbers.len() <= OUTCOME - 2 => {
                out[at] = record[0];
                out[at + 1] = numbers.len() as f64;
                out[at + 2..at + 2 + numbers.len()].copy_from_slice(&numbers);
                at += 2 + numbers.len();
            }
            Ok(numbers) => {
                failures.push(record[0].to_string());
                failures.push(format!(
                    "ratelimit-native: limitBatchOutcomes: {} numbers for one call",
                    numbers.len()
                ));
            }
            Err(message) => {
                failures.push(record[0].to_string());
                failures.push(message);
            }
        }
    }
    out[0] = (at - 1) as f64;
    Ok(failures)
}
