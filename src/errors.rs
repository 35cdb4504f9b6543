//! Core errors → JS errors. Messages come from the core and never contain credentials.

use napi::{Error, Status};
use ratelimit_core::reply::StoreError;

pub(crate) fn store_error(err: StoreError) -> Error {
    let status = match err {
        StoreError::InvalidConfig(_) => Status::InvalidArg,
        _ => Status::GenericFailure,
    };
    Error::new(status, err.to_string())
}

pub(crate) fn invalid_arg(message: impl Into<String>) -> Error {
    Error::new(Status::InvalidArg, message.into())
}
