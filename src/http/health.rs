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
    let mut reasons: Vec<String> = Vec::new();
    let db = match database_answers(&state).await {
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
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        body["reason"] = json!(reasons.join("; "));
        body["reasons"] = json!(reasons);
        HttpResponse::ServiceUnavailable().json(body)
    }
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
