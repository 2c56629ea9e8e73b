-- Whether a request was answered from the response cache, and the cache key it used.
ALTER TABLE spend_logs ADD COLUMN cache_hit BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE spend_logs ADD COLUMN cache_key TEXT;
