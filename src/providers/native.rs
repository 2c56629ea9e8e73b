//! Pieces the adapters share: the OpenAI body with deployment defaults and `drop_params` applied,
//! headers, upstream errors in LiteLLM's wording and the error text of a provider's body, and (for
//! the providers with their own wire format: Cohere, Ollama, Hugging Face embeddings) the tool
//! calls, completions and embedding lists they answer with, built from the OpenAI wire types.

use std::borrow::Cow;
use std::time::Duration;

use serde_json::{Map, Value};
use tollgate_wire::openai::{
    AssistantMessage, ChatCompletion, Choice, EmbeddingList, EmbeddingVector, ToolCall,
};

use crate::deployment::{Deployment, Target};
use crate::error::{GatewayError, UpstreamErrorKind};
use crate::llm::{LlmRequest, Usage};
use crate::secret::scrub;

/// OpenAI chat parameters the native chat APIs here (Cohere, Ollama) have no equivalent for.
pub const UNSUPPORTED_CHAT: &[&str] = &[
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "functions",
    "function_call",
    "modalities",
    "audio",
    "prediction",
    "reasoning_effort",
    "web_search_options",
];

/// OpenAI parameters those adapters drop without a word: they steer OpenAI-side features with no
/// effect on the answer (`user`, `store`…) or are handled by the gateway (`stream_options`).
pub const IGNORED_CHAT: &[&str] = &[
    "user",
    "store",
    "service_tier",
    "stream_options",
    "parallel_tool_calls",
];

/// The request body with the deployment's defaults filled in, `additional_drop_params` removed,
/// and the OpenAI parameters the provider cannot take (`unsupported`, plus the spec's list) either
/// dropped (`drop_params`) or refused with LiteLLM's `UnsupportedParamsError`. A copy, for the
/// adapters that take it apart; the OpenAI adapter serializes an [`OpenAiBody`] instead.
pub fn openai_body(
    deployment: &Deployment,
    target: &Target,
    req: &LlmRequest,
    unsupported: &[&str],
) -> Result<Map<String, Value>, GatewayError> {
    Ok(OpenAiBody::new(deployment, target, req, unsupported)?.to_map())
}

/// The request body as an OpenAI-compatible provider gets it, without copying the client's
/// body: its fields in their order, less the removed ones, with some replaced or added (the
/// deployment's defaults, the model name, `stream_options`). Serializes to the same JSON as the
/// edited copy would, so a large request is never held twice.
pub struct OpenAiBody<'a> {
    base: &'a Map<String, Value>,
    removed: Vec<&'a str>,
    /// Replacements (in place) and additions (after the client's fields, in order).
    set: Vec<(String, Value)>,
}

impl<'a> OpenAiBody<'a> {
    pub fn new(
        deployment: &'a Deployment,
        target: &Target,
        req: &'a LlmRequest,
        unsupported: &[&str],
    ) -> Result<Self, GatewayError> {
        let mut body = Self::with_defaults(deployment, req);
        let present: Vec<&str> = unsupported
            .iter()
            .chain(target.spec.unsupported_params)
            .copied()
            .filter(|p| body.get(p).is_some_and(|v| !v.is_null()))
            .collect();
        if present.is_empty() {
            return Ok(body);
        }
        if !drop_params(deployment, req) {
            return Err(unsupported_error(target, &present));
        }
        for p in present {
            body.remove(p);
        }
        Ok(body)
    }

    /// The shared preamble of every adapter: the client's body with the deployment's defaults
    /// filled in and its `additional_drop_params` removed (no check of unsupported parameters:
    /// adapters with their own rules for those start here).
    pub fn with_defaults(deployment: &'a Deployment, req: &'a LlmRequest) -> Self {
        let mut body = OpenAiBody {
            base: &req.body,
            removed: deployment
                .additional_drop_params
                .iter()
                .map(String::as_str)
                .collect(),
            set: Vec::new(),
        };
        for (k, v) in &deployment.defaults {
            if !req.body.contains_key(k) && !body.removed.contains(&k.as_str()) {
                body.set.push((k.clone(), v.clone()));
            }
        }
        body
    }

    /// The value of a field as the provider will get it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        if let Some((_, v)) = self.set.iter().find(|(k, _)| k == key) {
            return Some(v);
        }
        if self.removed.contains(&key) {
            return None;
        }
        self.base.get(key)
    }

    /// Set a field (replacing the client's value in its place, or adding it).
    pub fn insert(&mut self, key: &str, value: Value) {
        match self.set.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.set.push((key.to_string(), value)),
        }
    }

    fn remove(&mut self, key: &str) {
        self.set.retain(|(k, _)| k != key);
        if let Some((k, _)) = self.base.get_key_value(key) {
            self.removed.push(k.as_str());
        }
    }

    /// An owned copy, for adapters that translate it.
    pub fn to_map(&self) -> Map<String, Value> {
        let mut out = Map::new();
        for (k, v) in self.entries() {
            out.insert(k.to_string(), v.clone());
        }
        out
    }

    fn entries(&self) -> impl Iterator<Item = (&str, &Value)> {
        let base = self
            .base
            .iter()
            .filter(|(k, _)| !self.removed.contains(&k.as_str()))
            .map(|(k, v)| {
                let v = self
                    .set
                    .iter()
                    .find(|(sk, _)| sk == k)
                    .map_or(v, |(_, sv)| sv);
                (k.as_str(), v)
            });
        let added = self
            .set
            .iter()
            .filter(|(k, _)| !self.base.contains_key(k) || self.removed.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v));
        base.chain(added)
    }
}

impl serde::Serialize for OpenAiBody<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for (k, v) in self.entries() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Whether parameters the provider cannot take are dropped (`drop_params` of the request, else of
/// the deployment) rather than refused.
pub fn drop_params(deployment: &Deployment, req: &LlmRequest) -> bool {
    req.gateway
        .drop_params
        .or(deployment.drop_params)
        .unwrap_or(false)
}

/// LiteLLM's `UnsupportedParamsError` for `params`.
pub fn unsupported_error(target: &Target, params: &[&str]) -> GatewayError {
    GatewayError::BadRequest {
        message: format!(
            "UnsupportedParamsError: {} does not support parameters: {:?}, for model={}. To drop these, set `drop_params: true` in the request or `litellm_settings: {{drop_params: true}}` in the config.",
            target.spec.name, params, target.model
        ),
        param: params.first().map(|p| p.to_string()),
        code: Some("unsupported_params"),
    }
}

/// A 400 for a request the provider's API cannot express at all.
pub fn bad_request(target: &Target, message: impl std::fmt::Display) -> GatewayError {
    GatewayError::BadRequest {
        message: format!("{}: {message}", target.spec.name),
        param: None,
        code: None,
    }
}

/// A call this provider's adapter does not translate (image generation on Anthropic…): a 400.
pub fn unsupported_call(target: &Target, kind: crate::llm::CallKind) -> GatewayError {
    GatewayError::BadRequest {
        message: format!(
            "{} is not supported for provider {}",
            kind.describe(),
            target.spec.name
        ),
        param: Some("model".into()),
        code: None,
    }
}

/// `content-type: application/json`, the bearer key if any, and the deployment's extra headers.
pub fn json_headers(
    deployment: &Deployment,
    target: &Target,
    stream: bool,
) -> Vec<(Cow<'static, str>, String)> {
    let mut headers: Vec<(Cow<'static, str>, String)> = Vec::with_capacity(4);
    headers.push((Cow::Borrowed("content-type"), "application/json".into()));
    headers.push((
        Cow::Borrowed("accept"),
        if stream {
            "text/event-stream"
        } else {
            "application/json"
        }
        .into(),
    ));
    if let Some(key) = &target.api_key {
        headers.push((
            Cow::Borrowed("authorization"),
            format!("Bearer {}", key.expose()),
        ));
    }
    headers.extend(extra_headers(deployment));
    headers
}

/// The deployment's `extra_headers`, names lower-cased, to send after the adapter's own.
pub fn extra_headers(
    deployment: &Deployment,
) -> impl Iterator<Item = (Cow<'static, str>, String)> + '_ {
    deployment
        .extra_headers
        .iter()
        .map(|(k, v)| (Cow::Owned(k.to_ascii_lowercase()), v.clone()))
}

/// One event of a provider's JSON stream (Ollama's lines, TGI's events): parsed, with an `error`
/// field (a string or an object) turned into a [`stream_error`].
pub fn stream_event(provider: &str, data: &str) -> Result<Value, GatewayError> {
    let v: Value =
        serde_json::from_str(data).map_err(|e| stream_error(provider, &e.to_string()))?;
    if let Some(e) = v.get("error") {
        let message = e.as_str().map_or_else(|| e.to_string(), str::to_string);
        return Err(stream_error(provider, &message));
    }
    Ok(v)
}

/// A provider stream that broke off or reported an error part-way.
pub fn stream_error(provider: &str, message: &str) -> GatewayError {
    GatewayError::Upstream {
        kind: UpstreamErrorKind::StreamInterrupted,
        status: 502,
        message: format!("APIConnectionError: {provider}Exception - {message}"),
        code: None,
        param: None,
        retry_after: None,
    }
}

/// An upstream error as the gateway reports it: `"{Class}: {Provider}Exception - {message}"`,
/// classified for the router, the deployment's key scrubbed.
pub fn upstream_error(
    target: &Target,
    provider: &str,
    status: u16,
    kind: UpstreamErrorKind,
    message: &str,
    retry_after: Option<Duration>,
) -> GatewayError {
    let class = kind.class_name(status);
    let message = scrub(
        &format!("{class}: {provider}Exception - {message}"),
        target.api_key.as_ref(),
    );
    upstream(kind, status, message, None, None, retry_after)
}

/// An upstream error with its message worded: the status kept when it is an error status (else
/// 502), the kind's standard code, else the provider's `code`.
pub fn upstream(
    kind: UpstreamErrorKind,
    status: u16,
    message: String,
    code: Option<String>,
    param: Option<String>,
    retry_after: Option<Duration>,
) -> GatewayError {
    GatewayError::Upstream {
        kind,
        status: if (400..=599).contains(&status) {
            status
        } else {
            502
        },
        message,
        code: kind.standard_code().map(str::to_string).or(code),
        param,
        retry_after,
    }
}

/// A 2xx body the adapter cannot read.
pub fn bad_body(provider: &str, what: impl std::fmt::Display) -> GatewayError {
    GatewayError::Upstream {
        kind: UpstreamErrorKind::Server,
        status: 502,
        message: format!("InternalServerError: {provider}Exception - unexpected response: {what}"),
        code: None,
        param: None,
        retry_after: None,
    }
}

/// The provider's error text: the body's `message`/`error` string, else the raw body.
pub fn error_text(status: u16, body: &[u8], keys: &[&str]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let found = parsed.as_ref().and_then(|v| {
        keys.iter().find_map(|k| match v.get(*k) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Object(o)) => o.get("message").and_then(Value::as_str).map(String::from),
            _ => None,
        })
    });
    found.unwrap_or_else(|| raw_error_text(status, body))
}

/// The error object of a JSON error body: its `error` member when it has one, else the body.
pub fn error_object(body: &[u8]) -> Option<Value> {
    match serde_json::from_slice(body).ok()? {
        Value::Object(mut o) => Some(o.remove("error").unwrap_or(Value::Object(o))),
        other => Some(other),
    }
}

/// An error body as text, for a body without a message the adapter can find: its first 500
/// characters, or a note that it was empty.
pub fn raw_error_text(status: u16, body: &[u8]) -> String {
    let raw = String::from_utf8_lossy(body);
    let raw = raw.trim();
    if raw.is_empty() {
        format!("HTTP {status} with an empty body")
    } else {
        raw.chars().take(500).collect()
    }
}

/// A message `content` as plain text: a string, or the `text` of its text parts joined.
pub fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// `stop` as a list of strings.
pub fn stop_list(stop: &Value) -> Vec<Value> {
    match stop {
        Value::String(s) => vec![Value::String(s.clone())],
        Value::Array(items) => items.iter().filter(|v| v.is_string()).cloned().collect(),
        _ => Vec::new(),
    }
}

/// `stop` as the stop sequences a provider accepts: the strings `keep` admits; `None` when `stop`
/// is neither a string nor a list.
pub fn stop_sequences(stop: &Value, keep: impl Fn(&str) -> bool) -> Option<Vec<Value>> {
    let items = match stop {
        Value::String(_) => std::slice::from_ref(stop),
        Value::Array(items) => items.as_slice(),
        _ => return None,
    };
    let kept = items.iter().filter(|s| s.as_str().is_some_and(&keep));
    Some(kept.cloned().collect())
}

/// Embedding inputs as strings (providers here take text only).
pub fn input_texts(target: &Target, input: Option<&Value>) -> Result<Vec<Value>, GatewayError> {
    let texts =
        match input {
            Some(Value::String(s)) => vec![Value::String(s.clone())],
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => items.clone(),
            _ => return Err(bad_request(
                target,
                "embeddings take text input only (a string or a list of strings), not token ids",
            )),
        };
    Ok(texts)
}

/// An OpenAI `chat.completion` with one choice: the assistant's text (`null` when empty) and
/// tool calls.
pub fn chat_completion(
    id: String,
    model: &str,
    content: String,
    tool_calls: Vec<ToolCall<'static>>,
    finish_reason: &'static str,
    usage: &Usage,
) -> ChatCompletion<'static> {
    let mut message = AssistantMessage::new((!content.is_empty()).then(|| content.into()));
    message.tool_calls = tool_calls;
    ChatCompletion::new(
        id,
        super::now_secs(),
        model.to_string(),
        vec![Choice::new(0, message, finish_reason)],
        usage.to_openai(),
    )
}

/// An OpenAI embedding list of the provider's vectors (JSON lists of numbers).
pub fn embedding_list(model: &str, vectors: Vec<Value>, prompt_tokens: u64) -> EmbeddingList<'_> {
    EmbeddingList::new(
        model,
        vectors.into_iter().map(EmbeddingVector::from_json),
        prompt_tokens,
    )
}

/// An OpenAI-shaped tool call from a provider that may leave out its id (a fresh one then) or
/// name, with `arguments` as given.
pub fn tool_call_with(c: &Value, arguments: String) -> ToolCall<'static> {
    ToolCall::function(
        c.get("id")
            .and_then(Value::as_str)
            .map_or_else(call_id, str::to_string),
        c.pointer("/function/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        arguments,
    )
}

/// An OpenAI-shaped tool call with defaults filled in; `arguments` may be a JSON object (Ollama),
/// a string, or missing (`{}`).
pub fn tool_call(c: &Value) -> ToolCall<'static> {
    let args = match c.pointer("/function/arguments") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "{}".into(),
        Some(other) => other.to_string(),
    };
    tool_call_with(c, args)
}

/// Usage from prompt and completion counts (OpenAI's total).
pub fn usage(prompt_tokens: u64, completion_tokens: u64, cached_tokens: u64) -> Usage {
    Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens + completion_tokens,
        cached_tokens,
        reasoning_tokens: 0,
    }
}

/// A tool call id for providers that do not give one.
pub fn call_id() -> String {
    format!("call_{}", &uuid::Uuid::new_v4().simple().to_string()[..24])
}
