//! Secrets in deployment settings are never shown, and the upstream URL is the configured one:
//! passwords in `api_base`, secrets in its query string, header values (standard and custom
//! names), API keys and cloud credentials stay out of `/model/info`, `/v1/model/info`, the
//! `/model/new` response, `/health`, `/metrics`, response headers and `--detailed_debug` logs; a
//! base's query string stays after the joined path; client-chosen model names (wildcards) cannot
//! change the upstream path or query.

mod common;

use common::*;
use serde_json::{json, Value};

const USERINFO_PASS: &str = "UserinfoPass-5k2w";
const QUERY_KEY: &str = "QueryKey-7f1q";
const QUERY_SIG: &str = "SigValue-9x3z";
const API_KEY: &str = "sk-ApiKeySecret-0a8b";
const HDR_BEARER: &str = "HeaderBearer-1c4d";
const HDR_CUSTOM: &str = "CustomTok-2e6f";
const HDR_PLAIN: &str = "PlainHdr-3g8h";
const HDRS_VALUE: &str = "HeadersVal-4i0j";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const AWS_SESSION: &str = "SessionTok-5k2l";
const VERTEX_CRED: &str = "VertexCred-6m4n";
const AZURE_KEY: &str = "AzureKey-7o6p";
const AZURE_PASS: &str = "AzurePass-8q8r";
const AZURE_SIG: &str = "AzureSig-9s0t";

const SECRETS: &[&str] = &[
    USERINFO_PASS,
    QUERY_KEY,
    QUERY_SIG,
    API_KEY,
    HDR_BEARER,
    HDR_CUSTOM,
    HDR_PLAIN,
    HDRS_VALUE,
    AWS_SECRET,
    AWS_SESSION,
    VERTEX_CRED,
    AZURE_KEY,
    AZURE_PASS,
    AZURE_SIG,
];

fn assert_no_secret(place: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{place} shows the secret {secret}:\n{text}"
        );
    }
}

fn headers_text(headers: &Headers) -> String {
    headers
        .iter()
        .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
        .collect()
}

/// Host and port of the mock, for URLs with userinfo.
fn host(mock: &Mock) -> String {
    mock.proc
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// Deployments holding a secret in every position a setting can hold one.
fn secret_params(mock: &Mock) -> Vec<(&'static str, Value)> {
    let host = host(mock);
    vec![
        (
            "sec-openai",
            json!({
                "model": "openai/mock-gpt",
                "api_base": format!("http://tguser:{USERINFO_PASS}@{host}/v1?api-key={QUERY_KEY}&sig={QUERY_SIG}"),
                "api_key": API_KEY,
                "extra_headers": {
                    "Authorization": format!("Bearer {HDR_BEARER}"),
                    "X-My-Token": HDR_CUSTOM,
                    "X-Trace-Thing": HDR_PLAIN,
                },
                "headers": {"X-Upstream-Auth": HDRS_VALUE},
            }),
        ),
        (
            "sec-azure",
            json!({
                "model": "azure/azdep",
                "api_base": format!("http://azuser:{AZURE_PASS}@{host}?sig={AZURE_SIG}"),
                "api_key": AZURE_KEY,
                "api_version": "2024-10-21",
            }),
        ),
        (
            "sec-bedrock",
            json!({
                "model": "bedrock/anthropic.claude-3-haiku-20240307-v1:0",
                "api_base": mock.proc.url,
                "aws_region_name": "eu-west-1",
                "aws_access_key_id": "AKIDEXAMPLE",
                "aws_secret_access_key": AWS_SECRET,
                "aws_session_token": AWS_SESSION,
            }),
        ),
        (
            "sec-vertex",
            json!({
                "model": "vertex_ai/gemini-2.5-flash",
                "api_base": mock.proc.url,
                "vertex_project": "proj",
                "vertex_location": "europe-west4",
                "vertex_credentials": json!({
                    "type": "service_account",
                    "client_email": "sa@proj.iam.gserviceaccount.com",
                    "private_key": VERTEX_CRED,
                    "token_uri": format!("{}/token", mock.proc.url),
                })
                .to_string(),
            }),
        ),
    ]
}

fn yaml_config(mock: &Mock) -> String {
    let mut out = String::from("model_list:\n");
    for (name, params) in secret_params(mock) {
        out.push_str(&format!(
            "  - model_name: {name}\n    litellm_params: {params}\n"
        ));
    }
    out.push_str(&format!(
        "router_settings:\n  num_retries: 0\ngeneral_settings:\n  master_key: {MASTER_KEY}\n"
    ));
    out
}

#[actix_rt::test]
async fn deployment_secrets_appear_in_no_response_header_body_metric_or_log() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&yaml_config(&mock), &["--detailed_debug"], &[]);
    let mut shown = String::new();

    // A call through each kind of base: the secrets still reach the provider, the base's query
    // stays after the path, and the response names the base without them.
    let (status, headers, body) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat("sec-openai"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        headers
            .get("x-litellm-model-api-base")
            .and_then(|v| v.to_str().ok()),
        Some(format!("{}/v1?api-key=****&sig=****", mock.proc.url).as_str())
    );
    let last = mock.last_request().await;
    assert_eq!(last["path"], "/v1/chat/completions");
    assert_eq!(
        last["query"],
        format!("api-key={QUERY_KEY}&sig={QUERY_SIG}")
    );
    assert_eq!(last["headers"]["x-my-token"], HDR_CUSTOM);
    shown.push_str(&headers_text(&headers));
    shown.push_str(&body.to_string());

    let (status, headers, body) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat("sec-azure"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let last = mock.last_request().await;
    assert_eq!(last["path"], "/openai/deployments/azdep/chat/completions");
    assert_eq!(
        last["query"],
        format!("api-version=2024-10-21&sig={AZURE_SIG}")
    );
    assert_eq!(last["headers"]["api-key"], AZURE_KEY);
    shown.push_str(&headers_text(&headers));
    shown.push_str(&body.to_string());

    let (status, headers, body) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat("sec-bedrock"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    shown.push_str(&headers_text(&headers));
    shown.push_str(&body.to_string());

    // Vertex AI with a broken credential: the error names no part of it.
    let (status, headers, body) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat("sec-vertex"),
    )
    .await;
    assert!(status >= 400, "{status} {body}");
    shown.push_str(&headers_text(&headers));
    shown.push_str(&body.to_string());

    // Any key holder may read /model/info: a virtual key sees the same masked view.
    let (status, _, generated) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"models": ["sec-openai"]}),
    )
    .await;
    assert_eq!(status, 200, "{generated}");
    let virtual_key = generated["key"].as_str().expect("key").to_string();
    for (path, key) in [
        ("/model/info", MASTER_KEY),
        ("/v1/model/info", MASTER_KEY),
        ("/model/info", virtual_key.as_str()),
        ("/v1/model/info", virtual_key.as_str()),
    ] {
        let (status, headers, info) = get(&gw.url(path), Some(key)).await;
        assert_eq!(status, 200, "{info}");
        let entry = info["data"]
            .as_array()
            .and_then(|d| d.iter().find(|e| e["model_name"] == "sec-openai"))
            .cloned()
            .expect("sec-openai listed");
        let params = &entry["litellm_params"];
        assert_eq!(
            params["api_base"],
            format!("{}/v1?api-key=****&sig=****", mock.proc.url)
        );
        // Header names are shown, their values never.
        for name in ["Authorization", "X-My-Token", "X-Trace-Thing"] {
            assert!(params["extra_headers"][name].is_string(), "{params}");
        }
        assert!(params["headers"]["X-Upstream-Auth"].is_string(), "{params}");
        shown.push_str(&headers_text(&headers));
        shown.push_str(&info.to_string());
    }

    let (status, headers, health) = get(&gw.url("/health"), Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{health}");
    assert!(
        health
            .to_string()
            .contains(&format!("{}/v1", mock.proc.url)),
        "{health}"
    );
    shown.push_str(&headers_text(&headers));
    shown.push_str(&health.to_string());

    let (status, headers, metrics) = get_text(&gw.url("/metrics")).await;
    assert_eq!(status, 200, "{metrics}");
    assert!(metrics.contains("sec-openai"), "{metrics}");
    shown.push_str(&headers_text(&headers));
    shown.push_str(&metrics);

    assert_no_secret("a response", &shown);

    let logs = gw.proc.logs();
    assert!(logs.contains("loaded config"), "{logs}");
    assert!(logs.contains("upstream request"), "{logs}");
    assert!(logs.contains("x-my-token"), "{logs}");
    assert_no_secret("the --detailed_debug log", &logs);
}

#[actix_rt::test]
async fn models_added_through_the_api_are_shown_without_their_secrets() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &["--detailed_debug"], &[]);
    let mut shown = String::new();
    for (name, params) in secret_params(&mock) {
        let body = json!({"model_name": format!("db-{name}"), "litellm_params": params});
        let (status, headers, created) = post(&gw.url("/model/new"), Some(MASTER_KEY), &body).await;
        assert_eq!(status, 200, "{created}");
        assert!(created["litellm_params"]["model"].is_string(), "{created}");
        shown.push_str(&headers_text(&headers));
        shown.push_str(&created.to_string());
    }
    let (status, headers, body) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat("db-sec-openai"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        mock.last_request().await["query"],
        format!("api-key={QUERY_KEY}&sig={QUERY_SIG}")
    );
    shown.push_str(&headers_text(&headers));
    for path in ["/model/info", "/v1/model/info"] {
        let (status, _, info) = get(&gw.url(path), Some(MASTER_KEY)).await;
        assert_eq!(status, 200, "{info}");
        assert!(info.to_string().contains("db-sec-openai"), "{info}");
        shown.push_str(&info.to_string());
    }
    let (_, _, metrics) = get_text(&gw.url("/metrics")).await;
    shown.push_str(&metrics);
    assert_no_secret("a response", &shown);
    assert_no_secret("the --detailed_debug log", &gw.proc.logs());
}

/// Each adapter joins its path onto the base's path and keeps the base's query string.
#[actix_rt::test]
async fn every_provider_keeps_the_base_query_after_its_path() {
    let mock = Mock::start(&[]);
    let base = &mock.proc.url;
    let config = format!(
        r#"
model_list:
  - model_name: q-openai
    litellm_params: {{model: openai/mock-gpt, api_base: "{base}/v1?tq=1", api_key: sk-upstream-0000000}}
  - model_name: q-anthropic
    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: "{base}?tq=1", api_key: sk-ant-0000000}}
  - model_name: q-cohere
    litellm_params: {{model: cohere_chat/command-a-03-2025, api_base: "{base}?tq=1", api_key: co-0000000}}
  - model_name: q-ollama
    litellm_params: {{model: ollama_chat/llama3.1, api_base: "{base}?tq=1"}}
  - model_name: q-gemini
    litellm_params: {{model: gemini/gemini-2.0-flash, api_base: "{base}?tq=1", api_key: AIza-mock-gemini-key-0123456789}}
  - model_name: q-bedrock
    litellm_params: {{model: "bedrock/anthropic.claude-3-haiku-20240307-v1:0", api_base: "{base}?tq=1", aws_region_name: eu-west-1, aws_access_key_id: AKIDEXAMPLE, aws_secret_access_key: "{AWS_SECRET}"}}
  - model_name: q-hf
    litellm_params: {{model: huggingface/tgi, api_base: "{base}/v1?tq=1"}}
router_settings:
  num_retries: 0
general_settings:
  master_key: {MASTER_KEY}
"#
    );
    let gw = Gateway::start(&config, &[], &[]);
    for (model, path) in [
        ("q-openai", "/v1/chat/completions"),
        ("q-anthropic", "/v1/messages"),
        ("q-cohere", "/v2/chat"),
        ("q-ollama", "/api/chat"),
        (
            "q-gemini",
            "/v1beta/models/gemini-2.0-flash:generateContent",
        ),
        (
            "q-bedrock",
            "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        ),
        ("q-hf", "/v1/chat/completions"),
    ] {
        let (status, _, body) = post(
            &gw.url("/v1/chat/completions"),
            Some(MASTER_KEY),
            &chat(model),
        )
        .await;
        assert_eq!(status, 200, "{model}: {body}");
        let last = mock.last_request().await;
        assert_eq!(last["path"], path, "{model}");
        assert_eq!(last["query"], "tq=1", "{model}");
    }
}

/// Wildcard deployments put the client's model name into the upstream URL for some providers: a
/// name with path syntax is refused before any call, and any other character is percent-encoded so
/// the name stays one path segment; the query is exactly the configured one.
#[actix_rt::test]
async fn client_model_names_cannot_steer_the_upstream_path_or_query() {
    let mock = Mock::start(&[]);
    let base = &mock.proc.url;
    let config = format!(
        r#"
model_list:
  - model_name: "azure/*"
    litellm_params: {{model: "azure/*", api_base: "{base}", api_key: az-0000000, api_version: "2024-10-21"}}
  - model_name: "gemini/*"
    litellm_params: {{model: "gemini/*", api_base: "{base}", api_key: AIza-mock-gemini-key-0123456789}}
  - model_name: "bedrock/*"
    litellm_params: {{model: "bedrock/*", api_base: "{base}", aws_region_name: eu-west-1, aws_access_key_id: AKIDEXAMPLE, aws_secret_access_key: "{AWS_SECRET}"}}
  - model_name: "ollama_chat/*"
    litellm_params: {{model: "ollama_chat/*", api_base: "{base}"}}
  - model_name: "*"
    litellm_params: {{model: "*", api_base: "{base}"}}
router_settings:
  num_retries: 0
general_settings:
  master_key: {MASTER_KEY}
"#
    );
    let gw = Gateway::start(&config, &[], &[]);

    let refused = [
        "azure/x/embeddings?api-version=evil&x=#",
        "azure/x/embeddings",
        "azure/../../v1/chat/completions",
        "azure/x%2Fembeddings",
        "azure/x\u{1}",
        "azure/..",
        "gemini/gemini-2.0-flash?alt=sse",
        "gemini/a/b",
        "gemini/x#frag",
        "bedrock/../../x",
        "bedrock/x?y",
        "ollama_chat/a%2e%2e",
        "ollama_chat/a#b",
    ];
    for model in refused {
        let (status, _, body) = post(
            &gw.url("/v1/chat/completions"),
            Some(MASTER_KEY),
            &chat(model),
        )
        .await;
        assert_eq!(status, 400, "{model}: {body}");
        assert_eq!(body["error"]["param"], "model", "{model}: {body}");
    }
    assert_eq!(
        mock.stats().await["total"],
        0,
        "a refused name reached the provider"
    );

    let encoded = [
        (
            "azure/x&api-version=evil",
            "/openai/deployments/x%26api-version%3Devil/chat/completions",
            "api-version=2024-10-21",
        ),
        (
            "azure/dep name;v=1",
            "/openai/deployments/dep%20name%3Bv%3D1/chat/completions",
            "api-version=2024-10-21",
        ),
        (
            "gemini/gemini-2.0-flash:countTokens",
            "/v1beta/models/gemini-2.0-flash%3AcountTokens:generateContent",
            "",
        ),
        (
            "bedrock/m/converse-stream",
            "/model/m%2Fconverse-stream/converse",
            "",
        ),
        (
            "bedrock/arn:aws:bedrock:eu-west-1:1:inference-profile/eu.x",
            "/model/arn%3Aaws%3Abedrock%3Aeu-west-1%3A1%3Ainference-profile%2Feu.x/converse",
            "",
        ),
        ("ollama_chat/llama3:8b&x=1", "/api/chat", ""),
    ];
    for (model, path, query) in encoded {
        let (status, _, body) = post(
            &gw.url("/v1/chat/completions"),
            Some(MASTER_KEY),
            &chat(model),
        )
        .await;
        assert_eq!(status, 200, "{model}: {body}");
        let last = mock.last_request().await;
        assert_eq!(last["path"], path, "{model}");
        assert_eq!(last["query"], query, "{model}");
    }
}
