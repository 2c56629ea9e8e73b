//! Streaming relay and every error case a client can hit, through the real gateway.

mod common;

use common::*;
use serde_json::{json, Value};

#[actix_rt::test]
async fn stream_passes_through_and_hides_usage_unless_asked() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let url = gw.url("/v1/chat/completions");

    let mut body = chat("mock-gpt");
    body["stream"] = json!(true);
    let (status, headers, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200);
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
    assert!(
        chunks
            .iter()
            .all(|c| c["choices"].as_array().is_some_and(|a| !a.is_empty())),
        "no usage-only chunk: {text}"
    );
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(!content.is_empty());
    // The gateway asked upstream for usage even though the client did not.
    assert_eq!(
        mock.last_request().await["body"]["stream_options"]["include_usage"],
        true
    );

    body["stream_options"] = json!({"include_usage": true});
    let (_, _, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
    let data = sse_data(&text);
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).expect("usage chunk");
    assert!(
        usage["usage"]["total_tokens"].as_u64().unwrap_or(0) > 0,
        "{text}"
    );
    assert_eq!(usage["choices"], json!([]));
}

#[actix_rt::test]
async fn stream_chunks_arrive_unbuffered() {
    let mock = Mock::start(&["--chunk-delay-ms", "150", "--stream-chunks", "4"]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    use futures_util::StreamExt;
    let mut body = chat("mock-gpt");
    body["stream"] = json!(true);
    let started = std::time::Instant::now();
    let mut resp = client()
        .post(gw.url("/v1/chat/completions"))
        .insert_header(("authorization", format!("Bearer {MASTER_KEY}")))
        .send_json(&body)
        .await
        .expect("sent");
    let first = resp.next().await.expect("a chunk").expect("ok");
    let first_at = started.elapsed();
    assert!(!first.is_empty());
    let mut rest = 0;
    while let Some(c) = resp.next().await {
        rest += c.expect("ok").len();
    }
    let total = started.elapsed();
    assert!(rest > 0);
    // Five paced chunks take >= 600 ms in all; the first must arrive well before the end.
    assert!(total.as_millis() >= 600, "total {total:?}");
    assert!(
        first_at + std::time::Duration::from_millis(300) < total,
        "first chunk at {first_at:?} of {total:?}: buffered"
    );
}

#[actix_rt::test]
async fn a_cut_stream_ends_with_an_error_event_never_a_silent_stop() {
    // Paced chunks, so the first bytes have reached the gateway before the provider cuts.
    let mock = Mock::start(&["--chunk-delay-ms", "20"]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let mut body = chat("mock-gpt");
    body["stream"] = json!(true);
    body["mock_fail"] = json!("cut");
    let (status, _, text) =
        stream_text(&gw.url("/v1/chat/completions"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200);
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
    let error: Value = serde_json::from_str(&data[data.len() - 2]).expect("error event");
    assert!(error["error"]["message"].is_string(), "{text}");
    assert!(
        !text.contains("\"finish_reason\":\"stop\""),
        "no silent stop: {text}"
    );
}

#[actix_rt::test]
async fn auth_errors() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let url = gw.url("/v1/chat/completions");
    let (status, _, body) = post(&url, None, &chat("mock-gpt")).await;
    assert_eq!(status, 401);
    assert_envelope(&body);
    let (status, _, body) = post(&url, Some("sk-wrong-key-000000000"), &chat("mock-gpt")).await;
    assert_eq!(status, 401);
    assert_envelope(&body);
    assert!(!body.to_string().contains("sk-wrong-key-000000000"));
    for header in ["x-litellm-api-key", "api-key", "x-api-key"] {
        let (status, _, body) = post_raw(
            &url,
            None,
            chat("mock-gpt").to_string(),
            &[(header, MASTER_KEY)],
        )
        .await;
        assert_eq!(status, 200, "{header}: {body}");
    }
    assert_eq!(
        mock.stats().await["total"],
        3,
        "rejected calls never reach the provider"
    );
}

#[actix_rt::test]
async fn bad_input_is_a_clear_400() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let url = gw.url("/v1/chat/completions");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("malformed json", b"{\"model\": \"mock-gpt\", ".to_vec()),
        ("non-object body", b"[1, 2, 3]".to_vec()),
        ("empty body", Vec::new()),
        ("missing model", json!({"messages": [{"role": "user", "content": "x"}]}).to_string().into_bytes()),
        ("model wrong type", json!({"model": 42, "messages": []}).to_string().into_bytes()),
        ("messages wrong type", json!({"model": "mock-gpt", "messages": "hi"}).to_string().into_bytes()),
        ("temperature wrong type", json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}).to_string().into_bytes()),
        ("invalid utf-8", b"{\"model\": \"mock-gpt\xff\xfe\", \"messages\": []}".to_vec()),
    ];
    for (name, raw) in cases {
        let (status, _, body) = post_raw(&url, Some(MASTER_KEY), raw, &[]).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert_envelope(&body);
        assert_eq!(body["error"]["type"], "invalid_request_error", "{name}");
    }
    let (status, _, body) = post(&url, Some(MASTER_KEY), &chat("no-such-model")).await;
    assert_eq!(status, 400);
    assert_envelope(&body);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("no-such-model"));
    assert_eq!(mock.stats().await["total"], 0);
}

#[actix_rt::test]
async fn oversized_bodies_and_huge_headers_are_refused() {
    let mock = Mock::start(&[]);
    let config = basic_config(&mock).replace(
        "general_settings:\n",
        "general_settings:\n  max_request_size_mb: 1\n",
    );
    let gw = Gateway::start(&config, &[], &[]);
    let big = json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "x".repeat(2 * 1024 * 1024)}]});
    let (status, _, body) = post(&gw.url("/v1/chat/completions"), Some(MASTER_KEY), &big).await;
    assert_eq!(status, 413, "{body}");
    assert_envelope(&body);

    let huge = "h".repeat(256 * 1024);
    let result = client()
        .post(gw.url("/v1/chat/completions"))
        .insert_header(("authorization", format!("Bearer {MASTER_KEY}")))
        .insert_header(("x-huge", huge.as_str()))
        .send_json(&chat("mock-gpt"))
        .await;
    if let Ok(resp) = result {
        let status = resp.status().as_u16();
        assert!((400..500).contains(&status), "huge headers: {status}");
    }
    // Either way the gateway still serves.
    let (status, _, _) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat("mock-gpt"),
    )
    .await;
    assert_eq!(status, 200);
}

#[actix_rt::test]
async fn upstream_errors_map_to_the_right_sdk_exceptions() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let url = gw.url("/v1/chat/completions");
    let with = |mode: &str| {
        let mut b = chat("mock-gpt");
        b["mock_fail"] = json!(mode);
        b
    };

    let (status, headers, body) = post(&url, Some(MASTER_KEY), &with("429")).await;
    assert_eq!(status, 429, "{body}");
    assert_envelope(&body);
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert!(headers.get("retry-after").is_some());
    assert_eq!(
        headers
            .get("x-ratelimit-remaining-requests")
            .and_then(|v| v.to_str().ok()),
        Some("0")
    );

    for (mode, expected) in [("500", 500), ("503", 503)] {
        let (status, _, body) = post(&url, Some(MASTER_KEY), &with(mode)).await;
        assert_eq!(status, expected, "{body}");
        assert_envelope(&body);
    }

    let (status, _, body) = post(&url, Some(MASTER_KEY), &with("context_length")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    let (status, _, body) = post(&url, Some(MASTER_KEY), &with("content_policy")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "content_policy_violation");
    assert!(!body.to_string().contains("sk-mock-upstream-secret-42"));
}

#[actix_rt::test]
async fn timeouts_answer_408() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let mut body = chat("mock-gpt");
    body["mock_fail"] = json!("hang");
    body["timeout"] = json!(0.5);
    let started = std::time::Instant::now();
    let (status, headers, err) =
        post(&gw.url("/v1/chat/completions"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 408, "{err}");
    assert_envelope(&err);
    assert!(started.elapsed().as_secs_f64() < 5.0);
    assert_eq!(
        headers
            .get("x-litellm-timeout")
            .and_then(|v| v.to_str().ok()),
        Some("0.5")
    );
    // Header form.
    let mut body = chat("mock-gpt");
    body["mock_fail"] = json!("hang");
    let (status, _, _) = post_raw(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        body.to_string(),
        &[("x-litellm-timeout", "0.3")],
    )
    .await;
    assert_eq!(status, 408);
}

#[actix_rt::test]
async fn the_body_cannot_choose_upstream_url_or_credentials() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let mut body = chat("mock-gpt");
    body["api_base"] = json!("http://127.0.0.1:1/evil");
    body["base_url"] = json!("http://127.0.0.1:1/evil");
    body["api_key"] = json!("sk-attacker-key");
    body["extra_body"] = json!({"api_key": "sk-attacker-key-2", "api_base": "http://127.0.0.1:1"});
    body["metadata"] = json!({"headers": {"authorization": "Bearer sk-attacker-3"}});
    let (status, _, resp) = post(&gw.url("/v1/chat/completions"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{resp}");
    let last = mock.last_request().await;
    assert_eq!(
        last["headers"]["authorization"],
        "Bearer sk-mock-upstream-secret-42"
    );
    let sent = last["body"].to_string();
    assert!(
        !sent.contains("attacker") && !sent.contains("evil"),
        "{sent}"
    );
}

#[actix_rt::test]
async fn mock_response_needs_no_provider() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let mut body = chat("mock-gpt");
    body["mock_response"] = json!("canned answer");
    let (status, _, resp) = post(&gw.url("/v1/chat/completions"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200);
    assert_eq!(resp["choices"][0]["message"]["content"], "canned answer");
    body["stream"] = json!(true);
    let (_, _, text) = stream_text(&gw.url("/v1/chat/completions"), Some(MASTER_KEY), &body).await;
    assert!(text.contains("canned") && text.ends_with("data: [DONE]\n\n"));
    assert_eq!(mock.stats().await["total"], 0);
}

#[actix_rt::test]
async fn drop_params_is_honoured() {
    let mock = Mock::start(&[]);
    let config = format!(
        "model_list:\n  - model_name: fast\n    litellm_params: {{model: groq/mock-llama, api_base: \"{}\", api_key: k, additional_drop_params: [\"seed\"]}}\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
        mock.api_base()
    );
    let gw = Gateway::start(&config, &[], &[]);
    let url = gw.url("/v1/chat/completions");
    let mut body = chat("fast");
    body["logit_bias"] = json!({"50256": -100});
    body["seed"] = json!(7);
    let (status, _, err) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 400, "{err}");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("logit_bias"));
    body["drop_params"] = json!(true);
    let (status, _, _) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200);
    let sent = mock.last_request().await["body"].clone();
    assert!(
        sent.get("logit_bias").is_none() && sent.get("seed").is_none(),
        "{sent}"
    );
}
