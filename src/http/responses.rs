//! OpenAI's Responses API: `POST /v1/responses`, `GET` and `DELETE /v1/responses/{id}`,
//! `GET /v1/responses/{id}/input_items` (also without `/v1`). A create runs through the same
//! pipeline as `/v1/chat/completions` (auth, model access, limits, routing, retries, fallbacks,
//! spend), as the Responses API for OpenAI and Azure deployments and as chat for every other
//! provider ([`crate::responses_api`]); its outcome is rendered as a Responses object or typed
//! Responses events ([`render::responses`]) and stored unless the request says `store: false`.

use super::routes::{Access, Routes};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::GatewayError;
use crate::llm::{CallKind, LlmRequest};
use crate::outcome::Outcome;
use crate::responses_api::{self, Echo, Recorder};
use crate::state::AppState;
use crate::{pipeline, render};

pub fn configure(r: &mut Routes) {
    for prefix in ["/v1", ""] {
        r.post(&format!("{prefix}/responses"), Access::AnyKey, create);
        r.get(
            &format!("{prefix}/responses/{{id}}"),
            Access::AnyKey,
            retrieve,
        );
        r.delete(
            &format!("{prefix}/responses/{{id}}"),
            Access::AnyKey,
            delete,
        );
        r.get(
            &format!("{prefix}/responses/{{id}}/input_items"),
            Access::AnyKey,
            input_items,
        );
    }
}

async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    // auth first: an unauthenticated caller never gets its body read.
    let caller = match state.auth.authenticate(&req).await {
        Ok(c) => c,
        Err(e) => {
            crate::observability::publish_unauthenticated(
                &state.observers,
                CallKind::Responses,
                &e,
            );
            return e.error_response();
        }
    };
    let raw = match super::read_body(&req, payload, state.settings.live().max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return e.error_response(),
    };
    let body = match LlmRequest::decode(&raw) {
        Ok(body) => body,
        Err(e) => return e.error_response(),
    };
    drop(raw);
    let echo = Echo::from_body(&body);
    let (request, recorder) = match prepare(&state, &caller, &echo, body).await {
        Ok(prepared) => prepared,
        Err(e) => return render::responses(Outcome::refused(e), &echo, None),
    };
    let mut outcome = pipeline::run(&state, &req, caller, request).await;
    if let (Some(object), Some(recorder)) = (
        responses_api::complete_object(&mut outcome, &echo),
        &recorder,
    ) {
        recorder.record(&object).await;
    }
    render::responses(outcome, &echo, recorder.map(|r| r.on_final()))
}

/// The typed request, its conversation rebuilt from the store when it continues a previous
/// response, and where its response will be stored (`None` with `store: false`).
async fn prepare(
    state: &AppState,
    caller: &Caller,
    echo: &Echo,
    body: serde_json::Map<String, Value>,
) -> Result<(LlmRequest, Option<Recorder>), GatewayError> {
    let mut request = pipeline::request(caller, CallKind::Responses, body, None)?;
    let new_items = responses_api::input_items(request.body.get("input").unwrap_or(&Value::Null))?;
    let conversation = match request.body.remove("previous_response_id") {
        None | Some(Value::Null) => new_items,
        Some(Value::String(id)) => {
            let store = state.db.store()?;
            let previous = responses_api::find(store, caller, &id)
                .await
                .map_err(|e| match e {
                    GatewayError::NotFound { .. } => GatewayError::BadRequest {
                        message: format!("Previous response with id '{id}' not found."),
                        param: Some("previous_response_id".into()),
                        code: Some("previous_response_not_found"),
                    },
                    other => other,
                })?;
            let conversation = responses_api::conversation(&previous, &new_items);
            request.body.insert(
                "input".into(),
                Value::Array(responses_api::for_upstream(&conversation)),
            );
            conversation
        }
        Some(_) => {
            return Err(GatewayError::bad_param(
                "previous_response_id",
                "Invalid type for 'previous_response_id': expected a string.",
            ))
        }
    };
    // A database that is not there does not stop the call: its response is not stored.
    let recorder = match (echo.store(), state.db.store()) {
        (true, Ok(store)) => Some(Recorder::new(
            store.clone(),
            caller,
            &echo.model,
            conversation,
        )),
        (true, Err(e)) => {
            tracing::warn!(error = %e, "the database is unavailable: this response is not stored");
            None
        }
        (false, _) => None,
    };
    Ok((request, recorder))
}

/// The caller and the stored response it names, or the error to answer.
async fn found(
    state: &AppState,
    req: &HttpRequest,
    id: &str,
) -> Result<crate::store::StoredResponse, GatewayError> {
    let caller = state.auth.authenticate(req).await?;
    let store = state.db.store()?;
    responses_api::find(store, &caller, id).await
}

async fn retrieve(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    match found(&state, &req, &id).await {
        Ok(stored) => HttpResponse::Ok()
            .content_type("application/json")
            .body(stored.response),
        Err(e) => e.error_response(),
    }
}

async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let result = async {
        let stored = found(&state, &req, &id).await?;
        state
            .db
            .store()?
            .delete_response(&stored.id)
            .await
            .map_err(|e| GatewayError::Unavailable {
                message: e.to_string(),
            })?;
        Ok::<_, GatewayError>(json!({"id": stored.id, "object": "response", "deleted": true}))
    }
    .await;
    match result {
        Ok(body) => HttpResponse::Ok().json(body),
        Err(e) => e.error_response(),
    }
}

#[derive(serde::Deserialize)]
struct ListQuery {
    order: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

async fn input_items(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let query = match web::Query::<ListQuery>::from_query(req.query_string()) {
        Ok(q) => q.into_inner(),
        Err(e) => return GatewayError::bad_request(e.to_string()).error_response(),
    };
    let page = async {
        let stored = found(&state, &req, &id).await?;
        responses_api::input_items_page(
            &stored,
            query.order.as_deref(),
            query.after.as_deref(),
            query.limit,
        )
    }
    .await;
    match page {
        Ok(body) => HttpResponse::Ok().json(body),
        Err(e) => e.error_response(),
    }
}
