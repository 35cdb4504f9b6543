//! Script replies as a JavaScript client hands them back (JSON values: numbers, strings,
//! nested arrays, null) ↔ store replies. The compat path sends scripts through the user's client
//! and gives its reply to the core for the arithmetic.

use serde_json::Value as Json;

use crate::num::js_number_string;
use crate::reply::Reply;

/// For replies the arithmetic reads as integers (the single-region algorithms): a fractional
/// number is truncated, as `Number` → integer reads it.
pub fn reply_from_json(value: &Json) -> Reply {
    match value {
        Json::Null | Json::Object(_) => Reply::Nil,
        Json::Bool(b) => Reply::Int(i64::from(*b)),
        Json::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map(Reply::Int)
            .unwrap_or(Reply::Nil),
        Json::String(s) => Reply::Bytes(s.clone().into_bytes()),
        Json::Array(items) => Reply::Array(items.iter().map(reply_from_json).collect()),
    }
}

/// For replies whose numbers the client reads as text (multi-region hashes): a number that is
/// not an integer keeps its JS text (`String(n)`), which is what `parseInt` / arithmetic see.
pub fn reply_from_json_as_text(value: &Json) -> Reply {
    match value {
        Json::Null | Json::Object(_) => Reply::Nil,
        Json::Bool(b) => Reply::Int(i64::from(*b)),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Reply::Int(i),
            None => Reply::Bytes(js_number_string(n.as_f64().unwrap_or(f64::NAN)).into_bytes()),
        },
        Json::String(s) => Reply::Bytes(s.clone().into_bytes()),
        Json::Array(items) => Reply::Array(items.iter().map(reply_from_json_as_text).collect()),
    }
}

/// A store reply → the JSON a raw client would return (strings stay strings).
pub fn reply_to_json(reply: &Reply) -> Json {
    match reply {
        Reply::Nil => Json::Null,
        Reply::Int(i) => Json::from(*i),
        Reply::Bytes(b) => Json::String(String::from_utf8_lossy(b).into_owned()),
        Reply::Array(items) => Json::Array(items.iter().map(reply_to_json).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_integers_or_as_text() {
        let value: Json = serde_json::from_str(r#"[1, 2.5, "3", null, [true]]"#).unwrap();
        assert_eq!(
            reply_from_json(&value),
            Reply::Array(vec![
                Reply::Int(1),
                Reply::Int(2),
                Reply::Bytes(b"3".to_vec()),
                Reply::Nil,
                Reply::Array(vec![Reply::Int(1)])
            ])
        );
        assert_eq!(
            reply_from_json_as_text(&value),
            Reply::Array(vec![
                Reply::Int(1),
                Reply::Bytes(b"2.5".to_vec()),
                Reply::Bytes(b"3".to_vec()),
                Reply::Nil,
                Reply::Array(vec![Reply::Int(1)])
            ])
        );
        assert_eq!(
            reply_to_json(&reply_from_json(&value)).to_string(),
            r#"[1,2,"3",null,[1]]"#
        );
    }
}
