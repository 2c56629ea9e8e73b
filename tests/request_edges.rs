//! Request edges LiteLLM clients rely on: the body's `fallbacks` in the map form the config uses
//! (`[{"model-a": ["model-b"]}]`) as well as the list of names, the body's
//! `context_window_fallbacks` (acting, never forwarded), every LiteLLM duration form (`30min`,
//! `1mo`…), and the `x-litellm-customer-id` header naming the end user.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// `good` answers; `broken` always fails with a 500; `small` always fails with a context-window
/// error. `good` is priced so end-user budgets bite.
fn config(mock: &Mock) -> String {
    format!(
        r#"model_list:
  - model_name: good
    litellm_params: {{model: openai/mock-gpt, api_base: "{base}", api_key: sk-x, input_cost_per_token: 0.001, output_cost_per_token: 0.002}}
  - model_name: broken
    litellm_params: {{model: openai/mock-fail-500, api_base: "{base}", api_key: sk-x}}
  - model_name: small
    litellm_params: {{model: openai/mock-fail-context_length, api_base: "{base}", api_key: sk-x}}
general_settings:
  master_key: {MASTER_KEY}
  proxy_batch_write_at: 0.2
"#,
        base = mock.api_base()
    )
}

fn ask(model: &str, extra: Value) -> Value {
    let mut body = chat(model);
    body["num_retries"] = json!(0);
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn group(headers: &Headers) -> Option<String> {
    headers
        .get("x-litellm-model-group")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn upstream_calls(mock: &Mock, model: &str) -> u64 {
    mock.stats().await["by_model"][model].as_u64().unwrap_or(0)
}

#[actix_rt::test]
async fn body_fallbacks_in_the_map_form_and_as_a_list_of_names() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let url = gw.url("/v1/chat/completions");

    // The map form the LiteLLM docs show: this group's entry is tried after it failed.
    let body = ask("broken", json!({"fallbacks": [{"broken": ["good"]}]}));
    let (status, headers, resp) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(group(&headers).as_deref(), Some("good"));
    let sent = mock.last_request().await;
    assert_eq!(sent["body"]["model"], "mock-gpt", "{sent}");
    assert!(sent["body"].get("fallbacks").is_none(), "{sent}");

    // An entry for another group does not apply: the client learns why its model failed.
    let before = upstream_calls(&mock, "mock-gpt").await;
    let body = ask("broken", json!({"fallbacks": [{"elsewhere": ["good"]}]}));
    let (status, _, resp) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 500, "{resp}");
    assert_envelope(&resp);
    assert_eq!(upstream_calls(&mock, "mock-gpt").await, before);

    // The `"*"` entry covers every group; the list of names applies whichever group failed.
    for fallbacks in [json!([{"*": ["good"]}]), json!(["good"])] {
        let body = ask("broken", json!({ "fallbacks": fallbacks }));
        let (status, headers, resp) = post(&url, Some(MASTER_KEY), &body).await;
        assert_eq!(status, 200, "{fallbacks}: {resp}");
        assert_eq!(group(&headers).as_deref(), Some("good"));
    }

    // Neither form: refused before anything is called.
    for bad in [
        json!({"broken": ["good"]}),
        json!([{}]),
        json!([{"broken": [1]}]),
    ] {
        let body = ask("broken", json!({ "fallbacks": bad }));
        let (status, _, resp) = post(&url, Some(MASTER_KEY), &body).await;
        assert_eq!(status, 400, "{bad}: {resp}");
        assert_eq!(resp["error"]["param"], "fallbacks", "{resp}");
    }
}

#[actix_rt::test]
async fn body_context_window_fallbacks_act_and_are_never_forwarded() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let url = gw.url("/v1/chat/completions");
    let cw = json!({"context_window_fallbacks": [{"small": ["good"]}, {"broken": ["good"]}]});

    // A request that succeeds: the field stays on the gateway.
    let (status, _, resp) = post(&url, Some(MASTER_KEY), &ask("good", cw.clone())).await;
    assert_eq!(status, 200, "{resp}");
    let sent = mock.last_request().await;
    assert!(
        sent["body"].get("context_window_fallbacks").is_none(),
        "{sent}"
    );
    assert_eq!(sent["body"]["messages"][0]["content"], "Say hello");

    // A context-window error: the next model is tried, and the field is not forwarded to it.
    let small_before = upstream_calls(&mock, "mock-fail-context_length").await;
    let (status, headers, resp) = post(&url, Some(MASTER_KEY), &ask("small", cw.clone())).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(group(&headers).as_deref(), Some("good"));
    assert_eq!(
        upstream_calls(&mock, "mock-fail-context_length").await,
        small_before + 1
    );
    let sent = mock.last_request().await;
    assert_eq!(sent["body"]["model"], "mock-gpt", "{sent}");
    assert!(
        sent["body"].get("context_window_fallbacks").is_none(),
        "{sent}"
    );

    // Without the field the same request fails with the context-window error.
    let (status, _, resp) = post(&url, Some(MASTER_KEY), &ask("small", json!({}))).await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(resp["error"]["code"], "context_length_exceeded", "{resp}");

    // Any other error does not use the context-window fallbacks.
    let (status, _, resp) = post(&url, Some(MASTER_KEY), &ask("broken", cw)).await;
    assert_eq!(status, 500, "{resp}");

    // The map form of the seeds, on the streaming path too.
    let mut body = ask(
        "small",
        json!({"context_window_fallbacks": [{"small": ["good"]}]}),
    );
    body["stream"] = json!(true);
    let (status, _, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("[DONE]"), "{text}");
    let sent = mock.last_request().await;
    assert!(
        sent["body"].get("context_window_fallbacks").is_none(),
        "{sent}"
    );

    let bad = ask("small", json!({"context_window_fallbacks": "good"}));
    let (status, _, resp) = post(&url, Some(MASTER_KEY), &bad).await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(resp["error"]["param"], "context_window_fallbacks");
}

#[actix_rt::test]
async fn every_litellm_duration_form_parses_wherever_durations_are_taken() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let minute = 60_000i64;
    let day = 1_440 * minute;
    for (duration, ms) in [
        ("45s", 45_000),
        ("30m", 30 * minute),
        ("30min", 30 * minute),
        ("12h", 12 * 60 * minute),
        ("2d", 2 * day),
        ("1w", 7 * day),
        ("1mo", 30 * day),
    ] {
        // A key's lifetime and its budget window.
        let (status, _, key) = post(
            &gw.url("/key/generate"),
            Some(MASTER_KEY),
            &json!({"duration": duration, "budget_duration": duration, "max_budget": 1}),
        )
        .await;
        assert_eq!(status, 200, "{duration}: {key}");
        let created = millis(&key["created_at"]);
        let lived = millis(&key["expires"]) - created;
        assert!(
            (lived - ms).abs() < 5_000,
            "{duration}: expires after {lived} ms"
        );
        let window = millis(&key["budget_reset_at"]) - created;
        assert!(
            (window - ms).abs() < 5_000,
            "{duration}: budget resets after {window} ms"
        );
        // A team's and a user's budget window.
        let (status, _, team) = post(
            &gw.url("/team/new"),
            Some(MASTER_KEY),
            &json!({"max_budget": 1, "budget_duration": duration}),
        )
        .await;
        assert_eq!(status, 200, "{duration}: {team}");
        assert_eq!(team["budget_duration"], duration, "{team}");
        let (status, _, user) = post(
            &gw.url("/user/new"),
            Some(MASTER_KEY),
            &json!({"max_budget": 1, "budget_duration": duration, "auto_create_key": false}),
        )
        .await;
        assert_eq!(status, 200, "{duration}: {user}");
    }
    // A model's own budget window on a key.
    let (status, _, key) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"model_max_budget": {"good": {"budget_limit": 1, "time_period": "30min"}}}),
    )
    .await;
    assert_eq!(status, 200, "{key}");
    for bad in ["30x", "30mins", "min", "0min"] {
        let (status, _, resp) = post(
            &gw.url("/key/generate"),
            Some(MASTER_KEY),
            &json!({ "duration": bad }),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {resp}");
        assert_eq!(resp["error"]["param"], "duration", "{resp}");
    }
}

#[actix_rt::test]
async fn x_litellm_customer_id_names_the_end_user_for_budgets_and_spend_logs() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let (status, _, customer) = post(
        &gw.url("/customer/new"),
        Some(MASTER_KEY),
        &json!({"user_id": "acme", "max_budget": 0.01}),
    )
    .await;
    assert_eq!(status, 200, "{customer}");
    let (status, _, key) = post(&gw.url("/key/generate"), Some(MASTER_KEY), &json!({})).await;
    assert_eq!(status, 200, "{key}");
    let key = key["key"].as_str().unwrap().to_string();
    let url = gw.url("/v1/chat/completions");
    let with_header = |id: &'static str| {
        let url = url.clone();
        let key = key.clone();
        async move {
            post_raw(
                &url,
                Some(&key),
                chat("good").to_string(),
                &[("x-litellm-customer-id", id)],
            )
            .await
        }
    };
    let (status, _, resp) = with_header("acme").await;
    assert_eq!(status, 200, "{resp}");
    // The first call spent more than the end user's budget: the second is refused.
    let (status, _, resp) = with_header("acme").await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(resp["error"]["type"], "budget_exceeded", "{resp}");
    assert!(
        resp["error"]["message"]
            .as_str()
            .unwrap()
            .contains("End User=acme"),
        "{resp}"
    );
    // Another customer on the same key is not affected; the body's `user` wins over the header.
    assert_eq!(with_header("globex").await.0, 200);
    let mut body = chat("good");
    body["user"] = json!("initech");
    let (status, _, resp) = post_raw(
        &url,
        Some(&key),
        body.to_string(),
        &[("x-litellm-customer-id", "acme")],
    )
    .await;
    assert_eq!(status, 200, "{resp}");

    // The spend-log rows name the end user the header gave.
    let logs_url = gw.url(&format!("/spend/logs?api_key={key}"));
    wait_for(Duration::from_secs(15), || {
        let u = logs_url.clone();
        async move {
            get(&u, Some(MASTER_KEY))
                .await
                .2
                .as_array()
                .is_some_and(|a| a.len() >= 3)
        }
    })
    .await;
    let (_, _, logs) = get(&logs_url, Some(MASTER_KEY)).await;
    let mut users: Vec<&str> = logs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["end_user"].as_str())
        .collect();
    users.sort();
    assert_eq!(users, ["acme", "globex", "initech"], "{logs}");
}

/// Bare Claude names as the LiteLLM docs write them (`model: claude-3-opus-20240229`, a wildcard
/// route asked for `claude-2.1`) reach Anthropic's Messages API, listed in the price table or not.
#[actix_rt::test]
async fn bare_claude_names_reach_anthropic() {
    let mock = Mock::start(&["--api-key", "sk-ant-upstream-0123456789"]);
    let cfg = format!(
        r#"model_list:
  - model_name: claude-3
    litellm_params: {{model: claude-3-opus-20240229, api_base: "{root}", api_key: sk-ant-upstream-0123456789}}
  - model_name: claude-2
    litellm_params: {{model: claude-2, api_base: "{root}", api_key: sk-ant-upstream-0123456789}}
  - model_name: "*"
    litellm_params: {{model: "*", api_base: "{root}"}}
general_settings:
  master_key: {MASTER_KEY}
"#,
        root = mock.proc.url
    );
    let gw = Gateway::start(
        &cfg,
        &[],
        &[("ANTHROPIC_API_KEY", "sk-ant-upstream-0123456789")],
    );
    for (asked, upstream) in [
        ("claude-3", "claude-3-opus-20240229"),
        ("claude-2", "claude-2"),
        ("claude-2.1", "claude-2.1"),
        ("claude-instant-1", "claude-instant-1"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku-20241022"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4-20250514"),
    ] {
        let (status, _, resp) = post(
            &gw.url("/v1/chat/completions"),
            Some(MASTER_KEY),
            &chat(asked),
        )
        .await;
        assert_eq!(status, 200, "{asked}: {resp}");
        let seen = mock.last_request().await;
        assert_eq!(seen["path"], "/v1/messages", "{asked}: {seen}");
        assert_eq!(seen["body"]["model"], upstream, "{asked}: {seen}");
    }
}
