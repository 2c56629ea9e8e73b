//! Rate limits on keys, users, teams, end users, per model and gateway-wide, exact under
//! concurrency, with LiteLLM's 429 message, `retry-after` and `x-ratelimit-*` headers.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

async fn admin_ok(gw: &Gateway, path: &str, body: Value) -> Value {
    let (status, _, resp) = post(&gw.url(path), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{path}: {resp}");
    resp
}

async fn key_with(gw: &Gateway, body: Value) -> String {
    admin_ok(gw, "/key/generate", body).await["key"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn call(gw: &Gateway, key: &str, body: &Value) -> (u16, Headers, Value) {
    post(&gw.url("/v1/chat/completions"), Some(key), body).await
}

async fn burst(gw: &Gateway, key: &str, n: usize) -> Vec<u16> {
    let url = gw.url("/v1/chat/completions");
    futures_util::future::join_all((0..n).map(|_| {
        let url = url.clone();
        let key = key.to_string();
        async move { post(&url, Some(&key), &chat("mock-gpt")).await.0 }
    }))
    .await
}

#[actix_rt::test]
async fn the_tutorial_flow_rpm_limit_1_then_429() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let key = key_with(&gw, json!({"rpm_limit": 1})).await;
    clear_of_a_minute_turn(Duration::from_secs(5)).await;
    let (status, headers, _) = call(&gw, &key, &chat("mock-gpt")).await;
    assert_eq!(status, 200);
    assert_eq!(headers.get("x-ratelimit-limit-requests").unwrap(), "1");
    assert_eq!(headers.get("x-ratelimit-remaining-requests").unwrap(), "0");
    let (status, headers, body) = call(&gw, &key, &chat("mock-gpt")).await;
    assert_eq!(status, 429, "{body}");
    assert_envelope(&body);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("rate limit type = key. Crossed TPM / RPM / Max Parallel Request Limit. current rpm: 1, rpm limit: 1"),
        "{message}"
    );
    let after: u64 = headers
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&after));
    assert_eq!(
        mock.stats().await["by_model"]["mock-gpt"],
        1,
        "the refused call never reached the provider"
    );
}

#[actix_rt::test]
async fn every_limit_type_is_exact_under_concurrency() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let ok = |v: &[u16]| v.iter().filter(|s| **s == 200).count();

    // Key rpm: exactly N of a burst (2N at most if the minute turns during it).
    let key = key_with(&gw, json!({"rpm_limit": 7})).await;
    let statuses = burst(&gw, &key, 40).await;
    assert!(ok(&statuses) == 7 || ok(&statuses) == 14, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 429));

    // User rpm, across two keys of the same user.
    admin_ok(
        &gw,
        "/user/new",
        json!({"user_id": "limited-user", "rpm_limit": 5, "auto_create_key": false}),
    )
    .await;
    let k1 = key_with(&gw, json!({"user_id": "limited-user"})).await;
    let k2 = key_with(&gw, json!({"user_id": "limited-user"})).await;
    let (a, b) = futures_util::future::join(burst(&gw, &k1, 10), burst(&gw, &k2, 10)).await;
    let admitted = ok(&a) + ok(&b);
    assert!(
        admitted == 5 || admitted == 10,
        "user limit admitted {admitted}"
    );

    // Team rpm.
    admin_ok(
        &gw,
        "/team/new",
        json!({"team_id": "limited-team", "rpm_limit": 4}),
    )
    .await;
    let tk = key_with(&gw, json!({"team_id": "limited-team"})).await;
    let statuses = burst(&gw, &tk, 20).await;
    assert!(ok(&statuses) == 4 || ok(&statuses) == 8, "{statuses:?}");
    let (_, _, body) = call(&gw, &tk, &chat("mock-gpt")).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("rate limit type = team"),
        "{body}"
    );

    // A limit of 0 rejects everything.
    let zero = key_with(&gw, json!({"rpm_limit": 0})).await;
    assert!(burst(&gw, &zero, 5).await.iter().all(|s| *s == 429));
}

#[actix_rt::test]
async fn max_parallel_requests_counts_requests_in_flight() {
    let mock = Mock::start(&["--latency-ms", "400"]);
    let cfg = format!("{}  max_parallel_requests: 3\n", basic_config(&mock));
    let gw = Gateway::start(&cfg, &[], &[]);
    let key = key_with(&gw, json!({"max_parallel_requests": 2})).await;
    let statuses = burst(&gw, &key, 6).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    // Finished requests free their slots.
    assert_eq!(burst(&gw, &key, 2).await, vec![200, 200]);
    // The gateway-wide limit applies to the master key too.
    let statuses = burst(&gw, MASTER_KEY, 6).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
}

#[actix_rt::test]
async fn tokens_per_minute_and_per_model_limits() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    // The mock reports real usage; a small tpm lets the first request through, then refuses.
    let key = key_with(&gw, json!({"tpm_limit": 20})).await;
    let (status, headers, body) = call(&gw, &key, &chat("mock-gpt")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers.get("x-ratelimit-limit-tokens").unwrap(), "20");
    let used = body["usage"]["total_tokens"].as_u64().unwrap();
    let mut refused = false;
    for _ in 0..10 {
        let (status, _, body) = call(&gw, &key, &chat("mock-gpt")).await;
        if status == 429 {
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("tpm limit: 20"),
                "{body}"
            );
            refused = true;
            break;
        }
    }
    assert!(refused, "tpm 20 never refused ({used} tokens per call)");

    // Per-model limits on a key: one model limited, the other not.
    let key = key_with(&gw, json!({"model_rpm_limit": {"mock-gpt": 1}})).await;
    clear_of_a_minute_turn(Duration::from_secs(5)).await;
    assert_eq!(call(&gw, &key, &chat("mock-gpt")).await.0, 200);
    let (status, _, body) = call(&gw, &key, &chat("mock-gpt")).await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("model_per_key"),
        "{body}"
    );
    let (status, _, _) = post(
        &gw.url("/v1/embeddings"),
        Some(&key),
        &json!({"model": "mock-embed", "input": "x"}),
    )
    .await;
    assert_eq!(status, 200);
}

#[actix_rt::test]
async fn end_users_are_limited_through_their_budget_and_can_be_blocked() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    admin_ok(
        &gw,
        "/budget/new",
        json!({"budget_id": "tiny", "rpm_limit": 2}),
    )
    .await;
    admin_ok(
        &gw,
        "/customer/new",
        json!({"user_id": "acme", "budget_id": "tiny"}),
    )
    .await;
    clear_of_a_minute_turn(Duration::from_secs(10)).await;
    let mut body = chat("mock-gpt");
    body["user"] = json!("acme");
    assert_eq!(call(&gw, MASTER_KEY, &body).await.0, 200);
    // The header names the end user too.
    let (status, _, _) = post_raw(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        chat("mock-gpt").to_string(),
        &[("x-litellm-end-user-id", "acme")],
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, resp) = call(&gw, MASTER_KEY, &body).await;
    assert_eq!(status, 429, "{resp}");
    assert!(
        resp["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rate limit type = end_user"),
        "{resp}"
    );
    // Other end users are not affected.
    body["user"] = json!("someone-else");
    assert_eq!(call(&gw, MASTER_KEY, &body).await.0, 200);

    admin_ok(&gw, "/customer/new", json!({"user_id": "blocked-co"})).await;
    admin_ok(&gw, "/customer/block", json!({"user_ids": ["blocked-co"]})).await;
    body["user"] = json!("blocked-co");
    let (status, _, resp) = call(&gw, MASTER_KEY, &body).await;
    assert_eq!(status, 403, "{resp}");
}
