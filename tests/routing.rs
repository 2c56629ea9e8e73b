//! Router semantics against the mock provider: strategies, order, deployment rpm, pre-call checks,
//! retries, cooldowns, fallbacks and the headers that report them. Every test counts the calls each
//! upstream model received (`/mock/stats`) to assert exact numbers.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// A deployment entry on the mock: `model_name`, upstream model, extra `litellm_params` lines.
fn entry(mock: &Mock, group: &str, upstream: &str, extra: &str) -> String {
    let mut s = format!(
        "  - model_name: {group}\n    litellm_params:\n      model: openai/{upstream}\n      api_base: {}\n      api_key: sk-mock-upstream-secret-42\n",
        mock.api_base()
    );
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        s.push_str("      ");
        s.push_str(line.trim_start());
        s.push('\n');
    }
    s
}

fn config(entries: &[String], sections: &str) -> String {
    format!(
        "model_list:\n{}general_settings:\n  master_key: {MASTER_KEY}\n{sections}",
        entries.concat()
    )
}

async fn calls(mock: &Mock, model: &str) -> u64 {
    mock.stats().await["by_model"][model].as_u64().unwrap_or(0)
}

fn header(h: &Headers, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

async fn chat_call(gw: &Gateway, body: &Value) -> (u16, Headers, Value) {
    post(&gw.url("/v1/chat/completions"), Some(MASTER_KEY), body).await
}

#[actix_rt::test]
async fn a_failed_attempt_is_retried_at_once_on_another_deployment_then_the_bad_one_cools_down() {
    let mock = Mock::start(&[]);
    let cfg = config(
        &[
            entry(&mock, "g", "mock-fail-500", ""),
            entry(&mock, "g", "good-b", ""),
        ],
        "router_settings:\n  num_retries: 2\n  cooldown_time: 60\n",
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    let mut retries = 0;
    let started = Instant::now();
    for _ in 0..40 {
        let (status, headers, body) = chat_call(&gw, &chat("g")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(header(&headers, "x-litellm-max-retries"), "2");
        retries += header(&headers, "x-litellm-attempted-retries")
            .parse::<u64>()
            .unwrap();
    }
    // Every failed call was retried once, on the healthy deployment, without a backoff wait.
    assert_eq!(calls(&mock, "good-b").await, 40);
    assert_eq!(calls(&mock, "mock-fail-500").await, retries);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "retries on another deployment do not wait"
    );
    // allowed_fails = 3: the fourth failure within a minute cools the deployment down (decided by
    // its actor, a moment after the report), and then it gets no more calls.
    assert!(retries >= 4, "only {retries} failures seen in 40 requests");
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let failing = calls(&mock, "mock-fail-500").await;
    for _ in 0..20 {
        let (status, headers, _) = chat_call(&gw, &chat("g")).await;
        assert_eq!(
            (
                status,
                header(&headers, "x-litellm-attempted-retries").as_str()
            ),
            (200, "0")
        );
    }
    assert_eq!(
        calls(&mock, "mock-fail-500").await,
        failing,
        "the cooled-down deployment got calls"
    );
}

#[actix_rt::test]
async fn a_sole_deployment_is_retried_num_retries_times_with_backoff() {
    let mock = Mock::start(&[]);
    let cfg = config(&[entry(&mock, "g", "mock-fail-500", "")], "");
    let gw = Gateway::start(&cfg, &[], &[]);

    let (status, headers, body) = chat_call(&gw, &chat("g")).await;
    assert_eq!(status, 500, "{body}");
    assert_envelope(&body);
    assert_eq!(header(&headers, "x-litellm-attempted-retries"), "2");
    assert_eq!(header(&headers, "x-litellm-max-retries"), "2");
    assert_eq!(
        calls(&mock, "mock-fail-500").await,
        3,
        "1 call + the default 2 retries"
    );

    // The body's num_retries, then the header's.
    let mut body = chat("g");
    body["num_retries"] = json!(0);
    let (_, headers, _) = chat_call(&gw, &body).await;
    assert_eq!(header(&headers, "x-litellm-attempted-retries"), "0");
    assert_eq!(calls(&mock, "mock-fail-500").await, 4);
    let (_, headers, _) = post_raw(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        chat("g").to_string(),
        &[("x-litellm-num-retries", "1")],
    )
    .await;
    assert_eq!(header(&headers, "x-litellm-attempted-retries"), "1");
    assert_eq!(calls(&mock, "mock-fail-500").await, 6);
}

#[actix_rt::test]
async fn bad_requests_are_not_retried_and_retry_after_is_honoured() {
    let mock = Mock::start(&[]);
    let cfg = config(
        &[
            entry(&mock, "g", "mock-gpt", ""),
            entry(&mock, "limited", "mock-fail-429", ""),
        ],
        "",
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    let mut body = chat("g");
    body["mock_fail"] = json!("context_length");
    let (status, headers, body) = chat_call(&gw, &body).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    assert_eq!(header(&headers, "x-litellm-attempted-retries"), "0");
    assert_eq!(calls(&mock, "mock-gpt").await, 1);

    // A 429 with retry-after: 1 from the only deployment: the retry waits for it.
    let mut body = chat("limited");
    body["num_retries"] = json!(1);
    let started = Instant::now();
    let (status, headers, _) = chat_call(&gw, &body).await;
    assert_eq!(status, 429);
    assert_eq!(header(&headers, "x-litellm-attempted-retries"), "1");
    assert_eq!(calls(&mock, "mock-fail-429").await, 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
}

#[actix_rt::test]
async fn retry_policy_sets_retries_per_error_class() {
    let mock = Mock::start(&[]);
    let cfg = config(
        &[entry(&mock, "limited", "mock-fail-429", ""), entry(&mock, "broken", "mock-fail-503", "")],
        "router_settings:\n  num_retries: 5\n  retry_after: 0.01\n  retry_policy: {RateLimitErrorRetries: 0, ServiceUnavailableErrorRetries: 1}\n  model_group_retry_policy: {broken: {ServiceUnavailableErrorRetries: 3}}\n",
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    let (status, headers, _) = chat_call(&gw, &chat("limited")).await;
    assert_eq!(status, 429);
    assert_eq!(header(&headers, "x-litellm-max-retries"), "0");
    assert_eq!(calls(&mock, "mock-fail-429").await, 1);
    let (status, headers, _) = chat_call(&gw, &chat("broken")).await;
    assert_eq!(status, 503);
    assert_eq!(header(&headers, "x-litellm-attempted-retries"), "3");
    assert_eq!(
        calls(&mock, "mock-fail-503").await,
        4,
        "model_group_retry_policy wins over retry_policy"
    );
}

#[actix_rt::test]
async fn fallbacks_after_retries_with_the_right_list_per_error() {
    let mock = Mock::start(&[]);
    let cfg = config(
        &[
            entry(&mock, "primary", "mock-fail-503", ""),
            entry(&mock, "backup", "good-backup", ""),
            entry(&mock, "small", "mock-fail-context_length", ""),
            entry(&mock, "big", "good-big", ""),
            entry(&mock, "strict", "mock-fail-content_policy", ""),
            entry(&mock, "lenient", "good-lenient", ""),
            entry(&mock, "other", "mock-fail-500", ""),
            entry(&mock, "last-resort", "good-default", ""),
        ],
        "router_settings:\n  num_retries: 1\n  retry_after: 0.01\nlitellm_settings:\n  fallbacks: [{\"primary\": [\"backup\"]}]\n  context_window_fallbacks: [{\"small\": [\"big\"]}]\n  content_policy_fallbacks: [{\"strict\": [\"lenient\"]}]\n  default_fallbacks: [\"last-resort\"]\n",
    );
    let gw = Gateway::start(&cfg, &[], &[]);

    let (status, headers, body) = chat_call(&gw, &chat("primary")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-litellm-attempted-fallbacks"), "1");
    assert_eq!(header(&headers, "x-litellm-attempted-retries"), "1");
    assert_eq!(header(&headers, "x-litellm-model-group"), "backup");
    assert_eq!(
        calls(&mock, "mock-fail-503").await,
        2,
        "retries come before fallbacks"
    );
    assert_eq!(calls(&mock, "good-backup").await, 1);

    let (status, headers, _) = chat_call(&gw, &chat("small")).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-litellm-model-group"), "big");
    assert_eq!(
        calls(&mock, "mock-fail-context_length").await,
        1,
        "a context window error is not retried"
    );

    let (status, headers, _) = chat_call(&gw, &chat("strict")).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-litellm-model-group"), "lenient");

    let (status, headers, _) = chat_call(&gw, &chat("other")).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-litellm-model-group"), "last-resort");
    assert_eq!(calls(&mock, "good-default").await, 1);
}

#[actix_rt::test]
async fn client_side_fallbacks_wildcard_key_and_max_fallbacks() {
    let mock = Mock::start(&[]);
    let cfg = config(
        &[
            entry(&mock, "primary", "mock-fail-503", ""),
            entry(&mock, "also-broken", "mock-fail-500", ""),
            entry(&mock, "backup", "good-backup", ""),
        ],
        "router_settings:\n  num_retries: 0\n  max_fallbacks: 1\n  fallbacks: [{\"*\": [\"also-broken\", \"backup\"]}]\n",
    );
    let gw = Gateway::start(&cfg, &[], &[]);

    // "*" applies to any group; max_fallbacks: 1 stops after the first (failing) fallback, and the
    // client learns why its own model failed.
    let (status, headers, body) = chat_call(&gw, &chat("primary")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(header(&headers, "x-litellm-attempted-fallbacks"), "1");
    assert_eq!(calls(&mock, "mock-fail-500").await, 1);
    assert_eq!(calls(&mock, "good-backup").await, 0);

    // The client's list comes first; the object form replaces the messages for that model.
    let mut body = chat("primary");
    body["fallbacks"] =
        json!([{"model": "backup", "messages": [{"role": "user", "content": "shorter prompt"}]}]);
    let (status, headers, _) = chat_call(&gw, &body).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-litellm-model-group"), "backup");
    let seen = mock.last_request().await;
    assert_eq!(seen["body"]["messages"][0]["content"], "shorter prompt");
    assert!(
        seen["body"].get("fallbacks").is_none(),
        "gateway fields never go upstream"
    );

    // mock_testing_fallbacks fails the requested group without calling it.
    let before = calls(&mock, "mock-fail-503").await;
    let mut body = chat("primary");
    body["mock_testing_fallbacks"] = json!(true);
    body["fallbacks"] = json!(["backup"]);
    let (status, headers, _) = chat_call(&gw, &body).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-litellm-attempted-fallbacks"), "1");
    assert_eq!(calls(&mock, "mock-fail-503").await, before);
}

#[actix_rt::test]
async fn a_stream_falls_back_before_its_first_byte_but_never_after() {
    let mock = Mock::start(&["--stream-chunks", "6"]);
    let cfg = config(
        &[entry(&mock, "primary", "mock-fail-500", ""), entry(&mock, "backup", "good-backup", "")],
        "router_settings:\n  num_retries: 0\n  fallbacks: [{\"primary\": [\"backup\"]}, {\"cutting\": [\"backup\"]}]\n",
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    let mut body = chat("primary");
    body["stream"] = json!(true);
    let (status, headers, text) =
        stream_text(&gw.url("/v1/chat/completions"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(header(&headers, "x-litellm-attempted-fallbacks"), "1");
    assert_eq!(sse_data(&text).last().map(String::as_str), Some("[DONE]"));
    assert_eq!(calls(&mock, "good-backup").await, 1);

    // Cut mid-way: bytes already reached the client, so no retry and no fallback.
    let mut body = chat("backup");
    body["stream"] = json!(true);
    body["mock_fail"] = json!("cut");
    body["num_retries"] = json!(3);
    let (status, headers, text) =
        stream_text(&gw.url("/v1/chat/completions"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-litellm-attempted-retries"), "0");
    assert!(text.contains("\"error\""), "{text}");
    assert_eq!(calls(&mock, "good-backup").await, 2);
}

#[actix_rt::test]
async fn every_deployment_cooling_down_answers_429_with_retry_after() {
    let mock = Mock::start(&[]);
    let cfg = config(
        &[entry(&mock, "g", "mock-fail-401", "")],
        "router_settings:\n  cooldown_time: 30\n",
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    let (status, _, _) = chat_call(&gw, &chat("g")).await;
    assert_eq!(status, 401);
    // The deployment actor decides the cooldown from a fire-and-forget report; give it a moment.
    let deadline = Instant::now() + Duration::from_secs(3);
    let (headers, body) = loop {
        let (status, headers, body) = chat_call(&gw, &chat("g")).await;
        if status == 429 {
            break (headers, body);
        }
        assert_eq!(status, 401, "{body}");
        assert!(
            Instant::now() < deadline,
            "the deployment never cooled down"
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    };
    assert_envelope(&body);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("No deployments available"));
    let after: u64 = header(&headers, "retry-after").parse().unwrap();
    assert!((1..=30).contains(&after), "retry-after {after}");
    let calls_when_cooled = calls(&mock, "mock-fail-401").await;
    for _ in 0..5 {
        assert_eq!(chat_call(&gw, &chat("g")).await.0, 429);
    }
    assert_eq!(
        calls(&mock, "mock-fail-401").await,
        calls_when_cooled,
        "a cooling deployment gets no calls"
    );
}

#[actix_rt::test]
async fn disable_cooldowns_keeps_a_failing_deployment_in_rotation() {
    let mock = Mock::start(&[]);
    let cfg = config(
        &[
            entry(&mock, "g", "mock-fail-500", ""),
            entry(&mock, "g", "good-b", ""),
        ],
        "router_settings:\n  num_retries: 0\n  disable_cooldowns: true\n",
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    for _ in 0..40 {
        chat_call(&gw, &chat("g")).await;
    }
    let bad = calls(&mock, "mock-fail-500").await;
    assert!(
        bad > 8,
        "without cooldowns the failing deployment keeps its share; got {bad} of 40"
    );
}

#[actix_rt::test]
async fn order_prefers_the_lowest_and_moves_on_when_it_fails() {
    let mock = Mock::start(&[]);
    let cfg = config(
        &[
            entry(&mock, "g", "first", "order: 1"),
            entry(&mock, "g", "second", "order: 2"),
            entry(&mock, "h", "mock-fail-500", "order: 1"),
            entry(&mock, "h", "h-second", "order: 2"),
        ],
        "router_settings:\n  num_retries: 1\n",
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    for _ in 0..10 {
        assert_eq!(chat_call(&gw, &chat("g")).await.0, 200);
    }
    assert_eq!(calls(&mock, "first").await, 10);
    assert_eq!(calls(&mock, "second").await, 0);
    let (status, _, _) = chat_call(&gw, &chat("h")).await;
    assert_eq!(status, 200);
    assert_eq!(calls(&mock, "h-second").await, 1);
}

#[actix_rt::test]
async fn deployment_rpm_admits_exactly_the_limit_under_concurrency() {
    let mock = Mock::start(&[]);
    let cfg = config(
        &[entry(&mock, "g", "limited", "rpm: 5")],
        "router_settings:\n  num_retries: 0\n",
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    let url = gw.url("/v1/chat/completions");
    let results = futures_util::future::join_all((0..30).map(|_| {
        let url = url.clone();
        async move { post(&url, Some(MASTER_KEY), &chat("g")).await }
    }))
    .await;
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let limited: Vec<_> = results.iter().filter(|r| r.0 == 429).collect();
    // The minute may roll over during the test; then a second window of 5 opens.
    assert!(ok == 5 || ok == 10, "admitted {ok}");
    assert_eq!(ok + limited.len(), 30);
    assert!(limited[0].2["error"]["message"]
        .as_str()
        .unwrap()
        .contains("rpm/tpm"));
    assert!(!header(&limited[0].1, "retry-after").is_empty());
    assert_eq!(calls(&mock, "limited").await, ok as u64);
}

#[actix_rt::test]
async fn pre_call_checks_skip_deployments_whose_context_window_is_too_small() {
    let mock = Mock::start(&[]);
    let small = "model_info: {max_input_tokens: 20}";
    let cfg = format!(
        "model_list:\n{}{}{}{}general_settings:\n  master_key: {MASTER_KEY}\nrouter_settings:\n  enable_pre_call_checks: true\n  context_window_fallbacks: [{{\"tiny\": [\"roomy\"]}}]\n",
        entry(&mock, "g", "small-ctx", "").replace("    litellm_params:", &format!("    {small}\n    litellm_params:")),
        entry(&mock, "g", "large-ctx", "").replace("    litellm_params:", "    model_info: {max_input_tokens: 100000}\n    litellm_params:"),
        entry(&mock, "tiny", "tiny-ctx", "").replace("    litellm_params:", &format!("    {small}\n    litellm_params:")),
        entry(&mock, "roomy", "roomy-ctx", ""),
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    let long =
        json!({"model": "g", "messages": [{"role": "user", "content": "word ".repeat(200)}]});
    for _ in 0..6 {
        assert_eq!(chat_call(&gw, &long).await.0, 200);
    }
    assert_eq!(calls(&mock, "small-ctx").await, 0);
    assert_eq!(calls(&mock, "large-ctx").await, 6);
    // Short prompts may use either.
    for _ in 0..20 {
        chat_call(&gw, &chat("g")).await;
    }
    assert!(calls(&mock, "small-ctx").await > 0);
    // No deployment fits: a context window error, which context_window_fallbacks handle.
    let mut body = long.clone();
    body["model"] = json!("tiny");
    let (status, headers, _) = chat_call(&gw, &body).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-litellm-model-group"), "roomy");
    assert_eq!(calls(&mock, "tiny-ctx").await, 0);
}

#[actix_rt::test]
async fn latency_based_routing_sends_traffic_to_the_fastest() {
    let mock = Mock::start(&[]);
    let cfg = config(
        &[
            entry(
                &mock,
                "g",
                "slow",
                "extra_headers: {x-mock-latency-ms: \"300\"}",
            ),
            entry(&mock, "g", "fast", ""),
        ],
        "router_settings:\n  routing_strategy: latency-based-routing\n",
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    for _ in 0..12 {
        assert_eq!(chat_call(&gw, &chat("g")).await.0, 200);
    }
    // Each deployment is measured once (one without samples counts as fastest), then the faster
    // one takes everything.
    assert_eq!(calls(&mock, "slow").await, 1);
    assert_eq!(calls(&mock, "fast").await, 11);
}

#[actix_rt::test]
async fn cost_based_routing_sends_traffic_to_the_cheapest() {
    let mock = Mock::start(&[]);
    let cfg = config(
        &[
            entry(&mock, "g", "gpt-4o", ""),
            entry(&mock, "g", "gpt-4o-mini", ""),
            entry(
                &mock,
                "g",
                "custom-priced",
                "input_cost_per_token: 0.001\noutput_cost_per_token: 0.002",
            ),
        ],
        "router_settings:\n  routing_strategy: cost-based-routing\n",
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    for _ in 0..8 {
        assert_eq!(chat_call(&gw, &chat("g")).await.0, 200);
    }
    assert_eq!(calls(&mock, "gpt-4o-mini").await, 8);
}

#[actix_rt::test]
async fn least_busy_and_usage_based_spread_the_load() {
    let mock = Mock::start(&[]);
    let slow = "extra_headers: {x-mock-latency-ms: \"400\"}";
    let cfg = config(
        &[
            entry(&mock, "busy", "b1", slow),
            entry(&mock, "busy", "b2", slow),
            entry(&mock, "busy", "b3", slow),
            entry(&mock, "busy", "b4", slow),
        ],
        "router_settings:\n  routing_strategy: least-busy\n",
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    let url = gw.url("/v1/chat/completions");
    let requests = (0..4).map(|i| {
        let url = url.clone();
        async move {
            actix_rt::time::sleep(Duration::from_millis(40 * i)).await;
            post(&url, Some(MASTER_KEY), &chat("busy")).await.0
        }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 200));
    for m in ["b1", "b2", "b3", "b4"] {
        assert_eq!(
            calls(&mock, m).await,
            1,
            "least-busy gives each idle deployment one request"
        );
    }

    let mock = Mock::start(&[]);
    let cfg = config(
        &[
            entry(&mock, "u", "u1", "tpm: 100000"),
            entry(&mock, "u", "u2", "tpm: 100000"),
        ],
        "router_settings:\n  routing_strategy: usage-based-routing-v2\n",
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    for _ in 0..10 {
        assert_eq!(chat_call(&gw, &chat("u")).await.0, 200);
    }
    let (a, b) = (calls(&mock, "u1").await, calls(&mock, "u2").await);
    assert_eq!(a + b, 10);
    assert!(
        a.abs_diff(b) <= 2,
        "usage-based routing balances tokens: {a} vs {b}"
    );
}

#[actix_rt::test]
async fn mock_testing_rate_limit_error_is_retried_once_with_the_deployment_retries() {
    let mock = Mock::start(&[]);
    let cfg = config(
        &[entry(&mock, "g", "mock-gpt", "num_retries: 50")],
        "router_settings:\n  retry_after: 0.01\n",
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    let mut body = chat("g");
    body["mock_testing_rate_limit_error"] = json!(true);
    let (status, headers, body) = chat_call(&gw, &body).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-litellm-attempted-retries"), "1");
    assert_eq!(header(&headers, "x-litellm-max-retries"), "50");
    assert_eq!(
        calls(&mock, "mock-gpt").await,
        1,
        "the simulated failure never reaches the provider"
    );
}
