//! One built-in single-region algorithm as a value (what `Ratelimit.fixedWindow(…)` and its
//! siblings make), with everything a binding asks of it: its script calls, the arithmetic on
//! their replies, the same with the deny-list check and the analytics write composed in, and
//! its window keys. The bindings (napi, WebAssembly) only marshal values in and out; the memory
//! store applies the same algorithm in `ratelimit-stores`.

use thiserror::Error;

use crate::algorithms::cached_fixed_window::CachedFixedWindow;
use crate::algorithms::fixed_window::{FixedWindow, FixedWindowLimitReply};
use crate::algorithms::sliding_window::{SlidingWindow, SlidingWindowLimitReply};
use crate::algorithms::token_bucket::{
    TokenBucket, TokenBucketLimitReply, TokenBucketRemainingReply,
};
use crate::algorithms::WindowRemainingReply;
use crate::args::{limit_array, positive, remaining_array, window, ArgError};
use crate::error::ReplyError;
use crate::keys::{self, ResetTarget};
use crate::reply::Reply;
use crate::round_trip::{self, Extras};
use crate::scripts::{self, ScriptCall, RESET};

#[derive(Debug, Clone, Copy)]
pub enum Algorithm {
    Fixed(FixedWindow),
    Sliding(SlidingWindow),
    Bucket(TokenBucket),
    Cached(CachedFixedWindow),
}

/// Why a call on an algorithm failed: a bad argument, or a reply it cannot read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CallError {
    #[error(transparent)]
    Arg(#[from] ArgError),
    #[error(transparent)]
    Reply(#[from] ReplyError),
}

/// The limit outcome with the deny-list check and analytics write composed in.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtrasOutcome {
    /// `[success (1/0), limit, remaining, reset, deny-list status TTL, denied flag per value…]`
    pub numbers: Vec<f64>,
    /// Redis' error when the analytics write failed (the limit itself succeeded).
    pub analytics_error: Option<String>,
}

/// The reset script call for a reset target.
pub fn reset_script_call(target: ResetTarget) -> ScriptCall {
    ScriptCall {
        script: &RESET,
        keys: vec![target.pattern],
        args: target.args,
    }
}

impl Algorithm {
    pub fn fixed_window(tokens: f64, window_ms: f64) -> Result<Algorithm, ArgError> {
        Ok(Algorithm::Fixed(FixedWindow::new(
            positive("tokens", tokens)?,
            window("window", window_ms)?,
        )))
    }

    pub fn sliding_window(tokens: f64, window_ms: f64) -> Result<Algorithm, ArgError> {
        Ok(Algorithm::Sliding(SlidingWindow::new(
            positive("tokens", tokens)?,
            window("window", window_ms)?,
        )))
    }

    pub fn token_bucket(
        refill_rate: f64,
        interval_ms: f64,
        max_tokens: f64,
    ) -> Result<Algorithm, ArgError> {
        Ok(Algorithm::Bucket(TokenBucket::new(
            positive("refillRate", refill_rate)?,
            window("interval", interval_ms)?,
            positive("maxTokens", max_tokens)?,
        )))
    }

    pub fn cached_fixed_window(tokens: f64, window_ms: f64) -> Result<Algorithm, ArgError> {
        Ok(Algorithm::Cached(CachedFixedWindow::new(
            positive("tokens", tokens)?,
            window("window", window_ms)?,
        )))
    }

    /// The algorithm as plain numbers (how the hot paths pass it): `kind` 0 fixed window,
    /// 1 sliding window (`a` tokens, `b` window ms), 2 token bucket (`a` refill rate, `b`
    /// interval ms, `c` max tokens).
    pub fn from_numbers(kind: u32, a: f64, b: f64, c: f64) -> Result<Algorithm, ArgError> {
        match kind {
            0 => Algorithm::fixed_window(a, b),
            1 => Algorithm::sliding_window(a, b),
            2 => Algorithm::token_bucket(a, b, c),
            _ => Err(ArgError("unknown algorithm kind".into())),
        }
    }

    /// The key of the window that `now` falls in (cachedFixedWindow's cache key too).
    pub fn window_key(&self, key: &str, now: u64) -> String {
        match self {
            Algorithm::Fixed(a) => a.key(key, now),
            Algorithm::Cached(a) => a.key(key, now),
            Algorithm::Sliding(a) => a.keys(key, now).0,
            Algorithm::Bucket(_) => TokenBucket::key(key),
        }
    }

    /// When the window that `now` falls in ends (unix ms).
    pub fn window_reset(&self, now: u64) -> f64 {
        let window_ms = match self {
            Algorithm::Fixed(a) => a.window_ms,
            Algorithm::Sliding(a) => a.window_ms,
            Algorithm::Cached(a) => a.window_ms,
            Algorithm::Bucket(a) => a.interval_ms,
        };
        keys::window_reset(keys::bucket(now, window_ms), window_ms)
    }

    pub fn limit_call(&self, key: &str, now: u64, rate: f64, dynamic_keys: &[&str]) -> ScriptCall {
        match self {
            Algorithm::Fixed(a) => a.limit_call(key, now, rate, dynamic_keys),
            Algorithm::Sliding(a) => a.limit_call(key, now, rate, dynamic_keys),
            Algorithm::Bucket(a) => a.limit_call(key, now, rate, dynamic_keys),
            Algorithm::Cached(a) => a.limit_call(key, now, rate),
        }
    }

    pub fn remaining_call(&self, key: &str, now: u64, dynamic_keys: &[&str]) -> ScriptCall {
        match self {
            Algorithm::Fixed(a) => a.remaining_call(key, now, dynamic_keys),
            Algorithm::Sliding(a) => a.remaining_call(key, now, dynamic_keys),
            Algorithm::Bucket(a) => a.remaining_call(key, dynamic_keys),
            Algorithm::Cached(a) => a.remaining_call(key, now),
        }
    }

    pub fn reset_call(&self, key: &str) -> ScriptCall {
        reset_script_call(match self {
            Algorithm::Fixed(_) => FixedWindow::reset_target(key),
            Algorithm::Sliding(_) => SlidingWindow::reset_target(key),
            Algorithm::Bucket(_) => TokenBucket::reset_target(key),
            Algorithm::Cached(_) => CachedFixedWindow::reset_target(key),
        })
    }

    /// The limit script's reply → `[success (1/0), limit, remaining, reset]`; for
    /// cachedFixedWindow (whose JS side owns the cache arithmetic) just `[counter]`.
    pub fn limit_outcome(&self, reply: &[Option<i64>], now: u64) -> Result<Vec<f64>, CallError> {
        Ok(match self {
            Algorithm::Fixed(a) => {
                limit_array(a.limit_outcome(&FixedWindowLimitReply::from_values(reply)?, now))
                    .to_vec()
            }
            Algorithm::Sliding(a) => {
                limit_array(a.limit_outcome(&SlidingWindowLimitReply::from_values(reply)?, now))
                    .to_vec()
            }
            Algorithm::Bucket(a) => {
                limit_array(a.limit_outcome(&TokenBucketLimitReply::from_values(reply)?)).to_vec()
            }
            Algorithm::Cached(_) => match reply {
                [Some(used)] => vec![*used as f64],
                _ => {
                    return Err(
                        ReplyError::shape(scripts::CACHED_FIXED_WINDOW_LIMIT.name, reply).into(),
                    )
                }
            },
        })
    }

    /// The getRemaining script's reply → `[remaining, reset, limit]`.
    pub fn remaining_outcome(
        &self,
        reply: &[Option<i64>],
        now: u64,
    ) -> Result<[f64; 3], CallError> {
        Ok(remaining_array(match self {
            Algorithm::Fixed(a) => a.remaining_outcome(
                &WindowRemainingReply::from_values(scripts::FIXED_WINDOW_REMAINING.name, reply)?,
                now,
            ),
            Algorithm::Sliding(a) => a.remaining_outcome(
                &WindowRemainingReply::from_values(scripts::SLIDING_WINDOW_REMAINING.name, reply)?,
                now,
            ),
            Algorithm::Bucket(a) => {
                a.remaining_outcome(&TokenBucketRemainingReply::from_values(reply)?, now)
            }
            Algorithm::Cached(a) => {
                a.remaining_outcome(reply.first().copied().flatten().unwrap_or(0) as f64, now)
            }
        }))
    }

    /// The limit call with the deny-list check and/or the analytics write in the same script.
    pub fn limit_with_extras_call(
        &self,
        key: &str,
        now: u64,
        rate: f64,
        dynamic_keys: &[&str],
        extras: &Extras,
    ) -> Result<ScriptCall, ArgError> {
        if matches!(self, Algorithm::Cached(_)) {
            return Err(ArgError(
                "cachedFixedWindow cannot carry protection or analytics in its script".into(),
            ));
        }
        Ok(round_trip::with_extras(
            self.limit_call(key, now, rate, dynamic_keys),
            extras,
        ))
    }

    /// `[success, limit, remaining, reset, status TTL, denied flag per value…]` from the reply of
    /// [`Algorithm::limit_with_extras_call`]'s script; a failed analytics write comes back as the
    /// error text (the caller warns).
    pub fn extras_outcome(&self, reply: &Reply, now: u64) -> Result<ExtrasOutcome, CallError> {
        let decoded = round_trip::decode(reply).ok_or_else(|| ReplyError {
            script: "limit with protection/analytics",
            detail: format!("{reply:?}"),
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
