//! Teams: `/team/new`, `/team/info`, `/team/update`, `/team/delete`, `/team/list`,
//! `/team/member_add`, `/team/member_delete`, `/team/block`, `/team/unblock`.
//!
//! Members live in the team's `members_with_roles` (`[{"user_id","user_email","role"}]`), and each
//! member user's `teams` lists the team back; both sides are kept in sync, and a member named by
//! an unknown id or email gets a user row (`internal_user`). Proxy admins create, delete and block
//! teams; a team's admins may update it and manage its members; members and viewers read it.

use super::routes::{Access, Routes};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::manage::{
    apply_fields, body_object, ctx, entity_json, key_json, opt_str, respond, str_list, Ctx, Kind,
};
use super::users::{invalidate_user, user_json};
use crate::error::GatewayError;
use crate::state::AppState;
use crate::store::{EntityKind, EntityRecord, KeyFilter};
use crate::time::now_ms;

pub fn configure(r: &mut Routes) {
    r.post("/team/new", Access::Admin, new)
        .get("/team/info", Access::Management, info)
        .post("/team/update", Access::Writers, update)
        .post("/team/delete", Access::Admin, delete)
        .get("/team/list", Access::Management, list)
        .post("/team/member_add", Access::Writers, member_add)
        .post("/team/member_delete", Access::Writers, member_delete)
        .post("/team/block", Access::Admin, block)
        .post("/team/unblock", Access::Admin, unblock);
}

/// Team fields kept in the record's `data`, with their types. Nothing else is stored.
const TEAM_FIELDS: &[(&str, Kind)] = &[
    ("organization_id", Kind::Str),
    ("metadata", Kind::Object),
    ("tpm_limit", Kind::Integer),
    ("rpm_limit", Kind::Integer),
    ("max_parallel_requests", Kind::Integer),
    ("max_budget", Kind::Number),
    ("soft_budget", Kind::Number),
    ("budget_duration", Kind::Duration),
    ("models", Kind::StrList),
    ("model_aliases", Kind::StrMap),
    ("tags", Kind::StrList),
    ("guardrails", Kind::StrList),
    ("model_max_budget", Kind::BudgetMap),
    ("model_rpm_limit", Kind::CountMap),
    ("model_tpm_limit", Kind::CountMap),
    ("team_member_budget", Kind::Number),
    ("team_member_key_duration", Kind::Duration),
    ("team_member_permissions", Kind::StrList),
    ("object_permission", Kind::Object),
];

/// What a team admin (not a proxy admin) may change on its team: nothing that widens access,
/// budgets or limits.
const TEAM_ADMIN_FIELDS: &[(&str, Kind)] = &[("metadata", Kind::Object), ("tags", Kind::StrList)];

/// A field and the value shown when it was never set.
type FieldDefault = (&'static str, fn() -> Value);

/// Defaults LiteLLM shows for team fields that were never set.
const TEAM_DEFAULTS: &[FieldDefault] = &[
    ("members_with_roles", || Value::Array(Vec::new())),
    ("models", || Value::Array(Vec::new())),
    ("metadata", || Value::Object(Map::new())),
    ("model_aliases", || Value::Object(Map::new())),
    ("model_spend", || Value::Object(Map::new())),
    ("model_max_budget", || Value::Object(Map::new())),
    ("organization_id", || Value::Null),
    ("max_budget", || Value::Null),
    ("soft_budget", || Value::Null),
    ("budget_duration", || Value::Null),
    ("budget_reset_at", || Value::Null),
    ("tpm_limit", || Value::Null),
    ("rpm_limit", || Value::Null),
    ("max_parallel_requests", || Value::Null),
];

/// A team as the API shows it, with `admins` and `members` derived from `members_with_roles`.
pub(super) fn team_json(e: &EntityRecord) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, default) in TEAM_DEFAULTS {
        out.insert((*name).to_string(), default());
    }
    out.extend(entity_json(e, "team_id", Some("team_alias")));
    let ids_with = |admin: bool| -> Value {
        members(e)
            .iter()
            .filter(|m| (m.get("role").and_then(Value::as_str) == Some("admin")) == admin)
            .filter_map(|m| m.get("user_id").cloned())
            .collect()
    };
    out.insert("admins".into(), ids_with(true));
    out.insert("members".into(), ids_with(false));
    out
}

fn members(team: &EntityRecord) -> Vec<Value> {
    team.data
        .get("members_with_roles")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Forget cached keys of `team_id` (the team's settings, members or existence changed).
pub(super) fn invalidate_team(state: &AppState, team_id: &str) {
    if let Some(cache) = state.auth.key_cache() {
        let id = team_id.to_string();
        cache.invalidate_where(move |p| p.key.team_id.as_deref() == Some(&id))
    }
}

/// Every key matching `filter`, page by page.
/// A team member as requested: `{"role": "admin"|"user", "user_id"|"user_email"}`.
struct Member {
    user_id: Option<String>,
    user_email: Option<String>,
    role: String,
}

fn parse_member(v: &Value) -> Result<Member, GatewayError> {
    let Some(m) = v.as_object() else {
        return Err(GatewayError::bad_param(
            "member",
            "a member must be an object {\"role\", \"user_id\" or \"user_email\"}",
        ));
    };
    let role = opt_str(m, "role")?.unwrap_or_else(|| "user".into());
    if role != "admin" && role != "user" {
        return Err(GatewayError::bad_param(
            "role",
            format!("invalid team member role '{role}': use 'admin' or 'user'"),
        ));
    }
    let member = Member {
        user_id: opt_str(m, "user_id")?,
        user_email: opt_str(m, "user_email")?,
        role,
    };
    if member.user_id.is_none() && member.user_email.is_none() {
        return Err(GatewayError::bad_param(
            "member",
            "a member needs a 'user_id' or a 'user_email'",
        ));
    }
    Ok(member)
}

/// `member` as one object or a list of them.
fn parse_members(v: Option<&Value>, field: &str) -> Result<Vec<Member>, GatewayError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) if a.len() <= super::manage::MAX_ENTRIES => {
            a.iter().map(parse_member).collect()
        }
        Some(v @ Value::Object(_)) => Ok(vec![parse_member(v)?]),
        Some(_) => Err(GatewayError::bad_param(
            field,
            format!(
                "'{field}' must be a member object or a list of at most {} of them",
                super::manage::MAX_ENTRIES
            ),
        )),
    }
}

/// The user a member names (by id, else by email), created as an `internal_user` when unknown.
async fn resolve_user(c: &Ctx, m: &Member) -> Result<EntityRecord, GatewayError> {
    c.user_for_member(m.user_id.as_deref(), m.user_email.as_deref())
        .await
}

/// Put `user` into `team` with `role`, on both records (in memory). False when already a member.
pub(super) fn link(team: &mut EntityRecord, user: &mut EntityRecord, role: &str) -> bool {
    let mut list = members(team);
    if list
        .iter()
        .any(|m| m.get("user_id").and_then(Value::as_str) == Some(user.id.as_str()))
    {
        return false;
    }
    list.push(json!({"user_id": user.id, "user_email": user.alias, "role": role}));
    team.data
        .insert("members_with_roles".into(), Value::Array(list));
    let mut teams: Vec<Value> = user
        .data
        .get("teams")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !teams.iter().any(|t| t.as_str() == Some(team.id.as_str())) {
        teams.push(Value::String(team.id.clone()));
    }
    user.data.insert("teams".into(), Value::Array(teams));
    true
}

/// Drop `team_id` from a user's `teams` (in memory).
pub(super) fn unlink_user(user: &mut EntityRecord, team_id: &str) {
    if let Some(Value::Array(teams)) = user.data.get_mut("teams") {
        teams.retain(|t| t.as_str() != Some(team_id));
    }
}

/// Drop `user_id` from a team's members (in memory). False when it was not a member.
pub(super) fn unlink_team(team: &mut EntityRecord, user_id: &str) -> bool {
    let mut list = members(team);
    let before = list.len();
    list.retain(|m| m.get("user_id").and_then(Value::as_str) != Some(user_id));
    let removed = list.len() != before;
    team.data
        .insert("members_with_roles".into(), Value::Array(list));
    removed
}

/// Add members to `team` (in memory) and store each member user. Returns the users.
async fn add_members(
    state: &AppState,
    c: &Ctx,
    team: &mut EntityRecord,
    new: &[Member],
) -> Result<Vec<EntityRecord>, GatewayError> {
    let mut users = Vec::new();
    for m in new {
        let mut user = resolve_user(c, m).await?;
        if !link(team, &mut user, &m.role) {
            return Err(GatewayError::bad_param(
                "member",
                format!("user {} is already a member of team {}", user.id, team.id),
            ));
        }
        user.updated_at = now_ms();
        user.updated_by = Some(c.caller.actor_id());
        c.store.update_entity(EntityKind::User, &user).await?;
        invalidate_user(state, &user.id);
        users.push(user);
    }
    Ok(users)
}

fn team_id_of(body: &Map<String, Value>) -> Result<String, GatewayError> {
    opt_str(body, "team_id")?
        .ok_or_else(|| GatewayError::bad_param("team_id", "'team_id' is required"))
}

async fn new(state: web::Data<AppState>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    respond(
        async {
            let c = ctx(&state, &req).await?;
            c.caller.require_admin("create teams")?;
            let body = body_object(&req, payload).await?;
            let mut wanted = parse_members(body.get("members_with_roles"), "members_with_roles")?;
            for (field, role) in [("admins", "admin"), ("members", "user")] {
                for id in str_list(&body, field)? {
                    wanted.push(Member {
                        user_id: Some(id),
                        user_email: None,
                        role: role.into(),
                    });
                }
            }
            // Refuse a member listed twice before anything is stored.
            let mut seen = std::collections::HashSet::new();
            if let Some(m) = wanted
                .iter()
                .find(|m| !seen.insert((m.user_id.clone(), m.user_email.clone())))
            {
                let named = m
                    .user_id
                    .clone()
                    .or(m.user_email.clone())
                    .unwrap_or_default();
                return Err(GatewayError::bad_param(
                    "members_with_roles",
                    format!("user {named} is listed twice"),
                ));
            }
            let now = now_ms();
            let mut data = Map::new();
            apply_fields(&body, TEAM_FIELDS, &mut data)?;
            super::budgets::apply_budget_duration(&body, &mut data, now)?;
            data.insert("members_with_roles".into(), Value::Array(Vec::new()));
            let mut team = EntityRecord {
                id: opt_str(&body, "team_id")?.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                alias: opt_str(&body, "team_alias")?,
                spend: 0.0,
                blocked: match body.get("blocked") {
                    None | Some(Value::Null) => false,
                    Some(b) => b.as_bool().ok_or_else(|| {
                        GatewayError::bad_param("blocked", "'blocked' must be a boolean")
                    })?,
                },
                created_at: now,
                updated_at: now,
                created_by: Some(c.caller.actor_id()),
                updated_by: Some(c.caller.actor_id()),
                data,
            };
            c.store.insert_entity(EntityKind::Team, &team).await?;
            if !wanted.is_empty() {
                add_members(&state, &c, &mut team, &wanted).await?;
                c.save(EntityKind::Team, &mut team).await?;
            }
            Ok(Value::Object(team_json(&team)))
        }
        .await,
    )
}

#[derive(Deserialize)]
struct InfoQuery {
    team_id: Option<String>,
}

async fn info(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<InfoQuery>,
) -> HttpResponse {
    respond(
        async {
            let c = ctx(&state, &req).await?;
            let id = q
                .team_id
                .clone()
                .or_else(|| c.caller.principal().and_then(|p| p.key.team_id.clone()))
                .ok_or_else(|| GatewayError::bad_param("team_id", "'team_id' is required"))?;
            let team = c.find(EntityKind::Team, &id).await?;
            if !c.caller.can_read_team(&team) {
                return Err(GatewayError::Forbidden {
                    message: format!("you are not a member of team {id}"),
                });
            }
            let filter = KeyFilter {
                team_id: Some(id.clone()),
                ..KeyFilter::default()
            };
            let mut keys = c.all_keys(&filter).await?;
            if !c.caller.can_read_all() && !c.caller.is_team_admin(&team) {
                // Plain members see their own keys of the team only.
                keys.retain(|k| c.caller.can_read_key(k, None));
            }
            let memberships: Vec<Value> = members(&team)
                .iter()
                .filter_map(|m| m.get("user_id").and_then(Value::as_str))
                .map(|u| json!({"user_id": u, "team_id": id, "spend": 0.0, "budget_id": null, "litellm_budget_table": null}))
                .collect();
            Ok(json!({
                "team_id": id,
                "team_info": team_json(&team),
                "keys": keys.iter().map(|k| Value::Object(key_json(k))).collect::<Vec<_>>(),
                "team_memberships": memberships,
            }))
        }
        .await,
    )
}

async fn update(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    respond(
        async {
            let c = ctx(&state, &req).await?;
            c.caller.require_write("update teams")?;
            let body = body_object(&req, payload).await?;
            let id = team_id_of(&body)?;
            let mut team = c.find(EntityKind::Team, &id).await?;
            if !c.caller.can_manage_team(&team) {
                return Err(GatewayError::Forbidden {
                    message: format!("only proxy admins and admins of team {id} can update it"),
                });
            }
            if c.caller.is_admin() {
                apply_fields(&body, TEAM_FIELDS, &mut team.data)?;
                super::budgets::apply_budget_duration(&body, &mut team.data, now_ms())?;
                if let Some(b) = body.get("blocked") {
                    team.blocked = b.as_bool().ok_or_else(|| {
                        GatewayError::bad_param("blocked", "'blocked' must be a boolean")
                    })?;
                }
            } else {
                let allowed = |f: &str| {
                    f == "team_id"
                        || f == "team_alias"
                        || TEAM_ADMIN_FIELDS.iter().any(|(a, _)| *a == f)
                };
                if let Some(field) = body.keys().find(|f| !allowed(f)) {
                    return Err(GatewayError::Forbidden {
                        message: format!("only proxy admins can change '{field}' of a team"),
                    });
                }
                apply_fields(&body, TEAM_ADMIN_FIELDS, &mut team.data)?;
            }
            if body.contains_key("team_alias") {
                team.alias = opt_str(&body, "team_alias")?;
            }
            c.save(EntityKind::Team, &mut team).await?;
            invalidate_team(&state, &id);
            Ok(json!({"team_id": id, "data": team_json(&team)}))
        }
        .await,
    )
}

async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    respond(
        async {
            let c = ctx(&state, &req).await?;
            c.caller.require_admin("delete teams")?;
            let body = body_object(&req, payload).await?;
            let ids = str_list(&body, "team_ids")?;
            if ids.is_empty() {
                return Err(GatewayError::bad_param(
                    "team_ids",
                    "'team_ids' must list at least one team",
                ));
            }
            let mut teams = Vec::new();
            for id in &ids {
                teams.push(c.find(EntityKind::Team, id).await?);
            }
            for team in &teams {
                for m in members(team) {
                    let Some(uid) = m.get("user_id").and_then(Value::as_str) else {
                        continue;
                    };
                    if let Some(mut user) = c.store.get_entity(EntityKind::User, uid).await? {
                        unlink_user(&mut user, &team.id);
                        c.store.update_entity(EntityKind::User, &user).await?;
                        invalidate_user(&state, uid);
                    }
                }
                let filter = KeyFilter {
                    team_id: Some(team.id.clone()),
                    ..KeyFilter::default()
                };
                c.delete_keys_where(&filter).await?;
            }
            c.store.delete_entities(EntityKind::Team, &ids).await?;
            for id in &ids {
                invalidate_team(&state, id);
            }
            Ok(json!({"deleted_teams": ids}))
        }
        .await,
    )
}

#[derive(Deserialize)]
struct ListQuery {
    page: Option<u64>,
    page_size: Option<u64>,
    user_id: Option<String>,
    organization_id: Option<String>,
}

async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<ListQuery>,
) -> HttpResponse {
    respond(
        async {
            let c = ctx(&state, &req).await?;
            let mut teams = if c.caller.can_read_all() {
                c.all_or_page(EntityKind::Team, q.page, q.page_size).await?
            } else {
                // Everyone else lists the teams it belongs to.
                let own = c.caller.user_id().map(str::to_string);
                if q.user_id.is_some() && q.user_id != own {
                    return Err(GatewayError::Forbidden {
                        message: "you may only list your own teams".into(),
                    });
                }
                let mut ids: Vec<String> = match &own {
                    Some(u) => c
                        .store
                        .get_entity(EntityKind::User, u)
                        .await?
                        .map(|u| {
                            u.data
                                .get("teams")
                                .and_then(Value::as_array)
                                .cloned()
                                .unwrap_or_default()
                        })
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect(),
                    None => Vec::new(),
                };
                if let Some(t) = c.caller.principal().and_then(|p| p.key.team_id.clone()) {
                    if !ids.contains(&t) {
                        ids.push(t);
                    }
                }
                let mut out = Vec::new();
                for id in ids {
                    if let Some(team) = c.store.get_entity(EntityKind::Team, &id).await? {
                        if c.caller.can_read_team(&team) {
                            out.push(team);
                        }
                    }
                }
                out
            };
            if let Some(u) = &q.user_id {
                teams.retain(|t| {
                    members(t)
                        .iter()
                        .any(|m| m.get("user_id").and_then(Value::as_str) == Some(u))
                });
            }
            if let Some(o) = &q.organization_id {
                teams.retain(|t| t.data.get("organization_id").and_then(Value::as_str) == Some(o));
            }
            Ok(Value::Array(
                teams.iter().map(|t| Value::Object(team_json(t))).collect(),
            ))
        }
        .await,
    )
}

async fn member_add(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    respond(
        async {
            let c = ctx(&state, &req).await?;
            c.caller.require_write("add team members")?;
            let body = body_object(&req, payload).await?;
            let id = team_id_of(&body)?;
            let mut team = c.find(EntityKind::Team, &id).await?;
            if !c.caller.can_manage_team(&team) {
                return Err(GatewayError::Forbidden {
                    message: format!("only proxy admins and admins of team {id} can add members"),
                });
            }
            let wanted = parse_members(body.get("member"), "member")?;
            if wanted.is_empty() {
                return Err(GatewayError::bad_param("member", "'member' is required"));
            }
            let users = add_members(&state, &c, &mut team, &wanted).await?;
            c.save(EntityKind::Team, &mut team).await?;
            invalidate_team(&state, &id);
            let mut out = team_json(&team);
            out.insert("updated_users".into(), users.iter().map(|u| Value::Object(user_json(u))).collect());
            out.insert(
                "updated_team_memberships".into(),
                users
                    .iter()
                    .map(|u| json!({"user_id": u.id, "team_id": id, "spend": 0.0, "budget_id": null, "litellm_budget_table": null}))
                    .collect(),
            );
            Ok(Value::Object(out))
        }
        .await,
    )
}

async fn member_delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    respond(
        async {
            let c = ctx(&state, &req).await?;
            c.caller.require_write("remove team members")?;
            let body = body_object(&req, payload).await?;
            let id = team_id_of(&body)?;
            let mut team = c.find(EntityKind::Team, &id).await?;
            if !c.caller.can_manage_team(&team) {
                return Err(GatewayError::Forbidden {
                    message: format!(
                        "only proxy admins and admins of team {id} can remove members"
                    ),
                });
            }
            let user = match (opt_str(&body, "user_id")?, opt_str(&body, "user_email")?) {
                (Some(u), _) => c
                    .store
                    .get_entity(EntityKind::User, &u)
                    .await?
                    .map(Ok)
                    .unwrap_or(Err(u)),
                (None, Some(e)) => c
                    .store
                    .find_entity_by_alias(EntityKind::User, &e)
                    .await?
                    .map(Ok)
                    .unwrap_or(Err(e)),
                (None, None) => {
                    return Err(GatewayError::bad_param(
                        "user_id",
                        "'user_id' or 'user_email' is required",
                    ))
                }
            };
            let user_id = match &user {
                Ok(u) => u.id.clone(),
                Err(named) => named.clone(),
            };
            if !unlink_team(&mut team, &user_id) {
                return Err(GatewayError::NotFound {
                    message: format!("user {user_id} is not a member of team {id}"),
                });
            }
            c.save(EntityKind::Team, &mut team).await?;
            if let Ok(mut user) = user {
                unlink_user(&mut user, &id);
                user.updated_at = now_ms();
                user.updated_by = Some(c.caller.actor_id());
                c.store.update_entity(EntityKind::User, &user).await?;
            }
            invalidate_team(&state, &id);
            invalidate_user(&state, &user_id);
            Ok(Value::Object(team_json(&team)))
        }
        .await,
    )
}

async fn set_blocked(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
    blocked: bool,
) -> Result<Value, GatewayError> {
    let c = ctx(state, req).await?;
    c.caller.require_admin(if blocked {
        "block teams"
    } else {
        "unblock teams"
    })?;
    let body = body_object(req, payload).await?;
    let id = team_id_of(&body)?;
    let mut team = c.find(EntityKind::Team, &id).await?;
    team.blocked = blocked;
    c.save(EntityKind::Team, &mut team).await?;
    invalidate_team(state, &id);
    Ok(Value::Object(team_json(&team)))
}

async fn block(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    respond(set_blocked(&state, &req, payload, true).await)
}

async fn unblock(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    respond(set_blocked(&state, &req, payload, false).await)
}
