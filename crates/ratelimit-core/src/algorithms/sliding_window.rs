//! `Ratelimit.slidingWindow(tokens, window)`: the current window's counter plus the previous
//! window's, weighted by how much of it the sliding window still covers.
//!
//! State: string counters at `P:I:<bucket>` and `P:I:<bucket-1>`; a counter gets a TTL of
//! `2*window + 1000` when it starts from nothing, so it outlives its turn as "previous". The
//! check happens before counting and ignores the rate (quirk Q3): a big rate can pass it and
//! is then counted although the reply says it was rejected.

use super::WindowRemainingReply;
use super::{arg, keys_with_dynamic, CounterWrite, LimitOutcome, RemainingOutcome};
use crate::error::{ReplyError, ScriptError};
use crate::keys::{self, ResetTarget};
use crate::num::{js_max, lua_mod, lua_number_as_integer_argument, lua_reply_integer};
use crate::scripts::{ScriptCall, SLIDING_WINDOW_LIMIT, SLIDING_WINDOW_REMAINING};

/// Parameters of a sliding window limiter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlidingWindow {
    /// Requests allowed per window (a JS number; not validated, like upstream).
    pub tokens: f64,
    /// From [`crate::duration::parse_duration`]: 1 ..= [`crate::duration::MAX_WINDOW_MS`].
    pub window_ms: u64,
}

/// The limit script's reply: `{effective limit - used after counting, effective limit}`,
/// or `{-1, effective limit}` when the pre-check refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindowLimitReply {
    pub remaining: i64,
    pub limit: i64,
}

impl SlidingWindowLimitReply {
    /// Decodes the script's array reply.
    pub fn from_values(values: &[Option<i64>]) -> Result<Self, ReplyError> {
        match values {
            [Some(remaining), Some(limit)] => Ok(SlidingWindowLimitReply {
                remaining: *remaining,
                limit: *limit,
            }),
            _ => Err(ReplyError::shape(SLIDING_WINDOW_LIMIT.name, values)),
        }
    }

    /// The reply as Redis sends it.
    pub fn to_values(&self) -> Vec<Option<i64>> {
        vec![Some(self.remaining), Some(self.limit)]
    }
}

/// What the limit script does: a write to the *current* counter unless refused, and the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindowLimitStep {
    pub write: Option<CounterWrite>,
    pub reply: SlidingWindowLimitReply,
}

impl SlidingWindow {
    pub fn new(tokens: f64, window_ms: u64) -> SlidingWindow {
        SlidingWindow { tokens, window_ms }
    }

    /// `(current key, previous key)` for a call at `now_ms`.
    pub fn keys(&self, prefixed_id: &str, now_ms: u64) -> (String, String) {
        let bucket = keys::bucket(now_ms, self.window_ms);
        (
            keys::window_key(prefixed_id, bucket),
            keys::window_key(prefixed_id, bucket - 1),
        )
    }

    /// KEYS `[current, previous, (dyn)]`, ARGV `[tokens, now, window, rate]`.
    pub fn limit_call(
        &self,
        prefixed_id: &str,
        now_ms: u64,
        rate: f64,
        dynamic_keys: &[&str],
    ) -> ScriptCall {
        let (current, previous) = self.keys(prefixed_id, now_ms);
        ScriptCall {
            script: &SLIDING_WINDOW_LIMIT,
            keys: keys_with_dynamic(vec![current, previous], dynamic_keys),
            args: vec![
                arg(self.tokens),
                now_ms.to_string(),
                self.window_ms.to_string(),
                arg(rate),
            ],
        }
    }

    /// KEYS `[current, previous, (dyn)]`, ARGV `[tokens, now, window]`.
    pub fn remaining_call(
        &self,
        prefixed_id: &str,
        now_ms: u64,
        dynamic_keys: &[&str],
    ) -> ScriptCall {
        let (current, previous) = self.keys(prefixed_id, now_ms);
        ScriptCall {
            script: &SLIDING_WINDOW_REMAINING,
            keys: keys_with_dynamic(vec![current, previous], dynamic_keys),
            args: vec![
                arg(self.tokens),
                now_ms.to_string(),
                self.window_ms.to_string(),
            ],
        }
    }

    /// `resetUsedTokens`: every window counter of the id.
    pub fn reset_target(prefixed_id: &str) -> ResetTarget {
        keys::window_reset_target(prefixed_id)
    }

    /// `floor((1 - elapsed fraction of the current window) * previous)`, as the scripts compute
    /// it in Lua doubles (`%` is Lua's floored modulo).
    fn weighted_previous(&self, previous: Option<i64>, now_ms: u64) -> f64 {
        let window = self.window_ms as f64;
        let elapsed = lua_mod(now_ms as f64, window) / window;
        ((1.0 - elapsed) * previous.unwrap_or(0) as f64).floor()
    }

    /// The limit script over the two counters. A refusal and every error write nothing.
    pub fn limit_step(
        &self,
        current: Option<i64>,
        previous: Option<i64>,
        now_ms: u64,
        rate: f64,
        dynamic_limit: Option<f64>,
    ) -> Result<SlidingWindowLimitStep, ScriptError> {
        let limit = dynamic_limit.unwrap_or(self.tokens);
        let weighted = self.weighted_previous(previous, now_ms);
        let stored = current.unwrap_or(0);
        // Refunds (rate <= 0) skip the check; the check ignores the rate's size.
        if rate > 0.0 && weighted + stored as f64 >= limit {
            return Ok(SlidingWindowLimitStep {
                write: None,
                reply: SlidingWindowLimitReply {
                    remaining: -1,
                    limit: lua_reply_integer(limit),
                },
            });
        }
        // Unlike the fixed window, INCRBY gets the Lua number: integral rates from 1e17 up arrive
        // in exponent form and fail.
        let increment = lua_number_as_integer_argument(rate)?;
        let count = stored.checked_add(increment).ok_or(ScriptError::Overflow)?;
        // Windows are at most 2^53-1 ms, so 2*window+1000 is exact in Lua's doubles too.
        let ttl_ms =
            (count as f64 == rate).then_some(self.window_ms.saturating_mul(2).saturating_add(1000));
        Ok(SlidingWindowLimitStep {
            write: Some(CounterWrite {
                counter: count,
                ttl_ms,
            }),
            reply: SlidingWindowLimitReply {
                remaining: lua_reply_integer(limit - (count as f64 + weighted)),
                limit: lua_reply_integer(limit),
            },
        })
    }

    /// The getRemaining script: the same weighted sum, read-only.
    pub fn remaining_step(
        &self,
        current: Option<i64>,
        previous: Option<i64>,
        now_ms: u64,
        dynamic_limit: Option<f64>,
    ) -> WindowRemainingReply {
        let limit = dynamic_limit.unwrap_or(self.tokens);
        let used = self.weighted_previous(previous, now_ms) + current.unwrap_or(0) as f64;
        WindowRemainingReply {
            remaining: lua_reply_integer(limit - used),
            limit: lua_reply_integer(limit),
        }
    }

    /// Upstream's client: success iff the reply is not negative, `remaining` clamped at 0,
    /// `reset` at the end of the current aligned window.
    pub fn limit_outcome(&self, reply: &SlidingWindowLimitReply, now_ms: u64) -> LimitOutcome {
        let remaining = reply.remaining as f64;
        LimitOutcome {
            success: remaining >= 0.0,
            limit: reply.limit as f64,
            remaining: js_max(0.0, remaining),
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

    const WINDOW: u64 = 60_000;
    const START: u64 = 1_700_000_040_000; // a window boundary of 60 s windows

    /// One identifier's counters, keyed by bucket, like a store would hold them.
    #[derive(Default)]
    struct Counters(std::collections::HashMap<i64, (i64, Option<u64>)>);

    impl Counters {
        fn limit(&mut self, alg: &SlidingWindow, now: u64, rate: f64) -> LimitOutcome {
            let b = keys::bucket(now, alg.window_ms);
            let cur = self.0.get(&b).map(|v| v.0);
            let prev = self.0.get(&(b - 1)).map(|v| v.0);
            let step = alg.limit_step(cur, prev, now, rate, None).unwrap();
            if let Some(w) = step.write {
                let entry = self.0.entry(b).or_insert((0, None));
                entry.0 = w.counter;
                entry.1 = w.ttl_ms.or(entry.1);
            }
            alg.limit_outcome(&step.reply, now)
        }

        fn remaining(&self, alg: &SlidingWindow, now: u64) -> f64 {
            let b = keys::bucket(now, alg.window_ms);
            let reply = alg.remaining_step(
                self.0.get(&b).map(|v| v.0),
                self.0.get(&(b - 1)).map(|v| v.0),
                now,
                None,
            );
            alg.remaining_outcome(&reply, now).remaining
        }
    }

    #[test]
    fn calls_have_upstream_keys_and_args() {
        let alg = SlidingWindow::new(10.0, WINDOW);
        let call = alg.limit_call("P:u", START + 1, 5.0, &["P:dynamic:global"]);
        assert_eq!(call.script.name, "slidingWindow.limit");
        assert_eq!(
            call.keys,
            vec!["P:u:28333334", "P:u:28333333", "P:dynamic:global"]
        );
        assert_eq!(call.args, vec!["10", "1700000040001", "60000", "5"]);
        let call = alg.remaining_call("P:u", START + 1, &[]);
        assert_eq!(call.keys, vec!["P:u:28333334", "P:u:28333333"]);
        assert_eq!(call.args, vec!["10", "1700000040001", "60000"]);
    }

    #[test]
    fn scenario_4_rate_quirk() {
        let alg = SlidingWindow::new(10.0, WINDOW);
        let mut c = Counters::default();
        let now = START + 1_000;
        let a = c.limit(&alg, now, 8.0);
        assert_eq!((a.success, a.limit, a.remaining), (true, 10.0, 2.0));
        let b = c.limit(&alg, now, 5.0);
        assert_eq!((b.success, b.limit, b.remaining), (false, 10.0, 0.0));
        let d = c.limit(&alg, now, 1.0);
        assert_eq!((d.success, d.limit, d.remaining), (false, 10.0, 0.0));
        let bucket = keys::bucket(now, WINDOW);
        assert_eq!(c.0[&bucket], (13, Some(121_000)));
        assert_eq!(a.reset, keys::window_reset(bucket, WINDOW));
    }

    #[test]
    fn previous_window_is_weighted_and_floored() {
        let alg = SlidingWindow::new(10.0, WINDOW);
        let mut c = Counters::default();
        c.limit(&alg, START - 1, 9.0); // previous window holds 9
                                       // A quarter into the next window: floor(0.75 * 9) = 6 still count.
        assert_eq!(c.remaining(&alg, START + 15_000), 4.0);
        let o = c.limit(&alg, START + 15_000, 1.0);
        assert_eq!((o.success, o.remaining), (true, 3.0));
        // At 0.9: floor(0.1 * 9) = 0.
        assert_eq!(c.remaining(&alg, START + 54_000), 9.0);
        // Two windows later neither counter matters any more.
        assert_eq!(c.remaining(&alg, START + 2 * WINDOW), 10.0);
    }

    #[test]
    fn refusal_writes_nothing_and_refunds_are_never_refused() {
        let alg = SlidingWindow::new(2.0, WINDOW);
        let refused = alg.limit_step(Some(2), None, START, 1.0, None).unwrap();
        assert_eq!(refused.write, None);
        assert_eq!(
            refused.reply,
            SlidingWindowLimitReply {
                remaining: -1,
                limit: 2
            }
        );
        // Refused before INCRBY, so even a fractional rate gives no error here.
        assert!(alg.limit_step(Some(2), None, START, 1.5, None).is_ok());
        let refund = alg.limit_step(Some(5), None, START, -1.0, None).unwrap();
        assert_eq!(
            refund.write,
            Some(CounterWrite {
                counter: 4,
                ttl_ms: None
            })
        );
        assert_eq!(refund.reply.remaining, -2);
        assert!(!alg.limit_outcome(&refund.reply, START).success);
    }

    #[test]
    fn scenario_19_and_20_rates() {
        let alg = SlidingWindow::new(10.0, 172_800_000);
        let now = START;
        assert_eq!(
            alg.limit_step(None, None, now, 1.5, None),
            Err(ScriptError::NotAnInteger)
        );
        let mut c = Counters::default();
        let o = c.limit(&alg, now, 0.0);
        assert_eq!((o.success, o.remaining), (true, 10.0));
        let o = c.limit(&alg, now, -3.0);
        assert_eq!((o.success, o.remaining), (true, 13.0));
        assert_eq!(c.remaining(&alg, now), 13.0);

        let mut c = Counters::default();
        c.limit(&alg, now, 10.0);
        assert_eq!(c.limit(&alg, now, -3.0).remaining, 3.0);

        let mut c = Counters::default();
        c.limit(&alg, now, 8.0);
        assert_eq!(c.remaining(&alg, now), 2.0);
        c.limit(&alg, now, -2.0);
        assert_eq!(c.remaining(&alg, now), 4.0);
        c.limit(&alg, now, -3.0);
        assert_eq!(c.remaining(&alg, now), 7.0);
        let o = c.limit(&alg, now, 5.0);
        assert_eq!((o.success, o.remaining), (true, 2.0));
    }

    #[test]
    fn dynamic_limit_replaces_tokens() {
        let alg = SlidingWindow::new(10.0, WINDOW);
        let step = alg.limit_step(None, None, START, 3.0, Some(3.0)).unwrap();
        assert_eq!(
            step.reply,
            SlidingWindowLimitReply {
                remaining: 0,
                limit: 3
            }
        );
        let refused = alg
            .limit_step(Some(3), None, START, 5.0, Some(3.0))
            .unwrap();
        let o = alg.limit_outcome(&refused.reply, START);
        assert_eq!((o.success, o.limit, o.remaining), (false, 3.0, 0.0));
    }
}
