//! Live log tailing: `GET /logs/stream` and `tollgate logs`.
//!
//! One bounded broadcast carries every finished request (as a JSON line, formatted once for all
//! readers) and, while a reader asked for `level=debug`, the gateway's own log lines. The sender
//! never waits: a reader that falls more than [`CAPACITY`] items behind skips the oldest and is
//! told how many it missed, so a slow or stalled reader never slows a request. With no reader the
//! observer returns after one atomic load, and log lines are not even formatted.
//!
//! The process has one tail ([`global`]): the `tracing` layer is installed before the server
//! state exists, and both must feed the same readers.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use serde_json::{json, Map, Value};
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use super::{Observer, RequestEvent};

/// How many items a reader may fall behind before it skips.
pub const CAPACITY: usize = 1024;

/// One item of the tail, already formatted (a JSON object).
#[derive(Debug, Clone)]
pub enum TailItem {
    /// A finished request (the SSE default event).
    Request(Arc<str>),
    /// One of the gateway's log lines (`event: log`), for `level=debug` readers only.
    Log(Arc<str>),
}

/// The live tail: the observer of finished requests and the source readers subscribe to.
#[derive(Clone)]
pub struct LogTail {
    sender: broadcast::Sender<TailItem>,
    /// Readers that want log lines: the `tracing` layer formats nothing while this is 0.
    debug_readers: Arc<AtomicUsize>,
}

impl Default for LogTail {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

/// The process's tail, shared by the `tracing` layer and `/logs/stream`.
pub fn global() -> &'static LogTail {
    static TAIL: OnceLock<LogTail> = OnceLock::new();
    TAIL.get_or_init(LogTail::default)
}

impl LogTail {
    pub fn with_capacity(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self {
            sender,
            debug_readers: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A new reader, seeing what is published from now on; `debug` adds the log lines.
    pub fn subscribe(&self, debug: bool) -> TailReader {
        if debug {
            self.debug_readers.fetch_add(1, Ordering::Relaxed);
        }
        TailReader {
            receiver: self.sender.subscribe(),
            debug,
            debug_readers: self.debug_readers.clone(),
        }
    }

    /// Connected readers.
    pub fn readers(&self) -> usize {
        self.sender.receiver_count()
    }

    /// Whether a `level=debug` reader is connected: the log layer's filter asks this per event,
    /// so log lines cost one atomic load while nobody tails them.
    pub fn wants_logs(&self) -> bool {
        self.debug_readers.load(Ordering::Relaxed) > 0
    }

    /// Publish one log line (called by [`TailLayer`]); never blocks.
    fn publish_log(&self, line: String) {
        let _ = self.sender.send(TailItem::Log(line.into()));
    }
}

impl Observer for LogTail {
    fn listening(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    fn request_finished(&self, event: &Arc<RequestEvent>) {
        if self.sender.receiver_count() == 0 {
            return;
        }
        let line = request_json(event).to_string();
        // An error only means the last reader left meanwhile.
        let _ = self.sender.send(TailItem::Request(line.into()));
    }
}

/// A request as a tail reader sees it: what happened, never the key or the messages.
pub fn request_json(event: &RequestEvent) -> Value {
    let log = &event.log;
    json!({
        "time": iso_time(log.end_time),
        "call_id": log.request_id,
        "key_alias": event.key_alias,
        "model": event.requested_model,
        "model_group": log.model_group,
        "deployment": log.model_id,
        "status": log.status,
        "status_code": event.status_code,
        "latency_ms": event.duration_ms(),
        "prompt_tokens": log.prompt_tokens,
        "completion_tokens": log.completion_tokens,
        "cost": log.spend,
        "cache_hit": log.cache_hit,
        "error": event.error,
    })
}

/// Unix milliseconds as ISO 8601 UTC (`2026-12-06T20:54:25.123Z`).
fn iso_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// What a reader gets next.
#[derive(Debug, PartialEq)]
pub enum TailEvent {
    Request(Arc<str>),
    Log(Arc<str>),
    /// The reader fell behind and skipped this many items.
    Lagged(u64),
    /// The tail is gone (the gateway is stopping).
    Closed,
}

/// One reader of the tail. Dropping it unsubscribes.
pub struct TailReader {
    receiver: broadcast::Receiver<TailItem>,
    debug: bool,
    debug_readers: Arc<AtomicUsize>,
}

impl TailReader {
    /// The next item this reader wants (log lines only for a `debug` reader).
    pub async fn next(&mut self) -> TailEvent {
        loop {
            match self.receiver.recv().await {
                Ok(TailItem::Request(line)) => return TailEvent::Request(line),
                Ok(TailItem::Log(line)) if self.debug => return TailEvent::Log(line),
                Ok(TailItem::Log(_)) => continue,
                Err(broadcast::error::RecvError::Lagged(n)) => return TailEvent::Lagged(n),
                Err(broadcast::error::RecvError::Closed) => return TailEvent::Closed,
            }
        }
    }
}

impl Drop for TailReader {
    fn drop(&mut self) {
        if self.debug {
            self.debug_readers.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A `tracing` layer that tees the gateway's log events into the tail for `level=debug` readers,
/// secrets masked. Give it its own filter (see `crate::logging`): it sees debug events of the
/// gateway even when the console shows less.
pub struct TailLayer {
    tail: LogTail,
}

impl TailLayer {
    pub fn new(tail: LogTail) -> Self {
        Self { tail }
    }
}

impl<S: Subscriber> Layer<S> for TailLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if !self.tail.wants_logs() {
            return;
        }
        let line = log_json(event).to_string();
        self.tail.publish_log(line);
    }
}

/// A log event as JSON: time, level, target, message and fields, secrets masked.
fn log_json(event: &Event<'_>) -> Value {
    let mut visitor = Fields::default();
    event.record(&mut visitor);
    let meta = event.metadata();
    json!({
        "time": iso_time(chrono::Utc::now().timestamp_millis()),
        "level": level_name(*meta.level()),
        "target": meta.target(),
        "message": mask_text(&visitor.message),
        "fields": Value::Object(visitor.fields),
    })
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: Map<String, Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        // Numbers and booleans are never secrets (`prompt_tokens` only sounds like one).
        let value = match value {
            Value::String(s) if crate::secret::is_secret_key(name) => {
                Value::String(crate::secret::mask(&s))
            }
            Value::String(s) => Value::String(mask_text(&s)),
            other => other,
        };
        self.fields.insert(name.to_string(), value);
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.put(field, Value::String(format!("{value:?}")));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.put(field, Value::String(value.to_string()));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, json!(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, json!(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, json!(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, json!(value));
    }
}

/// Log text as a tail may show it: URLs through [`crate::secret::display_url`] (no userinfo, query
/// values masked), key-like words (`sk-…`, a `Bearer` token) masked. The gateway already masks
/// secrets where it logs them; this is the second line for a stream that leaves the machine.
pub fn mask_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut after_bearer = false;
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let trimmed = word.trim_matches(|c: char| "\"'(),;[]{}".contains(c));
        let masked = if after_bearer && !trimmed.is_empty() {
            Some(crate::secret::mask(trimmed))
        } else if let Some(at) = trimmed.find("://") {
            // The URL starts at its scheme (`url=https://…`, `(http://…`).
            let start = trimmed[..at]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
                .map_or(0, |i| i + 1);
            let shown = crate::secret::display_url(&trimmed[start..]);
            Some(format!("{}{shown}", &trimmed[..start]))
        } else {
            key_in(trimmed).map(|key| trimmed.replacen(key, &crate::secret::mask(key), 1))
        };
        after_bearer = trimmed.eq_ignore_ascii_case("bearer");
        match masked {
            Some(m) if m != trimmed => out.push_str(&word.replacen(trimmed, &m, 1)),
            _ => out.push_str(word),
        }
    }
    out
}

/// An `sk-…` style key (LiteLLM virtual keys, OpenAI and Anthropic keys) long enough to be
/// real, alone or as `name=value`.
fn key_in(word: &str) -> Option<&str> {
    let value = word.split_once('=').map_or(word, |(_, v)| v);
    ((value.starts_with("sk-") || value.starts_with("sk_")) && value.len() >= 12).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SpendLog;
    use tracing_subscriber::layer::SubscriberExt;

    fn event(call_id: &str, error: Option<&str>) -> Arc<RequestEvent> {
        Arc::new(RequestEvent {
            log: SpendLog {
                request_id: call_id.into(),
                api_key: "hashed-key-token".into(),
                status: if error.is_some() {
                    "failure"
                } else {
                    "success"
                }
                .into(),
                start_time: 1_765_000_000_000,
                end_time: 1_765_000_000_250,
                model: "gpt-4o".into(),
                model_group: Some("gpt".into()),
                model_id: Some("dep-1".into()),
                prompt_tokens: 7,
                completion_tokens: 3,
                spend: 0.5,
                ..SpendLog::default()
            },
            requested_model: "my-alias".into(),
            key_alias: Some("ci".into()),
            team_alias: None,
            provider: Some("openai".into()),
            status_code: if error.is_some() { 502 } else { 200 },
            error: error.map(str::to_string),
            time_to_first_token_ms: None,
            user_email: None,
            remaining_budget: Default::default(),
        })
    }

    #[test]
    fn a_request_shows_what_happened_and_not_the_key() {
        let v = request_json(&event("call-1", None));
        assert_eq!(v["time"], "2025-12-06T05:46:40.250Z");
        assert_eq!(v["call_id"], "call-1");
        assert_eq!(v["key_alias"], "ci");
        assert_eq!(v["model"], "my-alias");
        assert_eq!(v["model_group"], "gpt");
        assert_eq!(v["deployment"], "dep-1");
        assert_eq!(v["status"], "success");
        assert_eq!(v["status_code"], 200);
        assert_eq!(v["latency_ms"], 250);
        assert_eq!(v["prompt_tokens"], 7);
        assert_eq!(v["completion_tokens"], 3);
        assert_eq!(v["cost"], 0.5);
        assert_eq!(v["cache_hit"], false);
        assert_eq!(v["error"], Value::Null);
        assert!(!v.to_string().contains("hashed-key-token"), "{v}");
    }

    #[actix_rt::test]
    async fn readers_see_requests_made_after_they_connect() {
        let tail = LogTail::with_capacity(8);
        // Nobody listens: nothing is formatted or kept.
        tail.request_finished(&event("before", None));
        let mut reader = tail.subscribe(false);
        assert_eq!(tail.readers(), 1);
        tail.request_finished(&event("after", Some("upstream 502")));
        let TailEvent::Request(line) = reader.next().await else {
            panic!("a request event")
        };
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["call_id"], "after");
        assert_eq!(v["status"], "failure");
        assert_eq!(v["error"], "upstream 502");
        drop(reader);
        assert_eq!(tail.readers(), 0);
    }

    #[actix_rt::test]
    async fn a_reader_that_falls_behind_skips_and_is_told_how_much() {
        let tail = LogTail::with_capacity(4);
        let mut slow = tail.subscribe(false);
        // The publisher never waits for the reader.
        for i in 0..10 {
            tail.request_finished(&event(&format!("c{i}"), None));
        }
        assert_eq!(slow.next().await, TailEvent::Lagged(6));
        let TailEvent::Request(line) = slow.next().await else {
            panic!("the oldest kept event")
        };
        assert!(line.contains("\"c6\""), "{line}");
    }

    #[actix_rt::test]
    async fn log_lines_reach_debug_readers_only_and_masked() {
        let tail = LogTail::with_capacity(16);
        let subscriber = tracing_subscriber::registry().with(TailLayer::new(tail.clone()));
        let _guard = tracing::subscriber::set_default(subscriber);
        // No debug reader: the layer publishes nothing.
        let mut plain = tail.subscribe(false);
        tracing::info!("before any debug reader");
        let mut debug = tail.subscribe(true);
        tracing::info!(
            api_key = "sk-live-0123456789abcdef",
            prompt_tokens = 12u64,
            url = "https://bob:hunter2pass@llm.example/v1?key=abcdef123456",
            "calling with Bearer sk-abcdefghijklmnop and sk-zyxwvutsrqponm"
        );
        tail.request_finished(&event("r1", None));
        let TailEvent::Log(line) = debug.next().await else {
            panic!("a log event")
        };
        assert!(!line.contains("before any"), "{line}");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "info");
        assert_eq!(v["fields"]["api_key"], "sk-...cdef");
        assert_eq!(v["fields"]["prompt_tokens"], 12);
        let text = v.to_string();
        for secret in [
            "0123456789abcdef",
            "hunter2pass",
            "abcdef123456",
            "abcdefghijklmnop",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("llm.example/v1?key=****"), "{text}");
        // The plain reader skips the log line and sees the request.
        let TailEvent::Request(line) = plain.next().await else {
            panic!("a request event")
        };
        assert!(line.contains("\"r1\""), "{line}");
        drop(debug);
        assert!(!tail.wants_logs());
    }

    #[test]
    fn text_masking_keeps_ordinary_words() {
        assert_eq!(mask_text("request rejected: 404"), "request rejected: 404");
        assert_eq!(mask_text("key=sk-0123456789abcdef"), "key=sk-...cdef");
        assert_eq!(
            mask_text("(url http://u:passw0rd@h:8080/p)"),
            "(url http://h:8080/p)"
        );
    }
}
