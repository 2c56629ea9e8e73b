//! Cohere v2 wire format for the mock: `POST /v2/chat` (JSON, or typed SSE events with
//! `"stream": true`) and `POST /v2/embed`, bearer auth, errors as `{"id", "message"}`. Replies,
//! token counts, failure injection and request capture are the mock's usual ones.

use std::time::Duration;

use actix_web::{
    http::{header, StatusCode},
    web::{self, Bytes},
    HttpRequest, HttpResponse,
};
use futures_util::stream::{self, StreamExt as _};
use serde_json::{json, Map, Value};

use crate::openai::{optional_u64, ApiError, InputItem, Reply};
use crate::shared::{chat_prompt_tokens, embedding_vector, split_chunks, tokens_for_chars};
use crate::{
    body_field, cut_error, flush_point, pause, truncated_body, Controls, Endpoint, FailureMode,
    MockState, CUT_AFTER_PARTS, DEFAULT_RETRY_AFTER, HANG_DURATION, MAX_BODY_BYTES, SLOW_DURATION,
    TOOL_ARGUMENTS,
};

/// Registers `/v2/chat` and `/v2/embed`.
pub(super) fn configure(cfg: &mut web::ServiceConfig, state: web::Data<MockState>) {
    let resource = |path: &str| {
        web::resource(path)
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
    };
    cfg.service(resource("/v2/chat").route(web::post().to(chat)))
        .service(resource("/v2/embed").route(web::post().to(embed)));
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
        // Cohere answers a missing or wrong key with 401 and this text.
        return error(e.status, "invalid api token", None);
    }
    let mut cut = false;
    match controls.failure {
        None => {}
        Some(FailureMode::Hang) => pause(HANG_DURATION).await,
        Some(FailureMode::Slow) => pause(SLOW_DURATION).await,
        Some(FailureMode::Cut) => cut = true,
        Some(FailureMode::Status(status)) => {
            return error(status, &format!("Mock provider injected {} error", status.as_u16()), None)
        }
        Some(FailureMode::RateLimit) => {
            let after = controls
                .retry_after
                .unwrap_or_else(|| DEFAULT_RETRY_AFTER.to_owned());
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "You are past the per minute request limit, please wait and try again later.",
                Some(after),
            );
        }
        Some(FailureMode::ContextLength) => {
            return error(
                StatusCode::BAD_REQUEST,
                "too many tokens: total number of tokens in the prompt cannot exceed 4081 - received 9000. Try using a shorter prompt, or enabling prompt truncating. See https://docs.cohere.com/reference/chat for more info.",
                None,
            )
        }
        Some(FailureMode::ContentPolicy) => {
            return error(
                StatusCode::BAD_REQUEST,
                "blocked output: please adjust your prompt and try again, as this request violates the content policy",
                None,
            )
        }
    }
    let Some(body) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid request: body must be a JSON object",
            None,
        );
    };
    let Some(model) = model else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid request: model must be a string",
            None,
        );
    };
    let result = match endpoint {
        Endpoint::Embeddings => embeddings(body, model, state),
        _ => chat_reply(body, state, cut),
    };
    result.unwrap_or_else(|e| error(e.status, &e.message, None))
}

/// Cohere's error body.
fn error(status: StatusCode, message: &str, retry_after: Option<String>) -> HttpResponse {
    let mut b = HttpResponse::build(status);
    if let Some(after) = retry_after {
        b.insert_header((header::RETRY_AFTER, after));
    }
    b.json(json!({"id": uuid::Uuid::new_v4().to_string(), "message": message}))
}

fn bad(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        message.to_owned(),
        "invalid_request_error",
    )
}

/// The tool to call: `tool_choice: "REQUIRED"` with tools → the first one.
fn forced_tool(body: &Map<String, Value>) -> Option<String> {
    if body.get("tool_choice").and_then(Value::as_str) != Some("REQUIRED") {
        return None;
    }
    body.get("tools")?
        .as_array()?
        .first()?
        .pointer("/function/name")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn usage(prompt: u64, completion: u64) -> Value {
    json!({
        "billed_units": {"input_tokens": prompt, "output_tokens": completion},
        "tokens": {"input_tokens": prompt + 3, "output_tokens": completion},
    })
}

fn chat_reply(
    body: &Map<String, Value>,
    state: &MockState,
    cut: bool,
) -> Result<HttpResponse, ApiError> {
    let messages = match body_field(Some(body), "messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        _ => return Err(bad("invalid request: messages must be a non-empty list")),
    };
    let prompt = chat_prompt_tokens(messages);
    let reply = match forced_tool(body) {
        Some(name) => Reply::Tool { name },
        None => Reply::text(body)?,
    };
    let completion = reply.completion_tokens();
    let id = uuid::Uuid::new_v4().to_string();
    let finish = match &reply {
        Reply::Tool { .. } => "TOOL_CALL",
        Reply::Text {
            finish_reason: "length",
            ..
        } => "MAX_TOKENS",
        Reply::Text { .. } => "COMPLETE",
    };
    let call_id = format!(
        "{}_{}",
        "call",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    if body.get("stream").and_then(Value::as_bool).unwrap_or(false) {
        let mut events = vec![sse(
            "message-start",
            json!({"id": id, "type": "message-start", "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}),
        )];
        match &reply {
            Reply::Text { text, .. } => {
                events.push(sse("content-start", json!({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}})));
                for part in split_chunks(text, state.stream_chunks) {
                    events.push(sse("content-delta", json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": part}}}})));
                }
                events.push(sse(
                    "content-end",
                    json!({"type": "content-end", "index": 0}),
                ));
            }
            Reply::Tool { name } => {
                events.push(sse("tool-plan-delta", json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": format!("I will call {name}.")}}})));
                events.push(sse("tool-call-start", json!({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {"id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}}}})));
                events.push(sse("tool-call-delta", json!({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": TOOL_ARGUMENTS}}}}})));
                events.push(sse(
                    "tool-call-end",
                    json!({"type": "tool-call-end", "index": 0}),
                ));
            }
        }
        events.push(sse(
            "message-end",
            json!({"type": "message-end", "delta": {"finish_reason": finish, "usage": usage(prompt, completion)}}),
        ));
        return Ok(framed_stream(
            events,
            "text/event-stream",
            state.chunk_delay,
            cut,
        ));
    }
    let message = match &reply {
        Reply::Text { text, .. } => {
            json!({"role": "assistant", "content": [{"type": "text", "text": text}]})
        }
        Reply::Tool { name } => json!({
            "role": "assistant",
            "tool_plan": format!("I will call {name}."),
            "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": TOOL_ARGUMENTS}}],
        }),
    };
    let out = json!({"id": id, "finish_reason": finish, "message": message, "usage": usage(prompt, completion)});
    Ok(json_body(&out, cut))
}

fn embeddings(
    body: &Map<String, Value>,
    model: &str,
    state: &MockState,
) -> Result<HttpResponse, ApiError> {
    let texts: Vec<&str> = match body.get("texts") {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(Value::as_str)
            .collect::<Option<_>>()
            .ok_or_else(|| bad("invalid request: texts must be a list of strings"))?,
        _ => {
            return Err(bad(
                "invalid request: texts must be a non-empty list of strings",
            ))
        }
    };
    if body.get("input_type").and_then(Value::as_str).is_none() {
        return Err(bad(
            "invalid request: input_type is required for embed models v3 and higher.",
        ));
    }
    let dim = optional_u64(body, "output_dimension")?
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
        "id": uuid::Uuid::new_v4().to_string(),
        "embeddings": {"float": vectors},
        "texts": texts,
        "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}},
        "response_type": "embeddings_by_type",
        "model": model,
    });
    Ok(json_body(&out, false))
}

fn json_body(v: &Value, cut: bool) -> HttpResponse {
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    let mut b = HttpResponse::Ok();
    b.content_type("application/json");
    if cut {
        b.body(truncated_body(bytes))
    } else {
        b.body(bytes)
    }
}

/// One `event:` + `data:` server-sent event.
fn sse(name: &str, data: Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// A streamed body of pre-rendered frames, `delay` apart; with `cut`, the connection drops after
/// a few frames (no end marker).
pub(super) fn framed_stream(
    frames: Vec<Bytes>,
    content_type: &'static str,
    delay: Duration,
    cut: bool,
) -> HttpResponse {
    let total = frames.len();
    let keep = if cut {
        CUT_AFTER_PARTS.min(total)
    } else {
        total
    };
    let body = stream::iter(frames.into_iter().take(keep).enumerate())
        .then(move |(i, frame)| async move {
            if i > 0 {
                pause(delay).await;
            }
            Ok::<_, std::io::Error>(frame)
        })
        .chain(stream::iter(cut.then_some(())).then(|()| async {
            flush_point().await;
            Err(cut_error())
        }));
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(body)
}
