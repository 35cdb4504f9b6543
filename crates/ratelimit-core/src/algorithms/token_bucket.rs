//! `Ratelimit.tokenBucket(refillRate, interval, maxTokens)`.
//!
//! State: a hash at `P:I` with `refilledAt` (ms) and `tokens`, both Lua numbers (fractions are
//! possible with fractional rates). A missing bucket is a full one. Refills come in whole
//! intervals; a request is refused, and nothing written, when fewer tokens than it asks for
//! are left (2.2.0's `tokens < rate` guard). After a write the hash expires when refills would
//! have made it full again.

use super::{arg, keys_with_dynamic, LimitOutcome, RemainingOutcome};
use crate::error::{ReplyError, ScriptError};
use crate::keys::{self, ResetTarget};
use crate::num::{js_max, lua_min, lua_number_as_integer_argument, lua_reply_integer};
use crate::scripts::{ScriptCall, TOKEN_BUCKET_LIMIT, TOKEN_BUCKET_REMAINING};

/// Parameters of a token bucket limiter (JS numbers, not validated, like upstream).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    /// Tokens added per elapsed interval.
    pub refill_rate: f64,
    /// From [`crate::duration::parse_duration`]: 1 ..= [`crate::duration::MAX_WINDOW_MS`].
    pub interval_ms: u64,
    /// Capacity (and the limit reported).
    pub max_tokens: f64,
}

/// The stored hash `{refilledAt, tokens}`.
///
/// Redis stores both as `%.17g` text, which reads back as the same double, so an in-memory
/// store can keep the `f64`s as they are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketState {
    pub refilled_at: f64,
    pub tokens: f64,
}

/// A write of the whole hash (`HSET`, keeping any TTL), then, if `ttl_ms` is set, `PEXPIRE`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketWrite {
    pub state: BucketState,
    pub ttl_ms: Option<u64>,
}

/// The limit script's reply: `{tokens left or -1, next refill time, effective limit}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucketLimitReply {
    pub remaining: i64,
    pub reset: i64,
    pub limit: i64,
}

/// The getRemaining script's reply: `{tokens, refilledAt, effective limit}`;
/// `{limit, -1, limit}` when there is no bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucketRemainingReply {
    pub tokens: i64,
    pub refilled_at: i64,
    pub limit: i64,
}

/// What the limit script does.
///
/// `write` and `reply` are independent because the script can fail *after* writing: with a
/// `refillRate` of 0 the TTL is infinite and `PEXPIRE` errors once the hash is already stored
/// (Redis does not roll scripts back). Then `write` is `Some` with no TTL and `reply` is `Err`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucketLimitStep {
    pub write: Option<BucketWrite>,
    pub reply: Result<TokenBucketLimitReply, ScriptError>,
}

macro_rules! decode_triple {
    ($ty:ident, $script:expr, $a:ident, $b:ident, $c:ident) => {
        impl $ty {
            /// Decodes the script's array reply.
            pub fn from_values(values: &[Option<i64>]) -> Result<Self, ReplyError> {
                match values {
                    [Some($a), Some($b), Some($c)] => Ok($ty {
                        $a: *$a,
                        $b: *$b,
                        $c: *$c,
                    }),
                    _ => Err(ReplyError::shape($script.name, values)),
                }
            }

            /// The reply as Redis sends it.
            pub fn to_values(&self) -> Vec<Option<i64>> {
                vec![Some(self.$a), Some(self.$b), Some(self.$c)]
            }
        }
    };
}

decode_triple!(
    TokenBucketLimitReply,
    TOKEN_BUCKET_LIMIT,
    remaining,
    reset,
    limit
);
decode_triple!(
    TokenBucketRemainingReply,
    TOKEN_BUCKET_REMAINING,
    tokens,
    refilled_at,
    limit
);

impl TokenBucket {
    pub fn new(refill_rate: f64, interval_ms: u64, max_tokens: f64) -> TokenBucket {
        TokenBucket {
            refill_rate,
            interval_ms,
            max_tokens,
        }
    }

    /// The bucket key: the prefixed id itself.
    pub fn key(prefixed_id: &str) -> String {
        prefixed_id.to_string()
    }

    /// KEYS `[P:I, (dyn)]`, ARGV `[maxTokens, interval, refillRate, now, rate]`.
    pub fn limit_call(
        &self,
        prefixed_id: &str,
        now_ms: u64,
        rate: f64,
        dynamic_keys: &[&str],
    ) -> ScriptCall {
        ScriptCall {
            script: &TOKEN_BUCKET_LIMIT,
            keys: keys_with_dynamic(vec![Self::key(prefixed_id)], dynamic_keys),
            args: vec![
                arg(self.max_tokens),
                self.interval_ms.to_string(),
                arg(self.refill_rate),
                now_ms.to_string(),
                arg(rate),
            ],
        }
    }

    /// KEYS `[P:I, (dyn)]`, ARGV `[maxTokens]`.
    pub fn remaining_call(&self, prefixed_id: &str, dynamic_keys: &[&str]) -> ScriptCall {
        ScriptCall {
            script: &TOKEN_BUCKET_REMAINING,
            keys: keys_with_dynamic(vec![Self::key(prefixed_id)], dynamic_keys),
            args: vec![arg(self.max_tokens)],
        }
    }

    /// `resetUsedTokens`: the one hash of the id.
    pub fn reset_target(prefixed_id: &str) -> ResetTarget {
        keys::token_bucket_reset_target(prefixed_id)
    }

    /// The limit script, in the Lua's double arithmetic step by step.
    pub fn limit_step(
        &self,
        state: Option<BucketState>,
        now_ms: u64,
        rate: f64,
        dynamic_limit: Option<f64>,
    ) -> TokenBucketLimitStep {
        let limit = dynamic_limit.unwrap_or(self.max_tokens);
        let interval = self.interval_ms as f64;
        let now = now_ms as f64;
        let BucketState {
            mut refilled_at,
            mut tokens,
        } = state.unwrap_or(BucketState {
            refilled_at: now,
            tokens: limit,
        });

        // Whole intervals elapsed since the last refill each add refill_rate, capped at limit.
        if now >= refilled_at + interval {
            let refills = ((now - refilled_at) / interval).floor();
            tokens = lua_min(limit, tokens + refills * self.refill_rate);
            refilled_at += refills * interval;
        }

        if rate > 0.0 && tokens < rate {
            return TokenBucketLimitStep {
                write: None,
                reply: Ok(TokenBucketLimitReply {
                    remaining: -1,
                    reset: lua_reply_integer(refilled_at + interval),
                    limit: lua_reply_integer(limit),
                }),
            };
        }

        let remaining = tokens - rate;
        let state = BucketState {
            refilled_at,
            tokens: remaining,
        };
        // Time for refills to fill the bucket again. Not positive (a refund above capacity, or
        // NaN from 0/0) means no PEXPIRE, so any earlier TTL stays.
        let ttl = ((limit - remaining) / self.refill_rate).ceil() * interval;
        let ttl_ms = if ttl > 0.0 {
            match lua_number_as_integer_argument(ttl) {
                Ok(ms) => Some(ms as u64),
                Err(err) => {
                    return TokenBucketLimitStep {
                        write: Some(BucketWrite {
                            state,
                            ttl_ms: None,
                        }),
                        reply: Err(err),
                    }
                }
            }
        } else {
            None
        };
        TokenBucketLimitStep {
            write: Some(BucketWrite { state, ttl_ms }),
            reply: Ok(TokenBucketLimitReply {
                remaining: lua_reply_integer(remaining),
                reset: lua_reply_integer(refilled_at + interval),
                limit: lua_reply_integer(limit),
            }),
        }
    }

    /// The getRemaining script: the bucket as stored, no refill applied (quirk Q5).
    pub fn remaining_step(
        &self,
        state: Option<BucketState>,
        dynamic_limit: Option<f64>,
    ) -> TokenBucketRemainingReply {
        let limit = lua_reply_integer(dynamic_limit.unwrap_or(self.max_tokens));
        match state {
            None => TokenBucketRemainingReply {
                tokens: limit,
                refilled_at: -1,
                limit,
            },
            Some(s) => TokenBucketRemainingReply {
                tokens: lua_reply_integer(s.tokens),
                refilled_at: lua_reply_integer(s.refilled_at),
                limit,
            },
        }
    }

    /// Upstream's client: success iff the reply is not negative, `remaining` clamped at 0,
    /// `reset` = the script's next refill time (not when the bucket is full).
    pub fn limit_outcome(&self, reply: &TokenBucketLimitReply) -> LimitOutcome {
        let remaining = reply.remaining as f64;
        LimitOutcome {
            success: remaining >= 0.0,
            limit: reply.limit as f64,
            remaining: js_max(0.0, remaining),
            reset: reply.reset as f64,
        }
    }

    /// `{max(0, tokens), refilledAt + interval, limit}`; for a missing bucket (`refilledAt` -1)
    /// the reset is `now + interval` (quirk Q5). `now_ms` is the time the reply arrived.
    pub fn remaining_outcome(
        &self,
        reply: &TokenBucketRemainingReply,
        now_ms: u64,
    ) -> RemainingOutcome {
        let interval = self.interval_ms as f64;
        let reset = if reply.refilled_at == -1 {
            now_ms as f64 + interval
        } else {
            reply.refilled_at as f64 + interval
        };
        RemainingOutcome {
            remaining: js_max(0.0, reply.tokens as f64),
            reset,
            limit: reply.limit as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    /// One bucket, applied like a store would (TTL: last one set).
    struct Bucket {
        state: Option<BucketState>,
        ttl: Option<u64>,
    }

    impl Bucket {
        fn new() -> Bucket {
            Bucket {
                state: None,
                ttl: None,
            }
        }

        fn limit(
            &mut self,
            alg: &TokenBucket,
            now: u64,
            rate: f64,
            dyn_limit: Option<f64>,
        ) -> LimitOutcome {
            let step = alg.limit_step(self.state, now, rate, dyn_limit);
            if let Some(w) = step.write {
                self.state = Some(w.state);
                self.ttl = w.ttl_ms.or(self.ttl);
            }
            alg.limit_outcome(&step.reply.unwrap())
        }

        fn remaining(&self, alg: &TokenBucket, now: u64) -> RemainingOutcome {
            alg.remaining_outcome(&alg.remaining_step(self.state, None), now)
        }
    }

    fn triple(o: &LimitOutcome) -> (bool, f64, f64) {
        (o.success, o.limit, o.remaining)
    }

    #[test]
    fn calls_have_upstream_keys_and_args() {
        let alg = TokenBucket::new(1.5, 10_000, 5.0);
        let call = alg.limit_call("P:u", NOW, 2.0, &["P:dynamic:global"]);
        assert_eq!(call.script.name, "tokenBucket.limit");
        assert_eq!(call.keys, vec!["P:u", "P:dynamic:global"]);
        assert_eq!(call.args, vec!["5", "10000", "1.5", "1700000000000", "2"]);
        let call = alg.remaining_call("P:u", &[]);
        assert_eq!(call.keys, vec!["P:u"]);
        assert_eq!(call.args, vec!["5"]);
        assert_eq!(TokenBucket::reset_target("P:a*").pattern, "P:a\\*");
    }

    #[test]
    fn scenario_5_token_bucket() {
        let alg = TokenBucket::new(1.0, 10_000, 5.0);
        let mut b = Bucket::new();
        assert_eq!(
            b.remaining(&alg, NOW),
            RemainingOutcome {
                remaining: 5.0,
                reset: NOW as f64 + 10_000.0,
                limit: 5.0
            }
        );
        let outcomes: Vec<_> = [3.0, 3.0, 2.0, 1.0]
            .iter()
            .enumerate()
            .map(|(i, rate)| b.limit(&alg, NOW + i as u64 * 10, *rate, None))
            .collect();
        let triples: Vec<_> = outcomes.iter().map(triple).collect();
        assert_eq!(
            triples,
            [
                (true, 5.0, 2.0),
                (false, 5.0, 0.0),
                (true, 5.0, 0.0),
                (false, 5.0, 0.0)
            ]
        );
        assert!(outcomes.iter().all(|o| o.reset == NOW as f64 + 10_000.0));
        assert_eq!(
            b.state,
            Some(BucketState {
                refilled_at: NOW as f64,
                tokens: 0.0
            })
        );
        assert_eq!(b.ttl, Some(50_000));
        // A refund above capacity: tokens 10 > maxTokens 5, and no new TTL.
        let step = alg.limit_step(b.state, NOW + 50, -10.0, None);
        assert_eq!(step.write.unwrap().ttl_ms, None);
        let o = b.limit(&alg, NOW + 50, -10.0, None);
        assert_eq!(triple(&o), (true, 5.0, 10.0));
        assert_eq!(b.state.unwrap().tokens, 10.0);
    }

    #[test]
    fn refills_whole_intervals_up_to_the_limit() {
        let alg = TokenBucket::new(2.0, 10_000, 5.0);
        let empty = Some(BucketState {
            refilled_at: NOW as f64,
            tokens: 0.0,
        });
        // 9.999 s later: no refill yet; refused with reset at the next tick.
        let step = alg.limit_step(empty, NOW + 9_999, 1.0, None);
        assert_eq!(step.write, None);
        assert_eq!(
            step.reply,
            Ok(TokenBucketLimitReply {
                remaining: -1,
                reset: 1_700_000_010_000,
                limit: 5
            })
        );
        // 25 s later: two refills (4 tokens), refilledAt moves by two intervals.
        let step = alg.limit_step(empty, NOW + 25_000, 1.0, None);
        let write = step.write.unwrap();
        assert_eq!(
            write.state,
            BucketState {
                refilled_at: NOW as f64 + 20_000.0,
                tokens: 3.0
            }
        );
        assert_eq!(write.ttl_ms, Some(10_000)); // ceil((5 - 3) / 2) * 10 s
        assert_eq!(step.reply.unwrap().reset, 1_700_000_030_000);
        // Long idle: capped at maxTokens.
        let step = alg.limit_step(empty, NOW + 1_000_000, 1.0, None);
        assert_eq!(step.write.unwrap().state.tokens, 4.0);
    }

    #[test]
    fn remaining_ignores_refills_quirk_q5() {
        let alg = TokenBucket::new(1.0, 10_000, 5.0);
        let stale = Some(BucketState {
            refilled_at: NOW as f64,
            tokens: 0.0,
        });
        let reply = alg.remaining_step(stale, None);
        assert_eq!(
            reply,
            TokenBucketRemainingReply {
                tokens: 0,
                refilled_at: NOW as i64,
                limit: 5
            }
        );
        let o = alg.remaining_outcome(&reply, NOW + 3_600_000);
        assert_eq!(
            o,
            RemainingOutcome {
                remaining: 0.0,
                reset: NOW as f64 + 10_000.0,
                limit: 5.0
            }
        );
        let missing = alg.remaining_step(None, Some(2.0));
        assert_eq!(
            missing,
            TokenBucketRemainingReply {
                tokens: 2,
                refilled_at: -1,
                limit: 2
            }
        );
        assert_eq!(
            alg.remaining_outcome(&missing, NOW).reset,
            NOW as f64 + 10_000.0
        );
    }

    #[test]
    fn scenario_10_dynamic_limit() {
        let alg = TokenBucket::new(1.0, 10_000, 10.0);
        let mut b = Bucket::new();
        assert_eq!(
            triple(&b.limit(&alg, NOW, 2.0, Some(2.0))),
            (true, 2.0, 0.0)
        );
        assert_eq!(
            triple(&b.limit(&alg, NOW + 1, 1.0, Some(2.0))),
            (false, 2.0, 0.0)
        );
    }

    #[test]
    fn scenario_19_fractional_and_zero_rates() {
        let alg = TokenBucket::new(1.0, 10_000, 5.0);
        let mut b = Bucket::new();
        assert_eq!(triple(&b.limit(&alg, NOW, 1.5, None)), (true, 5.0, 3.0));
        assert_eq!(b.state.unwrap().tokens, 3.5); // stored unrounded, replied truncated
        assert_eq!(b.ttl, Some(20_000)); // ceil(1.5) * 10 s
        assert_eq!(triple(&b.limit(&alg, NOW + 1, 0.0, None)), (true, 5.0, 3.0));
        // Truncation towards zero: -0.5 tokens left reply 0, which counts as success.
        let odd = alg.limit_step(
            Some(BucketState {
                refilled_at: NOW as f64,
                tokens: -0.5,
            }),
            NOW,
            0.0,
            None,
        );
        assert!(alg.limit_outcome(&odd.reply.unwrap()).success);
    }

    #[test]
    fn scenario_20_negative_rates() {
        let alg = TokenBucket::new(1.0, 172_800_000, 10.0);
        let mut b = Bucket::new();
        let o = b.limit(&alg, NOW, -3.0, None);
        assert_eq!((o.success, o.remaining), (true, 13.0));
        assert_eq!(b.remaining(&alg, NOW).remaining, 13.0);

        let mut b = Bucket::new();
        b.limit(&alg, NOW, 10.0, None);
        assert_eq!(b.limit(&alg, NOW, -3.0, None).remaining, 3.0);

        let mut b = Bucket::new();
        b.limit(&alg, NOW, 8.0, None);
        assert_eq!(b.remaining(&alg, NOW).remaining, 2.0);
        b.limit(&alg, NOW, -2.0, None);
        assert_eq!(b.remaining(&alg, NOW).remaining, 4.0);
        b.limit(&alg, NOW, -3.0, None);
        assert_eq!(b.remaining(&alg, NOW).remaining, 7.0);
        let o = b.limit(&alg, NOW, 5.0, None);
        assert_eq!((o.success, o.remaining), (true, 2.0));

        // limit + 1 is refused and not consumed; a refund then a small request pass.
        let mut b = Bucket::new();
        assert!(!b.limit(&alg, NOW, 11.0, None).success);
        assert!(b.limit(&alg, NOW, -5.0, None).success);
        assert!(b.limit(&alg, NOW, 2.0, None).success);
    }

    #[test]
    fn zero_refill_rate_fails_after_writing() {
        let alg = TokenBucket::new(0.0, 10_000, 5.0);
        let step = alg.limit_step(None, NOW, 1.0, None);
        assert_eq!(step.reply, Err(ScriptError::NotAnInteger));
        assert_eq!(
            step.write,
            Some(BucketWrite {
                state: BucketState {
                    refilled_at: NOW as f64,
                    tokens: 4.0
                },
                ttl_ms: None
            })
        );
        // Nothing taken from a full bucket: 0/0 is NaN, no PEXPIRE, no error.
        let step = alg.limit_step(None, NOW, 0.0, None);
        assert!(step.reply.is_ok());
    }

    #[test]
    fn reply_decoding() {
        let r = TokenBucketLimitReply {
            remaining: 3,
            reset: 9,
            limit: 5,
        };
        assert_eq!(TokenBucketLimitReply::from_values(&r.to_values()), Ok(r));
        let q = TokenBucketRemainingReply {
            tokens: 5,
            refilled_at: -1,
            limit: 5,
        };
        assert_eq!(
            TokenBucketRemainingReply::from_values(&q.to_values()),
            Ok(q)
        );
        assert!(TokenBucketLimitReply::from_values(&[Some(1), Some(2)]).is_err());
    }
}
