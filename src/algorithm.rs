//! `NativeAlgorithm`: one built-in algorithm's parameters. The JS facade asks it for script calls
//! and reply arithmetic (compat path: the script runs through the user's client) or lets it run
//! the whole call on a native store (fast path: one async hop, scalars back).

use napi::bindgen_prelude::*;
use napi_derive::napi;
use ratelimit_core::algorithms::cached_fixed_window::CachedFixedWindow;
use ratelimit_core::algorithms::fixed_window::{FixedWindow, FixedWindowLimitReply};
use ratelimit_core::algorithms::sliding_window::{SlidingWindow, SlidingWindowLimitReply};
use ratelimit_core::algorithms::token_bucket::{
    TokenBucket, TokenBucketLimitReply, TokenBucketRemainingReply,
};
use ratelimit_core::algorithms::WindowRemainingReply;
use ratelimit_core::keys::ResetTarget;
use ratelimit_core::scripts::{ScriptCall, RESET};

use std::sync::Arc;

use ratelimit_core::stores::memory::{LockedWindows, MemoryStore};
use ratelimit_core::stores::memory_limiters as mem;
use ratelimit_core::stores::window_key::WindowKey;

use ratelimit_core::round_trip::{self, AnalyticsRecord, Extras, Protection};
use ratelimit_core::stores::Reply;

use crate::args::{
    clock, cost, limit_array, limit_numbers, positive, remaining_numbers, reply_error, window,
};
use crate::errors::{invalid_arg, store_error};
use crate::short_str::ShortStr;
use crate::store::{CompletionSink, NativeStore, StoreKind};
use ratelimit_core::stores::remote::RemoteStore;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Fixed(FixedWindow),
    Sliding(SlidingWindow),
    Bucket(TokenBucket),
    Cached(CachedFixedWindow),
}

#[napi]
pub struct NativeAlgorithm {
    kind: Kind,
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

fn reset_call(target: ResetTarget) -> ScriptCall {
    ScriptCall {
        script: &RESET,
        keys: vec![target.pattern],
        args: target.args,
    }
}

impl Kind {
    fn limit_call(&self, key: &str, now: u64, rate: f64, dynamic_keys: &[&str]) -> ScriptCall {
        match self {
            Kind::Fixed(a) => a.limit_call(key, now, rate, dynamic_keys),
            Kind::Sliding(a) => a.limit_call(key, now, rate, dynamic_keys),
            Kind::Bucket(a) => a.limit_call(key, now, rate, dynamic_keys),
            Kind::Cached(a) => a.limit_call(key, now, rate),
        }
    }

    fn remaining_call(&self, key: &str, now: u64, dynamic_keys: &[&str]) -> ScriptCall {
        match self {
            Kind::Fixed(a) => a.remaining_call(key, now, dynamic_keys),
            Kind::Sliding(a) => a.remaining_call(key, now, dynamic_keys),
            Kind::Bucket(a) => a.remaining_call(key, dynamic_keys),
            Kind::Cached(a) => a.remaining_call(key, now),
        }
    }

    fn reset_call(&self, key: &str) -> ScriptCall {
        reset_call(match self {
            Kind::Fixed(_) => FixedWindow::reset_target(key),
            Kind::Sliding(_) => SlidingWindow::reset_target(key),
            Kind::Bucket(_) => TokenBucket::reset_target(key),
            Kind::Cached(_) => CachedFixedWindow::reset_target(key),
        })
    }

    /// The limit script's reply → numbers for JS. For cachedFixedWindow (whose JS side owns the
    /// cache arithmetic) that is just `[counter]`.
    fn limit_outcome(&self, reply: &[Option<i64>], now: u64) -> Result<Vec<f64>> {
        Ok(match self {
            Kind::Fixed(a) => limit_numbers(a.limit_outcome(
                &FixedWindowLimitReply::from_values(reply).map_err(reply_error)?,
                now,
            )),
            Kind::Sliding(a) => limit_numbers(a.limit_outcome(
                &SlidingWindowLimitReply::from_values(reply).map_err(reply_error)?,
                now,
            )),
            Kind::Bucket(a) => limit_numbers(
                a.limit_outcome(&TokenBucketLimitReply::from_values(reply).map_err(reply_error)?),
            ),
            Kind::Cached(_) => match reply {
                [Some(used)] => vec![*used as f64],
                _ => {
                    return Err(Error::new(
                        Status::GenericFailure,
                        format!("unexpected cachedFixedWindow reply {reply:?}"),
                    ))
                }
            },
        })
    }

    fn remaining_outcome(&self, reply: &[Option<i64>], now: u64) -> Result<Vec<f64>> {
        Ok(remaining_numbers(match self {
            Kind::Fixed(a) => a.remaining_outcome(
                &WindowRemainingReply::from_values(
                    ratelimit_core::scripts::FIXED_WINDOW_REMAINING.name,
                    reply,
                )
                .map_err(reply_error)?,
                now,
            ),
            Kind::Sliding(a) => a.remaining_outcome(
                &WindowRemainingReply::from_values(
                    ratelimit_core::scripts::SLIDING_WINDOW_REMAINING.name,
                    reply,
                )
                .map_err(reply_error)?,
                now,
            ),
            Kind::Bucket(a) => a.remaining_outcome(
                &TokenBucketRemainingReply::from_values(reply).map_err(reply_error)?,
                now,
            ),
            Kind::Cached(a) => {
                a.remaining_outcome(reply.first().copied().flatten().unwrap_or(0) as f64, now)
            }
        }))
    }
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

impl Kind {
    /// The algorithm as plain numbers (how the hot paths pass it): `kind` 0 fixed window,
    /// 1 sliding window (`a` tokens, `b` window ms), 2 token bucket (`a` refill rate, `b`
    /// interval ms, `c` max tokens).
    pub(crate) fn from_numbers(kind: u32, a: f64, b: f64, c: f64) -> Result<Kind> {
        Ok(match kind {
            0 => Kind::Fixed(FixedWindow::new(
                positive("tokens", a)?,
                window("window", b)?,
            )),
            1 => Kind::Sliding(SlidingWindow::new(
                positive("tokens", a)?,
                window("window", b)?,
            )),
            2 => Kind::Bucket(TokenBucket::new(
                positive("refillRate", a)?,
                window("interval", b)?,
                positive("maxTokens", c)?,
            )),
            _ => return Err(invalid_arg("unknown algorithm kind")),
        })
    }

    /// Queues the whole limit call on a remote store; its outcome, `[success, limit, remaining,
    /// reset]`, reaches JS through the store's completion sink under `id`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn queue_limit(
        self,
        client: &RemoteStore,
        sink: &Arc<CompletionSink>,
        id: u32,
        key: &str,
        now: u64,
        rate: f64,
        dynamic_keys: &[&str],
        wait: Option<std::time::Duration>,
    ) -> Result<()> {
        let call = self.limit_call(key, now, rate, dynamic_keys);
        let sink = sink.clone();
        client
            .queue_eval_with(
                call.script,
                call.keys,
                call.args,
                Box::new(move |reply| {
                    match reply
                        .map_err(|e| e.to_string())
                        .and_then(|r| self.limit_outcome(&r.numbers(), now).map_err(|e| e.reason))
                    {
                        Ok(numbers) => sink.succeed(id, &numbers),
                        Err(message) => sink.fail(id, message),
                    }
                }),
                wait,
            )
            .map_err(store_error)
    }

    /// limit() on the memory store, synchronously: the same state transitions as the scripts.
    fn limit_in_memory(
        &self,
        store: &Arc<MemoryStore>,
        key: &str,
        now: u64,
        rate: f64,
        dynamic_keys: &[&str],
    ) -> Result<Vec<f64>> {
        if let Kind::Cached(a) = self {
            return mem::cached_fixed_window_increment(store, a, key, now, rate)
                .map(|used| vec![used as f64])
                .map_err(store_error);
        }
        self.limit_numbers_in_memory(store, key, now, rate, dynamic_keys)
            .map(|numbers| numbers.to_vec())
    }

    /// limit() of a counter algorithm (fixed window, sliding window, token bucket) on the memory
    /// store, as `[success (1/0), limit, remaining, reset]` without an allocation: the hot path
    /// of `Redis.memory()`.
    pub(crate) fn limit_numbers_in_memory(
        &self,
        store: &Arc<MemoryStore>,
        key: &str,
        now: u64,
        rate: f64,
        dynamic_keys: &[&str],
    ) -> Result<[f64; 4]> {
        let outcome = match self {
            Kind::Fixed(a) => mem::fixed_window_limit(store, a, key, now, rate, dynamic_keys),
            Kind::Sliding(a) => mem::sliding_window_limit(store, a, key, now, rate, dynamic_keys),
            Kind::Bucket(a) => mem::token_bucket_limit(store, a, key, now, rate, dynamic_keys),
            // Never built from the numbers `memoryLimit` and `memoryLimitBatch` take.
            Kind::Cached(_) => {
                return Err(invalid_arg(
                    "the cached fixed window counts; it has no limit outcome",
                ))
            }
        };
        outcome.map(limit_array).map_err(store_error)
    }

    /// The window counter a limit call at `now` updates, for the algorithms that keep one
    /// (fixed and sliding window): a batch works it out once, to prefetch it and to update it.
    pub(crate) fn window_in_memory(
        &self,
        store: &MemoryStore,
        key: &str,
        now: u64,
    ) -> Option<WindowKey> {
        match self {
            Kind::Fixed(a) => Some(mem::window_key(store, key, a.window_ms, now)),
            Kind::Sliding(a) => Some(mem::window_key(store, key, a.window_ms, now)),
            Kind::Bucket(_) | Kind::Cached(_) => None,
        }
    }

    /// `limit_numbers_in_memory` of a window algorithm in a batch's locked run, on the call's
    /// counter `window` (from `window_in_memory`).
    pub(crate) fn limit_numbers_locked(
        &self,
        windows: &mut LockedWindows,
        key: &str,
        window: WindowKey,
        now: u64,
        rate: f64,
    ) -> Result<[f64; 4]> {
        let outcome = match self {
            Kind::Fixed(a) => mem::fixed_window_limit_at(windows, a, window, now, rate, None),
            Kind::Sliding(a) => {
                mem::sliding_window_limit_at(windows, a, key, window, now, rate, None)
            }
            Kind::Bucket(_) | Kind::Cached(_) => {
                return Err(invalid_arg(
                    "only window algorithms run in a batch's locked run",
                ))
            }
        };
        outcome.map(limit_array).map_err(store_error)
    }

    fn remaining_in_memory(
        &self,
        store: &MemoryStore,
        key: &str,
        now: u64,
        dynamic_keys: &[&str],
    ) -> Vec<f64> {
        remaining_numbers(match self {
            Kind::Fixed(a) => mem::fixed_window_remaining(store, a, key, now, dynamic_keys),
            Kind::Sliding(a) => mem::sliding_window_remaining(store, a, key, now, dynamic_keys),
            Kind::Bucket(a) => mem::token_bucket_remaining(store, a, key, now, dynamic_keys),
            Kind::Cached(a) => a.remaining_outcome(
                mem::cached_fixed_window_used(store, a, key, now) as f64,
                now,
            ),
        })
    }

    fn reset_in_memory(&self, store: &MemoryStore, key: &str, now: u64) {
        match self {
            Kind::Bucket(_) => mem::reset_bucket(store, key, now),
            _ => mem::reset_windows(store, key, now),
        };
    }
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
    fn into_core(self) -> Result<Extras> {
        let protection = match (self.deny_list_key, self.status_key) {
            (Some(deny_list_key), Some(status_key)) => Some(Protection {
                deny_list_key,
                status_key,
                values: self.values.unwrap_or_default(),
            }),
            (None, None) => None,
            _ => return Err(invalid_arg("denyListKey and statusKey go together")),
        };
        let values = protection.as_ref().map_or(0, |p| p.values.len());
        let analytics = match (self.events_key, self.allowed_member, self.blocked_member) {
            (Some(events_key), Some(allowed_member), Some(blocked_member)) => {
                let denied_members = self.denied_members.unwrap_or_default();
                if denied_members.len() != values {
                    return Err(invalid_arg(
                        "deniedMembers needs one member per protection value",
                    ));
                }
                Some(AnalyticsRecord {
                    events_key,
                    allowed_member,
                    blocked_member,
                    denied_members,
                })
            }
            (None, None, None) => None,
            _ => {
                return Err(invalid_arg(
                    "eventsKey, allowedMember and blockedMember go together",
                ))
            }
        };
        Ok(Extras {
            protection,
            analytics,
        })
    }
}

/// A JSON reply from a JS client (numbers or numeric strings, nested arrays) → a store reply.
fn reply_from_json(value: &serde_json::Value) -> Reply {
    match value {
        serde_json::Value::Null => Reply::Nil,
        serde_json::Value::Bool(b) => Reply::Int(i64::from(*b)),
        serde_json::Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map(Reply::Int)
            .unwrap_or(Reply::Nil),
        serde_json::Value::String(s) => Reply::Bytes(s.clone().into_bytes()),
        serde_json::Value::Array(items) => {
            Reply::Array(items.iter().map(reply_from_json).collect())
        }
        serde_json::Value::Object(_) => Reply::Nil,
    }
}

impl Kind {
    fn base_limit_call(
        &self,
        key: &str,
        now: u64,
        rate: f64,
        dynamic_keys: &[&str],
    ) -> Result<ScriptCall> {
        if matches!(self, Kind::Cached(_)) {
            return Err(invalid_arg(
                "cachedFixedWindow cannot carry protection or analytics in its script",
            ));
        }
        Ok(self.limit_call(key, now, rate, dynamic_keys))
    }

    /// `[success, limit, remaining, reset, status TTL, denied flag per value…]`; a failed
    /// analytics write comes back as the error text (the caller warns).
    fn extras_outcome(&self, reply: &Reply, now: u64) -> Result<ExtrasOutcome> {
        let decoded = round_trip::decode(reply).ok_or_else(|| {
            Error::new(
                Status::GenericFailure,
                format!("unexpected reply to a limit with protection/analytics: {reply:?}"),
            )
        })?;
        let mut numbers = self.limit_outcome(&decoded.limit, now)?;
        numbers.push(decoded.status.unwrap_or(-1) as f64);
        numbers.extend(decoded.denied.iter().map(|d| f64::from(u8::from(*d))));
        Ok(ExtrasOutcome {
            numbers,
            analytics_error: decoded.analytics_error,
        })
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
        let call = self.kind.base_limit_call(
            &key,
            clock(now)?,
            cost(rate)?,
            &dynamic_refs(&dynamic_keys),
        )?;
        Ok(round_trip::with_extras(call, &extras.into_core()?).into())
    }

    /// `[success, limit, remaining, reset, status TTL, denied flag per value…]` from the reply
    /// of `limitExtrasCall`'s script, as a JS client returned it.
    #[napi(catch_unwind)]
    pub fn limit_extras_outcome(
        &self,
        #[napi(ts_arg_type = "unknown")] reply: serde_json::Value,
        now: f64,
    ) -> Result<ExtrasOutcome> {
        self.kind
            .extras_outcome(&reply_from_json(&reply), clock(now)?)
    }

    #[napi(catch_unwind, factory)]
    pub fn fixed_window(tokens: f64, window_ms: f64) -> Result<NativeAlgorithm> {
        let tokens = positive("tokens", tokens)?;
        let window_ms = window("window", window_ms)?;
        Ok(NativeAlgorithm {
            kind: Kind::Fixed(FixedWindow::new(tokens, window_ms)),
        })
    }

    #[napi(catch_unwind, factory)]
    pub fn sliding_window(tokens: f64, window_ms: f64) -> Result<NativeAlgorithm> {
        let tokens = positive("tokens", tokens)?;
        let window_ms = window("window", window_ms)?;
        Ok(NativeAlgorithm {
            kind: Kind::Sliding(SlidingWindow::new(tokens, window_ms)),
        })
    }

    #[napi(catch_unwind, factory)]
    pub fn token_bucket(
        refill_rate: f64,
        interval_ms: f64,
        max_tokens: f64,
    ) -> Result<NativeAlgorithm> {
        let refill_rate = positive("refillRate", refill_rate)?;
        let interval_ms = window("interval", interval_ms)?;
        let max_tokens = positive("maxTokens", max_tokens)?;
        Ok(NativeAlgorithm {
            kind: Kind::Bucket(TokenBucket::new(refill_rate, interval_ms, max_tokens)),
        })
    }

    #[napi(catch_unwind, factory)]
    pub fn cached_fixed_window(tokens: f64, window_ms: f64) -> Result<NativeAlgorithm> {
        let tokens = positive("tokens", tokens)?;
        let window_ms = window("window", window_ms)?;
        Ok(NativeAlgorithm {
            kind: Kind::Cached(CachedFixedWindow::new(tokens, window_ms)),
        })
    }

    /// The key of the window that `now` falls in (cachedFixedWindow's cache key too).
    #[napi(catch_unwind)]
    pub fn window_key(&self, key: String, now: f64) -> Result<String> {
        let now = clock(now)?;
        Ok(match self.kind {
            Kind::Fixed(a) => a.key(&key, now),
            Kind::Cached(a) => a.key(&key, now),
            Kind::Sliding(a) => a.keys(&key, now).0,
            Kind::Bucket(_) => TokenBucket::key(&key),
        })
    }

    /// When the window that `now` falls in ends (unix ms).
    #[napi(catch_unwind)]
    pub fn window_reset(&self, now: f64) -> Result<f64> {
        let now = clock(now)?;
        let window_ms = match self.kind {
            Kind::Fixed(a) => a.window_ms,
            Kind::Sliding(a) => a.window_ms,
            Kind::Cached(a) => a.window_ms,
            Kind::Bucket(a) => a.interval_ms,
        };
        let bucket = ratelimit_core::keys::bucket(now, window_ms);
        Ok(ratelimit_core::keys::window_reset(bucket, window_ms))
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
            .kind
            .limit_call(&key, clock(now)?, cost(rate)?, &dynamic_refs(&dynamic_keys))
            .into())
    }

    /// `[success (1/0), limit, remaining, reset]` (cachedFixedWindow: `[counter]`).
    #[napi(catch_unwind)]
    pub fn limit_outcome(&self, reply: Vec<Option<f64>>, now: f64, rate: f64) -> Result<Vec<f64>> {
        cost(rate)?;
        self.kind.limit_outcome(&reply_values(&reply), clock(now)?)
    }

    #[napi(catch_unwind)]
    pub fn remaining_call(
        &self,
        key: String,
        now: f64,
        dynamic_keys: Option<Vec<String>>,
    ) -> Result<ScriptInvocation> {
        Ok(self
            .kind
            .remaining_call(&key, clock(now)?, &dynamic_refs(&dynamic_keys))
            .into())
    }

    /// `[remaining, reset, limit]`
    #[napi(catch_unwind)]
    pub fn remaining_outcome(&self, reply: Vec<Option<f64>>, now: f64) -> Result<Vec<f64>> {
        self.kind
            .remaining_outcome(&reply_values(&reply), clock(now)?)
    }

    #[napi(catch_unwind)]
    pub fn reset_call(&self, key: String) -> ScriptInvocation {
        self.kind.reset_call(&key).into()
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
        self.kind.limit_in_memory(
            memory_of(store)?,
            &key,
            clock(now)?,
            cost(rate)?,
            &dynamic_refs(&dynamic_keys),
        )
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
        Ok(self.kind.remaining_in_memory(
            memory_of(store)?,
            &key,
            clock(now)?,
            &dynamic_refs(&dynamic_keys),
        ))
    }

    /// resetUsedTokens() on the memory store.
    #[napi(catch_unwind)]
    pub fn reset_now(&self, store: &NativeStore, key: String, now: f64) -> Result<()> {
        self.kind
            .reset_in_memory(memory_of(store)?, &key, clock(now)?);
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
        self.kind.queue_limit(
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
        let call =
            self.kind
                .base_limit_call(&key, now, cost(rate)?, &dynamic_refs(&dynamic_keys))?;
        let call = round_trip::with_extras(call, &extras.into_core()?);
        let kind = self.kind;
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
                        .and_then(|r| kind.extras_outcome(&r, now).map_err(|e| e.reason))
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
            .kind
            .remaining_call(&key, now, &dynamic_refs(&dynamic_keys));
        let kind = self.kind;
        let reply = run(&store.kind, call)?;
        env.spawn_future(async move { kind.remaining_outcome(&reply.await?, now) })
    }

    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn reset_on<'env>(
        &self,
        env: &'env Env,
        store: &NativeStore,
        key: String,
    ) -> Result<PromiseRaw<'env, ()>> {
        let call = self.kind.reset_call(&key);
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
    let kind = Kind::from_numbers(kind, a, b, c)?;
    if out.len() < 4 {
        return Err(invalid_arg("out needs room for 4 numbers"));
    }
    let numbers = kind.limit_numbers_in_memory(
        &MemoryStore::global(),
        &key,
        clock(now)?,
        cost(rate)?,
        &dynamic_refs(&dynamic_keys),
    )?;
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
