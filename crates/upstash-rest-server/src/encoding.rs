//! Redis replies → JSON, with and without `Upstash-Encoding: base64`.
//!
//! Under base64 every bulk and simple string is the base64 of its raw bytes at any depth, except
//! a top-level "OK" (which `@upstash/redis` special-cases); integers and nil are untouched and
//! errors are never encoded. Without the header, strings are UTF-8 with U+FFFD for bad bytes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use redis::Value;
use serde_json::Value as Json;

/// How string replies are written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Encoding {
    Utf8,
    Base64,
}

/// The exact line Redis sent, e.g. "NOSCRIPT No matching script. Please use EVAL.".
pub fn error_text(err: &redis::ServerError) -> String {
    match err.details() {
        Some(details) => format!("{} {}", err.code(), details),
        None => err.code().to_string(),
    }
}

/// Converts a (non-error) reply that is the `result` of a command.
pub fn result_json(value: &Value, encoding: Encoding) -> Json {
    to_json(value, encoding, true)
}

fn string(bytes: &[u8], encoding: Encoding) -> Json {
    match encoding {
        Encoding::Base64 => Json::String(STANDARD.encode(bytes)),
        Encoding::Utf8 => Json::String(String::from_utf8_lossy(bytes).into_owned()),
    }
}

fn to_json(value: &Value, encoding: Encoding, top_level: bool) -> Json {
    match value {
        Value::Nil => Json::Null,
        Value::Int(i) => Json::from(*i),
        Value::BulkString(bytes) => string(bytes, encoding),
        Value::Okay if top_level => Json::String("OK".into()),
        Value::Okay => string(b"OK", encoding),
        Value::SimpleString(s) if top_level && s == "OK" => Json::String("OK".into()),
        Value::SimpleString(s) => string(s.as_bytes(), encoding),
        Value::Array(items) | Value::Set(items) => {
            Json::Array(items.iter().map(|v| to_json(v, encoding, false)).collect())
        }
        Value::Push { data, .. } => {
            Json::Array(data.iter().map(|v| to_json(v, encoding, false)).collect())
        }
        Value::Map(pairs) => Json::Array(
            pairs
                .iter()
                .flat_map(|(k, v)| [to_json(k, encoding, false), to_json(v, encoding, false)])
                .collect(),
        ),
        Value::Attribute { data, .. } => to_json(data, encoding, top_level),
        Value::Double(d) => serde_json::Number::from_f64(*d)
            .map(Json::Number)
            .unwrap_or_else(|| string(d.to_string().as_bytes(), encoding)),
        Value::Boolean(b) => Json::from(i64::from(*b)),
        Value::VerbatimString { text, .. } => string(text.as_bytes(), encoding),
        Value::BigNumber(n) => string(n, encoding),
        // An error nested inside an array (EXEC replies are unpacked before this point):
        // errors are never encoded.
        Value::ServerError(err) => Json::String(error_text(err)),
        // `redis::Value` is non-exhaustive; RESP2 never produces anything else.
        _ => Json::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base64_everything_but_a_top_level_ok() {
        let nested = Value::Array(vec![
            Value::Okay,
            Value::BulkString(b"bar".to_vec()),
            Value::Int(42),
            Value::Nil,
            Value::SimpleString("PONG".into()),
        ]);
        assert_eq!(
            result_json(&nested, Encoding::Base64),
            json!(["T0s=", "YmFy", 42, null, "UE9ORw=="])
        );
        assert_eq!(result_json(&Value::Okay, Encoding::Base64), json!("OK"));
        assert_eq!(
            result_json(&Value::SimpleString("PONG".into()), Encoding::Base64),
            json!("UE9ORw==")
        );
    }

    #[test]
    fn utf8_replaces_invalid_bytes() {
        assert_eq!(
            result_json(&Value::BulkString(vec![b'a', 0xff]), Encoding::Utf8),
            json!("a\u{fffd}")
        );
        assert_eq!(result_json(&Value::Okay, Encoding::Utf8), json!("OK"));
    }
}
