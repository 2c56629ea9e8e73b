//! LiteLLM's helper routes: `GET /utils/supported_openai_params?model=` (the OpenAI parameters
//! a model's provider accepts) and `POST /utils/token_counter` (a local token count).

use super::routes::{Access, Routes};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::deployment::Deployment;
use crate::error::GatewayError;
use crate::state::AppState;

pub fn configure(r: &mut Routes) {
    r.get(
        "/utils/supported_openai_params",
        Access::AnyKey,
        supported_openai_params,
    )
    .post("/utils/token_counter", Access::AnyKey, token_counter);
}

/// The first deployment of `model` (a model group or `model_group_alias` name) the caller may
/// use.
fn deployment_for(
    state: &AppState,
    caller: &Caller,
    model: &str,
) -> Option<std::sync::Arc<Deployment>> {
    if !super::models::visible_models(state, caller, false).contains(model) {
        return None;
    }
    let group = state
        .aliases
        .get(model)
        .map_or(model, |a| a.target.as_str());
    let snapshot = state.router.snapshot();
    let g = snapshot.group(group)?;
    g.deployments.first().map(|h| h.upstream.clone())
}

#[derive(Deserialize)]
struct ParamsQuery {
    model: Option<String>,
}

/// The parameters as LiteLLM answers them: `{"supported_openai_params": [...]}`. `model` is a model group the caller may
/// use (its first deployment's provider answers), else a `provider/model` name, else a model of
/// the bundled model table.
async fn supported_openai_params(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<ParamsQuery>,
) -> HttpResponse {
    let caller = match state.auth.authenticate(&req).await {
        Ok(c) => c,
        Err(e) => return e.error_response(),
    };
    let Some(model) = q.model.as_deref().filter(|m| !m.is_empty()) else {
        return GatewayError::bad_param("model", "query parameter 'model' is required")
            .error_response();
    };
    if let Some(d) = deployment_for(&state, &caller, model) {
        if d.target().is_some() {
            return answer(d.supported_openai_params());
        }
    }
    let (provider, name) = match model.split_once('/') {
        Some((p, rest)) if crate::providers::by_name(p).is_some() => (Some(p), rest),
        _ => (crate::pricing::provider_of(model), model),
    };
    let Some(spec) = provider.and_then(crate::providers::by_name) else {
        return GatewayError::bad_param(
            "model",
            format!(
                "Could not map model={model} to a provider: give a model group, or provider/model"
            ),
        )
        .error_response();
    };
    let kind = match crate::pricing::lookup(Some(spec.name), name).and_then(|p| p.mode.as_deref()) {
        Some("embedding") => crate::llm::CallKind::Embedding,
        _ => crate::llm::CallKind::Chat,
    };
    answer(crate::providers::supported_openai_params(spec, kind))
}

fn answer(params: Vec<&'static str>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "supported_openai_params": params }))
}

#[derive(Deserialize)]
struct TokenCountRequest {
    model: String,
    prompt: Option<String>,
    messages: Option<Vec<Value>>,
    /// An Anthropic-style system prompt (a string or text blocks), counted as a leading
    /// system message.
    system: Option<Value>,
}

/// LiteLLM's `TokenCountResponse`: `total_tokens`, `request_model`, `model_used` (the provider's
/// model name of the group's deployment, else the name asked for) and `tokenizer_type`
/// (`openai_tokenizer`: every count here is a tiktoken encoding), plus `tokenizer` (the
/// encoding) and `tokenizer_fallback` (the tokenizer LiteLLM would have used instead, when this
/// gateway cannot load it, else null).
async fn token_counter(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let caller = match state.auth.authenticate(&req).await {
        Ok(c) => c,
        Err(e) => return e.error_response(),
    };
    let body = match super::read_body(&req, payload, state.settings.live().max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return e.error_response(),
    };
    let request: TokenCountRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return GatewayError::bad_request(format!("invalid token_counter body: {e}"))
                .error_response()
        }
    };
    let deployment = deployment_for(&state, &caller, &request.model);
    let model_used = deployment
        .as_ref()
        .and_then(|d| d.target().map(|t| t.model.clone()))
        .unwrap_or_else(|| request.model.clone());
    let custom = deployment
        .as_ref()
        .and_then(|d| d.model_info.get("custom_tokenizer"));
    let choice = crate::tokens::choose(&model_used, custom);
    let count = match (request.messages, &request.prompt) {
        (Some(mut messages), _) => {
            if let Some(system) = request.system.filter(|s| !s.is_null()) {
                messages.insert(0, json!({"role": "system", "content": system}));
            }
            crate::tokens::count_messages(&choice, &messages)
        }
        (None, Some(prompt)) => crate::tokens::count_prompt(&choice, prompt),
        (None, None) => {
            return GatewayError::bad_request("prompt or messages must be provided")
                .error_response()
        }
    };
    HttpResponse::Ok().json(json!({
        "total_tokens": count.total_tokens,
        "request_model": request.model,
        "model_used": model_used,
        "tokenizer_type": crate::tokens::OPENAI_TOKENIZER,
        "tokenizer": count.encoding,
        "tokenizer_fallback": count.fallback_from,
    }))
}
