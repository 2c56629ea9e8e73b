//! The router actor: owns the deployment set, supervises one deployment actor per deployment, and
//! publishes the routing snapshot.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use arc_swap::ArcSwap;
use futures_util::future::join_all;

use crate::deployment::{CooldownPolicy, DeploymentActor, DeploymentState};
use crate::messages::{
    HealthReport, Probe, ProbeAll, ProbeOutcome, ReplaceDeployments, SetCooldownPolicy,
};
use crate::shared::{SharedRouterState, SYNC_EVERY};
use crate::snapshot::{DeploymentHandle, RoutingSnapshot};
use crate::supervise::{Adopt, Child};
use crate::Upstream;

/// How often the router checks that every child actor is alive.
const SUPERVISE_EVERY: Duration = Duration::from_millis(250);

pub struct RouterActor<U: Upstream> {
    handles: Vec<Arc<DeploymentHandle<U>>>,
    snapshot: Arc<ArcSwap<RoutingSnapshot<U>>>,
    policy: CooldownPolicy,
    children: ArbiterHandle,
    shared: Option<SharedRouterState>,
    syncing: bool,
    /// Other actors this router keeps alive (the spend tracker, the rate limiter, the caches): the
    /// supervision root.
    adopted: Vec<Arc<dyn Child>>,
}

impl<U: Upstream> RouterActor<U> {
    fn spawn_child(&self, handle: &DeploymentHandle<U>) {
        let upstream = handle.upstream.clone();
        let state = handle.state.clone();
        let policy = self.policy.clone();
        let group = handle.upstream.model_group();
        let alone = self
            .handles
            .iter()
            .filter(|h| h.upstream.model_group() == group)
            .count()
            <= 1;
        let shared = self.shared.clone();
        let addr = DeploymentActor::start_in_arbiter(&self.children, move |_| {
            DeploymentActor::new(upstream, state, policy, alone, shared)
        });
        handle.actor.store(Some(Arc::new(addr)));
    }

    /// Restart every child whose actor has died. A panic inside an actor's handler stops that actor
    /// for good (actix's `Supervisor` only restarts actors that stop themselves), so the router checks
    /// liveness itself. Counters live in `DeploymentState`, outside the actor, and survive.
    fn supervise(&mut self) {
        for handle in &self.handles {
            let alive = handle
                .actor
                .load()
                .as_ref()
                .is_some_and(|addr| addr.connected());
            if !alive {
                tracing::error!(
                    deployment = handle.id(),
                    model_group = handle.upstream.model_group(),
                    "deployment actor died; restarting it"
                );
                handle.state.record_restart();
                self.spawn_child(handle);
            }
        }
        for child in &self.adopted {
            child.ensure_alive();
        }
    }

    /// Fold what other instances wrote to Redis into the local deployment states. One sync at a
    /// time: a slow Redis delays the next one rather than piling calls up.
    fn sync_shared(&mut self, ctx: &mut Context<Self>) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        if self.syncing {
            return;
        }
        self.syncing = true;
        let states: Vec<(String, Arc<DeploymentState>)> = self
            .handles
            .iter()
            .map(|h| (h.id().to_string(), h.state.clone()))
            .collect();
        ctx.spawn(
            async move {
                if let Err(e) = shared.sync(&states).await {
                    tracing::trace!(error = %e, "shared router state not synced");
                }
            }
            .into_actor(self)
            .map(|_, act, _| act.syncing = false),
        );
    }

    fn publish(&self) {
        self.snapshot
            .store(Arc::new(RoutingSnapshot::build(self.handles.clone())));
    }
}

impl<U: Upstream> Actor for RouterActor<U> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
        ctx.run_interval(SUPERVISE_EVERY, |act, _| act.supervise());
        if self.shared.is_some() {
            ctx.run_interval(SYNC_EVERY, |act, ctx| act.sync_shared(ctx));
        }
    }
}

impl<U: Upstream> Handler<ProbeAll> for RouterActor<U> {
    type Result = ResponseActFuture<Self, Vec<HealthReport>>;

    fn handle(&mut self, msg: ProbeAll, _ctx: &mut Self::Context) -> Self::Result {
        let targets: Vec<(String, Option<Addr<DeploymentActor<U>>>)> = self
            .handles
            .iter()
            .filter(|h| {
                msg.model_group
                    .as_deref()
                    .is_none_or(|g| h.upstream.model_group() == g)
            })
            .map(|h| {
                let addr = h.actor.load().as_ref().map(|a| (**a).clone());
                (h.id().to_string(), addr)
            })
            .collect();
        let timeout = msg.timeout;
        let probes = targets.into_iter().map(move |(deployment_id, addr)| async move {
            let outcome = match addr {
                // The deployment actor enforces the timeout; the outer one covers a wedged mailbox.
                Some(addr) => match actix::clock::timeout(
                    timeout + Duration::from_millis(500),
                    addr.send(Probe { timeout }),
                )
                .await
                {
                    Ok(Ok(outcome)) => outcome,
                    Ok(Err(_)) => ProbeOutcome::Unhealthy {
                        error: "deployment actor stopped during the health check; it is being restarted"
                            .into(),
                    },
                    Err(_) => ProbeOutcome::Unhealthy {
                        error: format!("health check timed out after {timeout:?}"),
                    },
                },
                None => ProbeOutcome::Unhealthy {
                    error: "deployment actor not running".into(),
                },
            };
            HealthReport {
                deployment_id,
                outcome,
            }
        });
        Box::pin(join_all(probes).into_actor(self).map(|reports, act, _| {
            // A probe may have taken its actor down; restart it now rather than at the next tick.
            act.supervise();
            reports
        }))
    }
}

impl<U: Upstream> Handler<Adopt> for RouterActor<U> {
    type Result = ();

    fn handle(&mut self, msg: Adopt, _ctx: &mut Self::Context) {
        msg.0.ensure_alive();
        self.adopted.push(msg.0);
    }
}

impl<U: Upstream> Handler<ReplaceDeployments<U>> for RouterActor<U> {
    type Result = ();

    fn handle(&mut self, msg: ReplaceDeployments<U>, _ctx: &mut Self::Context) {
        let mut previous: HashMap<String, Arc<DeploymentHandle<U>>> = self
            .handles
            .drain(..)
            .map(|h| (h.id().to_string(), h))
            .collect();
        for upstream in msg.upstreams {
            let state = previous
                .remove(upstream.id())
                .map(|h| {
                    // The old actor stops once its last address is dropped with the old handle.
                    h.state.clone()
                })
                .unwrap_or_default();
            self.handles
                .push(Arc::new(DeploymentHandle::new(upstream, state)));
        }
        for handle in &self.handles {
            self.spawn_child(handle);
        }
        self.publish();
    }
}

impl<U: Upstream> Handler<SetCooldownPolicy> for RouterActor<U> {
    type Result = ();

    /// Every deployment actor starts anew with the policy; their states (counters, cooldown
    /// deadlines) are kept, and each old actor stops once its address is dropped.
    fn handle(&mut self, msg: SetCooldownPolicy, _ctx: &mut Self::Context) {
        if self.policy == msg.0 {
            return;
        }
        self.policy = msg.0;
        for handle in &self.handles {
            self.spawn_child(handle);
        }
    }
}

/// What the gateway holds: the router's address and the snapshot it publishes.
pub struct RouterHandle<U: Upstream> {
    pub addr: Addr<RouterActor<U>>,
    snapshot: Arc<ArcSwap<RoutingSnapshot<U>>>,
    /// The Redis-backed state shared with other instances, when configured.
    pub shared: Option<SharedRouterState>,
}

impl<U: Upstream> Clone for RouterHandle<U> {
    fn clone(&self) -> Self {
        Self {
            addr: self.addr.clone(),
            snapshot: self.snapshot.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<U: Upstream> RouterHandle<U> {
    /// Start the router on its own arbiter, with one deployment actor per upstream. Must run inside an
    /// actix `System`. The snapshot is published before this returns, so requests can be routed at once.
    pub fn start(upstreams: Vec<Arc<U>>, policy: CooldownPolicy) -> Self {
        Self::start_shared(upstreams, policy, None)
    }

    /// Like [`RouterHandle::start`], sharing cooldowns, usage and latencies with other instances
    /// through Redis when `shared` is set.
    pub fn start_shared(
        upstreams: Vec<Arc<U>>,
        policy: CooldownPolicy,
        shared: Option<SharedRouterState>,
    ) -> Self {
        let arbiter = Arbiter::new().handle();
        let handles: Vec<Arc<DeploymentHandle<U>>> = upstreams
            .into_iter()
            .map(|u| {
                Arc::new(DeploymentHandle::new(
                    u,
                    Arc::new(DeploymentState::default()),
                ))
            })
            .collect();
        let snapshot = Arc::new(ArcSwap::from_pointee(RoutingSnapshot::build(
            handles.clone(),
        )));
        let router = RouterActor {
            handles,
            snapshot: snapshot.clone(),
            policy,
            children: arbiter.clone(),
            shared: shared.clone(),
            syncing: false,
            adopted: Vec::new(),
        };
        for handle in &router.handles {
            router.spawn_child(handle);
        }
        let addr = RouterActor::start_in_arbiter(&arbiter, move |_| router);
        Self {
            addr,
            snapshot,
            shared,
        }
    }

    /// Keep `child` alive alongside the deployment actors: the router checks it on every
    /// supervision tick and restarts it when it died.
    pub fn adopt(&self, child: Arc<dyn Child>) {
        // Never refused for a full mailbox: adopting happens at start, once per child.
        self.addr.do_send(Adopt(child));
    }

    /// The current snapshot. Cheap (one atomic load and a reference-count increment).
    pub fn snapshot(&self) -> Arc<RoutingSnapshot<U>> {
        self.snapshot.load_full()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::future::LocalBoxFuture;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// An upstream whose probe panics once when asked to, then behaves.
    struct Flaky {
        id: String,
        panic_next: Arc<AtomicBool>,
    }

    impl Upstream for Flaky {
        fn id(&self) -> &str {
            &self.id
        }
        fn model_group(&self) -> &str {
            "group"
        }
        fn probe(self: Arc<Self>) -> LocalBoxFuture<'static, Result<(), String>> {
            let panic_now = self.panic_next.swap(false, Ordering::SeqCst);
            Box::pin(async move {
                if panic_now {
                    panic!("probe blew up");
                }
                Ok(())
            })
        }
    }

    #[actix_rt::test]
    async fn router_restarts_a_deployment_actor_that_panicked() {
        let panic_next = Arc::new(AtomicBool::new(false));
        let upstream = Arc::new(Flaky {
            id: "d1".into(),
            panic_next: panic_next.clone(),
        });
        let router = RouterHandle::start(vec![upstream], CooldownPolicy::default());
        let probe = ProbeAll {
            timeout: Duration::from_secs(2),
            model_group: None,
        };

        let reports = router.addr.send(probe.clone()).await.expect("router alive");
        assert!(matches!(reports[0].outcome, ProbeOutcome::Healthy { .. }));

        panic_next.store(true, Ordering::SeqCst);
        let reports = router.addr.send(probe.clone()).await.expect("router alive");
        assert!(
            matches!(&reports[0].outcome, ProbeOutcome::Unhealthy { error } if error.contains("stopped")),
            "{reports:?}"
        );

        // The router restarted the child: the next probe is answered by a new actor.
        let snapshot = router.snapshot();
        let state = snapshot.deployment("d1").expect("deployment").state.clone();
        assert_eq!(state.stats().restarts, 1);
        let reports = router.addr.send(probe).await.expect("router alive");
        assert!(matches!(reports[0].outcome, ProbeOutcome::Healthy { .. }));
    }

    #[actix_rt::test]
    async fn router_restarts_an_adopted_spend_tracker_that_panicked() {
        use crate::spend::{SpendHandle, SpendSink};
        use futures_util::FutureExt;
        let written = Arc::new(std::sync::Mutex::new(Vec::<u32>::new()));
        let w = written.clone();
        let sink: SpendSink<u32> = Arc::new(move |batch: Vec<u32>| {
            let w = w.clone();
            async move {
                w.lock().unwrap().extend(batch);
                Ok(())
            }
            .boxed_local()
        });
        let tracker = SpendHandle::start_with(sink, Duration::from_millis(20), Some(2));
        let router = RouterHandle::start(Vec::<Arc<Flaky>>::new(), CooldownPolicy::default());
        router.adopt(tracker.child());
        for i in 0..4 {
            tracker.record(i);
        }
        // The tracker panics on its first write; the router's next supervision tick restarts it,
        // and the new tracker writes the batch the old one never finished.
        for _ in 0..200 {
            if written.lock().unwrap().len() >= 4 {
                break;
            }
            actix::clock::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(tracker.restarts(), 1);
        let mut got = written.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, vec![0, 1, 2, 3]);
    }

    #[actix_rt::test]
    async fn replacing_deployments_keeps_state_of_unchanged_ids() {
        let mk = |id: &str| {
            Arc::new(Flaky {
                id: id.into(),
                panic_next: Arc::default(),
            })
        };
        let router = RouterHandle::start(vec![mk("a"), mk("b")], CooldownPolicy::default());
        let a_state = router.snapshot().deployment("a").expect("a").state.clone();
        let _guard = a_state.begin();
        router
            .addr
            .send(ReplaceDeployments {
                upstreams: vec![mk("a"), mk("c")],
            })
            .await
            .expect("router alive");
        let snap = router.snapshot();
        assert!(snap.deployment("b").is_none());
        assert!(snap.deployment("c").is_some());
        assert_eq!(snap.deployment("a").expect("a").state.in_flight(), 1);
        assert_eq!(snap.group("group").expect("group").deployments.len(), 2);
    }
}
