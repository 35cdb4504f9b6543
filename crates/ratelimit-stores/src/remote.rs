//! A remote store: the Upstash REST API (or this workspace's local server) or plain Redis over
//! TCP. Both share what this file holds; only how one batch travels differs
//! (`rest_transport.rs`: one `/pipeline` POST; `redis_tcp.rs`: one RESP pipeline).
//!
//! Concurrent calls are coalesced: at most `max_in_flight` batches are on the wire at once, and
//! every call that arrives meanwhile joins the next one, so a warm `limit()` costs at most one
//! round trip and a burst of N calls costs far fewer than N.
//!
//! With `deferred_flush` (what the Node binding uses) a call is only queued when it is made;
//! the caller flushes once per JS tick ([`RemoteStore::flush`]), so every call issued in the same
//! tick shares one batch, like `@upstash/redis`' auto-pipelining. While calls are being queued
//! a watchdog sends anything a caller left unflushed within ~5 ms, so a call can be late but
//! never stuck. Scripts go out as EVALSHA; items that come back NOSCRIPT are retried once as
//! EVAL in a follow-up batch.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;

use crate::redis_cluster::RedisCluster;
use crate::redis_tcp::RedisTcp;
use crate::rest_transport::RestTransport;
use crate::wire_transport::{Received, WireFailure, WireTarget, WireTransport};
use ratelimit_core::pipeline::{Attempt, Command};
use ratelimit_core::reply::{Reply, StoreError};
use ratelimit_core::scripts::Script;

/// Most commands per `/pipeline` request (what `@upstash/redis` uses too).
const MAX_BATCH: usize = 1000;

/// Batches in flight on a Redis Cluster (see [`RemoteStore::redis_cluster`]).
const CLUSTER_IN_FLIGHT: usize = 16;

/// Waits before re-sending a request that certainly did not run (connection refused, or the
/// server answered 502/503 because it could not reach Redis): about 0.8 s in all, enough to ride
/// out a Redis or REST-server restart, short enough to stay inside the limiter's timeout.
const RETRY_BACKOFF_MS: [u64; 5] = [25, 50, 100, 200, 400];

/// Runs a future on the runtime the client lives on (the Node binding passes napi's runtime, so
/// calls made from the JS thread, which has no tokio context, can start work).
pub type Spawner = Arc<dyn Fn(Pin<Box<dyn Future<Output = ()> + Send>>) + Send + Sync>;

/// Connection settings for [`RemoteStore`].
#[derive(Clone)]
pub struct RemoteOptions {
    /// Concurrent HTTP requests; calls beyond that are batched into the next one.
    pub max_in_flight: usize,
    /// Upper bound for one HTTP request, so work in flight stays bounded during an outage.
    pub request_timeout: Duration,
    /// Accept TLS certificates that do not verify (self-signed local endpoints only).
    pub accept_invalid_certs: bool,
    /// Queue calls until [`RemoteStore::flush`] (or the ~5 ms watchdog) instead of sending at once.
    pub deferred_flush: bool,
    /// Deferred mode without the watchdog: the caller flushes after every call it queues (the
    /// event-loop stores, whose JS flushes each turn). The watchdog's timer lives on the
    /// runtime thread: every 5 ms of traffic it woke that thread and, through it, JS.
    pub always_flushed: bool,
    /// Where background work runs; `tokio::spawn` on the current runtime when `None`.
    pub spawner: Option<Spawner>,
    /// Runs after each request's replies have been delivered.
    pub batch_done: Option<BatchDone>,
    /// Told of each request sent to the store, while it says it is observing.
    pub request_observer: Option<Arc<dyn RequestObserver>>,
}

/// Watches the requests a store sends (one per attempt at a batch: a /pipeline POST, a Redis
/// pipeline), for tracing. Asked before each request whether it is observing, so an idle
/// observer costs one check per request.
pub trait RequestObserver: Send + Sync {
    fn observing(&self) -> bool;
    fn request(&self, record: RequestRecord);
}

/// One request to the store, as a [`RequestObserver`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct RequestRecord {
    /// When it was sent, in Unix milliseconds (the wall clock, for a span's start time).
    pub started_unix_ms: f64,
    /// How long until its answer (or failure), in milliseconds (a monotonic clock).
    pub duration_ms: f64,
    /// Commands in it.
    pub commands: usize,
    pub outcome: RequestOutcome,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// The store answered (some items may still be errors, such as NOSCRIPT).
    Answered = 0,
    /// It certainly did not run (refused, a lost connection before sending): it may be resent.
    NotRun = 1,
    /// It failed, and may have run.
    Failed = 2,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            max_in_flight: 4,
            request_timeout: Duration::from_secs(10),
            accept_invalid_certs: false,
            deferred_flush: false,
            always_flushed: false,
            spawner: None,
            batch_done: None,
            request_observer: None,
        }
    }
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

/// How batches travel.
enum Transport {
    Rest(RestTransport),
    Tcp(Box<RedisTcp>),
    /// A Redis Cluster over TCP: each command to its slot's node.
    Cluster(Box<RedisCluster>),
    /// REST or Redis over a connection the caller owns (the binding's, on Node's event loop).
    Wire(WireTransport),
}

impl Transport {
    /// Sends one batch once; a failure of the whole batch says whether it certainly did not run.
    async fn send(
        &self,
        commands: &[&Command],
        as_eval: bool,
        retry_until: Option<Instant>,
    ) -> Result<Vec<Result<Reply, StoreError>>, Attempt> {
        match self {
            Transport::Rest(rest) => rest.send(commands, as_eval).await,
            Transport::Tcp(tcp) => tcp.send(commands, as_eval).await,
            Transport::Cluster(cluster) => cluster.send(commands, as_eval, retry_until).await,
            Transport::Wire(wire) => wire.send(commands, as_eval).await,
        }
    }
}

struct Inner {
    transport: Transport,
    max_in_flight: usize,
    deferred_flush: bool,
    always_flushed: bool,
    spawner: Option<Spawner>,
    batch_done: Option<BatchDone>,
    request_observer: Option<Arc<dyn RequestObserver>>,
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

/// A cheap-to-clone handle on one remote store.
#[derive(Clone)]
pub struct RemoteStore {
    inner: Arc<Inner>,
}

impl RemoteStore {
    /// A store on an Upstash REST endpoint (`http://` or `https://`, with its token).
    pub fn upstash_rest(
        url: &str,
        token: &str,
        options: RemoteOptions,
    ) -> Result<Self, StoreError> {
        let transport = RestTransport::new(
            url,
            token,
            options.request_timeout,
            options.accept_invalid_certs,
        )?;
        Ok(Self::with_transport(Transport::Rest(transport), options))
    }

    /// A store on a Redis server over TCP (`redis://[user][:password@]host[:port][/db]`, or
    /// `rediss://` over TLS).
    pub fn redis_tcp(url: &str, options: RemoteOptions) -> Result<Self, StoreError> {
        let transport = RedisTcp::new(url, options.request_timeout, options.accept_invalid_certs)?;
        Ok(Self::with_transport(
            Transport::Tcp(Box::new(transport)),
            options,
        ))
    }

    /// A store on the master of a Redis Sentinel group: `sentinels` (redis:// URLs), the group's
    /// `name`, and `master`, a URL whose user, password and database are used on the master.
    pub fn redis_sentinel(
        sentinels: &[String],
        name: &str,
        master: &str,
        options: RemoteOptions,
    ) -> Result<Self, StoreError> {
        let transport = RedisTcp::sentinel(
            sentinels,
            name,
            master,
            options.request_timeout,
            options.accept_invalid_certs,
        )?;
        Ok(Self::with_transport(
            Transport::Tcp(Box::new(transport)),
            options,
        ))
    }

    /// A store on a Redis Cluster, found from one or more of its nodes (`redis://…` or
    /// `rediss://…`).
    pub fn redis_cluster(seeds: &[String], mut options: RemoteOptions) -> Result<Self, StoreError> {
        // A batch whose commands for a failed master are being resent holds its slot until the
        // callers' deadline; more slots let the calls for the healthy masters go on meanwhile.
        options.max_in_flight = options.max_in_flight.max(CLUSTER_IN_FLIGHT);
        let transport =
            RedisCluster::new(seeds, options.request_timeout, options.accept_invalid_certs)?;
        Ok(Self::with_transport(
            Transport::Cluster(Box::new(transport)),
            options,
        ))
    }

    /// A store on an Upstash REST endpoint (`http://`) whose requests the caller carries: it
    /// takes them with [`RemoteStore::take_request`] and feeds the answers back
    /// ([`RemoteStore::receive`], [`RemoteStore::fail_request`]). `request_timeout` is the
    /// caller's to enforce.
    pub fn upstash_rest_wire(
        url: &str,
        token: &str,
        options: RemoteOptions,
    ) -> Result<Self, StoreError> {
        let transport = WireTransport::new(url, token)?;
        Ok(Self::with_transport(Transport::Wire(transport), options))
    }

    /// A store on a Redis server (`redis://[user][:password@]host[:port][/db]`) whose requests
    /// the caller carries, as [`RemoteStore::upstash_rest_wire`]'s do.
    pub fn redis_wire(url: &str, options: RemoteOptions) -> Result<Self, StoreError> {
        let transport = WireTransport::redis(url)?;
        Ok(Self::with_transport(Transport::Wire(transport), options))
    }

    /// Where a caller-carried store's connections go (`None` for the other transports).
    pub fn wire_target(&self) -> Option<&WireTarget> {
        match &self.inner.transport {
            Transport::Wire(wire) => Some(wire.target()),
            _ => None,
        }
    }

    /// The next request a caller-carried store wants written, with the id of its exchange.
    /// `fresh`: it goes on a connection that carried nothing yet.
    pub fn take_request(&self, fresh: bool) -> Option<(u32, Vec<u8>)> {
        match &self.inner.transport {
            Transport::Wire(wire) => wire.take_request(fresh),
            _ => None,
        }
    }

    /// How many requests a caller-carried store has waiting to be written.
    pub fn waiting_requests(&self) -> usize {
        match &self.inner.transport {
            Transport::Wire(wire) => wire.waiting_requests(),
            _ => 0,
        }
    }

    /// Bytes read for exchange `id` (`eof`: its connection ended).
    pub fn receive(&self, id: u32, chunk: &[u8], eof: bool) -> Received {
        match &self.inner.transport {
            Transport::Wire(wire) => wire.receive(id, chunk, eof),
            _ => Received::Unknown,
        }
    }

    /// Exchange `id` failed on its connection.
    pub fn fail_request(&self, id: u32, failure: WireFailure, detail: &str) {
        if let Transport::Wire(wire) = &self.inner.transport {
            wire.fail(id, failure, detail);
        }
    }

    fn with_transport(transport: Transport, options: RemoteOptions) -> Self {
        RemoteStore {
            inner: Arc::new(Inner {
                transport,
                max_in_flight: options.max_in_flight.max(1),
                deferred_flush: options.deferred_flush,
                always_flushed: options.always_flushed,
                spawner: options.spawner,
                batch_done: options.batch_done,
                request_observer: options.request_observer,
                queue: Mutex::new(Queue::default()),
            }),
        }
    }

    /// Runs a script (EVALSHA, then EVAL if Redis does not know it yet). Queued when first
    /// polled: a caller that flushes its store itself (`always_flushed`) queues with
    /// [`RemoteStore::queue_eval`] instead, before its flush.
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

    /// Queues a plain command now; see [`RemoteStore::queue_eval`].
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
                let arm =
                    self.inner.deferred_flush && !self.inner.always_flushed && !queue.timer_armed;
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
    let items = match send(inner, &commands_of(&batch), latest_deadline(&batch), false).await {
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
        if noscript && call.command.is_script() {
            retry.push(call);
        } else {
            call.reply.send(item);
        }
    }
    if retry.is_empty() {
        return;
    }
    match send(inner, &commands_of(&retry), latest_deadline(&retry), true).await {
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

/// Sends one batch, re-sending it while the failure shows it never ran: on the fixed
/// schedule, or — when every call in it has a caller deadline — for as long as one of those
/// callers still waits (so a Redis restart shorter than the limiter's timeout reaches no caller
/// as an error).
async fn send(
    inner: &Inner,
    commands: &[&Command],
    retry_until: Option<Instant>,
    as_eval: bool,
) -> Result<Vec<Result<Reply, StoreError>>, StoreError> {
    let mut attempt = 0;
    loop {
        let observer = inner.request_observer.as_deref().filter(|o| o.observing());
        let started = observer.map(|_| (SystemTime::now(), Instant::now()));
        let sent = inner.transport.send(commands, as_eval, retry_until).await;
        if let (Some(observer), Some((wall, clock))) = (observer, started) {
            observer.request(RequestRecord {
                started_unix_ms: wall
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64() * 1000.0),
                duration_ms: clock.elapsed().as_secs_f64() * 1000.0,
                commands: commands.len(),
                outcome: match &sent {
                    Ok(_) => RequestOutcome::Answered,
                    Err(Attempt::NotRun(_)) => RequestOutcome::NotRun,
                    Err(Attempt::Failed(_)) => RequestOutcome::Failed,
                },
            });
        }
        match sent {
            Err(Attempt::NotRun(err)) => {
                match resend_delay(attempt, retry_until) {
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

/// How long to wait before re-sending what certainly did not run, or `None` to give up: the
/// fixed schedule, or — when every caller has a deadline — for as long as one of them still
/// waits (plus a little: the caller's own timeout answer must come first).
pub(crate) fn resend_delay(attempt: usize, retry_until: Option<Instant>) -> Option<Duration> {
    let fixed = RETRY_BACKOFF_MS.get(attempt).copied();
    let last = RETRY_BACKOFF_MS[RETRY_BACKOFF_MS.len() - 1];
    match retry_until {
        Some(until) => {
            let now = Instant::now();
            (now < until).then(|| {
                Duration::from_millis(fixed.unwrap_or(last))
                    .min(until - now + Duration::from_millis(20))
            })
        }
        None => fixed.map(Duration::from_millis),
    }
}

/// The commands of a batch (borrowed apart from the calls' reply senders, which are not `Sync`).
fn commands_of(calls: &[Call]) -> Vec<&Command> {
    calls.iter().map(|c| &c.command).collect()
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
