//! End users (customers): the callers' own users, named per request by `user`. Every route is
//! served under both `/customer/…` and `/end_user/…`: `new`, `info`, `update`, `delete`, `block`,
//! `unblock`, `list`. Their fields are described in [`crate::management::entities::END_USER`].
//! Proxy admins write; viewers read.

use super::routes::{Access, Routes};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::manage::{respond, Body, Ctx, ListQuery};
use crate::error::GatewayError;
use crate::management::entities::END_USER;
use crate::management::required;
use crate::state::AppState;

pub fn configure(r: &mut Routes) {
    for prefix in ["/customer", "/end_user"] {
        r.post(&format!("{prefix}/new"), Access::Admin, new)
            .get(&format!("{prefix}/info"), Access::ReadAll, info)
            .post(&format!("{prefix}/update"), Access::Admin, update)
            .post(&format!("{prefix}/delete"), Access::Admin, delete)
            .post(&format!("{prefix}/block"), Access::Admin, block)
            .post(&format!("{prefix}/unblock"), Access::Admin, unblock)
            .get(&format!("{prefix}/list"), Access::ReadAll, list);
    }
}

async fn new(c: Ctx, body: Body) -> HttpResponse {
    respond(END_USER.create(&c, &body).await.map(|e| END_USER.json(&e)))
}

#[derive(Deserialize)]
struct InfoQuery {
    end_user_id: Option<String>,
}

async fn info(c: Ctx, q: web::Query<InfoQuery>) -> HttpResponse {
    respond(
        async {
            let id = q.end_user_id.clone().ok_or_else(|| {
                GatewayError::bad_param("end_user_id", "'end_user_id' is required")
            })?;
            Ok(END_USER.json(&END_USER.find(&c, &id).await?))
        }
        .await,
    )
}

async fn update(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(
        async {
            let record = END_USER
                .update(&c, &required(&body, "user_id")?, &body, true)
                .await?;
            state.end_users.invalidate(&record.id);
            Ok(END_USER.json(&record))
        }
        .await,
    )
}

/// The ids of the end users a body lists in `user_ids` (every one must exist).
async fn listed(c: &Ctx, body: &Map<String, Value>) -> Result<Vec<String>, GatewayError> {
    let records = END_USER.listed(c, body, "user_ids").await?;
    Ok(records.into_iter().map(|r| r.id).collect())
}

async fn delete(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(
        async {
            let ids = listed(&c, &body).await?;
            END_USER.delete(&c, &ids).await?;
            ids.iter().for_each(|id| state.end_users.invalidate(id));
            Ok(json!({
                "deleted_customers": ids.len(),
                "message": format!("Successfully deleted customers with ids: {ids:?}"),
            }))
        }
        .await,
    )
}

async fn set_blocked(
    state: &AppState,
    c: &Ctx,
    body: &Map<String, Value>,
    blocked: bool,
) -> Result<Value, GatewayError> {
    let ids = END_USER
        .set_blocked(c, listed(c, body).await?, blocked)
        .await?;
    let ids: Vec<String> = ids.into_iter().map(|r| r.id).collect();
    ids.iter().for_each(|id| state.end_users.invalidate(id));
    let field = if blocked {
        "blocked_users"
    } else {
        "unblocked_users"
    };
    Ok(json!({ field: ids }))
}

async fn block(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(set_blocked(&state, &c, &body, true).await)
}

async fn unblock(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(set_blocked(&state, &c, &body, false).await)
}

async fn list(c: Ctx, q: web::Query<ListQuery>) -> HttpResponse {
    respond(END_USER.list(&c, q.page, q.page_size).await)
}
