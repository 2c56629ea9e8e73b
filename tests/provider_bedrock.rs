//! AWS Bedrock (Converse / ConverseStream / InvokeModel embeddings) through the real gateway,
//! against the mock provider's Bedrock wire format. The mock recomputes every SigV4 signature with
//! the known secret, so a 200 here proves the signing (double-encoded model id included).

mod common;

use common::*;
use serde_json::json;

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn config(mock: &Mock) -> String {
    let url = &mock.proc.url;
    format!(
        r#"
model_list:
  - model_name: claude
    litellm_params:
      model: "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0"
      api_base: "{url}"
      aws_region_name: eu-west-1
      aws_access_key_id: {AKID}
      aws_secret_access_key: "{SECRET}"
      aws_session_token: session-token-1
  - model_name: claude-env
    litellm_params:
      model: "bedrock/anthropic.claude-3-haiku-20240307-v1:0"
      aws_bedrock_runtime_endpoint: "{url}"
  - model_name: claude-wrong-secret
    litellm_params:
      model: "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0"
      api_base: "{url}"
      aws_access_key_id: {AKID}
      aws_secret_access_key: not-the-secret
  - model_name: nova-key
    litellm_params:
      model: "bedrock_converse/converse/arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-lite-v1:0"
      aws_bedrock_runtime_endpoint: "{url}"
      api_key: br-test-api-key
  - model_name: too-long
    litellm_params:
      model: bedrock/mock-fail-context_length
      api_base: "{url}"
      api_key: br-test-api-key
  - model_name: titan
    litellm_params:
      model: "bedrock/amazon.titan-embed-text-v2:0"
      api_base: "{url}"
      aws_access_key_id: {AKID}
      aws_secret_access_key: "{SECRET}"
    model_info:
      mode: embedding
  - model_name: cohere-embed
    litellm_params:
      model: "bedrock/cohere.embed-english-v3"
      api_base: "{url}"
      api_key: br-test-api-key
    model_info:
      mode: embedding
  - model_name: titan-image
    litellm_params:
      model: "bedrock/amazon.titan-image-generator-v2:0"
      api_base: "{url}"
      aws_access_key_id: {AKID}
      aws_secret_access_key: "{SECRET}"
  - model_name: sd3
    litellm_params:
      model: "bedrock/stability.sd3-5-large-v1:0"
      api_base: "{url}"
      api_key: br-test-api-key
  - model_name: sdxl
    litellm_params:
      model: "bedrock/stability.stable-diffusion-xl-v1"
      api_base: "{url}"
      api_key: br-test-api-key
general_settings:
  master_key: {MASTER_KEY}
  proxy_batch_write_at: 0.2
"#
    )
}

fn start() -> (Mock, Gateway) {
    let mock = Mock::start(&["--stream-chunks", "4"]);
    let gw = Gateway::start(
        &config(&mock),
        &[],
        &[
            ("AWS_ACCESS_KEY_ID", AKID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_REGION", "ap-south-1"),
        ],
    );
    (mock, gw)
}

const DEFAULT_REPLY: &str = "Hello from the Tollgate mock provider. This is a deterministic reply.";

#[actix_rt::test]
async fn chat_is_signed_with_sigv4_and_translated() {
    let (mock, gw) = start();
    let url = gw.url("/v1/chat/completions");
    let body = json!({"model": "claude", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello"}
    ], "max_tokens": 50, "temperature": 0.3, "stop": ["END"]});
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{v}\n{}", gw.proc.logs());
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], DEFAULT_REPLY);
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
    assert_eq!(
        last["path"],
        "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    );
    let auth = last["headers"]["authorization"].as_str().unwrap_or("");
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
            && auth.contains("/eu-west-1/bedrock/aws4_request, ")
            && auth.contains(
                "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="
            ),
        "{auth}"
    );
    assert_eq!(last["headers"]["x-amz-security-token"], "session-token-1");
    assert_eq!(last["body"]["system"], json!([{"text": "Be brief."}]));
    assert_eq!(
        last["body"]["messages"],
        json!([{"role": "user", "content": [{"text": "Say hello"}]}])
    );
    assert_eq!(
        last["body"]["inferenceConfig"],
        json!({"maxTokens": 50, "temperature": 0.3, "stopSequences": ["END"]})
    );

    // Credentials and region from the environment, endpoint from aws_bedrock_runtime_endpoint.
    let (status, _, v) = post(&url, Some(MASTER_KEY), &chat("claude-env")).await;
    assert_eq!(status, 200, "{v}");
    let auth = mock.last_request().await["headers"]["authorization"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(auth.contains("/ap-south-1/bedrock/aws4_request"), "{auth}");
    assert!(
        auth.contains("SignedHeaders=content-type;host;x-amz-date,"),
        "{auth}"
    );

    // The mock recomputes the signature: a wrong secret is refused as AWS refuses it.
    let (status, _, v) = post(&url, Some(MASTER_KEY), &chat("claude-wrong-secret")).await;
    assert_eq!(status, 401, "{v}");
    assert_envelope(&v);
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("BedrockException") && m.contains("signature")),
        "{v}"
    );
    assert!(!v.to_string().contains("not-the-secret"));
}

#[actix_rt::test]
async fn api_key_auth_and_arn_model_ids() {
    let (mock, gw) = start();
    let (status, _, v) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat("nova-key"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let last = mock.last_request().await;
    assert_eq!(
        last["path"],
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.amazon.nova-lite-v1%3A0/converse"
    );
    assert_eq!(last["headers"]["authorization"], "Bearer br-test-api-key");
    assert!(last["headers"].get("x-amz-date").is_none());
}

#[actix_rt::test]
async fn stream_decodes_event_stream_frames_with_usage() {
    let (mock, gw) = start();
    let url = gw.url("/v1/chat/completions");
    let mut body = chat("claude");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, headers, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let (chunks, done) = parse_chunks(&text);
    assert!(done, "{text}");
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, DEFAULT_REPLY);
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert!(
        usage["usage"]["completion_tokens"].as_u64().unwrap_or(0) > 0,
        "{text}"
    );
    let last = mock.last_request().await;
    assert_eq!(
        last["path"],
        "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
    );
    assert!(last["body"].get("stream").is_none());

    // Without include_usage the usage chunk is hidden.
    body.as_object_mut().map(|b| b.remove("stream_options"));
    let (_, _, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
    let (chunks, done) = parse_chunks(&text);
    assert!(done);
    assert!(chunks
        .iter()
        .all(|c| c["choices"].as_array().is_some_and(|a| !a.is_empty())));

    // A throttlingException frame mid-stream becomes an error event.
    body["mock_fail"] = json!("429");
    let (_, _, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
    assert!(text.contains("data: {\"error\":"), "{text}");
    assert!(text.contains("Too many requests"), "{text}");
    assert!(
        !parse_chunks(&text)
            .0
            .iter()
            .any(|c| c["choices"][0]["finish_reason"].is_string()),
        "{text}"
    );
}

#[actix_rt::test]
async fn tools_and_json_schema() {
    let (mock, gw) = start();
    let url = gw.url("/v1/chat/completions");
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    let body = json!({"model": "claude", "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": tools, "tool_choice": "required"});
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{}");
    let id = call["id"].as_str().expect("id").to_string();
    assert!(id.starts_with("tooluse_"));
    let sent = mock.last_request().await["body"].clone();
    assert_eq!(sent["toolConfig"]["toolChoice"], json!({"any": {}}));
    assert_eq!(
        sent["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["required"],
        json!(["city"])
    );

    // Streamed tool call.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (_, _, text) = stream_text(&url, Some(MASTER_KEY), &streamed).await;
    let (chunks, done) = parse_chunks(&text);
    assert!(done, "{text}");
    let first_call = chunks
        .iter()
        .find(|c| c["choices"][0]["delta"]["tool_calls"].is_array())
        .expect("tool call delta");
    let tc = &first_call["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(tc["index"], 0);
    assert_eq!(tc["function"]["name"], "get_weather");
    assert!(tc["id"].as_str().is_some_and(|i| i.starts_with("tooluse_")));
    assert_eq!(
        chunks.last().expect("finish")["choices"][0]["finish_reason"],
        "tool_calls"
    );

    // The tool result turn goes back as toolUse / toolResult blocks.
    let follow = json!({"model": "claude", "tools": tools, "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": id, "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": id, "content": "18C and sunny"}
    ]});
    let (status, _, v) = post(&url, Some(MASTER_KEY), &follow).await;
    assert_eq!(status, 200, "{v}");
    let sent = mock.last_request().await["body"].clone();
    assert_eq!(
        sent["messages"][1]["content"][0]["toolUse"]["input"],
        json!({"city": "Paris"})
    );
    assert_eq!(
        sent["messages"][2]["content"][0]["toolResult"],
        json!({"toolUseId": id, "content": [{"text": "18C and sunny"}]})
    );

    // response_format json_schema: a forced tool whose input is the content.
    let body = json!({"model": "claude", "messages": [{"role": "user", "content": "A person"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": {"type": "object"}}}});
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "{}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["choices"][0]["message"].get("tool_calls").is_none());
    assert_eq!(
        mock.last_request().await["body"]["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "person"}})
    );
}

#[actix_rt::test]
async fn images_and_errors() {
    let (mock, gw) = start();
    let url = gw.url("/v1/chat/completions");
    let body = json!({"model": "claude", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg=="}}
    ]}]});
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        mock.last_request().await["body"]["messages"][0]["content"][1],
        json!({"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQSkZJRg=="}}})
    );
    let body = json!({"model": "claude", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    ]}]});
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 400, "{v}");
    assert_envelope(&v);

    // ValidationException "Input is too long" → context window exceeded.
    let (status, _, v) = post(&url, Some(MASTER_KEY), &chat("too-long")).await;
    assert_eq!(status, 400, "{v}");
    assert_envelope(&v);
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("BedrockException - Input is too long")));

    // ThrottlingException → 429.
    let mut body = chat("nova-key");
    body["mock_fail"] = json!("429");
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 429, "{v}");
    assert_eq!(v["error"]["type"], "rate_limit_error");

    // A guardrail intervention is a 200 with stopReason guardrail_intervened.
    let mut body = chat("claude");
    body["mock_fail"] = json!("content_policy");
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");

    // Unsupported OpenAI params: 400 unless dropped.
    let mut body = chat("claude");
    body["seed"] = json!(3);
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 400, "{v}");
    body["drop_params"] = json!(true);
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{v}");
}

#[actix_rt::test]
async fn embeddings_titan_and_cohere() {
    let (mock, gw) = start();
    let url = gw.url("/v1/embeddings");
    let (status, _, v) = post(
        &url,
        Some(MASTER_KEY),
        &json!({"model": "titan", "input": "hello world", "dimensions": 16}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["object"], "embedding");
    assert_eq!(v["data"][0]["embedding"].as_array().map(Vec::len), Some(16));
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap_or(0) > 0);
    let last = mock.last_request().await;
    assert_eq!(last["path"], "/model/amazon.titan-embed-text-v2%3A0/invoke");
    assert_eq!(
        last["body"],
        json!({"inputText": "hello world", "dimensions": 16})
    );
    assert!(last["headers"]["authorization"]
        .as_str()
        .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 ")));

    let (status, _, v) = post(
        &url,
        Some(MASTER_KEY),
        &json!({"model": "cohere-embed", "input": ["a", "b", "c"]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["data"][2]["index"], 2);
    assert_eq!(
        mock.last_request().await["body"],
        json!({"texts": ["a", "b", "c"], "input_type": "search_document"})
    );
}

#[actix_rt::test]
async fn health_probes_are_signed_too() {
    let (_mock, gw) = start();
    let (status, _, body) = get(&gw.url("/health?model=claude"), Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["healthy_count"], 1, "{body}");
    assert_eq!(body["unhealthy_count"], 0, "{body}");
    // A wrong secret makes a signature the provider refuses.
    let (_, _, body) = get(
        &gw.url("/health?model=claude-wrong-secret"),
        Some(MASTER_KEY),
    )
    .await;
    assert_eq!(body["unhealthy_count"], 1, "{body}");
    assert!(!body.to_string().contains("not-the-secret"), "{body}");
}

#[actix_rt::test]
async fn image_generation_on_titan_and_stability_models() {
    let (mock, gw) = start();
    let url = gw.url("/v1/images/generations");
    // Titan: TEXT_IMAGE with the size and count, signed with SigV4; priced per image.
    let (status, headers, v) = post(
        &url,
        Some(MASTER_KEY),
        &json!({"model": "titan-image", "prompt": "a red kite", "n": 2, "size": "1024x1024", "quality": "hd"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let data = v["data"].as_array().expect("data");
    assert_eq!(data.len(), 2, "{v}");
    assert!(data.iter().all(|d| d["b64_json"].is_string()), "{v}");
    let last = mock.last_request().await;
    assert_eq!(
        last["path"],
        "/model/amazon.titan-image-generator-v2%3A0/invoke"
    );
    assert_eq!(
        last["body"],
        json!({"taskType": "TEXT_IMAGE", "textToImageParams": {"text": "a red kite"},
               "imageGenerationConfig": {"numberOfImages": 2, "width": 1024, "height": 1024, "quality": "premium"}})
    );
    assert!(last["headers"]["authorization"]
        .as_str()
        .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 ")));
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
        (row["spend"].as_f64().unwrap() - 0.016).abs() < 1e-9,
        "{row}"
    );

    // Stability's current models: one image per call, the size as an aspect ratio.
    let (status, _, v) = post(
        &url,
        Some(MASTER_KEY),
        &json!({"model": "sd3", "prompt": "a red kite", "size": "1024x1024"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        mock.last_request().await["body"],
        json!({"prompt": "a red kite", "mode": "text-to-image", "output_format": "png", "aspect_ratio": "1:1"})
    );
    let (status, _, v) = post(
        &url,
        Some(MASTER_KEY),
        &json!({"model": "sd3", "prompt": "x", "n": 2}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["param"], "n", "{v}");

    // Stable Diffusion XL: text_prompts and samples; artifacts back.
    let (status, _, v) = post(
        &url,
        Some(MASTER_KEY),
        &json!({"model": "sdxl", "prompt": "a red kite", "n": 3, "size": "512x512"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"].as_array().map(Vec::len), Some(3));
    assert_eq!(mock.last_request().await["body"]["samples"], 3);

    // A chat model is not an image model: a clear 400, nothing sent.
    let before = mock.stats().await["total"].clone();
    let (status, _, v) = post(
        &url,
        Some(MASTER_KEY),
        &json!({"model": "claude", "prompt": "x"}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(mock.stats().await["total"], before);
}
