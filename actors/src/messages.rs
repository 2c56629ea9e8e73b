//! Every message the actors accept, in one place: this file is the contract between the gateway and
//! its actors.

use std::sync::Arc;
use std::time::Duration;

use actix::Message;

use crate::Upstream;

/// How an upstream call failed, as far as cooldowns care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// 429 from the provider.
    RateLimit,
    /// 401 / 403 from the provider.
    Auth,
    /// 404 from the provider (wrong model or deployment name).
    NotFound,
    /// The call did not finish within its timeout.
    Timeout,
    /// 5xx from the provider.
    Server,
    /// The connection could not be made or broke.
    Connection,
    /// Any other 4xx: the request itself was wrong, not the deployment.
    BadRequest,
}

impl FailureClass {
    /// Whether a single failure of this class cools the deployment down at once.
    pub fn cools_down_immediately(self) -> bool {
        matches!(
            self,
            FailureClass::RateLimit | FailureClass::Auth | FailureClass::NotFound
        )
    }

    /// Whether the failure counts against `allowed_fails` at all: a bad request is the client's fault.
    pub fn counts_against_deployment(self) -> bool {
        !matches!(self, FailureClass::BadRequest)
    }
}

/// LiteLLM's exception buckets, as `retry_policy` (`{name}Retries`) and `allowed_fails_policy`
/// (`{name}AllowedFails`) name them. The gateway decides which bucket a failure falls into (one
/// classification, `tollgate::error::Classification`); the deployment actors count
/// `allowed_fails_policy` per bucket, so no two policy keys share a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    BadRequest,
    Authentication,
    Timeout,
    RateLimit,
    ContentPolicyViolation,
    InternalServer,
    ServiceUnavailable,
    NotFound,
}

impl ErrorClass {
    /// Every bucket with its LiteLLM name (the policy key without its suffix).
    pub const ALL: [(ErrorClass, &'static str); 8] = [
        (ErrorClass::BadRequest, "BadRequestError"),
        (ErrorClass::Authentication, "AuthenticationError"),
        (ErrorClass::Timeout, "TimeoutError"),
        (ErrorClass::RateLimit, "RateLimitError"),
        (
            ErrorClass::ContentPolicyViolation,
            "ContentPolicyViolationError",
        ),
        (ErrorClass::InternalServer, "InternalServerError"),
        (ErrorClass::ServiceUnavailable, "ServiceUnavailableError"),
        (ErrorClass::NotFound, "NotFoundError"),
    ];

    /// LiteLLM's name of the bucket (`"RateLimitError"`).
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(c, _)| *c == self)
            .map_or("", |(_, name)| name)
    }

    /// The bucket a policy key names: `"{name}{suffix}"`, e.g. `RateLimitErrorAllowedFails` with
    /// the suffix `AllowedFails`.
    pub fn from_policy_key(key: &str, suffix: &str) -> Option<Self> {
        let name = key.strip_suffix(suffix)?;
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(c, _)| *c)
    }
}

/// Fire-and-forget report from a handler: a call to this deployment failed.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct DeploymentFailure {
    /// How the failure cools the deployment (at once, after `allowed_fails`, or never).
    pub class: FailureClass,
    /// The `allowed_fails_policy` bucket it is counted in.
    pub bucket: ErrorClass,
    pub status: Option<u16>,
    /// The provider's `retry-after`, if it sent one.
    pub retry_after: Option<Duration>,
}

/// Ask the router to probe every deployment (or those of one model group) in parallel.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Vec<HealthReport>")]
pub struct ProbeAll {
    pub timeout: Duration,
    /// Only deployments of this model group (exact `model_name`), when set.
    pub model_group: Option<String>,
}

/// Internal: ask one deployment actor to run its probe.
#[derive(Debug, Clone, Message)]
#[rtype(result = "ProbeOutcome")]
pub(crate) struct Probe {
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProbeOutcome {
    Healthy { latency: Duration },
    Unhealthy { error: String },
}

#[derive(Debug, Clone)]
pub struct HealthReport {
    pub deployment_id: String,
    pub outcome: ProbeOutcome,
}

/// Replace the cooldown policy (`allowed_fails`, `cooldown_time`, `disable_cooldowns`,
/// `allowed_fails_policy`) of every deployment actor, e.g. after `POST /config/update`. Counters
/// and cooldown deadlines (in each deployment's state) are kept.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetCooldownPolicy(pub crate::deployment::CooldownPolicy);

/// Replace the deployment set (config reload, models added through the API). Deployments whose id is
/// unchanged keep their counters and cooldown state.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReplaceDeployments<U: Upstream> {
    pub upstreams: Vec<Arc<U>>,
}
