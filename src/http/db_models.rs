//! Models stored in the database: `/model/new`, `/model/update` (and PATCH
//! `/model/{model_id}/update`), `/model/delete`. Proxy admins manage every model; a team's admins
//! manage the team's own models (`model_info.team_id`). `litellm_params` are sealed before they
//! are stored and masked in every response; the router picks changes up at once (see
//! [`crate::models_sync`]).
//!
//! A team's model is stored as LiteLLM stores it: under an internal group name
//! `model_name_{team_id}_{uuid}`, its `model_name` kept as `model_info.team_public_model_name`,
//! and that public name added to the team's `models` when the list restricts the team. Only the
//! team's keys call it by its public name and see it listed (see
//! [`crate::state::AppState::team_model_group`]).

use super::routes::{Access, Routes};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::manage::{body_object, ctx, opt_str, respond, Ctx};
use super::teams::{change_team_models, ModelsChange};
use crate::error::GatewayError;
use crate::models_sync::check_params;
use crate::secret::redact_json;
use crate::state::AppState;
use crate::store::{EntityKind, EntityRecord, ModelRecord};
use crate::time::{iso8601, now_ms};

pub fn configure(r: &mut Routes) {
    r.post("/model/new", Access::Writers, new_model)
        .post("/model/update", Access::Writers, update_model)
        .patch("/model/{model_id}/update", Access::Writers, patch_model)
        .post("/model/delete", Access::Writers, delete_model);
}

/// An optional object field of a body.
fn opt_object(
    body: &Map<String, Value>,
    name: &str,
) -> Result<Option<Map<String, Value>>, GatewayError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m.clone())),
        Some(_) => Err(GatewayError::bad_param(
            name,
            format!("'{name}' must be an object"),
        )),
    }
}

fn opt(v: &Option<String>) -> Value {
    v.as_ref().map_or(Value::Null, |s| Value::String(s.clone()))
}

/// A stored model as the API shows it: secrets in `litellm_params` masked.
fn model_json(record: &ModelRecord, params: &Map<String, Value>) -> Value {
    let mut model_info = record.model_info.clone();
    model_info.insert("id".into(), Value::String(record.model_id.clone()));
    model_info.insert("db_model".into(), Value::Bool(true));
    json!({
        "model_id": record.model_id,
        "model_name": record.model_name,
        "litellm_params": redact_json(&Value::Object(params.clone())),
        "model_info": model_info,
        "created_at": iso8601(record.created_at),
        "updated_at": iso8601(record.updated_at),
        "created_by": opt(&record.created_by),
        "updated_by": opt(&record.updated_by),
    })
}

fn not_found(id: &str) -> GatewayError {
    GatewayError::NotFound {
        message: format!("Model with id={id} not found in the database"),
    }
}

/// Whether the caller may add, change or delete a model of `team_id` (`None`: a model for
/// everyone, proxy admins only). A team model needs the team to exist (400) and the caller to
/// be a proxy admin or the team's admin (403). `gone_team_ok`: a model whose team was deleted
/// may still be deleted, by a proxy admin.
async fn authorize(
    c: &Ctx,
    team_id: Option<&str>,
    gone_team_ok: bool,
) -> Result<Option<EntityRecord>, GatewayError> {
    let Some(team_id) = team_id else {
        if c.caller.is_admin() {
            return Ok(None);
        }
        return Err(GatewayError::Forbidden {
            message: format!(
                "role {} may not manage this model: only proxy admins manage models for everyone; a team's admin manages models with that team's model_info.team_id",
                c.caller.role().as_str()
            ),
        });
    };
    let Some(team) = c.store.get_entity(EntityKind::Team, team_id).await? else {
        if gone_team_ok && c.caller.is_admin() {
            return Ok(None);
        }
        if gone_team_ok {
            return Err(GatewayError::Forbidden {
                message:
                    "only a proxy admin can change or delete a model whose team has been deleted"
                        .into(),
            });
        }
        return Err(GatewayError::bad_param(
            "model_info",
            format!("Team id={team_id} does not exist in db"),
        ));
    };
    if !c.caller.can_manage_team(&team) {
        return Err(GatewayError::Forbidden {
            message: format!(
                "Team ID={team_id} is not a team you are an admin of: only proxy admins and the team's admins manage its models"
            ),
        });
    }
    Ok(Some(team))
}

/// `model_info.team_id`, when set.
fn team_of(model_info: &Map<String, Value>) -> Option<String> {
    model_info
        .get("team_id")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// The internal group name of team `team_id`'s model called `public`: the group of a stored
/// model of the team with that public name (so the two balance as one group), else a new
/// `model_name_{team_id}_{uuid}`.
fn team_group_name(stored: &[ModelRecord], team_id: &str, public: &str) -> String {
    stored
        .iter()
        .find(|m| {
            team_of(&m.model_info).as_deref() == Some(team_id)
                && m.model_info
                    .get("team_public_model_name")
                    .and_then(Value::as_str)
                    == Some(public)
        })
        .map(|m| m.model_name.clone())
        .unwrap_or_else(|| format!("model_name_{team_id}_{}", uuid::Uuid::new_v4()))
}

async fn new_model(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    respond(new_inner(&state, &req, payload).await)
}

async fn new_inner(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Value, GatewayError> {
    let c = ctx(state, req).await?;
    let body = body_object(req, payload).await?;
    let mut model_name = opt_str(&body, "model_name")?
        .ok_or_else(|| GatewayError::bad_param("model_name", "'model_name' is required"))?;
    let params = opt_object(&body, "litellm_params")?
        .ok_or_else(|| GatewayError::bad_param("litellm_params", "'litellm_params' is required"))?;
    let mut model_info = opt_object(&body, "model_info")?.unwrap_or_default();
    let team_id = team_of(&model_info);
    authorize(&c, team_id.as_deref(), false).await?;
    check_params(&params)?;
    if !c.caller.is_admin() {
        state.db_models.check_caller_credentials(&params)?;
    }
    if let Some(team_id) = &team_id {
        let stored = c.store.list_models().await?;
        model_info.insert(
            "team_public_model_name".into(),
            Value::String(model_name.clone()),
        );
        model_name = team_group_name(&stored, team_id, &model_name);
    }
    let model_id = opt_str(&model_info, "id")?.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if state.db_models.is_config_id(&model_id) {
        return Err(GatewayError::bad_param(
            "model_info",
            format!("a deployment in the config already has id {model_id}"),
        ));
    }
    model_info.insert("id".into(), Value::String(model_id.clone()));
    model_info.remove("db_model");

    let now = now_ms();
    let record = ModelRecord {
        model_id,
        model_name,
        litellm_params_sealed: state.db_models.seal_params(&params)?,
        model_info,
        created_at: now,
        updated_at: now,
        created_by: Some(c.caller.actor_id()),
        updated_by: Some(c.caller.actor_id()),
    };
    c.store.insert_model(&record).await?;
    tracing::info!(
        model_id = record.model_id,
        model_name = record.model_name,
        team_id,
        "model added to the database"
    );
    if let (Some(team_id), Some(public)) = (&team_id, public_name(&record)) {
        change_team_models(
            state,
            &c,
            team_id,
            ModelsChange::AddIfRestricted(vec![public]),
        )
        .await?;
    }
    state.db_models.after_change(state).await;
    Ok(model_json(&record, &params))
}

async fn update_model(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    respond(update_inner(&state, &req, payload, None).await)
}

async fn patch_model(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    respond(update_inner(&state, &req, payload, Some(path.into_inner())).await)
}

/// Update a stored model: `model_name` replaces, `litellm_params` and `model_info` are merged
/// into the stored ones (a `null` value removes that field).
async fn update_inner(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
    path_id: Option<String>,
) -> Result<Value, GatewayError> {
    let c = ctx(state, req).await?;
    let body = body_object(req, payload).await?;
    let info_patch = opt_object(&body, "model_info")?;
    let model_id = match path_id {
        Some(id) => id,
        None => match opt_str(&body, "model_id")? {
            Some(id) => id,
            None => info_patch
                .as_ref()
                .map(|i| opt_str(i, "id"))
                .transpose()?
                .flatten()
                .ok_or_else(|| {
                    GatewayError::bad_param(
                        "model_id",
                        "'model_id' (or 'model_info.id') is required",
                    )
                })?,
        },
    };
    let mut record = c
        .store
        .list_models()
        .await?
        .into_iter()
        .find(|m| m.model_id == model_id)
        .ok_or_else(|| not_found(&model_id))?;

    // The caller must manage the model's team as stored, and the team it moves to.
    let stored_team = team_of(&record.model_info);
    let mut team = authorize(&c, stored_team.as_deref(), true).await?;
    let new_team = match info_patch.as_ref().and_then(|i| i.get("team_id")) {
        None => stored_team.clone(),
        Some(v) => v.as_str().filter(|t| !t.is_empty()).map(str::to_string),
    };
    if new_team != stored_team {
        team = authorize(&c, new_team.as_deref(), false).await?;
    }
    let mut params = state.db_models.open_params(&record).map_err(|e| {
        tracing::error!(model_id, error = %e, "stored model's litellm_params cannot be opened");
        GatewayError::internal(format!(
            "the stored litellm_params of model {model_id} cannot be decrypted (was LITELLM_SALT_KEY or the master key changed?)"
        ))
    })?;
    if let Some(patch) = opt_object(&body, "litellm_params")? {
        merge(&mut params, patch);
        check_params(&params)?;
        if !c.caller.is_admin() {
            state.db_models.check_caller_credentials(&params)?;
        }
    }
    let old_public = public_name(&record);
    let name = opt_str(&body, "model_name")?;
    if let Some(patch) = info_patch {
        merge(&mut record.model_info, patch);
    }
    match &new_team {
        Some(team_id) => {
            // A team model keeps its internal group name; `model_name` renames its public name
            // (unless it is the internal name itself, as clients echo it back).
            let public = name
                .filter(|n| {
                    *n != record.model_name && !n.starts_with(&format!("model_name_{team_id}_"))
                })
                .or(old_public.clone())
                .unwrap_or_else(|| record.model_name.clone());
            if new_team != stored_team || old_public.as_deref() != Some(public.as_str()) {
                let others: Vec<ModelRecord> = c
                    .store
                    .list_models()
                    .await?
                    .into_iter()
                    .filter(|m| m.model_id != model_id)
                    .collect();
                record.model_name = team_group_name(&others, team_id, &public);
            }
            record
                .model_info
                .insert("team_public_model_name".into(), Value::String(public));
        }
        None => {
            // Out of its team (a proxy admin's change): served under its public name again.
            if let Some(public) = record
                .model_info
                .remove("team_public_model_name")
                .and_then(|v| v.as_str().map(str::to_string))
            {
                record.model_name = public;
            }
            if let Some(name) = name {
                record.model_name = name;
            }
        }
    }
    record
        .model_info
        .insert("id".into(), Value::String(model_id.clone()));
    record.model_info.remove("db_model");
    record.litellm_params_sealed = state.db_models.seal_params(&params)?;
    record.updated_at = now_ms().max(record.updated_at + 1);
    record.updated_by = Some(c.caller.actor_id());
    if !c.store.update_model(&record).await? {
        return Err(not_found(&model_id));
    }
    tracing::info!(
        model_id,
        model_name = record.model_name,
        "model in the database updated"
    );
    // `team`: the model's team as it now stands, when that team exists.
    if let (Some(team), Some(public)) = (&team, public_name(&record)) {
        change_team_models(
            state,
            &c,
            &team.id,
            ModelsChange::AddIfRestricted(vec![public]),
        )
        .await?;
    }
    state.db_models.after_change(state).await;
    Ok(model_json(&record, &params))
}

/// A stored team model's public name (`model_info.team_public_model_name`).
fn public_name(record: &ModelRecord) -> Option<String> {
    team_of(&record.model_info)?;
    record
        .model_info
        .get("team_public_model_name")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn merge(into: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (k, v) in patch {
        if v.is_null() {
            into.remove(&k);
        } else {
            into.insert(k, v);
        }
    }
}

async fn delete_model(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    respond(delete_inner(&state, &req, payload).await)
}

async fn delete_inner(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Value, GatewayError> {
    let c = ctx(state, req).await?;
    let body = body_object(req, payload).await?;
    let id = match opt_str(&body, "id")? {
        Some(id) => id,
        None => opt_str(&body, "model_id")?
            .ok_or_else(|| GatewayError::bad_param("id", "'id' is required"))?,
    };
    let stored = c.store.list_models().await?;
    let Some(record) = stored.iter().find(|m| m.model_id == id) else {
        // Only proxy admins learn which ids exist.
        authorize(&c, None, true).await?;
        return Err(not_found(&id));
    };
    let team_id = team_of(&record.model_info);
    let team = authorize(&c, team_id.as_deref(), true).await?;
    if !c.store.delete_model(&id).await? {
        return Err(not_found(&id));
    }
    tracing::info!(model_id = id, "model deleted from the database");
    // The public name leaves the team's list once no model of the team, and no model group of
    // that name, serves it any more.
    if let (Some(team), Some(public)) = (team, public_name(record)) {
        let still_served = stored.iter().any(|m| {
            m.model_id != id
                && team_of(&m.model_info).as_deref() == Some(team.id.as_str())
                && public_name(m).as_deref() == Some(public.as_str())
        }) || state
            .router
            .snapshot()
            .deployments()
            .iter()
            .any(|d| d.upstream.model_name == public);
        if !still_served {
            change_team_models(state, &c, &team.id, ModelsChange::Remove(vec![public])).await?;
        }
    }
    state.db_models.after_change(state).await;
    Ok(json!({"message": format!("Model: {id} deleted successfully")}))
}
