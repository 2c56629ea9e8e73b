//! The management domain: what the management routes do with users, keys, teams, organizations,
//! end users and budgets, apart from HTTP.
//!
//! Each entity is described once ([`Entity`], the descriptions are in [`entities`]): its kind,
//! the fields it stores with their [`Kind`]s, the defaults shown for fields never set, its id and
//! alias fields, the checks its fields need, and how it renders to JSON. The operations here
//! (create, update, block, list, settings) work on any description; every change of stored
//! records runs in one database transaction ([`crate::store::Store::modify`]), on SQLite and
//! Postgres alike. Handlers in `src/http/` only pick the description and the operation.
//!
//! Who may call a route is declared in the route table and checked at authentication; the
//! operations take the authenticated caller ([`Ctx`]) for `created_by` / `updated_by`.

pub mod activity;
pub mod entities;
pub mod groups;
pub mod keys;
pub mod users;

use serde_json::{json, Map, Value};

use crate::error::GatewayError;
use crate::http::manage::{apply_fields, check_fields, entity_json, opt_str, str_list};
pub use crate::http::manage::{Ctx, Kind};
use crate::keys::{parse_duration, DURATION_HINT};
use crate::store::{EntityKind, EntityRecord, StoreError, TxEffects};
use crate::time::{iso8601, now_ms};

/// A field name and the value shown when it was never set.
pub type Shown = (&'static str, fn() -> Value);

/// A check a field's value needs beyond its [`Kind`].
pub enum Check {
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// The id of an existing entity of this kind.
    Exists(EntityKind),
}

/// An entity's alias field (an organization's `organization_alias`, an end user's `alias`).
pub struct Alias {
    pub field: &'static str,
    /// Creating needs it, and an update cannot clear it.
    pub required: bool,
    /// No two entities of the kind share it (the database's unique index backs this up).
    pub unique: bool,
}

/// The declarative description of one kind of management entity.
pub struct Entity {
    pub kind: EntityKind,
    /// The entity's id field in bodies and answers (`budget_id`, `organization_id`, `user_id`).
    pub id_field: &'static str,
    /// Creating needs the id (otherwise a new one is made up).
    pub id_required: bool,
    pub alias: Option<Alias>,
    /// The fields kept in the record's `data`, with their types. Nothing else is stored (no mass
    /// assignment); only proxy admins write them.
    pub fields: &'static [(&'static str, Kind)],
    /// The fields a caller who is not a proxy admin may change on a record it may change (its
    /// own user, its team as team admin); every other field is admin-only.
    pub own_fields: &'static [(&'static str, Kind)],
    /// What each field means, for settings listings (`/budget/settings`).
    pub about: &'static [(&'static str, &'static str)],
    /// Checks fields need beyond their kinds.
    pub checks: &'static [(&'static str, Check)],
    /// Values shown for fields never set.
    pub shown: &'static [Shown],
    /// [`entities::LIMITS_SHOWN`] are shown too.
    pub limits_shown: bool,
    /// The fields shown again under `litellm_budget_table` (none: no such table).
    pub budget_table: &'static [&'static str],
    /// The body may set `blocked`.
    pub blocked_in_body: bool,
    /// The body may set `budget_reset_at` itself.
    pub reset_at_in_body: bool,
    /// The `data` a new record starts with besides its fields (an organization's `members`).
    pub initial: &'static [Shown],
}

/// The values shown for fields never set: `shown`, and with `limits` [`entities::LIMITS_SHOWN`].
pub fn shown(shown: &[Shown], limits: bool) -> Map<String, Value> {
    let limits = if limits { entities::LIMITS_SHOWN } else { &[] };
    shown
        .iter()
        .chain(limits)
        .map(|(name, default)| ((*name).to_string(), default()))
        .collect()
}

/// A null shown for a field never set.
pub fn null() -> Value {
    Value::Null
}

/// An empty list shown for a field never set.
pub fn empty_list() -> Value {
    Value::Array(Vec::new())
}

/// An empty object shown for a field never set.
pub fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// A required string field of a body.
pub fn required(body: &Map<String, Value>, field: &str) -> Result<String, GatewayError> {
    opt_str(body, field)?
        .ok_or_else(|| GatewayError::bad_param(field, format!("'{field}' is required")))
}

/// The ids a body lists in `field`: at least one, of entities of `kind`.
pub fn ids_listed(
    body: &Map<String, Value>,
    field: &str,
    kind: EntityKind,
) -> Result<Vec<String>, GatewayError> {
    let ids = str_list(body, field)?;
    if ids.is_empty() {
        return Err(GatewayError::bad_param(
            field,
            format!("'{field}' must list at least one {}", kind.name()),
        ));
    }
    Ok(ids)
}

/// When the body sets `budget_duration`: check it and set `budget_reset_at` to `from` + the
/// duration (or clear it with the duration). Shared by every entity with a budget.
pub fn apply_budget_duration(
    body: &Map<String, Value>,
    data: &mut Map<String, Value>,
    from: i64,
) -> Result<(), GatewayError> {
    match body.get("budget_duration") {
        None => Ok(()),
        Some(Value::Null) => {
            data.remove("budget_reset_at");
            Ok(())
        }
        Some(Value::String(d)) => {
            let ms = parse_duration(d).ok_or_else(|| {
                GatewayError::bad_param(
                    "budget_duration",
                    format!("invalid budget_duration '{d}': {}", DURATION_HINT),
                )
            })?;
            data.insert("budget_reset_at".into(), Value::String(iso8601(from + ms)));
            Ok(())
        }
        Some(_) => Err(GatewayError::bad_param(
            "budget_duration",
            "'budget_duration' must be a string such as \"30d\"",
        )),
    }
}

/// An explicit `budget_reset_at` (ISO 8601), normalized; it wins over the one a duration implies.
fn apply_reset_at(
    body: &Map<String, Value>,
    data: &mut Map<String, Value>,
) -> Result<(), GatewayError> {
    let invalid = || {
        GatewayError::bad_param(
            "budget_reset_at",
            "'budget_reset_at' must be an ISO 8601 timestamp",
        )
    };
    match body.get("budget_reset_at") {
        None => Ok(()),
        Some(Value::Null) => {
            data.remove("budget_reset_at");
            Ok(())
        }
        Some(Value::String(s)) => {
            let ms = crate::time::parse(s).ok_or_else(invalid)?;
            data.insert("budget_reset_at".into(), Value::String(iso8601(ms)));
            Ok(())
        }
        Some(_) => Err(invalid()),
    }
}

/// An error found inside a transaction, as the store reports it.
fn in_transaction(e: GatewayError) -> StoreError {
    match e {
        GatewayError::BadRequest { param, message, .. } => StoreError::Invalid {
            field: param.unwrap_or_default(),
            message,
        },
        other => StoreError::Invalid {
            field: String::new(),
            message: other.to_string(),
        },
    }
}

impl Entity {
    /// A record as the API shows it: defaults for fields never set, its `data`, id, alias,
    /// spend, blocked, timestamps and (where the entity has one) its `litellm_budget_table`.
    pub fn json_map(&self, e: &EntityRecord) -> Map<String, Value> {
        let mut out = shown(self.shown, self.limits_shown);
        out.extend(entity_json(
            e,
            self.id_field,
            self.alias.as_ref().map(|a| a.field),
        ));
        if !self.budget_table.is_empty() {
            let budget: Map<String, Value> = self
                .budget_table
                .iter()
                .map(|f| {
                    (
                        (*f).to_string(),
                        e.data.get(*f).cloned().unwrap_or(Value::Null),
                    )
                })
                .collect();
            out.insert("litellm_budget_table".into(), Value::Object(budget));
        }
        out
    }

    /// [`Entity::json_map`] as a JSON value.
    pub fn json(&self, e: &EntityRecord) -> Value {
        Value::Object(self.json_map(e))
    }

    /// Every record rendered.
    pub fn json_list(&self, records: &[EntityRecord]) -> Value {
        Value::Array(records.iter().map(|r| self.json(r)).collect())
    }

    /// Check a body before anything is written: field types, the checks of the description, and
    /// that a unique alias is free (`own_id`: the entity being updated).
    async fn check(
        &self,
        c: &Ctx,
        body: &Map<String, Value>,
        own_id: Option<&str>,
    ) -> Result<(), GatewayError> {
        check_fields(body, self.fields, "")?;
        if self.blocked_in_body {
            blocked_of(body)?;
        }
        for (field, check) in self.checks {
            let Some(v) = opt_str(body, field)? else {
                continue;
            };
            match check {
                Check::OneOf(allowed) if !allowed.contains(&v.as_str()) => {
                    return Err(GatewayError::bad_param(
                        field,
                        format!("invalid {field} '{v}': use one of {allowed:?}"),
                    ))
                }
                Check::Exists(kind) if c.store.get_entity(*kind, &v).await?.is_none() => {
                    return Err(GatewayError::bad_param(
                        field,
                        format!("{} {v} does not exist", kind.name()),
                    ))
                }
                _ => {}
            }
        }
        if let Some(alias) = &self.alias {
            let value = opt_str(body, alias.field)?;
            let present = body.contains_key(alias.field);
            if alias.required && value.is_none() && (own_id.is_none() || present) {
                let why = if own_id.is_none() {
                    "is required"
                } else {
                    "cannot be empty"
                };
                return Err(GatewayError::bad_param(
                    alias.field,
                    format!("'{}' {why}", alias.field),
                ));
            }
            if let Some(a) = value.filter(|_| alias.unique) {
                if let Some(other) = c.store.find_entity_by_alias(self.kind, &a).await? {
                    if Some(other.id.as_str()) != own_id {
                        return Err(GatewayError::bad_param(
                            alias.field,
                            format!(
                                "{} '{a}' is already used by {} {}",
                                alias.field,
                                self.kind.name(),
                                other.id
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Apply a checked body to a record: its fields, budget reset time, alias and blocked state.
    fn apply(
        &self,
        body: &Map<String, Value>,
        record: &mut EntityRecord,
        now: i64,
        admin: bool,
    ) -> Result<(), GatewayError> {
        if !admin {
            apply_fields(body, self.own_fields, &mut record.data)?;
            return self.apply_alias(body, record);
        }
        apply_fields(body, self.fields, &mut record.data)?;
        if self.fields.iter().any(|(f, _)| *f == "budget_duration") {
            apply_budget_duration(body, &mut record.data, now)?;
        }
        if self.reset_at_in_body {
            apply_reset_at(body, &mut record.data)?;
        }
        if self.blocked_in_body {
            if let Some(b) = blocked_of(body)? {
                record.blocked = b;
            }
        }
        self.apply_alias(body, record)
    }

    fn apply_alias(
        &self,
        body: &Map<String, Value>,
        record: &mut EntityRecord,
    ) -> Result<(), GatewayError> {
        if let Some(alias) = self.alias.as_ref().filter(|a| body.contains_key(a.field)) {
            record.alias = opt_str(body, alias.field)?;
        }
        Ok(())
    }

    /// A caller who is not a proxy admin may name only the id, the alias and the entity's own
    /// fields (403 naming the first other field).
    fn check_own_fields(&self, body: &Map<String, Value>) -> Result<(), GatewayError> {
        let allowed = |f: &str| {
            f == self.id_field
                || self.alias.as_ref().is_some_and(|a| a.field == f)
                || self.own_fields.iter().any(|(a, _)| *a == f)
        };
        match body.keys().find(|f| !allowed(f)) {
            Some(field) => Err(GatewayError::Forbidden {
                message: format!(
                    "only proxy admins can change '{field}' of a {}",
                    self.kind.name()
                ),
            }),
            None => Ok(()),
        }
    }

    /// A write that hit the unique alias index: the alias was taken meanwhile.
    fn alias_conflict(&self, e: StoreError, body: &Map<String, Value>) -> GatewayError {
        let alias = self
            .alias
            .as_ref()
            .and_then(|a| Some((a.field, body.get(a.field)?.as_str()?)));
        match (e, alias) {
            (StoreError::Conflict(what), Some((field, a))) if what.contains("alias") => {
                GatewayError::bad_param(
                    field,
                    format!(
                        "{field} '{a}' is already used by another {}",
                        self.kind.name()
                    ),
                )
            }
            (e, _) => e.into(),
        }
    }

    /// The record, or 404 naming it.
    pub async fn find(&self, c: &Ctx, id: &str) -> Result<EntityRecord, GatewayError> {
        c.find(self.kind, id).await
    }

    /// The records a body lists in `field` (at least one; every one must exist).
    pub async fn listed(
        &self,
        c: &Ctx,
        body: &Map<String, Value>,
        field: &str,
    ) -> Result<Vec<EntityRecord>, GatewayError> {
        let ids = ids_listed(body, field, self.kind)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in &ids {
            out.push(self.find(c, id).await?);
        }
        Ok(out)
    }

    /// Create a record from a body.
    pub async fn create(
        &self,
        c: &Ctx,
        body: &Map<String, Value>,
    ) -> Result<EntityRecord, GatewayError> {
        let id = if self.id_required {
            required(body, self.id_field)?
        } else {
            opt_str(body, self.id_field)?.unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
        };
        self.check(c, body, None).await?;
        let now = now_ms();
        let initial = self
            .initial
            .iter()
            .map(|(name, v)| ((*name).to_string(), v()));
        let mut record = c.new_record(id, None, initial.collect(), now);
        self.apply(body, &mut record, now, true)?;
        c.store
            .insert_entity(self.kind, &record)
            .await
            .map_err(|e| self.alias_conflict(e, body))?;
        Ok(record)
    }

    /// Update the record `id` from a body, in one transaction on the locked row: what others
    /// changed meanwhile and the body does not name (an organization's members) is kept. With
    /// `admin` false only the entity's own fields (and its alias) may be changed.
    pub async fn update(
        &'static self,
        c: &Ctx,
        id: &str,
        body: &Map<String, Value>,
        admin: bool,
    ) -> Result<EntityRecord, GatewayError> {
        self.find(c, id).await?;
        if !admin {
            self.check_own_fields(body)?;
        }
        self.check(c, body, Some(id)).await?;
        let (changes, actor, now, id) =
            (body.clone(), c.caller.actor_id(), now_ms(), id.to_string());
        let done = c
            .store
            .modify(
                vec![(self.kind, id.clone())],
                Box::new(move |rows| {
                    let row = &mut rows[0];
                    let Some(record) = row.record.as_mut() else {
                        return Err(StoreError::NotFound(format!(
                            "{} {id} not found",
                            self.kind.name()
                        )));
                    };
                    self.apply(&changes, record, now, admin)
                        .map_err(in_transaction)?;
                    record.updated_at = now;
                    record.updated_by = Some(actor);
                    row.changed = true;
                    Ok(TxEffects::default())
                }),
            )
            .await
            .map_err(|e| self.alias_conflict(e, body))?;
        written(done.entities)
    }

    /// Block or unblock records, in one transaction. Returns them as written.
    pub async fn set_blocked(
        &'static self,
        c: &Ctx,
        ids: Vec<String>,
        blocked: bool,
    ) -> Result<Vec<EntityRecord>, GatewayError> {
        let (actor, now, kind) = (c.caller.actor_id(), now_ms(), self.kind);
        let targets = ids.iter().map(|id| (kind, id.clone())).collect();
        let done = c
            .store
            .modify(
                targets,
                Box::new(move |rows| {
                    for row in rows.iter_mut() {
                        let Some(record) = row.record.as_mut() else {
                            return Err(StoreError::NotFound(format!(
                                "{} {} not found",
                                kind.name(),
                                row.id
                            )));
                        };
                        record.blocked = blocked;
                        record.updated_at = now;
                        record.updated_by = Some(actor.clone());
                        row.changed = true;
                    }
                    Ok(TxEffects::default())
                }),
            )
            .await?;
        Ok(done.entities.into_iter().filter_map(|l| l.record).collect())
    }

    /// Delete records (their ids), in one statement.
    pub async fn delete(&self, c: &Ctx, ids: &[String]) -> Result<(), GatewayError> {
        c.store.delete_entities(self.kind, ids).await?;
        Ok(())
    }

    /// One page of records when the query asks for one, else all of them, rendered.
    pub async fn list(
        &self,
        c: &Ctx,
        page: Option<u64>,
        page_size: Option<u64>,
    ) -> Result<Value, GatewayError> {
        Ok(self.json_list(&c.all_or_page(self.kind, page, page_size).await?))
    }

    /// LiteLLM's settings listing of one record: for each field, its name, type, description,
    /// value, whether a value is stored, and its default.
    pub fn settings(&self, e: &EntityRecord) -> Value {
        let defaults = shown(self.shown, self.limits_shown);
        Value::Array(
            self.fields
                .iter()
                .map(|(name, kind)| {
                    let value = e.data.get(*name).cloned().unwrap_or(Value::Null);
                    let default = defaults.get(*name).cloned().unwrap_or(Value::Null);
                    json!({
                        "field_name": name,
                        "field_type": kind.type_name(),
                        "field_description": self
                            .about
                            .iter()
                            .find(|(n, _)| n == name)
                            .map_or("", |(_, a)| a),
                        "stored_in_db": !value.is_null(),
                        "field_value": value,
                        "field_default_value": default,
                    })
                })
                .collect(),
        )
    }
}

/// The one record a single-row transaction wrote.
fn written(rows: Vec<crate::store::Locked>) -> Result<EntityRecord, GatewayError> {
    rows.into_iter()
        .next()
        .and_then(|l| l.record)
        .ok_or_else(|| GatewayError::Internal {
            message: "the transaction wrote no record".into(),
        })
}

/// `blocked` from a body, when given.
fn blocked_of(body: &Map<String, Value>) -> Result<Option<bool>, GatewayError> {
    match body.get("blocked") {
        None | Some(Value::Null) => Ok(None),
        Some(b) => b
            .as_bool()
            .map(Some)
            .ok_or_else(|| GatewayError::bad_param("blocked", "'blocked' must be a boolean")),
    }
}
