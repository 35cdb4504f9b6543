//! The napi binding of ratelimit-native: a thin layer over `ratelimit-core` and
//! `upstash-rest-server`. Its generated loader (`native.cjs`) is internal; the public API is the
//! hand-written `index.js` / `index.d.ts`.

mod algorithm;
mod args;
mod errors;
mod limit_batch;
mod memory_batch;
mod memory_io;
mod multi_region;
mod rest_server;
mod short_str;
mod store;
mod wire;

pub use algorithm::*;
pub use limit_batch::*;
pub use memory_batch::*;
pub use memory_io::*;
pub use multi_region::*;
pub use rest_server::*;
pub use store::*;

/// mimalloc for the addon's own allocations (as rolldown's and oxc's bindings do). A limit call
/// allocates small strings on the JS thread that the runtime thread frees, and the other way
/// round; glibc's malloc took about a fifth of both threads' time at c=64 and over a quarter of
/// the REST server's (perf). Node's and V8's allocations are not affected.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc options (`mi_option_e` in its mimalloc.h, v2) the crate has no names for.
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Memory goes back to the system as soon as it is freed, and arenas are committed as they are
/// used: with mimalloc's defaults the embedded store held 140 bytes per key at 1M keys (freed
/// tables of earlier sizes kept resident) instead of glibc's 115; with these, 114.
fn tune_allocator() {
    // SAFETY: option setters, callable at any time from any thread.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}

/// One tokio runtime per process (shared by the main thread and every worker thread), created
/// before any export is registered.
#[cfg(not(target_family = "wasm"))]
#[napi_derive::module_init]
fn init() {
    tune_allocator();
    // RATELIMIT_NATIVE_THREADS sizes the runtime. One worker by default: a limiter's I/O is light,
    // and keeping its tasks on one thread saves cross-thread wakeups (measured: ~10% more calls
    // per second at concurrency 1, the same at 64). `npx ratelimit-native serve` uses 2.
    let threads = std::env::var("RATELIMIT_NATIVE_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| (1..=64).contains(n))
        .unwrap_or(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("ratelimit-native")
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => napi::bindgen_prelude::create_custom_tokio_runtime(runtime),
        Err(err) => eprintln!("ratelimit-native: cannot start its tokio runtime: {err}"),
    }
}
