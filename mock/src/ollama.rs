//! Ollama's native wire format for the mock: `POST /api/chat` (JSON, or NDJSON lines when
//! `stream` is true or absent, as Ollama streams by default) and `POST /api/embed`; errors as
//! `{"error": "…"}`. No auth unless the mock runs with `--api-key` (then a bearer token, as a proxy
//! in front of Ollama would ask). When the request offers `tools` and its last message is not a
//! tool result, the reply calls the first tool (Ollama has no `tool_choice`).

use actix_web::{
    http::{header, StatusCode},
    web::{self, Bytes},
    HttpRequest, HttpResponse,
};
use serde_json::{json, Map, Value};

use super::cohere::framed_stream;
use crate::openai::{optional_u64, ApiError, InputItem, Reply};
use crate::shared::{chat_prompt_tokens, embedding_vector, split_chunks, tokens_for_chars};
use crate::{
    body_field, pause, truncated_body, Controls, Endpoint, FailureMode, MockState,
    DEFAULT_RETRY_AFTER, HANG_DURATION, MAX_BODY_BYTES, SLOW_DURATION,
};

/// Registers `/api/chat` and `/api/embed`.
pub(super) fn configure(cfg: &mut web::ServiceConfig, state: web::Data<MockState>) {
    let resource = |path: &str| {
        web::resource(path)
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
    };
    cfg.service(resource("/api/chat").route(web::post().to(chat)))
        .service(resource("/api/embed").route(web::post().to(embed)))
        .service(resource("/api/generate").route(web::post().to(generate)));
}

/// `/api/generate` (a raw prompt; counted under `/completions`).
async fn generate(req: HttpRequest, body: Bytes, state: web::Data<MockState>) -> HttpResponse {
    handle(Endpoint::Completions, &req, &body, &state).await
}

async fn chat(req: HttpRequest, body: Bytes, state: web::Data<MockState>) -> HttpResponse {
    handle(Endpoint::Chat, &req, &body, &state).await
}

async fn embed(req: HttpRequest, body: Bytes, state: web::Data<MockState>) -> HttpResponse {
    handle(Endpoint::Embeddings, &req, &body, &state).await
}

async fn handle(
    endpoint: Endpoint,
    req: &HttpRequest,
    raw: &Bytes,
    state: &MockState,
) -> HttpResponse {
    let parsed: Option<Value> = serde_json::from_slice(raw).ok();
    let model = parsed
        .as_ref()
        .and_then(|b| b.get("model"))
        .and_then(Value::as_str);
    state.record(endpoint, model, req, raw);
    let body = parsed.as_ref().and_then(Value::as_object);
    let controls = match Controls::extract(req.headers(), body, model) {
        Ok(c) => c,
        Err(e) => return error(e.status, &e.message, None),
    };
    pause(controls.latency.unwrap_or(state.latency)).await;
    if let Err(e) = state.authorize(req.headers()) {
        return error(e.status, "unauthorized", None);
    }
    let mut cut = false;
    match controls.failure {
        None => {}
        Some(FailureMode::Hang) => pause(HANG_DURATION).await,
        Some(FailureMode::Slow) => pause(SLOW_DURATION).await,
        Some(FailureMode::Cut) => cut = true,
        Some(FailureMode::Status(status)) if status == StatusCode::NOT_FOUND => {
            let name = model.unwrap_or_default();
            return error(
                status,
                &format!("model '{name}' not found, try pulling it first"),
                None,
            );
        }
        Some(FailureMode::Status(status)) => {
            return error(
                status,
                &format!("Mock provider injected {} error", status.as_u16()),
                None,
            )
        }
        Some(FailureMode::RateLimit) => {
            let after = controls
                .retry_after
                .unwrap_or_else(|| DEFAULT_RETRY_AFTER.to_owned());
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests, server busy",
                Some(after),
            );
        }
        Some(FailureMode::ContextLength) => {
            return error(
                StatusCode::BAD_REQUEST,
                "the input length exceeds the context length",
                None,
            )
        }
        Some(FailureMode::ContentPolicy) => {
            return error(
                StatusCode::BAD_REQUEST,
                "the request was rejected by the content policy",
                None,
            )
        }
    }
    let Some(body) = body else {
        return error(StatusCode::BAD_REQUEST, "invalid request body", None);
    };
    let Some(model) = model else {
        return error(StatusCode::BAD_REQUEST, "model is required", None);
    };
    let result = match endpoint {
        Endpoint::Embeddings => embeddings(body, model, state),
        Endpoint::Completions => generate_reply(body, model, state, cut),
        _ => chat_reply(body, model, state, cut),
    };
    result.unwrap_or_else(|e| error(e.status, &e.message, None))
}

/// Ollama's error body.
fn error(status: StatusCode, message: &str, retry_after: Option<String>) -> HttpResponse {
    let mut b = HttpResponse::build(status);
    if let Some(after) = retry_after {
        b.insert_header((header::RETRY_AFTER, after));
    }
    b.json(json!({"error": message}))
}

fn bad(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        message.to_owned(),
        "invalid_request_error",
    )
}

fn tool_to_call(body: &Map<String, Value>, messages: &[Value]) -> Option<String> {
    if messages.last()?.get("role").and_then(Value::as_str) == Some("tool") {
        return None;
    }
    body.get("tools")?
        .as_array()?
        .first()?
        .pointer("/function/name")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn chat_reply(
    body: &Map<String, Value>,
    model: &str,
    state: &MockState,
    cut: bool,
) -> Result<HttpResponse, ApiError> {
    let messages = match body_field(Some(body), "messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        _ => return Err(bad("messages must be a non-empty list")),
    };
    // Sampling options live in `options`; the shared reply helper reads `max_tokens`.
    let mut reply_body = body.clone();
    if let Some(n) = body.get("options").and_then(|o| o.get("num_predict")) {
        reply_body.insert("max_tokens".into(), n.clone());
    }
    let prompt = chat_prompt_tokens(messages);
    let reply = match tool_to_call(body, messages) {
        Some(name) => Reply::Tool { name },
        None => Reply::text(&reply_body)?,
    };
    let completion = reply.completion_tokens();
    let done_reason = match &reply {
        Reply::Text {
            finish_reason: "length",
            ..
        } => "length",
        _ => "stop",
    };
    let created_at = tollgate_wire::time::now_iso();
    let done = json!({
        "model": model,
        "created_at": created_at,
        "message": {"role": "assistant", "content": ""},
        "done": true,
        "done_reason": done_reason,
        "total_duration": 5_000_000u64,
        "load_duration": 1_000_000u64,
        "prompt_eval_count": prompt,
        "prompt_eval_duration": 1_000_000u64,
        "eval_count": completion,
        "eval_duration": 2_000_000u64,
    });
    let tool_message = |name: &str| json!({"role": "assistant", "content": "", "tool_calls": [{"function": {"name": name, "arguments": {}}}]});
    // Ollama streams unless `stream` is false.
    if body.get("stream").and_then(Value::as_bool).unwrap_or(true) {
        let mut lines: Vec<Value> = match &reply {
            Reply::Text { text, .. } => split_chunks(text, state.stream_chunks)
                .into_iter()
                .map(|part| json!({"model": model, "created_at": created_at, "message": {"role": "assistant", "content": part}, "done": false}))
                .collect(),
            Reply::Tool { name } => vec![json!({"model": model, "created_at": created_at, "message": tool_message(name), "done": false})],
        };
        lines.push(done);
        let frames = lines
            .into_iter()
            .map(|l| Bytes::from(format!("{l}\n")))
            .collect();
        return Ok(framed_stream(
            frames,
            "application/x-ndjson",
            state.chunk_delay,
            cut,
        ));
    }
    let mut out = done;
    out["message"] = match &reply {
        Reply::Text { text, .. } => json!({"role": "assistant", "content": text}),
        Reply::Tool { name } => tool_message(name),
    };
    Ok(json_body(&out, cut))
}

/// `/api/generate`: `prompt` (a non-empty string) → `response`, streamed as NDJSON lines unless
/// `stream` is false, the last with `done` and the counts.
fn generate_reply(
    body: &Map<String, Value>,
    model: &str,
    state: &MockState,
    cut: bool,
) -> Result<HttpResponse, ApiError> {
    let prompt = match body.get("prompt") {
        Some(Value::String(p)) if !p.is_empty() => p,
        _ => return Err(bad("prompt must be a non-empty string")),
    };
    let mut reply_body = body.clone();
    if let Some(n) = body.get("options").and_then(|o| o.get("num_predict")) {
        reply_body.insert("max_tokens".into(), n.clone());
    }
    let Reply::Text {
        text,
        finish_reason,
        ..
    } = Reply::text(&reply_body)?
    else {
        return Err(bad("no text reply"));
    };
    let completion = crate::shared::tokens_for_chars(text.chars().count());
    let created_at = tollgate_wire::time::now_iso();
    let done = json!({
        "model": model,
        "created_at": created_at,
        "response": "",
        "done": true,
        "done_reason": if finish_reason == "length" { "length" } else { "stop" },
        "prompt_eval_count": crate::shared::tokens_for_chars(prompt.chars().count()),
        "eval_count": completion,
    });
    if body.get("stream").and_then(Value::as_bool).unwrap_or(true) {
        let mut lines: Vec<Value> = split_chunks(&text, state.stream_chunks)
            .into_iter()
            .map(|part| json!({"model": model, "created_at": created_at, "response": part, "done": false}))
            .collect();
        lines.push(done);
        let frames = lines
            .into_iter()
            .map(|l| Bytes::from(format!("{l}\n")))
            .collect();
        return Ok(framed_stream(
            frames,
            "application/x-ndjson",
            state.chunk_delay,
            cut,
        ));
    }
    let mut out = done;
    out["response"] = json!(text);
    Ok(json_body(&out, cut))
}

fn embeddings(
    body: &Map<String, Value>,
    model: &str,
    state: &MockState,
) -> Result<HttpResponse, ApiError> {
    let texts: Vec<&str> = match body.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(Value::as_str)
            .collect::<Option<_>>()
            .ok_or_else(|| bad("input must be a string or a list of strings"))?,
        _ => return Err(bad("input is required")),
    };
    let dim = optional_u64(body, "dimensions")?
        .map_or(state.embedding_dim, |d| d.clamp(1, 4096) as usize);
    let vectors: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| embedding_vector(&InputItem::Text(t), dim))
        .collect();
    let tokens: u64 = texts
        .iter()
        .map(|t| tokens_for_chars(t.chars().count()))
        .sum();
    let out = json!({
        "model": model,
        "embeddings": vectors,
        "total_duration": 14_143_917u64,
        "load_duration": 1_019_500u64,
        "prompt_eval_count": tokens,
    });
    Ok(json_body(&out, false))
}

fn json_body(v: &Value, cut: bool) -> HttpResponse {
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    let mut b = HttpResponse::Ok();
    b.content_type("application/json; charset=utf-8");
    if cut {
        b.body(truncated_body(bytes))
    } else {
        b.body(bytes)
    }
}
