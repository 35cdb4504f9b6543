//! The two multi-region algorithms (`MultiRegionRatelimit.fixedWindow` / `.slidingWindow`).
//!
//! Every region (an independent Redis database) keeps, per aligned window, a hash
//! `P:I:<bucket>` of *request id → rate*. A `limit()` call runs the limit script on every region
//! at once, answers from the first region that replies, and afterwards (in `pending`) copies the
//! request ids a region is missing into it ("back-fill", see [`sync_plan`]). Accuracy is
//! eventual: concurrent requests in different regions can both pass.
//!
//! The same three layers as the single-region algorithms (see [`crate::algorithms`]):
//! calls (`limit_call`, `remaining_call`), pure state transitions (`limit_step`,
//! `remaining_step`, transcribed by the `multi_*.lua` scripts and cross-checked on a real
//! redis-server by `tests/multi_region_lua_vs_rust.rs`) and upstream's client-side arithmetic
//! (`limit_outcome`, `remaining_outcome`, [`sync_plan`]).
//!
//! Numbers take the same paths as upstream's:
//! * the rate reaches the script as JS text (`String(rate)`), Lua reads it with `tonumber`, and
//!   `HSET` stores that Lua number as Redis formats it (`%.17g` on Redis 7.0, see
//!   [`lua_number_text`]), so a rate of 0.1 is stored as `"0.10000000000000001"`;
//! * the scripts sum the stored values with `tonumber` in Lua doubles, in `HGETALL` order;
//! * the client sums them with JavaScript's `parseInt` (see [`js_parse_int`]), so fractional
//!   rates are truncated there.
//!
//! Hash order: Redis lists a small hash (at most 128 fields of at most 64 bytes, the default
//! `hash-max-listpack-*` settings) in insertion order, and [`HashFields`] models exactly that.
//! Larger hashes switch to a hash table whose order differs; only float sums of fractional rates
//! can depend on the order.

pub mod fixed_window;
pub mod sliding_window;

pub use fixed_window::{MultiFixedWindow, MultiFixedWindowLimitStep};
pub use sliding_window::{
    MultiSlidingWindow, MultiSlidingWindowLimitReply, MultiSlidingWindowLimitStep,
};

use crate::error::ReplyError;
use crate::num::{js_number_string, lua_tonumber};
use crate::reply::Reply;

/// A hash as `HGETALL` lists it: `(field, value)` pairs, in insertion order (see the module
/// docs). Fields are request ids, values the text of their rate.
pub type HashFields = Vec<(String, String)>;

/// One `HSET` a script makes, then (if `ttl_ms` is set) a `PEXPIRE key ttl_ms`.
///
/// To apply it: set `field` to `value` (a new field goes last, an existing one keeps its place,
/// see [`hset`]); a missing key is created without a TTL, an existing key keeps its TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashWrite {
    pub field: String,
    pub value: String,
    pub ttl_ms: Option<u64>,
}

impl HashWrite {
    /// Applies the `HSET` to a modelled hash (the TTL is the store's business).
    pub fn apply_to(&self, hash: &mut HashFields) {
        hset(hash, &self.field, &self.value);
    }
}

/// `HSET` on a modelled hash: replaces the value in place, or appends a new field.
pub fn hset(fields: &mut HashFields, field: &str, value: &str) {
    match fields.iter_mut().find(|(f, _)| f == field) {
        Some(entry) => entry.1 = value.to_string(),
        None => fields.push((field.to_string(), value.to_string())),
    }
}

/// The number a script sees for a JS number argument: `tonumber(String(x))`. Finite numbers
/// come back unchanged except `-0`, which JS writes as `"0"`.
pub fn lua_argument(x: f64) -> f64 {
    lua_tonumber(&js_number_string(x)).unwrap_or(f64::NAN)
}

/// How Redis 7.0 writes a Lua number passed to a command (`redis.call("HSET", k, f, 1.5)`):
/// C's `"%.17g"`. Integers print plainly up to 17 digits (`"3"`, `"-1"`), other values with
/// 17 significant digits (`0.1` → `"0.10000000000000001"`), large and tiny ones in exponent form
/// (`1e17` → `"1e+17"`).
pub fn lua_number_text(x: f64) -> String {
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // `%e` with 16 decimals: 17 significant digits, correctly rounded, and the exponent after
    // rounding (which is what `%g` bases its choice on).
    let scientific = format!("{x:.16e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("`{:e}` always writes an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}` writes an integer exponent");
    if (-4..17).contains(&exponent) {
        let decimals = (16 - exponent) as usize;
        strip_fraction_zeros(&format!("{x:.decimals$}"))
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!(
            "{}e{sign}{:02}",
            strip_fraction_zeros(mantissa),
            exponent.unsigned_abs()
        )
    }
}

/// `%g` drops trailing zeros of the fraction, and the point when nothing is left after it.
fn strip_fraction_zeros(text: &str) -> String {
    if !text.contains('.') {
        return text.to_string();
    }
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// JavaScript's whitespace for `parseInt` / `Number()` (`WhiteSpace` and `LineTerminator`).
fn is_js_whitespace(c: char) -> bool {
    c == '\u{feff}' || (c.is_whitespace() && c != '\u{85}')
}

/// JavaScript's `Number.parseInt(text)` (radix 10, or 16 after a `0x` prefix): leading
/// whitespace and a sign are skipped, then the longest run of digits is read; no digits is NaN.
/// `parseInt("0.10000000000000001")` is 0, `parseInt("1e+17")` is 1, `parseInt("-3")` is -3.
pub fn js_parse_int(text: &str) -> f64 {
    let s = text.trim_start_matches(is_js_whitespace);
    let (negative, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, s) = match s.get(..2) {
        Some("0x") | Some("0X") => (16, &s[2..]),
        _ => (10, s),
    };
    let end = s.find(|c: char| !c.is_digit(radix)).unwrap_or(s.len());
    let digits = &s[..end];
    if digits.is_empty() {
        return f64::NAN;
    }
    let magnitude = if radix == 10 {
        // Correctly rounded, as V8 reads decimal digits.
        digits.parse::<f64>().unwrap_or(f64::NAN)
    } else {
        digits.chars().fold(0.0, |acc, c| {
            acc * 16.0 + f64::from(c.to_digit(16).unwrap_or(0))
        })
    };
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

/// JavaScript's `Number(text)` (what `tokens - "3"` does to a string reply): surrounding
/// whitespace ignored, `""` is 0, decimal / `0x` / `0o` / `0b` / `Infinity` forms, else NaN.
pub fn js_to_number(text: &str) -> f64 {
    let s = text.trim_matches(is_js_whitespace);
    if s.is_empty() {
        return 0.0;
    }
    match s {
        "Infinity" | "+Infinity" => return f64::INFINITY,
        "-Infinity" => return f64::NEG_INFINITY,
        _ => {}
    }
    let prefixed = |radix: u32, digits: &str| {
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            f64::NAN
        } else {
            digits.chars().fold(0.0, |acc, c| {
                acc * f64::from(radix) + f64::from(c.to_digit(radix).unwrap_or(0))
            })
        }
    };
    match s.get(..2) {
        Some("0x") | Some("0X") => return prefixed(16, &s[2..]),
        Some("0o") | Some("0O") => return prefixed(8, &s[2..]),
        Some("0b") | Some("0B") => return prefixed(2, &s[2..]),
        _ => {}
    }
    // Rust also reads "inf" / "nan" / "infinity", which JS does not.
    if !s
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return f64::NAN;
    }
    s.parse::<f64>().unwrap_or(f64::NAN)
}

/// Upstream's client-side sum of a reply's values: `0 + parseInt(v1) + parseInt(v2) + …`.
pub fn client_total(fields: &[(String, String)]) -> f64 {
    fields.iter().fold(0.0, |acc, (_, v)| acc + js_parse_int(v))
}

/// The scripts' sum of a hash's values: `0 + tonumber(v1) + …` in Lua doubles, in `HGETALL`
/// order. (A non-numeric value would be a Lua error; these scripts never store one.)
pub fn script_total(fields: &[(String, String)]) -> f64 {
    fields
        .iter()
        .fold(0.0, |acc, (_, v)| acc + lua_tonumber(v).unwrap_or(f64::NAN))
}

/// The back-fill that upstream's `pending` performs once every region has answered.
///
/// `regions[i]` is the hash the client saw from region *i* (for the sliding window: the
/// current window's entries, with the fastest region's own request appended when it was
/// accepted, see [`MultiSlidingWindow::fields_seen_by_client`]). Returns, per region, the
/// request ids to write into it, in order, each as `HSET key id <this call's rate>`:
///
/// 1. every request id seen in any region, first occurrence first;
/// 2. a region whose own total (`parseInt` sum) is already `>= tokens` gets nothing;
/// 3. otherwise it gets the ids it does not hold.
///
/// The value written is the *current* call's rate for every missing id, not the rate that id
/// was recorded with (upstream's semantics).
pub fn sync_plan(tokens: f64, regions: &[HashFields]) -> Vec<Vec<String>> {
    let mut all_ids: Vec<&str> = Vec::new();
    for fields in regions {
        for (id, _) in fields {
            if !all_ids.contains(&id.as_str()) {
                all_ids.push(id);
            }
        }
    }
    regions
        .iter()
        .map(|fields| {
            if client_total(fields) >= tokens {
                return Vec::new();
            }
            all_ids
                .iter()
                .filter(|id| !fields.iter().any(|(f, _)| f == *id))
                .map(|id| id.to_string())
                .collect()
        })
        .collect()
}

/// The text a client shows for one element of a reply (`String(v)` for numbers).
fn reply_text(script: &'static str, value: &Reply) -> Result<String, ReplyError> {
    match value {
        Reply::Bytes(bytes) => Ok(String::from_utf8_lossy(bytes).into_owned()),
        Reply::Int(i) => Ok(i.to_string()),
        Reply::Nil => Ok("null".to_string()),
        Reply::Array(_) => Err(reply_error(script, value)),
    }
}

/// Decodes an `HGETALL`-shaped reply `{field1, value1, field2, value2, …}`.
pub fn hash_fields_from_reply(
    script: &'static str,
    reply: &Reply,
) -> Result<HashFields, ReplyError> {
    let Reply::Array(items) = reply else {
        return Err(reply_error(script, reply));
    };
    if items.len() % 2 != 0 {
        return Err(reply_error(script, reply));
    }
    items
        .chunks(2)
        .map(|pair| Ok((reply_text(script, &pair[0])?, reply_text(script, &pair[1])?)))
        .collect()
}

/// The reply as Redis sends it: an array of bulk strings.
pub fn hash_fields_to_reply(fields: &[(String, String)]) -> Reply {
    Reply::Array(
        fields
            .iter()
            .flat_map(|(f, v)| {
                [
                    Reply::Bytes(f.as_bytes().to_vec()),
                    Reply::Bytes(v.as_bytes().to_vec()),
                ]
            })
            .collect(),
    )
}

/// A scalar reply as JavaScript arithmetic sees it (`tokens - reply`): numbers as they are,
/// strings through `Number()`, null as 0.
pub fn reply_number(reply: &Reply) -> f64 {
    match reply {
        Reply::Int(i) => *i as f64,
        Reply::Bytes(bytes) => js_to_number(&String::from_utf8_lossy(bytes)),
        Reply::Nil => 0.0,
        Reply::Array(_) => f64::NAN,
    }
}

/// JavaScript truthiness of a reply element (upstream's `Boolean(flag)`).
pub fn reply_truthy(reply: &Reply) -> bool {
    match reply {
        Reply::Nil => false,
        Reply::Int(i) => *i != 0,
        Reply::Bytes(bytes) => !bytes.is_empty(),
        Reply::Array(_) => true,
    }
}

fn reply_error(script: &'static str, reply: &Reply) -> ReplyError {
    ReplyError {
        script,
        detail: format!("{reply:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HashFields {
        pairs
            .iter()
            .map(|(f, v)| (f.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn lua_number_text_is_percent_17g() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1"),
            (-3.0, "-3"),
            (0.0, "0"),
            (-0.0, "-0"),
            (1.5, "1.5"),
            (0.1, "0.10000000000000001"),
            (-0.5, "-0.5"),
            (2.5, "2.5"),
            (100.0, "100"),
            (1e16, "10000000000000000"),
            (1e17, "1e+17"),
            (123_456_789_012_345_678.0, "1.2345678901234568e+17"),
            (1e21, "1e+21"),
            (1e-5, "1.0000000000000001e-05"),
            (0.0001, "0.0001"),
            (1e300, "1.0000000000000001e+300"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (x, expected) in cases {
            assert_eq!(lua_number_text(*x), *expected, "%.17g of {x:?}");
        }
        assert_eq!(lua_argument(-0.0).to_bits(), 0.0f64.to_bits());
        assert_eq!(lua_number_text(lua_argument(-0.0)), "0");
    }

    #[test]
    fn lua_number_text_round_trips_through_tonumber() {
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..2000 {
            let x = f64::from_bits(rng.u64(..));
            if !x.is_finite() {
                continue;
            }
            assert_eq!(lua_tonumber(&lua_number_text(x)), Some(x), "{x:?}");
        }
    }

    #[test]
    fn parse_int_follows_javascript() {
        let cases: &[(&str, f64)] = &[
            ("1", 1.0),
            ("-3", -3.0),
            ("+7", 7.0),
            ("0.10000000000000001", 0.0),
            ("1.5", 1.0),
            ("-0.5", -0.0),
            ("1e+17", 1.0),
            ("  42abc", 42.0),
            ("0x1f", 31.0),
            ("0X10", 16.0),
            ("12345678901234567890", 12_345_678_901_234_567_000.0),
        ];
        for (text, expected) in cases {
            let got = js_parse_int(text);
            assert_eq!(got, *expected, "parseInt({text:?})");
            assert_eq!(
                got.is_sign_negative(),
                expected.is_sign_negative(),
                "{text:?}"
            );
        }
        for text in ["", "abc", "-", "0x", "null", ".5", "nan", "inf"] {
            assert!(js_parse_int(text).is_nan(), "parseInt({text:?})");
        }
    }

    #[test]
    fn to_number_follows_javascript() {
        assert_eq!(js_to_number(" 3 "), 3.0);
        assert_eq!(js_to_number(""), 0.0);
        assert_eq!(js_to_number("1.5e3"), 1500.0);
        assert_eq!(js_to_number("0x10"), 16.0);
        assert_eq!(js_to_number("-Infinity"), f64::NEG_INFINITY);
        assert!(js_to_number("inf").is_nan());
        assert!(js_to_number("3a").is_nan());
        assert!(js_to_number("-0x10").is_nan());
    }

    #[test]
    fn totals_use_each_runtime_s_parsing() {
        let f = fields(&[
            ("a", "1"),
            ("b", "0.10000000000000001"),
            ("c", "2.5"),
            ("d", "-1"),
        ]);
        assert_eq!(client_total(&f), 1.0 + 0.0 + 2.0 - 1.0);
        assert_eq!(script_total(&f), ((0.0 + 1.0) + 0.1) + 2.5 - 1.0);
        assert!(client_total(&fields(&[("a", "x")])).is_nan());
    }

    #[test]
    fn hset_keeps_insertion_order() {
        let mut f = fields(&[("a", "1"), ("b", "1")]);
        hset(&mut f, "a", "3");
        hset(&mut f, "c", "2");
        assert_eq!(f, fields(&[("a", "3"), ("b", "1"), ("c", "2")]));
    }

    #[test]
    fn sync_back_fills_missing_ids_with_the_current_rate_semantics() {
        // Region 0 saw a, b; region 1 saw b, c; region 2 is full already.
        let regions = vec![
            fields(&[("a", "1"), ("b", "1")]),
            fields(&[("b", "1"), ("c", "5")]),
            fields(&[("x", "10")]),
        ];
        let plan = sync_plan(10.0, &regions);
        assert_eq!(plan[0], vec!["c", "x"]);
        assert_eq!(plan[1], vec!["a", "x"]);
        assert!(plan[2].is_empty(), "total 10 >= tokens 10: skipped");
        // Identical regions: nothing to do.
        let same = vec![fields(&[("a", "1")]), fields(&[("a", "1")])];
        assert_eq!(
            sync_plan(3.0, &same),
            vec![Vec::<String>::new(), Vec::new()]
        );
        // A NaN total never counts as full.
        let odd = vec![fields(&[("a", "x")]), fields(&[("b", "1")])];
        assert_eq!(sync_plan(0.0, &odd)[0], vec!["b"]);
        assert!(sync_plan(0.0, &odd)[1].is_empty());
    }

    #[test]
    fn reply_decoding() {
        let f = fields(&[("id1", "1"), ("id2", "0.10000000000000001")]);
        assert_eq!(
            hash_fields_from_reply("x", &hash_fields_to_reply(&f)),
            Ok(f)
        );
        // Deserialised numbers (as @upstash/redis returns them) read as their JS text.
        let reply = Reply::Array(vec![Reply::Bytes(b"id".to_vec()), Reply::Int(2)]);
        assert_eq!(
            hash_fields_from_reply("x", &reply),
            Ok(fields(&[("id", "2")]))
        );
        assert!(hash_fields_from_reply("x", &Reply::Array(vec![Reply::Int(1)])).is_err());
        assert!(hash_fields_from_reply("x", &Reply::Int(1)).is_err());
        assert_eq!(reply_number(&Reply::Bytes(b"3".to_vec())), 3.0);
        assert_eq!(reply_number(&Reply::Nil), 0.0);
        assert!(reply_truthy(&Reply::Int(1)));
        assert!(!reply_truthy(&Reply::Nil));
        assert!(!reply_truthy(&Reply::Int(0)));
    }
}
