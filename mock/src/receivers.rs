//! Receivers for the gateway's logging callbacks, so tests check real payloads: each validates what
//! it gets against the receiver's public API (and its auth), answers as the real one does, and keeps
//! what it accepted for `GET /mock/receivers`.
//!
//! * `POST /api/public/ingestion`: Langfuse's ingestion API. HTTP basic auth (`public:secret`)
//!   required; a body `{"batch": [{"id", "type", "timestamp", "body"}, …]}` whose `type` is one of
//!   Langfuse's event types; a `generation-create` needs `body.traceId`, and its `usage` numbers.
//!   Answers 207 with `successes` / `errors`, as Langfuse does; 401 without auth, 400 for a bad batch.
//! * `POST /mock/receivers/generic`: a generic logging endpoint: a JSON list of objects, each with
//!   `id` and `call_type` (LiteLLM's standard logging payload). `?hang_ms=N` waits N ms before
//!   answering, `?status=N` answers N: a slow or failing receiver, for the gateway's tests.
//! * `POST /mock/receivers/slack`: a Slack incoming webhook (`{"text": …}`, answered `ok`).
//! * `POST /v1/traces`: an OpenTelemetry collector's OTLP/HTTP traces endpoint. The body must be
//!   an `ExportTraceServiceRequest` in protobuf (`content-type: application/x-protobuf`); it is
//!   decoded (415 for another content type, 400 for a body that does not decode) and answered with
//!   an empty `ExportTraceServiceResponse`, as a collector does. Each span is kept as JSON: ids in
//!   lowercase hex, its kind, times, status, attributes and its resource's attributes.
//! * `POST /api/v2/logs`: Datadog's logs intake v2. `DD-API-KEY` required (403 without); a JSON
//!   array of log items, each with `message` (a string), `ddsource` and `service`. Answers 202
//!   `{}`, as Datadog does; 400 for a bad body.
//! * `POST /runs/batch`: LangSmith's run ingestion. `x-api-key` required (401 without); a body
//!   `{"post": [run…]}` whose runs have a UUID `id` and `trace_id`, a `dotted_order` that ends
//!   with the run's id, a `name`, a LangSmith `run_type` and a `start_time`. Answers 202 `{}`.
//! * `POST /api/{project_id}/envelope/`: Sentry's envelope endpoint. `X-Sentry-Auth` with
//!   `sentry_key=…` required (401 without); the body is an envelope: a header line, an item
//!   header line (`type`, optional `length`), the item (an `event` needs a 32-hex `event_id`
//!   and a `level`). Answers 200 `{"id": event_id}`.
//! * `PUT /s3/{bucket}/{key…}`: S3's `PutObject`, path style, for an `s3_endpoint_url` of
//!   `{mock}/s3`. SigV4 (service `s3`) with the mock's AWS credentials (those of Bedrock) is
//!   recomputed over the request; `x-amz-content-sha256` must be the body's SHA-256 and signed. A
//!   bad or missing signature is 403 with S3's XML error (`SignatureDoesNotMatch`,
//!   `AccessDenied`…). Answers 200 with an `ETag`. The object is kept.
//! * `GET /s3/{bucket}/{key…}`: S3's `GetObject`, path style, signed as `PutObject` (empty
//!   payload): the object's bytes, or 404 `NoSuchKey`.
//! * `GET /storage/v1/b/{bucket}/o/{object}?alt=media`: Google Cloud Storage's JSON API media
//!   download, as an emulator (`STORAGE_EMULATOR_HOST`) serves it: the object's bytes, or 404.
//! * `PUT /mock/objects/{bucket}/{key…}`: put an object in the store S3 and GCS read (unsigned;
//!   for tests that need a config in a bucket).

use std::sync::Mutex;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::MockState;

/// What the receivers accepted.
#[derive(Default)]
pub(crate) struct Received {
    langfuse: Vec<Value>,
    langfuse_users: Vec<String>,
    generic: Vec<Value>,
    generic_headers: Vec<Value>,
    slack: Vec<Value>,
    spans: Vec<Value>,
    otlp_headers: Vec<Value>,
    datadog: Vec<Value>,
    datadog_keys: Vec<String>,
    langsmith: Vec<Value>,
    langsmith_keys: Vec<String>,
    sentry: Vec<Value>,
    sentry_keys: Vec<String>,
    s3: Vec<Value>,
    /// Objects by bucket and key, for S3's `GetObject` and GCS's media download.
    objects: std::collections::HashMap<(String, String), web::Bytes>,
    rejected: u64,
    /// What `/mock/sink/…` took: requests and body bytes.
    sink: (u64, u64),
}

/// Items each receiver keeps (the latest): a long load test against the receivers does not grow
/// the mock without bound.
const KEEP: usize = 20_000;

fn bounded<T>(items: &mut Vec<T>) {
    if items.len() > 2 * KEEP {
        items.drain(..items.len() - KEEP);
    }
}

impl Received {
    /// Keep each list to about its latest [`KEEP`] items (trimmed in halves, so a push stays
    /// cheap).
    fn bound(&mut self) {
        bounded(&mut self.langfuse);
        bounded(&mut self.langfuse_users);
        bounded(&mut self.generic);
        bounded(&mut self.generic_headers);
        bounded(&mut self.slack);
        bounded(&mut self.spans);
        bounded(&mut self.otlp_headers);
        bounded(&mut self.datadog);
        bounded(&mut self.datadog_keys);
        bounded(&mut self.langsmith);
        bounded(&mut self.langsmith_keys);
        bounded(&mut self.sentry);
        bounded(&mut self.sentry_keys);
        bounded(&mut self.s3);
    }
}

pub(crate) type Receivers = Mutex<Received>;

fn lock(r: &Receivers) -> std::sync::MutexGuard<'_, Received> {
    r.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig, state: &web::Data<MockState>) {
    cfg.service(
        web::resource("/api/public/ingestion")
            .app_data(state.clone())
            .route(web::post().to(langfuse)),
    )
    .service(
        web::resource("/mock/receivers/generic")
            .app_data(state.clone())
            .route(web::post().to(generic)),
    )
    .service(
        web::resource("/mock/receivers/slack")
            .app_data(state.clone())
            .route(web::post().to(slack)),
    )
    .service(
        web::resource("/v1/traces")
            .app_data(state.clone())
            .route(web::post().to(otlp_traces)),
    )
    .service(
        web::resource("/mock/receivers")
            .app_data(state.clone())
            .route(web::get().to(received)),
    )
    .service(
        web::resource("/mock/sink/{tail:.*}")
            .app_data(state.clone())
            .route(web::post().to(sink)),
    )
    .service(
        web::resource("/api/v2/logs")
            .app_data(state.clone())
            .route(web::post().to(datadog)),
    )
    .service(
        web::resource("/runs/batch")
            .app_data(state.clone())
            .route(web::post().to(langsmith)),
    )
    .service(
        web::resource("/api/{project_id}/envelope/")
            .app_data(state.clone())
            .route(web::post().to(sentry)),
    )
    .service(
        web::resource("/s3/{bucket}/{key:.+}")
            .app_data(state.clone())
            .route(web::put().to(s3))
            .route(web::get().to(s3_get)),
    )
    .service(
        web::resource("/storage/v1/b/{bucket}/o/{object:.+}")
            .app_data(state.clone())
            .route(web::get().to(gcs_get)),
    )
    .service(
        web::resource("/mock/objects/{bucket}/{key:.+}")
            .app_data(state.clone())
            .route(web::put().to(put_object)),
    );
}

const LANGFUSE_TYPES: &[&str] = &[
    "trace-create",
    "generation-create",
    "generation-update",
    "span-create",
    "span-update",
    "event-create",
    "score-create",
    "sdk-log",
];

fn basic_user(req: &HttpRequest) -> Option<String> {
    let header = req.headers().get("authorization")?.to_str().ok()?;
    let encoded = header.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, secret) = text.split_once(':')?;
    (!user.is_empty() && !secret.is_empty()).then(|| user.to_string())
}

/// Why a Langfuse batch is not one, if it is not.
fn langfuse_problem(body: &Value) -> Option<String> {
    let Some(batch) = body.get("batch").and_then(Value::as_array) else {
        return Some("body must be {\"batch\": [...]}".into());
    };
    for (i, event) in batch.iter().enumerate() {
        let text = |k: &str| event.get(k).and_then(Value::as_str);
        if text("id").is_none_or(str::is_empty) || text("timestamp").is_none() {
            return Some(format!("batch[{i}] needs id and timestamp"));
        }
        let Some(kind) = text("type").filter(|t| LANGFUSE_TYPES.contains(t)) else {
            return Some(format!("batch[{i}].type is not a Langfuse event type"));
        };
        let Some(inner) = event.get("body").filter(|b| b.is_object()) else {
            return Some(format!("batch[{i}].body must be an object"));
        };
        if kind == "generation-create" {
            if inner.get("traceId").and_then(Value::as_str).is_none() {
                return Some(format!("batch[{i}].body.traceId is required"));
            }
            if let Some(usage) = inner.get("usage") {
                if ["input", "output", "total"]
                    .iter()
                    .any(|k| usage.get(*k).is_some_and(|v| !v.is_u64()))
                {
                    return Some(format!("batch[{i}].body.usage counts must be integers"));
                }
            }
        }
    }
    None
}

async fn langfuse(req: HttpRequest, body: web::Bytes, state: web::Data<MockState>) -> HttpResponse {
    let Some(user) = basic_user(&req) else {
        lock(&state.receivers).rejected += 1;
        return HttpResponse::Unauthorized()
            .json(json!({"message": "Invalid authorization header"}));
    };
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(problem) = langfuse_problem(&parsed) {
        lock(&state.receivers).rejected += 1;
        return HttpResponse::BadRequest().json(json!({"message": problem}));
    }
    let successes: Vec<Value> = parsed["batch"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| json!({"id": e["id"], "status": 201}))
        .collect();
    {
        let mut r = lock(&state.receivers);
        r.langfuse.push(parsed);
        r.langfuse_users.push(user);
        r.bound();
    }
    HttpResponse::MultiStatus().json(json!({"successes": successes, "errors": []}))
}

#[derive(Deserialize)]
struct GenericQuery {
    hang_ms: Option<u64>,
    status: Option<u16>,
}

async fn generic(
    req: HttpRequest,
    body: web::Bytes,
    q: web::Query<GenericQuery>,
    state: web::Data<MockState>,
) -> HttpResponse {
    if let Some(ms) = q.hang_ms {
        actix_web::rt::time::sleep(Duration::from_millis(ms.min(600_000))).await;
    }
    if let Some(status) = q.status {
        let status = actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
        return HttpResponse::build(status).finish();
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let valid = parsed.as_array().is_some_and(|items| {
        !items.is_empty()
            && items.iter().all(|i| {
                i.get("id").and_then(Value::as_str).is_some()
                    && i.get("call_type").and_then(Value::as_str).is_some()
            })
    });
    if !valid {
        lock(&state.receivers).rejected += 1;
        return HttpResponse::BadRequest()
            .json(json!({"message": "expected a list of logging payloads"}));
    }
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_string(),
                Value::String(v.to_str().ok()?.into()),
            ))
        })
        .collect();
    let mut r = lock(&state.receivers);
    r.generic.push(parsed);
    r.generic_headers.push(Value::Object(headers));
    r.bound();
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// A Slack incoming webhook: `{"text": "…"}` (non-empty), answered `ok` as Slack does.
async fn slack(body: web::Bytes, state: web::Data<MockState>) -> HttpResponse {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if parsed
        .get("text")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        lock(&state.receivers).rejected += 1;
        return HttpResponse::BadRequest().body("no_text");
    }
    {
        let mut r = lock(&state.receivers);
        r.slack.push(parsed);
        r.bound();
    }
    HttpResponse::Ok().body("ok")
}

fn headers_json(req: &HttpRequest) -> Value {
    Value::Object(
        req.headers()
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.as_str().to_string(),
                    Value::String(v.to_str().ok()?.into()),
                ))
            })
            .collect(),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn any_value(v: &opentelemetry_proto::tonic::common::v1::AnyValue) -> Value {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    match &v.value {
        Some(V::StringValue(s)) => json!(s),
        Some(V::BoolValue(b)) => json!(b),
        Some(V::IntValue(i)) => json!(i),
        Some(V::DoubleValue(f)) => json!(f),
        Some(V::ArrayValue(a)) => Value::Array(a.values.iter().map(any_value).collect()),
        Some(V::BytesValue(b)) => json!(hex(b)),
        Some(V::KvlistValue(l)) => attributes(&l.values),
        Some(V::StringValueStrindex(i)) => json!(i),
        None => Value::Null,
    }
}

fn attributes(kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> Value {
    Value::Object(
        kvs.iter()
            .map(|kv| {
                let value = kv.value.as_ref().map_or(Value::Null, any_value);
                (kv.key.clone(), value)
            })
            .collect(),
    )
}

/// The spans of an OTLP/HTTP export request body (protobuf), as JSON.
fn decode_spans(body: &[u8]) -> Result<Vec<Value>, String> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message as _;
    let request = ExportTraceServiceRequest::decode(body).map_err(|e| e.to_string())?;
    otlp_spans(&request)
}

/// The spans of an OTLP export request, as JSON (`trace_id`, `span_id`, `parent_span_id` in hex,
/// `kind` by its proto name, `status`, `attributes`, `resource`, `scope`); `Err` for a span with
/// malformed ids. Shared with the tests' OTLP/gRPC collector.
pub fn otlp_spans(
    request: &opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
) -> Result<Vec<Value>, String> {
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
    let mut spans = Vec::new();
    for resource_spans in &request.resource_spans {
        let resource = resource_spans
            .resource
            .as_ref()
            .map_or(json!({}), |r| attributes(&r.attributes));
        for scope_spans in &resource_spans.scope_spans {
            let scope = scope_spans.scope.as_ref().map(|s| s.name.clone());
            for span in &scope_spans.spans {
                if span.trace_id.len() != 16 || span.span_id.len() != 8 {
                    return Err(format!("span {:?} has malformed ids", span.name));
                }
                let kind = SpanKind::try_from(span.kind)
                    .map(|k| k.as_str_name())
                    .unwrap_or("SPAN_KIND_UNSPECIFIED");
                let status = span.status.as_ref();
                spans.push(json!({
                    "trace_id": hex(&span.trace_id),
                    "span_id": hex(&span.span_id),
                    "parent_span_id": hex(&span.parent_span_id),
                    "trace_state": span.trace_state,
                    "name": span.name,
                    "kind": kind,
                    "start_time_unix_nano": span.start_time_unix_nano,
                    "end_time_unix_nano": span.end_time_unix_nano,
                    "status": {
                        "code": status.map_or(0, |s| s.code),
                        "message": status.map(|s| s.message.clone()).unwrap_or_default(),
                    },
                    "attributes": attributes(&span.attributes),
                    "resource": resource,
                    "scope": scope,
                }));
            }
        }
    }
    Ok(spans)
}

/// An OTLP/HTTP traces endpoint (protobuf).
async fn otlp_traces(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<MockState>,
) -> HttpResponse {
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/x-protobuf") {
        lock(&state.receivers).rejected += 1;
        return HttpResponse::UnsupportedMediaType()
            .body("this receiver takes application/x-protobuf");
    }
    match decode_spans(&body) {
        Ok(spans) => {
            let mut r = lock(&state.receivers);
            r.spans.extend(spans);
            r.otlp_headers.push(headers_json(&req));
            r.bound();
            drop(r);
            // An empty ExportTraceServiceResponse.
            HttpResponse::Ok()
                .content_type("application/x-protobuf")
                .finish()
        }
        Err(e) => {
            lock(&state.receivers).rejected += 1;
            HttpResponse::BadRequest().body(format!("not an ExportTraceServiceRequest: {e}"))
        }
    }
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn reject(state: &MockState) {
    lock(&state.receivers).rejected += 1;
}

/// Why a Datadog logs body is not one, if it is not.
fn datadog_problem(body: &Value) -> Option<String> {
    let Some(items) = body.as_array().filter(|a| !a.is_empty()) else {
        return Some("body must be a non-empty array of log items".into());
    };
    for (i, item) in items.iter().enumerate() {
        for field in ["message", "ddsource", "service"] {
            if item.get(field).and_then(Value::as_str).is_none() {
                return Some(format!("[{i}].{field} must be a string"));
            }
        }
        if let Some(status) = item.get("status") {
            if status.as_str().is_none() {
                return Some(format!("[{i}].status must be a string"));
            }
        }
    }
    None
}

async fn datadog(req: HttpRequest, body: web::Bytes, state: web::Data<MockState>) -> HttpResponse {
    let Some(key) = header(&req, "dd-api-key") else {
        reject(&state);
        return HttpResponse::Forbidden().json(json!({"errors": ["Forbidden"]}));
    };
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(problem) = datadog_problem(&parsed) {
        reject(&state);
        return HttpResponse::BadRequest().json(json!({"errors": [problem]}));
    }
    let mut r = lock(&state.receivers);
    r.datadog.push(parsed);
    r.datadog_keys.push(key.to_string());
    r.bound();
    HttpResponse::Accepted().json(json!({}))
}

const LANGSMITH_RUN_TYPES: &[&str] = &[
    "llm",
    "chain",
    "tool",
    "retriever",
    "embedding",
    "prompt",
    "parser",
];

fn is_uuid(v: Option<&Value>) -> bool {
    v.and_then(Value::as_str)
        .is_some_and(|s| uuid::Uuid::parse_str(s).is_ok())
}

/// Why a LangSmith `/runs/batch` body is not one, if it is not.
fn langsmith_problem(body: &Value) -> Option<String> {
    let Some(runs) = body.get("post").and_then(Value::as_array) else {
        return Some("body must be {\"post\": [...]}".into());
    };
    for (i, run) in runs.iter().enumerate() {
        if !is_uuid(run.get("id")) || !is_uuid(run.get("trace_id")) {
            return Some(format!("post[{i}]: id and trace_id must be UUIDs"));
        }
        let id = run["id"].as_str().unwrap_or_default();
        let dotted = run
            .get("dotted_order")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // `{YYYYMMDD}T{HHMMSS}{micros}Z{id}` for a root run.
        if !dotted.ends_with(id) || dotted.len() != 22 + id.len() || dotted.as_bytes()[21] != b'Z' {
            return Some(format!("post[{i}].dotted_order is not a root run's"));
        }
        if run
            .get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
            || run.get("start_time").and_then(Value::as_str).is_none()
        {
            return Some(format!("post[{i}] needs name and start_time"));
        }
        if !run
            .get("run_type")
            .and_then(Value::as_str)
            .is_some_and(|t| LANGSMITH_RUN_TYPES.contains(&t))
        {
            return Some(format!("post[{i}].run_type is not a LangSmith run type"));
        }
    }
    None
}

async fn langsmith(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<MockState>,
) -> HttpResponse {
    let Some(key) = header(&req, "x-api-key") else {
        reject(&state);
        return HttpResponse::Unauthorized().json(json!({"detail": "Unauthorized"}));
    };
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(problem) = langsmith_problem(&parsed) {
        reject(&state);
        return HttpResponse::UnprocessableEntity().json(json!({"detail": problem}));
    }
    let mut r = lock(&state.receivers);
    r.langsmith.push(parsed);
    r.langsmith_keys.push(key.to_string());
    r.bound();
    HttpResponse::Accepted().json(json!({}))
}

/// The `sentry_key` of an `X-Sentry-Auth` header (`Sentry sentry_version=7, sentry_key=…, …`).
fn sentry_key(auth: &str) -> Option<String> {
    auth.strip_prefix("Sentry ")?
        .split(',')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| *k == "sentry_key")
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// An envelope's event: header line, item header line, item. `Err` says what is wrong.
fn sentry_event(body: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the envelope is not UTF-8")?;
    let mut lines = text.splitn(3, '\n');
    let header: Value = serde_json::from_str(lines.next().unwrap_or_default())
        .map_err(|_| "the envelope header is not JSON")?;
    if !header.is_object() {
        return Err("the envelope header is not an object".into());
    }
    let item: Value = serde_json::from_str(lines.next().unwrap_or_default())
        .map_err(|_| "the item header is not JSON")?;
    if item.get("type").and_then(Value::as_str) != Some("event") {
        return Err("the item is not an event".into());
    }
    let rest = lines.next().unwrap_or_default();
    let payload = match item.get("length").and_then(Value::as_u64) {
        Some(n) => rest
            .get(..n as usize)
            .ok_or("the item is shorter than its length")?,
        None => rest.split('\n').next().unwrap_or_default(),
    };
    let event: Value = serde_json::from_str(payload).map_err(|_| "the event is not JSON")?;
    let event_id = event
        .get("event_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if event_id.len() != 32 || !event_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("event_id must be 32 hex digits".into());
    }
    if event.get("level").and_then(Value::as_str).is_none() {
        return Err("the event has no level".into());
    }
    Ok(json!({"header": header, "item": item, "event": event}))
}

async fn sentry(
    req: HttpRequest,
    body: web::Bytes,
    project: web::Path<String>,
    state: web::Data<MockState>,
) -> HttpResponse {
    let Some(key) = header(&req, "x-sentry-auth").and_then(sentry_key) else {
        reject(&state);
        return HttpResponse::Unauthorized()
            .json(json!({"detail": "missing authorization information"}));
    };
    let mut envelope = match sentry_event(&body) {
        Ok(e) => e,
        Err(problem) => {
            reject(&state);
            return HttpResponse::BadRequest().json(json!({"detail": problem}));
        }
    };
    let id = envelope["event"]["event_id"].clone();
    envelope["project_id"] = Value::String(project.into_inner());
    let mut r = lock(&state.receivers);
    r.sentry.push(envelope);
    r.sentry_keys.push(key);
    r.bound();
    HttpResponse::Ok().json(json!({"id": id}))
}

/// An S3 error: status, `Code`, `Message`.
struct S3Error(u16, &'static str, String);

impl S3Error {
    /// S3's XML error body.
    fn response(&self) -> HttpResponse {
        let Self(status, code, message) = self;
        let status = actix_web::http::StatusCode::from_u16(*status)
            .unwrap_or(actix_web::http::StatusCode::FORBIDDEN);
        HttpResponse::build(status)
            .content_type("application/xml")
            .body(format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
            ))
    }
}

fn s3_error(status: u16, code: &'static str, message: &str) -> S3Error {
    S3Error(status, code, message.to_string())
}

/// Check a `PutObject`'s SigV4 signature as S3 does (service `s3`, the path as sent).
fn s3_authenticate(req: &HttpRequest, body: &[u8]) -> Result<(), S3Error> {
    use tollgate_wire::sigv4;
    let Some(auth) = header(req, "authorization") else {
        return Err(s3_error(403, "AccessDenied", "Access Denied"));
    };
    let Some(sig) = sigv4::parse_authorization(auth) else {
        return Err(s3_error(
            400,
            "AuthorizationHeaderMalformed",
            "The authorization header is malformed.",
        ));
    };
    if sig.service != "s3" {
        return Err(s3_error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed; incorrect service. This endpoint belongs to \"s3\"."));
    }
    if sig.access_key_id != crate::bedrock::ACCESS_KEY_ID {
        return Err(s3_error(
            403,
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        ));
    }
    let payload_hash = sigv4::sha256_hex(body);
    if header(req, "x-amz-content-sha256") != Some(payload_hash.as_str()) {
        return Err(s3_error(
            400,
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        ));
    }
    for needed in ["host", "x-amz-date", "x-amz-content-sha256"] {
        if !sig.signed_headers.iter().any(|h| h == needed) {
            return Err(s3_error(
                403,
                "AccessDenied",
                &format!("{needed} must be signed"),
            ));
        }
    }
    let amz_date = header(req, "x-amz-date").unwrap_or_default();
    let headers =
        crate::shared::sigv4_signed_headers(req, &sig.signed_headers).map_err(|name| {
            s3_error(
                403,
                "AccessDenied",
                &format!("signed header {name} is missing"),
            )
        })?;
    let expected = sigv4::sign_s3(
        &sigv4::Request {
            method: req.method().as_str(),
            path: req.uri().path(),
            query: req.uri().query().unwrap_or(""),
            headers: &headers,
            payload_hash: &payload_hash,
        },
        crate::bedrock::SECRET_ACCESS_KEY,
        amz_date,
        &sig.region,
    );
    if !amz_date.starts_with(&sig.date) || expected.signature != sig.signature {
        return Err(s3_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method."));
    }
    Ok(())
}

async fn s3(
    req: HttpRequest,
    body: web::Bytes,
    path: web::Path<(String, String)>,
    state: web::Data<MockState>,
) -> HttpResponse {
    if let Err(refused) = s3_authenticate(&req, &body) {
        reject(&state);
        return refused.response();
    }
    let (bucket, key) = path.into_inner();
    let content = serde_json::from_slice::<Value>(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    let etag = format!("\"{}\"", &tollgate_wire::sigv4::sha256_hex(&body)[..32]);
    {
        let mut r = lock(&state.receivers);
        r.objects
            .insert((bucket.clone(), key.clone()), body.clone());
        r.s3.push(json!({
            "bucket": bucket,
            "key": key,
            "content_type": header(&req, "content-type"),
            "body": content,
        }));
        r.bound();
    }
    HttpResponse::Ok().insert_header(("etag", etag)).finish()
}

/// `GET /s3/{bucket}/{key}`: S3's `GetObject`, signed like a `PutObject` of nothing.
async fn s3_get(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<MockState>,
) -> HttpResponse {
    if let Err(refused) = s3_authenticate(&req, b"") {
        reject(&state);
        return refused.response();
    }
    let found = lock(&state.receivers)
        .objects
        .get(&path.into_inner())
        .cloned();
    match found {
        Some(bytes) => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .body(bytes),
        None => s3_error(404, "NoSuchKey", "The specified key does not exist.").response(),
    }
}

/// `GET /storage/v1/b/{bucket}/o/{object}?alt=media`: GCS's media download (the object name is
/// percent-encoded in the path, `/` as `%2F`).
async fn gcs_get(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<MockState>,
) -> HttpResponse {
    if !req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .any(|p| p == "alt=media")
    {
        return HttpResponse::BadRequest().json(
            json!({"error": {"code": 400, "message": "only alt=media downloads are served"}}),
        );
    }
    let (bucket, object) = path.into_inner();
    let object = percent_encoding::percent_decode_str(&object)
        .decode_utf8_lossy()
        .into_owned();
    let found = lock(&state.receivers)
        .objects
        .get(&(bucket.clone(), object.clone()))
        .cloned();
    match found {
        Some(bytes) => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .body(bytes),
        None => HttpResponse::NotFound().json(json!({"error": {"code": 404, "message": format!("No such object: {bucket}/{object}")}})),
    }
}

/// `PUT /mock/objects/{bucket}/{key}`: put an object in the store (unsigned; for tests).
async fn put_object(
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<MockState>,
) -> HttpResponse {
    lock(&state.receivers)
        .objects
        .insert(path.into_inner(), body);
    HttpResponse::Ok().finish()
}

/// `POST /mock/sink/…`: takes any body on any path below it and answers 200 `{}` without parsing
/// it (counted in `sink`): a receiver as cheap as can be, so a benchmark of the gateway's
/// callbacks and trace export measures the gateway's side only.
async fn sink(state: web::Data<MockState>, mut body: web::Payload) -> HttpResponse {
    use futures_util::StreamExt as _;
    let mut bytes = 0u64;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => bytes += c.len() as u64,
            Err(_) => return HttpResponse::BadRequest().finish(),
        }
    }
    {
        let mut r = lock(&state.receivers);
        r.sink.0 += 1;
        r.sink.1 += bytes;
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .body("{}")
}

async fn received(state: web::Data<MockState>) -> HttpResponse {
    let r = lock(&state.receivers);
    HttpResponse::Ok().json(json!({
        "langfuse": {"batches": r.langfuse, "users": r.langfuse_users},
        "generic": {"batches": r.generic, "headers": r.generic_headers},
        "slack": r.slack,
        "otlp": {"spans": r.spans, "headers": r.otlp_headers},
        "datadog": {"batches": r.datadog, "api_keys": r.datadog_keys},
        "langsmith": {"batches": r.langsmith, "api_keys": r.langsmith_keys},
        "sentry": {"envelopes": r.sentry, "keys": r.sentry_keys},
        "s3": {"objects": r.s3},
        "rejected": r.rejected,
        "sink": {"requests": r.sink.0, "bytes": r.sink.1},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn langfuse_batches_are_checked() {
        assert!(langfuse_problem(&json!({})).is_some());
        let ok = json!({"batch": [
            {"id": "a", "type": "trace-create", "timestamp": "t", "body": {"id": "tr"}},
            {"id": "b", "type": "generation-create", "timestamp": "t", "body": {"traceId": "tr", "usage": {"input": 1, "output": 2, "total": 3}}}
        ]});
        assert_eq!(langfuse_problem(&ok), None);
        let no_trace = json!({"batch": [{"id": "b", "type": "generation-create", "timestamp": "t", "body": {}}]});
        assert!(langfuse_problem(&no_trace).unwrap().contains("traceId"));
        let bad_type =
            json!({"batch": [{"id": "b", "type": "nope", "timestamp": "t", "body": {}}]});
        assert!(langfuse_problem(&bad_type).is_some());
    }

    #[test]
    fn datadog_langsmith_and_sentry_bodies_are_checked() {
        assert!(datadog_problem(&json!([])).is_some());
        assert!(datadog_problem(&json!([{"message": "m", "ddsource": "s"}])).is_some());
        assert_eq!(
            datadog_problem(
                &json!([{"message": "m", "ddsource": "s", "service": "v", "status": "info"}])
            ),
            None
        );

        let id = "0190a5b2-7c3e-7d4f-8a6b-1c2d3e4f5a6b";
        let run = |dotted: String| json!({"post": [{"id": id, "trace_id": id, "dotted_order": dotted, "name": "LLMRun", "run_type": "llm", "start_time": "t"}]});
        assert_eq!(
            langsmith_problem(&run(format!("20240101T120000000000Z{id}"))),
            None
        );
        assert!(langsmith_problem(&run(id.to_string())).is_some());
        assert!(langsmith_problem(&json!({"runs": []})).is_some());

        assert_eq!(
            sentry_key("Sentry sentry_version=7, sentry_key=abc, sentry_client=x/1"),
            Some("abc".into())
        );
        assert_eq!(sentry_key("Bearer abc"), None);
        let event = r#"{"event_id":"0123456789abcdef0123456789abcdef","level":"error"}"#;
        let envelope = format!(
            "{{\"event_id\":\"0123456789abcdef0123456789abcdef\"}}\n{{\"type\":\"event\",\"length\":{}}}\n{event}\n",
            event.len()
        );
        let parsed = sentry_event(envelope.as_bytes()).unwrap();
        assert_eq!(parsed["event"]["level"], "error");
        assert!(sentry_event(
            b"{}\n{\"type\":\"event\"}\n{\"event_id\":\"short\",\"level\":\"error\"}"
        )
        .is_err());
    }
}
