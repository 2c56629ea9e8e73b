-- The provider's response id (`chatcmpl-…`, `msg_…`), which LiteLLM shows as a spend log's
-- request_id; the primary key stays the gateway's call id, so batches stay idempotent even when a
-- provider repeats ids. Not indexed on the embedded database: provider ids are random, and a random
-- index costs every insert far more than the rare lookup by response id (a scan) costs.
ALTER TABLE spend_logs ADD COLUMN response_id TEXT;
