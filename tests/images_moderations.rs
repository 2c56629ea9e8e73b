//! `/images/generations`, `/images/edits` (multipart) and `/moderations`, bare and under `/v1`,
//! through the whole pipeline against the mock provider: key model access, budgets, retries and
//! fallbacks, spend-log rows with LiteLLM's `call_type` and the cost from the price table, the
//! OpenAI error envelope for bad input, and the edit's files forwarded intact.

mod common;

use common::*;
use serde_json::{json, Value};

fn config(mock: &Mock) -> String {
    format!(
        r#"model_list:
  - model_name: img
    litellm_params: {{model: openai/gpt-image-1, api_base: {base}, api_key: sk-x}}
  - model_name: dalle
    litellm_params: {{model: openai/dall-e-3, api_base: {base}, api_key: sk-x}}
  - model_name: img-broken
    litellm_params: {{model: openai/mock-fail-500, api_base: {base}, api_key: sk-x}}
  - model_name: mod
    litellm_params: {{model: openai/omni-moderation-latest, api_base: {base}, api_key: sk-x}}
    model_info: {{mode: moderation}}
  - model_name: mod-broken
    litellm_params: {{model: openai/mock-fail-503, api_base: {base}, api_key: sk-x}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-3-5-haiku-latest, api_base: {base}, api_key: sk-x}}
router_settings:
  num_retries: 1
  fallbacks: [{{"img-broken": ["img"]}}, {{"mod-broken": ["mod"]}}]
general_settings:
  master_key: {MASTER_KEY}
  proxy_batch_write_at: 0.2
"#,
        base = mock.api_base()
    )
}

fn header(headers: &Headers, name: &str) -> String {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("header {name}"))
        .to_str()
        .unwrap()
        .to_string()
}

/// 64-bit FNV-1a, as the mock digests the files it receives.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A `multipart/form-data` body: text fields, then files `(field, filename, type, bytes)`.
fn form(fields: &[(&str, &str)], files: &[(&str, &str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "test-boundary-7MA4YWxkTrZu0gW";
    let mut out = Vec::new();
    for (name, value) in fields {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    for (name, filename, content_type, data) in files {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), out)
}

async fn post_form(
    url: &str,
    key: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Headers, Value) {
    let mut resp = client()
        .post(url)
        .insert_header(("content-type", content_type))
        .insert_header(("authorization", format!("Bearer {key}")))
        .send_body(body)
        .await
        .expect("request sent");
    let status = resp.status().as_u16();
    let bytes = resp.body().limit(16 * 1024 * 1024).await.expect("body");
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, resp.headers().clone(), value)
}

/// A PNG-looking file with bytes a careless form writer would break (CR LF, NUL, a fake boundary).
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR--test-boundary\r\n\xff\xfe binary tail";

async fn spend_row(gw: &Gateway, call_id: &str) -> Value {
    spend_logs_when(gw, &format!("request_id={call_id}"), 1)
        .await
        .remove(0)
}

#[actix_rt::test]
async fn image_generation_answers_on_both_paths_with_its_cost_in_the_spend_log() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    for path in ["/images/generations", "/v1/images/generations"] {
        let body = json!({"model": "img", "prompt": "a lighthouse", "n": 2, "quality": "medium", "size": "1024x1024"});
        let (status, headers, out) = post(&gw.url(path), Some(MASTER_KEY), &body).await;
        assert_eq!(status, 200, "{path}: {out}");
        let data = out["data"].as_array().expect("data");
        assert_eq!(data.len(), 2, "{out}");
        assert!(data.iter().all(|d| d["b64_json"].is_string()), "{out}");
        assert!(out["created"].is_u64() && out["usage"]["output_tokens"] == 2 * 1056);
        // `medium/1024-x-1024/gpt-image-1`: 0.042 per image.
        let cost: f64 = header(&headers, "x-litellm-response-cost").parse().unwrap();
        assert!((cost - 0.084).abs() < 1e-9, "{cost}");
        let row = spend_row(&gw, &header(&headers, "x-litellm-call-id")).await;
        assert_eq!(row["call_type"], "aimage_generation", "{row}");
        assert!(
            (row["spend"].as_f64().unwrap() - 0.084).abs() < 1e-9,
            "{row}"
        );
        assert_eq!(row["model_group"], "img", "{row}");
    }
    // DALL·E answers links, with the prompt it used.
    let body = json!({"model": "dalle", "prompt": "a fox"});
    let (status, _, out) = post(&gw.url("/v1/images/generations"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{out}");
    assert!(out["data"][0]["url"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    assert_eq!(out["data"][0]["revised_prompt"], "a fox");
    let sent = mock.last_request().await;
    assert_eq!(sent["path"], "/v1/images/generations");
    assert_eq!(
        sent["body"]["model"], "dall-e-3",
        "the provider's model name"
    );
    assert_eq!(sent["body"]["prompt"], "a fox");
}

#[actix_rt::test]
async fn image_edits_forward_the_form_and_its_files_intact() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let mask = b"mask-bytes\r\n--\0";
    for path in ["/images/edits", "/v1/images/edits"] {
        let (content_type, body) = form(
            &[
                ("model", "img"),
                ("prompt", "add a hat"),
                ("n", "1"),
                ("size", "1024x1024"),
            ],
            &[
                ("image[]", "cat.png", "image/png", PNG),
                ("mask", "mask.png", "image/png", mask),
            ],
        );
        let (status, headers, out) =
            post_form(&gw.url(path), MASTER_KEY, &content_type, body).await;
        assert_eq!(status, 200, "{path}: {out}");
        assert_eq!(out["data"].as_array().unwrap().len(), 1, "{out}");
        // The mock lists each file it received with its length and digest.
        assert_eq!(
            header(&headers, "llm_provider-x-mock-uploads"),
            format!(
                "image[]:cat.png:image/png:{}:{:016x},mask:mask.png:image/png:{}:{:016x}",
                PNG.len(),
                fnv1a(PNG),
                mask.len(),
                fnv1a(mask)
            )
        );
        let sent = mock.last_request().await;
        assert_eq!(sent["path"], "/v1/images/edits");
        let sent_type = sent["headers"]["content-type"].as_str().unwrap();
        assert!(
            sent_type.starts_with("multipart/form-data; boundary="),
            "{sent_type}"
        );
        let text = sent["body"].as_str().expect("a form, not JSON");
        assert!(
            text.contains("name=\"model\"\r\n\r\ngpt-image-1\r\n"),
            "{text}"
        );
        assert!(
            text.contains("name=\"prompt\"\r\n\r\nadd a hat\r\n"),
            "{text}"
        );
        let row = spend_row(&gw, &header(&headers, "x-litellm-call-id")).await;
        assert_eq!(row["call_type"], "aimage_edit", "{row}");
        assert!(
            (row["spend"].as_f64().unwrap() - 0.042).abs() < 1e-9,
            "{row}"
        );
    }
}

#[actix_rt::test]
async fn moderations_answer_on_both_paths_and_default_to_the_moderation_group() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    for path in ["/moderations", "/v1/moderations"] {
        let body = json!({"model": "mod", "input": ["hello there", "I will kill it"]});
        let (status, headers, out) = post(&gw.url(path), Some(MASTER_KEY), &body).await;
        assert_eq!(status, 200, "{path}: {out}");
        let results = out["results"].as_array().expect("results");
        assert_eq!(results.len(), 2, "{out}");
        assert_eq!(results[0]["flagged"], false);
        assert_eq!(results[1]["flagged"], true);
        assert_eq!(results[1]["categories"]["violence"], true);
        assert!(results[1]["category_scores"]["violence"].as_f64().unwrap() > 0.5);
        let row = spend_row(&gw, &header(&headers, "x-litellm-call-id")).await;
        assert_eq!(row["call_type"], "amoderation", "{row}");
        assert_eq!(row["spend"].as_f64(), Some(0.0), "{row}");
    }
    // No model: the first deployment with `mode: moderation`.
    let (status, headers, out) = post(
        &gw.url("/v1/moderations"),
        Some(MASTER_KEY),
        &json!({"input": "fine text"}),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(header(&headers, "x-litellm-model-group"), "mod");
    assert_eq!(
        mock.last_request().await["body"]["model"],
        "omni-moderation-latest"
    );
}

#[actix_rt::test]
async fn general_settings_moderation_model_is_the_default_and_a_requests_model_wins() {
    let mock = Mock::start(&[]);
    let config = config(&mock).replace(
        "router_settings:",
        &format!(
            "  - model_name: mod-default\n    litellm_params: {{model: openai/text-moderation-stable, api_base: {}, api_key: sk-x}}\nrouter_settings:",
            mock.api_base()
        ),
    ) + "  moderation_model: mod-default\n";
    let gw = Gateway::start(&config, &[], &[]);
    let (status, headers, out) = post(
        &gw.url("/moderations"),
        Some(MASTER_KEY),
        &json!({"input": "fine text"}),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(header(&headers, "x-litellm-model-group"), "mod-default");
    assert_eq!(
        mock.last_request().await["body"]["model"],
        "text-moderation-stable"
    );
    let (status, headers, out) = post(
        &gw.url("/moderations"),
        Some(MASTER_KEY),
        &json!({"model": "mod", "input": "fine text"}),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(header(&headers, "x-litellm-model-group"), "mod");
}

#[actix_rt::test]
async fn key_model_access_and_budgets_apply() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let (status, _, key) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"models": ["mod"], "max_budget": 0.04}),
    )
    .await;
    assert_eq!(status, 200, "{key}");
    let key = key["key"].as_str().unwrap().to_string();
    let image = json!({"model": "img", "prompt": "a boat"});
    let (status, _, out) = post(&gw.url("/v1/images/generations"), Some(&key), &image).await;
    assert_eq!(status, 401, "{out}");
    assert_envelope(&out);
    assert!(out["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not allowed to access model"));
    let (content_type, body) = form(
        &[("model", "img"), ("prompt", "p")],
        &[("image", "a.png", "image/png", PNG)],
    );
    let (status, _, out) = post_form(&gw.url("/images/edits"), &key, &content_type, body).await;
    assert_eq!(status, 401, "{out}");
    let (status, _, out) = post(&gw.url("/moderations"), Some(&key), &json!({"input": "x"})).await;
    assert_eq!(status, 200, "the key's own model: {out}");

    // A budget: the first image (0.042) spends it, the second is refused.
    let (_, _, rich) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"models": ["img"], "max_budget": 0.04}),
    )
    .await;
    let rich = rich["key"].as_str().unwrap().to_string();
    let (status, _, out) = post(&gw.url("/images/generations"), Some(&rich), &image).await;
    assert_eq!(status, 200, "{out}");
    let (status, _, out) = post(&gw.url("/images/generations"), Some(&rich), &image).await;
    assert_eq!(status, 400, "{out}");
    assert_envelope(&out);
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Budget has been exceeded"),
        "{out}"
    );
}

#[actix_rt::test]
async fn failing_deployments_are_retried_then_fall_back() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let body = json!({"model": "img-broken", "prompt": "a tree"});
    let (status, headers, out) =
        post(&gw.url("/v1/images/generations"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(header(&headers, "x-litellm-model-group"), "img");
    assert_eq!(header(&headers, "x-litellm-attempted-fallbacks"), "1");
    let stats = mock.stats().await;
    assert_eq!(
        stats["by_model"]["mock-fail-500"], 2,
        "one try and one retry: {stats}"
    );
    assert_eq!(stats["by_model"]["gpt-image-1"], 1, "{stats}");

    let body = json!({"model": "mod-broken", "input": "x"});
    let (status, headers, out) = post(&gw.url("/moderations"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(header(&headers, "x-litellm-model-group"), "mod");
    assert_eq!(mock.stats().await["by_route"]["/moderations"], 3);
}

#[actix_rt::test]
async fn bad_input_is_refused_with_the_openai_envelope() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let cases = [
        ("/v1/images/generations", json!({"model": "img"}), "prompt"),
        (
            "/images/generations",
            json!({"model": "img", "prompt": 5}),
            "prompt",
        ),
        (
            "/images/generations",
            json!({"model": "img", "prompt": "p", "stream": true}),
            "stream",
        ),
        ("/v1/moderations", json!({"model": "mod"}), "input"),
        ("/moderations", json!({"model": "mod", "input": 7}), "input"),
    ];
    for (path, body, param) in cases {
        let (status, _, out) = post(&gw.url(path), Some(MASTER_KEY), &body).await;
        assert_eq!(status, 400, "{path} {body}: {out}");
        assert_envelope(&out);
        assert_eq!(out["error"]["param"], param, "{out}");
    }
    // An edit without its image file, and one sent as JSON.
    let (content_type, body) = form(&[("model", "img"), ("prompt", "p")], &[]);
    let (status, _, out) =
        post_form(&gw.url("/v1/images/edits"), MASTER_KEY, &content_type, body).await;
    assert_eq!(status, 400, "{out}");
    assert_eq!(out["error"]["param"], "image", "{out}");
    let (status, _, out) = post(
        &gw.url("/images/edits"),
        Some(MASTER_KEY),
        &json!({"model": "img", "prompt": "p"}),
    )
    .await;
    assert_eq!(status, 400, "{out}");
    assert_envelope(&out);
    // A provider whose adapter has no image generation.
    let (status, _, out) = post(
        &gw.url("/images/generations"),
        Some(MASTER_KEY),
        &json!({"model": "claude", "prompt": "p"}),
    )
    .await;
    assert_eq!(status, 400, "{out}");
    assert_envelope(&out);
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("image generation is not supported for provider anthropic"),
        "{out}"
    );
    assert_eq!(
        mock.stats().await["total"],
        0,
        "nothing reached the provider"
    );
}
