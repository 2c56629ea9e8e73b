//! Reading a provider's Server-Sent Events stream (OpenAI chunks, after the adapter's translation)
//! into the pipeline's typed stream ([`StreamItem`]s).
//!
//! Each item is handed on as soon as its complete event has arrived: nothing is buffered beyond
//! the event being assembled. On the way through, the relay
//! * captures the final usage chunk, which the gateway always requests, and hides it from clients
//!   that did not ask for it (`stream_options.include_usage`);
//! * ends every stream with [`StreamItem::Done`], also when a provider finished without
//!   `data: [DONE]`;
//! * turns a broken stream (connection error, idle timeout, or an end without a finish reason) into
//!   [`StreamItem::Error`] (rendered as an error event, never a silent finish);
//! * reports the outcome (usage, error, time to first byte) exactly once, also when the client goes
//!   away mid-stream.
//!
//! The renderers in `src/render.rs` write the items as OpenAI or Anthropic SSE.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::rt::time::{sleep, Sleep};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::json;

use crate::llm::Usage;
use crate::outcome::StreamItem;

/// How a relayed stream ended.
#[derive(Debug, Clone, Default)]
pub struct StreamOutcome {
    pub usage: Option<Usage>,
    /// The stream's response id, from its usage chunk.
    pub response_id: Option<String>,
    /// Why the stream did not complete normally.
    pub error: Option<String>,
    /// When the first byte from the provider arrived.
    pub first_byte_at: Option<Instant>,
    /// Whether the client went away before the end.
    pub client_disconnected: bool,
    /// Bytes of generated text (content, text, tool-call arguments, reasoning) relayed to the
    /// client: what a stream that ended before its usage chunk is charged for, as tokens.
    pub relayed_text_bytes: u64,
    /// The stream's chunks (each event's JSON, the hidden usage chunk included), when the relay
    /// was asked to [`SseRelay::capture`] them; empty past [`MAX_CAPTURED_BYTES`].
    pub chunks: Vec<Bytes>,
}

/// A captured stream whose chunks pass this many bytes is not kept (its chunks are dropped).
pub const MAX_CAPTURED_BYTES: usize = 1024 * 1024;

impl StreamOutcome {
    /// The stream's usage: the provider's, else an estimate for a stream that ended before its
    /// usage chunk: `prompt_tokens` as given, and the relayed text at 4 bytes a token.
    pub fn usage_or_estimate(&self, prompt_tokens: u64) -> Usage {
        match self.usage {
            Some(usage) => usage,
            None => {
                let completion_tokens = self.relayed_text_bytes.div_ceil(4);
                Usage {
                    prompt_tokens,
                    completion_tokens,
                    total_tokens: prompt_tokens + completion_tokens,
                    ..Usage::default()
                }
            }
        }
    }
}

type OnEnd = Box<dyn FnOnce(StreamOutcome)>;

pub struct SseRelay<S> {
    upstream: S,
    buf: BytesMut,
    client_wants_usage: bool,
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
    outcome: StreamOutcome,
    saw_done: bool,
    saw_finish: bool,
    finished: bool,
    on_end: Option<OnEnd>,
    /// Items parsed and not yet taken.
    ready: VecDeque<StreamItem>,
    /// Keep the chunks in the outcome ([`Self::capture`]); turned off past the bound.
    capture: bool,
    captured_bytes: usize,
    /// The events are the Responses API's (`response.*`), not chat chunks.
    responses: bool,
}

/// What the relay reads of one Responses API event.
#[derive(Deserialize)]
struct ResponsesEventProbe<'a> {
    #[serde(default, borrow, rename = "type")]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    delta: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    response: Option<serde_json::Value>,
    #[serde(default, borrow)]
    message: Option<std::borrow::Cow<'a, str>>,
}

/// The generated text of one OpenAI-shaped chunk, borrowed where the JSON has no escapes.
#[derive(Deserialize)]
struct TextProbe<'a> {
    #[serde(default, borrow)]
    choices: Vec<ChoiceText<'a>>,
}

#[derive(Deserialize)]
struct ChoiceText<'a> {
    #[serde(default, borrow)]
    delta: Option<DeltaText<'a>>,
    #[serde(default, borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct DeltaText<'a> {
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning_content: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_calls: Vec<ToolCallText<'a>>,
}

#[derive(Deserialize)]
struct ToolCallText<'a> {
    #[serde(default, borrow)]
    function: Option<FunctionText<'a>>,
}

#[derive(Deserialize)]
struct FunctionText<'a> {
    #[serde(default, borrow)]
    arguments: Option<std::borrow::Cow<'a, str>>,
}

/// Bytes of generated text in one chunk (0 when it is not an OpenAI chunk).
fn text_bytes(data: &[u8]) -> u64 {
    let Ok(probe) = serde_json::from_slice::<TextProbe>(data) else {
        return 0;
    };
    let len = |s: &Option<std::borrow::Cow<str>>| s.as_ref().map_or(0, |s| s.len() as u64);
    probe
        .choices
        .iter()
        .map(|c| {
            len(&c.text)
                + c.delta.as_ref().map_or(0, |d| {
                    len(&d.content)
                        + len(&d.reasoning_content)
                        + d.tool_calls
                            .iter()
                            .filter_map(|t| t.function.as_ref())
                            .map(|f| len(&f.arguments))
                            .sum::<u64>()
                })
        })
        .sum()
}

#[derive(Deserialize)]
struct ChunkProbe {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    choices: Option<Vec<IgnoredAny>>,
}

/// Find `"key"` followed by optional whitespace, `:`, optional whitespace, and return the next byte.
fn value_start_after(haystack: &[u8], key: &[u8]) -> Option<u8> {
    let mut from = 0;
    while let Some(pos) = memchr::memmem::find(&haystack[from..], key) {
        let mut i = from + pos + key.len();
        while i < haystack.len() && haystack[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < haystack.len() && haystack[i] == b':' {
            i += 1;
            while i < haystack.len() && haystack[i].is_ascii_whitespace() {
                i += 1;
            }
            return haystack.get(i).copied();
        }
        from += pos + key.len();
    }
    None
}

/// The `data:` payload of one SSE event (multi-line data joined with `\n`), if any.
fn event_data(event: &[u8]) -> Option<Vec<u8>> {
    let mut data: Option<Vec<u8>> = None;
    for line in event.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(rest) = line.strip_prefix(b"data:") {
            let rest = rest.strip_prefix(b" ").unwrap_or(rest);
            match &mut data {
                Some(d) => {
                    d.push(b'\n');
                    d.extend_from_slice(rest);
                }
                None => data = Some(rest.to_vec()),
            }
        }
    }
    data
}

/// Position just past the first event terminator (`\n\n` or `\r\n\r\n`) in `buf`.
fn event_end(buf: &[u8]) -> Option<usize> {
    let lf = memchr::memmem::find(buf, b"\n\n").map(|p| p + 2);
    let crlf = memchr::memmem::find(buf, b"\r\n\r\n").map(|p| p + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The SSE error event sent when a stream breaks after it started.
pub fn error_event(message: &str) -> Bytes {
    let body = json!({"error": {
        "message": message,
        "type": "api_connection_error",
        "param": null,
        "code": "stream_interrupted",
    }});
    Bytes::from(format!("data: {body}\n\ndata: [DONE]\n\n"))
}

pub const DONE_EVENT: &[u8] = b"data: [DONE]\n\n";

impl<S> SseRelay<S> {
    pub fn new(
        upstream: S,
        client_wants_usage: bool,
        idle_timeout: Duration,
        on_end: impl FnOnce(StreamOutcome) + 'static,
    ) -> Self {
        Self {
            upstream,
            buf: BytesMut::new(),
            client_wants_usage,
            idle_timeout,
            idle: Box::pin(sleep(idle_timeout)),
            outcome: StreamOutcome::default(),
            saw_done: false,
            saw_finish: false,
            finished: false,
            on_end: Some(Box::new(on_end)),
            ready: VecDeque::new(),
            capture: false,
            captured_bytes: 0,
            responses: false,
        }
    }

    /// Read the events as the Responses API's: the stream finishes with `response.completed`
    /// (or `response.incomplete`), whose response carries the usage; `response.failed` and
    /// `error` events break it.
    pub fn responses_events(mut self, on: bool) -> Self {
        self.responses = on;
        self
    }

    /// One Responses API event: finish, usage and errors read from it; relayed whole.
    fn inspect_responses_event(&mut self, data: &[u8]) -> Option<StreamItem> {
        let bytes = Bytes::copy_from_slice(data);
        if let Ok(event) = serde_json::from_slice::<ResponsesEventProbe>(data) {
            match event.kind.as_ref() {
                "response.completed" | "response.incomplete" => {
                    self.saw_finish = true;
                    if let Some(response) = &event.response {
                        self.outcome.usage = crate::responses_api::usage_of(response);
                        self.outcome.response_id = response
                            .get("id")
                            .and_then(serde_json::Value::as_str)
                            .map(str::to_string);
                    }
                }
                "response.failed" => {
                    let error = event.response.as_ref().and_then(|r| r.get("error"));
                    self.outcome.error = Some(
                        error
                            .map(|e| e.to_string())
                            .unwrap_or_else(|| "the response failed".into())
                            .chars()
                            .take(500)
                            .collect(),
                    );
                }
                "error" => {
                    self.outcome.error = Some(
                        event
                            .message
                            .as_deref()
                            .unwrap_or("the provider sent an error event")
                            .chars()
                            .take(500)
                            .collect(),
                    );
                }
                _ => {
                    if self.outcome.usage.is_none() {
                        self.outcome.relayed_text_bytes +=
                            event.delta.as_ref().map_or(0, |d| d.len() as u64);
                    }
                }
            }
        }
        self.keep(&bytes);
        Some(StreamItem::Chunk(bytes))
    }

    /// Keep every chunk (shared with the item relayed, not copied) for the outcome, so that the
    /// stream's response can be assembled once it ended (spend logs and logging callbacks keep
    /// it). Up to [`MAX_CAPTURED_BYTES`].
    pub fn capture(mut self, on: bool) -> Self {
        self.capture = on;
        self
    }

    fn keep(&mut self, chunk: &Bytes) {
        if !self.capture {
            return;
        }
        self.captured_bytes += chunk.len();
        if self.captured_bytes > MAX_CAPTURED_BYTES {
            self.capture = false;
            self.outcome.chunks = Vec::new();
            return;
        }
        self.outcome.chunks.push(chunk.clone());
    }

    /// Turn every complete event in the buffer into items, filtering and inspecting as it goes.
    /// With `eof`, a trailing event without terminator is taken too.
    fn drain_events(&mut self, eof: bool) {
        loop {
            if self.saw_done {
                // Anything after [DONE] is not part of the stream.
                self.buf.clear();
                return;
            }
            let end = match event_end(&self.buf) {
                Some(end) => end,
                None if eof && !self.buf.iter().all(u8::is_ascii_whitespace) => self.buf.len(),
                None => return,
            };
            let event = self.buf.split_to(end).freeze();
            if let Some(item) = self.inspect(event) {
                self.ready.push_back(item);
            }
        }
    }

    /// Look at one event: the item it becomes for the client, if any.
    fn inspect(&mut self, event: Bytes) -> Option<StreamItem> {
        let Some(data) = event_data(&event) else {
            // Comments (`: ping`) and named events without data pass through.
            return Some(StreamItem::Comment(event));
        };
        let trimmed = data.trim_ascii();
        if trimmed == b"[DONE]" {
            self.saw_done = true;
            return Some(StreamItem::Done);
        }
        if self.responses {
            return self.inspect_responses_event(trimmed);
        }
        if matches!(value_start_after(trimmed, b"\"finish_reason\""), Some(b'"')) {
            self.saw_finish = true;
        }
        // Until the provider's usage is known, the text relayed is counted (a stream that ends
        // early is charged for it).
        if self.outcome.usage.is_none() {
            self.outcome.relayed_text_bytes += text_bytes(trimmed);
        }
        if value_start_after(trimmed, b"\"error\"").is_some_and(|b| b == b'{' || b == b'"') {
            self.outcome.error = Some(String::from_utf8_lossy(trimmed).chars().take(500).collect());
        }
        let bytes = Bytes::copy_from_slice(trimmed);
        self.keep(&bytes);
        if matches!(value_start_after(trimmed, b"\"usage\""), Some(b'{')) {
            if let Ok(chunk) = serde_json::from_slice::<ChunkProbe>(trimmed) {
                if let Some(usage) = chunk.usage {
                    self.outcome.usage = Some(usage);
                    if chunk.id.is_some() {
                        self.outcome.response_id = chunk.id;
                    }
                    let usage_only = chunk.choices.as_ref().is_none_or(Vec::is_empty);
                    if usage_only && !self.client_wants_usage {
                        return None;
                    }
                }
            }
        }
        Some(StreamItem::Chunk(bytes))
    }

    /// The stream is over: its last item, and its outcome reported.
    fn finish(&mut self, error: Option<String>) {
        self.finished = true;
        let error = error.or_else(|| {
            (!self.saw_done && !self.saw_finish)
                .then(|| "the provider ended the stream before it finished".to_string())
        });
        match &error {
            Some(message) => self.ready.push_back(StreamItem::Error(message.clone())),
            None if !self.saw_done => self.ready.push_back(StreamItem::Done),
            None => {}
        }
        if self.outcome.error.is_none() {
            self.outcome.error = error;
        }
        if let Some(on_end) = self.on_end.take() {
            on_end(std::mem::take(&mut self.outcome));
        }
    }
}

impl<S, E> Stream for SseRelay<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = StreamItem;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(item) = this.ready.pop_front() {
                return Poll::Ready(Some(item));
            }
            if this.finished {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.upstream).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    if this.outcome.first_byte_at.is_none() {
                        this.outcome.first_byte_at = Some(Instant::now());
                    }
                    let deadline = actix_web::rt::time::Instant::now() + this.idle_timeout;
                    this.idle.as_mut().reset(deadline);
                    this.buf.extend_from_slice(&chunk);
                    this.drain_events(false);
                    if this.saw_done {
                        this.finish(None);
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.drain_events(true);
                    this.finish(Some(format!("the provider's stream broke off: {e}")));
                }
                Poll::Ready(None) => {
                    this.drain_events(true);
                    this.finish(None);
                }
                Poll::Pending => {
                    if this.idle.as_mut().poll(cx).is_ready() {
                        let message = format!(
                            "the provider sent nothing for {} s (stream_timeout)",
                            this.idle_timeout.as_secs_f64()
                        );
                        this.finish(Some(message));
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<S> Drop for SseRelay<S> {
    fn drop(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            let mut outcome = std::mem::take(&mut self.outcome);
            outcome.client_disconnected = true;
            if outcome.error.is_none() {
                outcome.error = Some("the client disconnected before the stream ended".into());
            }
            on_end(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{stream, StreamExt};
    use std::cell::RefCell;
    use std::rc::Rc;

    async fn relay(
        chunks: Vec<Result<&'static str, &'static str>>,
        wants_usage: bool,
    ) -> (String, StreamOutcome) {
        let seen = Rc::new(RefCell::new(None));
        let seen2 = seen.clone();
        let upstream = stream::iter(
            chunks
                .into_iter()
                .map(|c| c.map(|s| Bytes::from_static(s.as_bytes()))),
        );
        let relay = SseRelay::new(upstream, wants_usage, Duration::from_secs(5), move |o| {
            *seen2.borrow_mut() = Some(o);
        });
        let parts: Vec<Bytes> = crate::render::openai_sse(Box::pin(relay))
            .map(|r| r.expect("no transport error"))
            .collect()
            .await;
        let text = parts
            .iter()
            .map(|b| String::from_utf8_lossy(b).to_string())
            .collect::<String>();
        let outcome = seen.borrow_mut().take().expect("outcome reported");
        (text, outcome)
    }

    const ROLE: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"},\"finish_reason\":null}],\"usage\":null}\n\n";
    const HELLO: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}],\"usage\":null}\n\n";
    const STOP: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n";
    const USAGE: &str = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    #[actix_rt::test]
    async fn captured_chunks_include_the_hidden_usage_and_assemble() {
        let collect = |capture: bool| async move {
            let seen = Rc::new(RefCell::new(None));
            let seen2 = seen.clone();
            let upstream = stream::iter(
                [ROLE, HELLO, STOP, USAGE, DONE]
                    .map(|s| Ok::<_, &str>(Bytes::from_static(s.as_bytes()))),
            );
            let relay = SseRelay::new(upstream, false, Duration::from_secs(5), move |o| {
                *seen2.borrow_mut() = Some(o);
            })
            .capture(capture);
            let _: Vec<StreamItem> = relay.collect().await;
            let outcome: Option<StreamOutcome> = seen.borrow_mut().take();
            outcome.expect("outcome reported")
        };
        assert!(
            collect(false).await.chunks.is_empty(),
            "nothing kept unless asked"
        );
        let outcome = collect(true).await;
        assert_eq!(
            outcome.chunks.len(),
            4,
            "every chunk, the hidden usage one too"
        );
        let done = crate::caching::replay::assemble(crate::llm::CallKind::Chat, &outcome.chunks)
            .expect("assembles");
        let body: serde_json::Value = serde_json::from_slice(&done.body).unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], "Hello");
        assert_eq!(done.usage.total_tokens, 10);
    }

    #[actix_rt::test]
    async fn usage_is_captured_and_hidden_unless_asked() {
        let (text, outcome) = relay(
            vec![Ok(ROLE), Ok(HELLO), Ok(STOP), Ok(USAGE), Ok(DONE)],
            false,
        )
        .await;
        assert!(!text.contains("\"prompt_tokens\""), "{text}");
        assert!(text.ends_with(DONE));
        assert_eq!(outcome.usage.map(|u| u.total_tokens), Some(10));
        assert!(outcome.error.is_none());

        let (text, _) = relay(vec![Ok(ROLE), Ok(STOP), Ok(USAGE), Ok(DONE)], true).await;
        assert!(text.contains("\"prompt_tokens\":7"), "{text}");
    }

    #[actix_rt::test]
    async fn events_split_across_reads_are_reassembled() {
        let (text, outcome) = relay(
            vec![
                Ok("data: {\"choices\":[{\"delta\":{\"content\":\"He"),
                Ok("llo\"},\"finish_reason\":\"stop\"}]}\n"),
                Ok("\ndata: [DONE]\n\n"),
            ],
            false,
        )
        .await;
        assert_eq!(text, "data: {\"choices\":[{\"delta\":{\"content\":\"Hello\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
        assert!(outcome.error.is_none());
    }

    #[actix_rt::test]
    async fn missing_done_is_added_after_a_finish() {
        let (text, outcome) = relay(vec![Ok(ROLE), Ok(STOP)], false).await;
        assert!(text.ends_with(DONE));
        assert!(outcome.error.is_none());
    }

    #[actix_rt::test]
    async fn a_cut_stream_ends_with_an_error_event() {
        let (text, outcome) =
            relay(vec![Ok(ROLE), Ok(HELLO), Err("connection reset")], false).await;
        assert!(text.contains("data: {\"error\":"), "{text}");
        assert!(text.contains("connection reset"));
        assert!(text.ends_with(DONE));
        assert!(outcome.error.is_some());

        // A clean EOF without finish_reason is a cut too.
        let (text, outcome) = relay(vec![Ok(ROLE), Ok(HELLO)], false).await;
        assert!(text.contains("\"code\":\"stream_interrupted\""), "{text}");
        assert!(outcome.error.is_some());
    }

    #[actix_rt::test]
    async fn idle_timeout_ends_the_stream_with_an_error() {
        let upstream = stream::iter(vec![Ok::<_, &str>(Bytes::from_static(ROLE.as_bytes()))])
            .chain(stream::pending());
        let relay = SseRelay::new(upstream, false, Duration::from_millis(50), |_| {});
        let parts: Vec<Bytes> = crate::render::openai_sse(Box::pin(relay))
            .map(|r| r.expect("ok"))
            .collect()
            .await;
        let text: String = parts
            .iter()
            .map(|b| String::from_utf8_lossy(b).to_string())
            .collect();
        assert!(text.contains("stream_timeout"), "{text}");
        assert!(text.ends_with(DONE));
    }

    #[actix_rt::test]
    async fn a_stream_without_usage_is_estimated_from_its_relayed_text() {
        let (_, outcome) = relay(vec![Ok(ROLE), Ok(HELLO), Ok(HELLO), Ok(STOP)], false).await;
        assert_eq!(outcome.relayed_text_bytes, 10);
        let usage = outcome.usage_or_estimate(7);
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens
            ),
            (7, 3, 10)
        );
        // The provider's usage wins when it came.
        let (_, outcome) = relay(vec![Ok(ROLE), Ok(HELLO), Ok(STOP), Ok(USAGE)], false).await;
        assert_eq!(outcome.usage_or_estimate(1000).total_tokens, 10);
    }

    #[test]
    fn value_detection_tolerates_spaces() {
        assert_eq!(
            value_start_after(b"{\"finish_reason\": \"stop\"}", b"\"finish_reason\""),
            Some(b'"')
        );
        assert_eq!(
            value_start_after(b"{\"finish_reason\":null}", b"\"finish_reason\""),
            Some(b'n')
        );
        assert_eq!(
            value_start_after(b"{\"x\":\"finish_reason\"}", b"\"finish_reason\""),
            None
        );
    }

    /// A Responses API stream: relayed whole, finished by `response.completed`, whose usage
    /// (input and output tokens) is the stream's; one that ends before it is broken.
    #[actix_rt::test]
    async fn responses_events_finish_with_their_completed_response() {
        async fn run(events: &[&'static str]) -> (Vec<StreamItem>, StreamOutcome) {
            let seen = Rc::new(RefCell::new(None));
            let seen2 = seen.clone();
            let upstream = stream::iter(
                events
                    .iter()
                    .map(|e| Ok::<_, &str>(Bytes::from_static(e.as_bytes())))
                    .collect::<Vec<_>>(),
            );
            let relay = SseRelay::new(upstream, true, Duration::from_secs(5), move |o| {
                *seen2.borrow_mut() = Some(o);
            })
            .responses_events(true);
            let items: Vec<StreamItem> = relay.collect().await;
            let outcome = seen.borrow_mut().take().expect("outcome reported");
            (items, outcome)
        }
        const DELTA: &str = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hello\",\"sequence_number\":3}\n\n";
        const DONE: &str = "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":4,\"response\":{\"id\":\"resp_1\",\"error\":null,\"usage\":{\"input_tokens\":7,\"output_tokens\":2,\"total_tokens\":9,\"output_tokens_details\":{\"reasoning_tokens\":1}}}}\n\n";
        let (items, outcome) = run(&[DELTA, DONE]).await;
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
        let usage = outcome.usage.expect("usage");
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens,
                usage.reasoning_tokens
            ),
            (7, 2, 9, 1)
        );
        assert_eq!(outcome.response_id.as_deref(), Some("resp_1"));
        assert_eq!(items.len(), 3, "{items:?}");
        assert_eq!(items[2], StreamItem::Done);

        let (items, outcome) = run(&[DELTA]).await;
        assert!(outcome.error.is_some());
        assert_eq!(outcome.relayed_text_bytes, 5);
        assert!(
            matches!(items.last(), Some(StreamItem::Error(_))),
            "{items:?}"
        );
    }
}
