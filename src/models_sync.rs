//! Models stored in the database (`/model/new`, LiteLLM's `LiteLLM_ProxyModelTable`): loading
//! them, merging them with the config's deployments, and reloading the router when they change.
//!
//! The router's deployment list is always *config deployments + database models*. It is rebuilt
//! after every change made through the API (so a model added here is callable at once) and
//! every [`DEFAULT_RELOAD_EVERY`] in the background (so instances sharing the database see each
//! other's changes). A reload that finds the stored rows unchanged sends nothing; a database
//! that cannot be read leaves the current deployments in place.
//!
//! `litellm_params` are stored sealed (see [`crate::crypto`]); a row that cannot be opened (the
//! salt key changed, or the row was tampered with) is skipped with an error naming its id.
//! `os.environ/NAME` values are resolved when the deployment is built, as in the config.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tollgate_actors::ReplaceDeployments;

use crate::config::ModelEntry;
use crate::crypto::{self, Purpose, Sealer};
use crate::deployment::{CliDefaults, Deployment};
use crate::error::GatewayError;
use crate::secret::Secret;
use crate::state::AppState;
use crate::store::{ModelRecord, Store, StoreError};

/// Checked `litellm_params` fields: the upstream model, where it is served (an `http`/`https`
/// URL with a host: no `file:` or other schemes) and the deployment's own limits.
const PARAM_FIELDS: &[(&str, crate::http::manage::Kind)] = &[
    ("model", crate::http::manage::Kind::Str),
    ("api_base", crate::http::manage::Kind::Url),
    ("base_url", crate::http::manage::Kind::Url),
    ("rpm", crate::http::manage::Kind::Integer),
    ("tpm", crate::http::manage::Kind::Integer),
    ("max_parallel_requests", crate::http::manage::Kind::Integer),
];

/// `litellm_params.model` must name the upstream model; the fields above must have their kinds.
pub fn check_params(params: &Map<String, Value>) -> Result<(), GatewayError> {
    crate::http::manage::check_fields(params, PARAM_FIELDS, "litellm_params.")?;
    match params.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => Ok(()),
        _ => Err(GatewayError::bad_param(
            "litellm_params",
            "'litellm_params.model' is required (for example \"openai/gpt-4o\")",
        )),
    }
}

/// Whether any string in `v` references the gateway's environment (`os.environ/NAME`).
fn references_env(v: &Value) -> bool {
    match v {
        Value::String(s) => s.trim_start().starts_with("os.environ/"),
        Value::Array(a) => a.iter().any(references_env),
        Value::Object(o) => o.values().any(references_env),
        _ => false,
    }
}

/// A model added or changed by a caller who is not a proxy admin (a team's admin) must carry its
/// own credentials: no `os.environ/` reference, no wildcard, and the provider's credential given
/// inline (`api_key`; Azure `api_key` or `azure_ad_token`; Bedrock `aws_access_key_id` and
/// `aws_secret_access_key` or `api_key`; Vertex AI `vertex_credentials` as JSON, never a file).
/// Otherwise the deployment would fall back on the gateway's own credentials (its environment,
/// a credentials file) and send them to an `api_base` the caller chose.
pub fn check_caller_credentials(
    params: &Map<String, Value>,
    cli: &CliDefaults,
) -> Result<(), GatewayError> {
    let refuse = |why: &str| {
        Err(GatewayError::Forbidden {
            message: format!(
                "only proxy admins may add a model that {why}; give the deployment's own credentials in litellm_params"
            ),
        })
    };
    if references_env(&Value::Object(params.clone())) {
        return refuse("references the gateway's environment (os.environ/)");
    }
    let model = params.get("model").and_then(Value::as_str).unwrap_or("");
    if model.contains('*') {
        return refuse("is a wildcard");
    }
    let given = |k: &str| {
        params
            .get(k)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.trim().is_empty())
    };
    let entry = ModelEntry {
        model_name: "check".into(),
        litellm_params: params.clone(),
        model_info: Map::new(),
        unresolved: Vec::new(),
    };
    let deployment = Deployment::from_entry(&entry, cli);
    // A deployment that cannot be called now might become callable with the gateway's
    // environment later: refused too.
    let target = deployment.target_for(model).map_err(|e| {
        GatewayError::bad_param(
            "litellm_params",
            format!("the deployment cannot be called: {e}"),
        )
    })?;
    let own = match target.spec.wire {
        crate::providers::Wire::Bedrock => {
            (given("aws_access_key_id") && given("aws_secret_access_key")) || given("api_key")
        }
        crate::providers::Wire::SageMaker => {
            given("aws_access_key_id") && given("aws_secret_access_key")
        }
        crate::providers::Wire::VertexAi => {
            match params
                .get("vertex_credentials")
                .or_else(|| params.get("vertex_ai_credentials"))
            {
                Some(Value::Object(_)) => true,
                Some(Value::String(s)) => s.trim_start().starts_with('{'),
                _ => false,
            }
        }
        crate::providers::Wire::Azure => given("api_key") || given("azure_ad_token"),
        _ => given("api_key") || target.spec.api_key_env.is_empty(),
    };
    if own {
        Ok(())
    } else {
        refuse("would use the gateway's own provider credentials")
    }
}

/// How often the database is checked for models changed by other instances.
pub const DEFAULT_RELOAD_EVERY: Duration = Duration::from_secs(10);
/// Overrides [`DEFAULT_RELOAD_EVERY`] (seconds, may be fractional; `0` disables the reload).
pub const RELOAD_ENV: &str = "TOLLGATE_DB_MODELS_RELOAD_SECONDS";

/// What the gateway knows about database models: the config deployments they are merged with,
/// the sealer for their credentials, and what was last loaded.
pub struct DbModels {
    config_deployments: std::sync::RwLock<Vec<Arc<Deployment>>>,
    /// The config the config deployments are resolved again from when `POST /config/update`
    /// changes a variable they name.
    config: Option<Arc<crate::config::ProxyConfig>>,
    cli: CliDefaults,
    sealer: Option<Sealer>,
    /// Fingerprint of the rows the router was last given, and the generation of the
    /// `environment_variables` they were resolved with; the lock also serializes reloads.
    applied: tokio::sync::Mutex<Option<([u8; 32], u64)>>,
    pub reload_every: Option<Duration>,
}

impl DbModels {
    /// `master_key` derives the sealing key unless `LITELLM_SALT_KEY` is set.
    pub fn new(
        config_deployments: Vec<Arc<Deployment>>,
        cli: CliDefaults,
        master_key: Option<&Secret>,
    ) -> Self {
        let salt = crypto::salt_key(master_key);
        Self {
            config_deployments: std::sync::RwLock::new(config_deployments),
            config: None,
            cli,
            sealer: Sealer::new(salt.as_ref(), Purpose::ModelCredentials).ok(),
            applied: tokio::sync::Mutex::new(None),
            reload_every: reload_every_from_env(),
        }
    }

    /// Resolve the config deployments again from `config` when `environment_variables` change.
    pub fn with_config(mut self, config: Arc<crate::config::ProxyConfig>) -> Self {
        self.config = Some(config);
        self
    }

    fn config_deployments(&self) -> Vec<Arc<Deployment>> {
        self.config_deployments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// When `environment_variables` were set at run time, rebuild the config deployments with them.
    fn resolve_config_again(&self, env_generation: u64) {
        let Some(config) = self.config.as_ref().filter(|_| env_generation > 0) else {
            return;
        };
        let deployments: Vec<Arc<Deployment>> = config
            .model_list_resolved_again()
            .iter()
            .map(|e| Arc::new(Deployment::from_entry(e, &self.cli)))
            .collect();
        *self
            .config_deployments
            .write()
            .unwrap_or_else(|e| e.into_inner()) = deployments;
    }

    /// The sealer for `litellm_params`, or why models cannot be stored.
    pub fn sealer(&self) -> Result<&Sealer, GatewayError> {
        self.sealer.as_ref().ok_or_else(|| {
            GatewayError::internal(
                "models cannot be stored in the database without a key to encrypt their credentials: set general_settings.master_key or LITELLM_SALT_KEY",
            )
        })
    }

    /// [`check_caller_credentials`] with the gateway's defaults.
    pub fn check_caller_credentials(
        &self,
        params: &Map<String, Value>,
    ) -> Result<(), GatewayError> {
        check_caller_credentials(params, &self.cli)
    }

    /// Whether a config deployment has this id.
    pub fn is_config_id(&self, id: &str) -> bool {
        self.config_deployments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|d| d.id == id)
    }

    /// Open a row's `litellm_params`. The error never contains the plaintext.
    pub fn open_params(&self, record: &ModelRecord) -> Result<Map<String, Value>, String> {
        let sealer = self
            .sealer
            .as_ref()
            .ok_or("no LITELLM_SALT_KEY or master key to decrypt it with")?;
        let plain = sealer
            .open(&record.litellm_params_sealed)
            .map_err(|e| e.to_string())?;
        match serde_json::from_slice(&plain) {
            Ok(Value::Object(params)) => Ok(params),
            _ => Err("decrypted litellm_params are not a JSON object".into()),
        }
    }

    /// Seal `litellm_params` for storage.
    pub fn seal_params(&self, params: &Map<String, Value>) -> Result<String, GatewayError> {
        let plain = serde_json::to_vec(params)
            .map_err(|e| GatewayError::internal(format!("cannot encode litellm_params: {e}")))?;
        Ok(self.sealer()?.seal(&plain))
    }

    /// The deployment list at start: config deployments, plus the database's models when the
    /// database is ready.
    pub async fn initial(&self, db: &crate::database::Database) -> Vec<Arc<Deployment>> {
        let env_generation = crate::config::env_generation();
        self.resolve_config_again(env_generation);
        let mut out = self.config_deployments();
        let store = match db.store() {
            Ok(s) => s.clone(),
            Err(_) => return out,
        };
        let mut applied = self.applied.lock().await;
        match store.list_models().await {
            Ok(records) => {
                *applied = Some((fingerprint(&records), env_generation));
                out.extend(self.build(&records));
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot load models stored in the database; serving the config's models")
            }
        }
        out
    }

    /// Rebuild the router's deployments if the stored models changed since the last load.
    /// Returns whether the router was given a new list. On a database error the router keeps
    /// its current deployments.
    pub async fn reload(&self, state: &AppState) -> Result<bool, StoreError> {
        let store: Arc<dyn Store> = state.db.store()?.clone();
        let mut applied = self.applied.lock().await;
        let records = store.list_models().await?;
        let print = fingerprint(&records);
        let env_generation = crate::config::env_generation();
        if *applied == Some((print, env_generation)) {
            return Ok(false);
        }
        if applied.is_none_or(|(_, g)| g != env_generation) {
            self.resolve_config_again(env_generation);
        }
        let mut upstreams = self.config_deployments();
        upstreams.extend(self.build(&records));
        let count = upstreams.len();
        if state
            .router
            .addr
            .send(ReplaceDeployments { upstreams })
            .await
            .is_err()
        {
            tracing::error!("router did not accept the new deployment list");
            return Ok(false);
        }
        *applied = Some((print, env_generation));
        tracing::info!(
            deployments = count,
            db_models = records.len(),
            "deployments reloaded with the models stored in the database"
        );
        Ok(true)
    }

    /// After a change through the API: reload now, logging (not failing) if it cannot.
    pub async fn after_change(&self, state: &AppState) {
        if let Err(e) = self.reload(state).await {
            tracing::warn!(error = %e, "model stored, but the deployments could not be reloaded yet; the next periodic reload will");
        }
    }

    /// Deployments for the stored rows; rows that cannot be opened are skipped.
    fn build(&self, records: &[ModelRecord]) -> Vec<Arc<Deployment>> {
        records
            .iter()
            .filter_map(|r| self.entry(r))
            .filter(|e| {
                let id = e.model_info.get("id").and_then(Value::as_str).unwrap_or("");
                if self.is_config_id(id) {
                    tracing::error!(
                        model_id = id,
                        "model stored in the database skipped: a config deployment has the same id"
                    );
                    return false;
                }
                true
            })
            .map(|e| {
                let d = Deployment::from_entry(&e, &self.cli);
                if let Some(p) = &d.problem {
                    tracing::warn!(
                        model_name = d.model_name,
                        model_id = d.id,
                        "database model cannot be called: {p}"
                    );
                }
                Arc::new(d)
            })
            .collect()
    }

    /// A stored row as a `model_list` entry (`model_info.id` = the row's id, `db_model: true`).
    fn entry(&self, record: &ModelRecord) -> Option<ModelEntry> {
        let params = match self.open_params(record) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(
                    model_id = record.model_id,
                    model_name = record.model_name,
                    error = %e,
                    "model stored in the database skipped: its litellm_params cannot be opened (was LITELLM_SALT_KEY or the master key changed?)"
                );
                return None;
            }
        };
        let mut unresolved = Vec::new();
        let mut value = Value::Object(params);
        crate::config::resolve_env_refs(&mut value, "litellm_params", &mut unresolved);
        let Value::Object(litellm_params) = value else {
            return None;
        };
        for (path, var) in &unresolved {
            tracing::warn!(
                model_id = record.model_id,
                "environment variable {var} referenced at {path} (os.environ/{var}) is not set"
            );
        }
        let mut model_info = record.model_info.clone();
        model_info.insert("id".into(), Value::String(record.model_id.clone()));
        model_info.insert("db_model".into(), Value::Bool(true));
        // Who added it, as LiteLLM shows it (`/v2/model/info?user_models_only=true` reads it).
        if let Some(by) = &record.created_by {
            model_info
                .entry("created_by")
                .or_insert_with(|| Value::String(by.clone()));
        }
        Some(ModelEntry {
            model_name: record.model_name.clone(),
            litellm_params,
            model_info,
            unresolved,
        })
    }
}

/// Reload the settings stored by `/config/update` and the database models every `every` (runs
/// on the current actix system).
pub fn spawn_periodic(state: actix_web::web::Data<AppState>, every: Duration) {
    actix_web::rt::spawn(async move {
        let mut reported = false;
        loop {
            actix_web::rt::time::sleep(every).await;
            // Settings first: their environment variables resolve the deployments' references.
            if let Ok(store) = state.db.store() {
                if let Err(e) = state.settings.reload(&**store, &state.router).await {
                    tracing::debug!(error = %e, "cannot reload settings stored by /config/update");
                }
            }
            match state.db_models.reload(&state).await {
                Ok(_) => reported = false,
                Err(e) => {
                    // Keep the current deployments; say so once per outage.
                    if !reported {
                        tracing::warn!(error = %e, "cannot reload models stored in the database; keeping the current deployments");
                        reported = true;
                    }
                }
            }
        }
    });
}

fn reload_every_from_env() -> Option<Duration> {
    match std::env::var(RELOAD_ENV) {
        Err(_) => Some(DEFAULT_RELOAD_EVERY),
        Ok(raw) => match raw.trim().parse::<f64>() {
            Ok(0.0) => None,
            Ok(s) if s > 0.0 && s.is_finite() => Some(Duration::from_secs_f64(s.max(0.1))),
            _ => {
                tracing::warn!(
                    "{RELOAD_ENV}={raw:?} is not a number of seconds; using {} s",
                    DEFAULT_RELOAD_EVERY.as_secs()
                );
                Some(DEFAULT_RELOAD_EVERY)
            }
        },
    }
}

/// What identifies the stored rows' content (any insert, update or delete changes it).
fn fingerprint(records: &[ModelRecord]) -> [u8; 32] {
    let mut h = Sha256::new();
    for r in records {
        for part in [
            r.model_id.as_str(),
            r.model_name.as_str(),
            r.litellm_params_sealed.as_str(),
            &Value::Object(r.model_info.clone()).to_string(),
            &r.updated_at.to_string(),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(sealed: String) -> ModelRecord {
        ModelRecord {
            model_id: "m1".into(),
            model_name: "db-gpt".into(),
            litellm_params_sealed: sealed,
            model_info: Map::new(),
            created_at: 1,
            updated_at: 1,
            created_by: None,
            updated_by: None,
        }
    }

    #[test]
    fn entries_resolve_env_and_mark_db_models() {
        std::env::set_var("TOLLGATE_TEST_DBM_KEY", "sk-from-env-0000");
        let key = Secret::new("sk-master-key-for-unit-tests-000");
        let models = DbModels::new(Vec::new(), CliDefaults::default(), Some(&key));
        let params = json!({"model": "openai/x", "api_key": "os.environ/TOLLGATE_TEST_DBM_KEY",
                            "api_base": "os.environ/TOLLGATE_TEST_DBM_UNSET"});
        let sealed = models
            .seal_params(params.as_object().unwrap())
            .expect("sealer");
        assert!(!sealed.contains("TOLLGATE_TEST_DBM_KEY"));
        let entry = models.entry(&record(sealed)).expect("entry");
        assert_eq!(entry.litellm_params["api_key"], "sk-from-env-0000");
        assert_eq!(entry.litellm_params["api_base"], Value::Null);
        assert_eq!(
            entry.unresolved,
            vec![(
                "litellm_params.api_base".to_string(),
                "TOLLGATE_TEST_DBM_UNSET".to_string()
            )]
        );
        assert_eq!(entry.model_info["id"], "m1");
        assert_eq!(entry.model_info["db_model"], true);
        let d = Deployment::from_entry(&entry, &CliDefaults::default());
        assert_eq!(d.id, "m1");
        assert_eq!(d.info()["model_info"]["db_model"], true);
    }

    #[test]
    fn models_of_non_admins_carry_their_own_credentials() {
        let check =
            |v: Value| check_caller_credentials(v.as_object().unwrap(), &CliDefaults::default());
        let base = "https://upstream.example/v1";
        assert!(check(json!({"model": "openai/x", "api_base": base, "api_key": "sk-own"})).is_ok());
        // The provider's key from the gateway's environment, an environment reference, a wildcard.
        for refused in [
            json!({"model": "openai/x", "api_base": base}),
            json!({"model": "openai/x", "api_base": base, "api_key": "os.environ/OPENAI_API_KEY"}),
            json!({"model": "openai/x", "api_base": "os.environ/SECRET_BASE", "api_key": "sk-own"}),
            json!({"model": "openai/*", "api_base": base, "api_key": "sk-own"}),
            json!({"model": "bedrock/anthropic.claude-3-haiku-20240307-v1:0", "api_base": base}),
            json!({"model": "bedrock/anthropic.claude-3-haiku-20240307-v1:0", "api_base": base, "aws_access_key_id": "AKID"}),
            json!({"model": "vertex_ai/gemini-1.5-pro", "api_base": base, "vertex_project": "p", "vertex_credentials": "/etc/gateway/service-account.json"}),
            json!({"model": "vertex_ai/gemini-1.5-pro", "api_base": base, "vertex_project": "p"}),
            json!({"model": "azure/dep", "api_base": base, "api_version": "2024-02-01"}),
        ] {
            let err = check(refused.clone()).expect_err(&refused.to_string());
            assert!(matches!(err, GatewayError::Forbidden { .. }), "{refused}");
        }
        for allowed in [
            json!({"model": "bedrock/anthropic.claude-3-haiku-20240307-v1:0", "api_base": base, "aws_access_key_id": "AKID", "aws_secret_access_key": "s"}),
            json!({"model": "vertex_ai/gemini-1.5-pro", "api_base": base, "vertex_project": "p", "vertex_credentials": {"type": "service_account"}}),
            json!({"model": "azure/dep", "api_base": base, "api_version": "2024-02-01", "azure_ad_token": "t"}),
        ] {
            assert!(check(allowed.clone()).is_ok(), "{allowed}");
        }
    }

    #[test]
    fn rows_sealed_under_another_key_are_skipped() {
        let a = DbModels::new(
            Vec::new(),
            CliDefaults::default(),
            Some(&Secret::new("sk-first-master-key-0000000000")),
        );
        let b = DbModels::new(
            Vec::new(),
            CliDefaults::default(),
            Some(&Secret::new("sk-other-master-key-0000000000")),
        );
        let sealed = a
            .seal_params(json!({"model": "openai/x"}).as_object().unwrap())
            .unwrap();
        assert!(b.entry(&record(sealed.clone())).is_none());
        assert_eq!(a.build(&[record(sealed)]).len(), 1);
    }
}
