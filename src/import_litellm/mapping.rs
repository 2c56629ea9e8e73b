//! LiteLLM rows → Tollgate records. Pure functions over the rows [`super::source`] reads: each
//! maps the columns the gateway uses to its own fields (LiteLLM's names, as the management API
//! speaks them) and keeps every other column with a value in `metadata.litellm`, so nothing is
//! dropped. A row that cannot be carried over is an `Err` with the reason.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::auth::Role;
use crate::store::{EntityKind, EntityRecord, KeyRecord, SpendLog};

/// One row, by column name.
pub type Row = Map<String, Value>;

/// The members of teams and organizations, from LiteLLM's membership tables, and the groups of
/// each user.
#[derive(Debug, Default)]
pub struct Memberships {
    /// Organization id → its members (`{"user_id", "user_email", "role"}`).
    pub organization_members: BTreeMap<String, Vec<Value>>,
    /// User id → the organizations it belongs to.
    pub user_organizations: BTreeMap<String, BTreeSet<String>>,
    /// User id → the teams it belongs to (from every team's members).
    pub user_teams: BTreeMap<String, BTreeSet<String>>,
    /// Team id → LiteLLM's per-member spend and budget (`LiteLLM_TeamMembership`).
    pub team_memberships: BTreeMap<String, Vec<Value>>,
    /// User id → its email, to fill members LiteLLM stored without one.
    pub emails: BTreeMap<String, String>,
}

fn text(row: &Row, col: &str) -> Option<String> {
    match row.get(col) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn number(row: &Row, col: &str) -> Option<f64> {
    row.get(col).and_then(Value::as_f64)
}

fn flag(row: &Row, col: &str) -> bool {
    row.get(col).and_then(Value::as_bool).unwrap_or(false)
}

/// A LiteLLM timestamp (`timestamp(3) without time zone`, UTC) as unix ms.
pub fn timestamp(row: &Row, col: &str) -> Option<i64> {
    let raw = row.get(col)?.as_str()?;
    crate::time::parse(raw).or_else(|| crate::time::parse(&format!("{raw}Z")))
}

fn iso(row: &Row, col: &str) -> Option<Value> {
    timestamp(row, col).map(|ms| Value::String(crate::time::iso8601(ms)))
}

/// Whether a column's value says something (not null, not an empty list, object or string).
fn has_value(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

/// Copy the columns in `fields` that have a value into `data`, under the same name.
fn copy(row: &Row, fields: &[&str], data: &mut Map<String, Value>) {
    for f in fields {
        if let Some(v) = row.get(*f).filter(|v| has_value(v)) {
            data.insert((*f).to_string(), v.clone());
        }
    }
}

/// The columns not in `used` that have a value, kept in `metadata.litellm` of `data`.
fn keep_rest(row: &Row, used: &[&str], data: &mut Map<String, Value>) {
    let rest: Map<String, Value> = row
        .iter()
        .filter(|(k, v)| !used.contains(&k.as_str()) && has_value(v))
        .filter(|(_, v)| !matches!(v, Value::Bool(false)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut metadata = match row.get("metadata") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    if !rest.is_empty() {
        metadata.insert("litellm".into(), Value::Object(rest));
    }
    if !metadata.is_empty() {
        data.insert("metadata".into(), Value::Object(metadata));
    }
}

/// Columns every table has that map to a record's own columns.
const RECORD_COLUMNS: &[&str] = &[
    "spend",
    "metadata",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
    "blocked",
    // LiteLLM's running totals beside `spend`, recomputed by the gateway from its own rows.
    "total_spend",
];

/// A record of `row`. Its `created_at` / `updated_at` are 0 when LiteLLM's table has no such
/// column (end users): the import keeps the stored record's, or takes the time of the import.
fn record(row: &Row, id: String, alias: Option<String>, data: Map<String, Value>) -> EntityRecord {
    let created_at = timestamp(row, "created_at").unwrap_or(0);
    EntityRecord {
        id,
        alias,
        spend: number(row, "spend").unwrap_or(0.0),
        blocked: flag(row, "blocked"),
        created_at,
        updated_at: timestamp(row, "updated_at").unwrap_or(created_at),
        created_by: text(row, "created_by"),
        updated_by: text(row, "updated_by"),
        data,
    }
}

fn required(row: &Row, col: &str) -> Result<String, String> {
    text(row, col).ok_or_else(|| format!("it has no {col}"))
}

/// The limits a LiteLLM budget row holds, as entity fields.
const BUDGET_LIMITS: &[&str] = &[
    "max_budget",
    "soft_budget",
    "max_parallel_requests",
    "tpm_limit",
    "rpm_limit",
    "model_max_budget",
    "budget_duration",
];

/// `LiteLLM_BudgetTable` → a budget.
pub fn budget(row: &Row) -> Result<EntityRecord, String> {
    let id = required(row, "budget_id")?;
    let mut data = Map::new();
    copy(row, BUDGET_LIMITS, &mut data);
    if let Some(at) = iso(row, "budget_reset_at") {
        data.insert("budget_reset_at".into(), at);
    }
    let used: Vec<&str> = [
        RECORD_COLUMNS,
        BUDGET_LIMITS,
        &["budget_id", "budget_reset_at"],
    ]
    .concat();
    keep_rest(row, &used, &mut data);
    Ok(record(row, id, None, data))
}

/// The limits of the budget a row points at (organizations and end users in LiteLLM take their
/// limits from their `budget_id`): copied onto the entity, which is where the gateway enforces them.
fn budget_limits_of(row: &Row, budgets: &BTreeMap<String, Row>, data: &mut Map<String, Value>) {
    let Some(budget) = text(row, "budget_id").and_then(|id| budgets.get(&id)) else {
        return;
    };
    for f in BUDGET_LIMITS {
        if let Some(v) = budget.get(*f).filter(|v| has_value(v)) {
            data.entry((*f).to_string()).or_insert_with(|| v.clone());
        }
    }
    if let Some(at) = iso(budget, "budget_reset_at") {
        data.entry("budget_reset_at").or_insert(at);
    }
}

/// `LiteLLM_OrganizationTable` → an organization, with its members and its budget's limits.
pub fn organization(
    row: &Row,
    budgets: &BTreeMap<String, Row>,
    members: &Memberships,
) -> Result<EntityRecord, String> {
    let id = required(row, "organization_id")?;
    let alias = required(row, "organization_alias")?;
    let mut data = Map::new();
    copy(row, &["budget_id", "models", "model_spend"], &mut data);
    budget_limits_of(row, budgets, &mut data);
    data.insert(
        "members".into(),
        Value::Array(
            members
                .organization_members
                .get(&id)
                .cloned()
                .unwrap_or_default(),
        ),
    );
    let used: Vec<&str> = [
        RECORD_COLUMNS,
        &[
            "organization_id",
            "organization_alias",
            "budget_id",
            "models",
            "model_spend",
        ],
    ]
    .concat();
    keep_rest(row, &used, &mut data);
    Ok(record(row, id, Some(alias), data))
}

/// LiteLLM's user roles the gateway has; any other (an SSO-only role) becomes `internal_user`.
fn role(row: &Row) -> Value {
    let role = text(row, "user_role")
        .and_then(|r| Role::parse(&r))
        .unwrap_or(Role::InternalUser);
    Value::String(role.as_str().into())
}

/// `LiteLLM_UserTable` → a user, with its teams and organizations. Its password is not carried
/// over (see [`super`]).
pub fn user(row: &Row, members: &Memberships) -> Result<EntityRecord, String> {
    let id = required(row, "user_id")?;
    let mut data = Map::new();
    const FIELDS: &[&str] = &[
        "user_alias",
        "models",
        "max_budget",
        "budget_duration",
        "tpm_limit",
        "rpm_limit",
        "max_parallel_requests",
        "allowed_cache_controls",
        "model_spend",
        "model_max_budget",
        "sso_user_id",
    ];
    copy(row, FIELDS, &mut data);
    data.insert("user_role".into(), role(row));
    if let Some(at) = iso(row, "budget_reset_at") {
        data.insert("budget_reset_at".into(), at);
    }
    let mut teams: BTreeSet<String> = row
        .get("teams")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    teams.extend(members.user_teams.get(&id).cloned().unwrap_or_default());
    data.insert("teams".into(), json!(teams));
    let mut organizations: BTreeSet<String> = members
        .user_organizations
        .get(&id)
        .cloned()
        .unwrap_or_default();
    if let Some(org) = text(row, "organization_id") {
        organizations.insert(org);
    }
    if !organizations.is_empty() {
        data.insert("organizations".into(), json!(organizations));
    }
    let used: Vec<&str> = [
        RECORD_COLUMNS,
        FIELDS,
        &[
            "user_id",
            "user_email",
            "user_role",
            "teams",
            "budget_reset_at",
            "organization_id",
            // Never carried: LiteLLM's password hash is not one the gateway can check.
            "password",
        ],
    ]
    .concat();
    keep_rest(row, &used, &mut data);
    Ok(record(row, id, text(row, "user_email"), data))
}

/// A team's members with roles: LiteLLM's `members_with_roles`, else its older `admins` /
/// `members` lists, each as `{"user_id", "user_email", "role"}`.
pub fn team_members(row: &Row, emails: &BTreeMap<String, String>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut push = |user_id: Option<String>, email: Option<String>, role: &str| {
        let Some(user_id) = user_id else { return };
        if !seen.insert(user_id.clone()) {
            return;
        }
        let email = email.or_else(|| emails.get(&user_id).cloned());
        out.push(json!({"user_id": user_id, "user_email": email, "role": role}));
    };
    for m in row
        .get("members_with_roles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let role = match m.get("role").and_then(Value::as_str) {
            Some("admin") => "admin",
            _ => "user",
        };
        let id = m.get("user_id").and_then(Value::as_str).map(str::to_string);
        let email = m
            .get("user_email")
            .and_then(Value::as_str)
            .map(str::to_string);
        push(id, email, role);
    }
    for (col, role) in [("admins", "admin"), ("members", "user")] {
        for id in row
            .get(col)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            push(Some(id.to_string()), None, role);
        }
    }
    out
}

/// `LiteLLM_TeamTable` → a team, with its members.
pub fn team(row: &Row, members: &Memberships) -> Result<EntityRecord, String> {
    let id = required(row, "team_id")?;
    let mut data = Map::new();
    const FIELDS: &[&str] = &[
        "organization_id",
        "tpm_limit",
        "rpm_limit",
        "max_parallel_requests",
        "max_budget",
        "soft_budget",
        "budget_duration",
        "models",
        "model_spend",
        "model_max_budget",
        "team_member_permissions",
    ];
    copy(row, FIELDS, &mut data);
    if let Some(at) = iso(row, "budget_reset_at") {
        data.insert("budget_reset_at".into(), at);
    }
    data.insert(
        "members_with_roles".into(),
        Value::Array(team_members(row, &members.emails)),
    );
    let used: Vec<&str> = [
        RECORD_COLUMNS,
        FIELDS,
        &[
            "team_id",
            "team_alias",
            "budget_reset_at",
            "members_with_roles",
            "admins",
            "members",
        ],
    ]
    .concat();
    keep_rest(row, &used, &mut data);
    if let Some(memberships) = members.team_memberships.get(&id) {
        let metadata = data
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = metadata {
            let litellm = m
                .entry("litellm")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(l) = litellm {
                l.insert("team_memberships".into(), Value::Array(memberships.clone()));
            }
        }
    }
    Ok(record(row, id, text(row, "team_alias"), data))
}

/// `LiteLLM_EndUserTable` → an end user, with its budget's limits.
pub fn end_user(row: &Row, budgets: &BTreeMap<String, Row>) -> Result<EntityRecord, String> {
    let id = required(row, "user_id")?;
    let mut data = Map::new();
    const FIELDS: &[&str] = &[
        "allowed_model_region",
        "default_model",
        "budget_id",
        "models",
    ];
    copy(row, FIELDS, &mut data);
    if let Some(region) = data.get("allowed_model_region").and_then(Value::as_str) {
        if !["eu", "us"].contains(&region) {
            return Err(format!(
                "its allowed_model_region '{region}' is not eu or us"
            ));
        }
    }
    budget_limits_of(row, budgets, &mut data);
    let used: Vec<&str> = [RECORD_COLUMNS, FIELDS, &["user_id", "alias"]].concat();
    keep_rest(row, &used, &mut data);
    Ok(record(row, id, text(row, "alias"), data))
}

/// The key columns kept in the key's data under the same name.
const KEY_FIELDS: &[&str] = &[
    "models",
    "aliases",
    "config",
    "permissions",
    "max_parallel_requests",
    "tpm_limit",
    "rpm_limit",
    "max_budget",
    "budget_duration",
    "allowed_cache_controls",
    "allowed_routes",
    "model_spend",
    "model_max_budget",
    "key_type",
];

/// `LiteLLM_VerificationToken` → a key. LiteLLM stores the SHA-256 hex of each key, as the
/// gateway does, so the keys applications hold keep working.
pub fn key(row: &Row) -> Result<KeyRecord, String> {
    let token = required(row, "token")?;
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("its token is not a SHA-256 hash of a key (a key LiteLLM stored unhashed, or a JWT mapping)".into());
    }
    let token = token.to_ascii_lowercase();
    let mut data = Map::new();
    copy(row, KEY_FIELDS, &mut data);
    if let Some(kind) = data.get("key_type").and_then(Value::as_str) {
        if !["llm_api", "management", "read_only", "default"].contains(&kind) {
            data.remove("key_type");
        }
    }
    if let Some(at) = iso(row, "budget_reset_at") {
        data.insert("budget_reset_at".into(), at);
    }
    let used: Vec<&str> = [
        RECORD_COLUMNS,
        KEY_FIELDS,
        &[
            "token",
            "key_name",
            "key_alias",
            "user_id",
            "team_id",
            "organization_id",
            "budget_id",
            "expires",
            "budget_reset_at",
        ],
    ]
    .concat();
    keep_rest(row, &used, &mut data);
    let now = crate::time::now_ms();
    let created_at = timestamp(row, "created_at").unwrap_or(now);
    Ok(KeyRecord {
        key_name: text(row, "key_name").unwrap_or_else(|| format!("sk-...{}", &token[60..])),
        token,
        key_alias: text(row, "key_alias"),
        user_id: text(row, "user_id"),
        team_id: text(row, "team_id"),
        organization_id: text(row, "organization_id"),
        budget_id: text(row, "budget_id"),
        blocked: flag(row, "blocked"),
        expires: timestamp(row, "expires"),
        spend: number(row, "spend").unwrap_or(0.0),
        created_at,
        updated_at: timestamp(row, "updated_at").unwrap_or(created_at),
        created_by: text(row, "created_by"),
        updated_by: text(row, "updated_by"),
        data,
    })
}

/// A stored model's `litellm_params` with LiteLLM's sealed values opened. LiteLLM seals every
/// string value; one that is not sealed (written by hand) is kept as it is, and one that is sealed
/// but does not open with `salt_key` fails the model.
pub fn model_params(
    row: &Row,
    salt_key: Option<&crate::secret::Secret>,
) -> Result<Map<String, Value>, String> {
    let Some(Value::Object(sealed)) = row.get("litellm_params") else {
        return Err("it has no litellm_params".into());
    };
    let mut params = Map::new();
    for (name, value) in sealed {
        let opened = match (value, salt_key) {
            (Value::String(s), Some(salt)) => match crate::crypto::open_litellm(salt, s) {
                Ok(plain) => Value::String(plain),
                Err(crate::crypto::CryptoError::Malformed) => value.clone(),
                Err(_) => {
                    return Err(format!(
                        "its litellm_params.{name} does not open with the salt key: set LITELLM_SALT_KEY (or the master key) to the one the LiteLLM proxy used"
                    ))
                }
            },
            _ => value.clone(),
        };
        params.insert(name.clone(), opened);
    }
    Ok(params)
}

/// `LiteLLM_SpendLogs` → a spend-log row.
pub fn spend_log(row: &Row) -> Result<SpendLog, String> {
    let request_id = required(row, "request_id")?;
    let start_time = timestamp(row, "startTime").ok_or("it has no startTime")?;
    let json_text = |col: &str| row.get(col).filter(|v| has_value(v)).map(Value::to_string);
    let mut metadata = match row.get("metadata") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    for extra in [
        "custom_llm_provider",
        "session_id",
        "completionStartTime",
        "request_duration_ms",
        "litellm_call_id",
    ] {
        if let Some(v) = row.get(extra).filter(|v| has_value(v)) {
            metadata
                .entry("litellm")
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .map(|m| m.insert(extra.to_string(), v.clone()));
        }
    }
    let status = match text(row, "status").as_deref() {
        Some("failure") => "failure",
        _ => "success",
    };
    Ok(SpendLog {
        request_id,
        call_type: text(row, "call_type").unwrap_or_default(),
        api_key: text(row, "api_key").unwrap_or_default(),
        spend: number(row, "spend").unwrap_or(0.0),
        total_tokens: number(row, "total_tokens").unwrap_or(0.0) as i64,
        prompt_tokens: number(row, "prompt_tokens").unwrap_or(0.0) as i64,
        completion_tokens: number(row, "completion_tokens").unwrap_or(0.0) as i64,
        start_time,
        end_time: timestamp(row, "endTime").unwrap_or(start_time),
        model: text(row, "model").unwrap_or_default(),
        model_id: text(row, "model_id"),
        model_group: text(row, "model_group"),
        api_base: text(row, "api_base").map(|b| crate::secret::display_url(&b)),
        user_id: text(row, "user"),
        team_id: text(row, "team_id"),
        organization_id: text(row, "organization_id"),
        end_user: text(row, "end_user"),
        status: status.into(),
        metadata: Value::Object(metadata).to_string(),
        response_id: None,
        cache_hit: text(row, "cache_hit").is_some_and(|c| c.eq_ignore_ascii_case("true")),
        cache_key: text(row, "cache_key").filter(|k| k != "Cache OFF"),
        request_tags: json_text("request_tags").unwrap_or_else(|| "[]".into()),
        requester_ip_address: text(row, "requester_ip_address"),
        messages: json_text("messages"),
        response: json_text("response"),
    })
}

/// The memberships of LiteLLM's membership tables and teams.
pub fn memberships(
    users: &[Row],
    teams: &[Row],
    organization_members: &[Row],
    team_memberships: &[Row],
) -> Memberships {
    let mut m = Memberships::default();
    for u in users {
        if let (Some(id), Some(email)) = (text(u, "user_id"), text(u, "user_email")) {
            m.emails.insert(id, email);
        }
    }
    for row in organization_members {
        let (Some(user), Some(org)) = (text(row, "user_id"), text(row, "organization_id")) else {
            continue;
        };
        let role = text(row, "user_role").unwrap_or_else(|| "internal_user".into());
        m.organization_members
            .entry(org.clone())
            .or_default()
            .push(json!({"user_id": user, "user_email": m.emails.get(&user), "role": role}));
        m.user_organizations.entry(user).or_default().insert(org);
    }
    for t in teams {
        let Some(team_id) = text(t, "team_id") else {
            continue;
        };
        for member in team_members(t, &m.emails) {
            if let Some(user) = member.get("user_id").and_then(Value::as_str) {
                m.user_teams
                    .entry(user.to_string())
                    .or_default()
                    .insert(team_id.clone());
            }
        }
    }
    for row in team_memberships {
        if let Some(team) = text(row, "team_id") {
            let mut kept = row.clone();
            kept.remove("team_id");
            m.team_memberships
                .entry(team)
                .or_default()
                .push(Value::Object(kept));
        }
    }
    m
}

/// Which entity kind a table fills.
pub fn kind_name(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::User => "users",
        EntityKind::Team => "teams",
        EntityKind::Organization => "organizations",
        EntityKind::EndUser => "end users",
        EntityKind::Budget => "budgets",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(v: Value) -> Row {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_key_keeps_its_hash_fields_and_the_rest_in_metadata() {
        let token = "a".repeat(64);
        let k = key(&row(json!({
            "token": token,
            "key_name": "sk-...wxyz",
            "key_alias": "app",
            "spend": 1.5,
            "expires": "2030-01-02T03:04:05.000",
            "models": ["gpt-4o"],
            "max_budget": 10.0,
            "rpm_limit": 5,
            "budget_reset_at": "2030-01-01T00:00:00",
            "metadata": {"owner": "x"},
            "blocked": null,
            "rotation_count": 3,
            "auto_rotate": false,
            "allowed_routes": [],
        })))
        .unwrap();
        assert_eq!(k.token, token);
        assert_eq!(k.key_alias.as_deref(), Some("app"));
        assert_eq!(k.expires, crate::time::parse("2030-01-02T03:04:05Z"));
        assert!(!k.blocked);
        assert_eq!(k.data["models"], json!(["gpt-4o"]));
        assert_eq!(k.data["rpm_limit"], json!(5));
        assert_eq!(k.data["budget_reset_at"], "2030-01-01T00:00:00.000Z");
        assert_eq!(k.data["metadata"]["owner"], "x");
        assert_eq!(k.data["metadata"]["litellm"], json!({"rotation_count": 3}));
        assert!(!k.data.contains_key("allowed_routes"));
        assert!(key(&row(json!({"token": "sk-plain"}))).is_err());
    }

    #[test]
    fn team_members_come_from_every_list_once() {
        let emails = BTreeMap::from([("u2".to_string(), "u2@x".to_string())]);
        let members = team_members(
            &row(json!({
                "members_with_roles": [{"user_id": "u1", "role": "admin", "user_email": "u1@x"}],
                "admins": ["u1"],
                "members": ["u2"],
            })),
            &emails,
        );
        assert_eq!(
            members,
            vec![
                json!({"user_id": "u1", "user_email": "u1@x", "role": "admin"}),
                json!({"user_id": "u2", "user_email": "u2@x", "role": "user"}),
            ]
        );
    }

    #[test]
    fn organizations_and_end_users_take_their_budgets_limits() {
        let budgets = BTreeMap::from([(
            "b1".to_string(),
            row(json!({"budget_id": "b1", "max_budget": 7.0, "rpm_limit": 3})),
        )]);
        let e = end_user(
            &row(json!({"user_id": "cust", "budget_id": "b1", "allowed_model_region": "eu"})),
            &budgets,
        )
        .unwrap();
        assert_eq!(e.data["max_budget"], json!(7.0));
        assert_eq!(e.data["rpm_limit"], json!(3));
        assert!(end_user(
            &row(json!({"user_id": "c", "allowed_model_region": "mars"})),
            &budgets
        )
        .is_err());
    }

    #[test]
    fn sealed_model_params_open_and_plain_ones_stay() {
        let salt = crate::secret::Secret::new("sk-litellm-salt-for-import-tests");
        let params = model_params(
            &row(json!({"litellm_params": {
                "api_key": "OeQlNCWvxQyJ6iJ8NaVIy/9K+OjM16ZVmvNtC+bk3x5BOcXg0ofpBp0hTTSR6WsP2zAILvQzeH9uNWzCOp4=",
                "model": "openai/gpt-4o",
                "rpm": 10,
            }})),
            Some(&salt),
        )
        .unwrap();
        assert_eq!(params["api_key"], "sk-upstream-secret-123");
        assert_eq!(params["model"], "openai/gpt-4o");
        assert_eq!(params["rpm"], 10);
        let wrong = crate::secret::Secret::new("not-the-salt");
        let err = model_params(
            &row(json!({"litellm_params": {"api_key": "OeQlNCWvxQyJ6iJ8NaVIy/9K+OjM16ZVmvNtC+bk3x5BOcXg0ofpBp0hTTSR6WsP2zAILvQzeH9uNWzCOp4="}})),
            Some(&wrong),
        )
        .unwrap_err();
        assert!(err.contains("LITELLM_SALT_KEY"), "{err}");
    }

    #[test]
    fn spend_logs_keep_litellms_columns() {
        let log = spend_log(&row(json!({
            "request_id": "r1",
            "call_type": "acompletion",
            "api_key": "b".repeat(64),
            "spend": 0.25,
            "total_tokens": 30,
            "startTime": "2026-01-01T00:00:00.000",
            "endTime": "2026-01-01T00:00:01.500",
            "cache_hit": "True",
            "cache_key": "Cache OFF",
            "request_tags": ["a"],
            "status": "success",
            "custom_llm_provider": "openai",
        })))
        .unwrap();
        assert_eq!(log.end_time - log.start_time, 1500);
        assert!(log.cache_hit);
        assert_eq!(log.cache_key, None);
        assert_eq!(log.request_tags, r#"["a"]"#);
        assert!(log.metadata.contains("custom_llm_provider"));
    }
}
