//! One batch as one `POST {url}/pipeline`, like `rest_transport.rs`, but the bytes travel on a
//! socket the caller owns: the Node binding keeps its sockets on Node's own event loop, so a
//! call costs no thread hop (the reqwest client answers on a runtime thread, and handing the
//! request over and the answer back cost two wakeups, about half of a warm call's client CPU).
//!
//! This side is sans-I/O: [`WireTransport::send`] writes the request bytes into an outbox and
//! waits; the owner takes them ([`WireTransport::take_request`]), writes them to a connection
//! of its own, and feeds back what the connection reads ([`WireTransport::receive`]), or how it
//! failed ([`WireTransport::fail`]). The answer is decoded exactly as on the reqwest path.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::http_response::{HttpResponse, ResponseReader};
use crate::rest_transport::parse_endpoint;
use ratelimit_core::pipeline::{answer_items, scrub, write_body as pipeline_body};
use ratelimit_core::pipeline::{Attempt, Command};
use ratelimit_core::reply::{Reply, StoreError};

/// Where the owner connects (`host` without IPv6 brackets, ready for a socket API).
#[derive(Debug, Clone, PartialEq)]
pub struct WireTarget {
    pub host: String,
    pub port: u16,
}

/// What one chunk of bytes did to its exchange.
#[derive(Debug, PartialEq)]
pub enum Received {
    /// More bytes are needed.
    Pending,
    /// The answer is complete; `close`: the server will not take another request on it.
    Done { close: bool },
    /// No exchange waits under that id (it failed or was given up): the connection's bytes can
    /// no longer be framed, close it.
    Unknown,
    /// The bytes are not a well-formed answer; the exchange failed, close the connection.
    Broken,
}

/// How a connection failed an exchange.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WireFailure {
    /// Nothing listens (connection refused): the request certainly did not run.
    Refused,
    /// Could not connect for another reason (e.g. an unknown host).
    Connect,
    /// No answer within the request timeout.
    TimedOut,
    /// The connection broke after the request may have been written.
    Broken,
}

type Answer = Result<HttpResponse, Attempt>;

struct Exchange {
    reader: ResponseReader,
    reply: oneshot::Sender<Answer>,
}

#[derive(Default)]
struct State {
    next_id: u32,
    outbox: VecDeque<(u32, Vec<u8>)>,
    waiting: HashMap<u32, Exchange>,
}

pub(crate) struct WireTransport {
    target: WireTarget,
    /// The request line and headers up to `Content-Length: ` (the token is in it).
    head: Vec<u8>,
    /// Host and port only: what error messages may show.
    display_host: String,
    /// Kept only to scrub it from anything a server echoes back into an error.
    token: String,
    state: Mutex<State>,
}

impl WireTransport {
    pub(crate) fn new(url: &str, token: &str) -> Result<Self, StoreError> {
        // https:// stays on the reqwest transport (rustls, the system's certificate store).
        let parsed = parse_endpoint(url, token, &["http"])?;
        // What an HTTP header value may hold (as reqwest checks it): no control characters, so
        // a token can never end the header early and inject one of its own.
        if token.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
            return Err(StoreError::InvalidConfig(
                "the Upstash REST token contains invalid characters".into(),
            ));
        }
        let Some(host) = parsed.host_str() else {
            return Err(StoreError::InvalidConfig(
                "invalid Upstash REST URL: no host".into(),
            ));
        };
        let port = parsed.port_or_known_default().unwrap_or(80);
        let display_host = format!("{host}:{port}");
        let host_header = match parsed.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let path = format!("{}/pipeline", parsed.path().trim_end_matches('/'));
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host_header}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nUpstash-Encoding: base64\r\nContent-Length: "
        )
        .into_bytes();
        Ok(WireTransport {
            target: WireTarget {
                host: host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                port,
            },
            head,
            display_host,
            token: token.to_string(),
            state: Mutex::new(State::default()),
        })
    }

    pub(crate) fn target(&self) -> &WireTarget {
        &self.target
    }

    /// Puts one pipeline in the outbox and waits for its answer.
    pub(crate) async fn send(
        &self,
        commands: &[&Command],
        as_eval: bool,
    ) -> Result<Vec<Result<Reply, StoreError>>, Attempt> {
        let body = pipeline_body(commands, as_eval).map_err(Attempt::Failed)?;
        let mut request = Vec::with_capacity(self.head.len() + 16 + body.len());
        request.extend_from_slice(&self.head);
        request.extend_from_slice(body.len().to_string().as_bytes());
        request.extend_from_slice(b"\r\n\r\n");
        request.extend_from_slice(&body);
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.lock()?;
            let id = state.next_id;
            state.next_id = state.next_id.wrapping_add(1);
            state.outbox.push_back((id, request));
            state.waiting.insert(
                id,
                Exchange {
                    reader: ResponseReader::default(),
                    reply: tx,
                },
            );
        }
        let response = rx.await.map_err(|_| {
            Attempt::Failed(StoreError::Transport(format!(
                "request to {}: the connection was dropped",
                self.display_host
            )))
        })??;
        answer_items(response.status, &response.body, &self.token)
    }

    /// The next request to write, with the id its answer is fed back under.
    pub(crate) fn take_request(&self) -> Option<(u32, Vec<u8>)> {
        self.lock().ok()?.outbox.pop_front()
    }

    pub(crate) fn waiting_requests(&self) -> usize {
        self.lock().map(|s| s.outbox.len()).unwrap_or(0)
    }

    /// Bytes a connection read for exchange `id` (an empty `chunk` with `eof`: it ended).
    pub(crate) fn receive(&self, id: u32, chunk: &[u8], eof: bool) -> Received {
        let Ok(mut state) = self.lock() else {
            return Received::Unknown;
        };
        let Some(exchange) = state.waiting.get_mut(&id) else {
            return Received::Unknown;
        };
        let fed = match exchange.reader.feed(chunk) {
            Ok(None) if eof => Ok(exchange.reader.end()),
            other => other,
        };
        match fed {
            Ok(None) if !eof => Received::Pending,
            Ok(Some(response)) => {
                let close = response.close;
                if let Some(exchange) = state.waiting.remove(&id) {
                    let _ = exchange.reply.send(Ok(response));
                }
                Received::Done { close }
            }
            Ok(None) => {
                let started = exchange.reader.started();
                drop(state);
                let what = if started {
                    "the connection closed in the middle of the answer"
                } else {
                    "the connection closed before an answer"
                };
                self.fail(id, WireFailure::Broken, what);
                Received::Broken
            }
            Err(reason) => {
                drop(state);
                self.fail(id, WireFailure::Broken, &reason);
                Received::Broken
            }
        }
    }

    /// Exchange `id` failed on its connection (`detail`: the socket's own error text).
    pub(crate) fn fail(&self, id: u32, failure: WireFailure, detail: &str) {
        let Some(exchange) = self.lock().ok().and_then(|mut s| s.waiting.remove(&id)) else {
            return;
        };
        let kind = match failure {
            WireFailure::Refused | WireFailure::Connect => "could not connect",
            WireFailure::TimedOut => "timed out",
            WireFailure::Broken => "failed",
        };
        let err = StoreError::Transport(scrub(
            format!("request to {} {kind}: {detail}", self.display_host),
            &self.token,
        ));
        let attempt = match failure {
            WireFailure::Refused => Attempt::NotRun(err),
            _ => Attempt::Failed(err),
        };
        let _ = exchange.reply.send(Err(attempt));
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, Attempt> {
        self.state
            .lock()
            .map_err(|_| Attempt::Failed(StoreError::Internal("wire state poisoned".into())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_a_pipeline_post_with_the_token_and_encoding() {
        let wire = WireTransport::new("http://127.0.0.1:8079/base/", "t0k").unwrap();
        assert_eq!(
            wire.target(),
            &WireTarget {
                host: "127.0.0.1".into(),
                port: 8079
            }
        );
        let command = Command::Plain(vec!["GET".into(), "k\"ey".into()]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let answer = rt.block_on(async {
            let commands = [&command];
            let send = wire.send(&commands, false);
            tokio::pin!(send);
            assert!(futures_poll_once(send.as_mut()).await.is_none());
            let (id, request) = wire.take_request().unwrap();
            assert_eq!(
                String::from_utf8(request).unwrap(),
                "POST /base/pipeline HTTP/1.1\r\nHost: 127.0.0.1:8079\r\nAuthorization: Bearer t0k\r\n\
                 Content-Type: application/json\r\nUpstash-Encoding: base64\r\nContent-Length: 17\r\n\r\n\
                 [[\"GET\",\"k\\\"ey\"]]"
            );
            assert_eq!(
                wire.receive(id, b"HTTP/1.1 200 OK\r\nContent-Length: 2", false),
                Received::Pending
            );
            assert_eq!(
                wire.receive(id, b"0\r\n\r\n[{\"result\":\"T0s=\"}]XY", false),
                Received::Broken,
                "a Content-Length shorter than the body"
            );
            send.await
        });
        assert!(
            matches!(answer, Err(Attempt::Failed(StoreError::Transport(m))) if m.contains("more than one answer"))
        );
        assert_eq!(wire.receive(7, b"x", false), Received::Unknown);
    }

    #[test]
    fn refused_is_not_run_and_errors_never_carry_the_token() {
        let wire = WireTransport::new("http://localhost", "secret-token").unwrap();
        assert_eq!(wire.target().port, 80);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let command = Command::Plain(vec!["PING".into()]);
        let (refused, other) = rt.block_on(async {
            let commands = [&command];
            let first = wire.send(&commands, false);
            tokio::pin!(first);
            assert!(futures_poll_once(first.as_mut()).await.is_none());
            let (id, _) = wire.take_request().unwrap();
            wire.fail(id, WireFailure::Refused, "connect ECONNREFUSED");
            let refused = first.await;
            let second = wire.send(&commands, false);
            tokio::pin!(second);
            assert!(futures_poll_once(second.as_mut()).await.is_none());
            let (id, _) = wire.take_request().unwrap();
            wire.receive(
                id,
                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 40\r\n\r\n{\"error\":\"bad token secret-token given\"}",
                false,
            );
            (refused, second.await)
        });
        assert!(
            matches!(refused, Err(Attempt::NotRun(StoreError::Transport(m))) if m == "request to localhost:80 could not connect: connect ECONNREFUSED")
        );
        match other {
            Err(Attempt::Failed(StoreError::Http { status, message })) => {
                assert_eq!(status, 401);
                assert_eq!(message, "bad token [redacted] given");
            }
            _ => panic!("expected a 401"),
        }
        assert!(WireTransport::new("http://h", "a\r\nX-Injected: 1").is_err());
        assert!(WireTransport::new("https://h", "t").is_err());
    }

    /// Polls a future once: `Some(output)` if it finished.
    async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        let mut f = f;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
