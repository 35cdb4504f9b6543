//! One RESP pipeline's replies read from bytes as they arrive, for the Redis transport whose
//! socket lives on Node's event loop (`wire_transport.rs`). Values are decoded by redis-rs' own
//! incremental decoder (`ValueCodec`, the one its connections read with), so a reply means the
//! same here as on the runtime-thread connection (`redis_tcp.rs`).

use bytes::BytesMut;
use redis::{Value, ValueCodec};
use tokio_util::codec::Decoder;

/// Accumulates one request's replies; [`RespAnswer::feed`] says when all are in.
#[derive(Default)]
pub(crate) struct RespAnswer {
    codec: ValueCodec,
    buffer: BytesMut,
    values: Vec<Value>,
    /// Replies the request will get: the connection's greeting's, then one per command.
    expected: usize,
    /// How many of the first replies answer the greeting (AUTH, SELECT, HELLO).
    greeting: usize,
}

impl RespAnswer {
    /// An answer to `commands` commands.
    pub(crate) fn new(commands: usize) -> Self {
        RespAnswer {
            expected: commands,
            values: Vec::with_capacity(commands),
            ..RespAnswer::default()
        }
    }

    /// The request goes out behind a greeting of `replies` commands (a new connection).
    pub(crate) fn expect_greeting(&mut self, replies: usize) {
        self.greeting += replies;
        self.expected += replies;
    }

    /// Adds bytes; `Ok(true)` once every reply is in. Bytes past the last reply are an error
    /// (a connection carries one request at a time, so Redis has nothing else to say).
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<bool, String> {
        self.buffer.extend_from_slice(chunk);
        while self.values.len() < self.expected {
            match self.codec.decode(&mut self.buffer) {
                Ok(Some(value)) => self.values.push(value),
                Ok(None) => return Ok(false),
                Err(e) => return Err(format!("unreadable reply from Redis ({e})")),
            }
        }
        if self.buffer.is_empty() {
            Ok(true)
        } else {
            Err("Redis sent more replies than commands".into())
        }
    }

    /// Whether a reply has started (for the error when the connection ends early).
    pub(crate) fn started(&self) -> bool {
        !self.values.is_empty() || !self.buffer.is_empty()
    }

    /// Whether a complete answer's greeting was refused (the connection is unusable).
    pub(crate) fn greeting_refused(&self) -> bool {
        self.values[..self.greeting.min(self.values.len())]
            .iter()
            .any(|value| matches!(value, Value::ServerError(_)))
    }

    /// The greeting's replies, then the commands'.
    pub(crate) fn finish(self) -> (Vec<Value>, Vec<Value>) {
        let mut values = self.values;
        let commands = values.split_off(self.greeting.min(values.len()));
        (values, commands)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_split_anywhere_are_read_in_order() {
        let bytes =
            b"+OK\r\n:5\r\n$3\r\nabc\r\n*2\r\n:1\r\n$-1\r\n-NOSCRIPT No matching script\r\n";
        for cut in 0..bytes.len() {
            let mut answer = RespAnswer::new(4);
            answer.expect_greeting(1);
            let first = answer.feed(&bytes[..cut]).unwrap();
            assert!(!first || cut == bytes.len());
            assert!(answer.feed(&bytes[cut..]).unwrap(), "cut at {cut}");
            assert!(!answer.greeting_refused());
            let (greeting, commands) = answer.finish();
            assert_eq!(greeting, vec![Value::Okay]);
            assert_eq!(commands.len(), 4);
            assert_eq!(commands[0], Value::Int(5));
            assert_eq!(commands[1], Value::BulkString(b"abc".to_vec()));
            assert_eq!(commands[2], Value::Array(vec![Value::Int(1), Value::Nil]));
            assert!(matches!(&commands[3], Value::ServerError(e) if e.code() == "NOSCRIPT"));
        }
    }

    #[test]
    fn a_refused_greeting_extra_bytes_and_garbage_are_told_apart() {
        let mut answer = RespAnswer::new(1);
        answer.expect_greeting(1);
        assert!(answer
            .feed(b"-WRONGPASS invalid username-password pair\r\n:1\r\n")
            .unwrap());
        assert!(answer.greeting_refused());

        let mut answer = RespAnswer::new(1);
        assert!(answer.feed(b":1\r\n:2\r\n").is_err());

        let mut answer = RespAnswer::new(1);
        assert!(!answer.started());
        assert!(answer.feed(b"HTTP/1.1 400 Bad Request\r\n").is_err());
    }
}
