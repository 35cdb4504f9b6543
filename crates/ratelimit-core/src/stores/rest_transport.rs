//! One batch as one `POST {url}/pipeline` to an Upstash REST endpoint: the body is written
//! straight from the commands, the answer is decoded from `Upstash-Encoding: base64`, and no
//! error text ever carries the token.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value as Json;

use crate::stores::pipeline_answer::PipelineAnswer;
use crate::stores::remote::{Attempt, Command};
use crate::stores::{Reply, StoreError};

pub(crate) struct RestTransport {
    http: reqwest::Client,
    /// Parsed once: reqwest parses a text URL on every request (with IDNA host checks), about
    /// as much work as building the whole pipeline body.
    pipeline_url: reqwest::Url,
    /// Host and port only: what error messages may show.
    display_host: String,
    /// Kept only to scrub it from anything a server echoes back into an error.
    token: String,
    headers: HeaderMap,
}

impl RestTransport {
    pub(crate) fn new(
        url: &str,
        token: &str,
        request_timeout: Duration,
        accept_invalid_certs: bool,
    ) -> Result<Self, StoreError> {
        let parsed = parse_endpoint(url, token, &["http", "https"])?;
        let display_host = match (parsed.host_str(), parsed.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            _ => "<no host>".into(),
        };
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            StoreError::InvalidConfig("the Upstash REST token contains invalid characters".into())
        })?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert("upstash-encoding", HeaderValue::from_static("base64"));
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .timeout(request_timeout)
            .tls_danger_accept_invalid_certs(accept_invalid_certs)
            .build()
            .map_err(|e| StoreError::InvalidConfig(format!("cannot build the HTTP client: {e}")))?;
        let base = url.trim_end_matches('/');
        let pipeline_url = reqwest::Url::parse(&format!("{base}/pipeline"))
            .map_err(|e| StoreError::InvalidConfig(format!("invalid Upstash REST URL: {e}")))?;
        Ok(RestTransport {
            http,
            pipeline_url,
            display_host,
            token: token.to_string(),
            headers,
        })
    }

    /// POSTs one pipeline once; a transport or HTTP-level failure fails every item.
    pub(crate) async fn send(
        &self,
        commands: &[&Command],
        as_eval: bool,
    ) -> Result<Vec<Result<Reply, StoreError>>, Attempt> {
        let body = pipeline_body(commands, as_eval).map_err(Attempt::Failed)?;
        let response = self
            .http
            .post(self.pipeline_url.clone())
            .headers(self.headers.clone())
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if connection_refused(&e) {
                    Attempt::NotRun(self.transport_error(e))
                } else {
                    Attempt::Failed(self.transport_error(e))
                }
            })?;
        let status = response.status().as_u16();
        let text = response
            .bytes()
            .await
            .map_err(|e| Attempt::Failed(self.transport_error(e)))?;
        answer_items(status, &text, &self.token)
    }

    fn transport_error(&self, err: reqwest::Error) -> StoreError {
        let kind = if err.is_timeout() {
            "timed out"
        } else if err.is_connect() {
            "could not connect"
        } else {
            "failed"
        };
        // `without_url` keeps credentials that might sit in the URL out of the message; the
        // causes say what actually happened (e.g. an invalid certificate, a reset connection).
        let err = err.without_url();
        let mut message = format!("request to {} {kind}: {err}", self.display_host);
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        StoreError::Transport(scrub(message, &self.token))
    }
}

/// The endpoint's URL, if its scheme is one of `schemes`, with the token checked not to be
/// empty. Shared by both REST transports.
pub(crate) fn parse_endpoint(
    url: &str,
    token: &str,
    schemes: &[&str],
) -> Result<reqwest::Url, StoreError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| StoreError::InvalidConfig(format!("invalid Upstash REST URL: {e}")))?;
    if !schemes.contains(&parsed.scheme()) {
        let allowed: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
        return Err(StoreError::InvalidConfig(format!(
            "the Upstash REST URL must start with {}, got scheme {:?}",
            allowed.join(" or "),
            parsed.scheme()
        )));
    }
    if token.is_empty() {
        return Err(StoreError::InvalidConfig(
            "the Upstash REST token is empty".into(),
        ));
    }
    Ok(parsed)
}

/// A `/pipeline` answer's items, or how the whole request failed: 502/503 mean the REST server
/// could not reach Redis (nothing ran, worth sending again); any other non-2xx answer and a
/// body that is not a JSON array fail every item. Shared by both REST transports.
pub(crate) fn answer_items(
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
pub(crate) fn scrub(text: String, token: &str) -> String {
    if token.is_empty() || !text.contains(token) {
        return text;
    }
    text.replace(token, "[redacted]")
}

/// The start of a body, for an error message, without the token.
fn snippet(bytes: &[u8], token: &str) -> String {
    scrub(truncated(bytes), token)
}

/// The `/pipeline` body for these commands: `[[...],[...]]`, each item a JSON array of strings,
/// written straight into the body (no `serde_json::Value` tree, no copy of each part).
pub(crate) fn pipeline_body(commands: &[&Command], as_eval: bool) -> Result<Vec<u8>, StoreError> {
    let mut body = Vec::with_capacity(1024);
    body.push(b'[');
    for (i, command) in commands.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        command.with_parts(as_eval, false, |parts| {
            serde_json::to_writer(&mut body, parts).map_err(|e| StoreError::Internal(e.to_string()))
        })?;
    }
    body.push(b']');
    Ok(body)
}

/// Whether the connection was refused (nothing listening yet, e.g. a server restarting): the
/// only transport failure after which the request certainly did not run and is worth resending.
/// A TLS failure is also a "connect" error, but resending cannot fix a certificate.
fn connection_refused(err: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotConnected
            );
        }
        source = cause.source();
    }
    false
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
