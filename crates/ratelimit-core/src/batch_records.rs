//! What the two batch bindings (`limitBatch`, `memoryLimitBatch`) read from a batch the same
//! way: each call's key out of the batch's one string of keys, and each call's algorithm out of
//! its numbers.

use crate::algorithm::Algorithm;
use crate::args::ArgError;

/// Appends a key sent as UTF-16 units (a slice of the batch's keys string) to `text`; a lone
/// surrogate becomes U+FFFD, as it would in napi-rs' own string conversion.
pub fn push_key(text: &mut String, units: &[u16]) {
    text.extend(
        char::decode_utf16(units.iter().copied()).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)),
    );
}

/// The algorithm of each record, `[kind, a, b, c]` as `Algorithm::from_numbers` reads it. Consecutive
/// calls nearly always come from one limiter: its numbers are read once.
#[derive(Default)]
pub struct Algorithms {
    last: Option<([f64; 4], Algorithm)>,
}

impl Algorithms {
    pub fn read(&mut self, numbers: [f64; 4]) -> Result<Algorithm, ArgError> {
        match self.last {
            Some((seen, kind)) if seen == numbers => Ok(kind),
            _ => {
                let kind =
                    Algorithm::from_numbers(numbers[0] as u32, numbers[1], numbers[2], numbers[3])?;
                self.last = Some((numbers, kind));
                Ok(kind)
            }
        }
    }
}
