-- Tollgate schema, version 1. Times are unix milliseconds; `data` holds the LiteLLM fields the
-- gateway does not query by, as a JSON object.

CREATE TABLE verification_tokens (
    token TEXT PRIMARY KEY NOT NULL,
    key_name TEXT NOT NULL,
    key_alias TEXT,
    user_id TEXT,
    team_id TEXT,
    organization_id TEXT,
    budget_id TEXT,
    blocked BOOLEAN NOT NULL DEFAULT FALSE,
    expires BIGINT,
    spend REAL NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    created_by TEXT,
    updated_by TEXT,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX verification_tokens_key_alias ON verification_tokens (key_alias);
CREATE INDEX verification_tokens_user_id ON verification_tokens (user_id);
CREATE INDEX verification_tokens_team_id ON verification_tokens (team_id);
CREATE INDEX verification_tokens_organization_id ON verification_tokens (organization_id);

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    alias TEXT,
    spend REAL NOT NULL DEFAULT 0,
    blocked BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    created_by TEXT,
    updated_by TEXT,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX users_alias ON users (alias);

CREATE TABLE teams (
    id TEXT PRIMARY KEY NOT NULL,
    alias TEXT,
    spend REAL NOT NULL DEFAULT 0,
    blocked BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    created_by TEXT,
    updated_by TEXT,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX teams_alias ON teams (alias);

CREATE TABLE organizations (
    id TEXT PRIMARY KEY NOT NULL,
    alias TEXT,
    spend REAL NOT NULL DEFAULT 0,
    blocked BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    created_by TEXT,
    updated_by TEXT,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX organizations_alias ON organizations (alias);

CREATE TABLE end_users (
    id TEXT PRIMARY KEY NOT NULL,
    alias TEXT,
    spend REAL NOT NULL DEFAULT 0,
    blocked BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    created_by TEXT,
    updated_by TEXT,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX end_users_alias ON end_users (alias);

CREATE TABLE budgets (
    id TEXT PRIMARY KEY NOT NULL,
    alias TEXT,
    spend REAL NOT NULL DEFAULT 0,
    blocked BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    created_by TEXT,
    updated_by TEXT,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX budgets_alias ON budgets (alias);

CREATE TABLE proxy_models (
    model_id TEXT PRIMARY KEY NOT NULL,
    model_name TEXT NOT NULL,
    -- litellm_params, encrypted with a key derived from LITELLM_SALT_KEY (ChaCha20-Poly1305).
    litellm_params TEXT NOT NULL,
    model_info TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    created_by TEXT,
    updated_by TEXT
);
