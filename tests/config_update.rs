//! `POST /config/update` on the real binary: settings changed at run time act on the next
//! request, survive a restart and reach a second instance sharing the database; keys that need a
//! restart (or are unknown) refuse the whole request naming them; environment variables are sealed
//! at rest, never shown, and resolve the deployments' `os.environ/` references at once; every
//! update is audited without secret values. Who may call it: `tests/authorization.rs`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tollgate::store::{DatabaseUrl, Store};

const UPSTREAM_SECRET: &str = "sk-upstream-set-at-run-time-7391";
const ENV_VAR: &str = "TOLLGATE_CONFIG_UPDATE_TEST_KEY";

/// One group `g` on a deployment that always fails with a 500, one group `env-model` whose key is
/// an unset `os.environ/` reference, and the database in `db_dir` (so a restart finds it).
fn config(mock: &Mock, db_dir: &Path, router_settings: &str) -> String {
    format!(
        r#"model_list:
  - model_name: g
    litellm_params:
      model: openai/mock-fail-500
      api_base: {base}
      api_key: sk-mock-upstream-secret-42
  - model_name: env-model
    litellm_params:
      model: openai/env-upstream
      api_base: {base}
      api_key: os.environ/{ENV_VAR}
general_settings:
  master_key: {MASTER_KEY}
  database_url: sqlite:///{db}
router_settings:
{router_settings}"#,
        base = mock.api_base(),
        db = db_dir.join("tollgate.db").display(),
    )
}

fn header(h: &Headers, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

async fn update(gw: &Gateway, body: Value) -> (u16, Value) {
    let (status, _, resp) = post(&gw.url("/config/update"), Some(MASTER_KEY), &body).await;
    (status, resp)
}

/// The retries the failing group `g` got on one request (after the response's header).
async fn retries_of_a_failing_call(gw: &Gateway) -> String {
    let (status, headers, body) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat("g"),
    )
    .await;
    assert_eq!(status, 500, "{body}");
    header(&headers, "x-litellm-attempted-retries")
}

async fn router_settings(gw: &Gateway) -> Value {
    let (status, _, body) = get(&gw.url("/get/config/callbacks"), Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{body}");
    body["router_settings"].clone()
}

async fn store(db_dir: &Path) -> std::sync::Arc<dyn Store> {
    let url = DatabaseUrl::parse(&format!(
        "sqlite:///{}",
        db_dir.join("tollgate.db").display()
    ))
    .unwrap();
    tollgate::store::open(&url).expect("open the gateway's database")
}

#[actix_rt::test]
async fn router_settings_change_at_run_time_and_survive_a_restart() {
    let mock = Mock::start(&[]);
    let db_dir = tempfile::tempdir().unwrap();
    let cfg = config(&mock, db_dir.path(), "  num_retries: 0\n");
    let gw = Gateway::start(&cfg, &[], &[]);
    assert_eq!(retries_of_a_failing_call(&gw).await, "0");
    assert_eq!(
        router_settings(&gw).await["routing_strategy"],
        "simple-shuffle"
    );

    let (status, resp) = update(
        &gw,
        json!({
            "router_settings": {"num_retries": 1, "routing_strategy": "least-busy"},
            "litellm_settings": {"request_timeout": 42},
        }),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["message"], "Config updated successfully");
    assert_eq!(resp["applied"]["router_settings"]["num_retries"], 1);
    assert_eq!(resp["applied"]["litellm_settings"]["request_timeout"], 42);

    // The next request retries once: 1 call + 1 retry on the failing deployment.
    let before = mock.stats().await["by_model"]["mock-fail-500"]
        .as_u64()
        .unwrap();
    assert_eq!(retries_of_a_failing_call(&gw).await, "1");
    let after = mock.stats().await["by_model"]["mock-fail-500"]
        .as_u64()
        .unwrap();
    assert_eq!(after - before, 2, "one call and one retry upstream");
    assert_eq!(router_settings(&gw).await["routing_strategy"], "least-busy");
    assert_eq!(router_settings(&gw).await["num_retries"], 1);
    let (_, _, active) = get(&gw.url("/active/callbacks"), Some(MASTER_KEY)).await;
    assert_eq!(active["litellm.request_timeout"], 42.0);

    // A restart against the same database keeps them over config.yaml's.
    drop(gw);
    let gw = Gateway::start(&cfg, &[], &[]);
    assert_eq!(retries_of_a_failing_call(&gw).await, "1");
    assert_eq!(router_settings(&gw).await["routing_strategy"], "least-busy");

    // `null` removes the stored value: config.yaml's applies again.
    let (status, resp) = update(&gw, json!({"router_settings": {"num_retries": null}})).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(retries_of_a_failing_call(&gw).await, "0");
    assert_eq!(router_settings(&gw).await["routing_strategy"], "least-busy");

    // Every update is in the audit log, with who made it and what changed.
    let audit = store(db_dir.path())
        .await
        .list_audit_logs("config_settings", 10)
        .await
        .unwrap();
    assert_eq!(audit.len(), 2, "{audit:?}");
    let first = audit.last().unwrap();
    assert_eq!(first.changed_by.as_deref(), Some("default_user_id"));
    assert_eq!(first.action, "updated");
    let values: Value = serde_json::from_str(first.updated_values.as_deref().unwrap()).unwrap();
    assert_eq!(values["router_settings"]["routing_strategy"], "least-busy");
    let latest = &audit[0];
    let before: Value = serde_json::from_str(latest.before_value.as_deref().unwrap()).unwrap();
    assert_eq!(before["router_settings"]["num_retries"], 1);
}

#[actix_rt::test]
async fn cooldown_settings_change_at_run_time() {
    let mock = Mock::start(&[]);
    let db_dir = tempfile::tempdir().unwrap();
    let entry = |upstream: &str| {
        format!(
            "  - model_name: c\n    litellm_params:\n      model: openai/{upstream}\n      api_base: {}\n      api_key: sk-mock-upstream-secret-42\n",
            mock.api_base()
        )
    };
    let cfg = format!(
        "model_list:\n{}{}general_settings:\n  master_key: {MASTER_KEY}\n  database_url: sqlite:///{}\nrouter_settings:\n  num_retries: 1\n  allowed_fails: 1000\n  cooldown_time: 60\n",
        entry("mock-fail-500"),
        entry("good-c"),
        db_dir.path().join("tollgate.db").display()
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    let (m, g) = (&mock, &gw);
    let failing = || async move {
        m.stats().await["by_model"]["mock-fail-500"]
            .as_u64()
            .unwrap_or(0)
    };
    let call = || async move {
        let (status, _, body) =
            post(&g.url("/v1/chat/completions"), Some(MASTER_KEY), &chat("c")).await;
        assert_eq!(status, 200, "{body}");
    };
    // 1000 failures allowed a minute: the failing deployment keeps getting calls.
    for _ in 0..30 {
        call().await;
    }
    assert!(
        failing().await >= 3,
        "the failing deployment was never picked"
    );

    let (status, resp) = update(&gw, json!({"router_settings": {"allowed_fails": 0}})).await;
    assert_eq!(status, 200, "{resp}");
    // Now its first failure cools it down (decided by its actor a moment after the report) for
    // cooldown_time (60 s), and it gets no more calls.
    let before = failing().await;
    for _ in 0..30 {
        call().await;
        if failing().await > before {
            break;
        }
    }
    assert!(
        failing().await > before,
        "the failing deployment was never picked again"
    );
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let cooled = failing().await;
    for _ in 0..20 {
        call().await;
    }
    assert_eq!(
        failing().await,
        cooled,
        "the cooled-down deployment got calls"
    );
}

#[actix_rt::test]
async fn a_second_instance_sharing_the_database_picks_the_change_up() {
    let mock = Mock::start(&[]);
    let db_dir = tempfile::tempdir().unwrap();
    let cfg = config(&mock, db_dir.path(), "  num_retries: 0\n");
    let envs = [("TOLLGATE_DB_MODELS_RELOAD_SECONDS", "0.3")];
    let a = Gateway::start(&cfg, &[], &envs);
    let b = Gateway::start(&cfg, &[], &envs);
    let (status, resp) = update(&a, json!({"router_settings": {"num_retries": 1}})).await;
    assert_eq!(status, 200, "{resp}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if router_settings(&b).await["num_retries"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "instance b never saw the change");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(retries_of_a_failing_call(&b).await, "1");
}

#[actix_rt::test]
async fn keys_that_cannot_change_at_run_time_refuse_the_whole_request_naming_each() {
    let mock = Mock::start(&[]);
    let db_dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(
        &config(&mock, db_dir.path(), "  num_retries: 0\n"),
        &[],
        &[],
    );
    let (status, resp) = update(
        &gw,
        json!({
            "router_settings": {"num_retries": 3, "redis_host": "elsewhere", "flux": 1},
            "general_settings": {"database_url": "postgres://x/y"},
            "litellm_settings": {"telemetry": false},
        }),
    )
    .await;
    assert_eq!(status, 400, "{resp}");
    assert_envelope(&resp);
    let message = resp["error"]["message"].as_str().unwrap();
    for expected in [
        "router_settings.redis_host (needs a restart",
        "router_settings.flux (unknown key)",
        "general_settings.database_url (needs a restart",
        "litellm_settings.telemetry (has no effect in Tollgate",
    ] {
        assert!(message.contains(expected), "{expected} not in {message}");
    }
    assert!(!message.contains("num_retries"), "{message}");
    // Nothing was applied, not even the acceptable key.
    assert_eq!(retries_of_a_failing_call(&gw).await, "0");
    assert!(store(db_dir.path())
        .await
        .list_config_settings()
        .await
        .unwrap()
        .is_empty());

    // A value of the wrong kind is refused too.
    let (status, resp) = update(
        &gw,
        json!({"router_settings": {"routing_strategy": "fastest"}}),
    )
    .await;
    assert_eq!(status, 400, "{resp}");
    assert!(resp["error"]["message"]
        .as_str()
        .unwrap()
        .contains("router_settings.routing_strategy (must be one of"));
}

#[actix_rt::test]
async fn environment_variables_are_sealed_never_shown_and_resolve_the_deployments_at_once() {
    let mock = Mock::start(&[]);
    let db_dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(
        &config(&mock, db_dir.path(), "  num_retries: 0\n"),
        &[],
        &[],
    );
    // The key's variable is not set: the deployment cannot be called.
    let (status, _, body) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat("env-model"),
    )
    .await;
    assert_ne!(status, 200, "{body}");

    // A variable no deployment reads is refused.
    let (status, resp) = update(&gw, json!({"environment_variables": {"HOME": "/tmp"}})).await;
    assert_eq!(status, 400, "{resp}");
    assert!(resp["error"]["message"]
        .as_str()
        .unwrap()
        .contains("environment_variables.HOME (no deployment reads it"));

    let (status, resp) = update(
        &gw,
        json!({"environment_variables": {ENV_VAR: UPSTREAM_SECRET}}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert!(!resp.to_string().contains(UPSTREAM_SECRET), "{resp}");
    assert_eq!(
        resp["applied"]["environment_variables"][ENV_VAR],
        tollgate::runtime_settings::REDACTED
    );

    // The deployment is rebuilt with it: callable, with the new key upstream.
    let (status, _, body) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat("env-model"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let upstream = mock.last_request().await;
    assert_eq!(
        upstream["headers"]["authorization"],
        format!("Bearer {UPSTREAM_SECRET}")
    );

    // At rest: sealed, and the audit log names the variable without its value.
    assert!(!contains(&database_bytes(db_dir.path()), UPSTREAM_SECRET));
    let store = store(db_dir.path()).await;
    let rows = store.list_config_settings().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].sealed);
    assert_eq!(rows[0].name, ENV_VAR);
    let audit = store.list_audit_logs("config_settings", 10).await.unwrap();
    assert_eq!(audit.len(), 1);
    let logged = format!("{:?}", audit[0]);
    assert!(!logged.contains(UPSTREAM_SECRET), "{logged}");
    assert!(logged.contains(ENV_VAR), "{logged}");

    // A restart opens the sealed value and resolves the reference again.
    drop(gw);
    let gw = Gateway::start(
        &config(&mock, db_dir.path(), "  num_retries: 0\n"),
        &[],
        &[],
    );
    let (status, _, body) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat("env-model"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        mock.last_request().await["headers"]["authorization"],
        format!("Bearer {UPSTREAM_SECRET}")
    );
}

/// The store's side on both backends: rows replace rows of the same key, deletes remove them, and
/// each update writes its audit entry in the same transaction.
async fn stored_settings(store: std::sync::Arc<dyn Store>) {
    use tollgate::store::{AuditRecord, ConfigSetting};
    let row = |name: &str, value: &str, at: i64| ConfigSetting {
        section: "router_settings".into(),
        name: name.into(),
        value: value.into(),
        sealed: false,
        updated_at: at,
        updated_by: Some("admin".into()),
    };
    let audit = |id: &str, at: i64| AuditRecord {
        id: id.into(),
        updated_at: at,
        changed_by: Some("admin".into()),
        action: "updated".into(),
        table_name: "config_settings".into(),
        object_id: "router_settings".into(),
        before_value: Some("{}".into()),
        updated_values: Some("{}".into()),
    };
    store
        .update_config_settings(
            &[row("num_retries", "1", 1), row("timeout", "5", 1)],
            &[],
            &audit("a1", 1),
        )
        .await
        .unwrap();
    store
        .update_config_settings(
            &[row("num_retries", "3", 2)],
            &[("router_settings".into(), "timeout".into())],
            &audit("a2", 2),
        )
        .await
        .unwrap();
    let rows = store.list_config_settings().await.unwrap();
    assert_eq!(rows, vec![row("num_retries", "3", 2)]);
    let logged = store.list_audit_logs("config_settings", 10).await.unwrap();
    assert_eq!(
        logged.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["a2", "a1"]
    );
    // A failed update (its audit id taken) changes nothing.
    assert!(store
        .update_config_settings(&[row("num_retries", "9", 3)], &[], &audit("a2", 3))
        .await
        .is_err());
    assert_eq!(
        store.list_config_settings().await.unwrap(),
        vec![row("num_retries", "3", 2)]
    );
}

#[actix_rt::test]
async fn stored_settings_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url =
        DatabaseUrl::parse(&format!("sqlite:///{}", dir.path().join("s.db").display())).unwrap();
    tollgate::store::migrate::run(&url).expect("migrations");
    stored_settings(tollgate::store::open(&url).unwrap()).await;
}

#[actix_rt::test]
async fn stored_settings_on_postgres() {
    let pg = FreshPostgres::create();
    let url = DatabaseUrl::parse(&pg.url).unwrap();
    let again = url.clone();
    std::thread::spawn(move || tollgate::store::migrate::run(&again))
        .join()
        .unwrap()
        .expect("migrations");
    stored_settings(tollgate::store::open(&url).unwrap()).await;
}
