//! Ollama's native API through the gateway: `ollama_chat/` and `ollama/` deployments pointed at
//! the mock provider, which speaks Ollama's `/api/chat` (JSON and NDJSON) and `/api/embed`.

mod common;

use common::*;
use serde_json::{json, Value};

fn config(mock: &Mock) -> String {
    format!(
        r#"
model_list:
  - model_name: llama
    litellm_params:
      model: ollama_chat/llama3.2
      api_base: {base}
  - model_name: llama-gen
    litellm_params:
      model: ollama/llama3.1
      api_base: {base}
      api_key: ol-proxy-key-5
  - model_name: llama-embed
    litellm_params:
      model: ollama/all-minilm
      api_base: {base}
    model_info:
      mode: embedding
general_settings:
  master_key: {MASTER_KEY}
"#,
        base = mock.proc.url
    )
}

#[actix_rt::test]
async fn ollama_chat_vision_tools_json_and_auth() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let url = gw.url("/v1/chat/completions");

    let mut body = chat("llama");
    body["messages"] = json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
        ]}
    ]);
    body["max_tokens"] = json!(3);
    body["temperature"] = json!(0.2);
    body["response_format"] = json!({"type": "json_object"});
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "llama3.2");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from the");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 3);
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap_or(0) > 0);

    let last = mock.last_request().await;
    assert_eq!(last["path"], "/api/chat");
    assert!(last["headers"].get("authorization").is_none(), "{last}");
    let sent = &last["body"];
    assert_eq!(sent["stream"], false);
    assert_eq!(sent["format"], "json");
    assert_eq!(sent["options"]["num_predict"], 3);
    assert_eq!(sent["options"]["temperature"], 0.2);
    assert_eq!(sent["messages"][1]["images"], json!(["iVBORw0KGgo="]));
    assert_eq!(sent["messages"][1]["content"], "What is in this picture?");

    // `ollama/` goes through /api/chat too, with the configured key as a bearer token.
    let (status, _, v) = post(&url, Some(MASTER_KEY), &chat("llama-gen")).await;
    assert_eq!(status, 200, "{v}");
    let last = mock.last_request().await;
    assert_eq!(last["path"], "/api/chat");
    assert_eq!(last["headers"]["authorization"], "Bearer ol-proxy-key-5");
    assert_eq!(last["body"]["model"], "llama3.1");

    // Tools: Ollama's object arguments come back as an OpenAI JSON string.
    let mut body = chat("llama");
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{v}");
    let call = v["choices"][0]["message"]["tool_calls"][0].clone();
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{}");
    assert!(call["id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");

    // The tool result turn: arguments back to an object, the result named by its function.
    body["messages"] = json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [call.clone()]},
        {"role": "tool", "tool_call_id": call["id"], "content": "22C"}
    ]);
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["choices"][0]["message"]["content"].is_string());
    let sent = mock.last_request().await["body"].clone();
    assert_eq!(
        sent["messages"][1]["tool_calls"][0]["function"]["arguments"],
        json!({})
    );
    assert_eq!(sent["messages"][2]["tool_name"], "get_weather");
}

#[actix_rt::test]
async fn ollama_ndjson_stream_with_usage() {
    let mock = Mock::start(&["--stream-chunks", "4"]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let url = gw.url("/v1/chat/completions");

    let mut body = chat("llama");
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
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        content,
        "Hello from the Tollgate mock provider. This is a deterministic reply."
    );
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "stop"));
    let usage = chunks.last().expect("usage");
    assert_eq!(usage["choices"], json!([]));
    assert!(
        usage["usage"]["completion_tokens"].as_u64().unwrap_or(0) > 0,
        "{text}"
    );
    assert_eq!(mock.last_request().await["body"]["stream"], true);

    // Tool calls in a stream.
    body["tools"] = json!([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]);
    let (_, _, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
    assert!(text.contains("\"name\":\"lookup\""), "{text}");
    assert!(text.contains("\"finish_reason\":\"tool_calls\""), "{text}");

    // Cut before the done line: an error event, never a silent stop.
    let mut body = chat("llama");
    body["stream"] = json!(true);
    body["mock_fail"] = json!("cut");
    let (_, _, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
    let data = sse_data(&text);
    let error: Value = serde_json::from_str(&data[data.len() - 2]).expect("error event");
    assert!(error["error"]["message"].is_string(), "{text}");
    assert!(!text.contains("\"finish_reason\":\"stop\""), "{text}");
}

#[actix_rt::test]
async fn ollama_errors_and_embeddings() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let url = gw.url("/v1/chat/completions");

    let mut body = chat("llama");
    body["mock_fail"] = json!("context_length");
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "context_length_exceeded");

    let (status, _, v) = post(
        &gw.url("/v1/embeddings"),
        Some(MASTER_KEY),
        &json!({"model": "llama-embed", "input": ["why is the sky blue?", "why is the grass green?"]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "all-minilm");
    assert_eq!(v["data"].as_array().map(Vec::len), Some(2));
    assert!(v["data"][0]["embedding"]
        .as_array()
        .is_some_and(|e| !e.is_empty()));
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap_or(0) > 0);
    let last = mock.last_request().await;
    assert_eq!(last["path"], "/api/embed");
    assert_eq!(
        last["body"],
        json!({"model": "all-minilm", "input": ["why is the sky blue?", "why is the grass green?"]})
    );

    // Last: a 404 puts the only deployment of the group in cooldown.
    let mut body = chat("llama");
    body["mock_fail"] = json!("404");
    body["num_retries"] = json!(0);
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 404, "{v}");
    assert_envelope(&v);
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("OllamaException - model 'llama3.2' not found")),
        "{v}"
    );
}

/// A prompt template on an Ollama deployment: the generate API with the rendered prompt, raw.
#[actix_rt::test]
async fn a_prompt_template_sends_chat_to_the_generate_api() {
    let mock = Mock::start(&["--stream-chunks", "3"]);
    let config = format!(
        r#"
model_list:
  - model_name: templated
    litellm_params:
      model: ollama/mistral
      api_base: {base}
      roles: {{"user": {{"pre_message": "[INST] ", "post_message": " [/INST]"}}}}
      bos_token: "<s>"
      eos_token: "</s>"
general_settings:
  master_key: {MASTER_KEY}
"#,
        base = mock.proc.url
    );
    let gw = Gateway::start(&config, &[], &[]);
    let url = gw.url("/v1/chat/completions");
    let messages = json!([
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Bye"}
    ]);
    let (status, _, body) = post(
        &url,
        Some(MASTER_KEY),
        &json!({"model": "templated", "messages": messages, "max_tokens": 50}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["choices"][0]["message"]["content"]
        .as_str()
        .is_some_and(|c| !c.is_empty()));
    assert!(body["usage"]["prompt_tokens"].as_u64() > Some(0), "{body}");
    let last = mock.last_request().await;
    assert_eq!(last["path"], "/api/generate");
    assert_eq!(last["body"]["raw"], true);
    assert_eq!(
        last["body"]["prompt"],
        "<s>[INST] Hi [/INST]Hello.</s><s>[INST] Bye [/INST]"
    );
    assert_eq!(last["body"]["options"]["num_predict"], 50);
    assert!(last["body"].get("messages").is_none());

    let (status, _, text) = stream_text(
        &url,
        Some(MASTER_KEY),
        &json!({"model": "templated", "messages": messages, "stream": true}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let content: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(
        content,
        "Hello from the Tollgate mock provider. This is a deterministic reply."
    );
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
}
