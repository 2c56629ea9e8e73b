//! Cohere v2: `POST /v2/chat` and `POST /v2/embed` with a bearer key. The chat body is close to
//! OpenAI's (messages with system/user/assistant/tool roles, `tool_calls`, tools in OpenAI's shape);
//! the differences are parameter names (`stop_sequences`, `p`, `k`), the upper-case `tool_choice`,
//! `response_format` with `json_schema` inside a `json_object`, the response's content parts and
//! finish reasons, and a stream of typed SSE events. `POST /v2/rerank` answers `/rerank`
//! (`crate::rerank` writes its body and reads its answer).

use super::ErrorReply;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::native::{self, upstream_error};
use super::openai::classify;
use super::stream::{ChunkWriter, SseEvents, StreamTranslator};
use super::{PreparedRequest, ProviderAdapter, TranslatedResponse};
use crate::deployment::{Deployment, Target};
use crate::error::{GatewayError, UpstreamErrorKind};
use crate::llm::{CallKind, LlmRequest, Usage};
use tollgate_wire::openai::{Delta, ToolCall};

pub struct CohereAdapter;

pub static COHERE: CohereAdapter = CohereAdapter;

const PROVIDER: &str = "Cohere";

impl ProviderAdapter for CohereAdapter {
    fn prepare(
        &self,
        deployment: &Deployment,
        target: &Target,
        req: &LlmRequest,
    ) -> Result<PreparedRequest, GatewayError> {
        let (path, body) = match req.kind {
            CallKind::Chat => ("/v2/chat", chat_body(deployment, target, req)?),
            CallKind::Embedding => ("/v2/embed", embed_body(deployment, target, req)?),
            CallKind::Rerank => (
                "/v2/rerank",
                crate::rerank::cohere_v2_body(&target.model, &req.body),
            ),
            CallKind::ImageGeneration
            | CallKind::ImageEdit
            | CallKind::Moderation
            | CallKind::Transcription
            | CallKind::Translation
            | CallKind::Speech
            | CallKind::Responses => {
                return Err(crate::providers::native::unsupported_call(target, req.kind))
            }
            CallKind::Completion => {
                return Err(native::bad_request(
                    target,
                    "text completions are not available for Cohere; use /chat/completions",
                ))
            }
        };
        PreparedRequest::json(
            target.url(format!("{}{path}", base_url(&target.api_base))),
            native::json_headers(deployment, target, req.stream),
            &body,
        )
    }

    fn translate_response(
        &self,
        req: &LlmRequest,
        body: Bytes,
    ) -> Result<TranslatedResponse, GatewayError> {
        if req.kind == CallKind::Rerank {
            return crate::rerank::normalize(req, &body);
        }
        let v: Value = serde_json::from_slice(&body).map_err(|e| native::bad_body(PROVIDER, e))?;
        match req.kind {
            CallKind::Embedding => embed_response(&req.model, &v),
            _ => chat_response(&req.model, &v),
        }
    }

    fn supports(&self, kind: CallKind) -> bool {
        matches!(
            kind,
            CallKind::Chat | CallKind::Completion | CallKind::Embedding | CallKind::Rerank
        )
    }

    fn error(&self, reply: &ErrorReply<'_>) -> GatewayError {
        let (target, status, retry_after, body) = reply.parts();
        let message = native::error_text(status, body, &["message", "error"]);
        let (status, kind) = error_kind(status, &message);
        upstream_error(target, PROVIDER, status, kind, &message, retry_after)
    }

    fn stream_translator(
        &self,
        target: &Target,
        _req: &LlmRequest,
    ) -> Option<Box<dyn StreamTranslator>> {
        Some(Box::new(CohereStream::new(&target.model)))
    }
}

/// `api_base` without a path LiteLLM configs sometimes include (`…/v2/chat`, `…/v1`).
fn base_url(api_base: &str) -> &str {
    let mut base = api_base.trim_end_matches('/');
    for suffix in ["/chat", "/embed", "/rerank"] {
        base = base.strip_suffix(suffix).unwrap_or(base);
    }
    for suffix in ["/v2", "/v1"] {
        base = base.strip_suffix(suffix).unwrap_or(base);
    }
    base
}

/// Status and class of a Cohere error. Cohere words context overflows "too many tokens" (and
/// "too long"), answers 498 for an invalid key.
fn error_kind(status: u16, message: &str) -> (u16, UpstreamErrorKind) {
    let lower = message.to_ascii_lowercase();
    if matches!(status, 400 | 413 | 422)
        && (lower.contains("too many tokens") || lower.contains("too long"))
    {
        return (status, UpstreamErrorKind::ContextWindowExceeded);
    }
    if status == 498 {
        return (401, UpstreamErrorKind::Authentication);
    }
    if status == 499 {
        return (502, UpstreamErrorKind::Connection);
    }
    (status, classify(status, None, message))
}

fn chat_body(
    deployment: &Deployment,
    target: &Target,
    req: &LlmRequest,
) -> Result<Map<String, Value>, GatewayError> {
    let mut src = native::openai_body(deployment, target, req, native::UNSUPPORTED_CHAT)?;
    if src.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1)
        && !native::drop_params(deployment, req)
    {
        return Err(native::unsupported_error(target, &["n"]));
    }
    src.remove("n");
    for k in native::IGNORED_CHAT {
        src.remove(*k);
    }

    let mut out = Map::new();
    out.insert("model".into(), json!(target.model));
    let messages = src
        .remove("messages")
        .and_then(|m| m.as_array().cloned())
        .unwrap_or_default();
    out.insert(
        "messages".into(),
        Value::Array(
            messages
                .iter()
                .map(|m| message(target, m))
                .collect::<Result<_, _>>()?,
        ),
    );

    let max = src.remove("max_completion_tokens");
    let max_tokens = src.remove("max_tokens");
    if let Some(m) = max.or(max_tokens).filter(|v| !v.is_null()) {
        out.insert("max_tokens".into(), m);
    }
    if let Some(stop) = src.remove("stop").filter(|v| !v.is_null()) {
        out.insert(
            "stop_sequences".into(),
            Value::Array(native::stop_list(&stop)),
        );
    }
    if let Some(p) = src.remove("top_p").filter(|v| !v.is_null()) {
        out.insert("p".into(), p);
    }
    if let Some(k) = src.remove("top_k").filter(|v| !v.is_null()) {
        out.insert("k".into(), k);
    }

    let mut tools = src
        .remove("tools")
        .and_then(|t| t.as_array().cloned())
        .unwrap_or_default();
    match src.remove("tool_choice") {
        None | Some(Value::Null) => {}
        Some(Value::String(c)) if c == "auto" => {}
        Some(Value::String(c)) if c == "none" => {
            out.insert("tool_choice".into(), json!("NONE"));
        }
        Some(Value::String(c)) if c == "required" => {
            out.insert("tool_choice".into(), json!("REQUIRED"));
        }
        Some(Value::Object(o)) => {
            // No named choice in Cohere: offer only that tool and require a call.
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            tools.retain(|t| t.pointer("/function/name").and_then(Value::as_str) == Some(&name));
            if tools.is_empty() {
                return Err(native::bad_request(
                    target,
                    format!("tool_choice names '{name}', which is not in tools"),
                ));
            }
            out.insert("tool_choice".into(), json!("REQUIRED"));
        }
        Some(other) => {
            return Err(native::bad_request(
                target,
                format!("unsupported tool_choice {other}"),
            ))
        }
    }
    if !tools.is_empty() {
        let mut strict = false;
        let tools: Vec<Value> = tools
            .into_iter()
            .map(|mut t| {
                if let Some(f) = t.get_mut("function").and_then(Value::as_object_mut) {
                    strict |= f.remove("strict").and_then(|s| s.as_bool()) == Some(true);
                }
                t
            })
            .collect();
        out.insert("tools".into(), Value::Array(tools));
        if strict {
            out.insert("strict_tools".into(), json!(true));
        }
    }

    if let Some(rf) = src.remove("response_format").filter(|v| !v.is_null()) {
        match rf.get("type").and_then(Value::as_str) {
            Some("text") | None => {}
            Some("json_object") => {
                out.insert("response_format".into(), json!({"type": "json_object"}));
            }
            Some("json_schema") => {
                let schema = rf
                    .pointer("/json_schema/schema")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                out.insert(
                    "response_format".into(),
                    json!({"type": "json_object", "json_schema": schema}),
                );
            }
            Some(other) => {
                return Err(native::bad_request(
                    target,
                    format!("unsupported response_format type '{other}'"),
                ))
            }
        }
    }

    src.remove("model");
    src.remove("stream");
    if req.stream {
        out.insert("stream".into(), json!(true));
    }
    // Same-name parameters (temperature, seed, frequency_penalty, presence_penalty) and Cohere's
    // own (documents, safety_mode, citation_options, thinking…) pass as they are.
    for (k, v) in src {
        if !v.is_null() {
            out.entry(k).or_insert(v);
        }
    }
    Ok(out)
}

/// One OpenAI message in Cohere v2's shape.
fn message(target: &Target, m: &Value) -> Result<Value, GatewayError> {
    let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
    Ok(match role {
        "system" | "developer" => {
            json!({"role": "system", "content": native::content_text(m.get("content"))})
        }
        "user" => json!({"role": "user", "content": user_content(target, m.get("content"))?}),
        "assistant" => {
            let mut out = Map::new();
            out.insert("role".into(), json!("assistant"));
            let text = native::content_text(m.get("content"));
            let calls = m
                .get("tool_calls")
                .and_then(Value::as_array)
                .filter(|c| !c.is_empty());
            if let Some(calls) = calls {
                let calls: Vec<Value> = calls
                    .iter()
                    .map(|c| {
                        let args = match c.pointer("/function/arguments") {
                            Some(Value::String(s)) => s.clone(),
                            Some(other) => other.to_string(),
                            None => "{}".into(),
                        };
                        json!({
                            "id": c.get("id").cloned().unwrap_or_else(|| json!(native::call_id())),
                            "type": "function",
                            "function": {
                                "name": c.pointer("/function/name").cloned().unwrap_or(Value::Null),
                                "arguments": args,
                            },
                        })
                    })
                    .collect();
                out.insert("tool_calls".into(), Value::Array(calls));
                // Cohere keeps the model's plan next to its calls; OpenAI histories carry it as
                // the content, if at all.
                let plan = m
                    .get("tool_plan")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or(text);
                if !plan.is_empty() {
                    out.insert("tool_plan".into(), json!(plan));
                }
            } else {
                out.insert("content".into(), json!(text));
            }
            Value::Object(out)
        }
        "tool" => json!({
            "role": "tool",
            "tool_call_id": m.get("tool_call_id").cloned().unwrap_or(Value::Null),
            "content": native::content_text(m.get("content")),
        }),
        other => {
            return Err(native::bad_request(
                target,
                format!("message role '{other}' is not supported"),
            ))
        }
    })
}

fn user_content(target: &Target, content: Option<&Value>) -> Result<Value, GatewayError> {
    let Some(Value::Array(parts)) = content else {
        return Ok(json!(native::content_text(content)));
    };
    let parts = parts
        .iter()
        .map(|p| match p.get("type").and_then(Value::as_str) {
            Some("text") => {
                Ok(json!({"type": "text", "text": p.get("text").cloned().unwrap_or(json!(""))}))
            }
            Some("image_url") => {
                let (url, detail) = match p.get("image_url") {
                    Some(Value::String(u)) => (json!(u), None),
                    Some(o) => (
                        o.get("url").cloned().unwrap_or(Value::Null),
                        o.get("detail").cloned(),
                    ),
                    None => (Value::Null, None),
                };
                let mut image = json!({"url": url});
                if let Some(d) = detail {
                    image["detail"] = d;
                }
                Ok(json!({"type": "image_url", "image_url": image}))
            }
            other => Err(native::bad_request(
                target,
                format!("content part type {other:?} is not supported"),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Value::Array(parts))
}

fn embed_body(
    deployment: &Deployment,
    target: &Target,
    req: &LlmRequest,
) -> Result<Map<String, Value>, GatewayError> {
    let mut src = native::openai_body(deployment, target, req, &[])?;
    let texts = native::input_texts(target, src.get("input"))?;
    if src.get("encoding_format").and_then(Value::as_str) == Some("base64") {
        return Err(native::unsupported_error(target, &["encoding_format"]));
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(target.model));
    out.insert("texts".into(), Value::Array(texts));
    out.insert(
        "input_type".into(),
        src.remove("input_type")
            .filter(Value::is_string)
            .unwrap_or_else(|| json!("search_document")),
    );
    out.insert("embedding_types".into(), json!(["float"]));
    if let Some(d) = src.remove("dimensions").filter(|v| !v.is_null()) {
        out.insert("output_dimension".into(), d);
    }
    if let Some(t) = src.remove("truncate").filter(|v| !v.is_null()) {
        out.insert("truncate".into(), t);
    }
    Ok(out)
}

/// Cohere's finish reason in OpenAI's terms; `Err` for the ones that mean the generation failed.
fn finish_reason(reason: Option<&str>) -> Result<&'static str, String> {
    Ok(match reason.unwrap_or("COMPLETE") {
        "COMPLETE" | "STOP_SEQUENCE" => "stop",
        "MAX_TOKENS" => "length",
        "TOOL_CALL" => "tool_calls",
        "ERROR_TOXIC" => "content_filter",
        "ERROR" | "ERROR_LIMIT" | "TIMEOUT" => {
            return Err(format!(
                "the generation ended with finish_reason {}",
                reason.unwrap_or_default()
            ))
        }
        _ => "stop",
    })
}

/// `usage.tokens` (billed units when absent) as OpenAI usage.
fn usage_of(u: Option<&Value>) -> Usage {
    let count = |section: &str, field: &str| {
        u.and_then(|u| u.get(section))
            .and_then(|s| s.get(field))
            .and_then(Value::as_u64)
    };
    let prompt = count("tokens", "input_tokens")
        .or_else(|| count("billed_units", "input_tokens"))
        .unwrap_or(0);
    let completion = count("tokens", "output_tokens")
        .or_else(|| count("billed_units", "output_tokens"))
        .unwrap_or(0);
    let cached = u
        .and_then(|u| u.get("cached_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    native::usage(prompt, completion, cached)
}

fn chat_response(model: &str, v: &Value) -> Result<TranslatedResponse, GatewayError> {
    let message = v
        .get("message")
        .ok_or_else(|| native::bad_body(PROVIDER, "no message"))?;
    let text: String = message
        .get("content")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str).unwrap_or("text") == "text")
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let calls: Vec<ToolCall> = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(|c| c.iter().map(native::tool_call).collect())
        .unwrap_or_default();
    let finish = finish_reason(v.get("finish_reason").and_then(Value::as_str)).map_err(|e| {
        GatewayError::Upstream {
            kind: UpstreamErrorKind::Server,
            status: 500,
            message: format!("InternalServerError: {PROVIDER}Exception - {e}"),
            code: None,
            param: None,
            retry_after: None,
        }
    })?;
    let finish = if !calls.is_empty() && finish == "stop" {
        "tool_calls"
    } else {
        finish
    };
    let usage = usage_of(v.get("usage"));
    let id = v.get("id").and_then(Value::as_str).map_or_else(
        || format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
        str::to_string,
    );
    TranslatedResponse::completion(
        &native::chat_completion(id, model, text, calls, finish, &usage),
        usage,
    )
}

fn embed_response(model: &str, v: &Value) -> Result<TranslatedResponse, GatewayError> {
    let vectors = v
        .pointer("/embeddings/float")
        .or_else(|| v.get("embeddings").filter(|e| e.is_array()))
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| native::bad_body(PROVIDER, "no float embeddings"))?;
    let prompt = v
        .pointer("/meta/billed_units/input_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    TranslatedResponse::embeddings(&native::embedding_list(model, vectors, prompt))
}

/// Cohere's typed SSE events → OpenAI chunks.
struct CohereStream {
    events: SseEvents,
    out: ChunkWriter,
    started: bool,
    ended: bool,
    /// OpenAI index of the tool call being streamed, and how many were started.
    tool_calls: u32,
}

impl CohereStream {
    fn new(model: &str) -> Self {
        Self {
            events: SseEvents::default(),
            out: ChunkWriter::new(format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()), model),
            started: false,
            ended: false,
            tool_calls: 0,
        }
    }

    fn start(&mut self) {
        if !self.started {
            self.started = true;
            self.out.delta(0, Delta::start(), None);
        }
    }

    fn event(&mut self, name: Option<&str>, data: &str) -> Result<(), GatewayError> {
        if self.ended || data.trim() == "[DONE]" {
            return Ok(());
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|e| native::stream_error(PROVIDER, &e.to_string()))?;
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .or(name)
            .unwrap_or_default();
        match kind {
            "message-start" => {
                if let Some(id) = v.get("id").and_then(Value::as_str) {
                    if !self.started {
                        self.out.id = id.to_string();
                    }
                }
                self.start();
            }
            "content-delta" => {
                self.start();
                if let Some(text) = v
                    .pointer("/delta/message/content/text")
                    .and_then(Value::as_str)
                {
                    if !text.is_empty() {
                        self.out.delta(0, Delta::text(text), None);
                    }
                }
            }
            "tool-call-start" => {
                self.start();
                let call = v
                    .pointer("/delta/message/tool_calls")
                    .cloned()
                    .unwrap_or(Value::Null);
                let index = self.tool_calls;
                self.tool_calls += 1;
                let args = call
                    .pointer("/function/arguments")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let call = native::tool_call_with(&call, args.to_string()).at(index);
                self.out.delta(0, Delta::tool_call(call), None);
            }
            "tool-call-delta" => {
                let args = v
                    .pointer("/delta/message/tool_calls/function/arguments")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !args.is_empty() && self.tool_calls > 0 {
                    let piece = ToolCall::arguments(self.tool_calls - 1, args);
                    self.out.delta(0, Delta::tool_call(piece), None);
                }
            }
            "message-end" => {
                self.start();
                let reason = v.pointer("/delta/finish_reason").and_then(Value::as_str);
                let finish =
                    finish_reason(reason).map_err(|e| native::stream_error(PROVIDER, &e))?;
                let finish = if self.tool_calls > 0 && finish == "stop" {
                    "tool_calls"
                } else {
                    finish
                };
                self.out.delta(0, Delta::default(), Some(finish));
                self.out.usage(&usage_of(v.pointer("/delta/usage")));
                self.out.done();
                self.ended = true;
            }
            // Plans, citations, content/tool-call boundaries and debug events carry nothing an
            // OpenAI chunk has.
            "content-start" | "content-end" | "tool-plan-delta" | "tool-call-end"
            | "citation-start" | "citation-end" | "debug" => {}
            _ => {
                if let Some(message) = v.get("message").and_then(Value::as_str) {
                    return Err(native::stream_error(PROVIDER, message));
                }
            }
        }
        Ok(())
    }
}

impl StreamTranslator for CohereStream {
    fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, GatewayError> {
        for e in self.events.push(chunk) {
            self.event(e.event.as_deref(), &e.data)?;
        }
        Ok(self.out.take())
    }

    fn finish(&mut self) -> Result<Bytes, GatewayError> {
        if let Some(e) = self.events.finish() {
            self.event(e.event.as_deref(), &e.data)?;
        }
        Ok(self.out.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{deployment, request};
    use std::time::Duration;

    fn prepared(d: &Deployment, body: Value) -> (PreparedRequest, Value) {
        let t = d.target_for("g").expect("target");
        let p = COHERE
            .prepare(d, &t, &request(CallKind::Chat, body))
            .expect("prepared");
        let v = serde_json::from_slice(&p.body).expect("json");
        (p, v)
    }

    #[test]
    fn registry_defaults() {
        let d = deployment("{model: cohere/command-r-plus, api_key: co-k}");
        let t = d.target_for("g").expect("target");
        assert_eq!(t.api_base, "https://api.cohere.com");
        assert_eq!(t.model, "command-r-plus");
        let d = deployment("{model: cohere_chat/command-r, api_key: co-k}");
        assert_eq!(
            d.target_for("g").expect("t").spec.wire,
            super::super::Wire::Cohere
        );
        assert_eq!(
            base_url("https://api.cohere.ai/v2/chat/"),
            "https://api.cohere.ai"
        );
    }

    #[test]
    fn chat_request_translation() {
        let d = deployment("{model: cohere/command-a-03-2025, api_key: co-secret-k, api_base: 'http://h/v2', temperature: 0.3}");
        let (p, v) = prepared(
            &d,
            json!({
                "model": "g",
                "messages": [
                    {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
                    {"role": "user", "content": [
                        {"type": "text", "text": "What is here?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
                    ]},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Toronto\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "20C"}
                ],
                "tools": [{"type": "function", "function": {"name": "get_weather", "strict": true, "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}],
                "tool_choice": "required",
                "stop": "END",
                "max_completion_tokens": 50,
                "top_p": 0.9,
                "seed": 7,
                "user": "u-1",
                "stream": true,
                "stream_options": {"include_usage": true},
                "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
                "safety_mode": "STRICT"
            }),
        );
        assert_eq!(p.url, "http://h/v2/chat");
        assert!(p
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == "Bearer co-secret-k"));
        assert_eq!(v["model"], "command-a-03-2025");
        assert_eq!(
            v["messages"][0],
            json!({"role": "system", "content": "Be brief."})
        );
        assert_eq!(
            v["messages"][1]["content"][1]["image_url"]["url"],
            "data:image/png;base64,iVBORw0KGgo="
        );
        assert_eq!(
            v["messages"][2]["tool_calls"][0]["function"]["arguments"],
            "{\"location\":\"Toronto\"}"
        );
        assert!(v["messages"][2].get("content").is_none());
        assert_eq!(
            v["messages"][3],
            json!({"role": "tool", "tool_call_id": "call_1", "content": "20C"})
        );
        assert_eq!(v["tool_choice"], "REQUIRED");
        assert_eq!(v["strict_tools"], true);
        assert!(v["tools"][0]["function"].get("strict").is_none());
        assert_eq!(v["stop_sequences"], json!(["END"]));
        assert_eq!(v["max_tokens"], 50);
        assert_eq!(v["p"], 0.9);
        assert_eq!(v["seed"], 7);
        assert_eq!(v["temperature"], 0.3);
        assert_eq!(v["stream"], true);
        assert_eq!(v["safety_mode"], "STRICT");
        assert_eq!(
            v["response_format"],
            json!({"type": "json_object", "json_schema": {"type": "object"}})
        );
        for gone in [
            "user",
            "stream_options",
            "top_p",
            "stop",
            "max_completion_tokens",
        ] {
            assert!(v.get(gone).is_none(), "{gone}");
        }
    }

    #[test]
    fn named_tool_choice_and_unsupported_params() {
        let d = deployment("{model: cohere/command-r, api_key: k}");
        let (_, v) = prepared(
            &d,
            json!({"model": "g", "messages": [{"role": "user", "content": "x"}],
                   "tools": [{"type": "function", "function": {"name": "a"}}, {"type": "function", "function": {"name": "b"}}],
                   "tool_choice": {"type": "function", "function": {"name": "b"}}}),
        );
        assert_eq!(v["tools"].as_array().map(Vec::len), Some(1));
        assert_eq!(v["tools"][0]["function"]["name"], "b");
        assert_eq!(v["tool_choice"], "REQUIRED");

        let t = d.target_for("g").expect("t");
        let body = json!({"model": "g", "messages": [{"role": "user", "content": "x"}], "logit_bias": {"1": 1}});
        let err = COHERE
            .prepare(&d, &t, &request(CallKind::Chat, body.clone()))
            .err()
            .expect("unsupported");
        assert!(err.to_string().contains("UnsupportedParamsError"), "{err}");
        let mut dropping = body;
        dropping["drop_params"] = json!(true);
        let p = COHERE
            .prepare(&d, &t, &request(CallKind::Chat, dropping))
            .expect("dropped");
        assert!(!String::from_utf8_lossy(&p.body).contains("logit_bias"));
    }

    #[test]
    fn embed_request() {
        let d = deployment("{model: cohere/embed-english-v3.0, api_key: k}");
        let t = d.target_for("g").expect("t");
        let p = COHERE
            .prepare(
                &d,
                &t,
                &request(
                    CallKind::Embedding,
                    json!({"model": "g", "input": ["a", "b"], "dimensions": 256}),
                ),
            )
            .expect("prepared");
        assert_eq!(p.url, "https://api.cohere.com/v2/embed");
        let v: Value = serde_json::from_slice(&p.body).expect("json");
        assert_eq!(
            v,
            json!({"model": "embed-english-v3.0", "texts": ["a", "b"], "input_type": "search_document",
                   "embedding_types": ["float"], "output_dimension": 256})
        );
    }

    #[test]
    fn chat_response_from_docs() {
        let req = request(
            CallKind::Chat,
            json!({"model": "g", "messages": [{"role": "user", "content": "x"}]}),
        );
        let text = br#"{"id":"c14c80c3-18eb-4519-9460-6c92edd8cfb4","finish_reason":"COMPLETE","message":{"role":"assistant","content":[{"type":"text","text":"LLMs are neural networks."}]},"usage":{"billed_units":{"input_tokens":5,"output_tokens":418},"tokens":{"input_tokens":71,"output_tokens":418}}}"#;
        let r = COHERE
            .translate_response(&req, Bytes::from_static(text))
            .expect("ok");
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["id"], "c14c80c3-18eb-4519-9460-6c92edd8cfb4");
        assert_eq!(
            v["choices"][0]["message"]["content"],
            "LLMs are neural networks."
        );
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["usage"]["prompt_tokens"], 71);
        assert_eq!(r.usage.expect("usage").total_tokens, 489);

        let tools = br#"{"id":"x","finish_reason":"TOOL_CALL","message":{"role":"assistant","tool_plan":"I will check the weather.","tool_calls":[{"id":"get_weather_k88p0m8504w5","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Toronto\"}"}}]},"usage":{"billed_units":{"input_tokens":10,"output_tokens":20}}}"#;
        let r = COHERE
            .translate_response(&req, Bytes::from_static(tools))
            .expect("ok");
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        let call = &v["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["id"], "get_weather_k88p0m8504w5");
        assert_eq!(call["function"]["arguments"], "{\"location\":\"Toronto\"}");
        assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(r.usage.expect("u").prompt_tokens, 10);

        let length = br#"{"id":"y","finish_reason":"MAX_TOKENS","message":{"role":"assistant","content":[{"type":"text","text":"a"}]},"usage":{}}"#;
        let r = COHERE
            .translate_response(&req, Bytes::from_static(length))
            .expect("ok");
        assert!(String::from_utf8_lossy(&r.body).contains("\"finish_reason\":\"length\""));
        let failed = br#"{"id":"z","finish_reason":"ERROR","message":{"role":"assistant","content":[]},"usage":{}}"#;
        assert!(COHERE
            .translate_response(&req, Bytes::from_static(failed))
            .is_err());
    }

    #[test]
    fn embed_response_from_docs() {
        let req = request(
            CallKind::Embedding,
            json!({"model": "g", "input": ["hello", "goodbye"]}),
        );
        let body = br#"{"id":"da6e531f","embeddings":{"float":[[0.016296387,-0.008354187],[0.02,0.03]]},"texts":["hello","goodbye"],"meta":{"api_version":{"version":"2"},"billed_units":{"input_tokens":2}}}"#;
        let r = COHERE
            .translate_response(&req, Bytes::from_static(body))
            .expect("ok");
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v["object"], "list");
        assert_eq!(v["data"][1]["index"], 1);
        assert_eq!(v["data"][0]["embedding"][0], 0.016296387);
        assert_eq!(v["usage"]["prompt_tokens"], 2);
    }

    #[test]
    fn errors() {
        let d = deployment("{model: cohere/command-r, api_key: co-leaky-secret}");
        let t = d.target_for("g").expect("t");
        let e = COHERE.translate_error(&t, 400, None, br#"{"id":"1","message":"too many tokens: total number of tokens in the prompt cannot exceed 128000 - received 130001. Try using a shorter prompt"}"#);
        assert_eq!(e.code(), "context_length_exceeded");
        assert!(
            e.to_string()
                .starts_with("ContextWindowExceededError: CohereException - too many tokens"),
            "{e}"
        );
        let e = COHERE.translate_error(&t, 429, Some(Duration::from_secs(2)), br#"{"message":"You are using a Trial key, which is limited to 10 API calls / minute."}"#);
        assert_eq!(e.error_type(), "rate_limit_error");
        let e = COHERE.translate_error(
            &t,
            401,
            None,
            br#"{"message":"invalid api token co-leaky-secret"}"#,
        );
        assert!(!e.to_string().contains("co-leaky-secret"));
        assert!(matches!(
            e,
            GatewayError::Upstream {
                kind: UpstreamErrorKind::Authentication,
                ..
            }
        ));
        let e = COHERE.translate_error(&t, 498, None, br#"{"message":"invalid api token"}"#);
        assert!(matches!(e, GatewayError::Upstream { status: 401, .. }));
    }

    fn run_stream(raw: &str, split: usize) -> Result<String, GatewayError> {
        let mut s = CohereStream::new("command-r");
        let bytes = raw.as_bytes();
        let mut out = Vec::new();
        for piece in bytes.chunks(split) {
            out.extend_from_slice(&s.feed(piece)?);
        }
        out.extend_from_slice(&s.finish()?);
        Ok(String::from_utf8(out).expect("utf8"))
    }

    fn chunks(text: &str) -> Vec<Value> {
        text.split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).expect("json"))
            .collect()
    }

    const TEXT_STREAM: &str = "event: message-start\ndata: {\"id\":\"29f14a5a-11de-4cae-9800-25e4747408ea\",\"type\":\"message-start\",\"delta\":{\"message\":{\"role\":\"assistant\",\"content\":[],\"tool_plan\":\"\",\"tool_calls\":[],\"citations\":[]}}}\n\nevent: content-start\ndata: {\"type\":\"content-start\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"type\":\"text\",\"text\":\"\"}}}}\n\nevent: content-delta\ndata: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\"A large\"}}}}\n\nevent: content-delta\ndata: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\" language model\"}}}}\n\nevent: content-end\ndata: {\"type\":\"content-end\",\"index\":0}\n\nevent: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"COMPLETE\",\"usage\":{\"billed_units\":{\"input_tokens\":5,\"output_tokens\":4},\"tokens\":{\"input_tokens\":71,\"output_tokens\":4}}}}\n\ndata: [DONE]\n\n";

    #[test]
    fn text_stream_any_split() {
        for split in [1, 7, 64, 4096] {
            let text = run_stream(TEXT_STREAM, split).expect("ok");
            assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
            assert_eq!(text.matches("[DONE]").count(), 1);
            let c = chunks(&text);
            assert_eq!(c[0]["choices"][0]["delta"]["role"], "assistant");
            assert_eq!(c[0]["id"], "29f14a5a-11de-4cae-9800-25e4747408ea");
            let content: String = c
                .iter()
                .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
                .collect();
            assert_eq!(content, "A large language model");
            let finish = c
                .iter()
                .find(|c| c["choices"][0]["finish_reason"].is_string())
                .expect("finish");
            assert_eq!(finish["choices"][0]["finish_reason"], "stop");
            let usage = c.last().expect("usage");
            assert_eq!(usage["usage"]["prompt_tokens"], 71);
            assert_eq!(usage["usage"]["total_tokens"], 75);
        }
    }

    #[test]
    fn tool_stream_and_broken_streams() {
        let raw = "event: message-start\ndata: {\"id\":\"m1\",\"type\":\"message-start\",\"delta\":{\"message\":{\"role\":\"assistant\"}}}\n\nevent: tool-plan-delta\ndata: {\"type\":\"tool-plan-delta\",\"delta\":{\"message\":{\"tool_plan\":\"I will\"}}}\n\nevent: tool-call-start\ndata: {\"type\":\"tool-call-start\",\"index\":0,\"delta\":{\"message\":{\"tool_calls\":{\"id\":\"get_weather_nsz5zm3w56q3\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}}}}\n\nevent: tool-call-delta\ndata: {\"type\":\"tool-call-delta\",\"index\":0,\"delta\":{\"message\":{\"tool_calls\":{\"function\":{\"arguments\":\"{\\\"location\\\":\"}}}}}\n\nevent: tool-call-delta\ndata: {\"type\":\"tool-call-delta\",\"index\":0,\"delta\":{\"message\":{\"tool_calls\":{\"function\":{\"arguments\":\"\\\"Toronto\\\"}\"}}}}}\n\nevent: tool-call-end\ndata: {\"type\":\"tool-call-end\",\"index\":0}\n\nevent: tool-call-start\ndata: {\"type\":\"tool-call-start\",\"index\":1,\"delta\":{\"message\":{\"tool_calls\":{\"id\":\"t2\",\"type\":\"function\",\"function\":{\"name\":\"other\",\"arguments\":\"{}\"}}}}}\n\nevent: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"TOOL_CALL\",\"usage\":{\"tokens\":{\"input_tokens\":10,\"output_tokens\":5}}}}\n\n";
        let text = run_stream(raw, 13).expect("ok");
        let c = chunks(&text);
        let calls: Vec<&Value> = c
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
            .collect();
        assert_eq!(calls[0]["id"], "get_weather_nsz5zm3w56q3");
        assert_eq!(calls[0]["function"]["name"], "get_weather");
        let args: String = calls
            .iter()
            .filter(|c| c["index"] == 0)
            .filter_map(|c| c["function"]["arguments"].as_str())
            .collect();
        assert_eq!(args, "{\"location\":\"Toronto\"}");
        assert_eq!(calls.last().expect("second")["index"], 1);
        assert!(text.contains("\"finish_reason\":\"tool_calls\""));
        assert!(text.ends_with("data: [DONE]\n\n"));

        // Cut before message-end: no [DONE].
        let cut = &TEXT_STREAM[..TEXT_STREAM.find("event: message-end").expect("end")];
        assert!(!run_stream(cut, 5).expect("ok").contains("[DONE]"));
        // A generation error is an error.
        let err = TEXT_STREAM.replace("\"COMPLETE\"", "\"ERROR\"");
        assert!(run_stream(&err, 4096).is_err());
    }
}
