//! What every worker shares: settings, the authenticator, and the router's handle.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use tollgate_actors::{HealthReport, RouterHandle};

use crate::auth::Authenticator;
use crate::config::{ModelAlias, ProxyConfig};
use crate::deployment::Deployment;

/// The last background health-check round (`background_health_checks: true`).
pub struct HealthRound {
    pub reports: Vec<HealthReport>,
    pub finished_at: std::time::SystemTime,
}

pub struct AppState {
    pub config: Arc<ProxyConfig>,
    pub router: RouterHandle<Deployment>,
    pub auth: Authenticator,
    /// Admin UI sign-in and sessions (see `src/ui_session.rs`); `auth` resolves their cookies.
    pub sessions: Arc<crate::ui_session::Sessions>,
    /// Keys, users, teams… (embedded SQLite unless `database_url` names Postgres).
    pub db: Arc<crate::database::Database>,
    pub aliases: HashMap<String, ModelAlias>,
    /// Key, user, team, end-user and gateway rate limits: the counters requests call, and the
    /// limiter actor (supervised by the router) that evicts idle scopes and runs the limits' Redis
    /// breaker.
    pub limiter: tollgate_actors::LimiterHandle,
    /// `general_settings.max_parallel_requests` / `global_max_parallel_requests`.
    pub global_max_parallel: Option<u64>,
    /// End users (`user` in the body) with their budget's limits, cached like keys.
    pub end_users: tollgate_actors::CacheHandle<Arc<crate::limits::EndUserLimits>>,
    /// Spend recorded and not yet written, for budget checks.
    pub ledger: Arc<crate::spend::Ledger>,
    /// The spend tracker (spend-log rows, batched).
    pub spend: crate::spend::Tracker,
    /// The settings `POST /config/update` may change at run time (strategy, retries, fallbacks,
    /// timeouts, request size, budget-exceeded status): read with `settings.live()`.
    pub settings: Arc<crate::runtime_settings::RuntimeSettings>,
    pub started_at: Instant,
    /// Log request and upstream details (`--debug` / `--detailed_debug`).
    pub debug: bool,
    pub detailed_debug: bool,
    pub background_health: Option<Duration>,
    pub last_health_round: ArcSwapOption<HealthRound>,
    /// Models stored in the database (`/model/new`) and the config deployments they merge with.
    pub db_models: Arc<crate::models_sync::DbModels>,
    /// The response cache (`litellm_settings.cache`), when configured.
    pub cache: Option<Arc<crate::caching::Cache>>,
    /// Who hears of every finished request (see `src/observability/`).
    pub observers: Arc<crate::observability::Observers>,
    /// The logging callbacks (their queues and counters, for `/metrics`).
    pub callbacks: Vec<crate::observability::callbacks::Callback>,
    /// What the logging callbacks get of prompts and completions (decided at start: with no
    /// callback that sends them, requests copy nothing for them).
    pub message_logging: crate::observability::callbacks::MessageLogging,
    /// LiteLLM's Prometheus metrics (`/metrics`); also one of `observers`.
    pub metrics: Option<Arc<crate::observability::metrics::Metrics>>,
    /// OpenTelemetry traces, when on.
    pub traces: Option<Arc<crate::observability::traces::Tracer>>,
    /// Alerting (`general_settings.alerting`), when configured.
    pub alerting: Option<Arc<crate::observability::alerting::Alerting>>,
    /// The live tail `GET /logs/stream` reads (see `src/observability/tail.rs`).
    pub log_tail: crate::observability::tail::LogTail,
    /// `general_settings.pass_through_endpoints`, checked at start (see `src/passthrough/`).
    pub pass_through: Arc<crate::passthrough::endpoints::Endpoints>,
}

impl AppState {
    /// Whether a deployment of model group `model` lists `group` in `model_info.access_groups`.
    pub fn in_access_group(&self, group: &str, model: &str) -> bool {
        self.router.snapshot().deployments().iter().any(|d| {
            d.upstream.model_name == model
                && d.upstream
                    .model_info
                    .get("access_groups")
                    .and_then(serde_json::Value::as_array)
                    .is_some_and(|g| g.iter().any(|v| v.as_str() == Some(group)))
        })
    }
}

impl AppState {
    /// Team-scoped models: whether `caller` may use model group `model`. A group with deployments
    /// carrying `model_info.team_id` belongs to those teams: only keys of one of them (and proxy
    /// admins) may call it, fall back to it or see it listed. Other groups are open.
    pub fn team_scope_permits(&self, caller: &crate::auth::Caller, model: &str) -> bool {
        let snapshot = self.router.snapshot();
        let mut teams = snapshot
            .deployments()
            .iter()
            .filter(|d| d.upstream.model_name == model)
            .filter_map(|d| {
                d.upstream
                    .model_info
                    .get("team_id")
                    .and_then(serde_json::Value::as_str)
            })
            .peekable();
        if teams.peek().is_none() || caller.is_admin() {
            return true;
        }
        let Some(own) = caller.principal().and_then(|p| p.key.team_id.as_deref()) else {
            return false;
        };
        teams.any(|t| t == own)
    }

    /// A team's own model called by its public name: the model group (LiteLLM's internal
    /// `model_name_{team_id}_{uuid}`) of a deployment of the caller's team whose
    /// `model_info.team_public_model_name` is `requested`. Such a name means the team's model for
    /// that team's keys only, ahead of any model group of the same name.
    pub fn team_model_group(
        &self,
        caller: &crate::auth::Caller,
        requested: &str,
    ) -> Option<String> {
        let team = caller.principal().and_then(|p| p.key.team_id.as_deref())?;
        self.router
            .snapshot()
            .deployments()
            .iter()
            .find(|d| {
                team_public_name(&d.upstream) == Some(requested)
                    && string_info(&d.upstream, "team_id") == Some(team)
            })
            .map(|d| d.upstream.model_name.clone())
    }

    /// The public names of the caller's team's own models (`team_public_model_name`), each with
    /// the model group that serves it.
    pub fn team_public_models(&self, caller: &crate::auth::Caller) -> Vec<(String, String)> {
        let Some(team) = caller.principal().and_then(|p| p.key.team_id.as_deref()) else {
            return Vec::new();
        };
        self.router
            .snapshot()
            .deployments()
            .iter()
            .filter(|d| string_info(&d.upstream, "team_id") == Some(team))
            .filter_map(|d| {
                team_public_name(&d.upstream)
                    .map(|p| (p.to_string(), d.upstream.model_name.clone()))
            })
            .collect()
    }

    /// Model groups served only under a team's public name (their internal names are listed to
    /// no one).
    pub fn team_internal_groups(&self) -> std::collections::HashSet<String> {
        self.router
            .snapshot()
            .deployments()
            .iter()
            .filter(|d| team_public_name(&d.upstream).is_some())
            .map(|d| d.upstream.model_name.clone())
            .collect()
    }
}

fn string_info<'a>(d: &'a Deployment, field: &str) -> Option<&'a str> {
    d.model_info
        .get(field)
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The public name of a team's own model (`model_info.team_public_model_name`, with a `team_id`).
pub fn team_public_name(d: &Deployment) -> Option<&str> {
    string_info(d, "team_id")?;
    string_info(d, "team_public_model_name")
}

/// The name model access is checked against for a deployment: a team model's public name (what
/// the team's `models` list names), else its model group.
pub fn access_name(d: &Deployment) -> &str {
    team_public_name(d).unwrap_or(&d.model_name)
}

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
