//! Google's `generateContent` wire format, spoken by the Gemini API (Google AI Studio, `gemini/`)
//! and by Vertex AI (`vertex_ai/`, see [`super::vertex`]). This module holds the translation both
//! share (OpenAI chat body ⇄ `GenerateContentRequest`/`GenerateContentResponse`, the SSE stream,
//! Google's error bodies) and the AI Studio transport: `{base}/v1beta/models/{model}:…` with the
//! key in `x-goog-api-key`.

use super::ErrorReply;
use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::stream::{ChunkWriter, SseEvents, StreamTranslator};
use super::{native, urls, PreparedRequest, ProviderAdapter, TranslatedResponse};
use crate::deployment::{Deployment, Target};
use crate::error::{GatewayError, UpstreamErrorKind};
use crate::llm::{CallKind, LlmRequest, Usage};
use crate::secret::{scrub, Secret};
use tollgate_wire::openai::{AssistantMessage, ChatCompletion, Choice, Delta, ToolCall};

/// Which Google API a call goes to: same JSON, different URLs, auth and error names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    AiStudio,
    Vertex,
}

impl Flavor {
    /// The provider part of error messages, as LiteLLM names it.
    pub fn exception(self) -> &'static str {
        match self {
            Flavor::AiStudio => "GeminiException",
            Flavor::Vertex => "VertexAIException",
        }
    }
}

/// The API version path segment used when the base URL does not name one.
pub const GEMINI_API_VERSION: &str = "v1beta";

pub struct GeminiAdapter;

pub static GEMINI: GeminiAdapter = GeminiAdapter;

impl ProviderAdapter for GeminiAdapter {
    fn prepare(
        &self,
        deployment: &Deployment,
        target: &Target,
        req: &LlmRequest,
    ) -> Result<PreparedRequest, GatewayError> {
        let Some(key) = &target.api_key else {
            return Err(GatewayError::Upstream {
                kind: UpstreamErrorKind::Authentication,
                status: 401,
                message: "AuthenticationError: GeminiException - no API key for the Gemini API: set litellm_params.api_key, GEMINI_API_KEY or GOOGLE_API_KEY".into(),
                code: None,
                param: None,
                retry_after: None,
            });
        };
        let (method, body) = match req.kind {
            CallKind::Chat => (
                if req.stream {
                    "streamGenerateContent?alt=sse"
                } else {
                    "generateContent"
                },
                {
                    let mut body = chat_request(deployment, target, req)?;
                    // Request labels are a Vertex AI feature; the Gemini API refuses the field.
                    body.remove("labels");
                    Value::Object(body)
                },
            ),
            CallKind::Embedding => (
                "batchEmbedContents",
                gemini_embed_request(deployment, target, req)?,
            ),
            CallKind::ImageGeneration
            | CallKind::ImageEdit
            | CallKind::Moderation
            | CallKind::Transcription
            | CallKind::Translation
            | CallKind::Speech
            | CallKind::Rerank
            | CallKind::Responses => {
                return Err(crate::providers::native::unsupported_call(target, req.kind))
            }
            CallKind::Completion => return Err(no_legacy_completions(target)),
        };
        let url = format!(
            "{}/models/{}:{}",
            gemini_versioned_base(&target.api_base),
            urls::segment(&target.model),
            method
        );
        let mut headers: Vec<(Cow<'static, str>, String)> = vec![
            (Cow::Borrowed("content-type"), "application/json".into()),
            (Cow::Borrowed("x-goog-api-key"), key.expose().to_string()),
        ];
        headers.extend(super::native::extra_headers(deployment));
        PreparedRequest::json(target.url(url), headers, &body)
    }

    fn translate_response(
        &self,
        req: &LlmRequest,
        body: Bytes,
    ) -> Result<TranslatedResponse, GatewayError> {
        match req.kind {
            CallKind::Embedding => translate_gemini_embeddings(req, &body),
            _ => translate_chat_response(req, &body),
        }
    }

    fn error(&self, reply: &ErrorReply<'_>) -> GatewayError {
        let (target, status, retry_after, body) = reply.parts();
        google_error(Flavor::AiStudio, target, status, retry_after, body)
    }

    fn stream_translator(
        &self,
        target: &Target,
        _req: &LlmRequest,
    ) -> Option<Box<dyn StreamTranslator>> {
        Some(Box::new(GeminiStream::new(
            Flavor::AiStudio,
            &target.model,
            target.api_key.clone(),
        )))
    }
}

/// The Gemini API base with its version segment: LiteLLM's `api_base` for `gemini/` includes
/// `/v1beta`; a bare host (`https://generativelanguage.googleapis.com`, a mock) gets it added.
pub fn gemini_versioned_base(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let last = base.rsplit('/').next().unwrap_or("");
    let versioned =
        last.len() >= 2 && last.starts_with('v') && last[1..2].chars().all(|c| c.is_ascii_digit());
    if versioned {
        base.to_string()
    } else {
        format!("{base}/{GEMINI_API_VERSION}")
    }
}

pub(crate) fn no_legacy_completions(target: &Target) -> GatewayError {
    GatewayError::bad_request(format!(
        "{} does not support the legacy /completions API in this gateway: use /chat/completions",
        target.spec.name
    ))
}

// ---------------------------------------------------------------------------------------------
// Request: OpenAI chat body → GenerateContentRequest
// ---------------------------------------------------------------------------------------------

/// The OpenAI body with deployment defaults applied, `additional_drop_params` removed, and the
/// parameters the provider cannot take dropped (`drop_params`) or refused (400).
pub(crate) fn effective_body(
    deployment: &Deployment,
    target: &Target,
    req: &LlmRequest,
) -> Result<Map<String, Value>, GatewayError> {
    super::native::openai_body(deployment, target, req, &[])
}

/// The `GenerateContentRequest` for an OpenAI chat request.
pub(crate) fn chat_request(
    deployment: &Deployment,
    target: &Target,
    req: &LlmRequest,
) -> Result<Map<String, Value>, GatewayError> {
    let body = effective_body(deployment, target, req)?;
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| GatewayError::bad_param("messages", "'messages' must be a list."))?;
    let (system, contents) = convert_messages(messages)?;
    if contents.is_empty() {
        return Err(GatewayError::bad_param(
            "messages",
            "Gemini needs at least one user or assistant message with content (system messages alone are not enough).",
        ));
    }

    let mut out = Map::new();
    out.insert("contents".into(), Value::Array(contents));
    if let Some(system) = system {
        out.insert("systemInstruction".into(), system);
    }
    if let Some(tools) = convert_tools(&body)? {
        out.insert("tools".into(), tools);
    }
    if let Some(config) = convert_tool_choice(&body)? {
        out.insert("toolConfig".into(), config);
    }
    let generation = generation_config(&body)?;
    if !generation.is_empty() {
        out.insert("generationConfig".into(), Value::Object(generation));
    }
    for (from, to) in [
        ("safety_settings", "safetySettings"),
        ("safetySettings", "safetySettings"),
        ("cached_content", "cachedContent"),
        ("cachedContent", "cachedContent"),
        ("labels", "labels"),
    ] {
        if let Some(v) = body.get(from).filter(|v| !v.is_null()) {
            out.insert(to.into(), v.clone());
        }
    }
    Ok(out)
}

/// A `Content` being built, merged with the next one when the role repeats (Gemini wants
/// alternating turns).
fn push_content(contents: &mut Vec<Value>, role: &str, parts: Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    if let Some(last) = contents.last_mut() {
        if last["role"] == role {
            if let Some(existing) = last["parts"].as_array_mut() {
                existing.extend(parts);
                return;
            }
        }
    }
    contents.push(json!({"role": role, "parts": parts}));
}

/// OpenAI messages → (`systemInstruction`, `contents`).
fn convert_messages(messages: &[Value]) -> Result<(Option<Value>, Vec<Value>), GatewayError> {
    // Tool results name their call by id; Gemini matches function responses by name.
    let mut call_names: Vec<(&str, &str)> = Vec::new();
    for m in messages {
        if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
            for c in calls {
                if let (Some(id), Some(name)) = (
                    c.get("id").and_then(Value::as_str),
                    c.pointer("/function/name").and_then(Value::as_str),
                ) {
                    call_names.push((id, name));
                }
            }
        }
    }

    let mut system_parts: Vec<Value> = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let content = m.get("content").unwrap_or(&Value::Null);
        match role {
            "system" | "developer" => {
                let text = text_of(content, i)?;
                if !text.is_empty() {
                    system_parts.push(json!({"text": text}));
                }
            }
            "user" => {
                let parts = user_parts(content, i)?;
                push_content(&mut contents, "user", parts);
            }
            "assistant" => {
                let mut parts = Vec::new();
                let text = text_of(content, i)?;
                if !text.is_empty() {
                    parts.push(json!({"text": text}));
                }
                if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                    for (j, c) in calls.iter().enumerate() {
                        let name = c
                            .pointer("/function/name")
                            .and_then(Value::as_str)
                            .ok_or_else(|| {
                                GatewayError::bad_param(
                                    &format!("messages[{i}].tool_calls[{j}]"),
                                    "a tool call needs function.name",
                                )
                            })?;
                        let args = parse_arguments(
                            c.pointer("/function/arguments"),
                            &format!("messages[{i}].tool_calls[{j}].function.arguments"),
                        )?;
                        let mut part = json!({"functionCall": {"name": name, "args": args}});
                        // Gemini 3 wants its thought signature back on the call it came with.
                        if let Some((_, signature)) = c
                            .get("id")
                            .and_then(Value::as_str)
                            .and_then(|id| id.split_once(THOUGHT_SIGNATURE_SEPARATOR))
                        {
                            part["thoughtSignature"] = json!(signature);
                        }
                        parts.push(part);
                    }
                } else if let Some(call) = m.get("function_call").filter(|v| v.is_object()) {
                    let name = call.get("name").and_then(Value::as_str).unwrap_or_default();
                    let args = parse_arguments(
                        call.get("arguments"),
                        &format!("messages[{i}].function_call.arguments"),
                    )?;
                    parts.push(json!({"functionCall": {"name": name, "args": args}}));
                }
                push_content(&mut contents, "model", parts);
            }
            "tool" | "function" => {
                let name = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .and_then(|id| {
                        call_names
                            .iter()
                            .find(|(call_id, _)| *call_id == id)
                            .map(|(_, n)| *n)
                    })
                    .or_else(|| m.get("name").and_then(Value::as_str))
                    .ok_or_else(|| {
                        GatewayError::bad_param(
                            &format!("messages[{i}]"),
                            "a tool message must answer a tool call of an earlier assistant message (tool_call_id) or carry the function name",
                        )
                    })?;
                let text = text_of(content, i)?;
                push_content(
                    &mut contents,
                    "user",
                    vec![
                        json!({"functionResponse": {"name": name, "response": {"content": text}}}),
                    ],
                );
            }
            other => {
                return Err(GatewayError::bad_param(
                    &format!("messages[{i}].role"),
                    format!("Gemini does not take messages with role '{other}'"),
                ))
            }
        }
    }
    let system = (!system_parts.is_empty()).then(|| json!({"parts": system_parts}));
    Ok((system, contents))
}

/// Tool-call arguments (a JSON string, as OpenAI sends them) as the object Gemini wants.
fn parse_arguments(raw: Option<&Value>, param: &str) -> Result<Value, GatewayError> {
    match raw {
        None | Some(Value::Null) => Ok(json!({})),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(json!({})),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(GatewayError::bad_param(
                param,
                "tool call arguments must be a JSON object encoded as a string",
            )),
        },
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(_) => Err(GatewayError::bad_param(
            param,
            "tool call arguments must be a JSON object encoded as a string",
        )),
    }
}

/// The text of a content that may only hold text: a string, or text (and refusal) parts.
fn text_of(content: &Value, i: usize) -> Result<String, GatewayError> {
    match content {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut text = String::new();
            for p in parts {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        text.push_str(p.get("text").and_then(Value::as_str).unwrap_or(""))
                    }
                    Some("refusal") => {
                        text.push_str(p.get("refusal").and_then(Value::as_str).unwrap_or(""))
                    }
                    other => {
                        return Err(GatewayError::bad_param(
                            &format!("messages[{i}].content"),
                            format!(
                                "content parts of type '{}' are only accepted in user messages",
                                other.unwrap_or("?")
                            ),
                        ))
                    }
                }
            }
            Ok(text)
        }
        _ => Err(GatewayError::bad_param(
            &format!("messages[{i}].content"),
            "content must be a string or a list of parts",
        )),
    }
}

/// A user message's parts: text, images, audio and files.
fn user_parts(content: &Value, i: usize) -> Result<Vec<Value>, GatewayError> {
    let param = || format!("messages[{i}].content");
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![json!({"text": s})]),
        Value::Array(items) => {
            let mut parts = Vec::with_capacity(items.len());
            for p in items {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = p.get("text").and_then(Value::as_str).unwrap_or("");
                        if !text.is_empty() {
                            parts.push(json!({"text": text}));
                        }
                    }
                    Some("image_url") => {
                        let image = p.get("image_url").unwrap_or(&Value::Null);
                        let (url, mime) = match image {
                            Value::String(url) => (url.as_str(), None),
                            Value::Object(o) => (
                                o.get("url").and_then(Value::as_str).unwrap_or(""),
                                o.get("format").and_then(Value::as_str),
                            ),
                            _ => ("", None),
                        };
                        if url.is_empty() {
                            return Err(GatewayError::bad_param(
                                &param(),
                                "an image_url part needs a url",
                            ));
                        }
                        parts.push(media_part(url, mime, "image/jpeg", &param())?);
                    }
                    Some("input_audio") => {
                        let audio = p.get("input_audio").unwrap_or(&Value::Null);
                        let data = audio.get("data").and_then(Value::as_str).unwrap_or("");
                        let format = audio.get("format").and_then(Value::as_str).unwrap_or("wav");
                        parts.push(
                            json!({"inlineData": {"mimeType": audio_mime(format), "data": data}}),
                        );
                    }
                    Some("file") => {
                        let file = p.get("file").unwrap_or(&Value::Null);
                        let mime = file.get("format").and_then(Value::as_str);
                        if let Some(data) = file.get("file_data").and_then(Value::as_str) {
                            parts.push(media_part(data, mime, "application/pdf", &param())?);
                        } else if let Some(id) = file.get("file_id").and_then(Value::as_str) {
                            parts.push(media_part(id, mime, "application/pdf", &param())?);
                        } else {
                            return Err(GatewayError::bad_param(
                                &param(),
                                "a file part needs file_data or file_id",
                            ));
                        }
                    }
                    other => {
                        return Err(GatewayError::bad_param(
                            &param(),
                            format!(
                                "content parts of type '{}' are not supported for Gemini",
                                other.unwrap_or("?")
                            ),
                        ))
                    }
                }
            }
            Ok(parts)
        }
        _ => Err(GatewayError::bad_param(
            &param(),
            "content must be a string or a list of parts",
        )),
    }
}

fn audio_mime(format: &str) -> String {
    match format {
        "mp3" => "audio/mp3".into(),
        other if other.contains('/') => other.into(),
        other => format!("audio/{other}"),
    }
}

/// A data URL → `inlineData`; any other URL (`https://`, `gs://`, a Files API URI) → `fileData`
/// with the MIME type given, else guessed from the extension, else `fallback`.
fn media_part(
    url: &str,
    mime: Option<&str>,
    fallback: &str,
    param: &str,
) -> Result<Value, GatewayError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| GatewayError::bad_param(param, "malformed data URL"))?;
        let mut meta_parts = meta.split(';');
        let declared = meta_parts.next().filter(|m| !m.is_empty());
        let is_base64 = meta_parts.any(|p| p.eq_ignore_ascii_case("base64"));
        let data = if is_base64 {
            data.to_string()
        } else {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(data.as_bytes())
        };
        let mime = mime.or(declared).unwrap_or(fallback);
        return Ok(json!({"inlineData": {"mimeType": mime, "data": data}}));
    }
    let mime = mime
        .map(str::to_string)
        .or_else(|| guess_mime(url).map(str::to_string))
        .unwrap_or_else(|| fallback.to_string());
    Ok(json!({"fileData": {"mimeType": mime, "fileUri": url}}))
}

/// The MIME type for a URL's file extension, for the types Gemini reads.
pub fn guess_mime(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    if ext.contains('/') {
        return None;
    }
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "mp3" => "audio/mp3",
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        "ogg" => "audio/ogg",
        "mp4" => "video/mp4",
        "mov" => "video/mov",
        "webm" => "video/webm",
        _ => return None,
    })
}

/// Native Google tools an OpenAI `tools` entry may carry as is (LiteLLM accepts these).
const NATIVE_TOOLS: &[(&str, &str)] = &[
    ("googleSearch", "googleSearch"),
    ("google_search", "googleSearch"),
    ("googleSearchRetrieval", "googleSearchRetrieval"),
    ("google_search_retrieval", "googleSearchRetrieval"),
    ("codeExecution", "codeExecution"),
    ("code_execution", "codeExecution"),
    ("urlContext", "urlContext"),
    ("url_context", "urlContext"),
];

/// `tools` (and legacy `functions`) → `[{"functionDeclarations":[…]}, {native tool}…]`.
fn convert_tools(body: &Map<String, Value>) -> Result<Option<Value>, GatewayError> {
    let mut declarations = Vec::new();
    let mut native = Vec::new();
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        for (i, t) in tools.iter().enumerate() {
            if let Some(f) = t.get("function").filter(|_| {
                t.get("type").and_then(Value::as_str).unwrap_or("function") == "function"
            }) {
                declarations.push(function_declaration(f, &format!("tools[{i}]"))?);
                continue;
            }
            let found = NATIVE_TOOLS
                .iter()
                .find_map(|(from, to)| t.get(*from).map(|v| (*to, v)));
            match found {
                Some((name, v)) => native.push(json!({ name: v })),
                None => {
                    return Err(GatewayError::bad_param(
                        &format!("tools[{i}]"),
                        "Gemini takes function tools (and googleSearch, codeExecution, urlContext)",
                    ))
                }
            }
        }
    }
    if let Some(functions) = body.get("functions").and_then(Value::as_array) {
        for (i, f) in functions.iter().enumerate() {
            declarations.push(function_declaration(f, &format!("functions[{i}]"))?);
        }
    }
    if declarations.is_empty() && native.is_empty() {
        return Ok(None);
    }
    let mut tools = Vec::new();
    if !declarations.is_empty() {
        tools.push(json!({"functionDeclarations": declarations}));
    }
    tools.extend(native);
    Ok(Some(Value::Array(tools)))
}

fn function_declaration(f: &Value, param: &str) -> Result<Value, GatewayError> {
    let name = f
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| GatewayError::bad_param(param, "a function tool needs a name"))?;
    let mut decl = Map::new();
    decl.insert("name".into(), json!(name));
    if let Some(d) = f.get("description").and_then(Value::as_str) {
        decl.insert("description".into(), json!(d));
    }
    if let Some(params) = f.get("parameters").filter(|p| p.is_object()) {
        let cleaned = clean_schema(params);
        // Gemini refuses an OBJECT schema whose properties are empty: a function without
        // parameters simply has none.
        let empty_object = cleaned
            .get("properties")
            .is_none_or(|p| p.as_object().is_some_and(Map::is_empty))
            && cleaned
                .get("type")
                .and_then(Value::as_str)
                .is_none_or(|t| t.eq_ignore_ascii_case("object"));
        if !empty_object {
            decl.insert("parameters".into(), cleaned);
        }
    }
    Ok(Value::Object(decl))
}

/// Schema keys Gemini's OpenAPI-subset `Schema` accepts; everything else (`$schema`,
/// `additionalProperties`, `strict`, `$defs`…) is removed, `$ref`s are inlined.
const SCHEMA_KEYS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// A JSON Schema (OpenAI tool parameters, `json_schema` response formats) as a Gemini `Schema`.
pub fn clean_schema(schema: &Value) -> Value {
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .and_then(Value::as_object);
    clean_node(schema, defs, 0)
}

fn clean_node(node: &Value, defs: Option<&Map<String, Value>>, depth: usize) -> Value {
    let Some(obj) = node.as_object() else {
        return node.clone();
    };
    if depth > 16 {
        return json!({"type": "object"});
    }
    if let Some(reference) = obj.get("$ref").and_then(Value::as_str) {
        let name = reference
            .strip_prefix("#/$defs/")
            .or_else(|| reference.strip_prefix("#/definitions/"));
        if let Some(target) = name.and_then(|n| defs.and_then(|d| d.get(n))) {
            let mut resolved = clean_node(target, defs, depth + 1);
            if let (Some(r), Some(d)) = (
                resolved.as_object_mut(),
                obj.get("description").and_then(Value::as_str),
            ) {
                r.insert("description".into(), json!(d));
            }
            return resolved;
        }
        return json!({"type": "object"});
    }
    let mut out = Map::new();
    let mut nullable = false;
    for (k, v) in obj {
        match k.as_str() {
            "type" => match v {
                Value::Array(types) => {
                    nullable |= types.iter().any(|t| t == "null");
                    if let Some(t) = types.iter().find(|t| *t != "null") {
                        out.insert("type".into(), t.clone());
                    }
                }
                other => {
                    out.insert("type".into(), other.clone());
                }
            },
            "const" => {
                out.insert("enum".into(), json!([v]));
            }
            "properties" => {
                if let Some(props) = v.as_object() {
                    let cleaned: Map<String, Value> = props
                        .iter()
                        .map(|(name, p)| (name.clone(), clean_node(p, defs, depth + 1)))
                        .collect();
                    out.insert("properties".into(), Value::Object(cleaned));
                }
            }
            "items" => {
                out.insert("items".into(), clean_node(v, defs, depth + 1));
            }
            "anyOf" | "oneOf" => {
                if let Some(options) = v.as_array() {
                    let mut kept = Vec::new();
                    for o in options {
                        if o.get("type").is_some_and(|t| t == "null") {
                            nullable = true;
                        } else {
                            kept.push(clean_node(o, defs, depth + 1));
                        }
                    }
                    if kept.len() == 1 {
                        if let Some(Value::Object(single)) = kept.pop() {
                            for (sk, sv) in single {
                                out.entry(sk).or_insert(sv);
                            }
                        }
                    } else if !kept.is_empty() {
                        out.insert("anyOf".into(), Value::Array(kept));
                    }
                }
            }
            "allOf" => {
                if let Some([single]) = v.as_array().map(Vec::as_slice) {
                    if let Value::Object(single) = clean_node(single, defs, depth + 1) {
                        for (sk, sv) in single {
                            out.entry(sk).or_insert(sv);
                        }
                    }
                }
            }
            "format" => {
                let t = obj.get("type").and_then(Value::as_str).unwrap_or("");
                let f = v.as_str().unwrap_or("");
                let ok = match t {
                    "string" => matches!(f, "enum" | "date-time"),
                    "integer" => matches!(f, "int32" | "int64"),
                    "number" => matches!(f, "float" | "double"),
                    _ => false,
                };
                if ok {
                    out.insert("format".into(), v.clone());
                }
            }
            key if SCHEMA_KEYS.contains(&key) => {
                out.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
    if nullable {
        out.insert("nullable".into(), json!(true));
    }
    // `required` may only name declared properties.
    if let (Some(Value::Array(required)), Some(Value::Object(props))) =
        (out.get("required").cloned(), out.get("properties"))
    {
        let kept: Vec<Value> = required
            .into_iter()
            .filter(|r| r.as_str().is_some_and(|n| props.contains_key(n)))
            .collect();
        out.insert("required".into(), Value::Array(kept));
    }
    Value::Object(out)
}

/// Gemini writes structured output with properties in alphabetical order unless told
/// `propertyOrdering`: keep the order the client's schema declares.
fn add_property_ordering(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(props)) = obj.get_mut("properties") {
        let order: Vec<Value> = props.keys().map(|k| json!(k)).collect();
        for p in props.values_mut() {
            add_property_ordering(p);
        }
        if order.len() > 1 {
            obj.entry("propertyOrdering").or_insert(Value::Array(order));
        }
    }
    if let Some(items) = obj.get_mut("items") {
        add_property_ordering(items);
    }
    if let Some(Value::Array(options)) = obj.get_mut("anyOf") {
        options.iter_mut().for_each(add_property_ordering);
    }
}

/// `tool_choice` (or legacy `function_call`) → `toolConfig.functionCallingConfig`.
fn convert_tool_choice(body: &Map<String, Value>) -> Result<Option<Value>, GatewayError> {
    let choice = body
        .get("tool_choice")
        .or_else(|| body.get("function_call"))
        .filter(|v| !v.is_null());
    let Some(choice) = choice else {
        return Ok(None);
    };
    let config = match choice {
        Value::String(s) => match s.as_str() {
            "auto" => json!({"mode": "AUTO"}),
            "none" => json!({"mode": "NONE"}),
            "required" | "any" => json!({"mode": "ANY"}),
            other => {
                return Err(GatewayError::bad_param(
                    "tool_choice",
                    format!("unknown tool_choice '{other}'"),
                ))
            }
        },
        Value::Object(o) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .or_else(|| o.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    GatewayError::bad_param("tool_choice", "tool_choice must name a function")
                })?;
            json!({"mode": "ANY", "allowedFunctionNames": [name]})
        }
        _ => {
            return Err(GatewayError::bad_param(
                "tool_choice",
                "tool_choice must be a string or an object",
            ))
        }
    };
    Ok(Some(json!({ "functionCallingConfig": config })))
}

/// Thinking budgets LiteLLM uses for `reasoning_effort`.
fn thinking_budget(effort: &str) -> Option<i64> {
    Some(match effort {
        "none" | "disable" => 0,
        "minimal" => 128,
        "low" => 1024,
        "medium" => 2048,
        "high" => 4096,
        _ => return None,
    })
}

/// The OpenAI sampling and output parameters → `generationConfig`.
fn generation_config(body: &Map<String, Value>) -> Result<Map<String, Value>, GatewayError> {
    let mut g = Map::new();
    let get = |k: &str| body.get(k).filter(|v| !v.is_null());
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("n", "candidateCount"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("logprobs", "responseLogprobs"),
        ("top_logprobs", "logprobs"),
    ] {
        if let Some(v) = get(from) {
            g.insert(to.into(), v.clone());
        }
    }
    if let Some(max) = get("max_completion_tokens").or_else(|| get("max_tokens")) {
        g.insert("maxOutputTokens".into(), max.clone());
    }
    match get("stop") {
        Some(Value::String(s)) => {
            g.insert("stopSequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if !a.is_empty() => {
            g.insert("stopSequences".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    if let Some(format) = get("response_format") {
        match format.get("type").and_then(Value::as_str) {
            Some("json_object") => {
                g.insert("responseMimeType".into(), json!("application/json"));
            }
            Some("json_schema") => {
                g.insert("responseMimeType".into(), json!("application/json"));
                let schema = format
                    .pointer("/json_schema/schema")
                    .or_else(|| format.get("response_schema"))
                    .filter(|s| s.is_object());
                if let Some(schema) = schema {
                    let mut schema = clean_schema(schema);
                    add_property_ordering(&mut schema);
                    g.insert("responseSchema".into(), schema);
                }
            }
            Some("text") | None => {}
            Some(other) => {
                return Err(GatewayError::bad_param(
                    "response_format",
                    format!("unknown response_format type '{other}'"),
                ))
            }
        }
    }
    if let Some(effort) = get("reasoning_effort").and_then(Value::as_str) {
        let budget = thinking_budget(effort).ok_or_else(|| {
            GatewayError::bad_param(
                "reasoning_effort",
                format!("unknown reasoning_effort '{effort}'"),
            )
        })?;
        g.insert(
            "thinkingConfig".into(),
            json!({"thinkingBudget": budget, "includeThoughts": budget > 0}),
        );
    } else if let Some(thinking) = get("thinking") {
        // Anthropic-style `thinking: {type: enabled, budget_tokens}`, which LiteLLM accepts.
        let enabled = thinking.get("type").and_then(Value::as_str) != Some("disabled");
        let budget = thinking
            .get("budget_tokens")
            .and_then(Value::as_i64)
            .unwrap_or(if enabled { 1024 } else { 0 });
        g.insert(
            "thinkingConfig".into(),
            json!({"thinkingBudget": if enabled { budget } else { 0 }, "includeThoughts": enabled}),
        );
    }
    if let Some(modalities) = get("modalities").and_then(Value::as_array) {
        let upper: Vec<Value> = modalities
            .iter()
            .filter_map(Value::as_str)
            .map(|m| json!(m.to_ascii_uppercase()))
            .collect();
        g.insert("responseModalities".into(), Value::Array(upper));
    }
    Ok(g)
}

/// `:batchEmbedContents` for OpenAI embedding input.
fn gemini_embed_request(
    deployment: &Deployment,
    target: &Target,
    req: &LlmRequest,
) -> Result<Value, GatewayError> {
    let body = effective_body(deployment, target, req)?;
    let texts = embedding_texts(&body)?;
    let dimensions = body.get("dimensions").filter(|v| !v.is_null());
    let task = body.get("task_type").and_then(Value::as_str);
    let requests: Vec<Value> = texts
        .iter()
        .map(|t| {
            let mut r = json!({
                "model": format!("models/{}", target.model),
                "content": {"parts": [{"text": t}]},
            });
            if let Some(d) = dimensions {
                r["outputDimensionality"] = d.clone();
            }
            if let Some(task) = task {
                r["taskType"] = json!(task);
            }
            r
        })
        .collect();
    Ok(json!({ "requests": requests }))
}

/// OpenAI embedding `input` as texts (Google's embedding APIs take text, not token ids).
pub(crate) fn embedding_texts(body: &Map<String, Value>) -> Result<Vec<String>, GatewayError> {
    let not_text = || {
        GatewayError::bad_param(
            "input",
            "Google embedding models take text: 'input' must be a string or a list of strings",
        )
    };
    match body.get("input") {
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or_else(not_text))
            .collect(),
        _ => Err(not_text()),
    }
}

// ---------------------------------------------------------------------------------------------
// Response: GenerateContentResponse → chat.completion
// ---------------------------------------------------------------------------------------------

pub(crate) use super::invalid_body;

/// `finishReason` → OpenAI `finish_reason` (LiteLLM's map).
pub fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "LANGUAGE"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION"
        | "IMAGE_OTHER"
        | "NO_IMAGE"
        | "OTHER" => "content_filter",
        _ => "stop",
    }
}

/// `usageMetadata` in OpenAI's terms: completion tokens include the thinking tokens.
pub fn usage_from(meta: &Value) -> Usage {
    let n = |k: &str| meta.get(k).and_then(Value::as_u64).unwrap_or(0);
    let prompt = n("promptTokenCount");
    let thoughts = n("thoughtsTokenCount");
    let completion = n("candidatesTokenCount") + thoughts;
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        cached_tokens: n("cachedContentTokenCount"),
        reasoning_tokens: thoughts,
    }
}

/// Joins a tool-call id and the `thoughtSignature` of its part, so that the signature comes back
/// with the call in the next turn (Gemini 3 refuses function calls without it; LiteLLM does the
/// same).
pub const THOUGHT_SIGNATURE_SEPARATOR: &str = "__thought__";

/// A tool-call id for a `functionCall` part: Gemini's own `functionCall.id` when it sends one,
/// else a fresh `call_…`; with the part's thought signature appended.
fn tool_call_id(part: &Value, call: &Value) -> String {
    let id = match call.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => format!("call_{}", &uuid::Uuid::new_v4().simple().to_string()[..24]),
    };
    match part.get("thoughtSignature").and_then(Value::as_str) {
        Some(signature) if !signature.is_empty() => {
            format!("{id}{THOUGHT_SIGNATURE_SEPARATOR}{signature}")
        }
        _ => id,
    }
}

fn tool_call(call: &Value, id: String) -> ToolCall<'_> {
    let args = call.get("args").cloned().unwrap_or_else(|| json!({}));
    ToolCall::function(
        id,
        call.get("name").and_then(Value::as_str).unwrap_or(""),
        args.to_string(),
    )
}

pub(crate) fn response_id(v: &Value) -> String {
    match v.get("responseId").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => format!("chatcmpl-{id}"),
        _ => format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
    }
}

/// A non-streaming `GenerateContentResponse` → `chat.completion`.
pub(crate) fn translate_chat_response(
    req: &LlmRequest,
    body: &[u8],
) -> Result<TranslatedResponse, GatewayError> {
    let v: Value = serde_json::from_slice(body).map_err(invalid_body)?;
    let mut choices = Vec::new();
    if let Some(candidates) = v.get("candidates").and_then(Value::as_array) {
        for (pos, c) in candidates.iter().enumerate() {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(pos as u64);
            let mut text = String::new();
            let mut thoughts = String::new();
            let mut tool_calls = Vec::new();
            for p in c
                .pointer("/content/parts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(call) = p.get("functionCall") {
                    tool_calls.push(tool_call(call, tool_call_id(p, call)));
                } else if let Some(t) = p.get("text").and_then(Value::as_str) {
                    if p.get("thought").and_then(Value::as_bool) == Some(true) {
                        thoughts.push_str(t);
                    } else {
                        text.push_str(t);
                    }
                }
            }
            let reason = c
                .get("finishReason")
                .and_then(Value::as_str)
                .unwrap_or("STOP");
            let mut finish = finish_reason(reason);
            if !tool_calls.is_empty() && finish == "stop" {
                finish = "tool_calls";
            }
            let message = super::assistant_message(text, thoughts, tool_calls);
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            choices.push(Choice::new(index, message, finish));
        }
    }
    if choices.is_empty() {
        // A blocked prompt: 200 with `promptFeedback.blockReason` and no candidates.
        let blocked = v.pointer("/promptFeedback/blockReason").is_some();
        choices.push(Choice::new(
            0,
            AssistantMessage::new(Some("".into())),
            if blocked { "content_filter" } else { "stop" },
        ));
    }
    let usage = v.get("usageMetadata").map(usage_from).unwrap_or_default();
    let model = v
        .get("modelVersion")
        .and_then(Value::as_str)
        .unwrap_or(&req.model);
    let out = ChatCompletion::new(
        response_id(&v),
        super::now_secs(),
        model,
        choices,
        usage.to_openai(),
    );
    TranslatedResponse::completion(&out, usage)
}

/// Token estimate (4 characters a token) for embedding input when the provider reports none.
pub(crate) fn estimate_tokens(req: &LlmRequest) -> u64 {
    embedding_texts(&req.body)
        .map(|texts| {
            texts
                .iter()
                .map(|t| (t.chars().count() as u64).div_ceil(4).max(1))
                .sum()
        })
        .unwrap_or(0)
}

/// `{"embeddings":[{"values":[…]}]}` → the OpenAI embedding list.
fn translate_gemini_embeddings(
    req: &LlmRequest,
    body: &[u8],
) -> Result<TranslatedResponse, GatewayError> {
    let v: Value = serde_json::from_slice(body).map_err(invalid_body)?;
    let vectors: Vec<Value> = match v.get("embeddings").and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .map(|e| e.get("values").cloned().unwrap_or_else(|| json!([])))
            .collect(),
        // `:embedContent` answers a single `embedding`.
        None => match v.pointer("/embedding/values") {
            Some(values) => vec![values.clone()],
            None => return Err(invalid_body("no embeddings in the response")),
        },
    };
    let prompt = v
        .pointer("/usageMetadata/promptTokenCount")
        .and_then(Value::as_u64)
        .unwrap_or_else(|| estimate_tokens(req));
    TranslatedResponse::embeddings(&native::embedding_list(&req.model, vectors, prompt))
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// `"30s"` / `"1.5s"` (a `google.rpc.RetryInfo.retryDelay`) as a duration.
fn parse_delay(s: &str) -> Option<Duration> {
    let secs: f64 = s.trim().strip_suffix('s')?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// A Google error (`{"error":{"code","message","status","details"}}`, possibly inside a list) →
/// gateway error.
pub(crate) fn google_error(
    flavor: Flavor,
    target: &Target,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> GatewayError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let parsed = match parsed {
        Some(Value::Array(mut items)) if !items.is_empty() => Some(items.swap_remove(0)),
        other => other,
    };
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    google_error_value(
        flavor,
        target.api_key.as_ref(),
        status,
        retry_after,
        err,
        body,
    )
}

fn google_error_value(
    flavor: Flavor,
    key: Option<&Secret>,
    status: u16,
    retry_after: Option<Duration>,
    err: Option<&Value>,
    raw: &[u8],
) -> GatewayError {
    let message = err
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| native::raw_error_text(status, raw));
    let google_status = err
        .and_then(|e| e.get("status"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let retry_after = retry_after.or_else(|| {
        err.and_then(|e| e.get("details"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find_map(|d| {
                d.get("retryDelay")
                    .and_then(Value::as_str)
                    .and_then(parse_delay)
            })
    });
    let lower = message.to_ascii_lowercase();
    let (kind, status) = if (status == 400 || status == 413)
        && (lower.contains("exceeds the maximum number of tokens")
            || (lower.contains("input token count") && lower.contains("exceeds")))
    {
        (UpstreamErrorKind::ContextWindowExceeded, status)
    } else if lower.contains("api key not valid")
        || lower.contains("api_key_invalid")
        || google_status.as_deref() == Some("UNAUTHENTICATED")
    {
        (UpstreamErrorKind::Authentication, 401)
    } else if google_status.as_deref() == Some("RESOURCE_EXHAUSTED") || status == 429 {
        (UpstreamErrorKind::RateLimit, 429)
    } else if google_status.as_deref() == Some("PERMISSION_DENIED") {
        (UpstreamErrorKind::PermissionDenied, 403)
    } else {
        (super::openai::classify(status, None, &message), status)
    };
    let message = scrub(
        &format!(
            "{}: {} - {message}",
            kind.class_name(status),
            flavor.exception()
        ),
        key,
    );
    native::upstream(kind, status, message, google_status, None, retry_after)
}

// ---------------------------------------------------------------------------------------------
// Streaming: `?alt=sse` events → chat.completion.chunk
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, Clone)]
struct CandidateState {
    started: bool,
    tool_calls: u32,
    finished: bool,
}

/// Translates a `streamGenerateContent?alt=sse` body. Each event is a whole
/// `GenerateContentResponse` with the new parts; the stream has no terminator of its own, so it
/// counts as complete once every candidate has sent its `finishReason`.
pub struct GeminiStream {
    flavor: Flavor,
    key: Option<Secret>,
    model: String,
    events: SseEvents,
    writer: Option<ChunkWriter>,
    candidates: Vec<CandidateState>,
    usage: Option<Usage>,
    blocked: bool,
}

impl GeminiStream {
    pub fn new(flavor: Flavor, model: &str, key: Option<Secret>) -> Self {
        Self {
            flavor,
            key,
            model: model.to_string(),
            events: SseEvents::default(),
            writer: None,
            candidates: Vec::new(),
            usage: None,
            blocked: false,
        }
    }

    fn complete(&self) -> bool {
        self.blocked
            || (!self.candidates.is_empty()
                && self.candidates.iter().all(|c| !c.started || c.finished)
                && self.candidates.iter().any(|c| c.finished))
    }

    fn event(&mut self, data: &str) -> Result<(), GatewayError> {
        let data = data.trim();
        if data.is_empty() {
            return Ok(());
        }
        let v: Value = serde_json::from_str(data).map_err(|e| GatewayError::Upstream {
            kind: UpstreamErrorKind::StreamInterrupted,
            status: 502,
            message: format!(
                "APIConnectionError: {} - the stream carried an event that is not JSON: {e}",
                self.flavor.exception()
            ),
            code: None,
            param: None,
            retry_after: None,
        })?;
        if let Some(err) = v.get("error") {
            let status = err
                .get("code")
                .and_then(Value::as_u64)
                .map_or(500, |c| c as u16);
            return Err(google_error_value(
                self.flavor,
                self.key.as_ref(),
                status,
                None,
                Some(err),
                data.as_bytes(),
            ));
        }
        if self.writer.is_none() {
            let model = v
                .get("modelVersion")
                .and_then(Value::as_str)
                .unwrap_or(&self.model)
                .to_string();
            self.writer = Some(ChunkWriter::new(response_id(&v), model));
        }
        if let Some(meta) = v.get("usageMetadata") {
            self.usage = Some(usage_from(meta));
        }
        let candidates = v.get("candidates").and_then(Value::as_array);
        if candidates.is_none_or(Vec::is_empty) {
            if v.pointer("/promptFeedback/blockReason").is_some() && !self.blocked {
                self.blocked = true;
                let w = self.writer.as_mut().expect("writer set above");
                w.delta(0, Delta::start(), None);
                w.delta(0, Delta::default(), Some("content_filter"));
            }
            return Ok(());
        }
        for (pos, c) in candidates.into_iter().flatten().enumerate() {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(pos as u64) as usize;
            if index > 1024 {
                continue;
            }
            if self.candidates.len() <= index {
                self.candidates.resize(index + 1, CandidateState::default());
            }
            let w = self.writer.as_mut().expect("writer set above");
            let state = &mut self.candidates[index];
            let idx = index as u32;
            for p in c
                .pointer("/content/parts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let mut delta = if let Some(call) = p.get("functionCall") {
                    let tc = tool_call(call, tool_call_id(p, call)).at(state.tool_calls);
                    state.tool_calls += 1;
                    Delta::tool_call(tc)
                } else if let Some(t) = p.get("text").and_then(Value::as_str) {
                    if p.get("thought").and_then(Value::as_bool) == Some(true) {
                        Delta::reasoning(t)
                    } else {
                        Delta::text(t)
                    }
                } else {
                    continue;
                };
                if !state.started {
                    state.started = true;
                    delta = delta.with_role();
                }
                w.delta(idx, delta, None);
            }
            if let Some(reason) = c.get("finishReason").and_then(Value::as_str) {
                if state.finished {
                    continue;
                }
                if !state.started {
                    state.started = true;
                    w.delta(idx, Delta::start(), None);
                }
                let mut finish = finish_reason(reason);
                if state.tool_calls > 0 && finish == "stop" {
                    finish = "tool_calls";
                }
                state.finished = true;
                w.delta(idx, Delta::default(), Some(finish));
            }
        }
        Ok(())
    }

    fn take(&mut self) -> Bytes {
        self.writer
            .as_mut()
            .map(ChunkWriter::take)
            .unwrap_or_default()
    }
}

impl StreamTranslator for GeminiStream {
    fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, GatewayError> {
        for event in self.events.push(chunk) {
            self.event(&event.data)?;
        }
        Ok(self.take())
    }

    fn finish(&mut self) -> Result<Bytes, GatewayError> {
        if let Some(event) = self.events.finish() {
            self.event(&event.data)?;
        }
        if self.complete() {
            let usage = self.usage.unwrap_or_default();
            if let Some(w) = self.writer.as_mut() {
                w.usage(&usage);
                w.done();
            }
        }
        Ok(self.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{deployment_from as deployment, request};

    fn gemini_deployment() -> Deployment {
        deployment("model_list:\n  - model_name: g\n    litellm_params: {model: gemini/gemini-2.0-flash, api_key: AIza-test-key-0123456789, temperature: 0.3}\n")
    }

    fn chat(body: Value) -> LlmRequest {
        request(CallKind::Chat, body)
    }

    fn prepared_body(d: &Deployment, req: &LlmRequest) -> (PreparedRequest, Value) {
        let t = d.target_for("g").expect("target");
        let p = GEMINI.prepare(d, &t, req).expect("prepared");
        let body = serde_json::from_slice(&p.body).expect("json");
        (p, body)
    }

    #[test]
    fn url_key_header_system_roles_and_generation_config() {
        let d = gemini_deployment();
        let req = chat(json!({
            "model": "g",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": [{"type": "text", "text": "Again"}]},
                {"role": "user", "content": "and again"}
            ],
            "max_completion_tokens": 50, "top_p": 0.9, "seed": 7, "n": 2,
            "stop": "END", "presence_penalty": 0.1, "user": "u-1"
        }));
        let (p, body) = prepared_body(&d, &req);
        assert_eq!(
            p.url,
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent"
        );
        assert!(p
            .headers
            .iter()
            .any(|(k, v)| k == "x-goog-api-key" && v == "AIza-test-key-0123456789"));
        assert!(p
            .redacted_headers()
            .iter()
            .all(|(_, v)| !v.contains("0123456789")));
        assert_eq!(
            body["systemInstruction"],
            json!({"parts": [{"text": "Be brief."}]})
        );
        assert_eq!(
            body["contents"],
            json!([
                {"role": "user", "parts": [{"text": "Hi"}]},
                {"role": "model", "parts": [{"text": "Hello!"}]},
                {"role": "user", "parts": [{"text": "Again"}, {"text": "and again"}]}
            ])
        );
        let g = &body["generationConfig"];
        assert_eq!(g["temperature"], 0.3, "deployment default applies");
        assert_eq!(g["maxOutputTokens"], 50);
        assert_eq!(g["topP"], 0.9);
        assert_eq!(g["seed"], 7);
        assert_eq!(g["candidateCount"], 2);
        assert_eq!(g["stopSequences"], json!(["END"]));
        assert_eq!(g["presencePenalty"], 0.1);
        assert!(body.get("user").is_none() && body.get("model").is_none());

        let mut streaming = req.clone();
        streaming.stream = true;
        let t = d.target_for("g").expect("target");
        let p = GEMINI.prepare(&d, &t, &streaming).expect("prepared");
        assert!(
            p.url.ends_with(":streamGenerateContent?alt=sse"),
            "{}",
            p.url
        );
    }

    #[test]
    fn base_url_gets_a_version_unless_it_has_one() {
        assert_eq!(
            gemini_versioned_base("http://127.0.0.1:9/"),
            "http://127.0.0.1:9/v1beta"
        );
        assert_eq!(
            gemini_versioned_base("https://generativelanguage.googleapis.com/v1beta"),
            "https://generativelanguage.googleapis.com/v1beta"
        );
        assert_eq!(
            gemini_versioned_base("https://proxy/google/v1"),
            "https://proxy/google/v1"
        );
        assert_eq!(
            gemini_versioned_base("https://vertex.example"),
            "https://vertex.example/v1beta"
        );
    }

    #[test]
    fn images_tools_tool_results_and_tool_choice() {
        let d = gemini_deployment();
        let req = chat(json!({
            "model": "g",
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in these?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp?x=1"}},
                    {"type": "image_url", "image_url": "gs://bucket/doc.pdf"}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_b", "content": "noon"}
            ],
            "tools": [{"type": "function", "function": {
                "name": "get_weather", "description": "Weather", "strict": true,
                "parameters": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                    "additionalProperties": false,
                    "properties": {"city": {"type": "string"}, "unit": {"type": ["string", "null"], "enum": ["c", "f"]},
                                   "when": {"$ref": "#/$defs/When"}},
                    "required": ["city", "ghost"],
                    "$defs": {"When": {"type": "object", "additionalProperties": false,
                        "properties": {"day": {"type": "string", "format": "date"}}}}}}},
                {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
                {"googleSearch": {}}
            ],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}
        }));
        let (_, body) = prepared_body(&d, &req);
        let parts = &body["contents"][0]["parts"];
        assert_eq!(
            parts[1],
            json!({"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}})
        );
        assert_eq!(
            parts[2],
            json!({"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp?x=1"}})
        );
        assert_eq!(parts[3]["fileData"]["mimeType"], "application/pdf");
        assert_eq!(
            body["contents"][1],
            json!({"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_time", "args": {}}}
            ]})
        );
        assert_eq!(
            body["contents"][2],
            json!({"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"content": "18C"}}},
                {"functionResponse": {"name": "get_time", "response": {"content": "noon"}}}
            ]})
        );
        let decls = &body["tools"][0]["functionDeclarations"];
        assert_eq!(
            decls[0]["parameters"],
            json!({"type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"], "nullable": true},
                               "when": {"type": "object", "properties": {"day": {"type": "string"}}}},
                "required": ["city"]})
        );
        assert_eq!(
            decls[1],
            json!({"name": "get_time"}),
            "empty parameters are omitted"
        );
        assert_eq!(body["tools"][1], json!({"googleSearch": {}}));
        assert_eq!(
            body["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
        );

        for (choice, mode) in [("auto", "AUTO"), ("none", "NONE"), ("required", "ANY")] {
            let req = chat(
                json!({"model": "g", "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": choice}),
            );
            let (_, body) = prepared_body(&d, &req);
            assert_eq!(body["toolConfig"]["functionCallingConfig"]["mode"], mode);
        }
    }

    #[test]
    fn bad_tool_arguments_and_orphan_tool_results_are_400s() {
        let d = gemini_deployment();
        let t = d.target_for("g").expect("target");
        let bad = chat(json!({"model": "g", "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}
        ]}));
        let e = GEMINI.prepare(&d, &t, &bad).err().expect("400");
        assert_eq!(
            e.param(),
            Some("messages[1].tool_calls[0].function.arguments")
        );
        let orphan = chat(json!({"model": "g", "messages": [
            {"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "nope", "content": "r"}
        ]}));
        assert!(GEMINI.prepare(&d, &t, &orphan).is_err());
    }

    #[test]
    fn response_format_reasoning_and_unsupported_params() {
        let d = gemini_deployment();
        let t = d.target_for("g").expect("target");
        let req = chat(
            json!({"model": "g", "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_object"}}),
        );
        let (_, body) = prepared_body(&d, &req);
        assert_eq!(
            body["generationConfig"]["responseMimeType"],
            "application/json"
        );
        assert!(body["generationConfig"].get("responseSchema").is_none());

        let req = chat(
            json!({"model": "g", "messages": [{"role": "user", "content": "x"}],
            "reasoning_effort": "low",
            "response_format": {"type": "json_schema", "json_schema": {"name": "p", "strict": true, "schema":
                {"type": "object", "additionalProperties": false, "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name"]}}}}),
        );
        let (_, body) = prepared_body(&d, &req);
        assert_eq!(
            body["generationConfig"]["responseSchema"],
            json!({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                   "required": ["name"], "propertyOrdering": ["name", "age"]})
        );
        assert_eq!(
            body["generationConfig"]["thinkingConfig"],
            json!({"thinkingBudget": 1024, "includeThoughts": true})
        );

        let biased = json!({"model": "g", "messages": [{"role": "user", "content": "x"}], "logit_bias": {"1": 1}});
        let e = GEMINI
            .prepare(&d, &t, &chat(biased.clone()))
            .err()
            .expect("400");
        assert!(e.to_string().contains("logit_bias"), "{e}");
        let mut dropping = biased;
        dropping["drop_params"] = json!(true);
        let p = GEMINI.prepare(&d, &t, &chat(dropping)).expect("dropped");
        assert!(!String::from_utf8_lossy(&p.body).contains("logit"));
    }

    #[test]
    fn missing_key_is_an_authentication_error() {
        if std::env::var_os("GEMINI_API_KEY").is_some()
            || std::env::var_os("GOOGLE_API_KEY").is_some()
        {
            return;
        }
        let d = deployment("model_list:\n  - model_name: g\n    litellm_params: {model: gemini/gemini-2.0-flash}\n");
        let t = d.target_for("g").expect("target");
        let req = chat(json!({"model": "g", "messages": [{"role": "user", "content": "x"}]}));
        let e = GEMINI.prepare(&d, &t, &req).err().expect("no key");
        assert_eq!(e.error_type(), "authentication_error");
        assert!(e.to_string().contains("GEMINI_API_KEY"));
    }

    // From https://ai.google.dev/api/generate-content (response body example shapes).
    const TEXT_RESPONSE: &str = r#"{
      "candidates": [{"content": {"parts": [{"text": "Thinking...", "thought": true}, {"text": "Hello "}, {"text": "there"}], "role": "model"},
                      "finishReason": "STOP", "index": 0,
                      "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]}],
      "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 5, "thoughtsTokenCount": 3,
                        "cachedContentTokenCount": 4, "totalTokenCount": 20,
                        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12}]},
      "modelVersion": "gemini-2.5-flash", "responseId": "abc123"}"#;

    #[test]
    fn text_response_with_thoughts_and_usage() {
        let req = chat(json!({"model": "g", "messages": [{"role": "user", "content": "x"}]}));
        let out = translate_chat_response(&req, TEXT_RESPONSE.as_bytes()).expect("ok");
        let v: Value = serde_json::from_slice(&out.body).expect("json");
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["id"], "chatcmpl-abc123");
        assert_eq!(v["model"], "gemini-2.5-flash");
        let m = &v["choices"][0]["message"];
        assert_eq!(m["content"], "Hello there");
        assert_eq!(m["reasoning_content"], "Thinking...");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        let u = out.usage.expect("usage");
        assert_eq!(
            (
                u.prompt_tokens,
                u.completion_tokens,
                u.total_tokens,
                u.cached_tokens,
                u.reasoning_tokens
            ),
            (12, 8, 20, 4, 3)
        );
        assert_eq!(
            v["usage"]["completion_tokens_details"]["reasoning_tokens"],
            3
        );
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
    }

    #[test]
    fn function_calls_finish_reasons_and_blocked_prompts() {
        let req = chat(json!({"model": "g", "messages": [{"role": "user", "content": "x"}]}));
        let body = r#"{"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            {"functionCall": {"name": "get_time", "args": {}}}]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 10, "totalTokenCount": 40}}"#;
        let v: Value = serde_json::from_slice(
            &translate_chat_response(&req, body.as_bytes())
                .expect("ok")
                .body,
        )
        .expect("json");
        let c = &v["choices"][0];
        assert_eq!(c["finish_reason"], "tool_calls");
        assert_eq!(c["message"]["content"], Value::Null);
        let calls = c["message"]["tool_calls"].as_array().expect("calls");
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0]["type"], "function");
        assert_eq!(calls[0]["function"]["name"], "get_weather");
        assert_eq!(calls[0]["function"]["arguments"], "{\"city\":\"Paris\"}");
        assert!(calls[0]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("call_")));
        assert_ne!(calls[0]["id"], calls[1]["id"]);

        for (reason, mapped) in [
            ("MAX_TOKENS", "length"),
            ("SAFETY", "content_filter"),
            ("RECITATION", "content_filter"),
            ("PROHIBITED_CONTENT", "content_filter"),
            ("BLOCKLIST", "content_filter"),
            ("SPII", "content_filter"),
            ("MALFORMED_FUNCTION_CALL", "stop"),
        ] {
            assert_eq!(finish_reason(reason), mapped);
        }

        let blocked = r#"{"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
            "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}}"#;
        let out = translate_chat_response(&req, blocked.as_bytes()).expect("ok");
        let v: Value = serde_json::from_slice(&out.body).expect("json");
        assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(out.usage.expect("usage").prompt_tokens, 8);
    }

    #[test]
    fn thought_signatures_ride_in_tool_call_ids_and_come_back() {
        let req = chat(json!({"model": "g", "messages": [{"role": "user", "content": "x"}]}));
        let body = r#"{"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "CiQB0e2Kb+sig=="}]},
            "finishReason": "STOP", "index": 0}]}"#;
        let v: Value = serde_json::from_slice(
            &translate_chat_response(&req, body.as_bytes())
                .expect("ok")
                .body,
        )
        .expect("json");
        let message = v["choices"][0]["message"].clone();
        let id = message["tool_calls"][0]["id"]
            .as_str()
            .expect("id")
            .to_string();
        assert!(
            id.starts_with("call_") && id.ends_with("__thought__CiQB0e2Kb+sig=="),
            "{id}"
        );

        let d = gemini_deployment();
        let next = chat(json!({"model": "g", "messages": [
            {"role": "user", "content": "x"}, message,
            {"role": "tool", "tool_call_id": id, "content": "18C"}]}));
        let (_, body) = prepared_body(&d, &next);
        assert_eq!(
            body["contents"][1]["parts"][0],
            json!({"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "CiQB0e2Kb+sig=="})
        );
        assert_eq!(
            body["contents"][2]["parts"][0]["functionResponse"]["name"],
            "get_weather"
        );
    }

    fn stream_all(t: &mut GeminiStream, raw: &[u8], split: usize) -> Result<String, GatewayError> {
        let mut out = Vec::new();
        out.extend_from_slice(&t.feed(&raw[..split])?);
        out.extend_from_slice(&t.feed(&raw[split..])?);
        out.extend_from_slice(&t.finish()?);
        Ok(String::from_utf8(out).expect("utf8"))
    }

    fn data_events(text: &str) -> Vec<String> {
        text.split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn stream_text_then_finish_then_usage_and_done_at_any_split() {
        let raw = concat!(
            "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hel\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9,\"totalTokenCount\": 9},\"modelVersion\": \"gemini-2.0-flash\",\"responseId\": \"r1\"}\r\n\r\n",
            "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"lo\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9,\"candidatesTokenCount\": 2,\"totalTokenCount\": 11},\"modelVersion\": \"gemini-2.0-flash\",\"responseId\": \"r1\"}\r\n\r\n"
        )
        .as_bytes();
        for split in [1, 10, raw.len() / 2, raw.len() - 1] {
            let mut t = GeminiStream::new(Flavor::AiStudio, "m", None);
            let text = stream_all(&mut t, raw, split).expect("ok");
            let data = data_events(&text);
            assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
            let chunks: Vec<Value> = data[..data.len() - 1]
                .iter()
                .map(|d| serde_json::from_str(d).expect("json"))
                .collect();
            assert_eq!(
                chunks[0]["choices"][0]["delta"],
                json!({"content": "Hel", "role": "assistant"})
            );
            assert_eq!(chunks[0]["id"], "chatcmpl-r1");
            assert_eq!(chunks[0]["model"], "gemini-2.0-flash");
            assert_eq!(chunks[1]["choices"][0]["delta"], json!({"content": "lo"}));
            assert_eq!(chunks[2]["choices"][0]["finish_reason"], "stop");
            assert_eq!(chunks[3]["choices"], json!([]));
            assert_eq!(chunks[3]["usage"]["total_tokens"], 11);
            assert_eq!(chunks.len(), 4);
        }
    }

    #[test]
    fn stream_tool_calls_get_openai_indexes() {
        let raw = br#"data: {"candidates": [{"content": {"parts": [{"functionCall": {"name": "a", "args": {"x": 1}}}, {"functionCall": {"name": "b", "args": {}}}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 5,"candidatesTokenCount": 4,"totalTokenCount": 9}}

"#;
        let mut t = GeminiStream::new(Flavor::AiStudio, "m", None);
        let text = stream_all(&mut t, raw, 3).expect("ok");
        let data = data_events(&text);
        let chunks: Vec<Value> = data[..data.len() - 1]
            .iter()
            .map(|d| serde_json::from_str(d).expect("json"))
            .collect();
        let first = &chunks[0]["choices"][0]["delta"];
        assert_eq!(first["role"], "assistant");
        assert_eq!(first["tool_calls"][0]["index"], 0);
        assert_eq!(first["tool_calls"][0]["function"]["name"], "a");
        assert_eq!(first["tool_calls"][0]["function"]["arguments"], "{\"x\":1}");
        assert!(first["tool_calls"][0]["id"]
            .as_str()
            .is_some_and(|s| s.starts_with("call_")));
        assert_eq!(
            chunks[1]["choices"][0]["delta"]["tool_calls"][0]["index"],
            1
        );
        assert_eq!(chunks[2]["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn stream_without_finish_reason_has_no_done_and_errors_fail() {
        let raw = b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hel\"}],\"role\": \"model\"},\"index\": 0}]}\n\n";
        let mut t = GeminiStream::new(Flavor::AiStudio, "m", None);
        let text = stream_all(&mut t, raw, 5).expect("ok");
        assert!(!text.contains("[DONE]"), "{text}");
        assert!(text.contains("Hel"));

        let err = b"data: {\"error\": {\"code\": 429, \"message\": \"Resource has been exhausted (e.g. check quota).\", \"status\": \"RESOURCE_EXHAUSTED\"}}\n\n";
        let mut t = GeminiStream::new(Flavor::AiStudio, "m", None);
        let e = t.feed(err).expect_err("error");
        assert_eq!(e.error_type(), "rate_limit_error");

        let blocked = b"data: {\"promptFeedback\": {\"blockReason\": \"PROHIBITED_CONTENT\"}}\n\n";
        let mut t = GeminiStream::new(Flavor::AiStudio, "m", None);
        let text = stream_all(&mut t, blocked, 1).expect("ok");
        assert!(
            text.contains("content_filter") && text.contains("[DONE]"),
            "{text}"
        );
    }

    #[test]
    fn errors_from_real_bodies() {
        let d = gemini_deployment();
        let t = d.target_for("g").expect("target");
        let ctx = br#"{"error": {"code": 400, "message": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).", "status": "INVALID_ARGUMENT"}}"#;
        let e = GEMINI.translate_error(&t, 400, None, ctx);
        assert_eq!(e.code(), "context_length_exceeded");
        assert!(
            e.to_string()
                .starts_with("ContextWindowExceededError: GeminiException - "),
            "{e}"
        );

        let rl = br#"{"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"}]}}"#;
        let e = GEMINI.translate_error(&t, 429, None, rl);
        assert_eq!(e.error_type(), "rate_limit_error");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
        assert_eq!(e.code(), "RESOURCE_EXHAUSTED");

        let key = br#"[{"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}}]"#;
        let e = GEMINI.translate_error(&t, 400, None, key);
        assert_eq!(e.error_type(), "authentication_error");

        let leak = br#"{"error": {"code": 403, "message": "key AIza-test-key-0123456789 is blocked", "status": "PERMISSION_DENIED"}}"#;
        let e = GEMINI.translate_error(&t, 403, None, leak);
        assert_eq!(e.error_type(), "permission_error");
        assert!(!e.to_string().contains("0123456789"));

        let e = GEMINI.translate_error(&t, 503, None, br#"{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}"#);
        assert!(e.is_retryable());
        assert_eq!(e.error_type(), "service_unavailable_error");
    }

    #[test]
    fn embeddings_request_and_response() {
        let d = deployment("model_list:\n  - model_name: g\n    litellm_params: {model: gemini/gemini-embedding-001, api_key: k}\n");
        let req = request(
            CallKind::Embedding,
            json!({"model": "g", "input": ["a", "bc"], "dimensions": 4}),
        );
        let (p, body) = prepared_body(&d, &req);
        assert!(
            p.url
                .ends_with("/v1beta/models/gemini-embedding-001:batchEmbedContents"),
            "{}",
            p.url
        );
        assert_eq!(
            body["requests"][1],
            json!({"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "bc"}]}, "outputDimensionality": 4})
        );
        let resp = br#"{"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]}"#;
        let out = GEMINI
            .translate_response(&req, Bytes::from_static(resp))
            .expect("ok");
        let v: Value = serde_json::from_slice(&out.body).expect("json");
        assert_eq!(v["object"], "list");
        assert_eq!(
            v["data"][1],
            json!({"object": "embedding", "index": 1, "embedding": [0.3, 0.4]})
        );
        assert_eq!(out.usage.expect("usage").prompt_tokens, 2);

        let tokens = request(
            CallKind::Embedding,
            json!({"model": "g", "input": [[1, 2]]}),
        );
        let t = d.target_for("g").expect("target");
        assert!(GEMINI.prepare(&d, &t, &tokens).is_err());
    }
}
