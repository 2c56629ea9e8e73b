//! The rate limiter's actor: it owns the lifecycle of the limit counters, the way a
//! [`crate::DeploymentActor`] owns its deployment's. Requests never message it; they call the
//! counters ([`LimiterHandle::acquire`]) and read the breaker it publishes, both atomics in a
//! [`LimiterState`] that outlives the actor, so a restart loses nothing.
//!
//! What the actor does, every [`TICK`]:
//!
//! * **Eviction**: every [`SWEEP_EVERY`] it drops the counters of scopes idle for a whole minute
//!   ([`RateLimiter::evict_idle`]), so the limiter holds the scopes used in the last 2½ minutes
//!   (and those with a request in flight), not every scope ever seen. Window rollover needs no
//!   bookkeeping: each window rolls over in the same compare-and-swap that counts.
//! * **The Redis breaker for limits** ([`LimitsBreaker`]): the request path reports how its calls to
//!   the shared limits (the reservation script, the in-flight leases) went. After
//!   [`BREAKER_THRESHOLD`] consecutive failures the breaker opens (one warning in the log, and
//!   `opened` counts it) and requests stop awaiting Redis: their local counters alone decide. The
//!   actor, never a request, probes Redis once the [`COOL_OFF`] has passed since the opening or the
//!   last failed probe, and closes the breaker when Redis answers.
//!
//! There is no periodic Redis sync for limits: each request reserves in Redis itself while the
//! breaker is closed.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::LocalBoxFuture;

use crate::deployment::now_ms;
use crate::limiter::RateLimiter;
use crate::shared::SharedRouterState;
use crate::supervise::{Child, Restartable};

/// How often the limiter actor wakes up.
pub const TICK: Duration = Duration::from_millis(500);
/// How often idle scopes are evicted.
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Consecutive failed Redis calls of the request path that open the limits breaker.
pub const BREAKER_THRESHOLD: u32 = 3;
/// How long an open breaker keeps requests off Redis before the actor probes it (again).
pub const COOL_OFF: Duration = Duration::from_secs(5);

/// Whether Redis answers, asked by the limiter actor when the breaker is open. The error must not
/// contain secrets.
pub type RedisProbe = Arc<dyn Fn() -> LocalBoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The probe for the gateway's Redis: one run of the admission script over no scope.
pub fn redis_probe(redis: SharedRouterState) -> RedisProbe {
    Arc::new(move || {
        let redis = redis.clone();
        Box::pin(async move { redis.probe().await.map_err(|e| e.to_string()) })
    })
}

/// The limiter actor's timings, and a test hook.
#[derive(Debug, Clone)]
pub struct LimiterSettings {
    pub tick: Duration,
    pub sweep_every: Duration,
    pub cool_off: Duration,
    /// Test hook: the actor panics once, at its first tick with at least this many scopes counted.
    pub panic_at_scopes: Option<usize>,
}

impl Default for LimiterSettings {
    fn default() -> Self {
        Self {
            tick: TICK,
            sweep_every: SWEEP_EVERY,
            cool_off: COOL_OFF,
            panic_at_scopes: None,
        }
    }
}

/// The health of the Redis calls made for limits, published to the request path. Requests record
/// outcomes and may open it; only the limiter actor closes it.
#[derive(Debug, Default)]
pub struct LimitsBreaker {
    consecutive_failures: AtomicU32,
    open: AtomicBool,
    /// When it opened or the last probe failed (unix ms): the cool-off runs from here.
    since_ms: AtomicU64,
    opened: AtomicU64,
}

impl LimitsBreaker {
    /// While open, requests do not call Redis for limits; their local counters decide.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// How many times it opened.
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Redis answered a request (an admission or a refusal).
    pub fn record_success(&self) {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// A request's Redis call failed. Opens the breaker at [`BREAKER_THRESHOLD`] consecutive
    /// failures and says so once in the log.
    pub fn record_failure(&self, error: &dyn std::fmt::Display) {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < BREAKER_THRESHOLD {
            return;
        }
        if self
            .open
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.since_ms.store(now_ms(), Ordering::Release);
            self.opened.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                error = %error,
                failures,
                "redis unreachable for rate limits; each instance counts its own requests until it answers again"
            );
        }
    }

    fn probe_due(&self, now_ms: u64, cool_off: Duration) -> bool {
        self.is_open()
            && now_ms >= self.since_ms.load(Ordering::Acquire) + cool_off.as_millis() as u64
    }

    fn probe_failed(&self, error: &str) {
        tracing::debug!(error, "redis still unreachable for rate limits");
        self.since_ms.store(now_ms(), Ordering::Release);
    }

    fn close(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        if self.open.swap(false, Ordering::AcqRel) {
            tracing::info!("redis answers again; rate limits are shared across instances again");
        }
    }
}

/// What the limiter actor owns and every incarnation of it is handed: the counters, the breaker.
#[derive(Default)]
pub struct LimiterState {
    counters: RateLimiter,
    breaker: LimitsBreaker,
    evicted: AtomicU64,
    /// Test hook (see [`LimiterSettings::panic_at_scopes`]); `usize::MAX` once fired or unset.
    panic_at_scopes: AtomicUsize,
}

/// Owns the counters' lifecycle and the limits breaker; see the module documentation.
pub struct LimiterActor {
    state: Arc<LimiterState>,
    probe: Option<RedisProbe>,
    settings: LimiterSettings,
    last_sweep_ms: u64,
    probing: bool,
}

impl LimiterActor {
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let now = now_ms();
        let scopes = self.state.counters.len();
        let panic_at = self.state.panic_at_scopes.load(Ordering::Acquire);
        if scopes >= panic_at
            && self
                .state
                .panic_at_scopes
                .compare_exchange(panic_at, usize::MAX, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            panic!("rate limiter: test panic with {scopes} scopes counted");
        }
        if now >= self.last_sweep_ms + self.settings.sweep_every.as_millis() as u64 {
            self.last_sweep_ms = now;
            let evicted = self.state.counters.evict_idle(now);
            if evicted > 0 {
                self.state
                    .evicted
                    .fetch_add(evicted as u64, Ordering::Relaxed);
                tracing::debug!(
                    evicted,
                    kept = scopes - evicted,
                    "idle rate-limit scopes evicted"
                );
            }
        }
        self.probe_redis(ctx, now);
    }

    /// One probe at a time, once the cool-off has passed.
    fn probe_redis(&mut self, ctx: &mut Context<Self>, now: u64) {
        let Some(probe) = &self.probe else {
            return;
        };
        if self.probing || !self.state.breaker.probe_due(now, self.settings.cool_off) {
            return;
        }
        self.probing = true;
        ctx.spawn(probe().into_actor(self).map(|outcome, act, _| {
            act.probing = false;
            match outcome {
                Ok(()) => act.state.breaker.close(),
                Err(e) => act.state.breaker.probe_failed(&e),
            }
        }));
    }
}

impl Actor for LimiterActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.settings.tick, |act, ctx| act.tick(ctx));
    }
}

/// What the gateway holds: the counters requests call, and the supervised actor. Cheap to clone.
#[derive(Clone)]
pub struct LimiterHandle {
    state: Arc<LimiterState>,
    actor: Arc<Restartable<LimiterActor>>,
}

impl LimiterHandle {
    /// Start the limiter actor on its own arbiter, probing `redis` (when limits are shared there)
    /// while the breaker is open. Must run inside an actix `System`; hand [`Self::child`] to the
    /// router so that it restarts the actor if it dies.
    pub fn start(redis: Option<SharedRouterState>, settings: LimiterSettings) -> Self {
        Self::start_with_probe(redis.map(redis_probe), settings)
    }

    /// Like [`Self::start`], with any probe.
    pub fn start_with_probe(probe: Option<RedisProbe>, settings: LimiterSettings) -> Self {
        let state = Arc::new(LimiterState {
            panic_at_scopes: AtomicUsize::new(settings.panic_at_scopes.unwrap_or(usize::MAX)),
            ..LimiterState::default()
        });
        let shared = state.clone();
        let actor = Restartable::start("rate limiter", move || LimiterActor {
            state: shared.clone(),
            probe: probe.clone(),
            settings: settings.clone(),
            last_sweep_ms: now_ms(),
            probing: false,
        });
        Self { state, actor }
    }

    /// The counters requests are admitted against ([`RateLimiter::acquire`]), without a message.
    pub fn counters(&self) -> &RateLimiter {
        &self.state.counters
    }

    /// The breaker over the Redis calls made for limits.
    pub fn breaker(&self) -> &LimitsBreaker {
        &self.state.breaker
    }

    /// Scopes with counters now.
    pub fn scopes(&self) -> usize {
        self.state.counters.len()
    }

    /// Scopes evicted for being idle, since start.
    pub fn evicted(&self) -> u64 {
        self.state.evicted.load(Ordering::Relaxed)
    }

    /// Times the actor was restarted after dying.
    pub fn restarts(&self) -> u64 {
        self.actor.restarts()
    }

    /// The actor, for the supervisor that keeps it alive.
    pub fn child(&self) -> Arc<dyn Child> {
        self.actor.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::{Limits, Scope};
    use crate::supervise::testing::NoUpstream;

    fn fast() -> LimiterSettings {
        LimiterSettings {
            tick: Duration::from_millis(10),
            sweep_every: Duration::from_millis(10),
            cool_off: Duration::from_millis(50),
            panic_at_scopes: None,
        }
    }

    async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..300 {
            if done() {
                return;
            }
            actix::clock::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    fn rpm(id: &str, limit: u64) -> Vec<Scope> {
        vec![Scope {
            kind: "key",
            id: id.into(),
            limits: Limits {
                rpm: Some(limit),
                ..Limits::default()
            },
        }]
    }

    #[actix_rt::test]
    async fn the_breaker_opens_after_failures_and_the_actor_closes_it_when_redis_answers() {
        let up = Arc::new(AtomicBool::new(false));
        let probes = Arc::new(AtomicU64::new(0));
        let (u, p) = (up.clone(), probes.clone());
        let probe: RedisProbe = Arc::new(move || {
            p.fetch_add(1, Ordering::SeqCst);
            let answer = if u.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err("connection refused".to_string())
            };
            Box::pin(async move { answer })
        });
        let limiter = LimiterHandle::start_with_probe(Some(probe), fast());
        let breaker = limiter.breaker();

        // Failures below the threshold, or broken by a success, keep it closed.
        breaker.record_failure(&"timeout");
        breaker.record_failure(&"timeout");
        breaker.record_success();
        breaker.record_failure(&"timeout");
        breaker.record_failure(&"timeout");
        assert!(!breaker.is_open());
        actix::clock::sleep(Duration::from_millis(100)).await;
        assert_eq!(probes.load(Ordering::SeqCst), 0, "no probe while closed");

        breaker.record_failure(&"timeout");
        assert!(breaker.is_open());
        assert_eq!(breaker.opened(), 1);
        // More failures of requests already under way do not open it again.
        breaker.record_failure(&"timeout");
        assert_eq!(breaker.opened(), 1);

        // Redis still down: the actor probes after each cool-off and the breaker stays open.
        wait_for("two failed probes", || probes.load(Ordering::SeqCst) >= 2).await;
        assert!(breaker.is_open());

        up.store(true, Ordering::SeqCst);
        wait_for("the breaker to close", || !breaker.is_open()).await;
        assert_eq!(breaker.opened(), 1);
        // Closed again, it counts failures from zero.
        breaker.record_failure(&"timeout");
        breaker.record_failure(&"timeout");
        assert!(!breaker.is_open());
    }

    #[actix_rt::test]
    async fn the_actor_evicts_only_idle_scopes() {
        let limiter = LimiterHandle::start_with_probe(None, fast());
        let long_ago = now_ms() - 10 * 60_000;
        limiter
            .counters()
            .acquire(rpm("old", 5), 0, long_ago)
            .unwrap();
        let now = now_ms();
        for _ in 0..2 {
            limiter.counters().acquire(rpm("busy", 2), 0, now).unwrap();
        }
        assert_eq!(limiter.scopes(), 2);
        wait_for("the idle scope's eviction", || limiter.evicted() == 1).await;
        assert_eq!(limiter.scopes(), 1);
        // The busy scope kept its count through the sweeps.
        assert!(limiter.counters().acquire(rpm("busy", 2), 0, now).is_err());
    }

    #[actix_rt::test]
    async fn a_restarted_limiter_actor_keeps_its_counters_and_breaker() {
        let settings = LimiterSettings {
            panic_at_scopes: Some(1),
            ..fast()
        };
        let limiter = LimiterHandle::start_with_probe(None, settings);
        let supervisor =
            crate::RouterHandle::start(Vec::<Arc<NoUpstream>>::new(), Default::default());
        supervisor.adopt(limiter.child());
        let now = now_ms();
        limiter.counters().acquire(rpm("k", 2), 0, now).unwrap();
        for _ in 0..BREAKER_THRESHOLD {
            limiter.breaker().record_failure(&"timeout");
        }
        wait_for("the restart", || limiter.restarts() == 1).await;
        assert!(limiter.breaker().is_open(), "the breaker survived");
        assert!(limiter.counters().acquire(rpm("k", 2), 0, now).is_ok());
        assert!(
            limiter.counters().acquire(rpm("k", 2), 0, now).is_err(),
            "the window survived"
        );
        // The new actor does the old one's work (it evicts an idle scope) and does not panic again.
        limiter
            .counters()
            .acquire(rpm("old", 5), 0, now - 10 * 60_000)
            .unwrap();
        wait_for("the new actor's sweep", || limiter.evicted() == 1).await;
        assert_eq!(limiter.restarts(), 1);
    }
}
