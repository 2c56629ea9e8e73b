//! OpenAI's files and batches APIs, in memory: `POST /files` (multipart `file` and `purpose`),
//! `GET /files`, `GET` / `DELETE /files/{id}`, `GET /files/{id}/content`, `POST /batches`,
//! `GET /batches`, `GET /batches/{id}`, `POST /batches/{id}/cancel`; bare, under `/v1` and
//! under Azure's `/openai` (its `api-version` is not checked).
//!
//! A batch is `validating` for the first half of its delay, `in_progress` for the second, then
//! `completed`: its output file (written once, when the batch is first seen completed) holds one
//! chat completion with usage for each input line, as the chat route would answer it. The delay
//! is `--batch-delay-ms`, or the batch's `metadata.mock_batch_delay_ms`, or the creating
//! request's `x-mock-batch-delay-ms` header; an `x-mock-batch-complete: true` header on a read
//! completes the batch at once. A cancel answers `cancelling`; the next read says `cancelled`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::{
    web::{self, Bytes},
    HttpRequest, HttpResponse, ResponseError,
};
use futures_util::StreamExt as _;
use serde_json::{json, Map, Value};

use crate::openai::{ApiError, Reply};
use crate::shared::{chat_prompt_tokens, random_id, unix_now};
use crate::{header_text, lock, MockState};

/// The endpoints a batch may name.
const BATCH_ENDPOINTS: [&str; 4] = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/responses",
];

/// A stored file.
struct StoredFile {
    object: Map<String, Value>,
    data: Bytes,
}

/// A batch and when it was created.
struct StoredBatch {
    object: Map<String, Value>,
    created: Instant,
    delay: Duration,
    cancelling: bool,
}

/// The files and batches one mock holds.
#[derive(Default)]
pub(crate) struct FilesState {
    files: Mutex<HashMap<String, StoredFile>>,
    batches: Mutex<HashMap<String, StoredBatch>>,
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig, state: &web::Data<MockState>) {
    let resource = |path: &str| {
        web::resource(vec![
            path.to_owned(),
            format!("/v1{path}"),
            format!("/openai{path}"),
        ])
        .app_data(state.clone())
        .app_data(web::PayloadConfig::new(crate::MAX_BODY_BYTES))
    };
    cfg.service(
        resource("/files")
            .route(web::post().to(upload))
            .route(web::get().to(list_files)),
    )
    .service(
        resource("/files/{id}")
            .route(web::get().to(retrieve_file))
            .route(web::delete().to(delete_file)),
    )
    .service(resource("/files/{id}/content").route(web::get().to(file_content)))
    .service(
        resource("/batches")
            .route(web::post().to(create_batch))
            .route(web::get().to(list_batches)),
    )
    .service(resource("/batches/{id}").route(web::get().to(retrieve_batch)))
    .service(resource("/batches/{id}/cancel").route(web::post().to(cancel_batch)));
}

fn not_found(what: &str, id: &str) -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::NOT_FOUND,
        format!("No such {what}: '{id}'"),
        "invalid_request_error",
    )
}

/// Authorize and capture a request (for `/mock/last_request`).
fn admit(state: &MockState, req: &HttpRequest, body: &Bytes) -> Result<(), ApiError> {
    state.capture(req, body);
    state.authorize(req.headers())
}

fn answer(result: Result<Value, ApiError>) -> HttpResponse {
    match result {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => e.error_response(),
    }
}

fn list(data: Vec<Value>) -> Value {
    let id = |v: Option<&Value>| v.and_then(|o| o.get("id")).cloned().unwrap_or(Value::Null);
    json!({
        "object": "list",
        "first_id": id(data.first()),
        "last_id": id(data.last()),
        "has_more": false,
        "data": data,
    })
}

fn id_of(req: &HttpRequest) -> String {
    req.match_info().get("id").unwrap_or_default().to_owned()
}

async fn upload(req: HttpRequest, body: Bytes, state: web::Data<MockState>) -> HttpResponse {
    answer(store_upload(&req, body, &state).await)
}

async fn store_upload(
    req: &HttpRequest,
    body: Bytes,
    state: &MockState,
) -> Result<Value, ApiError> {
    admit(state, req, &body)?;
    let invalid = |message: String| ApiError::invalid_request(message, None, None);
    let stream =
        futures_util::stream::once(async move { Ok::<_, actix_web::error::PayloadError>(body) });
    let mut form = actix_multipart::Multipart::new(req.headers(), stream);
    let (mut purpose, mut file) = (None, None);
    while let Some(part) = form.next().await {
        let mut part = part.map_err(|e| invalid(format!("Invalid multipart body: {e}")))?;
        let name = part.name().unwrap_or_default().to_owned();
        let filename = part
            .content_disposition()
            .and_then(|cd| cd.get_filename())
            .map(str::to_owned);
        let mut data = Vec::new();
        while let Some(chunk) = part.next().await {
            data.extend_from_slice(
                &chunk.map_err(|e| invalid(format!("Invalid multipart body: {e}")))?,
            );
        }
        match name.as_str() {
            "purpose" => purpose = Some(String::from_utf8_lossy(&data).into_owned()),
            "file" => file = Some((filename.unwrap_or_else(|| "file".into()), data)),
            _ => {}
        }
    }
    let purpose = purpose.ok_or_else(|| ApiError::missing_parameter("purpose"))?;
    let (filename, data) = file.ok_or_else(|| ApiError::missing_parameter("file"))?;
    let object = stored_file(&state.files, filename, &purpose, Bytes::from(data));
    Ok(Value::Object(object))
}

/// Store a file; its object.
fn stored_file(
    files: &FilesState,
    filename: String,
    purpose: &str,
    data: Bytes,
) -> Map<String, Value> {
    let id = random_id("file-", 24);
    let object = json!({
        "id": id,
        "object": "file",
        "bytes": data.len(),
        "created_at": unix_now(),
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
        "status_details": null,
    });
    let Value::Object(object) = object else {
        unreachable!("a JSON object literal")
    };
    lock(&files.files).insert(
        id,
        StoredFile {
            object: object.clone(),
            data,
        },
    );
    object
}

async fn list_files(req: HttpRequest, state: web::Data<MockState>) -> HttpResponse {
    answer(admit(&state, &req, &Bytes::new()).map(|()| {
        let files = lock(&state.files.files);
        let mut data: Vec<&StoredFile> = files.values().collect();
        data.sort_by_key(|f| std::cmp::Reverse(f.object["created_at"].as_u64()));
        list(
            data.into_iter()
                .map(|f| Value::Object(f.object.clone()))
                .collect(),
        )
    }))
}

async fn retrieve_file(req: HttpRequest, state: web::Data<MockState>) -> HttpResponse {
    answer(admit(&state, &req, &Bytes::new()).and_then(|()| {
        let id = id_of(&req);
        lock(&state.files.files)
            .get(&id)
            .map(|f| Value::Object(f.object.clone()))
            .ok_or_else(|| not_found("file", &id))
    }))
}

async fn delete_file(req: HttpRequest, state: web::Data<MockState>) -> HttpResponse {
    answer(admit(&state, &req, &Bytes::new()).and_then(|()| {
        let id = id_of(&req);
        lock(&state.files.files)
            .remove(&id)
            .map(|_| json!({"id": id, "object": "file", "deleted": true}))
            .ok_or_else(|| not_found("file", &id))
    }))
}

async fn file_content(req: HttpRequest, state: web::Data<MockState>) -> HttpResponse {
    if let Err(e) = admit(&state, &req, &Bytes::new()) {
        return e.error_response();
    }
    let id = id_of(&req);
    let data = lock(&state.files.files).get(&id).map(|f| f.data.clone());
    match data {
        Some(data) => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .body(data),
        None => not_found("file", &id).error_response(),
    }
}

async fn create_batch(req: HttpRequest, body: Bytes, state: web::Data<MockState>) -> HttpResponse {
    answer(new_batch(&req, &body, &state))
}

fn new_batch(req: &HttpRequest, raw: &Bytes, state: &MockState) -> Result<Value, ApiError> {
    admit(state, req, raw)?;
    let body: Map<String, Value> = serde_json::from_slice(raw)
        .map_err(|_| ApiError::invalid_request("The body must be a JSON object.", None, None))?;
    let text = |name: &'static str| {
        body.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::missing_parameter(name))
    };
    let input_file_id = text("input_file_id")?;
    let endpoint = text("endpoint")?;
    if !BATCH_ENDPOINTS.contains(&endpoint) {
        return Err(ApiError::invalid_value(
            "endpoint",
            format!("'{endpoint}' is not a batch endpoint."),
        ));
    }
    if !lock(&state.files.files).contains_key(input_file_id) {
        return Err(not_found("file", input_file_id));
    }
    let metadata = body.get("metadata").cloned().unwrap_or(Value::Null);
    let delay_ms = header_text(req.headers(), "x-mock-batch-delay-ms")
        .map(str::to_owned)
        .or_else(|| {
            metadata.get("mock_batch_delay_ms").and_then(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .or_else(|| Some(v.to_string()))
            })
        })
        .and_then(|v| v.trim().parse::<u64>().ok());
    let delay = delay_ms.map_or(state.batch_delay, Duration::from_millis);
    let now = unix_now();
    let id = random_id("batch_", 24);
    let object = json!({
        "id": id,
        "object": "batch",
        "endpoint": endpoint,
        "errors": null,
        "input_file_id": input_file_id,
        "completion_window": body.get("completion_window").cloned().unwrap_or_else(|| json!("24h")),
        "status": "validating",
        "output_file_id": null,
        "error_file_id": null,
        "created_at": now,
        "in_progress_at": null,
        "expires_at": now + 86_400,
        "finalizing_at": null,
        "completed_at": null,
        "failed_at": null,
        "expired_at": null,
        "cancelling_at": null,
        "cancelled_at": null,
        "request_counts": {"total": 0, "completed": 0, "failed": 0},
        "metadata": metadata,
    });
    let Value::Object(object) = object else {
        unreachable!("a JSON object literal")
    };
    lock(&state.files.batches).insert(
        id,
        StoredBatch {
            object: object.clone(),
            created: Instant::now(),
            delay,
            cancelling: false,
        },
    );
    Ok(Value::Object(object))
}

/// Move a batch along: `validating` → `in_progress` → `completed` (writing its output file), or
/// `cancelling` → `cancelled`.
fn advance(state: &MockState, batch: &mut StoredBatch, complete_now: bool) {
    let status = batch.object["status"].as_str().unwrap_or("").to_owned();
    let now = unix_now();
    if matches!(
        status.as_str(),
        "completed" | "cancelled" | "failed" | "expired"
    ) {
        return;
    }
    if batch.cancelling {
        batch.object.insert("status".into(), json!("cancelled"));
        batch.object.insert("cancelled_at".into(), json!(now));
        return;
    }
    let elapsed = batch.created.elapsed();
    if complete_now || elapsed >= batch.delay {
        complete(state, batch, now);
    } else if elapsed >= batch.delay / 2 && status == "validating" {
        batch.object.insert("status".into(), json!("in_progress"));
        batch.object.insert("in_progress_at".into(), json!(now));
    }
}

/// Answer every input line and write the output (and error) file.
fn complete(state: &MockState, batch: &mut StoredBatch, now: u64) {
    let input_id = batch.object["input_file_id"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let input = lock(&state.files.files)
        .get(&input_id)
        .map(|f| f.data.clone())
        .unwrap_or_default();
    let (mut output, mut errors) = (Vec::new(), Vec::new());
    let (mut done, mut failed) = (0u64, 0u64);
    for line in input.split(|b| *b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match answer_line(line) {
            Ok(out) => {
                done += 1;
                output.extend_from_slice(out.to_string().as_bytes());
                output.push(b'\n');
            }
            Err(out) => {
                failed += 1;
                errors.extend_from_slice(out.to_string().as_bytes());
                errors.push(b'\n');
            }
        }
    }
    let output_id = stored_file(
        &state.files,
        "batch_output.jsonl".into(),
        "batch_output",
        Bytes::from(output),
    )["id"]
        .clone();
    batch.object.insert("output_file_id".into(), output_id);
    if !errors.is_empty() {
        let error_id = stored_file(
            &state.files,
            "batch_errors.jsonl".into(),
            "batch_output",
            Bytes::from(errors),
        )["id"]
            .clone();
        batch.object.insert("error_file_id".into(), error_id);
    }
    if batch.object["in_progress_at"].is_null() {
        batch.object.insert("in_progress_at".into(), json!(now));
    }
    batch.object.insert("finalizing_at".into(), json!(now));
    batch.object.insert("completed_at".into(), json!(now));
    batch.object.insert("status".into(), json!("completed"));
    batch.object.insert(
        "request_counts".into(),
        json!({"total": done + failed, "completed": done, "failed": failed}),
    );
}

/// One input line answered: a chat completion with usage (`Ok`), or the line's error (`Err`).
fn answer_line(line: &[u8]) -> Result<Value, Value> {
    let request_id = random_id("batch_req_", 24);
    let fail = |custom_id: Value, code: &str, message: String| json!({"id": request_id, "custom_id": custom_id, "response": null, "error": {"code": code, "message": message}});
    let item: Map<String, Value> = serde_json::from_slice(line).map_err(|e| {
        fail(
            Value::Null,
            "invalid_json",
            format!("The line is not JSON: {e}"),
        )
    })?;
    let custom_id = item.get("custom_id").cloned().unwrap_or(Value::Null);
    let Some(body) = item.get("body").and_then(Value::as_object) else {
        return Err(fail(
            custom_id,
            "missing_body",
            "The line has no `body`.".into(),
        ));
    };
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return Err(fail(
            custom_id,
            "missing_messages",
            "The body has no `messages`.".into(),
        ));
    };
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("mock-gpt");
    let reply = Reply::text(body)
        .map_err(|e| fail(custom_id.clone(), "invalid_request", e.message.to_string()))?;
    let prompt_tokens = chat_prompt_tokens(messages);
    let completion_tokens = reply.completion_tokens();
    let (content, finish_reason) = match reply {
        Reply::Text {
            text,
            finish_reason,
        } => (text, finish_reason),
        Reply::Tool { name } => (name, "stop"),
    };
    Ok(json!({
        "id": request_id,
        "custom_id": custom_id,
        "response": {
            "status_code": 200,
            "request_id": random_id("req_", 24),
            "body": {
                "id": random_id("chatcmpl-", 29),
                "object": "chat.completion",
                "created": unix_now(),
                "model": model,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": null},
                    "logprobs": null,
                    "finish_reason": finish_reason,
                }],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        },
        "error": null,
    }))
}

fn complete_header(req: &HttpRequest) -> bool {
    header_text(req.headers(), "x-mock-batch-complete")
        .is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes"))
}

async fn retrieve_batch(req: HttpRequest, state: web::Data<MockState>) -> HttpResponse {
    answer(admit(&state, &req, &Bytes::new()).and_then(|()| {
        let id = id_of(&req);
        let mut batches = lock(&state.files.batches);
        let batch = batches
            .get_mut(&id)
            .ok_or_else(|| not_found("batch", &id))?;
        advance(&state, batch, complete_header(&req));
        Ok(Value::Object(batch.object.clone()))
    }))
}

async fn list_batches(req: HttpRequest, state: web::Data<MockState>) -> HttpResponse {
    answer(admit(&state, &req, &Bytes::new()).map(|()| {
        let mut batches = lock(&state.files.batches);
        let mut data: Vec<&mut StoredBatch> = batches.values_mut().collect();
        for batch in &mut data {
            advance(&state, batch, false);
        }
        data.sort_by_key(|b| std::cmp::Reverse(b.created));
        list(
            data.into_iter()
                .map(|b| Value::Object(b.object.clone()))
                .collect(),
        )
    }))
}

async fn cancel_batch(req: HttpRequest, state: web::Data<MockState>) -> HttpResponse {
    answer(admit(&state, &req, &Bytes::new()).and_then(|()| {
        let id = id_of(&req);
        let mut batches = lock(&state.files.batches);
        let batch = batches
            .get_mut(&id)
            .ok_or_else(|| not_found("batch", &id))?;
        let status = batch.object["status"].as_str().unwrap_or("").to_owned();
        if !matches!(status.as_str(), "validating" | "in_progress") {
            return Err(ApiError::invalid_request(
                format!("Cannot cancel a batch with status '{status}'."),
                None,
                None,
            ));
        }
        batch.cancelling = true;
        batch.object.insert("status".into(), json!("cancelling"));
        batch
            .object
            .insert("cancelling_at".into(), json!(unix_now()));
        Ok(Value::Object(batch.object.clone()))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_answered_with_usage_or_an_error() {
        let ok = answer_line(
            br#"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello there"}],"mock_reply":"one two three"}}"#,
        )
        .expect("answered");
        assert_eq!(ok["custom_id"], "a");
        assert_eq!(ok["response"]["status_code"], 200);
        let body = &ok["response"]["body"];
        assert_eq!(body["choices"][0]["message"]["content"], "one two three");
        assert_eq!(body["usage"]["completion_tokens"], 3);
        // ceil(11 / 4) + 3 for the one message.
        assert_eq!(body["usage"]["prompt_tokens"], 6);
        let bad = answer_line(b"not json").expect_err("an error line");
        assert_eq!(bad["error"]["code"], "invalid_json");
    }
}
