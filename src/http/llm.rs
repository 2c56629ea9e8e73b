//! `/chat/completions`, `/completions`, `/embeddings`, `/images/generations`, `/images/edits` and
//! `/moderations`, with and without `/v1`; chat, completions and embeddings also in the
//! `/engines/{model}/…` and `/openai/deployments/{model}/…` forms, images in the
//! `/openai/deployments/{model}/…` form (the path's model wins).

use super::routes::{Access, Routes};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::{Map, Value};

use crate::auth::Caller;
use crate::error::GatewayError;
use crate::llm::{CallKind, LlmRequest};
use crate::outcome::Outcome;
use crate::state::AppState;
use crate::{pipeline, render};

pub fn configure(r: &mut Routes) {
    for (kind, suffix) in [
        (CallKind::Chat, "chat/completions"),
        (CallKind::Completion, "completions"),
        (CallKind::Embedding, "embeddings"),
        (CallKind::ImageGeneration, "images/generations"),
        (CallKind::ImageEdit, "images/edits"),
        (CallKind::Moderation, "moderations"),
    ] {
        let plain = move |state, req, payload| handle(state, req, payload, kind, None);
        r.post(&format!("/{suffix}"), Access::AnyKey, plain);
        r.post(&format!("/v1/{suffix}"), Access::AnyKey, plain);
        if kind == CallKind::Moderation {
            continue;
        }
        let prefixes: &[&str] = match kind {
            CallKind::ImageGeneration | CallKind::ImageEdit => {
                &["/openai/deployments", "/v1/openai/deployments"]
            }
            _ => &[
                "/engines",
                "/openai/deployments",
                "/v1/engines",
                "/v1/openai/deployments",
            ],
        };
        for prefix in prefixes {
            let with_model = move |state, req, payload, path: web::Path<String>| {
                handle(state, req, payload, kind, Some(path.into_inner()))
            };
            r.post(
                &format!("{prefix}/{{model}}/{suffix}"),
                Access::AnyKey,
                with_model,
            );
        }
    }
}

async fn handle(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
    kind: CallKind,
    path_model: Option<String>,
) -> HttpResponse {
    // auth first: an unauthenticated caller never gets its body read.
    let caller = match state.auth.authenticate(&req).await {
        Ok(c) => c,
        Err(e) => {
            crate::observability::publish_unauthenticated(&state.observers, kind, &e);
            return e.error_response();
        }
    };
    let body = match super::read_body(&req, payload, state.settings.live().max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return e.error_response(),
    };
    let request = if kind == CallKind::ImageEdit {
        form_request(&req, &caller, body, path_model.as_deref()).await
    } else {
        let decoded = LlmRequest::decode(&body);
        drop(body); // the parsed form is all that is kept: never the body twice for the whole call
        decoded.and_then(|mut body| {
            if kind == CallKind::Moderation && path_model.is_none() {
                default_moderation_model(&state, &mut body);
            }
            pipeline::request(&caller, kind, body, path_model.as_deref())
        })
    };
    let outcome = match request {
        Ok(request) => match pipeline::batch_models(&request) {
            Some(models) => {
                let batch = pipeline::run_batch(&state, &req, caller, request, models).await;
                return render::openai_batch(batch);
            }
            None => pipeline::run(&state, &req, caller, request).await,
        },
        Err(e) => Outcome::refused(e),
    };
    render::openai(outcome)
}

/// `/images/edits`: a `multipart/form-data` body (read within the request-size limit) as the
/// internal request, its files kept beside the text fields.
async fn form_request(
    http: &HttpRequest,
    caller: &Caller,
    body: bytes::Bytes,
    path_model: Option<&str>,
) -> Result<LlmRequest, GatewayError> {
    let is_form = http
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    if !is_form {
        return Err(GatewayError::bad_request(
            "/images/edits takes a multipart/form-data body (the image file, prompt, model…)",
        ));
    }
    let (fields, uploads) = crate::multipart::parse(http.headers(), body).await?;
    if !uploads
        .iter()
        .any(|u| u.field == "image" || u.field == "image[]")
    {
        return Err(GatewayError::bad_param(
            "image",
            "Missing required parameter: 'image' (a file part).",
        ));
    }
    let mut request = pipeline::request(caller, CallKind::ImageEdit, fields, path_model)?;
    request.uploads = uploads;
    Ok(request)
}

/// A `/moderations` body without `model` gets the gateway's default: `general_settings.
/// moderation_model`, else the first model group whose deployments say `model_info.mode:
/// moderation`, else `omni-moderation-latest` (LiteLLM's default).
fn default_moderation_model(state: &AppState, body: &mut Map<String, Value>) {
    if body.get("model").is_some_and(|m| !m.is_null()) {
        return;
    }
    if let Some(model) = state
        .config
        .general_settings
        .get("moderation_model")
        .and_then(Value::as_str)
    {
        body.insert("model".into(), Value::String(model.to_string()));
        return;
    }
    let snapshot = state.router.snapshot();
    let group = snapshot
        .deployments()
        .iter()
        .find(|h| h.upstream.model_info.get("mode").and_then(Value::as_str) == Some("moderation"))
        .map(|h| h.upstream.model_name.clone())
        .unwrap_or_else(|| "omni-moderation-latest".to_string());
    body.insert("model".into(), Value::String(group));
}
