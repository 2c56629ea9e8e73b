//! `/chat/completions`, `/completions`, `/embeddings`, with and without `/v1`, and in the
//! `/engines/{model}/…` and `/openai/deployments/{model}/…` forms (the path's model wins).

use super::routes::{Access, Routes};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use crate::llm::{CallKind, LlmRequest};
use crate::outcome::Outcome;
use crate::state::AppState;
use crate::{pipeline, render};

pub fn configure(r: &mut Routes) {
    for (kind, suffix) in [
        (CallKind::Chat, "chat/completions"),
        (CallKind::Completion, "completions"),
        (CallKind::Embedding, "embeddings"),
    ] {
        let plain = move |state, req, payload| handle(state, req, payload, kind, None);
        r.post(&format!("/{suffix}"), Access::AnyKey, plain);
        r.post(&format!("/v1/{suffix}"), Access::AnyKey, plain);
        for prefix in [
            "/engines",
            "/openai/deployments",
            "/v1/engines",
            "/v1/openai/deployments",
        ] {
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
    let request = LlmRequest::decode(&body)
        .and_then(|body| pipeline::request(&caller, kind, body, path_model.as_deref()));
    drop(body); // the parsed form is all that is kept: never the body twice for the whole call
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
