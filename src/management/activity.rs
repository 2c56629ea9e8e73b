//! Daily activity (`GET /user/daily/activity`): spend, tokens and requests per day, broken down
//! by model, model group, provider and key, computed from the spend logs, in LiteLLM's shape.

use std::collections::{BTreeMap, HashSet};

use serde_json::{json, Map, Value};

use super::Ctx;
use crate::error::GatewayError;
use crate::store::{SpendFilter, SpendLog};

/// The most spend-log rows one store read returns; longer ranges are read in several.
const BATCH: i64 = 10_000;
const DAY_MS: i64 = 86_400_000;

/// What `/user/daily/activity` asks for.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ActivityQuery {
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub model: Option<String>,
    pub api_key: Option<String>,
    pub user_id: Option<String>,
    pub page: Option<u64>,
    pub page_size: Option<u64>,
}

/// LiteLLM's `SpendMetrics`.
#[derive(Debug, Default, Clone, Copy)]
struct Metrics {
    spend: f64,
    prompt_tokens: i64,
    completion_tokens: i64,
    total_tokens: i64,
    api_requests: i64,
    successful_requests: i64,
    failed_requests: i64,
}

impl Metrics {
    fn add(&mut self, log: &SpendLog) {
        self.spend += log.spend;
        self.prompt_tokens += log.prompt_tokens;
        self.completion_tokens += log.completion_tokens;
        self.total_tokens += log.total_tokens;
        self.api_requests += 1;
        if log.status == "success" {
            self.successful_requests += 1;
        } else {
            self.failed_requests += 1;
        }
    }

    fn json(&self) -> Value {
        // Cache tokens are not recorded per request yet: always 0.
        json!({
            "spend": self.spend,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "api_requests": self.api_requests,
            "successful_requests": self.successful_requests,
            "failed_requests": self.failed_requests,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        })
    }
}

/// One breakdown entry: its metrics and what else is known about it.
#[derive(Default)]
struct Entry {
    metrics: Metrics,
    metadata: Map<String, Value>,
}

/// One day's activity.
#[derive(Default)]
struct Day {
    metrics: Metrics,
    models: BTreeMap<String, Entry>,
    model_groups: BTreeMap<String, Entry>,
    providers: BTreeMap<String, Entry>,
    api_keys: BTreeMap<String, Entry>,
}

fn breakdown_json(entries: &BTreeMap<String, Entry>) -> Value {
    Value::Object(
        entries
            .iter()
            .map(|(k, e)| {
                (
                    k.clone(),
                    json!({"metrics": e.metrics.json(), "metadata": e.metadata}),
                )
            })
            .collect(),
    )
}

/// The provider of a deployment model named `provider/model` (`unknown` without a prefix).
fn provider_of(model: &str) -> &str {
    model.split_once('/').map_or("unknown", |(p, _)| p)
}

fn day_of(ms: i64) -> String {
    crate::time::iso8601(ms.div_euclid(DAY_MS) * DAY_MS)[..10].to_string()
}

fn date(field: &str, raw: Option<&str>) -> Result<i64, GatewayError> {
    let bad = || GatewayError::bad_param(field, format!("'{field}' must be a date YYYY-MM-DD"));
    let raw =
        raw.ok_or_else(|| GatewayError::bad_param(field, format!("'{field}' is required")))?;
    if raw.len() != 10 {
        return Err(bad());
    }
    crate::time::parse(raw).ok_or_else(bad)
}

/// Every spend-log row `filter` selects (newest first), read in batches.
async fn all_logs(c: &Ctx, mut filter: SpendFilter) -> Result<Vec<SpendLog>, GatewayError> {
    filter.limit = BATCH;
    let mut out: Vec<SpendLog> = Vec::new();
    // Rows at a batch's oldest instant may go on in the next batch, which starts at that
    // instant: those already read are skipped there.
    let mut seen_at_edge: HashSet<String> = HashSet::new();
    loop {
        let batch = c.store.list_spend_logs(&filter).await?;
        let full = batch.len() as i64 >= BATCH;
        let fresh: Vec<SpendLog> = batch
            .into_iter()
            .filter(|l| !seen_at_edge.contains(&l.request_id))
            .collect();
        let Some(oldest) = fresh.last().map(|l| l.start_time).filter(|_| full) else {
            out.extend(fresh);
            return Ok(out);
        };
        if filter.end_time != Some(oldest + 1) {
            seen_at_edge.clear();
        }
        seen_at_edge.extend(
            fresh
                .iter()
                .filter(|l| l.start_time == oldest)
                .map(|l| l.request_id.clone()),
        );
        out.extend(fresh);
        filter.end_time = Some(oldest + 1);
    }
}

/// `GET /user/daily/activity`: an internal user sees its own activity (a key without a user, the
/// key's own); proxy admins and viewers see everyone's, or one user's with `user_id`.
pub async fn daily_activity(c: &Ctx, q: &ActivityQuery) -> Result<Value, GatewayError> {
    let start = date("start_date", q.start_date.as_deref())?;
    let end = date("end_date", q.end_date.as_deref())? + DAY_MS;
    let mut filter = SpendFilter {
        api_key: q.api_key.as_deref().map(crate::keys::token_of),
        start_time: Some(start),
        end_time: Some(end),
        ..SpendFilter::default()
    };
    if c.caller.can_read_all() {
        filter.user_id = q.user_id.clone();
    } else {
        let own = c.caller.user_id();
        if q.user_id.is_some() && q.user_id.as_deref() != own {
            return Err(GatewayError::Forbidden {
                message: "you may only read your own activity".into(),
            });
        }
        match own {
            Some(u) => filter.user_id = Some(u.to_string()),
            None => {
                let token = c.caller.token().unwrap_or_default().to_string();
                if filter.api_key.as_ref().is_some_and(|k| *k != token) {
                    return Err(GatewayError::Forbidden {
                        message: "you may only read your own activity".into(),
                    });
                }
                filter.api_key = Some(token);
            }
        }
    }
    let mut days: BTreeMap<String, Day> = BTreeMap::new();
    let mut total = Metrics::default();
    for log in all_logs(c, filter).await? {
        let group = log.model_group.clone().unwrap_or_else(|| log.model.clone());
        if q.model
            .as_deref()
            .is_some_and(|m| m != log.model && m != group)
        {
            continue;
        }
        total.add(&log);
        let day = days.entry(day_of(log.start_time)).or_default();
        day.metrics.add(&log);
        day.models
            .entry(log.model.clone())
            .or_default()
            .metrics
            .add(&log);
        day.model_groups.entry(group).or_default().metrics.add(&log);
        day.providers
            .entry(provider_of(&log.model).to_string())
            .or_default()
            .metrics
            .add(&log);
        let key = day.api_keys.entry(log.api_key.clone()).or_default();
        key.metrics.add(&log);
        let alias = serde_json::from_str::<Value>(&log.metadata)
            .ok()
            .and_then(|m| m.get("user_api_key_alias").cloned())
            .unwrap_or(Value::Null);
        key.metadata.insert("key_alias".into(), alias);
        key.metadata
            .insert("team_id".into(), json!(log.team_id.clone()));
    }
    let page = crate::http::manage::page(q.page, q.page_size, 50);
    let total_pages = (days.len() as u64).div_ceil(page.size).max(1);
    let results: Vec<Value> = days
        .iter()
        .rev()
        .skip(page.offset() as usize)
        .take(page.size as usize)
        .map(|(date, d)| {
            json!({
                "date": date,
                "metrics": d.metrics.json(),
                "breakdown": {
                    "models": breakdown_json(&d.models),
                    "model_groups": breakdown_json(&d.model_groups),
                    "providers": breakdown_json(&d.providers),
                    "api_keys": breakdown_json(&d.api_keys),
                },
            })
        })
        .collect();
    Ok(json!({
        "results": results,
        "metadata": {
            "total_spend": total.spend,
            "total_prompt_tokens": total.prompt_tokens,
            "total_completion_tokens": total.completion_tokens,
            "total_tokens": total.total_tokens,
            "total_api_requests": total.api_requests,
            "total_successful_requests": total.successful_requests,
            "total_failed_requests": total.failed_requests,
            "total_cache_read_input_tokens": 0,
            "total_cache_creation_input_tokens": 0,
            "page": page.page,
            "total_pages": total_pages,
            "has_more": page.page < total_pages,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_providers() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(DAY_MS - 1), "1970-01-01");
        assert_eq!(day_of(DAY_MS), "1970-01-02");
        assert_eq!(provider_of("openai/gpt-4o"), "openai");
        assert_eq!(provider_of("gpt-4o"), "unknown");
        assert!(date("start_date", Some("2026-01-02")).is_ok());
        assert!(date("start_date", Some("2026-01-02T00:00:00Z")).is_err());
        assert!(date("start_date", None).is_err());
    }
}
