//! OpenTelemetry traces against the mock provider's OTLP/HTTP receiver (`POST /v1/traces`, which
//! decodes the protobuf): a request continues the client's trace with one server span and a client
//! span per upstream attempt (retries and fallbacks, failed ones with an error status), GenAI
//! attributes with the right values, the key only as its hash; the provider gets a `traceparent`
//! naming the attempt's span; a request without one starts a trace; a dead collector neither
//! slows nor fails requests; shutdown exports what is queued; with traces off nothing is added.
//!
//! OTLP/gRPC (`OTEL_EXPORTER=otlp_grpc`) against an in-test collector (tonic's `TraceService`
//! server, decoding with the mock's span reader): the same spans and trace ids, the headers as
//! gRPC metadata, TLS with a private CA, a dead collector, the flush at shutdown.

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

/// The spans of a chat request to `primary` with the client's trace `TRACE`/`PARENT`, served by
/// the fallback after the failing deployment's try and retry: the server span continuing the
/// client's, three attempt spans under it, GenAI attributes, no key or credential anywhere, and the
/// served attempt's context passed upstream. Returns the server span.
fn assert_a_fallback_s_spans<'a>(
    spans: &'a [Value],
    body: &Value,
    key: &str,
    alias: &str,
    upstream: &Value,
) -> &'a Value {
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
    assert_eq!(a["metadata.user_api_key_alias"], alias);
    let hash = a["metadata.user_api_key_hash"].as_str().unwrap();
    assert_eq!(hash.len(), 64, "a SHA-256 hash: {hash}");
    let resource = &server["resource"];
    assert_eq!(resource["service.name"], "litellm");
    assert_eq!(resource["deployment.environment"], "production");
    let all = serde_json::to_string(spans).unwrap();
    assert!(!all.contains(key), "no span carries the key");
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
        header(upstream, "traceparent"),
        format!("00-{TRACE}-{}-01", served["span_id"].as_str().unwrap())
    );
    server
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

    let spans = spans_of(&mock, TRACE, 4).await;
    let server = assert_a_fallback_s_spans(&spans, &body, &key, "tracing-key", &upstream);
    assert_eq!(server["trace_state"], "vendor=1");
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

/// A collector address nothing listens on.
fn dead_collector() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

/// With traces going to a dead collector (`envs`), requests are served at full speed, and the
/// spans that could not be exported are counted as dropped.
async fn a_dead_collector_is_harmless(mock: &Mock, envs: &[(&str, &str)]) {
    let gw = Gateway::start(&config(mock, true), &[], envs);
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
async fn a_dead_collector_neither_slows_nor_fails_requests() {
    let mock = Mock::start(&[]);
    let dead = dead_collector();
    a_dead_collector_is_harmless(&mock, &envs(&dead, &[])).await;
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

/// An in-test OTLP/gRPC collector: tonic's `TraceService` server on its own thread and Tokio
/// runtime, keeping every span (as the mock's receiver shows them) and each export's metadata.
mod grpc_collector {
    use std::sync::{Arc, Mutex};

    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use serde_json::{Map, Value};

    #[derive(Default)]
    pub struct Received {
        pub spans: Vec<Value>,
        pub metadata: Vec<Value>,
    }

    #[derive(Clone, Default)]
    struct Service(Arc<Mutex<Received>>);

    #[tonic::async_trait]
    impl TraceService for Service {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let metadata: Map<String, Value> = request
                .metadata()
                .clone()
                .into_headers()
                .iter()
                .filter_map(|(k, v)| Some((k.to_string(), Value::String(v.to_str().ok()?.into()))))
                .collect();
            let spans = tollgate_mock::otlp_spans(request.get_ref())
                .map_err(tonic::Status::invalid_argument)?;
            let mut received = self.0.lock().unwrap();
            received.spans.extend(spans);
            received.metadata.push(Value::Object(metadata));
            Ok(tonic::Response::new(ExportTraceServiceResponse {
                partial_success: None,
            }))
        }
    }

    pub struct Collector {
        /// `http://127.0.0.1:port` (or `https://localhost:port` with TLS).
        pub url: String,
        received: Arc<Mutex<Received>>,
    }

    impl Collector {
        /// A plain-text collector; with `tls` (certificate and key PEM), a TLS one.
        pub fn start(tls: Option<(Vec<u8>, Vec<u8>)>) -> Collector {
            let received = Arc::new(Mutex::new(Received::default()));
            let service = Service(received.clone());
            let scheme = if tls.is_some() {
                "https://localhost"
            } else {
                "http://127.0.0.1"
            };
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let incoming =
                        tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap())
                            .unwrap();
                    tx.send(incoming.local_addr().unwrap().port()).unwrap();
                    let mut server = tonic::transport::Server::builder();
                    if let Some((cert, key)) = tls {
                        server = server
                            .tls_config(
                                tonic::transport::ServerTlsConfig::new()
                                    .identity(tonic::transport::Identity::from_pem(cert, key)),
                            )
                            .unwrap();
                    }
                    server
                        .add_service(TraceServiceServer::new(service))
                        .serve_with_incoming(incoming)
                        .await
                        .unwrap();
                });
            });
            let port = rx.recv().expect("the collector starts");
            Collector {
                url: format!("{scheme}:{port}"),
                received,
            }
        }

        pub fn spans(&self) -> Vec<Value> {
            self.received.lock().unwrap().spans.clone()
        }

        pub fn metadata(&self) -> Vec<Value> {
            self.received.lock().unwrap().metadata.clone()
        }
    }
}

use grpc_collector::Collector;

fn grpc_envs<'a>(endpoint: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut envs = vec![
        ("OTEL_EXPORTER", "otlp_grpc"),
        ("OTEL_ENDPOINT", endpoint),
        ("OTEL_HEADERS", "x-collector-token=abc%20def,X-Team=ml"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    envs.extend_from_slice(extra);
    envs
}

async fn grpc_spans_of(collector: &Collector, trace_id: &str, at_least: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found: Vec<Value> = collector
            .spans()
            .into_iter()
            .filter(|s| s["trace_id"] == trace_id)
            .collect();
        if found.len() >= at_least {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{at_least} spans of trace {trace_id} never reached the gRPC collector: {found:#?}"
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_rt::test]
async fn a_grpc_collector_gets_the_spans_with_the_headers_as_metadata() {
    let mock = Mock::start(&[]);
    let collector = Collector::start(None);
    // LiteLLM-style, with `/v1/traces`: a gRPC target is the origin only.
    let endpoint = format!("{}/v1/traces", collector.url);
    let gw = Gateway::start(&config(&mock, true), &[], &grpc_envs(&endpoint, &[]));
    // The start-up line names the exporter.
    wait_for(Duration::from_secs(5), || async {
        gw.proc
            .logs()
            .contains("OpenTelemetry traces on (OTLP/gRPC)")
    })
    .await;
    let (status, _, key) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"key_alias": "grpc-key"}),
    )
    .await;
    assert_eq!(status, 200, "{key}");
    let key = key["key"].as_str().unwrap().to_string();

    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let (status, body) = chat_with(&gw, &key, "primary", &[("traceparent", &traceparent)]).await;
    assert_eq!(status, 200, "{body}");
    let upstream = mock.last_request().await;

    let spans = grpc_spans_of(&collector, TRACE, 4).await;
    assert_a_fallback_s_spans(&spans, &body, &key, "grpc-key", &upstream);

    // OTEL_HEADERS arrive as gRPC metadata (percent-decoded, names lower-cased as gRPC wants).
    let metadata = collector.metadata();
    let first = &metadata[0];
    assert_eq!(first["x-collector-token"], "abc def", "{first}");
    assert_eq!(first["x-team"], "ml", "{first}");
    // Nothing went to the mock's OTLP/HTTP receiver.
    assert!(crate::spans(&mock).await.is_empty());

    let metrics = get_text(&gw.url("/metrics")).await.2;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("tollgate_otel_spans_exported_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

#[actix_rt::test]
async fn grpc_export_over_tls_trusts_the_configured_certificate_bundle() {
    let certs = Certs::new();
    let read = |name: &str| certs.read(name);
    let collector = Collector::start(Some((read("leaf.pem"), read("leaf.key"))));
    assert!(
        collector.url.starts_with("https://localhost:"),
        "{}",
        collector.url
    );
    let ca = certs.ca();

    let mock = Mock::start(&[]);
    let gw = Gateway::start(
        &config(&mock, true),
        &[],
        &grpc_envs(
            &collector.url,
            &[("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", ca.as_str())],
        ),
    );
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let (status, _) = chat_with(&gw, MASTER_KEY, "backup", &[("traceparent", &traceparent)]).await;
    assert_eq!(status, 200);
    let spans = grpc_spans_of(&collector, TRACE, 2).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    assert_eq!(collector.metadata()[0]["x-team"], "ml");

    // Without the bundle the collector's certificate is refused: spans are dropped, counted,
    // and requests are not affected.
    let untrusted = Collector::start(Some((read("leaf.pem"), read("leaf.key"))));
    let gw = Gateway::start(&config(&mock, true), &[], &grpc_envs(&untrusted.url, &[]));
    let (status, _) = chat_with(&gw, MASTER_KEY, "backup", &[]).await;
    assert_eq!(status, 200);
    wait_for(Duration::from_secs(20), || async {
        let metrics = get_text(&gw.url("/metrics")).await.2;
        metrics.lines().any(|l| {
            l.starts_with("tollgate_otel_spans_dropped_total ")
                && l.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()) > Some(0.0)
        })
    })
    .await;
    assert!(untrusted.spans().is_empty());
}

#[actix_rt::test]
async fn a_dead_grpc_collector_neither_slows_nor_fails_requests() {
    let mock = Mock::start(&[]);
    let dead = dead_collector();
    a_dead_collector_is_harmless(&mock, &grpc_envs(&dead, &[])).await;
}

#[actix_rt::test]
async fn shutdown_exports_the_spans_still_queued_over_grpc() {
    let mock = Mock::start(&[]);
    let collector = Collector::start(None);
    // Spans would wait a minute: the first export, over a channel built then, is the shutdown's.
    let gw = Gateway::start(
        &config(&mock, true),
        &[],
        &grpc_envs(&collector.url, &[("OTEL_BSP_SCHEDULE_DELAY", "60000")]),
    );
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let (status, _) = chat_with(&gw, MASTER_KEY, "backup", &[("traceparent", &traceparent)]).await;
    assert_eq!(status, 200);
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert!(collector.spans().is_empty(), "nothing exported yet");
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
    let spans = grpc_spans_of(&collector, TRACE, 2).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
}
