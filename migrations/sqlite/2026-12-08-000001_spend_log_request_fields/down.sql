ALTER TABLE spend_logs DROP COLUMN response;
ALTER TABLE spend_logs DROP COLUMN messages;
ALTER TABLE spend_logs DROP COLUMN requester_ip_address;
ALTER TABLE spend_logs DROP COLUMN request_tags;
