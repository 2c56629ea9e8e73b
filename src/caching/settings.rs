//! What the configuration asks of the response cache, in LiteLLM's three spellings:
//!
//! * `litellm_settings: {cache: true, cache_params: {type, host, port, password, ttl, namespace, …}}`;
//! * `litellm_settings: {cache: {type: redis}}` (the settings inline, Redis from `REDIS_*`);
//! * the top-level `cache_settings: {type, host, port, similarity_threshold, …}` with
//!   `litellm_settings.cache_ttl`.
//!
//! Later spellings override earlier ones key by key (`cache_settings`, then the inline `cache`
//! mapping, then `cache_params`). Redis comes from the settings (`url`, or `host`/`port`/`password`),
//! else `REDIS_URL`, else `REDIS_HOST`/`REDIS_PORT`/`REDIS_PASSWORD`, else the router's Redis.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::{as_f64, config_seconds, truthy, ProxyConfig};
use crate::llm::CallKind;

/// Who may be answered with an entry another caller's request stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Keys of the same team (a key without a team: only itself; the master key: only itself).
    Team,
    /// Every caller (`cache_params.scope: global`, LiteLLM's behaviour).
    Global,
}

/// Where entries live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// In this process, bounded, least recently used evicted first.
    Local,
    /// In Redis, shared by every instance.
    Redis(String),
}

/// Semantic matching: a request whose prompt is close enough in meaning to a stored one is
/// answered with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Semantic {
    /// The `model_name` whose deployments embed prompts.
    pub embedding_model: String,
    /// A hit needs at least this cosine similarity.
    pub threshold: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    pub backend: Backend,
    pub semantic: Option<Semantic>,
    /// How long an entry lives unless the request says (`ttl`); `None`: until evicted or deleted.
    pub ttl: Option<Duration>,
    pub namespace: Option<String>,
    /// The call types answered from the cache (`supported_call_types`).
    pub call_types: Vec<CallKind>,
    /// `mode: default_off`: only requests that ask (`caching: true`) use the cache.
    pub default_on: bool,
    pub sharing: Sharing,
    /// Local entries (and semantic vectors per instance) kept at most (`max_size`).
    pub max_entries: usize,
    /// Local body bytes kept at most (`max_size_bytes`).
    pub max_bytes: usize,
    /// A response larger than this is served but not stored.
    pub max_entry_bytes: usize,
}

pub const DEFAULT_MAX_ENTRIES: usize = 10_000;
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;
/// LiteLLM's default embedding model for `redis-semantic`.
pub const DEFAULT_EMBEDDING_MODEL: &str = "text-embedding-ada-002";
pub const DEFAULT_SIMILARITY_THRESHOLD: f32 = 0.8;

/// The cache the configuration asks for, and what to tell the operator about it at start.
#[derive(Debug, Default)]
pub struct Resolved {
    pub settings: Option<CacheSettings>,
    /// Said once at start (info).
    pub notes: Vec<String>,
    /// Settings that could not be honoured as written (warn).
    pub warnings: Vec<String>,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn redis_url_from(params: &Map<String, Value>) -> Option<String> {
    let get = |k: &str| params.get(k).and_then(text);
    if let Some(url) = get("url").or_else(|| get("redis_url")) {
        return Some(url);
    }
    let host = get("host")?;
    let port = get("port").unwrap_or_else(|| "6379".into());
    let scheme = if params.get("ssl").is_some_and(truthy) {
        "rediss"
    } else {
        "redis"
    };
    Some(match (get("username"), get("password")) {
        (user, Some(password)) => format!(
            "{scheme}://{}:{}@{host}:{port}",
            user.as_deref()
                .map(crate::config::percent_encode_userinfo)
                .unwrap_or_default(),
            crate::config::percent_encode_userinfo(&password)
        ),
        (_, None) => format!("{scheme}://{host}:{port}"),
    })
}

fn redis_url_from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if let Some(url) = env("REDIS_URL").filter(|u| !u.trim().is_empty()) {
        return Some(url);
    }
    let mut params = Map::new();
    for (var, key) in [
        ("REDIS_HOST", "host"),
        ("REDIS_PORT", "port"),
        ("REDIS_PASSWORD", "password"),
        ("REDIS_USERNAME", "username"),
    ] {
        if let Some(v) = env(var) {
            params.insert(key.into(), Value::String(v));
        }
    }
    redis_url_from(&params)
}

/// Where the Redis shared by every instance's router and rate limits comes from, first found:
/// `router_settings` (`redis_url`, `redis_host`…), the response cache's Redis settings
/// (`litellm_settings.cache_params` / `cache: {…}` / `cache_settings` with a host or url, when its
/// type is Redis or unset), `REDIS_URL`, then `REDIS_HOST` / `REDIS_PORT` / `REDIS_PASSWORD`
/// (LiteLLM's multi-instance setups give it either way). Returns the URL and where it came from.
pub fn shared_state_redis(
    cfg: &ProxyConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<(String, &'static str)> {
    if let Some(url) = cfg.router_redis_url() {
        return Some((url, "router_settings"));
    }
    let mut params = cfg.cache_settings.clone();
    if let Some(Value::Object(inline)) = cfg.litellm_settings.get("cache") {
        params.extend(inline.clone());
    }
    if let Some(Value::Object(p)) = cfg.litellm_settings.get("cache_params") {
        params.extend(p.clone());
    }
    let redis_type = params
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(|t| t.to_ascii_lowercase().starts_with("redis"));
    if redis_type {
        if let Some(url) = redis_url_from(&params) {
            return Some((url, "litellm_settings.cache_params"));
        }
    }
    if let Some(url) = env("REDIS_URL").filter(|u| !u.trim().is_empty()) {
        return Some((url, "REDIS_URL"));
    }
    redis_url_from_env(&|var| if var == "REDIS_URL" { None } else { env(var) })
        .map(|url| (url, "REDIS_HOST"))
}

fn call_kind(name: &str) -> Option<CallKind> {
    match name {
        "completion" | "acompletion" | "anthropic_messages" => Some(CallKind::Chat),
        "text_completion" | "atext_completion" => Some(CallKind::Completion),
        "embedding" | "aembedding" => Some(CallKind::Embedding),
        _ => None,
    }
}

impl CacheSettings {
    /// Read the configuration. `env` reads environment variables (a parameter so tests need not
    /// touch the process environment).
    pub fn resolve(cfg: &ProxyConfig, env: &dyn Fn(&str) -> Option<String>) -> Resolved {
        let mut out = Resolved::default();
        let switch = cfg.litellm_settings.get("cache");
        let asked = match switch {
            Some(Value::Object(_)) => true,
            Some(v) if !v.is_null() => truthy(v),
            _ => {
                !cfg.cache_settings.is_empty()
                    || cfg
                        .router_settings
                        .get("cache_responses")
                        .is_some_and(truthy)
            }
        };
        if !asked {
            return out;
        }
        let mut params = cfg.cache_settings.clone();
        if let Some(Value::Object(inline)) = switch {
            params.extend(inline.clone());
        }
        if let Some(Value::Object(p)) = cfg.litellm_settings.get("cache_params") {
            params.extend(p.clone());
        }
        let get = |k: &str| params.get(k).filter(|v| !v.is_null());

        let redis = redis_url_from(&params)
            .or_else(|| redis_url_from_env(env))
            .or_else(|| cfg.router_redis_url());
        let threshold = get("similarity_threshold").and_then(as_f64);
        let kind = get("type")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase);
        let (backend, semantic_asked) = match kind.as_deref() {
            None => match redis {
                Some(url) => (Backend::Redis(url), threshold.is_some()),
                None => {
                    out.notes.push(
                        "response cache: no type and no Redis configured; caching in memory (type: local)"
                            .into(),
                    );
                    (Backend::Local, threshold.is_some())
                }
            },
            Some("local") => (Backend::Local, threshold.is_some()),
            Some("local-semantic") => (Backend::Local, true),
            Some(t @ ("redis" | "redis-semantic")) => match redis {
                Some(url) => (
                    Backend::Redis(url),
                    t == "redis-semantic" || threshold.is_some(),
                ),
                None => {
                    out.warnings.push(format!(
                        "cache type {t} needs a Redis (cache_params host/port, REDIS_URL or REDIS_HOST, or router_settings.redis_host); caching in memory instead"
                    ));
                    (Backend::Local, t == "redis-semantic" || threshold.is_some())
                }
            },
            Some(other) => {
                let fallback = match redis {
                    Some(url) => Backend::Redis(url),
                    None => Backend::Local,
                };
                out.warnings.push(format!(
                    "cache type {other} is not supported (use local, redis or redis-semantic); caching in {} instead",
                    if fallback == Backend::Local { "memory" } else { "Redis" }
                ));
                (fallback, false)
            }
        };

        let semantic = if semantic_asked {
            let model = get("redis_semantic_cache_embedding_model")
                .and_then(text)
                .unwrap_or_else(|| DEFAULT_EMBEDDING_MODEL.to_string());
            if cfg.model_list.iter().any(|m| m.model_name == model) {
                Some(Semantic {
                    embedding_model: model,
                    threshold: threshold
                        .map(|t| t.clamp(0.0, 1.0) as f32)
                        .unwrap_or(DEFAULT_SIMILARITY_THRESHOLD),
                })
            } else {
                out.warnings.push(format!(
                    "semantic caching needs an embedding model in model_list (redis_semantic_cache_embedding_model, default {DEFAULT_EMBEDDING_MODEL}); '{model}' is not one, so only identical requests are answered from the cache"
                ));
                None
            }
        } else {
            None
        };

        let ttl = get("ttl")
            .or_else(|| get("cache_ttl"))
            .or_else(|| cfg.litellm_settings.get("cache_ttl"))
            .and_then(as_f64)
            .filter(|s| *s > 0.0)
            .map(config_seconds);
        let call_types = match get("supported_call_types") {
            Some(Value::Array(names)) => {
                let mut kinds = Vec::new();
                for kind in names.iter().filter_map(Value::as_str).filter_map(call_kind) {
                    if !kinds.contains(&kind) {
                        kinds.push(kind);
                    }
                }
                kinds
            }
            _ => vec![CallKind::Chat, CallKind::Completion, CallKind::Embedding],
        };
        let sharing = match get("scope").and_then(Value::as_str) {
            Some("global") => Sharing::Global,
            Some("team") | None => Sharing::Team,
            Some(other) => {
                out.warnings.push(format!(
                    "cache_params.scope {other} is not one of team, global; entries are shared within a team"
                ));
                Sharing::Team
            }
        };
        let max_entries = get("max_size")
            .or_else(|| get("max_size_in_memory"))
            .and_then(as_f64)
            .filter(|n| *n >= 1.0)
            .map_or(DEFAULT_MAX_ENTRIES, |n| n as usize);
        let max_bytes = get("max_size_bytes")
            .and_then(as_f64)
            .filter(|n| *n >= 1024.0)
            .map_or(DEFAULT_MAX_BYTES, |n| n as usize);
        let settings = CacheSettings {
            backend,
            semantic,
            ttl,
            namespace: match get("namespace").and_then(text) {
                Some(ns) if !super::valid_namespace(&ns) => {
                    out.warnings.push(format!(
                        "cache namespace '{ns}' cannot be used (at most 256 characters, not starting with 'vector'); entries have no namespace"
                    ));
                    None
                }
                ns => ns,
            },
            call_types,
            default_on: get("mode").and_then(Value::as_str) != Some("default_off"),
            sharing,
            max_entries,
            max_bytes,
            max_entry_bytes: (max_bytes / 4).min(8 * 1024 * 1024),
        };
        out.notes.push(format!(
            "response cache: {}{}, {}{}",
            match &settings.backend {
                Backend::Local => "in memory",
                Backend::Redis(_) => "in Redis",
            },
            match &settings.semantic {
                Some(s) => format!(
                    ", semantic (embeddings from {}, similarity >= {})",
                    s.embedding_model, s.threshold
                ),
                None => String::new(),
            },
            match settings.sharing {
                Sharing::Team => "entries shared within a team",
                Sharing::Global => "entries shared by every caller",
            },
            match settings.ttl {
                Some(t) => format!(", ttl {} s", t.as_secs_f64()),
                None => String::new(),
            }
        ));
        out.settings = Some(settings);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(yaml: &str, env: &[(&str, &str)]) -> Resolved {
        let cfg = ProxyConfig::parse(yaml, "test").expect("parses");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CacheSettings::resolve(&cfg, &move |k| {
            env.iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        })
    }

    const EMBED: &str = "model_list:\n  - model_name: text-embedding-ada-002\n    litellm_params: {model: openai/text-embedding-ada-002}\n";

    #[test]
    fn no_cache_setting_means_no_cache() {
        assert!(resolve("litellm_settings: {drop_params: true}\n", &[])
            .settings
            .is_none());
        assert!(resolve("litellm_settings: {cache: false}\n", &[])
            .settings
            .is_none());
    }

    #[test]
    fn cache_true_without_redis_is_local_and_says_so() {
        let r = resolve("litellm_settings: {cache: true}\n", &[]);
        let s = r.settings.expect("cache on");
        assert_eq!(s.backend, Backend::Local);
        assert_eq!(s.sharing, Sharing::Team);
        assert!(s.default_on);
        assert!(r.notes.iter().any(|n| n.contains("no type and no Redis")));
    }

    #[test]
    fn shared_state_redis_from_router_settings_cache_params_or_environment() {
        let env_none = |_: &str| None;
        let cfg = |y: &str| ProxyConfig::parse(y, "test").unwrap();
        assert_eq!(
            shared_state_redis(&cfg("model_list: []\n"), &env_none),
            None
        );
        assert_eq!(
            shared_state_redis(
                &cfg("router_settings:\n  redis_host: r\n  redis_port: 7\n"),
                &env_none
            ),
            Some(("redis://r:7".into(), "router_settings"))
        );
        assert_eq!(
            shared_state_redis(
                &cfg("litellm_settings:\n  cache: true\n  cache_params: {type: redis, host: c, port: 8, password: 'p@ss'}\n"),
                &env_none
            ),
            Some(("redis://:p%40ss@c:8".into(), "litellm_settings.cache_params"))
        );
        let local =
            cfg("litellm_settings:\n  cache: true\n  cache_params: {type: local, host: c}\n");
        assert_eq!(shared_state_redis(&local, &env_none), None);
        let env = |v: &str| match v {
            "REDIS_HOST" => Some("envhost".to_string()),
            "REDIS_PORT" => Some("7000".to_string()),
            "REDIS_PASSWORD" => Some("pw".to_string()),
            _ => None,
        };
        assert_eq!(
            shared_state_redis(&local, &env),
            Some(("redis://:pw@envhost:7000".into(), "REDIS_HOST"))
        );
        let url = |v: &str| (v == "REDIS_URL").then(|| "redis://u:1/0".to_string());
        assert_eq!(
            shared_state_redis(&cfg("model_list: []\n"), &url),
            Some(("redis://u:1/0".into(), "REDIS_URL"))
        );
    }

    #[test]
    fn cache_params_name_the_redis_and_the_controls() {
        let r = resolve(
            "litellm_settings:\n  cache: true\n  cache_params: {type: redis, host: cachehost, port: 6380, password: 'p@ss', ttl: 60, namespace: ns, supported_call_types: [acompletion, aembedding], max_size: 5, mode: default_off, scope: global}\n",
            &[],
        );
        let s = r.settings.expect("cache on");
        assert_eq!(
            s.backend,
            Backend::Redis("redis://:p%40ss@cachehost:6380".into())
        );
        assert_eq!(s.ttl, Some(Duration::from_secs(60)));
        assert_eq!(s.namespace.as_deref(), Some("ns"));
        assert_eq!(s.call_types, vec![CallKind::Chat, CallKind::Embedding]);
        assert_eq!(s.max_entries, 5);
        assert!(!s.default_on);
        assert_eq!(s.sharing, Sharing::Global);
    }

    #[test]
    fn the_seed_form_takes_redis_from_the_environment() {
        let r = resolve(
            "litellm_settings:\n  cache:\n    type: redis\n",
            &[("REDIS_HOST", "envhost"), ("REDIS_PORT", "7000")],
        );
        assert_eq!(
            r.settings.expect("cache on").backend,
            Backend::Redis("redis://envhost:7000".into())
        );
        let r = resolve(
            "litellm_settings:\n  cache:\n    type: redis\n",
            &[("REDIS_URL", "redis://u:p@h:1/2")],
        );
        assert_eq!(
            r.settings.expect("cache on").backend,
            Backend::Redis("redis://u:p@h:1/2".into())
        );
        // No Redis anywhere: in memory, with a warning.
        let r = resolve("litellm_settings:\n  cache:\n    type: redis\n", &[]);
        assert_eq!(r.settings.expect("cache on").backend, Backend::Local);
        assert!(r.warnings.iter().any(|w| w.contains("needs a Redis")));
    }

    #[test]
    fn the_router_redis_serves_when_nothing_else_names_one() {
        let r = resolve(
            "litellm_settings: {cache: true}\nrouter_settings: {redis_host: routerhost, redis_port: 6390}\n",
            &[],
        );
        assert_eq!(
            r.settings.expect("cache on").backend,
            Backend::Redis("redis://routerhost:6390".into())
        );
    }

    #[test]
    fn the_tutorial_form_with_cache_ttl_and_similarity() {
        let yaml = format!(
            "{EMBED}cache_settings:\n  type: redis\n  host: localhost\n  port: 6379\n  similarity_threshold: 0.9\nlitellm_settings:\n  cache: true\n  cache_ttl: 3600\n"
        );
        let r = resolve(&yaml, &[]);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        let s = r.settings.expect("cache on");
        assert_eq!(s.backend, Backend::Redis("redis://localhost:6379".into()));
        assert_eq!(s.ttl, Some(Duration::from_secs(3600)));
        assert_eq!(
            s.semantic,
            Some(Semantic {
                embedding_model: DEFAULT_EMBEDDING_MODEL.into(),
                threshold: 0.9
            })
        );
        let cfg = ProxyConfig::parse(&yaml, "t").unwrap();
        assert!(
            !cfg.warnings.iter().any(|w| w.contains("cache")),
            "{:?}",
            cfg.warnings
        );
    }

    #[test]
    fn semantic_without_its_embedding_model_falls_back_to_exact_matching() {
        let r = resolve(
            "litellm_settings:\n  cache: true\n  cache_params: {type: redis-semantic, host: h, redis_semantic_cache_embedding_model: missing}\n",
            &[],
        );
        assert!(r.settings.expect("cache on").semantic.is_none());
        assert!(r
            .warnings
            .iter()
            .any(|w| w.contains("'missing' is not one")));
    }

    #[test]
    fn unsupported_types_say_so() {
        let r = resolve(
            "litellm_settings:\n  cache: true\n  cache_params: {type: s3}\n",
            &[],
        );
        assert_eq!(r.settings.expect("cache on").backend, Backend::Local);
        assert!(r
            .warnings
            .iter()
            .any(|w| w.contains("type s3 is not supported")));
    }
}
