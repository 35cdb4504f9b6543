//! One multi-region algorithm as a value (`MultiRegionRatelimit.fixedWindow(…)` /
//! `.slidingWindow(…)`): the script calls sent to every region, the arithmetic on the first
//! region's reply, and the back-fill plan `pending` performs once every region answered. Replies
//! arrive as the region's client handed them back (see [`crate::js_reply`]).

use crate::algorithm::{reset_script_call, CallError};
use crate::algorithms::multi_region::{
    sync_plan, HashFields, MultiFixedWindow, MultiSlidingWindow, MultiSlidingWindowLimitReply,
};
use crate::args::{limit_array, positive, remaining_array, window, ArgError};
use crate::keys;
use crate::reply::Reply;
use crate::scripts::ScriptCall;

#[derive(Debug, Clone, Copy)]
pub enum MultiRegionAlgorithm {
    Fixed(MultiFixedWindow),
    Sliding(MultiSlidingWindow),
}

/// The back-fill of one limit call: the hash key, and per region the request ids to write.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncPlan {
    pub key: String,
    pub ids: Vec<Vec<String>>,
}

impl MultiRegionAlgorithm {
    pub fn fixed_window(tokens: f64, window_ms: f64) -> Result<Self, ArgError> {
        Ok(MultiRegionAlgorithm::Fixed(MultiFixedWindow::new(
            positive("tokens", tokens)?,
            window("window", window_ms)?,
        )))
    }

    pub fn sliding_window(tokens: f64, window_ms: f64) -> Result<Self, ArgError> {
        Ok(MultiRegionAlgorithm::Sliding(MultiSlidingWindow::new(
            positive("tokens", tokens)?,
            window("window", window_ms)?,
        )))
    }

    pub fn limit_call(&self, key: &str, now: u64, request_id: &str, rate: f64) -> ScriptCall {
        match self {
            MultiRegionAlgorithm::Fixed(a) => a.limit_call(key, now, request_id, rate),
            MultiRegionAlgorithm::Sliding(a) => a.limit_call(key, now, request_id, rate),
        }
    }

    pub fn remaining_call(&self, key: &str, now: u64) -> ScriptCall {
        match self {
            MultiRegionAlgorithm::Fixed(a) => a.remaining_call(key, now),
            MultiRegionAlgorithm::Sliding(a) => a.remaining_call(key, now),
        }
    }

    /// resetUsedTokens in one region: every window hash of the id.
    pub fn reset_call(&self, key: &str) -> ScriptCall {
        reset_script_call(keys::window_reset_target(key))
    }

    fn tokens(&self) -> f64 {
        match self {
            MultiRegionAlgorithm::Fixed(a) => a.tokens,
            MultiRegionAlgorithm::Sliding(a) => a.tokens,
        }
    }

    /// The hash a region's limit call wrote to (the current window's).
    fn window_key(&self, key: &str, now: u64) -> String {
        match self {
            MultiRegionAlgorithm::Fixed(a) => a.key(key, now),
            MultiRegionAlgorithm::Sliding(a) => a.keys(key, now).0,
        }
    }

    /// `[success (1/0), limit, remaining, reset]` from the first region's limit reply.
    pub fn limit_outcome(
        &self,
        reply: &Reply,
        now: u64,
        request_id: &str,
        rate: f64,
    ) -> Result<[f64; 4], CallError> {
        Ok(limit_array(match self {
            MultiRegionAlgorithm::Fixed(a) => a.limit_outcome(&a.decode_reply(reply)?, now),
            MultiRegionAlgorithm::Sliding(a) => a.limit_outcome(
                &MultiSlidingWindowLimitReply::from_reply(reply)?,
                now,
                request_id,
                rate,
            ),
        }))
    }

    /// The entries the client holds for one region's limit reply (for the back-fill).
    fn client_fields(
        &self,
        reply: &Reply,
        answered_first: bool,
        request_id: &str,
        rate: f64,
    ) -> Result<HashFields, CallError> {
        Ok(match self {
            MultiRegionAlgorithm::Fixed(a) => a.decode_reply(reply)?,
            MultiRegionAlgorithm::Sliding(_) => {
                let decoded = MultiSlidingWindowLimitReply::from_reply(reply)?;
                if answered_first {
                    MultiSlidingWindow::fields_seen_by_client(&decoded, request_id, rate)
                } else {
                    decoded.current
                }
            }
        })
    }

    /// What `pending` writes once every region answered: per region (in `replies` order), the
    /// request ids to `HSET key id rate`, one after the other. `first` is the region whose
    /// reply answered the call.
    pub fn sync_plan(
        &self,
        replies: &[Reply],
        first: usize,
        key: &str,
        now: u64,
        request_id: &str,
        rate: f64,
    ) -> Result<SyncPlan, CallError> {
        let regions = replies
            .iter()
            .enumerate()
            .map(|(i, reply)| self.client_fields(reply, i == first, request_id, rate))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SyncPlan {
            key: self.window_key(key, now),
            ids: sync_plan(self.tokens(), &regions),
        })
    }

    /// `[remaining, reset, limit]` from the first region's getRemaining reply.
    pub fn remaining_outcome(&self, reply: &Reply, now: u64) -> Result<[f64; 3], CallError> {
        Ok(remaining_array(match self {
            MultiRegionAlgorithm::Fixed(a) => a.remaining_outcome(&a.decode_reply(reply)?, now),
            MultiRegionAlgorithm::Sliding(a) => a.remaining_outcome(reply, now),
        }))
    }
}
