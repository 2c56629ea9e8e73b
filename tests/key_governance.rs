//! Key governance LiteLLM stores on keys and the gateway enforces: `key_type` (`llm_api`,
//! `management`, `read_only`), `litellm_settings.default_key_generate_params` and
//! `upperbound_key_generate_params`, and team-scoped models (`model_info.team_id`). Each with the
//! allowed and the refused case. (`allowed_routes`, `enforced_params` and
//! `allowed_cache_controls` are proven in `route_access.rs`, `security_authz.rs` and `cache.rs`.)

mod common;

use common::*;
use serde_json::{json, Value};

fn config(mock: &Mock, extra: &str) -> String {
    format!(
        r#"model_list:
  - model_name: good
    litellm_params: {{model: openai/mock-gpt, api_base: "{base}", api_key: sk-x}}
  - model_name: other
    litellm_params: {{model: openai/mock-gpt, api_base: "{base}", api_key: sk-x}}
  - model_name: red-model
    litellm_params: {{model: openai/mock-gpt, api_base: "{base}", api_key: sk-x}}
    model_info: {{team_id: red}}
general_settings:
  master_key: {MASTER_KEY}
{extra}"#,
        base = mock.api_base()
    )
}

async fn admin(gw: &Gateway, path: &str, body: Value) -> Value {
    let (status, _, resp) = post(&gw.url(path), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{path} {body}: {resp}");
    resp
}

async fn new_key(gw: &Gateway, body: Value) -> String {
    admin(gw, "/key/generate", body).await["key"]
        .as_str()
        .unwrap()
        .to_string()
}

fn gate_refused(status: u16, body: &Value) -> bool {
    status == 403
        && body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("may only call the routes"))
}

#[actix_rt::test]
async fn key_type_limits_a_key_to_its_route_group() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, ""), &[], &[]);
    admin(
        &gw,
        "/user/new",
        json!({"user_id": "u1", "user_role": "internal_user", "auto_create_key": false}),
    )
    .await;
    let mut keys = std::collections::HashMap::new();
    for key_type in ["llm_api", "management", "read_only", "default"] {
        let resp = admin(
            &gw,
            "/key/generate",
            json!({"user_id": "u1", "key_type": key_type}),
        )
        .await;
        let expected = match key_type {
            "llm_api" => json!(["llm_api_routes"]),
            "management" => json!(["management_routes"]),
            "read_only" => json!(["info_routes"]),
            _ => Value::Null,
        };
        let shown = match &resp["allowed_routes"] {
            Value::Array(a) if a.is_empty() => &Value::Null,
            other => other,
        };
        assert_eq!(shown, &expected, "{key_type}: {resp}");
        keys.insert(key_type, resp["key"].as_str().unwrap().to_string());
    }
    let chat_url = gw.url("/v1/chat/completions");
    let generate = |key: String| {
        let url = gw.url("/key/generate");
        async move {
            post(
                &url,
                Some(&key),
                &json!({"user_id": "u1", "key_type": "management"}),
            )
            .await
        }
    };
    let info = |key: String| {
        let url = gw.url("/key/info");
        async move { get(&url, Some(&key)).await }
    };

    // llm_api: the LLM routes only.
    let k = keys["llm_api"].clone();
    assert_eq!(post(&chat_url, Some(&k), &chat("good")).await.0, 200);
    let (s, _, b) = generate(k.clone()).await;
    assert!(gate_refused(s, &b), "{s} {b}");
    let (s, _, b) = info(k).await;
    assert!(gate_refused(s, &b), "{s} {b}");

    // management: the management routes, not the LLM ones.
    let k = keys["management"].clone();
    let (s, _, b) = generate(k.clone()).await;
    assert_eq!(s, 200, "{b}");
    let (s, _, b) = post(&chat_url, Some(&k), &chat("good")).await;
    assert!(gate_refused(s, &b), "{s} {b}");

    // read_only: the info routes only.
    let k = keys["read_only"].clone();
    let (s, _, b) = info(k.clone()).await;
    assert_eq!(s, 200, "{b}");
    let (s, _, b) = post(&chat_url, Some(&k), &chat("good")).await;
    assert!(gate_refused(s, &b), "{s} {b}");
    let (s, _, b) = generate(k).await;
    assert!(gate_refused(s, &b), "{s} {b}");

    // default: no limit from the type.
    let k = keys["default"].clone();
    assert_eq!(post(&chat_url, Some(&k), &chat("good")).await.0, 200);
    assert_eq!(generate(k).await.0, 200);

    // Not a key type: refused.
    let (s, _, b) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"key_type": "superuser"}),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"]["param"], "key_type", "{b}");
}

#[actix_rt::test]
async fn default_and_upperbound_key_generate_params() {
    let mock = Mock::start(&[]);
    let extra = r#"litellm_settings:
  default_key_generate_params:
    max_budget: 1.5
    models: ["good"]
    metadata: {"setting": "default"}
  upperbound_key_generate_params:
    max_budget: 10
    rpm_limit: 100
    duration: 1d
"#;
    let gw = Gateway::start(&config(&mock, extra), &[], &[]);
    assert!(
        !gw.proc.logs().contains("default_key_generate_params"),
        "no warning that the keys do nothing: {}",
        gw.proc.logs()
    );

    // Left out: the defaults, and the bounds for what has no default.
    let key = admin(&gw, "/key/generate", json!({})).await;
    assert_eq!(key["max_budget"], 1.5, "{key}");
    assert_eq!(key["models"], json!(["good"]), "{key}");
    assert_eq!(key["metadata"]["setting"], "default", "{key}");
    assert_eq!(key["rpm_limit"], 100, "{key}");
    let lived = millis(&key["expires"]) - millis(&key["created_at"]);
    assert!((lived - 86_400_000).abs() < 5_000, "{lived}");
    // The default models hold on the LLM routes.
    let k = key["key"].as_str().unwrap();
    let url = gw.url("/v1/chat/completions");
    assert_eq!(post(&url, Some(k), &chat("good")).await.0, 200);
    assert_eq!(post(&url, Some(k), &chat("other")).await.0, 401);

    // Within the bounds: what the body says.
    let key = admin(
        &gw,
        "/key/generate",
        json!({"max_budget": 5, "models": ["other"], "rpm_limit": 50, "duration": "12h"}),
    )
    .await;
    assert_eq!(key["max_budget"], 5.0, "{key}");
    assert_eq!(key["models"], json!(["other"]), "{key}");
    assert_eq!(key["rpm_limit"], 50, "{key}");

    // Above a bound: refused, for the master key too.
    for (field, value) in [
        ("max_budget", json!(20)),
        ("rpm_limit", json!(1000)),
        ("duration", json!("2d")),
        ("duration", json!("1mo")),
    ] {
        let mut body = json!({});
        body[field] = value.clone();
        let (status, _, resp) = post(&gw.url("/key/generate"), Some(MASTER_KEY), &body).await;
        assert_eq!(status, 400, "{field}={value}: {resp}");
        assert_eq!(resp["error"]["param"], field, "{resp}");
        assert!(
            resp["error"]["message"]
                .as_str()
                .unwrap()
                .contains("upperbound_key_generate_params"),
            "{resp}"
        );
    }
}

#[actix_rt::test]
async fn team_scoped_models_are_for_their_team_only() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, ""), &[], &[]);
    for team in ["red", "blue"] {
        admin(&gw, "/team/new", json!({"team_id": team})).await;
    }
    let red = new_key(&gw, json!({"team_id": "red"})).await;
    let blue = new_key(&gw, json!({"team_id": "blue"})).await;
    let solo = new_key(&gw, json!({})).await;
    let url = gw.url("/v1/chat/completions");

    // The team's keys (and the master key) may call it.
    for key in [red.as_str(), MASTER_KEY] {
        let (status, _, resp) = post(&url, Some(key), &chat("red-model")).await;
        assert_eq!(status, 200, "{resp}");
    }
    // Other teams' keys and keys without a team may not, before anything is sent upstream.
    let before = mock.stats().await["total"].as_u64().unwrap();
    for key in [&blue, &solo] {
        let (status, _, resp) = post(&url, Some(key), &chat("red-model")).await;
        assert_eq!(status, 401, "{resp}");
        assert_eq!(resp["error"]["type"], "key_model_access_denied", "{resp}");
        // Open models stay open to them.
        assert_eq!(post(&url, Some(key), &chat("good")).await.0, 200);
    }
    assert_eq!(mock.stats().await["total"].as_u64().unwrap(), before + 2);

    // Nor can they reach it as a fallback.
    let mut body = chat("good");
    body["mock_testing_fallbacks"] = json!(true);
    body["fallbacks"] = json!(["red-model"]);
    let (status, _, resp) = post(&url, Some(&blue), &body).await;
    assert_ne!(status, 200, "{resp}");
    let (status, headers, resp) = post(&url, Some(&red), &body).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        headers
            .get("x-litellm-model-group")
            .and_then(|v| v.to_str().ok()),
        Some("red-model")
    );

    // Listed for the team only.
    let listed = |key: String| {
        let u = gw.url("/v1/models");
        async move {
            get(&u, Some(&key)).await.2["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert!(listed(red.clone()).await.contains(&"red-model".to_string()));
    let blue_sees = listed(blue.clone()).await;
    assert!(
        !blue_sees.contains(&"red-model".to_string()),
        "{blue_sees:?}"
    );
    assert!(blue_sees.contains(&"good".to_string()), "{blue_sees:?}");
}
