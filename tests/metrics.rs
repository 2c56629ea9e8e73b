//! LiteLLM's Prometheus series on `/metrics`, against the real gateway and the mock provider: known
//! traffic (successes on two keys, a failure that cools its deployment down, a fallback, a stream)
//! and the scrape's names, label names and values; `require_auth_for_metrics_endpoint`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use sha2::Digest;

const INPUT_PRICE: f64 = 0.001;
const OUTPUT_PRICE: f64 = 0.002;

fn config(mock: &Mock, extra: &str) -> String {
    let base = mock.api_base();
    format!(
        r#"model_list:
  - model_name: good
    litellm_params: {{model: openai/good-a, api_base: {base}, api_key: sk-x, input_cost_per_token: {INPUT_PRICE}, output_cost_per_token: {OUTPUT_PRICE}, rpm: 100, tpm: 100000}}
  - model_name: primary
    litellm_params: {{model: openai/mock-fail-503, api_base: {base}, api_key: sk-x}}
  - model_name: backup
    litellm_params: {{model: openai/good-backup, api_base: {base}, api_key: sk-x}}
  - model_name: broken
    litellm_params: {{model: openai/mock-fail-401, api_base: {base}, api_key: sk-x}}
general_settings:
  master_key: {MASTER_KEY}
router_settings:
  num_retries: 0
  cooldown_time: 60
litellm_settings:
  callbacks: ["prometheus"]
  fallbacks: [{{"primary": ["backup"]}}]
{extra}"#
    )
}

/// One series of a scrape: its name, labels in exposition order, and value.
#[derive(Debug, Clone)]
struct Series {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Series {
    fn label(&self, name: &str) -> &str {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{} has no label {name}: {self:?}", self.name))
    }

    fn label_names(&self) -> Vec<&str> {
        self.labels.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// Parse the OpenMetrics text (label values here hold no escaped quotes or commas).
fn parse(text: &str) -> Vec<Series> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (head, value) = line.rsplit_once(' ').expect("a value");
        let (name, labels) = match head.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let labels = body
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (n, v) = p.split_once("=\"").expect("label=\"value\"");
                        (n.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
            None => (head.to_string(), Vec::new()),
        };
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().expect("a number"),
        };
        out.push(Series {
            name,
            labels,
            value,
        });
    }
    out
}

/// The series named `name` whose labels include every `(label, value)` of `filter`.
fn select<'a>(all: &'a [Series], name: &str, filter: &[(&str, &str)]) -> Vec<&'a Series> {
    all.iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            filter
                .iter()
                .all(|(n, v)| s.labels.iter().any(|(ln, lv)| ln == n && lv == v))
        })
        .collect()
}

fn sum(all: &[Series], name: &str, filter: &[(&str, &str)]) -> f64 {
    select(all, name, filter).iter().map(|s| s.value).sum()
}

async fn scrape(gw: &Gateway, key: Option<&str>) -> (u16, String) {
    let (status, _, body) = get(&gw.url("/metrics"), key).await;
    let text = match body {
        Value::String(s) => s,
        other => other.to_string(),
    };
    (status, text)
}

/// Scrape until `ready` holds (the accounting of a stream's end, and cooldowns, land just after
/// the client has its answer).
async fn scrape_until(gw: &Gateway, ready: impl Fn(&[Series]) -> bool) -> (String, Vec<Series>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, text) = scrape(gw, None).await;
        assert_eq!(status, 200, "{text}");
        let series = parse(&text);
        if ready(&series) {
            return (text, series);
        }
        assert!(
            Instant::now() < deadline,
            "the scrape never settled:\n{text}"
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn new_key(gw: &Gateway, body: Value) -> String {
    let (status, _, created) = post(&gw.url("/key/generate"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{created}");
    created["key"].as_str().unwrap().to_string()
}

fn hash(key: &str) -> String {
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

fn cost(usage: &Value) -> f64 {
    usage["prompt_tokens"].as_f64().unwrap() * INPUT_PRICE
        + usage["completion_tokens"].as_f64().unwrap() * OUTPUT_PRICE
}

/// Prompt and completion tokens of `usage`.
fn tokens(usage: &Value) -> (u64, u64) {
    (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    )
}

#[actix_rt::test]
async fn a_scrape_after_known_traffic_has_litellms_series_and_values() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, ""), &[], &[]);
    let key_a = new_key(&gw, json!({"key_alias": "alias-a", "max_budget": 10.0})).await;
    let key_b = new_key(&gw, json!({})).await;
    let (hash_a, hash_b) = (hash(&key_a), hash(&key_b));
    let chat_url = gw.url("/v1/chat/completions");

    // Key A: two answers and a stream on `good`; key B: one answer.
    let (mut input_a, mut output_a, mut spend_a) = (0, 0, 0.0);
    for _ in 0..2 {
        let (status, _, body) = post(&chat_url, Some(&key_a), &chat("good")).await;
        assert_eq!(status, 200, "{body}");
        let (i, o) = tokens(&body["usage"]);
        input_a += i;
        output_a += o;
        spend_a += cost(&body["usage"]);
    }
    let mut streamed = chat("good");
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let (status, _, text) = stream_text(&chat_url, Some(&key_a), &streamed).await;
    assert_eq!(status, 200, "{text}");
    let usage = sse_data(&text)
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .find(|c| c["usage"].is_object())
        .expect("the stream's usage chunk")["usage"]
        .clone();
    let (i, o) = tokens(&usage);
    input_a += i;
    output_a += o;
    spend_a += cost(&usage);
    let (status, _, body) = post(&chat_url, Some(&key_b), &chat("good")).await;
    assert_eq!(status, 200, "{body}");

    // Key A: a bad credential upstream (401 cools the deployment down).
    let (status, _, body) = post(&chat_url, Some(&key_a), &chat("broken")).await;
    assert_eq!(status, 401, "{body}");
    // Key B: `primary` fails with 503 and falls back to `backup`.
    let (status, _, body) = post(&chat_url, Some(&key_b), &chat("primary")).await;
    assert_eq!(status, 200, "{body}");

    let (text, all) = scrape_until(&gw, |all| {
        sum(all, "litellm_llm_api_time_to_first_token_metric_count", &[]) >= 1.0
            && sum(all, "litellm_deployment_cooled_down_total", &[]) >= 1.0
            && sum(all, "litellm_proxy_total_requests_metric_total", &[]) >= 6.0
    })
    .await;

    // Keys appear by their hash only.
    assert!(!text.contains(&key_a) && !text.contains(&key_b));
    assert!(!text.contains("hashed_api_key=\"sk-"), "{text}");

    let a = [("hashed_api_key", hash_a.as_str())];
    let b = [("hashed_api_key", hash_b.as_str())];

    // Requests the proxy answered, by status.
    let total = "litellm_proxy_total_requests_metric_total";
    assert_eq!(
        sum(
            &all,
            total,
            &[a[0], ("status_code", "200"), ("requested_model", "good")]
        ),
        3.0
    );
    assert_eq!(sum(&all, total, &[a[0], ("status_code", "401")]), 1.0);
    assert_eq!(sum(&all, total, &[b[0], ("status_code", "200")]), 2.0);
    let series = select(&all, total, &a)[0];
    assert_eq!(
        series.label_names(),
        [
            "end_user",
            "hashed_api_key",
            "api_key_alias",
            "requested_model",
            "team",
            "team_alias",
            "user",
            "status_code",
            "user_email",
            "route",
            "client_ip",
            "user_agent",
            "model_id",
            "api_provider"
        ]
    );
    assert_eq!(series.label("api_key_alias"), "alias-a");

    // The failure.
    let failed = select(&all, "litellm_proxy_failed_requests_metric_total", &a);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].value, 1.0);
    assert_eq!(failed[0].label("exception_status"), "401");
    assert_eq!(failed[0].label("requested_model"), "broken");
    assert!(
        failed[0]
            .label("exception_class")
            .ends_with("AuthenticationError"),
        "{failed:?}"
    );
    assert!(select(&all, "litellm_proxy_failed_requests_metric_total", &b).is_empty());

    // Successful LLM requests, tokens and spend.
    assert_eq!(sum(&all, "litellm_requests_metric_total", &a), 3.0);
    assert_eq!(sum(&all, "litellm_requests_metric_total", &b), 2.0);
    assert_eq!(
        sum(&all, "litellm_input_tokens_metric_total", &a),
        input_a as f64
    );
    assert_eq!(
        sum(&all, "litellm_output_tokens_metric_total", &a),
        output_a as f64
    );
    assert_eq!(
        sum(&all, "litellm_total_tokens_metric_total", &a),
        (input_a + output_a) as f64
    );
    let spend = sum(&all, "litellm_spend_metric_total", &a);
    assert!((spend - spend_a).abs() < 1e-9, "{spend} vs {spend_a}");
    let tokens_series = select(&all, "litellm_input_tokens_metric_total", &a)[0];
    assert_eq!(
        tokens_series.label_names(),
        [
            "end_user",
            "hashed_api_key",
            "api_key_alias",
            "model",
            "team",
            "team_alias",
            "user",
            "user_email",
            "requested_model",
            "model_id",
            "api_provider"
        ]
    );
    assert_eq!(tokens_series.label("api_provider"), "openai");

    // Histograms: the total latency of every success, the provider latency of every answered
    // attempt, the time to first token of the stream, the overhead of the complete answers.
    let good = ("model_group", "good");
    assert_eq!(
        sum(&all, "litellm_request_total_latency_metric_count", &a),
        3.0
    );
    assert_eq!(
        sum(&all, "litellm_llm_api_latency_metric_count", &[a[0], good]),
        3.0
    );
    assert_eq!(
        sum(&all, "litellm_llm_api_time_to_first_token_metric_count", &a),
        1.0
    );
    assert_eq!(
        sum(&all, "litellm_overhead_latency_metric_count", &[a[0], good]),
        2.0
    );
    let buckets = select(
        &all,
        "litellm_request_total_latency_metric_bucket",
        &[a[0], ("le", "300.0")],
    );
    assert_eq!(buckets.iter().map(|s| s.value).sum::<f64>(), 3.0);

    // Deployments: attempts, answers, failures, remaining rpm/tpm, cooldowns.
    assert_eq!(
        sum(&all, "litellm_deployment_total_requests_total", &[good]),
        4.0
    );
    assert_eq!(
        sum(&all, "litellm_deployment_success_responses_total", &[good]),
        4.0
    );
    let failures = select(
        &all,
        "litellm_deployment_failure_responses_total",
        &[("model_group", "broken")],
    );
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].label("exception_status"), "401");
    assert_eq!(failures[0].label("hashed_api_key"), hash_a);
    assert_eq!(
        sum(
            &all,
            "litellm_deployment_failure_responses_total",
            &[("model_group", "primary"), ("exception_status", "503")]
        ),
        1.0
    );
    let remaining = select(&all, "litellm_remaining_requests_metric", &[good, a[0]]);
    assert_eq!(remaining.len(), 1, "{remaining:?}");
    assert!((90.0..100.0).contains(&remaining[0].value), "{remaining:?}");
    assert_eq!(
        remaining[0].label_names(),
        [
            "model_group",
            "api_provider",
            "api_base",
            "litellm_model_name",
            "hashed_api_key",
            "api_key_alias",
            "model_id"
        ]
    );
    let tokens_left = sum(&all, "litellm_remaining_tokens_metric", &[good, a[0]]);
    assert!(
        tokens_left > 0.0 && tokens_left < 100_000.0,
        "{tokens_left}"
    );
    let cooled = select(&all, "litellm_deployment_cooled_down_total", &[]);
    let broken: Vec<_> = cooled
        .iter()
        .filter(|s| s.label("litellm_model_name").contains("mock-fail-401"))
        .collect();
    assert_eq!(broken.len(), 1, "{cooled:?}");
    assert!(broken[0].value >= 1.0);
    assert_eq!(
        broken[0].label_names(),
        [
            "litellm_model_name",
            "model_id",
            "api_base",
            "api_provider",
            "exception_status"
        ]
    );

    // The fallback.
    let fallbacks = select(&all, "litellm_deployment_successful_fallbacks_total", &b);
    assert_eq!(fallbacks.len(), 1, "{fallbacks:?}");
    assert_eq!(fallbacks[0].value, 1.0);
    assert_eq!(fallbacks[0].label("requested_model"), "primary");
    assert_eq!(fallbacks[0].label("fallback_model"), "backup");
    assert_eq!(fallbacks[0].label("exception_status"), "503");
    assert!(select(&all, "litellm_deployment_failed_fallbacks_total", &[]).is_empty());

    // Budgets: key A has one, key B none (+Inf).
    let left = sum(&all, "litellm_remaining_api_key_budget_metric", &a);
    assert!(left > 9.0 && left <= 10.0, "{left}");
    assert_eq!(
        sum(&all, "litellm_remaining_api_key_budget_metric", &b),
        f64::INFINITY
    );

    // No family was full.
    assert_eq!(sum(&all, "tollgate_metrics_series_folded_total", &[]), 0.0);
    let labels: BTreeMap<_, _> = select(&all, "litellm_spend_metric_total", &a)[0]
        .labels
        .iter()
        .cloned()
        .collect();
    assert_eq!(labels["service_tier"], "");
}

#[actix_rt::test]
async fn a_failed_fallback_is_counted() {
    let mock = Mock::start(&[]);
    let cfg = config(&mock, "").replace(
        r#"fallbacks: [{"primary": ["backup"]}]"#,
        r#"fallbacks: [{"primary": ["broken"]}]"#,
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    let (status, _, body) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat("primary"),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    let (_, all) = scrape_until(&gw, |all| {
        sum(all, "litellm_deployment_failed_fallbacks_total", &[]) >= 1.0
    })
    .await;
    let failed = select(&all, "litellm_deployment_failed_fallbacks_total", &[]);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].value, 1.0);
    assert_eq!(failed[0].label("fallback_model"), "broken");
    assert_eq!(failed[0].label("exception_status"), "503");
    assert!(select(&all, "litellm_deployment_successful_fallbacks_total", &[]).is_empty());
}

#[actix_rt::test]
async fn require_auth_for_metrics_endpoint_admits_only_admins() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(
        &config(&mock, "  require_auth_for_metrics_endpoint: true\n"),
        &[],
        &[],
    );
    assert!(
        !gw.proc.logs().contains("require_auth_for_metrics_endpoint"),
        "a known key: {}",
        gw.proc.logs()
    );
    let virtual_key = new_key(&gw, json!({})).await;
    assert_eq!(scrape(&gw, None).await.0, 401);
    assert_eq!(scrape(&gw, Some(&virtual_key)).await.0, 403);
    let (status, text) = scrape(&gw, Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("litellm_deployment_state"), "{text}");

    // Without the setting, a scrape needs no key.
    let open = Gateway::start(&config(&mock, ""), &[], &[]);
    assert_eq!(scrape(&open, None).await.0, 200);
}

#[actix_rt::test]
async fn requests_refused_at_admission_are_counted_as_failed() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, ""), &[], &[]);
    let key = new_key(&gw, json!({"rpm_limit": 1, "models": ["good"]})).await;
    clear_of_a_minute_turn(Duration::from_secs(5)).await;
    let url = gw.url("/v1/chat/completions");
    assert_eq!(post(&url, Some(&key), &chat("good")).await.0, 200);
    assert_eq!(post(&url, Some(&key), &chat("good")).await.0, 429);
    // A model the key may not use.
    assert_eq!(post(&url, Some(&key), &chat("backup")).await.0, 401);
    let hashed = hash(&key);
    let (_, series) = scrape_until(&gw, |s| {
        sum(
            s,
            "litellm_proxy_failed_requests_metric_total",
            &[("hashed_api_key", &hashed)],
        ) >= 2.0
    })
    .await;
    let failed = |status: &str| {
        sum(
            &series,
            "litellm_proxy_failed_requests_metric_total",
            &[("hashed_api_key", &hashed), ("exception_status", status)],
        )
    };
    assert_eq!(failed("429"), 1.0);
    assert_eq!(failed("401"), 1.0);
    assert_eq!(
        sum(
            &series,
            "litellm_proxy_total_requests_metric_total",
            &[("hashed_api_key", &hashed)],
        ),
        3.0
    );
}

#[actix_rt::test]
async fn requests_with_an_invalid_key_are_counted_as_failed_without_naming_the_key() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, ""), &[], &[]);
    let made_up = "sk-made-up-key-that-was-never-issued";
    for path in ["/v1/chat/completions", "/v1/messages"] {
        let (status, _, _) = post(&gw.url(path), Some(made_up), &chat("good")).await;
        assert_eq!(status, 401, "{path}");
    }
    let (status, _, _) = post(&gw.url("/v1/chat/completions"), None, &chat("good")).await;
    assert_eq!(status, 401);
    let unauthenticated = [("hashed_api_key", ""), ("exception_status", "401")];
    let (text, series) = scrape_until(&gw, |s| {
        sum(
            s,
            "litellm_proxy_failed_requests_metric_total",
            &unauthenticated,
        ) >= 3.0
    })
    .await;
    assert_eq!(
        sum(
            &series,
            "litellm_proxy_failed_requests_metric_total",
            &unauthenticated
        ),
        3.0
    );
    assert_eq!(
        sum(
            &series,
            "litellm_proxy_total_requests_metric_total",
            &[("hashed_api_key", ""), ("status_code", "401")]
        ),
        3.0
    );
    assert!(
        !text.contains(made_up) && !text.contains(&hash(made_up)),
        "{text}"
    );
}

#[actix_rt::test]
async fn request_series_are_collected_only_with_the_prometheus_callback() {
    let mock = Mock::start(&[]);
    let cfg = config(&mock, "").replace("  callbacks: [\"prometheus\"]\n", "");
    let gw = Gateway::start(&cfg, &[], &[]);
    assert_eq!(
        post(
            &gw.url("/v1/chat/completions"),
            Some(MASTER_KEY),
            &chat("good")
        )
        .await
        .0,
        200
    );
    let (status, text) = scrape(&gw, None).await;
    assert_eq!(status, 200);
    assert!(!text.contains("litellm_requests_metric"), "{text}");
    assert!(text.contains("litellm_deployment_state"), "{text}");
}
