//! OpenTelemetry traces (`litellm_settings.callbacks: ["otel"]`, or `otel` in `success_callback` /
//! `failure_callback`, or `general_settings.otel: true`).
//!
//! Each LLM request is one server span ([`SERVER_SPAN`]) that continues the client's W3C
//! `traceparent` / `tracestate` when it sent them, with one client span per upstream attempt
//! (retries and fallbacks each get one; a failed attempt has an error status). The upstream
//! request carries a `traceparent` naming the request's trace and the attempt's span.
//!
//! The spans are not built by a tracing layer around the handler: the pipeline already knows when
//! a request and each attempt start and end (`pipeline::account` sees every exit), so a request
//! records two ids and a start time, and its spans are built once, with explicit ids and times,
//! when they end ([`Tracer::attempt_ended`], [`RequestTrace::request_finished`]). The finished
//! spans go into a bounded queue (the request path only pushes, or drops and counts when it is
//! full); an actor on its own arbiter exports them in batches with `opentelemetry-otlp`'s
//! exporters: OTLP/HTTP protobuf, whose HTTP client here is the arbiter's awc client, or OTLP/gRPC
//! (tonic), built on the first export so that its channel's connection task runs on the actor's
//! arbiter (a Tokio runtime). One queue and one actor either way; only the exporter differs. A
//! slow or dead collector costs the request path nothing: the queue fills, and spans are dropped
//! and counted. At shutdown, what is queued is exported before the process ends (bounded by a
//! deadline).
//!
//! Environment (LiteLLM's names, then the standard OpenTelemetry ones, which win as in LiteLLM):
//! `OTEL_EXPORTER` (`otlp_http`, `otlp`, `http/protobuf`, `http/json`, `otlp_grpc`, `grpc`,
//! `console`), `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, `OTEL_EXPORTER_OTLP_PROTOCOL`;
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_ENDPOINT` and `OTEL_ENDPOINT`: for
//! OTLP/HTTP the per-signal one is used as is and the others get `/v1/traces` appended when
//! missing; for OTLP/gRPC only the origin counts ([`grpc_origin`]; default
//! [`GRPC_DEFAULT_ENDPOINT`], as LiteLLM's Python exporter), with `OTEL_EXPORTER_OTLP[_TRACES]_INSECURE`
//! for an endpoint without a scheme and `OTEL_EXPORTER_OTLP[_TRACES]_CERTIFICATE` (a CA bundle)
//! for TLS; `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_HEADERS`
//! (`name=value,name=value`, values percent-decoded; gRPC metadata for OTLP/gRPC);
//! `OTEL_SERVICE_NAME` (default `litellm`, as LiteLLM, so that dashboards built on LiteLLM's traces
//! keep working); `OTEL_ENVIRONMENT_NAME` (`deployment.environment`, default `production`).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use serde_json::{json, Map, Value};

use super::RequestEvent;
use crate::config::ProxyConfig;
use crate::llm::Usage;

/// Spans held for export before new ones are dropped (`OTEL_BSP_MAX_QUEUE_SIZE`; the SDK's
/// default is 2,048, ours is larger: a span is small and a burst should not lose its traces).
pub const QUEUE_MAX: usize = 8_192;
/// Spans per export request at most (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, the SDK's default).
pub const BATCH: usize = 512;
/// How long spans wait for export at most (`OTEL_BSP_SCHEDULE_DELAY`, the SDK's default); a
/// full batch goes at once.
pub const EXPORT_EVERY: Duration = Duration::from_secs(5);
/// How often the export actor looks at the queue.
const TICK: Duration = Duration::from_millis(100);
/// How long one export may take, retries included.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// The name of a request's span (LiteLLM's).
pub const SERVER_SPAN: &str = "Received Proxy Server Request";

/// Where spans go.
#[derive(Debug, Clone, PartialEq)]
pub enum Exporter {
    /// OTLP over HTTP, protobuf bodies, to the full traces URL.
    OtlpHttp {
        endpoint: String,
        headers: Vec<(String, String)>,
    },
    /// OTLP over gRPC (tonic): `TraceService/Export` at the collector's origin (`scheme://host:port`;
    /// gRPC has no signal path). `https` is TLS, checked against the built-in (webpki) and system
    /// roots, plus the PEM bundle `ca_file` when given.
    OtlpGrpc {
        endpoint: String,
        headers: Vec<(String, String)>,
        ca_file: Option<String>,
    },
    /// One JSON object per span on standard output.
    Console,
}

/// The OTLP/gRPC collector when no endpoint is configured (the OpenTelemetry default, which
/// LiteLLM's gRPC exporter falls back to as well).
pub const GRPC_DEFAULT_ENDPOINT: &str = "http://localhost:4317";

/// The traces configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSettings {
    pub exporter: Exporter,
    pub service_name: String,
    pub environment: String,
    /// `OTEL_BSP_SCHEDULE_DELAY` (ms), `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`.
    pub schedule_delay: Duration,
    pub max_queue: usize,
    pub max_batch: usize,
}

const NAMES: &[&str] = &["otel", "opentelemetry"];

/// Whether the configuration turns traces on.
pub fn enabled(cfg: &ProxyConfig) -> bool {
    let listed = ["callbacks", "success_callback", "failure_callback"]
        .iter()
        .filter_map(|k| cfg.litellm_settings.get(*k))
        .any(|v| match v {
            Value::Array(items) => items
                .iter()
                .any(|i| i.as_str().is_some_and(|s| NAMES.contains(&s))),
            Value::String(s) => NAMES.contains(&s.as_str()),
            _ => false,
        });
    listed
        || cfg
            .general_settings
            .get("otel")
            .is_some_and(crate::config::truthy)
}

/// `http://collector:4318` → `http://collector:4318/v1/traces` (LiteLLM's normalization: a URL
/// already ending in `/v1/traces` is kept; one ending in `/v1/logs` or `/v1/metrics` is pointed at
/// traces).
pub fn traces_url(endpoint: &str) -> String {
    let endpoint = endpoint.trim().trim_end_matches('/');
    if endpoint.ends_with("/v1/traces") {
        return endpoint.to_string();
    }
    for other in ["/v1/logs", "/v1/metrics"] {
        if let Some(base) = endpoint.strip_suffix(other) {
            return format!("{base}/v1/traces");
        }
    }
    match endpoint.strip_suffix("/v1") {
        Some(base) => format!("{base}/v1/traces"),
        None => format!("{endpoint}/v1/traces"),
    }
}

/// A gRPC collector's origin from an endpoint setting: the scheme and `host:port`, any path
/// dropped (gRPC calls are routed by the service's path, so LiteLLM's `/v1/traces` suffix, or a
/// collector URL copied from an OTLP/HTTP setup, is ignored as Python's gRPC exporter does). An
/// endpoint without a scheme is `https` unless `insecure` (the `OTEL_EXPORTER_OTLP_INSECURE`
/// rule). `Err` names the variable, never the URL's credentials.
pub fn grpc_origin(name: &str, endpoint: &str, insecure: bool) -> Result<String, String> {
    let endpoint = endpoint.trim();
    let (scheme, rest) = match endpoint.split_once("://") {
        Some((scheme, rest)) if !scheme.contains(['/', '?', '#']) => {
            (scheme.to_ascii_lowercase(), rest)
        }
        _ => (
            (if insecure { "http" } else { "https" }).to_string(),
            endpoint,
        ),
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "{name}: the OpenTelemetry gRPC endpoint must be an http:// or https:// URL (got {})",
            crate::secret::display_url(endpoint)
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // Credentials in the URL are not sent over gRPC (headers are: OTEL_HEADERS).
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err(format!(
            "{name}: the OpenTelemetry gRPC endpoint names no host (got {})",
            crate::secret::display_url(endpoint)
        ));
    }
    Ok(format!("{scheme}://{host}"))
}

/// `name=value,name=value`, values percent-decoded (the OpenTelemetry header variables are
/// percent-encoded).
fn parse_headers(raw: &str) -> Vec<(String, String)> {
    raw.split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_string(),
                crate::outbound::percent_decode(v.trim()),
            )
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

impl TraceSettings {
    /// The traces configuration, `None` when traces are off. `Err` names what is missing or wrong.
    pub fn resolve(
        cfg: &ProxyConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<TraceSettings>, String> {
        if !enabled(cfg) {
            return Ok(None);
        }
        let var = |name: &'static str| {
            env(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .map(|v| (name, v))
        };
        let protocol = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .or_else(|| var("OTEL_EXPORTER"));
        let endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .or_else(|| var("OTEL_ENDPOINT"));
        enum Transport {
            Http,
            Grpc,
            Console,
        }
        let transport = match &protocol {
            // LiteLLM: no exporter named, but an endpoint given, means OTLP/HTTP.
            None if endpoint.is_some() => Transport::Http,
            None => Transport::Console,
            Some((name, value)) => match value.to_ascii_lowercase().as_str() {
                "otlp_http" | "otlp" | "http" | "http/protobuf" | "http/json" => Transport::Http,
                "otlp_grpc" | "grpc" => Transport::Grpc,
                "console" => Transport::Console,
                _ => {
                    return Err(format!(
                        "{name}={value} is not an exporter Tollgate knows (otlp_http, otlp_grpc, console)"
                    ))
                }
            },
        };
        let headers = || {
            var("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
                .or_else(|| var("OTEL_EXPORTER_OTLP_HEADERS"))
                .or_else(|| var("OTEL_HEADERS"))
                .map(|(_, h)| parse_headers(&h))
                .unwrap_or_default()
        };
        let exporter = match transport {
            Transport::Http => {
                let endpoint = endpoint
                    .map(|(name, url)| match name {
                        // The per-signal variable is the full URL, used as it is.
                        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" => {
                            url.trim_end_matches('/').to_string()
                        }
                        _ => traces_url(&url),
                    })
                    .ok_or_else(|| {
                        "the otel callback exporting over OTLP/HTTP needs the environment variable \
                         OTEL_ENDPOINT (or OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)"
                            .to_string()
                    })?;
                if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                    return Err(format!(
                        "the OpenTelemetry endpoint must be an http:// or https:// URL (got {})",
                        crate::secret::display_url(&endpoint)
                    ));
                }
                Exporter::OtlpHttp {
                    endpoint,
                    headers: headers(),
                }
            }
            Transport::Grpc => {
                let insecure = var("OTEL_EXPORTER_OTLP_TRACES_INSECURE")
                    .or_else(|| var("OTEL_EXPORTER_OTLP_INSECURE"))
                    .is_some_and(|(_, v)| v.eq_ignore_ascii_case("true"));
                let endpoint = match endpoint {
                    Some((name, url)) => grpc_origin(name, &url, insecure)?,
                    None => GRPC_DEFAULT_ENDPOINT.to_string(),
                };
                Exporter::OtlpGrpc {
                    endpoint,
                    headers: headers(),
                    ca_file: var("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE")
                        .or_else(|| var("OTEL_EXPORTER_OTLP_CERTIFICATE"))
                        .map(|(_, path)| path),
                }
            }
            Transport::Console => Exporter::Console,
        };
        let number = |name: &'static str, default: u64| -> Result<u64, String> {
            match var(name) {
                None => Ok(default),
                Some((_, v)) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{name} must be a positive integer (got {v})")),
            }
        };
        let max_queue = number("OTEL_BSP_MAX_QUEUE_SIZE", QUEUE_MAX as u64)? as usize;
        Ok(Some(TraceSettings {
            schedule_delay: Duration::from_millis(number(
                "OTEL_BSP_SCHEDULE_DELAY",
                EXPORT_EVERY.as_millis() as u64,
            )?),
            max_queue,
            max_batch: (number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", BATCH as u64)? as usize)
                .min(max_queue),
            exporter,
            service_name: var("OTEL_SERVICE_NAME")
                .map_or_else(|| "litellm".to_string(), |(_, v)| v),
            environment: var("OTEL_ENVIRONMENT_NAME")
                .map_or_else(|| "production".to_string(), |(_, v)| v),
        }))
    }
}

fn random_trace_id() -> TraceId {
    loop {
        let id: u128 = rand::random();
        if id != 0 {
            return TraceId::from_bytes(id.to_be_bytes());
        }
    }
}

/// A new span id (never the invalid all-zero one).
pub fn random_span_id() -> SpanId {
    loop {
        let id: u64 = rand::random();
        if id != 0 {
            return SpanId::from_bytes(id.to_be_bytes());
        }
    }
}

fn lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A W3C `traceparent`: its trace id, parent span id and whether it is sampled. `None` for a
/// header that is not one (the request then starts a trace of its own).
pub fn parse_traceparent(header: &str) -> Option<(TraceId, SpanId, bool)> {
    let mut parts = header.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if !lower_hex(version, 2) || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    if !lower_hex(trace, 32) || !lower_hex(span, 16) || !lower_hex(flags, 2) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((trace_id, span_id, flags & 1 == 1))
}

/// The trace a request belongs to: its own span, and the client's when it sent `traceparent`.
#[derive(Debug, Clone)]
pub struct TraceContext {
    pub trace_id: TraceId,
    /// The client's span (`SpanId::INVALID` when the request started the trace).
    pub parent_span_id: SpanId,
    /// The request's span.
    pub span_id: SpanId,
    /// The client's sampling decision (parent-based, as the OpenTelemetry SDK's default sampler):
    /// an unsampled request records nothing but still passes its trace on.
    pub sampled: bool,
    pub trace_state: TraceState,
    pub start: SystemTime,
}

impl TraceContext {
    /// From the request's `traceparent` / `tracestate` headers, else a fresh trace.
    pub fn from_headers(traceparent: Option<&str>, tracestate: Option<&str>) -> TraceContext {
        let start = SystemTime::now();
        match traceparent.and_then(parse_traceparent) {
            Some((trace_id, parent, sampled)) => TraceContext {
                trace_id,
                parent_span_id: parent,
                span_id: random_span_id(),
                sampled,
                trace_state: tracestate.and_then(|s| s.parse().ok()).unwrap_or_default(),
                start,
            },
            None => TraceContext {
                trace_id: random_trace_id(),
                parent_span_id: SpanId::INVALID,
                span_id: random_span_id(),
                sampled: true,
                trace_state: TraceState::default(),
                start,
            },
        }
    }

    /// The `traceparent` an upstream call made from span `span_id` carries.
    pub fn traceparent(&self, span_id: SpanId) -> String {
        let flags = if self.sampled { "01" } else { "00" };
        format!("00-{}-{}-{flags}", self.trace_id, span_id)
    }

    /// The `tracestate` passed on, when the client sent one.
    pub fn tracestate(&self) -> Option<String> {
        let header = self.trace_state.header();
        (!header.is_empty()).then_some(header)
    }

    fn span_context(&self, span_id: SpanId) -> SpanContext {
        let flags = if self.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        SpanContext::new(
            self.trace_id,
            span_id,
            flags,
            false,
            self.trace_state.clone(),
        )
    }
}

/// One request's trace and the tracer its spans go to.
#[derive(Clone)]
pub struct RequestTrace {
    pub tracer: Arc<Tracer>,
    pub ctx: TraceContext,
}

impl std::fmt::Debug for RequestTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.ctx.fmt(f)
    }
}

/// An upstream attempt's span, from its start.
#[derive(Debug, Clone, Copy)]
pub struct AttemptSpan {
    pub span_id: SpanId,
    pub start: SystemTime,
}

impl AttemptSpan {
    pub fn start() -> AttemptSpan {
        AttemptSpan {
            span_id: random_span_id(),
            start: SystemTime::now(),
        }
    }
}

/// How an attempt ended, for its span.
pub struct AttemptEnd<'a> {
    /// The spend log's call type (`acompletion`, `atext_completion`, `aembedding`).
    pub call_type: &'a str,
    /// The deployment's model (`openai/gpt-4o`).
    pub model: &'a str,
    pub model_group: Option<&'a str>,
    pub deployment_id: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub usage: Option<Usage>,
    pub status_code: u16,
    pub error: Option<String>,
    pub call_id: &'a str,
}

/// GenAI's `gen_ai.operation.name` for a spend log's call type.
fn operation(call_type: &str) -> &'static str {
    match call_type {
        "aembedding" => "embeddings",
        "atext_completion" => "text_completion",
        _ => "chat",
    }
}

/// GenAI's `gen_ai.provider.name` for a LiteLLM provider name (the names the convention lists;
/// others as they are).
fn provider_name(provider: &str) -> String {
    match provider {
        "azure" | "azure_ai" => "azure.ai.openai",
        "bedrock" => "aws.bedrock",
        "gemini" => "gcp.gemini",
        "vertex_ai" => "gcp.vertex_ai",
        "mistral" => "mistral_ai",
        "xai" => "x_ai",
        "watsonx" => "ibm.watsonx.ai",
        other => other,
    }
    .to_string()
}

/// A deployment's model without its provider prefix: the name the provider was called with.
fn provider_model(model: &str, provider: Option<&str>) -> String {
    match provider {
        Some(p) => model
            .strip_prefix(p)
            .and_then(|m| m.strip_prefix('/'))
            .unwrap_or(model),
        None => model,
    }
    .to_string()
}

/// What the tracer counts (read by `/metrics`).
#[derive(Default)]
pub struct TraceCounters {
    pub exported: AtomicU64,
    /// Spans dropped: the queue was full, or their export failed.
    pub dropped: AtomicU64,
}

/// The spans' destination.
enum Sink {
    /// OTLP/HTTP with protobuf bodies, encoded by [`super::otlp::Encoder`].
    OtlpHttp {
        encoder: super::otlp::Encoder,
        endpoint: String,
        /// The content type, then `OTEL_*_HEADERS`.
        headers: Vec<(String, Vec<u8>)>,
    },
    OtlpGrpc(Box<GrpcSink>),
    Console {
        service_name: String,
    },
}

/// The instrumentation scope of every span.
fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("tollgate")
        .with_version(crate::state::VERSION)
        .build()
}

/// The OTLP/gRPC exporter, built on its first export: tonic's channel spawns its connection task
/// on the Tokio runtime that builds it, and the tracer is made before the actix system runs. The
/// first export runs on the export actor's arbiter (a Tokio runtime of its own), so the channel's
/// connection lives there; an export at shutdown uses the same channel.
struct GrpcSink {
    endpoint: String,
    metadata: tonic::metadata::MetadataMap,
    tls: Option<tonic::transport::ClientTlsConfig>,
    resource: opentelemetry_sdk::Resource,
    exporter: tokio::sync::OnceCell<opentelemetry_otlp::SpanExporter>,
}

impl GrpcSink {
    fn new(
        endpoint: &str,
        headers: &[(String, String)],
        ca_file: Option<&str>,
        resource: opentelemetry_sdk::Resource,
    ) -> Result<GrpcSink, String> {
        use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
        let mut metadata = MetadataMap::new();
        for (name, value) in headers {
            // The value is a secret more often than not: errors name the header only.
            let key =
                MetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|_| {
                    format!("the OpenTelemetry header {name} is not a valid gRPC metadata name")
                })?;
            let value = MetadataValue::try_from(value.as_str()).map_err(|_| {
                format!("the value of the OpenTelemetry header {name} is not valid gRPC metadata (visible ASCII)")
            })?;
            metadata.insert(key, value);
        }
        let tls = if endpoint.starts_with("https://") {
            let mut tls = tonic::transport::ClientTlsConfig::new().with_webpki_roots();
            // tonic refuses a system store without certificates; the built-in roots still apply.
            if !rustls_native_certs::load_native_certs().certs.is_empty() {
                tls = tls.with_native_roots();
            }
            if let Some(path) = ca_file {
                // Read and checked here, so that a bad bundle stops the start naming the file.
                crate::outbound::read_bundle(path)?;
                let pem = std::fs::read(path)
                    .map_err(|e| format!("cannot read the CA bundle {path}: {e}"))?;
                tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
            }
            Some(tls)
        } else {
            None
        };
        Ok(GrpcSink {
            endpoint: endpoint.to_string(),
            metadata,
            tls,
            resource,
            exporter: tokio::sync::OnceCell::new(),
        })
    }

    /// The exporter, built on first use (inside a Tokio runtime).
    async fn exporter(&self) -> Result<&opentelemetry_otlp::SpanExporter, String> {
        self.exporter
            .get_or_try_init(|| async {
                use opentelemetry_otlp::{WithExportConfig as _, WithTonicConfig as _};
                let mut builder = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(self.endpoint.clone())
                    .with_timeout(EXPORT_TIMEOUT)
                    .with_metadata(self.metadata.clone());
                if let Some(tls) = &self.tls {
                    builder = builder.with_tls_config(tls.clone());
                }
                let mut exporter = builder
                    .build()
                    .map_err(|e| format!("OpenTelemetry gRPC exporter: {e}"))?;
                exporter.set_resource(&self.resource);
                Ok(exporter)
            })
            .await
    }
}

/// The resource every exported span names: the service, its environment and version.
fn resource(settings: &TraceSettings) -> opentelemetry_sdk::Resource {
    opentelemetry_sdk::Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attribute(KeyValue::new(
            "deployment.environment",
            settings.environment.clone(),
        ))
        .with_attribute(KeyValue::new("service.version", crate::state::VERSION))
        .build()
}

/// A finished span waiting for export: for OTLP/HTTP its encoded message, already written (see
/// [`super::otlp`]); for the other sinks the SDK's span.
enum QueuedSpan {
    Encoded(Vec<u8>),
    Data(Box<SpanData>),
}

impl QueuedSpan {
    fn encoded(&self) -> Option<&[u8]> {
        match self {
            QueuedSpan::Encoded(message) => Some(message),
            QueuedSpan::Data(_) => None,
        }
    }

    fn data(&self) -> Option<&SpanData> {
        match self {
            QueuedSpan::Data(span) => Some(span),
            QueuedSpan::Encoded(_) => None,
        }
    }
}

/// Builds and queues spans; its actor ([`ExportActor`]) exports them.
pub struct Tracer {
    queue: Mutex<VecDeque<QueuedSpan>>,
    max_queue: usize,
    max_batch: usize,
    schedule_delay: Duration,
    scope: InstrumentationScope,
    sink: Sink,
    /// One export at a time (the actor's, or the flush at shutdown).
    exporting: tokio::sync::Mutex<()>,
    pub counters: TraceCounters,
}

impl Tracer {
    /// A tracer for `settings`. Fails only on a configuration the exporter refuses.
    pub fn new(settings: &TraceSettings) -> Result<Tracer, String> {
        let sink = match &settings.exporter {
            Exporter::Console => Sink::Console {
                service_name: settings.service_name.clone(),
            },
            Exporter::OtlpHttp { endpoint, headers } => {
                let mut all = vec![(
                    "content-type".to_string(),
                    b"application/x-protobuf".to_vec(),
                )];
                all.extend(
                    headers
                        .iter()
                        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec())),
                );
                for (name, value) in &all {
                    awc::http::header::HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| format!("OTEL headers: {name:?} is not a header name"))?;
                    awc::http::header::HeaderValue::from_bytes(value)
                        .map_err(|_| format!("OTEL headers: the value of {name} is not valid"))?;
                }
                Sink::OtlpHttp {
                    encoder: super::otlp::Encoder::new(&resource(settings), &scope()),
                    endpoint: endpoint.clone(),
                    headers: all,
                }
            }
            Exporter::OtlpGrpc {
                endpoint,
                headers,
                ca_file,
            } => Sink::OtlpGrpc(Box::new(GrpcSink::new(
                endpoint,
                headers,
                ca_file.as_deref(),
                resource(settings),
            )?)),
        };
        Ok(Tracer {
            queue: Mutex::new(VecDeque::new()),
            max_queue: settings.max_queue,
            max_batch: settings.max_batch,
            schedule_delay: settings.schedule_delay,
            scope: scope(),
            sink,
            exporting: tokio::sync::Mutex::new(()),
            counters: TraceCounters::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<QueuedSpan>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue a finished span, or drop it (counted) when the queue is full.
    fn push(&self, span: SpanData) {
        let span = match &self.sink {
            Sink::OtlpHttp { .. } => QueuedSpan::Encoded(super::otlp::span_message(&span)),
            Sink::OtlpGrpc(_) | Sink::Console { .. } => QueuedSpan::Data(Box::new(span)),
        };
        let mut queue = self.lock();
        if queue.len() >= self.max_queue {
            drop(queue);
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        queue.push_back(span);
    }

    /// Spans waiting for export.
    pub fn queued(&self) -> usize {
        self.lock().len()
    }

    /// Whether a span can be recorded: sampled, and room in the queue. A span that would be
    /// dropped is counted and not even built (a collector that cannot keep up costs no more).
    fn wanted(&self, ctx: &TraceContext) -> bool {
        if !ctx.sampled {
            return false;
        }
        if self.queued() >= self.max_queue {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// A request's trace, from its headers.
    pub fn start_request(self: &Arc<Self>, http: &actix_web::HttpRequest) -> RequestTrace {
        let header = |name: &str| http.headers().get(name).and_then(|v| v.to_str().ok());
        RequestTrace {
            tracer: self.clone(),
            ctx: TraceContext::from_headers(header("traceparent"), header("tracestate")),
        }
    }

    /// Record an attempt's span, now that it ended.
    pub fn attempt_ended(&self, ctx: &TraceContext, span: &AttemptSpan, end: AttemptEnd<'_>) {
        if !self.wanted(ctx) {
            return;
        }
        let op = operation(end.call_type);
        let model = provider_model(end.model, end.provider);
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", op),
            KeyValue::new("gen_ai.request.model", model.clone()),
            KeyValue::new("http.response.status_code", end.status_code as i64),
            KeyValue::new("litellm.call_id", end.call_id.to_string()),
        ];
        if let Some(provider) = end.provider {
            attributes.push(KeyValue::new(
                "gen_ai.provider.name",
                provider_name(provider),
            ));
        }
        if let Some(group) = end.model_group {
            attributes.push(KeyValue::new("litellm.model_group", group.to_string()));
        }
        if let Some(id) = end.deployment_id {
            attributes.push(KeyValue::new("litellm.model_id", id.to_string()));
        }
        if end.error.is_none() {
            attributes.push(KeyValue::new("gen_ai.response.model", model.clone()));
        }
        if let Some(usage) = end.usage {
            usage_attributes(&mut attributes, &usage);
        }
        let status = end_status(&mut attributes, end.status_code, end.error.as_deref());
        self.push(SpanData {
            span_context: ctx.span_context(span.span_id),
            parent_span_id: ctx.span_id,
            parent_span_is_remote: false,
            span_kind: SpanKind::Client,
            name: Cow::Owned(format!("{op} {model}")),
            start_time: span.start,
            end_time: SystemTime::now(),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: self.scope.clone(),
        });
    }

    /// Record a request's span, now that it finished.
    fn request_finished(&self, ctx: &TraceContext, ev: &RequestEvent) {
        if !self.wanted(ctx) {
            return;
        }
        let log = &ev.log;
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", operation(&log.call_type)),
            KeyValue::new("gen_ai.request.model", ev.requested_model.clone()),
            KeyValue::new("http.response.status_code", ev.status_code as i64),
            KeyValue::new("litellm.call_id", log.request_id.clone()),
            KeyValue::new("litellm.cache_hit", log.cache_hit),
        ];
        if ev.succeeded() {
            let model = provider_model(&log.model, ev.provider.as_deref());
            attributes.push(KeyValue::new("gen_ai.response.model", model));
            usage_attributes(
                &mut attributes,
                &Usage {
                    prompt_tokens: log.prompt_tokens.max(0) as u64,
                    completion_tokens: log.completion_tokens.max(0) as u64,
                    total_tokens: log.total_tokens.max(0) as u64,
                    ..Usage::default()
                },
            );
            attributes.push(KeyValue::new("litellm.response_cost", log.spend));
        }
        if let Some(provider) = &ev.provider {
            attributes.push(KeyValue::new(
                "gen_ai.provider.name",
                provider_name(provider),
            ));
        }
        if let Some(id) = &log.response_id {
            attributes.push(KeyValue::new("gen_ai.response.id", id.clone()));
        }
        if let Some(group) = &log.model_group {
            attributes.push(KeyValue::new("litellm.model_group", group.clone()));
        }
        if let Some(id) = &log.model_id {
            attributes.push(KeyValue::new("litellm.model_id", id.clone()));
        }
        // Who: LiteLLM's `metadata.*` attributes; the key only as its hash.
        let who = [
            ("metadata.user_api_key_hash", Some(&log.api_key)),
            ("metadata.user_api_key_alias", ev.key_alias.as_ref()),
            ("metadata.user_api_key_user_id", log.user_id.as_ref()),
            ("metadata.user_api_key_team_id", log.team_id.as_ref()),
            ("metadata.user_api_key_team_alias", ev.team_alias.as_ref()),
            ("metadata.user_api_key_org_id", log.organization_id.as_ref()),
            ("metadata.user_api_key_end_user_id", log.end_user.as_ref()),
        ];
        for (key, value) in who {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                attributes.push(KeyValue::new(key, value.clone()));
            }
        }
        let status = end_status(&mut attributes, ev.status_code, ev.error.as_deref());
        self.push(SpanData {
            span_context: ctx.span_context(ctx.span_id),
            parent_span_id: ctx.parent_span_id,
            parent_span_is_remote: ctx.parent_span_id != SpanId::INVALID,
            span_kind: SpanKind::Server,
            name: Cow::Borrowed(SERVER_SPAN),
            start_time: ctx.start,
            end_time: SystemTime::now(),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: self.scope.clone(),
        });
    }

    /// Export up to one batch. Returns how many spans it took from the queue.
    async fn export_batch(&self) -> usize {
        let _one_at_a_time = self.exporting.lock().await;
        let batch: Vec<QueuedSpan> = {
            let mut queue = self.lock();
            let n = queue.len().min(self.max_batch);
            queue.drain(..n).collect()
        };
        let n = batch.len();
        if n == 0 {
            return 0;
        }
        let result = match &self.sink {
            Sink::OtlpHttp {
                encoder,
                endpoint,
                headers,
            } => {
                let body = bytes::Bytes::from(
                    encoder.request(batch.iter().filter_map(QueuedSpan::encoded)),
                );
                drop(batch);
                match crate::upstream::post_bytes(endpoint, headers, body, EXPORT_TIMEOUT).await {
                    Ok((status, _)) if (200..300).contains(&status) => Ok(()),
                    Ok((status, body)) => Err(format!(
                        "the collector answered {status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    )),
                    Err(e) => Err(e),
                }
            }
            Sink::OtlpGrpc(grpc) => match grpc.exporter().await {
                Ok(exporter) => {
                    let spans = batch
                        .into_iter()
                        .filter_map(|s| match s {
                            QueuedSpan::Data(d) => Some(*d),
                            QueuedSpan::Encoded(_) => None,
                        })
                        .collect();
                    exporter.export(spans).await.map_err(|e| e.to_string())
                }
                Err(e) => Err(e),
            },
            Sink::Console { service_name } => {
                use std::io::Write as _;
                let mut out = std::io::stdout().lock();
                batch
                    .iter()
                    .filter_map(QueuedSpan::data)
                    .try_for_each(|span| writeln!(out, "{}", console_json(span, service_name)))
                    .and_then(|()| out.flush())
                    .map_err(|e| e.to_string())
            }
        };
        match result {
            Ok(()) => {
                self.counters
                    .exported
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) => {
                self.counters.dropped.fetch_add(n as u64, Ordering::Relaxed);
                tracing::warn!(error = %e, spans = n, "trace export failed; spans dropped");
            }
        }
        n
    }

    /// Export everything queued, within `deadline` (at shutdown).
    pub async fn flush(&self, deadline: Duration) {
        let until = Instant::now() + deadline;
        while self.queued() > 0 {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if actix_web::rt::time::timeout(left, self.export_batch())
                .await
                .is_err()
            {
                break;
            }
        }
        let left = self.queued();
        if left > 0 {
            self.counters
                .dropped
                .fetch_add(left as u64, Ordering::Relaxed);
            tracing::warn!(spans = left, "spans not exported before shutdown");
        }
    }
}

/// A finished span's status: `Ok`, or `Error` with the error's message, the span then also
/// carrying `error.type` (the HTTP status).
fn end_status(attributes: &mut Vec<KeyValue>, status_code: u16, error: Option<&str>) -> Status {
    match error {
        Some(error) => {
            attributes.push(KeyValue::new("error.type", status_code.to_string()));
            Status::error(error.to_string())
        }
        None => Status::Ok,
    }
}

fn usage_attributes(attributes: &mut Vec<KeyValue>, usage: &Usage) {
    attributes.push(KeyValue::new(
        "gen_ai.usage.input_tokens",
        usage.prompt_tokens as i64,
    ));
    attributes.push(KeyValue::new(
        "gen_ai.usage.output_tokens",
        usage.completion_tokens as i64,
    ));
    attributes.push(KeyValue::new(
        "gen_ai.usage.total_tokens",
        usage.total_tokens as i64,
    ));
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn attribute_json(v: &opentelemetry::Value) -> Value {
    match v {
        opentelemetry::Value::Bool(b) => json!(b),
        opentelemetry::Value::I64(i) => json!(i),
        opentelemetry::Value::F64(f) => json!(f),
        other => json!(other.as_str()),
    }
}

/// The console exporter's line for one span.
fn console_json(span: &SpanData, service_name: &str) -> Value {
    let attributes: Map<String, Value> = span
        .attributes
        .iter()
        .map(|kv| (kv.key.as_str().to_string(), attribute_json(&kv.value)))
        .collect();
    let (status, description) = match &span.status {
        Status::Ok => ("OK", None),
        Status::Error { description } => ("ERROR", Some(description.to_string())),
        Status::Unset => ("UNSET", None),
    };
    json!({
        "name": span.name,
        "context": {
            "trace_id": span.span_context.trace_id().to_string(),
            "span_id": span.span_context.span_id().to_string(),
            "trace_state": span.span_context.trace_state().header(),
        },
        "kind": match span.span_kind {
            SpanKind::Server => "SERVER",
            SpanKind::Client => "CLIENT",
            _ => "INTERNAL",
        },
        "parent_id": (span.parent_span_id != SpanId::INVALID).then(|| span.parent_span_id.to_string()),
        "start_time_unix_nano": unix_nanos(span.start_time),
        "end_time_unix_nano": unix_nanos(span.end_time),
        "status": {"status_code": status, "description": description},
        "attributes": attributes,
        "resource": {"service.name": service_name},
    })
}

impl RequestTrace {
    /// The request's span, from its finished event.
    pub fn request_finished(&self, event: &RequestEvent) {
        self.tracer.request_finished(&self.ctx, event);
    }
}

/// The tracer's actor: exports the queue when a batch is full, else every schedule delay.
pub struct ExportActor {
    tracer: Arc<Tracer>,
    exporting: bool,
    last_export: Instant,
}

impl Actor for ExportActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(TICK.min(self.tracer.schedule_delay), |this, ctx| {
            this.tick(ctx)
        });
    }
}

impl ExportActor {
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let queued = self.tracer.queued();
        let due = self.last_export.elapsed() >= self.tracer.schedule_delay;
        if self.exporting || queued == 0 || (queued < self.tracer.max_batch && !due) {
            return;
        }
        self.exporting = true;
        self.last_export = Instant::now();
        let tracer = self.tracer.clone();
        ctx.spawn(
            async move {
                // Batches back to back while the queue holds a full one.
                while tracer.export_batch().await == tracer.max_batch {}
            }
            .into_actor(self)
            .map(|(), this, _| this.exporting = false),
        );
    }
}

/// A started tracer: the tracer and its supervised export actor.
pub struct Traces {
    pub tracer: Arc<Tracer>,
    pub actor: Arc<tollgate_actors::Restartable<ExportActor>>,
}

/// Start the tracer's export actor. Must run inside the actix system.
pub fn start(tracer: Tracer) -> Traces {
    let tracer = Arc::new(tracer);
    let for_actor = tracer.clone();
    let actor = tollgate_actors::Restartable::start("trace exporter", move || ExportActor {
        tracer: for_actor.clone(),
        exporting: false,
        last_export: Instant::now(),
    });
    Traces { tracer, actor }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(yaml: &str, env: &[(&str, &str)]) -> Result<Option<TraceSettings>, String> {
        let cfg = ProxyConfig::parse(yaml, "t").unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TraceSettings::resolve(&cfg, &move |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    const ON: &str = "litellm_settings:\n  callbacks: [otel]\n";

    #[test]
    fn traces_are_turned_on_by_the_callback_lists_or_general_settings() {
        assert_eq!(resolve("litellm_settings: {}\n", &[]).unwrap(), None);
        for yaml in [
            ON,
            "litellm_settings:\n  success_callback: [opentelemetry]\n",
            "litellm_settings:\n  failure_callback: otel\n",
            "general_settings:\n  otel: true\n",
        ] {
            let s = resolve(yaml, &[]).unwrap().expect(yaml);
            assert_eq!(s.exporter, Exporter::Console, "{yaml}");
            assert_eq!(s.service_name, "litellm");
            assert_eq!(
                (s.schedule_delay, s.max_queue, s.max_batch),
                (EXPORT_EVERY, QUEUE_MAX, BATCH)
            );
        }
    }

    #[test]
    fn endpoints_are_normalized_as_litellm_does() {
        assert_eq!(traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/v1"), "http://c:4318/v1/traces");
        assert_eq!(
            traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://c:4318/v1/logs"),
            "http://c:4318/v1/traces"
        );
        let s = resolve(
            ON,
            &[
                ("OTEL_EXPORTER", "otlp_http"),
                ("OTEL_ENDPOINT", "https://api.honeycomb.io"),
                (
                    "OTEL_HEADERS",
                    "x-honeycomb-team=abc,Authorization=Bearer%20tok",
                ),
                ("OTEL_SERVICE_NAME", "gateway"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            s.exporter,
            Exporter::OtlpHttp {
                endpoint: "https://api.honeycomb.io/v1/traces".into(),
                headers: vec![
                    ("x-honeycomb-team".into(), "abc".into()),
                    ("Authorization".into(), "Bearer tok".into())
                ]
            }
        );
        assert_eq!(s.service_name, "gateway");
        // The standard variables win; the per-signal endpoint is used as it is.
        let s = resolve(
            ON,
            &[
                ("OTEL_ENDPOINT", "http://litellm-style:4318"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://standard:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ],
        )
        .unwrap()
        .unwrap();
        assert!(
            matches!(s.exporter, Exporter::OtlpHttp { ref endpoint, .. } if endpoint == "http://standard:4318/v1/traces")
        );
        let s = resolve(
            ON,
            &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c/custom/path")],
        )
        .unwrap()
        .unwrap();
        assert!(
            matches!(s.exporter, Exporter::OtlpHttp { ref endpoint, .. } if endpoint == "http://c/custom/path")
        );
    }

    #[test]
    fn a_missing_endpoint_or_an_unknown_exporter_is_named_at_start() {
        let err = resolve(ON, &[("OTEL_EXPORTER", "otlp_http")]).unwrap_err();
        assert!(err.contains("OTEL_ENDPOINT"), "{err}");
        let err = resolve(ON, &[("OTEL_EXPORTER", "zipkin")]).unwrap_err();
        assert!(err.contains("OTEL_EXPORTER=zipkin"), "{err}");
        let err = resolve(
            ON,
            &[
                ("OTEL_EXPORTER", "otlp_grpc"),
                ("OTEL_ENDPOINT", "unix:///run/collector.sock"),
            ],
        )
        .unwrap_err();
        assert!(
            err.contains("OTEL_ENDPOINT") && err.contains("http://"),
            "{err}"
        );
        let err = resolve(
            ON,
            &[
                ("OTEL_EXPORTER", "grpc"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http:///v1/traces"),
            ],
        )
        .unwrap_err();
        assert!(err.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{err}");
        let err = resolve(ON, &[("OTEL_ENDPOINT", "collector:4318")]).unwrap_err();
        assert!(err.contains("http://"), "{err}");
        let err = resolve(ON, &[("OTEL_BSP_SCHEDULE_DELAY", "soon")]).unwrap_err();
        assert!(err.contains("OTEL_BSP_SCHEDULE_DELAY"), "{err}");
    }

    #[test]
    fn grpc_exports_to_the_collectors_origin_with_the_headers_as_metadata() {
        let grpc = |env: &[(&str, &str)]| match resolve(ON, env).unwrap().unwrap().exporter {
            Exporter::OtlpGrpc {
                endpoint,
                headers,
                ca_file,
            } => (endpoint, headers, ca_file),
            other => panic!("{other:?}"),
        };
        // LiteLLM's variables; its `/v1/traces` (or any path) is not part of a gRPC target.
        let (endpoint, headers, ca_file) = grpc(&[
            ("OTEL_EXPORTER", "otlp_grpc"),
            ("OTEL_ENDPOINT", "https://api.lmnr.ai:8443/v1/traces"),
            ("OTEL_HEADERS", "authorization=Bearer%20tok,x-team=ml"),
        ]);
        assert_eq!(endpoint, "https://api.lmnr.ai:8443");
        assert_eq!(
            headers,
            vec![
                ("authorization".into(), "Bearer tok".into()),
                ("x-team".into(), "ml".into())
            ]
        );
        assert_eq!(ca_file, None);
        // No endpoint: the OpenTelemetry default, as LiteLLM's gRPC exporter.
        assert_eq!(
            grpc(&[("OTEL_EXPORTER", "otlp_grpc")]).0,
            GRPC_DEFAULT_ENDPOINT
        );
        // The standard variables: protocol `grpc`, the per-signal endpoint without a scheme
        // (https unless INSECURE), the certificate bundle.
        let (endpoint, _, ca_file) = grpc(&[
            ("OTEL_EXPORTER", "otlp_http"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4317"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"),
        ]);
        assert_eq!(endpoint, "https://collector:4317");
        assert_eq!(ca_file.as_deref(), Some("/etc/ca.pem"));
        let (endpoint, _, _) = grpc(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
            ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
        ]);
        assert_eq!(endpoint, "http://collector:4317");
        assert_eq!(
            grpc_origin("E", "http://user:secret@c:4317/x?y", false).unwrap(),
            "http://c:4317"
        );
        let err = grpc_origin("E", "ftp://user:secret@c", false).unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn grpc_metadata_and_certificates_are_checked_at_start() {
        let settings = |exporter| TraceSettings {
            exporter,
            service_name: "litellm".into(),
            environment: "production".into(),
            schedule_delay: EXPORT_EVERY,
            max_queue: QUEUE_MAX,
            max_batch: BATCH,
        };
        let grpc = |headers: Vec<(&str, &str)>, ca_file: Option<&str>| {
            Tracer::new(&settings(Exporter::OtlpGrpc {
                endpoint: "https://collector:4317".into(),
                headers: headers
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ca_file: ca_file.map(str::to_string),
            }))
        };
        // Built without a Tokio runtime (the exporter itself is made on the first export).
        assert!(grpc(vec![("X-Team", "ml")], None).is_ok());
        let err = grpc(vec![("bad header", "v")], None).err().unwrap();
        assert!(err.contains("bad header"), "{err}");
        let err = grpc(vec![("authorization", "secret\nvalue")], None)
            .err()
            .unwrap();
        assert!(
            err.contains("authorization") && !err.contains("secret"),
            "{err}"
        );
        let err = grpc(vec![], Some("/nonexistent/collector-ca.pem"))
            .err()
            .unwrap();
        assert!(err.contains("/nonexistent/collector-ca.pem"), "{err}");
    }

    #[test]
    fn traceparent_headers_are_parsed_strictly() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let (trace, span, sampled) = parse_traceparent(tp).unwrap();
        assert_eq!(trace.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span.to_string(), "00f067aa0ba902b7");
        assert!(sampled);
        assert!(
            !parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
                .unwrap()
                .2
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
        // A later version may add fields.
        assert!(parse_traceparent(&format!("01-{}-x", &tp[3..])).is_some());

        let ctx = TraceContext::from_headers(Some(tp), Some("vendor=abc"));
        assert_eq!(ctx.trace_id, trace);
        assert_eq!(ctx.parent_span_id, span);
        assert_ne!(ctx.span_id, span);
        let child = random_span_id();
        assert_eq!(
            ctx.traceparent(child),
            format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{child}-01")
        );
        assert_eq!(ctx.tracestate().as_deref(), Some("vendor=abc"));
        let fresh = TraceContext::from_headers(Some("garbage"), None);
        assert_ne!(fresh.trace_id, TraceId::INVALID);
        assert_eq!(fresh.parent_span_id, SpanId::INVALID);
        assert!(fresh.sampled && fresh.tracestate().is_none());
    }

    fn tracer() -> Arc<Tracer> {
        Arc::new(
            Tracer::new(&TraceSettings {
                exporter: Exporter::Console,
                service_name: "litellm".into(),
                environment: "production".into(),
                schedule_delay: EXPORT_EVERY,
                max_queue: QUEUE_MAX,
                max_batch: BATCH,
            })
            .unwrap(),
        )
    }

    #[test]
    fn attempt_spans_carry_the_genai_attributes_and_the_console_line_shows_them() {
        let tracer = tracer();
        let ctx = TraceContext::from_headers(None, None);
        let span = AttemptSpan::start();
        tracer.attempt_ended(
            &ctx,
            &span,
            AttemptEnd {
                call_type: "acompletion",
                model: "openai/gpt-4o",
                model_group: Some("g"),
                deployment_id: Some("d1"),
                provider: Some("openai"),
                usage: Some(Usage {
                    prompt_tokens: 3,
                    completion_tokens: 4,
                    total_tokens: 7,
                    ..Usage::default()
                }),
                status_code: 200,
                error: None,
                call_id: "call-1",
            },
        );
        tracer.attempt_ended(
            &ctx,
            &AttemptSpan::start(),
            AttemptEnd {
                call_type: "aembedding",
                model: "bedrock/amazon.titan",
                model_group: None,
                deployment_id: None,
                provider: Some("bedrock"),
                usage: None,
                status_code: 503,
                error: Some("overloaded".into()),
                call_id: "call-1",
            },
        );
        let queue = tracer.lock();
        assert_eq!(queue.len(), 2);
        let data = |q: &QueuedSpan| q.data().cloned().expect("the console tracer queues spans");
        let line = console_json(&data(&queue[0]), "litellm");
        assert_eq!(line["name"], "chat gpt-4o");
        assert_eq!(line["kind"], "CLIENT");
        assert_eq!(line["context"]["trace_id"], ctx.trace_id.to_string());
        assert_eq!(line["context"]["span_id"], span.span_id.to_string());
        assert_eq!(line["parent_id"], ctx.span_id.to_string());
        let a = &line["attributes"];
        assert_eq!(a["gen_ai.request.model"], "gpt-4o");
        assert_eq!(a["gen_ai.response.model"], "gpt-4o");
        assert_eq!(a["gen_ai.provider.name"], "openai");
        assert_eq!(a["gen_ai.usage.input_tokens"], 3);
        assert_eq!(a["gen_ai.usage.output_tokens"], 4);
        assert_eq!(a["http.response.status_code"], 200);
        assert_eq!(line["status"]["status_code"], "OK");
        let failed = console_json(&data(&queue[1]), "litellm");
        assert_eq!(failed["name"], "embeddings amazon.titan");
        assert_eq!(failed["attributes"]["gen_ai.provider.name"], "aws.bedrock");
        assert_eq!(failed["attributes"]["error.type"], "503");
        assert_eq!(failed["status"]["status_code"], "ERROR");
        assert_eq!(failed["status"]["description"], "overloaded");
    }

    #[test]
    fn the_queue_is_bounded_and_unsampled_requests_record_nothing() {
        let tracer = tracer();
        let unsampled = TraceContext::from_headers(
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
            None,
        );
        let end = || AttemptEnd {
            call_type: "acompletion",
            model: "m",
            model_group: None,
            deployment_id: None,
            provider: None,
            usage: None,
            status_code: 200,
            error: None,
            call_id: "c",
        };
        tracer.attempt_ended(&unsampled, &AttemptSpan::start(), end());
        assert_eq!(tracer.queued(), 0);
        let ctx = TraceContext::from_headers(None, None);
        for _ in 0..QUEUE_MAX + 3 {
            tracer.attempt_ended(&ctx, &AttemptSpan::start(), end());
        }
        assert_eq!(tracer.queued(), QUEUE_MAX);
        assert_eq!(tracer.counters.dropped.load(Ordering::Relaxed), 3);
    }
}
