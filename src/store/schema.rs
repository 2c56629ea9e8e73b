//! Diesel table definitions, shared by the SQLite and Postgres stores (the migrations in
//! `migrations/sqlite` and `migrations/postgres` create the same columns with each backend's types).

diesel::table! {
    verification_tokens (token) {
        token -> Text,
        key_name -> Text,
        key_alias -> Nullable<Text>,
        user_id -> Nullable<Text>,
        team_id -> Nullable<Text>,
        organization_id -> Nullable<Text>,
        budget_id -> Nullable<Text>,
        blocked -> Bool,
        expires -> Nullable<BigInt>,
        spend -> Double,
        created_at -> BigInt,
        updated_at -> BigInt,
        created_by -> Nullable<Text>,
        updated_by -> Nullable<Text>,
        data -> Text,
    }
}

/// Users, teams, organizations, end users and budgets share one column layout.
macro_rules! entity_table {
    ($name:ident) => {
        diesel::table! {
            $name (id) {
                id -> Text,
                alias -> Nullable<Text>,
                spend -> Double,
                blocked -> Bool,
                created_at -> BigInt,
                updated_at -> BigInt,
                created_by -> Nullable<Text>,
                updated_by -> Nullable<Text>,
                data -> Text,
            }
        }
    };
}

entity_table!(users);
entity_table!(teams);
entity_table!(organizations);
entity_table!(end_users);
entity_table!(budgets);

diesel::table! {
    proxy_models (model_id) {
        model_id -> Text,
        model_name -> Text,
        litellm_params -> Text,
        model_info -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        created_by -> Nullable<Text>,
        updated_by -> Nullable<Text>,
    }
}

diesel::table! {
    spend_logs (request_id) {
        request_id -> Text,
        call_type -> Text,
        api_key -> Text,
        spend -> Double,
        total_tokens -> BigInt,
        prompt_tokens -> BigInt,
        completion_tokens -> BigInt,
        start_time -> BigInt,
        end_time -> BigInt,
        model -> Text,
        model_id -> Nullable<Text>,
        model_group -> Nullable<Text>,
        api_base -> Nullable<Text>,
        user_id -> Nullable<Text>,
        team_id -> Nullable<Text>,
        organization_id -> Nullable<Text>,
        end_user -> Nullable<Text>,
        status -> Text,
        metadata -> Text,
        response_id -> Nullable<Text>,
        cache_hit -> Bool,
        cache_key -> Nullable<Text>,
        request_tags -> Text,
        requester_ip_address -> Nullable<Text>,
        messages -> Nullable<Text>,
        response -> Nullable<Text>,
    }
}

diesel::table! {
    user_passwords (user_id) {
        user_id -> Text,
        password_hash -> Text,
        updated_at -> BigInt,
    }
}

diesel::table! {
    ui_sessions (token_hash) {
        token_hash -> Text,
        admin -> Bool,
        user_id -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    config_settings (section, name) {
        section -> Text,
        name -> Text,
        value -> Text,
        sealed -> Bool,
        updated_at -> BigInt,
        updated_by -> Nullable<Text>,
    }
}

diesel::table! {
    audit_logs (id) {
        id -> Text,
        updated_at -> BigInt,
        changed_by -> Nullable<Text>,
        action -> Text,
        table_name -> Text,
        object_id -> Text,
        before_value -> Nullable<Text>,
        updated_values -> Nullable<Text>,
    }
}

diesel::table! {
    managed_objects (id) {
        id -> Text,
        kind -> Text,
        upstream_id -> Text,
        deployment_id -> Text,
        model_group -> Text,
        owner_token -> Nullable<Text>,
        user_id -> Nullable<Text>,
        team_id -> Nullable<Text>,
        organization_id -> Nullable<Text>,
        purpose -> Text,
        status -> Text,
        object -> Text,
        created_at -> BigInt,
        cost_recorded -> Bool,
    }
}

diesel::table! {
    stored_responses (id) {
        id -> Text,
        owner -> Nullable<Text>,
        model -> Text,
        input_items -> Text,
        response -> Text,
        created_at -> BigInt,
    }
}
