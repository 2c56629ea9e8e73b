use super::*;
use crate::providers::testing::{deployment, request};
use actix_web::ResponseError as _;

fn chat(body: Value) -> LlmRequest {
    request(CallKind::Chat, body)
}

const SONNET: &str = "{model: bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0, aws_region_name: eu-west-3, aws_access_key_id: AKIDEXAMPLE, aws_secret_access_key: wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY}";

fn prepared(params: &str, body: Value) -> (PreparedRequest, Value) {
    let d = deployment(params);
    let t = d.target_for("g").expect("target");
    let p = BEDROCK.prepare(&d, &t, &chat(body)).expect("prepared");
    let v = serde_json::from_slice(&p.body).expect("json");
    (p, v)
}

fn header<'a>(p: &'a PreparedRequest, name: &str) -> Option<&'a str> {
    p.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn url_is_regional_with_the_model_id_encoded() {
    let (p, _) = prepared(
        SONNET,
        json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(
        p.url,
        "https://bedrock-runtime.eu-west-3.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    );
    let (p, _) = prepared(
        "{model: bedrock_converse/converse/arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0, aws_bedrock_runtime_endpoint: 'http://127.0.0.1:9/', api_key: br-key}",
        json!({"model": "g", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(
        p.url,
        "http://127.0.0.1:9/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
    );
    assert_eq!(header(&p, "authorization"), Some("Bearer br-key"));
    assert_eq!(
        header(&p, "accept"),
        Some("application/vnd.amazon.eventstream")
    );
}

#[actix_web::test]
async fn sigv4_is_added_in_authorize_over_the_double_encoded_path() {
    let d = deployment(
        "{model: bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0, aws_region_name: us-west-2, aws_access_key_id: AKIDEXAMPLE, aws_secret_access_key: wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, aws_session_token: tok123}",
    );
    let t = d.target_for("g").expect("target");
    let p = BEDROCK
        .prepare(
            &d,
            &t,
            &chat(json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]})),
        )
        .expect("prepared");
    assert!(header(&p, "authorization").is_none());
    let p = BEDROCK.authorize(&d, &t, p).await.expect("signed");
    let auth = header(&p, "authorization").expect("authorization");
    let parsed = sigv4::parse_authorization(auth).expect("sigv4 header");
    assert_eq!(parsed.access_key_id, "AKIDEXAMPLE");
    assert_eq!(parsed.region, "us-west-2");
    assert_eq!(parsed.service, "bedrock");
    assert_eq!(
        parsed.signed_headers,
        vec!["content-type", "host", "x-amz-date", "x-amz-security-token"]
    );
    assert_eq!(
        header(&p, "host"),
        Some("bedrock-runtime.us-west-2.amazonaws.com")
    );
    assert_eq!(header(&p, "x-amz-security-token"), Some("tok123"));
    let date = header(&p, "x-amz-date").expect("date").to_string();
    assert_eq!(parsed.date, date[..8]);

    // Recompute independently over the double-encoded canonical URI.
    let headers: Vec<(String, String)> = [
        ("content-type", "application/json"),
        ("host", "bedrock-runtime.us-west-2.amazonaws.com"),
        ("x-amz-date", date.as_str()),
        ("x-amz-security-token", "tok123"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let (canonical, _) = sigv4::canonical_request(&sigv4::Request {
        method: "POST",
        path: "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
        query: "",
        headers: &headers,
        payload_hash: &sigv4::sha256_hex(&p.body),
    });
    assert!(canonical.contains("\n/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse\n"));
    let expected = sigv4::sign(
        &sigv4::Request {
            method: "POST",
            path: "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
            query: "",
            headers: &headers,
            payload_hash: &sigv4::sha256_hex(&p.body),
        },
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        &date,
        "us-west-2",
        "bedrock",
    );
    assert_eq!(parsed.signature, expected.signature);
    assert!(p
        .redacted_headers()
        .iter()
        .all(|(_, v)| !v.contains(&expected.signature)));
}

#[actix_web::test]
async fn missing_or_unsupported_credentials_are_clear_errors() {
    let d = deployment(
        "{model: bedrock/amazon.nova-pro-v1:0, aws_region_name: us-east-1, aws_profile_name: dev}",
    );
    let t = d.target_for("g").expect("target");
    let p = BEDROCK
        .prepare(
            &d,
            &t,
            &chat(json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]})),
        )
        .expect("prepared");
    let err = BEDROCK.authorize(&d, &t, p).await.err().expect("refused");
    assert!(err.to_string().contains("aws_profile_name"), "{err}");
}

#[test]
fn messages_system_images_tools_and_merging() {
    let png = "iVBORw0KGgo=";
    let (_, v) = prepared(
        SONNET,
        json!({
            "model": "g",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{png}")}}
                ]},
                {"role": "user", "content": "And the weather?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "tooluse_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "tooluse_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "tooluse_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "tooluse_2", "content": "25C"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "required",
            "max_tokens": 100, "temperature": 0.5, "top_p": 0.9, "stop": "END", "top_k": 40,
            "user": "u1"
        }),
    );
    assert_eq!(v["system"], json!([{"text": "Be brief."}]));
    let msgs = v["messages"].as_array().expect("messages");
    assert_eq!(msgs.len(), 3, "{v}");
    assert_eq!(msgs[0]["role"], "user");
    assert_eq!(
        msgs[0]["content"],
        json!([
            {"text": "What is this?"},
            {"image": {"format": "png", "source": {"bytes": png}}},
            {"text": "And the weather?"}
        ])
    );
    assert_eq!(
        msgs[1]["content"][1]["toolUse"],
        json!({"toolUseId": "tooluse_2", "name": "get_weather", "input": {"city": "Rome"}})
    );
    assert_eq!(msgs[2]["role"], "user");
    assert_eq!(
        msgs[2]["content"][0]["toolResult"],
        json!({"toolUseId": "tooluse_1", "content": [{"text": "18C"}]})
    );
    assert_eq!(msgs[2]["content"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        v["inferenceConfig"],
        json!({"maxTokens": 100, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]})
    );
    assert_eq!(
        v["toolConfig"]["tools"][0]["toolSpec"],
        json!({"name": "get_weather", "description": "Weather", "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}})
    );
    assert_eq!(v["toolConfig"]["toolChoice"], json!({"any": {}}));
    assert_eq!(v["additionalModelRequestFields"], json!({"top_k": 40}));
    assert!(v.get("user").is_none() && v.get("model").is_none() && v.get("stream").is_none());
}

#[test]
fn tool_choice_forms_dummy_tool_and_json_schema() {
    let base = json!({"model": "g", "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "f"}}]});
    let mut b = base.clone();
    b["tool_choice"] = json!({"type": "function", "function": {"name": "f"}});
    assert_eq!(
        prepared(SONNET, b).1["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "f"}})
    );
    let mut b = base.clone();
    b["tool_choice"] = json!("auto");
    let v = prepared(SONNET, b).1;
    assert_eq!(v["toolConfig"]["toolChoice"], json!({"auto": {}}));
    assert_eq!(
        v["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"],
        json!({"type": "object", "properties": {}})
    );
    let mut b = base.clone();
    b["tool_choice"] = json!("none");
    assert!(prepared(SONNET, b).1.get("toolConfig").is_none());

    // Tool blocks in the history without tools: LiteLLM's dummy tool.
    let v = prepared(
        SONNET,
        json!({"model": "g", "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "ok"}
        ]}),
    )
    .1;
    assert_eq!(v["toolConfig"]["tools"][0]["toolSpec"]["name"], DUMMY_TOOL);

    let v = prepared(
        SONNET,
        json!({"model": "g", "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": {"type": "object", "properties": {"name": {"type": "string"}}}}}}),
    )
    .1;
    assert_eq!(
        v["toolConfig"],
        json!({"tools": [{"toolSpec": {"name": "person", "inputSchema": {"json": {"type": "object", "properties": {"name": {"type": "string"}}}}}}],
               "toolChoice": {"tool": {"name": "person"}}})
    );
}

#[test]
fn defaults_unsupported_params_and_http_images() {
    let d = deployment(
        "{model: bedrock/amazon.nova-lite-v1:0, api_key: k, max_tokens: 7, temperature: 0.1}",
    );
    let t = d.target_for("g").expect("target");
    let p = BEDROCK
        .prepare(
            &d,
            &t,
            &chat(json!({"model": "g", "messages": [{"role": "user", "content": "x"}], "temperature": 0.9, "top_k": 5, "custom_field": {"a": 1}})),
        )
        .expect("prepared");
    let v: Value = serde_json::from_slice(&p.body).expect("json");
    assert_eq!(v["inferenceConfig"]["maxTokens"], 7);
    assert_eq!(v["inferenceConfig"]["temperature"], 0.9);
    assert_eq!(
        v["additionalModelRequestFields"],
        json!({"inferenceConfig": {"topK": 5}, "custom_field": {"a": 1}})
    );

    let body =
        json!({"model": "g", "messages": [{"role": "user", "content": "x"}], "seed": 1, "n": 2});
    let err = BEDROCK
        .prepare(&d, &t, &chat(body.clone()))
        .err()
        .expect("unsupported");
    assert!(err.to_string().contains("seed"), "{err}");
    let mut dropping = body;
    dropping["drop_params"] = json!(true);
    let p = BEDROCK.prepare(&d, &t, &chat(dropping)).expect("dropped");
    let text = String::from_utf8_lossy(&p.body).to_string();
    assert!(!text.contains("seed") && !text.contains("\"n\""), "{text}");

    let err = BEDROCK
        .prepare(
            &d,
            &t,
            &chat(
                json!({"model": "g", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
            ),
        )
        .err()
        .expect("http image refused");
    assert!(err.to_string().contains("data: URL"), "{err}");
    assert_eq!(err.status_code().as_u16(), 400);
}

/// Responses copied from the Converse API documentation's examples.
#[test]
fn converse_responses_text_tools_and_cache_usage() {
    let req = chat(json!({"model": "my-claude", "messages": [{"role": "user", "content": "x"}]}));
    let body = br#"{"output":{"message":{"role":"assistant","content":[{"text":"Here is a list of 3 pop songs."}]}},"stopReason":"end_turn","usage":{"inputTokens":30,"outputTokens":628,"totalTokens":658,"cacheReadInputTokens":10,"cacheWriteInputTokens":5},"metrics":{"latencyMs":1275}}"#;
    let r = BEDROCK
        .translate_response(&req, Bytes::from_static(body))
        .expect("ok");
    let v: Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "my-claude");
    assert!(v["id"].as_str().is_some_and(|i| i.starts_with("chatcmpl-")));
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Here is a list of 3 pop songs."
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 45);
    assert_eq!(v["usage"]["completion_tokens"], 628);
    assert_eq!(v["usage"]["total_tokens"], 673);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 10);
    let u = r.usage.expect("usage");
    assert_eq!((u.prompt_tokens, u.cached_tokens), (45, 10));

    let tool = br#"{"output":{"message":{"role":"assistant","content":[{"text":"Let me look that up."},{"toolUse":{"toolUseId":"tooluse_kZJMlvQmRJ6eAyJE5GIl7Q","name":"top_song","input":{"sign":"WZPZ"}}}]}},"stopReason":"tool_use","usage":{"inputTokens":375,"outputTokens":54,"totalTokens":429},"metrics":{"latencyMs":1340}}"#;
    let r = BEDROCK
        .translate_response(&req, Bytes::from_static(tool))
        .expect("ok");
    let v: Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["id"], "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "top_song");
    assert_eq!(call["function"]["arguments"], "{\"sign\":\"WZPZ\"}");

    for (reason, mapped) in [
        ("max_tokens", "length"),
        ("stop_sequence", "stop"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
    ] {
        assert_eq!(finish_reason(reason), mapped);
    }

    // response_format: the forced tool's input is the content.
    let req = chat(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": {}}}}),
    );
    let body = br#"{"output":{"message":{"role":"assistant","content":[{"toolUse":{"toolUseId":"t","name":"person","input":{"name":"Ada"}}}]}},"stopReason":"tool_use","usage":{"inputTokens":3,"outputTokens":4,"totalTokens":7}}"#;
    let v: Value = serde_json::from_slice(
        &BEDROCK
            .translate_response(&req, Bytes::from_static(body))
            .expect("ok")
            .body,
    )
    .expect("json");
    assert_eq!(v["choices"][0]["message"]["content"], "{\"name\":\"Ada\"}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["choices"][0]["message"].get("tool_calls").is_none());
}

#[test]
fn errors_from_real_bodies() {
    let d = deployment(
        "{model: bedrock/anthropic.claude-3-haiku-20240307-v1:0, api_key: br-secret-key-123}",
    );
    let t = d.target_for("g").expect("target");
    let e = BEDROCK.translate_error(
        &t,
        400,
        None,
        br#"{"message":"Input is too long for requested model."}"#,
    );
    assert_eq!(e.code(), "context_length_exceeded");
    assert!(e
        .to_string()
        .starts_with("ContextWindowExceededError: BedrockException - Input is too long"));
    let e = BEDROCK.translate_error(
        &t,
        400,
        None,
        br#"{"message":"messages.1.content: prompt is too long: 210000 tokens > 200000 maximum"}"#,
    );
    assert_eq!(e.code(), "context_length_exceeded");
    let e = BEDROCK.translate_error(
        &t,
        429,
        Some(Duration::from_secs(2)),
        br#"{"message":"Too many requests, please wait before trying again."}"#,
    );
    assert_eq!(e.error_type(), "rate_limit_error");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
    let e = BEDROCK.translate_error(
        &t,
        403,
        None,
        br#"{"message":"You don't have access to the model with the specified model ID."}"#,
    );
    assert_eq!(e.status_code().as_u16(), 403);
    let e = BEDROCK.translate_error(&t, 403, None, br#"{"message":"The request signature we calculated does not match the signature you provided."}"#);
    assert_eq!(e.status_code().as_u16(), 401);
    let e = BEDROCK.translate_error(
        &t,
        503,
        None,
        br#"{"message":"Model is not ready. Bearer br-secret-key-123"}"#,
    );
    assert_eq!(e.status_code().as_u16(), 503);
    assert!(!e.to_string().contains("br-secret-key-123"));
    let e = BEDROCK.translate_error(
        &t,
        400,
        None,
        br#"{"message":"The model returned the following errors: malformed input"}"#,
    );
    assert_eq!(e.error_type(), "invalid_request_error");
}

fn frame(kind: &str, payload: Value) -> Vec<u8> {
    eventstream::encode(
        &[
            (":event-type", kind),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.to_string().as_bytes(),
    )
}

fn stream_events(
    raw: &[u8],
    split: usize,
    json_tool: Option<String>,
) -> (Vec<Value>, bool, Result<(), String>) {
    let d = deployment("{model: bedrock/anthropic.claude-3-haiku-20240307-v1:0, api_key: k}");
    let t = d.target_for("g").expect("target").into_owned();
    let mut s = ConverseStream::new(
        t,
        "anthropic.claude-3-haiku-20240307-v1:0".into(),
        json_tool,
    );
    let mut text = String::new();
    let mut result = Ok(());
    for part in [&raw[..split], &raw[split..]] {
        match s.feed(part) {
            Ok(b) => text.push_str(&String::from_utf8_lossy(&b)),
            Err(e) => {
                result = Err(e.to_string());
                break;
            }
        }
    }
    if result.is_ok() {
        text.push_str(&String::from_utf8_lossy(&s.finish().expect("finish")));
    }
    let mut events = Vec::new();
    let mut done = false;
    for e in text.split("\n\n").filter(|e| !e.is_empty()) {
        let data = e.strip_prefix("data: ").expect("data event");
        if data == "[DONE]" {
            done = true;
        } else {
            events.push(serde_json::from_str(data).expect("json"));
        }
    }
    (events, done, result)
}

/// A ConverseStream as AWS sends it (payloads without the wrapper key, with `p` padding).
fn tool_stream() -> Vec<u8> {
    let mut raw = Vec::new();
    raw.extend(frame(
        "messageStart",
        json!({"p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0", "role": "assistant"}),
    ));
    raw.extend(frame(
        "contentBlockDelta",
        json!({"contentBlockIndex": 0, "delta": {"text": "Let me"}, "p": "abcdefghijklm"}),
    ));
    raw.extend(frame(
        "contentBlockDelta",
        json!({"contentBlockIndex": 0, "delta": {"text": " check."}, "p": "abcd"}),
    ));
    raw.extend(frame(
        "contentBlockStop",
        json!({"contentBlockIndex": 0, "p": "abcdefghijklmnopq"}),
    ));
    raw.extend(frame("contentBlockStart", json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_a", "name": "get_weather"}}, "p": "abc"})));
    raw.extend(frame(
        "contentBlockDelta",
        json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"city\":"}}, "p": "ab"}),
    ));
    raw.extend(frame(
        "contentBlockDelta",
        json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"Paris\"}"}}, "p": "ab"}),
    ));
    raw.extend(frame(
        "contentBlockStop",
        json!({"contentBlockIndex": 1, "p": "abcdefgh"}),
    ));
    raw.extend(frame("contentBlockStart", json!({"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "tooluse_b", "name": "get_time"}}, "p": "abc"})));
    raw.extend(frame(
        "contentBlockDelta",
        json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "{}"}}, "p": "ab"}),
    ));
    raw.extend(frame(
        "contentBlockStop",
        json!({"contentBlockIndex": 2, "p": "abcdefgh"}),
    ));
    raw.extend(frame(
        "messageStop",
        json!({"stopReason": "tool_use", "p": "abcdefghijklmnopqrstuvwxyz"}),
    ));
    raw.extend(frame("metadata", json!({"usage": {"inputTokens": 20, "outputTokens": 11, "totalTokens": 31, "cacheReadInputTokens": 4}, "metrics": {"latencyMs": 300}, "p": "abcdef"})));
    raw
}

#[test]
fn stream_text_tools_finish_usage_and_done_across_splits() {
    let raw = tool_stream();
    for split in (0..raw.len()).step_by(7) {
        let (events, done, result) = stream_events(&raw, split, None);
        assert!(result.is_ok(), "{result:?}");
        assert!(done, "split {split}");
        assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
        let text: String = events
            .iter()
            .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Let me check.");
        let starts: Vec<&Value> = events
            .iter()
            .filter(|e| e["choices"][0]["delta"]["tool_calls"][0]["id"].is_string())
            .collect();
        assert_eq!(starts.len(), 2);
        assert_eq!(
            starts[0]["choices"][0]["delta"]["tool_calls"][0],
            json!({"index": 0, "id": "tooluse_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}})
        );
        assert_eq!(
            starts[1]["choices"][0]["delta"]["tool_calls"][0]["index"],
            1
        );
        let args0: String = events
            .iter()
            .filter(|e| e["choices"][0]["delta"]["tool_calls"][0]["index"] == 0)
            .filter_map(|e| {
                e["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        assert_eq!(args0, "{\"city\":\"Paris\"}");
        let finish = &events[events.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
        let usage = &events[events.len() - 1];
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["prompt_tokens"], 24);
        assert_eq!(usage["usage"]["total_tokens"], 35);
        assert_eq!(usage["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
        assert_eq!(usage["model"], "anthropic.claude-3-haiku-20240307-v1:0");
    }
}

#[test]
fn stream_without_message_stop_has_no_done_and_exceptions_are_errors() {
    let raw = tool_stream();
    // Cut after the first three frames.
    let mut d = eventstream::Decoder::default();
    let n = d.push(&raw).expect("ok").len();
    assert_eq!(n, 13);
    let cut = &raw[..raw.len() / 2];
    let (_, done, result) = stream_events(cut, cut.len() / 2, None);
    assert!(result.is_ok());
    assert!(!done);

    let mut raw = frame("messageStart", json!({"role": "assistant"}));
    raw.extend(eventstream::encode(
        &[
            (":exception-type", "throttlingException"),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        br#"{"message":"Too many requests, please wait before trying again."}"#,
    ));
    let (_, done, result) = stream_events(&raw, 5, None);
    assert!(!done);
    let err = result.expect_err("exception frame");
    assert!(
        err.contains("RateLimitError") && err.contains("Too many requests"),
        "{err}"
    );

    let mut bad = frame("messageStart", json!({"role": "assistant"}));
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let (_, _, result) = stream_events(&bad, 3, None);
    assert!(result.expect_err("crc").contains("CRC"));
}

#[test]
fn stream_json_schema_tool_becomes_content() {
    let mut raw = frame("messageStart", json!({"role": "assistant"}));
    raw.extend(frame(
        "contentBlockStart",
        json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "t", "name": "person"}}}),
    ));
    raw.extend(frame(
        "contentBlockDelta",
        json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{\"name\":"}}}),
    ));
    raw.extend(frame(
        "contentBlockDelta",
        json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "\"Ada\"}"}}}),
    ));
    raw.extend(frame("messageStop", json!({"stopReason": "tool_use"})));
    let (events, done, _) = stream_events(&raw, 10, Some("person".into()));
    assert!(done);
    let text: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "{\"name\":\"Ada\"}");
    assert!(events
        .iter()
        .all(|e| e["choices"][0]["delta"].get("tool_calls").is_none()));
    assert_eq!(
        events.last().expect("finish")["choices"][0]["finish_reason"],
        "stop"
    );
}

#[test]
fn embeddings_titan_and_cohere() {
    let d = deployment("{model: bedrock/amazon.titan-embed-text-v2:0, api_key: k}");
    let t = d.target_for("g").expect("target");
    let req = request(
        CallKind::Embedding,
        json!({"model": "g", "input": "hello", "dimensions": 256}),
    );
    let p = BEDROCK.prepare(&d, &t, &req).expect("prepared");
    assert!(
        p.url
            .ends_with("/model/amazon.titan-embed-text-v2%3A0/invoke"),
        "{}",
        p.url
    );
    let v: Value = serde_json::from_slice(&p.body).expect("json");
    assert_eq!(v, json!({"inputText": "hello", "dimensions": 256}));
    let r = BEDROCK
        .translate_response(
            &req,
            Bytes::from_static(br#"{"embedding":[0.1,-0.2,0.3],"inputTextTokenCount":2}"#),
        )
        .expect("ok");
    let v: Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(v["object"], "list");
    assert_eq!(
        v["data"][0],
        json!({"object": "embedding", "index": 0, "embedding": [0.1, -0.2, 0.3]})
    );
    assert_eq!(v["usage"]["prompt_tokens"], 2);
    let many = request(
        CallKind::Embedding,
        json!({"model": "g", "input": ["a", "b"]}),
    );
    assert!(BEDROCK.prepare(&d, &t, &many).is_err());

    let d = deployment("{model: bedrock/cohere.embed-english-v3, api_key: k}");
    let t = d.target_for("g").expect("target");
    let req = request(
        CallKind::Embedding,
        json!({"model": "g", "input": ["a", "bb"], "input_type": "search_query"}),
    );
    let v: Value = serde_json::from_slice(&BEDROCK.prepare(&d, &t, &req).expect("prepared").body)
        .expect("json");
    assert_eq!(
        v,
        json!({"texts": ["a", "bb"], "input_type": "search_query"})
    );
    let r = BEDROCK
        .translate_response(&req, Bytes::from_static(br#"{"embeddings":[[0.1],[0.2]],"id":"x","response_type":"embeddings_floats","texts":["a","bb"]}"#))
        .expect("ok");
    let v: Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(v["data"][1]["embedding"], json!([0.2]));
}
