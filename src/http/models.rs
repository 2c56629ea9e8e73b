//! `/models`, `/v1/models`, `/models/{id}` (OpenAI list shape), `/model/info` and `/v2/model/info`
//! (deployments with secrets stripped), `/model_group/info` (one entry per model group) and
//! `/model/state` (each deployment's cooldown and health, for admins).

use super::routes::{Access, Routes};
use std::collections::BTreeSet;

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::GatewayError;
use crate::state::AppState;

/// LiteLLM reports this constant `created` for every model.
const CREATED: u64 = 1_677_610_602;

pub fn configure(r: &mut Routes) {
    r.get("/models", Access::AnyKey, list_models)
        .get("/v1/models", Access::AnyKey, list_models)
        .get("/models/{model:.+}", Access::AnyKey, get_model)
        .get("/v1/models/{model:.+}", Access::AnyKey, get_model)
        .get("/model/info", Access::AnyKey, model_info)
        .get("/v1/model/info", Access::AnyKey, model_info)
        .get("/v2/model/info", Access::AnyKey, model_info_v2)
        .get("/model_group/info", Access::AnyKey, model_group_info)
        .get("/model/state", Access::ReadAll, model_state);
}

/// `GET /models` options. Flags are read as LiteLLM's clients send them (`True`, `true`, `1`).
#[derive(Deserialize)]
struct ListQuery {
    return_wildcard_routes: Option<String>,
    include_model_access_groups: Option<String>,
    only_model_access_groups: Option<String>,
}

fn flag(v: &Option<String>) -> bool {
    v.as_deref()
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}

fn model_entry(id: &str, owner: &str) -> Value {
    json!({"id": id, "object": "model", "created": CREATED, "owned_by": owner})
}

/// Names a client may request: model groups, visible aliases, and wildcards when asked for;
/// for a virtual key, only those it may use. A team's own models (`team_public_model_name`) are
/// listed by their public name to that team's keys only; their internal group names to no one.
pub(super) fn visible_models(
    state: &AppState,
    caller: &Caller,
    with_wildcards: bool,
) -> BTreeSet<String> {
    let snapshot = state.router.snapshot();
    let mut names: BTreeSet<String> = snapshot.group_names().map(str::to_string).collect();
    if with_wildcards {
        names.extend(snapshot.wildcard_names().map(str::to_string));
    }
    for (alias, target) in &state.aliases {
        if !target.hidden {
            names.insert(alias.clone());
        }
    }
    let internal = state.team_internal_groups();
    names.retain(|m| !internal.contains(m));
    let access = caller.model_access();
    let permitted = |m: &str| access.permits(m, |g, m| state.in_access_group(g, m));
    names.retain(|m| {
        let m = access.resolve(m);
        let group = state.aliases.get(m).map_or(m, |a| a.target.as_str());
        (permitted(m) || state.aliases.get(m).is_some_and(|a| permitted(&a.target)))
            && state.team_scope_permits(caller, group)
    });
    for (public, _) in state.team_public_models(caller) {
        if permitted(&public) {
            names.insert(public);
        }
    }
    names
}

/// Access groups (`model_info.access_groups` of deployments the caller may see) the caller may
/// use: every one for an unrestricted caller, else those each of its model lists names.
fn visible_access_groups(state: &AppState, caller: &Caller) -> BTreeSet<String> {
    let access = caller.model_access();
    let snapshot = state.router.snapshot();
    snapshot
        .deployments()
        .iter()
        .filter(|d| state.team_scope_permits(caller, &d.upstream.model_name))
        .filter_map(|d| d.upstream.model_info.get("access_groups")?.as_array())
        .flatten()
        .filter_map(Value::as_str)
        .filter(|g| access.permits(g, |listed, g| listed == g))
        .map(str::to_string)
        .collect()
}

async fn list_models(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<ListQuery>,
) -> HttpResponse {
    let caller = match state.auth.authenticate(&req).await {
        Ok(c) => c,
        Err(e) => return e.error_response(),
    };
    let names = if flag(&q.only_model_access_groups) {
        visible_access_groups(&state, &caller)
    } else {
        let mut names = visible_models(&state, &caller, flag(&q.return_wildcard_routes));
        if flag(&q.include_model_access_groups) {
            names.extend(visible_access_groups(&state, &caller));
        }
        names
    };
    let data: Vec<Value> = names.iter().map(|m| model_entry(m, "openai")).collect();
    HttpResponse::Ok().json(json!({"object": "list", "data": data}))
}

async fn get_model(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let caller = match state.auth.authenticate(&req).await {
        Ok(c) => c,
        Err(e) => return e.error_response(),
    };
    let model = path.into_inner();
    if visible_models(&state, &caller, true).contains(&model) {
        HttpResponse::Ok().json(model_entry(&model, "openai"))
    } else {
        GatewayError::UnknownModel { model }.error_response()
    }
}

#[derive(Deserialize)]
struct InfoQuery {
    litellm_model_id: Option<String>,
}

/// The deployments a caller may use (as `/model/info` lists them): those of the models its key,
/// user and team allow, within its team's scope.
fn visible_deployments(
    state: &AppState,
    caller: &Caller,
) -> Vec<std::sync::Arc<tollgate_actors::DeploymentHandle<crate::deployment::Deployment>>> {
    let access = caller.model_access();
    state
        .router
        .snapshot()
        .deployments()
        .iter()
        .filter(|d| {
            access.permits(crate::state::access_name(&d.upstream), |g, m| {
                state.in_access_group(g, m)
            })
        })
        .filter(|d| state.team_scope_permits(caller, &d.upstream.model_name))
        .cloned()
        .collect()
}

async fn model_info(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<InfoQuery>,
) -> HttpResponse {
    let caller = match state.auth.authenticate(&req).await {
        Ok(c) => c,
        Err(e) => return e.error_response(),
    };
    let data: Vec<Value> = visible_deployments(&state, &caller)
        .iter()
        .filter(|d| q.litellm_model_id.as_deref().is_none_or(|id| d.id() == id))
        .map(|d| d.upstream.info())
        .collect();
    HttpResponse::Ok().json(json!({"data": data}))
}

#[derive(Deserialize)]
struct InfoV2Query {
    model: Option<String>,
    #[serde(alias = "modelId")]
    litellm_model_id: Option<String>,
    user_models_only: Option<bool>,
    search: Option<String>,
    page: Option<usize>,
    size: Option<usize>,
    #[serde(alias = "teamId")]
    team_id: Option<String>,
    #[serde(alias = "sortBy")]
    sort_by: Option<String>,
    #[serde(alias = "sortOrder")]
    sort_order: Option<String>,
}

/// What `/v2/model/info` sorts by (`sortBy`); `sortOrder` is `asc` (the default) or `desc`.
#[derive(Clone, Copy)]
enum SortBy {
    ModelName,
    CreatedAt,
    UpdatedAt,
    Costs,
}

impl SortBy {
    const NAMES: &'static str = "model_name, created_at, updated_at, costs";

    fn parse(raw: &str) -> Option<SortBy> {
        Some(match raw {
            "model_name" => SortBy::ModelName,
            "created_at" => SortBy::CreatedAt,
            "updated_at" => SortBy::UpdatedAt,
            "costs" => SortBy::Costs,
            _ => return None,
        })
    }

    /// Sort `/model/info` entries (`model_name`, `model_info.{created_at, updated_at,
    /// input_cost_per_token}`); entries without the field come last, ties keep the listed order.
    fn sort(self, entries: &mut [Value], descending: bool) {
        let key = |v: &Value| -> Option<Value> {
            let info = &v["model_info"];
            match self {
                SortBy::ModelName => v.get("model_name").cloned(),
                SortBy::CreatedAt => info.get("created_at").cloned(),
                SortBy::UpdatedAt => info.get("updated_at").cloned(),
                SortBy::Costs => info.get("input_cost_per_token").cloned(),
            }
            .filter(|v| !v.is_null())
        };
        entries.sort_by(|a, b| {
            use std::cmp::Ordering;
            match (key(a), key(b)) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(x), Some(y)) => {
                    let order = match (x.as_f64(), y.as_f64()) {
                        (Some(x), Some(y)) => x.total_cmp(&y),
                        _ => x.as_str().unwrap_or("").cmp(y.as_str().unwrap_or("")),
                    };
                    if descending {
                        order.reverse()
                    } else {
                        order
                    }
                }
            }
        });
    }
}

/// `GET /v2/model/info`: the deployments `/model/info` shows the caller, filtered by `model`
/// (its `model_name`), `modelId`, `search` (part of the name, any case), `user_models_only`
/// (models the caller added) and `teamId` (what that team's keys may use: its own models and
/// the shared ones its `models` allow; the caller must be able to read the team), sorted by
/// `sortBy` / `sortOrder`, paged by `page` (from 1) and `size` (50 by default).
async fn model_info_v2(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<InfoV2Query>,
) -> HttpResponse {
    let caller = match state.auth.authenticate(&req).await {
        Ok(c) => c,
        Err(e) => return e.error_response(),
    };
    if q.page == Some(0) || q.size == Some(0) {
        return GatewayError::bad_request("page and size must be at least 1").error_response();
    }
    let sort = match q.sort_by.as_deref().map(|s| (s, SortBy::parse(s))) {
        None => None,
        Some((_, Some(by))) => Some(by),
        Some((raw, None)) => {
            return GatewayError::bad_param(
                "sortBy",
                format!("cannot sort by '{raw}': use one of {}", SortBy::NAMES),
            )
            .error_response()
        }
    };
    let descending = match q
        .sort_order
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return GatewayError::bad_param(
                "sortOrder",
                format!("sortOrder must be asc or desc, not '{other}'"),
            )
            .error_response()
        }
    };
    let team = match &q.team_id {
        None => None,
        Some(id) => match team_for(&state, &caller, id).await {
            Ok(team) => Some(team),
            Err(e) => return e.error_response(),
        },
    };
    let search = q.search.as_deref().map(str::to_lowercase);
    let mine = q.user_models_only.unwrap_or(false);
    let me = caller.actor_id();
    let mut data: Vec<Value> = visible_deployments(&state, &caller)
        .iter()
        .filter(|d| team.as_ref().is_none_or(|t| team_may_use(&state, t, d)))
        .filter(|d| {
            q.model
                .as_deref()
                .is_none_or(|m| d.upstream.model_name == m)
        })
        .filter(|d| q.litellm_model_id.as_deref().is_none_or(|id| d.id() == id))
        .filter(|d| {
            search
                .as_deref()
                .is_none_or(|s| d.upstream.model_name.to_lowercase().contains(s))
        })
        .filter(|d| {
            !mine
                || d.upstream
                    .model_info
                    .get("created_by")
                    .and_then(Value::as_str)
                    == Some(me.as_str())
        })
        .map(|d| d.upstream.info())
        .collect();
    if let Some(by) = sort {
        by.sort(&mut data, descending);
    }
    let page = crate::catalog::Page {
        page: q.page.unwrap_or(1),
        size: q.size.unwrap_or(crate::catalog::Page::DEFAULT_SIZE),
    };
    HttpResponse::Ok().json(page.of(data))
}

/// The team `/v2/model/info?teamId=` names, when the caller may read it (404 otherwise, as for a
/// team that does not exist).
async fn team_for(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<crate::store::EntityRecord, GatewayError> {
    let store = state.db.store()?;
    store
        .get_entity(crate::store::EntityKind::Team, id)
        .await?
        .filter(|t| caller.can_read_team(t))
        .ok_or_else(|| GatewayError::NotFound {
            message: format!("team {id} not found"),
        })
}

/// Whether a team's keys may use a deployment: the team's own models, and shared models its
/// `models` allow (another team's models never).
fn team_may_use(
    state: &AppState,
    team: &crate::store::EntityRecord,
    d: &tollgate_actors::DeploymentHandle<crate::deployment::Deployment>,
) -> bool {
    match d.upstream.model_info.get("team_id").and_then(Value::as_str) {
        Some(owner) => owner == team.id,
        None => crate::auth::ModelAccess::of_team(team)
            .permits(crate::state::access_name(&d.upstream), |g, m| {
                state.in_access_group(g, m)
            }),
    }
}

#[derive(Deserialize)]
struct GroupInfoQuery {
    model_group: Option<String>,
}

/// `GET /model_group/info`: one entry per model group the caller may use (the names `/models`
/// lists), or only `?model_group=`.
async fn model_group_info(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<GroupInfoQuery>,
) -> HttpResponse {
    let caller = match state.auth.authenticate(&req).await {
        Ok(c) => c,
        Err(e) => return e.error_response(),
    };
    let names = visible_models(&state, &caller, false);
    let data = crate::catalog::groups_info(&state, &names, q.model_group.as_deref());
    HttpResponse::Ok().json(json!({"data": data}))
}

/// `GET /model/state` (Tollgate's own; proxy admins and viewers): what the router knows of each
/// deployment right now: whether it is cooling down after failures and until when, the result
/// of its last health probe, and its traffic. `state` is `cooling_down` while the router skips
/// the deployment, else `unhealthy` when its last probe failed, else `healthy` (the
/// `litellm_deployment_state` gauge's 2, 1, 0). Deployments are named by `model_id` and
/// `model_name`, as in `/model/info`; no parameter or credential of theirs is shown.
async fn model_state(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    // The route's access (proxy admins and viewers) is checked against the caller here.
    if let Err(e) = state.auth.authenticate(&req).await {
        return e.error_response();
    }
    let now = tollgate_actors::now_ms();
    let snapshot = state.router.snapshot();
    let data: Vec<Value> = snapshot
        .deployments()
        .iter()
        .map(|d| {
            let s = &d.state;
            let stats = s.stats();
            let until = s.cooldown_until_ms();
            let cooling = s.is_cooling_down(now);
            let probe = s.probe_health();
            let health = match probe {
                tollgate_actors::ProbeHealth::Healthy => "healthy",
                tollgate_actors::ProbeHealth::Unhealthy => "unhealthy",
                tollgate_actors::ProbeHealth::Unknown => "unknown",
            };
            let summary = if cooling {
                "cooling_down"
            } else if probe == tollgate_actors::ProbeHealth::Unhealthy {
                "unhealthy"
            } else {
                "healthy"
            };
            let (minute_requests, minute_tokens) = s.minute_usage(now);
            json!({
                "model_id": d.id(),
                "model_name": d.upstream.model_name,
                "state": summary,
                "cooling_down": cooling,
                "cooldown_until": if cooling {
                    Value::String(crate::time::iso8601(until as i64))
                } else {
                    Value::Null
                },
                "cooldown_remaining_seconds": if cooling { until.saturating_sub(now).div_ceil(1000) } else { 0 },
                "cooldowns": stats.cooldowns,
                "health": health,
                "last_probe_error": s.last_probe_error(),
                "in_flight": stats.in_flight,
                "requests": stats.requests,
                "successes": stats.successes,
                "failures": stats.failures,
                "minute_requests": minute_requests,
                "minute_tokens": minute_tokens,
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({"data": data}))
}
