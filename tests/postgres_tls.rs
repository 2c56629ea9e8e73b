//! Postgres over TLS: `sslmode` and `sslrootcert` in `database_url`, against the local Postgres
//! (scripts/test.sh makes sure it has SSL on, with a certificate issued for `localhost`).

mod common;

use common::*;
use serde_json::json;

fn psql_value(url: &str, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .args([url, "-qAtX", "-c", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn admin_url() -> String {
    std::env::var("TOLLGATE_TEST_PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The server's certificate (its own root: self-signed), when the server has SSL on.
fn server_certificate() -> String {
    let admin = admin_url();
    assert_eq!(
        psql_value(&admin, "SHOW ssl"),
        "on",
        "the test Postgres must have SSL on (scripts/test.sh turns it on)"
    );
    let file = psql_value(&admin, "SHOW ssl_cert_file");
    let path = if file.starts_with('/') {
        file
    } else {
        format!("{}/{file}", psql_value(&admin, "SHOW data_directory"))
    };
    assert!(
        std::fs::metadata(&path).is_ok(),
        "the server certificate {path} is readable"
    );
    path
}

/// Whether the certificate names `localhost` (scripts/test.sh's does; Debian's snakeoil names the
/// machine's host name).
fn names_localhost(cert: &str) -> bool {
    std::process::Command::new("openssl")
        .args(["x509", "-in", cert, "-noout", "-ext", "subjectAltName"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("DNS:localhost"))
        .unwrap_or(false)
}

fn with_query(url: &str, query: &str) -> String {
    format!("{url}?{query}")
}

/// `tollgate migrate` against `database_url`: (exit code, stdout + stderr).
fn migrate(database_url: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!("general_settings:\n  database_url: \"{database_url}\"\n"),
    )
    .unwrap();
    let (code, out, err) = run_to_end(
        &["migrate", "--config", &cfg.to_string_lossy()],
        &[],
        dir.path(),
    );
    (code, format!("{out}{err}"))
}

#[actix_rt::test]
async fn the_gateway_talks_to_postgres_over_tls_when_sslmode_requires_it() {
    let _cert = server_certificate();
    let db = FreshPostgres::create();
    let mock = Mock::start(&[]);
    let config = format!(
        "{}  database_url: \"{}\"\n  database_connection_pool_limit: 3\n  database_connection_timeout: 5\n",
        basic_config(&mock),
        with_query(&db.url, "sslmode=require&application_name=tollgate-tls-test")
    );
    let gw = Gateway::start(&config, &[], &[]);
    let (status, _, created) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"key_alias": "over-tls"}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let key = created["key"].as_str().unwrap();
    let (status, _, body) = post(
        &gw.url("/v1/chat/completions"),
        Some(key),
        &chat("mock-gpt"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Every connection the gateway holds to its database is encrypted, and there are at most
    // database_connection_pool_limit of them (the migration's own connection is closed).
    let name = db.url.rsplit('/').next().unwrap();
    let sql = format!(
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.datname = '{name}' AND a.application_name = 'tollgate-tls-test'"
    );
    let counts = psql_value(&admin_url(), &sql);
    let (encrypted, all) = counts.split_once('|').unwrap();
    let (encrypted, all): (u32, u32) = (encrypted.parse().unwrap(), all.parse().unwrap());
    assert!(all >= 1, "the gateway holds a connection: {counts}");
    assert_eq!(encrypted, all, "every connection is encrypted: {counts}");
    assert!(
        all <= 3,
        "the pool follows database_connection_pool_limit: {counts}"
    );
}

#[test]
fn each_sslmode_connects_or_fails_as_libpq_would() {
    let cert = server_certificate();
    let db = FreshPostgres::create();
    // disable and prefer: plain or encrypted, no certificate check.
    for query in ["sslmode=disable", "sslmode=prefer", "sslmode=require"] {
        let (code, out) = migrate(&with_query(&db.url, query));
        assert_eq!(code, 0, "{query}: {out}");
    }
    // verify-ca: the chain must lead to the root given (the server's own, self-signed).
    let (code, out) = migrate(&with_query(
        &db.url,
        &format!("sslmode=verify-ca&sslrootcert={cert}"),
    ));
    assert_eq!(code, 0, "verify-ca: {out}");
    // verify-full also checks the name: the certificate is issued for localhost, not 127.0.0.1.
    let (code, out) = migrate(&with_query(
        &db.url,
        &format!("sslmode=verify-full&sslrootcert={cert}"),
    ));
    assert_ne!(code, 0, "verify-full against 127.0.0.1: {out}");
    assert!(
        out.to_lowercase().contains("name") || out.contains("NotValidForName"),
        "the error says the certificate does not name the host: {out}"
    );
    if names_localhost(&cert) {
        let by_name = db.url.replacen("@127.0.0.1:", "@localhost:", 1);
        let (code, out) = migrate(&with_query(
            &by_name,
            &format!("sslmode=verify-full&sslrootcert={cert}"),
        ));
        assert_eq!(code, 0, "verify-full against localhost: {out}");
    } else {
        eprintln!(
            "the server certificate does not name localhost: verify-full's success case not run"
        );
    }
    // verify-ca without the server's root: the built-in roots do not trust a self-signed
    // certificate.
    let (code, out) = migrate(&with_query(&db.url, "sslmode=verify-ca"));
    assert_ne!(code, 0, "verify-ca with the built-in roots: {out}");
    // A mode libpq does not have is a configuration error that says so.
    let (code, out) = migrate(&with_query(&db.url, "sslmode=sometimes"));
    assert_ne!(code, 0);
    assert!(out.contains("sslmode=sometimes"), "{out}");
}
