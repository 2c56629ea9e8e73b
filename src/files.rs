//! OpenAI's files and batches APIs (`/v1/files`, `/v1/batches`) on OpenAI and Azure OpenAI
//! deployments, with ownership.
//!
//! * **Where a file goes.** An upload names its model group as LiteLLM's managed files do
//!   (`target_model_names`, the first of a comma-separated list), else by a `model` form field,
//!   else by the `x-litellm-model` header; the key must be allowed that group, and the group's
//!   first available OpenAI or Azure deployment takes the file. With none of these, LiteLLM's
//!   `custom_llm_provider` form field (`openai` or `azure`) picks the first deployment of that
//!   provider whose group the key may use, and without it the first OpenAI or Azure deployment
//!   the key may use does. A batch goes to the deployment that holds its input file.
//! * **Ids.** Clients get the provider's ids, unchanged (files, batches, a batch's output and
//!   error files); each is recorded ([`crate::store::ManagedObject`]) with the deployment that
//!   holds it and who owns it, so every later call goes to that deployment with its credentials.
//! * **Ownership.** A virtual key reaches only the files and batches it created (and the output
//!   files of its batches); anything else is a 404 in the OpenAI envelope, exactly as an id that
//!   does not exist. The master key reaches all.
//! * **Admission.** Uploads and batch creation check the key's model access, its budgets and its
//!   rate limits (per-model limits of the deployment's group included); reads, downloads,
//!   deletes and cancels its rate limits; a list counts one request (the key-wide limits).
//! * **Accounting.** An upload (`acreate_file`) and a batch creation (`acreate_batch`) each leave
//!   a spend-log row at no cost. When a read (`GET /v1/batches/{id}`, the list, a cancel) first
//!   sees a batch `completed`, its output file is downloaded once and the usage of its successful
//!   lines (`response.body.usage`) is priced at the deployment's batch prices
//!   ([`crate::pricing::Prices::batch_cost`]) into one `aretrieve_batch` row
//!   (`request_id` `{batch id}_batch_cost`, LiteLLM's), charged to the batch's owner. The
//!   record's `cost_recorded` flag is claimed by a conditional update first, so concurrent reads
//!   record it once.

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::HttpRequest;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::auth::Caller;
use crate::deployment::{Deployment, Target};
use crate::error::GatewayError;
use crate::llm::{Upload, Usage, UsageEnvelope};
use crate::providers::openai::{OpenAiAdapter, AZURE, OPENAI};
use crate::providers::{ProviderAdapter, Wire};
use crate::spend::{Owner, Served, SpendContext};
use crate::state::AppState;
use crate::store::{ManagedObject, Store};

/// A record's `kind`.
pub const FILE: &str = "file";
pub const BATCH: &str = "batch";

/// The form fields that route an upload; never sent upstream.
const ROUTING_FIELDS: &[&str] = &[
    "target_model_names",
    "model",
    "custom_llm_provider",
    "litellm_metadata",
];

/// A deployment that holds files and batches, resolved for calling.
struct Holder {
    deployment: Arc<Deployment>,
    target: Target,
    adapter: &'static OpenAiAdapter,
}

impl Holder {
    /// `Some` for an OpenAI or Azure OpenAI deployment with a fixed model that can be called.
    fn of(deployment: &Arc<Deployment>) -> Option<Holder> {
        if deployment.problem.is_some() {
            return None;
        }
        let target = deployment.target()?.clone();
        let adapter = match target.spec.wire {
            Wire::OpenAi if target.spec.name == "openai" => &OPENAI,
            Wire::Azure if target.spec.name == "azure" => &AZURE,
            _ => return None,
        };
        Some(Holder {
            deployment: deployment.clone(),
            target,
            adapter,
        })
    }

    fn provider(&self) -> &'static str {
        self.target.spec.name
    }

    /// How a spend-log row names this deployment.
    fn served(&self, response_id: Option<String>) -> Served {
        Served {
            model: self.target.model.clone(),
            model_id: Some(self.deployment.id.clone()),
            model_group: Some(self.deployment.model_name.clone()),
            api_base: self.deployment.api_base().map(str::to_string),
            response_id,
            provider: Some(self.provider().to_string()),
            ..Served::default()
        }
    }

    /// Call the deployment's `path`: the response body and its content type, or the provider's
    /// error as the gateway's.
    async fn call(
        &self,
        state: &AppState,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<(String, Bytes)>,
    ) -> Result<(Bytes, Option<String>), GatewayError> {
        let (content_type, body) = body.unwrap_or_default();
        let mut prepared = self
            .adapter
            .resource(&self.deployment, &self.target, path, query, body);
        if !content_type.is_empty() {
            prepared.headers.push(("content-type".into(), content_type));
        }
        let timeout = self
            .deployment
            .timeout
            .unwrap_or(state.settings.live().request_timeout);
        let started = std::time::Instant::now();
        let key = self.target.api_key.as_ref();
        if state.debug {
            tracing::debug!(
                deployment = self.deployment.id,
                %method,
                url = %crate::secret::display_url(&prepared.url),
                headers = ?prepared.redacted_headers(),
                "upstream request"
            );
        }
        let mut response = crate::upstream::send_with(
            method,
            prepared,
            timeout,
            &self.deployment.model_name,
            key,
            self.deployment.trust.as_ref(),
        )
        .await?;
        let status = response.status().as_u16();
        let left = timeout.saturating_sub(started.elapsed());
        let bytes =
            crate::upstream::read_body(&mut response, left, &self.deployment.model_name).await?;
        if !(200..300).contains(&status) {
            let retry_after = crate::upstream::retry_after(response.headers());
            return Err(self
                .adapter
                .translate_error(&self.target, status, retry_after, &bytes));
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok((bytes, content_type))
    }

    /// [`Self::call`] of an API that answers a JSON object.
    async fn call_json(
        &self,
        state: &AppState,
        method: Method,
        path: &str,
        body: Option<(String, Bytes)>,
    ) -> Result<Map<String, Value>, GatewayError> {
        let (bytes, _) = self.call(state, method, path, &[], body).await?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(o)) => Ok(o),
            _ => Err(crate::providers::invalid_body(format!(
                "the provider's answer to {path} is not a JSON object"
            ))),
        }
    }
}

/// Whether `caller` may use model group `group` (its key's, user's and team's model lists,
/// access groups, team-scoped models).
fn permitted(state: &AppState, caller: &Caller, group: &str) -> Result<(), GatewayError> {
    let access = caller.model_access();
    if !access.permits(group, |g, m| state.in_access_group(g, m))
        || !state.team_scope_permits(caller, group)
    {
        return Err(access.denied(group));
    }
    Ok(())
}

fn not_found(kind: &str, id: &str) -> GatewayError {
    GatewayError::NotFound {
        message: format!("No {kind} found with id '{id}'."),
    }
}

fn store(state: &AppState) -> Result<&Arc<dyn Store>, GatewayError> {
    Ok(state.db.store()?)
}

/// The `kind` record `id` if `caller` may reach it (its own, or any for the master key); a 404
/// otherwise, as for an id that does not exist.
async fn owned(
    state: &AppState,
    caller: &Caller,
    kind: &str,
    id: &str,
) -> Result<ManagedObject, GatewayError> {
    let record = store(state)?.get_managed(kind, id).await?;
    match (record, caller.principal()) {
        (Some(r), None) => Ok(r),
        (Some(r), Some(p)) if r.owner_token.as_deref() == Some(p.key.token.as_str()) => Ok(r),
        _ => Err(not_found(kind, id)),
    }
}

/// The deployment that holds a record.
fn holder_of(state: &AppState, record: &ManagedObject) -> Result<Holder, GatewayError> {
    let snapshot = state.router.snapshot();
    snapshot
        .deployment(&record.deployment_id)
        .and_then(|h| Holder::of(&h.upstream))
        .ok_or_else(|| GatewayError::BadRequest {
            message: format!(
                "The deployment that holds {} '{}' (model group '{}') is no longer configured.",
                record.kind, record.id, record.model_group
            ),
            param: None,
            code: None,
        })
}

/// Where an upload goes (see the module documentation).
fn upload_target(
    state: &AppState,
    http: &HttpRequest,
    caller: &Caller,
    fields: &Map<String, Value>,
) -> Result<Holder, GatewayError> {
    let text = |name: &str| {
        fields
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let header = http
        .headers()
        .get("x-litellm-model")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let named = text("target_model_names")
        .and_then(|names| names.split(',').map(str::trim).find(|n| !n.is_empty()))
        .or_else(|| text("model"))
        .or(header);
    let snapshot = state.router.snapshot();
    let now = tollgate_actors::now_ms();
    if let Some(group) = named {
        permitted(state, caller, group)?;
        let handles = snapshot
            .group(group)
            .map(|g| g.deployments.clone())
            .ok_or_else(|| {
                GatewayError::bad_param(
                    "model",
                    format!("There is no model group named '{group}'."),
                )
            })?;
        let mut holders = handles
            .iter()
            .filter_map(|h| Holder::of(&h.upstream).map(|d| (h.is_available(now), d)));
        let first = holders.next();
        return match first {
            Some((true, holder)) => Ok(holder),
            Some((false, holder)) => Ok(holders.find(|(up, _)| *up).map_or(holder, |(_, h)| h)),
            None => Err(GatewayError::bad_param(
                "model",
                format!("Model group '{group}' has no OpenAI or Azure deployment to hold files."),
            )),
        };
    }
    let provider = match text("custom_llm_provider") {
        None => None,
        Some(p @ ("openai" | "azure")) => Some(p),
        Some(other) => {
            return Err(GatewayError::bad_param(
                "custom_llm_provider",
                format!("Files are served for OpenAI and Azure deployments, not '{other}'."),
            ))
        }
    };
    snapshot
        .deployments()
        .iter()
        .filter_map(|h| Holder::of(&h.upstream))
        .filter(|h| provider.is_none_or(|p| h.provider() == p))
        .find(|h| permitted(state, caller, &h.deployment.model_name).is_ok())
        .ok_or_else(|| {
            GatewayError::bad_param(
                "model",
                "No OpenAI or Azure deployment this key may use can hold files; name one with `model` or `target_model_names`.",
            )
        })
}

/// The record of an object the provider answered.
fn record(
    kind: &str,
    object: &Map<String, Value>,
    holder: &Holder,
    owner: &Owner,
    purpose: &str,
) -> Result<ManagedObject, GatewayError> {
    let id = object
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            crate::providers::invalid_body(format!("the provider's {kind} has no id"))
        })?;
    Ok(ManagedObject {
        id: id.to_string(),
        kind: kind.to_string(),
        upstream_id: id.to_string(),
        deployment_id: holder.deployment.id.clone(),
        model_group: holder.deployment.model_name.clone(),
        owner_token: owner.token.clone(),
        user_id: owner.user_id.clone(),
        team_id: owner.team_id.clone(),
        organization_id: owner.organization_id.clone(),
        purpose: purpose.to_string(),
        status: status_of(object),
        object: Value::Object(object.clone()).to_string(),
        created_at: crate::time::now_ms(),
        cost_recorded: false,
    })
}

fn status_of(object: &Map<String, Value>) -> String {
    object
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn owner_of(caller: &Caller) -> Owner {
    let p = caller.principal();
    Owner {
        token: p.map(|p| p.key.token.clone()),
        user_id: p.and_then(|p| p.key.user_id.clone()),
        team_id: p.and_then(|p| p.key.team_id.clone()),
        organization_id: p.and_then(|p| p.key.organization_id.clone()),
    }
}

fn record_owner(record: &ManagedObject) -> Owner {
    Owner {
        token: record.owner_token.clone(),
        user_id: record.user_id.clone(),
        team_id: record.team_id.clone(),
        organization_id: record.organization_id.clone(),
    }
}

/// Keep the record of a new object; an id recorded already (the provider reused one) is
/// refused rather than handed to a second owner.
async fn keep(state: &AppState, record: &ManagedObject) -> Result<(), GatewayError> {
    if store(state)?.insert_managed(record).await? {
        return Ok(());
    }
    Err(GatewayError::Internal {
        message: format!(
            "The provider answered a {} id that is recorded already ('{}').",
            record.kind, record.id
        ),
    })
}

/// One zero-cost spend-log row for a create call (`acreate_file`, `acreate_batch`).
fn log_call(
    state: &AppState,
    http: &HttpRequest,
    caller: &Caller,
    call_type: &'static str,
    holder: &Holder,
    response_id: &str,
) {
    let call_id = uuid::Uuid::new_v4().to_string();
    let ctx = SpendContext::for_caller(
        state,
        &call_id,
        http,
        caller,
        call_type,
        &holder.deployment.model_name,
    );
    ctx.record(
        &holder.served(Some(response_id.to_string())),
        Usage::default(),
        0.0,
        None,
    );
}

/// `POST /v1/files`: a form with `purpose` and `file` (plus the routing fields).
pub async fn upload(
    state: &AppState,
    http: &HttpRequest,
    caller: &Caller,
    fields: Map<String, Value>,
    uploads: Vec<Upload>,
) -> Result<Value, GatewayError> {
    let purpose = fields
        .get("purpose")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            GatewayError::bad_param("purpose", "Missing required parameter: 'purpose'.")
        })?
        .to_string();
    let Some(file) = uploads.into_iter().find(|u| u.field == "file") else {
        return Err(GatewayError::bad_param(
            "file",
            "Missing required parameter: 'file' (a file part).",
        ));
    };
    let holder = upload_target(state, http, caller, &fields)?;
    let _permit =
        crate::pipeline::admit_operation(state, caller, &holder.deployment.model_name, true)
            .await?;
    let sent = fields
        .iter()
        .filter(|(k, _)| !ROUTING_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v));
    let (content_type, form) = crate::multipart::encode(sent, std::slice::from_ref(&file));
    let object = holder
        .call_json(state, Method::POST, "/files", Some((content_type, form)))
        .await?;
    let record = record(FILE, &object, &holder, &owner_of(caller), &purpose)?;
    keep(state, &record).await?;
    log_call(state, http, caller, "acreate_file", &holder, &record.id);
    Ok(Value::Object(object))
}

/// One of the caller's objects for an operation on it: the record, once the operation is
/// admitted under the caller's rate limits (the permit is held while the call runs).
async fn admitted(
    state: &AppState,
    caller: &Caller,
    kind: &str,
    id: &str,
) -> Result<(ManagedObject, crate::limits::Admission), GatewayError> {
    let record = owned(state, caller, kind, id).await?;
    let permit =
        crate::pipeline::admit_operation(state, caller, &record.model_group, false).await?;
    Ok((record, permit))
}

/// The upstream path of a file: `/files/{upstream id}{tail}`.
fn file_path(record: &ManagedObject, tail: &str) -> String {
    format!(
        "/files/{}{tail}",
        crate::providers::urls::segment(&record.upstream_id)
    )
}

/// `GET /v1/files/{id}`.
pub async fn retrieve_file(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Value, GatewayError> {
    let (record, _permit) = admitted(state, caller, FILE, id).await?;
    let holder = holder_of(state, &record)?;
    let object = holder
        .call_json(state, Method::GET, &file_path(&record, ""), None)
        .await?;
    let text = Value::Object(object.clone()).to_string();
    store(state)?
        .update_managed(&record.id, &status_of(&object), &text)
        .await?;
    Ok(Value::Object(object))
}

/// `GET /v1/files/{id}/content`: the bytes and their content type, as the provider sent them.
pub async fn file_content(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(Bytes, Option<String>), GatewayError> {
    let (record, _permit) = admitted(state, caller, FILE, id).await?;
    let holder = holder_of(state, &record)?;
    let path = file_path(&record, "/content");
    holder.call(state, Method::GET, &path, &[], None).await
}

/// `DELETE /v1/files/{id}`: deleted at the provider, then forgotten.
pub async fn delete_file(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Value, GatewayError> {
    let (record, _permit) = admitted(state, caller, FILE, id).await?;
    let holder = holder_of(state, &record)?;
    let object = holder
        .call_json(state, Method::DELETE, &file_path(&record, ""), None)
        .await?;
    store(state)?.delete_managed(FILE, &record.id).await?;
    Ok(Value::Object(object))
}

/// A list request's paging: `limit`, `after` (an id), and for files `purpose`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ListQuery {
    pub limit: Option<u64>,
    pub after: Option<String>,
    pub purpose: Option<String>,
}

/// The caller's records of `kind` (every record for the master key) after `after`, at most
/// `limit`, and whether more follow.
async fn page(
    state: &AppState,
    caller: &Caller,
    kind: &str,
    query: &ListQuery,
    default_limit: u64,
) -> Result<(Vec<ManagedObject>, bool), GatewayError> {
    let owner = caller.principal().map(|p| p.key.token.as_str());
    let mut records = store(state)?.list_managed(kind, owner).await?;
    if let Some(purpose) = &query.purpose {
        records.retain(|r| &r.purpose == purpose);
    }
    if let Some(after) = &query.after {
        match records.iter().position(|r| &r.id == after) {
            Some(i) => {
                records.drain(..=i);
            }
            None => records.clear(),
        }
    }
    let limit = query.limit.unwrap_or(default_limit).clamp(1, 10_000) as usize;
    let more = records.len() > limit;
    records.truncate(limit);
    Ok((records, more))
}

/// OpenAI's list shape.
fn list(data: Vec<Value>, more: bool) -> Value {
    let id = |v: Option<&Value>| v.and_then(|o| o.get("id")).cloned().unwrap_or(Value::Null);
    json!({
        "object": "list",
        "first_id": id(data.first()),
        "last_id": id(data.last()),
        "has_more": more,
        "data": data,
    })
}

/// `GET /v1/files`: the caller's files, newest first, as last seen.
pub async fn list_files(
    state: &AppState,
    caller: &Caller,
    query: &ListQuery,
) -> Result<Value, GatewayError> {
    // One request under the caller's rate limits (no model group: a list spans them).
    let _permit = crate::pipeline::admit_operation(state, caller, "", false).await?;
    let (records, more) = page(state, caller, FILE, query, 10_000).await?;
    let data = records
        .iter()
        .map(|r| serde_json::from_str(&r.object).unwrap_or_else(|_| json!({"id": r.id})))
        .collect();
    Ok(list(data, more))
}

/// `POST /v1/batches`: `input_file_id` (one of the caller's files), `endpoint`,
/// `completion_window`, `metadata`.
pub async fn create_batch(
    state: &AppState,
    http: &HttpRequest,
    caller: &Caller,
    body: Map<String, Value>,
) -> Result<Value, GatewayError> {
    let text = |name: &'static str| {
        body.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                GatewayError::bad_param(name, format!("Missing required parameter: '{name}'."))
            })
    };
    let input_file_id = text("input_file_id")?;
    let endpoint = text("endpoint")?.to_string();
    let file = owned(state, caller, FILE, input_file_id).await?;
    let holder = holder_of(state, &file)?;
    permitted(state, caller, &holder.deployment.model_name)?;
    let _permit =
        crate::pipeline::admit_operation(state, caller, &holder.deployment.model_name, true)
            .await?;
    let mut sent = Map::new();
    sent.insert(
        "input_file_id".into(),
        Value::String(file.upstream_id.clone()),
    );
    sent.insert("endpoint".into(), Value::String(endpoint.clone()));
    sent.insert(
        "completion_window".into(),
        body.get("completion_window")
            .cloned()
            .unwrap_or_else(|| Value::String("24h".into())),
    );
    for optional in ["metadata", "output_expires_after"] {
        if let Some(v) = body.get(optional).filter(|v| !v.is_null()) {
            sent.insert(optional.into(), v.clone());
        }
    }
    let json_body = Bytes::from(Value::Object(sent).to_string());
    let object = holder
        .call_json(
            state,
            Method::POST,
            "/batches",
            Some(("application/json".into(), json_body)),
        )
        .await?;
    let record = record(BATCH, &object, &holder, &owner_of(caller), &endpoint)?;
    keep(state, &record).await?;
    log_call(state, http, caller, "acreate_batch", &holder, &record.id);
    observe(state, &record, &holder, &object).await;
    Ok(Value::Object(object))
}

/// `GET /v1/batches/{id}`.
pub async fn retrieve_batch(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Value, GatewayError> {
    let (record, _permit) = admitted(state, caller, BATCH, id).await?;
    batch_call(state, &record, false).await
}

/// `POST /v1/batches/{id}/cancel`.
pub async fn cancel_batch(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Value, GatewayError> {
    let (record, _permit) = admitted(state, caller, BATCH, id).await?;
    batch_call(state, &record, true).await
}

/// Read (or cancel) a batch at its deployment, and take note of what it says.
async fn batch_call(
    state: &AppState,
    record: &ManagedObject,
    cancel: bool,
) -> Result<Value, GatewayError> {
    let holder = holder_of(state, record)?;
    let id = crate::providers::urls::segment(&record.upstream_id);
    let object = if cancel {
        let path = format!("/batches/{id}/cancel");
        holder.call_json(state, Method::POST, &path, None).await?
    } else {
        let path = format!("/batches/{id}");
        holder.call_json(state, Method::GET, &path, None).await?
    };
    observe(state, record, &holder, &object).await;
    Ok(Value::Object(object))
}

/// `GET /v1/batches`: the caller's batches, newest first, each read again at its deployment
/// (as last seen when that fails).
pub async fn list_batches(
    state: &AppState,
    caller: &Caller,
    query: &ListQuery,
) -> Result<Value, GatewayError> {
    let query = ListQuery {
        limit: query.limit,
        after: query.after.clone(),
        purpose: None,
    };
    // One request under the caller's rate limits (no model group: a list spans them).
    let _permit = crate::pipeline::admit_operation(state, caller, "", false).await?;
    let (records, more) = page(state, caller, BATCH, &query, 20).await?;
    let mut data = Vec::with_capacity(records.len());
    for record in &records {
        match batch_call(state, record, false).await {
            Ok(object) => data.push(object),
            Err(e) => {
                tracing::debug!(batch = record.id, error = %e, "batch not read again; listed as last seen");
                data.push(
                    serde_json::from_str(&record.object)
                        .unwrap_or_else(|_| json!({"id": record.id})),
                );
            }
        }
    }
    Ok(list(data, more))
}

/// What a batch's latest state means: the record keeps it, its output and error files become
/// the owner's files, and a completed batch's cost is recorded (once).
async fn observe(
    state: &AppState,
    record: &ManagedObject,
    holder: &Holder,
    object: &Map<String, Value>,
) {
    let Ok(store) = store(state) else {
        return;
    };
    let status = status_of(object);
    if let Err(e) = store
        .update_managed(
            &record.id,
            &status,
            &Value::Object(object.clone()).to_string(),
        )
        .await
    {
        tracing::warn!(batch = record.id, error = %e, "batch state not stored");
    }
    let owner = record_owner(record);
    for field in ["output_file_id", "error_file_id"] {
        let Some(file_id) = object.get(field).and_then(Value::as_str) else {
            continue;
        };
        if file_id.is_empty() {
            continue;
        }
        let file = json!({"id": file_id, "object": "file", "purpose": "batch_output"});
        let Value::Object(file) = file else {
            continue;
        };
        match self::record(FILE, &file, holder, &owner, "batch_output") {
            Ok(file) => {
                if let Err(e) = store.insert_managed(&file).await {
                    tracing::warn!(batch = record.id, file = file_id, error = %e, "batch file not recorded");
                }
            }
            Err(e) => tracing::warn!(batch = record.id, error = %e, "batch file not recorded"),
        }
    }
    if status == "completed" && !record.cost_recorded {
        record_cost(state, store, record, holder, object).await;
    }
}

/// Record a completed batch's cost, exactly once: the flag is claimed first (one claim wins);
/// a failed download gives it back so a later read tries again.
async fn record_cost(
    state: &AppState,
    store: &Arc<dyn Store>,
    record: &ManagedObject,
    holder: &Holder,
    object: &Map<String, Value>,
) {
    match store.set_cost_recorded(&record.id, true).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(batch = record.id, error = %e, "batch cost not claimed; a later read tries again");
            return;
        }
    }
    let output = object
        .get("output_file_id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty());
    let usage = match output {
        None => Ok(Usage::default()),
        Some(file_id) => {
            let path = format!(
                "/files/{}/content",
                crate::providers::urls::segment(file_id)
            );
            holder
                .call(state, Method::GET, &path, &[], None)
                .await
                .map(|(bytes, _)| batch_usage(&bytes))
        }
    };
    let usage = match usage {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(batch = record.id, error = %e, "batch output not read; its cost is recorded on a later read");
            if let Err(e) = store.set_cost_recorded(&record.id, false).await {
                tracing::warn!(batch = record.id, error = %e, "batch cost claim not given back");
            }
            return;
        }
    };
    let cost = holder
        .deployment
        .prices_for(&holder.target)
        .map_or(0.0, |p| p.batch_cost(&usage));
    let ctx = SpendContext::for_owner(
        state,
        &format!("{}_batch_cost", record.id),
        "aretrieve_batch",
        record_owner(record),
        &record.model_group,
    );
    ctx.record(&holder.served(Some(record.id.clone())), usage, cost, None);
    tracing::info!(
        batch = record.id,
        cost,
        prompt_tokens = usage.prompt_tokens,
        completion_tokens = usage.completion_tokens,
        "batch cost recorded"
    );
}

/// The usage of a batch output file (JSON lines): the sum of `response.body.usage` over the
/// lines whose `response.status_code` is 200 (LiteLLM skips failed lines).
pub fn batch_usage(output: &[u8]) -> Usage {
    let mut total = Usage::default();
    for line in output.split(|b| *b == b'\n') {
        let Ok(item) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        let Some(response) = item.get("response").filter(|r| !r.is_null()) else {
            continue;
        };
        if response.get("status_code").and_then(Value::as_u64) != Some(200) {
            continue;
        }
        let Some(body) = response.get("body") else {
            continue;
        };
        let Some(usage) = serde_json::from_value::<UsageEnvelope>(body.clone())
            .ok()
            .and_then(|e| e.usage)
        else {
            continue;
        };
        total.prompt_tokens += usage.prompt_tokens;
        total.completion_tokens += usage.completion_tokens;
        total.total_tokens += usage.total_tokens;
        total.cached_tokens += usage.cached_tokens;
        total.reasoning_tokens += usage.reasoning_tokens;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_usage_sums_successful_lines() {
        let output = br#"{"id":"r1","custom_id":"a","response":{"status_code":200,"body":{"usage":{"prompt_tokens":10,"completion_tokens":4,"total_tokens":14}}},"error":null}
{"id":"r2","custom_id":"b","response":{"status_code":200,"body":{"usage":{"prompt_tokens":6,"completion_tokens":2,"total_tokens":8,"prompt_tokens_details":{"cached_tokens":3}}}},"error":null}
{"id":"r3","custom_id":"c","response":{"status_code":400,"body":{"usage":{"prompt_tokens":100,"completion_tokens":100,"total_tokens":200}}},"error":null}
{"id":"r4","custom_id":"d","response":null,"error":{"code":"x","message":"y"}}
not json
"#;
        let u = batch_usage(output);
        assert_eq!(
            (
                u.prompt_tokens,
                u.completion_tokens,
                u.total_tokens,
                u.cached_tokens
            ),
            (16, 6, 22, 3)
        );
    }
}
