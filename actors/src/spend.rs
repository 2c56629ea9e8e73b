//! The spend tracker: takes one record per finished request (fire-and-forget, off the hot path)
//! and writes them in batches through a sink (the store), every `flush_every`.
//!
//! Nothing is lost while the process lives: a batch the sink refuses (database down) comes back and
//! stays buffered for the next tick; the sink must make a repeated batch harmless (the store skips
//! rows it already has). [`Drain`] writes everything still buffered, for a graceful shutdown.

use std::time::Duration;

use actix::prelude::*;
use futures_util::future::LocalBoxFuture;

/// Writes one batch; on failure gives the batch back with the reason, to be retried.
pub type SpendSink<E> = std::sync::Arc<
    dyn Fn(Vec<E>) -> LocalBoxFuture<'static, Result<(), (String, Vec<E>)>> + Send + Sync,
>;

/// At most this many records wait in memory; beyond it the oldest are dropped with an error log
/// (only after the database has been unreachable for a long time).
pub const MAX_BUFFERED: usize = 1_000_000;

pub struct SpendTracker<E: Send + 'static> {
    buffer: Vec<E>,
    sink: SpendSink<E>,
    flush_every: Duration,
    writing: bool,
}

impl<E: Send + Unpin + 'static> SpendTracker<E> {
    /// Start on its own arbiter. Must run inside an actix `System`.
    pub fn start(sink: SpendSink<E>, flush_every: Duration) -> Addr<Self> {
        SpendTracker::start_in_arbiter(&Arbiter::new().handle(), move |_| SpendTracker {
            buffer: Vec::new(),
            sink,
            flush_every,
            writing: false,
        })
    }

    /// Hand the buffer to the sink; a refused batch goes back to the front of the buffer.
    fn write(&mut self) -> Option<ResponseActFuture<Self, Result<(), String>>> {
        if self.writing || self.buffer.is_empty() {
            return None;
        }
        self.writing = true;
        let batch = std::mem::take(&mut self.buffer);
        let write = (self.sink)(batch);
        Some(Box::pin(write.into_actor(self).map(|result, act, _| {
            act.writing = false;
            match result {
                Ok(()) => Ok(()),
                Err((error, mut batch)) => {
                    tracing::warn!(error = %error, records = batch.len(), "spend batch not written; kept for the next try");
                    batch.append(&mut act.buffer);
                    act.buffer = batch;
                    if act.buffer.len() > MAX_BUFFERED {
                        let excess = act.buffer.len() - MAX_BUFFERED;
                        tracing::error!(dropped = excess, "spend buffer full; oldest records dropped");
                        act.buffer.drain(..excess);
                    }
                    Err(error)
                }
            }
        })))
    }
}

impl<E: Send + Unpin + 'static> Actor for SpendTracker<E> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.flush_every, |act, ctx| {
            if let Some(write) = act.write() {
                ctx.spawn(write.map(|_, _, _| ()));
            }
        });
    }
}

/// One finished request's record.
pub struct Record<E>(pub E);

impl<E: Send + 'static> Message for Record<E> {
    type Result = ();
}

impl<E: Send + Unpin + 'static> Handler<Record<E>> for SpendTracker<E> {
    type Result = ();

    fn handle(&mut self, msg: Record<E>, _ctx: &mut Self::Context) {
        self.buffer.push(msg.0);
    }
}

/// Write everything buffered now (shutdown); answers once it is written or the sink refused it.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct Drain;

impl<E: Send + Unpin + 'static> Handler<Drain> for SpendTracker<E> {
    type Result = ResponseActFuture<Self, Result<(), String>>;

    fn handle(&mut self, _msg: Drain, _ctx: &mut Self::Context) -> Self::Result {
        match self.write() {
            Some(write) => write,
            None if !self.writing => Box::pin(actix::fut::ready(Ok(()))),
            // A tick's write is in flight: the caller asks again.
            None => Box::pin(actix::fut::ready(Err("a write is in flight".to_string()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    #[actix_rt::test]
    async fn batches_are_written_and_a_refused_batch_is_retried() {
        let written = Arc::new(Mutex::new(Vec::<u32>::new()));
        let down = Arc::new(AtomicBool::new(true));
        let (w, d) = (written.clone(), down.clone());
        let sink: SpendSink<u32> = Arc::new(move |batch: Vec<u32>| {
            let (w, d) = (w.clone(), d.clone());
            async move {
                if d.load(Ordering::SeqCst) {
                    return Err(("database down".to_string(), batch));
                }
                w.lock().unwrap().extend(batch);
                Ok(())
            }
            .boxed_local()
        });
        let tracker = SpendTracker::start(sink, Duration::from_millis(30));
        for i in 0..5 {
            tracker.do_send(Record(i));
        }
        actix::clock::sleep(Duration::from_millis(100)).await;
        assert!(written.lock().unwrap().is_empty());
        down.store(false, Ordering::SeqCst);
        tracker.do_send(Record(5));
        let mut drained = false;
        for _ in 0..50 {
            if tracker.send(Drain).await.unwrap().is_ok() {
                drained = true;
                break;
            }
            actix::clock::sleep(Duration::from_millis(20)).await;
        }
        assert!(drained);
        let mut got = written.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, vec![0, 1, 2, 3, 4, 5], "nothing lost, nothing twice");
    }
}
