//! Organizations: `/organization/new`, `/organization/info`, `/organization/list`,
//! `/organization/update` (PATCH), `/organization/delete` (DELETE), `/organization/member_add`,
//! `/organization/member_update` (PATCH), `/organization/member_delete` (DELETE).
//!
//! Members live in the organization's `members` (`[{"user_id","user_email","user_role",
//! "organization_id"}]`) and each member user's `organizations` lists it back. Proxy admins write;
//! viewers read.

use super::routes::{Access, Routes};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::manage::{opt_str, respond, user_id_or_email, Body, Ctx, ListQuery, MAX_ENTRIES};
use super::users::{invalidate_user, user_json};
use crate::auth::Role;
use crate::error::GatewayError;
use crate::management::entities::ORGANIZATION;
use crate::management::groups::ORGANIZATION_GROUP;
use crate::management::ids_listed;
use crate::state::AppState;
use crate::store::{EntityKind, EntityRecord, StoreError, TxEffects};
use crate::time::iso8601;

pub fn configure(r: &mut Routes) {
    r.post("/organization/new", Access::Admin, new)
        .get("/organization/info", Access::ReadAll, info)
        .get("/organization/list", Access::ReadAll, list)
        .patch("/organization/update", Access::Admin, update)
        .delete("/organization/delete", Access::Admin, delete)
        .post("/organization/member_add", Access::Admin, member_add)
        .patch("/organization/member_update", Access::Admin, member_update)
        .delete("/organization/member_delete", Access::Admin, member_delete);
}

/// Roles a user may have inside an organization.
const ORG_ROLES: &[&str] = &["org_admin", "internal_user", "internal_user_viewer"];

fn members(org: &EntityRecord) -> Vec<Value> {
    ORGANIZATION_GROUP.members(org)
}

fn member_user_id(m: &Value) -> Option<&str> {
    m.get("user_id").and_then(Value::as_str)
}

fn org_id_of(body: &Map<String, Value>) -> Result<String, GatewayError> {
    opt_str(body, "organization_id")?
        .ok_or_else(|| GatewayError::bad_param("organization_id", "'organization_id' is required"))
}

fn role_of(m: &Map<String, Value>) -> Result<Option<String>, GatewayError> {
    match opt_str(m, "role")? {
        Some(r) if !ORG_ROLES.contains(&r.as_str()) => Err(GatewayError::bad_param(
            "role",
            format!("invalid organization role '{r}': use one of {ORG_ROLES:?}"),
        )),
        r => Ok(r),
    }
}

async fn new(c: Ctx, body: Body) -> HttpResponse {
    respond(
        ORGANIZATION
            .create(&c, &body)
            .await
            .map(|o| ORGANIZATION.json(&o)),
    )
}

#[derive(Deserialize)]
struct InfoQuery {
    organization_id: Option<String>,
}

async fn info(c: Ctx, q: web::Query<InfoQuery>) -> HttpResponse {
    respond(
        async {
            let id = q.organization_id.clone().ok_or_else(|| {
                GatewayError::bad_param("organization_id", "'organization_id' is required")
            })?;
            Ok(ORGANIZATION.json(&ORGANIZATION.find(&c, &id).await?))
        }
        .await,
    )
}

async fn list(c: Ctx, q: web::Query<ListQuery>) -> HttpResponse {
    respond(ORGANIZATION.list(&c, q.page, q.page_size).await)
}

async fn update(c: Ctx, body: Body) -> HttpResponse {
    respond(
        async {
            let org = ORGANIZATION
                .update(&c, &org_id_of(&body)?, &body, true)
                .await?;
            Ok(ORGANIZATION.json(&org))
        }
        .await,
    )
}

async fn delete(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(
        async {
            let ids = ids_listed(&body, "organization_ids", EntityKind::Organization)?;
            let (orgs, users) = ORGANIZATION_GROUP.delete(&c, &ids).await?;
            users.iter().for_each(|u| invalidate_user(&state, u));
            Ok(Value::Array(
                orgs.iter().map(|o| ORGANIZATION.json(o)).collect(),
            ))
        }
        .await,
    )
}

/// The user a member entry names (by `user_id`, else `user_email`), created when unknown.
async fn resolve_user(c: &Ctx, m: &Map<String, Value>) -> Result<EntityRecord, GatewayError> {
    let (user_id, email) =
        user_id_or_email(m, "member", "a member needs a 'user_id' or a 'user_email'")?;
    c.user_for_member(user_id.as_deref(), email.as_deref())
        .await
}

async fn member_add(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(
        async {
            let id = org_id_of(&body)?;
            c.find(EntityKind::Organization, &id).await?;
            let wanted: Vec<Map<String, Value>> = match body.get("member") {
                Some(Value::Object(m)) => vec![m.clone()],
                Some(Value::Array(a)) if !a.is_empty() && a.len() <= MAX_ENTRIES => a
                    .iter()
                    .map(|v| {
                        v.as_object().cloned().ok_or_else(|| {
                            GatewayError::bad_param("member", "each member must be an object")
                        })
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err(GatewayError::bad_param(
                    "member",
                    "'member' must be {\"user_id\", \"role\"} or a list of at most 1000 of them",
                )),
            };
            // Member users first (created when unknown, an atomic insert-if-absent), then one
            // transaction with the organization and every member user locked.
            let mut wanted_users: Vec<(String, String)> = Vec::new();
            for m in &wanted {
                let role = role_of(m)?.unwrap_or_else(|| Role::InternalUser.as_str().into());
                let user = resolve_user(&c, m).await?;
                if wanted_users.iter().any(|(u, _)| *u == user.id) {
                    return Err(GatewayError::bad_param(
                        "member",
                        format!("user {} is listed twice", user.id),
                    ));
                }
                wanted_users.push((user.id, role));
            }
            let users = wanted_users.iter().map(|(u, _)| u.clone()).collect();
            let oid = id.clone();
            let done = ORGANIZATION_GROUP
                .change_members(&c, &id, users, move |org, user_rows, now| {
                    let mut list = members(org);
                    for (row, (uid, role)) in user_rows.iter_mut().zip(&wanted_users) {
                        let Some(user) = row.record.as_mut() else {
                            return Err(StoreError::NotFound(format!("user {uid} not found")));
                        };
                        if list.iter().any(|x| member_user_id(x) == Some(uid.as_str())) {
                            return Err(StoreError::Invalid {
                                field: "member".into(),
                                message: format!(
                                    "user {uid} is already a member of organization {oid}"
                                ),
                            });
                        }
                        list.push(json!({
                            "user_id": uid,
                            "user_email": user.alias,
                            "organization_id": oid,
                            "user_role": role,
                            "spend": 0.0,
                            "budget_id": null,
                            "created_at": iso8601(now),
                            "updated_at": iso8601(now),
                        }));
                        let mut orgs: Vec<Value> = user
                            .data
                            .get("organizations")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default();
                        if !orgs.iter().any(|o| o.as_str() == Some(oid.as_str())) {
                            orgs.push(Value::String(oid.clone()));
                        }
                        user.data.insert("organizations".into(), Value::Array(orgs));
                    }
                    org.data.insert("members".into(), Value::Array(list));
                    Ok(TxEffects::default())
                })
                .await?;
            let mut records = done.entities.into_iter().filter_map(|l| l.record);
            let org = records.next().expect("the organization was written");
            let users: Vec<Value> = records
                .inspect(|u| invalidate_user(&state, &u.id))
                .map(|u| Value::Object(user_json(&u)))
                .collect();
            let memberships: Vec<Value> = members(&org)
                .into_iter()
                .filter(|m| {
                    users
                        .iter()
                        .any(|u| u.get("user_id").and_then(Value::as_str) == member_user_id(m))
                })
                .collect();
            Ok(json!({
                "organization_id": id,
                "updated_users": users,
                "updated_organization_memberships": memberships,
            }))
        }
        .await,
    )
}

/// Where the member read before a transaction (`wanted`) is in the locked organization's list:
/// by its user id, else the same entry; 404 when it left meanwhile.
fn locked_member(list: &[Value], wanted: &Value, org_id: &str) -> Result<usize, StoreError> {
    list.iter()
        .position(|m| match member_user_id(wanted) {
            Some(u) => member_user_id(m) == Some(u),
            None => m == wanted,
        })
        .ok_or_else(|| {
            StoreError::NotFound(format!("the member is no longer in organization {org_id}"))
        })
}

/// The organization (`organization_id`) and its member a body names, as read.
async fn named_member(c: &Ctx, body: &Map<String, Value>) -> Result<(String, Value), GatewayError> {
    let id = org_id_of(body)?;
    let list = members(&c.find(EntityKind::Organization, &id).await?);
    let i = member_index(body, &list, &id)?;
    Ok((id, list[i].clone()))
}

/// The member named by `user_id` or `user_email` in a body, as its index in `list`.
fn member_index(
    body: &Map<String, Value>,
    list: &[Value],
    org_id: &str,
) -> Result<usize, GatewayError> {
    let (user_id, email) =
        user_id_or_email(body, "user_id", "'user_id' or 'user_email' is required")?;
    list.iter()
        .position(|m| match &user_id {
            Some(u) => member_user_id(m) == Some(u.as_str()),
            None => m.get("user_email").and_then(Value::as_str) == email.as_deref(),
        })
        .ok_or_else(|| GatewayError::NotFound {
            message: format!(
                "user {} is not a member of organization {org_id}",
                user_id.or(email).unwrap_or_default()
            ),
        })
}

async fn member_update(c: Ctx, body: Body) -> HttpResponse {
    respond(
        async {
            let (id, wanted) = named_member(&c, &body).await?;
            let role = role_of(&body)?;
            // The change itself runs on the locked organization, so it cannot undo a member
            // change committed since the read.
            let (oid, found) = (id.clone(), wanted.clone());
            let done = ORGANIZATION_GROUP
                .change_members(&c, &id, Vec::new(), move |org, _, now| {
                    let mut list = members(org);
                    let i = locked_member(&list, &found, &oid)?;
                    if let (Some(role), Some(m)) = (role, list[i].as_object_mut()) {
                        m.insert("user_role".into(), Value::String(role));
                        m.insert("updated_at".into(), Value::String(iso8601(now)));
                    }
                    org.data.insert("members".into(), Value::Array(list));
                    Ok(TxEffects::default())
                })
                .await?;
            let org = done.entities.into_iter().next().and_then(|l| l.record);
            let list = org.as_ref().map(members).unwrap_or_default();
            let updated = locked_member(&list, &wanted, &id).map(|i| list[i].clone());
            Ok(updated.unwrap_or(Value::Null))
        }
        .await,
    )
}

async fn member_delete(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(
        async {
            // Read to find the member; then one transaction with the organization and the
            // user locked (re-checking the member is still there).
            let (id, removed) = named_member(&c, &body).await?;
            let uid = member_user_id(&removed).map(str::to_string);
            let (oid, wanted) = (id.clone(), removed.clone());
            let users = uid.iter().cloned().collect();
            ORGANIZATION_GROUP
                .change_members(&c, &id, users, move |org, user_rows, _| {
                    let mut list = members(org);
                    list.remove(locked_member(&list, &wanted, &oid)?);
                    org.data.insert("members".into(), Value::Array(list));
                    if let Some(user) = user_rows.first_mut().and_then(|r| r.record.as_mut()) {
                        ORGANIZATION_GROUP.unlink_user(user, &oid);
                    }
                    Ok(TxEffects::default())
                })
                .await?;
            if let Some(uid) = &uid {
                invalidate_user(&state, uid);
            }
            Ok(json!({"organization_id": id, "deleted_member": removed}))
        }
        .await,
    )
}
