//! Anthropic's Messages API: `POST /v1/messages` and `POST /v1/messages/count_tokens` (also
//! without `/v1`). The request is translated to the internal (OpenAI chat) model
//! ([`crate::messages_api`]), runs through the same pipeline as `/v1/chat/completions` (auth,
//! model access, limits, routing, retries, fallbacks, spend), and its outcome is rendered in
//! Anthropic's format ([`render::anthropic`]): a `message`, Anthropic's SSE events, or
//! `{"type":"error","error":{…}}`.
//! `x-api-key` works as the key header; `anthropic-version` and `anthropic-beta` are accepted and
//! ignored.

use super::routes::{Access, Routes};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use crate::error::GatewayError;
use crate::llm::{CallKind, LlmRequest};
use crate::messages_api;
use crate::outcome::Outcome;
use crate::pipeline;
use crate::render::{self, anthropic_error};
use crate::state::AppState;

pub fn configure(r: &mut Routes) {
    for prefix in ["/v1", ""] {
        r.post(&format!("{prefix}/messages"), Access::AnyKey, create);
        r.post(
            &format!("{prefix}/messages/count_tokens"),
            Access::AnyKey,
            count_tokens,
        );
    }
}

/// Authenticate, read and translate the body. Errors come back already in Anthropic's shape.
async fn translated(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(crate::auth::Caller, Map<String, Value>), HttpResponse> {
    // auth first: an unauthenticated caller never gets its body read.
    let caller = state.auth.authenticate(req).await.map_err(|e| {
        crate::observability::publish_unauthenticated(
            &state.observers,
            crate::llm::CallKind::Chat,
            &e,
        );
        anthropic_error(&e)
    })?;
    let raw = super::read_body(req, payload, state.settings.live().max_body_bytes)
        .await
        .map_err(|e| anthropic_error(&e))?;
    crate::llm::check_shape(&raw).map_err(|e| anthropic_error(&e))?;
    let body = match serde_json::from_slice::<Value>(&raw) {
        Ok(Value::Object(body)) => body,
        Ok(_) => {
            return Err(anthropic_error(&GatewayError::bad_request(
                "Request body must be a JSON object",
            )))
        }
        Err(e) => {
            return Err(anthropic_error(&GatewayError::bad_request(format!(
                "Malformed JSON in request body: {e}"
            ))))
        }
    };
    let body = messages_api::request_to_openai(body).map_err(|e| anthropic_error(&e))?;
    Ok((caller, body))
}

async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let (caller, body) = match translated(&state, &req, payload).await {
        Ok(t) => t,
        Err(response) => return response,
    };
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let outcome = match pipeline::request(&caller, CallKind::Chat, body, None) {
        Ok(request) => pipeline::run(&state, &req, caller, request).await,
        Err(e) => Outcome::refused(e),
    };
    render::anthropic(outcome, &model)
}

async fn count_tokens(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let (_, body) = match translated(&state, &req, payload).await {
        Ok(t) => t,
        Err(response) => return response,
    };
    match LlmRequest::from_body(CallKind::Chat, body, None) {
        Ok(parsed) => {
            HttpResponse::Ok().json(json!({"input_tokens": parsed.estimated_prompt_tokens()}))
        }
        Err(e) => anthropic_error(&e),
    }
}
