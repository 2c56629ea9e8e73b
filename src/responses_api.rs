//! OpenAI's Responses API (`POST /v1/responses`) on the chat pipeline.
//!
//! A Responses request runs through the same pipeline as chat ([`crate::pipeline::run`], kind
//! [`CallKind::Responses`]). Which wire it is spoken in is decided per attempt, by the deployment
//! ([`native`]): OpenAI and Azure deployments get the Responses body as the client sent it (only
//! `model` and a rebuilt conversation changed) on their `/responses` route; every other provider
//! gets the one translation of this module, Responses → chat ([`chat_request`]), and its chat
//! answer comes back as a Responses object ([`from_chat`]) or as Responses events
//! ([`ResponsesStream`]). No provider has Responses code of its own.
//!
//! Responses are stored (`stored_responses`, [`Recorder`]) unless the request says
//! `store: false`: `previous_response_id` rebuilds the conversation from the store
//! ([`conversation`]) for every provider, so it never depends on a provider having kept anything.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serde_json::{json, Map, Value};

use crate::deployment::Target;
use crate::error::GatewayError;
use crate::llm::{CallKind, LlmRequest, Usage};
use crate::outcome::{Outcome, Reply, StreamItem};
use crate::store::{Store, StoredResponse};

/// Whether a deployment is spoken to in the Responses API itself (OpenAI and Azure OpenAI); every
/// other provider is spoken to in chat.
pub fn native(target: &Target) -> bool {
    matches!(target.spec.name, "openai" | "azure")
}

/// A new item or response id: `prefix` and 32 hex digits, as OpenAI's ids look.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn bad(param: &str, message: impl Into<String>) -> GatewayError {
    GatewayError::bad_param(param, message)
}

// ---------------------------------------------------------------------------------------------
// Input items
// ---------------------------------------------------------------------------------------------

/// The request's `input` as the list of items the store keeps: a string becomes one user message,
/// a message's string content becomes one text part, and every item gets an `id` (`msg_…`,
/// `fc_…`, `fco_…`) when it has none. Malformed input is a 400 naming the item.
pub fn input_items(input: &Value) -> Result<Vec<Value>, GatewayError> {
    match input {
        Value::String(text) => Ok(vec![json!({
            "id": new_id("msg"),
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        })]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| input_item(i, item))
            .collect(),
        _ => Err(bad(
            "input",
            "Invalid type for 'input': expected a string or a list of input items.",
        )),
    }
}

fn input_item(i: usize, item: &Value) -> Result<Value, GatewayError> {
    let param = format!("input[{i}]");
    let Some(obj) = item.as_object() else {
        return Err(bad(
            &param,
            format!("Invalid type for '{param}': expected an object."),
        ));
    };
    let kind = obj.get("type").and_then(Value::as_str);
    let mut out = obj.clone();
    let field = |name: &str| obj.get(name).and_then(Value::as_str);
    let missing = |name: &str| {
        bad(
            &format!("{param}.{name}"),
            format!("Missing required parameter: '{param}.{name}'."),
        )
    };
    match kind {
        Some("message") | None if obj.contains_key("role") => {
            let role = field("role").ok_or_else(|| missing("role"))?;
            if !matches!(role, "user" | "assistant" | "system" | "developer") {
                return Err(bad(
                    &format!("{param}.role"),
                    format!("Invalid value for '{param}.role': '{role}'. Supported values are: 'user', 'assistant', 'system' and 'developer'."),
                ));
            }
            let text_type = if role == "assistant" {
                "output_text"
            } else {
                "input_text"
            };
            let content = match obj.get("content") {
                Some(Value::String(text)) => vec![json!({"type": text_type, "text": text})],
                Some(Value::Array(parts)) => {
                    for (j, part) in parts.iter().enumerate() {
                        content_part(&format!("{param}.content[{j}]"), part)?;
                    }
                    parts.clone()
                }
                None | Some(Value::Null) => return Err(missing("content")),
                Some(_) => {
                    return Err(bad(
                        &format!("{param}.content"),
                        format!("Invalid type for '{param}.content': expected a string or a list of content parts."),
                    ))
                }
            };
            out.insert("type".into(), json!("message"));
            out.insert("content".into(), Value::Array(content));
            out.entry("id").or_insert_with(|| json!(new_id("msg")));
        }
        Some("function_call") => {
            for name in ["call_id", "name", "arguments"] {
                field(name).ok_or_else(|| missing(name))?;
            }
            out.entry("id").or_insert_with(|| json!(new_id("fc")));
        }
        Some("function_call_output") => {
            field("call_id").ok_or_else(|| missing("call_id"))?;
            match obj.get("output") {
                Some(Value::String(_) | Value::Array(_)) => {}
                _ => return Err(missing("output")),
            }
            out.entry("id").or_insert_with(|| json!(new_id("fco")));
        }
        Some("item_reference") => {
            return Err(bad(
                &param,
                format!("'{param}': item references are not supported; use previous_response_id to continue a conversation."),
            ))
        }
        Some(_) => {}
        None => {
            return Err(bad(
                &format!("{param}.type"),
                format!("Missing required parameter: '{param}.type' (or a message's 'role')."),
            ))
        }
    }
    Ok(Value::Object(out))
}

fn content_part(param: &str, part: &Value) -> Result<(), GatewayError> {
    let kind = part.get("type").and_then(Value::as_str);
    match kind {
        Some("input_text" | "output_text" | "text") => {
            if !part.get("text").is_some_and(Value::is_string) {
                return Err(bad(
                    &format!("{param}.text"),
                    format!("Missing required parameter: '{param}.text'."),
                ));
            }
        }
        Some("input_image") => {
            if !part.get("image_url").is_some_and(Value::is_string)
                && !part.get("file_id").is_some_and(Value::is_string)
            {
                return Err(bad(
                    &format!("{param}.image_url"),
                    format!("Missing required parameter: '{param}.image_url'."),
                ));
            }
        }
        Some("refusal" | "input_file" | "input_audio") => {}
        Some(other) => {
            return Err(bad(
                &format!("{param}.type"),
                format!("Invalid value for '{param}.type': '{other}'."),
            ))
        }
        None => {
            return Err(bad(
                &format!("{param}.type"),
                format!("Missing required parameter: '{param}.type'."),
            ))
        }
    }
    Ok(())
}

/// The conversation a request continues: the previous response's conversation (its input items
/// and its output), then the new input.
pub fn conversation(previous: &StoredResponse, new_items: &[Value]) -> Vec<Value> {
    let mut items: Vec<Value> = serde_json::from_str(&previous.input_items).unwrap_or_default();
    let response: Value = serde_json::from_str(&previous.response).unwrap_or(Value::Null);
    if let Some(output) = response.get("output").and_then(Value::as_array) {
        items.extend(output.iter().cloned());
    }
    items.extend(new_items.iter().cloned());
    items
}

/// A stored conversation as a provider gets it: without the ids and statuses of its items (the
/// provider never stored them, and input items need neither) and without reasoning items (their encrypted state belongs to the
/// provider that wrote them).
pub fn for_upstream(items: &[Value]) -> Vec<Value> {
    items
        .iter()
        .filter(|item| item.get("type").and_then(Value::as_str) != Some("reasoning"))
        .map(|item| {
            let mut item = item.clone();
            if let Some(obj) = item.as_object_mut() {
                obj.remove("id");
                obj.remove("status");
            }
            item
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Responses → chat
// ---------------------------------------------------------------------------------------------

/// Fields of a Responses body with no chat counterpart, dropped by the translation.
const NOT_CHAT: &[&str] = &[
    "input",
    "instructions",
    "text",
    "max_output_tokens",
    "reasoning",
    "tools",
    "tool_choice",
    "previous_response_id",
    "store",
    "truncation",
    "include",
    "background",
    "stream_options",
    "prompt",
    "conversation",
    "max_tool_calls",
    "prompt_cache_key",
    "safety_identifier",
    "service_tier",
];

/// The chat request for a Responses request, for a deployment spoken to in chat. Its gateway
/// parameters (fallbacks, timeouts, mock fields…) are the Responses request's.
pub fn chat_request(req: &LlmRequest) -> Result<LlmRequest, GatewayError> {
    Ok(LlmRequest {
        kind: CallKind::Chat,
        model: req.model.clone(),
        stream: req.stream,
        // The Responses events end with the usage: the chat stream must carry it.
        client_wants_usage: true,
        body: to_chat(&req.body)?,
        uploads: Vec::new(),
        gateway: req.gateway.clone(),
    })
}

/// A Responses body (gateway fields already taken out) as a chat body.
pub fn to_chat(body: &Map<String, Value>) -> Result<Map<String, Value>, GatewayError> {
    let mut chat = Map::new();
    for (k, v) in body {
        if !NOT_CHAT.contains(&k.as_str()) {
            chat.insert(k.clone(), v.clone());
        }
    }
    let mut messages = Vec::new();
    if let Some(instructions) = body.get("instructions").and_then(Value::as_str) {
        messages.push(json!({"role": "system", "content": instructions}));
    }
    let items = input_items(body.get("input").unwrap_or(&Value::Null))?;
    for item in &items {
        push_chat_message(&mut messages, item)?;
    }
    chat.insert("messages".into(), Value::Array(messages));
    if let Some(max) = body.get("max_output_tokens").filter(|v| !v.is_null()) {
        chat.insert("max_tokens".into(), max.clone());
    }
    if let Some(effort) = body
        .get("reasoning")
        .and_then(|r| r.get("effort"))
        .filter(|v| !v.is_null())
    {
        chat.insert("reasoning_effort".into(), effort.clone());
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        let tools = tools
            .iter()
            .enumerate()
            .map(|(i, t)| chat_tool(i, t))
            .collect::<Result<Vec<_>, _>>()?;
        if !tools.is_empty() {
            chat.insert("tools".into(), Value::Array(tools));
        }
    }
    if let Some(choice) = body.get("tool_choice").filter(|v| !v.is_null()) {
        chat.insert("tool_choice".into(), chat_tool_choice(choice)?);
    }
    if let Some(format) = body.get("text").and_then(|t| t.get("format")) {
        if let Some(rf) = response_format(format)? {
            chat.insert("response_format".into(), rf);
        }
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(chat)
}

/// One input item appended to the chat messages (consecutive function calls join one assistant
/// message's `tool_calls`).
fn push_chat_message(messages: &mut Vec<Value>, item: &Value) -> Result<(), GatewayError> {
    match item.get("type").and_then(Value::as_str) {
        Some("message") => {
            let role = item.get("role").and_then(Value::as_str).unwrap_or("user");
            let parts = item
                .get("content")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let content = if role == "assistant" {
                // The assistant's text, joined.
                Value::String(
                    parts
                        .iter()
                        .filter_map(|p| p.get("text").or_else(|| p.get("refusal")))
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(""),
                )
            } else {
                Value::Array(parts.iter().filter_map(chat_part).collect())
            };
            messages.push(json!({"role": role, "content": content}));
        }
        Some("function_call") => {
            let call = json!({
                "id": item.get("call_id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {
                    "name": item.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": item.get("arguments").cloned().unwrap_or(json!("")),
                },
            });
            // A call joins the assistant message before it (its text, its other calls).
            let last_assistant = messages
                .last_mut()
                .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
                .and_then(Value::as_object_mut);
            if let Some(last) = last_assistant {
                match last.get_mut("tool_calls") {
                    Some(Value::Array(calls)) => calls.push(call),
                    _ => {
                        last.insert("tool_calls".into(), json!([call]));
                    }
                }
                if last.get("content").and_then(Value::as_str) == Some("") {
                    last.insert("content".into(), Value::Null);
                }
            } else {
                messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
            }
        }
        Some("function_call_output") => {
            let output = match item.get("output") {
                Some(Value::String(s)) => Value::String(s.clone()),
                Some(Value::Array(parts)) => {
                    Value::Array(parts.iter().filter_map(chat_part).collect())
                }
                _ => Value::String(String::new()),
            };
            messages.push(json!({
                "role": "tool",
                "tool_call_id": item.get("call_id").cloned().unwrap_or(Value::Null),
                "content": output,
            }));
        }
        // Reasoning is the provider's own state; a chat provider gets the conversation without it.
        Some("reasoning") => {}
        Some(other) => {
            return Err(bad(
                "input",
                format!("Input items of type '{other}' can only be sent to OpenAI or Azure OpenAI deployments."),
            ))
        }
        None => return Err(bad("input", "An input item has no 'type'.")),
    }
    Ok(())
}

/// A Responses content part as a chat content part.
fn chat_part(part: &Value) -> Option<Value> {
    match part.get("type").and_then(Value::as_str)? {
        "input_text" | "output_text" | "text" => {
            Some(json!({"type": "text", "text": part.get("text")?}))
        }
        "input_image" => {
            let url = part
                .get("image_url")
                .or_else(|| part.get("file_id"))?
                .clone();
            let mut image = json!({"url": url});
            if let Some(detail) = part.get("detail").filter(|d| !d.is_null()) {
                image["detail"] = detail.clone();
            }
            Some(json!({"type": "image_url", "image_url": image}))
        }
        "input_file" => {
            let mut file = Map::new();
            for k in ["file_id", "file_data", "filename"] {
                if let Some(v) = part.get(k) {
                    file.insert(k.into(), v.clone());
                }
            }
            Some(json!({"type": "file", "file": file}))
        }
        _ => None,
    }
}

/// A Responses function tool (flat) as a chat tool (nested under `function`).
fn chat_tool(i: usize, tool: &Value) -> Result<Value, GatewayError> {
    let param = format!("tools[{i}]");
    match tool.get("type").and_then(Value::as_str) {
        Some("function") => {
            let name = tool
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(&format!("{param}.name"), format!("Missing required parameter: '{param}.name'.")))?;
            let mut function = Map::new();
            function.insert("name".into(), json!(name));
            for k in ["description", "parameters", "strict"] {
                if let Some(v) = tool.get(k).filter(|v| !v.is_null()) {
                    function.insert(k.into(), v.clone());
                }
            }
            Ok(json!({"type": "function", "function": function}))
        }
        Some(other) => Err(bad(
            &format!("{param}.type"),
            format!("Tools of type '{other}' can only be sent to OpenAI or Azure OpenAI deployments; other providers take function tools."),
        )),
        None => Err(bad(
            &format!("{param}.type"),
            format!("Missing required parameter: '{param}.type'."),
        )),
    }
}

fn chat_tool_choice(choice: &Value) -> Result<Value, GatewayError> {
    match choice {
        Value::String(_) => Ok(choice.clone()),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o.get("name").cloned().unwrap_or(Value::Null);
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        _ => Err(bad(
            "tool_choice",
            "'tool_choice' must be 'none', 'auto', 'required' or {\"type\": \"function\", \"name\": …} for this deployment.",
        )),
    }
}

/// `text.format` as chat's `response_format` (`None` for plain text).
fn response_format(format: &Value) -> Result<Option<Value>, GatewayError> {
    match format.get("type").and_then(Value::as_str) {
        None | Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = Map::new();
            for k in ["name", "schema", "strict", "description"] {
                if let Some(v) = format.get(k).filter(|v| !v.is_null()) {
                    schema.insert(k.into(), v.clone());
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        Some(other) => Err(bad(
            "text.format.type",
            format!("Invalid value for 'text.format.type': '{other}'."),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Chat → Responses
// ---------------------------------------------------------------------------------------------

/// What a Responses object repeats of its request, and the model the client asked for.
#[derive(Debug, Clone)]
pub struct Echo {
    pub model: String,
    fields: Map<String, Value>,
}

/// A request field and its default.
type Defaulted = (&'static str, fn() -> Value);

/// Request fields every Responses object repeats, with OpenAI's defaults.
const ECHOED: &[Defaulted] = &[
    ("instructions", || Value::Null),
    ("max_output_tokens", || Value::Null),
    ("metadata", || json!({})),
    ("parallel_tool_calls", || json!(true)),
    ("previous_response_id", || Value::Null),
    ("reasoning", || json!({"effort": null, "summary": null})),
    ("store", || json!(true)),
    ("temperature", || json!(1.0)),
    ("text", || json!({"format": {"type": "text"}})),
    ("tool_choice", || json!("auto")),
    ("tools", || json!([])),
    ("top_p", || json!(1.0)),
    ("truncation", || json!("disabled")),
    ("user", || Value::Null),
];

impl Echo {
    /// From the body as the client sent it.
    pub fn from_body(body: &Map<String, Value>) -> Self {
        let fields = ECHOED
            .iter()
            .map(|(k, default)| {
                let v = body.get(*k).filter(|v| !v.is_null()).cloned();
                ((*k).to_string(), v.unwrap_or_else(default))
            })
            .collect();
        Self {
            model: body
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            fields,
        }
    }

    /// Whether the request asked for its response to be stored (`store`, default true).
    pub fn store(&self) -> bool {
        self.fields.get("store").and_then(Value::as_bool) != Some(false)
    }

    /// A provider's Responses object as the client asked for it: the `previous_response_id` it
    /// continued (the provider got the rebuilt conversation instead).
    fn restore(&self, response: &mut Value) {
        let previous = self.fields.get("previous_response_id");
        if let (Some(obj), Some(previous)) =
            (response.as_object_mut(), previous.filter(|p| !p.is_null()))
        {
            obj.insert("previous_response_id".into(), previous.clone());
        }
    }

    /// A Responses object with these request fields.
    fn object(
        &self,
        id: &str,
        created_at: u64,
        model: &str,
        output: Vec<Value>,
        usage: Value,
        (status, incomplete): (&str, Value),
    ) -> Value {
        let mut obj = Map::new();
        obj.insert("id".into(), json!(id));
        obj.insert("object".into(), json!("response"));
        obj.insert("created_at".into(), json!(created_at));
        obj.insert("status".into(), json!(status));
        obj.insert("background".into(), json!(false));
        obj.insert("error".into(), Value::Null);
        obj.insert("incomplete_details".into(), incomplete);
        obj.insert("model".into(), json!(model));
        obj.insert("output".into(), Value::Array(output));
        for (k, v) in &self.fields {
            obj.insert(k.clone(), v.clone());
        }
        obj.insert("usage".into(), usage);
        Value::Object(obj)
    }
}

/// Chat usage as Responses usage.
pub fn usage_from_chat(usage: Option<&Value>) -> Value {
    let n = |k: &str| {
        usage
            .and_then(|u| u.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let detail = |k: &str, d: &str| {
        usage
            .and_then(|u| u.get(k))
            .and_then(|v| v.get(d))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let (input, output) = (n("prompt_tokens"), n("completion_tokens"));
    let total = match n("total_tokens") {
        0 => input + output,
        t => t,
    };
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": detail("prompt_tokens_details", "cached_tokens")},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": detail("completion_tokens_details", "reasoning_tokens")},
        "total_tokens": total,
    })
}

/// A Responses object's usage in the gateway's terms (spend, limits).
pub fn usage_of(response: &Value) -> Option<Usage> {
    let u = response.get("usage").filter(|u| u.is_object())?;
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let detail = |k: &str, d: &str| {
        u.get(k)
            .and_then(|v| v.get(d))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let (prompt, completion) = (n("input_tokens"), n("output_tokens"));
    Some(Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: match n("total_tokens") {
            0 => prompt + completion,
            t => t,
        },
        cached_tokens: detail("input_tokens_details", "cached_tokens"),
        reasoning_tokens: detail("output_tokens_details", "reasoning_tokens"),
    })
}

/// The status and `incomplete_details` a chat `finish_reason` stands for.
fn status_of(finish_reason: Option<&str>) -> (&'static str, Value) {
    match finish_reason {
        Some("length") => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some("content_filter") => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({
        "id": id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [output_text(text)],
    })
}

fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

fn reasoning_item(id: &str, text: &str) -> Value {
    json!({
        "id": id,
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text}],
    })
}

fn function_call_item(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({
        "id": id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    })
}

/// A chat completion as a Responses object: its reasoning, text and tool calls as output items.
pub fn from_chat(chat: &Value, echo: &Echo) -> Value {
    let choice = chat
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first());
    let message = choice.and_then(|c| c.get("message"));
    let text_of = |k: &str| {
        message
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let mut output = Vec::new();
    if let Some(reasoning) = text_of("reasoning_content") {
        output.push(reasoning_item(&new_id("rs"), reasoning));
    }
    if let Some(text) = text_of("content").or_else(|| text_of("refusal")) {
        output.push(message_item(&new_id("msg"), text, "completed"));
    }
    for call in message
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let function = call.get("function");
        let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
        let call_id = s(call.get("id"));
        output.push(function_call_item(
            &new_id("fc"),
            if call_id.is_empty() { "call" } else { &call_id },
            &s(function.and_then(|f| f.get("name"))),
            &s(function.and_then(|f| f.get("arguments"))),
            "completed",
        ));
    }
    let (status, incomplete) = status_of(
        choice
            .and_then(|c| c.get("finish_reason"))
            .and_then(Value::as_str),
    );
    let model = chat
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(&echo.model);
    let created = chat
        .get("created")
        .and_then(Value::as_u64)
        .unwrap_or_else(now_secs);
    echo.object(
        &new_id("resp"),
        created,
        model,
        output,
        usage_from_chat(chat.get("usage")),
        (status, incomplete),
    )
}

/// A complete reply as the Responses object the client gets (converted from chat when the
/// deployment was spoken to in chat); the outcome's body becomes that object. `None` for a
/// stream or an error.
pub fn complete_object(outcome: &mut Outcome, echo: &Echo) -> Option<Value> {
    let native = outcome.facts.responses_shaped;
    let Ok(Reply::Complete(completion)) = &mut outcome.result else {
        return None;
    };
    let body: Value = match serde_json::from_slice(&completion.body) {
        Ok(v) => v,
        Err(e) => {
            outcome.result = Err(GatewayError::internal(format!(
                "the response is not JSON: {e}"
            )));
            return None;
        }
    };
    let object = if native {
        let mut body = body;
        echo.restore(&mut body);
        body
    } else {
        from_chat(&body, echo)
    };
    completion.body = Bytes::from(object.to_string());
    outcome.facts.responses_shaped = true;
    Some(object)
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

/// What a [`ResponsesStream`] hands the final response object to (the store).
pub type OnFinal = Box<dyn FnOnce(Value)>;

/// One open output item of a translated stream.
struct OpenItem {
    output_index: usize,
    id: String,
    text: String,
}

/// One tool call of a translated stream.
struct OpenCall {
    output_index: usize,
    id: String,
    call_id: String,
    name: String,
    arguments: String,
}

/// A typed stream as Responses SSE events (`event: <type>`, `data: {…, "sequence_number"}`).
///
/// A stream of a deployment spoken to in the Responses API is relayed event by event; a chat
/// stream is translated: `response.created`, `response.in_progress`, per output item
/// `response.output_item.added`, its parts and deltas, `response.output_item.done`, then
/// `response.completed` with the whole response and its usage. A broken stream ends with an
/// `error` event.
pub struct ResponsesStream {
    native: bool,
    echo: Echo,
    out: BytesMut,
    seq: u64,
    id: String,
    model: String,
    created_at: u64,
    started: bool,
    finished: bool,
    output: Vec<Option<Value>>,
    reasoning: Option<OpenItem>,
    message: Option<OpenItem>,
    calls: BTreeMap<u64, OpenCall>,
    finish_reason: Option<String>,
    usage: Option<Value>,
    on_final: Option<OnFinal>,
}

impl ResponsesStream {
    /// `native`: the items are Responses events already (else chat chunks).
    pub fn new(native: bool, echo: Echo, on_final: Option<OnFinal>) -> Self {
        Self {
            native,
            model: echo.model.clone(),
            echo,
            out: BytesMut::new(),
            seq: 0,
            id: new_id("resp"),
            created_at: now_secs(),
            started: false,
            finished: false,
            output: Vec::new(),
            reasoning: None,
            message: None,
            calls: BTreeMap::new(),
            finish_reason: None,
            usage: None,
            on_final,
        }
    }

    fn emit(&mut self, kind: &str, mut data: Value) {
        if let Some(obj) = data.as_object_mut() {
            obj.insert("type".into(), json!(kind));
            obj.insert("sequence_number".into(), json!(self.seq));
        }
        self.seq += 1;
        self.write(kind, &data);
    }

    fn write(&mut self, kind: &str, data: &Value) {
        self.out.extend_from_slice(b"event: ");
        self.out.extend_from_slice(kind.as_bytes());
        self.out.extend_from_slice(b"\ndata: ");
        self.out.extend_from_slice(data.to_string().as_bytes());
        self.out.extend_from_slice(b"\n\n");
    }

    fn snapshot(&self, status: &str, usage: Value, incomplete: Value) -> Value {
        let output = self.output.iter().flatten().cloned().collect();
        let mut object = self.echo.object(
            &self.id,
            self.created_at,
            &self.model,
            output,
            usage,
            (status, incomplete),
        );
        if status == "in_progress" {
            object["output"] = json!([]);
        }
        object
    }

    fn start(&mut self, chunk: &Value) {
        if self.started {
            return;
        }
        self.started = true;
        if let Some(m) = chunk.get("model").and_then(Value::as_str) {
            self.model = m.to_string();
        }
        if let Some(c) = chunk.get("created").and_then(Value::as_u64) {
            self.created_at = c;
        }
        let response = self.snapshot("in_progress", Value::Null, Value::Null);
        self.emit("response.created", json!({"response": response}));
        self.emit("response.in_progress", json!({"response": response}));
    }

    /// A new output item: its index, announced with `response.output_item.added`.
    fn add_item(&mut self, item: Value) -> usize {
        let output_index = self.output.len();
        self.output.push(None);
        self.emit(
            "response.output_item.added",
            json!({"output_index": output_index, "item": item}),
        );
        output_index
    }

    fn done_item(&mut self, output_index: usize, item: Value) {
        self.output[output_index] = Some(item.clone());
        self.emit(
            "response.output_item.done",
            json!({"output_index": output_index, "item": item}),
        );
    }

    fn close_reasoning(&mut self) {
        let Some(r) = self.reasoning.take() else {
            return;
        };
        let part = json!({"type": "summary_text", "text": r.text});
        let at = json!({"item_id": r.id, "output_index": r.output_index, "summary_index": 0});
        let with = |k: &str, v: Value| {
            let mut e = at.clone();
            e[k] = v;
            e
        };
        let done_text = with("text", json!(r.text));
        let done_part = with("part", part);
        self.emit("response.reasoning_summary_text.done", done_text);
        self.emit("response.reasoning_summary_part.done", done_part);
        self.done_item(r.output_index, reasoning_item(&r.id, &r.text));
    }

    fn close_message(&mut self) {
        let Some(m) = self.message.take() else {
            return;
        };
        let at = json!({"item_id": m.id, "output_index": m.output_index, "content_index": 0});
        let mut text_done = at.clone();
        text_done["text"] = json!(m.text);
        text_done["logprobs"] = json!([]);
        self.emit("response.output_text.done", text_done);
        let mut part_done = at;
        part_done["part"] = output_text(&m.text);
        self.emit("response.content_part.done", part_done);
        self.done_item(m.output_index, message_item(&m.id, &m.text, "completed"));
    }

    fn close_calls(&mut self) {
        for (_, c) in std::mem::take(&mut self.calls) {
            self.emit(
                "response.function_call_arguments.done",
                json!({"item_id": c.id, "output_index": c.output_index, "name": c.name, "arguments": c.arguments}),
            );
            self.done_item(
                c.output_index,
                function_call_item(&c.id, &c.call_id, &c.name, &c.arguments, "completed"),
            );
        }
    }

    fn reasoning_delta(&mut self, text: &str) {
        self.close_message();
        if self.reasoning.is_none() {
            let id = new_id("rs");
            let output_index = self.add_item(json!({"id": id, "type": "reasoning", "summary": []}));
            self.emit(
                "response.reasoning_summary_part.added",
                json!({"item_id": id, "output_index": output_index, "summary_index": 0,
                       "part": {"type": "summary_text", "text": ""}}),
            );
            self.reasoning = Some(OpenItem {
                output_index,
                id,
                text: String::new(),
            });
        }
        let r = self.reasoning.as_mut().expect("opened above");
        r.text.push_str(text);
        let event = json!({"item_id": r.id, "output_index": r.output_index, "summary_index": 0, "delta": text});
        self.emit("response.reasoning_summary_text.delta", event);
    }

    fn text_delta(&mut self, text: &str) {
        self.close_reasoning();
        if self.message.is_none() {
            let id = new_id("msg");
            let output_index = self.add_item(json!({
                "id": id, "type": "message", "status": "in_progress", "role": "assistant", "content": [],
            }));
            self.emit(
                "response.content_part.added",
                json!({"item_id": id, "output_index": output_index, "content_index": 0,
                       "part": output_text("")}),
            );
            self.message = Some(OpenItem {
                output_index,
                id,
                text: String::new(),
            });
        }
        let m = self.message.as_mut().expect("opened above");
        m.text.push_str(text);
        let event = json!({"item_id": m.id, "output_index": m.output_index, "content_index": 0,
                           "delta": text, "logprobs": []});
        self.emit("response.output_text.delta", event);
    }

    fn tool_call_delta(&mut self, call: &Value) {
        self.close_reasoning();
        self.close_message();
        let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        let function = call.get("function");
        let arguments = function
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !self.calls.contains_key(&index) {
            let id = new_id("fc");
            let call_id = call
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map_or_else(|| new_id("call"), str::to_string);
            let name = function
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let output_index =
                self.add_item(function_call_item(&id, &call_id, &name, "", "in_progress"));
            self.calls.insert(
                index,
                OpenCall {
                    output_index,
                    id,
                    call_id,
                    name,
                    arguments: String::new(),
                },
            );
        }
        if arguments.is_empty() {
            return;
        }
        let c = self.calls.get_mut(&index).expect("inserted above");
        c.arguments.push_str(&arguments);
        let event = json!({"item_id": c.id, "output_index": c.output_index, "delta": arguments});
        self.emit("response.function_call_arguments.delta", event);
    }

    fn chunk(&mut self, chunk: &Value) {
        self.start(chunk);
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
        }
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
            let text = |k: &str| {
                delta
                    .get(k)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            };
            if let Some(t) = text("reasoning_content") {
                self.reasoning_delta(&t);
            }
            if let Some(t) = text("content") {
                self.text_delta(&t);
            }
            for call in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                self.tool_call_delta(&call);
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_string());
        }
    }

    fn complete(&mut self) {
        if self.finished {
            return;
        }
        self.start(&Value::Null);
        self.close_reasoning();
        self.close_message();
        self.close_calls();
        self.finished = true;
        let (status, incomplete) = status_of(self.finish_reason.as_deref());
        let response = self.snapshot(status, usage_from_chat(self.usage.as_ref()), incomplete);
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.emit(kind, json!({"response": response}));
        if let Some(on_final) = self.on_final.take() {
            on_final(response);
        }
    }

    fn error(&mut self, message: &str) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.emit(
            "error",
            json!({"code": "stream_interrupted", "message": message, "param": null}),
        );
    }

    /// One Responses event of a native stream, relayed as its `type` names it.
    fn native_event(&mut self, data: &[u8]) {
        let Ok(mut event) = serde_json::from_slice::<Value>(data) else {
            self.error("the upstream stream sent an event that is not JSON");
            return;
        };
        if let Some(response) = event.get_mut("response") {
            self.echo.restore(response);
        }
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message")
            .to_string();
        if let Some(n) = event.get("sequence_number").and_then(Value::as_u64) {
            self.seq = n + 1;
        }
        self.write(&kind, &event);
        match kind.as_str() {
            "response.completed" | "response.incomplete" | "response.failed" => {
                self.finished = true;
                if let (Some(on_final), Some(response)) =
                    (self.on_final.take(), event.get("response"))
                {
                    on_final(response.clone());
                }
            }
            "error" => self.finished = true,
            _ => {}
        }
    }

    /// One item of the pipeline's typed stream: the events it completes.
    pub fn push(&mut self, item: &StreamItem) -> Bytes {
        match item {
            StreamItem::Chunk(data) if self.native => self.native_event(data),
            StreamItem::Chunk(data) => match serde_json::from_slice::<Value>(data) {
                Ok(chunk) => match chunk.get("error").filter(|e| !e.is_null()) {
                    Some(err) => {
                        let message = err
                            .get("message")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .unwrap_or_else(|| err.to_string());
                        self.error(&message);
                    }
                    None if !self.finished => self.chunk(&chunk),
                    None => {}
                },
                Err(_) => self.error("the upstream stream sent an event that is not JSON"),
            },
            StreamItem::Comment(_) => {}
            StreamItem::Done if self.native => {}
            StreamItem::Done => self.complete(),
            StreamItem::Error(message) => self.error(message),
        }
        self.out.split().freeze()
    }

    /// The typed stream ended: a stream that ended before its response was complete is broken.
    pub fn close(&mut self) -> Bytes {
        self.error("the stream ended before the response was complete");
        self.out.split().freeze()
    }
}

/// The response a native Responses stream ended with (its `response.completed` or
/// `response.incomplete` event), from the stream's captured events.
pub fn completed_response(events: &[Bytes]) -> Option<Bytes> {
    events.iter().rev().find_map(|event| {
        let v: Value = serde_json::from_slice(event).ok()?;
        match v.get("type").and_then(Value::as_str)? {
            "response.completed" | "response.incomplete" => {
                Some(Bytes::from(v.get("response")?.to_string()))
            }
            _ => None,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------

/// Who owns the responses a caller creates: its key's hash; `None` for the master key.
pub fn owner(caller: &crate::auth::Caller) -> Option<String> {
    caller.principal().map(|p| p.key.token.clone())
}

/// Responses whose stream has ended and whose row is being written ([`Recorder::on_final`]): a
/// lookup of one of them (a `previous_response_id` sent the moment a stream ends, a retrieve)
/// waits for the write, at most [`PENDING_WAIT`], instead of missing it.
static PENDING: std::sync::LazyLock<std::sync::Mutex<std::collections::HashSet<String>>> =
    std::sync::LazyLock::new(Default::default);
const PENDING_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn pending(id: &str) -> bool {
    PENDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .contains(id)
}

fn set_pending(id: &str, on: bool) {
    let mut set = PENDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if on {
        set.insert(id.to_string());
    } else {
        set.remove(id);
    }
}

/// A stored response `caller` may see: its own, or any for a proxy admin. Another key's response
/// is not found, as OpenAI answers.
pub async fn find(
    store: &Arc<dyn Store>,
    caller: &crate::auth::Caller,
    id: &str,
) -> Result<StoredResponse, GatewayError> {
    let waited = std::time::Instant::now();
    while pending(id) && waited.elapsed() < PENDING_WAIT {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let found = store
        .get_response(id)
        .await
        .map_err(|e| GatewayError::Unavailable {
            message: e.to_string(),
        })?;
    match found {
        Some(r) if caller.is_admin() || r.owner == owner(caller) => Ok(r),
        _ => Err(GatewayError::NotFound {
            message: format!("Response with id '{id}' not found."),
        }),
    }
}

/// Writes a request's response to the store: who asked, the conversation it was given, the model.
#[derive(Clone)]
pub struct Recorder {
    store: Arc<dyn Store>,
    owner: Option<String>,
    model: String,
    input: Arc<Vec<Value>>,
}

impl Recorder {
    pub fn new(
        store: Arc<dyn Store>,
        caller: &crate::auth::Caller,
        model: &str,
        input: Vec<Value>,
    ) -> Self {
        Self {
            store,
            owner: owner(caller),
            model: model.to_string(),
            input: Arc::new(input),
        }
    }

    /// Store `response` (a failure is logged: the client has its answer).
    pub async fn record(&self, response: &Value) {
        let Some(id) = response.get("id").and_then(Value::as_str) else {
            return;
        };
        let row = StoredResponse {
            id: id.to_string(),
            owner: self.owner.clone(),
            model: self.model.clone(),
            input_items: Value::Array(self.input.to_vec()).to_string(),
            response: response.to_string(),
            created_at: crate::time::now_ms(),
        };
        if let Err(e) = self.store.insert_response(&row).await {
            tracing::warn!(response_id = id, error = %e, "response not stored");
        }
    }

    /// For a stream: store the final response once it is written, off the stream (lookups of it
    /// meanwhile wait for the write: [`find`]).
    pub fn on_final(&self) -> OnFinal {
        let recorder = self.clone();
        Box::new(move |response| {
            let id = response
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_string);
            if let Some(id) = &id {
                set_pending(id, true);
            }
            actix_web::rt::spawn(async move {
                recorder.record(&response).await;
                if let Some(id) = id {
                    set_pending(&id, false);
                }
            });
        })
    }
}

/// The input items of a stored response as OpenAI lists them (`order` `asc` or `desc`, the
/// default; `after` an item id; `limit` 1–100, default 20).
pub fn input_items_page(
    stored: &StoredResponse,
    order: Option<&str>,
    after: Option<&str>,
    limit: Option<usize>,
) -> Result<Value, GatewayError> {
    let mut items: Vec<Value> = serde_json::from_str(&stored.input_items).unwrap_or_default();
    match order {
        None | Some("desc") => items.reverse(),
        Some("asc") => {}
        Some(other) => {
            return Err(bad(
                "order",
                format!(
                    "Invalid value for 'order': '{other}'. Supported values are: 'asc' and 'desc'."
                ),
            ))
        }
    }
    let limit = limit.unwrap_or(20).clamp(1, 100);
    let start = match after {
        Some(after) => items
            .iter()
            .position(|i| i.get("id").and_then(Value::as_str) == Some(after))
            .map_or(items.len(), |p| p + 1),
        None => 0,
    };
    let page: Vec<Value> = items.iter().skip(start).take(limit).cloned().collect();
    let has_more = start + page.len() < items.len();
    let id_of = |v: Option<&Value>| v.and_then(|i| i.get("id")).cloned().unwrap_or(Value::Null);
    Ok(json!({
        "object": "list",
        "data": page,
        "first_id": id_of(page.first()),
        "last_id": id_of(page.last()),
        "has_more": has_more,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().expect("object").clone()
    }

    #[test]
    fn a_responses_body_becomes_a_chat_body() {
        let chat = to_chat(&body(json!({
            "model": "m",
            "instructions": "be brief",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "hi"},
                                             {"type": "input_image", "image_url": "https://x/i.png"}]},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "42"}
            ],
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "f"},
            "text": {"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}, "strict": true}},
            "max_output_tokens": 50,
            "reasoning": {"effort": "low"},
            "temperature": 0.3,
            "store": false
        })))
        .expect("translates");
        assert_eq!(
            chat["messages"][0],
            json!({"role": "system", "content": "be brief"})
        );
        assert_eq!(
            chat["messages"][1]["content"][1]["image_url"]["url"],
            "https://x/i.png"
        );
        assert_eq!(
            chat["messages"][2]["tool_calls"][0]["function"]["name"],
            "f"
        );
        assert_eq!(
            chat["messages"][3],
            json!({"role": "tool", "tool_call_id": "c1", "content": "42"})
        );
        assert_eq!(
            chat["tools"][0]["function"]["parameters"],
            json!({"type": "object"})
        );
        assert_eq!(
            chat["tool_choice"],
            json!({"type": "function", "function": {"name": "f"}})
        );
        assert_eq!(chat["response_format"]["json_schema"]["name"], "s");
        assert_eq!(chat["max_tokens"], 50);
        assert_eq!(chat["reasoning_effort"], "low");
        assert_eq!(chat["temperature"], 0.3);
        assert!(chat.get("store").is_none() && chat.get("input").is_none());
    }

    #[test]
    fn malformed_input_names_the_item() {
        let err = input_items(&json!([{"role": "user"}])).expect_err("no content");
        assert_eq!(err.param(), Some("input[0].content"));
        let err = input_items(&json!([{"type": "function_call_output"}])).expect_err("no call");
        assert_eq!(err.param(), Some("input[0].call_id"));
        assert!(input_items(&json!(3)).is_err());
    }

    #[test]
    fn a_chat_completion_becomes_a_responses_object() {
        let echo = Echo::from_body(&body(json!({"model": "g", "metadata": {"a": "b"}})));
        let chat = json!({"id": "chatcmpl-1", "model": "claude", "created": 5, "choices": [{"index": 0,
            "message": {"role": "assistant", "content": "hi", "reasoning_content": "think",
                        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}});
        let r = from_chat(&chat, &echo);
        assert_eq!(r["object"], "response");
        assert_eq!(r["status"], "completed");
        assert_eq!(r["model"], "claude");
        assert_eq!(r["metadata"], json!({"a": "b"}));
        let types: Vec<&str> = r["output"]
            .as_array()
            .expect("output")
            .iter()
            .map(|i| i["type"].as_str().expect("type"))
            .collect();
        assert_eq!(types, ["reasoning", "message", "function_call"]);
        assert_eq!(r["output"][2]["call_id"], "call_1");
        assert_eq!(r["usage"]["input_tokens"], 3);
        assert_eq!(r["usage"]["total_tokens"], 5);
    }

    #[test]
    fn a_chat_stream_becomes_responses_events() {
        let mut s = ResponsesStream::new(false, Echo::from_body(&Map::new()), None);
        let chunk = |v: Value| StreamItem::Chunk(Bytes::from(v.to_string()));
        let mut out = Vec::new();
        out.extend_from_slice(&s.push(&chunk(
            json!({"model": "m", "choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
        )));
        out.extend_from_slice(&s.push(&chunk(
            json!({"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]}),
        )));
        out.extend_from_slice(&s.push(&chunk(json!({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}))));
        out.extend_from_slice(&s.push(&StreamItem::Done));
        let text = String::from_utf8(out).expect("utf-8");
        let events: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .collect();
        assert_eq!(
            events,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        let last: Value = serde_json::from_str(
            text.lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .next_back()
                .expect("data"),
        )
        .expect("json");
        assert_eq!(last["sequence_number"], 9);
        assert_eq!(last["response"]["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(last["response"]["usage"]["output_tokens"], 2);
    }
}
