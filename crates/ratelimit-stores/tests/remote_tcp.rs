//! The TCP (RESP) store against a real redis-server: stock scripts, EVALSHA → EVAL, the same keys
//! as the REST path, and errors without the password.

use std::time::{Duration, Instant};

use ratelimit_core::algorithms::fixed_window::{FixedWindow, FixedWindowLimitReply};
use ratelimit_core::algorithms::sliding_window::SlidingWindow;
use ratelimit_core::reply::{Reply, StoreError};
use ratelimit_core::scripts::FIXED_WINDOW_LIMIT;
use ratelimit_stores::remote::{RemoteOptions, RemoteStore};
use test_support::{RedisServer, RestStack};

fn tcp(url: &str) -> RemoteStore {
    RemoteStore::redis_tcp(url, RemoteOptions::default()).expect("client")
}

async fn fixed_count(store: &RemoteStore, algo: &FixedWindow, key: &str, now: u64) -> i64 {
    let call = algo.limit_call(key, now, 1.0, &[]);
    let reply = store
        .eval(call.script, call.keys, call.args)
        .await
        .expect("eval");
    FixedWindowLimitReply::from_values(&reply.numbers())
        .expect("reply shape")
        .count
}

#[tokio::test]
async fn runs_the_scripts_on_stock_redis_evalsha_first_then_eval_once() {
    let redis = RedisServer::start();
    let store = tcp(&redis.url());
    let algo = FixedWindow::new(5.0, 60_000);
    let now = 1_700_000_000_000;
    for expected in 1..=3 {
        assert_eq!(fixed_count(&store, &algo, "p:u", now).await, expected);
    }
    let stats = redis.commandstats().await;
    assert_eq!(stats.get("evalsha"), Some(&3), "{stats:?}");
    assert_eq!(
        stats.get("eval"),
        Some(&1),
        "one EVAL after NOSCRIPT: {stats:?}"
    );

    // After SCRIPT FLUSH the next call falls back to EVAL again instead of failing.
    let mut conn = redis.connection().await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .expect("flush");
    assert_eq!(fixed_count(&store, &algo, "p:u", now).await, 4);
    assert_eq!(redis.commandstats().await.get("eval"), Some(&2));

    // The sliding window (two keys, more Lua) runs too.
    let sliding = SlidingWindow::new(10.0, 1000);
    let call = sliding.limit_call("p:s", now, 1.0, &[]);
    let reply = store
        .eval(call.script, call.keys, call.args)
        .await
        .expect("sliding eval");
    assert!(matches!(reply, Reply::Array(_)), "{reply:?}");
}

#[tokio::test]
async fn shares_keys_with_the_rest_path_on_one_database() {
    let stack = RestStack::start().await;
    let rest = RemoteStore::upstash_rest(&stack.url, &stack.token, RemoteOptions::default())
        .expect("rest client");
    let store = tcp(&stack.redis.url());
    let algo = FixedWindow::new(100.0, 60_000);
    let now = 1_700_000_000_000;
    for i in 0..6 {
        let via = if i % 2 == 0 { &store } else { &rest };
        assert_eq!(fixed_count(via, &algo, "shared:id", now).await, i + 1);
    }
    stack.stop().await;
}

#[tokio::test]
async fn concurrent_calls_all_answer_and_plain_commands_keep_their_types() {
    let redis = RedisServer::start();
    let store = tcp(&redis.url());
    let algo = FixedWindow::new(1e9, 60_000);
    let handles: Vec<_> = (0..300)
        .map(|i| {
            let store = store.clone();
            let call = algo.limit_call(&format!("c:{}", i % 7), 1_700_000_000_000, 1.0, &[]);
            tokio::spawn(async move { store.eval(call.script, call.keys, call.args).await })
        })
        .collect();
    for h in handles {
        assert!(h.await.expect("task").is_ok());
    }
    let mut conn = redis.connection().await;
    let total: i64 = {
        let mut sum = 0;
        for i in 0..7 {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("c:{i}:*"))
                .query_async(&mut conn)
                .await
                .expect("keys");
            for key in keys {
                let v: i64 = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .expect("get");
                sum += v;
            }
        }
        sum
    };
    assert_eq!(total, 300, "every call counted exactly once");

    let ok = store
        .command(vec!["SET".into(), "plain".into(), "v".into()])
        .await;
    assert_eq!(ok, Ok(Reply::Bytes(b"OK".to_vec())));
    let got = store.command(vec!["GET".into(), "plain".into()]).await;
    assert_eq!(got, Ok(Reply::Bytes(b"v".to_vec())));
    let missing = store.command(vec!["GET".into(), "nothing".into()]).await;
    assert_eq!(missing, Ok(Reply::Nil));
    let err = store
        .command(vec!["INCR".into(), "k".into(), "extra".into()])
        .await
        .expect_err("wrong arity");
    assert_eq!(
        err,
        StoreError::Redis("ERR wrong number of arguments for 'incr' command".into())
    );
}

#[tokio::test]
async fn connection_errors_name_the_host_and_never_the_password() {
    let redis = RedisServer::start();
    let wrong = format!("redis://:not-{}@127.0.0.1:{}", redis.password, redis.port);
    let err = tcp(&wrong)
        .command(vec!["PING".into()])
        .await
        .expect_err("wrong password");
    assert!(!err.to_string().contains(&redis.password), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("127.0.0.1:{}", redis.port)),
        "{err}"
    );

    // Nothing listening: retried on the short schedule (~0.8 s), then reported.
    let port = redis.port;
    let password = redis.password.clone();
    drop(redis);
    let started = Instant::now();
    let err = tcp(&format!("redis://:{password}@127.0.0.1:{port}"))
        .command(vec!["PING".into()])
        .await
        .expect_err("nothing listening");
    assert!(started.elapsed() < Duration::from_secs(10), "bounded");
    assert!(matches!(err, StoreError::Transport(_)), "{err:?}");
    assert!(!err.to_string().contains(&password), "{err}");
}

#[tokio::test]
async fn a_redis_restart_is_ridden_out_by_callers_with_a_deadline() {
    let redis = RedisServer::start();
    let store = tcp(&redis.url());
    assert_eq!(
        store.command(vec!["PING".into()]).await,
        Ok(Reply::Bytes(b"PONG".to_vec()))
    );
    let (port, password) = (redis.port, redis.password.clone());
    drop(redis);
    // A call made while Redis is down, with a 3 s deadline, waits for it to come back.
    let pending = {
        let store = store.clone();
        tokio::spawn(async move {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let call =
                FixedWindow::new(10.0, 60_000).limit_call("r:k", 1_700_000_000_000, 1.0, &[]);
            store
                .queue_eval_with(
                    call.script,
                    call.keys,
                    call.args,
                    Box::new(move |reply| {
                        let _ = tx.send(reply);
                    }),
                    Some(Duration::from_secs(3)),
                )
                .expect("queued");
            rx.await.expect("answered")
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _restarted = RedisServer::start_on(port, &password);
    let reply = pending.await.expect("task");
    // Redis went away while the connection was idle, so the manager knows it is gone: the
    // call is never written to a dead socket, its reconnects are refused (nothing sent) and
    // retried until Redis is back.
    assert!(reply.is_ok(), "{reply:?}");
}

#[test]
fn bad_urls_are_refused_up_front_without_echoing_the_password() {
    let opts = RemoteOptions::default;
    for url in [
        "not a url",
        "ftp://h",
        "http://127.0.0.1:6379",
        "rediss://:s3cret-pw@/0",
        "redis://:s3cret-pw@/0",
    ] {
        match RemoteStore::redis_tcp(url, opts()) {
            Err(StoreError::InvalidConfig(text)) => assert!(!text.contains("s3cret-pw"), "{text}"),
            Err(other) => panic!("{url}: {other:?}"),
            Ok(_) => panic!("{url}: accepted"),
        }
    }
}

#[test]
fn stock_redis_gets_the_scripts_without_the_key_locking_line() {
    assert!(FIXED_WINDOW_LIMIT
        .source
        .starts_with("#!lua flags=allow-key-locking\n"));
    assert!(FIXED_WINDOW_LIMIT.stock_source().starts_with('\n'));
    assert_eq!(
        FIXED_WINDOW_LIMIT.stock_source().lines().count(),
        FIXED_WINDOW_LIMIT.source.lines().count(),
        "line numbers in Lua errors stay those of the source"
    );
    assert_ne!(FIXED_WINDOW_LIMIT.stock_sha1(), FIXED_WINDOW_LIMIT.sha1());
}
