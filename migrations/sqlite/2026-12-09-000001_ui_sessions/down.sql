DROP TABLE ui_sessions;
DROP TABLE user_passwords;
