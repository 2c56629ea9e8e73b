//! Virtual keys: generate, update, delete, regenerate, block and unblock, and finding the key a
//! request names. Shapes follow LiteLLM; who may do what is decided by [`crate::auth::Caller`]:
//!
//! - create (`/key/generate`): proxy admins, any key for anyone; an `internal_user` (or a key
//!   without a user) a key for itself, or as a team admin for a member of that team, never with
//!   more power than it holds (role, models, limits, lifetime, enforced params:
//!   [`crate::auth::Caller::check_key_grant`]);
//! - read (`/key/info`, `/key/list`): proxy admins and viewers every key; others their own keys,
//!   the key they call with, and as team admin their team's keys. A key a caller may not read
//!   answers exactly like a key that does not exist;
//! - change (`/key/update`, `/key/regenerate`) and delete: proxy admins; an `internal_user` its
//!   own keys and as team admin its team's keys, and then only the [`HOLDER_FIELDS`]: every field
//!   that limits a key ([`ADMIN_ONLY_ON_UPDATE`]) is a proxy admin's to change;
//! - block, unblock: proxy admins.

use serde_json::{json, Map, Value};

use super::entities::KEY_FIELDS;
use super::Ctx;
use crate::auth::KeyGrant;
use crate::error::GatewayError;
use crate::http::manage::{apply_fields, key_json, opt_bool, opt_str, str_list};
use crate::http::routes;
use crate::keys;
use crate::state::AppState;
use crate::store::{EntityKind, EntityRecord, KeyRecord, StoreError};
use crate::time::now_ms;

/// Fields that limit what a key may do, or whom it belongs to: only a proxy admin changes them
/// on an existing key (`/key/update`, `/key/regenerate`). Every field of [`KEY_FIELDS`] is here
/// or in [`HOLDER_FIELDS`] (a unit test checks it).
const ADMIN_ONLY_ON_UPDATE: &[&str] = &[
    // whom the key belongs to, what it spent, whether it works
    "user_id",
    "team_id",
    "organization_id",
    "budget_id",
    "spend",
    "blocked",
    // lifetime
    "duration",
    "expires",
    // budgets and limits
    "max_budget",
    "budget_duration",
    "budget_reset_at",
    "max_parallel_requests",
    "tpm_limit",
    "rpm_limit",
    "model_max_budget",
    "model_rpm_limit",
    "model_tpm_limit",
    // what it may call, and how
    "models",
    "allowed_model_region",
    "allowed_routes",
    "allowed_cache_controls",
    "enforced_params",
    "guardrails",
    "permissions",
    "object_permission",
    "config",
    "key_type",
];

/// What a key's holder (its user, or an admin of its team) may change on it: names and labels
/// that grant nothing. `soft_budget` only sets when an alert fires; `aliases` only rename models
/// (the resolved model is still checked against the key's models).
const HOLDER_FIELDS: &[&str] = &["key_alias", "metadata", "tags", "aliases", "soft_budget"];

/// What a key is restricted to must be something the gateway enforces: its routes and its
/// region (`allowed_model_region`: `eu` or `us`).
fn check_restrictions(data: &Map<String, Value>) -> Result<(), GatewayError> {
    check_allowed_routes(data)?;
    match data.get("allowed_model_region") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(r)) if crate::region::ALLOWED.contains(&r.as_str()) => Ok(()),
        Some(other) => Err(GatewayError::bad_param(
            "allowed_model_region",
            format!(
                "invalid allowed_model_region {other}: use one of {:?}",
                crate::region::ALLOWED
            ),
        )),
    }
}

/// A key's `allowed_routes` may only name what the route gate understands: a route the gateway
/// serves, a prefix pattern covering one, or a route group (anything else would silently lock the
/// key out, or look like a permission that is not there).
fn check_allowed_routes(data: &Map<String, Value>) -> Result<(), GatewayError> {
    let entries = keys::string_list(data, "allowed_routes");
    match routes::unknown_allowed_route(&entries, routes::table()) {
        None => Ok(()),
        Some(bad) => Err(GatewayError::bad_param(
            "allowed_routes",
            format!(
                "'{bad}' is not a route of this gateway, a prefix pattern ending in '*' that covers one, or a route group ({})",
                routes::Group::NAMES.join(", ")
            ),
        )),
    }
}

/// A `key_type` in the body: one of LiteLLM's types; `llm_api`, `management` and `read_only` set
/// the key's `allowed_routes` to the route group they name (as LiteLLM does, replacing any list
/// the body gave), `default` leaves them as they are.
fn apply_key_type(
    body: &Map<String, Value>,
    data: &mut Map<String, Value>,
) -> Result<(), GatewayError> {
    let Some(key_type) = body.get("key_type").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let key_type = key_type
        .as_str()
        .filter(|t| routes::KEY_TYPES.contains(t))
        .ok_or_else(|| {
            GatewayError::bad_param(
                "key_type",
                format!("'key_type' must be one of {}", routes::KEY_TYPES.join(", ")),
            )
        })?;
    if let Some(groups) = routes::key_type_routes(key_type) {
        data.insert("allowed_routes".into(), json!(groups));
    }
    Ok(())
}

/// A team that must exist, and that a non-admin must belong to. To a non-admin, a team it does
/// not belong to answers like a team that does not exist.
async fn team_for_key(c: &Ctx, team_id: &str) -> Result<EntityRecord, GatewayError> {
    let team = c.store.get_entity(EntityKind::Team, team_id).await?;
    if !c.caller.is_admin() && !team.as_ref().is_some_and(|t| c.caller.is_team_member(t)) {
        return Err(GatewayError::Forbidden {
            message: format!("not a member of team {team_id}"),
        });
    }
    team.ok_or_else(|| GatewayError::bad_param("team_id", format!("team {team_id} does not exist")))
}

/// `duration` → `expires` (unix ms, counted from `now`); `Some(None)` clears.
pub(super) fn expires_from(
    body: &Map<String, Value>,
    now: i64,
) -> Result<Option<Option<i64>>, GatewayError> {
    match body.get("duration") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(d)) => keys::parse_duration(d)
            .map(|ms| Some(Some(now + ms)))
            .ok_or_else(|| {
                GatewayError::bad_param(
                    "duration",
                    format!("invalid duration '{d}': {}", keys::DURATION_HINT),
                )
            }),
        Some(_) => Err(GatewayError::bad_param(
            "duration",
            "'duration' must be a string such as \"30d\"",
        )),
    }
}

/// A custom key value from the body (`key` on generate, `new_key` on regenerate), else a new one.
fn key_value(body: &Map<String, Value>, field: &str) -> Result<String, GatewayError> {
    match opt_str(body, field)? {
        None => Ok(keys::generate()),
        Some(k) if k.starts_with("sk-") && k.len() >= 16 => Ok(k),
        Some(_) => Err(GatewayError::bad_param(
            field,
            format!("'{field}' must start with 'sk-' and be at least 16 characters"),
        )),
    }
}

/// The `spend` a body sets (a non-negative number; `None` when absent or null).
pub(super) fn spend_of(body: &Map<String, Value>) -> Result<Option<f64>, GatewayError> {
    match body.get("spend") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().filter(|s| *s >= 0.0).map(Some).ok_or_else(|| {
            GatewayError::bad_param("spend", "'spend' must be a non-negative number")
        }),
    }
}

/// The answer for a new or regenerated key: the record plus the plaintext key, shown once.
pub(super) fn issued(record: &KeyRecord, key: &str) -> Map<String, Value> {
    let mut out = key_json(record);
    out.insert("key".into(), Value::String(key.to_string()));
    out.insert("token_id".into(), Value::String(record.token.clone()));
    out
}

fn conflict_as_alias(e: StoreError) -> GatewayError {
    match e {
        StoreError::Conflict(_) => GatewayError::bad_request(
            "a key with this key_alias (or this key value) already exists",
        ),
        other => other.into(),
    }
}

/// Forget the cached auth of the keys with these tokens.
fn invalidate(state: &AppState, tokens: &[&str]) {
    if let Some(cache) = state.auth.key_cache() {
        for t in tokens {
            cache.invalidate(t);
        }
    }
}

/// The `/key/generate` fields `litellm_settings.default_key_generate_params` fills in when the
/// body leaves them out (LiteLLM's list).
const DEFAULTABLE_ON_GENERATE: &[&str] = &[
    "max_budget",
    "user_id",
    "team_id",
    "max_parallel_requests",
    "tpm_limit",
    "rpm_limit",
    "budget_duration",
    "duration",
    "models",
    "metadata",
];

/// Numeric fields `upperbound_key_generate_params` caps.
const NUMERIC_UPPER_BOUNDS: &[&str] = &[
    "max_budget",
    "soft_budget",
    "max_parallel_requests",
    "tpm_limit",
    "rpm_limit",
];

/// A `/key/generate` body with `litellm_settings.default_key_generate_params` applied to what it
/// leaves out, then held to `upperbound_key_generate_params`: a field the body leaves out takes
/// the bound; a number above its bound, or a duration longer than its bound, is refused (400), as
/// in LiteLLM. Both apply to every caller, the master key included.
fn with_generate_params(
    config: &crate::config::ProxyConfig,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, GatewayError> {
    let mut body = body.clone();
    let unset = |v: Option<&Value>, field: &str| match v {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty() && field == "models",
        Some(Value::Object(o)) => o.is_empty() && field == "metadata",
        _ => false,
    };
    if let Some(Value::Object(defaults)) =
        config.litellm_settings.get("default_key_generate_params")
    {
        for (field, value) in defaults {
            if DEFAULTABLE_ON_GENERATE.contains(&field.as_str())
                && !value.is_null()
                && unset(body.get(field), field)
            {
                body.insert(field.clone(), value.clone());
            }
        }
    }
    let Some(Value::Object(bounds)) = config
        .litellm_settings
        .get("upperbound_key_generate_params")
    else {
        return Ok(body);
    };
    for (field, bound) in bounds {
        if bound.is_null() {
            continue;
        }
        let over = |given: &str, max: &str| {
            GatewayError::bad_param(
                field,
                format!(
                    "{field} is over the maximum set in the config (upperbound_key_generate_params) - user_value={given}; max_value={max}"
                ),
            )
        };
        match body.get(field) {
            None | Some(Value::Null) => {
                body.insert(field.clone(), bound.clone());
            }
            Some(given) if NUMERIC_UPPER_BOUNDS.contains(&field.as_str()) => {
                if let (Some(g), Some(max)) = (given.as_f64(), crate::config::as_f64(bound)) {
                    if g > max {
                        return Err(over(&given.to_string(), &bound.to_string()));
                    }
                }
            }
            Some(Value::String(given)) if field == "duration" || field == "budget_duration" => {
                let max = bound.as_str().and_then(keys::parse_duration);
                if let (Some(g), Some(max)) = (keys::parse_duration(given), max) {
                    if g > max {
                        return Err(over(given, bound.as_str().unwrap_or_default()));
                    }
                }
            }
            Some(_) => {}
        }
    }
    Ok(body)
}

/// Create a key (`/key/generate`) and answer with it and its plaintext (shown once).
pub async fn generate(
    state: &AppState,
    c: &Ctx,
    body: &Map<String, Value>,
) -> Result<Value, GatewayError> {
    let body = &with_generate_params(&state.config, body)?;
    let mut user_id = opt_str(body, "user_id")?;
    if !c.caller.is_admin() {
        if user_id.is_none() {
            user_id = c.caller.user_id().map(str::to_string);
        }
        if body.contains_key("spend")
            || body.contains_key("organization_id")
            || body.contains_key("budget_id")
        {
            return Err(GatewayError::Forbidden {
                message: "only proxy admins can set spend, organization_id or budget_id on a key"
                    .into(),
            });
        }
    }
    let team_id = opt_str(body, "team_id")?;
    let mut organization_id = opt_str(body, "organization_id")?;
    let team = match &team_id {
        Some(t) => Some(team_for_key(c, t).await?),
        None => None,
    };
    if let Some(team) = &team {
        if organization_id.is_none() {
            organization_id = team
                .data
                .get("organization_id")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
    }

    let mut data = Map::new();
    apply_fields(body, KEY_FIELDS, &mut data)?;
    apply_key_type(body, &mut data)?;
    check_restrictions(&data)?;
    let expires = expires_from(body, now_ms())?.flatten();
    if !c.caller.is_admin() {
        let user = match &user_id {
            Some(u) => c.store.get_entity(EntityKind::User, u).await?,
            None => None,
        };
        c.caller.check_key_grant(
            &KeyGrant {
                data: &data,
                user_id: user_id.as_deref(),
                user: user.as_ref(),
                team: team.as_ref(),
                expires,
            },
            |g, m| state.in_access_group(g, m),
        )?;
    }
    let key = key_value(body, "key")?;
    let now = now_ms();
    super::apply_budget_duration(body, &mut data, now)?;
    let record = KeyRecord {
        token: keys::hash(&key),
        key_name: keys::display_name(&key),
        key_alias: opt_str(body, "key_alias")?,
        user_id,
        team_id,
        organization_id,
        budget_id: opt_str(body, "budget_id")?,
        blocked: opt_bool(body, "blocked")?.unwrap_or(false),
        expires,
        spend: spend_of(body)?.unwrap_or(0.0),
        created_at: now,
        updated_at: now,
        created_by: Some(c.caller.actor_id()),
        updated_by: Some(c.caller.actor_id()),
        data,
    };
    c.store
        .insert_key(&record)
        .await
        .map_err(conflict_as_alias)?;
    invalidate(state, &[&record.token]);
    Ok(Value::Object(issued(&record, &key)))
}

/// The key named by `key` (a key or its token) or `key_alias`, with its team.
pub async fn find_key(
    c: &Ctx,
    key: Option<&str>,
    alias: Option<&str>,
) -> Result<(KeyRecord, Option<EntityRecord>), GatewayError> {
    let record = match (key, alias) {
        (Some(k), _) => c.store.get_key(&keys::token_of(k)).await?,
        (None, Some(a)) => c.store.get_key_by_alias(a).await?,
        (None, None) => {
            return Err(GatewayError::bad_param(
                "key",
                "'key' (or 'key_alias') is required",
            ))
        }
    };
    // A caller that may not read a key gets exactly the answer a missing key gets: 404 for
    // those who read every key, else the same 403, so no one learns which keys or aliases exist.
    let hidden = || {
        if c.caller.can_read_all() {
            GatewayError::NotFound {
                message: "key not found".into(),
            }
        } else {
            GatewayError::Forbidden {
                message: "key not found, or not one of your keys".into(),
            }
        }
    };
    let record = record.ok_or_else(hidden)?;
    let team = match &record.team_id {
        Some(t) => c.store.get_entity(EntityKind::Team, t).await?,
        None => None,
    };
    if !c.caller.can_read_key(&record, team.as_ref()) {
        return Err(hidden());
    }
    Ok((record, team))
}

/// The key a change names, if the caller may manage it (`doing`: "update", "regenerate").
async fn key_to_manage(
    c: &Ctx,
    key: Option<&str>,
    alias: Option<&str>,
    doing: &str,
) -> Result<KeyRecord, GatewayError> {
    let (record, team) = find_key(c, key, alias).await?;
    if !c.caller.can_manage_key(&record, team.as_ref()) {
        return Err(GatewayError::Forbidden {
            message: format!("you may only {doing} your own keys"),
        });
    }
    Ok(record)
}

/// Apply an update body to a key record (shared by update and regenerate).
async fn apply_update(
    c: &Ctx,
    record: &mut KeyRecord,
    body: &Map<String, Value>,
) -> Result<(), GatewayError> {
    if !c.caller.is_admin() {
        // A holder may rename and label its key, never widen (or otherwise change) its limits.
        if let Some(field) = ADMIN_ONLY_ON_UPDATE.iter().find(|f| body.contains_key(**f)) {
            return Err(GatewayError::Forbidden {
                message: format!(
                    "only proxy admins can change '{field}' of a key; a key's holder may change {HOLDER_FIELDS:?}"
                ),
            });
        }
    } else {
        if body.contains_key("user_id") {
            record.user_id = opt_str(body, "user_id")?;
        }
        if body.contains_key("team_id") {
            record.team_id = opt_str(body, "team_id")?;
            if let Some(t) = &record.team_id {
                team_for_key(c, t).await?;
            }
        }
        if body.contains_key("organization_id") {
            record.organization_id = opt_str(body, "organization_id")?;
        }
        if body.contains_key("budget_id") {
            record.budget_id = opt_str(body, "budget_id")?;
        }
        if let Some(spend) = spend_of(body)? {
            record.spend = spend;
        }
        if let Some(b) = body.get("blocked") {
            record.blocked = b
                .as_bool()
                .ok_or_else(|| GatewayError::bad_param("blocked", "'blocked' must be a boolean"))?;
        }
    }
    apply_fields(body, KEY_FIELDS, &mut record.data)?;
    apply_key_type(body, &mut record.data)?;
    check_restrictions(&record.data)?;
    super::apply_budget_duration(body, &mut record.data, now_ms())?;
    if body.contains_key("key_alias") {
        record.key_alias = opt_str(body, "key_alias")?;
    }
    if let Some(expires) = expires_from(body, now_ms())? {
        record.expires = expires;
    }
    record.updated_at = now_ms();
    record.updated_by = Some(c.caller.actor_id());
    Ok(())
}

/// Change a key (`/key/update`, named by `key`, else by `key_alias`) and answer with it.
pub async fn update(
    state: &AppState,
    c: &Ctx,
    body: &Map<String, Value>,
) -> Result<Value, GatewayError> {
    let asked = opt_str(body, "key")?;
    let alias = if asked.is_none() {
        opt_str(body, "key_alias")?
    } else {
        None
    };
    let mut record = key_to_manage(c, asked.as_deref(), alias.as_deref(), "update").await?;
    let mut changes = body.clone();
    if asked.is_none() {
        // key_alias identified the key; it is not a rename.
        changes.remove("key_alias");
    }
    apply_update(c, &mut record, &changes).await?;
    if !c
        .store
        .update_key(&record)
        .await
        .map_err(conflict_as_alias)?
    {
        return Err(GatewayError::NotFound {
            message: "key not found".into(),
        });
    }
    invalidate(state, &[&record.token]);
    let mut out = key_json(&record);
    out.insert("key".into(), asked.map_or(Value::Null, Value::String));
    Ok(Value::Object(out))
}

/// Delete the keys listed by `keys` and `key_aliases` (`/key/delete`), all or nothing: every
/// key must be the caller's to delete.
pub async fn delete(
    state: &AppState,
    c: &Ctx,
    body: &Map<String, Value>,
) -> Result<Value, GatewayError> {
    let by_key = str_list(body, "keys")?;
    let by_alias = str_list(body, "key_aliases")?;
    if by_key.is_empty() && by_alias.is_empty() {
        return Err(GatewayError::bad_param(
            "keys",
            "'keys' or 'key_aliases' must list at least one key",
        ));
    }
    let mut targets = Vec::new();
    for k in &by_key {
        targets.push((k.clone(), find_key(c, Some(k), None).await?));
    }
    for a in &by_alias {
        targets.push((a.clone(), find_key(c, None, Some(a)).await?));
    }
    if let Some((named, _)) = targets
        .iter()
        .find(|(_, (record, team))| !c.caller.can_manage_key(record, team.as_ref()))
    {
        return Err(GatewayError::Forbidden {
            message: format!("you may not delete key {}", crate::secret::mask(named)),
        });
    }
    let tokens: Vec<String> = targets.iter().map(|(_, (r, _))| r.token.clone()).collect();
    c.store.delete_keys(&tokens).await?;
    invalidate(
        state,
        &tokens.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let deleted: Vec<String> = targets.into_iter().map(|(named, _)| named).collect();
    Ok(json!({"deleted_keys": deleted}))
}

/// Give a key a new value (`/key/regenerate`; the key named by `path_key`, else by `key`),
/// applying the rest of the body as an update, and answer with it and the new plaintext.
pub async fn regenerate(
    state: &AppState,
    c: &Ctx,
    mut body: Map<String, Value>,
    path_key: Option<String>,
) -> Result<Value, GatewayError> {
    let asked = match path_key {
        Some(k) => Some(k),
        None => opt_str(&body, "key")?,
    };
    let mut record = key_to_manage(c, asked.as_deref(), None, "regenerate").await?;
    // The caller receives the new plaintext: it must be a key it could have been given (a team
    // admin may not regenerate a stronger member's team key).
    if let Some(u) = &record.user_id {
        let user = c.store.get_entity(EntityKind::User, u).await?;
        c.caller.check_may_hold_key_of(user.as_ref())?;
    }
    let new_key = key_value(&body, "new_key")?;
    body.remove("key");
    body.remove("new_key");
    apply_update(c, &mut record, &body).await?;
    let old_token = std::mem::replace(&mut record.token, keys::hash(&new_key));
    record.key_name = keys::display_name(&new_key);
    if !c
        .store
        .replace_key(&old_token, &record)
        .await
        .map_err(conflict_as_alias)?
    {
        return Err(GatewayError::NotFound {
            message: "key not found".into(),
        });
    }
    invalidate(state, &[&old_token, &record.token]);
    Ok(Value::Object(issued(&record, &new_key)))
}

/// Block or unblock the key named by `key` (`/key/block`, `/key/unblock`) and answer with it.
pub async fn set_blocked(
    state: &AppState,
    c: &Ctx,
    body: &Map<String, Value>,
    blocked: bool,
) -> Result<Value, GatewayError> {
    let asked = opt_str(body, "key")?;
    let (mut record, _) = find_key(c, asked.as_deref(), None).await?;
    record.blocked = blocked;
    record.updated_at = now_ms();
    record.updated_by = Some(c.caller.actor_id());
    c.store.update_key(&record).await?;
    invalidate(state, &[&record.token]);
    Ok(Value::Object(key_json(&record)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every stored key field is classified: a holder may change it, or only a proxy admin may.
    /// A new field cannot slip through `/key/update` unclassified.
    #[test]
    fn every_key_field_is_either_a_holder_field_or_admin_only() {
        for (name, _) in KEY_FIELDS {
            let holder = HOLDER_FIELDS.contains(name);
            let admin = ADMIN_ONLY_ON_UPDATE.contains(name);
            assert!(
                holder != admin,
                "{name}: holder {holder}, admin-only {admin}"
            );
        }
        for name in HOLDER_FIELDS {
            assert!(!ADMIN_ONLY_ON_UPDATE.contains(name), "{name}");
        }
    }
}
