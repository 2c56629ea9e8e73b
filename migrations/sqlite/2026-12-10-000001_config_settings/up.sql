-- Settings changed at run time through POST /config/update (LiteLLM's LiteLLM_Config), one row per
-- key: they override config.yaml's value of that key on every instance and after a restart.
-- `value` is the JSON value; for `environment_variables` it is the sealed (encrypted) string value
-- and `sealed` is true. Times are unix milliseconds.
CREATE TABLE config_settings (
    section TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    sealed BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at BIGINT NOT NULL,
    updated_by TEXT,
    PRIMARY KEY (section, name)
);
-- Management changes (LiteLLM's LiteLLM_AuditLog): who changed what, never with secret values.
CREATE TABLE audit_logs (
    id TEXT PRIMARY KEY NOT NULL,
    updated_at BIGINT NOT NULL,
    changed_by TEXT,
    action TEXT NOT NULL,
    table_name TEXT NOT NULL,
    object_id TEXT NOT NULL,
    before_value TEXT,
    updated_values TEXT
);
CREATE INDEX audit_logs_updated_at ON audit_logs (updated_at);
