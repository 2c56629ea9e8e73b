DROP INDEX teams_alias;
CREATE INDEX teams_alias ON teams (alias);
DROP INDEX organizations_alias;
CREATE INDEX organizations_alias ON organizations (alias);
