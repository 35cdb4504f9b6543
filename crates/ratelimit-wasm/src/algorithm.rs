//! `NativeAlgorithm`: the core's [`Algorithm`] under the Node addon's name and method names
//! (the compat path's script calls and reply arithmetic, and the memory store's calls).

use ratelimit_core::algorithm::{Algorithm, CallError};
use ratelimit_core::args::{clock, cost};
use ratelimit_core::js_reply::reply_from_json;
use ratelimit_core::round_trip::ExtrasParts;
use ratelimit_stores::memory_algorithm as in_memory;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::errors::js_error;
use crate::memory::NativeStore;
use crate::scripts::{invocation, to_js};

#[wasm_bindgen]
pub struct NativeAlgorithm {
    algorithm: Algorithm,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExtrasOutcome {
    numbers: Vec<f64>,
    analytics_error: Option<String>,
}

fn dynamic_refs(keys: &Option<Vec<String>>) -> Vec<&str> {
    keys.iter().flatten().map(String::as_str).collect()
}

fn from_js<T: for<'de> Deserialize<'de>>(value: JsValue) -> Result<T, JsError> {
    serde_wasm_bindgen::from_value(value).map_err(js_error)
}

/// A reply of numbers (or nulls) from a JS client.
fn reply_values(reply: JsValue) -> Result<Vec<Option<i64>>, JsError> {
    let values: Vec<Option<f64>> = from_js(reply)?;
    Ok(values.iter().map(|v| v.map(|f| f as i64)).collect())
}

fn new(
    algorithm: Result<Algorithm, ratelimit_core::args::ArgError>,
) -> Result<NativeAlgorithm, JsError> {
    algorithm
        .map(|algorithm| NativeAlgorithm { algorithm })
        .map_err(js_error)
}

#[wasm_bindgen]
impl NativeAlgorithm {
    #[wasm_bindgen(js_name = fixedWindow)]
    pub fn fixed_window(tokens: f64, window_ms: f64) -> Result<NativeAlgorithm, JsError> {
        new(Algorithm::fixed_window(tokens, window_ms))
    }

    #[wasm_bindgen(js_name = slidingWindow)]
    pub fn sliding_window(tokens: f64, window_ms: f64) -> Result<NativeAlgorithm, JsError> {
        new(Algorithm::sliding_window(tokens, window_ms))
    }

    #[wasm_bindgen(js_name = tokenBucket)]
    pub fn token_bucket(
        refill_rate: f64,
        interval_ms: f64,
        max_tokens: f64,
    ) -> Result<NativeAlgorithm, JsError> {
        new(Algorithm::token_bucket(
            refill_rate,
            interval_ms,
            max_tokens,
        ))
    }

    #[wasm_bindgen(js_name = cachedFixedWindow)]
    pub fn cached_fixed_window(tokens: f64, window_ms: f64) -> Result<NativeAlgorithm, JsError> {
        new(Algorithm::cached_fixed_window(tokens, window_ms))
    }

    /// The key of the window that `now` falls in (cachedFixedWindow's cache key too).
    #[wasm_bindgen(js_name = windowKey)]
    pub fn window_key(&self, key: &str, now: f64) -> Result<String, JsError> {
        Ok(self
            .algorithm
            .window_key(key, clock(now).map_err(js_error)?))
    }

    /// When the window that `now` falls in ends (unix ms).
    #[wasm_bindgen(js_name = windowReset)]
    pub fn window_reset(&self, now: f64) -> Result<f64, JsError> {
        Ok(self.algorithm.window_reset(clock(now).map_err(js_error)?))
    }

    #[wasm_bindgen(js_name = limitCall)]
    pub fn limit_call(
        &self,
        key: &str,
        now: f64,
        rate: f64,
        dynamic_keys: Option<Vec<String>>,
    ) -> Result<JsValue, JsError> {
        let call = self.algorithm.limit_call(
            key,
            clock(now).map_err(js_error)?,
            cost(rate).map_err(js_error)?,
            &dynamic_refs(&dynamic_keys),
        );
        invocation(call)
    }

    /// `[success (1/0), limit, remaining, reset]` (cachedFixedWindow: `[counter]`).
    #[wasm_bindgen(js_name = limitOutcome)]
    pub fn limit_outcome(&self, reply: JsValue, now: f64, rate: f64) -> Result<Vec<f64>, JsError> {
        cost(rate).map_err(js_error)?;
        self.algorithm
            .limit_outcome(&reply_values(reply)?, clock(now).map_err(js_error)?)
            .map_err(js_error)
    }

    #[wasm_bindgen(js_name = remainingCall)]
    pub fn remaining_call(
        &self,
        key: &str,
        now: f64,
        dynamic_keys: Option<Vec<String>>,
    ) -> Result<JsValue, JsError> {
        let call = self.algorithm.remaining_call(
            key,
            clock(now).map_err(js_error)?,
            &dynamic_refs(&dynamic_keys),
        );
        invocation(call)
    }

    /// `[remaining, reset, limit]`
    #[wasm_bindgen(js_name = remainingOutcome)]
    pub fn remaining_outcome(&self, reply: JsValue, now: f64) -> Result<Vec<f64>, JsError> {
        self.algorithm
            .remaining_outcome(&reply_values(reply)?, clock(now).map_err(js_error)?)
            .map(|numbers| numbers.to_vec())
            .map_err(js_error)
    }

    #[wasm_bindgen(js_name = resetCall)]
    pub fn reset_call(&self, key: &str) -> Result<JsValue, JsError> {
        invocation(self.algorithm.reset_call(key))
    }

    /// The limit call with protection and/or analytics in the same script.
    #[wasm_bindgen(js_name = limitExtrasCall)]
    pub fn limit_extras_call(
        &self,
        key: &str,
        now: f64,
        rate: f64,
        dynamic_keys: Option<Vec<String>>,
        extras: JsValue,
    ) -> Result<JsValue, JsError> {
        let extras = from_js::<ExtrasParts>(extras)?
            .into_extras()
            .map_err(js_error)?;
        let call = self
            .algorithm
            .limit_with_extras_call(
                key,
                clock(now).map_err(js_error)?,
                cost(rate).map_err(js_error)?,
                &dynamic_refs(&dynamic_keys),
                &extras,
            )
            .map_err(js_error)?;
        invocation(call)
    }

    /// `{ numbers: [success, limit, remaining, reset, status TTL, denied flag per value…],
    /// analyticsError }` from the reply of `limitExtrasCall`'s script.
    #[wasm_bindgen(js_name = limitExtrasOutcome)]
    pub fn limit_extras_outcome(&self, reply: JsValue, now: f64) -> Result<JsValue, JsError> {
        let reply: serde_json::Value = from_js(reply)?;
        let outcome = self
            .algorithm
            .extras_outcome(&reply_from_json(&reply), clock(now).map_err(js_error)?)
            .map_err(|e: CallError| js_error(e))?;
        to_js(&ExtrasOutcome {
            numbers: outcome.numbers,
            analytics_error: outcome.analytics_error,
        })
    }

    /// limit() on the memory store, answered synchronously.
    #[wasm_bindgen(js_name = limitNow)]
    pub fn limit_now(
        &self,
        store: &NativeStore,
        key: &str,
        now: f64,
        rate: f64,
        dynamic_keys: Option<Vec<String>>,
    ) -> Result<Vec<f64>, JsError> {
        in_memory::limit(
            store.memory(),
            &self.algorithm,
            key,
            clock(now).map_err(js_error)?,
            cost(rate).map_err(js_error)?,
            &dynamic_refs(&dynamic_keys),
        )
        .map_err(js_error)
    }

    /// getRemaining() on the memory store: `[remaining, reset, limit]`.
    #[wasm_bindgen(js_name = remainingNow)]
    pub fn remaining_now(
        &self,
        store: &NativeStore,
        key: &str,
        now: f64,
        dynamic_keys: Option<Vec<String>>,
    ) -> Result<Vec<f64>, JsError> {
        Ok(in_memory::remaining(
            store.memory(),
            &self.algorithm,
            key,
            clock(now).map_err(js_error)?,
            &dynamic_refs(&dynamic_keys),
        )
        .to_vec())
    }

    /// resetUsedTokens() on the memory store.
    #[wasm_bindgen(js_name = resetNow)]
    pub fn reset_now(&self, store: &NativeStore, key: &str, now: f64) -> Result<(), JsError> {
        in_memory::reset(
            store.memory(),
            &self.algorithm,
            key,
            clock(now).map_err(js_error)?,
        );
        Ok(())
    }
}
