ALTER TABLE spend_logs DROP COLUMN cache_key;
ALTER TABLE spend_logs DROP COLUMN cache_hit;
