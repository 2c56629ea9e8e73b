//! The gateway's one internal request/response model (the hub every provider adapter translates to
//! and from). It is OpenAI's shape: typed fields for what the gateway itself uses, and the rest of
//! the body kept as raw JSON so fields the gateway does not know pass through untouched.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::GatewayError;

/// Which OpenAI operation a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    Chat,
    Completion,
    Embedding,
    /// `/images/generations` (JSON).
    ImageGeneration,
    /// `/images/edits` (multipart: the image files ride in [`LlmRequest::uploads`]).
    ImageEdit,
    /// `/moderations`.
    Moderation,
    /// `/audio/transcriptions` (multipart: the audio file rides in [`LlmRequest::uploads`]).
    Transcription,
    /// `/audio/translations` (multipart, as transcriptions).
    Translation,
    /// `/audio/speech` (JSON in, binary audio out, relayed as it arrives).
    Speech,
    /// `/rerank` (Cohere's request and response shape).
    Rerank,
    /// `/responses` (OpenAI's Responses API): passed through to OpenAI and Azure deployments,
    /// translated to chat for every other provider (`src/responses_api.rs`).
    Responses,
}

impl CallKind {
    /// The OpenAI path suffix for this operation.
    pub fn path(self) -> &'static str {
        match self {
            CallKind::Chat => "/chat/completions",
            CallKind::Completion => "/completions",
            CallKind::Embedding => "/embeddings",
            CallKind::ImageGeneration => "/images/generations",
            CallKind::ImageEdit => "/images/edits",
            CallKind::Moderation => "/moderations",
            CallKind::Transcription => "/audio/transcriptions",
            CallKind::Translation => "/audio/translations",
            CallKind::Speech => "/audio/speech",
            CallKind::Rerank => "/rerank",
            CallKind::Responses => "/responses",
        }
    }

    /// Whether the operation takes an audio file (`/audio/transcriptions`, `/audio/translations`).
    pub fn is_audio_input(self) -> bool {
        matches!(self, CallKind::Transcription | CallKind::Translation)
    }

    /// Whether the request body is a `multipart/form-data` form, and the file field it needs.
    pub fn form_file(self) -> Option<&'static [&'static str]> {
        match self {
            CallKind::ImageEdit => Some(&["image", "image[]"]),
            CallKind::Transcription | CallKind::Translation => Some(&["file"]),
            _ => None,
        }
    }

    /// Whether the operation is one of OpenAI's image endpoints.
    pub fn is_image(self) -> bool {
        matches!(self, CallKind::ImageGeneration | CallKind::ImageEdit)
    }

    /// The operation as error messages name it ("image generation is not supported for …").
    pub fn describe(self) -> &'static str {
        match self {
            CallKind::Chat => "chat completion",
            CallKind::Completion => "text completion",
            CallKind::Embedding => "embedding",
            CallKind::ImageGeneration => "image generation",
            CallKind::ImageEdit => "image editing",
            CallKind::Moderation => "moderation",
            CallKind::Transcription => "audio transcription",
            CallKind::Translation => "audio translation",
            CallKind::Speech => "text to speech",
            CallKind::Rerank => "rerank",
            CallKind::Responses => "response",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::Chat => "chat",
            CallKind::Completion => "completion",
            CallKind::Embedding => "embedding",
            CallKind::ImageGeneration => "image_generation",
            CallKind::ImageEdit => "image_edit",
            CallKind::Moderation => "moderation",
            CallKind::Transcription => "transcription",
            CallKind::Translation => "translation",
            CallKind::Speech => "speech",
            CallKind::Rerank => "rerank",
            CallKind::Responses => "responses",
        }
    }
}

/// Fields LiteLLM clients send that steer the gateway and are never forwarded upstream.
#[derive(Debug, Default, Clone)]
pub struct GatewayParams {
    /// `mock_response`: answer with this content without calling the provider.
    pub mock_response: Option<Value>,
    /// `timeout` (seconds) for this request.
    pub timeout: Option<Duration>,
    /// `stream_timeout` (seconds) for this request.
    pub stream_timeout: Option<Duration>,
    /// `drop_params` for this request.
    pub drop_params: Option<bool>,
    /// `metadata` (tags, trace ids…), kept for logging.
    pub metadata: Option<Value>,
    /// The body's `tags` (LiteLLM's request tags), kept for the spend-log row.
    pub tags: Option<Value>,
    /// Credential and routing fields the client tried to set; always ignored.
    pub ignored_credentials: Vec<String>,
    /// `num_retries` for this request.
    pub num_retries: Option<u32>,
    /// Client-side `fallbacks`: model names, `{"model", "messages", …}` objects, or LiteLLM's map
    /// form `[{"model-a": ["model-b"]}]`.
    pub fallbacks: crate::routing::ClientFallbacks,
    /// Client-side `context_window_fallbacks`, tried first after a context-window error.
    pub context_window_fallbacks: crate::routing::ClientFallbacks,
    /// Client-side `content_policy_fallbacks`, tried first after a content-policy error.
    pub content_policy_fallbacks: crate::routing::ClientFallbacks,
    /// LiteLLM's test switches: make the first model group fail with this error without calling
    /// the provider (`mock_testing_fallbacks`, `mock_testing_rate_limit_error`,
    /// `mock_testing_context_fallbacks`, `mock_testing_content_policy_fallbacks`).
    pub mock_failure: Option<MockFailure>,
    /// The response-cache controls (`cache: {...}`, `caching`).
    pub cache: crate::caching::Controls,
    /// `fastest_response`: with several comma-separated models, answer with the first success.
    pub fastest_response: bool,
}

/// A failure the client asked the gateway to simulate on the requested model group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockFailure {
    Server,
    RateLimit,
    ContextWindow,
    ContentPolicy,
}

/// A parsed client request.
#[derive(Debug, Clone)]
pub struct LlmRequest {
    pub kind: CallKind,
    /// The model the client asked for (the path's model wins over the body's).
    pub model: String,
    pub stream: bool,
    /// Whether the client asked for usage in the stream (`stream_options.include_usage`).
    pub client_wants_usage: bool,
    /// The body to forward, minus gateway-only and credential fields.
    pub body: Map<String, Value>,
    /// The files of a multipart request (`/images/edits`: `image`, `image[]`, `mask`;
    /// `/audio/transcriptions` and `/audio/translations`: `file`), in the order
    /// they arrived; empty for JSON requests. Cheap to clone (the bytes are shared).
    pub uploads: Vec<Upload>,
    pub gateway: GatewayParams,
}

/// One file part of a multipart request, forwarded as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The form field (`image`, `image[]`, `mask`, `file`).
    pub field: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: bytes::Bytes,
}

/// A body's client-side fallback list (`fallbacks`, `context_window_fallbacks`,
/// `content_policy_fallbacks`) in either of LiteLLM's forms.
fn client_fallbacks(
    body: &Map<String, Value>,
    field: &str,
) -> Result<crate::routing::ClientFallbacks, GatewayError> {
    crate::routing::ClientFallbacks::parse(body.get(field)).ok_or_else(|| {
        GatewayError::bad_param(
            field,
            format!(
                "'{field}' must be a list of model names, of objects with 'model', or of maps from a model group to its fallbacks ([{{\"model-a\": [\"model-b\"]}}])"
            ),
        )
    })
}

/// Keys that steer the gateway, removed before the body goes upstream.
const GATEWAY_ONLY_KEYS: &[&str] = &[
    "metadata",
    "litellm_metadata",
    "fallbacks",
    "context_window_fallbacks",
    "content_policy_fallbacks",
    "num_retries",
    "max_retries",
    "timeout",
    "stream_timeout",
    "request_timeout",
    "mock_response",
    "mock_tool_calls",
    "fastest_response",
    "mock_testing_fallbacks",
    "mock_testing_rate_limit_error",
    "mock_testing_context_fallbacks",
    "mock_testing_content_policy_fallbacks",
    "mock_timeout",
    "mock_delay",
    "cache",
    "caching",
    "guardrails",
    "tags",
    "context_window_fallback_dict",
    "drop_params",
    "additional_drop_params",
    "proxy_server_request",
    "secret_fields",
    "litellm_call_id",
    "litellm_logging_obj",
    "litellm_trace_id",
    "model_list",
    "priority",
    "input_cost_per_token",
    "output_cost_per_token",
    "input_cost_per_second",
    "output_cost_per_second",
];

/// Keys that would choose where traffic goes or which credentials it carries. A request body may
/// never set them, at any depth; they are removed and logged.
const CLIENT_CREDENTIAL_KEYS: &[&str] = &[
    "api_base",
    "base_url",
    "api_key",
    "api_version",
    "api_type",
    "organization",
    "custom_llm_provider",
    "deployment_id",
    "azure_ad_token",
    "azure_ad_token_provider",
    "azure_username",
    "azure_password",
    "tenant_id",
    "client_id",
    "client_secret",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_region_name",
    "aws_bedrock_runtime_endpoint",
    "aws_role_name",
    "aws_profile_name",
    "aws_web_identity_token",
    "aws_sts_endpoint",
    "vertex_credentials",
    "vertex_project",
    "vertex_location",
    "vertex_ai_project",
    "vertex_ai_location",
    "region_name",
    "headers",
    "extra_headers",
    "user_api_key",
    "litellm_params",
    "litellm_credential_name",
];

/// Fields holding the user's own content (messages, tool schemas…): never rewritten, even when they
/// happen to contain a key named like a credential.
const CONTENT_KEYS: &[&str] = &[
    "messages",
    "prompt",
    "input",
    "tools",
    "functions",
    "tool_choice",
    "function_call",
    "response_format",
    "prediction",
    "logit_bias",
    "stop",
    "query",
    "documents",
    // The Responses API's `text.format` (a JSON schema, like chat's `response_format`).
    "text",
];

/// Remove every credential/routing field from `map` and from any nested object, except inside the
/// user's content. Returns the paths removed.
pub fn strip_client_credentials(map: &mut Map<String, Value>) -> Vec<String> {
    let mut removed = Vec::new();
    strip_in(map, "", &mut removed);
    removed
}

fn strip_in(map: &mut Map<String, Value>, path: &str, removed: &mut Vec<String>) {
    map.retain(|k, _| {
        let drop = CLIENT_CREDENTIAL_KEYS.contains(&k.as_str());
        if drop {
            removed.push(format!("{path}{k}"));
        }
        !drop
    });
    for (k, v) in map.iter_mut() {
        if path.is_empty() && CONTENT_KEYS.contains(&k.as_str()) {
            continue;
        }
        let child = format!("{path}{k}.");
        match v {
            Value::Object(inner) => strip_in(inner, &child, removed),
            Value::Array(items) => {
                for item in items.iter_mut() {
                    if let Value::Object(inner) = item {
                        strip_in(inner, &child, removed);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Bounds on a request body's parsed form, well above real use, so that one request's memory stays
/// a small multiple of its body (a JSON value in memory is much larger than its text).
pub mod bounds {
    /// Deepest nesting of objects and arrays.
    pub const MAX_DEPTH: usize = 64;
    /// Most objects and arrays in one body.
    pub const MAX_CONTAINERS: usize = 200_000;
    /// Most JSON values (scalars, objects, arrays) in one body.
    pub const MAX_VALUES: usize = 1_000_000;
    /// Most chat messages.
    pub const MAX_MESSAGES: usize = 100_000;
    /// Most tools (or legacy functions).
    pub const MAX_TOOLS: usize = 1_024;
    /// Most embedding inputs, or prompts in a completion.
    pub const MAX_INPUTS: usize = 100_000;
    /// Largest `n` (choices per request).
    pub const MAX_N: u64 = 128;
}

/// Check the body's nesting depth and its number of values in one pass over its bytes, before any of
/// it is built in memory. Malformed JSON passes (the parser reports it).
pub fn check_shape(raw: &[u8]) -> Result<(), GatewayError> {
    use bounds::{MAX_CONTAINERS, MAX_DEPTH, MAX_VALUES};
    let (mut depth, mut containers, mut values) = (0usize, 0usize, 1usize);
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'"' => {
                // Skip the string: to its closing quote, past escaped characters.
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', &raw[i.min(raw.len())..]) {
                        Some(at) if raw[i + at] == b'\\' => i += at + 2,
                        Some(at) => {
                            i += at;
                            break;
                        }
                        None => return Ok(()),
                    }
                }
            }
            b'{' | b'[' => {
                depth += 1;
                containers += 1;
                if depth > MAX_DEPTH {
                    return Err(GatewayError::bad_request(format!(
                        "Request body nests objects and arrays deeper than {MAX_DEPTH} levels."
                    )));
                }
                if containers > MAX_CONTAINERS {
                    return Err(GatewayError::bad_request(format!(
                        "Request body has more than {MAX_CONTAINERS} objects and arrays."
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' => {
                values += 1;
                if values > MAX_VALUES {
                    return Err(GatewayError::bad_request(format!(
                        "Request body has more than {MAX_VALUES} values."
                    )));
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Fields the gateway stores or logs (spend logs, end-user rows, traces): their strings must not
/// hold NUL, which PostgreSQL text cannot store. Message content is forwarded, and stored only as
/// JSON text (`store_prompts_in_spend_logs`), where a NUL is escaped.
const STORED_FIELDS: &[&str] = &[
    "model",
    "user",
    "metadata",
    "litellm_metadata",
    "tags",
    "litellm_session_id",
    "litellm_trace_id",
    "litellm_call_id",
    "session_id",
    "trace_id",
];

/// The first string (key or value) in `v` holding NUL, as a path below `field`.
fn nul_path(v: &Value, path: &mut String) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let found = nul_path(item, path);
            if !found {
                path.truncate(len);
            }
            found
        }),
        Value::Object(map) => map.iter().any(|(k, item)| {
            let len = path.len();
            path.push('.');
            path.push_str(k);
            let found = k.contains('\0') || nul_path(item, path);
            if !found {
                path.truncate(len);
            }
            found
        }),
        _ => false,
    }
}

/// Refuse NUL in a stored field, naming it (`metadata.tags[1]`).
fn check_stored_strings(
    body: &Map<String, Value>,
    path_model: Option<&str>,
) -> Result<(), GatewayError> {
    if path_model.is_some_and(|m| m.contains('\0')) {
        return Err(GatewayError::bad_param(
            "model",
            "'model' must not contain NUL (\\u0000) characters.",
        ));
    }
    for field in STORED_FIELDS {
        let Some(v) = body.get(*field) else { continue };
        let mut path = (*field).to_string();
        if nul_path(v, &mut path) {
            return Err(GatewayError::bad_param(
                &path,
                format!("'{path}' must not contain NUL (\\u0000) characters."),
            ));
        }
    }
    Ok(())
}

/// The longest timeout a request can ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

fn seconds(v: &Value, param: &str) -> Result<Option<Duration>, GatewayError> {
    let secs = match v {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => {
            return Err(GatewayError::bad_param(
                param,
                format!("{param} must be a number of seconds"),
            ))
        }
    };
    // Positive, finite, and a duration this machine can represent (no overflow panic); longer
    // than a year means a year, so deadlines computed from it never overflow either.
    match secs.filter(|s| *s > 0.0).map(Duration::try_from_secs_f64) {
        Some(Ok(d)) => Ok(Some(d.min(MAX_TIMEOUT))),
        _ => Err(GatewayError::bad_param(
            param,
            format!("{param} must be a positive number of seconds"),
        )),
    }
}

fn expect_type(
    body: &Map<String, Value>,
    key: &str,
    ok: fn(&Value) -> bool,
    what: &str,
) -> Result<(), GatewayError> {
    match body.get(key) {
        Some(v) if !v.is_null() && !ok(v) => Err(GatewayError::bad_param(
            key,
            format!("Invalid type for '{key}': expected {what}."),
        )),
        _ => Ok(()),
    }
}

/// The `response_format` values of `/audio/transcriptions` and `/audio/translations`.
pub const TRANSCRIPTION_FORMATS: &[&str] = &["json", "text", "srt", "verbose_json", "vtt"];

/// `key`, when present, is one of `allowed`.
fn one_of(body: &Map<String, Value>, key: &str, allowed: &[&str]) -> Result<(), GatewayError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(v)) if allowed.contains(&v.as_str()) => Ok(()),
        Some(_) => Err(GatewayError::bad_param(
            key,
            format!("'{key}' must be one of {}.", allowed.join(", ")),
        )),
    }
}

/// A Cohere-shaped rerank body: a non-empty `query`, a non-empty `documents` list of strings or
/// objects, a positive `top_n`, a boolean `return_documents`, `rank_fields` a list of strings.
fn validate_rerank(body: &Map<String, Value>) -> Result<(), GatewayError> {
    match body.get("query") {
        Some(Value::String(q)) if !q.is_empty() => {}
        None | Some(Value::Null) => {
            return Err(GatewayError::bad_param(
                "query",
                "Missing required parameter: 'query'.",
            ))
        }
        Some(_) => {
            return Err(GatewayError::bad_param(
                "query",
                "'query' must be a non-empty string.",
            ))
        }
    }
    let documents_ok = body.get("documents").is_some_and(|v| {
        v.as_array().is_some_and(|docs| {
            !docs.is_empty()
                && docs.len() <= bounds::MAX_INPUTS
                && docs.iter().all(|d| d.is_string() || d.is_object())
        })
    });
    if !documents_ok {
        return Err(GatewayError::bad_param(
            "documents",
            "'documents' must be a non-empty list of strings or of objects (such as {\"text\": ...}).",
        ));
    }
    match body.get("top_n") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_u64().is_some_and(|n| n >= 1) => {}
        Some(_) => {
            return Err(GatewayError::bad_param(
                "top_n",
                "'top_n' must be a positive integer.",
            ))
        }
    }
    expect_type(body, "return_documents", Value::is_boolean, "a boolean")?;
    expect_type(
        body,
        "max_chunks_per_doc",
        |v| v.is_u64(),
        "a positive integer",
    )?;
    expect_type(
        body,
        "rank_fields",
        |v| v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        "a list of strings",
    )
}

impl LlmRequest {
    /// The request as sent to a fallback model group: the model replaced, and for the client-side
    /// `{"model", "messages", …}` form those fields replaced too (never credential fields).
    pub fn for_fallback(&self, fallback: &crate::routing::Fallback) -> Self {
        let mut next = self.clone();
        next.model = fallback.model.clone();
        next.body
            .insert("model".into(), Value::String(fallback.model.clone()));
        let mut overrides = fallback.overrides.clone();
        strip_client_credentials(&mut overrides);
        for (k, v) in overrides {
            if !GATEWAY_ONLY_KEYS.contains(&k.as_str()) {
                next.body.insert(k, v);
            }
        }
        next.gateway.mock_failure = None;
        next
    }

    /// A quick estimate of the prompt's tokens (about four bytes of text per token, plus a few per
    /// message), used for `tpm` reservations and the context-window pre-call check before the
    /// provider reports the real count. It never reads the whole body twice: only text fields.
    pub fn estimated_prompt_tokens(&self) -> u64 {
        fn text_bytes(v: &Value) -> u64 {
            match v {
                Value::String(s) => s.len() as u64,
                Value::Array(items) => items.iter().map(text_bytes).sum(),
                Value::Object(o) => o
                    .iter()
                    .filter(|(k, _)| {
                        matches!(
                            k.as_str(),
                            "content" | "text" | "arguments" | "name" | "input" | "output"
                        )
                    })
                    .map(|(_, v)| text_bytes(v))
                    .sum(),
                Value::Number(_) => 1,
                _ => 0,
            }
        }
        let mut bytes = 0;
        let mut items = 0;
        for key in [
            "messages",
            "prompt",
            "input",
            "instructions",
            "tools",
            "query",
        ] {
            if let Some(v) = self.body.get(key) {
                bytes += match key {
                    "tools" => v.to_string().len() as u64,
                    _ => text_bytes(v),
                };
                items += v.as_array().map_or(1, |a| a.len() as u64);
            }
        }
        bytes.div_ceil(4) + 4 * items
    }

    /// Parse and validate a client body. `path_model` is the model named in the URL
    /// (`/engines/{model}/…`, `/openai/deployments/{model}/…`), which wins over the body's.
    pub fn parse(
        kind: CallKind,
        raw: &[u8],
        path_model: Option<&str>,
    ) -> Result<Self, GatewayError> {
        Self::from_body(kind, Self::decode(raw)?, path_model)
    }

    /// A client body as a JSON object (UTF-8, bounded in shape, an object), not yet validated.
    pub fn decode(raw: &[u8]) -> Result<Map<String, Value>, GatewayError> {
        let text = std::str::from_utf8(raw).map_err(|e| {
            GatewayError::bad_request(format!(
                "Request body is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ))
        })?;
        if text.trim().is_empty() {
            return Err(GatewayError::bad_request(
                "Request body is empty; expected a JSON object",
            ));
        }
        check_shape(raw)?;
        let value: Value = serde_json::from_str(text).map_err(|e| {
            GatewayError::bad_request(format!(
                "Malformed JSON in request body: {e} (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let Value::Object(body) = value else {
            return Err(GatewayError::bad_request(
                "Request body must be a JSON object",
            ));
        };
        Ok(body)
    }

    /// Validate a body already decoded (or built by an inbound API's translation) into the
    /// internal request: typed fields the gateway uses, gateway-only fields taken out, the rest
    /// kept raw.
    pub fn from_body(
        kind: CallKind,
        mut body: Map<String, Value>,
        path_model: Option<&str>,
    ) -> Result<Self, GatewayError> {
        let model = match (path_model, body.get("model")) {
            (Some(m), _) if !m.is_empty() => m.to_string(),
            (_, Some(Value::String(m))) if !m.trim().is_empty() => m.trim().to_string(),
            (_, None) | (_, Some(Value::Null)) => {
                return Err(GatewayError::bad_param(
                    "model",
                    "Missing required parameter: 'model'.",
                ))
            }
            (_, Some(Value::String(_))) => {
                return Err(GatewayError::bad_param(
                    "model",
                    "'model' must not be empty.",
                ))
            }
            (_, Some(_)) => {
                return Err(GatewayError::bad_param(
                    "model",
                    "Invalid type for 'model': expected a string.",
                ))
            }
        };

        check_stored_strings(&body, path_model)?;
        Self::validate(kind, &body)?;

        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(GatewayError::bad_param(
                    "stream",
                    "Invalid type for 'stream': expected a boolean.",
                ))
            }
        };
        if stream
            && !matches!(
                kind,
                CallKind::Chat | CallKind::Completion | CallKind::Responses
            )
        {
            return Err(GatewayError::bad_param(
                "stream",
                format!(
                    "Streaming is not supported for {} requests.",
                    kind.describe()
                ),
            ));
        }
        // A Responses stream always ends with its usage (in `response.completed`).
        let client_wants_usage = kind == CallKind::Responses
            || body
                .get("stream_options")
                .and_then(|o| o.get("include_usage"))
                .and_then(Value::as_bool)
                .unwrap_or(false);

        // Moved out, not copied: a `mock_response` may be most of the body.
        let mock_response = body.remove("mock_response").filter(|v| !v.is_null());
        let metadata = body.remove("metadata");
        let mut gateway = GatewayParams {
            mock_response,
            timeout: body
                .get("timeout")
                .or_else(|| body.get("request_timeout"))
                .map(|v| seconds(v, "timeout"))
                .transpose()?
                .flatten(),
            stream_timeout: body
                .get("stream_timeout")
                .map(|v| seconds(v, "stream_timeout"))
                .transpose()?
                .flatten(),
            drop_params: body.get("drop_params").and_then(Value::as_bool),
            metadata,
            tags: body.get("tags").cloned(),
            ignored_credentials: Vec::new(),
            num_retries: match body.get("num_retries") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().filter(|n| *n <= 100).ok_or_else(|| {
                    GatewayError::bad_param(
                        "num_retries",
                        "'num_retries' must be an integer from 0 to 100.",
                    )
                })? as u32),
            },
            fallbacks: client_fallbacks(&body, "fallbacks")?,
            context_window_fallbacks: client_fallbacks(&body, "context_window_fallbacks")?,
            content_policy_fallbacks: client_fallbacks(&body, "content_policy_fallbacks")?,
            mock_failure: [
                ("mock_testing_fallbacks", MockFailure::Server),
                ("mock_testing_rate_limit_error", MockFailure::RateLimit),
                ("mock_testing_context_fallbacks", MockFailure::ContextWindow),
                (
                    "mock_testing_content_policy_fallbacks",
                    MockFailure::ContentPolicy,
                ),
            ]
            .into_iter()
            .find(|(key, _)| body.get(*key).is_some_and(crate::config::truthy))
            .map(|(_, f)| f),
            cache: crate::caching::Controls::parse(body.get("cache"), body.get("caching"))?,
            fastest_response: body
                .get("fastest_response")
                .is_some_and(crate::config::truthy),
        };
        for key in GATEWAY_ONLY_KEYS {
            body.remove(*key);
        }
        gateway.ignored_credentials = strip_client_credentials(&mut body);
        // The OpenAI SDK's `extra_body` arrives merged already; a literal `extra_body` object is
        // merged the same way (credentials inside it were stripped above).
        if let Some(Value::Object(extra)) = body.remove("extra_body") {
            for (k, v) in extra {
                if !GATEWAY_ONLY_KEYS.contains(&k.as_str()) {
                    body.entry(k).or_insert(v);
                }
            }
        }
        body.insert("model".into(), Value::String(model.clone()));

        Ok(Self {
            kind,
            model,
            stream,
            client_wants_usage,
            body,
            uploads: Vec::new(),
            gateway,
        })
    }

    fn validate(kind: CallKind, body: &Map<String, Value>) -> Result<(), GatewayError> {
        let number = |v: &Value| v.is_number();
        let integer = |v: &Value| v.is_u64() || v.is_i64();
        let object = |v: &Value| v.is_object();
        let array = |v: &Value| v.is_array();
        let string = |v: &Value| v.is_string();
        let stop = |v: &Value| {
            v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
        };
        expect_type(body, "temperature", number, "a number")?;
        expect_type(body, "top_p", number, "a number")?;
        expect_type(body, "presence_penalty", number, "a number")?;
        expect_type(body, "frequency_penalty", number, "a number")?;
        expect_type(body, "max_tokens", integer, "an integer")?;
        expect_type(body, "max_completion_tokens", integer, "an integer")?;
        expect_type(body, "n", integer, "an integer")?;
        expect_type(body, "seed", integer, "an integer")?;
        expect_type(body, "user", string, "a string")?;
        expect_type(body, "stop", stop, "a string or a list of strings")?;
        expect_type(body, "stream_options", object, "an object")?;
        expect_type(body, "metadata", object, "an object")?;
        expect_type(body, "logit_bias", object, "an object")?;
        if let Some(n) = body.get("n").and_then(Value::as_u64) {
            if n > bounds::MAX_N {
                return Err(GatewayError::bad_param(
                    "n",
                    format!("'n' must be at most {}.", bounds::MAX_N),
                ));
            }
        }
        for key in ["tools", "functions"] {
            let count = body.get(key).and_then(Value::as_array).map_or(0, Vec::len);
            if count > bounds::MAX_TOOLS {
                return Err(GatewayError::bad_param(
                    key,
                    format!("'{key}' must have at most {} entries.", bounds::MAX_TOOLS),
                ));
            }
        }
        for key in ["input", "prompt"] {
            if kind == CallKind::Responses && key == "input" {
                continue;
            }
            let count = body.get(key).and_then(Value::as_array).map_or(0, Vec::len);
            if count > bounds::MAX_INPUTS {
                return Err(GatewayError::bad_param(
                    key,
                    format!("'{key}' must have at most {} entries.", bounds::MAX_INPUTS),
                ));
            }
        }
        match kind {
            CallKind::Chat => {
                expect_type(body, "tools", array, "a list")?;
                expect_type(body, "response_format", object, "an object")?;
                let Some(messages) = body.get("messages") else {
                    return Err(GatewayError::bad_param(
                        "messages",
                        "Missing required parameter: 'messages'.",
                    ));
                };
                let Some(messages) = messages.as_array() else {
                    return Err(GatewayError::bad_param(
                        "messages",
                        "Invalid type for 'messages': expected a list of message objects.",
                    ));
                };
                if messages.is_empty() {
                    return Err(GatewayError::bad_param(
                        "messages",
                        "'messages' must contain at least one message.",
                    ));
                }
                if messages.len() > bounds::MAX_MESSAGES {
                    return Err(GatewayError::bad_param(
                        "messages",
                        format!(
                            "'messages' must have at most {} messages.",
                            bounds::MAX_MESSAGES
                        ),
                    ));
                }
                for (i, m) in messages.iter().enumerate() {
                    let role_ok = m.get("role").is_some_and(Value::is_string);
                    if !m.is_object() || !role_ok {
                        return Err(GatewayError::bad_param(
                            &format!("messages[{i}]"),
                            format!("Invalid message at messages[{i}]: expected an object with a string 'role'."),
                        ));
                    }
                }
            }
            CallKind::Completion => {
                if body.get("prompt").is_none_or(Value::is_null) {
                    return Err(GatewayError::bad_param(
                        "prompt",
                        "Missing required parameter: 'prompt'.",
                    ));
                }
            }
            CallKind::Embedding => {
                let input = body.get("input");
                let ok = input.is_some_and(|v| match v {
                    Value::String(_) => true,
                    Value::Array(items) => {
                        !items.is_empty()
                            && items
                                .iter()
                                .all(|i| i.is_string() || i.is_number() || i.is_array())
                    }
                    _ => false,
                });
                if !ok {
                    return Err(GatewayError::bad_param(
                        "input",
                        "'input' must be a string, a list of strings, or a list of token lists.",
                    ));
                }
                expect_type(body, "dimensions", integer, "an integer")?;
            }
            CallKind::ImageGeneration | CallKind::ImageEdit => {
                match body.get("prompt") {
                    Some(Value::String(p)) if !p.is_empty() => {}
                    None | Some(Value::Null) => {
                        return Err(GatewayError::bad_param(
                            "prompt",
                            "Missing required parameter: 'prompt'.",
                        ))
                    }
                    Some(_) => {
                        return Err(GatewayError::bad_param(
                            "prompt",
                            "'prompt' must be a non-empty string.",
                        ))
                    }
                }
                expect_type(body, "size", string, "a string")?;
                expect_type(body, "quality", string, "a string")?;
                expect_type(body, "response_format", string, "a string")?;
                if body.get("n").and_then(Value::as_u64) == Some(0) {
                    return Err(GatewayError::bad_param("n", "'n' must be at least 1."));
                }
            }
            // The input's items are checked by their translation (`responses_api`).
            CallKind::Responses => {
                match body.get("input") {
                    Some(Value::String(_)) => {}
                    Some(Value::Array(items)) if items.len() <= bounds::MAX_MESSAGES => {}
                    Some(Value::Array(_)) => {
                        return Err(GatewayError::bad_param(
                            "input",
                            format!("'input' must have at most {} items.", bounds::MAX_MESSAGES),
                        ))
                    }
                    None | Some(Value::Null) => {
                        return Err(GatewayError::bad_param(
                            "input",
                            "Missing required parameter: 'input'.",
                        ))
                    }
                    Some(_) => {
                        return Err(GatewayError::bad_param(
                            "input",
                            "Invalid type for 'input': expected a string or a list of input items.",
                        ))
                    }
                }
                expect_type(body, "tools", array, "a list")?;
                expect_type(body, "instructions", string, "a string")?;
                expect_type(body, "max_output_tokens", integer, "an integer")?;
                expect_type(body, "text", object, "an object")?;
                expect_type(body, "reasoning", object, "an object")?;
            }
            CallKind::Moderation => {
                let ok = body.get("input").is_some_and(|v| match v {
                    Value::String(_) => true,
                    Value::Array(items) => {
                        !items.is_empty() && items.iter().all(|i| i.is_string() || i.is_object())
                    }
                    _ => false,
                });
                if !ok {
                    return Err(GatewayError::bad_param(
                        "input",
                        "'input' must be a string, a list of strings, or a list of text and image inputs.",
                    ));
                }
            }
            CallKind::Transcription | CallKind::Translation => {
                expect_type(body, "language", string, "a string")?;
                expect_type(body, "prompt", string, "a string")?;
                one_of(body, "response_format", TRANSCRIPTION_FORMATS)?;
            }
            CallKind::Speech => {
                match body.get("input") {
                    Some(Value::String(p)) if !p.is_empty() => {}
                    None | Some(Value::Null) => {
                        return Err(GatewayError::bad_param(
                            "input",
                            "Missing required parameter: 'input'.",
                        ))
                    }
                    Some(_) => {
                        return Err(GatewayError::bad_param(
                            "input",
                            "'input' must be a non-empty string.",
                        ))
                    }
                }
                if body.get("voice").is_none_or(Value::is_null) {
                    return Err(GatewayError::bad_param(
                        "voice",
                        "Missing required parameter: 'voice'.",
                    ));
                }
                expect_type(body, "speed", number, "a number")?;
                expect_type(body, "response_format", string, "a string")?;
            }
            CallKind::Rerank => validate_rerank(body)?,
        }
        Ok(())
    }
}

/// Token usage in OpenAI's terms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(default, deserialize_with = "cached_tokens")]
    #[serde(rename = "prompt_tokens_details")]
    pub cached_tokens: u64,
    #[serde(default, deserialize_with = "reasoning_tokens")]
    #[serde(rename = "completion_tokens_details")]
    pub reasoning_tokens: u64,
}

impl Usage {
    /// OpenAI's usage object: the counts, with the cached and reasoning token details.
    pub fn to_openai(&self) -> tollgate_wire::openai::Usage {
        tollgate_wire::openai::Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            total_tokens: self.total_tokens,
            ..Default::default()
        }
        .with_details(self.cached_tokens, self.reasoning_tokens)
    }
}

fn cached_tokens<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(
        v.and_then(|v| v.get("cached_tokens").and_then(Value::as_u64))
            .unwrap_or(0),
    )
}

fn reasoning_tokens<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(
        v.and_then(|v| v.get("reasoning_tokens").and_then(Value::as_u64))
            .unwrap_or(0),
    )
}

/// Only the `id` and `usage` of an OpenAI-shaped response; everything else is skipped, not built.
#[derive(Debug, Deserialize)]
pub struct UsageEnvelope {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub usage: Option<Usage>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(kind: CallKind, v: Value) -> Result<LlmRequest, GatewayError> {
        LlmRequest::parse(kind, v.to_string().as_bytes(), None)
    }

    #[test]
    fn keeps_unknown_fields_and_strips_gateway_ones() {
        let req = parse(
            CallKind::Chat,
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
                   "some_new_provider_field": {"x": 1}, "metadata": {"tags": ["a"]},
                   "num_retries": 3, "mock_response": "hello", "timeout": 2}),
        )
        .expect("valid");
        assert_eq!(req.body["some_new_provider_field"], json!({"x": 1}));
        assert!(!req.body.contains_key("metadata"));
        assert!(!req.body.contains_key("num_retries"));
        assert_eq!(req.gateway.mock_response, Some(json!("hello")));
        assert_eq!(req.gateway.timeout, Some(Duration::from_secs(2)));
    }

    #[test]
    fn credentials_are_removed_at_any_depth_but_content_is_untouched() {
        let req = parse(
            CallKind::Chat,
            json!({"model": "m", "api_base": "http://evil", "api_key": "sk-x",
                   "extra_body": {"base_url": "http://evil2", "top_k": 3},
                   "nested": {"deeper": {"api_key": "sk-y", "ok": 1}},
                   "messages": [{"role": "user", "content": "hi", "api_key": "part of my content"}],
                   "tools": [{"type": "function", "function": {"name": "f", "parameters":
                        {"type": "object", "properties": {"api_key": {"type": "string"}}}}}]}),
        )
        .expect("valid");
        let removed = &req.gateway.ignored_credentials;
        assert!(removed.contains(&"api_base".to_string()), "{removed:?}");
        assert!(
            removed.contains(&"extra_body.base_url".to_string()),
            "{removed:?}"
        );
        assert!(
            removed.contains(&"nested.deeper.api_key".to_string()),
            "{removed:?}"
        );
        assert!(!req.body.contains_key("api_base") && !req.body.contains_key("api_key"));
        assert_eq!(req.body["top_k"], 3);
        assert_eq!(req.body["nested"]["deeper"], json!({"ok": 1}));
        assert_eq!(req.body["messages"][0]["api_key"], "part of my content");
        assert!(req.body["tools"][0]["function"]["parameters"]["properties"]
            .get("api_key")
            .is_some());
    }

    #[test]
    fn rejects_bad_input_with_param() {
        let bad = |kind, v: Value, param: &str| {
            let err = parse(kind, v).expect_err("must fail");
            assert_eq!(err.param(), Some(param), "{err}");
        };
        bad(CallKind::Chat, json!({"messages": []}), "model");
        bad(CallKind::Chat, json!({"model": 5, "messages": []}), "model");
        bad(CallKind::Chat, json!({"model": "m"}), "messages");
        bad(
            CallKind::Chat,
            json!({"model": "m", "messages": "hi"}),
            "messages",
        );
        bad(
            CallKind::Chat,
            json!({"model": "m", "messages": [{"role": "user"}], "temperature": "hot"}),
            "temperature",
        );
        bad(
            CallKind::Chat,
            json!({"model": "m", "messages": [{"role": "user"}], "stream": "yes"}),
            "stream",
        );
        bad(
            CallKind::Chat,
            json!({"model": "m", "messages": [{"role": "user"}], "max_tokens": 1.5}),
            "max_tokens",
        );
        bad(CallKind::Embedding, json!({"model": "m"}), "input");
        bad(CallKind::Completion, json!({"model": "m"}), "prompt");
    }

    #[test]
    fn rejects_non_objects_invalid_json_and_invalid_utf8() {
        assert!(LlmRequest::parse(CallKind::Chat, b"[1,2]", None).is_err());
        assert!(LlmRequest::parse(CallKind::Chat, b"{\"model\":", None).is_err());
        assert!(
            LlmRequest::parse(CallKind::Chat, b"{\"model\":\"\xff\"}", None)
                .expect_err("utf8")
                .to_string()
                .contains("UTF-8")
        );
    }

    #[test]
    fn huge_timeouts_are_refused_not_panicked_on() {
        for key in ["timeout", "stream_timeout", "request_timeout"] {
            for v in [json!(1e300), json!("1e300"), json!("inf")] {
                let mut body = json!({"model": "m", "messages": [{"role": "user"}]});
                body[key] = v;
                let err = parse(CallKind::Chat, body).expect_err("too long");
                assert_eq!(
                    err.param(),
                    Some(key.trim_start_matches("request_")),
                    "{err}"
                );
            }
            // Representable but absurd: a year.
            let mut body = json!({"model": "m", "messages": [{"role": "user"}]});
            body[key] = json!(1.8e19);
            let req = parse(CallKind::Chat, body).expect("valid");
            let got = req.gateway.timeout.or(req.gateway.stream_timeout);
            assert_eq!(got, Some(MAX_TIMEOUT));
        }
    }

    #[test]
    fn path_model_wins() {
        let req = LlmRequest::parse(
            CallKind::Chat,
            br#"{"model":"body-model","messages":[{"role":"user","content":"x"}]}"#,
            Some("path-model"),
        )
        .expect("valid");
        assert_eq!(req.model, "path-model");
        assert_eq!(req.body["model"], "path-model");
    }

    #[test]
    fn usage_with_details() {
        let env: UsageEnvelope = serde_json::from_str(
            r#"{"id":"x","usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,
                "prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}"#,
        )
        .expect("parses");
        let u = env.usage.expect("usage");
        assert_eq!(
            (u.prompt_tokens, u.cached_tokens, u.reasoning_tokens),
            (10, 4, 2)
        );
    }
}

/// Property tests: the parser never panics, its errors are typed 400s, and what it accepts it
/// accepts again unchanged (a parsed body is a fixed point).
#[cfg(test)]
pub(crate) mod proptests {
    use super::*;
    use actix_web::ResponseError;
    use proptest::prelude::*;

    /// Any JSON value, a few levels deep, with keys drawn from the ones the parser cares about.
    pub(crate) fn json_value() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("model".to_string()),
            Just("messages".to_string()),
            Just("role".to_string()),
            Just("content".to_string()),
            Just("prompt".to_string()),
            Just("input".to_string()),
            Just("stream".to_string()),
            Just("metadata".to_string()),
            Just("tools".to_string()),
            Just("n".to_string()),
            Just("user".to_string()),
            Just("api_base".to_string()),
            Just("extra_body".to_string()),
            Just("fallbacks".to_string()),
            Just("timeout".to_string()),
            Just("mock_response".to_string()),
            "[a-z_\u{0}]{0,8}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            // Short decimals: serde_json's default float parsing may move a long one by one ULP.
            any::<i32>().prop_map(|i| Value::from(f64::from(i) / 100.0)),
            Just(Value::from(1e300)),
            Just(Value::String("1e300".into())),
            "\\PC{0,12}".prop_map(Value::String),
            Just(Value::String("a\u{0}b".into())),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn kind() -> impl Strategy<Value = CallKind> {
        prop_oneof![
            Just(CallKind::Chat),
            Just(CallKind::Completion),
            Just(CallKind::Embedding),
            Just(CallKind::ImageGeneration),
            Just(CallKind::Moderation)
        ]
    }

    fn check(result: Result<LlmRequest, GatewayError>) -> Result<(), TestCaseError> {
        match result {
            Ok(req) => {
                prop_assert!(!req.model.is_empty());
                prop_assert_eq!(
                    req.body.get("model"),
                    Some(&Value::String(req.model.clone()))
                );
                for key in GATEWAY_ONLY_KEYS.iter().chain(CLIENT_CREDENTIAL_KEYS) {
                    prop_assert!(!req.body.contains_key(*key), "{} forwarded", key);
                }
                // A parsed body is a fixed point of the parser.
                let again = LlmRequest::parse(
                    req.kind,
                    Value::Object(req.body.clone()).to_string().as_bytes(),
                    None,
                )
                .map_err(|e| TestCaseError::fail(format!("re-parse failed: {e}")))?;
                prop_assert_eq!(&again.body, &req.body);
                prop_assert_eq!(again.stream, req.stream);
            }
            Err(e) => prop_assert_eq!(e.status_code().as_u16(), 400, "{}", e),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(kind in kind(), raw in prop::collection::vec(any::<u8>(), 0..256)) {
            if let Err(e) = LlmRequest::parse(kind, &raw, None) {
                prop_assert_eq!(e.status_code().as_u16(), 400);
            }
        }

        #[test]
        fn arbitrary_json_is_accepted_consistently_or_refused_with_400(kind in kind(), body in json_value()) {
            check(LlmRequest::parse(kind, body.to_string().as_bytes(), None))?;
        }

        #[test]
        fn valid_requests_parse_and_reparse(
            model in "[a-z][a-z0-9./-]{0,20}",
            messages in prop::collection::vec(("user|assistant|system", "\\PC{0,20}"), 1..8),
            temperature in prop::option::of(0.0f64..2.0),
            stream in any::<bool>(),
            extra in json_value(),
        ) {
            let mut body = serde_json::json!({
                "model": model,
                "messages": messages.iter().map(|(r, c)| serde_json::json!({"role": r, "content": c})).collect::<Vec<_>>(),
                "stream": stream,
                "x_extra": extra,
            });
            if let Some(t) = temperature {
                body["temperature"] = serde_json::json!(t);
            }
            let req = LlmRequest::parse(CallKind::Chat, body.to_string().as_bytes(), None);
            prop_assert!(req.is_ok(), "{:?}", req.err());
            check(req)?;
        }

        #[test]
        fn depth_bound_is_exact(depth in 1usize..100) {
            let body = format!(
                r#"{{"model":"m","messages":[{{"role":"user"}}],"x":{}{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            );
            // The body itself and `messages` add two levels (the message object is not on this path).
            let result = LlmRequest::parse(CallKind::Chat, body.as_bytes(), None);
            prop_assert_eq!(result.is_ok(), depth < bounds::MAX_DEPTH, "depth {}", depth);
        }

        #[test]
        fn shape_check_ignores_brackets_inside_strings(text in "[\\[\\]{},\"\\\\a]{0,200}") {
            let body = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": text}]});
            prop_assert!(check_shape(body.to_string().as_bytes()).is_ok());
        }
    }
}
