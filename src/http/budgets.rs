//! Budgets: `/budget/new`, `/budget/info`, `/budget/update`, `/budget/delete`, `/budget/list`,
//! `/budget/settings`. A budget is a reusable set of limits (`max_budget`, rpm/tpm,
//! `budget_duration`…) that keys, end users and organizations point at by `budget_id`; its fields
//! are described in [`crate::management::entities::BUDGET`]. Proxy admins write; viewers read.

use super::routes::{Access, Routes};
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::manage::{respond, Body, Ctx, ListQuery};
use crate::error::GatewayError;
use crate::management::entities::BUDGET;
use crate::management::required;
use crate::state::AppState;

pub fn configure(r: &mut Routes) {
    r.post("/budget/new", Access::Admin, new)
        .post("/budget/info", Access::ReadAll, info)
        .post("/budget/update", Access::Admin, update)
        .post("/budget/delete", Access::Admin, delete)
        .get("/budget/list", Access::ReadAll, list)
        .get("/budget/settings", Access::ReadAll, settings);
}

async fn new(c: Ctx, body: Body) -> HttpResponse {
    respond(BUDGET.create(&c, &body).await.map(|b| BUDGET.json(&b)))
}

async fn info(c: Ctx, body: Body) -> HttpResponse {
    respond(
        BUDGET
            .listed(&c, &body, "budgets")
            .await
            .map(|b| BUDGET.json_list(&b)),
    )
}

async fn update(state: web::Data<AppState>, c: Ctx, body: Body) -> HttpResponse {
    respond(
        async {
            let record = BUDGET
                .update(&c, &required(&body, "budget_id")?, &body, true)
                .await?;
            // End users take their limits from their budget.
            state.end_users.invalidate_where(|_| true);
            Ok(BUDGET.json(&record))
        }
        .await,
    )
}

async fn delete(c: Ctx, body: Body) -> HttpResponse {
    respond(
        async {
            let record = BUDGET.find(&c, &required(&body, "id")?).await?;
            BUDGET.delete(&c, std::slice::from_ref(&record.id)).await?;
            Ok(BUDGET.json(&record))
        }
        .await,
    )
}

async fn list(c: Ctx, q: web::Query<ListQuery>) -> HttpResponse {
    respond(BUDGET.list(&c, q.page, q.page_size).await)
}

#[derive(Deserialize)]
struct SettingsQuery {
    budget_id: Option<String>,
}

/// `GET /budget/settings?budget_id=…`: each budget field with its type, description, value and
/// default (LiteLLM's shape).
async fn settings(c: Ctx, q: web::Query<SettingsQuery>) -> HttpResponse {
    respond(
        async {
            let id = q
                .budget_id
                .clone()
                .filter(|id| !id.trim().is_empty())
                .ok_or_else(|| GatewayError::bad_param("budget_id", "'budget_id' is required"))?;
            Ok(BUDGET.settings(&BUDGET.find(&c, &id).await?))
        }
        .await,
    )
}
