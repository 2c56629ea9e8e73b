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
    rejected: u64,
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
    lock(&state.receivers).slack.push(parsed);
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

/// The spans of an OTLP export request, as JSON.
fn decode_spans(body: &[u8]) -> Result<Vec<Value>, String> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
    use prost::Message as _;
    let request = ExportTraceServiceRequest::decode(body).map_err(|e| e.to_string())?;
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

async fn received(state: web::Data<MockState>) -> HttpResponse {
    let r = lock(&state.receivers);
    HttpResponse::Ok().json(json!({
        "langfuse": {"batches": r.langfuse, "users": r.langfuse_users},
        "generic": {"batches": r.generic, "headers": r.generic_headers},
        "slack": r.slack,
        "otlp": {"spans": r.spans, "headers": r.otlp_headers},
        "rejected": r.rejected,
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
}
