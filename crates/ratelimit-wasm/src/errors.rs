//! Core errors → JS errors (the messages are the core's, the same as the Node addon's).

use std::fmt::Display;

use wasm_bindgen::JsError;

pub(crate) fn js_error(err: impl Display) -> JsError {
    JsError::new(&err.to_string())
}
