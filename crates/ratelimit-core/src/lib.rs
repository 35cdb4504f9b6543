//! The pure core of ratelimit-native, a drop-in for `@upstash/ratelimit` 2.2.0: no I/O, no
//! napi, nothing that keeps it from compiling to `wasm32-unknown-unknown`. Durations, key
//! layout, the Lua scripts and the state transitions they perform, upstream's client-side
//! arithmetic on their replies, the composition of a limit script with the deny-list check and
//! the analytics write, and the `/pipeline` wire format. Both bindings (napi and WebAssembly)
//! marshal values into [`algorithm::Algorithm`] and [`multi_region_algorithm::MultiRegionAlgorithm`]
//! and back; where state lives is the `ratelimit-stores` crate's concern.
//!
//! A limiter call is: build the [`scripts::ScriptCall`] (`limit_call`), run it on Redis (or run
//! the matching `*_step` on an in-memory map), decode the reply, and turn it into a
//! [`LimitOutcome`] / [`RemainingOutcome`]. See [`algorithms`] for the layering.

pub mod algorithm;
pub mod algorithms;
pub mod args;
pub mod batch_records;
pub mod duration;
pub mod error;
pub mod js_reply;
pub mod keys;
pub mod multi_region_algorithm;
pub mod num;
pub mod pipeline;
mod pipeline_answer;
pub mod reply;
pub mod round_trip;
pub mod scripts;

pub use algorithms::{
    BucketState, BucketWrite, CachedFixedWindow, CounterWrite, FixedWindow, LimitOutcome,
    RemainingOutcome, SlidingWindow, TokenBucket, WindowRemainingReply,
};
pub use duration::{parse_duration, DurationError};
pub use error::{ReplyError, ScriptError};
pub use reply::{Reply, StoreError};
pub use scripts::{Script, ScriptCall};
