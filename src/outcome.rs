//! What the pipeline ([`crate::pipeline::run`]) produces: a domain outcome, not an HTTP response.
//!
//! An [`Outcome`] is the request's [`Reply`] (a complete response or a stream of typed chunks) or
//! its error, plus the [`Facts`] of how it was served (deployment, attempts, cost, limits), as data.
//! The handler picks a renderer (`src/render.rs`) that turns it into OpenAI JSON or SSE,
//! Anthropic Messages JSON or SSE, or Responses API objects and events: one pipeline, any number
//! of inbound formats.
//!
//! Replies are in the internal model, which is OpenAI-shaped: a complete reply is an OpenAI
//! `chat.completion` / `text_completion` / embedding list / images / moderation results (its bytes kept as the adapter wrote
//! them; the fields the gateway reads, usage and id, typed beside them), a stream is OpenAI
//! `chat.completion.chunk` / `text_completion` chunks; a binary reply (speech audio) is the
//! provider's bytes as they arrive; a Responses API request served natively (OpenAI, Azure) has
//! a Responses object or Responses events instead ([`Facts::responses_shaped`]).

use std::pin::Pin;
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use futures_util::Stream;
use std::future::Future as _;

use crate::error::GatewayError;
use crate::llm::Usage;
use crate::state::VERSION;

/// The pipeline's product for one request.
pub struct Outcome {
    pub facts: Facts,
    pub result: Result<Reply, GatewayError>,
}

impl Outcome {
    /// A request refused before it reached the pipeline's routing (a body that does not parse):
    /// the error with the facts every response carries (call id, version, durations).
    pub fn refused(error: GatewayError) -> Self {
        Self {
            facts: Facts::new(Instant::now()),
            result: Err(error),
        }
    }
}

/// A successful reply.
pub enum Reply {
    Complete(Completion),
    Stream(ChunkStream),
    /// Bytes relayed as the provider sends them (`/audio/speech`), with their content type.
    Binary(BinaryReply),
}

/// A complete response: the OpenAI JSON as the adapter wrote it, with the fields the gateway uses
/// typed beside it.
pub struct Completion {
    pub body: Bytes,
    pub usage: Usage,
    pub id: Option<String>,
    /// The body's content type when it is not JSON (a transcription in `text`, `srt` or `vtt`).
    pub content_type: Option<String>,
}

/// A provider's byte stream as it arrives (the audio of `/audio/speech`). It ends with the
/// provider's body, or with an `Err` when the provider's stream broke (the client's connection is
/// then cut); its accounting runs when it ends or is dropped.
pub struct BinaryReply {
    pub content_type: String,
    pub body: ByteStream,
}

/// The bytes of a [`BinaryReply`].
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, String>>>>;

/// A stream of typed chunks. It ends with [`StreamItem::Done`] or [`StreamItem::Error`]; the
/// stream's accounting runs when it ends, or when it is dropped (the client went away).
pub type ChunkStream = Pin<Box<dyn Stream<Item = StreamItem>>>;

/// One piece of a streamed reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem {
    /// One OpenAI chunk: the JSON of one `data:` event (the provider's, or its adapter's
    /// translation), kept raw so fields the gateway does not know pass through.
    Chunk(Bytes),
    /// An SSE event without data (a `: ping` comment), kept for renderers that relay keep-alives.
    Comment(Bytes),
    /// The stream broke after it started: why. Nothing follows.
    Error(String),
    /// The stream completed.
    Done,
}

/// How a request was served: what every response says in its `x-litellm-*` headers, success and
/// error alike.
#[derive(Debug)]
pub struct Facts {
    pub call_id: String,
    /// When the pipeline started on the request (durations are measured from it).
    pub started: Instant,
    pub model_group: Option<String>,
    /// The deployment that served the request (or failed it last).
    pub deployment_id: Option<String>,
    pub api_base: Option<String>,
    /// `x-litellm-model-region`: that deployment's region, when known.
    pub model_region: Option<String>,
    pub timeout: Option<Duration>,
    /// Time spent waiting on providers (to the first byte, for streams), over every attempt.
    pub upstream_time: Duration,
    /// The serving provider's headers, as the client gets them (`llm_provider-*`, `x-ratelimit-*`).
    pub provider_headers: Vec<(HeaderName, HeaderValue)>,
    /// The caller's own rate-limit state (replaces the provider's `x-ratelimit-*`).
    pub limit_headers: Vec<(HeaderName, HeaderValue)>,
    /// `x-litellm-response-cost` (USD), when the response's usage is known before its headers.
    pub response_cost: Option<f64>,
    /// `x-litellm-key-spend`: the key's spend including this response.
    pub key_spend: Option<f64>,
    /// The request's prompt tokens as estimated before the call (0 before parsing).
    pub prompt_tokens: u64,
    pub attempts: Attempts,
    /// `x-litellm-cache-key`: the response-cache key, when the request consulted the cache.
    pub cache_key: Option<String>,
    /// The reply is in OpenAI's Responses shape (a Responses object, or Responses events): a
    /// `/responses` request served by a deployment spoken to in the Responses API. Otherwise it is
    /// chat-shaped.
    pub responses_shaped: bool,
}

/// Retries and fallbacks a request went through.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Attempts {
    pub retries: u32,
    pub max_retries: Option<u32>,
    pub fallbacks: u32,
}

impl Facts {
    pub fn new(started: Instant) -> Self {
        Self {
            call_id: uuid::Uuid::now_v7().to_string(),
            started,
            model_group: None,
            deployment_id: None,
            api_base: None,
            model_region: None,
            timeout: None,
            upstream_time: Duration::ZERO,
            provider_headers: Vec::new(),
            limit_headers: Vec::new(),
            response_cost: None,
            key_spend: None,
            prompt_tokens: 0,
            attempts: Attempts::default(),
            cache_key: None,
            responses_shaped: false,
        }
    }

    /// The facts as `x-litellm-*` headers (durations measured now), with the provider's and the
    /// limiter's headers.
    pub fn apply(&self, headers: &mut HeaderMap) {
        let mut put = |name: &'static str, value: String| {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), v);
            }
        };
        put("x-litellm-call-id", self.call_id.clone());
        put("x-litellm-version", VERSION.to_string());
        if let Some(g) = &self.model_group {
            put("x-litellm-model-group", g.clone());
        }
        if let Some(key) = &self.cache_key {
            put("x-litellm-cache-key", key.clone());
        }
        if let Some(id) = &self.deployment_id {
            put("x-litellm-model-id", id.clone());
        }
        if let Some(base) = &self.api_base {
            put("x-litellm-model-api-base", base.clone());
        }
        if let Some(region) = &self.model_region {
            put("x-litellm-model-region", region.clone());
        }
        if let Some(t) = self.timeout {
            put("x-litellm-timeout", format!("{}", t.as_secs_f64()));
        }
        if let Some(cost) = self.response_cost {
            put("x-litellm-response-cost", format!("{cost}"));
        }
        if let Some(spend) = self.key_spend {
            put("x-litellm-key-spend", format!("{spend}"));
        }
        let total = self.started.elapsed();
        let ms = |d: Duration| format!("{:.3}", d.as_secs_f64() * 1000.0);
        put("x-litellm-response-duration-ms", ms(total));
        put(
            "x-litellm-overhead-duration-ms",
            ms(total.saturating_sub(self.upstream_time)),
        );
        put(
            "x-litellm-attempted-retries",
            self.attempts.retries.to_string(),
        );
        if let Some(max) = self.attempts.max_retries {
            put("x-litellm-max-retries", max.to_string());
        }
        put(
            "x-litellm-attempted-fallbacks",
            self.attempts.fallbacks.to_string(),
        );
        for (k, v) in self.provider_headers.iter().chain(&self.limit_headers) {
            headers.insert(k.clone(), v.clone());
        }
    }
}

/// A provider's byte stream relayed as it arrives: each piece passed on, the stream cut with an
/// error when nothing arrives for `idle`, and `on_end` called once with the bytes relayed and how
/// the stream ended (`None`: it completed; `Some(why)`: it broke, went idle, or the client left).
pub struct ByteRelay<F: FnOnce(u64, Option<String>)> {
    inner: ByteStream,
    idle_timeout: Duration,
    idle: Pin<Box<actix_web::rt::time::Sleep>>,
    bytes: u64,
    on_end: Option<F>,
}

impl<F: FnOnce(u64, Option<String>)> ByteRelay<F> {
    pub fn new(inner: ByteStream, idle_timeout: Duration, on_end: F) -> Self {
        Self {
            inner,
            idle_timeout,
            idle: Box::pin(actix_web::rt::time::sleep(idle_timeout)),
            bytes: 0,
            on_end: Some(on_end),
        }
    }

    fn finish(&mut self, why: Option<String>) {
        if let Some(on_end) = self.on_end.take() {
            on_end(self.bytes, why);
        }
    }
}

impl<F: FnOnce(u64, Option<String>) + Unpin> Stream for ByteRelay<F> {
    type Item = Result<Bytes, String>;

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = self.get_mut();
        if this.on_end.is_none() {
            return Poll::Ready(None);
        }
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                this.bytes += bytes.len() as u64;
                let deadline = actix_web::rt::time::Instant::now() + this.idle_timeout;
                this.idle.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish(Some(e.clone()));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.finish(None);
                Poll::Ready(None)
            }
            Poll::Pending => match this.idle.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let why = format!(
                        "the provider sent nothing for {}s",
                        this.idle_timeout.as_secs_f64()
                    );
                    this.finish(Some(why.clone()));
                    Poll::Ready(Some(Err(why)))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<F: FnOnce(u64, Option<String>)> Drop for ByteRelay<F> {
    fn drop(&mut self) {
        self.finish(Some("the client went away".into()));
    }
}
