//! `mock_response`: LiteLLM's way to get a canned answer without calling a provider, set per request
//! (`"mock_response": "hi"`) or per deployment (`litellm_params.mock_response`). Useful for wiring
//! tests and demos; the answer has the real OpenAI shape, streamed or not.
//!
//! A streamed answer is generated lazily as the client reads: one chunk per word, written a few
//! KiB at a time, so its memory is one copy of the text however long it is.

use std::borrow::Cow;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use serde_json::Value;
use tollgate_wire::openai;

use crate::llm::{CallKind, LlmRequest, Usage};
use crate::outcome::{Completion, Reply, StreamItem};

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Rough token count for canned answers: words, at least 1.
fn words(text: &str) -> u64 {
    text.split_whitespace().count().max(1) as u64
}

/// The canned answer to `req`: a complete reply, or a stream generated as the client reads it.
pub fn respond(req: &LlmRequest, content: &Value) -> Reply {
    let text: Cow<'_, str> = match content {
        Value::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(other.to_string()),
    };
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = now_secs();
    let prompt_tokens = 10;
    let completion_tokens = words(&text);
    let usage = openai::Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens + completion_tokens,
        ..openai::Usage::default()
    };
    let model = req.model.as_str();
    let mut content_type = None;
    let body = match (req.kind, req.stream) {
        (CallKind::Transcription | CallKind::Translation, _) => {
            // The text as the transcript, in the format asked for.
            match req.body.get("response_format").and_then(Value::as_str) {
                Some(format @ ("text" | "srt" | "vtt")) => {
                    content_type = Some(crate::audio::text_content_type(format).to_string());
                    Bytes::from(text.into_owned())
                }
                _ => encode(&serde_json::json!({"text": text})),
            }
        }
        (CallKind::Speech, _) => {
            // The text's bytes as the "audio".
            content_type = Some("audio/mpeg".to_string());
            Bytes::from(text.into_owned())
        }
        (CallKind::Rerank, _) => encode(&crate::rerank::canned(req)),
        (CallKind::Embedding, _) => encode(&openai::EmbeddingList::new(
            model,
            [openai::EmbeddingVector::Float32(vec![0.0; 3])],
            prompt_tokens,
        )),
        (CallKind::ImageGeneration | CallKind::ImageEdit, _) => {
            // LiteLLM's canned image: the text as the image's link.
            encode(&openai::ImagesResponse {
                created,
                data: vec![openai::Image {
                    url: Some(text),
                    ..openai::Image::default()
                }],
                usage: None,
            })
        }
        (CallKind::Moderation, _) => {
            // A canned moderation: nothing flagged.
            let each = |v: Value| {
                openai::MODERATION_CATEGORIES
                    .iter()
                    .map(|c| (c.to_string(), v.clone()))
                    .collect::<serde_json::Map<_, _>>()
            };
            encode(&openai::ModerationResponse {
                id: format!("modr-{}", uuid::Uuid::new_v4().simple()).into(),
                model: model.into(),
                results: vec![openai::ModerationResult {
                    flagged: false,
                    categories: each(Value::Bool(false)),
                    category_scores: each(Value::from(0.0)),
                    category_applied_input_types: None,
                }],
            })
        }
        (CallKind::Completion, false) => {
            let choice = text_choice(text, Some("stop"));
            encode(&text_completion(
                id.into(),
                created,
                model,
                vec![choice],
                Some(usage),
            ))
        }
        // A Responses request's canned answer is a chat completion, rendered as a Responses
        // object like every answer of a provider spoken to in chat.
        (CallKind::Chat | CallKind::Responses, false) => {
            let message = openai::AssistantMessage::new(Some(text));
            let choice = openai::Choice::new(0, message, "stop");
            encode(&openai::ChatCompletion::new(
                id,
                created,
                model,
                vec![choice],
                usage,
            ))
        }
        (kind, true) => {
            return Reply::Stream(Box::pin(MockStream {
                chat: kind != CallKind::Completion,
                id,
                created,
                model: req.model.clone(),
                text: text.into_owned(),
                usage: req.client_wants_usage.then_some(usage),
                step: Step::Role,
            }))
        }
    };
    Reply::Complete(Completion {
        body,
        usage: Usage::default(),
        id: None,
        content_type,
    })
}

fn encode(value: &impl serde::Serialize) -> Bytes {
    // Writing these types into a Vec cannot fail.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

fn text_choice<'a>(text: Cow<'a, str>, finish_reason: Option<&'a str>) -> openai::TextChoice<'a> {
    openai::TextChoice {
        text,
        index: 0,
        logprobs: None,
        finish_reason: finish_reason.map(Cow::Borrowed),
    }
}

fn text_completion<'a>(
    id: Cow<'a, str>,
    created: u64,
    model: &'a str,
    choices: Vec<openai::TextChoice<'a>>,
    usage: Option<openai::Usage>,
) -> openai::TextCompletion<'a> {
    openai::TextCompletion {
        id,
        object: Cow::Borrowed("text_completion"),
        created,
        model: Cow::Borrowed(model),
        choices,
        usage: usage.map(Some),
        extra: Default::default(),
    }
}

/// Where a [`MockStream`] is: the role chunk, the words from a byte offset, the finish chunk, the
/// usage chunk, the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Role,
    Words(usize),
    Finish,
    Usage,
    End,
}

/// A streamed canned answer, its chunks written only when the client reads them.
struct MockStream {
    chat: bool,
    id: String,
    created: u64,
    model: String,
    text: String,
    usage: Option<openai::Usage>,
    step: Step,
}

impl MockStream {
    /// A chunk of the answer: the role (`start`), a word, or the finish.
    fn chunk(&self, word: Option<&str>, start: bool, finish: bool) -> StreamItem {
        let finish_reason = finish.then_some("stop");
        let chunk = if self.chat {
            let delta = match (start, word) {
                (true, _) => openai::Delta::start(),
                (false, Some(word)) => openai::Delta::text(word),
                (false, None) => openai::Delta::default(),
            };
            let chunk = openai::ChatCompletionChunk::delta(
                self.id.as_str(),
                self.created,
                self.model.as_str(),
                0,
                delta,
                finish_reason,
            );
            encode(&chunk)
        } else {
            let choice = text_choice(Cow::Borrowed(word.unwrap_or("")), finish_reason);
            encode(&self.text_chunk(vec![choice], None))
        };
        StreamItem::Chunk(chunk)
    }

    fn text_chunk<'a>(
        &'a self,
        choices: Vec<openai::TextChoice<'a>>,
        usage: Option<openai::Usage>,
    ) -> openai::TextCompletion<'a> {
        text_completion(
            Cow::Borrowed(&self.id),
            self.created,
            &self.model,
            choices,
            usage,
        )
    }

    /// The final usage chunk (`choices: []`).
    fn usage_chunk(&self, usage: openai::Usage) -> StreamItem {
        let chunk = if self.chat {
            encode(&openai::ChatCompletionChunk::usage(
                self.id.as_str(),
                self.created,
                self.model.as_str(),
                usage,
            ))
        } else {
            encode(&self.text_chunk(Vec::new(), Some(usage)))
        };
        StreamItem::Chunk(chunk)
    }

    /// The next item, or `None` at the end.
    fn next_item(&mut self) -> Option<StreamItem> {
        loop {
            let (item, next) = match self.step {
                Step::Role => (Some(self.chunk(None, true, false)), Step::Words(0)),
                Step::Words(at) if at < self.text.len() => {
                    let rest = &self.text[at..];
                    let len = rest.find(' ').map_or(rest.len(), |i| i + 1);
                    (
                        Some(self.chunk(Some(&rest[..len]), false, false)),
                        Step::Words(at + len),
                    )
                }
                Step::Words(_) => (Some(self.chunk(None, false, true)), Step::Finish),
                Step::Finish => (self.usage.map(|u| self.usage_chunk(u)), Step::Usage),
                Step::Usage => (Some(StreamItem::Done), Step::End),
                Step::End => return None,
            };
            self.step = next;
            if item.is_some() {
                return item;
            }
        }
    }
}

impl futures_util::Stream for MockStream {
    type Item = StreamItem;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.get_mut().next_item())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn request(kind: CallKind, usage: bool) -> LlmRequest {
        LlmRequest {
            kind,
            model: "m".into(),
            stream: true,
            client_wants_usage: usage,
            body: Default::default(),
            uploads: Vec::new(),
            gateway: Default::default(),
        }
    }

    async fn collect(stream: MockStream) -> (usize, Vec<Value>, bool) {
        let chunks: Vec<Bytes> = crate::render::openai_sse(Box::pin(stream))
            .map(|c| c.expect("infallible"))
            .collect::<Vec<_>>()
            .await;
        let polls = chunks.len();
        let all: Vec<u8> = chunks.concat();
        let text = String::from_utf8(all).expect("utf-8");
        let mut events = Vec::new();
        let mut done = false;
        for data in text.split("\n\n").filter(|e| !e.is_empty()) {
            let data = data.strip_prefix("data: ").expect("data line");
            if data == "[DONE]" {
                done = true;
            } else {
                events.push(serde_json::from_str(data).expect("json"));
            }
        }
        (polls, events, done)
    }

    fn stream(kind: CallKind, text: &str, usage: bool) -> MockStream {
        let req = request(kind, usage);
        MockStream {
            chat: kind == CallKind::Chat,
            id: "chatcmpl-x".into(),
            created: 1,
            model: req.model.clone(),
            text: text.into(),
            usage: usage.then_some(openai::Usage {
                prompt_tokens: 10,
                ..openai::Usage::default()
            }),
            step: Step::Role,
        }
    }

    #[actix_rt::test]
    async fn chat_stream_has_role_words_finish_usage_and_done() {
        let (_, events, done) = collect(stream(CallKind::Chat, "hello big world", true)).await;
        assert!(done);
        assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
        let words: String = events[1..4]
            .iter()
            .map(|e| e["choices"][0]["delta"]["content"].as_str().expect("word"))
            .collect();
        assert_eq!(words, "hello big world");
        assert_eq!(events[4]["choices"][0]["finish_reason"], "stop");
        assert_eq!(events[5]["usage"]["prompt_tokens"], 10);
        assert_eq!(events.len(), 6);
    }

    #[actix_rt::test]
    async fn completion_stream_without_usage() {
        let (_, events, done) = collect(stream(CallKind::Completion, "a b", false)).await;
        assert!(done);
        assert_eq!(events.len(), 4);
        assert_eq!(events[1]["choices"][0]["text"], "a ");
        assert_eq!(events[2]["choices"][0]["text"], "b");
        assert_eq!(events[3]["choices"][0]["finish_reason"], "stop");
    }

    #[actix_rt::test]
    async fn a_long_answer_comes_in_bounded_pieces() {
        let text = "word ".repeat(200_000);
        let (polls, events, done) = collect(stream(CallKind::Chat, &text, false)).await;
        assert!(done);
        assert_eq!(events.len(), 200_000 + 2);
        assert!(polls > 100, "{polls} polls");
    }

    #[test]
    fn canned_transcripts_speech_and_rerank_have_their_shapes() {
        let parse = |kind, body: Value| {
            LlmRequest::parse(kind, body.to_string().as_bytes(), None).expect("valid")
        };
        let complete = |reply: Reply| match reply {
            Reply::Complete(c) => c,
            _ => panic!("a complete reply"),
        };
        let text = Value::String("hello there".into());
        let req = parse(CallKind::Transcription, serde_json::json!({"model": "w"}));
        let c = complete(respond(&req, &text));
        assert_eq!(&c.body[..], br#"{"text":"hello there"}"#);
        assert_eq!(c.content_type, None);
        let req = parse(
            CallKind::Translation,
            serde_json::json!({"model": "w", "response_format": "srt"}),
        );
        let c = complete(respond(&req, &text));
        assert_eq!(&c.body[..], b"hello there");
        assert_eq!(c.content_type.as_deref(), Some("text/plain; charset=utf-8"));
        let req = parse(
            CallKind::Speech,
            serde_json::json!({"model": "t", "input": "x", "voice": "alloy"}),
        );
        assert_eq!(
            complete(respond(&req, &text)).content_type.as_deref(),
            Some("audio/mpeg")
        );
        let req = parse(
            CallKind::Rerank,
            serde_json::json!({"model": "r", "query": "q", "documents": ["a", "b"], "top_n": 1}),
        );
        let v: Value = serde_json::from_slice(&complete(respond(&req, &text)).body).expect("json");
        assert_eq!(
            v["results"],
            serde_json::json!([{"index": 0, "relevance_score": 1.0}])
        );
        assert_eq!(v["meta"]["billed_units"]["search_units"], 1);
    }
}
