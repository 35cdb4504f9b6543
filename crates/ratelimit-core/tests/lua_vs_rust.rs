//! The Lua scripts against the Rust state transitions they transcribe, on a real redis-server.
//!
//! Seeded random call sequences run every step through both: EVAL of the script (with the
//! Upstash-only shebang flag stripped, as our REST bridge does) and the `*_step` function on an
//! in-process model of the keys. Replies, errors, stored values and TTL presence must agree.
//! Set `LUA_VS_RUST_SEED` to vary the seeds; failures name the seed and step.

use std::collections::HashMap;

use ratelimit_core::algorithms::cached_fixed_window::CachedFixedWindow;
use ratelimit_core::algorithms::fixed_window::FixedWindow;
use ratelimit_core::algorithms::sliding_window::SlidingWindow;
use ratelimit_core::algorithms::token_bucket::TokenBucket;
use ratelimit_core::ScriptError;
use ratelimit_core::{keys, num, scripts, BucketState, BucketWrite, CounterWrite, ScriptCall};
use redis::aio::MultiplexedConnection;
use redis::Value;
use test_support::RedisServer;

const STEPS: usize = 150;
const SEQUENCES: u64 = 4;
const RATES: &[f64] = &[
    1.0, 1.0, 1.0, 1.0, 2.0, 3.0, 0.0, -1.0, -3.0, 5.0, 17.0, 1.5, -0.5, 2.5,
];
const DYNAMIC_VALUES: &[&str] = &["3", "0", "7", "2.5", "12", "-1", "1e1"];

fn base_seed() -> u64 {
    std::env::var("LUA_VS_RUST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_260_923)
}

// ---------------------------------------------------------------------------------------------
// Redis side

/// EVAL of the call's script, shebang flag stripped like `upstash-rest-server` does.
async fn eval(conn: &mut MultiplexedConnection, call: &ScriptCall) -> Result<Value, String> {
    let source = call.script.source.as_bytes();
    let runnable =
        upstash_rest_server::strip_key_locking(source).unwrap_or_else(|| source.to_vec());
    redis::cmd("EVAL")
        .arg(runnable)
        .arg(call.keys.len())
        .arg(&call.keys)
        .arg(&call.args)
        .query_async::<Value>(conn)
        .await
        .map_err(|e| e.to_string())
}

/// A Lua table of integers (and nils) as Redis replies it.
fn int_array(value: &Value) -> Vec<Option<i64>> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::Int(i) => Some(*i),
                Value::Nil => None,
                other => panic!("not an integer: {other:?}"),
            })
            .collect(),
        other => panic!("not an array: {other:?}"),
    }
}

/// Both failed with the same Redis error, or both succeeded (the caller compares those).
fn same_error(lua: &Result<Value, String>, rust: Option<ScriptError>, ctx: &str) {
    match (lua, rust) {
        (Err(lua), Some(rust)) => {
            let text = rust.to_string();
            let core = text.trim_start_matches("ERR ");
            assert!(
                lua.contains(core),
                "{ctx}: Lua error {lua:?}, Rust {text:?}"
            );
        }
        (Ok(_), None) => {}
        (lua, rust) => panic!("{ctx}: Lua {lua:?} vs Rust {rust:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The model store: what an in-memory store would hold, and the checks against Redis.

#[derive(Debug, Clone, Copy)]
enum Stored {
    Counter(i64),
    Bucket(BucketState),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    value: Stored,
    ttl_ms: Option<u64>,
    /// The TTL was set by the last step, so Redis's PTTL must be close to it.
    ttl_fresh: bool,
}

#[derive(Default)]
struct Model {
    entries: HashMap<String, Entry>,
}

impl Model {
    fn counter(&self, key: &str) -> Option<i64> {
        match self.entries.get(key)?.value {
            Stored::Counter(c) => Some(c),
            Stored::Bucket(_) => panic!("{key} is a bucket"),
        }
    }

    fn bucket(&self, key: &str) -> Option<BucketState> {
        match self.entries.get(key)?.value {
            Stored::Bucket(b) => Some(b),
            Stored::Counter(_) => panic!("{key} is a counter"),
        }
    }

    /// INCRBY keeps the TTL (a new key has none), then PEXPIRE if asked.
    fn write_counter(&mut self, key: &str, write: CounterWrite) {
        self.write(key, Stored::Counter(write.counter), write.ttl_ms);
    }

    /// HSET keeps the TTL, then PEXPIRE if asked.
    fn write_bucket(&mut self, key: &str, write: BucketWrite) {
        self.write(key, Stored::Bucket(write.state), write.ttl_ms);
    }

    fn write(&mut self, key: &str, value: Stored, ttl_ms: Option<u64>) {
        let entry = self.entries.entry(key.to_string()).or_insert(Entry {
            value,
            ttl_ms: None,
            ttl_fresh: false,
        });
        entry.value = value;
        if ttl_ms.is_some() {
            entry.ttl_ms = ttl_ms;
            entry.ttl_fresh = true;
        }
    }

    fn settle(&mut self) {
        for entry in self.entries.values_mut() {
            entry.ttl_fresh = false;
        }
    }

    /// Redis holds exactly what the model holds for these keys.
    async fn verify(&self, conn: &mut MultiplexedConnection, keys: &[String], ctx: &str) {
        for key in keys {
            let pttl: i64 = redis::cmd("PTTL").arg(key).query_async(conn).await.unwrap();
            let Some(entry) = self.entries.get(key) else {
                assert_eq!(pttl, -2, "{ctx}: {key} should not exist");
                continue;
            };
            match entry.value {
                Stored::Counter(c) => {
                    let got: Option<String> =
                        redis::cmd("GET").arg(key).query_async(conn).await.unwrap();
                    assert_eq!(got, Some(c.to_string()), "{ctx}: value of {key}");
                }
                Stored::Bucket(b) => {
                    let hash: HashMap<String, String> = redis::cmd("HGETALL")
                        .arg(key)
                        .query_async(conn)
                        .await
                        .unwrap();
                    assert_eq!(hash.len(), 2, "{ctx}: fields of {key}: {hash:?}");
                    let field = |name: &str| num::lua_tonumber(&hash[name]).unwrap();
                    assert!(
                        same_f64(field("refilledAt"), b.refilled_at),
                        "{ctx}: {key} {hash:?} vs {b:?}"
                    );
                    assert!(
                        same_f64(field("tokens"), b.tokens),
                        "{ctx}: {key} {hash:?} vs {b:?}"
                    );
                }
            }
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

fn same_f64(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

// ---------------------------------------------------------------------------------------------
// Shared driving: time, identifiers, rates, the dynamic-limit key.

struct Driver {
    rng: fastrand::Rng,
    now: u64,
    prefix: String,
    dynamic_on: bool,
    /// The dynamic-limit key's current text (in Redis and in the model).
    dynamic_value: Option<String>,
}

impl Driver {
    fn new(name: &str, seed: u64, period_ms: u64) -> Driver {
        let mut rng = fastrand::Rng::with_seed(seed);
        let now = 1_700_000_000_000 + rng.u64(..period_ms * 10);
        let dynamic_on = rng.bool();
        Driver {
            rng,
            now,
            prefix: format!("{name}{{{seed}}}"),
            dynamic_on,
            dynamic_value: None,
        }
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.usize(..items.len())]
    }

    /// Moves time: often not at all, sometimes a little, sometimes over one or two periods,
    /// sometimes exactly onto the next boundary (or 1 ms before it).
    fn advance(&mut self, period_ms: u64) {
        self.now += match self.rng.u8(..10) {
            0..=3 => 0,
            4..=6 => self.rng.u64(..period_ms / 4),
            7 => self.rng.u64(..period_ms * 2),
            8 => period_ms - self.now % period_ms,
            _ => (period_ms - self.now % period_ms).saturating_sub(1),
        };
    }

    fn id(&mut self) -> String {
        let id = self.pick(&["a", "b", "c"]);
        keys::prefixed_id(&self.prefix, id)
    }

    fn dynamic_key(&self) -> Option<String> {
        self.dynamic_on
            .then(|| keys::dynamic_limit_key(&self.prefix))
    }

    /// The dynamic limit as the scripts read it: only when enabled and present.
    fn dynamic_limit(&self) -> Option<f64> {
        if !self.dynamic_on {
            return None;
        }
        self.dynamic_value
            .as_deref()
            .map(|v| num::lua_tonumber(v).unwrap())
    }

    /// Now and then sets or deletes the dynamic-limit key (as setDynamicLimit would).
    async fn maybe_change_dynamic(&mut self, conn: &mut MultiplexedConnection) {
        if !self.dynamic_on || self.rng.u8(..8) != 0 {
            return;
        }
        let key = keys::dynamic_limit_key(&self.prefix);
        if self.rng.u8(..4) == 0 {
            let _: () = redis::cmd("DEL").arg(&key).query_async(conn).await.unwrap();
            self.dynamic_value = None;
        } else {
            let value = self.pick(DYNAMIC_VALUES).to_string();
            let _: () = redis::cmd("SET")
                .arg(&key)
                .arg(&value)
                .query_async(conn)
                .await
                .unwrap();
            self.dynamic_value = Some(value);
        }
    }
}

fn seeds(offset: u64) -> impl Iterator<Item = u64> {
    let base = base_seed();
    (0..SEQUENCES).map(move |i| base.wrapping_add(offset * 1000 + i))
}

// ---------------------------------------------------------------------------------------------
// One sequence per algorithm.

async fn fixed_window_sequence(conn: &mut MultiplexedConnection, seed: u64) {
    let mut d = Driver::new("fw", seed, 60_000);
    let window = d.pick(&[60_000, 300_000, 3_600_000]);
    let alg = FixedWindow::new(d.pick(&[1.0, 3.0, 10.0, 2.5, 0.0]), window);
    let mut model = Model::default();
    for step in 0..STEPS {
        let ctx = format!("fixedWindow seed {seed} step {step} {alg:?}");
        d.advance(window);
        d.maybe_change_dynamic(conn).await;
        let id = d.id();
        let key = alg.key(&id, d.now);
        let dynamic_key = d.dynamic_key();
        if d.rng.u8(..4) == 0 {
            let call = alg.remaining_call(&id, d.now, dynamic_key.as_deref().as_slice());
            let lua = eval(conn, &call).await.unwrap();
            let rust = alg.remaining_step(model.counter(&key), d.dynamic_limit());
            assert_eq!(int_array(&lua), rust.to_values(), "{ctx}: getRemaining");
        } else {
            let rate = d.pick(RATES);
            let call = alg.limit_call(&id, d.now, rate, dynamic_key.as_deref().as_slice());
            let lua = eval(conn, &call).await;
            let rust = alg.limit_step(model.counter(&key), rate, d.dynamic_limit());
            let ctx = format!("{ctx} rate {rate}");
            same_error(&lua, rust.err(), &ctx);
            if let (Ok(lua), Ok(step)) = (&lua, rust) {
                assert_eq!(int_array(lua), step.reply.to_values(), "{ctx}: limit reply");
                model.write_counter(&key, step.write);
            }
        }
        model.verify(conn, &[key], &ctx).await;
        model.settle();
    }
}

async fn sliding_window_sequence(conn: &mut MultiplexedConnection, seed: u64) {
    let mut d = Driver::new("sw", seed, 60_000);
    let window = d.pick(&[60_000, 300_000, 3_600_000]);
    let alg = SlidingWindow::new(d.pick(&[1.0, 3.0, 10.0, 2.5, 0.0]), window);
    let mut model = Model::default();
    for step in 0..STEPS {
        let ctx = format!("slidingWindow seed {seed} step {step} {alg:?}");
        d.advance(window);
        d.maybe_change_dynamic(conn).await;
        let id = d.id();
        let (current, previous) = alg.keys(&id, d.now);
        let dynamic_key = d.dynamic_key();
        let (cur, prev) = (model.counter(&current), model.counter(&previous));
        if d.rng.u8(..4) == 0 {
            let call = alg.remaining_call(&id, d.now, dynamic_key.as_deref().as_slice());
            let lua = eval(conn, &call).await.unwrap();
            let rust = alg.remaining_step(cur, prev, d.now, d.dynamic_limit());
            assert_eq!(int_array(&lua), rust.to_values(), "{ctx}: getRemaining");
        } else {
            let rate = d.pick(RATES);
            let call = alg.limit_call(&id, d.now, rate, dynamic_key.as_deref().as_slice());
            let lua = eval(conn, &call).await;
            let rust = alg.limit_step(cur, prev, d.now, rate, d.dynamic_limit());
            let ctx = format!("{ctx} rate {rate} now {}", d.now);
            same_error(&lua, rust.err(), &ctx);
            if let (Ok(lua), Ok(step)) = (&lua, rust) {
                assert_eq!(int_array(lua), step.reply.to_values(), "{ctx}: limit reply");
                if let Some(write) = step.write {
                    model.write_counter(&current, write);
                }
            }
        }
        model.verify(conn, &[current, previous], &ctx).await;
        model.settle();
    }
}

async fn token_bucket_sequence(conn: &mut MultiplexedConnection, seed: u64, refill_rates: &[f64]) {
    let mut d = Driver::new("tb", seed, 60_000);
    let interval = d.pick(&[60_000, 120_000, 600_000]);
    let alg = TokenBucket::new(
        d.pick(refill_rates),
        interval,
        d.pick(&[5.0, 10.0, 2.5, 1.0]),
    );
    let mut model = Model::default();
    let rates: Vec<f64> = RATES.iter().copied().chain([0.5, 4.0]).collect();
    for step in 0..STEPS {
        let ctx = format!("tokenBucket seed {seed} step {step} {alg:?}");
        d.advance(interval);
        d.maybe_change_dynamic(conn).await;
        let id = d.id();
        let key = TokenBucket::key(&id);
        let dynamic_key = d.dynamic_key();
        if d.rng.u8(..4) == 0 {
            let call = alg.remaining_call(&id, dynamic_key.as_deref().as_slice());
            let lua = eval(conn, &call).await.unwrap();
            let rust = alg.remaining_step(model.bucket(&key), d.dynamic_limit());
            assert_eq!(int_array(&lua), rust.to_values(), "{ctx}: getRemaining");
        } else {
            let rate = d.pick(&rates);
            let call = alg.limit_call(&id, d.now, rate, dynamic_key.as_deref().as_slice());
            let lua = eval(conn, &call).await;
            let rust = alg.limit_step(model.bucket(&key), d.now, rate, d.dynamic_limit());
            let ctx = format!("{ctx} rate {rate} now {}", d.now);
            same_error(&lua, rust.reply.err(), &ctx);
            if let (Ok(lua), Ok(reply)) = (&lua, rust.reply) {
                assert_eq!(int_array(lua), reply.to_values(), "{ctx}: limit reply");
            }
            // Written even when the script then failed (no rollback in Redis).
            if let Some(write) = rust.write {
                model.write_bucket(&key, write);
            }
        }
        model.verify(conn, &[key], &ctx).await;
        model.settle();
    }
}

async fn cached_fixed_window_sequence(conn: &mut MultiplexedConnection, seed: u64) {
    let mut d = Driver::new("cfw", seed, 60_000);
    let window = d.pick(&[60_000, 300_000, 3_600_000]);
    let alg = CachedFixedWindow::new(3.0, window);
    let mut model = Model::default();
    for step in 0..STEPS {
        let ctx = format!("cachedFixedWindow seed {seed} step {step} {alg:?}");
        d.advance(window);
        let id = d.id();
        let key = alg.key(&id, d.now);
        if d.rng.u8(..4) == 0 {
            let lua = eval(conn, &alg.remaining_call(&id, d.now)).await.unwrap();
            let counter = model.counter(&key);
            let used = CachedFixedWindow::remaining_step(counter);
            // The stored text when the key exists, else the integer 0.
            let expected = match counter {
                Some(c) => Value::BulkString(c.to_string().into_bytes()),
                None => Value::Int(used),
            };
            assert_eq!(lua, expected, "{ctx}: getRemaining");
        } else {
            let rate = d.pick(RATES);
            let lua = eval(conn, &alg.limit_call(&id, d.now, rate)).await;
            let rust = alg.limit_step(model.counter(&key), rate);
            let ctx = format!("{ctx} rate {rate}");
            same_error(&lua, rust.err(), &ctx);
            if let (Ok(lua), Ok(step)) = (&lua, rust) {
                assert_eq!(lua, &Value::Int(step.reply), "{ctx}: limit reply");
                model.write_counter(&key, step.write);
            }
        }
        model.verify(conn, &[key], &ctx).await;
        model.settle();
    }
}

#[tokio::test]
async fn fixed_window_lua_matches_rust() {
    let server = RedisServer::start();
    let mut conn = server.connection().await;
    for seed in seeds(1) {
        fixed_window_sequence(&mut conn, seed).await;
    }
}

#[tokio::test]
async fn sliding_window_lua_matches_rust() {
    let server = RedisServer::start();
    let mut conn = server.connection().await;
    for seed in seeds(2) {
        sliding_window_sequence(&mut conn, seed).await;
    }
}

#[tokio::test]
async fn token_bucket_lua_matches_rust() {
    let server = RedisServer::start();
    let mut conn = server.connection().await;
    for seed in seeds(3) {
        token_bucket_sequence(&mut conn, seed, &[1.0, 2.0, 0.5, 3.0]).await;
    }
}

/// Refill rates that make `PEXPIRE` fail after `HSET` (0: infinite TTL; 1e-12: a TTL beyond
/// 1e17 ms) or never expire (negative).
#[tokio::test]
async fn token_bucket_degenerate_refill_rates_match() {
    let server = RedisServer::start();
    let mut conn = server.connection().await;
    for seed in seeds(4) {
        token_bucket_sequence(&mut conn, seed, &[0.0, -1.0, 1e-12]).await;
    }
}

#[tokio::test]
async fn cached_fixed_window_lua_matches_rust() {
    let server = RedisServer::start();
    let mut conn = server.connection().await;
    for seed in seeds(5) {
        cached_fixed_window_sequence(&mut conn, seed).await;
    }
}

/// Edges the random sequences do not reach: INCRBY overflow, non-finite limits (replied as
/// `i64::MIN` by the C cast), exponent-form rates.
#[tokio::test]
async fn edge_values_match() {
    let server = RedisServer::start();
    let mut conn = server.connection().await;
    let now = 1_700_000_012_345;

    let alg = FixedWindow::new(3.0, 60_000);
    let key = alg.key("edge:max", now);
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(i64::MAX)
        .query_async(&mut conn)
        .await
        .unwrap();
    let lua = eval(&mut conn, &alg.limit_call("edge:max", now, 1.0, &[])).await;
    same_error(
        &lua,
        alg.limit_step(Some(i64::MAX), 1.0, None).err(),
        "overflow",
    );
    assert!(lua.is_err());

    for tokens in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300, -2.5] {
        let alg = FixedWindow::new(tokens, 60_000);
        let id = format!("edge:tokens:{tokens}");
        let lua = eval(&mut conn, &alg.limit_call(&id, now, 1.0, &[]))
            .await
            .unwrap();
        let rust = alg.limit_step(None, 1.0, None).unwrap();
        assert_eq!(int_array(&lua), rust.reply.to_values(), "tokens {tokens}");
        let lua = eval(&mut conn, &alg.remaining_call(&id, now, &[]))
            .await
            .unwrap();
        assert_eq!(
            int_array(&lua),
            alg.remaining_step(Some(1), None).to_values(),
            "tokens {tokens}"
        );

        let alg = TokenBucket::new(1.0, 60_000, tokens);
        let lua = eval(&mut conn, &alg.limit_call(&id, now, 1.0, &[])).await;
        let rust = alg.limit_step(None, now, 1.0, None);
        same_error(&lua, rust.reply.err(), &format!("bucket tokens {tokens}"));
        if let (Ok(lua), Ok(reply)) = (&lua, rust.reply) {
            assert_eq!(int_array(lua), reply.to_values(), "bucket tokens {tokens}");
        }
    }

    // Exponent forms: JS writes "1e+21"; Lua writes "1e+17" for the sliding window's INCRBY.
    let rates = [
        1e21,
        1e17,
        -1e17,
        99_999_999_999_999_984.0,
        2f64.powi(62),
        f64::NAN,
        -0.0,
    ];
    for rate in rates {
        let alg = FixedWindow::new(3.0, 60_000);
        let id = format!("edge:rate:{rate}");
        let lua = eval(&mut conn, &alg.limit_call(&id, now, rate, &[])).await;
        let rust = alg.limit_step(None, rate, None);
        same_error(&lua, rust.err(), &format!("rate {rate}"));
        if let (Ok(lua), Ok(step)) = (&lua, rust) {
            assert_eq!(int_array(lua), step.reply.to_values(), "rate {rate}");
        }

        let alg = SlidingWindow::new(3.0, 60_000);
        let id = format!("edge:sliding-rate:{rate}");
        let lua = eval(&mut conn, &alg.limit_call(&id, now, rate, &[])).await;
        let rust = alg.limit_step(None, None, now, rate, None);
        same_error(&lua, rust.err(), &format!("sliding rate {rate}"));
        if let (Ok(lua), Ok(step)) = (&lua, rust) {
            assert_eq!(
                int_array(lua),
                step.reply.to_values(),
                "sliding rate {rate}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// resetUsedTokens

async fn all_keys(conn: &mut MultiplexedConnection) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(conn).await.unwrap();
    keys.sort();
    keys
}

async fn reset(conn: &mut MultiplexedConnection, target: &keys::ResetTarget) -> i64 {
    let call = ScriptCall {
        script: &scripts::RESET,
        keys: vec![target.pattern.clone()],
        args: target.args.clone(),
    };
    match eval(conn, &call).await.unwrap() {
        Value::Int(n) => n,
        other => panic!("reset replied {other:?}"),
    }
}

#[tokio::test]
async fn reset_deletes_exactly_the_escaped_target() {
    let server = RedisServer::start();
    let mut conn = server.connection().await;
    let ids = ["user", "user:1", "userX", "a*", "ab", "a"];
    // Glob characters in the prefixes too, to check they are escaped as well.
    let (window_prefix, bucket_prefix) = ("win[1]?", "tb*");
    let now = 1_700_000_012_345;
    let fw = FixedWindow::new(10.0, 60_000);
    let tb = TokenBucket::new(1.0, 60_000, 10.0);
    for id in ids {
        let pid = keys::prefixed_id(window_prefix, id);
        for at in [now, now - 60_000, now - 120_000] {
            eval(&mut conn, &fw.limit_call(&pid, at, 1.0, &[]))
                .await
                .unwrap();
        }
        let pid = keys::prefixed_id(bucket_prefix, id);
        eval(&mut conn, &tb.limit_call(&pid, now, 1.0, &[]))
            .await
            .unwrap();
    }
    // Keys of other shapes under the same prefix survive a window reset.
    for key in [
        "win[1]?:user:abc",
        "win[1]?:dynamic:global",
        "win[1]?:user:",
    ] {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg("1")
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    let cases: Vec<(keys::ResetTarget, String, bool)> = vec![
        (
            FixedWindow::reset_target(&keys::prefixed_id(window_prefix, "user")),
            keys::prefixed_id(window_prefix, "user"),
            true,
        ),
        (
            FixedWindow::reset_target(&keys::prefixed_id(window_prefix, "a*")),
            keys::prefixed_id(window_prefix, "a*"),
            true,
        ),
        (
            FixedWindow::reset_target(&keys::prefixed_id(window_prefix, "dynamic")),
            keys::prefixed_id(window_prefix, "dynamic"),
            true,
        ),
        (
            TokenBucket::reset_target(&keys::prefixed_id(bucket_prefix, "a*")),
            keys::prefixed_id(bucket_prefix, "a*"),
            false,
        ),
        (
            TokenBucket::reset_target(&keys::prefixed_id(bucket_prefix, "user")),
            keys::prefixed_id(bucket_prefix, "user"),
            false,
        ),
    ];
    for (target, pid, windowed) in cases {
        let before = all_keys(&mut conn).await;
        let expected_gone: Vec<String> = before
            .iter()
            .filter(|k| {
                if windowed {
                    keys::is_window_key_of(k, &pid)
                } else {
                    **k == pid
                }
            })
            .cloned()
            .collect();
        let deleted = reset(&mut conn, &target).await;
        let after = all_keys(&mut conn).await;
        let gone: Vec<String> = before
            .iter()
            .filter(|k| !after.contains(k))
            .cloned()
            .collect();
        assert_eq!(gone, expected_gone, "reset of {pid}");
        assert_eq!(deleted, gone.len() as i64, "reset of {pid}");
    }
    let left = all_keys(&mut conn).await;
    for survivor in [
        "win[1]?:user:1:",
        "win[1]?:userX:",
        "win[1]?:ab:",
        "win[1]?:a:",
    ] {
        assert_eq!(
            left.iter().filter(|k| k.starts_with(survivor)).count(),
            3,
            "{survivor} in {left:?}"
        );
    }
    for survivor in [
        "tb*:user:1",
        "tb*:userX",
        "tb*:ab",
        "tb*:a",
        "win[1]?:user:abc",
        "win[1]?:dynamic:global",
        "win[1]?:user:",
    ] {
        assert!(left.iter().any(|k| k == survivor), "{survivor} in {left:?}");
    }
    assert!(!left
        .iter()
        .any(|k| k.starts_with("win[1]?:user:2") || k == "tb*:a*" || k == "tb*:user"));
}

#[tokio::test]
async fn reset_walks_every_scan_page() {
    let server = RedisServer::start();
    let mut conn = server.connection().await;
    let total: i64 = 2_500;
    for bucket in 0..total {
        let _: () = redis::cmd("MSET")
            .arg(format!("P:many:{bucket}"))
            .arg("1")
            .arg(format!("P:many:1:{bucket}"))
            .arg("1")
            .arg(format!("P:other:{bucket}"))
            .arg("1")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let deleted = reset(&mut conn, &keys::window_reset_target("P:many")).await;
    assert_eq!(deleted, total);
    let left = all_keys(&mut conn).await;
    assert_eq!(left.len() as i64, 2 * total);
    assert!(left.iter().all(|k| !keys::is_window_key_of(k, "P:many")));
    // Nothing left to delete: 0.
    assert_eq!(
        reset(&mut conn, &keys::window_reset_target("P:many")).await,
        0
    );
}
