//! `Ratelimit.fixedWindow(tokens, window)`: one counter per aligned window.
//!
//! State: a string counter at `P:I:<floor(now/window)>`, with a TTL of `window` set when it
//! starts from nothing. Every request is counted, also rejected ones (quirk Q3).

use super::WindowRemainingReply;
use super::{arg, keys_with_dynamic, CounterWrite, LimitOutcome, RemainingOutcome};
use crate::error::{ReplyError, ScriptError};
use crate::keys::{self, ResetTarget};
use crate::num::{js_max, lua_reply_integer, redis_integer_argument};
use crate::scripts::{ScriptCall, FIXED_WINDOW_LIMIT, FIXED_WINDOW_REMAINING};

/// Parameters of a fixed window limiter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FixedWindow {
    /// Requests allowed per window (a JS number; not validated, like upstream).
    pub tokens: f64,
    /// From [`crate::duration::parse_duration`]: 1 ..= [`crate::duration::MAX_WINDOW_MS`].
    pub window_ms: u64,
}

/// The limit script's reply: `{counter after the increment, effective limit}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedWindowLimitReply {
    pub count: i64,
    pub limit: i64,
}

impl FixedWindowLimitReply {
    /// Decodes the script's array reply.
    pub fn from_values(values: &[Option<i64>]) -> Result<Self, ReplyError> {
        match values {
            [Some(count), Some(limit)] => Ok(FixedWindowLimitReply {
                count: *count,
                limit: *limit,
            }),
            _ => Err(ReplyError::shape(FIXED_WINDOW_LIMIT.name, values)),
        }
    }

    /// The reply as Redis sends it.
    pub fn to_values(&self) -> Vec<Option<i64>> {
        vec![Some(self.count), Some(self.limit)]
    }
}

/// What the limit script does: always one counter write, then the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedWindowLimitStep {
    pub write: CounterWrite,
    pub reply: FixedWindowLimitReply,
}

impl FixedWindow {
    pub fn new(tokens: f64, window_ms: u64) -> FixedWindow {
        FixedWindow { tokens, window_ms }
    }

    /// The counter key for a call at `now_ms`.
    pub fn key(&self, prefixed_id: &str, now_ms: u64) -> String {
        keys::window_key(prefixed_id, keys::bucket(now_ms, self.window_ms))
    }

    /// KEYS `[key, (dyn)]`, ARGV `[tokens, window, rate]`.
    pub fn limit_call(
        &self,
        prefixed_id: &str,
        now_ms: u64,
        rate: f64,
        dynamic_keys: &[&str],
    ) -> ScriptCall {
        ScriptCall {
            script: &FIXED_WINDOW_LIMIT,
            keys: keys_with_dynamic(vec![self.key(prefixed_id, now_ms)], dynamic_keys),
            args: vec![arg(self.tokens), self.window_ms.to_string(), arg(rate)],
        }
    }

    /// KEYS `[key, (dyn)]`, ARGV `[tokens]`.
    pub fn remaining_call(
        &self,
        prefixed_id: &str,
        now_ms: u64,
        dynamic_keys: &[&str],
    ) -> ScriptCall {
        ScriptCall {
            script: &FIXED_WINDOW_REMAINING,
            keys: keys_with_dynamic(vec![self.key(prefixed_id, now_ms)], dynamic_keys),
            args: vec![arg(self.tokens)],
        }
    }

    /// `resetUsedTokens`: every window counter of the id.
    pub fn reset_target(prefixed_id: &str) -> ResetTarget {
        keys::window_reset_target(prefixed_id)
    }

    /// The limit script. `counter` is the window's stored counter, `dynamic_limit` the parsed
    /// dynamic-limit value when the key is enabled and exists. Errors write nothing.
    pub fn limit_step(
        &self,
        counter: Option<i64>,
        rate: f64,
        dynamic_limit: Option<f64>,
    ) -> Result<FixedWindowLimitStep, ScriptError> {
        let limit = dynamic_limit.unwrap_or(self.tokens);
        // INCRBY takes the rate as its JS string: only integers pass.
        let increment = redis_integer_argument(rate)?;
        let count = counter
            .unwrap_or(0)
            .checked_add(increment)
            .ok_or(ScriptError::Overflow)?;
        // Lua compares the INCRBY result (as a double) with tonumber(rate): equal exactly when
        // the counter started from nothing (or from 0 after refunds), which (re)sets the TTL.
        let ttl_ms = (count as f64 == rate).then_some(self.window_ms);
        Ok(FixedWindowLimitStep {
            write: CounterWrite {
                counter: count,
                ttl_ms,
            },
            reply: FixedWindowLimitReply {
                count: lua_reply_integer(count as f64),
                limit: lua_reply_integer(limit),
            },
        })
    }

    /// The getRemaining script: read-only.
    pub fn remaining_step(
        &self,
        counter: Option<i64>,
        dynamic_limit: Option<f64>,
    ) -> WindowRemainingReply {
        let limit = dynamic_limit.unwrap_or(self.tokens);
        let used = counter.unwrap_or(0) as f64;
        WindowRemainingReply {
            remaining: lua_reply_integer(limit - used),
            limit: lua_reply_integer(limit),
        }
    }

    /// Upstream's client: success while the counter is within the limit, `remaining` clamped at
    /// 0, `reset` at the end of the aligned window. `now_ms` is the one the call used.
    pub fn limit_outcome(&self, reply: &FixedWindowLimitReply, now_ms: u64) -> LimitOutcome {
        let count = reply.count as f64;
        let limit = reply.limit as f64;
        LimitOutcome {
            success: count <= limit,
            limit,
            remaining: js_max(0.0, limit - count),
            reset: self.reset(now_ms),
        }
    }

    /// `{max(0, remaining), end of the window, limit}`.
    pub fn remaining_outcome(&self, reply: &WindowRemainingReply, now_ms: u64) -> RemainingOutcome {
        RemainingOutcome {
            remaining: js_max(0.0, reply.remaining as f64),
            reset: self.reset(now_ms),
            limit: reply.limit as f64,
        }
    }

    fn reset(&self, now_ms: u64) -> f64 {
        keys::window_reset(keys::bucket(now_ms, self.window_ms), self.window_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_012_345; // bucket 170_000_001 of a 10 s window
    const W: f64 = 1_700_000_020_000.0;

    fn fw(tokens: f64) -> FixedWindow {
        FixedWindow::new(tokens, 10_000)
    }

    /// Runs `limit` against a single counter like a store would.
    fn run(
        alg: &FixedWindow,
        counter: &mut Option<i64>,
        rate: f64,
        dyn_limit: Option<f64>,
    ) -> LimitOutcome {
        let step = alg.limit_step(*counter, rate, dyn_limit).unwrap();
        *counter = Some(step.write.counter);
        alg.limit_outcome(&step.reply, NOW)
    }

    #[test]
    fn calls_have_upstream_keys_and_args() {
        let alg = fw(3.0);
        let call = alg.limit_call("P:u", NOW, 1.0, &[]);
        assert_eq!(call.script.name, "fixedWindow.limit");
        assert_eq!(call.keys, vec!["P:u:170000001"]);
        assert_eq!(call.args, vec!["3", "10000", "1"]);
        let call = alg.limit_call("P:u", NOW, -2.5, &["P:dynamic:global"]);
        assert_eq!(call.keys, vec!["P:u:170000001", "P:dynamic:global"]);
        assert_eq!(call.args, vec!["3", "10000", "-2.5"]);
        let call = alg.remaining_call("P:u", NOW, &[]);
        assert_eq!(call.keys, vec!["P:u:170000001"]);
        assert_eq!(call.args, vec!["3"]);
        assert_eq!(FixedWindow::reset_target("P:u").pattern, "P:u:*");
    }

    #[test]
    fn counts_every_request_and_sets_the_ttl_once() {
        let alg = fw(3.0);
        let first = alg.limit_step(None, 1.0, None).unwrap();
        assert_eq!(
            first.write,
            CounterWrite {
                counter: 1,
                ttl_ms: Some(10_000)
            }
        );
        assert_eq!(first.reply, FixedWindowLimitReply { count: 1, limit: 3 });
        let later = alg.limit_step(Some(3), 1.0, None).unwrap();
        assert_eq!(
            later.write,
            CounterWrite {
                counter: 4,
                ttl_ms: None
            }
        );
        // Back at 0 after a refund, the next request restarts the TTL (upstream's comparison).
        assert_eq!(
            alg.limit_step(Some(0), 2.0, None).unwrap().write.ttl_ms,
            Some(10_000)
        );
        // A refund on a fresh window creates it with the TTL too (-3 == -3).
        assert_eq!(
            alg.limit_step(None, -3.0, None).unwrap().write,
            CounterWrite {
                counter: -3,
                ttl_ms: Some(10_000)
            }
        );
    }

    #[test]
    fn scenario_2_five_calls_on_three_tokens() {
        let alg = fw(3.0);
        let mut counter = None;
        let outcomes: Vec<_> = (0..5).map(|_| run(&alg, &mut counter, 1.0, None)).collect();
        let success: Vec<_> = outcomes.iter().map(|o| o.success).collect();
        let remaining: Vec<_> = outcomes.iter().map(|o| o.remaining).collect();
        assert_eq!(success, [true, true, true, false, false]);
        assert_eq!(remaining, [2.0, 1.0, 0.0, 0.0, 0.0]);
        assert!(outcomes.iter().all(|o| o.limit == 3.0 && o.reset == W));
        assert_eq!(counter, Some(5));
        let reply = alg.remaining_step(counter, None);
        assert_eq!(
            reply,
            WindowRemainingReply {
                remaining: -2,
                limit: 3
            }
        );
        assert_eq!(
            alg.remaining_outcome(&reply, NOW),
            RemainingOutcome {
                remaining: 0.0,
                reset: W,
                limit: 3.0
            }
        );
        // After resetUsedTokens the counter is gone.
        let fresh = alg.remaining_outcome(&alg.remaining_step(None, None), NOW);
        assert_eq!(
            fresh,
            RemainingOutcome {
                remaining: 3.0,
                reset: W,
                limit: 3.0
            }
        );
    }

    #[test]
    fn scenario_9_dynamic_limits() {
        let alg = FixedWindow::new(10.0, 100_000);
        let mut counter = None;
        let a = run(&alg, &mut counter, 2.0, Some(3.0));
        assert_eq!((a.success, a.limit, a.remaining), (true, 3.0, 1.0));
        let b = run(&alg, &mut counter, 2.0, Some(3.0));
        assert_eq!((b.success, b.limit, b.remaining), (false, 3.0, 0.0));
        let r = alg.remaining_outcome(&alg.remaining_step(counter, Some(3.0)), NOW);
        assert_eq!(
            (r.remaining, r.limit, r.reset),
            (0.0, 3.0, 1_700_000_100_000.0)
        );
        // A fractional dynamic limit is truncated by the reply: 2.5 -> 2.
        let mut other = None;
        let c = run(&alg, &mut other, 1.0, Some(2.5));
        assert_eq!((c.success, c.limit, c.remaining), (true, 2.0, 1.0));
        // A dynamic limit of 0 blocks everything.
        let mut third = None;
        assert!(!run(&alg, &mut third, 1.0, Some(0.0)).success);
    }

    #[test]
    fn scenario_19_rates_zero_and_fractional() {
        let alg = fw(10.0);
        assert_eq!(
            alg.limit_step(None, 1.5, None),
            Err(ScriptError::NotAnInteger)
        );
        assert_eq!(
            alg.limit_step(None, 1.5, None).unwrap_err().to_string(),
            "ERR value is not an integer or out of range"
        );
        let mut counter = Some(4);
        let o = run(&alg, &mut counter, 0.0, None);
        assert_eq!((o.success, o.remaining), (true, 6.0));
        assert_eq!(counter, Some(4));
        assert_eq!(
            alg.limit_step(Some(i64::MAX), 1.0, None),
            Err(ScriptError::Overflow)
        );
    }

    #[test]
    fn scenario_20_negative_rates() {
        let alg = FixedWindow::new(10.0, 172_800_000);
        let remaining = |c: Option<i64>| {
            alg.remaining_outcome(&alg.remaining_step(c, None), NOW)
                .remaining
        };
        let mut fresh = None;
        let o = run(&alg, &mut fresh, -3.0, None);
        assert_eq!((o.success, o.remaining), (true, 13.0));
        assert_eq!(remaining(fresh), 13.0);

        let mut full = None;
        run(&alg, &mut full, 10.0, None);
        assert_eq!(run(&alg, &mut full, -3.0, None).remaining, 3.0);

        let mut c = None;
        run(&alg, &mut c, 8.0, None);
        assert_eq!(remaining(c), 2.0);
        run(&alg, &mut c, -2.0, None);
        assert_eq!(remaining(c), 4.0);
        run(&alg, &mut c, -3.0, None);
        assert_eq!(remaining(c), 7.0);
        let o = run(&alg, &mut c, 5.0, None);
        assert_eq!((o.success, o.remaining), (true, 2.0));

        // Blocked at limit + 1, a refund of 5 makes room for 2 more.
        let mut b = None;
        assert!(!run(&alg, &mut b, 11.0, None).success);
        assert!(run(&alg, &mut b, -5.0, None).success);
        assert!(run(&alg, &mut b, 2.0, None).success);
    }

    #[test]
    fn reply_decoding() {
        let reply = FixedWindowLimitReply { count: 4, limit: 3 };
        assert_eq!(
            FixedWindowLimitReply::from_values(&reply.to_values()),
            Ok(reply)
        );
        assert!(FixedWindowLimitReply::from_values(&[Some(4)]).is_err());
        assert!(FixedWindowLimitReply::from_values(&[Some(4), None]).is_err());
        let rem = WindowRemainingReply {
            remaining: -1,
            limit: 3,
        };
        assert_eq!(
            WindowRemainingReply::from_values("x", &rem.to_values()),
            Ok(rem)
        );
    }
}
