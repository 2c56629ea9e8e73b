//! Settings changed at run time: `POST /config/update` (LiteLLM's `update_config`, stored in its
//! `LiteLLM_Config` table).
//!
//! Which keys may change is data of the config-key registry ([`crate::config_keys::Key::live`]):
//! a request naming any other key (one that needs a restart, has no effect, or is unknown) is
//! refused whole, naming each key and why. Accepted values are stored one row per key
//! (`config_settings`) and override config.yaml's value of that key, on this instance at once,
//! on the others at their next periodic reload (the same loop that picks up models stored in the
//! database, [`crate::models_sync::spawn_periodic`]) and after a restart. A `null` value removes
//! the stored value: config.yaml's applies again.
//!
//! What requests read of these settings is one snapshot ([`Live`]), swapped whole: the router
//! policy (strategy, retries, retry policies, fallbacks, pre-call checks), the timeouts, the
//! request size limit and the budget-exceeded status.
//!
//! `environment_variables`: only variables the deployments read through `os.environ/NAME` (in
//! config.yaml's `model_list` or `credential_list`, or in a stored model's `litellm_params`) are
//! accepted; their values are sealed at rest like stored models' credentials
//! ([`crate::crypto::Purpose::ConfigSecrets`]), never shown, and resolve those references before
//! the process environment ([`crate::config::set_env_overlay`]); the deployments are rebuilt with
//! them at once. Every update writes an audit-log entry without the variables' values.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::config::{as_f64, ProxyConfig};
use crate::config_keys::{self, Section};
use crate::crypto::{self, Purpose, Sealer};
use crate::error::GatewayError;
use crate::routing::RouterPolicy;
use crate::secret::Secret;
use crate::state::AppState;
use crate::store::{AuditRecord, ConfigSetting, Store, StoreError};

/// How an environment variable's value is shown: never.
pub const REDACTED: &str = "**********";

/// The body sections `/config/update` takes, and the registry section each one's keys are in.
pub const SECTIONS: [(&str, Section); 4] = [
    ("router_settings", Section::RouterSettings),
    ("litellm_settings", Section::LitellmSettings),
    ("general_settings", Section::GeneralSettings),
    ("environment_variables", Section::Top),
];
const ENV: &str = "environment_variables";

/// What requests read of the settings `/config/update` may change.
#[derive(Debug, Clone)]
pub struct Live {
    /// Strategy, retries and fallbacks (`router_settings`, `litellm_settings`).
    pub policy: RouterPolicy,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    /// `litellm_settings.budget_exceeded_status_code` (default 400).
    pub budget_exceeded_status: u16,
    /// `router_settings` in effect (config.yaml with the stored values).
    pub router_settings: Map<String, Value>,
    /// When deployments cool down (`allowed_fails`, `cooldown_time`, `disable_cooldowns`,
    /// `allowed_fails_policy`): the router's deployment actors hold it.
    pub cooldown: tollgate_actors::CooldownPolicy,
}

impl Live {
    /// `cli_timeout` (`--request_timeout`) wins over the config's timeouts.
    pub fn from_config(config: &ProxyConfig, cli_timeout: Option<Duration>) -> Self {
        Self {
            policy: RouterPolicy::from_config(config),
            request_timeout: cli_timeout.unwrap_or_else(|| config.request_timeout()),
            max_body_bytes: config.max_request_size_bytes(),
            budget_exceeded_status: config.budget_exceeded_status_code(),
            router_settings: config.router_settings.clone(),
            cooldown: {
                let mut cooldown = config.cooldown_policy();
                cooldown.allowed_fails_by_class = RouterPolicy::allowed_fails_policy(config);
                cooldown
            },
        }
    }
}

/// The settings in effect, and what was last read from the database.
pub struct RuntimeSettings {
    base: Arc<ProxyConfig>,
    cli_timeout: Option<Duration>,
    sealer: Option<Sealer>,
    live: ArcSwap<Live>,
    /// Fingerprint of the stored rows last applied; the lock also serializes reloads.
    applied: tokio::sync::Mutex<Option<[u8; 32]>>,
}

impl RuntimeSettings {
    /// `master_key` derives the sealing key unless `LITELLM_SALT_KEY` is set.
    pub fn new(
        base: Arc<ProxyConfig>,
        cli_timeout: Option<Duration>,
        master_key: Option<&Secret>,
    ) -> Self {
        let salt = crypto::salt_key(master_key);
        Self {
            live: ArcSwap::from_pointee(Live::from_config(&base, cli_timeout)),
            base,
            cli_timeout,
            sealer: Sealer::new(salt.as_ref(), Purpose::ConfigSecrets).ok(),
            applied: tokio::sync::Mutex::new(None),
        }
    }

    /// The settings in effect (one atomic load; may be held across awaits).
    pub fn live(&self) -> Arc<Live> {
        self.live.load_full()
    }

    /// Apply the stored rows over config.yaml: a new [`Live`] snapshot and the variables
    /// `os.environ/` references resolve to. Rows that cannot be read are skipped with an error.
    fn apply(&self, rows: &[ConfigSetting]) {
        let mut config = (*self.base).clone();
        let mut env = BTreeMap::new();
        for row in rows {
            if row.section == ENV {
                match self.open(&row.value) {
                    Ok(v) => {
                        env.insert(row.name.clone(), Secret::new(v));
                    }
                    Err(e) => tracing::error!(
                        variable = row.name,
                        error = %e,
                        "stored environment variable skipped: it cannot be opened (was LITELLM_SALT_KEY or the master key changed?)"
                    ),
                }
                continue;
            }
            let map = match row.section.as_str() {
                "router_settings" => &mut config.router_settings,
                "litellm_settings" => &mut config.litellm_settings,
                "general_settings" => &mut config.general_settings,
                other => {
                    tracing::error!(
                        section = other,
                        key = row.name,
                        "stored setting of an unknown section skipped"
                    );
                    continue;
                }
            };
            match serde_json::from_str::<Value>(&row.value) {
                Ok(v) => {
                    map.insert(row.name.clone(), v);
                }
                Err(_) => tracing::error!(
                    section = row.section,
                    key = row.name,
                    "stored setting skipped: its value is not JSON"
                ),
            }
        }
        self.live
            .store(Arc::new(Live::from_config(&config, self.cli_timeout)));
        crate::config::set_env_overlay(env);
    }

    fn open(&self, sealed: &str) -> Result<String, String> {
        let sealer = self
            .sealer
            .as_ref()
            .ok_or("no LITELLM_SALT_KEY or master key to decrypt it with")?;
        let plain = sealer.open(sealed).map_err(|e| e.to_string())?;
        String::from_utf8(plain).map_err(|_| "the decrypted value is not text".to_string())
    }

    /// At start, before the deployments are built: apply what the database holds. A database
    /// that cannot be read leaves config.yaml's settings (the periodic reload tries again).
    pub async fn initial(&self, db: &crate::database::Database) {
        let Ok(store) = db.store() else { return };
        let mut applied = self.applied.lock().await;
        match store.list_config_settings().await {
            Ok(rows) => {
                *applied = Some(fingerprint(&rows));
                if !rows.is_empty() {
                    tracing::info!(
                        settings = rows.len(),
                        "settings stored by /config/update override config.yaml"
                    );
                }
                self.apply(&rows);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot load settings stored by /config/update; using config.yaml's")
            }
        }
    }

    /// Apply the stored settings if they changed since the last read, handing the router its
    /// cooldown policy. Returns whether they changed.
    pub async fn reload(
        &self,
        store: &dyn Store,
        router: &tollgate_actors::RouterHandle<crate::deployment::Deployment>,
    ) -> Result<bool, StoreError> {
        let mut applied = self.applied.lock().await;
        let rows = store.list_config_settings().await?;
        let print = fingerprint(&rows);
        if *applied == Some(print) {
            return Ok(false);
        }
        self.apply(&rows);
        *applied = Some(print);
        let cooldown = self.live().cooldown.clone();
        if router
            .addr
            .send(tollgate_actors::SetCooldownPolicy(cooldown))
            .await
            .is_err()
        {
            tracing::error!("router did not accept the new cooldown policy");
        }
        tracing::info!(
            settings = rows.len(),
            "settings stored by /config/update applied"
        );
        Ok(true)
    }
}

/// What identifies the stored rows' content.
fn fingerprint(rows: &[ConfigSetting]) -> [u8; 32] {
    let mut h = Sha256::new();
    for r in rows {
        for part in [&r.section, &r.name, &r.value, &r.updated_at.to_string()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
    }
    h.finalize().into()
}

/// Why a value cannot be applied to `section.key`; `None` when it can. `null` always can (it
/// removes the stored value).
fn check_value(section: Section, key: &str, value: &Value) -> Option<String> {
    if value.is_null() {
        return None;
    }
    let number = |min: f64| match as_f64(value) {
        Some(n) if n >= min && n.is_finite() => None,
        _ => Some(format!("must be a number of at least {min}")),
    };
    let object = || (!value.is_object()).then(|| "must be a mapping".to_string());
    match (section, key) {
        (Section::Top, _) => match value {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => None,
            _ => Some("must be a string".into()),
        },
        (_, "routing_strategy") => match value.as_str() {
            Some(name) if tollgate_actors::RoutingStrategy::parse(name, None).is_some() => None,
            _ => Some("must be one of simple-shuffle, least-busy, usage-based-routing, usage-based-routing-v2, latency-based-routing, cost-based-routing".into()),
        },
        (_, "routing_strategy_args" | "retry_policy" | "model_group_retry_policy") => object(),
        (_, "fallbacks" | "context_window_fallbacks" | "content_policy_fallbacks") => {
            (!value.is_array() && !value.is_object())
                .then(|| "must be a list of {model_group: [fallback, …]}".into())
        }
        (_, "default_fallbacks") => (!value.is_array()).then(|| "must be a list".into()),
        (_, "enable_pre_call_checks" | "disable_cooldowns") => {
            (!value.is_boolean()).then(|| "must be true or false".into())
        }
        (_, "allowed_fails_policy") => object(),
        (_, "budget_exceeded_status_code") => match value.as_u64() {
            Some(400..=599) => None,
            _ => Some("must be an HTTP error status (400-599)".into()),
        },
        (_, "max_request_size_mb" | "timeout" | "request_timeout" | "stream_timeout") => {
            match as_f64(value) {
                Some(n) if n > 0.0 && n.is_finite() => None,
                _ => Some("must be a number above 0".into()),
            }
        }
        _ => number(0.0),
    }
}

/// The variables `/config/update` may set: those named by `os.environ/` references of the
/// config's deployments and of the models stored in the database.
async fn settable_env_vars(
    state: &AppState,
    store: &dyn Store,
) -> Result<std::collections::BTreeSet<String>, GatewayError> {
    let mut names = state.config.deployment_env_vars();
    for record in store.list_models().await? {
        if let Ok(params) = state.db_models.open_params(&record) {
            names.extend(crate::config::env_refs_in(&params));
        }
    }
    Ok(names)
}

/// `POST /config/update`: check every key, store the accepted values in one transaction with
/// their audit-log entry, apply them, and say what was applied. `actor` is who changes them.
pub async fn update(
    state: &AppState,
    store: Arc<dyn Store>,
    actor: String,
    body: &Map<String, Value>,
) -> Result<Value, GatewayError> {
    let mut refused: Vec<(String, String)> = Vec::new();
    for key in body.keys() {
        if !SECTIONS.iter().any(|(name, _)| name == key) {
            refused.push((
                key.clone(),
                "unknown section (router_settings, litellm_settings, general_settings or environment_variables)".into(),
            ));
        }
    }
    let env_names = match body.get(ENV) {
        Some(Value::Object(m)) if !m.is_empty() => Some(settable_env_vars(state, &*store).await?),
        _ => None,
    };
    let now = crate::time::now_ms();
    let mut set = Vec::new();
    let mut delete = Vec::new();
    let mut applied = Map::new();
    for (section_name, section) in SECTIONS {
        let map = match body.get(section_name) {
            None | Some(Value::Null) => continue,
            Some(Value::Object(m)) => m,
            Some(_) => {
                refused.push((section_name.to_string(), "must be a mapping".into()));
                continue;
            }
        };
        let mut shown = Map::new();
        for (key, value) in map {
            let path = format!("{section_name}.{key}");
            let why = if section == Section::Top {
                let name_ok = env_names.as_ref().is_some_and(|n| n.contains(key));
                (!name_ok).then(|| format!(
                    "no deployment reads it: only variables named by an os.environ/{key} reference in model_list, credential_list or a stored model's litellm_params can be set at run time"
                ))
                .or_else(|| check_value(section, key, value))
            } else {
                config_keys::runtime_refusal(section, key)
                    .or_else(|| check_value(section, key, value))
            };
            if let Some(why) = why {
                refused.push((path, why));
                continue;
            }
            if value.is_null() {
                delete.push((section_name.to_string(), key.clone()));
                shown.insert(key.clone(), Value::Null);
                continue;
            }
            let (stored, sealed) = if section == Section::Top {
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let sealer = state.settings.sealer.as_ref().ok_or_else(|| {
                    GatewayError::internal(
                        "environment variables cannot be stored without a key to encrypt them: set general_settings.master_key or LITELLM_SALT_KEY",
                    )
                })?;
                shown.insert(key.clone(), json!(REDACTED));
                (sealer.seal(text.as_bytes()), true)
            } else {
                shown.insert(key.clone(), value.clone());
                (value.to_string(), false)
            };
            set.push(ConfigSetting {
                section: section_name.to_string(),
                name: key.clone(),
                value: stored,
                sealed,
                updated_at: now,
                updated_by: Some(actor.clone()),
            });
        }
        if !shown.is_empty() {
            applied.insert(section_name.to_string(), Value::Object(shown));
        }
    }
    if !refused.is_empty() {
        let list: Vec<String> = refused
            .iter()
            .map(|(path, why)| format!("{path} ({why})"))
            .collect();
        return Err(GatewayError::bad_param(
            &refused[0].0,
            format!(
                "Config not updated: these keys cannot be changed at run time: {}",
                list.join("; ")
            ),
        ));
    }
    if set.is_empty() && delete.is_empty() {
        return Err(GatewayError::bad_param(
            "router_settings",
            "nothing to update: send router_settings, litellm_settings, general_settings or environment_variables",
        ));
    }

    let before = before_values(&store.list_config_settings().await?, &applied);
    let audit = AuditRecord {
        id: uuid::Uuid::new_v4().to_string(),
        updated_at: now,
        changed_by: Some(actor),
        action: "updated".into(),
        table_name: "config_settings".into(),
        object_id: applied.keys().cloned().collect::<Vec<_>>().join(","),
        before_value: Some(Value::Object(before).to_string()),
        updated_values: Some(Value::Object(applied.clone()).to_string()),
    };
    store.update_config_settings(&set, &delete, &audit).await?;
    tracing::info!(
        sections = audit.object_id,
        keys = set.len() + delete.len(),
        "config updated at run time"
    );
    // Apply here at once; other instances at their next reload.
    if let Err(e) = state.settings.reload(&*store, &state.router).await {
        tracing::warn!(error = %e, "settings stored, but not applied yet; the next periodic reload will");
    }
    state.db_models.after_change(state).await;
    Ok(json!({"message": "Config updated successfully", "applied": applied}))
}

/// The stored values the update replaces, for the audit log (variables' values redacted).
fn before_values(rows: &[ConfigSetting], applied: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (section, keys) in applied {
        let Some(keys) = keys.as_object() else {
            continue;
        };
        let mut shown = Map::new();
        for key in keys.keys() {
            let old = rows
                .iter()
                .find(|r| &r.section == section && &r.name == key)
                .map_or(Value::Null, |r| {
                    if r.sealed {
                        json!(REDACTED)
                    } else {
                        serde_json::from_str(&r.value).unwrap_or(Value::Null)
                    }
                });
            shown.insert(key.clone(), old);
        }
        out.insert(section.clone(), Value::Object(shown));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_by_kind() {
        let rs = Section::RouterSettings;
        assert_eq!(check_value(rs, "num_retries", &json!(3)), None);
        assert!(check_value(rs, "num_retries", &json!(-1)).is_some());
        assert!(check_value(rs, "num_retries", &json!("many")).is_some());
        assert_eq!(
            check_value(rs, "routing_strategy", &json!("least-busy")),
            None
        );
        assert!(check_value(rs, "routing_strategy", &json!("fastest")).is_some());
        assert!(check_value(rs, "fallbacks", &json!("gpt")).is_some());
        assert_eq!(check_value(rs, "fallbacks", &json!([{"a": ["b"]}])), None);
        assert_eq!(check_value(rs, "num_retries", &Value::Null), None);
        let ls = Section::LitellmSettings;
        assert_eq!(
            check_value(ls, "budget_exceeded_status_code", &json!(429)),
            None
        );
        assert!(check_value(ls, "budget_exceeded_status_code", &json!(200)).is_some());
        assert!(check_value(ls, "request_timeout", &json!(0)).is_some());
        assert!(check_value(Section::Top, "X", &json!({"a": 1})).is_some());
    }

    #[test]
    fn stored_values_override_the_config_and_null_is_not_stored() {
        let config = ProxyConfig::parse(
            "router_settings:\n  num_retries: 1\n  routing_strategy: least-busy\n",
            "test",
        )
        .unwrap();
        let settings = RuntimeSettings::new(
            Arc::new(config),
            None,
            Some(&Secret::new("sk-master-key-for-unit-tests-000")),
        );
        assert_eq!(settings.live().policy.num_retries, Some(1));
        let row = |name: &str, value: &str| ConfigSetting {
            section: "router_settings".into(),
            name: name.into(),
            value: value.into(),
            sealed: false,
            updated_at: 1,
            updated_by: None,
        };
        settings.apply(&[row("num_retries", "4"), row("timeout", "7")]);
        let live = settings.live();
        assert_eq!(live.policy.num_retries, Some(4));
        assert_eq!(live.request_timeout, Duration::from_secs(7));
        // Keys not stored keep config.yaml's value.
        assert_eq!(
            live.policy.strategy,
            tollgate_actors::RoutingStrategy::LeastBusy
        );
        settings.apply(&[]);
        assert_eq!(settings.live().policy.num_retries, Some(1));
    }
}
