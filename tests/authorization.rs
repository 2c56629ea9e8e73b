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
            // a team's models: proxy admins and the team's admins (no role here is one)
            row(
                "POST",
                "/team/model/add",
                json!({"team_id": "fixture-team", "models": ["mock-gpt"]}),
                ADMIN,
            ),
            row(
                "POST",
                "/team/model/delete",
                json!({"team_id": "fixture-team", "models": ["mock-gpt"]}),
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
            // models in the database: proxy admins any; a team's admins the team's own (none
            // of these callers administers fixture-team)
            row(
                "POST",
                "/model/new",
                json!({"model_name": "tm", "litellm_params": {"model": "openai/x", "api_base": mock.api_base()}, "model_info": {"team_id": "fixture-team"}}),
                ADMIN,
            ),
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
            // the router's view of each deployment (cooldowns, health)
            row("GET", "/model/state", json!({}), READ_ALL),
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
            // introspection: any key reads readiness details, the route list and the active
            // callbacks; only proxy admins read the callbacks' configuration
            row("GET", "/health/readiness/details", json!({}), ROLES),
            row("GET", "/routes", json!({}), ROLES),
            row("GET", "/active/callbacks", json!({}), ROLES),
            row("GET", "/get/config/callbacks", json!({}), ADMIN),
            // run-time settings (stored in the database)
            row(
                "POST",
                "/config/update",
                json!({"router_settings": {"num_retries": 2}}),
                ADMIN,
            ),
            // model introspection and helpers: any key, narrowed to the models it may use
            row("GET", "/model_group/info", json!({}), ROLES),
            row("GET", "/v2/model/info", json!({}), ROLES),
            row(
                "GET",
                "/utils/supported_openai_params?model=mock-gpt",
                json!({}),
                ROLES,
            ),
            row(
                "POST",
                "/utils/token_counter",
                json!({"model": "mock-gpt", "prompt": "hello world"}),
                ROLES,
            ),
            // pass-through routes: any key (the other providers' routes refuse `mock-gpt`,
            // an OpenAI model group, with a 400 before anything is sent)
            row(
                "POST",
                "/openai/v1/chat/completions",
                json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}),
                ROLES,
            ),
            row(
                "POST",
                "/anthropic/v1/messages",
                json!({"model": "mock-gpt", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}),
                ROLES,
            ),
            row(
                "POST",
                "/gemini/v1beta/models/mock-gpt:generateContent",
                json!({"contents": []}),
                ROLES,
            ),
            row(
                "POST",
                "/vertex_ai/v1/projects/p/locations/us-central1/publishers/google/models/mock-gpt:generateContent",
                json!({"contents": []}),
                ROLES,
            ),
            row(
                "POST",
                "/bedrock/model/mock-gpt/converse",
                json!({"messages": []}),
                ROLES,
            ),
            row(
                "POST",
                "/cohere/v2/chat",
                json!({"model": "mock-gpt", "messages": []}),
                ROLES,
            ),
            // audio and rerank calls: any key (bodies the parser refuses, so no model is
            // called: a JSON body where a form is expected, missing fields)
            row(
                "POST",
                "/v1/audio/transcriptions",
                json!({"model": "mock-gpt"}),
                ROLES,
            ),
            row(
                "POST",
                "/audio/translations",
                json!({"model": "mock-gpt"}),
                ROLES,
            ),
            row(
                "POST",
                "/v1/audio/speech",
                json!({"model": "mock-gpt"}),
                ROLES,
            ),
            row("POST", "/rerank", json!({"model": "mock-gpt"}), ROLES),
            row("POST", "/v1/rerank", json!({"model": "mock-gpt"}), ROLES),
            row("POST", "/v2/rerank", json!({"model": "mock-gpt"}), ROLES),
            // the response cache
            row("GET", "/cache/ping", json!({}), ADMIN),
            row("GET", "/cache/redis/info", json!({}), ADMIN),
            row("POST", "/cache/delete", json!({"keys": ["nothing"]}), ADMIN),
            row("POST", "/cache/flushall", json!({}), ADMIN),
            // live log tailing (a stream: only its status is read)
            row("GET", "/logs/stream", json!({}), ADMIN),
            // files and batches: any key, narrowed to its own objects (ids nobody owns: 404)
            row("POST", "/v1/files", json!({"purpose": "batch"}), ROLES),
            row("GET", "/v1/files", json!({}), ROLES),
            row("GET", "/files", json!({}), ROLES),
            row("GET", "/v1/files/file-nobody", json!({}), ROLES),
            row("GET", "/v1/files/file-nobody/content", json!({}), ROLES),
            row("DELETE", "/v1/files/file-nobody", json!({}), ROLES),
            row(
                "POST",
                "/v1/batches",
                json!({"input_file_id": "file-nobody", "endpoint": "/v1/chat/completions"}),
                ROLES,
            ),
            row("GET", "/v1/batches", json!({}), ROLES),
            row("GET", "/batches", json!({}), ROLES),
            row("GET", "/v1/batches/batch-nobody", json!({}), ROLES),
            row("POST", "/v1/batches/batch-nobody/cancel", json!({}), ROLES),
            // OpenAI's Responses API: any key; a stored response only its owner (or an admin)
            // sees, others get 404
            row(
                "POST",
                "/v1/responses",
                json!({"model": "mock-gpt", "input": "hi"}),
                ROLES,
            ),
            row("GET", "/v1/responses/resp_missing", json!({}), ROLES),
            row("DELETE", "/v1/responses/resp_missing", json!({}), ROLES),
            row(
                "GET",
                "/v1/responses/resp_missing/input_items",
                json!({}),
                ROLES,
            ),
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
    assert_eq!(checked, ROLES.len() * 100);
}

/// How a UI-route row authenticates: the role's session cookie with or without its CSRF token,
/// the role's key instead of a session, or nothing.
#[derive(Clone, Copy, Debug)]
enum Cred {
    Session,
    SessionWithoutCsrf,
    Key,
    Nothing,
}

/// A UI route and the status each role gets, in [`ROLES`] order ("master" is the admin signing in
/// as `admin` with the master key; the others sign in with their user id and password).
struct UiRow {
    method: &'static str,
    path: &'static str,
    cred: Cred,
    expect: [u16; 7],
}

/// One request to a UI route: JSON body, the session cookie and CSRF token or a key as `cred` says.
async fn ui_send(
    gw: &Gateway,
    r: &UiRow,
    body: &Value,
    session: Option<&(String, String)>,
    key: &str,
) -> (u16, Value, Option<String>) {
    let method = awc::http::Method::from_bytes(r.method.as_bytes()).unwrap();
    let mut req = client()
        .request(method, gw.url(r.path))
        .insert_header(("content-type", "application/json"));
    match (r.cred, session) {
        (Cred::Session, Some((cookie, csrf))) => {
            req = req
                .insert_header(("cookie", cookie.clone()))
                .insert_header(("x-csrf-token", csrf.clone()));
        }
        (Cred::SessionWithoutCsrf, Some((cookie, _))) => {
            req = req.insert_header(("cookie", cookie.clone()));
        }
        (Cred::Key, _) => {
            req = req.insert_header(("authorization", format!("Bearer {key}")));
        }
        _ => {}
    }
    let mut resp = req.send_body(body.to_string()).await.expect("request sent");
    let status = resp.status().as_u16();
    let cookie = resp
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
    let bytes = resp.body().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        cookie,
    )
}

/// The password each role's user signs in with (the admin: the master key).
fn ui_password(role: &str) -> String {
    if role == "master" {
        MASTER_KEY.to_string()
    } else {
        format!("{role}-password-1")
    }
}

fn ui_username(role: &str) -> String {
    if role == "master" {
        "admin".to_string()
    } else {
        format!("u-{role}")
    }
}

/// Sign in as `role`: its session cookie and CSRF token, or the refusal's status.
async fn ui_sign_in(gw: &Gateway, role: &str, password: &str) -> Result<(String, String), u16> {
    let (status, headers, body) = post(
        &gw.url("/ui/login"),
        None,
        &json!({"username": ui_username(role), "password": password}),
    )
    .await;
    if status != 200 {
        return Err(status);
    }
    let cookie = headers
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    Ok((cookie, body["csrf_token"].as_str().unwrap().to_string()))
}

#[actix_rt::test]
async fn every_ui_route_for_every_role() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let mut keys: Vec<String> = vec![MASTER_KEY.to_string()];
    for role in &ROLES[1..] {
        let created = admin(
            &gw,
            "POST",
            "/user/new",
            json!({"user_id": ui_username(role), "user_role": role, "password": ui_password(role)}),
        )
        .await;
        keys.push(
            created["key"]
                .as_str()
                .expect("auto-created key")
                .to_string(),
        );
    }
    //                 master proxy_admin viewer internal_user internal_viewer team customer
    const SIGNED_IN: [u16; 7] = [200, 200, 200, 200, 200, 403, 403];
    let rows = [
        // Signing in: team and customer roles call the LLM routes only.
        UiRow {
            method: "POST",
            path: "/ui/login",
            cred: Cred::Nothing,
            expect: SIGNED_IN,
        },
        UiRow {
            method: "POST",
            path: "/login",
            cred: Cred::Nothing,
            expect: SIGNED_IN,
        },
        // The session: only with a session cookie; a key is not a session.
        UiRow {
            method: "GET",
            path: "/ui/session",
            cred: Cred::Session,
            expect: [200, 200, 200, 200, 200, 401, 401],
        },
        UiRow {
            method: "GET",
            path: "/ui/session",
            cred: Cred::Key,
            expect: [401; 7],
        },
        UiRow {
            method: "GET",
            path: "/ui/session",
            cred: Cred::Nothing,
            expect: [401; 7],
        },
        // The router's deployment state through a session: admin readers only.
        UiRow {
            method: "GET",
            path: "/model/state",
            cred: Cred::Session,
            expect: [200, 200, 200, 403, 403, 401, 401],
        },
        // Changing one's password: internal users; the admin has none (400); CSRF required.
        UiRow {
            method: "POST",
            path: "/ui/password",
            cred: Cred::SessionWithoutCsrf,
            expect: [403, 403, 403, 403, 403, 401, 401],
        },
        UiRow {
            method: "POST",
            path: "/ui/password",
            cred: Cred::Key,
            expect: [401; 7],
        },
        UiRow {
            method: "POST",
            path: "/ui/password",
            cred: Cred::Nothing,
            expect: [401; 7],
        },
        UiRow {
            method: "POST",
            path: "/ui/password",
            cred: Cred::Session,
            expect: [400, 200, 200, 200, 200, 401, 401],
        },
        // Signing out needs the CSRF token; without a session there is nothing to end.
        UiRow {
            method: "POST",
            path: "/ui/logout",
            cred: Cred::SessionWithoutCsrf,
            expect: [403, 403, 403, 403, 403, 200, 200],
        },
        UiRow {
            method: "POST",
            path: "/ui/logout",
            cred: Cred::Session,
            expect: [200; 7],
        },
        UiRow {
            method: "POST",
            path: "/ui/logout",
            cred: Cred::Nothing,
            expect: [200; 7],
        },
    ];
    let mut checked = 0;
    for (i, role) in ROLES.iter().enumerate() {
        let mut password = ui_password(role);
        for r in &rows {
            // A fresh session per row (a password change or a sign-out ends it).
            let session = ui_sign_in(&gw, role, &password).await.ok();
            let body = match r.path {
                "/ui/login" | "/login" => {
                    json!({"username": ui_username(role), "password": password})
                }
                "/ui/password" => {
                    let new = format!("{role}-password-{}", checked + 2);
                    json!({"current_password": password, "new_password": new, "confirm_password": new})
                }
                _ => json!({}),
            };
            let (status, resp, cookie) = ui_send(&gw, r, &body, session.as_ref(), &keys[i]).await;
            assert_eq!(
                status, r.expect[i],
                "{role}: {} {} with {:?}: {resp}",
                r.method, r.path, r.cred
            );
            if status == 403 || status == 401 {
                assert_eq!(
                    resp["error"]["type"], "auth_error",
                    "{role} {}: {resp}",
                    r.path
                );
            }
            if r.path == "/ui/password" && status == 200 {
                // The new password signs in from now on, the old one no more; the answer's
                // cookie is a new session.
                let new = body["new_password"].as_str().unwrap().to_string();
                assert_eq!(ui_sign_in(&gw, role, &password).await, Err(401));
                password = new;
                let (cookie_pair, csrf) = (
                    cookie.expect("a new session cookie"),
                    resp["csrf_token"].as_str().unwrap().to_string(),
                );
                let (status, who) = send_with_cookie(&gw, "/ui/session", &cookie_pair).await;
                assert_eq!(status, 200, "{who}");
                assert_eq!(who["csrf_token"], csrf.as_str());
                if let Some((old_cookie, _)) = &session {
                    let (status, _) = send_with_cookie(&gw, "/ui/session", old_cookie).await;
                    assert_eq!(status, 401, "the old session ended with the change");
                }
            }
            if r.path == "/ui/logout" && status == 200 && matches!(r.cred, Cred::Session) {
                if let Some((cookie, _)) = &session {
                    let (status, _) = send_with_cookie(&gw, "/ui/session", cookie).await;
                    assert_eq!(status, 401, "{role}: signed out");
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, ROLES.len() * rows.len());
}

async fn send_with_cookie(gw: &Gateway, path: &str, cookie: &str) -> (u16, Value) {
    let mut resp = client()
        .get(gw.url(path))
        .insert_header(("cookie", cookie.to_string()))
        .send()
        .await
        .expect("request sent");
    let status = resp.status().as_u16();
    let bytes = resp.body().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}
