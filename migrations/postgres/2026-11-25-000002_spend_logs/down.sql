DROP TABLE spend_logs;
