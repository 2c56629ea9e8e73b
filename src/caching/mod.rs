//! Response caching (`litellm_settings.cache`): a request answered before is answered again from
//! the stored response, without calling the provider.
//!
//! ```text
//!  admitted request ─▶ plan ─▶ lookup ──hit──▶ replay (JSON, or re-chunked SSE) ─▶ account (cost 0)
//!                                 │
//!                                miss ─▶ route … ─▶ reply ─▶ store (a stream: once it completed)
//! ```
//!
//! * **Plan** ([`Cache::plan`]): whether the request uses the cache at all (its call type is in
//!   `supported_call_types`, `caching` / `mode`, not a test hook), its key, and its per-request
//!   controls (`cache: {"no-cache", "no-store", "ttl", "s-maxage", "namespace"}`), which the key's
//!   `allowed_cache_controls` may restrict.
//! * **Key** ([`cache_key`]): SHA-256 over the model group, the call type, the scope and the
//!   normalized request (every forwarded field with object keys sorted, minus `user`, `stream`,
//!   `stream_options`; gateway fields such as `metadata` never reach it), prefixed `namespace:`.
//! * **Scope**: by default an entry answers only keys of the team whose request stored it (a key
//!   without a team: only itself), so one tenant's prompts never answer another's; `scope: global`
//!   shares entries between every caller, as LiteLLM does.
//! * **Stored form**: one per entry, the complete OpenAI response. A stream that completed is
//!   assembled into it ([`replay::assemble`]); a cut stream is never stored. A streaming request
//!   is answered with the stored response re-chunked ([`replay::replay`]).
//! * **Semantic** (`redis-semantic`): on an exact miss the prompt is embedded by the deployments of
//!   `redis_semantic_cache_embedding_model` (through the pipeline, as the gateway's own call) and the
//!   nearest stored prompt of the same partition (same scope, namespace, model group and
//!   parameters) answers when its cosine similarity reaches `similarity_threshold`.
//! * **Failure**: the store ([`tollgate_actors::ResponseCache`]) never makes a request wait on Redis
//!   longer than one call timeout, and a Redis error is a miss: requests are served without the
//!   cache, counted in `/metrics` and shown by readiness.
//! * **Accounting**: a hit costs 0 and writes a spend-log row with `cache_hit` set; budgets do not
//!   move; it counts against rpm limits (not tpm: no provider tokens were used).

pub mod replay;
pub mod settings;

use std::cell::OnceCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tollgate_actors::{CachedEntry, ResponseCache};

use crate::auth::Caller;
use crate::error::GatewayError;
use crate::llm::{CallKind, LlmRequest, Usage, UsageEnvelope};
use crate::outcome::{Completion, Reply};

pub use settings::{shared_state_redis, Backend, CacheSettings, Semantic, Sharing};

/// The per-request controls LiteLLM clients send: `cache: {...}` and `caching`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Controls {
    /// `no-cache`: do not answer from the cache (still store the answer).
    pub no_cache: bool,
    /// `no-store`: do not store the answer.
    pub no_store: bool,
    /// `ttl`: how long the stored answer lives.
    pub ttl: Option<Duration>,
    /// `s-maxage`: answer only from an entry younger than this.
    pub s_maxage: Option<Duration>,
    /// `namespace`: the entry's namespace (instead of the configured one).
    pub namespace: Option<String>,
    /// `caching: true|false` (or `cache: {"use-cache": …}`): use the cache for this request at all.
    pub use_cache: Option<bool>,
    /// The controls the request named, as spelled (checked against `allowed_cache_controls`).
    pub named: Vec<&'static str>,
}

const CONTROL_NAMES: &[&str] = &[
    "no-cache",
    "no-store",
    "ttl",
    "s-maxage",
    "namespace",
    "use-cache",
];

fn seconds(name: &str, v: &Value) -> Result<Duration, GatewayError> {
    crate::config::as_f64(v)
        .filter(|s| *s >= 0.0 && s.is_finite())
        .map(crate::config::config_seconds)
        .ok_or_else(|| {
            GatewayError::bad_param("cache", format!("cache.{name} must be a number of seconds"))
        })
}

impl Controls {
    /// Read `cache` and `caching` from a request body.
    pub fn parse(cache: Option<&Value>, caching: Option<&Value>) -> Result<Self, GatewayError> {
        let mut c = Controls::default();
        match caching {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => c.use_cache = Some(*b),
            Some(_) => {
                return Err(GatewayError::bad_param(
                    "caching",
                    "'caching' must be a boolean.",
                ))
            }
        }
        let map = match cache {
            None | Some(Value::Null) => return Ok(c),
            Some(Value::Object(map)) => map,
            Some(_) => {
                return Err(GatewayError::bad_param(
                    "cache",
                    "'cache' must be an object such as {\"no-cache\": true}.",
                ))
            }
        };
        for (name, value) in map {
            let Some(known) = CONTROL_NAMES.iter().find(|n| **n == name) else {
                continue;
            };
            if value.is_null() {
                continue;
            }
            c.named.push(known);
            match *known {
                "no-cache" => c.no_cache = crate::config::truthy(value),
                "no-store" => c.no_store = crate::config::truthy(value),
                "ttl" => c.ttl = Some(seconds(known, value)?),
                "s-maxage" => c.s_maxage = Some(seconds(known, value)?),
                "namespace" => {
                    c.namespace = Some(
                        value
                            .as_str()
                            .filter(|s| valid_namespace(s))
                            .ok_or_else(|| {
                                GatewayError::bad_param(
                                    "cache",
                                    "cache.namespace must be a non-empty string of at most 256 characters, not starting with 'vector'",
                                )
                            })?
                            .to_string(),
                    )
                }
                _ => c.use_cache = Some(crate::config::truthy(value)),
            }
        }
        Ok(c)
    }

    /// Refuse controls the caller's key may not send (`allowed_cache_controls`; empty: any).
    fn check_allowed(&self, caller: &Caller) -> Result<(), GatewayError> {
        let Some(principal) = caller.principal() else {
            return Ok(());
        };
        let allowed: Vec<&str> = principal
            .key
            .data
            .get("allowed_cache_controls")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if allowed.is_empty() {
            return Ok(());
        }
        match self.named.iter().find(|n| !allowed.contains(n)) {
            None => Ok(()),
            Some(n) => Err(GatewayError::bad_param(
                "cache",
                format!(
                    "Not allowed to set {n} as a cache control. Contact admin to change permissions. Allowed: {allowed:?}"
                ),
            )),
        }
    }
}

/// A namespace the store can use: `vector…` names hold its semantic index.
pub fn valid_namespace(ns: &str) -> bool {
    !ns.is_empty() && ns.len() <= 256 && !ns.starts_with("vector")
}

/// Fields that never change what a response says, left out of the key.
const NOT_IN_KEY: &[&str] = &["model", "user", "stream", "stream_options"];
/// The content a semantic lookup embeds, left out of the semantic partition.
const CONTENT_FIELDS: &[&str] = &["messages", "prompt", "input"];

/// Feed `v` to the hasher in a canonical form: object keys sorted, so key order does not matter.
fn hash_value(h: &mut Sha256, v: &Value) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            h.update(b"{");
            for k in keys {
                hash_value(h, &Value::String(k.clone()));
                h.update(b":");
                hash_value(h, &map[k]);
                h.update(b",");
            }
            h.update(b"}");
        }
        Value::Array(items) => {
            h.update(b"[");
            for item in items {
                hash_value(h, item);
                h.update(b",");
            }
            h.update(b"]");
        }
        other => h.update(other.to_string().as_bytes()),
    }
}

fn digest(
    kind: CallKind,
    group: &str,
    scope: &str,
    body: &Map<String, Value>,
    skip: &[&str],
) -> String {
    let mut h = Sha256::new();
    for part in ["tollgate-cache-v1", kind.as_str(), group, scope] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let mut keys: Vec<&String> = body
        .keys()
        .filter(|k| !NOT_IN_KEY.contains(&k.as_str()) && !skip.contains(&k.as_str()))
        .collect();
    keys.sort();
    for k in keys {
        h.update(k.as_bytes());
        h.update([0]);
        hash_value(&mut h, &body[k]);
        h.update([0]);
    }
    hex::encode(h.finalize())
}

fn namespaced(namespace: Option<&str>, hash: String) -> String {
    match namespace {
        Some(ns) => format!("{ns}:{hash}"),
        None => hash,
    }
}

/// The cache key of a request: what `x-litellm-cache-key` shows and `/cache/delete` takes.
pub fn cache_key(
    kind: CallKind,
    group: &str,
    scope: &str,
    namespace: Option<&str>,
    body: &Map<String, Value>,
) -> String {
    namespaced(namespace, digest(kind, group, scope, body, &[]))
}

/// The text a semantic lookup embeds: the messages' text (every part), the prompt, or the input.
fn prompt_text(body: &Map<String, Value>) -> Option<String> {
    fn collect(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(s);
            }
            Value::Array(items) => items.iter().for_each(|i| collect(i, out)),
            Value::Object(m) => {
                if let Some(c) = m.get("content").or_else(|| m.get("text")) {
                    collect(c, out);
                }
            }
            _ => {}
        }
    }
    let mut out = String::new();
    for field in CONTENT_FIELDS {
        if let Some(v) = body.get(*field) {
            collect(v, &mut out);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// What the cache does for one request.
pub struct Plan {
    pub key: String,
    /// Answer from the cache if it can.
    pub read: bool,
    /// Store the answer.
    pub write: bool,
    pub ttl: Option<Duration>,
    /// Accept only entries younger than this.
    pub max_age: Option<Duration>,
    kind: CallKind,
    semantic: Option<SemanticPlan>,
}

struct SemanticPlan {
    partition: String,
    text: String,
    model: String,
    /// The prompt's embedding, once computed (by the lookup, else by the store).
    vector: OnceCell<Vec<f32>>,
}

/// A stored answer.
pub struct Hit {
    pub key: String,
    pub completion: Completion,
}

/// LiteLLM's label set for its cache metrics.
pub type CacheLabels = Vec<(&'static str, String)>;
type CounterFamily = prometheus_client::metrics::family::Family<
    CacheLabels,
    prometheus_client::metrics::counter::Counter,
>;

/// Counters `/metrics` reads: LiteLLM's `litellm_cache_hits_metric`, `litellm_cache_misses_metric`
/// and `litellm_cached_tokens_metric`, one series per key and model group.
#[derive(Default)]
pub struct CacheCounters {
    pub hits: CounterFamily,
    pub misses: CounterFamily,
    pub cached_tokens: CounterFamily,
    /// Lookups that could not reach the store (Redis down or slow): served without the cache.
    pub unavailable: AtomicU64,
}

/// LiteLLM's cache-metric labels for a caller and model group (`hashed_api_key` is the key's
/// hash, never the key).
fn labels(caller: &Caller, group: &str) -> CacheLabels {
    let p = caller.principal();
    let key = p.map(|p| &p.key);
    let text = |v: Option<&String>| v.cloned().unwrap_or_default();
    vec![
        ("model", group.to_string()),
        ("hashed_api_key", text(key.map(|k| &k.token))),
        (
            "api_key_alias",
            text(key.and_then(|k| k.key_alias.as_ref())),
        ),
        ("team", text(key.and_then(|k| k.team_id.as_ref()))),
        (
            "team_alias",
            text(
                p.and_then(|p| p.team.as_ref())
                    .and_then(|t| t.alias.as_ref()),
            ),
        ),
        ("end_user", String::new()),
        ("user", text(key.and_then(|k| k.user_id.as_ref()))),
        ("model_id", String::new()),
    ]
}

/// The gateway's response cache: its settings, the store, and its counters.
pub struct Cache {
    pub settings: CacheSettings,
    pub store: ResponseCache,
    pub counters: CacheCounters,
}

fn now_ms() -> u64 {
    tollgate_actors::now_ms()
}

impl Cache {
    pub fn new(settings: CacheSettings, store: ResponseCache) -> Self {
        Self {
            settings,
            store,
            counters: CacheCounters::default(),
        }
    }

    /// The plan for an admitted request on model group `group`, or `None` when it does not use
    /// the cache. A control the key may not send is an error.
    pub fn plan(
        &self,
        caller: &Caller,
        req: &LlmRequest,
        group: &str,
    ) -> Result<Option<Plan>, GatewayError> {
        let controls = &req.gateway.cache;
        controls.check_allowed(caller)?;
        let on = controls.use_cache.unwrap_or(self.settings.default_on);
        let fake = req.gateway.mock_response.is_some() || req.gateway.mock_failure.is_some();
        if !on || fake || !self.settings.call_types.contains(&req.kind) {
            return Ok(None);
        }
        let scope = match self.settings.sharing {
            Sharing::Global => String::new(),
            Sharing::Team => match caller.principal() {
                Some(p) => match &p.key.team_id {
                    Some(team) => format!("team:{team}"),
                    None => format!("key:{}", p.key.token),
                },
                None => "admin".to_string(),
            },
        };
        let namespace = controls
            .namespace
            .as_deref()
            .or(self.settings.namespace.as_deref());
        let key = namespaced(namespace, digest(req.kind, group, &scope, &req.body, &[]));
        let semantic = self.settings.semantic.as_ref().and_then(|s| {
            Some(SemanticPlan {
                partition: namespaced(
                    namespace,
                    digest(req.kind, group, &scope, &req.body, CONTENT_FIELDS),
                ),
                text: prompt_text(&req.body)?,
                model: s.embedding_model.clone(),
                vector: OnceCell::new(),
            })
        });
        Ok(Some(Plan {
            key,
            read: !controls.no_cache,
            write: !controls.no_store,
            ttl: controls.ttl.or(self.settings.ttl),
            max_age: controls.s_maxage,
            kind: req.kind,
            semantic,
        }))
    }

    fn fresh(&self, plan: &Plan, entry: &CachedEntry) -> bool {
        plan.max_age
            .is_none_or(|age| now_ms().saturating_sub(entry.created_ms) <= age.as_millis() as u64)
    }

    async fn get(&self, key: &str) -> Option<CachedEntry> {
        match self.store.get(key).await {
            Ok(found) => found,
            Err(e) => {
                self.counters.unavailable.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "response cache unavailable; served without it");
                None
            }
        }
    }

    /// The stored answer for `plan`, if any: the exact key first, then (semantic caching) the
    /// nearest stored prompt.
    pub async fn lookup(
        &self,
        state: &crate::state::AppState,
        http: &actix_web::HttpRequest,
        caller: &Caller,
        group: &str,
        plan: &Plan,
    ) -> Option<Hit> {
        let hit = self.find(state, http, plan).await;
        let labels = labels(caller, group);
        match &hit {
            Some(h) => {
                self.counters.hits.get_or_create(&labels).inc();
                self.counters
                    .cached_tokens
                    .get_or_create(&labels)
                    .inc_by(h.completion.usage.total_tokens);
            }
            None => {
                self.counters.misses.get_or_create(&labels).inc();
            }
        }
        hit
    }

    async fn find(
        &self,
        state: &crate::state::AppState,
        http: &actix_web::HttpRequest,
        plan: &Plan,
    ) -> Option<Hit> {
        if let Some(entry) = self.get(&plan.key).await.filter(|e| self.fresh(plan, e)) {
            return Some(hit(plan.key.clone(), entry));
        }
        let semantic = plan.semantic.as_ref()?;
        let vector = embed(state, http, &semantic.model, &semantic.text).await?;
        let nearest = self.store.nearest(&semantic.partition, &vector).await;
        let _ = semantic.vector.set(vector);
        let (key, similarity) = match nearest {
            Ok(Some(found)) => found,
            Ok(None) => return None,
            Err(e) => {
                self.counters.unavailable.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "semantic cache unavailable; served without it");
                return None;
            }
        };
        let entry = self.get(&key).await.filter(|e| self.fresh(plan, e))?;
        tracing::debug!(key, similarity, "semantic cache hit");
        Some(hit(key, entry))
    }

    /// Store a successful reply (a stream: once it completed), and hand the reply on unchanged.
    /// `hide_usage`: the stream was asked for its usage chunk only so the stored response has
    /// usage; the client did not ask for it, so it is not relayed.
    pub fn store(
        self: &std::sync::Arc<Self>,
        http: &actix_web::HttpRequest,
        plan: Plan,
        reply: Reply,
        hide_usage: bool,
    ) -> Reply {
        if !plan.write {
            return reply;
        }
        match reply {
            Reply::Complete(completion) => {
                self.keep(http, &plan, completion.body.clone());
                Reply::Complete(completion)
            }
            // Never stored: only call types that answer JSON or SSE are cached.
            Reply::Binary(binary) => Reply::Binary(binary),
            Reply::Stream(stream) => {
                let cache = self.clone();
                let http = http.clone();
                let limit = self.settings.max_entry_bytes;
                Reply::Stream(replay::record(stream, limit, hide_usage, move |chunks| {
                    if let Some(done) = replay::assemble(plan.kind, &chunks) {
                        cache.keep(&http, &plan, done.body);
                    }
                }))
            }
        }
    }

    /// Write the entry, then (semantic caching) index the prompt's embedding under its key: the
    /// store writes them in that order, so no instance finds a vector without its entry. The
    /// embedding is the lookup's when it made one, else computed now, off the request path.
    fn keep(self: &std::sync::Arc<Self>, http: &actix_web::HttpRequest, plan: &Plan, body: Bytes) {
        if body.len() > self.settings.max_entry_bytes {
            return;
        }
        let entry = CachedEntry {
            created_ms: now_ms(),
            body,
        };
        self.store.put(plan.key.clone(), entry, plan.ttl);
        let Some(semantic) = &plan.semantic else {
            return;
        };
        let (partition, key, ttl) = (semantic.partition.clone(), plan.key.clone(), plan.ttl);
        if let Some(vector) = semantic.vector.get() {
            self.store.put_vector(partition, key, vector.clone(), ttl);
            return;
        }
        let Some(state) = http
            .app_data::<actix_web::web::Data<crate::state::AppState>>()
            .cloned()
        else {
            return;
        };
        let cache = self.clone();
        let http = http.clone();
        let (model, text) = (semantic.model.clone(), semantic.text.clone());
        actix_web::rt::spawn(async move {
            if let Some(vector) = embed(&state, &http, &model, &text).await {
                cache.store.put_vector(partition, key, vector, ttl);
            }
        });
    }
}

fn hit(key: String, entry: CachedEntry) -> Hit {
    let envelope: Option<UsageEnvelope> = serde_json::from_slice(&entry.body).ok();
    let (id, usage) = envelope.map_or((None, Usage::default()), |e| {
        (e.id, e.usage.unwrap_or_default())
    });
    Hit {
        key,
        completion: Completion {
            body: entry.body,
            usage,
            id,
            content_type: None,
        },
    }
}

/// Embed `text` with the deployments of `model`, through the pipeline as the gateway's own call
/// (routing, retries and spend apply; the cache does not). `None` when it fails.
async fn embed(
    state: &crate::state::AppState,
    http: &actix_web::HttpRequest,
    model: &str,
    text: &str,
) -> Option<Vec<f32>> {
    let mut body = Map::new();
    body.insert("model".into(), Value::String(model.to_string()));
    body.insert("input".into(), Value::String(text.to_string()));
    body.insert("encoding_format".into(), Value::String("float".into()));
    body.insert("caching".into(), Value::Bool(false));
    let req = LlmRequest::from_body(CallKind::Embedding, body, None).ok()?;
    let run: std::pin::Pin<Box<dyn std::future::Future<Output = crate::outcome::Outcome>>> =
        Box::pin(crate::pipeline::run(state, http, Caller::Admin, req));
    let outcome = run.await;
    let body = match outcome.result {
        Ok(Reply::Complete(c)) => c.body,
        Ok(Reply::Stream(_) | Reply::Binary(_)) => return None,
        Err(e) => {
            tracing::warn!(model, error = %e, "semantic cache: the prompt could not be embedded; served without the cache");
            return None;
        }
    };
    #[derive(serde::Deserialize)]
    struct Embedding {
        embedding: Vec<f32>,
    }
    #[derive(serde::Deserialize)]
    struct List {
        data: Vec<Embedding>,
    }
    let list: List = serde_json::from_slice(&body).ok()?;
    list.data.into_iter().next().map(|e| e.embedding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_key_ignores_key_order_user_stream_and_model_name() {
        let a = body(
            json!({"model": "g", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5, "user": "u1", "stream": true}),
        );
        let b = body(
            json!({"temperature": 0.5, "messages": [{"content": "hi", "role": "user"}], "model": "alias"}),
        );
        assert_eq!(
            cache_key(CallKind::Chat, "g", "team:t", None, &a),
            cache_key(CallKind::Chat, "g", "team:t", None, &b)
        );
    }

    #[test]
    fn the_key_changes_with_content_parameters_group_kind_scope_and_namespace() {
        let base =
            body(json!({"messages": [{"role": "user", "content": "hi"}], "temperature": 0.5}));
        let k = |kind, group: &str, scope: &str, ns: Option<&str>, b: &Map<String, Value>| {
            cache_key(kind, group, scope, ns, b)
        };
        let reference = k(CallKind::Chat, "g", "s", None, &base);
        let mut other = base.clone();
        other.insert("temperature".into(), json!(0.7));
        assert_ne!(reference, k(CallKind::Chat, "g", "s", None, &other));
        let mut tools = base.clone();
        tools.insert(
            "tools".into(),
            json!([{"type": "function", "function": {"name": "f"}}]),
        );
        assert_ne!(reference, k(CallKind::Chat, "g", "s", None, &tools));
        assert_ne!(reference, k(CallKind::Chat, "h", "s", None, &base));
        assert_ne!(reference, k(CallKind::Completion, "g", "s", None, &base));
        assert_ne!(reference, k(CallKind::Chat, "g", "s2", None, &base));
        let namespaced = k(CallKind::Chat, "g", "s", Some("ns"), &base);
        assert_eq!(namespaced, format!("ns:{reference}"));
        assert_eq!(reference.len(), 64);
    }

    #[test]
    fn controls_parse_litellm_spellings() {
        let c = Controls::parse(
            Some(&json!({"no-cache": true, "no-store": false, "ttl": 60, "s-maxage": 5, "namespace": "n", "unknown": 1})),
            Some(&json!(true)),
        )
        .unwrap();
        assert!(c.no_cache && !c.no_store);
        assert_eq!(c.ttl, Some(Duration::from_secs(60)));
        assert_eq!(c.s_maxage, Some(Duration::from_secs(5)));
        assert_eq!(c.namespace.as_deref(), Some("n"));
        assert_eq!(c.use_cache, Some(true));
        assert_eq!(
            c.named,
            vec!["no-cache", "no-store", "ttl", "s-maxage", "namespace"]
        );
        assert!(Controls::parse(Some(&json!({"ttl": "soon"})), None).is_err());
        assert!(Controls::parse(Some(&json!(["no-cache"])), None).is_err());
        assert!(Controls::parse(None, Some(&json!("yes"))).is_err());
        assert_eq!(Controls::parse(None, None).unwrap(), Controls::default());
    }

    #[test]
    fn prompt_text_reads_messages_parts_prompts_and_inputs() {
        let b = body(json!({"messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "image_url", "image_url": {"url": "x"}}]}
        ]}));
        assert_eq!(prompt_text(&b).as_deref(), Some("be brief\nhello"));
        assert_eq!(
            prompt_text(&body(json!({"prompt": ["a", "b"]}))).as_deref(),
            Some("a\nb")
        );
        assert_eq!(
            prompt_text(&body(json!({"input": "x"}))).as_deref(),
            Some("x")
        );
        assert_eq!(prompt_text(&body(json!({"n": 1}))), None);
    }
}
