//! Choosing a deployment inside a model group: LiteLLM's `routing_strategy` values, `order`,
//! deployment `rpm`/`tpm` and the context-window pre-call check.
//!
//! A pick is one pass over the group's published state (atomics), with no message to any actor:
//!
//! 1. keep only the deployments in the request's region, when it is restricted to one (an end
//!    user's `allowed_model_region`): a deployment with no known region never serves it;
//! 2. drop deployments cooling down and those this request already tried;
//! 3. with `enable_pre_call_checks`, drop those whose context window is smaller than the prompt;
//! 4. drop those whose `rpm`/`tpm` for the current minute is used up;
//! 5. keep only the lowest `order` (1 = first choice);
//! 6. rank the rest by the strategy, then reserve one request (and the estimated tokens) on the
//!    winner atomically; if another request took the last slot meanwhile, take the next one.

use std::sync::Arc;
use std::time::Duration;

use rand::seq::SliceRandom;

use crate::snapshot::{pick_weighted, DeploymentHandle};
use crate::Upstream;

/// `router_settings.routing_strategy`.
#[derive(Debug, Clone, PartialEq)]
pub enum RoutingStrategy {
    /// Random, weighted by `weight`, else `rpm`, else `tpm` (the default).
    SimpleShuffle,
    /// Fewest requests in flight.
    LeastBusy,
    /// Lowest tokens used this minute (`usage-based-routing` and `usage-based-routing-v2`).
    UsageBased,
    /// Lowest recent average latency (time to first token for streams); any deployment within
    /// `buffer` (a fraction: 0.1 = 10%) of the fastest is equally likely.
    LatencyBased { buffer: f64 },
    /// Lowest price per token.
    CostBased,
}

impl RoutingStrategy {
    /// Parse LiteLLM's strategy name; `None` for an unknown name.
    pub fn parse(name: &str, latency_buffer: Option<f64>) -> Option<Self> {
        Some(match name {
            "simple-shuffle" => Self::SimpleShuffle,
            "least-busy" => Self::LeastBusy,
            "usage-based-routing" | "usage-based-routing-v2" => Self::UsageBased,
            "latency-based-routing" => Self::LatencyBased {
                buffer: latency_buffer.unwrap_or(0.0).max(0.0),
            },
            "cost-based-routing" => Self::CostBased,
            _ => return None,
        })
    }
}

/// What the request brings to the choice.
#[derive(Debug, Clone)]
pub struct PickRequest<'a> {
    pub strategy: &'a RoutingStrategy,
    /// Deployment ids already tried by this request; skipped while others remain.
    pub exclude: &'a [String],
    /// Estimated prompt tokens, for `tpm` reservations and the context-window check.
    pub estimated_tokens: u64,
    /// `enable_pre_call_checks`.
    pub pre_call_checks: bool,
    /// Only deployments in this region may serve the request (an end user's
    /// `allowed_model_region`); `None`: any deployment.
    pub region: Option<&'a str>,
    pub now_ms: u64,
}

/// Why no deployment could be picked.
#[derive(Debug, Clone, PartialEq)]
pub enum PickError {
    /// Every deployment is cooling down; the earliest leaves its cooldown after `retry_after`.
    AllCoolingDown { retry_after: Duration },
    /// Every remaining deployment has used its `rpm`/`tpm` for this minute.
    OverDeploymentLimits { retry_after: Duration },
    /// No deployment's context window holds the prompt (`enable_pre_call_checks`).
    ContextWindowExceeded {
        prompt_tokens: u64,
        largest_window: u64,
    },
    /// Every deployment was already tried by this request.
    Exhausted,
    /// The request is restricted to a region no deployment of the group is in.
    NoneInRegion { region: String },
}

/// A deployment chosen for one attempt, with its minute reservation already counted.
pub struct Picked<U: Upstream> {
    pub handle: Arc<DeploymentHandle<U>>,
    pub reserved_tokens: u64,
}

pub(crate) fn pick<U: Upstream>(
    deployments: &[Arc<DeploymentHandle<U>>],
    req: &PickRequest<'_>,
) -> Result<Picked<U>, PickError> {
    let now = req.now_ms;
    let in_region: Vec<&Arc<DeploymentHandle<U>>> = deployments
        .iter()
        .filter(|d| d.in_region(req.region))
        .collect();
    if let (true, Some(region)) = (in_region.is_empty(), req.region) {
        return Err(PickError::NoneInRegion {
            region: region.to_string(),
        });
    }
    let untried: Vec<&Arc<DeploymentHandle<U>>> = in_region
        .into_iter()
        .filter(|d| !req.exclude.iter().any(|id| id == d.id()))
        .collect();
    if untried.is_empty() {
        return Err(PickError::Exhausted);
    }
    let mut candidates: Vec<&Arc<DeploymentHandle<U>>> = untried
        .iter()
        .copied()
        .filter(|d| d.is_available(now))
        .collect();
    if candidates.is_empty() {
        let until = untried
            .iter()
            .map(|d| d.state.cooldown_until_ms())
            .min()
            .unwrap_or(now);
        return Err(PickError::AllCoolingDown {
            retry_after: Duration::from_millis(until.saturating_sub(now).max(1)),
        });
    }
    if req.pre_call_checks && req.estimated_tokens > 0 {
        let fits = |d: &&Arc<DeploymentHandle<U>>| {
            d.upstream
                .max_input_tokens()
                .is_none_or(|w| w >= req.estimated_tokens)
        };
        if !candidates.iter().any(fits) {
            return Err(PickError::ContextWindowExceeded {
                prompt_tokens: req.estimated_tokens,
                largest_window: candidates
                    .iter()
                    .filter_map(|d| d.upstream.max_input_tokens())
                    .max()
                    .unwrap_or(0),
            });
        }
        candidates.retain(fits);
    }
    let has_capacity = |d: &&Arc<DeploymentHandle<U>>| {
        d.state.has_capacity(
            now,
            d.upstream.rpm(),
            d.upstream.tpm(),
            req.estimated_tokens,
        )
    };
    candidates.retain(has_capacity);
    if candidates.is_empty() {
        return Err(PickError::OverDeploymentLimits {
            retry_after: Duration::from_millis(crate::window::ms_to_next_minute(now)),
        });
    }
    if let Some(best) = candidates.iter().filter_map(|d| d.upstream.order()).min() {
        candidates.retain(|d| d.upstream.order().is_none_or(|o| o == best));
    }

    // Rank, then reserve on the first that still has room (another request may take the last slot
    // between the check above and the reservation).
    let mut ranked = rank(candidates, req.strategy);
    while !ranked.is_empty() {
        let chosen = ranked.remove(0);
        if chosen.state.reserve(
            now,
            chosen.upstream.rpm(),
            chosen.upstream.tpm(),
            req.estimated_tokens,
        ) {
            return Ok(Picked {
                handle: Arc::clone(chosen),
                reserved_tokens: req.estimated_tokens,
            });
        }
    }
    Err(PickError::OverDeploymentLimits {
        retry_after: Duration::from_millis(crate::window::ms_to_next_minute(now)),
    })
}

/// Order candidates by preference. Ties are broken at random so equal deployments share the load.
fn rank<'a, U: Upstream>(
    mut candidates: Vec<&'a Arc<DeploymentHandle<U>>>,
    strategy: &RoutingStrategy,
) -> Vec<&'a Arc<DeploymentHandle<U>>> {
    let mut rng = rand::rng();
    candidates.shuffle(&mut rng);
    match strategy {
        RoutingStrategy::SimpleShuffle => {
            if let Some(first) = pick_weighted(&candidates, |d| d.upstream.weight()).cloned() {
                let pos = candidates
                    .iter()
                    .position(|d| Arc::ptr_eq(d, first))
                    .unwrap_or(0);
                candidates.swap(0, pos);
            }
        }
        RoutingStrategy::LeastBusy => candidates.sort_by_key(|d| d.state.in_flight()),
        RoutingStrategy::UsageBased => {
            let now = crate::now_ms();
            candidates.sort_by_key(|d| {
                let (requests, tokens) = d.state.minute_usage(now);
                (tokens, requests)
            });
        }
        RoutingStrategy::LatencyBased { buffer } => {
            // A deployment without samples counts as fastest, so every deployment gets measured.
            let latency =
                |d: &Arc<DeploymentHandle<U>>| d.state.average_latency().unwrap_or_default();
            candidates.sort_by_key(|d| latency(d));
            if let Some(fastest) = candidates.first().map(|d| latency(d)) {
                let limit = fastest.mul_f64(1.0 + buffer);
                let within = candidates
                    .iter()
                    .take_while(|d| latency(d) <= limit)
                    .count();
                candidates[..within].shuffle(&mut rng);
            }
        }
        RoutingStrategy::CostBased => candidates.sort_by(|a, b| {
            let cost =
                |d: &Arc<DeploymentHandle<U>>| d.upstream.cost_per_token().unwrap_or(f64::MAX);
            cost(a).total_cmp(&cost(b))
        }),
    }
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::future::LocalBoxFuture;

    struct Regional {
        id: &'static str,
        region: Option<&'static str>,
    }

    impl Upstream for Regional {
        fn id(&self) -> &str {
            self.id
        }
        fn model_group(&self) -> &str {
            "g"
        }
        fn region(&self) -> Option<&str> {
            self.region
        }
        fn probe(self: Arc<Self>) -> LocalBoxFuture<'static, Result<(), String>> {
            Box::pin(async { Ok(()) })
        }
    }

    fn group(
        deployments: &[(&'static str, Option<&'static str>)],
    ) -> Vec<Arc<DeploymentHandle<Regional>>> {
        deployments
            .iter()
            .map(|(id, region)| {
                Arc::new(DeploymentHandle::new(
                    Arc::new(Regional {
                        id,
                        region: *region,
                    }),
                    Arc::default(),
                ))
            })
            .collect()
    }

    fn pick_in(
        deployments: &[Arc<DeploymentHandle<Regional>>],
        region: Option<&str>,
        exclude: &[String],
    ) -> Result<String, PickError> {
        let strategy = RoutingStrategy::SimpleShuffle;
        pick(
            deployments,
            &PickRequest {
                strategy: &strategy,
                exclude,
                estimated_tokens: 10,
                pre_call_checks: false,
                region,
                now_ms: crate::now_ms(),
            },
        )
        .map(|p| p.handle.id().to_string())
    }

    #[test]
    fn a_region_restricted_request_is_served_only_in_its_region() {
        let deployments = group(&[
            ("eu-1", Some("eu")),
            ("us-1", Some("us")),
            ("unknown", None),
        ]);
        for _ in 0..200 {
            assert_eq!(pick_in(&deployments, Some("eu"), &[]).unwrap(), "eu-1");
            assert_eq!(pick_in(&deployments, Some("us"), &[]).unwrap(), "us-1");
        }
        // Unrestricted: every deployment, those with no known region included.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..500 {
            seen.insert(pick_in(&deployments, None, &[]).unwrap());
        }
        assert_eq!(seen.len(), 3, "{seen:?}");
    }

    #[test]
    fn no_deployment_in_the_region_is_its_own_error_and_retries_stay_in_the_region() {
        let deployments = group(&[("us-1", Some("us")), ("unknown", None)]);
        assert_eq!(
            pick_in(&deployments, Some("eu"), &[]).unwrap_err(),
            PickError::NoneInRegion {
                region: "eu".into()
            }
        );
        // The only eu deployment tried: the request is exhausted, never sent to us.
        let deployments = group(&[("eu-1", Some("eu")), ("us-1", Some("us"))]);
        assert_eq!(
            pick_in(&deployments, Some("eu"), &["eu-1".to_string()]).unwrap_err(),
            PickError::Exhausted
        );
    }
}
