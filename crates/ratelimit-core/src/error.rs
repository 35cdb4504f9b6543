//! Errors shared by the algorithms.

use thiserror::Error;

/// An error a script raises inside Redis, reproduced by the Rust state transitions so an
/// in-memory store fails exactly where Redis would. The messages are Redis's own (Redis appends
/// script details after them, so callers should match on the prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ScriptError {
    /// `INCRBY` with a fractional / out-of-range increment, or `PEXPIRE` with a non-integer time
    /// (a float `rate` on the window algorithms, `refillRate = 0` on the token bucket).
    #[error("ERR value is not an integer or out of range")]
    NotAnInteger,
    /// `INCRBY` past `i64::MAX` / `i64::MIN`.
    #[error("ERR increment or decrement would overflow")]
    Overflow,
}

/// A script reply that does not have the shape the algorithm's client expects.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unexpected reply from the {script} script: {detail}")]
pub struct ReplyError {
    /// The script's name, see [`crate::scripts::Script::name`].
    pub script: &'static str,
    pub detail: String,
}

impl ReplyError {
    pub(crate) fn shape(script: &'static str, values: &[Option<i64>]) -> Self {
        ReplyError {
            script,
            detail: format!("{values:?}"),
        }
    }
}
