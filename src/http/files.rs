//! OpenAI's files and batches APIs, bare and under `/v1`: `POST /files` (multipart), `GET
//! /files`, `GET` / `DELETE /files/{file_id}`, `GET /files/{file_id}/content`, `POST /batches`,
//! `GET /batches`, `GET /batches/{batch_id}`, `POST /batches/{batch_id}/cancel`. The domain
//! (routing, ownership, accounting) is `crate::files`.

use super::routes::{Access, Routes};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::{Map, Value};

use super::manage::Authenticated;
use crate::auth::Caller;
use crate::error::GatewayError;
use crate::files::{self, ListQuery};
use crate::state::AppState;

pub fn configure(r: &mut Routes) {
    for prefix in ["", "/v1"] {
        r.post(&format!("{prefix}/files"), Access::AnyKey, upload);
        r.get(&format!("{prefix}/files"), Access::AnyKey, list_files);
        r.get(
            &format!("{prefix}/files/{{file_id}}"),
            Access::AnyKey,
            retrieve_file,
        );
        r.delete(
            &format!("{prefix}/files/{{file_id}}"),
            Access::AnyKey,
            delete_file,
        );
        r.get(
            &format!("{prefix}/files/{{file_id}}/content"),
            Access::AnyKey,
            file_content,
        );
        r.post(&format!("{prefix}/batches"), Access::AnyKey, create_batch);
        r.get(&format!("{prefix}/batches"), Access::AnyKey, list_batches);
        r.get(
            &format!("{prefix}/batches/{{batch_id}}"),
            Access::AnyKey,
            retrieve_batch,
        );
        r.post(
            &format!("{prefix}/batches/{{batch_id}}/cancel"),
            Access::AnyKey,
            cancel_batch,
        );
    }
}

fn json(result: Result<Value, GatewayError>) -> HttpResponse {
    match result {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => e.error_response(),
    }
}

/// A list's query (`limit`, `after`, `purpose`), read after authentication.
fn list_query(req: &HttpRequest) -> Result<ListQuery, GatewayError> {
    web::Query::<ListQuery>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| GatewayError::bad_request(format!("Invalid query: {e}")))
}

/// Authenticate, then read the body (so an unauthenticated caller never has it read).
async fn caller_and_body(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(Caller, bytes::Bytes), GatewayError> {
    let caller = state.auth.authenticate(req).await?;
    let body = super::read_body(req, payload, state.settings.live().max_body_bytes).await?;
    Ok((caller, body))
}

async fn upload(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let result = async {
        let (caller, body) = caller_and_body(&state, &req, payload).await?;
        let is_form = req
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
                "/files takes a multipart/form-data body (the file and its purpose)",
            ));
        }
        let (fields, uploads) = crate::multipart::parse(req.headers(), body).await?;
        files::upload(&state, &req, &caller, fields, uploads).await
    }
    .await;
    json(result)
}

async fn list_files(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
) -> HttpResponse {
    let result = async { files::list_files(&state, &caller, &list_query(&req)?).await }.await;
    json(result)
}

async fn retrieve_file(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    id: web::Path<String>,
) -> HttpResponse {
    json(files::retrieve_file(&state, &caller, &id).await)
}

async fn delete_file(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    id: web::Path<String>,
) -> HttpResponse {
    json(files::delete_file(&state, &caller, &id).await)
}

/// The file's bytes as the provider sent them, with its content type.
async fn file_content(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    id: web::Path<String>,
) -> HttpResponse {
    match files::file_content(&state, &caller, &id).await {
        Ok((bytes, content_type)) => HttpResponse::Ok()
            .content_type(content_type.unwrap_or_else(|| "application/octet-stream".into()))
            .body(bytes),
        Err(e) => e.error_response(),
    }
}

async fn create_batch(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let result = async {
        let (caller, body) = caller_and_body(&state, &req, payload).await?;
        let body: Map<String, Value> = serde_json::from_slice(&body).map_err(|e| {
            GatewayError::bad_request(format!("The body must be a JSON object: {e}"))
        })?;
        files::create_batch(&state, &req, &caller, body).await
    }
    .await;
    json(result)
}

async fn list_batches(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
) -> HttpResponse {
    let result = async { files::list_batches(&state, &caller, &list_query(&req)?).await }.await;
    json(result)
}

async fn retrieve_batch(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    id: web::Path<String>,
) -> HttpResponse {
    json(files::retrieve_batch(&state, &caller, &id).await)
}

async fn cancel_batch(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    id: web::Path<String>,
) -> HttpResponse {
    json(files::cancel_batch(&state, &caller, &id).await)
}
