//! Pass-through routes: requests relayed to a provider's own API, unchanged but for the
//! credential, as LiteLLM's `/openai/*`, `/anthropic/*`, `/gemini/*`, `/vertex_ai/*`,
//! `/bedrock/*` and `/cohere/*` routes do, and the operator's `pass_through_endpoints`
//! ([`endpoints`]).
//!
//! A provider route relays the rest of the path, the query and the body to the provider:
//!
//! 1. **who**: the caller's virtual key is checked by the handler like on any LLM route (also read
//!    from `x-goog-api-key` and `?key=` on `/gemini/*`, as LiteLLM accepts). It never goes
//!    upstream: every credential header and query parameter the client sent is removed
//!    ([`client_headers`], [`client_query`]) before the gateway's own is added.
//! 2. **which credential**: when the request names a model (the body's `model` for OpenAI,
//!    Anthropic and Cohere; the path's `models/{model}:…` for Gemini and Vertex AI, `model/{id}/…`
//!    for Bedrock) the key must be allowed it; a model group with a deployment of that provider
//!    lends its base URL and credential (and the provider's own model name replaces the group's
//!    name). Otherwise a deployment of that provider marked `use_in_pass_through: true` does, else
//!    LiteLLM's environment variables (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, `GEMINI_API_KEY`,
//!    `COHERE_API_KEY`, `AWS_*`, Vertex AI's `DEFAULT_VERTEXAI_*` / `VERTEXAI_*` and service
//!    account). Nothing in the request picks the host or the credential.
//! 3. **limits**: the key's budgets (with `model_max_budget` of the named group) and rate limits.
//! 4. **relay**: the provider's status, content type and body are relayed as they arrive (SSE and
//!    Bedrock's event stream unbuffered); [`usage::Tap`] reads the usage from the bytes going by.
//! 5. **account**: one spend-log row per request (`call_type` `pass_through_endpoint`), with the
//!    tokens read and their cost from the price table when the model is known (0 otherwise).

pub mod endpoints;
pub mod usage;

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::error::PayloadError;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::HttpRequest;
use bytes::Bytes;
use futures_util::Stream;
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

use crate::auth::Caller;
use crate::config::truthy;
use crate::deployment::{CliDefaults, Deployment, Target};
use crate::error::GatewayError;
use crate::llm::Usage;
use crate::providers::{self, bedrock, urls, PreparedRequest, ProviderSpec, Wire};
use crate::state::AppState;

/// A provider whose native API is reachable under `/{prefix}/*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    OpenAi,
    Anthropic,
    Gemini,
    VertexAi,
    Bedrock,
    Cohere,
}

impl Provider {
    pub const ALL: [Provider; 6] = [
        Provider::OpenAi,
        Provider::Anthropic,
        Provider::Gemini,
        Provider::VertexAi,
        Provider::Bedrock,
        Provider::Cohere,
    ];

    /// The route prefix (`/openai`).
    pub fn prefix(self) -> &'static str {
        match self {
            Provider::OpenAi => "/openai",
            Provider::Anthropic => "/anthropic",
            Provider::Gemini => "/gemini",
            Provider::VertexAi => "/vertex_ai",
            Provider::Bedrock => "/bedrock",
            Provider::Cohere => "/cohere",
        }
    }

    /// The provider's name in the registry (`litellm_params.model` prefix).
    fn registry_name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
            Provider::VertexAi => "vertex_ai",
            Provider::Bedrock => "bedrock",
            Provider::Cohere => "cohere",
        }
    }

    /// Whether a deployment of `spec` can lend its credential to this route.
    fn serves(self, spec: &ProviderSpec) -> bool {
        match self {
            Provider::OpenAi => spec.name == "openai",
            Provider::Anthropic => spec.wire == Wire::Anthropic,
            Provider::Gemini => spec.wire == Wire::Gemini,
            Provider::VertexAi => spec.wire == Wire::VertexAi,
            Provider::Bedrock => spec.wire == Wire::Bedrock,
            Provider::Cohere => spec.wire == Wire::Cohere,
        }
    }

    /// Where a request to this provider names its model.
    fn model_in_body(self) -> bool {
        matches!(
            self,
            Provider::OpenAi | Provider::Anthropic | Provider::Cohere
        )
    }

    /// The byte range of the model in the rest of the path: `…/models/{model}:…` (Gemini,
    /// Vertex AI), `/model/{modelId}/…` (Bedrock).
    fn path_model(self, rest: &str) -> Option<(usize, usize)> {
        let start = match self {
            Provider::Gemini | Provider::VertexAi => rest.rfind("/models/")? + "/models/".len(),
            Provider::Bedrock => rest.strip_prefix("/model/").map(|_| "/model/".len())?,
            _ => return None,
        };
        let end = rest[start..]
            .find([':', '/'])
            .map_or(rest.len(), |i| start + i);
        (end > start).then_some((start, end))
    }
}

/// Headers sent upstream, as [`PreparedRequest`] holds them.
type UpstreamHeaders = Vec<(Cow<'static, str>, String)>;

/// A relayed response: the provider's status and headers, and its body as it arrives.
pub struct Relayed {
    pub status: u16,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: RelayBody,
}

/// Where a provider route sends a request, and with which credential.
struct Upstream {
    deployment: Arc<Deployment>,
    target: Target,
    /// The deployment came from a model group the request named (its model name is replaced by
    /// the provider's).
    named: Option<String>,
    /// Shown in the spend log and `x-litellm-*` facts: the deployment's id, when it is one of
    /// the configured ones.
    deployment_id: Option<String>,
}

/// Relay a request to `provider`'s own API (see the module documentation).
pub async fn provider(
    state: &AppState,
    http: &HttpRequest,
    caller: Caller,
    provider: Provider,
    body: Bytes,
) -> Result<Relayed, GatewayError> {
    let call_id = uuid::Uuid::now_v7().to_string();
    let started = Instant::now();
    let rest = http
        .path()
        .strip_prefix(provider.prefix())
        .unwrap_or_default()
        .to_string();
    check_path(&rest)?;
    let mut body = body;

    // 2. which model, which credential
    let path_model = provider.path_model(&rest);
    let mut json_body = provider
        .model_in_body()
        .then(|| serde_json::from_slice::<Map<String, Value>>(&body).ok())
        .flatten();
    let requested: Option<String> = match &json_body {
        Some(b) => b.get("model").and_then(Value::as_str).map(str::to_string),
        None => path_model.map(|(s, e)| {
            percent_decode_str(&rest[s..e])
                .decode_utf8_lossy()
                .into_owned()
        }),
    };
    let region = key_region(&caller);
    let (upstream, group) = match &requested {
        Some(model) => {
            let group = permitted_group(state, &caller, model)?;
            (
                by_model(state, provider, model, &group, region.as_deref())?,
                group,
            )
        }
        None => (default_upstream(state, provider)?, String::new()),
    };
    check_region(&upstream, region.as_deref())?;

    // 3. budgets and limits
    let (permit, reservation) = crate::pipeline::admit_pass_through(state, &caller, &group).await?;

    // The provider's model name replaces the group's.
    let mut rest = rest;
    if upstream.named.is_some() {
        let model = match provider {
            Provider::Bedrock => bedrock::model_id(&upstream.target).to_string(),
            _ => upstream.target.model.clone(),
        };
        if let Some(b) = json_body.as_mut() {
            b.insert("model".into(), Value::String(model));
            body = Bytes::from(serde_json::to_vec(b).map_err(|e| {
                GatewayError::internal(format!("cannot write the request body: {e}"))
            })?);
        } else if let Some((s, e)) = path_model {
            let encoded = match provider {
                Provider::Bedrock => bedrock::sigv4::uri_encode(&model, false),
                _ => urls::segment(&model),
            };
            rest.replace_range(s..e, &encoded);
        }
    } else if let Some(b) = json_body.as_ref() {
        // The body as checked is the body sent (a duplicate `model` key cannot reach the
        // provider with another value).
        body =
            Bytes::from(serde_json::to_vec(b).map_err(|e| {
                GatewayError::internal(format!("cannot write the request body: {e}"))
            })?);
    }

    // 4. the upstream request
    let method = http.method().clone();
    let (url, mut headers) = upstream_url(provider, &upstream, &rest, http.query_string())?;
    headers.splice(
        0..0,
        client_headers(http.headers(), state.auth.key_header()),
    );
    let prepared = authorize(
        provider,
        &upstream,
        &method,
        PreparedRequest {
            url,
            headers,
            body: body.clone(),
        },
        http.headers(),
    )
    .await?;
    let spend = Arc::new(crate::spend::SpendContext::pass_through(
        state,
        &call_id,
        http,
        Some(&caller),
        requested.as_deref().unwrap_or_default(),
        &body,
    ));
    spend.hold(reservation);
    let timeout = upstream
        .deployment
        .timeout
        .unwrap_or(state.settings.live().request_timeout);
    let served = crate::spend::Served {
        model: requested.clone().unwrap_or_default(),
        model_id: upstream.deployment_id.clone(),
        model_group: upstream.named.clone(),
        api_base: Some(crate::secret::display_url(&upstream.target.api_base)),
        provider: Some(upstream.target.spec.name.to_string()),
        ..crate::spend::Served::default()
    };
    let prices = Pricing {
        deployment: upstream
            .named
            .as_ref()
            .and_then(|_| upstream.deployment.prices_for(&upstream.target)),
        provider: Some(upstream.target.spec.name),
    };
    send(
        state,
        Sending {
            call_id,
            started,
            method,
            prepared,
            timeout,
            key: upstream.target.api_key.clone(),
            trust: upstream.deployment.trust.clone(),
            spend,
            permit: Some(permit),
            served,
            prices,
        },
    )
    .await
}

/// Relay a request to a configured `pass_through_endpoints` entry. `caller` is `None` on an
/// entry without `auth`.
pub async fn configured(
    state: &AppState,
    http: &HttpRequest,
    caller: Option<Caller>,
    endpoint: &endpoints::Endpoint,
    body: Bytes,
) -> Result<Relayed, GatewayError> {
    let call_id = uuid::Uuid::now_v7().to_string();
    let started = Instant::now();
    let sub = http
        .path()
        .strip_prefix(endpoint.path.as_str())
        .unwrap_or("");
    check_path(sub)?;
    let permit = match &caller {
        Some(caller) => {
            let (permit, reservation) =
                crate::pipeline::admit_pass_through(state, caller, "").await?;
            Some((permit, reservation))
        }
        None => None,
    };
    let model = serde_json::from_slice::<Map<String, Value>>(&body)
        .ok()
        .and_then(|b| b.get("model").and_then(Value::as_str).map(str::to_string));
    let mut headers = if endpoint.forward_headers {
        client_headers(http.headers(), state.auth.key_header())
    } else {
        // The body's type is always the client's.
        http.headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| vec![(Cow::Borrowed("content-type"), v.to_string())])
            .unwrap_or_default()
    };
    for (name, value) in &endpoint.headers {
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        headers.push((Cow::Owned(name.clone()), value.expose().to_string()));
    }
    let url = endpoint.url(http.path(), &client_query(http.query_string()));
    let spend = Arc::new(crate::spend::SpendContext::pass_through(
        state,
        &call_id,
        http,
        caller.as_ref(),
        model.as_deref().unwrap_or_default(),
        &body,
    ));
    let permit = permit.map(|(permit, reservation)| {
        spend.hold(reservation);
        permit
    });
    let served = crate::spend::Served {
        model: model.unwrap_or_default(),
        api_base: Some(crate::secret::display_url(&endpoint.target)),
        ..crate::spend::Served::default()
    };
    send(
        state,
        Sending {
            call_id,
            started,
            method: http.method().clone(),
            prepared: PreparedRequest { url, headers, body },
            timeout: state.settings.live().request_timeout,
            key: None,
            trust: None,
            spend,
            permit,
            served,
            prices: Pricing {
                deployment: None,
                provider: None,
            },
        },
    )
    .await
}

/// How a relayed call is priced once its usage is known.
struct Pricing {
    /// The named deployment's prices.
    deployment: Option<crate::pricing::Prices>,
    /// Else the price table's entry of the model, under this provider.
    provider: Option<&'static str>,
}

impl Pricing {
    fn cost(&self, model: &str, usage: &Usage, took: Duration) -> f64 {
        let prices = self.deployment.clone().or_else(|| {
            (!model.is_empty())
                .then(|| crate::pricing::lookup(self.provider, model))
                .flatten()
                .and_then(|entry| crate::pricing::Prices::resolve(Some(entry), &Map::new()))
        });
        prices.map_or(0.0, |p| p.cost(usage, took))
    }
}

/// Everything [`send`] needs.
struct Sending {
    call_id: String,
    started: Instant,
    method: Method,
    prepared: PreparedRequest,
    timeout: Duration,
    key: Option<crate::secret::Secret>,
    trust: Option<crate::outbound::Trust>,
    spend: Arc<crate::spend::SpendContext>,
    permit: Option<crate::limits::SharedPermit>,
    served: crate::spend::Served,
    prices: Pricing,
}

/// Send the request and hand back the response to relay; the spend-log row is written when the
/// body ends (or the client leaves), or now when the provider cannot be reached.
async fn send(state: &AppState, s: Sending) -> Result<Relayed, GatewayError> {
    if state.debug {
        tracing::debug!(
            call_id = s.call_id,
            method = %s.method,
            url = %crate::secret::display_url(&s.prepared.url),
            headers = ?s.prepared.redacted_headers(),
            "pass-through request"
        );
    }
    let response = crate::upstream::send_with(
        s.method,
        s.prepared,
        s.timeout,
        "pass-through",
        s.key.as_ref(),
        s.trust.as_ref(),
    )
    .await;
    let response = match response {
        Ok(r) => r,
        Err(err) => {
            let served = crate::spend::Served {
                status_code: actix_web::ResponseError::status_code(&err).as_u16(),
                ..s.served
            };
            s.spend
                .record(&served, Usage::default(), 0.0, Some(&err.to_string()));
            return Err(err);
        }
    };
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut headers = relayed_headers(response.headers());
    if let Ok(id) = HeaderValue::from_str(&s.call_id) {
        headers.push((HeaderName::from_static("x-litellm-call-id"), id));
    }
    let (spend, permit, served, prices, started) =
        (s.spend, s.permit, s.served, s.prices, s.started);
    let finish = move |end: End| {
        let read = end.read;
        let usage = read.usage.unwrap_or_default();
        if let Some(permit) = &permit {
            permit.settle(usage.total_tokens);
        }
        // With `store_prompts_in_spend_logs` (or message logging), a whole JSON response is kept.
        if let Some(body) = &read.body {
            spend.keep_response(body);
        }
        let model = if served.model.is_empty() {
            read.model.unwrap_or_default()
        } else {
            served.model.clone()
        };
        let ok = (200..300).contains(&status);
        let error = if ok {
            end.error
        } else {
            Some(format!("the provider answered {status}"))
        };
        let cost = if ok || read.usage.is_some() {
            prices.cost(&model, &usage, started.elapsed())
        } else {
            0.0
        };
        let served = crate::spend::Served {
            model,
            status_code: status,
            ..served
        };
        spend.record(&served, usage, cost, error.as_deref());
    };
    let body = RelayBody {
        upstream: Box::pin(response),
        tap: Some(usage::Tap::new(usage::Framing::of(&content_type))),
        idle: s.timeout,
        timer: Box::pin(tokio::time::sleep(s.timeout)),
        finish: Some(Box::new(finish)),
        done: false,
    };
    Ok(Relayed {
        status,
        headers,
        body,
    })
}

/// How a relayed body ended.
struct End {
    read: usage::Read,
    error: Option<String>,
}

/// The provider's body, passed on chunk by chunk as it arrives, with its usage read on the way;
/// the request is accounted once when the body ends, breaks, stalls for the request timeout, or
/// is dropped because the client left.
pub struct RelayBody {
    upstream: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>,
    tap: Option<usage::Tap>,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    finish: Option<Box<dyn FnOnce(End)>>,
    done: bool,
}

impl RelayBody {
    fn end(&mut self, error: Option<String>) {
        self.done = true;
        if let Some(finish) = self.finish.take() {
            let read = self.tap.take().map(usage::Tap::finish).unwrap_or_default();
            finish(End { read, error });
        }
    }
}

impl Stream for RelayBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.upstream.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                if let Some(tap) = self.tap.as_mut() {
                    tap.feed(&bytes);
                }
                let deadline = tokio::time::Instant::now() + self.idle;
                self.timer.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.end(Some(format!("the provider's response broke off: {e}")));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.end(None);
                Poll::Ready(None)
            }
            Poll::Pending => {
                if self.timer.as_mut().poll(cx).is_ready() {
                    let idle = self.idle.as_secs_f64();
                    self.end(Some(format!(
                        "the provider sent nothing for {idle} s; the response was cut"
                    )));
                    return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "pass-through response timed out",
                    )))));
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for RelayBody {
    fn drop(&mut self) {
        if !self.done {
            self.end(Some(
                "the client disconnected before the response ended".into(),
            ));
        }
    }
}

/// The rest of a path must stay under the provider's base: no `.` or `..` segment, plain or
/// percent-encoded, no backslash, no control character.
fn check_path(rest: &str) -> Result<(), GatewayError> {
    if !rest.is_empty() && !rest.starts_with('/') {
        return Err(GatewayError::RouteNotFound {
            path: rest.to_string(),
        });
    }
    for segment in rest.split('/') {
        let decoded = percent_decode_str(segment).decode_utf8_lossy();
        let bad = decoded.chars().any(|c| c.is_control() || c == '\\')
            || decoded.split('/').any(|p| p == "." || p == "..");
        if bad {
            return Err(GatewayError::bad_request(format!(
                "the path may not contain '.' or '..' segments, backslashes or control characters: {}",
                segment.escape_default()
            )));
        }
    }
    Ok(())
}

/// The model group `model` means for `caller` (its key's and team's aliases, the router's
/// `model_group_alias`), which the caller must be allowed.
fn permitted_group(state: &AppState, caller: &Caller, model: &str) -> Result<String, GatewayError> {
    let access = caller.model_access();
    let resolved = access.resolve(model).to_string();
    let group_of_alias = state.aliases.get(&resolved).map(|a| a.target.clone());
    let permitted = |m: &str| access.permits(m, |g, m| state.in_access_group(g, m));
    if !permitted(&resolved) && !group_of_alias.as_deref().is_some_and(permitted) {
        return Err(access.denied(model));
    }
    let resolved = state
        .team_model_group(caller, &resolved)
        .unwrap_or(resolved);
    let group = state
        .aliases
        .get(&resolved)
        .map_or(resolved.clone(), |a| a.target.clone());
    if !state.team_scope_permits(caller, &group) {
        return Err(GatewayError::ModelAccessDenied {
            message: format!(
                "team not allowed to access model. Tried to access {model}, a model reserved for the keys of another team (model_info.team_id)"
            ),
        });
    }
    Ok(group)
}

/// The region a key is held to (`allowed_model_region`), if any.
fn key_region(caller: &Caller) -> Option<String> {
    caller
        .principal()?
        .key
        .data
        .get("allowed_model_region")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// A key held to a region reaches only deployments known to be in it: never a deployment of
/// another or unknown region, nor the provider's environment credential (whose region is not
/// known).
fn check_region(upstream: &Upstream, region: Option<&str>) -> Result<(), GatewayError> {
    let Some(region) = region else {
        return Ok(());
    };
    let inside =
        upstream.deployment_id.is_some() && upstream.deployment.region.as_deref() == Some(region);
    if inside {
        return Ok(());
    }
    Err(GatewayError::bad_request(format!(
        "this key may only use models in region '{region}': name a model with a deployment in that region (the pass-through credential found is {})",
        match (&upstream.deployment_id, &upstream.deployment.region) {
            (None, _) => "the provider's environment credential, whose region is not known".to_string(),
            (Some(_), Some(other)) => format!("in region '{other}'"),
            (Some(_), None) => "of a deployment with no known region".to_string(),
        }
    )))
}

/// A named model: the group's first deployment of this provider (in `region` when the key is
/// held to one), or (for a model no group serves) the provider's default credential.
fn by_model(
    state: &AppState,
    provider: Provider,
    requested: &str,
    group: &str,
    region: Option<&str>,
) -> Result<Upstream, GatewayError> {
    let snapshot = state.router.snapshot();
    let Some(g) = snapshot.group(group) else {
        return default_upstream(state, provider);
    };
    let serving = |h: &&std::sync::Arc<tollgate_actors::DeploymentHandle<Deployment>>| {
        h.upstream.target().is_some_and(|t| provider.serves(t.spec))
    };
    let handle = g
        .deployments
        .iter()
        .filter(serving)
        .find(|h| region.is_none_or(|r| h.upstream.region.as_deref() == Some(r)))
        .or_else(|| g.deployments.iter().find(serving))
        .ok_or_else(|| {
            GatewayError::bad_param(
                "model",
                format!(
                    "model group '{group}' has no {} deployment: {}/* relays to {} only",
                    provider.registry_name(),
                    provider.prefix(),
                    provider.registry_name()
                ),
            )
        })?;
    let deployment = handle.upstream.clone();
    let target = deployment.target_for(requested)?.into_owned();
    Ok(Upstream {
        deployment_id: Some(deployment.id.clone()),
        named: Some(group.to_string()),
        target,
        deployment,
    })
}

/// No model named: a deployment of this provider marked `use_in_pass_through: true`, else the
/// provider's environment variables (LiteLLM's).
fn default_upstream(state: &AppState, provider: Provider) -> Result<Upstream, GatewayError> {
    let snapshot = state.router.snapshot();
    let marked = snapshot.deployments().iter().find(|h| {
        h.upstream
            .provider_params
            .get("use_in_pass_through")
            .is_some_and(truthy)
            && h.upstream.target().is_some_and(|t| provider.serves(t.spec))
    });
    if let Some(h) = marked {
        let deployment = h.upstream.clone();
        let target =
            deployment
                .target()
                .cloned()
                .ok_or_else(|| GatewayError::DeploymentMisconfigured {
                    message: format!("deployment '{}' names no provider", deployment.model_name),
                })?;
        return Ok(Upstream {
            deployment_id: Some(deployment.id.clone()),
            named: None,
            target,
            deployment,
        });
    }
    let deployment = Arc::new(env_deployment(provider));
    let target = deployment.target_for("pass-through")?.into_owned();
    Ok(Upstream {
        deployment_id: None,
        named: None,
        target,
        deployment,
    })
}

/// The provider's credential from the environment, as a deployment, so that the adapters' own
/// rules read it (`OPENAI_API_KEY` / `OPENAI_API_BASE`, `ANTHROPIC_API_KEY` /
/// `ANTHROPIC_API_BASE`, `GEMINI_API_KEY`, `COHERE_API_KEY`, `AWS_ACCESS_KEY_ID` /
/// `AWS_SECRET_ACCESS_KEY` / `AWS_REGION`, `DEFAULT_VERTEXAI_PROJECT` / `_LOCATION` /
/// `DEFAULT_GOOGLE_APPLICATION_CREDENTIALS`, else `VERTEXAI_*` and
/// `GOOGLE_APPLICATION_CREDENTIALS`). Read per request: `environment_variables` set at run time
/// apply.
fn env_deployment(provider: Provider) -> Deployment {
    let mut params = Map::new();
    params.insert(
        "model".into(),
        Value::String(format!("{}/pass-through", provider.registry_name())),
    );
    // Its own prices are never used (a call is priced by the model it names).
    params.insert("input_cost_per_token".into(), Value::from(0));
    params.insert("output_cost_per_token".into(), Value::from(0));
    if provider == Provider::VertexAi {
        for (param, var) in [
            ("vertex_project", "DEFAULT_VERTEXAI_PROJECT"),
            ("vertex_location", "DEFAULT_VERTEXAI_LOCATION"),
            (
                "vertex_credentials",
                "DEFAULT_GOOGLE_APPLICATION_CREDENTIALS",
            ),
        ] {
            if let Some(v) = std::env::var(var).ok().filter(|v| !v.trim().is_empty()) {
                params.insert(param.into(), Value::String(v));
            }
        }
    }
    let entry = crate::config::ModelEntry {
        model_name: format!("{} pass-through", provider.registry_name()),
        litellm_params: params,
        model_info: Map::new(),
        unresolved: Vec::new(),
    };
    Deployment::from_entry(&entry, &CliDefaults::default())
}

/// The upstream URL (the base's path joined with the rest of the client's path, the client's
/// query without credentials, the base's own query) and the credential headers that need no
/// signing.
fn upstream_url(
    provider: Provider,
    up: &Upstream,
    rest: &str,
    query: &str,
) -> Result<(String, UpstreamHeaders), GatewayError> {
    let t = &up.target;
    let d = &up.deployment;
    let mut headers: UpstreamHeaders = Vec::new();
    let no_key = || {
        GatewayError::DeploymentMisconfigured {
        message: format!(
            "no credential for {}/*: name a model of a configured {} deployment, mark one `use_in_pass_through: true`, or set {}",
            provider.prefix(),
            provider.registry_name(),
            t.spec.api_key_env.join(" or ")
        ),
    }
    };
    let mut rest = Cow::Borrowed(rest);
    let base = match provider {
        Provider::OpenAi | Provider::Anthropic | Provider::Gemini | Provider::Cohere => {
            let key = t.api_key.as_ref().ok_or_else(no_key)?.expose().to_string();
            match provider {
                Provider::OpenAi => {
                    headers.push((Cow::Borrowed("authorization"), format!("Bearer {key}")));
                    if let Some(org) = &d.organization {
                        headers.push((Cow::Borrowed("openai-organization"), org.clone()));
                    }
                }
                Provider::Anthropic => headers.push((Cow::Borrowed("x-api-key"), key)),
                Provider::Gemini => headers.push((Cow::Borrowed("x-goog-api-key"), key)),
                _ => headers.push((Cow::Borrowed("authorization"), format!("Bearer {key}"))),
            }
            t.api_base.clone()
        }
        Provider::Bedrock => bedrock::endpoint(d, t),
        Provider::VertexAi => {
            let project = providers::vertex::project(d).ok();
            let location = providers::vertex::location(d);
            rest = Cow::Owned(vertex_path(&rest, project.as_deref(), &location));
            vertex_host(&t.api_base)
        }
    };
    headers.extend(providers::native::extra_headers(d));
    let url = join_versioned(&base, &rest);
    let url = urls::with_query(url, Some(&client_query(query)));
    Ok((t.url(url), headers))
}

/// Add the credentials that are computed over the request: Vertex AI's OAuth token, Bedrock's
/// SigV4 signature (unless the deployment uses a Bedrock API key). Anthropic gets its
/// `anthropic-version` when the client sent none.
async fn authorize(
    provider: Provider,
    up: &Upstream,
    method: &Method,
    mut prepared: PreparedRequest,
    client: &HeaderMap,
) -> Result<PreparedRequest, GatewayError> {
    match provider {
        Provider::VertexAi => {
            let adapter = providers::adapter_for(Wire::VertexAi)
                .ok_or_else(|| GatewayError::internal("no Vertex AI adapter"))?;
            adapter
                .authorize(&up.deployment, &up.target, prepared)
                .await
        }
        Provider::Bedrock => {
            if bedrock::uses_api_key(&up.deployment, &up.target) {
                let key = up.target.api_key.as_ref().map(|k| k.expose().to_string());
                if let Some(key) = key {
                    prepared
                        .headers
                        .push((Cow::Borrowed("authorization"), format!("Bearer {key}")));
                }
                return Ok(prepared);
            }
            // A missing gateway credential is the operator's to fix: never a 401, which
            // speaks of the caller's key.
            let creds = bedrock::credentials(&up.deployment).map_err(|e| {
                GatewayError::DeploymentMisconfigured {
                    message: format!("{}/*: {e}", provider.prefix()),
                }
            })?;
            let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
            bedrock::sign_request_with(
                method.as_str(),
                &mut prepared,
                &creds,
                &bedrock::region(&up.deployment),
                &amz_date,
            )?;
            Ok(prepared)
        }
        Provider::Anthropic => {
            if !client.contains_key("anthropic-version") {
                prepared
                    .headers
                    .push((Cow::Borrowed("anthropic-version"), "2023-06-01".into()));
            }
            Ok(prepared)
        }
        _ => Ok(prepared),
    }
}

/// The base's path joined with the client's path, without doubling an API version: a base that
/// ends in a version segment (`…/v1`, `…/v1beta`) loses it when the client's path starts with
/// one (the client speaks the provider's native paths, version included).
fn join_versioned(base: &str, rest: &str) -> String {
    let (head, query) = urls::split_query(base);
    let is_version =
        |s: &str| s.len() >= 2 && s.starts_with('v') && s[1..2].chars().all(|c| c.is_ascii_digit());
    let first = rest.trim_start_matches('/').split('/').next().unwrap_or("");
    let head = match head.rsplit_once('/') {
        Some((before, last)) if is_version(last) && is_version(first) && before.contains("://") => {
            before
        }
        _ => head,
    };
    urls::with_query(format!("{head}{rest}"), query)
}

/// Vertex AI's host from a deployment's base (a base naming a resource, LiteLLM's custom
/// `api_base` form, keeps its scheme and host only).
fn vertex_host(base: &str) -> String {
    match base
        .find("/v1/projects/")
        .or_else(|| base.find("/projects/"))
    {
        Some(i) => base[..i].to_string(),
        None => base.trim_end_matches('/').to_string(),
    }
}

/// A Vertex AI path with the deployment's project and location in place of the client's
/// (`/v1/projects/{p}/locations/{l}/…`, as LiteLLM does); other paths are unchanged.
fn vertex_path(rest: &str, project: Option<&str>, location: &str) -> String {
    let parts: Vec<&str> = rest.split('/').collect();
    // ["", "v1", "projects", p, "locations", l, ...]
    if parts.len() < 6 || parts[2] != "projects" || parts[4] != "locations" {
        return rest.to_string();
    }
    let mut out: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
    if let Some(p) = project {
        out[3] = urls::segment(p);
    }
    out[5] = urls::segment(location);
    out.join("/")
}

/// Client headers that are never relayed: hop-by-hop, the body's framing, and anything that
/// carries a credential.
fn relayable(name: &str, key_header: Option<&str>) -> bool {
    const HOP: &[&str] = &[
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
        "accept-encoding",
        "expect",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
    ];
    const CREDENTIAL_PARTS: &[&str] = &[
        "auth",
        "key",
        "token",
        "secret",
        "cookie",
        "session",
        "credential",
        "password",
        "signature",
    ];
    let name = name.to_ascii_lowercase();
    if name == "idempotency-key" {
        return true;
    }
    !(HOP.contains(&name.as_str())
        || key_header.is_some_and(|h| h.eq_ignore_ascii_case(&name))
        || name.starts_with("x-amz-")
        || name.starts_with("x-litellm-")
        || CREDENTIAL_PARTS.iter().any(|p| name.contains(p)))
}

/// The client's headers that go upstream (see [`relayable`]).
pub fn client_headers(headers: &HeaderMap, key_header: Option<&str>) -> UpstreamHeaders {
    headers
        .iter()
        .filter(|(name, _)| relayable(name.as_str(), key_header))
        .filter_map(|(name, value)| {
            Some((
                Cow::Owned(name.as_str().to_string()),
                value.to_str().ok()?.to_string(),
            ))
        })
        .collect()
}

/// The client's query without any parameter that may carry a credential (`key`, `api_key`,
/// `access_token`, SigV4's `X-Amz-*`…).
pub fn client_query(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            let name = percent_decode_str(name)
                .decode_utf8_lossy()
                .to_ascii_lowercase();
            let name = name.trim();
            !(matches!(name, "key" | "sig")
                || name.starts_with("x-amz-")
                || name.contains("key")
                || name.contains("token")
                || name.contains("auth")
                || name.contains("secret")
                || name.contains("signature")
                || name.contains("password"))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The provider's response headers the client gets: all but the transport's (the body is
/// re-framed, and decompressed by the client library) and cookies.
fn relayed_headers(upstream: &awc::http::header::HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    const SKIP: &[&str] = &[
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "content-encoding",
        "date",
        "server",
        "set-cookie",
        "alt-svc",
    ];
    upstream
        .iter()
        .filter(|(name, _)| !SKIP.contains(&name.as_str()))
        .filter_map(|(name, value)| {
            Some((
                HeaderName::from_bytes(name.as_str().as_bytes()).ok()?,
                HeaderValue::from_bytes(value.as_bytes()).ok()?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_not_doubled_and_base_queries_kept() {
        assert_eq!(
            join_versioned("https://api.openai.com/v1", "/v1/chat/completions"),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            join_versioned("http://h:1/v1beta", "/v1beta/models/g:generateContent"),
            "http://h:1/v1beta/models/g:generateContent"
        );
        assert_eq!(
            join_versioned("https://api.cohere.com", "/v2/chat"),
            "https://api.cohere.com/v2/chat"
        );
        assert_eq!(
            join_versioned("https://corp/proxy/v1?tenant=a", "/v1/files"),
            "https://corp/proxy/v1/files?tenant=a"
        );
        assert_eq!(
            join_versioned("http://h/v1", "/models"),
            "http://h/v1/models"
        );
        assert_eq!(join_versioned("http://v1", "/v1/x"), "http://v1/v1/x");
    }

    #[test]
    fn credentials_never_leave_in_headers_or_query() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer sk-virtual"),
            ("x-api-key", "sk-virtual"),
            ("x-goog-api-key", "sk-virtual"),
            ("api-key", "sk-virtual"),
            ("x-litellm-api-key", "sk-virtual"),
            ("my-gateway-key", "sk-virtual"),
            ("cookie", "tollgate_session=s"),
            ("x-amz-security-token", "t"),
            ("anthropic-version", "2023-06-01"),
            ("content-type", "application/json"),
            ("accept-encoding", "gzip"),
            ("x-mock-fail", "none"),
        ] {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let out = client_headers(&h, Some("My-Gateway-Key"));
        let names: Vec<&str> = out.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(names.len(), 3, "{names:?}");
        for kept in ["anthropic-version", "content-type", "x-mock-fail"] {
            assert!(names.contains(&kept), "{names:?}");
        }
        assert!(out.iter().all(|(_, v)| !v.contains("sk-virtual")));
        assert_eq!(
            client_query(
                "alt=sse&key=sk-virtual&API_KEY=x&access_token=t&X-Amz-Signature=s&pageSize=2"
            ),
            "alt=sse&pageSize=2"
        );
    }

    #[test]
    fn paths_cannot_climb_out_of_the_base() {
        assert!(check_path("/v1/chat/completions").is_ok());
        assert!(check_path("/model/arn%3Aaws%3Abedrock%2Fprofile/converse").is_ok());
        assert!(check_path("").is_ok());
        for bad in ["/v1/../admin", "/%2e%2e/x", "/a/%2F..%2Fb", "/a\\b", "/./x"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn models_are_found_in_provider_paths() {
        let rest = "/v1beta/models/gemini-2.0-flash:streamGenerateContent";
        let (s, e) = Provider::Gemini.path_model(rest).unwrap();
        assert_eq!(&rest[s..e], "gemini-2.0-flash");
        let rest = "/v1/projects/p/locations/l/publishers/google/models/gem:generateContent";
        let (s, e) = Provider::VertexAi.path_model(rest).unwrap();
        assert_eq!(&rest[s..e], "gem");
        let rest = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream";
        let (s, e) = Provider::Bedrock.path_model(rest).unwrap();
        assert_eq!(&rest[s..e], "anthropic.claude-3-haiku-20240307-v1%3A0");
        assert!(Provider::Bedrock.path_model("/foundation-models").is_none());
        assert!(Provider::OpenAi.path_model("/v1/models/x").is_none());
    }

    #[test]
    fn vertex_paths_take_the_deployments_project_and_location() {
        assert_eq!(
            vertex_path(
                "/v1/projects/theirs/locations/us-east1/publishers/google/models/g:generateContent",
                Some("ours"),
                "europe-west4"
            ),
            "/v1/projects/ours/locations/europe-west4/publishers/google/models/g:generateContent"
        );
        assert_eq!(vertex_path("/v1/other", Some("ours"), "l"), "/v1/other");
        assert_eq!(
            vertex_host(
                "https://x-aiplatform.googleapis.com/v1/projects/p/locations/l/endpoints/1"
            ),
            "https://x-aiplatform.googleapis.com"
        );
    }
}
