//! Spend-log rows and their settings, on SQLite and on Postgres: `request_tags`,
//! `spend_logs_metadata` and `requester_ip_address` on every row and `/spend/tags`;
//! `store_prompts_in_spend_logs`; `disable_spend_logs` (no rows, spend still on the key); and
//! `maximum_spend_logs_retention_period` (old rows deleted in the background).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn config(mock: &Mock, extra_general: &str, db: &str) -> String {
    format!(
        r#"model_list:
  - model_name: priced
    litellm_params: {{model: openai/priced-model, api_base: {base}, api_key: sk-x, input_cost_per_token: 0.001, output_cost_per_token: 0.002}}
general_settings:
  master_key: {MASTER_KEY}
  proxy_batch_write_at: 0.2
{extra_general}{db}"#,
        base = mock.api_base()
    )
}

fn db_line(pg: Option<&FreshPostgres>) -> String {
    pg.map(|pg| format!("  database_url: {}\n", pg.url))
        .unwrap_or_default()
}

fn header(headers: &Headers, name: &str) -> String {
    headers.get(name).unwrap().to_str().unwrap().to_string()
}

async fn new_key(gw: &Gateway) -> (String, String) {
    let (status, _, created) = post(&gw.url("/key/generate"), Some(MASTER_KEY), &json!({})).await;
    assert_eq!(status, 200, "{created}");
    (
        created["key"].as_str().unwrap().to_string(),
        created["token"].as_str().unwrap().to_string(),
    )
}

/// The rows `/spend/logs?request_id=` shows for a call id, once `n` are there.
async fn rows_for(gw: &Gateway, call_id: &str, n: usize) -> Vec<Value> {
    spend_logs_when(gw, &format!("request_id={call_id}"), n).await
}

async fn key_spend(gw: &Gateway, key: &str) -> f64 {
    let (_, _, info) = get(&gw.url(&format!("/key/info?key={key}")), Some(MASTER_KEY)).await;
    info["info"]["spend"].as_f64().unwrap()
}

async fn tags_metadata_address_and_prompts(pg: Option<&FreshPostgres>) {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(
        &config(&mock, "  store_prompts_in_spend_logs: true\n", &db_line(pg)),
        &[],
        &[],
    );
    let (key, _) = new_key(&gw).await;
    let url = gw.url("/v1/chat/completions");
    let mut body = chat("priced");
    body["tags"] = json!(["prod", "team-a"]);
    body["metadata"] = json!({
        "tags": ["team-a", "job:42"],
        "spend_logs_metadata": {"job": "from-body", "run": 7}
    });
    let (status, headers, response) = post_raw(
        &url,
        Some(&key),
        body.to_string(),
        &[
            ("x-litellm-tags", "web, prod"),
            (
                "x-litellm-spend-logs-metadata",
                r#"{"job": "from-header", "source": "header"}"#,
            ),
            // Not believed: no trusted-proxy setting exists.
            ("x-forwarded-for", "203.0.113.9"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{response}");
    let call_id = header(&headers, "x-litellm-call-id");
    let row = rows_for(&gw, &call_id, 1).await.remove(0);
    assert_eq!(
        row["request_tags"],
        json!(["prod", "team-a", "job:42", "web"]),
        "{row}"
    );
    assert_eq!(
        row["metadata"]["spend_logs_metadata"],
        json!({"job": "from-body", "run": 7, "source": "header"}),
        "{row}"
    );
    assert_eq!(row["requester_ip_address"], "127.0.0.1", "{row}");
    assert_eq!(row["metadata"]["requester_ip_address"], "127.0.0.1");
    assert_eq!(row["messages"], chat("priced")["messages"], "{row}");
    assert_eq!(row["response"], response, "the whole response body");
    assert!(!row.to_string().contains(&key), "the key is never stored");

    // A stream keeps its messages and its response, assembled from the chunks it relayed.
    let mut streamed = chat("priced");
    streamed["stream"] = json!(true);
    streamed["metadata"] = json!({"tags": ["job:42"]});
    let (status, headers, text) = stream_text(&url, Some(&key), &streamed).await;
    assert_eq!(status, 200, "{text}");
    let row = rows_for(&gw, &header(&headers, "x-litellm-call-id"), 1)
        .await
        .remove(0);
    assert_eq!(row["request_tags"], json!(["job:42"]));
    assert_eq!(row["messages"], chat("priced")["messages"]);
    let relayed: String = sse_data(&text)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert!(!relayed.is_empty(), "{text}");
    assert_eq!(row["response"]["object"], "chat.completion", "{row}");
    assert_eq!(
        row["response"]["choices"][0]["message"]["content"],
        relayed.as_str()
    );

    // An untagged request counts toward no tag.
    let (status, headers, _) = post(&url, Some(&key), &chat("priced")).await;
    assert_eq!(status, 200);
    let untagged = rows_for(&gw, &header(&headers, "x-litellm-call-id"), 1)
        .await
        .remove(0);
    assert_eq!(untagged["request_tags"], json!([]));

    let (status, _, tags) = get(&gw.url("/spend/tags"), Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{tags}");
    let tags = tags.as_array().unwrap();
    let of = |tag: &str| {
        tags.iter()
            .find(|t| t["individual_request_tag"] == tag)
            .unwrap_or_else(|| panic!("{tag} in {tags:?}"))
            .clone()
    };
    assert_eq!(tags.len(), 4, "{tags:?}");
    assert_eq!(of("job:42")["log_count"], 2);
    assert_eq!(of("prod")["log_count"], 1);
    assert!(
        of("job:42")["total_spend"].as_f64().unwrap() > of("prod")["total_spend"].as_f64().unwrap()
    );
    // Dates: today's rows are in today, none in a day long past.
    let today = tollgate::time::iso8601(tollgate::time::now_ms())[..10].to_string();
    let (_, _, in_today) = get(
        &gw.url(&format!("/spend/tags?start_date={today}&end_date={today}")),
        Some(MASTER_KEY),
    )
    .await;
    assert_eq!(in_today.as_array().unwrap().len(), 4, "{in_today}");
    let (_, _, long_ago) = get(
        &gw.url("/spend/tags?start_date=2001-01-01&end_date=2001-01-02"),
        Some(MASTER_KEY),
    )
    .await;
    assert_eq!(long_ago, json!([]));
    let (status, _, _) = get(&gw.url("/spend/tags?start_date=soon"), Some(MASTER_KEY)).await;
    assert_eq!(status, 400);
}

async fn prompts_are_not_stored_by_default_and_old_rows_expire(pg: Option<&FreshPostgres>) {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(
        &config(
            &mock,
            "  maximum_spend_logs_retention_period: 2s\n",
            &db_line(pg),
        ),
        &[],
        &[("TOLLGATE_SPEND_LOG_RETENTION_SWEEP_SECONDS", "0.3")],
    );
    let (key, _) = new_key(&gw).await;
    let (status, headers, _) =
        post(&gw.url("/v1/chat/completions"), Some(&key), &chat("priced")).await;
    assert_eq!(status, 200);
    let cost: f64 = header(&headers, "x-litellm-response-cost").parse().unwrap();
    let call_id = header(&headers, "x-litellm-call-id");
    let row = rows_for(&gw, &call_id, 1).await.remove(0);
    assert_eq!(row["messages"], json!({}), "off by default: {row}");
    assert_eq!(row["response"], json!({}));
    // Older than 2 s: deleted by the sweep; the spend stays on the key.
    rows_for(&gw, &call_id, 0).await;
    assert!((key_spend(&gw, &key).await - cost).abs() < 1e-12);
    assert!(cost > 0.0);
}

async fn disabled_spend_logs_write_no_rows_but_spend_lands(pg: Option<&FreshPostgres>) {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(
        &config(&mock, "  disable_spend_logs: true\n", &db_line(pg)),
        &[],
        &[],
    );
    let (key, _) = new_key(&gw).await;
    let mut total = 0.0;
    for _ in 0..2 {
        let (status, headers, _) =
            post(&gw.url("/v1/chat/completions"), Some(&key), &chat("priced")).await;
        assert_eq!(status, 200);
        total += header(&headers, "x-litellm-response-cost")
            .parse::<f64>()
            .unwrap();
    }
    assert!(total > 0.0);
    wait_for(Duration::from_secs(10), || {
        let gw = &gw;
        let key = key.clone();
        async move { (key_spend(gw, &key).await - total).abs() < 1e-12 }
    })
    .await;
    let (_, _, logs) = get(&gw.url("/spend/logs"), Some(MASTER_KEY)).await;
    assert_eq!(logs, json!([]));
    let (_, _, global) = get(&gw.url("/global/spend"), Some(MASTER_KEY)).await;
    assert_eq!(global["spend"], 0.0, "global spend sums the rows: {global}");
}

#[actix_rt::test]
async fn rows_carry_tags_metadata_address_and_prompts_sqlite() {
    tags_metadata_address_and_prompts(None).await;
}

#[actix_rt::test]
async fn rows_carry_tags_metadata_address_and_prompts_postgres() {
    let pg = FreshPostgres::create();
    tags_metadata_address_and_prompts(Some(&pg)).await;
}

#[actix_rt::test]
async fn retention_deletes_old_rows_sqlite() {
    prompts_are_not_stored_by_default_and_old_rows_expire(None).await;
}

#[actix_rt::test]
async fn retention_deletes_old_rows_postgres() {
    let pg = FreshPostgres::create();
    prompts_are_not_stored_by_default_and_old_rows_expire(Some(&pg)).await;
}

#[actix_rt::test]
async fn disabled_spend_logs_sqlite() {
    disabled_spend_logs_write_no_rows_but_spend_lands(None).await;
}

#[actix_rt::test]
async fn disabled_spend_logs_postgres() {
    let pg = FreshPostgres::create();
    disabled_spend_logs_write_no_rows_but_spend_lands(Some(&pg)).await;
}
