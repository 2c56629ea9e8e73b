//! Alerting (`general_settings.alerting: ["slack"]`, or `["webhook"]`): operators hear of what needs
//! them, in Slack or on a webhook of their own.
//!
//! | alert type (LiteLLM's name) | when |
//! |---|---|
//! | `budget_alerts` | a key, user, team, organization or end user is refused for its budget; a key crosses its `soft_budget` |
//! | `cooldown_deployment` | a deployment starts cooling down after failures |
//! | `llm_too_slow` | a request took longer than `alerting_threshold` seconds (default 300) |
//! | `llm_requests_hanging` | a request is still running `alerting_threshold` seconds after it started (checked every second, while it runs) |
//! | `db_exceptions` | the database stops answering |
//! | `outage_alerts` | a Redis (the router's, or the response cache's) stops answering |
//!
//! `alert_types` narrows them (default: all). Each alert is sent once per subject (a key, a
//! deployment, a model group) within [`DEDUP_FOR`], at most [`MAX_PER_MINUTE`] alerts a minute are
//! sent, and the rest are counted as suppressed. Sending is an actor's work ([`AlertSender`],
//! supervised by the router) from a bounded queue: no request waits on Slack. `SLACK_WEBHOOK_URL`
//! (for `slack`) or `WEBHOOK_URL` (for `webhook`) must be set: a missing one stops the start, named.
//! `alert_to_webhook_url: {<alert type>: <url>}` sends that type to its own Slack webhook.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::{json, Value};

use super::{Observer, RequestEvent};
use crate::config::ProxyConfig;

/// The same alert for the same subject is not sent again within this.
pub const DEDUP_FOR: Duration = Duration::from_secs(600);
/// Alerts sent per minute at most.
pub const MAX_PER_MINUTE: u32 = 20;
/// Alerts waiting to be sent at most.
const QUEUE_MAX: usize = 256;
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// What an alert is about (LiteLLM's `alert_types` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertType {
    BudgetAlerts,
    CooldownDeployment,
    LlmTooSlow,
    LlmRequestsHanging,
    DbExceptions,
    OutageAlerts,
}

impl AlertType {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertType::BudgetAlerts => "budget_alerts",
            AlertType::CooldownDeployment => "cooldown_deployment",
            AlertType::LlmTooSlow => "llm_too_slow",
            AlertType::LlmRequestsHanging => "llm_requests_hanging",
            AlertType::DbExceptions => "db_exceptions",
            AlertType::OutageAlerts => "outage_alerts",
        }
    }

    const ALL: [AlertType; 6] = [
        AlertType::BudgetAlerts,
        AlertType::CooldownDeployment,
        AlertType::LlmTooSlow,
        AlertType::LlmRequestsHanging,
        AlertType::DbExceptions,
        AlertType::OutageAlerts,
    ];
}

/// Where alerts go.
#[derive(Debug, Clone, PartialEq)]
pub enum Channel {
    /// A Slack incoming webhook: `{"text": …}`.
    Slack(String),
    /// A webhook of the operator's: `{"alert_type", "level", "subject", "message", "time"}`.
    Webhook(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlertSettings {
    pub channels: Vec<Channel>,
    /// Types sent to a Slack webhook of their own (`alert_to_webhook_url`).
    pub per_type: HashMap<String, String>,
    pub types: Vec<AlertType>,
    /// `alerting_threshold`: a request slower than this is `llm_too_slow`.
    pub threshold: Duration,
}

impl AlertSettings {
    /// `None` when alerting is off; `Err` names a missing environment variable.
    pub fn resolve(
        cfg: &ProxyConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, String> {
        let g = &cfg.general_settings;
        let names: Vec<String> = match g.get("alerting") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => return Ok(None),
        };
        let need = |var: &str| {
            env(var)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| format!("alerting needs the environment variable {var}"))
        };
        let mut channels = Vec::new();
        for name in &names {
            match name.as_str() {
                "slack" => channels.push(Channel::Slack(need("SLACK_WEBHOOK_URL")?)),
                "webhook" => channels.push(Channel::Webhook(need("WEBHOOK_URL")?)),
                other => {
                    tracing::warn!(
                        "alerting channel {other} is not supported (slack, webhook); ignored"
                    )
                }
            }
        }
        let per_type: HashMap<String, String> = match g.get("alert_to_webhook_url") {
            Some(Value::Object(m)) => m
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect(),
            _ => HashMap::new(),
        };
        if channels.is_empty() && per_type.is_empty() {
            return Ok(None);
        }
        let types = match g.get("alert_types") {
            Some(Value::Array(items)) => AlertType::ALL
                .into_iter()
                .filter(|t| items.iter().any(|i| i.as_str() == Some(t.as_str())))
                .collect(),
            _ => AlertType::ALL.to_vec(),
        };
        let threshold = g
            .get("alerting_threshold")
            .and_then(crate::config::as_f64)
            .filter(|s| *s > 0.0)
            .map_or(Duration::from_secs(300), crate::config::config_seconds);
        Ok(Some(Self {
            channels,
            per_type,
            types,
            threshold,
        }))
    }
}

struct Alert {
    kind: AlertType,
    subject: String,
    message: String,
}

/// What alerting counts (read by `/metrics`).
#[derive(Default)]
pub struct AlertCounters {
    pub sent: AtomicU64,
    /// Not sent: a duplicate within the dedup window, over the per-minute limit, or a full queue.
    pub suppressed: AtomicU64,
    pub failed: AtomicU64,
}

/// The alerting state: what was sent recently, the queue, the counters. Outside the actor, so a
/// restart loses nothing.
pub struct Alerting {
    pub settings: AlertSettings,
    recent: Mutex<HashMap<(AlertType, String), Instant>>,
    minute: Mutex<(Instant, u32)>,
    queue: Mutex<VecDeque<Alert>>,
    pub counters: AlertCounters,
    /// The requests running now, for `llm_requests_hanging` (empty when that type is off).
    in_flight: Mutex<InFlightTable>,
}

/// The requests running now: when each started, its model group, its call id, and whether it was
/// already reported as hanging.
#[derive(Default)]
struct InFlightTable {
    next: u64,
    running: HashMap<u64, Running>,
}

struct Running {
    started: Instant,
    group: String,
    call_id: String,
    reported: bool,
}

/// A request's place in the in-flight table: it leaves the table when this is dropped (when the
/// request's spend is recorded, or the request is abandoned).
pub struct InFlight {
    alerting: Arc<Alerting>,
    id: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        lock(&self.alerting.in_flight).running.remove(&self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Alerting {
    pub fn new(settings: AlertSettings) -> Self {
        Self {
            settings,
            recent: Mutex::new(HashMap::new()),
            minute: Mutex::new((Instant::now(), 0)),
            queue: Mutex::new(VecDeque::new()),
            counters: AlertCounters::default(),
            in_flight: Mutex::new(InFlightTable::default()),
        }
    }

    /// Note a request that starts now, for `llm_requests_hanging` (`None`, and nothing kept, when
    /// that alert type is off).
    pub fn begin(self: &Arc<Self>, call_id: &str, group: &str) -> Option<InFlight> {
        if !self.settings.types.contains(&AlertType::LlmRequestsHanging) {
            return None;
        }
        let mut table = lock(&self.in_flight);
        table.next += 1;
        let id = table.next;
        table.running.insert(
            id,
            Running {
                started: Instant::now(),
                group: group.to_string(),
                call_id: call_id.to_string(),
                reported: false,
            },
        );
        Some(InFlight {
            alerting: self.clone(),
            id,
        })
    }

    /// Alert on the requests running longer than the threshold, once per request (and, by the
    /// dedup window, once per model group).
    pub fn check_hanging(&self) {
        let hanging: Vec<(String, String, Duration)> = {
            let mut table = lock(&self.in_flight);
            table
                .running
                .values_mut()
                .filter(|r| !r.reported && r.started.elapsed() > self.settings.threshold)
                .map(|r| {
                    r.reported = true;
                    (r.group.clone(), r.call_id.clone(), r.started.elapsed())
                })
                .collect()
        };
        for (group, call_id, running) in hanging {
            self.alert(
                AlertType::LlmRequestsHanging,
                &group,
                format!(
                    "a request to model group `{group}` (call {call_id}) has been running for {:.1} s without finishing, over the {:.1} s alerting threshold",
                    running.as_secs_f64(),
                    self.settings.threshold.as_secs_f64()
                ),
            );
        }
    }

    /// Raise an alert about `subject` (deduplicated, rate-limited, sent in the background).
    pub fn alert(&self, kind: AlertType, subject: &str, message: String) {
        if !self.settings.types.contains(&kind) {
            return;
        }
        let now = Instant::now();
        {
            let mut recent = lock(&self.recent);
            let key = (kind, subject.to_string());
            if recent
                .get(&key)
                .is_some_and(|at| now.duration_since(*at) < DEDUP_FOR)
            {
                self.counters.suppressed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            recent.retain(|_, at| now.duration_since(*at) < DEDUP_FOR);
            recent.insert(key, now);
        }
        {
            let mut minute = lock(&self.minute);
            if now.duration_since(minute.0) >= Duration::from_secs(60) {
                *minute = (now, 0);
            }
            if minute.1 >= MAX_PER_MINUTE {
                self.counters.suppressed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            minute.1 += 1;
        }
        let mut queue = lock(&self.queue);
        if queue.len() >= QUEUE_MAX {
            self.counters.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        tracing::info!(alert_type = kind.as_str(), subject, "alert: {message}");
        queue.push_back(Alert {
            kind,
            subject: subject.to_string(),
            message,
        });
    }

    /// Where an alert goes, and what it says there.
    fn deliveries(&self, alert: &Alert) -> Vec<(String, Value)> {
        let slack = |text: &str| json!({"text": text});
        let text = format!("🚨 *{}* — {}", alert.kind.as_str(), alert.message);
        if let Some(url) = self.settings.per_type.get(alert.kind.as_str()) {
            return vec![(url.clone(), slack(&text))];
        }
        self.settings
            .channels
            .iter()
            .map(|c| match c {
                Channel::Slack(url) => (url.clone(), slack(&text)),
                Channel::Webhook(url) => (
                    url.clone(),
                    json!({
                        "alert_type": alert.kind.as_str(),
                        "level": "High",
                        "subject": alert.subject,
                        "message": alert.message,
                        "time": crate::time::now_iso(),
                    }),
                ),
            })
            .collect()
    }
}

/// Slow requests are `llm_too_slow`.
impl Observer for Alerting {
    fn request_finished(&self, event: &Arc<RequestEvent>) {
        let took = event.duration_ms();
        if Duration::from_millis(took) <= self.settings.threshold {
            return;
        }
        let group = event
            .log
            .model_group
            .clone()
            .unwrap_or_else(|| event.requested_model.clone());
        self.alert(
            AlertType::LlmTooSlow,
            &group,
            format!(
                "a request to model group `{group}` (deployment {}) took {:.1} s, over the {:.1} s alerting threshold",
                event.log.model_id.as_deref().unwrap_or("-"),
                took as f64 / 1000.0,
                self.settings.threshold.as_secs_f64()
            ),
        );
    }
}

/// The actor that sends queued alerts, one at a time.
pub struct AlertSender {
    alerting: Arc<Alerting>,
    sending: bool,
}

impl Actor for AlertSender {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(Duration::from_millis(200), |this, ctx| this.tick(ctx));
    }
}

impl AlertSender {
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.sending {
            return;
        }
        let Some(alert) = lock(&self.alerting.queue).pop_front() else {
            return;
        };
        self.sending = true;
        let alerting = self.alerting.clone();
        let deliveries = alerting.deliveries(&alert);
        ctx.spawn(
            async move {
                for (url, body) in deliveries {
                    let sent =
                        crate::upstream::post_json(&url, &[], body.to_string(), SEND_TIMEOUT).await;
                    match sent {
                        Ok(status) if (200..300).contains(&status) => {
                            alerting.counters.sent.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(status) => {
                            alerting.counters.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(status, "alert not accepted by its receiver");
                        }
                        Err(e) => {
                            alerting.counters.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(error = %e, "alert could not be sent");
                        }
                    }
                }
            }
            .into_actor(self)
            .map(|(), this, _| this.sending = false),
        );
    }
}

/// Start alerting's sender actor (inside the actix system).
pub fn start(alerting: Arc<Alerting>) -> Arc<tollgate_actors::Restartable<AlertSender>> {
    tollgate_actors::Restartable::start("alerting", move || AlertSender {
        alerting: alerting.clone(),
        sending: false,
    })
}

/// Watch what has no request to report it: deployments starting a cooldown, the database and the
/// Redis instances going away. Runs every second for the gateway's life.
pub fn spawn_watch(state: actix_web::web::Data<crate::state::AppState>, alerting: Arc<Alerting>) {
    actix_web::rt::spawn(async move {
        let mut cooling: HashMap<String, bool> = HashMap::new();
        let mut db_ready = true;
        let mut redis_up = (true, true);
        loop {
            actix_web::rt::time::sleep(Duration::from_secs(1)).await;
            alerting.check_hanging();
            let now = tollgate_actors::now_ms();
            for handle in state.router.snapshot().deployments() {
                let d = &handle.upstream;
                let is = handle.state.is_cooling_down(now);
                let was = cooling.insert(d.id.clone(), is).unwrap_or(false);
                if is && !was {
                    alerting.alert(
                        AlertType::CooldownDeployment,
                        &d.id,
                        format!(
                            "deployment {} of model group `{}` ({}) is cooling down after failures",
                            d.id,
                            d.model_name,
                            crate::secret::display_url(d.api_base().unwrap_or("-"))
                        ),
                    );
                }
            }
            let ready = state.db.is_ready();
            if db_ready && !ready {
                alerting.alert(
                    AlertType::DbExceptions,
                    "database",
                    "the database is not answering; keys already known keep working, the management API answers 503".into(),
                );
            }
            db_ready = ready;
            use tollgate_actors::SharedStatus::Unavailable;
            let router_up = state
                .router
                .shared
                .as_ref()
                .is_none_or(|s| s.status() != Unavailable);
            let cache_up = state
                .cache
                .as_ref()
                .and_then(|c| c.store.status())
                .is_none_or(|s| s != Unavailable);
            if redis_up.0 && !router_up {
                alerting.alert(
                    AlertType::OutageAlerts,
                    "router redis",
                    "the router's Redis is not answering; each instance routes and limits on its own state".into(),
                );
            }
            if redis_up.1 && !cache_up {
                alerting.alert(
                    AlertType::OutageAlerts,
                    "cache redis",
                    "the response cache's Redis is not answering; requests are served without the cache".into(),
                );
            }
            redis_up = (router_up, cache_up);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AlertSettings {
        AlertSettings {
            channels: vec![Channel::Slack("http://slack".into())],
            per_type: HashMap::new(),
            types: AlertType::ALL.to_vec(),
            threshold: Duration::from_secs(300),
        }
    }

    #[test]
    fn alerting_is_read_from_general_settings() {
        let cfg = ProxyConfig::parse(
            "general_settings:\n  alerting: [slack]\n  alert_types: [budget_alerts, llm_too_slow]\n  alerting_threshold: 2\n",
            "t",
        )
        .unwrap();
        let env = |k: &str| (k == "SLACK_WEBHOOK_URL").then(|| "http://hooks/x".to_string());
        let s = AlertSettings::resolve(&cfg, &env).unwrap().unwrap();
        assert_eq!(s.channels, vec![Channel::Slack("http://hooks/x".into())]);
        assert_eq!(
            s.types,
            vec![AlertType::BudgetAlerts, AlertType::LlmTooSlow]
        );
        assert_eq!(s.threshold, Duration::from_secs(2));
        let err = AlertSettings::resolve(&cfg, &|_| None).unwrap_err();
        assert!(err.contains("SLACK_WEBHOOK_URL"), "{err}");
        let off = ProxyConfig::parse("general_settings: {}\n", "t").unwrap();
        assert_eq!(AlertSettings::resolve(&off, &|_| None).unwrap(), None);
    }

    #[test]
    fn alerts_are_deduplicated_per_subject_and_rate_limited() {
        let a = Alerting::new(settings());
        a.alert(AlertType::BudgetAlerts, "key-1", "over".into());
        a.alert(AlertType::BudgetAlerts, "key-1", "over again".into());
        a.alert(AlertType::BudgetAlerts, "key-2", "over".into());
        assert_eq!(lock(&a.queue).len(), 2);
        assert_eq!(a.counters.suppressed.load(Ordering::Relaxed), 1);
        for i in 0..MAX_PER_MINUTE + 5 {
            a.alert(
                AlertType::CooldownDeployment,
                &format!("d{i}"),
                "cool".into(),
            );
        }
        assert_eq!(lock(&a.queue).len(), MAX_PER_MINUTE as usize);
    }

    #[test]
    fn a_request_running_past_the_threshold_is_reported_once() {
        let mut s = settings();
        s.threshold = Duration::from_millis(20);
        let a = Arc::new(Alerting::new(s));
        let hanging = a.begin("call-1", "group-a").unwrap();
        let quick = a.begin("call-2", "group-b").unwrap();
        drop(quick);
        a.check_hanging();
        assert!(
            lock(&a.queue).is_empty(),
            "nothing has run past the threshold yet"
        );
        std::thread::sleep(Duration::from_millis(30));
        a.check_hanging();
        a.check_hanging();
        let queue = lock(&a.queue);
        assert_eq!(queue.len(), 1);
        assert_eq!(queue[0].kind, AlertType::LlmRequestsHanging);
        assert_eq!(queue[0].subject, "group-a");
        assert!(queue[0].message.contains("call-1"), "{}", queue[0].message);
        drop(queue);
        drop(hanging);
        assert!(lock(&a.in_flight).running.is_empty());
        let mut off = settings();
        off.types = vec![AlertType::LlmTooSlow];
        assert!(Arc::new(Alerting::new(off)).begin("c", "g").is_none());
    }

    #[test]
    fn unwanted_types_are_not_raised_and_per_type_urls_win() {
        let mut s = settings();
        s.types = vec![AlertType::BudgetAlerts];
        s.per_type
            .insert("budget_alerts".into(), "http://budget-hook".into());
        let a = Alerting::new(s);
        a.alert(AlertType::LlmTooSlow, "g", "slow".into());
        assert!(lock(&a.queue).is_empty());
        a.alert(AlertType::BudgetAlerts, "k", "over".into());
        let alert = lock(&a.queue).pop_front().unwrap();
        let deliveries = a.deliveries(&alert);
        assert_eq!(deliveries.len(), 1);
        assert_eq!(deliveries[0].0, "http://budget-hook");
        assert!(deliveries[0].1["text"]
            .as_str()
            .unwrap()
            .contains("budget_alerts"));
    }
}
