//! What every management route shares: authentication, the JSON body as an object, the store,
//! field allow-lists (no mass assignment), and the JSON shape of stored records.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::{Map, Value};

use crate::auth::Caller;
use crate::error::GatewayError;
use crate::state::AppState;
use crate::store::{EntityKind, EntityRecord, KeyFilter, KeyRecord, Store};
use crate::time::iso8601;

/// Management bodies are small; anything larger is refused.
pub const MAX_BODY: usize = 1024 * 1024;

/// Marks (in a user's `data`, never shown) an email that no proxy admin set: member-adds by
/// email do not bind to it.
pub const EMAIL_NOT_BY_ADMIN: &str = "user_email_not_set_by_admin";

/// The authenticated caller of a management route, with the store.
pub struct Ctx {
    pub caller: Caller,
    pub store: Arc<dyn Store>,
}

impl Ctx {
    /// The entity, or 404 naming it.
    pub async fn find(&self, kind: EntityKind, id: &str) -> Result<EntityRecord, GatewayError> {
        self.store
            .get_entity(kind, id)
            .await?
            .ok_or_else(|| GatewayError::NotFound {
                message: format!("{} {id} not found", kind.name()),
            })
    }

    /// Store a changed entity, stamping who changed it and when; 404 if it is gone.
    pub async fn save(
        &self,
        kind: EntityKind,
        entity: &mut EntityRecord,
    ) -> Result<(), GatewayError> {
        entity.updated_at = crate::time::now_ms();
        entity.updated_by = Some(self.caller.actor_id());
        if !self.store.update_entity(kind, entity).await? {
            return Err(GatewayError::NotFound {
                message: format!("{} {} not found", kind.name(), entity.id),
            });
        }
        Ok(())
    }

    /// The user a team or organization member entry names (by `user_id`, else `user_email`),
    /// created as an `internal_user` when unknown.
    ///
    /// Binding by email trusts the email, so it binds only to a user whose email a proxy admin
    /// set: a user cannot change its own (`/user/update`), and a user created here by anyone
    /// else carries its email marked [`EMAIL_NOT_BY_ADMIN`] (until an admin sets it), which no
    /// member-add by email binds to. A new user's email must be free.
    pub async fn user_for_member(
        &self,
        user_id: Option<&str>,
        email: Option<&str>,
    ) -> Result<EntityRecord, GatewayError> {
        let found = match (user_id, email) {
            (Some(id), _) => self.store.get_entity(EntityKind::User, id).await?,
            (None, Some(e)) => {
                let user = self.store.find_entity_by_alias(EntityKind::User, e).await?;
                if let Some(u) = user
                    .as_ref()
                    .filter(|u| u.data.contains_key(EMAIL_NOT_BY_ADMIN))
                {
                    return Err(GatewayError::bad_param(
                        "user_email",
                        format!(
                            "the user_email {e} of user {} was not set by a proxy admin; add the member by user_id",
                            u.id
                        ),
                    ));
                }
                user
            }
            (None, None) => None,
        };
        if let Some(u) = found {
            return Ok(u);
        }
        if let Some(e) = email {
            if self
                .store
                .find_entity_by_alias(EntityKind::User, e)
                .await?
                .is_some()
            {
                return Err(GatewayError::bad_param(
                    "user_email",
                    format!("a user with user_email {e} already exists"),
                ));
            }
        }
        let now = crate::time::now_ms();
        let mut data = Map::new();
        data.insert(
            "user_role".into(),
            Value::String(crate::auth::Role::InternalUser.as_str().into()),
        );
        data.insert("teams".into(), Value::Array(Vec::new()));
        if email.is_some() && !self.caller.is_admin() {
            data.insert(EMAIL_NOT_BY_ADMIN.into(), Value::Bool(true));
        }
        let user = EntityRecord {
            id: user_id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string),
            alias: email.map(str::to_string),
            spend: 0.0,
            blocked: false,
            created_at: now,
            updated_at: now,
            created_by: Some(self.caller.actor_id()),
            updated_by: Some(self.caller.actor_id()),
            data,
        };
        self.store.insert_entity(EntityKind::User, &user).await?;
        Ok(user)
    }

    /// Every key matching `filter`, page by page.
    pub async fn all_keys(&self, filter: &KeyFilter) -> Result<Vec<KeyRecord>, GatewayError> {
        let mut out = Vec::new();
        let mut page = page(Some(1), Some(100), 100);
        loop {
            let (records, total) = self.store.list_keys(filter, page).await?;
            let done = records.is_empty() || out.len() as u64 + records.len() as u64 >= total;
            out.extend(records);
            if done {
                return Ok(out);
            }
            page.page += 1;
        }
    }

    /// Delete every key matching `filter` (a deleted user's or team's keys).
    pub async fn delete_keys_where(&self, filter: &KeyFilter) -> Result<(), GatewayError> {
        let tokens: Vec<String> = self
            .all_keys(filter)
            .await?
            .into_iter()
            .map(|k| k.token)
            .collect();
        if !tokens.is_empty() {
            self.store.delete_keys(&tokens).await?;
        }
        Ok(())
    }

    /// Every entity of a kind, page by page.
    pub async fn all_entities(&self, kind: EntityKind) -> Result<Vec<EntityRecord>, GatewayError> {
        let mut out = Vec::new();
        let mut page = page(Some(1), Some(100), 100);
        loop {
            let (records, total) = self.store.list_entities(kind, page).await?;
            let done = records.is_empty() || out.len() as u64 + records.len() as u64 >= total;
            out.extend(records);
            if done {
                return Ok(out);
            }
            page.page += 1;
        }
    }

    /// One page when the query asks for one, else everything.
    pub async fn all_or_page(
        &self,
        kind: EntityKind,
        page_no: Option<u64>,
        size: Option<u64>,
    ) -> Result<Vec<EntityRecord>, GatewayError> {
        if page_no.is_some() || size.is_some() {
            return Ok(self
                .store
                .list_entities(kind, page(page_no, size, 100))
                .await?
                .0);
        }
        self.all_entities(kind).await
    }
}

/// Authenticate and check the caller may use the management API at all, then get the store
/// (503 while the database is unreachable).
pub async fn ctx(state: &AppState, req: &HttpRequest) -> Result<Ctx, GatewayError> {
    let caller = state.auth.authenticate(req).await?;
    caller.require_management(&format!("call {}", req.path()))?;
    let store = state.db.store()?.clone();
    Ok(Ctx { caller, store })
}

/// Read the body as a JSON object (`{}` when empty).
pub async fn body_object(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Map<String, Value>, GatewayError> {
    let raw = super::read_body(req, payload, MAX_BODY).await?;
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&raw) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(GatewayError::bad_request(
            "Request body must be a JSON object",
        )),
        Err(e) => Err(GatewayError::bad_request(format!(
            "Malformed JSON in request body: {e}"
        ))),
    }
}

/// Turn a handler result into a response.
pub fn respond(result: Result<Value, GatewayError>) -> HttpResponse {
    match result {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => e.error_response(),
    }
}

/// The type a field must have.
#[derive(Clone, Copy)]
pub enum Kind {
    Str,
    Number,
    Integer,
    Bool,
    StrList,
    Object,
    Any,
}

fn kind_ok(kind: Kind, v: &Value) -> bool {
    v.is_null()
        || match kind {
            Kind::Str => v.is_string(),
            Kind::Number => v.as_f64().is_some_and(|n| n >= 0.0),
            Kind::Integer => v.as_i64().is_some_and(|n| n >= 0),
            Kind::Bool => v.is_boolean(),
            Kind::StrList => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            Kind::Object => v.is_object(),
            Kind::Any => true,
        }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Str => "a string",
        Kind::Number => "a non-negative number",
        Kind::Integer => "a non-negative integer",
        Kind::Bool => "a boolean",
        Kind::StrList => "a list of strings",
        Kind::Object => "an object",
        Kind::Any => "any value",
    }
}

/// Copy the allowed fields of `body` into `data`, checking their types. Fields not in `allowed`
/// are never stored (no mass assignment); explicit `null` clears a field.
pub fn apply_fields(
    body: &Map<String, Value>,
    allowed: &[(&str, Kind)],
    data: &mut Map<String, Value>,
) -> Result<(), GatewayError> {
    for (name, kind) in allowed {
        let Some(v) = body.get(*name) else { continue };
        if !kind_ok(*kind, v) {
            return Err(GatewayError::bad_param(
                name,
                format!("'{name}' must be {}", kind_name(*kind)),
            ));
        }
        if v.is_null() {
            data.remove(*name);
        } else {
            data.insert((*name).to_string(), v.clone());
        }
    }
    Ok(())
}

/// An optional string field of a body.
pub fn opt_str(body: &Map<String, Value>, name: &str) -> Result<Option<String>, GatewayError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
        Some(_) => Err(GatewayError::bad_param(
            name,
            format!("'{name}' must be a non-empty string"),
        )),
    }
}

/// A list of strings from a body field (`{"keys": [...]}`).
pub fn str_list(body: &Map<String, Value>, name: &str) -> Result<Vec<String>, GatewayError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => Ok(a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()),
        Some(_) => Err(GatewayError::bad_param(
            name,
            format!("'{name}' must be a list of strings"),
        )),
    }
}

/// An optional string as JSON (`null` when absent).
pub fn opt(v: &Option<String>) -> Value {
    v.as_ref().map_or(Value::Null, |s| Value::String(s.clone()))
}

/// A field name and the value shown when it was never set.
type FieldDefault = (&'static str, fn() -> Value);

/// Defaults LiteLLM shows for key fields that were never set.
const KEY_DEFAULTS: &[FieldDefault] = &[
    ("models", || Value::Array(Vec::new())),
    ("aliases", || Value::Object(Map::new())),
    ("config", || Value::Object(Map::new())),
    ("permissions", || Value::Object(Map::new())),
    ("metadata", || Value::Object(Map::new())),
    ("allowed_cache_controls", || Value::Array(Vec::new())),
    ("model_max_budget", || Value::Object(Map::new())),
    ("model_spend", || Value::Object(Map::new())),
    ("max_budget", || Value::Null),
    ("soft_budget", || Value::Null),
    ("budget_duration", || Value::Null),
    ("budget_reset_at", || Value::Null),
    ("tpm_limit", || Value::Null),
    ("rpm_limit", || Value::Null),
    ("max_parallel_requests", || Value::Null),
];

/// A key as the API shows it (never the plaintext key).
pub fn key_json(k: &KeyRecord) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, default) in KEY_DEFAULTS {
        out.insert((*name).to_string(), default());
    }
    for (name, v) in &k.data {
        out.insert(name.clone(), v.clone());
    }
    out.insert("token".into(), Value::String(k.token.clone()));
    out.insert("key_name".into(), Value::String(k.key_name.clone()));
    out.insert("key_alias".into(), opt(&k.key_alias));
    out.insert("user_id".into(), opt(&k.user_id));
    out.insert("team_id".into(), opt(&k.team_id));
    out.insert("organization_id".into(), opt(&k.organization_id));
    out.insert("budget_id".into(), opt(&k.budget_id));
    out.insert("blocked".into(), Value::Bool(k.blocked));
    out.insert(
        "expires".into(),
        k.expires.map_or(Value::Null, |e| Value::String(iso8601(e))),
    );
    out.insert("spend".into(), Value::from(k.spend));
    out.insert("created_at".into(), Value::String(iso8601(k.created_at)));
    out.insert("updated_at".into(), Value::String(iso8601(k.updated_at)));
    out.insert("created_by".into(), opt(&k.created_by));
    out.insert("updated_by".into(), opt(&k.updated_by));
    out
}

/// A user, team, organization, end user or budget as the API shows it: its `data` fields, its
/// id and alias under the entity's own names, spend, blocked and timestamps.
pub fn entity_json(
    e: &EntityRecord,
    id_field: &str,
    alias_field: Option<&str>,
) -> Map<String, Value> {
    let mut out = e.data.clone();
    out.insert(id_field.to_string(), Value::String(e.id.clone()));
    if let Some(alias) = alias_field {
        out.insert(alias.to_string(), opt(&e.alias));
    }
    out.insert("spend".into(), Value::from(e.spend));
    out.insert("blocked".into(), Value::Bool(e.blocked));
    out.insert("created_at".into(), Value::String(iso8601(e.created_at)));
    out.insert("updated_at".into(), Value::String(iso8601(e.updated_at)));
    out.insert("created_by".into(), opt(&e.created_by));
    out.insert("updated_by".into(), opt(&e.updated_by));
    out
}

/// `page` (from 1) and `size` (1..=100, default `default_size`) from a query.
pub fn page(page: Option<u64>, size: Option<u64>, default_size: u64) -> crate::store::Page {
    crate::store::Page {
        page: page.unwrap_or(1).max(1),
        size: size.unwrap_or(default_size).clamp(1, 100),
    }
}
