//! The response cache (`litellm_settings.cache`): finished responses stored under a key the gateway
//! computes per request, as opaque bytes, in process or in Redis, with an optional semantic index
//! (embeddings of prompts) to find a cached response for a similar request.
//!
//! * **Local** (`local`, `local-semantic`): a map in the process bounded by `max_entries` and by
//!   `max_bytes` of bodies, evicting the least recently used entry (a hit refreshes it), each entry
//!   with its own TTL. A `put` stores at once, so the next request on this instance hits.
//! * **Redis** (`redis`, `redis-semantic`): no local layer, so a delete or a flush on one instance is
//!   seen by all. An entry is `{prefix}{key}` = 8-byte big-endian `created_ms` then the body, written
//!   with `SET … PX ttl`. A `put` queues the write for the [`ResponseCacheActor`], which sends the
//!   queue in pipelines, one at a time; a failed write is counted (`redis_errors`), logged at debug
//!   and lost (it is a cache). A `get` is one `GET` through [`SharedRouterState`]: one
//!   [`crate::shared::CALL_TIMEOUT`] at most, and at once `Err` while its breaker is open, so a Redis
//!   outage never holds a request up: the gateway serves without the cache on `Err`.
//! * **Semantic index** ([`crate::semantic_index`]): vectors grouped by partition, normalized at
//!   insert, searched by an exact linear scan of the partition (O(n·d) per lookup, n vectors of d
//!   dimensions), bounded by `max_entries` (the oldest goes first). Measured on the development
//!   machine (2 cores, shared with other builds) for 10,000 vectors × 1,536 dimensions in one
//!   partition: 5–7 ms per lookup optimized (`rustc -O` of `semantic_index.rs`, its ignored
//!   measurement test), 0.16–0.2 s unoptimized (the ignored measurement tests of the dev-profile test
//!   build). The scan runs on the calling thread under a read lock. The index is always in process,
//!   so `nearest` never waits on Redis. With Redis the vectors are also persisted, so that
//!   other instances and restarts find them: `{prefix}vector:{key}` holds the vector (expiry,
//!   partition, f32 little endian; same TTL as the entry) and the sorted set `{prefix}vectors` lists
//!   the keys, scored by a sequence number Redis assigns at the write (`{prefix}vectors:seq`), and is
//!   trimmed to `max_entries`. The actor loads the set at start and every tick fetches the members
//!   scored above the last one it saw (one round trip; a Redis-assigned score means a write that
//!   landed late is never skipped, as a client clock could). A vector whose entry is gone (deleted,
//!   flushed or evicted elsewhere) is dropped when `get` of its key finds nothing, or by its TTL.
//!
//! Gateway keys must not start with `vector:` nor be `vectors`/`vectors:seq`: those names hold the
//! index under the same prefix. Scripts touch keys they do not declare, so Redis Cluster is not
//! supported (nor is it by [`SharedRouterState`]).
//!
//! The state lives outside the actor (an `Arc` handed to every incarnation), so a restart by the
//! supervisor ([`crate::RouterHandle::adopt`] of [`ResponseCache::child`]) loses nothing, not even
//! queued writes. The actor wakes every `tick` to sweep expired local entries and vectors, send the
//! queued writes and, with `redis-semantic`, fetch the vectors other instances wrote (one sync at a
//! time, never piling up).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use redis::Value;

use crate::deployment::now_ms;
use crate::semantic_index::{normalize, SemanticIndex};
use crate::shared::{SharedError, SharedRouterState, SharedStatus};
use crate::supervise::{Child, Restartable};

/// The key prefix of Tollgate's response cache in Redis.
pub const DEFAULT_PREFIX: &str = "tollgate:cache:";
/// How often the cache actor wakes up by default.
pub const TICK: Duration = Duration::from_secs(1);
/// Writes waiting for Redis beyond which new ones are dropped (and counted): a slow Redis must
/// not grow the queue without bound.
const QUEUE_MAX_WRITES: usize = 4_096;
/// Body bytes waiting for Redis beyond which new writes are dropped.
const QUEUE_MAX_BYTES: usize = 64 << 20;
/// Bytes per pipeline (at least one write), so that one batch fits in a call timeout.
const BATCH_BYTES: usize = 1 << 20;
/// Vectors fetched per round trip of a semantic sync.
const SYNC_BATCH: usize = 500;

/// Store one vector and list it: the sequence number is assigned in the same atomic step as the
/// listing, so a sync that fetched everything above some number can never miss a later write.
/// The set is trimmed to `max_entries`, and the vectors trimmed off are deleted with it.
/// KEYS: vector key, set, sequence; ARGV: payload, member, ttl ms (0 = none), max entries,
/// vector key prefix.
const PUT_VECTOR: &str = r"
local seq = redis.call('INCR', KEYS[3])
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('ZADD', KEYS[2], seq, ARGV[2])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if over > 0 then
  local old = redis.call('ZRANGE', KEYS[2], 0, over - 1)
  for _, member in ipairs(old) do
    redis.call('UNLINK', ARGV[5] .. member)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, over - 1)
end
return seq
";

/// The vectors listed above a sequence number, with their payloads. When the counter is below
/// the number asked for, the data was lost (a Redis restart without persistence) and it starts over
/// from the beginning. KEYS: set, sequence; ARGV: since, batch size, vector key prefix. Returns
/// {since used, member₁, score₁, payload₁ or nil, …}.
const FETCH_VECTORS: &str = r"
local since = ARGV[1]
local top = tonumber(redis.call('GET', KEYS[2]) or '0')
if top < tonumber(since) then since = '0' end
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. since, '+inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local out = {since}
for i = 1, #members, 2 do
  out[#out + 1] = members[i]
  out[#out + 1] = members[i + 1]
  out[#out + 1] = redis.call('GET', ARGV[3] .. members[i])
end
return out
";

/// Where entries live.
#[derive(Debug, Clone)]
pub enum CacheBackend {
    /// In this process only.
    Local,
    /// In Redis, through a [`SharedRouterState`] built on the cache's own URL (its own breaker).
    Redis(SharedRouterState),
}

/// How the cache is set up.
#[derive(Debug, Clone)]
pub struct ResponseCacheSettings {
    pub backend: CacheBackend,
    /// Keep a vector index (`redis-semantic`, or `local-semantic`).
    pub semantic: bool,
    /// Local: entries bound; semantic: vectors bound (per instance, and of the Redis set).
    pub max_entries: usize,
    /// Local: bound on the total bytes of bodies (keys and bookkeeping not counted).
    pub max_bytes: usize,
    /// A semantic hit needs a cosine similarity of at least this.
    pub similarity_threshold: f32,
    /// How often the actor wakes up: TTL sweep, queued writes, semantic sync from Redis.
    pub tick: Duration,
    /// Every Redis key of the cache starts with it ([`DEFAULT_PREFIX`]); `flush` removes only these.
    pub prefix: String,
}

impl Default for ResponseCacheSettings {
    fn default() -> Self {
        Self {
            backend: CacheBackend::Local,
            semantic: false,
            max_entries: 10_000,
            max_bytes: 256 << 20,
            similarity_threshold: 0.8,
            tick: TICK,
            prefix: DEFAULT_PREFIX.to_string(),
        }
    }
}

/// One cached response.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedEntry {
    /// When the response was made (unix ms).
    pub created_ms: u64,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// Redis is down, slow or its breaker is open; it never takes longer than one call timeout.
    #[error("response cache unavailable: {0}")]
    Unavailable(String),
}

impl From<SharedError> for CacheError {
    fn from(e: SharedError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// Counters since start. `entries` and `bytes` are the local store's (0 with Redis, whose entries
/// are not counted per instance); `vectors` is this instance's semantic index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    pub entries: u64,
    pub bytes: u64,
    /// Local entries evicted to stay within `max_entries` / `max_bytes`.
    pub evictions: u64,
    /// Local entries dropped because their TTL passed.
    pub expired: u64,
    /// Redis calls that failed (reads, deletes, write batches, syncs).
    pub redis_errors: u64,
    /// Writes dropped because too many were waiting for Redis.
    pub writes_dropped: u64,
    pub vectors: u64,
}

/// A local entry and its bookkeeping.
struct LocalSlot {
    entry: CachedEntry,
    /// Last use: its key in the recency order.
    used: u64,
    /// Deadline and its key in the expiry order.
    expires: Option<(Instant, u64)>,
}

/// The local store: a map with a recency order (LRU) and an expiry order, each a `BTreeMap` keyed
/// by a stamp, so that a hit, an eviction and a sweep cost O(log n).
struct LocalStore {
    map: HashMap<Arc<str>, LocalSlot, foldhash::fast::RandomState>,
    recency: BTreeMap<u64, Arc<str>>,
    expiry: BTreeMap<(Instant, u64), Arc<str>>,
    stamp: u64,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

/// What a local lookup found.
enum Found {
    Hit(CachedEntry),
    Expired,
    Miss,
}

impl LocalStore {
    fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            map: HashMap::default(),
            recency: BTreeMap::new(),
            expiry: BTreeMap::new(),
            stamp: 0,
            bytes: 0,
            max_entries,
            max_bytes,
        }
    }

    fn next_stamp(&mut self) -> u64 {
        self.stamp += 1;
        self.stamp
    }

    fn get(&mut self, key: &str, now: Instant) -> Found {
        let expired = match self.map.get(key) {
            None => return Found::Miss,
            Some(slot) => slot.expires.is_some_and(|(at, _)| at <= now),
        };
        if expired {
            self.remove(key);
            return Found::Expired;
        }
        let stamp = self.next_stamp();
        let Some((name, slot)) = self.map.get_key_value(key) else {
            return Found::Miss;
        };
        let (name, old) = (name.clone(), slot.used);
        self.recency.remove(&old);
        self.recency.insert(stamp, name);
        let slot = self.map.get_mut(key).expect("present: looked up above");
        slot.used = stamp;
        Found::Hit(slot.entry.clone())
    }

    /// Store `entry` under `key`, replacing what was there; returns how many entries were evicted.
    /// A body larger than `max_bytes` is not stored (and the key's older entry goes).
    fn insert(&mut self, key: String, entry: CachedEntry, expires: Option<Instant>) -> usize {
        self.remove(&key);
        let size = entry.body.len();
        if size > self.max_bytes || self.max_entries == 0 {
            return 0;
        }
        let key: Arc<str> = Arc::from(key);
        let used = self.next_stamp();
        let expires = expires.map(|at| (at, used));
        self.recency.insert(used, key.clone());
        if let Some(at) = expires {
            self.expiry.insert(at, key.clone());
        }
        self.bytes += size;
        self.map.insert(
            key,
            LocalSlot {
                entry,
                used,
                expires,
            },
        );
        let mut evicted = 0;
        while self.map.len() > self.max_entries || self.bytes > self.max_bytes {
            let Some((_, oldest)) = self.recency.first_key_value() else {
                break;
            };
            let oldest = oldest.clone();
            self.remove(&oldest);
            evicted += 1;
        }
        evicted
    }

    fn remove(&mut self, key: &str) -> bool {
        let Some(slot) = self.map.remove(key) else {
            return false;
        };
        self.recency.remove(&slot.used);
        if let Some(at) = slot.expires {
            self.expiry.remove(&at);
        }
        self.bytes -= slot.entry.body.len();
        true
    }

    /// Drop the entries expired at `now`; returns how many.
    fn sweep(&mut self, now: Instant) -> usize {
        let mut swept = 0;
        while let Some(((at, _), key)) = self.expiry.first_key_value() {
            if *at > now {
                break;
            }
            let key = key.clone();
            self.remove(&key);
            swept += 1;
        }
        swept
    }

    fn clear(&mut self) {
        self.map.clear();
        self.recency.clear();
        self.expiry.clear();
        self.bytes = 0;
    }
}

/// A write waiting for the actor to send it to Redis.
enum Write {
    Entry {
        key: String,
        entry: CachedEntry,
        ttl_ms: Option<u64>,
    },
    Vector {
        key: String,
        partition: String,
        vector: Box<[f32]>,
        ttl_ms: Option<u64>,
    },
}

impl Write {
    fn size(&self) -> usize {
        match self {
            Write::Entry { entry, .. } => entry.body.len() + 8,
            Write::Vector {
                partition, vector, ..
            } => partition.len() + vector.len() * 4 + 12,
        }
    }
}

#[derive(Default)]
struct WriteQueue {
    writes: VecDeque<Write>,
    bytes: usize,
}

enum Store {
    Local(Mutex<LocalStore>),
    Redis(SharedRouterState),
}

#[derive(Default)]
struct Counters {
    entries: AtomicU64,
    bytes: AtomicU64,
    evictions: AtomicU64,
    expired: AtomicU64,
    redis_errors: AtomicU64,
    writes_dropped: AtomicU64,
    vectors: AtomicU64,
}

/// What the actor owns and every incarnation of it is handed.
struct Inner {
    store: Store,
    index: Option<RwLock<SemanticIndex>>,
    threshold: f32,
    max_entries: usize,
    prefix: String,
    kind: &'static str,
    counters: Counters,
    queue: Mutex<WriteQueue>,
    /// The highest sequence number of the Redis vector set this instance has fetched.
    synced_seq: AtomicU64,
    /// Bumped when a flush starts and when it ends: a vector sync that read Redis across a flush
    /// drops what it read, so a flushed cache does not get its vectors back.
    flushes: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}

/// `Duration` to whole milliseconds, at least 1 for any non-zero duration.
fn ttl_millis(ttl: Duration) -> u64 {
    (ttl.as_nanos().div_ceil(1_000_000)).min(u64::MAX as u128) as u64
}

impl Inner {
    fn entry_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn vector_prefix(&self) -> String {
        format!("{}vector:", self.prefix)
    }

    fn vectors_key(&self) -> String {
        format!("{}vectors", self.prefix)
    }

    fn seq_key(&self) -> String {
        format!("{}vectors:seq", self.prefix)
    }

    fn local_counts(&self, store: &LocalStore) {
        self.counters
            .entries
            .store(store.map.len() as u64, Ordering::Relaxed);
        self.counters
            .bytes
            .store(store.bytes as u64, Ordering::Relaxed);
    }

    fn redis_failed(&self, what: &str, error: &dyn std::fmt::Display) {
        self.counters.redis_errors.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(error = %error, "response cache: redis {what} failed");
    }

    fn enqueue(&self, write: Write) {
        let size = write.size();
        let mut queue = lock(&self.queue);
        if queue.writes.len() >= QUEUE_MAX_WRITES || queue.bytes + size > QUEUE_MAX_BYTES {
            drop(queue);
            self.counters.writes_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        queue.bytes += size;
        queue.writes.push_back(write);
    }

    /// The next writes to send, about [`BATCH_BYTES`] of them (at least one).
    fn take_batch(&self) -> Vec<Write> {
        let mut queue = lock(&self.queue);
        let mut batch = Vec::new();
        let mut bytes = 0;
        while bytes < BATCH_BYTES {
            let Some(write) = queue.writes.pop_front() else {
                break;
            };
            let size = write.size();
            queue.bytes -= size;
            bytes += size;
            batch.push(write);
        }
        batch
    }

    /// One pipeline writing `batch`.
    fn write_pipeline(&self, batch: Vec<Write>) -> redis::Pipeline {
        let mut p = redis::pipe();
        let (vectors, vector_prefix, seq) =
            (self.vectors_key(), self.vector_prefix(), self.seq_key());
        for write in batch {
            match write {
                Write::Entry { key, entry, ttl_ms } => {
                    let mut value = Vec::with_capacity(8 + entry.body.len());
                    value.extend_from_slice(&entry.created_ms.to_be_bytes());
                    value.extend_from_slice(&entry.body);
                    let cmd = p.cmd("SET").arg(self.entry_key(&key)).arg(value);
                    if let Some(ttl) = ttl_ms {
                        cmd.arg("PX").arg(ttl);
                    }
                    cmd.ignore();
                }
                Write::Vector {
                    key,
                    partition,
                    vector,
                    ttl_ms,
                } => {
                    let expires_ms = ttl_ms.map_or(0, |t| now_ms() + t);
                    p.cmd("EVAL")
                        .arg(PUT_VECTOR)
                        .arg(3)
                        .arg(format!("{vector_prefix}{key}"))
                        .arg(&vectors)
                        .arg(&seq)
                        .arg(encode_vector(expires_ms, &partition, &vector))
                        .arg(&key)
                        .arg(ttl_ms.unwrap_or(0))
                        .arg(self.max_entries)
                        .arg(&vector_prefix)
                        .ignore();
                }
            }
        }
        p
    }

    /// Fetch the vectors other instances (and this one) persisted since the last sync, in batches.
    async fn sync_vectors(self: Arc<Self>, redis: SharedRouterState) -> Result<usize, SharedError> {
        let Some(index) = &self.index else {
            return Ok(0);
        };
        let mut added = 0;
        loop {
            let since = self.synced_seq.load(Ordering::Acquire);
            let flushes = self.flushes.load(Ordering::Acquire);
            let mut p = redis::pipe();
            p.cmd("EVAL")
                .arg(FETCH_VECTORS)
                .arg(2)
                .arg(self.vectors_key())
                .arg(self.seq_key())
                .arg(since)
                .arg(SYNC_BATCH)
                .arg(self.vector_prefix());
            let (reply,): (Vec<Value>,) = redis.query(p).await?;
            let mut reply = reply.into_iter();
            let mut last = reply
                .next()
                .and_then(|v| redis::from_redis_value::<u64>(v).ok())
                .unwrap_or(since);
            let (now, now_unix) = (Instant::now(), now_ms());
            let mut fetched = 0;
            let mut found = Vec::new();
            while let (Some(member), Some(score), Some(payload)) =
                (reply.next(), reply.next(), reply.next())
            {
                fetched += 1;
                let (Ok(key), Ok(score)) = (
                    redis::from_redis_value::<String>(member),
                    redis::from_redis_value::<u64>(score),
                ) else {
                    continue;
                };
                last = last.max(score);
                let Ok(Some(payload)) = redis::from_redis_value::<Option<Vec<u8>>>(payload) else {
                    continue;
                };
                if let Some((expires_ms, partition, vector)) = decode_vector(&payload) {
                    if expires_ms != 0 && expires_ms <= now_unix {
                        continue;
                    }
                    let expires = (expires_ms != 0)
                        .then(|| now + Duration::from_millis(expires_ms - now_unix));
                    found.push((key, partition, vector, expires));
                }
            }
            if !found.is_empty() {
                let mut index = write(index);
                // Checked under the lock a flush clears the index with after it bumps the count.
                if self.flushes.load(Ordering::Acquire) != flushes {
                    // A flush ran meanwhile: what was read may be gone from Redis already.
                    return Ok(added);
                }
                for (key, partition, vector, expires) in found {
                    // Already known: this instance's own write, or fetched before.
                    if !index.contains(&key) {
                        index.insert(&partition, &key, vector, expires);
                        added += 1;
                    }
                }
                self.counters
                    .vectors
                    .store(index.len() as u64, Ordering::Relaxed);
            }
            self.synced_seq.store(last, Ordering::Release);
            if fetched < SYNC_BATCH || last == since {
                return Ok(added);
            }
        }
    }
}

/// A vector as stored in Redis: expiry (unix ms, 0 = none, u64 big endian), the partition's length
/// (u32 big endian) and bytes, then the components (f32 little endian).
fn encode_vector(expires_ms: u64, partition: &str, vector: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + partition.len() + vector.len() * 4);
    out.extend_from_slice(&expires_ms.to_be_bytes());
    out.extend_from_slice(&(partition.len() as u32).to_be_bytes());
    out.extend_from_slice(partition.as_bytes());
    for x in vector {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// The inverse of [`encode_vector`]; `None` for anything malformed. The vector is normalized again.
fn decode_vector(bytes: &[u8]) -> Option<(u64, String, Box<[f32]>)> {
    let expires = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
    let len = u32::from_be_bytes(bytes.get(8..12)?.try_into().ok()?) as usize;
    let partition = std::str::from_utf8(bytes.get(12..12usize.checked_add(len)?)?).ok()?;
    let rest = &bytes[12 + len..];
    if !rest.len().is_multiple_of(4) {
        return None;
    }
    let vector: Vec<f32> = rest
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Some((expires, partition.to_string(), normalize(&vector)?))
}

/// An entry as stored in Redis; `None` when shorter than its header.
fn decode_entry(mut value: Vec<u8>) -> Option<CachedEntry> {
    if value.len() < 8 {
        return None;
    }
    let created_ms = u64::from_be_bytes(value[..8].try_into().ok()?);
    // Shift the body down in place rather than copying it into a new buffer.
    value.drain(..8);
    Some(CachedEntry {
        created_ms,
        body: Bytes::from(value),
    })
}

/// `prefix` with the glob characters of `SCAN MATCH` escaped, then `*`.
fn match_pattern(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('*');
    out
}

/// `INFO` as key/value pairs: integers and finite decimals as numbers, anything else as a string
/// (a value with a leading zero, like a git sha of zeros, stays a string).
fn parse_info(info: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    for line in info.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let leading_zero = value.len() > 1 && value.starts_with('0') && !value.starts_with("0.");
        let number = if leading_zero {
            None
        } else if let Ok(i) = value.parse::<i64>() {
            Some(serde_json::Value::from(i))
        } else {
            value
                .parse::<f64>()
                .ok()
                .filter(|f| {
                    f.is_finite()
                        && value
                            .bytes()
                            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
                })
                .and_then(serde_json::Number::from_f64)
                .map(serde_json::Value::Number)
        };
        out.insert(
            key.to_string(),
            number.unwrap_or_else(|| serde_json::Value::String(value.to_string())),
        );
    }
    out
}

/// The response cache the gateway holds. Cheap to clone.
#[derive(Clone)]
pub struct ResponseCache {
    inner: Arc<Inner>,
    actor: Arc<Restartable<ResponseCacheActor>>,
}

impl ResponseCache {
    /// Build the cache and start its actor on its own arbiter. Must run inside an actix `System`;
    /// hand [`Self::child`] to the router so that it restarts the actor if it dies.
    pub fn new(settings: ResponseCacheSettings) -> Self {
        let (store, kind) = match settings.backend {
            CacheBackend::Local => (
                Store::Local(Mutex::new(LocalStore::new(
                    settings.max_entries,
                    settings.max_bytes,
                ))),
                if settings.semantic {
                    "local-semantic"
                } else {
                    "local"
                },
            ),
            CacheBackend::Redis(redis) => (
                Store::Redis(redis),
                if settings.semantic {
                    "redis-semantic"
                } else {
                    "redis"
                },
            ),
        };
        let inner = Arc::new(Inner {
            store,
            index: settings
                .semantic
                .then(|| RwLock::new(SemanticIndex::new(settings.max_entries))),
            threshold: settings.similarity_threshold,
            max_entries: settings.max_entries,
            prefix: settings.prefix,
            kind,
            counters: Counters::default(),
            queue: Mutex::new(WriteQueue::default()),
            synced_seq: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
        });
        let shared = inner.clone();
        let tick = settings.tick;
        let actor = Restartable::start("response cache", move || ResponseCacheActor {
            inner: shared.clone(),
            tick,
            writing: false,
            syncing: false,
        });
        Self { inner, actor }
    }

    /// `"local"`, `"redis"`, `"redis-semantic"` or `"local-semantic"`.
    pub fn kind(&self) -> &'static str {
        self.inner.kind
    }

    /// The entry under `key`, never an expired one. `Err` only with Redis, when it could not
    /// answer within one call timeout (or its breaker is open). A miss also forgets the key's
    /// vector: its entry is gone, so a semantic hit on it would only miss again.
    pub async fn get(&self, key: &str) -> Result<Option<CachedEntry>, CacheError> {
        let found = match &self.inner.store {
            Store::Local(store) => {
                let mut store = lock(store);
                let found = store.get(key, Instant::now());
                if matches!(found, Found::Expired) {
                    self.inner.local_counts(&store);
                }
                drop(store);
                match found {
                    Found::Hit(entry) => Some(entry),
                    Found::Expired => {
                        self.inner.counters.expired.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                    Found::Miss => None,
                }
            }
            Store::Redis(redis) => {
                let mut p = redis::pipe();
                p.cmd("GET").arg(self.inner.entry_key(key));
                match redis.query::<(Option<Vec<u8>>,)>(p).await {
                    Ok((value,)) => value.and_then(decode_entry),
                    Err(e) => {
                        self.inner.redis_failed("read", &e);
                        return Err(e.into());
                    }
                }
            }
        };
        if found.is_none() {
            self.forget_vectors(&[key]);
        }
        Ok(found)
    }

    /// Store `entry` under `key` for `ttl` (`None`: until evicted or deleted). Local: stored before
    /// this returns. Redis: queued for the actor, which writes it shortly; a failed or dropped
    /// write is counted, never reported. A zero `ttl` stores nothing.
    pub fn put(&self, key: String, entry: CachedEntry, ttl: Option<Duration>) {
        if ttl.is_some_and(|t| t.is_zero()) {
            return;
        }
        match &self.inner.store {
            Store::Local(store) => {
                let expires = ttl.map(|t| Instant::now() + t);
                let mut store = lock(store);
                let evicted = store.insert(key, entry, expires);
                self.inner.local_counts(&store);
                drop(store);
                if evicted > 0 {
                    self.inner
                        .counters
                        .evictions
                        .fetch_add(evicted as u64, Ordering::Relaxed);
                }
            }
            Store::Redis(_) => {
                self.inner.enqueue(Write::Entry {
                    key,
                    entry,
                    ttl_ms: ttl.map(ttl_millis),
                });
                self.nudge();
            }
        }
    }

    /// Remove the entries under `keys` and their vectors; returns how many entries there were.
    pub async fn delete(&self, keys: &[String]) -> Result<u64, CacheError> {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.forget_vectors(&keys);
        if keys.is_empty() {
            return Ok(0);
        }
        match &self.inner.store {
            Store::Local(store) => {
                let mut store = lock(store);
                let removed = keys.iter().filter(|k| store.remove(k)).count();
                self.inner.local_counts(&store);
                Ok(removed as u64)
            }
            Store::Redis(redis) => {
                let vector_prefix = self.inner.vector_prefix();
                let mut p = redis::pipe();
                let unlink = p.cmd("UNLINK");
                for key in &keys {
                    unlink.arg(self.inner.entry_key(key));
                }
                let unlink = p.cmd("UNLINK");
                for key in &keys {
                    unlink.arg(format!("{vector_prefix}{key}"));
                }
                unlink.ignore();
                p.cmd("ZREM")
                    .arg(self.inner.vectors_key())
                    .arg(&keys)
                    .ignore();
                match redis.query::<(u64,)>(p).await {
                    Ok((removed,)) => Ok(removed),
                    Err(e) => {
                        self.inner.redis_failed("delete", &e);
                        Err(e.into())
                    }
                }
            }
        }
    }

    /// Remove every entry and vector of this cache: with Redis, the keys under the prefix (`SCAN
    /// MATCH` and `UNLINK` in batches; other keys are never touched), and the writes still queued.
    /// The vector sequence counter stays, so that other instances' syncs keep their place.
    pub async fn flush(&self) -> Result<(), CacheError> {
        self.inner.flushes.fetch_add(1, Ordering::AcqRel);
        let result = self.flush_stores().await;
        // Again once Redis is empty: a sync that read it before is dropped (see `flushes`).
        self.inner.flushes.fetch_add(1, Ordering::AcqRel);
        self.clear_index();
        result
    }

    fn clear_index(&self) {
        if let Some(index) = &self.inner.index {
            write(index).clear();
            self.inner.counters.vectors.store(0, Ordering::Relaxed);
        }
    }

    async fn flush_stores(&self) -> Result<(), CacheError> {
        self.clear_index();
        match &self.inner.store {
            Store::Local(store) => {
                let mut store = lock(store);
                store.clear();
                self.inner.local_counts(&store);
                Ok(())
            }
            Store::Redis(redis) => {
                *lock(&self.inner.queue) = WriteQueue::default();
                let (pattern, seq) = (match_pattern(&self.inner.prefix), self.inner.seq_key());
                let mut cursor = 0u64;
                loop {
                    let mut p = redis::pipe();
                    p.cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000);
                    let ((next, keys),): ((u64, Vec<Vec<u8>>),) =
                        redis.query(p).await.inspect_err(|e| {
                            self.inner.redis_failed("flush", e);
                        })?;
                    let keys: Vec<Vec<u8>> = keys
                        .into_iter()
                        .filter(|k| k.as_slice() != seq.as_bytes())
                        .collect();
                    if !keys.is_empty() {
                        let mut p = redis::pipe();
                        p.cmd("UNLINK").arg(&keys).ignore();
                        redis.query::<()>(p).await.inspect_err(|e| {
                            self.inner.redis_failed("flush", e);
                        })?;
                    }
                    if next == 0 {
                        return Ok(());
                    }
                    cursor = next;
                }
            }
        }
    }

    /// Whether the store answers: always for Local; a `PING` for Redis.
    pub async fn ping(&self) -> Result<(), CacheError> {
        let Store::Redis(redis) = &self.inner.store else {
            return Ok(());
        };
        let mut p = redis::pipe();
        p.cmd("PING");
        redis.query::<(String,)>(p).await.map(|_| ()).map_err(|e| {
            self.inner.redis_failed("ping", &e);
            e.into()
        })
    }

    /// Redis's `INFO`, parsed into key/value pairs (numbers as numbers). The local cache has no
    /// Redis: `Err(Unavailable)` saying so.
    pub async fn redis_info(
        &self,
    ) -> Result<serde_json::Map<String, serde_json::Value>, CacheError> {
        let Store::Redis(redis) = &self.inner.store else {
            return Err(CacheError::Unavailable(format!(
                "the {} cache has no Redis",
                self.inner.kind
            )));
        };
        let mut p = redis::pipe();
        p.cmd("INFO");
        match redis.query::<(String,)>(p).await {
            Ok((info,)) => Ok(parse_info(&info)),
            Err(e) => {
                self.inner.redis_failed("info", &e);
                Err(e.into())
            }
        }
    }

    /// Redis's state as readiness reports it; `None` for the local cache.
    pub fn status(&self) -> Option<SharedStatus> {
        match &self.inner.store {
            Store::Local(_) => None,
            Store::Redis(redis) => Some(redis.status()),
        }
    }

    pub fn stats(&self) -> CacheStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CacheStats {
            entries: get(&c.entries),
            bytes: get(&c.bytes),
            evictions: get(&c.evictions),
            expired: get(&c.expired),
            redis_errors: get(&c.redis_errors),
            writes_dropped: get(&c.writes_dropped),
            vectors: get(&c.vectors),
        }
    }

    /// The cached key most similar to `vector` in `partition` with a similarity of at least the
    /// threshold, unexpired, and that similarity. Searches this instance's index (it mirrors Redis),
    /// so it never waits on Redis; the gateway then `get`s the key, which may since have gone.
    /// `Ok(None)` when the cache is not semantic.
    pub async fn nearest(
        &self,
        partition: &str,
        vector: &[f32],
    ) -> Result<Option<(String, f32)>, CacheError> {
        let Some(index) = &self.inner.index else {
            return Ok(None);
        };
        let Some(query) = normalize(vector) else {
            return Ok(None);
        };
        let found = read(index).nearest(partition, &query, self.inner.threshold, Instant::now());
        Ok(found.map(|(key, similarity)| (key.to_string(), similarity)))
    }

    /// Index `vector` for `key` in `partition` for `ttl` (give the entry's): searchable on this
    /// instance at once, and with Redis persisted by the actor for the other instances. Ignored
    /// when the cache is not semantic, or for an all-zero vector.
    pub fn put_vector(
        &self,
        partition: String,
        key: String,
        vector: Vec<f32>,
        ttl: Option<Duration>,
    ) {
        let Some(index) = &self.inner.index else {
            return;
        };
        if ttl.is_some_and(|t| t.is_zero()) {
            return;
        }
        let Some(vector) = normalize(&vector) else {
            return;
        };
        let persisted = matches!(self.inner.store, Store::Redis(_)).then(|| vector.clone());
        {
            let mut index = write(index);
            index.insert(&partition, &key, vector, ttl.map(|t| Instant::now() + t));
            self.inner
                .counters
                .vectors
                .store(index.len() as u64, Ordering::Relaxed);
        }
        if let Some(vector) = persisted {
            self.inner.enqueue(Write::Vector {
                key,
                partition,
                vector,
                ttl_ms: ttl.map(ttl_millis),
            });
            self.nudge();
        }
    }

    /// The actor, for the supervisor that keeps it alive.
    pub fn child(&self) -> Arc<dyn Child> {
        self.actor.clone()
    }

    /// Times the actor was restarted after dying.
    pub fn restarts(&self) -> u64 {
        self.actor.restarts()
    }

    /// Wake the actor to send the queued writes. Best effort: if its mailbox is full or it is
    /// being restarted, its next tick sends them.
    fn nudge(&self) {
        let _ = self.actor.addr().try_send(Drain);
    }

    fn forget_vectors(&self, keys: &[&str]) {
        let Some(index) = &self.inner.index else {
            return;
        };
        // A read lock first: most misses have no vector, and lookups scan under read locks.
        if !keys.iter().any(|k| read(index).contains(k)) {
            return;
        }
        let mut index = write(index);
        for key in keys {
            index.remove(key);
        }
        self.inner
            .counters
            .vectors
            .store(index.len() as u64, Ordering::Relaxed);
    }
}

/// Sweeps expired entries, sends queued writes and syncs the vectors; see the module documentation.
pub struct ResponseCacheActor {
    inner: Arc<Inner>,
    tick: Duration,
    /// A write batch is on its way: the next waits for it.
    writing: bool,
    /// A vector sync is under way: ticks skip theirs.
    syncing: bool,
}

impl ResponseCacheActor {
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        if let Store::Local(store) = &self.inner.store {
            let mut store = lock(store);
            let swept = store.sweep(now);
            if swept > 0 {
                self.inner.local_counts(&store);
                drop(store);
                self.inner
                    .counters
                    .expired
                    .fetch_add(swept as u64, Ordering::Relaxed);
            }
        }
        if let Some(index) = &self.inner.index {
            let mut index = write(index);
            if index.sweep(now) > 0 {
                self.inner
                    .counters
                    .vectors
                    .store(index.len() as u64, Ordering::Relaxed);
            }
        }
        self.drain(ctx);
        self.sync(ctx);
    }

    /// Send the next batch of queued writes, unless one is on its way; continues until the queue
    /// is empty.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        let Store::Redis(redis) = &self.inner.store else {
            return;
        };
        if self.writing {
            return;
        }
        let batch = self.inner.take_batch();
        if batch.is_empty() {
            return;
        }
        let writes = batch.len();
        let pipeline = self.inner.write_pipeline(batch);
        let redis = redis.clone();
        self.writing = true;
        ctx.spawn(
            async move { redis.query::<()>(pipeline).await }
                .into_actor(self)
                .map(move |result, act, ctx| {
                    act.writing = false;
                    if let Err(e) = result {
                        act.inner.redis_failed("write", &e);
                        tracing::debug!(writes, "response cache: writes lost");
                    }
                    act.drain(ctx);
                }),
        );
    }

    /// Fetch the vectors persisted since the last sync, unless a sync is under way.
    fn sync(&mut self, ctx: &mut Context<Self>) {
        let Store::Redis(redis) = &self.inner.store else {
            return;
        };
        if self.inner.index.is_none() || self.syncing {
            return;
        }
        self.syncing = true;
        let (inner, redis) = (self.inner.clone(), redis.clone());
        ctx.spawn(
            inner
                .sync_vectors(redis)
                .into_actor(self)
                .map(|result, act, _| {
                    act.syncing = false;
                    match result {
                        Ok(added) if added > 0 => {
                            tracing::debug!(added, "response cache: vectors synced from redis")
                        }
                        Ok(_) => {}
                        Err(e) => act.inner.redis_failed("vector sync", &e),
                    }
                }),
        );
    }
}

impl Actor for ResponseCacheActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
        ctx.run_interval(self.tick, |act, ctx| act.tick(ctx));
        // Load the persisted vectors (or catch up after a restart) and send what a dead
        // incarnation left queued, without waiting for the first tick.
        self.sync(ctx);
        self.drain(ctx);
    }
}

/// Writes were queued.
#[derive(Message)]
#[rtype(result = "()")]
struct Drain;

impl Handler<Drain> for ResponseCacheActor {
    type Result = ();

    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) {
        self.drain(ctx);
    }
}

/// Test hook: makes the actor panic, so that its supervisor restarts it.
#[cfg(test)]
#[derive(Message)]
#[rtype(result = "()")]
struct Explode;

#[cfg(test)]
impl Handler<Explode> for ResponseCacheActor {
    type Result = ();

    fn handle(&mut self, _: Explode, _: &mut Self::Context) {
        panic!("response cache: test panic");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervise::testing::NoUpstream;

    fn redis_url() -> String {
        std::env::var("TOLLGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    }

    /// A namespace of its own for each test, so that parallel tests (and flushes) do not collide.
    fn test_prefix() -> String {
        format!("tollgate:test:{:016x}:cache:", rand::random::<u64>())
    }

    fn entry(created_ms: u64, body: &'static str) -> CachedEntry {
        CachedEntry {
            created_ms,
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    fn local(max_entries: usize, max_bytes: usize) -> ResponseCache {
        ResponseCache::new(ResponseCacheSettings {
            max_entries,
            max_bytes,
            tick: Duration::from_millis(20),
            ..ResponseCacheSettings::default()
        })
    }

    fn redis_settings(prefix: &str, semantic: bool) -> ResponseCacheSettings {
        ResponseCacheSettings {
            backend: CacheBackend::Redis(SharedRouterState::new(&redis_url()).unwrap()),
            semantic,
            similarity_threshold: 0.9,
            tick: Duration::from_millis(20),
            prefix: prefix.to_string(),
            ..ResponseCacheSettings::default()
        }
    }

    /// Every key under `prefix` (the sequence counter included), to clean up and to check.
    async fn raw_keys(prefix: &str) -> Vec<String> {
        let redis = SharedRouterState::new(&redis_url()).unwrap();
        let mut p = redis::pipe();
        p.cmd("KEYS").arg(match_pattern(prefix));
        let (keys,): (Vec<String>,) = redis.query(p).await.unwrap();
        keys
    }

    async fn remove_namespace(prefix: &str) {
        let keys = raw_keys(prefix).await;
        if !keys.is_empty() {
            let redis = SharedRouterState::new(&redis_url()).unwrap();
            let mut p = redis::pipe();
            p.cmd("DEL").arg(keys).ignore();
            redis.query::<()>(p).await.unwrap();
        }
    }

    async fn wait_for<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
        for _ in 0..300 {
            if let Some(found) = probe().await {
                return found;
            }
            actix::clock::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[actix_rt::test]
    async fn local_put_get_ttl_delete_flush_and_stats() {
        let cache = local(100, 1 << 20);
        assert_eq!(cache.kind(), "local");
        assert_eq!(cache.status(), None);
        assert!(cache.ping().await.is_ok());
        assert!(matches!(
            cache.redis_info().await,
            Err(CacheError::Unavailable(m)) if m.contains("no Redis")
        ));

        assert_eq!(cache.get("a").await, Ok(None));
        cache.put("a".into(), entry(1, "alpha"), None);
        // Stored synchronously: the very next lookup hits.
        assert_eq!(cache.get("a").await, Ok(Some(entry(1, "alpha"))));
        cache.put("a".into(), entry(2, "alpha2"), None);
        assert_eq!(cache.get("a").await, Ok(Some(entry(2, "alpha2"))));
        cache.put("b".into(), entry(3, "beta"), Some(Duration::from_secs(60)));
        cache.put("zero".into(), entry(3, "never"), Some(Duration::ZERO));
        assert_eq!(cache.get("zero").await, Ok(None));
        let stats = cache.stats();
        assert_eq!((stats.entries, stats.bytes), (2, 10));

        // Expired entries are never returned: on read, and swept by the actor.
        cache.put(
            "short".into(),
            entry(4, "s"),
            Some(Duration::from_millis(30)),
        );
        cache.put(
            "swept".into(),
            entry(5, "w"),
            Some(Duration::from_millis(30)),
        );
        assert_eq!(cache.get("short").await, Ok(Some(entry(4, "s"))));
        actix::clock::sleep(Duration::from_millis(40)).await;
        assert_eq!(cache.get("short").await, Ok(None));
        wait_for("the sweep", async || {
            (cache.stats().expired == 2).then_some(())
        })
        .await;
        assert_eq!(cache.stats().entries, 2);

        let keys = ["a".to_string(), "missing".to_string()];
        assert_eq!(cache.delete(&keys).await, Ok(1));
        assert_eq!(cache.get("a").await, Ok(None));
        assert_eq!(cache.get("b").await, Ok(Some(entry(3, "beta"))));
        assert_eq!(cache.delete(&[]).await, Ok(0));

        cache.flush().await.unwrap();
        assert_eq!(cache.get("b").await, Ok(None));
        let stats = cache.stats();
        assert_eq!((stats.entries, stats.bytes, stats.evictions), (0, 0, 0));
        assert_eq!(stats.redis_errors, 0);
    }

    #[actix_rt::test]
    async fn local_evicts_the_least_recently_used_at_max_entries() {
        let cache = local(3, 1 << 20);
        for k in ["a", "b", "c"] {
            cache.put(k.into(), entry(1, "x"), None);
        }
        // `a` is used, so `b` is now the least recently used.
        assert!(cache.get("a").await.unwrap().is_some());
        cache.put("d".into(), entry(1, "x"), None);
        assert!(cache.get("b").await.unwrap().is_none());
        for k in ["a", "c", "d"] {
            assert!(cache.get(k).await.unwrap().is_some(), "{k} kept");
        }
        let stats = cache.stats();
        assert_eq!((stats.entries, stats.evictions), (3, 1));
    }

    #[actix_rt::test]
    async fn local_evicts_the_least_recently_used_at_max_bytes() {
        let cache = local(100, 10);
        cache.put("a".into(), entry(1, "aaaa"), None);
        cache.put("b".into(), entry(1, "bbbb"), None);
        assert!(cache.get("a").await.unwrap().is_some());
        // 12 bytes > 10: b, the least recently used, goes; a stays.
        cache.put("c".into(), entry(1, "cccc"), None);
        assert!(cache.get("b").await.unwrap().is_none());
        assert!(cache.get("a").await.unwrap().is_some());
        assert!(cache.get("c").await.unwrap().is_some());
        // An 8-byte body makes room by evicting both others (c was used after a, so a goes first).
        cache.put("d".into(), entry(1, "dddddddd"), None);
        assert!(cache.get("a").await.unwrap().is_none());
        assert!(cache.get("c").await.unwrap().is_none());
        assert!(cache.get("d").await.unwrap().is_some());
        // A body larger than the whole budget is not stored, and evicts nothing.
        cache.put("huge".into(), entry(1, "0123456789ab"), None);
        assert!(cache.get("huge").await.unwrap().is_none());
        assert!(cache.get("d").await.unwrap().is_some());
        let stats = cache.stats();
        assert_eq!((stats.entries, stats.bytes, stats.evictions), (1, 8, 3));
    }

    #[actix_rt::test]
    async fn redis_entries_are_seen_by_another_instance_expire_and_are_deleted() {
        let prefix = test_prefix();
        let writer = ResponseCache::new(redis_settings(&prefix, false));
        let reader = ResponseCache::new(redis_settings(&prefix, false));
        assert_eq!(writer.kind(), "redis");
        writer.ping().await.unwrap();
        assert_eq!(writer.status(), Some(SharedStatus::Connected));

        let body = Bytes::from(vec![7u8; 100_000]);
        let big = CachedEntry {
            created_ms: 1_700_000_000_123,
            body,
        };
        writer.put("k".into(), big.clone(), None);
        writer.put(
            "short".into(),
            entry(9, "brief"),
            Some(Duration::from_millis(400)),
        );
        let seen = wait_for("the actor's write", async || reader.get("k").await.unwrap()).await;
        assert_eq!(seen, big);
        assert_eq!(
            reader.get("short").await.unwrap(),
            Some(entry(9, "brief")),
            "written in the same batch"
        );
        // The TTL is Redis's own.
        wait_for("the expiry", async || {
            reader.get("short").await.unwrap().is_none().then_some(())
        })
        .await;
        assert!(
            raw_keys(&prefix).await == vec![format!("{prefix}k")],
            "expired in Redis, not only hidden"
        );

        let keys = ["k".to_string(), "absent".to_string()];
        assert_eq!(reader.delete(&keys).await, Ok(1));
        assert_eq!(
            writer.get("k").await,
            Ok(None),
            "a delete is seen everywhere"
        );
        assert_eq!(writer.stats().redis_errors, 0);
        assert_eq!(writer.stats().entries, 0, "nothing is kept in process");
        remove_namespace(&prefix).await;
    }

    #[actix_rt::test]
    async fn redis_flush_removes_only_its_prefix_and_info_is_parsed() {
        let (mine, theirs) = (test_prefix(), test_prefix());
        let cache = ResponseCache::new(redis_settings(&mine, false));
        let other = ResponseCache::new(redis_settings(&theirs, false));
        for i in 0..2_500 {
            cache.put(
                format!("k{i}"),
                entry(i, "v"),
                Some(Duration::from_secs(60)),
            );
        }
        other.put("k0".into(), entry(1, "kept"), Some(Duration::from_secs(60)));
        wait_for("the writes", async || {
            (cache.get("k2499").await.unwrap().is_some()
                && other.get("k0").await.unwrap().is_some())
            .then_some(())
        })
        .await;
        cache.flush().await.unwrap();
        assert!(
            raw_keys(&mine).await.is_empty(),
            "every batch of the scan was unlinked"
        );
        assert_eq!(cache.get("k0").await, Ok(None));
        assert_eq!(other.get("k0").await, Ok(Some(entry(1, "kept"))));

        let info = cache.redis_info().await.unwrap();
        assert!(info["redis_version"]
            .as_str()
            .is_some_and(|v| v.contains('.')));
        assert!(info["uptime_in_seconds"].is_u64());
        assert!(info["redis_git_sha1"].is_string());
        remove_namespace(&theirs).await;
    }

    #[actix_rt::test]
    async fn an_unreachable_redis_fails_fast_and_never_panics() {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("redis://127.0.0.1:{port}");
        let cache = ResponseCache::new(ResponseCacheSettings {
            backend: CacheBackend::Redis(SharedRouterState::new(&url).unwrap()),
            semantic: true,
            tick: Duration::from_millis(20),
            prefix: test_prefix(),
            ..ResponseCacheSettings::default()
        });
        let started = Instant::now();
        for _ in 0..crate::shared::BREAKER_THRESHOLD {
            assert!(matches!(
                cache.get("k").await,
                Err(CacheError::Unavailable(_))
            ));
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(cache.status(), Some(SharedStatus::Unavailable));
        // The breaker is open: no waiting at all now.
        let started = Instant::now();
        assert!(cache.get("k").await.is_err());
        assert!(cache.delete(&["k".to_string()]).await.is_err());
        assert!(cache.flush().await.is_err());
        assert!(cache.ping().await.is_err());
        assert!(cache.redis_info().await.is_err());
        assert!(started.elapsed() < Duration::from_millis(100));

        cache.put("k".into(), entry(1, "v"), None);
        cache.put_vector("p".into(), "k".into(), vec![1.0, 0.0], None);
        // Searching is local: the vector is found though Redis is down.
        assert_eq!(
            cache
                .nearest("p", &[1.0, 0.0])
                .await
                .unwrap()
                .map(|(k, _)| k),
            Some("k".to_string())
        );
        let errors_before = cache.stats().redis_errors;
        wait_for("the failed write to be counted", async || {
            (cache.stats().redis_errors > errors_before).then_some(())
        })
        .await;
        assert_eq!(cache.restarts(), 0, "the actor did not panic");
    }

    #[actix_rt::test]
    async fn semantic_hits_at_the_threshold_within_a_partition_until_expiry() {
        let cache = ResponseCache::new(ResponseCacheSettings {
            semantic: true,
            similarity_threshold: 0.9,
            tick: Duration::from_millis(20),
            ..ResponseCacheSettings::default()
        });
        assert_eq!(cache.kind(), "local-semantic");
        cache.put("q1".into(), entry(1, "answer"), None);
        cache.put_vector("p".into(), "q1".into(), vec![1.0, 0.0, 0.0], None);

        // cos = 0.9 exactly-ish: a hit at the threshold.
        let near = [0.9, (1.0f32 - 0.81).sqrt(), 0.0];
        let (key, similarity) = cache.nearest("p", &near).await.unwrap().unwrap();
        assert_eq!(key, "q1");
        assert!((similarity - 0.9).abs() < 1e-4, "{similarity}");
        assert!(cache
            .nearest("p", &[0.8, 0.6, 0.0])
            .await
            .unwrap()
            .is_none());
        assert!(
            cache
                .nearest("p", &[0.0, 1.0, 0.0])
                .await
                .unwrap()
                .is_none(),
            "orthogonal"
        );
        assert!(
            cache
                .nearest("other", &[1.0, 0.0, 0.0])
                .await
                .unwrap()
                .is_none(),
            "partition"
        );
        assert!(cache
            .nearest("p", &[0.0, 0.0, 0.0])
            .await
            .unwrap()
            .is_none());

        cache.put_vector(
            "p".into(),
            "brief".into(),
            vec![0.0, 0.0, 1.0],
            Some(Duration::from_millis(30)),
        );
        assert!(cache
            .nearest("p", &[0.0, 0.0, 1.0])
            .await
            .unwrap()
            .is_some());
        actix::clock::sleep(Duration::from_millis(40)).await;
        assert!(
            cache
                .nearest("p", &[0.0, 0.0, 1.0])
                .await
                .unwrap()
                .is_none(),
            "expired"
        );
        wait_for("the sweep", async || {
            (cache.stats().vectors == 1).then_some(())
        })
        .await;

        // A vector whose entry is gone is dropped by the get that finds nothing.
        cache.put_vector("p".into(), "orphan".into(), vec![0.0, 1.0, 0.0], None);
        assert_eq!(cache.stats().vectors, 2);
        assert_eq!(cache.get("orphan").await, Ok(None));
        assert!(cache
            .nearest("p", &[0.0, 1.0, 0.0])
            .await
            .unwrap()
            .is_none());
        // A delete drops the vector too.
        assert_eq!(cache.delete(&["q1".to_string()]).await, Ok(1));
        assert!(cache
            .nearest("p", &[1.0, 0.0, 0.0])
            .await
            .unwrap()
            .is_none());
        assert_eq!(cache.stats().vectors, 0);

        // Not semantic: no index at all.
        let plain = local(10, 1000);
        plain.put_vector("p".into(), "k".into(), vec![1.0], None);
        assert_eq!(plain.nearest("p", &[1.0]).await, Ok(None));
    }

    #[actix_rt::test]
    async fn semantic_vectors_persisted_in_redis_reach_other_instances_within_the_bound() {
        let prefix = test_prefix();
        let bounded = |max_entries| ResponseCacheSettings {
            max_entries,
            ..redis_settings(&prefix, true)
        };
        let first = ResponseCache::new(bounded(3));
        let early = ResponseCache::new(bounded(3));
        assert_eq!(first.kind(), "redis-semantic");
        for (i, v) in [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]].into_iter().enumerate() {
            first.put(
                format!("k{i}"),
                entry(i as u64, "answer"),
                Some(Duration::from_secs(60)),
            );
            first.put_vector(
                "p".into(),
                format!("k{i}"),
                v.to_vec(),
                Some(Duration::from_secs(60)),
            );
        }
        first.put_vector(
            "q".into(),
            "kq".into(),
            vec![0.0, 0.0, 1.0],
            Some(Duration::from_millis(300)),
        );
        // Searchable on the writer at once.
        assert_eq!(
            first
                .nearest("p", &[1.0, 0.05, 0.0])
                .await
                .unwrap()
                .unwrap()
                .0,
            "k0"
        );
        // An instance running before the write picks it up at its next sync...
        let (key, _) = wait_for("the sync", async || {
            early.nearest("p", &[0.05, 1.0, 0.0]).await.unwrap()
        })
        .await;
        assert_eq!(key, "k1");
        assert_eq!(early.get(&key).await.unwrap(), Some(entry(1, "answer")));
        // ...and one started afterwards loads it at start; partitions and expiries travel along.
        let late = ResponseCache::new(bounded(3));
        wait_for("the load", async || {
            late.nearest("q", &[0.0, 0.0, 1.0]).await.unwrap()
        })
        .await;
        assert!(
            late.nearest("p", &[0.0, 0.0, 1.0]).await.unwrap().is_none(),
            "partition"
        );
        wait_for("the vector's expiry", async || {
            late.nearest("q", &[0.0, 0.0, 1.0])
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;

        // The bound: the writer keeps its 3 newest vectors, Redis lists only 3 and the vector keys
        // trimmed off it are gone too.
        first.put_vector("p".into(), "k3".into(), vec![1.0, 1.0, 0.0], None);
        first.put_vector("p".into(), "k4".into(), vec![1.0, 0.0, 1.0], None);
        assert_eq!(first.stats().vectors, 3);
        assert!(
            first
                .nearest("p", &[1.0, 0.0, 0.0])
                .await
                .unwrap()
                .is_none(),
            "k0 dropped"
        );
        let redis = SharedRouterState::new(&redis_url()).unwrap();
        wait_for("the trim", async || {
            let mut p = redis::pipe();
            p.cmd("ZRANGE")
                .arg(format!("{prefix}vectors"))
                .arg(0)
                .arg(-1);
            let (members,): (Vec<String>,) = redis.query(p).await.unwrap();
            (members == ["kq", "k3", "k4"]).then_some(())
        })
        .await;
        wait_for("the trimmed vectors to go", async || {
            let mut keys = raw_keys(&format!("{prefix}vector:")).await;
            keys.sort();
            // k0 and k1 trimmed off, kq expired.
            let left = [format!("{prefix}vector:k3"), format!("{prefix}vector:k4")];
            (keys == left).then_some(())
        })
        .await;
        let fresh = ResponseCache::new(bounded(3));
        wait_for("the load", async || {
            fresh.nearest("p", &[1.0, 0.0, 1.0]).await.unwrap()
        })
        .await;
        assert_eq!(
            fresh.stats().vectors,
            2,
            "k3 and k4: the rest is trimmed or expired"
        );

        // A flush empties the namespace but for the sequence, and every index it was asked of.
        first.flush().await.unwrap();
        assert_eq!(
            raw_keys(&prefix).await,
            vec![format!("{prefix}vectors:seq")]
        );
        assert_eq!(first.stats().vectors, 0);
        remove_namespace(&prefix).await;
    }

    #[actix_rt::test]
    async fn a_restarted_cache_actor_keeps_entries_and_queued_writes() {
        let prefix = test_prefix();
        let cache = ResponseCache::new(redis_settings(&prefix, false));
        let supervisor =
            crate::RouterHandle::start(Vec::<Arc<NoUpstream>>::new(), Default::default());
        supervisor.adopt(cache.child());
        cache.put(
            "before".into(),
            entry(1, "one"),
            Some(Duration::from_secs(60)),
        );
        wait_for("the first write", async || {
            cache.get("before").await.unwrap()
        })
        .await;
        cache.actor.addr().do_send(Explode);
        wait_for("the restart", async || {
            (cache.restarts() == 1).then_some(())
        })
        .await;
        cache.put(
            "after".into(),
            entry(2, "two"),
            Some(Duration::from_secs(60)),
        );
        wait_for("a write by the new actor", async || {
            cache.get("after").await.unwrap()
        })
        .await;
        assert_eq!(cache.get("before").await, Ok(Some(entry(1, "one"))));

        let local = local(10, 1000);
        supervisor.adopt(local.child());
        local.put("k".into(), entry(1, "v"), None);
        local.actor.addr().do_send(Explode);
        wait_for("the restart", async || {
            (local.restarts() == 1).then_some(())
        })
        .await;
        assert_eq!(
            local.get("k").await,
            Ok(Some(entry(1, "v"))),
            "entries live outside the actor"
        );
        local.put(
            "brief".into(),
            entry(1, "v"),
            Some(Duration::from_millis(10)),
        );
        wait_for("the new actor's sweep", async || {
            (local.stats().expired == 1).then_some(())
        })
        .await;
        remove_namespace(&prefix).await;
    }

    #[test]
    fn stored_formats_round_trip_and_reject_garbage() {
        let v = normalize(&[3.0, 4.0]).unwrap();
        let bytes = encode_vector(42, "ns|model", &v);
        let (expires, partition, back) = decode_vector(&bytes).unwrap();
        assert_eq!((expires, partition.as_str(), &*back), (42, "ns|model", &*v));
        assert!(decode_vector(&bytes[..bytes.len() - 1]).is_none());
        assert!(decode_vector(&bytes[..10]).is_none());

        let mut value = 7u64.to_be_bytes().to_vec();
        value.extend_from_slice(b"body");
        assert_eq!(decode_entry(value), Some(entry(7, "body")));
        assert_eq!(decode_entry(vec![1, 2, 3]), None);

        assert_eq!(match_pattern("a*b?[c]\\:"), "a\\*b\\?\\[c\\]\\\\:*");
        let info = parse_info("# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\nuptime_in_seconds:12\r\nmem_fragmentation_ratio:1.25\r\nzero:0\r\ndb0:keys=1,expires=0\r\n\r\n");
        assert_eq!(info["redis_version"], "7.0.15");
        assert_eq!(info["redis_git_sha1"], "00000000");
        assert_eq!(info["uptime_in_seconds"], 12);
        assert_eq!(info["mem_fragmentation_ratio"], 1.25);
        assert_eq!(info["zero"], 0);
        assert_eq!(info["db0"], "keys=1,expires=0");
        assert_eq!(ttl_millis(Duration::from_micros(1)), 1);
        assert_eq!(ttl_millis(Duration::from_millis(1500)), 1500);
    }

    /// Measures a lookup in the unoptimized test build (see the module documentation); asserts
    /// nothing about time.
    #[actix_rt::test]
    #[ignore = "a measurement: run with --ignored --nocapture"]
    async fn measure_a_semantic_lookup_over_10000_vectors_of_1536_dimensions() {
        let (n, d) = (10_000usize, 1_536usize);
        let cache = ResponseCache::new(ResponseCacheSettings {
            semantic: true,
            max_entries: n,
            similarity_threshold: -1.0,
            ..ResponseCacheSettings::default()
        });
        for i in 0..n {
            let v: Vec<f32> = (0..d).map(|_| rand::random::<f32>() - 0.5).collect();
            cache.put_vector("p".into(), format!("k{i}"), v, None);
        }
        let query: Vec<f32> = (0..d).map(|_| rand::random::<f32>() - 0.5).collect();
        let rounds = 5u32;
        let started = Instant::now();
        for _ in 0..rounds {
            assert!(cache.nearest("p", &query).await.unwrap().is_some());
        }
        println!(
            "response cache: {n} vectors x {d} dims, one lookup: {:?}",
            started.elapsed() / rounds
        );
    }
}
