//! Anthropic's Messages API: `POST /v1/messages` and `POST /v1/messages/count_tokens` (also
//! without `/v1`). The request is translated to the OpenAI chat shape ([`crate::messages_api`]),
//! runs through the same pipeline as `/v1/chat/completions` (auth, model access, limits, routing,
//! retries, fallbacks, spend), and the OpenAI-shaped result is re-encoded: JSON into a `message`,
//! SSE chunk by chunk into Anthropic's events, errors into `{"type":"error","error":{…}}`.
//! `x-api-key` works as the key header; `anthropic-version` and `anthropic-beta` are accepted and
//! ignored.

use super::routes::{Access, Routes};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::error::GatewayError;
use crate::llm::{CallKind, LlmRequest};
use crate::messages_api::{self, AnthropicStream};
use crate::pipeline;
use crate::providers::stream::TranslatedStream;
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
    let caller = state
        .auth
        .authenticate(req)
        .await
        .map_err(|e| anthropic_error(&e))?;
    let raw = super::read_body(req, payload, state.max_body_bytes)
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
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let raw = match serde_json::to_vec(&body) {
        Ok(v) => Bytes::from(v),
        Err(e) => return anthropic_error(&GatewayError::internal(e.to_string())),
    };
    // The prompt estimate fills `message_start` until the provider's count arrives. The translated
    // body is dropped here either way: the pipeline parses its own copy from `raw`.
    let estimate = if stream {
        estimate_tokens(body, &model)
    } else {
        drop(body);
        0
    };
    let response = pipeline::run(&state, &req, caller, CallKind::Chat, None, raw).await;
    reencode(response, stream, model, estimate).await
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
    let raw = match serde_json::to_vec(&body) {
        Ok(v) => v,
        Err(e) => return anthropic_error(&GatewayError::internal(e.to_string())),
    };
    match LlmRequest::parse(CallKind::Chat, &raw, None) {
        Ok(parsed) => {
            HttpResponse::Ok().json(json!({"input_tokens": parsed.estimated_prompt_tokens()}))
        }
        Err(e) => anthropic_error(&e),
    }
}

fn estimate_tokens(body: Map<String, Value>, model: &str) -> u64 {
    LlmRequest {
        kind: CallKind::Chat,
        model: model.to_string(),
        stream: true,
        client_wants_usage: true,
        body,
        gateway: Default::default(),
    }
    .estimated_prompt_tokens()
}

/// An error raised before the pipeline ran, in Anthropic's shape (status and `retry-after` kept).
fn anthropic_error(err: &GatewayError) -> HttpResponse {
    let mut response = err.error_response();
    let status = response.status().as_u16();
    let body = messages_api::error_body(messages_api::error_type(status), &err.to_string());
    response.headers_mut().remove(CONTENT_LENGTH);
    response.headers_mut().insert(
        CONTENT_TYPE,
        actix_web::http::header::HeaderValue::from_static("application/json"),
    );
    response.set_body(BoxBody::new(body.to_string()))
}

/// The pipeline's OpenAI-shaped response in Anthropic's format, with its status and headers
/// (`x-litellm-*`, `retry-after`, rate-limit headers) kept.
async fn reencode(
    response: HttpResponse,
    stream: bool,
    model: String,
    estimate: u64,
) -> HttpResponse {
    let status = response.status();
    let (head, body) = response.into_parts();
    let mut out = HttpResponse::build(status);
    for (name, value) in head.headers() {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            out.append_header((name.clone(), value.clone()));
        }
    }
    let is_sse = head
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if status.is_success() && stream && is_sse {
        let translator = Box::new(AnthropicStream::new(model, estimate));
        return out
            .content_type("text/event-stream")
            .streaming(TranslatedStream::new(body_stream(body), translator));
    }
    let bytes = match actix_web::body::to_bytes(body).await {
        Ok(b) => b,
        Err(e) => {
            return anthropic_error(&GatewayError::internal(format!(
                "could not read the response: {e}"
            )))
        }
    };
    let json = if status.is_success() {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => messages_api::response_from_openai(&v, &model),
            Err(e) => {
                return anthropic_error(&GatewayError::internal(format!(
                    "the response is not JSON: {e}"
                )))
            }
        }
    } else {
        messages_api::error_from_openai(status.as_u16(), &bytes)
    };
    out.content_type("application/json").body(json.to_string())
}

/// A response body as a byte stream, polled as the client reads.
fn body_stream(
    body: BoxBody,
) -> impl futures_util::Stream<Item = Result<Bytes, Box<dyn std::error::Error>>> + Unpin {
    let mut body = Box::pin(body);
    futures_util::stream::poll_fn(move |cx| body.as_mut().poll_next(cx))
}
