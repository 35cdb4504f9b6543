//! `NativeStore`: a handle on where limiter state lives, passed to `NativeAlgorithm` methods.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};

use ratelimit_core::js_reply::reply_to_json;
use ratelimit_core::reply::StoreError;
use ratelimit_stores::memory::MemoryStore;
use ratelimit_stores::remote::{RemoteOptions, RemoteStore, RequestObserver, RequestRecord};

use crate::errors::store_error;

#[derive(Clone)]
pub(crate) enum StoreKind {
    Remote(RemoteStore),
    Memory(Arc<MemoryStore>),
}

#[napi]
pub struct NativeStore {
    pub(crate) kind: StoreKind,
    pub(crate) completions: Arc<CompletionSink>,
    /// What an event-loop store (REST or Redis) has on top (src/wire.rs).
    pub(crate) wire: Option<crate::wire::EventLoopWire>,
}

/// The outcomes of the calls one HTTP request answered, delivered to JS in one call.
#[napi(object)]
pub struct Completions {
    /// `[id, n, value × n]` per call that succeeded (a typed array: one copy, not one JS value
    /// per number).
    pub data: Float64Array,
    /// `[id, message]` per call that failed.
    pub failures: Vec<String>,
    /// `[id, text]`: an analytics write that failed inside a call that succeeded.
    pub notes: Vec<String>,
    /// `[startUnixMs, durationMs, commands, outcome]` per request sent to the store (outcome 0
    /// answered, 1 did not run, 2 failed), while `observeRequests(true)`; absent otherwise.
    pub requests: Option<Vec<f64>>,
}

type CompletionCallback = ThreadsafeFunction<Completions, (), Completions, Status, false, true>;

/// Collects outcomes of queued calls until their HTTP request is done, then hands them to JS at
/// once: one threadsafe call per request instead of one Promise (and threadsafe function) per
/// call, and every continuation of the batch runs in the same event-loop turn.
#[derive(Default)]
pub(crate) struct CompletionSink {
    buffer: Mutex<Option<Collected>>,
    callback: OnceLock<CompletionCallback>,
    /// JS takes the outcomes itself (`takeCompletions`) after each call into an event-loop
    /// store, instead of being called back.
    pull: bool,
    /// Whether requests are recorded for JS (someone traces them: lib/store-requests.js).
    observing: AtomicBool,
}

/// What a sink collects before it becomes [`Completions`].
struct Collected {
    data: Vec<f64>,
    failures: Vec<String>,
    notes: Vec<String>,
    requests: Vec<f64>,
}

impl CompletionSink {
    fn with_buffer(&self, f: impl FnOnce(&mut Collected)) {
        if let Ok(mut guard) = self.buffer.lock() {
            let buffer = guard.get_or_insert_with(|| Collected {
                data: Vec::new(),
                failures: Vec::new(),
                notes: Vec::new(),
                requests: Vec::new(),
            });
            f(buffer);
        }
    }

    pub(crate) fn succeed(&self, id: u32, values: &[f64]) {
        self.with_buffer(|b| {
            b.data.push(f64::from(id));
            b.data.push(values.len() as f64);
            b.data.extend_from_slice(values);
        });
    }

    pub(crate) fn fail(&self, id: u32, message: String) {
        self.with_buffer(|b| {
            b.failures.push(id.to_string());
            b.failures.push(message);
        });
    }

    pub(crate) fn note(&self, id: u32, text: String) {
        self.with_buffer(|b| {
            b.notes.push(id.to_string());
            b.notes.push(text);
        });
    }

    /// After a request: hand everything collected to JS.
    pub(crate) fn deliver(&self) {
        if self.pull {
            return;
        }
        if let (Some(completions), Some(callback)) = (self.take(), self.callback.get()) {
            callback.call(completions, ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    /// Moves the collected outcome numbers into `out` when they fit; returns how many were
    /// written and whether anything is left for [`CompletionSink::take`] (numbers that did not
    /// fit, failures, notes).
    pub(crate) fn take_data_into(&self, out: &mut [f64]) -> (usize, bool) {
        let Ok(mut guard) = self.buffer.lock() else {
            return (0, false);
        };
        let Some(collected) = guard.as_mut() else {
            return (0, false);
        };
        let mut written = 0;
        // An analytics note goes with its call's numbers: with notes, everything goes through
        // `take`.
        if collected.data.len() <= out.len() && collected.notes.is_empty() {
            written = collected.data.len();
            out[..written].copy_from_slice(&collected.data);
            collected.data.clear();
        }
        let more = !collected.data.is_empty()
            || !collected.failures.is_empty()
            || !collected.notes.is_empty()
            || !collected.requests.is_empty();
        if !more {
            *guard = None;
        }
        (written, more)
    }

    /// Everything collected so far.
    pub(crate) fn take(&self) -> Option<Completions> {
        let batch = self.buffer.lock().ok().and_then(|mut guard| guard.take())?;
        Some(Completions {
            data: Float64Array::new(batch.data),
            failures: batch.failures,
            notes: batch.notes,
            requests: (!batch.requests.is_empty()).then_some(batch.requests),
        })
    }
}

impl RequestObserver for CompletionSink {
    fn observing(&self) -> bool {
        self.observing.load(Ordering::Relaxed)
    }

    fn request(&self, record: RequestRecord) {
        self.with_buffer(|b| {
            b.requests.extend_from_slice(&[
                record.started_unix_ms,
                record.duration_ms,
                record.commands as f64,
                f64::from(record.outcome as u8),
            ]);
        });
    }
}

/// Connection options for `NativeStore.upstashRest` and `NativeStore.redisTcp`.
#[napi(object)]
pub struct UpstashRestStoreOptions {
    /// Concurrent batches (HTTP requests or Redis pipelines) before calls wait for the next one
    /// (default 4).
    pub max_in_flight: Option<u32>,
    /// Per-batch upper bound in ms (default 10000).
    pub request_timeout_ms: Option<u32>,
    /// Accept certificates that fail verification (self-signed local endpoints only).
    pub accept_invalid_certs: Option<bool>,
}

/// Options for `NativeStore.memory`.
#[napi(object)]
pub struct MemoryStoreOptions {
    /// Cap on live keys for the whole process (default 1,000,000). New keys beyond it are
    /// refused with an error after a sweep of expired ones; existing keys keep working.
    pub max_keys: Option<u32>,
}

#[napi]
impl NativeStore {
    /// The process-wide embedded store (shared by every limiter and worker thread).
    #[napi(catch_unwind, factory)]
    pub fn memory(options: Option<MemoryStoreOptions>) -> NativeStore {
        let store = MemoryStore::global();
        if let Some(max_keys) = options.and_then(|o| o.max_keys) {
            store.set_max_keys(max_keys as usize);
        }
        NativeStore {
            kind: StoreKind::Memory(store),
            completions: Arc::default(),
            wire: None,
        }
    }

    /// Registers where queued calls' outcomes go (`limitQueue`); once per store. The callback does
    /// not keep the process alive by itself: the facade holds a timer while calls are pending.
    #[napi(
        catch_unwind,
        ts_args_type = "callback: (completions: Completions) => void"
    )]
    pub fn on_completions(&self, callback: CompletionCallback) -> Result<()> {
        self.completions
            .callback
            .set(callback)
            .map_err(|_| Error::new(Status::InvalidArg, "onCompletions was already set"))
    }

    /// Whether the requests this store sends are recorded and handed to JS with the outcomes
    /// (`Completions.requests`): on while someone traces them.
    #[napi(catch_unwind)]
    pub fn observe_requests(&self, on: bool) {
        self.completions.observing.store(on, Ordering::Relaxed);
    }

    /// Sends the calls queued during this JS tick (the facade calls it from a microtask).
    #[napi(catch_unwind)]
    pub fn flush(&self) {
        if let StoreKind::Remote(client) = &self.kind {
            client.flush();
        }
    }

    /// True when calls on this store complete synchronously (the memory store).
    #[napi(catch_unwind, getter)]
    pub fn synchronous(&self) -> bool {
        matches!(self.kind, StoreKind::Memory(_))
    }

    /// Live and not-yet-swept keys in the memory store (0 for remote stores).
    #[napi(catch_unwind, getter)]
    pub fn size(&self) -> u32 {
        match &self.kind {
            StoreKind::Memory(store) => u32::try_from(store.len()).unwrap_or(u32::MAX),
            StoreKind::Remote(_) => 0,
        }
    }

    /// Runs one of the package's own scripts by name (e.g. `"denyList.check"`), EVALSHA-first.
    #[napi(catch_unwind, ts_return_type = "Promise<unknown>")]
    pub fn eval_known<'env>(
        &self,
        env: &'env Env,
        name: String,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<PromiseRaw<'env, serde_json::Value>> {
        let script = known_script(&name)?;
        match &self.kind {
            StoreKind::Remote(client) => {
                let reply = client.queue_eval(script, keys, args);
                env.spawn_future(
                    async move { Ok(reply_to_json(&reply.await.map_err(store_error)?)) },
                )
            }
            StoreKind::Memory(_) => Err(Error::new(
                Status::InvalidArg,
                "the memory store does not run scripts",
            )),
        }
    }

    /// A plain command on the memory store, answered synchronously (`now` = `Date.now()`).
    #[napi(catch_unwind, ts_return_type = "unknown")]
    pub fn command_now(&self, parts: Vec<String>, now: f64) -> Result<serde_json::Value> {
        match &self.kind {
            StoreKind::Memory(store) => store
                .command(&parts, crate::args::clock(now)?)
                .map(|r| reply_to_json(&r))
                .map_err(store_error),
            StoreKind::Remote(_) => Err(Error::new(
                Status::InvalidArg,
                "commandNow is for the memory store; use command()",
            )),
        }
    }

    /// A store on an Upstash REST endpoint (or `ratelimit-native serve`).
    #[napi(catch_unwind, factory)]
    pub fn upstash_rest(
        url: String,
        token: String,
        options: Option<UpstashRestStoreOptions>,
    ) -> Result<NativeStore> {
        NativeStore::remote(options, |opts| {
            RemoteStore::upstash_rest(&url, &token, opts)
        })
    }

    /// A store on a Redis server over TCP (`redis://[user][:password@]host[:port][/db]`).
    #[napi(catch_unwind, factory)]
    pub fn redis_tcp(url: String, options: Option<UpstashRestStoreOptions>) -> Result<NativeStore> {
        NativeStore::remote(options, |opts| RemoteStore::redis_tcp(&url, opts))
    }

    /// A store on a Redis Cluster, found from one or more of its nodes (`redis://…` or
    /// `rediss://…`); each command goes to the node serving its key's slot.
    #[napi(catch_unwind, factory)]
    pub fn redis_cluster(
        seeds: Vec<String>,
        options: Option<UpstashRestStoreOptions>,
    ) -> Result<NativeStore> {
        NativeStore::remote(options, |opts| RemoteStore::redis_cluster(&seeds, opts))
    }

    /// A store on the master of a Redis Sentinel group (`sentinels`: redis:// URLs; `master`: a
    /// URL whose user, password and database are used on the master, its host ignored).
    #[napi(catch_unwind, factory)]
    pub fn redis_sentinel(
        sentinels: Vec<String>,
        name: String,
        master: String,
        options: Option<UpstashRestStoreOptions>,
    ) -> Result<NativeStore> {
        NativeStore::remote(options, |opts| {
            RemoteStore::redis_sentinel(&sentinels, &name, &master, opts)
        })
    }

    fn remote(
        options: Option<UpstashRestStoreOptions>,
        open: impl FnOnce(RemoteOptions) -> std::result::Result<RemoteStore, StoreError>,
    ) -> Result<NativeStore> {
        NativeStore::remote_with(options, None, open)
    }

    /// A remote store whose tasks run on napi's runtime, or, for an event-loop store (`wire`),
    /// on the JS thread, with outcomes JS pulls.
    pub(crate) fn remote_with(
        options: Option<UpstashRestStoreOptions>,
        wire: Option<crate::wire::EventLoopWire>,
        open: impl FnOnce(RemoteOptions) -> std::result::Result<RemoteStore, StoreError>,
    ) -> Result<NativeStore> {
        let completions = Arc::new(CompletionSink {
            pull: wire.is_some(),
            ..CompletionSink::default()
        });
        let sink = completions.clone();
        let mut opts = RemoteOptions {
            // Calls queue when made; JS flushes once per tick, so one tick = one batch.
            deferred_flush: true,
            // An event-loop store is flushed by JS every turn it queues anything (lib/redis.js).
            always_flushed: wire.is_some(),
            spawner: Some(match &wire {
                Some(wire) => wire.spawner(),
                None => Arc::new(|fut| {
                    napi::bindgen_prelude::spawn(fut);
                }),
            }),
            batch_done: Some(Arc::new(move || sink.deliver())),
            request_observer: Some(completions.clone()),
            ..RemoteOptions::default()
        };
        if let Some(o) = options {
            if let Some(n) = o.max_in_flight {
                opts.max_in_flight = n.max(1) as usize;
            }
            if let Some(ms) = o.request_timeout_ms {
                opts.request_timeout = std::time::Duration::from_millis(u64::from(ms.max(1)));
            }
            if let Some(accept) = o.accept_invalid_certs {
                opts.accept_invalid_certs = accept;
            }
        }
        let client = open(opts).map_err(store_error)?;
        Ok(NativeStore {
            kind: StoreKind::Remote(client),
            completions,
            wire,
        })
    }

    /// Runs one plain command (e.g. `["GET", key]`); replies come back as JSON values
    /// (strings, integers, null, arrays).
    #[napi(catch_unwind, ts_return_type = "Promise<unknown>")]
    pub fn command<'env>(
        &self,
        env: &'env Env,
        parts: Vec<String>,
    ) -> Result<PromiseRaw<'env, serde_json::Value>> {
        if parts.is_empty() {
            return Err(Error::new(Status::InvalidArg, "empty command"));
        }
        match &self.kind {
            StoreKind::Remote(client) => {
                let reply = client.queue_command(parts);
                env.spawn_future(
                    async move { Ok(reply_to_json(&reply.await.map_err(store_error)?)) },
                )
            }
            StoreKind::Memory(store) => {
                let reply = store.command(&parts, wall_clock_ms());
                env.spawn_future(async move { Ok(reply_to_json(&reply.map_err(store_error)?)) })
            }
        }
    }
}

fn known_script(name: &str) -> Result<&'static ratelimit_core::Script> {
    ratelimit_core::scripts::named(name)
        .ok_or_else(|| Error::new(Status::InvalidArg, format!("unknown script {name:?}")))
}

/// The SHA1 and text of one of the package's own scripts, for the compat path.
#[napi(catch_unwind)]
pub fn known_script_source(name: String) -> Result<crate::algorithm::ScriptInvocation> {
    let script = known_script(&name)?;
    Ok(crate::algorithm::ScriptInvocation {
        sha1: script.sha1().to_string(),
        script: script.source.to_string(),
        keys: Vec::new(),
        args: Vec::new(),
    })
}

/// For the compat path on a client that talks to stock Redis (which refuses Upstash's
/// key-locking flag): the script without that line, and its SHA1; null for a script without it.
#[napi(catch_unwind)]
pub fn stock_script(script: String) -> Option<crate::algorithm::ScriptInvocation> {
    ratelimit_core::scripts::stock_variant(&script).map(|(stock, sha1)| {
        crate::algorithm::ScriptInvocation {
            sha1,
            script: stock.to_string(),
            keys: Vec::new(),
            args: Vec::new(),
        }
    })
}

fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
