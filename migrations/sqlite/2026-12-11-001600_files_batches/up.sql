-- Files and batches created through /v1/files and /v1/batches, one row each: who owns it (the
-- virtual key's hash, its user, team and organization; none for the master key), which
-- deployment holds it and under which id, and, for a batch, whether its cost was recorded (set
-- once, by a conditional update, so concurrent reads of a completed batch record it once).
-- `object` is the provider's last answer for the object (JSON). Times are unix milliseconds.
CREATE TABLE managed_objects (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    upstream_id TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    model_group TEXT NOT NULL,
    owner_token TEXT,
    user_id TEXT,
    team_id TEXT,
    organization_id TEXT,
    purpose TEXT NOT NULL,
    status TEXT NOT NULL,
    object TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    cost_recorded BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX managed_objects_owner ON managed_objects (kind, owner_token, created_at);
