//! Token usage read from the provider-native responses a pass-through relays, without changing
//! a byte of them: OpenAI `usage` (chat, completions, embeddings, the Responses API), Anthropic
//! `usage` (with the stream's `message_start` / `message_delta`), Gemini and Vertex AI
//! `usageMetadata`, Bedrock Converse `usage` (and the `metadata` event of its event stream,
//! InvokeModel's `amazon-bedrock-invocationMetrics`), Cohere `meta.billed_units` (v1) and
//! `usage.billed_units` (v2, with the stream's `message-end`). A shape not listed yields no
//! usage: the request is still recorded, at zero tokens.

use base64::Engine as _;
use serde_json::Value;
use tollgate_wire::eventstream;

use crate::llm::Usage;

/// Largest non-stream body kept to read its usage (bigger bodies are relayed, not read).
pub const MAX_READ_BODY: usize = 16 * 1024 * 1024;
/// Longest SSE line kept while scanning a stream (longer lines are skipped).
const MAX_LINE: usize = 1024 * 1024;

fn count(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// The usage of one provider-native JSON document (a whole response, or one stream event), if
/// it has a known usage shape.
pub fn from_json(v: &Value) -> Option<Usage> {
    if let Some(m) = v.get("usageMetadata").filter(|m| m.is_object()) {
        // Gemini API and Vertex AI.
        let thoughts = count(m, "thoughtsTokenCount");
        let prompt = count(m, "promptTokenCount");
        let completion = count(m, "candidatesTokenCount") + thoughts;
        let total = m
            .get("totalTokenCount")
            .and_then(Value::as_u64)
            .unwrap_or(prompt + completion);
        return Some(Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: total,
            cached_tokens: count(m, "cachedContentTokenCount"),
            reasoning_tokens: thoughts,
        });
    }
    if let Some(units) = v.pointer("/meta/billed_units").filter(|u| u.is_object()) {
        // Cohere v1.
        return Some(billed(units));
    }
    let u = v.get("usage").filter(|u| u.is_object())?;
    if let Some(units) = u.get("billed_units").filter(|u| u.is_object()) {
        // Cohere v2.
        return Some(billed(units));
    }
    if u.get("prompt_tokens").is_some() {
        // OpenAI chat, completions, embeddings.
        let mut usage: Usage = serde_json::from_value(u.clone()).ok()?;
        if usage.total_tokens == 0 {
            usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
        }
        return Some(usage);
    }
    if u.get("inputTokens").is_some() || u.get("outputTokens").is_some() {
        // Bedrock Converse.
        let cache_read = count(u, "cacheReadInputTokens");
        let prompt = count(u, "inputTokens") + cache_read + count(u, "cacheWriteInputTokens");
        let completion = count(u, "outputTokens");
        return Some(Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            cached_tokens: cache_read,
            reasoning_tokens: 0,
        });
    }
    if u.get("input_tokens").is_some() || u.get("output_tokens").is_some() {
        // Anthropic Messages, and OpenAI's Responses API.
        let cache_read = count(u, "cache_read_input_tokens")
            + u.pointer("/input_tokens_details/cached_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0);
        let prompt = count(u, "input_tokens")
            + count(u, "cache_read_input_tokens")
            + count(u, "cache_creation_input_tokens");
        let completion = count(u, "output_tokens");
        return Some(Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            cached_tokens: cache_read,
            reasoning_tokens: u
                .pointer("/output_tokens_details/reasoning_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        });
    }
    None
}

fn billed(units: &Value) -> Usage {
    let prompt = count(units, "input_tokens");
    let completion = count(units, "output_tokens");
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        ..Usage::default()
    }
}

/// The model a response names (`model`, Gemini's `modelVersion`), when it names one.
pub fn model_of(v: &Value) -> Option<String> {
    v.get("model")
        .or_else(|| v.get("modelVersion"))
        .or_else(|| v.pointer("/message/model"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// How the relayed body is framed, from its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `text/event-stream`: each `data:` line is one JSON event.
    Sse,
    /// `application/vnd.amazon.eventstream`: Bedrock's binary frames.
    EventStream,
    /// A whole JSON document (or a JSON array of them: Gemini's stream without `alt=sse`).
    Json,
    /// Anything else: relayed, not read.
    Opaque,
}

impl Framing {
    pub fn of(content_type: &str) -> Framing {
        let ct = content_type.trim().to_ascii_lowercase();
        if ct.starts_with("text/event-stream") {
            Framing::Sse
        } else if ct.starts_with("application/vnd.amazon.eventstream") {
            Framing::EventStream
        } else if ct.starts_with("application/json") || ct.contains("+json") {
            Framing::Json
        } else {
            Framing::Opaque
        }
    }
}

/// Reads usage from a relayed body as its bytes go by (they are not changed or held back).
#[derive(Debug)]
pub struct Tap {
    framing: Framing,
    /// SSE: the unfinished line; JSON: the body so far (up to [`MAX_READ_BODY`]).
    buf: Vec<u8>,
    /// SSE: the current line outgrew [`MAX_LINE`] and is skipped; JSON: the body outgrew its cap.
    overflow: bool,
    decoder: eventstream::Decoder,
    /// Anthropic's stream: the prompt side comes with `message_start`, the output with
    /// `message_delta`.
    anthropic: Option<Usage>,
    usage: Option<Usage>,
    model: Option<String>,
}

impl Tap {
    pub fn new(framing: Framing) -> Tap {
        Tap {
            framing,
            buf: Vec::new(),
            overflow: false,
            decoder: eventstream::Decoder::default(),
            anthropic: None,
            usage: None,
            model: None,
        }
    }

    /// Look at the next bytes of the body.
    pub fn feed(&mut self, chunk: &[u8]) {
        match self.framing {
            Framing::Opaque => {}
            Framing::Json => {
                if self.buf.len() + chunk.len() > MAX_READ_BODY {
                    self.overflow = true;
                    self.buf = Vec::new();
                } else if !self.overflow {
                    self.buf.extend_from_slice(chunk);
                }
            }
            Framing::Sse => {
                let mut rest = chunk;
                while let Some(i) = rest.iter().position(|b| *b == b'\n') {
                    if !self.overflow {
                        self.buf.extend_from_slice(&rest[..i]);
                        let line = std::mem::take(&mut self.buf);
                        self.sse_line(&line);
                    }
                    self.buf.clear();
                    self.overflow = false;
                    rest = &rest[i + 1..];
                }
                if self.buf.len() + rest.len() > MAX_LINE {
                    self.overflow = true;
                    self.buf.clear();
                } else if !self.overflow {
                    self.buf.extend_from_slice(rest);
                }
            }
            Framing::EventStream => match self.decoder.push(chunk) {
                Ok(messages) => {
                    for m in messages {
                        self.event_message(&m);
                    }
                }
                Err(_) => self.framing = Framing::Opaque,
            },
        }
    }

    fn sse_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        if let Ok(v) = serde_json::from_slice::<Value>(data) {
            self.event(&v);
        }
    }

    fn event_message(&mut self, m: &eventstream::Message) {
        let Ok(v) = serde_json::from_slice::<Value>(&m.payload) else {
            return;
        };
        match m.header(":event-type") {
            // InvokeModelWithResponseStream: each chunk holds the model's own event, base64.
            Some("chunk") => {
                let inner = v
                    .get("bytes")
                    .and_then(Value::as_str)
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
                if let Some(inner) = inner {
                    if let Some(m) = inner.get("amazon-bedrock-invocationMetrics") {
                        let prompt = count(m, "inputTokenCount");
                        let completion = count(m, "outputTokenCount");
                        self.usage = Some(Usage {
                            prompt_tokens: prompt,
                            completion_tokens: completion,
                            total_tokens: prompt + completion,
                            ..Usage::default()
                        });
                    } else {
                        self.event(&inner);
                    }
                }
            }
            _ => self.event(&v),
        }
    }

    /// One JSON event of a stream.
    fn event(&mut self, v: &Value) {
        if self.model.is_none() {
            self.model = model_of(v);
        }
        match v.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                if let Some(u) = v.get("message").and_then(from_json) {
                    self.anthropic = Some(u);
                }
                return;
            }
            Some("message_delta") => {
                let output = v.pointer("/usage/output_tokens").and_then(Value::as_u64);
                let mut u = self.anthropic.unwrap_or_default();
                if let Some(out) = output {
                    u.completion_tokens = out;
                }
                // Newer streams repeat the prompt side here; the larger count wins.
                if let Some(Usage {
                    prompt_tokens,
                    cached_tokens,
                    ..
                }) = from_json(v)
                {
                    u.prompt_tokens = u.prompt_tokens.max(prompt_tokens);
                    u.cached_tokens = u.cached_tokens.max(cached_tokens);
                }
                u.total_tokens = u.prompt_tokens + u.completion_tokens;
                self.anthropic = Some(u);
                return;
            }
            // Cohere v2's last stream event.
            Some("message-end") => {
                if let Some(u) = v
                    .pointer("/delta/usage")
                    .and_then(|u| from_json(&serde_json::json!({ "usage": u })))
                {
                    self.usage = Some(u);
                }
                return;
            }
            // OpenAI's Responses API.
            Some("response.completed") => {
                if let Some(u) = v.get("response").and_then(from_json) {
                    self.usage = Some(u);
                }
                return;
            }
            _ => {}
        }
        // Cohere v1's last stream event.
        if v.get("event_type").and_then(Value::as_str) == Some("stream-end") {
            if let Some(u) = v.get("response").and_then(from_json) {
                self.usage = Some(u);
            }
            return;
        }
        if let Some(u) = from_json(v) {
            self.usage = Some(u);
        }
    }

    /// What the body showed, once it ended (or was cut).
    pub fn finish(mut self) -> Read {
        let mut body = None;
        match self.framing {
            Framing::Json if !self.overflow => {
                if let Ok(v) = serde_json::from_slice::<Value>(&self.buf) {
                    match &v {
                        Value::Array(items) => {
                            for item in items {
                                self.event(item);
                            }
                        }
                        doc => {
                            self.model = model_of(doc);
                            self.usage = from_json(doc);
                        }
                    }
                    body = Some(std::mem::take(&mut self.buf));
                }
            }
            Framing::Sse if !self.overflow && !self.buf.is_empty() => {
                let line = std::mem::take(&mut self.buf);
                self.sse_line(&line);
            }
            _ => {}
        }
        Read {
            usage: self.anthropic.or(self.usage),
            model: self.model,
            body,
        }
    }
}

/// What a relayed body showed.
#[derive(Debug, Default)]
pub struct Read {
    pub usage: Option<Usage>,
    /// The model the response names.
    pub model: Option<String>,
    /// A whole JSON body (not a stream), as received.
    pub body: Option<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tokens(u: Option<Usage>) -> (u64, u64, u64) {
        let u = u.expect("usage");
        (u.prompt_tokens, u.completion_tokens, u.total_tokens)
    }

    #[test]
    fn every_known_response_shape() {
        let openai = json!({"model": "gpt-4o", "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12, "prompt_tokens_details": {"cached_tokens": 2}}});
        assert_eq!(tokens(from_json(&openai)), (5, 7, 12));
        assert_eq!(from_json(&openai).unwrap().cached_tokens, 2);
        let anthropic = json!({"usage": {"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 1}});
        assert_eq!(tokens(from_json(&anthropic)), (15, 3, 18));
        let gemini = json!({"usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 2, "thoughtsTokenCount": 1, "totalTokenCount": 11}, "modelVersion": "gemini-2.0-flash"});
        assert_eq!(tokens(from_json(&gemini)), (8, 3, 11));
        assert_eq!(model_of(&gemini).as_deref(), Some("gemini-2.0-flash"));
        let bedrock = json!({"usage": {"inputTokens": 6, "outputTokens": 4, "totalTokens": 10}});
        assert_eq!(tokens(from_json(&bedrock)), (6, 4, 10));
        let cohere_v1 = json!({"meta": {"billed_units": {"input_tokens": 3, "output_tokens": 9}}});
        assert_eq!(tokens(from_json(&cohere_v1)), (3, 9, 12));
        let cohere_v2 = json!({"usage": {"billed_units": {"input_tokens": 2, "output_tokens": 5}, "tokens": {"input_tokens": 70}}});
        assert_eq!(tokens(from_json(&cohere_v2)), (2, 5, 7));
        assert!(from_json(&json!({"data": []})).is_none());
    }

    #[test]
    fn anthropic_stream_adds_message_start_and_message_delta_across_chunk_borders() {
        let text = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-x\",\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"hi\"}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":30}}\n\n";
        let mut tap = Tap::new(Framing::Sse);
        for piece in text.as_bytes().chunks(7) {
            tap.feed(piece);
        }
        let read = tap.finish();
        assert_eq!(tokens(read.usage), (12, 30, 42));
        assert_eq!(read.model.as_deref(), Some("claude-x"));
        assert!(read.body.is_none(), "a stream is not kept whole");
    }

    #[test]
    fn openai_and_gemini_streams_take_the_last_usage() {
        let mut tap = Tap::new(Framing::Sse);
        tap.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":null}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":6,\"total_tokens\":10}}\n\ndata: [DONE]\n\n");
        assert_eq!(tokens(tap.finish().usage), (4, 6, 10));
        let mut tap = Tap::new(Framing::Json);
        tap.feed(br#"[{"usageMetadata":{"promptTokenCount":1,"candidatesTokenCount":1}},"#);
        tap.feed(br#"{"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":5,"totalTokenCount":8}}]"#);
        assert_eq!(tokens(tap.finish().usage), (3, 5, 8));
    }

    #[test]
    fn bedrock_event_stream_metadata_and_cohere_stream_end() {
        let mut tap = Tap::new(Framing::EventStream);
        let frame = eventstream::encode(
            &[(":event-type", "metadata"), (":message-type", "event")],
            br#"{"usage":{"inputTokens":9,"outputTokens":2,"totalTokens":11},"metrics":{"latencyMs":5}}"#,
        );
        for piece in frame.chunks(5) {
            tap.feed(piece);
        }
        assert_eq!(tokens(tap.finish().usage), (9, 2, 11));
        let mut tap = Tap::new(Framing::Sse);
        tap.feed(b"event: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"COMPLETE\",\"usage\":{\"billed_units\":{\"input_tokens\":5,\"output_tokens\":8}}}}\n\n");
        assert_eq!(tokens(tap.finish().usage), (5, 8, 13));
    }

    #[test]
    fn unknown_and_oversized_bodies_have_no_usage() {
        let mut tap = Tap::new(Framing::Opaque);
        tap.feed(b"{\"usage\":{\"prompt_tokens\":1}}");
        assert!(tap.finish().usage.is_none());
        let mut tap = Tap::new(Framing::Json);
        tap.feed(b"not json");
        assert!(tap.finish().usage.is_none());
    }
}
