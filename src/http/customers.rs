//! End users (customers): the callers' own users, named per request by `user`. Every route is
//! served under both `/customer/…` and `/end_user/…`: `new`, `info`, `update`, `delete`, `block`,
//! `unblock`, `list`. Proxy admins write; viewers read.

use super::routes::{Access, Routes};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::manage::{
    apply_fields, body_object, ctx, entity_json, opt_str, respond, str_list, Ctx, Kind,
};
use crate::error::GatewayError;
use crate::state::AppState;
use crate::store::{EntityKind, EntityRecord};
use crate::time::now_ms;

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

/// End-user fields kept in the record's `data`. Nothing else is stored.
const END_USER_FIELDS: &[(&str, Kind)] = &[
    ("max_budget", Kind::Number),
    ("budget_id", Kind::Str),
    ("allowed_model_region", Kind::Str),
    ("default_model", Kind::Str),
    ("models", Kind::StrList),
    ("tpm_limit", Kind::Integer),
    ("rpm_limit", Kind::Integer),
    ("max_parallel_requests", Kind::Integer),
    ("budget_duration", Kind::Duration),
];

/// The budget fields LiteLLM shows under `litellm_budget_table`.
const BUDGET_FIELDS: &[&str] = &[
    "max_budget",
    "tpm_limit",
    "rpm_limit",
    "max_parallel_requests",
    "budget_duration",
    "budget_reset_at",
];

fn end_user_json(e: &EntityRecord) -> Value {
    let mut out = Map::new();
    for f in ["allowed_model_region", "default_model", "budget_id"] {
        out.insert(f.into(), Value::Null);
    }
    out.insert("models".into(), Value::Array(Vec::new()));
    out.extend(entity_json(e, "user_id", Some("alias")));
    let budget: Map<String, Value> = BUDGET_FIELDS
        .iter()
        .map(|f| {
            (
                (*f).to_string(),
                e.data.get(*f).cloned().unwrap_or(Value::Null),
            )
        })
        .collect();
    out.insert("litellm_budget_table".into(), Value::Object(budget));
    Value::Object(out)
}

/// Check what `apply_fields` cannot: the region and the budget the body names.
async fn validate(c: &Ctx, body: &Map<String, Value>) -> Result<(), GatewayError> {
    if let Some(region) = opt_str(body, "allowed_model_region")? {
        if region != "eu" && region != "us" {
            return Err(GatewayError::bad_param(
                "allowed_model_region",
                format!("invalid allowed_model_region '{region}': use 'eu' or 'us'"),
            ));
        }
    }
    if let Some(b) = opt_str(body, "budget_id")? {
        if c.store.get_entity(EntityKind::Budget, &b).await?.is_none() {
            return Err(GatewayError::bad_param(
                "budget_id",
                format!("budget {b} does not exist"),
            ));
        }
    }
    Ok(())
}

fn blocked_of(body: &Map<String, Value>) -> Result<Option<bool>, GatewayError> {
    match body.get("blocked") {
        None | Some(Value::Null) => Ok(None),
        Some(b) => b
            .as_bool()
            .map(Some)
            .ok_or_else(|| GatewayError::bad_param("blocked", "'blocked' must be a boolean")),
    }
}

fn id_of(body: &Map<String, Value>) -> Result<String, GatewayError> {
    opt_str(body, "user_id")?
        .ok_or_else(|| GatewayError::bad_param("user_id", "'user_id' is required"))
}

/// The end users a body lists in `user_ids`; every one must exist.
async fn listed(c: &Ctx, body: &Map<String, Value>) -> Result<Vec<EntityRecord>, GatewayError> {
    let ids = str_list(body, "user_ids")?;
    if ids.is_empty() {
        return Err(GatewayError::bad_param(
            "user_ids",
            "'user_ids' must list at least one end user",
        ));
    }
    let mut out = Vec::new();
    for id in &ids {
        out.push(c.find(EntityKind::EndUser, id).await?);
    }
    Ok(out)
}

async fn new(state: web::Data<AppState>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    respond(
        async {
            let c = ctx(&state, &req).await?;
            c.caller.require_admin("create end users")?;
            let body = body_object(&req, payload).await?;
            let id = id_of(&body)?;
            validate(&c, &body).await?;
            let now = now_ms();
            let mut data = Map::new();
            apply_fields(&body, END_USER_FIELDS, &mut data)?;
            super::budgets::apply_budget_duration(&body, &mut data, now)?;
            let record = EntityRecord {
                id,
                alias: opt_str(&body, "alias")?,
                spend: 0.0,
                blocked: blocked_of(&body)?.unwrap_or(false),
                created_at: now,
                updated_at: now,
                created_by: Some(c.caller.actor_id()),
                updated_by: Some(c.caller.actor_id()),
                data,
            };
            c.store.insert_entity(EntityKind::EndUser, &record).await?;
            Ok(end_user_json(&record))
        }
        .await,
    )
}

#[derive(Deserialize)]
struct InfoQuery {
    end_user_id: Option<String>,
}

async fn info(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<InfoQuery>,
) -> HttpResponse {
    respond(
        async {
            let c = ctx(&state, &req).await?;
            c.caller.require_read_all("read end users")?;
            let id = q.end_user_id.clone().ok_or_else(|| {
                GatewayError::bad_param("end_user_id", "'end_user_id' is required")
            })?;
            Ok(end_user_json(&c.find(EntityKind::EndUser, &id).await?))
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
            c.caller.require_admin("update end users")?;
            let body = body_object(&req, payload).await?;
            let id = id_of(&body)?;
            let mut record = c.find(EntityKind::EndUser, &id).await?;
            validate(&c, &body).await?;
            let now = now_ms();
            apply_fields(&body, END_USER_FIELDS, &mut record.data)?;
            super::budgets::apply_budget_duration(&body, &mut record.data, now)?;
            if body.contains_key("alias") {
                record.alias = opt_str(&body, "alias")?;
            }
            if let Some(b) = blocked_of(&body)? {
                record.blocked = b;
            }
            record.updated_at = now;
            record.updated_by = Some(c.caller.actor_id());
            if !c.store.update_entity(EntityKind::EndUser, &record).await? {
                return Err(GatewayError::NotFound {
                    message: format!("end user {id} not found"),
                });
            }
            state.end_users.invalidate(&id);
            Ok(end_user_json(&record))
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
            c.caller.require_admin("delete end users")?;
            let body = body_object(&req, payload).await?;
            let records = listed(&c, &body).await?;
            let ids: Vec<String> = records.into_iter().map(|r| r.id).collect();
            c.store.delete_entities(EntityKind::EndUser, &ids).await?;
            for id in &ids {
                state.end_users.invalidate(id);
            }
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
    req: &HttpRequest,
    payload: web::Payload,
    blocked: bool,
) -> Result<Value, GatewayError> {
    let c = ctx(state, req).await?;
    c.caller.require_admin(if blocked {
        "block end users"
    } else {
        "unblock end users"
    })?;
    let body = body_object(req, payload).await?;
    let records = listed(&c, &body).await?;
    let mut ids = Vec::new();
    for mut record in records {
        record.blocked = blocked;
        record.updated_at = now_ms();
        record.updated_by = Some(c.caller.actor_id());
        c.store.update_entity(EntityKind::EndUser, &record).await?;
        state.end_users.invalidate(&record.id);
        ids.push(record.id);
    }
    let field = if blocked {
        "blocked_users"
    } else {
        "unblocked_users"
    };
    let mut out = Map::new();
    out.insert(field.into(), json!(ids));
    Ok(Value::Object(out))
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

#[derive(Deserialize)]
struct ListQuery {
    page: Option<u64>,
    page_size: Option<u64>,
}

async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<ListQuery>,
) -> HttpResponse {
    respond(
        async {
            let c = ctx(&state, &req).await?;
            c.caller.require_read_all("list end users")?;
            let records = c
                .all_or_page(EntityKind::EndUser, q.page, q.page_size)
                .await?;
            Ok(Value::Array(records.iter().map(end_user_json).collect()))
        }
        .await,
    )
}
