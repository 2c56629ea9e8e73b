//! Anthropic's Messages API (`/v1/messages`, `/v1/messages/count_tokens`) end to end: the real
//! gateway in front of the mock provider (OpenAI wire format), so every request is translated to
//! the OpenAI chat shape on the way in and back to Anthropic's shapes on the way out.

mod common;

use common::*;
use serde_json::{json, Value};

const ANTHROPIC_HEADERS: &[(&str, &str)] = &[
    ("anthropic-version", "2023-06-01"),
    ("anthropic-beta", "prompt-caching-2024-07-31"),
];

/// POST with `x-api-key` (and the Anthropic headers) instead of `Authorization`.
async fn post_x_api_key(url: &str, key: &str, body: &Value) -> (u16, Headers, Value) {
    let mut headers = vec![("x-api-key", key)];
    headers.extend_from_slice(ANTHROPIC_HEADERS);
    post_raw(url, None, body.to_string(), &headers).await
}

/// POST a streaming request with `x-api-key`; returns (status, content type, raw SSE text).
async fn stream_x_api_key(url: &str, key: &str, body: &Value) -> (u16, String, String) {
    use futures_util::StreamExt;
    let mut req = client()
        .post(url)
        .insert_header(("content-type", "application/json"))
        .insert_header(("x-api-key", key));
    for (k, v) in ANTHROPIC_HEADERS {
        req = req.insert_header((*k, *v));
    }
    let mut resp = req.send_body(body.to_string()).await.expect("request sent");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut text = String::new();
    while let Some(chunk) = resp.next().await {
        match chunk {
            Ok(c) => text.push_str(&String::from_utf8_lossy(&c)),
            Err(e) => {
                text.push_str(&format!("\n<transport error: {e}>"));
                break;
            }
        }
    }
    (status, content_type, text)
}

/// Anthropic SSE text → (event name, data) pairs; each event's name must equal its data's `type`.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = Value::Null;
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).unwrap_or_else(|_| panic!("json: {d}"));
                }
            }
            assert_eq!(data["type"], name, "event name matches its type: {e}");
            (name, data)
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

fn assert_anthropic_error(body: &Value, kind: &str) {
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

fn weather_tool() -> Value {
    json!({"name": "get_weather", "description": "Get the current weather in a given location",
           "input_schema": {"type": "object",
               "properties": {"location": {"type": "string", "description": "The city and state"}},
               "required": ["location"]}})
}

#[actix_rt::test]
async fn message_in_anthropic_format_through_the_pipeline() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let body = json!({
        "model": "mock-gpt",
        "max_tokens": 256,
        "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello, world"}]}],
        "temperature": 0.2,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-42"}
    });
    for path in ["/v1/messages", "/messages"] {
        let (status, headers, msg) = post_x_api_key(&gw.url(path), MASTER_KEY, &body).await;
        assert_eq!(status, 200, "{path}: {msg}");
        assert!(headers.get("x-litellm-call-id").is_some());
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
        assert!(msg["id"].as_str().unwrap().starts_with("msg_"), "{msg}");
        assert_eq!(msg["type"], "message");
        assert_eq!(msg["role"], "assistant");
        assert_eq!(msg["model"], "mock-gpt");
        assert_eq!(msg["stop_reason"], "end_turn");
        assert_eq!(msg["stop_sequence"], Value::Null);
        assert_eq!(msg["content"][0]["type"], "text");
        assert!(msg["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Tollgate mock provider"));
        assert!(msg["usage"]["input_tokens"].as_u64().unwrap() > 0, "{msg}");
        assert!(msg["usage"]["output_tokens"].as_u64().unwrap() > 0, "{msg}");
        assert_eq!(msg["usage"]["cache_read_input_tokens"], 0);
    }

    // What the provider received: an OpenAI chat request with the deployment's key.
    let last = mock.last_request().await;
    assert_eq!(last["path"], "/v1/chat/completions");
    assert_eq!(
        last["headers"]["authorization"],
        "Bearer sk-mock-upstream-secret-42"
    );
    assert!(last["headers"].get("x-api-key").is_none());
    assert!(last["headers"].get("anthropic-version").is_none());
    let sent = &last["body"];
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "You are terse."},
               {"role": "user", "content": "Hello, world"}])
    );
    assert_eq!(sent["max_tokens"], 256);
    assert_eq!(sent["temperature"], 0.2);
    assert_eq!(sent["stop"], json!(["END"]));
    assert_eq!(sent["user"], "user-42");
    assert!(sent.get("metadata").is_none() && sent.get("system").is_none());

    // A stop by length maps to max_tokens.
    let mut short = body.clone();
    short["max_tokens"] = json!(2);
    let (status, _, msg) = post_x_api_key(&gw.url("/v1/messages"), MASTER_KEY, &short).await;
    assert_eq!(status, 200, "{msg}");
    assert_eq!(msg["stop_reason"], "max_tokens");
    assert_eq!(msg["usage"]["output_tokens"], 2);
}

#[actix_rt::test]
async fn stream_is_anthropic_events_with_usage() {
    let mock = Mock::start(&["--stream-chunks", "4"]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let body = json!({"model": "mock-gpt", "max_tokens": 100, "stream": true,
                      "messages": [{"role": "user", "content": "Hello there"}]});
    let (status, content_type, text) =
        stream_x_api_key(&gw.url("/v1/messages"), MASTER_KEY, &body).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    assert!(
        !text.contains("[DONE]") && !text.contains("chat.completion"),
        "{text}"
    );
    let ev = events(&text);
    let n = names(&ev);
    assert_eq!(
        &n[..3],
        ["message_start", "ping", "content_block_start"],
        "{text}"
    );
    assert_eq!(
        &n[n.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"],
        "{text}"
    );
    assert!(
        n[3..n.len() - 3]
            .iter()
            .all(|e| *e == "content_block_delta"),
        "{n:?}"
    );
    assert!(n.len() - 6 >= 2, "several deltas: {n:?}");
    let start = &ev[0].1["message"];
    assert!(start["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(start["role"], "assistant");
    assert_eq!(start["content"], json!([]));
    assert!(start["usage"]["input_tokens"].as_u64().unwrap() > 0);
    let text_out: String = ev
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        text_out,
        "Hello from the Tollgate mock provider. This is a deterministic reply."
    );
    let delta = &ev[ev.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 11);
    assert!(delta["usage"]["input_tokens"].as_u64().unwrap() > 0);

    // The gateway always asked the provider for usage.
    let last = mock.last_request().await;
    assert_eq!(last["body"]["stream"], true);
    assert_eq!(last["body"]["stream_options"]["include_usage"], true);

    // A stream cut by the provider ends with an error event, never a clean message_stop.
    let mut cut = body.clone();
    cut["mock_fail"] = json!("cut");
    let (status, _, text) = stream_x_api_key(&gw.url("/v1/messages"), MASTER_KEY, &cut).await;
    assert_eq!(status, 200, "{text}");
    let ev = events(&text);
    let (last_name, last_event) = ev.last().unwrap();
    assert_eq!(last_name, "error", "{text}");
    assert_eq!(last_event["error"]["type"], "api_error");
    assert!(!names(&ev).contains(&"message_stop"));
}

#[actix_rt::test]
async fn tools_round_trip() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let url = gw.url("/v1/messages");
    let first = json!({
        "model": "mock-gpt", "max_tokens": 200,
        "tools": [weather_tool()],
        "tool_choice": {"type": "tool", "name": "get_weather"},
        "messages": [{"role": "user", "content": "What's the weather like in San Francisco?"}]
    });
    let (status, _, msg) = post_x_api_key(&url, MASTER_KEY, &first).await;
    assert_eq!(status, 200, "{msg}");
    assert_eq!(msg["stop_reason"], "tool_use");
    let block = &msg["content"][0];
    assert_eq!(block["type"], "tool_use", "{msg}");
    assert_eq!(block["name"], "get_weather");
    assert_eq!(block["input"], json!({}));
    let tool_id = block["id"].as_str().unwrap().to_string();
    let sent = mock.last_request().await["body"].clone();
    assert_eq!(
        sent["tools"][0],
        json!({"type": "function", "function": {"name": "get_weather",
               "description": "Get the current weather in a given location",
               "parameters": weather_tool()["input_schema"]}})
    );
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );

    // The same call streamed: a tool_use block with input_json_delta.
    let mut streamed = first.clone();
    streamed["stream"] = json!(true);
    streamed["tool_choice"] = json!({"type": "any"});
    let (status, _, text) = stream_x_api_key(&url, MASTER_KEY, &streamed).await;
    assert_eq!(status, 200, "{text}");
    let ev = events(&text);
    let start = ev
        .iter()
        .find(|(n, _)| n == "content_block_start")
        .expect("a block");
    assert_eq!(start.1["content_block"]["type"], "tool_use", "{text}");
    assert_eq!(start.1["content_block"]["name"], "get_weather");
    assert_eq!(start.1["content_block"]["input"], json!({}));
    let json_deltas: String = ev
        .iter()
        .filter(|(n, d)| n == "content_block_delta" && d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(json_deltas, "{}");
    let delta = ev.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
    assert_eq!(mock.last_request().await["body"]["tool_choice"], "required");

    // The tool result goes back as an OpenAI tool message answering that call.
    let second = json!({
        "model": "mock-gpt", "max_tokens": 200,
        "tools": [weather_tool()],
        "messages": [
            {"role": "user", "content": "What's the weather like in San Francisco?"},
            {"role": "assistant", "content": msg["content"].clone()},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": tool_id, "content": "15 degrees"}
            ]}
        ]
    });
    let (status, _, answer) = post_x_api_key(&url, MASTER_KEY, &second).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["stop_reason"], "end_turn");
    assert_eq!(answer["content"][0]["type"], "text");
    let sent = mock.last_request().await["body"].clone();
    let msgs = sent["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{sent}");
    assert_eq!(msgs[1]["role"], "assistant");
    assert_eq!(msgs[1]["tool_calls"][0]["id"], tool_id.as_str());
    assert_eq!(msgs[1]["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(msgs[1]["tool_calls"][0]["function"]["arguments"], "{}");
    assert_eq!(
        msgs[2],
        json!({"role": "tool", "tool_call_id": tool_id, "content": "15 degrees"})
    );
}

#[actix_rt::test]
async fn x_api_key_with_a_virtual_key_and_anthropic_shaped_auth_errors() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let (status, _, created) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"models": ["mock-gpt"], "key_alias": "claude-code"}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let key = created["key"].as_str().unwrap().to_string();
    let body = |model: &str| json!({"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]});
    let url = gw.url("/v1/messages");

    let (status, _, msg) = post_x_api_key(&url, &key, &body("mock-gpt")).await;
    assert_eq!(status, 200, "{msg}");
    assert_eq!(msg["type"], "message");
    // Authorization: Bearer works too.
    let (status, _, msg) = post(&url, Some(&key), &body("mock-gpt")).await;
    assert_eq!(status, 200, "{msg}");

    // A model the key may not use.
    let (status, _, err) = post_x_api_key(&url, &key, &body("mock-embed")).await;
    assert_eq!(status, 401, "{err}");
    assert_anthropic_error(&err, "authentication_error");

    // Wrong key, no key.
    let (status, _, err) =
        post_x_api_key(&url, "sk-not-a-real-key-000000", &body("mock-gpt")).await;
    assert_eq!(status, 401, "{err}");
    assert_anthropic_error(&err, "authentication_error");
    assert!(
        !err.to_string().contains("sk-not-a-real-key-000000"),
        "{err}"
    );
    let (status, _, err) =
        post_raw(&url, None, body("mock-gpt").to_string(), ANTHROPIC_HEADERS).await;
    assert_eq!(status, 401, "{err}");
    assert_anthropic_error(&err, "authentication_error");
    let (status, _, err) = post_raw(
        &gw.url("/v1/messages/count_tokens"),
        None,
        body("mock-gpt").to_string(),
        &[],
    )
    .await;
    assert_eq!(status, 401, "{err}");
    assert_anthropic_error(&err, "authentication_error");
}

#[actix_rt::test]
async fn provider_and_request_errors_take_anthropic_shape() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let url = gw.url("/v1/messages");
    let with = |mode: &str| {
        json!({"model": "mock-gpt", "max_tokens": 50, "mock_fail": mode,
               "messages": [{"role": "user", "content": "hi"}]})
    };

    let (status, headers, err) = post_x_api_key(&url, MASTER_KEY, &with("429")).await;
    assert_eq!(status, 429, "{err}");
    assert_anthropic_error(&err, "rate_limit_error");
    assert!(headers.get("retry-after").is_some());
    assert!(headers.get("x-litellm-call-id").is_some());

    let (status, _, err) = post_x_api_key(&url, MASTER_KEY, &with("context_length")).await;
    assert_eq!(status, 400, "{err}");
    assert_anthropic_error(&err, "invalid_request_error");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("maximum context length"));

    let (status, _, err) = post_x_api_key(&url, MASTER_KEY, &with("500")).await;
    assert_eq!(status, 500, "{err}");
    assert_anthropic_error(&err, "api_error");
    assert!(!err.to_string().contains("sk-mock-upstream-secret-42"));

    // A stream that fails before it starts is a plain JSON error too.
    let mut streamed = with("503");
    streamed["stream"] = json!(true);
    let (status, _, err) = post_x_api_key(&url, MASTER_KEY, &streamed).await;
    assert_eq!(status, 503, "{err}");
    assert_anthropic_error(&err, "overloaded_error");

    // Unknown model, invalid request, malformed JSON.
    let (status, _, err) = post_x_api_key(
        &url,
        MASTER_KEY,
        &json!({"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert_anthropic_error(&err, "invalid_request_error");
    let (status, _, err) = post_x_api_key(
        &url,
        MASTER_KEY,
        &json!({"model": "mock-gpt", "max_tokens": 5, "messages": [{"role": "system", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert_anthropic_error(&err, "invalid_request_error");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("messages.0.role"));
    let (status, _, err) = post_raw(&url, None, "{\"model\":", &[("x-api-key", MASTER_KEY)]).await;
    assert_eq!(status, 400, "{err}");
    assert_anthropic_error(&err, "invalid_request_error");
}

#[actix_rt::test]
async fn count_tokens_estimates_the_prompt() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let url = gw.url("/v1/messages/count_tokens");
    let count = |body: Value| {
        let url = url.clone();
        async move {
            let (status, _, resp) = post_x_api_key(&url, MASTER_KEY, &body).await;
            assert_eq!(status, 200, "{resp}");
            resp["input_tokens"].as_u64().expect("input_tokens")
        }
    };
    let short = count(json!({"model": "mock-gpt",
        "messages": [{"role": "user", "content": "Hello, world"}]}))
    .await;
    assert!(short > 0);
    let long = count(json!({"model": "mock-gpt",
        "system": "You are a scientist",
        "tools": [weather_tool()],
        "messages": [{"role": "user", "content": "Hello, world ".repeat(100)}]}))
    .await;
    assert!(long > short + 250, "{short} {long}");
    // Counting calls no provider.
    assert_eq!(mock.stats().await["total"], 0);
    let (status, _, err) = post_x_api_key(&url, MASTER_KEY, &json!({"model": "mock-gpt"})).await;
    assert_eq!(status, 400, "{err}");
    assert_anthropic_error(&err, "invalid_request_error");
}
