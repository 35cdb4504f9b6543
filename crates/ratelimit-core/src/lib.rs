//! The algorithms of ratelimit-native, a native drop-in for `@upstash/ratelimit` 2.2.0, without
//! any napi or I/O: durations, key layout, Lua scripts, the state transitions those scripts
//! perform, and upstream's client-side arithmetic on their replies.
//!
//! [`stores`] holds the I/O side: the Upstash REST client that runs those script calls.
//!
//! A limiter call is: build the [`scripts::ScriptCall`] (`limit_call`), run it on Redis (or run
//! the matching `*_step` on an in-memory map), decode the reply, and turn it into a
//! [`LimitOutcome`] / [`RemainingOutcome`]. See [`algorithms`] for the layering.

pub mod algorithms;
pub mod duration;
pub mod error;
pub mod keys;
pub mod num;
pub mod round_trip;
pub mod scripts;
pub mod stores;
mod tls;

pub use algorithms::{
    BucketState, BucketWrite, CachedFixedWindow, CounterWrite, FixedWindow, LimitOutcome,
    RemainingOutcome, SlidingWindow, TokenBucket, WindowRemainingReply,
};
pub use duration::{parse_duration, DurationError};
pub use error::{ReplyError, ScriptError};
pub use scripts::{Script, ScriptCall};
