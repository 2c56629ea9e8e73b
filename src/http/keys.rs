//! Virtual-key management: `/key/generate`, `/key/info`, `/key/update`, `/key/delete`,
//! `/key/list`, `/key/regenerate` (and `/key/{key}/regenerate`), `/key/block`, `/key/unblock`.
//! What each does, and who may do what, is in [`crate::management::keys`]; the handlers read the
//! request and answer.

use super::routes::{Access, Routes};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::manage::{self, key_json, respond, Body, Ctx};
use crate::error::GatewayError;
use crate::management::keys::{self, find_key};
use crate::state::AppState;
use crate::store::KeyFilter;

pub fn configure(r: &mut Routes) {
    r.post("/key/generate", Access::Writers, generate)
        .get("/key/info", Access::Management, info)
        .post("/key/update", Access::Writers, update)
        .post("/key/delete", Access::Writers, delete)
        .get("/key/list", Access::Management, list)
        .post("/key/regenerate", Access::Writers, regenerate)
        .post("/key/{key}/regenerate", Access::Writers, regenerate_path)
        .post("/key/block", Access::Admin, block)
        .post("/key/unblock", Access::Admin, unblock);
}

async fn generate(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(keys::generate(&state, &c, &body).await)
}

#[derive(Deserialize)]
struct InfoQuery {
    key: Option<String>,
}

async fn info(c: Ctx, q: web::Query<InfoQuery>) -> HttpResponse {
    respond(
        async {
            let asked = q.key.as_deref().or(c.caller.token());
            let (record, team) = find_key(&c, asked, None).await?;
            if !c.caller.can_read_key(&record, team.as_ref()) {
                return Err(GatewayError::Forbidden {
                    message: "you may only read your own keys".into(),
                });
            }
            let mut info = key_json(&record);
            info.remove("token");
            Ok(json!({"key": asked, "info": info}))
        }
        .await,
    )
}

async fn update(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(keys::update(&state, &c, &body).await)
}

async fn delete(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(keys::delete(&state, &c, &body).await)
}

#[derive(Deserialize)]
struct ListQuery {
    page: Option<u64>,
    size: Option<u64>,
    user_id: Option<String>,
    team_id: Option<String>,
    organization_id: Option<String>,
    key_alias: Option<String>,
    key_hash: Option<String>,
    /// Tollgate's own: a case-insensitive substring of the alias, the key name or the owner.
    search: Option<String>,
    return_full_object: Option<bool>,
    include_team_keys: Option<bool>,
}

async fn list(c: Ctx, q: web::Query<ListQuery>) -> HttpResponse {
    respond(
        async {
            let mut filter = KeyFilter {
                user_id: q.user_id.clone(),
                team_id: q.team_id.clone(),
                organization_id: q.organization_id.clone(),
                key_alias: q.key_alias.clone(),
                token: q.key_hash.clone(),
                search: q
                    .search
                    .as_deref()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
                or_team_ids: Vec::new(),
            };
            if filter.search.as_ref().is_some_and(|s| s.len() > 256) {
                return Err(GatewayError::bad_param(
                    "search",
                    "'search' must be at most 256 characters",
                ));
            }
            if !c.caller.can_read_all() {
                let own = c.caller.user_id().map(str::to_string);
                if q.user_id.is_some() && q.user_id != own {
                    return Err(GatewayError::Forbidden {
                        message: "you may only list your own keys".into(),
                    });
                }
                match own {
                    Some(own) => filter.user_id = Some(own),
                    // A key without a user lists itself only.
                    None => filter.token = c.caller.token().map(str::to_string),
                }
                if q.include_team_keys.unwrap_or(false) {
                    if let Some(team) = c.caller.principal().and_then(|p| p.team.as_ref()) {
                        if c.caller.is_team_admin(team) {
                            filter.or_team_ids.push(team.id.clone());
                        }
                    }
                }
            }
            let page = manage::page(q.page, q.size, 10);
            let (records, total) = c.store.list_keys(&filter, page).await?;
            let keys: Vec<Value> = if q.return_full_object.unwrap_or(false) {
                records.iter().map(|r| Value::Object(key_json(r))).collect()
            } else {
                records
                    .iter()
                    .map(|r| Value::String(r.token.clone()))
                    .collect()
            };
            Ok(json!({
                "keys": keys,
                "total_count": total,
                "current_page": page.page,
                "total_pages": total.div_ceil(page.size),
            }))
        }
        .await,
    )
}

async fn regenerate(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(keys::regenerate(&state, &c, body.0, None).await)
}

async fn regenerate_path(
    state: web::Data<AppState>,
    c: Ctx,
    body: Body,
    path: web::Path<String>,
) -> HttpResponse {
    respond(keys::regenerate(&state, &c, body.0, Some(path.into_inner())).await)
}

async fn block(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(keys::set_blocked(&state, &c, &body, true).await)
}

async fn unblock(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(keys::set_blocked(&state, &c, &body, false).await)
}
