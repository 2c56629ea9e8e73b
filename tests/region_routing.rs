//! Region routing (LiteLLM's region-based routing): deployments have a region (`region_name`,
//! else the provider's), a key's or end user's `allowed_model_region` keeps its requests on
//! deployments in that region (fallbacks included), and every response names the serving
//! deployment's region in `x-litellm-model-region`.

mod common;

use common::*;
use serde_json::{json, Value};

/// One mock; each deployment asks it for its own model name, so `/mock/stats` tells which served.
fn config(mock: &Mock, pg: &FreshPostgres) -> String {
    format!(
        r#"
model_list:
  - model_name: regional-gpt
    litellm_params:
      model: openai/mock-gpt-eu
      api_base: {base}
      api_key: sk-mock-upstream
      region_name: eu
    model_info: {{id: eu-deployment}}
  - model_name: regional-gpt
    litellm_params:
      model: openai/mock-gpt-us
      api_base: {base}
      api_key: sk-mock-upstream
      region_name: us-east-1
    model_info: {{id: us-deployment}}
  - model_name: regional-embed
    litellm_params:
      model: openai/mock-embed-eu
      api_base: {base}
      api_key: sk-mock-upstream
      region_name: eu-west-3
    model_info: {{id: eu-embed, mode: embedding}}
  - model_name: regional-embed
    litellm_params:
      model: openai/mock-embed-us
      api_base: {base}
      api_key: sk-mock-upstream
      region_name: us
    model_info: {{id: us-embed, mode: embedding}}
  - model_name: us-only-gpt
    litellm_params:
      model: openai/mock-gpt-us-only
      api_base: {base}
      api_key: sk-mock-upstream
      region_name: us
  - model_name: us-only-gpt
    litellm_params:
      model: openai/mock-gpt-nowhere
      api_base: {base}
      api_key: sk-mock-upstream
  - model_name: us-then-regional
    litellm_params:
      model: openai/mock-gpt-us-first
      api_base: {base}
      api_key: sk-mock-upstream
      region_name: us
router_settings:
  fallbacks: [{{"us-then-regional": ["regional-gpt"]}}]
general_settings:
  master_key: {MASTER_KEY}
  database_url: {db}
"#,
        base = mock.api_base(),
        db = pg.url,
    )
}

async fn admin_ok(gw: &Gateway, path: &str, body: Value) -> Value {
    let (status, _, resp) = post(&gw.url(path), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{path}: {resp}");
    resp
}

fn chat_for(model: &str, user: &str) -> Value {
    json!({"model": model, "user": user, "messages": [{"role": "user", "content": "Hey!"}]})
}

fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Calls per upstream model since the last reset, and reset.
async fn served(mock: &Mock) -> Value {
    let stats = mock.stats().await;
    post(&format!("{}/mock/reset", mock.proc.url), None, &json!({})).await;
    stats["by_model"].clone()
}

async fn start() -> (Mock, FreshPostgres, Gateway) {
    let mock = Mock::start(&[]);
    let pg = FreshPostgres::create();
    let gw = Gateway::start(&config(&mock, &pg), &[], &[]);
    admin_ok(
        &gw,
        "/customer/new",
        json!({"user_id": "eu-customer", "allowed_model_region": "eu"}),
    )
    .await;
    admin_ok(
        &gw,
        "/end_user/new",
        json!({"user_id": "us-customer", "allowed_model_region": "us"}),
    )
    .await;
    admin_ok(
        &gw,
        "/customer/new",
        json!({"user_id": "anywhere-customer"}),
    )
    .await;
    (mock, pg, gw)
}

#[actix_rt::test]
async fn an_end_users_allowed_model_region_keeps_every_request_in_that_region() {
    let (mock, _pg, gw) = start().await;
    // LiteLLM's own end-to-end test: a generated key restricted to the model, the end user in
    // the body.
    let key = admin_ok(&gw, "/key/generate", json!({"models": ["regional-gpt"]})).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    const CALLS: usize = 20;
    for (user, region, deployment, upstream) in [
        ("eu-customer", "eu", "eu-deployment", "mock-gpt-eu"),
        ("us-customer", "us", "us-deployment", "mock-gpt-us"),
    ] {
        for _ in 0..CALLS {
            let (status, headers, body) = post(
                &gw.url("/v1/chat/completions"),
                Some(&key),
                &chat_for("regional-gpt", user),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(header(&headers, "x-litellm-model-region"), Some(region));
            assert_eq!(header(&headers, "x-litellm-model-id"), Some(deployment));
            assert_eq!(body["model"], upstream, "{body}");
        }
        assert_eq!(served(&mock).await, json!({ (upstream): CALLS }), "{user}");
    }

    // The end user named by LiteLLM's header instead of the body.
    for _ in 0..5 {
        let (status, headers, _) = post_raw(
            &gw.url("/v1/chat/completions"),
            Some(MASTER_KEY),
            chat("regional-gpt").to_string(),
            &[("x-litellm-end-user-id", "eu-customer")],
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "x-litellm-model-region"), Some("eu"));
    }
    assert_eq!(served(&mock).await, json!({"mock-gpt-eu": 5}));

    // Unrestricted end users (and requests with no end user) are served by both deployments, and
    // each response names the region of the one that served it.
    let mut regions = std::collections::BTreeSet::new();
    for i in 0..40 {
        let body = if i % 2 == 0 {
            chat_for("regional-gpt", "anywhere-customer")
        } else {
            chat("regional-gpt")
        };
        let (status, headers, body) =
            post(&gw.url("/v1/chat/completions"), Some(MASTER_KEY), &body).await;
        assert_eq!(status, 200, "{body}");
        let region = header(&headers, "x-litellm-model-region")
            .unwrap()
            .to_string();
        let expected = if body["model"] == "mock-gpt-eu" {
            "eu"
        } else {
            "us"
        };
        assert_eq!(region, expected, "{body}");
        regions.insert(region);
    }
    assert_eq!(regions.into_iter().collect::<Vec<_>>(), ["eu", "us"]);

    // An end user's region changed: the next request follows it.
    admin_ok(
        &gw,
        "/customer/update",
        json!({"user_id": "eu-customer", "allowed_model_region": "us"}),
    )
    .await;
    served(&mock).await;
    let (status, headers, _) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat_for("regional-gpt", "eu-customer"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-litellm-model-region"), Some("us"));
    assert_eq!(served(&mock).await, json!({"mock-gpt-us": 1}));
}

#[actix_rt::test]
async fn the_region_header_is_on_streams_completions_and_embeddings() {
    let (mock, _pg, gw) = start().await;
    for _ in 0..5 {
        let mut body = chat_for("regional-gpt", "eu-customer");
        body["stream"] = json!(true);
        let (status, headers, text) =
            stream_text(&gw.url("/v1/chat/completions"), Some(MASTER_KEY), &body).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(header(&headers, "x-litellm-model-region"), Some("eu"));
        let events = sse_data(&text);
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
        let first: Value = serde_json::from_str(&events[0]).unwrap();
        assert_eq!(first["model"], "mock-gpt-eu", "{text}");
    }
    let (status, headers, body) = post(
        &gw.url("/v1/completions"),
        Some(MASTER_KEY),
        &json!({"model": "regional-gpt", "user": "us-customer", "prompt": "Hey"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-litellm-model-region"), Some("us"));
    for (user, region) in [("eu-customer", "eu"), ("us-customer", "us")] {
        for _ in 0..5 {
            let (status, headers, body) = post(
                &gw.url("/v1/embeddings"),
                Some(MASTER_KEY),
                &json!({"model": "regional-embed", "user": user, "input": "hello"}),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(header(&headers, "x-litellm-model-region"), Some(region));
        }
    }
    assert_eq!(
        served(&mock).await,
        json!({"mock-gpt-eu": 5, "mock-gpt-us": 1, "mock-embed-eu": 5, "mock-embed-us": 5})
    );
}

#[actix_rt::test]
async fn a_region_with_no_deployment_is_refused_and_never_reaches_another_region() {
    let (mock, _pg, gw) = start().await;
    // `us-only-gpt` has a us deployment and one with no known region: neither serves eu.
    for stream in [false, true] {
        let mut body = chat_for("us-only-gpt", "eu-customer");
        body["stream"] = json!(stream);
        let (status, headers, resp) =
            post(&gw.url("/v1/chat/completions"), Some(MASTER_KEY), &body).await;
        assert_eq!(status, 400, "{resp}");
        assert_envelope(&resp);
        assert_eq!(resp["error"]["type"], "invalid_request_error");
        let message = resp["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("us-only-gpt") && message.contains("region 'eu'"),
            "{message}"
        );
        assert!(header(&headers, "x-litellm-model-region").is_none());
    }
    assert_eq!(mock.stats().await["total"], 0);
    // The us end user and unrestricted callers are served by the group.
    let (status, headers, _) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat_for("us-only-gpt", "us-customer"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-litellm-model-region"), Some("us"));
    assert_eq!(served(&mock).await, json!({"mock-gpt-us-only": 1}));

    // A fallback chain stays in the region too: the eu end user skips the us group and is served
    // by the fallback's eu deployment, never by its us one.
    for _ in 0..10 {
        let (status, headers, body) = post(
            &gw.url("/v1/chat/completions"),
            Some(MASTER_KEY),
            &chat_for("us-then-regional", "eu-customer"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(header(&headers, "x-litellm-model-region"), Some("eu"));
        assert_eq!(header(&headers, "x-litellm-attempted-fallbacks"), Some("1"));
        assert_eq!(
            header(&headers, "x-litellm-model-group"),
            Some("regional-gpt")
        );
    }
    assert_eq!(served(&mock).await, json!({"mock-gpt-eu": 10}));
}

#[actix_rt::test]
async fn model_info_shows_each_deployments_region() {
    let (_mock, _pg, gw) = start().await;
    let (status, _, info) = get(&gw.url("/model/info"), Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{info}");
    let entry = |id: &str| {
        info["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["model_info"]["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} in {info}"))
    };
    let eu = entry("eu-deployment");
    assert_eq!(eu["litellm_params"]["region_name"], "eu");
    assert_eq!(eu["model_info"]["region"], "eu");
    let us = entry("us-deployment");
    assert_eq!(us["litellm_params"]["region_name"], "us-east-1");
    assert_eq!(us["model_info"]["region"], "us");
    let embed = entry("eu-embed");
    assert_eq!(embed["model_info"]["region"], "eu");
}

#[actix_rt::test]
async fn a_keys_allowed_model_region_keeps_its_requests_in_that_region() {
    let (mock, _pg, gw) = start().await;
    let eu_key = admin_ok(
        &gw,
        "/key/generate",
        json!({"models": ["regional-gpt", "us-only-gpt", "us-then-regional"], "allowed_model_region": "eu"}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    served(&mock).await;
    const CALLS: usize = 12;
    for _ in 0..CALLS {
        // No end user: the key's region alone decides.
        let (status, headers, body) = post(
            &gw.url("/v1/chat/completions"),
            Some(&eu_key),
            &json!({"model": "regional-gpt", "messages": [{"role": "user", "content": "Hey!"}]}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(header(&headers, "x-litellm-model-region"), Some("eu"));
    }
    // An end user with no region of its own keeps the key's.
    let (status, _, body) = post(
        &gw.url("/v1/chat/completions"),
        Some(&eu_key),
        &chat_for("regional-gpt", "anywhere-customer"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Fallbacks stay in the key's region: the us-only group falls back to the eu deployment.
    let (status, headers, body) = post(
        &gw.url("/v1/chat/completions"),
        Some(&eu_key),
        &json!({"model": "us-then-regional", "messages": [{"role": "user", "content": "Hey!"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-litellm-model-region"), Some("eu"));
    let by_model = served(&mock).await;
    assert_eq!(
        by_model["mock-gpt-eu"].as_u64(),
        Some(CALLS as u64 + 2),
        "{by_model}"
    );
    assert!(by_model.get("mock-gpt-us").is_none(), "{by_model}");
    assert!(by_model.get("mock-gpt-us-first").is_none(), "{by_model}");

    // A group with no deployment in the key's region: 400, and nothing goes upstream.
    let (status, _, body) = post(
        &gw.url("/v1/chat/completions"),
        Some(&eu_key),
        &json!({"model": "us-only-gpt", "messages": [{"role": "user", "content": "Hey!"}]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // The key's region and the end user's disagree: no deployment can serve both.
    let (status, _, body) = post(
        &gw.url("/v1/chat/completions"),
        Some(&eu_key),
        &chat_for("regional-gpt", "us-customer"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("region"),
        "{body}"
    );
    let by_model = served(&mock).await;
    assert!(
        by_model.as_object().is_none_or(|m| m.is_empty()),
        "{by_model}"
    );
}

#[actix_rt::test]
async fn a_keys_region_is_validated_admin_only_and_kept_by_keys_it_mints() {
    let (_mock, _pg, gw) = start().await;
    let (status, _, body) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"allowed_model_region": "mars"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "allowed_model_region", "{body}");

    admin_ok(
        &gw,
        "/user/new",
        json!({"user_id": "eu-user", "auto_create_key": false}),
    )
    .await;
    let generated = admin_ok(
        &gw,
        "/key/generate",
        json!({"user_id": "eu-user", "allowed_model_region": "eu"}),
    )
    .await;
    let key = generated["key"].as_str().unwrap().to_string();
    let (status, _, info) = get(&gw.url("/key/info"), Some(&key)).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["info"]["allowed_model_region"], "eu", "{info}");

    // Its holder cannot lift the restriction.
    let (status, _, body) = post(
        &gw.url("/key/update"),
        Some(&key),
        &json!({"key": key, "allowed_model_region": null}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // Nor escape it through a new key of its own.
    let (status, _, body) = post(
        &gw.url("/key/generate"),
        Some(&key),
        &json!({"user_id": "eu-user"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allowed_model_region"),
        "{body}"
    );
    let (status, _, body) = post(
        &gw.url("/key/generate"),
        Some(&key),
        &json!({"user_id": "eu-user", "allowed_model_region": "eu"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[actix_rt::test]
async fn a_keys_region_holds_on_pass_through_routes_too() {
    let (mock, _pg, gw) = start().await;
    let eu_key = admin_ok(
        &gw,
        "/key/generate",
        json!({"models": ["regional-gpt", "us-only-gpt", "openai/gpt-4o"], "allowed_model_region": "eu"}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    served(&mock).await;
    let chat =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "Hey!"}]});
    // The group's deployment in the key's region lends its credential.
    let (status, _, body) = post(
        &gw.url("/openai/v1/chat/completions"),
        Some(&eu_key),
        &chat("regional-gpt"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(mock.last_request().await["body"]["model"], "mock-gpt-eu");
    // A group with nothing in the region, and a model only the environment credential would
    // serve (its region unknown): refused before anything is sent.
    for model in ["us-only-gpt", "openai/gpt-4o"] {
        let (status, _, body) = post(
            &gw.url("/openai/v1/chat/completions"),
            Some(&eu_key),
            &chat(model),
        )
        .await;
        assert_eq!(status, 400, "{model}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("region 'eu'"),
            "{body}"
        );
    }
    let by_model = served(&mock).await;
    assert_eq!(by_model["mock-gpt-eu"].as_u64(), Some(1), "{by_model}");
    assert!(by_model.get("mock-gpt-us-only").is_none(), "{by_model}");
}
