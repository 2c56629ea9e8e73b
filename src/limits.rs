//! The limits step of the pipeline: which rate limits apply to a request, and what the client is
//! told about them.
//!
//! Scopes, checked in this order: the whole gateway (`general_settings.max_parallel_requests` /
//! `global_max_parallel_requests`), the key (`rpm_limit`, `tpm_limit`, `max_parallel_requests`),
//! the key's per-model limits (`model_rpm_limit`, `model_tpm_limit`), the key's user, its team and
//! the team's per-model limits, and the end user (the body's `user`, or `x-litellm-end-user-id` /
//! `x-litellm-customer-id`, with the limits of its budget). The counters are [`tollgate_actors::RateLimiter`]'s, in this
//! process; with `router_settings` naming Redis, the request is also admitted there by one atomic
//! script that counts it in the rpm/tpm windows and leases its `max_parallel_requests` slots (a
//! sorted set per scope), so the limits hold across instances: one round trip before the request
//! is served; when it ends, its slots go back and its token estimate is corrected in one pipeline
//! shared with the other requests ending at that moment. Without Redis, or while it is unreachable, each instance
//! enforces every limit on its own (so N instances admit at most N × the limit).
//!
//! Redis health for limits is the limiter actor's breaker ([`tollgate_actors::LimitsBreaker`]):
//! [`admit_shared`] reports each call's outcome to it and, while it is
//! open, do not call Redis at all (the local counters decide) until the actor finds Redis
//! answering again.

use std::sync::Arc;

use actix_web::http::header::{HeaderName, HeaderValue};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use tollgate_actors::{
    AdmitRefusal, Exceeded, Limits, LimitsBreaker, Permit, Remaining, Scope, SharedError,
    SharedRouterState,
};

use crate::auth::Caller;
use crate::error::GatewayError;
use crate::keys::Fields;
use crate::store::EntityRecord;

/// Tell the breaker how a request's Redis call went.
fn report<T>(breaker: &LimitsBreaker, result: &Result<T, SharedError>) {
    match result {
        Ok(_) => breaker.record_success(),
        Err(e) => breaker.record_failure(e),
    }
}

/// An end user's limits: its own, else its budget's.
#[derive(Debug, Clone, PartialEq)]
pub struct EndUserLimits {
    pub blocked: bool,
    pub limits: Limits,
    /// Stored spend and `max_budget` (its own, else its budget's).
    pub spend: f64,
    pub max_budget: Option<f64>,
    /// `allowed_model_region` (`eu` or `us`): only deployments in that region serve the end user.
    pub allowed_model_region: Option<String>,
}

impl EndUserLimits {
    pub fn from_records(end_user: &EntityRecord, budget: Option<&EntityRecord>) -> Self {
        let own = limits_of(end_user);
        let budget_record = budget;
        let budget = budget.map(limits_of).unwrap_or_default();
        Self {
            blocked: end_user.blocked,
            spend: end_user.spend,
            allowed_model_region: end_user
                .data
                .get("allowed_model_region")
                .and_then(serde_json::Value::as_str)
                .and_then(crate::region::normalize),
            max_budget: end_user
                .number("max_budget")
                .or_else(|| budget_record.and_then(|b| b.number("max_budget"))),
            limits: Limits {
                rpm: own.rpm.or(budget.rpm),
                tpm: own.tpm.or(budget.tpm),
                parallel: own.parallel.or(budget.parallel),
            },
        }
    }
}

fn count(v: Option<f64>) -> Option<u64> {
    v.filter(|n| *n >= 0.0).map(|n| n as u64)
}

/// `rpm_limit`, `tpm_limit`, `max_parallel_requests` of a record.
pub fn limits_of(record: &impl Fields) -> Limits {
    Limits {
        rpm: count(record.number("rpm_limit")),
        tpm: count(record.number("tpm_limit")),
        parallel: count(record.number("max_parallel_requests")),
    }
}

/// Per-model limits (`model_rpm_limit`, `model_tpm_limit`) of a record for `model`.
fn model_limits(record: &impl Fields, model: &str) -> Limits {
    let per = |field: &str| {
        record
            .data()
            .get(field)
            .and_then(|m| m.get(model))
            .and_then(Value::as_f64)
    };
    Limits {
        rpm: count(per("model_rpm_limit")),
        tpm: count(per("model_tpm_limit")),
        parallel: None,
    }
}

/// Every scope that applies to this caller calling `model`.
pub fn scopes(
    caller: &Caller,
    model: &str,
    global_parallel: Option<u64>,
    end_user: Option<(&str, &EndUserLimits)>,
) -> Vec<Scope> {
    let mut out = Vec::new();
    let mut push = |kind: &'static str, id: String, limits: Limits| {
        if !limits.is_unlimited() {
            out.push(Scope { kind, id, limits });
        }
    };
    push(
        "global",
        String::new(),
        Limits {
            parallel: global_parallel,
            ..Limits::default()
        },
    );
    if let Some(p) = caller.principal() {
        push("key", p.key.token.clone(), limits_of(&p.key));
        push(
            "model_per_key",
            format!("{}:{model}", p.key.token),
            model_limits(&p.key, model),
        );
        if let Some(user) = &p.user {
            push("user", user.id.clone(), limits_of(user));
        }
        if let Some(team) = &p.team {
            push("team", team.id.clone(), limits_of(team));
            push(
                "model_per_team",
                format!("{}:{model}", team.id),
                model_limits(team, model),
            );
        }
    }
    if let Some((id, limits)) = end_user {
        push("end_user", id.to_string(), limits.limits);
    }
    out
}

const UNLIMITED: u64 = i64::MAX as u64;

/// The 429 for a crossed limit, in LiteLLM's words.
pub fn exceeded(e: Exceeded) -> GatewayError {
    let show = |v: Option<u64>| v.unwrap_or(UNLIMITED);
    GatewayError::RateLimited {
        message: format!(
            "LiteLLM Rate Limit Handler for rate limit type = {}. Crossed TPM / RPM / Max Parallel Request Limit. current rpm: {}, rpm limit: {}, current tpm: {}, tpm limit: {}, current max_parallel_requests: {}, max_parallel_requests: {}",
            e.kind,
            e.current_rpm,
            show(e.limits.rpm),
            e.current_tpm,
            show(e.limits.tpm),
            e.current_parallel,
            show(e.limits.parallel),
        ),
        retry_after: std::time::Duration::from_millis(e.retry_after_ms.max(1)),
    }
}

/// `x-ratelimit-{remaining,limit}-{requests,tokens}` for the key's own limits (else the first
/// limited scope), which replace the provider's headers of the same names.
pub fn headers(permit: &Permit) -> Vec<(HeaderName, HeaderValue)> {
    let pick: Option<&Remaining> = permit
        .remaining()
        .iter()
        .find(|r| r.kind == "key")
        .or_else(|| permit.remaining().first());
    let Some(r) = pick else { return Vec::new() };
    let mut out = Vec::new();
    let mut put = |name: &'static str, v: Option<u64>| {
        if let Some(v) = v {
            out.push((HeaderName::from_static(name), HeaderValue::from(v)));
        }
    };
    put("x-ratelimit-limit-requests", r.limits.rpm);
    put("x-ratelimit-remaining-requests", r.remaining_requests);
    put("x-ratelimit-limit-tokens", r.limits.tpm);
    put("x-ratelimit-remaining-tokens", r.remaining_tokens);
    out
}

/// An admitted request: the local permit, and its reservation in the Redis windows and in-flight
/// lease sets shared with other instances when `router_settings` names Redis. Shared between the
/// attempts of one request and its stream; settles tokens once, and frees the in-flight slots
/// (local and shared) when the last holder drops it.
pub struct Admission {
    pub permit: Permit,
    shared: Option<SharedAdmission>,
}

/// A request's reservation in Redis: its in-flight slots and its token windows, given back and
/// corrected in one round trip when it ends.
struct SharedAdmission {
    redis: SharedRouterState,
    /// The lease sets holding an in-flight slot of this request (empty: none).
    lease_sets: Vec<String>,
    id: String,
    tpm_keys: Vec<String>,
    estimate: u64,
    settled: AtomicBool,
    /// actual − estimated tokens, once settled; sent with the slots' release.
    delta: AtomicI64,
}

/// How long a shared in-flight slot is held if its instance never gives it back (it died): the
/// bound on how long a crash can keep `max_parallel_requests` slots taken.
pub const PARALLEL_LEASE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Admit the request in Redis under every scope with a limit, all or nothing and in one round
/// trip: an in-flight slot leased for every `max_parallel_requests`, and the request with its
/// `tokens` counted in the `rpm`/`tpm` windows. `Ok(None)` when no scope has a limit, Redis cannot
/// answer or the limits breaker is open (the local limits then apply per instance; the call never
/// waits longer than the Redis timeout, and not at all while the breaker is open); `Err` (429) when
/// a scope is full across the instances.
pub async fn admit_shared(
    redis: &SharedRouterState,
    breaker: &LimitsBreaker,
    scopes: &[Scope],
    tokens: u64,
    now_ms: u64,
) -> Result<Option<SharedReservation>, GatewayError> {
    let limited: Vec<&Scope> = scopes
        .iter()
        .filter(|s| s.limits.parallel.is_some())
        .collect();
    let windowed: Vec<&Scope> = scopes
        .iter()
        .filter(|s| s.limits.rpm.is_some() || s.limits.tpm.is_some())
        .collect();
    if (limited.is_empty() && windowed.is_empty()) || breaker.is_open() {
        return Ok(None);
    }
    let name = |s: &Scope| format!("{}:{}", s.kind, s.id);
    let lease_sets: Vec<String> = limited
        .iter()
        .map(|s| SharedRouterState::parallel_key(&name(s)))
        .collect();
    let parallel: Vec<(String, u64)> = lease_sets
        .iter()
        .zip(&limited)
        .map(|(k, s)| (k.clone(), s.limits.parallel.unwrap_or(u64::MAX)))
        .collect();
    let limit = |l: Option<u64>| l.map_or(-1, |v| v.min(i64::MAX as u64) as i64);
    let mut windows = Vec::with_capacity(windowed.len());
    let mut tpm_keys = Vec::new();
    for s in &windowed {
        let (rpm_key, tpm_key) = SharedRouterState::limit_keys(&name(s), now_ms);
        if s.limits.tpm.is_some() {
            tpm_keys.push(tpm_key.clone());
        }
        windows.push((rpm_key, tpm_key, limit(s.limits.rpm), limit(s.limits.tpm)));
    }
    let id = format!("{:032x}", rand::random::<u128>());
    let result = redis
        .admit(parallel, windows, tokens, &id, PARALLEL_LEASE)
        .await;
    report(breaker, &result);
    match result {
        Ok(None) => Ok(Some(SharedReservation {
            redis: redis.clone(),
            lease_sets,
            id,
            tpm_keys,
        })),
        Ok(Some(AdmitRefusal::Parallel { index, in_flight })) => {
            let s = limited[index.min(limited.len() - 1)];
            Err(exceeded(Exceeded {
                kind: s.kind,
                id: s.id.clone(),
                limits: s.limits,
                current_rpm: 0,
                current_tpm: 0,
                current_parallel: in_flight,
                retry_after_ms: 1000,
            }))
        }
        Ok(Some(AdmitRefusal::Window {
            index,
            requests,
            tokens,
        })) => {
            let s = windowed[index.min(windowed.len() - 1)];
            Err(exceeded(Exceeded {
                kind: s.kind,
                id: s.id.clone(),
                limits: s.limits,
                current_rpm: requests,
                current_tpm: tokens,
                current_parallel: 0,
                retry_after_ms: tollgate_actors::ms_to_next_minute(now_ms),
            }))
        }
        Err(e) => {
            tracing::debug!(error = %e, "shared rate limits unavailable; local limits apply");
            Ok(None)
        }
    }
}

/// What [`admit_shared`] reserved in Redis, for [`Admission::with_shared`].
pub struct SharedReservation {
    redis: SharedRouterState,
    lease_sets: Vec<String>,
    id: String,
    tpm_keys: Vec<String>,
}

impl Admission {
    pub fn local(permit: Permit) -> Self {
        Self {
            permit,
            shared: None,
        }
    }

    /// A local permit with its shared reservation.
    pub fn with_shared(permit: Permit, shared: Option<SharedReservation>, estimate: u64) -> Self {
        Self {
            permit,
            shared: shared.map(|r| SharedAdmission {
                redis: r.redis,
                lease_sets: r.lease_sets,
                id: r.id,
                tpm_keys: r.tpm_keys,
                estimate,
                settled: AtomicBool::new(false),
                delta: AtomicI64::new(0),
            }),
        }
    }

    /// Replace the token estimate with the real usage, locally and in Redis (once). With shared
    /// in-flight slots, the Redis correction goes with their release when the request ends.
    pub fn settle(&self, actual: u64) {
        self.permit.settle(actual);
        let Some(s) = &self.shared else { return };
        if s.settled.swap(true, Ordering::AcqRel) {
            return;
        }
        let delta = actual as i64 - s.estimate as i64;
        if !s.lease_sets.is_empty() {
            s.delta.store(delta, Ordering::Release);
            return;
        }
        if delta == 0 || s.tpm_keys.is_empty() {
            return;
        }
        s.redis.settle_soon(None, s.tpm_keys.clone(), delta);
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        // A request that ended without usage used no tokens.
        self.settle(0);
        let Some(s) = self.shared.take() else { return };
        if s.lease_sets.is_empty() {
            return;
        }
        let delta = s.delta.load(Ordering::Acquire);
        s.redis
            .settle_soon(Some((s.lease_sets, s.id)), s.tpm_keys, delta);
    }
}

pub type SharedPermit = Arc<Admission>;
