//! One classification of upstream failures, seen from outside: `allowed_fails_policy` keys whose
//! errors cool a deployment the same way (500 and 503) keep their own allowances.

mod common;

use std::time::Duration;

use common::*;

fn entry(mock: &Mock, group: &str, upstream: &str) -> String {
    format!(
        "  - model_name: {group}\n    litellm_params:\n      model: openai/{upstream}\n      api_base: {}\n      api_key: sk-mock-upstream-secret-42\n",
        mock.api_base()
    )
}

async fn calls(mock: &Mock, model: &str) -> u64 {
    mock.stats().await["by_model"][model].as_u64().unwrap_or(0)
}

#[actix_rt::test]
async fn internal_server_and_service_unavailable_allowances_do_not_overwrite_each_other() {
    let mock = Mock::start(&[]);
    // A 500 cools its deployment at the first failure; a 503 is tolerated 100 times a minute.
    // (Both keys once set the same counter, and whichever came last won for both.)
    let cfg = format!(
        "model_list:\n{}{}{}{}general_settings:\n  master_key: {MASTER_KEY}\nrouter_settings:\n  num_retries: 2\n  cooldown_time: 60\n  allowed_fails_policy:\n    InternalServerErrorAllowedFails: 0\n    ServiceUnavailableErrorAllowedFails: 100\n",
        entry(&mock, "g500", "mock-fail-500"),
        entry(&mock, "g500", "good-a"),
        entry(&mock, "g503", "mock-fail-503"),
        entry(&mock, "g503", "good-b"),
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    let url = gw.url("/v1/chat/completions");

    for group in ["g500", "g503"] {
        for _ in 0..30 {
            let (status, _, body) = post(&url, Some(MASTER_KEY), &chat(group)).await;
            assert_eq!(status, 200, "{group}: {body}");
        }
    }
    assert!(calls(&mock, "mock-fail-500").await >= 1);
    let first_503s = calls(&mock, "mock-fail-503").await;
    assert!(
        first_503s >= 2,
        "only {first_503s} calls to the 503 deployment"
    );

    // Let the actors act on the reports, then look again.
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let failing_500 = calls(&mock, "mock-fail-500").await;
    for group in ["g500", "g503"] {
        for _ in 0..30 {
            let (status, _, body) = post(&url, Some(MASTER_KEY), &chat(group)).await;
            assert_eq!(status, 200, "{group}: {body}");
        }
    }
    assert_eq!(
        calls(&mock, "mock-fail-500").await,
        failing_500,
        "the 500 deployment should be cooling down"
    );
    assert!(
        calls(&mock, "mock-fail-503").await > first_503s,
        "the 503 deployment is within its allowance and stays in rotation"
    );
}
