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

pub mod tail;

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

    /// Hand `event` to every observer.
    pub fn publish(&self, event: RequestEvent) {
        if self.observers.is_empty() {
            return;
        }
        let event = Arc::new(event);
        for observer in &self.observers {
            observer.request_finished(&event);
        }
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
        };
        assert!(event.succeeded());
        assert_eq!(event.duration_ms(), 250);
        observers.publish(event);
        assert_eq!(*a.0.lock().unwrap(), vec!["call-1".to_string()]);
        assert_eq!(*b.0.lock().unwrap(), vec!["call-1".to_string()]);
    }
}
