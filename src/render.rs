//! Renderers: a pipeline [`Outcome`] as the HTTP response of one inbound API.
//!
//! * [`openai`]: OpenAI chat / completions / embeddings / images / moderations JSON, OpenAI SSE,
//!   the OpenAI error envelope (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`,
//!   `/v1/images/*`, `/v1/moderations`);
//! * [`anthropic`]: Anthropic Messages JSON, Anthropic SSE events, Anthropic's error body
//!   (`/v1/messages`);
//! * [`responses`]: OpenAI Responses objects and their typed SSE events, the OpenAI error
//!   envelope (`/v1/responses`).
//!
//! Every response, success or error, carries the outcome's facts as `x-litellm-*` headers; errors
//! keep their status and `retry-after`.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::BoxBody;
use actix_web::http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{HttpResponse, HttpResponseBuilder, ResponseError};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use serde_json::Value;

use crate::error::GatewayError;
use crate::messages_api::{self, AnthropicStream};
use crate::outcome::{ChunkStream, Outcome, Reply, StreamItem};
use crate::responses_api::{self, Echo, OnFinal, ResponsesStream};
use crate::sse::{error_event, DONE_EVENT};

/// About how many bytes of events one write to the client carries at most, when the stream has
/// more ready (a canned answer, a provider that sent many chunks at once).
const BATCH_BYTES: usize = 16 * 1024;

/// The outcome as OpenAI's API answers it.
pub fn openai(outcome: Outcome) -> HttpResponse {
    let mut response = match outcome.result {
        Ok(Reply::Complete(completion)) => HttpResponse::Ok()
            .content_type(
                completion
                    .content_type
                    .as_deref()
                    .unwrap_or("application/json"),
            )
            .body(completion.body),
        Ok(Reply::Stream(stream)) => sse_response().streaming(openai_sse(stream)),
        Ok(Reply::Binary(binary)) => binary_response(binary),
        Err(err) => err.error_response(),
    };
    outcome.facts.apply(response.headers_mut());
    response
}

/// A binary reply relayed chunk by chunk as the provider sends it; a provider stream that breaks
/// cuts the client's connection (a truncated audio file cannot carry an error).
fn binary_response(binary: crate::outcome::BinaryReply) -> HttpResponse {
    use futures_util::StreamExt;
    HttpResponse::Ok()
        .content_type(binary.content_type)
        .insert_header(("x-accel-buffering", "no"))
        .streaming(
            binary
                .body
                .map(|item| item.map_err(actix_web::error::ErrorBadGateway)),
        )
}

/// Several model groups' answers (LiteLLM's batch completions, `"model": "a,b"`): with
/// `fastest_response`, the winner as one response marked `x-litellm-fastest_response_batch_completion:
/// True` (its own `x-litellm-model-id` and model group); otherwise a JSON list with each group's
/// completion or error envelope in the order asked, answered 200.
pub fn openai_batch(batch: crate::pipeline::Batch) -> HttpResponse {
    use crate::pipeline::Batch;
    match batch {
        Batch::Refused(outcome) => openai(outcome),
        Batch::Fastest(outcome) => {
            let won = outcome.result.is_ok();
            let mut response = openai(outcome);
            if won {
                response.headers_mut().insert(
                    actix_web::http::header::HeaderName::from_static(
                        "x-litellm-fastest_response_batch_completion",
                    ),
                    HeaderValue::from_static("True"),
                );
            }
            response
        }
        Batch::All(outcomes) => {
            let mut list = BytesMut::from(&b"["[..]);
            for (i, outcome) in outcomes.into_iter().enumerate() {
                if i > 0 {
                    list.extend_from_slice(b",");
                }
                match outcome.result {
                    Ok(Reply::Complete(completion)) => list.extend_from_slice(&completion.body),
                    Ok(Reply::Stream(_) | Reply::Binary(_)) => list.extend_from_slice(
                        GatewayError::internal("a stream cannot be listed")
                            .body()
                            .to_string()
                            .as_bytes(),
                    ),
                    Err(err) => list.extend_from_slice(err.body().to_string().as_bytes()),
                }
            }
            list.extend_from_slice(b"]");
            HttpResponse::Ok()
                .content_type("application/json")
                .body(list.freeze())
        }
    }
}

/// The outcome as Anthropic's Messages API answers it. `model` is the model the client asked for
/// (used until the provider names its own).
pub fn anthropic(outcome: Outcome, model: &str) -> HttpResponse {
    let mut response = match outcome.result {
        Ok(Reply::Complete(completion)) => {
            match serde_json::from_slice::<Value>(&completion.body) {
                Ok(v) => HttpResponse::Ok()
                    .content_type("application/json")
                    .body(messages_api::response_from_openai(&v, model).to_string()),
                Err(e) => anthropic_error(&GatewayError::internal(format!(
                    "the response is not JSON: {e}"
                ))),
            }
        }
        Ok(Reply::Binary(_)) => anthropic_error(&GatewayError::internal(
            "a binary reply has no Messages API form",
        )),
        Ok(Reply::Stream(stream)) => {
            let writer = AnthropicStream::new(model, outcome.facts.prompt_tokens);
            sse_response().streaming(Batched {
                items: stream,
                writer,
                ended: false,
            })
        }
        Err(err) => anthropic_error(&err),
    };
    outcome.facts.apply(response.headers_mut());
    response
}

/// The outcome as OpenAI's Responses API answers it: a Responses object (a chat answer converted,
/// see [`responses_api::complete_object`]), typed Responses events, or the OpenAI error envelope.
/// `on_final` gets a stream's final response object once it is written.
pub fn responses(mut outcome: Outcome, echo: &Echo, on_final: Option<OnFinal>) -> HttpResponse {
    responses_api::complete_object(&mut outcome, echo);
    let mut response = match outcome.result {
        Ok(Reply::Complete(completion)) => HttpResponse::Ok()
            .content_type("application/json")
            .body(completion.body),
        Ok(Reply::Stream(stream)) => {
            let writer =
                ResponsesStream::new(outcome.facts.responses_shaped, echo.clone(), on_final);
            sse_response().streaming(Batched {
                items: stream,
                writer,
                ended: false,
            })
        }
        Ok(Reply::Binary(_)) => {
            GatewayError::internal("a binary reply has no Responses API form").error_response()
        }
        Err(err) => err.error_response(),
    };
    outcome.facts.apply(response.headers_mut());
    response
}

/// An error in Anthropic's shape, status and `retry-after` kept.
pub fn anthropic_error(err: &GatewayError) -> HttpResponse {
    let mut response = err.error_response();
    let status = response.status().as_u16();
    let body = messages_api::error_body(messages_api::error_type(status), &err.to_string());
    response.headers_mut().remove(CONTENT_LENGTH);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.set_body(BoxBody::new(body.to_string()))
}

fn sse_response() -> HttpResponseBuilder {
    let mut builder = HttpResponse::Ok();
    builder
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"));
    builder
}

/// A typed stream as OpenAI SSE: `data: {chunk}` events, an error event, `data: [DONE]`.
pub fn openai_sse(
    items: ChunkStream,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> + Unpin {
    Batched {
        items,
        writer: OpenAiSse,
        ended: false,
    }
}

/// How one inbound API writes a typed stream's items as SSE.
trait SseWriter {
    fn item(&mut self, item: StreamItem, out: &mut BytesMut);
    /// The typed stream ended.
    fn end(&mut self, _out: &mut BytesMut) {}
}

struct OpenAiSse;

impl SseWriter for OpenAiSse {
    fn item(&mut self, item: StreamItem, out: &mut BytesMut) {
        match item {
            StreamItem::Chunk(data) => {
                // One `data:` line per line of the payload (a chunk's JSON is normally one line).
                for line in data.split(|b| *b == b'\n') {
                    out.extend_from_slice(b"data: ");
                    out.extend_from_slice(line);
                    out.extend_from_slice(b"\n");
                }
                out.extend_from_slice(b"\n");
            }
            StreamItem::Comment(event) => {
                out.extend_from_slice(&event);
                if !event.ends_with(b"\n\n") {
                    out.extend_from_slice(if event.ends_with(b"\n") {
                        b"\n"
                    } else {
                        b"\n\n"
                    });
                }
            }
            StreamItem::Error(message) => out.extend_from_slice(&error_event(&message)),
            StreamItem::Done => out.extend_from_slice(DONE_EVENT),
        }
    }
}

/// Anthropic's events (`message_start`, `content_block_*`, `message_delta`, `message_stop`).
impl SseWriter for AnthropicStream {
    fn item(&mut self, item: StreamItem, out: &mut BytesMut) {
        out.extend_from_slice(&self.push(&item));
    }

    fn end(&mut self, out: &mut BytesMut) {
        out.extend_from_slice(&self.close());
    }
}

/// The Responses API's typed events.
impl SseWriter for ResponsesStream {
    fn item(&mut self, item: StreamItem, out: &mut BytesMut) {
        out.extend_from_slice(&self.push(&item));
    }

    fn end(&mut self, out: &mut BytesMut) {
        out.extend_from_slice(&self.close());
    }
}

/// Items written as they are ready, several to a write up to [`BATCH_BYTES`].
struct Batched<W> {
    items: ChunkStream,
    writer: W,
    ended: bool,
}

impl<W: SseWriter + Unpin> Stream for Batched<W> {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let mut out = BytesMut::new();
        loop {
            if out.len() >= BATCH_BYTES {
                return Poll::Ready(Some(Ok(out.freeze())));
            }
            let polled = if this.ended {
                Poll::Pending
            } else {
                this.items.as_mut().poll_next(cx)
            };
            match polled {
                Poll::Ready(Some(item)) => this.writer.item(item, &mut out),
                Poll::Ready(None) => {
                    // The items stream is not polled again once it ended.
                    this.ended = true;
                    this.writer.end(&mut out);
                }
                Poll::Pending => {
                    return match (out.is_empty(), this.ended) {
                        (false, _) => Poll::Ready(Some(Ok(out.freeze()))),
                        (true, true) => Poll::Ready(None),
                        (true, false) => Poll::Pending,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Usage;
    use crate::outcome::{Completion, Facts};
    use std::time::Instant;

    fn stream(items: Vec<StreamItem>) -> Outcome {
        Outcome {
            facts: Facts::new(Instant::now()),
            result: Ok(Reply::Stream(Box::pin(futures_util::stream::iter(items)))),
        }
    }

    fn chunk(json: &str) -> StreamItem {
        StreamItem::Chunk(Bytes::copy_from_slice(json.as_bytes()))
    }

    async fn text(response: HttpResponse) -> String {
        let bytes = actix_web::body::to_bytes(response.into_body())
            .await
            .expect("body");
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    const HELLO: &str = r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}"#;
    const STOP: &str =
        r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;

    #[actix_rt::test]
    async fn one_stream_renders_as_openai_and_as_anthropic_sse() {
        let items = || vec![chunk(HELLO), chunk(STOP), StreamItem::Done];
        let response = openai(stream(items()));
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .expect("content-type"),
            "text/event-stream"
        );
        assert!(response.headers().contains_key("x-litellm-call-id"));
        assert_eq!(
            text(response).await,
            format!("data: {HELLO}\n\ndata: {STOP}\n\ndata: [DONE]\n\n")
        );

        let out = text(anthropic(stream(items()), "asked")).await;
        let events: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .collect();
        assert_eq!(
            events,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert!(out.contains(r#""text":"Hello""#), "{out}");
    }

    #[actix_rt::test]
    async fn a_broken_stream_ends_with_an_error_event_in_both_formats() {
        let items = || vec![chunk(HELLO), StreamItem::Error("cut".into())];
        let out = text(openai(stream(items()))).await;
        assert!(out.contains(r#""code":"stream_interrupted""#), "{out}");
        assert!(out.ends_with("data: [DONE]\n\n"));

        let out = text(anthropic(stream(items()), "m")).await;
        assert!(out.contains("event: error"), "{out}");
        assert!(!out.contains("message_stop"), "{out}");
        // A typed stream that just stops (no Done, no Error) is broken too.
        let out = text(anthropic(stream(vec![chunk(HELLO)]), "m")).await;
        assert!(out.contains("event: error"), "{out}");
    }

    #[actix_rt::test]
    async fn a_long_stream_is_written_in_bounded_pieces() {
        let items: Vec<StreamItem> = (0..10_000).map(|_| chunk(HELLO)).collect();
        let body = openai_sse(Box::pin(futures_util::stream::iter(items)));
        let pieces: Vec<Bytes> = futures_util::StreamExt::collect::<Vec<_>>(body)
            .await
            .into_iter()
            .map(|p| p.expect("ok"))
            .collect();
        assert!(pieces.len() > 10, "{} pieces", pieces.len());
        assert!(pieces.iter().all(|p| p.len() < BATCH_BYTES + 1024));
    }

    #[actix_rt::test]
    async fn completions_and_errors_in_anthropic_shape() {
        let body = r#"{"id":"chatcmpl-1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
        let outcome = Outcome {
            facts: Facts::new(Instant::now()),
            result: Ok(Reply::Complete(Completion {
                body: Bytes::from_static(body.as_bytes()),
                usage: Usage::default(),
                id: None,
                content_type: None,
            })),
        };
        let response = anthropic(outcome, "asked");
        assert!(response.headers().contains_key("x-litellm-call-id"));
        let v: Value = serde_json::from_str(&text(response).await).expect("json");
        assert_eq!(v["type"], "message");
        assert_eq!(v["content"][0]["text"], "hi");
        assert_eq!(v["usage"]["input_tokens"], 3);

        let limited = GatewayError::NoDeploymentsAvailable {
            model_group: "g".into(),
            reason: "every deployment is cooling down after failures",
            retry_after: std::time::Duration::from_secs(3),
        };
        let response = anthropic(Outcome::refused(limited), "m");
        assert_eq!(response.status().as_u16(), 429);
        assert_eq!(
            response.headers().get("retry-after").expect("retry-after"),
            "3"
        );
        assert!(response.headers().contains_key("x-litellm-call-id"));
        let v: Value = serde_json::from_str(&text(response).await).expect("json");
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "rate_limit_error");
    }
}
