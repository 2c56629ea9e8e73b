//! Schema migrations, embedded in the binary from `migrations/<backend>/`. They run before the
//! gateway serves and with `tollgate migrate`; diesel records applied versions, so a second run does
//! nothing. On Postgres an advisory lock serialises instances that start at the same moment.

use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::AsyncPgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::{DatabaseUrl, StoreError};

const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A fixed key for `pg_advisory_lock`: "tollgate" in ASCII.
const MIGRATION_LOCK: i64 = 0x746f_6c6c_6761_7465;

/// Apply every pending migration. Blocking: call it before the actix system starts, or on a
/// blocking thread. Returns the versions applied by this call.
pub fn run(url: &DatabaseUrl) -> Result<Vec<String>, StoreError> {
    match url {
        DatabaseUrl::Sqlite(path) => {
            if let Some(parent) = std::path::Path::new(path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
            {
                std::fs::create_dir_all(parent).map_err(|e| {
                    StoreError::Config(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
            let mut conn = SqliteConnection::establish(path)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            diesel::connection::SimpleConnection::batch_execute(
                &mut conn,
                super::diesel_store::SQLITE_SETUP,
            )
            .map_err(|e| StoreError::Query(e.to_string()))?;
            apply(&mut conn, SQLITE)
        }
        DatabaseUrl::Postgres(url) => {
            // The connection (TLS as `sslmode` asks) is opened on a runtime of its own, which
            // also drives it while the synchronous migration harness uses it.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|e| StoreError::Unavailable(format!("cannot start a runtime: {e}")))?;
            let conn = runtime
                .block_on(super::pg_tls::connect(
                    url,
                    super::PoolSettings::default().connect_timeout,
                ))
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            let _inside = runtime.enter();
            let mut conn: AsyncConnectionWrapper<AsyncPgConnection> =
                AsyncConnectionWrapper::from(conn);
            diesel::connection::SimpleConnection::batch_execute(
                &mut conn,
                &format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"),
            )
            .map_err(|e| StoreError::Query(e.to_string()))?;
            let result = apply(&mut conn, POSTGRES);
            let _ = diesel::connection::SimpleConnection::batch_execute(
                &mut conn,
                &format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"),
            );
            result
        }
    }
}

fn apply<C>(conn: &mut C, migrations: EmbeddedMigrations) -> Result<Vec<String>, StoreError>
where
    C: MigrationHarness<C::Backend> + Connection,
{
    conn.run_pending_migrations(migrations)
        .map(|versions| versions.into_iter().map(|v| v.to_string()).collect())
        .map_err(|e| StoreError::Query(format!("migration failed: {e}")))
}
