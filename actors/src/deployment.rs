//! One deployment: its live counters (atomics read by handlers) and the actor that owns its cooldown
//! decisions and health probes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;

use crate::messages::{DeploymentFailure, ErrorClass, FailureClass, Probe, ProbeOutcome};
use crate::shared::SharedRouterState;
use crate::window::MinuteCounter;
use crate::Upstream;

/// Wall-clock milliseconds since the Unix epoch (cooldown deadlines are shared across instances).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// When a deployment is taken out of rotation.
#[derive(Debug, Clone, PartialEq)]
pub struct CooldownPolicy {
    /// Failures tolerated within one minute before a cooldown (`allowed_fails`, default 3).
    pub allowed_fails: u32,
    /// How long a cooldown lasts (`cooldown_time`, default 5 s).
    pub cooldown_time: Duration,
    /// `disable_cooldowns`.
    pub disabled: bool,
    /// `allowed_fails_policy`: per bucket, how many failures of that bucket a minute are
    /// tolerated before a cooldown. A bucket listed here is no longer cooled at the first failure.
    pub allowed_fails_by_class: Vec<(ErrorClass, u32)>,
}

impl CooldownPolicy {
    fn allowance_for(&self, class: ErrorClass) -> Option<u32> {
        self.allowed_fails_by_class
            .iter()
            .find(|(c, _)| *c == class)
            .map(|(_, n)| *n)
    }
}

impl Default for CooldownPolicy {
    fn default() -> Self {
        Self {
            allowed_fails: 3,
            cooldown_time: Duration::from_secs(5),
            disabled: false,
            allowed_fails_by_class: Vec::new(),
        }
    }
}

/// Health as last probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeHealth {
    Unknown = 0,
    Healthy = 1,
    Unhealthy = 2,
}

/// Live counters of one deployment. Handlers update them with single atomic operations; the
/// deployment actor writes the cooldown deadline. The state outlives any one actor, so restarting a
/// crashed actor keeps them.
#[derive(Debug, Default)]
pub struct DeploymentState {
    in_flight: AtomicU64,
    requests: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    cooldown_until_ms: AtomicU64,
    cooldowns: AtomicU64,
    latency_ewma_us: AtomicU64,
    restarts: AtomicU64,
    dropped_reports: AtomicU64,
    probe_health: AtomicU64,
    last_probe_error: Mutex<Option<String>>,
    /// Requests started in the current minute (exact under concurrency).
    minute_requests: MinuteCounter,
    /// Tokens (reserved estimates, reconciled with real usage) in the current minute.
    minute_tokens: MinuteCounter,
    /// The last [`LATENCY_SAMPLES`] latencies in microseconds + 1 (0 = empty slot), for
    /// `latency-based-routing`; streams record their time to first token.
    latency_samples: [AtomicU64; LATENCY_SAMPLES],
    latency_next: AtomicU64,
}

/// How many recent latencies `latency-based-routing` averages (LiteLLM's `max_latency_list_size`).
pub const LATENCY_SAMPLES: usize = 10;

/// A copy of the counters, for `/model/info`, `/health` and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentStats {
    pub in_flight: u64,
    pub requests: u64,
    pub successes: u64,
    pub failures: u64,
    pub cooldowns: u64,
    pub cooling_down: bool,
    pub latency_ewma_us: u64,
    pub restarts: u64,
}

/// Decrements the in-flight count when the request ends, however it ends.
pub struct InFlightGuard(Arc<DeploymentState>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl DeploymentState {
    /// Count a request as started; the guard ends it.
    pub fn begin(self: &Arc<Self>) -> InFlightGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        InFlightGuard(self.clone())
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Record a successful call and fold its latency into the moving average (alpha = 1/8).
    pub fn record_success(&self, latency: Duration) {
        self.successes.fetch_add(1, Ordering::Relaxed);
        self.record_latency(latency);
        let sample = latency.as_micros().min(u64::MAX as u128) as u64;
        let _ = self
            .latency_ewma_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 {
                    sample
                } else {
                    old - old / 8 + sample / 8
                })
            });
    }

    pub(crate) fn record_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_dropped_report(&self) {
        self.dropped_reports.fetch_add(1, Ordering::Relaxed);
    }

    pub fn cooldown_until_ms(&self) -> u64 {
        self.cooldown_until_ms.load(Ordering::Relaxed)
    }

    pub fn is_cooling_down(&self, now_ms: u64) -> bool {
        self.cooldown_until_ms() > now_ms
    }

    pub(crate) fn cool_down_until(&self, until_ms: u64) {
        self.cooldown_until_ms
            .fetch_max(until_ms, Ordering::Relaxed);
        self.cooldowns.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn probe_health(&self) -> ProbeHealth {
        match self.probe_health.load(Ordering::Relaxed) {
            1 => ProbeHealth::Healthy,
            2 => ProbeHealth::Unhealthy,
            _ => ProbeHealth::Unknown,
        }
    }

    pub fn last_probe_error(&self) -> Option<String> {
        self.last_probe_error
            .lock()
            .ok()
            .and_then(|guard| guard.clone())
    }

    fn record_probe(&self, outcome: &ProbeOutcome) {
        let (health, error) = match outcome {
            ProbeOutcome::Healthy { .. } => (ProbeHealth::Healthy, None),
            ProbeOutcome::Unhealthy { error } => (ProbeHealth::Unhealthy, Some(error.clone())),
        };
        self.probe_health.store(health as u64, Ordering::Relaxed);
        if let Ok(mut guard) = self.last_probe_error.lock() {
            *guard = error;
        }
    }

    /// Requests and tokens counted in the current minute (`rpm`/`tpm` usage).
    pub fn minute_usage(&self, now_ms: u64) -> (u64, u64) {
        (
            self.minute_requests.get(now_ms),
            self.minute_tokens.get(now_ms),
        )
    }

    /// Whether one more request of `tokens` estimated tokens fits under `rpm` / `tpm` this minute.
    pub fn has_capacity(
        &self,
        now_ms: u64,
        rpm: Option<u64>,
        tpm: Option<u64>,
        tokens: u64,
    ) -> bool {
        let (requests, used) = self.minute_usage(now_ms);
        rpm.is_none_or(|l| requests < l)
            && tpm.is_none_or(|l| used < l && (used == 0 || used + tokens <= l))
    }

    /// Count one request and reserve `tokens` in the current minute, atomically checking `rpm` and
    /// `tpm`. Returns false (and counts nothing) when either limit is reached. A request larger than
    /// the whole `tpm` is still let through when the minute is empty, as it could never fit otherwise.
    pub fn reserve(&self, now_ms: u64, rpm: Option<u64>, tpm: Option<u64>, tokens: u64) -> bool {
        if !self.minute_requests.add_within(now_ms, 1, rpm) {
            return false;
        }
        if !self.minute_tokens.add_within(now_ms, tokens, tpm) {
            self.minute_requests.sub(now_ms, 1);
            return false;
        }
        true
    }

    /// Replace a token estimate with the real count once usage is known.
    pub fn reconcile_tokens(&self, now_ms: u64, estimated: u64, actual: u64) {
        self.minute_tokens.reconcile(now_ms, estimated, actual);
    }

    /// Take a cooldown another instance decided (not counted as one of this instance's cooldowns).
    pub fn adopt_cooldown_until(&self, until_ms: u64) {
        self.cooldown_until_ms
            .fetch_max(until_ms, Ordering::Relaxed);
    }

    /// Take the minute usage counted across instances when it is ahead of the local count.
    pub fn adopt_minute_usage(&self, now_ms: u64, requests: u64, tokens: u64) {
        self.minute_requests.adopt(now_ms, requests);
        self.minute_tokens.adopt(now_ms, tokens);
    }

    /// Give back a reservation that the shared counters refused.
    pub fn release(&self, now_ms: u64, tokens: u64) {
        self.minute_requests.sub(now_ms, 1);
        self.reconcile_tokens(now_ms, tokens, 0);
    }

    /// Replace the latency samples with the shared ones (µs, newest first).
    pub fn replace_latency_samples(&self, micros: &[u64]) {
        for (i, slot) in self.latency_samples.iter().enumerate() {
            slot.store(micros.get(i).map_or(0, |m| m + 1), Ordering::Relaxed);
        }
        self.latency_next
            .store(micros.len().min(LATENCY_SAMPLES) as u64, Ordering::Relaxed);
    }

    /// Record a latency sample for `latency-based-routing`.
    pub fn record_latency(&self, latency: Duration) {
        let slot = self.latency_next.fetch_add(1, Ordering::Relaxed) as usize % LATENCY_SAMPLES;
        let micros = latency.as_micros().min(u64::MAX as u128 - 1) as u64;
        self.latency_samples[slot].store(micros + 1, Ordering::Relaxed);
    }

    /// Mean of the recent latency samples; `None` before the first one.
    pub fn average_latency(&self) -> Option<Duration> {
        let (sum, n) = self
            .latency_samples
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .filter(|v| *v > 0)
            .fold((0u128, 0u128), |(sum, n), v| (sum + (v - 1) as u128, n + 1));
        (n > 0).then(|| Duration::from_micros((sum / n) as u64))
    }

    pub fn stats(&self) -> DeploymentStats {
        DeploymentStats {
            in_flight: self.in_flight(),
            requests: self.requests.load(Ordering::Relaxed),
            successes: self.successes.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            cooldowns: self.cooldowns.load(Ordering::Relaxed),
            cooling_down: self.is_cooling_down(now_ms()),
            latency_ewma_us: self.latency_ewma_us.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
        }
    }
}

/// Owns one deployment's cooldown decisions and runs its health probes.
pub struct DeploymentActor<U: Upstream> {
    upstream: Arc<U>,
    state: Arc<DeploymentState>,
    policy: CooldownPolicy,
    /// Whether this is the only deployment of its model group. Cooling the only deployment down
    /// would turn every request into a gateway 429 that hides the provider's own answer, so a sole
    /// deployment is cooled only for failures no retry can fix (bad credentials, unknown model).
    alone: bool,
    /// Failures counted against `allowed_fails` within the last minute.
    recent_failures: VecDeque<(Instant, ErrorClass)>,
    /// Where cooldowns are published for other instances, when Redis is configured.
    shared: Option<SharedRouterState>,
}

impl<U: Upstream> DeploymentActor<U> {
    pub(crate) fn new(
        upstream: Arc<U>,
        state: Arc<DeploymentState>,
        policy: CooldownPolicy,
        alone: bool,
        shared: Option<SharedRouterState>,
    ) -> Self {
        Self {
            upstream,
            state,
            policy,
            alone,
            recent_failures: VecDeque::new(),
            shared,
        }
    }

    /// Decide whether this failure starts a cooldown; returns the cooldown length if so.
    fn decide(&mut self, failure: &DeploymentFailure, now: Instant) -> Option<Duration> {
        let class = failure.class;
        let allowance = self.policy.allowance_for(failure.bucket);
        if self.policy.disabled || (!class.counts_against_deployment() && allowance.is_none()) {
            return None;
        }
        if self.alone && !matches!(class, FailureClass::Auth | FailureClass::NotFound) {
            return None;
        }
        let window = Duration::from_secs(60);
        while self
            .recent_failures
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > window)
        {
            self.recent_failures.pop_front();
        }
        self.recent_failures.push_back((now, failure.bucket));
        let cool = match allowance {
            // allowed_fails_policy: only failures of this bucket count, and none cools at once.
            Some(n) => {
                self.recent_failures
                    .iter()
                    .filter(|(_, b)| *b == failure.bucket)
                    .count() as u64
                    > n as u64
            }
            None => {
                class.cools_down_immediately()
                    || self.recent_failures.len() as u64 > self.policy.allowed_fails as u64
            }
        };
        if !cool {
            return None;
        }
        self.recent_failures.clear();
        // A provider's retry-after longer than the cooldown wins.
        Some(failure.retry_after.map_or(self.policy.cooldown_time, |r| {
            r.max(self.policy.cooldown_time)
        }))
    }
}

impl<U: Upstream> Actor for DeploymentActor<U> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Reports are fire-and-forget; a deep mailbox absorbs failure bursts without blocking senders.
        ctx.set_mailbox_capacity(1024);
    }
}

impl<U: Upstream> Handler<DeploymentFailure> for DeploymentActor<U> {
    type Result = ();

    fn handle(&mut self, failure: DeploymentFailure, ctx: &mut Self::Context) {
        if let Some(length) = self.decide(&failure, Instant::now()) {
            tracing::warn!(
                deployment = self.upstream.id(),
                model_group = self.upstream.model_group(),
                class = ?failure.class,
                status = failure.status,
                cooldown_ms = length.as_millis() as u64,
                "deployment cooling down"
            );
            let until = now_ms() + length.as_millis() as u64;
            self.state.cool_down_until(until);
            if let Some(shared) = self.shared.clone() {
                let id = self.upstream.id().to_string();
                ctx.spawn(
                    async move {
                        if let Err(e) = shared.publish_cooldown(&id, until).await {
                            tracing::debug!(deployment = id, error = %e, "cooldown not shared");
                        }
                    }
                    .into_actor(self),
                );
            }
        }
    }
}

impl<U: Upstream> Handler<Probe> for DeploymentActor<U> {
    type Result = ResponseActFuture<Self, ProbeOutcome>;

    fn handle(&mut self, msg: Probe, _ctx: &mut Self::Context) -> Self::Result {
        let started = Instant::now();
        let probe = self.upstream.clone().probe();
        let fut = async move {
            match actix::clock::timeout(msg.timeout, probe).await {
                Ok(Ok(())) => ProbeOutcome::Healthy {
                    latency: started.elapsed(),
                },
                Ok(Err(error)) => ProbeOutcome::Unhealthy { error },
                Err(_) => ProbeOutcome::Unhealthy {
                    error: format!("health check timed out after {:?}", msg.timeout),
                },
            }
        };
        Box::pin(fut.into_actor(self).map(|outcome, act, _| {
            act.state.record_probe(&outcome);
            outcome
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::future::LocalBoxFuture;

    struct Fake;
    impl Upstream for Fake {
        fn id(&self) -> &str {
            "fake"
        }
        fn model_group(&self) -> &str {
            "g"
        }
        fn probe(self: Arc<Self>) -> LocalBoxFuture<'static, Result<(), String>> {
            Box::pin(async { Ok(()) })
        }
    }

    fn failure(class: FailureClass) -> DeploymentFailure {
        let bucket = match class {
            FailureClass::RateLimit => ErrorClass::RateLimit,
            FailureClass::Auth => ErrorClass::Authentication,
            FailureClass::NotFound => ErrorClass::NotFound,
            FailureClass::Timeout => ErrorClass::Timeout,
            FailureClass::Server | FailureClass::Connection => ErrorClass::InternalServer,
            FailureClass::BadRequest => ErrorClass::BadRequest,
        };
        DeploymentFailure {
            class,
            bucket,
            status: None,
            retry_after: None,
        }
    }

    fn actor(policy: CooldownPolicy) -> DeploymentActor<Fake> {
        DeploymentActor::new(Arc::new(Fake), Arc::default(), policy, false, None)
    }

    #[test]
    fn a_sole_deployment_cools_down_only_for_unfixable_failures() {
        let mut a = DeploymentActor::new(
            Arc::new(Fake),
            Arc::default(),
            CooldownPolicy::default(),
            true,
            None,
        );
        let now = Instant::now();
        for _ in 0..10 {
            assert_eq!(a.decide(&failure(FailureClass::RateLimit), now), None);
            assert_eq!(a.decide(&failure(FailureClass::Server), now), None);
        }
        assert!(a.decide(&failure(FailureClass::Auth), now).is_some());
    }

    #[test]
    fn server_errors_cool_down_after_allowed_fails() {
        let mut a = actor(CooldownPolicy::default());
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(a.decide(&failure(FailureClass::Server), now), None);
        }
        assert_eq!(
            a.decide(&failure(FailureClass::Server), now),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn rate_limit_cools_down_at_once_and_honours_retry_after() {
        let mut a = actor(CooldownPolicy::default());
        let mut f = failure(FailureClass::RateLimit);
        f.retry_after = Some(Duration::from_secs(30));
        assert_eq!(a.decide(&f, Instant::now()), Some(Duration::from_secs(30)));
    }

    #[test]
    fn bad_requests_and_disabled_policy_never_cool_down() {
        let mut a = actor(CooldownPolicy::default());
        for _ in 0..10 {
            assert_eq!(
                a.decide(&failure(FailureClass::BadRequest), Instant::now()),
                None
            );
        }
        let mut a = actor(CooldownPolicy {
            disabled: true,
            ..CooldownPolicy::default()
        });
        assert_eq!(
            a.decide(&failure(FailureClass::RateLimit), Instant::now()),
            None
        );
    }

    #[test]
    fn allowed_fails_policy_counts_per_class() {
        let mut a = actor(CooldownPolicy {
            allowed_fails_by_class: vec![(ErrorClass::RateLimit, 2), (ErrorClass::BadRequest, 1)],
            ..CooldownPolicy::default()
        });
        let now = Instant::now();
        assert_eq!(a.decide(&failure(FailureClass::RateLimit), now), None);
        assert_eq!(a.decide(&failure(FailureClass::RateLimit), now), None);
        assert!(a.decide(&failure(FailureClass::RateLimit), now).is_some());
        assert_eq!(a.decide(&failure(FailureClass::BadRequest), now), None);
        assert!(a.decide(&failure(FailureClass::BadRequest), now).is_some());
    }

    #[test]
    fn buckets_that_share_a_cooldown_class_keep_their_own_allowance() {
        // 500 and 503 both cool as `Server`, but `InternalServerErrorAllowedFails` and
        // `ServiceUnavailableErrorAllowedFails` are separate allowances with separate counters.
        let mut a = actor(CooldownPolicy {
            allowed_fails_by_class: vec![
                (ErrorClass::InternalServer, 3),
                (ErrorClass::ServiceUnavailable, 1),
            ],
            ..CooldownPolicy::default()
        });
        let unavailable = DeploymentFailure {
            bucket: ErrorClass::ServiceUnavailable,
            ..failure(FailureClass::Server)
        };
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(a.decide(&failure(FailureClass::Server), now), None);
        }
        assert_eq!(a.decide(&unavailable, now), None);
        assert!(a.decide(&unavailable, now).is_some());
        // Connection failures fall in the InternalServerError bucket too.
        for _ in 0..3 {
            assert_eq!(a.decide(&failure(FailureClass::Connection), now), None);
        }
        assert!(a.decide(&failure(FailureClass::Server), now).is_some());
    }

    #[test]
    fn minute_counters_are_exact_and_roll_over() {
        let state = DeploymentState::default();
        let t = 120_000;
        assert!(state.reserve(t, Some(2), None, 10));
        assert!(state.reserve(t + 1, Some(2), None, 10));
        assert!(!state.reserve(t + 2, Some(2), None, 10));
        assert_eq!(state.minute_usage(t), (2, 20));
        assert!(
            state.reserve(t + 60_000, Some(2), None, 10),
            "a new minute starts empty"
        );
        let state = DeploymentState::default();
        assert!(
            state.reserve(t, None, Some(100), 500),
            "an empty minute admits an oversized request"
        );
        assert!(!state.reserve(t, None, Some(100), 1));
        assert_eq!(
            state.minute_usage(t),
            (1, 500),
            "a refused token reservation gives its request back"
        );
        state.reconcile_tokens(t, 500, 40);
        assert_eq!(state.minute_usage(t), (1, 40));
        assert!(state.reserve(t, None, Some(100), 50));
        assert!(!state.has_capacity(t, None, Some(100), 20));
    }

    #[test]
    fn reservations_under_contention_admit_exactly_the_limit() {
        let state = Arc::new(DeploymentState::default());
        let now = now_ms();
        let admitted: usize = (0..8)
            .map(|_| {
                let s = state.clone();
                std::thread::spawn(move || {
                    (0..1000)
                        .filter(|_| s.reserve(now, Some(1234), None, 1))
                        .count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(admitted, 1234);
    }

    #[test]
    fn latency_average_keeps_the_last_samples() {
        let state = DeploymentState::default();
        assert_eq!(state.average_latency(), None);
        for _ in 0..LATENCY_SAMPLES {
            state.record_latency(Duration::from_millis(100));
        }
        for _ in 0..LATENCY_SAMPLES {
            state.record_latency(Duration::from_millis(10));
        }
        assert_eq!(state.average_latency(), Some(Duration::from_millis(10)));
    }

    #[test]
    fn failures_older_than_a_minute_are_forgotten() {
        let mut a = actor(CooldownPolicy::default());
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(a.decide(&failure(FailureClass::Server), start), None);
        }
        let later = start + Duration::from_secs(61);
        assert_eq!(a.decide(&failure(FailureClass::Server), later), None);
    }

    #[test]
    fn ewma_latency_and_in_flight_guard() {
        let state = Arc::new(DeploymentState::default());
        {
            let _g = state.begin();
            assert_eq!(state.in_flight(), 1);
        }
        assert_eq!(state.in_flight(), 0);
        state.record_success(Duration::from_micros(800));
        state.record_success(Duration::from_micros(1600));
        assert_eq!(state.stats().latency_ewma_us, 800 - 100 + 200);
    }
}
