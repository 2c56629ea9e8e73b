//! The `tollgate` command line: LiteLLM's proxy flags (same spelling, underscores included), plus
//! subcommands of Tollgate's own.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use futures_util::StreamExt as _;
use serde_json::{json, Value};

use tollgate_mock::MockProviderArgs;

#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version,
    about = "An LLM gateway: one OpenAI-compatible endpoint in front of many providers (LiteLLM proxy compatible)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// LiteLLM config file (config.yaml). Also read from CONFIG_FILE_PATH.
    #[arg(long, short = 'c', env = "CONFIG_FILE_PATH", global = true)]
    pub config: Option<PathBuf>,

    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: String,

    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 4000)]
    pub port: u16,

    /// Serve HTTPS: the PEM private key (with --ssl_certfile_path).
    #[arg(
        long = "ssl_keyfile_path",
        alias = "ssl-keyfile-path",
        env = "SSL_KEYFILE_PATH"
    )]
    pub ssl_keyfile_path: Option<PathBuf>,

    /// Serve HTTPS: the PEM certificate chain (with --ssl_keyfile_path).
    #[arg(
        long = "ssl_certfile_path",
        alias = "ssl-certfile-path",
        env = "SSL_CERTFILE_PATH"
    )]
    pub ssl_certfile_path: Option<PathBuf>,

    /// HTTP worker threads (default: one per CPU).
    #[arg(long = "num_workers", alias = "num-workers", env = "NUM_WORKERS")]
    pub num_workers: Option<usize>,

    /// Quick start without a config: every requested model goes to this model.
    #[arg(long, short = 'm')]
    pub model: Option<String>,

    /// Base URL for --model (or for every deployment that does not set one).
    #[arg(long = "api_base", alias = "api-base")]
    pub api_base: Option<String>,

    /// API version for --model (Azure).
    #[arg(long = "api_version", alias = "api-version")]
    pub api_version: Option<String>,

    /// Model name clients use for --model.
    #[arg(long)]
    pub alias: Option<String>,

    /// Default temperature for requests that do not set one.
    #[arg(long)]
    pub temperature: Option<f64>,

    /// Default max_tokens for requests that do not set one.
    #[arg(long = "max_tokens", alias = "max-tokens")]
    pub max_tokens: Option<u64>,

    /// Drop parameters a provider does not support instead of failing.
    #[arg(long = "drop_params", alias = "drop-params")]
    pub drop_params: bool,

    /// Upstream request timeout in seconds.
    #[arg(long = "request_timeout", alias = "request-timeout")]
    pub request_timeout: Option<f64>,

    /// Log requests and upstream calls (secrets masked).
    #[arg(long)]
    pub debug: bool,

    /// Also log request bodies and the loaded config (secrets masked).
    #[arg(long = "detailed_debug", alias = "detailed-debug")]
    pub detailed_debug: bool,

    /// Make one chat call to a running gateway (at --host/--port) and print the reply.
    #[arg(long)]
    pub test: bool,

    /// Call /health of a running gateway (at --host/--port) and print the result.
    #[arg(long)]
    pub health: bool,

    /// Load and check the config (and its environment references), print what it warns, and
    /// exit: 0 when it loads, 1 when it does not.
    #[arg(long = "validate_config", alias = "validate-config")]
    pub validate_config: bool,

    /// Apply the database migrations and exit without serving (as `tollgate migrate`).
    #[arg(long = "skip_server_startup", alias = "skip-server-startup")]
    pub skip_server_startup: bool,

    /// LiteLLM's flags this gateway has no use for: accepted, each with a warning saying why.
    #[command(flatten)]
    pub litellm_only: LiteLlmOnlyFlags,
}

/// LiteLLM proxy flags that are accepted so LiteLLM's command lines start Tollgate unchanged, and
/// warned about at start with the reason they do nothing here.
#[derive(Debug, Default, clap::Args)]
pub struct LiteLlmOnlyFlags {
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub telemetry: Option<String>,
    #[arg(long = "add_function_to_prompt", hide = true)]
    pub add_function_to_prompt: bool,
    #[arg(long = "max_budget", hide = true)]
    pub max_budget: Option<f64>,
    #[arg(long = "use_queue", hide = true)]
    pub use_queue: bool,
    #[arg(long = "run_gunicorn", hide = true)]
    pub run_gunicorn: bool,
    #[arg(long = "run_hypercorn", hide = true)]
    pub run_hypercorn: bool,
    #[arg(long = "run_granian", hide = true)]
    pub run_granian: bool,
    #[arg(long = "num_requests", hide = true)]
    pub num_requests: Option<u64>,
    #[arg(long = "log_config", hide = true)]
    pub log_config: Option<String>,
    #[arg(long, hide = true)]
    pub ciphers: Option<String>,
    #[arg(long = "use_prisma_db_push", hide = true)]
    pub use_prisma_db_push: bool,
    #[arg(long = "keepalive_timeout", hide = true)]
    pub keepalive_timeout: Option<u64>,
    #[arg(long = "max_requests_before_restart", hide = true)]
    pub max_requests_before_restart: Option<u64>,
    #[arg(long = "limit_concurrency", hide = true)]
    pub limit_concurrency: Option<u64>,
    #[arg(long = "iam_token_db_auth", hide = true)]
    pub iam_token_db_auth: bool,
    #[arg(long, hide = true)]
    pub local: bool,
    #[arg(long, hide = true)]
    pub reload: bool,
    #[arg(long = "prometheus_metrics_port", hide = true)]
    pub prometheus_metrics_port: Option<u16>,
    /// LiteLLM's `-v` (print the version): `-V` / `--version` here.
    #[arg(short = 'v', id = "litellm_v", hide = true, action = clap::ArgAction::Version)]
    pub print_version: Option<bool>,
}

impl LiteLlmOnlyFlags {
    /// One warning per LiteLLM-only flag given, with why it does nothing here.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut warn = |given: bool, flag: &str, why: &str| {
            if given {
                out.push(format!(
                    "--{flag} is a LiteLLM flag Tollgate does not need ({why}); ignored"
                ));
            }
        };
        warn(
            self.telemetry.is_some(),
            "telemetry",
            "Tollgate sends no telemetry",
        );
        warn(
            self.add_function_to_prompt,
            "add_function_to_prompt",
            "tools are sent to providers that take them; drop_params drops them for the others",
        );
        warn(
            self.max_budget.is_some(),
            "max_budget",
            "set budgets on keys, users, teams and organizations",
        );
        warn(
            self.use_queue,
            "use_queue",
            "requests are served directly; limits queue nothing",
        );
        for (given, flag) in [
            (self.run_gunicorn, "run_gunicorn"),
            (self.run_hypercorn, "run_hypercorn"),
            (self.run_granian, "run_granian"),
        ] {
            warn(
                given,
                flag,
                "Tollgate is its own HTTP server; --num_workers sets its worker threads",
            );
        }
        warn(
            self.num_requests.is_some(),
            "num_requests",
            "--test makes one call",
        );
        warn(
            self.log_config.is_some(),
            "log_config",
            "logs are set with --debug, --detailed_debug, JSON_LOGS and RUST_LOG",
        );
        warn(
            self.ciphers.is_some(),
            "ciphers",
            "TLS uses rustls' safe default cipher suites",
        );
        warn(
            self.use_prisma_db_push,
            "use_prisma_db_push",
            "Tollgate applies its own migrations at start and with `tollgate migrate`",
        );
        warn(
            self.iam_token_db_auth,
            "iam_token_db_auth",
            "put the database credentials in database_url",
        );
        for (given, flag) in [
            (self.keepalive_timeout.is_some(), "keepalive_timeout"),
            (
                self.max_requests_before_restart.is_some(),
                "max_requests_before_restart",
            ),
            (self.limit_concurrency.is_some(), "limit_concurrency"),
        ] {
            warn(
                given,
                flag,
                "worker tuning of LiteLLM's Python servers; use max_parallel_requests for concurrency limits",
            );
        }
        warn(self.local, "local", "a LiteLLM development flag");
        warn(
            self.reload,
            "reload",
            "a LiteLLM development flag; restart to reload",
        );
        warn(
            self.prometheus_metrics_port.is_some(),
            "prometheus_metrics_port",
            "/metrics is served on the gateway's port",
        );
        out
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the built-in mock LLM provider (OpenAI wire format) for tests, benchmarks and chaos drills.
    MockProvider(MockProviderArgs),
    /// Apply pending database migrations (the database of --config, `DATABASE_URL`, or ./tollgate.db) and exit.
    Migrate,
    /// Tail a running gateway's finished requests (`GET /logs/stream`), one line each:
    /// `time status_code model_group latency_ms cost key_alias call_id error`.
    Logs(LogsArgs),
    /// Carry a LiteLLM proxy's database (keys, users, teams, organizations, end users, budgets,
    /// stored models, optionally spend logs) over to this gateway's database (of --config).
    /// Idempotent; prints a table of counts and every row it could not carry over.
    #[command(name = "import-litellm")]
    ImportLitellm(ImportLitellmArgs),
    /// Print every config key this version knows, per section: whether it acts (and what it
    /// does) or is accepted as a no-op (and why). Keys not listed are unknown and warned about.
    #[command(name = "config-keys")]
    ConfigKeys(ConfigKeysArgs),
}

/// `tollgate config-keys`.
#[derive(Debug, clap::Args)]
pub struct ConfigKeysArgs {
    /// Print the Markdown tables `docs/CONFIG.md` embeds.
    #[arg(long)]
    pub markdown: bool,
    /// Rewrite the generated section of this Markdown file (`docs/CONFIG.md`) in place.
    #[arg(long = "write-docs", value_name = "FILE")]
    pub write_docs: Option<std::path::PathBuf>,
}

/// `tollgate import-litellm`.
#[derive(Debug, clap::Args)]
pub struct ImportLitellmArgs {
    /// The LiteLLM proxy's database (`postgres://user:pass@host:5432/litellm`).
    #[arg(long, env = "LITELLM_DATABASE_URL", hide_env_values = true)]
    pub from: String,
    /// Read both databases and print what would be done; write nothing.
    #[arg(long = "dry-run", alias = "dry_run")]
    pub dry_run: bool,
    /// Also carry over LiteLLM's spend logs (`LiteLLM_SpendLogs`).
    #[arg(long = "spend-logs", alias = "spend_logs")]
    pub spend_logs: bool,
}

/// `tollgate logs`: without `--follow`, prints what arrives within `--seconds` and exits 0;
/// with it, streams until interrupted (or the gateway goes away).
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The gateway's base URL.
    #[arg(long, env = "TOLLGATE_URL", default_value = "http://127.0.0.1:4000")]
    pub url: String,
    /// A proxy admin's key (the master key or a `proxy_admin` user's key).
    #[arg(long, env = "LITELLM_MASTER_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Keep streaming until interrupted.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Without --follow: how long to listen before exiting.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// `debug` also prints the gateway's own log lines.
    #[arg(long, default_value = "info", value_parser = ["info", "debug"])]
    pub level: String,
}

impl Cli {
    pub fn request_timeout(&self) -> Option<Duration> {
        self.request_timeout
            .filter(|s| *s > 0.0)
            .map(crate::config::config_seconds)
    }

    /// Where a client command (`--test`, `--health`) finds the running gateway.
    fn gateway_url(&self) -> String {
        let host = match self.host.as_str() {
            "0.0.0.0" | "" => "127.0.0.1",
            "::" | "[::]" => "[::1]",
            h => h,
        };
        format!("http://{host}:{}", self.port)
    }

    /// The key a client command presents: LITELLM_MASTER_KEY, else the config's master key.
    fn client_key(&self) -> Option<String> {
        std::env::var("LITELLM_MASTER_KEY").ok().or_else(|| {
            self.config
                .as_ref()
                .and_then(|p| crate::config::ProxyConfig::load(p).ok())
                .and_then(|c| c.master_key())
                .map(|k| k.expose().to_string())
        })
    }
}

/// `--test` and `--health`: talk to a running gateway. Returns the process exit code.
pub fn run_client_command(cli: &Cli) -> i32 {
    let base = cli.gateway_url();
    let key = cli.client_key();
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(120))
            .finish();
        let auth = |r: awc::ClientRequest| match &key {
            Some(k) => r.insert_header(("authorization", format!("Bearer {k}"))),
            None => r,
        };
        if cli.health {
            let resp = auth(client.get(format!("{base}/health"))).send().await;
            return match resp {
                Ok(mut r) => {
                    let body: Value = r.json().limit(16 * 1024 * 1024).await.unwrap_or(Value::Null);
                    println!("{}", serde_json::to_string_pretty(&body).unwrap_or_default());
                    let ok = r.status().is_success()
                        && body.get("unhealthy_count").and_then(Value::as_u64) == Some(0);
                    i32::from(!ok)
                }
                Err(e) => {
                    eprintln!("error: cannot reach the gateway at {base}: {e}");
                    2
                }
            };
        }
        // --test: one chat call, to --model or the first model the gateway lists.
        let model = match &cli.model {
            Some(m) => m.clone(),
            None => {
                let listed = match auth(client.get(format!("{base}/v1/models"))).send().await {
                    Ok(r) if r.status().as_u16() == 401 => {
                        eprintln!(
                            "error: the gateway at {base} refused the key (401): set LITELLM_MASTER_KEY or pass --config with its master_key"
                        );
                        return 2;
                    }
                    Ok(mut r) => r.json::<Value>().await.ok(),
                    Err(e) => {
                        eprintln!("error: cannot reach the gateway at {base}: {e}");
                        return 2;
                    }
                };
                match listed
                    .as_ref()
                    .and_then(|v| v["data"].get(0))
                    .and_then(|m| m["id"].as_str())
                {
                    Some(m) => m.to_string(),
                    None => {
                        eprintln!("error: the gateway at {base} lists no models; pass --model");
                        return 2;
                    }
                }
            }
        };
        println!("tollgate --test: POST {base}/chat/completions with model={model}");
        let body = json!({"model": model, "messages": [{"role": "user", "content": "this is a test request, write a short poem"}]});
        match auth(client.post(format!("{base}/chat/completions"))).send_json(&body).await {
            Ok(mut r) => {
                let status = r.status();
                let reply: Value = r.json().limit(16 * 1024 * 1024).await.unwrap_or(Value::Null);
                if status.is_success() {
                    let text = reply["choices"][0]["message"]["content"].as_str().unwrap_or("");
                    println!("{text}");
                    0
                } else {
                    eprintln!("error: the gateway answered {status}: {reply}");
                    1
                }
            }
            Err(e) => {
                eprintln!("error: cannot reach the gateway at {base}: {e}");
                2
            }
        }
    })
}

/// `tollgate logs`: read `/logs/stream` and print one line per event. Returns the exit code: 0
/// when the listening time is over (or, with `--follow`, the gateway closed the stream), 1 when
/// the gateway refused the key, 2 when it cannot be reached.
pub fn run_logs_command(args: &LogsArgs) -> i32 {
    let base = args.url.trim_end_matches('/').to_string();
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        // The stream is long-lived: only connecting is bounded.
        let client = awc::Client::builder()
            .disable_timeout()
            .connector(awc::Connector::new().timeout(Duration::from_secs(10)))
            .finish();
        let mut req = client.get(format!("{base}/logs/stream?level={}", args.level));
        if let Some(key) = &args.key {
            req = req.insert_header(("authorization", format!("Bearer {key}")));
        }
        let deadline =
            (!args.follow).then(|| tokio::time::Instant::now() + Duration::from_secs(args.seconds));
        let connect = req.send();
        let response = match deadline {
            Some(at) => match tokio::time::timeout_at(at, connect).await {
                Ok(r) => r,
                Err(_) => return 0,
            },
            None => connect.await,
        };
        let mut response = match response {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: cannot reach the gateway at {base}: {e}");
                return 2;
            }
        };
        if !response.status().is_success() {
            let status = response.status();
            let body = response.body().await.unwrap_or_default();
            eprintln!(
                "error: the gateway at {base} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
            return 1;
        }
        let mut parser = SseLines::default();
        loop {
            let chunk = match deadline {
                Some(at) => match tokio::time::timeout_at(at, response.next()).await {
                    Ok(c) => c,
                    Err(_) => return 0,
                },
                None => response.next().await,
            };
            match chunk {
                Some(Ok(bytes)) => {
                    for (event, data) in parser.push(&bytes) {
                        print_event(&event, &data);
                    }
                }
                Some(Err(e)) => {
                    eprintln!("error: the stream from {base} broke: {e}");
                    return 2;
                }
                None => return 0,
            }
        }
    })
}

/// Splits an SSE byte stream into `(event name, data)` pairs; comments are skipped.
#[derive(Default)]
struct SseLines {
    buffer: String,
}

impl SseLines {
    fn push(&mut self, bytes: &[u8]) -> Vec<(String, String)> {
        self.buffer.push_str(&String::from_utf8_lossy(bytes));
        let mut out = Vec::new();
        while let Some(end) = self.buffer.find("\n\n") {
            let frame: String = self.buffer.drain(..end + 2).collect();
            let mut event = String::from("message");
            let mut data = Vec::new();
            for line in frame.lines() {
                if let Some(name) = line.strip_prefix("event:") {
                    event = name.trim().to_string();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push(d.trim_start().to_string());
                }
            }
            if !data.is_empty() {
                out.push((event, data.join("\n")));
            }
        }
        out
    }
}

fn print_event(event: &str, data: &str) {
    let Ok(v) = serde_json::from_str::<Value>(data) else {
        return;
    };
    match event {
        "log" => println!(
            "{} {} {}: {}",
            text(&v["time"]),
            text(&v["level"]).to_ascii_uppercase(),
            text(&v["target"]),
            text(&v["message"])
        ),
        "lagged" => eprintln!(
            "warning: {} events skipped (this reader fell behind)",
            text(&v["skipped"])
        ),
        _ => println!("{}", request_line(&v)),
    }
}

/// `time status_code model_group latency_ms cost key_alias call_id error`, `-` for what is absent.
fn request_line(v: &Value) -> String {
    let cost = v["cost"]
        .as_f64()
        .map_or("-".to_string(), |c| format!("{c:.6}"));
    let mut line = format!(
        "{} {} {} {}ms {} {} {}",
        text(&v["time"]),
        text(&v["status_code"]),
        text(&v["model_group"]),
        text(&v["latency_ms"]),
        cost,
        text(&v["key_alias"]),
        text(&v["call_id"]),
    );
    if let Some(error) = v["error"].as_str() {
        line.push(' ');
        line.push_str(error);
    }
    line
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_frames_split_across_chunks() {
        let mut p = SseLines::default();
        assert!(p.push(b": connected\n\ndata: {\"a\"").is_empty());
        let got = p.push(b":1}\n\nevent: log\ndata: {}\n\n: keep-alive\n\n");
        assert_eq!(
            got,
            vec![
                ("message".to_string(), "{\"a\":1}".to_string()),
                ("log".to_string(), "{}".to_string())
            ]
        );
    }

    #[test]
    fn a_request_prints_as_one_line() {
        let v = json!({"time": "2026-01-01T00:00:00.000Z", "status_code": 502, "model_group": "gpt",
            "latency_ms": 12, "cost": 0.0, "key_alias": null, "call_id": "c-1", "error": "upstream down"});
        assert_eq!(
            request_line(&v),
            "2026-01-01T00:00:00.000Z 502 gpt 12ms 0.000000 - c-1 upstream down"
        );
    }
}
