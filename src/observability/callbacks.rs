//! Logging callbacks (`litellm_settings.success_callback`, `failure_callback`, `callbacks`): each
//! finished request is sent to the receivers the configuration names, in the receiver's own wire
//! format.
//!
//! * `generic_api` (also `generic`): `POST GENERIC_LOGGER_ENDPOINT` with `GENERIC_LOGGER_HEADERS`
//!   (`name=value,name=value`), a JSON list of LiteLLM's standard logging payloads per batch.
//! * `langfuse`: `POST {LANGFUSE_HOST}/api/public/ingestion` with HTTP basic auth
//!   (`LANGFUSE_PUBLIC_KEY`:`LANGFUSE_SECRET_KEY`), a batch of `trace-create` + `generation-create`
//!   events per request (Langfuse's public ingestion API); `LANGFUSE_HOST` defaults to
//!   `https://cloud.langfuse.com`.
//! * `datadog`: Datadog's logs intake v2, `POST https://http-intake.logs.{DD_SITE}/api/v2/logs`
//!   (or `{DD_BASE_URL}/api/v2/logs`) with `DD-API-KEY`: a JSON array of log items whose `message`
//!   is the JSON text of the standard logging payload (as LiteLLM sends them).
//! * `langsmith`: `POST {LANGSMITH_BASE_URL}/runs/batch` with `x-api-key`, `{"post": [run…]}`: one
//!   root `llm` run per request (LangSmith's run-ingestion API).
//! * `sentry` (failures only): one envelope per failed request to the `SENTRY_DSN` project's
//!   envelope endpoint, with `X-Sentry-Auth`.
//! * `s3`: one object per request, `{s3_path}/{YYYY-MM-DD}/time-{HH-MM-SS-micros}_{call id}.json`
//!   holding the standard logging payload, written with a SigV4-signed `PutObject`
//!   (`litellm_settings.s3_callback_params`).
//!
//! Each callback is an actor ([`Shipper`], supervised by the router) with a bounded queue: the
//! request path only enqueues (a full queue drops the event and counts it). The actor sends a batch
//! at a time (up to [`BATCH`] events, at least every [`FLUSH_EVERY`], and the next full batch as
//! soon as the last is delivered; one HTTP request per batch,
//! or per event for Sentry and S3), retries a failed request with backoff ([`RETRIES`] times),
//! then drops its events and counts them as failed (`litellm_callback_logging_failures_metric`).
//! A slow, failing or dead receiver never slows or fails a request. A callback whose environment
//! is missing stops the gateway at start, naming the variable. Payloads never carry a key (only
//! its hash) or an upstream credential; prompts and completions follow [`MessageLogging`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sonic_rs::LazyValue;

use super::json_object::JsonObject;

use super::{Observer, RequestEvent};
use crate::config::ProxyConfig;

/// Events a callback holds before dropping new ones.
pub const QUEUE_MAX: usize = 10_000;
/// Events per request to the receiver.
pub const BATCH: usize = 100;
/// How often the queue is sent when it is not full.
pub const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// Retries of a failed batch before it is dropped.
pub const RETRIES: u32 = 3;
/// How long one send may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a callback sends, and how.
#[derive(Debug, Clone, PartialEq)]
pub enum Destination {
    GenericApi {
        url: String,
        headers: Vec<(String, String)>,
    },
    Langfuse {
        host: String,
        public_key: String,
        secret_key: String,
    },
    Datadog {
        /// The logs intake (`…/api/v2/logs`).
        url: String,
        api_key: String,
        /// `ddsource`, `service`, `hostname` of every item.
        source: String,
        service: String,
        hostname: String,
        /// `env:…`, `service:…`, `version:…`, `HOSTNAME:…`, `POD_NAME:…` (LiteLLM's base tags).
        tags: Vec<String>,
    },
    Langsmith {
        base_url: String,
        api_key: String,
        project: String,
        run_name: String,
    },
    Sentry(SentryDsn),
    S3(S3Settings),
}

/// A Sentry DSN, `{scheme}://{public_key}@{host}/{project_id}`, as the envelope endpoint it
/// names.
#[derive(Debug, Clone, PartialEq)]
pub struct SentryDsn {
    /// `{scheme}://{host}/{path…}api/{project_id}/envelope/`.
    pub envelope_url: String,
    pub public_key: String,
    /// `SENTRY_ENVIRONMENT`.
    pub environment: Option<String>,
}

impl SentryDsn {
    /// Parse `dsn`; `Err` says what is wrong with it (never echoing it: it holds the key).
    pub fn parse(dsn: &str, environment: Option<String>) -> Result<Self, String> {
        let bad = |what: &str| format!("SENTRY_DSN is not a Sentry DSN ({what})");
        let (scheme, rest) = dsn
            .trim()
            .split_once("://")
            .ok_or_else(|| bad("no scheme"))?;
        if scheme != "http" && scheme != "https" {
            return Err(bad("the scheme must be http or https"));
        }
        let (userinfo, location) = rest.split_once('@').ok_or_else(|| bad("no public key"))?;
        let public_key = userinfo.split(':').next().unwrap_or_default();
        let (host, path) = location
            .split_once('/')
            .ok_or_else(|| bad("no project id"))?;
        let path = path.trim_end_matches('/');
        let (prefix, project) = match path.rsplit_once('/') {
            Some((prefix, project)) => (format!("/{prefix}"), project),
            None => (String::new(), path),
        };
        if public_key.is_empty() || host.is_empty() || project.is_empty() {
            return Err(bad("it needs a public key, a host and a project id"));
        }
        if !project.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the project id is not a number"));
        }
        Ok(Self {
            envelope_url: format!("{scheme}://{host}{prefix}/api/{project}/envelope/"),
            public_key: public_key.to_string(),
            environment,
        })
    }
}

/// `litellm_settings.s3_callback_params`, resolved.
#[derive(Clone, PartialEq)]
pub struct S3Settings {
    pub bucket: String,
    pub region: String,
    /// `s3_endpoint_url` (MinIO, a mock…), without a trailing `/`; `None`: AWS.
    pub endpoint: Option<String>,
    /// `s3_path`: a key prefix, without its trailing `/`.
    pub path: String,
    /// Bucket in the path (`{endpoint}/{bucket}/{key}`) rather than in the host name. Default:
    /// with a custom endpoint; `s3_use_path_style` decides otherwise.
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_access_key: crate::secret::Secret,
    pub session_token: Option<crate::secret::Secret>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("path", &self.path)
            .field("path_style", &self.path_style)
            .finish_non_exhaustive()
    }
}

impl S3Settings {
    /// Read `s3_callback_params` (`os.environ/` references already resolved by the config
    /// loader); credentials and region fall back to `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, `AWS_REGION` / `AWS_DEFAULT_REGION` (else `us-east-1`).
    fn resolve(cfg: &ProxyConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let params = cfg
            .litellm_settings
            .get("s3_callback_params")
            .and_then(Value::as_object);
        let param = |k: &str| -> Option<String> {
            match params?.get(k)? {
                Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            }
        };
        let env_of = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let missing = |what: &str| {
            format!("the s3 callback needs litellm_settings.s3_callback_params.{what}")
        };
        let bucket = param("s3_bucket_name").ok_or_else(|| missing("s3_bucket_name"))?;
        let access_key_id = param("s3_aws_access_key_id")
            .or_else(|| env_of("AWS_ACCESS_KEY_ID"))
            .ok_or_else(|| {
                missing("s3_aws_access_key_id (or the environment variable AWS_ACCESS_KEY_ID)")
            })?;
        let secret_access_key = param("s3_aws_secret_access_key")
            .or_else(|| env_of("AWS_SECRET_ACCESS_KEY"))
            .ok_or_else(|| {
                missing(
                    "s3_aws_secret_access_key (or the environment variable AWS_SECRET_ACCESS_KEY)",
                )
            })?;
        let endpoint = param("s3_endpoint_url").map(|e| e.trim_end_matches('/').to_string());
        if let Some(e) = &endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(
                    "litellm_settings.s3_callback_params.s3_endpoint_url must be an http(s) URL"
                        .into(),
                );
            }
        }
        let path_style = match param("s3_use_path_style") {
            Some(v) => matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"),
            None => endpoint.is_some(),
        };
        Ok(Self {
            region: param("s3_region_name")
                .or_else(|| env_of("AWS_REGION"))
                .or_else(|| env_of("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into()),
            path: param("s3_path")
                .unwrap_or_default()
                .trim_matches('/')
                .to_string(),
            session_token: param("s3_aws_session_token")
                .or_else(|| env_of("AWS_SESSION_TOKEN"))
                .map(crate::secret::Secret::new),
            secret_access_key: crate::secret::Secret::new(secret_access_key),
            access_key_id,
            path_style,
            endpoint,
            bucket,
        })
    }

    /// The object key of one request's payload: `{s3_path}/{YYYY-MM-DD}/time-{HH-MM-SS-micros}_{call id}.json`
    /// (LiteLLM's layout; the date and time are the request's start, UTC).
    pub fn object_key(&self, start_ms: i64, call_id: &str) -> String {
        let start =
            chrono::DateTime::<chrono::Utc>::from_timestamp_millis(start_ms).unwrap_or_default();
        let file = format!(
            "time-{}_{}.json",
            start.format("%H-%M-%S-%6f"),
            call_id.replace('/', "_")
        );
        let date = start.format("%Y-%m-%d");
        if self.path.is_empty() {
            format!("{date}/{file}")
        } else {
            format!("{}/{date}/{file}", self.path)
        }
    }

    /// The URL an object is `PUT` to: `{endpoint}/{bucket}/{key}` (path style) or
    /// `https://{bucket}.s3.{region}.amazonaws.com/{key}` (virtual-hosted, AWS's default).
    pub fn object_url(&self, key: &str) -> String {
        let key = tollgate_wire::sigv4::uri_encode(key, true);
        let endpoint = self
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", self.region));
        if self.path_style {
            return format!(
                "{endpoint}/{}/{key}",
                tollgate_wire::sigv4::uri_encode(&self.bucket, false)
            );
        }
        match endpoint.split_once("://") {
            Some((scheme, host)) => format!("{scheme}://{}.{host}/{key}", self.bucket),
            None => format!("https://{}.{endpoint}/{key}", self.bucket),
        }
    }

    /// A signed `PutObject` of `body` under `key`.
    fn put(&self, key: &str, body: Bytes, amz_date: &str) -> Outgoing {
        let (url, headers) = self.signed("PUT", key, &body, Some("application/json"), amz_date);
        Outgoing {
            method: "PUT",
            url,
            headers,
            body,
            events: 1,
        }
    }

    /// The URL and SigV4-signed headers (service `s3`) of a `method` request on object `key`
    /// carrying `body` (`PutObject`; `GetObject` with an empty body).
    pub fn signed(
        &self,
        method: &'static str,
        key: &str,
        body: &[u8],
        content_type: Option<&str>,
        amz_date: &str,
    ) -> (String, Vec<(String, String)>) {
        use tollgate_wire::sigv4;
        let url = self.object_url(key);
        let (_, host, path, _) = sigv4::split_url(&url).unwrap_or(("https", "", "/", ""));
        let payload_hash = sigv4::sha256_hex(body);
        let mut headers = Vec::with_capacity(6);
        if let Some(t) = content_type {
            headers.push(("content-type".to_string(), t.to_string()));
        }
        headers.extend([
            ("host".to_string(), host.to_string()),
            ("x-amz-content-sha256".to_string(), payload_hash.clone()),
            ("x-amz-date".to_string(), amz_date.to_string()),
        ]);
        if let Some(token) = &self.session_token {
            headers.push(("x-amz-security-token".into(), token.expose().to_string()));
        }
        let signature = sigv4::sign_s3(
            &sigv4::Request {
                method,
                path,
                query: "",
                headers: &headers,
                payload_hash: &payload_hash,
            },
            self.secret_access_key.expose(),
            amz_date,
            &self.region,
        );
        // awc writes the host header itself, from the URL.
        headers.retain(|(k, _)| k != "host");
        headers.push((
            "authorization".into(),
            signature.authorization(&self.access_key_id),
        ));
        (url, headers)
    }
}

/// What callbacks get of a request's prompt and completion (`messages`, `response`; Langfuse
/// `input` / `output`; LangSmith `inputs` / `outputs`), decided once at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageLogging {
    /// No configured callback sends them: nothing is copied for them.
    #[default]
    Off,
    /// Sent as the client sent them and the provider answered (a stream: assembled).
    On,
    /// `litellm_settings.turn_off_message_logging`: replaced by [`REDACTED`] (as LiteLLM does);
    /// nothing is copied for them.
    Redacted,
}

/// What stands for a prompt or a completion with `turn_off_message_logging` (LiteLLM's text).
pub const REDACTED: &str = "redacted-by-litellm";

impl MessageLogging {
    /// The messages a payload carries in place of the request's, under redaction.
    pub fn redacted_messages() -> String {
        json!([{"role": "user", "content": REDACTED}]).to_string()
    }

    /// The response a payload carries in place of the provider's, under redaction.
    pub fn redacted_response() -> String {
        Value::String(REDACTED.into()).to_string()
    }
}

/// One configured callback.
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackSettings {
    /// As configured (`langfuse`, `generic_api`).
    pub name: String,
    pub destination: Destination,
    pub on_success: bool,
    pub on_failure: bool,
}

/// The configured callbacks this version sends to, and the names it does not implement yet.
#[derive(Debug, Default)]
pub struct Resolved {
    pub callbacks: Vec<CallbackSettings>,
    pub not_implemented: Vec<String>,
    /// What the callbacks get of prompts and completions.
    pub message_logging: MessageLogging,
}

fn names(cfg: &ProxyConfig, key: &str) -> Vec<String> {
    match cfg.litellm_settings.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Callbacks handled elsewhere (metrics, traces) or by name only.
const ELSEWHERE: &[&str] = &["prometheus", "otel", "opentelemetry"];

impl CallbackSettings {
    /// The callbacks `litellm_settings` names. `Err` names a missing environment variable.
    pub fn resolve(
        cfg: &ProxyConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Resolved, String> {
        let success = names(cfg, "success_callback");
        let failure = names(cfg, "failure_callback");
        let both = names(cfg, "callbacks");
        let mut all: Vec<String> = Vec::new();
        for n in success.iter().chain(&failure).chain(&both) {
            if !all.contains(n) {
                all.push(n.clone());
            }
        }
        let need = |var: &str, name: &str| {
            env(var)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| format!("the {name} callback needs the environment variable {var}"))
        };
        let optional = |var: &str| env(var).filter(|v| !v.trim().is_empty());
        let mut out = Resolved::default();
        for name in all {
            let destination = match name.as_str() {
                "generic_api" | "generic" => Destination::GenericApi {
                    url: need("GENERIC_LOGGER_ENDPOINT", &name)?,
                    headers: env("GENERIC_LOGGER_HEADERS")
                        .map(|h| parse_headers(&h))
                        .unwrap_or_default(),
                },
                "langfuse" => Destination::Langfuse {
                    host: env("LANGFUSE_HOST")
                        .filter(|h| !h.trim().is_empty())
                        .unwrap_or_else(|| "https://cloud.langfuse.com".into())
                        .trim_end_matches('/')
                        .to_string(),
                    public_key: need("LANGFUSE_PUBLIC_KEY", &name)?,
                    secret_key: need("LANGFUSE_SECRET_KEY", &name)?,
                },
                "datadog" => {
                    let api_key = need("DD_API_KEY", &name)?;
                    let site = optional("DD_SITE").unwrap_or_else(|| "datadoghq.com".into());
                    let url = match optional("DD_BASE_URL") {
                        Some(base) => format!("{}/api/v2/logs", base.trim_end_matches('/')),
                        None => format!("https://http-intake.logs.{site}/api/v2/logs"),
                    };
                    let service = optional("DD_SERVICE").unwrap_or_else(|| "litellm-server".into());
                    let hostname = optional("HOSTNAME").unwrap_or_default();
                    let or_unknown = |var: &str| optional(var).unwrap_or_else(|| "unknown".into());
                    Destination::Datadog {
                        url,
                        api_key,
                        source: optional("DD_SOURCE").unwrap_or_else(|| "litellm".into()),
                        tags: vec![
                            format!("env:{}", or_unknown("DD_ENV")),
                            format!("service:{service}"),
                            format!("version:{}", or_unknown("DD_VERSION")),
                            format!("HOSTNAME:{hostname}"),
                            format!("POD_NAME:{}", or_unknown("POD_NAME")),
                        ],
                        service,
                        hostname,
                    }
                }
                "langsmith" => Destination::Langsmith {
                    api_key: need("LANGSMITH_API_KEY", &name)?,
                    base_url: optional("LANGSMITH_BASE_URL")
                        .unwrap_or_else(|| "https://api.smith.langchain.com".into())
                        .trim_end_matches('/')
                        .to_string(),
                    project: optional("LANGSMITH_PROJECT")
                        .unwrap_or_else(|| "litellm-completion".into()),
                    run_name: optional("LANGSMITH_DEFAULT_RUN_NAME")
                        .unwrap_or_else(|| "LLMRun".into()),
                },
                "sentry" => Destination::Sentry(SentryDsn::parse(
                    &need("SENTRY_DSN", &name)?,
                    optional("SENTRY_ENVIRONMENT"),
                )?),
                "s3" => Destination::S3(S3Settings::resolve(cfg, env)?),
                n if ELSEWHERE.contains(&n) => continue,
                _ => {
                    out.not_implemented.push(name);
                    continue;
                }
            };
            // Sentry hears of failures only (LiteLLM's `failure_callback: ["sentry"]`).
            let sentry = matches!(destination, Destination::Sentry(_));
            out.callbacks.push(CallbackSettings {
                on_success: !sentry && (success.contains(&name) || both.contains(&name)),
                on_failure: failure.contains(&name) || both.contains(&name) || sentry,
                name,
                destination,
            });
        }
        let turned_off = cfg.turn_off_message_logging();
        out.message_logging = match out.callbacks.iter().any(|c| c.destination.sends_messages()) {
            false => MessageLogging::Off,
            true if turned_off => MessageLogging::Redacted,
            true => MessageLogging::On,
        };
        Ok(out)
    }
}

/// A request body as `--detailed_debug` logs it: credentials masked
/// ([`crate::secret::redact_json`]) and, with `turn_off_message_logging`, its prompt (`messages`,
/// `prompt`, `input`, `system`) replaced by [`REDACTED`].
pub fn loggable_body(cfg: &ProxyConfig, body: &Map<String, Value>) -> Value {
    let mut shown = crate::secret::redact_json(&Value::Object(body.clone()));
    if cfg.turn_off_message_logging() {
        if let Value::Object(fields) = &mut shown {
            for field in ["messages", "prompt", "input", "system"] {
                if let Some(v) = fields.get_mut(field) {
                    *v = Value::String(REDACTED.into());
                }
            }
        }
    }
    shown
}

/// `name=value,name=value` (LiteLLM's `GENERIC_LOGGER_HEADERS`).
fn parse_headers(raw: &str) -> Vec<(String, String)> {
    raw.split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn iso(ms: i64) -> String {
    crate::time::iso8601(ms)
}

/// A stored JSON text (a spend log's `messages`, `response`, `request_tags`), or `null` when not
/// kept. These texts are JSON by construction (the gateway serialized them, or checked them when it
/// kept a response: `SpendContext::keep_response`), so a payload embeds them as they are.
fn json_text(text: Option<&str>) -> &str {
    match text {
        Some(t) => {
            debug_assert!(
                serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok(),
                "stored text is not JSON: {t}"
            );
            t
        }
        None => "null",
    }
}

/// The part of a spend log's `metadata` text the payloads carry.
#[derive(Deserialize, Default)]
struct StoredMetadata<'a> {
    #[serde(borrow)]
    spend_logs_metadata: Option<LazyValue<'a>>,
}

/// LiteLLM's `StandardLoggingMetadata`: who made the request.
struct PayloadMetadata<'a> {
    user_api_key_hash: &'a str,
    user_api_key_alias: Option<&'a str>,
    user_api_key_user_id: Option<&'a str>,
    user_api_key_team_id: Option<&'a str>,
    user_api_key_team_alias: Option<&'a str>,
    user_api_key_org_id: Option<&'a str>,
    user_api_key_end_user_id: Option<&'a str>,
    /// Written as stored.
    spend_logs_metadata: Option<LazyValue<'a>>,
}

impl PayloadMetadata<'_> {
    fn write(&self, o: &mut JsonObject<'_>) {
        o.str("user_api_key_hash", self.user_api_key_hash)
            .opt_str("user_api_key_alias", self.user_api_key_alias)
            .opt_str("user_api_key_user_id", self.user_api_key_user_id)
            .opt_str("user_api_key_team_id", self.user_api_key_team_id)
            .opt_str("user_api_key_team_alias", self.user_api_key_team_alias)
            .opt_str("user_api_key_org_id", self.user_api_key_org_id)
            .opt_str("user_api_key_end_user_id", self.user_api_key_end_user_id)
            .raw(
                "spend_logs_metadata",
                self.spend_logs_metadata
                    .as_ref()
                    .map_or("null", |m| m.as_raw_str()),
            );
    }
}

/// LiteLLM's standard logging payload for one request (the fields the gateway has), serialized
/// straight from the event: prompts and completions are embedded as stored, nothing is rebuilt.
pub struct StandardPayload<'a> {
    id: &'a str,
    trace_id: &'a str,
    call_type: &'a str,
    response_cost: f64,
    status: &'a str,
    total_tokens: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    start_time: f64,
    end_time: f64,
    completion_start_time: Option<f64>,
    response_time: f64,
    model: &'a str,
    model_id: Option<&'a str>,
    model_group: Option<&'a str>,
    requested_model: &'a str,
    api_base: Option<&'a str>,
    custom_llm_provider: Option<&'a str>,
    cache_hit: bool,
    cache_key: Option<&'a str>,
    end_user: Option<&'a str>,
    metadata: PayloadMetadata<'a>,
    response_id: Option<&'a str>,
    error_str: Option<&'a str>,
    /// `error_information.error_code`: the HTTP status.
    error_code: u16,
    // Stored JSON texts, written as they are.
    request_tags: &'a str,
    messages: &'a str,
    response: &'a str,
}

impl<'a> StandardPayload<'a> {
    pub fn of(ev: &'a RequestEvent) -> Self {
        let log = &ev.log;
        let stored_metadata =
            sonic_rs::from_str::<StoredMetadata>(&log.metadata).unwrap_or_default();
        Self {
            id: &log.request_id,
            trace_id: &log.request_id,
            call_type: &log.call_type,
            response_cost: log.spend,
            status: &log.status,
            total_tokens: log.total_tokens,
            prompt_tokens: log.prompt_tokens,
            completion_tokens: log.completion_tokens,
            start_time: secs(log.start_time),
            end_time: secs(log.end_time),
            completion_start_time: ev
                .time_to_first_token_ms
                .map(|t| secs(log.start_time + t as i64)),
            response_time: secs(log.end_time - log.start_time),
            model: &log.model,
            model_id: log.model_id.as_deref(),
            model_group: log.model_group.as_deref(),
            requested_model: &ev.requested_model,
            api_base: log.api_base.as_deref(),
            custom_llm_provider: ev.provider.as_deref(),
            cache_hit: log.cache_hit,
            cache_key: log.cache_key.as_deref(),
            end_user: log.end_user.as_deref(),
            metadata: PayloadMetadata {
                user_api_key_hash: &log.api_key,
                user_api_key_alias: ev.key_alias.as_deref(),
                user_api_key_user_id: log.user_id.as_deref(),
                user_api_key_team_id: log.team_id.as_deref(),
                user_api_key_team_alias: ev.team_alias.as_deref(),
                user_api_key_org_id: log.organization_id.as_deref(),
                user_api_key_end_user_id: log.end_user.as_deref(),
                spend_logs_metadata: stored_metadata.spend_logs_metadata,
            },
            response_id: log.response_id.as_deref(),
            request_tags: if log.request_tags.is_empty() {
                "[]"
            } else {
                json_text(Some(&log.request_tags))
            },
            messages: json_text(log.messages.as_deref()),
            response: json_text(log.response.as_deref()),
            error_str: ev.error.as_deref(),
            error_code: ev.status_code,
        }
    }
}

impl StandardPayload<'_> {
    /// Serialize the payload into `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let mut o = JsonObject::begin(out);
        o.str("id", self.id)
            .str("trace_id", self.trace_id)
            .str("call_type", self.call_type)
            .f64("response_cost", self.response_cost)
            .str("status", self.status)
            .i64("total_tokens", self.total_tokens)
            .i64("prompt_tokens", self.prompt_tokens)
            .i64("completion_tokens", self.completion_tokens)
            .f64("startTime", self.start_time)
            .f64("endTime", self.end_time)
            .opt_f64("completionStartTime", self.completion_start_time)
            .f64("response_time", self.response_time)
            .str("model", self.model)
            .opt_str("model_id", self.model_id)
            .opt_str("model_group", self.model_group)
            .str("requested_model", self.requested_model)
            .opt_str("api_base", self.api_base)
            .opt_str("custom_llm_provider", self.custom_llm_provider)
            .bool("cache_hit", self.cache_hit)
            .opt_str("cache_key", self.cache_key)
            .opt_str("end_user", self.end_user)
            .object("metadata", |m| self.metadata.write(m))
            .opt_str("response_id", self.response_id)
            .opt_str("error_str", self.error_str);
        match self.error_str {
            Some(message) => o.object("error_information", |e| {
                e.str("error_code", itoa::Buffer::new().format(self.error_code))
                    .str("error_message", message);
            }),
            None => o.raw("error_information", "null"),
        };
        o.raw("request_tags", self.request_tags)
            .raw("messages", self.messages)
            .raw("response", self.response);
        o.end();
    }

    /// The payload's JSON text.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        self.write(&mut out);
        out
    }
}

/// The metadata of a Langfuse trace and generation.
fn write_langfuse_metadata(ev: &RequestEvent, o: &mut JsonObject<'_>) {
    let log = &ev.log;
    o.str("user_api_key_hash", &log.api_key)
        .opt_str("user_api_key_alias", ev.key_alias.as_deref())
        .opt_str("user_api_key_team_id", log.team_id.as_deref())
        .opt_str("user_api_key_team_alias", ev.team_alias.as_deref())
        .opt_str("model_group", log.model_group.as_deref())
        .opt_str("model_id", log.model_id.as_deref())
        .bool("cache_hit", log.cache_hit)
        .f64("response_cost", log.spend);
}

/// Serialize one request's Langfuse ingestion events (its trace and its generation) into `out`,
/// the elements of the batch array (comma-separated, no brackets). Each event's body carries the
/// request's input and output, spliced in as stored.
fn write_langfuse_events(ev: &RequestEvent, out: &mut Vec<u8>) {
    let log = &ev.log;
    let start = iso(log.start_time);
    let end = iso(log.end_time);
    let trace_id = log.request_id.as_str();
    let name = ["litellm-", log.call_type.as_str()];
    let (input, output) = (
        json_text(log.messages.as_deref()),
        json_text(log.response.as_deref()),
    );

    let mut trace = JsonObject::begin(out);
    trace
        .str_concat("id", &[trace_id, "-trace"])
        .str("type", "trace-create")
        .str("timestamp", &end)
        .object("body", |body| {
            let tags: &[&str] = match log.model_group.as_deref() {
                Some(group) => &[log.model.as_str(), group],
                None => &[log.model.as_str()],
            };
            body.str("id", trace_id)
                .str_concat("name", &name)
                .str("timestamp", &start)
                .opt_str("userId", log.end_user.as_deref().or(log.user_id.as_deref()))
                .object("metadata", |m| write_langfuse_metadata(ev, m))
                .strs("tags", tags)
                .raw("input", input)
                .raw("output", output);
        });
    trace.end();
    out.push(b',');

    let mut generation = JsonObject::begin(out);
    let first_token = ev
        .time_to_first_token_ms
        .map(|t| iso(log.start_time + t as i64));
    generation
        .str_concat("id", &[trace_id, "-generation"])
        .str("type", "generation-create")
        .str("timestamp", &end)
        .object("body", |body| {
            body.str_concat(
                "id",
                &[
                    "time-",
                    itoa::Buffer::new().format(log.start_time),
                    "-",
                    trace_id,
                ],
            )
            .str("traceId", trace_id)
            .str_concat("name", &name)
            .str("startTime", &start)
            .str("endTime", &end)
            .opt_str("completionStartTime", first_token.as_deref())
            .str("model", &log.model)
            .object("usage", |u| {
                u.i64("input", log.prompt_tokens)
                    .i64("output", log.completion_tokens)
                    .i64("total", log.total_tokens)
                    .str("unit", "TOKENS")
                    .f64("totalCost", log.spend);
            })
            .object("metadata", |m| write_langfuse_metadata(ev, m))
            .str("level", if ev.succeeded() { "DEFAULT" } else { "ERROR" })
            .opt_str("statusMessage", ev.error.as_deref())
            .raw("input", input)
            .raw("output", output);
        });
    generation.end();
}

/// Langfuse ingestion events for one request: its trace and its generation.
#[cfg(test)]
fn langfuse_events(ev: &RequestEvent) -> [Value; 2] {
    let mut out = b"[".to_vec();
    write_langfuse_events(ev, &mut out);
    out.push(b']');
    let events: Vec<Value> = serde_json::from_slice(&out).expect("JSON");
    events.try_into().expect("two events")
}

/// One Datadog log item (logs intake v2): the standard logging payload's JSON text as `message`,
/// `status` `info` or `error`, LiteLLM's tags plus `request_tag:…` and `team:…`.
fn datadog_item(
    ev: &RequestEvent,
    source: &str,
    service: &str,
    hostname: &str,
    tags: &[String],
) -> Value {
    let mut all = tags.to_vec();
    if let Ok(request_tags) = serde_json::from_str::<Vec<String>>(&ev.log.request_tags) {
        all.extend(request_tags.iter().map(|t| format!("request_tag:{t}")));
    }
    if let Some(team) = ev.team_alias.as_ref().or(ev.log.team_id.as_ref()) {
        all.push(format!("team:{team}"));
    }
    json!({
        "ddsource": source,
        "ddtags": all.join(","),
        "hostname": hostname,
        // Valid UTF-8 by construction: the writer copies `&str`s and writes ASCII.
        "message": String::from_utf8(StandardPayload::of(ev).to_vec()).unwrap_or_default(),
        "service": service,
        "status": if ev.succeeded() { "info" } else { "error" },
    })
}

/// A run id for a call id: the call id itself when it is a UUID (the gateway's are), else a UUID
/// derived from it (LangSmith ids must be UUIDs).
fn run_id(call_id: &str) -> uuid::Uuid {
    uuid::Uuid::parse_str(call_id).unwrap_or_else(|_| {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(call_id.as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    })
}

/// Writes one LangSmith run (a root `llm` run per request) into `out`: `inputs` is the standard
/// logging payload (LiteLLM's), `outputs` the response, `dotted_order`
/// `{start:%Y%m%dT%H%M%S%fZ}{id}`; the stored texts are spliced in as they are.
fn write_langsmith_run(ev: &RequestEvent, project: &str, run_name: &str, out: &mut Vec<u8>) {
    let log = &ev.log;
    let id = run_id(&log.request_id).to_string();
    let start =
        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(log.start_time).unwrap_or_default();
    let dotted_order = start.format("%Y%m%dT%H%M%S%6fZ").to_string();
    let payload = StandardPayload::of(ev);
    let mut run = JsonObject::begin(out);
    run.str("id", &id)
        .str("trace_id", &id)
        .str_concat("dotted_order", &[&dotted_order, &id])
        .str("name", run_name)
        .str("run_type", "llm")
        .str("start_time", &iso(log.start_time))
        .str("end_time", &iso(log.end_time))
        .str("session_name", project)
        .object("extra", |extra| {
            extra.object("metadata", |m| payload.metadata.write(m));
        });
    // `outputs` is an object: the response itself, or the response under `output`.
    match log.response.as_deref().map(str::trim_start) {
        Some(text) if text.starts_with('{') => run.raw("outputs", text),
        None | Some("null") => run.raw("outputs", "{}"),
        Some(text) => run.object("outputs", |o| {
            o.raw("output", text);
        }),
    };
    if let Some(error) = ev.error.as_deref() {
        run.str("error", error);
    }
    run.raw("tags", payload.request_tags);
    run.value_with("inputs", |inputs| payload.write(inputs));
    run.end();
}

/// What `write` writes, in a buffer sized for one request's payload.
fn written(write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(2048);
    write(&mut out);
    out
}

/// Writes `elements` (JSON texts) into `out` as a JSON array.
fn write_array<'a>(out: &mut Vec<u8>, elements: impl Iterator<Item = &'a [u8]>) {
    out.push(b'[');
    for (i, element) in elements.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(element);
    }
    out.push(b']');
}

/// One Sentry envelope (header line, item header line, event) for a failed request: `level`
/// `error`, the error as an exception of LiteLLM's class for its status, tags `model`,
/// `model_group`, `call_id`; no key, no credential, no prompt.
fn sentry_envelope(ev: &RequestEvent, environment: Option<&str>) -> Bytes {
    let log = &ev.log;
    let event_id = uuid::Uuid::new_v4().simple().to_string();
    let class = super::metrics::exception_class(
        ev.provider.as_deref().unwrap_or_default(),
        super::metrics::class_for_status(ev.status_code),
    );
    let event = json!({
        "event_id": event_id,
        "timestamp": secs(log.end_time),
        "platform": "other",
        "level": "error",
        "logger": "tollgate",
        "release": format!("tollgate@{}", crate::state::VERSION),
        "environment": environment,
        "transaction": ev.requested_model,
        "exception": {"values": [{
            "type": class,
            "value": ev.error.as_deref().unwrap_or("request failed"),
        }]},
        "tags": {
            "model": ev.requested_model,
            "model_group": log.model_group,
            "call_id": log.request_id,
            "status_code": ev.status_code.to_string(),
            "call_type": log.call_type,
        },
        "extra": {
            "user_api_key_hash": log.api_key,
            "user_api_key_alias": ev.key_alias,
            "team_id": log.team_id,
            "deployment": log.model_id,
        },
    })
    .to_string();
    let header = json!({"event_id": event_id, "sent_at": iso(crate::time::now_ms())});
    let item = json!({"type": "event", "length": event.len(), "content_type": "application/json"});
    Bytes::from(format!("{header}\n{item}\n{event}\n"))
}

/// One HTTP request: a batch (or one event) in the receiver's format.
struct Outgoing {
    method: &'static str,
    url: String,
    /// Including the content type.
    headers: Vec<(String, String)>,
    body: Bytes,
    /// How many events it carries (what is counted sent or failed).
    events: u64,
}

impl Outgoing {
    /// A JSON body already serialized.
    fn serialized(
        url: String,
        mut headers: Vec<(String, String)>,
        body: Vec<u8>,
        events: usize,
    ) -> Self {
        headers.insert(0, ("content-type".into(), "application/json".into()));
        Self {
            method: "POST",
            url,
            headers,
            body: Bytes::from(body),
            events: events as u64,
        }
    }

    fn json(url: String, mut headers: Vec<(String, String)>, body: &Value, events: usize) -> Self {
        headers.insert(0, ("content-type".into(), "application/json".into()));
        Self {
            method: "POST",
            url,
            headers,
            body: Bytes::from(body.to_string()),
            events: events as u64,
        }
    }
}

impl Destination {
    /// Whether its payloads carry prompts and completions (all but Sentry's).
    pub fn sends_messages(&self) -> bool {
        !matches!(self, Destination::Sentry(_))
    }

    /// One event's element of the JSON array this destination sends a batch as, for those that
    /// send one (`generic_api`, `langfuse`, `langsmith`): written when the request ends, while the
    /// event is still in the cache (docs/BENCHMARKS.md, "Spans and callback payloads encoded when
    /// the request ends").
    fn element(&self, ev: &RequestEvent) -> Option<Vec<u8>> {
        match self {
            Destination::GenericApi { .. } => {
                Some(written(|out| StandardPayload::of(ev).write(out)))
            }
            Destination::Langfuse { .. } => Some(written(|out| write_langfuse_events(ev, out))),
            Destination::Langsmith {
                project, run_name, ..
            } => Some(written(|out| {
                write_langsmith_run(ev, project, run_name, out)
            })),
            Destination::Datadog { .. } | Destination::Sentry(_) | Destination::S3(_) => None,
        }
    }

    /// The requests that carry `batch`: one for the whole batch, or one per event (Sentry, S3).
    fn outgoing(&self, batch: &[Queued]) -> Vec<Outgoing> {
        let n = batch.len();
        let elements = || batch.iter().filter_map(Queued::written);
        let events = || batch.iter().filter_map(Queued::event);
        match self {
            Destination::GenericApi { url, headers } => {
                let mut body = Vec::with_capacity(1536 * n);
                write_array(&mut body, elements());
                vec![Outgoing::serialized(url.clone(), headers.clone(), body, n)]
            }
            Destination::Langfuse {
                host,
                public_key,
                secret_key,
            } => {
                use base64::Engine as _;
                let auth = base64::engine::general_purpose::STANDARD
                    .encode(format!("{public_key}:{secret_key}"));
                let mut body = Vec::with_capacity(4096 * n);
                let mut o = JsonObject::begin(&mut body);
                o.value_with("batch", |out| write_array(out, elements()))
                    .object("metadata", |m| {
                        m.str("sdk_name", "tollgate")
                            .str("sdk_version", crate::state::VERSION);
                    });
                o.end();
                vec![Outgoing::serialized(
                    format!("{host}/api/public/ingestion"),
                    vec![("authorization".into(), format!("Basic {auth}"))],
                    body,
                    n,
                )]
            }
            Destination::Datadog {
                url,
                api_key,
                source,
                service,
                hostname,
                tags,
            } => vec![Outgoing::json(
                url.clone(),
                vec![("dd-api-key".into(), api_key.clone())],
                &Value::Array(
                    events()
                        .map(|e| datadog_item(e, source, service, hostname, tags))
                        .collect(),
                ),
                n,
            )],
            Destination::Langsmith {
                base_url, api_key, ..
            } => {
                let mut body = Vec::with_capacity(3072 * n);
                let mut o = JsonObject::begin(&mut body);
                o.value_with("post", |out| write_array(out, elements()));
                o.end();
                vec![Outgoing::serialized(
                    format!("{base_url}/runs/batch"),
                    vec![("x-api-key".into(), api_key.clone())],
                    body,
                    n,
                )]
            }
            Destination::Sentry(dsn) => {
                let auth = format!(
                    "Sentry sentry_version=7, sentry_key={}, sentry_client=tollgate/{}",
                    dsn.public_key,
                    crate::state::VERSION
                );
                events()
                    .map(|e| Outgoing {
                        method: "POST",
                        url: dsn.envelope_url.clone(),
                        headers: vec![
                            (
                                "content-type".into(),
                                "application/x-sentry-envelope".into(),
                            ),
                            ("x-sentry-auth".into(), auth.clone()),
                        ],
                        body: sentry_envelope(e, dsn.environment.as_deref()),
                        events: 1,
                    })
                    .collect()
            }
            Destination::S3(s3) => {
                let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
                events()
                    .map(|e| {
                        let key = s3.object_key(e.log.start_time, &e.log.request_id);
                        s3.put(
                            &key,
                            Bytes::from(StandardPayload::of(e).to_vec()),
                            &amz_date,
                        )
                    })
                    .collect()
            }
        }
    }
}

/// What a callback counts (read by `/metrics`).
#[derive(Default)]
pub struct ShipperCounters {
    pub sent: AtomicU64,
    /// Events dropped: the queue was full, or their batch failed every retry.
    pub failed: AtomicU64,
}

/// An event waiting in a callback's queue: its element of the batch, already written
/// ([`Destination::element`]), or the event itself for the destinations that build their requests
/// per event.
enum Queued {
    Written(Vec<u8>),
    Event(Arc<RequestEvent>),
}

impl Queued {
    fn written(&self) -> Option<&[u8]> {
        match self {
            Queued::Written(element) => Some(element),
            Queued::Event(_) => None,
        }
    }

    fn event(&self) -> Option<&Arc<RequestEvent>> {
        match self {
            Queued::Event(event) => Some(event),
            Queued::Written(_) => None,
        }
    }
}

/// A callback's queue, outside its actor so that a restart loses nothing.
pub struct Queue {
    pub settings: CallbackSettings,
    events: Mutex<VecDeque<Queued>>,
    pub counters: ShipperCounters,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Queued>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Observer for Queue {
    fn request_finished(&self, event: &Arc<RequestEvent>) {
        let wanted = if event.succeeded() {
            self.settings.on_success
        } else {
            self.settings.on_failure
        };
        if !wanted {
            return;
        }
        // A full queue drops the event before any work is spent on it; the second look, when it
        // is queued, keeps the bound exact.
        if self.lock().len() < QUEUE_MAX {
            let queued = match self.settings.destination.element(event) {
                Some(element) => Queued::Written(element),
                None => Queued::Event(event.clone()),
            };
            let mut events = self.lock();
            if events.len() < QUEUE_MAX {
                events.push_back(queued);
                return;
            }
        }
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
    }
}

/// The callback's actor: sends the queue, a batch at a time.
pub struct Shipper {
    queue: Arc<Queue>,
    sending: bool,
}

impl Actor for Shipper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(FLUSH_EVERY / 5, |this, ctx| this.tick(ctx));
    }
}

impl Shipper {
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.sending {
            return;
        }
        let batch: Vec<Queued> = {
            let mut events = self.queue.lock();
            let n = events.len().min(BATCH);
            events.drain(..n).collect()
        };
        if batch.is_empty() {
            return;
        }
        self.sending = true;
        let queue = self.queue.clone();
        let outgoing = queue.settings.destination.outgoing(&batch);
        drop(batch);
        ctx.spawn(
            async move {
                for out in &outgoing {
                    deliver(&queue, out).await;
                }
            }
            .into_actor(self)
            .map(|(), this, ctx| {
                this.sending = false;
                // A full batch waiting goes at once: under load the queue drains as fast as the
                // receiver takes it, not a batch per tick.
                if this.queue.lock().len() >= BATCH {
                    this.tick(ctx);
                }
            }),
        );
    }
}

/// Send one request, retrying with backoff; count its events sent or failed.
async fn deliver(queue: &Queue, out: &Outgoing) {
    let mut delay = Duration::from_millis(250);
    for attempt in 0..=RETRIES {
        match send(out).await {
            Ok(()) => {
                queue.counters.sent.fetch_add(out.events, Ordering::Relaxed);
                return;
            }
            Err(e) if attempt == RETRIES => {
                tracing::warn!(callback = queue.settings.name, error = %e, events = out.events, "callback failed; events dropped");
            }
            Err(e) => {
                tracing::debug!(callback = queue.settings.name, error = %e, "callback failed; retrying");
                actix::clock::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    queue
        .counters
        .failed
        .fetch_add(out.events, Ordering::Relaxed);
}

async fn send(out: &Outgoing) -> Result<(), String> {
    let status = crate::upstream::send_bytes(
        out.method,
        &out.url,
        &out.headers,
        out.body.clone(),
        SEND_TIMEOUT,
    )
    .await?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("the receiver answered {status}"))
    }
}

/// A started callback: its queue (the observer) and its supervised actor.
pub struct Callback {
    pub queue: Arc<Queue>,
    pub actor: Arc<tollgate_actors::Restartable<Shipper>>,
}

/// Start one callback's actor. Must run inside the actix system.
pub fn start(settings: CallbackSettings) -> Callback {
    let name = format!("callback {}", settings.name);
    let queue = Arc::new(Queue {
        settings,
        events: Mutex::new(VecDeque::new()),
        counters: ShipperCounters::default(),
    });
    let for_actor = queue.clone();
    let actor = tollgate_actors::Restartable::start(&name, move || Shipper {
        queue: for_actor.clone(),
        sending: false,
    });
    Callback { queue, actor }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(yaml: &str, env: &[(&str, &str)]) -> Result<Resolved, String> {
        let cfg = ProxyConfig::parse(yaml, "t").unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CallbackSettings::resolve(&cfg, &move |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn callbacks_are_read_from_the_three_lists() {
        let r = resolve(
            "litellm_settings:\n  success_callback: [langfuse, prometheus]\n  failure_callback: [generic_api]\n  callbacks: [lunary]\n",
            &[
                ("LANGFUSE_PUBLIC_KEY", "pk"),
                ("LANGFUSE_SECRET_KEY", "sk"),
                ("GENERIC_LOGGER_ENDPOINT", "http://x/log"),
                ("GENERIC_LOGGER_HEADERS", "authorization=Bearer t, x-a = b"),
            ],
        )
        .unwrap();
        assert_eq!(r.callbacks.len(), 2);
        let langfuse = &r.callbacks[0];
        assert!(langfuse.on_success && !langfuse.on_failure);
        assert_eq!(
            langfuse.destination,
            Destination::Langfuse {
                host: "https://cloud.langfuse.com".into(),
                public_key: "pk".into(),
                secret_key: "sk".into()
            }
        );
        let generic = &r.callbacks[1];
        assert!(!generic.on_success && generic.on_failure);
        assert_eq!(
            generic.destination,
            Destination::GenericApi {
                url: "http://x/log".into(),
                headers: vec![
                    ("authorization".into(), "Bearer t".into()),
                    ("x-a".into(), "b".into())
                ]
            }
        );
        assert_eq!(r.not_implemented, vec!["lunary".to_string()]);
        assert_eq!(r.message_logging, MessageLogging::On);
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err = resolve("litellm_settings:\n  success_callback: [langfuse]\n", &[]).unwrap_err();
        assert!(err.contains("LANGFUSE_PUBLIC_KEY"), "{err}");
        let err = resolve("litellm_settings:\n  callbacks: [generic_api]\n", &[]).unwrap_err();
        assert!(err.contains("GENERIC_LOGGER_ENDPOINT"), "{err}");
        for (name, var) in [
            ("datadog", "DD_API_KEY"),
            ("langsmith", "LANGSMITH_API_KEY"),
            ("sentry", "SENTRY_DSN"),
            ("s3", "s3_bucket_name"),
        ] {
            let err =
                resolve(&format!("litellm_settings:\n  callbacks: [{name}]\n"), &[]).unwrap_err();
            assert!(err.contains(var), "{name}: {err}");
        }
        let no_secret = "litellm_settings:\n  callbacks: [s3]\n  s3_callback_params: {s3_bucket_name: logs, s3_aws_access_key_id: AKID}\n";
        let err = resolve(no_secret, &[]).unwrap_err();
        assert!(err.contains("s3_aws_secret_access_key"), "{err}");
        let err = resolve(
            "litellm_settings:\n  failure_callback: [sentry]\n",
            &[("SENTRY_DSN", "not a dsn")],
        )
        .unwrap_err();
        assert!(err.contains("SENTRY_DSN"), "{err}");
    }

    #[test]
    fn the_new_callbacks_read_litellms_environment() {
        let r = resolve(
            "litellm_settings:\n  callbacks: [datadog, langsmith, sentry, s3]\n  turn_off_message_logging: true\n  s3_callback_params:\n    s3_bucket_name: logs\n    s3_region_name: eu-west-1\n    s3_path: team-a/\n    s3_endpoint_url: http://127.0.0.1:9000/\n",
            &[
                ("DD_API_KEY", "dd-key"),
                ("DD_BASE_URL", "http://127.0.0.1:1/"),
                ("DD_ENV", "prod"),
                ("LANGSMITH_API_KEY", "ls-key"),
                ("SENTRY_DSN", "https://pub:old-secret@o1.ingest.sentry.io/sub/42"),
                ("AWS_ACCESS_KEY_ID", "AKID"),
                ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
            ],
        )
        .unwrap();
        assert_eq!(r.message_logging, MessageLogging::Redacted);
        let [dd, ls, sentry, s3] = &r.callbacks[..] else {
            panic!("{:?}", r.callbacks)
        };
        let Destination::Datadog {
            url,
            tags,
            source,
            service,
            ..
        } = &dd.destination
        else {
            panic!()
        };
        assert_eq!(url, "http://127.0.0.1:1/api/v2/logs");
        assert_eq!(
            (source.as_str(), service.as_str()),
            ("litellm", "litellm-server")
        );
        assert!(tags.contains(&"env:prod".to_string()), "{tags:?}");
        assert_eq!(
            ls.destination,
            Destination::Langsmith {
                base_url: "https://api.smith.langchain.com".into(),
                api_key: "ls-key".into(),
                project: "litellm-completion".into(),
                run_name: "LLMRun".into(),
            }
        );
        assert!(sentry.on_failure && !sentry.on_success);
        let Destination::Sentry(dsn) = &sentry.destination else {
            panic!()
        };
        assert_eq!(
            dsn.envelope_url,
            "https://o1.ingest.sentry.io/sub/api/42/envelope/"
        );
        assert_eq!(dsn.public_key, "pub");
        let Destination::S3(s3) = &s3.destination else {
            panic!()
        };
        assert_eq!(
            (s3.bucket.as_str(), s3.region.as_str(), s3.path.as_str()),
            ("logs", "eu-west-1", "team-a")
        );
        assert!(s3.path_style);
        assert_eq!(s3.access_key_id, "AKID");
        assert!(!format!("{s3:?}").contains("aws-secret"));
        // `2023-11-14T22:13:20.250Z`
        let key = s3.object_key(1_700_000_000_250, "call-1");
        assert_eq!(key, "team-a/2023-11-14/time-22-13-20-250000_call-1.json");
        assert_eq!(
            s3.object_url(&key),
            "http://127.0.0.1:9000/logs/team-a/2023-11-14/time-22-13-20-250000_call-1.json"
        );
        let aws = S3Settings {
            endpoint: None,
            path_style: false,
            ..s3.clone()
        };
        assert_eq!(
            aws.object_url("a b.json"),
            "https://logs.s3.eu-west-1.amazonaws.com/a%20b.json"
        );
        // Only Sentry: nothing sends messages, nothing is copied for them.
        let r = resolve(
            "litellm_settings:\n  failure_callback: [sentry]\n",
            &[("SENTRY_DSN", "http://pub@127.0.0.1:9/42")],
        )
        .unwrap();
        assert_eq!(r.message_logging, MessageLogging::Off);
    }

    fn event(status: &str) -> RequestEvent {
        RequestEvent {
            log: crate::store::SpendLog {
                request_id: "call-1".into(),
                call_type: "acompletion".into(),
                api_key: "hash-of-key".into(),
                status: status.into(),
                model: "gpt-x".into(),
                model_group: Some("g".into()),
                prompt_tokens: 3,
                completion_tokens: 4,
                total_tokens: 7,
                start_time: 1_700_000_000_000,
                end_time: 1_700_000_000_250,
                metadata: "{}".into(),
                ..Default::default()
            },
            requested_model: "g".into(),
            key_alias: Some("alias".into()),
            team_alias: None,
            provider: Some("openai".into()),
            status_code: if status == "success" { 200 } else { 500 },
            error: (status != "success").then(|| "boom".into()),
            time_to_first_token_ms: None,
            user_email: None,
            remaining_budget: Default::default(),
        }
    }

    fn rich_event(status: &str) -> RequestEvent {
        let mut ev = event(status);
        ev.log.spend = 0.000_123_5;
        ev.log.user_id = Some("user-1".into());
        ev.log.team_id = Some("team-1".into());
        ev.log.organization_id = Some("org-1".into());
        ev.log.end_user = Some("end \"user\"".into());
        ev.log.model_id = Some("dep-1".into());
        ev.log.api_base = Some("http://127.0.0.1:1/v1".into());
        ev.log.cache_key = Some("ck".into());
        ev.log.response_id = Some("chatcmpl-1".into());
        ev.log.request_tags = r#"["a","b\n"]"#.into();
        ev.log.metadata = r#"{"other":1,"spend_logs_metadata":{"x":[1,"y"]}}"#.into();
        ev.log.messages = Some(r#"[{"role":"user","content":"hi \u0001"}]"#.into());
        ev.log.response = Some(r#"{"id":"chatcmpl-1","choices":[]}"#.into());
        ev.team_alias = Some("team alias".into());
        ev.time_to_first_token_ms = Some(40);
        ev
    }

    /// The three payloads of a request with every field set, success and failure, against their
    /// recorded form (`testdata/callback_payloads.json`, written by the serde structs these
    /// writers replaced): the same fields, values and types.
    #[test]
    fn payloads_match_their_recorded_form() {
        let recorded: Value =
            serde_json::from_str(include_str!("testdata/callback_payloads.json")).unwrap();
        for status in ["success", "failure"] {
            let ev = rich_event(status);
            let written = json!({
                "standard": standard_payload(&ev),
                "langfuse": langfuse_events(&ev),
                "langsmith": langsmith_run(&ev, "proj", "run"),
            });
            assert_eq!(written, recorded[status], "{status}");
        }
    }

    fn standard_payload(ev: &RequestEvent) -> Value {
        serde_json::from_slice(&StandardPayload::of(ev).to_vec()).unwrap()
    }

    fn langsmith_run(ev: &RequestEvent, project: &str, run_name: &str) -> Value {
        let mut out = Vec::new();
        write_langsmith_run(ev, project, run_name, &mut out);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn payloads_follow_the_receivers_formats() {
        let ev = event("success");
        let p = standard_payload(&ev);
        assert_eq!(p["id"], "call-1");
        assert_eq!(p["metadata"]["user_api_key_hash"], "hash-of-key");
        assert_eq!(p["total_tokens"], 7);
        assert_eq!(p["response_time"], 0.25);
        let [trace, generation] = langfuse_events(&ev);
        assert_eq!(trace["type"], "trace-create");
        assert_eq!(generation["type"], "generation-create");
        assert_eq!(generation["body"]["traceId"], trace["body"]["id"]);
        assert_eq!(generation["body"]["usage"]["total"], 7);
        assert_eq!(generation["body"]["level"], "DEFAULT");
        assert_eq!(
            langfuse_events(&event("failure"))[1]["body"]["level"],
            "ERROR"
        );
    }

    #[test]
    fn spend_logs_metadata_and_odd_strings_reach_the_payloads_intact() {
        let mut ev = event("success");
        ev.log.metadata = r#"{"user_api_key_alias":"a","spend_logs_metadata":{"job":"nightly \"run\"","n":[1,2.5],"deep":{"x":null}}}"#.into();
        ev.key_alias = Some("quote \" backslash \\ tab \t newline \n bell \u{7} é".into());
        ev.log.request_tags = r#"["t1","t\"2"]"#.into();
        let expected = json!({"job": "nightly \"run\"", "n": [1, 2.5], "deep": {"x": null}});
        let p = standard_payload(&ev);
        assert_eq!(p["metadata"]["spend_logs_metadata"], expected);
        assert_eq!(
            p["metadata"]["user_api_key_alias"],
            ev.key_alias.as_deref().unwrap()
        );
        assert_eq!(p["request_tags"], json!(["t1", "t\"2"]));
        let run = langsmith_run(&ev, "proj", "run");
        assert_eq!(run["extra"]["metadata"]["spend_logs_metadata"], expected);
        let [trace, _] = langfuse_events(&ev);
        assert_eq!(
            trace["body"]["metadata"]["user_api_key_alias"],
            ev.key_alias.as_deref().unwrap()
        );
        // No spend_logs_metadata: null, and the payload is still one JSON object.
        ev.log.metadata = "{}".into();
        assert!(standard_payload(&ev)["metadata"]["spend_logs_metadata"].is_null());
    }

    #[test]
    fn datadog_langsmith_and_sentry_payloads() {
        let ok = event("success");
        let item = datadog_item(&ok, "litellm", "svc", "host-1", &["env:prod".into()]);
        assert_eq!(item["status"], "info");
        assert_eq!(item["ddtags"], "env:prod");
        let message: Value = serde_json::from_str(item["message"].as_str().unwrap()).unwrap();
        assert_eq!(message["id"], "call-1");
        let failed = event("failure");
        assert_eq!(datadog_item(&failed, "s", "v", "h", &[])["status"], "error");

        let run = langsmith_run(&ok, "proj", "LLMRun");
        let id = run["id"].as_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok());
        assert_eq!(run["trace_id"], id);
        assert_eq!(
            run["dotted_order"].as_str().unwrap(),
            format!("20231114T221320000000Z{id}")
        );
        assert_eq!(run["session_name"], "proj");
        assert_eq!(run["run_type"], "llm");
        assert_eq!(run["inputs"], standard_payload(&ok));
        assert_eq!(run["tags"], standard_payload(&ok)["request_tags"]);
        assert_eq!(run["extra"]["metadata"]["user_api_key_hash"], "hash-of-key");
        assert!(run.get("error").is_none());
        assert_eq!(langsmith_run(&failed, "p", "n")["error"], "boom");
        assert_eq!(run_id("call-1"), run_id("call-1"));

        let envelope = sentry_envelope(&failed, Some("prod"));
        let text = std::str::from_utf8(&envelope).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let item: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(item["type"], "event");
        assert_eq!(item["length"], lines[2].len());
        let ev: Value = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(ev["event_id"].as_str().unwrap().len(), 32);
        assert_eq!(ev["level"], "error");
        assert_eq!(ev["tags"]["call_id"], "call-1");
        assert_eq!(
            ev["exception"]["values"][0]["type"],
            "Openai.InternalServerError"
        );
        assert_eq!(ev["environment"], "prod");
    }

    #[test]
    fn an_s3_put_is_signed_for_s3() {
        let s3 = S3Settings {
            bucket: "logs".into(),
            region: "us-east-1".into(),
            endpoint: Some("http://127.0.0.1:9000/s3".into()),
            path: String::new(),
            path_style: true,
            access_key_id: "AKID".into(),
            secret_access_key: crate::secret::Secret::new("secret"),
            session_token: None,
        };
        let body = Bytes::from_static(b"{}");
        let out = s3.put("2023-11-14/x.json", body.clone(), "20231114T221320Z");
        assert_eq!(out.method, "PUT");
        assert_eq!(out.url, "http://127.0.0.1:9000/s3/logs/2023-11-14/x.json");
        let header = |k: &str| {
            out.headers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        let hash = tollgate_wire::sigv4::sha256_hex(&body);
        assert_eq!(header("x-amz-content-sha256"), Some(hash.clone()));
        let auth = header("authorization").unwrap();
        let parsed = tollgate_wire::sigv4::parse_authorization(&auth).unwrap();
        assert_eq!(parsed.service, "s3");
        assert_eq!(
            parsed.signed_headers,
            ["content-type", "host", "x-amz-content-sha256", "x-amz-date"]
        );
        let signed: Vec<(String, String)> = vec![
            ("content-type".into(), "application/json".into()),
            ("host".into(), "127.0.0.1:9000".into()),
            ("x-amz-content-sha256".into(), hash.clone()),
            ("x-amz-date".into(), "20231114T221320Z".into()),
        ];
        let expected = tollgate_wire::sigv4::sign_s3(
            &tollgate_wire::sigv4::Request {
                method: "PUT",
                path: "/s3/logs/2023-11-14/x.json",
                query: "",
                headers: &signed,
                payload_hash: &hash,
            },
            "secret",
            "20231114T221320Z",
            "us-east-1",
        );
        assert_eq!(parsed.signature, expected.signature);
    }

    #[test]
    fn detailed_debug_bodies_hide_prompts_when_message_logging_is_off() {
        let body: Map<String, Value> = serde_json::from_value(json!({
            "model": "m", "messages": [{"role": "user", "content": "secret plan"}], "api_key": "sk-abcdefghijkl"
        }))
        .unwrap();
        let on = ProxyConfig::parse("litellm_settings: {}\n", "t").unwrap();
        assert!(loggable_body(&on, &body)
            .to_string()
            .contains("secret plan"));
        let off = ProxyConfig::parse("litellm_settings:\n  turn_off_message_logging: true\n", "t")
            .unwrap();
        let shown = loggable_body(&off, &body);
        assert!(!shown.to_string().contains("secret plan"), "{shown}");
        assert_eq!(shown["messages"], REDACTED);
    }

    #[test]
    fn the_queue_takes_what_its_lists_ask_for_and_is_bounded() {
        let queue = Queue {
            settings: CallbackSettings {
                name: "generic_api".into(),
                destination: Destination::GenericApi {
                    url: "http://x".into(),
                    headers: vec![],
                },
                on_success: true,
                on_failure: false,
            },
            events: Mutex::new(VecDeque::new()),
            counters: ShipperCounters::default(),
        };
        queue.request_finished(&Arc::new(event("failure")));
        assert_eq!(queue.lock().len(), 0);
        let ok = Arc::new(event("success"));
        for _ in 0..QUEUE_MAX + 5 {
            queue.request_finished(&ok);
        }
        assert_eq!(queue.lock().len(), QUEUE_MAX);
        assert_eq!(queue.counters.failed.load(Ordering::Relaxed), 5);
    }
}
