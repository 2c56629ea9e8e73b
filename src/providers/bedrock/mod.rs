//! AWS Bedrock through the Converse API (`bedrock/` and `bedrock_converse/` prefixes).
//!
//! - Chat: `POST {endpoint}/model/{modelId}/converse`, streams `…/converse-stream` (binary
//!   event-stream frames, see [`eventstream`]). The model id is percent-encoded as one path
//!   segment (`:` → `%3A`, `/` of ARNs → `%2F`).
//! - Embeddings: `POST …/model/{modelId}/invoke` with the model's native body: Titan
//!   (`{"inputText"}`, one input per call) and Cohere (`{"texts","input_type"}`).
//! - Endpoint: `api_base`, else `aws_bedrock_runtime_endpoint`, else `AWS_BEDROCK_RUNTIME_ENDPOINT`,
//!   else `https://bedrock-runtime.{region}.amazonaws.com` with the region from
//!   `aws_region_name`, `AWS_REGION`, `AWS_DEFAULT_REGION`, else `us-east-1`.
//! - Auth: a Bedrock API key (`api_key` or `AWS_BEARER_TOKEN_BEDROCK`) as `Authorization: Bearer`,
//!   else SigV4 ([`sigv4`], service `bedrock`) with `aws_access_key_id` / `aws_secret_access_key`
//!   / `aws_session_token` or the standard AWS environment variables, signed in
//!   [`ProviderAdapter::authorize`] over the final URL and body.

pub use tollgate_wire::{eventstream, sigv4};

use super::ErrorReply;
use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::future::LocalBoxFuture;
use serde_json::{json, Map, Value};

use super::openai::classify;
use super::stream::{ChunkWriter, StreamTranslator};
use super::{native, PreparedRequest, ProviderAdapter, TranslatedResponse};
use crate::deployment::{Deployment, Target};
use crate::error::{GatewayError, UpstreamErrorKind};
use crate::llm::{CallKind, LlmRequest, Usage};
use crate::secret::scrub;
use tollgate_wire::openai::{ChatCompletion, Choice, Delta, ToolCall};

/// The SigV4 signing name of Bedrock runtime (not `bedrock-runtime`).
pub const SIGNING_SERVICE: &str = "bedrock";
/// The default endpoint; `{region}` is replaced by the deployment's region.
pub const DEFAULT_ENDPOINT: &str = "https://bedrock-runtime.{region}.amazonaws.com";
/// The forced tool LiteLLM uses for `response_format` without a schema name.
const JSON_TOOL: &str = "json_tool_call";
/// LiteLLM's placeholder tool, sent when the history holds tool blocks but the request no tools
/// (Bedrock rejects tool blocks without a `toolConfig`).
const DUMMY_TOOL: &str = "dummy_tool";

pub struct BedrockAdapter;

pub static BEDROCK: BedrockAdapter = BedrockAdapter;

/// OpenAI parameters the Converse API has no place for.
pub(crate) const UNSUPPORTED: &[&str] = &[
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "service_tier",
    "modalities",
    "audio",
    "prediction",
    "store",
    "web_search_options",
    "functions",
    "function_call",
];

/// Body keys translated (or deliberately not forwarded) by the adapter.
const HANDLED: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "user",
    "n",
    "top_k",
    "thinking",
    "reasoning_effort",
    "extra_body",
];

/// Top-level Converse fields a request may set directly.
const CONVERSE_FIELDS: &[&str] = &[
    "guardrailConfig",
    "performanceConfig",
    "requestMetadata",
    "additionalModelResponseFieldPaths",
    "promptVariables",
];

/// The Bedrock model id of a target: `bedrock/converse/<id>` and `bedrock/invoke/<id>` name the
/// route in LiteLLM; this adapter always speaks Converse (and InvokeModel for embeddings).
pub fn model_id(target: &Target) -> &str {
    let m = target.model.as_str();
    m.strip_prefix("converse/")
        .or_else(|| m.strip_prefix("invoke/"))
        .unwrap_or(m)
}

/// The deployment's AWS region.
pub fn region(deployment: &Deployment) -> String {
    deployment
        .provider_params
        .str("aws_region_name")
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".to_string())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The runtime endpoint (scheme and host, maybe a path prefix), without a trailing `/`.
pub fn endpoint(deployment: &Deployment, target: &Target) -> String {
    let p = &deployment.provider_params;
    if p.str("api_base").is_none() && p.str("base_url").is_none() {
        if let Some(e) = p.str("aws_bedrock_runtime_endpoint") {
            return e.trim_end_matches('/').to_string();
        }
    }
    target.api_base.replace("{region}", &region(deployment))
}

/// The Bedrock agent runtime's endpoint (the Rerank API): the runtime endpoint with
/// `bedrock-agent-runtime` for `bedrock-runtime`; a custom base as it is.
pub fn agent_endpoint(deployment: &Deployment, target: &Target) -> String {
    endpoint(deployment, target).replacen("://bedrock-runtime.", "://bedrock-agent-runtime.", 1)
}

/// Whether this deployment authenticates with a Bedrock API key rather than SigV4: an explicit
/// `api_key` wins, explicit `aws_access_key_id` comes next, then `AWS_BEARER_TOKEN_BEDROCK`.
pub fn uses_api_key(deployment: &Deployment, target: &Target) -> bool {
    let p = &deployment.provider_params;
    p.str("api_key").is_some() || (p.str("aws_access_key_id").is_none() && target.api_key.is_some())
}

/// SigV4 credentials from `litellm_params`, else the standard AWS environment variables.
pub fn credentials(deployment: &Deployment) -> Result<sigv4::Credentials, GatewayError> {
    let p = &deployment.provider_params;
    for unsupported in [
        "aws_role_name",
        "aws_profile_name",
        "aws_web_identity_token",
    ] {
        if p.str(unsupported).is_some() {
            return Err(auth_error(format!(
                "litellm_params.{unsupported} is not supported by this gateway: give aws_access_key_id and aws_secret_access_key (and aws_session_token for temporary credentials), or a Bedrock API key"
            )));
        }
    }
    let (id, secret, token) = match p.str("aws_access_key_id") {
        Some(id) => (
            Some(id),
            p.str("aws_secret_access_key"),
            p.str("aws_session_token"),
        ),
        None => (
            env("AWS_ACCESS_KEY_ID"),
            p.str("aws_secret_access_key")
                .or_else(|| env("AWS_SECRET_ACCESS_KEY")),
            p.str("aws_session_token")
                .or_else(|| env("AWS_SESSION_TOKEN")),
        ),
    };
    match (id, secret) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(sigv4::Credentials {
            access_key_id,
            secret_access_key,
            session_token: token,
        }),
        _ => Err(auth_error(
            "no AWS credentials: set litellm_params aws_access_key_id and aws_secret_access_key (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), or a Bedrock API key (api_key or AWS_BEARER_TOKEN_BEDROCK)".to_string(),
        )),
    }
}

fn auth_error(message: String) -> GatewayError {
    GatewayError::Upstream {
        kind: UpstreamErrorKind::Authentication,
        status: 401,
        message: format!("AuthenticationError: BedrockException - {message}"),
        code: None,
        param: None,
        retry_after: None,
    }
}

/// Sign `prepared` in place (adds `host`, `x-amz-date`, maybe `x-amz-security-token`, and
/// `authorization`). `amz_date` is `YYYYMMDD'T'HHMMSS'Z'`.
pub fn sign_request(
    prepared: &mut PreparedRequest,
    creds: &sigv4::Credentials,
    region: &str,
    amz_date: &str,
) -> Result<(), GatewayError> {
    sign_request_with("POST", prepared, creds, region, amz_date)
}

/// [`sign_request`] for a request sent with `method`.
pub fn sign_request_with(
    method: &str,
    prepared: &mut PreparedRequest,
    creds: &sigv4::Credentials,
    region: &str,
    amz_date: &str,
) -> Result<(), GatewayError> {
    sign_for_service(SIGNING_SERVICE, method, prepared, creds, region, amz_date)
}

/// SigV4-sign `prepared` for an AWS `service` (`bedrock`, `sagemaker`): the one signer every AWS
/// adapter uses.
pub fn sign_for_service(
    service: &str,
    method: &str,
    prepared: &mut PreparedRequest,
    creds: &sigv4::Credentials,
    region: &str,
    amz_date: &str,
) -> Result<(), GatewayError> {
    let (_, host, path, query) = sigv4::split_url(&prepared.url).ok_or_else(|| {
        GatewayError::internal(format!("cannot sign a request to {}", prepared.url))
    })?;
    let (host, path, query) = (host.to_string(), path.to_string(), query.to_string());
    prepared
        .headers
        .retain(|(k, _)| !matches!(k.as_ref(), "host" | "x-amz-date" | "x-amz-security-token"));
    let content_type = prepared
        .headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "application/json".to_string());
    let mut signed = vec![
        ("content-type".to_string(), content_type),
        ("host".to_string(), host.clone()),
        ("x-amz-date".to_string(), amz_date.to_string()),
    ];
    if let Some(token) = &creds.session_token {
        signed.push(("x-amz-security-token".to_string(), token.clone()));
    }
    let payload_hash = sigv4::sha256_hex(&prepared.body);
    let signature = sigv4::sign(
        &sigv4::Request {
            method,
            path: &path,
            query: &query,
            headers: &signed,
            payload_hash: &payload_hash,
        },
        &creds.secret_access_key,
        amz_date,
        region,
        service,
    );
    prepared.headers.push((Cow::Borrowed("host"), host));
    prepared
        .headers
        .push((Cow::Borrowed("x-amz-date"), amz_date.to_string()));
    if let Some(token) = &creds.session_token {
        prepared
            .headers
            .push((Cow::Borrowed("x-amz-security-token"), token.clone()));
    }
    prepared.headers.push((
        Cow::Borrowed("authorization"),
        signature.authorization(&creds.access_key_id),
    ));
    Ok(())
}

impl ProviderAdapter for BedrockAdapter {
    fn prepare(
        &self,
        deployment: &Deployment,
        target: &Target,
        req: &LlmRequest,
    ) -> Result<PreparedRequest, GatewayError> {
        let model = model_id(target);
        let (body, action) = match req.kind {
            CallKind::Chat => (
                converse_body(deployment, target, req)?,
                if req.stream {
                    "converse-stream"
                } else {
                    "converse"
                },
            ),
            CallKind::Embedding => (embedding_body(model, req)?, "invoke"),
            CallKind::ImageGeneration => (image_body(target, model, req)?, "invoke"),
            // The agent runtime's Rerank API, with the model named by its ARN.
            CallKind::Rerank => (
                crate::rerank::bedrock_body(
                    &format!("arn:aws:bedrock:{}::foundation-model/{model}", region(deployment)),
                    &req.body,
                ),
                "rerank",
            ),
            CallKind::ImageEdit
            | CallKind::Moderation
            | CallKind::Transcription
            | CallKind::Translation
            | CallKind::Speech
            | CallKind::Responses => {
                return Err(crate::providers::native::unsupported_call(target, req.kind))
            }
            CallKind::Completion => {
                return Err(GatewayError::bad_request(format!(
                    "Bedrock deployments take chat completions and embeddings, not legacy completions (model={})",
                    req.model
                )))
            }
        };
        let url = if req.kind == CallKind::Rerank {
            format!("{}/rerank", agent_endpoint(deployment, target))
        } else {
            format!(
                "{}/model/{}/{action}",
                endpoint(deployment, target),
                sigv4::uri_encode(model, false)
            )
        };
        let mut headers: Vec<(Cow<'static, str>, String)> = Vec::with_capacity(6);
        headers.push((Cow::Borrowed("content-type"), "application/json".into()));
        headers.push((
            Cow::Borrowed("accept"),
            if req.stream && req.kind == CallKind::Chat {
                "application/vnd.amazon.eventstream".into()
            } else {
                "application/json".into()
            },
        ));
        for (k, v) in &deployment.extra_headers {
            let k = k.to_ascii_lowercase();
            if !matches!(
                k.as_str(),
                "host" | "authorization" | "x-amz-date" | "x-amz-security-token"
            ) {
                headers.push((Cow::Owned(k), v.clone()));
            }
        }
        if uses_api_key(deployment, target) {
            if let Some(key) = &target.api_key {
                headers.push((
                    Cow::Borrowed("authorization"),
                    format!("Bearer {}", key.expose()),
                ));
            }
        }
        PreparedRequest::json(target.url(url), headers, &body)
    }

    fn authorize<'a>(
        &'a self,
        deployment: &'a Deployment,
        _target: &'a Target,
        mut prepared: PreparedRequest,
    ) -> LocalBoxFuture<'a, Result<PreparedRequest, GatewayError>> {
        let result = if prepared.headers.iter().any(|(k, _)| k == "authorization") {
            Ok(prepared)
        } else {
            credentials(deployment).and_then(|creds| {
                let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
                sign_request(&mut prepared, &creds, &region(deployment), &amz_date)?;
                Ok(prepared)
            })
        };
        Box::pin(std::future::ready(result))
    }

    fn supports(&self, kind: CallKind) -> bool {
        matches!(
            kind,
            CallKind::Chat
                | CallKind::Completion
                | CallKind::Embedding
                | CallKind::ImageGeneration
                | CallKind::Rerank
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
        let v: Value = serde_json::from_slice(&body).map_err(|e| GatewayError::Upstream {
            kind: UpstreamErrorKind::Server,
            status: 502,
            message: format!("BedrockException - the response is not valid JSON: {e}"),
            code: None,
            param: None,
            retry_after: None,
        })?;
        match req.kind {
            CallKind::Embedding => embedding_response(req, &v),
            CallKind::ImageGeneration => image_response(&v),
            _ => chat_response(req, &v),
        }
    }

    fn error(&self, reply: &ErrorReply<'_>) -> GatewayError {
        let (target, status, retry_after, body) = reply.parts();
        let message = native::error_text(status, body, &["message", "Message"]);
        error_for(target, status, &message, retry_after)
    }

    fn stream_translator(
        &self,
        target: &Target,
        req: &LlmRequest,
    ) -> Option<Box<dyn StreamTranslator>> {
        Some(Box::new(ConverseStream::new(
            target.clone(),
            model_id(target).to_string(),
            json_tool_name(&req.body),
        )))
    }
}

/// A Bedrock error as the gateway's error: LiteLLM's `"{Class}: BedrockException - {message}"`.
fn error_for(
    target: &Target,
    status: u16,
    message: &str,
    retry_after: Option<Duration>,
) -> GatewayError {
    let lower = message.to_ascii_lowercase();
    let kind = if status == 400 && (lower.contains("too long") || lower.contains("too many tokens"))
    {
        UpstreamErrorKind::ContextWindowExceeded
    } else if status == 403 && (lower.contains("security token") || lower.contains("signature")) {
        UpstreamErrorKind::Authentication
    } else if status == 424 {
        UpstreamErrorKind::Server
    } else {
        classify(status, None, message)
    };
    let class = kind.class_name(status);
    let code = kind.standard_code().map(str::to_string);
    let status = match kind {
        UpstreamErrorKind::Authentication => 401,
        UpstreamErrorKind::Server if status == 424 => 500,
        _ if (400..=599).contains(&status) => status,
        _ => 502,
    };
    GatewayError::Upstream {
        kind,
        status,
        message: scrub(
            &format!("{class}: BedrockException - {message}"),
            target.api_key.as_ref(),
        ),
        code,
        param: None,
        retry_after,
    }
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

fn bad(param: &str, message: impl Into<String>) -> GatewayError {
    GatewayError::bad_param(param, message)
}

/// The name of the forced tool that carries a `response_format` answer, if the request has one.
fn json_tool_name(body: &Map<String, Value>) -> Option<String> {
    let rf = body.get("response_format")?;
    match rf.get("type").and_then(Value::as_str)? {
        "json_schema" => Some(
            rf.get("json_schema")
                .and_then(|s| s.get("name"))
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or(JSON_TOOL)
                .to_string(),
        ),
        "json_object" => Some(JSON_TOOL.to_string()),
        _ => None,
    }
}

/// The Converse request body for an OpenAI chat request.
pub fn converse_body(
    deployment: &Deployment,
    target: &Target,
    req: &LlmRequest,
) -> Result<Map<String, Value>, GatewayError> {
    let mut body = super::native::OpenAiBody::with_defaults(deployment, req).to_map();
    body.retain(|_, v| !v.is_null());
    let drop = super::native::drop_params(deployment, req);
    let mut unsupported: Vec<String> = UNSUPPORTED
        .iter()
        .chain(target.spec.unsupported_params)
        .filter(|p| body.contains_key(**p))
        .map(|p| p.to_string())
        .collect();
    if body.get("n").is_some_and(|n| n.as_u64() != Some(1)) {
        unsupported.push("n".into());
    }
    let model = model_id(target);
    let claude = model.contains("anthropic.") || model.contains("claude");
    if !claude && body.contains_key("reasoning_effort") {
        unsupported.push("reasoning_effort".into());
    }
    if !unsupported.is_empty() {
        if !drop {
            let names: Vec<&str> = unsupported.iter().map(String::as_str).collect();
            return Err(super::native::unsupported_error(target, &names));
        }
        for p in &unsupported {
            body.remove(p);
        }
    }

    let mut out = Map::new();
    let (system, messages) = translate_messages(body.get("messages"))?;
    let history_has_tools = messages.iter().any(|m| {
        m["content"].as_array().is_some_and(|blocks| {
            blocks
                .iter()
                .any(|b| b.get("toolUse").is_some() || b.get("toolResult").is_some())
        })
    });
    out.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }

    // inferenceConfig
    let mut inference = Map::new();
    if let Some(v) = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
    {
        let n = v
            .as_u64()
            .ok_or_else(|| bad("max_tokens", "max_tokens must be a positive integer"))?;
        inference.insert("maxTokens".into(), json!(n));
    }
    if let Some(v) = body.get("temperature") {
        inference.insert("temperature".into(), v.clone());
    }
    if let Some(v) = body.get("top_p") {
        inference.insert("topP".into(), v.clone());
    }
    if let Some(stop) = body.get("stop") {
        let list = native::stop_sequences(stop, |s| !s.is_empty())
            .ok_or_else(|| bad("stop", "stop must be a string or an array of strings"))?;
        if !list.is_empty() {
            inference.insert("stopSequences".into(), Value::Array(list));
        }
    }
    if !inference.is_empty() {
        out.insert("inferenceConfig".into(), Value::Object(inference));
    }

    // toolConfig
    let mut tools: Vec<Value> = Vec::new();
    if let Some(list) = body.get("tools") {
        let list = list
            .as_array()
            .ok_or_else(|| bad("tools", "tools must be an array"))?;
        for tool in list {
            let f = tool.get("function").unwrap_or(tool);
            let name = f
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("tools", "every tool needs a function name"))?;
            let mut spec = Map::new();
            spec.insert("name".into(), json!(name));
            if let Some(d) = f
                .get("description")
                .and_then(Value::as_str)
                .filter(|d| !d.is_empty())
            {
                spec.insert("description".into(), json!(d));
            }
            let schema = f
                .get("parameters")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            spec.insert("inputSchema".into(), json!({ "json": schema }));
            tools.push(json!({ "toolSpec": spec }));
        }
    }
    let mut tool_choice = match body.get("tool_choice") {
        None => None,
        Some(Value::String(s)) if s == "auto" => Some(json!({"auto": {}})),
        Some(Value::String(s)) if s == "required" || s == "any" => Some(json!({"any": {}})),
        Some(Value::String(s)) if s == "none" => {
            // Converse has no "none": send no tools, unless the history needs them declared.
            if !history_has_tools {
                tools.clear();
            }
            None
        }
        Some(v @ Value::Object(_)) => {
            let name = v
                .get("function")
                .and_then(|f| f.get("name"))
                .or_else(|| v.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| bad("tool_choice", "tool_choice object needs function.name"))?;
            Some(json!({"tool": {"name": name}}))
        }
        Some(other) => {
            return Err(bad(
                "tool_choice",
                format!("unsupported tool_choice {other}"),
            ))
        }
    };
    if let Some(name) = json_tool_name(&body) {
        let rf = &body["response_format"];
        let schema = rf
            .get("json_schema")
            .and_then(|s| s.get("schema"))
            .cloned()
            .unwrap_or_else(|| json!({"type": "object"}));
        let mut spec = Map::new();
        spec.insert("name".into(), json!(name));
        if let Some(d) = rf
            .get("json_schema")
            .and_then(|s| s.get("description"))
            .and_then(Value::as_str)
        {
            spec.insert("description".into(), json!(d));
        }
        spec.insert("inputSchema".into(), json!({ "json": schema }));
        tools.push(json!({ "toolSpec": spec }));
        tool_choice = Some(json!({"tool": {"name": name}}));
    }
    if tools.is_empty() && history_has_tools {
        tools.push(json!({"toolSpec": {
            "name": DUMMY_TOOL,
            "description": "This is a dummy tool call",
            "inputSchema": {"json": {"type": "object", "properties": {}}},
        }}));
    }
    if !tools.is_empty() {
        let mut config = Map::new();
        config.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = tool_choice {
            config.insert("toolChoice".into(), choice);
        }
        out.insert("toolConfig".into(), Value::Object(config));
    }

    // additionalModelRequestFields: model-specific extras and fields the gateway does not know.
    let mut extra = Map::new();
    if let Some(k) = body.get("top_k") {
        if model.contains("nova") {
            extra.insert("inferenceConfig".into(), json!({ "topK": k }));
        } else {
            extra.insert("top_k".into(), k.clone());
        }
    }
    if let Some(t) = body.get("thinking") {
        extra.insert("thinking".into(), t.clone());
    } else if let Some(effort) = body.get("reasoning_effort").and_then(Value::as_str) {
        let budget = match effort {
            "low" | "minimal" => Some(1024),
            "medium" => Some(2048),
            "high" => Some(4096),
            _ => None,
        };
        if let Some(budget) = budget {
            extra.insert(
                "thinking".into(),
                json!({"type": "enabled", "budget_tokens": budget}),
            );
        }
    }
    if let Some(Value::Object(eb)) = body.get("extra_body") {
        for (k, v) in eb {
            extra.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in &body {
        if CONVERSE_FIELDS.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        } else if !HANDLED.contains(&k.as_str()) && !UNSUPPORTED.contains(&k.as_str()) {
            extra.insert(k.clone(), v.clone());
        }
    }
    if !extra.is_empty() {
        out.insert("additionalModelRequestFields".into(), Value::Object(extra));
    }
    Ok(out)
}

/// OpenAI messages → (Converse `system` blocks, Converse `messages`), consecutive same-role
/// messages merged (tool results become user turns).
fn translate_messages(messages: Option<&Value>) -> Result<(Vec<Value>, Vec<Value>), GatewayError> {
    let messages = messages
        .and_then(Value::as_array)
        .ok_or_else(|| bad("messages", "messages must be a non-empty array"))?;
    let mut system = Vec::new();
    let mut out: Vec<(String, Vec<Value>)> = Vec::new();
    for m in messages {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let content = m.get("content").unwrap_or(&Value::Null);
        let (role, blocks) = match role {
            "system" | "developer" => {
                system.extend(text_blocks(content)?);
                continue;
            }
            "user" => ("user", user_blocks(content)?),
            "assistant" => {
                let mut blocks: Vec<Value> = text_blocks(content)?;
                if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                    for call in calls {
                        let f = call.get("function").unwrap_or(&Value::Null);
                        let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
                        let args = f.get("arguments").and_then(Value::as_str).unwrap_or("");
                        let input: Value = if args.trim().is_empty() {
                            json!({})
                        } else {
                            serde_json::from_str(args).map_err(|_| {
                                bad(
                                    "messages",
                                    format!("tool call {name}: arguments are not valid JSON"),
                                )
                            })?
                        };
                        blocks.push(json!({"toolUse": {
                            "toolUseId": call.get("id").and_then(Value::as_str).unwrap_or_default(),
                            "name": name,
                            "input": input,
                        }}));
                    }
                }
                ("assistant", blocks)
            }
            "tool" => {
                let text: String = match content {
                    Value::String(s) => s.clone(),
                    Value::Array(parts) => parts
                        .iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join(""),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                let id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("messages", "tool messages need tool_call_id"))?;
                (
                    "user",
                    vec![json!({"toolResult": {
                        "toolUseId": id,
                        "content": [{"text": text}],
                    }})],
                )
            }
            other => {
                return Err(bad(
                    "messages",
                    format!("Bedrock does not take messages with role '{other}'"),
                ))
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((last, existing)) if last == role => existing.extend(blocks),
            _ => out.push((role.to_string(), blocks)),
        }
    }
    let messages = out
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    Ok((system, messages))
}

/// Text content as `{"text"}` blocks (blank texts dropped: Bedrock rejects them); a part with
/// `cache_control` is followed by a `cachePoint`.
fn text_blocks(content: &Value) -> Result<Vec<Value>, GatewayError> {
    let mut blocks = Vec::new();
    match content {
        Value::Null => {}
        Value::String(s) => {
            if !s.trim().is_empty() {
                blocks.push(json!({ "text": s }));
            }
        }
        Value::Array(parts) => {
            for part in parts {
                let text = part.get("text").and_then(Value::as_str).ok_or_else(|| {
                    bad(
                        "messages",
                        "system and assistant content parts must be text",
                    )
                })?;
                if !text.trim().is_empty() {
                    blocks.push(json!({ "text": text }));
                }
                if part.get("cache_control").is_some() {
                    blocks.push(json!({"cachePoint": {"type": "default"}}));
                }
            }
        }
        _ => return Err(bad("messages", "content must be a string or an array")),
    }
    Ok(blocks)
}

fn user_blocks(content: &Value) -> Result<Vec<Value>, GatewayError> {
    let Value::Array(parts) = content else {
        return text_blocks(content);
    };
    let mut blocks = Vec::new();
    for part in parts {
        match part.get("type").and_then(Value::as_str).unwrap_or("text") {
            "text" => blocks.extend(text_blocks(&Value::Array(vec![part.clone()]))?),
            "image_url" => {
                let url = part
                    .get("image_url")
                    .and_then(|i| i.get("url").or(Some(i)))
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("messages", "image_url needs a url"))?;
                blocks.push(image_block(url)?);
                if part.get("cache_control").is_some() {
                    blocks.push(json!({"cachePoint": {"type": "default"}}));
                }
            }
            other => {
                return Err(bad(
                    "messages",
                    format!("content part type '{other}' is not supported for Bedrock"),
                ))
            }
        }
    }
    Ok(blocks)
}

/// A `data:` image URL as a Converse image block.
fn image_block(url: &str) -> Result<Value, GatewayError> {
    let Some(rest) = url.strip_prefix("data:") else {
        return Err(bad(
            "messages",
            "Bedrock takes images inline only: send the image as a base64 data: URL (http(s) image URLs are not fetched)",
        ));
    };
    let (meta, data) = rest
        .split_once(',')
        .ok_or_else(|| bad("messages", "malformed data: URL"))?;
    let mime = meta.split(';').next().unwrap_or("");
    if !meta.ends_with(";base64") {
        return Err(bad("messages", "image data: URLs must be base64-encoded"));
    }
    let format = match mime {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => {
            return Err(bad(
                "messages",
                format!("Bedrock takes png, jpeg, gif or webp images, not '{other}'"),
            ))
        }
    };
    // Validate the base64 so the error is ours, not an opaque upstream one.
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| bad("messages", "image data: URL is not valid base64"))?;
    Ok(json!({"image": {"format": format, "source": {"bytes": data.trim()}}}))
}

/// The InvokeModel body of an embedding request (Titan or Cohere on Bedrock).
/// The image model families Bedrock's `InvokeModel` takes, each with its own body.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ImageFamily {
    /// Stable Diffusion XL v1 / v0: `text_prompts`, `width` / `height`, `samples`.
    StableDiffusionXl,
    /// Stability's current models (SD3, SD3.5, Stable Image Core / Ultra): `prompt`,
    /// `aspect_ratio`, one image per call.
    Stability,
    /// Amazon Titan Image Generator and Nova Canvas: `TEXT_IMAGE` with `imageGenerationConfig`.
    AmazonImage,
}

fn image_family(model: &str) -> Option<ImageFamily> {
    // Cross-region inference profiles prefix the id (`us.amazon.nova-canvas-v1:0`).
    let id = model
        .split_once('.')
        .filter(|(p, _)| matches!(*p, "us" | "eu" | "apac" | "global"))
        .map_or(model, |(_, rest)| rest);
    if id.starts_with("stability.stable-diffusion-xl") {
        Some(ImageFamily::StableDiffusionXl)
    } else if id.starts_with("stability.") {
        Some(ImageFamily::Stability)
    } else if id.starts_with("amazon.titan-image") || id.starts_with("amazon.nova-canvas") {
        Some(ImageFamily::AmazonImage)
    } else {
        None
    }
}

/// The `InvokeModel` body of an image generation, by model family.
fn image_body(
    target: &Target,
    model: &str,
    req: &LlmRequest,
) -> Result<Map<String, Value>, GatewayError> {
    let ask = crate::providers::images::ImageAsk::of(req)?;
    let family = image_family(model)
        .ok_or_else(|| crate::providers::native::unsupported_call(target, req.kind))?;
    let mut body = Map::new();
    match family {
        ImageFamily::StableDiffusionXl => {
            let mut prompts = vec![json!({"text": ask.prompt, "weight": 1.0})];
            if let Some(n) = ask.negative_prompt {
                prompts.push(json!({"text": n, "weight": -1.0}));
            }
            body.insert("text_prompts".into(), json!(prompts));
            body.insert("samples".into(), json!(ask.n));
            if let Some((w, h)) = ask.size {
                body.insert("width".into(), json!(w));
                body.insert("height".into(), json!(h));
            }
            if let Some(seed) = ask.seed {
                body.insert("seed".into(), json!(seed));
            }
        }
        ImageFamily::Stability => {
            if ask.n != 1 {
                return Err(bad(
                    "n",
                    format!(
                        "{model} makes one image per request; send n=1 (or one request per image)"
                    ),
                ));
            }
            body.insert("prompt".into(), json!(ask.prompt));
            body.insert("mode".into(), json!("text-to-image"));
            body.insert("output_format".into(), json!("png"));
            if let Some(ratio) = ask.aspect_ratio() {
                body.insert("aspect_ratio".into(), json!(ratio));
            }
            if let Some(n) = ask.negative_prompt {
                body.insert("negative_prompt".into(), json!(n));
            }
            if let Some(seed) = ask.seed {
                body.insert("seed".into(), json!(seed));
            }
        }
        ImageFamily::AmazonImage => {
            let mut params = Map::new();
            params.insert("text".into(), json!(ask.prompt));
            if let Some(n) = ask.negative_prompt {
                params.insert("negativeText".into(), json!(n));
            }
            let mut config = Map::new();
            config.insert("numberOfImages".into(), json!(ask.n));
            if let Some((w, h)) = ask.size {
                config.insert("width".into(), json!(w));
                config.insert("height".into(), json!(h));
            }
            if let Some(q) = ask.quality {
                let premium = matches!(q, "hd" | "high" | "premium");
                config.insert(
                    "quality".into(),
                    json!(if premium { "premium" } else { "standard" }),
                );
            }
            if let Some(seed) = ask.seed {
                config.insert("seed".into(), json!(seed));
            }
            body.insert("taskType".into(), json!("TEXT_IMAGE"));
            body.insert("textToImageParams".into(), Value::Object(params));
            body.insert("imageGenerationConfig".into(), Value::Object(config));
        }
    }
    Ok(body)
}

/// The images of an `InvokeModel` answer (`images`: Stability's current models, Titan, Nova
/// Canvas; `artifacts[].base64`: Stable Diffusion XL) as OpenAI's images response.
fn image_response(v: &Value) -> Result<TranslatedResponse, GatewayError> {
    let strings = |list: Option<&Vec<Value>>, field: Option<&str>| -> Vec<String> {
        list.into_iter()
            .flatten()
            .filter_map(|i| match field {
                Some(f) => i.get(f).and_then(Value::as_str),
                None => i.as_str(),
            })
            .map(str::to_string)
            .collect()
    };
    let mut images = strings(v.get("images").and_then(Value::as_array), None);
    images.extend(strings(
        v.get("artifacts").and_then(Value::as_array),
        Some("base64"),
    ));
    crate::providers::images::openai_images(images)
}

fn embedding_body(model: &str, req: &LlmRequest) -> Result<Map<String, Value>, GatewayError> {
    let inputs: Vec<String> = match req.body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("input", "Bedrock embeddings take text inputs only"))?,
        _ => {
            return Err(bad(
                "input",
                "input must be a string or an array of strings",
            ))
        }
    };
    if inputs.is_empty() {
        return Err(bad("input", "input must not be empty"));
    }
    let mut body = Map::new();
    if model.starts_with("amazon.titan-embed") {
        if inputs.len() != 1 {
            return Err(bad(
                "input",
                format!(
                    "Titan embedding models take one input per call; this request has {} (send them one at a time)",
                    inputs.len()
                ),
            ));
        }
        body.insert("inputText".into(), json!(inputs[0]));
        if let Some(d) = req.body.get("dimensions").filter(|d| !d.is_null()) {
            body.insert("dimensions".into(), d.clone());
        }
    } else if model.starts_with("cohere.embed") {
        body.insert("texts".into(), json!(inputs));
        let input_type = req
            .body
            .get("input_type")
            .and_then(Value::as_str)
            .unwrap_or("search_document");
        body.insert("input_type".into(), json!(input_type));
    } else {
        return Err(bad(
            "model",
            format!("embeddings through Bedrock support amazon.titan-embed-* and cohere.embed-* models, not '{model}'"),
        ));
    }
    Ok(body)
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "tool_use" => "tool_calls",
        "max_tokens" | "model_context_window_exceeded" => "length",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        _ => "stop",
    }
}

/// Converse usage in OpenAI's terms: prompt tokens include cache reads and writes.
pub fn usage_from(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let cached = n("cacheReadInputTokens");
    let prompt = n("inputTokens") + cached + n("cacheWriteInputTokens");
    let completion = n("outputTokens");
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        cached_tokens: cached,
        reasoning_tokens: 0,
    }
}

fn completion_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

fn chat_response(req: &LlmRequest, v: &Value) -> Result<TranslatedResponse, GatewayError> {
    let json_tool = json_tool_name(&req.body);
    let blocks = v["output"]["message"]["content"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    let mut json_answer = false;
    for b in &blocks {
        if let Some(t) = b.get("text").and_then(Value::as_str) {
            text.push_str(t);
        } else if let Some(t) = b
            .get("reasoningContent")
            .and_then(|r| r.get("reasoningText"))
            .and_then(|r| r.get("text"))
            .and_then(Value::as_str)
        {
            reasoning.push_str(t);
        } else if let Some(tu) = b.get("toolUse") {
            let name = tu.get("name").and_then(Value::as_str).unwrap_or_default();
            let input = tu.get("input").cloned().unwrap_or_else(|| json!({}));
            if json_tool.as_deref() == Some(name) {
                text = input.to_string();
                json_answer = true;
                continue;
            }
            let id = tu
                .get("toolUseId")
                .and_then(Value::as_str)
                .unwrap_or_default();
            tool_calls.push(ToolCall::function(id, name, input.to_string()));
        }
    }
    let stop = v.get("stopReason").and_then(Value::as_str).unwrap_or("");
    let finish = if json_answer && tool_calls.is_empty() {
        "stop"
    } else {
        finish_reason(stop)
    };
    let message = super::assistant_message(text, reasoning, tool_calls);
    let usage = usage_from(&v["usage"]);
    let out = ChatCompletion::new(
        completion_id(),
        super::now_secs(),
        req.model.as_str(),
        vec![Choice::new(0, message, finish)],
        usage.to_openai(),
    );
    TranslatedResponse::completion(&out, usage)
}

fn embedding_response(req: &LlmRequest, v: &Value) -> Result<TranslatedResponse, GatewayError> {
    let vectors: Vec<Value> = if let Some(e) = v.get("embedding") {
        vec![e.clone()]
    } else {
        match v.get("embeddings") {
            Some(Value::Array(list)) => list.clone(),
            // Cohere with `embedding_types` answers `{"float": [[…]]}`.
            Some(Value::Object(by_type)) => by_type
                .get("float")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    };
    let prompt = match v.get("inputTextTokenCount").and_then(Value::as_u64) {
        Some(n) => n,
        // Cohere on Bedrock reports no token count in the body: estimate ~4 bytes per token.
        None => match req.body.get("input") {
            Some(Value::String(s)) => (s.len() as u64).div_ceil(4),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(|s| (s.len() as u64).div_ceil(4))
                .sum(),
            _ => 0,
        },
    };
    TranslatedResponse::embeddings(&native::embedding_list(&req.model, vectors, prompt))
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

/// ConverseStream event-stream frames → OpenAI chunks.
pub struct ConverseStream {
    target: Target,
    decoder: eventstream::Decoder,
    writer: ChunkWriter,
    json_tool: Option<String>,
    role_sent: bool,
    /// contentBlockIndex → OpenAI tool-call index (or `None` for the json tool, streamed as text).
    tools: HashMap<u64, Option<u32>>,
    next_tool: u32,
    stopped: bool,
}

impl ConverseStream {
    pub fn new(target: Target, model: String, json_tool: Option<String>) -> Self {
        Self {
            target,
            decoder: eventstream::Decoder::default(),
            writer: ChunkWriter::new(completion_id(), model),
            json_tool,
            role_sent: false,
            tools: HashMap::new(),
            next_tool: 0,
            stopped: false,
        }
    }

    fn role(&mut self) {
        if !self.role_sent {
            self.role_sent = true;
            self.writer.delta(0, Delta::start(), None);
        }
    }

    fn event(&mut self, kind: &str, p: &Value) {
        match kind {
            "messageStart" => self.role(),
            "contentBlockStart" => {
                let index = p
                    .get("contentBlockIndex")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                if let Some(tu) = p.get("start").and_then(|s| s.get("toolUse")) {
                    self.role();
                    let name = tu.get("name").and_then(Value::as_str).unwrap_or_default();
                    if self.json_tool.as_deref() == Some(name) {
                        self.tools.insert(index, None);
                        return;
                    }
                    let i = self.next_tool;
                    self.next_tool += 1;
                    self.tools.insert(index, Some(i));
                    let id = tu
                        .get("toolUseId")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let call = ToolCall::function(id, name, "").at(i);
                    self.writer.delta(0, Delta::tool_call(call), None);
                }
            }
            "contentBlockDelta" => {
                self.role();
                let index = p
                    .get("contentBlockIndex")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                let delta = p.get("delta").unwrap_or(&Value::Null);
                if let Some(t) = delta.get("text").and_then(Value::as_str) {
                    self.writer.delta(0, Delta::text(t), None);
                } else if let Some(input) = delta
                    .get("toolUse")
                    .and_then(|t| t.get("input"))
                    .and_then(Value::as_str)
                {
                    match self.tools.get(&index) {
                        Some(Some(i)) => {
                            let piece = ToolCall::arguments(*i, input);
                            self.writer.delta(0, Delta::tool_call(piece), None);
                        }
                        // The response_format tool: its input is the answer's content.
                        Some(None) => self.writer.delta(0, Delta::text(input), None),
                        None => {}
                    }
                } else if let Some(t) = delta
                    .get("reasoningContent")
                    .and_then(|r| r.get("text"))
                    .and_then(Value::as_str)
                {
                    self.writer.delta(0, Delta::reasoning(t), None);
                }
            }
            "messageStop" => {
                self.role();
                self.stopped = true;
                let stop = p.get("stopReason").and_then(Value::as_str).unwrap_or("");
                let json_only = self.json_tool.is_some() && self.next_tool == 0;
                let finish = if json_only && stop == "tool_use" {
                    "stop"
                } else {
                    finish_reason(stop)
                };
                self.writer.delta(0, Delta::default(), Some(finish));
            }
            "metadata" => {
                if let Some(u) = p.get("usage") {
                    self.writer.usage(&usage_from(u));
                }
            }
            // contentBlockStop and anything newer carry nothing to translate.
            _ => {}
        }
    }
}

/// The HTTP status AWS gives each ConverseStream exception.
fn exception_status(kind: &str) -> u16 {
    match kind {
        "throttlingException" | "serviceQuotaExceededException" => 429,
        "validationException" => 400,
        "accessDeniedException" => 403,
        "resourceNotFoundException" => 404,
        "modelTimeoutException" => 408,
        "serviceUnavailableException" | "modelNotReadyException" => 503,
        _ => 500,
    }
}

impl StreamTranslator for ConverseStream {
    fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, GatewayError> {
        let messages = self
            .decoder
            .push(chunk)
            .map_err(|e| GatewayError::Upstream {
                kind: UpstreamErrorKind::StreamInterrupted,
                status: 502,
                message: format!("APIConnectionError: BedrockException - {e}"),
                code: None,
                param: None,
                retry_after: None,
            })?;
        for m in messages {
            let payload: Value = serde_json::from_slice(&m.payload).unwrap_or(Value::Null);
            match m.header(":message-type").unwrap_or("event") {
                "event" => {
                    let kind = m.header(":event-type").unwrap_or("").to_string();
                    self.event(&kind, &payload);
                }
                "exception" => {
                    let kind = m
                        .header(":exception-type")
                        .unwrap_or("internalServerException");
                    let message = payload
                        .get("message")
                        .or_else(|| payload.get("Message"))
                        .and_then(Value::as_str)
                        .unwrap_or(kind);
                    return Err(error_for(
                        &self.target,
                        exception_status(kind),
                        &format!("{kind}: {message}"),
                        None,
                    ));
                }
                _ => {
                    let code = m.header(":error-code").unwrap_or("error");
                    let message = m.header(":error-message").unwrap_or("");
                    return Err(error_for(
                        &self.target,
                        500,
                        &format!("{code}: {message}"),
                        None,
                    ));
                }
            }
        }
        Ok(self.writer.take())
    }

    fn finish(&mut self) -> Result<Bytes, GatewayError> {
        // Without messageStop the stream was cut: no [DONE], so the relay reports it.
        if self.stopped && !self.decoder.has_partial() {
            self.writer.done();
        }
        Ok(self.writer.take())
    }
}

#[cfg(test)]
mod tests;
