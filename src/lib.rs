//! The napi binding of ratelimit-native: a thin layer over `ratelimit-core` and
//! `upstash-rest-server`. Its generated loader (`native.cjs`) is internal; the public API is the
//! hand-written `index.js` / `index.d.ts`.

mod algorithm;
mod args;
mod errors;
mod multi_region;
mod rest_server;
mod short_str;
mod store;

pub use algorithm::*;
pub use multi_region::*;
pub use rest_server::*;
pub use store::*;

/// One tokio runtime per process (shared by the main thread and every worker thread), created
/// before any export is registered.
#[cfg(not(target_family = "wasm"))]
#[napi_derive::module_init]
fn init() {
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
