//! `GET /metrics`: Prometheus (OpenMetrics text) gauges read at scrape time from the state the
//! gateway already keeps, so scraping costs nothing on the request path.
//!
//! * `litellm_deployment_state{litellm_model_name, model_id, api_base, api_provider}`: LiteLLM's
//!   gauge, 0 = healthy, 1 = partial outage (the last health check failed), 2 = complete outage
//!   (cooling down after failures).
//! * `litellm_deployment_active_requests{…}`: requests in flight per deployment.
//! * `tollgate_redis_state{state}`: 1 for the current state of the Redis shared by instances
//!   (`connected`, `connecting`, `unavailable`); absent without Redis.
//! * `tollgate_rate_limits_shared`: 1 while rate limits are counted in Redis across instances,
//!   0 while each instance counts alone (no Redis, Redis unreachable, or the limits breaker open).
//! * `tollgate_rate_limit_breaker_open`: 1 while requests skip Redis for rate limits after Redis
//!   errors (the limiter actor probes it and closes the breaker when it answers);
//!   `tollgate_rate_limit_breaker_opened_total` counts the openings.
//! * `tollgate_rate_limit_scopes`: scopes the limiter counts (idle ones are evicted);
//!   `tollgate_rate_limit_scopes_evicted_total`, `tollgate_rate_limiter_restarts_total`.
//! * LiteLLM's request, token, spend, latency, deployment, fallback and remaining-budget series,
//!   kept by [`crate::observability::metrics::Metrics`] and registered here by clone, and
//!   `litellm_deployment_cooled_down` read from the deployments' cooldown counts.
//!   With `litellm_settings.require_auth_for_metrics_endpoint: true` a scrape needs the master key
//!   (or a proxy-admin key).
//! * `tollgate_database_connected`, `tollgate_uptime_seconds`.
//! * `tollgate_spend_rows_dead_lettered_total`: spend-log rows the database refused on their own,
//!   set aside in the dead-letter file (`TOLLGATE_SPEND_DEAD_LETTER`) for an operator.
//! * `tollgate_spend_rows_lost_total`: spend-log rows dropped because the spend tracker's buffer
//!   was full (each logged as an error); 0 unless the database was unreachable for very long.

use super::routes::{Access, Routes};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tollgate_actors::{ProbeHealth, SharedStatus, Upstream};

use crate::state::AppState;

pub fn configure(r: &mut Routes) {
    r.get("/metrics", Access::Public, metrics)
        .get("/metrics/", Access::Public, metrics);
}

type Labels = Vec<(&'static str, String)>;

async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if state.config.require_auth_for_metrics() {
        if let Err(e) = state.auth.require_admin(&req).await {
            return e.error_response();
        }
    }
    match render(&state) {
        Ok(text) => HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(text),
        Err(e) => HttpResponse::InternalServerError().body(format!("cannot encode metrics: {e}")),
    }
}

fn render(state: &AppState) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();

    let deployment_state = Family::<Labels, Gauge>::default();
    let active = Family::<Labels, Gauge>::default();
    registry.register(
        "litellm_deployment_state",
        "Deployment state: 0 healthy, 1 partial outage, 2 complete outage",
        deployment_state.clone(),
    );
    registry.register(
        "litellm_deployment_active_requests",
        "Requests in flight per deployment",
        active.clone(),
    );
    let now = tollgate_actors::now_ms();
    for handle in state.router.snapshot().deployments() {
        let d = &handle.upstream;
        let labels: Labels = vec![
            ("litellm_model_name", d.model_group().to_string()),
            ("model_id", d.id.clone()),
            ("api_base", d.api_base().unwrap_or_default().to_string()),
            ("api_provider", d.provider_name().to_string()),
        ];
        let value = if handle.state.is_cooling_down(now) {
            2
        } else if handle.state.probe_health() == ProbeHealth::Unhealthy {
            1
        } else {
            0
        };
        deployment_state.get_or_create(&labels).set(value);
        active
            .get_or_create(&labels)
            .set(handle.state.in_flight().min(i64::MAX as u64) as i64);
    }

    let shared = state.router.shared.as_ref().map(|s| s.status());
    if let Some(status) = shared {
        let redis = Family::<Labels, Gauge>::default();
        registry.register(
            "tollgate_redis_state",
            "State of the Redis shared by instances (1 for the current state)",
            redis.clone(),
        );
        for (name, s) in [
            ("connected", SharedStatus::Connected),
            ("connecting", SharedStatus::Connecting),
            ("unavailable", SharedStatus::Unavailable),
        ] {
            redis
                .get_or_create(&vec![("state", name.to_string())])
                .set(i64::from(status == s));
        }
    }
    let round_trips: Vec<(&str, u64)> = tollgate_actors::RedisPurpose::ALL
        .iter()
        .map(|p| (p.as_str(), p.round_trips()))
        .collect();
    if shared.is_some() || round_trips.iter().any(|(_, n)| *n > 0) {
        let family = Family::<Labels, prometheus_client::metrics::counter::Counter<u64>>::default();
        registry.register(
            "tollgate_redis_round_trips",
            "Redis round trips made by this process, by purpose (admit and settle: a request's rate limits)",
            family.clone(),
        );
        for (purpose, n) in round_trips {
            family
                .get_or_create(&vec![("purpose", purpose.to_string())])
                .inc_by(n);
        }
    }
    let limits_shared = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
    limits_shared.set(i64::from(
        shared == Some(SharedStatus::Connected) && !state.limiter.breaker().is_open(),
    ));
    registry.register(
        "tollgate_rate_limits_shared",
        "1 while rate limits are counted in Redis across instances, 0 while counted per instance",
        limits_shared,
    );
    register_limiter(&mut registry, &state.limiter);
    let db = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
    db.set(i64::from(state.db.is_ready()));
    registry.register(
        "tollgate_database_connected",
        "1 while the database answers",
        db,
    );
    let uptime = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
    uptime.set(state.started_at.elapsed().as_secs().min(i64::MAX as u64) as i64);
    registry.register(
        "tollgate_uptime_seconds",
        "Seconds since the gateway started",
        uptime,
    );

    let dead_lettered = prometheus_client::metrics::counter::Counter::<u64>::default();
    dead_lettered.inc_by(state.ledger.dead_lettered());
    registry.register(
        "tollgate_spend_rows_dead_lettered",
        "Spend-log rows the database refused on their own, set aside in the dead-letter file",
        dead_lettered,
    );

    let lost = prometheus_client::metrics::counter::Counter::<u64>::default();
    lost.inc_by(state.spend.lost());
    registry.register(
        "tollgate_spend_rows_lost",
        "Spend-log rows dropped because the spend tracker's buffer was full",
        lost,
    );

    if let Some(cache) = &state.cache {
        register_cache(&mut registry, cache);
    }
    register_callbacks(&mut registry, &state.callbacks);
    if let Some(tracer) = &state.traces {
        let c = &tracer.counters;
        let load = |v: &std::sync::atomic::AtomicU64| v.load(std::sync::atomic::Ordering::Relaxed);
        registry.register(
            "tollgate_otel_spans_exported",
            "OpenTelemetry spans the collector accepted",
            counter(load(&c.exported)),
        );
        registry.register(
            "tollgate_otel_spans_dropped",
            "OpenTelemetry spans dropped: the export queue was full, or their export failed",
            counter(load(&c.dropped)),
        );
        registry.register(
            "tollgate_otel_spans_queued",
            "OpenTelemetry spans waiting for export",
            gauge(tracer.queued() as u64),
        );
    }
    if let Some(alerting) = &state.alerting {
        let c = &alerting.counters;
        let load = |v: &std::sync::atomic::AtomicU64| v.load(std::sync::atomic::Ordering::Relaxed);
        registry.register(
            "tollgate_alerts_sent",
            "Alerts delivered",
            counter(load(&c.sent)),
        );
        registry.register(
            "tollgate_alerts_suppressed",
            "Alerts not sent: duplicates within 10 minutes, over 20 a minute, or a full queue",
            counter(load(&c.suppressed)),
        );
        registry.register(
            "tollgate_alerts_failed",
            "Alerts their receiver did not accept",
            counter(load(&c.failed)),
        );
    }
    if let Some(metrics) = &state.metrics {
        metrics.register(&mut registry);
        register_cooldowns(&mut registry, state);
    }

    let mut text = String::new();
    encode(&mut text, &registry)?;
    Ok(text)
}

/// A gauge holding `v`, read at scrape time.
fn gauge(v: u64) -> Gauge<i64, std::sync::atomic::AtomicI64> {
    let g = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
    g.set(v.min(i64::MAX as u64) as i64);
    g
}

/// A counter holding the total `v` the gateway keeps.
fn counter(v: u64) -> prometheus_client::metrics::counter::Counter<u64> {
    let c = prometheus_client::metrics::counter::Counter::<u64>::default();
    c.inc_by(v);
    c
}

/// Logging callbacks: LiteLLM's `litellm_callback_logging_failures_metric{callback_name}` (events
/// dropped: a full queue, or a batch that failed every retry), and the events sent.
fn register_callbacks(
    registry: &mut Registry,
    callbacks: &[crate::observability::callbacks::Callback],
) {
    if callbacks.is_empty() {
        return;
    }
    let failures = Family::<Labels, prometheus_client::metrics::counter::Counter>::default();
    let sent = Family::<Labels, prometheus_client::metrics::counter::Counter>::default();
    for c in callbacks {
        let labels: Labels = vec![("callback_name", c.queue.settings.name.clone())];
        let counters = &c.queue.counters;
        failures
            .get_or_create(&labels)
            .inc_by(counters.failed.load(std::sync::atomic::Ordering::Relaxed));
        sent.get_or_create(&labels)
            .inc_by(counters.sent.load(std::sync::atomic::Ordering::Relaxed));
    }
    registry.register(
        "litellm_callback_logging_failures_metric",
        "Events a logging callback dropped (queue full, or every retry failed)",
        failures,
    );
    registry.register(
        "tollgate_callback_events_sent",
        "Events a logging callback delivered",
        sent,
    );
}

/// The response cache: LiteLLM's hit, miss and cached-token counters, and the store's state.
fn register_cache(registry: &mut Registry, cache: &crate::caching::Cache) {
    let counters = &cache.counters;
    registry.register(
        "litellm_cache_hits_metric",
        "Requests answered from the response cache",
        counters.hits.clone(),
    );
    registry.register(
        "litellm_cache_misses_metric",
        "Requests that consulted the response cache and found nothing",
        counters.misses.clone(),
    );
    registry.register(
        "litellm_cached_tokens_metric",
        "Tokens of the responses served from the cache",
        counters.cached_tokens.clone(),
    );
    let stats = cache.store.stats();
    registry.register(
        "tollgate_cache_unavailable",
        "Cache lookups that could not reach the store (Redis down or slow); served without the cache",
        counter(counters.unavailable.load(std::sync::atomic::Ordering::Relaxed)),
    );
    registry.register(
        "tollgate_cache_redis_errors",
        "Failed Redis calls of the response cache (reads and background writes)",
        counter(stats.redis_errors),
    );
    registry.register(
        "tollgate_cache_entries",
        "Entries in this instance's in-memory response cache",
        gauge(stats.entries),
    );
    registry.register(
        "tollgate_cache_bytes",
        "Body bytes in this instance's in-memory response cache",
        gauge(stats.bytes),
    );
    registry.register(
        "tollgate_cache_evictions",
        "Entries the in-memory response cache evicted to stay within max_size",
        counter(stats.evictions),
    );
}

/// The rate limiter: its Redis breaker, the scopes it counts, and its actor's restarts.
fn register_limiter(registry: &mut Registry, limiter: &tollgate_actors::LimiterHandle) {
    let breaker = limiter.breaker();
    registry.register(
        "tollgate_rate_limit_breaker_open",
        "1 while requests skip Redis for rate limits after Redis errors (local counters decide)",
        gauge(u64::from(breaker.is_open())),
    );
    registry.register(
        "tollgate_rate_limit_breaker_opened",
        "Times the rate limits' Redis breaker opened",
        counter(breaker.opened()),
    );
    registry.register(
        "tollgate_rate_limit_scopes",
        "Rate-limit scopes with counters in this instance",
        gauge(limiter.scopes() as u64),
    );
    registry.register(
        "tollgate_rate_limit_scopes_evicted",
        "Rate-limit scopes dropped for being idle",
        counter(limiter.evicted()),
    );
    registry.register(
        "tollgate_rate_limiter_restarts",
        "Times the rate limiter actor died and was restarted",
        counter(limiter.restarts()),
    );
}

/// `litellm_deployment_cooled_down`: the cooldowns each deployment's actor started, read from the
/// deployment's own count (the actor decides a cooldown after the request that caused it has
/// been answered). `exception_status` is empty: the count is not kept per status.
fn register_cooldowns(registry: &mut Registry, state: &AppState) {
    let family = Family::<Labels, prometheus_client::metrics::counter::Counter>::default();
    for handle in state.router.snapshot().deployments() {
        let d = &handle.upstream;
        let labels: Labels = vec![
            ("litellm_model_name", d.litellm_model.clone()),
            ("model_id", d.id.clone()),
            ("api_base", d.api_base().unwrap_or_default().to_string()),
            ("api_provider", d.provider_name().to_string()),
            ("exception_status", String::new()),
        ];
        family
            .get_or_create(&labels)
            .inc_by(handle.state.stats().cooldowns);
    }
    registry.register(
        "litellm_deployment_cooled_down",
        "Times a deployment was cooled down after failures",
        family,
    );
}
