//! `Ratelimit.cachedFixedWindow(tokens, window)` (experimental upstream): a fixed window whose
//! counter is mirrored in the instance's ephemeral cache and written to Redis behind the
//! response.
//!
//! Redis state: a string counter at `P:I:<bucket>`. Our deliberate fix: it gets a TTL of
//! `window` when it starts from nothing (upstream's script never sets one, quirk Q6).
//!
//! The flow the binding runs (upstream's client; the ephemeral cache is a `Map<string, number>`
//! shared with the blocking entries, cache key = the counter key):
//! * cache hit (`cache.get(key)` is a number other than 0):
//!   `local = cache.incr(key, rate)` → [`CachedFixedWindow::limit_outcome_from_cache`]; if that
//!   succeeded, the limit script runs in the background as `pending`, else nothing is sent.
//! * cache miss: run the limit script, `cache.set(key, used)` →
//!   [`CachedFixedWindow::limit_outcome_from_redis`].
//! * getRemaining: cache hit → [`CachedFixedWindow::remaining_outcome`] of the cached value,
//!   else of the remaining script's reply.
//! * There is no dynamic limit (upstream warns on every call) and no cache *block*.

use super::{arg, CounterWrite, LimitOutcome, RemainingOutcome};
use crate::error::ScriptError;
use crate::keys::{self, ResetTarget};
use crate::num::{js_max, lua_reply_integer, redis_integer_argument};
use crate::scripts::{ScriptCall, CACHED_FIXED_WINDOW_LIMIT, CACHED_FIXED_WINDOW_REMAINING};

/// Parameters of a cached fixed window limiter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CachedFixedWindow {
    /// Requests allowed per window (a JS number; not validated, like upstream).
    pub tokens: f64,
    /// From [`crate::duration::parse_duration`]: 1 ..= [`crate::duration::MAX_WINDOW_MS`].
    pub window_ms: u64,
}

/// What the limit script does: one counter write; the reply is the new counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedFixedWindowLimitStep {
    pub write: CounterWrite,
    pub reply: i64,
}

impl CachedFixedWindow {
    pub fn new(tokens: f64, window_ms: u64) -> CachedFixedWindow {
        CachedFixedWindow { tokens, window_ms }
    }

    /// The counter key, which is also the ephemeral-cache key of the counter.
    pub fn key(&self, prefixed_id: &str, now_ms: u64) -> String {
        keys::window_key(prefixed_id, keys::bucket(now_ms, self.window_ms))
    }

    /// KEYS `[key]`, ARGV `[window, rate]`. Reply: the counter (integer).
    pub fn limit_call(&self, prefixed_id: &str, now_ms: u64, rate: f64) -> ScriptCall {
        ScriptCall {
            script: &CACHED_FIXED_WINDOW_LIMIT,
            keys: vec![self.key(prefixed_id, now_ms)],
            args: vec![self.window_ms.to_string(), arg(rate)],
        }
    }

    /// KEYS `[key]`, no ARGV. Reply: the stored counter as a *bulk string* (`"3"`), or the
    /// integer 0 when missing; `@upstash/redis` turns both into numbers, other clients must
    /// parse the string.
    pub fn remaining_call(&self, prefixed_id: &str, now_ms: u64) -> ScriptCall {
        ScriptCall {
            script: &CACHED_FIXED_WINDOW_REMAINING,
            keys: vec![self.key(prefixed_id, now_ms)],
            args: Vec::new(),
        }
    }

    /// `resetUsedTokens`: every window counter of the id. (Upstream also pops the current
    /// counter key from the cache, not the id's blocking entry.)
    pub fn reset_target(prefixed_id: &str) -> ResetTarget {
        keys::window_reset_target(prefixed_id)
    }

    /// The limit script. Errors write nothing.
    pub fn limit_step(
        &self,
        counter: Option<i64>,
        rate: f64,
    ) -> Result<CachedFixedWindowLimitStep, ScriptError> {
        let increment = redis_integer_argument(rate)?;
        let count = counter
            .unwrap_or(0)
            .checked_add(increment)
            .ok_or(ScriptError::Overflow)?;
        // Same rule as the fixed window, comparing numbers (the fix of quirk Q6).
        let ttl_ms = (count as f64 == rate).then_some(self.window_ms);
        Ok(CachedFixedWindowLimitStep {
            write: CounterWrite {
                counter: count,
                ttl_ms,
            },
            reply: lua_reply_integer(count as f64),
        })
    }

    /// The getRemaining script: the stored counter, 0 when missing (see [`Self::remaining_call`]
    /// for its wire form).
    pub fn remaining_step(counter: Option<i64>) -> i64 {
        counter.unwrap_or(0)
    }

    /// Cache miss: `used` is the limit script's reply. `remaining` is not clamped (quirk Q4);
    /// the limit is always the static `tokens`.
    pub fn limit_outcome_from_redis(&self, used: i64, now_ms: u64) -> LimitOutcome {
        let remaining = self.tokens - used as f64;
        LimitOutcome {
            success: remaining >= 0.0,
            limit: self.tokens,
            remaining,
            reset: self.reset(now_ms),
        }
    }

    /// Cache hit: `local_count` is the cached counter after `cache.incr(key, rate)` (a JS
    /// number, so possibly fractional). `remaining` is not clamped (quirk Q4).
    pub fn limit_outcome_from_cache(&self, local_count: f64, now_ms: u64) -> LimitOutcome {
        LimitOutcome {
            success: local_count <= self.tokens,
            limit: self.tokens,
            remaining: self.tokens - local_count,
            reset: self.reset(now_ms),
        }
    }

    /// getRemaining from the cached counter or from the script's reply: clamped at 0.
    pub fn remaining_outcome(&self, used: f64, now_ms: u64) -> RemainingOutcome {
        RemainingOutcome {
            remaining: js_max(0.0, self.tokens - used),
            reset: self.reset(now_ms),
            limit: self.tokens,
        }
    }

    fn reset(&self, now_ms: u64) -> f64 {
        keys::window_reset(keys::bucket(now_ms, self.window_ms), self.window_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_012_345;
    const W: f64 = 1_700_000_020_000.0;

    /// Upstream's client over a cache map and a Redis counter, both run in-process.
    struct Flow {
        alg: CachedFixedWindow,
        cache: Option<f64>,
        redis: Option<i64>,
        ttl: Option<u64>,
    }

    impl Flow {
        fn new(alg: CachedFixedWindow) -> Flow {
            Flow {
                alg,
                cache: None,
                redis: None,
                ttl: None,
            }
        }

        fn script(&mut self, rate: f64) -> i64 {
            let step = self.alg.limit_step(self.redis, rate).unwrap();
            self.redis = Some(step.write.counter);
            self.ttl = step.write.ttl_ms.or(self.ttl);
            step.reply
        }

        fn limit(&mut self, rate: f64) -> LimitOutcome {
            match self.cache.filter(|v| *v != 0.0) {
                Some(cached) => {
                    let local = cached + rate;
                    self.cache = Some(local);
                    let o = self.alg.limit_outcome_from_cache(local, NOW);
                    if o.success {
                        self.script(rate); // the background write (`pending`)
                    }
                    o
                }
                None => {
                    let used = self.script(rate);
                    self.cache = Some(used as f64);
                    self.alg.limit_outcome_from_redis(used, NOW)
                }
            }
        }
    }

    #[test]
    fn calls_have_upstream_keys_and_args() {
        let alg = CachedFixedWindow::new(3.0, 10_000);
        let call = alg.limit_call("P:u", NOW, 1.0);
        assert_eq!(call.script.name, "cachedFixedWindow.limit");
        assert_eq!(call.keys, vec!["P:u:170000001"]);
        assert_eq!(call.args, vec!["10000", "1"]);
        let call = alg.remaining_call("P:u", NOW);
        assert_eq!(call.keys, vec!["P:u:170000001"]);
        assert!(call.args.is_empty());
    }

    #[test]
    fn scenario_6_unclamped_remaining_and_ttl_fix() {
        let mut flow = Flow::new(CachedFixedWindow::new(3.0, 10_000));
        let outcomes: Vec<_> = (0..5).map(|_| flow.limit(1.0)).collect();
        let remaining: Vec<_> = outcomes.iter().map(|o| o.remaining).collect();
        let success: Vec<_> = outcomes.iter().map(|o| o.success).collect();
        assert_eq!(remaining, [2.0, 1.0, 0.0, -1.0, -2.0]);
        assert_eq!(success, [true, true, true, false, false]);
        assert!(outcomes.iter().all(|o| o.limit == 3.0 && o.reset == W));
        assert_eq!(flow.redis, Some(3)); // rejected calls never reach Redis
        assert_eq!(flow.ttl, Some(10_000)); // fix (a): upstream leaves PTTL -1
                                            // A new instance (empty cache) on the same prefix.
        let mut other = Flow::new(flow.alg);
        other.redis = flow.redis;
        let o = other.limit(1.0);
        assert_eq!((o.success, o.limit, o.remaining), (false, 3.0, -1.0));
        assert_eq!(other.alg.remaining_outcome(4.0, NOW).remaining, 0.0);
    }

    #[test]
    fn scenario_19_and_20_rates() {
        let alg = CachedFixedWindow::new(10.0, 172_800_000);
        assert_eq!(alg.limit_step(None, 1.5), Err(ScriptError::NotAnInteger));
        let step = alg.limit_step(None, -3.0).unwrap();
        assert_eq!(
            step.write,
            CounterWrite {
                counter: -3,
                ttl_ms: Some(172_800_000)
            }
        );
        let o = alg.limit_outcome_from_redis(step.reply, NOW);
        assert_eq!((o.success, o.remaining), (true, 13.0));
        assert_eq!(
            alg.remaining_outcome(CachedFixedWindow::remaining_step(Some(-3)) as f64, NOW)
                .remaining,
            13.0
        );

        let mut flow = Flow::new(alg);
        flow.limit(8.0);
        assert_eq!(
            alg.remaining_outcome(flow.cache.unwrap(), NOW).remaining,
            2.0
        );
        flow.limit(-2.0);
        assert_eq!(
            alg.remaining_outcome(flow.cache.unwrap(), NOW).remaining,
            4.0
        );
        flow.limit(-3.0);
        assert_eq!(
            alg.remaining_outcome(flow.cache.unwrap(), NOW).remaining,
            7.0
        );
        let o = flow.limit(5.0);
        assert_eq!((o.success, o.remaining), (true, 2.0));
        assert_eq!(flow.redis, Some(8));
        // rate 0 leaves the counter alone.
        let o = flow.limit(0.0);
        assert_eq!((o.success, o.remaining), (true, 2.0));
        assert_eq!(CachedFixedWindow::remaining_step(None), 0);
    }
}
