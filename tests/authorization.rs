//! Every management route × every role, table-driven. Each row names the roles allowed; every
//! other role must get 403, and a request without a key 401. "Allowed" means not refused: the
//! status is neither 401 nor 403 (a missing id may still answer 400 or 404).

mod common;

use common::*;
use serde_json::{json, Value};

/// The callers: the master key, then one user per `user_role` with its auto-created key.
const ROLES: &[&str] = &[
    "master",
    "proxy_admin",
    "proxy_admin_viewer",
    "internal_user",
    "internal_user_viewer",
    "team",
    "customer",
];

/// The response cache in memory, so its admin routes answer.
const CACHE: &str = "litellm_settings:\n  cache: true\n";

const ADMIN: &[&str] = &["master", "proxy_admin"];
const READ_ALL: &[&str] = &["master", "proxy_admin", "proxy_admin_viewer"];
const MANAGEMENT: &[&str] = &[
    "master",
    "proxy_admin",
    "proxy_admin_viewer",
    "internal_user",
    "internal_user_viewer",
];
const WRITERS: &[&str] = &["master", "proxy_admin", "internal_user"];

struct Row {
    method: &'static str,
    path: String,
    body: Value,
    allowed: &'static [&'static str],
}

fn row(method: &'static str, path: &str, body: Value, allowed: &'static [&'static str]) -> Row {
    Row {
        method,
        path: path.to_string(),
        body,
        allowed,
    }
}

async fn admin(gw: &Gateway, method: &str, path: &str, body: Value) -> Value {
    let (status, resp) = send(method, &gw.url(path), Some(MASTER_KEY), &body).await;
    assert!(status == 200, "{method} {path} → {status} {resp}");
    resp
}

/// [`send`], except that an event stream that opens (`GET /logs/stream`) is not read: it never
/// ends, and its status is all the table checks.
async fn send_once(method: &str, url: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
    if !url.contains("/logs/stream") {
        return send(method, url, key, body).await;
    }
    let mut req = client().get(url);
    if let Some(k) = key {
        req = req.insert_header(("authorization", format!("Bearer {k}")));
    }
    let mut resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    if status == 200 {
        return (status, Value::Null);
    }
    let bytes = resp.body().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A key the master owns, created fresh (destructive rows get their own).
async fn fresh_key(gw: &Gateway) -> String {
    admin(gw, "POST", "/key/generate", json!({})).await["key"]
        .as_str()
        .unwrap()
        .to_string()
}

#[actix_rt::test]
async fn every_management_route_for_every_role_on_sqlite() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&format!("{}{CACHE}", basic_config(&mock)), &[], &[]);
    every_route_for_every_role(&mock, &gw).await;
}

#[actix_rt::test]
async fn every_management_route_for_every_role_on_postgres() {
    let mock = Mock::start(&[]);
    let pg = FreshPostgres::create();
    let gw = Gateway::start(
        &format!("{}  database_url: {}\n{CACHE}", basic_config(&mock), pg.url),
        &[],
        &[],
    );
    let (_, _, ready) = get(&gw.url("/health/readiness"), None).await;
    assert_eq!(ready["db_backend"], "postgres");
    every_route_for_every_role(&mock, &gw).await;
}

async fn every_route_for_every_role(mock: &Mock, gw: &Gateway) {
    // One user (and key) per role.
    let mut keys: Vec<(&str, String)> = vec![("master", MASTER_KEY.to_string())];
    for role in &ROLES[1..] {
        let created = admin(
            gw,
            "POST",
            "/user/new",
            json!({"user_id": format!("u-{role}"), "user_role": role}),
        )
        .await;
        keys.push((
            role,
            created["key"]
                .as_str()
                .expect("auto-created key")
                .to_string(),
        ));
    }
    // Fixtures owned by the admin.
    admin(
        gw,
        "POST",
        "/user/new",
        json!({"user_id": "victim", "auto_create_key": false}),
    )
    .await;
    admin(
        gw,
        "POST",
        "/team/new",
        json!({"team_id": "fixture-team", "team_alias": "fixture"}),
    )
    .await;
    let org = admin(
        gw,
        "POST",
        "/organization/new",
        json!({"organization_alias": "fixture-org"}),
    )
    .await;
    let org_id = org["organization_id"].as_str().unwrap().to_string();
    admin(
        gw,
        "POST",
        "/customer/new",
        json!({"user_id": "fixture-customer"}),
    )
    .await;
    admin(
        gw,
        "POST",
        "/budget/new",
        json!({"budget_id": "fixture-budget", "max_budget": 10}),
    )
    .await;
    let fixture_key = fresh_key(gw).await;

    let mut checked = 0;
    for (role, key) in &keys {
        // Rows are rebuilt per caller so destructive rows act on objects of their own.
        let victim_key = fresh_key(gw).await;
        let suffix = role.replace('_', "-");
        admin(
            gw,
            "POST",
            "/user/new",
            json!({"user_id": format!("doomed-{suffix}"), "auto_create_key": false}),
        )
        .await;
        admin(
            gw,
            "POST",
            "/team/new",
            json!({"team_id": format!("doomed-team-{suffix}")}),
        )
        .await;
        let doomed_org = admin(
            gw,
            "POST",
            "/organization/new",
            json!({"organization_alias": format!("doomed-{suffix}")}),
        )
        .await;
        admin(
            gw,
            "POST",
            "/customer/new",
            json!({"user_id": format!("doomed-customer-{suffix}")}),
        )
        .await;
        admin(
            gw,
            "POST",
            "/budget/new",
            json!({"budget_id": format!("doomed-budget-{suffix}")}),
        )
        .await;
        let model = admin(
            gw,
            "POST",
            "/model/new",
            json!({"model_name": format!("doomed-model-{suffix}"), "litellm_params": {"model": "openai/mock-gpt", "api_base": mock.api_base(), "api_key": "sk-x"}}),
        )
        .await;
        let model_id = model["model_id"].as_str().unwrap().to_string();

        let rows = vec![
            // keys
            row("POST", "/key/generate", json!({}), WRITERS),
            row("GET", "/key/info", json!({}), MANAGEMENT),
            row(
                "GET",
                &format!("/key/info?key={fixture_key}"),
                json!({}),
                READ_ALL,
            ),
            row("GET", "/key/list", json!({}), MANAGEMENT),
            row(
                "POST",
                "/key/update",
                json!({"key": fixture_key, "metadata": {"by": role}}),
                ADMIN,
            ),
            row("POST", "/key/block", json!({"key": fixture_key}), ADMIN),
            row("POST", "/key/unblock", json!({"key": fixture_key}), ADMIN),
            row("POST", "/key/regenerate", json!({"key": victim_key}), ADMIN),
            row(
                "POST",
                "/key/delete",
                json!({"keys": [fresh_key(gw).await]}),
                ADMIN,
            ),
            // users
            row(
                "POST",
                "/user/new",
                json!({"auto_create_key": false}),
                ADMIN,
            ),
            row("GET", "/user/info?user_id=victim", json!({}), READ_ALL),
            row("GET", "/user/list", json!({}), READ_ALL),
            row(
                "POST",
                "/user/update",
                json!({"user_id": "victim", "metadata": {"by": role}}),
                ADMIN,
            ),
            row(
                "POST",
                "/user/delete",
                json!({"user_ids": [format!("doomed-{suffix}")]}),
                ADMIN,
            ),
            // teams
            row("POST", "/team/new", json!({}), ADMIN),
            row(
                "GET",
                "/team/info?team_id=fixture-team",
                json!({}),
                READ_ALL,
            ),
            row("GET", "/team/list", json!({}), MANAGEMENT),
            row(
                "POST",
                "/team/update",
                json!({"team_id": "fixture-team", "metadata": {"by": role}}),
                ADMIN,
            ),
            row(
                "POST",
                "/team/member_add",
                json!({"team_id": "fixture-team", "member": {"user_id": "victim", "role": "user"}}),
                ADMIN,
            ),
            row(
                "POST",
                "/team/member_delete",
                json!({"team_id": "fixture-team", "user_id": "victim"}),
                ADMIN,
            ),
            row(
                "POST",
                "/team/block",
                json!({"team_id": "fixture-team"}),
                ADMIN,
            ),
            row(
                "POST",
                "/team/unblock",
                json!({"team_id": "fixture-team"}),
                ADMIN,
            ),
            row(
                "POST",
                "/team/delete",
                json!({"team_ids": [format!("doomed-team-{suffix}")]}),
                ADMIN,
            ),
            // organizations
            row(
                "POST",
                "/organization/new",
                json!({"organization_alias": "x"}),
                ADMIN,
            ),
            row(
                "GET",
                &format!("/organization/info?organization_id={org_id}"),
                json!({}),
                READ_ALL,
            ),
            row("GET", "/organization/list", json!({}), READ_ALL),
            row(
                "PATCH",
                "/organization/update",
                json!({"organization_id": org_id, "metadata": {"by": role}}),
                ADMIN,
            ),
            row(
                "POST",
                "/organization/member_add",
                json!({"organization_id": org_id, "member": {"user_id": "victim", "role": "internal_user"}}),
                ADMIN,
            ),
            row(
                "PATCH",
                "/organization/member_update",
                json!({"organization_id": org_id, "user_id": "victim", "role": "internal_user_viewer"}),
                ADMIN,
            ),
            row(
                "DELETE",
                "/organization/member_delete",
                json!({"organization_id": org_id, "user_id": "victim"}),
                ADMIN,
            ),
            row(
                "DELETE",
                "/organization/delete",
                json!({"organization_ids": [doomed_org["organization_id"]]}),
                ADMIN,
            ),
            // customers / end users
            row(
                "POST",
                "/customer/new",
                json!({"user_id": format!("c-{suffix}")}),
                ADMIN,
            ),
            row(
                "GET",
                "/customer/info?end_user_id=fixture-customer",
                json!({}),
                READ_ALL,
            ),
            row(
                "GET",
                "/end_user/info?end_user_id=fixture-customer",
                json!({}),
                READ_ALL,
            ),
            row("GET", "/customer/list", json!({}), READ_ALL),
            row(
                "POST",
                "/customer/update",
                json!({"user_id": "fixture-customer", "alias": role}),
                ADMIN,
            ),
            row(
                "POST",
                "/customer/block",
                json!({"user_ids": ["fixture-customer"]}),
                ADMIN,
            ),
            row(
                "POST",
                "/customer/unblock",
                json!({"user_ids": ["fixture-customer"]}),
                ADMIN,
            ),
            row(
                "POST",
                "/end_user/delete",
                json!({"user_ids": [format!("doomed-customer-{suffix}")]}),
                ADMIN,
            ),
            // budgets
            row("POST", "/budget/new", json!({}), ADMIN),
            row(
                "POST",
                "/budget/info",
                json!({"budgets": ["fixture-budget"]}),
                READ_ALL,
            ),
            row("GET", "/budget/list", json!({}), READ_ALL),
            row(
                "POST",
                "/budget/update",
                json!({"budget_id": "fixture-budget", "max_budget": 20}),
                ADMIN,
            ),
            row(
                "POST",
                "/budget/delete",
                json!({"id": format!("doomed-budget-{suffix}")}),
                ADMIN,
            ),
            // models in the database
            row(
                "POST",
                "/model/new",
                json!({"model_name": "m", "litellm_params": {"model": "openai/x", "api_base": mock.api_base()}}),
                ADMIN,
            ),
            row(
                "POST",
                "/model/update",
                json!({"model_id": model_id, "model_info": {"note": role}}),
                ADMIN,
            ),
            row("POST", "/model/delete", json!({"id": model_id}), ADMIN),
            // spend
            row("GET", "/spend/logs", json!({}), READ_ALL),
            row("GET", "/global/spend", json!({}), READ_ALL),
            row("GET", "/global/spend/report", json!({}), READ_ALL),
            row("GET", "/global/spend/keys", json!({}), READ_ALL),
            row("GET", "/global/spend/teams", json!({}), READ_ALL),
            row("GET", "/global/spend/models", json!({}), READ_ALL),
            row("GET", "/spend/tags", json!({}), READ_ALL),
            // health
            row("GET", "/health", json!({}), ADMIN),
            // the response cache
            row("GET", "/cache/ping", json!({}), ADMIN),
            row("GET", "/cache/redis/info", json!({}), ADMIN),
            row("POST", "/cache/delete", json!({"keys": ["nothing"]}), ADMIN),
            row("POST", "/cache/flushall", json!({}), ADMIN),
            // live log tailing (a stream: only its status is read)
            row("GET", "/logs/stream", json!({}), ADMIN),
        ];
        for r in &rows {
            let (status, body) = send_once(r.method, &gw.url(&r.path), Some(key), &r.body).await;
            if r.allowed.contains(role) {
                assert!(
                    status != 401 && status != 403,
                    "{role} must be allowed {} {}: {status} {body}",
                    r.method,
                    r.path
                );
            } else {
                assert_eq!(
                    status, 403,
                    "{role} must be refused {} {}: {body}",
                    r.method, r.path
                );
                assert_eq!(body["error"]["type"], "auth_error", "{body}");
            }
            if *role == "master" {
                let (status, body) = send_once(r.method, &gw.url(&r.path), None, &r.body).await;
                assert_eq!(status, 401, "no key: {} {}: {body}", r.method, r.path);
            }
            checked += 1;
        }
    }
    assert_eq!(checked, ROLES.len() * 60);
}
