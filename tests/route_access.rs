//! The route gate, generated from the route table the gateway serves at `GET /routes`: every route
//! × every role, and every route × keys restricted by `allowed_routes`. A route added to the
//! gateway is covered here without editing this file. (Which objects a caller may act on within a
//! route it passes is tested in `tests/authorization.rs` and `tests/security_authz.rs`.)

mod common;

use common::*;
use serde_json::{json, Value};

/// Roles as the route table names them, with the roles each access level admits.
fn admits(access: &str, role: &str) -> bool {
    match access {
        "public" | "any_key" => true,
        "management" => !matches!(role, "team" | "customer"),
        "writers" => matches!(role, "master" | "proxy_admin" | "internal_user"),
        "read_all" => matches!(role, "master" | "proxy_admin" | "proxy_admin_viewer"),
        "admin" => matches!(role, "master" | "proxy_admin"),
        other => panic!("unknown access level {other}"),
    }
}

const ROLES: &[&str] = &[
    "proxy_admin",
    "proxy_admin_viewer",
    "internal_user",
    "internal_user_viewer",
    "team",
    "customer",
];

/// A concrete path for a pattern: `{…}` parameters get a harmless value.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map_or(rest.len(), |e| start + e + 1);
        out.push_str("no-such-object");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Whether a 403 came from the route gate (the role or `allowed_routes`), not from a handler's
/// check of the object named. (The Anthropic routes answer in Anthropic's error shape.)
fn gate_refusal(body: &Value) -> bool {
    let msg = body["error"]["message"].as_str().unwrap_or("");
    (body["error"]["type"] == "auth_error" || body["error"]["type"] == "permission_error")
        && (msg.contains("is not allowed to call") || msg.contains("may only call the routes"))
}

/// Which routes an `allowed_routes` value should let through the gate.
type Covers = fn(&Route) -> bool;

struct Route {
    method: String,
    path: String,
    access: String,
    group: String,
}

async fn route_table(gw: &Gateway, key: &str) -> Vec<Route> {
    let (status, _, body) = get(&gw.url("/routes"), Some(key)).await;
    assert_eq!(status, 200, "{body}");
    let routes: Vec<Route> = body["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .map(|r| Route {
            method: r["methods"][0].as_str().unwrap().to_string(),
            path: r["path"].as_str().unwrap().to_string(),
            access: r["access"].as_str().unwrap().to_string(),
            group: r["group"].as_str().unwrap().to_string(),
        })
        .collect();
    assert!(
        routes.len() > 60,
        "the table lists every route: {}",
        routes.len()
    );
    routes
}

async fn new_user_key(gw: &Gateway, user_id: &str, role: &str) -> String {
    let (status, body) = send(
        "POST",
        &gw.url("/user/new"),
        Some(MASTER_KEY),
        &json!({"user_id": user_id, "user_role": role}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["key"].as_str().expect("key").to_string()
}

async fn every_route_for_every_role(gw: &Gateway) {
    let table = route_table(gw, MASTER_KEY).await;
    // The table agrees with the declared levels of the routes every deployment depends on.
    let level = |m: &str, p: &str| {
        table
            .iter()
            .find(|r| r.method == m && r.path == p)
            .map(|r| r.access.as_str())
            .unwrap_or_else(|| panic!("{m} {p} missing from /routes"))
    };
    assert_eq!(level("POST", "/v1/chat/completions"), "any_key");
    assert_eq!(level("POST", "/key/generate"), "writers");
    assert_eq!(level("POST", "/user/new"), "admin");
    assert_eq!(level("GET", "/health/liveliness"), "public");
    assert_eq!(level("GET", "/routes"), "any_key");

    let mut callers = vec![("master", MASTER_KEY.to_string())];
    for role in ROLES {
        callers.push((role, new_user_key(gw, &format!("gate-{role}"), role).await));
    }
    let mut checked = 0;
    for r in &table {
        let url = gw.url(&concrete(&r.path));
        // No key: public routes answer, every other route is 401.
        let (status, body) = send(&r.method, &url, None, &json!({})).await;
        if r.access == "public" {
            assert!(
                status < 400,
                "{} {} without a key: {status} {body}",
                r.method,
                r.path
            );
        } else {
            assert_eq!(status, 401, "{} {} without a key: {body}", r.method, r.path);
        }
        for (role, key) in &callers {
            let (status, body) = send(&r.method, &url, Some(key), &json!({})).await;
            if admits(&r.access, role) {
                assert!(
                    status != 401 && !(status == 403 && gate_refusal(&body)),
                    "{role} must pass the gate of {} {} ({}): {status} {body}",
                    r.method,
                    r.path,
                    r.access
                );
            } else {
                assert_eq!(
                    status, 403,
                    "{role} must be refused {} {} ({}): {body}",
                    r.method, r.path, r.access
                );
                assert!(gate_refusal(&body), "{body}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, table.len() * callers.len());
}

#[actix_rt::test]
async fn every_route_for_every_role_from_the_route_table_on_sqlite() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    every_route_for_every_role(&gw).await;
}

#[actix_rt::test]
async fn every_route_for_every_role_from_the_route_table_on_postgres() {
    let mock = Mock::start(&[]);
    let pg = FreshPostgres::create();
    let gw = Gateway::start(
        &format!("{}  database_url: {}\n", basic_config(&mock), pg.url),
        &[],
        &[],
    );
    every_route_for_every_role(&gw).await;
}

/// `allowed_routes` by group, by exact path and by prefix pattern: the key passes the gate of
/// the routes it lists and no other.
#[actix_rt::test]
async fn allowed_routes_limit_a_key_to_the_routes_it_lists() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let table = route_table(&gw, MASTER_KEY).await;
    let cases: Vec<(Value, Covers)> = vec![
        (json!(["llm_api_routes"]), |r: &Route| {
            r.group == "llm_api_routes"
        }),
        (json!(["openai_routes"]), |r: &Route| {
            r.group == "llm_api_routes"
        }),
        (json!(["info_routes"]), |r: &Route| r.group == "info_routes"),
        (json!(["/v1/chat/completions", "/key/info"]), |r: &Route| {
            r.path == "/v1/chat/completions" || r.path == "/key/info"
        }),
        (json!(["/key/*"]), |r: &Route| r.path.starts_with("/key/")),
    ];
    for (allowed, expect) in &cases {
        // An internal user's key, so management routes are gated by allowed_routes alone.
        let (status, body) = send(
            "POST",
            &gw.url("/user/new"),
            Some(MASTER_KEY),
            &json!({"auto_create_key": false}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let user = body["user_id"].as_str().unwrap().to_string();
        let (status, body) = send(
            "POST",
            &gw.url("/key/generate"),
            Some(MASTER_KEY),
            &json!({"user_id": user, "allowed_routes": allowed}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let key = body["key"].as_str().unwrap().to_string();
        for r in &table {
            if r.access == "public" {
                continue;
            }
            let (status, body) = send(
                &r.method,
                &gw.url(&concrete(&r.path)),
                Some(&key),
                &json!({}),
            )
            .await;
            let refused_by_gate = status == 403 && gate_refusal(&body);
            let admitted = expect(r) && admits(&r.access, "internal_user");
            assert_eq!(
                !refused_by_gate, admitted,
                "allowed_routes {allowed}: {} {} → {status} {body}",
                r.method, r.path
            );
        }
    }
    // A restricted key really calls the route it lists.
    let (status, body) = send(
        "POST",
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"allowed_routes": ["/v1/chat/completions"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let key = body["key"].as_str().unwrap().to_string();
    let (status, _, body) = post(
        &gw.url("/v1/chat/completions"),
        Some(&key),
        &chat("mock-gpt"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = post(&gw.url("/chat/completions"), Some(&key), &chat("mock-gpt")).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = send("POST", &gw.url("/key/generate"), Some(&key), &json!({})).await;
    assert_eq!(status, 403, "an LLM-only key cannot mint keys: {body}");
    // Entries the gate would not understand are refused, on creation and on update.
    for bad in [
        json!(["/no/such/route"]),
        json!(["*"]),
        json!(["llm_routes"]),
    ] {
        let (status, body) = send(
            "POST",
            &gw.url("/key/generate"),
            Some(MASTER_KEY),
            &json!({"allowed_routes": bad}),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["param"], "allowed_routes", "{body}");
        let (status, body) = send(
            "POST",
            &gw.url("/key/update"),
            Some(MASTER_KEY),
            &json!({"key": key, "allowed_routes": bad}),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}
