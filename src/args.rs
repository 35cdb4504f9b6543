//! The core's argument checks and errors as napi values (the core gives the clear messages).

use napi::{Error, Result, Status};
use ratelimit_core::algorithm::CallError;
use ratelimit_core::args::{self, ArgError};

use crate::errors::invalid_arg;

pub(crate) fn arg_error(err: ArgError) -> Error {
    invalid_arg(err.0)
}

pub(crate) fn call_error(err: CallError) -> Error {
    match err {
        CallError::Arg(err) => arg_error(err),
        CallError::Reply(err) => Error::new(Status::GenericFailure, err.to_string()),
    }
}

/// `Date.now()` from JS: the limiter's clock (fake timers included).
pub(crate) fn clock(now: f64) -> Result<u64> {
    args::clock(now).map_err(arg_error)
}

pub(crate) fn cost(rate: f64) -> Result<f64> {
    args::cost(rate).map_err(arg_error)
}
