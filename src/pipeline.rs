//! The request pipeline for every LLM call (`/chat/completions`, `/completions`, `/embeddings`,
//! `/images/generations`, `/images/edits`, `/moderations`, `/audio/transcriptions`,
//! `/audio/translations`, `/audio/speech`, `/rerank`, `/v1/messages`, `/v1/responses`), in one
//! place. Handlers extract the HTTP pieces, build the typed request
//! ([`request`]), call [`run`] and render its [`Outcome`].
//!
//! ```text
//!  auth ─▶ parse ─▶ model access ─▶ limits ─▶ cache ─▶ route ─▶ translate ─▶ call ─▶ relay ─▶ account
//!                                              │hit                                         ▲
//!                                              └──────────── stored response ───────────────┘
//! ```
//!
//! 1. **auth**: [`crate::auth::Authenticator`] turns the request's key into a [`Caller`] (done by
//!    the handler, before the body is read, so unauthenticated callers cannot make the gateway read
//!    32 MB): the master key, or a virtual key from the credential cache (blocked, expired keys and
//!    blocked users or teams are refused there).
//! 2. **parse**: [`request`] validates the body (or, for `/v1/messages`, its translation) into
//!    the internal model ([`LlmRequest::from_body`]): typed fields the gateway uses, the rest kept
//!    raw; gateway-only fields (`metadata`, `fallbacks`, `timeout`…) and
//!    any credential or routing field the client tried to set (`api_base`, `api_key`… at any depth)
//!    are removed.
//!    **model access**: the key's `aliases` (then its team's `model_aliases`) rename the model, and
//!    the key's `models` (else its team's) must allow it: names, wildcards, access groups.
//!    **limits**: one permit from the rate limiter covers the gateway, the key (and its per-model
//!    limits), its user, its team and the end user (`src/limits.rs`); a crossed limit answers 429
//!    with `retry-after`. The permit is held until the response (or stream) ends and settles its
//!    token reservation with the real usage.
//!    **cache**: with `litellm_settings.cache`, a request whose key the response cache holds is
//!    answered from the stored response and accounted at no cost; a miss goes on, and its reply is
//!    stored on the way out (`src/caching/`, [`serve`]).
//! 3. **route**: the model name (after `model_group_alias`) selects a model group in the routing
//!    snapshot the router actor publishes (no message on this path); the group picks a deployment
//!    by the routing strategy (`actors/src/strategy.rs`). Failed attempts are retried and then fall
//!    back per `router_settings` (`src/routing.rs`). All cooling → 429 with `retry-after`. A
//!    key's or end user's `allowed_model_region` keeps every pick, retries and fallbacks included,
//!    on deployments of that region (`src/region.rs`); none in the group → 400.
//! 4. **translate**: the deployment's provider adapter builds the upstream request (URL, auth header,
//!    provider model name, defaults, `drop_params`; streams always ask for usage). A Responses API
//!    request goes as it is to OpenAI and Azure, and as its chat translation to every other
//!    provider (`crate::responses_api`), chosen per attempt.
//! 5. **call**: awc, on this worker's client, with the request's timeout (`timeout` in the body,
//!    `x-litellm-timeout`, `litellm_params.timeout`/`stream_timeout`, `request_timeout`). Expiry
//!    answers 408 and drops the upstream connection.
//! 6. **relay**: a complete body is translated back by the adapter; a stream is read by
//!    [`SseRelay`] into typed chunks as they arrive, and a stream that breaks ends with an error
//!    item; speech audio is relayed byte for byte as it arrives ([`crate::outcome::ByteRelay`]).
//! 7. **account**: every exit (a canned answer, a simulated failure, a failed attempt, a complete
//!    response, a stream's end, a request that failed for good) goes through [`account`], which
//!    states what each does: the deployment's latency and token counters, a failure for its actor
//!    to weigh (cooldowns), the rate-limit permit settled with the real usage, and one spend-log
//!    row per request (failures too) for the spend tracker (`src/spend.rs`), which writes batches
//!    off the hot path. Budgets (`max_budget` of the key, its user and team) are checked before
//!    routing, counting the spend not yet written and the estimated cost of the requests in
//!    flight, which each request reserves until its real cost is recorded.
//!
//! The product is an [`Outcome`] (`src/outcome.rs`): the reply (complete, or a stream of typed
//! chunks) or the error, and the facts of how it was served. The handler renders it
//! (`src/render.rs`) as OpenAI or Anthropic JSON or SSE. Test hooks (`mock_response`,
//! `mock_testing_*`) are a fake upstream chosen per attempt ([`fake_upstream`]), accounted like
//! any other.
//!
//! Every response, success or error, carries the facts as `x-litellm-*` headers: call id,
//! deployment id, base and region, model group, durations, retries and fallbacks.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, ResponseError};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::{json, Map, Value};
use tollgate_actors::{
    now_ms, DeploymentFailure, DeploymentHandle, PickError, PickRequest, Picked, RoutingStrategy,
    SharedRouterState,
};

use crate::auth::Caller;
use crate::deployment::Deployment;
use crate::error::{Classification, GatewayError, UpstreamErrorKind};
use crate::llm::{CallKind, LlmRequest, MockFailure, Usage};
use crate::outcome::{Completion, Facts, Outcome, Reply};
use crate::providers::stream::TranslatedStream;
use crate::providers::{self, ProviderAdapter};
use crate::sse::{SseRelay, StreamOutcome};
use crate::state::AppState;
use crate::upstream;

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
            .filter(|s| *s > 0.0)
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .map(|d| Some(d.min(crate::llm::MAX_TIMEOUT)))
            .ok_or_else(|| {
                GatewayError::bad_request(format!(
                    "header {name} must be a positive number of seconds"
                ))
            }),
    }
}

fn header_count(req: &HttpRequest, name: &str) -> Result<Option<u32>, GatewayError> {
    match req.headers().get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .filter(|n| *n <= 100)
            .map(Some)
            .ok_or_else(|| {
                GatewayError::bad_request(format!("header {name} must be an integer from 0 to 100"))
            }),
    }
}

fn report(handle: &DeploymentHandle<Deployment>, err: &GatewayError) {
    let wildcard = handle.upstream.is_wildcard();
    if let Some(cooldown) = err.classify(wildcard).and_then(|c| c.cooldown) {
        let status = match err {
            GatewayError::Upstream { status, .. } => Some(*status),
            GatewayError::Timeout { .. } => Some(408),
            _ => None,
        };
        handle.report_failure(DeploymentFailure {
            class: cooldown.class,
            bucket: cooldown.bucket,
            status,
            retry_after: err.retry_after(),
        });
    }
}

/// The typed request from a client's decoded body: validated into the internal model, with the
/// parameters the caller's key requires (`enforced_params`) checked on the body as the client
/// sent it (a body that does not parse says so first).
pub fn request(
    caller: &Caller,
    kind: CallKind,
    body: Map<String, Value>,
    path_model: Option<&str>,
) -> Result<LlmRequest, GatewayError> {
    let enforced = caller.check_enforced_params(&body);
    let req = LlmRequest::from_body(kind, body, path_model)?;
    enforced?;
    Ok(req)
}

/// Run one LLM call through the pipeline: its reply or its error, with the facts of how it was
/// served. Every request that was admitted leaves through [`account`], success or failure.
pub async fn run(state: &AppState, http: &HttpRequest, caller: Caller, req: LlmRequest) -> Outcome {
    let mut facts = Facts::new(Instant::now());
    let (requested, kind) = (req.model.clone(), req.kind);
    // With traces on: the request's span ids, continuing the client's trace.
    let trace = state.traces.as_ref().map(|t| t.start_request(http));
    let admitted = admit_request(
        state,
        http,
        &caller,
        req,
        (&facts.call_id, facts.started),
        trace.clone(),
    )
    .await;
    let result = match admitted {
        Err(err) => {
            // Refused before it had a spend context (model access, budgets, limits): observers
            // (metrics, log tailing, callbacks) still hear of it; no spend-log row is written.
            crate::observability::publish_refused(
                &state.observers,
                &caller,
                &facts.call_id,
                kind,
                &requested,
                &err,
                trace.as_ref(),
            );
            Err(err)
        }
        Ok((req, mut call)) => {
            facts.limit_headers = call.limit_headers.clone();
            facts.prompt_tokens = call.prompt_tokens;
            serve(state, http, &caller, &req, &mut call, &mut facts).await
        }
    };
    if let Err(err) = &result {
        let status = err.status_code();
        if status.is_server_error() {
            tracing::warn!(call_id = facts.call_id, status = status.as_u16(), error = %err, "request failed");
        } else {
            tracing::debug!(call_id = facts.call_id, status = status.as_u16(), error = %err, "request rejected");
        }
    }
    Outcome { facts, result }
}

/// A chat request naming several model groups at once (`"model": "a,b"`, LiteLLM's batch
/// completions). Each group is served as a request of its own through [`run`], concurrently:
/// its own model-access check, limits, budget, routing and spend-log row.
pub enum Batch {
    /// Every group's outcome, in the order the client named them.
    All(Vec<Outcome>),
    /// `fastest_response: true`: the first success (the other calls are dropped, which cancels
    /// them), else the failure that came last.
    Fastest(Outcome),
    /// The request cannot be fanned out as asked.
    Refused(Outcome),
}

/// The model groups of a comma-separated chat `model`; `None` when it names one.
pub fn batch_models(req: &LlmRequest) -> Option<Vec<String>> {
    if req.kind != CallKind::Chat || !req.model.contains(',') {
        return None;
    }
    Some(
        req.model
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// Serve `req` once per model group of `models` (see [`Batch`]). A stream is served only with
/// `fastest_response` (the first stream to start wins); a list of streams has no wire form, so
/// streaming to every group is refused with a 400.
pub async fn run_batch(
    state: &AppState,
    http: &HttpRequest,
    caller: Caller,
    req: LlmRequest,
    models: Vec<String>,
) -> Batch {
    let fastest = req.gateway.fastest_response;
    if models.is_empty() {
        return Batch::Refused(Outcome::refused(GatewayError::bad_param(
            "model",
            "'model' names no model group.",
        )));
    }
    if req.stream && !fastest {
        return Batch::Refused(Outcome::refused(GatewayError::bad_param(
            "stream",
            "Streaming is not supported with several comma-separated models; set \"fastest_response\": true to stream the first model group that answers, or call each model group on its own.",
        )));
    }
    let one = |model: String| {
        let mut r = req.clone();
        r.body.insert("model".into(), Value::String(model.clone()));
        r.model = model;
        run(state, http, caller.clone(), r)
    };
    if !fastest {
        return Batch::All(futures_util::future::join_all(models.into_iter().map(one)).await);
    }
    let mut pending: futures_util::stream::FuturesUnordered<_> =
        models.into_iter().map(one).collect();
    let mut last = None;
    while let Some(outcome) = pending.next().await {
        if outcome.result.is_ok() {
            // Dropping `pending` cancels the calls still running.
            return Batch::Fastest(outcome);
        }
        last = Some(outcome);
    }
    Batch::Fastest(last.expect("at least one model group"))
}

/// An admitted request: answered from the response cache when it can be, else routed (and its
/// answer stored for next time).
async fn serve(
    state: &AppState,
    http: &HttpRequest,
    caller: &Caller,
    req: &LlmRequest,
    call: &mut Call,
    facts: &mut Facts,
) -> Result<Reply, GatewayError> {
    // Responses are stored by id and continued from the store, never answered from the cache.
    let cache = state
        .cache
        .as_ref()
        .filter(|_| req.kind != CallKind::Responses);
    let plan = match cache {
        Some(cache) => cache.plan(caller, req, &call.group)?,
        None => None,
    };
    if let (Some(cache), Some(plan)) = (cache, &plan) {
        facts.cache_key = Some(plan.key.clone());
        call.cache_key = Some(plan.key.clone());
        if plan.read {
            if let Some(hit) = cache.lookup(state, http, caller, &call.group, plan).await {
                return Ok(answer_from_cache(req, call, facts, hit));
            }
        }
    }
    // A stream whose answer is stored always asks for its usage chunk (the stored response needs
    // it); the recorder hides it from a client that did not ask.
    let hide_usage =
        plan.as_ref().is_some_and(|p| p.write) && req.stream && !req.client_wants_usage;
    let with_usage;
    let routed = if hide_usage {
        with_usage = LlmRequest {
            client_wants_usage: true,
            ..req.clone()
        };
        &with_usage
    } else {
        req
    };
    let result = route(state, caller, routed, call, facts).await;
    match &result {
        Ok(_) => {}
        Err(err) => {
            // 7. account: a request that failed for good has one spend-log row.
            let failed = Account {
                call_id: facts.call_id.clone(),
                started: facts.started,
                prompt_tokens: call.prompt_tokens,
                deployment: None,
                spend: call.spend.clone(),
                permit: None,
                target: crate::spend::Served {
                    model: facts.model_group.clone().unwrap_or_default(),
                    model_id: facts.deployment_id.clone(),
                    model_group: facts.model_group.clone(),
                    api_base: facts.api_base.clone(),
                    response_id: None,
                    cache_key: facts.cache_key.clone(),
                    cache_hit: false,
                    provider: None,
                    status_code: err.status_code().as_u16(),
                    time_to_first_token: None,
                },
                prices: None,
                span: None,
            };
            account(&failed, Exit::RequestFailed(err));
        }
    }
    match (cache, plan) {
        (Some(cache), Some(plan)) => result.map(|reply| cache.store(http, plan, reply, hide_usage)),
        _ => result,
    }
}

/// A cache hit: the stored answer, re-chunked for a streaming request; accounted at no cost.
fn answer_from_cache(
    req: &LlmRequest,
    call: &Call,
    facts: &mut Facts,
    hit: crate::caching::Hit,
) -> Reply {
    facts.model_group = Some(call.group.clone());
    facts.cache_key = Some(hit.key.clone());
    let acc = Account {
        call_id: call.call_id.clone(),
        started: call.started,
        prompt_tokens: call.prompt_tokens,
        deployment: None,
        spend: call.spend.clone(),
        permit: Some(call.permit.clone()),
        target: crate::spend::Served {
            model: call.group.clone(),
            model_id: None,
            model_group: Some(call.group.clone()),
            api_base: None,
            response_id: hit.completion.id.clone(),
            cache_key: Some(hit.key),
            cache_hit: true,
            provider: None,
            status_code: 200,
            time_to_first_token: None,
        },
        prices: None,
        span: None,
    };
    call.spend.keep_json_response(&hit.completion.body);
    facts.response_cost = Some(account(
        &acc,
        Exit::CacheHit {
            usage: hit.completion.usage,
        },
    ));
    if req.stream {
        Reply::Stream(crate::caching::replay::replay(
            req.kind,
            &hit.completion,
            req.client_wants_usage,
        ))
    } else {
        Reply::Complete(hit.completion)
    }
}

/// An admitted request: what its headers and body ask of routing (read once), and what it holds
/// (its rate-limit permit, its spend context with the budget reservation).
struct Call {
    call_id: String,
    started: Instant,
    /// The model group the request resolves to (after `model_group_alias`).
    group: String,
    /// The region the request is restricted to (its key's or end user's `allowed_model_region`): the
    /// requested group and every fallback are served only by deployments in it.
    region: Option<String>,
    /// The response-cache key, when the request consulted the cache (for its spend-log rows).
    cache_key: Option<String>,
    /// The caller's key spend as loaded (`x-litellm-key-spend` adds this instance's unwritten spend).
    key: Option<(String, f64)>,
    /// Who made the request, for its spend-log row.
    spend: Arc<crate::spend::SpendContext>,
    /// The admitted request's rate-limit permit; dropping its last copy ends the request.
    permit: crate::limits::SharedPermit,
    limit_headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Option<Duration>,
    stream_timeout: Option<Duration>,
    /// `num_retries` from the body, else the `x-litellm-num-retries` header.
    num_retries: Option<u32>,
    /// The request's prompt tokens as estimated before the call (`LlmRequest::estimated_prompt_tokens`).
    prompt_tokens: u64,
}

/// 2b–2c: model access, budgets and rate limits. The request comes back with its model resolved.
async fn admit_request(
    state: &AppState,
    http: &HttpRequest,
    caller: &Caller,
    mut req: LlmRequest,
    (call_id, started): (&str, Instant),
    trace: Option<crate::observability::traces::RequestTrace>,
) -> Result<(LlmRequest, Call), GatewayError> {
    let requested_model = req.model.clone();
    // 2b. model access: what the key, its user and its team each allow, and their aliases.
    let access = caller.model_access();
    let resolved = access.resolve(&req.model).to_string();
    // A `model_group_alias` names its group: a key allowed the group may use the alias.
    let group_of_alias = state.aliases.get(&resolved).map(|a| a.target.as_str());
    let permitted = |m: &str| access.permits(m, |g, m| state.in_access_group(g, m));
    if !permitted(&resolved) && !group_of_alias.is_some_and(permitted) {
        return Err(access.denied(&req.model));
    }
    // A team's own model, called by its public name, is served by its team-scoped group.
    let resolved = state
        .team_model_group(caller, &resolved)
        .unwrap_or(resolved);
    if resolved != req.model {
        req.model = resolved;
        req.body
            .insert("model".into(), Value::String(req.model.clone()));
    }
    if !req.gateway.ignored_credentials.is_empty() {
        tracing::warn!(
            call_id,
            fields = ?req.gateway.ignored_credentials,
            "request tried to set credential or routing fields; ignored"
        );
    }
    if state.detailed_debug {
        let body = crate::observability::callbacks::loggable_body(&state.config, &req.body);
        tracing::debug!(call_id, ?caller, %body, "request");
    }
    // 2c. budgets, then limits: key, user, team, end user, per model, gateway-wide. Per-model
    // limits and budgets key on the model group the request resolves to, so no alias (the key's,
    // or the router's `model_group_alias`) walks around them.
    let group = state
        .aliases
        .get(&req.model)
        .map_or(req.model.as_str(), |a| a.target.as_str())
        .to_string();
    // A team's own model (`model_info.team_id`) is for that team's keys only.
    if !state.team_scope_permits(caller, &group) {
        return Err(GatewayError::ModelAccessDenied {
            message: format!(
                "team not allowed to access model. Tried to access {requested_model}, a model reserved for the keys of another team (model_info.team_id)"
            ),
        });
    }
    // Estimated once: the cost reservation, the limiter's tokens, the picker and an early-ended
    // stream's charge all read it.
    let prompt_tokens = req.estimated_prompt_tokens();
    // The request's expected cost, worked out once and only when a budget applies.
    let estimated = std::cell::OnceCell::new();
    let estimate = || *estimated.get_or_init(|| estimated_cost(state, &req, &group, prompt_tokens));
    let mut reservation = crate::spend::check_budgets(
        caller,
        &group,
        &state.ledger,
        state.settings.live().budget_exceeded_status,
        &estimate,
    )?;
    let end_user = end_user_id(http, &req).map(str::to_string);
    let (permit, end_user_reservation, region) = admit(
        state,
        end_user.as_deref(),
        caller,
        prompt_tokens,
        &group,
        &estimate,
    )
    .await?;
    reservation.absorb(end_user_reservation);
    let spend = Arc::new(
        crate::spend::SpendContext::new(
            state,
            call_id,
            http,
            &req,
            caller,
            end_user.as_deref(),
            &requested_model,
        )
        .with_trace(trace),
    );
    spend.hold(reservation);
    let call = Call {
        call_id: call_id.to_string(),
        started,
        group,
        region,
        cache_key: None,
        prompt_tokens,
        key: caller
            .principal()
            .map(|p| (p.key.token.clone(), p.key.spend)),
        spend,
        limit_headers: crate::limits::headers(&permit.permit),
        permit: Arc::new(permit),
        timeout: req
            .gateway
            .timeout
            .or(header_seconds(http, "x-litellm-timeout")?),
        stream_timeout: req
            .gateway
            .stream_timeout
            .or(header_seconds(http, "x-litellm-stream-timeout")?),
        num_retries: match req.gateway.num_retries {
            Some(n) => Some(n),
            None => header_count(http, "x-litellm-num-retries")?,
        },
    };
    Ok((req, call))
}

/// 3. route: the requested group with its retries, then the fallback chain.
async fn route(
    state: &AppState,
    caller: &Caller,
    req: &LlmRequest,
    call: &Call,
    facts: &mut Facts,
) -> Result<Reply, GatewayError> {
    let first = serve_group(state, req, call, true).await;
    let first_error = match absorb(facts, first) {
        Ok(reply) => return Ok(reply),
        Err(err) => err,
    };
    let group = facts
        .model_group
        .clone()
        .unwrap_or_else(|| req.model.clone());
    let access = caller.model_access();
    let client = crate::routing::ClientFallbacks::chain(
        &req.gateway.fallbacks,
        &req.gateway.context_window_fallbacks,
        &req.gateway.content_policy_fallbacks,
        &[group.as_str(), req.model.as_str()],
        &first_error,
    );
    let chain = state
        .settings
        .live()
        .policy
        .fallbacks_for(&group, &first_error, &client);
    for fallback in chain {
        // A fallback the key may not use is skipped, never tried.
        if !access.permits(&fallback.model, |g, m| state.in_access_group(g, m))
            || !state.team_scope_permits(caller, &fallback.model)
        {
            tracing::debug!(
                call_id = facts.call_id,
                fallback = fallback.model,
                "fallback not allowed for this key; skipped"
            );
            continue;
        }
        facts.attempts.fallbacks += 1;
        let fallback_req = req.for_fallback(&fallback);
        tracing::info!(
            call_id = facts.call_id,
            from = group,
            to = fallback.model,
            error = %first_error,
            "falling back"
        );
        let run = serve_group(state, &fallback_req, call, false).await;
        let result = absorb(facts, run);
        if let Some(metrics) = call.spend.metrics() {
            let model_id = facts.deployment_id.as_deref();
            metrics.fallback(&fallback.model, &first_error, model_id, result.is_ok());
        }
        match result {
            Ok(reply) => return Ok(reply),
            Err(err) => {
                tracing::debug!(call_id = facts.call_id, fallback = fallback.model, error = %err, "fallback failed");
            }
        }
    }
    // Every fallback failed too: the client learns why its own model failed.
    Err(first_error)
}

/// The end user a request is for: the body's `user`, else the `x-litellm-end-user-id` or
/// `x-litellm-customer-id` header (LiteLLM's two names for it).
fn end_user_id<'a>(http: &'a HttpRequest, req: &'a LlmRequest) -> Option<&'a str> {
    req.body
        .get("user")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .or_else(|| {
            ["x-litellm-end-user-id", "x-litellm-customer-id"]
                .iter()
                .find_map(|name| {
                    http.headers()
                        .get(*name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::trim)
                        .filter(|u| !u.is_empty())
                })
        })
}

/// Completion tokens assumed for a request's cost estimate when it sets no `max_tokens` /
/// `max_completion_tokens`.
pub const DEFAULT_COMPLETION_ESTIMATE: u64 = 256;

/// The cost a request is expected to have, held against its budgets while it runs: the prompt
/// tokens estimated from the request (as for `tpm`) plus `max_completion_tokens` / `max_tokens`
/// (else [`DEFAULT_COMPLETION_ESTIMATE`]; none for embeddings), at the highest prices among the
/// group's deployments. 0 when no deployment has prices.
fn estimated_cost(state: &AppState, req: &LlmRequest, group: &str, prompt_tokens: u64) -> f64 {
    let snapshot = state.router.snapshot();
    let Some(group) = snapshot.group(group) else {
        return 0.0;
    };
    if req.kind.is_image() {
        // The images asked for, at the highest per-image price among the group's deployments.
        let bill = image_bill(req, &[], Usage::default());
        return group
            .deployments
            .iter()
            .filter_map(|h| {
                let d = &h.upstream;
                let target = d.target_for(&req.model).ok()?;
                Some(d.image_cost(&target, &bill))
            })
            .filter(|c| c.is_finite())
            .fold(0.0, f64::max);
    }
    if let Some(units) = unit_bill(req, None) {
        // Audio seconds, characters, search units: at the group's highest unit price.
        return group
            .deployments
            .iter()
            .filter_map(|h| {
                let d = &h.upstream;
                let target = d.target_for(&req.model).ok()?;
                Some(d.unit_cost(&target, units))
            })
            .filter(|c| c.is_finite())
            .fold(0.0, f64::max);
    }
    let completion_tokens = match req.kind {
        CallKind::Embedding | CallKind::Moderation => 0,
        _ => ["max_completion_tokens", "max_tokens", "max_output_tokens"]
            .iter()
            .find_map(|f| req.body.get(*f).and_then(Value::as_u64))
            .unwrap_or(DEFAULT_COMPLETION_ESTIMATE),
    };
    let usage = Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens + completion_tokens,
        ..Usage::default()
    };
    group
        .deployments
        .iter()
        .filter_map(|h| {
            let d = &h.upstream;
            let target = d.target_for(&req.model).ok()?;
            d.prices_for(&target)
        })
        .map(|p| p.cost(&usage, Duration::ZERO))
        .filter(|c| c.is_finite())
        .fold(0.0, f64::max)
}

/// What a call priced per unit consumed: the seconds of audio of a transcription (the answer's
/// `duration`, else the file's length), the characters of a speech input, the search units (and
/// provider tokens) of a rerank. `answer` is the translated response, `None` before the call (an
/// estimate: the file's length, one search unit per 100 documents). `None` for calls priced by
/// tokens or per image.
fn unit_bill(req: &LlmRequest, answer: Option<&[u8]>) -> Option<crate::pricing::Units> {
    use crate::pricing::Units;
    Some(match req.kind {
        CallKind::Transcription | CallKind::Translation => Units::AudioSeconds(match answer {
            Some(answer) => crate::audio::billed_seconds(req, answer),
            None => req
                .uploads
                .iter()
                .find(|u| u.field == "file")
                .and_then(|f| crate::audio::file_seconds(&f.data))
                .unwrap_or(0.0),
        }),
        CallKind::Speech => Units::Characters(
            req.body
                .get("input")
                .and_then(Value::as_str)
                .map_or(0, |s| s.chars().count() as u64),
        ),
        CallKind::Rerank => {
            let (search_units, tokens) = match answer {
                Some(answer) => crate::rerank::billed(answer),
                None => crate::rerank::expected_billing(req),
            };
            Units::Rerank {
                search_units,
                tokens,
            }
        }
        _ => return None,
    })
}

/// What an image request asked for (`size`, `quality`, `n`) and, once answered, what it got (the
/// images returned, GPT Image models' token usage), for its cost. `body` is the OpenAI images
/// response (empty before the call).
fn image_bill<'a>(req: &'a LlmRequest, body: &[u8], usage: Usage) -> crate::pricing::ImageBill<'a> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default)]
        data: Vec<serde::de::IgnoredAny>,
        #[serde(default)]
        usage: Option<tollgate_wire::openai::ImageUsage>,
    }
    let probe = serde_json::from_slice::<Probe>(body).ok();
    let asked = req.body.get("n").and_then(Value::as_u64).unwrap_or(1);
    let images = probe
        .as_ref()
        .map(|p| p.data.len() as u64)
        .filter(|n| *n > 0)
        .unwrap_or(asked);
    let details = probe.and_then(|p| p.usage).unwrap_or_default();
    let text_tokens = if details.input_tokens_details == Default::default() {
        usage.prompt_tokens
    } else {
        details.input_tokens_details.text_tokens
    };
    crate::pricing::ImageBill {
        size: req.body.get("size").and_then(Value::as_str),
        quality: req.body.get("quality").and_then(Value::as_str),
        images,
        text_tokens,
        image_input_tokens: details.input_tokens_details.image_tokens,
        output_tokens: usage.completion_tokens,
    }
}

/// Admission of a call that is not an LLM request (the files and batches APIs) to a deployment
/// of model group `group`: with `budget`, the key's, user's, team's and organization's budgets
/// (and the key's `model_max_budget` for `group`) must not be spent (nothing is reserved: such
/// a call is priced, if at all, only later); then one request under every rate limit that
/// applies (no tokens). The permit is held until the call ends.
pub async fn admit_operation(
    state: &AppState,
    caller: &Caller,
    group: &str,
    budget: bool,
) -> Result<crate::limits::Admission, GatewayError> {
    if budget {
        drop(crate::spend::check_budgets(
            caller,
            group,
            &state.ledger,
            state.settings.live().budget_exceeded_status,
            &|| 0.0,
        )?);
    }
    admit_with(state, caller, 0, group, None).await
}

/// Admit the request under every rate limit that applies to it, or answer 429. Per-model limits
/// apply to the model group `group`.
async fn admit_with(
    state: &AppState,
    caller: &Caller,
    prompt_tokens: u64,
    group: &str,
    end_user: Option<(&str, &crate::limits::EndUserLimits)>,
) -> Result<crate::limits::Admission, GatewayError> {
    let scopes = crate::limits::scopes(caller, group, state.global_max_parallel, end_user);
    if scopes.is_empty() {
        return Ok(crate::limits::Admission::local(
            tollgate_actors::Permit::unlimited(),
        ));
    }
    let tokens = prompt_tokens;
    let now = now_ms();
    let permit = state
        .limiter
        .counters()
        .acquire(scopes.clone(), tokens, now)
        .map_err(crate::limits::exceeded)?;
    let shared = match &state.router.shared {
        Some(redis) => {
            crate::limits::admit_shared(redis, state.limiter.breaker(), &scopes, tokens, now)
                .await?
        }
        None => None,
    };
    Ok(crate::limits::Admission::with_shared(
        permit, shared, tokens,
    ))
}

/// The end user's checks and the rate limits; the end user's budget reservation and the region
/// the request is restricted to (the key's and the end user's `allowed_model_region`) come with
/// the permit.
async fn admit(
    state: &AppState,
    end_user: Option<&str>,
    caller: &Caller,
    prompt_tokens: u64,
    group: &str,
    estimate: &dyn Fn() -> f64,
) -> Result<
    (
        crate::limits::Admission,
        crate::spend::Reservation,
        Option<String>,
    ),
    GatewayError,
> {
    let mut reservation = crate::spend::Reservation::default();
    let end_user = match end_user {
        None => None,
        Some(id) => match state.end_users.get(id).await {
            tollgate_actors::Lookup::Found(limits) => {
                if limits.blocked {
                    return Err(GatewayError::Forbidden {
                        message: format!("End user {id} is blocked from making LLM API calls"),
                    });
                }
                reservation = crate::spend::check_end_user_budget(
                    id,
                    &limits,
                    &state.ledger,
                    state.settings.live().budget_exceeded_status,
                    estimate,
                )?;
                Some((id.to_string(), limits))
            }
            tollgate_actors::Lookup::NotFound => None,
            tollgate_actors::Lookup::Unavailable(e) => {
                tracing::warn!(end_user = id, error = %e, "end-user limits unavailable; not applied to this request");
                None
            }
        },
    };
    let admission = admit_with(
        state,
        caller,
        prompt_tokens,
        group,
        end_user.as_ref().map(|(id, l)| (id.as_str(), &**l)),
    )
    .await?;
    let region = allowed_region(
        caller,
        end_user.and_then(|(_, limits)| limits.allowed_model_region.clone()),
    )?;
    Ok((admission, reservation, region))
}

/// The region a request is restricted to: its key's `allowed_model_region` and its end user's.
/// Both set and different: no deployment can serve it (400).
fn allowed_region(
    caller: &Caller,
    end_user: Option<String>,
) -> Result<Option<String>, GatewayError> {
    let key = caller.principal().and_then(|p| {
        p.key
            .data
            .get("allowed_model_region")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    match (key, end_user) {
        (Some(k), Some(u)) if k != u => Err(GatewayError::bad_request(format!(
            "the key may only use models in region '{k}' and the end user only in region '{u}': no deployment can serve this request"
        ))),
        (k, u) => Ok(k.or(u)),
    }
}

/// Budgets and rate limits for a request relayed to a provider's own API (a pass-through
/// route): the caller's budgets (and `model_max_budget` for `group`, the model group it names,
/// `""` for none) and its rate limits, as for any LLM call. Nothing is estimated beforehand (the
/// native body is not read), so the limits' token windows count the real usage once the
/// permit is settled, and budgets admit while the spend recorded is below them.
pub async fn admit_pass_through(
    state: &AppState,
    caller: &Caller,
    group: &str,
) -> Result<(crate::limits::SharedPermit, crate::spend::Reservation), GatewayError> {
    let reservation = crate::spend::check_budgets(
        caller,
        group,
        &state.ledger,
        state.settings.live().budget_exceeded_status,
        &|| 0.0,
    )?;
    let admission = admit_with(state, caller, 0, group, None).await?;
    Ok((Arc::new(admission), reservation))
}

impl Call {
    fn key_spend(&self, ledger: &crate::spend::Ledger) -> Option<f64> {
        self.key
            .as_ref()
            .map(|(token, stored)| stored + ledger.pending("key", token))
    }
}

fn pick_error(group: &str, err: PickError) -> GatewayError {
    match err {
        PickError::AllCoolingDown { retry_after } => GatewayError::NoDeploymentsAvailable {
            model_group: group.to_string(),
            reason: "every deployment is cooling down after failures",
            retry_after,
        },
        PickError::OverDeploymentLimits { retry_after } => GatewayError::NoDeploymentsAvailable {
            model_group: group.to_string(),
            reason: "every deployment has reached its rpm/tpm limit for this minute",
            retry_after,
        },
        PickError::NoneInRegion { region } => GatewayError::NoDeploymentInRegion {
            model_group: group.to_string(),
            region,
        },
        PickError::Exhausted => GatewayError::NoDeploymentsAvailable {
            model_group: group.to_string(),
            reason: "every deployment was tried",
            retry_after: Duration::from_secs(1),
        },
        PickError::ContextWindowExceeded {
            prompt_tokens,
            largest_window,
        } => GatewayError::Upstream {
            kind: UpstreamErrorKind::ContextWindowExceeded,
            status: 400,
            message: format!(
                "This model's maximum context length is {largest_window} tokens. However, your messages resulted in about {prompt_tokens} tokens (pre-call check, model group '{group}')."
            ),
            code: None,
            param: Some("messages".into()),
            retry_after: None,
        },
    }
}

/// What serving from one model group produced, with the facts of its attempts.
struct GroupRun {
    result: Result<Reply, GatewayError>,
    model_group: Option<String>,
    retries: u32,
    max_retries: Option<u32>,
    upstream_time: Duration,
    /// The last deployment tried.
    last: Option<AttemptFacts>,
}

/// The facts of one attempt on one deployment.
#[derive(Default)]
struct AttemptFacts {
    deployment_id: String,
    api_base: Option<String>,
    /// The deployment's region, when known.
    region: Option<String>,
    timeout: Option<Duration>,
    upstream_time: Duration,
    /// Set when the provider answered.
    provider_headers: Option<Vec<(HeaderName, HeaderValue)>>,
    response_cost: Option<f64>,
    key_spend: Option<f64>,
    /// The reply is in the Responses API's shape (see [`Facts::responses_shaped`]).
    responses_shaped: bool,
}

/// A group's facts added to the request's; its result handed on.
fn absorb(facts: &mut Facts, run: GroupRun) -> Result<Reply, GatewayError> {
    if run.model_group.is_some() {
        facts.model_group = run.model_group;
    }
    facts.attempts.retries += run.retries;
    if run.max_retries.is_some() {
        facts.attempts.max_retries = run.max_retries;
    }
    facts.upstream_time += run.upstream_time;
    if let Some(last) = run.last {
        facts.deployment_id = Some(last.deployment_id);
        facts.api_base = last.api_base;
        facts.model_region = last.region;
        if last.timeout.is_some() {
            facts.timeout = last.timeout;
        }
        if let Some(headers) = last.provider_headers {
            facts.provider_headers = headers;
        }
        facts.response_cost = last.response_cost;
        facts.key_spend = last.key_spend;
        facts.responses_shaped = last.responses_shaped;
    }
    run.result
}

/// Serve a request from one model group: pick a deployment, call it, and retry on another (or the
/// same, after a backoff) while the error is retryable and retries remain.
async fn serve_group(
    state: &AppState,
    req: &LlmRequest,
    call: &Call,
    requested_group: bool,
) -> GroupRun {
    let mut run = GroupRun {
        result: Err(GatewayError::internal("no attempt was made")),
        model_group: None,
        retries: 0,
        max_retries: None,
        upstream_time: Duration::ZERO,
        last: None,
    };
    run.result = retry_loop(state, req, call, requested_group, &mut run).await;
    run
}

async fn retry_loop(
    state: &AppState,
    req: &LlmRequest,
    call: &Call,
    requested_group: bool,
    run: &mut GroupRun,
) -> Result<Reply, GatewayError> {
    let snapshot = state.router.snapshot();
    let group_name = state
        .aliases
        .get(&req.model)
        .map(|a| a.target.as_str())
        .unwrap_or(&req.model);
    let group = snapshot
        .group(group_name)
        .ok_or_else(|| GatewayError::UnknownModel {
            model: req.model.clone(),
        })?;
    run.model_group = Some(group.name.clone());
    let live = state.settings.live();
    let policy = &live.policy;
    let mut tried: Vec<String> = Vec::new();
    // Deployments whose rpm/tpm the instances sharing Redis have used up this minute.
    let mut over_limit: Vec<String> = Vec::new();
    let mut last_error: Option<GatewayError> = None;
    loop {
        let pick = |exclude: &[String]| {
            group.pick(&PickRequest {
                strategy: &policy.strategy,
                exclude,
                estimated_tokens: call.prompt_tokens,
                pre_call_checks: policy.pre_call_checks,
                region: call.region.as_deref(),
                now_ms: now_ms(),
            })
        };
        let exclude: Vec<String> = tried.iter().chain(&over_limit).cloned().collect();
        let picked = match (pick(&exclude), last_error.take()) {
            (Ok(picked), _) => picked,
            // Every deployment was tried: the same ones may be tried again.
            (Err(PickError::Exhausted), Some(previous)) => match pick(&over_limit) {
                Ok(picked) => picked,
                Err(_) => return Err(previous),
            },
            // Nothing can take the retry (cooling down, over its limits): the client gets the
            // error that made it retry.
            (Err(_), Some(previous)) => return Err(previous),
            (Err(PickError::Exhausted), None) if !over_limit.is_empty() => {
                return Err(pick_error(
                    &group.name,
                    PickError::OverDeploymentLimits {
                        retry_after: Duration::from_millis(60_000 - now_ms() % 60_000),
                    },
                ))
            }
            (Err(err), None) => return Err(pick_error(&group.name, err)),
        };
        let deployment = picked.handle.upstream.clone();
        let Some(counters) = account_shared(state, &picked).await else {
            over_limit.push(deployment.id.clone());
            continue;
        };
        run.max_retries =
            Some(policy.max_retries(&group.name, None, call.num_retries, deployment.num_retries));
        let fake = fake_upstream(req, &deployment, requested_group, run.retries);
        let (facts, result) = attempt(state, req, call, &group.name, counters, fake).await;
        run.upstream_time += facts.upstream_time;
        run.last = Some(facts);
        let failed = match result {
            Ok(reply) => return Ok(reply),
            Err(failed) => failed,
        };
        let err = failed.error;
        let class = err.classify(false).map(|c| c.bucket);
        let max = policy.max_retries(&group.name, class, call.num_retries, deployment.num_retries);
        run.max_retries = Some(max);
        let others = group.serving(call.region.as_deref()) > 1;
        if failed.final_for_group
            || run.retries >= max
            || !policy.retryable(&group.name, &err, others)
        {
            return Err(err);
        }
        run.retries += 1;
        tried.push(deployment.id.clone());
        if !group.has_other_available(now_ms(), &tried, call.region.as_deref()) {
            match policy.backoff(run.retries, err.retry_after()) {
                Some(wait) => {
                    tracing::debug!(
                        call_id = call.call_id,
                        wait_ms = wait.as_millis() as u64,
                        "retrying after backoff"
                    );
                    actix_web::rt::time::sleep(wait).await;
                }
                None => return Err(err),
            }
        }
        tracing::debug!(call_id = call.call_id, retry = run.retries, error = %err, "retrying");
        last_error = Some(err);
    }
}

/// What one attempt on a deployment owes its counters when it ends: the minute's token
/// reservation reconciled with the real usage, and the latency sample; locally, and in Redis when
/// shared.
#[derive(Clone)]
struct DeploymentCounters {
    handle: Arc<DeploymentHandle<Deployment>>,
    reserved_tokens: u64,
    reserved_at_ms: u64,
    /// Set when this attempt's usage was also reserved in Redis.
    shared_usage: Option<SharedRouterState>,
    /// Set when latencies are shared (latency-based routing).
    shared_latency: Option<SharedRouterState>,
}

impl DeploymentCounters {
    fn tokens(&self, actual: u64) {
        self.handle
            .state
            .reconcile_tokens(now_ms(), self.reserved_tokens, actual);
        if let Some(shared) = &self.shared_usage {
            // Joins the settlements of the requests ending now: one pipeline for all of them.
            let key = SharedRouterState::deployment_tpm_key(self.handle.id(), self.reserved_at_ms);
            let delta = actual as i64 - self.reserved_tokens as i64;
            shared.settle_soon(None, vec![key], delta);
        }
    }

    fn success(&self, latency: Duration) {
        self.handle.state.record_success(latency);
        if let Some(shared) = self.shared_latency.clone() {
            let id = self.handle.id().to_string();
            actix_web::rt::spawn(async move {
                if let Err(e) = shared.push_latency(&id, latency).await {
                    tracing::debug!(deployment = id, error = %e, "latency sample not shared");
                }
            });
        }
    }

    /// A stream that broke after it started counts against its deployment.
    fn stream_broke(&self) {
        let broke = Classification::upstream(
            UpstreamErrorKind::StreamInterrupted,
            0,
            self.handle.upstream.is_wildcard(),
        );
        if let Some(cooldown) = broke.cooldown {
            self.handle.report_failure(DeploymentFailure {
                class: cooldown.class,
                bucket: cooldown.bucket,
                status: None,
                retry_after: None,
            });
        }
    }
}

/// Everything a request's exits are accounted against. Owned, so a stream's end can account after
/// the handler returned.
#[derive(Clone)]
struct Account {
    call_id: String,
    started: Instant,
    /// The request's prompt tokens as estimated (what a stream that ended early is charged for).
    prompt_tokens: u64,
    /// The attempt's deployment (none for a request that failed for good).
    deployment: Option<DeploymentCounters>,
    spend: Arc<crate::spend::SpendContext>,
    permit: Option<crate::limits::SharedPermit>,
    /// Where the request went, for its spend-log row.
    target: crate::spend::Served,
    prices: Option<crate::pricing::Prices>,
    /// The attempt's span, with traces on.
    span: Option<crate::observability::traces::AttemptSpan>,
}

/// How a request, or one attempt of it, ended.
enum Exit<'a> {
    /// `mock_response`: a canned answer. Nothing was used, nothing is charged.
    Canned,
    /// `mock_testing_*`: a simulated provider failure. It never counts against the deployment.
    Simulated(&'a GatewayError),
    /// The provider failed this attempt; the request may still retry or fall back.
    AttemptFailed(&'a GatewayError),
    /// A complete response, `latency` after the call started; `priced`: its cost when it is not
    /// priced by its tokens (images).
    Complete {
        usage: Usage,
        latency: Duration,
        response_id: Option<String>,
        priced: Option<f64>,
    },
    /// A stream ended: completed, broken, or left by its client.
    StreamEnd {
        outcome: StreamOutcome,
        time_to_first_token: Duration,
    },
    /// The request failed for good, after its attempts (or before any).
    RequestFailed(&'a GatewayError),
    /// Answered from the response cache: nothing is charged and no provider tokens were used
    /// (the request still counted against rpm limits when it was admitted).
    CacheHit { usage: Usage },
}

/// What an exit does; the one place the differences between exits are stated.
#[derive(Default)]
struct Effects<'a> {
    /// The deployment answered: its latency sample.
    latency: Option<Duration>,
    /// The tokens the attempt used: the deployment's minute reservation becomes this.
    deployment_tokens: Option<u64>,
    /// The tokens the request used: the rate-limit permit's reservation becomes this.
    settled_tokens: Option<u64>,
    /// The spend-log row.
    row: Option<Row>,
    /// A failure the deployment's actor weighs for a cooldown.
    failure: Option<Failure<'a>>,
}

struct Row {
    /// A stream's time to first token.
    time_to_first_token: Option<Duration>,
    usage: Usage,
    /// The duration per-second prices apply to; `None`: nothing is charged.
    priced_over: Option<Duration>,
    /// The cost worked out already (images), instead of the prices' cost of the usage.
    priced: Option<f64>,
    response_id: Option<String>,
    error: Option<String>,
}

enum Failure<'a> {
    Error(&'a GatewayError),
    StreamBroke,
}

/// Step 7, account: the one step every exit goes through. Returns the request's cost (USD), 0
/// when nothing is charged.
fn account(acc: &Account, exit: Exit) -> f64 {
    if let (Some(span), Some(trace)) = (&acc.span, acc.spend.trace()) {
        trace_attempt(acc, span, trace, &exit);
    }
    if let (Some(deployment), Some(metrics)) = (&acc.deployment, acc.spend.metrics()) {
        use crate::observability::metrics::AttemptEnd;
        let end = match &exit {
            Exit::AttemptFailed(err) => Some(AttemptEnd::Failed(err)),
            Exit::Complete { latency, .. } => Some(AttemptEnd::Complete {
                latency: *latency,
                elapsed: acc.started.elapsed(),
            }),
            Exit::StreamEnd {
                outcome,
                time_to_first_token,
            } => Some(AttemptEnd::Stream {
                time_to_first_token: *time_to_first_token,
                elapsed: acc.started.elapsed(),
                broke: outcome.error.is_some() && !outcome.client_disconnected,
            }),
            Exit::Canned | Exit::Simulated(_) | Exit::RequestFailed(_) | Exit::CacheHit { .. } => {
                None
            }
        };
        if let Some(end) = end {
            metrics.attempt(&deployment.handle, &acc.target, end);
        }
    }
    let effects = match exit {
        Exit::Canned => Effects {
            latency: Some(acc.started.elapsed()),
            row: Some(Row {
                time_to_first_token: None,
                usage: Usage::default(),
                priced_over: None,
                priced: None,
                response_id: None,
                error: None,
            }),
            ..Effects::default()
        },
        Exit::Simulated(_) => Effects::default(),
        Exit::AttemptFailed(err) => Effects {
            deployment_tokens: Some(0),
            failure: Some(Failure::Error(err)),
            ..Effects::default()
        },
        Exit::Complete {
            usage,
            latency,
            response_id,
            priced,
        } => {
            log_finished(acc, "request finished", &usage);
            Effects {
                latency: Some(latency),
                deployment_tokens: Some(usage.total_tokens),
                settled_tokens: Some(usage.total_tokens),
                row: Some(Row {
                    time_to_first_token: None,
                    usage,
                    priced_over: Some(latency),
                    priced,
                    response_id,
                    error: None,
                }),
                failure: None,
            }
        }
        Exit::StreamEnd {
            outcome,
            time_to_first_token,
        } => {
            // A stream that ended before its usage chunk (client gone, provider cut, error) is
            // charged, and counted against tpm, for its prompt and the text relayed so far: the
            // provider bills both.
            let usage = outcome.usage_or_estimate(acc.prompt_tokens);
            let broke = outcome.error.is_some() && !outcome.client_disconnected;
            match &outcome.error {
                None => {}
                Some(error) if broke => tracing::warn!(
                    call_id = acc.call_id,
                    model_group = acc.target.model_group.as_deref().unwrap_or_default(),
                    error,
                    "stream ended with an error"
                ),
                Some(_) => tracing::debug!(call_id = acc.call_id, "client disconnected mid-stream"),
            }
            if outcome.usage.is_some() {
                log_finished(acc, "stream finished", &usage);
            }
            Effects {
                // latency-based routing ranks streams by time to first token.
                latency: outcome.error.is_none().then_some(time_to_first_token),
                deployment_tokens: Some(usage.total_tokens),
                settled_tokens: Some(usage.total_tokens),
                row: Some(Row {
                    time_to_first_token: Some(time_to_first_token),
                    usage,
                    priced_over: Some(acc.started.elapsed()),
                    priced: None,
                    response_id: outcome.response_id,
                    error: outcome.error,
                }),
                failure: broke.then_some(Failure::StreamBroke),
            }
        }
        Exit::RequestFailed(err) => Effects {
            row: Some(Row {
                time_to_first_token: None,
                usage: Usage::default(),
                priced_over: None,
                priced: None,
                response_id: None,
                error: Some(err.to_string()),
            }),
            ..Effects::default()
        },
        Exit::CacheHit { usage } => Effects {
            settled_tokens: Some(0),
            row: Some(Row {
                time_to_first_token: None,
                usage,
                priced_over: None,
                priced: None,
                response_id: acc.target.response_id.clone(),
                error: None,
            }),
            ..Effects::default()
        },
    };

    if let Some(deployment) = &acc.deployment {
        if let Some(latency) = effects.latency {
            deployment.success(latency);
        }
        if let Some(tokens) = effects.deployment_tokens {
            deployment.tokens(tokens);
        }
        match effects.failure {
            Some(Failure::Error(err)) => report(&deployment.handle, err),
            Some(Failure::StreamBroke) => deployment.stream_broke(),
            None => {}
        }
    }
    if let (Some(permit), Some(tokens)) = (&acc.permit, effects.settled_tokens) {
        permit.settle(tokens);
    }
    let Some(row) = effects.row else {
        return 0.0;
    };
    let cost = match (&acc.prices, row.priced_over, row.priced) {
        (_, Some(_), Some(priced)) => priced,
        (Some(prices), Some(over), None) => prices.cost(&row.usage, over),
        _ => 0.0,
    };
    let target = crate::spend::Served {
        response_id: row.response_id,
        time_to_first_token: row.time_to_first_token,
        ..acc.target.clone()
    };
    acc.spend
        .record(&target, row.usage, cost, row.error.as_deref());
    cost
}

/// An attempt's span, as it ends.
fn trace_attempt(
    acc: &Account,
    span: &crate::observability::traces::AttemptSpan,
    trace: &crate::observability::traces::RequestTrace,
    exit: &Exit,
) {
    let (usage, status_code, error) = match exit {
        Exit::Canned => (None, 200, None),
        Exit::Simulated(err) | Exit::AttemptFailed(err) => {
            (None, err.status_code().as_u16(), Some(err.to_string()))
        }
        Exit::Complete { usage, .. } => (Some(*usage), 200, None),
        Exit::StreamEnd { outcome, .. } => (
            Some(outcome.usage_or_estimate(acc.prompt_tokens)),
            200,
            outcome
                .error
                .clone()
                .filter(|_| !outcome.client_disconnected),
        ),
        // Not attempts: the request's own span records them.
        Exit::RequestFailed(_) | Exit::CacheHit { .. } => return,
    };
    let target = &acc.target;
    trace.tracer.attempt_ended(
        &trace.ctx,
        span,
        crate::observability::traces::AttemptEnd {
            call_type: acc.spend.call_type(),
            model: &target.model,
            model_group: target.model_group.as_deref(),
            deployment_id: target.model_id.as_deref(),
            provider: target.provider.as_deref(),
            usage,
            status_code,
            error,
            call_id: &acc.call_id,
        },
    );
}

fn log_finished(acc: &Account, what: &'static str, usage: &Usage) {
    tracing::debug!(
        call_id = acc.call_id,
        model_group = acc.target.model_group.as_deref().unwrap_or_default(),
        deployment = acc.target.model_id.as_deref().unwrap_or_default(),
        prompt_tokens = usage.prompt_tokens,
        completion_tokens = usage.completion_tokens,
        total_tokens = usage.total_tokens,
        duration_ms = acc.started.elapsed().as_millis() as u64,
        "{what}"
    );
}

/// A deployment-level fake upstream: what an attempt gets instead of calling the provider.
#[derive(Clone, Copy)]
enum Fake<'a> {
    /// `mock_response` (the request's, else the deployment's): a canned answer.
    Canned(&'a Value),
    /// `mock_testing_*`: a simulated provider failure.
    Fail(MockFailure),
    /// The deployment's `mock_timeout: true`: the attempt waits its timeout, then times out.
    Timeout,
}

/// The fake upstream for this attempt, if any. Simulated failures apply to the requested model
/// group only (so its fallbacks are real), and a simulated rate limit to its first attempt only
/// (so the retry is real).
fn fake_upstream<'a>(
    req: &'a LlmRequest,
    deployment: &'a Deployment,
    requested_group: bool,
    retries: u32,
) -> Option<Fake<'a>> {
    let failure = req
        .gateway
        .mock_failure
        .filter(|f| requested_group && (retries == 0 || *f != MockFailure::RateLimit));
    match failure {
        Some(failure) => Some(Fake::Fail(failure)),
        None if deployment.mock_timeout => Some(Fake::Timeout),
        None => req
            .gateway
            .mock_response
            .as_ref()
            .or(deployment.mock_response.as_ref())
            .map(Fake::Canned),
    }
}

/// One attempt that failed.
struct Failed {
    error: GatewayError,
    /// No retry in this group (a simulated server error fails the group at once, so that its
    /// fallbacks are tried).
    final_for_group: bool,
}

/// One attempt on one deployment, real or fake.
async fn attempt(
    state: &AppState,
    req: &LlmRequest,
    call: &Call,
    group: &str,
    counters: DeploymentCounters,
    fake: Option<Fake<'_>>,
) -> (AttemptFacts, Result<Reply, Failed>) {
    let deployment = counters.handle.upstream.clone();
    // Timeouts: body, then header, then deployment, then router settings / global.
    let live = state.settings.live();
    let timeout = call
        .timeout
        .or(deployment.timeout)
        .unwrap_or(live.request_timeout);
    let stream_timeout = call
        .stream_timeout
        .or(deployment.stream_timeout)
        .or(live.policy.stream_timeout)
        .unwrap_or(timeout);
    let mut facts = AttemptFacts {
        deployment_id: deployment.id.clone(),
        api_base: deployment.api_base().map(str::to_string),
        region: deployment.region.clone(),
        timeout: Some(if req.stream { stream_timeout } else { timeout }),
        ..AttemptFacts::default()
    };
    let mut acc = Account {
        call_id: call.call_id.clone(),
        started: call.started,
        prompt_tokens: call.prompt_tokens,
        deployment: Some(counters),
        spend: call.spend.clone(),
        permit: Some(call.permit.clone()),
        target: crate::spend::Served {
            model: deployment.litellm_model.clone(),
            model_id: Some(deployment.id.clone()),
            model_group: Some(group.to_string()),
            api_base: facts.api_base.clone(),
            response_id: None,
            cache_key: call.cache_key.clone(),
            cache_hit: false,
            provider: Some(deployment.provider_name().to_string()),
            status_code: 200,
            time_to_first_token: None,
        },
        prices: None,
        span: call
            .spend
            .trace()
            .map(|_| crate::observability::traces::AttemptSpan::start()),
    };
    let result = match fake {
        Some(Fake::Fail(failure)) => {
            let error = simulated_error(failure, &req.model);
            account(&acc, Exit::Simulated(&error));
            Err(Failed {
                error,
                final_for_group: failure == MockFailure::Server,
            })
        }
        Some(Fake::Timeout) => {
            // `mock_timeout`: the call times out without reaching the provider.
            let wait = if req.stream { stream_timeout } else { timeout };
            let _in_flight = deployment_state(&acc).begin();
            tokio::time::sleep(wait).await;
            let error = GatewayError::Timeout {
                model: req.model.clone(),
                timeout: wait,
            };
            account(&acc, Exit::AttemptFailed(&error));
            Err(Failed {
                error,
                final_for_group: false,
            })
        }
        Some(Fake::Canned(content)) => {
            let _in_flight = deployment_state(&acc).begin();
            let reply = crate::mock_response::respond(req, content);
            if let Reply::Complete(c) = &reply {
                // Canned transcripts may be text; everything else is JSON the gateway wrote.
                if c.content_type.is_some() {
                    call.spend.keep_response(&c.body);
                } else {
                    call.spend.keep_json_response(&c.body);
                }
            }
            account(&acc, Exit::Canned);
            Ok(reply)
        }
        None => {
            let timeouts = (timeout, stream_timeout);
            call_provider(state, req, call, &mut acc, timeouts, &mut facts)
                .await
                .map_err(|error| Failed {
                    error,
                    final_for_group: false,
                })
        }
    };
    (facts, result)
}

fn deployment_state(acc: &Account) -> &Arc<tollgate_actors::DeploymentState> {
    &acc.deployment
        .as_ref()
        .expect("an attempt has a deployment")
        .handle
        .state
}

/// Steps 4–6 on a real provider. Nothing reaches the client until this returns `Ok`: a stream is
/// committed only once its first bytes have arrived, so a stream that fails before that can still
/// be retried or fall back.
async fn call_provider(
    state: &AppState,
    req: &LlmRequest,
    call: &Call,
    acc: &mut Account,
    (timeout, stream_timeout): (Duration, Duration),
    facts: &mut AttemptFacts,
) -> Result<Reply, GatewayError> {
    let deployment = acc
        .deployment
        .as_ref()
        .expect("an attempt has a deployment")
        .handle
        .upstream
        .clone();
    // `max_parallel_requests`: wait for one of the deployment's slots, held while the call is in
    // flight (a stream's until it ends).
    let slot = match &deployment.parallel {
        Some(limit) => limit.slots.clone().acquire_owned().await.ok(),
        None => None,
    };
    let in_flight = (deployment_state(acc).begin(), slot);

    // 4. translate
    let target = deployment.target_for(&req.model)?;
    if let Some(reason) = providers::retired(target.spec, &target.model) {
        return Err(GatewayError::bad_request(reason));
    }
    let adapter: &dyn ProviderAdapter =
        providers::adapter_for(target.spec.wire).ok_or_else(|| {
            GatewayError::DeploymentMisconfigured {
                message: format!("no adapter for provider '{}'", target.spec.name),
            }
        })?;
    // A Responses request goes to OpenAI and Azure as it is, to every other provider as chat:
    // decided per deployment, so a fallback may cross from one to the other.
    let responses_native = req.kind == CallKind::Responses && crate::responses_api::native(&target);
    let as_chat;
    let req = if req.kind == CallKind::Responses && !responses_native {
        as_chat = crate::responses_api::chat_request(req)?;
        &as_chat
    } else {
        req
    };
    facts.responses_shaped = responses_native;
    if !adapter.supports(req.kind) {
        return Err(providers::native::unsupported_call(&target, req.kind));
    }
    let prepared = adapter.prepare(&deployment, &target, req)?;
    acc.prices = deployment.prices_for(&target);

    // 5. call
    let call_started = Instant::now();
    let head_timeout = if req.stream { stream_timeout } else { timeout };
    // Speech audio is relayed as it arrives, like a stream (but byte for byte).
    let relayed = req.stream || req.kind == CallKind::Speech;
    let key = target.api_key.clone();
    let fail = |err: GatewayError, facts: &mut AttemptFacts| {
        facts.upstream_time += call_started.elapsed();
        account(acc, Exit::AttemptFailed(&err));
        err
    };
    let mut prepared = match adapter.authorize(&deployment, &target, prepared).await {
        Ok(p) => p,
        Err(e) => return Err(fail(e, facts)),
    };
    // With traces on, the provider continues the trace from this attempt's span. Added after
    // signing: SigV4 signs only the headers it lists.
    if let (Some(span), Some(trace)) = (&acc.span, acc.spend.trace()) {
        prepared
            .headers
            .push(("traceparent".into(), trace.ctx.traceparent(span.span_id)));
        if let Some(state) = trace.ctx.tracestate() {
            prepared.headers.push(("tracestate".into(), state));
        }
    }
    if state.debug {
        tracing::debug!(
            call_id = call.call_id,
            deployment = deployment.id,
            url = %crate::secret::display_url(&prepared.url),
            headers = ?prepared.redacted_headers(),
            stream = req.stream,
            "upstream request"
        );
    }
    let mut response = match upstream::send(
        prepared,
        head_timeout,
        &req.model,
        key.as_ref(),
        deployment.trust.as_ref(),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return Err(fail(e, facts)),
    };
    facts.provider_headers = Some(provider_headers(response.headers()));
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(awc::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);

    // A provider that answers with a job (Replicate's predictions) is followed to the job's end:
    // its final body, or its stream.
    let (mut followed_body, mut followed_stream, mut followed_translator) = (None, None, None);
    if (200..300).contains(&status) {
        let call = providers::FollowUp {
            deployment: &deployment,
            target: &target,
            req,
            created: &mut response,
            started: call_started,
            timeout: head_timeout,
        };
        if let Some(job) = adapter.follow_up(call) {
            match job.await {
                Ok(providers::FollowedUp::Body(body)) => followed_body = Some(body),
                Ok(providers::FollowedUp::Stream { body, translator }) => {
                    followed_stream = Some(body);
                    followed_translator = translator;
                }
                Err(e) => return Err(fail(e, facts)),
            }
        }
    }

    if !(200..300).contains(&status) || !relayed || followed_body.is_some() {
        let left = timeout.saturating_sub(call_started.elapsed());
        let body = match followed_body {
            Some(body) => Ok(body),
            None => upstream::read_body(&mut response, left, &req.model).await,
        };
        let result = body.and_then(|body| {
            if (200..300).contains(&status) {
                adapter.translate_response(req, body)
            } else {
                Err(scrub_url_secrets(
                    adapter.translate_error(
                        &target,
                        status,
                        upstream::retry_after(response.headers()),
                        &body,
                    ),
                    &target,
                ))
            }
        });
        let translated = match result {
            Ok(translated) => translated,
            Err(e) => return Err(fail(e, facts)),
        };
        let latency = call_started.elapsed();
        facts.upstream_time += latency;
        // Adapters parse or write their answers as JSON; transcripts may be text, SRT or WebVTT.
        if req.kind.is_audio_input() {
            call.spend.keep_response(&translated.body);
        } else {
            call.spend.keep_json_response(&translated.body);
        }
        let usage = translated.usage.unwrap_or_default();
        let id = translated
            .response_id
            .clone()
            .or_else(|| response_id(&translated.body));
        // Images are priced per image (or pixel) by what was asked and returned; audio and rerank
        // per second, character or search unit.
        let priced = if req.kind.is_image() {
            Some(deployment.image_cost(&target, &image_bill(req, &translated.body, usage)))
        } else {
            unit_bill(req, Some(&translated.body)).map(|units| deployment.unit_cost(&target, units))
        };
        let cost = account(
            acc,
            Exit::Complete {
                usage,
                latency,
                response_id: id.clone(),
                priced,
            },
        );
        facts.response_cost = Some(cost);
        facts.key_spend = call.key_spend(&state.ledger);
        drop(in_flight);
        // Transcripts keep the provider's content type (`text`, `srt`, `vtt` are not JSON).
        let content_type = content_type.filter(|_| req.kind.is_audio_input());
        return Ok(Reply::Complete(Completion {
            body: translated.body,
            usage,
            id,
            content_type,
        }));
    }

    // 6. relay the stream, once its first bytes are here.
    let mut response: crate::outcome::ByteStream = match followed_stream {
        Some(stream) => stream,
        None => Box::pin(response.map(|item| item.map_err(|e| e.to_string()))),
    };
    let first = match actix_web::rt::time::timeout(stream_timeout, response.next()).await {
        Ok(Some(Ok(bytes))) => bytes,
        Ok(Some(Err(e))) => {
            let message = format!("the stream broke before its first byte: {e}");
            return Err(fail(stream_error(&message, &req.model), facts));
        }
        Ok(None) => {
            let message = "the stream ended before its first byte";
            return Err(fail(stream_error(message, &req.model), facts));
        }
        Err(_) => {
            let timeout = GatewayError::Timeout {
                model: req.model.clone(),
                timeout: stream_timeout,
            };
            return Err(fail(timeout, facts));
        }
    };
    let time_to_first_token = call_started.elapsed();
    facts.upstream_time += time_to_first_token;
    let body = futures_util::stream::iter([Ok(first)]).chain(response);
    if req.kind == CallKind::Speech {
        // Priced by the characters spoken, known now; accounted when the audio ends.
        let priced = unit_bill(req, None).map(|units| deployment.unit_cost(&target, units));
        facts.response_cost = priced;
        let acc = acc.clone();
        let model = req.model.clone();
        let body: crate::outcome::ByteStream = Box::pin(body);
        let relay = crate::outcome::ByteRelay::new(body, stream_timeout, move |bytes, broke| {
            let _in_flight = in_flight;
            if let Some(why) = &broke {
                tracing::warn!(model, bytes, error = %why, "speech audio ended early");
            }
            account(
                &acc,
                Exit::Complete {
                    usage: Usage::default(),
                    latency: call_started.elapsed(),
                    response_id: None,
                    priced,
                },
            );
        });
        return Ok(Reply::Binary(crate::outcome::BinaryReply {
            content_type: content_type.unwrap_or_else(|| "audio/mpeg".to_string()),
            body: Box::pin(relay),
        }));
    }
    let translator =
        followed_translator.or_else(|| adapter.stream_translator_for(&deployment, &target, req));
    let body: Pin<Box<dyn Stream<Item = Result<Bytes, String>>>> = match translator {
        Some(translator) => Box::pin(TranslatedStream::new(body, translator)),
        None => Box::pin(body),
    };
    let acc = acc.clone();
    let relay = SseRelay::new(
        body,
        req.client_wants_usage,
        stream_timeout,
        move |outcome: StreamOutcome| {
            let _in_flight = in_flight;
            acc.spend.keep_stream(&outcome.chunks);
            account(
                &acc,
                Exit::StreamEnd {
                    outcome,
                    time_to_first_token,
                },
            );
        },
    )
    .capture(call.spend.keeps_response())
    .responses_events(responses_native);
    Ok(Reply::Stream(Box::pin(relay)))
}

/// With Redis configured, reserve the picked deployment's minute usage across every instance.
/// `None` when the shared count says its `rpm`/`tpm` is used up (the local reservation is given
/// back). When Redis cannot answer, the local reservation stands: limits hold per instance.
async fn account_shared(
    state: &AppState,
    picked: &Picked<Deployment>,
) -> Option<DeploymentCounters> {
    let deployment = &picked.handle.upstream;
    let mut accounting = DeploymentCounters {
        handle: picked.handle.clone(),
        reserved_tokens: picked.reserved_tokens,
        reserved_at_ms: now_ms(),
        shared_usage: None,
        shared_latency: None,
    };
    let Some(shared) = &state.router.shared else {
        return Some(accounting);
    };
    let strategy = state.settings.live().policy.strategy.clone();
    if matches!(strategy, RoutingStrategy::LatencyBased { .. }) {
        accounting.shared_latency = Some(shared.clone());
    }
    let limited = deployment.rpm.is_some() || deployment.tpm.is_some();
    if !limited && strategy != RoutingStrategy::UsageBased {
        return Some(accounting);
    }
    match shared
        .reserve(
            &deployment.id,
            deployment.rpm,
            deployment.tpm,
            picked.reserved_tokens,
            accounting.reserved_at_ms,
        )
        .await
    {
        Ok(true) => accounting.shared_usage = Some(shared.clone()),
        // Unlimited deployments are only counted (usage-based routing); the script refuses nothing.
        Ok(false) if !limited => {}
        Ok(false) => {
            picked
                .handle
                .state
                .release(accounting.reserved_at_ms, picked.reserved_tokens);
            return None;
        }
        Err(e) => {
            tracing::debug!(deployment = deployment.id, error = %e, "shared usage not counted; local limits apply")
        }
    }
    Some(accounting)
}

fn simulated_error(failure: MockFailure, model: &str) -> GatewayError {
    let (kind, status, message) = match failure {
        MockFailure::Server => (
            UpstreamErrorKind::Server,
            500,
            "mock_testing_fallbacks: simulated provider error",
        ),
        MockFailure::RateLimit => (
            UpstreamErrorKind::RateLimit,
            429,
            "mock_testing_rate_limit_error: simulated rate limit",
        ),
        MockFailure::ContextWindow => (
            UpstreamErrorKind::ContextWindowExceeded,
            400,
            "mock_testing_context_fallbacks: simulated context window exceeded",
        ),
        MockFailure::ContentPolicy => (
            UpstreamErrorKind::ContentPolicy,
            400,
            "mock_testing_content_policy_fallbacks: simulated content policy violation",
        ),
    };
    GatewayError::Upstream {
        kind,
        status,
        message: format!("{message} (model={model})"),
        code: None,
        param: None,
        retry_after: None,
    }
}

/// The `id` of an OpenAI-shaped response body (the rest of the body is skipped, not built).
fn response_id(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdProbe<'a> {
        #[serde(borrow)]
        id: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<IdProbe>(body)
        .ok()
        .and_then(|p| p.id)
        .map(|id| id.into_owned())
}

/// An upstream error never carries the deployment's URL credentials (userinfo, query values), in
/// case the provider echoes the URL it was called on. (Adapters already scrub the API key.)
fn scrub_url_secrets(mut err: GatewayError, target: &crate::deployment::Target) -> GatewayError {
    if let GatewayError::Upstream { message, .. } = &mut err {
        let secrets =
            crate::secret::url_secrets_with_query(&target.api_base, target.base_query.as_deref());
        if !secrets.is_empty() {
            *message = crate::secret::scrub_all(message, &secrets);
        }
    }
    err
}

fn stream_error(message: &str, model: &str) -> GatewayError {
    GatewayError::Upstream {
        kind: UpstreamErrorKind::Connection,
        status: 502,
        message: format!("APIConnectionError: {message} (model={model})"),
        code: None,
        param: None,
        retry_after: None,
    }
}

/// The body to forward for a mock or test call: kept here so the health probe and `--test` reuse it.
pub fn test_chat_body(model: &str, prompt: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": prompt}]})
}
