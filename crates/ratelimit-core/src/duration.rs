//! Window sizes written as `"10 s"`, `"1.5m"`, `"2 d"`: upstream's `ms()` parser, reproduced.
//!
//! Upstream matches `^(\d+(?:\.\d+)?)\s?(ms|s|m|h|d|w)$` (ECMAScript semantics) and returns
//! `Math.round(parseFloat(number) * multiplier)`. This is a hand-written matcher for exactly that
//! language, so no regex engine is needed and `\d` / `\s` keep their ECMAScript meaning.

use thiserror::Error;

/// Largest window we accept: `Number.MAX_SAFE_INTEGER` ms, so windows stay exact in JS and Lua.
pub const MAX_WINDOW_MS: u64 = (1 << 53) - 1;

/// Why a duration string was refused. The first two messages are upstream's, verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    #[error("Unable to parse window size: {0}")]
    Unparsable(String),
    #[error("Window size must be at least 1 ms, got: {0}")]
    TooSmall(String),
    /// Ours: upstream would go on with an inexact (or infinite) window.
    #[error("Window size is too large: {0}")]
    TooLarge(String),
}

/// Parses a duration into whole milliseconds, exactly as upstream does (see the module docs).
pub fn parse_duration(input: &str) -> Result<u64, DurationError> {
    let unparsable = || DurationError::Unparsable(input.to_string());
    let (number, rest) = split_number(input).ok_or_else(unparsable)?;
    // `\s?` then the unit, which must end the input. A whitespace char is consumed first; the
    // regex would backtrack to not consuming it, but then the unit would have to start with
    // whitespace, which none does.
    let unit = match rest.chars().next() {
        Some(c) if is_ecmascript_whitespace(c) => &rest[c.len_utf8()..],
        _ => rest,
    };
    let multiplier = match unit {
        "ms" => 1.0,
        "s" => 1e3,
        "m" => 6e4,
        "h" => 3.6e6,
        "d" => 8.64e7,
        "w" => 6.048e8,
        _ => return Err(unparsable()),
    };
    // The number is plain decimal digits, which Rust parses with correct rounding like JS's
    // parseFloat does; overlong digit strings become infinity in both.
    let value: f64 = number.parse().map_err(|_| unparsable())?;
    let ms = js_math_round(value * multiplier);
    if ms < 1.0 {
        return Err(DurationError::TooSmall(input.to_string()));
    }
    if ms > MAX_WINDOW_MS as f64 {
        return Err(DurationError::TooLarge(input.to_string()));
    }
    Ok(ms as u64)
}

/// Splits off `\d+(?:\.\d+)?` (ASCII digits only). `None` when the input does not start with a
/// digit. A dot not followed by a digit is left in the rest, where it fails the unit match.
fn split_number(input: &str) -> Option<(&str, &str)> {
    let bytes = input.as_bytes();
    let int_len = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if int_len == 0 {
        return None;
    }
    let mut end = int_len;
    if bytes.get(end) == Some(&b'.') {
        let frac_len = bytes[end + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if frac_len > 0 {
            end += 1 + frac_len;
        }
    }
    Some(input.split_at(end))
}

/// ECMAScript `\s`: WhiteSpace (TAB, VT, FF, ZWNBSP and the Unicode Zs category) plus
/// LineTerminator (LF, CR, LS, PS). Not Rust's `char::is_whitespace`, which adds U+0085 and
/// lacks U+FEFF.
fn is_ecmascript_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202F}'
                | '\u{205F}'
                | '\u{3000}'
                | '\u{FEFF}'
    )
}

/// JS `Math.round`: nearest integer, halves towards +infinity. Written via `floor` because
/// `floor(x + 0.5)` is wrong for 0.49999999999999994 and for large odd values.
fn js_math_round(x: f64) -> f64 {
    let floor = x.floor();
    if x - floor >= 0.5 {
        floor + 1.0
    } else {
        floor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_values() {
        let cases: &[(&str, u64)] = &[
            ("10 s", 10_000),
            ("10s", 10_000),
            ("1.5 s", 1_500),
            ("0.5ms", 1),
            ("1.5ms", 2),
            ("2.5ms", 3),
            ("1 w", 604_800_000),
            ("2d", 172_800_000),
            ("1 ms", 1),
            ("1m", 60_000),
            ("1 h", 3_600_000),
            ("1.5m", 90_000),
            ("007 s", 7_000),
            ("1\ts", 1_000),
            ("1\ns", 1_000),
            ("1\rs", 1_000),
            ("1\u{0B}s", 1_000),
            ("1\u{0C}s", 1_000),
            ("1\u{A0}s", 1_000),
            ("1\u{FEFF}s", 1_000),
            ("1\u{1680}s", 1_000),
            ("1\u{2000}s", 1_000),
            ("1\u{200A}s", 1_000),
            ("1\u{2028}s", 1_000),
            ("1\u{2029}s", 1_000),
            ("1\u{202F}s", 1_000),
            ("1\u{205F}s", 1_000),
            ("1\u{3000}s", 1_000),
            ("0.0015 s", 2),
            ("9007199254740991 ms", MAX_WINDOW_MS),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_duration(input), Ok(*expected), "{input:?}");
        }
    }

    #[test]
    fn refuses_windows_below_one_millisecond() {
        for input in ["0 s", "0.4 ms", "0ms", "0.0001 s", "0.49999 ms"] {
            assert_eq!(
                parse_duration(input),
                Err(DurationError::TooSmall(input.to_string())),
                "{input:?}"
            );
        }
        assert_eq!(
            parse_duration("0 s").unwrap_err().to_string(),
            "Window size must be at least 1 ms, got: 0 s"
        );
    }

    #[test]
    fn refuses_what_the_regex_does_not_match() {
        for input in [
            "10 sec",
            " 1 s",
            "1 S",
            "1e3 ms",
            "-1 s",
            "1  s",
            ".5 s",
            "1. s",
            "1.s",
            "",
            "s",
            "1",
            "1 s ",
            "1 s\n",
            "1\u{85}s",
            "1\u{180E}s",
            "１ s",
            "1 ms2",
            "1 mss",
            "+1 s",
            "1,5 s",
            "1 M",
            "1 y",
            "1 \u{2028}s",
        ] {
            assert_eq!(
                parse_duration(input),
                Err(DurationError::Unparsable(input.to_string())),
                "{input:?}"
            );
        }
        assert_eq!(
            parse_duration("10 sec").unwrap_err().to_string(),
            "Unable to parse window size: 10 sec"
        );
    }

    #[test]
    fn refuses_windows_past_max_safe_integer() {
        let huge = format!("{} ms", "9".repeat(400)); // parseFloat gives Infinity
        for input in ["9007199254740992 ms", "20000000 w", huge.as_str()] {
            assert_eq!(
                parse_duration(input),
                Err(DurationError::TooLarge(input.to_string())),
                "{input:?}"
            );
        }
        assert_eq!(
            parse_duration("20000000 w").unwrap_err().to_string(),
            "Window size is too large: 20000000 w"
        );
    }

    #[test]
    fn rounds_like_math_round() {
        assert_eq!(js_math_round(0.5), 1.0);
        assert_eq!(js_math_round(1.5), 2.0);
        assert_eq!(js_math_round(2.5), 3.0);
        assert_eq!(js_math_round(0.49999999999999994), 0.0);
        assert_eq!(js_math_round(4503599627370497.0), 4503599627370497.0);
        assert_eq!(js_math_round(-0.5), 0.0);
    }
}
