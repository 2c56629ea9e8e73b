//! Internal users: create (with the key `/user/new` makes for them), update and delete.
//!
//! A user's `user_email` is the record's alias and `user_role` (checked with
//! [`crate::auth::Role::parse`]) decides what its keys may do. Creating a user also creates a key
//! for it unless `auto_create_key` is false, and answers with the key's fields, the plaintext
//! `key` (shown once) and the user's fields, as LiteLLM does. Joining the new user's teams, an
//! update and a delete each run in one transaction ([`crate::store::Store::modify`]); the user row
//! and its key are inserted on their own (the store's transactions change existing rows), and a
//! user whose key could not be inserted is removed again. A proxy admin's update of an unknown
//! `user_id` creates the user with the fields given (LiteLLM's `/user/update` upserts).

use serde_json::{Map, Value};

use super::entities::{self, USER};
use super::groups::{invalidate_team, touch, STALE_RETRIES, TEAM_GROUP};
use super::Ctx;
use crate::auth::Role;
use crate::error::GatewayError;
use crate::http::manage::{self, apply_fields, opt_str, str_list, Kind, EMAIL_NOT_BY_ADMIN};
use crate::keys;
use crate::state::AppState;
use crate::store::{EntityKind, EntityRecord, KeyRecord, KeyScope, Locked, StoreError, TxEffects};
use crate::time::now_ms;

/// A user as the API shows it.
pub fn user_json(e: &EntityRecord) -> Map<String, Value> {
    let mut out = USER.json_map(e);
    out.remove(EMAIL_NOT_BY_ADMIN);
    out
}

/// Forget cached keys of `user_id` (its role, limits, blocked state or existence changed).
pub fn invalidate_user(state: &AppState, user_id: &str) {
    if let Some(cache) = state.auth.key_cache() {
        let id = user_id.to_string();
        cache.invalidate_where(move |p| p.key.user_id.as_deref() == Some(&id))
    }
}

/// `user_role` from a body, checked (`None` when absent).
fn role_of(body: &Map<String, Value>) -> Result<Option<Role>, GatewayError> {
    match opt_str(body, "user_role")? {
        None => Ok(None),
        Some(r) => Role::parse(&r).map(Some).ok_or_else(|| {
            let valid: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
            GatewayError::bad_param(
                "user_role",
                format!("invalid user_role '{r}': use one of {valid:?}"),
            )
        }),
    }
}

/// The ids of the teams a user is in.
pub fn team_ids_of(user: &EntityRecord) -> Vec<String> {
    crate::keys::string_list(&user.data, "teams")
}

/// A `user_email` no other user has.
async fn check_email_free(c: &Ctx, email: &str, except: Option<&str>) -> Result<(), GatewayError> {
    match c
        .store
        .find_entity_by_alias(EntityKind::User, email)
        .await?
    {
        Some(other) if Some(other.id.as_str()) != except => Err(GatewayError::bad_param(
            "user_email",
            format!("a user with user_email {email} already exists"),
        )),
        _ => Ok(()),
    }
}

/// The key a new user gets, from the key fields of the request.
fn auto_key(
    c: &Ctx,
    body: &Map<String, Value>,
    user_id: &str,
    team_id: Option<String>,
    now: i64,
) -> Result<(KeyRecord, String), GatewayError> {
    let mut data = Map::new();
    let key_fields: Vec<(&str, Kind)> = entities::KEY_FIELDS
        .iter()
        .copied()
        .filter(|(f, _)| !entities::NOT_FOR_AUTO_KEY.contains(f))
        .collect();
    apply_fields(body, &key_fields, &mut data)?;
    // LiteLLM's key_max_budget / key_budget_duration are the key's own budget.
    let mut key_budget = Map::new();
    for (from, to, kind) in [
        ("key_max_budget", "max_budget", Kind::Number),
        ("key_budget_duration", "budget_duration", Kind::Duration),
    ] {
        if let Some(v) = body.get(from) {
            manage::check_field(from, kind, v)?;
            key_budget.insert(to.to_string(), v.clone());
        }
    }
    apply_fields(
        &key_budget,
        &[
            ("max_budget", Kind::Number),
            ("budget_duration", Kind::Duration),
        ],
        &mut data,
    )?;
    let expires = super::keys::expires_from(body, now)?.flatten();
    let key = keys::generate();
    let record = KeyRecord {
        token: keys::hash(&key),
        key_name: keys::display_name(&key),
        key_alias: opt_str(body, "key_alias")?,
        user_id: Some(user_id.to_string()),
        team_id,
        organization_id: None,
        budget_id: None,
        blocked: false,
        expires,
        spend: 0.0,
        created_at: now,
        updated_at: now,
        created_by: Some(c.caller.actor_id()),
        updated_by: Some(c.caller.actor_id()),
        data,
    };
    Ok((record, key))
}

/// Create a user (`/user/new`): it joins the teams named by `teams` and `team_id` (each must
/// exist) and, unless `auto_create_key` is false, gets a key. Answers with the key's fields, the
/// plaintext key and the user's fields (or the user's fields and `"key": null`).
pub async fn create(
    state: &AppState,
    c: &Ctx,
    body: &Map<String, Value>,
) -> Result<Value, GatewayError> {
    let id = opt_str(body, "user_id")?.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let email = opt_str(body, "user_email")?;
    if let Some(e) = &email {
        check_email_free(c, e, None).await?;
    }
    let role = role_of(body)?.unwrap_or(Role::InternalUser);
    let auto_create_key = match body.get("auto_create_key") {
        None | Some(Value::Null) => true,
        Some(v) => v.as_bool().ok_or_else(|| {
            GatewayError::bad_param("auto_create_key", "'auto_create_key' must be a boolean")
        })?,
    };
    // Teams to join: `teams` and `team_id`; each must exist.
    let team_id = opt_str(body, "team_id")?;
    let mut team_ids = str_list(body, "teams")?;
    if let Some(t) = &team_id {
        if !team_ids.contains(t) {
            team_ids.push(t.clone());
        }
    }
    for t in &team_ids {
        if c.store.get_entity(EntityKind::Team, t).await?.is_none() {
            return Err(GatewayError::bad_param(
                "teams",
                format!("team {t} does not exist"),
            ));
        }
    }

    let password = new_password(body).await?;
    let now = now_ms();
    let mut data = Map::new();
    apply_fields(body, USER.fields, &mut data)?;
    super::apply_budget_duration(body, &mut data, now)?;
    data.insert("user_role".into(), Value::String(role.as_str().into()));
    data.insert("teams".into(), Value::Array(Vec::new()));
    let user = c.new_record(id.clone(), email, data, now);
    let key = if auto_create_key {
        let (record, key) = auto_key(c, body, &id, team_id, now)?;
        if let Some(alias) = &record.key_alias {
            if c.store.get_key_by_alias(alias).await?.is_some() {
                return Err(GatewayError::bad_param(
                    "key_alias",
                    "a key with this key_alias already exists",
                ));
            }
        }
        Some((record, key))
    } else {
        None
    };
    // The user, its team memberships and its first key: one transaction on the locked teams.
    let user = create_in_one_transaction(
        c,
        user,
        &team_ids,
        key.as_ref().map(|(r, _)| r.clone()),
        now,
    )
    .await?;
    for t in &team_ids {
        invalidate_team(state, t);
    }
    if let Some(hash) = &password {
        c.store.set_user_password(&user.id, Some(hash), now).await?;
    }
    let mut out = match &key {
        Some((record, plaintext)) => {
            if let Some(cache) = state.auth.key_cache() {
                cache.invalidate(&record.token);
            }
            super::keys::issued(record, plaintext)
        }
        None => {
            let mut out = Map::new();
            out.insert("key".into(), Value::Null);
            out
        }
    };
    let user_out = user_json(&user);
    if key.is_some() {
        // The key's fields, then the user's own (its budget wins over the key's).
        for field in [
            "user_id",
            "user_email",
            "user_alias",
            "user_role",
            "teams",
            "max_budget",
            "budget_duration",
            "budget_reset_at",
        ] {
            out.insert(
                field.into(),
                user_out.get(field).cloned().unwrap_or(Value::Null),
            );
        }
    } else {
        out.extend(user_out);
    }
    Ok(Value::Object(out))
}

/// Insert the new `user`, add it to the teams `team_ids` as a member and insert its first `key`,
/// in one transaction on the locked (absent) user and teams: a member change committed on a team
/// meanwhile is kept, and nothing is written when any part fails (an existing user id, a key
/// alias taken meanwhile). A team deleted meanwhile is left alone. Returns the user as stored.
async fn create_in_one_transaction(
    c: &Ctx,
    user: EntityRecord,
    team_ids: &[String],
    key: Option<KeyRecord>,
    now: i64,
) -> Result<EntityRecord, GatewayError> {
    let mut targets = vec![(EntityKind::User, user.id.clone())];
    for t in team_ids {
        if !targets
            .iter()
            .any(|(k, id)| *k == EntityKind::Team && id == t)
        {
            targets.push((EntityKind::Team, t.clone()));
        }
    }
    let actor = c.caller.actor_id();
    let modified = c
        .store
        .modify(
            targets,
            Box::new(move |rows| {
                let (user_row, team_rows) =
                    rows.split_first_mut().expect("the user is asked for first");
                if user_row.record.is_some() {
                    return Err(StoreError::Conflict("a record with this id".into()));
                }
                let mut user = user;
                for row in team_rows {
                    if let Some(team) = row.record.as_mut() {
                        TEAM_GROUP.link(team, &mut user, "user");
                        touch(row, &actor, now);
                    }
                }
                user_row.record = Some(user);
                user_row.changed = true;
                Ok(TxEffects {
                    insert_keys: key.into_iter().collect(),
                    ..TxEffects::default()
                })
            }),
        )
        .await?;
    modified
        .entities
        .into_iter()
        .find(|l| l.kind == EntityKind::User)
        .and_then(|l| l.record)
        .ok_or_else(|| GatewayError::internal("the new user was not written"))
}

/// The user a `/user/update` body names (`user_id`, else `user_email`), if the caller may
/// update it.
async fn user_to_update(c: &Ctx, body: &Map<String, Value>) -> Result<EntityRecord, GatewayError> {
    let refused = || GatewayError::Forbidden {
        message: "you may only update your own user".into(),
    };
    match (opt_str(body, "user_id")?, opt_str(body, "user_email")?) {
        (Some(id), _) => {
            if !c.caller.can_update_user(&id) {
                return Err(refused());
            }
            c.find(EntityKind::User, &id).await
        }
        (None, Some(email)) => {
            let user = c
                .store
                .find_entity_by_alias(EntityKind::User, &email)
                .await?;
            match user {
                Some(u) if c.caller.can_update_user(&u.id) => Ok(u),
                _ if !c.caller.is_admin() => Err(refused()),
                _ => Err(GatewayError::NotFound {
                    message: format!("user with user_email {email} not found"),
                }),
            }
        }
        (None, None) => Err(GatewayError::bad_param(
            "user_id",
            "'user_id' or 'user_email' is required",
        )),
    }
}

/// Update a user (`/user/update`) and answer with it as stored.
pub async fn update(
    state: &AppState,
    c: &Ctx,
    body: &Map<String, Value>,
) -> Result<Value, GatewayError> {
    let mut user = match user_to_update(c, body).await {
        // LiteLLM's `/user/update` upserts: a proxy admin naming an unknown `user_id` creates it.
        Err(GatewayError::NotFound { message }) if c.caller.is_admin() => {
            let Some(id) = opt_str(body, "user_id")? else {
                return Err(GatewayError::NotFound { message });
            };
            match upsert_new(c, body, &id).await {
                Ok(user) => {
                    invalidate_user(state, &user.id);
                    return Ok(Value::Object(user_json(&user)));
                }
                // Created meanwhile by a parallel request: update it as it is now.
                Err(GatewayError::BadRequest { .. })
                    if c.store.get_entity(EntityKind::User, &id).await?.is_some() =>
                {
                    user_to_update(c, body).await?
                }
                Err(e) => return Err(e),
            }
        }
        other => other?,
    };
    if body.contains_key("password") && !c.caller.is_admin() {
        return Err(GatewayError::Forbidden {
            message: "only proxy admins can change 'password' of a user".into(),
        });
    }
    let password = new_password(body).await?;
    // Check the change on the user as read (a refusal writes nothing), then make it in one
    // transaction on the locked row, so it cannot undo a change committed since (a team joined,
    // an organization left).
    let (admin, now) = (c.caller.is_admin(), now_ms());
    let new_spend = apply_update(admin, body, &mut user, now)?;
    if body.contains_key("user_id") {
        if let Some(e) = opt_str(body, "user_email")? {
            check_email_free(c, &e, Some(&user.id)).await?;
        }
    }
    let (changes, actor, id) = (body.clone(), c.caller.actor_id(), user.id.clone());
    let done = c
        .store
        .modify(
            vec![(EntityKind::User, id.clone())],
            Box::new(move |rows| {
                let row = &mut rows[0];
                let Some(user) = row.record.as_mut() else {
                    return Err(StoreError::NotFound(format!("user {id} not found")));
                };
                apply_update(admin, &changes, user, now).map_err(|e| StoreError::Invalid {
                    field: String::new(),
                    message: e.to_string(),
                })?;
                user.updated_at = now;
                user.updated_by = Some(actor);
                row.changed = true;
                Ok(TxEffects {
                    set_spend: new_spend
                        .map(|s| (EntityKind::User, id, s))
                        .into_iter()
                        .collect(),
                    ..TxEffects::default()
                })
            }),
        )
        .await?;
    let user = done
        .entities
        .into_iter()
        .next()
        .and_then(|l| l.record)
        .ok_or_else(|| GatewayError::Internal {
            message: "the user update wrote no record".into(),
        })?;
    invalidate_user(state, &user.id);
    if let Some(hash) = &password {
        // A new password ends the user's UI sessions.
        c.store.set_user_password(&user.id, Some(hash), now).await?;
        c.store.delete_user_sessions(&user.id).await?;
    }
    Ok(Value::Object(user_json(&user)))
}

/// The user a proxy admin's `/user/update` creates when `user_id` names no user (LiteLLM upserts):
/// the fields given, `internal_user` unless `user_role` says otherwise, no team and no key. An id
/// taken meanwhile by a parallel request is a 400 (the caller then updates that user).
async fn upsert_new(
    c: &Ctx,
    body: &Map<String, Value>,
    id: &str,
) -> Result<EntityRecord, GatewayError> {
    if let Some(e) = opt_str(body, "user_email")? {
        check_email_free(c, &e, None).await?;
    }
    let password = new_password(body).await?;
    let now = now_ms();
    let mut data = Map::new();
    data.insert(
        "user_role".into(),
        Value::String(Role::InternalUser.as_str().into()),
    );
    data.insert("teams".into(), Value::Array(Vec::new()));
    let mut user = c.new_record(id.to_string(), None, data, now);
    apply_update(true, body, &mut user, now)?;
    let user = create_in_one_transaction(c, user, &[], None, now).await?;
    if let Some(hash) = &password {
        c.store.set_user_password(&user.id, Some(hash), now).await?;
    }
    Ok(user)
}

/// The Argon2id hash of a body's `password` (the admin UI password), if it sets one. The
/// password itself is never stored, logged or answered.
async fn new_password(body: &Map<String, Value>) -> Result<Option<String>, GatewayError> {
    match body.get("password") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let password = crate::ui_session::check_password(v)?;
            let hash =
                crate::ui_session::blocking(move || crate::ui_session::hash_password(&password))
                    .await??;
            Ok(Some(hash))
        }
    }
}

/// What a `/user/update` body changes on a user: every user field for a proxy admin, only its
/// own harmless fields for the user itself; with `user_id` given, `user_email` is a change of
/// email, which only a proxy admin makes (team and organization member-adds bind to users by
/// email, so an email a user set on itself would let it be added in another's place). Returns
/// the spend a proxy admin sets.
fn apply_update(
    admin: bool,
    body: &Map<String, Value>,
    user: &mut EntityRecord,
    now: i64,
) -> Result<Option<f64>, GatewayError> {
    let mut spend = None;
    if admin {
        apply_fields(body, USER.fields, &mut user.data)?;
        super::apply_budget_duration(body, &mut user.data, now)?;
        if let Some(role) = role_of(body)? {
            user.data
                .insert("user_role".into(), Value::String(role.as_str().into()));
        }
        spend = super::keys::spend_of(body)?;
        if let Some(b) = body.get("blocked") {
            user.blocked = b
                .as_bool()
                .ok_or_else(|| GatewayError::bad_param("blocked", "'blocked' must be a boolean"))?;
        }
    } else {
        let allowed = |f: &str| {
            f == "user_id" || f == "user_email" || USER.own_fields.iter().any(|(a, _)| *a == f)
        };
        if let Some(field) = body.keys().find(|f| !allowed(f)) {
            return Err(GatewayError::Forbidden {
                message: format!("only proxy admins can change '{field}' of a user"),
            });
        }
        apply_fields(body, USER.own_fields, &mut user.data)?;
    }
    if body.contains_key("user_id") && body.contains_key("user_email") {
        let email = opt_str(body, "user_email")?;
        if email != user.alias && !admin {
            return Err(GatewayError::Forbidden {
                message: "only proxy admins can change 'user_email' of a user".into(),
            });
        }
        if admin {
            user.data.remove(EMAIL_NOT_BY_ADMIN);
        }
        user.alias = email;
    }
    if let Some(s) = spend {
        user.spend = s;
    }
    Ok(spend)
}

/// Delete users (`/user/delete`, body `user_ids`) in one transaction: every user leaves its
/// teams, its keys go (as LiteLLM does), then the users. Users and their teams are locked; if a
/// user joined a team between reading and locking, it is read again.
pub async fn delete(
    state: &AppState,
    c: &Ctx,
    body: &Map<String, Value>,
) -> Result<Value, GatewayError> {
    let ids = str_list(body, "user_ids")?;
    if ids.is_empty() {
        return Err(GatewayError::bad_param(
            "user_ids",
            "'user_ids' must list at least one user",
        ));
    }
    let mut result = Err(StoreError::Stale);
    for _ in 0..STALE_RETRIES {
        let mut targets = Vec::new();
        for id in &ids {
            let user = c.find(EntityKind::User, id).await?;
            targets.push((EntityKind::User, id.clone()));
            targets.extend(
                team_ids_of(&user)
                    .into_iter()
                    .map(|t| (EntityKind::Team, t)),
            );
        }
        let (actor, now, user_ids) = (c.caller.actor_id(), now_ms(), ids.clone());
        result = c
            .store
            .modify(
                targets,
                Box::new(move |rows| delete_change(rows, &user_ids, &actor, now)),
            )
            .await;
        if !matches!(result, Err(StoreError::Stale)) {
            break;
        }
    }
    for l in result?.entities {
        if l.kind == EntityKind::Team {
            invalidate_team(state, &l.id);
        }
    }
    for id in &ids {
        invalidate_user(state, id);
        c.store.set_user_password(id, None, now_ms()).await?;
        c.store.delete_user_sessions(id).await?;
    }
    Ok(serde_json::json!({"deleted_users": ids}))
}

/// The [`delete`] transaction: unlink each user from the locked teams it lists, delete its keys
/// and the user.
fn delete_change(
    rows: &mut [Locked],
    user_ids: &[String],
    actor: &str,
    now: i64,
) -> Result<TxEffects, StoreError> {
    let mut effects = TxEffects::default();
    for id in user_ids {
        let Some(user) = rows
            .iter()
            .find(|l| l.kind == EntityKind::User && l.id == *id)
            .and_then(|l| l.record.clone())
        else {
            return Err(StoreError::NotFound(format!("user {id} not found")));
        };
        for t in team_ids_of(&user) {
            let Some(row) = rows
                .iter_mut()
                .find(|l| l.kind == EntityKind::Team && l.id == t)
            else {
                return Err(StoreError::Stale);
            };
            if let Some(team) = row.record.as_mut() {
                if TEAM_GROUP.unlink_member(team, id) {
                    touch(row, actor, now);
                }
            }
        }
        effects.delete_keys.push(KeyScope {
            team_id: None,
            user_id: Some(id.clone()),
        });
        effects.delete_entities.push((EntityKind::User, id.clone()));
    }
    Ok(effects)
}
