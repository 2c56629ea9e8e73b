//! The request pipeline for every LLM call (`/chat/completions`, `/completions`, `/embeddings`),
//! in one place. Handlers only extract the HTTP pieces and call [`run`].
//!
//! ```text
//!  auth ─▶ parse ─▶ route ─▶ translate ─▶ call ─▶ relay ─▶ account
//! ```
//!
//! 1. **auth**: [`crate::auth::Authenticator`] turns the request's key into a [`Caller`] (done by
//!    the handler, before the body is read, so unauthenticated callers cannot make the gateway read
//!    32 MB).
//! 2. **parse**: [`LlmRequest::parse`] validates the body into the internal model: typed fields the
//!    gateway uses, the rest kept raw; gateway-only fields (`metadata`, `fallbacks`, `timeout`…) and
//!    any credential or routing field the client tried to set (`api_base`, `api_key`… at any depth)
//!    are removed.
//! 3. **route**: the model name (after `model_group_alias`) selects a model group in the routing
//!    snapshot the router actor publishes (no message on this path); the group picks a deployment
//!    that is not cooling down (`simple-shuffle`, weighted). All cooling → 429 with `retry-after`.
//! 4. **translate**: the deployment's provider adapter builds the upstream request (URL, auth header,
//!    provider model name, defaults, `drop_params`; streams always ask for usage).
//! 5. **call**: awc, on this worker's client, with the request's timeout (`timeout` in the body,
//!    `x-litellm-timeout`, `litellm_params.timeout`/`stream_timeout`, `request_timeout`). Expiry
//!    answers 408 and drops the upstream connection.
//! 6. **relay**: non-streaming bodies are translated back and returned whole; streams go through
//!    [`SseRelay`] unbuffered, and a stream that breaks ends with an SSE error event.
//! 7. **account**: the deployment's atomics record latency and success; failures go to its actor
//!    (fire-and-forget) which decides on a cooldown; usage is logged per request.
//!
//! Every response, success or error, carries the `x-litellm-*` headers: call id, deployment id and
//! base, model group, durations.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use bytes::Bytes;
use serde_json::{json, Value};
use tollgate_actors::{now_ms, DeploymentFailure, DeploymentHandle, FailureClass};

use crate::auth::Caller;
use crate::deployment::Deployment;
use crate::error::{GatewayError, UpstreamErrorKind};
use crate::llm::{CallKind, LlmRequest, Usage};
use crate::providers::{self, ProviderAdapter};
use crate::secret::redact_json;
use crate::sse::{SseRelay, StreamOutcome};
use crate::state::{AppState, VERSION};
use crate::upstream;

/// Headers describing how a request was served, added to success and error responses alike.
#[derive(Default)]
struct ServedBy {
    call_id: String,
    model_group: Option<String>,
    deployment_id: Option<String>,
    api_base: Option<String>,
    timeout: Option<Duration>,
    upstream_time: Duration,
    provider_headers: Vec<(HeaderName, HeaderValue)>,
}

impl ServedBy {
    fn apply(&self, headers: &mut HeaderMap, started: Instant) {
        let mut put = |name: &'static str, value: String| {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), v);
            }
        };
        put("x-litellm-call-id", self.call_id.clone());
        put("x-litellm-version", VERSION.to_string());
        if let Some(g) = &self.model_group {
            put("x-litellm-model-group", g.clone());
        }
        if let Some(id) = &self.deployment_id {
            put("x-litellm-model-id", id.clone());
        }
        if let Some(base) = &self.api_base {
            put("x-litellm-model-api-base", base.clone());
        }
        if let Some(t) = self.timeout {
            put("x-litellm-timeout", format!("{}", t.as_secs_f64()));
        }
        let total = started.elapsed();
        put("x-litellm-response-duration-ms", format!("{:.3}", total.as_secs_f64() * 1000.0));
        let overhead = total.saturating_sub(self.upstream_time);
        put("x-litellm-overhead-duration-ms", format!("{:.3}", overhead.as_secs_f64() * 1000.0));
        put("x-litellm-attempted-retries", "0".into());
        put("x-litellm-attempted-fallbacks", "0".into());
        for (k, v) in &self.provider_headers {
            headers.insert(k.clone(), v.clone());
        }
    }
}

/// Upstream headers the client gets: `x-ratelimit-*` as they are, everything else as
/// `llm_provider-<name>`. Transport headers are not forwarded.
fn provider_headers(upstream: &awc::http::header::HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    const SKIP: &[&str] = &[
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "content-encoding",
        "date",
        "server",
        "set-cookie",
    ];
    let mut out = Vec::new();
    for (name, value) in upstream.iter() {
        let name = name.as_str();
        if SKIP.contains(&name) {
            continue;
        }
        let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) else {
            continue;
        };
        if name.starts_with("x-ratelimit-") {
            if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
                out.push((n, value.clone()));
            }
        }
        if let Ok(n) = HeaderName::from_bytes(format!("llm_provider-{name}").as_bytes()) {
            out.push((n, value));
        }
    }
    out
}

fn header_seconds(req: &HttpRequest, name: &str) -> Result<Option<Duration>, GatewayError> {
    match req.headers().get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| *s > 0.0 && s.is_finite())
            .map(|s| Some(Duration::from_secs_f64(s)))
            .ok_or_else(|| GatewayError::bad_request(format!("header {name} must be a positive number of seconds"))),
    }
}

fn failure_class(err: &GatewayError) -> Option<FailureClass> {
    match err {
        GatewayError::Timeout { .. } => Some(FailureClass::Timeout),
        GatewayError::Upstream { kind, .. } => Some(match kind {
            UpstreamErrorKind::RateLimit => FailureClass::RateLimit,
            UpstreamErrorKind::Authentication | UpstreamErrorKind::PermissionDenied => FailureClass::Auth,
            UpstreamErrorKind::NotFound => FailureClass::NotFound,
            UpstreamErrorKind::Timeout => FailureClass::Timeout,
            UpstreamErrorKind::Connection | UpstreamErrorKind::StreamInterrupted => FailureClass::Connection,
            UpstreamErrorKind::Server => FailureClass::Server,
            UpstreamErrorKind::BadRequest
            | UpstreamErrorKind::ContextWindowExceeded
            | UpstreamErrorKind::ContentPolicy => FailureClass::BadRequest,
        }),
        _ => None,
    }
}

fn report(handle: &DeploymentHandle<Deployment>, err: &GatewayError) {
    if let Some(class) = failure_class(err) {
        let status = match err {
            GatewayError::Upstream { status, .. } => Some(*status),
            GatewayError::Timeout { .. } => Some(408),
            _ => None,
        };
        handle.report_failure(DeploymentFailure {
            class,
            status,
            retry_after: err.retry_after(),
        });
    }
}

/// Run one LLM call through the pipeline. Always returns a response: errors become the OpenAI
/// envelope, with the same `x-litellm-*` headers as a success.
pub async fn run(
    state: &AppState,
    http: &HttpRequest,
    caller: Caller,
    kind: CallKind,
    path_model: Option<&str>,
    raw: Bytes,
) -> HttpResponse {
    let started = Instant::now();
    let mut served = ServedBy {
        call_id: uuid::Uuid::new_v4().to_string(),
        ..ServedBy::default()
    };
    let result = serve(state, http, caller, kind, path_model, raw, started, &mut served).await;
    let mut response = match result {
        Ok(response) => response,
        Err(err) => {
            let status = err.status_code();
            if status.is_server_error() {
                tracing::warn!(call_id = served.call_id, status = status.as_u16(), error = %err, "request failed");
            } else {
                tracing::debug!(call_id = served.call_id, status = status.as_u16(), error = %err, "request rejected");
            }
            err.error_response()
        }
    };
    served.apply(response.headers_mut(), started);
    response
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    state: &AppState,
    http: &HttpRequest,
    caller: Caller,
    kind: CallKind,
    path_model: Option<&str>,
    raw: Bytes,
    started: Instant,
    served: &mut ServedBy,
) -> Result<HttpResponse, GatewayError> {
    // 2. parse
    let req = LlmRequest::parse(kind, &raw, path_model)?;
    if !req.gateway.ignored_credentials.is_empty() {
        tracing::warn!(
            call_id = served.call_id,
            fields = ?req.gateway.ignored_credentials,
            "request tried to set credential or routing fields; ignored"
        );
    }
    if state.detailed_debug {
        let body = redact_json(&Value::Object(req.body.clone()));
        tracing::debug!(call_id = served.call_id, ?caller, %body, "request");
    }

    // 3. route
    let snapshot = state.router.snapshot();
    let group_name = state
        .aliases
        .get(&req.model)
        .map(|a| a.target.as_str())
        .unwrap_or(&req.model);
    let group = snapshot
        .group(group_name)
        .ok_or_else(|| GatewayError::UnknownModel { model: req.model.clone() })?;
    served.model_group = Some(group.name.clone());
    let now = now_ms();
    let handle = group.pick(now, &[]).ok_or_else(|| GatewayError::NoDeploymentsAvailable {
        model_group: group.name.clone(),
        retry_after: Duration::from_millis(group.next_available_ms().unwrap_or(now).saturating_sub(now).max(1000)),
    })?;
    let deployment = handle.upstream.clone();
    served.deployment_id = Some(deployment.id.clone());
    served.api_base = deployment.api_base().map(str::to_string);
    let in_flight = handle.state.begin();

    // Timeouts: body, then header, then deployment, then global.
    let timeout = req
        .gateway
        .timeout
        .or(header_seconds(http, "x-litellm-timeout")?)
        .or(deployment.timeout)
        .unwrap_or(state.request_timeout);
    let stream_timeout = req
        .gateway
        .stream_timeout
        .or(header_seconds(http, "x-litellm-stream-timeout")?)
        .or(deployment.stream_timeout)
        .unwrap_or(timeout);
    served.timeout = Some(if req.stream { stream_timeout } else { timeout });

    if let Some(content) = req.gateway.mock_response.as_ref().or(deployment.mock_response.as_ref()) {
        handle.state.record_success(started.elapsed());
        return Ok(crate::mock_response::respond(&req, content));
    }

    // 4. translate
    let target = deployment.target_for(&req.model)?;
    let adapter: &dyn ProviderAdapter = providers::adapter_for(target.spec.wire).ok_or_else(|| {
        GatewayError::DeploymentMisconfigured {
            message: format!("no adapter for provider '{}'", target.spec.name),
        }
    })?;
    let prepared = adapter.prepare(&deployment, &target, &req)?;
    if state.debug {
        tracing::debug!(
            call_id = served.call_id,
            model_group = group.name,
            deployment = deployment.id,
            url = prepared.url,
            headers = ?prepared.redacted_headers(),
            stream = req.stream,
            "upstream request"
        );
    }

    // 5. call
    let call_started = Instant::now();
    let head_timeout = if req.stream { stream_timeout } else { timeout };
    let key = target.api_key.clone();
    let sent = upstream::send(prepared, head_timeout, &req.model, key.as_ref()).await;
    let mut response = match sent {
        Ok(r) => r,
        Err(e) => {
            served.upstream_time = call_started.elapsed();
            report(&handle, &e);
            return Err(e);
        }
    };
    served.provider_headers = provider_headers(response.headers());
    let status = response.status().as_u16();

    if !(200..300).contains(&status) || !req.stream {
        let left = timeout.saturating_sub(call_started.elapsed());
        let body = upstream::read_body(&mut response, left, &req.model).await;
        served.upstream_time = call_started.elapsed();
        let result = body.and_then(|body| {
            if (200..300).contains(&status) {
                adapter.translate_response(&req, body)
            } else {
                Err(adapter.translate_error(&target, status, upstream::retry_after(response.headers()), &body))
            }
        });
        return match result {
            Ok(translated) => {
                // 7. account
                handle.state.record_success(served.upstream_time);
                log_usage(served, &group.name, &deployment, translated.usage, started);
                drop(in_flight);
                Ok(HttpResponse::Ok()
                    .content_type("application/json")
                    .body(translated.body))
            }
            Err(e) => {
                report(&handle, &e);
                Err(e)
            }
        };
    }

    // 6. relay the stream
    served.upstream_time = call_started.elapsed();
    let call_id = served.call_id.clone();
    let group_name = group.name.clone();
    let handle_for_end: Arc<DeploymentHandle<Deployment>> = handle.clone();
    let relay = SseRelay::new(response, req.client_wants_usage, stream_timeout, move |outcome: StreamOutcome| {
        let _in_flight = in_flight;
        match &outcome.error {
            None => {
                handle_for_end.state.record_success(
                    outcome.first_byte_at.map(|t| t - call_started).unwrap_or_else(|| call_started.elapsed()),
                );
            }
            Some(error) if !outcome.client_disconnected => {
                handle_for_end.report_failure(DeploymentFailure {
                    class: FailureClass::Connection,
                    status: None,
                    retry_after: None,
                });
                tracing::warn!(call_id, model_group = group_name, error, "stream ended with an error");
            }
            Some(_) => tracing::debug!(call_id, "client disconnected mid-stream"),
        }
        if let Some(usage) = outcome.usage {
            tracing::debug!(
                call_id,
                model_group = group_name,
                prompt_tokens = usage.prompt_tokens,
                completion_tokens = usage.completion_tokens,
                total_tokens = usage.total_tokens,
                duration_ms = started.elapsed().as_millis() as u64,
                "stream finished"
            );
        }
    });
    Ok(HttpResponse::build(StatusCode::OK)
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(relay))
}

fn log_usage(served: &ServedBy, group: &str, deployment: &Deployment, usage: Option<Usage>, started: Instant) {
    let usage = usage.unwrap_or_default();
    tracing::debug!(
        call_id = served.call_id,
        model_group = group,
        deployment = deployment.id,
        prompt_tokens = usage.prompt_tokens,
        completion_tokens = usage.completion_tokens,
        total_tokens = usage.total_tokens,
        duration_ms = started.elapsed().as_millis() as u64,
        "request finished"
    );
}

/// The body to forward for a mock or test call: kept here so the health probe and `--test` reuse it.
pub fn test_chat_body(model: &str, prompt: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": prompt}]})
}
