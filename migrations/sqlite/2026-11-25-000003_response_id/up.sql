-- The provider's response id (`chatcmpl-…`, `msg_…`), which LiteLLM shows as a spend log's
-- request_id; the primary key stays the gateway's call id, so batches stay idempotent even when a
-- provider repeats ids.
ALTER TABLE spend_logs ADD COLUMN response_id TEXT;
CREATE INDEX spend_logs_response_id ON spend_logs (response_id);
