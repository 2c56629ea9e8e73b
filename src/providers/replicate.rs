//! Replicate (`replicate/<owner>/<model>:<version>`, `replicate/<owner>/<model>`,
//! `replicate/deployments/<owner>/<name>`): every call creates a prediction, which Replicate runs
//! as a job.
//!
//! - Create: `POST {base}/predictions` with `{"version", "input"}` for a versioned model,
//!   `POST {base}/models/{owner}/{model}/predictions` or
//!   `POST {base}/deployments/{owner}/{name}/predictions` with `{"input"}`; bearer key
//!   (`REPLICATE_API_KEY`, `REPLICATE_API_TOKEN`) and, unless streaming, `Prefer: wait=<n>` (the
//!   request's or the deployment's timeout, at most 60 s) so that a fast prediction answers at
//!   once.
//! - Input: `prompt` is the chat messages written with the deployment's prompt template
//!   ([`super::prompt_template`]) when it has one; else the system messages go to
//!   `system_prompt` and the others make the prompt as for SageMaker's TGI endpoints (Llama-2's
//!   chat template for Llama-2 chat models, else `role: content` lines). A text completion's
//!   `prompt` is sent as it is. `max_tokens` goes as `max_new_tokens` (and `max_tokens`), `stop`
//!   as the comma-joined `stop_sequences`; `temperature`, `top_p`, `seed` and the model's own
//!   inputs go as they are.
//! - Follow-up ([`ProviderAdapter::follow_up`]): a prediction that is not finished is polled at
//!   `urls.get` (100 ms doubling to 1 s) until it is, within the attempt's timeout; a streaming
//!   call reads `urls.stream` (server-sent `output`, `done` and `error` events). A prediction
//!   left behind (the client went away, or the wait ran out) is cancelled at `urls.cancel`.
//! - The key goes only where the deployment sends it: a URL of `urls` is followed when
//!   [`may_follow`] allows it (the `api_base`'s scheme, host and port; Replicate's stream host for
//!   Replicate's own API). Another `get` or `cancel` URL is replaced by
//!   `{base}/predictions/{id}[/cancel]`; a stream on another host is polled instead and its output
//!   replayed as one event.
//! - Output: `output` is a list of strings (joined) or a string; usage from
//!   `metrics.input_token_count` / `output_token_count`, else estimated (four characters a token).

use std::borrow::Cow;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tollgate_wire::openai::{Delta, TextChoice, TextCompletion};
use url::Url;

use super::native::{self, upstream_error};
use super::openai::classify;
use super::stream::{ChunkWriter, SseEvents, StreamTranslator};
use super::{
    ErrorReply, FollowUp, FollowedUp, PreparedRequest, ProviderAdapter, ProviderSpec,
    TranslatedResponse, Wire,
};
use crate::deployment::{Deployment, Target};
use crate::error::{GatewayError, UpstreamErrorKind};
use crate::llm::{CallKind, LlmRequest, Usage};
use crate::outbound::Trust;
use crate::secret::Secret;
use crate::upstream;

/// Replicate's API, `/v1` included.
pub const DEFAULT_API_BASE: &str = "https://api.replicate.com/v1";
/// The host of Replicate's API, and the one it serves prediction streams from.
const API_HOST: &str = "api.replicate.com";
const STREAM_HOST: &str = "stream.replicate.com";

const PROVIDER: &str = "Replicate";

/// The longest `Prefer: wait` Replicate honours, in seconds.
const MAX_WAIT_SECS: u64 = 60;
/// The first pause between two polls of a running prediction; each next one doubles, up to
/// [`LAST_POLL_PAUSE`].
const FIRST_POLL_PAUSE: Duration = Duration::from_millis(100);
const LAST_POLL_PAUSE: Duration = Duration::from_secs(1);
/// How long the cancellation of a prediction left behind may take.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

/// OpenAI parameters Replicate's language models have no input for.
pub(crate) const UNSUPPORTED: &[&str] = &[
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "parallel_tool_calls",
    "response_format",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "modalities",
    "audio",
    "prediction",
    "web_search_options",
];

/// Fields of the OpenAI body that do not go into `input` as they are.
const CONSUMED: &[&str] = &[
    "model",
    "messages",
    "prompt",
    "n",
    "stream",
    "stream_options",
    "user",
    "store",
    "metadata",
    "service_tier",
    "reasoning_effort",
    "max_tokens",
    "max_completion_tokens",
    "stop",
];

/// The registry entry of `replicate`.
pub const fn spec() -> ProviderSpec {
    ProviderSpec {
        name: "replicate",
        wire: Wire::Replicate,
        default_api_base: Some(DEFAULT_API_BASE),
        api_base_env: &["REPLICATE_API_BASE"],
        api_key_env: &["REPLICATE_API_KEY", "REPLICATE_API_TOKEN"],
        unsupported_params: &[],
    }
}

/// The Replicate adapter.
pub struct ReplicateAdapter;

/// The one [`ReplicateAdapter`].
pub static REPLICATE: ReplicateAdapter = ReplicateAdapter;

/// Where a model's predictions are created, and the version the body names (versioned models).
fn predictions_url(target: &Target) -> (String, Option<&str>) {
    let base = target.api_base.trim_end_matches('/');
    let model = target.model.as_str();
    if let Some(name) = model.strip_prefix("deployments/") {
        return (format!("{base}/deployments/{name}/predictions"), None);
    }
    match model.rsplit_once(':') {
        Some((_, version)) => (format!("{base}/predictions"), Some(version)),
        None => (format!("{base}/models/{model}/predictions"), None),
    }
}

fn is_system(m: &Value) -> bool {
    matches!(
        m.get("role").and_then(Value::as_str),
        Some("system" | "developer")
    )
}

/// The prediction's `input` for a chat or text completion call.
fn input(
    deployment: &Deployment,
    target: &Target,
    req: &LlmRequest,
) -> Result<Map<String, Value>, GatewayError> {
    let src = native::openai_body(deployment, target, req, UNSUPPORTED)?;
    // One answer per prediction: `n` above 1 is refused (or dropped with `drop_params`).
    if src.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1)
        && !native::drop_params(deployment, req)
    {
        return Err(native::unsupported_error(target, &["n"]));
    }
    let mut input = Map::new();
    match req.kind {
        CallKind::Chat => {
            let Some(Value::Array(messages)) = src.get("messages") else {
                return Err(native::bad_request(target, "messages are required"));
            };
            let template = super::prompt_template::PromptTemplate::from_params(|k| {
                deployment.provider_params.get(k).cloned()
            });
            match template {
                Some(t) => {
                    input.insert("prompt".into(), json!(t.render(messages)));
                }
                None => {
                    let (system, turns): (Vec<Value>, Vec<Value>) =
                        messages.iter().cloned().partition(is_system);
                    let prompt = super::sagemaker::prompt(&target.model, &turns);
                    input.insert("prompt".into(), json!(prompt));
                    if !system.is_empty() {
                        let text: Vec<String> = system
                            .iter()
                            .map(|m| native::content_text(m.get("content")))
                            .collect();
                        input.insert("system_prompt".into(), json!(text.join("\n")));
                    }
                }
            }
        }
        CallKind::Completion => {
            let prompt =
                match src.get("prompt") {
                    Some(Value::String(p)) => p.clone(),
                    Some(Value::Array(items)) if items.len() == 1 && items[0].is_string() => {
                        items[0].as_str().unwrap_or_default().to_string()
                    }
                    _ => return Err(native::bad_request(
                        target,
                        "the prompt must be one string (Replicate runs one prompt per prediction)",
                    )),
                };
            input.insert("prompt".into(), json!(prompt));
        }
        kind => return Err(native::unsupported_call(target, kind)),
    }
    if let Some(n) = src
        .get("max_completion_tokens")
        .or_else(|| src.get("max_tokens"))
        .filter(|v| !v.is_null())
    {
        input.insert("max_new_tokens".into(), n.clone());
        input.insert("max_tokens".into(), n.clone());
    }
    if let Some(stop) = src.get("stop") {
        let stops = native::stop_list(stop);
        let stops: Vec<&str> = stops.iter().filter_map(Value::as_str).collect();
        if !stops.is_empty() {
            input.insert("stop_sequences".into(), json!(stops.join(",")));
        }
    }
    // `temperature`, `top_p`, `seed` and the model's own inputs (`top_k`, `min_tokens`…).
    for (k, v) in src {
        if !CONSUMED.contains(&k.as_str()) && !v.is_null() {
            input.entry(k).or_insert(v);
        }
    }
    Ok(input)
}

/// `Prefer: wait=<n>`: the request's or the deployment's timeout in seconds, at most 60.
fn wait_secs(deployment: &Deployment, req: &LlmRequest) -> u64 {
    req.gateway
        .timeout
        .or(deployment.timeout)
        .map_or(MAX_WAIT_SECS, |t| t.as_secs().clamp(1, MAX_WAIT_SECS))
}

impl ProviderAdapter for ReplicateAdapter {
    fn prepare(
        &self,
        deployment: &Deployment,
        target: &Target,
        req: &LlmRequest,
    ) -> Result<PreparedRequest, GatewayError> {
        let input = input(deployment, target, req)?;
        let (url, version) = predictions_url(target);
        let mut body = Map::new();
        if let Some(version) = version {
            body.insert("version".into(), json!(version));
        }
        body.insert("input".into(), Value::Object(input));
        if req.stream {
            body.insert("stream".into(), json!(true));
        }
        let mut headers = native::json_headers(deployment, target, false);
        // A stream is read as the prediction runs: its create must not wait for the end.
        if !req.stream {
            headers.push((
                Cow::Borrowed("prefer"),
                format!("wait={}", wait_secs(deployment, req)),
            ));
        }
        PreparedRequest::json(target.url(url), headers, &body)
    }

    fn supports(&self, kind: CallKind) -> bool {
        matches!(kind, CallKind::Chat | CallKind::Completion)
    }

    fn translate_response(
        &self,
        req: &LlmRequest,
        body: Bytes,
    ) -> Result<TranslatedResponse, GatewayError> {
        let prediction = Prediction::parse(&body)?;
        if prediction.state() != State::Succeeded {
            return Err(native::bad_body(
                PROVIDER,
                format_args!("the prediction is {}", prediction.status),
            ));
        }
        let text = prediction.text();
        let usage = native::usage(
            prediction
                .metrics
                .input_token_count
                .unwrap_or_else(|| prompt_tokens(req)),
            prediction
                .metrics
                .output_token_count
                .unwrap_or_else(|| estimate(text.chars().count())),
            0,
        );
        if req.kind == CallKind::Completion {
            let out = TextCompletion {
                id: Cow::Owned(format!("cmpl-{}", prediction.id)),
                object: Cow::Borrowed("text_completion"),
                created: super::now_secs(),
                model: Cow::Borrowed(&req.model),
                choices: vec![TextChoice {
                    text: Cow::Owned(text),
                    index: 0,
                    logprobs: None,
                    finish_reason: Some(Cow::Borrowed("stop")),
                }],
                usage: Some(Some(usage.to_openai())),
                extra: Map::new(),
            };
            let body = serde_json::to_vec(&out)
                .map_err(|e| GatewayError::internal(format!("cannot encode response: {e}")))?;
            return Ok(TranslatedResponse {
                body: Bytes::from(body),
                usage: Some(usage),
                response_id: Some(out.id.into_owned()),
            });
        }
        let id = format!("chatcmpl-{}", prediction.id);
        TranslatedResponse::completion(
            &native::chat_completion(id, &req.model, text, Vec::new(), "stop", &usage),
            usage,
        )
    }

    fn error(&self, reply: &ErrorReply<'_>) -> GatewayError {
        let (target, status, retry_after, body) = reply.parts();
        // Replicate's errors are problem details: `{"detail", "status", "title"}`.
        let message = native::error_text(status, body, &["detail", "title", "error"]);
        let kind = classify(status, None, &message);
        upstream_error(target, PROVIDER, status, kind, &message, retry_after)
    }

    fn stream_translator(
        &self,
        _target: &Target,
        req: &LlmRequest,
    ) -> Option<Box<dyn StreamTranslator>> {
        Some(Box::new(ReplicateStream::new(req)))
    }

    fn follow_up<'a>(
        &'a self,
        call: FollowUp<'a>,
    ) -> Option<LocalBoxFuture<'a, Result<FollowedUp, GatewayError>>> {
        Some(Box::pin(follow(call)))
    }
}

/// A prediction as Replicate shows it: the fields the gateway reads (the rest is not kept).
#[derive(Debug, Default, Deserialize)]
struct Prediction {
    #[serde(default)]
    id: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    output: Value,
    #[serde(default)]
    error: Value,
    #[serde(default)]
    metrics: Metrics,
    #[serde(default)]
    urls: Urls,
}

#[derive(Debug, Default, Deserialize)]
struct Metrics {
    #[serde(default)]
    input_token_count: Option<u64>,
    #[serde(default)]
    output_token_count: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct Urls {
    #[serde(default)]
    get: Option<String>,
    #[serde(default)]
    cancel: Option<String>,
    #[serde(default)]
    stream: Option<String>,
}

/// Where a prediction is: still running, or finished one way or the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Succeeded,
    /// `failed`, `canceled` (or `aborted`).
    Ended,
}

impl Prediction {
    fn parse(body: &[u8]) -> Result<Self, GatewayError> {
        serde_json::from_slice(body).map_err(|e| native::bad_body(PROVIDER, e))
    }

    fn state(&self) -> State {
        match self.status.as_str() {
            "succeeded" => State::Succeeded,
            "failed" | "canceled" | "aborted" => State::Ended,
            _ => State::Running,
        }
    }

    /// The output text: a list of strings joined, or a string.
    fn text(&self) -> String {
        match &self.output {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts.iter().filter_map(Value::as_str).collect(),
            _ => String::new(),
        }
    }

    /// The error of a prediction that failed or was cancelled: a provider error the router
    /// retries like a 5xx.
    fn error(&self, target: &Target) -> GatewayError {
        let why = match &self.error {
            Value::String(s) if !s.is_empty() => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        let message = match (self.status.as_str(), why.is_empty()) {
            ("failed", false) => format!("prediction {} failed: {why}", self.id),
            ("failed", true) => format!("prediction {} failed", self.id),
            (status, _) => format!("prediction {} was {status}", self.id),
        };
        upstream_error(
            target,
            PROVIDER,
            500,
            UpstreamErrorKind::Server,
            &message,
            None,
        )
    }
}

/// Four characters a token, as the TGI adapter estimates.
fn estimate(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

/// The prompt's tokens, estimated from the messages' text (chat) or the prompt (completions).
fn prompt_tokens(req: &LlmRequest) -> u64 {
    let chars: usize = match req.body.get("messages").and_then(Value::as_array) {
        Some(messages) => messages
            .iter()
            .map(|m| super::prompt_template::message_text(m).chars().count())
            .sum(),
        None => match req.body.get("prompt") {
            Some(Value::String(p)) => p.chars().count(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(|p| p.chars().count())
                .sum(),
            _ => 0,
        },
    };
    estimate(chars)
}

/// Whether `url`, one of a prediction's `urls`, may be contacted with the deployment's key: its
/// scheme, host and port are those of `api_base`, or (a stream of Replicate's own API,
/// `https://api.replicate.com`) it is on `https://stream.replicate.com`. Both URLs are parsed and
/// their hosts and ports compared, never their text; a URL with userinfo is refused.
fn may_follow(api_base: &str, url: &str, stream: bool) -> bool {
    let (Ok(base), Ok(url)) = (Url::parse(api_base), Url::parse(url)) else {
        return false;
    };
    if !matches!(url.scheme(), "http" | "https")
        || url.host().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return false;
    }
    if url.scheme() == base.scheme()
        && url.host() == base.host()
        && url.port_or_known_default() == base.port_or_known_default()
    {
        return true;
    }
    let https_on = |u: &Url, host: &str| {
        u.scheme() == "https"
            && u.host_str() == Some(host)
            && u.port_or_known_default() == Some(443)
    };
    stream && https_on(&base, API_HOST) && https_on(&url, STREAM_HOST)
}

/// Which of a prediction's `urls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Get,
    Cancel,
    Stream,
}

impl Link {
    fn name(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Cancel => "cancel",
            Self::Stream => "stream",
        }
    }
}

/// What the calls after the create carry: the key, the deployment's extra headers and TLS.
struct Session {
    headers: Vec<(Cow<'static, str>, String)>,
    key: Option<Secret>,
    trust: Option<Trust>,
    model: String,
    /// The deployment's target: its `api_base` is where the key may go.
    target: Target,
}

impl Session {
    fn new(call: &FollowUp<'_>) -> Self {
        let mut headers = native::json_headers(call.deployment, call.target, false);
        headers.retain(|(k, _)| k != "content-type");
        Self {
            headers,
            key: call.target.api_key.clone(),
            trust: call.deployment.trust.clone(),
            model: call.req.model.clone(),
            target: call.target.clone(),
        }
    }

    /// Where to send the prediction's `link` call: the URL Replicate gave when [`may_follow`]
    /// allows it; else, for `get` and `cancel`, the one built from the `api_base` and the
    /// prediction's id (`None` without a usable id), and for `stream` none (the caller polls).
    /// `None` as well when Replicate gave no URL.
    fn link(&self, prediction: &Prediction, link: Link) -> Option<String> {
        let given = match link {
            Link::Get => prediction.urls.get.as_deref(),
            Link::Cancel => prediction.urls.cancel.as_deref(),
            Link::Stream => prediction.urls.stream.as_deref(),
        }?;
        if may_follow(&self.target.api_base, given, link == Link::Stream) {
            return Some(given.to_string());
        }
        let host = Url::parse(given)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        tracing::warn!(
            model = self.model,
            link = link.name(),
            host,
            "Replicate gave a URL on another host than the api_base; not followed"
        );
        let id = prediction.id.as_str();
        if link == Link::Stream || id.is_empty() || id == "." || id == ".." {
            return None;
        }
        let base = self.target.api_base.trim_end_matches('/');
        let id = super::urls::segment(id);
        Some(self.target.url(match link {
            Link::Cancel => format!("{base}/predictions/{id}/cancel"),
            _ => format!("{base}/predictions/{id}"),
        }))
    }

    fn request(&self, url: &str, accept: &str) -> PreparedRequest {
        let mut headers = self.headers.clone();
        for (k, v) in &mut headers {
            if k == "accept" {
                *v = accept.to_string();
            }
        }
        PreparedRequest {
            url: url.to_string(),
            headers,
            body: Bytes::new(),
        }
    }

    async fn get(
        &self,
        url: &str,
        accept: &str,
        timeout: Duration,
    ) -> Result<upstream::UpstreamResponse, GatewayError> {
        upstream::send_with(
            awc::http::Method::GET,
            self.request(url, accept),
            timeout,
            &self.model,
            self.key.as_ref(),
            self.trust.as_ref(),
        )
        .await
    }
}

/// Cancels a prediction when dropped before it finished (the client went away, the wait ran
/// out): one `POST urls.cancel`, sent off the request's path.
struct CancelOnDrop {
    request: Option<PreparedRequest>,
    key: Option<Secret>,
    trust: Option<Trust>,
    model: String,
}

impl CancelOnDrop {
    fn new(prediction: &Prediction, session: &Session) -> Self {
        let request = match prediction.state() {
            State::Running => session
                .link(prediction, Link::Cancel)
                .map(|url| session.request(&url, "application/json")),
            _ => None,
        };
        Self {
            request,
            key: session.key.clone(),
            trust: session.trust.clone(),
            model: session.model.clone(),
        }
    }

    /// The prediction finished: nothing to cancel.
    fn disarm(&mut self) {
        self.request = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(request) = self.request.take() else {
            return;
        };
        let (key, trust, model) = (self.key.take(), self.trust.take(), self.model.clone());
        actix_web::rt::spawn(async move {
            let url = crate::secret::display_url(&request.url);
            match upstream::send(
                request,
                CANCEL_TIMEOUT,
                &model,
                key.as_ref(),
                trust.as_ref(),
            )
            .await
            {
                Ok(r) if r.status().is_success() => {
                    tracing::debug!(model, url = %url, "cancelled a Replicate prediction left behind");
                }
                Ok(r) => {
                    tracing::warn!(model, url = %url, status = r.status().as_u16(), "Replicate refused to cancel a prediction left behind");
                }
                Err(e) => {
                    tracing::warn!(model, url = %url, error = %e, "cannot cancel a Replicate prediction left behind");
                }
            }
        });
    }
}

/// The follow-up of a created prediction: polled to its end, or its output streamed.
async fn follow(call: FollowUp<'_>) -> Result<FollowedUp, GatewayError> {
    let deadline = call.started + call.timeout;
    let left = deadline.saturating_duration_since(Instant::now());
    let body = upstream::read_body(&mut *call.created, left, &call.req.model).await?;
    let prediction = Prediction::parse(&body)?;
    let session = Session::new(&call);
    let mut guard = CancelOnDrop::new(&prediction, &session);
    if !call.req.stream {
        let (_, body) = poll(&call, &session, &mut guard, prediction, body).await?;
        return Ok(FollowedUp::Body(body));
    }
    let stream_url = match prediction.state() {
        State::Running => session.link(&prediction, Link::Stream),
        _ => None,
    };
    let stream_url = match stream_url {
        Some(url) => url,
        // Finished already, a model that does not stream, or a stream on another host: its
        // output, once finished, as one event.
        None => {
            let (done, _) = poll(&call, &session, &mut guard, prediction, body).await?;
            return Ok(FollowedUp::Stream {
                body: Box::pin(futures_util::stream::iter([Ok(replay(&done))])),
                translator: None,
            });
        }
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let mut response = session.get(&stream_url, "text/event-stream", left).await?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        let body = upstream::read_body(&mut response, left, &call.req.model).await?;
        return Err(REPLICATE.error(&ErrorReply {
            target: call.target,
            status,
            retry_after: upstream::retry_after(response.headers()),
            body: &body,
        }));
    }
    // The translator ends the guard's watch when it reads the prediction's end.
    Ok(FollowedUp::Stream {
        body: Box::pin(response.map(|item| item.map_err(|e| e.to_string()))),
        translator: Some(Box::new(ReplicateStream::new(call.req).watching(guard))),
    })
}

/// Poll a prediction until it succeeded (its last answer, parsed and raw), failed or the
/// attempt's time ran out.
async fn poll(
    call: &FollowUp<'_>,
    session: &Session,
    guard: &mut CancelOnDrop,
    mut prediction: Prediction,
    mut body: Bytes,
) -> Result<(Prediction, Bytes), GatewayError> {
    let deadline = call.started + call.timeout;
    let timed_out = || GatewayError::Timeout {
        model: call.req.model.clone(),
        timeout: call.timeout,
    };
    let mut pause = FIRST_POLL_PAUSE;
    let mut get = None;
    loop {
        match prediction.state() {
            State::Succeeded => {
                guard.disarm();
                return Ok((prediction, body));
            }
            State::Ended => {
                guard.disarm();
                return Err(prediction.error(call.target));
            }
            State::Running => {}
        }
        if get.is_none() {
            get = session.link(&prediction, Link::Get);
        }
        let Some(url) = get.clone() else {
            return Err(native::bad_body(
                PROVIDER,
                "a running prediction without urls.get",
            ));
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left <= pause {
            // The guard cancels the prediction as it drops.
            actix_web::rt::time::sleep(left).await;
            return Err(timed_out());
        }
        actix_web::rt::time::sleep(pause).await;
        pause = (pause * 2).min(LAST_POLL_PAUSE);
        let left = deadline.saturating_duration_since(Instant::now());
        let mut response = session.get(&url, "application/json", left).await?;
        let status = response.status().as_u16();
        let raw = upstream::read_body(&mut response, left, &call.req.model).await?;
        if !(200..300).contains(&status) {
            return Err(REPLICATE.error(&ErrorReply {
                target: call.target,
                status,
                retry_after: upstream::retry_after(response.headers()),
                body: &raw,
            }));
        }
        prediction = Prediction::parse(&raw)?;
        body = raw;
    }
}

/// A finished prediction's output as the events of its stream: one `output`, then `done`.
fn replay(prediction: &Prediction) -> Bytes {
    let mut out = String::from("event: output\n");
    for line in prediction.text().split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("\nevent: done\ndata: {}\n\n");
    Bytes::from(out)
}

/// A prediction's server-sent events as OpenAI chunks (`chat.completion.chunk`, or
/// `text_completion` chunks for a text completion): `output` events are text, `done` ends the
/// stream with its finish and usage chunks, `error` breaks it.
pub struct ReplicateStream {
    events: SseEvents,
    chunks: ChunkWriter,
    /// Text completion chunks, written here (chat chunks are written by `chunks`).
    text_out: BytesMut,
    chat: bool,
    prompt_tokens: u64,
    /// Output events and characters relayed, for the estimated usage.
    parts: u64,
    chars: usize,
    started: bool,
    ended: bool,
    /// The prediction's cancellation, disarmed when its `done` or `error` event is read (the
    /// stream of a follow-up: dropped before then, the prediction is cancelled).
    guard: Option<CancelOnDrop>,
}

impl ReplicateStream {
    /// The translator for a call's stream.
    pub fn new(req: &LlmRequest) -> Self {
        Self {
            events: SseEvents::default(),
            chunks: ChunkWriter::new(
                format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
                req.model.clone(),
            ),
            text_out: BytesMut::new(),
            chat: req.kind != CallKind::Completion,
            prompt_tokens: prompt_tokens(req),
            parts: 0,
            chars: 0,
            started: false,
            ended: false,
            guard: None,
        }
    }

    /// The translator that disarms `guard` when the prediction's end is read.
    fn watching(mut self, guard: CancelOnDrop) -> Self {
        self.guard = Some(guard);
        self
    }

    fn text_chunk(&mut self, text: &str, finish: Option<&str>, usage: Option<&Usage>) {
        let choices = if usage.is_some() {
            Vec::new()
        } else {
            vec![TextChoice {
                text: Cow::Borrowed(text),
                index: 0,
                logprobs: None,
                finish_reason: finish.map(Cow::Borrowed),
            }]
        };
        let chunk = TextCompletion {
            id: Cow::Borrowed(&self.chunks.id),
            object: Cow::Borrowed("text_completion"),
            created: self.chunks.created,
            model: Cow::Borrowed(&self.chunks.model),
            choices,
            usage: usage.map(|u| Some(u.to_openai())),
            extra: Map::new(),
        };
        // Serializing these types cannot fail (string keys).
        let json = serde_json::to_vec(&chunk).unwrap_or_default();
        self.text_out.extend_from_slice(b"data: ");
        self.text_out.extend_from_slice(&json);
        self.text_out.extend_from_slice(b"\n\n");
    }

    fn output(&mut self, text: &str) {
        self.parts += 1;
        self.chars += text.chars().count();
        if self.chat {
            if !self.started {
                self.chunks.delta(0, Delta::start(), None);
            }
            if !text.is_empty() {
                self.chunks.delta(0, Delta::text(text), None);
            }
        } else if !text.is_empty() {
            self.text_chunk(text, None, None);
        }
        self.started = true;
    }

    fn done(&mut self) {
        let usage = native::usage(self.prompt_tokens, self.parts.max(estimate(self.chars)), 0);
        if self.chat {
            if !self.started {
                self.chunks.delta(0, Delta::start(), None);
            }
            self.chunks.delta(0, Delta::default(), Some("stop"));
            self.chunks.usage(&usage);
            self.chunks.done();
        } else {
            self.text_chunk("", Some("stop"), None);
            self.text_chunk("", None, Some(&usage));
            self.text_out.extend_from_slice(crate::sse::DONE_EVENT);
        }
        self.ended = true;
    }

    fn event(&mut self, event: Option<&str>, data: &str) -> Result<(), GatewayError> {
        // The prediction ended (succeeded, failed or was canceled): nothing left to cancel.
        if matches!(event, Some("done" | "error")) {
            if let Some(guard) = &mut self.guard {
                guard.disarm();
            }
        }
        if self.ended {
            return Ok(());
        }
        match event.unwrap_or("output") {
            "output" => self.output(data),
            "done" => {
                let reason = serde_json::from_str::<Value>(data)
                    .ok()
                    .and_then(|v| v.get("reason").and_then(Value::as_str).map(str::to_string));
                match reason.as_deref() {
                    Some("canceled") => {
                        return Err(native::stream_error(
                            PROVIDER,
                            "the prediction was canceled",
                        ))
                    }
                    Some(other) if !other.is_empty() => {
                        return Err(native::stream_error(
                            PROVIDER,
                            &format!("the prediction ended: {other}"),
                        ))
                    }
                    _ => self.done(),
                }
            }
            "error" => {
                let message = serde_json::from_str::<Value>(data)
                    .ok()
                    .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_else(|| data.to_string());
                return Err(native::stream_error(PROVIDER, &message));
            }
            // `logs` and whatever else Replicate adds.
            _ => {}
        }
        Ok(())
    }

    fn take(&mut self) -> Bytes {
        if self.chat {
            self.chunks.take()
        } else {
            self.text_out.split().freeze()
        }
    }
}

impl StreamTranslator for ReplicateStream {
    fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, GatewayError> {
        for e in self.events.push(chunk) {
            self.event(e.event.as_deref(), &e.data)?;
        }
        Ok(self.take())
    }

    fn finish(&mut self) -> Result<Bytes, GatewayError> {
        if let Some(e) = self.events.finish() {
            self.event(e.event.as_deref(), &e.data)?;
        }
        Ok(self.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{deployment, request};

    fn prepared(params: &str, body: Value) -> (String, Value, PreparedRequest) {
        let d = deployment(params);
        let t = d.target_for("g").expect("target");
        let kind = if body.get("prompt").is_some() {
            CallKind::Completion
        } else {
            CallKind::Chat
        };
        let p = REPLICATE
            .prepare(&d, &t, &request(kind, body))
            .expect("prepared");
        let v: Value = serde_json::from_slice(&p.body).expect("json");
        (p.url.clone(), v, p)
    }

    fn header<'a>(p: &'a PreparedRequest, name: &str) -> Option<&'a str> {
        p.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn model_forms_choose_the_path_and_the_body() {
        let chat = json!({"model": "g", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
                          "max_tokens": 9, "stop": "END", "seed": 4, "top_k": 2, "user": "u"});
        let (url, v, p) = prepared(
            "{model: 'replicate/meta/llama-2-70b-chat:abc123', api_key: r8_k, timeout: 20}",
            chat.clone(),
        );
        assert_eq!(url, "https://api.replicate.com/v1/predictions");
        assert_eq!(
            v,
            json!({"version": "abc123", "input": {"prompt": "<s>[INST] Hi [/INST]", "system_prompt": "Be brief.",
                   "max_new_tokens": 9, "max_tokens": 9, "stop_sequences": "END", "seed": 4, "top_k": 2}})
        );
        assert_eq!(header(&p, "authorization"), Some("Bearer r8_k"));
        assert_eq!(header(&p, "prefer"), Some("wait=20"));

        let (url, v, p) = prepared(
            "{model: replicate/acme/phi, api_base: 'http://h/v1/', api_key: r8_k}",
            chat.clone(),
        );
        assert_eq!(url, "http://h/v1/models/acme/phi/predictions");
        assert_eq!(v["input"]["prompt"], "user: Hi");
        assert!(v.get("version").is_none());
        assert_eq!(header(&p, "prefer"), Some("wait=60"));

        let mut streamed = chat;
        streamed["stream"] = json!(true);
        let (url, v, p) = prepared(
            "{model: replicate/deployments/acme/phi-prod, api_base: 'http://h/v1', api_key: r8_k}",
            streamed,
        );
        assert_eq!(url, "http://h/v1/deployments/acme/phi-prod/predictions");
        assert_eq!(v["stream"], true);
        assert_eq!(header(&p, "prefer"), None);

        let (_, v, _) = prepared(
            "{model: replicate/acme/phi, api_key: r8_k}",
            json!({"model": "g", "prompt": "Once", "stop": ["a", "b"]}),
        );
        assert_eq!(
            v,
            json!({"input": {"prompt": "Once", "stop_sequences": "a,b"}})
        );
    }

    #[test]
    fn a_prompt_template_writes_the_prompt_and_keeps_the_system_message() {
        let (_, v, _) = prepared(
            "{model: replicate/acme/phi, api_key: r8_k, bos_token: '<s>', roles: {system: {pre_message: '<<', post_message: '>>'}, user: {pre_message: '[INST] ', post_message: ' [/INST]'}}}",
            json!({"model": "g", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}),
        );
        assert_eq!(
            v["input"],
            json!({"prompt": "<s><<Be brief.>>[INST] Hi [/INST]"})
        );
    }

    #[test]
    fn refused_parameters_and_calls() {
        let d = deployment("{model: replicate/acme/phi, api_key: r8_k}");
        let t = d.target_for("g").expect("target");
        for extra in [json!({"n": 2}), json!({"tools": []})] {
            let mut body = json!({"model": "g", "messages": [{"role": "user", "content": "x"}]});
            body.as_object_mut()
                .expect("object")
                .extend(extra.as_object().expect("object").clone());
            let e = REPLICATE
                .prepare(&d, &t, &request(CallKind::Chat, body))
                .err()
                .expect("refused");
            assert!(e.to_string().contains("UnsupportedParamsError"), "{e}");
        }
        assert!(!REPLICATE.supports(CallKind::Embedding));
        let e = REPLICATE
            .prepare(
                &d,
                &t,
                &request(
                    CallKind::Completion,
                    json!({"model": "g", "prompt": ["a", "b"]}),
                ),
            )
            .err()
            .expect("refused");
        assert!(e.to_string().contains("one string"), "{e}");
    }

    #[test]
    fn finished_predictions_become_completions() {
        let chat = request(
            CallKind::Chat,
            json!({"model": "g", "messages": [{"role": "user", "content": "12345678"}]}),
        );
        let body = br#"{"id": "p1", "status": "succeeded", "output": ["Hi", " there"],
                        "metrics": {"input_token_count": 7, "output_token_count": 2}}"#;
        let out = REPLICATE
            .translate_response(&chat, Bytes::from_static(body))
            .expect("ok");
        let v: Value = serde_json::from_slice(&out.body).expect("json");
        assert_eq!(v["id"], "chatcmpl-p1");
        assert_eq!(v["choices"][0]["message"]["content"], "Hi there");
        assert_eq!(v["usage"]["prompt_tokens"], 7);
        assert_eq!(v["usage"]["completion_tokens"], 2);

        // No metrics: estimated, four characters a token.
        let text = request(
            CallKind::Completion,
            json!({"model": "g", "prompt": "123456789"}),
        );
        let body = br#"{"id": "p2", "status": "succeeded", "output": "abcdefgh"}"#;
        let out = REPLICATE
            .translate_response(&text, Bytes::from_static(body))
            .expect("ok");
        let v: Value = serde_json::from_slice(&out.body).expect("json");
        assert_eq!(v["object"], "text_completion");
        assert_eq!(v["choices"][0]["text"], "abcdefgh");
        assert_eq!(v["usage"]["prompt_tokens"], 3);
        assert_eq!(v["usage"]["completion_tokens"], 2);

        let d = deployment("{model: replicate/acme/phi, api_key: r8_k}");
        let t = d.target_for("g").expect("target");
        let failed: Prediction = serde_json::from_str(
            r#"{"id": "p3", "status": "failed", "error": "CUDA out of memory"}"#,
        )
        .expect("json");
        assert_eq!(failed.state(), State::Ended);
        let e = failed.error(&t);
        assert!(
            matches!(
                e,
                GatewayError::Upstream {
                    status: 500,
                    kind: UpstreamErrorKind::Server,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .contains("prediction p3 failed: CUDA out of memory"),
            "{e}"
        );
    }

    #[test]
    fn errors_are_problem_details() {
        let d = deployment("{model: replicate/acme/phi, api_key: r8_k}");
        let t = d.target_for("g").expect("target");
        for (status, body, kind) in [
            (
                401,
                r#"{"title": "Unauthenticated", "detail": "You did not pass a valid authentication token", "status": 401}"#,
                UpstreamErrorKind::Authentication,
            ),
            (
                404,
                r#"{"title": "Not found", "detail": "The requested resource could not be found.", "status": 404}"#,
                UpstreamErrorKind::NotFound,
            ),
            (
                422,
                r#"{"title": "Input validation failed", "detail": "- input.prompt: Invalid type", "status": 422}"#,
                UpstreamErrorKind::BadRequest,
            ),
            (
                429,
                r#"{"title": "Request was throttled", "detail": "Request was throttled.", "status": 429}"#,
                UpstreamErrorKind::RateLimit,
            ),
            (503, "upstream connect error", UpstreamErrorKind::Server),
        ] {
            let e = REPLICATE.translate_error(&t, status, None, body.as_bytes());
            let GatewayError::Upstream {
                kind: got, message, ..
            } = &e
            else {
                panic!("{e:?}");
            };
            assert_eq!(*got, kind, "{status}");
            assert!(message.contains("ReplicateException"), "{message}");
        }
    }

    fn translate(req: &LlmRequest, raw: &[u8], piece: usize) -> Result<String, GatewayError> {
        let mut s = ReplicateStream::new(req);
        let mut out = Vec::new();
        for chunk in raw.chunks(piece) {
            out.extend_from_slice(&s.feed(chunk)?);
        }
        out.extend_from_slice(&s.finish()?);
        Ok(String::from_utf8(out).expect("utf8"))
    }

    #[test]
    fn stream_events_become_chunks_across_any_split() {
        let req = request(
            CallKind::Chat,
            json!({"model": "g", "messages": [{"role": "user", "content": "12345678"}]}),
        );
        let raw = b"event: output\nid: 1\ndata: Hi\n\nevent: output\ndata: one\ndata: two\n\n: ping\n\nevent: output\ndata:  there\n\nevent: done\ndata: {}\n\n";
        for piece in 1..raw.len() {
            let text = translate(&req, raw, piece).expect("translated");
            let content: String = text
                .split("\n\n")
                .filter_map(|e| e.strip_prefix("data: "))
                .filter(|d| *d != "[DONE]")
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .filter_map(|c| {
                    c["choices"][0]["delta"]["content"]
                        .as_str()
                        .map(str::to_string)
                })
                .collect();
            assert_eq!(content, "Hione\ntwo there", "split {piece}");
            assert!(text.contains("\"role\":\"assistant\""), "{text}");
            assert!(text.contains("\"finish_reason\":\"stop\""), "{text}");
            assert!(
                text.contains("\"prompt_tokens\":2,\"completion_tokens\":4"),
                "{text}"
            );
            assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        }
        // Ended without `done`: no [DONE] (the relay reports a broken stream).
        let text = translate(&req, b"event: output\ndata: Hi\n\n", 5).expect("translated");
        assert!(!text.contains("[DONE]"), "{text}");

        let e = translate(
            &req,
            b"event: output\ndata: Hi\n\nevent: error\ndata: {\"detail\": \"CUDA out of memory\"}\n\n",
            7,
        )
        .expect_err("an error");
        assert!(e.to_string().contains("CUDA out of memory"), "{e}");
        let e = translate(&req, b"event: done\ndata: {\"reason\":\"canceled\"}\n\n", 9)
            .expect_err("an error");
        assert!(e.to_string().contains("canceled"), "{e}");

        let text_req = request(CallKind::Completion, json!({"model": "g", "prompt": "x"}));
        let text = translate(
            &text_req,
            b"event: output\ndata: Hi\n\nevent: done\ndata: {}\n\n",
            4,
        )
        .expect("translated");
        assert!(text.contains("\"object\":\"text_completion\""), "{text}");
        assert!(text.contains("\"text\":\"Hi\""), "{text}");
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    }

    #[test]
    fn only_urls_on_the_api_base_or_replicates_stream_host_are_followed() {
        let real = DEFAULT_API_BASE;
        // The api_base's own scheme, host and port; the trailing path does not matter.
        assert!(may_follow(
            real,
            "https://api.replicate.com/v1/predictions/p1",
            false
        ));
        assert!(may_follow(
            real,
            "https://API.Replicate.com:443/v1/predictions/p1/cancel",
            false
        ));
        assert!(may_follow(
            "http://127.0.0.1:9000/v1",
            "http://127.0.0.1:9000/v1/predictions/p1",
            false
        ));
        // Replicate's stream host, for a stream of the real API only, over https only.
        assert!(may_follow(
            real,
            "https://stream.replicate.com/v1/files/abc",
            true
        ));
        assert!(!may_follow(
            real,
            "https://stream.replicate.com/v1/files/abc",
            false
        ));
        assert!(!may_follow(
            real,
            "http://stream.replicate.com/v1/files/abc",
            true
        ));
        assert!(!may_follow(
            real,
            "https://stream.replicate.com:8443/v1/files/abc",
            true
        ));
        assert!(!may_follow(
            "https://proxy.example/v1",
            "https://stream.replicate.com/v1/files/abc",
            true
        ));
        assert!(!may_follow(
            "http://api.replicate.com/v1",
            "https://stream.replicate.com/x",
            true
        ));
        // Foreign hosts, other ports, a downgrade to http.
        for url in [
            "https://evil.example/v1/predictions/p1",
            "https://api.replicate.com.evil.example/v1/predictions/p1",
            "https://evil.example/api.replicate.com/v1/predictions/p1",
            "https://api.replicate.com:8443/v1/predictions/p1",
            "http://api.replicate.com/v1/predictions/p1",
            "https://replicate.com/p/p1",
            "ftp://api.replicate.com/v1/predictions/p1",
            "/v1/predictions/p1",
            "not a url",
        ] {
            assert!(!may_follow(real, url, false), "{url}");
            assert!(!may_follow(real, url, true), "{url}");
        }
        assert!(!may_follow(
            "http://127.0.0.1:9000/v1",
            "http://127.0.0.1:9001/v1/predictions/p1",
            false
        ));
        assert!(!may_follow(
            "http://127.0.0.1:9000/v1",
            "http://localhost:9000/v1/predictions/p1",
            false
        ));
        // Userinfo: a host that only looks like the base, and credentials on the right host.
        for url in [
            "https://api.replicate.com@evil.example/v1/predictions/p1",
            "https://api.replicate.com:443@evil.example/v1/predictions/p1",
            "https://user:pw@api.replicate.com/v1/predictions/p1",
            "https://stream.replicate.com@evil.example/v1/files/abc",
        ] {
            assert!(!may_follow(real, url, true), "{url}");
        }
        // An api_base that cannot be parsed allows nothing.
        assert!(!may_follow(
            "api.replicate.com",
            "https://api.replicate.com/v1/x",
            false
        ));
    }

    fn session(params: &str) -> Session {
        let d = deployment(params);
        Session {
            headers: Vec::new(),
            key: None,
            trust: None,
            model: "g".into(),
            target: d.target_for("g").expect("target").into_owned(),
        }
    }

    fn prediction_with(id: &str, get: &str, stream: &str) -> Prediction {
        serde_json::from_value(json!({"id": id, "status": "processing", "urls": {
            "get": get, "cancel": format!("{get}/cancel"), "stream": stream}}))
        .expect("json")
    }

    #[test]
    fn foreign_urls_are_replaced_by_the_api_base_ones() {
        let s = session(
            "{model: replicate/acme/phi, api_key: r8_k, api_base: 'http://127.0.0.1:9000/v1?k=1'}",
        );
        let own = prediction_with(
            "p1",
            "http://127.0.0.1:9000/v1/predictions/p1",
            "http://127.0.0.1:9000/v1/predictions/p1/stream",
        );
        assert_eq!(
            s.link(&own, Link::Get).as_deref(),
            Some("http://127.0.0.1:9000/v1/predictions/p1")
        );
        assert_eq!(
            s.link(&own, Link::Stream).as_deref(),
            Some("http://127.0.0.1:9000/v1/predictions/p1/stream")
        );
        let foreign = prediction_with(
            "p/../2",
            "http://127.0.0.1:9001/v1/predictions/p1",
            "https://stream.replicate.com/v1/files/p1",
        );
        // Built on the api_base (its query kept), the id one path segment.
        assert_eq!(
            s.link(&foreign, Link::Get).as_deref(),
            Some("http://127.0.0.1:9000/v1/predictions/p%2F..%2F2?k=1")
        );
        assert_eq!(
            s.link(&foreign, Link::Cancel).as_deref(),
            Some("http://127.0.0.1:9000/v1/predictions/p%2F..%2F2/cancel?k=1")
        );
        assert_eq!(s.link(&foreign, Link::Stream), None);
        // No usable id: nothing to build; no URL given: none.
        let nameless = prediction_with("..", "https://evil.example/x", "https://evil.example/y");
        assert_eq!(s.link(&nameless, Link::Get), None);
        assert_eq!(s.link(&Prediction::default(), Link::Get), None);

        // Replicate's own API: its stream host is followed.
        let s = session("{model: replicate/acme/phi, api_key: r8_k}");
        let real = prediction_with(
            "p1",
            "https://api.replicate.com/v1/predictions/p1",
            "https://stream.replicate.com/v1/files/p1",
        );
        assert_eq!(
            s.link(&real, Link::Stream).as_deref(),
            Some("https://stream.replicate.com/v1/files/p1")
        );
        assert_eq!(
            s.link(&real, Link::Cancel).as_deref(),
            Some("https://api.replicate.com/v1/predictions/p1/cancel")
        );
    }

    #[test]
    fn the_translator_disarms_the_cancellation_at_the_end_of_the_prediction() {
        let req = request(
            CallKind::Chat,
            json!({"model": "g", "messages": [{"role": "user", "content": "x"}]}),
        );
        let armed = || CancelOnDrop {
            request: Some(PreparedRequest {
                url: "http://127.0.0.1:9/v1/predictions/p/cancel".into(),
                headers: Vec::new(),
                body: Bytes::new(),
            }),
            key: None,
            trust: None,
            model: "g".into(),
        };
        let armed_after = |raw: &[u8]| {
            let mut s = ReplicateStream::new(&req).watching(armed());
            for byte in raw.chunks(3) {
                let _ = s.feed(byte);
            }
            let guard = s.guard.as_mut().expect("guard");
            let armed = guard.request.is_some();
            // Dropped disarmed: these tests run no runtime to send a cancellation on.
            guard.disarm();
            armed
        };
        assert!(armed_after(b"event: output\ndata: Hi\n\n"));
        assert!(armed_after(b"event: output\ndata: done\n\n: done\n\n"));
        assert!(!armed_after(
            b"event: output\ndata: Hi\n\nevent: done\ndata: {}\n\n"
        ));
        assert!(!armed_after(
            b"event: done\ndata: {\"reason\":\"canceled\"}\n\n"
        ));
        assert!(!armed_after(
            b"event: error\ndata: {\"detail\": \"boom\"}\n\n"
        ));
    }

    #[test]
    fn a_finished_prediction_replays_as_its_stream() {
        let p: Prediction =
            serde_json::from_str(r#"{"id": "p", "status": "succeeded", "output": ["a\n", "b"]}"#)
                .expect("json");
        let req = request(
            CallKind::Chat,
            json!({"model": "g", "messages": [{"role": "user", "content": "x"}]}),
        );
        let text = translate(&req, &replay(&p), 3).expect("translated");
        assert!(text.contains("\"content\":\"a\\nb\""), "{text}");
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    }
}
