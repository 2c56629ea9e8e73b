//! Internal users: `/user/new`, `/user/info`, `/user/update`, `/user/delete`, `/user/list`,
//! `/user/daily/activity`.
//!
//! What creating, updating and deleting a user does is in [`crate::management::users`]. Proxy
//! admins write; viewers read every user; a user reads itself and may change only its own
//! harmless fields.

use super::routes::{Access, Routes};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::manage::{self, key_json, respond, Body, Ctx};
use super::teams::team_json;
use crate::auth::Role;
use crate::error::GatewayError;
use crate::management::activity::ActivityQuery;
use crate::management::users;
use crate::state::AppState;
use crate::store::{EntityKind, KeyFilter};

pub fn configure(r: &mut Routes) {
    r.post("/user/new", Access::Admin, new)
        .get("/user/info", Access::Management, info)
        .post("/user/update", Access::Writers, update)
        .post("/user/delete", Access::Admin, delete)
        .get("/user/list", Access::ReadAll, list)
        .get("/user/daily/activity", Access::Management, daily_activity);
}

/// `GET /user/daily/activity`: spend, tokens and requests per day from the spend logs (see
/// [`crate::management::activity`]).
async fn daily_activity(c: Ctx, q: web::Query<ActivityQuery>) -> HttpResponse {
    respond(crate::management::activity::daily_activity(&c, &q).await)
}

pub(super) use crate::management::users::{invalidate_user, user_json};

async fn new(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(users::create(&state, &c, &body).await)
}

#[derive(Deserialize)]
struct InfoQuery {
    user_id: Option<String>,
}

async fn info(c: Ctx, q: web::Query<InfoQuery>) -> HttpResponse {
    respond(
        async {
            let id = q
                .user_id
                .as_deref()
                .or(c.caller.user_id())
                .map(str::to_string);
            let id =
                id.ok_or_else(|| GatewayError::bad_param("user_id", "'user_id' is required"))?;
            if !c.caller.can_read_user(&id) {
                return Err(GatewayError::Forbidden {
                    message: "you may only read your own user".into(),
                });
            }
            let user = c.find(EntityKind::User, &id).await?;
            let filter = KeyFilter {
                user_id: Some(id.clone()),
                ..KeyFilter::default()
            };
            let keys: Vec<Value> = c
                .all_keys(&filter)
                .await?
                .iter()
                .map(|k| Value::Object(key_json(k)))
                .collect();
            let mut teams = Vec::new();
            for t in users::team_ids_of(&user) {
                if let Some(team) = c.store.get_entity(EntityKind::Team, &t).await? {
                    teams.push(Value::Object(team_json(&team)));
                }
            }
            Ok(json!({"user_id": id, "user_info": user_json(&user), "keys": keys, "teams": teams}))
        }
        .await,
    )
}

async fn update(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(users::update(&state, &c, &body).await)
}

async fn delete(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(users::delete(&state, &c, &body).await)
}

#[derive(Deserialize)]
struct ListQuery {
    page: Option<u64>,
    page_size: Option<u64>,
    role: Option<String>,
    user_ids: Option<String>,
}

async fn list(c: Ctx, q: web::Query<ListQuery>) -> HttpResponse {
    respond(
        async {
            let role = match q.role.as_deref().filter(|r| !r.is_empty()) {
                None => None,
                Some(r) => Some(Role::parse(r).ok_or_else(|| {
                    GatewayError::bad_param("role", format!("invalid role '{r}'"))
                })?),
            };
            let wanted_ids: Option<Vec<&str>> = q.user_ids.as_deref().map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect()
            });
            let page = manage::page(q.page, q.page_size, 25);
            let (users, total) = if role.is_none() && wanted_ids.is_none() {
                c.store.list_entities(EntityKind::User, page).await?
            } else {
                let mut all = c.all_entities(EntityKind::User).await?;
                all.retain(|u| {
                    role.is_none_or(|r| {
                        user_json(u).get("user_role").and_then(Value::as_str) == Some(r.as_str())
                    }) && wanted_ids
                        .as_ref()
                        .is_none_or(|ids| ids.contains(&u.id.as_str()))
                });
                let total = all.len() as u64;
                let users = all
                    .into_iter()
                    .skip(page.offset() as usize)
                    .take(page.size as usize)
                    .collect();
                (users, total)
            };
            Ok(json!({
                "users": users.iter().map(|u| Value::Object(user_json(u))).collect::<Vec<_>>(),
                "total": total,
                "page": page.page,
                "page_size": page.size,
                "total_pages": total.div_ceil(page.size),
            }))
        }
        .await,
    )
}
