//! Router settings: the routing strategy, retries and retry policies, fallbacks and aliases, read
//! once from `router_settings` / `litellm_settings` and consulted by the pipeline on every attempt.
//!
//! Retry rules (LiteLLM's): a failed attempt is retried when its error class is retryable (408,
//! 409, 429, 5xx, timeouts, broken connections; 401/403 only when the group has another
//! deployment; never 400 or 404), up to `num_retries` (request body, `x-litellm-num-retries`, the
//! deployment, `router_settings`, `litellm_settings`, default 2) unless `retry_policy` /
//! `model_group_retry_policy` sets a number for that error class. The retry goes at once to
//! another healthy deployment; when there is none it waits (exponential backoff from 0.5 s, at most
//! 8 s, or the provider's `retry-after`).
//!
//! Fallbacks run after the group's retries are spent: `context_window_fallbacks` for a context
//! window error, `content_policy_fallbacks` for a content policy error, else the group's entry in
//! `fallbacks` (or its `"*"` entry, or `default_fallbacks`). A client's own `fallbacks` list comes
//! first. At most `max_fallbacks` (default 5) are tried.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value};
use tollgate_actors::RoutingStrategy;

use crate::config::{as_f64, truthy, ProxyConfig};
use crate::error::{GatewayError, Retry, UpstreamErrorKind};

/// Default `num_retries` (LiteLLM's router default, equal to the OpenAI SDK's).
pub const DEFAULT_NUM_RETRIES: u32 = 2;
/// Default `max_fallbacks`.
pub const DEFAULT_MAX_FALLBACKS: usize = 5;
/// Backoff when no other deployment can take the retry.
const BACKOFF_INITIAL: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// A provider asking to wait longer than this is not waited for: the error goes to the client.
const MAX_RETRY_AFTER_WAIT: Duration = Duration::from_secs(60);

/// Error classes as `retry_policy` and `allowed_fails_policy` name them; which class an error
/// falls into is [`GatewayError::classify`]'s decision.
pub use crate::error::ErrorClass;

/// `retry_policy`: retries per error class, with `DefaultRetries` for the rest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetryPolicy {
    by_class: HashMap<ErrorClass, u32>,
    default: Option<u32>,
}

impl RetryPolicy {
    fn parse(value: Option<&Value>) -> Option<Self> {
        let map = value?.as_object()?;
        let mut policy = RetryPolicy::default();
        for (key, v) in map {
            let Some(n) = as_f64(v).filter(|n| *n >= 0.0).map(|n| n.min(100.0) as u32) else {
                continue;
            };
            if key == "DefaultRetries" {
                policy.default = Some(n);
            } else if let Some(class) = ErrorClass::from_policy_key(key, "Retries") {
                policy.by_class.insert(class, n);
            } else {
                tracing::warn!(key, "retry_policy key not recognised; ignored");
            }
        }
        Some(policy)
    }

    fn retries_for(&self, class: ErrorClass) -> Option<u32> {
        self.by_class.get(&class).copied().or(self.default)
    }
}

/// One fallback: a model group, and for the client-side `{"model", "messages", …}` form the
/// fields to replace in the request.
#[derive(Debug, Clone, PartialEq)]
pub struct Fallback {
    pub model: String,
    pub overrides: Map<String, Value>,
}

impl Fallback {
    pub fn to(model: &str) -> Self {
        Self {
            model: model.to_string(),
            overrides: Map::new(),
        }
    }

    /// Parse one entry of a `fallbacks` list: a model name or an object with `model`.
    pub fn parse(value: &Value) -> Option<Self> {
        match value {
            Value::String(s) => Some(Self::to(s)),
            Value::Object(o) => {
                let model = o.get("model")?.as_str()?.to_string();
                let overrides = o
                    .iter()
                    .filter(|(k, _)| *k != "model")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                Some(Self { model, overrides })
            }
            _ => None,
        }
    }
}

/// A request's own fallbacks (body `fallbacks`, `context_window_fallbacks`,
/// `content_policy_fallbacks`), in either of LiteLLM's forms: a list of model names or
/// `{"model", "messages", …}` objects, tried whichever group failed; or the map form the config uses,
/// `[{"model-a": ["model-b"]}]`, tried only when that group (or `"*"`) failed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientFallbacks {
    pub any: Vec<Fallback>,
    pub by_group: HashMap<String, Vec<Fallback>>,
}

impl ClientFallbacks {
    /// Parse a body field; `None` when it is neither form.
    pub fn parse(value: Option<&Value>) -> Option<Self> {
        let mut out = ClientFallbacks::default();
        let items = match value {
            None | Some(Value::Null) => return Some(out),
            Some(Value::Array(items)) => items,
            Some(_) => return None,
        };
        for item in items {
            match item {
                Value::Object(o) if !o.contains_key("model") => {
                    if o.is_empty() {
                        return None;
                    }
                    for (group, targets) in o {
                        let list: Vec<Fallback> = match targets {
                            Value::Array(a) => {
                                a.iter().map(Fallback::parse).collect::<Option<Vec<_>>>()?
                            }
                            other => vec![Fallback::parse(other)?],
                        };
                        out.by_group.entry(group.clone()).or_default().extend(list);
                    }
                }
                other => out.any.push(Fallback::parse(other)?),
            }
        }
        Some(out)
    }

    /// The fallbacks that apply when one of `groups` (the resolved group, the requested name)
    /// failed: its map entry (else the `"*"` entry), then the plain list.
    pub fn for_group(&self, groups: &[&str]) -> Vec<Fallback> {
        let mapped = groups
            .iter()
            .find_map(|g| self.by_group.get(*g))
            .or_else(|| self.by_group.get("*"));
        mapped
            .into_iter()
            .flatten()
            .chain(self.any.iter())
            .cloned()
            .collect()
    }

    /// A request's client-side chain after `groups` failed with `err`: the context-window (or
    /// content-policy) fallbacks first for those errors, then the general ones.
    pub fn chain(
        fallbacks: &ClientFallbacks,
        context_window: &ClientFallbacks,
        content_policy: &ClientFallbacks,
        groups: &[&str],
        err: &GatewayError,
    ) -> Vec<Fallback> {
        let mut out = match err {
            GatewayError::Upstream {
                kind: UpstreamErrorKind::ContextWindowExceeded,
                ..
            } => context_window.for_group(groups),
            GatewayError::Upstream {
                kind: UpstreamErrorKind::ContentPolicy,
                ..
            } => content_policy.for_group(groups),
            _ => Vec::new(),
        };
        out.extend(fallbacks.for_group(groups));
        out
    }
}

/// `fallbacks`-style settings: `[{"group": ["fallback", …]}, …]` (LiteLLM's list of one-key maps)
/// or a plain map.
fn parse_fallback_map(value: Option<&Value>) -> HashMap<String, Vec<Fallback>> {
    let mut out: HashMap<String, Vec<Fallback>> = HashMap::new();
    let mut add = |map: &Map<String, Value>| {
        for (group, targets) in map {
            let list: Vec<Fallback> = match targets {
                Value::Array(a) => a.iter().filter_map(Fallback::parse).collect(),
                other => Fallback::parse(other).into_iter().collect(),
            };
            out.entry(group.clone()).or_default().extend(list);
        }
    };
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_object).for_each(&mut add),
        Some(Value::Object(map)) => add(map),
        _ => {}
    }
    out
}

/// Everything the router needs to decide retries and fallbacks.
#[derive(Debug, Clone)]
pub struct RouterPolicy {
    pub strategy: RoutingStrategy,
    pub num_retries: Option<u32>,
    pub retry_policy: Option<RetryPolicy>,
    pub group_retry_policy: HashMap<String, RetryPolicy>,
    pub fallbacks: HashMap<String, Vec<Fallback>>,
    pub context_window_fallbacks: HashMap<String, Vec<Fallback>>,
    pub content_policy_fallbacks: HashMap<String, Vec<Fallback>>,
    pub default_fallbacks: Vec<Fallback>,
    pub max_fallbacks: usize,
    pub pre_call_checks: bool,
    /// `router_settings.retry_after`: the least time to wait before a retry on the same deployment.
    pub min_retry_after: Duration,
    /// `router_settings.stream_timeout`: the stream timeout for deployments that set none.
    pub stream_timeout: Option<Duration>,
}

impl Default for RouterPolicy {
    fn default() -> Self {
        Self {
            strategy: RoutingStrategy::SimpleShuffle,
            num_retries: None,
            retry_policy: None,
            group_retry_policy: HashMap::new(),
            fallbacks: HashMap::new(),
            context_window_fallbacks: HashMap::new(),
            content_policy_fallbacks: HashMap::new(),
            default_fallbacks: Vec::new(),
            max_fallbacks: DEFAULT_MAX_FALLBACKS,
            pre_call_checks: false,
            min_retry_after: Duration::ZERO,
            stream_timeout: None,
        }
    }
}

impl RouterPolicy {
    pub fn from_config(config: &ProxyConfig) -> Self {
        // LiteLLM reads most router keys from either section; router_settings wins.
        let get = |key: &str| {
            config
                .router_settings
                .get(key)
                .or_else(|| config.litellm_settings.get(key))
                .filter(|v| !v.is_null())
        };
        let strategy = match get("routing_strategy").and_then(Value::as_str) {
            None => RoutingStrategy::SimpleShuffle,
            Some(name) => {
                let buffer = get("routing_strategy_args")
                    .and_then(|a| a.get("lowest_latency_buffer"))
                    .and_then(as_f64);
                RoutingStrategy::parse(name, buffer).unwrap_or_else(|| {
                    tracing::warn!(
                        routing_strategy = name,
                        "routing strategy not supported by this Tollgate version; using simple-shuffle"
                    );
                    RoutingStrategy::SimpleShuffle
                })
            }
        };
        let group_retry_policy = get("model_group_retry_policy")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(g, p)| RetryPolicy::parse(Some(p)).map(|p| (g.clone(), p)))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            strategy,
            num_retries: get("num_retries")
                .and_then(as_f64)
                .map(|n| n.clamp(0.0, 100.0) as u32),
            retry_policy: RetryPolicy::parse(get("retry_policy")),
            group_retry_policy,
            fallbacks: parse_fallback_map(get("fallbacks")),
            context_window_fallbacks: parse_fallback_map(get("context_window_fallbacks")),
            content_policy_fallbacks: parse_fallback_map(get("content_policy_fallbacks")),
            default_fallbacks: get("default_fallbacks")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Fallback::parse).collect())
                .unwrap_or_default(),
            max_fallbacks: get("max_fallbacks")
                .and_then(as_f64)
                .map(|n| n.max(0.0) as usize)
                .unwrap_or(DEFAULT_MAX_FALLBACKS),
            pre_call_checks: get("enable_pre_call_checks").is_some_and(truthy),
            min_retry_after: get("retry_after")
                .and_then(as_f64)
                .filter(|s| *s > 0.0)
                .map(crate::config::config_seconds)
                .unwrap_or_default(),
            stream_timeout: config
                .router_settings
                .get("stream_timeout")
                .and_then(as_f64)
                .filter(|s| *s > 0.0)
                .map(crate::config::config_seconds),
        }
    }

    /// `allowed_fails_policy` as the deployment actors take it: one allowance per bucket (each
    /// key its own bucket, so no two keys overwrite each other).
    pub fn allowed_fails_policy(config: &ProxyConfig) -> Vec<(ErrorClass, u32)> {
        let Some(map) = config
            .router_settings
            .get("allowed_fails_policy")
            .and_then(Value::as_object)
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, v) in map {
            let class = ErrorClass::from_policy_key(key, "AllowedFails");
            match (class, as_f64(v)) {
                (Some(class), Some(n)) if n >= 0.0 => {
                    out.retain(|(c, _)| *c != class);
                    out.push((class, n as u32));
                }
                _ => tracing::warn!(key, "allowed_fails_policy key not recognised; ignored"),
            }
        }
        out
    }

    /// How many retries an error of this class gets in this group. `requested` is the request's
    /// own `num_retries` (body or header), `deployment` the deployment's.
    pub fn max_retries(
        &self,
        group: &str,
        class: Option<ErrorClass>,
        requested: Option<u32>,
        deployment: Option<u32>,
    ) -> u32 {
        let policy = self
            .group_retry_policy
            .get(group)
            .or(self.retry_policy.as_ref());
        if let (Some(policy), Some(class)) = (policy, class) {
            if let Some(n) = policy.retries_for(class) {
                return n;
            }
        }
        requested
            .or(deployment)
            .or(self.num_retries)
            .unwrap_or(DEFAULT_NUM_RETRIES)
    }

    /// Whether an error of this class may be retried at all.
    pub fn retryable(&self, group: &str, err: &GatewayError, group_has_others: bool) -> bool {
        let Some(classification) = err.classify(false) else {
            return false;
        };
        let class = classification.bucket;
        // An explicit policy entry for the class makes it retryable (or not, with 0).
        let policy = self
            .group_retry_policy
            .get(group)
            .or(self.retry_policy.as_ref());
        if policy.is_some_and(|p| p.by_class.contains_key(&class)) {
            return true;
        }
        match classification.retry {
            Retry::Yes => true,
            Retry::IfGroupHasOthers => group_has_others,
            Retry::No => false,
        }
    }

    /// The fallback chain after `group` failed with `err`, client-side fallbacks first, at most
    /// `max_fallbacks` long. Empty when the error is one no other model would fix.
    pub fn fallbacks_for(
        &self,
        group: &str,
        err: &GatewayError,
        client: &[Fallback],
    ) -> Vec<Fallback> {
        let kind = match err {
            GatewayError::Upstream { kind, .. } => Some(*kind),
            // Another group may have a deployment in the request's region.
            GatewayError::Timeout { .. }
            | GatewayError::NoDeploymentsAvailable { .. }
            | GatewayError::NoDeploymentInRegion { .. } => None,
            _ => return Vec::new(),
        };
        let lookup =
            |map: &HashMap<String, Vec<Fallback>>| map.get(group).or_else(|| map.get("*")).cloned();
        let configured = match kind {
            Some(UpstreamErrorKind::ContextWindowExceeded) => {
                lookup(&self.context_window_fallbacks).or_else(|| lookup(&self.fallbacks))
            }
            Some(UpstreamErrorKind::ContentPolicy) => {
                lookup(&self.content_policy_fallbacks).or_else(|| lookup(&self.fallbacks))
            }
            // A malformed request fails the same way on any model.
            Some(UpstreamErrorKind::BadRequest) => None,
            _ => lookup(&self.fallbacks),
        };
        let configured = configured.unwrap_or_else(|| {
            if matches!(kind, Some(UpstreamErrorKind::BadRequest)) {
                Vec::new()
            } else {
                self.default_fallbacks.clone()
            }
        });
        let mut chain: Vec<Fallback> = Vec::new();
        for f in client.iter().chain(configured.iter()) {
            if f.model != group
                && !chain
                    .iter()
                    .any(|c| c.model == f.model && c.overrides == f.overrides)
            {
                chain.push(f.clone());
            }
        }
        chain.truncate(self.max_fallbacks);
        chain
    }

    /// How long to wait before retry number `attempt` (1-based) when no other deployment can take
    /// it; `None` when the provider asked for a wait longer than the gateway will hold a request.
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if let Some(after) = retry_after {
            if after > MAX_RETRY_AFTER_WAIT {
                return None;
            }
            return Some(after.max(self.min_retry_after));
        }
        let exp = BACKOFF_INITIAL.saturating_mul(1u32 << attempt.saturating_sub(1).min(8));
        let jitter = 0.75 + rand::random::<f64>() * 0.25;
        Some(
            exp.min(BACKOFF_MAX)
                .mul_f64(jitter)
                .max(self.min_retry_after),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> ProxyConfig {
        ProxyConfig::parse(yaml, "test.yaml").expect("config parses")
    }

    fn upstream(kind: UpstreamErrorKind, status: u16) -> GatewayError {
        GatewayError::Upstream {
            kind,
            status,
            message: "x".into(),
            code: None,
            param: None,
            retry_after: None,
        }
    }

    #[test]
    fn reads_router_settings() {
        let p = RouterPolicy::from_config(&config(
            "router_settings:\n  routing_strategy: latency-based-routing\n  routing_strategy_args: {lowest_latency_buffer: 0.5}\n  num_retries: 4\n  enable_pre_call_checks: true\n  retry_policy: {RateLimitErrorRetries: 7, DefaultRetries: 1}\n  model_group_retry_policy: {g: {InternalServerErrorRetries: 0}}\nlitellm_settings:\n  fallbacks: [{\"a\": [\"b\", \"c\"]}]\n  context_window_fallbacks: [{\"a\": [\"big\"]}]\n  default_fallbacks: [\"d\"]\n  max_fallbacks: 2\n",
        ));
        assert_eq!(p.strategy, RoutingStrategy::LatencyBased { buffer: 0.5 });
        assert_eq!(p.num_retries, Some(4));
        assert!(p.pre_call_checks);
        assert_eq!(
            p.max_retries("x", Some(ErrorClass::RateLimit), None, None),
            7
        );
        assert_eq!(
            p.max_retries("x", Some(ErrorClass::Timeout), Some(9), None),
            1
        );
        assert_eq!(
            p.max_retries("g", Some(ErrorClass::InternalServer), None, None),
            0
        );
        assert_eq!(p.max_fallbacks, 2);
        let chain: Vec<String> = p
            .fallbacks_for("a", &upstream(UpstreamErrorKind::Server, 500), &[])
            .into_iter()
            .map(|f| f.model)
            .collect();
        assert_eq!(chain, ["b", "c"]);
        let chain: Vec<String> = p
            .fallbacks_for(
                "a",
                &upstream(UpstreamErrorKind::ContextWindowExceeded, 400),
                &[],
            )
            .into_iter()
            .map(|f| f.model)
            .collect();
        assert_eq!(chain, ["big"]);
        let chain: Vec<String> = p
            .fallbacks_for(
                "other",
                &upstream(UpstreamErrorKind::RateLimit, 429),
                &[Fallback::to("client")],
            )
            .into_iter()
            .map(|f| f.model)
            .collect();
        assert_eq!(chain, ["client", "d"]);
        assert!(p
            .fallbacks_for("a", &upstream(UpstreamErrorKind::BadRequest, 400), &[])
            .is_empty());
    }

    #[test]
    fn client_fallbacks_in_both_forms() {
        let v: Value =
            serde_json::from_str(r#"[{"a": ["b", "c"]}, "d", {"model": "e", "temperature": 0}]"#)
                .unwrap();
        let f = ClientFallbacks::parse(Some(&v)).unwrap();
        let names = |l: Vec<Fallback>| l.into_iter().map(|f| f.model).collect::<Vec<_>>();
        assert_eq!(names(f.for_group(&["a"])), ["b", "c", "d", "e"]);
        assert_eq!(names(f.for_group(&["x", "a"])), ["b", "c", "d", "e"]);
        assert_eq!(names(f.for_group(&["x"])), ["d", "e"]);
        let star: Value = serde_json::from_str(r#"[{"*": "z"}]"#).unwrap();
        let star = ClientFallbacks::parse(Some(&star)).unwrap();
        assert_eq!(names(star.for_group(&["q"])), ["z"]);
        for bad in [
            r#"{"a": ["b"]}"#,
            r#"[{}]"#,
            r#"[1]"#,
            r#"[{"a": [1]}]"#,
            r#""b""#,
        ] {
            let v: Value = serde_json::from_str(bad).unwrap();
            assert!(ClientFallbacks::parse(Some(&v)).is_none(), "{bad}");
        }
        assert_eq!(
            ClientFallbacks::parse(None),
            Some(ClientFallbacks::default())
        );
        let cw = ClientFallbacks::parse(Some(&serde_json::json!([{"a": ["big"]}]))).unwrap();
        let none = ClientFallbacks::default();
        let chain = |err| names(ClientFallbacks::chain(&f, &cw, &none, &["a"], &err));
        assert_eq!(
            chain(upstream(UpstreamErrorKind::ContextWindowExceeded, 400)),
            ["big", "b", "c", "d", "e"]
        );
        assert_eq!(
            chain(upstream(UpstreamErrorKind::Server, 500)),
            ["b", "c", "d", "e"]
        );
    }

    #[test]
    fn retryable_classes() {
        let p = RouterPolicy::default();
        assert!(p.retryable("g", &upstream(UpstreamErrorKind::RateLimit, 429), false));
        assert!(p.retryable("g", &upstream(UpstreamErrorKind::Server, 500), false));
        assert!(p.retryable("g", &upstream(UpstreamErrorKind::BadRequest, 409), false));
        assert!(!p.retryable("g", &upstream(UpstreamErrorKind::BadRequest, 400), true));
        assert!(!p.retryable("g", &upstream(UpstreamErrorKind::NotFound, 404), true));
        assert!(!p.retryable(
            "g",
            &upstream(UpstreamErrorKind::Authentication, 401),
            false
        ));
        assert!(p.retryable("g", &upstream(UpstreamErrorKind::Authentication, 401), true));
        assert_eq!(p.max_retries("g", None, None, None), DEFAULT_NUM_RETRIES);
        assert_eq!(p.max_retries("g", None, None, Some(50)), 50);
    }

    #[test]
    fn backoff_honours_retry_after_and_grows() {
        let p = RouterPolicy::default();
        assert_eq!(
            p.backoff(1, Some(Duration::from_secs(2))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(p.backoff(1, Some(Duration::from_secs(600))), None);
        let first = p.backoff(1, None).unwrap();
        assert!(first >= Duration::from_millis(375) && first <= Duration::from_millis(500));
        assert!(p.backoff(10, None).unwrap() <= BACKOFF_MAX);
    }

    #[test]
    fn allowed_fails_policy_maps_to_failure_classes() {
        let c = config("router_settings:\n  allowed_fails_policy: {RateLimitErrorAllowedFails: 10, InternalServerErrorAllowedFails: 2}\n");
        let p = RouterPolicy::allowed_fails_policy(&c);
        assert!(p.contains(&(ErrorClass::RateLimit, 10)));
        assert!(p.contains(&(ErrorClass::InternalServer, 2)));
    }

    #[test]
    fn allowed_fails_policy_keys_sharing_a_cooldown_class_stay_apart() {
        // 500 and 503 both cool as a server error, bad requests and content policy violations both
        // as a client error: each key still keeps its own allowance.
        let c = config(
            "router_settings:\n  allowed_fails_policy: {InternalServerErrorAllowedFails: 4, ServiceUnavailableErrorAllowedFails: 1, BadRequestErrorAllowedFails: 7, ContentPolicyViolationErrorAllowedFails: 2}\n",
        );
        let mut p = RouterPolicy::allowed_fails_policy(&c);
        p.sort_by_key(|(c, _)| c.name());
        assert_eq!(
            p,
            vec![
                (ErrorClass::BadRequest, 7),
                (ErrorClass::ContentPolicyViolation, 2),
                (ErrorClass::InternalServer, 4),
                (ErrorClass::ServiceUnavailable, 1),
            ]
        );
    }

    #[test]
    fn client_fallback_object_form() {
        let f = Fallback::parse(
            &serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "short"}]}),
        )
        .unwrap();
        assert_eq!(f.model, "m");
        assert!(f.overrides.contains_key("messages"));
    }
}
