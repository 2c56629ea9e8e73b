//! Running it in production: `/health/readiness` answers 503 with the reason while the database or
//! a configured Redis is unreachable (liveness stays 200); the Redis shared by the limits and the
//! router also comes from `REDIS_URL` / `REDIS_HOST`… and `cache_params`, and start-up says whether
//! limits are shared; the container image and compose stack (checked as files and by running the
//! binary as the image does, since Docker itself may not run here).

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn model(mock: &Mock) -> String {
    format!(
        "model_list:\n  - model_name: good\n    litellm_params: {{model: openai/mock-gpt, api_base: \"{}\", api_key: sk-x}}\n",
        mock.api_base()
    )
}

async fn readiness(gw: &Gateway) -> (u16, Value) {
    let (status, _, body) = get(&gw.url("/health/readiness"), None).await;
    (status, body)
}

async fn wait_ready(gw: &Gateway, want: u16) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = readiness(gw).await;
        if status == want {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "readiness never answered {want}: {status} {body}"
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Readiness once the router's Redis has answered (it is `connecting`, and ready, until then).
async fn wait_redis_connected(gw: &Gateway) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = readiness(gw).await;
        if body["router_redis"] == "connected" {
            assert_eq!(status, 200, "{body}");
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Redis never connected: {status} {body}"
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn assert_alive(gw: &Gateway) {
    for path in ["/health/liveliness", "/health/liveness"] {
        assert_eq!(get(&gw.url(path), None).await.0, 200, "{path}");
    }
}

#[actix_rt::test]
async fn readiness_is_503_while_the_database_is_unreachable_and_liveness_stays_200() {
    let mock = Mock::start(&[]);
    // Postgres where nothing listens: the gateway serves, but is not ready.
    let port = closed_port();
    let cfg = format!(
        "{}general_settings:\n  master_key: {MASTER_KEY}\n  database_url: postgresql://tollgate:s3cret-pw@127.0.0.1:{port}/tollgate\n",
        model(&mock)
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    let (status, body) = readiness(&gw).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["db"], "disconnected", "{body}");
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("database"), "{body}");
    // A public probe: neither the credentials nor the address.
    assert!(
        !body.to_string().contains("s3cret") && !reason.contains(&port.to_string()),
        "{body}"
    );
    assert_alive(&gw).await;
    // The master key still serves LLM calls.
    let (status, _, resp) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat("good"),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    drop(gw);

    // A database that goes away while the gateway runs.
    let pg = FreshPostgres::create();
    let cfg = format!(
        "{}general_settings:\n  master_key: {MASTER_KEY}\n  database_url: {}\n",
        model(&mock),
        pg.url
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    let body = wait_ready(&gw, 200).await;
    assert_eq!(body["db"], "connected", "{body}");
    assert_eq!(body["status"], "healthy", "{body}");
    let name = pg.url.rsplit('/').next().unwrap().to_string();
    let admin = std::env::var("TOLLGATE_TEST_PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let out = std::process::Command::new("psql")
        .args([
            admin.as_str(),
            "-qAtX",
            "-c",
            &format!("DROP DATABASE \"{name}\" WITH (FORCE)"),
        ])
        .output()
        .expect("psql");
    assert!(out.status.success(), "{out:?}");
    let body = wait_ready(&gw, 503).await;
    assert_eq!(body["db"], "disconnected", "{body}");
    assert_eq!(body["status"], "unhealthy", "{body}");
    assert!(
        body["reason"].as_str().unwrap().contains("database"),
        "{body}"
    );
    assert_alive(&gw).await;
}

#[actix_rt::test]
async fn readiness_is_503_while_a_configured_redis_is_unreachable() {
    let mock = Mock::start(&[]);
    let mut redis = PrivateRedis::start();
    let cfg = format!(
        "{}general_settings:\n  master_key: {MASTER_KEY}\nrouter_settings:\n  redis_host: 127.0.0.1\n  redis_port: {}\n",
        model(&mock),
        redis.port
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    wait_redis_connected(&gw).await;

    redis.kill();
    // Requests keep flowing (routing falls back to local state) while readiness says why not.
    for _ in 0..4 {
        post(
            &gw.url("/v1/chat/completions"),
            Some(MASTER_KEY),
            &chat("good"),
        )
        .await;
    }
    let body = wait_ready(&gw, 503).await;
    assert!(
        body["reason"].as_str().unwrap().contains("router Redis"),
        "{body}"
    );
    assert_alive(&gw).await;

    redis.resume();
    wait_redis_connected(&gw).await;
}

/// Start a gateway whose only Redis setting is `envs` / `extra` config, make one limited call, and
/// return it with the log.
async fn limited_call(mock: &Mock, extra: &str, envs: &[(&str, &str)]) -> (Gateway, String) {
    let cfg = format!(
        "{}general_settings:\n  master_key: {MASTER_KEY}\n{extra}",
        model(mock)
    );
    let gw = Gateway::start(&cfg, &[], envs);
    let (status, _, key) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"rpm_limit": 100}),
    )
    .await;
    assert_eq!(status, 200, "{key}");
    let (status, _, resp) = post(
        &gw.url("/v1/chat/completions"),
        Some(key["key"].as_str().unwrap()),
        &chat("good"),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    let logs = gw.proc.logs();
    (gw, logs)
}

#[actix_rt::test]
async fn redis_for_shared_limits_from_the_environment_or_cache_params_and_start_up_says_so() {
    let mock = Mock::start(&[]);
    let redis = PrivateRedis::start();
    let port = redis.port.to_string();
    let url = format!("redis://127.0.0.1:{port}");
    let cache_params = format!(
        "litellm_settings:\n  cache: true\n  cache_params: {{type: redis, host: 127.0.0.1, port: {port}}}\n"
    );
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);
    let cases: [Case; 3] = [
        (
            "REDIS_HOST",
            String::new(),
            vec![("REDIS_HOST", "127.0.0.1"), ("REDIS_PORT", port.as_str())],
        ),
        (
            "REDIS_URL",
            String::new(),
            vec![("REDIS_URL", url.as_str())],
        ),
        ("litellm_settings.cache_params", cache_params, vec![]),
    ];
    for (source, extra, envs) in cases {
        let before = redis.limit_keys();
        let (gw, logs) = limited_call(&mock, &extra, &envs).await;
        assert!(
            logs.contains("shared across instances through Redis") && logs.contains(source),
            "{source}: {logs}"
        );
        wait_redis_connected(&gw).await;
        // The key's rate-limit window is counted in that Redis.
        let after = redis.limit_keys();
        assert!(before.trim().is_empty(), "{source}: {before}");
        assert!(
            !after.trim().is_empty(),
            "{source}: no limit window in Redis"
        );
        let _ = std::process::Command::new("redis-cli")
            .args(["-p", &port, "FLUSHALL"])
            .output();
    }
    // Without any Redis, start-up says limits are per instance.
    let (gw, logs) = limited_call(&mock, "", &[]).await;
    assert!(
        logs.contains("rate limits and routing state are per instance"),
        "{logs}"
    );
    let (status, body) = readiness(&gw).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["router_redis"], Value::Null, "{body}");
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The JSON-array argument of the Dockerfile's `CMD` line.
fn dockerfile_cmd(dockerfile: &str) -> Vec<String> {
    let line = dockerfile
        .lines()
        .find(|l| l.starts_with("CMD "))
        .expect("a CMD line");
    serde_json::from_str(line.trim_start_matches("CMD ").trim()).expect("CMD is a JSON array")
}

#[test]
fn compose_passes_the_salt_key_and_the_image_keeps_sqlite_on_a_volume() {
    let compose = std::fs::read_to_string(repo().join("docker/docker-compose.yml")).unwrap();
    let tollgate = compose
        .split("\n  mock:")
        .next()
        .expect("the tollgate service comes first");
    assert!(
        tollgate.contains("LITELLM_SALT_KEY: ${LITELLM_SALT_KEY"),
        "{tollgate}"
    );
    assert!(tollgate.contains("LITELLM_MASTER_KEY: ${LITELLM_MASTER_KEY"));

    let dockerfile = std::fs::read_to_string(repo().join("docker/Dockerfile")).unwrap();
    let volume = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("VOLUME "))
        .expect("a VOLUME");
    let volumes: Vec<String> = serde_json::from_str(volume).expect("VOLUME is a JSON array");
    let database = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ENV DATABASE_URL="))
        .expect("the image names its SQLite file");
    let file = database.strip_prefix("sqlite:///").expect("a SQLite URL");
    assert!(
        volumes.iter().any(|v| file.starts_with(&format!("{v}/"))),
        "{file} is not on a volume {volumes:?}"
    );
    assert!(
        dockerfile.contains("COPY --chown=tollgate:tollgate config/example.yaml /app/config.yaml")
    );
}

/// The image's default command and config, run as the image runs them (its config, its database
/// URL moved into a temporary "volume", 0.0.0.0): it starts with nothing but a master key, keeps
/// its SQLite file on the volume, and a weak master key stops it with how to make a strong one.
#[actix_rt::test]
async fn the_images_default_config_works_alone_and_a_weak_key_says_how_to_make_a_strong_one() {
    let dockerfile = std::fs::read_to_string(repo().join("docker/Dockerfile")).unwrap();
    let app = tempfile::tempdir().unwrap();
    let volume = app.path().join("data");
    std::fs::create_dir(&volume).unwrap();
    std::fs::copy(
        repo().join("config/example.yaml"),
        app.path().join("config.yaml"),
    )
    .unwrap();
    let database = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ENV DATABASE_URL="))
        .unwrap()
        .replace("/app/", &format!("{}/", app.path().display()));
    let args: Vec<String> = dockerfile_cmd(&dockerfile)
        .into_iter()
        .map(|a| match a.as_str() {
            "/app/config.yaml" => app.path().join("config.yaml").display().to_string(),
            "4000" => "0".to_string(),
            _ => a,
        })
        .collect();
    assert!(
        args.windows(2).any(|w| w == ["--host", "0.0.0.0"]),
        "{args:?}"
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let strong = format!("sk-{}", uuid_like());
    let proc = spawn(
        &args,
        &[
            ("LITELLM_MASTER_KEY", strong.as_str()),
            ("DATABASE_URL", database.as_str()),
        ],
        app.path(),
    )
    .expect("the image's default config starts with only a master key");
    let port = proc.url.rsplit(':').next().unwrap().to_string();
    let base = format!("http://127.0.0.1:{port}");
    let (status, _, body) = get(&format!("{base}/health/readiness"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["db_backend"], "sqlite", "{body}");
    assert!(
        volume.join("tollgate.db").exists(),
        "SQLite file on the volume"
    );
    let (status, _, models) = get(&format!("{base}/v1/models"), Some(&strong)).await;
    assert_eq!(status, 200, "{models}");
    assert!(models.to_string().contains("mock-gpt"), "{models}");
    // A key made now is kept in the file on the volume.
    let (status, _, key) = post(
        &format!("{base}/key/generate"),
        Some(&strong),
        &json!({"key_alias": "survives"}),
    )
    .await;
    assert_eq!(status, 200, "{key}");
    drop(proc);

    for weak in ["sk-1234", "short"] {
        let (code, _, stderr) = run_to_end(
            &args,
            &[
                ("LITELLM_MASTER_KEY", weak),
                ("DATABASE_URL", database.as_str()),
            ],
            app.path(),
        );
        assert_ne!(code, 0, "{weak}");
        assert!(
            stderr.contains("openssl rand -hex") && stderr.contains("LITELLM_MASTER_KEY="),
            "{weak}: {stderr}"
        );
    }
}
