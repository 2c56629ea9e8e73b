//! Hugging Face feature extraction for the mock: `POST /embed` (a Text Embeddings Inference server)
//! and `POST /hf-inference/pipeline/feature-extraction/{model}` (the router's pipeline route), both
//! `{"inputs": "text" | ["text", …]}` → a list of vectors, errors as `{"error", "error_type"}`.
//! Hugging Face chat is OpenAI's format, which the mock already serves on `/v1/chat/completions`.

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
        .app_data(state)
        .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .route(web::post().to(feature_extraction)),
    );
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
