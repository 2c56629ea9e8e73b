//! Who is calling, and what they may do. Every route's authorization is decided here, in one
//! place: handlers ask [`Caller`] and never compare roles themselves.
//!
//! The key is read from, in order: the operator's `litellm_key_header_name` (if set),
//! `x-litellm-api-key`, `Authorization: Bearer`, `api-key` (Azure SDKs) and `x-api-key` (Anthropic
//! SDKs). A `Bearer ` prefix is accepted in any of them. The master key is compared in constant time
//! (on SHA-256 digests, so lengths leak nothing either). Any other `sk-` key is looked up by its
//! SHA-256 in the credential cache ([`tollgate_actors::CacheHandle`]), which answers warm lookups
//! from memory and keeps known keys working while the database is down.
//!
//! Roles (`user_role` of the key's user; a key without a user is an `internal_user`):
//!
//! | role | management API |
//! |---|---|
//! | master key, `proxy_admin` | everything |
//! | `proxy_admin_viewer` | reads everything, changes nothing |
//! | `internal_user` | its own keys (create, read, update, delete, regenerate) and its own user info; the teams it belongs to (read), and as a team `admin` that team's keys and members |
//! | `internal_user_viewer` | reads its own keys and user info |
//! | `team`, `customer` | LLM routes only |
//!
//! A key never gets more than its creator holds: a non-admin's new key can only narrow the creator's
//! models and limits.

use std::sync::Arc;

use actix_web::HttpRequest;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tollgate_actors::{wildcard_matches, CacheHandle, Lookup};

use crate::error::GatewayError;
use crate::keys::{self, Fields};
use crate::secret::{mask, Secret};
use crate::store::{EntityRecord, KeyRecord};

/// `user_role` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    ProxyAdmin,
    ProxyAdminViewer,
    InternalUser,
    InternalUserViewer,
    Team,
    Customer,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::ProxyAdmin,
        Role::ProxyAdminViewer,
        Role::InternalUser,
        Role::InternalUserViewer,
        Role::Team,
        Role::Customer,
    ];

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "proxy_admin" => Role::ProxyAdmin,
            "proxy_admin_viewer" => Role::ProxyAdminViewer,
            "internal_user" => Role::InternalUser,
            "internal_user_viewer" => Role::InternalUserViewer,
            "team" => Role::Team,
            "customer" => Role::Customer,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::ProxyAdmin => "proxy_admin",
            Role::ProxyAdminViewer => "proxy_admin_viewer",
            Role::InternalUser => "internal_user",
            Role::InternalUserViewer => "internal_user_viewer",
            Role::Team => "team",
            Role::Customer => "customer",
        }
    }
}

/// A virtual key with the user and team it belongs to, as cached.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub key: KeyRecord,
    pub user: Option<EntityRecord>,
    pub team: Option<EntityRecord>,
    /// The key's organization (its own, else its team's).
    pub organization: Option<EntityRecord>,
    /// The key's `model_max_budget` entries, with what the key spent on each model in its window
    /// when the key was loaded.
    pub model_budgets: Vec<ModelBudget>,
}

/// One `model_max_budget` entry of a key: `{"<model>": {"budget_limit": x, "time_period": "30d"}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelBudget {
    pub model: String,
    pub limit: f64,
    /// The window, in ms (`time_period`; none means the key's whole life).
    pub period_ms: Option<i64>,
    /// Spend on this model within the window, stored in the database at load time.
    pub spent: f64,
}

impl ModelBudget {
    /// The entries of a key's `model_max_budget` (spend not yet known).
    pub fn parse_all(data: &serde_json::Map<String, Value>) -> Vec<ModelBudget> {
        let Some(Value::Object(m)) = data.get("model_max_budget") else {
            return Vec::new();
        };
        m.iter()
            .filter_map(|(model, v)| {
                let limit = match v {
                    Value::Number(n) => n.as_f64(),
                    Value::Object(o) => o.get("budget_limit").and_then(Value::as_f64),
                    _ => None,
                }?;
                let period_ms = v
                    .get("time_period")
                    .and_then(Value::as_str)
                    .and_then(crate::keys::parse_duration);
                Some(ModelBudget {
                    model: model.clone(),
                    limit,
                    period_ms,
                    spent: 0.0,
                })
            })
            .collect()
    }
}

impl Principal {
    pub fn role(&self) -> Role {
        self.user
            .as_ref()
            .and_then(|u| u.data.get("user_role").and_then(Value::as_str))
            .and_then(Role::parse)
            .unwrap_or(Role::InternalUser)
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    /// Holds the master key: proxy admin.
    Admin,
    /// No master key is configured (loopback only): everything is open, as in LiteLLM.
    Open,
    /// A virtual key.
    Key(Arc<Principal>),
}

/// Whether `member` (`{"user_id", "role"}` objects of `members_with_roles`) lists `user_id`, and
/// with which role.
fn member_role<'a>(team: &'a EntityRecord, user_id: &str) -> Option<&'a str> {
    team.data
        .get("members_with_roles")
        .and_then(Value::as_array)?
        .iter()
        .find(|m| m.get("user_id").and_then(Value::as_str) == Some(user_id))
        .map(|m| m.get("role").and_then(Value::as_str).unwrap_or("user"))
}

impl Caller {
    pub fn role(&self) -> Role {
        match self {
            Caller::Admin | Caller::Open => Role::ProxyAdmin,
            Caller::Key(p) => p.role(),
        }
    }

    /// Full control of the gateway.
    pub fn is_admin(&self) -> bool {
        self.role() == Role::ProxyAdmin
    }

    /// May read every management object.
    pub fn can_read_all(&self) -> bool {
        matches!(self.role(), Role::ProxyAdmin | Role::ProxyAdminViewer)
    }

    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Caller::Key(p) => Some(p),
            _ => None,
        }
    }

    /// The user this caller acts as (`None` for the master key or a key without a user).
    pub fn user_id(&self) -> Option<&str> {
        self.principal().and_then(|p| p.key.user_id.as_deref())
    }

    /// The caller's own key token.
    pub fn token(&self) -> Option<&str> {
        self.principal().map(|p| p.key.token.as_str())
    }

    /// Who to record as `created_by` / `updated_by`.
    pub fn actor_id(&self) -> String {
        match self {
            Caller::Admin | Caller::Open => "default_user_id".into(),
            Caller::Key(p) => p.key.user_id.clone().unwrap_or_else(|| p.key.token.clone()),
        }
    }

    /// Whether the caller may use the management API to change anything at all.
    fn can_write(&self) -> bool {
        matches!(self.role(), Role::ProxyAdmin | Role::InternalUser)
    }

    /// Whether the caller may call the management API at all.
    fn can_manage(&self) -> bool {
        !matches!(self.role(), Role::Team | Role::Customer)
    }

    pub fn is_team_admin(&self, team: &EntityRecord) -> bool {
        self.is_admin()
            || (self.role() == Role::InternalUser
                && self
                    .user_id()
                    .is_some_and(|u| member_role(team, u) == Some("admin")))
    }

    pub fn is_team_member(&self, team: &EntityRecord) -> bool {
        self.user_id()
            .is_some_and(|u| member_role(team, u).is_some())
            || self.principal().and_then(|p| p.key.team_id.as_deref()) == Some(team.id.as_str())
    }

    /// Admin-only operations.
    pub fn require_admin(&self, what: &str) -> Result<(), GatewayError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(forbidden(self, what))
        }
    }

    /// Reads of everything (list all users, all teams…).
    pub fn require_read_all(&self, what: &str) -> Result<(), GatewayError> {
        if self.can_read_all() {
            Ok(())
        } else {
            Err(forbidden(self, what))
        }
    }

    /// Any management call (viewers included).
    pub fn require_management(&self, what: &str) -> Result<(), GatewayError> {
        if self.can_manage() {
            Ok(())
        } else {
            Err(forbidden(self, what))
        }
    }

    /// Management calls that change something.
    pub fn require_write(&self, what: &str) -> Result<(), GatewayError> {
        if self.can_write() {
            Ok(())
        } else {
            Err(forbidden(self, what))
        }
    }

    /// Read a key: admins and viewers, the key itself, its user, or an admin of its team.
    pub fn can_read_key(&self, key: &KeyRecord, key_team: Option<&EntityRecord>) -> bool {
        self.can_read_all()
            || (self.can_manage()
                && (self.token() == Some(key.token.as_str())
                    || (self.user_id().is_some() && self.user_id() == key.user_id.as_deref())
                    || key_team.is_some_and(|t| self.is_team_admin(t))))
    }

    /// Change or delete a key: admins, its user (as `internal_user`), or an admin of its team.
    pub fn can_manage_key(&self, key: &KeyRecord, key_team: Option<&EntityRecord>) -> bool {
        self.is_admin()
            || (self.role() == Role::InternalUser
                && ((self.user_id().is_some() && self.user_id() == key.user_id.as_deref())
                    || key_team.is_some_and(|t| self.is_team_admin(t))))
    }

    /// Read a user: admins and viewers, or the user itself.
    pub fn can_read_user(&self, user_id: &str) -> bool {
        self.can_read_all() || (self.can_manage() && self.user_id() == Some(user_id))
    }

    /// Read a team: admins and viewers, or its members.
    pub fn can_read_team(&self, team: &EntityRecord) -> bool {
        self.can_read_all() || (self.can_manage() && self.is_team_member(team))
    }

    /// The models, rpm/tpm and budget a non-admin caller can hand to a key it creates: the new key
    /// may only narrow what the caller's own key has. Returns the refusal, if any.
    pub fn check_key_grant(
        &self,
        requested: &serde_json::Map<String, Value>,
    ) -> Result<(), GatewayError> {
        let Caller::Key(p) = self else { return Ok(()) };
        if self.is_admin() {
            return Ok(());
        }
        let own_models = p.key.strings("models");
        if !own_models.is_empty() {
            let wanted: Vec<String> = requested
                .get("models")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if wanted.is_empty() {
                return Err(GatewayError::Forbidden {
                    message: format!(
                        "a key created by this key must list its models, a subset of {own_models:?}"
                    ),
                });
            }
            if let Some(extra) = wanted
                .iter()
                .find(|m| !own_models.iter().any(|o| o == *m || wildcard_matches(o, m)))
            {
                return Err(GatewayError::Forbidden {
                    message: format!("cannot grant model '{extra}': the creating key may only use {own_models:?}"),
                });
            }
        }
        for limit in [
            "max_budget",
            "rpm_limit",
            "tpm_limit",
            "max_parallel_requests",
        ] {
            let Some(own) = p.key.number(limit) else {
                continue;
            };
            match requested.get(limit).and_then(Value::as_f64) {
                Some(asked) if asked <= own => {}
                _ => {
                    return Err(GatewayError::Forbidden {
                        message: format!(
                            "{limit} of a new key must be set and at most the creating key's {own}"
                        ),
                    })
                }
            }
        }
        Ok(())
    }
}

/// Which models a caller may use, and the aliases its key and team define.
#[derive(Debug, Clone, Default)]
pub struct ModelAccess {
    /// `None`: every model. Entries are model names, wildcards (`openai/*`) or access-group names.
    allowed: Option<Vec<String>>,
    /// Key `aliases`, then team `model_aliases`: requested name → model group.
    aliases: Vec<(String, String)>,
    /// Who restricts it, for the error message: `key` or `team`.
    restricted_by: &'static str,
}

impl ModelAccess {
    /// The model group a requested name means for this caller.
    pub fn resolve<'a>(&'a self, requested: &'a str) -> &'a str {
        self.aliases
            .iter()
            .find(|(alias, _)| alias == requested)
            .map(|(_, target)| target.as_str())
            .unwrap_or(requested)
    }

    /// Whether `model` may be used. `in_access_group(group, model)` tells whether a deployment of
    /// `model` lists `group` in `model_info.access_groups`.
    pub fn permits(&self, model: &str, in_access_group: impl Fn(&str, &str) -> bool) -> bool {
        let Some(allowed) = &self.allowed else {
            return true;
        };
        allowed.iter().any(|a| {
            a == model
                || a == "*"
                || (a.contains('*') && wildcard_matches(a, model))
                || in_access_group(a, model)
        })
    }

    pub fn denied(&self, model: &str) -> GatewayError {
        let allowed = self.allowed.clone().unwrap_or_default();
        GatewayError::ModelAccessDenied {
            message: format!(
                "{} not allowed to access model. This {} can only access models={allowed:?}. Tried to access {model}",
                self.restricted_by, self.restricted_by
            ),
        }
    }
}

impl Caller {
    /// The models this caller may use: the key's `models`, else its team's, else all. `[]` and
    /// `all-team-models` defer to the team.
    pub fn model_access(&self) -> ModelAccess {
        let Caller::Key(p) = self else {
            return ModelAccess::default();
        };
        let key_models: Vec<String> = p
            .key
            .strings("models")
            .into_iter()
            .filter(|m| m != "all-team-models")
            .collect();
        let team_models = p
            .team
            .as_ref()
            .map(|t| t.strings("models"))
            .unwrap_or_default();
        let (allowed, restricted_by) = if !key_models.is_empty() {
            (Some(key_models), "key")
        } else if !team_models.is_empty() {
            (Some(team_models), "team")
        } else {
            (None, "key")
        };
        let mut aliases = p.key.string_map("aliases");
        if let Some(team) = &p.team {
            aliases.extend(team.string_map("model_aliases"));
        }
        ModelAccess {
            allowed,
            aliases,
            restricted_by,
        }
    }
}

fn forbidden(caller: &Caller, what: &str) -> GatewayError {
    GatewayError::Forbidden {
        message: format!(
            "Authentication Error, role {} is not allowed to {what}",
            caller.role().as_str()
        ),
    }
}

impl Caller {
    /// Change a user: proxy admins any user; an `internal_user` only itself (and then only the
    /// harmless fields the route allows).
    pub fn can_update_user(&self, user_id: &str) -> bool {
        self.is_admin() || (self.role() == Role::InternalUser && self.user_id() == Some(user_id))
    }

    /// Change a team's settings or members: proxy admins, and the team's own admins.
    pub fn can_manage_team(&self, team: &EntityRecord) -> bool {
        self.can_write() && self.is_team_admin(team)
    }
}

/// Published example keys that must never guard a reachable gateway.
const PUBLISHED_KEYS: &[&str] = &[
    "sk-1234",
    "sk-12345",
    "sk-123456",
    "sk-1234567890",
    "sk-litellm",
    "sk-master",
    "sk-master-key",
    "sk-admin",
    "sk-test",
    "sk-password",
    "sk-changeme",
    "changeme",
    "password",
];

/// Minimum master-key length not considered weak.
pub const MIN_MASTER_KEY_LEN: usize = 16;

/// Why a master key is unsafe on a reachable address, if it is.
pub fn master_key_weakness(key: Option<&Secret>) -> Option<String> {
    match key {
        None => {
            Some("no master key is set (general_settings.master_key or LITELLM_MASTER_KEY)".into())
        }
        Some(k) if PUBLISHED_KEYS.contains(&k.expose().trim().to_ascii_lowercase().as_str()) => {
            Some("the master key is a published example value".into())
        }
        Some(k) if k.expose().len() < MIN_MASTER_KEY_LEN => Some(format!(
            "the master key is shorter than {MIN_MASTER_KEY_LEN} characters"
        )),
        Some(_) => None,
    }
}

pub struct Authenticator {
    master_key_digest: Option<[u8; 32]>,
    key_header: Option<String>,
    /// Virtual keys, when a store is configured.
    keys: Option<CacheHandle<Arc<Principal>>>,
}

fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

impl Authenticator {
    pub fn new(master_key: Option<&Secret>, key_header: Option<String>) -> Self {
        Self {
            master_key_digest: master_key.map(|k| digest(k.expose())),
            key_header,
            keys: None,
        }
    }

    /// Accept virtual keys, looked up through `cache`.
    pub fn with_keys(mut self, cache: CacheHandle<Arc<Principal>>) -> Self {
        self.keys = Some(cache);
        self
    }

    pub fn key_cache(&self) -> Option<&CacheHandle<Arc<Principal>>> {
        self.keys.as_ref()
    }

    /// The key the request carries, if any (`Some("")` for a header with an empty value).
    fn presented_key<'a>(&self, req: &'a HttpRequest) -> Option<&'a str> {
        let headers = req.headers();
        let custom = self.key_header.as_deref();
        let names = custom.into_iter().chain([
            "x-litellm-api-key",
            "authorization",
            "api-key",
            "x-api-key",
        ]);
        for name in names {
            if let Some(value) = headers.get(name) {
                let value = value.to_str().unwrap_or("").trim();
                if value.eq_ignore_ascii_case("bearer") {
                    return Some("");
                }
                let value = value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
                    .unwrap_or(value);
                return Some(value.trim());
            }
        }
        None
    }

    /// Who is calling, checked against the route's declared access and the key's
    /// `allowed_routes` ([`crate::http::routes::RouteAccess`]).
    pub async fn authenticate(&self, req: &HttpRequest) -> Result<Caller, GatewayError> {
        let caller = self.identify(req).await?;
        if let Some(route) = req.app_data::<crate::http::routes::RouteAccess>() {
            route.check(&caller, req)?;
        }
        Ok(caller)
    }

    /// Who is calling: the master key, a usable virtual key, or open access.
    async fn identify(&self, req: &HttpRequest) -> Result<Caller, GatewayError> {
        let Some(expected) = &self.master_key_digest else {
            return Ok(Caller::Open);
        };
        let presented = match self.presented_key(req) {
            None => {
                return Err(GatewayError::Authentication {
                    message: "Authentication Error, No api key passed in.".into(),
                })
            }
            Some("") => {
                return Err(GatewayError::Authentication {
                    message: "Authentication Error, Malformed API Key passed in. Ensure Key has `Bearer ` prefix.".into(),
                })
            }
            Some(k) => k,
        };
        if bool::from(digest(presented).ct_eq(expected)) {
            return Ok(Caller::Admin);
        }
        let invalid = || GatewayError::Authentication {
            message: format!(
                "Authentication Error, Invalid proxy server token passed. Received API Key = {}",
                mask(presented)
            ),
        };
        let Some(cache) = self.keys.as_ref().filter(|_| presented.starts_with("sk-")) else {
            return Err(invalid());
        };
        let principal = match cache.get(&keys::hash(presented)).await {
            Lookup::Found(p) => p,
            Lookup::NotFound => return Err(invalid()),
            Lookup::Unavailable(e) => {
                tracing::warn!(error = %e, "key lookup failed: database unavailable");
                return Err(GatewayError::Unavailable {
                    message:
                        "the key store is unreachable and this key is not cached; try again shortly"
                            .into(),
                });
            }
        };
        check_usable(&principal, presented)?;
        Ok(Caller::Key(principal))
    }

    /// Admin-only routes.
    pub async fn require_admin(&self, req: &HttpRequest) -> Result<Caller, GatewayError> {
        let caller = self.authenticate(req).await?;
        caller.require_admin(&format!("call {}", req.path()))?;
        Ok(caller)
    }
}

/// A found key still has to be usable: not blocked, not expired, its user and team not blocked.
fn check_usable(p: &Principal, presented: &str) -> Result<(), GatewayError> {
    if p.key.blocked {
        return Err(GatewayError::Authentication {
            message:
                "Authentication Error, Key is blocked. Update via `/key/unblock` if you're admin."
                    .into(),
        });
    }
    if let Some(expires) = p.key.expires {
        let now = tollgate_actors::now_ms() as i64;
        if expires <= now {
            return Err(GatewayError::Authentication {
                message: format!(
                    "Authentication Error - Expired Key. Key Expiry time {} and current time {} (key {})",
                    crate::time::iso8601(expires),
                    crate::time::iso8601(now),
                    mask(presented)
                ),
            });
        }
    }
    if let Some(team) = p.team.as_ref().filter(|t| t.blocked) {
        return Err(GatewayError::Authentication {
            message: format!("Authentication Error, team {} is blocked", team.id),
        });
    }
    if p.user.as_ref().is_some_and(|u| u.blocked) {
        return Err(GatewayError::Authentication {
            message: "Authentication Error, the user of this key is blocked".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn auth() -> Authenticator {
        Authenticator::new(Some(&Secret::new("sk-strong-master-key-0001")), None)
    }

    #[actix_rt::test]
    async fn accepts_every_header_form() {
        let a = auth();
        for (name, value) in [
            ("authorization", "Bearer sk-strong-master-key-0001"),
            ("x-litellm-api-key", "sk-strong-master-key-0001"),
            ("x-litellm-api-key", "Bearer sk-strong-master-key-0001"),
            ("api-key", "sk-strong-master-key-0001"),
            ("x-api-key", "sk-strong-master-key-0001"),
        ] {
            let req = TestRequest::default()
                .insert_header((name, value))
                .to_http_request();
            assert_eq!(a.authenticate(&req).await.expect(name), Caller::Admin);
        }
    }

    #[actix_rt::test]
    async fn rejects_missing_wrong_and_empty_keys_without_echoing_them() {
        let a = auth();
        let none = TestRequest::default().to_http_request();
        assert!(a
            .authenticate(&none)
            .await
            .expect_err("none")
            .to_string()
            .contains("No api key"));
        let wrong = TestRequest::default()
            .insert_header(("authorization", "Bearer sk-wrong-key-abcdefgh"))
            .to_http_request();
        let msg = a.authenticate(&wrong).await.expect_err("wrong").to_string();
        assert!(
            !msg.contains("sk-wrong-key-abcdefgh") && msg.contains("efgh"),
            "{msg}"
        );
        let empty = TestRequest::default()
            .insert_header(("authorization", "Bearer "))
            .to_http_request();
        assert!(a
            .authenticate(&empty)
            .await
            .expect_err("empty")
            .to_string()
            .contains("Malformed"));
    }

    #[test]
    fn weak_master_keys() {
        assert!(master_key_weakness(None).is_some());
        assert!(master_key_weakness(Some(&Secret::new("sk-1234"))).is_some());
        assert!(master_key_weakness(Some(&Secret::new("sk-short"))).is_some());
        assert!(master_key_weakness(Some(&Secret::new("sk-a-long-enough-random-key"))).is_none());
    }

    #[actix_rt::test]
    async fn no_master_key_means_open() {
        let a = Authenticator::new(None, None);
        assert_eq!(
            a.authenticate(&TestRequest::default().to_http_request())
                .await
                .expect("open"),
            Caller::Open
        );
    }
}
