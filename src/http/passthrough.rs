//! Pass-through routes (any method): `/openai/*`, `/anthropic/*`, `/gemini/*`, `/vertex_ai/*`,
//! `/bedrock/*`, `/cohere/*`, and the operator's `general_settings.pass_through_endpoints`.
//! Registered after every built-in route, so the Azure-style `/openai/deployments/{model}/…` LLM
//! routes keep answering their own paths. The relay itself is [`crate::passthrough`].

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use super::routes::{Access, RouteAccess, Routes};
use crate::passthrough::{self, endpoints::Endpoints, Provider, Relayed};
use crate::state::AppState;

/// The methods a pass-through route relays.
const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

pub fn configure(r: &mut Routes, configured: &Endpoints) {
    for provider in Provider::ALL {
        let path = format!("{}/{{tail:.*}}", provider.prefix());
        for method in METHODS {
            let relay = move |state, req, payload| handle(state, req, payload, provider);
            r.add(method, &path, Access::AnyKey, relay);
        }
    }
    for endpoint in &configured.list {
        let access = if endpoint.auth {
            Access::AnyKey
        } else {
            Access::Public
        };
        for pattern in endpoint.patterns() {
            for method in METHODS {
                r.add(method, &pattern, access, handle_configured);
            }
        }
    }
}

async fn handle(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
    provider: Provider,
) -> HttpResponse {
    let also = match provider {
        Provider::Gemini => gemini_key(&req),
        _ => None,
    };
    let caller = match state.auth.authenticate_with(&req, also.as_deref()).await {
        Ok(c) => c,
        Err(e) => return e.error_response(),
    };
    let body = match super::read_body(&req, payload, state.settings.live().max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return e.error_response(),
    };
    match passthrough::provider(&state, &req, caller, provider, body).await {
        Ok(relayed) => render(relayed),
        Err(e) => e.error_response(),
    }
}

async fn handle_configured(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let endpoint = req
        .app_data::<RouteAccess>()
        .and_then(|route| state.pass_through.by_pattern(&route.path))
        .cloned();
    let Some(endpoint) = endpoint else {
        return crate::error::GatewayError::RouteNotFound {
            path: req.path().to_string(),
        }
        .error_response();
    };
    let caller = if endpoint.auth {
        match state.auth.authenticate(&req).await {
            Ok(c) => Some(c),
            Err(e) => return e.error_response(),
        }
    } else {
        None
    };
    let body = match super::read_body(&req, payload, state.settings.live().max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return e.error_response(),
    };
    match passthrough::configured(&state, &req, caller, &endpoint, body).await {
        Ok(relayed) => render(relayed),
        Err(e) => e.error_response(),
    }
}

/// `/gemini/*` also takes the key where Google's clients put theirs: `x-goog-api-key`, `?key=`.
fn gemini_key(req: &HttpRequest) -> Option<String> {
    if let Some(v) = req
        .headers()
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
    {
        return Some(v.trim().to_string());
    }
    req.query_string()
        .split('&')
        .find_map(|pair| pair.strip_prefix("key="))
        .map(|v| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
}

/// The provider's status, headers and body, relayed as they arrive.
fn render(relayed: Relayed) -> HttpResponse {
    let status = StatusCode::from_u16(relayed.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = HttpResponse::build(status);
    for header in relayed.headers {
        response.append_header(header);
    }
    response.streaming(relayed.body)
}
