ALTER TABLE spend_logs DROP COLUMN response_id;
