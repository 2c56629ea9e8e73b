//! Team-scoped models managed through the API, on the real binary and real PostgreSQL: a team's
//! admin adds (`/model/new` with `model_info.team_id`), updates and deletes the team's own
//! models; only that team's keys list and call them by their public name; their credentials are
//! sealed at rest and never shown. `/team/model/add|delete` change a team's `models`; `/models`
//! lists access groups on request.

mod common;

use common::*;
use serde_json::{json, Value};

const TEAM_SECRET: &str = "sk-team-provider-secret-777";

fn config(mock: &Mock, pg: &FreshPostgres) -> String {
    format!(
        r#"
model_list:
  - model_name: mock-gpt
    litellm_params:
      model: openai/mock-gpt
      api_base: {base}
      api_key: sk-mock-upstream-secret-42
    model_info:
      access_groups: ["beta-models"]
  - model_name: mock-other
    litellm_params:
      model: openai/mock-other
      api_base: {base}
      api_key: sk-mock-upstream-secret-42
    model_info:
      access_groups: ["prod-models"]
general_settings:
  master_key: {MASTER_KEY}
  database_url: {db}
"#,
        base = mock.api_base(),
        db = pg.url
    )
}

async fn admin(gw: &Gateway, path: &str, body: Value) -> Value {
    let (status, resp) = send("POST", &gw.url(path), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{path}: {resp}");
    resp
}

/// A user with its own key (no team), as `/user/new` creates it.
async fn user_key(gw: &Gateway, user_id: &str) -> String {
    admin(gw, "/user/new", json!({"user_id": user_id})).await["key"]
        .as_str()
        .expect("the user's key")
        .to_string()
}

async fn team_key(gw: &Gateway, team_id: &str) -> String {
    admin(gw, "/key/generate", json!({"team_id": team_id})).await["key"]
        .as_str()
        .unwrap()
        .to_string()
}

fn team_model(mock: &Mock, name: &str, team_id: Option<&str>) -> Value {
    let mut info = json!({"mode": "chat"});
    if let Some(t) = team_id {
        info["team_id"] = json!(t);
    }
    json!({
        "model_name": name,
        "litellm_params": {"model": "openai/mock-team", "api_base": mock.api_base(), "api_key": TEAM_SECRET},
        "model_info": info,
    })
}

async fn listed(gw: &Gateway, path: &str, key: &str) -> Vec<String> {
    let (status, _, body) = get(&gw.url(path), Some(key)).await;
    assert_eq!(status, 200, "{path}: {body}");
    assert_eq!(body["object"], "list", "{body}");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

/// The ids `/model/info` shows this key.
async fn info_ids(gw: &Gateway, key: &str) -> Vec<String> {
    let (status, _, body) = get(&gw.url("/model/info"), Some(key)).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.to_string().contains(TEAM_SECRET), "{body}");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model_info"]["id"].as_str().unwrap().to_string())
        .collect()
}

async fn team_models(gw: &Gateway, team_id: &str) -> Vec<String> {
    let (status, _, body) = get(
        &gw.url(&format!("/team/info?team_id={team_id}")),
        Some(MASTER_KEY),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["team_info"]["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect()
}

async fn chat_status(gw: &Gateway, key: &str, model: &str) -> (u16, Value) {
    let (status, _, body) = post(&gw.url("/v1/chat/completions"), Some(key), &chat(model)).await;
    (status, body)
}

/// The stored `litellm_params` column of a model, read straight from PostgreSQL.
fn stored_params(pg: &FreshPostgres, model_id: &str) -> String {
    let out = std::process::Command::new("psql")
        .args([
            pg.url.as_str(),
            "-qAtX",
            "-c",
            &format!("SELECT litellm_params FROM proxy_models WHERE model_id = '{model_id}'"),
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[actix_rt::test]
async fn a_team_admin_adds_updates_and_deletes_its_teams_own_model() {
    let mock = Mock::start(&[]);
    let pg = FreshPostgres::create();
    let gw = Gateway::start(&config(&mock, &pg), &[], &[]);

    let alice = user_key(&gw, "alice").await; // admin of red
    let bob = user_key(&gw, "bob").await; // plain member of red
    let carol = user_key(&gw, "carol").await; // admin of blue
    admin(
        &gw,
        "/team/new",
        json!({"team_id": "red", "models": ["mock-gpt"], "members_with_roles": [
            {"user_id": "alice", "role": "admin"}, {"user_id": "bob", "role": "user"}]}),
    )
    .await;
    admin(
        &gw,
        "/team/new",
        json!({"team_id": "blue", "members_with_roles": [{"user_id": "carol", "role": "admin"}]}),
    )
    .await;
    let new_url = gw.url("/model/new");

    // The team's admin adds a model for the team.
    let (status, _, created) = post(
        &new_url,
        Some(&alice),
        &team_model(&mock, "red-gpt", Some("red")),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let id = created["model_id"].as_str().unwrap().to_string();
    let internal = created["model_name"].as_str().unwrap().to_string();
    assert!(internal.starts_with("model_name_red_"), "{created}");
    assert_eq!(created["model_info"]["team_public_model_name"], "red-gpt");
    assert_eq!(created["model_info"]["team_id"], "red");
    assert!(!created.to_string().contains(TEAM_SECRET), "{created}");
    // Sealed at rest: neither the key nor the upstream model readable in the column.
    let column = stored_params(&pg, &id);
    assert!(!column.trim().is_empty());
    assert!(
        !column.contains(TEAM_SECRET) && !column.contains("mock-team"),
        "{column}"
    );
    // The public name joins the team's (restricting) model list.
    assert_eq!(team_models(&gw, "red").await, ["mock-gpt", "red-gpt"]);

    // Not for another team, not for everyone, not by a plain member; the team must exist.
    // Nor may a team's admin borrow the gateway's own credentials for an upstream of its choice:
    // an environment reference, or no key at all (the provider's key from the environment).
    let mut env_ref = team_model(&mock, "x", Some("red"));
    env_ref["litellm_params"]["api_key"] = json!("os.environ/OPENAI_API_KEY");
    let mut keyless = team_model(&mock, "x", Some("red"));
    keyless["litellm_params"]
        .as_object_mut()
        .unwrap()
        .remove("api_key");
    let refusals = [
        (&alice, team_model(&mock, "x", Some("blue")), 403),
        (&alice, team_model(&mock, "x", None), 403),
        (&bob, team_model(&mock, "x", Some("red")), 403),
        (&carol, team_model(&mock, "x", Some("red")), 403),
        (&alice, env_ref, 403),
        (&alice, keyless, 403),
    ];
    for (key, body, want) in &refusals {
        let (status, _, resp) = post(&new_url, Some(key), body).await;
        assert_eq!(status, *want, "{body}: {resp}");
        assert_eq!(resp["error"]["type"], "auth_error", "{resp}");
    }
    let (status, _, resp) = post(
        &new_url,
        Some(MASTER_KEY),
        &team_model(&mock, "x", Some("ghost")),
    )
    .await;
    assert_eq!(status, 400, "{resp}");
    assert_envelope(&resp);

    // The team's keys list it by its public name and call it with the stored credential.
    let red = team_key(&gw, "red").await;
    let blue = team_key(&gw, "blue").await;
    let solo = admin(&gw, "/key/generate", json!({})).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let red_lists = listed(&gw, "/v1/models", &red).await;
    assert!(red_lists.contains(&"red-gpt".to_string()), "{red_lists:?}");
    assert!(!red_lists.contains(&internal), "{red_lists:?}");
    assert!(info_ids(&gw, &red).await.contains(&id));
    let (status, _, single) = get(&gw.url("/v1/models/red-gpt"), Some(&red)).await;
    assert_eq!(
        (status, single["id"].clone()),
        (200, json!("red-gpt")),
        "{single}"
    );
    let (status, body) = chat_status(&gw, &red, "red-gpt").await;
    assert_eq!(status, 200, "{body}");
    let last = mock.last_request().await;
    assert_eq!(
        last["headers"]["authorization"],
        format!("Bearer {TEAM_SECRET}")
    );
    assert_eq!(mock.stats().await["by_model"]["mock-team"], 1);

    // Other teams' keys and keys without a team neither see nor call it.
    for key in [&blue, &solo] {
        let names = listed(&gw, "/v1/models", key).await;
        assert!(
            !names.contains(&"red-gpt".to_string()) && !names.contains(&internal),
            "{names:?}"
        );
        assert!(!info_ids(&gw, key).await.contains(&id));
        let (status, body) = chat_status(&gw, key, "red-gpt").await;
        assert_eq!(status, 400, "{body}");
        assert_envelope(&body);
        let (status, body) = chat_status(&gw, key, &internal).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["type"], "key_model_access_denied", "{body}");
        let (status, _, _) = get(&gw.url("/v1/models/red-gpt"), Some(key)).await;
        assert_ne!(status, 200);
    }
    assert_eq!(
        mock.stats().await["by_model"]["mock-team"],
        1,
        "nothing more reached the team's model"
    );
    // The internal name is listed to no one; proxy admins see the deployment in /model/info.
    assert!(!listed(&gw, "/v1/models", MASTER_KEY)
        .await
        .contains(&internal));
    assert!(info_ids(&gw, MASTER_KEY).await.contains(&id));

    // Updates: the team's admin may, others may not, and it cannot move to another team.
    let update_url = gw.url("/model/update");
    let (status, _, resp) = post(
        &update_url,
        Some(&alice),
        &json!({"model_id": id, "model_name": "red-gpt", "model_info": {"note": "tuned"}}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["model_name"], internal.as_str(), "{resp}");
    assert_eq!(resp["model_info"]["note"], "tuned");
    assert!(!resp.to_string().contains(TEAM_SECRET), "{resp}");
    for (key, body) in [
        (
            &carol,
            json!({"model_id": id, "model_info": {"note": "mine"}}),
        ),
        (
            &bob,
            json!({"model_id": id, "model_info": {"note": "mine"}}),
        ),
        (
            &alice,
            json!({"model_id": id, "model_info": {"team_id": "blue"}}),
        ),
        (
            &alice,
            json!({"model_id": id, "model_info": {"team_id": null}}),
        ),
        (
            &alice,
            json!({"model_id": id, "litellm_params": {"api_key": "os.environ/OPENAI_API_KEY"}}),
        ),
    ] {
        let (status, _, resp) = post(&update_url, Some(key), &body).await;
        assert_eq!(status, 403, "{body}: {resp}");
    }
    assert_eq!(chat_status(&gw, &red, "red-gpt").await.0, 200);

    // Deletes: not by another team's admin or a member, nor a model for everyone.
    let delete_url = gw.url("/model/delete");
    let global = admin(&gw, "/model/new", team_model(&mock, "global-gpt", None)).await;
    for (key, model) in [
        (&carol, id.as_str()),
        (&bob, id.as_str()),
        (&alice, global["model_id"].as_str().unwrap()),
    ] {
        let (status, _, resp) = post(&delete_url, Some(key), &json!({"id": model})).await;
        assert_eq!(status, 403, "{model}: {resp}");
    }
    let (status, _, resp) = post(&delete_url, Some(&alice), &json!({"id": id})).await;
    assert_eq!(status, 200, "{resp}");
    let (status, body) = chat_status(&gw, &red, "red-gpt").await;
    assert_ne!(status, 200, "{body}");
    assert!(!listed(&gw, "/v1/models", &red)
        .await
        .contains(&"red-gpt".to_string()));
    assert_eq!(team_models(&gw, "red").await, ["mock-gpt"]);
    assert!(stored_params(&pg, &id).trim().is_empty());
}

#[actix_rt::test]
async fn team_model_add_and_delete_change_a_teams_models() {
    let mock = Mock::start(&[]);
    let pg = FreshPostgres::create();
    let gw = Gateway::start(&config(&mock, &pg), &[], &[]);
    let gadmin = user_key(&gw, "gadmin").await;
    let gmember = user_key(&gw, "gmember").await;
    let outsider = user_key(&gw, "outsider").await;
    admin(
        &gw,
        "/team/new",
        json!({"team_id": "green", "models": ["mock-gpt"], "members_with_roles": [
            {"user_id": "gadmin", "role": "admin"}, {"user_id": "gmember", "role": "user"}]}),
    )
    .await;
    admin(&gw, "/team/new", json!({"team_id": "other", "members_with_roles": [{"user_id": "outsider", "role": "admin"}]})).await;
    let green = team_key(&gw, "green").await;
    let (status, body) = chat_status(&gw, &green, "mock-other").await;
    assert_eq!(status, 401, "{body}");

    let add = gw.url("/team/model/add");
    let (status, _, team) = post(
        &add,
        Some(&gadmin),
        &json!({"team_id": "green", "models": ["mock-other", "mock-gpt"]}),
    )
    .await;
    assert_eq!(status, 200, "{team}");
    assert_eq!(team["team_id"], "green");
    assert_eq!(team["models"], json!(["mock-gpt", "mock-other"]));
    assert_eq!(team_models(&gw, "green").await, ["mock-gpt", "mock-other"]);
    // The team's keys use the change at once.
    let (status, body) = chat_status(&gw, &green, "mock-other").await;
    assert_eq!(status, 200, "{body}");

    let delete = gw.url("/team/model/delete");
    for url in [&add, &delete] {
        for key in [&gmember, &outsider] {
            let (status, _, resp) = post(
                url,
                Some(key),
                &json!({"team_id": "green", "models": ["mock-other"]}),
            )
            .await;
            assert_eq!(status, 403, "{url}: {resp}");
            assert_eq!(resp["error"]["type"], "auth_error", "{resp}");
        }
        let (status, _, resp) = post(
            url,
            Some(MASTER_KEY),
            &json!({"team_id": "nope", "models": ["x"]}),
        )
        .await;
        assert_eq!(status, 404, "{resp}");
        let (status, _, resp) = post(url, Some(MASTER_KEY), &json!({"team_id": "green"})).await;
        assert_eq!(status, 400, "{resp}");
        assert_envelope(&resp);
    }
    assert_eq!(team_models(&gw, "green").await, ["mock-gpt", "mock-other"]);

    let (status, _, team) = post(
        &delete,
        Some(&gadmin),
        &json!({"team_id": "green", "models": ["mock-other"]}),
    )
    .await;
    assert_eq!(status, 200, "{team}");
    assert_eq!(team["models"], json!(["mock-gpt"]));
    let (status, body) = chat_status(&gw, &green, "mock-other").await;
    assert_eq!(status, 401, "{body}");
    // Proxy admins may change any team's models.
    let (status, _, team) = post(
        &add,
        Some(MASTER_KEY),
        &json!({"team_id": "other", "models": ["mock-gpt"]}),
    )
    .await;
    assert_eq!(status, 200, "{team}");
    assert_eq!(team_models(&gw, "other").await, ["mock-gpt"]);
}

#[actix_rt::test]
async fn models_lists_only_the_access_groups_a_caller_may_use() {
    let mock = Mock::start(&[]);
    let pg = FreshPostgres::create();
    let gw = Gateway::start(&config(&mock, &pg), &[], &[]);
    let beta = admin(&gw, "/key/generate", json!({"models": ["beta-models"]})).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let named = admin(&gw, "/key/generate", json!({"models": ["mock-gpt"]})).await["key"]
        .as_str()
        .unwrap()
        .to_string();

    for path in ["/models", "/v1/models"] {
        let only = format!("{path}?only_model_access_groups=True");
        assert_eq!(
            listed(&gw, &only, MASTER_KEY).await,
            ["beta-models", "prod-models"]
        );
        assert_eq!(listed(&gw, &only, &beta).await, ["beta-models"]);
        assert!(listed(&gw, &only, &named).await.is_empty());
    }
    // Without the flag no group is listed; with include_model_access_groups both kinds are.
    assert_eq!(
        listed(&gw, "/models", MASTER_KEY).await,
        ["mock-gpt", "mock-other"]
    );
    assert_eq!(listed(&gw, "/models", &beta).await, ["mock-gpt"]);
    assert_eq!(
        listed(&gw, "/models?include_model_access_groups=true", MASTER_KEY).await,
        ["beta-models", "mock-gpt", "mock-other", "prod-models"]
    );
    assert_eq!(
        listed(&gw, "/models?include_model_access_groups=True", &beta).await,
        ["beta-models", "mock-gpt"]
    );
}
