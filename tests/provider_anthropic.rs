//! The `anthropic/` provider through the real gateway, against the mock provider speaking the
//! Anthropic Messages API (`POST /v1/messages`, `x-api-key`, named SSE events).

mod common;

use common::*;
use serde_json::{json, Value};

const UPSTREAM_KEY: &str = "sk-ant-mock-upstream-secret-77";

/// Model groups: `claude` (base without `/v1`), `claude-v1` (base with `/v1`), `claude-overloaded`
/// (always 529) falling back to `claude`, `claude-small` (context errors) with a context-window
/// fallback to `claude`.
fn config(mock: &Mock) -> String {
    format!(
        r#"
model_list:
  - model_name: claude
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_base: {root}
      api_key: {UPSTREAM_KEY}
  - model_name: claude-v1
    litellm_params:
      model: anthropic/claude-haiku-4-5
      api_base: {v1}
      api_key: {UPSTREAM_KEY}
      max_tokens: 256
  - model_name: claude-overloaded
    litellm_params:
      model: anthropic/mock-fail-529
      api_base: {root}
      api_key: {UPSTREAM_KEY}
  - model_name: claude-small
    litellm_params:
      model: anthropic/mock-fail-context_length
      api_base: {root}
      api_key: {UPSTREAM_KEY}
  - model_name: claude-embed
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_base: {root}
      api_key: {UPSTREAM_KEY}
general_settings:
  master_key: {MASTER_KEY}
router_settings:
  num_retries: 0
litellm_settings:
  fallbacks: [{{"claude-overloaded": ["claude"]}}]
  context_window_fallbacks: [{{"claude-small": ["claude"]}}]
"#,
        root = mock.proc.url,
        v1 = mock.api_base(),
    )
}

fn start() -> (Mock, Gateway) {
    let mock = Mock::start(&["--api-key", UPSTREAM_KEY, "--stream-chunks", "4"]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    (mock, gw)
}

const DEFAULT_REPLY: &str = "Hello from the Tollgate mock provider. This is a deterministic reply.";

#[actix_rt::test]
async fn chat_goes_to_v1_messages_with_anthropic_headers_and_shapes() {
    let (mock, gw) = start();
    let url = gw.url("/v1/chat/completions");
    let body = json!({
        "model": "claude",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello"}
        ],
        "temperature": 0.3,
        "stop": ["zzz"],
        "user": "end-user-7"
    });
    let (status, _, resp) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["object"], "chat.completion");
    assert!(resp["id"].as_str().unwrap_or("").starts_with("msg_"));
    assert_eq!(resp["model"], "claude-sonnet-4-5");
    assert_eq!(resp["choices"][0]["message"]["role"], "assistant");
    assert_eq!(resp["choices"][0]["message"]["content"], DEFAULT_REPLY);
    assert_eq!(resp["choices"][0]["finish_reason"], "stop");
    let usage = &resp["usage"];
    let prompt = usage["prompt_tokens"].as_u64().unwrap_or(0);
    let completion = usage["completion_tokens"].as_u64().unwrap_or(0);
    assert!(prompt > 0 && completion > 0, "{usage}");
    assert_eq!(usage["total_tokens"].as_u64(), Some(prompt + completion));

    let seen = mock.last_request().await;
    assert_eq!(seen["path"], "/v1/messages");
    assert_eq!(seen["headers"]["x-api-key"], UPSTREAM_KEY);
    assert_eq!(seen["headers"]["anthropic-version"], "2023-06-01");
    assert!(seen["headers"].get("authorization").is_none(), "{seen}");
    let sent = &seen["body"];
    assert_eq!(sent["model"], "claude-sonnet-4-5");
    assert_eq!(sent["system"], "You are terse.");
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": "Say hello"}])
    );
    assert_eq!(sent["max_tokens"], 4096);
    assert_eq!(sent["temperature"], 0.3);
    assert_eq!(sent["stop_sequences"], json!(["zzz"]));
    assert_eq!(sent["metadata"], json!({"user_id": "end-user-7"}));

    // A base that already ends in /v1 is not doubled; the deployment's max_tokens applies.
    let (status, _, resp) = post(&url, Some(MASTER_KEY), &chat("claude-v1")).await;
    assert_eq!(status, 200, "{resp}");
    let seen = mock.last_request().await;
    assert_eq!(seen["path"], "/v1/messages");
    assert_eq!(seen["body"]["max_tokens"], 256);

    // Prompt caching: cache reads and writes count as prompt tokens, reads as cached tokens.
    let cached = json!({"model": "claude", "messages": [
        {"role": "system", "content": [{"type": "text", "text": "A long shared prefix. ".repeat(20), "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "Say hello"}
    ]});
    let (status, _, resp) = post(&url, Some(MASTER_KEY), &cached).await;
    assert_eq!(status, 200, "{resp}");
    let usage = &resp["usage"];
    let read = usage["cache_read_input_tokens"].as_u64().unwrap_or(0);
    let written = usage["cache_creation_input_tokens"].as_u64().unwrap_or(0);
    assert!(read > 0 && written > 0, "{usage}");
    assert_eq!(
        usage["prompt_tokens_details"]["cached_tokens"].as_u64(),
        Some(read)
    );
    assert!(
        usage["prompt_tokens"].as_u64().unwrap_or(0) > read + written,
        "{usage}"
    );
}

#[actix_rt::test]
async fn stream_chunks_usage_and_done() {
    let (mock, gw) = start();
    let url = gw.url("/v1/chat/completions");
    let mut body = chat("claude");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, _, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200);
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("json chunk"))
        .collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, DEFAULT_REPLY);
    let finish: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str().map(|_| c))
        .collect();
    assert_eq!(finish.len(), 1, "{text}");
    assert_eq!(finish[0]["choices"][0]["finish_reason"], "stop");
    let usage = chunks.last().expect("usage chunk");
    assert_eq!(usage["choices"], json!([]));
    let u = &usage["usage"];
    assert!(u["prompt_tokens"].as_u64().unwrap_or(0) > 0, "{text}");
    assert_eq!(u["completion_tokens"].as_u64(), Some(11));
    assert_eq!(
        u["total_tokens"].as_u64(),
        Some(u["prompt_tokens"].as_u64().unwrap_or(0) + 11)
    );
    let seen = mock.last_request().await;
    assert_eq!(seen["body"]["stream"], true);
    assert!(seen["body"].get("stream_options").is_none());

    // Without include_usage the usage chunk is hidden.
    body.as_object_mut()
        .expect("object")
        .remove("stream_options");
    let (_, _, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert!(!text.contains("\"usage\":{"), "{text}");
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    }}])
}

#[actix_rt::test]
async fn tools_round_trip_and_stream_as_tool_call_deltas() {
    let (mock, gw) = start();
    let url = gw.url("/v1/chat/completions");
    let ask = json!({"role": "user", "content": "Weather in Paris?"});
    let body = json!({
        "model": "claude",
        "messages": [ask],
        "tools": weather_tool(),
        "tool_choice": "required",
        "parallel_tool_calls": false,
        "mock_reply": "{\"city\":\"Paris\"}"
    });
    let (status, _, resp) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["choices"][0]["finish_reason"], "tool_calls");
    let call = &resp["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
    let call_id = call["id"].as_str().expect("id").to_string();
    assert!(call_id.starts_with("toolu_"));
    let sent = mock.last_request().await["body"].clone();
    assert_eq!(sent["tools"][0]["name"], "get_weather");
    assert_eq!(
        sent["tools"][0]["input_schema"]["required"],
        json!(["city"])
    );
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );

    // The tool result goes back as a user tool_result after the assistant's tool_use (the mock
    // refuses a tool_result without its tool_use in the previous message).
    let follow_up = json!({
        "model": "claude",
        "messages": [
            ask,
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call_id, "content": "18 C and sunny"}
        ],
        "tools": weather_tool()
    });
    let (status, _, resp) = post(&url, Some(MASTER_KEY), &follow_up).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["choices"][0]["finish_reason"], "stop");
    let sent = mock.last_request().await["body"].clone();
    assert_eq!(
        sent["messages"][1]["content"][0],
        json!({"type": "tool_use", "id": call_id, "name": "get_weather", "input": {"city": "Paris"}})
    );
    assert_eq!(
        sent["messages"][2],
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id, "content": "18 C and sunny"}]})
    );

    // Streamed: one tool call, id and name first, then argument fragments.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (status, _, text) = stream_text(&url, Some(MASTER_KEY), &streamed).await;
    assert_eq!(status, 200);
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
    let deltas: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).expect("json"))
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0).cloned())
        .collect();
    assert!(deltas.len() >= 2, "{text}");
    assert!(deltas.iter().all(|d| d["index"] == 0));
    assert_eq!(deltas[0]["function"]["name"], "get_weather");
    assert!(deltas[0]["id"].as_str().unwrap_or("").starts_with("toolu_"));
    let args: String = deltas
        .iter()
        .filter_map(|d| d["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, "{\"city\":\"Paris\"}");
    assert!(text.contains("\"finish_reason\":\"tool_calls\""), "{text}");
}

#[actix_rt::test]
async fn json_schema_and_images() {
    let (mock, gw) = start();
    let url = gw.url("/v1/chat/completions");
    let schema =
        json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]});
    let body = json!({
        "model": "claude",
        "messages": [{"role": "user", "content": "Who wrote the first program?"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
        "mock_reply": "{\"name\":\"Ada\"}"
    });
    let (status, _, resp) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        resp["choices"][0]["message"]["content"],
        "{\"name\":\"Ada\"}"
    );
    assert_eq!(resp["choices"][0]["finish_reason"], "stop");
    assert!(resp["choices"][0]["message"].get("tool_calls").is_none());
    let sent = mock.last_request().await["body"].clone();
    assert_eq!(sent["tools"][0]["name"], "json_tool_call");
    assert_eq!(sent["tools"][0]["input_schema"], schema);
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "tool", "name": "json_tool_call"})
    );

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (_, _, text) = stream_text(&url, Some(MASTER_KEY), &streamed).await;
    let content: String = sse_data(&text)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(content, "{\"name\":\"Ada\"}", "{text}");
    assert!(text.contains("\"finish_reason\":\"stop\""), "{text}");

    let vision = json!({"model": "claude", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in these images?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
    ]}]});
    let (status, _, resp) = post(&url, Some(MASTER_KEY), &vision).await;
    assert_eq!(status, 200, "{resp}");
    let sent = mock.last_request().await["body"].clone();
    assert_eq!(
        sent["messages"][0]["content"][1]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgoAAAANSUhEUg=="})
    );
    assert_eq!(
        sent["messages"][0]["content"][2]["source"],
        json!({"type": "url", "url": "https://example.com/cat.jpg"})
    );
}

#[actix_rt::test]
async fn errors_fallbacks_and_mid_stream_errors() {
    let (mock, gw) = start();
    let url = gw.url("/v1/chat/completions");
    let with = |mode: &str| {
        let mut b = chat("claude");
        b["mock_fail"] = json!(mode);
        b
    };

    let (status, _, body) = post(&url, Some(MASTER_KEY), &with("context_length")).await;
    assert_eq!(status, 400, "{body}");
    assert_envelope(&body);
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("AnthropicException - prompt is too long"));

    let (status, headers, body) = post(&url, Some(MASTER_KEY), &with("429")).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert!(headers.get("retry-after").is_some());

    let (status, _, body) = post(&url, Some(MASTER_KEY), &with("529")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["type"], "service_unavailable_error");
    assert!(!body.to_string().contains(UPSTREAM_KEY));

    let (status, _, body) = post(&url, Some(MASTER_KEY), &with("content_policy")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "content_filter");

    // Overloaded (529) falls back like a 503; a context error uses the context-window fallback.
    let (status, headers, body) = post(&url, Some(MASTER_KEY), &chat("claude-overloaded")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        headers
            .get("x-litellm-model-group")
            .and_then(|v| v.to_str().ok()),
        Some("claude")
    );
    let (status, headers, body) = post(&url, Some(MASTER_KEY), &chat("claude-small")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        headers
            .get("x-litellm-model-group")
            .and_then(|v| v.to_str().ok()),
        Some("claude")
    );

    // An `error` event after the stream started becomes an error event, never a silent stop.
    let mut body = with("stream_error");
    body["stream"] = json!(true);
    let (status, _, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200);
    let data = sse_data(&text);
    let error = data
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|v| v.get("error").is_some())
        .unwrap_or_else(|| panic!("an error event: {text}"));
    assert!(error["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("Overloaded"));
    assert!(!text.contains("\"finish_reason\":\"stop\""), "{text}");

    // A stream cut before message_stop is reported as broken too.
    let mut body = with("cut");
    body["stream"] = json!(true);
    let (_, _, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
    assert!(text.contains("\"error\""), "{text}");
    assert!(!text.contains("\"finish_reason\":\"stop\""), "{text}");

    // Parameters Anthropic does not take: a clear 400, or dropped on request.
    let mut body = chat("claude");
    body["seed"] = json!(3);
    let (status, _, resp) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 400, "{resp}");
    assert!(resp["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("UnsupportedParamsError"));
    body["drop_params"] = json!(true);
    let (status, _, resp) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{resp}");
    assert!(mock.last_request().await["body"].get("seed").is_none());
}

#[actix_rt::test]
async fn embeddings_are_refused_clearly() {
    let (mock, gw) = start();
    let before = mock.stats().await["total"].as_u64().unwrap_or(0);
    let (status, _, body) = post(
        &gw.url("/v1/embeddings"),
        Some(MASTER_KEY),
        &json!({"model": "claude-embed", "input": "hello"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_envelope(&body);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("Anthropic has no embeddings API"));
    assert_eq!(mock.stats().await["total"].as_u64().unwrap_or(0), before);
}
