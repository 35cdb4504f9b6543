//! The memory store (one per isolate): `NativeStore.memory()`, `memoryLimit`,
//! `memoryLimitBatch`, under the Node addon's names.

use std::sync::Arc;

use ratelimit_core::algorithm::Algorithm;
use ratelimit_core::args::{clock, cost};
use ratelimit_core::js_reply::reply_to_json;
use ratelimit_stores::memory::MemoryStore;
use ratelimit_stores::memory_algorithm as in_memory;
use ratelimit_stores::memory_batch::answer_batch;
use ratelimit_stores::window_key;
use serde::Deserialize;
use wasm_bindgen::prelude::*;

use crate::errors::js_error;
use crate::scripts::to_js;

#[wasm_bindgen]
pub struct NativeStore {
    memory: Arc<MemoryStore>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct MemoryStoreOptions {
    max_keys: Option<u32>,
}

impl NativeStore {
    pub(crate) fn memory(&self) -> &Arc<MemoryStore> {
        &self.memory
    }
}

/// Mixes the host's randomness (32 bytes from `crypto.getRandomValues`) into the memory store's
/// hash keys; called once when the engine is installed, before any store is made. (This target's
/// std has no randomness of its own.) False when the keys were seeded already.
#[wasm_bindgen(js_name = seedHashKeys)]
pub fn seed_hash_keys(bytes: &[u8]) -> Result<bool, JsError> {
    let seed: [u8; 16] = bytes
        .get(..16)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| JsError::new("ratelimit-native: seedHashKeys needs at least 16 bytes"))?;
    let (a, b) = seed.split_at(8);
    let word = |half: &[u8]| u64::from_le_bytes(half.try_into().unwrap_or_default());
    Ok(window_key::seed_hash_keys([word(a), word(b)]))
}

#[wasm_bindgen]
impl NativeStore {
    /// The isolate's embedded store (shared by every limiter in it).
    #[wasm_bindgen(js_name = memory)]
    pub fn new_memory(options: JsValue) -> Result<NativeStore, JsError> {
        let options: MemoryStoreOptions = if options.is_undefined() || options.is_null() {
            MemoryStoreOptions::default()
        } else {
            serde_wasm_bindgen::from_value(options).map_err(js_error)?
        };
        let memory = MemoryStore::global();
        if let Some(max_keys) = options.max_keys {
            memory.set_max_keys(max_keys as usize);
        }
        Ok(NativeStore { memory })
    }

    /// Always true here: the memory store answers at once.
    #[wasm_bindgen(getter)]
    pub fn synchronous(&self) -> bool {
        true
    }

    #[wasm_bindgen(getter)]
    pub fn size(&self) -> u32 {
        u32::try_from(self.memory.len()).unwrap_or(u32::MAX)
    }

    /// A plain command (GET, SET, DEL), answered synchronously (`now` = `Date.now()`).
    #[wasm_bindgen(js_name = commandNow)]
    pub fn command_now(&self, parts: Vec<String>, now: f64) -> Result<JsValue, JsError> {
        let reply = self
            .memory
            .command(&parts, clock(now).map_err(js_error)?)
            .map_err(js_error)?;
        to_js(&reply_to_json(&reply))
    }
}

/// limit() on the memory store with plain arguments, the outcome written into `out` as
/// `[success, limit, remaining, reset]`.
#[allow(clippy::too_many_arguments)]
#[wasm_bindgen(js_name = memoryLimit)]
pub fn memory_limit(
    kind: u32,
    a: f64,
    b: f64,
    c: f64,
    key: &str,
    now: f64,
    rate: f64,
    out: &mut [f64],
    dynamic_keys: Option<Vec<String>>,
) -> Result<(), JsError> {
    let algorithm = Algorithm::from_numbers(kind, a, b, c).map_err(js_error)?;
    if out.len() < 4 {
        return Err(JsError::new("out needs room for 4 numbers"));
    }
    let dynamic: Vec<&str> = dynamic_keys.iter().flatten().map(String::as_str).collect();
    let numbers = in_memory::limit_numbers(
        &MemoryStore::global(),
        &algorithm,
        key,
        clock(now).map_err(js_error)?,
        cost(rate).map_err(js_error)?,
        &dynamic,
    )
    .map_err(js_error)?;
    out[..4].copy_from_slice(&numbers);
    Ok(())
}

/// A turn's limit() calls on the memory store in one call; see `ratelimit_stores::memory_batch`.
#[wasm_bindgen(js_name = memoryLimitBatch)]
pub fn memory_limit_batch(
    records: &[f64],
    count: u32,
    keys: &str,
    out: &mut [f64],
    from: u32,
) -> Result<u32, JsError> {
    let units: Vec<u16> = keys.encode_utf16().collect();
    answer_batch(&MemoryStore::global(), records, count, &units, out, from).map_err(js_error)
}
