//! `tollgate import-litellm --from <postgres-url> [--config cfg] [--dry-run] [--spend-logs]`:
//! carry a LiteLLM proxy's database over to the gateway's store (the one `--config` names, SQLite
//! or Postgres), so a team switches without reissuing keys or re-entering budgets.
//!
//! What moves: budgets, organizations (with members and their budget's limits), users (role,
//! teams, organizations, limits, spend), teams (members with roles, limits, spend), end users,
//! keys (LiteLLM stores the SHA-256 hex of each key, as the gateway does, so the raw keys
//! applications hold keep working), models stored in LiteLLM's database (their credentials opened
//! with LiteLLM's salt key and sealed with the gateway's) and, with `--spend-logs`, spend logs.
//! Columns the gateway does not use are kept in each record's `metadata.litellm`.
//!
//! Idempotent: a record that exists is updated (or left alone when it already matches), never
//! duplicated. Spend logs are written first: a row already stored is skipped, and the spend of
//! keys and entities is then set to LiteLLM's own totals, so re-running never counts spend twice.
//! `--dry-run` reads both databases and prints what it would do, writing nothing. The report is a
//! table of counts per entity and every row that could not be carried over, with the reason.
//!
//! Not carried over: users' passwords (LiteLLM's hash is not one the gateway checks; set one with
//! `/user/update`), and LiteLLM tables the gateway has no counterpart for (daily spend rollups,
//! which it computes from spend logs; audit logs; MCP servers, guardrails, prompts, agents…).

pub mod mapping;
pub mod source;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::crypto::{Purpose, Sealer};
use crate::store::{EntityKind, EntityRecord, KeyRecord, ModelRecord, Store, StoreError};
use mapping::Row;

/// What `import-litellm` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The LiteLLM database (`postgres://…`).
    pub from: String,
    /// Read and report; write nothing.
    pub dry_run: bool,
    /// Also carry over `LiteLLM_SpendLogs`.
    pub spend_logs: bool,
}

/// What happened to one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Created,
    Updated,
    Unchanged,
}

/// The counts of one entity.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub read: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped: u64,
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Default)]
pub struct Report {
    /// Entity name → counts, in the order they were imported.
    pub tallies: Vec<(&'static str, Tally)>,
    /// `(entity, row, reason)` for each row not carried over.
    pub skipped: Vec<(&'static str, String, String)>,
    pub notes: Vec<String>,
    pub dry_run: bool,
}

impl Report {
    fn tally(&mut self, entity: &'static str) -> &mut Tally {
        if let Some(i) = self.tallies.iter().position(|(e, _)| *e == entity) {
            return &mut self.tallies[i].1;
        }
        self.tallies.push((entity, Tally::default()));
        &mut self.tallies.last_mut().expect("just pushed").1
    }

    fn count(&mut self, entity: &'static str, action: Action) {
        let t = self.tally(entity);
        match action {
            Action::Created => t.created += 1,
            Action::Updated => t.updated += 1,
            Action::Unchanged => t.unchanged += 1,
        }
    }

    fn skip(&mut self, entity: &'static str, row: String, reason: String) {
        self.tally(entity).skipped += 1;
        self.skipped.push((entity, row, reason));
    }

    /// The report as printed: a table of counts, then the rows not carried over, then notes.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<14} {:>8} {:>10} {:>10} {:>10} {:>8}",
            "entity", "read", "created", "updated", "unchanged", "skipped"
        );
        for (entity, t) in &self.tallies {
            let _ = writeln!(
                out,
                "{entity:<14} {:>8} {:>10} {:>10} {:>10} {:>8}",
                t.read, t.created, t.updated, t.unchanged, t.skipped
            );
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(out, "\nnot carried over:");
            for (entity, row, reason) in &self.skipped {
                let _ = writeln!(out, "  {entity} {row}: {reason}");
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "\nnote: {note}");
        }
        if self.dry_run {
            let _ = writeln!(
                out,
                "\ndry run: nothing was written (the counts say what an import would do)"
            );
        }
        out
    }
}

/// `tollgate import-litellm`: returns the exit code (0 when the import ran, even with rows it
/// could not carry over: they are listed; 1 when it could not run).
pub fn command(cli: &crate::cli::Cli, opts: &Options) -> i32 {
    let config = match crate::server::load_config(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let url = match crate::database::url_for(config.database_url()) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    println!(
        "importing LiteLLM's database {} into {}{}",
        crate::secret::display_url(&opts.from),
        url.redacted(),
        if opts.dry_run { " (dry run)" } else { "" }
    );
    // A dry run does not create or migrate the target: a database that does not exist yet, or has
    // no schema, is read as empty.
    let target_exists = match &url {
        crate::store::DatabaseUrl::Sqlite(path) => std::path::Path::new(path).exists(),
        crate::store::DatabaseUrl::Postgres(_) => true,
    };
    if !opts.dry_run {
        if let Err(e) = crate::store::migrate::run(&url) {
            eprintln!("error: {}: {e}", url.redacted());
            return 1;
        }
    }
    let salt = crate::crypto::salt_key(config.master_key().as_ref());
    // The store's pool needs the runtime: it is opened inside it.
    let result = actix_web::rt::System::new().block_on(async {
        let store = if opts.dry_run && !target_exists {
            None
        } else {
            Some(crate::store::open(&url).map_err(|e| format!("{}: {e}", url.redacted()))?)
        };
        run(opts, store, salt).await
    });
    match result {
        Ok(report) => {
            print!("{}", report.render());
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// The target store, or none in a dry run against a database that does not exist yet.
struct Target {
    store: Option<Arc<dyn Store>>,
    dry_run: bool,
}

impl Target {
    fn writes(&self) -> Option<&Arc<dyn Store>> {
        self.store.as_ref().filter(|_| !self.dry_run)
    }

    async fn entity(&self, kind: EntityKind, rec: &EntityRecord) -> Result<Action, StoreError> {
        let mut rec = rec.clone();
        let existing = match &self.store {
            Some(s) => match s.get_entity(kind, &rec.id).await {
                Ok(e) => e,
                Err(_) if self.dry_run => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        if rec.created_at == 0 {
            let now = crate::time::now_ms();
            rec.created_at = existing.as_ref().map_or(now, |e| e.created_at);
            rec.updated_at = existing.as_ref().map_or(now, |e| e.updated_at);
        }
        let action = match &existing {
            None => Action::Created,
            Some(old) if *old == rec => return Ok(Action::Unchanged),
            Some(_) => Action::Updated,
        };
        if let Some(store) = self.writes() {
            match action {
                Action::Created => store.insert_entity(kind, &rec).await?,
                _ => {
                    store.update_entity(kind, &rec).await?;
                }
            }
        }
        Ok(action)
    }

    async fn key(&self, rec: &KeyRecord) -> Result<Action, StoreError> {
        let existing = match &self.store {
            Some(s) => match s.get_key(&rec.token).await {
                Ok(k) => k,
                Err(_) if self.dry_run => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        let action = match &existing {
            None => Action::Created,
            Some(old) if old == rec => return Ok(Action::Unchanged),
            Some(_) => Action::Updated,
        };
        if let Some(store) = self.writes() {
            match action {
                Action::Created => store.insert_key(rec).await?,
                _ => {
                    store.update_key(rec).await?;
                }
            }
        }
        Ok(action)
    }
}

fn index(rows: &[Row], id: &str) -> BTreeMap<String, Row> {
    rows.iter()
        .filter_map(|r| Some((r.get(id)?.as_str()?.to_string(), r.clone())))
        .collect()
}

fn row_name(row: &Row, id: &str, alias: &str) -> String {
    let id = row.get(id).and_then(Value::as_str).unwrap_or("(no id)");
    match row.get(alias).and_then(Value::as_str) {
        Some(a) if !a.is_empty() => format!("{id} ({a})"),
        _ => id.to_string(),
    }
}

fn store_reason(e: StoreError) -> String {
    match e {
        StoreError::Conflict(what) => format!("it conflicts with a record already there: {what}"),
        other => other.to_string(),
    }
}

/// Read the LiteLLM database and write (or, in a dry run, compare) every record.
async fn run(
    opts: &Options,
    store: Option<Arc<dyn Store>>,
    salt: Option<crate::secret::Secret>,
) -> Result<Report, String> {
    let mut db = source::LiteLlmDb::connect(&opts.from).await?;
    let present = db.present_tables().await?;
    if !present.iter().any(|t| t == "LiteLLM_VerificationToken") {
        return Err(format!(
            "{} has no LiteLLM_VerificationToken table: is it a LiteLLM proxy's database?",
            crate::secret::display_url(&opts.from)
        ));
    }
    let mut tables: BTreeMap<&str, Vec<Row>> = BTreeMap::new();
    for table in source::TABLES {
        if *table == "LiteLLM_SpendLogs" && !opts.spend_logs {
            continue;
        }
        let rows = if present.iter().any(|t| t == table) {
            db.rows(table).await?
        } else {
            Vec::new()
        };
        tables.insert(table, rows);
    }
    let rows = |t: &str| tables.get(t).cloned().unwrap_or_default();
    let target = Target {
        store,
        dry_run: opts.dry_run,
    };
    let mut report = Report {
        dry_run: opts.dry_run,
        ..Report::default()
    };

    // Spend logs first: their spend is added to records that do not exist yet (so nothing), and
    // the records' totals are then set to LiteLLM's.
    if opts.spend_logs {
        import_spend_logs(&target, &rows("LiteLLM_SpendLogs"), &mut report).await;
    }

    let budgets_rows = rows("LiteLLM_BudgetTable");
    let budgets = index(&budgets_rows, "budget_id");
    let users = rows("LiteLLM_UserTable");
    let teams = rows("LiteLLM_TeamTable");
    let members = mapping::memberships(
        &users,
        &teams,
        &rows("LiteLLM_OrganizationMembership"),
        &rows("LiteLLM_TeamMembership"),
    );

    type MapFn<'a> = Box<dyn Fn(&Row) -> Result<EntityRecord, String> + 'a>;
    let plan: Vec<(EntityKind, Vec<Row>, &str, &str, MapFn)> = vec![
        (
            EntityKind::Budget,
            budgets_rows.clone(),
            "budget_id",
            "",
            Box::new(mapping::budget),
        ),
        (
            EntityKind::Organization,
            rows("LiteLLM_OrganizationTable"),
            "organization_id",
            "organization_alias",
            Box::new(|r| mapping::organization(r, &budgets, &members)),
        ),
        (
            EntityKind::User,
            users.clone(),
            "user_id",
            "user_email",
            Box::new(|r| mapping::user(r, &members)),
        ),
        (
            EntityKind::Team,
            teams.clone(),
            "team_id",
            "team_alias",
            Box::new(|r| mapping::team(r, &members)),
        ),
        (
            EntityKind::EndUser,
            rows("LiteLLM_EndUserTable"),
            "user_id",
            "alias",
            Box::new(|r| mapping::end_user(r, &budgets)),
        ),
    ];
    for (kind, rows, id, alias, map) in plan {
        let entity = mapping::kind_name(kind);
        report.tally(entity).read = rows.len() as u64;
        for row in &rows {
            let name = row_name(row, id, alias);
            match map(row) {
                Ok(rec) => match target.entity(kind, &rec).await {
                    Ok(action) => report.count(entity, action),
                    Err(e) => report.skip(entity, name, store_reason(e)),
                },
                Err(reason) => report.skip(entity, name, reason),
            }
        }
    }
    let with_password = users
        .iter()
        .filter(|u| u.get("password").is_some_and(|p| !p.is_null()))
        .count();
    if with_password > 0 {
        report.notes.push(format!(
            "{with_password} user(s) had a LiteLLM UI password: passwords are not carried over (LiteLLM's hash is not one Tollgate checks); set one with /user/update"
        ));
    }

    let keys = rows("LiteLLM_VerificationToken");
    report.tally("keys").read = keys.len() as u64;
    for row in &keys {
        let name = match (
            row.get("key_name").and_then(Value::as_str),
            row.get("key_alias").and_then(Value::as_str),
        ) {
            (Some(n), Some(a)) => format!("{n} ({a})"),
            (Some(n), None) => n.to_string(),
            (None, Some(a)) => format!("({a})"),
            (None, None) => "(unnamed)".to_string(),
        };
        match mapping::key(row) {
            Ok(rec) => match target.key(&rec).await {
                Ok(action) => report.count("keys", action),
                Err(e) => report.skip("keys", name, store_reason(e)),
            },
            Err(reason) => report.skip("keys", name, reason),
        }
    }

    import_models(
        &target,
        &rows("LiteLLM_ProxyModelTable"),
        salt.as_ref(),
        &mut report,
    )
    .await;
    Ok(report)
}

/// `LiteLLM_ProxyModelTable` → stored models: credentials opened with LiteLLM's salt key, checked
/// as `/model/new` checks them, sealed with the gateway's.
async fn import_models(
    target: &Target,
    rows: &[Row],
    salt: Option<&crate::secret::Secret>,
    report: &mut Report,
) {
    const ENTITY: &str = "models";
    report.tally(ENTITY).read = rows.len() as u64;
    if rows.is_empty() {
        return;
    }
    let sealer = match Sealer::new(salt, Purpose::ModelCredentials) {
        Ok(s) => s,
        Err(e) => {
            for row in rows {
                report.skip(
                    ENTITY,
                    row_name(row, "model_id", "model_name"),
                    e.to_string(),
                );
            }
            return;
        }
    };
    let existing: BTreeMap<String, ModelRecord> = match &target.store {
        Some(s) => match s.list_models().await {
            Ok(models) => models
                .into_iter()
                .map(|m| (m.model_id.clone(), m))
                .collect(),
            Err(_) => BTreeMap::new(),
        },
        None => BTreeMap::new(),
    };
    for row in rows {
        let name = row_name(row, "model_id", "model_name");
        let record = match model_record(row, salt, &sealer) {
            Ok(r) => r,
            Err(reason) => {
                report.skip(ENTITY, name, reason);
                continue;
            }
        };
        let action = match existing.get(&record.model_id) {
            None => Action::Created,
            Some(old) => {
                let same_params = sealer.open(&old.litellm_params_sealed).ok()
                    == sealer.open(&record.litellm_params_sealed).ok();
                let mut old = old.clone();
                old.litellm_params_sealed = record.litellm_params_sealed.clone();
                if same_params && old == record {
                    report.count(ENTITY, Action::Unchanged);
                    continue;
                }
                Action::Updated
            }
        };
        if let Some(store) = target.writes() {
            let written = match action {
                Action::Created => store.insert_model(&record).await,
                _ => store.update_model(&record).await.map(|_| ()),
            };
            if let Err(e) = written {
                report.skip(ENTITY, name, store_reason(e));
                continue;
            }
        }
        report.count(ENTITY, action);
    }
}

fn model_record(
    row: &Row,
    salt: Option<&crate::secret::Secret>,
    sealer: &Sealer,
) -> Result<ModelRecord, String> {
    let text = |c: &str| row.get(c).and_then(Value::as_str).map(str::to_string);
    let model_id = text("model_id").ok_or("it has no model_id")?;
    let model_name = text("model_name").ok_or("it has no model_name")?;
    if row.get("blocked").and_then(Value::as_bool) == Some(true) {
        return Err("it is blocked in LiteLLM (Tollgate's stored models have no blocked state; add it with /model/new to serve it)".into());
    }
    let params = mapping::model_params(row, salt)?;
    crate::models_sync::check_params(&params).map_err(|e| e.to_string())?;
    let mut model_info = match row.get("model_info") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    model_info.insert("id".into(), Value::String(model_id.clone()));
    model_info.remove("db_model");
    let plain = serde_json::to_vec(&Value::Object(params)).map_err(|e| e.to_string())?;
    let created_at = mapping::timestamp(row, "created_at").unwrap_or_else(crate::time::now_ms);
    Ok(ModelRecord {
        model_id,
        model_name,
        litellm_params_sealed: sealer.seal(&plain),
        model_info,
        created_at,
        updated_at: mapping::timestamp(row, "updated_at").unwrap_or(created_at),
        created_by: text("created_by"),
        updated_by: text("updated_by"),
    })
}

/// `LiteLLM_SpendLogs` → spend-log rows, in batches; a row already stored is skipped.
async fn import_spend_logs(target: &Target, rows: &[Row], report: &mut Report) {
    const ENTITY: &str = "spend logs";
    const BATCH: usize = 500;
    report.tally(ENTITY).read = rows.len() as u64;
    let mut logs = Vec::with_capacity(rows.len());
    for row in rows {
        match mapping::spend_log(row) {
            Ok(log) => logs.push(log),
            Err(reason) => report.skip(ENTITY, row_name(row, "request_id", ""), reason),
        }
    }
    let Some(store) = target.writes() else {
        // A dry run: which rows are new is not looked up one by one; every readable row counts
        // as one the import would write (rows already stored are skipped when it runs).
        report.tally(ENTITY).created = logs.len() as u64;
        return;
    };
    for batch in logs.chunks(BATCH) {
        match store.record_spend(batch).await {
            Ok(written) => {
                let t = report.tally(ENTITY);
                t.created += written;
                t.unchanged += batch.len() as u64 - written.min(batch.len() as u64);
            }
            Err(e) => {
                for log in batch {
                    report.skip(ENTITY, log.request_id.clone(), e.to_string());
                }
            }
        }
    }
}
