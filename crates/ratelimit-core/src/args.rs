//! Values a caller hands in (JS numbers) checked into the core's types, with clear errors where
//! upstream would fail later; and outcomes as the plain numbers the bindings hand back.

use thiserror::Error;

use crate::algorithms::{LimitOutcome, RemainingOutcome};
use crate::duration::MAX_WINDOW_MS;
use crate::num::js_number_string;

/// A value the caller passed is not one the core accepts. The message is for the user.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct ArgError(pub String);

pub fn positive(name: &str, value: f64) -> Result<f64, ArgError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(ArgError(format!(
            "ratelimit-native: {name} must be a positive, finite number, got {}",
            js_number_string(value)
        )))
    }
}

pub fn window(name: &str, value: f64) -> Result<u64, ArgError> {
    if value.is_finite() && value >= 1.0 && value <= MAX_WINDOW_MS as f64 && value.fract() == 0.0 {
        Ok(value as u64)
    } else {
        Err(ArgError(format!(
            "ratelimit-native: {name} must be a whole number of milliseconds between 1 and 2^53-1, got {}",
            js_number_string(value)
        )))
    }
}

/// `Date.now()` from JS: the limiter's clock (fake timers included).
pub fn clock(now: f64) -> Result<u64, ArgError> {
    if now.is_finite() && now >= 0.0 {
        Ok(now as u64)
    } else {
        Err(ArgError(format!(
            "ratelimit-native: the clock (Date.now()) must be a non-negative time, got {}",
            js_number_string(now)
        )))
    }
}

pub fn cost(rate: f64) -> Result<f64, ArgError> {
    if rate.is_finite() {
        Ok(rate)
    } else {
        Err(ArgError(format!(
            "ratelimit-native: rate must be a finite number, got {}",
            js_number_string(rate)
        )))
    }
}

/// `[success (1/0), limit, remaining, reset]`
pub fn limit_array(o: LimitOutcome) -> [f64; 4] {
    [
        f64::from(u8::from(o.success)),
        o.limit,
        o.remaining,
        o.reset,
    ]
}

/// `[remaining, reset, limit]`
pub fn remaining_array(o: RemainingOutcome) -> [f64; 3] {
    [o.remaining, o.reset, o.limit]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_numbers_are_named_in_js_terms() {
        assert_eq!(
            positive("tokens", 0.0).unwrap_err().0,
            "ratelimit-native: tokens must be a positive, finite number, got 0"
        );
        assert!(positive("tokens", f64::NAN)
            .unwrap_err()
            .0
            .ends_with("got NaN"));
        assert!(window("window", 1.5).is_err());
        assert_eq!(window("window", 1000.0), Ok(1000));
        assert!(clock(-1.0).is_err());
        assert!(cost(f64::INFINITY).unwrap_err().0.ends_with("got Infinity"));
        assert_eq!(cost(-2.0), Ok(-2.0));
    }
}
