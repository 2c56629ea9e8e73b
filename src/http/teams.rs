//! Teams: `/team/new`, `/team/info`, `/team/update`, `/team/delete`, `/team/list`,
//! `/team/member_add`, `/team/member_delete`, `/team/block`, `/team/unblock`, `/team/model/add`,
//! `/team/model/delete`.
//!
//! Members live in the team's `members_with_roles` (`[{"user_id","user_email","role"}]`), and each
//! member user's `teams` lists the team back; both sides are kept in sync, and a member named by
//! an unknown id or email gets a user row (`internal_user`). Proxy admins create, delete and block
//! teams; a team's admins may update it and manage its members; members and viewers read it.

use super::routes::{Access, Routes};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::manage::{key_json, opt_str, respond, str_list, user_id_or_email, Body, Ctx};
use super::users::{invalidate_user, user_json};
use crate::error::GatewayError;
use crate::management::entities::TEAM;
use crate::management::groups::{invalidate_team, TEAM_GROUP};
use crate::management::ids_listed;
use crate::state::AppState;
use crate::store::{EntityKind, EntityRecord, KeyFilter, KeyScope, StoreError, TxEffects};

pub fn configure(r: &mut Routes) {
    r.post("/team/new", Access::Admin, new)
        .get("/team/info", Access::Management, info)
        .post("/team/update", Access::Writers, update)
        .post("/team/delete", Access::Admin, delete)
        .get("/team/list", Access::Management, list)
        .post("/team/member_add", Access::Writers, member_add)
        .post("/team/member_delete", Access::Writers, member_delete)
        .post("/team/member_update", Access::Writers, member_update)
        .post("/team/block", Access::Admin, block)
        .post("/team/unblock", Access::Admin, unblock)
        .post("/team/model/add", Access::Writers, model_add)
        .post("/team/model/delete", Access::Writers, model_delete);
}

/// A team as the API shows it, with `admins` and `members` derived from `members_with_roles`.
pub(super) fn team_json(e: &EntityRecord) -> Map<String, Value> {
    let mut out = TEAM.json_map(e);
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
    TEAM_GROUP.members(team)
}

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

/// Add members to team `team_id` in one transaction: the team and every member user are locked,
/// so concurrent additions to one team (or of one user) all land. Member users are created first
/// when unknown (an atomic insert-if-absent). Returns the team and the users as stored.
async fn add_members(
    state: &AppState,
    c: &Ctx,
    team_id: &str,
    new: &[Member],
) -> Result<(EntityRecord, Vec<EntityRecord>), GatewayError> {
    let mut wanted: Vec<(String, String)> = Vec::new();
    for m in new {
        let user = resolve_user(c, m).await?;
        if wanted.iter().any(|(u, _)| *u == user.id) {
            return Err(GatewayError::bad_param(
                "member",
                format!("user {} is listed twice", user.id),
            ));
        }
        wanted.push((user.id, m.role.clone()));
    }
    let users = wanted.iter().map(|(u, _)| u.clone()).collect();
    let id = team_id.to_string();
    let done = TEAM_GROUP
        .change_members(c, team_id, users, move |team, users, _| {
            for (row, (uid, role)) in users.iter_mut().zip(&wanted) {
                let Some(user) = row.record.as_mut() else {
                    return Err(StoreError::NotFound(format!("user {uid} not found")));
                };
                if !TEAM_GROUP.link(team, user, role) {
                    return Err(StoreError::Invalid {
                        field: "member".into(),
                        message: format!("user {uid} is already a member of team {id}"),
                    });
                }
            }
            Ok(TxEffects::default())
        })
        .await?;
    let mut records = done.entities.into_iter().filter_map(|l| l.record);
    let team = records.next().expect("the team was written");
    let users: Vec<EntityRecord> = records.collect();
    for u in &users {
        invalidate_user(state, &u.id);
    }
    Ok((team, users))
}

/// The team a body names by `team_id`, when the caller may manage it (a proxy admin or an admin
/// of the team); 403 saying it may not `what` otherwise.
async fn managed_team(
    c: &Ctx,
    body: &Map<String, Value>,
    what: &str,
) -> Result<(String, EntityRecord), GatewayError> {
    let id = team_id_of(body)?;
    let team = c.find(EntityKind::Team, &id).await?;
    if !c.caller.can_manage_team(&team) {
        return Err(GatewayError::Forbidden {
            message: format!("only proxy admins and admins of team {id} can {what}"),
        });
    }
    Ok((id, team))
}

fn team_id_of(body: &Map<String, Value>) -> Result<String, GatewayError> {
    opt_str(body, "team_id")?
        .ok_or_else(|| GatewayError::bad_param("team_id", "'team_id' is required"))
}

/// The members a `/team/new` body lists (`members_with_roles`, `admins`, `members`); a member
/// listed twice is refused before anything is stored.
fn new_members(body: &Map<String, Value>) -> Result<Vec<Member>, GatewayError> {
    let mut wanted = parse_members(body.get("members_with_roles"), "members_with_roles")?;
    for (field, role) in [("admins", "admin"), ("members", "user")] {
        for id in str_list(body, field)? {
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
    Ok(wanted)
}

async fn new(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(
        async {
            let mut wanted = new_members(&body)?;
            // LiteLLM makes the creating user (a user's key, a user's UI session) an admin of
            // the team, unless the body already lists it.
            if let Some(uid) = c.caller.user_id() {
                if !wanted.iter().any(|m| m.user_id.as_deref() == Some(uid)) {
                    wanted.push(Member {
                        user_id: Some(uid.to_string()),
                        user_email: None,
                        role: "admin".into(),
                    });
                }
            }
            let mut team = TEAM.create(&c, &body).await?;
            if !wanted.is_empty() {
                team = add_members(&state, &c, &team.id, &wanted).await?.0;
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

async fn info(c: Ctx, q: web::Query<InfoQuery>) -> HttpResponse {
    respond(
        async {
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

async fn update(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(
        async {
            let (id, _) = managed_team(&c, &body, "update it").await?;
            let team = TEAM.update(&c, &id, &body, c.caller.is_admin()).await?;
            invalidate_team(&state, &id);
            Ok(json!({"team_id": id, "data": team_json(&team)}))
        }
        .await,
    )
}

async fn delete(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(
        async {
            let ids = ids_listed(&body, "team_ids", EntityKind::Team)?;
            let (_, deleted) = TEAM_GROUP.delete(&c, &ids).await?;
            for uid in &deleted {
                invalidate_user(&state, uid);
            }
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

async fn list(c: Ctx, q: web::Query<ListQuery>) -> HttpResponse {
    respond(
        async {
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

async fn member_add(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(
        async {
            let (id, _) = managed_team(&c, &body, "add members").await?;
            let wanted = parse_members(body.get("member"), "member")?;
            if wanted.is_empty() {
                return Err(GatewayError::bad_param("member", "'member' is required"));
            }
            let (team, users) = add_members(&state, &c, &id, &wanted).await?;
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

async fn member_delete(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(
        async {
            let (id, _) = managed_team(&c, &body, "remove members").await?;
            // The member's id: as given, or the id of the user with the given email (else the
            // email itself, which no member has).
            let user_id = match user_id_or_email(
                &body,
                "user_id",
                "'user_id' or 'user_email' is required",
            )? {
                (Some(u), _) => u,
                (None, e) => {
                    let e = e.unwrap_or_default();
                    let user = c.store.find_entity_by_alias(EntityKind::User, &e).await?;
                    user.map_or(e, |u| u.id)
                }
            };
            // One transaction: the member leaves the team's list and the team leaves the user's
            // list, and the user's keys of this team are deleted.
            let (tid, uid) = (id.clone(), user_id.clone());
            let done = TEAM_GROUP
                .change_members(&c, &id, vec![user_id.clone()], move |team, user_row, _| {
                    // LiteLLM answers 400 for a user who is not a member.
                    if !TEAM_GROUP.unlink_member(team, &uid) {
                        return Err(StoreError::Invalid {
                            field: "user_id".into(),
                            message: format!("user {uid} is not a member of team {tid}"),
                        });
                    }
                    if let Some(user) = user_row.first_mut().and_then(|r| r.record.as_mut()) {
                        TEAM_GROUP.unlink_user(user, &tid);
                    }
                    Ok(TxEffects {
                        delete_keys: vec![KeyScope {
                            team_id: Some(tid),
                            user_id: Some(uid),
                        }],
                        ..TxEffects::default()
                    })
                })
                .await?;
            let team = done
                .entities
                .into_iter()
                .find(|l| l.kind == EntityKind::Team)
                .and_then(|l| l.record)
                .expect("the team was written");
            invalidate_team(&state, &id);
            invalidate_user(&state, &user_id);
            Ok(Value::Object(team_json(&team)))
        }
        .await,
    )
}

/// `/team/member_update`: change a member's `role` and/or `max_budget_in_team`. Proxy admins and
/// the team's admins.
async fn member_update(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(
        async {
            let (id, _) = managed_team(&c, &body, "update members").await?;
            let (user_id, email) =
                user_id_or_email(&body, "user_id", "'user_id' or 'user_email' is required")?;
            let role = opt_str(&body, "role")?;
            if let Some(r) = role.as_deref().filter(|r| *r != "admin" && *r != "user") {
                return Err(GatewayError::bad_param(
                    "role",
                    format!("invalid team member role '{r}': use 'admin' or 'user'"),
                ));
            }
            let budget = match body.get("max_budget_in_team") {
                None => None,
                Some(Value::Null) => Some(Value::Null),
                Some(v) => match v.as_f64() {
                    Some(b) if b.is_finite() && b >= 0.0 => Some(v.clone()),
                    _ => {
                        return Err(GatewayError::bad_param(
                            "max_budget_in_team",
                            "'max_budget_in_team' must be a non-negative number",
                        ))
                    }
                },
            };
            let tid = id.clone();
            let done = TEAM_GROUP
                .change_members(&c, &id, Vec::new(), move |team, _, _| {
                    let mut list = members(team);
                    let Some(m) = list
                        .iter_mut()
                        .find(|m| match &user_id {
                            Some(u) => m.get("user_id").and_then(Value::as_str) == Some(u),
                            None => m.get("user_email").and_then(Value::as_str) == email.as_deref(),
                        })
                        .and_then(Value::as_object_mut)
                    else {
                        return Err(StoreError::NotFound(format!(
                            "user {} is not a member of team {tid}",
                            user_id.or(email).unwrap_or_default()
                        )));
                    };
                    if let Some(r) = role {
                        m.insert("role".into(), Value::String(r));
                    }
                    if let Some(b) = budget {
                        m.insert("max_budget_in_team".into(), b);
                    }
                    team.data
                        .insert("members_with_roles".into(), Value::Array(list));
                    Ok(TxEffects::default())
                })
                .await?;
            invalidate_team(&state, &id);
            let team = done.entities.into_iter().next().and_then(|l| l.record);
            let member = team
                .as_ref()
                .map(members)
                .unwrap_or_default()
                .into_iter()
                .find(|m| match opt_str(&body, "user_id").ok().flatten() {
                    Some(u) => m.get("user_id").and_then(Value::as_str) == Some(u.as_str()),
                    None => {
                        m.get("user_email").and_then(Value::as_str)
                            == opt_str(&body, "user_email").ok().flatten().as_deref()
                    }
                })
                .unwrap_or(Value::Null);
            Ok(json!({
                "team_id": id,
                "user_id": member.get("user_id"),
                "user_email": member.get("user_email"),
                "role": member.get("role"),
                "max_budget_in_team": member.get("max_budget_in_team"),
            }))
        }
        .await,
    )
}

async fn set_blocked(
    state: &AppState,
    c: Ctx,
    body: Body,
    blocked: bool,
) -> Result<Value, GatewayError> {
    let id = team_id_of(&body)?;
    TEAM.find(&c, &id).await?;
    let teams = TEAM.set_blocked(&c, vec![id.clone()], blocked).await?;
    invalidate_team(state, &id);
    Ok(teams
        .first()
        .map_or(Value::Null, |t| Value::Object(team_json(t))))
}

async fn block(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(set_blocked(&state, c, body, true).await)
}

async fn unblock(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(set_blocked(&state, c, body, false).await)
}

/// How [`change_team_models`] changes a team's `models`.
pub(super) enum ModelsChange {
    /// Add these names (those already listed stay once).
    Add(Vec<String>),
    /// Add these names only when the list restricts the team (an empty list, `*` or
    /// `all-proxy-models` already allows every model, and adding a name would narrow it).
    AddIfRestricted(Vec<String>),
    /// Remove these names.
    Remove(Vec<String>),
}

/// Change team `team_id`'s `models` in one transaction on the locked team, then forget its
/// cached keys. Returns the team as stored.
pub(super) async fn change_team_models(
    state: &AppState,
    c: &Ctx,
    team_id: &str,
    change: ModelsChange,
) -> Result<EntityRecord, GatewayError> {
    use crate::keys::string_list;
    let done = TEAM_GROUP
        .change_members(c, team_id, Vec::new(), move |team, _, _| {
            let mut models = string_list(&team.data, "models");
            let open =
                models.is_empty() || models.iter().any(|m| m == "*" || m == "all-proxy-models");
            match change {
                ModelsChange::AddIfRestricted(_) if open => {}
                ModelsChange::Add(add) | ModelsChange::AddIfRestricted(add) => {
                    for m in add {
                        if !models.contains(&m) {
                            models.push(m);
                        }
                    }
                }
                ModelsChange::Remove(remove) => models.retain(|m| !remove.contains(m)),
            }
            team.data.insert("models".into(), json!(models));
            Ok(TxEffects::default())
        })
        .await?;
    invalidate_team(state, team_id);
    Ok(done
        .entities
        .into_iter()
        .next()
        .and_then(|l| l.record)
        .expect("the team was written"))
}

/// The `models` a `/team/model/add|delete` body lists (at least one).
fn models_listed(body: &Map<String, Value>) -> Result<Vec<String>, GatewayError> {
    let models = str_list(body, "models")?;
    if models.is_empty() {
        return Err(GatewayError::bad_param(
            "models",
            "'models' is required: a list of model names",
        ));
    }
    Ok(models)
}

/// `/team/model/add` `{team_id, models}`: add model names to the team's `models` (proxy admins
/// and the team's admins).
async fn model_add(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(
        async {
            let (id, _) = managed_team(&c, &body, "modify team models").await?;
            let models = models_listed(&body)?;
            let team = change_team_models(&state, &c, &id, ModelsChange::Add(models)).await?;
            Ok(Value::Object(team_json(&team)))
        }
        .await,
    )
}

/// `/team/model/delete` `{team_id, models}`: remove model names from the team's `models` (proxy
/// admins and the team's admins).
async fn model_delete(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(
        async {
            let (id, _) = managed_team(&c, &body, "modify team models").await?;
            let models = models_listed(&body)?;
            let team = change_team_models(&state, &c, &id, ModelsChange::Remove(models)).await?;
            Ok(Value::Object(team_json(&team)))
        }
        .await,
    )
}
