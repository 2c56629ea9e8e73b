DROP TABLE proxy_models;
DROP TABLE budgets;
DROP TABLE end_users;
DROP TABLE organizations;
DROP TABLE teams;
DROP TABLE users;
DROP TABLE verification_tokens;
