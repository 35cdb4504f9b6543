//! The multi-region Lua scripts against the Rust state transitions they transcribe, on a real
//! redis-server (one region: each region runs the same scripts on its own database).
//!
//! Seeded random sequences mix limit and getRemaining calls with the back-fill writes that
//! `pending` makes (`HSET key id <rate>`), over fractional, negative, zero and large rates, and
//! sometimes re-use a request id. Replies (order included), stored hashes (order included) and
//! TTLs must agree. Set `LUA_VS_RUST_SEED` to vary the seeds; failures name the seed and step.

use std::collections::HashMap;

use ratelimit_core::algorithms::multi_region::{
    hash_fields_from_reply, hset, HashFields, HashWrite, MultiFixedWindow, MultiSlidingWindow,
    MultiSlidingWindowLimitReply,
};
use ratelimit_core::num::js_number_string;
use ratelimit_core::reply::Reply;
use ratelimit_core::ScriptCall;
use redis::aio::MultiplexedConnection;
use redis::Value;
use test_support::RedisServer;

const STEPS: usize = 150;
const SEQUENCES: u64 = 4;
const RATES: &[f64] = &[
    1.0, 1.0, 1.0, 1.0, 2.0, 3.0, 0.0, -1.0, -3.0, 5.0, 0.1, 1.5, -0.5, 2.5, 1e-5, 1e17, -0.0,
];
/// Stay well inside Redis' listpack encoding (insertion-ordered HGETALL).
const MAX_FIELDS: usize = 100;

fn base_seed() -> u64 {
    std::env::var("LUA_VS_RUST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_260_923)
}

fn seeds(offset: u64) -> impl Iterator<Item = u64> {
    let base = base_seed();
    (0..SEQUENCES).map(move |i| base.wrapping_add(offset * 1000 + i))
}

// ---------------------------------------------------------------------------------------------
// Redis side

async fn eval(conn: &mut MultiplexedConnection, call: &ScriptCall) -> Reply {
    let source = call.script.source.as_bytes();
    let runnable =
        upstash_rest_server::strip_key_locking(source).unwrap_or_else(|| source.to_vec());
    let value: Value = redis::cmd("EVAL")
        .arg(runnable)
        .arg(call.keys.len())
        .arg(&call.keys)
        .arg(&call.args)
        .query_async(conn)
        .await
        .unwrap_or_else(|e| panic!("{} failed: {e}", call.script.name));
    to_reply(value)
}

fn to_reply(value: Value) -> Reply {
    match value {
        Value::Nil => Reply::Nil,
        Value::Int(i) => Reply::Int(i),
        Value::BulkString(bytes) => Reply::Bytes(bytes),
        Value::SimpleString(s) => Reply::Bytes(s.into_bytes()),
        Value::Okay => Reply::Bytes(b"OK".to_vec()),
        Value::Array(items) => Reply::Array(items.into_iter().map(to_reply).collect()),
        other => panic!("unexpected reply {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The model store

#[derive(Debug, Clone)]
struct Entry {
    fields: HashFields,
    ttl_ms: Option<u64>,
    /// The TTL was set by the last step, so Redis's PTTL must be close to it.
    ttl_fresh: bool,
}

#[derive(Default)]
struct Model {
    entries: HashMap<String, Entry>,
}

impl Model {
    fn hash(&self, key: &str) -> HashFields {
        self.entries
            .get(key)
            .map(|e| e.fields.clone())
            .unwrap_or_default()
    }

    /// HSET keeps the TTL (a new key has none), then PEXPIRE if asked.
    fn write(&mut self, key: &str, write: &HashWrite) {
        let entry = self.entries.entry(key.to_string()).or_insert(Entry {
            fields: HashFields::new(),
            ttl_ms: None,
            ttl_fresh: false,
        });
        write.apply_to(&mut entry.fields);
        if let Some(ttl) = write.ttl_ms {
            entry.ttl_ms = Some(ttl);
            entry.ttl_fresh = true;
        }
    }

    fn settle(&mut self) {
        for entry in self.entries.values_mut() {
            entry.ttl_fresh = false;
        }
    }

    async fn verify(&self, conn: &mut MultiplexedConnection, keys: &[String], ctx: &str) {
        for key in keys {
            let pttl: i64 = redis::cmd("PTTL").arg(key).query_async(conn).await.unwrap();
            let Some(entry) = self.entries.get(key) else {
                assert_eq!(pttl, -2, "{ctx}: {key} should not exist");
                continue;
            };
            let raw: Value = redis::cmd("HGETALL")
                .arg(key)
                .query_async(conn)
                .await
                .unwrap();
            let stored = hash_fields_from_reply("HGETALL", &to_reply(raw)).unwrap();
            assert_eq!(stored, entry.fields, "{ctx}: hash {key}");
            match entry.ttl_ms {
                None => assert_eq!(pttl, -1, "{ctx}: {key} should have no TTL"),
                Some(ttl) => {
                    assert!(
                        pttl > 0 && pttl as u64 <= ttl,
                        "{ctx}: {key} PTTL {pttl} vs {ttl}"
                    );
                    if entry.ttl_fresh {
                        assert!(
                            ttl - pttl as u64 <= 5_000,
                            "{ctx}: {key} PTTL {pttl} vs fresh {ttl}"
                        );
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Driving

struct Driver {
    rng: fastrand::Rng,
    now: u64,
    prefix: String,
    ids_used: Vec<String>,
}

impl Driver {
    fn new(name: &str, seed: u64, period_ms: u64) -> Driver {
        let mut rng = fastrand::Rng::with_seed(seed);
        let now = 1_700_000_000_000 + rng.u64(..period_ms * 10);
        Driver {
            rng,
            now,
            prefix: format!("{name}{{{seed}}}"),
            ids_used: Vec::new(),
        }
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.usize(..items.len())]
    }

    fn advance(&mut self, period_ms: u64) {
        self.now += match self.rng.u8(..10) {
            0..=3 => 0,
            4..=6 => self.rng.u64(..period_ms / 4),
            7 => self.rng.u64(..period_ms * 2),
            8 => period_ms - self.now % period_ms,
            _ => (period_ms - self.now % period_ms).saturating_sub(1),
        };
    }

    fn identifier(&mut self) -> String {
        let id = self.pick(&["a", "b", "c"]);
        format!("{}:{id}", self.prefix)
    }

    /// Mostly a fresh 16-character request id; sometimes one used before (a replaced field).
    fn request_id(&mut self) -> String {
        if !self.ids_used.is_empty() && self.rng.u8(..8) == 0 {
            let i = self.rng.usize(..self.ids_used.len());
            return self.ids_used[i].clone();
        }
        const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let id: String = (0..16)
            .map(|_| CHARS[self.rng.usize(..CHARS.len())] as char)
            .collect();
        self.ids_used.push(id.clone());
        id
    }
}

/// The back-fill `pending` sends: `HSET key id String(rate)` (no TTL change).
async fn back_fill(
    conn: &mut MultiplexedConnection,
    model: &mut Model,
    key: &str,
    id: &str,
    rate: f64,
) {
    let value = js_number_string(rate);
    let _: i64 = redis::cmd("HSET")
        .arg(key)
        .arg(id)
        .arg(&value)
        .query_async(conn)
        .await
        .unwrap();
    let entry = model.entries.entry(key.to_string()).or_insert(Entry {
        fields: HashFields::new(),
        ttl_ms: None,
        ttl_fresh: false,
    });
    hset(&mut entry.fields, id, &value);
}

async fn fixed_window_sequence(conn: &mut MultiplexedConnection, seed: u64) {
    let mut d = Driver::new("mfw", seed, 60_000);
    let window = d.pick(&[60_000, 300_000, 3_600_000]);
    let alg = MultiFixedWindow::new(d.pick(&[1.0, 3.0, 10.0, 2.5]), window);
    let mut model = Model::default();
    for step in 0..STEPS {
        let ctx = format!("multi fixedWindow seed {seed} step {step} {alg:?}");
        d.advance(window);
        let id = d.identifier();
        let key = alg.key(&id, d.now);
        let hash = model.hash(&key);
        let roll = d.rng.u8(..8);
        if roll < 2 || hash.len() >= MAX_FIELDS {
            let reply = eval(conn, &alg.remaining_call(&id, d.now)).await;
            let lua = alg.decode_reply(&reply).unwrap();
            assert_eq!(lua, alg.remaining_step(&hash), "{ctx}: getRemaining");
        } else if roll == 2 {
            let request_id = d.request_id();
            let rate = d.pick(RATES);
            back_fill(conn, &mut model, &key, &request_id, rate).await;
        } else {
            let request_id = d.request_id();
            let rate = d.pick(RATES);
            let ctx = format!("{ctx} rate {rate} id {request_id}");
            let reply = eval(conn, &alg.limit_call(&id, d.now, &request_id, rate)).await;
            let lua = alg.decode_reply(&reply).unwrap();
            let rust = alg.limit_step(&hash, &request_id, rate);
            assert_eq!(lua, rust.reply, "{ctx}: limit reply");
            // The arithmetic on either reply is the same function of the same entries.
            assert_eq!(
                alg.limit_outcome(&lua, d.now),
                alg.limit_outcome(&rust.reply, d.now),
                "{ctx}"
            );
            model.write(&key, &rust.write);
        }
        model.verify(conn, &[key], &ctx).await;
        model.settle();
    }
}

async fn sliding_window_sequence(conn: &mut MultiplexedConnection, seed: u64) {
    let mut d = Driver::new("msw", seed, 60_000);
    let window = d.pick(&[60_000, 300_000, 3_600_000]);
    let alg = MultiSlidingWindow::new(d.pick(&[1.0, 3.0, 10.0, 2.5]), window);
    let mut model = Model::default();
    for step in 0..STEPS {
        let ctx = format!("multi slidingWindow seed {seed} step {step} {alg:?}");
        d.advance(window);
        let id = d.identifier();
        let (current_key, previous_key) = alg.keys(&id, d.now);
        let current = model.hash(&current_key);
        let previous = model.hash(&previous_key);
        let roll = d.rng.u8(..8);
        if roll < 2 || current.len() >= MAX_FIELDS {
            let lua = eval(conn, &alg.remaining_call(&id, d.now)).await;
            let rust = alg.remaining_step(&current, &previous, d.now);
            assert_eq!(lua, Reply::Int(rust), "{ctx}: getRemaining now {}", d.now);
        } else if roll == 2 {
            let request_id = d.request_id();
            let rate = d.pick(RATES);
            back_fill(conn, &mut model, &current_key, &request_id, rate).await;
        } else {
            let request_id = d.request_id();
            let rate = d.pick(RATES);
            let ctx = format!("{ctx} rate {rate} id {request_id} now {}", d.now);
            let reply = eval(conn, &alg.limit_call(&id, d.now, &request_id, rate)).await;
            let lua = MultiSlidingWindowLimitReply::from_reply(&reply).unwrap();
            let rust = alg.limit_step(&current, &previous, d.now, &request_id, rate);
            assert_eq!(lua, rust.reply, "{ctx}: limit reply");
            assert_eq!(reply, rust.reply.to_reply(), "{ctx}: raw reply");
            if let Some(write) = &rust.write {
                model.write(&current_key, write);
            }
        }
        model.verify(conn, &[current_key, previous_key], &ctx).await;
        model.settle();
    }
}

#[tokio::test]
async fn multi_fixed_window_lua_matches_rust() {
    let server = RedisServer::start();
    let mut conn = server.connection().await;
    for seed in seeds(11) {
        fixed_window_sequence(&mut conn, seed).await;
    }
}

#[tokio::test]
async fn multi_sliding_window_lua_matches_rust() {
    let server = RedisServer::start();
    let mut conn = server.connection().await;
    for seed in seeds(12) {
        sliding_window_sequence(&mut conn, seed).await;
    }
}

/// Rates as HSET stores them when a script passes a Lua number (Redis 7.0: `%.17g`).
#[tokio::test]
async fn stored_rate_text_matches_redis() {
    let server = RedisServer::start();
    let mut conn = server.connection().await;
    let alg = MultiFixedWindow::new(3.0, 60_000);
    let now = 1_700_000_012_345;
    let rates = [
        0.1,
        1.0 / 3.0,
        -2.5e-7,
        123_456_789.125,
        1e16,
        99_999_999_999_999_984.0,
        1e21,
        -1e300,
        5e-324,
    ];
    for (i, rate) in rates.into_iter().enumerate() {
        let id = format!("fmt:{i}");
        let reply = eval(&mut conn, &alg.limit_call(&id, now, "r", rate)).await;
        let lua = alg.decode_reply(&reply).unwrap();
        assert_eq!(lua, alg.limit_step(&[], "r", rate).reply, "rate {rate:e}");
    }
}
