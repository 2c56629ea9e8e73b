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
use serde::Serialize;
use serde_json::{Map, Value};
use tollgate_wire::openai::{
    AssistantMessage, ChatCompletion, ChatCompletionChunk, Choice, ChunkChoice,
    CompletionTokensDetails, Delta, EmbeddingList, EmbeddingVector, PromptTokensDetails,
    TextChoice, TextCompletion, ToolCall, Usage,
};

use crate::shared::{
    chat_prompt_tokens, count_words, embedding_vector, fnv1a, random_id, serial_id, split_chunks,
    success_builder, tokens_for_chars, truncate_words, unix_now, FNV_OFFSET,
};
use crate::{
    body_field, cut_error, flush_point, next_serial, pause, truncated_body, Controls, Endpoint,
    FailureMode, MockState, CUT_AFTER_PARTS, DEFAULT_REPLY, DEFAULT_RETRY_AFTER, HANG_DURATION,
    MAX_BODY_BYTES, RATE_LIMIT_REQUESTS, REPLY_FIELD, SLOW_DURATION, TOOL_ARGUMENTS,
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
/// The response header naming the answer's serial (embedding lists have no id to carry it).
pub(crate) const SERIAL_HEADER: &str = "x-mock-serial";

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
        .service(
            llm_resource(Endpoint::ImageGenerations)
                .route(web::post().to(crate::images::generations)),
        )
        .service(llm_resource(Endpoint::ImageEdits).route(web::post().to(crate::images::edits)))
        .service(
            llm_resource(Endpoint::Moderations).route(web::post().to(crate::images::moderations)),
        )
        .service(
            llm_resource(Endpoint::Transcriptions)
                .route(web::post().to(crate::audio::transcriptions)),
        )
        .service(
            llm_resource(Endpoint::Translations).route(web::post().to(crate::audio::translations)),
        )
        .service(llm_resource(Endpoint::Speech).route(web::post().to(crate::audio::speech)))
        .service(llm_resource(Endpoint::Rerank).route(web::post().to(crate::audio::rerank)))
        .service(
            web::resource(Endpoint::CohereRerank.route())
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
                .route(web::post().to(crate::audio::cohere_rerank)),
        )
        .service(llm_resource(Endpoint::Responses).route(web::post().to(crate::responses::create)))
        // Azure's Responses API is not under a deployment: `/openai/responses?api-version=` and
        // the v1 path.
        .service(
            web::resource(["/openai/responses", "/openai/v1/responses"])
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
                .route(web::post().to(crate::responses::create)),
        )
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
    let parsed: Option<Value> = serde_json::from_slice(raw).ok();
    handle_parsed(endpoint, req, raw, parsed, state).await
}

/// [`handle_llm`] of a body already read into JSON (a form's fields, for `/images/edits`).
pub(crate) async fn handle_parsed(
    endpoint: Endpoint,
    req: &HttpRequest,
    raw: &Bytes,
    parsed: Option<Value>,
    state: &MockState,
) -> HttpResponse {
    let started = Instant::now();
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
    let (serial, mut response) = match endpoint {
        Endpoint::Chat => exchange.chat_completion(),
        Endpoint::Completions => exchange.text_completion(),
        Endpoint::Embeddings => exchange.embeddings(),
        Endpoint::ImageGenerations | Endpoint::ImageEdits => {
            crate::images::images(endpoint, body, model, cut)
        }
        Endpoint::Moderations => crate::images::moderation(body, model, cut),
        Endpoint::Transcriptions | Endpoint::Translations => {
            crate::audio::transcript(endpoint, body, cut)
        }
        Endpoint::Speech => crate::audio::speech_audio(body, cut),
        Endpoint::Rerank => crate::audio::jina_rerank(body, model, cut),
        Endpoint::CohereRerank => crate::audio::cohere_rerank_answer(body, cut),
        Endpoint::Responses => crate::responses::respond(body, model, state, cut),
    }?;
    response.headers_mut().insert(
        HeaderName::from_static(SERIAL_HEADER),
        HeaderValue::from(serial),
    );
    Ok(response)
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

    pub(crate) fn invalid_value(
        param: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::invalid_request(message, Some(param), Some("invalid_value"))
    }

    pub(crate) fn missing_parameter(param: &'static str) -> Self {
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

/// Usage of a chat completion, with the details objects OpenAI sends (zeroed).
fn chat_usage(prompt_tokens: u64, completion_tokens: u64) -> Usage {
    Usage {
        prompt_tokens_details: Some(PromptTokensDetails {
            cached_tokens: 0,
            audio_tokens: Some(0),
        }),
        completion_tokens_details: Some(CompletionTokensDetails {
            reasoning_tokens: 0,
            audio_tokens: Some(0),
            accepted_prediction_tokens: Some(0),
            rejected_prediction_tokens: Some(0),
        }),
        ..Usage::basic(prompt_tokens, completion_tokens)
    }
}

/// The fields OpenAI sends with every completion and chunk that the wire types leave to the
/// writer.
fn fingerprint() -> Map<String, Value> {
    let mut extra = Map::new();
    extra.insert("service_tier".into(), SERVICE_TIER.into());
    extra.insert("system_fingerprint".into(), SYSTEM_FINGERPRINT.into());
    extra
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

/// An answer and its serial.
type Answer = Result<(u64, HttpResponse), ApiError>;

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

    /// The reply with ` (reply <serial>)` after its text (`--serial-replies`); a tool call is
    /// left as it is.
    fn with_serial(self, serial: u64) -> Self {
        match self {
            Self::Text {
                mut text,
                finish_reason,
            } => {
                text.push_str(&format!(" (reply {serial})"));
                Self::Text {
                    text,
                    finish_reason,
                }
            }
            tool @ Self::Tool { .. } => tool,
        }
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
    /// Takes the answer's serial, and marks the reply with it when the mock runs with
    /// `--serial-replies`.
    fn serial(&self, reply: Reply) -> (u64, Reply) {
        let serial = next_serial();
        if self.state.serial_replies {
            (serial, reply.with_serial(serial))
        } else {
            (serial, reply)
        }
    }

    fn chat_completion(&self) -> Answer {
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
        let (serial, reply) = self.serial(reply);
        let usage = chat_usage(
            prompt_tokens,
            reply.completion_tokens().saturating_mul(u64::from(choices)),
        );
        let id = serial_id("chatcmpl-", serial, 29);
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
            return Ok((serial, sse_response(plan, self.state.chunk_delay, self.cut)));
        }

        let finish_reason = reply.finish_reason();
        let choices = (0..choices)
            .map(|index| {
                let mut message = match &reply {
                    Reply::Text { text, .. } => AssistantMessage::new(Some(text.into())),
                    Reply::Tool { name } => {
                        let mut message = AssistantMessage::new(None);
                        message.tool_calls = vec![ToolCall::function(
                            random_id("call_", 24),
                            name.as_str(),
                            TOOL_ARGUMENTS,
                        )];
                        message
                    }
                };
                message.extra.insert("refusal".into(), Value::Null);
                message
                    .extra
                    .insert("annotations".into(), Value::Array(Vec::new()));
                Choice::new(index, message, finish_reason)
            })
            .collect();
        let response = json_response(
            &ChatCompletion {
                extra: fingerprint(),
                ..ChatCompletion::new(id.as_str(), created, self.model, choices, usage)
            },
            self.cut,
        )?;
        Ok((serial, response))
    }

    fn text_completion(&self) -> Answer {
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
        let (serial, reply) = self.serial(Reply::text(self.body)?);
        let usage = Usage::basic(
            prompt_tokens,
            reply.completion_tokens().saturating_mul(u64::from(choices)),
        );
        let id = serial_id("cmpl-", serial, 29);
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
            return Ok((serial, sse_response(plan, self.state.chunk_delay, self.cut)));
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
                text: text.into(),
                index,
                logprobs: None,
                finish_reason: Some(finish_reason.into()),
            })
            .collect();
        let response = json_response(
            &TextCompletion {
                id: id.as_str().into(),
                object: "text_completion".into(),
                created,
                model: self.model.into(),
                choices,
                usage: Some(Some(usage)),
                extra: Map::new(),
            },
            self.cut,
        )?;
        Ok((serial, response))
    }

    fn embeddings(&self) -> Answer {
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
            .map(|item| {
                let vector = embedding_vector(item, dimensions);
                if base64 {
                    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                    EmbeddingVector::Base64(base64_encode(&bytes))
                } else {
                    EmbeddingVector::Float32(vector)
                }
            })
            .collect::<Vec<_>>();
        let prompt_tokens = inputs
            .iter()
            .map(InputItem::tokens)
            .fold(0, u64::saturating_add);
        let response = json_response(
            &EmbeddingList::new(self.model, data, prompt_tokens),
            self.cut,
        )?;
        Ok((next_serial(), response))
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
    fn usage_placeholder(&self) -> Option<Option<Usage>> {
        self.usage.map(|_| None)
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
            Event::Usage => (None, self.usage.map(Some)),
        };
        let choices = choice
            .map(|(index, delta, finish_reason)| ChunkChoice {
                index,
                delta,
                logprobs: None,
                finish_reason: finish_reason.map(Into::into),
            })
            .into_iter()
            .collect();
        sse_event(&ChatCompletionChunk {
            id: self.id.as_str().into(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.as_str().into(),
            choices,
            usage,
            extra: fingerprint(),
        })
    }

    fn role_delta(&self, index: u32) -> Delta<'_> {
        match &self.body {
            StreamBody::Text { .. } => Delta::start(),
            StreamBody::Tool { name, call_ids } => {
                let mut call = ToolCall::function("", name.as_str(), "").at(0);
                call.id = usize::try_from(index)
                    .ok()
                    .and_then(|index| call_ids.get(index))
                    .map(|id| id.as_str().into());
                Delta::tool_call(call).with_role()
            }
        }
    }

    fn content_delta(&self, part: usize) -> Delta<'_> {
        match &self.body {
            StreamBody::Text { .. } => Delta::text(self.part(part)),
            StreamBody::Tool { .. } => Delta::tool_call(ToolCall::arguments(0, TOOL_ARGUMENTS)),
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
            Event::Usage => (None, self.usage.map(Some)),
        };
        let choices = choice
            .map(|(text, index, finish_reason)| TextChoice {
                text: text.into(),
                index,
                logprobs: None,
                finish_reason: finish_reason.map(Into::into),
            })
            .into_iter()
            .collect();
        sse_event(&TextCompletion {
            id: self.id.as_str().into(),
            object: "text_completion".into(),
            created: self.created,
            model: self.model.as_str().into(),
            choices,
            usage,
            extra: Map::new(),
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

#[cfg(test)]
mod tests {
    use actix_web::{
        http::header::ContentType,
        test::{self, TestRequest},
    };
    use serde_json::json;

    use super::*;
    use crate::tests::{
        chat_body, drain, header, json_of, mock_app, post, sse_json, sse_payloads, CHAT,
    };
    use crate::{lock, MockProviderArgs, DEFAULT_EMBEDDING_DIM};

    #[test]
    fn base64_encoding() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
        }
        assert_eq!(base64_encode(&[0xff, 0xfe, 0xfd, 0x00]), "//79AA==");
        assert_eq!(base64_encode(&1.0f32.to_le_bytes()), "AACAPw==");
    }

    #[test]
    fn input_parsing() {
        assert_eq!(parse_inputs(&json!("x")), Some(vec![InputItem::Text("x")]));
        assert_eq!(
            parse_inputs(&json!(["a", "b"])),
            Some(vec![InputItem::Text("a"), InputItem::Text("b")])
        );
        assert_eq!(
            parse_inputs(&json!([1, 2, 3])),
            Some(vec![InputItem::Tokens(vec![1, 2, 3])])
        );
        assert_eq!(
            parse_inputs(&json!([[1, 2], [3]])),
            Some(vec![
                InputItem::Tokens(vec![1, 2]),
                InputItem::Tokens(vec![3])
            ])
        );
        for bad in [
            json!([]),
            json!(["a", 1]),
            json!([[1], "a"]),
            json!([[]]),
            json!(null),
            json!({"a": 1}),
            json!([1.5]),
        ] {
            assert_eq!(parse_inputs(&bad), None, "{bad}");
        }
        let too_many = Value::Array(vec![json!("x"); MAX_INPUTS + 1]);
        assert_eq!(parse_inputs(&too_many), None);
    }

    #[actix_web::test]
    async fn chat_completion_shape() {
        let (app, _) = mock_app!();
        let response = test::call_service(&app, post(CHAT, chat_body()).to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "content-type"), Some("application/json"));
        assert_eq!(
            header(&response, "x-ratelimit-limit-requests"),
            Some("10000")
        );
        assert_eq!(
            header(&response, "x-ratelimit-remaining-requests"),
            Some("9999")
        );
        assert!(header(&response, "x-request-id").is_some_and(|id| id.starts_with("req_")));
        assert!(
            header(&response, "openai-processing-ms").is_some_and(|ms| ms.parse::<u64>().is_ok())
        );

        let body = json_of(response).await;
        let id = body["id"].as_str().expect("id");
        assert!(id.starts_with("chatcmpl-") && id.len() > "chatcmpl-".len());
        assert_eq!(body["object"], "chat.completion");
        assert!(body["created"]
            .as_u64()
            .is_some_and(|created| created > 1_700_000_000));
        assert_eq!(body["model"], "mock-gpt");
        assert!(body["system_fingerprint"].is_string());
        assert_eq!(body["choices"].as_array().map(Vec::len), Some(1));
        let choice = &body["choices"][0];
        assert_eq!(choice["index"], 0);
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(choice["message"]["content"], DEFAULT_REPLY);
        assert!(choice["message"].get("tool_calls").is_none());
        assert_eq!(choice["finish_reason"], "stop");
        assert!(choice.get("logprobs").is_some_and(Value::is_null));
        assert_eq!(
            body["usage"],
            json!({
                "prompt_tokens": 6,
                "completion_tokens": 11,
                "total_tokens": 17,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0
                }
            })
        );
    }

    #[actix_web::test]
    async fn chat_n_max_tokens_and_mock_reply() {
        let (app, _) = mock_app!();
        let mut body = chat_body();
        body["n"] = json!(3);
        body["max_tokens"] = json!(4);
        let response = test::call_service(&app, post("/chat/completions", body).to_request()).await;
        let body = json_of(response).await;
        let choices = body["choices"].as_array().expect("choices");
        assert_eq!(choices.len(), 3);
        for (index, choice) in choices.iter().enumerate() {
            assert_eq!(choice["index"], index);
            assert_eq!(choice["message"]["content"], "Hello from the Tollgate");
            assert_eq!(choice["finish_reason"], "length");
        }
        assert_eq!(body["usage"]["completion_tokens"], 12);

        let mut body = chat_body();
        body["mock_reply"] = json!("Custom words here");
        body["max_completion_tokens"] = json!(3);
        body["max_tokens"] = json!(1);
        let response = test::call_service(&app, post(CHAT, body).to_request()).await;
        let body = json_of(response).await;
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "Custom words here"
        );
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert_eq!(body["usage"]["completion_tokens"], 3);
    }

    #[actix_web::test]
    async fn chat_tool_calls() {
        let (app, _) = mock_app!();
        let tools = json!([
            {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
            {"type": "function", "function": {"name": "get_time"}}
        ]);

        let mut body = chat_body();
        body["tools"] = tools.clone();
        body["tool_choice"] = json!("required");
        let body = json_of(test::call_service(&app, post(CHAT, body).to_request()).await).await;
        let choice = &body["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert!(choice["message"]["content"].is_null());
        let call = &choice["message"]["tool_calls"][0];
        assert!(call["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("call_")));
        assert_eq!(call["type"], "function");
        assert_eq!(
            call["function"],
            json!({"name": "get_weather", "arguments": "{}"})
        );

        let mut body = chat_body();
        body["tools"] = tools.clone();
        body["tool_choice"] = json!({"type": "function", "function": {"name": "get_time"}});
        let body = json_of(test::call_service(&app, post(CHAT, body).to_request()).await).await;
        assert_eq!(
            body["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
            "get_time"
        );

        for tool_choice in [json!("auto"), json!("none"), Value::Null] {
            let mut body = chat_body();
            body["tools"] = tools.clone();
            body["tool_choice"] = tool_choice;
            let body = json_of(test::call_service(&app, post(CHAT, body).to_request()).await).await;
            assert_eq!(body["choices"][0]["message"]["content"], DEFAULT_REPLY);
            assert_eq!(body["choices"][0]["finish_reason"], "stop");
        }
    }

    #[actix_web::test]
    async fn chat_stream_framing_without_usage() {
        let (app, _) = mock_app!();
        let mut body = chat_body();
        body["stream"] = json!(true);
        let response = test::call_service(&app, post(CHAT, body).to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header(&response, "content-type"),
            Some("text/event-stream; charset=utf-8")
        );
        assert_eq!(
            header(&response, "x-ratelimit-remaining-requests"),
            Some("9999")
        );
        let (bytes, errored) = drain(response.into_body()).await;
        assert!(!errored);
        let payloads = sse_payloads(&bytes);
        assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
        assert_eq!(payloads.iter().filter(|p| *p == "[DONE]").count(), 1);

        let chunks = sse_json(&payloads);
        assert_eq!(chunks.len(), 1 + 8 + 1);
        let id = &chunks[0]["id"];
        for chunk in &chunks {
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(&chunk["id"], id);
            assert_eq!(chunk["created"], chunks[0]["created"]);
            assert_eq!(chunk["model"], "mock-gpt");
            assert!(
                chunk.get("usage").is_none(),
                "no usage field unless asked: {chunk}"
            );
        }
        assert_eq!(
            chunks[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        assert!(chunks[0]["choices"][0]["finish_reason"].is_null());
        let content: String = chunks[1..9]
            .iter()
            .map(|chunk| {
                assert_eq!(
                    chunk["choices"][0]["delta"].as_object().map(Map::len),
                    Some(1)
                );
                chunk["choices"][0]["delta"]["content"]
                    .as_str()
                    .expect("content")
                    .to_owned()
            })
            .collect();
        assert_eq!(content, DEFAULT_REPLY);
        assert_eq!(chunks[9]["choices"][0]["delta"], json!({}));
        assert_eq!(chunks[9]["choices"][0]["finish_reason"], "stop");
    }

    #[actix_web::test]
    async fn chat_stream_usage_chunk_when_asked() {
        let (app, _) = mock_app!(MockProviderArgs {
            stream_chunks: 3,
            ..MockProviderArgs::default()
        });
        let mut body = chat_body();
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
        let response = test::call_service(&app, post(CHAT, body).to_request()).await;
        let (bytes, _) = drain(response.into_body()).await;
        let payloads = sse_payloads(&bytes);
        assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
        let chunks = sse_json(&payloads);
        assert_eq!(chunks.len(), 1 + 3 + 1 + 1);
        let (usage_chunk, others) = chunks.split_last().expect("chunks");
        assert_eq!(usage_chunk["choices"], json!([]));
        assert_eq!(usage_chunk["usage"]["prompt_tokens"], 6);
        assert_eq!(usage_chunk["usage"]["completion_tokens"], 11);
        assert_eq!(usage_chunk["usage"]["total_tokens"], 17);
        assert!(others
            .iter()
            .all(|chunk| chunk.get("usage").is_some_and(Value::is_null)));
        assert_eq!(
            others
                .last()
                .map(|chunk| &chunk["choices"][0]["finish_reason"]),
            Some(&json!("stop"))
        );

        // include_usage false: no usage chunk.
        let mut body = chat_body();
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": false});
        let response = test::call_service(&app, post(CHAT, body).to_request()).await;
        let (bytes, _) = drain(response.into_body()).await;
        let chunks = sse_json(&sse_payloads(&bytes));
        assert!(chunks
            .iter()
            .all(|chunk| !chunk["choices"].as_array().is_some_and(Vec::is_empty)));
    }

    #[actix_web::test]
    async fn chat_stream_n_choices_and_length() {
        let (app, _) = mock_app!();
        let mut body = chat_body();
        body["stream"] = json!(true);
        body["n"] = json!(2);
        body["max_tokens"] = json!(2);
        let response = test::call_service(&app, post(CHAT, body).to_request()).await;
        let (bytes, _) = drain(response.into_body()).await;
        let chunks = sse_json(&sse_payloads(&bytes));
        for index in 0..2 {
            let of_choice: Vec<&Value> = chunks
                .iter()
                .filter(|chunk| chunk["choices"][0]["index"] == index)
                .collect();
            let text: String = of_choice
                .iter()
                .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
                .collect();
            assert_eq!(text, "Hello from");
            assert_eq!(
                of_choice.last().map(|c| &c["choices"][0]["finish_reason"]),
                Some(&json!("length"))
            );
        }
    }

    #[actix_web::test]
    async fn chat_stream_tool_call() {
        let (app, _) = mock_app!();
        let mut body = chat_body();
        body["stream"] = json!(true);
        body["tools"] = json!([{"type": "function", "function": {"name": "lookup"}}]);
        body["tool_choice"] = json!("required");
        let response = test::call_service(&app, post(CHAT, body).to_request()).await;
        let (bytes, _) = drain(response.into_body()).await;
        let chunks = sse_json(&sse_payloads(&bytes));
        assert_eq!(chunks.len(), 3);
        let first = &chunks[0]["choices"][0]["delta"];
        assert_eq!(first["role"], "assistant");
        assert!(first["content"].is_null());
        assert_eq!(first["tool_calls"][0]["index"], 0);
        assert_eq!(first["tool_calls"][0]["type"], "function");
        assert_eq!(
            first["tool_calls"][0]["function"],
            json!({"name": "lookup", "arguments": ""})
        );
        assert!(first["tool_calls"][0]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("call_")));
        assert_eq!(
            chunks[1]["choices"][0]["delta"],
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})
        );
        assert_eq!(chunks[2]["choices"][0]["finish_reason"], "tool_calls");
    }

    #[actix_web::test]
    async fn chunk_delay_paces_the_stream() {
        let (app, _) = mock_app!(MockProviderArgs {
            chunk_delay_ms: 40,
            stream_chunks: 2,
            ..MockProviderArgs::default()
        });
        let mut body = chat_body();
        body["stream"] = json!(true);
        let started = Instant::now();
        let response = test::call_service(&app, post(CHAT, body).to_request()).await;
        assert!(
            started.elapsed() < Duration::from_millis(40),
            "head is not delayed by chunk pacing"
        );
        let (bytes, _) = drain(response.into_body()).await;
        // role, 2 content, finish, [DONE]: four pauses.
        assert_eq!(sse_payloads(&bytes).len(), 5);
        assert!(started.elapsed() >= Duration::from_millis(160));
    }

    #[actix_web::test]
    async fn text_completions() {
        let (app, _) = mock_app!();
        let body = json!({"model": "mock-gpt-instruct", "prompt": "Say hi", "max_tokens": 3});
        let response = test::call_service(&app, post("/v1/completions", body).to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body = json_of(response).await;
        assert!(body["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("cmpl-")));
        assert_eq!(body["object"], "text_completion");
        assert_eq!(body["model"], "mock-gpt-instruct");
        assert_eq!(
            body["choices"],
            json!([{"text": "Hello from the", "index": 0, "logprobs": null, "finish_reason": "length"}])
        );
        assert_eq!(
            body["usage"],
            json!({"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5})
        );

        let body = json!({"model": "m", "prompt": ["a", "b"], "n": 2});
        let body =
            json_of(test::call_service(&app, post("/completions", body).to_request()).await).await;
        assert_eq!(body["choices"].as_array().map(Vec::len), Some(4));

        let body = json!({
            "model": "mock-gpt-instruct",
            "prompt": "Say hi",
            "stream": true,
            "stream_options": {"include_usage": true}
        });
        let response = test::call_service(&app, post("/v1/completions", body).to_request()).await;
        let (bytes, _) = drain(response.into_body()).await;
        let payloads = sse_payloads(&bytes);
        assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
        let chunks = sse_json(&payloads);
        assert_eq!(chunks.len(), 8 + 1 + 1);
        assert!(chunks
            .iter()
            .all(|chunk| chunk["object"] == "text_completion"));
        let text: String = chunks[..8]
            .iter()
            .map(|chunk| {
                chunk["choices"][0]["text"]
                    .as_str()
                    .expect("text")
                    .to_owned()
            })
            .collect();
        assert_eq!(text, DEFAULT_REPLY);
        assert_eq!(chunks[8]["choices"][0]["finish_reason"], "stop");
        assert_eq!(chunks[9]["choices"], json!([]));
        assert_eq!(chunks[9]["usage"]["completion_tokens"], 11);
    }

    #[actix_web::test]
    async fn embeddings_shape_and_encoding() {
        let (app, _) = mock_app!();
        let body = json!({"model": "mock-embedding", "input": ["hello", "world!"]});
        let response = test::call_service(&app, post("/v1/embeddings", body).to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body = json_of(response).await;
        assert_eq!(body["object"], "list");
        assert_eq!(body["model"], "mock-embedding");
        assert_eq!(
            body["usage"],
            json!({"prompt_tokens": 4, "total_tokens": 4})
        ); // 2 + 2
        let data = body["data"].as_array().expect("data");
        assert_eq!(data.len(), 2);
        for (index, item) in data.iter().enumerate() {
            assert_eq!(item["object"], "embedding");
            assert_eq!(item["index"], index);
            assert_eq!(
                item["embedding"].as_array().map(Vec::len),
                Some(DEFAULT_EMBEDDING_DIM)
            );
        }
        let expected = embedding_vector(&InputItem::Text("hello"), DEFAULT_EMBEDDING_DIM);
        let received: Vec<f32> = data[0]["embedding"]
            .as_array()
            .expect("floats")
            .iter()
            .map(|x| x.as_f64().expect("float") as f32)
            .collect();
        assert!(expected
            .iter()
            .zip(&received)
            .all(|(a, b)| (a - b).abs() < 1e-6));

        let body =
            json!({"model": "e", "input": "hello", "dimensions": 5, "encoding_format": "base64"});
        let body =
            json_of(test::call_service(&app, post("/embeddings", body).to_request()).await).await;
        let bytes: Vec<u8> = embedding_vector(&InputItem::Text("hello"), 5)
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(body["data"][0]["embedding"], base64_encode(&bytes));

        let body = json!({"model": "e", "input": [[1, 2, 3], [4]]});
        let body =
            json_of(test::call_service(&app, post("/embeddings", body).to_request()).await).await;
        assert_eq!(body["data"].as_array().map(Vec::len), Some(2));
        assert_eq!(body["usage"]["prompt_tokens"], 4);

        let (app, _) = mock_app!(MockProviderArgs {
            embedding_dim: 16,
            ..MockProviderArgs::default()
        });
        let body = json!({"model": "e", "input": [1, 2, 3]});
        let body =
            json_of(test::call_service(&app, post("/embeddings", body).to_request()).await).await;
        assert_eq!(
            body["data"][0]["embedding"].as_array().map(Vec::len),
            Some(16)
        );

        for (bad, param) in [
            (json!({"model": "e"}), "input"),
            (json!({"model": "e", "input": []}), "input"),
            (json!({"model": "e", "input": ["a", 1]}), "input"),
            (
                json!({"model": "e", "input": "a", "dimensions": 0}),
                "dimensions",
            ),
            (
                json!({"model": "e", "input": "a", "encoding_format": "hex"}),
                "encoding_format",
            ),
        ] {
            let response =
                test::call_service(&app, post("/embeddings", bad.clone()).to_request()).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
            let body = json_of(response).await;
            assert_eq!(body["error"]["type"], "invalid_request_error");
            assert_eq!(body["error"]["param"], param);
        }
    }

    #[actix_web::test]
    async fn models_and_health() {
        let (app, _) = mock_app!();
        for path in ["/models", "/v1/models"] {
            let response =
                test::call_service(&app, TestRequest::get().uri(path).to_request()).await;
            assert_eq!(response.status(), StatusCode::OK);
            let body = json_of(response).await;
            assert_eq!(body["object"], "list");
            assert_eq!(
                body["data"][0],
                json!({"id": "mock-gpt", "object": "model", "created": 1_677_610_602, "owned_by": "tollgate-mock"})
            );
            assert_eq!(body["data"].as_array().map(Vec::len), Some(MODEL_IDS.len()));
        }
        let response = test::call_service(
            &app,
            TestRequest::get()
                .uri("/v1/models/mock-gpt-mini")
                .to_request(),
        )
        .await;
        assert_eq!(json_of(response).await["id"], "mock-gpt-mini");
        let response = test::call_service(
            &app,
            TestRequest::get().uri("/v1/models/gpt-9").to_request(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(json_of(response).await["error"]["code"], "model_not_found");

        for path in ["/health", "/v1/health"] {
            let response =
                test::call_service(&app, TestRequest::get().uri(path).to_request()).await;
            assert_eq!(json_of(response).await, json!({"status": "ok"}));
        }
    }

    #[actix_web::test]
    async fn azure_deployment_routes() {
        let (app, state) = mock_app!();
        let body = json!({"messages": [{"role": "user", "content": "hi"}]});
        let request = post(
            "/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21",
            body,
        )
        .to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(json_of(response).await["model"], "my-gpt");

        let body = json!({"input": "hi"});
        let request = post(
            "/openai/deployments/emb/embeddings?api-version=2024-10-21",
            body,
        )
        .to_request();
        assert_eq!(
            test::call_service(&app, request).await.status(),
            StatusCode::OK
        );
        let body = json!({"prompt": "hi"});
        let request = post("/openai/deployments/inst/completions", body).to_request();
        assert_eq!(
            test::call_service(&app, request).await.status(),
            StatusCode::OK
        );

        let stats = state.stats_json();
        assert_eq!(stats["by_model"], json!({"emb": 1, "inst": 1, "my-gpt": 1}));
        let last = lock(&state.last_request)
            .clone()
            .expect("captured")
            .to_json();
        assert_eq!(last["path"], "/openai/deployments/inst/completions");
    }

    #[actix_web::test]
    async fn bad_input_is_rejected_in_openai_shape() {
        let (app, _) = mock_app!();
        let request = TestRequest::post()
            .uri(CHAT)
            .insert_header(ContentType::json())
            .set_payload("{not json")
            .to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = json_of(response).await;
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("JSON")));

        let cases = [
            (
                json!({"messages": [{"role": "user", "content": "x"}]}),
                "model",
            ),
            (json!({"model": "mock-gpt"}), "messages"),
            (json!({"model": "mock-gpt", "messages": []}), "messages"),
            (json!({"model": "mock-gpt", "messages": "hi"}), "messages"),
            (
                json!({"model": "mock-gpt", "messages": [{"content": "x"}], "n": 0}),
                "n",
            ),
            (
                json!({"model": "mock-gpt", "messages": [{"content": "x"}], "max_tokens": "ten"}),
                "max_tokens",
            ),
            (
                json!({"model": "mock-gpt", "messages": [{"content": "x"}], "mock_reply": 42}),
                "mock_reply",
            ),
        ];
        for (body, param) in cases {
            let response = test::call_service(&app, post(CHAT, body.clone()).to_request()).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
            let error = json_of(response).await;
            assert_eq!(error["error"]["type"], "invalid_request_error", "{body}");
            assert_eq!(error["error"]["param"], param, "{body}");
        }
        let response = test::call_service(&app, post(CHAT, json!([1, 2])).to_request()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    /// The serial an id names (`<prefix><serial>-<random>`).
    fn serial_of(id: &Value, prefix: &str) -> u64 {
        let id = id.as_str().expect("id");
        let rest = id.strip_prefix(prefix).expect("id prefix");
        let (serial, random) = rest.split_once('-').expect("serial, then random part");
        assert_eq!(random.len(), 29, "{id}");
        serial.parse().expect("numeric serial")
    }

    fn serial_header<B>(response: &actix_web::dev::ServiceResponse<B>) -> u64 {
        header(response, SERIAL_HEADER)
            .and_then(|serial| serial.parse().ok())
            .expect("serial header")
    }

    /// The text of a streamed reply's first choice, its id, and whether it ended with `[DONE]`.
    async fn streamed<B: actix_web::body::MessageBody>(
        response: actix_web::dev::ServiceResponse<B>,
        field: &str,
    ) -> (String, Value, bool) {
        let (bytes, errored) = drain(response.into_body()).await;
        assert!(!errored);
        let payloads = sse_payloads(&bytes);
        let done = payloads.last().is_some_and(|p| p == "[DONE]");
        let chunks = sse_json(&payloads);
        let text = chunks
            .iter()
            .filter_map(|chunk| chunk["choices"][0].pointer(field))
            .filter_map(Value::as_str)
            .collect();
        (text, chunks[0]["id"].clone(), done)
    }

    #[actix_web::test]
    async fn every_answer_has_its_own_serial_and_the_text_stays_as_it_was() {
        let (app, _) = mock_app!();
        let first = test::call_service(&app, post(CHAT, chat_body()).to_request()).await;
        let first_header = serial_header(&first);
        let first = json_of(first).await;
        let second =
            json_of(test::call_service(&app, post(CHAT, chat_body()).to_request()).await).await;
        let (a, b) = (
            serial_of(&first["id"], "chatcmpl-"),
            serial_of(&second["id"], "chatcmpl-"),
        );
        assert_eq!(a, first_header);
        assert!(a >= 1 && b > a, "serials {a} then {b}");
        assert_eq!(first["choices"][0]["message"]["content"], DEFAULT_REPLY);
        assert_eq!(second["choices"][0]["message"]["content"], DEFAULT_REPLY);

        let body = json!({"model": "mock-gpt-instruct", "prompt": "Say hi"});
        let text =
            json_of(test::call_service(&app, post("/v1/completions", body).to_request()).await)
                .await;
        assert!(serial_of(&text["id"], "cmpl-") > b);
        assert_eq!(text["choices"][0]["text"], DEFAULT_REPLY);

        let mut body = chat_body();
        body["stream"] = json!(true);
        let (content, id, done) = streamed(
            test::call_service(&app, post(CHAT, body).to_request()).await,
            "/delta/content",
        )
        .await;
        assert!(done);
        assert!(serial_of(&id, "chatcmpl-") > b);
        assert_eq!(content, DEFAULT_REPLY);

        let body = json!({"model": "mock-embedding", "input": "hi"});
        let embedding = test::call_service(&app, post("/v1/embeddings", body).to_request()).await;
        assert!(serial_header(&embedding) > b);
    }

    #[actix_web::test]
    async fn serial_replies_end_the_text_with_the_serial() {
        let (app, _) = mock_app!(MockProviderArgs {
            serial_replies: true,
            ..MockProviderArgs::default()
        });
        let suffixed = |serial: u64| format!("{DEFAULT_REPLY} (reply {serial})");

        let chat =
            json_of(test::call_service(&app, post(CHAT, chat_body()).to_request()).await).await;
        let serial = serial_of(&chat["id"], "chatcmpl-");
        assert_eq!(chat["choices"][0]["message"]["content"], suffixed(serial));
        let again =
            json_of(test::call_service(&app, post(CHAT, chat_body()).to_request()).await).await;
        let next = serial_of(&again["id"], "chatcmpl-");
        assert!(next > serial);
        assert_eq!(again["choices"][0]["message"]["content"], suffixed(next));

        let mut body = chat_body();
        body["stream"] = json!(true);
        let (content, id, done) = streamed(
            test::call_service(&app, post(CHAT, body).to_request()).await,
            "/delta/content",
        )
        .await;
        assert!(done);
        assert_eq!(content, suffixed(serial_of(&id, "chatcmpl-")));

        let body = json!({"model": "mock-gpt-instruct", "prompt": "Say hi"});
        let text =
            json_of(test::call_service(&app, post("/v1/completions", body).to_request()).await)
                .await;
        assert_eq!(
            text["choices"][0]["text"],
            suffixed(serial_of(&text["id"], "cmpl-"))
        );
        let body = json!({"model": "mock-gpt-instruct", "prompt": "Say hi", "stream": true});
        let (streamed_text, id, done) = streamed(
            test::call_service(&app, post("/v1/completions", body).to_request()).await,
            "/text",
        )
        .await;
        assert!(done);
        assert_eq!(streamed_text, suffixed(serial_of(&id, "cmpl-")));

        // A tool call has no text to mark; its id still names the serial.
        let mut body = chat_body();
        body["tools"] = json!([{"type": "function", "function": {"name": "lookup"}}]);
        body["tool_choice"] = json!("required");
        let tool = json_of(test::call_service(&app, post(CHAT, body).to_request()).await).await;
        assert!(serial_of(&tool["id"], "chatcmpl-") > next);
        assert!(tool["choices"][0]["message"]["content"].is_null());
    }

    #[test]
    fn serial_replies_is_a_flag_and_an_env_switch() {
        use clap::{Args as _, Parser};

        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: MockProviderArgs,
        }
        let parse = |argv: &[&str]| Cli::try_parse_from(argv).expect("parses").args;
        assert!(!parse(&["mock"]).serial_replies);
        assert!(parse(&["mock", "--serial-replies"]).serial_replies);

        // The switch reads TOLLGATE_MOCK_SERIAL_REPLIES, where `1` and `0` are understood
        // (checked on the declaration: setting the variable would race other tests).
        let command = MockProviderArgs::augment_args(clap::Command::new("mock"));
        let arg = command
            .get_arguments()
            .find(|arg| arg.get_id() == "serial_replies")
            .expect("serial_replies argument");
        assert_eq!(
            arg.get_env(),
            Some(std::ffi::OsStr::new("TOLLGATE_MOCK_SERIAL_REPLIES"))
        );
        let understood = |raw: &str| {
            arg.get_value_parser()
                .possible_values()
                .is_some_and(|mut values| values.any(|value| value.matches(raw, true)))
        };
        assert!(understood("1") && understood("0") && understood("true"));
        assert!(!understood("maybe"));
    }
}
