//! Restarting actors that died. A panic inside an actix handler stops that actor for good (actix's
//! `Supervisor` only restarts actors that stop themselves), so a supervisor checks liveness and
//! starts a fresh actor on the same arbiter. What an actor must not lose lives outside it (an `Arc`
//! the factory hands to every incarnation), so a restart rebuilds the actor from that state.
//!
//! The [`crate::RouterActor`] is the root of the tree: it restarts its deployment actors itself and
//! every [`Child`] it adopted ([`crate::RouterHandle::adopt`]): the spend tracker, the rate
//! limiter and the caches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use arc_swap::ArcSwap;

/// An actor a supervisor keeps alive.
pub trait Child: Send + Sync + 'static {
    /// What it is, for logs.
    fn name(&self) -> &str;
    /// Start a fresh actor if the current one died; `true` when it did.
    fn ensure_alive(&self) -> bool;
    /// How many times the actor was restarted.
    fn restarts(&self) -> u64;
}

type Factory<A> = Box<dyn Fn() -> A + Send + Sync>;

/// An actor on its own arbiter, started again by [`Child::ensure_alive`] from its factory after
/// it died. Callers read its current address with [`Restartable::addr`].
pub struct Restartable<A: Actor<Context = Context<A>>> {
    name: String,
    arbiter: ArbiterHandle,
    make: Arc<Factory<A>>,
    addr: ArcSwap<Addr<A>>,
    restarts: AtomicU64,
    /// One restart at a time.
    restarting: Mutex<()>,
}

impl<A: Actor<Context = Context<A>>> Restartable<A> {
    /// Start the first actor on a new arbiter. Must run inside an actix `System`.
    pub fn start(name: &str, make: impl Fn() -> A + Send + Sync + 'static) -> Arc<Self> {
        let arbiter = Arbiter::new().handle();
        let make: Arc<Factory<A>> = Arc::new(Box::new(make));
        let addr = Self::spawn(&arbiter, &make);
        Arc::new(Self {
            name: name.to_string(),
            arbiter,
            make,
            addr: ArcSwap::from_pointee(addr),
            restarts: AtomicU64::new(0),
            restarting: Mutex::new(()),
        })
    }

    fn spawn(arbiter: &ArbiterHandle, make: &Arc<Factory<A>>) -> Addr<A> {
        let make = make.clone();
        A::start_in_arbiter(arbiter, move |_| make())
    }

    /// The current actor's address (it may have died since; see [`Child::ensure_alive`]).
    pub fn addr(&self) -> Arc<Addr<A>> {
        self.addr.load_full()
    }
}

impl<A: Actor<Context = Context<A>>> Child for Restartable<A> {
    fn name(&self) -> &str {
        &self.name
    }

    fn ensure_alive(&self) -> bool {
        if self.addr.load().connected() {
            return false;
        }
        let _one = self.restarting.lock().unwrap_or_else(|p| p.into_inner());
        if self.addr.load().connected() {
            return false;
        }
        let restarts = self.restarts.fetch_add(1, Ordering::SeqCst) + 1;
        tracing::error!(actor = %self.name, restarts, "actor died; restarting it");
        self.addr
            .store(Arc::new(Self::spawn(&self.arbiter, &self.make)));
        true
    }

    fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::SeqCst)
    }
}

/// Hand a child to a supervisor (the router), which checks it with its own children.
pub struct Adopt(pub Arc<dyn Child>);

impl Message for Adopt {
    type Result = ();
}

#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use futures_util::future::LocalBoxFuture;

    /// A router supervises without deployments: tests of adopted actors start it over this.
    pub struct NoUpstream;

    impl crate::Upstream for NoUpstream {
        fn id(&self) -> &str {
            "none"
        }
        fn model_group(&self) -> &str {
            "none"
        }
        fn probe(self: Arc<Self>) -> LocalBoxFuture<'static, Result<(), String>> {
            Box::pin(async { Ok(()) })
        }
    }
}
