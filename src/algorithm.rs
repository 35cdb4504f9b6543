//! `NativeAlgorithm`: one built-in algorithm (the core's [`Algorithm`]) as a JS object. The JS
//! facade asks it for script calls and reply arithmetic (compat path: the script runs through
//! the user's client) or lets it run the whole call on a native store (fast path). This file
//! only marshals: the algorithm is the core's, the memory store's side `ratelimit-stores`'.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use ratelimit_core::algorithm::Algorithm;
use ratelimit_core::js_reply::reply_from_json;
use ratelimit_core::round_trip::ExtrasParts;
use ratelimit_core::scripts::ScriptCall;
use ratelimit_stores::memory::MemoryStore;
use ratelimit_stores::memory_algorithm as in_memory;
use ratelimit_stores::remote::RemoteStore;

use crate::args::{arg_error, call_error, clock, cost};
use crate::errors::{invalid_arg, store_error};
use crate::short_str::ShortStr;
use crate::store::{CompletionSink, NativeStore, StoreKind};

#[napi]
pub struct NativeAlgorithm {
    algorithm: Algorithm,
}

/// A script invocation for the compat path: `evalsha(sha1, keys, args)`, `eval(script, …)`.
#[napi(object)]
pub struct ScriptInvocation {
    pub sha1: String,
    pub script: String,
    pub keys: Vec<String>,
    pub args: Vec<String>,
}

impl From<ScriptCall> for ScriptInvocation {
    fn from(call: ScriptCall) -> Self {
        ScriptInvocation {
            sha1: call.script.sha1().to_string(),
            script: call.script.source.to_string(),
            keys: call.keys,
            args: call.args,
        }
    }
}

/// Dynamic-limit keys, most specific first (absent = dynamic limits off).
fn dynamic_refs(keys: &Option<Vec<String>>) -> Vec<&str> {
    keys.iter().flatten().map(String::as_str).collect()
}

/// How long the caller waits for a queued call (its limiter's timeout), if it gives up at all.
pub(crate) fn wait_limit(wait_ms: Option<f64>) -> Option<std::time::Duration> {
    wait_ms
        .filter(|ms| ms.is_finite() && *ms > 0.0)
        .map(|ms| std::time::Duration::from_secs_f64(ms / 1000.0))
}

fn reply_values(reply: &[Option<f64>]) -> Vec<Option<i64>> {
    reply.iter().map(|v| v.map(|f| f as i64)).collect()
}

/// Queues the script call now (so calls made in one JS tick share a request) and returns the
/// future of its reply as numbers.
fn run(
    store: &StoreKind,
    call: ScriptCall,
) -> Result<impl std::future::Future<Output = Result<Vec<Option<i64>>>> + Send + 'static> {
    match store {
        StoreKind::Remote(client) => {
            let reply = client.queue_eval(call.script, call.keys, call.args);
            Ok(async move { reply.await.map(|r| r.numbers()).map_err(store_error) })
        }
        StoreKind::Memory(_) => Err(Error::new(
            Status::GenericFailure,
            "the memory store runs algorithms natively, not scripts",
        )),
    }
}

fn memory_of(store: &NativeStore) -> Result<&Arc<MemoryStore>> {
    match &store.kind {
        StoreKind::Memory(memory) => Ok(memory),
        StoreKind::Remote(_) => Err(invalid_arg(
            "this call is for the memory store; remote stores use the async methods",
        )),
    }
}

/// The algorithm as plain numbers (how the hot paths pass it); see [`Algorithm::from_numbers`].
pub(crate) fn algorithm_from_numbers(kind: u32, a: f64, b: f64, c: f64) -> Result<Algorithm> {
    Algorithm::from_numbers(kind, a, b, c).map_err(arg_error)
}

/// Queues the whole limit call on a remote store; its outcome, `[success, limit, remaining,
/// reset]`, reaches JS through the store's completion sink under `id`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn queue_limit(
    algorithm: Algorithm,
    client: &RemoteStore,
    sink: &Arc<CompletionSink>,
    id: u32,
    key: &str,
    now: u64,
    rate: f64,
    dynamic_keys: &[&str],
    wait: Option<std::time::Duration>,
) -> Result<()> {
    let call = algorithm.limit_call(key, now, rate, dynamic_keys);
    let sink = sink.clone();
    client
        .queue_eval_with(
            call.script,
            call.keys,
            call.args,
            Box::new(move |reply| {
                match reply.map_err(|e| e.to_string()).and_then(|r| {
                    algorithm
                        .limit_outcome(&r.numbers(), now)
                        .map_err(|e| e.to_string())
                }) {
                    Ok(numbers) => sink.succeed(id, &numbers),
                    Err(message) => sink.fail(id, message),
                }
            }),
            wait,
        )
        .map_err(store_error)
}

/// What rides along with a limit call: the deny-list check (`denyListKey`, `statusKey`,
/// `values`) and/or the analytics record (`eventsKey` and the members to record).
#[napi(object)]
pub struct LimitExtras {
    pub deny_list_key: Option<String>,
    pub status_key: Option<String>,
    pub values: Option<Vec<String>>,
    pub events_key: Option<String>,
    pub allowed_member: Option<String>,
    pub blocked_member: Option<String>,
    pub denied_members: Option<Vec<String>>,
}

impl LimitExtras {
    fn into_core(self) -> Result<ratelimit_core::round_trip::Extras> {
        ExtrasParts {
            deny_list_key: self.deny_list_key,
            status_key: self.status_key,
            values: self.values,
            events_key: self.events_key,
            allowed_member: self.allowed_member,
            blocked_member: self.blocked_member,
            denied_members: self.denied_members,
        }
        .into_extras()
        .map_err(arg_error)
    }
}

/// The outcome of a limit call with protection and/or analytics.
#[napi(object)]
pub struct ExtrasOutcome {
    /// `[success (1/0), limit, remaining, reset, deny-list status TTL, denied flag per value…]`
    pub numbers: Vec<f64>,
    /// Redis' error when the analytics write failed (the limit itself succeeded).
    pub analytics_error: Option<String>,
}

impl From<ratelimit_core::algorithm::ExtrasOutcome> for ExtrasOutcome {
    fn from(o: ratelimit_core::algorithm::ExtrasOutcome) -> Self {
        ExtrasOutcome {
            numbers: o.numbers,
            analytics_error: o.analytics_error,
        }
    }
}

#[napi]
impl NativeAlgorithm {
    /// The limit call with protection and/or analytics in the same script (compat path).
    #[napi(catch_unwind)]
    pub fn limit_extras_call(
        &self,
        key: String,
        now: f64,
        rate: f64,
        dynamic_keys: Option<Vec<String>>,
        extras: LimitExtras,
    ) -> Result<ScriptInvocation> {
        let call = self
            .algorithm
            .limit_with_extras_call(
                &key,
                clock(now)?,
                cost(rate)?,
                &dynamic_refs(&dynamic_keys),
                &extras.into_core()?,
            )
            .map_err(arg_error)?;
        Ok(call.into())
    }

    /// `[success, limit, remaining, reset, status TTL, denied flag per value…]` from the reply
    /// of `limitExtrasCall`'s script, as a JS client returned it.
    #[napi(catch_unwind)]
    pub fn limit_extras_outcome(
        &self,
        #[napi(ts_arg_type = "unknown")] reply: serde_json::Value,
        now: f64,
    ) -> Result<ExtrasOutcome> {
        self.algorithm
            .extras_outcome(&reply_from_json(&reply), clock(now)?)
            .map(Into::into)
            .map_err(call_error)
    }

    #[napi(catch_unwind, factory)]
    pub fn fixed_window(tokens: f64, window_ms: f64) -> Result<NativeAlgorithm> {
        let algorithm = Algorithm::fixed_window(tokens, window_ms).map_err(arg_error)?;
        Ok(NativeAlgorithm { algorithm })
    }

    #[napi(catch_unwind, factory)]
    pub fn sliding_window(tokens: f64, window_ms: f64) -> Result<NativeAlgorithm> {
        let algorithm = Algorithm::sliding_window(tokens, window_ms).map_err(arg_error)?;
        Ok(NativeAlgorithm { algorithm })
    }

    #[napi(catch_unwind, factory)]
    pub fn token_bucket(
        refill_rate: f64,
        interval_ms: f64,
        max_tokens: f64,
    ) -> Result<NativeAlgorithm> {
        let algorithm =
            Algorithm::token_bucket(refill_rate, interval_ms, max_tokens).map_err(arg_error)?;
        Ok(NativeAlgorithm { algorithm })
    }

    #[napi(catch_unwind, factory)]
    pub fn cached_fixed_window(tokens: f64, window_ms: f64) -> Result<NativeAlgorithm> {
        let algorithm = Algorithm::cached_fixed_window(tokens, window_ms).map_err(arg_error)?;
        Ok(NativeAlgorithm { algorithm })
    }

    /// The key of the window that `now` falls in (cachedFixedWindow's cache key too).
    #[napi(catch_unwind)]
    pub fn window_key(&self, key: String, now: f64) -> Result<String> {
        Ok(self.algorithm.window_key(&key, clock(now)?))
    }

    /// When the window that `now` falls in ends (unix ms).
    #[napi(catch_unwind)]
    pub fn window_reset(&self, now: f64) -> Result<f64> {
        Ok(self.algorithm.window_reset(clock(now)?))
    }

    #[napi(catch_unwind)]
    pub fn limit_call(
        &self,
        key: String,
        now: f64,
        rate: f64,
        dynamic_keys: Option<Vec<String>>,
    ) -> Result<ScriptInvocation> {
        Ok(self
            .algorithm
            .limit_call(&key, clock(now)?, cost(rate)?, &dynamic_refs(&dynamic_keys))
            .into())
    }

    /// `[success (1/0), limit, remaining, reset]` (cachedFixedWindow: `[counter]`).
    #[napi(catch_unwind)]
    pub fn limit_outcome(&self, reply: Vec<Option<f64>>, now: f64, rate: f64) -> Result<Vec<f64>> {
        cost(rate)?;
        self.algorithm
            .limit_outcome(&reply_values(&reply), clock(now)?)
            .map_err(call_error)
    }

    #[napi(catch_unwind)]
    pub fn remaining_call(
        &self,
        key: String,
        now: f64,
        dynamic_keys: Option<Vec<String>>,
    ) -> Result<ScriptInvocation> {
        Ok(self
            .algorithm
            .remaining_call(&key, clock(now)?, &dynamic_refs(&dynamic_keys))
            .into())
    }

    /// `[remaining, reset, limit]`
    #[napi(catch_unwind)]
    pub fn remaining_outcome(&self, reply: Vec<Option<f64>>, now: f64) -> Result<Vec<f64>> {
        self.algorithm
            .remaining_outcome(&reply_values(&reply), clock(now)?)
            .map(|numbers| numbers.to_vec())
            .map_err(call_error)
    }

    #[napi(catch_unwind)]
    pub fn reset_call(&self, key: String) -> ScriptInvocation {
        self.algorithm.reset_call(&key).into()
    }

    /// limit() on the memory store, answered synchronously (no thread hop).
    #[napi(catch_unwind)]
    pub fn limit_now(
        &self,
        store: &NativeStore,
        key: String,
        now: f64,
        rate: f64,
        dynamic_keys: Option<Vec<String>>,
    ) -> Result<Vec<f64>> {
        in_memory::limit(
            memory_of(store)?,
            &self.algorithm,
            &key,
            clock(now)?,
            cost(rate)?,
            &dynamic_refs(&dynamic_keys),
        )
        .map_err(store_error)
    }

    /// getRemaining() on the memory store: `[remaining, reset, limit]`.
    #[napi(catch_unwind)]
    pub fn remaining_now(
        &self,
        store: &NativeStore,
        key: String,
        now: f64,
        dynamic_keys: Option<Vec<String>>,
    ) -> Result<Vec<f64>> {
        Ok(in_memory::remaining(
            memory_of(store)?,
            &self.algorithm,
            &key,
            clock(now)?,
            &dynamic_refs(&dynamic_keys),
        )
        .to_vec())
    }

    /// resetUsedTokens() on the memory store.
    #[napi(catch_unwind)]
    pub fn reset_now(&self, store: &NativeStore, key: String, now: f64) -> Result<()> {
        in_memory::reset(memory_of(store)?, &self.algorithm, &key, clock(now)?);
        Ok(())
    }

    /// The whole limit call on a remote store, answered through the store's completion
    /// callback as `[success, limit, remaining, reset]` under `id` (no Promise per call).
    #[napi(catch_unwind)]
    #[allow(clippy::too_many_arguments)]
    pub fn limit_queue(
        &self,
        store: &NativeStore,
        id: u32,
        #[napi(ts_arg_type = "string")] key: ShortStr,
        now: f64,
        rate: f64,
        dynamic_keys: Option<Vec<String>>,
        wait_ms: Option<f64>,
    ) -> Result<()> {
        let StoreKind::Remote(client) = &store.kind else {
            return Err(invalid_arg("limitQueue is for remote stores"));
        };
        queue_limit(
            self.algorithm,
            client,
            &store.completions,
            id,
            &key,
            clock(now)?,
            cost(rate)?,
            &dynamic_refs(&dynamic_keys),
            wait_limit(wait_ms),
        )
    }

    /// Like `limitQueue`, with protection and/or analytics in the same script: answered as
    /// `[success, limit, remaining, reset, status TTL, denied flag per value…]`, plus a note
    /// when the analytics write failed.
    #[napi(catch_unwind)]
    #[allow(clippy::too_many_arguments)]
    pub fn limit_extras_queue(
        &self,
        store: &NativeStore,
        id: u32,
        #[napi(ts_arg_type = "string")] key: ShortStr,
        now: f64,
        rate: f64,
        dynamic_keys: Option<Vec<String>>,
        extras: LimitExtras,
        wait_ms: Option<f64>,
    ) -> Result<()> {
        let now = clock(now)?;
        let call = self
            .algorithm
            .limit_with_extras_call(
                &key,
                now,
                cost(rate)?,
                &dynamic_refs(&dynamic_keys),
                &extras.into_core()?,
            )
            .map_err(arg_error)?;
        let algorithm = self.algorithm;
        let sink = store.completions.clone();
        let StoreKind::Remote(client) = &store.kind else {
            return Err(invalid_arg(
                "protection and analytics need a Redis store, not the memory store",
            ));
        };
        client
            .queue_eval_with(
                call.script,
                call.keys,
                call.args,
                Box::new(move |reply| {
                    match reply
                        .map_err(|e| e.to_string())
                        .and_then(|r| algorithm.extras_outcome(&r, now).map_err(|e| e.to_string()))
                    {
                        Ok(outcome) => {
                            if let Some(text) = outcome.analytics_error {
                                sink.note(id, text);
                            }
                            sink.succeed(id, &outcome.numbers);
                        }
                        Err(message) => sink.fail(id, message),
                    }
                }),
                wait_limit(wait_ms),
            )
            .map_err(store_error)
    }

    #[napi(catch_unwind, ts_return_type = "Promise<number[]>")]
    pub fn remaining_on<'env>(
        &self,
        env: &'env Env,
        store: &NativeStore,
        key: String,
        now: f64,
        dynamic_keys: Option<Vec<String>>,
    ) -> Result<PromiseRaw<'env, Vec<f64>>> {
        let now = clock(now)?;
        let call = self
            .algorithm
            .remaining_call(&key, now, &dynamic_refs(&dynamic_keys));
        let algorithm = self.algorithm;
        let reply = run(&store.kind, call)?;
        env.spawn_future(async move {
            algorithm
                .remaining_outcome(&reply.await?, now)
                .map(|numbers| numbers.to_vec())
                .map_err(call_error)
        })
    }

    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
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

/// limit() on the memory store, with plain arguments only: the algorithm as `kind` (0 fixed
/// window, 1 sliding window, 2 token bucket) and its numbers, the outcome written into `out` as
/// `[success, limit, remaining, reset]`. The hot path of `Redis.memory()`: no object to unwrap,
/// no array to allocate (a class method with a returned array costs about twice as much).
#[napi(catch_unwind)]
#[allow(clippy::too_many_arguments)]
pub fn memory_limit(
    kind: u32,
    a: f64,
    b: f64,
    c: f64,
    #[napi(ts_arg_type = "string")] key: ShortStr,
    now: f64,
    rate: f64,
    mut out: Float64ArraySlice,
    dynamic_keys: Option<Vec<String>>,
) -> Result<()> {
    // SAFETY: the typed array's memory stays valid for this synchronous call, and no JS runs
    // (so nothing else can touch it) until the call returns.
    let out = unsafe { out.as_mut() };
    let algorithm = algorithm_from_numbers(kind, a, b, c)?;
    if out.len() < 4 {
        return Err(invalid_arg("out needs room for 4 numbers"));
    }
    let numbers = in_memory::limit_numbers(
        MemoryStore::global_ref(),
        &algorithm,
        &key,
        clock(now)?,
        cost(rate)?,
        &dynamic_refs(&dynamic_keys),
    )
    .map_err(store_error)?;
    out[..4].copy_from_slice(&numbers);
    Ok(())
}

/// Parses a window such as `"10 s"` into milliseconds, with upstream's error messages.
#[napi(catch_unwind)]
pub fn parse_duration(window: String) -> Result<f64> {
    ratelimit_core::parse_duration(&window)
        .map(|ms| ms as f64)
        .map_err(|e| Error::new(Status::InvalidArg, e.to_string()))
}
