//! `GET /user/daily/activity` (spend, tokens and requests per day from the spend logs, with its
//! breakdowns; an internal user sees only its own) and `GET /budget/settings` (a budget's fields
//! with type, value and default), on SQLite and on Postgres.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// One priced model group on the mock; spend written every 0.2 s; `db` adds a `database_url`.
fn config(mock: &Mock, db: &str) -> String {
    let model = format!(
        "  - model_name: priced\n    litellm_params:\n      model: openai/priced-model\n      api_base: {}\n      api_key: sk-x\n      input_cost_per_token: 0.001\n      output_cost_per_token: 0.002\n",
        mock.api_base()
    );
    format!("model_list:\n{model}general_settings:\n  master_key: {MASTER_KEY}\n  proxy_batch_write_at: 0.2\n{db}")
}

fn postgres(pg: &FreshPostgres) -> String {
    format!("  database_url: {}\n", pg.url)
}

async fn admin_get(gw: &Gateway, path: &str) -> (u16, Value) {
    let (status, _, body) = get(&gw.url(path), Some(MASTER_KEY)).await;
    (status, body)
}

async fn ok(gw: &Gateway, path: &str, body: Value) -> Value {
    let (status, _, resp) = post(&gw.url(path), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{path}: {resp}");
    resp
}

fn day(offset: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(offset))
        .format("%Y-%m-%d")
        .to_string()
}

/// Yesterday to tomorrow, so a run across midnight still sees every request.
fn range() -> String {
    format!("start_date={}&end_date={}", day(-1), day(1))
}

/// Every day's `metrics.<field>` summed.
fn summed(activity: &Value, field: &str) -> i64 {
    activity["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|d| d["metrics"][field].as_i64().expect("metric"))
        .sum()
}

async fn daily_activity(db: &str, mock: &Mock) {
    let gw = Gateway::start(&config(mock, db), &[], &[]);
    let mut keys = Vec::new();
    for user in ["act-ann", "act-bob"] {
        let created = ok(
            &gw,
            "/user/new",
            json!({"user_id": user, "user_role": "internal_user", "key_alias": format!("{user}-key")}),
        )
        .await;
        keys.push(created["key"].as_str().expect("key").to_string());
    }
    let url = gw.url("/v1/chat/completions");
    for key in [&keys[0], &keys[0], &keys[1]] {
        let (status, _, body) = post(&url, Some(key), &chat("priced")).await;
        assert_eq!(status, 200, "{body}");
    }
    let mut failing = chat("priced");
    failing["mock_fail"] = json!("500");
    failing["num_retries"] = json!(0);
    let (status, _, _) = post(&url, Some(&keys[0]), &failing).await;
    assert_eq!(status, 500);
    // The spend logs are written in batches: wait until all four requests count.
    let activity_url = gw.url(&format!("/user/daily/activity?{}", range()));
    wait_for(Duration::from_secs(10), || {
        let u = activity_url.clone();
        async move {
            let (_, _, all) = get(&u, Some(MASTER_KEY)).await;
            all["metadata"]["total_api_requests"] == 4
        }
    })
    .await;

    // A proxy admin sees everyone's activity.
    let (status, all) = admin_get(&gw, &format!("/user/daily/activity?{}", range())).await;
    assert_eq!(status, 200, "{all}");
    let meta = &all["metadata"];
    assert_eq!(meta["total_api_requests"], 4, "{all}");
    assert_eq!(meta["total_successful_requests"], 3, "{all}");
    assert_eq!(meta["total_failed_requests"], 1, "{all}");
    assert!(meta["total_spend"].as_f64().unwrap() > 0.0, "{all}");
    assert!(meta["total_prompt_tokens"].as_i64().unwrap() > 0, "{all}");
    assert_eq!(
        meta["total_tokens"].as_i64().unwrap(),
        meta["total_prompt_tokens"].as_i64().unwrap()
            + meta["total_completion_tokens"].as_i64().unwrap(),
        "{all}"
    );
    assert_eq!(
        (meta["page"].clone(), meta["has_more"].clone()),
        (json!(1), json!(false))
    );
    assert_eq!(summed(&all, "api_requests"), 4);
    let today = &all["results"][0];
    assert!(today["date"].as_str().unwrap().len() == 10, "{today}");
    for field in [
        "spend",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "api_requests",
        "successful_requests",
        "failed_requests",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    ] {
        assert!(today["metrics"][field].is_number(), "{field}: {today}");
    }
    let breakdown = &today["breakdown"];
    assert!(
        breakdown["models"]["openai/priced-model"]["metrics"]["api_requests"].is_number(),
        "{breakdown}"
    );
    assert!(
        breakdown["providers"]["openai"]["metrics"].is_object(),
        "{breakdown}"
    );
    let key_entries = breakdown["api_keys"].as_object().expect("api_keys");
    assert_eq!(key_entries.len(), 2, "{breakdown}");
    let aliases: Vec<&str> = key_entries
        .values()
        .filter_map(|k| k["metadata"]["key_alias"].as_str())
        .collect();
    assert!(aliases.contains(&"act-ann-key"), "{breakdown}");

    // One user's, on an admin's request.
    let (_, bob) = admin_get(
        &gw,
        &format!("/user/daily/activity?{}&user_id=act-bob", range()),
    )
    .await;
    assert_eq!(bob["metadata"]["total_api_requests"], 1, "{bob}");

    // An internal user sees only its own, and may not ask for another's.
    let (status, _, own) = get(
        &gw.url(&format!("/user/daily/activity?{}", range())),
        Some(&keys[0]),
    )
    .await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["metadata"]["total_api_requests"], 3, "{own}");
    assert_eq!(own["metadata"]["total_failed_requests"], 1, "{own}");
    let (status, _, other) = get(
        &gw.url(&format!("/user/daily/activity?{}&user_id=act-bob", range())),
        Some(&keys[0]),
    )
    .await;
    assert_eq!(status, 403, "{other}");

    // Filters and pages.
    let (_, none) = admin_get(
        &gw,
        &format!("/user/daily/activity?{}&model=other", range()),
    )
    .await;
    assert_eq!(none["metadata"]["total_api_requests"], 0, "{none}");
    assert_eq!(none["results"], json!([]));
    let (_, by_model) = admin_get(
        &gw,
        &format!("/user/daily/activity?{}&model=priced", range()),
    )
    .await;
    assert_eq!(by_model["metadata"]["total_api_requests"], 4, "{by_model}");
    let (_, by_key) = admin_get(
        &gw,
        &format!("/user/daily/activity?{}&api_key={}", range(), keys[1]),
    )
    .await;
    assert_eq!(by_key["metadata"]["total_api_requests"], 1, "{by_key}");
    let (_, past) = admin_get(
        &gw,
        &format!("/user/daily/activity?{}&page=9&page_size=1", range()),
    )
    .await;
    assert_eq!(past["results"], json!([]), "{past}");
    assert_eq!(past["metadata"]["page"], 9);
    assert_eq!(past["metadata"]["has_more"], false);

    // Dates are required and are days.
    for query in [
        format!("end_date={}", day(0)),
        format!("start_date={}", day(0)),
        format!("start_date=yesterday&end_date={}", day(0)),
    ] {
        let (status, body) = admin_get(&gw, &format!("/user/daily/activity?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
    }
}

#[actix_rt::test]
async fn daily_activity_on_sqlite() {
    let mock = Mock::start(&[]);
    daily_activity("", &mock).await;
}

#[actix_rt::test]
async fn daily_activity_on_postgres() {
    let mock = Mock::start(&[]);
    let pg = FreshPostgres::create();
    daily_activity(&postgres(&pg), &mock).await;
}

async fn budget_settings(db: &str, mock: &Mock) {
    let gw = Gateway::start(&config(mock, db), &[], &[]);
    ok(
        &gw,
        "/budget/new",
        json!({"budget_id": "b-set", "max_budget": 10.5, "tpm_limit": 100, "budget_duration": "30d"}),
    )
    .await;
    let (status, settings) = admin_get(&gw, "/budget/settings?budget_id=b-set").await;
    assert_eq!(status, 200, "{settings}");
    let field = |name: &str| -> Value {
        settings
            .as_array()
            .expect("a list of fields")
            .iter()
            .find(|f| f["field_name"] == name)
            .unwrap_or_else(|| panic!("{name} in {settings}"))
            .clone()
    };
    let max = field("max_budget");
    assert_eq!(max["field_value"], 10.5);
    assert_eq!(max["stored_in_db"], true);
    assert_eq!(max["field_type"], "Float");
    assert_eq!(max["field_default_value"], Value::Null);
    assert!(!max["field_description"].as_str().unwrap().is_empty());
    assert_eq!(field("tpm_limit")["field_type"], "Integer");
    assert_eq!(field("budget_duration")["field_value"], "30d");
    let rpm = field("rpm_limit");
    assert_eq!(
        (rpm["field_value"].clone(), rpm["stored_in_db"].clone()),
        (Value::Null, json!(false))
    );

    let (status, body) = admin_get(&gw, "/budget/settings").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = admin_get(&gw, "/budget/settings?budget_id=nope").await;
    assert_eq!(status, 404, "{body}");
}

#[actix_rt::test]
async fn budget_settings_on_sqlite() {
    let mock = Mock::start(&[]);
    budget_settings("", &mock).await;
}

#[actix_rt::test]
async fn budget_settings_on_postgres() {
    let mock = Mock::start(&[]);
    let pg = FreshPostgres::create();
    budget_settings(&postgres(&pg), &mock).await;
}
