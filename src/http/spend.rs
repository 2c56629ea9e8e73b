//! Spend routes: `/spend/logs` (filters `request_id`, `api_key`, `user_id`, `start_date` /
//! `end_date`) and `/global/spend`. Spend per key, user and team also shows in their `/…/info`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::manage::{ctx, respond};
use crate::error::GatewayError;
use crate::state::AppState;
use crate::store::SpendFilter;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/spend/logs", web::get().to(logs))
        .route("/global/spend", web::get().to(global));
}

#[derive(Deserialize)]
struct LogsQuery {
    request_id: Option<String>,
    api_key: Option<String>,
    user_id: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
}

fn date(field: &str, raw: &Option<String>) -> Result<Option<i64>, GatewayError> {
    match raw {
        None => Ok(None),
        Some(s) => crate::time::parse(s).map(Some).ok_or_else(|| {
            GatewayError::bad_param(
                field,
                format!("'{field}' must be YYYY-MM-DD or an ISO 8601 time"),
            )
        }),
    }
}

async fn logs(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<LogsQuery>,
) -> HttpResponse {
    respond(
        async {
            let c = ctx(&state, &req).await?;
            c.caller.require_read_all("read spend logs")?;
            let start = date("start_date", &q.start_date)?;
            // An end date names a whole day: include it.
            let end = date("end_date", &q.end_date)?.map(|e| {
                if q.end_date.as_deref().is_some_and(|d| d.len() == 10) {
                    e + 86_400_000
                } else {
                    e
                }
            });
            let filter = SpendFilter {
                request_id: q.request_id.clone(),
                api_key: q.api_key.as_deref().map(crate::keys::token_of),
                user_id: q.user_id.clone(),
                start_time: start,
                end_time: end,
                limit: 10_000,
            };
            let rows = c.store.list_spend_logs(&filter).await?;
            Ok(Value::Array(
                rows.iter().map(crate::spend::log_json).collect(),
            ))
        }
        .await,
    )
}

async fn global(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    respond(
        async {
            let c = ctx(&state, &req).await?;
            c.caller.require_read_all("read global spend")?;
            let spend = c.store.total_spend().await?;
            let max_budget = state
                .config
                .litellm_settings
                .get("max_budget")
                .cloned()
                .unwrap_or(Value::Null);
            Ok(json!({"spend": spend, "max_budget": max_budget}))
        }
        .await,
    )
}
