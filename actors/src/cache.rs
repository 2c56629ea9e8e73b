//! A read-through cache owned by an actor: the credential cache for virtual keys.
//!
//! Handlers read the published map directly (a shared read lock, no message). Only a miss sends
//! a message: the actor loads the entry once however many requests missed together, stores it and
//! answers them all. Invalidation (a key, user or team changed through the management API) removes
//! entries at once, before the API call returns, and bumps a generation so that a load already in
//! flight cannot put the old value back.
//!
//! Entries older than `refresh_after` are still served and refreshed in the background, and a
//! failed load never evicts what is cached: when the database is down, known keys keep working. A
//! key the database does not know is remembered for `negative_ttl`, so bad keys cannot hammer it.
//!
//! The map lives outside the actor: if the actor dies (a panic), its supervisor (the router, see
//! [`crate::RouterHandle::adopt`]) or the next miss starts a new one over the same entries.

use std::collections::HashMap;

/// Cached entries by key (foldhash: the key is hashed on every request).
type Slots<V> = HashMap<String, Slot<V>, foldhash::fast::RandomState>;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::future::{self, FutureExt, LocalBoxFuture, Shared};

use crate::supervise::{Child, Restartable};

/// Loads one entry from the source of truth: `Ok(None)` when it does not exist there.
pub type Loader<V> =
    Arc<dyn Fn(String) -> LocalBoxFuture<'static, Result<Option<V>, String>> + Send + Sync>;

#[derive(Clone)]
enum Slot<V> {
    Present { value: V, loaded_at: Instant },
    Missing { checked_at: Instant },
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup<V> {
    Found(V),
    NotFound,
    /// Not cached, and the source could not be reached.
    Unavailable(String),
}

struct SharedMap<V> {
    map: RwLock<Slots<V>>,
    /// Bumped by every invalidation: a load that started before it does not store its result.
    generation: AtomicU64,
    refresh_after: Duration,
    negative_ttl: Duration,
}

impl<V: Clone> SharedMap<V> {
    fn read(&self, key: &str) -> Option<Slot<V>> {
        self.map.read().ok().and_then(|m| m.get(key).cloned())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Slots<V>> {
        match self.map.write() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The handle handlers hold. Cheap to clone.
pub struct CacheHandle<V: Clone + Send + Sync + 'static> {
    shared: Arc<SharedMap<V>>,
    actor: Arc<Restartable<CacheActor<V>>>,
}

impl<V: Clone + Send + Sync + 'static> Clone for CacheHandle<V> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            actor: self.actor.clone(),
        }
    }
}

impl<V: Clone + Send + Sync + 'static> CacheHandle<V> {
    /// Start the cache actor on its own arbiter. Must run inside an actix `System`. Hand
    /// [`CacheHandle::child`] to a supervisor so that it is restarted if it dies.
    pub fn start(loader: Loader<V>, refresh_after: Duration, negative_ttl: Duration) -> Self {
        Self::start_named("cache", loader, refresh_after, negative_ttl)
    }

    /// Like [`CacheHandle::start`], named `name` in the logs.
    pub fn start_named(
        name: &str,
        loader: Loader<V>,
        refresh_after: Duration,
        negative_ttl: Duration,
    ) -> Self {
        let shared = Arc::new(SharedMap {
            map: RwLock::new(Slots::default()),
            generation: AtomicU64::new(0),
            refresh_after,
            negative_ttl,
        });
        let actor_shared = shared.clone();
        let actor = Restartable::start(name, move || CacheActor {
            shared: actor_shared.clone(),
            loader: loader.clone(),
            loading: HashMap::new(),
        });
        Self { shared, actor }
    }

    /// The cache actor as a supervised child, for [`crate::RouterHandle::adopt`].
    pub fn child(&self) -> Arc<dyn Child> {
        self.actor.clone()
    }

    /// Times the cache actor died and was restarted.
    pub fn restarts(&self) -> u64 {
        self.actor.restarts()
    }

    /// Look `key` up: from memory when cached (no message), else through the actor.
    pub async fn get(&self, key: &str) -> Lookup<V> {
        match self.shared.read(key) {
            Some(Slot::Present { value, loaded_at }) => {
                if loaded_at.elapsed() > self.shared.refresh_after {
                    // Best effort: a refresh lost with a dead actor is asked again next time.
                    self.actor.addr().do_send(Refresh(key.to_string()));
                }
                Lookup::Found(value)
            }
            Some(Slot::Missing { checked_at })
                if checked_at.elapsed() < self.shared.negative_ttl =>
            {
                Lookup::NotFound
            }
            _ => {
                let mut failure = None;
                // A dead actor (it panicked) is restarted at once and asked again.
                for _ in 0..2 {
                    match self
                        .actor
                        .addr()
                        .send(Load(key.to_string(), PhantomData))
                        .await
                    {
                        Ok(lookup) => return lookup,
                        Err(e) => {
                            failure = Some(e);
                            self.actor.ensure_alive();
                        }
                    }
                }
                let e = failure.map(|e| e.to_string()).unwrap_or_default();
                Lookup::Unavailable(format!("credential cache unavailable: {e}"))
            }
        }
    }

    /// Forget `key` (it changed or was deleted); the next lookup loads it again.
    pub fn invalidate(&self, key: &str) {
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
        self.shared.write().remove(key);
    }

    /// Forget every entry whose value matches `predicate` (something it depends on changed).
    pub fn invalidate_where(&self, predicate: impl Fn(&V) -> bool + Send + 'static) {
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
        self.shared
            .write()
            .retain(|_, slot| !matches!(slot, Slot::Present { value, .. } if predicate(value)));
    }

    /// Cached entries (present or known missing).
    pub fn len(&self) -> usize {
        self.shared.map.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

type Pending<V> = Shared<LocalBoxFuture<'static, Lookup<V>>>;

pub struct CacheActor<V: Clone + Send + Sync + 'static> {
    shared: Arc<SharedMap<V>>,
    loader: Loader<V>,
    /// Loads in progress; lookups for the same key wait on the same load.
    loading: HashMap<String, Pending<V>>,
}

impl<V: Clone + Send + Sync + 'static> Actor for CacheActor<V> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
    }
}

impl<V: Clone + Send + Sync + 'static> CacheActor<V> {
    /// The load of `key`, started now or already in progress.
    fn load(&mut self, key: String, ctx: &mut Context<Self>) -> Pending<V> {
        if let Some(pending) = self.loading.get(&key) {
            return pending.clone();
        }
        let shared = self.shared.clone();
        let generation = shared.generation.load(Ordering::SeqCst);
        let fetch = (self.loader)(key.clone());
        let store_key = key.clone();
        let pending: Pending<V> = async move {
            let result = fetch.await;
            let now = Instant::now();
            let mut map = shared.write();
            // Checked under the lock: an invalidation either happened before (skip) or waits.
            let unchanged = shared.generation.load(Ordering::SeqCst) == generation;
            match result {
                Ok(Some(value)) => {
                    if unchanged {
                        map.insert(
                            store_key,
                            Slot::Present {
                                value: value.clone(),
                                loaded_at: now,
                            },
                        );
                    }
                    Lookup::Found(value)
                }
                Ok(None) => {
                    if unchanged {
                        map.insert(store_key, Slot::Missing { checked_at: now });
                    }
                    Lookup::NotFound
                }
                // Keep serving what we had: a database outage must not lock known keys out.
                Err(error) => match map.get(&store_key) {
                    Some(Slot::Present { value, .. }) => Lookup::Found(value.clone()),
                    _ => Lookup::Unavailable(error),
                },
            }
        }
        .boxed_local()
        .shared();
        self.loading.insert(key.clone(), pending.clone());
        ctx.spawn(pending.clone().into_actor(self).map(move |_, act, _| {
            act.loading.remove(&key);
        }));
        pending
    }
}

/// Load a key that is not cached (or whose negative entry expired).
struct Load<V>(String, PhantomData<V>);

impl<V: Clone + Send + Sync + 'static> Message for Load<V> {
    type Result = Lookup<V>;
}

impl<V: Clone + Send + Sync + 'static> Handler<Load<V>> for CacheActor<V> {
    type Result = ResponseFuture<Lookup<V>>;

    fn handle(&mut self, msg: Load<V>, ctx: &mut Self::Context) -> Self::Result {
        // Another lookup may have loaded it while this message waited.
        if let Some(Slot::Present { value, .. }) = self.shared.read(&msg.0) {
            return Box::pin(future::ready(Lookup::Found(value)));
        }
        Box::pin(self.load(msg.0, ctx))
    }
}

/// Reload a cached entry in the background.
#[derive(Message)]
#[rtype(result = "()")]
struct Refresh(String);

impl<V: Clone + Send + Sync + 'static> Handler<Refresh> for CacheActor<V> {
    type Result = ();

    fn handle(&mut self, msg: Refresh, ctx: &mut Self::Context) {
        let still_stale = match self.shared.read(&msg.0) {
            Some(Slot::Present { loaded_at, .. }) => {
                loaded_at.elapsed() > self.shared.refresh_after
            }
            _ => true,
        };
        if still_stale {
            drop(self.load(msg.0, ctx));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;

    /// A source whose contents and availability the test controls, counting loads.
    #[derive(Default)]
    struct Source {
        rows: Mutex<HashMap<String, u32>>,
        down: std::sync::atomic::AtomicBool,
        loads: AtomicUsize,
    }

    fn handle(source: Arc<Source>, refresh_after: Duration) -> CacheHandle<u32> {
        let loader: Loader<u32> = Arc::new(move |key: String| {
            let source = source.clone();
            async move {
                source.loads.fetch_add(1, Ordering::SeqCst);
                actix::clock::sleep(Duration::from_millis(20)).await;
                if source.down.load(Ordering::SeqCst) {
                    return Err("database down".to_string());
                }
                Ok(source.rows.lock().unwrap().get(&key).copied())
            }
            .boxed_local()
        });
        CacheHandle::start(loader, refresh_after, Duration::from_secs(60))
    }

    #[actix_rt::test]
    async fn concurrent_misses_load_once_and_warm_hits_never_load() {
        let source = Arc::new(Source::default());
        source.rows.lock().unwrap().insert("k".into(), 7);
        let cache = handle(source.clone(), Duration::from_secs(60));
        let lookups = futures_util::future::join_all((0..50).map(|_| cache.get("k"))).await;
        assert!(lookups.iter().all(|l| *l == Lookup::Found(7)));
        assert_eq!(source.loads.load(Ordering::SeqCst), 1);
        for _ in 0..100 {
            assert_eq!(cache.get("k").await, Lookup::Found(7));
        }
        assert_eq!(source.loads.load(Ordering::SeqCst), 1);
        assert_eq!(cache.get("missing").await, Lookup::NotFound);
        assert_eq!(cache.get("missing").await, Lookup::NotFound);
        assert_eq!(
            source.loads.load(Ordering::SeqCst),
            2,
            "unknown keys are remembered"
        );
    }

    #[actix_rt::test]
    async fn invalidation_reloads_and_an_outage_keeps_known_entries() {
        let source = Arc::new(Source::default());
        source.rows.lock().unwrap().insert("k".into(), 1);
        let cache = handle(source.clone(), Duration::ZERO);
        assert_eq!(cache.get("k").await, Lookup::Found(1));
        source.rows.lock().unwrap().insert("k".into(), 2);
        cache.invalidate("k");
        actix::clock::sleep(Duration::from_millis(10)).await;
        assert_eq!(cache.get("k").await, Lookup::Found(2));

        source.down.store(true, Ordering::SeqCst);
        // Stale (refresh_after = 0) and the refresh fails: still served.
        for _ in 0..3 {
            assert_eq!(cache.get("k").await, Lookup::Found(2));
            actix::clock::sleep(Duration::from_millis(30)).await;
        }
        assert!(matches!(
            cache.get("never-seen").await,
            Lookup::Unavailable(_)
        ));

        cache.invalidate_where(|v| *v == 2);
        actix::clock::sleep(Duration::from_millis(10)).await;
        assert!(matches!(cache.get("k").await, Lookup::Unavailable(_)));
    }

    #[actix_rt::test]
    async fn a_cache_actor_that_panicked_is_restarted_and_keeps_its_entries() {
        let blow_up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let b = blow_up.clone();
        let loader: Loader<u32> = Arc::new(move |key: String| {
            let b = b.clone();
            async move {
                if key == "boom" && b.swap(false, Ordering::SeqCst) {
                    panic!("loader blew up");
                }
                Ok(Some(key.len() as u32))
            }
            .boxed_local()
        });
        let cache = CacheHandle::start(loader, Duration::from_secs(60), Duration::from_secs(60));
        assert_eq!(cache.get("k").await, Lookup::Found(1));
        // The load panics and takes the actor down; the lookup restarts it and asks again.
        assert_eq!(cache.get("boom").await, Lookup::Found(4));
        assert_eq!(cache.restarts(), 1);
        assert!(!blow_up.load(Ordering::SeqCst));
        assert_eq!(cache.get("k").await, Lookup::Found(1));
        assert_eq!(cache.len(), 2, "entries survive the restart");
        assert!(!cache.child().ensure_alive(), "alive: nothing to restart");
    }
}
