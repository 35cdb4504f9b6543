//! Protection and analytics in the same round trip as the limit.
//!
//! Upstream sends the deny-list check and the analytics write as separate commands (and the
//! analytics write only after the limit answered). Here a limit script is wrapped into one
//! composed script that also checks the deny list and records the analytics event, so a
//! `limit()` with `enableProtection` and `analytics` is still one EVALSHA, one HTTP request.
//!
//! The limit script's text is embedded unchanged as a Lua function whose parameters are named
//! `KEYS` and `ARGV`: inside it they shadow the globals, so it sees exactly the KEYS/ARGV it
//! would see when run alone, and the algorithm keeps a single source of truth.
//!
//! Layout of a composed call:
//! - KEYS: the limit script's keys, then `P:denyList:all`, `P:ipDenyListStatus` (protection),
//!   then `P:events:<hour>` (analytics);
//! - ARGV: `#limit KEYS`, `#limit ARGV`, the limit script's ARGV, then (protection) the number of
//!   values and the values, then (analytics) the member to record when allowed, when blocked,
//!   and one per checked value for when that value is denied (the last denied value wins, as
//!   upstream reports it).
//! - Reply: `{limit reply, {1|0 per value}, status TTL, analytics error text or 0}`. The
//!   analytics write uses `redis.pcall`: as upstream, a failed analytics write is reported (and
//!   warned about by the caller), never a failed `limit()`.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::args::ArgError;
use crate::reply::Reply;
use crate::scripts::{
    Script, ScriptCall, FIXED_WINDOW_LIMIT, KEY_LOCKING_SHEBANG, SLIDING_WINDOW_LIMIT,
    TOKEN_BUCKET_LIMIT,
};

/// The deny-list part of a call.
#[derive(Debug, Clone, PartialEq)]
pub struct Protection {
    /// `P:denyList:all`
    pub deny_list_key: String,
    /// `P:ipDenyListStatus`
    pub status_key: String,
    /// identifier, ip, user agent, country — those that are set.
    pub values: Vec<String>,
}

/// The analytics part of a call: the members to ZINCRBY, chosen by the outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsRecord {
    /// `P:events:<hour start ms>`
    pub events_key: String,
    pub allowed_member: String,
    pub blocked_member: String,
    /// One per protection value, recorded when that value is the (last) denied one.
    pub denied_members: Vec<String>,
}

/// What rides along with a limit call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extras {
    pub protection: Option<Protection>,
    pub analytics: Option<AnalyticsRecord>,
}

impl Extras {
    pub fn is_empty(&self) -> bool {
        self.protection.is_none() && self.analytics.is_none()
    }
}

/// The decoded reply of a composed call.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtrasReply {
    /// The limit script's own reply.
    pub limit: Vec<Option<i64>>,
    /// Per protection value: on the deny list?
    pub denied: Vec<bool>,
    /// TTL of the IP deny list status key (-2: missing, refresh due; -1: disabled), if checked.
    pub status: Option<i64>,
    /// Redis' error text when the analytics write failed.
    pub analytics_error: Option<String>,
}

/// How the limit script's reply says "allowed", per algorithm (needed to pick the analytics
/// member inside the script; the same rule as the algorithm's `limit_outcome`).
fn allowed_expression(base: &Script) -> Option<&'static str> {
    if std::ptr::eq(base, &FIXED_WINDOW_LIMIT) {
        Some("reply[1] <= reply[2]")
    } else if std::ptr::eq(base, &SLIDING_WINDOW_LIMIT) || std::ptr::eq(base, &TOKEN_BUCKET_LIMIT) {
        Some("reply[1] >= 0")
    } else {
        None
    }
}

fn compose(base: &Script, protection: bool, analytics: bool) -> String {
    let body = base
        .source
        .strip_prefix(KEY_LOCKING_SHEBANG)
        .unwrap_or(base.source);
    let mut lua = format!(
        "{KEY_LOCKING_SHEBANG}\n\
         -- {name} with{p}{a} in the same call (composed by ratelimit-core's round_trip.rs).\n\
         local limit_keys, limit_args = {{}}, {{}}\n\
         local nk, na = tonumber(ARGV[1]), tonumber(ARGV[2])\n\
         for i = 1, nk do limit_keys[i] = KEYS[i] end\n\
         for i = 1, na do limit_args[i] = ARGV[2 + i] end\n\
         local function limit(KEYS, ARGV)\n{body}\nend\n\
         local reply = limit(limit_keys, limit_args)\n\
         local k, a = nk + 1, na + 3\n\
         local denied, status, values, analytics_error = {{}}, -1, 0, 0\n",
        name = base.name,
        p = if protection {
            " the deny-list check"
        } else {
            ""
        },
        a = if analytics {
            " and the analytics record"
        } else {
            ""
        },
    );
    if protection {
        lua.push_str(
            "values = tonumber(ARGV[a])\n\
             if values > 0 then\n\
             \x20 denied = redis.call(\"SMISMEMBER\", KEYS[k], unpack(ARGV, a + 1, a + values))\n\
             end\n\
             status = redis.call(\"TTL\", KEYS[k + 1])\n\
             if status == -2 then\n\
             \x20 redis.call(\"SETEX\", KEYS[k + 1], 30, \"pending\")\n\
             end\n\
             k, a = k + 2, a + 1 + values\n",
        );
    }
    if analytics {
        let allowed = allowed_expression(base).unwrap_or("false");
        lua.push_str(&format!(
            "local member = ARGV[a + 1]\n\
             if {allowed} then member = ARGV[a] end\n\
             for i = values, 1, -1 do\n\
             \x20 if denied[i] == 1 then member = ARGV[a + 1 + i] break end\n\
             end\n\
             local recorded = redis.pcall(\"ZINCRBY\", KEYS[k], 1, member)\n\
             if type(recorded) == \"table\" and recorded.err then analytics_error = recorded.err end\n"
        ));
    }
    lua.push_str("return {reply, denied, status, analytics_error}\n");
    lua
}

type ComposedKey = (&'static str, bool, bool);

static COMPOSED: Mutex<Option<HashMap<ComposedKey, &'static Script>>> = Mutex::new(None);

/// The composed script for `base` with the given extras (built once per combination).
fn composed(base: &'static Script, protection: bool, analytics: bool) -> &'static Script {
    let key = (base.name, protection, analytics);
    let mut guard = match COMPOSED.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    let map = guard.get_or_insert_with(HashMap::new);
    map.entry(key).or_insert_with(|| {
        let name: &'static str = Box::leak(
            format!(
                "{}{}{}",
                base.name,
                if protection { "+protection" } else { "" },
                if analytics { "+analytics" } else { "" }
            )
            .into_boxed_str(),
        );
        Script::leak(name, compose(base, protection, analytics))
    })
}

/// Whether `base` can carry extras (the fixed window, sliding window and token bucket limits).
pub fn supports(base: &Script) -> bool {
    allowed_expression(base).is_some()
}

/// Wraps a limit call with its extras; an empty `extras` returns the call unchanged.
pub fn with_extras(call: ScriptCall, extras: &Extras) -> ScriptCall {
    if extras.is_empty() || !supports(call.script) {
        return call;
    }
    let script = composed(
        call.script,
        extras.protection.is_some(),
        extras.analytics.is_some(),
    );
    let mut keys = call.keys;
    let mut args = Vec::with_capacity(call.args.len() + 8);
    args.push(keys.len().to_string());
    args.push(call.args.len().to_string());
    args.extend(call.args);
    if let Some(p) = &extras.protection {
        keys.push(p.deny_list_key.clone());
        keys.push(p.status_key.clone());
        args.push(p.values.len().to_string());
        args.extend(p.values.iter().cloned());
    }
    if let Some(r) = &extras.analytics {
        keys.push(r.events_key.clone());
        args.push(r.allowed_member.clone());
        args.push(r.blocked_member.clone());
        args.extend(r.denied_members.iter().cloned());
    }
    ScriptCall { script, keys, args }
}

/// What a binding receives for the extras, field by field (each optional), checked into
/// [`Extras`]: the deny-list keys go together, as do the analytics key and members. Field names
/// as JS spells them when deserialised (the WebAssembly binding reads the object directly).
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExtrasParts {
    pub deny_list_key: Option<String>,
    pub status_key: Option<String>,
    pub values: Option<Vec<String>>,
    pub events_key: Option<String>,
    pub allowed_member: Option<String>,
    pub blocked_member: Option<String>,
    pub denied_members: Option<Vec<String>>,
}

impl ExtrasParts {
    pub fn into_extras(self) -> Result<Extras, ArgError> {
        let protection = match (self.deny_list_key, self.status_key) {
            (Some(deny_list_key), Some(status_key)) => Some(Protection {
                deny_list_key,
                status_key,
                values: self.values.unwrap_or_default(),
            }),
            (None, None) => None,
            _ => return Err(ArgError("denyListKey and statusKey go together".into())),
        };
        let values = protection.as_ref().map_or(0, |p| p.values.len());
        let analytics = match (self.events_key, self.allowed_member, self.blocked_member) {
            (Some(events_key), Some(allowed_member), Some(blocked_member)) => {
                let denied_members = self.denied_members.unwrap_or_default();
                if denied_members.len() != values {
                    return Err(ArgError(
                        "deniedMembers needs one member per protection value".into(),
                    ));
                }
                Some(AnalyticsRecord {
                    events_key,
                    allowed_member,
                    blocked_member,
                    denied_members,
                })
            }
            (None, None, None) => None,
            _ => {
                return Err(ArgError(
                    "eventsKey, allowedMember and blockedMember go together".into(),
                ))
            }
        };
        Ok(Extras {
            protection,
            analytics,
        })
    }
}

/// Decodes `{limit reply, denied flags, status, analytics error}`.
pub fn decode(reply: &Reply) -> Option<ExtrasReply> {
    match reply {
        Reply::Array(parts) if parts.len() == 4 => Some(ExtrasReply {
            limit: parts[0].numbers(),
            denied: match &parts[1] {
                Reply::Array(flags) => flags.iter().map(|f| f.as_i64() == Some(1)).collect(),
                _ => Vec::new(),
            },
            status: parts[2].as_i64(),
            analytics_error: match &parts[3] {
                Reply::Bytes(text) => Some(String::from_utf8_lossy(text).into_owned()),
                _ => None,
            },
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_extras_leaves_the_call_alone() {
        let call = ScriptCall {
            script: &FIXED_WINDOW_LIMIT,
            keys: vec!["k".into()],
            args: vec!["1".into()],
        };
        assert_eq!(with_extras(call.clone(), &Extras::default()), call);
    }

    #[test]
    fn composed_scripts_keep_the_flag_embed_the_limit_and_are_built_once() {
        let a = composed(&SLIDING_WINDOW_LIMIT, true, true);
        let b = composed(&SLIDING_WINDOW_LIMIT, true, true);
        assert!(std::ptr::eq(a, b));
        assert!(a.source.starts_with("#!lua flags=allow-key-locking\n"));
        assert_eq!(a.source.matches(KEY_LOCKING_SHEBANG).count(), 1);
        assert!(a.source.contains(
            SLIDING_WINDOW_LIMIT
                .source
                .strip_prefix(KEY_LOCKING_SHEBANG)
                .unwrap()
        ));
        assert_ne!(
            a.sha1(),
            composed(&SLIDING_WINDOW_LIMIT, true, false).sha1()
        );
    }
}
