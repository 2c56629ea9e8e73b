//! Router state shared between gateway instances through Redis (`router_settings.redis_*`):
//! cooldowns, per-minute usage of each deployment and recent latencies.
//!
//! * **Writes** happen where the fact is born: a deployment actor that decides a cooldown writes it
//!   (`SET … PX`); a request reserves its deployment's minute usage with an atomic Lua script (so
//!   deployment `rpm`/`tpm` hold exactly across instances) and pushes its latency.
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
use std::collections::HashMap;
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

/// Check every (requests, tokens) window pair against its limits, then count in all of them, in
/// one atomic step. KEYS: rpm₁, tpm₁, rpm₂, tpm₂…; ARGV: tokens, rpm limit₁, tpm limit₁… (-1 =
/// none). Returns {0,0,0} when admitted, else {i, used requests, used tokens} of the first refusal.
const RESERVE: &str = r"
local tokens = tonumber(ARGV[1])
local n = #KEYS / 2
for i = 1, n do
  local rpm = tonumber(ARGV[2 * i])
  local tpm = tonumber(ARGV[2 * i + 1])
  local r = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  local t = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  if rpm >= 0 and r >= rpm then return {i, r, t} end
  if tpm >= 0 and (t >= tpm or (t > 0 and t + tokens > tpm)) then return {i, r, t} end
end
for i = 1, n do
  redis.call('INCR', KEYS[2 * i - 1])
  redis.call('EXPIRE', KEYS[2 * i - 1], 120)
  redis.call('INCRBY', KEYS[2 * i], tokens)
  redis.call('EXPIRE', KEYS[2 * i], 120)
end
return {0, 0, 0}
";

/// Take one in-flight slot in every scope's lease set, all or nothing. Each scope is a sorted set of
/// request ids scored by lease expiry; expired leases (requests of an instance that died) are
/// dropped first. KEYS: one set per scope; ARGV: now ms, lease expiry ms, lease ttl ms, request id,
/// limit₁, limit₂… Returns {0,0} when admitted, else {i, requests in flight} of the first refusal.
const PARALLEL: &str = r"
local now = tonumber(ARGV[1])
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  local n = redis.call('ZCARD', KEYS[i])
  if n >= tonumber(ARGV[4 + i]) then return {i, n} end
end
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], ARGV[2], ARGV[4])
  redis.call('PEXPIRE', KEYS[i], ARGV[3])
end
return {0, 0}
";

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
}

thread_local! {
    /// One small pool per thread: redis connections belong to the runtime that made them, and every
    /// actix worker runs its own runtime. Keyed by URL and a generation bumped after failures, so a
    /// broken connection is replaced rather than reused.
    static POOLS: RefCell<HashMap<(String, u64), Pool<RedisConnectionManager>>> = RefCell::new(HashMap::new());
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
        let key = (self.url.to_string(), generation);
        POOLS.with(|pools| {
            let mut pools = pools.borrow_mut();
            if let Some(pool) = pools.get(&key) {
                return Ok(pool.clone());
            }
            pools.retain(|(url, _), _| url.as_str() != &*self.url);
            let manager = RedisConnectionManager::new(&*self.url)
                .map_err(|e| SharedError::Redis(e.to_string()))?;
            let pool = Pool::builder()
                .max_size(4)
                .connection_timeout(CALL_TIMEOUT)
                .test_on_check_out(false)
                .retry_connection(false)
                .build_unchecked(manager);
            pools.insert(key, pool.clone());
            Ok(pool)
        })
    }

    /// Run one command or pipeline under the timeout and the breaker.
    async fn call<T: redis::FromRedisValue>(
        &self,
        build: impl FnOnce() -> Invocation,
    ) -> Result<T, SharedError> {
        let now = now_ms();
        if self.breaker.open_until_ms.load(Ordering::Relaxed) > now {
            return Err(SharedError::BreakerOpen);
        }
        let pool = self.pool()?;
        let invocation = build();
        let work = async move {
            let mut conn = pool
                .get()
                .await
                .map_err(|e| SharedError::Redis(e.to_string()))?;
            let result = match invocation {
                Invocation::Pipeline(p) => p.query_async(&mut *conn).await,
                Invocation::Reserve { keys, args } => {
                    let mut invocation = reserve_script().prepare_invoke();
                    for k in &keys {
                        invocation.key(k);
                    }
                    for a in args {
                        invocation.arg(a);
                    }
                    invocation.invoke_async(&mut *conn).await
                }
                Invocation::Parallel { keys, args } => {
                    let mut invocation = parallel_script().prepare_invoke();
                    for k in &keys {
                        invocation.key(k);
                    }
                    for a in &args {
                        invocation.arg(a);
                    }
                    invocation.invoke_async(&mut *conn).await
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
        self.call(move || Invocation::Pipeline(pipeline)).await
    }

    /// Reserve one request and `tokens` of `id`'s current minute across every instance. `Ok(false)`
    /// when the deployment's `rpm`/`tpm` is used up; `Err` when Redis could not answer.
    pub async fn reserve(
        &self,
        id: &str,
        rpm: Option<u64>,
        tpm: Option<u64>,
        tokens: u64,
    ) -> Result<bool, SharedError> {
        let minute = now_ms() / 60_000;
        let (rpm_key, tpm_key) = (usage_key("rpm", id, minute), usage_key("tpm", id, minute));
        let limit = |l: Option<u64>| l.map_or(-1, |l| l.min(i64::MAX as u64) as i64);
        let (rpm, tpm) = (limit(rpm), limit(tpm));
        let refused = self
            .reserve_windows(vec![(rpm_key, tpm_key, rpm, tpm)], tokens)
            .await?;
        Ok(refused.is_none())
    }

    /// Reserve one request and `tokens` in several (requests, tokens) windows at once, each with
    /// its limits (`-1` = none): all or nothing. `Ok(None)` when admitted, else the index of the
    /// first window that refused with its used requests and tokens.
    pub async fn reserve_windows(
        &self,
        windows: Vec<(String, String, i64, i64)>,
        tokens: u64,
    ) -> Result<Option<(usize, u64, u64)>, SharedError> {
        let mut keys = Vec::with_capacity(windows.len() * 2);
        let mut args = vec![tokens.min(i64::MAX as u64) as i64];
        for (rpm_key, tpm_key, rpm, tpm) in windows {
            keys.push(rpm_key);
            keys.push(tpm_key);
            args.push(rpm);
            args.push(tpm);
        }
        let reply: Vec<i64> = self
            .call(move || Invocation::Reserve { keys, args })
            .await?;
        Ok(match reply.as_slice() {
            [0, ..] => None,
            [i, r, t, ..] => Some((
                (*i - 1).max(0) as usize,
                (*r).max(0) as u64,
                (*t).max(0) as u64,
            )),
            _ => {
                return Err(SharedError::Redis(
                    "unexpected reply from the reservation script".into(),
                ))
            }
        })
    }

    /// The lease set holding the in-flight requests of a rate-limit scope.
    pub fn parallel_key(scope: &str) -> String {
        format!("tollgate:limit:{scope}:parallel")
    }

    /// Take an in-flight slot for request `id` in every `(lease set, max_parallel_requests)`, all
    /// or nothing, held until [`Self::release_parallel`] or until `lease` expires (the bound on
    /// slots left by an instance that died). `Ok(None)` when admitted, else the index of the first
    /// full scope and its requests in flight.
    pub async fn acquire_parallel(
        &self,
        scopes: Vec<(String, u64)>,
        id: &str,
        lease: Duration,
    ) -> Result<Option<(usize, u64)>, SharedError> {
        let now = now_ms();
        let lease_ms = lease.as_millis().max(1) as u64;
        let mut keys = Vec::with_capacity(scopes.len());
        let mut args = vec![
            now.to_string(),
            (now + lease_ms).to_string(),
            lease_ms.to_string(),
            id.to_string(),
        ];
        for (key, limit) in scopes {
            keys.push(key);
            args.push(limit.min(i64::MAX as u64).to_string());
        }
        let reply: Vec<i64> = self
            .call(move || Invocation::Parallel { keys, args })
            .await?;
        Ok(match reply.as_slice() {
            [0, ..] => None,
            [i, n, ..] => Some(((*i - 1).max(0) as usize, (*n).max(0) as u64)),
            _ => {
                return Err(SharedError::Redis(
                    "unexpected reply from the in-flight script".into(),
                ))
            }
        })
    }

    /// Give back the in-flight slots of request `id`.
    pub async fn release_parallel(&self, keys: Vec<String>, id: String) -> Result<(), SharedError> {
        self.call(move || {
            let mut p = redis::pipe();
            for k in &keys {
                p.cmd("ZREM").arg(k).arg(&id).ignore();
            }
            Invocation::Pipeline(p)
        })
        .await
    }

    /// The (requests, tokens) window keys of a rate-limit scope for the minute of `at_ms`.
    pub fn limit_keys(scope: &str, at_ms: u64) -> (String, String) {
        let minute = at_ms / 60_000;
        (
            format!("tollgate:limit:{scope}:rpm:{minute}"),
            format!("tollgate:limit:{scope}:tpm:{minute}"),
        )
    }

    /// Add `delta` (actual − estimated tokens) to token windows.
    pub async fn adjust_windows(
        &self,
        tpm_keys: Vec<String>,
        delta: i64,
    ) -> Result<(), SharedError> {
        if delta == 0 || tpm_keys.is_empty() {
            return Ok(());
        }
        self.call(move || {
            let mut p = redis::pipe();
            for k in &tpm_keys {
                p.cmd("INCRBY").arg(k).arg(delta).ignore();
            }
            Invocation::Pipeline(p)
        })
        .await
    }

    /// Replace a token estimate with the real count (`delta` = actual − estimated).
    pub async fn adjust_tokens(
        &self,
        id: &str,
        reserved_at_ms: u64,
        delta: i64,
    ) -> Result<(), SharedError> {
        if delta == 0 {
            return Ok(());
        }
        let key = usage_key("tpm", id, reserved_at_ms / 60_000);
        self.call(move || {
            let mut p = redis::pipe();
            p.cmd("INCRBY").arg(&key).arg(delta).ignore();
            Invocation::Pipeline(p)
        })
        .await
    }

    /// Record a latency sample (µs) for `latency-based-routing`.
    pub async fn push_latency(&self, id: &str, latency: Duration) -> Result<(), SharedError> {
        let key = format!("tollgate:latency:{id}");
        let micros = latency.as_micros().min(u64::MAX as u128) as u64;
        self.call(move || {
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
        self.call(move || {
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
                .call(|| {
                    let mut p = redis::pipe();
                    p.cmd("PING");
                    Invocation::Pipeline(p)
                })
                .await?;
            Vec::new()
        } else {
            let values: Vec<redis::Value> = self
                .call(move || {
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
    /// The reservation script with its keys and integer arguments.
    Reserve {
        keys: Vec<String>,
        args: Vec<i64>,
    },
    /// The in-flight lease script with its keys and arguments.
    Parallel {
        keys: Vec<String>,
        args: Vec<String>,
    },
}

fn parallel_script() -> &'static Script {
    static SCRIPT: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(PARALLEL))
}

fn reserve_script() -> &'static Script {
    static SCRIPT: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(RESERVE))
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
