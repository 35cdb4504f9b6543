//! The Upstash REST `/pipeline` wire format, with no I/O: the request body for a batch of
//! commands (scripts as EVALSHA, or EVAL on the NOSCRIPT retry), and the answer decoded into
//! replies (`Upstash-Encoding: base64`), with how a failed request failed. Both REST transports
//! of the stores crate (reqwest, and the event-loop socket) use it.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value as Json;

use crate::pipeline_answer::PipelineAnswer;
use crate::reply::{Reply, StoreError};
use crate::scripts::Script;

/// One command in a batch.
pub enum Command {
    /// EVALSHA first, EVAL on NOSCRIPT.
    Script {
        script: &'static Script,
        keys: Vec<String>,
        args: Vec<String>,
    },
    /// Any other command, sent as is.
    Plain(Vec<String>),
}

impl Command {
    /// Hands `f` the command's words. A script goes as EVALSHA, or as EVAL on the NOSCRIPT
    /// retry; `stock_redis` selects the script text without Upstash's key-locking line, which
    /// stock Redis rejects (the REST path sends the text as is: Upstash wants the flag, and our
    /// local server strips it).
    pub fn with_parts<R>(
        &self,
        as_eval: bool,
        stock_redis: bool,
        f: impl FnOnce(&[&str]) -> R,
    ) -> R {
        match self {
            Command::Script { script, keys, args } => {
                let count = keys.len().to_string();
                let mut parts: Vec<&str> = Vec::with_capacity(3 + keys.len() + args.len());
                match (as_eval, stock_redis) {
                    (true, false) => parts.extend(["EVAL", script.source]),
                    (true, true) => parts.extend(["EVAL", script.stock_source()]),
                    (false, false) => parts.extend(["EVALSHA", script.sha1()]),
                    (false, true) => parts.extend(["EVALSHA", script.stock_sha1()]),
                }
                parts.push(&count);
                parts.extend(keys.iter().map(String::as_str));
                parts.extend(args.iter().map(String::as_str));
                f(&parts)
            }
            Command::Plain(plain) => {
                let parts: Vec<&str> = plain.iter().map(String::as_str).collect();
                f(&parts)
            }
        }
    }

    pub fn is_script(&self) -> bool {
        matches!(self, Command::Script { .. })
    }
}

/// How one attempt failed: `NotRun` when the commands certainly did not execute (safe to send
/// again: no double counting), `Failed` otherwise.
pub enum Attempt {
    NotRun(StoreError),
    Failed(StoreError),
}

/// The `/pipeline` body for these commands: `[[...],[...]]`, each item a JSON array of strings,
/// written straight into the body (no `serde_json::Value` tree, no copy of each part).
pub fn write_body(commands: &[&Command], as_eval: bool) -> Result<Vec<u8>, StoreError> {
    let mut body = Vec::with_capacity(1024);
    body.push(b'[');
    for (i, command) in commands.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        write_item(&mut body, command, as_eval)?;
    }
    body.push(b']');
    Ok(body)
}

/// One command of a `/pipeline` body (a JSON array of strings), appended to `body`.
pub fn write_item(body: &mut Vec<u8>, command: &Command, as_eval: bool) -> Result<(), StoreError> {
    command.with_parts(as_eval, false, |parts| {
        serde_json::to_writer(&mut *body, parts).map_err(|e| StoreError::Internal(e.to_string()))
    })
}

/// A `/pipeline` answer's items, or how the whole request failed: 502/503 mean the REST server
/// could not reach Redis (nothing ran, worth sending again); any other non-2xx answer and a
/// body that is not a JSON array fail every item. Shared by both REST transports.
pub fn answer_items(
    status: u16,
    body: &[u8],
    token: &str,
) -> Result<Vec<Result<Reply, StoreError>>, Attempt> {
    if !(200..300).contains(&status) {
        let message = match serde_json::from_slice::<Json>(body) {
            Ok(Json::Object(map)) => match map.get("error") {
                Some(Json::String(err)) => scrub(err.clone(), token),
                _ => snippet(body, token),
            },
            _ => snippet(body, token),
        };
        let err = StoreError::Http { status, message };
        return Err(if matches!(status, 502 | 503) {
            Attempt::NotRun(err)
        } else {
            Attempt::Failed(err)
        });
    }
    decode_pipeline(body).ok_or_else(|| {
        Attempt::Failed(StoreError::BadResponse(format!(
            "expected a JSON array from /pipeline, got: {}",
            snippet(body, token)
        )))
    })
}

/// Removes the token from text that came from elsewhere (a server may echo request headers).
pub fn scrub(text: String, token: &str) -> String {
    if token.is_empty() || !text.contains(token) {
        return text;
    }
    text.replace(token, "[redacted]")
}

/// The start of a body, for an error message, without the token.
fn snippet(bytes: &[u8], token: &str) -> String {
    scrub(truncated(bytes), token)
}

fn truncated(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// A 200 answer's items; `None` when the body is not a JSON array.
fn decode_pipeline(body: &[u8]) -> Option<Vec<Result<Reply, StoreError>>> {
    match serde_json::from_slice::<PipelineAnswer>(body) {
        Ok(PipelineAnswer(items)) => Some(items),
        Err(_) => decode_pipeline_via_value(body),
    }
}

/// The general decoder: through a `Value` tree, with a message for every unexpected shape.
fn decode_pipeline_via_value(body: &[u8]) -> Option<Vec<Result<Reply, StoreError>>> {
    match serde_json::from_slice::<Json>(body) {
        Ok(Json::Array(items)) => Some(items.iter().map(decode_item).collect()),
        _ => None,
    }
}

fn decode_item(item: &Json) -> Result<Reply, StoreError> {
    match item {
        Json::Object(map) => {
            if let Some(err) = map.get("error") {
                return Err(StoreError::Redis(match err {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                }));
            }
            match map.get("result") {
                Some(result) => decode_value(result, true),
                None => Err(StoreError::BadResponse(
                    "a pipeline item has neither result nor error".into(),
                )),
            }
        }
        other => Err(StoreError::BadResponse(format!(
            "unexpected pipeline item: {}",
            truncated(other.to_string().as_bytes())
        ))),
    }
}

/// Undoes `Upstash-Encoding: base64`: strings are base64 except a top-level "OK".
fn decode_value(value: &Json, top_level: bool) -> Result<Reply, StoreError> {
    match value {
        Json::Null => Ok(Reply::Nil),
        Json::Number(n) => n
            .as_i64()
            .map(Reply::Int)
            .or_else(|| n.as_f64().map(|f| Reply::Bytes(f.to_string().into_bytes())))
            .ok_or_else(|| StoreError::BadResponse(format!("unexpected number {n}"))),
        Json::String(s) if top_level && s == "OK" => Ok(Reply::Bytes(b"OK".to_vec())),
        Json::String(s) => STANDARD
            .decode(s)
            .map(Reply::Bytes)
            .map_err(|_| StoreError::BadResponse(format!("a reply string is not base64: {s:?}"))),
        Json::Array(items) => items
            .iter()
            .map(|v| decode_value(v, false))
            .collect::<Result<Vec<_>, _>>()
            .map(Reply::Array),
        Json::Bool(b) => Ok(Reply::Int(i64::from(*b))),
        Json::Object(_) => Err(StoreError::BadResponse(
            "unexpected object in a reply".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct decoder gives exactly what the `Value` decoder gives, item by item, message
    /// by message, and leaves to it what it does not expect.
    #[test]
    fn the_direct_decoder_agrees_with_the_value_decoder() {
        // Arrays of item objects: the direct decoder reads them itself.
        let well_formed = [
            r#"[]"#,
            r#"[{"result":1},{"result":-7},{"result":null},{"result":"T0s="},{"result":"OK"}]"#,
            r#"[{"result":[1,null,"YWJj",[2,"eA==",[]],"OK"]}]"#,
            r#"[{"error":"ERR boom"},{"error":{"code":1}},{"error":null},{"result":1,"error":"both"}]"#,
            r#"[{"result":1.5},{"result":18446744073709551615},{"result":9223372036854775807},{"result":true}]"#,
            r#"[{"result":{"a":[1,2]}},{"result":"not base64!"},{"result":[1,"%%",{"x":1},2]},{}]"#,
            r#"[{"other":[1,{"y":2}],"result":"T0\u0073="},{"result":1,"result":2}]"#,
            r#"[{"result":"\u00e9"},{"result":[[["T0s="]]]}]"#,
        ];
        for body in well_formed {
            let direct = serde_json::from_slice::<PipelineAnswer>(body.as_bytes())
                .unwrap_or_else(|e| panic!("{body}: {e}"))
                .0;
            assert_eq!(
                Some(direct),
                decode_pipeline_via_value(body.as_bytes()),
                "{body}"
            );
        }
        // Anything else: the direct decoder gives up and the general one answers.
        let other = [
            r#"[1]"#,
            r#"[{"result":1},"text"]"#,
            r#"{"result":1}"#,
            r#"not json"#,
            r#"[{"result":1}"#,
        ];
        for body in other {
            assert!(
                serde_json::from_slice::<PipelineAnswer>(body.as_bytes()).is_err(),
                "{body}"
            );
            assert_eq!(
                decode_pipeline(body.as_bytes()),
                decode_pipeline_via_value(body.as_bytes()),
                "{body}"
            );
        }
        assert_eq!(
            decode_pipeline(br#"[{"result":"T0s="},{"error":"E"},{"result":[1,"eA=="]}]"#),
            Some(vec![
                Ok(Reply::Bytes(b"OK".to_vec())),
                Err(StoreError::Redis("E".into())),
                Ok(Reply::Array(vec![
                    Reply::Int(1),
                    Reply::Bytes(b"x".to_vec())
                ])),
            ])
        );
        assert_eq!(decode_pipeline(br#"[1]"#).map(|items| items.len()), Some(1));
    }
}
