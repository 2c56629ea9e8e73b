//! Observability: what the gateway tells the outside about the requests it served.
//!
//! Every request leaves the pipeline through one accounting step (`pipeline::account`), which
//! writes its spend-log row ([`crate::spend::SpendContext::record`]). That row, with the few facts
//! a spend log does not keep, is published once as a [`RequestEvent`] to every [`Observer`] the
//! configuration turned on (Prometheus metrics, live log tailing, logging callbacks, traces).
//!
//! Observers are called on the request's thread, synchronously, after the response's accounting:
//! each must only count or enqueue (never wait, never do I/O on the caller's thread). An observer
//! that sends events somewhere owns a bounded queue and drops, counted, when it is full: a slow or
//! dead receiver never slows or fails a request.

pub mod alerting;
pub mod callbacks;
mod json_object;
pub mod metrics;
pub mod otlp;
pub mod tail;
pub mod traces;

use std::sync::Arc;

use crate::store::SpendLog;

/// One finished request, as observers see it: LiteLLM's standard logging payload, the fields the
/// gateway has.
#[derive(Debug, Clone)]
pub struct RequestEvent {
    /// The spend-log row: call id, call type, key hash, user, team, organization, end user, model,
    /// deployment, tokens, cost, start and end, status, response id, cache hit and key.
    pub log: SpendLog,
    /// The model the client asked for (before key aliases and `model_group_alias`).
    pub requested_model: String,
    pub key_alias: Option<String>,
    pub team_alias: Option<String>,
    /// The serving deployment's provider (`openai`, `anthropic`…), when a deployment served it.
    pub provider: Option<String>,
    /// The HTTP status the client got (a stream that broke after it started: 200).
    pub status_code: u16,
    /// Why it failed (scrubbed of secrets), for a failure.
    pub error: Option<String>,
    /// A stream's time to its first byte from the provider.
    pub time_to_first_token_ms: Option<u64>,
    /// The key's user's `user_email`.
    pub user_email: Option<String>,
    /// What is left of the key's, its user's and its team's `max_budget` after this request.
    pub remaining_budget: metrics::RemainingBudgets,
}

impl RequestEvent {
    pub fn succeeded(&self) -> bool {
        self.log.status == "success"
    }

    /// Milliseconds from the request's start to its end.
    pub fn duration_ms(&self) -> u64 {
        (self.log.end_time - self.log.start_time).max(0) as u64
    }
}

/// Something that wants to know about every finished request.
pub trait Observer: Send + Sync {
    /// Called once per finished request, on the request's thread: count or enqueue, never wait.
    fn request_finished(&self, event: &Arc<RequestEvent>);

    /// Whether it wants events right now (the live tail only while someone reads it): when no
    /// observer does, the event is not even built.
    fn listening(&self) -> bool {
        true
    }
}

/// The observers the configuration turned on.
#[derive(Default)]
pub struct Observers {
    observers: Vec<Arc<dyn Observer>>,
}

impl Observers {
    pub fn add(&mut self, observer: Arc<dyn Observer>) {
        self.observers.push(observer);
    }

    pub fn is_empty(&self) -> bool {
        self.observers.is_empty()
    }

    /// Whether any observer wants an event now (checked before one is built).
    pub fn listening(&self) -> bool {
        self.observers.iter().any(|o| o.listening())
    }

    /// Hand `event` to every observer.
    pub fn publish(&self, event: RequestEvent) {
        if self.observers.is_empty() {
            return;
        }
        let event = Arc::new(event);
        for observer in self.observers.iter().filter(|o| o.listening()) {
            observer.request_finished(&event);
        }
    }
}

/// Publish a request refused before admission (model access, budgets, rate limits): a failure
/// event with the caller and the model asked for, and nothing spent.
pub fn publish_refused(
    observers: &Observers,
    caller: &crate::auth::Caller,
    call_id: &str,
    kind: crate::llm::CallKind,
    requested_model: &str,
    err: &crate::error::GatewayError,
    trace: Option<&traces::RequestTrace>,
) {
    publish_failure(
        observers,
        caller.principal(),
        call_id,
        kind,
        requested_model,
        err,
        trace,
    );
}

/// Publish an LLM request refused because its key was missing, unknown, expired or blocked. Its
/// body was never read, so the model is unknown; the key is not named at all (not even by its
/// hash: a label per made-up key would let anyone fill the metrics' series).
pub fn publish_unauthenticated(
    observers: &Observers,
    kind: crate::llm::CallKind,
    err: &crate::error::GatewayError,
) {
    if !observers.listening() {
        return;
    }
    let call_id = uuid::Uuid::now_v7().to_string();
    publish_failure(observers, None, &call_id, kind, "", err, None);
}

fn publish_failure(
    observers: &Observers,
    p: Option<&crate::auth::Principal>,
    call_id: &str,
    kind: crate::llm::CallKind,
    requested_model: &str,
    err: &crate::error::GatewayError,
    trace: Option<&traces::RequestTrace>,
) {
    let listening = observers.listening();
    if !listening && trace.is_none() {
        return;
    }
    use actix_web::ResponseError as _;
    let now = crate::time::now_ms();
    let error = err.to_string();
    let event = RequestEvent {
        log: SpendLog {
            request_id: call_id.to_string(),
            call_type: crate::spend::call_type(kind).to_string(),
            api_key: p.map(|p| p.key.token.clone()).unwrap_or_default(),
            start_time: now,
            end_time: now,
            model: requested_model.to_string(),
            user_id: p.and_then(|p| p.key.user_id.clone()),
            team_id: p.and_then(|p| p.key.team_id.clone()),
            organization_id: p.and_then(|p| p.key.organization_id.clone()),
            status: "failure".into(),
            metadata: "{}".into(),
            request_tags: "[]".into(),
            ..SpendLog::default()
        },
        requested_model: requested_model.to_string(),
        key_alias: p.and_then(|p| p.key.key_alias.clone()),
        team_alias: p
            .and_then(|p| p.team.as_ref())
            .and_then(|t| t.alias.clone()),
        provider: None,
        status_code: err.status_code().as_u16(),
        error: Some(error),
        time_to_first_token_ms: None,
        user_email: p
            .and_then(|p| p.user.as_ref())
            .and_then(|u| u.alias.clone()),
        remaining_budget: metrics::RemainingBudgets::default(),
    };
    if let Some(trace) = trace {
        trace.request_finished(&event);
    }
    if listening {
        observers.publish(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Seen(Mutex<Vec<String>>);

    impl Observer for Seen {
        fn request_finished(&self, event: &Arc<RequestEvent>) {
            self.0.lock().unwrap().push(event.log.request_id.clone());
        }
    }

    #[test]
    fn every_observer_sees_each_event_once() {
        let (a, b) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
        let mut observers = Observers::default();
        observers.add(a.clone());
        observers.add(b.clone());
        let log = SpendLog {
            request_id: "call-1".into(),
            status: "success".into(),
            start_time: 1_000,
            end_time: 1_250,
            ..SpendLog::default()
        };
        let event = RequestEvent {
            log,
            requested_model: "m".into(),
            key_alias: None,
            team_alias: None,
            provider: None,
            status_code: 200,
            error: None,
            time_to_first_token_ms: None,
            user_email: None,
            remaining_budget: metrics::RemainingBudgets::default(),
        };
        assert!(event.succeeded());
        assert_eq!(event.duration_ms(), 250);
        observers.publish(event);
        assert_eq!(*a.0.lock().unwrap(), vec!["call-1".to_string()]);
        assert_eq!(*b.0.lock().unwrap(), vec!["call-1".to_string()]);
    }
}
