//! What every management route shares: authentication, the JSON body as an object, the store,
//! field allow-lists (no mass assignment), and the JSON shape of stored records.

use std::sync::Arc;

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
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
#[derive(Clone)]
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

    /// A new record created by the caller at `now`: no spend, not blocked.
    pub fn new_record(
        &self,
        id: String,
        alias: Option<String>,
        data: Map<String, Value>,
        now: i64,
    ) -> EntityRecord {
        EntityRecord {
            id,
            alias,
            spend: 0.0,
            blocked: false,
            created_at: now,
            updated_at: now,
            created_by: Some(self.caller.actor_id()),
            updated_by: Some(self.caller.actor_id()),
            data,
        }
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
        let user = self.new_record(
            user_id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string),
            email.map(str::to_string),
            data,
            now,
        );
        // Insert-if-absent, then read: parallel requests naming one new user all get its row.
        Ok(self
            .store
            .insert_entity_if_absent(EntityKind::User, &user)
            .await?)
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
    refuse_nul_in_path_and_query(req)?;
    let store = state.db.store()?.clone();
    Ok(Ctx { caller, store })
}

/// The authenticated caller of a management route as a handler argument: authentication (with
/// the route table's check), the management gate, the NUL check of path and query, then the
/// store. Put it before [`Body`] so a refused caller is answered before its body is read.
impl FromRequest for Ctx {
    type Error = GatewayError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, GatewayError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let c = ctx(&*app_state(&req)?, &req).await?;
            req.extensions_mut().insert(c.clone());
            Ok(c)
        })
    }
}

/// The authenticated caller of any route (the route table's access checked), as a handler
/// argument; a refused caller is answered with the OpenAI error envelope.
pub struct Authenticated(pub Caller);

impl FromRequest for Authenticated {
    type Error = GatewayError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, GatewayError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = app_state(&req)?;
            Ok(Authenticated(state.auth.authenticate(&req).await?))
        })
    }
}

fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, GatewayError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| GatewayError::Internal {
            message: "the application state is missing".into(),
        })
}

/// A management request's body as a checked JSON object ([`body_object`]), as a handler argument.
pub struct Body(pub Map<String, Value>);

impl FromRequest for Body {
    type Error = GatewayError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, GatewayError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = web::Payload::from_request(&req, payload);
        Box::pin(async move {
            // actix polls a handler's extractors together: while the caller's authentication
            // is still pending, authenticate here too, so a refused caller is answered as such
            // and its body is never read.
            let authenticated = req.extensions().contains::<Ctx>();
            if !authenticated {
                ctx(&*app_state(&req)?, &req).await?;
            }
            let payload = payload
                .await
                .map_err(|e| GatewayError::bad_request(e.to_string()))?;
            body_object(&req, payload).await.map(Body)
        })
    }
}

impl std::ops::Deref for Body {
    type Target = Map<String, Value>;
    fn deref(&self) -> &Map<String, Value> {
        &self.0
    }
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
        Ok(Value::Object(map)) => {
            refuse_nul_in_body(&map)?;
            Ok(map)
        }
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

/// The longest id, alias, name or other single string a management field takes, in bytes.
pub const MAX_STR: usize = 256;
/// The longest `api_base` URL, in bytes.
pub const MAX_URL: usize = 2048;
/// The most entries a list or map field holds.
pub const MAX_ENTRIES: usize = 1000;

/// Postgres cannot store NUL in text, and no id, name or setting needs one: a NUL anywhere in a
/// management body (values, nested values, object keys) is refused, naming the top-level field.
fn refuse_nul_in_body(body: &Map<String, Value>) -> Result<(), GatewayError> {
    fn has_nul(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(a) => a.iter().any(has_nul),
            Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    match body.iter().find(|(k, v)| k.contains('\0') || has_nul(v)) {
        Some((name, _)) => Err(nul_error(name)),
        None => Ok(()),
    }
}

/// The same for the path parameters (`/key/{key}/regenerate`) and the query string of a
/// management route.
fn refuse_nul_in_path_and_query(req: &HttpRequest) -> Result<(), GatewayError> {
    let nul = |s: &str| s.contains('\0') || s.to_ascii_lowercase().contains("%00");
    if let Some((name, _)) = req.match_info().iter().find(|(_, v)| nul(v)) {
        return Err(nul_error(name));
    }
    if let Ok(pairs) = web::Query::<Vec<(String, String)>>::from_query(req.query_string()) {
        if let Some((name, _)) = pairs.iter().find(|(k, v)| nul(k) || nul(v)) {
            return Err(nul_error(name));
        }
    }
    Ok(())
}

fn nul_error(name: &str) -> GatewayError {
    let name = name.replace('\0', "\\u0000");
    GatewayError::bad_param(
        &name,
        format!("'{name}' must not contain a NUL character (\\u0000)"),
    )
}

/// The type (and range) a field must have.
#[derive(Clone, Copy)]
pub enum Kind {
    /// A string of at most [`MAX_STR`] bytes.
    Str,
    /// A non-negative number.
    Number,
    /// A non-negative integer.
    Integer,
    Bool,
    /// At most [`MAX_ENTRIES`] strings of at most [`MAX_STR`] bytes each.
    StrList,
    /// Any JSON object (bounded by the body size).
    Object,
    /// A LiteLLM duration (`30s`, `30m` / `30min`, `30h`, `30d`, `2w`, `1mo`) of at most 100 years.
    Duration,
    /// At most [`MAX_ENTRIES`] entries name → string (`aliases`, `model_aliases`).
    StrMap,
    /// At most [`MAX_ENTRIES`] entries model → non-negative integer (`model_rpm_limit`).
    CountMap,
    /// At most [`MAX_ENTRIES`] entries model → non-negative number or
    /// `{"budget_limit": number, "time_period": duration}` (`model_max_budget`).
    BudgetMap,
    /// An `http` or `https` URL with a host, at most [`MAX_URL`] bytes (`api_base`).
    Url,
}

impl Kind {
    /// The type's name in settings listings (`/budget/settings`), as LiteLLM names them.
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Str | Kind::Duration | Kind::Url => "String",
            Kind::Number => "Float",
            Kind::Integer => "Integer",
            Kind::Bool => "Boolean",
            Kind::StrList => "List",
            Kind::Object | Kind::StrMap | Kind::CountMap | Kind::BudgetMap => "Dict",
        }
    }
}

fn short_str(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.len() <= MAX_STR)
}

fn non_negative(v: &Value) -> bool {
    v.as_f64().is_some_and(|n| n.is_finite() && n >= 0.0)
}

fn map_ok(v: &Value, entry_ok: impl Fn(&Value) -> bool) -> bool {
    v.as_object().is_some_and(|m| {
        m.len() <= MAX_ENTRIES && m.iter().all(|(k, v)| k.len() <= MAX_STR && entry_ok(v))
    })
}

fn budget_entry_ok(v: &Value) -> bool {
    match v {
        Value::Object(o) => {
            o.get("budget_limit").is_some_and(non_negative)
                && o.keys().all(|k| k == "budget_limit" || k == "time_period")
                && o.get("time_period").is_none_or(|t| {
                    t.is_null() || t.as_str().and_then(crate::keys::parse_duration).is_some()
                })
        }
        v => non_negative(v),
    }
}

fn url_ok(v: &Value) -> bool {
    let Some(s) = v.as_str().filter(|s| s.len() <= MAX_URL) else {
        return false;
    };
    // A reference to the operator's environment, resolved when the deployment is built.
    if let Some(var) = s.strip_prefix("os.environ/") {
        return !var.is_empty() && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    }
    match s.parse::<actix_web::http::Uri>() {
        Ok(uri) => {
            matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.host().is_some_and(|h| !h.is_empty())
        }
        Err(_) => false,
    }
}

fn kind_ok(kind: Kind, v: &Value) -> bool {
    v.is_null()
        || match kind {
            Kind::Str => short_str(v),
            Kind::Number => non_negative(v),
            Kind::Integer => v.as_i64().is_some_and(|n| n >= 0),
            Kind::Bool => v.is_boolean(),
            Kind::StrList => v
                .as_array()
                .is_some_and(|a| a.len() <= MAX_ENTRIES && a.iter().all(short_str)),
            Kind::Object => v.is_object(),
            Kind::Duration => v.as_str().and_then(crate::keys::parse_duration).is_some(),
            Kind::StrMap => map_ok(v, short_str),
            Kind::CountMap => map_ok(v, |n| n.as_i64().is_some_and(|n| n >= 0)),
            Kind::BudgetMap => map_ok(v, budget_entry_ok),
            Kind::Url => url_ok(v),
        }
}

fn kind_name(kind: Kind) -> String {
    match kind {
        Kind::Str => format!("a string of at most {MAX_STR} bytes"),
        Kind::Number => "a non-negative number".into(),
        Kind::Integer => "a non-negative integer".into(),
        Kind::Bool => "a boolean (true or false)".into(),
        Kind::StrList => {
            format!("a list of at most {MAX_ENTRIES} strings of at most {MAX_STR} bytes each")
        }
        Kind::Object => "an object".into(),
        Kind::Duration => format!("a duration such as \"30d\" ({})", crate::keys::DURATION_HINT),
        Kind::StrMap => format!(
            "an object of at most {MAX_ENTRIES} entries, each a string of at most {MAX_STR} bytes"
        ),
        Kind::CountMap => format!(
            "an object of at most {MAX_ENTRIES} entries model → non-negative integer"
        ),
        Kind::BudgetMap => format!(
            "an object of at most {MAX_ENTRIES} entries model → non-negative number or {{\"budget_limit\": non-negative number, \"time_period\": duration}} ({})",
            crate::keys::DURATION_HINT
        ),
        Kind::Url => format!(
            "an http:// or https:// URL with a host (or os.environ/NAME), at most {MAX_URL} bytes"
        ),
    }
}

/// Check one field's value against its kind (`null` always passes: it clears the field).
pub fn check_field(name: &str, kind: Kind, v: &Value) -> Result<(), GatewayError> {
    if kind_ok(kind, v) {
        Ok(())
    } else {
        Err(GatewayError::bad_param(
            name,
            format!("'{name}' must be {}", kind_name(kind)),
        ))
    }
}

/// Check the fields of `body` named in `allowed` without storing anything.
pub fn check_fields(
    body: &Map<String, Value>,
    allowed: &[(&str, Kind)],
    prefix: &str,
) -> Result<(), GatewayError> {
    for (name, kind) in allowed {
        if let Some(v) = body.get(*name) {
            check_field(&format!("{prefix}{name}"), *kind, v)?;
        }
    }
    Ok(())
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
        check_field(name, *kind, v)?;
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
        Some(Value::String(s)) if !s.trim().is_empty() && s.trim().len() <= MAX_STR => {
            Ok(Some(s.trim().to_string()))
        }
        Some(_) => Err(GatewayError::bad_param(
            name,
            format!("'{name}' must be a non-empty string of at most {MAX_STR} bytes"),
        )),
    }
}

/// The user a body (or a member entry) names: `user_id` and/or `user_email`, at least one of
/// them (else a 400 naming `param` with `message`).
pub fn user_id_or_email(
    body: &Map<String, Value>,
    param: &str,
    message: &str,
) -> Result<(Option<String>, Option<String>), GatewayError> {
    let user_id = opt_str(body, "user_id")?;
    let email = opt_str(body, "user_email")?;
    if user_id.is_none() && email.is_none() {
        return Err(GatewayError::bad_param(param, message));
    }
    Ok((user_id, email))
}

/// An optional boolean field of a body (`"yes"`, `1` and other non-booleans are refused).
pub fn opt_bool(body: &Map<String, Value>, name: &str) -> Result<Option<bool>, GatewayError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(GatewayError::bad_param(
            name,
            format!("'{name}' must be a boolean (true or false)"),
        )),
    }
}

/// A list of strings from a body field (`{"keys": [...]}`).
pub fn str_list(body: &Map<String, Value>, name: &str) -> Result<Vec<String>, GatewayError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(v) if kind_ok(Kind::StrList, v) => Ok(v
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()),
        Some(_) => Err(GatewayError::bad_param(
            name,
            format!("'{name}' must be {}", kind_name(Kind::StrList)),
        )),
    }
}

/// An optional string as JSON (`null` when absent).
pub fn opt(v: &Option<String>) -> Value {
    v.as_ref().map_or(Value::Null, |s| Value::String(s.clone()))
}

/// A key as the API shows it (never the plaintext key).
pub fn key_json(k: &KeyRecord) -> Map<String, Value> {
    let mut out = crate::management::shown(crate::management::entities::KEY_SHOWN, true);
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

/// The query of a list route: one page of it, or (neither given) everything.
#[derive(serde::Deserialize)]
pub struct ListQuery {
    pub page: Option<u64>,
    pub page_size: Option<u64>,
}

/// `page` (from 1) and `size` (1..=100, default `default_size`) from a query.
pub fn page(page: Option<u64>, size: Option<u64>, default_size: u64) -> crate::store::Page {
    crate::store::Page {
        page: page.unwrap_or(1).max(1),
        size: size.unwrap_or(default_size).clamp(1, 100),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(kind: Kind, v: Value) -> bool {
        check_field("f", kind, &v).is_ok()
    }

    #[test]
    fn kinds_check_type_and_range() {
        let long = "x".repeat(MAX_STR + 1);
        let max = "x".repeat(MAX_STR);
        let many: Vec<String> = (0..=MAX_ENTRIES).map(|i| i.to_string()).collect();
        let wide: Map<String, Value> = (0..=MAX_ENTRIES)
            .map(|i| (i.to_string(), json!("m")))
            .collect();
        // null clears a field of any kind
        for kind in [Kind::Str, Kind::Bool, Kind::Url, Kind::BudgetMap] {
            assert!(ok(kind, Value::Null));
        }
        assert!(ok(Kind::Str, json!(max)) && !ok(Kind::Str, json!(long)));
        assert!(!ok(Kind::Str, json!(1)));
        assert!(ok(Kind::Bool, json!(false)));
        for v in [json!("yes"), json!(1), json!("true")] {
            assert!(!ok(Kind::Bool, v));
        }
        assert!(ok(Kind::Number, json!(0)) && ok(Kind::Number, json!(2.5)));
        for v in [json!(-0.01), json!("1"), json!(true)] {
            assert!(!ok(Kind::Number, v));
        }
        assert!(ok(Kind::Integer, json!(0)) && ok(Kind::Integer, json!(i64::MAX)));
        for v in [json!(-1), json!(1.5), json!("1"), json!(u64::MAX)] {
            assert!(!ok(Kind::Integer, v));
        }
        assert!(ok(Kind::StrList, json!(many[..MAX_ENTRIES])));
        assert!(!ok(Kind::StrList, json!(many)));
        assert!(!ok(Kind::StrList, json!([long])));
        assert!(!ok(Kind::StrList, json!([1])));
        assert!(ok(Kind::Duration, json!("36500d")));
        for v in [
            json!("36501d"),
            json!("99999999999d"),
            json!("0s"),
            json!(5),
        ] {
            assert!(!ok(Kind::Duration, v));
        }
        assert!(ok(Kind::StrMap, json!({"fast": "gpt-4o"})));
        assert!(!ok(Kind::StrMap, Value::Object(wide)));
        for v in [
            json!({"fast": 1}),
            json!({"fast": null}),
            json!({(long.clone()): "m"}),
            json!(["m"]),
        ] {
            assert!(!ok(Kind::StrMap, v));
        }
        assert!(ok(Kind::CountMap, json!({"gpt-4o": 0, "b": 10})));
        for v in [
            json!({"m": -1}),
            json!({"m": 1.5}),
            json!({"m": "1"}),
            json!([1]),
        ] {
            assert!(!ok(Kind::CountMap, v));
        }
        assert!(ok(
            Kind::BudgetMap,
            json!({"a": 1.5, "b": {"budget_limit": 2}, "c": {"budget_limit": 0, "time_period": "30d"}})
        ));
        for v in [
            json!({"m": -1}),
            json!({"m": "1"}),
            json!({"m": {"budget_limit": -1}}),
            json!({"m": {"time_period": "1d"}}),
            json!({"m": {"budget_limit": 1, "time_period": "99999999999d"}}),
            json!({"m": {"budget_limit": 1, "other": 1}}),
        ] {
            assert!(!ok(Kind::BudgetMap, v));
        }
        for v in [
            "http://127.0.0.1:8080/v1",
            "https://api.example.com",
            "os.environ/AZURE_API_BASE",
        ] {
            assert!(ok(Kind::Url, json!(v)), "{v}");
        }
        for v in [
            "file:///etc/passwd",
            "gopher://h/",
            "ftp://h/",
            "http://",
            "http:///x",
            "h:80",
            "os.environ/",
            "os.environ/A B",
            "",
        ] {
            assert!(!ok(Kind::Url, json!(v)), "{v}");
        }
        let err = check_field("model_rpm_limit", Kind::CountMap, &json!({"m": -1})).unwrap_err();
        assert!(err.to_string().contains("model_rpm_limit"), "{err}");
    }

    #[test]
    fn strings_are_bounded_and_bools_are_bools() {
        let body = json!({"id": "x".repeat(MAX_STR + 1), "ok": " a ", "b": "yes", "c": true, "l": ["a", 1]});
        let body = body.as_object().unwrap();
        assert!(opt_str(body, "id").is_err());
        assert_eq!(opt_str(body, "ok").unwrap().as_deref(), Some("a"));
        assert!(opt_bool(body, "b").is_err());
        assert_eq!(opt_bool(body, "c").unwrap(), Some(true));
        assert_eq!(opt_bool(body, "missing").unwrap(), None);
        assert!(str_list(body, "l").is_err());
    }

    #[test]
    fn nul_anywhere_in_a_body_names_its_field() {
        for (body, field) in [
            (json!({"user_id": "a\u{0}b"}), "user_id"),
            (json!({"metadata": {"deep": [{"x": "\u{0}"}]}}), "metadata"),
            (json!({"metadata": {"k\u{0}": 1}}), "metadata"),
            (json!({"a\u{0}": 1}), "a\\u0000"),
        ] {
            let err = refuse_nul_in_body(body.as_object().unwrap()).unwrap_err();
            match err {
                GatewayError::BadRequest { param, .. } => assert_eq!(param.as_deref(), Some(field)),
                other => panic!("{other:?}"),
            }
        }
        assert!(refuse_nul_in_body(json!({"a": ["b", {"c": "d"}]}).as_object().unwrap()).is_ok());
    }
}
