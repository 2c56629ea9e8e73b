//! Google's `generateContent` wire format for the mock provider, as the Gemini API and Vertex AI
//! document it:
//!
//! - Gemini API: `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`,
//!   `:batchEmbedContents`, `:embedContent`, with the key in `x-goog-api-key` (or `?key=`).
//! - Vertex AI: `POST /v1/projects/{project}/locations/{location}/publishers/google/models/{model}:…`
//!   (`generateContent`, `streamGenerateContent?alt=sse`, `predict` for embeddings) with
//!   `Authorization: Bearer <token>`, where the token must come from this mock's `POST /token`
//!   (a service-account JWT-bearer exchange, or the refresh-token grant of user credentials;
//!   `GET /mock/google/stats` counts its calls as `token_requests`).
//!
//! Requests are validated the way Google does it (unknown fields, JSON-Schema keys Gemini rejects,
//! roles, parts) and answered with Google's bodies, streams and `google.rpc.Status` errors.
//! Failure injection: the `x-mock-fail` header or a `mock-fail-<mode>` model name (a Gemini body
//! cannot carry `mock_fail`: Google rejects unknown fields); `content_policy` answers 200 with
//! `promptFeedback.blockReason`, as Gemini does for blocked prompts.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use actix_web::{
    http::{header, StatusCode},
    web::{self, Bytes},
    HttpRequest, HttpResponse,
};
use futures_util::stream::{self, StreamExt as _};
use serde_json::{json, Map, Value};

use crate::openai::InputItem;
use crate::shared::{
    embedding_vector, random_id, split_chunks, success_builder, tokens_for_chars, truncate_words,
};
use crate::{
    bearer_token, cut_error, flush_point, header_text, lock, pause, Controls, Endpoint,
    FailureMode, MockState, CUT_AFTER_PARTS, DEFAULT_REPLY, DEFAULT_RETRY_AFTER, HANG_DURATION,
    MAX_BODY_BYTES, SLOW_DURATION,
};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const TOKEN_LIFETIME_SECS: u64 = 3599;
const MAX_STOP_SEQUENCES: usize = 5;
/// Sent on function calls of `gemini-3*` models, which require it back in the next turn.
const THOUGHT_SIGNATURE: &str = "bW9jay10aG91Z2h0LXNpZ25hdHVyZQ==";

/// Gemini 3 models sign their function calls and refuse histories that drop the signature.
fn signs_calls(model: &str) -> bool {
    model.starts_with("gemini-3")
}

/// Access tokens issued by `POST /token` and the count of token requests.
#[derive(Debug, Default)]
pub(super) struct GoogleState {
    token_requests: AtomicU64,
    tokens: Mutex<HashSet<String>>,
}

impl GoogleState {
    pub(super) fn token_requests(&self) -> u64 {
        self.token_requests.load(Ordering::Relaxed)
    }

    /// Whether this mock's `POST /token` issued `token`.
    pub(super) fn knows(&self, token: &str) -> bool {
        lock(&self.tokens).contains(token)
    }

    /// Zeroes the counter; issued tokens stay valid (gateways keep them cached).
    pub(super) fn reset(&self) {
        self.token_requests.store(0, Ordering::Relaxed);
    }
}

/// Registers the Gemini API, Vertex AI and token routes.
pub(super) fn configure(cfg: &mut web::ServiceConfig, state: &web::Data<MockState>) {
    cfg.service(
        web::resource("/v1beta/models/{call}")
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .route(web::post().to(gemini_api)),
    )
    .service(
        web::resource(
            "/v1/projects/{project}/locations/{location}/publishers/google/models/{call}",
        )
        .app_data(state.clone())
        .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .route(web::post().to(vertex_api)),
    )
    .service(
        web::resource("/v1/projects/{project}/locations/{location}/rankingConfigs/{config}")
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .route(web::post().to(vertex_rank)),
    )
    .service(
        web::resource("/token")
            .app_data(state.clone())
            .route(web::post().to(token)),
    )
    .service(
        web::resource("/mock/google/stats")
            .app_data(state.clone())
            .route(web::get().to(google_stats)),
    );
}

async fn google_stats(state: web::Data<MockState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "token_requests": state.google.token_requests() }))
}

// ---------------------------------------------------------------------------------------------
// Errors in Google's shape
// ---------------------------------------------------------------------------------------------

/// A `google.rpc.Status` error: `{"error":{"code","message","status","details"}}`.
#[derive(Debug)]
struct GoogleError {
    status: StatusCode,
    message: String,
    details: Option<Value>,
}

impl GoogleError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            details: None,
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn unknown_field(name: &str, at: Option<&str>) -> Self {
        Self::invalid(match at {
            Some(at) => format!(
                "Invalid JSON payload received. Unknown name \"{name}\" at '{at}': Cannot find field."
            ),
            None => format!("Invalid JSON payload received. Unknown name \"{name}\": Cannot find field."),
        })
    }

    fn status_name(status: StatusCode) -> &'static str {
        match status.as_u16() {
            400 => "INVALID_ARGUMENT",
            401 => "UNAUTHENTICATED",
            403 => "PERMISSION_DENIED",
            404 => "NOT_FOUND",
            409 => "ABORTED",
            429 => "RESOURCE_EXHAUSTED",
            499 => "CANCELLED",
            501 => "NOT_IMPLEMENTED",
            503 => "UNAVAILABLE",
            504 => "DEADLINE_EXCEEDED",
            402..=498 => "FAILED_PRECONDITION",
            _ => "INTERNAL",
        }
    }

    fn response(&self) -> HttpResponse {
        let mut error = json!({
            "code": self.status.as_u16(),
            "message": self.message,
            "status": Self::status_name(self.status),
        });
        if let Some(details) = &self.details {
            error["details"] = details.clone();
        }
        HttpResponse::build(self.status).json(json!({ "error": error }))
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Api {
    Gemini,
    Vertex,
}

async fn gemini_api(
    req: HttpRequest,
    call: web::Path<String>,
    body: Bytes,
    state: web::Data<MockState>,
) -> HttpResponse {
    handle(Api::Gemini, &req, &call, &body, &state).await
}

async fn vertex_api(
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    body: Bytes,
    state: web::Data<MockState>,
) -> HttpResponse {
    handle(Api::Vertex, &req, &path.2, &body, &state).await
}

/// The Discovery Engine ranking API (`rankingConfigs/{config}:rank`, Vertex AI's reranker):
/// a Vertex token, `query` and `records` (`id`, `content` or `title`); each record scored by the
/// share of the query's words it holds, best first, `topN` of them; `ignoreRecordDetailsInResponse`
/// leaves the content out.
async fn vertex_rank(
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    body: Bytes,
    state: web::Data<MockState>,
) -> HttpResponse {
    let model = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("model").and_then(Value::as_str).map(str::to_string));
    state.record(Endpoint::Rerank, model.as_deref(), &req, &body);
    match rank(&req, &path.2, &body, &state) {
        Ok(v) => json_response(&v, false),
        Err(e) => e.response(),
    }
}

fn rank(
    req: &HttpRequest,
    config: &str,
    body: &[u8],
    state: &MockState,
) -> Result<Value, GoogleError> {
    authorize(Api::Vertex, req, state)?;
    if !config.ends_with(":rank") {
        return Err(GoogleError::new(
            StatusCode::NOT_FOUND,
            format!("Method not found: {config}"),
        ));
    }
    let body: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| GoogleError::invalid(format!("Invalid JSON payload received. {e}")))?;
    let query = body
        .get("query")
        .and_then(Value::as_str)
        .filter(|q| !q.is_empty())
        .ok_or_else(|| GoogleError::invalid("query must be a non-empty string"))?;
    let records = body
        .get("records")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| GoogleError::invalid("records must be a non-empty list"))?;
    let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
    let mut scored = records
        .iter()
        .map(|r| {
            let id = r
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| GoogleError::invalid("each record needs an id"))?;
            let text = r
                .get("content")
                .or_else(|| r.get("title"))
                .and_then(Value::as_str)
                .ok_or_else(|| GoogleError::invalid("each record needs content or a title"))?;
            let lower = text.to_lowercase();
            let hits = words.iter().filter(|w| lower.contains(w.as_str())).count();
            let score = hits as f64 / words.len().max(1) as f64;
            Ok((score, id.to_string(), text.to_string()))
        })
        .collect::<Result<Vec<_>, GoogleError>>()?;
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let top = body
        .get("topN")
        .and_then(Value::as_u64)
        .map_or(scored.len(), |n| n as usize);
    let bare = body
        .get("ignoreRecordDetailsInResponse")
        .and_then(Value::as_bool)
        == Some(true);
    let out: Vec<Value> = scored
        .into_iter()
        .take(top)
        .map(|(score, id, text)| {
            if bare {
                json!({"id": id, "score": score})
            } else {
                json!({"id": id, "score": score, "content": text})
            }
        })
        .collect();
    Ok(json!({"records": out}))
}

async fn handle(
    api: Api,
    req: &HttpRequest,
    call: &str,
    raw: &Bytes,
    state: &MockState,
) -> HttpResponse {
    let Some((model, method)) = call.rsplit_once(':') else {
        return GoogleError::new(
            StatusCode::NOT_FOUND,
            format!(
                "The requested URL {} was not found on this server.",
                req.path()
            ),
        )
        .response();
    };
    let endpoint = match (api, method) {
        (_, "generateContent" | "streamGenerateContent") => Endpoint::Chat,
        (Api::Vertex, "predict") if model.starts_with("imagen") => Endpoint::ImageGenerations,
        (Api::Gemini, "batchEmbedContents" | "embedContent") | (Api::Vertex, "predict") => {
            Endpoint::Embeddings
        }
        _ => {
            return GoogleError::new(
                StatusCode::NOT_FOUND,
                format!("Method '{method}' is not found for model {model}."),
            )
            .response()
        }
    };
    state.record(endpoint, Some(model), req, raw);
    match serve(api, req, model, method, raw, state).await {
        Ok(response) => response,
        Err(error) => error.response(),
    }
}

/// The caller's credential: the API key for the Gemini API, an issued token for Vertex AI.
fn authorize(api: Api, req: &HttpRequest, state: &MockState) -> Result<(), GoogleError> {
    match api {
        Api::Gemini => {
            let key = header_text(req.headers(), "x-goog-api-key").or_else(|| {
                req.query_string()
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("key="))
            });
            match (key, state.api_key.as_deref()) {
                (None, _) => Err(GoogleError::new(
                    StatusCode::FORBIDDEN,
                    "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
                )),
                (Some(given), Some(expected)) if given != expected => {
                    let mut e = GoogleError::invalid("API key not valid. Please pass a valid API key.");
                    e.details = Some(json!([{
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com"
                    }]));
                    Err(e)
                }
                _ => Ok(()),
            }
        }
        Api::Vertex => {
            let token =
                header_text(req.headers(), header::AUTHORIZATION.as_str()).and_then(bearer_token);
            let known = token.is_some_and(|t| lock(&state.google.tokens).contains(t));
            if known {
                Ok(())
            } else {
                Err(GoogleError::new(
                    StatusCode::UNAUTHORIZED,
                    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
                ))
            }
        }
    }
}

async fn serve(
    api: Api,
    req: &HttpRequest,
    model: &str,
    method: &str,
    raw: &Bytes,
    state: &MockState,
) -> Result<HttpResponse, GoogleError> {
    // `mock_fail` cannot ride in a Google body; the header and the model name can.
    let controls = Controls::extract(req.headers(), None, Some(model));
    let latency = controls
        .as_ref()
        .ok()
        .and_then(|c| c.latency)
        .unwrap_or(state.latency);
    pause(latency).await;
    authorize(api, req, state)?;
    let controls = controls.map_err(|e| GoogleError::invalid(e.message.to_string()))?;

    let mut cut = false;
    let mut blocked = false;
    if let Some(mode) = controls.failure {
        match mode {
            FailureMode::Hang => pause(HANG_DURATION).await,
            FailureMode::Slow => pause(SLOW_DURATION).await,
            FailureMode::Cut => cut = true,
            FailureMode::Status(status) => {
                return Err(GoogleError::new(
                    status,
                    format!("Mock provider injected {} error", status.as_u16()),
                ))
            }
            FailureMode::RateLimit => {
                let delay = controls
                    .retry_after
                    .unwrap_or_else(|| DEFAULT_RETRY_AFTER.to_owned());
                let mut e = GoogleError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Resource has been exhausted (e.g. check quota).",
                );
                e.details = Some(json!([{
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": format!("{delay}s"),
                }]));
                return Err(e);
            }
            FailureMode::ContextLength => {
                return Err(GoogleError::invalid(
                    "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
                ))
            }
            FailureMode::ContentPolicy => blocked = true,
        }
    }

    let body: Value = serde_json::from_slice(raw).map_err(|e| {
        GoogleError::invalid(format!(
            "Invalid JSON payload received. Unexpected token. {e}"
        ))
    })?;
    let body = body.as_object().ok_or_else(|| {
        GoogleError::invalid("Invalid JSON payload received. Expected an object.")
    })?;
    match method {
        "generateContent" | "streamGenerateContent" => {
            validate_generate(api, model, body)?;
            let exchange = Generate::new(body, model, blocked);
            if method == "streamGenerateContent" {
                if !req.query_string().split('&').any(|kv| kv == "alt=sse") {
                    return Err(GoogleError::invalid(
                        "this mock streams only with ?alt=sse (server-sent events)",
                    ));
                }
                Ok(exchange.stream(state.stream_chunks, state.chunk_delay, cut))
            } else {
                Ok(json_response(&exchange.response(), cut))
            }
        }
        "batchEmbedContents" => batch_embed(body, model, state, cut),
        "embedContent" => {
            let (text, dims) = embed_request(&Value::Object(body.clone()), "")?;
            let values = vector(&text, dims.unwrap_or(state.embedding_dim));
            Ok(json_response(
                &json!({"embedding": {"values": values}}),
                cut,
            ))
        }
        _ if model.starts_with("imagen") => imagen(body, cut),
        _ => predict(body, state, cut),
    }
}

/// Imagen's `:predict`: one instance with a `prompt`; `parameters.sampleCount` images (1 to 4),
/// each a few deterministic bytes as `bytesBase64Encoded`.
fn imagen(body: &Map<String, Value>, cut: bool) -> Result<HttpResponse, GoogleError> {
    let prompt = body
        .get("instances")
        .and_then(Value::as_array)
        .and_then(|i| i.first())
        .and_then(|i| i.get("prompt"))
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| GoogleError::invalid("instances[0].prompt must be a non-empty string"))?;
    let params = body.get("parameters");
    let count = params
        .and_then(|p| p.get("sampleCount"))
        .map_or(Some(1), Value::as_u64)
        .filter(|n| (1..=4).contains(n))
        .ok_or_else(|| GoogleError::invalid("parameters.sampleCount must be from 1 to 4"))?;
    if let Some(ratio) = params.and_then(|p| p.get("aspectRatio")) {
        if !matches!(
            ratio.as_str(),
            Some("1:1" | "9:16" | "16:9" | "3:4" | "4:3")
        ) {
            return Err(GoogleError::invalid(format!(
                "aspectRatio {ratio} is not supported: use 1:1, 9:16, 16:9, 3:4 or 4:3"
            )));
        }
    }
    let predictions: Vec<Value> = (0..count)
        .map(|i| {
            let seed = crate::shared::fnv1a(crate::shared::FNV_OFFSET, prompt.as_bytes()) ^ i;
            json!({
                "bytesBase64Encoded": crate::openai::base64_encode(&seed.to_le_bytes().repeat(4)),
                "mimeType": "image/png",
            })
        })
        .collect();
    Ok(json_response(&json!({"predictions": predictions}), cut))
}

fn json_response(value: &Value, cut: bool) -> HttpResponse {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut builder = success_builder();
    builder.content_type("application/json; charset=UTF-8");
    if cut {
        builder.body(super::truncated_body(body))
    } else {
        builder.body(body)
    }
}

// ---------------------------------------------------------------------------------------------
// Validation, as strict as Google's
// ---------------------------------------------------------------------------------------------

const REQUEST_FIELDS: &[&str] = &[
    "contents",
    "systemInstruction",
    "system_instruction",
    "tools",
    "toolConfig",
    "tool_config",
    "generationConfig",
    "generation_config",
    "safetySettings",
    "safety_settings",
    "cachedContent",
    "cached_content",
];

const GENERATION_FIELDS: &[&str] = &[
    "temperature",
    "topP",
    "topK",
    "candidateCount",
    "maxOutputTokens",
    "stopSequences",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseLogprobs",
    "logprobs",
    "thinkingConfig",
    "responseModalities",
    "mediaResolution",
    "speechConfig",
];

/// Fields of Gemini's `Schema` (an OpenAPI subset): JSON-Schema extras are unknown names.
const SCHEMA_FIELDS: &[&str] = &[
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

const PART_FIELDS: &[&str] = &[
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
    "thought",
    "thoughtSignature",
];

fn validate_generate(api: Api, model: &str, body: &Map<String, Value>) -> Result<(), GoogleError> {
    for key in body.keys() {
        let vertex_only = key == "labels" && api == Api::Vertex;
        if !REQUEST_FIELDS.contains(&key.as_str()) && !vertex_only {
            return Err(GoogleError::unknown_field(key, None));
        }
    }
    let contents = body
        .get("contents")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            GoogleError::invalid("* GenerateContentRequest.contents: contents is not specified")
        })?;
    for (i, content) in contents.iter().enumerate() {
        let at = format!("contents[{i}]");
        match content.get("role").and_then(Value::as_str) {
            Some("user" | "model") => {}
            None if api == Api::Gemini => {}
            None => {
                return Err(GoogleError::invalid(format!(
                    "Please use a valid role: user, model. ({at}.role is missing)"
                )))
            }
            Some(other) => {
                return Err(GoogleError::invalid(format!(
                    "Please use a valid role: user, model. (got '{other}' at {at})"
                )))
            }
        }
        let parts = content
            .get("parts")
            .and_then(Value::as_array)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                GoogleError::invalid(format!(
                    "* GenerateContentRequest.{at}.parts: contents.parts must not be empty."
                ))
            })?;
        for (j, part) in parts.iter().enumerate() {
            validate_part(part, &format!("{at}.parts[{j}]"))?;
            if signs_calls(model)
                && part.get("functionCall").is_some()
                && part.get("thoughtSignature").is_none()
            {
                return Err(GoogleError::invalid(format!(
                    "Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly. Additional data, function call `default_api:{}` , position {}.",
                    part.pointer("/functionCall/name").and_then(Value::as_str).unwrap_or(""),
                    i + 1
                )));
            }
        }
    }
    if let Some(system) = body.get("systemInstruction") {
        let parts = system.get("parts").and_then(Value::as_array);
        if !parts.is_some_and(|p| {
            p.iter()
                .all(|p| p.get("text").is_some_and(Value::is_string))
        }) {
            return Err(GoogleError::invalid(
                "* GenerateContentRequest.system_instruction: must hold text parts",
            ));
        }
    }
    if let Some(tools) = body.get("tools") {
        let tools = tools
            .as_array()
            .ok_or_else(|| GoogleError::invalid("tools must be a list"))?;
        for (i, tool) in tools.iter().enumerate() {
            let Some(obj) = tool.as_object() else {
                return Err(GoogleError::invalid(format!(
                    "tools[{i}] must be an object"
                )));
            };
            for (key, value) in obj {
                match key.as_str() {
                    "functionDeclarations" => {
                        let decls = value.as_array().ok_or_else(|| {
                            GoogleError::invalid("functionDeclarations must be a list")
                        })?;
                        for (j, decl) in decls.iter().enumerate() {
                            let at = format!("tools[{i}].function_declarations[{j}]");
                            if !decl.get("name").is_some_and(Value::is_string) {
                                return Err(GoogleError::invalid(format!(
                                    "* GenerateContentRequest.{at}.name: Invalid function name."
                                )));
                            }
                            if let Some(params) = decl.get("parameters") {
                                validate_schema(params, &format!("{at}.parameters"))?;
                                let empty = params
                                    .get("properties")
                                    .and_then(Value::as_object)
                                    .is_some_and(Map::is_empty);
                                if empty {
                                    return Err(GoogleError::invalid(format!(
                                        "* GenerateContentRequest.{at}.parameters.properties: should be non-empty for OBJECT type"
                                    )));
                                }
                            }
                        }
                    }
                    "googleSearch" | "googleSearchRetrieval" | "codeExecution" | "urlContext" => {}
                    other => {
                        return Err(GoogleError::unknown_field(
                            other,
                            Some(&format!("tools[{i}]")),
                        ))
                    }
                }
            }
        }
    }
    if let Some(config) = body.get("toolConfig") {
        let mode = config
            .pointer("/functionCallingConfig/mode")
            .and_then(Value::as_str);
        if !matches!(mode, None | Some("AUTO" | "ANY" | "NONE" | "VALIDATED")) {
            return Err(GoogleError::invalid(format!(
                "Invalid value at 'tool_config.function_calling_config.mode': {}",
                mode.unwrap_or("")
            )));
        }
    }
    if let Some(config) = body.get("generationConfig") {
        let config = config
            .as_object()
            .ok_or_else(|| GoogleError::invalid("generationConfig must be an object"))?;
        for key in config.keys() {
            if !GENERATION_FIELDS.contains(&key.as_str()) {
                return Err(GoogleError::unknown_field(key, Some("generation_config")));
            }
        }
        if let Some(schema) = config.get("responseSchema") {
            validate_schema(schema, "generation_config.response_schema")?;
        }
        let stops = config
            .get("stopSequences")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if stops > MAX_STOP_SEQUENCES {
            return Err(GoogleError::invalid(format!(
                "* GenerateContentRequest.generation_config.stop_sequences: at most {MAX_STOP_SEQUENCES} stop sequences are allowed"
            )));
        }
    }
    Ok(())
}

fn validate_part(part: &Value, at: &str) -> Result<(), GoogleError> {
    let obj = part
        .as_object()
        .ok_or_else(|| GoogleError::invalid(format!("{at} must be an object")))?;
    for key in obj.keys() {
        if !PART_FIELDS.contains(&key.as_str()) {
            return Err(GoogleError::unknown_field(key, Some(at)));
        }
    }
    if let Some(text) = obj.get("text") {
        if !text.is_string() {
            return Err(GoogleError::invalid(format!("{at}.text must be a string")));
        }
    } else if let Some(inline) = obj.get("inlineData") {
        let ok = inline.get("mimeType").is_some_and(Value::is_string)
            && inline.get("data").is_some_and(Value::is_string);
        if !ok {
            return Err(GoogleError::invalid(format!(
                "{at}.inline_data needs mimeType and data"
            )));
        }
    } else if let Some(file) = obj.get("fileData") {
        if !file.get("fileUri").is_some_and(Value::is_string) {
            return Err(GoogleError::invalid(format!(
                "{at}.file_data needs fileUri"
            )));
        }
    } else if let Some(call) = obj.get("functionCall") {
        if !call.get("name").is_some_and(Value::is_string)
            || call.get("args").is_some_and(|a| !a.is_object())
        {
            return Err(GoogleError::invalid(format!(
                "{at}.function_call needs a name and object args"
            )));
        }
    } else if let Some(response) = obj.get("functionResponse") {
        if !response.get("name").is_some_and(Value::is_string)
            || !response.get("response").is_some_and(Value::is_object)
        {
            return Err(GoogleError::invalid(format!(
                "{at}.function_response needs a name and an object response"
            )));
        }
    } else if !obj.contains_key("executableCode") && !obj.contains_key("codeExecutionResult") {
        return Err(GoogleError::invalid(format!(
            "{at}: a part must hold one of text, inline_data, file_data, function_call, function_response"
        )));
    }
    Ok(())
}

fn validate_schema(schema: &Value, at: &str) -> Result<(), GoogleError> {
    let Some(obj) = schema.as_object() else {
        return Err(GoogleError::invalid(format!(
            "{at} must be a Schema object"
        )));
    };
    for (key, value) in obj {
        if !SCHEMA_FIELDS.contains(&key.as_str()) {
            return Err(GoogleError::unknown_field(key, Some(at)));
        }
        match key.as_str() {
            "properties" => {
                for (name, p) in value.as_object().into_iter().flatten() {
                    validate_schema(p, &format!("{at}.properties[{name}]"))?;
                }
            }
            "items" => validate_schema(value, &format!("{at}.items"))?,
            "anyOf" => {
                for (i, s) in value.as_array().into_iter().flatten().enumerate() {
                    validate_schema(s, &format!("{at}.any_of[{i}]"))?;
                }
            }
            "type" if !value.is_string() => {
                return Err(GoogleError::invalid(format!(
                    "Invalid value at '{at}.type': a single type name is expected"
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// generateContent replies
// ---------------------------------------------------------------------------------------------

/// What every candidate says.
enum Answer {
    Text {
        thought: Option<&'static str>,
        text: String,
        finish: &'static str,
    },
    Calls(Vec<(String, Value)>),
    Blocked,
}

struct Generate {
    model: String,
    candidates: u64,
    answer: Answer,
    prompt_tokens: u64,
    thoughts_tokens: u64,
    id: String,
}

/// Arguments that satisfy a declaration's parameters: `"mock"` for strings, 1 for numbers…
fn mock_value(schema: Option<&Value>) -> Value {
    let Some(schema) = schema else {
        return json!({});
    };
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    match schema
        .get("type")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("string") => json!("mock"),
        Some("integer" | "number") => json!(1),
        Some("boolean") => json!(true),
        Some("array") => json!([mock_value(schema.get("items"))]),
        _ => {
            let props: Map<String, Value> = schema
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(name, p)| (name.clone(), mock_value(Some(p))))
                .collect();
            Value::Object(props)
        }
    }
}

fn text_chars(value: &Value) -> usize {
    match value {
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| match (k.as_str(), v) {
                ("text", Value::String(s)) => s.chars().count(),
                _ => text_chars(v),
            })
            .sum(),
        Value::Array(a) => a.iter().map(text_chars).sum(),
        _ => 0,
    }
}

impl Generate {
    fn new(body: &Map<String, Value>, model: &str, blocked: bool) -> Self {
        let contents = body.get("contents").and_then(Value::as_array);
        let n_contents = contents.map_or(0, Vec::len) as u64;
        let chars = contents.map_or(0, |c| c.iter().map(text_chars).sum::<usize>())
            + body.get("systemInstruction").map_or(0, text_chars);
        let prompt_tokens = tokens_for_chars(chars).saturating_add(3 * n_contents);
        let config = body.get("generationConfig");
        let get = |k: &str| config.and_then(|c| c.get(k));
        let candidates = get("candidateCount")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .clamp(1, 8);
        let budget = get("thinkingConfig")
            .and_then(|t| t.get("thinkingBudget"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let include_thoughts = get("thinkingConfig")
            .and_then(|t| t.get("includeThoughts"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let thoughts_tokens = if budget > 0 { 5 } else { 0 };

        let declarations: Vec<&Value> = body
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.get("functionDeclarations").and_then(Value::as_array))
            .flatten()
            .collect();
        let calling = body
            .get("toolConfig")
            .and_then(|t| t.get("functionCallingConfig"));
        let forced = calling.and_then(|c| c.get("mode")).and_then(Value::as_str) == Some("ANY");
        let answer = if blocked {
            Answer::Blocked
        } else if forced && !declarations.is_empty() {
            let allowed: Vec<&str> = calling
                .and_then(|c| c.get("allowedFunctionNames"))
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let names: Vec<&str> = if allowed.is_empty() {
                declarations
                    .first()
                    .and_then(|d| d.get("name"))
                    .and_then(Value::as_str)
                    .into_iter()
                    .collect()
            } else {
                allowed
            };
            Answer::Calls(
                names
                    .into_iter()
                    .map(|name| {
                        let params = declarations
                            .iter()
                            .find(|d| d.get("name").and_then(Value::as_str) == Some(name))
                            .and_then(|d| d.get("parameters"));
                        (name.to_owned(), mock_value(params))
                    })
                    .collect(),
            )
        } else {
            let json_mode =
                get("responseMimeType").and_then(Value::as_str) == Some("application/json");
            let text = if json_mode {
                match get("responseSchema") {
                    Some(schema) => mock_value(Some(schema)).to_string(),
                    None => json!({ "reply": DEFAULT_REPLY }).to_string(),
                }
            } else {
                DEFAULT_REPLY.to_owned()
            };
            let limit = get("maxOutputTokens").and_then(Value::as_u64);
            let (text, finish) = match limit.and_then(|l| truncate_words(&text, l)) {
                Some(short) if !json_mode => (short.to_owned(), "MAX_TOKENS"),
                _ => (text, "STOP"),
            };
            Answer::Text {
                thought: (budget > 0 && include_thoughts).then_some("Mock thoughts."),
                text,
                finish,
            }
        };
        Self {
            model: model.to_owned(),
            candidates,
            answer,
            prompt_tokens,
            thoughts_tokens,
            id: random_id("", 22),
        }
    }

    fn completion_tokens(&self) -> u64 {
        let per = match &self.answer {
            Answer::Text { text, .. } => {
                u64::try_from(text.split_whitespace().count()).unwrap_or(u64::MAX)
            }
            Answer::Calls(calls) => calls
                .iter()
                .map(|(name, args)| tokens_for_chars(name.len() + args.to_string().len()))
                .sum(),
            Answer::Blocked => 0,
        };
        per.saturating_mul(self.candidates)
    }

    fn usage(&self, complete: bool) -> Value {
        let mut usage = json!({
            "promptTokenCount": self.prompt_tokens,
            "totalTokenCount": self.prompt_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self.prompt_tokens}],
        });
        if complete && !matches!(self.answer, Answer::Blocked) {
            let completion = self.completion_tokens();
            let thoughts = self.thoughts_tokens * self.candidates;
            usage["candidatesTokenCount"] = json!(completion);
            usage["totalTokenCount"] = json!(self.prompt_tokens + completion + thoughts);
            if thoughts > 0 {
                usage["thoughtsTokenCount"] = json!(thoughts);
            }
        }
        usage
    }

    fn envelope(&self, candidates: Option<Vec<Value>>, complete: bool) -> Value {
        let mut out = Map::new();
        match candidates {
            Some(c) => {
                out.insert("candidates".into(), Value::Array(c));
            }
            None => {
                out.insert(
                    "promptFeedback".into(),
                    json!({"blockReason": "SAFETY", "safetyRatings": [
                        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true}
                    ]}),
                );
            }
        }
        out.insert("usageMetadata".into(), self.usage(complete));
        out.insert("modelVersion".into(), json!(self.model));
        out.insert("responseId".into(), json!(self.id));
        Value::Object(out)
    }

    fn candidate(index: u64, parts: Vec<Value>, finish: Option<&str>) -> Value {
        let mut c = json!({"content": {"parts": parts, "role": "model"}, "index": index});
        if let Some(finish) = finish {
            c["finishReason"] = json!(finish);
            c["safetyRatings"] = json!([
                {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}
            ]);
        }
        c
    }

    fn all_parts(&self) -> Vec<Value> {
        match &self.answer {
            Answer::Text { thought, text, .. } => {
                let mut parts = Vec::new();
                if let Some(t) = thought {
                    parts.push(json!({"text": t, "thought": true}));
                }
                parts.push(json!({ "text": text }));
                parts
            }
            Answer::Calls(calls) => calls
                .iter()
                .map(|(name, args)| {
                    let mut part = json!({"functionCall": {"name": name, "args": args}});
                    if signs_calls(&self.model) {
                        part["thoughtSignature"] = json!(THOUGHT_SIGNATURE);
                    }
                    part
                })
                .collect(),
            Answer::Blocked => Vec::new(),
        }
    }

    fn finish(&self) -> &'static str {
        match &self.answer {
            Answer::Text { finish, .. } => finish,
            _ => "STOP",
        }
    }

    fn response(&self) -> Value {
        if matches!(self.answer, Answer::Blocked) {
            return self.envelope(None, true);
        }
        let candidates = (0..self.candidates)
            .map(|i| Self::candidate(i, self.all_parts(), Some(self.finish())))
            .collect();
        self.envelope(Some(candidates), true)
    }

    /// The SSE events: text in `chunks` pieces (calls whole, in one event), the last event with
    /// `finishReason` and the complete usage. Google separates events with CRLF pairs.
    fn events(&self, chunks: usize) -> Vec<Value> {
        let pieces: Vec<Vec<Value>> = match &self.answer {
            Answer::Blocked => return vec![self.envelope(None, true)],
            Answer::Text { thought, text, .. } => {
                let mut pieces: Vec<Vec<Value>> = thought
                    .iter()
                    .map(|t| vec![json!({"text": t, "thought": true})])
                    .collect();
                pieces.extend(
                    split_chunks(text, chunks)
                        .into_iter()
                        .map(|p| vec![json!({ "text": p })]),
                );
                pieces
            }
            Answer::Calls(_) => vec![self.all_parts()],
        };
        let last = pieces.len().saturating_sub(1);
        pieces
            .into_iter()
            .enumerate()
            .map(|(i, parts)| {
                let finish = (i == last).then(|| self.finish());
                let candidates = (0..self.candidates)
                    .map(|c| Self::candidate(c, parts.clone(), finish))
                    .collect();
                self.envelope(Some(candidates), i == last)
            })
            .collect()
    }

    fn stream(&self, chunks: usize, delay: Duration, cut: bool) -> HttpResponse {
        let mut frames: Vec<std::io::Result<Bytes>> = self
            .events(chunks)
            .into_iter()
            .map(|e| Ok(Bytes::from(format!("data: {e}\r\n\r\n"))))
            .collect();
        if cut {
            frames.truncate(CUT_AFTER_PARTS.min(frames.len().saturating_sub(1)).max(1));
            frames.push(Err(cut_error()));
        }
        let body =
            stream::iter(frames.into_iter().enumerate()).then(move |(i, frame)| async move {
                if i > 0 {
                    pause(delay).await;
                }
                if frame.is_err() {
                    flush_point().await;
                }
                frame
            });
        success_builder()
            .content_type("text/event-stream")
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .streaming(body)
    }
}

// ---------------------------------------------------------------------------------------------
// Embeddings
// ---------------------------------------------------------------------------------------------

fn vector(text: &str, dims: usize) -> Vec<f32> {
    embedding_vector(&InputItem::Text(text), dims)
}

/// `(text, outputDimensionality)` of an `EmbedContentRequest`; `model` is checked when given.
fn embed_request(request: &Value, model: &str) -> Result<(String, Option<usize>), GoogleError> {
    if !model.is_empty() {
        let named = request.get("model").and_then(Value::as_str);
        if named != Some(model) {
            return Err(GoogleError::invalid(format!(
                "Model names in batch requests must match the URL: expected {model}, got {}",
                named.unwrap_or("none")
            )));
        }
    }
    let parts = request
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            GoogleError::invalid("* EmbedContentRequest.content: content is not specified")
        })?;
    let text: String = parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect();
    let dims = match request.get("outputDimensionality") {
        None => None,
        Some(d) => Some(
            d.as_u64()
                .filter(|d| (1..=3072).contains(d))
                .ok_or_else(|| GoogleError::invalid("outputDimensionality must be 1 to 3072"))?
                as usize,
        ),
    };
    Ok((text, dims))
}

fn batch_embed(
    body: &Map<String, Value>,
    model: &str,
    state: &MockState,
    cut: bool,
) -> Result<HttpResponse, GoogleError> {
    let requests = body
        .get("requests")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            GoogleError::invalid("* BatchEmbedContentsRequest.requests: requests is not specified")
        })?;
    let full_model = format!("models/{model}");
    let embeddings = requests
        .iter()
        .map(|r| {
            let (text, dims) = embed_request(r, &full_model)?;
            Ok(json!({"values": vector(&text, dims.unwrap_or(state.embedding_dim))}))
        })
        .collect::<Result<Vec<_>, GoogleError>>()?;
    Ok(json_response(&json!({ "embeddings": embeddings }), cut))
}

/// Vertex `:predict` for text-embedding models.
fn predict(
    body: &Map<String, Value>,
    state: &MockState,
    cut: bool,
) -> Result<HttpResponse, GoogleError> {
    let instances = body
        .get("instances")
        .and_then(Value::as_array)
        .filter(|i| !i.is_empty())
        .ok_or_else(|| GoogleError::invalid("instances must be a non-empty list"))?;
    let dims = body
        .get("parameters")
        .and_then(|p| p.get("outputDimensionality"))
        .and_then(Value::as_u64)
        .map_or(state.embedding_dim, |d| d as usize);
    let mut characters = 0;
    let predictions = instances
        .iter()
        .map(|i| {
            let text = i
                .get("content")
                .and_then(Value::as_str)
                .ok_or_else(|| GoogleError::invalid("each instance needs a 'content' string"))?;
            characters += text.chars().count();
            Ok(json!({"embeddings": {
                "values": vector(text, dims),
                "statistics": {"token_count": tokens_for_chars(text.chars().count()), "truncated": false}
            }}))
        })
        .collect::<Result<Vec<_>, GoogleError>>()?;
    Ok(json_response(
        &json!({"predictions": predictions, "metadata": {"billableCharacterCount": characters}}),
        cut,
    ))
}

// ---------------------------------------------------------------------------------------------
// OAuth token endpoint (service-account JWT bearer grant)
// ---------------------------------------------------------------------------------------------

fn oauth_error(error: &str, description: impl Into<String>) -> HttpResponse {
    HttpResponse::BadRequest()
        .json(json!({"error": error, "error_description": description.into()}))
}

fn decode_segment(segment: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .ok()
}

/// Checks a JWT-bearer assertion the way Google's token endpoint does, short of the signature
/// (the mock does not know the account's public key): RS256 header, issuer, cloud-platform scope,
/// audience = this endpoint, a lifetime of at most an hour, a 2048-bit-or-larger signature.
fn check_assertion(assertion: &str, req: &HttpRequest) -> Result<(), String> {
    let segments: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = segments.as_slice() else {
        return Err("Invalid JWT: a JWT has three segments".into());
    };
    let header: Value = decode_segment(header)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("Invalid JWT: the header is not base64url JSON")?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err("Invalid JWT: alg must be RS256".into());
    }
    let claims: Value = decode_segment(claims)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("Invalid JWT: the claims are not base64url JSON")?;
    if !claims
        .get("iss")
        .and_then(Value::as_str)
        .is_some_and(|s| s.contains('@'))
    {
        return Err("Invalid JWT: iss must be the service account's email".into());
    }
    let scopes = claims.get("scope").and_then(Value::as_str).unwrap_or("");
    if !scopes.split(' ').any(|s| s == CLOUD_PLATFORM_SCOPE) {
        return Err(format!(
            "Invalid JWT: scope must include {CLOUD_PLATFORM_SCOPE}"
        ));
    }
    let info = req.connection_info();
    let own = format!("{}://{}{}", info.scheme(), info.host(), req.path());
    if claims.get("aud").and_then(Value::as_str) != Some(own.as_str()) {
        return Err(format!("Invalid JWT: aud must be {own}"));
    }
    let now = crate::shared::unix_now();
    let iat = claims.get("iat").and_then(Value::as_u64).unwrap_or(0);
    let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
    if exp <= now || iat > now + 60 || exp <= iat || exp - iat > 3600 {
        return Err("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.".into());
    }
    if decode_segment(signature).is_none_or(|s| s.len() < 256) {
        return Err("Invalid JWT Signature.".into());
    }
    Ok(())
}

async fn token(
    req: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    state: web::Data<MockState>,
) -> HttpResponse {
    state.google.token_requests.fetch_add(1, Ordering::Relaxed);
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match field("grant_type") {
        Some(JWT_BEARER) => {
            let Some(assertion) = field("assertion") else {
                return oauth_error("invalid_request", "Missing required parameter: assertion");
            };
            if let Err(why) = check_assertion(assertion, &req) {
                return oauth_error("invalid_grant", why);
            }
        }
        // User credentials (`gcloud auth application-default login`).
        Some("refresh_token") => {
            for name in ["client_id", "client_secret", "refresh_token"] {
                if field(name).is_none_or(str::is_empty) {
                    return oauth_error(
                        "invalid_request",
                        format!("Missing required parameter: {name}"),
                    );
                }
            }
        }
        other => {
            return oauth_error(
                "unsupported_grant_type",
                format!("Invalid grant_type: {}", other.unwrap_or("")),
            )
        }
    }
    let token = format!("ya29.mock-{}", random_id("", 40));
    lock(&state.google.tokens).insert(token.clone());
    HttpResponse::Ok().json(json!({
        "access_token": token,
        "expires_in": TOKEN_LIFETIME_SECS,
        "token_type": "Bearer",
    }))
}
