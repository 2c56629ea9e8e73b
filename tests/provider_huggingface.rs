//! Hugging Face through the gateway: a TGI-style endpoint (OpenAI-compatible chat, which the mock
//! serves on `/v1/chat/completions`) and a Text Embeddings Inference endpoint (`/embed`).

mod common;

use common::*;
use serde_json::{json, Value};

const HF_KEY: &str = "hf_mockUpstreamToken42";

fn config(mock: &Mock) -> String {
    format!(
        r#"
model_list:
  - model_name: hf
    litellm_params:
      model: huggingface/tgi
      api_base: {url}
      api_key: {HF_KEY}
  - model_name: hf-v1
    litellm_params:
      model: huggingface/meta-llama/Llama-3.1-8B-Instruct
      api_base: {url}/v1
      api_key: {HF_KEY}
  - model_name: hf-embed
    litellm_params:
      model: huggingface/BAAI/bge-small-en-v1.5
      api_base: {url}/embed
      api_key: {HF_KEY}
    model_info:
      mode: embedding
general_settings:
  master_key: {MASTER_KEY}
"#,
        url = mock.proc.url
    )
}

#[actix_rt::test]
async fn huggingface_chat_stream_tools_errors_and_embeddings() {
    let mock = Mock::start(&["--api-key", HF_KEY]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let url = gw.url("/v1/chat/completions");

    // Chat: /v1/chat/completions appended to the endpoint, bearer token, model as configured.
    let (status, _, v) = post(&url, Some(MASTER_KEY), &chat("hf")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert!(v["choices"][0]["message"]["content"].is_string());
    assert!(v["usage"]["total_tokens"].as_u64().unwrap_or(0) > 0);
    let last = mock.last_request().await;
    assert_eq!(last["path"], "/v1/chat/completions");
    assert_eq!(last["headers"]["authorization"], format!("Bearer {HF_KEY}"));
    assert_eq!(last["body"]["model"], "tgi");

    let (status, _, v) = post(&url, Some(MASTER_KEY), &chat("hf-v1")).await;
    assert_eq!(status, 200, "{v}");
    let last = mock.last_request().await;
    assert_eq!(last["path"], "/v1/chat/completions");
    assert_eq!(last["body"]["model"], "meta-llama/Llama-3.1-8B-Instruct");

    // Stream with usage.
    let mut body = chat("hf");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, _, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{text}");
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).expect("usage chunk");
    assert!(
        usage["usage"]["total_tokens"].as_u64().unwrap_or(0) > 0,
        "{text}"
    );

    // Tools and JSON mode pass as OpenAI's.
    let mut body = chat("hf");
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    body["tool_choice"] = json!("required");
    body["response_format"] = json!({"type": "json_object"});
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    assert_eq!(
        mock.last_request().await["body"]["response_format"]["type"],
        "json_object"
    );

    // Context window.
    let mut body = chat("hf");
    body["mock_fail"] = json!("context_length");
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 400, "{v}");
    assert_envelope(&v);
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("HuggingfaceException")));

    // Embeddings through feature extraction, posted to the endpoint as configured.
    let emb = gw.url("/v1/embeddings");
    let (status, _, v) = post(
        &emb,
        Some(MASTER_KEY),
        &json!({"model": "hf-embed", "input": ["hello", "world"]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"].as_array().map(Vec::len), Some(2));
    assert!(v["data"][1]["embedding"]
        .as_array()
        .is_some_and(|e| !e.is_empty()));
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap_or(0) > 0);
    let last = mock.last_request().await;
    assert_eq!(last["path"], "/embed");
    assert_eq!(last["body"], json!({"inputs": ["hello", "world"]}));
    assert_eq!(last["headers"]["authorization"], format!("Bearer {HF_KEY}"));

    // TEI's input-too-long validation error is a context window error.
    let (status, _, v) = post(
        &emb,
        Some(MASTER_KEY),
        &json!({"model": "hf-embed", "input": "long", "mock_fail": "context_length"}),
    )
    .await;
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["error"]["code"], "context_length_exceeded", "{v}");
}

/// The seeds' Mistral block: a TGI endpoint with a custom prompt template.
#[actix_rt::test]
async fn a_prompt_template_sends_chat_to_tgis_generate_api() {
    let mock = Mock::start(&[]);
    let config = format!(
        r#"
model_list:
  - model_name: mistral-7b
    litellm_params:
      model: "huggingface/mistralai/Mistral-7B-Instruct-v0.1"
      api_base: "{url}"
      api_key: {HF_KEY}
      initial_prompt_value: "\n"
      roles: {{"system":{{"pre_message":"<|im_start|>system\n", "post_message":"<|im_end|>"}}, "assistant":{{"pre_message":"<|im_start|>assistant\n","post_message":"<|im_end|>"}}, "user":{{"pre_message":"<|im_start|>user\n","post_message":"<|im_end|>"}}}}
      final_prompt_value: "\n"
      bos_token: "<s>"
      eos_token: "</s>"
      max_tokens: 4096
general_settings:
  master_key: {MASTER_KEY}
"#,
        url = mock.proc.url
    );
    let gw = Gateway::start(&config, &[], &[]);
    assert!(
        !gw.proc.logs().contains("prompt templates are not applied"),
        "{}",
        gw.proc.logs()
    );
    let messages = json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Bye"}
    ]);
    let url = gw.url("/v1/chat/completions");
    let (status, _, body) = post(
        &url,
        Some(MASTER_KEY),
        &json!({"model": "mistral-7b", "messages": messages}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the Tollgate mock provider. This is a deterministic reply."
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(
        body["usage"]["completion_tokens"].as_u64() > Some(0),
        "{body}"
    );
    let last = mock.last_request().await;
    assert_eq!(last["path"], "/generate");
    assert_eq!(last["headers"]["authorization"], format!("Bearer {HF_KEY}"));
    assert_eq!(
        last["body"]["inputs"],
        "<s>\n<|im_start|>system\nBe brief.<|im_end|><|im_start|>user\nHi<|im_end|><|im_start|>assistant\nHello.<|im_end|></s><s><|im_start|>user\nBye<|im_end|>\n"
    );
    assert_eq!(last["body"]["parameters"]["max_new_tokens"], 4096);

    // Streamed through /generate_stream, cut by max_tokens.
    let (status, _, text) = stream_text(
        &url,
        Some(MASTER_KEY),
        &json!({"model": "mistral-7b", "messages": messages, "stream": true, "max_tokens": 3,
                "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let chunks: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hello from the ");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "length"),
        "{text}"
    );
    assert_eq!(
        chunks.last().unwrap()["usage"]["completion_tokens"],
        3,
        "{text}"
    );
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert_eq!(mock.last_request().await["path"], "/generate_stream");
}
