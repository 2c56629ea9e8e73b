//! Budgets: `/budget/new`, `/budget/info`, `/budget/update`, `/budget/delete`, `/budget/list`.
//! A budget is a reusable set of limits (`max_budget`, rpm/tpm, `budget_duration`…) that keys,
//! end users and organizations point at by `budget_id`. Proxy admins write; viewers read.

use super::routes::{Access, Routes};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::manage::{
    apply_fields, body_object, ctx, entity_json, opt_str, respond, str_list, Kind,
};
use crate::error::GatewayError;
use crate::keys;
use crate::state::AppState;
use crate::store::{EntityKind, EntityRecord};
use crate::time::{iso8601, now_ms};

pub fn configure(r: &mut Routes) {
    r.post("/budget/new", Access::Admin, new)
        .post("/budget/info", Access::ReadAll, info)
        .post("/budget/update", Access::Admin, update)
        .post("/budget/delete", Access::Admin, delete)
        .get("/budget/list", Access::ReadAll, list);
}

/// Budget fields kept in the record's `data`. Nothing else is stored.
const BUDGET_FIELDS: &[(&str, Kind)] = &[
    ("max_budget", Kind::Number),
    ("soft_budget", Kind::Number),
    ("max_parallel_requests", Kind::Integer),
    ("tpm_limit", Kind::Integer),
    ("rpm_limit", Kind::Integer),
    ("budget_duration", Kind::Duration),
    ("model_max_budget", Kind::BudgetMap),
];

/// Defaults LiteLLM shows for budget fields that were never set.
const BUDGET_DEFAULTS: &[&str] = &[
    "max_budget",
    "soft_budget",
    "max_parallel_requests",
    "tpm_limit",
    "rpm_limit",
    "budget_duration",
    "budget_reset_at",
    "model_max_budget",
];

/// When the body sets `budget_duration`: check it and set `budget_reset_at` to `from` + the
/// duration (or clear it with the duration). Shared by every entity with a budget.
pub(super) fn apply_budget_duration(
    body: &Map<String, Value>,
    data: &mut Map<String, Value>,
    from: i64,
) -> Result<(), GatewayError> {
    match body.get("budget_duration") {
        None => Ok(()),
        Some(Value::Null) => {
            data.remove("budget_reset_at");
            Ok(())
        }
        Some(Value::String(d)) => {
            let ms = keys::parse_duration(d).ok_or_else(|| {
                GatewayError::bad_param(
                    "budget_duration",
                    format!("invalid budget_duration '{d}': {}", keys::DURATION_HINT),
                )
            })?;
            data.insert("budget_reset_at".into(), Value::String(iso8601(from + ms)));
            Ok(())
        }
        Some(_) => Err(GatewayError::bad_param(
            "budget_duration",
            "'budget_duration' must be a string such as \"30d\"",
        )),
    }
}

/// An explicit `budget_reset_at` (ISO 8601), normalized; it wins over the one a duration implies.
fn apply_reset_at(
    body: &Map<String, Value>,
    data: &mut Map<String, Value>,
) -> Result<(), GatewayError> {
    match body.get("budget_reset_at") {
        None => Ok(()),
        Some(Value::Null) => {
            data.remove("budget_reset_at");
            Ok(())
        }
        Some(Value::String(s)) => {
            let ms = crate::time::parse(s).ok_or_else(|| {
                GatewayError::bad_param(
                    "budget_reset_at",
                    "'budget_reset_at' must be an ISO 8601 timestamp",
                )
            })?;
            data.insert("budget_reset_at".into(), Value::String(iso8601(ms)));
            Ok(())
        }
        Some(_) => Err(GatewayError::bad_param(
            "budget_reset_at",
            "'budget_reset_at' must be an ISO 8601 timestamp",
        )),
    }
}

fn budget_json(e: &EntityRecord) -> Value {
    let mut out = Map::new();
    for name in BUDGET_DEFAULTS {
        out.insert((*name).to_string(), Value::Null);
    }
    out.extend(entity_json(e, "budget_id", None));
    Value::Object(out)
}

async fn new(state: web::Data<AppState>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    respond(
        async {
            let c = ctx(&state, &req).await?;
            c.caller.require_admin("create budgets")?;
            let body = body_object(&req, payload).await?;
            let id =
                opt_str(&body, "budget_id")?.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let now = now_ms();
            let mut data = Map::new();
            apply_fields(&body, BUDGET_FIELDS, &mut data)?;
            apply_budget_duration(&body, &mut data, now)?;
            apply_reset_at(&body, &mut data)?;
            let record = EntityRecord {
                id,
                alias: None,
                spend: 0.0,
                blocked: false,
                created_at: now,
                updated_at: now,
                created_by: Some(c.caller.actor_id()),
                updated_by: Some(c.caller.actor_id()),
                data,
            };
            c.store.insert_entity(EntityKind::Budget, &record).await?;
            Ok(budget_json(&record))
        }
        .await,
    )
}

async fn info(state: web::Data<AppState>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    respond(
        async {
            let c = ctx(&state, &req).await?;
            c.caller.require_read_all("read budgets")?;
            let body = body_object(&req, payload).await?;
            let ids = str_list(&body, "budgets")?;
            if ids.is_empty() {
                return Err(GatewayError::bad_param(
                    "budgets",
                    "'budgets' must list at least one budget id",
                ));
            }
            let mut out = Vec::new();
            for id in &ids {
                out.push(budget_json(&c.find(EntityKind::Budget, id).await?));
            }
            Ok(Value::Array(out))
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
            c.caller.require_admin("update budgets")?;
            let body = body_object(&req, payload).await?;
            let id = opt_str(&body, "budget_id")?
                .ok_or_else(|| GatewayError::bad_param("budget_id", "'budget_id' is required"))?;
            let mut record = c.find(EntityKind::Budget, &id).await?;
            let now = now_ms();
            apply_fields(&body, BUDGET_FIELDS, &mut record.data)?;
            apply_budget_duration(&body, &mut record.data, now)?;
            apply_reset_at(&body, &mut record.data)?;
            record.updated_at = now;
            record.updated_by = Some(c.caller.actor_id());
            if !c.store.update_entity(EntityKind::Budget, &record).await? {
                return Err(GatewayError::NotFound {
                    message: format!("budget {id} not found"),
                });
            }
            // End users take their limits from their budget.
            state.end_users.invalidate_where(|_| true);
            Ok(budget_json(&record))
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
            c.caller.require_admin("delete budgets")?;
            let body = body_object(&req, payload).await?;
            let id = opt_str(&body, "id")?
                .ok_or_else(|| GatewayError::bad_param("id", "'id' (the budget_id) is required"))?;
            let record = c.find(EntityKind::Budget, &id).await?;
            c.store
                .delete_entities(EntityKind::Budget, std::slice::from_ref(&id))
                .await?;
            Ok(budget_json(&record))
        }
        .await,
    )
}

#[derive(serde::Deserialize)]
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
            c.caller.require_read_all("list budgets")?;
            let records = c
                .all_or_page(EntityKind::Budget, q.page, q.page_size)
                .await?;
            Ok(json!(records.iter().map(budget_json).collect::<Vec<_>>()))
        }
        .await,
    )
}
