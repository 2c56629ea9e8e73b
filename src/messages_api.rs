//! Anthropic's Messages API (`POST /v1/messages`, `/v1/messages/count_tokens`) on top of the
//! gateway's OpenAI-shaped pipeline. Pure translation, no I/O:
//!
//! * [`request_to_openai`]: an Anthropic request body → the OpenAI chat body the pipeline takes
//!   (system, text/image/document/tool_use/tool_result blocks, tools, tool_choice, stop sequences,
//!   sampling parameters, `metadata.user_id` → `user`, `stream`);
//! * [`response_from_openai`]: an OpenAI `chat.completion` → an Anthropic `message`;
//! * [`AnthropicStream`]: OpenAI `chat.completion.chunk` SSE → Anthropic SSE events
//!   (`message_start`, `content_block_*`, `message_delta`, `message_stop`), incrementally;
//! * [`error_from_openai`]: the gateway's OpenAI error envelope → Anthropic's
//!   `{"type":"error","error":{"type","message"}}`.
//!
//! The handler (`src/http/messages.rs`) runs the pipeline between the two halves, so every
//! provider the gateway routes to can be called in Anthropic's format.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use serde_json::{json, Map, Value};

use crate::error::GatewayError;
use crate::outcome::StreamItem;

/// Anthropic-only top-level fields with no OpenAI counterpart; removed rather than forwarded.
const ANTHROPIC_ONLY_KEYS: &[&str] = &[
    "service_tier",
    "container",
    "mcp_servers",
    "context_management",
    "betas",
    "anthropic_version",
    "anthropic_beta",
];

fn invalid(param: &str, message: impl Into<String>) -> GatewayError {
    GatewayError::bad_param(param, message)
}

/// Translate an Anthropic Messages request into the OpenAI chat body. Fields the translation does
/// not know (LiteLLM's `fallbacks`, `num_retries`, `mock_response`, `top_k`…) pass through.
pub fn request_to_openai(mut body: Map<String, Value>) -> Result<Map<String, Value>, GatewayError> {
    let mut out = Map::new();
    let mut messages = Vec::new();

    if let Some(system) = body.remove("system") {
        let text = system_text(&system)?;
        if !text.is_empty() {
            messages.push(json!({"role": "system", "content": text}));
        }
    }
    match body.remove("messages") {
        Some(Value::Array(items)) => {
            if items.len() > crate::llm::bounds::MAX_MESSAGES {
                return Err(invalid(
                    "messages",
                    format!(
                        "messages: List should have at most {} items",
                        crate::llm::bounds::MAX_MESSAGES
                    ),
                ));
            }
            // Each message is dropped once translated: never two copies of the conversation.
            for (i, m) in items.into_iter().enumerate() {
                translate_message(&m, i, &mut messages)?;
            }
        }
        Some(_) => {
            return Err(invalid(
                "messages",
                "messages: Input should be a valid list",
            ))
        }
        None => return Err(invalid("messages", "messages: Field required")),
    }

    let mut has_tools = false;
    if let Some(tools) = body.remove("tools").filter(|v| !v.is_null()) {
        let Value::Array(tools) = tools else {
            return Err(invalid("tools", "tools: Input should be a valid list"));
        };
        let mut translated = Vec::with_capacity(tools.len());
        for (i, tool) in tools.iter().enumerate() {
            if let Some(t) = translate_tool(tool, i)? {
                translated.push(t);
            }
        }
        if !translated.is_empty() {
            has_tools = true;
            out.insert("tools".into(), Value::Array(translated));
        }
    }
    if let Some(choice) = body.remove("tool_choice").filter(|v| !v.is_null()) {
        if has_tools {
            let (choice, parallel) = translate_tool_choice(&choice)?;
            out.insert("tool_choice".into(), choice);
            if let Some(p) = parallel {
                out.insert("parallel_tool_calls".into(), Value::Bool(p));
            }
        }
    }
    if let Some(stop) = body.remove("stop_sequences").filter(|v| !v.is_null()) {
        match stop {
            Value::Array(s) if s.is_empty() => {}
            Value::Array(s) if s.iter().all(Value::is_string) => {
                out.insert("stop".into(), Value::Array(s));
            }
            _ => {
                return Err(invalid(
                    "stop_sequences",
                    "stop_sequences: Input should be a list of strings",
                ))
            }
        }
    }
    // `metadata.user_id` is the end user; the rest of `metadata` stays as the gateway's metadata
    // (logged, never forwarded).
    if let Some(Value::Object(meta)) = body.get("metadata") {
        if let Some(Value::String(user)) = meta.get("user_id") {
            out.insert("user".into(), Value::String(user.clone()));
        }
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        // The re-encoded stream needs the final usage for `message_delta`.
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    for key in ANTHROPIC_ONLY_KEYS {
        body.remove(*key);
    }
    // model, max_tokens, temperature, top_p, top_k, stream, metadata, thinking and anything else.
    for (k, v) in body {
        out.entry(k).or_insert(v);
    }
    out.insert("messages".into(), Value::Array(messages));
    Ok(out)
}

fn system_text(system: &Value) -> Result<String, GatewayError> {
    match system {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (i, b) in blocks.iter().enumerate() {
                match (b.get("type").and_then(Value::as_str), b.get("text")) {
                    (Some("text"), Some(Value::String(t))) => parts.push(t.as_str()),
                    _ => {
                        return Err(invalid(
                            "system",
                            format!("system.{i}: only text blocks are supported in system"),
                        ))
                    }
                }
            }
            Ok(parts.join("\n"))
        }
        _ => Err(invalid(
            "system",
            "system: Input should be a string or a list of text blocks",
        )),
    }
}

fn block_type(block: &Value) -> &str {
    block.get("type").and_then(Value::as_str).unwrap_or("")
}

/// An Anthropic `source` (base64 or url) as the URL OpenAI's `image_url` takes.
fn source_url(source: Option<&Value>, at: &str) -> Result<String, GatewayError> {
    let source = source.ok_or_else(|| invalid(at, format!("{at}.source: Field required")))?;
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media = source.get("media_type").and_then(Value::as_str);
            let data = source.get("data").and_then(Value::as_str);
            match (media, data) {
                (Some(m), Some(d)) => Ok(format!("data:{m};base64,{d}")),
                _ => Err(invalid(
                    at,
                    format!("{at}.source: base64 sources need media_type and data"),
                )),
            }
        }
        Some("url") => source
            .get("url")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| invalid(at, format!("{at}.source.url: Field required"))),
        other => Err(invalid(
            at,
            format!(
                "{at}.source: source type '{}' is not supported by this gateway (use base64 or url)",
                other.unwrap_or("")
            ),
        )),
    }
}

fn image_part(block: &Value, at: &str) -> Result<Value, GatewayError> {
    let url = source_url(block.get("source"), at)?;
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// A `document` block: plain-text sources become text, base64 PDFs an OpenAI `file` part.
fn document_part(block: &Value, at: &str) -> Result<Value, GatewayError> {
    let source = block.get("source");
    match source.and_then(|s| s.get("type")).and_then(Value::as_str) {
        Some("text") => {
            let text = source
                .and_then(|s| s.get("data"))
                .and_then(Value::as_str)
                .unwrap_or("");
            Ok(json!({"type": "text", "text": text}))
        }
        Some("base64") => {
            let url = source_url(source, at)?;
            let mut file = Map::new();
            file.insert("file_data".into(), Value::String(url));
            if let Some(title) = block.get("title").and_then(Value::as_str) {
                file.insert("filename".into(), Value::String(title.to_string()));
            }
            Ok(json!({"type": "file", "file": file}))
        }
        other => Err(invalid(
            at,
            format!(
                "{at}.source: document source type '{}' is not supported by this gateway (use base64 or text)",
                other.unwrap_or("")
            ),
        )),
    }
}

/// A list of OpenAI content parts: one text part becomes a plain string.
fn content_value(parts: Vec<Value>) -> Value {
    if let [only] = parts.as_slice() {
        if only.get("type").and_then(Value::as_str) == Some("text") {
            if let Some(t) = only.get("text") {
                return t.clone();
            }
        }
    }
    Value::Array(parts)
}

fn translate_message(m: &Value, i: usize, out: &mut Vec<Value>) -> Result<(), GatewayError> {
    let at = format!("messages.{i}");
    let role = m.get("role").and_then(Value::as_str).unwrap_or("");
    if role != "user" && role != "assistant" {
        return Err(invalid(
            &at,
            format!("{at}.role: Input should be 'user' or 'assistant'"),
        ));
    }
    let blocks = match m.get("content") {
        Some(Value::String(s)) => {
            out.push(json!({"role": role, "content": s}));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        _ => {
            return Err(invalid(
                &at,
                format!("{at}.content: Input should be a string or a list of content blocks"),
            ))
        }
    };
    if role == "assistant" {
        out.push(assistant_message(blocks, &at)?);
        return Ok(());
    }

    // User: tool results become `tool` messages, which must directly follow the assistant's
    // tool calls; the other blocks form one user message after them.
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("{at}.content.{j}");
        match block_type(block) {
            "text" => parts.push(json!({"type": "text", "text": block.get("text").cloned().unwrap_or(json!(""))})),
            "image" => parts.push(image_part(block, &at)?),
            "document" => parts.push(document_part(block, &at)?),
            "tool_result" => {
                let id = block
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(&at, format!("{at}.tool_use_id: Field required")))?;
                let (text, images) = tool_result_content(block.get("content"), &at)?;
                out.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
                // OpenAI tool messages carry text only: images go to the user message after.
                parts.extend(images);
            }
            "thinking" | "redacted_thinking" => {}
            other => {
                return Err(invalid(
                    &at,
                    format!("{at}: content block type '{other}' is not supported in user messages by this gateway"),
                ))
            }
        }
    }
    if !parts.is_empty() {
        out.push(json!({"role": "user", "content": content_value(parts)}));
    }
    Ok(())
}

fn tool_result_content(
    content: Option<&Value>,
    at: &str,
) -> Result<(String, Vec<Value>), GatewayError> {
    match content {
        None | Some(Value::Null) => Ok((String::new(), Vec::new())),
        Some(Value::String(s)) => Ok((s.clone(), Vec::new())),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::new();
            let mut images = Vec::new();
            for (k, b) in blocks.iter().enumerate() {
                let at = format!("{at}.content.{k}");
                match block_type(b) {
                    "text" => texts.push(b.get("text").and_then(Value::as_str).unwrap_or("")),
                    "image" => images.push(image_part(b, &at)?),
                    "document" => images.push(document_part(b, &at)?),
                    other => {
                        return Err(invalid(
                            &at,
                            format!("{at}: content block type '{other}' is not supported in tool_result by this gateway"),
                        ))
                    }
                }
            }
            Ok((texts.join("\n"), images))
        }
        Some(_) => Err(invalid(
            at,
            format!("{at}.content: Input should be a string or a list of content blocks"),
        )),
    }
}

fn assistant_message(blocks: &[Value], at: &str) -> Result<Value, GatewayError> {
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("{at}.content.{j}");
        match block_type(block) {
            "text" => texts.push(block.get("text").and_then(Value::as_str).unwrap_or("")),
            "tool_use" => {
                let id = block.get("id").and_then(Value::as_str);
                let name = block.get("name").and_then(Value::as_str);
                let (Some(id), Some(name)) = (id, name) else {
                    return Err(invalid(&at, format!("{at}: tool_use needs id and name")));
                };
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({"id": id, "type": "function",
                                  "function": {"name": name, "arguments": input.to_string()}}));
            }
            // Thinking is the model's own; it is not sent back to other providers.
            "thinking" | "redacted_thinking" => {}
            other => {
                return Err(invalid(
                    &at,
                    format!("{at}: content block type '{other}' is not supported in assistant messages by this gateway"),
                ))
            }
        }
    }
    let mut msg = Map::new();
    msg.insert("role".into(), json!("assistant"));
    msg.insert(
        "content".into(),
        if texts.is_empty() && !calls.is_empty() {
            Value::Null
        } else {
            Value::String(texts.join("\n"))
        },
    );
    if !calls.is_empty() {
        msg.insert("tool_calls".into(), Value::Array(calls));
    }
    Ok(Value::Object(msg))
}

/// A client tool (`name`, `description`, `input_schema`) as an OpenAI function. Anthropic's own
/// server and built-in tools (`web_search_…`, `bash_…`, `text_editor_…`) have no schema another
/// provider could use: they are left out.
fn translate_tool(tool: &Value, i: usize) -> Result<Option<Value>, GatewayError> {
    let at = format!("tools.{i}");
    let kind = tool.get("type").and_then(Value::as_str);
    let schema = tool.get("input_schema");
    if schema.is_none() && kind.is_some_and(|k| k != "custom") {
        tracing::debug!(
            tool_type = kind,
            "Anthropic built-in tool left out of the request"
        );
        return Ok(None);
    }
    let name = tool
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(&at, format!("{at}.name: Field required")))?;
    let mut function = Map::new();
    function.insert("name".into(), json!(name));
    if let Some(d) = tool.get("description").filter(|d| d.is_string()) {
        function.insert("description".into(), d.clone());
    }
    function.insert(
        "parameters".into(),
        schema
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
    );
    Ok(Some(json!({"type": "function", "function": function})))
}

/// Anthropic `tool_choice` → OpenAI `tool_choice`, and `parallel_tool_calls` when
/// `disable_parallel_tool_use` is set.
fn translate_tool_choice(choice: &Value) -> Result<(Value, Option<bool>), GatewayError> {
    let parallel = choice
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        .map(|disable| !disable);
    let translated = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name = choice.get("name").and_then(Value::as_str).ok_or_else(|| {
                invalid(
                    "tool_choice",
                    "tool_choice.name: Field required for type 'tool'",
                )
            })?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => {
            return Err(invalid(
                "tool_choice",
                "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'",
            ))
        }
    };
    Ok((translated, parallel))
}

/// `msg_…` from the provider's id (`chatcmpl-abc` → `msg_abc`), or a new one.
pub fn message_id(openai_id: Option<&str>) -> String {
    match openai_id.filter(|s| !s.is_empty()) {
        Some(id) if id.starts_with("msg_") => id.to_string(),
        Some(id) => format!(
            "msg_{}",
            id.strip_prefix("chatcmpl-").unwrap_or(id).replace('-', "")
        ),
        None => format!("msg_{}", uuid::Uuid::new_v4().simple()),
    }
}

/// OpenAI `finish_reason` → Anthropic `stop_reason` and `stop_sequence`. `matched_stop` is the
/// stop string a provider reports having hit (vLLM's `choices[].stop_reason`).
fn stop_reason(
    finish: Option<&str>,
    tool_calls: bool,
    matched_stop: Option<&str>,
) -> (&'static str, Value) {
    match finish {
        Some("length") => ("max_tokens", Value::Null),
        Some("tool_calls") | Some("function_call") => ("tool_use", Value::Null),
        Some("content_filter") => ("refusal", Value::Null),
        _ if tool_calls => ("tool_use", Value::Null),
        _ => match matched_stop {
            Some(s) => ("stop_sequence", Value::String(s.to_string())),
            None => ("end_turn", Value::Null),
        },
    }
}

/// OpenAI usage → Anthropic usage. OpenAI's `prompt_tokens` includes cached tokens; Anthropic's
/// `input_tokens` does not.
pub fn usage_from_openai(usage: Option<&Value>) -> Value {
    let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    let Some(u) = usage.filter(|u| u.is_object()) else {
        return json!({"input_tokens": 0, "output_tokens": 0});
    };
    let cached = n(u
        .get("prompt_tokens_details")
        .and_then(|d| d.get("cached_tokens"))
        .or_else(|| u.get("cache_read_input_tokens")));
    let created = n(u.get("cache_creation_input_tokens"));
    let prompt = n(u.get("prompt_tokens"));
    json!({
        "input_tokens": prompt.saturating_sub(cached + created),
        "output_tokens": n(u.get("completion_tokens")),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": created,
    })
}

/// A tool call's `arguments` string as the `input` object (`{}` when empty; the raw string when
/// it is not JSON, so nothing is lost).
fn tool_input(arguments: Option<&Value>) -> Value {
    match arguments {
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => {
            serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
        }
        Some(v @ Value::Object(_)) => v.clone(),
        _ => json!({}),
    }
}

/// An OpenAI `chat.completion` as an Anthropic `message` (the first choice).
pub fn response_from_openai(resp: &Value, requested_model: &str) -> Value {
    let choice = resp.get("choices").and_then(|c| c.get(0));
    let message = choice.and_then(|c| c.get("message"));
    let mut content = Vec::new();
    if let Some(reasoning) = message
        .and_then(|m| m.get("reasoning_content"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        content.push(json!({"type": "thinking", "thinking": reasoning, "signature": ""}));
    }
    if let Some(text) = message
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        content.push(json!({"type": "text", "text": text}));
    }
    let calls = message
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for call in calls {
        let function = call.get("function");
        content.push(json!({
            "type": "tool_use",
            "id": call.get("id").and_then(Value::as_str).map_or_else(tool_use_id, str::to_string),
            "name": function.and_then(|f| f.get("name")).cloned().unwrap_or(json!("")),
            "input": tool_input(function.and_then(|f| f.get("arguments"))),
        }));
    }
    let (reason, sequence) = stop_reason(
        choice
            .and_then(|c| c.get("finish_reason"))
            .and_then(Value::as_str),
        !calls.is_empty(),
        choice
            .and_then(|c| c.get("stop_reason"))
            .and_then(Value::as_str),
    );
    json!({
        "id": message_id(resp.get("id").and_then(Value::as_str)),
        "type": "message",
        "role": "assistant",
        "model": resp.get("model").and_then(Value::as_str).unwrap_or(requested_model),
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage_from_openai(resp.get("usage")),
    })
}

fn tool_use_id() -> String {
    format!("toolu_{}", uuid::Uuid::new_v4().simple())
}

/// Anthropic's error `type` for an HTTP status (the adapter's wire table,
/// [`crate::providers::anthropic::error_type_for_status`]).
pub fn error_type(status: u16) -> &'static str {
    crate::providers::anthropic::error_type_for_status(status)
}

/// Anthropic's error body.
pub fn error_body(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// The gateway's OpenAI error envelope (any body) as Anthropic's error body, by status.
pub fn error_from_openai(status: u16, body: &[u8]) -> Value {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(|e| e.get("message").or(Some(e)))
        .and_then(|m| m.as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    let message = if message.is_empty() {
        format!("request failed with status {status}")
    } else {
        message
    };
    error_body(error_type(status), &message)
}

/// Anthropic's error type for an OpenAI error `type` (mid-stream errors carry no status).
fn error_type_of_openai(kind: Option<&str>) -> &'static str {
    match kind {
        Some("invalid_request_error") => "invalid_request_error",
        Some("authentication_error") | Some("auth_error") => "authentication_error",
        Some("permission_error") => "permission_error",
        Some("not_found_error") => "not_found_error",
        Some("rate_limit_error") => "rate_limit_error",
        Some("timeout_error") => "timeout_error",
        Some("service_unavailable_error") => "overloaded_error",
        _ => "api_error",
    }
}

/// Which kind of content block is open in the stream being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Thinking,
    Text,
    /// A tool call, by its OpenAI `tool_calls[].index`.
    Tool(u64),
}

/// Re-encodes the gateway's OpenAI chunk stream (after the relay: usage chunk present, `[DONE]`
/// or an error event at the end) as Anthropic's event stream, event by event.
pub struct AnthropicStream {
    out: BytesMut,
    model: String,
    input_estimate: u64,
    started: bool,
    finished: bool,
    /// Index and kind of the open content block.
    open: Option<(usize, Block)>,
    next_index: usize,
    /// OpenAI tool-call index → Anthropic content-block index.
    tools: HashMap<u64, usize>,
    finish_reason: Option<String>,
    matched_stop: Option<String>,
    usage: Option<Value>,
}

impl AnthropicStream {
    /// `model` is used until the provider names its own; `input_estimate` fills
    /// `message_start.usage.input_tokens` (the real count follows in `message_delta`).
    pub fn new(model: impl Into<String>, input_estimate: u64) -> Self {
        Self {
            out: BytesMut::new(),
            model: model.into(),
            input_estimate,
            started: false,
            finished: false,
            open: None,
            next_index: 0,
            tools: HashMap::new(),
            finish_reason: None,
            matched_stop: None,
            usage: None,
        }
    }

    fn emit(&mut self, event: &str, data: &Value) {
        self.out.extend_from_slice(b"event: ");
        self.out.extend_from_slice(event.as_bytes());
        self.out.extend_from_slice(b"\ndata: ");
        self.out.extend_from_slice(data.to_string().as_bytes());
        self.out.extend_from_slice(b"\n\n");
    }

    fn start(&mut self, chunk: &Value) {
        if self.started {
            return;
        }
        self.started = true;
        if let Some(m) = chunk.get("model").and_then(Value::as_str) {
            self.model = m.to_string();
        }
        let message = json!({
            "id": message_id(chunk.get("id").and_then(Value::as_str)),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": {"input_tokens": self.input_estimate, "output_tokens": 0},
        });
        self.emit(
            "message_start",
            &json!({"type": "message_start", "message": message}),
        );
        self.emit("ping", &json!({"type": "ping"}));
    }

    fn close_block(&mut self) {
        if let Some((index, _)) = self.open.take() {
            self.emit(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            );
        }
    }

    /// Make `block` the open block (closing another), starting it with `content_block`.
    fn open_block(&mut self, block: Block, content_block: Value) -> usize {
        if let Some((index, open)) = self.open {
            if open == block {
                return index;
            }
        }
        self.close_block();
        let index = self.next_index;
        self.next_index += 1;
        self.emit(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": content_block}),
        );
        self.open = Some((index, block));
        index
    }

    fn delta(&mut self, index: usize, delta: Value) {
        self.emit(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
        );
    }

    fn chunk(&mut self, chunk: &Value) {
        self.start(chunk);
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
        }
        // Only the first choice is an Anthropic message.
        let Some(choice) = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| {
                c.iter()
                    .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
            })
        else {
            return;
        };
        if let Some(delta) = choice.get("delta") {
            if let Some(text) = delta
                .get("reasoning_content")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                let index = self.open_block(
                    Block::Thinking,
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                );
                self.delta(index, json!({"type": "thinking_delta", "thinking": text}));
            }
            if let Some(text) = delta
                .get("content")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                let index = self.open_block(Block::Text, json!({"type": "text", "text": ""}));
                self.delta(index, json!({"type": "text_delta", "text": text}));
            }
            for call in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                self.tool_call(call);
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_string());
            if let Some(s) = choice.get("stop_reason").and_then(Value::as_str) {
                self.matched_stop = Some(s.to_string());
            }
            self.close_block();
        }
    }

    fn tool_call(&mut self, call: &Value) {
        let tool_index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        let function = call.get("function");
        let arguments = function
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let index = match self.tools.get(&tool_index) {
            // A fragment of a call already started: on its own block index (OpenAI sends calls
            // one after the other, so this is the open block).
            Some(&index) => index,
            None => {
                let id = call
                    .get("id")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map_or_else(tool_use_id, str::to_string);
                let name = function
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let index = self.open_block(
                    Block::Tool(tool_index),
                    json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                );
                self.tools.insert(tool_index, index);
                index
            }
        };
        if !arguments.is_empty() {
            self.delta(
                index,
                json!({"type": "input_json_delta", "partial_json": arguments}),
            );
        }
    }

    fn end(&mut self) {
        if self.finished {
            return;
        }
        self.start(&Value::Null);
        self.close_block();
        self.finished = true;
        let (reason, sequence) = stop_reason(
            self.finish_reason.as_deref(),
            !self.tools.is_empty(),
            self.matched_stop.as_deref(),
        );
        let usage = usage_from_openai(self.usage.as_ref());
        self.emit(
            "message_delta",
            &json!({"type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": sequence},
                    "usage": usage}),
        );
        self.emit("message_stop", &json!({"type": "message_stop"}));
    }

    fn error(&mut self, kind: &str, message: &str) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.emit("error", &error_body(kind, message));
    }

    /// One OpenAI chunk's JSON (or an error object).
    fn data(&mut self, data: &[u8]) {
        if self.finished {
            return;
        }
        let Ok(value) = serde_json::from_slice::<Value>(data) else {
            self.error(
                "api_error",
                "the upstream stream sent an event that is not JSON",
            );
            return;
        };
        if let Some(err) = value.get("error").filter(|e| !e.is_null()) {
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| err.to_string());
            let kind = error_type_of_openai(err.get("type").and_then(Value::as_str));
            self.error(kind, &message);
            return;
        }
        self.chunk(&value);
    }
}

impl AnthropicStream {
    /// One item of the pipeline's typed stream: the Anthropic events it completes.
    pub fn push(&mut self, item: &StreamItem) -> Bytes {
        match item {
            StreamItem::Chunk(data) => self.data(data),
            StreamItem::Comment(_) => {}
            StreamItem::Done => self.end(),
            StreamItem::Error(message) => self.error("api_error", message),
        }
        self.out.split().freeze()
    }

    /// The typed stream ended: a stream that ended without [`StreamItem::Done`] or an error is
    /// broken.
    pub fn close(&mut self) -> Bytes {
        self.error(
            "api_error",
            "the stream ended before the message was complete",
        );
        self.out.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::stream::SseEvents;

    /// OpenAI SSE text fed to an [`AnthropicStream`] as the relay hands it on: typed items.
    struct Fed {
        stream: AnthropicStream,
        events: SseEvents,
    }

    impl Fed {
        fn new(model: &str, input_estimate: u64) -> Self {
            Self {
                stream: AnthropicStream::new(model, input_estimate),
                events: SseEvents::default(),
            }
        }

        fn item(&mut self, data: &str) -> Bytes {
            let data = data.trim();
            let item = if data == "[DONE]" {
                StreamItem::Done
            } else {
                StreamItem::Chunk(Bytes::copy_from_slice(data.as_bytes()))
            };
            self.stream.push(&item)
        }

        fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, GatewayError> {
            let mut out = BytesMut::new();
            for event in self.events.push(chunk) {
                out.extend_from_slice(&self.item(&event.data));
            }
            Ok(out.freeze())
        }

        fn finish(&mut self) -> Result<Bytes, GatewayError> {
            let mut out = BytesMut::new();
            if let Some(event) = self.events.finish() {
                out.extend_from_slice(&self.item(&event.data));
            }
            out.extend_from_slice(&self.stream.close());
            Ok(out.freeze())
        }
    }

    fn translate(v: Value) -> Map<String, Value> {
        let Value::Object(m) = v else {
            panic!("object")
        };
        request_to_openai(m).expect("translates")
    }

    /// Split an Anthropic SSE text into (event name, data) pairs.
    fn parse_events(text: &str) -> Vec<(String, Value)> {
        text.split("\n\n")
            .filter(|e| !e.trim().is_empty())
            .map(|e| {
                let mut name = String::new();
                let mut data = Value::Null;
                for line in e.lines() {
                    if let Some(n) = line.strip_prefix("event: ") {
                        name = n.to_string();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data = serde_json::from_str(d).expect("json data");
                    }
                }
                assert_eq!(data["type"], name, "event name matches its type: {e}");
                (name, data)
            })
            .collect()
    }

    #[test]
    fn basic_request_from_the_docs() {
        // https://docs.anthropic.com/en/api/messages (example request)
        let out = translate(json!({
            "model": "claude-sonnet-4-20250514",
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": "Hello, world"}]
        }));
        assert_eq!(
            Value::Object(out),
            json!({"model": "claude-sonnet-4-20250514", "max_tokens": 1024,
                   "messages": [{"role": "user", "content": "Hello, world"}]})
        );
    }

    #[test]
    fn system_sampling_stop_metadata_and_stream() {
        let out = translate(json!({
            "model": "claude-sonnet-4-20250514",
            "max_tokens": 512,
            "system": [{"type": "text", "text": "You are a pirate.", "cache_control": {"type": "ephemeral"}},
                       {"type": "text", "text": "Answer briefly."}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}]}],
            "temperature": 0.5, "top_p": 0.9, "top_k": 40,
            "stop_sequences": ["\n\nHuman:"],
            "metadata": {"user_id": "13803d75-b4b5-4c3e-b2a2-6f21399b021b"},
            "stream": true,
            "service_tier": "auto",
            "thinking": {"type": "enabled", "budget_tokens": 2000},
            "num_retries": 2
        }));
        assert_eq!(
            out["messages"],
            json!([{"role": "system", "content": "You are a pirate.\nAnswer briefly."},
                   {"role": "user", "content": "Hi"}])
        );
        assert_eq!(out["temperature"], 0.5);
        assert_eq!(out["top_p"], 0.9);
        assert_eq!(out["top_k"], 40);
        assert_eq!(out["max_tokens"], 512);
        assert_eq!(out["stop"], json!(["\n\nHuman:"]));
        assert_eq!(out["user"], "13803d75-b4b5-4c3e-b2a2-6f21399b021b");
        assert_eq!(out["stream"], true);
        assert_eq!(out["stream_options"], json!({"include_usage": true}));
        assert_eq!(out["thinking"]["budget_tokens"], 2000);
        assert_eq!(out["num_retries"], 2);
        assert!(!out.contains_key("service_tier") && !out.contains_key("system"));
        assert!(!out.contains_key("stop_sequences"));
        // metadata stays for the gateway (LlmRequest removes it before the provider).
        assert!(out.contains_key("metadata"));
    }

    #[test]
    fn images_and_documents_from_the_docs() {
        // https://docs.anthropic.com/en/docs/build-with-claude/vision
        let out = translate(json!({
            "model": "claude-sonnet-4-20250514", "max_tokens": 1024,
            "messages": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQSkZJRg=="}},
                {"type": "image", "source": {"type": "url", "url": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQ="}, "title": "paper.pdf"},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "The grass is green."}},
                {"type": "text", "text": "Describe these."}
            ]}]
        }));
        assert_eq!(
            out["messages"][0]["content"],
            json!([
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg=="}},
                {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0xLjQ=", "filename": "paper.pdf"}},
                {"type": "text", "text": "The grass is green."},
                {"type": "text", "text": "Describe these."}
            ])
        );
    }

    #[test]
    fn tools_tool_use_and_tool_result_from_the_docs() {
        // https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/implement-tool-use
        let out = translate(json!({
            "model": "claude-opus-4-1-20250805",
            "max_tokens": 1024,
            "tools": [
                {"name": "get_weather", "description": "Get the current weather in a given location",
                 "input_schema": {"type": "object",
                    "properties": {"location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                                   "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                    "required": ["location"]}},
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
            ],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": "What's the weather like in San Francisco?"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "<thinking>I need to use get_weather, and the user wants SF, which is likely San Francisco, CA.</thinking>"},
                    {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
                     "input": {"location": "San Francisco, CA", "unit": "celsius"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
                    {"type": "text", "text": "And tomorrow?"}
                ]}
            ]
        }));
        assert_eq!(
            out["tools"],
            json!([{"type": "function", "function": {"name": "get_weather",
                "description": "Get the current weather in a given location",
                "parameters": {"type": "object",
                    "properties": {"location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                                   "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                    "required": ["location"]}}}]),
            "the server tool is left out"
        );
        assert_eq!(out["tool_choice"], "required");
        assert_eq!(out["parallel_tool_calls"], false);
        let msgs = out["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 4);
        assert_eq!(msgs[1]["role"], "assistant");
        assert_eq!(
            msgs[1]["content"],
            "<thinking>I need to use get_weather, and the user wants SF, which is likely San Francisco, CA.</thinking>"
        );
        let call = &msgs[1]["tool_calls"][0];
        assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(
            args,
            json!({"location": "San Francisco, CA", "unit": "celsius"})
        );
        assert_eq!(
            msgs[2],
            json!({"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"})
        );
        assert_eq!(msgs[3], json!({"role": "user", "content": "And tomorrow?"}));
    }

    #[test]
    fn tool_choice_forms_and_tool_results_with_blocks() {
        let with_choice = |choice: Value| {
            translate(
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": choice}),
            )
        };
        assert_eq!(with_choice(json!({"type": "auto"}))["tool_choice"], "auto");
        assert_eq!(with_choice(json!({"type": "none"}))["tool_choice"], "none");
        let named = with_choice(json!({"type": "tool", "name": "f"}));
        assert_eq!(
            named["tool_choice"],
            json!({"type": "function", "function": {"name": "f"}})
        );
        assert!(!named.contains_key("parallel_tool_calls"));

        let out = translate(json!({"model": "m", "messages": [
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "shot", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "is_error": false, "content": [
                {"type": "text", "text": "line 1"}, {"type": "text", "text": "line 2"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}]}
        ]}));
        let msgs = out["messages"].as_array().unwrap();
        assert_eq!(msgs[0]["content"], Value::Null);
        assert_eq!(msgs[1]["content"], "line 1\nline 2");
        assert_eq!(
            msgs[2],
            json!({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]})
        );
    }

    #[test]
    fn invalid_requests_name_the_field() {
        let bad = |v: Value, param: &str| {
            let Value::Object(m) = v else { panic!() };
            let err = request_to_openai(m).expect_err("must fail");
            assert_eq!(err.param(), Some(param), "{err}");
        };
        bad(json!({"model": "m"}), "messages");
        bad(json!({"model": "m", "messages": "hi"}), "messages");
        bad(
            json!({"model": "m", "messages": [{"role": "system", "content": "x"}]}),
            "messages.0",
        );
        bad(
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "server_tool_use"}]}]}),
            "messages.0.content.0",
        );
        bad(
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "file_1"}}]}]}),
            "messages.0.content.0",
        );
        bad(
            json!({"model": "m", "messages": [], "tools": [{"name": "f", "input_schema": {}}], "tool_choice": {"type": "sometimes"}}),
            "tool_choice",
        );
        bad(
            json!({"model": "m", "messages": [], "stop_sequences": "END"}),
            "stop_sequences",
        );
    }

    #[test]
    fn text_response_matches_the_docs_shape() {
        // An OpenAI chat.completion (https://platform.openai.com/docs/api-reference/chat/object).
        let openai = json!({
            "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
            "object": "chat.completion", "created": 1741570283, "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi! My name is Claude.", "refusal": null},
                         "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 2095, "completion_tokens": 503, "total_tokens": 2598,
                      "prompt_tokens_details": {"cached_tokens": 95, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0}}
        });
        // The shape of https://docs.anthropic.com/en/api/messages (example response).
        assert_eq!(
            response_from_openai(&openai, "my-model"),
            json!({
                "id": "msg_B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
                "type": "message",
                "role": "assistant",
                "model": "gpt-4o-2024-08-06",
                "content": [{"type": "text", "text": "Hi! My name is Claude."}],
                "stop_reason": "end_turn",
                "stop_sequence": null,
                "usage": {"input_tokens": 2000, "output_tokens": 503,
                          "cache_read_input_tokens": 95, "cache_creation_input_tokens": 0}
            })
        );
    }

    #[test]
    fn tool_call_response_and_stop_reasons() {
        let openai = json!({
            "id": "chatcmpl-abc", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"San Francisco, CA\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}}]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        });
        let msg = response_from_openai(&openai, "m");
        assert_eq!(msg["stop_reason"], "tool_use");
        assert_eq!(
            msg["content"],
            json!([
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"location": "San Francisco, CA"}},
                {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}}
            ])
        );
        assert_eq!(msg["usage"]["input_tokens"], 10);

        let with = |finish: &str, extra: Value| {
            let mut choice = json!({"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": "x"}});
            if let (Value::Object(c), Value::Object(e)) = (&mut choice, extra) {
                c.extend(e);
            }
            response_from_openai(&json!({"choices": [choice]}), "m")
        };
        assert_eq!(with("length", json!({}))["stop_reason"], "max_tokens");
        assert_eq!(with("content_filter", json!({}))["stop_reason"], "refusal");
        let stopped = with("stop", json!({"stop_reason": "END"}));
        assert_eq!(
            (&stopped["stop_reason"], &stopped["stop_sequence"]),
            (&json!("stop_sequence"), &json!("END"))
        );
        assert!(with("stop", json!({}))["id"]
            .as_str()
            .unwrap()
            .starts_with("msg_"));
    }

    #[test]
    fn errors_take_anthropic_shape_and_type_by_status() {
        let body = br#"{"error":{"message":"Authentication Error, No api key passed in.","type":"auth_error","param":null,"code":"401"}}"#;
        assert_eq!(
            error_from_openai(401, body),
            json!({"type": "error", "error": {"type": "authentication_error",
                   "message": "Authentication Error, No api key passed in."}})
        );
        assert_eq!(
            error_from_openai(429, b"{}")["error"]["type"],
            "rate_limit_error"
        );
        assert_eq!(
            error_from_openai(404, b"")["error"]["type"],
            "not_found_error"
        );
        assert_eq!(error_from_openai(500, b"boom")["error"]["message"], "boom");
        assert_eq!(
            error_from_openai(529, b"")["error"]["type"],
            "overloaded_error"
        );
        assert_eq!(
            error_from_openai(400, b"")["error"]["type"],
            "invalid_request_error"
        );
    }

    /// OpenAI chunks as the relay delivers them (role chunk, content, finish, usage, `[DONE]`).
    fn openai_text_stream() -> String {
        let chunk = |delta: Value, finish: Value| {
            format!(
                "data: {}\n\n",
                json!({"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190,
                       "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
            )
        };
        let mut s = String::new();
        s.push_str(&chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        ));
        s.push_str(&chunk(json!({"content": "Hello"}), Value::Null));
        s.push_str(&chunk(json!({"content": "!"}), Value::Null));
        s.push_str(&chunk(json!({}), json!("stop")));
        s.push_str(&format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-123", "object": "chat.completion.chunk",
            "created": 1694268190, "model": "gpt-4o-mini", "choices": [],
            "usage": {"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40}})
        ));
        s.push_str("data: [DONE]\n\n");
        s
    }

    #[test]
    fn text_stream_has_the_documented_event_sequence_at_any_split() {
        let raw = openai_text_stream();
        let mut reference: Option<Vec<(String, Value)>> = None;
        for split in [1, 7, 100, raw.len() / 2, raw.len() - 3] {
            let mut s = Fed::new("my-model", 12);
            let mut out = String::new();
            out.push_str(std::str::from_utf8(&s.feed(&raw.as_bytes()[..split]).unwrap()).unwrap());
            out.push_str(std::str::from_utf8(&s.feed(&raw.as_bytes()[split..]).unwrap()).unwrap());
            out.push_str(std::str::from_utf8(&s.finish().unwrap()).unwrap());
            let events = parse_events(&out);
            if let Some(r) = &reference {
                let strip =
                    |e: &[(String, Value)]| e.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
                assert_eq!(strip(&events), strip(r), "split at {split}");
                continue;
            }
            // The sequence of https://docs.anthropic.com/en/docs/build-with-claude/streaming
            let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(
                names,
                [
                    "message_start",
                    "ping",
                    "content_block_start",
                    "content_block_delta",
                    "content_block_delta",
                    "content_block_stop",
                    "message_delta",
                    "message_stop"
                ]
            );
            let start = &events[0].1["message"];
            assert_eq!(start["id"], "msg_123");
            assert_eq!(start["model"], "gpt-4o-mini");
            assert_eq!(start["content"], json!([]));
            assert_eq!(start["usage"]["input_tokens"], 12);
            assert_eq!(
                events[2].1,
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
            );
            assert_eq!(
                events[3].1,
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}})
            );
            assert_eq!(
                events[5].1,
                json!({"type": "content_block_stop", "index": 0})
            );
            assert_eq!(
                events[6].1,
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                       "usage": {"input_tokens": 25, "output_tokens": 15, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}})
            );
            reference = Some(events);
        }
    }

    #[test]
    fn tool_call_stream_becomes_input_json_deltas() {
        let chunk = |delta: Value, finish: Value| {
            format!(
                "data: {}\n\n",
                json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1,
                "model": "gpt-4o", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            )
        };
        let mut raw = String::new();
        raw.push_str(&chunk(
            json!({"role": "assistant", "content": "Let me check."}),
            Value::Null,
        ));
        raw.push_str(&chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
            "function": {"name": "get_weather", "arguments": ""}}]}),
            Value::Null,
        ));
        raw.push_str(&chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"location\":"}}]}),
            Value::Null,
        ));
        raw.push_str(&chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
            Value::Null,
        ));
        raw.push_str(&chunk(
            json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
            "function": {"name": "get_time", "arguments": "{}"}}]}),
            Value::Null,
        ));
        raw.push_str(&chunk(json!({}), json!("tool_calls")));
        raw.push_str("data: {\"id\":\"chatcmpl-9\",\"choices\":[],\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":12,\"total_tokens\":42,\"prompt_tokens_details\":{\"cached_tokens\":10}}}\n\n");
        raw.push_str("data: [DONE]\n\n");
        let mut s = Fed::new("m", 0);
        let mut out = String::from_utf8(s.feed(raw.as_bytes()).unwrap().to_vec()).unwrap();
        out.push_str(std::str::from_utf8(&s.finish().unwrap()).unwrap());
        let events = parse_events(&out);
        let summary: Vec<Value> = events[2..].iter().map(|(_, d)| d.clone()).collect();
        assert_eq!(
            summary,
            vec![
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me check."}}),
                json!({"type": "content_block_stop", "index": 0}),
                json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}}}),
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"location\":"}}),
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
                json!({"type": "content_block_stop", "index": 1}),
                json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "call_b", "name": "get_time", "input": {}}}),
                json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
                json!({"type": "content_block_stop", "index": 2}),
                json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                       "usage": {"input_tokens": 20, "output_tokens": 12, "cache_read_input_tokens": 10, "cache_creation_input_tokens": 0}}),
                json!({"type": "message_stop"}),
            ]
        );
    }

    #[test]
    fn stream_errors_become_error_events() {
        // The relay's error event for a stream that broke after it started.
        let mut s = Fed::new("m", 0);
        let raw = concat!(
            "data: {\"id\":\"chatcmpl-1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n",
            "data: {\"error\":{\"message\":\"stream interrupted\",\"type\":\"api_connection_error\",\"param\":null,\"code\":\"stream_interrupted\"}}\n\n",
            "data: [DONE]\n\n"
        );
        let mut out = String::from_utf8(s.feed(raw.as_bytes()).unwrap().to_vec()).unwrap();
        out.push_str(std::str::from_utf8(&s.finish().unwrap()).unwrap());
        let events = parse_events(&out);
        let (name, last) = events.last().unwrap();
        assert_eq!(name, "error");
        assert_eq!(
            last,
            &json!({"type": "error", "error": {"type": "api_error", "message": "stream interrupted"}})
        );
        assert!(!events.iter().any(|(n, _)| n == "message_stop"));

        // A stream that just stops (no [DONE]) ends with an error event too.
        let mut s = Fed::new("m", 0);
        let mut out = String::from_utf8(
            s.feed(b"data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n")
                .unwrap()
                .to_vec(),
        )
        .unwrap();
        out.push_str(std::str::from_utf8(&s.finish().unwrap()).unwrap());
        assert_eq!(parse_events(&out).last().unwrap().0, "error");
    }

    #[test]
    fn reasoning_becomes_a_thinking_block() {
        let mut s = Fed::new("m", 0);
        let raw = concat!(
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"Hmm.\"}}]}\n\n",
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"42\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n"
        );
        let out = String::from_utf8(s.feed(raw.as_bytes()).unwrap().to_vec()).unwrap();
        let events = parse_events(&out);
        assert_eq!(events[2].1["content_block"]["type"], "thinking");
        assert_eq!(
            events[3].1["delta"],
            json!({"type": "thinking_delta", "thinking": "Hmm."})
        );
        assert_eq!(
            events[4].1,
            json!({"type": "content_block_stop", "index": 0})
        );
        assert_eq!(events[5].1["content_block"]["type"], "text");
        let resp = response_from_openai(
            &json!({"choices": [{"message": {"content": "42", "reasoning_content": "Hmm."}, "finish_reason": "stop"}]}),
            "m",
        );
        assert_eq!(resp["content"][0]["type"], "thinking");
        assert_eq!(resp["content"][1], json!({"type": "text", "text": "42"}));
    }
}

/// Property tests: translation never panics, refuses with typed 400s, and what it produces is a
/// chat request the gateway's own parser accepts.
#[cfg(test)]
mod proptests {
    use super::*;
    use crate::llm::{CallKind, LlmRequest};
    use actix_web::ResponseError;
    use proptest::prelude::*;

    /// Any JSON value, a few levels deep, with keys drawn from Anthropic's request shape.
    fn anthropic_value() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("model".to_string()),
            Just("messages".to_string()),
            Just("role".to_string()),
            Just("content".to_string()),
            Just("system".to_string()),
            Just("type".to_string()),
            Just("text".to_string()),
            Just("tool_use".to_string()),
            Just("tool_result".to_string()),
            Just("tool_use_id".to_string()),
            Just("input".to_string()),
            Just("name".to_string()),
            Just("tools".to_string()),
            Just("tool_choice".to_string()),
            Just("stop_sequences".to_string()),
            Just("max_tokens".to_string()),
            Just("metadata".to_string()),
            Just("user_id".to_string()),
            Just("source".to_string()),
            Just("image".to_string()),
            Just("thinking".to_string()),
            "[a-z_]{0,8}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            prop_oneof![
                Just("user"),
                Just("assistant"),
                Just("text"),
                Just("tool_use"),
                Just("tool_result"),
                Just("image"),
                Just("base64"),
                Just("auto"),
                Just("any"),
                Just("tool"),
            ]
            .prop_map(|s| Value::String(s.into())),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn block() -> impl Strategy<Value = Value> {
        prop_oneof![
            "\\PC{0,16}".prop_map(|t| json!({"type": "text", "text": t})),
            ("[a-z]{1,8}", "\\PC{0,8}").prop_map(|(name, v)| json!({"type": "tool_use",
                "id": "toolu_1", "name": name, "input": {"v": v}})),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bodies_translate_or_fail_with_400(body in anthropic_value()) {
            let Value::Object(body) = body else { return Ok(()) };
            match request_to_openai(body) {
                Ok(out) => {
                    prop_assert!(out.get("messages").is_some_and(Value::is_array));
                }
                Err(e) => prop_assert_eq!(e.status_code().as_u16(), 400, "{}", e),
            }
        }

        #[test]
        fn valid_requests_become_chat_requests_the_parser_accepts(
            model in "[a-z][a-z0-9.-]{0,16}",
            system in prop::option::of("\\PC{0,16}"),
            turns in prop::collection::vec(prop::collection::vec(block(), 1..4), 1..6),
            max_tokens in 1u64..100_000,
            stream in any::<bool>(),
        ) {
            let messages: Vec<Value> = turns
                .into_iter()
                .enumerate()
                .map(|(i, content)| {
                    let role = if i % 2 == 0 { "user" } else { "assistant" };
                    // Only assistants call tools.
                    let content: Vec<Value> = content
                        .into_iter()
                        .filter(|b| role == "assistant" || b["type"] == "text")
                        .collect();
                    json!({"role": role, "content": if content.is_empty() { json!("hi") } else { json!(content) }})
                })
                .collect();
            let mut body = json!({"model": model, "max_tokens": max_tokens, "stream": stream,
                                  "messages": messages});
            if let Some(s) = system {
                body["system"] = json!(s);
            }
            let Value::Object(body) = body else { unreachable!() };
            let out = request_to_openai(body);
            prop_assert!(out.is_ok(), "{:?}", out.err());
            let raw = Value::Object(out.unwrap()).to_string();
            let parsed = LlmRequest::parse(CallKind::Chat, raw.as_bytes(), None);
            prop_assert!(parsed.is_ok(), "{:?}", parsed.err());
            prop_assert_eq!(parsed.unwrap().stream, stream);
        }
    }
}
