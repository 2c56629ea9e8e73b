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
//!
//! Each callback is an actor ([`Shipper`], supervised by the router) with a bounded queue: the
//! request path only enqueues (a full queue drops the event and counts it). The actor sends a batch
//! at a time (up to [`BATCH`] events, at least every [`FLUSH_EVERY`]), retries a failed batch with
//! backoff ([`RETRIES`] times), then drops it and counts it as failed
//! (`litellm_callback_logging_failures_metric`). A slow, failing or dead receiver never slows or fails
//! a request. A callback whose environment is missing stops the gateway at start, naming the
//! variable. Payloads never carry a key (only its hash) or an upstream credential.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use serde_json::{json, Map, Value};

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
                n if ELSEWHERE.contains(&n) => continue,
                _ => {
                    out.not_implemented.push(name);
                    continue;
                }
            };
            out.callbacks.push(CallbackSettings {
                on_success: success.contains(&name) || both.contains(&name),
                on_failure: failure.contains(&name) || both.contains(&name),
                name,
                destination,
            });
        }
        Ok(out)
    }
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

/// A stored JSON text (the spend log's `messages` / `response`) as JSON; `null` when not kept.
fn stored(text: &Option<String>) -> Value {
    text.as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

/// LiteLLM's standard logging payload for one request (the fields the gateway has).
pub fn standard_payload(ev: &RequestEvent) -> Value {
    let log = &ev.log;
    let metadata = serde_json::from_str::<Map<String, Value>>(&log.metadata).unwrap_or_default();
    json!({
        "id": log.request_id,
        "trace_id": log.request_id,
        "call_type": log.call_type,
        "response_cost": log.spend,
        "status": log.status,
        "total_tokens": log.total_tokens,
        "prompt_tokens": log.prompt_tokens,
        "completion_tokens": log.completion_tokens,
        "startTime": secs(log.start_time),
        "endTime": secs(log.end_time),
        "completionStartTime": ev.time_to_first_token_ms.map(|t| secs(log.start_time + t as i64)),
        "response_time": secs(log.end_time - log.start_time),
        "model": log.model,
        "model_id": log.model_id,
        "model_group": log.model_group,
        "requested_model": ev.requested_model,
        "api_base": log.api_base,
        "custom_llm_provider": ev.provider,
        "cache_hit": log.cache_hit,
        "cache_key": log.cache_key,
        "end_user": log.end_user,
        "metadata": {
            "user_api_key_hash": log.api_key,
            "user_api_key_alias": ev.key_alias,
            "user_api_key_user_id": log.user_id,
            "user_api_key_team_id": log.team_id,
            "user_api_key_team_alias": ev.team_alias,
            "user_api_key_org_id": log.organization_id,
            "user_api_key_end_user_id": log.end_user,
            "spend_logs_metadata": metadata.get("spend_logs_metadata"),
        },
        "response_id": log.response_id,
        "messages": stored(&log.messages),
        "response": stored(&log.response),
        "error_str": ev.error,
        "error_information": ev.error.as_ref().map(|e| json!({
            "error_code": ev.status_code.to_string(),
            "error_message": e,
        })),
    })
}

/// Langfuse ingestion events for one request: its trace and its generation.
fn langfuse_events(ev: &RequestEvent) -> [Value; 2] {
    let log = &ev.log;
    let now = iso(log.end_time);
    let trace_id = log.request_id.clone();
    let name = format!("litellm-{}", log.call_type);
    let tags: Vec<&str> = [Some(log.model.as_str()), log.model_group.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    let metadata = json!({
        "user_api_key_hash": log.api_key,
        "user_api_key_alias": ev.key_alias,
        "user_api_key_team_id": log.team_id,
        "user_api_key_team_alias": ev.team_alias,
        "model_group": log.model_group,
        "model_id": log.model_id,
        "cache_hit": log.cache_hit,
        "response_cost": log.spend,
    });
    [
        json!({
            "id": format!("{trace_id}-trace"),
            "type": "trace-create",
            "timestamp": now,
            "body": {
                "id": trace_id,
                "name": name,
                "timestamp": iso(log.start_time),
                "userId": log.end_user.as_ref().or(log.user_id.as_ref()),
                "metadata": metadata,
                "tags": tags,
                "input": stored(&log.messages),
                "output": stored(&log.response),
            },
        }),
        json!({
            "id": format!("{trace_id}-generation"),
            "type": "generation-create",
            "timestamp": now,
            "body": {
                "id": format!("time-{}-{trace_id}", log.start_time),
                "traceId": trace_id,
                "name": name,
                "startTime": iso(log.start_time),
                "endTime": iso(log.end_time),
                "completionStartTime": ev.time_to_first_token_ms.map(|t| iso(log.start_time + t as i64)),
                "model": log.model,
                "input": stored(&log.messages),
                "output": stored(&log.response),
                "usage": {
                    "input": log.prompt_tokens,
                    "output": log.completion_tokens,
                    "total": log.total_tokens,
                    "unit": "TOKENS",
                    "totalCost": log.spend,
                },
                "metadata": metadata,
                "level": if ev.succeeded() { "DEFAULT" } else { "ERROR" },
                "statusMessage": ev.error,
            },
        }),
    ]
}

/// One HTTP request carrying a batch.
struct Outgoing {
    url: String,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Destination {
    fn outgoing(&self, batch: &[Arc<RequestEvent>]) -> Outgoing {
        match self {
            Destination::GenericApi { url, headers } => Outgoing {
                url: url.clone(),
                headers: headers.clone(),
                body: Value::Array(batch.iter().map(|e| standard_payload(e)).collect()),
            },
            Destination::Langfuse {
                host,
                public_key,
                secret_key,
            } => {
                use base64::Engine as _;
                let auth = base64::engine::general_purpose::STANDARD
                    .encode(format!("{public_key}:{secret_key}"));
                Outgoing {
                    url: format!("{host}/api/public/ingestion"),
                    headers: vec![("authorization".into(), format!("Basic {auth}"))],
                    body: json!({
                        "batch": batch.iter().flat_map(|e| langfuse_events(e)).collect::<Vec<_>>(),
                        "metadata": {"sdk_name": "tollgate", "sdk_version": crate::state::VERSION},
                    }),
                }
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

/// A callback's queue, outside its actor so that a restart loses nothing.
pub struct Queue {
    pub settings: CallbackSettings,
    events: Mutex<VecDeque<Arc<RequestEvent>>>,
    pub counters: ShipperCounters,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<RequestEvent>>> {
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
        let mut events = self.lock();
        if events.len() >= QUEUE_MAX {
            drop(events);
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        events.push_back(event.clone());
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
        let batch: Vec<Arc<RequestEvent>> = {
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
        let n = batch.len() as u64;
        ctx.spawn(
            async move {
                let mut delay = Duration::from_millis(250);
                for attempt in 0..=RETRIES {
                    match send(&outgoing).await {
                        Ok(()) => {
                            queue.counters.sent.fetch_add(n, Ordering::Relaxed);
                            return;
                        }
                        Err(e) if attempt == RETRIES => {
                            tracing::warn!(callback = queue.settings.name, error = %e, events = n, "callback failed; events dropped");
                        }
                        Err(e) => {
                            tracing::debug!(callback = queue.settings.name, error = %e, "callback failed; retrying");
                            actix::clock::sleep(delay).await;
                            delay *= 2;
                        }
                    }
                }
                queue.counters.failed.fetch_add(n, Ordering::Relaxed);
            }
            .into_actor(self)
            .map(|(), this, _| this.sending = false),
        );
    }
}

async fn send(out: &Outgoing) -> Result<(), String> {
    let status =
        crate::upstream::post_json(&out.url, &out.headers, out.body.to_string(), SEND_TIMEOUT)
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
            "litellm_settings:\n  success_callback: [langfuse, prometheus]\n  failure_callback: [generic_api]\n  callbacks: [datadog]\n",
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
        assert_eq!(r.not_implemented, vec!["datadog".to_string()]);
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err = resolve("litellm_settings:\n  success_callback: [langfuse]\n", &[]).unwrap_err();
        assert!(err.contains("LANGFUSE_PUBLIC_KEY"), "{err}");
        let err = resolve("litellm_settings:\n  callbacks: [generic_api]\n", &[]).unwrap_err();
        assert!(err.contains("GENERIC_LOGGER_ENDPOINT"), "{err}");
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
