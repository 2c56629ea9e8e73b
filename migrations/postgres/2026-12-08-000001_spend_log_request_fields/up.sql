-- The request's tags (a JSON list), the client's address, and, when
-- general_settings.store_prompts_in_spend_logs is on, its messages and response (JSON text).
ALTER TABLE spend_logs ADD COLUMN request_tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE spend_logs ADD COLUMN requester_ip_address TEXT;
ALTER TABLE spend_logs ADD COLUMN messages TEXT;
ALTER TABLE spend_logs ADD COLUMN response TEXT;
