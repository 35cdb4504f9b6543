//! The REST server against a real redis-server, over real HTTP.

use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use test_support::RestStack;

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn post(stack: &RestStack, path: &str, body: Value, base64: bool) -> (u16, Value) {
    let mut req = client()
        .post(format!("{}{}", stack.url, path))
        .bearer_auth(&stack.token)
        .body(body.to_string());
    if base64 {
        req = req.header("Upstash-Encoding", "base64");
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    (status, serde_json::from_str(&text).expect("JSON body"))
}

fn sha1_hex(bytes: &[u8]) -> String {
    Sha1::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn single_pipeline_and_multi_exec_follow_the_protocol() {
    let stack = RestStack::start().await;
    assert_eq!(
        post(&stack, "/", json!(["SET", "k", 1.5]), false).await,
        (200, json!({"result": "OK"}))
    );
    assert_eq!(
        post(&stack, "/", json!(["get", "k"]), true).await,
        (200, json!({"result": "MS41"}))
    );
    assert_eq!(
        post(&stack, "/", json!(["incr", "k"]), false).await,
        (
            400,
            json!({"error": "ERR value is not an integer or out of range"})
        )
    );
    let (status, body) = post(
        &stack,
        "/pipeline/",
        json!([["lpush", "l", "OK"], ["incr", "k"], ["lrange", "l", 0, -1]]),
        true,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!([
            {"result": 1},
            {"error": "ERR value is not an integer or out of range"},
            {"result": ["T0s="]}
        ])
    );
    let (status, body) = post(
        &stack,
        "/multi-exec",
        json!([["set", "m", "v"], ["incr", "m"], ["get", "m"]]),
        false,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!([
            {"result": "OK"},
            {"error": "ERR value is not an integer or out of range"},
            {"result": "v"}
        ])
    );
    let (status, body) = post(
        &stack,
        "/multi-exec",
        json!([["set", "m"], ["get", "m"]]),
        false,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": "ERR wrong number of arguments for 'set' command"})
    );
    stack.stop().await;
}

#[tokio::test]
async fn strips_the_key_locking_flag_and_maps_script_hashes() {
    let stack = RestStack::start().await;
    let script = "#!lua flags=allow-key-locking\nreturn redis.call('INCR', KEYS[1])";
    let original = sha1_hex(script.as_bytes());
    assert_eq!(
        post(&stack, "/", json!(["evalsha", original, 1, "c"]), false).await,
        (
            400,
            json!({"error": "NOSCRIPT No matching script. Please use EVAL."})
        )
    );
    assert_eq!(
        post(&stack, "/", json!(["eval", script, 1, "c"]), false).await,
        (200, json!({"result": 1}))
    );
    assert_eq!(
        post(&stack, "/", json!(["evalsha", original, 1, "c"]), false).await,
        (200, json!({"result": 2}))
    );
    assert_eq!(
        post(&stack, "/", json!(["script", "exists", original]), false).await,
        (200, json!({"result": [1]}))
    );
    assert_eq!(
        post(&stack, "/", json!(["script", "load", script]), false).await,
        (200, json!({"result": original}))
    );
    assert_eq!(
        post(&stack, "/", json!(["script", "flush"]), false).await,
        (200, json!({"result": "OK"}))
    );
    assert_eq!(
        post(&stack, "/", json!(["evalsha", original, 1, "c"]), false).await,
        (
            400,
            json!({"error": "NOSCRIPT No matching script. Please use EVAL."})
        )
    );
    stack.stop().await;
}

#[tokio::test]
async fn bad_requests_get_json_errors_and_the_server_keeps_serving() {
    let stack = RestStack::start_with(|c| c.max_body_bytes = 1000).await;
    let http = client();
    let send = |method: reqwest::Method, path: &str, token: Option<&str>, body: String| {
        let mut req = http
            .request(method, format!("{}{}", stack.url, path))
            .body(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send()
    };
    let cases: Vec<(reqwest::Method, &str, Option<&str>, String, u16)> = vec![
        (reqwest::Method::POST, "/", None, "[\"ping\"]".into(), 401),
        (
            reqwest::Method::POST,
            "/",
            Some("wrong"),
            "[\"ping\"]".into(),
            401,
        ),
        (
            reqwest::Method::DELETE,
            "/",
            Some(&stack.token),
            String::new(),
            405,
        ),
        (
            reqwest::Method::POST,
            "/nope",
            Some(&stack.token),
            "[\"ping\"]".into(),
            404,
        ),
        (
            reqwest::Method::POST,
            "/",
            Some(&stack.token),
            "{not json".into(),
            400,
        ),
        (
            reqwest::Method::POST,
            "/",
            Some(&stack.token),
            "{\"a\":1}".into(),
            400,
        ),
        (
            reqwest::Method::POST,
            "/pipeline",
            Some(&stack.token),
            "[\"get\",\"k\"]".into(),
            400,
        ),
        (
            reqwest::Method::POST,
            "/",
            Some(&stack.token),
            "[\"set\",\"k\",null]".into(),
            400,
        ),
        (
            reqwest::Method::POST,
            "/",
            Some(&stack.token),
            format!("[\"set\",\"k\",\"{}\"]", "x".repeat(2000)),
            413,
        ),
        (
            reqwest::Method::POST,
            "/multi-exec",
            Some(&stack.token),
            "[[\"multi\"]]".into(),
            400,
        ),
        (
            reqwest::Method::POST,
            "/",
            Some(&stack.token),
            "[\"select\",\"1\"]".into(),
            400,
        ),
    ];
    for (method, path, token, body, expected) in cases {
        let res = send(method.clone(), path, token, body)
            .await
            .expect("request");
        assert_eq!(res.status().as_u16(), expected, "{method} {path}");
        let text = res.text().await.expect("body");
        let parsed: Value = serde_json::from_str(&text).expect("a JSON error body");
        assert!(parsed["error"].is_string(), "{text}");
        assert!(!text.contains(&stack.token), "the token leaked: {text}");
        let ok = send(
            reqwest::Method::POST,
            "/",
            Some(&stack.token),
            "[\"ping\"]".into(),
        )
        .await
        .expect("request");
        assert_eq!(ok.status().as_u16(), 200, "still serving after {path}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn an_unreachable_redis_is_a_5xx_json_error_without_the_password() {
    let stack = RestStack::start().await;
    let password = stack.redis.password.clone();
    let url = stack.url.clone();
    let token = stack.token.clone();
    let RestStack { redis, .. } = stack;
    drop(redis);
    let res = client()
        .post(&url)
        .bearer_auth(&token)
        .body("[\"ping\"]")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 502);
    let text = res.text().await.expect("body");
    assert!(text.contains("unreachable"), "{text}");
    assert!(!text.contains(&password), "{text}");
}
