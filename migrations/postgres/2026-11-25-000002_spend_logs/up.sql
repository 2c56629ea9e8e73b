-- One row per LLM request (success or failure), written in batches by the spend tracker.
-- request_id is the x-litellm-call-id; re-writing a row is a no-op (idempotent batches).
CREATE TABLE spend_logs (
    request_id TEXT PRIMARY KEY NOT NULL,
    call_type TEXT NOT NULL,
    api_key TEXT NOT NULL,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    total_tokens BIGINT NOT NULL DEFAULT 0,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    start_time BIGINT NOT NULL,
    end_time BIGINT NOT NULL,
    model TEXT NOT NULL,
    model_id TEXT,
    model_group TEXT,
    api_base TEXT,
    user_id TEXT,
    team_id TEXT,
    organization_id TEXT,
    end_user TEXT,
    status TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX spend_logs_api_key ON spend_logs (api_key);
CREATE INDEX spend_logs_user_id ON spend_logs (user_id);
CREATE INDEX spend_logs_start_time ON spend_logs (start_time);
