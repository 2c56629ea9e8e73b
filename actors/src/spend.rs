//! The spend tracker: takes one record per finished request (off the hot path) and writes them in
//! batches through a sink (the store), every `flush_every`.
//!
//! Nothing is lost while the process lives. A record goes into a buffer owned by the
//! [`SpendHandle`], outside the actor, which cannot refuse it (no mailbox to be full or closed);
//! the actor drains that buffer on its tick, or as soon as [`BATCH_MAX`] records wait, in batches of
//! at most [`BATCH_MAX`] (so memory under load holds about a batch, not a tick's worth of records
//! twice over). A batch the sink refuses (database down) comes back
//! and stays buffered for the next tick. The batch being written is also kept aside until the sink
//! answers: if the actor dies (a panic), its supervisor (the router, see [`crate::RouterHandle::adopt`])
//! starts a new one, which puts that batch back in front of the buffer and writes it again. The
//! sink must make a repeated batch harmless (the store skips rows it already has). Rows are only
//! ever dropped past [`MAX_BUFFERED`], each one logged and counted ([`SpendHandle::lost`]).
//! [`Drain`] writes everything still buffered, for a graceful shutdown.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::LocalBoxFuture;

use crate::supervise::{Child, Restartable};

/// Writes one batch; on failure gives the batch back with the reason, to be retried.
pub type SpendSink<E> = std::sync::Arc<
    dyn Fn(Vec<E>) -> LocalBoxFuture<'static, Result<(), (String, Vec<E>)>> + Send + Sync,
>;

/// At most this many records wait in memory; beyond it the oldest are dropped with an error log
/// (only after the database has been unreachable for a long time).
pub const MAX_BUFFERED: usize = 1_000_000;

/// Records per batch handed to the sink at most; a buffer this full is written without waiting
/// for the tick.
pub const BATCH_MAX: usize = 250;

/// The tracker's state, shared by every incarnation of the actor and the handle.
struct Queue<E> {
    /// Records not handed to the sink yet, oldest first.
    buffer: Mutex<VecDeque<E>>,
    /// A copy of the batch the sink is writing, until it answers.
    in_flight: Mutex<Vec<E>>,
    /// Records dropped (buffer over [`MAX_BUFFERED`]).
    lost: AtomicU64,
    /// Records handed to the sink so far (for [`SpendHandle::panic_after`]).
    handed: AtomicU64,
    /// Test hook: panic once in the tick after this many records were handed to the sink.
    panic_after: Option<u64>,
    panicked: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<E> Queue<E> {
    /// Put `batch` back in front of the buffer; drop (log, count) the oldest past the limit.
    fn requeue(&self, batch: Vec<E>) {
        let mut buffer = lock(&self.buffer);
        for record in batch.into_iter().rev() {
            buffer.push_front(record);
        }
        if buffer.len() > MAX_BUFFERED {
            let excess = buffer.len() - MAX_BUFFERED;
            buffer.drain(..excess);
            let total = self.lost.fetch_add(excess as u64, Ordering::SeqCst) + excess as u64;
            tracing::error!(
                dropped = excess,
                lost_total = total,
                "spend buffer full; oldest records dropped"
            );
        }
    }
}

pub struct SpendTracker<E: Send + 'static> {
    queue: Arc<Queue<E>>,
    sink: SpendSink<E>,
    flush_every: Duration,
    writing: bool,
}

/// The handle request handlers hold: [`SpendHandle::record`] never fails and never blocks on the
/// actor. Cheap to clone.
pub struct SpendHandle<E: Send + Clone + Unpin + 'static> {
    queue: Arc<Queue<E>>,
    actor: Arc<Restartable<SpendTracker<E>>>,
}

impl<E: Send + Clone + Unpin + 'static> Clone for SpendHandle<E> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            actor: self.actor.clone(),
        }
    }
}

impl<E: Send + Clone + Unpin + 'static> SpendHandle<E> {
    /// Start the tracker on its own arbiter. Must run inside an actix `System`. Hand
    /// [`SpendHandle::child`] to a supervisor so that it is restarted if it dies.
    pub fn start(sink: SpendSink<E>, flush_every: Duration) -> Self {
        Self::start_with(sink, flush_every, None)
    }

    /// Like [`SpendHandle::start`]; with `panic_after`, the tracker panics once (in its tick,
    /// while a batch is being written) after that many records were handed to the sink. For tests
    /// of the supervision only.
    pub fn start_with(sink: SpendSink<E>, flush_every: Duration, panic_after: Option<u64>) -> Self {
        let queue = Arc::new(Queue {
            buffer: Mutex::new(VecDeque::new()),
            in_flight: Mutex::new(Vec::new()),
            lost: AtomicU64::new(0),
            handed: AtomicU64::new(0),
            panic_after,
            panicked: AtomicBool::new(false),
        });
        let actor_queue = queue.clone();
        let actor = Restartable::start("spend tracker", move || SpendTracker {
            queue: actor_queue.clone(),
            sink: sink.clone(),
            flush_every,
            writing: false,
        });
        Self { queue, actor }
    }

    /// Queue one finished request's record for the next batch. The record that fills a batch
    /// wakes the tracker.
    pub fn record(&self, record: E) {
        let waiting = {
            let mut buffer = lock(&self.queue.buffer);
            buffer.push_back(record);
            buffer.len()
        };
        if waiting == BATCH_MAX {
            self.actor.addr().do_send(Flush);
        }
    }

    /// Write everything buffered now (shutdown); answers once it is written or the sink refused
    /// it. A dead tracker is restarted first.
    pub async fn drain(&self) -> Result<(), String> {
        for _ in 0..2 {
            match self.actor.addr().send(Drain).await {
                Ok(result) => return result,
                Err(_) => {
                    self.actor.ensure_alive();
                }
            }
        }
        Err("the spend tracker is not running".to_string())
    }

    /// Records dropped because the buffer was full (each one logged as an error).
    pub fn lost(&self) -> u64 {
        self.queue.lost.load(Ordering::SeqCst)
    }

    /// Records waiting to be written (buffered or in flight).
    pub fn pending(&self) -> usize {
        lock(&self.queue.buffer).len() + lock(&self.queue.in_flight).len()
    }

    /// Times the tracker actor died and was restarted.
    pub fn restarts(&self) -> u64 {
        self.actor.restarts()
    }

    /// The tracker as a supervised child, for [`crate::RouterHandle::adopt`].
    pub fn child(&self) -> Arc<dyn Child> {
        self.actor.clone()
    }
}

impl<E: Send + Clone + Unpin + 'static> SpendTracker<E> {
    /// Hand the oldest [`BATCH_MAX`] records to the sink, and the next ones when it answers while
    /// a full batch waits; a refused batch goes back to the front of the buffer.
    fn write(&mut self) -> Option<ResponseActFuture<Self, Result<(), String>>> {
        if self.writing {
            return None;
        }
        let batch: Vec<E> = {
            let mut buffer = lock(&self.queue.buffer);
            let n = buffer.len().min(BATCH_MAX);
            buffer.drain(..n).collect()
        };
        if batch.is_empty() {
            return None;
        }
        self.writing = true;
        self.queue
            .handed
            .fetch_add(batch.len() as u64, Ordering::SeqCst);
        *lock(&self.queue.in_flight) = batch.clone();
        let write = (self.sink)(batch);
        Some(Box::pin(write.into_actor(self).map(|result, act, ctx| {
            act.writing = false;
            lock(&act.queue.in_flight).clear();
            match result {
                Ok(()) => {
                    if lock(&act.queue.buffer).len() >= BATCH_MAX {
                        act.write_now(ctx);
                    }
                    Ok(())
                }
                Err((error, batch)) => {
                    tracing::warn!(error = %error, records = batch.len(), "spend batch not written; kept for the next try");
                    act.queue.requeue(batch);
                    Err(error)
                }
            }
        })))
    }
}

impl<E: Send + Clone + Unpin + 'static> Actor for SpendTracker<E> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // A previous incarnation died while writing this batch: write it again (harmless if it
        // was written; the sink skips rows it has).
        let unanswered = std::mem::take(&mut *lock(&self.queue.in_flight));
        if !unanswered.is_empty() {
            tracing::warn!(
                records = unanswered.len(),
                "spend tracker restarted; the batch it was writing is written again"
            );
            self.queue.requeue(unanswered);
        }
        ctx.run_interval(self.flush_every, |act, ctx| act.write_now(ctx));
    }
}

impl<E: Send + Clone + Unpin + 'static> SpendTracker<E> {
    /// Start writing the next batch, unless one is being written.
    fn write_now(&mut self, ctx: &mut Context<Self>) {
        if let Some(write) = self.write() {
            ctx.spawn(write.map(|_, _, _| ()));
            let queue = &self.queue;
            if let Some(after) = queue.panic_after {
                if queue.handed.load(Ordering::SeqCst) >= after
                    && !queue.panicked.swap(true, Ordering::SeqCst)
                {
                    panic!("spend tracker: test panic after {after} records");
                }
            }
        }
    }
}

/// A full batch waits: write it now rather than at the next tick.
#[derive(Message)]
#[rtype(result = "()")]
struct Flush;

impl<E: Send + Clone + Unpin + 'static> Handler<Flush> for SpendTracker<E> {
    type Result = ();

    fn handle(&mut self, _msg: Flush, ctx: &mut Self::Context) {
        self.write_now(ctx);
    }
}

/// Write everything buffered now (shutdown); answers once it is written or the sink refused it.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct Drain;

impl<E: Send + Clone + Unpin + 'static> Handler<Drain> for SpendTracker<E> {
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
        let tracker = SpendHandle::start(sink, Duration::from_millis(30));
        for i in 0..5 {
            tracker.record(i);
        }
        actix::clock::sleep(Duration::from_millis(100)).await;
        assert!(written.lock().unwrap().is_empty());
        down.store(false, Ordering::SeqCst);
        tracker.record(5);
        let mut drained = false;
        for _ in 0..50 {
            if tracker.drain().await.is_ok() {
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

    #[actix::test]
    async fn a_full_batch_is_written_at_once_and_no_batch_is_larger() {
        let batches = Arc::new(Mutex::new(Vec::<Vec<u32>>::new()));
        let b = batches.clone();
        let sink: SpendSink<u32> = Arc::new(move |batch: Vec<u32>| {
            let b = b.clone();
            async move {
                b.lock().unwrap().push(batch);
                Ok(())
            }
            .boxed_local()
        });
        // The tick never comes during the test: only full batches are written.
        let tracker = SpendHandle::start(sink, Duration::from_secs(3600));
        let rest = BATCH_MAX as u32 / 2;
        let total = 2 * BATCH_MAX as u32 + rest;
        for i in 0..total {
            tracker.record(i);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while batches.lock().unwrap().len() < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "full batches not written"
            );
            actix::clock::sleep(Duration::from_millis(10)).await;
        }
        actix::clock::sleep(Duration::from_millis(50)).await;
        {
            let got = batches.lock().unwrap();
            assert_eq!(got.len(), 2, "the rest waits for the tick");
            assert!(got.iter().all(|b| b.len() == BATCH_MAX));
            assert_eq!(got[0][0], 0, "oldest first");
        }
        assert_eq!(tracker.pending(), rest as usize);
        while tracker.pending() > 0 {
            let _ = tracker.drain().await;
        }
        let got: Vec<u32> = batches.lock().unwrap().concat();
        assert_eq!(got, (0..total).collect::<Vec<_>>(), "each once, in order");
    }

    /// A sink that keeps what it is given, and the tracker writing to it.
    fn collecting(panic_after: Option<u64>) -> (SpendHandle<u32>, Arc<Mutex<Vec<u32>>>) {
        let written = Arc::new(Mutex::new(Vec::<u32>::new()));
        let w = written.clone();
        let sink: SpendSink<u32> = Arc::new(move |batch: Vec<u32>| {
            let w = w.clone();
            async move {
                w.lock().unwrap().extend(batch);
                Ok(())
            }
            .boxed_local()
        });
        let tracker = SpendHandle::start_with(sink, Duration::from_millis(20), panic_after);
        (tracker, written)
    }

    async fn drained(tracker: &SpendHandle<u32>) -> bool {
        for _ in 0..100 {
            if tracker.drain().await.is_ok() && tracker.pending() == 0 {
                return true;
            }
            actix::clock::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    #[actix_rt::test]
    async fn a_tracker_that_panicked_mid_write_is_restarted_with_its_rows() {
        let (tracker, written) = collecting(Some(3));
        for i in 0..5 {
            tracker.record(i);
        }
        // The first tick hands the 5 rows to the sink and panics before the write runs.
        let mut restarted = false;
        for _ in 0..100 {
            actix::clock::sleep(Duration::from_millis(10)).await;
            if tracker.child().ensure_alive() {
                restarted = true;
                break;
            }
        }
        assert!(restarted, "the tracker died and was restarted");
        assert_eq!(tracker.restarts(), 1);
        // Recording never depended on the actor: rows sent while it was dead are kept too.
        for i in 5..10 {
            tracker.record(i);
        }
        assert!(drained(&tracker).await);
        let mut got = written.lock().unwrap().clone();
        got.sort();
        assert_eq!(
            got,
            (0..10).collect::<Vec<_>>(),
            "nothing lost, nothing twice"
        );
        assert_eq!(tracker.lost(), 0);
        assert!(!tracker.child().ensure_alive(), "alive: no second restart");
    }

    #[actix_rt::test]
    async fn a_drain_restarts_a_dead_tracker_and_writes_its_rows() {
        let (tracker, written) = collecting(Some(1));
        tracker.record(1);
        for _ in 0..100 {
            if !tracker.actor.addr().connected() {
                break;
            }
            actix::clock::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            !tracker.actor.addr().connected(),
            "the hook killed the tracker"
        );
        tracker.record(2);
        assert!(drained(&tracker).await);
        assert_eq!(tracker.restarts(), 1);
        let mut got = written.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, vec![1, 2]);
    }

    #[test]
    fn rows_past_the_limit_are_counted_as_lost() {
        let queue = Queue {
            buffer: Mutex::new(VecDeque::from(vec![0u8; MAX_BUFFERED])),
            in_flight: Mutex::new(Vec::new()),
            lost: AtomicU64::new(0),
            handed: AtomicU64::new(0),
            panic_after: None,
            panicked: AtomicBool::new(false),
        };
        queue.requeue(vec![1, 1, 1]);
        assert_eq!(queue.lost.load(Ordering::SeqCst), 3);
        let buffer = queue.buffer.lock().unwrap();
        assert_eq!(buffer.len(), MAX_BUFFERED);
        assert_eq!(buffer[0], 0, "the oldest rows were dropped");
    }
}
