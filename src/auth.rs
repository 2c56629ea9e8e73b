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
//! The invariant every management route keeps: **no request can produce a key or a user with more
//! power than its caller has** — role, models, limits, lifetime. Only proxy admins create users or
//! set roles and emails; a non-admin's new key is checked in one place,
//! [`Caller::check_key_grant`], and a non-admin changes only the harmless fields of an existing key
//! or user (the lists live with the handlers: `ADMIN_ONLY_ON_UPDATE` and `HOLDER_FIELDS` in
//! `http/keys.rs`, `SELF_FIELDS` in `http/users.rs`). A key a caller may not read answers like a
//! missing one. On the LLM routes a key may use a model only if its key, its user and its team
//! each allow it ([`Caller::model_access`]), and must carry its `enforced_params`
//! ([`Caller::check_enforced_params`]).

use std::sync::Arc;

use actix_web::HttpRequest;
use serde_json::{Map, Value};
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

    /// Whether a key with this caller's powers may be made for a user of role `target`: a key
    /// never carries a role above its creator's. Roles are ordered by what they may do, and two
    /// roles neither of which can do all the other can (`proxy_admin_viewer` reads everything,
    /// `internal_user` writes its own) are not within each other.
    pub fn role_within(target: Role, holder: Role) -> bool {
        use Role::*;
        match holder {
            ProxyAdmin => true,
            ProxyAdminViewer => matches!(
                target,
                ProxyAdminViewer | InternalUserViewer | Team | Customer
            ),
            InternalUser => matches!(target, InternalUser | InternalUserViewer | Team | Customer),
            InternalUserViewer => matches!(target, InternalUserViewer | Team | Customer),
            Team | Customer => matches!(target, Team | Customer),
        }
    }

    /// Whether the caller may hold a key of `user` (a new one, or a regenerated one whose
    /// plaintext it receives): the user's role must be within the caller's. A missing user
    /// counts as an `internal_user`.
    pub fn check_may_hold_key_of(&self, user: Option<&EntityRecord>) -> Result<(), GatewayError> {
        let target = user
            .and_then(|u| u.data.get("user_role").and_then(Value::as_str))
            .and_then(Role::parse)
            .unwrap_or(Role::InternalUser);
        if Self::role_within(target, self.role()) {
            Ok(())
        } else {
            Err(GatewayError::Forbidden {
                message: format!(
                    "a key of a user with role {} has more power than the caller (role {})",
                    target.as_str(),
                    self.role().as_str()
                ),
            })
        }
    }

    /// The one check of every key a caller creates (`/key/generate`, and the key `/user/new`
    /// makes is admin-only anyway). Invariant: **no request produces a key with more power than
    /// its caller has** — role, models, limits, lifetime, enforced parameters. Proxy admins (and
    /// the master key) may grant anything. Everyone else (an `internal_user`, or a key without a
    /// user, which acts as one):
    ///
    /// - **user**: the new key is for the caller's own user (the default), or has no user when
    ///   the caller's key has none. A key for *another* user needs a `team_id` the caller is an
    ///   `admin` of (as a user; a key without a user is never a team admin) and that the target
    ///   user is a member of. The target user's role must be within the caller's
    ///   ([`Caller::role_within`]): no key for a proxy admin or a proxy admin viewer.
    /// - **team**: the caller must belong to the team (checked where the team is loaded).
    /// - **models**: the key's `models` must be allowed by its team and its user (when they
    ///   restrict models), and the new key's effective models (key ∩ user ∩ team) must lie within
    ///   the caller's: every list that restricts the caller (its key's, its user's, its team's)
    ///   must be covered by a list of the new key, entry by entry.
    /// - **limits** (`max_budget`, `rpm_limit`, `tpm_limit`, `max_parallel_requests`): each
    ///   limit of the caller's key, user or team binds the new key: it sets its own value at most
    ///   as high, unless it shares that user or team (whose limit then applies to it too). A
    ///   capped budget also bounds `budget_duration`: the new key's budget may not reset more
    ///   often than the capping one (a cap that never resets allows no `budget_duration`). So do
    ///   per-model entries (`model_rpm_limit`, `model_tpm_limit`, `model_max_budget` with its
    ///   `time_period`): the new key sets each of them for that model, no higher.
    /// - **bound together**: a new key belongs to a user or a team (whose budget and limits then
    ///   bound it together with the caller's keys); a key of neither is a proxy admin's to create.
    /// - **lifetime**: if the caller's key expires, the new key must expire no later.
    /// - **enforced_params**: the new key enforces at least the caller key's; **allowed_routes**:
    ///   a caller key limited to routes gives a subset of them; **allowed_model_region**: a caller
    ///   key held to a region gives keys held to the same region.
    pub fn check_key_grant(
        &self,
        grant: &KeyGrant<'_>,
        in_access_group: impl Fn(&str, &str) -> bool,
    ) -> Result<(), GatewayError> {
        if self.is_admin() {
            return Ok(());
        }
        let refuse = |message: String| Err(GatewayError::Forbidden { message });
        // Who the key is for.
        if let Some(target) = grant.user_id {
            if self.user_id() != Some(target) {
                let ok = grant.team.is_some_and(|t| {
                    self.user_id().is_some()
                        && self.is_team_admin(t)
                        && member_role(t, target).is_some()
                });
                if !ok {
                    return refuse(format!(
                        "only proxy admins, or an admin of a team the user {target} belongs to (with that team_id), can create keys for another user"
                    ));
                }
            }
            self.check_may_hold_key_of(grant.user)?;
        } else if grant.team.is_none() {
            // A key of no user and no team shares no budget with its creator: each one would be a
            // fresh allowance. Only proxy admins create such keys.
            return refuse(
                "only proxy admins can create a key that belongs to no user and no team; name your team_id (or create it from a key that has a user)".into(),
            );
        }
        let Caller::Key(p) = self else { return Ok(()) };

        // Models: the key's own list within its team's and its user's.
        let new_key_models = key_models(grant.data);
        for (who, layer) in [
            ("team", grant.team.map(|t| restricting(t.strings("models")))),
            (
                "user",
                grant.user.map(|u| user_models(u, grant.team.is_some())),
            ),
        ] {
            let Some(Some(layer)) = layer else { continue };
            if let Some(extra) = new_key_models
                .iter()
                .flatten()
                .find(|m| !list_permits(&layer, m, &in_access_group))
            {
                return refuse(format!(
                    "cannot grant model '{extra}': the key's {who} may only use {layer:?}"
                ));
            }
        }
        // … and within the caller's effective models.
        let new_layers: Vec<Vec<String>> = [
            new_key_models,
            grant.team.and_then(|t| restricting(t.strings("models"))),
            grant
                .user
                .and_then(|u| user_models(u, grant.team.is_some())),
        ]
        .into_iter()
        .flatten()
        .collect();
        for (who, layer) in self.model_access().layers {
            let covered = new_layers.iter().any(|n| {
                n.iter().all(|m| {
                    if m == "*" {
                        layer.iter().any(|l| l == "*")
                    } else {
                        list_permits(&layer, m, &in_access_group)
                    }
                })
            });
            if !covered {
                return refuse(format!(
                    "the new key must list its models, within what the creating {who} may use: {layer:?}"
                ));
            }
        }

        // Limits: the caller's key, user and team each bind the new key unless it shares them.
        let shares_user = |id: &str| grant.user_id == Some(id);
        let shares_team = |id: &str| grant.team.is_some_and(|t| t.id == id);
        let layers = [
            ("key", Some(&p.key.data), false),
            (
                "user",
                p.user.as_ref().map(|u| &u.data),
                p.user.as_ref().is_some_and(|u| shares_user(&u.id)),
            ),
            (
                "team",
                p.team.as_ref().map(|t| &t.data),
                p.team.as_ref().is_some_and(|t| shares_team(&t.id)),
            ),
        ];
        for (who, data, shared) in layers {
            let Some(data) = data else { continue };
            if shared {
                continue;
            }
            for limit in LIMITS {
                let Some(own) = data.get(*limit).and_then(Value::as_f64) else {
                    continue;
                };
                match grant.data.get(*limit).and_then(Value::as_f64) {
                    Some(asked) if asked <= own => {}
                    _ => {
                        return refuse(format!(
                        "{limit} of the new key must be set and at most the creating {who}'s {own}"
                    ))
                    }
                }
            }
            if data.get("max_budget").and_then(Value::as_f64).is_some() {
                let period = |d: &Map<String, Value>| {
                    d.get("budget_duration")
                        .and_then(Value::as_str)
                        .and_then(crate::keys::parse_duration)
                };
                let asked = period(grant.data);
                let own = period(data);
                let ok = match (asked, own) {
                    (None, _) => true,
                    (Some(_), None) => false,
                    (Some(a), Some(o)) => a >= o,
                };
                if !ok {
                    return refuse(format!(
                        "budget_duration of the new key may not reset its budget more often than the creating {who}'s ({})",
                        data.get("budget_duration").and_then(Value::as_str).unwrap_or("never")
                    ));
                }
            }
            // Per-model limits and budgets: each of the caller's entries binds the new key's
            // entry for that model (a budget's window may not be shorter either).
            for field in ["model_rpm_limit", "model_tpm_limit"] {
                let Some(Value::Object(own)) = data.get(field) else {
                    continue;
                };
                let asked = grant.data.get(field).and_then(Value::as_object);
                for (model, limit) in own {
                    let Some(limit) = limit.as_f64() else {
                        continue;
                    };
                    let given = asked.and_then(|a| a.get(model)).and_then(Value::as_f64);
                    if given.is_none_or(|g| g > limit) {
                        return refuse(format!(
                            "{field} of the new key must set '{model}' at most the creating {who}'s {limit}"
                        ));
                    }
                }
            }
            let asked = ModelBudget::parse_all(grant.data);
            for own in ModelBudget::parse_all(data) {
                let ok = asked.iter().any(|a| {
                    a.model == own.model
                        && a.limit <= own.limit
                        && match (a.period_ms, own.period_ms) {
                            (None, _) => true,
                            (Some(_), None) => false,
                            (Some(x), Some(o)) => x >= o,
                        }
                });
                if !ok {
                    return refuse(format!(
                        "model_max_budget of the new key must cap '{}' at most as the creating {who}'s ({}, no shorter window)",
                        own.model, own.limit
                    ));
                }
            }
        }

        // Lifetime.
        if let Some(own) = p.key.expires {
            if grant.expires.is_none_or(|e| e > own) {
                return refuse(format!(
                    "the new key must expire (duration) no later than the creating key ({})",
                    crate::time::iso8601(own)
                ));
            }
        }

        // Routes: a key limited to some routes mints keys limited to (some of) those.
        let own_routes = p.key.strings("allowed_routes");
        if !own_routes.is_empty() {
            let asked = strings_of(grant.data, "allowed_routes");
            if asked.is_empty() || asked.iter().any(|r| !own_routes.contains(r)) {
                return refuse(format!(
                    "allowed_routes of the new key must be some of the creating key's {own_routes:?}"
                ));
            }
        }
        // Region: a key held to a region mints keys held to the same region.
        if let Some(own) = p
            .key
            .data
            .get("allowed_model_region")
            .and_then(Value::as_str)
        {
            if grant
                .data
                .get("allowed_model_region")
                .and_then(Value::as_str)
                != Some(own)
            {
                return refuse(format!(
                    "the new key must keep the creating key's allowed_model_region '{own}'"
                ));
            }
        }
        // Enforced parameters.
        let asked = strings_of(grant.data, "enforced_params");
        if let Some(missing) = p
            .key
            .strings("enforced_params")
            .into_iter()
            .find(|e| !asked.contains(e))
        {
            return refuse(format!(
                "the new key must enforce '{missing}' as the creating key does (enforced_params)"
            ));
        }
        Ok(())
    }

    /// The request parameters the caller's key requires on every LLM request
    /// (`enforced_params`: top-level names or dotted paths such as `metadata.generation_name`).
    /// `body` is the request as the client sent it; a missing one is a 400 naming it.
    pub fn check_enforced_params(&self, body: &Map<String, Value>) -> Result<(), GatewayError> {
        let Caller::Key(p) = self else { return Ok(()) };
        let required = p.key.strings("enforced_params");
        if required.is_empty() {
            return Ok(());
        }
        for path in &required {
            let mut parts = path.split('.');
            let mut at = parts
                .next()
                .and_then(|first| body.get(first))
                .filter(|v| !v.is_null());
            for part in parts {
                at = at.and_then(|v| v.get(part)).filter(|v| !v.is_null());
            }
            if at.is_none() {
                return Err(GatewayError::bad_param(
                    path,
                    format!(
                        "Authentication Error, BadRequest please pass param={path} in request body. This is a required param for this key (enforced_params)"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The limits a key, user or team sets that a new key must stay within.
const LIMITS: &[&str] = &[
    "max_budget",
    "rpm_limit",
    "tpm_limit",
    "max_parallel_requests",
];

/// A key about to be created, as [`Caller::check_key_grant`] sees it.
pub struct KeyGrant<'a> {
    /// The key's fields (`models`, limits, `budget_duration`, `enforced_params`…).
    pub data: &'a Map<String, Value>,
    pub user_id: Option<&'a str>,
    /// The key's user, when it exists.
    pub user: Option<&'a EntityRecord>,
    pub team: Option<&'a EntityRecord>,
    /// When the key expires (unix ms).
    pub expires: Option<i64>,
}

use crate::keys::string_list as strings_of;

/// A key's own model list, when it restricts (`[]` and `all-team-models` defer to the team).
fn key_models(data: &Map<String, Value>) -> Option<Vec<String>> {
    let models: Vec<String> = strings_of(data, "models")
        .into_iter()
        .filter(|m| m != "all-team-models")
        .collect();
    (!models.is_empty()).then_some(models)
}

/// A user's or team's model list, when it restricts (`[]` and `all-proxy-models` allow all).
fn restricting(models: Vec<String>) -> Option<Vec<String>> {
    if models.is_empty() || models.iter().any(|m| m == "all-proxy-models" || m == "*") {
        None
    } else {
        Some(models)
    }
}

/// A user's model list as it binds its keys: `no-default-models` means only team models (a
/// key outside a team may use none, a team key what its team allows).
fn user_models(user: &EntityRecord, team_key: bool) -> Option<Vec<String>> {
    let models = user.strings("models");
    if models.iter().any(|m| m == "no-default-models") {
        return (!team_key).then(Vec::new);
    }
    restricting(models)
}

/// Whether one model list allows `model`: by name, `*`, a wildcard (`openai/*`) or an access
/// group (`in_access_group(group, model)`).
fn list_permits(
    list: &[String],
    model: &str,
    in_access_group: impl Fn(&str, &str) -> bool,
) -> bool {
    list.iter().any(|a| {
        a == model
            || a == "*"
            || (a.contains('*') && wildcard_matches(a, model))
            || in_access_group(a, model)
    })
}

/// Which models a caller may use, and the aliases its key and team define.
#[derive(Debug, Clone, Default)]
pub struct ModelAccess {
    /// Every list that restricts the caller, with who sets it (`key`, `user`, `team`): a model
    /// is allowed only if each list allows it. None: every model. Entries are model names,
    /// wildcards (`openai/*`) or access-group names.
    layers: Vec<(&'static str, Vec<String>)>,
    /// Key `aliases`, then team `model_aliases`: requested name → model group.
    aliases: Vec<(String, String)>,
}

impl ModelAccess {
    /// What a team's keys may use as far as the team says (its `models`, its `model_aliases`).
    pub fn of_team(team: &EntityRecord) -> ModelAccess {
        ModelAccess {
            layers: restricting(team.strings("models"))
                .map(|l| vec![("team", l)])
                .unwrap_or_default(),
            aliases: team.string_map("model_aliases"),
        }
    }

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
        self.layers
            .iter()
            .all(|(_, list)| list_permits(list, model, &in_access_group))
    }

    pub fn denied(&self, model: &str) -> GatewayError {
        // Name the first list that does not name the model (access groups aside).
        let (who, allowed) = self
            .layers
            .iter()
            .find(|(_, l)| !list_permits(l, model, |_, _| false))
            .or(self.layers.first())
            .map(|(w, l)| (*w, l.clone()))
            .unwrap_or(("key", Vec::new()));
        GatewayError::ModelAccessDenied {
            message: format!(
                "{who} not allowed to access model. This {who} can only access models={allowed:?}. Tried to access {model}"
            ),
        }
    }
}

impl Caller {
    /// The models this caller may use: what its key, its user and its team each allow (their
    /// intersection). A key's `[]` or `all-team-models` defers to the others; a user's or team's
    /// `[]` or `all-proxy-models` allows everything.
    pub fn model_access(&self) -> ModelAccess {
        let Caller::Key(p) = self else {
            return ModelAccess::default();
        };
        let layers = [
            ("key", key_models(&p.key.data)),
            (
                "user",
                p.user
                    .as_ref()
                    .and_then(|u| user_models(u, p.team.is_some())),
            ),
            (
                "team",
                p.team
                    .as_ref()
                    .and_then(|t| restricting(t.strings("models"))),
            ),
        ]
        .into_iter()
        .filter_map(|(who, l)| l.map(|l| (who, l)))
        .collect();
        let mut aliases = p.key.string_map("aliases");
        if let Some(team) = &p.team {
            aliases.extend(team.string_map("model_aliases"));
        }
        ModelAccess { layers, aliases }
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
    /// Admin UI sessions (the `tollgate_session` cookie), when the server set them up.
    sessions: Option<Arc<crate::ui_session::Sessions>>,
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
            sessions: None,
        }
    }

    /// Accept admin UI session cookies ([`crate::ui_session`]) on every route but the LLM routes.
    pub fn with_sessions(mut self, sessions: Arc<crate::ui_session::Sessions>) -> Self {
        self.sessions = Some(sessions);
        self
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
        let route = req.app_data::<crate::http::routes::RouteAccess>();
        let caller = match self.session_caller(req, route).await? {
            Some(caller) => caller,
            None => self.identify(req).await?,
        };
        if let Some(route) = route {
            route.check(&caller, req)?;
        }
        Ok(caller)
    }

    /// The caller of an admin UI session cookie, when the request carries one and no key (a key
    /// always wins). Sessions exist only with a master key, and are not accepted on the LLM
    /// routes, which take keys.
    async fn session_caller(
        &self,
        req: &HttpRequest,
        route: Option<&crate::http::routes::RouteAccess>,
    ) -> Result<Option<Caller>, GatewayError> {
        let Some(sessions) = self.sessions.as_ref() else {
            return Ok(None);
        };
        if self.master_key_digest.is_none()
            || self.presented_key(req).is_some()
            || route.is_some_and(|r| r.group == crate::http::routes::Group::LlmApi)
        {
            return Ok(None);
        }
        match crate::ui_session::cookie_token(req) {
            Some(token) => sessions.authenticate(req, &token).await.map(Some),
            None => Ok(None),
        }
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

    fn entity(id: &str, data: Value) -> EntityRecord {
        EntityRecord {
            id: id.into(),
            alias: None,
            spend: 0.0,
            blocked: false,
            created_at: 0,
            updated_at: 0,
            created_by: None,
            updated_by: None,
            data: data.as_object().cloned().unwrap_or_default(),
        }
    }

    fn key_caller(data: Value, user: Option<EntityRecord>, team: Option<EntityRecord>) -> Caller {
        Caller::Key(Arc::new(Principal {
            key: KeyRecord {
                token: "t".into(),
                key_name: "sk-...".into(),
                key_alias: None,
                user_id: user.as_ref().map(|u| u.id.clone()),
                team_id: team.as_ref().map(|t| t.id.clone()),
                organization_id: None,
                budget_id: None,
                blocked: false,
                expires: None,
                spend: 0.0,
                created_at: 0,
                updated_at: 0,
                created_by: None,
                updated_by: None,
                data: data.as_object().cloned().unwrap_or_default(),
            },
            user,
            team,
            organization: None,
            model_budgets: Vec::new(),
        }))
    }

    fn no_groups(_: &str, _: &str) -> bool {
        false
    }

    #[test]
    fn model_access_is_the_intersection_of_key_user_and_team() {
        let user = entity("u", serde_json::json!({"models": ["a", "b", "c"]}));
        let team = entity("t", serde_json::json!({"models": ["b", "c", "d"]}));
        let caller = key_caller(
            serde_json::json!({"models": ["c", "b", "x"]}),
            Some(user.clone()),
            Some(team.clone()),
        );
        let access = caller.model_access();
        let allowed: Vec<&str> = ["a", "b", "c", "d", "x"]
            .into_iter()
            .filter(|m| access.permits(m, no_groups))
            .collect();
        assert_eq!(allowed, ["b", "c"]);
        // `[]` on the key defers to the user and the team.
        let empty = key_caller(serde_json::json!({"models": []}), Some(user), Some(team));
        assert!(!empty.model_access().permits("a", no_groups));
        assert!(empty.model_access().permits("c", no_groups));
        // `no-default-models`: only team models, none outside a team.
        let only_team = entity("u2", serde_json::json!({"models": ["no-default-models"]}));
        let solo = key_caller(serde_json::json!({}), Some(only_team.clone()), None);
        assert!(!solo.model_access().permits("a", no_groups));
        let in_team = key_caller(
            serde_json::json!({}),
            Some(only_team),
            Some(entity("t", serde_json::json!({"models": ["a"]}))),
        );
        assert!(in_team.model_access().permits("a", no_groups));
        assert!(!in_team.model_access().permits("b", no_groups));
    }

    #[test]
    fn roles_are_ordered_by_power() {
        use Role::*;
        assert!(Role::ALL
            .iter()
            .all(|r| Caller::role_within(*r, ProxyAdmin)));
        assert!(!Caller::role_within(ProxyAdmin, InternalUser));
        assert!(!Caller::role_within(ProxyAdminViewer, InternalUser));
        assert!(!Caller::role_within(InternalUser, ProxyAdminViewer));
        assert!(Caller::role_within(InternalUserViewer, InternalUser));
        assert!(!Caller::role_within(InternalUser, InternalUserViewer));
        assert!(Caller::role_within(Customer, Team));
    }

    /// Whether `caller` may create a key with `data` for no user, in `team`.
    fn grants(caller: &Caller, team: Option<&EntityRecord>, data: Value) -> bool {
        let data = data.as_object().cloned().unwrap();
        caller
            .check_key_grant(
                &KeyGrant {
                    data: &data,
                    user_id: None,
                    user: None,
                    team,
                    expires: None,
                },
                no_groups,
            )
            .is_ok()
    }

    #[test]
    fn a_grant_never_exceeds_the_callers_key() {
        let team = entity("t", serde_json::json!({}));
        let caller = key_caller(
            serde_json::json!({"models": ["a", "b"], "max_budget": 10.0, "budget_duration": "30d",
                               "enforced_params": ["user"], "allowed_routes": ["/chat/completions"]}),
            None,
            None,
        );
        let grant = |data: Value| grants(&caller, Some(&team), data);
        let ok = serde_json::json!({"models": ["a"], "max_budget": 5.0, "enforced_params": ["user"],
                               "allowed_routes": ["/chat/completions"]});
        assert!(grant(ok.clone()));
        assert!(
            !grants(&caller, None, ok.clone()),
            "a key of no user and no team is a proxy admin's to create"
        );
        for (field, value) in [
            ("models", serde_json::json!(["a", "c"])),
            ("models", serde_json::json!(["*"])),
            ("models", serde_json::json!([])),
            ("max_budget", serde_json::json!(11.0)),
            ("max_budget", Value::Null),
            ("budget_duration", serde_json::json!("1s")),
            ("enforced_params", serde_json::json!([])),
            (
                "allowed_routes",
                serde_json::json!(["/chat/completions", "/key/generate"]),
            ),
            ("allowed_routes", Value::Null),
        ] {
            let mut data = ok.clone();
            data[field] = value.clone();
            assert!(!grant(data), "{field}: {value}");
        }
        // Per-model limits of the caller bind the new key's.
        let caller = key_caller(
            serde_json::json!({"model_rpm_limit": {"a": 5}, "model_max_budget": {"a": {"budget_limit": 2.0, "time_period": "1d"}}}),
            None,
            None,
        );
        let grant = |data: Value| grants(&caller, Some(&team), data);
        let ok = serde_json::json!({"model_rpm_limit": {"a": 5}, "model_max_budget": {"a": {"budget_limit": 1.0, "time_period": "7d"}}});
        assert!(grant(ok.clone()));
        for (field, value) in [
            ("model_rpm_limit", serde_json::json!({"a": 6})),
            ("model_rpm_limit", serde_json::json!({})),
            (
                "model_max_budget",
                serde_json::json!({"a": {"budget_limit": 3.0, "time_period": "7d"}}),
            ),
            (
                "model_max_budget",
                serde_json::json!({"a": {"budget_limit": 1.0, "time_period": "1h"}}),
            ),
            ("model_max_budget", Value::Null),
        ] {
            let mut data = ok.clone();
            data[field] = value.clone();
            assert!(!grant(data), "{field}: {value}");
        }
        // A key without a user cannot name one.
        let data = ok.as_object().cloned().unwrap();
        let boss = entity("boss", serde_json::json!({"user_role": "proxy_admin"}));
        let for_boss = KeyGrant {
            data: &data,
            user_id: Some("boss"),
            user: Some(&boss),
            team: None,
            expires: None,
        };
        assert!(caller.check_key_grant(&for_boss, no_groups).is_err());
        assert!(Caller::Admin.check_key_grant(&for_boss, no_groups).is_ok());
    }

    #[test]
    fn enforced_params_follow_dotted_paths() {
        let caller = key_caller(
            serde_json::json!({"enforced_params": ["user", "metadata.generation_name"]}),
            None,
            None,
        );
        let body = |raw: &[u8]| crate::llm::LlmRequest::decode(raw).expect("an object");
        let ok = br#"{"user": "u", "metadata": {"generation_name": "g"}}"#;
        assert!(caller.check_enforced_params(&body(ok)).is_ok());
        for bad in [
            &br#"{"user": "u"}"#[..],
            br#"{"metadata": {"generation_name": "g"}}"#,
            br#"{"user": "u", "metadata": {"generation_name": null}}"#,
            br#"{"user": "u", "metadata": "generation_name"}"#,
        ] {
            assert!(caller.check_enforced_params(&body(bad)).is_err());
        }
        assert!(Caller::Admin.check_enforced_params(&body(b"{}")).is_ok());
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
