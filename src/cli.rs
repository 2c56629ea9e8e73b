//! The `tollgate` command line: LiteLLM's proxy flags (same spelling, underscores included), plus
//! subcommands of Tollgate's own.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
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
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the built-in mock LLM provider (OpenAI wire format) for tests, benchmarks and chaos drills.
    MockProvider(MockProviderArgs),
    /// Apply pending database migrations (the database of --config, `DATABASE_URL`, or ./tollgate.db) and exit.
    Migrate,
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
