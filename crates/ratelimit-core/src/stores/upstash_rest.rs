//! Client for the Upstash Redis REST API (or the local server in this workspace).
//!
//! Concurrent calls are coalesced: at most `max_in_flight` HTTP requests run at once, and every
//! call that arrives meanwhile joins the next `/pipeline` request, so a warm `limit()` costs at
//! most one HTTP round trip and a burst of N calls costs far fewer than N.
//!
//! With `deferred_flush` (what the Node binding uses) a call is only queued when it is made;
//! the caller flushes once per JS tick ([`UpstashRest::flush`]), so every call issued in the same
//! tick shares one request, like `@upstash/redis`' auto-pipelining. While calls are being queued
//! a watchdog sends anything a caller left unflushed within ~5 ms, so a call can be late but
//! never stuck. Scripts go out as
//! EVALSHA; items that come back NOSCRIPT are retried once as EVAL in a follow-up pipeline.
//! Responses are requested with `Upstash-Encoding: base64`, so strings keep their raw bytes.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value as Json;
use tokio::sync::oneshot;

use crate::scripts::Script;
use crate::stores::{Reply, StoreError};

/// Most commands per `/pipeline` request (what `@upstash/redis` uses too).
const MAX_BATCH: usize = 1000;

/// Waits before re-sending a request that certainly did not run (connection refused, or the
/// server answered 502/503 because it could not reach Redis): about 0.8 s in all, enough to ride
/// out a Redis or REST-server restart, short enough to stay inside the limiter's timeout.
const RETRY_BACKOFF_MS: [u64; 5] = [25, 50, 100, 200, 400];

/// Runs a future on the runtime the client lives on (the Node binding passes napi's runtime, so
/// calls made from the JS thread, which has no tokio context, can start work).
pub type Spawner = Arc<dyn Fn(Pin<Box<dyn Future<Output = ()> + Send>>) + Send + Sync>;

/// Connection settings for [`UpstashRest`].
#[derive(Clone)]
pub struct UpstashRestOptions {
    /// Concurrent HTTP requests; calls beyond that are batched into the next one.
    pub max_in_flight: usize,
    /// Upper bound for one HTTP request, so work in flight stays bounded during an outage.
    pub request_timeout: Duration,
    /// Accept TLS certificates that do not verify (self-signed local endpoints only).
    pub accept_invalid_certs: bool,
    /// Queue calls until [`UpstashRest::flush`] (or the ~5 ms watchdog) instead of sending at once.
    pub deferred_flush: bool,
    /// Where background work runs; `tokio::spawn` on the current runtime when `None`.
    pub spawner: Option<Spawner>,
    /// Runs after each request's replies have been delivered.
    pub batch_done: Option<BatchDone>,
}

impl Default for UpstashRestOptions {
    fn default() -> Self {
        UpstashRestOptions {
            max_in_flight: 4,
            request_timeout: Duration::from_secs(10),
            accept_invalid_certs: false,
            deferred_flush: false,
            spawner: None,
            batch_done: None,
        }
    }
}

/// One command in a batch.
enum Command {
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
    /// Appends the command as a JSON array of strings (the pipeline's item format). Written
    /// straight into the request body: no `serde_json::Value` tree, no copy of each part.
    fn write_json(&self, out: &mut Vec<u8>, as_eval: bool) -> Result<(), StoreError> {
        let mut parts: Vec<&str> = Vec::new();
        let count;
        let parts: &[&str] = match self {
            Command::Script { script, keys, args } => {
                count = keys.len().to_string();
                parts.reserve(3 + keys.len() + args.len());
                if as_eval {
                    parts.extend(["EVAL", script.source]);
                } else {
                    parts.extend(["EVALSHA", script.sha1()]);
                }
                parts.push(&count);
                parts.extend(keys.iter().map(String::as_str));
                parts.extend(args.iter().map(String::as_str));
                &parts
            }
            Command::Plain(plain) => {
                parts.extend(plain.iter().map(String::as_str));
                &parts
            }
        };
        serde_json::to_writer(out, parts).map_err(|e| StoreError::Internal(e.to_string()))
    }
}

/// The `/pipeline` body for these commands: `[[...],[...]]`.
fn pipeline_body<'a>(
    commands: impl Iterator<Item = &'a Command>,
    as_eval: bool,
) -> Result<Vec<u8>, StoreError> {
    let mut body = Vec::with_capacity(1024);
    body.push(b'[');
    for (i, command) in commands.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        command.write_json(&mut body, as_eval)?;
    }
    body.push(b']');
    Ok(body)
}

/// Where a call's reply goes: a future waiting on it, or a callback (the Node binding collects
/// replies this way and hands a whole batch to JS at once).
enum ReplyTo {
    Waiter(oneshot::Sender<Result<Reply, StoreError>>),
    Callback(Box<dyn FnOnce(Result<Reply, StoreError>) + Send>),
}

impl ReplyTo {
    fn send(self, reply: Result<Reply, StoreError>) {
        match self {
            ReplyTo::Waiter(tx) => {
                let _ = tx.send(reply);
            }
            ReplyTo::Callback(callback) => callback(reply),
        }
    }
}

struct Call {
    command: Command,
    reply: ReplyTo,
    /// When the caller stops waiting (its limiter's timeout). A call still queued then is
    /// dropped instead of sent: counting a request whose caller already answered without it
    /// would charge users for work nobody waited for, and an outage would pile up a backlog.
    deadline: Option<Instant>,
}

/// Called after the replies of one HTTP request have all been delivered.
pub type BatchDone = Arc<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Queue {
    pending: Vec<Call>,
    in_flight: usize,
    /// Deferred mode: the fallback flush watchdog is running.
    timer_armed: bool,
}

struct Inner {
    http: reqwest::Client,
    pipeline_url: String,
    /// Host and port only: what error messages may show.
    display_host: String,
    /// Kept only to scrub it from anything a server echoes back into an error.
    token: String,
    headers: HeaderMap,
    max_in_flight: usize,
    deferred_flush: bool,
    spawner: Option<Spawner>,
    batch_done: Option<BatchDone>,
    queue: Mutex<Queue>,
}

impl Inner {
    fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        match &self.spawner {
            Some(spawner) => spawner(Box::pin(fut)),
            None => {
                tokio::spawn(fut);
            }
        }
    }
}

/// A cheap-to-clone handle on one REST endpoint.
#[derive(Clone)]
pub struct UpstashRest {
    inner: Arc<Inner>,
}

impl UpstashRest {
    pub fn new(url: &str, token: &str, options: UpstashRestOptions) -> Result<Self, StoreError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| StoreError::InvalidConfig(format!("invalid Upstash REST URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(StoreError::InvalidConfig(format!(
                "the Upstash REST URL must start with http:// or https://, got scheme {:?}",
                parsed.scheme()
            )));
        }
        if token.is_empty() {
            return Err(StoreError::InvalidConfig(
                "the Upstash REST token is empty".into(),
            ));
        }
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
            .timeout(options.request_timeout)
            .tls_danger_accept_invalid_certs(options.accept_invalid_certs)
            .build()
            .map_err(|e| StoreError::InvalidConfig(format!("cannot build the HTTP client: {e}")))?;
        let base = url.trim_end_matches('/');
        Ok(UpstashRest {
            inner: Arc::new(Inner {
                http,
                pipeline_url: format!("{base}/pipeline"),
                display_host,
                token: token.to_string(),
                headers,
                max_in_flight: options.max_in_flight.max(1),
                deferred_flush: options.deferred_flush,
                spawner: options.spawner,
                batch_done: options.batch_done,
                queue: Mutex::new(Queue::default()),
            }),
        })
    }

    /// Runs a script (EVALSHA, then EVAL if Redis does not know it yet).
    pub async fn eval(
        &self,
        script: &'static Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<Reply, StoreError> {
        self.queue_eval(script, keys, args).await
    }

    /// Runs one plain command such as `["GET", key]`.
    pub async fn command(&self, parts: Vec<String>) -> Result<Reply, StoreError> {
        self.queue_command(parts).await
    }

    /// Queues a script call now (so calls made in one JS tick share a request) and returns the
    /// future of its reply.
    pub fn queue_eval(
        &self,
        script: &'static Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> impl Future<Output = Result<Reply, StoreError>> + Send + 'static {
        self.submit(Command::Script { script, keys, args })
    }

    /// Queues a plain command now; see [`UpstashRest::queue_eval`].
    pub fn queue_command(
        &self,
        parts: Vec<String>,
    ) -> impl Future<Output = Result<Reply, StoreError>> + Send + 'static {
        self.submit(Command::Plain(parts))
    }

    /// Queues a script call whose reply goes to `callback` (no future, no task per call).
    pub fn queue_eval_with(
        &self,
        script: &'static Script,
        keys: Vec<String>,
        args: Vec<String>,
        callback: Box<dyn FnOnce(Result<Reply, StoreError>) + Send>,
        wait_at_most: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.enqueue(
            Command::Script { script, keys, args },
            ReplyTo::Callback(callback),
            wait_at_most.map(|d| Instant::now() + d),
        )
    }

    /// Sends what is queued (deferred mode); a no-op when nothing is.
    pub fn flush(&self) {
        start_workers(&self.inner);
    }

    fn submit(
        &self,
        command: Command,
    ) -> impl Future<Output = Result<Reply, StoreError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let queued = self.enqueue(command, ReplyTo::Waiter(tx), None);
        async move {
            queued?;
            rx.await
                .map_err(|_| StoreError::Internal("the request was dropped".into()))?
        }
    }

    /// Puts a call in the queue; starts a worker now (immediate mode) or arms the fallback
    /// flush timer (deferred mode).
    fn enqueue(
        &self,
        command: Command,
        reply: ReplyTo,
        deadline: Option<Instant>,
    ) -> Result<(), StoreError> {
        let arm_timer = match self.inner.queue.lock() {
            Ok(mut queue) => {
                queue.pending.push(Call {
                    command,
                    reply,
                    deadline,
                });
                let arm = self.inner.deferred_flush && !queue.timer_armed;
                queue.timer_armed |= arm;
                arm
            }
            Err(_) => return Err(StoreError::Internal("request queue poisoned".into())),
        };
        if arm_timer {
            // One watchdog while there is traffic (not one timer per call): every 5 ms it sends
            // whatever a caller left unflushed, and it ends after 100 ms without queued calls.
            let inner = self.inner.clone();
            self.inner.spawn(async move {
                let mut idle_rounds = 0;
                loop {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    let pending = match inner.queue.lock() {
                        Ok(mut queue) => {
                            let pending = !queue.pending.is_empty();
                            idle_rounds = if pending { 0 } else { idle_rounds + 1 };
                            if idle_rounds >= 20 {
                                queue.timer_armed = false;
                                return;
                            }
                            pending
                        }
                        Err(_) => return,
                    };
                    if pending {
                        start_workers(&inner);
                    }
                }
            });
        } else if !self.inner.deferred_flush {
            start_workers(&self.inner);
        }
        Ok(())
    }
}

/// Starts a worker for queued calls when a request slot is free.
fn start_workers(inner: &Arc<Inner>) {
    let start = match inner.queue.lock() {
        Ok(mut queue) => {
            let start = !queue.pending.is_empty() && queue.in_flight < inner.max_in_flight;
            if start {
                queue.in_flight += 1;
            }
            start
        }
        Err(_) => false,
    };
    if start {
        inner.spawn(drain(inner.clone()));
    }
}

/// Sends batches until the queue is empty, then frees its in-flight slot.
async fn drain(inner: Arc<Inner>) {
    loop {
        let batch: Vec<Call> = {
            let Ok(mut queue) = inner.queue.lock() else {
                return;
            };
            if queue.pending.is_empty() {
                queue.in_flight -= 1;
                return;
            }
            let take = queue.pending.len().min(MAX_BATCH);
            queue.pending.drain(..take).collect()
        };
        let now = Instant::now();
        let (live, expired): (Vec<Call>, Vec<Call>) = batch
            .into_iter()
            .partition(|c| c.deadline.is_none_or(|d| d > now));
        fail_all(
            expired,
            StoreError::Transport(
                "not sent: the limiter's timeout passed while the request was queued (not counted)"
                    .into(),
            ),
        );
        if !live.is_empty() {
            send_batch(&inner, live).await;
        }
        if let Some(done) = &inner.batch_done {
            done();
        }
    }
}

async fn send_batch(inner: &Inner, batch: Vec<Call>) {
    let body = match pipeline_body(batch.iter().map(|c| &c.command), false) {
        Ok(body) => body,
        Err(err) => return fail_all(batch, err),
    };
    let items = match post(inner, body, latest_deadline(&batch)).await {
        Ok(items) if items.len() == batch.len() => items,
        Ok(items) => {
            let err = StoreError::BadResponse(format!(
                "the pipeline answer has {} items for {} commands",
                items.len(),
                batch.len()
            ));
            return fail_all(batch, err);
        }
        Err(err) => return fail_all(batch, err),
    };
    let mut retry: Vec<Call> = Vec::new();
    for (call, item) in batch.into_iter().zip(items) {
        let noscript =
            matches!(&item, Err(StoreError::Redis(text)) if text.starts_with("NOSCRIPT"));
        if noscript && matches!(call.command, Command::Script { .. }) {
            retry.push(call);
        } else {
            call.reply.send(item);
        }
    }
    if retry.is_empty() {
        return;
    }
    let body = match pipeline_body(retry.iter().map(|c| &c.command), true) {
        Ok(body) => body,
        Err(err) => return fail_all(retry, err),
    };
    match post(inner, body, latest_deadline(&retry)).await {
        Ok(items) if items.len() == retry.len() => {
            for (call, item) in retry.into_iter().zip(items) {
                call.reply.send(item);
            }
        }
        Ok(_) => fail_all(
            retry,
            StoreError::BadResponse("the EVAL pipeline answer has the wrong length".into()),
        ),
        Err(err) => fail_all(retry, err),
    }
}

fn fail_all(calls: Vec<Call>, err: StoreError) {
    for call in calls {
        call.reply.send(Err(err.clone()));
    }
}

/// POSTs one pipeline, re-sending it while the failure shows it never ran: on the fixed
/// schedule, or — when every call in it has a caller deadline — for as long as one of those
/// callers still waits (so a Redis restart shorter than the limiter's timeout reaches no caller
/// as an error).
async fn post(
    inner: &Inner,
    bytes: Vec<u8>,
    retry_until: Option<Instant>,
) -> Result<Vec<Result<Reply, StoreError>>, StoreError> {
    let mut attempt = 0;
    loop {
        match post_once(inner, bytes.clone()).await {
            Err(Attempt::NotRun(err)) => {
                let fixed = RETRY_BACKOFF_MS.get(attempt).copied();
                let last = RETRY_BACKOFF_MS[RETRY_BACKOFF_MS.len() - 1];
                // With deadlines, give up only once they have passed (plus a little), never
                // early: the caller's own timeout answer must come first.
                let delay = match retry_until {
                    Some(until) => {
                        let now = Instant::now();
                        (now < until).then(|| {
                            Duration::from_millis(fixed.unwrap_or(last))
                                .min(until - now + Duration::from_millis(20))
                        })
                    }
                    None => fixed.map(Duration::from_millis),
                };
                match delay {
                    Some(delay) => tokio::time::sleep(delay).await,
                    None => return Err(err),
                }
                attempt += 1;
            }
            Err(Attempt::Failed(err)) => return Err(err),
            Ok(items) => return Ok(items),
        }
    }
}

/// The latest caller deadline in a batch, if every call has one.
fn latest_deadline(calls: &[Call]) -> Option<Instant> {
    calls
        .iter()
        .map(|c| c.deadline)
        .try_fold(None, |latest: Option<Instant>, d| {
            d.map(|d| Some(latest.map_or(d, |l| l.max(d))))
        })
        .flatten()
}

/// How one attempt failed: `NotRun` when the commands certainly did not execute (safe to send
/// again: no double counting), `Failed` otherwise.
enum Attempt {
    NotRun(StoreError),
    Failed(StoreError),
}

/// POSTs one pipeline once; a transport or HTTP-level failure fails every item.
async fn post_once(
    inner: &Inner,
    bytes: Vec<u8>,
) -> Result<Vec<Result<Reply, StoreError>>, Attempt> {
    let response = inner
        .http
        .post(&inner.pipeline_url)
        .headers(inner.headers.clone())
        .body(bytes)
        .send()
        .await
        .map_err(|e| {
            if connection_refused(&e) {
                Attempt::NotRun(transport_error(inner, e))
            } else {
                Attempt::Failed(transport_error(inner, e))
            }
        })?;
    let status = response.status();
    let text = response
        .bytes()
        .await
        .map_err(|e| Attempt::Failed(transport_error(inner, e)))?;
    let parsed: Result<Json, _> = serde_json::from_slice(&text);
    if !status.is_success() {
        let message = match parsed {
            Ok(Json::Object(map)) => match map.get("error") {
                Some(Json::String(err)) => scrub(inner, err.clone()),
                _ => snippet(inner, &text),
            },
            _ => snippet(inner, &text),
        };
        let err = StoreError::Http {
            status: status.as_u16(),
            message,
        };
        // 502/503: the REST server could not reach Redis, so nothing ran.
        return Err(if matches!(status.as_u16(), 502 | 503) {
            Attempt::NotRun(err)
        } else {
            Attempt::Failed(err)
        });
    }
    match parsed {
        Ok(Json::Array(items)) => Ok(items.iter().map(decode_item).collect()),
        Ok(_) | Err(_) => Err(Attempt::Failed(StoreError::BadResponse(format!(
            "expected a JSON array from /pipeline, got: {}",
            snippet(inner, &text)
        )))),
    }
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

fn transport_error(inner: &Inner, err: reqwest::Error) -> StoreError {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    // `without_url` keeps credentials that might sit in the URL out of the message; the causes
    // say what actually happened (e.g. an invalid certificate, a reset connection).
    let err = err.without_url();
    let mut message = format!("request to {} {kind}: {err}", inner.display_host);
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    StoreError::Transport(scrub(inner, message))
}

/// Removes the token from text that came from elsewhere (a server may echo request headers).
fn scrub(inner: &Inner, text: String) -> String {
    if inner.token.is_empty() || !text.contains(&inner.token) {
        return text;
    }
    text.replace(&inner.token, "[redacted]")
}

/// The start of a body, for an error message, without the token.
fn snippet(inner: &Inner, bytes: &[u8]) -> String {
    scrub(inner, truncated(bytes))
}

fn truncated(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
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
