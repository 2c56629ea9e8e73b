//! Logging callbacks against the mock provider's receivers (which check each receiver's wire format
//! and auth): Langfuse, the generic API, Datadog, LangSmith, Sentry (failures only) and S3 (SigV4
//! signed objects) get what their lists ask for, with the prompt and the completion (a stream's
//! assembled) unless `turn_off_message_logging`, never a key or a credential; a hanging or failing
//! receiver never slows or fails a request, and its drops are counted.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn config(mock: &Mock, callbacks: &str) -> String {
    format!("{}litellm_settings:\n{callbacks}", basic_config(mock))
}

fn envs(mock: &Mock, generic_query: &str) -> Vec<(String, String)> {
    vec![
        ("LANGFUSE_PUBLIC_KEY".into(), "pk-lf-test".into()),
        ("LANGFUSE_SECRET_KEY".into(), "sk-lf-secret".into()),
        ("LANGFUSE_HOST".into(), mock.proc.url.clone()),
        (
            "GENERIC_LOGGER_ENDPOINT".into(),
            format!("{}/mock/receivers/generic{generic_query}", mock.proc.url),
        ),
        (
            "GENERIC_LOGGER_HEADERS".into(),
            "authorization=Bearer logger-token,x-team=platform".into(),
        ),
    ]
}

fn start(cfg: &str, envs: &[(String, String)]) -> Gateway {
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Gateway::start(cfg, &[], &envs)
}

async fn received(mock: &Mock) -> Value {
    get(&format!("{}/mock/receivers", mock.proc.url), None)
        .await
        .2
}

fn call_id(headers: &Headers) -> String {
    headers
        .get("x-litellm-call-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

#[actix_rt::test]
async fn langfuse_and_the_generic_api_get_what_their_lists_ask_for() {
    let mock = Mock::start(&[]);
    let gw = start(
        &config(
            &mock,
            "  success_callback: [langfuse]\n  failure_callback: [generic_api]\n",
        ),
        &envs(&mock, ""),
    );
    let (_, _, created) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"key_alias": "logged"}),
    )
    .await;
    let key = created["key"].as_str().unwrap().to_string();
    let token = created["token"].as_str().unwrap().to_string();
    let url = gw.url("/v1/chat/completions");
    let (status, ok_headers, _) = post(&url, Some(&key), &chat("mock-gpt")).await;
    assert_eq!(status, 200);
    let mut failing = chat("mock-gpt");
    failing["mock_fail"] = json!("500");
    failing["num_retries"] = json!(0);
    let (status, fail_headers, _) = post(&url, Some(&key), &failing).await;
    assert_eq!(status, 500);
    let (ok_id, fail_id) = (call_id(&ok_headers), call_id(&fail_headers));

    wait_for(Duration::from_secs(15), || {
        let mock = &mock;
        async move {
            let r = received(mock).await;
            r["langfuse"]["batches"]
                .as_array()
                .is_some_and(|b| !b.is_empty())
                && r["generic"]["batches"]
                    .as_array()
                    .is_some_and(|b| !b.is_empty())
        }
    })
    .await;
    let r = received(&mock).await;
    assert_eq!(r["rejected"], 0, "{r}");

    // Langfuse: the success only, as a trace and its generation, with basic auth.
    assert_eq!(r["langfuse"]["users"][0], "pk-lf-test");
    let events: Vec<&Value> = r["langfuse"]["batches"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["batch"].as_array().unwrap())
        .collect();
    let trace = events
        .iter()
        .find(|e| e["type"] == "trace-create")
        .expect("trace");
    assert_eq!(trace["body"]["id"], ok_id.as_str());
    let generation = events
        .iter()
        .find(|e| e["type"] == "generation-create")
        .expect("generation");
    assert_eq!(generation["body"]["traceId"], ok_id.as_str());
    assert!(generation["body"]["usage"]["total"].as_u64().unwrap() > 0);
    assert_eq!(
        generation["body"]["metadata"]["user_api_key_hash"],
        token.as_str()
    );
    assert!(!events.iter().any(|e| e["body"]["id"] == fail_id.as_str()));

    // The generic API: the failure only, LiteLLM's standard payload, with the configured headers.
    let payloads: Vec<&Value> = r["generic"]["batches"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b.as_array().unwrap())
        .collect();
    assert_eq!(payloads.len(), 1, "{payloads:?}");
    let p = payloads[0];
    assert_eq!(p["id"], fail_id.as_str());
    assert_eq!(p["status"], "failure");
    assert_eq!(p["metadata"]["user_api_key_alias"], "logged");
    assert_eq!(p["metadata"]["user_api_key_hash"], token.as_str());
    assert!(
        p["error_str"].as_str().unwrap().contains("injected 500"),
        "{p}"
    );
    let headers = &r["generic"]["headers"][0];
    assert_eq!(headers["authorization"], "Bearer logger-token");
    assert_eq!(headers["x-team"], "platform");

    // No payload carries the key or the upstream credential.
    let all = r.to_string();
    assert!(!all.contains(&key), "the virtual key leaked");
    assert!(!all.contains(MASTER_KEY));
    assert!(!all.contains("sk-mock-upstream-secret-42"));
}

#[actix_rt::test]
async fn a_hanging_receiver_never_slows_requests() {
    let mock = Mock::start(&[]);
    let gw = start(
        &config(&mock, "  callbacks: [generic_api]\n"),
        &envs(&mock, "?hang_ms=20000"),
    );
    let url = gw.url("/v1/chat/completions");
    let started = Instant::now();
    for _ in 0..40 {
        let (status, _, _) = post(&url, Some(MASTER_KEY), &chat("mock-gpt")).await;
        assert_eq!(status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "40 requests took {:?}",
        started.elapsed()
    );
}

#[actix_rt::test]
async fn a_failing_receiver_is_retried_then_counted() {
    let mock = Mock::start(&[]);
    let gw = start(
        &config(&mock, "  callbacks: [generic_api]\n"),
        &envs(&mock, "?status=500"),
    );
    let (status, _, _) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat("mock-gpt"),
    )
    .await;
    assert_eq!(status, 200);
    wait_for(Duration::from_secs(20), || {
        let gw = &gw;
        async move {
            let (_, _, metrics) = get_text(&gw.url("/metrics")).await;
            metrics.contains(
                "litellm_callback_logging_failures_metric_total{callback_name=\"generic_api\"} 1",
            )
        }
    })
    .await;
}

fn texts(r: &Value) -> Vec<String> {
    r["slack"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["text"].as_str().map(str::to_string))
        .collect()
}

#[actix_rt::test]
async fn slack_hears_of_budgets_cooldowns_and_slow_requests_once_each() {
    let mock = Mock::start(&[]);
    let cfg = format!(
        r#"model_list:
  - model_name: priced
    litellm_params: {{model: openai/priced, api_base: {base}, api_key: sk-x, input_cost_per_token: 0.01, output_cost_per_token: 0.01}}
  - model_name: broken
    litellm_params: {{model: openai/mock-fail-401, api_base: {base}, api_key: sk-x}}
  - model_name: slow
    litellm_params: {{model: openai/slow, api_base: {base}, api_key: sk-x, extra_headers: {{x-mock-latency-ms: "400"}}}}
router_settings:
  cooldown_time: 30
general_settings:
  master_key: {MASTER_KEY}
  alerting: ["slack"]
  alert_types: [budget_alerts, cooldown_deployment, llm_too_slow]
  alerting_threshold: 0.2
"#,
        base = mock.api_base()
    );
    let slack = format!("{}/mock/receivers/slack", mock.proc.url);
    let gw = Gateway::start(&cfg, &[], &[("SLACK_WEBHOOK_URL", &slack)]);
    let url = gw.url("/v1/chat/completions");
    let (_, _, created) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"key_alias": "thrifty", "max_budget": 0.000001}),
    )
    .await;
    let key = created["key"].as_str().unwrap().to_string();
    // The first request spends past the budget; the next ones are refused (one alert for all).
    assert_eq!(post(&url, Some(&key), &chat("priced")).await.0, 200);
    for _ in 0..3 {
        let (status, _, body) = post(&url, Some(&key), &chat("priced")).await;
        assert_eq!(status, 400, "{body}");
    }
    // A deployment that fails with 401 cools down.
    assert_eq!(post(&url, Some(MASTER_KEY), &chat("broken")).await.0, 401);
    // A request over the 0.2 s threshold.
    assert_eq!(post(&url, Some(MASTER_KEY), &chat("slow")).await.0, 200);

    wait_for(Duration::from_secs(15), || {
        let mock = &mock;
        async move {
            let t = texts(&received(mock).await);
            t.iter().any(|m| m.contains("budget_alerts"))
                && t.iter().any(|m| m.contains("cooldown_deployment"))
                && t.iter().any(|m| m.contains("llm_too_slow"))
        }
    })
    .await;
    let t = texts(&received(&mock).await);
    let budget: Vec<&String> = t.iter().filter(|m| m.contains("budget_alerts")).collect();
    assert_eq!(budget.len(), 1, "deduplicated: {t:?}");
    assert!(budget[0].contains("thrifty"), "{t:?}");
    assert!(t
        .iter()
        .any(|m| m.contains("cooldown_deployment") && m.contains("broken")));
    assert!(t
        .iter()
        .any(|m| m.contains("llm_too_slow") && m.contains("slow")));
    assert!(
        !t.iter().any(|m| m.contains(&key) || m.contains("sk-x")),
        "{t:?}"
    );
    let (_, _, metrics) = get_text(&gw.url("/metrics")).await;
    assert!(
        metrics.contains("tollgate_alerts_sent_total 3"),
        "{metrics}"
    );
}

#[actix_rt::test]
async fn slack_hears_of_a_hanging_request_while_it_still_runs() {
    let mock = Mock::start(&[]);
    let cfg = format!(
        r#"model_list:
  - model_name: stuck
    litellm_params: {{model: openai/stuck, api_base: {base}, api_key: sk-x, extra_headers: {{x-mock-latency-ms: "4000"}}}}
general_settings:
  master_key: {MASTER_KEY}
  alerting: ["slack"]
  alerting_threshold: 1
"#,
        base = mock.api_base()
    );
    let slack = format!("{}/mock/receivers/slack", mock.proc.url);
    let gw = Gateway::start(&cfg, &[], &[("SLACK_WEBHOOK_URL", &slack)]);
    let url = gw.url("/v1/chat/completions");
    let started = std::time::Instant::now();
    let request =
        actix_rt::spawn(async move { post(&url, Some(MASTER_KEY), &chat("stuck")).await.0 });
    wait_for(Duration::from_secs(10), || {
        let mock = &mock;
        async move {
            texts(&received(mock).await)
                .iter()
                .any(|m| m.contains("llm_requests_hanging"))
        }
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_millis(4000),
        "the alert came while the request was still running"
    );
    assert!(!request.is_finished());
    assert_eq!(request.await.unwrap(), 200);
    let t = texts(&received(&mock).await);
    let hanging: Vec<&String> = t
        .iter()
        .filter(|m| m.contains("llm_requests_hanging"))
        .collect();
    assert_eq!(hanging.len(), 1, "{t:?}");
    assert!(hanging[0].contains("stuck"), "{t:?}");
}

#[test]
fn alerting_without_its_webhook_stops_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        format!(
            "model_list: []\ngeneral_settings:\n  master_key: {MASTER_KEY}\n  alerting: [slack]\n"
        ),
    )
    .unwrap();
    let (code, _, stderr) = run_to_end(
        &[
            "--config",
            &path.to_string_lossy(),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ],
        &[],
        dir.path(),
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("SLACK_WEBHOOK_URL"), "{stderr}");
}

/// A streamed chat request: its call id and the text it relayed.
async fn streamed(url: &str, key: &str) -> (String, String) {
    let mut body = chat("mock-gpt");
    body["stream"] = json!(true);
    let (status, headers, text) = stream_text(url, Some(key), &body).await;
    assert_eq!(status, 200, "{text}");
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
    (call_id(&headers), relayed)
}

fn items<'a>(batches: &'a Value, inner: Option<&str>) -> Vec<&'a Value> {
    batches
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|b| {
            match inner {
                Some(k) => &b[k],
                None => b,
            }
            .as_array()
            .into_iter()
            .flatten()
        })
        .collect()
}

#[actix_rt::test]
async fn datadog_langsmith_sentry_and_s3_receive_signed_payloads_with_prompts_and_streams() {
    let mock = Mock::start(&[]);
    let port = mock.proc.url.rsplit(':').next().unwrap().to_string();
    let cfg = config(
        &mock,
        &format!(
            "  callbacks: [datadog, langsmith, s3]\n  failure_callback: [sentry]\n  s3_callback_params:\n    s3_bucket_name: tollgate-logs\n    s3_region_name: us-east-1\n    s3_path: gateway/prod\n    s3_endpoint_url: {}/s3\n    s3_aws_access_key_id: os.environ/TEST_S3_ACCESS_KEY\n    s3_aws_secret_access_key: os.environ/TEST_S3_SECRET\n",
            mock.proc.url
        ),
    );
    let envs = vec![
        ("DD_API_KEY".to_string(), "dd-test-key".to_string()),
        ("DD_BASE_URL".into(), mock.proc.url.clone()),
        ("DD_SERVICE".into(), "gateway".into()),
        ("LANGSMITH_API_KEY".into(), "ls-test-key".into()),
        ("LANGSMITH_BASE_URL".into(), mock.proc.url.clone()),
        ("LANGSMITH_PROJECT".into(), "tollgate-tests".into()),
        (
            "SENTRY_DSN".into(),
            format!("http://PUBLIC@127.0.0.1:{port}/42"),
        ),
        ("TEST_S3_ACCESS_KEY".into(), "AKIDEXAMPLE".into()),
        (
            "TEST_S3_SECRET".into(),
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        ),
    ];
    let gw = start(&cfg, &envs);
    let (_, _, created) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"key_alias": "observed"}),
    )
    .await;
    let key = created["key"].as_str().unwrap().to_string();
    let url = gw.url("/v1/chat/completions");
    let (status, headers, answer) = post(&url, Some(&key), &chat("mock-gpt")).await;
    assert_eq!(status, 200);
    let ok_id = call_id(&headers);
    let (stream_id, relayed) = streamed(&url, &key).await;
    let mut failing = chat("mock-gpt");
    failing["mock_fail"] = json!("500");
    failing["num_retries"] = json!(0);
    let (status, headers, _) = post(&url, Some(&key), &failing).await;
    assert_eq!(status, 500);
    let fail_id = call_id(&headers);

    wait_for(Duration::from_secs(20), || {
        let mock = &mock;
        async move {
            let r = received(mock).await;
            items(&r["datadog"]["batches"], None).len() == 3
                && items(&r["langsmith"]["batches"], Some("post")).len() == 3
                && r["sentry"]["envelopes"]
                    .as_array()
                    .is_some_and(|e| !e.is_empty())
                && r["s3"]["objects"].as_array().is_some_and(|o| o.len() == 3)
        }
    })
    .await;
    let r = received(&mock).await;
    assert_eq!(r["rejected"], 0, "{r}");

    // Datadog: the standard payload as each item's message; info for successes, error for the
    // failure; the configured key and service.
    assert!(r["datadog"]["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k == "dd-test-key"));
    let logs: Vec<(Value, &Value)> = items(&r["datadog"]["batches"], None)
        .into_iter()
        .map(|i| {
            (
                serde_json::from_str(i["message"].as_str().unwrap()).unwrap(),
                i,
            )
        })
        .collect();
    let log = |id: &str| logs.iter().find(|(m, _)| m["id"] == id).expect(id);
    let (ok, item) = log(&ok_id);
    assert_eq!(item["status"], "info");
    assert_eq!(item["service"], "gateway");
    assert_eq!(item["ddsource"], "litellm");
    assert_eq!(ok["messages"], chat("mock-gpt")["messages"], "{ok}");
    assert_eq!(
        ok["response"], answer,
        "the prompt and completion by default"
    );
    let (stream_log, _) = log(&stream_id);
    assert_eq!(
        stream_log["response"]["choices"][0]["message"]["content"],
        relayed.as_str(),
        "a stream's response, assembled"
    );
    let (failure, item) = log(&fail_id);
    assert_eq!(item["status"], "error");
    assert_eq!(failure["status"], "failure");

    // LangSmith: one root llm run per request, in the configured project.
    assert!(r["langsmith"]["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k == "ls-test-key"));
    let runs = items(&r["langsmith"]["batches"], Some("post"));
    let run = |id: &str| *runs.iter().find(|run| run["inputs"]["id"] == id).expect(id);
    let ok_run = run(&ok_id);
    assert_eq!(ok_run["run_type"], "llm");
    assert_eq!(ok_run["session_name"], "tollgate-tests");
    assert_eq!(ok_run["trace_id"], ok_run["id"]);
    assert_eq!(ok_run["outputs"], answer);
    assert!(ok_run.get("error").is_none_or(Value::is_null));
    assert_eq!(
        run(&stream_id)["outputs"]["choices"][0]["message"]["content"],
        relayed.as_str()
    );
    assert!(run(&fail_id)["error"]
        .as_str()
        .unwrap()
        .contains("injected 500"));

    // Sentry: the failure only, with the DSN's public key.
    let envelopes = r["sentry"]["envelopes"].as_array().unwrap();
    assert_eq!(envelopes.len(), 1, "{envelopes:?}");
    let event = &envelopes[0]["event"];
    assert_eq!(envelopes[0]["project_id"], "42");
    assert_eq!(r["sentry"]["keys"][0], "PUBLIC");
    assert_eq!(event["level"], "error");
    assert_eq!(event["tags"]["call_id"], fail_id.as_str());
    assert_eq!(event["tags"]["model"], "mock-gpt");
    assert!(event["exception"]["values"][0]["value"]
        .as_str()
        .unwrap()
        .contains("injected 500"));

    // S3: one signed object per request, `{s3_path}/{date}/time-{time}_{call id}.json`.
    let objects = r["s3"]["objects"].as_array().unwrap();
    for id in [&ok_id, &stream_id, &fail_id] {
        let object = objects
            .iter()
            .find(|o| o["body"]["id"] == id.as_str())
            .expect("an object per request");
        assert_eq!(object["bucket"], "tollgate-logs");
        assert_eq!(object["content_type"], "application/json");
        let key = object["key"].as_str().unwrap();
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts[..2], ["gateway", "prod"], "{key}");
        assert!(
            parts[2].len() == 10 && parts[2].as_bytes()[4] == b'-',
            "a date: {key}"
        );
        assert!(parts[3].starts_with("time-"), "{key}");
        assert!(parts[3].ends_with(&format!("_{id}.json")), "{key}");
    }

    // No payload of any receiver carries the key, the master key, the upstream credential or
    // the AWS secret.
    let all = r.to_string();
    for secret in [
        key.as_str(),
        MASTER_KEY,
        "sk-mock-upstream-secret-42",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    ] {
        assert!(!all.contains(secret), "{secret} leaked into a payload");
    }
}

#[actix_rt::test]
async fn an_s3_object_with_a_bad_signature_is_refused_and_counted() {
    let mock = Mock::start(&[]);
    let cfg = config(
        &mock,
        &format!(
            "  callbacks: [s3]\n  s3_callback_params:\n    s3_bucket_name: logs\n    s3_endpoint_url: {}/s3\n    s3_aws_access_key_id: AKIDEXAMPLE\n    s3_aws_secret_access_key: not-the-secret\n",
            mock.proc.url
        ),
    );
    let gw = start(&cfg, &[]);
    let (status, _, _) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat("mock-gpt"),
    )
    .await;
    assert_eq!(status, 200);
    wait_for(Duration::from_secs(20), || {
        let gw = &gw;
        async move {
            let (_, _, metrics) = get_text(&gw.url("/metrics")).await;
            metrics
                .contains("litellm_callback_logging_failures_metric_total{callback_name=\"s3\"} 1")
        }
    })
    .await;
    let r = received(&mock).await;
    assert_eq!(r["s3"]["objects"], json!([]));
    assert!(r["rejected"].as_u64().unwrap() >= 1, "{r}");
}

#[actix_rt::test]
async fn turn_off_message_logging_keeps_prompts_and_completions_out_of_payloads() {
    let mock = Mock::start(&[]);
    let gw = start(
        &config(
            &mock,
            "  callbacks: [generic_api, langfuse]\n  turn_off_message_logging: true\n",
        ),
        &envs(&mock, ""),
    );
    let url = gw.url("/v1/chat/completions");
    let mut body = chat("mock-gpt");
    body["messages"][0]["content"] = json!("the secret launch plan");
    let (status, _, answer) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200);
    let completion = answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for(Duration::from_secs(15), || {
        let mock = &mock;
        async move {
            let r = received(mock).await;
            !items(&r["generic"]["batches"], None).is_empty()
                && r["langfuse"]["batches"]
                    .as_array()
                    .is_some_and(|b| !b.is_empty())
        }
    })
    .await;
    let r = received(&mock).await;
    let payload = items(&r["generic"]["batches"], None)[0];
    assert_eq!(
        payload["messages"],
        json!([{"role": "user", "content": "redacted-by-litellm"}])
    );
    assert_eq!(payload["response"], "redacted-by-litellm");
    let all = r.to_string();
    assert!(!all.contains("secret launch plan"), "{all}");
    assert!(!all.contains(&completion), "{all}");
}
