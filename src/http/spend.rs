//! Spend routes: `/spend/logs` (filters `request_id`, `api_key`, `user_id`, `start_date` /
//! `end_date`), `/global/spend`, and the reports built from spend-log rows:
//! `/global/spend/report` (per day, grouped by team, customer or key, with per-model detail),
//! `/global/spend/keys`, `/global/spend/teams`, `/global/spend/models` and `/spend/tags` (spend
//! per request tag). Spend per key, user and team also shows in their `/…/info`.

use super::routes::{Access, Routes};
use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::manage::{respond, Ctx};
use crate::error::GatewayError;
use crate::state::AppState;
use crate::store::{SpendFilter, SpendGroup, SpendRollup};

pub fn configure(r: &mut Routes) {
    r.get("/spend/logs", Access::ReadAll, logs)
        .get("/global/spend", Access::ReadAll, global)
        .get("/global/spend/report", Access::ReadAll, report)
        .get("/global/spend/keys", Access::ReadAll, top_keys)
        .get("/global/spend/teams", Access::ReadAll, teams)
        .get("/global/spend/models", Access::ReadAll, models)
        .get("/spend/tags", Access::ReadAll, tags);
}

#[derive(Deserialize)]
struct DatesQuery {
    start_date: Option<String>,
    end_date: Option<String>,
}

/// `GET /spend/tags?start_date=&end_date=`: spend per request tag, `[{"individual_request_tag",
/// "log_count", "total_spend"}]` by spend descending (LiteLLM's shape). Only rows written while
/// spend logs are on count.
async fn tags(c: Ctx, q: web::Query<DatesQuery>) -> HttpResponse {
    respond(
        async {
            let (start, end) = date_range(&q.start_date, &q.end_date)?;
            let rows = c.store.spend_by_tag(start, end).await?;
            Ok(Value::Array(
                rows.into_iter()
                    .map(|t| {
                        json!({
                            "individual_request_tag": t.tag,
                            "log_count": t.requests,
                            "total_spend": t.spend,
                        })
                    })
                    .collect(),
            ))
        }
        .await,
    )
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

/// `start_date` / `end_date` as unix ms; an end date given as a day includes that whole day.
fn date_range(
    start: &Option<String>,
    end: &Option<String>,
) -> Result<(Option<i64>, Option<i64>), GatewayError> {
    let start_ms = date("start_date", start)?;
    let end_ms = date("end_date", end)?.map(|e| {
        if end.as_deref().is_some_and(|d| d.len() == 10) {
            e + DAY_MS
        } else {
            e
        }
    });
    Ok((start_ms, end_ms))
}

const DAY_MS: i64 = 86_400_000;

#[derive(Deserialize)]
struct ReportQuery {
    start_date: Option<String>,
    end_date: Option<String>,
    /// `team` (default), `customer` or `api_key`.
    group_by: Option<String>,
    api_key: Option<String>,
    internal_user_id: Option<String>,
    team_id: Option<String>,
    customer_id: Option<String>,
}

/// `GET /global/spend/report`: `[{"group_by_day", "teams"|"customers"|"api_keys": [{<name>,
/// "total_spend", "metadata": [{"model", "spend", "total_tokens"}]}]}]`, days ascending, groups by
/// spend descending.
async fn report(c: Ctx, q: web::Query<ReportQuery>) -> HttpResponse {
    respond(
        async {
            let (start, end) = date_range(&q.start_date, &q.end_date)?;
            let (group, list, name) = match q.group_by.as_deref().unwrap_or("team") {
                "team" => (SpendGroup::Team, "teams", "team_name"),
                "customer" => (SpendGroup::EndUser, "customers", "customer"),
                "api_key" => (SpendGroup::Key, "api_keys", "api_key"),
                other => {
                    return Err(GatewayError::bad_param(
                        "group_by",
                        format!("group_by must be team, customer or api_key, not '{other}'"),
                    ))
                }
            };
            let filter = SpendFilter {
                api_key: q.api_key.as_deref().map(crate::keys::token_of),
                user_id: q.internal_user_id.clone(),
                team_id: q.team_id.clone(),
                end_user: q.customer_id.clone(),
                start_time: start,
                end_time: end,
                ..SpendFilter::default()
            };
            let rows = c.store.spend_rollup(&filter, group).await?;
            Ok(daily_report(&rows, list, name))
        }
        .await,
    )
}

/// One group's spend on one day, and its per-model rows.
type DayGroup = (f64, Vec<Value>);

/// Shape rollup rows into LiteLLM's daily report.
fn daily_report(rows: &[SpendRollup], list: &str, name: &str) -> Value {
    // day → group → (spend, per-model rows)
    let mut days: BTreeMap<i64, BTreeMap<Option<&str>, DayGroup>> = BTreeMap::new();
    for r in rows {
        let entry = days
            .entry(r.day)
            .or_default()
            .entry(r.group.as_deref())
            .or_default();
        entry.0 += r.spend;
        entry.1.push(json!({
            "model": r.model,
            "spend": r.spend,
            "total_tokens": r.total_tokens,
            "api_requests": r.requests,
        }));
    }
    Value::Array(
        days.into_iter()
            .map(|(day, groups)| {
                let mut groups: Vec<_> = groups.into_iter().collect();
                groups.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
                let entries: Vec<Value> = groups
                    .into_iter()
                    .map(|(group, (total, models))| {
                        json!({
                            name: group.unwrap_or("Unassigned"),
                            "total_spend": total,
                            "metadata": models,
                        })
                    })
                    .collect();
                json!({
                    "group_by_day": crate::time::iso8601(day * DAY_MS)[..10],
                    list: entries,
                })
            })
            .collect(),
    )
}

/// Rollup rows summed per group value over every day, by spend descending.
fn totals(
    rows: &[SpendRollup],
    key: impl Fn(&SpendRollup) -> Option<String>,
) -> Vec<(Option<String>, f64, i64)> {
    let mut sums: BTreeMap<Option<String>, (f64, i64)> = BTreeMap::new();
    for r in rows {
        let e = sums.entry(key(r)).or_default();
        e.0 += r.spend;
        e.1 += r.total_tokens;
    }
    let mut out: Vec<_> = sums.into_iter().map(|(k, (s, t))| (k, s, t)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// Every spend-log row rolled up by day, `group` and model group.
async fn all_spend(c: &Ctx, group: SpendGroup) -> Result<Vec<SpendRollup>, GatewayError> {
    Ok(c.store.spend_rollup(&SpendFilter::default(), group).await?)
}

#[derive(Deserialize)]
struct LimitQuery {
    limit: Option<usize>,
}

/// `GET /global/spend/keys?limit=N`: the keys that spent most, `[{"api_key", "total_spend",
/// "key_alias", "key_name"}]`.
async fn top_keys(c: Ctx, q: web::Query<LimitQuery>) -> HttpResponse {
    respond(
        async {
            let rows = all_spend(&c, SpendGroup::Key).await?;
            let mut out = Vec::new();
            for (token, spend, _) in totals(&rows, |r| r.group.clone())
                .into_iter()
                .take(q.limit.unwrap_or(5))
            {
                let token = token.unwrap_or_default();
                let key = if token.is_empty() {
                    None
                } else {
                    c.store.get_key(&token).await?
                };
                out.push(json!({
                    "api_key": token,
                    "total_spend": spend,
                    "key_alias": key.as_ref().and_then(|k| k.key_alias.clone()),
                    "key_name": key.as_ref().map(|k| k.key_name.clone()),
                }));
            }
            Ok(Value::Array(out))
        }
        .await,
    )
}

/// `GET /global/spend/teams`: spend per team per day (`daily_spend`) and in all (`teams`).
async fn teams(c: Ctx) -> HttpResponse {
    respond(
        async {
            let rows = all_spend(&c, SpendGroup::Team).await?;
            let mut daily: BTreeMap<i64, BTreeMap<String, f64>> = BTreeMap::new();
            for r in &rows {
                let team = r.group.clone().unwrap_or_else(|| "Unassigned".into());
                *daily.entry(r.day).or_default().entry(team).or_default() += r.spend;
            }
            let daily_spend: Vec<Value> = daily
                .into_iter()
                .map(|(day, teams)| {
                    let mut v = serde_json::Map::new();
                    v.insert(
                        "date".into(),
                        Value::String(crate::time::iso8601(day * DAY_MS)[..10].to_string()),
                    );
                    for (team, spend) in teams {
                        v.insert(team, json!(spend));
                    }
                    Value::Object(v)
                })
                .collect();
            let teams: Vec<Value> = totals(&rows, |r| r.group.clone())
                .into_iter()
                .map(|(team, spend, tokens)| {
                    json!({"team_id": team, "total_spend": spend, "total_tokens": tokens})
                })
                .collect();
            Ok(json!({"daily_spend": daily_spend, "teams": teams}))
        }
        .await,
    )
}

/// `GET /global/spend/models?limit=N`: spend per model group, `[{"model", "total_spend"}]`.
async fn models(c: Ctx, q: web::Query<LimitQuery>) -> HttpResponse {
    respond(
        async {
            let rows = all_spend(&c, SpendGroup::Team).await?;
            Ok(Value::Array(
                totals(&rows, |r| r.model.clone())
                    .into_iter()
                    .take(q.limit.unwrap_or(usize::MAX))
                    .map(|(model, spend, tokens)| {
                        json!({"model": model, "total_spend": spend, "total_tokens": tokens})
                    })
                    .collect(),
            ))
        }
        .await,
    )
}

async fn logs(c: Ctx, q: web::Query<LogsQuery>) -> HttpResponse {
    respond(
        async {
            let (start, end) = date_range(&q.start_date, &q.end_date)?;
            let filter = SpendFilter {
                request_id: q.request_id.clone(),
                api_key: q.api_key.as_deref().map(crate::keys::token_of),
                user_id: q.user_id.clone(),
                start_time: start,
                end_time: end,
                limit: 10_000,
                ..SpendFilter::default()
            };
            let rows = c.store.list_spend_logs(&filter).await?;
            Ok(Value::Array(
                rows.iter().map(crate::spend::log_json).collect(),
            ))
        }
        .await,
    )
}

async fn global(state: web::Data<AppState>, c: Ctx) -> HttpResponse {
    respond(
        async {
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
