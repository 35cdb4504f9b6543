//! `MultiRegionRatelimit.fixedWindow(tokens, window)`.
//!
//! State per region: a hash `P:I:<floor(now/window)>` of request id → rate, with a TTL of
//! `window` set when its first field is written. Every request is recorded, rejected ones too
//! (quirk Q3), and `remaining` is not clamped (quirk Q4): the fourth call on 3 tokens answers -1.

use super::{
    client_total, hash_fields_from_reply, hset, lua_argument, lua_number_text, HashFields,
    HashWrite,
};
use crate::algorithms::{arg, LimitOutcome, RemainingOutcome};
use crate::error::ReplyError;
use crate::keys::{self, ResetTarget};
use crate::num::{js_max, lua_tonumber};
use crate::reply::Reply;
use crate::scripts::{ScriptCall, MULTI_FIXED_WINDOW_LIMIT, MULTI_FIXED_WINDOW_REMAINING};

/// Parameters of a multi-region fixed window limiter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MultiFixedWindow {
    /// Requests allowed per window (a JS number).
    pub tokens: f64,
    /// From [`crate::duration::parse_duration`]: 1 ..= [`crate::duration::MAX_WINDOW_MS`].
    pub window_ms: u64,
}

/// What the limit script does in one region: one `HSET` (plus the TTL on a new hash), and the
/// reply, which is the whole hash afterwards (this request included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiFixedWindowLimitStep {
    pub write: HashWrite,
    pub reply: HashFields,
}

impl MultiFixedWindow {
    pub fn new(tokens: f64, window_ms: u64) -> MultiFixedWindow {
        MultiFixedWindow { tokens, window_ms }
    }

    /// The hash key for a call at `now_ms` (also where `pending` back-fills).
    pub fn key(&self, prefixed_id: &str, now_ms: u64) -> String {
        keys::window_key(prefixed_id, keys::bucket(now_ms, self.window_ms))
    }

    /// KEYS `[key]`, ARGV `[request id, window, rate]`.
    pub fn limit_call(
        &self,
        prefixed_id: &str,
        now_ms: u64,
        request_id: &str,
        rate: f64,
    ) -> ScriptCall {
        ScriptCall {
            script: &MULTI_FIXED_WINDOW_LIMIT,
            keys: vec![self.key(prefixed_id, now_ms)],
            args: vec![
                request_id.to_string(),
                self.window_ms.to_string(),
                arg(rate),
            ],
        }
    }

    /// KEYS `[key]`, no ARGV.
    pub fn remaining_call(&self, prefixed_id: &str, now_ms: u64) -> ScriptCall {
        ScriptCall {
            script: &MULTI_FIXED_WINDOW_REMAINING,
            keys: vec![self.key(prefixed_id, now_ms)],
            args: Vec::new(),
        }
    }

    /// `resetUsedTokens` in every region: every window hash of the id (escaped, see
    /// [`crate::keys::window_reset_target`]).
    pub fn reset_target(prefixed_id: &str) -> ResetTarget {
        keys::window_reset_target(prefixed_id)
    }

    /// The limit script on one region's hash (empty when the key is missing).
    ///
    /// `rate` must be finite (the binding rejects NaN and infinities before any call).
    pub fn limit_step(
        &self,
        hash: &[(String, String)],
        request_id: &str,
        rate: f64,
    ) -> MultiFixedWindowLimitStep {
        let amount = lua_argument(rate);
        let value = lua_number_text(amount);
        let mut after: HashFields = hash.to_vec();
        hset(&mut after, request_id, &value);
        // One entry after the HSET: the hash was just created (its only entry is ours, so the
        // value check always holds for finite rates). The TTL starts then.
        let created = after.len() == 1 && lua_tonumber(&after[0].1) == Some(amount);
        MultiFixedWindowLimitStep {
            write: HashWrite {
                field: request_id.to_string(),
                value,
                ttl_ms: created.then_some(self.window_ms),
            },
            reply: after,
        }
    }

    /// The getRemaining script: the hash, read only.
    pub fn remaining_step(&self, hash: &[(String, String)]) -> HashFields {
        hash.to_vec()
    }

    /// Decodes a limit or getRemaining reply (both are the hash's entries).
    pub fn decode_reply(&self, reply: &Reply) -> Result<HashFields, ReplyError> {
        hash_fields_from_reply(MULTI_FIXED_WINDOW_LIMIT.name, reply)
    }

    /// Upstream's client on the first region's reply: `used = Σ parseInt(value)`,
    /// `remaining = tokens - used` (not clamped), success iff `remaining >= 0`, `reset` at the
    /// end of the aligned window, `limit` the static `tokens`.
    pub fn limit_outcome(&self, reply: &[(String, String)], now_ms: u64) -> LimitOutcome {
        let remaining = self.tokens - client_total(reply);
        LimitOutcome {
            success: remaining >= 0.0,
            limit: self.tokens,
            remaining,
            reset: self.reset(now_ms),
        }
    }

    /// `{max(0, tokens - used), end of the window, tokens}`.
    pub fn remaining_outcome(&self, reply: &[(String, String)], now_ms: u64) -> RemainingOutcome {
        RemainingOutcome {
            remaining: js_max(0.0, self.tokens - client_total(reply)),
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
    use super::super::sync_plan;
    use super::*;

    const NOW: u64 = 1_700_000_012_345; // bucket 170_000_001 of a 10 s window
    const W: f64 = 1_700_000_020_000.0;

    fn alg() -> MultiFixedWindow {
        MultiFixedWindow::new(3.0, 10_000)
    }

    #[test]
    fn calls_have_upstream_keys() {
        let call = alg().limit_call("P:u", NOW, "AbCdEfGh12345678", 1.0);
        assert_eq!(call.script.name, "multiRegion.fixedWindow.limit");
        assert_eq!(call.keys, vec!["P:u:170000001"]);
        assert_eq!(call.args, vec!["AbCdEfGh12345678", "10000", "1"]);
        let call = alg().remaining_call("P:u", NOW);
        assert_eq!(call.keys, vec!["P:u:170000001"]);
        assert!(call.args.is_empty());
        assert_eq!(MultiFixedWindow::reset_target("P:u").pattern, "P:u:*");
    }

    #[test]
    fn records_every_request_and_sets_the_ttl_on_the_first() {
        let a = alg();
        let first = a.limit_step(&[], "id1", 1.0);
        assert_eq!(first.write.ttl_ms, Some(10_000));
        assert_eq!(first.reply, vec![("id1".to_string(), "1".to_string())]);
        let second = a.limit_step(&first.reply, "id2", 0.1);
        assert_eq!(second.write.ttl_ms, None);
        assert_eq!(second.write.value, "0.10000000000000001");
        assert_eq!(second.reply.len(), 2);
        // A refund on a fresh window creates it with the TTL too.
        assert_eq!(a.limit_step(&[], "r", -3.0).write.ttl_ms, Some(10_000));
        assert_eq!(a.limit_step(&[], "r", -0.0).write.value, "0");
    }

    /// Scenario 15 (one region's view): remaining 2, 1, 0, -1 (unclamped); then the ephemeral
    /// cache answers; without it the fifth call gives -2.
    #[test]
    fn scenario_15_remaining_is_unclamped() {
        let a = alg();
        let mut hash = HashFields::new();
        let mut remaining = Vec::new();
        for i in 0..5 {
            let step = a.limit_step(&hash, &format!("id{i}"), 1.0);
            hash = step.reply.clone();
            let o = a.limit_outcome(&step.reply, NOW);
            assert_eq!((o.limit, o.reset), (3.0, W));
            assert_eq!(o.success, o.remaining >= 0.0);
            remaining.push(o.remaining);
        }
        assert_eq!(remaining, [2.0, 1.0, 0.0, -1.0, -2.0]);
        assert!(hash.iter().all(|(_, v)| v == "1"));
        assert_eq!(
            a.remaining_outcome(&a.remaining_step(&hash), NOW),
            RemainingOutcome {
                remaining: 0.0,
                reset: W,
                limit: 3.0
            }
        );
    }

    #[test]
    fn fractional_and_negative_rates() {
        let a = MultiFixedWindow::new(10.0, 172_800_000);
        let mut hash = HashFields::new();
        for (i, rate) in [1.5, 2.9, -3.0].into_iter().enumerate() {
            hash = a.limit_step(&hash, &format!("r{i}"), rate).reply;
        }
        // parseInt truncates: 1 + 2 - 3 = 0 used.
        let o = a.limit_outcome(&hash, NOW);
        assert_eq!((o.success, o.remaining), (true, 10.0));
        // A fresh refund: remaining above the limit.
        let o = a.limit_outcome(&a.limit_step(&[], "x", -3.0).reply, NOW);
        assert_eq!((o.success, o.remaining), (true, 13.0));
    }

    #[test]
    fn two_regions_back_fill_each_other() {
        let a = alg();
        // Region 0 recorded x and y; region 1 only y (x's call failed there).
        let r0 = a
            .limit_step(&a.limit_step(&[], "x", 1.0).reply, "y", 1.0)
            .reply;
        let r1 = a.limit_step(&[], "y", 1.0).reply;
        let plan = sync_plan(a.tokens, &[r0, r1]);
        assert_eq!(plan, vec![Vec::<String>::new(), vec!["x".to_string()]]);
    }

    #[test]
    fn reply_decoding() {
        let a = alg();
        let step = a.limit_step(&[], "id", 2.0);
        let reply = super::super::hash_fields_to_reply(&step.reply);
        assert_eq!(a.decode_reply(&reply), Ok(step.reply));
        assert!(a.decode_reply(&Reply::Nil).is_err());
        assert_eq!(a.decode_reply(&Reply::Array(vec![])), Ok(vec![]));
    }
}
