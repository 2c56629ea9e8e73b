//! Tollgate's actors.
//!
//! Actors own and write state; request handlers never queue behind a mailbox on the hot path:
//!
//! * [`RouterActor`] owns the model groups. It supervises one [`DeploymentActor`] per `model_list`
//!   entry, restarts any child that dies (a panicking handler kills an actix actor for good, even under
//!   a `Supervisor`), and publishes an immutable [`RoutingSnapshot`] through an `ArcSwap` that handlers
//!   read without a message.
//! * [`DeploymentActor`] owns the cooldown decision and runs health probes for its deployment. Its hot
//!   counters (in-flight requests, cooldown deadline, latency, successes and failures) are atomics in a
//!   [`DeploymentState`] that outlives the actor, so a restart loses nothing.
//! * [`LimiterActor`] owns the lifecycle of the rate-limit counters: it evicts idle scopes and runs
//!   the breaker over the Redis calls made for limits. Requests call the counters
//!   ([`LimiterHandle::acquire`]) and read the breaker: atomics in a state the actor only owns.
//! * [`ResponseCacheActor`] keeps the response cache ([`ResponseCache`]) tidy: it sweeps expired
//!   entries, sends the queued Redis writes in pipelines and fetches the semantic vectors other
//!   instances persisted. Requests read and store entries without a message (local), or with one
//!   Redis call under a timeout and a breaker (Redis); its state lives outside the actor.
//! * The router is the root of the supervision tree: it also keeps alive every [`Child`] it adopted
//!   ([`RouterHandle::adopt`]), the [`SpendTracker`], the [`LimiterActor`] and the [`CacheHandle`]
//!   actors, each a [`Restartable`] whose state lives outside the actor and is handed to every
//!   incarnation.
//!
//! Handlers touch the actors only with fire-and-forget messages (`try_send`), and only when something
//! happened that needs a decision (an upstream failure). Everything else is a read of published state.
//!
//! The actor crate knows nothing about HTTP or providers: a deployment is anything implementing
//! [`Upstream`], which the gateway binary supplies.

mod cache;
mod deployment;
mod limiter;
mod limiter_actor;
mod messages;
mod response_cache;
mod router;
mod semantic_index;
mod shared;
mod snapshot;
mod spend;
mod strategy;
mod supervise;
mod window;

pub use cache::{CacheHandle, Loader, Lookup};
pub use deployment::{
    now_ms, CooldownPolicy, DeploymentActor, DeploymentState, DeploymentStats, ProbeHealth,
    LATENCY_SAMPLES,
};
pub use limiter::{Exceeded, Limits, Permit, RateLimiter, Remaining, Scope, IDLE_MINUTES};
pub use limiter_actor::{
    redis_probe, LimiterActor, LimiterHandle, LimiterSettings, LimitsBreaker, RedisProbe,
    BREAKER_THRESHOLD as LIMITS_BREAKER_THRESHOLD, COOL_OFF as LIMITS_COOL_OFF,
    SWEEP_EVERY as LIMITS_SWEEP_EVERY,
};
pub use messages::{
    DeploymentFailure, ErrorClass, FailureClass, HealthReport, ProbeAll, ProbeOutcome,
    ReplaceDeployments, SetCooldownPolicy,
};
pub use response_cache::{
    CacheBackend, CacheError, CacheStats, CachedEntry, ResponseCache, ResponseCacheActor,
    ResponseCacheSettings, DEFAULT_PREFIX as RESPONSE_CACHE_PREFIX, TICK as RESPONSE_CACHE_TICK,
};
pub use router::{RouterActor, RouterHandle};
pub use shared::{
    AdmitRefusal, Purpose as RedisPurpose, SharedError, SharedRouterState, SharedStatus,
};
pub use snapshot::{wildcard_matches, DeploymentHandle, ModelGroup, RoutingSnapshot};
pub use spend::{Drain, SpendHandle, SpendSink, SpendTracker, MAX_BUFFERED};
pub use strategy::{PickError, PickRequest, Picked, RoutingStrategy};
pub use supervise::{Adopt, Child, Restartable};
pub use window::{minute_of, ms_to_next_minute, MinuteCounter};

use futures_util::future::LocalBoxFuture;

/// A deployment the router can route to: one `model_list` entry, resolved.
///
/// Implemented by the gateway; the actors only need identity and a health probe.
pub trait Upstream: Send + Sync + 'static {
    /// Stable deployment id (`model_info.id`, or a hash of the entry).
    fn id(&self) -> &str;
    /// The model group (`model_name`) this deployment serves; may be a wildcard such as `openai/*`.
    fn model_group(&self) -> &str;
    /// Relative weight for weighted shuffling (`weight`, else `rpm`, else `tpm`); `None` means equal.
    fn weight(&self) -> Option<f64> {
        None
    }
    /// Requests per minute this deployment may take (`rpm`); enforced by every strategy.
    fn rpm(&self) -> Option<u64> {
        None
    }
    /// Tokens per minute this deployment may take (`tpm`).
    fn tpm(&self) -> Option<u64> {
        None
    }
    /// Priority (`order`, 1 = first choice): only the lowest order among usable deployments is used.
    fn order(&self) -> Option<u32> {
        None
    }
    /// Price per token (input + output), for `cost-based-routing`.
    fn cost_per_token(&self) -> Option<f64> {
        None
    }
    /// Context window (`max_input_tokens`), for `enable_pre_call_checks`.
    fn max_input_tokens(&self) -> Option<u64> {
        None
    }
    /// The deployment's region (`eu`, `us`, or another region's name), for requests restricted to
    /// one region (an end user's `allowed_model_region`); `None` when unknown.
    fn region(&self) -> Option<&str> {
        None
    }
    /// A tiny real call to the deployment. It runs on the deployment actor's arbiter, so it may use
    /// thread-local, non-`Send` clients. The error string must not contain secrets.
    fn probe(self: std::sync::Arc<Self>) -> LocalBoxFuture<'static, Result<(), String>>;
}
