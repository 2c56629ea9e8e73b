//! Test harness: starts the real `tollgate` binary (gateway and mock provider) on random ports and
//! talks to it over real HTTP. Each test gets its own processes and temp directory; processes are
//! killed when the handles drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

mod certs;
#[allow(unused_imports)]
pub use certs::Certs;

pub const MASTER_KEY: &str = "sk-test-master-key-0123456789";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tollgate")
}

/// A child process whose stderr is captured and which is killed on drop.
pub struct Proc {
    pub child: Child,
    pub url: String,
    pub stderr: Arc<Mutex<String>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn logs(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Spawn `tollgate <args>` and wait for its `… listening on http://…` line.
pub fn spawn(args: &[&str], envs: &[(&str, &str)], dir: &std::path::Path) -> Result<Proc, String> {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("LITELLM_MASTER_KEY")
        .env_remove("DATABASE_URL")
        .env_remove("LITELLM_SALT_KEY")
        .env_remove("CONFIG_FILE_PATH")
        .env_remove("HOST")
        .env_remove("PORT")
        .env_remove("RUST_LOG");
    // Provider TLS and proxies come from the environment: tests set them explicitly.
    for var in [
        "SSL_VERIFY",
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "SSL_KEYFILE_PATH",
        "SSL_CERTFILE_PATH",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "NO_PROXY",
        "no_proxy",
        // So do a config bucket and Redis for shared limits.
        "LITELLM_CONFIG_BUCKET_NAME",
        "LITELLM_CONFIG_BUCKET_TYPE",
        "LITELLM_CONFIG_BUCKET_OBJECT_KEY",
        // Provider credentials too (the pass-through routes fall back to them): a test never
        // reaches a real provider with the credentials of the machine it runs on.
        "OPENAI_API_KEY",
        "OPENAI_API_BASE",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_API_BASE",
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "COHERE_API_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_BEARER_TOKEN_BEDROCK",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "VERTEXAI_CREDENTIALS",
        // Redis for shared limits comes from the environment too: tests set it explicitly.
        "REDIS_URL",
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_PASSWORD",
        "REDIS_USERNAME",
    ] {
        cmd.env_remove(var);
    }
    if let Ok(filter) = std::env::var("TOLLGATE_TEST_LOG") {
        cmd.env("RUST_LOG", filter);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let captured = Arc::new(Mutex::new(String::new()));
    let sink = captured.clone();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stderr);
        let mut buf = String::new();
        while reader.read_line(&mut buf).unwrap_or(0) > 0 {
            if let Ok(mut s) = sink.lock() {
                s.push_str(&buf);
            }
            buf.clear();
        }
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(pos) = line.find("listening on ") {
                let _ = tx.send(line[pos + "listening on ".len()..].trim().to_string());
            }
            line.clear();
        }
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(url) => Ok(Proc {
            child,
            url,
            stderr: captured,
        }),
        Err(_) => {
            let _ = child.kill();
            let status = child.wait().ok();
            std::thread::sleep(Duration::from_millis(100));
            let logs = captured.lock().map(|s| s.clone()).unwrap_or_default();
            Err(format!(
                "process did not start (exit {status:?}); stderr:\n{logs}"
            ))
        }
    }
}

/// Run `tollgate <args>` to completion; returns (exit code, stdout, stderr).
pub fn run_to_end(
    args: &[&str],
    envs: &[(&str, &str)],
    dir: &std::path::Path,
) -> (i32, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("LITELLM_MASTER_KEY")
        .env_remove("DATABASE_URL")
        .env_remove("LITELLM_SALT_KEY")
        .env_remove("CONFIG_FILE_PATH")
        .env_remove("HOST")
        .env_remove("PORT");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut out = String::new();
            let mut err = String::new();
            if let Some(mut s) = child.stdout.take() {
                let _ = s.read_to_string(&mut out);
            }
            if let Some(mut s) = child.stderr.take() {
                let _ = s.read_to_string(&mut err);
            }
            return (status.code().unwrap_or(-1), out, err);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("tollgate {args:?} did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running mock provider.
pub struct Mock {
    pub proc: Proc,
    pub dir: tempfile::TempDir,
}

impl Mock {
    pub fn start(extra: &[&str]) -> Mock {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args = vec!["mock-provider", "--port", "0", "--workers", "1"];
        args.extend_from_slice(extra);
        let proc = spawn(&args, &[], dir.path()).expect("mock provider starts");
        Mock { proc, dir }
    }

    /// Base URL as a deployment's `api_base` (with `/v1`).
    pub fn api_base(&self) -> String {
        format!("{}/v1", self.proc.url)
    }

    pub async fn stats(&self) -> Value {
        get(&format!("{}/mock/stats", self.proc.url), None).await.2
    }

    pub async fn last_request(&self) -> Value {
        get(&format!("{}/mock/last_request", self.proc.url), None)
            .await
            .2
    }
}

/// A running gateway with its config file.
pub struct Gateway {
    pub proc: Proc,
    pub dir: tempfile::TempDir,
}

impl Gateway {
    /// Start on 127.0.0.1 with `config` (YAML text) and extra CLI args.
    pub fn start(config: &str, extra: &[&str], envs: &[(&str, &str)]) -> Gateway {
        Self::try_start(config, extra, envs).expect("gateway starts")
    }

    pub fn try_start(
        config: &str,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> Result<Gateway, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, config).expect("write config");
        let path = path.to_string_lossy().to_string();
        let mut args = vec![
            "--config",
            path.as_str(),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--num_workers",
            "2",
        ];
        args.extend_from_slice(extra);
        let proc = spawn(&args, envs, dir.path())?;
        Ok(Gateway { proc, dir })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.proc.url, path)
    }
}

/// A config with one model group `mock-gpt` on the mock, and the test master key.
pub fn basic_config(mock: &Mock) -> String {
    format!(
        r#"
model_list:
  - model_name: mock-gpt
    litellm_params:
      model: openai/mock-gpt
      api_base: {base}
      api_key: sk-mock-upstream-secret-42
  - model_name: mock-embed
    litellm_params:
      model: openai/mock-embedding
      api_base: {base}
      api_key: sk-mock-upstream-secret-42
    model_info:
      mode: embedding
general_settings:
  master_key: {MASTER_KEY}
"#,
        base = mock.api_base()
    )
}

pub fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
}

pub type Headers = awc::http::header::HeaderMap;

/// POST JSON (or raw bytes) and return (status, headers, JSON body or the text as a JSON string).
pub async fn post_raw(
    url: &str,
    key: Option<&str>,
    body: impl Into<bytes::Bytes>,
    headers: &[(&str, &str)],
) -> (u16, Headers, Value) {
    let mut req = client()
        .post(url)
        .insert_header(("content-type", "application/json"));
    if let Some(k) = key {
        req = req.insert_header(("authorization", format!("Bearer {k}")));
    }
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let mut resp = req.send_body(body.into()).await.expect("request sent");
    let status = resp.status().as_u16();
    let bytes = resp.body().limit(64 * 1024 * 1024).await.expect("body");
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, resp.headers().clone(), value)
}

pub async fn post(url: &str, key: Option<&str>, body: &Value) -> (u16, Headers, Value) {
    post_raw(url, key, body.to_string(), &[]).await
}

pub async fn get(url: &str, key: Option<&str>) -> (u16, Headers, Value) {
    let mut req = client().get(url);
    if let Some(k) = key {
        req = req.insert_header(("authorization", format!("Bearer {k}")));
    }
    let mut resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let bytes = resp.body().limit(64 * 1024 * 1024).await.expect("body");
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, resp.headers().clone(), value)
}

/// GET a text body (no key).
pub async fn get_text(url: &str) -> (u16, Headers, String) {
    let mut resp = client().get(url).send().await.expect("request sent");
    let status = resp.status().as_u16();
    let bytes = resp.body().limit(64 * 1024 * 1024).await.expect("body");
    (
        status,
        resp.headers().clone(),
        String::from_utf8_lossy(&bytes).into(),
    )
}

/// POST a streaming request and collect the raw SSE text (transport errors end the collection).
pub async fn stream_text(url: &str, key: Option<&str>, body: &Value) -> (u16, Headers, String) {
    use futures_util::StreamExt;
    let mut req = client()
        .post(url)
        .insert_header(("content-type", "application/json"));
    if let Some(k) = key {
        req = req.insert_header(("authorization", format!("Bearer {k}")));
    }
    let mut resp = req.send_body(body.to_string()).await.expect("request sent");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut text = String::new();
    while let Some(chunk) = resp.next().await {
        match chunk {
            Ok(c) => text.push_str(&String::from_utf8_lossy(&c)),
            Err(e) => {
                text.push_str(&format!("\n<transport error: {e}>"));
                break;
            }
        }
    }
    (status, headers, text)
}

/// A `multipart/form-data` body: text fields, then files `(field, filename, type, bytes)`.
pub fn form(fields: &[(&str, &str)], files: &[(&str, &str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "test-boundary-7MA4YWxkTrZu0gW";
    let mut out = Vec::new();
    for (name, value) in fields {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    for (name, filename, content_type, data) in files {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), out)
}

pub fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}]})
}

/// The `data:` payloads of an SSE text.
pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|e| e.trim().strip_prefix("data:").map(|d| d.trim().to_string()))
        .collect()
}

/// A relayed chat stream's `chat.completion.chunk`s, and whether it ended with `[DONE]`.
pub fn parse_chunks(text: &str) -> (Vec<Value>, bool) {
    let data = sse_data(text);
    let done = data.last().map(String::as_str) == Some("[DONE]");
    let chunks = data
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("json chunk"))
        .collect();
    (chunks, done)
}

/// Check a chat stream asked with `stream_options.include_usage`: `[DONE]` at the end, the
/// assistant role first, `stop` on the last choice chunk, then a usage chunk with tokens both ways.
/// Returns the streamed text.
pub fn chat_stream_text(text: &str) -> String {
    let (chunks, done) = parse_chunks(text);
    assert!(done, "{text}");
    assert_eq!(
        chunks[0]["choices"][0]["delta"]["role"], "assistant",
        "{text}"
    );
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "stop",
        "{text}"
    );
    let usage = &chunks[chunks.len() - 1]["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap_or(0) > 0, "{text}");
    assert!(
        usage["completion_tokens"].as_u64().unwrap_or(0) > 0,
        "{text}"
    );
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

/// Assert the OpenAI error envelope: message, type and string code present.
pub fn assert_envelope(body: &Value) {
    let err = &body["error"];
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message: {body}"
    );
    let ty = err["type"].as_str().unwrap_or("");
    assert!(!ty.is_empty() && ty != "None", "type: {body}");
    assert!(err["code"].is_string(), "code must be a string: {body}");
    assert!(err.get("param").is_some(), "param present: {body}");
}

/// A fresh Postgres database for one test, created through `TOLLGATE_TEST_PG_ADMIN_URL`
/// (scripts/test.sh sets it; default: the local server) and dropped when the handle drops.
pub struct FreshPostgres {
    pub url: String,
    admin: String,
    name: String,
}

impl FreshPostgres {
    pub fn create() -> FreshPostgres {
        let admin = std::env::var("TOLLGATE_TEST_PG_ADMIN_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("tollgate_t_{}", uuid_like());
        psql(&admin, &format!("CREATE DATABASE \"{name}\""));
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .unwrap_or(admin.clone());
        FreshPostgres {
            url: format!("{base}/{name}"),
            admin,
            name,
        }
    }
}

impl Drop for FreshPostgres {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                self.admin.as_str(),
                "-qAtX",
                "-c",
                &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
            ])
            .output();
    }
}

fn psql(url: &str, sql: &str) {
    let out = std::process::Command::new("psql")
        .args([url, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql runs (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// 24 random hex characters.
pub fn uuid_like() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    for _ in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        );
        out.push_str(&format!("{:012x}", h.finish() & 0xFFFF_FFFF_FFFF));
    }
    out
}

/// Any method with a JSON body; returns (status, JSON body or the text as a JSON string).
pub async fn send(method: &str, url: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
    let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client()
        .request(method, url)
        .insert_header(("content-type", "application/json"));
    if let Some(k) = key {
        req = req.insert_header(("authorization", format!("Bearer {k}")));
    }
    let mut resp = req.send_body(body.to_string()).await.expect("request sent");
    let status = resp.status().as_u16();
    // An event stream (`GET /logs/stream`) never ends: its status is the answer.
    let content_type = resp.headers().get("content-type");
    if content_type.is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream")) {
        return (status, Value::Null);
    }
    let bytes = resp.body().await.expect("body");
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

/// Poll `check` every 100 ms until it holds; fail the test after `within`.
pub async fn wait_for<F: std::future::Future<Output = bool>>(
    within: std::time::Duration,
    mut check: impl FnMut() -> F,
) {
    let deadline = std::time::Instant::now() + within;
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "condition never met");
        actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Limits count per wall-clock minute: a test that counts one window exactly first waits out a
/// minute that ends within `margin`, so its requests all fall in one window.
pub async fn clear_of_a_minute_turn(margin: Duration) {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        % 60_000;
    let left = 60_000 - ms;
    if left < margin.as_millis() as u64 {
        actix_rt::time::sleep(Duration::from_millis(left + 100)).await;
    }
}

/// A redis-server of a test's own, on a free port, that the test can stop and start again there.
pub struct PrivateRedis {
    child: Option<std::process::Child>,
    pub port: u16,
}

impl PrivateRedis {
    pub fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = PrivateRedis { child: None, port };
        redis.resume();
        redis
    }

    pub fn resume(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (scripts/test.sh installs it)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "private redis did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Keys of the shared rate-limit windows.
    pub fn limit_keys(&self) -> String {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--scan", "--pattern"])
            .arg("tollgate:limit:*")
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every byte of the gateway's SQLite database in `dir` (main file, WAL and shared memory).
pub fn database_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("tollgate.db")
        {
            out.extend(std::fs::read(entry.path()).unwrap());
        }
    }
    assert!(!out.is_empty(), "no database file in {}", dir.display());
    out
}

/// Whether `needle` occurs in the bytes.
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The rows `/spend/logs?{query}` shows (read with the master key), once there are `n`.
pub async fn spend_logs_when(gw: &Gateway, query: &str, n: usize) -> Vec<Value> {
    let url = gw.url(&format!("/spend/logs?{query}"));
    wait_for(Duration::from_secs(10), || {
        let u = url.clone();
        async move {
            get(&u, Some(MASTER_KEY))
                .await
                .2
                .as_array()
                .is_some_and(|a| a.len() == n)
        }
    })
    .await;
    get(&url, Some(MASTER_KEY))
        .await
        .2
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A timestamp the management API shows (RFC 3339, or LiteLLM's naive UTC form) in milliseconds.
pub fn millis(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"));
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return t.timestamp_millis();
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .and_utc()
        .timestamp_millis()
}
