//! What a store answers: a Redis reply, or why the call failed.

use thiserror::Error;

/// A Redis reply as a store returns it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Nil,
    Int(i64),
    Bytes(Vec<u8>),
    Array(Vec<Reply>),
}

impl Reply {
    /// Integer value of an integer reply or of a numeric string reply.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Reply::Int(i) => Some(*i),
            Reply::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
            _ => None,
        }
    }

    /// The elements of an array reply as numbers (nil and non-numbers become `None`); a scalar
    /// reply is treated as a one-element array.
    pub fn numbers(&self) -> Vec<Option<i64>> {
        match self {
            Reply::Array(items) => items.iter().map(Reply::as_i64).collect(),
            other => vec![other.as_i64()],
        }
    }
}

/// Why a store call failed. Messages never contain credentials.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum StoreError {
    /// Redis rejected the command; the text is Redis' own.
    #[error("Command failed: {0}")]
    Redis(String),
    /// The request did not get an HTTP answer.
    #[error("{0}")]
    Transport(String),
    /// A non-2xx answer, e.g. 401 Unauthorized.
    #[error("{message} (HTTP {status})")]
    Http { status: u16, message: String },
    /// The answer could not be understood.
    #[error("unparseable answer from the Upstash REST server: {0}")]
    BadResponse(String),
    #[error("{0}")]
    InvalidConfig(String),
    /// The memory store holds `max_keys` live keys and refuses new ones.
    #[error("ratelimit-native: the memory store is full ({max_keys} live keys); raise maxKeys in Redis.memory({{ maxKeys }}) or use Redis")]
    Full { max_keys: usize },
    #[error("internal error: {0}")]
    Internal(String),
}
