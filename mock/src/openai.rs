//! The OpenAI wire format: chat completions, legacy completions, embeddings and models, with
//! OpenAI's error shape (which the other formats reuse where their provider does) and its
//! server-sent-event streams.

use std::{
    borrow::Cow,
    fmt, io,
    time::{Duration, Instant},
};

use actix_web::{
    http::{
        header::{self, ContentType, HeaderName, HeaderValue},
        StatusCode,
    },
    web::{self, Bytes},
    HttpRequest, HttpResponse, ResponseError,
};
use futures_util::stream::{self, Stream};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::shared::{
    chat_prompt_tokens, count_words, embedding_vector, fnv1a, random_id, split_chunks,
    success_builder, tokens_for_chars, truncate_words, unix_now, FNV_OFFSET,
};
use crate::{
    body_field, cut_error, flush_point, pause, truncated_body, Controls, Endpoint, FailureMode,
    MockState, CUT_AFTER_PARTS, DEFAULT_REPLY, DEFAULT_RETRY_AFTER, HANG_DURATION, MAX_BODY_BYTES,
    RATE_LIMIT_REQUESTS, REPLY_FIELD, SLOW_DURATION, TOOL_ARGUMENTS,
};

pub(crate) const SYSTEM_FINGERPRINT: &str = "fp_tollgate_mock";
pub(crate) const SERVICE_TIER: &str = "default";
/// Ids listed by `GET /models`.
pub(crate) const MODEL_IDS: [&str; 4] = [
    "mock-gpt",
    "mock-gpt-mini",
    "mock-gpt-instruct",
    "mock-embedding",
];
pub(crate) const MODEL_CREATED: u64 = 1_677_610_602;
pub(crate) const MODEL_OWNER: &str = "tollgate-mock";
pub(crate) const MAX_EMBEDDING_DIM: u64 = 16_384;
/// Largest number of inputs (embeddings) or prompts (completions) in one request.
pub(crate) const MAX_INPUTS: usize = 2048;
pub(crate) const MAX_CHOICES: u64 = 128;

/// Registers the OpenAI routes (with and without the `/v1` prefix; the LLM routes also as
/// Azure-style deployment routes).
pub(crate) fn configure(cfg: &mut web::ServiceConfig, state: &web::Data<MockState>) {
    let llm_resource = |endpoint: Endpoint| {
        let path = endpoint.route();
        web::resource(vec![
            path.to_owned(),
            format!("/v1{path}"),
            format!("/openai/deployments/{{deployment}}{path}"),
        ])
        .app_data(state.clone())
        .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
    };
    let resource = |path: &str| {
        web::resource(vec![path.to_owned(), format!("/v1{path}")]).app_data(state.clone())
    };
    cfg.service(llm_resource(Endpoint::Chat).route(web::post().to(chat_completions)))
        .service(llm_resource(Endpoint::Completions).route(web::post().to(completions)))
        .service(llm_resource(Endpoint::Embeddings).route(web::post().to(embeddings)))
        .service(resource("/models").route(web::get().to(list_models)))
        .service(resource("/models/{model:.+}").route(web::get().to(retrieve_model)));
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

pub(crate) async fn chat_completions(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<MockState>,
) -> HttpResponse {
    handle_llm(Endpoint::Chat, &req, &body, &state).await
}

pub(crate) async fn completions(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<MockState>,
) -> HttpResponse {
    handle_llm(Endpoint::Completions, &req, &body, &state).await
}

pub(crate) async fn embeddings(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<MockState>,
) -> HttpResponse {
    handle_llm(Endpoint::Embeddings, &req, &body, &state).await
}

pub(crate) async fn list_models(
    req: HttpRequest,
    state: web::Data<MockState>,
) -> Result<HttpResponse, ApiError> {
    state.authorize(req.headers())?;
    let data: Vec<ModelObject<'_>> = MODEL_IDS.iter().map(|id| ModelObject::new(id)).collect();
    Ok(HttpResponse::Ok().json(ModelList {
        object: "list",
        data,
    }))
}

pub(crate) async fn retrieve_model(
    req: HttpRequest,
    model: web::Path<String>,
    state: web::Data<MockState>,
) -> Result<HttpResponse, ApiError> {
    state.authorize(req.headers())?;
    let model = model.into_inner();
    match MODEL_IDS.iter().find(|id| **id == model) {
        Some(id) => Ok(HttpResponse::Ok().json(ModelObject::new(id))),
        None => Err(ApiError::model_not_found(&model)),
    }
}

/// Common path of the LLM routes: count, capture, then answer (or fail as asked).
pub(crate) async fn handle_llm(
    endpoint: Endpoint,
    req: &HttpRequest,
    raw: &Bytes,
    state: &MockState,
) -> HttpResponse {
    let started = Instant::now();
    let parsed: Option<Value> = serde_json::from_slice(raw).ok();
    let model = parsed
        .as_ref()
        .and_then(|body| body.get("model"))
        .and_then(Value::as_str)
        .or_else(|| req.match_info().get("deployment"));
    state.record(endpoint, model, req, raw);

    let mut response = match serve_llm(endpoint, req, parsed.as_ref(), model, state).await {
        Ok(response) => response,
        Err(error) => error.error_response(),
    };
    let request_id = format!("req_{}", uuid::Uuid::new_v4().simple());
    let processing_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(HeaderName::from_static("x-request-id"), value);
    }
    headers.insert(
        HeaderName::from_static("openai-processing-ms"),
        HeaderValue::from(processing_ms),
    );
    response
}

pub(crate) async fn serve_llm(
    endpoint: Endpoint,
    req: &HttpRequest,
    parsed: Option<&Value>,
    model: Option<&str>,
    state: &MockState,
) -> Result<HttpResponse, ApiError> {
    let controls = Controls::extract(req.headers(), parsed.and_then(Value::as_object), model);
    let latency = controls
        .as_ref()
        .ok()
        .and_then(|c| c.latency)
        .unwrap_or(state.latency);
    pause(latency).await;
    state.authorize(req.headers())?;
    let controls = controls?;

    let mut cut = false;
    if let Some(mode) = controls.failure {
        match mode {
            FailureMode::Hang => pause(HANG_DURATION).await,
            FailureMode::Slow => pause(SLOW_DURATION).await,
            FailureMode::Cut => cut = true,
            FailureMode::Status(status) => return Err(ApiError::injected(status)),
            FailureMode::RateLimit => return Err(ApiError::rate_limited(controls.retry_after)),
            FailureMode::ContextLength => return Err(ApiError::context_length_exceeded()),
            FailureMode::ContentPolicy => return Err(ApiError::content_policy_violation()),
        }
    }

    let body = parsed
        .ok_or_else(ApiError::invalid_json)?
        .as_object()
        .ok_or_else(ApiError::body_not_object)?;
    let model = model.ok_or_else(ApiError::missing_model)?;
    let exchange = Exchange {
        body,
        model,
        state,
        cut,
    };
    match endpoint {
        Endpoint::Chat => exchange.chat_completion(),
        Endpoint::Completions => exchange.text_completion(),
        Endpoint::Embeddings => exchange.embeddings(),
    }
}

// ---------------------------------------------------------------------------------------------
// Errors in OpenAI's shape
// ---------------------------------------------------------------------------------------------

/// An error answered as `{"error":{"message","type","param","code"}}`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: Cow<'static, str>,
    kind: &'static str,
    param: Option<&'static str>,
    code: Option<&'static str>,
    /// Set on 429s: the `retry-after` value (rate-limit headers are added too).
    retry_after: Option<String>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        message: impl Into<Cow<'static, str>>,
        kind: &'static str,
    ) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after: None,
        }
    }

    pub(crate) fn invalid_request(
        message: impl Into<Cow<'static, str>>,
        param: Option<&'static str>,
        code: Option<&'static str>,
    ) -> Self {
        Self {
            param,
            code,
            ..Self::new(StatusCode::BAD_REQUEST, message, "invalid_request_error")
        }
    }

    pub(crate) fn invalid_type(param: &'static str, expected: &str) -> Self {
        Self::invalid_request(
            format!("Invalid type for '{param}': expected {expected}."),
            Some(param),
            Some("invalid_type"),
        )
    }

    fn invalid_value(param: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::invalid_request(message, Some(param), Some("invalid_value"))
    }

    fn missing_parameter(param: &'static str) -> Self {
        Self::invalid_request(
            format!("Missing required parameter: '{param}'."),
            Some(param),
            Some("missing_required_parameter"),
        )
    }

    fn invalid_json() -> Self {
        Self::invalid_request(
            "We could not parse the JSON body of your request. The OpenAI API expects a JSON payload, \
             but what was sent was not valid JSON.",
            None,
            None,
        )
    }

    fn body_not_object() -> Self {
        Self::invalid_request("The request body must be a JSON object.", None, None)
    }

    fn missing_model() -> Self {
        Self::invalid_request("You must provide a model parameter.", Some("model"), None)
    }

    pub(crate) fn missing_api_key() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "You didn't provide an API key. You need to provide your API key in an Authorization \
             header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            "invalid_request_error",
        )
    }

    pub(crate) fn invalid_api_key() -> Self {
        Self {
            code: Some("invalid_api_key"),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "Incorrect API key provided.",
                "invalid_request_error",
            )
        }
    }

    fn model_not_found(model: &str) -> Self {
        Self {
            code: Some("model_not_found"),
            ..Self::new(
                StatusCode::NOT_FOUND,
                format!("The model '{model}' does not exist or you do not have access to it."),
                "invalid_request_error",
            )
        }
    }

    fn injected(status: StatusCode) -> Self {
        let kind = if status.is_server_error() {
            "server_error"
        } else {
            "invalid_request_error"
        };
        let code = match status {
            StatusCode::UNAUTHORIZED => Some("invalid_api_key"),
            StatusCode::NOT_FOUND => Some("model_not_found"),
            _ => None,
        };
        Self {
            code,
            ..Self::new(
                status,
                format!("Mock provider injected {} error", status.as_u16()),
                kind,
            )
        }
    }

    fn rate_limited(retry_after: Option<String>) -> Self {
        Self {
            code: Some("rate_limit_exceeded"),
            retry_after: Some(retry_after.unwrap_or_else(|| DEFAULT_RETRY_AFTER.to_owned())),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit reached for requests",
                "requests",
            )
        }
    }

    fn context_length_exceeded() -> Self {
        Self::invalid_request(
            "This model's maximum context length is 8192 tokens. However, your messages resulted in \
             9000 tokens. Please reduce the length of the messages.",
            Some("messages"),
            Some("context_length_exceeded"),
        )
    }

    fn content_policy_violation() -> Self {
        Self::invalid_request(
            "Your request was rejected as a result of our safety system.",
            None,
            Some("content_policy_violation"),
        )
    }

    fn internal(message: String) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message, "server_error")
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status);
        if let Some(retry_after) = &self.retry_after {
            builder
                .insert_header((header::RETRY_AFTER, retry_after.as_str()))
                .insert_header(("x-ratelimit-limit-requests", RATE_LIMIT_REQUESTS))
                .insert_header(("x-ratelimit-remaining-requests", "0"))
                .insert_header(("x-ratelimit-reset-requests", format!("{retry_after}s")));
        }
        builder.json(ErrorEnvelope {
            error: ErrorBody {
                message: &self.message,
                kind: self.kind,
                param: self.param,
                code: self.code,
            },
        })
    }
}

#[derive(Serialize)]
pub(crate) struct ErrorEnvelope<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
pub(crate) struct ErrorBody<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

// ---------------------------------------------------------------------------------------------
// Wire types (OpenAI's shapes)
// ---------------------------------------------------------------------------------------------

/// Serialises as JSON `null`: fields OpenAI always sends that the mock never fills.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Null;

impl Serialize for Null {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_none()
    }
}

#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_tokens_details: Option<CompletionTokensDetails>,
}

#[derive(Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PromptTokensDetails {
    cached_tokens: u64,
    audio_tokens: u64,
}

#[derive(Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CompletionTokensDetails {
    reasoning_tokens: u64,
    audio_tokens: u64,
    accepted_prediction_tokens: u64,
    rejected_prediction_tokens: u64,
}

impl Usage {
    /// Usage of a legacy completion (no details objects).
    fn basic(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            prompt_tokens_details: None,
            completion_tokens_details: None,
        }
    }

    /// Usage of a chat completion, with the (zeroed) details objects.
    fn chat(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens_details: Some(PromptTokensDetails::default()),
            completion_tokens_details: Some(CompletionTokensDetails::default()),
            ..Self::basic(prompt_tokens, completion_tokens)
        }
    }
}

#[derive(Serialize)]
pub(crate) struct ChatCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<ChatChoice<'a>>,
    usage: Usage,
    service_tier: &'static str,
    system_fingerprint: &'static str,
}

#[derive(Serialize)]
pub(crate) struct ChatChoice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    logprobs: Null,
    finish_reason: &'static str,
}

#[derive(Serialize)]
pub(crate) struct AssistantMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Null,
    annotations: [Null; 0],
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCall<'a>; 1]>,
}

#[derive(Serialize)]
pub(crate) struct ToolCall<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCall<'a>,
}

#[derive(Serialize)]
pub(crate) struct FunctionCall<'a> {
    name: &'a str,
    arguments: &'static str,
}

#[derive(Serialize)]
pub(crate) struct ChatChunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    service_tier: &'static str,
    system_fingerprint: &'static str,
    choices: &'a [ChatChunkChoice<'a>],
    /// Absent unless `stream_options.include_usage`; then `null` except on the usage chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<&'a Usage>>,
}

#[derive(Serialize)]
pub(crate) struct ChatChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Null,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
pub(crate) struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    /// `Some(None)` serialises as `"content": null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

#[derive(Serialize)]
pub(crate) struct ToolCallDelta<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
pub(crate) struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[derive(Serialize)]
pub(crate) struct TextCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<TextChoice<'a>>,
    usage: Usage,
}

#[derive(Serialize)]
pub(crate) struct TextCompletionChunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [TextChoice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<&'a Usage>>,
}

#[derive(Serialize)]
pub(crate) struct TextChoice<'a> {
    text: &'a str,
    index: u32,
    logprobs: Null,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
pub(crate) struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<EmbeddingItem>,
    model: &'a str,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
pub(crate) struct EmbeddingItem {
    object: &'static str,
    index: usize,
    embedding: EmbeddingVector,
}

#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum EmbeddingVector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
pub(crate) struct EmbeddingUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

#[derive(Serialize)]
pub(crate) struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelObject<'a>>,
}

#[derive(Serialize)]
pub(crate) struct ModelObject<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

impl<'a> ModelObject<'a> {
    fn new(id: &'a str) -> Self {
        Self {
            id,
            object: "model",
            created: MODEL_CREATED,
            owned_by: MODEL_OWNER,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Building replies
// ---------------------------------------------------------------------------------------------

/// One validated LLM request being answered.
pub(crate) struct Exchange<'a> {
    body: &'a Map<String, Value>,
    model: &'a str,
    state: &'a MockState,
    /// Failure mode `cut`: abort the body part-way.
    cut: bool,
}

/// What every choice of a reply says.
pub(crate) enum Reply {
    Text {
        text: String,
        finish_reason: &'static str,
    },
    Tool {
        name: String,
    },
}

impl Reply {
    /// The text reply (`mock_reply` or the default), truncated to the token limit.
    pub(crate) fn text(body: &Map<String, Value>) -> Result<Self, ApiError> {
        let text = match body_field(Some(body), REPLY_FIELD) {
            None => DEFAULT_REPLY,
            Some(Value::String(text)) => text.as_str(),
            Some(_) => return Err(ApiError::invalid_type(REPLY_FIELD, "a string")),
        };
        let limit = match optional_u64(body, "max_completion_tokens")? {
            Some(limit) => Some(limit),
            None => optional_u64(body, "max_tokens")?,
        };
        Ok(match limit.and_then(|limit| truncate_words(text, limit)) {
            Some(truncated) => Self::Text {
                text: truncated.to_owned(),
                finish_reason: "length",
            },
            None => Self::Text {
                text: text.to_owned(),
                finish_reason: "stop",
            },
        })
    }

    pub(crate) fn completion_tokens(&self) -> u64 {
        match self {
            Self::Text { text, .. } => count_words(text),
            Self::Tool { name } => tokens_for_chars(name.chars().count() + TOOL_ARGUMENTS.len()),
        }
    }

    fn finish_reason(&self) -> &'static str {
        match self {
            Self::Text { finish_reason, .. } => finish_reason,
            Self::Tool { .. } => "tool_calls",
        }
    }
}

impl Exchange<'_> {
    fn chat_completion(&self) -> Result<HttpResponse, ApiError> {
        let messages = match body_field(Some(self.body), "messages") {
            None => return Err(ApiError::missing_parameter("messages")),
            Some(Value::Array(messages)) if messages.is_empty() => {
                return Err(ApiError::invalid_value(
                    "messages",
                    "'messages' must contain at least one message.",
                ))
            }
            Some(Value::Array(messages)) => messages,
            Some(_) => return Err(ApiError::invalid_type("messages", "an array")),
        };
        let prompt_tokens = chat_prompt_tokens(messages);
        let choices = choice_count(self.body)?;
        let reply = match forced_tool(self.body) {
            Some(name) => Reply::Tool { name },
            None => Reply::text(self.body)?,
        };
        let usage = Usage::chat(
            prompt_tokens,
            reply.completion_tokens().saturating_mul(u64::from(choices)),
        );
        let id = random_id("chatcmpl-", 29);
        let created = unix_now();

        if is_streaming(self.body) {
            let plan = StreamPlan::new(
                StreamKind::Chat,
                id,
                created,
                self.model,
                choices,
                reply,
                self.state,
            )
            .with_usage(include_usage(self.body).then_some(usage));
            return Ok(sse_response(plan, self.state.chunk_delay, self.cut));
        }

        let finish_reason = reply.finish_reason();
        let choices = (0..choices)
            .map(|index| {
                let message = match &reply {
                    Reply::Text { text, .. } => AssistantMessage {
                        role: "assistant",
                        content: Some(text),
                        refusal: Null,
                        annotations: [],
                        tool_calls: None,
                    },
                    Reply::Tool { name } => AssistantMessage {
                        role: "assistant",
                        content: None,
                        refusal: Null,
                        annotations: [],
                        tool_calls: Some([ToolCall {
                            id: random_id("call_", 24),
                            kind: "function",
                            function: FunctionCall {
                                name,
                                arguments: TOOL_ARGUMENTS,
                            },
                        }]),
                    },
                };
                ChatChoice {
                    index,
                    message,
                    logprobs: Null,
                    finish_reason,
                }
            })
            .collect();
        json_response(
            &ChatCompletion {
                id: &id,
                object: "chat.completion",
                created,
                model: self.model,
                choices,
                usage,
                service_tier: SERVICE_TIER,
                system_fingerprint: SYSTEM_FINGERPRINT,
            },
            self.cut,
        )
    }

    fn text_completion(&self) -> Result<HttpResponse, ApiError> {
        let prompts = match body_field(Some(self.body), "prompt") {
            None => vec![InputItem::Text("")],
            Some(prompt) => parse_inputs(prompt).ok_or_else(|| {
                ApiError::invalid_value(
                    "prompt",
                    format!(
                        "'prompt' must be a string, an array of strings, an array of token ids or an \
                         array of token id arrays (at most {MAX_INPUTS})."
                    ),
                )
            })?,
        };
        let prompt_tokens = prompts
            .iter()
            .map(InputItem::tokens)
            .fold(0, u64::saturating_add);
        let per_prompt = choice_count(self.body)?;
        let choices = u32::try_from(prompts.len())
            .ok()
            .and_then(|prompts| prompts.checked_mul(per_prompt))
            .ok_or_else(|| ApiError::invalid_value("n", "Too many choices requested."))?;
        let reply = Reply::text(self.body)?;
        let usage = Usage::basic(
            prompt_tokens,
            reply.completion_tokens().saturating_mul(u64::from(choices)),
        );
        let id = random_id("cmpl-", 29);
        let created = unix_now();

        if is_streaming(self.body) {
            let plan = StreamPlan::new(
                StreamKind::Text,
                id,
                created,
                self.model,
                choices,
                reply,
                self.state,
            )
            .with_usage(include_usage(self.body).then_some(usage));
            return Ok(sse_response(plan, self.state.chunk_delay, self.cut));
        }

        let (text, finish_reason) = match &reply {
            Reply::Text {
                text,
                finish_reason,
            } => (text.as_str(), *finish_reason),
            Reply::Tool { .. } => ("", reply.finish_reason()),
        };
        let choices = (0..choices)
            .map(|index| TextChoice {
                text,
                index,
                logprobs: Null,
                finish_reason: Some(finish_reason),
            })
            .collect();
        json_response(
            &TextCompletion {
                id: &id,
                object: "text_completion",
                created,
                model: self.model,
                choices,
                usage,
            },
            self.cut,
        )
    }

    fn embeddings(&self) -> Result<HttpResponse, ApiError> {
        let input = body_field(Some(self.body), "input")
            .ok_or_else(|| ApiError::missing_parameter("input"))?;
        let inputs = parse_inputs(input).ok_or_else(|| {
            ApiError::invalid_value(
                "input",
                format!(
                    "'input' must be a string, an array of strings, an array of token ids or an array \
                     of token id arrays (non-empty, at most {MAX_INPUTS} inputs)."
                ),
            )
        })?;
        let dimensions = match optional_u64(self.body, "dimensions")? {
            None => self.state.embedding_dim,
            Some(dimensions @ 1..=MAX_EMBEDDING_DIM) => usize::try_from(dimensions)
                .map_err(|_| ApiError::invalid_value("dimensions", "'dimensions' is too large."))?,
            Some(_) => {
                return Err(ApiError::invalid_value(
                    "dimensions",
                    format!("'dimensions' must be between 1 and {MAX_EMBEDDING_DIM}."),
                ))
            }
        };
        let base64 = match body_field(Some(self.body), "encoding_format") {
            None => false,
            Some(Value::String(format)) if format == "float" => false,
            Some(Value::String(format)) if format == "base64" => true,
            Some(_) => {
                return Err(ApiError::invalid_value(
                    "encoding_format",
                    "'encoding_format' must be 'float' or 'base64'.",
                ))
            }
        };

        let data = inputs
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let vector = embedding_vector(item, dimensions);
                let embedding = if base64 {
                    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                    EmbeddingVector::Base64(base64_encode(&bytes))
                } else {
                    EmbeddingVector::Float(vector)
                };
                EmbeddingItem {
                    object: "embedding",
                    index,
                    embedding,
                }
            })
            .collect();
        let prompt_tokens = inputs
            .iter()
            .map(InputItem::tokens)
            .fold(0, u64::saturating_add);
        json_response(
            &EmbeddingList {
                object: "list",
                data,
                model: self.model,
                usage: EmbeddingUsage {
                    prompt_tokens,
                    total_tokens: prompt_tokens,
                },
            },
            self.cut,
        )
    }
}

/// `n`, validated (1 to 128, default 1).
pub(crate) fn choice_count(body: &Map<String, Value>) -> Result<u32, ApiError> {
    match optional_u64(body, "n")? {
        None => Ok(1),
        Some(n @ 1..=MAX_CHOICES) => {
            u32::try_from(n).map_err(|_| ApiError::invalid_value("n", "'n' is too large."))
        }
        Some(_) => Err(ApiError::invalid_value(
            "n",
            format!("'n' must be between 1 and {MAX_CHOICES}."),
        )),
    }
}

/// An optional non-negative integer field; present with another type is a 400.
pub(crate) fn optional_u64(
    body: &Map<String, Value>,
    key: &'static str,
) -> Result<Option<u64>, ApiError> {
    match body_field(Some(body), key) {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .map(Some)
            .ok_or_else(|| ApiError::invalid_type(key, "a non-negative integer")),
    }
}

pub(crate) fn is_streaming(body: &Map<String, Value>) -> bool {
    body.get("stream").and_then(Value::as_bool).unwrap_or(false)
}

pub(crate) fn include_usage(body: &Map<String, Value>) -> bool {
    body.get("stream_options")
        .and_then(|options| options.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The function to call when the request forces a tool call: `tools` is non-empty and
/// `tool_choice` is `"required"` (first tool) or an object naming a function.
pub(crate) fn forced_tool(body: &Map<String, Value>) -> Option<String> {
    let tools = body
        .get("tools")?
        .as_array()
        .filter(|tools| !tools.is_empty())?;
    let function_name = |item: &Value| {
        item.get("function")
            .and_then(|function| function.get("name"))
            .or_else(|| item.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match body.get("tool_choice")? {
        Value::String(choice) if choice == "required" => Some(
            tools
                .first()
                .and_then(function_name)
                .unwrap_or_else(|| "function".to_owned()),
        ),
        choice @ Value::Object(_) => function_name(choice),
        _ => None,
    }
}

/// An embedding input or a legacy-completion prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InputItem<'a> {
    Text(&'a str),
    Tokens(Vec<i64>),
}

impl InputItem<'_> {
    pub(crate) fn tokens(&self) -> u64 {
        match self {
            Self::Text(text) => tokens_for_chars(text.chars().count()),
            Self::Tokens(tokens) => u64::try_from(tokens.len()).unwrap_or(u64::MAX),
        }
    }

    /// Stable 64-bit fingerprint (FNV-1a), the seed of the embedding vector.
    pub(crate) fn fingerprint(&self) -> u64 {
        match self {
            Self::Text(text) => fnv1a(fnv1a(FNV_OFFSET, b"text:"), text.as_bytes()),
            Self::Tokens(tokens) => tokens
                .iter()
                .fold(fnv1a(FNV_OFFSET, b"tokens:"), |hash, token| {
                    fnv1a(hash, &token.to_le_bytes())
                }),
        }
    }
}

/// Parses OpenAI's input forms: a string, an array of strings, an array of token ids, or an
/// array of token-id arrays. `None` if empty, mixed, too many, or another type.
pub(crate) fn parse_inputs(value: &Value) -> Option<Vec<InputItem<'_>>> {
    let token_ids = |items: &[Value]| {
        items
            .iter()
            .map(Value::as_i64)
            .collect::<Option<Vec<i64>>>()
    };
    let inputs = match value {
        Value::String(text) => vec![InputItem::Text(text)],
        Value::Array(items) => match items.first()? {
            Value::String(_) => items
                .iter()
                .map(|item| item.as_str().map(InputItem::Text))
                .collect::<Option<Vec<_>>>()?,
            Value::Number(_) => vec![InputItem::Tokens(token_ids(items)?)],
            Value::Array(_) => items
                .iter()
                .map(|item| match item {
                    Value::Array(tokens) if !tokens.is_empty() => {
                        token_ids(tokens).map(InputItem::Tokens)
                    }
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?,
            _ => return None,
        },
        _ => return None,
    };
    (inputs.len() <= MAX_INPUTS).then_some(inputs)
}

pub(crate) fn json_response<T: Serialize>(value: &T, cut: bool) -> Result<HttpResponse, ApiError> {
    let body = serde_json::to_vec(value).map_err(|error| ApiError::internal(error.to_string()))?;
    let mut builder = success_builder();
    builder.insert_header(ContentType::json());
    Ok(if cut {
        builder.body(truncated_body(body))
    } else {
        builder.body(body)
    })
}

// ---------------------------------------------------------------------------------------------
// Streaming (server-sent events)
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamKind {
    /// `chat.completion.chunk` events.
    Chat,
    /// `text_completion` events.
    Text,
}

/// What the stream carries in its content events.
pub(crate) enum StreamBody {
    Text {
        parts: Vec<String>,
        finish_reason: &'static str,
    },
    Tool {
        name: String,
        call_ids: Vec<String>,
    },
}

/// A JSON event of a chunk stream, rendered only when it is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// The opening `role: assistant` delta of a choice (chat only).
    Role(u32),
    /// Content part `.1` of choice `.0` (the arguments delta for a tool call).
    Content(u32, usize),
    /// Empty delta with the finish reason.
    Finish(u32),
    /// `choices: []` with the usage (only with `include_usage`).
    Usage,
}

/// One item of the body stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Event(Event),
    /// `data: [DONE]`.
    Done,
    /// Failure mode `cut`: error the body so that the connection is dropped.
    Abort,
}

/// Everything needed to render the events of one streamed reply.
pub(crate) struct StreamPlan {
    kind: StreamKind,
    id: String,
    created: u64,
    model: String,
    choices: u32,
    body: StreamBody,
    usage: Option<Usage>,
}

impl StreamPlan {
    fn new(
        kind: StreamKind,
        id: String,
        created: u64,
        model: &str,
        choices: u32,
        reply: Reply,
        state: &MockState,
    ) -> Self {
        let body = match reply {
            Reply::Text {
                text,
                finish_reason,
            } => StreamBody::Text {
                parts: split_chunks(&text, state.stream_chunks)
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                finish_reason,
            },
            Reply::Tool { name } => StreamBody::Tool {
                name,
                call_ids: (0..choices).map(|_| random_id("call_", 24)).collect(),
            },
        };
        Self {
            kind,
            id,
            created,
            model: model.to_owned(),
            choices,
            body,
            usage: None,
        }
    }

    fn with_usage(self, usage: Option<Usage>) -> Self {
        Self { usage, ..self }
    }

    fn finish_reason(&self) -> &'static str {
        match &self.body {
            StreamBody::Text { finish_reason, .. } => finish_reason,
            StreamBody::Tool { .. } => "tool_calls",
        }
    }

    /// The events to send, in order; `cut` stops after two content parts with [`Step::Abort`].
    fn steps(&self, cut: bool) -> Vec<Step> {
        let parts = match &self.body {
            StreamBody::Text { parts, .. } => parts.len(),
            StreamBody::Tool { .. } => 1,
        };
        let mut steps = Vec::new();
        if self.kind == StreamKind::Chat {
            steps.extend((0..self.choices).map(|choice| Step::Event(Event::Role(choice))));
        }
        let sent_parts = if cut {
            parts.min(CUT_AFTER_PARTS)
        } else {
            parts
        };
        for part in 0..sent_parts {
            steps.extend((0..self.choices).map(|choice| Step::Event(Event::Content(choice, part))));
        }
        if cut {
            steps.push(Step::Abort);
            return steps;
        }
        steps.extend((0..self.choices).map(|choice| Step::Event(Event::Finish(choice))));
        if self.usage.is_some() {
            steps.push(Step::Event(Event::Usage));
        }
        steps.push(Step::Done);
        steps
    }

    fn render(&self, step: Step) -> io::Result<Bytes> {
        match step {
            Step::Done => Ok(Bytes::from_static(b"data: [DONE]\n\n")),
            Step::Abort => Err(cut_error()),
            Step::Event(event) => match self.kind {
                StreamKind::Chat => self.chat_event(event),
                StreamKind::Text => self.text_event(event),
            },
        }
    }

    /// `usage` of a non-usage chunk: absent, or `null` when usage was asked for.
    fn usage_placeholder(&self) -> Option<Option<&Usage>> {
        self.usage.as_ref().map(|_| None)
    }

    fn part(&self, part: usize) -> &str {
        match &self.body {
            StreamBody::Text { parts, .. } => parts.get(part).map_or("", String::as_str),
            StreamBody::Tool { .. } => "",
        }
    }

    fn chat_event(&self, event: Event) -> io::Result<Bytes> {
        let (choice, usage) = match event {
            Event::Role(index) => (
                Some((index, self.role_delta(index), None)),
                self.usage_placeholder(),
            ),
            Event::Content(index, part) => (
                Some((index, self.content_delta(part), None)),
                self.usage_placeholder(),
            ),
            Event::Finish(index) => (
                Some((index, Delta::default(), Some(self.finish_reason()))),
                self.usage_placeholder(),
            ),
            Event::Usage => (None, self.usage.as_ref().map(Some)),
        };
        let choice = choice.map(|(index, delta, finish_reason)| ChatChunkChoice {
            index,
            delta,
            logprobs: Null,
            finish_reason,
        });
        sse_event(&ChatChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            service_tier: SERVICE_TIER,
            system_fingerprint: SYSTEM_FINGERPRINT,
            choices: choice.as_slice(),
            usage,
        })
    }

    fn role_delta(&self, index: u32) -> Delta<'_> {
        match &self.body {
            StreamBody::Text { .. } => Delta {
                role: Some("assistant"),
                content: Some(Some("")),
                tool_calls: None,
            },
            StreamBody::Tool { name, call_ids } => Delta {
                role: Some("assistant"),
                content: Some(None),
                tool_calls: Some([ToolCallDelta {
                    index: 0,
                    id: usize::try_from(index)
                        .ok()
                        .and_then(|index| call_ids.get(index))
                        .map(String::as_str),
                    kind: Some("function"),
                    function: FunctionDelta {
                        name: Some(name),
                        arguments: "",
                    },
                }]),
            },
        }
    }

    fn content_delta(&self, part: usize) -> Delta<'_> {
        match &self.body {
            StreamBody::Text { .. } => Delta {
                content: Some(Some(self.part(part))),
                ..Delta::default()
            },
            StreamBody::Tool { .. } => Delta {
                tool_calls: Some([ToolCallDelta {
                    index: 0,
                    id: None,
                    kind: None,
                    function: FunctionDelta {
                        name: None,
                        arguments: TOOL_ARGUMENTS,
                    },
                }]),
                ..Delta::default()
            },
        }
    }

    fn text_event(&self, event: Event) -> io::Result<Bytes> {
        let (choice, usage) = match event {
            Event::Content(index, part) => (
                Some((self.part(part), index, None)),
                self.usage_placeholder(),
            ),
            // Legacy completions have no role event (`steps` plans none): an empty text chunk.
            Event::Role(index) => (Some(("", index, None)), self.usage_placeholder()),
            Event::Finish(index) => (
                Some(("", index, Some(self.finish_reason()))),
                self.usage_placeholder(),
            ),
            Event::Usage => (None, self.usage.as_ref().map(Some)),
        };
        let choice = choice.map(|(text, index, finish_reason)| TextChoice {
            text,
            index,
            logprobs: Null,
            finish_reason,
        });
        sse_event(&TextCompletionChunk {
            id: &self.id,
            object: "text_completion",
            created: self.created,
            model: &self.model,
            choices: choice.as_slice(),
            usage,
        })
    }
}

pub(crate) fn sse_event<T: Serialize>(event: &T) -> io::Result<Bytes> {
    let mut frame = Vec::with_capacity(256);
    frame.extend_from_slice(b"data: ");
    serde_json::to_writer(&mut frame, event)?;
    frame.extend_from_slice(b"\n\n");
    Ok(Bytes::from(frame))
}

/// The event stream: each event is rendered and sent as it comes, `delay` apart.
pub(crate) fn sse_stream(
    plan: StreamPlan,
    delay: Duration,
    cut: bool,
) -> impl Stream<Item = io::Result<Bytes>> {
    let steps = plan.steps(cut).into_iter();
    stream::unfold(
        (plan, steps, true),
        move |(plan, mut steps, first)| async move {
            let step = steps.next()?;
            if !first {
                pause(delay).await;
            }
            if step == Step::Abort {
                flush_point().await;
            }
            let event = plan.render(step);
            Some((event, (plan, steps, false)))
        },
    )
}

pub(crate) fn sse_response(plan: StreamPlan, delay: Duration, cut: bool) -> HttpResponse {
    success_builder()
        .content_type("text/event-stream; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(sse_stream(plan, delay, cut))
}

/// Standard base64 (RFC 4648, with padding), as OpenAI sends `encoding_format: "base64"`.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
