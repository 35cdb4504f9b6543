//! The napi binding of ratelimit-native: a thin layer over `ratelimit-core` and
//! `upstash-rest-server`. Its generated loader (`native.cjs`) is internal; the public API is the
//! hand-written `index.js` / `index.d.ts`.

mod algorithm;
mod errors;
mod multi_region;
mod rest_server;
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("ratelimit-native")
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => napi::bindgen_prelude::create_custom_tokio_runtime(runtime),
        Err(err) => eprintln!("ratelimit-native: cannot start its tokio runtime: {err}"),
    }
}
