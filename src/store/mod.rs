//! Persistence: virtual keys, users, teams, organizations, end users, budgets and models added
//! through the API.
//!
//! [`Store`] is the only way the gateway reaches the database. It has two diesel-async
//! implementations generated from one body of query-builder code (`diesel_store.rs`): embedded
//! SQLite (the default, `tollgate.db` in the working directory) and Postgres
//! (`general_settings.database_url` or `DATABASE_URL`). No SQL text is built from values: every query
//! comes from diesel's query builder with bound parameters; the only raw SQL is the migrations and
//! fixed session statements.
//!
//! Rows keep the columns the gateway looks up by (ids, aliases, owners, `blocked`, `expires`,
//! `spend`, timestamps) typed, and every other LiteLLM field in a JSON `data` object, so new
//! fields pass through without a migration.

mod diesel_store;
pub mod migrate;
pub mod pg_tls;
pub mod schema;

use std::sync::Arc;

use serde_json::{Map, Value};

pub use diesel_store::{PgStore, SqliteStore};

/// Where the database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file path.
    Sqlite(String),
    /// A Postgres URL (`postgres://` or `postgresql://`).
    Postgres(String),
}

/// The default embedded database, created in the working directory.
pub const DEFAULT_SQLITE_FILE: &str = "tollgate.db";

impl DatabaseUrl {
    /// Parse `database_url`: `postgres://…`, `postgresql://…`, SQLAlchemy-style `sqlite:///relative.db`
    /// and `sqlite:////absolute.db`, `sqlite://path`, or a bare `*.db` path.
    pub fn parse(raw: &str) -> Result<Self, StoreError> {
        let raw = raw.trim();
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self::Postgres(raw.to_string()));
        }
        if let Some(rest) = raw.strip_prefix("sqlite://") {
            // sqlite:///relative.db → "relative.db"; sqlite:////abs.db → "/abs.db".
            let path = rest.strip_prefix('/').unwrap_or(rest);
            if path.is_empty() {
                return Err(StoreError::Config("sqlite URL without a file path".into()));
            }
            return Ok(Self::Sqlite(path.to_string()));
        }
        if raw.ends_with(".db") || raw.ends_with(".sqlite") || raw.ends_with(".sqlite3") {
            return Ok(Self::Sqlite(raw.to_string()));
        }
        Err(StoreError::Config(format!(
            "database_url must start with postgres://, postgresql:// or sqlite:// (got a URL starting {:?})",
            raw.chars().take(12).collect::<String>()
        )))
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// A description safe to log (no password).
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite {path}"),
            Self::Postgres(url) => match (url.find("://"), url.rfind('@')) {
                (Some(scheme), Some(at)) if at > scheme => {
                    format!("{}://…@{}", &url[..scheme], &url[at + 1..])
                }
                _ => url.clone(),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database configuration: {0}")]
    Config(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Query(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// A [`Store::modify`] change refused the request: `field` is the request field at fault.
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// A [`Store::modify`] change found a record it needs missing.
    #[error("{0}")]
    NotFound(String),
    /// A [`Store::modify`] change found the locked records no longer match what the caller read
    /// before the transaction (e.g. a team gained a member): read again and retry.
    #[error("the records changed during the transaction")]
    Stale,
}

/// One entity a [`Store::modify`] transaction locks, reads and may write back.
#[derive(Debug, Clone)]
pub struct Locked {
    pub kind: EntityKind,
    pub id: String,
    /// The row as read under the lock; `None` when it does not exist.
    pub record: Option<EntityRecord>,
    /// Set by the change to write `record` back (its alias, `blocked`, `updated_*` and data;
    /// never its spend, which spend recording owns). A record the change filled in where none
    /// existed is inserted whole (a unique violation rolls the transaction back).
    pub changed: bool,
}

/// Keys a [`Store::modify`] transaction deletes: those matching every id given (at least one).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyScope {
    pub team_id: Option<String>,
    pub user_id: Option<String>,
}

/// What a [`Store::modify`] change writes besides the locked entities it marks changed.
#[derive(Debug, Clone, Default)]
pub struct TxEffects {
    pub delete_keys: Vec<KeyScope>,
    pub delete_entities: Vec<(EntityKind, String)>,
    /// Spend set outright on locked entities (a proxy admin's `/user/update` with `spend`);
    /// spend recording owns it otherwise.
    pub set_spend: Vec<(EntityKind, String, f64)>,
    /// Keys inserted in the same transaction (a new user's first key).
    pub insert_keys: Vec<KeyRecord>,
}

/// The change a [`Store::modify`] transaction applies to the entities it locked, in the order
/// they were asked for. Runs once, inside the transaction; an error rolls everything back.
pub type Change = Box<dyn FnOnce(&mut [Locked]) -> Result<TxEffects, StoreError> + Send>;

/// What a [`Store::modify`] transaction did: the locked entities as written, and the tokens of
/// the keys it deleted.
#[derive(Debug, Clone, Default)]
pub struct Modified {
    pub entities: Vec<Locked>,
    pub deleted_keys: Vec<String>,
}

/// Lock order of the entity kinds: users, then teams, then organizations… — the order in which
/// [`Store::record_spend`] updates them (entities before keys), so a management transaction and a
/// spend batch touching the same rows never wait on each other in a cycle.
pub(crate) fn lock_rank(kind: EntityKind) -> u8 {
    match kind {
        EntityKind::User => 0,
        EntityKind::Team => 1,
        EntityKind::Organization => 2,
        EntityKind::EndUser => 3,
        EntityKind::Budget => 4,
    }
}

/// A virtual key as stored. `token` is the SHA-256 hex of the key; the key itself is never stored.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    pub token: String,
    /// `sk-...abcd`: the last four characters, for display.
    pub key_name: String,
    pub key_alias: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub organization_id: Option<String>,
    pub budget_id: Option<String>,
    pub blocked: bool,
    /// Expiry, unix ms.
    pub expires: Option<i64>,
    pub spend: f64,
    pub created_at: i64,
    pub updated_at: i64,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    /// Every other field (`models`, `aliases`, `metadata`, limits, budgets…).
    pub data: Map<String, Value>,
}

/// The kinds of entity sharing one row layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityKind {
    User,
    Team,
    Organization,
    EndUser,
    Budget,
}

impl EntityKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Team => "team",
            Self::Organization => "organization",
            Self::EndUser => "end user",
            Self::Budget => "budget",
        }
    }
}

/// A user, team, organization, end user or budget.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityRecord {
    pub id: String,
    /// `user_email`, `team_alias`, `organization_alias`, end-user `alias`; none for budgets.
    pub alias: Option<String>,
    pub spend: f64,
    pub blocked: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    pub data: Map<String, Value>,
}

/// A model added with `/model/new`. `litellm_params` is stored encrypted (see [`crate::crypto`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRecord {
    pub model_id: String,
    pub model_name: String,
    /// Ciphertext of the `litellm_params` JSON object.
    pub litellm_params_sealed: String,
    pub model_info: Map<String, Value>,
    pub created_at: i64,
    pub updated_at: i64,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
}

/// One LLM request's spend-log row (LiteLLM's `LiteLLM_SpendLogs`). `api_key` is the key's token
/// (SHA-256), empty for the master key.
#[derive(
    Debug, Clone, Default, PartialEq, serde::Serialize, diesel::Queryable, diesel::Insertable,
)]
#[diesel(table_name = schema::spend_logs)]
pub struct SpendLog {
    pub request_id: String,
    pub call_type: String,
    pub api_key: String,
    pub spend: f64,
    pub total_tokens: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// Unix ms.
    pub start_time: i64,
    pub end_time: i64,
    pub model: String,
    pub model_id: Option<String>,
    pub model_group: Option<String>,
    pub api_base: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub organization_id: Option<String>,
    pub end_user: Option<String>,
    /// `success` or `failure`.
    pub status: String,
    /// JSON object: error details, key alias…
    pub metadata: String,
    /// The provider's response id, when it gave one (`/spend/logs?request_id=` matches it too).
    pub response_id: Option<String>,
    /// Answered from the response cache (`cache_hit: "True"` in LiteLLM's spend logs).
    pub cache_hit: bool,
    /// The response-cache key the request used, when it consulted the cache.
    pub cache_key: Option<String>,
    /// JSON list of the request's tags (`[]` when none).
    pub request_tags: String,
    /// The client's address (the connection's peer).
    pub requester_ip_address: Option<String>,
    /// The request's messages / prompt / input as JSON, only with
    /// `general_settings.store_prompts_in_spend_logs`.
    pub messages: Option<String>,
    /// The response body as JSON, only with `general_settings.store_prompts_in_spend_logs`.
    pub response: Option<String>,
}

/// Spend of one request tag (`/spend/tags`).
#[derive(Debug, Clone, PartialEq)]
pub struct TagSpend {
    pub tag: String,
    pub requests: i64,
    pub spend: f64,
}

/// Which spend-log rows `/spend/logs` wants.
#[derive(Debug, Clone, Default)]
pub struct SpendFilter {
    pub request_id: Option<String>,
    pub api_key: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub end_user: Option<String>,
    /// Unix ms, inclusive.
    pub start_time: Option<i64>,
    /// Unix ms, exclusive.
    pub end_time: Option<i64>,
    pub limit: i64,
}

/// The column spend reports group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendGroup {
    Team,
    EndUser,
    Key,
    User,
}

/// One group of spend-log rows: a day, a group value (team id, end user, key or user; `None` for
/// rows without one) and a model group.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendRollup {
    /// Unix day number (days since 1970-01-01, UTC).
    pub day: i64,
    pub group: Option<String>,
    pub model: Option<String>,
    pub spend: f64,
    pub total_tokens: i64,
    pub requests: i64,
}

/// A budget that [`Store::reset_due_budgets`] reset: `kind` is `key` or an entity kind's name.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetReset {
    pub kind: &'static str,
    pub id: String,
    /// The new `budget_reset_at`, unix ms.
    pub next_reset: i64,
}

/// When a budget with `duration_ms` that was due at `due` next resets: the first multiple of the
/// duration after `now` (a gateway that was down for several periods does not reset repeatedly).
pub fn next_budget_reset(due: i64, duration_ms: i64, now: i64) -> i64 {
    if duration_ms <= 0 {
        return now;
    }
    let missed = (now - due).max(0) / duration_ms + 1;
    due + missed * duration_ms
}

/// For a row's data: whether its budget is due at `now`, and the data to store after the reset.
pub fn budget_reset_data(data: &Map<String, Value>, now: i64) -> Option<(Map<String, Value>, i64)> {
    let duration = data.get("budget_duration")?.as_str()?;
    let duration_ms = crate::keys::parse_duration(duration)?;
    let due = data
        .get("budget_reset_at")
        .and_then(Value::as_str)
        .and_then(crate::time::parse)?;
    if due > now {
        return None;
    }
    let next = next_budget_reset(due, duration_ms, now);
    let mut new = data.clone();
    new.insert(
        "budget_reset_at".into(),
        Value::String(crate::time::iso8601(next)),
    );
    Some((new, next))
}

/// An admin UI session (see [`crate::ui_session`]): the SHA-256 of its token, who it stands for
/// and when it expires.
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Insertable)]
#[diesel(table_name = schema::ui_sessions)]
pub struct SessionRecord {
    pub token_hash: String,
    /// Signed in as the admin (`UI_USERNAME` with the master key or `UI_PASSWORD`).
    pub admin: bool,
    /// The internal user signed in, when not the admin.
    pub user_id: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    pub expires_at: i64,
}

/// A response of `/v1/responses` (see [`crate::responses_api`]): who created it (its key's hash;
/// `None` for the master key), the conversation it was given and the Responses object, as JSON
/// text.
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Insertable)]
#[diesel(table_name = schema::stored_responses)]
pub struct StoredResponse {
    pub id: String,
    pub owner: Option<String>,
    pub model: String,
    /// The input items (the rebuilt conversation and the request's own input), a JSON array.
    pub input_items: String,
    /// The Responses object returned, JSON.
    pub response: String,
    /// Unix ms.
    pub created_at: i64,
}

/// One setting changed through `POST /config/update` (LiteLLM's `LiteLLM_Config`): it overrides
/// config.yaml's value of `section.name`. `value` is JSON text, or for `environment_variables`
/// the sealed value (`sealed`).
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Insertable)]
#[diesel(table_name = schema::config_settings)]
pub struct ConfigSetting {
    pub section: String,
    pub name: String,
    pub value: String,
    pub sealed: bool,
    /// Unix ms.
    pub updated_at: i64,
    pub updated_by: Option<String>,
}

/// A file or batch created through `/v1/files` or `/v1/batches`: the deployment that holds it,
/// who owns it, and for a batch whether its cost was recorded.
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Insertable)]
#[diesel(table_name = schema::managed_objects)]
pub struct ManagedObject {
    /// The id the client uses (the provider's id).
    pub id: String,
    /// `file` or `batch`.
    pub kind: String,
    /// The id at the provider.
    pub upstream_id: String,
    pub deployment_id: String,
    /// The deployment's model group when the object was created.
    pub model_group: String,
    /// The owning virtual key's hash; `None` for the master key.
    pub owner_token: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub organization_id: Option<String>,
    /// A file's `purpose`, a batch's `endpoint`.
    pub purpose: String,
    pub status: String,
    /// The provider's last answer for the object (JSON text).
    pub object: String,
    /// Unix ms.
    pub created_at: i64,
    /// A batch's cost is in the spend log.
    pub cost_recorded: bool,
}

/// A management change as the audit log keeps it (LiteLLM's `LiteLLM_AuditLog`); values never
/// hold secrets.
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Insertable)]
#[diesel(table_name = schema::audit_logs)]
pub struct AuditRecord {
    pub id: String,
    /// Unix ms.
    pub updated_at: i64,
    pub changed_by: Option<String>,
    /// `created`, `updated` or `deleted`.
    pub action: String,
    pub table_name: String,
    pub object_id: String,
    /// JSON text.
    pub before_value: Option<String>,
    /// JSON text.
    pub updated_values: Option<String>,
}

/// Which keys `/key/list` wants.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub organization_id: Option<String>,
    pub key_alias: Option<String>,
    pub token: Option<String>,
    /// Case-insensitive substring of the alias, the key name (`sk-...abcd`) or the owner's user
    /// id (any of them).
    pub search: Option<String>,
    /// Keys of any of these teams, in addition to the filters above (OR).
    pub or_team_ids: Vec<String>,
}

/// Page of a list: 1-based page number and size.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub page: u64,
    pub size: u64,
}

impl Page {
    pub fn offset(self) -> i64 {
        (self.page.saturating_sub(1) * self.size) as i64
    }
}

/// Every persistent operation the gateway performs.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// A trivial query, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;

    async fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError>;
    async fn get_key(&self, token: &str) -> Result<Option<KeyRecord>, StoreError>;
    async fn get_key_by_alias(&self, alias: &str) -> Result<Option<KeyRecord>, StoreError>;
    /// Replace every column of an existing key; false when it does not exist.
    async fn update_key(&self, key: &KeyRecord) -> Result<bool, StoreError>;
    /// Replace a key's token (regeneration) and its other columns in one step.
    async fn replace_key(&self, old_token: &str, key: &KeyRecord) -> Result<bool, StoreError>;
    async fn delete_keys(&self, tokens: &[String]) -> Result<u64, StoreError>;
    /// Keys matching the filter, newest first, and the total count.
    async fn list_keys(
        &self,
        filter: &KeyFilter,
        page: Page,
    ) -> Result<(Vec<KeyRecord>, u64), StoreError>;

    async fn insert_entity(
        &self,
        kind: EntityKind,
        entity: &EntityRecord,
    ) -> Result<(), StoreError>;
    async fn get_entity(
        &self,
        kind: EntityKind,
        id: &str,
    ) -> Result<Option<EntityRecord>, StoreError>;
    async fn find_entity_by_alias(
        &self,
        kind: EntityKind,
        alias: &str,
    ) -> Result<Option<EntityRecord>, StoreError>;
    async fn update_entity(
        &self,
        kind: EntityKind,
        entity: &EntityRecord,
    ) -> Result<bool, StoreError>;
    async fn delete_entities(&self, kind: EntityKind, ids: &[String]) -> Result<u64, StoreError>;
    async fn list_entities(
        &self,
        kind: EntityKind,
        page: Page,
    ) -> Result<(Vec<EntityRecord>, u64), StoreError>;
    /// Insert `entity` unless a row with its id exists, then return the stored row (the new one
    /// or the one already there): concurrent callers naming one id all get the same row.
    async fn insert_entity_if_absent(
        &self,
        kind: EntityKind,
        entity: &EntityRecord,
    ) -> Result<EntityRecord, StoreError>;

    /// Change several records in ONE database transaction: lock the `targets` rows (Postgres:
    /// `SELECT … FOR UPDATE`, in a fixed kind-then-id order, entities before keys; SQLite: an immediate, exclusive
    /// write transaction), read them, run `change` on them, write back the ones it marks
    /// changed, delete the keys and entities it names, and commit. Concurrent changes of the
    /// same rows run one after the other, so none is lost.
    async fn modify(
        &self,
        targets: Vec<(EntityKind, String)>,
        change: Change,
    ) -> Result<Modified, StoreError>;

    /// Write spend-log rows and add their spend to the key, user, team, organization and end user
    /// they name, in one transaction. A row whose `request_id` is already stored is skipped with
    /// its increments, so writing a batch twice counts it once.
    async fn record_spend(&self, logs: &[SpendLog]) -> Result<u64, StoreError>;
    /// Add the rows' spend to the key, user, team, organization and end user they name, without
    /// writing the rows (`general_settings.disable_spend_logs`). With no row to find, a batch
    /// written twice (a commit whose acknowledgement was lost) counts twice.
    async fn record_spend_without_logs(&self, logs: &[SpendLog]) -> Result<u64, StoreError>;
    async fn list_spend_logs(&self, filter: &SpendFilter) -> Result<Vec<SpendLog>, StoreError>;
    /// Spend and request count per request tag of the rows started in `[start, end)` (unix ms),
    /// by spend descending.
    async fn spend_by_tag(
        &self,
        start: Option<i64>,
        end: Option<i64>,
    ) -> Result<Vec<TagSpend>, StoreError>;
    /// Delete the spend-log rows started before `cutoff` (unix ms), at most `chunk` rows per
    /// statement so no statement holds its locks long. Returns how many rows were deleted.
    async fn delete_spend_logs_before(&self, cutoff: i64, chunk: i64) -> Result<u64, StoreError>;
    /// Sum of every spend-log row.
    async fn total_spend(&self) -> Result<f64, StoreError>;

    /// Spend grouped by day (UTC), by `group` and by model group, for the rows `filter` selects
    /// (its `limit` is ignored).
    async fn spend_rollup(
        &self,
        filter: &SpendFilter,
        group: SpendGroup,
    ) -> Result<Vec<SpendRollup>, StoreError>;

    /// Zero the spend of every key, user, team, organization and end user whose
    /// `budget_reset_at` has passed, and move its `budget_reset_at` one `budget_duration` on (to the
    /// first reset time after `now`). Each row is reset with a compare-and-set on its stored data,
    /// so instances running this at the same time reset a row once. Returns what was reset.
    async fn reset_due_budgets(&self, now: i64) -> Result<Vec<BudgetReset>, StoreError>;

    /// Set (`Some`, an Argon2id PHC string) or remove (`None`) a user's UI password.
    async fn set_user_password(
        &self,
        user_id: &str,
        password_hash: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError>;
    async fn get_user_password(&self, user_id: &str) -> Result<Option<String>, StoreError>;
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError>;
    /// The session with this token hash, if it exists and has not expired at `now`.
    async fn get_session(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<SessionRecord>, StoreError>;
    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError>;
    /// Delete every session of `user_id` (its password changed, it was deleted).
    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError>;
    /// Delete the sessions that expired before `now`.
    async fn delete_expired_sessions(&self, now: i64) -> Result<u64, StoreError>;

    async fn insert_model(&self, model: &ModelRecord) -> Result<(), StoreError>;
    async fn update_model(&self, model: &ModelRecord) -> Result<bool, StoreError>;
    async fn delete_model(&self, model_id: &str) -> Result<bool, StoreError>;
    async fn list_models(&self) -> Result<Vec<ModelRecord>, StoreError>;
    /// Every setting stored by `/config/update`, by section and name.
    async fn list_config_settings(&self) -> Result<Vec<ConfigSetting>, StoreError>;

    /// Store a response of `/v1/responses` (a response stored again under the same id replaces
    /// it).
    async fn insert_response(&self, response: &StoredResponse) -> Result<(), StoreError>;
    async fn get_response(&self, id: &str) -> Result<Option<StoredResponse>, StoreError>;
    /// False when there was none.
    async fn delete_response(&self, id: &str) -> Result<bool, StoreError>;
    /// In one transaction: write `set` (replacing rows of the same section and name), delete the
    /// `(section, name)` rows of `delete`, and record `audit`.
    async fn update_config_settings(
        &self,
        set: &[ConfigSetting],
        delete: &[(String, String)],
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;
    /// Audit-log entries of `table_name`, newest first, at most `limit`.
    async fn list_audit_logs(
        &self,
        table_name: &str,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError>;
    /// Record a file or batch; `false` when one with its id is recorded already (kept as it is).
    async fn insert_managed(&self, object: &ManagedObject) -> Result<bool, StoreError>;
    /// The `kind` object with this id.
    async fn get_managed(&self, kind: &str, id: &str) -> Result<Option<ManagedObject>, StoreError>;
    /// The `kind` objects of `owner` (every one for `None`), newest first.
    async fn list_managed(
        &self,
        kind: &str,
        owner: Option<&str>,
    ) -> Result<Vec<ManagedObject>, StoreError>;
    /// Store the provider's latest answer for an object and its status.
    async fn update_managed(&self, id: &str, status: &str, object: &str) -> Result<(), StoreError>;
    async fn delete_managed(&self, kind: &str, id: &str) -> Result<bool, StoreError>;
    /// Mark a batch's cost recorded, or give the mark back (`recorded: false`). `true` only for
    /// the call that changed the flag: of concurrent claims exactly one wins.
    async fn set_cost_recorded(&self, id: &str, recorded: bool) -> Result<bool, StoreError>;
}

/// The Postgres connection pool's settings (`general_settings.database_connection_pool_limit`,
/// `database_connection_timeout`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolSettings {
    /// Connections at most.
    pub max_size: u32,
    /// How long opening one connection (TCP, TLS, authentication) may take.
    pub connect_timeout: std::time::Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_size: 10,
            connect_timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// Open the store for `url` with the default pool (the pool connects lazily; call
/// [`migrate::run`] first).
pub fn open(url: &DatabaseUrl) -> Result<Arc<dyn Store>, StoreError> {
    open_with(url, PoolSettings::default())
}

/// Open the store for `url` with `pool`'s settings (Postgres; SQLite has its own small pool).
pub fn open_with(url: &DatabaseUrl, pool: PoolSettings) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match url {
        DatabaseUrl::Sqlite(path) => Arc::new(SqliteStore::open(path)?),
        DatabaseUrl::Postgres(url) => Arc::new(PgStore::open(url, pool)?),
    })
}

pub(crate) fn json_object(text: &str) -> Result<Map<String, Value>, StoreError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(StoreError::Corrupt(
            "data column is not a JSON object".into(),
        )),
        Err(e) => Err(StoreError::Corrupt(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_reset_times() {
        let day = 86_400_000;
        assert_eq!(next_budget_reset(1000, day, 1000), 1000 + day);
        assert_eq!(
            next_budget_reset(1000, day, 1000 + 3 * day + 5),
            1000 + 4 * day
        );
        let mut data = Map::new();
        data.insert("budget_duration".into(), Value::from("1d"));
        data.insert(
            "budget_reset_at".into(),
            Value::from(crate::time::iso8601(1_000_000)),
        );
        assert!(budget_reset_data(&data, 999_999).is_none());
        let (new, next) = budget_reset_data(&data, 1_000_000).expect("due");
        assert_eq!(next, 1_000_000 + day);
        assert_eq!(new["budget_reset_at"], crate::time::iso8601(next));
        data.remove("budget_duration");
        assert!(budget_reset_data(&data, 2_000_000).is_none());
    }

    #[test]
    fn database_urls() {
        assert_eq!(
            DatabaseUrl::parse("sqlite:///relative.db").unwrap(),
            DatabaseUrl::Sqlite("relative.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:////abs/x.db").unwrap(),
            DatabaseUrl::Sqlite("/abs/x.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("postgresql://u:p@h:5432/db").unwrap(),
            DatabaseUrl::Postgres("postgresql://u:p@h:5432/db".into())
        );
        assert!(matches!(
            DatabaseUrl::parse("postgres://h/db"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert!(DatabaseUrl::parse("mysql://h/db").is_err());
        assert_eq!(
            DatabaseUrl::parse("postgresql://u:secret@h:5432/db")
                .unwrap()
                .redacted(),
            "postgresql://…@h:5432/db"
        );
    }
}
