//! Pass-through routes against the mock provider: `/openai/*`, `/anthropic/*`, `/gemini/*`,
//! `/vertex_ai/*`, `/bedrock/*`, `/cohere/*` and `general_settings.pass_through_endpoints`. Each
//! call is checked on what the mock received (`/mock/last_request`): the configured credential,
//! the provider's own model name, and never the caller's virtual key, in any header or the
//! query. Spend-log rows carry LiteLLM's `call_type` `pass_through_endpoint`, the tokens read
//! from the provider's response and their cost.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};

/// What every configured credential is, and what the mock demands (`--api-key`).
const UPSTREAM_KEY: &str = "sk-upstream-pass-through-7f3a";
const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TEST_KEY: &str = include_str!("fixtures/vertex-test-key.pem");

fn service_account(mock: &Mock) -> String {
    json!({
        "type": "service_account",
        "project_id": "key-project",
        "private_key_id": "test-key-1",
        "private_key": TEST_KEY,
        "client_email": "tollgate-test@key-project.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": format!("{}/token", mock.proc.url),
    })
    .to_string()
}

fn config(mock: &Mock, creds: &std::path::Path, extra_general: &str) -> String {
    let root = &mock.proc.url;
    format!(
        r#"
model_list:
  - model_name: gpt-pt
    litellm_params: {{model: openai/gpt-4o, api_base: "{root}/v1", api_key: {UPSTREAM_KEY}}}
  - model_name: claude-pt
    litellm_params: {{model: anthropic/claude-haiku-4-5, api_base: "{root}", api_key: {UPSTREAM_KEY}}}
  - model_name: gem-pt
    litellm_params: {{model: gemini/gemini-2.5-flash, api_base: "{root}", api_key: {UPSTREAM_KEY}}}
  - model_name: vtx-pt
    litellm_params:
      model: vertex_ai/gemini-2.5-flash
      api_base: "{root}"
      vertex_project: test-proj
      vertex_location: europe-west4
      vertex_credentials: {creds}
  - model_name: bedrock-pt
    litellm_params:
      model: "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0"
      api_base: "{root}"
      aws_region_name: eu-west-1
      aws_access_key_id: {AKID}
      aws_secret_access_key: "{SECRET}"
  - model_name: cohere-pt
    litellm_params: {{model: cohere/command-r-plus-08-2024, api_base: "{root}", api_key: {UPSTREAM_KEY}}}
general_settings:
  master_key: {MASTER_KEY}
  proxy_batch_write_at: 0.2
{extra_general}"#,
        creds = creds.display(),
    )
}

struct Setup {
    mock: Mock,
    gw: Gateway,
    _dir: tempfile::TempDir,
}

/// The mock (demanding [`UPSTREAM_KEY`]) and a gateway (whose environment holds no provider
/// credential of the machine running the tests: the harness removes them).
fn start(mock_args: &[&str], extra_general: &str) -> Setup {
    let mut args = vec!["--api-key", UPSTREAM_KEY];
    args.extend_from_slice(mock_args);
    let mock = Mock::start(&args);
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("sa.json");
    std::fs::write(&creds, service_account(&mock)).expect("write");
    let gw = Gateway::start(&config(&mock, &creds, extra_general), &[], &[]);
    Setup {
        mock,
        gw,
        _dir: dir,
    }
}

async fn virtual_key(gw: &Gateway, models: Value) -> String {
    let (status, _, body) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"models": models}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["key"].as_str().expect("key").to_string()
}

/// A request with exactly these headers (no `Authorization` unless given); the status, headers
/// and body text.
async fn call(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, Headers, String) {
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client().request(method, url);
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let mut resp = match body {
        Some(b) => req
            .insert_header(("content-type", "application/json"))
            .send_body(b.to_string())
            .await
            .expect("sent"),
        None => req.send().await.expect("sent"),
    };
    let status = resp.status().as_u16();
    let bytes = resp.body().limit(16 * 1024 * 1024).await.expect("body");
    (
        status,
        resp.headers().clone(),
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// What the mock received last, checked for the virtual key anywhere in its headers and query.
async fn upstream_request(mock: &Mock, virtual_key: &str) -> Value {
    let last = mock.last_request().await;
    let headers = last["headers"].to_string();
    assert!(
        !headers.contains(virtual_key),
        "the virtual key went upstream in a header: {headers}"
    );
    let query = last["query"].as_str().unwrap_or_default();
    assert!(
        !query.contains(virtual_key),
        "the virtual key went upstream in the query: {query}"
    );
    assert!(
        !last["body"].to_string().contains(virtual_key),
        "the virtual key went upstream in the body"
    );
    last
}

fn call_id(headers: &Headers) -> String {
    headers
        .get("x-litellm-call-id")
        .expect("x-litellm-call-id")
        .to_str()
        .unwrap()
        .to_string()
}

async fn spend_row(gw: &Gateway, call_id: &str) -> Value {
    spend_logs_when(gw, &format!("request_id={call_id}"), 1)
        .await
        .remove(0)
}

/// The row of a priced pass-through call: LiteLLM's call type, tokens, a cost.
fn assert_priced_row(row: &Value, model: &str) {
    assert_eq!(row["call_type"], "pass_through_endpoint", "{row}");
    assert_eq!(row["model"], model, "{row}");
    assert!(row["prompt_tokens"].as_i64().unwrap_or(0) > 0, "{row}");
    assert!(row["completion_tokens"].as_i64().unwrap_or(0) > 0, "{row}");
    assert!(row["spend"].as_f64().unwrap_or(0.0) > 0.0, "{row}");
    assert_eq!(row["status"], "success", "{row}");
}

#[actix_rt::test]
async fn every_provider_prefix_relays_with_the_deployments_credential_never_the_virtual_key() {
    let s = start(&[], "");
    let vk = virtual_key(&s.gw, json!([])).await;
    let bearer = format!("Bearer {vk}");

    // OpenAI: the body's model group becomes the provider's model.
    let chat = json!({"model": "gpt-pt", "messages": [{"role": "user", "content": "hi"}]});
    let (status, headers, text) = call(
        "POST",
        &s.gw.url("/openai/v1/chat/completions"),
        &[("authorization", &bearer)],
        Some(&chat),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(headers
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("application/json")));
    let out: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(out["object"], "chat.completion", "{out}");
    let last = upstream_request(&s.mock, &vk).await;
    assert_eq!(last["path"], "/v1/chat/completions");
    assert_eq!(
        last["headers"]["authorization"],
        format!("Bearer {UPSTREAM_KEY}")
    );
    assert_eq!(last["body"]["model"], "gpt-4o");
    assert_priced_row(&spend_row(&s.gw, &call_id(&headers)).await, "gpt-pt");

    // Anthropic: the key in `x-api-key`, as Anthropic's SDKs send it.
    let messages = json!({"model": "claude-pt", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]});
    let (status, headers, text) = call(
        "POST",
        &s.gw.url("/anthropic/v1/messages"),
        &[("x-api-key", &vk), ("anthropic-version", "2023-06-01")],
        Some(&messages),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["type"],
        "message"
    );
    let last = upstream_request(&s.mock, &vk).await;
    assert_eq!(last["path"], "/v1/messages");
    assert_eq!(last["headers"]["x-api-key"], UPSTREAM_KEY);
    assert_eq!(last["headers"]["anthropic-version"], "2023-06-01");
    assert!(last["headers"].get("authorization").is_none(), "{last}");
    assert_eq!(last["body"]["model"], "claude-haiku-4-5");
    assert_priced_row(&spend_row(&s.gw, &call_id(&headers)).await, "claude-pt");

    // Gemini: the key as `?key=` (Google's SDKs), then as `x-goog-api-key`.
    let contents = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    for (path, headers) in [
        (
            format!("/gemini/v1beta/models/gem-pt:generateContent?key={vk}"),
            vec![],
        ),
        (
            "/gemini/v1beta/models/gem-pt:generateContent".to_string(),
            vec![("x-goog-api-key", vk.as_str())],
        ),
    ] {
        let (status, headers, text) =
            call("POST", &s.gw.url(&path), &headers, Some(&contents)).await;
        assert_eq!(status, 200, "{path}: {text}");
        assert!(text.contains("usageMetadata"), "{text}");
        let last = upstream_request(&s.mock, &vk).await;
        assert_eq!(
            last["path"],
            "/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(last["headers"]["x-goog-api-key"], UPSTREAM_KEY);
        assert_eq!(last["query"], "");
        assert_priced_row(&spend_row(&s.gw, &call_id(&headers)).await, "gem-pt");
    }

    // Vertex AI: the deployment's project, location, model and OAuth token.
    let (status, headers, text) = call(
        "POST",
        &s.gw.url("/vertex_ai/v1/projects/someone-else/locations/us-central1/publishers/google/models/vtx-pt:generateContent"),
        &[("x-litellm-api-key", &bearer)],
        Some(&contents),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let last = upstream_request(&s.mock, &vk).await;
    assert_eq!(
        last["path"],
        "/v1/projects/test-proj/locations/europe-west4/publishers/google/models/gemini-2.5-flash:generateContent"
    );
    let auth = last["headers"]["authorization"].as_str().unwrap_or("");
    assert!(auth.starts_with("Bearer ya29.mock-"), "{auth}");
    assert_priced_row(&spend_row(&s.gw, &call_id(&headers)).await, "vtx-pt");

    // Bedrock: SigV4 with the deployment's AWS credentials (the mock checks the signature).
    let converse = json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]});
    let (status, headers, text) = call(
        "POST",
        &s.gw.url("/bedrock/model/bedrock-pt/converse"),
        &[("authorization", &bearer)],
        Some(&converse),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"usage\""), "{text}");
    let last = upstream_request(&s.mock, &vk).await;
    assert_eq!(
        last["path"],
        "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    );
    let auth = last["headers"]["authorization"].as_str().unwrap_or("");
    assert!(
        auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={AKID}/")),
        "{auth}"
    );
    assert_priced_row(&spend_row(&s.gw, &call_id(&headers)).await, "bedrock-pt");

    // Cohere v2.
    let cohere = json!({"model": "cohere-pt", "messages": [{"role": "user", "content": "hi"}]});
    let (status, headers, text) = call(
        "POST",
        &s.gw.url("/cohere/v2/chat"),
        &[("authorization", &bearer)],
        Some(&cohere),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let last = upstream_request(&s.mock, &vk).await;
    assert_eq!(last["path"], "/v2/chat");
    assert_eq!(
        last["headers"]["authorization"],
        format!("Bearer {UPSTREAM_KEY}")
    );
    assert_eq!(last["body"]["model"], "command-r-plus-08-2024");
    assert_priced_row(&spend_row(&s.gw, &call_id(&headers)).await, "cohere-pt");

    // Provider errors are relayed as they are (status and body), and recorded as failures.
    let (status, headers, text) = call(
        "POST",
        &s.gw.url("/openai/v1/chat/completions"),
        &[("authorization", &bearer), ("x-mock-fail", "429")],
        Some(&chat),
    )
    .await;
    assert_eq!(status, 429, "{text}");
    let row = spend_row(&s.gw, &call_id(&headers)).await;
    assert_eq!(row["status"], "failure", "{row}");
    assert_eq!(row["call_type"], "pass_through_endpoint");
}

#[actix_rt::test]
async fn a_model_no_group_serves_uses_the_providers_environment_credential() {
    let env_key = "sk-from-the-environment-0042";
    let mock = Mock::start(&["--api-key", env_key]);
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("sa.json");
    std::fs::write(&creds, service_account(&mock)).expect("write");
    let base = mock.api_base();
    let gw = Gateway::start(
        &config(&mock, &creds, "  store_prompts_in_spend_logs: true\n"),
        &[],
        &[("OPENAI_API_KEY", env_key), ("OPENAI_API_BASE", &base)],
    );
    let vk = virtual_key(&gw, json!([])).await;
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let (status, headers, text) = call(
        "POST",
        &gw.url("/openai/v1/chat/completions?trace=1&api_key=leak"),
        &[("authorization", &format!("Bearer {vk}"))],
        Some(&body),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let last = upstream_request(&mock, &vk).await;
    assert_eq!(last["path"], "/v1/chat/completions");
    assert_eq!(last["query"], "trace=1");
    assert_eq!(
        last["headers"]["authorization"],
        format!("Bearer {env_key}")
    );
    assert_eq!(last["body"]["model"], "gpt-4o-mini");
    // The price table knows the model: the row has its cost; with `store_prompts_in_spend_logs`
    // it keeps the request body and the response.
    let row = spend_row(&gw, &call_id(&headers)).await;
    assert_priced_row(&row, "gpt-4o-mini");
    assert_eq!(row["messages"]["messages"], body["messages"], "{row}");
    assert_eq!(row["response"]["object"], "chat.completion", "{row}");
}

#[actix_rt::test]
async fn streams_are_relayed_as_they_arrive_with_their_usage_recorded() {
    let s = start(&["--chunk-delay-ms", "150", "--stream-chunks", "8"], "");
    let vk = virtual_key(&s.gw, json!([])).await;
    let bearer = format!("Bearer {vk}");

    // OpenAI SSE: the first chunk reaches the client long before the last.
    let body = json!({"model": "gpt-pt", "stream": true, "stream_options": {"include_usage": true},
                      "messages": [{"role": "user", "content": "hi"}]});
    let started = Instant::now();
    let mut resp = client()
        .post(s.gw.url("/openai/v1/chat/completions"))
        .insert_header(("authorization", bearer.as_str()))
        .insert_header(("content-type", "application/json"))
        .send_body(body.to_string())
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream")));
    let id = call_id(resp.headers());
    let mut first: Option<Duration> = None;
    let mut text = String::new();
    while let Some(chunk) = resp.next().await {
        let chunk = chunk.expect("chunk");
        first.get_or_insert(started.elapsed());
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let total = started.elapsed();
    let first = first.expect("a chunk");
    assert!(
        first + Duration::from_millis(600) < total,
        "first chunk after {first:?}, stream ended after {total:?}: the relay buffered"
    );
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    upstream_request(&s.mock, &vk).await;
    let row = spend_row(&s.gw, &id).await;
    assert_priced_row(&row, "gpt-pt");

    // Anthropic SSE: usage from message_start and message_delta.
    let body = json!({"model": "claude-pt", "max_tokens": 64, "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]});
    let (status, headers, text) = call(
        "POST",
        &s.gw.url("/anthropic/v1/messages"),
        &[("x-api-key", &vk)],
        Some(&body),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("event: message_start") && text.contains("event: message_stop"));
    let row = spend_row(&s.gw, &call_id(&headers)).await;
    assert_priced_row(&row, "claude-pt");

    // Gemini SSE (`alt=sse`): usageMetadata of the last chunk.
    let contents = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let (status, headers, text) = call(
        "POST",
        &s.gw
            .url("/gemini/v1beta/models/gem-pt:streamGenerateContent?alt=sse"),
        &[("x-goog-api-key", &vk)],
        Some(&contents),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.starts_with("data: "), "{text}");
    assert_eq!(s.mock.last_request().await["query"], "alt=sse");
    assert_priced_row(&spend_row(&s.gw, &call_id(&headers)).await, "gem-pt");

    // Bedrock ConverseStream: the binary event stream, byte for byte, and its metadata usage.
    let converse = json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]});
    let (status, headers, text) = call(
        "POST",
        &s.gw.url("/bedrock/model/bedrock-pt/converse-stream"),
        &[("authorization", &bearer)],
        Some(&converse),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        headers.get("content-type").unwrap().to_str().unwrap(),
        "application/vnd.amazon.eventstream"
    );
    assert!(text.contains("contentBlockDelta") && text.contains("metadata"));
    assert_priced_row(&spend_row(&s.gw, &call_id(&headers)).await, "bedrock-pt");
}

#[actix_rt::test]
async fn keys_are_checked_like_on_llm_routes_and_models_a_key_may_not_use_are_refused() {
    let s = start(&[], "");
    let limited = virtual_key(&s.gw, json!(["gpt-pt"])).await;
    let before = s.mock.stats().await["total"].as_u64().unwrap();

    let claude = json!({"model": "claude-pt", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, text) = call(
        "POST",
        &s.gw.url("/anthropic/v1/messages"),
        &[("x-api-key", &limited)],
        Some(&claude),
    )
    .await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("key not allowed to access model"), "{text}");
    let contents = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let (status, _, text) = call(
        "POST",
        &s.gw.url(&format!(
            "/gemini/v1beta/models/gem-pt:generateContent?key={limited}"
        )),
        &[],
        Some(&contents),
    )
    .await;
    assert_eq!(status, 401, "{text}");
    // An unconfigured model is checked against the key's list too.
    let other = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, text) = call(
        "POST",
        &s.gw.url("/openai/v1/chat/completions"),
        &[("authorization", &format!("Bearer {limited}"))],
        Some(&other),
    )
    .await;
    assert_eq!(status, 401, "{text}");
    // No key, a wrong key.
    let gpt = json!({"model": "gpt-pt", "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, text) = call(
        "POST",
        &s.gw.url("/openai/v1/chat/completions"),
        &[],
        Some(&gpt),
    )
    .await;
    assert_eq!(status, 401, "{text}");
    let (status, _, text) = call(
        "POST",
        &s.gw.url("/openai/v1/chat/completions"),
        &[("authorization", "Bearer sk-not-a-key-123")],
        Some(&gpt),
    )
    .await;
    assert_eq!(status, 401, "{text}");
    // A path that climbs out of the provider's base.
    let (status, _, text) = call(
        "POST",
        &s.gw.url("/openai/v1/%2e%2e/admin"),
        &[("authorization", &format!("Bearer {limited}"))],
        Some(&gpt),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(
        s.mock.stats().await["total"].as_u64().unwrap(),
        before,
        "nothing reached the provider"
    );
    // The model it may use works.
    let (status, _, text) = call(
        "POST",
        &s.gw.url("/openai/v1/chat/completions"),
        &[("authorization", &format!("Bearer {limited}"))],
        Some(&gpt),
    )
    .await;
    assert_eq!(status, 200, "{text}");
}

#[actix_rt::test]
async fn configured_endpoints_relay_with_their_headers_with_and_without_auth() {
    let mock_url_placeholder = "{MOCK}";
    let extra = format!(
        r#"  pass_through_endpoints:
    - path: /custom/chat
      target: {mock_url_placeholder}/v1/chat/completions
      headers: {{Authorization: "Bearer os.environ/PT_UPSTREAM_KEY", x-team: blue}}
      auth: true
      forward_headers: true
    - path: /open/cohere
      target: {mock_url_placeholder}/v2
      headers: {{authorization: "Bearer {UPSTREAM_KEY}"}}
      include_subpath: true
"#
    );
    // The mock's URL is known once it runs: start it first, then the gateway.
    let mock = Mock::start(&["--api-key", UPSTREAM_KEY]);
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("sa.json");
    std::fs::write(&creds, service_account(&mock)).expect("write");
    let extra = extra.replace(mock_url_placeholder, &mock.proc.url);
    let gw = Gateway::start(
        &config(&mock, &creds, &extra),
        &[],
        &[("PT_UPSTREAM_KEY", UPSTREAM_KEY)],
    );
    let vk = virtual_key(&gw, json!([])).await;
    let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});

    // auth: true — no key is refused before anything is sent.
    let (status, _, text) = call("POST", &gw.url("/custom/chat"), &[], Some(&chat)).await;
    assert_eq!(status, 401, "{text}");
    let (status, headers, text) = call(
        "POST",
        &gw.url("/custom/chat"),
        &[
            ("authorization", &format!("Bearer {vk}")),
            ("x-client-note", "n1"),
        ],
        Some(&chat),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let last = upstream_request(&mock, &vk).await;
    assert_eq!(last["path"], "/v1/chat/completions");
    assert_eq!(
        last["headers"]["authorization"],
        format!("Bearer {UPSTREAM_KEY}")
    );
    assert_eq!(last["headers"]["x-team"], "blue");
    assert_eq!(last["headers"]["x-client-note"], "n1", "forward_headers");
    let row = spend_row(&gw, &call_id(&headers)).await;
    assert_eq!(row["call_type"], "pass_through_endpoint");
    assert!(row["total_tokens"].as_i64().unwrap() > 0, "{row}");
    assert!(!row["api_key"].as_str().unwrap_or("").is_empty(), "{row}");

    // No auth: open, with sub-paths, and the client's own headers are not sent.
    let cohere =
        json!({"model": "command-r-plus-08-2024", "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, text) = call(
        "POST",
        &gw.url("/open/cohere/chat"),
        &[("x-client-note", "n2")],
        Some(&cohere),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let last = mock.last_request().await;
    assert_eq!(last["path"], "/v2/chat");
    assert!(last["headers"].get("x-client-note").is_none(), "{last}");

    // They are listed with the other routes.
    let (_, _, routes) = get(&gw.url("/routes"), Some(MASTER_KEY)).await;
    let paths: Vec<&str> = routes["routes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["path"].as_str())
        .collect();
    for p in [
        "/custom/chat",
        "/open/cohere/{subpath:.*}",
        "/anthropic/{tail:.*}",
    ] {
        assert!(paths.contains(&p), "{p} in {paths:?}");
    }
}

#[actix_rt::test]
async fn a_bad_pass_through_entry_stops_start_up_with_a_clear_error() {
    let mock = Mock::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("sa.json");
    std::fs::write(&creds, service_account(&mock)).expect("write");
    for (entry, expected) in [
        (
            "    - {path: /v1/chat/completions, target: 'http://127.0.0.1:9/x'}\n",
            "is a route of the gateway itself",
        ),
        (
            "    - {path: /openai/v1/files, target: 'http://127.0.0.1:9/x'}\n",
            "is a route of the gateway itself",
        ),
        (
            "    - {path: no-slash, target: 'http://127.0.0.1:9/x'}\n",
            "must start with '/'",
        ),
        (
            "    - {path: /x, target: 'file:///etc/passwd'}\n",
            "must be an http:// or https:// URL",
        ),
    ] {
        let extra = format!("  pass_through_endpoints:\n{entry}");
        let err = Gateway::try_start(&config(&mock, &creds, &extra), &[], &[])
            .err()
            .unwrap_or_else(|| panic!("{entry} must stop start-up"));
        assert!(
            err.contains("general_settings.pass_through_endpoints[0]") && err.contains(expected),
            "{entry}: {err}"
        );
        // `--validate_config` says the same without starting.
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, config(&mock, &creds, &extra)).expect("write");
        let path = path.to_string_lossy().to_string();
        let (code, _, stderr) = run_to_end(
            &["--config", path.as_str(), "--validate_config"],
            &[],
            dir.path(),
        );
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
}

#[actix_rt::test]
async fn azure_style_openai_deployment_routes_still_answer() {
    let s = start(&[], "");
    let vk = virtual_key(&s.gw, json!(["gpt-pt"])).await;
    let (status, headers, body) = post(
        &s.gw.url("/openai/deployments/gpt-pt/chat/completions"),
        Some(&vk),
        &json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert!(
        headers.get("x-litellm-model-group").is_some(),
        "served by the LLM route"
    );
    let rows = spend_logs_when(&s.gw, "", 1).await;
    assert_eq!(rows[0]["call_type"], "acompletion", "{rows:?}");
}

#[actix_rt::test]
async fn the_keys_budget_and_rate_limits_hold_on_pass_through_routes() {
    let s = start(&[], "");
    let chat = json!({"model": "gpt-pt", "messages": [{"role": "user", "content": "hi"}]});
    // A budget the first call spends.
    let (_, _, created) = post(
        &s.gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"max_budget": 0.000_000_1}),
    )
    .await;
    let poor = format!("Bearer {}", created["key"].as_str().unwrap());
    let url = s.gw.url("/openai/v1/chat/completions");
    let (status, _, text) = call("POST", &url, &[("authorization", &poor)], Some(&chat)).await;
    assert_eq!(status, 200, "{text}");
    let (status, _, text) = call("POST", &url, &[("authorization", &poor)], Some(&chat)).await;
    assert!(text.contains("Budget has been exceeded"), "{status} {text}");
    // One request a minute.
    clear_of_a_minute_turn(Duration::from_secs(5)).await;
    let (_, _, created) = post(
        &s.gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"rpm_limit": 1}),
    )
    .await;
    let slow = format!("Bearer {}", created["key"].as_str().unwrap());
    let contents = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let gemini = s.gw.url("/gemini/v1beta/models/gem-pt:generateContent");
    let (status, _, text) = call(
        "POST",
        &gemini,
        &[("authorization", &slow)],
        Some(&contents),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let (status, _, text) = call(
        "POST",
        &gemini,
        &[("authorization", &slow)],
        Some(&contents),
    )
    .await;
    assert_eq!(status, 429, "{text}");
}
