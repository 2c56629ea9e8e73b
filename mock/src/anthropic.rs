//! The mock provider's Anthropic Messages API: `POST /v1/messages`.
//!
//! It speaks Anthropic's wire format as documented: `x-api-key` and `anthropic-version` headers
//! (both required), the request schema (unknown top-level fields are refused, as the API does),
//! `message` responses with `content` blocks, `stop_reason` and `usage`, named SSE events
//! (`message_start`, `content_block_start`/`delta`/`stop`, `ping`, `message_delta`,
//! `message_stop`) and errors as `{"type":"error","error":{"type","message"},"request_id"}`.
//!
//! Replies and failure injection are the OpenAI routes' (`mock_reply`, `mock_fail`,
//! `mock_latency_ms`, `x-mock-*` headers), rendered the Anthropic way: `529` is an
//! `overloaded_error`, `context_length` is "prompt is too long", `content_policy` is a reply with
//! `stop_reason: "refusal"`. One more mode exists here only: `stream_error`, a stream that starts
//! and then sends an `error` event (`overloaded_error`), as Anthropic does when it is overloaded
//! mid-stream. Requests count under the chat route in `/mock/stats`.

use std::borrow::Cow;

use actix_web::{
    http::{header, StatusCode},
    web::{self, Bytes},
    HttpRequest, HttpResponse, HttpResponseBuilder,
};
use futures_util::stream::{self, StreamExt as _};
use serde_json::{json, Map, Value};

use crate::openai::ApiError;
use crate::shared::{
    chat_prompt_tokens, count_words, random_id, split_chunks, tokens_for_chars, truncate_words,
};
use crate::{
    flush_point, header_text, pause, requested_latency, scalar_text, Controls, Endpoint,
    FailureMode, MockState, CUT_AFTER_PARTS, DEFAULT_REPLY, DEFAULT_RETRY_AFTER, FAIL_FIELD,
    FAIL_HEADER, HANG_DURATION, MAX_BODY_BYTES, REPLY_FIELD, SLOW_DURATION,
};

/// The versions the Messages API accepts in `anthropic-version`.
const VERSIONS: [&str; 2] = ["2023-06-01", "2023-01-01"];
/// The mock-only failure mode: an `error` event after the stream started.
const STREAM_ERROR_MODE: &str = "stream_error";
const THINKING_TEXT: &str = "The user wants a short reply. I will answer directly.";
const RATE_LIMIT_REQUESTS: &str = "4000";

/// Top-level request fields of the Messages API; anything else is "Extra inputs are not
/// permitted".
const REQUEST_FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
    "container",
    "mcp_servers",
    "context_management",
    "output_config",
    "output_format",
];
/// The mock's own controls, accepted in the body on every route.
const MOCK_FIELDS: &[&str] = &[
    REPLY_FIELD,
    FAIL_FIELD,
    super::LATENCY_FIELD,
    super::RETRY_AFTER_FIELD,
];

/// Registers `POST /v1/messages`.
pub(super) fn configure(cfg: &mut web::ServiceConfig, state: &web::Data<MockState>) {
    cfg.service(
        web::resource("/v1/messages")
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .route(web::post().to(messages)),
    );
}

async fn messages(req: HttpRequest, raw: Bytes, state: web::Data<MockState>) -> HttpResponse {
    let parsed: Option<Value> = serde_json::from_slice(&raw).ok();
    let model = parsed
        .as_ref()
        .and_then(|body| body.get("model"))
        .and_then(Value::as_str);
    state.record(Endpoint::Chat, model, &req, &raw);
    let request_id = random_id("req_011C", 20);
    let mut response = match serve(&req, parsed.as_ref(), model, &state).await {
        Ok(response) => response,
        Err(error) => error.response(&request_id),
    };
    if let Ok(value) = header::HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static("request-id"), value);
    }
    response
}

// ---------------------------------------------------------------------------------------------
// Errors in Anthropic's shape
// ---------------------------------------------------------------------------------------------

/// `{"type":"error","error":{"type":…,"message":…},"request_id":…}`.
#[derive(Debug)]
struct AnthropicError {
    status: StatusCode,
    kind: &'static str,
    message: Cow<'static, str>,
    retry_after: Option<String>,
}

impl AnthropicError {
    fn new(status: u16, message: impl Into<Cow<'static, str>>) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self {
            status,
            kind: error_type(status),
            message: message.into(),
            retry_after: None,
        }
    }

    fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(400, message)
    }

    /// What Anthropic answers for an injected status.
    fn injected(status: StatusCode) -> Self {
        let message: Cow<'static, str> = match status.as_u16() {
            401 => "invalid x-api-key".into(),
            403 => "Your API key does not have permission to use the specified resource.".into(),
            404 => "The requested resource could not be found.".into(),
            413 => "Request exceeds the maximum allowed number of bytes.".into(),
            500 => "Internal server error".into(),
            529 => "Overloaded".into(),
            other => format!("Mock provider injected {other} error").into(),
        };
        Self::new(status.as_u16(), message)
    }

    fn rate_limited(retry_after: Option<String>) -> Self {
        Self {
            retry_after: Some(retry_after.unwrap_or_else(|| DEFAULT_RETRY_AFTER.to_owned())),
            ..Self::new(
                429,
                "This request would exceed the rate limit for your organization of 4,000 requests \
                 per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.",
            )
        }
    }

    fn response(&self, request_id: &str) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status);
        if let Some(retry_after) = &self.retry_after {
            builder
                .insert_header((header::RETRY_AFTER, retry_after.as_str()))
                .insert_header(("anthropic-ratelimit-requests-limit", RATE_LIMIT_REQUESTS))
                .insert_header(("anthropic-ratelimit-requests-remaining", "0"));
        }
        builder.json(json!({
            "type": "error",
            "error": {"type": self.kind, "message": self.message},
            "request_id": request_id,
        }))
    }
}

/// The mock's shared errors (bad `mock_*` controls, reply validation) in Anthropic's shape.
impl From<ApiError> for AnthropicError {
    fn from(e: ApiError) -> Self {
        Self::new(e.status.as_u16(), e.message)
    }
}

/// Anthropic's `error.type` for an HTTP status.
fn error_type(status: StatusCode) -> &'static str {
    tollgate_wire::anthropic::error_type_for_status(status.as_u16())
}

// ---------------------------------------------------------------------------------------------
// Request handling
// ---------------------------------------------------------------------------------------------

/// The failure mode asked for by header or body, when it is this route's own `stream_error`.
fn wants_stream_error(req: &HttpRequest, body: Option<&Map<String, Value>>) -> bool {
    let is_mode = |raw: &str| raw.trim().eq_ignore_ascii_case(STREAM_ERROR_MODE);
    if let Some(raw) = header_text(req.headers(), FAIL_HEADER) {
        return is_mode(raw);
    }
    body.and_then(|b| b.get(FAIL_FIELD))
        .and_then(scalar_text)
        .is_some_and(|raw| is_mode(&raw))
}

fn authorize(req: &HttpRequest, state: &MockState) -> Result<(), AnthropicError> {
    let headers = req.headers();
    let Some(key) = header_text(headers, "x-api-key") else {
        return Err(AnthropicError::new(401, "x-api-key header is required"));
    };
    if state
        .api_key
        .as_deref()
        .is_some_and(|expected| expected != key)
    {
        return Err(AnthropicError::new(401, "invalid x-api-key"));
    }
    match header_text(headers, "anthropic-version") {
        None => Err(AnthropicError::invalid(
            "anthropic-version: header is required",
        )),
        Some(v) if !VERSIONS.contains(&v) => Err(AnthropicError::invalid(format!(
            "anthropic-version: invalid version '{v}'"
        ))),
        Some(_) => Ok(()),
    }
}

async fn serve(
    req: &HttpRequest,
    parsed: Option<&Value>,
    model: Option<&str>,
    state: &MockState,
) -> Result<HttpResponse, AnthropicError> {
    let object = parsed.and_then(Value::as_object);
    let stream_error = wants_stream_error(req, object);
    let controls = if stream_error {
        requested_latency(req.headers(), object).map(|latency| Controls {
            failure: None,
            latency,
            retry_after: None,
        })
    } else {
        Controls::extract(req.headers(), object, model)
    };
    let latency = controls
        .as_ref()
        .ok()
        .and_then(|c| c.latency)
        .unwrap_or(state.latency);
    pause(latency).await;
    authorize(req, state)?;
    let controls = controls?;

    let mut failure = Failure::None;
    match controls.failure {
        None => {}
        Some(FailureMode::Hang) => pause(HANG_DURATION).await,
        Some(FailureMode::Slow) => pause(SLOW_DURATION).await,
        Some(FailureMode::Cut) => failure = Failure::Cut,
        Some(FailureMode::Status(status)) => return Err(AnthropicError::injected(status)),
        Some(FailureMode::RateLimit) => {
            return Err(AnthropicError::rate_limited(controls.retry_after))
        }
        Some(FailureMode::ContextLength) => {
            return Err(AnthropicError::invalid(
                "prompt is too long: 215000 tokens > 200000 maximum",
            ))
        }
        Some(FailureMode::ContentPolicy) => failure = Failure::Refusal,
    }
    if stream_error {
        failure = Failure::StreamError;
    }

    let body = parsed
        .ok_or_else(|| AnthropicError::invalid("Invalid JSON in request body"))?
        .as_object()
        .ok_or_else(|| AnthropicError::invalid("Request body must be a JSON object"))?;
    let request = validate(body)?;
    let reply = Reply::for_request(body, &request, failure)?;
    let usage = TokenUsage::new(body, &request, &reply);
    let id = random_id("msg_01", 22);
    let model = model.unwrap_or_default();

    if request.stream {
        let events = stream_events(&id, model, &reply, &usage, state, failure);
        return Ok(sse(events, state.chunk_delay));
    }
    if failure == Failure::StreamError {
        return Err(AnthropicError::injected(
            StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
        ));
    }
    let message = json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": reply.content_blocks(),
        "stop_reason": reply.stop_reason,
        "stop_sequence": reply.stop_sequence,
        "usage": usage.json(usage.output),
    });
    let bytes = serde_json::to_vec(&message)
        .map_err(|e| AnthropicError::new(500, format!("cannot encode reply: {e}")))?;
    let mut builder = success();
    builder.content_type("application/json");
    Ok(if failure == Failure::Cut {
        builder.body(super::truncated_body(bytes))
    } else {
        builder.body(bytes)
    })
}

fn success() -> HttpResponseBuilder {
    let mut builder = HttpResponse::Ok();
    builder
        .insert_header(("anthropic-ratelimit-requests-limit", RATE_LIMIT_REQUESTS))
        .insert_header(("anthropic-ratelimit-requests-remaining", "3999"));
    builder
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    None,
    Cut,
    Refusal,
    StreamError,
}

/// What validation learnt about the request.
struct Validated {
    stream: bool,
    max_tokens: u64,
    /// Some block or tool asked for prompt caching.
    cached: bool,
}

fn field_error(path: &str, message: &str) -> AnthropicError {
    AnthropicError::invalid(format!("{path}: {message}"))
}

/// The Messages API's request checks (the ones a translating gateway can get wrong).
fn validate(body: &Map<String, Value>) -> Result<Validated, AnthropicError> {
    for key in body.keys() {
        if !REQUEST_FIELDS.contains(&key.as_str()) && !MOCK_FIELDS.contains(&key.as_str()) {
            return Err(field_error(key, "Extra inputs are not permitted"));
        }
    }
    match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => {}
        Some(_) => return Err(field_error("model", "Input should be a valid string")),
        None => return Err(field_error("model", "Field required")),
    }
    let max_tokens = match body.get("max_tokens") {
        None => return Err(field_error("max_tokens", "Field required")),
        Some(v) => v
            .as_u64()
            .filter(|n| *n >= 1)
            .ok_or_else(|| field_error("max_tokens", "Input should be a valid integer >= 1"))?,
    };
    let stream = match body.get("stream") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(field_error("stream", "Input should be a valid boolean")),
    };
    for key in ["temperature", "top_p"] {
        if let Some(v) = body.get(key) {
            match v.as_f64() {
                Some(x) if (0.0..=1.0).contains(&x) => {}
                Some(_) => return Err(field_error(key, "Input should be less than or equal to 1")),
                None => return Err(field_error(key, "Input should be a valid number")),
            }
        }
    }
    if let Some(stops) = body.get("stop_sequences") {
        let ok = stops.as_array().is_some_and(|items| {
            items
                .iter()
                .all(|s| s.as_str().is_some_and(|s| !s.trim().is_empty()))
        });
        if !ok {
            return Err(field_error(
                "stop_sequences",
                "each stop sequence must be a string containing non-whitespace characters",
            ));
        }
    }
    if let Some(metadata) = body.get("metadata") {
        let Some(metadata) = metadata.as_object() else {
            return Err(field_error(
                "metadata",
                "Input should be a valid dictionary",
            ));
        };
        if let Some(key) = metadata.keys().find(|k| *k != "user_id") {
            return Err(field_error(
                &format!("metadata.{key}"),
                "Extra inputs are not permitted",
            ));
        }
    }
    if let Some(thinking) = body.get("thinking") {
        match thinking.get("type").and_then(Value::as_str) {
            Some("enabled") => {
                let budget = thinking
                    .get("budget_tokens")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                if budget < 1024 {
                    return Err(field_error(
                        "thinking.enabled.budget_tokens",
                        "Input should be greater than or equal to 1024",
                    ));
                }
                if max_tokens <= budget {
                    return Err(AnthropicError::invalid(
                        "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size",
                    ));
                }
            }
            Some("disabled") => {}
            _ => {
                return Err(field_error(
                    "thinking",
                    "Input tag does not match any of the expected tags: 'enabled', 'disabled'",
                ))
            }
        }
    }

    let mut cached = false;
    let tool_names = validate_tools(body, &mut cached)?;
    match body.get("system") {
        None | Some(Value::String(_)) => {}
        Some(Value::Array(blocks)) => {
            for (j, block) in blocks.iter().enumerate() {
                if block.get("type").and_then(Value::as_str) != Some("text") {
                    return Err(field_error(
                        &format!("system.{j}.type"),
                        "Input should be 'text'",
                    ));
                }
                cached |= block.get("cache_control").is_some();
            }
        }
        Some(_) => {
            return Err(field_error(
                "system",
                "Input should be a valid string or list",
            ))
        }
    }
    let uses_tools = validate_messages(body, &mut cached)?;
    if uses_tools && tool_names.is_none() {
        return Err(AnthropicError::invalid(
            "Requests which include `tool_use` or `tool_result` blocks must define tools.",
        ));
    }
    Ok(Validated {
        stream,
        max_tokens,
        cached,
    })
}

/// `tools` and `tool_choice`; returns the tool names when tools are defined.
fn validate_tools(
    body: &Map<String, Value>,
    cached: &mut bool,
) -> Result<Option<Vec<String>>, AnthropicError> {
    let names = match body.get("tools") {
        None => None,
        Some(Value::Array(tools)) => {
            let mut names = Vec::new();
            for (i, tool) in tools.iter().enumerate() {
                let custom = tool
                    .get("type")
                    .and_then(Value::as_str)
                    .is_none_or(|t| t == "custom");
                let name = tool.get("name").and_then(Value::as_str).ok_or_else(|| {
                    field_error(&format!("tools.{i}.custom.name"), "Field required")
                })?;
                if custom {
                    match tool.get("input_schema") {
                        Some(schema)
                            if schema.get("type").and_then(Value::as_str) == Some("object") => {}
                        Some(_) => {
                            return Err(field_error(
                                &format!("tools.{i}.custom.input_schema.type"),
                                "Input should be 'object'",
                            ))
                        }
                        None => {
                            return Err(field_error(
                                &format!("tools.{i}.custom.input_schema"),
                                "Field required",
                            ))
                        }
                    }
                    if let Some(key) = tool.as_object().and_then(|t| {
                        t.keys().find(|k| {
                            !matches!(
                                k.as_str(),
                                "name" | "description" | "input_schema" | "cache_control" | "type"
                            )
                        })
                    }) {
                        return Err(field_error(
                            &format!("tools.{i}.custom.{key}"),
                            "Extra inputs are not permitted",
                        ));
                    }
                }
                *cached |= tool.get("cache_control").is_some();
                names.push(name.to_owned());
            }
            Some(names)
        }
        Some(_) => return Err(field_error("tools", "Input should be a valid list")),
    };
    if let Some(choice) = body.get("tool_choice") {
        let Some(names) = &names else {
            return Err(AnthropicError::invalid(
                "tool_choice may only be specified while providing tools.",
            ));
        };
        match choice.get("type").and_then(Value::as_str) {
            Some("auto" | "any" | "none") => {}
            Some("tool") => {
                let name = choice.get("name").and_then(Value::as_str).unwrap_or("");
                if !names.iter().any(|n| n == name) {
                    return Err(AnthropicError::invalid(format!(
                        "Tool '{name}' not found in provided tools"
                    )));
                }
            }
            _ => return Err(field_error(
                "tool_choice",
                "Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'",
            )),
        }
    }
    Ok(names)
}

/// `messages`; returns whether any `tool_use` or `tool_result` block appears.
fn validate_messages(body: &Map<String, Value>, cached: &mut bool) -> Result<bool, AnthropicError> {
    let messages = match body.get("messages") {
        None => return Err(field_error("messages", "Field required")),
        Some(Value::Array(m)) if m.is_empty() => {
            return Err(field_error("messages", "at least one message is required"))
        }
        Some(Value::Array(m)) => m,
        Some(_) => return Err(field_error("messages", "Input should be a valid list")),
    };
    let mut uses_tools = false;
    let mut previous_tool_uses: Vec<String> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str);
        if !matches!(role, Some("user" | "assistant")) {
            let hint = if role == Some("system") {
                ". The Messages API accepts a top-level `system` parameter, not \"system\" as an input message role."
            } else {
                ""
            };
            return Err(AnthropicError::invalid(format!(
                "messages.{i}.role: Input should be 'user' or 'assistant'{hint}"
            )));
        }
        let mut tool_uses = Vec::new();
        match message.get("content") {
            Some(Value::String(text)) if text.is_empty() && i + 1 < messages.len() => {
                return Err(AnthropicError::invalid(format!(
                    "messages.{i}: all messages must have non-empty content except for the optional final assistant message"
                )))
            }
            Some(Value::String(_)) => {}
            Some(Value::Array(blocks)) => {
                for (j, block) in blocks.iter().enumerate() {
                    let at = format!("messages.{i}.content.{j}");
                    *cached |= block.get("cache_control").is_some();
                    match block.get("type").and_then(Value::as_str) {
                        Some("text") => {
                            if block
                                .get("text")
                                .and_then(Value::as_str)
                                .is_none_or(str::is_empty)
                            {
                                return Err(AnthropicError::invalid(
                                    "messages: text content blocks must be non-empty",
                                ));
                            }
                        }
                        Some("image") => validate_source(block, &at, true)?,
                        Some("document") => validate_source(block, &at, false)?,
                        Some("thinking" | "redacted_thinking") if role == Some("assistant") => {}
                        Some("tool_use") if role == Some("assistant") => {
                            uses_tools = true;
                            if !block.get("input").is_some_and(Value::is_object) {
                                return Err(field_error(
                                    &format!("{at}.tool_use.input"),
                                    "Input should be a valid dictionary",
                                ));
                            }
                            let id = block.get("id").and_then(Value::as_str).unwrap_or("");
                            if id.is_empty() {
                                return Err(field_error(&format!("{at}.tool_use.id"), "Field required"));
                            }
                            tool_uses.push(id.to_owned());
                        }
                        Some("tool_result") if role == Some("user") => {
                            uses_tools = true;
                            let id = block
                                .get("tool_use_id")
                                .and_then(Value::as_str)
                                .unwrap_or("");
                            if !previous_tool_uses.iter().any(|u| u == id) {
                                return Err(AnthropicError::invalid(format!(
                                    "{at}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                                )));
                            }
                        }
                        other => {
                            return Err(field_error(
                                &format!("{at}.type"),
                                &format!("unexpected content block type {:?} for role {:?}", other.unwrap_or(""), role.unwrap_or("")),
                            ))
                        }
                    }
                }
            }
            _ => {
                return Err(field_error(
                    &format!("messages.{i}.content"),
                    "Input should be a valid string or list",
                ))
            }
        }
        previous_tool_uses = tool_uses;
    }
    Ok(uses_tools)
}

fn validate_source(block: &Value, at: &str, image: bool) -> Result<(), AnthropicError> {
    let source = block.get("source").unwrap_or(&Value::Null);
    let kind = if image { "image" } else { "document" };
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media_type = source
                .get("media_type")
                .and_then(Value::as_str)
                .unwrap_or("");
            let allowed: &[&str] = if image {
                &["image/jpeg", "image/png", "image/gif", "image/webp"]
            } else {
                &["application/pdf"]
            };
            if !allowed.contains(&media_type) {
                return Err(field_error(
                    &format!("{at}.{kind}.source.base64.media_type"),
                    &format!("Input should be {}", allowed.join(", ")),
                ));
            }
            if source
                .get("data")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(field_error(
                    &format!("{at}.{kind}.source.base64.data"),
                    "Field required",
                ));
            }
            Ok(())
        }
        Some("url") => match source.get("url").and_then(Value::as_str) {
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => Ok(()),
            _ => Err(field_error(
                &format!("{at}.{kind}.source.url.url"),
                "Field required",
            )),
        },
        Some("text" | "file" | "content") if !image => Ok(()),
        _ => Err(field_error(
            &format!("{at}.{kind}.source"),
            "Input tag does not match any of the expected tags: 'base64', 'url'",
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------------

enum Body {
    Text(String),
    Tool {
        id: String,
        name: String,
        input: String,
    },
    /// `stop_reason: "refusal"` and no content.
    Refusal,
}

struct Reply {
    thinking: Option<String>,
    body: Body,
    stop_reason: &'static str,
    stop_sequence: Option<String>,
}

impl Reply {
    fn for_request(
        body: &Map<String, Value>,
        request: &Validated,
        failure: Failure,
    ) -> Result<Self, AnthropicError> {
        let thinking = (body
            .get("thinking")
            .and_then(|t| t.get("type"))
            .and_then(Value::as_str)
            == Some("enabled"))
        .then(|| THINKING_TEXT.to_owned());
        if failure == Failure::Refusal {
            return Ok(Self {
                thinking: None,
                body: Body::Refusal,
                stop_reason: "refusal",
                stop_sequence: None,
            });
        }
        let text = match body.get(REPLY_FIELD).filter(|v| !v.is_null()) {
            None => DEFAULT_REPLY,
            Some(Value::String(text)) => text.as_str(),
            Some(_) => {
                return Err(AnthropicError::from(ApiError::invalid_type(
                    REPLY_FIELD,
                    "a string",
                )))
            }
        };
        if let Some(name) = forced_tool(body) {
            // The tool input: `mock_reply` when it is a JSON object, else `{}`.
            let input = serde_json::from_str::<Value>(text)
                .ok()
                .filter(Value::is_object)
                .map_or_else(|| "{}".to_owned(), |v| v.to_string());
            return Ok(Self {
                thinking,
                body: Body::Tool {
                    id: random_id("toolu_01", 22),
                    name,
                    input,
                },
                stop_reason: "tool_use",
                stop_sequence: None,
            });
        }
        let mut reply = text.to_owned();
        let mut stop_reason = "end_turn";
        let mut stop_sequence = None;
        if let Some(Value::Array(stops)) = body.get("stop_sequences") {
            let first = stops
                .iter()
                .filter_map(Value::as_str)
                .filter_map(|s| reply.find(s).map(|at| (at, s)))
                .min_by_key(|(at, _)| *at);
            if let Some((at, s)) = first {
                reply.truncate(at);
                stop_reason = "stop_sequence";
                stop_sequence = Some(s.to_owned());
            }
        }
        if let Some(truncated) = truncate_words(&reply, request.max_tokens) {
            reply = truncated.to_owned();
            stop_reason = "max_tokens";
            stop_sequence = None;
        }
        Ok(Self {
            thinking,
            body: Body::Text(reply),
            stop_reason,
            stop_sequence,
        })
    }

    fn output_tokens(&self) -> u64 {
        let thinking = self.thinking.as_deref().map_or(0, count_words);
        thinking
            + match &self.body {
                Body::Text(text) => count_words(text),
                Body::Tool { name, input, .. } => {
                    tokens_for_chars(name.chars().count() + input.chars().count())
                }
                Body::Refusal => 0,
            }
    }

    fn content_blocks(&self) -> Vec<Value> {
        let mut blocks = Vec::new();
        if let Some(thinking) = &self.thinking {
            blocks
                .push(json!({"type": "thinking", "thinking": thinking, "signature": signature()}));
        }
        match &self.body {
            Body::Text(text) => blocks.push(json!({"type": "text", "text": text})),
            Body::Tool { id, name, input } => {
                let input: Value = serde_json::from_str(input).unwrap_or_else(|_| json!({}));
                blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
            }
            Body::Refusal => {}
        }
        blocks
    }
}

fn signature() -> String {
    random_id("Eq", 40)
}

/// The tool the request forces: `tool_choice` `{"type":"tool","name"}`, or `{"type":"any"}` (the
/// first tool).
fn forced_tool(body: &Map<String, Value>) -> Option<String> {
    let choice = body.get("tool_choice")?;
    match choice.get("type").and_then(Value::as_str)? {
        "tool" => choice
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned),
        "any" => body
            .get("tools")?
            .as_array()?
            .first()?
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

/// Token counts: `input_tokens` is what the prompt costs beyond cache reads and writes. With
/// `cache_control` anywhere, half the prompt is reported read from the cache and a quarter written
/// to it, so clients can check how they add the counts up.
struct TokenUsage {
    input: u64,
    cache_read: u64,
    cache_creation: u64,
    output: u64,
}

impl TokenUsage {
    fn new(body: &Map<String, Value>, request: &Validated, reply: &Reply) -> Self {
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let system_chars = match body.get("system") {
            Some(Value::String(s)) => s.chars().count(),
            Some(Value::Array(blocks)) => blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .map(|t| t.chars().count())
                .sum(),
            _ => 0,
        };
        let total = chat_prompt_tokens(messages) + (system_chars as u64).div_ceil(4);
        let (cache_read, cache_creation) = if request.cached {
            (total / 2, total / 4)
        } else {
            (0, 0)
        };
        Self {
            input: total - cache_read - cache_creation,
            cache_read,
            cache_creation,
            output: reply.output_tokens(),
        }
    }

    fn json(&self, output_tokens: u64) -> Value {
        json!({
            "input_tokens": self.input,
            "cache_creation_input_tokens": self.cache_creation,
            "cache_read_input_tokens": self.cache_read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_creation,
                "ephemeral_1h_input_tokens": 0,
            },
            "output_tokens": output_tokens,
            "service_tier": "standard",
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------------------------

/// One named SSE event, or the end of a cut stream.
enum Step {
    Event(&'static str, Value),
    Abort,
}

fn stream_events(
    id: &str,
    model: &str,
    reply: &Reply,
    usage: &TokenUsage,
    state: &MockState,
    failure: Failure,
) -> Vec<Step> {
    let mut steps = vec![Step::Event(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": usage.json(1),
        }}),
    )];
    let mut deltas_sent = 0;
    let mut index = 0;
    let mut pinged = false;
    let mut block = |steps: &mut Vec<Step>, start: Value, deltas: Vec<Value>| {
        steps.push(Step::Event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": start}),
        ));
        if !pinged {
            pinged = true;
            steps.push(Step::Event("ping", json!({"type": "ping"})));
        }
        for delta in deltas {
            if failure == Failure::Cut && deltas_sent == CUT_AFTER_PARTS {
                steps.push(Step::Abort);
                return false;
            }
            steps.push(Step::Event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": delta}),
            ));
            deltas_sent += 1;
            if failure == Failure::StreamError {
                steps.push(Step::Event(
                    "error",
                    json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                ));
                return false;
            }
        }
        steps.push(Step::Event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
        true
    };
    if let Some(thinking) = &reply.thinking {
        let mut deltas: Vec<Value> = split_chunks(thinking, state.stream_chunks)
            .into_iter()
            .map(|part| json!({"type": "thinking_delta", "thinking": part}))
            .collect();
        deltas.push(json!({"type": "signature_delta", "signature": signature()}));
        if !block(
            &mut steps,
            json!({"type": "thinking", "thinking": "", "signature": ""}),
            deltas,
        ) {
            return steps;
        }
    }
    let complete = match &reply.body {
        Body::Text(text) => block(
            &mut steps,
            json!({"type": "text", "text": ""}),
            split_chunks(text, state.stream_chunks)
                .into_iter()
                .map(|part| json!({"type": "text_delta", "text": part}))
                .collect(),
        ),
        Body::Tool { id, name, input } => {
            let mut deltas = vec![json!({"type": "input_json_delta", "partial_json": ""})];
            deltas.extend(
                split_json(input, state.stream_chunks)
                    .into_iter()
                    .map(|part| json!({"type": "input_json_delta", "partial_json": part})),
            );
            block(
                &mut steps,
                json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                deltas,
            )
        }
        Body::Refusal => true,
    };
    if !complete {
        return steps;
    }
    steps.push(Step::Event(
        "message_delta",
        json!({"type": "message_delta",
               "delta": {"stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence},
               "usage": {"output_tokens": usage.output}}),
    ));
    steps.push(Step::Event("message_stop", json!({"type": "message_stop"})));
    steps
}

/// Splits a JSON text into at most `parts` pieces on character boundaries.
fn split_json(text: &str, parts: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(parts.max(1)).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

fn sse(steps: Vec<Step>, delay: std::time::Duration) -> HttpResponse {
    let body = stream::iter(steps.into_iter().enumerate()).then(move |(i, step)| async move {
        if i > 0 {
            pause(delay).await;
        }
        match step {
            Step::Event(name, data) => {
                let mut frame = format!("event: {name}\ndata: ").into_bytes();
                serde_json::to_writer(&mut frame, &data)?;
                frame.extend_from_slice(b"\n\n");
                Ok(Bytes::from(frame))
            }
            Step::Abort => {
                flush_point().await;
                Err(super::cut_error())
            }
        }
    });
    success()
        .content_type("text/event-stream; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(body)
}

#[cfg(test)]
mod tests {
    use actix_web::{
        test::{self, TestRequest},
        App,
    };

    use super::super::MockProviderArgs;
    use super::*;

    macro_rules! app {
        ($args:expr) => {{
            let state = web::Data::new(MockState::new(&$args));
            let cfg_state = state.clone();
            test::init_service(
                App::new().configure(move |cfg| super::super::configure(cfg, cfg_state)),
            )
            .await
        }};
    }

    fn post(body: Value) -> TestRequest {
        TestRequest::post()
            .uri("/v1/messages")
            .insert_header(("x-api-key", "sk-ant-test"))
            .insert_header(("anthropic-version", "2023-06-01"))
            .set_json(body)
    }

    fn basic() -> Value {
        json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "Hello"}]})
    }

    #[actix_web::test]
    async fn message_shape_and_headers() {
        let app = app!(MockProviderArgs::default());
        let resp = test::call_service(&app, post(basic()).to_request()).await;
        assert_eq!(resp.status(), 200);
        assert!(resp
            .headers()
            .get("request-id")
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("req_")));
        let v: Value = test::read_body_json(resp).await;
        assert_eq!(v["type"], "message");
        assert_eq!(v["role"], "assistant");
        assert_eq!(v["model"], "claude-sonnet-4-5");
        assert_eq!(v["content"][0]["type"], "text");
        assert_eq!(v["content"][0]["text"], DEFAULT_REPLY);
        assert_eq!(v["stop_reason"], "end_turn");
        assert!(v["usage"]["input_tokens"].as_u64().unwrap_or(0) > 0);
        assert_eq!(v["usage"]["cache_read_input_tokens"], 0);
    }

    #[actix_web::test]
    async fn headers_and_schema_are_enforced() {
        let app = app!(MockProviderArgs {
            api_key: Some("sk-ant-test".into()),
            ..MockProviderArgs::default()
        });
        let no_key = TestRequest::post()
            .uri("/v1/messages")
            .insert_header(("anthropic-version", "2023-06-01"))
            .set_json(basic())
            .to_request();
        let resp = test::call_service(&app, no_key).await;
        assert_eq!(resp.status(), 401);
        let v: Value = test::read_body_json(resp).await;
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "authentication_error");
        assert!(v["request_id"].is_string());
        let bearer = TestRequest::post()
            .uri("/v1/messages")
            .insert_header(("authorization", "Bearer sk-ant-test"))
            .insert_header(("anthropic-version", "2023-06-01"))
            .set_json(basic())
            .to_request();
        assert_eq!(test::call_service(&app, bearer).await.status(), 401);
        let no_version = TestRequest::post()
            .uri("/v1/messages")
            .insert_header(("x-api-key", "sk-ant-test"))
            .set_json(basic())
            .to_request();
        let resp = test::call_service(&app, no_version).await;
        assert_eq!(resp.status(), 400);
        let v: Value = test::read_body_json(resp).await;
        assert!(v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("anthropic-version"));

        let mut bodies = Vec::new();
        let mut b = basic();
        b.as_object_mut().unwrap().remove("max_tokens");
        bodies.push((b, "max_tokens: Field required"));
        let mut b = basic();
        b["n"] = json!(1);
        bodies.push((b, "n: Extra inputs are not permitted"));
        let mut b = basic();
        b["messages"] =
            json!([{"role": "system", "content": "x"}, {"role": "user", "content": "y"}]);
        bodies.push((b, "top-level `system`"));
        let mut b = basic();
        b["messages"] = json!([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x"}]}]);
        b["tools"] = json!([{"name": "f", "input_schema": {"type": "object"}}]);
        bodies.push((b, "unexpected `tool_use_id`"));
        let mut b = basic();
        b["messages"] = json!([
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]}
        ]);
        bodies.push((b, "must define tools"));
        let mut b = basic();
        b["temperature"] = json!(1.5);
        bodies.push((b, "temperature"));
        for (body, expected) in bodies {
            let resp = test::call_service(&app, post(body).to_request()).await;
            assert_eq!(resp.status(), 400, "{expected}");
            let v: Value = test::read_body_json(resp).await;
            assert_eq!(v["error"]["type"], "invalid_request_error");
            let message = v["error"]["message"].as_str().unwrap_or("");
            assert!(message.contains(expected), "{message} / {expected}");
        }
    }

    #[actix_web::test]
    async fn injected_failures_in_anthropic_shape() {
        let app = app!(MockProviderArgs::default());
        for (mode, status, kind) in [
            ("529", 529, "overloaded_error"),
            ("429", 429, "rate_limit_error"),
            ("context_length", 400, "invalid_request_error"),
            ("500", 500, "api_error"),
            ("413", 413, "request_too_large"),
        ] {
            let mut b = basic();
            b["mock_fail"] = json!(mode);
            let resp = test::call_service(&app, post(b).to_request()).await;
            assert_eq!(resp.status().as_u16(), status, "{mode}");
            if status == 429 {
                assert!(resp.headers().contains_key("retry-after"));
            }
            let v: Value = test::read_body_json(resp).await;
            assert_eq!(v["error"]["type"], kind, "{mode}");
        }
        let mut b = basic();
        b["mock_fail"] = json!("content_policy");
        let v: Value =
            test::read_body_json(test::call_service(&app, post(b).to_request()).await).await;
        assert_eq!(v["stop_reason"], "refusal");
    }

    #[actix_web::test]
    async fn tool_use_thinking_and_cache_usage() {
        let app = app!(MockProviderArgs::default());
        let mut b = basic();
        b["max_tokens"] = json!(3000);
        b["system"] = json!([{"type": "text", "text": "Be brief and use the tool.", "cache_control": {"type": "ephemeral"}}]);
        b["tools"] = json!([{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
        b["tool_choice"] = json!({"type": "any"});
        b["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
        b["mock_reply"] = json!("{\"city\":\"Paris\"}");
        let v: Value =
            test::read_body_json(test::call_service(&app, post(b).to_request()).await).await;
        assert_eq!(v["content"][0]["type"], "thinking");
        assert_eq!(v["content"][1]["type"], "tool_use");
        assert_eq!(v["content"][1]["name"], "get_weather");
        assert_eq!(v["content"][1]["input"], json!({"city": "Paris"}));
        assert_eq!(v["stop_reason"], "tool_use");
        assert!(v["usage"]["cache_read_input_tokens"].as_u64().unwrap_or(0) > 0);
    }

    #[actix_web::test]
    async fn stream_events_in_order_and_stream_error() {
        let app = app!(MockProviderArgs {
            stream_chunks: 3,
            ..MockProviderArgs::default()
        });
        let mut b = basic();
        b["stream"] = json!(true);
        let resp = test::call_service(&app, post(b.clone()).to_request()).await;
        assert_eq!(resp.status(), 200);
        let text = String::from_utf8(test::read_body(resp).await.to_vec()).unwrap();
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert!(!text.contains("[DONE]"));
        b["mock_fail"] = json!("stream_error");
        let resp = test::call_service(&app, post(b).to_request()).await;
        assert_eq!(resp.status(), 200);
        let text = String::from_utf8(test::read_body(resp).await.to_vec()).unwrap();
        let error = text
            .split("\n\n")
            .find(|e| e.starts_with("event: error\n"))
            .expect("an error event");
        let data: Value =
            serde_json::from_str(error.trim_start_matches("event: error\ndata: ")).expect("json");
        assert_eq!(data["type"], "error");
        assert_eq!(data["error"]["type"], "overloaded_error");
        assert!(
            text.contains("content_block_delta"),
            "the stream started first"
        );
        assert!(!text.contains("message_stop"));
    }
}
