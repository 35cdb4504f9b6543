//! The memory store and real Redis (through the REST server and the Lua scripts) give identical
//! responses to the same random call sequences.
//!
//! Redis expires keys on its own clock while the sequences move the caller's clock forward much
//! faster; before each step, keys the memory store has expired at the caller's clock are deleted
//! from Redis too, which is what Redis would have done had its clock moved the same way.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ratelimit_core::algorithms::fixed_window::FixedWindowLimitReply;
use ratelimit_core::algorithms::sliding_window::SlidingWindowLimitReply;
use ratelimit_core::algorithms::token_bucket::{TokenBucketLimitReply, TokenBucketRemainingReply};
use ratelimit_core::algorithms::WindowRemainingReply;
use ratelimit_core::algorithms::{
    CachedFixedWindow, FixedWindow, LimitOutcome, RemainingOutcome, SlidingWindow, TokenBucket,
};
use ratelimit_core::reply::StoreError;
use ratelimit_core::scripts::{ScriptCall, RESET};
use ratelimit_stores::memory::MemoryStore;
use ratelimit_stores::memory_limiters as mem;
use ratelimit_stores::remote::{RemoteOptions, RemoteStore};
use test_support::RestStack;

#[derive(Clone, Copy, Debug)]
enum Algo {
    Fixed(FixedWindow),
    Sliding(SlidingWindow),
    Bucket(TokenBucket),
    Cached(CachedFixedWindow),
}

#[derive(Debug, PartialEq)]
enum Answer {
    Limit(LimitOutcome),
    Used(i64),
    Remaining(RemainingOutcome),
    Reset,
    Error(String),
}

async fn eval(rest: &RemoteStore, call: ScriptCall) -> Result<Vec<Option<i64>>, StoreError> {
    Ok(rest
        .eval(call.script, call.keys, call.args)
        .await?
        .numbers())
}

fn err(e: StoreError) -> Answer {
    // Redis appends " script: <sha>, on @user_script:<line>." to script errors; compare the
    // error itself.
    let text = e.to_string();
    Answer::Error(text.split(" script:").next().unwrap_or(&text).to_string())
}

async fn on_redis(
    rest: &RemoteStore,
    algo: Algo,
    op: u32,
    id: &str,
    now: u64,
    rate: f64,
    dyn_key: &[&str],
) -> Answer {
    let answer = async {
        Ok::<Answer, StoreError>(match (algo, op) {
            (Algo::Fixed(a), 0) => Answer::Limit(
                a.limit_outcome(
                    &FixedWindowLimitReply::from_values(
                        &eval(rest, a.limit_call(id, now, rate, dyn_key)).await?,
                    )
                    .expect("shape"),
                    now,
                ),
            ),
            (Algo::Sliding(a), 0) => Answer::Limit(
                a.limit_outcome(
                    &SlidingWindowLimitReply::from_values(
                        &eval(rest, a.limit_call(id, now, rate, dyn_key)).await?,
                    )
                    .expect("shape"),
                    now,
                ),
            ),
            (Algo::Bucket(a), 0) => Answer::Limit(
                a.limit_outcome(
                    &TokenBucketLimitReply::from_values(
                        &eval(rest, a.limit_call(id, now, rate, dyn_key)).await?,
                    )
                    .expect("shape"),
                ),
            ),
            (Algo::Cached(a), 0) => {
                Answer::Used(eval(rest, a.limit_call(id, now, rate)).await?[0].expect("counter"))
            }
            (Algo::Fixed(a), 1) => Answer::Remaining(
                a.remaining_outcome(
                    &WindowRemainingReply::from_values(
                        "fw",
                        &eval(rest, a.remaining_call(id, now, dyn_key)).await?,
                    )
                    .expect("shape"),
                    now,
                ),
            ),
            (Algo::Sliding(a), 1) => Answer::Remaining(
                a.remaining_outcome(
                    &WindowRemainingReply::from_values(
                        "sw",
                        &eval(rest, a.remaining_call(id, now, dyn_key)).await?,
                    )
                    .expect("shape"),
                    now,
                ),
            ),
            (Algo::Bucket(a), 1) => Answer::Remaining(
                a.remaining_outcome(
                    &TokenBucketRemainingReply::from_values(
                        &eval(rest, a.remaining_call(id, dyn_key)).await?,
                    )
                    .expect("shape"),
                    now,
                ),
            ),
            (Algo::Cached(a), 1) => Answer::Remaining(a.remaining_outcome(
                eval(rest, a.remaining_call(id, now)).await?[0].unwrap_or(0) as f64,
                now,
            )),
            (algo, _) => {
                let target = match algo {
                    Algo::Bucket(_) => TokenBucket::reset_target(id),
                    _ => FixedWindow::reset_target(id),
                };
                eval(
                    rest,
                    ScriptCall {
                        script: &RESET,
                        keys: vec![target.pattern],
                        args: target.args,
                    },
                )
                .await?;
                Answer::Reset
            }
        })
    }
    .await;
    answer.unwrap_or_else(err)
}

fn on_memory(
    store: &Arc<MemoryStore>,
    algo: Algo,
    op: u32,
    id: &str,
    now: u64,
    rate: f64,
    dyn_key: &[&str],
) -> Answer {
    let answer = match (algo, op) {
        (Algo::Fixed(a), 0) => {
            mem::fixed_window_limit(store, &a, id, now, rate, dyn_key).map(Answer::Limit)
        }
        (Algo::Sliding(a), 0) => {
            mem::sliding_window_limit(store, &a, id, now, rate, dyn_key).map(Answer::Limit)
        }
        (Algo::Bucket(a), 0) => {
            mem::token_bucket_limit(store, &a, id, now, rate, dyn_key).map(Answer::Limit)
        }
        (Algo::Cached(a), 0) => {
            mem::cached_fixed_window_increment(store, &a, id, now, rate).map(Answer::Used)
        }
        (Algo::Fixed(a), 1) => Ok(Answer::Remaining(mem::fixed_window_remaining(
            store, &a, id, now, dyn_key,
        ))),
        (Algo::Sliding(a), 1) => Ok(Answer::Remaining(mem::sliding_window_remaining(
            store, &a, id, now, dyn_key,
        ))),
        (Algo::Bucket(a), 1) => Ok(Answer::Remaining(mem::token_bucket_remaining(
            store, &a, id, now, dyn_key,
        ))),
        (Algo::Cached(a), 1) => Ok(Answer::Remaining(a.remaining_outcome(
            mem::cached_fixed_window_used(store, &a, id, now) as f64,
            now,
        ))),
        (Algo::Bucket(_), _) => {
            mem::reset_bucket(store, id, now);
            Ok(Answer::Reset)
        }
        (_, _) => {
            mem::reset_windows(store, id, now);
            Ok(Answer::Reset)
        }
    };
    answer.unwrap_or_else(err)
}

/// Deletes from Redis what the memory store has expired at the caller's clock.
async fn expire_like_memory(
    conn: &mut redis::aio::MultiplexedConnection,
    store: &MemoryStore,
    prefix: &str,
    now: u64,
) {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(conn)
        .await
        .expect("KEYS");
    for key in keys {
        if !store.is_live(&key, now) {
            let _: i64 = redis::cmd("DEL")
                .arg(&key)
                .query_async(conn)
                .await
                .expect("DEL");
        }
    }
}

async fn run_sequence(stack: &RestStack, algo: Algo, seed: u64, steps: usize) {
    let rest = RemoteStore::upstash_rest(&stack.url, &stack.token, RemoteOptions::default())
        .expect("client");
    let store = MemoryStore::new(100_000);
    let mut conn = stack.redis.connection().await;
    let mut rng = fastrand::Rng::with_seed(seed);
    let prefix = format!("x{seed}:");
    let ids: Vec<String> = ["a", "b", "b:1", "c*"]
        .iter()
        .map(|i| format!("{prefix}{i}"))
        .collect();
    let dyn_key = format!("{prefix}dynamic:global");
    let mut now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    for step in 0..steps {
        now += rng.u64(0..400);
        expire_like_memory(&mut conn, &store, &prefix, now).await;
        // Sometimes change a dynamic limit (the global one, or one identifier's own), in both
        // stores; the identifier's own key takes precedence over the global one.
        let id = &ids[rng.usize(0..ids.len())];
        let own_key = format!("{prefix}dynamic:id:{id}");
        let use_dynamic = !matches!(algo, Algo::Cached(_)) && rng.u8(0..4) == 0;
        if use_dynamic && rng.u8(0..3) == 0 {
            let key = if rng.bool() { &dyn_key } else { &own_key };
            let value = rng.u8(1..8).to_string();
            let _: () = redis::cmd("SET")
                .arg(key)
                .arg(&value)
                .query_async(&mut conn)
                .await
                .expect("SET");
            store
                .command(&["SET".into(), key.clone(), value], now)
                .expect("SET");
        }
        let op = match rng.u8(0..20) {
            0 => 2,
            1..=4 => 1,
            _ => 0,
        };
        let rate = match rng.u8(0..10) {
            0 => 0.0,
            1 => -(rng.u8(1..4) as f64),
            2 => rng.u8(2..9) as f64,
            3 if matches!(algo, Algo::Bucket(_)) => 1.5,
            _ => 1.0,
        };
        let keys: Vec<&str> = if use_dynamic {
            vec![own_key.as_str(), dyn_key.as_str()]
        } else {
            Vec::new()
        };
        let dk = keys.as_slice();
        let expected = on_redis(&rest, algo, op, id, now, rate, dk).await;
        let actual = on_memory(&store, algo, op, id, now, rate, dk);
        assert_eq!(
            actual, expected,
            "seed {seed} step {step}: {algo:?} op {op} id {id} rate {rate} dynamic {use_dynamic}"
        );
    }
}

#[tokio::test]
async fn random_sequences_answer_the_same_on_memory_and_on_redis() {
    let stack = RestStack::start().await;
    for seed in 1..=3u64 {
        run_sequence(&stack, Algo::Fixed(FixedWindow::new(5.0, 1000)), seed, 200).await;
        run_sequence(
            &stack,
            Algo::Sliding(SlidingWindow::new(5.0, 1000)),
            100 + seed,
            200,
        )
        .await;
        run_sequence(
            &stack,
            Algo::Bucket(TokenBucket::new(2.0, 700, 6.0)),
            200 + seed,
            200,
        )
        .await;
        run_sequence(
            &stack,
            Algo::Cached(CachedFixedWindow::new(5.0, 1000)),
            300 + seed,
            200,
        )
        .await;
    }
    stack.stop().await;
}

#[test]
fn the_memory_store_is_atomic_across_threads() {
    let store = MemoryStore::new(100_000);
    let algo = FixedWindow::new(100.0, 60_000);
    let now = 1_700_000_000_000;
    let admitted: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                scope.spawn(move || {
                    (0..125)
                        .filter(|_| {
                            mem::fixed_window_limit(&store, &algo, "p:hot", now, 1.0, &[])
                                .expect("limit")
                                .success
                        })
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    assert_eq!(
        admitted, 100,
        "exactly the limit out of 1000 concurrent calls"
    );
}
