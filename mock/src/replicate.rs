//! The mock's Replicate API: predictions created, polled, streamed and cancelled.
//!
//! - `POST /v1/predictions` (`{"version", "input"}`), `POST /v1/models/{owner}/{name}/predictions`
//!   and `POST /v1/deployments/{owner}/{name}/predictions` (`{"input"}`) create a prediction;
//!   `input.prompt` must be a string. With `Prefer: wait=<n>` a prediction that does not stream
//!   finishes at once (201 with its output), else it answers `starting`.
//! - `GET /v1/predictions/{id}` shows it (a running prediction moves on at each poll, unless its
//!   stream is being read),
//!   `GET /v1/predictions` lists them (newest first), `POST /v1/predictions/{id}/cancel` cancels it.
//! - `GET /v1/predictions/{id}/stream` (its `urls.stream`, when created with `"stream": true`):
//!   server-sent `output` events (a text with newlines on several `data:` lines), then `done`
//!   (`{"reason": "canceled"}` when it was cancelled meanwhile) or `error`. Events are sent in two
//!   pieces each, so clients must reassemble lines.
//!
//! The output is the mock's deterministic reply (`input.mock_reply`, cut to
//! `input.max_new_tokens` words), as a list of parts; `metrics` count the prompt's tokens (four
//! characters a token) and the parts. Tests steer a prediction through its input:
//! `mock_polls: <n>` keeps it `processing` for `n` polls (and ignores `Prefer: wait`),
//! `mock_prediction_error: "<text>"` makes it fail with that error, `mock_chunk_delay_ms` spaces
//! its stream's events; `mock_fail` / `mock_latency_ms` (or the `x-mock-fail` header, or a model
//! named `mock-fail-<mode>`) inject HTTP failures as on the other routes. URLs in `urls` point
//! back at the address the request was sent to, or at `input.mock_urls_origin`
//! (`scheme://host:port`, for tests of clients that must not follow URLs to another host). The
//! bearer key is checked against `--api-key`.

use std::{sync::Mutex, time::Duration};

use actix_web::{
    http::StatusCode,
    web::{self, Bytes},
    HttpRequest, HttpResponse,
};
use futures_util::stream;
use serde_json::{json, Map, Value};

use crate::openai::Reply;
use crate::shared::{random_id, split_chunks, tokens_for_chars, unix_now};
use crate::{
    lock, pause, Controls, Endpoint, FailureMode, MockState, HANG_DURATION, MAX_BODY_BYTES,
    SLOW_DURATION,
};

/// Predictions the mock has created (newest last).
#[derive(Debug, Default)]
pub(crate) struct ReplicateState {
    predictions: Mutex<Vec<Prediction>>,
}

impl ReplicateState {
    pub(crate) fn reset(&self) {
        lock(&self.predictions).clear();
    }

    fn with<T>(&self, id: &str, f: impl FnOnce(&mut Prediction) -> T) -> Option<T> {
        lock(&self.predictions)
            .iter_mut()
            .find(|p| p.id == id)
            .map(f)
    }
}

#[derive(Debug, Clone)]
struct Prediction {
    id: String,
    /// `owner/name`, `deployments/owner/name`, or the version id.
    model: String,
    version: Option<String>,
    input: Map<String, Value>,
    /// The output, in the parts it is streamed in.
    parts: Vec<String>,
    /// The error it fails with (`mock_prediction_error`).
    fails_with: Option<String>,
    status: &'static str,
    polls_left: u64,
    stream: bool,
    /// Its stream was opened (it then ends with its stream, not with polls).
    streaming: bool,
    chunk_delay: Duration,
    input_tokens: u64,
    /// `scheme://host` the prediction was created at, or `mock_urls_origin`: where `urls` point.
    origin: String,
    created_at: u64,
}

impl Prediction {
    fn running(&self) -> bool {
        matches!(self.status, "starting" | "processing")
    }

    /// Finish: `succeeded`, or `failed` with its error.
    fn finish(&mut self) {
        self.status = if self.fails_with.is_some() {
            "failed"
        } else {
            "succeeded"
        };
    }

    fn to_json(&self) -> Value {
        let get = format!("{}/v1/predictions/{}", self.origin, self.id);
        let mut urls = json!({"get": get, "cancel": format!("{get}/cancel"), "web": format!("https://replicate.com/p/{}", self.id)});
        if self.stream {
            urls["stream"] = json!(format!("{get}/stream"));
        }
        let succeeded = self.status == "succeeded";
        json!({
            "id": self.id,
            "model": self.model,
            "version": self.version.clone().unwrap_or_else(|| "hidden".into()),
            "input": self.input,
            "logs": "",
            "output": if succeeded { json!(self.parts) } else { Value::Null },
            "data_removed": false,
            "error": if self.status == "failed" { json!(self.fails_with) } else { Value::Null },
            "status": self.status,
            "created_at": self.created_at,
            "urls": urls,
            "metrics": if succeeded {
                json!({"input_token_count": self.input_tokens, "output_token_count": self.parts.len(), "predict_time": 0.01})
            } else {
                json!({})
            },
        })
    }
}

/// Registers the Replicate routes (before the OpenAI face, whose `GET /v1/models/{id}` would
/// otherwise take `/v1/models/{owner}/{name}/predictions`).
pub(super) fn configure(cfg: &mut web::ServiceConfig, state: &web::Data<MockState>) {
    let resource = |path: &str| {
        web::resource(path)
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
    };
    cfg.service(
        resource("/v1/predictions")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(resource("/v1/models/{owner}/{name}/predictions").route(web::post().to(create)))
    .service(resource("/v1/deployments/{owner}/{name}/predictions").route(web::post().to(create)))
    .service(resource("/v1/predictions/{id}").route(web::get().to(show)))
    .service(resource("/v1/predictions/{id}/cancel").route(web::post().to(cancel)))
    .service(resource("/v1/predictions/{id}/stream").route(web::get().to(events)));
}

/// Replicate's errors: problem details.
fn problem(status: StatusCode, title: &str, detail: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/problem+json")
        .body(json!({"title": title, "detail": detail, "status": status.as_u16()}).to_string())
}

fn unauthenticated() -> HttpResponse {
    problem(
        StatusCode::UNAUTHORIZED,
        "Unauthenticated",
        "You did not pass a valid authentication token",
    )
}

fn invalid(detail: &str) -> HttpResponse {
    problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Input validation failed",
        detail,
    )
}

fn not_found() -> HttpResponse {
    problem(
        StatusCode::NOT_FOUND,
        "Not found",
        "The requested resource could not be found.",
    )
}

fn origin(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

async fn create(req: HttpRequest, raw: Bytes, state: web::Data<MockState>) -> HttpResponse {
    let path = req.path().trim_start_matches("/v1/").to_string();
    let route_model = path
        .strip_suffix("/predictions")
        .map(|p| p.strip_prefix("models/").unwrap_or(p).to_string());
    let parsed: Option<Map<String, Value>> = serde_json::from_slice(&raw).ok();
    let version = parsed
        .as_ref()
        .and_then(|b| b.get("version"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let model = route_model
        .clone()
        .or_else(|| version.clone())
        .unwrap_or_default();
    state.record(Endpoint::Chat, Some(&model), &req, &raw);
    let input = parsed
        .as_ref()
        .and_then(|b| b.get("input"))
        .and_then(Value::as_object);
    let name = model.rsplit('/').next().unwrap_or_default();
    let controls = match Controls::extract(req.headers(), input, Some(name)) {
        Ok(c) => c,
        Err(e) => return invalid(&e.message),
    };
    pause(controls.latency.unwrap_or(state.latency)).await;
    if state.authorize(req.headers()).is_err() {
        return unauthenticated();
    }
    if let Some(failure) = controls.failure {
        match failure {
            FailureMode::Cut => {}
            FailureMode::Hang => pause(HANG_DURATION).await,
            FailureMode::Slow => pause(SLOW_DURATION).await,
            FailureMode::Status(status) => {
                return problem(
                    status,
                    "Mock failure",
                    &format!("Mock provider injected {} error", status.as_u16()),
                )
            }
            FailureMode::RateLimit => {
                return HttpResponse::TooManyRequests()
                    .insert_header((
                        "retry-after",
                        controls.retry_after.unwrap_or_else(|| "1".into()),
                    ))
                    .content_type("application/problem+json")
                    .body(
                        json!({"title": "Request was throttled", "detail": "Request was throttled. Expected available in 1 second.", "status": 429})
                            .to_string(),
                    )
            }
            FailureMode::ContextLength => {
                return invalid("- input.prompt: the prompt is longer than the maximum context length of 4096 tokens")
            }
            FailureMode::ContentPolicy => {
                return invalid("NSFW content detected: the input was rejected by the safety checker")
            }
        }
    }
    let Some(body) = parsed.as_ref() else {
        return invalid("the request body is not a JSON object");
    };
    if route_model.is_none() && version.is_none() {
        return invalid("- version: version is required");
    }
    let Some(input) = input else {
        return invalid("- input: Invalid type. Expected: object, given: null");
    };
    let Some(prompt) = input.get("prompt").and_then(Value::as_str) else {
        return invalid("- input.prompt: Invalid type. Expected: string");
    };
    let mut settings = Map::new();
    if let Some(r) = input.get(super::REPLY_FIELD) {
        settings.insert(super::REPLY_FIELD.into(), r.clone());
    }
    if let Some(n) = input.get("max_new_tokens") {
        settings.insert("max_tokens".into(), n.clone());
    }
    let text = match Reply::text(&settings) {
        Ok(Reply::Text { text, .. }) => text,
        Ok(Reply::Tool { .. }) => String::new(),
        Err(e) => return invalid(&e.message),
    };
    let system = input
        .get("system_prompt")
        .and_then(Value::as_str)
        .unwrap_or("");
    let number = |key: &str| input.get(key).and_then(Value::as_u64);
    let mut prediction = Prediction {
        id: random_id("", 26).to_ascii_lowercase(),
        model,
        version,
        input: input.clone(),
        parts: split_chunks(&text, state.stream_chunks)
            .into_iter()
            .map(str::to_string)
            .collect(),
        fails_with: input
            .get("mock_prediction_error")
            .and_then(Value::as_str)
            .map(str::to_string),
        status: "starting",
        polls_left: number("mock_polls").unwrap_or(0),
        stream: body.get("stream").and_then(Value::as_bool) == Some(true),
        streaming: false,
        chunk_delay: number("mock_chunk_delay_ms").map_or(state.chunk_delay, Duration::from_millis),
        input_tokens: tokens_for_chars(prompt.chars().count() + system.chars().count()),
        origin: input
            .get("mock_urls_origin")
            .and_then(Value::as_str)
            .map_or_else(|| origin(&req), str::to_string),
        created_at: unix_now(),
    };
    let waits = req
        .headers()
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("wait"));
    if waits && prediction.polls_left == 0 && !prediction.stream {
        prediction.finish();
    }
    let shown = prediction.to_json();
    lock(&state.replicate.predictions).push(prediction);
    HttpResponse::Created().json(shown)
}

async fn show(req: HttpRequest, state: web::Data<MockState>) -> HttpResponse {
    if state.authorize(req.headers()).is_err() {
        return unauthenticated();
    }
    let id = req.match_info().get("id").unwrap_or_default();
    let shown = state.replicate.with(id, |p| {
        // A polled prediction moves on; one whose stream is read ends with its stream.
        if p.running() && !p.streaming {
            if p.polls_left > 0 {
                p.polls_left -= 1;
                p.status = "processing";
            } else {
                p.finish();
            }
        }
        p.to_json()
    });
    match shown {
        Some(v) => HttpResponse::Ok().json(v),
        None => not_found(),
    }
}

async fn list(req: HttpRequest, state: web::Data<MockState>) -> HttpResponse {
    if state.authorize(req.headers()).is_err() {
        return unauthenticated();
    }
    let results: Vec<Value> = lock(&state.replicate.predictions)
        .iter()
        .rev()
        .map(Prediction::to_json)
        .collect();
    HttpResponse::Ok().json(json!({"next": null, "previous": null, "results": results}))
}

async fn cancel(req: HttpRequest, state: web::Data<MockState>) -> HttpResponse {
    if state.authorize(req.headers()).is_err() {
        return unauthenticated();
    }
    let id = req.match_info().get("id").unwrap_or_default();
    let shown = state.replicate.with(id, |p| {
        if p.running() {
            p.status = "canceled";
        }
        p.to_json()
    });
    match shown {
        Some(v) => HttpResponse::Ok().json(v),
        None => not_found(),
    }
}

/// One server-sent event, its data on as many `data:` lines as it has lines.
fn sse_event(event: &str, data: &str) -> String {
    let mut out = format!("event: {event}\n");
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// Where a prediction's stream is.
struct Streaming {
    state: web::Data<MockState>,
    id: String,
    next: usize,
    ended: bool,
}

async fn events(req: HttpRequest, state: web::Data<MockState>) -> HttpResponse {
    if state.authorize(req.headers()).is_err() {
        return unauthenticated();
    }
    let id = req.match_info().get("id").unwrap_or_default().to_string();
    let known = state.replicate.with(&id, |p| {
        if p.status == "starting" {
            p.status = "processing";
        }
        if p.stream {
            p.streaming = true;
        }
        p.stream
    });
    match known {
        None => return not_found(),
        Some(false) => {
            return problem(
                StatusCode::NOT_FOUND,
                "Not found",
                "This prediction was not created with stream: true.",
            )
        }
        Some(true) => {}
    }
    let start = Streaming {
        state,
        id,
        next: 0,
        ended: false,
    };
    let body = stream::unfold(start, |mut s| async move {
        if s.ended {
            return None;
        }
        let delay = s.state.replicate.with(&s.id, |p| p.chunk_delay)?;
        if s.next > 0 {
            pause(delay).await;
        }
        let event = s.state.replicate.with(&s.id, |p| {
            if p.status == "canceled" {
                return (sse_event("done", r#"{"reason":"canceled"}"#), true);
            }
            if let Some(part) = p.parts.get(s.next) {
                return (sse_event("output", part), false);
            }
            p.finish();
            match &p.fails_with {
                Some(e) => (
                    sse_event("error", &json!({ "detail": e }).to_string()),
                    true,
                ),
                None => (sse_event("done", "{}"), true),
            }
        })?;
        s.next += 1;
        s.ended = event.1;
        // Each event in two pieces: clients reassemble lines split across reads.
        let bytes = Bytes::from(event.0);
        let half = bytes.len() / 2;
        let pieces = vec![
            Ok::<_, std::io::Error>(bytes.slice(..half)),
            Ok(bytes.slice(half..)),
        ];
        Some((stream::iter(pieces), s))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-store"))
        .streaming(futures_util::StreamExt::flatten(body))
}
