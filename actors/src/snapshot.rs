//! The routing snapshot the router publishes and request handlers read without a message.

use std::collections::HashMap;
use std::sync::Arc;

use actix::Addr;
use arc_swap::ArcSwapOption;
use rand::Rng;

use crate::deployment::{DeploymentActor, DeploymentState};
use crate::messages::DeploymentFailure;
use crate::strategy::{PickError, PickRequest, Picked};
use crate::Upstream;

/// One deployment as handlers see it: the upstream description, its live counters, and the address
/// of the actor currently supervising it (replaced by the router when it restarts the actor).
pub struct DeploymentHandle<U: Upstream> {
    pub upstream: Arc<U>,
    pub state: Arc<DeploymentState>,
    pub(crate) actor: ArcSwapOption<Addr<DeploymentActor<U>>>,
}

impl<U: Upstream> DeploymentHandle<U> {
    pub(crate) fn new(upstream: Arc<U>, state: Arc<DeploymentState>) -> Self {
        Self {
            upstream,
            state,
            actor: ArcSwapOption::empty(),
        }
    }

    pub fn id(&self) -> &str {
        self.upstream.id()
    }

    /// Fire-and-forget report of a failed call; the deployment actor decides on a cooldown.
    /// Never blocks: when the actor's mailbox is full the report is counted as dropped.
    pub fn report_failure(&self, failure: DeploymentFailure) {
        self.state.record_failure();
        let sent = self
            .actor
            .load()
            .as_ref()
            .map(|addr| addr.try_send(failure).is_ok())
            .unwrap_or(false);
        if !sent {
            self.state.record_dropped_report();
        }
    }

    /// Whether the deployment may take traffic now (not cooling down).
    pub fn is_available(&self, now_ms: u64) -> bool {
        !self.state.is_cooling_down(now_ms)
    }

    /// Whether the deployment may serve a request restricted to `region` (`None`: unrestricted).
    /// A deployment with no known region serves only unrestricted requests.
    pub fn in_region(&self, region: Option<&str>) -> bool {
        region.is_none_or(|r| self.upstream.region() == Some(r))
    }
}

/// A model group: every deployment sharing a `model_name`.
pub struct ModelGroup<U: Upstream> {
    pub name: String,
    pub deployments: Vec<Arc<DeploymentHandle<U>>>,
}

impl<U: Upstream> ModelGroup<U> {
    /// Choose a deployment for one attempt and reserve its minute usage (see [`crate::strategy`]).
    pub fn pick(&self, req: &PickRequest<'_>) -> Result<Picked<U>, PickError> {
        crate::strategy::pick(&self.deployments, req)
    }

    /// Whether a deployment other than those in `exclude`, in `region` when the request is
    /// restricted to one, could take a request now.
    pub fn has_other_available(
        &self,
        now_ms: u64,
        exclude: &[String],
        region: Option<&str>,
    ) -> bool {
        self.deployments.iter().any(|d| {
            d.in_region(region) && d.is_available(now_ms) && !exclude.iter().any(|id| id == d.id())
        })
    }

    /// How many deployments may serve a request restricted to `region` (`None`: all of them).
    pub fn serving(&self, region: Option<&str>) -> usize {
        self.deployments
            .iter()
            .filter(|d| d.in_region(region))
            .count()
    }
}

/// Weighted random choice. Items without a weight count as weight 1 when no item has one; when some
/// have weights, the ones without get the mean of the others.
pub(crate) fn pick_weighted<T>(items: &[T], weight: impl Fn(&T) -> Option<f64>) -> Option<&T> {
    match items.len() {
        0 => return None,
        1 => return items.first(),
        _ => {}
    }
    let weights: Vec<Option<f64>> = items
        .iter()
        .map(|i| weight(i).filter(|w| w.is_finite() && *w >= 0.0))
        .collect();
    let known: Vec<f64> = weights.iter().flatten().copied().collect();
    let fill = if known.is_empty() {
        1.0
    } else {
        known.iter().sum::<f64>() / known.len() as f64
    };
    let weights: Vec<f64> = weights.into_iter().map(|w| w.unwrap_or(fill)).collect();
    let total: f64 = weights.iter().sum();
    let mut rng = rand::rng();
    if total <= 0.0 {
        return items.get(rng.random_range(0..items.len()));
    }
    let mut target = rng.random_range(0.0..total);
    for (item, w) in items.iter().zip(&weights) {
        if target < *w {
            return Some(item);
        }
        target -= w;
    }
    items.last()
}

/// Everything a handler needs to route a request, published atomically by the router.
pub struct RoutingSnapshot<U: Upstream> {
    groups: HashMap<String, Arc<ModelGroup<U>>>,
    /// Wildcard groups (`*`, `openai/*`, `claude-*`), most specific first.
    wildcards: Vec<Arc<ModelGroup<U>>>,
    by_id: HashMap<String, Arc<DeploymentHandle<U>>>,
    all: Vec<Arc<DeploymentHandle<U>>>,
}

impl<U: Upstream> RoutingSnapshot<U> {
    pub(crate) fn build(handles: Vec<Arc<DeploymentHandle<U>>>) -> Self {
        let mut grouped: Vec<(String, Vec<Arc<DeploymentHandle<U>>>)> = Vec::new();
        for h in &handles {
            let name = h.upstream.model_group();
            match grouped.iter_mut().find(|(n, _)| n == name) {
                Some((_, list)) => list.push(h.clone()),
                None => grouped.push((name.to_string(), vec![h.clone()])),
            }
        }
        let mut groups = HashMap::new();
        let mut wildcards = Vec::new();
        for (name, deployments) in grouped {
            let group = Arc::new(ModelGroup {
                name: name.clone(),
                deployments,
            });
            if name.contains('*') {
                wildcards.push(group);
            } else {
                groups.insert(name, group);
            }
        }
        // Most specific pattern first: more literal characters wins.
        wildcards.sort_by_key(|g| std::cmp::Reverse(g.name.replace('*', "").len()));
        let by_id = handles
            .iter()
            .map(|h| (h.id().to_string(), h.clone()))
            .collect();
        Self {
            groups,
            wildcards,
            by_id,
            all: handles,
        }
    }

    pub fn empty() -> Self {
        Self::build(Vec::new())
    }

    /// The group serving `model`: an exact `model_name` first, then the most specific wildcard.
    pub fn group(&self, model: &str) -> Option<&Arc<ModelGroup<U>>> {
        self.groups.get(model).or_else(|| {
            self.wildcards
                .iter()
                .find(|g| wildcard_matches(&g.name, model))
        })
    }

    /// Exact (non-wildcard) group names, in no particular order.
    pub fn group_names(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    /// Wildcard patterns.
    pub fn wildcard_names(&self) -> impl Iterator<Item = &str> {
        self.wildcards.iter().map(|g| g.name.as_str())
    }

    pub fn deployment(&self, id: &str) -> Option<&Arc<DeploymentHandle<U>>> {
        self.by_id.get(id)
    }

    /// Every deployment, in `model_list` order.
    pub fn deployments(&self) -> &[Arc<DeploymentHandle<U>>] {
        &self.all
    }
}

/// Glob match where `*` matches any run of characters (possibly empty).
pub fn wildcard_matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(pos) => rest = &rest[pos + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_patterns() {
        assert!(wildcard_matches("*", "gpt-4o"));
        assert!(wildcard_matches("openai/*", "openai/gpt-4o"));
        assert!(!wildcard_matches("openai/*", "anthropic/claude"));
        assert!(wildcard_matches("claude-*-sonnet", "claude-3-5-sonnet"));
        assert!(!wildcard_matches("claude-*-sonnet", "claude-3-5-haiku"));
        assert!(wildcard_matches("gpt-4o", "gpt-4o"));
        assert!(!wildcard_matches("gpt-4o", "gpt-4o-mini"));
        assert!(!wildcard_matches("ab*ba", "aba"));
    }

    #[test]
    fn weighted_pick_respects_weights() {
        let items = [("a", Some(9.0)), ("b", Some(1.0))];
        let mut a = 0;
        for _ in 0..10_000 {
            if pick_weighted(&items, |i| i.1).map(|i| i.0) == Some("a") {
                a += 1;
            }
        }
        // Expected 9,000; the bound is ~10 standard deviations wide.
        assert!((8_700..=9_300).contains(&a), "picked a {a} times");
    }

    #[test]
    fn weighted_pick_zero_weight_never_chosen() {
        let items = [("a", Some(0.0)), ("b", Some(1.0))];
        for _ in 0..1_000 {
            assert_eq!(pick_weighted(&items, |i| i.1).map(|i| i.0), Some("b"));
        }
        let empty: [(&str, Option<f64>); 0] = [];
        assert!(pick_weighted(&empty, |i| i.1).is_none());
    }
}
