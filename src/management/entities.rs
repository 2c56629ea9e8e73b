//! The description of each management entity: the fields it stores and their types, the checks
//! they need, the defaults LiteLLM shows for fields never set, and its budget table.

use super::{empty_list, empty_object, null, Alias, Check, Entity, Kind};
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
    shown: &[
        ("max_budget", null),
        ("soft_budget", null),
        ("max_parallel_requests", null),
        ("tpm_limit", null),
        ("rpm_limit", null),
        ("budget_duration", null),
        ("budget_reset_at", null),
        ("model_max_budget", null),
    ],
    budget_table: &[],
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
        ("allowed_model_region", Check::OneOf(&["eu", "us"])),
        ("budget_id", Check::Exists(EntityKind::Budget)),
    ],
    shown: &[
        ("allowed_model_region", null),
        ("default_model", null),
        ("budget_id", null),
        ("models", empty_list),
    ],
    budget_table: &[
        "max_budget",
        "tpm_limit",
        "rpm_limit",
        "max_parallel_requests",
        "budget_duration",
        "budget_reset_at",
    ],
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
    blocked_in_body: false,
    reset_at_in_body: false,
    initial: &[("members", empty_list)],
};
