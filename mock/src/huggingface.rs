//! Hugging Face feature extraction for the mock: `POST /embed` (a Text Embeddings Inference server)
//! and `POST /hf-inference/pipeline/feature-extraction/{model}` (the router's pipeline route), both
//! `{"inputs": "text" | ["text", …]}` → a list of vectors, errors as `{"error", "error_type"}`.
//! Hugging Face chat is OpenAI's format, which the mock already serves on `/v1/chat/completions`;
//! a Text Generation Inference server's own API is `POST /generate` (`{"inputs", "parameters"}` →
//! `{"generated_text", "details"}`) and `POST /generate_stream` (one SSE event per token, the last
//! with `generated_text` and `details`).

use actix_web::{
    http::StatusCode,
    web::{self, Bytes},
    HttpRequest, HttpResponse,
};
use serde_json::{json, Value};

use crate::openai::InputItem;
use crate::shared::embedding_vector;
use crate::{
    pause, Controls, Endpoint, FailureMode, MockState, HANG_DURATION, MAX_BODY_BYTES, SLOW_DURATION,
};

/// Registers the feature-extraction routes.
pub(super) fn configure(cfg: &mut web::ServiceConfig, state: web::Data<MockState>) {
    cfg.service(
        web::resource(vec![
            "/embed",
            "/hf-inference/pipeline/feature-extraction/{model:.+}",
        ])
        .app_data(state.clone())
        .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .route(web::post().to(feature_extraction)),
    )
    .service(
        web::resource(["/generate", "/generate_stream"])
            .app_data(state)
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .route(web::post().to(generate)),
    );
}

/// TGI's `/generate` and `/generate_stream`: the reply is the mock's deterministic text, cut to
/// `parameters.max_new_tokens` words (finish reason `length`), else whole (`eos_token`).
async fn generate(req: HttpRequest, raw: Bytes, state: web::Data<MockState>) -> HttpResponse {
    state.record(Endpoint::Chat, Some("tgi"), &req, &raw);
    if state.authorize(req.headers()).is_err() {
        return error(
            StatusCode::UNAUTHORIZED,
            "Invalid credentials in Authorization header",
            "unauthorized",
        );
    }
    let parsed: Option<Value> = serde_json::from_slice(&raw).ok();
    if parsed
        .as_ref()
        .and_then(|b| b.get("inputs"))
        .and_then(Value::as_str)
        .is_none()
    {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Failed to deserialize the JSON body into the target type: missing field `inputs`",
            "validation",
        );
    }
    let limit = parsed
        .as_ref()
        .and_then(|b| b.pointer("/parameters/max_new_tokens"))
        .and_then(Value::as_u64)
        .map(|n| n as usize);
    let words: Vec<&str> = crate::DEFAULT_REPLY.split_inclusive(' ').collect();
    let (taken, reason) = match limit {
        Some(n) if n < words.len() => (&words[..n], "length"),
        _ => (&words[..], "eos_token"),
    };
    let text: String = taken.concat();
    let details = json!({"finish_reason": reason, "generated_tokens": taken.len(), "seed": null});
    if req.path().ends_with("/generate_stream") {
        let mut out = String::new();
        for (i, w) in taken.iter().enumerate() {
            let last = i + 1 == taken.len();
            let event = json!({
                "index": i + 1,
                "token": {"id": i + 1, "text": w, "logprob": -0.1, "special": false},
                "generated_text": if last { json!(text) } else { Value::Null },
                "details": if last { details.clone() } else { Value::Null },
            });
            out.push_str(&format!("data:{event}\n\n"));
        }
        return HttpResponse::Ok()
            .content_type("text/event-stream")
            .body(out);
    }
    HttpResponse::Ok().json(json!([{"generated_text": text, "details": details}]))
}

async fn feature_extraction(
    req: HttpRequest,
    raw: Bytes,
    state: web::Data<MockState>,
) -> HttpResponse {
    let parsed: Option<Value> = serde_json::from_slice(&raw).ok();
    let model = req.match_info().get("model").unwrap_or("tei");
    state.record(Endpoint::Embeddings, Some(model), &req, &raw);
    let body = parsed.as_ref().and_then(Value::as_object);
    let controls = match Controls::extract(req.headers(), body, Some(model)) {
        Ok(c) => c,
        Err(e) => return error(e.status, &e.message, "validation"),
    };
    pause(controls.latency.unwrap_or(state.latency)).await;
    if state.authorize(req.headers()).is_err() {
        return error(
            StatusCode::UNAUTHORIZED,
            "Invalid credentials in Authorization header",
            "unauthorized",
        );
    }
    match controls.failure {
        None | Some(FailureMode::Cut) => {}
        Some(FailureMode::Hang) => pause(HANG_DURATION).await,
        Some(FailureMode::Slow) => pause(SLOW_DURATION).await,
        Some(FailureMode::Status(status)) => {
            return error(
                status,
                &format!("Mock provider injected {} error", status.as_u16()),
                "backend",
            )
        }
        Some(FailureMode::RateLimit) => {
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "Model is overloaded",
                "overloaded",
            )
        }
        Some(FailureMode::ContextLength) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Input validation error: `inputs` must have less than 512 tokens. Given: 600",
                "validation",
            )
        }
        Some(FailureMode::ContentPolicy) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Input rejected by the content policy",
                "validation",
            )
        }
    }
    let texts: Vec<&str> = match body.and_then(|b| b.get("inputs")) {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) if !items.is_empty() => {
            match items.iter().map(Value::as_str).collect::<Option<Vec<_>>>() {
                Some(t) => t,
                None => {
                    return error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "`inputs` must be strings",
                        "validation",
                    )
                }
            }
        }
        _ => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "`inputs` cannot be empty",
                "validation",
            )
        }
    };
    let vectors: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| embedding_vector(&InputItem::Text(t), state.embedding_dim))
        .collect();
    HttpResponse::Ok().json(vectors)
}

fn error(status: StatusCode, message: &str, kind: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": message, "error_type": kind}))
}
