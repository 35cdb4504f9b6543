//! `MultiRegionRatelimit.slidingWindow(tokens, window)`.
//!
//! State per region: hashes `P:I:<bucket>` of request id → rate; a call reads the current and
//! the previous window's. The script refuses a request that does not fit (its own rate
//! included, unlike the single-region script) and then records nothing; an accepted request is
//! recorded, and a window that held nothing gets a TTL of `2*window + 1000`.
//!
//! The reply is the current window's entries *before* this request, the previous window's, and
//! the accepted flag. Upstream's client appends `(request id, String(rate))` to the first
//! region's current entries when it was accepted, and both its arithmetic and its back-fill use
//! that augmented list ([`MultiSlidingWindow::fields_seen_by_client`]).

use super::{
    client_total, hash_fields_from_reply, hash_fields_to_reply, lua_argument, lua_number_text,
    reply_number, reply_truthy, script_total, HashFields, HashWrite,
};
use crate::algorithms::{arg, LimitOutcome, RemainingOutcome};
use crate::error::ReplyError;
use crate::keys::{self, ResetTarget};
use crate::num::{js_max, js_number_string, lua_mod, lua_reply_integer};
use crate::reply::Reply;
use crate::scripts::{ScriptCall, MULTI_SLIDING_WINDOW_LIMIT, MULTI_SLIDING_WINDOW_REMAINING};

/// Parameters of a multi-region sliding window limiter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MultiSlidingWindow {
    /// Requests allowed per window (a JS number).
    pub tokens: f64,
    /// From [`crate::duration::parse_duration`]: 1 ..= [`crate::duration::MAX_WINDOW_MS`].
    pub window_ms: u64,
}

/// The limit script's reply: `{current entries before the call, previous entries, accepted}`
/// (`accepted` travels as 1 / nil).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiSlidingWindowLimitReply {
    pub current: HashFields,
    pub previous: HashFields,
    pub accepted: bool,
}

impl MultiSlidingWindowLimitReply {
    /// Decodes the script's reply (as Redis sends it, or as a JS client handed it back).
    pub fn from_reply(reply: &Reply) -> Result<Self, ReplyError> {
        let name = MULTI_SLIDING_WINDOW_LIMIT.name;
        let shape = || ReplyError {
            script: name,
            detail: format!("{reply:?}"),
        };
        let Reply::Array(items) = reply else {
            return Err(shape());
        };
        match items.as_slice() {
            [current, previous, rest @ ..] if rest.len() <= 1 => Ok(Self {
                current: hash_fields_from_reply(name, current)?,
                previous: hash_fields_from_reply(name, previous)?,
                accepted: rest.first().is_some_and(reply_truthy),
            }),
            _ => Err(shape()),
        }
    }

    /// The reply as Redis sends it.
    pub fn to_reply(&self) -> Reply {
        Reply::Array(vec![
            hash_fields_to_reply(&self.current),
            hash_fields_to_reply(&self.previous),
            if self.accepted {
                Reply::Int(1)
            } else {
                Reply::Nil
            },
        ])
    }
}

/// What the limit script does: a write to the current hash unless refused, and the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiSlidingWindowLimitStep {
    pub write: Option<HashWrite>,
    pub reply: MultiSlidingWindowLimitReply,
}

impl MultiSlidingWindow {
    pub fn new(tokens: f64, window_ms: u64) -> MultiSlidingWindow {
        MultiSlidingWindow { tokens, window_ms }
    }

    /// `(current key, previous key)` for a call at `now_ms`; `pending` back-fills the current.
    pub fn keys(&self, prefixed_id: &str, now_ms: u64) -> (String, String) {
        let bucket = keys::bucket(now_ms, self.window_ms);
        (
            keys::window_key(prefixed_id, bucket),
            keys::window_key(prefixed_id, bucket - 1),
        )
    }

    /// KEYS `[current, previous]`, ARGV `[tokens, now, window, request id, rate]`.
    pub fn limit_call(
        &self,
        prefixed_id: &str,
        now_ms: u64,
        request_id: &str,
        rate: f64,
    ) -> ScriptCall {
        let (current, previous) = self.keys(prefixed_id, now_ms);
        ScriptCall {
            script: &MULTI_SLIDING_WINDOW_LIMIT,
            keys: vec![current, previous],
            args: vec![
                arg(self.tokens),
                now_ms.to_string(),
                self.window_ms.to_string(),
                request_id.to_string(),
                arg(rate),
            ],
        }
    }

    /// KEYS `[current, previous]`, ARGV `[now, window]`.
    pub fn remaining_call(&self, prefixed_id: &str, now_ms: u64) -> ScriptCall {
        let (current, previous) = self.keys(prefixed_id, now_ms);
        ScriptCall {
            script: &MULTI_SLIDING_WINDOW_REMAINING,
            keys: vec![current, previous],
            args: vec![now_ms.to_string(), self.window_ms.to_string()],
        }
    }

    /// `resetUsedTokens` in every region: every window hash of the id.
    pub fn reset_target(prefixed_id: &str) -> ResetTarget {
        keys::window_reset_target(prefixed_id)
    }

    /// How far into the current window `now` is, as the script computes it: `(now % w) / w`.
    fn elapsed(&self, now_ms: u64) -> f64 {
        let window = self.window_ms as f64;
        lua_mod(now_ms as f64, window) / window
    }

    /// The limit script on one region's two hashes (empty when missing). `rate` must be finite.
    pub fn limit_step(
        &self,
        current: &[(String, String)],
        previous: &[(String, String)],
        now_ms: u64,
        request_id: &str,
        rate: f64,
    ) -> MultiSlidingWindowLimitStep {
        let limit = lua_argument(self.tokens);
        let amount = lua_argument(rate);
        let in_current = script_total(current);
        let in_previous = script_total(previous);
        let elapsed = self.elapsed(now_ms);
        let reply = |accepted| MultiSlidingWindowLimitReply {
            current: current.to_vec(),
            previous: previous.to_vec(),
            accepted,
        };
        // Same evaluation order as the script: ((p * (1 - e)) + c) + amount > limit.
        if amount > 0.0 && in_previous * (1.0 - elapsed) + in_current + amount > limit {
            return MultiSlidingWindowLimitStep {
                write: None,
                reply: reply(false),
            };
        }
        // Windows are at most 2^53-1 ms, so 2*window+1000 is exact in Lua's doubles too.
        let ttl_ms =
            (in_current == 0.0).then_some(self.window_ms.saturating_mul(2).saturating_add(1000));
        MultiSlidingWindowLimitStep {
            write: Some(HashWrite {
                field: request_id.to_string(),
                value: lua_number_text(amount),
                ttl_ms,
            }),
            reply: reply(true),
        }
    }

    /// The getRemaining script: `current total + floor((1 - elapsed) * previous total)`,
    /// replied as an integer (truncated).
    pub fn remaining_step(
        &self,
        current: &[(String, String)],
        previous: &[(String, String)],
        now_ms: u64,
    ) -> i64 {
        let weighted = ((1.0 - self.elapsed(now_ms)) * script_total(previous)).floor();
        lua_reply_integer(script_total(current) + weighted)
    }

    /// The current entries as upstream's client holds them after the first reply: with
    /// `(request id, String(rate))` appended when the request was accepted. Used for the
    /// arithmetic and, for the region that answered first, for the back-fill.
    pub fn fields_seen_by_client(
        reply: &MultiSlidingWindowLimitReply,
        request_id: &str,
        rate: f64,
    ) -> HashFields {
        let mut current = reply.current.clone();
        if reply.accepted {
            // A plain push: upstream appends even if the id were already listed.
            current.push((request_id.to_string(), js_number_string(rate)));
        }
        current
    }

    /// Upstream's client on the first region's reply:
    /// `used = ceil(Σprevious * (1 - elapsed)) + Σcurrent` (parseInt sums, the current one
    /// including this request when accepted), `success` = the script's flag,
    /// `remaining = max(0, tokens - used)`, `reset` at the end of the current window.
    pub fn limit_outcome(
        &self,
        reply: &MultiSlidingWindowLimitReply,
        now_ms: u64,
        request_id: &str,
        rate: f64,
    ) -> LimitOutcome {
        let current = Self::fields_seen_by_client(reply, request_id, rate);
        // JS `now % window` on non-negative integers is the same as Lua's floored modulo.
        let elapsed = self.elapsed(now_ms);
        let used =
            (client_total(&reply.previous) * (1.0 - elapsed)).ceil() + client_total(&current);
        LimitOutcome {
            success: reply.accepted,
            limit: self.tokens,
            remaining: js_max(0.0, self.tokens - used),
            reset: self.reset(now_ms),
        }
    }

    /// `{max(0, tokens - used), end of the window, tokens}`, `used` being the script's reply as
    /// the client handed it back (a number, or a numeric string).
    pub fn remaining_outcome(&self, reply: &Reply, now_ms: u64) -> RemainingOutcome {
        RemainingOutcome {
            remaining: js_max(0.0, self.tokens - reply_number(reply)),
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

    const NOW: u64 = 1_700_000_012_345; // 23.45 % into bucket 170_000_001 of a 10 s window
    const W: f64 = 1_700_000_020_000.0;

    fn fields(pairs: &[(&str, &str)]) -> HashFields {
        pairs
            .iter()
            .map(|(f, v)| (f.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn calls_have_upstream_keys() {
        let a = MultiSlidingWindow::new(3.0, 10_000);
        let call = a.limit_call("P:u", NOW, "id", 2.0);
        assert_eq!(call.script.name, "multiRegion.slidingWindow.limit");
        assert_eq!(call.keys, vec!["P:u:170000001", "P:u:170000000"]);
        assert_eq!(call.args, vec!["3", "1700000012345", "10000", "id", "2"]);
        let call = a.remaining_call("P:u", NOW);
        assert_eq!(call.keys, vec!["P:u:170000001", "P:u:170000000"]);
        assert_eq!(call.args, vec!["1700000012345", "10000"]);
    }

    /// Scenario 16 (one region's view): remaining 2, 1, 0, then refused with 0 (not recorded).
    #[test]
    fn scenario_16() {
        let a = MultiSlidingWindow::new(3.0, 10_000);
        let mut current = HashFields::new();
        let mut seen = Vec::new();
        for i in 0..4 {
            let id = format!("id{i}");
            let step = a.limit_step(&current, &[], NOW, &id, 1.0);
            if let Some(write) = &step.write {
                write.apply_to(&mut current);
                assert_eq!(write.ttl_ms.is_some(), i == 0);
            }
            let o = a.limit_outcome(&step.reply, NOW, &id, 1.0);
            assert_eq!((o.limit, o.reset), (3.0, W));
            seen.push((o.success, o.remaining));
        }
        assert_eq!(seen, [(true, 2.0), (true, 1.0), (true, 0.0), (false, 0.0)]);
        assert_eq!(current.len(), 3);
        let used = a.remaining_step(&current, &[], NOW);
        assert_eq!(used, 3);
        assert_eq!(
            a.remaining_outcome(&Reply::Int(used), NOW),
            RemainingOutcome {
                remaining: 0.0,
                reset: W,
                limit: 3.0
            }
        );
    }

    #[test]
    fn the_check_counts_the_rate_and_the_weighted_previous_window() {
        let a = MultiSlidingWindow::new(10.0, 10_000);
        let previous = fields(&[("p1", "4"), ("p2", "4")]); // 8 * 0.7655 = 6.124
        let current = fields(&[("c", "2")]);
        // 6.124 + 2 + 2 > 10: refused, nothing written.
        let refused = a.limit_step(&current, &previous, NOW, "x", 2.0);
        assert_eq!(refused.write, None);
        assert!(!refused.reply.accepted);
        // 6.124 + 2 + 1 <= 10: accepted.
        let ok = a.limit_step(&current, &previous, NOW, "x", 1.0);
        assert_eq!(ok.write.as_ref().map(|w| w.ttl_ms), Some(None));
        // Client: ceil(8 * 0.7655) + 2 + 1 = 7 + 3 = 10 → remaining 0.
        let o = a.limit_outcome(&ok.reply, NOW, "x", 1.0);
        assert_eq!((o.success, o.remaining), (true, 0.0));
        // getRemaining: 2 + floor(6.124) = 8 (before the call).
        assert_eq!(a.remaining_step(&current, &previous, NOW), 8);
        // Refunds skip the check.
        assert!(
            a.limit_step(&current, &previous, NOW, "r", -5.0)
                .reply
                .accepted
        );
    }

    #[test]
    fn the_ttl_restarts_when_the_window_sums_to_zero() {
        let a = MultiSlidingWindow::new(10.0, 10_000);
        let zero = fields(&[("a", "1"), ("b", "-1")]);
        let step = a.limit_step(&zero, &[], NOW, "c", 1.0);
        assert_eq!(step.write.unwrap().ttl_ms, Some(21_000));
    }

    #[test]
    fn the_fastest_region_s_view_includes_its_own_request() {
        let a = MultiSlidingWindow::new(3.0, 10_000);
        // Both regions accept the same request; the client appends it to region 0's reply only
        // (the one that answered first), so region 1 is "missing" it and gets it re-written.
        let r0 = a.limit_step(&[], &[], NOW, "me", 0.1).reply;
        let r1 = a.limit_step(&[], &[], NOW, "me", 0.1).reply;
        let seen0 = MultiSlidingWindow::fields_seen_by_client(&r0, "me", 0.1);
        assert_eq!(seen0, fields(&[("me", "0.1")]));
        let plan = sync_plan(a.tokens, &[seen0, r1.current.clone()]);
        assert_eq!(plan, vec![Vec::<String>::new(), vec!["me".to_string()]]);
        // A refused request is not appended.
        let full = fields(&[("a", "3")]);
        let refused = a.limit_step(&full, &[], NOW, "me", 1.0).reply;
        assert_eq!(
            MultiSlidingWindow::fields_seen_by_client(&refused, "me", 1.0),
            full
        );
    }

    #[test]
    fn reply_decoding() {
        let a = MultiSlidingWindow::new(3.0, 10_000);
        let step = a.limit_step(
            &fields(&[("a", "1")]),
            &fields(&[("b", "2")]),
            NOW,
            "c",
            1.0,
        );
        let reply = step.reply.to_reply();
        assert_eq!(
            MultiSlidingWindowLimitReply::from_reply(&reply),
            Ok(step.reply.clone())
        );
        // A client that dropped the trailing null.
        let short = Reply::Array(vec![Reply::Array(vec![]), Reply::Array(vec![])]);
        assert!(
            !MultiSlidingWindowLimitReply::from_reply(&short)
                .unwrap()
                .accepted
        );
        assert!(MultiSlidingWindowLimitReply::from_reply(&Reply::Int(1)).is_err());
    }
}
