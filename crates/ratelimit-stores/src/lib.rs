//! Where ratelimit-native's limiter state lives, and the I/O to reach it:
//! - the embedded memory store's tables ([`memory`], [`window_key`]) and the algorithms' step
//!   functions applied to them ([`memory_limiters`]); these compile to WebAssembly too;
//! - with the `remote` feature (the Node addon): the remote queue ([`remote`]) and its
//!   transports, Upstash REST over reqwest or over an event-loop socket ([`wire_transport`]),
//!   and Redis over TCP ([`redis_tcp`]).
//!
//! What to send and how to read the answer is the pure core's (`ratelimit-core`).

#[cfg(feature = "remote")]
mod http_response;
pub mod memory;
pub mod memory_algorithm;
pub mod memory_batch;
pub mod memory_limiters;
#[cfg(feature = "remote")]
pub mod redis_cluster;
#[cfg(feature = "remote")]
pub mod redis_tcp;
#[cfg(feature = "remote")]
pub mod remote;
#[cfg(feature = "remote")]
mod resp_answer;
#[cfg(feature = "remote")]
mod rest_transport;
#[cfg(feature = "remote")]
mod tls;
pub mod window_key;
#[cfg(feature = "remote")]
pub mod wire_transport;

pub use ratelimit_core::reply::{Reply, StoreError};
