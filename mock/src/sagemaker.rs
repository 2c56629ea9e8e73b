//! The mock's Amazon SageMaker runtime: `POST /endpoints/{name}/invocations` and
//! `/endpoints/{name}/invocations-response-stream` (AWS event-stream frames whose `PayloadPart`
//! payloads carry the container's SSE lines), SigV4-verified for service `sagemaker` with the
//! Bedrock mock's checker and example credentials.
//!
//! The container is chosen by the body, as real endpoints are by what they host:
//! - `{"text_inputs": [...]}`: the GPT-J embedding container, answering `{"embedding": [[...]]}`;
//! - `{"messages": [...]}` (or an endpoint whose name contains `chat-completions`): the
//!   OpenAI-compatible messages API, answering a `chat.completion` (or OpenAI chunks);
//! - `{"inputs": "...", "parameters": {...}}`: Hugging Face TGI, answering
//!   `[{"generated_text": "..."}]` (streams: `data:{"token":{"text":...}}` events, the last with
//!   `generated_text` and `details`). `parameters.mock_reply` and `parameters.max_new_tokens`
//!   shape the reply; the `x-mock-fail` header injects failures.

use actix_web::{
    web::{self, Bytes},
    HttpRequest, HttpResponse,
};
use futures_util::stream;
use serde_json::{json, Map, Value};

use crate::bedrock::{authenticate, decode, AwsError};
use crate::openai::{InputItem, Reply};
use crate::shared::{
    chat_prompt_tokens, embedding_vector, random_id, split_chunks, success_builder,
};
use crate::{pause, Controls, Endpoint, FailureMode, MockState};
use tollgate_wire::eventstream;

/// Registers the SageMaker runtime routes.
pub(super) fn configure(cfg: &mut web::ServiceConfig, state: &web::Data<MockState>) {
    cfg.service(
        web::resource("/endpoints/{name}/{action}")
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(super::MAX_BODY_BYTES))
            .route(web::post().to(handle)),
    );
}

async fn handle(req: HttpRequest, body: Bytes, state: web::Data<MockState>) -> HttpResponse {
    let raw_path = req.uri().path().to_string();
    let mut parts = raw_path.trim_start_matches('/').splitn(3, '/');
    let (_, segment, action) = (parts.next(), parts.next(), parts.next());
    let name = decode(segment.unwrap_or_default());
    let action = action.unwrap_or_default().to_string();
    let parsed: Option<Map<String, Value>> = serde_json::from_slice(&body).ok();
    let endpoint = if parsed
        .as_ref()
        .is_some_and(|b| b.contains_key("text_inputs"))
    {
        Endpoint::Embeddings
    } else {
        Endpoint::Chat
    };
    state.record(endpoint, Some(&name), &req, &body);
    match serve(&req, &body, parsed, &state, &name, &action).await {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}

async fn serve(
    req: &HttpRequest,
    raw: &Bytes,
    parsed: Option<Map<String, Value>>,
    state: &MockState,
    name: &str,
    action: &str,
) -> Result<HttpResponse, AwsError> {
    let streaming = match action {
        "invocations" => false,
        "invocations-response-stream" => true,
        other => {
            return Err(AwsError::new(
                404,
                "UnknownOperationException",
                format!("Unknown operation {other}"),
            ))
        }
    };
    let controls = Controls::extract(req.headers(), None, Some(name))
        .map_err(|e| AwsError::validation(e.message.to_string()))?;
    pause(controls.latency.unwrap_or(state.latency)).await;
    authenticate(req, raw, state, "sagemaker")?;
    if let Some(FailureMode::Status(status)) = controls.failure {
        return Err(AwsError::injected(status));
    }
    let body = parsed.ok_or_else(|| {
        AwsError::new(
            424,
            "ModelError",
            "Received client error (400) from primary with message \"Failed to deserialize the JSON body\"",
        )
    })?;
    if let Some(texts) = body.get("text_inputs") {
        let texts: Vec<&str> = match texts {
            Value::String(s) => vec![s.as_str()],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let vectors: Vec<Vec<f32>> = texts
            .iter()
            .map(|t| embedding_vector(&InputItem::Text(t), state.embedding_dim))
            .collect();
        return Ok(json_reply(&json!({ "embedding": vectors })));
    }
    if body.contains_key("messages") || name.contains("chat-completions") {
        return openai_chat(&body, name, streaming);
    }
    tgi(&body, state, streaming)
}

fn json_reply(v: &Value) -> HttpResponse {
    let mut b = success_builder();
    b.content_type("application/json");
    b.body(serde_json::to_vec(v).unwrap_or_default())
}

/// One `PayloadPart` frame carrying `bytes`.
fn payload_part(bytes: &[u8]) -> Bytes {
    Bytes::from(eventstream::encode(
        &[
            (":event-type", "PayloadPart"),
            (":content-type", "application/octet-stream"),
            (":message-type", "event"),
        ],
        bytes,
    ))
}

/// The frames as an event stream, each frame split in two pieces (clients must reassemble).
fn frames_response(frames: Vec<Bytes>) -> HttpResponse {
    let pieces: Vec<Result<Bytes, std::io::Error>> = frames
        .into_iter()
        .flat_map(|f| {
            let half = f.len() / 2;
            [Ok(f.slice(..half)), Ok(f.slice(half..))]
        })
        .collect();
    success_builder()
        .content_type("application/vnd.amazon.eventstream")
        .insert_header(("x-amzn-invoked-production-variant", "AllTraffic"))
        .streaming(stream::iter(pieces))
}

fn tgi(
    body: &Map<String, Value>,
    state: &MockState,
    streaming: bool,
) -> Result<HttpResponse, AwsError> {
    body.get("inputs").and_then(Value::as_str).ok_or_else(|| {
        AwsError::new(
            424,
            "ModelError",
            "Received client error (422) from primary with message \"Failed to deserialize the JSON body into the target type: missing field `inputs`\"",
        )
    })?;
    let params = body.get("parameters").and_then(Value::as_object);
    let mut settings = Map::new();
    if let Some(p) = params {
        if let Some(r) = p.get(super::REPLY_FIELD) {
            settings.insert(super::REPLY_FIELD.into(), r.clone());
        }
        if let Some(n) = p.get("max_new_tokens") {
            settings.insert("max_tokens".into(), n.clone());
        }
        if p.get("temperature")
            .and_then(Value::as_f64)
            .is_some_and(|t| t <= 0.0)
        {
            return Err(AwsError::new(
                424,
                "ModelError",
                "Received client error (422) from primary with message \"Input validation error: `temperature` must be strictly positive\"",
            ));
        }
    }
    let (text, finish) =
        match Reply::text(&settings).map_err(|e| AwsError::validation(e.message.to_string()))? {
            Reply::Text {
                text,
                finish_reason,
            } => (text, finish_reason),
            Reply::Tool { .. } => (String::new(), "stop"),
        };
    let finish = if finish == "length" {
        "length"
    } else {
        "eos_token"
    };
    let parts = split_chunks(&text, state.stream_chunks);
    let details = json!({
        "finish_reason": finish,
        "generated_tokens": parts.len().max(1),
        "seed": null,
    });
    if !streaming {
        return Ok(json_reply(
            &json!([{ "generated_text": text, "details": details }]),
        ));
    }
    let last = parts.len().saturating_sub(1);
    let frames = parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let event = if i == last {
                json!({"token": {"id": i, "text": part, "logprob": -0.1, "special": false},
                       "generated_text": text, "details": details})
            } else {
                json!({"token": {"id": i, "text": part, "logprob": -0.1, "special": false},
                       "generated_text": null, "details": null})
            };
            payload_part(format!("data:{event}\n\n").as_bytes())
        })
        .collect();
    Ok(frames_response(frames))
}

fn openai_chat(
    body: &Map<String, Value>,
    name: &str,
    streaming: bool,
) -> Result<HttpResponse, AwsError> {
    let messages = match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        _ => {
            return Err(AwsError::new(
                424,
                "ModelError",
                "Received client error (400) from primary with message \"messages must be a non-empty list\"",
            ))
        }
    };
    let reply = Reply::text(body).map_err(|e| AwsError::validation(e.message.to_string()))?;
    let completion = reply.completion_tokens();
    let (text, finish) = match reply {
        Reply::Text {
            text,
            finish_reason,
        } => (text, finish_reason),
        Reply::Tool { .. } => (String::new(), "stop"),
    };
    let prompt = chat_prompt_tokens(messages);
    let usage = json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    });
    let id = random_id("chatcmpl-", 24);
    let model = body.get("model").and_then(Value::as_str).unwrap_or(name);
    if !streaming {
        return Ok(json_reply(&json!({
            "id": id,
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": usage,
        })));
    }
    let chunk = |delta: Value, finish: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    events.extend(
        split_chunks(&text, 3)
            .into_iter()
            .map(|p| chunk(json!({ "content": p }), Value::Null)),
    );
    events.push(chunk(json!({}), json!(finish)));
    events.push(
        json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000,
                       "model": model, "choices": [], "usage": usage}),
    );
    let mut frames: Vec<Bytes> = events
        .iter()
        .map(|e| payload_part(format!("data: {e}\n\n").as_bytes()))
        .collect();
    frames.push(payload_part(b"data: [DONE]\n\n"));
    Ok(frames_response(frames))
}
