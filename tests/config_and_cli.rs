//! Config loading and the command line, on the real binary.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::json;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read config dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

#[actix_rt::test]
async fn every_config_in_the_repository_starts() {
    let mut files = Vec::new();
    yaml_files(&repo().join("config"), &mut files);
    assert!(
        files.len() >= 5,
        "expected the example and seed configs, found {files:?}"
    );
    for file in files {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file.to_string_lossy().to_string();
        let proc = spawn(
            &[
                "--config",
                &path,
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--num_workers",
                "1",
            ],
            // The seeds' Langfuse callback and Slack alerting need their settings (without them the start
            // is refused); they point at a closed local port, so nothing leaves the machine.
            &[
                ("LANGFUSE_PUBLIC_KEY", "pk-lf-test"),
                ("LANGFUSE_SECRET_KEY", "sk-lf-test"),
                ("LANGFUSE_HOST", "http://127.0.0.1:9"),
                ("SLACK_WEBHOOK_URL", "http://127.0.0.1:9/slack"),
            ],
            dir.path(),
        )
        .unwrap_or_else(|e| panic!("{path} did not start: {e}"));
        let (status, _, _) = get(&format!("{}/health/liveliness", proc.url), None).await;
        assert_eq!(status, 200, "{path}");
    }
}

#[test]
fn a_callback_without_its_environment_stops_the_start_naming_the_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = repo().join("config/seeds/openai-proxy-server-14-langfuse.yaml");
    let (code, _, stderr) = run_to_end(
        &[
            "--config",
            &path.to_string_lossy(),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ],
        &[],
        dir.path(),
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("LANGFUSE_PUBLIC_KEY"), "{stderr}");
}

#[test]
fn malformed_yaml_exits_naming_file_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("broken.yaml");
    std::fs::write(
        &path,
        "model_list:\n  - model_name: a\n    litellm_params: {model: [unclosed\n",
    )
    .expect("write");
    let (code, _, stderr) = run_to_end(
        &["--config", &path.to_string_lossy(), "--port", "0"],
        &[],
        dir.path(),
    );
    assert_ne!(code, 0);
    assert!(
        stderr.contains("broken.yaml") && stderr.contains("line") && stderr.contains("column"),
        "{stderr}"
    );
}

#[test]
fn weak_or_missing_master_key_refused_on_a_reachable_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.yaml");
    for settings in [
        "general_settings:\n  master_key: sk-1234\n",
        "general_settings:\n  master_key: sk-short\n",
        "",
    ] {
        std::fs::write(&path, format!("model_list: []\n{settings}")).expect("write");
        let (code, _, stderr) = run_to_end(
            &[
                "--config",
                &path.to_string_lossy(),
                "--host",
                "0.0.0.0",
                "--port",
                "0",
            ],
            &[],
            dir.path(),
        );
        assert_ne!(code, 0, "{settings}");
        assert!(
            stderr.contains("LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY"),
            "{stderr}"
        );
    }
}

#[actix_rt::test]
async fn weak_master_key_allowed_on_loopback_or_when_permitted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        "model_list: []\ngeneral_settings:\n  master_key: sk-1234\n",
    )
    .expect("write");
    let path = path.to_string_lossy().to_string();
    let proc = spawn(
        &["--config", &path, "--host", "127.0.0.1", "--port", "0"],
        &[],
        dir.path(),
    )
    .expect("loopback starts");
    assert!(proc.logs().contains("published example"), "{}", proc.logs());
    drop(proc);
    let proc = spawn(
        &["--config", &path, "--host", "0.0.0.0", "--port", "0"],
        &[(
            "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY",
            "true",
        )],
        dir.path(),
    )
    .expect("permitted starts");
    let port = proc.url.rsplit(':').next().expect("port").to_string();
    let (status, _, _) = get(&format!("http://127.0.0.1:{port}/health/liveliness"), None).await;
    assert_eq!(status, 200);
}

#[actix_rt::test]
async fn config_file_path_env_and_master_key_env() {
    let mock = Mock::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("from-env.yaml");
    std::fs::write(
        &path,
        format!("model_list:\n  - model_name: m\n    litellm_params: {{model: openai/mock-gpt, api_base: \"{}\"}}\n", mock.api_base()),
    )
    .expect("write");
    let proc = spawn(
        &["--host", "127.0.0.1", "--port", "0"],
        &[
            ("CONFIG_FILE_PATH", &path.to_string_lossy()),
            ("LITELLM_MASTER_KEY", MASTER_KEY),
        ],
        dir.path(),
    )
    .expect("starts");
    let (status, _, body) = post(
        &format!("{}/v1/chat/completions", proc.url),
        Some(MASTER_KEY),
        &chat("m"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = post(
        &format!("{}/v1/chat/completions", proc.url),
        None,
        &chat("m"),
    )
    .await;
    assert_eq!(status, 401);
}

#[actix_rt::test]
async fn env_vars_credentials_and_unresolved_references() {
    let mock = Mock::start(&["--api-key", "sk-required-by-upstream-77"]);
    let config = format!(
        r#"
environment_variables:
  TOLLGATE_T_UPSTREAM_KEY: sk-required-by-upstream-77
credential_list:
  - credential_name: shared
    credential_values:
      api_key: os.environ/TOLLGATE_T_UPSTREAM_KEY
      api_base: "{base}"
model_list:
  - model_name: via-credential
    litellm_params: {{model: openai/mock-gpt, litellm_credential_name: shared}}
  - model_name: missing-env
    litellm_params: {{model: openai/mock-gpt, api_base: "{base}", api_key: os.environ/TOLLGATE_T_DEFINITELY_UNSET}}
  - model_name: dev-only
    litellm_params: {{model: openai/mock-gpt, api_base: "{base}"}}
    model_info: {{supported_environments: [development]}}
litellm_settings:
  some_unknown_setting: true
general_settings:
  master_key: {MASTER_KEY}
"#,
        base = mock.api_base()
    );
    let gw = Gateway::start(&config, &[], &[("LITELLM_ENVIRONMENT", "production")]);
    let url = gw.url("/v1/chat/completions");
    let (status, _, body) = post(&url, Some(MASTER_KEY), &chat("via-credential")).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = post(&url, Some(MASTER_KEY), &chat("missing-env")).await;
    assert_eq!(status, 500, "{body}");
    assert_envelope(&body);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("TOLLGATE_T_DEFINITELY_UNSET"),
        "{body}"
    );
    let (status, _, _) = post(&url, Some(MASTER_KEY), &chat("dev-only")).await;
    assert_eq!(
        status, 400,
        "a deployment outside LITELLM_ENVIRONMENT is not served"
    );
    let logs = gw.proc.logs();
    assert!(logs.contains("TOLLGATE_T_DEFINITELY_UNSET"), "{logs}");
    assert!(logs.contains("some_unknown_setting"), "{logs}");
}

#[actix_rt::test]
async fn quick_start_model_flag_routes_every_model() {
    let mock = Mock::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let base = mock.api_base();
    let proc = spawn(
        &[
            "--model",
            "openai/mock-gpt",
            "--api_base",
            &base,
            "--alias",
            "my-model",
            "--temperature",
            "0.3",
            "--max_tokens",
            "50",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ],
        &[],
        dir.path(),
    )
    .expect("starts");
    for model in ["my-model", "gpt-4o", "anything-at-all"] {
        let (status, _, body) = post(
            &format!("{}/v1/chat/completions", proc.url),
            None,
            &chat(model),
        )
        .await;
        assert_eq!(status, 200, "{model}: {body}");
    }
    let sent = mock.last_request().await["body"].clone();
    assert_eq!(sent["model"], "mock-gpt");
    assert_eq!(sent["temperature"], json!(0.3));
    assert_eq!(sent["max_tokens"], json!(50));
}

#[actix_rt::test]
async fn test_and_health_flags_talk_to_a_running_gateway() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &[], &[]);
    let port = gw.proc.url.rsplit(':').next().expect("port").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, stdout, stderr) = run_to_end(
        &["--test", "--port", &port],
        &[("LITELLM_MASTER_KEY", MASTER_KEY)],
        dir.path(),
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("mock provider") || stdout.contains("Hello"),
        "{stdout}"
    );
    let (code, stdout, stderr) = run_to_end(
        &["--health", "--port", &port],
        &[("LITELLM_MASTER_KEY", MASTER_KEY)],
        dir.path(),
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("healthy_endpoints"), "{stdout}");
}

#[actix_rt::test]
async fn detailed_debug_logs_requests_without_secrets() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&basic_config(&mock), &["--detailed_debug"], &[]);
    let mut body = chat("mock-gpt");
    body["api_key"] = json!("sk-client-sent-secret-999");
    let (status, _, _) = post(&gw.url("/v1/chat/completions"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let logs = gw.proc.logs();
    assert!(logs.contains("upstream request"), "{logs}");
    for secret in [
        "sk-mock-upstream-secret-42",
        MASTER_KEY,
        "sk-client-sent-secret-999",
    ] {
        assert!(!logs.contains(secret), "log leaks {secret}:\n{logs}");
    }
}

#[test]
fn migrate_subcommand_applies_then_reports_up_to_date() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.yaml");
    let db = dir.path().join("data/migrated.db");
    std::fs::write(
        &path,
        format!(
            "general_settings:\n  database_url: sqlite:///{}\n",
            db.display()
        ),
    )
    .expect("write");
    let config = path.to_string_lossy().to_string();
    let (code, stdout, stderr) = run_to_end(&["migrate", "--config", &config], &[], dir.path());
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("applied"), "{stdout}");
    assert!(db.exists());
    let (code, stdout, _) = run_to_end(&["migrate", "--config", &config], &[], dir.path());
    assert_eq!(code, 0);
    assert!(stdout.contains("up to date"), "{stdout}");
    // Without a config: the embedded default in the working directory.
    let (code, _, _) = run_to_end(&["migrate"], &[], dir.path());
    assert_eq!(code, 0);
    assert!(dir.path().join("tollgate.db").exists());
}

/// Durations in the config and on the command line that no duration can hold (`1e300`, `.inf`)
/// never panic the gateway: a deployment's `timeout`, `stream_timeout`, `health_check_timeout`,
/// the router's `retry_after` and `stream_timeout`, `proxy_batch_write_at` and
/// `--request_timeout` are read as at most a year, and the gateway serves.
#[actix_rt::test]
async fn huge_config_durations_are_capped_not_panicked_on() {
    let mock = Mock::start(&[]);
    let config = format!(
        r#"model_list:
  - model_name: mock-gpt
    litellm_params: {{model: openai/mock-gpt, api_base: {base}, api_key: sk-x, timeout: 1e300, stream_timeout: .inf}}
    model_info: {{health_check_timeout: "1e300"}}
router_settings:
  retry_after: 1e300
  stream_timeout: .inf
general_settings:
  master_key: {MASTER_KEY}
  proxy_batch_write_at: 1e300
"#,
        base = mock.api_base()
    );
    let gw = Gateway::start(&config, &["--request_timeout", "1e300"], &[]);
    let (status, _, body) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat("mock-gpt"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = get(&gw.url("/health"), Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["healthy_count"], 1, "{body}");
    assert!(!gw.proc.logs().contains("panicked"), "{}", gw.proc.logs());
}

/// LiteLLM's flags Tollgate has no use for start the gateway, each with a warning saying why.
#[actix_rt::test]
async fn litellm_only_flags_start_the_gateway_with_a_warning_each() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(
        &basic_config(&mock),
        &[
            "--telemetry",
            "False",
            "--add_function_to_prompt",
            "--max_budget",
            "10",
            "--use_queue",
            "--run_gunicorn",
            "--num_requests",
            "5",
            "--keepalive_timeout",
            "30",
            "--local",
        ],
        &[],
    );
    let (status, _, body) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &chat("mock-gpt"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let logs = gw.proc.logs();
    for flag in [
        "--telemetry",
        "--add_function_to_prompt",
        "--max_budget",
        "--use_queue",
        "--run_gunicorn",
        "--num_requests",
        "--keepalive_timeout",
        "--local",
    ] {
        assert!(
            logs.contains(&format!("{flag} is a LiteLLM flag Tollgate does not need")),
            "{flag}: {logs}"
        );
    }
}

/// `--validate_config` checks the config and exits; `--skip_server_startup` migrates and exits;
/// `-v` prints the version, as LiteLLM's do.
#[test]
fn validate_config_skip_server_startup_and_v_exit_without_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.yaml");
    let db = dir.path().join("skip.db");
    std::fs::write(
        &good,
        format!(
            "model_list:\n  - model_name: a\n    litellm_params: {{model: openai/x, api_key: os.environ/TOLLGATE_TEST_UNSET_VAR}}\nlitellm_settings: {{flux: 1}}\ngeneral_settings:\n  database_url: sqlite:///{}\n",
            db.display()
        ),
    )
    .unwrap();
    let good = good.to_string_lossy().to_string();
    let (code, out, err) = run_to_end(&["--config", &good, "--validate_config"], &[], dir.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("config OK: 1 model deployment(s)"), "{out}");
    assert!(out.contains("TOLLGATE_TEST_UNSET_VAR"), "{out}");
    assert!(
        out.contains("unknown config key litellm_settings.flux"),
        "{out}"
    );
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "model_list: [\n").unwrap();
    let (code, _, err) = run_to_end(
        &["--config", &bad.to_string_lossy(), "--validate_config"],
        &[],
        dir.path(),
    );
    assert_eq!(code, 1, "{err}");

    let (code, out, err) = run_to_end(
        &["--config", &good, "--skip_server_startup"],
        &[],
        dir.path(),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("applied"), "{out}");
    assert!(db.exists());

    let (code, out, _) = run_to_end(&["-v"], &[], dir.path());
    assert_eq!(code, 0);
    assert!(out.starts_with("tollgate "), "{out}");
}

/// The soft and hard "Max open files" of a running process, from `/proc/<pid>/limits`.
#[cfg(target_os = "linux")]
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("read limits");
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .expect("Max open files line");
    let mut fields = line["Max open files".len()..].split_whitespace();
    let soft = fields.next().expect("soft").to_owned();
    let hard = fields.next().expect("hard").to_owned();
    (soft, hard)
}

#[cfg(target_os = "linux")]
#[test]
fn gateway_raises_its_open_file_limit_to_the_hard_limit() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "model_list: []\n").expect("write config");
    // Started the way a service manager would with a low soft limit (1024 is the usual default;
    // 256 here, so that the raise shows whatever the hard limit of the test machine).
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -S -n 256 && exec \"$0\" \"$@\"", bin()])
        .args(["--config", &config.to_string_lossy()])
        .args(["--host", "127.0.0.1", "--port", "0", "--num_workers", "1"])
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("LITELLM_MASTER_KEY")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).expect("read stdout") > 0,
            "gateway exited before listening"
        );
    }
    let (soft, hard) = open_file_limits(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");

    assert_eq!(soft, hard, "soft limit not raised to the hard limit");
    assert!(
        stderr.contains(&format!("open-file limit (RLIMIT_NOFILE) is {hard}")),
        "{stderr}"
    );
}
