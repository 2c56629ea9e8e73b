//! OpenTelemetry traces against the mock provider's OTLP/HTTP receiver (`POST /v1/traces`, which
//! decodes the protobuf): a request continues the client's trace with one server span and a client
//! span per upstream attempt (retries and fallbacks, failed ones with an error status), GenAI
//! attributes with the right values, the key only as its hash; the provider gets a `traceparent`
//! naming the attempt's span; a request without one starts a trace; a dead collector neither
//! slows nor fails requests; shutdown exports what is queued; with traces off nothing is added.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn config(mock: &Mock, otel: bool) -> String {
    let base = mock.api_base();
    let callbacks = if otel {
        "  callbacks: [\"otel\"]\n"
    } else {
        ""
    };
    format!(
        r#"
model_list:
  - model_name: primary
    litellm_params:
      model: openai/mock-fail-503
      api_base: {base}
      api_key: sk-mock-upstream-secret-42
  - model_name: backup
    litellm_params:
      model: openai/mock-gpt
      api_base: {base}
      api_key: sk-mock-upstream-secret-42
general_settings:
  master_key: {MASTER_KEY}
router_settings:
  num_retries: 1
  retry_after: 0.01
litellm_settings:
  fallbacks: [{{"primary": ["backup"]}}]
{callbacks}"#
    )
}

fn envs<'a>(endpoint: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut envs = vec![
        ("OTEL_EXPORTER", "otlp_http"),
        // Without `/v1/traces`: the gateway appends it, as LiteLLM does.
        ("OTEL_ENDPOINT", endpoint),
        ("OTEL_HEADERS", "x-collector-token=abc%20def,x-team=ml"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    envs.extend_from_slice(extra);
    envs
}

async fn spans(mock: &Mock) -> Vec<Value> {
    let received = get(&format!("{}/mock/receivers", mock.proc.url), None)
        .await
        .2;
    received["otlp"]["spans"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn spans_of(mock: &Mock, trace_id: &str, at_least: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found: Vec<Value> = spans(mock)
            .await
            .into_iter()
            .filter(|s| s["trace_id"] == trace_id)
            .collect();
        if found.len() >= at_least {
            // Anything more of this trace arrives in the same export.
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{at_least} spans of trace {trace_id} never arrived: {found:#?}"
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

fn header<'a>(request: &'a Value, name: &str) -> &'a str {
    request["headers"][name].as_str().unwrap_or_default()
}

async fn chat_with(gw: &Gateway, key: &str, model: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let body = serde_json::to_vec(&chat(model)).unwrap();
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    let (status, _, body) = post_raw(&gw.url("/v1/chat/completions"), Some(key), body, &all).await;
    (status, body)
}

#[actix_rt::test]
async fn a_request_continues_the_clients_trace_with_a_span_per_attempt() {
    let mock = Mock::start(&[]);
    let endpoint = mock.proc.url.clone();
    let gw = Gateway::start(&config(&mock, true), &[], &envs(&endpoint, &[]));
    let (status, _, key) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"key_alias": "tracing-key"}),
    )
    .await;
    assert_eq!(status, 200, "{key}");
    let key = key["key"].as_str().unwrap().to_string();

    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let (status, body) = chat_with(
        &gw,
        &key,
        "primary",
        &[("traceparent", &traceparent), ("tracestate", "vendor=1")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let upstream = mock.last_request().await;

    // The server span and three attempts: two on the failing deployment (the first try and its
    // retry), then the fallback.
    let spans = spans_of(&mock, TRACE, 4).await;
    assert_eq!(spans.len(), 4, "{spans:#?}");
    let server: Vec<&Value> = spans
        .iter()
        .filter(|s| s["kind"] == "SPAN_KIND_SERVER")
        .collect();
    assert_eq!(server.len(), 1, "{spans:#?}");
    let server = server[0];
    assert_eq!(server["name"], "Received Proxy Server Request");
    assert_eq!(
        server["parent_span_id"], PARENT,
        "continues the client's span"
    );
    assert_eq!(server["trace_state"], "vendor=1");
    assert_eq!(server["status"]["code"], 1, "OK");
    let a = &server["attributes"];
    assert_eq!(a["gen_ai.operation.name"], "chat");
    assert_eq!(a["gen_ai.request.model"], "primary");
    assert_eq!(a["gen_ai.response.model"], "mock-gpt");
    assert_eq!(a["gen_ai.provider.name"], "openai");
    assert_eq!(
        a["gen_ai.usage.input_tokens"],
        body["usage"]["prompt_tokens"]
    );
    assert_eq!(
        a["gen_ai.usage.output_tokens"],
        body["usage"]["completion_tokens"]
    );
    assert_eq!(a["gen_ai.response.id"], body["id"]);
    assert_eq!(a["http.response.status_code"], 200);
    assert_eq!(a["litellm.model_group"], "backup");
    assert_eq!(a["metadata.user_api_key_alias"], "tracing-key");
    let hash = a["metadata.user_api_key_hash"].as_str().unwrap();
    assert_eq!(hash.len(), 64, "a SHA-256 hash: {hash}");
    let resource = &server["resource"];
    assert_eq!(resource["service.name"], "litellm");
    assert_eq!(resource["deployment.environment"], "production");
    let all = serde_json::to_string(&spans).unwrap();
    assert!(!all.contains(&key), "no span carries the key");
    assert!(!all.contains("sk-mock-upstream-secret-42"));

    let server_id = server["span_id"].as_str().unwrap();
    let mut attempts: Vec<&Value> = spans
        .iter()
        .filter(|s| s["kind"] == "SPAN_KIND_CLIENT")
        .collect();
    attempts.sort_by_key(|s| s["start_time_unix_nano"].as_u64());
    assert_eq!(attempts.len(), 3);
    for attempt in &attempts {
        assert_eq!(attempt["parent_span_id"], server_id);
        assert_ne!(attempt["span_id"], server_id);
        assert!(
            attempt["start_time_unix_nano"].as_u64() >= server["start_time_unix_nano"].as_u64()
        );
        assert!(attempt["end_time_unix_nano"].as_u64() <= server["end_time_unix_nano"].as_u64());
    }
    for failed in &attempts[..2] {
        assert_eq!(failed["name"], "chat mock-fail-503");
        assert_eq!(failed["status"]["code"], 2, "ERROR: {failed}");
        assert_eq!(failed["attributes"]["http.response.status_code"], 503);
        assert_eq!(failed["attributes"]["error.type"], "503");
        assert_eq!(failed["attributes"]["litellm.model_group"], "primary");
    }
    let served = attempts[2];
    assert_eq!(served["name"], "chat mock-gpt");
    assert_eq!(served["status"]["code"], 1);
    let a = &served["attributes"];
    assert_eq!(a["gen_ai.request.model"], "mock-gpt");
    assert_eq!(a["gen_ai.response.model"], "mock-gpt");
    assert_eq!(a["gen_ai.provider.name"], "openai");
    assert_eq!(
        a["gen_ai.usage.input_tokens"],
        body["usage"]["prompt_tokens"]
    );
    assert_eq!(
        a["gen_ai.usage.output_tokens"],
        body["usage"]["completion_tokens"]
    );

    // The provider continues the trace from the attempt that reached it.
    assert_eq!(
        header(&upstream, "traceparent"),
        format!("00-{TRACE}-{}-01", served["span_id"].as_str().unwrap())
    );
    assert_eq!(header(&upstream, "tracestate"), "vendor=1");

    // The collector got OTEL_HEADERS (percent-decoded) and protobuf.
    let received = get(&format!("{}/mock/receivers", mock.proc.url), None)
        .await
        .2;
    let export = &received["otlp"]["headers"][0];
    assert_eq!(export["x-collector-token"], "abc def");
    assert_eq!(export["x-team"], "ml");
    assert_eq!(export["content-type"], "application/x-protobuf");
    assert_eq!(received["rejected"], 0);

    // Without a traceparent: a trace of its own, whose id reaches the provider.
    let (status, body) = chat_with(&gw, &key, "backup", &[]).await;
    assert_eq!(status, 200, "{body}");
    let upstream = mock.last_request().await;
    let tp = header(&upstream, "traceparent").to_string();
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert_ne!(parts[1], TRACE);
    let fresh = spans_of(&mock, parts[1], 2).await;
    let server = fresh
        .iter()
        .find(|s| s["kind"] == "SPAN_KIND_SERVER")
        .unwrap();
    assert_eq!(server["parent_span_id"], "", "a root span");
    let attempt = fresh
        .iter()
        .find(|s| s["kind"] == "SPAN_KIND_CLIENT")
        .unwrap();
    assert_eq!(attempt["span_id"], parts[2]);
    assert!(upstream["headers"].get("tracestate").is_none());

    // A stream: its attempt's span ends with the stream, with the usage of its last chunk.
    let mut body = chat("backup");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, _, text) = stream_text(&gw.url("/v1/chat/completions"), Some(&key), &body).await;
    assert_eq!(status, 200, "{text}");
    let usage = sse_data(&text)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|c| c["usage"].is_object())
        .map(|c| c["usage"].clone())
        .expect("a usage chunk");
    let upstream = mock.last_request().await;
    let tp = header(&upstream, "traceparent").to_string();
    let streamed = spans_of(&mock, tp.split('-').nth(1).unwrap(), 2).await;
    for span in &streamed {
        assert_eq!(span["status"]["code"], 1, "{span}");
        assert_eq!(
            span["attributes"]["gen_ai.usage.input_tokens"],
            usage["prompt_tokens"]
        );
        assert_eq!(
            span["attributes"]["gen_ai.usage.output_tokens"],
            usage["completion_tokens"]
        );
    }
    let attempt = streamed
        .iter()
        .find(|s| s["kind"] == "SPAN_KIND_CLIENT")
        .unwrap();
    assert_eq!(attempt["span_id"], tp.split('-').nth(2).unwrap());

    // A request refused before routing still has its span, with the error.
    let (status, _) = chat_with(
        &gw,
        &key,
        "no-such-model",
        &[(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )],
    )
    .await;
    assert!(status >= 400);
    let refused = spans_of(&mock, "0af7651916cd43dd8448eb211c80319c", 1).await;
    assert_eq!(refused.len(), 1, "no attempt: {refused:#?}");
    assert_eq!(refused[0]["status"]["code"], 2);
    assert_eq!(
        refused[0]["attributes"]["http.response.status_code"],
        status
    );
    assert_eq!(
        refused[0]["attributes"]["gen_ai.request.model"],
        "no-such-model"
    );

    let metrics = get_text(&gw.url("/metrics")).await.2;
    assert!(
        metrics.contains("tollgate_otel_spans_exported_total"),
        "{metrics}"
    );
}

#[actix_rt::test]
async fn a_dead_collector_neither_slows_nor_fails_requests() {
    let mock = Mock::start(&[]);
    // A port nothing listens on.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let gw = Gateway::start(&config(&mock, true), &[], &envs(&dead, &[]));
    let started = Instant::now();
    for _ in 0..40 {
        let (status, body) = chat_with(&gw, MASTER_KEY, "backup", &[]).await;
        assert_eq!(status, 200, "{body}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "40 requests took {:?}",
        started.elapsed()
    );
    // The spans that could not be exported are counted as dropped.
    wait_for(Duration::from_secs(20), || async {
        let metrics = get_text(&gw.url("/metrics")).await.2;
        metrics.lines().any(|l| {
            l.starts_with("tollgate_otel_spans_dropped_total ")
                && l.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()) > Some(0.0)
        })
    })
    .await;
    let (status, _) = chat_with(&gw, MASTER_KEY, "backup", &[]).await;
    assert_eq!(status, 200);
}

#[actix_rt::test]
async fn shutdown_exports_the_spans_still_queued() {
    let mock = Mock::start(&[]);
    let endpoint = mock.proc.url.clone();
    // Spans would wait a minute for their export: only the flush at shutdown sends them.
    let gw = Gateway::start(
        &config(&mock, true),
        &[],
        &envs(&endpoint, &[("OTEL_BSP_SCHEDULE_DELAY", "60000")]),
    );
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let (status, _) = chat_with(&gw, MASTER_KEY, "backup", &[("traceparent", &traceparent)]).await;
    assert_eq!(status, 200);
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert!(spans(&mock).await.is_empty(), "nothing exported yet");
    let mut gw = gw;
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &gw.proc.child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while gw.proc.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the gateway did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let spans = spans_of(&mock, TRACE, 2).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
}

#[actix_rt::test]
async fn with_traces_off_nothing_is_passed_upstream() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, false), &[], &[]);
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let (status, _) = chat_with(&gw, MASTER_KEY, "backup", &[("traceparent", &traceparent)]).await;
    assert_eq!(status, 200);
    let upstream = mock.last_request().await;
    assert!(
        upstream["headers"].get("traceparent").is_none(),
        "{upstream}"
    );
    assert!(spans(&mock).await.is_empty());
}

#[actix_rt::test]
async fn a_missing_endpoint_stops_the_gateway_naming_the_variable() {
    let mock = Mock::start(&[]);
    let err = match Gateway::try_start(&config(&mock, true), &[], &[("OTEL_EXPORTER", "otlp_http")])
    {
        Ok(_) => panic!("started without an endpoint"),
        Err(e) => e,
    };
    assert!(err.contains("OTEL_ENDPOINT"), "{err}");
}
