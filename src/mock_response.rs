//! `mock_response`: LiteLLM's way to get a canned answer without calling a provider, set per request
//! (`"mock_response": "hi"`) or per deployment (`litellm_params.mock_response`). Useful for wiring
//! tests and demos; the answer has the real OpenAI shape, streamed or not.

use actix_web::HttpResponse;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::llm::{CallKind, LlmRequest};

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Rough token count for canned answers: words, at least 1.
fn words(text: &str) -> u64 {
    text.split_whitespace().count().max(1) as u64
}

pub fn respond(req: &LlmRequest, content: &Value) -> HttpResponse {
    let text = match content {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = now_secs();
    let prompt_tokens = 10;
    let completion_tokens = words(&text);
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                       "total_tokens": prompt_tokens + completion_tokens});
    match (req.kind, req.stream) {
        (CallKind::Embedding, _) => HttpResponse::Ok().json(json!({
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.0, 0.0, 0.0]}],
            "model": req.model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        })),
        (CallKind::Completion, false) => HttpResponse::Ok().json(json!({
            "id": id, "object": "text_completion", "created": created, "model": req.model,
            "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": "stop"}],
            "usage": usage,
        })),
        (CallKind::Chat, false) => HttpResponse::Ok().json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": req.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "logprobs": null, "finish_reason": "stop"}],
            "usage": usage,
        })),
        (kind, true) => {
            let object = if kind == CallKind::Chat {
                "chat.completion.chunk"
            } else {
                "text_completion"
            };
            let piece = |delta: Value, finish: Value| {
                let choice = if kind == CallKind::Chat {
                    json!({"index": 0, "delta": delta, "finish_reason": finish})
                } else {
                    json!({"index": 0, "text": delta.get("content").cloned().unwrap_or(json!("")), "finish_reason": finish})
                };
                json!({"id": id, "object": object, "created": created, "model": req.model, "choices": [choice]})
            };
            let mut events = vec![piece(
                json!({"role": "assistant", "content": ""}),
                Value::Null,
            )];
            for word in text.split_inclusive(' ') {
                events.push(piece(json!({"content": word}), Value::Null));
            }
            events.push(piece(json!({}), json!("stop")));
            if req.client_wants_usage {
                events.push(
                    json!({"id": id, "object": object, "created": created, "model": req.model,
                                   "choices": [], "usage": usage}),
                );
            }
            let mut body = String::new();
            for e in events {
                body.push_str("data: ");
                body.push_str(&e.to_string());
                body.push_str("\n\n");
            }
            body.push_str("data: [DONE]\n\n");
            HttpResponse::Ok()
                .content_type("text/event-stream")
                .insert_header(("cache-control", "no-cache"))
                .body(Bytes::from(body))
        }
    }
}
