//! Stream translation: a provider's streaming body (its own SSE events, NDJSON lines or binary
//! frames) in, OpenAI `chat.completion.chunk` SSE events out. The gateway's relay
//! ([`crate::sse::SseRelay`]) then treats every provider's stream the same way: usage capture,
//! `[DONE]`, idle timeout and broken-stream errors are not the translators' business.
//!
//! A translator is fed the provider's bytes as they arrive, in arbitrary splits, and returns the
//! OpenAI events those bytes complete (often none). [`SseEvents`] and [`Lines`] do the framing for
//! SSE and NDJSON providers; [`ChunkWriter`] writes OpenAI chunks with one id, `created` and model
//! for the whole stream, and the final usage chunk.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::Stream;
use tollgate_wire::openai::{self, ChatCompletionChunk, Delta};

use crate::error::GatewayError;
use crate::llm::Usage;

/// Turns one provider stream into OpenAI SSE events.
pub trait StreamTranslator {
    /// Bytes from the provider, in whatever pieces the network delivered them. Returns complete
    /// OpenAI SSE events (`data: {…}\n\n`), possibly none.
    fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, GatewayError>;

    /// The provider closed the stream: emit what is left (typically the usage chunk and
    /// `data: [DONE]`). A stream that ended without the provider's own end marker should return
    /// no `[DONE]`, so the relay reports it as broken.
    fn finish(&mut self) -> Result<Bytes, GatewayError>;
}

/// A provider byte stream passed through a [`StreamTranslator`]. Upstream and translation errors
/// become the stream's error item (the relay turns it into an SSE error event).
pub struct TranslatedStream<S> {
    upstream: S,
    translator: Box<dyn StreamTranslator>,
    done: bool,
}

impl<S> TranslatedStream<S> {
    pub fn new(upstream: S, translator: Box<dyn StreamTranslator>) -> Self {
        Self {
            upstream,
            translator,
            done: false,
        }
    }
}

impl<S, E> Stream for TranslatedStream<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<Bytes, String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.upstream).poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => match this.translator.feed(&bytes) {
                    Ok(out) if out.is_empty() => continue,
                    Ok(out) => return Poll::Ready(Some(Ok(out))),
                    Err(e) => {
                        this.done = true;
                        return Poll::Ready(Some(Err(e.to_string())));
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e.to_string())));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    return match this.translator.finish() {
                        Ok(out) if out.is_empty() => Poll::Ready(None),
                        Ok(out) => Poll::Ready(Some(Ok(out))),
                        Err(e) => Poll::Ready(Some(Err(e.to_string()))),
                    };
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// One server-sent event: its `event:` name (if any) and its `data:` lines joined with `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Splits an SSE byte stream into events, across arbitrary chunk boundaries.
#[derive(Debug, Default)]
pub struct SseEvents {
    buf: BytesMut,
}

impl SseEvents {
    /// Append bytes and return every event they complete. Events without data (comments,
    /// keep-alives) are skipped.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = event_end(&self.buf) {
            let raw = self.buf.split_to(end);
            if let Some(event) = parse_event(&raw) {
                events.push(event);
            }
        }
        events
    }

    /// The stream ended: a last event without its blank-line terminator, if any.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let raw = std::mem::take(&mut self.buf);
        parse_event(&raw)
    }
}

fn event_end(buf: &[u8]) -> Option<usize> {
    let lf = memchr::memmem::find(buf, b"\n\n").map(|p| p + 2);
    let crlf = memchr::memmem::find(buf, b"\r\n\r\n").map(|p| p + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn parse_event(raw: &[u8]) -> Option<SseEvent> {
    let text = String::from_utf8_lossy(raw);
    let mut event = None;
    let mut data: Option<String> = None;
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some(rest) = line.strip_prefix("event:") {
            event = Some(rest.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("data:") {
            let rest = rest.strip_prefix(' ').unwrap_or(rest);
            match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(rest);
                }
                None => data = Some(rest.to_string()),
            }
        }
    }
    data.map(|data| SseEvent { event, data })
}

/// Splits a newline-delimited byte stream (NDJSON) into lines, across chunk boundaries.
#[derive(Debug, Default)]
pub struct Lines {
    buf: BytesMut,
}

impl Lines {
    /// Append bytes and return every complete, non-blank line they finish.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(chunk);
        let mut lines = Vec::new();
        while let Some(pos) = memchr::memchr(b'\n', &self.buf) {
            let line = self.buf.split_to(pos + 1);
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if !text.is_empty() {
                lines.push(text.to_string());
            }
        }
        lines
    }

    /// The stream ended: a last line without its newline, if any.
    pub fn finish(&mut self) -> Option<String> {
        let raw = std::mem::take(&mut self.buf);
        let text = String::from_utf8_lossy(&raw).trim().to_string();
        (!text.is_empty()).then_some(text)
    }
}

/// Writes OpenAI `chat.completion.chunk` events for one stream.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    pub id: String,
    pub model: String,
    pub created: u64,
    out: BytesMut,
}

impl ChunkWriter {
    pub fn new(id: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            model: model.into(),
            created: super::now_secs(),
            out: BytesMut::new(),
        }
    }

    /// One chunk with a single choice: `delta` (for example [`Delta::text`]) and an optional
    /// finish reason.
    pub fn delta(&mut self, index: u32, delta: Delta<'_>, finish_reason: Option<&str>) {
        let chunk = ChatCompletionChunk::delta(
            self.id.as_str(),
            self.created,
            self.model.as_str(),
            index,
            delta,
            finish_reason,
        );
        Self::write(&mut self.out, &chunk);
    }

    /// The final usage chunk (`choices: []`), as OpenAI sends it with `include_usage`.
    pub fn usage(&mut self, usage: &Usage) {
        self.usage_object(usage.to_openai());
    }

    /// The final usage chunk with a usage object an adapter completed (extra counts).
    pub fn usage_object(&mut self, usage: openai::Usage) {
        let chunk =
            ChatCompletionChunk::usage(self.id.as_str(), self.created, self.model.as_str(), usage);
        Self::write(&mut self.out, &chunk);
    }

    /// `data: [DONE]`.
    pub fn done(&mut self) {
        self.out.extend_from_slice(crate::sse::DONE_EVENT);
    }

    fn write(out: &mut BytesMut, chunk: &ChatCompletionChunk<'_>) {
        out.extend_from_slice(b"data: ");
        // Written in place; serializing these types cannot fail (string keys, no floats).
        let _ = serde_json::to_writer((&mut *out).writer(), chunk);
        out.extend_from_slice(b"\n\n");
    }

    /// Everything written since the last take.
    pub fn take(&mut self) -> Bytes {
        self.out.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use serde_json::Value;

    #[test]
    fn sse_events_survive_any_split() {
        let raw = b"event: message_start\ndata: {\"a\":1}\n\n: ping\n\nevent: x\r\ndata: line1\r\ndata: line2\r\n\r\ndata: tail";
        for split in 1..raw.len() {
            let mut p = SseEvents::default();
            let mut events = p.push(&raw[..split]);
            events.extend(p.push(&raw[split..]));
            events.extend(p.finish());
            assert_eq!(
                events,
                vec![
                    SseEvent {
                        event: Some("message_start".into()),
                        data: "{\"a\":1}".into()
                    },
                    SseEvent {
                        event: Some("x".into()),
                        data: "line1\nline2".into()
                    },
                    SseEvent {
                        event: None,
                        data: "tail".into()
                    },
                ],
                "split at {split}"
            );
        }
    }

    #[test]
    fn lines_survive_any_split() {
        let raw = b"{\"a\":1}\n\n{\"b\":2}\r\n{\"c\":3}";
        for split in 1..raw.len() {
            let mut p = Lines::default();
            let mut lines = p.push(&raw[..split]);
            lines.extend(p.push(&raw[split..]));
            lines.extend(p.finish());
            assert_eq!(lines, vec!["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]);
        }
    }

    #[test]
    fn chunk_writer_shapes() {
        let mut w = ChunkWriter::new("chatcmpl-1", "m");
        w.delta(0, Delta::text("Hi").with_role(), None);
        w.usage(&Usage {
            prompt_tokens: 3,
            completion_tokens: 2,
            total_tokens: 5,
            cached_tokens: 1,
            reasoning_tokens: 0,
        });
        w.done();
        let text = String::from_utf8(w.take().to_vec()).unwrap();
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.len(), 3);
        let first: Value = serde_json::from_str(&events[0][6..]).unwrap();
        assert_eq!(first["choices"][0]["delta"]["content"], "Hi");
        assert_eq!(first["object"], "chat.completion.chunk");
        let usage: Value = serde_json::from_str(&events[1][6..]).unwrap();
        assert_eq!(usage["usage"]["total_tokens"], 5);
        assert_eq!(usage["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
        assert_eq!(events[2], "data: [DONE]");
        assert!(w.take().is_empty());
    }

    struct Upper;
    impl StreamTranslator for Upper {
        fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, GatewayError> {
            if chunk == b"bad" {
                return Err(GatewayError::internal("bad bytes"));
            }
            Ok(Bytes::from(chunk.to_ascii_uppercase()))
        }
        fn finish(&mut self) -> Result<Bytes, GatewayError> {
            Ok(Bytes::from_static(b"END"))
        }
    }

    #[actix_web::test]
    async fn translated_stream_feeds_finishes_and_stops_on_errors() {
        let ok = futures_util::stream::iter(vec![
            Ok::<_, String>(Bytes::from_static(b"ab")),
            Ok(Bytes::from_static(b"")),
            Ok(Bytes::from_static(b"c")),
        ]);
        let out: Vec<_> = TranslatedStream::new(ok, Box::new(Upper)).collect().await;
        assert_eq!(
            out,
            vec![
                Ok(Bytes::from_static(b"AB")),
                Ok(Bytes::from_static(b"C")),
                Ok(Bytes::from_static(b"END"))
            ]
        );
        let bad = futures_util::stream::iter(vec![
            Ok::<_, String>(Bytes::from_static(b"bad")),
            Ok(Bytes::from_static(b"never")),
        ]);
        let out: Vec<_> = TranslatedStream::new(bad, Box::new(Upper)).collect().await;
        assert_eq!(out.len(), 1);
        assert!(out[0].as_ref().unwrap_err().contains("bad bytes"));
    }
}
