//! LiteLLM's Prometheus metrics: the request, token, spend, latency, deployment and fallback
//! series a LiteLLM dashboard queries, with LiteLLM's names and label names.
//!
//! [`Metrics`] owns every series that must outlive a scrape (counters, histograms, the gauges set
//! per request); `/metrics` registers them by clone into the registry it builds per scrape
//! ([`Metrics::register`]). It is fed from two places:
//!
//! * as an [`Observer`], once per finished request (`litellm_proxy_*`, `litellm_requests_metric`,
//!   spend, tokens, total latency, remaining budgets);
//! * through [`Scope`], from the pipeline's accounting step per attempt (deployment successes,
//!   failures, LLM API latency, time to first token, overhead, remaining rpm/tpm) and from routing
//!   per fallback.
//!
//! Label values the gateway does not know (`client_ip`, `user_agent`, `route`, `service_tier`)
//! are empty strings. Every family is capped at [`MAX_SERIES`] label sets: once full, a new label
//! set is counted in one series whose label values are all `"other"`, and
//! `tollgate_metrics_series_folded_total{metric}` counts the folds. The hot path hashes borrowed label
//! values, finds the series in the family's index, and adds to it (see [`Capped`]).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::TypedMetric;
use prometheus_client::registry::{Metric, Registry};
use tollgate_actors::DeploymentHandle;

use super::{Observer, RequestEvent};
use crate::deployment::Deployment;
use crate::error::GatewayError;
use crate::spend::Served;

/// Label sets kept per family before new ones fold into the `"other"` series.
pub const MAX_SERIES: usize = 10_000;

/// LiteLLM's latency buckets (seconds), `LATENCY_BUCKETS` in `litellm/types/integrations/prometheus.py`
/// (its final `+Inf` is implicit here).
pub const LATENCY_BUCKETS: [f64; 35] = [
    0.005, 0.00625, 0.0125, 0.025, 0.05, 0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0,
    5.5, 6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0, 9.5, 10.0, 15.0, 20.0, 25.0, 30.0, 60.0, 120.0, 180.0,
    240.0, 300.0,
];

type Labels = Vec<(&'static str, String)>;
type FloatCounter = Counter<f64, AtomicU64>;
type FloatGauge = Gauge<f64, AtomicU64>;

// Label names per metric, in LiteLLM's order.
const PROXY_TOTAL: &[L] = &[
    L::EndUser,
    L::HashedApiKey,
    L::ApiKeyAlias,
    L::RequestedModel,
    L::Team,
    L::TeamAlias,
    L::User,
    L::StatusCode,
    L::UserEmail,
    L::Route,
    L::ClientIp,
    L::UserAgent,
    L::ModelId,
    L::ApiProvider,
];
const PROXY_FAILED: &[L] = &[
    L::EndUser,
    L::HashedApiKey,
    L::ApiKeyAlias,
    L::RequestedModel,
    L::Team,
    L::TeamAlias,
    L::User,
    L::UserEmail,
    L::ExceptionStatus,
    L::ExceptionClass,
    L::Route,
    L::ClientIp,
    L::UserAgent,
    L::ModelId,
    L::ApiProvider,
];
const REQUESTS: &[L] = &[
    L::EndUser,
    L::HashedApiKey,
    L::ApiKeyAlias,
    L::Model,
    L::Team,
    L::TeamAlias,
    L::User,
    L::UserEmail,
    L::ClientIp,
    L::UserAgent,
    L::RequestedModel,
    L::ModelId,
    L::ApiProvider,
];
const SPEND: &[L] = &[
    L::EndUser,
    L::HashedApiKey,
    L::ApiKeyAlias,
    L::Model,
    L::Team,
    L::TeamAlias,
    L::User,
    L::UserEmail,
    L::ClientIp,
    L::UserAgent,
    L::RequestedModel,
    L::ModelId,
    L::ApiProvider,
    L::ServiceTier,
];
const TOKENS: &[L] = &[
    L::EndUser,
    L::HashedApiKey,
    L::ApiKeyAlias,
    L::Model,
    L::Team,
    L::TeamAlias,
    L::User,
    L::UserEmail,
    L::RequestedModel,
    L::ModelId,
    L::ApiProvider,
];
const LLM_LATENCY: &[L] = &[
    L::ModelGroup,
    L::Model,
    L::HashedApiKey,
    L::ApiKeyAlias,
    L::Team,
    L::TeamAlias,
    L::RequestedModel,
    L::EndUser,
    L::User,
    L::ModelId,
    L::ApiProvider,
    L::ServiceTier,
];
const TOTAL_LATENCY: &[L] = &[
    L::ModelGroup,
    L::EndUser,
    L::HashedApiKey,
    L::ApiKeyAlias,
    L::RequestedModel,
    L::Team,
    L::TeamAlias,
    L::User,
    L::Model,
    L::ModelId,
    L::ApiProvider,
    L::ServiceTier,
];
const DEPLOYMENT_KEYED: &[L] = &[
    L::ModelGroup,
    L::ApiProvider,
    L::ApiBase,
    L::LitellmModelName,
    L::HashedApiKey,
    L::ApiKeyAlias,
    L::ModelId,
];
const DEPLOYMENT_TOTAL: &[L] = &[
    L::ModelGroup,
    L::RequestedModel,
    L::LitellmModelName,
    L::ModelId,
    L::ApiBase,
    L::ApiProvider,
    L::HashedApiKey,
    L::ApiKeyAlias,
    L::Team,
    L::TeamAlias,
    L::ClientIp,
    L::UserAgent,
];
const DEPLOYMENT_FAILURE: &[L] = &[
    L::ModelGroup,
    L::RequestedModel,
    L::LitellmModelName,
    L::ModelId,
    L::ApiBase,
    L::ApiProvider,
    L::ExceptionStatus,
    L::ExceptionClass,
    L::HashedApiKey,
    L::ApiKeyAlias,
    L::Team,
    L::TeamAlias,
    L::ClientIp,
    L::UserAgent,
];
const FALLBACK: &[L] = &[
    L::RequestedModel,
    L::FallbackModel,
    L::HashedApiKey,
    L::ApiKeyAlias,
    L::Team,
    L::TeamAlias,
    L::ExceptionStatus,
    L::ExceptionClass,
    L::ModelId,
];
const KEY_BUDGET: &[L] = &[L::HashedApiKey, L::ApiKeyAlias];
const TEAM_BUDGET: &[L] = &[L::Team, L::TeamAlias];
const USER_BUDGET: &[L] = &[L::User];

/// A label: its name in LiteLLM's exposition, and which fact it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L {
    EndUser,
    HashedApiKey,
    ApiKeyAlias,
    Team,
    TeamAlias,
    User,
    UserEmail,
    RequestedModel,
    Model,
    ModelGroup,
    LitellmModelName,
    ModelId,
    ApiBase,
    ApiProvider,
    StatusCode,
    ExceptionStatus,
    ExceptionClass,
    FallbackModel,
    // Not known to the gateway: always "".
    ClientIp,
    UserAgent,
    Route,
    ServiceTier,
}

impl L {
    fn name(self) -> &'static str {
        match self {
            L::EndUser => "end_user",
            L::HashedApiKey => "hashed_api_key",
            L::ApiKeyAlias => "api_key_alias",
            L::Team => "team",
            L::TeamAlias => "team_alias",
            L::User => "user",
            L::UserEmail => "user_email",
            L::RequestedModel => "requested_model",
            L::Model => "model",
            L::ModelGroup => "model_group",
            L::LitellmModelName => "litellm_model_name",
            L::ModelId => "model_id",
            L::ApiBase => "api_base",
            L::ApiProvider => "api_provider",
            L::StatusCode => "status_code",
            L::ExceptionStatus => "exception_status",
            L::ExceptionClass => "exception_class",
            L::FallbackModel => "fallback_model",
            L::ClientIp => "client_ip",
            L::UserAgent => "user_agent",
            L::Route => "route",
            L::ServiceTier => "service_tier",
        }
    }
}

/// The facts a label set is drawn from; a label the gateway does not know reads as `""`.
#[derive(Default, Clone, Copy)]
struct Facts<'a> {
    end_user: &'a str,
    hashed_api_key: &'a str,
    api_key_alias: &'a str,
    team: &'a str,
    team_alias: &'a str,
    user: &'a str,
    user_email: &'a str,
    requested_model: &'a str,
    model: &'a str,
    model_group: &'a str,
    litellm_model_name: &'a str,
    model_id: &'a str,
    api_base: &'a str,
    api_provider: &'a str,
    status_code: &'a str,
    exception_status: &'a str,
    exception_class: &'a str,
    fallback_model: &'a str,
}

impl<'a> Facts<'a> {
    fn get(&self, label: L) -> &'a str {
        match label {
            L::EndUser => self.end_user,
            L::HashedApiKey => self.hashed_api_key,
            L::ApiKeyAlias => self.api_key_alias,
            L::Team => self.team,
            L::TeamAlias => self.team_alias,
            L::User => self.user,
            L::UserEmail => self.user_email,
            L::RequestedModel => self.requested_model,
            L::Model => self.model,
            L::ModelGroup => self.model_group,
            L::LitellmModelName => self.litellm_model_name,
            L::ModelId => self.model_id,
            L::ApiBase => self.api_base,
            L::ApiProvider => self.api_provider,
            L::StatusCode => self.status_code,
            L::ExceptionStatus => self.exception_status,
            L::ExceptionClass => self.exception_class,
            L::FallbackModel => self.fallback_model,
            L::ClientIp | L::UserAgent | L::Route | L::ServiceTier => "",
        }
    }

    fn labels(&self, names: &[L]) -> Labels {
        names
            .iter()
            .map(|n| (n.name(), self.get(*n).to_string()))
            .collect()
    }

    /// A hash of the values of `names` (the names are the family's, so they need no hashing).
    fn hash(&self, names: &[L]) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = foldhash::fast::FixedState::with_seed(0).build_hasher();
        for n in names {
            let v = self.get(*n);
            h.write(v.as_bytes());
            h.write_u8(0xff);
        }
        h.finish()
    }

    /// The values of `names`, joined (see [`Joined`]).
    fn joined(&self, names: &[L]) -> Joined {
        let mut out = Vec::with_capacity(names.iter().map(|n| self.get(*n).len() + 1).sum());
        for n in names {
            out.extend_from_slice(self.get(*n).as_bytes());
            out.push(0xff);
        }
        out.into_boxed_slice()
    }

    /// Whether `joined` (built from `names`) holds exactly these facts.
    fn matches(&self, names: &[L], joined: &[u8]) -> bool {
        let mut rest = joined;
        for n in names {
            let v = self.get(*n).as_bytes();
            match rest.get(..=v.len()) {
                Some([value @ .., 0xff]) if value == v => rest = &rest[v.len() + 1..],
                _ => return false,
            }
        }
        rest.is_empty()
    }
}

/// A label set's values, each followed by 0xff (a byte UTF-8 never holds): an index entry is
/// compared with a request's facts in one pass over one allocation. Compared label by label, a
/// `String` each, the lookups missed the cache once per label: under load that was 2 µs a request
/// (docs/BENCHMARKS.md, "Spans and callback payloads encoded when the request ends").
type Joined = Box<[u8]>;

/// One metric family with at most `cap` label sets.
///
/// The family's own lookup needs an owned label vector (a `String` per label, hashed with SipHash)
/// for every update; with LiteLLM's 10–14 labels per family and a dozen families per request,
/// that was most of what the metrics cost. So each family also keeps an index of the series it
/// made, by a fast hash of the label values: an update hashes borrowed strings, compares them
/// with the stored ones, and adds to the series it already holds; nothing is allocated. Only a
/// new label set (and one folded into `"other"`) goes through the family.
struct Capped<M, C: MetricConstructor<M>> {
    family: Family<Labels, M, C>,
    names: &'static [L],
    other: Labels,
    cap: usize,
    /// Label sets created (the `"other"` one aside); the lock serializes creations so the cap
    /// holds exactly.
    creating: Mutex<usize>,
    /// `tollgate_metrics_series_folded_total{metric=<this family>}`.
    folded: Counter,
    /// The series made so far (never the `"other"` one); at most `cap`.
    index: LabelIndex<M>,
}

/// Entries by their label values: a hash of the values picks a bucket (entries whose values
/// collide share it), and the values, joined, tell a bucket's entries apart.
struct LabelIndex<T> {
    held: RwLock<Held<T>>,
}

struct Held<T> {
    buckets: HashMap<u64, Vec<(Joined, T)>, NoHash>,
    len: usize,
}

impl<T: Clone> LabelIndex<T> {
    fn new() -> Self {
        Self {
            held: RwLock::new(Held {
                buckets: HashMap::default(),
                len: 0,
            }),
        }
    }

    /// The entry for the values of `facts`' labels `names`, if held.
    fn get(&self, facts: &Facts, names: &[L]) -> Option<T> {
        let held = self.held.read().unwrap_or_else(|p| p.into_inner());
        held.buckets
            .get(&facts.hash(names))
            .and_then(|bucket| bucket.iter().find(|(j, _)| facts.matches(names, j)))
            .map(|(_, value)| value.clone())
    }

    /// Hold `value` for the values of `facts`' labels `names`, unless an entry has them already or
    /// `cap` entries are held.
    fn insert(&self, facts: &Facts, names: &[L], value: T, cap: usize) {
        let mut held = self.held.write().unwrap_or_else(|p| p.into_inner());
        if held.len >= cap {
            return;
        }
        let bucket = held.buckets.entry(facts.hash(names)).or_default();
        if !bucket.iter().any(|(j, _)| facts.matches(names, j)) {
            bucket.push((facts.joined(names), value));
            held.len += 1;
        }
    }
}

/// The index's keys are hashes already.
#[derive(Default, Clone, Copy)]
struct NoHash;

impl std::hash::BuildHasher for NoHash {
    type Hasher = NoHasher;
    fn build_hasher(&self) -> NoHasher {
        NoHasher(0)
    }
}

#[derive(Default)]
struct NoHasher(u64);

impl std::hash::Hasher for NoHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl<M, C> Capped<M, C>
where
    M: Clone + TypedMetric + Metric,
    C: MetricConstructor<M> + Clone + Send + Sync + std::fmt::Debug + 'static,
{
    fn new(names: &'static [L], constructor: C, cap: usize, folded: Counter) -> Self {
        Self {
            family: Family::new_with_constructor(constructor),
            names,
            other: names
                .iter()
                .map(|n| (n.name(), "other".to_string()))
                .collect(),
            cap,
            creating: Mutex::new(0),
            folded,
            index: LabelIndex::new(),
        }
    }

    /// Apply `f` to the series of `facts`' label set, or to the `"other"` series when the family
    /// is full.
    fn with(&self, facts: &Facts, f: impl FnOnce(&M)) {
        match self.resolve(facts) {
            Some(m) => f(&m),
            None => {
                self.folded.inc();
                f(&self.family.get_or_create(&self.other));
            }
        }
    }

    /// The series of `facts`' label set (a handle sharing its value), made if need be; `None`
    /// when the family is full and the label set is new (it counts in `"other"`).
    fn resolve(&self, facts: &Facts) -> Option<M> {
        if let Some(m) = self.index.get(facts, self.names) {
            return Some(m);
        }
        let labels = facts.labels(self.names);
        let mut created = self.creating.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = self.family.get(&labels) {
            // Made by another thread between the two looks; the index has it now.
            return Some(m.clone());
        }
        // The "other" series takes one slot of the cap, so the family never exceeds it.
        if *created + 1 >= self.cap {
            return None;
        }
        *created += 1;
        let m = self.family.get_or_create(&labels).clone();
        // The creation count holds the cap.
        self.index.insert(facts, self.names, m.clone(), usize::MAX);
        Some(m)
    }
}

/// The labels that decide every series a successful request counts in (the union of the label
/// names of those families).
const SUCCESS_KEY: &[L] = &[
    L::EndUser,
    L::HashedApiKey,
    L::ApiKeyAlias,
    L::RequestedModel,
    L::Team,
    L::TeamAlias,
    L::User,
    L::StatusCode,
    L::UserEmail,
    L::Model,
    L::ModelGroup,
    L::ModelId,
    L::ApiProvider,
];

/// The labels that decide every series a complete (not streamed) successful attempt counts in.
const ATTEMPT_KEY: &[L] = &[
    L::ModelGroup,
    L::RequestedModel,
    L::LitellmModelName,
    L::ModelId,
    L::ApiBase,
    L::ApiProvider,
    L::HashedApiKey,
    L::ApiKeyAlias,
    L::Team,
    L::TeamAlias,
    L::Model,
    L::EndUser,
    L::User,
];

/// Series of several families resolved together once per label set (the values of `key`'s
/// labels), so that a request hashes its labels once, not once per family. At most `cap` bundles
/// are kept; label sets beyond that take the per-family path.
struct Bundles<S> {
    key: &'static [L],
    index: LabelIndex<Arc<S>>,
}

impl<S> Bundles<S> {
    fn new(key: &'static [L]) -> Self {
        Self {
            key,
            index: LabelIndex::new(),
        }
    }

    /// The bundle of `facts`' label set, made by `make` if need be (`None` when a family is full).
    fn get(&self, facts: &Facts, cap: usize, make: impl FnOnce() -> Option<S>) -> Option<Arc<S>> {
        if let Some(bundle) = self.index.get(facts, self.key) {
            return Some(bundle);
        }
        let bundle = Arc::new(make()?);
        self.index.insert(facts, self.key, bundle.clone(), cap);
        Some(bundle)
    }
}

/// The series a complete successful attempt counts in.
struct AttemptSeries {
    total: Counter,
    success: Counter,
    llm_latency: Histogram,
    overhead: Histogram,
}

/// The series a successful request counts in.
struct SuccessSeries {
    proxy_total: Counter,
    requests: Counter,
    input_tokens: Counter,
    output_tokens: Counter,
    total_tokens: Counter,
    latency: Histogram,
    spend: FloatCounter,
}

type CounterFamily = Capped<Counter, fn() -> Counter>;
type FloatCounterFamily = Capped<FloatCounter, fn() -> FloatCounter>;
type HistogramFamily = Capped<Histogram, fn() -> Histogram>;
type GaugeFamily = Capped<Gauge, fn() -> Gauge>;
type FloatGaugeFamily = Capped<FloatGauge, fn() -> FloatGauge>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Every LiteLLM series that must persist between scrapes.
pub struct Metrics {
    folded: Family<Labels, Counter>,
    proxy_total: CounterFamily,
    proxy_failed: CounterFamily,
    requests: CounterFamily,
    spend: FloatCounterFamily,
    input_tokens: CounterFamily,
    output_tokens: CounterFamily,
    total_tokens: CounterFamily,
    request_latency: HistogramFamily,
    llm_latency: HistogramFamily,
    time_to_first_token: HistogramFamily,
    overhead: HistogramFamily,
    deployment_success: CounterFamily,
    deployment_failure: CounterFamily,
    deployment_total: CounterFamily,
    fallback_success: CounterFamily,
    fallback_failure: CounterFamily,
    remaining_key_budget: FloatGaugeFamily,
    remaining_team_budget: FloatGaugeFamily,
    remaining_user_budget: FloatGaugeFamily,
    remaining_requests: GaugeFamily,
    remaining_tokens: GaugeFamily,
    /// [`SuccessSeries`] by the values of [`SUCCESS_KEY`].
    success: Bundles<SuccessSeries>,
    /// [`AttemptSeries`] by the values of [`ATTEMPT_KEY`].
    attempts: Bundles<AttemptSeries>,
    cap: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::with_cap(MAX_SERIES)
    }
}

impl Metrics {
    /// Metrics whose families hold at most `cap` label sets each.
    pub fn with_cap(cap: usize) -> Self {
        let folded = Family::<Labels, Counter>::default();
        let fold = |metric: &'static str| {
            folded
                .get_or_create(&vec![("metric", metric.to_string())])
                .clone()
        };
        let counter =
            |names, metric| Capped::new(names, Counter::default as fn() -> _, cap, fold(metric));
        let float_counter = |names, metric| {
            Capped::new(names, FloatCounter::default as fn() -> _, cap, fold(metric))
        };
        let histogram =
            |names, metric| Capped::new(names, latency_histogram as fn() -> _, cap, fold(metric));
        let gauge =
            |names, metric| Capped::new(names, Gauge::default as fn() -> _, cap, fold(metric));
        let float_gauge =
            |names, metric| Capped::new(names, FloatGauge::default as fn() -> _, cap, fold(metric));
        Self {
            proxy_total: counter(PROXY_TOTAL, "litellm_proxy_total_requests_metric"),
            proxy_failed: counter(PROXY_FAILED, "litellm_proxy_failed_requests_metric"),
            requests: counter(REQUESTS, "litellm_requests_metric"),
            spend: float_counter(SPEND, "litellm_spend_metric"),
            input_tokens: counter(TOKENS, "litellm_input_tokens_metric"),
            output_tokens: counter(TOKENS, "litellm_output_tokens_metric"),
            total_tokens: counter(TOKENS, "litellm_total_tokens_metric"),
            request_latency: histogram(TOTAL_LATENCY, "litellm_request_total_latency_metric"),
            llm_latency: histogram(LLM_LATENCY, "litellm_llm_api_latency_metric"),
            time_to_first_token: histogram(
                LLM_LATENCY,
                "litellm_llm_api_time_to_first_token_metric",
            ),
            overhead: histogram(DEPLOYMENT_KEYED, "litellm_overhead_latency_metric"),
            deployment_success: counter(DEPLOYMENT_TOTAL, "litellm_deployment_success_responses"),
            deployment_failure: counter(DEPLOYMENT_FAILURE, "litellm_deployment_failure_responses"),
            deployment_total: counter(DEPLOYMENT_TOTAL, "litellm_deployment_total_requests"),
            fallback_success: counter(FALLBACK, "litellm_deployment_successful_fallbacks"),
            fallback_failure: counter(FALLBACK, "litellm_deployment_failed_fallbacks"),
            remaining_key_budget: float_gauge(
                KEY_BUDGET,
                "litellm_remaining_api_key_budget_metric",
            ),
            remaining_team_budget: float_gauge(TEAM_BUDGET, "litellm_remaining_team_budget_metric"),
            remaining_user_budget: float_gauge(USER_BUDGET, "litellm_remaining_user_budget_metric"),
            remaining_requests: gauge(DEPLOYMENT_KEYED, "litellm_remaining_requests_metric"),
            remaining_tokens: gauge(DEPLOYMENT_KEYED, "litellm_remaining_tokens_metric"),
            folded,
            success: Bundles::new(SUCCESS_KEY),
            attempts: Bundles::new(ATTEMPT_KEY),
            cap,
        }
    }

    /// Register every family (by clone: the series live on) in a scrape's registry.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry;
        r.register(
            "litellm_proxy_total_requests_metric",
            "Requests the proxy answered, by status code",
            self.proxy_total.family.clone(),
        );
        r.register(
            "litellm_proxy_failed_requests_metric",
            "Requests the client got an error for",
            self.proxy_failed.family.clone(),
        );
        r.register(
            "litellm_requests_metric",
            "LLM requests per key, user, team, end user and model",
            self.requests.family.clone(),
        );
        r.register(
            "litellm_spend_metric",
            "Spend (USD) per key, user, team, end user and model",
            self.spend.family.clone(),
        );
        r.register(
            "litellm_input_tokens_metric",
            "Prompt tokens",
            self.input_tokens.family.clone(),
        );
        r.register(
            "litellm_output_tokens_metric",
            "Completion tokens",
            self.output_tokens.family.clone(),
        );
        r.register(
            "litellm_total_tokens_metric",
            "Prompt and completion tokens",
            self.total_tokens.family.clone(),
        );
        r.register(
            "litellm_request_total_latency_metric",
            "Seconds from the request's arrival to its end",
            self.request_latency.family.clone(),
        );
        r.register(
            "litellm_llm_api_latency_metric",
            "Seconds of the provider call that answered",
            self.llm_latency.family.clone(),
        );
        r.register(
            "litellm_llm_api_time_to_first_token_metric",
            "Seconds from the provider call to a stream's first bytes",
            self.time_to_first_token.family.clone(),
        );
        r.register(
            "litellm_overhead_latency_metric",
            "Seconds of a complete response spent in the gateway, not at the provider",
            self.overhead.family.clone(),
        );
        r.register(
            "litellm_deployment_success_responses",
            "Attempts a deployment answered",
            self.deployment_success.family.clone(),
        );
        r.register(
            "litellm_deployment_failure_responses",
            "Attempts a deployment failed",
            self.deployment_failure.family.clone(),
        );
        r.register(
            "litellm_deployment_total_requests",
            "Attempts sent to a deployment",
            self.deployment_total.family.clone(),
        );
        r.register(
            "litellm_deployment_successful_fallbacks",
            "Fallbacks that answered",
            self.fallback_success.family.clone(),
        );
        r.register(
            "litellm_deployment_failed_fallbacks",
            "Fallbacks that failed",
            self.fallback_failure.family.clone(),
        );
        r.register(
            "litellm_remaining_api_key_budget_metric",
            "A key's max_budget minus its spend (+Inf without a budget)",
            self.remaining_key_budget.family.clone(),
        );
        r.register(
            "litellm_remaining_team_budget_metric",
            "A team's max_budget minus its spend (+Inf without a budget)",
            self.remaining_team_budget.family.clone(),
        );
        r.register(
            "litellm_remaining_user_budget_metric",
            "A user's max_budget minus its spend (+Inf without a budget)",
            self.remaining_user_budget.family.clone(),
        );
        r.register(
            "litellm_remaining_requests_metric",
            "Requests left this minute under the deployment's rpm",
            self.remaining_requests.family.clone(),
        );
        r.register(
            "litellm_remaining_tokens_metric",
            "Tokens left this minute under the deployment's tpm",
            self.remaining_tokens.family.clone(),
        );
        r.register(
            "tollgate_metrics_series_folded",
            "Label sets counted in a family's \"other\" series because the family was full",
            self.folded.clone(),
        );
    }
}

/// The client-facing error class, LiteLLM's `exception_class` label: `Provider.ClassName`
/// (`Openai.RateLimitError`) when a provider failed, else the class alone.
pub(crate) fn exception_class(provider: &str, class: &str) -> String {
    let mut chars = provider.chars();
    match chars.next() {
        Some(first) => format!("{}{}.{class}", first.to_uppercase(), chars.as_str()),
        None => class.to_string(),
    }
}

/// LiteLLM's exception class for a client-facing status, when the error itself is not at hand.
pub(crate) fn class_for_status(status: u16) -> &'static str {
    match status {
        400 | 413 => "BadRequestError",
        401 => "AuthenticationError",
        403 => "PermissionDeniedError",
        404 => "NotFoundError",
        408 => "Timeout",
        422 => "UnprocessableEntityError",
        429 => "RateLimitError",
        503 => "ServiceUnavailableError",
        500..=599 => "InternalServerError",
        _ => "APIError",
    }
}

fn error_class(err: &GatewayError) -> &'static str {
    use actix_web::ResponseError;
    err.classify(false)
        .map(|c| c.class_name)
        .unwrap_or_else(|| class_for_status(err.status_code().as_u16()))
}

impl Observer for Metrics {
    fn request_finished(&self, event: &Arc<RequestEvent>) {
        let log = &event.log;
        let status = event.status_code.to_string();
        let provider = event.provider.as_deref().unwrap_or_default();
        let class = (!event.succeeded())
            .then(|| exception_class(provider, class_for_status(event.status_code)));
        let facts = Facts {
            end_user: log.end_user.as_deref().unwrap_or_default(),
            hashed_api_key: &log.api_key,
            api_key_alias: event.key_alias.as_deref().unwrap_or_default(),
            team: log.team_id.as_deref().unwrap_or_default(),
            team_alias: event.team_alias.as_deref().unwrap_or_default(),
            user: log.user_id.as_deref().unwrap_or_default(),
            user_email: event.user_email.as_deref().unwrap_or_default(),
            requested_model: &event.requested_model,
            model: &log.model,
            model_group: log.model_group.as_deref().unwrap_or_default(),
            model_id: log.model_id.as_deref().unwrap_or_default(),
            api_base: log.api_base.as_deref().unwrap_or_default(),
            api_provider: provider,
            status_code: &status,
            exception_status: &status,
            exception_class: class.as_deref().unwrap_or_default(),
            ..Facts::default()
        };
        if event.succeeded() {
            if let Some(series) = self.success_series(&facts) {
                series.proxy_total.inc();
                series.requests.inc();
                series.input_tokens.inc_by(log.prompt_tokens.max(0) as u64);
                series
                    .output_tokens
                    .inc_by(log.completion_tokens.max(0) as u64);
                series.total_tokens.inc_by(log.total_tokens.max(0) as u64);
                series.latency.observe(event.duration_ms() as f64 / 1000.0);
                if log.spend > 0.0 && log.spend.is_finite() {
                    series.spend.inc_by(log.spend);
                }
                self.remaining_budgets(event, &facts);
                return;
            }
        }
        self.proxy_total.with(&facts, |c| {
            c.inc();
        });
        if !event.succeeded() {
            self.proxy_failed.with(&facts, |c| {
                c.inc();
            });
        }
        if event.succeeded() {
            self.requests.with(&facts, |c| {
                c.inc();
            });
            let (input, output, total) = (
                log.prompt_tokens.max(0) as u64,
                log.completion_tokens.max(0) as u64,
                log.total_tokens.max(0) as u64,
            );
            self.input_tokens.with(&facts, |c| {
                c.inc_by(input);
            });
            self.output_tokens.with(&facts, |c| {
                c.inc_by(output);
            });
            self.total_tokens.with(&facts, |c| {
                c.inc_by(total);
            });
            self.request_latency
                .with(&facts, |h| h.observe(event.duration_ms() as f64 / 1000.0));
        }
        if log.spend > 0.0 && log.spend.is_finite() {
            self.spend.with(&facts, |c| {
                c.inc_by(log.spend);
            });
        }
        self.remaining_budgets(event, &facts);
    }
}

impl Metrics {
    /// The [`SuccessSeries`] of `facts`, made if need be; `None` when a family is full (the
    /// request then counts family by family, in `"other"` where it must).
    fn success_series(&self, facts: &Facts) -> Option<Arc<SuccessSeries>> {
        self.success.get(facts, self.cap, || {
            Some(SuccessSeries {
                proxy_total: self.proxy_total.resolve(facts)?,
                requests: self.requests.resolve(facts)?,
                input_tokens: self.input_tokens.resolve(facts)?,
                output_tokens: self.output_tokens.resolve(facts)?,
                total_tokens: self.total_tokens.resolve(facts)?,
                latency: self.request_latency.resolve(facts)?,
                spend: self.spend.resolve(facts)?,
            })
        })
    }

    fn attempt_series(&self, facts: &Facts) -> Option<Arc<AttemptSeries>> {
        self.attempts.get(facts, self.cap, || {
            Some(AttemptSeries {
                total: self.deployment_total.resolve(facts)?,
                success: self.deployment_success.resolve(facts)?,
                llm_latency: self.llm_latency.resolve(facts)?,
                overhead: self.overhead.resolve(facts)?,
            })
        })
    }

    fn remaining_budgets(&self, event: &RequestEvent, facts: &Facts) {
        let budgets = &event.remaining_budget;
        if let Some(v) = budgets.key {
            self.remaining_key_budget.with(facts, |g| {
                g.set(v);
            });
        }
        if let Some(v) = budgets.team {
            self.remaining_team_budget.with(facts, |g| {
                g.set(v);
            });
        }
        if let Some(v) = budgets.user {
            self.remaining_user_budget.with(facts, |g| {
                g.set(v);
            });
        }
    }
}

/// Who made a request, as the per-attempt metrics label it.
#[derive(Clone, Copy)]
pub struct Who<'a> {
    pub hashed_api_key: &'a str,
    pub api_key_alias: &'a str,
    pub team: &'a str,
    pub team_alias: &'a str,
    pub user: &'a str,
    pub end_user: &'a str,
    pub requested_model: &'a str,
}

/// The metrics of one request: what the pipeline counts per attempt and per fallback.
pub struct Scope<'a> {
    pub metrics: &'a Metrics,
    pub who: Who<'a>,
}

/// How one attempt on a deployment ended.
pub enum AttemptEnd<'a> {
    /// A complete response, `latency` after the provider call started, `elapsed` after the
    /// request arrived.
    Complete {
        latency: Duration,
        elapsed: Duration,
    },
    /// A stream ended: its time to first token, the time since the request arrived, and whether
    /// it broke (a provider error after it started).
    Stream {
        time_to_first_token: Duration,
        elapsed: Duration,
        broke: bool,
    },
    /// The provider call failed.
    Failed(&'a GatewayError),
}

impl Scope<'_> {
    fn facts<'b>(&'b self, served: &'b Served) -> Facts<'b> {
        let w = &self.who;
        Facts {
            end_user: w.end_user,
            hashed_api_key: w.hashed_api_key,
            api_key_alias: w.api_key_alias,
            team: w.team,
            team_alias: w.team_alias,
            user: w.user,
            requested_model: w.requested_model,
            model: &served.model,
            model_group: served.model_group.as_deref().unwrap_or_default(),
            litellm_model_name: &served.model,
            model_id: served.model_id.as_deref().unwrap_or_default(),
            api_base: served.api_base.as_deref().unwrap_or_default(),
            api_provider: served.provider.as_deref().unwrap_or_default(),
            ..Facts::default()
        }
    }

    /// One attempt on `deployment` ended.
    pub fn attempt(
        &self,
        deployment: &DeploymentHandle<Deployment>,
        served: &Served,
        end: AttemptEnd,
    ) {
        let m = self.metrics;
        let mut facts = self.facts(served);
        if let AttemptEnd::Complete { latency, elapsed } = end {
            if let Some(series) = m.attempt_series(&facts) {
                series.total.inc();
                series.success.inc();
                series.llm_latency.observe(latency.as_secs_f64());
                series
                    .overhead
                    .observe(elapsed.saturating_sub(latency).as_secs_f64());
                self.remaining_limits(deployment, &facts);
                return;
            }
        }
        m.deployment_total.with(&facts, |c| {
            c.inc();
        });
        let failure = match &end {
            AttemptEnd::Failed(err) => {
                use actix_web::ResponseError;
                Some((err.status_code().as_u16(), error_class(err)))
            }
            AttemptEnd::Stream { broke: true, .. } => Some((0, "APIConnectionError")),
            _ => None,
        };
        if let Some((status, class)) = failure {
            let status = if status == 0 {
                String::new()
            } else {
                status.to_string()
            };
            let class = exception_class(facts.api_provider, class);
            facts.exception_status = &status;
            facts.exception_class = &class;
            m.deployment_failure.with(&facts, |c| {
                c.inc();
            });
            return;
        }
        m.deployment_success.with(&facts, |c| {
            c.inc();
        });
        match end {
            AttemptEnd::Complete { latency, elapsed } => {
                m.llm_latency
                    .with(&facts, |h| h.observe(latency.as_secs_f64()));
                m.overhead.with(&facts, |h| {
                    h.observe(elapsed.saturating_sub(latency).as_secs_f64())
                });
            }
            AttemptEnd::Stream {
                time_to_first_token,
                elapsed,
                ..
            } => {
                m.llm_latency
                    .with(&facts, |h| h.observe(elapsed.as_secs_f64()));
                m.time_to_first_token
                    .with(&facts, |h| h.observe(time_to_first_token.as_secs_f64()));
            }
            AttemptEnd::Failed(_) => {}
        }
        self.remaining_limits(deployment, &facts);
    }

    /// The deployment's remaining requests and tokens this minute, when it has limits.
    fn remaining_limits(&self, deployment: &DeploymentHandle<Deployment>, facts: &Facts) {
        let m = self.metrics;
        let d = &deployment.upstream;
        if d.rpm.is_some() || d.tpm.is_some() {
            let (requests, tokens) = deployment.state.minute_usage(tollgate_actors::now_ms());
            let left =
                |limit: u64, used: u64| limit.saturating_sub(used).min(i64::MAX as u64) as i64;
            if let Some(rpm) = d.rpm {
                m.remaining_requests.with(facts, |g| {
                    g.set(left(rpm, requests));
                });
            }
            if let Some(tpm) = d.tpm {
                m.remaining_tokens.with(facts, |g| {
                    g.set(left(tpm, tokens));
                });
            }
        }
    }

    /// A fallback to `fallback_model` after `cause` (the requested model's error) answered
    /// (`succeeded`) or failed; `model_id`: the deployment that answered or failed last.
    pub fn fallback(
        &self,
        fallback_model: &str,
        cause: &GatewayError,
        model_id: Option<&str>,
        succeeded: bool,
    ) {
        use actix_web::ResponseError;
        let status = cause.status_code().as_u16().to_string();
        let class = error_class(cause);
        let facts = Facts {
            requested_model: self.who.requested_model,
            fallback_model,
            hashed_api_key: self.who.hashed_api_key,
            api_key_alias: self.who.api_key_alias,
            team: self.who.team,
            team_alias: self.who.team_alias,
            exception_status: &status,
            exception_class: class,
            model_id: model_id.unwrap_or_default(),
            ..Facts::default()
        };
        let family = if succeeded {
            &self.metrics.fallback_success
        } else {
            &self.metrics.fallback_failure
        };
        family.with(&facts, |c| {
            c.inc();
        });
    }
}

/// A request's budgets as loaded with its key: `(max_budget, spend)` of its key, user and team.
#[derive(Debug, Default, Clone, Copy)]
pub struct BudgetsAtStart {
    key: Option<(Option<f64>, f64)>,
    user: Option<(Option<f64>, f64)>,
    team: Option<(Option<f64>, f64)>,
}

/// What is left of a request's budgets after it; `Some(+Inf)` for an entity without
/// `max_budget`, `None` when the request has no such entity.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct RemainingBudgets {
    pub key: Option<f64>,
    pub team: Option<f64>,
    pub user: Option<f64>,
}

impl BudgetsAtStart {
    pub fn of(caller: &crate::auth::Caller) -> Self {
        use crate::keys::Fields;
        let Some(p) = caller.principal() else {
            return Self::default();
        };
        Self {
            key: Some((p.key.number("max_budget"), p.key.spend)),
            user: p.user.as_ref().map(|u| (u.number("max_budget"), u.spend)),
            team: p.team.as_ref().map(|t| (t.number("max_budget"), t.spend)),
        }
    }

    /// The budgets left, counting the spend this instance has not written yet (`pending(kind,
    /// id)`, this request's included). Ids: the key's hash, its user and team.
    pub fn remaining(
        &self,
        pending: impl Fn(&str, &str) -> f64,
        key: &str,
        user: Option<&str>,
        team: Option<&str>,
    ) -> RemainingBudgets {
        let left = |b: Option<(Option<f64>, f64)>, kind: &str, id: Option<&str>| {
            let (max, stored) = b?;
            let id = id?;
            Some(max.map_or(f64::INFINITY, |max| max - stored - pending(kind, id)))
        };
        RemainingBudgets {
            key: left(self.key, "key", Some(key).filter(|k| !k.is_empty())),
            user: left(self.user, "user", user),
            team: left(self.team, "team", team),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SpendLog;
    use prometheus_client::encoding::text::encode;

    fn event(key: &str, spend: f64, status: u16) -> Arc<RequestEvent> {
        Arc::new(RequestEvent {
            log: SpendLog {
                request_id: "call".into(),
                api_key: key.into(),
                spend,
                prompt_tokens: 3,
                completion_tokens: 4,
                total_tokens: 7,
                start_time: 0,
                end_time: 1_500,
                model: "gpt-4o".into(),
                model_id: Some("dep-1".into()),
                model_group: Some("gpt".into()),
                status: if status == 200 { "success" } else { "failure" }.into(),
                ..SpendLog::default()
            },
            requested_model: "gpt".into(),
            key_alias: Some("alias".into()),
            team_alias: None,
            provider: Some("openai".into()),
            status_code: status,
            error: (status != 200).then(|| "boom".into()),
            time_to_first_token_ms: None,
            user_email: None,
            remaining_budget: RemainingBudgets {
                key: Some(2.5),
                ..RemainingBudgets::default()
            },
        })
    }

    fn scrape(m: &Metrics) -> String {
        let mut registry = Registry::default();
        m.register(&mut registry);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        text
    }

    fn line<'a>(text: &'a str, prefix: &str, needle: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(prefix) && l.contains(needle))
            .unwrap_or_else(|| panic!("no {prefix} with {needle} in\n{text}"))
    }

    #[test]
    fn a_request_counts_tokens_spend_and_latency_under_its_key_hash() {
        let m = Metrics::default();
        m.request_finished(&event("hash-a", 0.25, 200));
        m.request_finished(&event("hash-a", 0.25, 200));
        m.request_finished(&event("hash-a", 0.0, 429));
        let text = scrape(&m);
        let total = line(
            &text,
            "litellm_proxy_total_requests_metric_total{",
            "status_code=\"200\"",
        );
        assert!(total.ends_with(" 2"), "{total}");
        assert!(total.contains("hashed_api_key=\"hash-a\""), "{total}");
        assert!(total.contains("api_key_alias=\"alias\""), "{total}");
        assert!(total.contains("client_ip=\"\""), "{total}");
        let failed = line(
            &text,
            "litellm_proxy_failed_requests_metric_total{",
            "hash-a",
        );
        assert!(failed.contains("exception_status=\"429\""), "{failed}");
        assert!(
            failed.contains("exception_class=\"Openai.RateLimitError\""),
            "{failed}"
        );
        assert!(failed.ends_with(" 1"), "{failed}");
        assert!(line(&text, "litellm_requests_metric_total{", "hash-a").ends_with(" 2"));
        assert!(line(&text, "litellm_input_tokens_metric_total{", "hash-a").ends_with(" 6"));
        assert!(line(&text, "litellm_output_tokens_metric_total{", "hash-a").ends_with(" 8"));
        assert!(line(&text, "litellm_total_tokens_metric_total{", "hash-a").ends_with(" 14"));
        assert!(line(&text, "litellm_spend_metric_total{", "hash-a").ends_with(" 0.5"));
        assert!(line(
            &text,
            "litellm_request_total_latency_metric_count{",
            "hash-a"
        )
        .ends_with(" 2"));
        assert!(line(
            &text,
            "litellm_request_total_latency_metric_bucket{",
            "le=\"1.5\""
        )
        .ends_with(" 2"));
        assert!(line(
            &text,
            "litellm_request_total_latency_metric_bucket{",
            "le=\"1.0\""
        )
        .ends_with(" 0"));
        let budget = line(&text, "litellm_remaining_api_key_budget_metric{", "hash-a");
        assert!(budget.ends_with(" 2.5"), "{budget}");
    }

    #[test]
    fn a_full_family_folds_new_label_sets_into_other() {
        let m = Metrics::with_cap(3);
        for key in ["k1", "k2", "k3", "k4", "k5"] {
            m.request_finished(&event(key, 0.0, 200));
        }
        m.request_finished(&event("k1", 0.0, 200));
        let text = scrape(&m);
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("litellm_requests_metric_total{"))
            .collect();
        // Two real label sets and the "other" one: the cap counts the "other" series.
        assert_eq!(series.len(), 3, "{series:?}");
        assert!(line(
            &text,
            "litellm_requests_metric_total{",
            "hashed_api_key=\"k1\""
        )
        .ends_with(" 2"));
        assert!(line(
            &text,
            "litellm_requests_metric_total{",
            "hashed_api_key=\"k2\""
        )
        .ends_with(" 1"));
        let other = line(
            &text,
            "litellm_requests_metric_total{",
            "hashed_api_key=\"other\"",
        );
        assert!(other.contains("model=\"other\""), "{other}");
        assert!(other.ends_with(" 3"), "{other}");
        let folded = line(
            &text,
            "tollgate_metrics_series_folded_total{",
            "metric=\"litellm_requests_metric\"",
        );
        assert!(folded.ends_with(" 3"), "{folded}");
    }

    #[test]
    fn remaining_budgets_count_unwritten_spend_and_are_infinite_without_a_budget() {
        let b = BudgetsAtStart {
            key: Some((Some(10.0), 4.0)),
            user: Some((None, 1.0)),
            team: None,
        };
        let pending = |kind: &str, id: &str| match (kind, id) {
            ("key", "h") => 1.5,
            _ => 0.0,
        };
        let r = b.remaining(pending, "h", Some("u"), Some("t"));
        assert_eq!(
            r,
            RemainingBudgets {
                key: Some(4.5),
                user: Some(f64::INFINITY),
                team: None,
            }
        );
    }

    #[test]
    fn joined_label_values_match_only_the_same_values() {
        let names = &[L::Team, L::User];
        let facts = |team, user| Facts {
            team,
            user,
            ..Facts::default()
        };
        let joined = facts("a", "bc").joined(names);
        assert!(facts("a", "bc").matches(names, &joined));
        for (team, user) in [
            ("ab", "c"),
            ("a", "b"),
            ("a", "bcd"),
            ("", "abc"),
            ("a", ""),
        ] {
            assert!(
                !facts(team, user).matches(names, &joined),
                "{team:?} {user:?}"
            );
        }
        let empty = facts("", "").joined(names);
        assert!(facts("", "").matches(names, &empty));
        assert!(!facts("", "x").matches(names, &empty));
        assert!(
            !facts("a", "bc").matches(&[L::Team], &joined),
            "fewer names"
        );
    }

    /// A bundle is found by its key's labels, so the key must hold every label of every family in
    /// it: two label sets differing only outside the key would share one family's series.
    #[test]
    fn a_bundle_key_holds_every_label_of_its_families() {
        // LiteLLM's labels the gateway writes empty (it does not record them): no key needs them.
        const UNRECORDED: &[L] = &[L::ClientIp, L::UserAgent, L::Route, L::ServiceTier];
        let bundles: [(&[L], &[&[L]]); 2] = [
            (
                SUCCESS_KEY,
                &[PROXY_TOTAL, REQUESTS, TOKENS, TOTAL_LATENCY, SPEND],
            ),
            (
                ATTEMPT_KEY,
                &[DEPLOYMENT_TOTAL, LLM_LATENCY, DEPLOYMENT_KEYED],
            ),
        ];
        for (key, families) in bundles {
            for names in families {
                for n in *names {
                    assert!(
                        key.contains(n) || UNRECORDED.contains(n),
                        "{} is missing from a bundle key",
                        n.name()
                    );
                }
            }
        }
    }

    #[test]
    fn exception_classes_carry_the_provider() {
        assert_eq!(
            exception_class("openai", "RateLimitError"),
            "Openai.RateLimitError"
        );
        assert_eq!(exception_class("", "Timeout"), "Timeout");
        assert_eq!(class_for_status(503), "ServiceUnavailableError");
    }
}
