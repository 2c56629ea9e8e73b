//! Spend: one spend-log row per request (failures too), spend on the key, `/spend/logs` filters,
//! `/global/spend`, and no spend lost on SIGTERM.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn priced_config(mock: &Mock, extra_general: &str, db: &str) -> String {
    format!(
        r#"model_list:
  - model_name: priced
    litellm_params: {{model: openai/priced-model, api_base: {base}, api_key: sk-x, input_cost_per_token: 0.001, output_cost_per_token: 0.002}}
  - model_name: slow-priced
    litellm_params: {{model: openai/slow-priced, api_base: {base}, api_key: sk-x, input_cost_per_token: 0.001, output_cost_per_token: 0.002, extra_headers: {{x-mock-latency-ms: "400"}}}}
general_settings:
  master_key: {MASTER_KEY}
{extra_general}{db}"#,
        base = mock.api_base()
    )
}

fn cost(headers: &Headers) -> f64 {
    headers
        .get("x-litellm-response-cost")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[actix_rt::test]
async fn every_request_gets_a_spend_log_row_and_its_cost_lands_on_the_key() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(
        &priced_config(&mock, "  proxy_batch_write_at: 0.2\n", ""),
        &[],
        &[],
    );
    let (_, _, created) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"key_alias": "billed"}),
    )
    .await;
    let key = created["key"].as_str().unwrap().to_string();
    let token = created["token"].as_str().unwrap().to_string();
    let url = gw.url("/v1/chat/completions");
    let mut total = 0.0;
    let mut call_ids = Vec::new();
    for _ in 0..3 {
        let (status, headers, _) = post(&url, Some(&key), &chat("priced")).await;
        assert_eq!(status, 200);
        total += cost(&headers);
        call_ids.push(
            headers
                .get("x-litellm-call-id")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    let mut failing = chat("priced");
    failing["mock_fail"] = json!("500");
    failing["num_retries"] = json!(0);
    let (status, headers, _) = post(&url, Some(&key), &failing).await;
    assert_eq!(status, 500);
    let failed_id = headers
        .get("x-litellm-call-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();

    let logs = spend_logs_when(&gw, &format!("api_key={key}"), 4).await;
    let spent: f64 = logs.iter().map(|l| l["spend"].as_f64().unwrap()).sum();
    assert!((spent - total).abs() < 1e-9, "{spent} vs {total}");
    let failure = logs
        .iter()
        .find(|l| l["litellm_call_id"] == failed_id.as_str())
        .expect("failure row");
    assert_eq!(failure["status"], "failure");
    // LiteLLM's metadata fields (the key, user, team and organization come from the row).
    let meta = &failure["metadata"];
    assert_eq!(meta["user_api_key"], token.as_str(), "{meta}");
    for field in [
        "user_api_key_alias",
        "user_api_key_user_id",
        "user_api_key_team_id",
        "user_api_key_org_id",
    ] {
        assert!(meta.get(field).is_some(), "{field} in {meta}");
    }
    assert!(meta["error_information"].is_string(), "{meta}");
    assert_eq!(failure["spend"], 0.0);
    assert!(logs
        .iter()
        .all(|l| l["api_key"] == token.as_str() && l["model_group"] == "priced"));
    assert!(logs.iter().any(|l| l["total_tokens"].as_i64().unwrap() > 0));

    let (_, _, one) = get(
        &gw.url(&format!("/spend/logs?request_id={}", call_ids[0])),
        Some(MASTER_KEY),
    )
    .await;
    assert_eq!(one.as_array().unwrap().len(), 1);
    // As in LiteLLM, a row's request_id is the provider's response id (`chatcmpl-…`), and the
    // filter takes it as well as the call id.
    let response_id = one[0]["request_id"].as_str().unwrap().to_string();
    assert!(response_id.starts_with("chatcmpl-"), "{one}");
    assert_eq!(one[0]["litellm_call_id"], call_ids[0].as_str());
    let (_, _, again) = get(
        &gw.url(&format!("/spend/logs?request_id={response_id}")),
        Some(MASTER_KEY),
    )
    .await;
    assert_eq!(again, one);

    let (_, _, info) = get(&gw.url(&format!("/key/info?key={key}")), Some(MASTER_KEY)).await;
    assert!(
        (info["info"]["spend"].as_f64().unwrap() - total).abs() < 1e-9,
        "{info}"
    );
    let (_, _, global) = get(&gw.url("/global/spend"), Some(MASTER_KEY)).await;
    assert!(
        (global["spend"].as_f64().unwrap() - total).abs() < 1e-9,
        "{global}"
    );

    let (status, _, _) = get(
        &gw.url("/spend/logs?start_date=yesterday"),
        Some(MASTER_KEY),
    )
    .await;
    assert_eq!(status, 400);
    let (_, _, today) = get(
        &gw.url(&format!("/spend/logs?start_date={}", &crate_today())),
        Some(MASTER_KEY),
    )
    .await;
    assert_eq!(today.as_array().unwrap().len(), 4);

    // A stream's row takes its response id from the stream's chunks.
    let mut streamed = chat("priced");
    streamed["stream"] = json!(true);
    let (status, headers, text) =
        stream_text(&gw.url("/v1/chat/completions"), Some(MASTER_KEY), &streamed).await;
    assert_eq!(status, 200, "{text}");
    let stream_call = headers
        .get("x-litellm-call-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let chunk_id = sse_data(&text)
        .iter()
        .find_map(|d| serde_json::from_str::<Value>(d).ok())
        .and_then(|c| c["id"].as_str().map(str::to_string))
        .expect("a chunk with an id");
    let stream_url = gw.url(&format!("/spend/logs?request_id={stream_call}"));
    wait_for(Duration::from_secs(10), || {
        let u = stream_url.clone();
        async move {
            get(&u, Some(MASTER_KEY))
                .await
                .2
                .as_array()
                .is_some_and(|a| a.len() == 1)
        }
    })
    .await;
    let (_, _, row) = get(&stream_url, Some(MASTER_KEY)).await;
    assert_eq!(row[0]["request_id"], chunk_id.as_str(), "{row}");
}

fn crate_today() -> String {
    tollgate::time::iso8601(tollgate::time::now_ms())[..10].to_string()
}

#[actix_rt::test]
async fn sigterm_under_load_then_restart_loses_no_spend() {
    let mock = Mock::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let db = format!(
        "  database_url: sqlite:///{}\n",
        dir.path().join("spend.db").display()
    );
    // A batch interval longer than the test: only the shutdown drain can write the rows.
    let cfg = priced_config(&mock, "  proxy_batch_write_at: 3600\n", &db);
    let mut gw = Gateway::start(&cfg, &[], &[]);
    let url = gw.url("/v1/chat/completions");
    // 20 requests in flight (the provider takes 400 ms), then SIGTERM: the gateway finishes them,
    // writes their spend, and exits.
    let pid = gw.proc.child.id().to_string();
    let requests = futures_util::future::join_all((0..20).map(|_| {
        let url = url.clone();
        async move { post(&url, Some(MASTER_KEY), &chat("slow-priced")).await }
    }));
    let terminate = async {
        actix_rt::time::sleep(Duration::from_millis(150)).await;
        assert!(std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
    };
    let (results, ()) = futures_util::future::join(requests, terminate).await;
    let ok: Vec<_> = results.iter().filter(|r| r.0 == 200).collect();
    assert_eq!(
        ok.len(),
        20,
        "in-flight requests finish during a graceful shutdown"
    );
    let total: f64 = ok.iter().map(|r| cost(&r.1)).sum();
    assert!(total > 0.0);
    let exited = gw.proc.child.wait().unwrap();
    assert!(exited.success(), "{exited:?}");

    let gw = Gateway::start(&cfg, &[], &[]);
    let (_, _, global) = get(&gw.url("/global/spend"), Some(MASTER_KEY)).await;
    assert!(
        (global["spend"].as_f64().unwrap() - total).abs() < 1e-9,
        "{global} vs {total}"
    );
    let (_, _, logs) = get(&gw.url("/spend/logs"), Some(MASTER_KEY)).await;
    assert_eq!(logs.as_array().map(Vec::len), Some(20), "{logs}");
    let _: Value = logs;
}

#[actix_rt::test]
async fn a_key_over_its_max_budget_is_refused_and_key_spend_is_reported() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(
        &priced_config(&mock, "  proxy_batch_write_at: 0.2\n", ""),
        &[],
        &[],
    );
    // One call costs a few cents at these prices; the budget allows about one.
    let (_, _, created) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"max_budget": 0.01}),
    )
    .await;
    let key = created["key"].as_str().unwrap().to_string();
    let url = gw.url("/v1/chat/completions");
    let (status, headers, _) = post(&url, Some(&key), &chat("priced")).await;
    assert_eq!(status, 200);
    let first = cost(&headers);
    let spend: f64 = headers
        .get("x-litellm-key-spend")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (spend - first).abs() < 1e-9,
        "key spend includes this response: {spend} vs {first}"
    );
    assert!(
        first >= 0.01,
        "the test needs one call to use the budget up ({first})"
    );
    // At once (before any batch write), and after the write too.
    for round in 0..2 {
        let (status, _, body) = post(&url, Some(&key), &chat("priced")).await;
        let (_, _, info) = get(&gw.url(&format!("/key/info?key={key}")), Some(MASTER_KEY)).await;
        assert_eq!(status, 400, "round {round}: {body} {info}");
        assert_eq!(body["error"]["type"], "budget_exceeded");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Budget has been exceeded"),
            "{body}"
        );
        actix_rt::time::sleep(Duration::from_millis(500)).await;
    }
    // A user's budget applies to all the user's keys.
    let (status, _, _) = post(
        &gw.url("/user/new"),
        Some(MASTER_KEY),
        &json!({"user_id": "frugal", "max_budget": 0.01, "auto_create_key": false}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, _, a) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"user_id": "frugal"}),
    )
    .await;
    let (_, _, b) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"user_id": "frugal"}),
    )
    .await;
    assert_eq!(
        post(&url, Some(a["key"].as_str().unwrap()), &chat("priced"))
            .await
            .0,
        200
    );
    let (status, _, body) = post(&url, Some(b["key"].as_str().unwrap()), &chat("priced")).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("User=frugal"),
        "{body}"
    );
}
