-- Team aliases and organization aliases are unique (case-sensitive; NULL aliases are not
-- compared). Rows stored before this migration that share an alias keep it on the oldest row;
-- every later one gets its id appended ("alias (id)"), so the index can be built and no row is
-- lost.
UPDATE teams SET alias = alias || ' (' || id || ')'
WHERE alias IS NOT NULL AND EXISTS (
    SELECT 1 FROM teams older
    WHERE older.alias = teams.alias
      AND (older.created_at < teams.created_at
           OR (older.created_at = teams.created_at AND older.id < teams.id))
);
DROP INDEX teams_alias;
CREATE UNIQUE INDEX teams_alias ON teams (alias);

UPDATE organizations SET alias = alias || ' (' || id || ')'
WHERE alias IS NOT NULL AND EXISTS (
    SELECT 1 FROM organizations older
    WHERE older.alias = organizations.alias
      AND (older.created_at < organizations.created_at
           OR (older.created_at = organizations.created_at AND older.id < organizations.id))
);
DROP INDEX organizations_alias;
CREATE UNIQUE INDEX organizations_alias ON organizations (alias);
