//! JS arguments → core values, and core outcomes → the numbers JS receives, shared by the
//! algorithm bindings. The checks give clear errors where upstream would fail later.

use napi::{Error, Result, Status};
use ratelimit_core::algorithms::{LimitOutcome, RemainingOutcome};
use ratelimit_core::duration::MAX_WINDOW_MS;
use ratelimit_core::num::js_number_string;
use ratelimit_core::ReplyError;

use crate::errors::invalid_arg;

pub(crate) fn positive(name: &str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(invalid_arg(format!(
            "ratelimit-native: {name} must be a positive, finite number, got {}",
            js_display(value)
        )))
    }
}

pub(crate) fn window(name: &str, value: f64) -> Result<u64> {
    if value.is_finite() && value >= 1.0 && value <= MAX_WINDOW_MS as f64 && value.fract() == 0.0 {
        Ok(value as u64)
    } else {
        Err(invalid_arg(format!(
            "ratelimit-native: {name} must be a whole number of milliseconds between 1 and 2^53-1, got {}",
            js_display(value)
        )))
    }
}

pub(crate) fn js_display(value: f64) -> String {
    js_number_string(value)
}

/// `Date.now()` from JS: the limiter's clock (fake timers included).
pub(crate) fn clock(now: f64) -> Result<u64> {
    if now.is_finite() && now >= 0.0 {
        Ok(now as u64)
    } else {
        Err(invalid_arg(format!(
            "ratelimit-native: the clock (Date.now()) must be a non-negative time, got {}",
            js_display(now)
        )))
    }
}

pub(crate) fn cost(rate: f64) -> Result<f64> {
    if rate.is_finite() {
        Ok(rate)
    } else {
        Err(invalid_arg(format!(
            "ratelimit-native: rate must be a finite number, got {}",
            js_display(rate)
        )))
    }
}

pub(crate) fn reply_error(err: ReplyError) -> Error {
    Error::new(Status::GenericFailure, err.to_string())
}

/// `[success (1/0), limit, remaining, reset]`
pub(crate) fn limit_array(o: LimitOutcome) -> [f64; 4] {
    [
        f64::from(u8::from(o.success)),
        o.limit,
        o.remaining,
        o.reset,
    ]
}

/// `[success (1/0), limit, remaining, reset]`, as napi-rs returns an array.
pub(crate) fn limit_numbers(o: LimitOutcome) -> Vec<f64> {
    limit_array(o).to_vec()
}

/// `[remaining, reset, limit]`
pub(crate) fn remaining_numbers(o: RemainingOutcome) -> Vec<f64> {
    vec![o.remaining, o.reset, o.limit]
}
