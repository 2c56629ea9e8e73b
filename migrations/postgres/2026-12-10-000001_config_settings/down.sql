DROP TABLE audit_logs;
DROP TABLE config_settings;
