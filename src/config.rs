//! LiteLLM's `config.yaml`, read the way LiteLLM reads it.
//!
//! Loading runs in this order:
//! 1. parse the YAML (a syntax error names the file, line and column);
//! 2. export `environment_variables` into the process environment (before any resolution);
//! 3. replace every `os.environ/NAME` string, at any depth, by the variable's value. A variable that is
//!    not set is a warning, never a crash: inside a `model_list` entry it marks that deployment as
//!    misconfigured (calls to it get a clear error), elsewhere the setting is treated as absent;
//! 4. merge `credential_list` entries into the `litellm_params` that name them
//!    (`litellm_credential_name`), and drop deployments whose `model_info.supported_environments` does
//!    not include `LITELLM_ENVIRONMENT`;
//! 5. read the typed settings the gateway uses, warning about every key that does not act: unknown
//!    keys ("unknown, ignored") and keys accepted without effect (with the reason). What acts and
//!    what does not is one registry, [`crate::config_keys`]. Unknown keys are never fatal;
//! 6. fan an `organization` list out into one deployment per organization (as LiteLLM does).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::config_keys::{self, Section};
use crate::secret::Secret;

/// A config file that could not be used at all.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid YAML in config file {path} at line {line}, column {column}: {message}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("invalid config file {path}: {message}")]
    Shape { path: String, message: String },
    /// `general_settings.key_management_system` is misconfigured or could not be read.
    #[error("secret manager: {0}")]
    SecretManager(String),
}

/// One `model_list` entry after resolution.
#[derive(Debug, Clone)]
pub struct ModelEntry {
    pub model_name: String,
    pub litellm_params: Map<String, Value>,
    pub model_info: Map<String, Value>,
    /// `os.environ/` references in this entry that could not be resolved: (field path, variable).
    pub unresolved: Vec<(String, String)>,
}

/// `model_group_alias` target.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelAlias {
    pub target: String,
    pub hidden: bool,
}

/// The parsed document with the typed settings the gateway uses.
#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    pub source: Option<PathBuf>,
    pub model_list: Vec<ModelEntry>,
    pub litellm_settings: Map<String, Value>,
    pub router_settings: Map<String, Value>,
    pub general_settings: Map<String, Value>,
    /// The top-level `cache_settings` block (the tutorial's form of `litellm_settings.cache_params`).
    pub cache_settings: Map<String, Value>,
    /// Everything worth telling the operator at start (unknown keys, unresolved variables…).
    pub warnings: Vec<String>,
    /// `model_list` and `credential_list` as written, before `os.environ/` resolution: the
    /// deployments are resolved again from them when `POST /config/update` sets a variable they
    /// name ([`ProxyConfig::model_list_resolved_again`]).
    pub raw_model_list: Value,
    pub raw_credential_list: Value,
    /// How many `model_list` entries came from the file (quick-start `--model` entries follow).
    pub file_models: usize,
}

impl ProxyConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Self::parse(&text, &path.display().to_string())?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parse a document. Exports `environment_variables` into the process environment, so call it
    /// before starting threads that read the environment.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let doc: Value = if text.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            yaml_serde::from_str(text).map_err(|e| {
                let (line, column) = e
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or((0, 0));
                ConfigError::Syntax {
                    path: origin.to_string(),
                    line,
                    column,
                    message: e.to_string(),
                }
            })?
        };
        let mut root = match doc {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => {
                return Err(ConfigError::Shape {
                    path: origin.to_string(),
                    message: format!("the top level must be a mapping, found {}", kind(&other)),
                })
            }
        };
        let mut warnings = Vec::new();

        // 2. environment_variables are exported before anything is resolved.
        if let Some(vars) = root.get("environment_variables") {
            match vars {
                Value::Object(vars) => {
                    for (name, value) in vars {
                        let value = match value {
                            Value::String(s) => s.clone(),
                            Value::Null => continue,
                            other => other.to_string(),
                        };
                        export_env(name, &value);
                    }
                }
                Value::Null => {}
                _ => warnings.push("environment_variables must be a mapping; ignored".into()),
            }
        }

        // 2b. with a secret manager, the secrets `os.environ/` names are read from it first.
        if let Some(general) = root.get("general_settings").and_then(Value::as_object) {
            let manager = crate::secret_manager::from_settings(general, &|k| std::env::var(k).ok())
                .map_err(ConfigError::SecretManager)?;
            if let Some(manager) = manager {
                let mut names = std::collections::BTreeSet::new();
                root.values().for_each(|v| env_ref_names(v, &mut names));
                let found = manager.fetch(&names).map_err(ConfigError::SecretManager)?;
                set_managed_secrets(found);
                crate::secret_manager::activate(manager, names);
            }
        }

        let raw_model_list = root.get("model_list").cloned().unwrap_or(Value::Null);
        let raw_credential_list = root.get("credential_list").cloned().unwrap_or(Value::Null);

        // 3. os.environ/NAME anywhere.
        let mut unresolved = Vec::new();
        let mut root_value = Value::Object(std::mem::take(&mut root));
        resolve_env_refs(&mut root_value, "", &mut unresolved);
        let mut root = match root_value {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        for (path, var) in &unresolved {
            warnings.push(format!(
                "environment variable {var} referenced at {path} (os.environ/{var}) is not set"
            ));
        }

        config_keys::check(Section::Top, &root, "", "", &mut warnings);

        let section =
            |root: &mut Map<String, Value>, name: &str, warnings: &mut Vec<String>| match root
                .remove(name)
            {
                Some(Value::Object(m)) => m,
                None | Some(Value::Null) => Map::new(),
                Some(other) => {
                    warnings.push(format!(
                        "{name} must be a mapping, found {}; ignored",
                        kind(&other)
                    ));
                    Map::new()
                }
            };
        let litellm_settings = section(&mut root, "litellm_settings", &mut warnings);
        let router_settings = section(&mut root, "router_settings", &mut warnings);
        let general_settings = section(&mut root, "general_settings", &mut warnings);
        let cache_settings = section(&mut root, "cache_settings", &mut warnings);
        for (section, map) in [
            (Section::LitellmSettings, &litellm_settings),
            (Section::RouterSettings, &router_settings),
            (Section::GeneralSettings, &general_settings),
        ] {
            let prefix = format!("{}.", section.title());
            config_keys::check(section, map, &prefix, "", &mut warnings);
        }

        let credentials = parse_credentials(root.get("credential_list"), &mut warnings);
        let model_list = parse_model_list(
            root.remove("model_list"),
            &credentials,
            &unresolved,
            &mut warnings,
        );

        Ok(Self {
            source: None,
            file_models: model_list.len(),
            model_list,
            litellm_settings,
            router_settings,
            general_settings,
            cache_settings,
            warnings,
            raw_model_list,
            raw_credential_list,
        })
    }

    /// The variables the deployments read through `os.environ/NAME` (in `model_list` or
    /// `credential_list`): the ones `POST /config/update` may set.
    pub fn deployment_env_vars(&self) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        env_ref_names(&self.raw_model_list, &mut out);
        env_ref_names(&self.raw_credential_list, &mut out);
        out
    }

    /// `model_list` resolved again from the file's text, with the variables set now (including
    /// those of [`set_env_overlay`]); warnings were given at start and are not repeated.
    pub fn model_list_resolved_again(&self) -> Vec<ModelEntry> {
        let mut unresolved = Vec::new();
        let mut models = self.raw_model_list.clone();
        resolve_env_refs(&mut models, "model_list", &mut unresolved);
        let mut credentials = self.raw_credential_list.clone();
        resolve_env_refs(&mut credentials, "credential_list", &mut Vec::new());
        let mut ignored = Vec::new();
        let credentials = parse_credentials(Some(&credentials), &mut ignored);
        let mut out = parse_model_list(Some(models), &credentials, &unresolved, &mut ignored);
        out.extend(self.model_list.iter().skip(self.file_models).cloned());
        out
    }

    /// The master key: `general_settings.master_key`, else `LITELLM_MASTER_KEY`.
    pub fn master_key(&self) -> Option<Secret> {
        self.general_settings
            .get("master_key")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| std::env::var("LITELLM_MASTER_KEY").ok())
            .filter(|k| !k.trim().is_empty())
            .map(Secret::new)
    }

    pub fn permit_weak_master_key(&self) -> bool {
        env_flag("LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY")
            || self
                .general_settings
                .get("dangerously_permit_weak_or_unset_master_key")
                .is_some_and(truthy)
    }

    /// `general_settings.max_request_size_mb` (default 32).
    pub fn max_request_size_bytes(&self) -> usize {
        let mb = self
            .general_settings
            .get("max_request_size_mb")
            .and_then(as_f64)
            .filter(|v| *v > 0.0)
            .unwrap_or(32.0);
        (mb * 1024.0 * 1024.0) as usize
    }

    pub fn drop_params(&self) -> bool {
        self.litellm_settings.get("drop_params").is_some_and(truthy)
    }

    /// Whether `callbacks`, `success_callback` or `failure_callback` list `prometheus`: LiteLLM's
    /// per-request Prometheus series are collected only then.
    pub fn prometheus_callback(&self) -> bool {
        ["callbacks", "success_callback", "failure_callback"]
            .iter()
            .filter_map(|k| self.litellm_settings.get(*k))
            .any(|v| match v {
                Value::Array(items) => items.iter().any(|i| i.as_str() == Some("prometheus")),
                Value::String(s) => s == "prometheus",
                _ => false,
            })
    }

    /// `litellm_settings.require_auth_for_metrics_endpoint`: `/metrics` only for the master key
    /// (and proxy-admin keys).
    pub fn require_auth_for_metrics(&self) -> bool {
        self.litellm_settings
            .get("require_auth_for_metrics_endpoint")
            .is_some_and(truthy)
    }

    /// Global request timeout: `litellm_settings.request_timeout`, else `router_settings.timeout`,
    /// else 600 s (LiteLLM's default).
    pub fn request_timeout(&self) -> Duration {
        self.litellm_settings
            .get("request_timeout")
            .or_else(|| self.router_settings.get("timeout"))
            .and_then(as_f64)
            .filter(|s| *s > 0.0)
            .map(config_seconds)
            .unwrap_or(Duration::from_secs(600))
    }

    /// `model_group_alias` from `router_settings` (LiteLLM also reads it from `litellm_settings`).
    pub fn model_group_aliases(&self) -> HashMap<String, ModelAlias> {
        let raw = self
            .router_settings
            .get("model_group_alias")
            .or_else(|| self.litellm_settings.get("model_group_alias"));
        let mut out = HashMap::new();
        if let Some(Value::Object(map)) = raw {
            for (alias, target) in map {
                let parsed = match target {
                    Value::String(t) => Some(ModelAlias {
                        target: t.clone(),
                        hidden: false,
                    }),
                    Value::Object(o) => {
                        o.get("model").and_then(Value::as_str).map(|t| ModelAlias {
                            target: t.to_string(),
                            hidden: o.get("hidden").is_some_and(truthy),
                        })
                    }
                    _ => None,
                };
                if let Some(a) = parsed {
                    out.insert(alias.clone(), a);
                }
            }
        }
        out
    }

    pub fn cooldown_policy(&self) -> tollgate_actors::CooldownPolicy {
        let mut policy = tollgate_actors::CooldownPolicy::default();
        // LiteLLM's router takes `allowed_fails` from litellm_settings when router_settings has none.
        if let Some(n) = self
            .router_settings
            .get("allowed_fails")
            .or_else(|| self.litellm_settings.get("allowed_fails"))
            .and_then(as_f64)
        {
            policy.allowed_fails = n.max(0.0) as u32;
        }
        if let Some(s) = self
            .router_settings
            .get("cooldown_time")
            .or_else(|| self.litellm_settings.get("cooldown_time"))
            .and_then(as_f64)
        {
            policy.cooldown_time = config_seconds(s);
        }
        policy.disabled = self
            .router_settings
            .get("disable_cooldowns")
            .or_else(|| self.litellm_settings.get("disable_cooldowns"))
            .is_some_and(truthy);
        policy
    }

    /// Redis shared by the router of every instance: `router_settings.redis_url`, else
    /// `redis_host` / `redis_port` (default 6379) / `redis_password`. `None` when not configured.
    pub fn router_redis_url(&self) -> Option<String> {
        let get = |key: &str| {
            self.router_settings.get(key).and_then(|v| match v {
                Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        if let Some(url) = get("redis_url") {
            return Some(url);
        }
        let host = get("redis_host")?;
        let port = get("redis_port").unwrap_or_else(|| "6379".into());
        Some(match get("redis_password") {
            Some(password) => format!(
                "redis://:{}@{host}:{port}",
                percent_encode_userinfo(&password)
            ),
            None => format!("redis://{host}:{port}"),
        })
    }

    /// `general_settings.max_parallel_requests` (or `global_max_parallel_requests`): requests in
    /// flight through the whole gateway.
    pub fn global_max_parallel_requests(&self) -> Option<u64> {
        self.general_settings
            .get("global_max_parallel_requests")
            .or_else(|| self.general_settings.get("max_parallel_requests"))
            .and_then(as_f64)
            .filter(|n| *n >= 0.0)
            .map(|n| n as u64)
    }

    /// `router_settings.default_max_parallel_requests`: the in-flight limit of deployments whose
    /// `litellm_params` set no `max_parallel_requests`.
    pub fn default_max_parallel_requests(&self) -> Option<u64> {
        self.router_settings
            .get("default_max_parallel_requests")
            .and_then(as_f64)
            .filter(|n| *n >= 1.0)
            .map(|n| n.min(1e9) as u64)
    }

    /// `litellm_settings.budget_exceeded_status_code`: the HTTP status of budget-exceeded errors
    /// (default 400; only 4xx and 5xx codes are taken).
    pub fn budget_exceeded_status_code(&self) -> u16 {
        self.litellm_settings
            .get("budget_exceeded_status_code")
            .and_then(as_f64)
            .filter(|s| (400.0..600.0).contains(s))
            .map_or(400, |s| s as u16)
    }

    /// Header carrying the key, when the operator renamed it (`litellm_key_header_name`).
    pub fn key_header_name(&self) -> Option<String> {
        self.general_settings
            .get("litellm_key_header_name")
            .and_then(Value::as_str)
            .map(|s| s.to_ascii_lowercase())
    }

    pub fn database_url(&self) -> Option<String> {
        self.general_settings
            .get("database_url")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| std::env::var("DATABASE_URL").ok())
            .filter(|s| !s.is_empty())
    }

    /// The Postgres pool: `general_settings.database_connection_pool_limit` (connections, default
    /// 10) and `database_connection_timeout` (seconds to open one, default 10).
    pub fn database_pool(&self) -> crate::store::PoolSettings {
        let defaults = crate::store::PoolSettings::default();
        let g = &self.general_settings;
        crate::store::PoolSettings {
            max_size: g
                .get("database_connection_pool_limit")
                .and_then(as_f64)
                .filter(|n| *n >= 1.0)
                .map_or(defaults.max_size, |n| n.min(1000.0) as u32),
            connect_timeout: g
                .get("database_connection_timeout")
                .and_then(as_f64)
                .filter(|s| *s > 0.0)
                .map_or(defaults.connect_timeout, config_seconds),
        }
    }

    /// `general_settings.disable_spend_logs`: no spend-log rows are written (spend still lands
    /// on keys, users, teams, organizations and end users).
    pub fn spend_logs_disabled(&self) -> bool {
        self.general_settings
            .get("disable_spend_logs")
            .is_some_and(truthy)
    }

    /// `litellm_settings.turn_off_message_logging`: prompts and completions are kept out of the
    /// logging callbacks' payloads and of the logs.
    pub fn turn_off_message_logging(&self) -> bool {
        self.litellm_settings
            .get("turn_off_message_logging")
            .is_some_and(truthy)
    }

    /// `general_settings.store_prompts_in_spend_logs`: rows keep the request's messages and the
    /// response (bounded; see [`crate::spend::MAX_STORED_JSON_BYTES`]).
    pub fn store_prompts_in_spend_logs(&self) -> bool {
        self.general_settings
            .get("store_prompts_in_spend_logs")
            .is_some_and(truthy)
    }

    /// `general_settings.maximum_spend_logs_retention_period` (`7d`, `30d`…): older spend-log
    /// rows are deleted in the background. `Err` names a value that is not a duration.
    pub fn spend_logs_retention(&self) -> Result<Option<Duration>, String> {
        match self.general_settings.get("maximum_spend_logs_retention_period") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => crate::keys::parse_duration(s)
                .map(|ms| Some(Duration::from_millis(ms as u64)))
                .ok_or_else(|| {
                    format!(
                        "general_settings.maximum_spend_logs_retention_period {s:?} is not a duration ({})",
                        crate::keys::DURATION_HINT
                    )
                }),
            Some(other) => Err(format!(
                "general_settings.maximum_spend_logs_retention_period must be a duration string like \"30d\", not {other}"
            )),
        }
    }

    pub fn json_logs(&self) -> bool {
        self.litellm_settings.get("json_logs").is_some_and(truthy) || env_flag("JSON_LOGS")
    }

    /// `general_settings.background_health_checks` and `health_check_interval` (default 300 s).
    pub fn background_health_checks(&self) -> Option<Duration> {
        if !self
            .general_settings
            .get("background_health_checks")
            .is_some_and(truthy)
        {
            return None;
        }
        let secs = self
            .general_settings
            .get("health_check_interval")
            .and_then(as_f64)
            .filter(|s| *s > 0.0)
            .unwrap_or(300.0);
        Some(config_seconds(secs))
    }
}

/// The longest duration a config setting can ask for (a year); longer, and infinite, mean this.
const MAX_CONFIG_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// Seconds from the config as a duration: negative and NaN are zero, huge and infinite a year.
/// Every duration read from the config or the command line goes through here (a huge value
/// must never panic the process or wrap around).
pub fn config_seconds(secs: f64) -> Duration {
    let secs = if secs.is_nan() { 0.0 } else { secs };
    Duration::from_secs_f64(secs.clamp(0.0, MAX_CONFIG_SECONDS))
}

/// Percent-encode a password for the userinfo part of a URL.
pub(crate) fn percent_encode_userinfo(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn export_env(name: &str, value: &str) {
    // Runs while loading the config, before the server starts any thread.
    std::env::set_var(name, value);
}

pub fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

/// YAML booleans, and the strings LiteLLM users write for them.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "true" | "1" | "yes" | "on"
        ),
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        _ => false,
    }
}

/// Numbers, including numbers written as strings (`timeout: "30"`).
pub fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

const ENV_PREFIX: &str = "os.environ/";

/// Variables set by `POST /config/update` (`environment_variables`): `os.environ/NAME` resolves
/// to them before the process environment. They are never exported into the process environment,
/// which cannot be changed safely once threads run.
static ENV_OVERLAY: std::sync::RwLock<std::collections::BTreeMap<String, Secret>> =
    std::sync::RwLock::new(std::collections::BTreeMap::new());

/// Replace the variables `os.environ/` resolves before the process environment. Returns whether
/// they changed.
pub fn set_env_overlay(vars: std::collections::BTreeMap<String, Secret>) -> bool {
    let mut overlay = ENV_OVERLAY.write().unwrap_or_else(|e| e.into_inner());
    let changed = overlay.len() != vars.len()
        || overlay
            .iter()
            .zip(vars.iter())
            .any(|((a, av), (b, bv))| a != b || av.expose() != bv.expose());
    *overlay = vars;
    if changed {
        ENV_GENERATION.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    changed
}

/// Secrets read from `general_settings.key_management_system`: `os.environ/NAME` resolves to them
/// after the overlay and before the process environment.
static MANAGED_SECRETS: std::sync::RwLock<std::collections::BTreeMap<String, Secret>> =
    std::sync::RwLock::new(std::collections::BTreeMap::new());

/// Replace the secrets read from the secret manager.
pub fn set_managed_secrets(secrets: std::collections::BTreeMap<String, Secret>) {
    *MANAGED_SECRETS.write().unwrap_or_else(|e| e.into_inner()) = secrets;
}

/// Replace the secrets read from the secret manager after the gateway started. Returns whether
/// they changed; when they did, the deployments are resolved again at their next reload.
pub fn refresh_managed_secrets(secrets: std::collections::BTreeMap<String, Secret>) -> bool {
    let mut managed = MANAGED_SECRETS.write().unwrap_or_else(|e| e.into_inner());
    let changed = managed.len() != secrets.len()
        || managed
            .iter()
            .zip(secrets.iter())
            .any(|((a, av), (b, bv))| a != b || av.expose() != bv.expose());
    *managed = secrets;
    if changed {
        ENV_GENERATION.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    changed
}

static ENV_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many times [`set_env_overlay`] changed the variables (0: never).
pub fn env_generation() -> u64 {
    ENV_GENERATION.load(std::sync::atomic::Ordering::SeqCst)
}

/// A variable's value for `os.environ/NAME`: the overlay's, else the secret manager's, else the
/// process environment's.
pub(crate) fn env_value(name: &str) -> Option<String> {
    let overlay = ENV_OVERLAY.read().unwrap_or_else(|e| e.into_inner());
    if let Some(v) = overlay.get(name) {
        return Some(v.expose().to_string());
    }
    let managed = MANAGED_SECRETS.read().unwrap_or_else(|e| e.into_inner());
    match managed.get(name) {
        Some(v) => Some(v.expose().to_string()),
        None => std::env::var(name).ok(),
    }
}

/// Every variable named by an `os.environ/NAME` string in `value`, at any depth.
fn env_ref_names(value: &Value, out: &mut std::collections::BTreeSet<String>) {
    match value {
        Value::String(s) if s.starts_with(ENV_PREFIX) => {
            out.insert(s[ENV_PREFIX.len()..].trim().to_string());
        }
        Value::Array(items) => items.iter().for_each(|v| env_ref_names(v, out)),
        Value::Object(map) => map.values().for_each(|v| env_ref_names(v, out)),
        _ => {}
    }
}

/// The variables named by `os.environ/` references in a stored model's `litellm_params`.
pub fn env_refs_in(params: &Map<String, Value>) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    params.values().for_each(|v| env_ref_names(v, &mut out));
    out
}

/// Replace every `os.environ/NAME` string, at any depth, by the variable's value; unset variables
/// become `null` and are reported as (field path, variable).
pub(crate) fn resolve_env_refs(
    value: &mut Value,
    path: &str,
    unresolved: &mut Vec<(String, String)>,
) {
    match value {
        Value::String(s) if s.starts_with(ENV_PREFIX) => {
            let var = s[ENV_PREFIX.len()..].trim().to_string();
            match env_value(&var) {
                Some(v) => *s = v,
                None => {
                    unresolved.push((path.to_string(), var));
                    *value = Value::Null;
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                resolve_env_refs(item, &format!("{path}[{i}]"), unresolved);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                resolve_env_refs(v, &child, unresolved);
            }
        }
        _ => {}
    }
}

/// `credential_list`: name → values merged into `litellm_params`.
fn parse_credentials(
    raw: Option<&Value>,
    warnings: &mut Vec<String>,
) -> HashMap<String, Map<String, Value>> {
    let mut out = HashMap::new();
    let Some(raw) = raw else { return out };
    let Some(items) = raw.as_array() else {
        if !raw.is_null() {
            warnings.push("credential_list must be a list; ignored".into());
        }
        return out;
    };
    for item in items {
        let name = item.get("credential_name").and_then(Value::as_str);
        let values = item.get("credential_values").and_then(Value::as_object);
        match (name, values) {
            (Some(name), Some(values)) => {
                out.insert(name.to_string(), values.clone());
            }
            _ => warnings.push(
                "credential_list entry without credential_name or credential_values; ignored"
                    .into(),
            ),
        }
    }
    out
}

fn parse_model_list(
    raw: Option<Value>,
    credentials: &HashMap<String, Map<String, Value>>,
    unresolved: &[(String, String)],
    warnings: &mut Vec<String>,
) -> Vec<ModelEntry> {
    let items = match raw {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => return Vec::new(),
        Some(_) => {
            warnings.push("model_list must be a list; ignored".into());
            return Vec::new();
        }
    };
    let environment = std::env::var("LITELLM_ENVIRONMENT").ok();
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let Value::Object(mut item) = item else {
            warnings.push(format!("model_list[{i}] is not a mapping; skipped"));
            continue;
        };
        let Some(model_name) = item.get("model_name").and_then(|v| {
            v.as_str()
                .map(str::to_string)
                .or_else(|| v.as_number().map(|n| n.to_string()))
        }) else {
            warnings.push(format!("model_list[{i}] has no model_name; skipped"));
            continue;
        };
        let mut litellm_params = match item.remove("litellm_params") {
            Some(Value::Object(m)) => m,
            _ => {
                warnings.push(format!(
                    "model_list[{i}] ({model_name}) has no litellm_params; skipped"
                ));
                continue;
            }
        };
        let model_info = match item.remove("model_info") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let entry_prefix = format!("model_list[{i}].");
        let entry_suffix = format!(" ({model_name})");
        config_keys::check(
            Section::ModelEntry,
            &item,
            &entry_prefix,
            &entry_suffix,
            warnings,
        );
        config_keys::check(
            Section::LitellmParams,
            &litellm_params,
            &format!("{entry_prefix}litellm_params."),
            &entry_suffix,
            warnings,
        );
        config_keys::check(
            Section::ModelInfo,
            &model_info,
            &format!("{entry_prefix}model_info."),
            &entry_suffix,
            warnings,
        );

        if let Some(name) = litellm_params
            .get("litellm_credential_name")
            .and_then(Value::as_str)
            .map(str::to_string)
        {
            match credentials.get(&name) {
                Some(values) => {
                    for (k, v) in values {
                        let missing = litellm_params.get(k).is_none_or(Value::is_null);
                        if missing {
                            litellm_params.insert(k.clone(), v.clone());
                        }
                    }
                }
                None => warnings.push(format!(
                    "model_list[{i}] ({model_name}) names credential {name:?}, which credential_list does not define"
                )),
            }
        }

        if let Some(Value::Array(envs)) = model_info.get("supported_environments") {
            let current = environment.as_deref().unwrap_or("production");
            if !envs.iter().any(|e| e.as_str() == Some(current)) {
                tracing::info!(
                    model_name,
                    environment = current,
                    "deployment skipped: not in its model_info.supported_environments"
                );
                continue;
            }
        }

        if !litellm_params.get("model").is_some_and(Value::is_string) {
            warnings.push(format!(
                "model_list[{i}] ({model_name}) has no litellm_params.model; skipped"
            ));
            continue;
        }

        let prefix = format!("model_list[{i}].");
        let entry_unresolved: Vec<(String, String)> = unresolved
            .iter()
            .filter(|(path, _)| path.starts_with(&prefix))
            .map(|(path, var)| (path[prefix.len()..].to_string(), var.clone()))
            // A credential that fills the field in makes the reference moot.
            .filter(|(field, _)| {
                field
                    .strip_prefix("litellm_params.")
                    .is_none_or(|k| litellm_params.get(k).is_none_or(Value::is_null))
            })
            .collect();
        let entry = ModelEntry {
            model_name,
            litellm_params,
            model_info,
            unresolved: entry_unresolved,
        };
        out.extend(fan_out_organizations(entry, i, warnings));
    }
    out
}

/// LiteLLM's `organization: [org-a, org-b]`: one deployment per organization, each sending its own
/// `OpenAI-Organization`. An explicit `model_info.id` gets the organization appended, so the ids stay
/// distinct; without one, each deployment's id hashes its own `litellm_params`.
fn fan_out_organizations(
    entry: ModelEntry,
    index: usize,
    warnings: &mut Vec<String>,
) -> Vec<ModelEntry> {
    let Some(Value::Array(orgs)) = entry.litellm_params.get("organization") else {
        return vec![entry];
    };
    let orgs: Vec<String> = orgs
        .iter()
        .filter_map(|o| match o {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            _ => None,
        })
        .collect();
    if orgs.is_empty() {
        warnings.push(format!(
            "model_list[{index}].litellm_params.organization ({}) is a list without any organization name; sent without one",
            entry.model_name
        ));
        let mut entry = entry;
        entry.litellm_params.remove("organization");
        return vec![entry];
    }
    orgs.into_iter()
        .map(|org| {
            let mut e = entry.clone();
            if let Some(Value::String(id)) = e.model_info.get("id").cloned() {
                e.model_info
                    .insert("id".into(), Value::String(format!("{id}-{org}")));
            }
            e.litellm_params
                .insert("organization".into(), Value::String(org));
            e
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_error_names_line_and_column() {
        let err = ProxyConfig::parse("model_list:\n  - model_name: a\n   bad: [", "cfg.yaml")
            .expect_err("must fail");
        match err {
            ConfigError::Syntax { path, line, .. } => {
                assert_eq!(path, "cfg.yaml");
                assert!(line >= 2, "line {line}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn resolves_env_refs_and_reports_missing_ones() {
        std::env::set_var("TOLLGATE_TEST_CFG_KEY", "sk-from-env");
        let cfg = ProxyConfig::parse(
            r#"
model_list:
  - model_name: a
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/TOLLGATE_TEST_CFG_KEY
  - model_name: b
    litellm_params:
      model: openai/gpt-4o
      api_key: "os.environ/TOLLGATE_TEST_CFG_MISSING"
"#,
            "x",
        )
        .expect("parses");
        assert_eq!(cfg.model_list[0].litellm_params["api_key"], "sk-from-env");
        assert!(cfg.model_list[0].unresolved.is_empty());
        assert_eq!(
            cfg.model_list[1].unresolved,
            vec![(
                "litellm_params.api_key".to_string(),
                "TOLLGATE_TEST_CFG_MISSING".to_string()
            )]
        );
        assert!(cfg
            .warnings
            .iter()
            .any(|w| w.contains("TOLLGATE_TEST_CFG_MISSING")));
    }

    #[test]
    fn environment_variables_are_exported_before_resolution() {
        let cfg = ProxyConfig::parse(
            r#"
environment_variables:
  TOLLGATE_TEST_EXPORTED: "sk-exported"
model_list:
  - model_name: a
    litellm_params: {model: openai/gpt-4o, api_key: os.environ/TOLLGATE_TEST_EXPORTED}
"#,
            "x",
        )
        .expect("parses");
        assert_eq!(cfg.model_list[0].litellm_params["api_key"], "sk-exported");
    }

    #[test]
    fn credentials_are_merged_and_explicit_params_win() {
        let cfg = ProxyConfig::parse(
            r#"
credential_list:
  - credential_name: azure_cred
    credential_values: {api_key: "k1", api_base: "https://a.example"}
    credential_info: {description: "shared"}
model_list:
  - model_name: a
    litellm_params: {model: azure/dep, litellm_credential_name: azure_cred, api_base: "https://b.example"}
"#,
            "x",
        )
        .expect("parses");
        let p = &cfg.model_list[0].litellm_params;
        assert_eq!(p["api_key"], "k1");
        assert_eq!(p["api_base"], "https://b.example");
    }

    #[test]
    fn unknown_and_unimplemented_keys_warn() {
        let cfg = ProxyConfig::parse(
            "litellm_settings: {drop_params: true, telemetry: true, flux_capacitor: 1}\nweird_top: 1\n",
            "x",
        )
        .expect("parses");
        assert!(cfg.drop_params());
        let all = cfg.warnings.join("\n");
        assert!(
            all.contains("unknown config key litellm_settings.flux_capacitor"),
            "{all}"
        );
        assert!(
            all.contains(
                "litellm_settings.telemetry has no effect in Tollgate: Tollgate sends no telemetry; ignored"
            ),
            "{all}"
        );
        assert!(all.contains("unknown config key weird_top"), "{all}");
    }

    #[test]
    fn router_keys_in_litellm_settings_act_without_a_warning() {
        let cfg = ProxyConfig::parse(
            "litellm_settings:\n  allowed_fails: 7\n  routing_strategy: least-busy\n  max_fallbacks: 1\n  retry_after: 2\n  enable_pre_call_checks: true\n  budget_exceeded_status_code: 402\n  set_verbose: true\n",
            "x",
        )
        .expect("parses");
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        assert_eq!(cfg.cooldown_policy().allowed_fails, 7);
        assert_eq!(cfg.budget_exceeded_status_code(), 402);
        let policy = crate::routing::RouterPolicy::from_config(&cfg);
        assert_eq!(policy.strategy, tollgate_actors::RoutingStrategy::LeastBusy);
        assert_eq!(policy.max_fallbacks, 1);
        assert!(policy.pre_call_checks);
        assert_eq!(policy.min_retry_after, Duration::from_secs(2));
        // router_settings wins.
        let both = ProxyConfig::parse(
            "litellm_settings: {allowed_fails: 7}\nrouter_settings: {allowed_fails: 1}\n",
            "x",
        )
        .expect("parses");
        assert_eq!(both.cooldown_policy().allowed_fails, 1);
        // A router-only key in litellm_settings says where it belongs.
        let misplaced =
            ProxyConfig::parse("litellm_settings: {stream_timeout: 3}\n", "x").expect("parses");
        assert_eq!(
            misplaced.warnings,
            vec!["unknown config key litellm_settings.stream_timeout; ignored (Tollgate reads it in router_settings)".to_string()]
        );
    }

    #[test]
    fn deployment_keys_are_checked_against_the_registry() {
        let cfg = ProxyConfig::parse(
            r#"
model_list:
  - model_name: a
    extra: 1
    litellm_params: {model: openai/x, rpm: 5, tags: [free], flux: 1, aws_region_name: eu-west-1}
    model_info: {id: a1, custom_tokenizer: {}, colour: red, supports_vision: true}
"#,
            "x",
        )
        .expect("parses");
        let mut warnings = cfg.warnings.clone();
        warnings.sort();
        assert_eq!(
            warnings,
            vec![
                "model_list[0].litellm_params.tags (a) has no effect in Tollgate: kept on the deployment and shown by /model/info; tag routing (`enable_tag_filtering`) is not implemented, so every deployment of the group serves every request; ignored".to_string(),
                "unknown config key model_list[0].extra (a); ignored".to_string(),
                "unknown config key model_list[0].litellm_params.flux (a); ignored".to_string(),
                "unknown config key model_list[0].model_info.colour (a); ignored".to_string(),
            ]
        );
    }

    #[test]
    fn an_organization_list_fans_out_into_one_deployment_each() {
        let cfg = ProxyConfig::parse(
            r#"
model_list:
  - model_name: gpt
    litellm_params: {model: openai/gpt-4o, organization: [org-a, org-b]}
  - model_name: named
    litellm_params: {model: openai/gpt-4o, organization: [org-a, org-b]}
    model_info: {id: n}
  - model_name: single
    litellm_params: {model: openai/gpt-4o, organization: org-c}
"#,
            "x",
        )
        .expect("parses");
        let orgs: Vec<(&str, &Value, Option<&Value>)> = cfg
            .model_list
            .iter()
            .map(|e| {
                (
                    e.model_name.as_str(),
                    &e.litellm_params["organization"],
                    e.model_info.get("id"),
                )
            })
            .collect();
        assert_eq!(
            orgs,
            vec![
                ("gpt", &Value::from("org-a"), None),
                ("gpt", &Value::from("org-b"), None),
                (
                    "named",
                    &Value::from("org-a"),
                    Some(&Value::from("n-org-a"))
                ),
                (
                    "named",
                    &Value::from("org-b"),
                    Some(&Value::from("n-org-b"))
                ),
                ("single", &Value::from("org-c"), None),
            ]
        );
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    }

    #[test]
    fn aliases_plain_and_hidden() {
        let cfg = ProxyConfig::parse(
            "router_settings:\n  model_group_alias:\n    a: gpt-4o\n    b: {model: gpt-4o, hidden: true}\n",
            "x",
        )
        .expect("parses");
        let aliases = cfg.model_group_aliases();
        assert_eq!(
            aliases["a"],
            ModelAlias {
                target: "gpt-4o".into(),
                hidden: false
            }
        );
        assert!(aliases["b"].hidden);
    }

    #[test]
    fn empty_document_is_fine() {
        let cfg = ProxyConfig::parse("", "x").expect("parses");
        assert!(cfg.model_list.is_empty());
        assert_eq!(cfg.max_request_size_bytes(), 32 * 1024 * 1024);
    }
}

/// Property tests: the loader never panics on arbitrary or damaged documents, its errors are typed,
/// and every accessor the server calls at start works on whatever it accepted.
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    const VALID: &str = r#"model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/TOLLGATE_PROPTEST_UNSET
      rpm: 10
      timeout: 30
    model_info:
      mode: chat
  - model_name: claude
    litellm_params: {model: anthropic/claude-3-5-sonnet, max_tokens: 100}
litellm_settings:
  drop_params: true
  request_timeout: 600
router_settings:
  routing_strategy: simple-shuffle
  allowed_fails: 3
  cooldown_time: 30
  model_group_alias: {gpt: gpt-4o}
general_settings:
  master_key: sk-1234567890abcdef
  max_request_size_mb: 16
  database_url: sqlite:///tmp/x.db
  global_max_parallel_requests: 100
"#;

    /// Parse, then call everything the server reads at start.
    fn load(text: &str) -> Result<(), TestCaseError> {
        // `environment_variables` would be exported into this test process: not generated.
        if text.contains("environment_variables") {
            return Ok(());
        }
        match ProxyConfig::parse(text, "fuzz.yaml") {
            Ok(cfg) => {
                let _ = cfg.master_key();
                let _ = cfg.permit_weak_master_key();
                prop_assert!(cfg.max_request_size_bytes() > 0);
                let _ = cfg.drop_params();
                let _ = cfg.request_timeout();
                let _ = cfg.model_group_aliases();
                let _ = cfg.cooldown_policy();
                let _ = cfg.router_redis_url();
                let _ = cfg.global_max_parallel_requests();
                let _ = cfg.default_max_parallel_requests();
                prop_assert!((400..600).contains(&cfg.budget_exceeded_status_code()));
                let _ = cfg.key_header_name();
                let _ = cfg.database_url();
                let _ = cfg.json_logs();
                let _ = cfg.background_health_checks();
            }
            Err(ConfigError::Syntax { path, .. } | ConfigError::Shape { path, .. }) => {
                prop_assert_eq!(path, "fuzz.yaml");
            }
            Err(other) => return Err(TestCaseError::fail(format!("unexpected {other:?}"))),
        }
        Ok(())
    }

    /// A damage to a document: delete, insert or duplicate a span.
    #[derive(Debug, Clone)]
    enum Mutation {
        Delete(usize, usize),
        Insert(usize, String),
        Duplicate(usize, usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), 1usize..20).prop_map(|(at, n)| Mutation::Delete(at, n)),
            (any::<usize>(), "[ \\n:\\-\\[\\]{}#&*!|>'\"%@`a-z0-9.]{1,8}")
                .prop_map(|(at, s)| Mutation::Insert(at, s)),
            (any::<usize>(), 1usize..60).prop_map(|(at, n)| Mutation::Duplicate(at, n)),
        ]
    }

    fn apply(text: &str, m: &Mutation) -> String {
        let chars: Vec<char> = text.chars().collect();
        let at = |i: usize| i % (chars.len() + 1);
        let s = |a: usize, b: usize| {
            let a = a.min(chars.len());
            chars[a..b.clamp(a, chars.len())].iter().collect::<String>()
        };
        match m {
            Mutation::Delete(i, n) => s(0, at(*i)) + &s(at(*i) + n, chars.len()),
            Mutation::Insert(i, ins) => s(0, at(*i)) + ins + &s(at(*i), chars.len()),
            Mutation::Duplicate(i, n) => {
                let a = at(*i);
                s(0, a + n) + &s(a, chars.len())
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_text_never_panics(text in "[ \\n\\t:\\-\\[\\]{}#&*!|>'\"%@,?a-z0-9._/]{0,200}") {
            load(&text)?;
        }

        #[test]
        fn damaged_valid_configs_never_panic(mutations in prop::collection::vec(mutation(), 1..4)) {
            let mut text = VALID.to_string();
            for m in &mutations {
                text = apply(&text, m);
            }
            load(&text)?;
        }

        #[test]
        fn valid_config_with_arbitrary_values_never_panics(
            value in prop_oneof![
                Just("null".to_string()), Just("[]".to_string()), Just("{}".to_string()),
                Just("-1".to_string()), Just("1e309".to_string()), Just("nan".to_string()),
                Just("\"\"".to_string()), Just("true".to_string()), "[a-z0-9./]{0,12}",
            ],
            line in 0usize..40,
        ) {
            // Replace the value of one `key: value` line.
            let text: Vec<String> = VALID
                .lines()
                .enumerate()
                .map(|(i, l)| match l.split_once(": ") {
                    Some((k, _)) if i == line % VALID.lines().count() => format!("{k}: {value}"),
                    _ => l.to_string(),
                })
                .collect();
            load(&text.join("\n"))?;
        }
    }
}
