//! `NativeMultiRegionAlgorithm`: one multi-region algorithm (the core's
//! [`MultiRegionAlgorithm`]) as a JS object. The JS facade (lib/multi-region.js) fans a call out
//! to every region and asks this object for the script call (compat path: the script runs
//! through the region's client), runs it on a native store (fast path), turns the first reply
//! into the response numbers, and plans the back-fill that `pending` performs. Replies cross as
//! JSON values, in whatever shape the region's client returned them (raw strings, or numbers
//! after `@upstash/redis`' deserialisation).

use napi::bindgen_prelude::*;
use napi_derive::napi;
use ratelimit_core::js_reply::{reply_from_json_as_text, reply_to_json};
use ratelimit_core::multi_region_algorithm::MultiRegionAlgorithm;
use ratelimit_core::scripts::ScriptCall;

use crate::algorithm::ScriptInvocation;
use crate::args::{arg_error, call_error, clock, cost};
use crate::errors::{invalid_arg, store_error};
use crate::store::{NativeStore, StoreKind};

#[napi]
pub struct NativeMultiRegionAlgorithm {
    algorithm: MultiRegionAlgorithm,
}

/// Runs a script on a native remote store; the reply comes back as JSON.
/// Queues the script call now — so calls made in one JS turn share a request, in the order they
/// were made, and the flush JS schedules for the turn sends it — and returns the future of its
/// reply. (Queued from inside the future instead, the call waited for the runtime thread to poll
/// it: after the turn's flush, on an event-loop store until some later flush.)
fn run(
    store: &StoreKind,
    call: ScriptCall,
) -> Result<impl std::future::Future<Output = Result<serde_json::Value>> + Send + 'static> {
    match store {
        StoreKind::Remote(client) => {
            let reply = client.queue_eval(call.script, call.keys, call.args);
            Ok(async move {
                reply
                    .await
                    .map(|reply| reply_to_json(&reply))
                    .map_err(store_error)
            })
        }
        StoreKind::Memory(_) => Err(invalid_arg(
            "ratelimit-native: multi-region limiters need Redis databases, not Redis.memory()",
        )),
    }
}

/// The back-fill of one limit call: the hash key, and per region the request ids to write.
#[napi(object)]
pub struct MultiRegionSyncPlan {
    pub key: String,
    pub ids: Vec<Vec<String>>,
}

#[napi]
impl NativeMultiRegionAlgorithm {
    #[napi(factory)]
    pub fn fixed_window(tokens: f64, window_ms: f64) -> Result<NativeMultiRegionAlgorithm> {
        let algorithm = MultiRegionAlgorithm::fixed_window(tokens, window_ms).map_err(arg_error)?;
        Ok(NativeMultiRegionAlgorithm { algorithm })
    }

    #[napi(factory)]
    pub fn sliding_window(tokens: f64, window_ms: f64) -> Result<NativeMultiRegionAlgorithm> {
        let algorithm =
            MultiRegionAlgorithm::sliding_window(tokens, window_ms).map_err(arg_error)?;
        Ok(NativeMultiRegionAlgorithm { algorithm })
    }

    /// The limit script call for one region (compat path: sent through the region's client).
    #[napi]
    pub fn limit_call(
        &self,
        key: String,
        now: f64,
        request_id: String,
        rate: f64,
    ) -> Result<ScriptInvocation> {
        Ok(self
            .algorithm
            .limit_call(&key, clock(now)?, &request_id, cost(rate)?)
            .into())
    }

    /// The limit script on a native store; resolves with the script's reply (JSON).
    #[napi(ts_return_type = "Promise<unknown>")]
    pub fn limit_on<'env>(
        &self,
        env: &'env Env,
        store: &NativeStore,
        key: String,
        now: f64,
        request_id: String,
        rate: f64,
    ) -> Result<PromiseRaw<'env, serde_json::Value>> {
        let call = self
            .algorithm
            .limit_call(&key, clock(now)?, &request_id, cost(rate)?);
        env.spawn_future(run(&store.kind, call)?)
    }

    /// `[success (1/0), limit, remaining, reset]` from the first region's limit reply.
    #[napi]
    pub fn limit_outcome(
        &self,
        #[napi(ts_arg_type = "unknown")] reply: serde_json::Value,
        now: f64,
        request_id: String,
        rate: f64,
    ) -> Result<Vec<f64>> {
        self.algorithm
            .limit_outcome(
                &reply_from_json_as_text(&reply),
                clock(now)?,
                &request_id,
                cost(rate)?,
            )
            .map(|numbers| numbers.to_vec())
            .map_err(call_error)
    }

    /// What `pending` writes once every region answered: per region (in `replies` order), the
    /// request ids to `HSET key id rate`, one after the other. `first` is the region whose
    /// reply answered the call.
    #[napi]
    pub fn sync_plan(
        &self,
        #[napi(ts_arg_type = "unknown[]")] replies: Vec<serde_json::Value>,
        first: u32,
        key: String,
        now: f64,
        request_id: String,
        rate: f64,
    ) -> Result<MultiRegionSyncPlan> {
        let replies: Vec<_> = replies.iter().map(reply_from_json_as_text).collect();
        let plan = self
            .algorithm
            .sync_plan(
                &replies,
                first as usize,
                &key,
                clock(now)?,
                &request_id,
                cost(rate)?,
            )
            .map_err(call_error)?;
        Ok(MultiRegionSyncPlan {
            key: plan.key,
            ids: plan.ids,
        })
    }

    #[napi]
    pub fn remaining_call(&self, key: String, now: f64) -> Result<ScriptInvocation> {
        Ok(self.algorithm.remaining_call(&key, clock(now)?).into())
    }

    /// The getRemaining script on a native store; resolves with its reply (JSON).
    #[napi(ts_return_type = "Promise<unknown>")]
    pub fn remaining_on<'env>(
        &self,
        env: &'env Env,
        store: &NativeStore,
        key: String,
        now: f64,
    ) -> Result<PromiseRaw<'env, serde_json::Value>> {
        let call = self.algorithm.remaining_call(&key, clock(now)?);
        env.spawn_future(run(&store.kind, call)?)
    }

    /// `[remaining, reset, limit]` from the first region's getRemaining reply.
    #[napi]
    pub fn remaining_outcome(
        &self,
        #[napi(ts_arg_type = "unknown")] reply: serde_json::Value,
        now: f64,
    ) -> Result<Vec<f64>> {
        self.algorithm
            .remaining_outcome(&reply_from_json_as_text(&reply), clock(now)?)
            .map(|numbers| numbers.to_vec())
            .map_err(call_error)
    }

    /// resetUsedTokens in one region: every window hash of the id.
    #[napi]
    pub fn reset_call(&self, key: String) -> ScriptInvocation {
        self.algorithm.reset_call(&key).into()
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn reset_on<'env>(
        &self,
        env: &'env Env,
        store: &NativeStore,
        key: String,
    ) -> Result<PromiseRaw<'env, ()>> {
        let call = self.algorithm.reset_call(&key);
        let reply = run(&store.kind, call)?;
        env.spawn_future(async move {
            reply.await?;
            Ok(())
        })
    }
}
