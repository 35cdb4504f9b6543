//! `NativeStore`: a handle on where limiter state lives, passed to `NativeAlgorithm` methods.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use ratelimit_core::stores::upstash_rest::{UpstashRest, UpstashRestOptions};
use ratelimit_core::stores::Reply;

use crate::errors::store_error;

#[derive(Clone)]
pub(crate) enum StoreKind {
    UpstashRest(UpstashRest),
}

#[napi]
pub struct NativeStore {
    pub(crate) kind: StoreKind,
}

/// Connection options for `NativeStore.upstashRest`.
#[napi(object)]
pub struct UpstashRestStoreOptions {
    /// Concurrent HTTP requests before calls are batched (default 4).
    pub max_in_flight: Option<u32>,
    /// Per-request upper bound in ms (default 10000).
    pub request_timeout_ms: Option<u32>,
    /// Accept certificates that fail verification (self-signed local endpoints only).
    pub accept_invalid_certs: Option<bool>,
}

#[napi]
impl NativeStore {
    /// A store on an Upstash REST endpoint (or `ratelimit-native serve`).
    #[napi(factory)]
    pub fn upstash_rest(
        url: String,
        token: String,
        options: Option<UpstashRestStoreOptions>,
    ) -> Result<NativeStore> {
        let mut opts = UpstashRestOptions::default();
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
        let client = UpstashRest::new(&url, &token, opts).map_err(store_error)?;
        Ok(NativeStore {
            kind: StoreKind::UpstashRest(client),
        })
    }

    /// Runs one plain command (e.g. `["GET", key]`); replies come back as JSON values
    /// (strings, integers, null, arrays).
    #[napi(ts_return_type = "Promise<unknown>")]
    pub async fn command(&self, parts: Vec<String>) -> Result<serde_json::Value> {
        if parts.is_empty() {
            return Err(Error::new(Status::InvalidArg, "empty command"));
        }
        let reply = match &self.kind {
            StoreKind::UpstashRest(client) => client.command(parts).await,
        }
        .map_err(store_error)?;
        Ok(reply_to_json(&reply))
    }
}

fn reply_to_json(reply: &Reply) -> serde_json::Value {
    match reply {
        Reply::Nil => serde_json::Value::Null,
        Reply::Int(i) => serde_json::Value::from(*i),
        Reply::Bytes(b) => serde_json::Value::String(String::from_utf8_lossy(b).into_owned()),
        Reply::Array(items) => serde_json::Value::Array(items.iter().map(reply_to_json).collect()),
    }
}
