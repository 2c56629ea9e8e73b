//! Virtual keys end to end on the real binary: generation, use, model restrictions and aliases,
//! update, block, expiry, delete, regenerate, listing; persistence across a restart; no plaintext
//! key in the database; concurrent creation; known keys keep working while the database is down.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn keys_config(mock: &Mock, extra: &str) -> String {
    format!("{}{extra}", basic_config(mock))
}

async fn generate(gw: &Gateway, body: Value) -> Value {
    let (status, _, resp) = post(&gw.url("/key/generate"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{resp}");
    resp
}

async fn chat_as(gw: &Gateway, key: &str, model: &str) -> (u16, Value) {
    let (status, _, body) = post(&gw.url("/v1/chat/completions"), Some(key), &chat(model)).await;
    (status, body)
}

#[actix_rt::test]
async fn key_lifecycle() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&keys_config(&mock, ""), &[], &[]);
    let created = generate(&gw, json!({"key_alias": "search-team", "models": ["mock-gpt"], "metadata": {"owner": "search"}, "aliases": {"fast": "mock-gpt"}})).await;
    let key = created["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("sk-"));
    assert_eq!(created["token"].as_str().unwrap().len(), 64);
    assert_ne!(created["token"], created["key"]);
    assert_eq!(created["token_id"], created["token"]);
    assert_eq!(created["metadata"]["owner"], "search");
    assert_eq!(
        created["key_name"],
        format!("sk-...{}", &key[key.len() - 4..])
    );
    assert!(created["created_at"].is_string() && created["expires"].is_null());

    // It works for its model, and through its alias.
    assert_eq!(chat_as(&gw, &key, "mock-gpt").await.0, 200);
    assert_eq!(chat_as(&gw, &key, "fast").await.0, 200);
    // Another model: refused, naming what it may use.
    let (status, body) = chat_as(&gw, &key, "mock-embed").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["type"], "key_model_access_denied");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mock-gpt"),
        "{body}"
    );
    // /models shows only what it may use.
    let (_, _, models) = get(&gw.url("/v1/models"), Some(&key)).await;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["mock-gpt"]);

    // /key/info by key, by token, and of the calling key itself.
    let (status, _, info) = get(&gw.url(&format!("/key/info?key={key}")), Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["info"]["key_alias"], "search-team");
    assert!(info["info"].get("token").is_none());
    let token = created["token"].as_str().unwrap();
    assert_eq!(
        get(&gw.url(&format!("/key/info?key={token}")), Some(MASTER_KEY))
            .await
            .0,
        200
    );
    let (status, _, own) = get(&gw.url("/key/info"), Some(&key)).await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["info"]["key_alias"], "search-team");

    // Update: widen models; explicit null clears metadata.
    let (status, _, updated) = post(
        &gw.url("/key/update"),
        Some(MASTER_KEY),
        &json!({"key": key, "models": ["mock-gpt", "mock-embed"], "metadata": null, "rpm_limit": 10}),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["rpm_limit"], 10);
    assert_eq!(updated["metadata"], json!({}));
    let (status, _, _) = post(
        &gw.url("/v1/embeddings"),
        Some(&key),
        &json!({"model": "mock-embed", "input": "hi"}),
    )
    .await;
    assert_eq!(status, 200, "the update takes effect at once");

    // Block, unblock.
    let (status, _, _) = post(
        &gw.url("/key/block"),
        Some(MASTER_KEY),
        &json!({"key": key}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = chat_as(&gw, &key, "mock-gpt").await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("blocked"),
        "{body}"
    );
    post(
        &gw.url("/key/unblock"),
        Some(MASTER_KEY),
        &json!({"key": key}),
    )
    .await;
    assert_eq!(chat_as(&gw, &key, "mock-gpt").await.0, 200);

    // Regenerate: the old key stops working, the new one works with the same settings.
    let (status, _, regenerated) = post(
        &gw.url(&format!("/key/{key}/regenerate")),
        Some(MASTER_KEY),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{regenerated}");
    let new_key = regenerated["key"].as_str().unwrap().to_string();
    assert_ne!(new_key, key);
    assert_eq!(regenerated["key_alias"], "search-team");
    assert_eq!(chat_as(&gw, &key, "mock-gpt").await.0, 401);
    assert_eq!(chat_as(&gw, &new_key, "mock-gpt").await.0, 200);

    // Delete.
    let (status, _, deleted) = post(
        &gw.url("/key/delete"),
        Some(MASTER_KEY),
        &json!({"keys": [new_key]}),
    )
    .await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["deleted_keys"], json!([new_key]));
    let (status, body) = chat_as(&gw, &new_key, "mock-gpt").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        get(
            &gw.url(&format!("/key/info?key={new_key}")),
            Some(MASTER_KEY)
        )
        .await
        .0,
        404
    );
}

#[actix_rt::test]
async fn expired_keys_and_bad_requests() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&keys_config(&mock, ""), &[], &[]);
    let created = generate(&gw, json!({"duration": "1s"})).await;
    let key = created["key"].as_str().unwrap();
    assert!(created["expires"].is_string());
    assert_eq!(chat_as(&gw, key, "mock-gpt").await.0, 200);
    actix_rt::time::sleep(Duration::from_millis(1300)).await;
    let (status, body) = chat_as(&gw, key, "mock-gpt").await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Expired Key"),
        "{body}"
    );

    for bad in [
        json!({"duration": "soon"}),
        json!({"models": "gpt-4"}),
        json!({"rpm_limit": -1}),
        json!({"key": "not-a-key"}),
    ] {
        let (status, _, body) = post(&gw.url("/key/generate"), Some(MASTER_KEY), &bad).await;
        assert_eq!(status, 400, "{bad} → {body}");
        assert_envelope(&body);
    }
    // Duplicate alias.
    generate(&gw, json!({"key_alias": "dup"})).await;
    let (status, _, _) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"key_alias": "dup"}),
    )
    .await;
    assert_eq!(status, 400);
    // Unknown key: 401, never 500.
    assert_eq!(
        chat_as(&gw, "sk-not-a-key-that-exists-000", "mock-gpt")
            .await
            .0,
        401
    );
}

#[actix_rt::test]
async fn a_key_manages_only_what_it_owns_and_never_grants_more_than_it_has() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&keys_config(&mock, ""), &[], &[]);
    let parent = generate(
        &gw,
        json!({"user_id": "alice", "models": ["mock-gpt"], "rpm_limit": 10}),
    )
    .await;
    let parent_key = parent["key"].as_str().unwrap().to_string();
    let other = generate(&gw, json!({"user_id": "bob"})).await;
    let other_key = other["key"].as_str().unwrap().to_string();

    // alice may create a narrower key for herself…
    let (status, _, child) = post(
        &gw.url("/key/generate"),
        Some(&parent_key),
        &json!({"models": ["mock-gpt"], "rpm_limit": 5}),
    )
    .await;
    assert_eq!(status, 200, "{child}");
    assert_eq!(child["user_id"], "alice");
    // …but not a wider one, nor one for bob.
    for body in [
        json!({"models": ["mock-gpt", "mock-embed"], "rpm_limit": 5}),
        json!({"models": ["mock-gpt"], "rpm_limit": 50}),
        json!({"models": ["mock-gpt"]}),
        json!({"models": ["mock-gpt"], "rpm_limit": 5, "user_id": "bob"}),
        json!({"models": ["mock-gpt"], "rpm_limit": 5, "spend": 0}),
    ] {
        let (status, _, resp) = post(&gw.url("/key/generate"), Some(&parent_key), &body).await;
        assert_eq!(status, 403, "{body} → {resp}");
    }
    // She can read and update her own keys, not bob's; she cannot block.
    assert_eq!(
        get(
            &gw.url(&format!("/key/info?key={other_key}")),
            Some(&parent_key)
        )
        .await
        .0,
        403
    );
    let (status, _, _) = post(
        &gw.url("/key/update"),
        Some(&parent_key),
        &json!({"key": other_key, "metadata": {"x": 1}}),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) = post(
        &gw.url("/key/update"),
        Some(&parent_key),
        &json!({"key": child["key"], "metadata": {"x": 1}}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = post(
        &gw.url("/key/update"),
        Some(&parent_key),
        &json!({"key": child["key"], "user_id": "bob"}),
    )
    .await;
    assert_eq!(status, 403, "no mass assignment of ownership");
    let (status, _, _) = post(
        &gw.url("/key/block"),
        Some(&parent_key),
        &json!({"key": other_key}),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) = post(
        &gw.url("/key/delete"),
        Some(&parent_key),
        &json!({"keys": [other_key]}),
    )
    .await;
    assert_eq!(status, 403);
    // Listing shows only hers.
    let (status, _, listed) = get(&gw.url("/key/list"), Some(&parent_key)).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["total_count"], 2);
    assert_eq!(
        get(&gw.url("/key/list?user_id=bob"), Some(&parent_key))
            .await
            .0,
        403
    );
    let (_, _, all) = get(
        &gw.url("/key/list?return_full_object=true&size=100"),
        Some(MASTER_KEY),
    )
    .await;
    assert_eq!(all["total_count"], 3);
    assert!(all["keys"][0]["token"].is_string());
}

#[actix_rt::test]
async fn keys_persist_across_a_restart_and_the_database_holds_no_plaintext_key() {
    let mock = Mock::start(&[]);
    let db_dir = tempfile::tempdir().unwrap();
    let db_path = db_dir.path().join("keys.db");
    let cfg = keys_config(
        &mock,
        &format!("  database_url: sqlite:///{}\n", db_path.display()),
    );
    let key = {
        let gw = Gateway::start(&cfg, &[], &[]);
        let created = generate(&gw, json!({"key_alias": "persisted"})).await;
        created["key"].as_str().unwrap().to_string()
    };
    let gw = Gateway::start(&cfg, &[], &[]);
    assert_eq!(
        chat_as(&gw, &key, "mock-gpt").await.0,
        200,
        "the key survives a restart"
    );
    drop(gw);
    for entry in std::fs::read_dir(db_dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
            "plaintext key found in the database files"
        );
    }
}

#[actix_rt::test]
async fn concurrent_key_creation() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&keys_config(&mock, ""), &[], &[]);
    let url = gw.url("/key/generate");
    let results = futures_util::future::join_all((0..40).map(|i| {
        let url = url.clone();
        async move {
            post(
                &url,
                Some(MASTER_KEY),
                &json!({"key_alias": format!("k{i}")}),
            )
            .await
        }
    }))
    .await;
    let mut keys: Vec<String> = results
        .iter()
        .map(|(status, _, body)| {
            assert_eq!(*status, 200, "{body}");
            body["key"].as_str().unwrap().to_string()
        })
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 40);
    let (_, _, listed) = get(&gw.url("/key/list?size=100"), Some(MASTER_KEY)).await;
    assert_eq!(listed["total_count"], 40);
    assert_eq!(listed["total_pages"], 1);
}

#[actix_rt::test]
async fn known_keys_keep_working_while_postgres_is_down_and_unknown_keys_get_503() {
    let mock = Mock::start(&[]);
    let pg = FreshPostgres::create();
    let cfg = keys_config(&mock, &format!("  database_url: {}\n", pg.url));
    let gw = Gateway::start(&cfg, &[], &[]);
    let (_, _, ready) = get(&gw.url("/health/readiness"), None).await;
    assert_eq!(
        (ready["db"].as_str(), ready["db_backend"].as_str()),
        (Some("connected"), Some("postgres"))
    );
    let created = generate(&gw, json!({})).await;
    let key = created["key"].as_str().unwrap().to_string();
    assert_eq!(chat_as(&gw, &key, "mock-gpt").await.0, 200);
    // Take the database away.
    drop(pg);
    for _ in 0..5 {
        assert_eq!(
            chat_as(&gw, &key, "mock-gpt").await.0,
            200,
            "a cached key keeps working"
        );
    }
    let (status, body) = chat_as(&gw, "sk-never-seen-key-0123456789", "mock-gpt").await;
    assert_eq!(status, 503, "{body}");
    assert_envelope(&body);
    // The master key still works; the management API says the database is unavailable.
    assert_eq!(chat_as(&gw, MASTER_KEY, "mock-gpt").await.0, 200);
    let (status, _, body) = post(&gw.url("/key/generate"), Some(MASTER_KEY), &json!({})).await;
    assert!(status == 503 || status == 500, "{status} {body}");
}

#[actix_rt::test]
async fn access_groups_wildcards_and_team_models() {
    let mock = Mock::start(&[]);
    let cfg = format!(
        r#"model_list:
  - model_name: beta-gpt
    litellm_params: {{model: openai/beta-gpt, api_base: {base}, api_key: sk-x}}
    model_info: {{access_groups: ["beta"]}}
  - model_name: openai/*
    litellm_params: {{model: openai/*, api_base: {base}, api_key: sk-x}}
  - model_name: mock-gpt
    litellm_params: {{model: openai/mock-gpt, api_base: {base}, api_key: sk-x}}
general_settings:
  master_key: {MASTER_KEY}
"#,
        base = mock.api_base()
    );
    let gw = Gateway::start(&cfg, &[], &[]);

    // An access group grants the models that list it.
    let beta = generate(&gw, json!({"models": ["beta"]})).await;
    let beta = beta["key"].as_str().unwrap();
    assert_eq!(chat_as(&gw, beta, "beta-gpt").await.0, 200);
    assert_eq!(chat_as(&gw, beta, "mock-gpt").await.0, 401);
    let (_, _, info) = get(&gw.url("/model/info"), Some(beta)).await;
    let names: Vec<&str> = info["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["model_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["beta-gpt"],
        "/model/info shows only what the key may use"
    );

    // A wildcard grants a provider's models.
    let wild = generate(&gw, json!({"models": ["openai/*"]})).await;
    let wild = wild["key"].as_str().unwrap();
    assert_eq!(chat_as(&gw, wild, "openai/some-model").await.0, 200);
    assert_eq!(chat_as(&gw, wild, "mock-gpt").await.0, 401);

    // A key without models of its own takes its team's.
    let (status, _, _) = post(
        &gw.url("/team/new"),
        Some(MASTER_KEY),
        &json!({"team_id": "t1", "models": ["mock-gpt"]}),
    )
    .await;
    assert_eq!(status, 200);
    let team_key = generate(&gw, json!({"team_id": "t1"})).await;
    let team_key = team_key["key"].as_str().unwrap();
    assert_eq!(chat_as(&gw, team_key, "mock-gpt").await.0, 200);
    let (status, body) = chat_as(&gw, team_key, "beta-gpt").await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("team"),
        "{body}"
    );
}

#[actix_rt::test]
async fn a_key_allowed_a_group_may_use_its_router_aliases() {
    let mock = Mock::start(&[]);
    let cfg = keys_config(
        &mock,
        "router_settings:\n  model_group_alias: {gpt-3.5-turbo: mock-gpt}\n",
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    let created = generate(&gw, json!({"models": ["mock-gpt"]})).await;
    let key = created["key"].as_str().unwrap();
    assert_eq!(chat_as(&gw, key, "gpt-3.5-turbo").await.0, 200);
    let (_, _, models) = get(&gw.url("/v1/models"), Some(key)).await;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gpt-3.5-turbo", "mock-gpt"]);
    assert_eq!(chat_as(&gw, key, "mock-embed").await.0, 401);
}
