//! Redis replies → JSON, with and without `Upstash-Encoding: base64`.
//!
//! Under base64 every bulk and simple string is the base64 of its raw bytes at any depth, except
//! a top-level "OK" (which `@upstash/redis` special-cases); integers and nil are untouched and
//! errors are never encoded. Without the header, strings are UTF-8 with U+FFFD for bad bytes.
//!
//! Replies are serialized straight into the response body (serde_json's writer does the
//! escaping): a `/pipeline` answer of 32 rate-limit results used to be built as a tree of
//! `serde_json::Value`s first, one map, key string and array per item, which showed up as a
//! tenth of the server's CPU in allocation alone.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use redis::Value;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::executor::Reply;

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

/// A (non-error) reply that is the `result` of a command, as JSON.
pub struct ResultJson<'a> {
    value: &'a Value,
    encoding: Encoding,
    top_level: bool,
}

/// The reply as the `result` of a command.
pub fn result_json(value: &Value, encoding: Encoding) -> ResultJson<'_> {
    ResultJson {
        value,
        encoding,
        top_level: true,
    }
}

/// One item of a `/pipeline` or `/multi-exec` answer: `{"result": …}` or `{"error": "…"}`.
pub struct ItemJson<'a>(pub &'a Reply, pub Encoding);

impl Serialize for ItemJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match self.0 {
            Reply::Value(value) => map.serialize_entry("result", &result_json(value, self.1))?,
            Reply::Error(text) => map.serialize_entry("error", text)?,
        }
        map.end()
    }
}

/// A whole `/pipeline` or `/multi-exec` answer.
pub struct ItemsJson<'a>(pub &'a [Reply], pub Encoding);

impl Serialize for ItemsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for reply in self.0 {
            seq.serialize_element(&ItemJson(reply, self.1))?;
        }
        seq.end()
    }
}

fn string<S: Serializer>(
    bytes: &[u8],
    encoding: Encoding,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match encoding {
        Encoding::Base64 => serializer.serialize_str(&STANDARD.encode(bytes)),
        Encoding::Utf8 => serializer.serialize_str(&String::from_utf8_lossy(bytes)),
    }
}

impl ResultJson<'_> {
    fn nested<'b>(&self, value: &'b Value) -> ResultJson<'b> {
        ResultJson {
            value,
            encoding: self.encoding,
            top_level: false,
        }
    }

    fn items<'b, S: Serializer>(
        &self,
        items: impl ExactSizeIterator<Item = &'b Value>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(items.len()))?;
        for item in items {
            seq.serialize_element(&self.nested(item))?;
        }
        seq.end()
    }
}

impl Serialize for ResultJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let encoding = self.encoding;
        match self.value {
            Value::Nil => serializer.serialize_unit(),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::BulkString(bytes) => string(bytes, encoding, serializer),
            Value::Okay if self.top_level => serializer.serialize_str("OK"),
            Value::Okay => string(b"OK", encoding, serializer),
            Value::SimpleString(s) if self.top_level && s == "OK" => serializer.serialize_str("OK"),
            Value::SimpleString(s) => string(s.as_bytes(), encoding, serializer),
            Value::Array(items) | Value::Set(items) => self.items(items.iter(), serializer),
            Value::Push { data, .. } => self.items(data.iter(), serializer),
            Value::Map(pairs) => {
                let mut seq = serializer.serialize_seq(Some(pairs.len() * 2))?;
                for (key, value) in pairs {
                    seq.serialize_element(&self.nested(key))?;
                    seq.serialize_element(&self.nested(value))?;
                }
                seq.end()
            }
            Value::Attribute { data, .. } => ResultJson {
                value: data,
                encoding,
                top_level: self.top_level,
            }
            .serialize(serializer),
            Value::Double(d) if d.is_finite() => serializer.serialize_f64(*d),
            Value::Double(d) => string(d.to_string().as_bytes(), encoding, serializer),
            Value::Boolean(b) => serializer.serialize_i64(i64::from(*b)),
            Value::VerbatimString { text, .. } => string(text.as_bytes(), encoding, serializer),
            Value::BigNumber(n) => string(n, encoding, serializer),
            // An error nested inside an array (EXEC replies are unpacked before this point):
            // errors are never encoded.
            Value::ServerError(err) => serializer.serialize_str(&error_text(err)),
            // `redis::Value` is non-exhaustive; RESP2 never produces anything else.
            _ => serializer.serialize_unit(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value as Json};

    fn result(value: &Value, encoding: Encoding) -> Json {
        serde_json::to_value(result_json(value, encoding)).unwrap()
    }

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
            result(&nested, Encoding::Base64),
            json!(["T0s=", "YmFy", 42, null, "UE9ORw=="])
        );
        assert_eq!(result(&Value::Okay, Encoding::Base64), json!("OK"));
        assert_eq!(
            result(&Value::SimpleString("PONG".into()), Encoding::Base64),
            json!("UE9ORw==")
        );
    }

    #[test]
    fn utf8_replaces_invalid_bytes() {
        assert_eq!(
            result(&Value::BulkString(vec![b'a', 0xff]), Encoding::Utf8),
            json!("a\u{fffd}")
        );
        assert_eq!(result(&Value::Okay, Encoding::Utf8), json!("OK"));
    }

    #[test]
    fn items_serialize_like_the_json_tree_they_replace() {
        let replies = [
            Reply::Value(Value::Array(vec![Value::Int(1), Value::Int(10)])),
            Reply::Error("NOSCRIPT No matching script. Please use EVAL.".into()),
            Reply::Value(Value::BulkString(b"a\"b\n\x01".to_vec())),
            Reply::Value(Value::Double(1.5)),
            Reply::Value(Value::Double(f64::INFINITY)),
            Reply::Value(Value::Map(vec![(
                Value::SimpleString("k".into()),
                Value::Nil,
            )])),
        ];
        let direct = serde_json::to_vec(&ItemsJson(&replies, Encoding::Utf8)).unwrap();
        assert_eq!(
            String::from_utf8(direct).unwrap(),
            serde_json::to_string(&json!([
                { "result": [1, 10] },
                { "error": "NOSCRIPT No matching script. Please use EVAL." },
                { "result": "a\"b\n\u{1}" },
                { "result": 1.5 },
                { "result": "inf" },
                { "result": ["k", null] },
            ]))
            .unwrap()
        );
    }
}
