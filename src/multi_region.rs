//! `NativeMultiRegionAlgorithm`: one multi-region algorithm's parameters. The JS facade
//! (lib/multi-region.js) fans a call out to every region and asks this object for the script
//! call (compat path: the script runs through the region's client), runs it on a native store
//! (fast path), turns the first reply into the response numbers, and plans the back-fill that
//! `pending` performs. Replies cross as JSON values, in whatever shape the region's client
//! returned them (raw strings, or numbers after `@upstash/redis`' deserialisation).

use napi::bindgen_prelude::*;
use napi_derive::napi;
use ratelimit_core::algorithms::multi_region::{
    sync_plan, HashFields, MultiFixedWindow, MultiSlidingWindow, MultiSlidingWindowLimitReply,
};
use ratelimit_core::algorithms::{LimitOutcome, RemainingOutcome};
use ratelimit_core::keys::{self, ResetTarget};
use ratelimit_core::num::js_number_string;
use ratelimit_core::scripts::{ScriptCall, RESET};
use ratelimit_core::stores::Reply;

use crate::algorithm::ScriptInvocation;
use crate::args::{clock, cost, limit_numbers, positive, remaining_numbers, reply_error, window};
use crate::errors::{invalid_arg, store_error};
use crate::store::{NativeStore, StoreKind};

#[derive(Debug, Clone, Copy)]
enum Kind {
    Fixed(MultiFixedWindow),
    Sliding(MultiSlidingWindow),
}

#[napi]
pub struct NativeMultiRegionAlgorithm {
    kind: Kind,
}

/// A reply as a JS client handed it back → a store reply. Numbers keep their JS text
/// (`String(n)`), which is what `parseInt` / arithmetic see.
fn reply_from_js(value: &serde_json::Value) -> Reply {
    match value {
        serde_json::Value::Null => Reply::Nil,
        serde_json::Value::Bool(b) => Reply::Int(i64::from(*b)),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Reply::Int(i),
            None => Reply::Bytes(js_number_string(n.as_f64().unwrap_or(f64::NAN)).into_bytes()),
        },
        serde_json::Value::String(s) => Reply::Bytes(s.clone().into_bytes()),
        serde_json::Value::Array(items) => Reply::Array(items.iter().map(reply_from_js).collect()),
        serde_json::Value::Object(_) => Reply::Nil,
    }
}

/// A store reply → the JSON a raw client would return (strings stay strings).
fn reply_to_js(reply: &Reply) -> serde_json::Value {
    match reply {
        Reply::Nil => serde_json::Value::Null,
        Reply::Int(i) => serde_json::Value::from(*i),
        Reply::Bytes(b) => serde_json::Value::String(String::from_utf8_lossy(b).into_owned()),
        Reply::Array(items) => serde_json::Value::Array(items.iter().map(reply_to_js).collect()),
    }
}

fn reset_call(target: ResetTarget) -> ScriptCall {
    ScriptCall {
        script: &RESET,
        keys: vec![target.pattern],
        args: target.args,
    }
}

impl Kind {
    fn limit_call(&self, key: &str, now: u64, request_id: &str, rate: f64) -> ScriptCall {
        match self {
            Kind::Fixed(a) => a.limit_call(key, now, request_id, rate),
            Kind::Sliding(a) => a.limit_call(key, now, request_id, rate),
        }
    }

    fn remaining_call(&self, key: &str, now: u64) -> ScriptCall {
        match self {
            Kind::Fixed(a) => a.remaining_call(key, now),
            Kind::Sliding(a) => a.remaining_call(key, now),
        }
    }

    fn tokens(&self) -> f64 {
        match self {
            Kind::Fixed(a) => a.tokens,
            Kind::Sliding(a) => a.tokens,
        }
    }

    /// The hash a region's limit call wrote to (the current window's).
    fn window_key(&self, key: &str, now: u64) -> String {
        match self {
            Kind::Fixed(a) => a.key(key, now),
            Kind::Sliding(a) => a.keys(key, now).0,
        }
    }

    fn limit_outcome(
        &self,
        reply: &Reply,
        now: u64,
        request_id: &str,
        rate: f64,
    ) -> Result<LimitOutcome> {
        Ok(match self {
            Kind::Fixed(a) => a.limit_outcome(&a.decode_reply(reply).map_err(reply_error)?, now),
            Kind::Sliding(a) => a.limit_outcome(
                &MultiSlidingWindowLimitReply::from_reply(reply).map_err(reply_error)?,
                now,
                request_id,
                rate,
            ),
        })
    }

    /// The entries the client holds for one region's limit reply (for the back-fill).
    fn client_fields(
        &self,
        reply: &Reply,
        answered_first: bool,
        request_id: &str,
        rate: f64,
    ) -> Result<HashFields> {
        Ok(match self {
            Kind::Fixed(a) => a.decode_reply(reply).map_err(reply_error)?,
            Kind::Sliding(_) => {
                let decoded =
                    MultiSlidingWindowLimitReply::from_reply(reply).map_err(reply_error)?;
                if answered_first {
                    MultiSlidingWindow::fields_seen_by_client(&decoded, request_id, rate)
                } else {
                    decoded.current
                }
            }
        })
    }

    fn remaining_outcome(&self, reply: &Reply, now: u64) -> Result<RemainingOutcome> {
        Ok(match self {
            Kind::Fixed(a) => {
                a.remaining_outcome(&a.decode_reply(reply).map_err(reply_error)?, now)
            }
            Kind::Sliding(a) => a.remaining_outcome(reply, now),
        })
    }
}

/// Runs a script on a native remote store; the reply comes back as JSON.
async fn run(store: StoreKind, call: ScriptCall) -> Result<serde_json::Value> {
    match store {
        StoreKind::Remote(client) => client
            .eval(call.script, call.keys, call.args)
            .await
            .map(|reply| reply_to_js(&reply))
            .map_err(store_error),
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
        let tokens = positive("tokens", tokens)?;
        let window_ms = window("window", window_ms)?;
        Ok(NativeMultiRegionAlgorithm {
            kind: Kind::Fixed(MultiFixedWindow::new(tokens, window_ms)),
        })
    }

    #[napi(factory)]
    pub fn sliding_window(tokens: f64, window_ms: f64) -> Result<NativeMultiRegionAlgorithm> {
        let tokens = positive("tokens", tokens)?;
        let window_ms = window("window", window_ms)?;
        Ok(NativeMultiRegionAlgorithm {
            kind: Kind::Sliding(MultiSlidingWindow::new(tokens, window_ms)),
        })
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
            .kind
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
            .kind
            .limit_call(&key, clock(now)?, &request_id, cost(rate)?);
        let store = store.kind.clone();
        env.spawn_future(run(store, call))
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
        let outcome = self.kind.limit_outcome(
            &reply_from_js(&reply),
            clock(now)?,
            &request_id,
            cost(rate)?,
        )?;
        Ok(limit_numbers(outcome))
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
        let rate = cost(rate)?;
        let regions = replies
            .iter()
            .enumerate()
            .map(|(i, reply)| {
                self.kind.client_fields(
                    &reply_from_js(reply),
                    i == first as usize,
                    &request_id,
                    rate,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(MultiRegionSyncPlan {
            key: self.kind.window_key(&key, clock(now)?),
            ids: sync_plan(self.kind.tokens(), &regions),
        })
    }

    #[napi]
    pub fn remaining_call(&self, key: String, now: f64) -> Result<ScriptInvocation> {
        Ok(self.kind.remaining_call(&key, clock(now)?).into())
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
        let call = self.kind.remaining_call(&key, clock(now)?);
        let store = store.kind.clone();
        env.spawn_future(run(store, call))
    }

    /// `[remaining, reset, limit]` from the first region's getRemaining reply.
    #[napi]
    pub fn remaining_outcome(
        &self,
        #[napi(ts_arg_type = "unknown")] reply: serde_json::Value,
        now: f64,
    ) -> Result<Vec<f64>> {
        Ok(remaining_numbers(
            self.kind
                .remaining_outcome(&reply_from_js(&reply), clock(now)?)?,
        ))
    }

    /// resetUsedTokens in one region: every window hash of the id.
    #[napi]
    pub fn reset_call(&self, key: String) -> ScriptInvocation {
        reset_call(keys::window_reset_target(&key)).into()
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn reset_on<'env>(
        &self,
        env: &'env Env,
        store: &NativeStore,
        key: String,
    ) -> Result<PromiseRaw<'env, ()>> {
        let call = reset_call(keys::window_reset_target(&key));
        let store = store.kind.clone();
        env.spawn_future(async move {
            run(store, call).await?;
            Ok(())
        })
    }
}
