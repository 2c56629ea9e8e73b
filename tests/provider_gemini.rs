//! The Gemini API (`gemini/`) and Vertex AI (`vertex_ai/`) adapters through the real gateway,
//! against the mock provider speaking Google's wire formats (paths, `x-goog-api-key`, OAuth
//! bearer tokens from a service-account JWT exchange, SSE streams, `google.rpc.Status` errors).

mod common;

use common::*;
use serde_json::{json, Value};

const GEMINI_KEY: &str = "AIza-mock-gemini-key-0123456789";
const REPLY: &str = "Hello from the Tollgate mock provider. This is a deterministic reply.";
/// A throwaway RSA key made for the test suite (see the file's first lines).
const TEST_KEY: &str = include_str!("fixtures/vertex-test-key.pem");

fn gemini_config(mock: &Mock) -> String {
    let base = &mock.proc.url;
    let entry = |name: &str, model: &str| {
        format!(
            "  - model_name: {name}\n    litellm_params:\n      model: gemini/{model}\n      api_base: {base}\n      api_key: {GEMINI_KEY}\n"
        )
    };
    format!(
        "model_list:\n{}{}{}{}{}{}{}  - model_name: gem-embed\n    litellm_params:\n      model: gemini/gemini-embedding-001\n      api_base: {base}\n      api_key: {GEMINI_KEY}\n    model_info:\n      mode: embedding\n  - model_name: gem-badkey\n    litellm_params:\n      model: gemini/gemini-2.0-flash\n      api_base: {base}\n      api_key: AIza-wrong-key-999999999\nrouter_settings:\n  num_retries: 0\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
        entry("gem", "gemini-2.0-flash"),
        entry("gem-ctx", "mock-fail-context_length"),
        entry("gem-429", "mock-fail-429"),
        entry("gem-blocked", "mock-fail-content_policy"),
        entry("gem-500", "mock-fail-500"),
        entry("gem3", "gemini-3-pro-preview"),
        entry("gem-cut", "mock-fail-cut"),
    )
}

fn chunks(text: &str) -> Vec<Value> {
    let data = sse_data(text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
    data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("json chunk"))
        .collect()
}

#[actix_rt::test]
async fn gemini_chat_stream_tools_vision_and_json_mode() {
    let mock = Mock::start(&["--api-key", GEMINI_KEY, "--stream-chunks", "4"]);
    let gw = Gateway::start(&gemini_config(&mock), &[], &[]);
    let url = gw.url("/v1/chat/completions");

    // Chat, with a system prompt and sampling parameters.
    let body = json!({"model": "gem", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello"}],
        "temperature": 0.2, "max_tokens": 100, "stop": ["\n\n"], "seed": 3});
    let (status, _, resp) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["object"], "chat.completion");
    assert_eq!(resp["model"], "gemini-2.0-flash");
    assert_eq!(resp["choices"][0]["message"]["content"], REPLY);
    assert_eq!(resp["choices"][0]["finish_reason"], "stop");
    let usage = &resp["usage"];
    assert_eq!(usage["completion_tokens"], 11);
    assert!(usage["prompt_tokens"].as_u64().unwrap_or(0) > 0);
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(usage["prompt_tokens"].as_u64().unwrap_or(0) + 11)
    );
    let last = mock.last_request().await;
    assert_eq!(
        last["path"],
        "/v1beta/models/gemini-2.0-flash:generateContent"
    );
    assert_eq!(last["headers"]["x-goog-api-key"], GEMINI_KEY);
    assert!(last["headers"].get("authorization").is_none());
    assert_eq!(
        last["body"]["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}]})
    );
    assert_eq!(last["body"]["generationConfig"]["maxOutputTokens"], 100);
    assert_eq!(
        last["body"]["generationConfig"]["stopSequences"],
        json!(["\n\n"])
    );

    // max_tokens reached → length.
    let (_, _, resp) = post(
        &url,
        Some(MASTER_KEY),
        &json!({"model": "gem", "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 3}),
    )
    .await;
    assert_eq!(resp["choices"][0]["finish_reason"], "length");
    assert_eq!(resp["choices"][0]["message"]["content"], "Hello from the");

    // Stream with usage.
    let body = json!({"model": "gem", "messages": [{"role": "user", "content": "Say hello"}],
        "stream": true, "stream_options": {"include_usage": true}});
    let (status, _, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{text}");
    let cs = chunks(&text);
    assert!(cs.iter().all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(cs[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = cs
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, REPLY);
    assert!(cs.len() >= 4, "several content chunks: {text}");
    let finish: Vec<&Value> = cs
        .iter()
        .filter(|c| {
            !c["choices"][0]["finish_reason"].is_null()
                && c["choices"].as_array().is_some_and(|a| !a.is_empty())
        })
        .map(|c| &c["choices"][0]["finish_reason"])
        .collect();
    assert_eq!(finish, vec![&json!("stop")]);
    let usage = cs.last().expect("usage chunk");
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 11);
    let last = mock.last_request().await;
    assert_eq!(
        last["path"],
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    );
    assert_eq!(last["query"], "alt=sse");

    // Without include_usage the usage chunk is hidden.
    let body = json!({"model": "gem", "messages": [{"role": "user", "content": "Say hello"}], "stream": true});
    let (_, _, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
    assert!(chunks(&text)
        .iter()
        .all(|c| c["choices"].as_array().is_some_and(|a| !a.is_empty())));

    // Tools: a forced call; the schema extras Gemini rejects are stripped (the mock refuses them).
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
        "strict": true,
        "parameters": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "additionalProperties": false,
            "properties": {"city": {"type": "string"}, "days": {"type": ["integer", "null"]}}, "required": ["city"]}}}]);
    let body = json!({"model": "gem", "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": tools, "tool_choice": "required"});
    let (status, _, resp) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{resp}");
    let choice = &resp["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().expect("string"))
        .expect("arguments are a JSON string");
    assert_eq!(args, json!({"city": "mock", "days": 1}));
    let call_id = call["id"].as_str().expect("id").to_string();
    assert!(call_id.starts_with("call_"));
    let last = mock.last_request().await;
    assert_eq!(
        last["body"]["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY"}})
    );

    // The tool result goes back as a functionResponse named after the call.
    let body = json!({"model": "gem", "tools": tools, "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        choice["message"].clone(),
        {"role": "tool", "tool_call_id": call_id, "content": "{\"temp\": 18}"}]});
    let (status, _, resp) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["choices"][0]["message"]["content"], REPLY);
    let contents = &mock.last_request().await["body"]["contents"];
    assert_eq!(contents[1]["role"], "model");
    assert_eq!(
        contents[1]["parts"][0]["functionCall"],
        json!({"name": "get_weather", "args": {"city": "mock", "days": 1}})
    );
    assert_eq!(
        contents[2],
        json!({"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"content": "{\"temp\": 18}"}}}]})
    );

    // Gemini 3 signs its function calls and wants the signature back: it rides in the call id.
    let body = json!({"model": "gem3", "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": tools, "tool_choice": "required"});
    let (status, _, resp) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{resp}");
    let message = resp["choices"][0]["message"].clone();
    let id = message["tool_calls"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let body = json!({"model": "gem3", "tools": tools, "messages": [
        {"role": "user", "content": "Weather in Paris?"}, message,
        {"role": "tool", "tool_call_id": id, "content": "18C"}]});
    let (status, _, resp) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "the signature went back: {resp}");
    assert!(
        mock.last_request().await["body"]["contents"][1]["parts"][0]["thoughtSignature"]
            .is_string()
    );
    let mut unsigned = body.clone();
    unsigned["messages"][1]["tool_calls"][0]["id"] = json!("call_plain");
    unsigned["messages"][2]["tool_call_id"] = json!("call_plain");
    let (status, _, resp) = post(&url, Some(MASTER_KEY), &unsigned).await;
    assert_eq!(status, 400, "{resp}");
    assert!(resp["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("thought_signature"));

    // A streamed tool call.
    let body = json!({"model": "gem", "messages": [{"role": "user", "content": "Weather?"}],
        "tools": tools, "tool_choice": {"type": "function", "function": {"name": "get_weather"}}, "stream": true});
    let (_, _, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
    let cs = chunks(&text);
    let delta = &cs[0]["choices"][0]["delta"];
    assert_eq!(delta["role"], "assistant");
    assert_eq!(delta["tool_calls"][0]["index"], 0);
    assert_eq!(delta["tool_calls"][0]["function"]["name"], "get_weather");
    assert!(delta["tool_calls"][0]["id"]
        .as_str()
        .is_some_and(|s| s.starts_with("call_")));
    assert!(text.contains("\"finish_reason\":\"tool_calls\""), "{text}");

    // Vision: a data URL is inlined, an https URL is passed as fileData.
    let body = json!({"model": "gem", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}]});
    let (status, _, resp) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{resp}");
    let parts = &mock.last_request().await["body"]["contents"][0]["parts"];
    assert_eq!(
        parts[1],
        json!({"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}})
    );
    assert_eq!(
        parts[2],
        json!({"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}})
    );

    // JSON mode with a schema.
    let body = json!({"model": "gem", "messages": [{"role": "user", "content": "A person"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "person", "strict": true, "schema":
            {"type": "object", "additionalProperties": false, "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
             "required": ["name", "age"]}}}});
    let (status, _, resp) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{resp}");
    let content: Value = serde_json::from_str(
        resp["choices"][0]["message"]["content"]
            .as_str()
            .expect("text"),
    )
    .expect("JSON content");
    assert_eq!(content, json!({"name": "mock", "age": 1}));
    let config = &mock.last_request().await["body"]["generationConfig"];
    assert_eq!(config["responseMimeType"], "application/json");
    assert!(config["responseSchema"]
        .get("additionalProperties")
        .is_none());

    // logit_bias has no Gemini equivalent: 400 unless dropped.
    let body = json!({"model": "gem", "messages": [{"role": "user", "content": "x"}], "logit_bias": {"1": 1}});
    let (status, _, resp) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 400, "{resp}");
    assert_envelope(&resp);
}

#[actix_rt::test]
async fn gemini_errors_and_embeddings() {
    // Paced chunks, so a cut stream has started before the provider drops it.
    let mock = Mock::start(&["--api-key", GEMINI_KEY, "--chunk-delay-ms", "20"]);
    let gw = Gateway::start(&gemini_config(&mock), &[], &[]);
    let url = gw.url("/v1/chat/completions");

    let (status, _, body) = post(&url, Some(MASTER_KEY), &chat("gem-ctx")).await;
    assert_eq!(status, 400, "{body}");
    assert_envelope(&body);
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("exceeds the maximum number of tokens allowed"),
        "{message}"
    );

    let (status, headers, body) = post(&url, Some(MASTER_KEY), &chat("gem-429")).await;
    assert_eq!(status, 429, "{body}");
    assert_envelope(&body);
    assert!(headers.get("retry-after").is_some());

    let (status, _, body) = post(&url, Some(MASTER_KEY), &chat("gem-500")).await;
    assert_eq!(status, 500, "{body}");
    assert_envelope(&body);

    // Errors of streamed requests arrive before the stream: a plain error response.
    let mut streamed = chat("gem-ctx");
    streamed["stream"] = json!(true);
    let (status, _, text) = stream_text(&url, Some(MASTER_KEY), &streamed).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("context_length_exceeded"), "{text}");

    // A stream Google cuts before its finishReason ends with an error event, never a silent stop.
    let mut cut = chat("gem-cut");
    cut["stream"] = json!(true);
    let (status, _, text) = stream_text(&url, Some(MASTER_KEY), &cut).await;
    assert_eq!(status, 200, "{text}");
    let data = sse_data(&text);
    assert!(data.iter().any(|d| d.contains("\"content\"")), "{text}");
    let error: Value = serde_json::from_str(&data[data.len() - 2]).expect("error event");
    assert!(error["error"]["message"].is_string(), "{text}");
    assert!(!text.contains("\"finish_reason\":\"stop\""), "{text}");

    // A blocked prompt is a 200 with finish_reason content_filter, as Gemini answers it.
    let (status, _, body) = post(&url, Some(MASTER_KEY), &chat("gem-blocked")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "content_filter");

    // A wrong key: Gemini's 400 API_KEY_INVALID becomes an authentication error, key not echoed.
    let (status, _, body) = post(&url, Some(MASTER_KEY), &chat("gem-badkey")).await;
    assert_eq!(status, 401, "{body}");
    assert_envelope(&body);
    assert!(!body.to_string().contains("AIza-wrong-key"));

    let (status, _, body) = post(
        &gw.url("/v1/embeddings"),
        Some(MASTER_KEY),
        &json!({"model": "gem-embed", "input": ["hello", "world"], "dimensions": 4}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "list");
    let data = body["data"].as_array().expect("data");
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    assert_eq!(data[0]["embedding"].as_array().map(Vec::len), Some(4));
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap_or(0) > 0);
    let last = mock.last_request().await;
    assert_eq!(
        last["path"],
        "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    assert_eq!(
        last["body"]["requests"][0]["model"],
        "models/gemini-embedding-001"
    );
}

fn service_account(mock: &Mock, token_path: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "key-project",
        "private_key_id": "test-key-1",
        "private_key": TEST_KEY,
        "client_email": "tollgate-test@key-project.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": format!("{}{token_path}", mock.proc.url),
    })
    .to_string()
}

#[actix_rt::test]
async fn vertex_service_account_token_is_fetched_once_and_shared() {
    let mock = Mock::start(&["--stream-chunks", "3"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("sa.json");
    std::fs::write(&creds, service_account(&mock, "/token")).expect("write");
    let bad_creds = dir.path().join("bad.json");
    std::fs::write(
        &bad_creds,
        service_account(&mock, "/no-such-token-endpoint"),
    )
    .expect("write");
    let base = &mock.proc.url;
    let config = format!(
        r#"
model_list:
  - model_name: vtx
    litellm_params:
      model: vertex_ai/gemini-2.5-flash
      api_base: {base}
      vertex_project: test-proj
      vertex_location: europe-west4
      vertex_credentials: {creds}
  - model_name: vtx-embed
    litellm_params:
      model: vertex_ai/text-embedding-005
      api_base: {base}
      vertex_project: test-proj
      vertex_location: europe-west4
      vertex_credentials: {creds}
    model_info:
      mode: embedding
  - model_name: vtx-badauth
    litellm_params:
      model: vertex_ai/gemini-2.5-flash
      api_base: {base}
      vertex_credentials: {bad}
router_settings:
  num_retries: 0
general_settings:
  master_key: {MASTER_KEY}
"#,
        creds = creds.display(),
        bad = bad_creds.display(),
    );
    let gw = Gateway::start(&config, &[], &[]);
    let url = gw.url("/v1/chat/completions");

    // Many concurrent requests on both gateway workers: one token request in all.
    let request = chat("vtx");
    let calls = (0..16).map(|_| post(&url, Some(MASTER_KEY), &request));
    for (status, _, body) in futures_util::future::join_all(calls).await {
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["choices"][0]["message"]["content"], REPLY);
        assert_eq!(body["model"], "gemini-2.5-flash");
    }
    let last = mock.last_request().await;
    assert_eq!(
        last["path"],
        "/v1/projects/test-proj/locations/europe-west4/publishers/google/models/gemini-2.5-flash:generateContent"
    );
    let auth = last["headers"]["authorization"].as_str().unwrap_or("");
    assert!(auth.starts_with("Bearer ya29.mock-"), "{auth}");

    let body = json!({"model": "vtx", "messages": [{"role": "user", "content": "Say hello"}],
        "stream": true, "stream_options": {"include_usage": true}});
    let (status, _, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{text}");
    let cs = chunks(&text);
    let content: String = cs
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, REPLY);
    assert_eq!(cs.last().expect("usage")["usage"]["completion_tokens"], 11);

    let (status, _, body) = post(
        &gw.url("/v1/embeddings"),
        Some(MASTER_KEY),
        &json!({"model": "vtx-embed", "input": "hello world", "dimensions": 6}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"][0]["embedding"].as_array().map(Vec::len),
        Some(6)
    );
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap_or(0) > 0);
    assert_eq!(
        mock.last_request().await["path"],
        "/v1/projects/test-proj/locations/europe-west4/publishers/google/models/text-embedding-005:predict"
    );

    let google_stats = get(&format!("{}/mock/google/stats", mock.proc.url), None)
        .await
        .2;
    assert_eq!(
        google_stats["token_requests"], 1,
        "one token for every request of the account"
    );

    // A token endpoint that refuses: an authentication error, nothing sent to the model, the
    // project taken from the key file.
    let before = mock.stats().await["total"].as_u64().unwrap_or(0);
    let (status, _, body) = post(&url, Some(MASTER_KEY), &chat("vtx-badauth")).await;
    assert_eq!(status, 401, "{body}");
    assert_envelope(&body);
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("access token"), "{message}");
    assert!(!message.contains("PRIVATE KEY"), "{message}");
    assert_eq!(mock.stats().await["total"].as_u64(), Some(before));
}

#[actix_rt::test]
async fn vertex_rejects_requests_without_a_valid_token() {
    // The mock's Vertex routes require a token it issued: a made-up bearer is refused with
    // Google's 401, which the gateway reports as an authentication error.
    let mock = Mock::start(&[]);
    let (status, _, body) = post_raw(
        &format!(
            "{}/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent",
            mock.proc.url
        ),
        Some("ya29.not-issued"),
        json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).to_string(),
        &[],
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
}

#[actix_rt::test]
async fn vertex_imagen_generates_images_priced_per_image() {
    let mock = Mock::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("sa.json");
    std::fs::write(&creds, service_account(&mock, "/token")).expect("write");
    let config = format!(
        r#"
model_list:
  - model_name: imagen
    litellm_params:
      model: vertex_ai/imagen-3.0-generate-002
      api_base: {base}
      vertex_project: test-proj
      vertex_location: us-central1
      vertex_credentials: {creds}
      output_cost_per_image: 0.04
general_settings:
  master_key: {MASTER_KEY}
  proxy_batch_write_at: 0.2
"#,
        base = mock.proc.url,
        creds = creds.display(),
    );
    let gw = Gateway::start(&config, &[], &[]);
    let (status, headers, body) = post(
        &gw.url("/v1/images/generations"),
        Some(MASTER_KEY),
        &json!({"model": "imagen", "prompt": "a lighthouse at dusk", "n": 2, "size": "1792x1024", "seed": 3}),
    )
    .await;
    // 1792x1024 is 7:4, which Imagen does not take: its 400 comes back as the client's error.
    assert_eq!(status, 400, "{body}");
    assert_envelope(&body);
    assert!(headers.get("x-litellm-call-id").is_some());
    let (status, headers, body) = post(
        &gw.url("/v1/images/generations"),
        Some(MASTER_KEY),
        &json!({"model": "imagen", "prompt": "a lighthouse at dusk", "n": 2, "size": "1024x1024", "seed": 3}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let data = body["data"].as_array().expect("data");
    assert_eq!(data.len(), 2, "{body}");
    assert!(data
        .iter()
        .all(|d| d["b64_json"].as_str().is_some_and(|b| !b.is_empty())));
    let last = mock.last_request().await;
    assert_eq!(
        last["path"],
        "/v1/projects/test-proj/locations/us-central1/publishers/google/models/imagen-3.0-generate-002:predict"
    );
    assert_eq!(
        last["body"],
        json!({"instances": [{"prompt": "a lighthouse at dusk"}], "parameters": {"sampleCount": 2, "aspectRatio": "1:1", "seed": 3}})
    );
    assert!(last["headers"]["authorization"]
        .as_str()
        .is_some_and(|a| a.starts_with("Bearer ya29.mock-")));
    let call_id = headers
        .get("x-litellm-call-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let row = spend_logs_when(&gw, &format!("request_id={call_id}"), 1)
        .await
        .remove(0);
    assert_eq!(row["call_type"], "aimage_generation", "{row}");
    assert!(
        (row["spend"].as_f64().unwrap() - 0.08).abs() < 1e-9,
        "{row}"
    );
}

#[actix_rt::test]
async fn vertex_rerank_uses_the_ranking_api_with_the_service_accounts_token() {
    let mock = Mock::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("sa.json");
    std::fs::write(&creds, service_account(&mock, "/token")).expect("write");
    let config = format!(
        r#"
model_list:
  - model_name: ranker
    litellm_params:
      model: vertex_ai/semantic-ranker-512@latest
      api_base: {base}
      vertex_project: test-proj
      vertex_credentials: {creds}
      input_cost_per_query: 0.001
    model_info:
      mode: rerank
general_settings:
  master_key: {MASTER_KEY}
  proxy_batch_write_at: 0.2
"#,
        base = mock.proc.url,
        creds = creds.display(),
    );
    let gw = Gateway::start(&config, &[], &[]);
    let (status, headers, body) = post(
        &gw.url("/v1/rerank"),
        Some(MASTER_KEY),
        &json!({"model": "ranker", "query": "red fox", "documents": ["a blue whale", "the red fox", "a fox"],
                "top_n": 2, "return_documents": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 2, "{body}");
    assert_eq!(results[0]["index"], 1, "{body}");
    assert_eq!(results[0]["document"]["text"], "the red fox", "{body}");
    assert_eq!(results[1]["index"], 2, "{body}");
    assert!(results[0]["relevance_score"].as_f64() > results[1]["relevance_score"].as_f64());
    let last = mock.last_request().await;
    assert_eq!(
        last["path"],
        "/v1/projects/test-proj/locations/global/rankingConfigs/default_ranking_config:rank"
    );
    assert_eq!(last["body"]["model"], "semantic-ranker-512@latest");
    assert_eq!(last["body"]["topN"], 2);
    assert_eq!(
        last["body"]["records"][2],
        json!({"id": "2", "content": "a fox"})
    );
    assert!(last["headers"]["authorization"]
        .as_str()
        .is_some_and(|a| a.starts_with("Bearer ya29.mock-")));
    let call_id = headers
        .get("x-litellm-call-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let row = spend_logs_when(&gw, &format!("request_id={call_id}"), 1)
        .await
        .remove(0);
    assert_eq!(row["call_type"], "arerank", "{row}");
    assert!(
        (row["spend"].as_f64().unwrap() - 0.001).abs() < 1e-12,
        "{row}"
    );
}
