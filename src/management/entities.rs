//! The description of each management entity: the fields it stores and their types, the checks
//! they need, the defaults LiteLLM shows for fields never set, and its budget table.

use serde_json::Value;

use super::{empty_list, empty_object, null, Alias, Check, Entity, Kind, Shown};
use crate::auth::Role;
use crate::store::EntityKind;

/// A budget: a reusable set of limits that keys, end users and organizations point at by
/// `budget_id`.
pub static BUDGET: Entity = Entity {
    kind: EntityKind::Budget,
    id_field: "budget_id",
    id_required: false,
    alias: None,
    fields: &[
        ("max_budget", Kind::Number),
        ("soft_budget", Kind::Number),
        ("max_parallel_requests", Kind::Integer),
        ("tpm_limit", Kind::Integer),
        ("rpm_limit", Kind::Integer),
        ("budget_duration", Kind::Duration),
        ("model_max_budget", Kind::BudgetMap),
    ],
    about: &[
        (
            "max_budget",
            "Requests fail once this budget (in USD) is spent.",
        ),
        (
            "soft_budget",
            "Requests do not fail when this is exceeded; alerts fire.",
        ),
        (
            "max_parallel_requests",
            "Most concurrent requests allowed under this budget.",
        ),
        ("tpm_limit", "Most tokens per minute under this budget."),
        ("rpm_limit", "Most requests per minute under this budget."),
        (
            "budget_duration",
            "How often the spend is reset (e.g. '30s', '30m', '1h', '1d', '1mo').",
        ),
        (
            "model_max_budget",
            "A budget per model: model → USD or {\"budget_limit\", \"time_period\"}.",
        ),
    ],
    checks: &[],
    shown: &[("soft_budget", null), ("model_max_budget", null)],
    limits_shown: true,
    budget_table: &[],
    own_fields: &[],
    blocked_in_body: false,
    reset_at_in_body: true,
    initial: &[],
};

/// An end user (customer): the callers' own users, named per request by `user`.
pub static END_USER: Entity = Entity {
    kind: EntityKind::EndUser,
    id_field: "user_id",
    id_required: true,
    alias: Some(Alias {
        field: "alias",
        required: false,
        unique: false,
    }),
    fields: &[
        ("max_budget", Kind::Number),
        ("budget_id", Kind::Str),
        ("allowed_model_region", Kind::Str),
        ("default_model", Kind::Str),
        ("models", Kind::StrList),
        ("tpm_limit", Kind::Integer),
        ("rpm_limit", Kind::Integer),
        ("max_parallel_requests", Kind::Integer),
        ("budget_duration", Kind::Duration),
    ],
    about: &[],
    checks: &[
        ("allowed_model_region", Check::OneOf(crate::region::ALLOWED)),
        ("budget_id", Check::Exists(EntityKind::Budget)),
    ],
    shown: &[
        ("allowed_model_region", null),
        ("default_model", null),
        ("budget_id", null),
        ("models", empty_list),
    ],
    limits_shown: false,
    budget_table: &[
        "max_budget",
        "tpm_limit",
        "rpm_limit",
        "max_parallel_requests",
        "budget_duration",
        "budget_reset_at",
    ],
    own_fields: &[],
    blocked_in_body: true,
    reset_at_in_body: false,
    initial: &[],
};

/// An organization: teams and users under one budget; its members live in `members`.
pub static ORGANIZATION: Entity = Entity {
    kind: EntityKind::Organization,
    id_field: "organization_id",
    id_required: false,
    alias: Some(Alias {
        field: "organization_alias",
        required: true,
        unique: true,
    }),
    fields: &[
        ("models", Kind::StrList),
        ("max_budget", Kind::Number),
        ("soft_budget", Kind::Number),
        ("budget_id", Kind::Str),
        ("metadata", Kind::Object),
        ("tpm_limit", Kind::Integer),
        ("rpm_limit", Kind::Integer),
        ("max_parallel_requests", Kind::Integer),
        ("budget_duration", Kind::Duration),
        ("model_max_budget", Kind::BudgetMap),
        ("object_permission", Kind::Object),
    ],
    about: &[],
    checks: &[("budget_id", Check::Exists(EntityKind::Budget))],
    shown: &[
        ("models", empty_list),
        ("metadata", empty_object),
        ("budget_id", null),
        ("members", empty_list),
    ],
    limits_shown: false,
    budget_table: &[
        "max_budget",
        "soft_budget",
        "tpm_limit",
        "rpm_limit",
        "max_parallel_requests",
        "budget_duration",
        "budget_reset_at",
        "model_max_budget",
    ],
    own_fields: &[],
    blocked_in_body: false,
    reset_at_in_body: false,
    initial: &[("members", empty_list)],
};

/// The budget and limit fields most entities show as `null` when never set.
pub static LIMITS_SHOWN: &[Shown] = &[
    ("max_budget", null),
    ("budget_duration", null),
    ("budget_reset_at", null),
    ("tpm_limit", null),
    ("rpm_limit", null),
    ("max_parallel_requests", null),
];

/// The role a user has when none was set.
fn internal_user() -> Value {
    Value::String(Role::InternalUser.as_str().into())
}

/// A team: members with roles (`members_with_roles`), models, limits and budget. A team admin may
/// change only its own fields (nothing that widens access, budgets or limits).
pub static TEAM: Entity = Entity {
    kind: EntityKind::Team,
    id_field: "team_id",
    id_required: false,
    alias: Some(Alias {
        field: "team_alias",
        required: false,
        unique: true,
    }),
    fields: &[
        ("organization_id", Kind::Str),
        ("metadata", Kind::Object),
        ("tpm_limit", Kind::Integer),
        ("rpm_limit", Kind::Integer),
        ("max_parallel_requests", Kind::Integer),
        ("max_budget", Kind::Number),
        ("soft_budget", Kind::Number),
        ("budget_duration", Kind::Duration),
        ("models", Kind::StrList),
        ("model_aliases", Kind::StrMap),
        ("tags", Kind::StrList),
        ("guardrails", Kind::StrList),
        ("model_max_budget", Kind::BudgetMap),
        ("model_rpm_limit", Kind::CountMap),
        ("model_tpm_limit", Kind::CountMap),
        ("team_member_budget", Kind::Number),
        ("team_member_key_duration", Kind::Duration),
        ("team_member_permissions", Kind::StrList),
        ("object_permission", Kind::Object),
    ],
    own_fields: &[("metadata", Kind::Object), ("tags", Kind::StrList)],
    about: &[],
    checks: &[],
    shown: &[
        ("members_with_roles", empty_list),
        ("models", empty_list),
        ("metadata", empty_object),
        ("model_aliases", empty_object),
        ("model_spend", empty_object),
        ("model_max_budget", empty_object),
        ("organization_id", null),
        ("soft_budget", null),
    ],
    limits_shown: true,
    budget_table: &[],
    blocked_in_body: true,
    reset_at_in_body: false,
    initial: &[("members_with_roles", empty_list)],
};

/// An internal user: its `user_email` is the record's alias and `user_role` decides what its
/// keys may do. A user who is not a proxy admin may change only its own harmless fields.
pub static USER: Entity = Entity {
    kind: EntityKind::User,
    id_field: "user_id",
    id_required: false,
    alias: Some(Alias {
        field: "user_email",
        required: false,
        unique: true,
    }),
    fields: &[
        ("user_alias", Kind::Str),
        ("metadata", Kind::Object),
        ("max_budget", Kind::Number),
        ("soft_budget", Kind::Number),
        ("budget_duration", Kind::Duration),
        ("models", Kind::StrList),
        ("tpm_limit", Kind::Integer),
        ("rpm_limit", Kind::Integer),
        ("max_parallel_requests", Kind::Integer),
        ("model_max_budget", Kind::BudgetMap),
        ("model_rpm_limit", Kind::CountMap),
        ("model_tpm_limit", Kind::CountMap),
        ("allowed_cache_controls", Kind::StrList),
        ("organizations", Kind::StrList),
        ("sso_user_id", Kind::Str),
        ("object_permission", Kind::Object),
    ],
    own_fields: &[("user_alias", Kind::Str), ("metadata", Kind::Object)],
    about: &[],
    checks: &[],
    shown: &[
        ("user_alias", null),
        ("user_role", internal_user),
        ("teams", empty_list),
        ("models", empty_list),
        ("metadata", empty_object),
        ("model_spend", empty_object),
        ("model_max_budget", empty_object),
    ],
    limits_shown: true,
    budget_table: &[],
    blocked_in_body: false,
    reset_at_in_body: false,
    initial: &[("teams", empty_list)],
};

/// Key fields kept in the record's `data`, with their types. Nothing else is stored.
pub static KEY_FIELDS: &[(&str, Kind)] = &[
    ("models", Kind::StrList),
    ("aliases", Kind::StrMap),
    ("config", Kind::Object),
    ("permissions", Kind::Object),
    ("metadata", Kind::Object),
    ("max_parallel_requests", Kind::Integer),
    ("tpm_limit", Kind::Integer),
    ("rpm_limit", Kind::Integer),
    ("max_budget", Kind::Number),
    ("soft_budget", Kind::Number),
    ("budget_duration", Kind::Duration),
    ("allowed_cache_controls", Kind::StrList),
    ("allowed_routes", Kind::StrList),
    ("model_max_budget", Kind::BudgetMap),
    ("model_rpm_limit", Kind::CountMap),
    ("model_tpm_limit", Kind::CountMap),
    ("guardrails", Kind::StrList),
    ("tags", Kind::StrList),
    ("enforced_params", Kind::StrList),
    ("key_type", Kind::Str),
    ("object_permission", Kind::Object),
    ("allowed_model_region", Kind::Str),
];

/// The key fields `/user/new` does not pass to the key it creates (its `max_budget` and
/// `budget_duration` are the user's; `key_max_budget` / `key_budget_duration` are the key's).
pub static NOT_FOR_AUTO_KEY: &[&str] = &[
    "max_budget",
    "soft_budget",
    "budget_duration",
    "allowed_routes",
    "enforced_params",
    "key_type",
    "object_permission",
];

/// Defaults LiteLLM shows for key fields that were never set (with [`LIMITS_SHOWN`]).
pub static KEY_SHOWN: &[Shown] = &[
    ("models", empty_list),
    ("aliases", empty_object),
    ("config", empty_object),
    ("permissions", empty_object),
    ("metadata", empty_object),
    ("allowed_cache_controls", empty_list),
    ("model_max_budget", empty_object),
    ("model_spend", empty_object),
    ("soft_budget", null),
];
