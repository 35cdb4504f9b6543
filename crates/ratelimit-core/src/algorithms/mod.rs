//! The four single-region algorithms.
//!
//! Each algorithm file has three layers, all pure:
//!
//! 1. **Calls**: the KEYS / ARGV of its scripts (`limit_call`, `remaining_call`), in upstream's
//!    order, numbers formatted like JavaScript's `String(n)`.
//! 2. **State transitions** (`limit_step`, `remaining_step`): what the script does to the stored
//!    state and what it replies, over plain values (`Option<i64>` counters, [`BucketState`]).
//!    They are the single source of truth: the Lua scripts transcribe them, and an in-memory
//!    store can run them on its own map (read the keys, call the step, apply the write).
//! 3. **Outcomes** (`limit_outcome`, `remaining_outcome`): upstream's client-side arithmetic on a
//!    reply, giving what `limit()` / `getRemaining()` return.
//!
//! Numbers follow the runtime they live in: limits and rates are JS numbers (`f64`), windows are
//! whole milliseconds (`u64`, from [`crate::duration::parse_duration`]), replies are the
//! integers Redis makes of Lua numbers (truncated; see [`crate::num::lua_reply_integer`]).

pub mod cached_fixed_window;
pub mod fixed_window;
pub mod multi_region;
pub mod sliding_window;
pub mod token_bucket;

pub use cached_fixed_window::{CachedFixedWindow, CachedFixedWindowLimitStep};
pub use fixed_window::{FixedWindow, FixedWindowLimitReply, FixedWindowLimitStep};
pub use sliding_window::{SlidingWindow, SlidingWindowLimitReply, SlidingWindowLimitStep};
pub use token_bucket::{
    BucketState, BucketWrite, TokenBucket, TokenBucketLimitReply, TokenBucketLimitStep,
    TokenBucketRemainingReply,
};

use crate::error::ReplyError;
use crate::num::js_number_string;

/// What `limit()` reports (before the binding adds `pending` / `reason`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitOutcome {
    pub success: bool,
    pub limit: f64,
    pub remaining: f64,
    /// Unix ms.
    pub reset: f64,
}

/// What `getRemaining()` reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RemainingOutcome {
    pub remaining: f64,
    /// Unix ms.
    pub reset: f64,
    pub limit: f64,
}

/// The write a script makes to a string counter (fixed, sliding and cached windows).
///
/// To apply it: store `counter` (creating the key without a TTL if it was missing, keeping the
/// TTL it had otherwise: that is `INCRBY`), then, if `ttl_ms` is set, expire the key `ttl_ms`
/// after now (`PEXPIRE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterWrite {
    pub counter: i64,
    pub ttl_ms: Option<u64>,
}

/// The `{remaining, limit}` reply of the fixed and sliding window getRemaining scripts:
/// `remaining` is `effective limit - used`, possibly negative, unclamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowRemainingReply {
    pub remaining: i64,
    pub limit: i64,
}

impl WindowRemainingReply {
    /// Decodes the script's array reply.
    pub fn from_values(script: &'static str, values: &[Option<i64>]) -> Result<Self, ReplyError> {
        match values {
            [Some(remaining), Some(limit)] => Ok(WindowRemainingReply {
                remaining: *remaining,
                limit: *limit,
            }),
            _ => Err(ReplyError::shape(script, values)),
        }
    }

    /// The reply as Redis sends it.
    pub fn to_values(&self) -> Vec<Option<i64>> {
        vec![Some(self.remaining), Some(self.limit)]
    }
}

/// KEYS end with the dynamic-limit keys only when dynamic limits are on (no `""` placeholder):
/// `P:dynamic:global` as upstream, preceded by the identifier's own key when per-identifier
/// dynamic limits are on. The scripts use the first of them that is set.
fn keys_with_dynamic(mut keys: Vec<String>, dynamic_keys: &[&str]) -> Vec<String> {
    keys.extend(dynamic_keys.iter().map(|k| k.to_string()));
    keys
}

/// A JS number as the script argument upstream's client would send.
fn arg(x: f64) -> String {
    js_number_string(x)
}
