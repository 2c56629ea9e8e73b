//! Supervision: the spend tracker dies mid-load (a panic while writing a batch), the router
//! restarts it, and no spend is lost: every request has its spend-log row and the key's spend is
//! their sum. The rate limiter's actor dies too, and after its restart the limits still hold and
//! requests still pass.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

fn priced_config(mock: &Mock) -> String {
    format!(
        r#"model_list:
  - model_name: priced
    litellm_params: {{model: openai/priced-model, api_base: {base}, api_key: sk-x, input_cost_per_token: 0.001, output_cost_per_token: 0.002}}
general_settings:
  master_key: {MASTER_KEY}
  proxy_batch_write_at: 0.05
"#,
        base = mock.api_base()
    )
}

#[actix_rt::test]
async fn the_spend_tracker_dies_mid_load_and_no_spend_is_lost() {
    const REQUESTS: usize = 40;
    let mock = Mock::start(&[]);
    let gw = Gateway::start(
        &priced_config(&mock),
        &[],
        &[("TOLLGATE_TEST_PANIC_SPEND_TRACKER_AFTER", "5")],
    );
    let (_, _, created) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"key_alias": "supervised"}),
    )
    .await;
    let key = created["key"].as_str().unwrap().to_string();
    let url = gw.url("/v1/chat/completions");

    // Waves of 8 concurrent requests, with pauses so that several batches are written: the
    // tracker panics while writing the batch that brings it past 5 rows.
    let mut total = 0.0;
    let mut call_ids = Vec::new();
    for _ in 0..REQUESTS / 8 {
        let wave = futures_util::future::join_all((0..8).map(|_| {
            let (url, key) = (url.clone(), key.clone());
            async move { post(&url, Some(&key), &chat("priced")).await }
        }))
        .await;
        for (status, headers, body) in wave {
            assert_eq!(status, 200, "{body}");
            let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_string();
            total += header("x-litellm-response-cost").parse::<f64>().unwrap();
            call_ids.push(header("x-litellm-call-id"));
        }
        actix_rt::time::sleep(Duration::from_millis(80)).await;
    }
    assert!(total > 0.0);

    let logs_url = gw.url(&format!("/spend/logs?api_key={key}"));
    wait_for(Duration::from_secs(15), || {
        let logs_url = logs_url.clone();
        async move {
            let (_, _, logs) = get(&logs_url, Some(MASTER_KEY)).await;
            logs.as_array().map(Vec::len) == Some(REQUESTS)
        }
    })
    .await;
    let (_, _, logs) = get(&logs_url, Some(MASTER_KEY)).await;
    let logs = logs.as_array().expect("spend logs").clone();
    let mut logged: Vec<String> = logs
        .iter()
        .map(|l| l["litellm_call_id"].as_str().unwrap().to_string())
        .collect();
    logged.sort();
    call_ids.sort();
    assert_eq!(
        logged, call_ids,
        "every request has exactly one spend-log row"
    );
    let logged_spend: f64 = logs.iter().map(|l| l["spend"].as_f64().unwrap()).sum();
    assert!(
        (logged_spend - total).abs() < 1e-9,
        "{logged_spend} vs {total}"
    );

    // The key's stored spend catches up once the last batch is written.
    let info_url = gw.url(&format!("/key/info?key={key}"));
    wait_for(Duration::from_secs(10), || {
        let info_url = info_url.clone();
        async move {
            let (_, _, info) = get(&info_url, Some(MASTER_KEY)).await;
            info["info"]["spend"]
                .as_f64()
                .is_some_and(|s| (s - total).abs() < 1e-9)
        }
    })
    .await;
    let (_, _, info) = get(&info_url, Some(MASTER_KEY)).await;
    assert!(
        (info["info"]["spend"].as_f64().unwrap() - total).abs() < 1e-9,
        "{info} vs {total}"
    );

    // The tracker did die and was restarted, and nothing was dropped.
    let logs = gw.proc.logs();
    assert!(
        logs.contains("spend tracker: test panic after 5 records"),
        "{logs}"
    );
    let (status, _, metrics) = get_text(&gw.url("/metrics")).await;
    assert_eq!(status, 200, "{metrics}");
    assert!(
        metrics.contains("tollgate_spend_rows_lost_total 0"),
        "{metrics}"
    );
}

#[actix_rt::test]
async fn the_rate_limiter_dies_and_its_limits_still_hold_after_the_restart() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(
        &basic_config(&mock),
        &[],
        &[("TOLLGATE_TEST_PANIC_RATE_LIMITER_AT_SCOPES", "1")],
    );
    let (_, _, created) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"key_alias": "limited", "rpm_limit": 5}),
    )
    .await;
    let key = created["key"].as_str().unwrap().to_string();
    let url = gw.url("/v1/chat/completions");
    clear_of_a_minute_turn(Duration::from_secs(25)).await;

    // The first request gives the limiter a scope to count; its actor panics at its next tick.
    for _ in 0..3 {
        let (status, _, body) = post(&url, Some(&key), &chat("mock-gpt")).await;
        assert_eq!(status, 200, "{body}");
    }
    let metrics_url = gw.url("/metrics");
    wait_for(Duration::from_secs(10), || {
        let metrics_url = metrics_url.clone();
        async move {
            let (_, _, metrics) = get_text(&metrics_url).await;
            metrics.contains("tollgate_rate_limiter_restarts_total 1")
        }
    })
    .await;
    let logs = gw.proc.logs();
    assert!(
        logs.contains("rate limiter: test panic with 1 scopes counted"),
        "{logs}"
    );

    // The counters outlived the actor: the key's window still holds its 3 requests.
    for _ in 0..2 {
        let (status, headers, body) = post(&url, Some(&key), &chat("mock-gpt")).await;
        assert_eq!(status, 200, "{body}");
        assert!(headers.get("x-ratelimit-remaining-requests").is_some());
    }
    let (status, _, body) = post(&url, Some(&key), &chat("mock-gpt")).await;
    assert_eq!(status, 429, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("current rpm: 5, rpm limit: 5"),
        "{message}"
    );

    // Other keys are admitted and counted by the same limiter, and it is not restarted again.
    let (_, _, other) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"rpm_limit": 1}),
    )
    .await;
    let other = other["key"].as_str().unwrap().to_string();
    assert_eq!(post(&url, Some(&other), &chat("mock-gpt")).await.0, 200);
    assert_eq!(post(&url, Some(&other), &chat("mock-gpt")).await.0, 429);
    let (_, _, metrics) = get_text(&metrics_url).await;
    assert!(
        metrics.contains("tollgate_rate_limiter_restarts_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tollgate_rate_limit_scopes 2"),
        "{metrics}"
    );
}
