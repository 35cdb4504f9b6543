//! `memoryLimitBatch`: the limit() calls one JS turn made on the memory store, answered in one
//! N-API call instead of one each (`ratelimit_stores::memory_batch` does the work; this only
//! borrows the typed arrays and the keys string).

use napi::bindgen_prelude::*;
use napi_derive::napi;
use ratelimit_stores::memory::MemoryStore;
use ratelimit_stores::memory_batch::answer_batch;

use crate::args::arg_error;

/// Answers records `from..count` in order and returns the index of the first one it could not
/// answer (`count` when it answered all); see `ratelimit_stores::memory_batch`.
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
    answer_batch(MemoryStore::global_ref(), &records, count, &keys, out, from).map_err(arg_error)
}
