//! Reading a LiteLLM proxy's Postgres database: each table's rows as JSON objects keyed by column
//! name (`row_to_json`), so one reader serves every table and every LiteLLM schema version (a
//! column LiteLLM added later is simply another key; a table it does not have yet reads as empty).

use diesel::sql_types::Text;
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{Map, Value};

/// A connection to the LiteLLM database.
pub struct LiteLlmDb {
    conn: AsyncPgConnection,
}

#[derive(QueryableByName)]
struct JsonRow {
    #[diesel(sql_type = Text)]
    row: String,
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

/// The LiteLLM tables the import reads, in LiteLLM's (Prisma's) spelling.
pub const TABLES: &[&str] = &[
    "LiteLLM_BudgetTable",
    "LiteLLM_OrganizationTable",
    "LiteLLM_OrganizationMembership",
    "LiteLLM_UserTable",
    "LiteLLM_TeamTable",
    "LiteLLM_TeamMembership",
    "LiteLLM_EndUserTable",
    "LiteLLM_VerificationToken",
    "LiteLLM_ProxyModelTable",
    "LiteLLM_SpendLogs",
];

impl LiteLlmDb {
    /// Connect to `url` (a `postgres://` URL).
    pub async fn connect(url: &str) -> Result<Self, String> {
        let conn = crate::store::pg_tls::connect(url, std::time::Duration::from_secs(30))
            .await
            .map_err(|e| {
                let text = format!("cannot connect to {}: {e}", crate::secret::display_url(url));
                crate::secret::scrub_all(&text, &crate::secret::url_secrets(url))
            })?;
        Ok(Self { conn })
    }

    /// Which of [`TABLES`] the database has.
    pub async fn present_tables(&mut self) -> Result<Vec<String>, String> {
        let names: Vec<Name> = diesel::sql_query(
            "SELECT table_name::text AS name FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name LIKE 'LiteLLM\\_%'",
        )
        .load(&mut self.conn)
        .await
        .map_err(|e| format!("cannot list the tables: {e}"))?;
        Ok(names.into_iter().map(|n| n.name).collect())
    }

    /// Every row of `table` (one of [`TABLES`]), as a JSON object per row, in a stable order.
    pub async fn rows(&mut self, table: &str) -> Result<Vec<Map<String, Value>>, String> {
        // The table name is one of the fixed names above (never user input), quoted as an
        // identifier; nothing else is interpolated.
        assert!(TABLES.contains(&table), "unknown LiteLLM table {table}");
        let sql = format!("SELECT row_to_json(t)::text AS row FROM \"{table}\" t ORDER BY 1");
        let rows: Vec<JsonRow> = diesel::sql_query(sql)
            .load(&mut self.conn)
            .await
            .map_err(|e| format!("cannot read {table}: {e}"))?;
        rows.into_iter()
            .map(|r| match serde_json::from_str(&r.row) {
                Ok(Value::Object(m)) => Ok(m),
                _ => Err(format!("a row of {table} is not a JSON object")),
            })
            .collect()
    }
}
