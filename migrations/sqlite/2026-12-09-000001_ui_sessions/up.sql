-- Admin UI sign-in. Times are unix milliseconds.
-- Internal users' UI passwords, as Argon2id PHC strings (never returned by any API).
CREATE TABLE user_passwords (
    user_id TEXT PRIMARY KEY NOT NULL,
    password_hash TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- UI sessions: the SHA-256 (hex) of the session token in the browser's cookie, who it stands for
-- (the admin, or an internal user) and when it expires.
CREATE TABLE ui_sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,
    admin BOOLEAN NOT NULL DEFAULT FALSE,
    user_id TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX ui_sessions_user_id ON ui_sessions (user_id);
CREATE INDEX ui_sessions_expires_at ON ui_sessions (expires_at);
