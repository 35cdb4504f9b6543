//! The WebAssembly binding: the same core as the Node addon (`ratelimit-core`, and the memory
//! store of `ratelimit-stores`), exported under the names the Node addon uses, so the JS facade
//! (`lib/`) drives either engine through the same code. Like the napi binding it only marshals;
//! there is no remote store here: on this engine requests go through JS (`fetch`, or Node.js' own
//! HTTP client), which `limit_batch` writes and reads in one crossing per batch.

mod algorithm;
mod errors;
mod limit_batch;
mod memory;
mod multi_region;
mod scripts;
