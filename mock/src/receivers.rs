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

async fn received(state: web::Data<MockState>) -> HttpResponse {
    let r = lock(&state.receivers);
    HttpResponse::Ok().json(json!({
        "langfuse": {"batches": r.langfuse, "users": r.langfuse_users},
        "generic": {"batches": r.generic, "headers": r.generic_headers},
        "slack": r.slack,
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
