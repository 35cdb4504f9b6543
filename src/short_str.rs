//! `ShortStr`: a string argument read with one N-API call into a stack buffer.
//!
//! napi-rs reads a `String` argument with two calls (one to measure, one to copy) into a
//! zeroed heap buffer. Rate-limit keys are short (`<prefix>:<identifier>`), and the hot calls
//! (`memoryLimit`, `limitQueue`) take one per call: a single copy into the stack saves the
//! measuring pass, the allocation and the free. Longer strings take napi-rs's own path.

use std::ops::Deref;

use napi::bindgen_prelude::{FromNapiValue, TypeName, ValidateNapiValue};
use napi::{sys, Result, ValueType};

/// Strings whose UTF-8 form fits in this many bytes stay on the stack.
const INLINE: usize = 192;

pub struct ShortStr {
    inline: [u8; INLINE],
    len: usize,
    heap: Option<String>,
}

impl Deref for ShortStr {
    type Target = str;

    fn deref(&self) -> &str {
        match &self.heap {
            Some(text) => text,
            // `from_napi_value` only keeps inline bytes that passed `from_utf8`.
            None => std::str::from_utf8(&self.inline[..self.len]).unwrap_or_default(),
        }
    }
}

impl FromNapiValue for ShortStr {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        let mut inline = [0u8; INLINE];
        let mut len = 0usize;
        // SAFETY: `inline` is writable for INLINE bytes; N-API writes at most INLINE - 1 bytes
        // plus a NUL and reports the bytes written (without the NUL) in `len`.
        let status = unsafe {
            sys::napi_get_value_string_utf8(
                env,
                value,
                inline.as_mut_ptr().cast(),
                INLINE,
                &mut len,
            )
        };
        // N-API never splits a character, so a nearly full buffer may hold a cut-off string:
        // leave anything that long, and every error (not a string), to napi-rs's own path.
        let complete = status == sys::Status::napi_ok && len + 4 < INLINE;
        if complete && std::str::from_utf8(&inline[..len]).is_ok() {
            return Ok(ShortStr {
                inline,
                len,
                heap: None,
            });
        }
        // SAFETY: the same arguments napi-rs received for this parameter.
        let text = unsafe { String::from_napi_value(env, value) }?;
        Ok(ShortStr {
            inline,
            len: 0,
            heap: Some(text),
        })
    }
}

impl TypeName for ShortStr {
    fn type_name() -> &'static str {
        String::type_name()
    }

    fn value_type() -> ValueType {
        String::value_type()
    }
}

impl ValidateNapiValue for ShortStr {}
