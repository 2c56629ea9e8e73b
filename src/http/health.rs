//! Health routes: liveness and readiness probes (no auth), and `/health` (admin), a tiny real call to
//! every deployment, run in parallel by the deployment actors with a timeout.

use super::routes::{Access, Routes};
use std::time::{Duration, SystemTime};

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::{json, Value};
use tollgate_actors::{HealthReport, ProbeAll, ProbeOutcome, SharedStatus};

use crate::error::GatewayError;
use crate::state::{AppState, HealthRound, VERSION};

/// Upper bound on one `/health` round; each probe also has its own `health_check_timeout`.
pub const HEALTH_ROUND_TIMEOUT: Duration = Duration::from_secs(60);

pub fn configure(r: &mut Routes) {
    r.get("/health/liveliness", Access::Public, liveliness)
        .get("/health/liveness", Access::Public, liveliness)
        .get("/health/readiness", Access::Public, readiness)
        .get(
            "/health/readiness/details",
            Access::AnyKey,
            readiness_details,
        )
        .get("/active/callbacks", Access::AnyKey, active_callbacks)
        .get("/get/config/callbacks", Access::Admin, config_callbacks)
        .get("/health", Access::Admin, health);
}

async fn liveliness() -> HttpResponse {
    HttpResponse::Ok().json("I'm alive!")
}

/// How long a readiness probe waits for the database to answer `SELECT 1`.
const DB_PING_TIMEOUT: Duration = Duration::from_secs(2);
/// A database answer is reused for this long, so probes (public, unauthenticated) can never take
/// more than one pooled connection a second from the requests.
const DB_PING_REUSE: Duration = Duration::from_secs(1);

/// The last database ping: when, and why it failed (`None`: it answered).
static LAST_DB_PING: std::sync::Mutex<Option<(std::time::Instant, Option<String>)>> =
    std::sync::Mutex::new(None);

/// Whether the database answers now: `Err` says why not (unreachable since start, or a ping that
/// failed or timed out). The probe is public: the reason names neither the database's address nor
/// the driver's message (those go to the log).
async fn database_answers(state: &AppState) -> Result<(), String> {
    let Ok(store) = state.db.store() else {
        return Err("unreachable since start or its migrations have not run yet (retrying)".into());
    };
    if let Ok(last) = LAST_DB_PING.lock() {
        if let Some((at, outcome)) = last.as_ref() {
            if at.elapsed() < DB_PING_REUSE {
                return outcome.clone().map_or(Ok(()), Err);
            }
        }
    }
    let outcome = match tokio::time::timeout(DB_PING_TIMEOUT, store.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            tracing::warn!(database = %state.db.url.redacted(), error = %e, "readiness: the database does not answer");
            Some("does not answer".to_string())
        }
        Err(_) => {
            tracing::warn!(database = %state.db.url.redacted(), "readiness: the database did not answer in time");
            Some(format!(
                "did not answer within {} s",
                DB_PING_TIMEOUT.as_secs()
            ))
        }
    };
    if let Ok(mut last) = LAST_DB_PING.lock() {
        *last = Some((std::time::Instant::now(), outcome.clone()));
    }
    outcome.map_or(Ok(()), Err)
}

/// Readiness: 200 while the database and every configured Redis answer; 503 with the reasons
/// otherwise, so a load balancer stops sending traffic here (liveness stays 200).
async fn readiness(state: web::Data<AppState>) -> HttpResponse {
    readiness_answer(readiness_body(&state).await)
}

fn readiness_answer((ready, body): (bool, Value)) -> HttpResponse {
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// `GET /health/readiness/details` (any key, as in LiteLLM): the readiness answer with the
/// logging callbacks the configuration names in `success_callbacks`.
async fn readiness_details(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Err(e) = state.auth.authenticate(&req).await {
        return e.error_response();
    }
    let (ready, mut body) = readiness_body(&state).await;
    let settings = &state.config.litellm_settings;
    let mut names = callback_names(settings, "success_callback");
    for n in callback_names(settings, "callbacks") {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    body["success_callbacks"] = json!(names);
    readiness_answer((ready, body))
}

/// The callback names `litellm_settings.<field>` lists (a list or one name).
fn callback_names(settings: &serde_json::Map<String, Value>, field: &str) -> Vec<String> {
    match settings.get(field) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// `general_settings.alerting` (e.g. `["slack"]`).
fn alerting_names(state: &AppState) -> Vec<String> {
    callback_names(&state.config.general_settings, "alerting")
}

/// `GET /active/callbacks` (any key, as in LiteLLM): the callbacks and alerting the gateway runs,
/// by name, in LiteLLM's shape.
async fn active_callbacks(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Err(e) = state.auth.authenticate(&req).await {
        return e.error_response();
    }
    let settings = &state.config.litellm_settings;
    let callbacks = callback_names(settings, "callbacks");
    let success = callback_names(settings, "success_callback");
    let failure = callback_names(settings, "failure_callback");
    let mut all: Vec<String> = Vec::new();
    for n in callbacks.iter().chain(&success).chain(&failure) {
        if !all.contains(n) {
            all.push(n.clone());
        }
    }
    let alerting = alerting_names(&state);
    HttpResponse::Ok().json(json!({
        "alerting": alerting,
        "litellm.callbacks": callbacks,
        "litellm.input_callback": [],
        "litellm.failure_callback": failure,
        "litellm.success_callback": success,
        "litellm._async_success_callback": success,
        "litellm._async_failure_callback": failure,
        "litellm._async_input_callback": [],
        "all_litellm_callbacks": all,
        "num_callbacks": all.len(),
        "num_alerting": alerting.len(),
        "litellm.request_timeout": state.settings.live().request_timeout.as_secs_f64(),
    }))
}

/// The environment variables each logging callback (and Slack alerting) reads.
fn callback_env_vars(name: &str) -> &'static [&'static str] {
    match name {
        "langfuse" => &[
            "LANGFUSE_PUBLIC_KEY",
            "LANGFUSE_SECRET_KEY",
            "LANGFUSE_HOST",
        ],
        "datadog" => &["DD_API_KEY", "DD_SITE", "DD_BASE_URL"],
        "generic" | "generic_api" => &["GENERIC_LOGGER_ENDPOINT", "GENERIC_LOGGER_HEADERS"],
        "langsmith" => &[
            "LANGSMITH_API_KEY",
            "LANGSMITH_PROJECT",
            "LANGSMITH_BASE_URL",
        ],
        "sentry" => &["SENTRY_DSN"],
        "s3" => &[
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION_NAME",
        ],
        "otel" | "opentelemetry" => &["OTEL_EXPORTER", "OTEL_ENDPOINT", "OTEL_HEADERS"],
        "slack" => &["SLACK_WEBHOOK_URL"],
        _ => &[],
    }
}

/// A callback's variables: each name with its value masked (`null` when unset). Values are never
/// shown, whatever the variable: endpoints and headers can hold credentials too.
fn masked_env(name: &str) -> serde_json::Map<String, Value> {
    callback_env_vars(name)
        .iter()
        .map(|v| {
            let value = std::env::var(v)
                .ok()
                .filter(|s| !s.is_empty())
                .map_or(Value::Null, |s| Value::String(crate::secret::mask(&s)));
            (v.to_string(), value)
        })
        .collect()
}

/// The router settings LiteLLM's `Router.get_settings` reports (none of them secret).
const REPORTED_ROUTER_SETTINGS: [&str; 11] = [
    "routing_strategy_args",
    "routing_strategy",
    "allowed_fails",
    "cooldown_time",
    "num_retries",
    "timeout",
    "max_retries",
    "retry_after",
    "fallbacks",
    "context_window_fallbacks",
    "model_group_retry_policy",
];

/// `GET /get/config/callbacks` (proxy admins): each configured callback with its variables
/// (values masked) and type, Slack alerting, and the router settings, in LiteLLM's shape.
async fn config_callbacks(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Err(e) = state.auth.authenticate(&req).await {
        return e.error_response();
    }
    let settings = &state.config.litellm_settings;
    let success = callback_names(settings, "success_callback");
    let failure = callback_names(settings, "failure_callback");
    let both = callback_names(settings, "callbacks");
    let mut names: Vec<String> = Vec::new();
    for n in both.iter().chain(&success).chain(&failure) {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let callbacks: Vec<Value> = names
        .iter()
        .map(|n| {
            let kind = if both.contains(n) || (success.contains(n) && failure.contains(n)) {
                "success_and_failure"
            } else if success.contains(n) {
                "success"
            } else {
                "failure"
            };
            json!({"name": n, "variables": masked_env(n), "type": kind})
        })
        .collect();
    let general = &state.config.general_settings;
    let alerts: Vec<Value> = alerting_names(&state)
        .iter()
        .filter(|a| a.as_str() == "slack")
        .map(|a| {
            // Webhook URLs are credentials: masked like the variables.
            let webhooks: serde_json::Map<String, Value> = general
                .get("alert_to_webhook_url")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            let masked = match v {
                                Value::String(s) => json!(crate::secret::mask(s)),
                                Value::Array(items) => items
                                    .iter()
                                    .filter_map(Value::as_str)
                                    .map(|s| json!(crate::secret::mask(s)))
                                    .collect(),
                                _ => Value::Null,
                            };
                            (k.clone(), masked)
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "name": a,
                "variables": masked_env(a),
                "active_alerts": general.get("alert_types").cloned().unwrap_or(json!([])),
                "alerts_to_webhook": webhooks,
            })
        })
        .collect();
    let live = state.settings.live();
    let mut router: serde_json::Map<String, Value> = REPORTED_ROUTER_SETTINGS
        .iter()
        .filter_map(|k| {
            live.router_settings
                .get(*k)
                .map(|v| (k.to_string(), v.clone()))
        })
        .collect();
    router
        .entry("routing_strategy")
        .or_insert_with(|| json!("simple-shuffle"));
    HttpResponse::Ok().json(json!({
        "status": "success",
        "callbacks": callbacks,
        "alerts": alerts,
        "router_settings": router,
    }))
}

/// Readiness: ready while the database and every configured Redis answer (200); the reasons
/// otherwise (503).
async fn readiness_body(state: &AppState) -> (bool, Value) {
    let mut reasons: Vec<String> = Vec::new();
    let db = match database_answers(state).await {
        Ok(()) => "connected",
        Err(reason) => {
            reasons.push(format!("database: {reason}"));
            "disconnected"
        }
    };
    let deployments = state.router.snapshot().deployments().len();
    // Redis shared by the routers and the limits of several instances.
    let router_redis = state
        .router
        .shared
        .as_ref()
        .map(|shared| match shared.status() {
            SharedStatus::Connected => "connected",
            SharedStatus::Connecting => "connecting",
            SharedStatus::Unavailable => {
                reasons.push(
                    "router Redis: unreachable; routing and limits on this instance's state only"
                        .into(),
                );
                "unavailable: routing on local state"
            }
        });
    // The response cache: LiteLLM's `cache` field names its type; `cache_status` says whether its
    // Redis answers (requests are served without the cache while it does not).
    let (cache, cache_status) = match &state.cache {
        None => (Value::Null, Value::Null),
        Some(c) => (
            json!(c.store.kind()),
            json!(match c.store.status() {
                None | Some(SharedStatus::Connected) => "connected",
                Some(SharedStatus::Connecting) => "connecting",
                Some(SharedStatus::Unavailable) => {
                    reasons.push("cache Redis: unreachable; serving without the cache".into());
                    "unavailable: serving without the cache"
                }
            }),
        ),
    };
    let ready = reasons.is_empty();
    let mut body = json!({
        "status": if ready { "healthy" } else { "unhealthy" },
        "db": db,
        "db_backend": state.db.url.backend(),
        "cache": cache,
        "cache_status": cache_status,
        "router_redis": router_redis,
        "litellm_version": VERSION,
        "tollgate_version": VERSION,
        "deployments": deployments,
        "uptime_seconds": state.started_at.elapsed().as_secs(),
        "success_callbacks": [],
        "last_updated": crate::time::now_iso(),
    });
    if !ready {
        body["reason"] = json!(reasons.join("; "));
        body["reasons"] = json!(reasons);
    }
    (ready, body)
}

#[derive(Deserialize)]
struct HealthQuery {
    model: Option<String>,
}

async fn health(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<HealthQuery>,
) -> HttpResponse {
    if let Err(e) = state.auth.require_admin(&req).await {
        return e.error_response();
    }
    let reports = match (state.background_health, state.last_health_round.load_full()) {
        (Some(_), Some(round)) if q.model.is_none() => round.reports.clone(),
        _ => match run_round(&state, q.model.clone()).await {
            Ok(r) => r,
            Err(e) => return e.error_response(),
        },
    };
    HttpResponse::Ok().json(render(&state, &reports))
}

/// Probe every deployment (or one model group's) through the router actor.
pub async fn run_round(
    state: &AppState,
    model_group: Option<String>,
) -> Result<Vec<HealthReport>, GatewayError> {
    let group = model_group.map(|m| state.aliases.get(&m).map(|a| a.target.clone()).unwrap_or(m));
    state
        .router
        .addr
        .send(ProbeAll {
            timeout: HEALTH_ROUND_TIMEOUT,
            model_group: group,
        })
        .await
        .map_err(|e| GatewayError::Unavailable {
            message: format!("the router is not answering: {e}"),
        })
}

/// Store a finished background round.
pub fn store_round(state: &AppState, reports: Vec<HealthReport>) {
    state
        .last_health_round
        .store(Some(std::sync::Arc::new(HealthRound {
            reports,
            finished_at: SystemTime::now(),
        })));
}

fn render(state: &AppState, reports: &[HealthReport]) -> Value {
    let snapshot = state.router.snapshot();
    let mut healthy = Vec::new();
    let mut unhealthy = Vec::new();
    for report in reports {
        let Some(handle) = snapshot.deployment(&report.deployment_id) else {
            continue;
        };
        let d = &handle.upstream;
        let mut entry = json!({
            "model": d.litellm_model,
            "model_name": d.model_name,
            "model_id": d.id,
        });
        if let Some(base) = d.api_base() {
            entry["api_base"] = json!(base);
        }
        if let Some(v) = &d.api_version {
            entry["api_version"] = json!(v);
        }
        match &report.outcome {
            ProbeOutcome::Healthy { latency } => {
                entry["latency_ms"] = json!(latency.as_millis() as u64);
                healthy.push(entry);
            }
            ProbeOutcome::Unhealthy { error } => {
                entry["error"] = json!(error);
                unhealthy.push(entry);
            }
        }
    }
    json!({
        "healthy_endpoints": healthy,
        "unhealthy_endpoints": unhealthy,
        "healthy_count": healthy.len(),
        "unhealthy_count": unhealthy.len(),
    })
}
