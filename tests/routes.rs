//! Every client route, through the real gateway to the mock provider.

mod common;

use common::*;
use serde_json::{json, Value};

#[actix_rt::test]
async fn chat_completions_on_every_path_form() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    for path in [
        "/chat/completions",
        "/v1/chat/completions",
        "/engines/mock-gpt/chat/completions",
        "/openai/deployments/mock-gpt/chat/completions",
    ] {
        // The path's model wins over the body's.
        let body = if path.contains("mock-gpt/") {
            chat("ignored-by-path")
        } else {
            chat("mock-gpt")
        };
        let (status, headers, body) = post(&gw.url(path), Some(MASTER_KEY), &body).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["object"], "chat.completion", "{path}");
        assert!(body["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty()));
        assert!(body["usage"]["total_tokens"].as_u64().unwrap_or(0) > 0);
        assert!(headers.get("x-litellm-call-id").is_some());
        assert_eq!(
            headers
                .get("x-litellm-model-group")
                .and_then(|v| v.to_str().ok()),
            Some("mock-gpt")
        );
        assert!(headers.get("x-litellm-model-id").is_some());
        assert!(headers.get("x-litellm-response-duration-ms").is_some());
    }
    // The upstream saw the provider's model name and the configured credential.
    let last = mock.last_request().await;
    assert_eq!(last["body"]["model"], "mock-gpt");
    assert_eq!(
        last["headers"]["authorization"],
        "Bearer sk-mock-upstream-secret-42"
    );
    assert_eq!(mock.stats().await["total"], 4);
}

#[actix_rt::test]
async fn completions_and_embeddings_on_every_path_form() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    for path in [
        "/completions",
        "/v1/completions",
        "/engines/mock-gpt/completions",
        "/openai/deployments/mock-gpt/completions",
    ] {
        let (status, _, body) = post(
            &gw.url(path),
            Some(MASTER_KEY),
            &json!({"model": "mock-gpt", "prompt": "Once upon"}),
        )
        .await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["object"], "text_completion", "{path}");
        assert!(body["choices"][0]["text"].is_string());
    }
    for path in [
        "/embeddings",
        "/v1/embeddings",
        "/engines/mock-embed/embeddings",
        "/openai/deployments/mock-embed/embeddings",
    ] {
        let (status, _, body) = post(
            &gw.url(path),
            Some(MASTER_KEY),
            &json!({"model": "mock-embed", "input": ["a", "b"]}),
        )
        .await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["object"], "list");
        assert_eq!(body["data"].as_array().map(Vec::len), Some(2), "{path}");
        assert!(body["data"][0]["embedding"]
            .as_array()
            .is_some_and(|v| !v.is_empty()));
    }
}

#[actix_rt::test]
async fn models_and_model_info() {
    let mock = Mock::start(&[]);
    let config = format!(
        "{}\nrouter_settings:\n  model_group_alias:\n    friendly: mock-gpt\n    secret-alias: {{model: mock-gpt, hidden: true}}\n",
        basic_config(&mock)
    );
    let gw = Gateway::start(&config, &[], &[]);
    for path in ["/models", "/v1/models"] {
        let (status, _, body) = get(&gw.url(path), Some(MASTER_KEY)).await;
        assert_eq!(status, 200);
        assert_eq!(body["object"], "list");
        let ids: Vec<&str> = body["data"]
            .as_array()
            .expect("data")
            .iter()
            .filter_map(|m| m["id"].as_str())
            .collect();
        assert!(
            ids.contains(&"mock-gpt") && ids.contains(&"mock-embed") && ids.contains(&"friendly"),
            "{ids:?}"
        );
        assert!(
            !ids.contains(&"secret-alias"),
            "hidden aliases are not listed"
        );
        assert_eq!(body["data"][0]["object"], "model");
        assert_eq!(body["data"][0]["created"], 1_677_610_602);
    }
    // A hidden alias still routes.
    let (status, headers, _) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat("secret-alias"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers
            .get("x-litellm-model-group")
            .and_then(|v| v.to_str().ok()),
        Some("mock-gpt")
    );
    let (status, _, one) = get(&gw.url("/v1/models/mock-gpt"), Some(MASTER_KEY)).await;
    assert_eq!((status, one["id"].as_str()), (200, Some("mock-gpt")));

    let (status, _, info) = get(&gw.url("/model/info"), Some(MASTER_KEY)).await;
    assert_eq!(status, 200);
    let text = info.to_string();
    assert!(
        !text.contains("sk-mock-upstream-secret-42"),
        "secrets stripped: {text}"
    );
    let first = &info["data"][0];
    assert_eq!(first["model_name"], "mock-gpt");
    assert_eq!(first["litellm_params"]["model"], "openai/mock-gpt");
    assert!(first["litellm_params"].get("api_key").is_none());
    assert!(first["model_info"]["id"]
        .as_str()
        .is_some_and(|id| id.len() == 64));
    let (_, _, unauth) = get(&gw.url("/model/info"), None).await;
    assert_envelope(&unauth);
}

#[actix_rt::test]
async fn health_routes() {
    let mock = Mock::start(&[]);
    let config = format!(
        r#"
model_list:
  - model_name: mock-gpt
    litellm_params: {{model: openai/mock-gpt, api_base: "{base}", api_key: sk-mock-upstream-secret-42}}
  - model_name: mock-embed
    litellm_params: {{model: openai/mock-embedding, api_base: "{base}", api_key: sk-mock-upstream-secret-42}}
    model_info: {{mode: embedding}}
  - model_name: broken
    litellm_params: {{model: openai/mock-fail-500, api_base: "{base}", api_key: sk-broken-upstream-secret}}
general_settings:
  master_key: {MASTER_KEY}
"#,
        base = mock.api_base()
    );
    let gw = Gateway::start(&config, &[], &[]);
    for path in ["/health/liveliness", "/health/liveness"] {
        let (status, _, body) = get(&gw.url(path), None).await;
        assert_eq!((status, body), (200, Value::String("I'm alive!".into())));
    }
    let (status, _, ready) = get(&gw.url("/health/readiness"), None).await;
    assert_eq!(status, 200);
    assert_eq!(ready["status"], "healthy");
    assert_eq!(
        ready["db"], "connected",
        "the embedded SQLite database: {ready}"
    );
    assert_eq!(ready["db_backend"], "sqlite");
    assert!(
        gw.dir.path().join("tollgate.db").exists(),
        "tollgate.db is created in the working directory"
    );
    assert!(ready["litellm_version"].is_string());

    let (status, _, body) = get(&gw.url("/health"), None).await;
    assert_eq!(status, 401, "{body}");
    let (status, _, body) = get(&gw.url("/health"), Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["healthy_count"], 2, "{body}");
    assert_eq!(body["unhealthy_count"], 1, "{body}");
    assert_eq!(body["unhealthy_endpoints"][0]["model_name"], "broken");
    assert!(body["unhealthy_endpoints"][0]["error"]
        .as_str()
        .is_some_and(|e| e.contains("500")));
    assert!(
        !body.to_string().contains("secret"),
        "no secrets in /health: {body}"
    );

    // Prometheus: the deployments' state as LiteLLM names it (the failed check is a partial outage).
    let (status, headers, metrics) = get_text(&gw.url("/metrics")).await;
    assert_eq!(status, 200, "{metrics}");
    assert!(headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/openmetrics-text")));
    let state_of = |group: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("litellm_deployment_state{")
                    && l.contains(&format!("litellm_model_name=\"{group}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_string)
    };
    assert_eq!(state_of("mock-gpt").as_deref(), Some("0"), "{metrics}");
    assert_eq!(state_of("broken").as_deref(), Some("1"), "{metrics}");
    assert!(
        metrics.contains("tollgate_rate_limits_shared 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tollgate_database_connected 1"),
        "{metrics}"
    );
    assert!(!metrics.contains("secret"), "{metrics}");
}

#[actix_rt::test]
async fn unknown_routes_get_the_envelope() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let (status, _, body) = get(&gw.url("/no/such/route"), Some(MASTER_KEY)).await;
    assert_eq!(status, 404);
    assert_envelope(&body);
}

#[actix_rt::test]
async fn hundreds_of_parallel_requests_all_succeed() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let url = gw.url("/v1/chat/completions");
    let calls = (0..400).map(|i| {
        let url = url.clone();
        async move {
            let mut body = chat("mock-gpt");
            body["stream"] = json!(i % 4 == 0);
            if i % 4 == 0 {
                let (status, _, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
                (status, text.ends_with("data: [DONE]\n\n"))
            } else {
                let (status, _, body) = post(&url, Some(MASTER_KEY), &body).await;
                (status, body["object"] == "chat.completion")
            }
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let failures: Vec<_> = results
        .iter()
        .enumerate()
        .filter(|(_, (s, ok))| *s != 200 || !ok)
        .collect();
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(mock.stats().await["total"], 400);
}
