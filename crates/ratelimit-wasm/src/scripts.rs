//! Durations and scripts: `parseDuration`, `knownScriptSource`, `stockScript`.

use ratelimit_core::scripts::{self, Script};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::errors::js_error;

/// A script invocation for the compat path: `evalsha(sha1, keys, args)`, `eval(script, …)`.
#[derive(Serialize)]
pub(crate) struct ScriptInvocation {
    pub sha1: String,
    pub script: String,
    pub keys: Vec<String>,
    pub args: Vec<String>,
}

impl From<scripts::ScriptCall> for ScriptInvocation {
    fn from(call: scripts::ScriptCall) -> Self {
        ScriptInvocation {
            sha1: call.script.sha1().to_string(),
            script: call.script.source.to_string(),
            keys: call.keys,
            args: call.args,
        }
    }
}

pub(crate) fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(js_error)
}

pub(crate) fn invocation(call: scripts::ScriptCall) -> Result<JsValue, JsError> {
    to_js(&ScriptInvocation::from(call))
}

/// Parses a window such as `"10 s"` into milliseconds, with upstream's error messages.
#[wasm_bindgen(js_name = parseDuration)]
pub fn parse_duration(window: &str) -> Result<f64, JsError> {
    ratelimit_core::parse_duration(window)
        .map(|ms| ms as f64)
        .map_err(js_error)
}

/// The SHA1 and text of one of the package's own scripts, for the compat path.
#[wasm_bindgen(js_name = knownScriptSource)]
pub fn known_script_source(name: &str) -> Result<JsValue, JsError> {
    let script: &Script =
        scripts::named(name).ok_or_else(|| JsError::new(&format!("unknown script {name:?}")))?;
    to_js(&ScriptInvocation {
        sha1: script.sha1().to_string(),
        script: script.source.to_string(),
        keys: Vec::new(),
        args: Vec::new(),
    })
}

/// The script without Upstash's key-locking line and its SHA1, for a client on stock Redis;
/// null for a script without that line.
#[wasm_bindgen(js_name = stockScript)]
pub fn stock_script(script: &str) -> Result<JsValue, JsError> {
    match scripts::stock_variant(script) {
        None => Ok(JsValue::NULL),
        Some((stock, sha1)) => to_js(&ScriptInvocation {
            sha1,
            script: stock.to_string(),
            keys: Vec::new(),
            args: Vec::new(),
        }),
    }
}
