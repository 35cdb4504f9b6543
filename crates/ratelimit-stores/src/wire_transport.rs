//! One batch over a socket the caller owns: the Node binding keeps its sockets on Node's own
//! event loop, so a call costs no thread hop (the reqwest client and the redis-rs connection
//! answer on a runtime thread, and handing the request over and the answer back cost two
//! wakeups, about half of a warm call's client CPU). Two protocols travel this way:
//! - Upstash REST on `http://`: one `POST {url}/pipeline`, decoded exactly as on the reqwest
//!   path (`rest_transport.rs`);
//! - Redis on `redis://`: one RESP pipeline, the scripts without the key-locking line, replies
//!   read by redis-rs' decoder and turned into items as on `redis_tcp.rs`; a new connection's
//!   first request goes out behind its greeting (AUTH, SELECT, HELLO as the URL asks).
//!
//! This side is sans-I/O: [`WireTransport::send`] writes the request bytes into an outbox and
//! waits; the owner takes them ([`WireTransport::take_request`]), writes them to a connection
//! of its own, and feeds back what the connection reads ([`WireTransport::receive`]), or how it
//! failed ([`WireTransport::fail`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use redis::{IntoConnectionInfo, ProtocolVersion, Value};
use tokio::sync::oneshot;

use crate::http_response::{HttpResponse, ResponseReader};
use crate::redis_tcp::{cmd_of, reply_of, scrub_passwords, RedisUrl};
use crate::resp_answer::RespAnswer;
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

/// What is written, and how answers are read.
enum Protocol {
    /// Upstash REST. `head`: the request line and headers up to `Content-Length: ` (the token
    /// is in it); `token` is kept only to scrub it from anything a server echoes back.
    Rest { head: Vec<u8>, token: String },
    /// Redis. `greeting`: what a new connection sends first, answered by `greeting_replies`
    /// replies; `passwords` are kept only to scrub them from error texts.
    Resp {
        greeting: Vec<u8>,
        greeting_replies: usize,
        passwords: Vec<String>,
    },
}

/// One exchange's answer as it is read.
enum Reader {
    Http(ResponseReader),
    Resp(RespAnswer),
}

/// A complete answer.
enum Answered {
    Http(HttpResponse),
    /// The greeting's replies, then the commands'.
    Resp(Vec<Value>, Vec<Value>),
}

type Answer = Result<Answered, Attempt>;

struct Exchange {
    reader: Reader,
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
    protocol: Protocol,
    /// What error messages may show of the server: `host:port` (`Redis at host:port`).
    display_host: String,
    state: Mutex<State>,
}

impl WireTransport {
    /// An Upstash REST endpoint on `http://` with its token.
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
                host: unbracketed(host),
                port,
            },
            protocol: Protocol::Rest {
                head,
                token: token.to_string(),
            },
            display_host,
            state: Mutex::new(State::default()),
        })
    }

    /// A Redis server on `redis://[user][:password@]host[:port][/db]` (TLS stays on the runtime
    /// thread's rustls connection).
    pub(crate) fn redis(url: &str) -> Result<Self, StoreError> {
        let target = RedisUrl::parse(url, false)?;
        if !target.url.starts_with("redis:") {
            return Err(StoreError::InvalidConfig(
                "the event-loop Redis store takes redis:// URLs".into(),
            ));
        }
        let info = target.url.as_str().into_connection_info().map_err(|e| {
            StoreError::InvalidConfig(target.scrub(format!("invalid Redis URL: {e}")))
        })?;
        let redis::ConnectionAddr::Tcp(host, port) = info.addr().clone() else {
            return Err(StoreError::InvalidConfig(
                "the event-loop Redis store takes redis:// URLs".into(),
            ));
        };
        let settings = info.redis_settings();
        // What redis-rs' own connections send first, in the same cases.
        let mut greeting = Vec::new();
        let mut greeting_replies = 0;
        let password = settings.password().filter(|p| !p.is_empty());
        let user = settings.username().filter(|u| !u.is_empty());
        if settings.protocol() != ProtocolVersion::RESP2 {
            let mut hello = vec!["HELLO", "3"];
            if let Some(password) = password {
                hello.extend(["AUTH", user.unwrap_or("default"), password]);
            }
            cmd_of(&hello).write_packed_command(&mut greeting);
            greeting_replies += 1;
        } else if let Some(password) = password {
            let auth = match user {
                Some(user) => cmd_of(&["AUTH", user, password]),
                None => cmd_of(&["AUTH", password]),
            };
            auth.write_packed_command(&mut greeting);
            greeting_replies += 1;
        }
        if settings.db() != 0 {
            cmd_of(&["SELECT", &settings.db().to_string()]).write_packed_command(&mut greeting);
            greeting_replies += 1;
        }
        Ok(WireTransport {
            target: WireTarget {
                host: unbracketed(&host),
                port,
            },
            protocol: Protocol::Resp {
                greeting,
                greeting_replies,
                passwords: target.password.into_iter().collect(),
            },
            display_host: format!("Redis at {}", target.display),
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
        let (request, reader) = match &self.protocol {
            Protocol::Rest { head, .. } => {
                let body = pipeline_body(commands, as_eval).map_err(Attempt::Failed)?;
                let mut request = Vec::with_capacity(head.len() + 16 + body.len());
                request.extend_from_slice(head);
                request.extend_from_slice(body.len().to_string().as_bytes());
                request.extend_from_slice(b"\r\n\r\n");
                request.extend_from_slice(&body);
                (request, Reader::Http(ResponseReader::default()))
            }
            Protocol::Resp { .. } => {
                let mut request = Vec::with_capacity(64 * commands.len());
                for command in commands {
                    command
                        .with_parts(as_eval, true, cmd_of)
                        .write_packed_command(&mut request);
                }
                (request, Reader::Resp(RespAnswer::new(commands.len())))
            }
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.lock()?;
            let id = state.next_id;
            state.next_id = state.next_id.wrapping_add(1);
            state.outbox.push_back((id, request));
            state.waiting.insert(id, Exchange { reader, reply: tx });
        }
        let answered = rx.await.map_err(|_| {
            Attempt::Failed(StoreError::Transport(format!(
                "request to {}: the connection was dropped",
                self.display_host
            )))
        })??;
        match (answered, &self.protocol) {
            (Answered::Http(response), Protocol::Rest { token, .. }) => {
                answer_items(response.status, &response.body, token)
            }
            (Answered::Resp(greeting, replies), Protocol::Resp { passwords, .. }) => {
                let refused = greeting.into_iter().find_map(|v| match reply_of(v) {
                    Ok(_) => None,
                    Err(StoreError::Redis(text)) => Some(text),
                    Err(other) => Some(other.to_string()),
                });
                if let Some(refused) = refused {
                    // A refused password or database: waiting does not fix either.
                    let text = format!(
                        "request to {} could not connect: {refused}",
                        self.display_host
                    );
                    return Err(Attempt::Failed(StoreError::Transport(scrub_passwords(
                        text, passwords,
                    ))));
                }
                Ok(replies.into_iter().map(reply_of).collect())
            }
            _ => Err(Attempt::Failed(StoreError::Internal(
                "wire answer of the wrong protocol".into(),
            ))),
        }
    }

    /// The next request to write, with the id its answer is fed back under. `fresh`: it goes
    /// on a new connection (a Redis request then carries the connection's greeting first).
    pub(crate) fn take_request(&self, fresh: bool) -> Option<(u32, Vec<u8>)> {
        let mut state = self.lock().ok()?;
        let (id, mut request) = state.outbox.pop_front()?;
        if let Protocol::Resp {
            greeting,
            greeting_replies,
            ..
        } = &self.protocol
        {
            if fresh && *greeting_replies > 0 {
                if let Some(Exchange {
                    reader: Reader::Resp(answer),
                    ..
                }) = state.waiting.get_mut(&id)
                {
                    answer.expect_greeting(*greeting_replies);
                    request.splice(0..0, greeting.iter().copied());
                }
            }
        }
        Some((id, request))
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
        let fed: Result<Option<(Answered, bool)>, String> = match &mut exchange.reader {
            Reader::Http(reader) => match reader.feed(chunk) {
                Ok(None) if eof => Ok(reader.end()),
                other => other,
            }
            .map(|done| {
                done.map(|response| {
                    let close = response.close;
                    (Answered::Http(response), close)
                })
            }),
            Reader::Resp(answer) => answer.feed(chunk).map(|done| {
                done.then(|| {
                    // A refused greeting leaves the connection unauthenticated: not reusable.
                    let close = answer.greeting_refused();
                    let (greeting, replies) = std::mem::take(answer).finish();
                    (Answered::Resp(greeting, replies), close)
                })
            }),
        };
        match fed {
            Ok(None) if !eof => Received::Pending,
            Ok(Some((answered, close))) => {
                if let Some(exchange) = state.waiting.remove(&id) {
                    let _ = exchange.reply.send(Ok(answered));
                }
                Received::Done {
                    close: close || eof,
                }
            }
            Ok(None) => {
                let started = match &exchange.reader {
                    Reader::Http(reader) => reader.started(),
                    Reader::Resp(answer) => answer.started(),
                };
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
        let text = format!("request to {} {kind}: {detail}", self.display_host);
        let err = StoreError::Transport(match &self.protocol {
            Protocol::Rest { token, .. } => scrub(text, token),
            Protocol::Resp { passwords, .. } => scrub_passwords(text, passwords),
        });
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

/// A URL's host as a socket API takes it (an IPv6 address without its brackets).
fn unbracketed(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
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
            let (id, request) = wire.take_request(true).unwrap();
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
            let (id, _) = wire.take_request(true).unwrap();
            wire.fail(id, WireFailure::Refused, "connect ECONNREFUSED");
            let refused = first.await;
            let second = wire.send(&commands, false);
            tokio::pin!(second);
            assert!(futures_poll_once(second.as_mut()).await.is_none());
            let (id, _) = wire.take_request(true).unwrap();
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

    #[test]
    fn a_redis_request_carries_the_greeting_on_a_new_connection_only() {
        let wire = WireTransport::redis("redis://app:s3cret@[::1]:6390/2").unwrap();
        assert_eq!(
            wire.target(),
            &WireTarget {
                host: "::1".into(),
                port: 6390
            }
        );
        let script = Command::Plain(vec!["INCR".into(), "k".into()]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (first, second, refused) = rt.block_on(async {
            let commands = [&script];
            let first = wire.send(&commands, false);
            tokio::pin!(first);
            assert!(futures_poll_once(first.as_mut()).await.is_none());
            let (id, request) = wire.take_request(true).unwrap();
            assert_eq!(
                String::from_utf8(request).unwrap(),
                "*3\r\n$4\r\nAUTH\r\n$3\r\napp\r\n$6\r\ns3cret\r\n\
                 *2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n"
            );
            assert_eq!(
                wire.receive(id, b"+OK\r\n+OK\r\n", false),
                Received::Pending
            );
            assert_eq!(
                wire.receive(id, b":7\r\n", false),
                Received::Done { close: false }
            );
            let first = first.await;

            let second = wire.send(&commands, false);
            tokio::pin!(second);
            assert!(futures_poll_once(second.as_mut()).await.is_none());
            let (id, request) = wire.take_request(false).unwrap();
            assert_eq!(request, b"*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n");
            assert_eq!(
                wire.receive(id, b"-ERR wrong kind\r\n", false),
                Received::Done { close: false }
            );
            let second = second.await;

            let third = wire.send(&commands, false);
            tokio::pin!(third);
            assert!(futures_poll_once(third.as_mut()).await.is_none());
            let (id, _) = wire.take_request(true).unwrap();
            assert_eq!(
                wire.receive(
                    id,
                    b"-WRONGPASS s3cret is wrong\r\n-NOAUTH\r\n-NOAUTH\r\n",
                    false
                ),
                Received::Done { close: true },
                "a connection whose greeting was refused is not reused"
            );
            (first, second, third.await)
        });
        assert!(matches!(first.ok().as_deref(), Some([Ok(Reply::Int(7))])));
        assert!(
            matches!(second.ok().as_deref(), Some([Err(StoreError::Redis(m))]) if m == "ERR wrong kind")
        );
        match refused {
            Err(Attempt::Failed(StoreError::Transport(m))) => {
                assert!(
                    m.starts_with("request to Redis at [::1]:6390 could not connect: WRONGPASS"),
                    "{m}"
                );
                assert!(!m.contains("s3cret"), "{m}");
            }
            _ => panic!("expected the refused password"),
        }
        assert!(WireTransport::redis("rediss://h").is_err());
        assert!(WireTransport::redis("http://h").is_err());
        let plain = WireTransport::redis("redis://localhost").unwrap();
        assert!(matches!(
            &plain.protocol,
            Protocol::Resp {
                greeting_replies: 0,
                ..
            }
        ));
        assert_eq!(plain.target().port, 6379);
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
