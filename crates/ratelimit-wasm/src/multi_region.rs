//! `NativeMultiRegionAlgorithm`: the core's [`MultiRegionAlgorithm`] under the Node addon's names
//! (script calls, the arithmetic on the first region's reply, the back-fill plan).

use ratelimit_core::args::{clock, cost};
use ratelimit_core::js_reply::reply_from_json_as_text;
use ratelimit_core::multi_region_algorithm::MultiRegionAlgorithm;
use ratelimit_core::reply::Reply;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::errors::js_error;
use crate::scripts::{invocation, to_js};

#[wasm_bindgen]
pub struct NativeMultiRegionAlgorithm {
    algorithm: MultiRegionAlgorithm,
}

#[derive(Serialize)]
struct SyncPlan {
    key: String,
    ids: Vec<Vec<String>>,
}

fn reply_of(value: JsValue) -> Result<Reply, JsError> {
    let value: serde_json::Value = serde_wasm_bindgen::from_value(value).map_err(js_error)?;
    Ok(reply_from_json_as_text(&value))
}

#[wasm_bindgen]
impl NativeMultiRegionAlgorithm {
    #[wasm_bindgen(js_name = fixedWindow)]
    pub fn fixed_window(
        tokens: f64,
        window_ms: f64,
    ) -> Result<NativeMultiRegionAlgorithm, JsError> {
        let algorithm = MultiRegionAlgorithm::fixed_window(tokens, window_ms).map_err(js_error)?;
        Ok(NativeMultiRegionAlgorithm { algorithm })
    }

    #[wasm_bindgen(js_name = slidingWindow)]
    pub fn sliding_window(
        tokens: f64,
        window_ms: f64,
    ) -> Result<NativeMultiRegionAlgorithm, JsError> {
        let algorithm =
            MultiRegionAlgorithm::sliding_window(tokens, window_ms).map_err(js_error)?;
        Ok(NativeMultiRegionAlgorithm { algorithm })
    }

    #[wasm_bindgen(js_name = limitCall)]
    pub fn limit_call(
        &self,
        key: &str,
        now: f64,
        request_id: &str,
        rate: f64,
    ) -> Result<JsValue, JsError> {
        invocation(self.algorithm.limit_call(
            key,
            clock(now).map_err(js_error)?,
            request_id,
            cost(rate).map_err(js_error)?,
        ))
    }

    #[wasm_bindgen(js_name = limitOutcome)]
    pub fn limit_outcome(
        &self,
        reply: JsValue,
        now: f64,
        request_id: &str,
        rate: f64,
    ) -> Result<Vec<f64>, JsError> {
        self.algorithm
            .limit_outcome(
                &reply_of(reply)?,
                clock(now).map_err(js_error)?,
                request_id,
                cost(rate).map_err(js_error)?,
            )
            .map(|numbers| numbers.to_vec())
            .map_err(js_error)
    }

    #[wasm_bindgen(js_name = syncPlan)]
    pub fn sync_plan(
        &self,
        replies: Vec<JsValue>,
        first: u32,
        key: &str,
        now: f64,
        request_id: &str,
        rate: f64,
    ) -> Result<JsValue, JsError> {
        let replies = replies
            .into_iter()
            .map(reply_of)
            .collect::<Result<Vec<_>, _>>()?;
        let plan = self
            .algorithm
            .sync_plan(
                &replies,
                first as usize,
                key,
                clock(now).map_err(js_error)?,
                request_id,
                cost(rate).map_err(js_error)?,
            )
            .map_err(js_error)?;
        to_js(&SyncPlan {
            key: plan.key,
            ids: plan.ids,
        })
    }

    #[wasm_bindgen(js_name = remainingCall)]
    pub fn remaining_call(&self, key: &str, now: f64) -> Result<JsValue, JsError> {
        invocation(
            self.algorithm
                .remaining_call(key, clock(now).map_err(js_error)?),
        )
    }

    #[wasm_bindgen(js_name = remainingOutcome)]
    pub fn remaining_outcome(&self, reply: JsValue, now: f64) -> Result<Vec<f64>, JsError> {
        self.algorithm
            .remaining_outcome(&reply_of(reply)?, clock(now).map_err(js_error)?)
            .map(|numbers| numbers.to_vec())
            .map_err(js_error)
    }

    #[wasm_bindgen(js_name = resetCall)]
    pub fn reset_call(&self, key: &str) -> Result<JsValue, JsError> {
        invocation(self.algorithm.reset_call(key))
    }
}
