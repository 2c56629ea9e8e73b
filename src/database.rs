//! The gateway's database connection: which store, whether its schema is ready, and the
//! background retry that brings it up when it was unreachable at start.
//!
//! Start-up runs the migrations before serving when the database answers within
//! [`START_WAIT`]. When it does not (Postgres down, a host that does not resolve), the gateway serves
//! anyway: the master key and already-cached virtual keys keep working, the management API answers
//! 503, and a background thread retries every [`RETRY_EVERY`] until the migrations pass.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::store::{self, migrate, DatabaseUrl, Store, StoreError};

/// How long start-up waits for the database before serving without it.
pub const START_WAIT: Duration = Duration::from_secs(10);
/// How often an unreachable database is retried.
pub const RETRY_EVERY: Duration = Duration::from_secs(5);

pub struct Database {
    /// Opened inside the actix system (the connection pool needs a runtime).
    store: std::sync::OnceLock<Arc<dyn Store>>,
    pub url: DatabaseUrl,
    pool: store::PoolSettings,
    ready: Arc<AtomicBool>,
}

impl Database {
    /// Open the store, run the migrations (waiting up to [`START_WAIT`]), and keep retrying in the
    /// background if they could not run yet.
    pub fn start(url: DatabaseUrl, pool: store::PoolSettings) -> Result<Database, StoreError> {
        let ready = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let (thread_url, thread_ready) = (url.clone(), ready.clone());
        std::thread::Builder::new()
            .name("tollgate-migrate".into())
            .spawn(move || {
                let mut reported = false;
                loop {
                    match migrate::run(&thread_url) {
                        Ok(applied) => {
                            if !applied.is_empty() {
                                tracing::info!(database = %thread_url.redacted(), ?applied, "database migrations applied");
                            }
                            thread_ready.store(true, Ordering::SeqCst);
                            if reported {
                                tracing::info!(database = %thread_url.redacted(), "database reachable again; management API available");
                            }
                            let _ = tx.send(Ok(()));
                            return;
                        }
                        Err(e) => {
                            if !reported {
                                let _ = tx.send(Err(e.to_string()));
                                reported = true;
                            }
                            std::thread::sleep(RETRY_EVERY);
                        }
                    }
                }
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the migration thread: {e}")))?;
        match rx.recv_timeout(START_WAIT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(
                database = %url.redacted(),
                error = %e,
                "database unavailable at start; serving without it (management API answers 503) and retrying every {} s",
                RETRY_EVERY.as_secs()
            ),
            Err(_) => tracing::error!(
                database = %url.redacted(),
                "database did not answer within {} s; serving without it and retrying",
                START_WAIT.as_secs()
            ),
        }
        Ok(Database {
            store: std::sync::OnceLock::new(),
            url,
            pool,
            ready,
        })
    }

    /// Open the connection pool. Call once, inside the actix system, before serving.
    pub fn open_pool(&self) -> Result<(), StoreError> {
        let store = store::open_with(&self.url, self.pool)?;
        let _ = self.store.set(store);
        Ok(())
    }

    /// Whether the schema is in place (migrations ran).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && self.store.get().is_some()
    }

    /// The store, or why it cannot be used yet.
    pub fn store(&self) -> Result<&Arc<dyn Store>, StoreError> {
        match self.store.get() {
            Some(store) if self.is_ready() => Ok(store),
            _ => Err(StoreError::Unavailable(format!(
                "{} is not reachable yet (retrying)",
                self.url.redacted()
            ))),
        }
    }
}

/// The database a config asks for: `general_settings.database_url` or `DATABASE_URL`, else the
/// embedded SQLite file in the working directory.
pub fn url_for(configured: Option<String>) -> Result<DatabaseUrl, StoreError> {
    match configured {
        Some(raw) => DatabaseUrl::parse(&raw),
        None => Ok(DatabaseUrl::Sqlite(store::DEFAULT_SQLITE_FILE.to_string())),
    }
}
