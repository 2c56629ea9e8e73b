//! Hugging Face Text Generation Inference's own API (`POST /generate`, `/generate_stream`), for
//! chat on a TGI server whose deployment gives a prompt template: the messages become one prompt
//! ([`super::prompt_template`]), and TGI's `generated_text` / token events become a
//! `chat.completion` / its chunks. TGI counts the generated tokens; the prompt's are estimated
//! (four characters a token) unless the answer lists them (`prefill`). SageMaker's TGI containers
//! answer the same shapes (their stream inside event-stream frames): `super::sagemaker` uses these.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::native;
use super::stream::{ChunkWriter, SseEvents, StreamTranslator};
use super::TranslatedResponse;
use crate::error::GatewayError;
use crate::llm::{LlmRequest, Usage};
use tollgate_wire::openai::Delta;

const PROVIDER: &str = "Huggingface";

/// TGI's `/generate` body: the prompt, and the OpenAI parameters TGI has (`max_tokens` as
/// `max_new_tokens`, `stop`, `temperature` above 0, `top_p` below 1, `seed`).
pub fn generate_body(prompt: String, body: &Map<String, Value>) -> Map<String, Value> {
    let mut parameters = Map::new();
    if let Some(n) = body
        .get("max_tokens")
        .or_else(|| body.get("max_completion_tokens"))
        .and_then(Value::as_u64)
    {
        parameters.insert("max_new_tokens".into(), json!(n));
    }
    if let Some(t) = body.get("temperature").and_then(Value::as_f64) {
        if t > 0.0 {
            parameters.insert("temperature".into(), json!(t));
            parameters.insert("do_sample".into(), json!(true));
        }
    }
    if let Some(p) = body.get("top_p").and_then(Value::as_f64) {
        if p > 0.0 && p < 1.0 {
            parameters.insert("top_p".into(), json!(p));
        }
    }
    match body.get("stop") {
        Some(Value::String(s)) => {
            parameters.insert("stop".into(), json!([s]));
        }
        Some(Value::Array(a)) => {
            parameters.insert("stop".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    if let Some(seed) = body.get("seed").and_then(Value::as_u64) {
        parameters.insert("seed".into(), json!(seed));
    }
    parameters.insert("details".into(), json!(true));
    parameters.insert("return_full_text".into(), json!(false));
    let mut out = Map::new();
    out.insert("inputs".into(), json!(prompt));
    out.insert("parameters".into(), Value::Object(parameters));
    out
}

/// TGI's finish reasons as OpenAI's.
fn finish(reason: Option<&str>) -> &'static str {
    match reason {
        Some("length") => "length",
        _ => "stop",
    }
}

/// The prompt tokens of a chat request, estimated from its messages' text.
fn prompt_tokens(req: &LlmRequest) -> u64 {
    let chars: usize = req
        .body
        .get("messages")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .map(|m| super::prompt_template::message_text(m).chars().count())
                .sum()
        })
        .unwrap_or(0);
    (chars as u64).div_ceil(4)
}

/// Whether a provider answer is TGI's (`generated_text`, or a list of such objects).
pub fn is_generate_answer(body: &[u8]) -> bool {
    let head = body.iter().take(64).copied().collect::<Vec<u8>>();
    let head = String::from_utf8_lossy(&head);
    head.contains("generated_text")
}

/// A `/generate` answer (`{"generated_text", "details"}` or a list of one) as a `chat.completion`.
pub fn chat_response(req: &LlmRequest, body: &[u8]) -> Result<TranslatedResponse, GatewayError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| native::bad_body(PROVIDER, e))?;
    let v = match v {
        Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
        other => other,
    };
    let text = v
        .get("generated_text")
        .and_then(Value::as_str)
        .ok_or_else(|| native::bad_body(PROVIDER, "the answer has no generated_text"))?;
    let details = v.get("details");
    let completion = details
        .and_then(|d| d.get("generated_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or_else(|| (text.chars().count() as u64).div_ceil(4));
    // `prefill` (with `decoder_input_details`) lists the prompt's tokens; else an estimate.
    let prompt = details
        .and_then(|d| d.get("prefill"))
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty())
        .map_or_else(|| prompt_tokens(req), |p| p.len() as u64);
    let usage = native::usage(prompt, completion, 0);
    let reason = finish(
        details
            .and_then(|d| d.get("finish_reason"))
            .and_then(Value::as_str),
    );
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    TranslatedResponse::completion(
        &native::chat_completion(id, &req.model, text.to_string(), Vec::new(), reason, &usage),
        usage,
    )
}

/// `/generate_stream`'s server-sent token events as OpenAI chunks; the last event (with
/// `details`) ends the stream with its finish reason and usage.
pub struct TgiStream {
    events: SseEvents,
    out: ChunkWriter,
    prompt_tokens: u64,
    /// Tokens and characters relayed, for a stream whose last event has no `details`.
    tokens: u64,
    chars: usize,
    started: bool,
    ended: bool,
}

impl TgiStream {
    pub fn new(req: &LlmRequest) -> Self {
        Self::for_prompt(req.model.clone(), prompt_tokens(req))
    }

    /// A stream for `model` whose prompt is `prompt_tokens` long (as estimated by the caller).
    pub fn for_prompt(model: String, prompt_tokens: u64) -> Self {
        Self {
            events: SseEvents::default(),
            out: ChunkWriter::new(format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()), model),
            prompt_tokens,
            tokens: 0,
            chars: 0,
            started: false,
            ended: false,
        }
    }

    fn event(&mut self, data: &str) -> Result<(), GatewayError> {
        if self.ended || data.trim().is_empty() {
            return Ok(());
        }
        let v = native::stream_event(PROVIDER, data)?;
        if !self.started {
            self.started = true;
            self.out.delta(0, Delta::start(), None);
        }
        let token = v.get("token");
        let special = token
            .and_then(|t| t.get("special"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if let Some(text) = token.and_then(|t| t.get("text")).and_then(Value::as_str) {
            self.tokens += 1;
            if !text.is_empty() && !special {
                self.chars += text.chars().count();
                self.out.delta(0, Delta::text(text), None);
            }
        }
        // The last event carries the whole `generated_text`, and `details` when they were asked for.
        let details = v.get("details").filter(|d| !d.is_null());
        if details.is_some() || v.get("generated_text").is_some_and(|g| !g.is_null()) {
            let reason = finish(
                details
                    .and_then(|d| d.get("finish_reason"))
                    .and_then(Value::as_str),
            );
            let completion = details
                .and_then(|d| d.get("generated_tokens"))
                .and_then(Value::as_u64)
                .unwrap_or_else(|| self.tokens.max((self.chars as u64).div_ceil(4)));
            self.out.delta(0, Delta::default(), Some(reason));
            let usage: Usage = native::usage(self.prompt_tokens, completion, 0);
            self.out.usage(&usage);
            self.out.done();
            self.ended = true;
        }
        Ok(())
    }
}

impl StreamTranslator for TgiStream {
    fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, GatewayError> {
        for e in self.events.push(chunk) {
            self.event(&e.data)?;
        }
        Ok(self.out.take())
    }

    fn finish(&mut self) -> Result<Bytes, GatewayError> {
        if let Some(e) = self.events.finish() {
            self.event(&e.data)?;
        }
        Ok(self.out.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::CallKind;
    use crate::providers::testing::request;

    #[test]
    fn generate_answers_and_token_events_become_openai_shapes() {
        let req = request(
            CallKind::Chat,
            json!({"model": "m", "messages": [{"role": "user", "content": "12345678"}], "max_tokens": 7, "temperature": 0, "stop": "END"}),
        );
        let body = generate_body("P".into(), &req.body);
        assert_eq!(
            Value::Object(body),
            json!({"inputs": "P", "parameters": {"max_new_tokens": 7, "stop": ["END"], "details": true, "return_full_text": false}})
        );
        let out = chat_response(
            &req,
            br#"[{"generated_text": "Hi there", "details": {"finish_reason": "length", "generated_tokens": 2}}]"#,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "Hi there");
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert_eq!(v["usage"]["prompt_tokens"], 2);
        assert_eq!(v["usage"]["completion_tokens"], 2);

        let mut s = TgiStream::new(&req);
        let mut text = String::new();
        for chunk in [
            &b"data:{\"token\":{\"id\":1,\"text\":\"Hi\",\"special\":false},\"generated_text\":null,\"details\":null}\n\n"[..],
            b"data:{\"token\":{\"id\":2,\"text\":\" there\",\"special\":false},\"generated_text\":null,\"details\":null}\n\ndata:{\"token\":{\"id\":3,\"text\":\"</s>\",\"special\":true},\"generated_text\":\"Hi there\",\"details\":{\"finish_reason\":\"eos_token\",\"generated_tokens\":3}}\n\n",
        ] {
            text.push_str(&String::from_utf8_lossy(&s.feed(chunk).unwrap()));
        }
        text.push_str(&String::from_utf8_lossy(&s.finish().unwrap()));
        assert!(
            text.contains("\"content\":\"Hi\"") && text.contains("\"content\":\" there\""),
            "{text}"
        );
        assert!(!text.contains("</s>"), "{text}");
        assert!(
            text.contains("\"finish_reason\":\"stop\"") && text.contains("\"completion_tokens\":3"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    }
}
