//! Models stored in the database (`/model/new`, `/model/update`, `/model/delete`) on the real
//! binary: callable at once, listed without their credentials, updated and deleted live, still
//! served after a restart, sealed at rest, admin only, and picked up by a second instance sharing
//! the database.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const PROVIDER_SECRET: &str = "sk-db-provider-secret-123";

fn new_model_body(mock: &Mock, name: &str, upstream: &str, id: Option<&str>) -> Value {
    let mut info = json!({"mode": "chat"});
    if let Some(id) = id {
        info["id"] = json!(id);
    }
    json!({
        "model_name": name,
        "litellm_params": {"model": format!("openai/{upstream}"), "api_base": mock.api_base(), "api_key": PROVIDER_SECRET},
        "model_info": info,
    })
}

async fn add_model(gw: &Gateway, body: &Value) -> Value {
    let (status, _, resp) = post(&gw.url("/model/new"), Some(MASTER_KEY), body).await;
    assert_eq!(status, 200, "{resp}");
    resp
}

async fn chat_status(gw: &Gateway, model: &str) -> (u16, Value) {
    let (status, _, body) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat(model),
    )
    .await;
    (status, body)
}

async fn model_names(gw: &Gateway) -> Vec<String> {
    let (status, _, body) = get(&gw.url("/v1/models"), Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{body}");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

fn sharing_config(mock: &Mock, db_dir: &std::path::Path) -> String {
    let db = db_dir.join("tollgate.db");
    format!(
        "{}  database_url: sqlite:///{}\n",
        basic_config(mock),
        db.display()
    )
}

async fn by_model(mock: &Mock, model: &str) -> u64 {
    mock.stats().await["by_model"][model].as_u64().unwrap_or(0)
}

#[actix_rt::test]
async fn add_call_list_update_delete() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);

    let created = add_model(&gw, &new_model_body(&mock, "db-gpt", "mock-db-a", None)).await;
    let id = created["model_id"].as_str().expect("model_id").to_string();
    assert!(!id.is_empty());
    assert_eq!(created["model_name"], "db-gpt");
    assert_eq!(created["model_info"]["id"], id.as_str());
    assert_eq!(created["model_info"]["db_model"], true);
    assert_eq!(created["litellm_params"]["model"], "openai/mock-db-a");
    assert!(
        !created.to_string().contains(PROVIDER_SECRET),
        "secret in response: {created}"
    );

    // Callable at once, with the stored credential.
    let (status, body) = chat_status(&gw, "db-gpt").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(by_model(&mock, "mock-db-a").await, 1);
    let last = mock.last_request().await;
    assert_eq!(
        last["headers"]["authorization"],
        format!("Bearer {PROVIDER_SECRET}")
    );

    // Listed, without the key.
    assert!(model_names(&gw).await.contains(&"db-gpt".to_string()));
    let (status, _, info) = get(&gw.url("/model/info"), Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{info}");
    assert!(!info.to_string().contains(PROVIDER_SECRET), "{info}");
    let entries = info["data"].as_array().unwrap();
    let db_entry = entries
        .iter()
        .find(|e| e["model_name"] == "db-gpt")
        .expect("db model in /model/info");
    assert_eq!(db_entry["model_info"]["id"], id.as_str());
    assert_eq!(db_entry["model_info"]["db_model"], true);
    assert_eq!(db_entry["litellm_params"]["model"], "openai/mock-db-a");
    let config_entry = entries
        .iter()
        .find(|e| e["model_name"] == "mock-gpt")
        .unwrap();
    assert_eq!(config_entry["model_info"]["db_model"], false);
    let (_, _, single) = get(
        &gw.url(&format!("/model/info?litellm_model_id={id}")),
        Some(MASTER_KEY),
    )
    .await;
    assert_eq!(single["data"].as_array().unwrap().len(), 1, "{single}");

    // Update: the new upstream model is used at once; the stored key is kept.
    let (status, _, updated) = post(
        &gw.url("/model/update"),
        Some(MASTER_KEY),
        &json!({"model_id": id, "litellm_params": {"model": "openai/mock-db-b"}}),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["litellm_params"]["model"], "openai/mock-db-b");
    assert!(!updated.to_string().contains(PROVIDER_SECRET));
    let (status, body) = chat_status(&gw, "db-gpt").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(by_model(&mock, "mock-db-b").await, 1);
    assert_eq!(by_model(&mock, "mock-db-a").await, 1);
    assert_eq!(
        mock.last_request().await["headers"]["authorization"],
        format!("Bearer {PROVIDER_SECRET}")
    );

    // Rename through PATCH /model/{id}/update (model_info.id stays).
    let (status, _, renamed) = client_patch(
        &gw.url(&format!("/model/{id}/update")),
        &json!({"model_name": "db-gpt-2", "model_info": {"team": "search"}}),
    )
    .await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["model_info"]["team"], "search");
    let names = model_names(&gw).await;
    assert!(names.contains(&"db-gpt-2".to_string()) && !names.contains(&"db-gpt".to_string()));

    // Unknown ids.
    let (status, _, body) = post(
        &gw.url("/model/update"),
        Some(MASTER_KEY),
        &json!({"model_id": "no-such-model", "model_name": "x"}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, _, body) = post(
        &gw.url("/model/delete"),
        Some(MASTER_KEY),
        &json!({"id": "no-such-model"}),
    )
    .await;
    assert_eq!(status, 404, "{body}");

    // Sealed at rest.
    let bytes = database_bytes(gw.dir.path());
    assert!(!contains(&bytes, PROVIDER_SECRET), "secret stored in clear");
    assert!(
        !contains(&bytes, "mock-db-b"),
        "litellm_params stored in clear"
    );

    // Delete: gone at once.
    let (status, _, body) = post(
        &gw.url("/model/delete"),
        Some(MASTER_KEY),
        &json!({"id": id}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], format!("Model: {id} deleted successfully"));
    let (status, body) = chat_status(&gw, "db-gpt-2").await;
    assert!(status == 400 || status == 404, "{status} {body}");
    assert!(!model_names(&gw).await.contains(&"db-gpt-2".to_string()));
    assert!(
        !gw.proc.logs().contains(PROVIDER_SECRET),
        "secret in the gateway log"
    );
}

async fn client_patch(url: &str, body: &Value) -> (u16, Headers, Value) {
    let mut resp = client()
        .patch(url)
        .insert_header(("content-type", "application/json"))
        .insert_header(("authorization", format!("Bearer {MASTER_KEY}")))
        .send_body(body.to_string())
        .await
        .expect("request sent");
    let status = resp.status().as_u16();
    let bytes = resp.body().await.expect("body");
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, resp.headers().clone(), value)
}

#[actix_rt::test]
async fn bad_bodies_are_refused() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    for body in [
        json!({"litellm_params": {"model": "openai/x"}}),
        json!({"model_name": "x"}),
        json!({"model_name": "x", "litellm_params": {"api_key": "k"}}),
        json!({"model_name": "x", "litellm_params": "openai/x"}),
    ] {
        let (status, _, resp) = post(&gw.url("/model/new"), Some(MASTER_KEY), &body).await;
        assert_eq!(status, 400, "{body} → {resp}");
        assert_envelope(&resp);
    }
    // The same id twice.
    let body = new_model_body(&mock, "db-dup", "mock-db-a", Some("dup-id"));
    add_model(&gw, &body).await;
    let (status, _, resp) = post(&gw.url("/model/new"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 400, "{resp}");
}

#[actix_rt::test]
async fn only_proxy_admins_manage_models() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let (status, _, key) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"models": []}),
    )
    .await;
    assert_eq!(status, 200, "{key}");
    let key = key["key"].as_str().unwrap().to_string();
    let created = add_model(&gw, &new_model_body(&mock, "db-gpt", "mock-db-a", None)).await;
    let id = created["model_id"].as_str().unwrap();

    let (status, _, body) = post(
        &gw.url("/model/new"),
        Some(&key),
        &new_model_body(&mock, "evil", "mock-db-a", None),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = post(
        &gw.url("/model/update"),
        Some(&key),
        &json!({"model_id": id, "litellm_params": {"api_base": "http://attacker.invalid"}}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = post(&gw.url("/model/delete"), Some(&key), &json!({"id": id})).await;
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = post(
        &gw.url("/model/new"),
        None,
        &new_model_body(&mock, "evil", "mock-db-a", None),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(!model_names(&gw).await.contains(&"evil".to_string()));
    // The key can still call the model (it may use every model).
    let (status, _, body) =
        post(&gw.url("/v1/chat/completions"), Some(&key), &chat("db-gpt")).await;
    assert_eq!(status, 200, "{body}");
}

#[actix_rt::test]
async fn stored_models_survive_a_restart_and_need_the_same_salt_key() {
    let mock = Mock::start(&[]);
    let first = Gateway::start(&basic_config(&mock), &[], &[]);
    add_model(
        &first,
        &new_model_body(&mock, "db-gpt", "mock-db-a", Some("db-fixed-id")),
    )
    .await;
    let Gateway { proc, dir } = first;
    drop(proc);

    // Same database, same master key: served as before, with the same deployment id.
    let second = Gateway::start(&sharing_config(&mock, dir.path()), &[], &[]);
    let (status, body) = chat_status(&second, "db-gpt").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(by_model(&mock, "mock-db-a").await, 1);
    let (_, _, info) = get(
        &second.url("/model/info?litellm_model_id=db-fixed-id"),
        Some(MASTER_KEY),
    )
    .await;
    assert_eq!(info["data"][0]["model_info"]["db_model"], true, "{info}");
    drop(second);

    // Another salt key cannot open it: the model is skipped, the config's models still work,
    // and the log names the model but never the secret.
    let third = Gateway::start(
        &sharing_config(&mock, dir.path()),
        &[],
        &[("LITELLM_SALT_KEY", "a-different-salt-key-0123456789")],
    );
    let (status, body) = chat_status(&third, "db-gpt").await;
    assert!(status == 400 || status == 404, "{status} {body}");
    let (status, body) = chat_status(&third, "mock-gpt").await;
    assert_eq!(status, 200, "{body}");
    let logs = third.proc.logs();
    assert!(
        logs.contains("db-fixed-id") && logs.contains("cannot be opened"),
        "{logs}"
    );
    assert!(!logs.contains(PROVIDER_SECRET));
}

#[actix_rt::test]
async fn a_second_instance_picks_up_changes_within_the_reload_interval() {
    let mock = Mock::start(&[]);
    let a = Gateway::start(&basic_config(&mock), &[], &[]);
    let b = Gateway::start(&sharing_config(&mock, a.dir.path()), &[], &[]);
    let (status, _) = chat_status(&b, "db-shared").await;
    assert_eq!(status, 400);

    add_model(&a, &new_model_body(&mock, "db-shared", "mock-db-a", None)).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = chat_status(&b, "db-shared").await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "instance B never served the model: {status} {body}"
        );
        actix_rt::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(model_names(&b).await.contains(&"db-shared".to_string()));
}
