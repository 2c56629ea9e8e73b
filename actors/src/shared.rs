//! Router state shared between gateway instances through Redis (`router_settings.redis_*`):
//! cooldowns, per-minute usage of each deployment and recent latencies.
//!
//! * **Writes** happen where the fact is born: a deployment actor that decides a cooldown writes it
//!   (`SET … PX`); a request is admitted under its rate-limit scopes by one atomic Lua script (the
//!   in-flight slots of `max_parallel_requests` and the `rpm`/`tpm` windows together, [`ADMIT`]),
//!   and gives back its slots and corrects its token estimate when it ends, in one pipeline with
//!   the other requests ending at that moment ([`SharedRouterState::settle_soon`]); a deployment
//!   with its own `rpm`/`tpm` reserves its minute usage with the same script over its two windows
//!   alone ([`SharedRouterState::reserve`]), so those hold exactly across instances, and its token
//!   correction joins the same settlement pipeline ([`SharedRouterState::deployment_tpm_key`]);
//!   with latency-based routing the request pushes its latency.
//! * **Round trips** are counted by [`Purpose`] (`tollgate_redis_round_trips_total`): a request
//!   whose key has limits and whose deployment has none makes one before it is answered
//!   (`admit`); its end shares a round trip (`settle`) with the others ending with it.
//! * **Reads** are one pipelined round trip every [`SYNC_EVERY`], run by the router actor, which
//!   folds what other instances wrote into each `DeploymentState`. Handlers keep reading atomics.
//! * **Failure**: every call has a [`CALL_TIMEOUT`], and a circuit breaker opens after
//!   [`BREAKER_THRESHOLD`] consecutive failures for [`BREAKER_OPEN_FOR`]. While Redis is unreachable
//!   each instance routes on its local state alone (its limits are then per instance) and no request
//!   waits on Redis longer than one timeout; readiness reports the state.
//!
//! Keys (all expire on their own): `tollgate:cooldown:{id}` (deadline, unix ms),
//! `tollgate:rpm:{id}:{minute}` and `tollgate:tpm:{id}:{minute}` (fixed one-minute windows, like the
//! local counters), `tollgate:latency:{id}` (the last samples, µs).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bb8_redis::bb8::Pool;
use bb8_redis::redis::{self, Script};
use bb8_redis::RedisConnectionManager;

use crate::deployment::{now_ms, DeploymentState, LATENCY_SAMPLES};

/// How often the router folds the shared state into the local one.
pub const SYNC_EVERY: Duration = Duration::from_millis(200);
/// Upper bound on any one Redis call, connection included.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(250);
/// Consecutive failures that open the circuit breaker.
pub const BREAKER_THRESHOLD: u32 = 3;
/// How long an open breaker skips Redis before trying again.
pub const BREAKER_OPEN_FOR: Duration = Duration::from_secs(5);

/// A request's admission under its rate-limit scopes in one round trip: an in-flight slot in every
/// lease set (a sorted set of request ids scored by lease expiry; expired leases, of an instance that
/// died, are dropped first) and one request plus `tokens` in every (requests, tokens) window, all
/// or nothing; with no lease set it is a deployment's minute reservation. KEYS: the lease sets,
/// then rpm₁, tpm₁, rpm₂, tpm₂…; ARGV: now ms, lease expiry ms, lease ttl ms, request id, number
/// of lease sets, tokens, their limits…, then rpm limit₁, tpm limit₁… (-1 = none). Returns
/// {0,0,0,0} when admitted, {1, i, in flight, 0} when lease set i is full, {2, i, used requests,
/// used tokens} when window i is.
const ADMIT: &str = r"
local now = tonumber(ARGV[1])
local np = tonumber(ARGV[5])
local tokens = tonumber(ARGV[6])
for i = 1, np do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  local n = redis.call('ZCARD', KEYS[i])
  if n >= tonumber(ARGV[6 + i]) then return {1, i, n, 0} end
end
local nw = (#KEYS - np) / 2
local base = 6 + np
for i = 1, nw do
  local rpm = tonumber(ARGV[base + 2 * i - 1])
  local tpm = tonumber(ARGV[base + 2 * i])
  local r = tonumber(redis.call('GET', KEYS[np + 2 * i - 1]) or '0')
  local t = tonumber(redis.call('GET', KEYS[np + 2 * i]) or '0')
  if rpm >= 0 and r >= rpm then return {2, i, r, t} end
  if tpm >= 0 and (t >= tpm or (t > 0 and t + tokens > tpm)) then return {2, i, r, t} end
end
for i = 1, np do
  redis.call('ZADD', KEYS[i], ARGV[2], ARGV[4])
  redis.call('PEXPIRE', KEYS[i], ARGV[3])
end
for i = 1, nw do
  redis.call('INCR', KEYS[np + 2 * i - 1])
  redis.call('EXPIRE', KEYS[np + 2 * i - 1], 120)
  redis.call('INCRBY', KEYS[np + 2 * i], tokens)
  redis.call('EXPIRE', KEYS[np + 2 * i], 120)
end
return {0, 0, 0, 0}
";

/// What a Redis round trip was for: the label of `tollgate_redis_round_trips_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A request's admission under its rate limits (in-flight slots and windows, one script).
    Admit,
    /// The end of a request: its in-flight slots given back and its token estimate corrected.
    Settle,
    /// A picked deployment's own `rpm`/`tpm` (or usage-based routing's count) reserved.
    Deployment,
    /// A latency sample shared for latency-based routing.
    Latency,
    /// A cooldown published to the other instances.
    Cooldown,
    /// The router's periodic read of the shared state.
    Sync,
    /// The response cache.
    Cache,
    /// The limits breaker asking whether Redis is back.
    Probe,
}

impl Purpose {
    pub const ALL: [Purpose; 8] = [
        Purpose::Admit,
        Purpose::Settle,
        Purpose::Deployment,
        Purpose::Latency,
        Purpose::Cooldown,
        Purpose::Sync,
        Purpose::Cache,
        Purpose::Probe,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Admit => "admit",
            Purpose::Settle => "settle",
            Purpose::Deployment => "deployment",
            Purpose::Latency => "latency",
            Purpose::Cooldown => "cooldown",
            Purpose::Sync => "sync",
            Purpose::Cache => "cache",
            Purpose::Probe => "probe",
        }
    }

    /// Round trips made for this purpose since the process started, by every Redis handle.
    pub fn round_trips(self) -> u64 {
        ROUND_TRIPS[self as usize].load(Ordering::Relaxed)
    }
}

static ROUND_TRIPS: [AtomicU64; Purpose::ALL.len()] =
    [const { AtomicU64::new(0) }; Purpose::ALL.len()];

/// Why [`SharedRouterState::admit`] refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmitRefusal {
    /// Lease set `index` already holds `in_flight` requests.
    Parallel { index: usize, in_flight: u64 },
    /// Window `index` has used `requests` and `tokens` this minute.
    Window {
        index: usize,
        requests: u64,
        tokens: u64,
    },
}

/// Whether Redis is usable, as `/health/readiness` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedStatus {
    /// No call has finished yet.
    Connecting,
    Connected,
    /// The last calls failed; routing uses local state.
    Unavailable,
}

#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error("redis circuit breaker open")]
    BreakerOpen,
    #[error("redis call timed out after {0:?}")]
    Timeout(Duration),
    #[error("redis: {0}")]
    Redis(String),
}

struct Breaker {
    consecutive_failures: AtomicU32,
    open_until_ms: AtomicU64,
    status: AtomicU8,
    generation: AtomicU64,
}

/// The Redis connection shared by every thread of one gateway process. Cheap to clone.
#[derive(Clone)]
pub struct SharedRouterState {
    url: Arc<str>,
    breaker: Arc<Breaker>,
    /// Settlements waiting for the next pipeline ([`SharedRouterState::settle_soon`]).
    settlements: Arc<std::sync::Mutex<Settlements>>,
}

/// The ends of requests not sent to Redis yet: slots to give back and token corrections.
#[derive(Default)]
struct Settlements {
    release: Vec<(Vec<String>, String)>,
    adjust: Vec<(Vec<String>, i64)>,
    /// A task is on its way to send them.
    scheduled: bool,
}

/// A thread's pool for one Redis URL and breaker generation.
type ThreadPool = (Arc<str>, u64, Pool<RedisConnectionManager>);

thread_local! {
    /// One small pool per thread: redis connections belong to the runtime that made them, and every
    /// actix worker runs its own runtime. Keyed by URL and a generation bumped after failures, so a
    /// broken connection is replaced rather than reused.
    static POOLS: RefCell<Vec<ThreadPool>> = const { RefCell::new(Vec::new()) };
}

impl std::fmt::Debug for SharedRouterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRouterState")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl SharedRouterState {
    /// `url`: `redis://[:password@]host:port[/db]` or `rediss://…`. Nothing connects until first use.
    pub fn new(url: &str) -> Result<Self, SharedError> {
        // Validate now, so a malformed URL is a start-up error rather than a silent local fallback.
        redis::Client::open(url).map_err(|e| SharedError::Redis(e.to_string()))?;
        Ok(Self {
            url: Arc::from(url),
            breaker: Arc::new(Breaker {
                consecutive_failures: AtomicU32::new(0),
                open_until_ms: AtomicU64::new(0),
                status: AtomicU8::new(SharedStatus::Connecting as u8),
                generation: AtomicU64::new(0),
            }),
            settlements: Arc::default(),
        })
    }

    pub fn status(&self) -> SharedStatus {
        match self.breaker.status.load(Ordering::Relaxed) {
            1 => SharedStatus::Connected,
            2 => SharedStatus::Unavailable,
            _ => SharedStatus::Connecting,
        }
    }

    fn pool(&self) -> Result<Pool<RedisConnectionManager>, SharedError> {
        let generation = self.breaker.generation.load(Ordering::Relaxed);
        POOLS.with(|pools| {
            let mut pools = pools.borrow_mut();
            if let Some((_, _, pool)) = pools
                .iter()
                .find(|(url, g, _)| *g == generation && **url == *self.url)
            {
                return Ok(pool.clone());
            }
            pools.retain(|(url, _, _)| **url != *self.url);
            let manager = RedisConnectionManager::new(&*self.url)
                .map_err(|e| SharedError::Redis(e.to_string()))?;
            let pool = Pool::builder()
                .max_size(4)
                .connection_timeout(CALL_TIMEOUT)
                .test_on_check_out(false)
                .retry_connection(false)
                .build_unchecked(manager);
            pools.push((self.url.clone(), generation, pool.clone()));
            Ok(pool)
        })
    }

    /// Run one command or pipeline under the timeout and the breaker.
    async fn call<T: redis::FromRedisValue>(
        &self,
        purpose: Purpose,
        build: impl FnOnce() -> Invocation,
    ) -> Result<T, SharedError> {
        let now = now_ms();
        if self.breaker.open_until_ms.load(Ordering::Relaxed) > now {
            return Err(SharedError::BreakerOpen);
        }
        let pool = self.pool()?;
        ROUND_TRIPS[purpose as usize].fetch_add(1, Ordering::Relaxed);
        let invocation = build();
        let work = async move {
            // The pool's connections are multiplexed: a clone shares the socket and pipelines its
            // commands with every other caller's, so the pooled handle goes back at once and no
            // request waits for a free connection.
            let mut conn = pool
                .get()
                .await
                .map(|pooled| (*pooled).clone())
                .map_err(|e| SharedError::Redis(e.to_string()))?;
            let conn = &mut conn;
            let result = match invocation {
                Invocation::Pipeline(p) => p.query_async(conn).await,
                Invocation::Admit { keys, args } => {
                    let mut invocation = admit_script().prepare_invoke();
                    for k in &keys {
                        invocation.key(k);
                    }
                    for a in &args {
                        invocation.arg(a);
                    }
                    invocation.invoke_async(conn).await
                }
            };
            result.map_err(|e| SharedError::Redis(e.to_string()))
        };
        let result = match actix::clock::timeout(CALL_TIMEOUT, work).await {
            Ok(r) => r,
            Err(_) => Err(SharedError::Timeout(CALL_TIMEOUT)),
        };
        match &result {
            Ok(_) => {
                self.breaker
                    .consecutive_failures
                    .store(0, Ordering::Relaxed);
                self.breaker
                    .status
                    .store(SharedStatus::Connected as u8, Ordering::Relaxed);
            }
            Err(e) => {
                let failures = self
                    .breaker
                    .consecutive_failures
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                // A fresh pool (fresh connections) for the next try.
                self.breaker.generation.fetch_add(1, Ordering::Relaxed);
                if failures >= BREAKER_THRESHOLD {
                    self.breaker.open_until_ms.store(
                        now_ms() + BREAKER_OPEN_FOR.as_millis() as u64,
                        Ordering::Relaxed,
                    );
                    if self.status() != SharedStatus::Unavailable {
                        tracing::warn!(error = %e, "redis unreachable; routing on local state until it returns");
                    }
                    self.breaker
                        .status
                        .store(SharedStatus::Unavailable as u8, Ordering::Relaxed);
                }
            }
        }
        result
    }

    /// Run a pipeline the caller built (the response cache's commands) under the same timeout,
    /// per-thread pools and breaker as every other call.
    pub async fn query<T: redis::FromRedisValue>(
        &self,
        pipeline: redis::Pipeline,
    ) -> Result<T, SharedError> {
        self.call(Purpose::Cache, move || Invocation::Pipeline(pipeline))
            .await
    }

    /// Reserve one request and `tokens` in `id`'s minute of `at_ms` across every instance (the
    /// caller's clock reading, so that the token correction later goes to the same minute's
    /// window: [`Self::deployment_tpm_key`]). `Ok(false)` when the deployment's `rpm`/`tpm` is
    /// used up; `Err` when Redis could not answer.
    pub async fn reserve(
        &self,
        id: &str,
        rpm: Option<u64>,
        tpm: Option<u64>,
        tokens: u64,
        at_ms: u64,
    ) -> Result<bool, SharedError> {
        let rpm_key = usage_key("rpm", id, at_ms / 60_000);
        let tpm_key = Self::deployment_tpm_key(id, at_ms);
        let limit = |l: Option<u64>| l.map_or(-1, |l| l.min(i64::MAX as u64) as i64);
        let window = (rpm_key, tpm_key, limit(rpm), limit(tpm));
        // No lease set: the id and the lease are not used.
        let refusal = self
            .run_admit(
                Purpose::Deployment,
                Vec::new(),
                vec![window],
                tokens,
                id,
                Duration::ZERO,
            )
            .await?;
        Ok(refusal.is_none())
    }

    /// Whether Redis answers and runs the admission script: one run of it over no scope.
    pub async fn probe(&self) -> Result<(), SharedError> {
        self.call::<Vec<i64>>(Purpose::Probe, || Invocation::Admit {
            keys: Vec::new(),
            args: vec![
                now_ms().to_string(),
                "0".into(),
                "1".into(),
                "probe".into(),
                "0".into(),
                "0".into(),
            ],
        })
        .await
        .map(|_| ())
    }

    /// The lease set holding the in-flight requests of a rate-limit scope.
    pub fn parallel_key(scope: &str) -> String {
        format!("tollgate:limit:{scope}:parallel")
    }

    /// Admit request `id` under its scopes in one round trip, all or nothing: an in-flight slot in
    /// every `(lease set, max_parallel_requests)` of `parallel`, held until [`Self::settle_soon`] or until
    /// `lease` expires (the bound on slots left by an instance that died), and one request plus
    /// `tokens` in every `(rpm key, tpm key, rpm limit, tpm limit)` of `windows` (`-1` = no limit).
    /// `Ok(None)` when admitted, else the first refusal.
    pub async fn admit(
        &self,
        parallel: Vec<(String, u64)>,
        windows: Vec<(String, String, i64, i64)>,
        tokens: u64,
        id: &str,
        lease: Duration,
    ) -> Result<Option<AdmitRefusal>, SharedError> {
        self.run_admit(Purpose::Admit, parallel, windows, tokens, id, lease)
            .await
    }

    /// One run of [`ADMIT`], counted as a round trip for `purpose`.
    async fn run_admit(
        &self,
        purpose: Purpose,
        parallel: Vec<(String, u64)>,
        windows: Vec<(String, String, i64, i64)>,
        tokens: u64,
        id: &str,
        lease: Duration,
    ) -> Result<Option<AdmitRefusal>, SharedError> {
        let now = now_ms();
        let lease_ms = lease.as_millis().max(1) as u64;
        let mut keys = Vec::with_capacity(parallel.len() + windows.len() * 2);
        let mut args = Vec::with_capacity(6 + parallel.len() + windows.len() * 2);
        args.extend([
            now.to_string(),
            (now + lease_ms).to_string(),
            lease_ms.to_string(),
            id.to_string(),
            parallel.len().to_string(),
            tokens.min(i64::MAX as u64).to_string(),
        ]);
        for (key, limit) in parallel {
            keys.push(key);
            args.push(limit.min(i64::MAX as u64).to_string());
        }
        for (rpm_key, tpm_key, rpm, tpm) in windows {
            keys.push(rpm_key);
            keys.push(tpm_key);
            args.push(rpm.to_string());
            args.push(tpm.to_string());
        }
        let reply: Vec<i64> = self
            .call(purpose, move || Invocation::Admit { keys, args })
            .await?;
        let index = |i: i64| (i - 1).max(0) as usize;
        Ok(match reply.as_slice() {
            [0, ..] => None,
            [1, i, n, ..] => Some(AdmitRefusal::Parallel {
                index: index(*i),
                in_flight: (*n).max(0) as u64,
            }),
            [2, i, r, t, ..] => Some(AdmitRefusal::Window {
                index: index(*i),
                requests: (*r).max(0) as u64,
                tokens: (*t).max(0) as u64,
            }),
            _ => {
                return Err(SharedError::Redis(
                    "unexpected reply from the admission script".into(),
                ))
            }
        })
    }

    /// Settle an admitted request soon (or, `release` = `None`, only correct token windows, as a
    /// deployment's): its end joins those of the other requests that end during the same turn of
    /// this thread's event loop, and all go to Redis in one pipeline (one round trip for a burst of
    /// endings under load, one per request when they come one at a time).
    /// Must run on an actix (Tokio) runtime.
    pub fn settle_soon(
        &self,
        release: Option<(Vec<String>, String)>,
        tpm_keys: Vec<String>,
        delta: i64,
    ) {
        let adjust = delta != 0 && !tpm_keys.is_empty();
        if release.is_none() && !adjust {
            return;
        }
        let schedule = {
            let mut pending = self.settlements.lock().unwrap_or_else(|p| p.into_inner());
            pending.release.extend(release);
            if adjust {
                pending.adjust.push((tpm_keys, delta));
            }
            !std::mem::replace(&mut pending.scheduled, true)
        };
        if !schedule {
            return;
        }
        let this = self.clone();
        actix::spawn(async move {
            // Let the other requests that are ending now add theirs.
            tokio::task::yield_now().await;
            let Settlements {
                release, adjust, ..
            } = std::mem::take(&mut *this.settlements.lock().unwrap_or_else(|p| p.into_inner()));
            let result: Result<(), SharedError> = this
                .call(Purpose::Settle, move || {
                    let mut p = redis::pipe();
                    for (keys, id) in &release {
                        for k in keys {
                            p.cmd("ZREM").arg(k).arg(id).ignore();
                        }
                    }
                    for (keys, delta) in &adjust {
                        for k in keys {
                            p.cmd("INCRBY").arg(k).arg(*delta).ignore();
                        }
                    }
                    Invocation::Pipeline(p)
                })
                .await;
            if let Err(e) = result {
                tracing::debug!(error = %e, "shared slots not released (they expire with their lease) or token windows not corrected");
            }
        });
    }

    /// The (requests, tokens) window keys of a rate-limit scope for the minute of `at_ms`.
    pub fn limit_keys(scope: &str, at_ms: u64) -> (String, String) {
        let minute = at_ms / 60_000;
        (
            format!("tollgate:limit:{scope}:rpm:{minute}"),
            format!("tollgate:limit:{scope}:tpm:{minute}"),
        )
    }

    /// The tokens window of deployment `id` for the minute of `at_ms` (the one [`Self::reserve`]
    /// counts in): the key whose estimate a request corrects through [`Self::settle_soon`].
    pub fn deployment_tpm_key(id: &str, at_ms: u64) -> String {
        usage_key("tpm", id, at_ms / 60_000)
    }

    /// Record a latency sample (µs) for `latency-based-routing`.
    pub async fn push_latency(&self, id: &str, latency: Duration) -> Result<(), SharedError> {
        let key = format!("tollgate:latency:{id}");
        let micros = latency.as_micros().min(u64::MAX as u128) as u64;
        self.call(Purpose::Latency, move || {
            let mut p = redis::pipe();
            p.cmd("LPUSH").arg(&key).arg(micros).ignore();
            p.cmd("LTRIM")
                .arg(&key)
                .arg(0)
                .arg(LATENCY_SAMPLES - 1)
                .ignore();
            p.cmd("EXPIRE").arg(&key).arg(3600).ignore();
            Invocation::Pipeline(p)
        })
        .await
    }

    /// Publish a cooldown so every instance skips the deployment until `until_ms`.
    pub async fn publish_cooldown(&self, id: &str, until_ms: u64) -> Result<(), SharedError> {
        let ttl = until_ms.saturating_sub(now_ms()).max(1);
        let key = format!("tollgate:cooldown:{id}");
        self.call(Purpose::Cooldown, move || {
            let mut p = redis::pipe();
            p.cmd("SET")
                .arg(&key)
                .arg(until_ms)
                .arg("PX")
                .arg(ttl)
                .ignore();
            Invocation::Pipeline(p)
        })
        .await
    }

    /// Fold the shared cooldowns, minute usage and latencies into the local states, in one round trip.
    pub async fn sync(
        &self,
        deployments: &[(String, Arc<DeploymentState>)],
    ) -> Result<(), SharedError> {
        let now = now_ms();
        let minute = now / 60_000;
        let ids: Vec<String> = deployments.iter().map(|(id, _)| id.clone()).collect();
        let rows: Vec<Row> = if ids.is_empty() {
            let (_pong,): (String,) = self
                .call(Purpose::Sync, || {
                    let mut p = redis::pipe();
                    p.cmd("PING");
                    Invocation::Pipeline(p)
                })
                .await?;
            Vec::new()
        } else {
            let values: Vec<redis::Value> = self
                .call(Purpose::Sync, move || {
                    let mut p = redis::pipe();
                    for id in &ids {
                        p.cmd("GET").arg(format!("tollgate:cooldown:{id}"));
                        p.cmd("GET").arg(usage_key("rpm", id, minute));
                        p.cmd("GET").arg(usage_key("tpm", id, minute));
                        p.cmd("LRANGE")
                            .arg(format!("tollgate:latency:{id}"))
                            .arg(0)
                            .arg(-1);
                    }
                    Invocation::Pipeline(p)
                })
                .await?;
            group_rows(values)
        };
        for ((_, state), (cooldown, requests, tokens, latencies)) in deployments.iter().zip(rows) {
            if let Some(until) = cooldown.filter(|u| *u > now) {
                state.adopt_cooldown_until(until);
            }
            state.adopt_minute_usage(now, requests.unwrap_or(0), tokens.unwrap_or(0));
            if !latencies.is_empty() {
                state.replace_latency_samples(&latencies);
            }
        }
        Ok(())
    }
}

fn usage_key(kind: &str, id: &str, minute: u64) -> String {
    format!("tollgate:{kind}:{id}:{minute}")
}

enum Invocation {
    Pipeline(redis::Pipeline),
    /// The admission script with its keys and arguments.
    Admit {
        keys: Vec<String>,
        args: Vec<String>,
    },
}

fn admit_script() -> &'static Script {
    static SCRIPT: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(ADMIT))
}

/// One deployment's shared state: cooldown deadline, minute requests, minute tokens, latencies.
type Row = (Option<u64>, Option<u64>, Option<u64>, Vec<u64>);

/// Four replies per deployment, in the order `sync` asked for them.
fn group_rows(values: Vec<redis::Value>) -> Vec<Row> {
    let mut out = Vec::new();
    let mut it = values.into_iter();
    while let (Some(c), Some(r), Some(t), Some(l)) = (it.next(), it.next(), it.next(), it.next()) {
        let num = |v: redis::Value| redis::from_redis_value::<Option<u64>>(v).ok().flatten();
        let list = redis::from_redis_value::<Vec<u64>>(l).unwrap_or_default();
        out.push((num(c), num(r), num(t), list));
    }
    out
}
