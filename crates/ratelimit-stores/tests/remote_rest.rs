//! The Upstash REST client against the project's REST server and a real redis-server.

use std::time::Duration;

use ratelimit_core::algorithms::fixed_window::{FixedWindow, FixedWindowLimitReply};
use ratelimit_core::reply::{Reply, StoreError};
use ratelimit_core::scripts::FIXED_WINDOW_LIMIT;
use ratelimit_stores::remote::{RemoteOptions, RemoteStore};
use test_support::RestStack;

fn client(stack: &RestStack) -> RemoteStore {
    RemoteStore::upstash_rest(&stack.url, &stack.token, RemoteOptions::default()).expect("client")
}

#[tokio::test]
async fn runs_scripts_with_evalsha_and_falls_back_to_eval_once() {
    let stack = RestStack::start().await;
    let rest = client(&stack);
    let algo = FixedWindow::new(5.0, 60_000);
    let now = 1_700_000_000_000;
    for expected in 1..=3 {
        let call = algo.limit_call("p:u", now, 1.0, &[]);
        let reply = rest
            .eval(call.script, call.keys, call.args)
            .await
            .expect("eval");
        let reply = FixedWindowLimitReply::from_values(&reply.numbers()).expect("reply shape");
        assert_eq!(reply.count, expected);
        assert_eq!(reply.limit, 5);
    }
    let stats = stack.redis.commandstats().await;
    assert_eq!(stats.get("evalsha"), Some(&3), "{stats:?}");
    assert_eq!(
        stats.get("eval"),
        Some(&1),
        "one EVAL after the cold NOSCRIPT: {stats:?}"
    );
    stack.stop().await;
}

#[tokio::test]
async fn one_request_per_warm_call_and_concurrent_calls_share_pipelines() {
    let stack = RestStack::start().await;
    let rest = client(&stack);
    let algo = FixedWindow::new(1e9, 60_000);
    let now = 1_700_000_000_000;
    let warm_up = algo.limit_call("p:warm", now, 1.0, &[]);
    rest.eval(warm_up.script, warm_up.keys, warm_up.args)
        .await
        .expect("warm up");

    let before = stack.stats();
    let call = algo.limit_call("p:one", now, 1.0, &[]);
    rest.eval(call.script, call.keys, call.args)
        .await
        .expect("eval");
    let after = stack.stats();
    assert_eq!(
        after.requests - before.requests,
        1,
        "a warm call is one HTTP request"
    );

    let calls = 500;
    let futures = (0..calls).map(|i| {
        let rest = rest.clone();
        let call = algo.limit_call(&format!("p:k{i}"), now, 1.0, &[]);
        tokio::spawn(async move { rest.eval(call.script, call.keys, call.args).await })
    });
    let results = futures_join(futures.collect()).await;
    assert!(results
        .iter()
        .all(|r| matches!(r, Ok(Reply::Array(items)) if items.len() == 2)));
    let end = stack.stats();
    let requests = end.requests - after.requests;
    assert_eq!(
        end.commands - after.commands,
        calls,
        "every call reached Redis once"
    );
    assert!(
        requests <= calls / 5,
        "{calls} concurrent calls took {requests} HTTP requests; they should be batched"
    );
    stack.stop().await;
}

async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn redis_http_and_transport_errors_are_distinct_and_never_show_the_token() {
    let stack = RestStack::start().await;
    let rest = client(&stack);
    let err = rest
        .command(vec!["INCR".into(), "k".into(), "extra".into()])
        .await
        .expect_err("wrong arity");
    assert_eq!(
        err,
        StoreError::Redis("ERR wrong number of arguments for 'incr' command".into())
    );

    let call = FixedWindow::new(5.0, 1000).limit_call("p:f", 0, 1.5, &[]);
    let err = rest
        .eval(call.script, call.keys, call.args)
        .await
        .expect_err("float rate");
    assert!(
        err.to_string()
            .contains("ERR value is not an integer or out of range"),
        "{err}"
    );

    let secret = "wrong-token-123456789";
    let bad =
        RemoteStore::upstash_rest(&stack.url, secret, RemoteOptions::default()).expect("client");
    let err = bad
        .command(vec!["PING".into()])
        .await
        .expect_err("bad token");
    assert!(
        matches!(&err, StoreError::Http { status: 401, message } if message == "Unauthorized"),
        "{err:?}"
    );
    assert!(!err.to_string().contains(secret));

    let url = stack.url.clone();
    let token = stack.token.clone();
    stack.stop().await;
    let gone = RemoteStore::upstash_rest(
        &url,
        &token,
        RemoteOptions {
            request_timeout: Duration::from_secs(2),
            ..RemoteOptions::default()
        },
    )
    .expect("client");
    let err = gone
        .command(vec!["PING".into()])
        .await
        .expect_err("server gone");
    assert!(matches!(err, StoreError::Transport(_)), "{err:?}");
    assert!(!err.to_string().contains(&token), "{err}");
}

#[test]
fn bad_configuration_is_refused_up_front() {
    let opts = RemoteOptions::default;
    assert!(matches!(
        RemoteStore::upstash_rest("not a url", "t", opts()),
        Err(StoreError::InvalidConfig(_))
    ));
    assert!(matches!(
        RemoteStore::upstash_rest("ftp://h", "t", opts()),
        Err(StoreError::InvalidConfig(_))
    ));
    assert!(matches!(
        RemoteStore::upstash_rest("http://127.0.0.1:1", "", opts()),
        Err(StoreError::InvalidConfig(_))
    ));
    assert!(matches!(
        RemoteStore::upstash_rest("http://127.0.0.1:1", "bad\ntoken", opts()),
        Err(StoreError::InvalidConfig(_))
    ));
}

#[test]
fn scripts_are_sent_with_the_upstash_key_locking_flag() {
    assert!(FIXED_WINDOW_LIMIT
        .source
        .starts_with("#!lua flags=allow-key-locking\n"));
}
