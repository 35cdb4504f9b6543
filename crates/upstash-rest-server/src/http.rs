//! The HTTP surface: routing, authentication, body limits and JSON answers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use serde_json::json;

use crate::args::{parse_command, parse_commands, BadBody};
use crate::config::ServerConfig;
use crate::encoding::{result_json, Encoding, ItemsJson, ResultJson};
use crate::executor::{Executor, MultiOutcome, Reply, Unavailable};

pub struct AppState {
    token: String,
    base_path: String,
    max_body_bytes: usize,
    executor: Executor,
    pub(crate) stats: Arc<Stats>,
}

/// Counters for tests and benchmarks: how many authorized command requests arrived and how
/// many Redis commands they carried.
#[derive(Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub commands: AtomicU64,
}

impl Stats {
    fn count(&self, commands: usize) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.commands.fetch_add(commands as u64, Ordering::Relaxed);
    }
}

impl AppState {
    pub fn new(config: ServerConfig, executor: Executor) -> Self {
        AppState {
            base_path: config.normalized_base_path(),
            token: config.token,
            max_body_bytes: config.max_body_bytes,
            executor,
            stats: Arc::default(),
        }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Endpoint {
    Single,
    Pipeline,
    MultiExec,
}

fn route(path: &str, base_path: &str) -> Option<Endpoint> {
    let rest = path.strip_prefix(base_path)?.trim_end_matches('/');
    match rest {
        "" => Some(Endpoint::Single),
        "/pipeline" => Some(Endpoint::Pipeline),
        "/multi-exec" => Some(Endpoint::MultiExec),
        _ => None,
    }
}

fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{\"error\":\"ERR\"}".to_vec());
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn error_response(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({ "error": message }))
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| given == token)
}

fn encoding(headers: &HeaderMap) -> Encoding {
    match headers
        .get("upstash-encoding")
        .and_then(|v| v.to_str().ok())
    {
        Some(v) if v.trim().eq_ignore_ascii_case("base64") => Encoding::Base64,
        _ => Encoding::Utf8,
    }
}

fn unavailable_response(err: Unavailable) -> Response {
    match err {
        Unavailable::Unreachable(msg) => error_response(StatusCode::BAD_GATEWAY, &msg),
        Unavailable::TimedOut(msg) => error_response(StatusCode::GATEWAY_TIMEOUT, &msg),
    }
}

async fn handle(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let method = request.method().clone();
    if !matches!(
        method,
        Method::GET | Method::POST | Method::PUT | Method::HEAD
    ) {
        let mut response = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("ERR method {method} is not allowed; send commands with POST"),
        );
        response.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_static("GET, POST, PUT, HEAD"),
        );
        return response;
    }
    if !authorized(request.headers(), &state.token) {
        return error_response(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let Some(endpoint) = route(request.uri().path(), &state.base_path) else {
        return error_response(
            StatusCode::NOT_FOUND,
            &format!(
                "ERR unknown path {}; use {}/, {}/pipeline or {}/multi-exec",
                request.uri().path(),
                state.base_path,
                state.base_path,
                state.base_path
            ),
        );
    };
    if matches!(method, Method::GET | Method::HEAD) {
        return error_response(
            StatusCode::BAD_REQUEST,
            "ERR path-style commands are not supported by this server; POST a JSON body such as [\"GET\",\"key\"]",
        );
    }
    let encoding = encoding(request.headers());
    let body = match axum::body::to_bytes(request.into_body(), state.max_body_bytes).await {
        Ok(body) => body,
        Err(err) => {
            let too_large = err
                .into_inner()
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            return if too_large {
                error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!(
                        "ERR request body is larger than {} bytes",
                        state.max_body_bytes
                    ),
                )
            } else {
                error_response(
                    StatusCode::BAD_REQUEST,
                    "ERR could not read the request body",
                )
            };
        }
    };
    match endpoint {
        Endpoint::Single => single(&state, &body, encoding).await,
        Endpoint::Pipeline => pipeline(&state, &body, encoding).await,
        Endpoint::MultiExec => multi_exec(&state, &body, encoding).await,
    }
}

/// The answer to a single command: `{"result": …}`.
#[derive(serde::Serialize)]
struct SingleResult<'a> {
    result: ResultJson<'a>,
}

async fn single(state: &AppState, body: &[u8], encoding: Encoding) -> Response {
    let command = match parse_command(body) {
        Ok(c) => c,
        Err(BadBody(msg)) => return error_response(StatusCode::BAD_REQUEST, &msg),
    };
    state.stats.count(1);
    match state.executor.run_pipeline(vec![command]).await {
        Ok(replies) => match replies.into_iter().next() {
            Some(Reply::Value(v)) => json_response(
                StatusCode::OK,
                &SingleResult {
                    result: result_json(&v, encoding),
                },
            ),
            Some(Reply::Error(e)) => error_response(StatusCode::BAD_REQUEST, &e),
            None => error_response(StatusCode::BAD_GATEWAY, "ERR missing reply from Redis"),
        },
        Err(err) => unavailable_response(err),
    }
}

async fn pipeline(state: &AppState, body: &[u8], encoding: Encoding) -> Response {
    let commands = match parse_commands(body) {
        Ok(c) => c,
        Err(BadBody(msg)) => return error_response(StatusCode::BAD_REQUEST, &msg),
    };
    state.stats.count(commands.len());
    match state.executor.run_pipeline(commands).await {
        Ok(replies) => json_response(StatusCode::OK, &ItemsJson(&replies, encoding)),
        Err(err) => unavailable_response(err),
    }
}

async fn multi_exec(state: &AppState, body: &[u8], encoding: Encoding) -> Response {
    let commands = match parse_commands(body) {
        Ok(c) => c,
        Err(BadBody(msg)) => return error_response(StatusCode::BAD_REQUEST, &msg),
    };
    state.stats.count(commands.len());
    match state.executor.run_multi(commands).await {
        Ok(MultiOutcome::Committed(replies)) => {
            json_response(StatusCode::OK, &ItemsJson(&replies, encoding))
        }
        Ok(MultiOutcome::Aborted(msg)) => error_response(StatusCode::BAD_REQUEST, &msg),
        Err(err) => unavailable_response(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_with_trailing_slashes_and_base_paths() {
        assert_eq!(route("/", ""), Some(Endpoint::Single));
        assert_eq!(route("", ""), Some(Endpoint::Single));
        assert_eq!(route("/pipeline/", ""), Some(Endpoint::Pipeline));
        assert_eq!(route("/multi-exec", ""), Some(Endpoint::MultiExec));
        assert_eq!(route("/redis/pipeline", "/redis"), Some(Endpoint::Pipeline));
        assert_eq!(route("/redis/", "/redis"), Some(Endpoint::Single));
        assert_eq!(route("/redisx/pipeline", "/redis"), None);
        assert_eq!(route("/pipeline", "/redis"), None);
        assert_eq!(route("/other", ""), None);
    }
}
