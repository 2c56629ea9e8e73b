//! Behaviours LiteLLM's own proxy end-to-end tests expect (issue 19, part A), proved on
//! Tollgate itself: `/user/update` upserts, `/team/member_delete` of a non-member is a 400,
//! `/team/new` makes the creating user a team admin, the introspection routes
//! (`/health/readiness/details`, `/routes`, `/active/callbacks`, `/get/config/callbacks`) answer in
//! LiteLLM's shapes without secrets, and concurrent creates of one user, team member, key alias
//! and key answer 200 or a 400/409 in the OpenAI envelope, never a 500 or a database message.

mod common;

use common::*;
use serde_json::{json, Value};

fn config(database_url: Option<&str>) -> String {
    let mut c = format!("general_settings:\n  master_key: {MASTER_KEY}\n");
    if let Some(url) = database_url {
        c.push_str(&format!("  database_url: {url}\n"));
    }
    c
}

async fn admin(gw: &Gateway, path: &str, body: Value) -> (u16, Value) {
    send("POST", &gw.url(path), Some(MASTER_KEY), &body).await
}

async fn ok(gw: &Gateway, path: &str, body: Value) -> Value {
    let (status, resp) = admin(gw, path, body).await;
    assert_eq!(status, 200, "{path}: {resp}");
    resp
}

async fn ok_get(gw: &Gateway, path: &str, key: &str) -> Value {
    let (status, _, resp) = get(&gw.url(path), Some(key)).await;
    assert_eq!(status, 200, "{path}: {resp}");
    resp
}

/// No answer carries a database's own words.
fn assert_no_db_text(resp: &Value) {
    let text = resp.to_string().to_lowercase();
    for raw in [
        "duplicate key",
        "constraint",
        "sqlite",
        "postgres",
        "pkey",
        "diesel",
        "violates",
        "deadlock",
        "serialize",
    ] {
        assert!(
            !text.contains(raw),
            "a database message reached the client: {resp}"
        );
    }
}

#[actix_rt::test]
async fn user_update_creates_a_missing_user_like_litellm() {
    let gw = Gateway::start(&config(None), &[], &[]);
    let resp = ok(
        &gw,
        "/user/update",
        json!({"user_id": "upserted", "user_email": "up@example.com", "max_budget": 7.5, "user_role": "internal_user_viewer"}),
    )
    .await;
    assert_eq!(resp["user_id"], "upserted", "{resp}");
    let info = ok_get(&gw, "/user/info?user_id=upserted", MASTER_KEY).await;
    assert_eq!(info["user_info"]["user_email"], "up@example.com", "{info}");
    assert_eq!(info["user_info"]["max_budget"], 7.5, "{info}");
    assert_eq!(
        info["user_info"]["user_role"], "internal_user_viewer",
        "{info}"
    );
    assert_eq!(info["keys"], json!([]), "an upsert makes no key: {info}");
    // A second update changes the user now stored.
    ok(
        &gw,
        "/user/update",
        json!({"user_id": "upserted", "max_budget": 9}),
    )
    .await;
    let info = ok_get(&gw, "/user/info?user_id=upserted", MASTER_KEY).await;
    assert_eq!(info["user_info"]["max_budget"], 9.0, "{info}");
    assert_eq!(info["user_info"]["user_email"], "up@example.com", "{info}");

    // A user's own key cannot create another user through an update.
    let own = ok(&gw, "/user/new", json!({"user_id": "plain"})).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, resp) = send(
        "POST",
        &gw.url("/user/update"),
        Some(&own),
        &json!({"user_id": "ghost", "max_budget": 1}),
    )
    .await;
    assert_eq!(status, 403, "{resp}");
    let (status, _, _) = get(&gw.url("/user/info?user_id=ghost"), Some(MASTER_KEY)).await;
    assert_eq!(status, 404);
    // Without a user_id, an unknown email is still not found.
    let (status, resp) = admin(
        &gw,
        "/user/update",
        json!({"user_email": "nobody@example.com", "max_budget": 1}),
    )
    .await;
    assert_eq!(status, 404, "{resp}");
    assert_envelope(&resp);
}

#[actix_rt::test]
async fn team_member_delete_of_a_non_member_is_a_400_and_team_new_adds_its_creator() {
    let gw = Gateway::start(&config(None), &[], &[]);
    ok(
        &gw,
        "/team/new",
        json!({"team_id": "t-del", "members_with_roles": [{"user_id": "member-1", "role": "user"}]}),
    )
    .await;
    ok(&gw, "/user/new", json!({"user_id": "outsider"})).await;
    let (status, resp) = admin(
        &gw,
        "/team/member_delete",
        json!({"team_id": "t-del", "user_id": "outsider"}),
    )
    .await;
    assert_eq!(status, 400, "{resp}");
    assert_envelope(&resp);
    assert!(
        resp["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a member"),
        "{resp}"
    );
    // A real member still leaves with a 200.
    ok(
        &gw,
        "/team/member_delete",
        json!({"team_id": "t-del", "user_id": "member-1"}),
    )
    .await;

    // The master key belongs to no user: the team has only the members the body names.
    let team = ok(&gw, "/team/new", json!({"team_id": "t-master"})).await;
    assert_eq!(team["members_with_roles"], json!([]), "{team}");

    // A proxy admin user's key: that user becomes an admin of the team it creates.
    let boss = ok(
        &gw,
        "/user/new",
        json!({"user_id": "boss", "user_role": "proxy_admin"}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, team) = send(
        "POST",
        &gw.url("/team/new"),
        Some(&boss),
        &json!({"team_id": "t-boss", "members_with_roles": [{"user_id": "helper", "role": "user"}]}),
    )
    .await;
    assert_eq!(status, 200, "{team}");
    let members = team["members_with_roles"].as_array().unwrap();
    assert!(
        members
            .iter()
            .any(|m| m["user_id"] == "boss" && m["role"] == "admin"),
        "{team}"
    );
    assert!(
        members
            .iter()
            .any(|m| m["user_id"] == "helper" && m["role"] == "user"),
        "{team}"
    );
    assert_eq!(team["admins"], json!(["boss"]), "{team}");
    let info = ok_get(&gw, "/user/info?user_id=boss", MASTER_KEY).await;
    assert_eq!(info["user_info"]["teams"], json!(["t-boss"]), "{info}");
    // Listed by the body already: kept with the role the body gives.
    let (status, team) = send(
        "POST",
        &gw.url("/team/new"),
        Some(&boss),
        &json!({"team_id": "t-boss2", "members_with_roles": [{"user_id": "boss", "role": "user"}]}),
    )
    .await;
    assert_eq!(status, 200, "{team}");
    assert_eq!(
        team["members_with_roles"].as_array().unwrap().len(),
        1,
        "{team}"
    );
    assert_eq!(team["members_with_roles"][0]["role"], "user", "{team}");

    // A proxy admin user's UI session: the same.
    ok(
        &gw,
        "/user/new",
        json!({"user_id": "ui-boss", "user_role": "proxy_admin", "password": "a-long-ui-password-1"}),
    )
    .await;
    let (status, headers, login) = post(
        &gw.url("/ui/login"),
        None,
        &json!({"username": "ui-boss", "password": "a-long-ui-password-1"}),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let cookie = headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_string();
    let csrf = login["csrf_token"]
        .as_str()
        .expect("csrf_token")
        .to_string();
    let mut resp = client()
        .post(gw.url("/team/new"))
        .insert_header(("cookie", cookie))
        .insert_header(("x-csrf-token", csrf))
        .insert_header(("content-type", "application/json"))
        .send_body(json!({"team_id": "t-ui"}).to_string())
        .await
        .expect("request sent");
    assert_eq!(resp.status().as_u16(), 200);
    let team: Value = serde_json::from_slice(&resp.body().await.unwrap()).unwrap();
    assert_eq!(
        team["members_with_roles"],
        json!([{"user_id": "ui-boss", "user_email": null, "role": "admin"}]),
        "{team}"
    );
}

const LANGFUSE_SECRET: &str = "sk-lf-very-secret-langfuse-key-0001";
const SLACK_SECRET: &str = "http://127.0.0.1:9/services/T000/B000/slack-secret-token-42";

#[actix_rt::test]
async fn introspection_routes_answer_in_litellm_shapes_without_secrets() {
    let cfg = format!(
        "litellm_settings:\n  success_callback: [\"langfuse\"]\n  callbacks: [\"prometheus\"]\n\
         router_settings:\n  routing_strategy: least-busy\n  num_retries: 2\n  redis_password: not-shown-redis-pw\n\
         general_settings:\n  master_key: {MASTER_KEY}\n  alerting: [\"slack\"]\n  alert_types: [\"budget_alerts\"]\n"
    );
    let gw = Gateway::start(
        &cfg,
        &[],
        &[
            ("LANGFUSE_PUBLIC_KEY", "pk-lf-public-key-000001"),
            ("LANGFUSE_SECRET_KEY", LANGFUSE_SECRET),
            ("LANGFUSE_HOST", "http://127.0.0.1:9"),
            ("SLACK_WEBHOOK_URL", SLACK_SECRET),
        ],
    );
    let viewer = ok(
        &gw,
        "/key/generate",
        json!({"user_id": "someone", "models": []}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_string();

    // Readiness details: the readiness answer with the success callbacks; needs a key.
    let details = ok_get(&gw, "/health/readiness/details", &viewer).await;
    assert_eq!(details["status"], "healthy", "{details}");
    assert_eq!(details["db"], "connected", "{details}");
    assert!(details["litellm_version"].is_string(), "{details}");
    assert_eq!(
        details["success_callbacks"],
        json!(["langfuse", "prometheus"]),
        "{details}"
    );
    let (status, _, _) = get(&gw.url("/health/readiness/details"), None).await;
    assert_eq!(status, 401);

    // The route list.
    let routes = ok_get(&gw, "/routes", &viewer).await;
    let list = routes["routes"].as_array().expect("routes");
    let chat = list
        .iter()
        .find(|r| r["path"] == "/v1/chat/completions")
        .expect("chat route listed");
    assert_eq!(chat["methods"], json!(["POST"]), "{chat}");
    assert!(chat["name"].is_string() && chat["endpoint"].is_string());
    for p in [
        "/health/readiness/details",
        "/active/callbacks",
        "/get/config/callbacks",
    ] {
        assert!(list.iter().any(|r| r["path"] == p), "{p} listed");
    }

    // Active callbacks, by name.
    let active = ok_get(&gw, "/active/callbacks", &viewer).await;
    assert_eq!(active["litellm.success_callback"], json!(["langfuse"]));
    assert_eq!(active["litellm.callbacks"], json!(["prometheus"]));
    assert_eq!(active["num_callbacks"], 2, "{active}");
    assert_eq!(active["alerting"], json!(["slack"]), "{active}");
    assert_eq!(active["num_alerting"], 1, "{active}");
    assert!(active["all_litellm_callbacks"].is_array(), "{active}");

    // The callbacks' configuration: admin only, values masked.
    let (status, resp) = send(
        "GET",
        &gw.url("/get/config/callbacks"),
        Some(&viewer),
        &json!({}),
    )
    .await;
    assert_eq!(status, 403, "{resp}");
    let conf = ok_get(&gw, "/get/config/callbacks", MASTER_KEY).await;
    assert_eq!(conf["status"], "success", "{conf}");
    let langfuse = conf["callbacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "langfuse")
        .expect("langfuse listed")
        .clone();
    assert_eq!(langfuse["type"], "success", "{langfuse}");
    let secret = langfuse["variables"]["LANGFUSE_SECRET_KEY"]
        .as_str()
        .expect("set variables are shown masked");
    assert_ne!(secret, LANGFUSE_SECRET);
    let prometheus = conf["callbacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "prometheus")
        .expect("prometheus listed");
    assert_eq!(prometheus["type"], "success_and_failure");
    assert_eq!(conf["alerts"][0]["name"], "slack", "{conf}");
    assert_eq!(
        conf["alerts"][0]["active_alerts"],
        json!(["budget_alerts"]),
        "{conf}"
    );
    assert!(conf["alerts"][0]["variables"]["SLACK_WEBHOOK_URL"].is_string());
    assert_eq!(conf["router_settings"]["routing_strategy"], "least-busy");
    assert_eq!(conf["router_settings"]["num_retries"], 2);
    let text = conf.to_string();
    for secret in [
        LANGFUSE_SECRET,
        SLACK_SECRET,
        "slack-secret-token-42",
        "not-shown-redis-pw",
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {conf}");
    }
}

/// Ten parallel requests; each answers 200 or a 400/409 in the OpenAI envelope, never a 500 or a
/// database message. Returns how many answered 200.
async fn ten_at_once(gw: &Gateway, path: &str, body: impl Fn(usize) -> Value) -> usize {
    let calls = (0..10).map(|i| admin(gw, path, body(i)));
    let mut created = 0;
    for (status, resp) in futures_util::future::join_all(calls).await {
        assert_no_db_text(&resp);
        match status {
            200 => created += 1,
            400 | 409 => assert_envelope(&resp),
            other => panic!("{path}: {other} {resp}"),
        }
    }
    created
}

async fn concurrent_creates_never_leak_database_errors(gw: &Gateway) {
    // The same user, ten times: one is created.
    let n = ten_at_once(gw, "/user/new", |_| json!({"user_id": "same-user"})).await;
    assert_eq!(n, 1, "one /user/new creates the user");
    // The same user by upsert, ten times: every one answers (create or update).
    let n = ten_at_once(
        gw,
        "/user/update",
        |i| json!({"user_id": "same-upsert", "max_budget": i}),
    )
    .await;
    assert_eq!(n, 10, "parallel upserts all land");
    // The same new member of one team, ten times: one adds it.
    ok(gw, "/team/new", json!({"team_id": "race-team"})).await;
    let n = ten_at_once(
        gw,
        "/team/member_add",
        |_| json!({"team_id": "race-team", "member": {"user_id": "race-member", "role": "user"}}),
    )
    .await;
    assert_eq!(n, 1, "one member_add adds the member");
    // Ten teams naming the same new member: one user row, every team created.
    let n = ten_at_once(gw, "/team/new", |i| {
        json!({"team_id": format!("race-t{i}"), "members_with_roles": [{"user_id": "race-newbie", "role": "user"}]})
    })
    .await;
    assert_eq!(n, 10);
    // The same key alias, ten times: one key gets it.
    let n = ten_at_once(gw, "/key/generate", |_| json!({"key_alias": "race-alias"})).await;
    assert_eq!(n, 1, "one key holds the alias");
    // The same key, ten times: one is stored.
    let n = ten_at_once(
        gw,
        "/key/generate",
        |_| json!({"key": "sk-race-same-key-0123456789"}),
    )
    .await;
    assert_eq!(n, 1, "one key is stored");
    // The same team id, ten times.
    let n = ten_at_once(gw, "/team/new", |_| json!({"team_id": "race-same-team"})).await;
    assert_eq!(n, 1, "one team is created");
}

#[actix_rt::test]
async fn concurrent_creates_never_leak_database_errors_on_sqlite() {
    let gw = Gateway::start(&config(None), &[], &[]);
    concurrent_creates_never_leak_database_errors(&gw).await;
}

#[actix_rt::test]
async fn concurrent_creates_never_leak_database_errors_on_postgres() {
    let pg = FreshPostgres::create();
    let gw = Gateway::start(&config(Some(&pg.url)), &[], &[]);
    concurrent_creates_never_leak_database_errors(&gw).await;
}
