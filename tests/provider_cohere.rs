//! Cohere v2 through the gateway: `cohere/` and `cohere_chat/` deployments pointed at the mock
//! provider, which speaks Cohere's wire format on `/v2/chat` and `/v2/embed`.

mod common;

use common::*;
use serde_json::{json, Value};

const UPSTREAM_KEY: &str = "co-upstream-secret-7";

fn config(mock: &Mock) -> String {
    format!(
        r#"
model_list:
  - model_name: co
    litellm_params:
      model: cohere/command-r-plus
      api_base: {base}
      api_key: {UPSTREAM_KEY}
  - model_name: co-chat
    litellm_params:
      model: cohere_chat/command-a-03-2025
      api_base: {base}
      api_key: {UPSTREAM_KEY}
  - model_name: co-small
    litellm_params:
      model: cohere/mock-fail-context_length
      api_base: {base}
      api_key: {UPSTREAM_KEY}
  - model_name: co-big
    litellm_params:
      model: cohere/command-a-big
      api_base: {base}
      api_key: {UPSTREAM_KEY}
  - model_name: co-embed
    litellm_params:
      model: cohere/embed-english-v3.0
      api_base: {base}
      api_key: {UPSTREAM_KEY}
    model_info:
      mode: embedding
general_settings:
  master_key: {MASTER_KEY}
litellm_settings:
  context_window_fallbacks: [{{"co-small": ["co-big"]}}]
"#,
        base = mock.proc.url
    )
}

#[actix_rt::test]
async fn cohere_chat_tools_json_and_auth() {
    let mock = Mock::start(&["--api-key", UPSTREAM_KEY]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let url = gw.url("/v1/chat/completions");

    let mut body = chat("co");
    body["messages"] = json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello"}
    ]);
    body["top_p"] = json!(0.5);
    body["stop"] = json!(["END"]);
    body["response_format"] = json!({"type": "json_object"});
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert!(v["choices"][0]["message"]["content"]
        .as_str()
        .is_some_and(|c| c.contains("Tollgate mock")));
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let u = &v["usage"];
    assert!(u["prompt_tokens"].as_u64().unwrap_or(0) > 0, "{v}");
    assert_eq!(
        u["total_tokens"].as_u64(),
        Some(
            u["prompt_tokens"].as_u64().unwrap_or(0) + u["completion_tokens"].as_u64().unwrap_or(0)
        )
    );

    let last = mock.last_request().await;
    assert_eq!(last["path"], "/v2/chat");
    assert_eq!(
        last["headers"]["authorization"],
        format!("Bearer {UPSTREAM_KEY}")
    );
    let sent = &last["body"];
    assert_eq!(sent["model"], "command-r-plus");
    assert_eq!(sent["p"], 0.5);
    assert_eq!(sent["stop_sequences"], json!(["END"]));
    assert_eq!(sent["response_format"], json!({"type": "json_object"}));
    assert_eq!(sent["messages"][0]["role"], "system");
    assert!(sent.get("stream").is_none());

    // Tools: a required call comes back as an OpenAI tool call with string arguments.
    let mut body = chat("co-chat");
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}]);
    body["tool_choice"] = json!("required");
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{v}");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{}");
    assert!(call["id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(mock.last_request().await["body"]["tool_choice"], "REQUIRED");

    // A tool result turn goes back as Cohere's tool message.
    let mut body = chat("co");
    body["messages"] = json!([
        {"role": "user", "content": "Weather in Toronto?"},
        {"role": "assistant", "content": null, "tool_calls": [call.clone()]},
        {"role": "tool", "tool_call_id": call["id"], "content": "20C"}
    ]);
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{v}");
    let sent = mock.last_request().await["body"].clone();
    assert_eq!(sent["messages"][1]["tool_calls"][0]["id"], call["id"]);
    assert_eq!(sent["messages"][2]["role"], "tool");
    assert_eq!(sent["messages"][2]["content"], "20C");
}

#[actix_rt::test]
async fn cohere_stream_with_usage_and_tool_deltas() {
    let mock = Mock::start(&["--api-key", UPSTREAM_KEY, "--stream-chunks", "4"]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let url = gw.url("/v1/chat/completions");

    let mut body = chat("co");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, headers, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("json chunk"))
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(content.contains("Tollgate mock provider"), "{text}");
    assert!(
        chunks
            .iter()
            .filter(|c| c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|s| !s.is_empty()))
            .count()
            >= 2
    );
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "stop"));
    let usage = chunks.last().expect("usage chunk");
    assert_eq!(usage["choices"], json!([]));
    assert!(
        usage["usage"]["total_tokens"].as_u64().unwrap_or(0) > 0,
        "{text}"
    );
    let last = mock.last_request().await;
    assert_eq!(last["body"]["stream"], true);
    assert!(last["body"].get("stream_options").is_none());

    // Without include_usage the usage chunk is hidden.
    let mut body = chat("co");
    body["stream"] = json!(true);
    let (_, _, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
    assert!(!text.contains("\"usage\":{"), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"));

    // Tool call deltas.
    let mut body = chat("co");
    body["stream"] = json!(true);
    body["tools"] = json!([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]);
    body["tool_choice"] = json!("required");
    let (_, _, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
    let chunks: Vec<Value> = sse_data(&text)
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("json"))
        .collect();
    let first = chunks
        .iter()
        .find_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0).cloned())
        .expect("tool call delta");
    assert_eq!(first["index"], 0);
    assert_eq!(first["function"]["name"], "lookup");
    assert!(first["id"].is_string());
    assert!(text.contains("\"finish_reason\":\"tool_calls\""), "{text}");

    // A stream cut before message-end is reported as broken: an error event, no finish_reason.
    let mut body = chat("co");
    body["stream"] = json!(true);
    body["mock_fail"] = json!("cut");
    let (_, _, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
    let data = sse_data(&text);
    let error: Value = serde_json::from_str(&data[data.len() - 2]).expect("error event");
    assert!(error["error"]["message"].is_string(), "{text}");
    assert!(!text.contains("\"finish_reason\":\"stop\""), "{text}");
}

#[actix_rt::test]
async fn cohere_errors_fallback_and_embeddings() {
    let mock = Mock::start(&["--api-key", UPSTREAM_KEY]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let url = gw.url("/v1/chat/completions");

    // Context window: Cohere's "too many tokens" 400 is recognised.
    let mut body = chat("co");
    body["mock_fail"] = json!("context_length");
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 400, "{v}");
    assert_envelope(&v);
    assert_eq!(v["error"]["code"], "context_length_exceeded", "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("CohereException - too many tokens")));

    // …so context_window_fallbacks move the call to the bigger model group.
    let (status, _, v) = post(&url, Some(MASTER_KEY), &chat("co-small")).await;
    assert_eq!(status, 200, "{v}");
    let stats = mock.stats().await;
    assert_eq!(stats["by_model"]["mock-fail-context_length"], 1, "{stats}");
    assert_eq!(stats["by_model"]["command-a-big"], 1, "{stats}");

    // Rate limit.
    let mut body = chat("co");
    body["mock_fail"] = json!("429");
    body["num_retries"] = json!(0);
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 429, "{v}");
    assert_eq!(v["error"]["type"], "rate_limit_error");

    // Embeddings.
    let (status, _, v) = post(
        &gw.url("/v1/embeddings"),
        Some(MASTER_KEY),
        &json!({"model": "co-embed", "input": ["hello", "world"]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["data"][1]["index"], 1);
    assert!(v["data"][0]["embedding"]
        .as_array()
        .is_some_and(|e| !e.is_empty()));
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap_or(0) > 0);
    let last = mock.last_request().await;
    assert_eq!(last["path"], "/v2/embed");
    assert_eq!(last["body"]["texts"], json!(["hello", "world"]));
    assert_eq!(last["body"]["input_type"], "search_document");
    assert_eq!(last["body"]["embedding_types"], json!(["float"]));

    // A wrong upstream key is an authentication error, and never echoes the key.
    let bad = config(&mock).replace(UPSTREAM_KEY, "co-wrong-key-123");
    let gw2 = Gateway::start(&bad, &[], &[]);
    let (status, _, v) = post(
        &gw2.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat("co"),
    )
    .await;
    assert_eq!(status, 401, "{v}");
    assert!(!v.to_string().contains("co-wrong-key-123"));
}
