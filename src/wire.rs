//! The event-loop stores: an Upstash REST store (`http://`) or a Redis store (`redis://`) whose
//! sockets live on Node's event loop (lib/wire.js) and whose batching work runs on the JS
//! thread, so a warm limit() crosses no thread at all.
//!
//! The reqwest path answers on a runtime thread: handing each batch over and its answer back
//! costs two cross-thread wakeups, about half of a call's client CPU at c=1 (measured: 30 µs per
//! call over a socket on the event loop, 65 µs through reqwest). Here the store's tasks (the
//! queue's drain; there is no flush watchdog, JS flushes every turn) run on a small executor
//! polled by the JS thread whenever JS hands it something: a flush, an answer's bytes, a
//! connection failure. A task woken from another thread (a retry back-off timer, which lives on
//! the runtime's timer) pings JS through one weak threadsafe function, and JS polls again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::thread::ThreadId;

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::task::{waker, ArcWake};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use ratelimit_core::reply::StoreError;
use ratelimit_stores::remote::{RemoteOptions, RemoteStore, Spawner};
use ratelimit_stores::wire_transport::{Received, WireFailure};

use crate::errors::invalid_arg;
use crate::store::{Completions, NativeStore, StoreKind, UpstashRestStoreOptions};

type PingCallback = ThreadsafeFunction<(), (), (), Status, false, true>;

/// Futures that run on the JS thread of the store that owns them.
pub(crate) struct JsThreadTasks {
    inbox: Mutex<Vec<BoxFuture<'static, ()>>>,
    running: Mutex<FuturesUnordered<BoxFuture<'static, ()>>>,
    wake: Arc<Wake>,
}

struct Wake {
    js_thread: ThreadId,
    /// Something may be ready to poll.
    woken: AtomicBool,
    /// A ping is on its way to JS (one is enough until JS polls).
    pinged: AtomicBool,
    ping: OnceLock<PingCallback>,
}

impl ArcWake for Wake {
    fn wake_by_ref(wake: &Arc<Self>) {
        wake.woken.store(true, Ordering::Release);
        // On the JS thread the wake comes from inside a call JS makes, and JS polls after every
        // such call; from any other thread, JS has to be told.
        if std::thread::current().id() != wake.js_thread
            && !wake.pinged.swap(true, Ordering::AcqRel)
        {
            if let Some(ping) = wake.ping.get() {
                ping.call((), ThreadsafeFunctionCallMode::NonBlocking);
            }
        }
    }
}

impl JsThreadTasks {
    /// Tasks for a store made on the current (JS) thread.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(JsThreadTasks {
            inbox: Mutex::new(Vec::new()),
            running: Mutex::new(FuturesUnordered::new()),
            wake: Arc::new(Wake {
                js_thread: std::thread::current().id(),
                woken: AtomicBool::new(false),
                pinged: AtomicBool::new(false),
                ping: OnceLock::new(),
            }),
        })
    }

    /// What the store's `RemoteOptions::spawner` does: queue the task for the JS thread.
    pub(crate) fn spawner(self: &Arc<Self>) -> Spawner {
        let tasks = self.clone();
        Arc::new(move |fut| {
            if let Ok(mut inbox) = tasks.inbox.lock() {
                inbox.push(fut);
            }
            ArcWake::wake_by_ref(&tasks.wake);
        })
    }

    /// Polls every task that can make progress, until none can (JS thread only).
    fn run(&self) {
        self.wake.pinged.store(false, Ordering::Release);
        let waker = waker(self.wake.clone());
        let mut cx = Context::from_waker(&waker);
        // Timers and channels the tasks create belong to the addon's tokio runtime.
        napi::bindgen_prelude::within_runtime_if_available(|| {
            let Ok(mut running) = self.running.lock() else {
                return;
            };
            loop {
                self.wake.woken.store(false, Ordering::Release);
                if let Ok(mut inbox) = self.inbox.lock() {
                    running.extend(inbox.drain(..));
                }
                match running.poll_next_unpin(&mut cx) {
                    Poll::Ready(Some(())) => continue,
                    Poll::Ready(None) | Poll::Pending => {
                        let inbox_empty = self.inbox.lock().map(|i| i.is_empty()).unwrap_or(true);
                        if inbox_empty && !self.wake.woken.load(Ordering::Acquire) {
                            return;
                        }
                    }
                }
            }
        });
    }
}

/// Where an event-loop store's connections go.
#[napi(object)]
pub struct WireTarget {
    pub host: String,
    pub port: u32,
}

/// Connections JS may open: the store has at most this many requests in flight (its
/// `max_in_flight`), one per connection.
const SLOTS: usize = 4;

// What the `wire*` methods return, packed in one number (no object per call):
// bits 0-2: what a `wireReceive` chunk did (`PENDING` … `BROKEN`; 0 for the other methods);
// bits 3-5: how many requests wait (take each with `wireNext`; at most `SLOTS`);
// bit 6 `MORE`: outcomes wait that did not fit `out`, or failures / analytics notes (take them
// with `takeCompletions`);
// bits 7+: how many numbers of outcomes were written to `out` (`[id, n, value × n]` per call).
const PENDING: u32 = 0;
const DONE_KEEP: u32 = 1;
const DONE_CLOSE: u32 = 2;
const UNKNOWN: u32 = 3;
const BROKEN: u32 = 4;
const WAITING_SHIFT: u32 = 3;
const MORE: u32 = 1 << 6;
const LENGTH_SHIFT: u32 = 7;

/// What only an event-loop store has: its JS-thread tasks, and which exchange each connection
/// slot carries.
pub(crate) struct EventLoopWire {
    tasks: Arc<JsThreadTasks>,
    slots: Mutex<[Option<u32>; SLOTS]>,
}

impl EventLoopWire {
    /// Where the store's `RemoteOptions::spawner` puts its tasks.
    pub(crate) fn spawner(&self) -> Spawner {
        self.tasks.spawner()
    }
}

impl NativeStore {
    /// An event-loop store: its tasks on the JS thread, one request in flight per connection
    /// slot.
    fn event_loop(
        open: impl FnOnce(RemoteOptions) -> std::result::Result<RemoteStore, StoreError>,
    ) -> Result<NativeStore> {
        let wire = EventLoopWire {
            tasks: JsThreadTasks::new(),
            slots: Mutex::new([None; SLOTS]),
        };
        let options = UpstashRestStoreOptions {
            max_in_flight: Some(SLOTS as u32),
            request_timeout_ms: None,
            accept_invalid_certs: None,
        };
        NativeStore::remote_with(Some(options), Some(wire), open)
    }

    fn wire_parts(&self) -> Result<(&RemoteStore, &EventLoopWire)> {
        match (&self.kind, &self.wire) {
            (StoreKind::Remote(store), Some(wire)) => Ok((store, wire)),
            _ => Err(invalid_arg("not an event-loop store")),
        }
    }

    /// Runs ready tasks, then reports (and writes to `out`) what JS has to do next.
    fn wire_status(&self, code: u32, out: &mut [f64]) -> Result<u32> {
        let (store, wire) = self.wire_parts()?;
        wire.tasks.run();
        let (written, more) = self.completions.take_data_into(out);
        let mut status = code | ((written as u32) << LENGTH_SHIFT);
        if more {
            status |= MORE;
        }
        status |= (store.waiting_requests().min(SLOTS) as u32) << WAITING_SHIFT;
        Ok(status)
    }

    fn slot_exchange(&self, slot: u32, take: bool) -> Option<u32> {
        let mut slots = self.wire.as_ref()?.slots.lock().ok()?;
        let entry = slots.get_mut(slot as usize)?;
        if take {
            entry.take()
        } else {
            *entry
        }
    }
}

#[napi]
impl NativeStore {
    /// An Upstash REST store (`http://` only) whose requests JS carries on its own sockets:
    /// `wireFlush` / `wirePoll` say what to do, `wireNext` gives a request for a connection
    /// slot, `wireReceive` / `wireFail` feed back what the connection did.
    #[napi(catch_unwind, factory)]
    pub fn upstash_rest_wire(url: String, token: String) -> Result<NativeStore> {
        NativeStore::event_loop(|opts| RemoteStore::upstash_rest_wire(&url, &token, opts))
    }

    /// A Redis store (`redis://` only) whose requests JS carries on its own sockets, as
    /// `upstashRestWire`'s do.
    #[napi(catch_unwind, factory)]
    pub fn redis_wire(url: String) -> Result<NativeStore> {
        NativeStore::event_loop(|opts| RemoteStore::redis_wire(&url, opts))
    }

    /// Host and port to connect to (event-loop stores only).
    #[napi(catch_unwind, getter)]
    pub fn wire_target(&self) -> Result<WireTarget> {
        let (store, _) = self.wire_parts()?;
        let target = store
            .wire_target()
            .ok_or_else(|| invalid_arg("not an event-loop store"))?;
        Ok(WireTarget {
            host: target.host.clone(),
            port: u32::from(target.port),
        })
    }

    /// Registers what JS runs when a task was woken off the JS thread (it calls `wirePoll`).
    /// Weak: it does not keep the process alive.
    #[napi(catch_unwind, ts_args_type = "callback: () => void")]
    pub fn on_wire_ping(&self, callback: PingCallback) -> Result<()> {
        let (_, wire) = self.wire_parts()?;
        wire.tasks
            .wake
            .ping
            .set(callback)
            .map_err(|_| invalid_arg("onWirePing was already set"))
    }

    /// Sends the calls queued during this JS tick; returns the status (see the constants).
    #[napi(catch_unwind)]
    pub fn wire_flush(&self, mut out: Float64ArraySlice) -> Result<u32> {
        let (store, _) = self.wire_parts()?;
        store.flush();
        // SAFETY: the typed array's memory stays valid for this synchronous call, and no JS runs
        // until it returns.
        self.wire_status(0, unsafe { out.as_mut() })
    }

    /// Runs woken tasks (after a ping); returns the status.
    #[napi(catch_unwind)]
    pub fn wire_poll(&self, mut out: Float64ArraySlice) -> Result<u32> {
        // SAFETY: as in `wire_flush`.
        self.wire_status(0, unsafe { out.as_mut() })
    }

    /// The next request, bound to connection `slot` (0-3, free), as a latin1 string of its
    /// bytes (write it with the "latin1" encoding); null when none waits. `fresh`: the
    /// connection is new (a Redis request then carries its greeting).
    #[napi(catch_unwind)]
    pub fn wire_next(&self, slot: u32, fresh: bool) -> Result<Option<Latin1String>> {
        let (store, wire) = self.wire_parts()?;
        if slot as usize >= SLOTS {
            return Err(invalid_arg("wireNext: no such connection slot"));
        }
        let Some((id, bytes)) = store.take_request(fresh) else {
            return Ok(None);
        };
        if let Ok(mut slots) = wire.slots.lock() {
            slots[slot as usize] = Some(id);
        }
        // Request bytes are UTF-8 (JSON or RESP written from Rust strings); as latin1, each byte is one
        // character, and JS writes them back as the same bytes.
        let text =
            String::from_utf8(bytes).map_err(|_| invalid_arg("wireNext: request is not UTF-8"))?;
        Ok(Some(Latin1String::from(text)))
    }

    /// Bytes connection `slot` read (`eof`: the connection ended); returns the status, with
    /// bits 0-2 saying whether the answer is complete and the connection reusable.
    #[napi(catch_unwind)]
    pub fn wire_receive(
        &self,
        slot: u32,
        chunk: &[u8],
        eof: bool,
        mut out: Float64ArraySlice,
    ) -> Result<u32> {
        let (store, _) = self.wire_parts()?;
        let received = match self.slot_exchange(slot, false) {
            Some(id) => store.receive(id, chunk, eof),
            None => Received::Unknown,
        };
        let code = match received {
            Received::Pending => return Ok(PENDING),
            Received::Done { close: false } => DONE_KEEP,
            Received::Done { close: true } => DONE_CLOSE,
            Received::Unknown => UNKNOWN,
            Received::Broken => BROKEN,
        };
        self.slot_exchange(slot, true);
        // SAFETY: as in `wire_flush`.
        self.wire_status(code, unsafe { out.as_mut() })
    }

    /// The request on connection `slot` failed: `kind` is "refused" (nothing listening:
    /// certainly not run, sent again while its callers wait), "connect", "timeout" or
    /// "broken". Returns the status.
    #[napi(catch_unwind)]
    pub fn wire_fail(
        &self,
        slot: u32,
        kind: String,
        detail: String,
        mut out: Float64ArraySlice,
    ) -> Result<u32> {
        let (store, _) = self.wire_parts()?;
        let failure = match kind.as_str() {
            "refused" => WireFailure::Refused,
            "connect" => WireFailure::Connect,
            "timeout" => WireFailure::TimedOut,
            _ => WireFailure::Broken,
        };
        if let Some(id) = self.slot_exchange(slot, true) {
            store.fail_request(id, failure, &detail);
        }
        // SAFETY: as in `wire_flush`.
        self.wire_status(0, unsafe { out.as_mut() })
    }

    /// Outcomes that did not fit `out`, failures and analytics notes (status bit `MORE`); null
    /// when there are none.
    #[napi(catch_unwind)]
    pub fn take_completions(&self) -> Option<Completions> {
        self.completions.take()
    }
}
