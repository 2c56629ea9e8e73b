//! Management input validation: every field of every management route that stores something is
//! type- and range-checked (400 naming the field, nothing stored), durations are bounded (no
//! wrap-around to 1970), `api_base` must be an http(s) URL, and a NUL character anywhere in a
//! management request (body, query or path) is refused with 400 instead of reaching the store.
//! Each test runs on the embedded database and on Postgres.

mod common;

use common::*;
use serde_json::{json, Value};

fn gateway_sqlite(mock: &Mock) -> Gateway {
    Gateway::start(&basic_config(mock), &[], &[])
}

fn gateway_postgres(mock: &Mock, pg: &FreshPostgres) -> Gateway {
    Gateway::start(
        &format!("{}  database_url: {}\n", basic_config(mock), pg.url),
        &[],
        &[],
    )
}

async fn admin(gw: &Gateway, method: &str, path: &str, body: Value) -> Value {
    let (status, resp) = send(method, &gw.url(path), Some(MASTER_KEY), &body).await;
    assert!(status == 200, "{method} {path} → {status} {resp}");
    resp
}

/// Everything the management API can show, to prove a refused request stored nothing.
async fn snapshot(gw: &Gateway) -> Value {
    let mut out = serde_json::Map::new();
    for path in [
        "/key/list?return_full_object=true&size=100",
        "/user/list?page_size=100",
        "/team/list",
        "/organization/list",
        "/customer/list",
        "/budget/list",
        "/model/info",
    ] {
        let (status, _, body) = get(&gw.url(path), Some(MASTER_KEY)).await;
        assert_eq!(status, 200, "{path}: {body}");
        out.insert(path.to_string(), body);
    }
    Value::Object(out)
}

/// Send a request the gateway must refuse with 400 naming `field`, and check nothing changed.
async fn refused(gw: &Gateway, method: &str, path: &str, body: &Value, field: &str) {
    let before = snapshot(gw).await;
    let (status, resp) = send(method, &gw.url(path), Some(MASTER_KEY), body).await;
    let shown = {
        let s = body.to_string();
        if s.len() > 300 {
            format!("{}…", &s[..300])
        } else {
            s
        }
    };
    assert_eq!(status, 400, "{method} {path} {shown} → {resp}");
    assert_envelope(&resp);
    let param = resp["error"]["param"].as_str().unwrap_or_default();
    assert!(
        param.contains(field),
        "{method} {path} {shown}: the error must name '{field}': {resp}"
    );
    let after = snapshot(gw).await;
    assert!(
        before == after,
        "{method} {path} {shown} changed stored data"
    );
}

/// Fixtures every table below refers to: a key, user, team, organization, end user and budget.
struct Fixtures {
    key: String,
    org_id: String,
    model_id: String,
}

async fn fixtures(mock: &Mock, gw: &Gateway) -> Fixtures {
    let key = admin(
        gw,
        "POST",
        "/key/generate",
        json!({"key_alias": "fixture-key"}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    admin(
        gw,
        "POST",
        "/user/new",
        json!({"user_id": "fixture-user", "auto_create_key": false}),
    )
    .await;
    admin(gw, "POST", "/team/new", json!({"team_id": "fixture-team"})).await;
    let org = admin(
        gw,
        "POST",
        "/organization/new",
        json!({"organization_alias": "fixture-org"}),
    )
    .await;
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
    let model = admin(
        gw,
        "POST",
        "/model/new",
        json!({"model_name": "fixture-model", "litellm_params": {"model": "openai/mock-gpt", "api_base": mock.api_base(), "api_key": "sk-x"}}),
    )
    .await;
    Fixtures {
        key,
        org_id: org["organization_id"].as_str().unwrap().to_string(),
        model_id: model["model_id"].as_str().unwrap().to_string(),
    }
}

fn with(base: &Value, field: &str, v: &Value) -> Value {
    let mut b = base.clone();
    b[field] = v.clone();
    b
}

// ---------------------------------------------------------------------------------------------
// F25: durations are bounded (at most 100 years) and never wrap around.

#[actix_rt::test]
async fn out_of_range_durations_are_refused_on_sqlite() {
    let mock = Mock::start(&[]);
    let gw = gateway_sqlite(&mock);
    out_of_range_durations(&mock, &gw).await;
}

#[actix_rt::test]
async fn out_of_range_durations_are_refused_on_postgres() {
    let mock = Mock::start(&[]);
    let pg = FreshPostgres::create();
    let gw = gateway_postgres(&mock, &pg);
    out_of_range_durations(&mock, &gw).await;
}

async fn out_of_range_durations(mock: &Mock, gw: &Gateway) {
    let f = fixtures(mock, gw).await;
    let huge = [
        "99999999999d",
        "9223372036854775s",
        "9223372036854775807s",
        "153722867280912m",
        "36501d",
        "5215w",
        "1217mo",
    ];
    let routes: Vec<(&str, &str, Value, &[&str])> = vec![
        (
            "POST",
            "/key/generate",
            json!({}),
            &["duration", "budget_duration"],
        ),
        (
            "POST",
            "/key/update",
            json!({"key": f.key}),
            &["duration", "budget_duration"],
        ),
        (
            "POST",
            "/key/regenerate",
            json!({"key": f.key}),
            &["duration", "budget_duration"],
        ),
        (
            "POST",
            "/user/new",
            json!({"user_id": "dur-user"}),
            &["duration", "budget_duration"],
        ),
        (
            "POST",
            "/user/update",
            json!({"user_id": "fixture-user"}),
            &["budget_duration"],
        ),
        (
            "POST",
            "/team/new",
            json!({"team_id": "dur-team"}),
            &["budget_duration", "team_member_key_duration"],
        ),
        (
            "POST",
            "/team/update",
            json!({"team_id": "fixture-team"}),
            &["budget_duration", "team_member_key_duration"],
        ),
        (
            "POST",
            "/organization/new",
            json!({"organization_alias": "dur-org"}),
            &["budget_duration"],
        ),
        (
            "PATCH",
            "/organization/update",
            json!({"organization_id": f.org_id}),
            &["budget_duration"],
        ),
        (
            "POST",
            "/customer/new",
            json!({"user_id": "dur-customer"}),
            &["budget_duration"],
        ),
        (
            "POST",
            "/customer/update",
            json!({"user_id": "fixture-customer"}),
            &["budget_duration"],
        ),
        (
            "POST",
            "/budget/new",
            json!({"budget_id": "dur-budget"}),
            &["budget_duration"],
        ),
        (
            "POST",
            "/budget/update",
            json!({"budget_id": "fixture-budget"}),
            &["budget_duration"],
        ),
    ];
    for (method, path, base, fields) in &routes {
        for field in *fields {
            for d in huge {
                refused(gw, method, path, &with(base, field, &json!(d)), field).await;
            }
        }
        // A per-model budget window is a duration too.
        if !path.starts_with("/customer") {
            let mmb = json!({"mock-gpt": {"budget_limit": 1, "time_period": "99999999999d"}});
            refused(
                gw,
                method,
                path,
                &with(base, "model_max_budget", &mmb),
                "model_max_budget",
            )
            .await;
        }
    }
    // The old code wrapped a huge duration around to 1970 and the key kept working.
    let (status, resp) = send(
        "POST",
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"duration": "99999999999d"}),
    )
    .await;
    assert_eq!(status, 400, "{resp}");

    // The largest allowed duration works and lies about a century ahead.
    let created = admin(
        gw,
        "POST",
        "/key/generate",
        json!({"duration": "36500d", "budget_duration": "1200mo"}),
    )
    .await;
    let expires = created["expires"].as_str().unwrap();
    let year: i32 = expires[..4].parse().unwrap();
    assert!(year >= 2100, "{expires}");
    let reset = created["budget_reset_at"].as_str().unwrap();
    assert!(reset[..4].parse::<i32>().unwrap() >= 2100, "{reset}");
    let key = created["key"].as_str().unwrap();
    let (status, _, body) = post(&gw.url("/chat/completions"), Some(key), &chat("mock-gpt")).await;
    assert_eq!(status, 200, "{body}");
}

// ---------------------------------------------------------------------------------------------
// F26: every management field is checked for its type and range; nothing is stored on a refusal.

#[actix_rt::test]
async fn management_fields_are_type_and_range_checked_on_sqlite() {
    let mock = Mock::start(&[]);
    let gw = gateway_sqlite(&mock);
    fields_checked(&mock, &gw).await;
}

#[actix_rt::test]
async fn management_fields_are_type_and_range_checked_on_postgres() {
    let mock = Mock::start(&[]);
    let pg = FreshPostgres::create();
    let gw = gateway_postgres(&mock, &pg);
    fields_checked(&mock, &gw).await;
}

const KEY_GEN: &str = "key/generate";
const KEY_UPD: &str = "key/update";
const USER_NEW: &str = "user/new";
const USER_UPD: &str = "user/update";
const TEAM_NEW: &str = "team/new";
const TEAM_UPD: &str = "team/update";
const ORG_NEW: &str = "organization/new";
const ORG_UPD: &str = "organization/update";
const CUST_NEW: &str = "customer/new";
const CUST_UPD: &str = "customer/update";
const BUDGET_NEW: &str = "budget/new";
const BUDGET_UPD: &str = "budget/update";

const BUDGETED: &[&str] = &[
    KEY_GEN, KEY_UPD, USER_NEW, USER_UPD, TEAM_NEW, TEAM_UPD, ORG_NEW, ORG_UPD, CUST_NEW, CUST_UPD,
    BUDGET_NEW, BUDGET_UPD,
];
const PER_MODEL_LIMITS: &[&str] = &[KEY_GEN, KEY_UPD, USER_NEW, USER_UPD, TEAM_NEW, TEAM_UPD];
const PER_MODEL_BUDGET: &[&str] = &[
    KEY_GEN, KEY_UPD, USER_NEW, USER_UPD, TEAM_NEW, TEAM_UPD, ORG_NEW, ORG_UPD, BUDGET_NEW,
    BUDGET_UPD,
];
const WITH_MODELS: &[&str] = &[
    KEY_GEN, KEY_UPD, USER_NEW, USER_UPD, TEAM_NEW, TEAM_UPD, ORG_NEW, ORG_UPD, CUST_NEW, CUST_UPD,
];
const WITH_BLOCKED: &[&str] = &[
    KEY_GEN, KEY_UPD, USER_UPD, TEAM_NEW, TEAM_UPD, CUST_NEW, CUST_UPD,
];
const WITH_METADATA: &[&str] = &[
    KEY_GEN, KEY_UPD, USER_NEW, USER_UPD, TEAM_NEW, TEAM_UPD, ORG_NEW, ORG_UPD,
];

async fn fields_checked(mock: &Mock, gw: &Gateway) {
    let f = fixtures(mock, gw).await;
    let route = |name: &str| -> (&'static str, String, Value) {
        match name {
            KEY_GEN => (
                "POST",
                "/key/generate".into(),
                json!({"key_alias": "new-key"}),
            ),
            KEY_UPD => ("POST", "/key/update".into(), json!({"key": f.key})),
            USER_NEW => ("POST", "/user/new".into(), json!({"user_id": "new-user"})),
            USER_UPD => (
                "POST",
                "/user/update".into(),
                json!({"user_id": "fixture-user"}),
            ),
            TEAM_NEW => ("POST", "/team/new".into(), json!({"team_id": "new-team"})),
            TEAM_UPD => (
                "POST",
                "/team/update".into(),
                json!({"team_id": "fixture-team"}),
            ),
            ORG_NEW => (
                "POST",
                "/organization/new".into(),
                json!({"organization_alias": "new-org"}),
            ),
            ORG_UPD => (
                "PATCH",
                "/organization/update".into(),
                json!({"organization_id": f.org_id}),
            ),
            CUST_NEW => (
                "POST",
                "/customer/new".into(),
                json!({"user_id": "new-customer"}),
            ),
            CUST_UPD => (
                "POST",
                "/customer/update".into(),
                json!({"user_id": "fixture-customer"}),
            ),
            BUDGET_NEW => (
                "POST",
                "/budget/new".into(),
                json!({"budget_id": "new-budget"}),
            ),
            BUDGET_UPD => (
                "POST",
                "/budget/update".into(),
                json!({"budget_id": "fixture-budget"}),
            ),
            other => panic!("unknown route {other}"),
        }
    };
    let long = "x".repeat(200 * 1024);
    let too_long_id = "x".repeat(257);
    let many: Vec<String> = (0..1001).map(|i| format!("m{i}")).collect();
    let wide_map: serde_json::Map<String, Value> =
        (0..1001).map(|i| (format!("m{i}"), json!(1))).collect();
    let limit_bad = vec![json!(-1), json!(1.5), json!("10"), json!(true), json!([1])];
    let number_bad = vec![json!(-1), json!("10"), json!(false), json!({"a": 1})];
    let count_map_bad = vec![
        json!({"mock-gpt": -1}),
        json!({"mock-gpt": "x"}),
        json!({"mock-gpt": 1.5}),
        json!({"mock-gpt": null}),
        json!([1]),
        json!("mock-gpt"),
        Value::Object(wide_map.clone()),
    ];
    let budget_map_bad = vec![
        json!({"mock-gpt": -1}),
        json!({"mock-gpt": "x"}),
        json!({"mock-gpt": {"budget_limit": -1}}),
        json!({"mock-gpt": {"budget_limit": "1"}}),
        json!({"mock-gpt": {"time_period": "1d"}}),
        json!({"mock-gpt": {"budget_limit": 1, "time_period": "soon"}}),
        json!({"mock-gpt": {"budget_limit": 1, "time_period": 5}}),
        json!({"mock-gpt": {"budget_limit": 1, "surprise": 5}}),
        json!([1]),
    ];
    let str_map_bad = vec![
        json!({"fast": 1}),
        json!({"fast": {"model": "mock-gpt"}}),
        json!({"fast": null}),
        json!({"fast": long}),
        json!(["fast"]),
        json!("fast"),
    ];
    let list_bad = vec![
        json!("mock-gpt"),
        json!([1]),
        json!([null]),
        json!(many),
        json!([too_long_id]),
    ];

    // (field, bad values, routes taking it)
    let table: Vec<(&str, Vec<Value>, &[&str])> = vec![
        (
            "blocked",
            vec![json!("yes"), json!(1), json!("false")],
            WITH_BLOCKED,
        ),
        ("max_budget", number_bad.clone(), BUDGETED),
        (
            "soft_budget",
            number_bad.clone(),
            &[KEY_GEN, KEY_UPD, TEAM_NEW, BUDGET_NEW, ORG_UPD],
        ),
        ("tpm_limit", limit_bad.clone(), BUDGETED),
        ("rpm_limit", limit_bad.clone(), BUDGETED),
        ("max_parallel_requests", limit_bad.clone(), BUDGETED),
        (
            "budget_duration",
            vec![json!(5), json!("soon"), json!("99999999999d")],
            BUDGETED,
        ),
        ("model_rpm_limit", count_map_bad.clone(), PER_MODEL_LIMITS),
        ("model_tpm_limit", count_map_bad.clone(), PER_MODEL_LIMITS),
        ("model_max_budget", budget_map_bad.clone(), PER_MODEL_BUDGET),
        (
            "aliases",
            str_map_bad.clone(),
            &[KEY_GEN, KEY_UPD, USER_NEW],
        ),
        ("model_aliases", str_map_bad.clone(), &[TEAM_NEW, TEAM_UPD]),
        ("models", list_bad.clone(), WITH_MODELS),
        ("tags", list_bad.clone(), &[KEY_GEN, KEY_UPD, TEAM_NEW]),
        (
            "metadata",
            vec![json!("x"), json!([1]), json!(1)],
            WITH_METADATA,
        ),
        (
            "duration",
            vec![json!(5), json!("soon"), json!("-1d")],
            &[KEY_GEN, KEY_UPD, USER_NEW],
        ),
        (
            "key_alias",
            vec![json!(long), json!(1)],
            &[KEY_GEN, KEY_UPD, USER_NEW],
        ),
        (
            "user_alias",
            vec![json!(long), json!(1)],
            &[USER_NEW, USER_UPD],
        ),
        ("user_email", vec![json!(long)], &[USER_NEW]),
        (
            "user_id",
            vec![json!(too_long_id), json!(7)],
            &[USER_NEW, CUST_NEW, KEY_GEN],
        ),
        ("team_id", vec![json!(too_long_id)], &[TEAM_NEW]),
        (
            "team_alias",
            vec![json!(long), json!(1)],
            &[TEAM_NEW, TEAM_UPD],
        ),
        ("organization_alias", vec![json!(long)], &[ORG_NEW, ORG_UPD]),
        ("organization_id", vec![json!(too_long_id)], &[ORG_NEW]),
        ("budget_id", vec![json!(too_long_id)], &[BUDGET_NEW]),
        ("alias", vec![json!(long), json!(1)], &[CUST_NEW, CUST_UPD]),
        (
            "default_model",
            vec![json!(long), json!(1)],
            &[CUST_NEW, CUST_UPD],
        ),
        (
            "team_member_budget",
            number_bad.clone(),
            &[TEAM_NEW, TEAM_UPD],
        ),
        (
            "spend",
            vec![json!(-1), json!("1")],
            &[KEY_GEN, KEY_UPD, USER_UPD],
        ),
        ("auto_create_key", vec![json!("no")], &[USER_NEW]),
        ("key_max_budget", number_bad.clone(), &[USER_NEW]),
    ];
    let mut checked = 0;
    for (field, bad, routes) in &table {
        for r in *routes {
            let (method, path, base) = route(r);
            for v in bad {
                refused(gw, method, &path, &with(&base, field, v), field).await;
                checked += 1;
            }
        }
    }
    assert!(checked > 300, "{checked}");

    // Member lists are bounded too (1000 entries).
    let crowd: Vec<Value> = (0..1001)
        .map(|i| json!({"user_id": format!("crowd-{i}"), "role": "user"}))
        .collect();
    refused(
        gw,
        "POST",
        "/team/new",
        &json!({"team_id": "crowd-team", "members_with_roles": crowd}),
        "members_with_roles",
    )
    .await;
    refused(
        gw,
        "POST",
        "/team/member_add",
        &json!({"team_id": "fixture-team", "member": crowd}),
        "member",
    )
    .await;
    refused(
        gw,
        "POST",
        "/organization/member_add",
        &json!({"organization_id": f.org_id, "member": crowd}),
        "member",
    )
    .await;

    // The values the rules allow are still taken.
    let ok = admin(
        gw,
        "POST",
        "/key/generate",
        json!({"key_alias": "a".repeat(256), "blocked": false, "models": many[..1000],
               "model_rpm_limit": {"mock-gpt": 0}, "model_tpm_limit": {"mock-gpt": 10},
               "model_max_budget": {"mock-gpt": 1.5, "other": {"budget_limit": 2, "time_period": "30d"}},
               "aliases": {"fast": "mock-gpt"}, "metadata": {"deep": {"list": [1, "x", null]}}}),
    )
    .await;
    assert_eq!(ok["blocked"], false);
    let blocked = admin(gw, "POST", "/key/generate", json!({"blocked": true})).await;
    assert_eq!(blocked["blocked"], true);

    // Models in the database: api_base must be an http(s) URL with a host.
    let bad_bases = [
        json!("file:///etc/passwd"),
        json!("gopher://127.0.0.1:70/"),
        json!("ftp://127.0.0.1/"),
        json!("javascript:alert(1)"),
        json!("http://"),
        json!("http:///v1"),
        json!("127.0.0.1:8080/v1"),
        json!("not a url"),
        json!(""),
        json!(5),
    ];
    for b in &bad_bases {
        refused(
            gw,
            "POST",
            "/model/new",
            &json!({"model_name": "bad-base", "litellm_params": {"model": "openai/x", "api_base": b}}),
            "api_base",
        )
        .await;
        refused(
            gw,
            "POST",
            "/model/update",
            &json!({"model_id": f.model_id, "litellm_params": {"api_base": b}}),
            "api_base",
        )
        .await;
        refused(
            gw,
            "PATCH",
            &format!("/model/{}/update", f.model_id),
            &json!({"litellm_params": {"api_base": b}}),
            "api_base",
        )
        .await;
    }
    for (field, v) in [
        ("model_name", json!(long)),
        ("model_name", json!(1)),
        ("litellm_params", json!("openai/x")),
        ("model_info", json!([1])),
    ] {
        let mut body = json!({"model_name": "bad", "litellm_params": {"model": "openai/x", "api_base": mock.api_base()}});
        body[field] = v;
        refused(gw, "POST", "/model/new", &body, field).await;
    }
    for (param, v) in [("rpm", json!(-1)), ("tpm", json!("x")), ("model", json!(1))] {
        refused(
            gw,
            "POST",
            "/model/new",
            &json!({"model_name": "bad", "litellm_params": {"model": "openai/x", param: v}}),
            param,
        )
        .await;
    }
    admin(
        gw,
        "POST",
        "/model/new",
        json!({"model_name": "good-base", "litellm_params": {"model": "openai/x", "api_base": "https://api.example.com/v1"}}),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// F22: a NUL character anywhere in a management request is a 400 naming the field.

#[actix_rt::test]
async fn nul_in_management_requests_is_refused_on_sqlite() {
    let mock = Mock::start(&[]);
    let gw = gateway_sqlite(&mock);
    nul_refused(&mock, &gw).await;
}

#[actix_rt::test]
async fn nul_in_management_requests_is_refused_on_postgres() {
    let mock = Mock::start(&[]);
    let pg = FreshPostgres::create();
    let gw = gateway_postgres(&mock, &pg);
    nul_refused(&mock, &gw).await;
}

async fn nul_refused(mock: &Mock, gw: &Gateway) {
    let f = fixtures(mock, gw).await;
    let n = "ab\u{0}cd";
    let q = "ab%00cd";
    let org = f.org_id.as_str();
    let model = f.model_id.as_str();
    // (method, path, body, field the error must name): every management route taking an id, a
    // name or a filter, with the NUL in each such place.
    let rows: Vec<(&str, String, Value, &str)> = vec![
        (
            "POST",
            "/key/generate".into(),
            json!({"key_alias": n}),
            "key_alias",
        ),
        (
            "POST",
            "/key/generate".into(),
            json!({"user_id": n}),
            "user_id",
        ),
        (
            "POST",
            "/key/generate".into(),
            json!({"team_id": n}),
            "team_id",
        ),
        (
            "POST",
            "/key/generate".into(),
            json!({"budget_id": n}),
            "budget_id",
        ),
        (
            "POST",
            "/key/generate".into(),
            json!({"key": format!("sk-0123456789{n}")}),
            "key",
        ),
        (
            "POST",
            "/key/generate".into(),
            json!({"metadata": {"deep": [n]}}),
            "metadata",
        ),
        (
            "POST",
            "/key/generate".into(),
            json!({"metadata": {n: 1}}),
            "metadata",
        ),
        (
            "POST",
            "/key/generate".into(),
            json!({"models": [n]}),
            "models",
        ),
        ("GET", format!("/key/info?key={q}"), json!({}), "key"),
        ("POST", "/key/update".into(), json!({"key": n}), "key"),
        (
            "POST",
            "/key/update".into(),
            json!({"key_alias": n}),
            "key_alias",
        ),
        (
            "POST",
            "/key/update".into(),
            json!({"key": f.key, "key_alias": n}),
            "key_alias",
        ),
        (
            "POST",
            "/key/update".into(),
            json!({"key": f.key, "metadata": {"a": n}}),
            "metadata",
        ),
        ("POST", "/key/delete".into(), json!({"keys": [n]}), "keys"),
        (
            "POST",
            "/key/delete".into(),
            json!({"key_aliases": [n]}),
            "key_aliases",
        ),
        (
            "GET",
            format!("/key/list?user_id={q}"),
            json!({}),
            "user_id",
        ),
        (
            "GET",
            format!("/key/list?team_id={q}"),
            json!({}),
            "team_id",
        ),
        (
            "GET",
            format!("/key/list?organization_id={q}"),
            json!({}),
            "organization_id",
        ),
        (
            "GET",
            format!("/key/list?key_alias={q}"),
            json!({}),
            "key_alias",
        ),
        (
            "GET",
            format!("/key/list?key_hash={q}"),
            json!({}),
            "key_hash",
        ),
        ("POST", "/key/regenerate".into(), json!({"key": n}), "key"),
        ("POST", format!("/key/{q}/regenerate"), json!({}), "key"),
        (
            "POST",
            "/key/regenerate".into(),
            json!({"key": f.key, "new_key": format!("sk-0123456789{n}")}),
            "new_key",
        ),
        ("POST", "/key/block".into(), json!({"key": n}), "key"),
        ("POST", "/key/unblock".into(), json!({"key": n}), "key"),
        ("POST", "/user/new".into(), json!({"user_id": n}), "user_id"),
        (
            "POST",
            "/user/new".into(),
            json!({"user_email": n}),
            "user_email",
        ),
        ("POST", "/user/new".into(), json!({"teams": [n]}), "teams"),
        (
            "GET",
            format!("/user/info?user_id={q}"),
            json!({}),
            "user_id",
        ),
        (
            "POST",
            "/user/update".into(),
            json!({"user_id": n}),
            "user_id",
        ),
        (
            "POST",
            "/user/update".into(),
            json!({"user_email": n}),
            "user_email",
        ),
        (
            "POST",
            "/user/update".into(),
            json!({"user_id": "fixture-user", "user_alias": n}),
            "user_alias",
        ),
        (
            "POST",
            "/user/delete".into(),
            json!({"user_ids": [n]}),
            "user_ids",
        ),
        (
            "GET",
            format!("/user/list?user_ids={q}"),
            json!({}),
            "user_ids",
        ),
        ("POST", "/team/new".into(), json!({"team_id": n}), "team_id"),
        (
            "POST",
            "/team/new".into(),
            json!({"team_alias": n}),
            "team_alias",
        ),
        (
            "POST",
            "/team/new".into(),
            json!({"members_with_roles": [{"user_id": n, "role": "user"}]}),
            "members_with_roles",
        ),
        (
            "GET",
            format!("/team/info?team_id={q}"),
            json!({}),
            "team_id",
        ),
        (
            "POST",
            "/team/update".into(),
            json!({"team_id": n}),
            "team_id",
        ),
        (
            "POST",
            "/team/member_add".into(),
            json!({"team_id": n, "member": {"user_id": "fixture-user"}}),
            "team_id",
        ),
        (
            "POST",
            "/team/member_add".into(),
            json!({"team_id": "fixture-team", "member": {"user_id": n}}),
            "member",
        ),
        (
            "POST",
            "/team/member_delete".into(),
            json!({"team_id": "fixture-team", "user_id": n}),
            "user_id",
        ),
        (
            "POST",
            "/team/block".into(),
            json!({"team_id": n}),
            "team_id",
        ),
        (
            "POST",
            "/team/unblock".into(),
            json!({"team_id": n}),
            "team_id",
        ),
        (
            "POST",
            "/team/delete".into(),
            json!({"team_ids": [n]}),
            "team_ids",
        ),
        (
            "GET",
            format!("/team/list?user_id={q}"),
            json!({}),
            "user_id",
        ),
        (
            "GET",
            format!("/team/list?organization_id={q}"),
            json!({}),
            "organization_id",
        ),
        (
            "POST",
            "/organization/new".into(),
            json!({"organization_alias": n}),
            "organization_alias",
        ),
        (
            "POST",
            "/organization/new".into(),
            json!({"organization_alias": "o", "organization_id": n}),
            "organization_id",
        ),
        (
            "GET",
            format!("/organization/info?organization_id={q}"),
            json!({}),
            "organization_id",
        ),
        (
            "PATCH",
            "/organization/update".into(),
            json!({"organization_id": n}),
            "organization_id",
        ),
        (
            "PATCH",
            "/organization/update".into(),
            json!({"organization_id": org, "budget_id": n}),
            "budget_id",
        ),
        (
            "POST",
            "/organization/member_add".into(),
            json!({"organization_id": n, "member": {"user_id": "fixture-user"}}),
            "organization_id",
        ),
        (
            "POST",
            "/organization/member_add".into(),
            json!({"organization_id": org, "member": {"user_id": n}}),
            "member",
        ),
        (
            "PATCH",
            "/organization/member_update".into(),
            json!({"organization_id": org, "user_id": n}),
            "user_id",
        ),
        (
            "DELETE",
            "/organization/member_delete".into(),
            json!({"organization_id": org, "user_id": n}),
            "user_id",
        ),
        (
            "DELETE",
            "/organization/delete".into(),
            json!({"organization_ids": [n]}),
            "organization_ids",
        ),
        (
            "POST",
            "/customer/new".into(),
            json!({"user_id": n}),
            "user_id",
        ),
        (
            "POST",
            "/end_user/new".into(),
            json!({"user_id": "c1", "alias": n}),
            "alias",
        ),
        (
            "GET",
            format!("/customer/info?end_user_id={q}"),
            json!({}),
            "end_user_id",
        ),
        (
            "GET",
            format!("/end_user/info?end_user_id={q}"),
            json!({}),
            "end_user_id",
        ),
        (
            "POST",
            "/customer/update".into(),
            json!({"user_id": n}),
            "user_id",
        ),
        (
            "POST",
            "/customer/block".into(),
            json!({"user_ids": [n]}),
            "user_ids",
        ),
        (
            "POST",
            "/customer/unblock".into(),
            json!({"user_ids": [n]}),
            "user_ids",
        ),
        (
            "POST",
            "/customer/delete".into(),
            json!({"user_ids": [n]}),
            "user_ids",
        ),
        (
            "POST",
            "/budget/new".into(),
            json!({"budget_id": n}),
            "budget_id",
        ),
        (
            "POST",
            "/budget/info".into(),
            json!({"budgets": [n]}),
            "budgets",
        ),
        (
            "POST",
            "/budget/update".into(),
            json!({"budget_id": n}),
            "budget_id",
        ),
        ("POST", "/budget/delete".into(), json!({"id": n}), "id"),
        (
            "POST",
            "/model/new".into(),
            json!({"model_name": n, "litellm_params": {"model": "openai/x"}}),
            "model_name",
        ),
        (
            "POST",
            "/model/new".into(),
            json!({"model_name": "m", "litellm_params": {"model": "openai/x"}, "model_info": {"id": n}}),
            "model_info",
        ),
        (
            "POST",
            "/model/new".into(),
            json!({"model_name": "m", "litellm_params": {"model": n}}),
            "litellm_params",
        ),
        (
            "POST",
            "/model/update".into(),
            json!({"model_id": n}),
            "model_id",
        ),
        (
            "POST",
            "/model/update".into(),
            json!({"model_id": model, "model_info": {"note": n}}),
            "model_info",
        ),
        ("PATCH", format!("/model/{q}/update"), json!({}), "model_id"),
        ("POST", "/model/delete".into(), json!({"id": n}), "id"),
        (
            "GET",
            format!("/spend/logs?api_key={q}"),
            json!({}),
            "api_key",
        ),
        (
            "GET",
            format!("/spend/logs?user_id={q}"),
            json!({}),
            "user_id",
        ),
        (
            "GET",
            format!("/spend/logs?request_id={q}"),
            json!({}),
            "request_id",
        ),
        (
            "GET",
            format!("/global/spend/report?team_id={q}"),
            json!({}),
            "team_id",
        ),
    ];
    for (method, path, body, field) in &rows {
        refused(gw, method, path, body, field).await;
    }
    // The same ids without the NUL are served as usual.
    let (status, resp) = send(
        "GET",
        &gw.url("/user/info?user_id=fixture-user"),
        Some(MASTER_KEY),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
}
