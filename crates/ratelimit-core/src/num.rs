//! Number semantics of the three runtimes a request passes through.
//!
//! Upstream does its client-side arithmetic in JavaScript (IEEE doubles), sends numbers to Redis
//! as JS-formatted strings, computes in Lua 5.1 (doubles again) and gets Lua numbers back as
//! Redis integers. Reproducing its replies bit for bit means reproducing each of those
//! conversions, so they live here in one place and the algorithms only call them.

use crate::error::ScriptError;

/// JavaScript's `String(x)` for a number (ECMAScript `Number::toString`, radix 10).
///
/// This is how every number reaches Redis as a script argument, so the binding should format
/// ARGV with it. The digits are the shortest that round-trip, which Rust's `{:e}` also yields;
/// only the layout (plain vs. exponent form) differs and is redone here.
pub fn js_number_string(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_string();
    }
    if x == 0.0 {
        return "0".to_string(); // also for -0
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    // Whole numbers below 2^53 (limits, windows, rates, clocks: nearly every call) print as
    // their digits in JS too; skip the general path's formatting and re-assembly.
    if x.fract() == 0.0 && x.abs() < 9_007_199_254_740_992.0 {
        return (x as i64).to_string();
    }
    let sign = if x < 0.0 { "-" } else { "" };
    // `{:e}` gives e.g. "1.2345e21" or "5e-7": shortest round-trip digits and an exponent.
    let formatted = format!("{:e}", x.abs());
    let (mantissa, exponent) = formatted
        .split_once('e')
        .unwrap_or((formatted.as_str(), "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let k = digits.len() as i64; // number of significant digits
    let n = exponent + 1; // position of the decimal point relative to the digits
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        let (int_part, frac_part) = digits.split_at(n as usize);
        format!("{int_part}.{frac_part}")
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let e_sign = if e < 0 { '-' } else { '+' };
        let (first, rest) = digits.split_at(1);
        if rest.is_empty() {
            format!("{first}e{e_sign}{}", e.abs())
        } else {
            format!("{first}.{rest}e{e_sign}{}", e.abs())
        }
    };
    format!("{sign}{body}")
}

/// JavaScript's `Math.max(a, b)`: NaN wins, unlike `f64::max`.
pub fn js_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a > b || (a == b && a.is_sign_positive()) {
        a
    } else {
        b
    }
}

/// Lua 5.1's `a % b`, defined as `a - floor(a / b) * b` (not C's `fmod`).
pub fn lua_mod(a: f64, b: f64) -> f64 {
    a - (a / b).floor() * b
}

/// Lua 5.1's `math.min(a, b)`: keeps `a` unless `b < a`, so a NaN `b` is ignored but a NaN `a`
/// sticks (again unlike `f64::min`).
pub fn lua_min(a: f64, b: f64) -> f64 {
    if b < a {
        b
    } else {
        a
    }
}

/// A Lua number returned from a script becomes a Redis integer through a C `(long long)` cast:
/// truncation towards zero, and on x86-64 NaN and out-of-range values become `i64::MIN`
/// (checked against redis-server 7.0: `return {0/0, 1/0, 2^63}` gives three times `i64::MIN`).
pub fn lua_reply_integer(x: f64) -> i64 {
    // 2^63 is exactly representable; everything in [-2^63, 2^63) truncates into range.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if !(-LIMIT..LIMIT).contains(&x) {
        // NaN is outside every range too.
        i64::MIN
    } else {
        x.trunc() as i64
    }
}

/// Lua 5.1's `tonumber(s)` for the strings this crate can meet in Redis: decimal numbers,
/// `inf`/`nan` spellings (C `strtod` accepts them, and Redis writes them for non-finite Lua
/// numbers), `0x` hex integers, surrounding whitespace. `None` where Lua gives `nil`.
pub fn lua_tonumber(s: &str) -> Option<f64> {
    let t = s.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c'));
    if t.is_empty() {
        return None;
    }
    let (negative, unsigned) = match t.as_bytes()[0] {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let lower = unsigned.to_ascii_lowercase();
    let magnitude = if let Some(hex) = lower.strip_prefix("0x") {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        // strtoul wraps modulo 2^64; hex values this large never occur here.
        u64::from_str_radix(hex, 16).map(|v| v as f64).ok()?
    } else if matches!(lower.as_str(), "inf" | "infinity") {
        f64::INFINITY
    } else if lower == "nan" {
        f64::NAN
    } else {
        // Rust's parser is stricter than strtod about some forms ("1." / ".5" are fine in
        // both); none of the laxer forms are ever written by this crate or by upstream.
        if !unsigned
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        {
            return None;
        }
        unsigned.parse::<f64>().ok()?
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// The integer Redis's `INCRBY` sees when the increment arrives as the JS string of `x`.
///
/// `String(x)` is plain digits for integral `|x| < 1e21`; Redis then needs it to fit an i64.
/// Anything else (fractions, exponent forms, NaN, infinities) is Redis's
/// `ERR value is not an integer or out of range`.
pub fn redis_integer_argument(x: f64) -> Result<i64, ScriptError> {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    if x.is_finite() && x.fract() == 0.0 && (-LIMIT..LIMIT).contains(&x) {
        Ok(x as i64)
    } else {
        Err(ScriptError::NotAnInteger)
    }
}

/// The integer a Redis command sees when a script passes it a Lua number (e.g. `PEXPIRE`'s
/// milliseconds).
///
/// Redis 7.0 formats Lua numbers with `%.17g`, so integral values from 1e17 upwards arrive in
/// exponent form ("1e+17") and, like fractions, infinities and NaN, fail to parse as an integer
/// (checked: `PEXPIRE k 9e18` from Lua is `ERR value is not an integer or out of range`).
pub fn lua_number_as_integer_argument(x: f64) -> Result<i64, ScriptError> {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e17 {
        Ok(x as i64)
    } else {
        Err(ScriptError::NotAnInteger)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_number_string_matches_javascript() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-3.0, "-3"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (100.0, "100"),
            (1_700_000_000_123.0, "1700000000123"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.5e21, "1.5e+21"),
            (123_456.789, "123456.789"),
            (0.000_001, "0.000001"),
            (0.000_000_1, "1e-7"),
            (1.25e-7, "1.25e-7"),
            (9_007_199_254_740_993.0, "9007199254740992"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
        ];
        for (x, expected) in cases {
            assert_eq!(js_number_string(*x), *expected, "String({x:?})");
        }
    }

    #[test]
    fn js_number_string_round_trips_through_lua_tonumber() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..2000 {
            let x = f64::from_bits(rng.u64(..));
            let back = lua_tonumber(&js_number_string(x)).unwrap();
            assert!(
                back == x || (x.is_nan() && back.is_nan()) || x == 0.0,
                "{x:?}"
            );
        }
    }

    #[test]
    fn js_max_propagates_nan_and_prefers_positive_zero() {
        assert_eq!(js_max(0.0, -3.0), 0.0);
        assert_eq!(js_max(0.0, 4.5), 4.5);
        assert!(js_max(0.0, f64::NAN).is_nan());
        assert!(js_max(0.0, -0.0).is_sign_positive());
        assert!(js_max(-0.0, 0.0).is_sign_positive());
    }

    #[test]
    fn lua_helpers_follow_lua_5_1() {
        assert_eq!(lua_mod(5.0, 3.0), 2.0);
        assert_eq!(lua_mod(-5.0, 3.0), 1.0);
        assert_eq!(lua_mod(5.5, -2.0), -0.5);
        assert_eq!(lua_min(1.0, f64::NAN), 1.0);
        assert!(lua_min(f64::NAN, 1.0).is_nan());
        assert_eq!(lua_min(3.0, 2.0), 2.0);
        assert_eq!(lua_reply_integer(3.9), 3);
        assert_eq!(lua_reply_integer(-3.9), -3);
        assert_eq!(lua_reply_integer(-0.5), 0);
        assert_eq!(lua_reply_integer(f64::NAN), i64::MIN);
        assert_eq!(lua_reply_integer(f64::INFINITY), i64::MIN);
        assert_eq!(lua_reply_integer(2f64.powi(63)), i64::MIN);
        assert_eq!(lua_tonumber(" 12 "), Some(12.0));
        assert_eq!(lua_tonumber("0x10"), Some(16.0));
        assert_eq!(lua_tonumber("1e+21"), Some(1e21));
        assert_eq!(lua_tonumber("-inf"), Some(f64::NEG_INFINITY));
        assert!(lua_tonumber("-nan").unwrap().is_nan());
        assert_eq!(lua_tonumber("abc"), None);
        assert_eq!(lua_tonumber(""), None);
    }

    #[test]
    fn integer_arguments_follow_redis_parsing() {
        assert_eq!(redis_integer_argument(5.0), Ok(5));
        assert_eq!(redis_integer_argument(-0.0), Ok(0));
        assert_eq!(redis_integer_argument(-3.0), Ok(-3));
        assert_eq!(redis_integer_argument(1.5), Err(ScriptError::NotAnInteger));
        assert_eq!(redis_integer_argument(1e21), Err(ScriptError::NotAnInteger));
        assert_eq!(
            redis_integer_argument(2f64.powi(63)),
            Err(ScriptError::NotAnInteger)
        );
        assert_eq!(redis_integer_argument(-(2f64.powi(63))), Ok(i64::MIN));
        assert_eq!(
            redis_integer_argument(f64::NAN),
            Err(ScriptError::NotAnInteger)
        );
        assert_eq!(lua_number_as_integer_argument(50_000.0), Ok(50_000));
        assert_eq!(lua_number_as_integer_argument(-7.0), Ok(-7));
        assert_eq!(
            lua_number_as_integer_argument(1e17),
            Err(ScriptError::NotAnInteger)
        );
        assert_eq!(
            lua_number_as_integer_argument(2.5),
            Err(ScriptError::NotAnInteger)
        );
        assert_eq!(
            lua_number_as_integer_argument(f64::INFINITY),
            Err(ScriptError::NotAnInteger)
        );
    }
}
