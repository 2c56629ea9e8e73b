//! The mock's AWS Bedrock runtime: `POST /model/{modelId}/converse`, `/converse-stream` (binary
//! `application/vnd.amazon.eventstream` frames) and `/invoke` (Titan and Cohere embeddings), with
//! Bedrock's error shape (`{"message"}` plus `x-amzn-ErrorType`).
//!
//! Authentication is checked as Bedrock does: either a Bedrock API key (`Authorization: Bearer`,
//! compared with `--api-key` when set) or a SigV4 signature, which is recomputed with the secret of
//! AWS's documentation example credentials ([`ACCESS_KEY_ID`] / [`SECRET_ACCESS_KEY`]) over the
//! request as received: a wrong canonical URI (the double encoding of the model id), signed
//! headers or body is a 403 `InvalidSignatureException`.
//!
//! Failure injection is the mock's usual one: the `x-mock-fail` header, a `mock-fail-<mode>` model
//! id, or `mock_fail` / `mock_reply` / `mock_latency_ms` inside `additionalModelRequestFields`
//! (where the gateway forwards fields it does not know).

use actix_web::{
    http::{header::HeaderValue, StatusCode},
    web::{self, Bytes},
    HttpRequest, HttpResponse,
};
use futures_util::stream::{self, StreamExt as _};
use serde_json::{json, Map, Value};

use crate::openai::{InputItem, Reply};
use crate::shared::{
    chat_prompt_tokens, embedding_vector, random_id, split_chunks, success_builder,
    tokens_for_chars,
};
use crate::{
    flush_point, header_text, pause, truncated_body, Controls, Endpoint, FailureMode, MockState,
    CUT_AFTER_PARTS, HANG_DURATION, SLOW_DURATION, TOOL_ARGUMENTS,
};
use tollgate_wire::{eventstream, sigv4};

/// The access key id the mock accepts for SigV4 (AWS's documentation example).
pub const ACCESS_KEY_ID: &str = "AKIDEXAMPLE";
/// Its secret, used to recompute signatures.
pub const SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// Registers the Bedrock routes.
pub(super) fn configure(cfg: &mut web::ServiceConfig, state: &web::Data<MockState>) {
    cfg.service(
        web::resource("/model/{model_id}/{action}")
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(super::MAX_BODY_BYTES))
            .route(web::post().to(handle)),
    );
}

/// A Bedrock error: status, `x-amzn-ErrorType` and message.
pub(super) struct AwsError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    retry_after: Option<String>,
}

impl AwsError {
    pub(super) fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    pub(super) fn validation(message: impl Into<String>) -> Self {
        Self::new(400, "ValidationException", message)
    }

    pub(super) fn injected(status: StatusCode) -> Self {
        let kind = match status.as_u16() {
            400 => "ValidationException",
            401 | 403 => "AccessDeniedException",
            404 => "ResourceNotFoundException",
            408 => "ModelTimeoutException",
            424 => "ModelErrorException",
            429 => "ThrottlingException",
            503 => "ServiceUnavailableException",
            _ => "InternalServerException",
        };
        Self::new(
            status.as_u16(),
            kind,
            format!("Mock provider injected {} error", status.as_u16()),
        )
    }

    pub(super) fn response(&self) -> HttpResponse {
        let mut b = HttpResponse::build(self.status);
        b.insert_header((
            "x-amzn-errortype",
            format!(
                "{}:http://internal.amazon.com/coral/com.amazon.bedrock/",
                self.kind
            ),
        ));
        if let Some(r) = &self.retry_after {
            b.insert_header(("retry-after", r.as_str()));
        }
        b.json(json!({ "message": self.message }))
    }
}

/// Percent-decode a path segment.
pub(super) fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(req: HttpRequest, body: Bytes, state: web::Data<MockState>) -> HttpResponse {
    // The raw path: `/model/<encoded id>/<action>`; an ARN's `%2F` stays inside the segment.
    let raw_path = req.uri().path().to_string();
    let mut parts = raw_path.trim_start_matches('/').splitn(3, '/');
    let (_, segment, action) = (parts.next(), parts.next(), parts.next());
    let model = decode(segment.unwrap_or_default());
    let action = action.unwrap_or_default().to_string();
    let endpoint = if action != "invoke" {
        Endpoint::Chat
    } else if is_image_model(&model) {
        Endpoint::ImageGenerations
    } else {
        Endpoint::Embeddings
    };
    state.record(endpoint, Some(&model), &req, &body);
    let mut response = match serve(&req, &body, &state, &model, &action).await {
        Ok(r) => r,
        Err(e) => e.response(),
    };
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        response.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("x-amzn-requestid"),
            v,
        );
    }
    response
}

async fn serve(
    req: &HttpRequest,
    body: &Bytes,
    state: &MockState,
    model: &str,
    action: &str,
) -> Result<HttpResponse, AwsError> {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let extras = parsed
        .as_ref()
        .and_then(|b| b.get("additionalModelRequestFields"))
        .and_then(Value::as_object);
    let controls = Controls::extract(req.headers(), extras, Some(model))
        .map_err(|e| AwsError::validation(e.message.to_string()))?;
    pause(controls.latency.unwrap_or(state.latency)).await;
    authenticate(req, body, state, "bedrock")?;

    let streaming = action == "converse-stream";
    let mut cut = false;
    let mut stream_exception = false;
    if let Some(mode) = controls.failure {
        match mode {
            FailureMode::Hang => pause(HANG_DURATION).await,
            FailureMode::Slow => pause(SLOW_DURATION).await,
            FailureMode::Cut => cut = true,
            FailureMode::Status(status) => return Err(AwsError::injected(status)),
            FailureMode::RateLimit if streaming => stream_exception = true,
            FailureMode::RateLimit => {
                return Err(AwsError {
                    retry_after: controls.retry_after,
                    ..AwsError::new(
                        429,
                        "ThrottlingException",
                        "Too many requests, please wait before trying again.",
                    )
                })
            }
            FailureMode::ContextLength => {
                return Err(AwsError::validation(
                    "Input is too long for requested model.",
                ))
            }
            // Bedrock's guardrails answer 200 with stopReason guardrail_intervened.
            FailureMode::ContentPolicy => {}
        }
    }
    let guardrail = controls.failure == Some(FailureMode::ContentPolicy);
    let body = parsed.as_ref().and_then(Value::as_object).ok_or_else(|| {
        AwsError::validation("Malformed input request, please reformat your input and try again.")
    })?;
    match action {
        "converse" | "converse-stream" => {
            converse(body, state, streaming, cut, stream_exception, guardrail)
        }
        "invoke" => invoke(model, body, state, cut),
        other => Err(AwsError::new(
            404,
            "UnknownOperationException",
            format!("Unknown operation {other}"),
        )),
    }
}

/// Bearer (Bedrock API key) or SigV4 scoped to `service`, as AWS checks them.
pub(super) fn authenticate(
    req: &HttpRequest,
    body: &Bytes,
    state: &MockState,
    service: &str,
) -> Result<(), AwsError> {
    let denied = |m: &str| AwsError::new(403, "UnrecognizedClientException", m);
    let Some(auth) = header_text(req.headers(), "authorization") else {
        return Err(AwsError::new(
            403,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    if let Some(token) = super::bearer_token(auth) {
        return match state.api_key.as_deref() {
            Some(expected) if expected != token => Err(denied(
                "Invalid API Key format: Must start with pre-defined prefix",
            )),
            _ => Ok(()),
        };
    }
    let sig = sigv4::parse_authorization(auth).ok_or_else(|| {
        AwsError::new(
            400,
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.",
        )
    })?;
    let incomplete = |m: String| AwsError::new(400, "IncompleteSignatureException", m);
    if sig.service != service {
        return Err(incomplete(format!(
            "Credential should be scoped to correct service: '{service}'. (got '{}')",
            sig.service
        )));
    }
    for needed in ["host", "x-amz-date"] {
        if !sig.signed_headers.iter().any(|h| h == needed) {
            return Err(incomplete(format!(
                "'{needed}' must be a 'SignedHeader' in the AWS Authorization."
            )));
        }
    }
    if req.headers().contains_key("x-amz-security-token")
        && !sig
            .signed_headers
            .iter()
            .any(|h| h == "x-amz-security-token")
    {
        return Err(incomplete(
            "'x-amz-security-token' must be a 'SignedHeader' when present.".into(),
        ));
    }
    let amz_date = header_text(req.headers(), "x-amz-date").unwrap_or_default();
    if !amz_date.starts_with(&sig.date) || amz_date.len() != 16 {
        return Err(AwsError::new(
            403,
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP",
        ));
    }
    if sig.access_key_id != ACCESS_KEY_ID {
        return Err(denied(
            "The security token included in the request is invalid.",
        ));
    }
    let headers = crate::shared::sigv4_signed_headers(req, &sig.signed_headers)
        .map_err(|name| incomplete(format!("signed header '{name}' is missing")))?;
    let payload_hash = sigv4::sha256_hex(body);
    let expected = sigv4::sign(
        &sigv4::Request {
            method: req.method().as_str(),
            path: req.uri().path(),
            query: req.uri().query().unwrap_or(""),
            headers: &headers,
            payload_hash: &payload_hash,
        },
        SECRET_ACCESS_KEY,
        amz_date,
        &sig.region,
        service,
    );
    if expected.signature != sig.signature {
        return Err(AwsError::new(
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        ));
    }
    Ok(())
}

/// Random-length padding, as Bedrock adds to every stream event.
pub(super) fn padding() -> String {
    let n = 1 + (rand::random::<u8>() % 40) as usize;
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[..n].to_string()
}

fn converse(
    body: &Map<String, Value>,
    state: &MockState,
    streaming: bool,
    cut: bool,
    stream_exception: bool,
    guardrail: bool,
) -> Result<HttpResponse, AwsError> {
    let messages = match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        _ => {
            return Err(AwsError::validation(
                "A conversation must start with a user message. Try again with a conversation that starts with a user message.",
            ))
        }
    };
    if messages.first().and_then(|m| m.get("role")) != Some(&json!("user")) {
        return Err(AwsError::validation(
            "A conversation must start with a user message. Try again with a conversation that starts with a user message.",
        ));
    }
    for m in messages {
        let has_tool_blocks = m["content"].as_array().is_some_and(|c| {
            c.iter()
                .any(|b| b.get("toolUse").is_some() || b.get("toolResult").is_some())
        });
        if has_tool_blocks && body.get("toolConfig").is_none() {
            return Err(AwsError::validation(
                "The toolConfig field must be defined when using toolUse and toolResult content blocks.",
            ));
        }
    }
    let extras = body
        .get("additionalModelRequestFields")
        .and_then(Value::as_object);
    // The mock's reply settings in OpenAI terms, for the shared reply builder.
    let mut settings = Map::new();
    if let Some(r) = extras.and_then(|e| e.get(super::REPLY_FIELD)) {
        settings.insert(super::REPLY_FIELD.into(), r.clone());
    }
    if let Some(n) = body.get("inferenceConfig").and_then(|c| c.get("maxTokens")) {
        settings.insert("max_tokens".into(), n.clone());
    }
    let forced = forced_bedrock_tool(body);
    let reply = match (&forced, guardrail) {
        (_, true) => Reply::Text {
            text: "Sorry, the model cannot answer this question.".into(),
            finish_reason: "content_filter",
        },
        (Some(name), false) => Reply::Tool { name: name.clone() },
        (None, false) => {
            Reply::text(&settings).map_err(|e| AwsError::validation(e.message.to_string()))?
        }
    };
    let system = body.get("system").and_then(Value::as_array);
    let mut all = messages.clone();
    if let Some(s) = system {
        all.push(json!({"content": s}));
    }
    let mut input_tokens = chat_prompt_tokens(&all);
    let cached = if has_cache_point(body) {
        let c = input_tokens / 2;
        input_tokens -= c;
        c
    } else {
        0
    };
    let output_tokens = reply.completion_tokens();
    let mut usage = json!({
        "inputTokens": input_tokens,
        "outputTokens": output_tokens,
        "totalTokens": input_tokens + cached + output_tokens,
    });
    if cached > 0 {
        usage["cacheReadInputTokens"] = json!(cached);
        usage["cacheWriteInputTokens"] = json!(0);
    }
    let stop_reason = match &reply {
        Reply::Tool { .. } => "tool_use",
        Reply::Text {
            finish_reason: "length",
            ..
        } => "max_tokens",
        Reply::Text {
            finish_reason: "content_filter",
            ..
        } => "guardrail_intervened",
        Reply::Text { .. } => "end_turn",
    };
    let tool_use_id = random_id("tooluse_", 22);

    if !streaming {
        let content = match &reply {
            Reply::Text { text, .. } => json!([{ "text": text }]),
            Reply::Tool { name } => json!([{"toolUse": {
                "toolUseId": tool_use_id,
                "name": name,
                "input": serde_json::from_str::<Value>(TOOL_ARGUMENTS).unwrap_or_else(|_| json!({})),
            }}]),
        };
        let out = json!({
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop_reason,
            "usage": usage,
            "metrics": {"latencyMs": 1},
        });
        let bytes = serde_json::to_vec(&out).unwrap_or_default();
        let mut b = success_builder();
        b.content_type("application/json");
        return Ok(if cut {
            b.body(truncated_body(bytes))
        } else {
            b.body(bytes)
        });
    }

    // The event-stream frames of the reply, in order.
    let event = |kind: &str, mut payload: Value| -> Bytes {
        payload["p"] = json!(padding());
        Bytes::from(eventstream::encode(
            &[
                (":event-type", kind),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            payload.to_string().as_bytes(),
        ))
    };
    let mut frames = vec![event("messageStart", json!({"role": "assistant"}))];
    if stream_exception {
        frames.push(Bytes::from(eventstream::encode(
            &[
                (":exception-type", "throttlingException"),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            json!({"message": "Too many requests, please wait before trying again."})
                .to_string()
                .as_bytes(),
        )));
    } else {
        match &reply {
            Reply::Text { text, .. } => {
                for part in split_chunks(text, state.stream_chunks) {
                    frames.push(event(
                        "contentBlockDelta",
                        json!({"contentBlockIndex": 0, "delta": {"text": part}}),
                    ));
                }
                frames.push(event("contentBlockStop", json!({"contentBlockIndex": 0})));
            }
            Reply::Tool { name } => {
                frames.push(event(
                    "contentBlockStart",
                    json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": tool_use_id, "name": name}}}),
                ));
                frames.push(event(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": TOOL_ARGUMENTS}}}),
                ));
                frames.push(event("contentBlockStop", json!({"contentBlockIndex": 0})));
            }
        }
        frames.push(event("messageStop", json!({ "stopReason": stop_reason })));
        frames.push(event(
            "metadata",
            json!({"usage": usage, "metrics": {"latencyMs": 1}}),
        ));
    }
    if cut {
        frames.truncate(CUT_AFTER_PARTS + 1);
    }
    // Each frame goes out in two pieces, so that clients must reassemble frames across reads.
    let pieces: Vec<Bytes> = frames
        .into_iter()
        .flat_map(|f| {
            let half = f.len() / 2;
            [f.slice(..half), f.slice(half..)]
        })
        .collect();
    let delay = state.chunk_delay;
    let body = stream::iter(pieces.into_iter().enumerate())
        .then(move |(i, piece)| async move {
            if i > 0 && i % 2 == 0 {
                pause(delay).await;
            }
            Ok::<_, std::io::Error>(piece)
        })
        .chain(stream::iter(cut.then_some(())).then(|()| async {
            flush_point().await;
            Err(super::cut_error())
        }));
    Ok(success_builder()
        .content_type("application/vnd.amazon.eventstream")
        .streaming(body))
}

/// The tool Bedrock would be forced to call: `toolChoice` `any` (first tool) or `tool`.
fn forced_bedrock_tool(body: &Map<String, Value>) -> Option<String> {
    let config = body.get("toolConfig")?;
    let tools = config.get("tools")?.as_array()?;
    let choice = config.get("toolChoice")?;
    if let Some(name) = choice
        .get("tool")
        .and_then(|t| t.get("name"))
        .and_then(Value::as_str)
    {
        return Some(name.to_string());
    }
    choice.get("any")?;
    tools
        .first()?
        .get("toolSpec")?
        .get("name")?
        .as_str()
        .map(str::to_string)
}

fn has_cache_point(body: &Map<String, Value>) -> bool {
    let blocks = |v: Option<&Value>| {
        v.and_then(Value::as_array)
            .is_some_and(|b| b.iter().any(|x| x.get("cachePoint").is_some()))
    };
    blocks(body.get("system"))
        || body
            .get("messages")
            .and_then(Value::as_array)
            .is_some_and(|m| m.iter().any(|m| blocks(m.get("content"))))
}

/// Bedrock's image models: Stability's and Amazon's (Titan Image Generator, Nova Canvas).
fn is_image_model(model: &str) -> bool {
    let id = model
        .split_once('.')
        .filter(|(p, _)| matches!(*p, "us" | "eu" | "apac" | "global"))
        .map_or(model, |(_, rest)| rest);
    id.starts_with("stability.")
        || id.starts_with("amazon.titan-image")
        || id.starts_with("amazon.nova-canvas")
}

/// An image model's `InvokeModel` answer, checked as each family's API takes its body:
/// Stable Diffusion XL (`text_prompts` → `artifacts`), Stability's current models (`prompt` →
/// `images`, one per call), Titan / Nova Canvas (`TEXT_IMAGE` → `images`).
fn image(model: &str, body: &Map<String, Value>) -> Result<Value, AwsError> {
    let picture = |text: &str, i: u64| {
        let seed = crate::shared::fnv1a(crate::shared::FNV_OFFSET, text.as_bytes()) ^ i;
        crate::openai::base64_encode(&seed.to_le_bytes().repeat(4))
    };
    let id = model.trim_start_matches("us.").trim_start_matches("eu.");
    if id.starts_with("stability.stable-diffusion-xl") {
        let text = body
            .get("text_prompts")
            .and_then(Value::as_array)
            .and_then(|p| p.first())
            .and_then(|p| p.get("text"))
            .and_then(Value::as_str)
            .ok_or_else(|| AwsError::validation("Malformed input request: required key [text_prompts] not found, please reformat your input and try again."))?;
        let samples = body.get("samples").and_then(Value::as_u64).unwrap_or(1);
        let artifacts: Vec<Value> = (0..samples)
            .map(|i| json!({"base64": picture(text, i), "seed": i, "finishReason": "SUCCESS"}))
            .collect();
        Ok(json!({"result": "success", "artifacts": artifacts}))
    } else if id.starts_with("stability.") {
        let text = body
            .get("prompt")
            .and_then(Value::as_str)
            .ok_or_else(|| AwsError::validation("Malformed input request: #: required key [prompt] not found, please reformat your input and try again."))?;
        if body.contains_key("samples") || body.contains_key("text_prompts") {
            return Err(AwsError::validation("Malformed input request: #: extraneous key [samples] is not permitted, please reformat your input and try again."));
        }
        Ok(json!({"images": [picture(text, 0)], "seeds": [0], "finish_reasons": [null]}))
    } else {
        if body.get("taskType").and_then(Value::as_str) != Some("TEXT_IMAGE") {
            return Err(AwsError::validation("Malformed input request: #/taskType: TEXT_IMAGE is expected, please reformat your input and try again."));
        }
        let text = body
            .get("textToImageParams")
            .and_then(|p| p.get("text"))
            .and_then(Value::as_str)
            .ok_or_else(|| AwsError::validation("Malformed input request: #/textToImageParams: required key [text] not found, please reformat your input and try again."))?;
        let count = body
            .get("imageGenerationConfig")
            .and_then(|c| c.get("numberOfImages"))
            .and_then(Value::as_u64)
            .unwrap_or(1);
        if !(1..=5).contains(&count) {
            return Err(AwsError::validation("Malformed input request: #/imageGenerationConfig/numberOfImages: must be from 1 to 5"));
        }
        let images: Vec<String> = (0..count).map(|i| picture(text, i)).collect();
        Ok(json!({"images": images, "error": null}))
    }
}

fn invoke(
    model: &str,
    body: &Map<String, Value>,
    state: &MockState,
    cut: bool,
) -> Result<HttpResponse, AwsError> {
    let out = if model.starts_with("amazon.titan-embed") {
        let text = body
            .get("inputText")
            .and_then(Value::as_str)
            .ok_or_else(|| AwsError::validation("Malformed input request: required key [inputText] not found, please reformat your input and try again."))?;
        let dim = body
            .get("dimensions")
            .and_then(Value::as_u64)
            .map_or(state.embedding_dim, |d| d as usize);
        if !matches!(dim, 1..=8192) {
            return Err(AwsError::validation(
                "Malformed input request: dimensions must be 256, 512 or 1024",
            ));
        }
        json!({
            "embedding": embedding_vector(&InputItem::Text(text), dim),
            "inputTextTokenCount": tokens_for_chars(text.chars().count()),
        })
    } else if model.starts_with("cohere.embed") {
        let texts: Vec<&str> = body
            .get("texts")
            .and_then(Value::as_array)
            .map(|t| t.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if texts.is_empty() || body.get("input_type").and_then(Value::as_str).is_none() {
            return Err(AwsError::validation("Malformed input request: #: required key [input_type] not found or texts is empty, please reformat your input and try again."));
        }
        json!({
            "embeddings": texts.iter().map(|t| embedding_vector(&InputItem::Text(t), state.embedding_dim)).collect::<Vec<_>>(),
            "id": uuid::Uuid::new_v4().to_string(),
            "response_type": "embeddings_floats",
            "texts": texts,
        })
    } else if is_image_model(model) {
        image(model, body)?
    } else {
        return Err(AwsError::validation(format!(
            "The provided model identifier is invalid: {model}"
        )));
    };
    let bytes = serde_json::to_vec(&out).unwrap_or_default();
    let mut b = success_builder();
    b.content_type("application/json");
    Ok(if cut {
        b.body(truncated_body(bytes))
    } else {
        b.body(bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(
            decode("anthropic.claude-3-5-sonnet-20240620-v1%3A0"),
            "anthropic.claude-3-5-sonnet-20240620-v1:0"
        );
        assert_eq!(decode("arn%3Aaws%2Fx%2"), "arn:aws/x%2");
    }

    /// A request signed over `canonical_path`, sent to `/model/a%3A0/converse`.
    fn signed(canonical_path: &str, secret: &str) -> (HttpRequest, Bytes) {
        let body = Bytes::from_static(b"{}");
        let date = "20240101T000000Z";
        let headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("host".to_string(), "localhost".to_string()),
            ("x-amz-date".to_string(), date.to_string()),
        ];
        // `sign` double-encodes the path it is given, so hand it the decoded form to get a
        // singly-encoded canonical URI.
        let sig = sigv4::sign(
            &sigv4::Request {
                method: "POST",
                path: canonical_path,
                query: "",
                headers: &headers,
                payload_hash: &sigv4::sha256_hex(&body),
            },
            secret,
            date,
            "us-east-1",
            "bedrock",
        );
        let req = actix_web::test::TestRequest::post()
            .uri("/model/a%3A0/converse")
            .insert_header(("content-type", "application/json"))
            .insert_header(("host", "localhost"))
            .insert_header(("x-amz-date", date))
            .insert_header(("authorization", sig.authorization(ACCESS_KEY_ID)))
            .to_http_request();
        (req, body)
    }

    #[test]
    fn sigv4_is_recomputed_and_single_encoding_is_refused() {
        let state = MockState::new(&super::super::MockProviderArgs::default());
        let (req, body) = signed("/model/a%3A0/converse", SECRET_ACCESS_KEY);
        assert!(authenticate(&req, &body, &state, "bedrock").is_ok());
        // Signed over the singly-encoded path (`a:0` encodes once to `a%3A0`): AWS refuses it.
        let (req, body) = signed("/model/a:0/converse", SECRET_ACCESS_KEY);
        let err = authenticate(&req, &body, &state, "bedrock").expect_err("refused");
        assert_eq!(err.kind, "InvalidSignatureException");
        let (req, body) = signed("/model/a%3A0/converse", "wrong");
        assert!(authenticate(&req, &body, &state, "bedrock").is_err());
        let (req, _) = signed("/model/a%3A0/converse", SECRET_ACCESS_KEY);
        assert!(authenticate(&req, &Bytes::from_static(b"{ }"), &state, "bedrock").is_err());
    }
}
