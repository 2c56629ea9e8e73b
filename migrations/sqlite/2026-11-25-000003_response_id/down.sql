DROP INDEX spend_logs_response_id;
ALTER TABLE spend_logs DROP COLUMN response_id;
