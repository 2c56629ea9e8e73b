//! The Anthropic Messages API (`POST {api_base}/v1/messages`, `x-api-key` and `anthropic-version`
//! headers).
//!
//! Requests: system messages become the top-level `system`, consecutive turns of one role are
//! merged, `tool` messages become user `tool_result` blocks, assistant `tool_calls` become
//! `tool_use` blocks, images become `base64` or `url` sources, `max_tokens` is always set (it is
//! required), and `response_format` with a schema becomes a forced tool (`json_tool_call`, as
//! LiteLLM does) whose input is handed back as the message content. Responses, streams (named SSE
//! events) and errors (`{"type":"error","error":{…}}`) are translated back to OpenAI's shapes, with
//! usage counted the OpenAI way (prompt tokens include cache reads and writes).

use super::ErrorReply;
use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::stream::{ChunkWriter, SseEvent, SseEvents, StreamTranslator};
use super::{PreparedRequest, ProviderAdapter, TranslatedResponse};
use crate::deployment::{Deployment, Target};
use crate::error::{GatewayError, UpstreamErrorKind};
use crate::llm::{CallKind, LlmRequest, Usage};
use crate::secret::{scrub, Secret};
use tollgate_wire::openai::{self, AssistantMessage, ChatCompletion, Choice, Delta, ToolCall};

/// The only Messages API version (sent unless the deployment's `extra_headers` set another).
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// `max_tokens` when neither the request nor the deployment sets it (LiteLLM's
/// `DEFAULT_ANTHROPIC_CHAT_MAX_TOKENS`).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;
/// The tool a `response_format` schema becomes (LiteLLM's `RESPONSE_FORMAT_TOOL_NAME`).
pub const RESPONSE_FORMAT_TOOL: &str = "json_tool_call";

/// Thinking budgets for `reasoning_effort` (LiteLLM's low/medium/high constants; Anthropic's
/// minimum budget is 1024).
const THINKING_BUDGET_LOW: u64 = 1024;
const THINKING_BUDGET_MEDIUM: u64 = 2048;
const THINKING_BUDGET_HIGH: u64 = 4096;

/// OpenAI request fields this adapter translates itself; everything else not listed as
/// unsupported in the registry goes to Anthropic as is (`top_k`, `thinking`, `service_tier`…).
const TRANSLATED: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "user",
    "reasoning_effort",
    "extra_body",
];

pub struct AnthropicAdapter;

pub static ANTHROPIC: AnthropicAdapter = AnthropicAdapter;

impl ProviderAdapter for AnthropicAdapter {
    fn prepare(
        &self,
        deployment: &Deployment,
        target: &Target,
        req: &LlmRequest,
    ) -> Result<PreparedRequest, GatewayError> {
        match req.kind {
            CallKind::Chat => {}
            CallKind::Embedding => {
                return Err(GatewayError::BadRequest {
                    message: format!(
                        "AnthropicException - Anthropic has no embeddings API; model={} cannot serve /embeddings. Route embeddings to an embedding model (for example voyage/ or openai/).",
                        target.model
                    ),
                    param: Some("model".into()),
                    code: Some("unsupported_endpoint"),
                })
            }
            CallKind::ImageGeneration | CallKind::ImageEdit | CallKind::Moderation | CallKind::Transcription | CallKind::Translation | CallKind::Speech | CallKind::Rerank
            | CallKind::Responses => {
                return Err(crate::providers::native::unsupported_call(target, req.kind))
            }
            CallKind::Completion => {
                return Err(GatewayError::BadRequest {
                    message: format!(
                        "AnthropicException - the legacy /completions endpoint is not supported for anthropic model={}; use /chat/completions.",
                        target.model
                    ),
                    param: Some("model".into()),
                    code: Some("unsupported_endpoint"),
                })
            }
        }
        let body = request_body(deployment, target, req)?;

        let mut headers: Vec<(Cow<'static, str>, String)> = Vec::with_capacity(4);
        headers.push((Cow::Borrowed("content-type"), "application/json".into()));
        if let Some(key) = &target.api_key {
            headers.push((Cow::Borrowed("x-api-key"), key.expose().to_string()));
        }
        let version_set = deployment
            .extra_headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("anthropic-version"));
        if !version_set {
            headers.push((Cow::Borrowed("anthropic-version"), ANTHROPIC_VERSION.into()));
        }
        headers.extend(super::native::extra_headers(deployment));
        PreparedRequest::json(target.url(messages_url(&target.api_base)), headers, &body)
    }

    fn translate_response(
        &self,
        req: &LlmRequest,
        body: Bytes,
    ) -> Result<TranslatedResponse, GatewayError> {
        let msg: AnthropicMessage = serde_json::from_slice(&body).map_err(|e| {
            invalid_body(format!(
                "Anthropic returned a body that is not a message: {e}"
            ))
        })?;
        let json_mode = json_mode(&req.body);
        let mut text = String::new();
        let mut saw_text = false;
        let mut reasoning = String::new();
        let mut thinking_blocks = Vec::new();
        let mut tool_calls = Vec::new();
        let mut json_content = None;
        for block in &msg.content {
            match block.get("type").and_then(Value::as_str) {
                Some("text") => {
                    saw_text = true;
                    text.push_str(block.get("text").and_then(Value::as_str).unwrap_or(""));
                }
                Some("tool_use") => {
                    let name = block.get("name").and_then(Value::as_str).unwrap_or("");
                    let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                    let arguments = input.to_string();
                    if json_mode && name == RESPONSE_FORMAT_TOOL {
                        json_content = Some(arguments);
                        continue;
                    }
                    let id = block.get("id").and_then(Value::as_str).unwrap_or_default();
                    tool_calls.push(ToolCall::function(id, name, arguments));
                }
                Some("thinking") => {
                    reasoning.push_str(block.get("thinking").and_then(Value::as_str).unwrap_or(""));
                    thinking_blocks.push(block.clone());
                }
                Some("redacted_thinking") => thinking_blocks.push(block.clone()),
                _ => {}
            }
        }
        let mut finish_reason = finish_reason(msg.stop_reason.as_deref());
        let content = match json_content {
            Some(json_text) => {
                if tool_calls.is_empty() {
                    finish_reason = "stop";
                }
                Some(json_text)
            }
            None if !saw_text && !tool_calls.is_empty() => None,
            None => Some(text),
        };
        let usage = msg.usage.to_usage(estimate_tokens(&reasoning));
        let mut message = AssistantMessage::new(content.map(Into::into));
        message.tool_calls = tool_calls;
        if !thinking_blocks.is_empty() {
            message.reasoning_content = Some(reasoning.into());
            message.thinking_blocks = thinking_blocks;
        }
        let out = ChatCompletion::new(
            msg.id,
            super::now_secs(),
            msg.model,
            vec![Choice::new(0, message, finish_reason)],
            msg.usage.to_openai(&usage),
        );
        TranslatedResponse::completion(&out, usage)
    }

    fn error(&self, reply: &ErrorReply<'_>) -> GatewayError {
        let (target, status, retry_after, body) = reply.parts();
        let err = super::native::error_object(body);
        let err = err.as_ref();
        let kind_text = err
            .and_then(|e| e.get("type"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let message = err
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| super::native::raw_error_text(status, body));
        upstream_error(
            target.api_key.as_ref(),
            status,
            kind_text.as_deref(),
            &message,
            retry_after,
        )
    }

    fn stream_translator(
        &self,
        target: &Target,
        req: &LlmRequest,
    ) -> Option<Box<dyn StreamTranslator>> {
        Some(Box::new(AnthropicStream::new(
            &target.model,
            json_mode(&req.body),
            target.api_key.clone(),
        )))
    }
}

/// `{api_base}/v1/messages`, without doubling a `/v1` the base already has, and taking a base that
/// is already the full endpoint as is.
pub fn messages_url(api_base: &str) -> String {
    let base = api_base.trim_end_matches('/');
    if base.ends_with("/v1/messages") {
        base.to_string()
    } else if base.ends_with("/v1") {
        format!("{base}/messages")
    } else {
        format!("{base}/v1/messages")
    }
}

fn invalid_body(message: String) -> GatewayError {
    GatewayError::Upstream {
        kind: UpstreamErrorKind::Server,
        status: 502,
        message,
        code: None,
        param: None,
        retry_after: None,
    }
}

fn bad_param(param: &str, message: impl std::fmt::Display) -> GatewayError {
    GatewayError::bad_param(param, format!("AnthropicException - {message}"))
}

/// Anthropic's status ↔ `error.type` table lives once, in the wire crate the mock provider
/// shares.
pub use tollgate_wire::anthropic::{error_type_for_status, status_for_error_type, ERROR_TYPES};

/// An Anthropic error (HTTP status, `error.type`, message) as a gateway error: 529
/// `overloaded_error` is a retryable 503, 413 and the "prompt is too long" family are
/// context-window errors, the rest as OpenAI classifies them.
fn upstream_error(
    secret: Option<&Secret>,
    status: u16,
    error_type: Option<&str>,
    message: &str,
    retry_after: Option<Duration>,
) -> GatewayError {
    let lower = message.to_ascii_lowercase();
    let context = lower.contains("prompt is too long")
        || lower.contains("exceed context limit")
        || lower.contains("context window");
    let overloaded = status == 529 || error_type == Some("overloaded_error");
    let status = match status {
        _ if overloaded => 503,
        s @ 400..=599 => s,
        // A stream `error` event has no status of its own.
        _ => error_type.and_then(status_for_error_type).unwrap_or(500),
    };
    let kind = if overloaded {
        UpstreamErrorKind::Server
    } else if status == 413 || (context && matches!(status, 400 | 422)) {
        UpstreamErrorKind::ContextWindowExceeded
    } else {
        super::openai::classify(status, None, message)
    };
    let class = kind.class_name(status);
    let code = kind.standard_code().map(str::to_string);
    GatewayError::Upstream {
        kind,
        status,
        message: scrub(&format!("{class}: AnthropicException - {message}"), secret),
        code,
        param: None,
        retry_after,
    }
}

// ---------------------------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------------------------

/// Whether the request asks for JSON through `response_format` (translated to the forced
/// `json_tool_call` tool, whose input becomes the message content).
fn json_mode(body: &Map<String, Value>) -> bool {
    matches!(
        body.get("response_format")
            .and_then(|f| f.get("type"))
            .and_then(Value::as_str),
        Some("json_schema" | "json_object")
    )
}

/// An OpenAI default value, equivalent to not sending the parameter.
fn is_neutral(key: &str, value: &Value) -> bool {
    match key {
        "n" => value.as_u64() == Some(1),
        "logprobs" | "store" => value == &Value::Bool(false),
        "presence_penalty" | "frequency_penalty" => value.as_f64() == Some(0.0),
        _ => value.is_null(),
    }
}

fn request_body(
    deployment: &Deployment,
    target: &Target,
    req: &LlmRequest,
) -> Result<Map<String, Value>, GatewayError> {
    let mut src = super::native::OpenAiBody::with_defaults(deployment, req).to_map();
    src.retain(|_, v| !v.is_null());
    let drop = super::native::drop_params(deployment, req);
    let mut unsupported = Vec::new();
    for p in target.spec.unsupported_params {
        if let Some(v) = src.remove(*p) {
            if !is_neutral(p, &v) {
                unsupported.push(*p);
            }
        }
    }
    if !unsupported.is_empty() && !drop {
        return Err(super::native::unsupported_error(target, &unsupported));
    }

    // Anthropic's service tiers are `auto` and `standard_only`; OpenAI's `default` is the latter.
    match src.get("service_tier").map(|t| t.as_str()) {
        None | Some(Some("auto" | "standard_only")) => {}
        Some(Some("default")) => {
            src.insert("service_tier".into(), json!("standard_only"));
        }
        Some(_) if drop => {
            src.remove("service_tier");
        }
        Some(_) => {
            return Err(bad_param(
                "service_tier",
                "service_tier must be auto, default or standard_only for Anthropic.",
            ))
        }
    }

    let mut out = Map::new();
    out.insert("model".into(), Value::String(target.model.clone()));

    let messages = match src.get("messages") {
        Some(Value::Array(m)) => m,
        _ => {
            return Err(bad_param(
                "messages",
                "'messages' must be an array of messages.",
            ))
        }
    };
    let (system, messages) = translate_messages(messages)?;
    if !system.is_empty() {
        let plain = system.len() == 1 && system[0].get("cache_control").is_none();
        out.insert(
            "system".into(),
            if plain {
                system[0]["text"].clone()
            } else {
                Value::Array(system)
            },
        );
    }
    out.insert("messages".into(), Value::Array(messages));

    // Thinking: the client's own `thinking`, else `reasoning_effort`.
    let thinking_budget = match src.get("thinking") {
        Some(t) if t.get("type").and_then(Value::as_str) == Some("enabled") => {
            t.get("budget_tokens").and_then(Value::as_u64)
        }
        Some(_) => None,
        None => match src.get("reasoning_effort").and_then(Value::as_str) {
            None | Some("none" | "disable" | "disabled") => None,
            Some("minimal" | "low") => Some(THINKING_BUDGET_LOW),
            Some("medium") => Some(THINKING_BUDGET_MEDIUM),
            Some("high") => Some(THINKING_BUDGET_HIGH),
            Some(other) => {
                return Err(bad_param(
                    "reasoning_effort",
                    format!("reasoning_effort '{other}' is not one of minimal, low, medium, high."),
                ))
            }
        },
    };
    if let (None, Some(budget)) = (src.get("thinking"), thinking_budget) {
        out.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": budget}),
        );
    }

    // max_tokens is required.
    let asked = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| src.get(*k));
    let max_tokens = match asked {
        Some(v) => v
            .as_u64()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad_param("max_tokens", "max_tokens must be a positive integer."))?,
        None => match thinking_budget {
            Some(budget) if budget >= DEFAULT_MAX_TOKENS => budget + DEFAULT_MAX_TOKENS,
            _ => DEFAULT_MAX_TOKENS,
        },
    };
    out.insert("max_tokens".into(), json!(max_tokens));

    if let Some(stop) = src.get("stop") {
        // Anthropic rejects whitespace-only stop sequences (LiteLLM drops them too).
        let sequences = super::native::stop_sequences(stop, |s| !s.trim().is_empty())
            .ok_or_else(|| bad_param("stop", "'stop' must be a string or an array."))?;
        if !sequences.is_empty() {
            out.insert("stop_sequences".into(), Value::Array(sequences));
        }
    }
    if req.stream {
        out.insert("stream".into(), Value::Bool(true));
    }

    // Tools, tool_choice, response_format.
    let mut tools = match src.get("tools") {
        Some(Value::Array(items)) => items.iter().map(translate_tool).collect::<Result<_, _>>()?,
        Some(_) => return Err(bad_param("tools", "'tools' must be an array.")),
        None => Vec::new(),
    };
    let user_tools = !tools.is_empty();
    let mut tool_choice = match src.get("tool_choice") {
        None => None,
        Some(choice) if user_tools => Some(translate_tool_choice(choice)?),
        // Anthropic refuses a tool_choice without tools; "none"/"auto" mean nothing then.
        Some(_) => None,
    };
    if let Some(format) = src.get("response_format") {
        match format.get("type").and_then(Value::as_str) {
            Some("text") | None => {}
            Some("json_object" | "json_schema") => {
                let schema = format
                    .get("json_schema")
                    .and_then(|s| s.get("schema"))
                    .or_else(|| format.get("response_schema"))
                    .cloned();
                let mut input_schema = match schema {
                    Some(Value::Object(s)) => s,
                    _ => {
                        let mut s = Map::new();
                        s.insert("additionalProperties".into(), Value::Bool(true));
                        s.insert("properties".into(), json!({}));
                        s
                    }
                };
                input_schema
                    .entry("type")
                    .or_insert_with(|| Value::String("object".into()));
                tools.push(json!({
                    "name": RESPONSE_FORMAT_TOOL,
                    "description": "Respond with a JSON object.",
                    "input_schema": input_schema,
                }));
                // Forced tool use is not allowed with extended thinking; with tools of its own,
                // the client's tool_choice stands (else any tool, the JSON one included).
                if thinking_budget.is_none() {
                    if !user_tools {
                        tool_choice = Some(json!({"type": "tool", "name": RESPONSE_FORMAT_TOOL}));
                    } else if tool_choice.is_none() {
                        tool_choice = Some(json!({"type": "any"}));
                    }
                }
            }
            Some(other) => {
                return Err(bad_param(
                    "response_format",
                    format!("response_format type '{other}' is not supported."),
                ))
            }
        }
    }
    if src.get("parallel_tool_calls") == Some(&Value::Bool(false)) && !tools.is_empty() {
        let choice = tool_choice.get_or_insert_with(|| json!({"type": "auto"}));
        if choice.get("type").and_then(Value::as_str) != Some("none") {
            choice["disable_parallel_tool_use"] = Value::Bool(true);
        }
    }
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = tool_choice {
        out.insert("tool_choice".into(), choice);
    }

    if let Some(user) = src.get("user").and_then(Value::as_str) {
        if valid_user_id(user) {
            out.insert("metadata".into(), json!({"user_id": user}));
        }
    }

    // Anything else (top_k, thinking, service_tier, Anthropic-only fields) goes through as is.
    for (k, v) in &src {
        if !TRANSLATED.contains(&k.as_str()) && !out.contains_key(k) {
            out.insert(k.clone(), v.clone());
        }
    }
    if let Some(Value::Object(extra)) = src.get("extra_body") {
        for (k, v) in extra {
            if k != "model" && !out.contains_key(k) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(out)
}

/// Anthropic's `metadata.user_id` must not carry personal data: like LiteLLM, values that look like
/// an e-mail address or a phone number are not sent.
fn valid_user_id(user: &str) -> bool {
    if user.is_empty() || user.contains('@') {
        return false;
    }
    let digits = user.chars().filter(char::is_ascii_digit).count();
    let phone_like = digits >= 7
        && user
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')' | '.'));
    !phone_like
}

fn translate_tool(tool: &Value) -> Result<Value, GatewayError> {
    let Some(function) = tool.get("function") else {
        // An Anthropic tool (`web_search_…`, `computer_…`, or already in Anthropic's shape).
        return Ok(tool.clone());
    };
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_param("tools", "every tool needs a function name."))?;
    let mut input_schema = match function.get("parameters") {
        Some(Value::Object(p)) => p.clone(),
        _ => {
            let mut s = Map::new();
            s.insert("properties".into(), json!({}));
            s
        }
    };
    input_schema
        .entry("type")
        .or_insert_with(|| Value::String("object".into()));
    let mut out = Map::new();
    out.insert("name".into(), Value::String(name.to_string()));
    if let Some(d) = function.get("description").filter(|d| !d.is_null()) {
        out.insert("description".into(), d.clone());
    }
    out.insert("input_schema".into(), Value::Object(input_schema));
    if let Some(cc) = tool
        .get("cache_control")
        .or_else(|| function.get("cache_control"))
    {
        out.insert("cache_control".into(), cc.clone());
    }
    Ok(Value::Object(out))
}

fn translate_tool_choice(choice: &Value) -> Result<Value, GatewayError> {
    match choice {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(json!({"type": "auto"})),
            "none" => Ok(json!({"type": "none"})),
            "required" | "any" => Ok(json!({"type": "any"})),
            other => Err(bad_param(
                "tool_choice",
                format!("tool_choice '{other}' is not one of auto, none, required."),
            )),
        },
        Value::Object(o) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .or_else(|| o.get("name"))
                .and_then(Value::as_str);
            match (o.get("type").and_then(Value::as_str), name) {
                (Some("function" | "tool"), Some(name)) => {
                    Ok(json!({"type": "tool", "name": name}))
                }
                (Some("auto" | "any" | "none"), _) => Ok(choice.clone()),
                _ => Err(bad_param(
                    "tool_choice",
                    "tool_choice must name a function: {\"type\":\"function\",\"function\":{\"name\":…}}.",
                )),
            }
        }
        _ => Err(bad_param("tool_choice", "invalid tool_choice.")),
    }
}

/// OpenAI messages → (Anthropic `system` blocks, Anthropic messages).
fn translate_messages(messages: &[Value]) -> Result<(Vec<Value>, Vec<Value>), GatewayError> {
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let content = m.get("content").unwrap_or(&Value::Null);
        let message_cache = m.get("cache_control");
        let (role, mut blocks) = match role {
            "system" | "developer" => {
                let mut blocks = text_blocks(content, i)?;
                mark_last(&mut blocks, message_cache);
                system.extend(blocks);
                continue;
            }
            "user" => ("user", user_blocks(content, i)?),
            "assistant" => ("assistant", assistant_blocks(m, i)?),
            "tool" => {
                let id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        bad_param(
                            "messages",
                            format!("messages[{i}]: a tool message needs its tool_call_id."),
                        )
                    })?;
                let mut block = Map::new();
                block.insert("type".into(), json!("tool_result"));
                block.insert("tool_use_id".into(), json!(id));
                match content {
                    Value::Null => {}
                    Value::String(s) if s.is_empty() => {}
                    Value::String(s) => {
                        block.insert("content".into(), json!(s));
                    }
                    _ => {
                        block.insert("content".into(), Value::Array(user_blocks(content, i)?));
                    }
                }
                ("user", vec![Value::Object(block)])
            }
            other => {
                return Err(bad_param(
                    "messages",
                    format!("messages[{i}]: role '{other}' is not supported by Anthropic."),
                ))
            }
        };
        mark_last(&mut blocks, message_cache);
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let messages = turns
        .into_iter()
        .map(|(role, mut blocks)| {
            if role == "user" {
                // tool_result blocks must come first in their message.
                blocks
                    .sort_by_key(|b| b.get("type").and_then(Value::as_str) != Some("tool_result"));
            }
            let single_text = blocks.len() == 1
                && blocks[0].get("type").and_then(Value::as_str) == Some("text")
                && blocks[0].get("cache_control").is_none();
            let content = if single_text {
                blocks[0]["text"].clone()
            } else {
                Value::Array(blocks)
            };
            json!({"role": role, "content": content})
        })
        .collect();
    Ok((system, messages))
}

fn mark_last(blocks: &mut [Value], cache_control: Option<&Value>) {
    if let (Some(cc), Some(Value::Object(last))) = (cache_control, blocks.last_mut()) {
        last.insert("cache_control".into(), cc.clone());
    }
}

fn text_block(text: &str, part: Option<&Value>) -> Value {
    let mut block = Map::new();
    block.insert("type".into(), json!("text"));
    block.insert("text".into(), json!(text));
    if let Some(cc) = part.and_then(|p| p.get("cache_control")) {
        block.insert("cache_control".into(), cc.clone());
    }
    Value::Object(block)
}

/// System or assistant content: text only.
fn text_blocks(content: &Value, i: usize) -> Result<Vec<Value>, GatewayError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![text_block(s, None)]),
        Value::Array(parts) => {
            let mut out = Vec::new();
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = part.get("text").and_then(Value::as_str).unwrap_or("");
                        if !text.is_empty() {
                            out.push(text_block(text, Some(part)));
                        }
                    }
                    Some("refusal") => {
                        let text = part.get("refusal").and_then(Value::as_str).unwrap_or("");
                        if !text.is_empty() {
                            out.push(text_block(text, None));
                        }
                    }
                    other => {
                        return Err(bad_param(
                            "messages",
                            format!(
                                "messages[{i}]: content part type {:?} is only allowed in user messages.",
                                other.unwrap_or("")
                            ),
                        ))
                    }
                }
            }
            Ok(out)
        }
        _ => Err(bad_param(
            "messages",
            format!("messages[{i}]: content must be a string or an array of parts."),
        )),
    }
}

/// User (and tool result) content: text, images, PDFs.
fn user_blocks(content: &Value, i: usize) -> Result<Vec<Value>, GatewayError> {
    let Value::Array(parts) = content else {
        return text_blocks(content, i);
    };
    let mut out = Vec::new();
    for part in parts {
        let mut block = match part.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = part.get("text").and_then(Value::as_str).unwrap_or("");
                if text.is_empty() {
                    continue;
                }
                out.push(text_block(text, Some(part)));
                continue;
            }
            Some("image_url") => {
                let url = part
                    .get("image_url")
                    .and_then(|u| u.get("url").or(Some(u)))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        bad_param("messages", format!("messages[{i}]: image_url needs a url."))
                    })?;
                json!({"type": "image", "source": media_source(url, i)?})
            }
            Some("file") => {
                let file = part.get("file").unwrap_or(&Value::Null);
                match file.get("file_data").and_then(Value::as_str) {
                    Some(data) => json!({"type": "document", "source": media_source(data, i)?}),
                    None => {
                        return Err(bad_param(
                            "messages",
                            format!("messages[{i}]: file parts need inline file_data (a data: URL); file_id is not supported for Anthropic."),
                        ))
                    }
                }
            }
            // Blocks already in Anthropic's shape.
            Some("image" | "document" | "tool_result" | "search_result") => part.clone(),
            other => {
                return Err(bad_param(
                    "messages",
                    format!(
                        "messages[{i}]: content part type {:?} is not supported by Anthropic.",
                        other.unwrap_or("")
                    ),
                ))
            }
        };
        if let (Some(cc), Value::Object(b)) = (part.get("cache_control"), &mut block) {
            b.insert("cache_control".into(), cc.clone());
        }
        out.push(block);
    }
    Ok(out)
}

/// A data URL → base64 source; an http(s) URL → url source.
fn media_source(url: &str, i: usize) -> Result<Value, GatewayError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| bad_param("messages", format!("messages[{i}]: malformed data URL.")))?;
        let media_type = meta.strip_suffix(";base64").ok_or_else(|| {
            bad_param(
                "messages",
                format!("messages[{i}]: data URLs must be base64-encoded."),
            )
        })?;
        return Ok(json!({"type": "base64", "media_type": media_type, "data": data}));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "url", "url": url}));
    }
    Err(bad_param(
        "messages",
        format!("messages[{i}]: image and file URLs must be data: or http(s) URLs."),
    ))
}

fn assistant_blocks(m: &Value, i: usize) -> Result<Vec<Value>, GatewayError> {
    let mut blocks = Vec::new();
    if let Some(Value::Array(thinking)) = m.get("thinking_blocks") {
        blocks.extend(thinking.iter().cloned());
    }
    blocks.extend(text_blocks(m.get("content").unwrap_or(&Value::Null), i)?);
    if let Some(Value::Array(calls)) = m.get("tool_calls") {
        for call in calls {
            let function = call.get("function").unwrap_or(&Value::Null);
            let name = function.get("name").and_then(Value::as_str).unwrap_or("");
            let input = match function.get("arguments") {
                None | Some(Value::Null) => json!({}),
                Some(Value::String(s)) if s.trim().is_empty() => json!({}),
                Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|e| {
                    bad_param(
                        "messages",
                        format!("messages[{i}]: tool call arguments are not valid JSON: {e}"),
                    )
                })?,
                Some(other) => other.clone(),
            };
            if !input.is_object() {
                return Err(bad_param(
                    "messages",
                    format!("messages[{i}]: tool call arguments must be a JSON object."),
                ));
            }
            blocks.push(json!({
                "type": "tool_use",
                "id": call.get("id").cloned().unwrap_or(Value::Null),
                "name": name,
                "input": input,
            }));
        }
    }
    Ok(blocks)
}

// ---------------------------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct AnthropicMessage {
    id: String,
    model: String,
    #[serde(default)]
    content: Vec<Value>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: AnthropicUsage,
}

#[derive(Deserialize, Default, Clone, Copy, Debug)]
struct AnthropicUsage {
    #[serde(default, deserialize_with = "null_zero")]
    input_tokens: u64,
    #[serde(default, deserialize_with = "null_zero")]
    output_tokens: u64,
    #[serde(default, deserialize_with = "null_zero")]
    cache_creation_input_tokens: u64,
    #[serde(default, deserialize_with = "null_zero")]
    cache_read_input_tokens: u64,
}

fn null_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.unwrap_or(0))
}

impl AnthropicUsage {
    /// OpenAI counting: prompt tokens include cache reads and writes.
    fn to_usage(self, reasoning_tokens: u64) -> Usage {
        let prompt =
            self.input_tokens + self.cache_read_input_tokens + self.cache_creation_input_tokens;
        Usage {
            prompt_tokens: prompt,
            completion_tokens: self.output_tokens,
            total_tokens: prompt + self.output_tokens,
            cached_tokens: self.cache_read_input_tokens,
            reasoning_tokens: reasoning_tokens.min(self.output_tokens),
        }
    }

    /// OpenAI's usage object, plus Anthropic's cache counts for cost accounting (as LiteLLM
    /// adds).
    fn to_openai(self, usage: &Usage) -> openai::Usage {
        openai::Usage {
            cache_creation_input_tokens: Some(self.cache_creation_input_tokens),
            cache_read_input_tokens: Some(self.cache_read_input_tokens),
            ..usage.to_openai()
        }
    }

    /// Overwrite with the non-zero counts of a later report (stream `message_delta`).
    fn merge(&mut self, later: &Value) {
        let read = |k: &str| later.get(k).and_then(Value::as_u64);
        if let Some(v) = read("input_tokens").filter(|v| *v > 0) {
            self.input_tokens = v;
        }
        if let Some(v) = read("output_tokens") {
            self.output_tokens = v;
        }
        if let Some(v) = read("cache_creation_input_tokens").filter(|v| *v > 0) {
            self.cache_creation_input_tokens = v;
        }
        if let Some(v) = read("cache_read_input_tokens").filter(|v| *v > 0) {
            self.cache_read_input_tokens = v;
        }
    }
}

/// Anthropic reports no separate thinking-token count: estimated from the thinking text (about
/// four characters a token), as LiteLLM counts it.
fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// `stop_reason` → OpenAI `finish_reason`.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded" | "compaction") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn and anything newer.
        _ => "stop",
    }
}

// ---------------------------------------------------------------------------------------------
// Stream
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Block {
    Text,
    /// A tool call and its OpenAI `tool_calls` index.
    Tool(u32),
    /// The `response_format` tool: its JSON is the content.
    JsonTool,
    Thinking,
    Other,
}

/// Anthropic's named SSE events → OpenAI chunks. The finish chunk, the usage chunk and `[DONE]`
/// are written at `message_stop`: a stream that ends before it gets neither, so the relay reports
/// it as broken.
pub struct AnthropicStream {
    events: SseEvents,
    writer: ChunkWriter,
    json_mode: bool,
    secret: Option<Secret>,
    blocks: Vec<(u64, Block)>,
    next_tool: u32,
    usage: AnthropicUsage,
    reasoning_chars: String,
    stop_reason: Option<String>,
    json_tool_used: bool,
    other_tool_used: bool,
    started: bool,
    done: bool,
}

impl AnthropicStream {
    pub fn new(model: &str, json_mode: bool, secret: Option<Secret>) -> Self {
        Self {
            events: SseEvents::default(),
            writer: ChunkWriter::new("chatcmpl-anthropic", model),
            json_mode,
            secret,
            blocks: Vec::new(),
            next_tool: 0,
            usage: AnthropicUsage::default(),
            reasoning_chars: String::new(),
            stop_reason: None,
            json_tool_used: false,
            other_tool_used: false,
            started: false,
            done: false,
        }
    }

    fn block(&self, index: u64) -> Block {
        self.blocks
            .iter()
            .rev()
            .find(|(i, _)| *i == index)
            .map_or(Block::Other, |(_, b)| *b)
    }

    fn ensure_started(&mut self) {
        if !self.started {
            self.started = true;
            self.writer.delta(0, Delta::start(), None);
        }
    }

    fn handle(&mut self, event: SseEvent) -> Result<(), GatewayError> {
        if self.done {
            return Ok(());
        }
        let data: Value = match serde_json::from_str(&event.data) {
            Ok(v) => v,
            Err(_) => return Ok(()),
        };
        let kind = data
            .get("type")
            .and_then(Value::as_str)
            .or(event.event.as_deref())
            .unwrap_or("");
        match kind {
            "message_start" => {
                let msg = data.get("message").unwrap_or(&Value::Null);
                if let Some(id) = msg.get("id").and_then(Value::as_str) {
                    self.writer.id = id.to_string();
                }
                if let Some(model) = msg.get("model").and_then(Value::as_str) {
                    self.writer.model = model.to_string();
                }
                if let Some(u) = msg.get("usage") {
                    self.usage.merge(u);
                }
                self.ensure_started();
            }
            "content_block_start" => {
                self.ensure_started();
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = data.get("content_block").unwrap_or(&Value::Null);
                let kind = match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(t) = block
                            .get("text")
                            .and_then(Value::as_str)
                            .filter(|t| !t.is_empty())
                        {
                            self.writer.delta(0, Delta::text(t), None);
                        }
                        Block::Text
                    }
                    Some("tool_use") => {
                        let name = block.get("name").and_then(Value::as_str).unwrap_or("");
                        if self.json_mode && name == RESPONSE_FORMAT_TOOL {
                            self.json_tool_used = true;
                            Block::JsonTool
                        } else {
                            self.other_tool_used = true;
                            let k = self.next_tool;
                            self.next_tool += 1;
                            let id = block.get("id").and_then(Value::as_str).unwrap_or_default();
                            let call = ToolCall::function(id, name, "").at(k);
                            self.writer.delta(0, Delta::tool_call(call), None);
                            Block::Tool(k)
                        }
                    }
                    Some("thinking") => Block::Thinking,
                    _ => Block::Other,
                };
                self.blocks.push((index, kind));
            }
            "content_block_delta" => {
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                let delta = data.get("delta").unwrap_or(&Value::Null);
                let text = |k: &str| delta.get(k).and_then(Value::as_str).unwrap_or("");
                match (delta.get("type").and_then(Value::as_str), self.block(index)) {
                    (Some("text_delta"), _) => {
                        self.writer.delta(0, Delta::text(text("text")), None);
                    }
                    (Some("input_json_delta"), Block::Tool(k)) => {
                        let piece = ToolCall::arguments(k, text("partial_json"));
                        self.writer.delta(0, Delta::tool_call(piece), None);
                    }
                    (Some("input_json_delta"), Block::JsonTool) => {
                        let part = text("partial_json");
                        if !part.is_empty() {
                            self.writer.delta(0, Delta::text(part), None);
                        }
                    }
                    (Some("thinking_delta"), _) => {
                        let t = text("thinking");
                        self.reasoning_chars.push_str(t);
                        self.writer.delta(0, Delta::reasoning(t), None);
                    }
                    // signature_delta, citations_delta, deltas of blocks OpenAI has no place for.
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(reason) = data
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.stop_reason = Some(reason.to_string());
                }
                if let Some(u) = data.get("usage") {
                    self.usage.merge(u);
                }
            }
            "message_stop" => {
                self.ensure_started();
                let mut reason = finish_reason(self.stop_reason.as_deref());
                if self.json_tool_used && !self.other_tool_used && reason == "tool_calls" {
                    reason = "stop";
                }
                self.writer.delta(0, Delta::default(), Some(reason));
                let usage = self.usage.to_usage(estimate_tokens(&self.reasoning_chars));
                self.writer.usage_object(self.usage.to_openai(&usage));
                self.writer.done();
                self.done = true;
            }
            "error" => {
                let err = data.get("error").unwrap_or(&Value::Null);
                let message = err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("the provider sent an error event");
                return Err(upstream_error(
                    self.secret.as_ref(),
                    0,
                    err.get("type").and_then(Value::as_str),
                    message,
                    None,
                ));
            }
            // ping and event types newer than this adapter.
            _ => {}
        }
        Ok(())
    }
}

impl StreamTranslator for AnthropicStream {
    fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, GatewayError> {
        for event in self.events.push(chunk) {
            self.handle(event)?;
        }
        Ok(self.writer.take())
    }

    fn finish(&mut self) -> Result<Bytes, GatewayError> {
        if let Some(event) = self.events.finish() {
            self.handle(event)?;
        }
        Ok(self.writer.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProxyConfig;
    use crate::deployment::CliDefaults;
    use crate::providers::testing::{deployment_from, request};

    fn deployment(params: &str) -> Deployment {
        deployment_from(&format!(
            "model_list:\n  - model_name: c\n    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_key: sk-ant-secret-key-123, {params}}}\n"
        ))
    }

    fn prepare_with(params: &str, body: Value) -> Result<(PreparedRequest, Value), GatewayError> {
        let d = deployment(params);
        let t = d.target_for("c").expect("target");
        let p = ANTHROPIC.prepare(&d, &t, &request(CallKind::Chat, body))?;
        let v: Value = serde_json::from_slice(&p.body).expect("json");
        Ok((p, v))
    }

    fn prepare(body: Value) -> Value {
        prepare_with("api_base: 'https://api.anthropic.com'", body)
            .expect("prepared")
            .1
    }

    fn target() -> Target {
        let d = deployment("api_base: 'https://api.anthropic.com'");
        d.target_for("c").expect("target").into_owned()
    }

    #[test]
    fn url_headers_and_base() {
        let (p, body) = prepare_with(
            "api_base: 'https://api.anthropic.com/'",
            json!({"model": "c", "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .expect("prepared");
        assert_eq!(p.url, "https://api.anthropic.com/v1/messages");
        let header = |name: &str| {
            p.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("x-api-key"), Some("sk-ant-secret-key-123"));
        assert_eq!(header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(header("content-type"), Some("application/json"));
        assert!(header("authorization").is_none());
        assert!(p
            .redacted_headers()
            .iter()
            .all(|(_, v)| !v.contains("secret-key")));
        assert_eq!(body["model"], "claude-sonnet-4-5");
        assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(body["messages"], json!([{"role": "user", "content": "Hi"}]));
        assert_eq!(messages_url("http://h:1/v1"), "http://h:1/v1/messages");
        assert_eq!(
            messages_url("http://h:1/v1/messages"),
            "http://h:1/v1/messages"
        );
        assert_eq!(
            messages_url("http://h:1/proxy"),
            "http://h:1/proxy/v1/messages"
        );
    }

    #[test]
    fn default_base_url_and_env_key() {
        let spec = super::super::by_name("anthropic").expect("registered");
        assert_eq!(spec.wire, super::super::Wire::Anthropic);
        assert_eq!(spec.default_api_base, Some("https://api.anthropic.com"));
        assert!(spec.api_key_env.contains(&"ANTHROPIC_API_KEY"));
        assert!(spec.api_base_env.contains(&"ANTHROPIC_API_BASE"));
        assert!(super::super::adapter_for(Wire::Anthropic).is_some());
        // A bare claude model name resolves to this adapter too.
        let cfg = ProxyConfig::parse(
            "model_list:\n  - model_name: c\n    litellm_params: {model: claude-haiku-4-5, api_key: k}\n",
            "t",
        )
        .expect("valid");
        let d = Deployment::from_entry(&cfg.model_list[0], &CliDefaults::default());
        let t = d.target_for("c").expect("target");
        assert_eq!(t.spec.name, "anthropic");
        assert_eq!(t.api_base, "https://api.anthropic.com");
    }

    use super::super::Wire;

    #[test]
    fn system_merging_tools_and_tool_results() {
        let body = prepare(json!({
            "model": "c",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "developer", "content": [{"type": "text", "text": "Use metric units.", "cache_control": {"type": "ephemeral"}}]},
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "user", "content": [{"type": "text", "text": "And Rome?"}]},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "24C"}]},
                {"role": "user", "content": "Thanks"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
            "tool_choice": "required",
            "parallel_tool_calls": false
        }));
        assert_eq!(
            body["system"],
            json!([
                {"type": "text", "text": "You are terse."},
                {"type": "text", "text": "Use metric units.", "cache_control": {"type": "ephemeral"}}
            ])
        );
        let msgs = body["messages"].as_array().expect("messages");
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert_eq!(
            msgs[0],
            json!({"role": "user", "content": [
                {"type": "text", "text": "Weather in Paris?"},
                {"type": "text", "text": "And Rome?"}
            ]})
        );
        assert_eq!(
            msgs[1]["content"],
            json!([
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}}
            ])
        );
        assert_eq!(
            msgs[2],
            json!({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "24C"}]},
                {"type": "text", "text": "Thanks"}
            ]})
        );
        assert_eq!(
            body["tools"],
            json!([{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}])
        );
        assert_eq!(
            body["tool_choice"],
            json!({"type": "any", "disable_parallel_tool_use": true})
        );
        assert!(body.get("parallel_tool_calls").is_none());
    }

    #[test]
    fn tool_choice_mapping() {
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        let cases = [
            (json!("auto"), json!({"type": "auto"})),
            (json!("none"), json!({"type": "none"})),
            (json!("required"), json!({"type": "any"})),
            (
                json!({"type": "function", "function": {"name": "f"}}),
                json!({"type": "tool", "name": "f"}),
            ),
        ];
        for (choice, expected) in cases {
            let body = prepare(
                json!({"model": "c", "messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": choice}),
            );
            assert_eq!(body["tool_choice"], expected);
            assert_eq!(
                body["tools"][0]["input_schema"],
                json!({"type": "object", "properties": {}})
            );
        }
        // No tools: no tool_choice (Anthropic refuses one).
        let body = prepare(
            json!({"model": "c", "messages": [{"role": "user", "content": "x"}], "tool_choice": "none"}),
        );
        assert!(body.get("tool_choice").is_none());
    }

    #[test]
    fn images_pdf_params_and_user() {
        let body = prepare(json!({
            "model": "c",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0="}}
            ]}],
            "max_completion_tokens": 300,
            "temperature": 0.5,
            "top_p": 0.9,
            "top_k": 40,
            "stop": ["END", "  ", "\n\nHuman:"],
            "user": "user-1234",
            "stream": true,
            "stream_options": {"include_usage": true}
        }));
        assert_eq!(
            body["messages"][0]["content"],
            json!([
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}
            ])
        );
        assert_eq!(body["max_tokens"], 300);
        assert_eq!(body["temperature"], 0.5);
        assert_eq!(body["top_p"], 0.9);
        assert_eq!(body["top_k"], 40);
        assert_eq!(body["stop_sequences"], json!(["END", "\n\nHuman:"]));
        assert_eq!(body["metadata"], json!({"user_id": "user-1234"}));
        assert_eq!(body["stream"], true);
        for gone in ["stream_options", "max_completion_tokens", "stop", "user"] {
            assert!(body.get(gone).is_none(), "{gone}");
        }
        // Personal data is not sent as user_id.
        for user in ["a@b.com", "+1 (415) 555-0100"] {
            let body = prepare(
                json!({"model": "c", "messages": [{"role": "user", "content": "x"}], "user": user}),
            );
            assert!(body.get("metadata").is_none(), "{user}");
        }
    }

    #[test]
    fn max_tokens_from_request_deployment_or_default_and_thinking() {
        let msgs = json!([{"role": "user", "content": "x"}]);
        let (_, body) = prepare_with(
            "max_tokens: 1000, temperature: 0.1",
            json!({"model": "c", "messages": msgs}),
        )
        .expect("prepared");
        assert_eq!(body["max_tokens"], 1000);
        assert_eq!(body["temperature"], 0.1);
        let (_, body) = prepare_with(
            "max_tokens: 1000",
            json!({"model": "c", "messages": msgs, "max_tokens": 50}),
        )
        .expect("prepared");
        assert_eq!(body["max_tokens"], 50);
        let body = prepare(json!({"model": "c", "messages": msgs, "reasoning_effort": "high"}));
        assert_eq!(
            body["thinking"],
            json!({"type": "enabled", "budget_tokens": THINKING_BUDGET_HIGH})
        );
        assert!(body["max_tokens"].as_u64().unwrap() > THINKING_BUDGET_HIGH);
        assert!(body.get("reasoning_effort").is_none());
    }

    #[test]
    fn response_format_becomes_a_forced_tool() {
        let schema = json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]});
        let body = prepare(json!({
            "model": "c",
            "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": true}}
        }));
        assert_eq!(body["tools"][0]["name"], RESPONSE_FORMAT_TOOL);
        assert_eq!(body["tools"][0]["input_schema"], schema);
        assert_eq!(
            body["tool_choice"],
            json!({"type": "tool", "name": RESPONSE_FORMAT_TOOL})
        );
        assert!(body.get("response_format").is_none());
        let body = prepare(
            json!({"model": "c", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}),
        );
        assert_eq!(
            body["tools"][0]["input_schema"],
            json!({"type": "object", "additionalProperties": true, "properties": {}})
        );
    }

    #[test]
    fn unsupported_params_error_or_drop_and_neutral_values_pass() {
        let msgs = json!([{"role": "user", "content": "x"}]);
        let err = prepare_with("", json!({"model": "c", "messages": msgs, "seed": 7}))
            .err()
            .expect("unsupported");
        assert_eq!(err.param(), Some("seed"));
        assert!(err.to_string().contains("UnsupportedParamsError"));
        let err = prepare_with("", json!({"model": "c", "messages": msgs, "n": 2}))
            .err()
            .expect("n > 1");
        assert_eq!(err.param(), Some("n"));
        let (_, body) = prepare_with(
            "",
            json!({"model": "c", "messages": msgs, "seed": 7, "n": 2, "drop_params": true}),
        )
        .expect("dropped");
        assert!(body.get("seed").is_none() && body.get("n").is_none());
        let (_, body) = prepare_with(
            "drop_params: true",
            json!({"model": "c", "messages": msgs, "logit_bias": {"1": 2}}),
        )
        .expect("deployment drops");
        assert!(body.get("logit_bias").is_none());
        let (_, body) = prepare_with(
            "",
            json!({"model": "c", "messages": msgs, "n": 1, "presence_penalty": 0, "logprobs": false, "store": false, "service_tier": "default"}),
        )
        .expect("neutral values are fine");
        assert!(body.get("n").is_none() && body.get("presence_penalty").is_none());
        assert!(body.get("store").is_none());
        assert_eq!(body["service_tier"], "standard_only");
        let err = prepare_with(
            "",
            json!({"model": "c", "messages": msgs, "service_tier": "flex"}),
        )
        .err()
        .expect("flex is OpenAI-only");
        assert_eq!(err.param(), Some("service_tier"));
    }

    #[test]
    fn embeddings_and_completions_are_refused() {
        let d = deployment("");
        let t = d.target_for("c").expect("target");
        let err = ANTHROPIC
            .prepare(
                &d,
                &t,
                &request(CallKind::Embedding, json!({"model": "c", "input": "x"})),
            )
            .err()
            .expect("no embeddings");
        assert_eq!(err.status_code().as_u16(), 400);
        assert!(err.to_string().contains("no embeddings"));
        let err = ANTHROPIC
            .prepare(
                &d,
                &t,
                &request(CallKind::Completion, json!({"model": "c", "prompt": "x"})),
            )
            .err()
            .expect("no completions");
        assert_eq!(err.status_code().as_u16(), 400);
    }

    use actix_web::ResponseError as _;

    fn chat_req(body: Value) -> LlmRequest {
        request(CallKind::Chat, body)
    }

    /// A response copied from Anthropic's documentation (Messages API, with tool use).
    #[test]
    fn response_with_text_tool_use_and_cache_usage() {
        let raw = br#"{"id":"msg_01Aq9w938a90dw8q","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
            "content":[{"type":"text","text":"I'll check the weather."},
                       {"type":"tool_use","id":"toolu_01A09q90qw90lq917835lq9","name":"get_weather","input":{"location":"San Francisco, CA","unit":"celsius"}}],
            "stop_reason":"tool_use","stop_sequence":null,
            "usage":{"input_tokens":472,"output_tokens":91,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,
                     "cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":0},"service_tier":"standard"}}"#;
        let t = ANTHROPIC
            .translate_response(
                &chat_req(json!({"model": "c", "messages": [{"role": "user", "content": "x"}]})),
                Bytes::from_static(raw),
            )
            .expect("translated");
        let v: Value = serde_json::from_slice(&t.body).expect("json");
        assert_eq!(v["id"], "msg_01Aq9w938a90dw8q");
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "claude-sonnet-4-5-20250929");
        let choice = &v["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], "I'll check the weather.");
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().expect("string"))
                .expect("json args");
        assert_eq!(args["unit"], "celsius");
        assert_eq!(v["usage"]["prompt_tokens"], 2572);
        assert_eq!(v["usage"]["completion_tokens"], 91);
        assert_eq!(v["usage"]["total_tokens"], 2663);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 2000);
        assert_eq!(v["usage"]["cache_creation_input_tokens"], 100);
        let u = t.usage.expect("usage");
        assert_eq!(
            (u.prompt_tokens, u.cached_tokens, u.total_tokens),
            (2572, 2000, 2663)
        );
    }

    #[test]
    fn stop_reasons_thinking_and_json_mode() {
        for (stop, finish) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
            ("pause_turn", "stop"),
            ("model_context_window_exceeded", "length"),
        ] {
            assert_eq!(finish_reason(Some(stop)), finish, "{stop}");
        }
        let raw = br#"{"id":"msg_2","type":"message","role":"assistant","model":"claude-sonnet-4-5",
            "content":[{"type":"thinking","thinking":"Let me think step by step.","signature":"EqQBCgIYAhIM"},{"type":"text","text":"42"}],
            "stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":30,"cache_creation_input_tokens":null,"cache_read_input_tokens":null}}"#;
        let t = ANTHROPIC
            .translate_response(
                &chat_req(json!({"model": "c", "messages": [{"role": "user", "content": "x"}]})),
                Bytes::from_static(raw),
            )
            .expect("translated");
        let v: Value = serde_json::from_slice(&t.body).expect("json");
        assert_eq!(v["choices"][0]["message"]["content"], "42");
        assert_eq!(
            v["choices"][0]["message"]["reasoning_content"],
            "Let me think step by step."
        );
        assert_eq!(
            v["choices"][0]["message"]["thinking_blocks"][0]["signature"],
            "EqQBCgIYAhIM"
        );
        assert_eq!(v["usage"]["prompt_tokens"], 10);
        assert!(
            v["usage"]["completion_tokens_details"]["reasoning_tokens"]
                .as_u64()
                .unwrap()
                > 0
        );

        let raw = br#"{"id":"msg_3","type":"message","role":"assistant","model":"claude-sonnet-4-5",
            "content":[{"type":"tool_use","id":"toolu_9","name":"json_tool_call","input":{"name":"Ada"}}],
            "stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":5}}"#;
        let req = chat_req(
            json!({"model": "c", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}),
        );
        let t = ANTHROPIC
            .translate_response(&req, Bytes::from_static(raw))
            .expect("translated");
        let v: Value = serde_json::from_slice(&t.body).expect("json");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["choices"][0]["message"]["content"], "{\"name\":\"Ada\"}");
        assert!(v["choices"][0]["message"].get("tool_calls").is_none());
    }

    #[test]
    fn errors_from_real_bodies() {
        let t = target();
        let ctx = br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 215000 tokens > 200000 maximum"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}"#;
        let e = ANTHROPIC.translate_error(&t, 400, None, ctx);
        assert_eq!(e.code(), "context_length_exceeded");
        assert!(e
            .to_string()
            .starts_with("ContextWindowExceededError: AnthropicException - prompt is too long"));
        let limit = br#"{"type":"error","error":{"type":"invalid_request_error","message":"input length and `max_tokens` exceed context limit: 190000 + 20000 > 200000, decrease input length or `max_tokens` and try again"}}"#;
        assert_eq!(
            ANTHROPIC.translate_error(&t, 400, None, limit).code(),
            "context_length_exceeded"
        );
        let big = br#"{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."}}"#;
        assert_eq!(
            ANTHROPIC.translate_error(&t, 413, None, big).code(),
            "context_length_exceeded"
        );
        let over =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let e = ANTHROPIC.translate_error(&t, 529, None, over);
        assert_eq!(e.status_code().as_u16(), 503);
        assert_eq!(e.error_type(), "service_unavailable_error");
        assert!(e.is_retryable());
        let rl = br#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#;
        let e = ANTHROPIC.translate_error(&t, 429, Some(Duration::from_secs(7)), rl);
        assert_eq!(e.error_type(), "rate_limit_error");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        let auth = br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key sk-ant-secret-key-123"}}"#;
        let e = ANTHROPIC.translate_error(&t, 401, None, auth);
        assert_eq!(e.error_type(), "authentication_error");
        assert!(!e.to_string().contains("sk-ant-secret-key-123"));
        let bad = br#"{"type":"error","error":{"type":"invalid_request_error","message":"messages: roles must alternate"}}"#;
        let e = ANTHROPIC.translate_error(&t, 400, None, bad);
        assert_eq!(e.error_type(), "invalid_request_error");
        assert!(!e.is_retryable());
        let html = ANTHROPIC.translate_error(&t, 502, None, b"<html>bad gateway</html>");
        assert_eq!(html.error_type(), "internal_server_error");
    }

    fn run_stream(json_mode: bool, raw: &str, split: usize) -> Result<Vec<String>, GatewayError> {
        let mut s = AnthropicStream::new("claude-sonnet-4-5", json_mode, None);
        let mut out = Vec::new();
        let bytes = raw.as_bytes();
        for piece in bytes.chunks(split) {
            out.extend_from_slice(&s.feed(piece)?);
        }
        out.extend_from_slice(&s.finish()?);
        let text = String::from_utf8(out).expect("utf8");
        Ok(text
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: ").map(str::to_string))
            .collect())
    }

    /// The stream example from Anthropic's streaming documentation (text, then a tool call).
    const TOOL_STREAM: &str = "event: message_start
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_014p7gG3wDgGV9EUtLvnow3U\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"output_tokens\":2,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":100},\"content\":[],\"stop_reason\":null}}

event: content_block_start
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}

event: ping
data: {\"type\": \"ping\"}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Okay\"}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\", let's check\"}}

event: content_block_stop
data: {\"type\":\"content_block_stop\",\"index\":0}

event: content_block_start
data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\",\"input\":{}}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\":\"}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" \\\"San Francisco, CA\\\"}\"}}

event: content_block_stop
data: {\"type\":\"content_block_stop\",\"index\":1}

event: message_delta
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}

event: message_stop
data: {\"type\":\"message_stop\"}

";

    #[test]
    fn stream_text_then_tool_call_in_any_split() {
        for split in [1, 7, 64, TOOL_STREAM.len()] {
            let events = run_stream(false, TOOL_STREAM, split).expect("ok");
            assert_eq!(
                events.last().map(String::as_str),
                Some("[DONE]"),
                "split {split}"
            );
            let chunks: Vec<Value> = events[..events.len() - 1]
                .iter()
                .map(|e| serde_json::from_str(e).expect("json"))
                .collect();
            assert!(chunks
                .iter()
                .all(|c| c["id"] == "msg_014p7gG3wDgGV9EUtLvnow3U"));
            assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
            let text: String = chunks
                .iter()
                .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
                .collect();
            assert_eq!(text, "Okay, let's check");
            let calls: Vec<&Value> = chunks
                .iter()
                .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
                .collect();
            assert_eq!(calls[0]["index"], 0);
            assert_eq!(calls[0]["id"], "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
            assert_eq!(calls[0]["function"]["name"], "get_weather");
            let args: String = calls
                .iter()
                .filter_map(|c| c["function"]["arguments"].as_str())
                .collect();
            assert_eq!(args, "{\"location\": \"San Francisco, CA\"}");
            assert!(calls[1..].iter().all(|c| c.get("id").is_none()));
            let finish = &chunks[chunks.len() - 2];
            assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
            let usage = &chunks[chunks.len() - 1];
            assert_eq!(usage["choices"], json!([]));
            assert_eq!(usage["usage"]["prompt_tokens"], 572);
            assert_eq!(usage["usage"]["completion_tokens"], 89);
            assert_eq!(usage["usage"]["total_tokens"], 661);
            assert_eq!(
                usage["usage"]["prompt_tokens_details"]["cached_tokens"],
                100
            );
        }
    }

    #[test]
    fn stream_thinking_json_mode_errors_and_truncation() {
        let thinking = "event: message_start
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_t\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}

event: content_block_start
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Hmm.\"}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQBCg\"}}

event: content_block_stop
data: {\"type\":\"content_block_stop\",\"index\":0}

event: content_block_start
data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_j\",\"name\":\"json_tool_call\",\"input\":{}}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\": 1}\"}}

event: content_block_stop
data: {\"type\":\"content_block_stop\",\"index\":1}

event: message_delta
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":20}}

event: message_stop
data: {\"type\":\"message_stop\"}

";
        let events = run_stream(true, thinking, 13).expect("ok");
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).expect("json"))
            .collect();
        let reasoning: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["reasoning_content"].as_str())
            .collect();
        assert_eq!(reasoning, "Hmm.");
        let content: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(content, "{\"a\": 1}");
        assert!(chunks
            .iter()
            .all(|c| c["choices"][0]["delta"].get("tool_calls").is_none()));
        assert_eq!(
            chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
            "stop"
        );

        // A stream cut before message_stop ends without a finish chunk and without [DONE].
        let cut = thinking
            .split("event: message_delta")
            .next()
            .expect("prefix");
        let events = run_stream(true, cut, 50).expect("ok");
        assert!(!events.iter().any(|e| e == "[DONE]"));
        assert!(!events.iter().any(|e| e.contains("\"finish_reason\":\"")));

        // An error event mid-stream is an error.
        let err = format!(
            "{cut}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}}}\n\n"
        );
        let e = run_stream(false, &err, 40).expect_err("error event");
        assert!(e.to_string().contains("Overloaded"), "{e}");
        assert!(e.is_retryable());
    }

    #[test]
    fn one_wire_table_both_directions() {
        // Every documented pair round-trips.
        for (status, kind) in ERROR_TYPES {
            assert_eq!(error_type_for_status(status), kind, "{status}");
            assert_eq!(status_for_error_type(kind), Some(status), "{kind}");
        }
        // 408 and 503, which Anthropic does not send but the gateway answers with.
        assert_eq!(error_type_for_status(408), "timeout_error");
        assert_eq!(error_type_for_status(503), "overloaded_error");
        assert_eq!(status_for_error_type("timeout_error"), Some(504));
        assert_eq!(status_for_error_type("overloaded_error"), Some(529));
        // The rest by family.
        assert_eq!(error_type_for_status(422), "invalid_request_error");
        assert_eq!(error_type_for_status(502), "api_error");
        assert_eq!(status_for_error_type("no_such_error"), None);
        // The inbound Messages API writes the same table.
        for status in [
            400, 401, 402, 403, 404, 408, 413, 422, 429, 500, 502, 503, 504, 529,
        ] {
            assert_eq!(
                crate::messages_api::error_type(status),
                error_type_for_status(status),
                "{status}"
            );
        }
    }

    #[test]
    fn a_stream_error_event_takes_its_status_from_the_wire_table() {
        use crate::error::{ErrorClass, Retry};
        let event = |kind: &str| {
            upstream_error(None, 0, Some(kind), "m", None)
                .classify(false)
                .expect("classified")
        };
        let cases = [
            (
                "invalid_request_error",
                400,
                Retry::No,
                ErrorClass::BadRequest,
            ),
            (
                "authentication_error",
                401,
                Retry::IfGroupHasOthers,
                ErrorClass::Authentication,
            ),
            ("billing_error", 402, Retry::No, ErrorClass::BadRequest),
            ("not_found_error", 404, Retry::No, ErrorClass::NotFound),
            ("rate_limit_error", 429, Retry::Yes, ErrorClass::RateLimit),
            ("api_error", 500, Retry::Yes, ErrorClass::InternalServer),
            ("timeout_error", 504, Retry::Yes, ErrorClass::InternalServer),
            // Overloaded is the gateway's 503, retryable, whatever status it came with.
            (
                "overloaded_error",
                503,
                Retry::Yes,
                ErrorClass::ServiceUnavailable,
            ),
        ];
        for (kind, status, retry, bucket) in cases {
            let e = upstream_error(None, 0, Some(kind), "m", None);
            assert_eq!(e.status_code().as_u16(), status, "{kind}");
            assert_eq!(event(kind).retry, retry, "{kind}");
            assert_eq!(event(kind).bucket, bucket, "{kind}");
        }
        let e = upstream_error(None, 529, Some("overloaded_error"), "m", None);
        assert_eq!(e.status_code().as_u16(), 503);
    }
}
