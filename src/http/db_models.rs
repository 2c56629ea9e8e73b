//! Models stored in the database: `/model/new`, `/model/update` (and PATCH
//! `/model/{model_id}/update`), `/model/delete`. Proxy admins only. `litellm_params` are sealed
//! before they are stored and masked in every response; the router picks changes up at once
//! (see [`crate::models_sync`]).

use super::routes::{Access, Routes};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::manage::{body_object, ctx, opt_str, respond};
use crate::error::GatewayError;
use crate::models_sync::check_params;
use crate::secret::redact_json;
use crate::state::AppState;
use crate::store::ModelRecord;
use crate::time::{iso8601, now_ms};

pub fn configure(r: &mut Routes) {
    r.post("/model/new", Access::Admin, new_model)
        .post("/model/update", Access::Admin, update_model)
        .patch("/model/{model_id}/update", Access::Admin, patch_model)
        .post("/model/delete", Access::Admin, delete_model);
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
    c.caller.require_admin("add models")?;
    let body = body_object(req, payload).await?;
    let model_name = opt_str(&body, "model_name")?
        .ok_or_else(|| GatewayError::bad_param("model_name", "'model_name' is required"))?;
    let params = opt_object(&body, "litellm_params")?
        .ok_or_else(|| GatewayError::bad_param("litellm_params", "'litellm_params' is required"))?;
    check_params(&params)?;
    let mut model_info = opt_object(&body, "model_info")?.unwrap_or_default();
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
        "model added to the database"
    );
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
    c.caller.require_admin("update models")?;
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

    let mut params = state.db_models.open_params(&record).map_err(|e| {
        tracing::error!(model_id, error = %e, "stored model's litellm_params cannot be opened");
        GatewayError::internal(format!(
            "the stored litellm_params of model {model_id} cannot be decrypted (was LITELLM_SALT_KEY or the master key changed?)"
        ))
    })?;
    if let Some(patch) = opt_object(&body, "litellm_params")? {
        merge(&mut params, patch);
        check_params(&params)?;
    }
    if let Some(name) = opt_str(&body, "model_name")? {
        record.model_name = name;
    }
    if let Some(patch) = info_patch {
        merge(&mut record.model_info, patch);
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
    state.db_models.after_change(state).await;
    Ok(model_json(&record, &params))
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
    c.caller.require_admin("delete models")?;
    let body = body_object(req, payload).await?;
    let id = match opt_str(&body, "id")? {
        Some(id) => id,
        None => opt_str(&body, "model_id")?
            .ok_or_else(|| GatewayError::bad_param("id", "'id' is required"))?,
    };
    if !c.store.delete_model(&id).await? {
        return Err(not_found(&id));
    }
    tracing::info!(model_id = id, "model deleted from the database");
    state.db_models.after_change(state).await;
    Ok(json!({"message": format!("Model: {id} deleted successfully")}))
}
