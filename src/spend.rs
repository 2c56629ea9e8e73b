//! Spend: one spend-log row per LLM request, success or failure, written in batches by the spend
//! tracker actor ([`tollgate_actors::SpendTracker`]) off the hot path. Each row also adds its cost
//! to the key, user, team, organization and end user it names, in the same transaction; rows are
//! keyed by the request's `x-litellm-call-id`, so a batch written twice counts once. Whatever is
//! buffered at SIGTERM is written before the process exits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use serde_json::{json, Value};
use tollgate_actors::{CacheHandle, SpendHandle, SpendSink};

use crate::auth::{Caller, Principal};
use crate::database::Database;
use crate::error::GatewayError;
use crate::keys::Fields;
use crate::llm::{CallKind, Usage};
use crate::observability::callbacks::MessageLogging;
use crate::store::SpendLog;

/// Default time between batch writes (`general_settings.proxy_batch_write_at` overrides it).
pub const DEFAULT_FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Where finished requests' rows go: a buffer the tracker actor drains, which never refuses a row
/// (rows are dropped only past `tollgate_actors::MAX_BUFFERED`, logged and counted as lost).
pub type Tracker = SpendHandle<SpendLog>;

/// Test hook: the spend tracker panics once, mid-write, after this many rows (supervision tests).
pub const PANIC_AFTER_ENV: &str = "TOLLGATE_TEST_PANIC_SPEND_TRACKER_AFTER";

/// Spend recorded by this instance and not yet written to the database, per key, user, team,
/// organization and end user, and per key and model group. Budget checks add it to the stored spend
/// of the cached records, so a budget counts every finished request at once, not only after the
/// next batch write.
#[derive(Default)]
pub struct Ledger {
    pending: Mutex<Pending>,
    /// The estimated cost of the requests in flight, per budget they count toward (same kinds as
    /// `pending`). Locked before `pending` when both are held.
    reserved: Mutex<Pending>,
    /// Spend-log rows the database refused on their own, set aside in the dead-letter file.
    dead_lettered: std::sync::atomic::AtomicU64,
    /// Keys whose soft-budget crossing was already logged.
    soft_budget_logged: Mutex<std::collections::HashSet<String>>,
    /// Where budget refusals and soft-budget crossings are alerted (`general_settings.alerting`).
    alerting: std::sync::OnceLock<Arc<crate::observability::alerting::Alerting>>,
}

type Amounts = HashMap<String, f64, foldhash::fast::RandomState>;

/// Unwritten spend per kind, looked up by `&str` (no key string is built per request).
#[derive(Default)]
struct Pending {
    key: Amounts,
    user: Amounts,
    team: Amounts,
    organization: Amounts,
    end_user: Amounts,
    /// `{token}:{model group}`.
    key_model: Amounts,
}

impl Pending {
    fn kind(&mut self, kind: &str) -> Option<&mut Amounts> {
        Some(match kind {
            "key" => &mut self.key,
            "user" => &mut self.user,
            "team" => &mut self.team,
            "organization" => &mut self.organization,
            "end_user" => &mut self.end_user,
            "key_model" => &mut self.key_model,
            _ => return None,
        })
    }
}

fn add_to(map: &mut Amounts, id: &str, amount: f64) {
    match map.get_mut(id) {
        Some(v) => {
            *v += amount;
            if v.abs() < 1e-12 {
                map.remove(id);
            }
        }
        None => {
            map.insert(id.to_string(), amount);
        }
    }
}

impl Ledger {
    fn add(&self, log: &SpendLog, sign: f64) {
        if log.spend == 0.0 {
            return;
        }
        let amount = sign * log.spend;
        let mut guard = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let p = &mut *guard;
        if !log.api_key.is_empty() {
            add_to(&mut p.key, &log.api_key, amount);
            if let Some(model) = &log.model_group {
                add_to(
                    &mut p.key_model,
                    &format!("{}:{model}", log.api_key),
                    amount,
                );
            }
        }
        for (map, id) in [
            (&mut p.user, &log.user_id),
            (&mut p.team, &log.team_id),
            (&mut p.organization, &log.organization_id),
            (&mut p.end_user, &log.end_user),
        ] {
            if let Some(id) = id {
                add_to(map, id, amount);
            }
        }
    }

    /// True the first time it is asked for a key (the soft-budget crossing is logged once).
    /// Send budget alerts (refusals, soft-budget crossings) to `alerting`.
    pub fn set_alerting(&self, alerting: Arc<crate::observability::alerting::Alerting>) {
        let _ = self.alerting.set(alerting);
    }

    fn budget_alert(&self, subject: &str, message: String) {
        if let Some(a) = self.alerting.get() {
            a.alert(
                crate::observability::alerting::AlertType::BudgetAlerts,
                subject,
                message,
            );
        }
    }

    fn first_soft_budget_crossing(&self, token: &str) -> bool {
        self.soft_budget_logged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.to_string())
    }

    /// Unwritten spend of `kind` (`key`, `user`, `team`, `organization`, `end_user`, `key_model`)
    /// `id`.
    pub fn pending(&self, kind: &str, id: &str) -> f64 {
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        p.kind(kind).and_then(|m| m.get(id).copied()).unwrap_or(0.0)
    }

    /// Estimated cost of the requests in flight that count toward budget `kind` `id`.
    pub fn reserved(&self, kind: &str, id: &str) -> f64 {
        let mut r = self.reserved.lock().unwrap_or_else(|p| p.into_inner());
        r.kind(kind).and_then(|m| m.get(id).copied()).unwrap_or(0.0)
    }

    /// Spend-log rows set aside since start because the database refused them.
    pub fn dead_lettered(&self) -> u64 {
        self.dead_lettered
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Check every budget and, if none is spent, reserve `estimate` against each, atomically: a
    /// budget admits a request only while its stored spend, its unwritten spend and the estimates
    /// of the requests in flight stay below `max_budget`. The first spent budget is returned.
    fn reserve(
        self: &Arc<Self>,
        budgets: &[Budget<'_>],
        estimate: f64,
    ) -> Result<Reservation, (usize, f64)> {
        let mut reserved = self.reserved.lock().unwrap_or_else(|p| p.into_inner());
        for (i, b) in budgets.iter().enumerate() {
            let held = reserved
                .kind(b.kind)
                .and_then(|m| m.get(b.id.as_ref()).copied())
                .unwrap_or(0.0);
            let spent = b.stored + self.pending(b.kind, &b.id) + held;
            if spent >= b.max {
                return Err((i, spent));
            }
        }
        let entries: Vec<(&'static str, String)> =
            budgets.iter().map(|b| (b.kind, b.id.to_string())).collect();
        if estimate > 0.0 {
            for (kind, id) in &entries {
                if let Some(m) = reserved.kind(kind) {
                    add_to(m, id, estimate);
                }
            }
        }
        Ok(Reservation {
            ledger: Some(self.clone()),
            entries,
            amount: estimate.max(0.0),
            chained: Vec::new(),
        })
    }

    fn release(&self, entries: &[(&'static str, String)], amount: f64) {
        if amount <= 0.0 {
            return;
        }
        let mut reserved = self.reserved.lock().unwrap_or_else(|p| p.into_inner());
        for (kind, id) in entries {
            if let Some(m) = reserved.kind(kind) {
                add_to(m, id, -amount);
            }
        }
    }
}

/// One budget a request counts toward.
struct Budget<'a> {
    kind: &'static str,
    id: std::borrow::Cow<'a, str>,
    stored: f64,
    max: f64,
}

/// A request's estimated cost held against the budgets it counts toward while it runs; released
/// when the request's spend is recorded (which replaces it with the real cost), or when it is
/// dropped (a request refused later, or abandoned).
#[derive(Default)]
pub struct Reservation {
    ledger: Option<Arc<Ledger>>,
    entries: Vec<(&'static str, String)>,
    amount: f64,
    /// Reservations made at other steps of the same request, released with this one.
    chained: Vec<Reservation>,
}

impl Reservation {
    /// Hold `other` too, until this one is released.
    pub fn absorb(&mut self, other: Reservation) {
        self.chained.push(other);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(ledger) = self.ledger.take() {
            ledger.release(&self.entries, self.amount);
        }
    }
}

/// Where spend-log rows the database refuses are set aside: `TOLLGATE_SPEND_DEAD_LETTER`, else
/// `spend_dead_letter.jsonl` in the working directory (beside the embedded database).
pub const DEAD_LETTER_ENV: &str = "TOLLGATE_SPEND_DEAD_LETTER";
pub const DEFAULT_DEAD_LETTER_FILE: &str = "spend_dead_letter.jsonl";

fn dead_letter_path() -> std::path::PathBuf {
    std::env::var_os(DEAD_LETTER_ENV)
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| DEFAULT_DEAD_LETTER_FILE.into())
}

/// Append rows the database refused to the dead-letter file, one JSON object a line with the
/// row and the database's reason, for an operator to inspect and replay.
fn dead_letter(ledger: &Ledger, rows: &[(SpendLog, String)]) {
    use std::io::Write as _;
    let path = dead_letter_path();
    let mut text = String::new();
    for (log, reason) in rows {
        let line = json!({"at": crate::time::iso8601(crate::time::now_ms()), "reason": reason, "row": log});
        text.push_str(&line.to_string());
        text.push('\n');
    }
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()));
    let total = ledger
        .dead_lettered
        .fetch_add(rows.len() as u64, std::sync::atomic::Ordering::Relaxed)
        + rows.len() as u64;
    for (log, reason) in rows {
        tracing::error!(
            request_id = log.request_id,
            reason,
            file = %path.display(),
            dead_lettered_total = total,
            "spend-log row refused by the database; set aside in the dead-letter file"
        );
    }
    if let Err(e) = written {
        tracing::error!(file = %path.display(), error = %e, rows = rows.len(), "dead-letter file not writable; the refused spend-log rows are only in this log");
    }
}

/// Write rows and their spend, or only their spend (`disable_spend_logs`).
async fn write_rows(
    store: &Arc<dyn crate::store::Store>,
    logs: &[SpendLog],
    keep_rows: bool,
) -> Result<u64, crate::store::StoreError> {
    if keep_rows {
        store.record_spend(logs).await
    } else {
        store.record_spend_without_logs(logs).await
    }
}

/// Write a batch; when the database refuses it for a reason other than being unreachable, write
/// its rows one at a time so that one row it cannot store (an invalid value) never holds back the
/// others: a row refused on its own while the database still answers is set aside in the
/// dead-letter file. Returns the rows written, and gives back the rows to retry (database down).
async fn write_batch(
    store: &Arc<dyn crate::store::Store>,
    ledger: &Ledger,
    batch: Vec<SpendLog>,
    keep_rows: bool,
) -> (Vec<SpendLog>, Result<(), (String, Vec<SpendLog>)>) {
    use crate::store::StoreError;
    let error = match write_rows(store, &batch, keep_rows).await {
        Ok(_) => return (batch, Ok(())),
        Err(e @ StoreError::Unavailable(_)) => return (Vec::new(), Err((e.to_string(), batch))),
        Err(e) => e,
    };
    tracing::warn!(error = %error, rows = batch.len(), "spend batch refused; writing its rows one by one");
    let mut written = Vec::with_capacity(batch.len());
    let mut retry = Vec::new();
    let mut refused = Vec::new();
    let mut rows = batch.into_iter();
    for log in rows.by_ref() {
        match write_rows(store, std::slice::from_ref(&log), keep_rows).await {
            Ok(_) => written.push(log),
            Err(StoreError::Unavailable(e)) => {
                retry.push(log);
                tracing::debug!(error = %e, "database unreachable while writing spend rows");
                break;
            }
            Err(e) => {
                // Refused alone: the row is at fault only if the database still answers.
                if store.ping().await.is_ok() {
                    refused.push((log, e.to_string()));
                } else {
                    retry.push(log);
                    break;
                }
            }
        }
    }
    retry.extend(rows);
    if !refused.is_empty() {
        dead_letter(ledger, &refused);
    }
    if retry.is_empty() {
        (written, Ok(()))
    } else {
        (written, Err((error.to_string(), retry)))
    }
}

/// Start the tracker, writing through the store. After a batch is written, its spend moves from
/// the ledger to the database, and the cached keys it names are reloaded so they show it. Rows the
/// database refuses are set aside (see [`write_batch`]); their spend stays in the ledger, so the
/// budgets of this instance keep counting it. Without `keep_rows`
/// (`general_settings.disable_spend_logs`) only the spend is written, never the rows.
pub fn start(
    db: Arc<Database>,
    flush_every: Duration,
    ledger: Arc<Ledger>,
    keys: Option<CacheHandle<Arc<Principal>>>,
    keep_rows: bool,
) -> Tracker {
    let sink: SpendSink<SpendLog> = Arc::new(move |batch: Vec<SpendLog>| {
        let (db, ledger, keys) = (db.clone(), ledger.clone(), keys.clone());
        async move {
            let store = match db.store() {
                Ok(s) => s.clone(),
                Err(e) => return Err((e.to_string(), batch)),
            };
            let (written, result) = write_batch(&store, &ledger, batch, keep_rows).await;
            // Reload the keys first: until then a check sees both the stored and the pending
            // spend (counted twice, never missed).
            for log in &written {
                if let (Some(cache), false) = (&keys, log.api_key.is_empty()) {
                    cache.invalidate(&log.api_key);
                }
            }
            for log in &written {
                ledger.add(log, -1.0);
            }
            result
        }
        .boxed_local()
    });
    let panic_after = std::env::var(PANIC_AFTER_ENV)
        .ok()
        .and_then(|n| n.parse().ok());
    SpendHandle::start_with(sink, flush_every, panic_after)
}

/// Write everything buffered (graceful shutdown), waiting at most `within`.
pub async fn drain(tracker: &Tracker, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        match tracker.drain().await {
            Ok(()) if tracker.pending() == 0 => return,
            // The next batch.
            Ok(()) => continue,
            Err(e) => tracing::debug!(error = %e, "spend drain: retrying"),
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::error!("spend records could not all be written before shutdown");
}

/// A spend-log row's `metadata`, in LiteLLM's field names.
#[derive(serde::Serialize)]
///
/// Only what no column holds is stored; `user_api_key`, `user_api_key_user_id`,
/// `user_api_key_team_id` and `user_api_key_org_id` are added back from the row's columns when the
/// row is shown ([`log_json`]), which keeps every row (one per request) small.
struct Metadata<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    user_api_key_alias: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_information: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    spend_logs_metadata: Option<&'a Value>,
}

/// At most this many tags are kept per request (the first ones, after deduplication).
pub const MAX_REQUEST_TAGS: usize = 32;
/// Longer tags are dropped: a tag is a label to group spend by, not a payload.
pub const MAX_TAG_CHARS: usize = 256;
/// `spend_logs_metadata` whose JSON is longer is dropped (logged), so one client cannot bloat
/// every row it writes.
pub const MAX_SPEND_LOGS_METADATA_BYTES: usize = 16 * 1024;
/// `messages` and `response` (with `store_prompts_in_spend_logs`) longer than this are stored
/// cut to this many bytes, as a JSON string ending in a note of what was cut.
pub const MAX_STORED_JSON_BYTES: usize = 64 * 1024;

/// A request's tags: the body's `tags`, then `metadata.tags`, then the comma-separated
/// `x-litellm-tags` header; trimmed, empty, non-string and over-long ones dropped, deduplicated
/// in order, at most [`MAX_REQUEST_TAGS`].
pub fn request_tags(
    body_tags: Option<&Value>,
    metadata: Option<&Value>,
    header: Option<&str>,
) -> Vec<String> {
    let listed = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let from_body = listed(body_tags);
    let from_metadata = listed(metadata.and_then(|m| m.get("tags")));
    let from_header = header.into_iter().flat_map(|h| h.split(','));
    let mut tags: Vec<String> = Vec::new();
    for tag in from_body
        .iter()
        .map(String::as_str)
        .chain(from_metadata.iter().map(String::as_str))
        .chain(from_header)
    {
        let tag = tag.trim();
        if tag.is_empty() || tag.chars().count() > MAX_TAG_CHARS || tags.iter().any(|t| t == tag) {
            continue;
        }
        if tags.len() == MAX_REQUEST_TAGS {
            break;
        }
        tags.push(tag.to_string());
    }
    tags
}

/// A request's `spend_logs_metadata`: the body's `metadata.spend_logs_metadata` object, with the
/// keys of the `x-litellm-spend-logs-metadata` header's JSON object it does not set. `None` when
/// neither gives an object, or when the result is over [`MAX_SPEND_LOGS_METADATA_BYTES`].
pub fn spend_logs_metadata(metadata: Option<&Value>, header: Option<&str>) -> Option<Value> {
    let mut merged = match metadata.and_then(|m| m.get("spend_logs_metadata")) {
        Some(Value::Object(m)) => m.clone(),
        _ => serde_json::Map::new(),
    };
    if let Some(raw) = header {
        match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(h)) => {
                for (k, v) in h {
                    merged.entry(k).or_insert(v);
                }
            }
            _ => tracing::debug!("x-litellm-spend-logs-metadata is not a JSON object; ignored"),
        }
    }
    if merged.is_empty() {
        return None;
    }
    let merged = Value::Object(merged);
    let size = merged.to_string().len();
    if size > MAX_SPEND_LOGS_METADATA_BYTES {
        tracing::warn!(
            bytes = size,
            max = MAX_SPEND_LOGS_METADATA_BYTES,
            "spend_logs_metadata too large; not stored"
        );
        return None;
    }
    Some(merged)
}

/// `value` as JSON text of at most [`MAX_STORED_JSON_BYTES`]: whole when it fits, else its text
/// cut at a character boundary, as a JSON string noting how many bytes were cut.
pub fn bounded_json(value: &Value) -> String {
    let text = value.to_string();
    bounded_text(text)
}

fn bounded_text(text: String) -> String {
    if text.len() <= MAX_STORED_JSON_BYTES {
        return text;
    }
    let mut end = MAX_STORED_JSON_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end;
    Value::String(format!("{}... ({cut} bytes truncated)", &text[..end])).to_string()
}

/// The request's messages as a spend-log row keeps them: `messages` (chat), `prompt`
/// (completions) or `input` (embeddings).
fn request_messages(req: &crate::llm::LlmRequest) -> Option<String> {
    let field = match req.kind {
        CallKind::Chat => "messages",
        CallKind::Completion => "prompt",
        CallKind::Embedding | CallKind::Moderation | CallKind::Speech | CallKind::Responses => {
            "input"
        }
        CallKind::ImageGeneration
        | CallKind::ImageEdit
        | CallKind::Transcription
        | CallKind::Translation => "prompt",
        CallKind::Rerank => "query",
    };
    req.body.get(field).map(bounded_json)
}

/// LiteLLM's `call_type` of a request relayed to a provider's own API (a pass-through route).
pub const PASS_THROUGH_CALL_TYPE: &str = "pass_through_endpoint";

/// LiteLLM's `call_type` of a request.
pub fn call_type(kind: CallKind) -> &'static str {
    match kind {
        CallKind::Chat => "acompletion",
        CallKind::Completion => "atext_completion",
        CallKind::Embedding => "aembedding",
        CallKind::ImageGeneration => "aimage_generation",
        CallKind::ImageEdit => "aimage_edit",
        CallKind::Moderation => "amoderation",
        // LiteLLM has no call type of its own for translations: they are transcriptions.
        CallKind::Transcription | CallKind::Translation => "atranscription",
        CallKind::Speech => "aspeech",
        CallKind::Rerank => "arerank",
        CallKind::Responses => "aresponses",
    }
}

/// Whom a spend-log row is charged to: a virtual key (its hash) with its user, team and
/// organization; all `None` for the master key.
#[derive(Debug, Clone, Default)]
pub struct Owner {
    pub token: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub organization_id: Option<String>,
}

/// Who made a request, for its spend-log row.
pub struct SpendContext {
    tracker: Tracker,
    ledger: Arc<Ledger>,
    request_id: String,
    call_type: &'static str,
    api_key: String,
    user_id: Option<String>,
    team_id: Option<String>,
    organization_id: Option<String>,
    end_user: Option<String>,
    key_alias: Option<String>,
    start_time: i64,
    /// The request's estimated cost held against its budgets until its spend is recorded.
    reservation: Mutex<Option<Reservation>>,
    /// Who hears of the finished request (metrics, log tailing, callbacks).
    observers: Arc<crate::observability::Observers>,
    /// The model the client asked for, before aliases.
    requested_model: String,
    team_alias: Option<String>,
    /// Prometheus metrics, for the per-attempt and fallback counts of the pipeline.
    metrics: Option<Arc<crate::observability::metrics::Metrics>>,
    /// The budgets as loaded, for the remaining-budget gauges.
    budgets: crate::observability::metrics::BudgetsAtStart,
    user_email: Option<String>,
    /// The request's tags, as the row's JSON list.
    request_tags: String,
    spend_logs_metadata: Option<Value>,
    requester_ip_address: Option<String>,
    /// The request's messages, kept only when the row (`store_prompts_in_spend_logs`) or the
    /// logging callbacks ([`MessageLogging::On`]) want them.
    messages: Option<String>,
    /// `store_prompts_in_spend_logs`: the row keeps the messages and the response.
    store_prompts: bool,
    /// What the logging callbacks get of them.
    message_logging: MessageLogging,
    response: Mutex<Option<String>>,
    /// The request's trace, with traces on.
    trace: Option<crate::observability::traces::RequestTrace>,
    /// The request's place among the running requests, for the hanging-request alert.
    _in_flight: Option<crate::observability::alerting::InFlight>,
    /// The call's kind, to assemble a relayed stream into the response kept; `None` for a
    /// pass-through request, whose provider-native response is never assembled.
    kind: Option<CallKind>,
}

/// Where the request went, known once a deployment answered.
#[derive(Default, Clone)]
pub struct Served {
    pub model: String,
    pub model_id: Option<String>,
    pub model_group: Option<String>,
    pub api_base: Option<String>,
    /// The provider's response id (`chatcmpl-…`), once the response (or its stream) told it.
    pub response_id: Option<String>,
    /// The response-cache key, when the request consulted the cache.
    pub cache_key: Option<String>,
    /// Answered from the response cache.
    pub cache_hit: bool,
    /// The serving deployment's provider.
    pub provider: Option<String>,
    /// The HTTP status the client got (0: 200).
    pub status_code: u16,
    /// A stream's time to its first byte.
    pub time_to_first_token: Option<std::time::Duration>,
}

impl SpendContext {
    /// The spend context of one admitted request: the gateway's spend tracker, ledger and
    /// observers, who made it, and what its row keeps of the request (tags, `spend_logs_metadata`,
    /// the client's address and, with `store_prompts_in_spend_logs`, its messages).
    ///
    /// The client's address is the connection's peer: no trusted-proxy setting exists, so
    /// `X-Forwarded-For` (which any client can set) is not believed.
    pub fn new(
        state: &crate::state::AppState,
        request_id: &str,
        http: &actix_web::HttpRequest,
        req: &crate::llm::LlmRequest,
        caller: &Caller,
        end_user: Option<&str>,
        requested_model: &str,
    ) -> Self {
        let kind = req.kind;
        let p = caller.principal();
        let (tracker, ledger) = (state.spend.clone(), state.ledger.clone());
        let header = |name: &str| http.headers().get(name).and_then(|v| v.to_str().ok());
        let metadata = req.gateway.metadata.as_ref();
        let tags = request_tags(
            req.gateway.tags.as_ref(),
            metadata,
            header("x-litellm-tags"),
        );
        let store_prompts = state.config.store_prompts_in_spend_logs();
        let message_logging = state.message_logging;
        let keep = store_prompts || message_logging == MessageLogging::On;
        Self {
            request_tags: serde_json::to_string(&tags).unwrap_or_else(|_| "[]".into()),
            spend_logs_metadata: spend_logs_metadata(
                metadata,
                header("x-litellm-spend-logs-metadata"),
            ),
            requester_ip_address: http.peer_addr().map(|a| a.ip().to_string()),
            messages: keep.then(|| request_messages(req)).flatten(),
            store_prompts,
            message_logging,
            response: Mutex::new(None),
            _in_flight: state
                .alerting
                .as_ref()
                .and_then(|a| a.begin(request_id, requested_model)),
            kind: Some(kind),
            observers: state.observers.clone(),
            metrics: state.metrics.clone(),
            budgets: crate::observability::metrics::BudgetsAtStart::of(caller),
            user_email: p
                .and_then(|p| p.user.as_ref())
                .and_then(|u| u.alias.clone()),
            requested_model: requested_model.to_string(),
            team_alias: p
                .and_then(|p| p.team.as_ref())
                .and_then(|t| t.alias.clone()),
            tracker,
            ledger,
            request_id: request_id.to_string(),
            call_type: call_type(kind),
            api_key: p.map(|p| p.key.token.clone()).unwrap_or_default(),
            user_id: p.and_then(|p| p.key.user_id.clone()),
            team_id: p.and_then(|p| p.key.team_id.clone()),
            organization_id: p.and_then(|p| p.key.organization_id.clone()),
            end_user: end_user.map(str::to_string),
            key_alias: p.and_then(|p| p.key.key_alias.clone()),
            start_time: crate::time::now_ms(),
            reservation: Mutex::new(None),
            trace: None,
        }
    }

    /// The spend context of a pass-through request (`call_type` `pass_through_endpoint`, as in
    /// LiteLLM): who made it, its tags and `spend_logs_metadata` from the `x-litellm-tags` and
    /// `x-litellm-spend-logs-metadata` headers, the client's address and, when kept, the body it
    /// sent (bounded). `caller` is `None` on a route without authentication.
    pub fn pass_through(
        state: &crate::state::AppState,
        request_id: &str,
        http: &actix_web::HttpRequest,
        caller: Option<&Caller>,
        requested_model: &str,
        body: &[u8],
    ) -> Self {
        let p = caller.and_then(Caller::principal);
        let header = |name: &str| http.headers().get(name).and_then(|v| v.to_str().ok());
        let tags = request_tags(None, None, header("x-litellm-tags"));
        let store_prompts = state.config.store_prompts_in_spend_logs();
        let message_logging = state.message_logging;
        let keep = store_prompts || message_logging == MessageLogging::On;
        let messages =
            (keep && !body.is_empty()).then(|| match serde_json::from_slice::<Value>(body) {
                Ok(v) => bounded_json(&v),
                Err(_) => {
                    bounded_text(Value::String(String::from_utf8_lossy(body).into()).to_string())
                }
            });
        Self {
            request_tags: serde_json::to_string(&tags).unwrap_or_else(|_| "[]".into()),
            spend_logs_metadata: spend_logs_metadata(None, header("x-litellm-spend-logs-metadata")),
            requester_ip_address: http.peer_addr().map(|a| a.ip().to_string()),
            messages,
            store_prompts,
            message_logging,
            response: Mutex::new(None),
            _in_flight: state
                .alerting
                .as_ref()
                .and_then(|a| a.begin(request_id, requested_model)),
            kind: None,
            observers: state.observers.clone(),
            metrics: state.metrics.clone(),
            budgets: caller
                .map(crate::observability::metrics::BudgetsAtStart::of)
                .unwrap_or_default(),
            user_email: p
                .and_then(|p| p.user.as_ref())
                .and_then(|u| u.alias.clone()),
            requested_model: requested_model.to_string(),
            team_alias: p
                .and_then(|p| p.team.as_ref())
                .and_then(|t| t.alias.clone()),
            tracker: state.spend.clone(),
            ledger: state.ledger.clone(),
            request_id: request_id.to_string(),
            call_type: PASS_THROUGH_CALL_TYPE,
            api_key: p.map(|p| p.key.token.clone()).unwrap_or_default(),
            user_id: p.and_then(|p| p.key.user_id.clone()),
            team_id: p.and_then(|p| p.key.team_id.clone()),
            organization_id: p.and_then(|p| p.key.organization_id.clone()),
            end_user: None,
            key_alias: p.and_then(|p| p.key.key_alias.clone()),
            start_time: crate::time::now_ms(),
            reservation: Mutex::new(None),
            trace: None,
        }
    }

    /// The spend context of a call that is not an LLM request (the files and batches APIs:
    /// `acreate_file`, `acreate_batch`, `aretrieve_batch`), made by `caller`: its row names
    /// the caller's key, user, team and organization, and keeps no messages.
    pub fn for_caller(
        state: &crate::state::AppState,
        request_id: &str,
        http: &actix_web::HttpRequest,
        caller: &Caller,
        call_type: &'static str,
        requested_model: &str,
    ) -> Self {
        let p = caller.principal();
        let owner = Owner {
            token: p.map(|p| p.key.token.clone()),
            user_id: p.and_then(|p| p.key.user_id.clone()),
            team_id: p.and_then(|p| p.key.team_id.clone()),
            organization_id: p.and_then(|p| p.key.organization_id.clone()),
        };
        let mut ctx = Self::for_owner(state, request_id, call_type, owner, requested_model);
        ctx.metrics = state.metrics.clone();
        ctx.budgets = crate::observability::metrics::BudgetsAtStart::of(caller);
        ctx.user_email = p
            .and_then(|p| p.user.as_ref())
            .and_then(|u| u.alias.clone());
        ctx.team_alias = p
            .and_then(|p| p.team.as_ref())
            .and_then(|t| t.alias.clone());
        ctx.key_alias = p.and_then(|p| p.key.key_alias.clone());
        ctx.requester_ip_address = http.peer_addr().map(|a| a.ip().to_string());
        ctx
    }

    /// The spend context of a call made for `owner` rather than by the client at hand (a
    /// batch's cost, recorded for the key that created the batch whoever read it first).
    pub fn for_owner(
        state: &crate::state::AppState,
        request_id: &str,
        call_type: &'static str,
        owner: Owner,
        requested_model: &str,
    ) -> Self {
        Self {
            tracker: state.spend.clone(),
            ledger: state.ledger.clone(),
            request_id: request_id.to_string(),
            call_type,
            api_key: owner.token.unwrap_or_default(),
            user_id: owner.user_id,
            team_id: owner.team_id,
            organization_id: owner.organization_id,
            end_user: None,
            key_alias: None,
            start_time: crate::time::now_ms(),
            reservation: Mutex::new(None),
            observers: state.observers.clone(),
            requested_model: requested_model.to_string(),
            team_alias: None,
            metrics: None,
            budgets: Default::default(),
            user_email: None,
            request_tags: "[]".into(),
            spend_logs_metadata: None,
            requester_ip_address: None,
            messages: None,
            store_prompts: false,
            message_logging: state.message_logging,
            response: Mutex::new(None),
            trace: None,
            _in_flight: None,
            kind: None,
        }
    }

    /// With traces on: the request's trace, whose span the finished request records.
    pub fn with_trace(mut self, trace: Option<crate::observability::traces::RequestTrace>) -> Self {
        self.trace = trace;
        self
    }

    /// The request's trace, with traces on.
    pub fn trace(&self) -> Option<&crate::observability::traces::RequestTrace> {
        self.trace.as_ref()
    }

    /// The spend log's call type (`acompletion`…).
    pub fn call_type(&self) -> &'static str {
        self.call_type
    }

    /// The request's Prometheus metrics scope (who made it), when metrics are collected.
    pub fn metrics(&self) -> Option<crate::observability::metrics::Scope<'_>> {
        Some(crate::observability::metrics::Scope {
            metrics: self.metrics.as_deref()?,
            who: crate::observability::metrics::Who {
                hashed_api_key: &self.api_key,
                api_key_alias: self.key_alias.as_deref().unwrap_or_default(),
                team: self.team_id.as_deref().unwrap_or_default(),
                team_alias: self.team_alias.as_deref().unwrap_or_default(),
                user: self.user_id.as_deref().unwrap_or_default(),
                end_user: self.end_user.as_deref().unwrap_or_default(),
                requested_model: &self.requested_model,
            },
        })
    }

    /// Whether the response is kept (for the row, `store_prompts_in_spend_logs`, or for the
    /// logging callbacks): when not, nothing is copied.
    pub fn keeps_response(&self) -> bool {
        self.store_prompts || self.message_logging == MessageLogging::On
    }

    /// Keep the response body for the row and the callbacks, when [`Self::keeps_response`].
    /// A body that is not JSON is kept as a JSON string. Bounded by [`MAX_STORED_JSON_BYTES`].
    pub fn keep_response(&self, body: &[u8]) {
        self.keep(body, false);
    }

    /// [`Self::keep_response`] for a body the gateway already parsed or wrote as JSON (a
    /// translated provider answer, a cache hit, an assembled stream): not checked again.
    pub fn keep_json_response(&self, body: &[u8]) {
        self.keep(body, true);
    }

    fn keep(&self, body: &[u8], known_json: bool) {
        if !self.keeps_response() {
            return;
        }
        // JSON that fits is kept as it is (checked once, not rebuilt: this runs per request).
        let fits = body.len() <= MAX_STORED_JSON_BYTES
            && (known_json || serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok());
        let text = match std::str::from_utf8(body) {
            Ok(text) if fits => text.to_string(),
            _ => match serde_json::from_slice::<Value>(body) {
                Ok(v) => bounded_json(&v),
                Err(_) => {
                    bounded_text(Value::String(String::from_utf8_lossy(body).into()).to_string())
                }
            },
        };
        *self.response.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
    }

    /// Keep a relayed stream's response: its chunks (as the relay captured them, see
    /// [`crate::sse::SseRelay::capture`]) assembled into the complete response by the cache's
    /// assembler ([`crate::caching::replay::assemble`]). A stream cut short keeps what it relayed.
    pub fn keep_stream(&self, chunks: &[bytes::Bytes]) {
        if chunks.is_empty() || !self.keeps_response() {
            return;
        }
        let Some(kind) = self.kind else {
            return;
        };
        // A Responses API stream spoken natively ends with its whole response; one spoken in
        // chat is assembled as a chat stream.
        if kind == CallKind::Responses {
            if let Some(response) = crate::responses_api::completed_response(chunks) {
                self.keep_json_response(&response);
                return;
            }
        }
        let kind = match kind {
            CallKind::Responses => CallKind::Chat,
            kind => kind,
        };
        if let Some(done) = crate::caching::replay::assemble(kind, chunks) {
            self.keep_json_response(&done.body);
        }
    }

    /// Hold the request's budget reservation until its spend is recorded (or this is dropped).
    pub fn hold(&self, reservation: Reservation) {
        *self.reservation.lock().unwrap_or_else(|p| p.into_inner()) = Some(reservation);
    }

    /// Record the request: `error` is `None` for a success.
    pub fn record(&self, served: &Served, usage: Usage, cost: f64, error: Option<&str>) {
        let metadata = serde_json::to_string(&Metadata {
            user_api_key_alias: self.key_alias.as_deref(),
            error_information: error.map(|e| e.chars().take(500).collect()),
            spend_logs_metadata: self.spend_logs_metadata.as_ref(),
        })
        .unwrap_or_else(|_| "{}".into());
        let mut log = SpendLog {
            request_id: self.request_id.clone(),
            call_type: self.call_type.to_string(),
            api_key: self.api_key.clone(),
            // A failed request costs what the provider billed for it (a stream cut short after it
            // started: its prompt and what was relayed); callers pass 0 when nothing was billed.
            spend: cost,
            total_tokens: usage.total_tokens as i64,
            prompt_tokens: usage.prompt_tokens as i64,
            completion_tokens: usage.completion_tokens as i64,
            start_time: self.start_time,
            end_time: crate::time::now_ms(),
            model: served.model.clone(),
            model_id: served.model_id.clone(),
            model_group: served.model_group.clone(),
            api_base: served.api_base.clone(),
            user_id: self.user_id.clone(),
            team_id: self.team_id.clone(),
            organization_id: self.organization_id.clone(),
            end_user: self.end_user.clone(),
            status: if error.is_none() {
                "success"
            } else {
                "failure"
            }
            .to_string(),
            metadata,
            response_id: served.response_id.clone(),
            cache_hit: served.cache_hit,
            cache_key: served.cache_key.clone(),
            request_tags: self.request_tags.clone(),
            requester_ip_address: self.requester_ip_address.clone(),
            messages: None,
            response: None,
        };
        let response = self
            .response
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if self.store_prompts {
            log.messages = self.messages.clone();
            log.response = response.clone();
        }
        self.ledger.add(&log, 1.0);
        // The real cost now counts: the estimate is given back.
        drop(
            self.reservation
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let listening = self.observers.listening();
        if listening || self.trace.is_some() {
            // The event's row carries the prompt and the completion as the callbacks may see
            // them, whatever the spend log keeps.
            let mut event_log = log.clone();
            (event_log.messages, event_log.response) = match self.message_logging {
                MessageLogging::On => (self.messages.clone(), response),
                MessageLogging::Redacted => (
                    Some(MessageLogging::redacted_messages()),
                    Some(MessageLogging::redacted_response()),
                ),
                MessageLogging::Off => (None, None),
            };
            let event = crate::observability::RequestEvent {
                log: event_log,
                requested_model: self.requested_model.clone(),
                key_alias: self.key_alias.clone(),
                team_alias: self.team_alias.clone(),
                provider: served.provider.clone(),
                status_code: match served.status_code {
                    0 => 200,
                    s => s,
                },
                error: error.map(str::to_string),
                time_to_first_token_ms: served.time_to_first_token.map(|d| d.as_millis() as u64),
                user_email: self.user_email.clone(),
                remaining_budget: self.budgets.remaining(
                    |kind, id| self.ledger.pending(kind, id),
                    &self.api_key,
                    self.user_id.as_deref(),
                    self.team_id.as_deref(),
                ),
            };
            if let Some(trace) = &self.trace {
                trace.request_finished(&event);
            }
            if listening {
                self.observers.publish(event);
            }
        }
        self.tracker.record(log);
    }
}

/// Refuse a request whose key, user, team or organization has spent its `max_budget`, or whose key
/// has spent its `model_max_budget` for the requested model group (this instance's unwritten
/// spend included), and reserve the request's `estimate` against each of those budgets until it
/// settles. A budget admits a request only while its spend plus the estimates of the requests in
/// flight is below it; so on one instance a budget is exceeded by at most the cost of the last
/// request it admitted plus the amount by which the requests in flight with it cost more than
/// estimated. A key past its `soft_budget` is still served; the crossing is logged once per key
/// and process.
pub fn check_budgets(
    caller: &Caller,
    model: &str,
    ledger: &Arc<Ledger>,
    status: u16,
    estimate: &dyn Fn() -> f64,
) -> Result<Reservation, GatewayError> {
    let Some(p) = caller.principal() else {
        return Ok(Reservation::default());
    };
    let mut budgets: Vec<Budget> = Vec::new();
    fn push<'a>(
        budgets: &mut Vec<Budget<'a>>,
        kind: &'static str,
        id: std::borrow::Cow<'a, str>,
        stored: f64,
        max: Option<f64>,
    ) {
        if let Some(max) = max {
            budgets.push(Budget {
                kind,
                id,
                stored,
                max,
            });
        }
    }
    push(
        &mut budgets,
        "key",
        p.key.token.as_str().into(),
        p.key.spend,
        p.key.number("max_budget"),
    );
    if let Some(u) = &p.user {
        push(
            &mut budgets,
            "user",
            u.id.as_str().into(),
            u.spend,
            u.number("max_budget"),
        );
    }
    if let Some(t) = &p.team {
        push(
            &mut budgets,
            "team",
            t.id.as_str().into(),
            t.spend,
            t.number("max_budget"),
        );
    }
    if let Some(o) = &p.organization {
        push(
            &mut budgets,
            "organization",
            o.id.as_str().into(),
            o.spend,
            o.number("max_budget"),
        );
    }
    if let Some(b) = p.model_budgets.iter().find(|b| b.model == model) {
        push(
            &mut budgets,
            "key_model",
            format!("{}:{model}", p.key.token).into(),
            b.spent,
            Some(b.limit),
        );
    }
    if budgets.is_empty() && p.key.number("soft_budget").is_none() {
        return Ok(Reservation::default());
    }
    // The estimate is worked out only when a budget applies.
    let estimate = if budgets.is_empty() { 0.0 } else { estimate() };
    let reservation = match ledger.reserve(&budgets, estimate) {
        Ok(r) => r,
        Err((i, spent)) => {
            let b = &budgets[i];
            let max = b.max;
            let id = &b.id;
            let message = match b.kind {
                "key_model" => format!(
                    "Budget has been exceeded! Current spend for model: {model}: {spent}; Max Budget for Model: {max}"
                ),
                kind => {
                    let who = match kind {
                        "key" => "Key".to_string(),
                        "user" => format!("User={id}"),
                        "team" => format!("Team={id}"),
                        _ => format!("Organization={id}"),
                    };
                    format!("Budget has been exceeded! {who} Current cost: {spent}, Max budget: {max}")
                }
            };
            let subject = match b.kind {
                "key" | "key_model" => p
                    .key
                    .key_alias
                    .clone()
                    .unwrap_or_else(|| p.key.key_name.clone()),
                _ => id.to_string(),
            };
            ledger.budget_alert(
                &format!("{}:{subject}", b.kind),
                format!("{} `{subject}` was refused: {message}", b.kind),
            );
            return Err(GatewayError::BudgetExceeded { message, status });
        }
    };
    if let Some(soft) = p.key.number("soft_budget") {
        let spent = p.key.spend + ledger.pending("key", &p.key.token);
        if spent >= soft && ledger.first_soft_budget_crossing(&p.key.token) {
            tracing::warn!(
                key_alias = p.key.key_alias.as_deref().unwrap_or(""),
                key_name = p.key.key_name,
                spend = spent,
                soft_budget = soft,
                "key crossed its soft budget"
            );
            let name = p.key.key_alias.as_deref().unwrap_or(&p.key.key_name);
            ledger.budget_alert(
                &format!("soft:{name}"),
                format!(
                    "key `{name}` crossed its soft budget: spend {spent:.6}, soft budget {soft}"
                ),
            );
        }
    }
    Ok(reservation)
}

/// Refuse a request whose end user has spent its `max_budget` (its own or its budget's), and
/// reserve the request's `estimate` against it, as [`check_budgets`] does.
pub fn check_end_user_budget(
    id: &str,
    limits: &crate::limits::EndUserLimits,
    ledger: &Arc<Ledger>,
    status: u16,
    estimate: &dyn Fn() -> f64,
) -> Result<Reservation, GatewayError> {
    let Some(max) = limits.max_budget else {
        return Ok(Reservation::default());
    };
    let budget = [Budget {
        kind: "end_user",
        id: id.into(),
        stored: limits.spend,
        max,
    }];
    ledger.reserve(&budget, estimate()).map_err(|(_, spent)| {
        let message = format!(
            "Budget has been exceeded! End User={id} over budget. Spend={spent}, Budget={max}"
        );
        ledger.budget_alert(
            &format!("end_user:{id}"),
            format!("end user `{id}` was refused: {message}"),
        );
        GatewayError::BudgetExceeded { message, status }
    })
}

/// A key's `model_max_budget` entries with the spend the database holds for each model within its
/// window (the spend-log rows of the key for that model group).
pub async fn model_budgets(
    store: &dyn crate::store::Store,
    key: &crate::store::KeyRecord,
) -> Result<Vec<crate::auth::ModelBudget>, crate::store::StoreError> {
    let mut budgets = crate::auth::ModelBudget::parse_all(&key.data);
    let now = crate::time::now_ms();
    for b in &mut budgets {
        let filter = crate::store::SpendFilter {
            api_key: Some(key.token.clone()),
            start_time: b.period_ms.map(|p| now - p),
            ..Default::default()
        };
        let rows = store
            .spend_rollup(&filter, crate::store::SpendGroup::Key)
            .await?;
        b.spent = rows
            .iter()
            .filter(|r| r.model.as_deref() == Some(b.model.as_str()))
            .map(|r| r.spend)
            .sum();
    }
    Ok(budgets)
}

/// A row's `metadata` as LiteLLM shows it: the stored fields plus the key, user, team and
/// organization from the row's columns.
fn metadata_json(log: &SpendLog) -> Value {
    let mut m = match serde_json::from_str::<Value>(&log.metadata) {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    m.insert("user_api_key".into(), json!(log.api_key));
    m.entry("user_api_key_alias").or_insert(Value::Null);
    m.insert("user_api_key_user_id".into(), json!(log.user_id));
    m.insert("user_api_key_team_id".into(), json!(log.team_id));
    m.insert("user_api_key_org_id".into(), json!(log.organization_id));
    m.entry("spend_logs_metadata").or_insert(Value::Null);
    m.insert(
        "requester_ip_address".into(),
        json!(log.requester_ip_address),
    );
    Value::Object(m)
}

/// A spend-log row as `/spend/logs` shows it (LiteLLM's field names).
pub fn log_json(log: &SpendLog) -> Value {
    json!({
        // LiteLLM's request_id is the provider's response id; the call id is litellm_call_id.
        "request_id": log.response_id.as_deref().unwrap_or(&log.request_id),
        "litellm_call_id": log.request_id,
        "call_type": log.call_type,
        "api_key": log.api_key,
        "spend": log.spend,
        "total_tokens": log.total_tokens,
        "prompt_tokens": log.prompt_tokens,
        "completion_tokens": log.completion_tokens,
        "startTime": crate::time::iso8601(log.start_time),
        "endTime": crate::time::iso8601(log.end_time),
        "request_duration_ms": log.end_time - log.start_time,
        "model": log.model,
        "model_id": log.model_id,
        "model_group": log.model_group,
        "api_base": log.api_base,
        "user": log.user_id,
        "team_id": log.team_id,
        "organization_id": log.organization_id,
        "end_user": log.end_user,
        "status": log.status,
        "metadata": metadata_json(log),
        "cache_hit": if log.cache_hit { "True" } else { "False" },
        "cache_key": log.cache_key,
        "request_tags": serde_json::from_str::<Value>(&log.request_tags).unwrap_or_else(|_| json!([])),
        "requester_ip_address": log.requester_ip_address,
        // LiteLLM shows `{}` when prompts are not stored.
        "messages": stored_json(log.messages.as_deref()),
        "response": stored_json(log.response.as_deref()),
    })
}

/// A stored `messages` / `response` column as JSON: `{}` when nothing was stored.
fn stored_json(text: Option<&str>) -> Value {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_else(|| json!({}))
}

/// How often budgets are checked for their `budget_reset_at` (`TOLLGATE_BUDGET_RESET_SECONDS`).
pub const DEFAULT_BUDGET_RESET_EVERY: Duration = Duration::from_secs(60);
const BUDGET_RESET_ENV: &str = "TOLLGATE_BUDGET_RESET_SECONDS";

/// The budget-reset interval from the environment; `0` turns resets off on this instance.
pub fn budget_reset_every() -> Option<Duration> {
    match std::env::var(BUDGET_RESET_ENV) {
        Err(_) => Some(DEFAULT_BUDGET_RESET_EVERY),
        Ok(raw) => match raw.trim().parse::<f64>() {
            Ok(0.0) => None,
            Ok(s) if s > 0.0 && s.is_finite() => Some(Duration::from_secs_f64(s.max(0.1))),
            _ => {
                tracing::warn!(
                    "{BUDGET_RESET_ENV}={raw:?} is not a number of seconds; using {} s",
                    DEFAULT_BUDGET_RESET_EVERY.as_secs()
                );
                Some(DEFAULT_BUDGET_RESET_EVERY)
            }
        },
    }
}

/// Background budget resets: every `every`, zero the spend of each key, user, team, organization
/// and end user whose `budget_reset_at` has passed and move that time one `budget_duration` on
/// (see [`crate::store::Store::reset_due_budgets`]); then drop the cached records that showed the
/// old spend. Every instance runs it; the store's compare-and-set resets each row once.
pub fn spawn_budget_resets(state: actix_web::web::Data<crate::state::AppState>, every: Duration) {
    actix_web::rt::spawn(async move {
        let mut reported = false;
        loop {
            actix_web::rt::time::sleep(every).await;
            let store = match state.db.store() {
                Ok(s) => s.clone(),
                Err(_) => continue,
            };
            match store.reset_due_budgets(crate::time::now_ms()).await {
                Ok(reset) => {
                    reported = false;
                    for r in &reset {
                        tracing::info!(
                            kind = r.kind,
                            id = r.id,
                            next_reset = crate::time::iso8601(r.next_reset),
                            "budget reset"
                        );
                        forget_cached(&state, r.kind, &r.id);
                    }
                }
                Err(e) => {
                    if !reported {
                        tracing::warn!(error = %e, "budget reset failed; retrying");
                        reported = true;
                    }
                }
            }
        }
    });
}

/// How often old spend-log rows are looked for when `maximum_spend_logs_retention_period` is set
/// (at most the period itself); `TOLLGATE_SPEND_LOG_RETENTION_SWEEP_SECONDS` overrides it.
pub const DEFAULT_RETENTION_SWEEP_EVERY: Duration = Duration::from_secs(3600);
const RETENTION_SWEEP_ENV: &str = "TOLLGATE_SPEND_LOG_RETENTION_SWEEP_SECONDS";
/// Rows deleted per statement by a retention sweep.
const RETENTION_DELETE_CHUNK: i64 = 1000;

/// The retention sweep interval for `period`: the environment's, else the default, never longer
/// than the period.
pub fn retention_sweep_every(period: Duration) -> Duration {
    let every = std::env::var(RETENTION_SWEEP_ENV)
        .ok()
        .and_then(|raw| raw.trim().parse::<f64>().ok())
        .filter(|s| *s > 0.0 && s.is_finite())
        .map(|s| Duration::from_secs_f64(s.max(0.1)))
        .unwrap_or(DEFAULT_RETENTION_SWEEP_EVERY);
    every.min(period)
}

/// Background spend-log retention: every `every`, delete the rows that started more than
/// `period` ago, [`RETENTION_DELETE_CHUNK`] rows per statement. Every instance runs it; deleting
/// rows another instance already deleted does nothing, so instances never conflict (only the
/// first sweep after a row ages out finds it). Spend already on keys, users and teams is kept.
pub fn spawn_spend_log_retention(
    state: actix_web::web::Data<crate::state::AppState>,
    period: Duration,
    every: Duration,
) {
    let period_ms = period.as_millis() as i64;
    actix_web::rt::spawn(async move {
        let mut reported = false;
        loop {
            actix_web::rt::time::sleep(every).await;
            let store = match state.db.store() {
                Ok(s) => s.clone(),
                Err(_) => continue,
            };
            let cutoff = crate::time::now_ms() - period_ms;
            match store
                .delete_spend_logs_before(cutoff, RETENTION_DELETE_CHUNK)
                .await
            {
                Ok(deleted) => {
                    reported = false;
                    if deleted > 0 {
                        tracing::info!(
                            deleted,
                            before = crate::time::iso8601(cutoff),
                            "old spend-log rows deleted"
                        );
                    }
                }
                Err(e) => {
                    if !reported {
                        tracing::warn!(error = %e, "spend-log retention sweep failed; retrying");
                        reported = true;
                    }
                }
            }
        }
    });
}

/// Drop cached records that include this entity, so the next request sees its reset spend.
fn forget_cached(state: &crate::state::AppState, kind: &str, id: &str) {
    if kind == "end user" {
        state.end_users.invalidate(id);
        return;
    }
    let Some(keys) = state.auth.key_cache() else {
        return;
    };
    if kind == "key" {
        keys.invalidate(id);
        return;
    }
    let (kind, id) = (kind.to_string(), id.to_string());
    keys.invalidate_where(move |p: &Arc<Principal>| {
        let matches =
            |e: &Option<crate::store::EntityRecord>| e.as_ref().is_some_and(|e| e.id == id);
        match kind.as_str() {
            "user" => matches(&p.user),
            "team" => matches(&p.team),
            _ => matches(&p.organization),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_budget(max: f64) -> Vec<Budget<'static>> {
        vec![Budget {
            kind: "key",
            id: "k".into(),
            stored: 0.25,
            max,
        }]
    }

    #[test]
    fn tags_merge_body_metadata_and_header_deduplicated_and_bounded() {
        let body = json!(["prod", " team-a ", 7, ""]);
        let metadata = json!({"tags": ["team-a", "job:1"]});
        let tags = request_tags(Some(&body), Some(&metadata), Some("job:1, web ,,prod"));
        assert_eq!(tags, vec!["prod", "team-a", "job:1", "web"]);
        assert!(request_tags(None, Some(&json!({"tags": "not-a-list"})), None).is_empty());
        let long = "x".repeat(MAX_TAG_CHARS + 1);
        assert!(request_tags(None, None, Some(&long)).is_empty());
        let many: String = (0..100).map(|i| format!("t{i},")).collect();
        let tags = request_tags(None, None, Some(&many));
        assert_eq!(tags.len(), MAX_REQUEST_TAGS);
        assert_eq!(tags[0], "t0");
    }

    #[test]
    fn spend_logs_metadata_comes_from_the_body_then_the_header() {
        let metadata = json!({"spend_logs_metadata": {"job": "body", "a": 1}});
        let merged = spend_logs_metadata(Some(&metadata), Some(r#"{"job": "header", "b": 2}"#));
        assert_eq!(merged, Some(json!({"job": "body", "a": 1, "b": 2})));
        assert_eq!(
            spend_logs_metadata(None, Some(r#"{"b": 2}"#)),
            Some(json!({"b": 2}))
        );
        assert_eq!(spend_logs_metadata(None, Some("not json")), None);
        assert_eq!(spend_logs_metadata(Some(&json!({"tags": []})), None), None);
        let huge = json!({"spend_logs_metadata": {"x": "y".repeat(MAX_SPEND_LOGS_METADATA_BYTES)}});
        assert_eq!(spend_logs_metadata(Some(&huge), None), None);
    }

    #[test]
    fn stored_prompts_are_bounded_and_stay_json() {
        let small = json!([{"role": "user", "content": "hi"}]);
        assert_eq!(bounded_json(&small), small.to_string());
        // Multi-byte characters: the cut lands on a character boundary.
        let big = json!([{"role": "user", "content": "é".repeat(MAX_STORED_JSON_BYTES)}]);
        let stored = bounded_json(&big);
        let back: Value = serde_json::from_str(&stored).expect("valid JSON");
        let text = back.as_str().expect("a JSON string");
        assert!(text.len() <= MAX_STORED_JSON_BYTES + 64, "{}", text.len());
        assert!(
            text.ends_with("bytes truncated)"),
            "{}",
            &text[text.len() - 40..]
        );
        assert_eq!(stored_json(None), json!({}));
        assert_eq!(stored_json(Some(&stored)), back);
    }

    #[test]
    fn a_row_shows_its_tags_address_metadata_and_prompts_in_litellm_shape() {
        let log = SpendLog {
            request_id: "call-1".into(),
            metadata: r#"{"spend_logs_metadata":{"job":"j"}}"#.into(),
            request_tags: r#"["a","b"]"#.into(),
            requester_ip_address: Some("127.0.0.1".into()),
            messages: Some(r#"[{"role":"user","content":"hi"}]"#.into()),
            ..SpendLog::default()
        };
        let shown = log_json(&log);
        assert_eq!(shown["request_tags"], json!(["a", "b"]));
        assert_eq!(shown["requester_ip_address"], "127.0.0.1");
        assert_eq!(
            shown["metadata"]["spend_logs_metadata"],
            json!({"job": "j"})
        );
        assert_eq!(shown["metadata"]["requester_ip_address"], "127.0.0.1");
        assert_eq!(shown["messages"][0]["content"], "hi");
        assert_eq!(shown["response"], json!({}));
        // A row written before the columns existed (or by `Default`) shows no tags.
        let bare = log_json(&SpendLog::default());
        assert_eq!(bare["request_tags"], json!([]));
        assert_eq!(bare["metadata"]["spend_logs_metadata"], Value::Null);
    }

    #[test]
    fn in_flight_estimates_count_against_a_budget_until_released() {
        let ledger = Arc::new(Ledger::default());
        // Stored 0.25: two estimates of 0.5 are admitted (0.25, then 0.75 < 1), the third not.
        let first = ledger.reserve(&key_budget(1.0), 0.5).expect("first");
        let second = ledger.reserve(&key_budget(1.0), 0.5).expect("second");
        assert!((ledger.reserved("key", "k") - 1.0).abs() < 1e-12);
        let (i, spent) = ledger
            .reserve(&key_budget(1.0), 0.5)
            .err()
            .expect("refused");
        assert_eq!(i, 0);
        assert!((spent - 1.25).abs() < 1e-12);
        // A settled request gives its estimate back.
        drop(first);
        assert!((ledger.reserved("key", "k") - 0.5).abs() < 1e-12);
        let third = ledger.reserve(&key_budget(1.0), 0.5).expect("third");
        drop((second, third));
        assert_eq!(ledger.reserved("key", "k"), 0.0);
        // Chained reservations are released together.
        let mut a = ledger.reserve(&key_budget(9.0), 1.0).unwrap();
        a.absorb(ledger.reserve(&key_budget(9.0), 2.0).unwrap());
        assert!((ledger.reserved("key", "k") - 3.0).abs() < 1e-12);
        drop(a);
        assert_eq!(ledger.reserved("key", "k"), 0.0);
    }
}
