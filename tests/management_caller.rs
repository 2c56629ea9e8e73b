//! The management extractors answer a refused caller before its body: a malformed or oversized
//! body from a caller the route does not admit (or an unknown key) gets the 401/403 it would get
//! with a good body, on SQLite and on Postgres (where a key not yet cached is looked up in the
//! database while the body is already there to read).

mod common;

use common::*;
use serde_json::json;

async fn refused_before_the_body(db: &str) {
    let gw = Gateway::start(
        &format!("general_settings:\n  master_key: {MASTER_KEY}\n{db}"),
        &[],
        &[],
    );
    let (status, _, user) = post(
        &gw.url("/user/new"),
        Some(MASTER_KEY),
        &json!({"user_id": "caller-u", "user_role": "internal_user"}),
    )
    .await;
    assert_eq!(status, 200, "{user}");
    let key = user["key"].as_str().expect("key").to_string();
    let oversized = format!("{{\"x\": \"{}\"}}", "a".repeat(2 * 1024 * 1024));
    for body in ["{not json".to_string(), "[1]".to_string(), oversized] {
        // An internal user may not create budgets: 403 whatever the body.
        let (status, _, resp) =
            post_raw(&gw.url("/budget/new"), Some(&key), body.clone(), &[]).await;
        assert_eq!(status, 403, "{resp}");
        // An unknown key: 401.
        let (status, _, resp) = post_raw(
            &gw.url("/customer/new"),
            Some("sk-no-such-key-0000000000"),
            body.clone(),
            &[],
        )
        .await;
        assert_eq!(status, 401, "{resp}");
        // No key: 401.
        let (status, _, resp) = post_raw(&gw.url("/team/new"), None, body.clone(), &[]).await;
        assert_eq!(status, 401, "{resp}");
    }
    // An admitted caller gets the body's error.
    let (status, _, resp) =
        post_raw(&gw.url("/budget/new"), Some(MASTER_KEY), "{not json", &[]).await;
    assert_eq!(status, 400, "{resp}");
}

#[actix_rt::test]
async fn a_refused_caller_is_answered_before_its_body_on_sqlite() {
    refused_before_the_body("").await;
}

#[actix_rt::test]
async fn a_refused_caller_is_answered_before_its_body_on_postgres() {
    let pg = FreshPostgres::create();
    refused_before_the_body(&format!("  database_url: {}\n", pg.url)).await;
}
