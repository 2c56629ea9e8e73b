//! Ollama's native API: `POST /api/chat` and `POST /api/embed`, no auth unless a key is configured
//! (then a bearer token, for Ollama behind a proxy or Ollama's cloud). Both `ollama/` and
//! `ollama_chat/` are served through `/api/chat`: LiteLLM sends `ollama/` chats to `/api/generate`
//! with a prompt it flattens itself, whereas `/api/chat` applies the model's own chat template.
//!
//! Differences from OpenAI: sampling parameters go in `options` (`max_tokens` is `num_predict`),
//! images are bare base64 strings in a message's `images`, tool-call arguments are JSON objects
//! and calls have no ids, `format` is `"json"` or a JSON schema, and the stream is NDJSON ending
//! with a `"done": true` line that carries the token counts. Ollama streams unless told not to,
//! so `stream` is always sent.

use super::ErrorReply;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::native::{self, upstream_error};
use super::openai::classify;
use super::stream::{ChunkWriter, Lines, StreamTranslator};
use super::{PreparedRequest, ProviderAdapter, TranslatedResponse};
use crate::deployment::{Deployment, Target};
use crate::error::GatewayError;
use crate::llm::{CallKind, LlmRequest, Usage};
use tollgate_wire::openai::{Delta, ToolCall};

pub struct OllamaAdapter;

pub static OLLAMA: OllamaAdapter = OllamaAdapter;

const PROVIDER: &str = "Ollama";

/// OpenAI parameters that become Ollama `options`, with their Ollama names.
const OPTIONS: &[(&str, &str)] = &[
    ("temperature", "temperature"),
    ("top_p", "top_p"),
    ("top_k", "top_k"),
    ("seed", "seed"),
    ("frequency_penalty", "frequency_penalty"),
    ("presence_penalty", "presence_penalty"),
    ("max_tokens", "num_predict"),
    ("max_completion_tokens", "num_predict"),
];

impl ProviderAdapter for OllamaAdapter {
    fn prepare(
        &self,
        deployment: &Deployment,
        target: &Target,
        req: &LlmRequest,
    ) -> Result<PreparedRequest, GatewayError> {
        let template = super::prompt_template::PromptTemplate::from_params(|k| {
            deployment.provider_params.get(k).cloned()
        });
        let (path, body) = match req.kind {
            // A prompt template: the generate API with the rendered prompt, raw (Ollama applies
            // no template of its own).
            CallKind::Chat if template.is_some() => {
                let mut body = chat_body(deployment, target, req)?;
                body.remove("messages");
                body.remove("tools");
                let messages = req
                    .body
                    .get("messages")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let prompt = template.as_ref().map(|t| t.render(messages));
                body.insert("prompt".into(), json!(prompt));
                body.insert("raw".into(), json!(true));
                ("/api/generate", body)
            }
            CallKind::Chat => ("/api/chat", chat_body(deployment, target, req)?),
            CallKind::Embedding => ("/api/embed", embed_body(deployment, target, req)?),
            CallKind::ImageGeneration
            | CallKind::ImageEdit
            | CallKind::Moderation
            | CallKind::Transcription
            | CallKind::Translation
            | CallKind::Speech
            | CallKind::Rerank
            | CallKind::Responses => {
                return Err(crate::providers::native::unsupported_call(target, req.kind))
            }
            CallKind::Completion => {
                return Err(native::bad_request(
                    target,
                    "text completions are not available for Ollama here; use /chat/completions",
                ))
            }
        };
        let mut headers = native::json_headers(deployment, target, false);
        if req.stream {
            if let Some(accept) = headers.iter_mut().find(|(k, _)| k == "accept") {
                accept.1 = "application/x-ndjson".into();
            }
        }
        let base = target.api_base.trim_end_matches("/api");
        PreparedRequest::json(target.url(format!("{base}{path}")), headers, &body)
    }

    fn translate_response(
        &self,
        req: &LlmRequest,
        body: Bytes,
    ) -> Result<TranslatedResponse, GatewayError> {
        let v: Value = serde_json::from_slice(&body).map_err(|e| native::bad_body(PROVIDER, e))?;
        if let Some(e) = v.get("error").and_then(Value::as_str) {
            return Err(native::bad_body(PROVIDER, e));
        }
        let model = v
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or(&req.model)
            .to_string();
        match req.kind {
            CallKind::Embedding => {
                let vectors = v
                    .get("embeddings")
                    .and_then(Value::as_array)
                    .cloned()
                    .ok_or_else(|| native::bad_body(PROVIDER, "no embeddings"))?;
                let prompt = v
                    .get("prompt_eval_count")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                TranslatedResponse::embeddings(&native::embedding_list(&model, vectors, prompt))
            }
            _ => {
                // `/api/generate` (a prompt template) answers `response` text, `/api/chat` a message.
                let generated = v
                    .get("response")
                    .and_then(Value::as_str)
                    .map(|text| json!({"role": "assistant", "content": text}));
                let message = v
                    .get("message")
                    .or(generated.as_ref())
                    .ok_or_else(|| native::bad_body(PROVIDER, "no message"))?;
                let calls: Vec<ToolCall> = message
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .map(|c| c.iter().map(native::tool_call).collect())
                    .unwrap_or_default();
                let usage = usage_of(&v);
                let finish = finish_reason(&v, !calls.is_empty());
                let mut out = native::chat_completion(
                    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
                    &model,
                    native::content_text(message.get("content")),
                    calls,
                    finish,
                    &usage,
                );
                out.choices[0].message.reasoning_content = message
                    .get("thinking")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .map(|t| t.to_string().into());
                TranslatedResponse::completion(&out, usage)
            }
        }
    }

    fn error(&self, reply: &ErrorReply<'_>) -> GatewayError {
        let (target, status, retry_after, body) = reply.parts();
        let message = native::error_text(status, body, &["error", "message"]);
        let kind = classify(status, None, &message);
        upstream_error(target, PROVIDER, status, kind, &message, retry_after)
    }

    fn stream_translator(
        &self,
        target: &Target,
        _req: &LlmRequest,
    ) -> Option<Box<dyn StreamTranslator>> {
        Some(Box::new(OllamaStream::new(&target.model)))
    }
}

fn chat_body(
    deployment: &Deployment,
    target: &Target,
    req: &LlmRequest,
) -> Result<Map<String, Value>, GatewayError> {
    let mut src = native::openai_body(deployment, target, req, native::UNSUPPORTED_CHAT)?;
    let drop = native::drop_params(deployment, req);
    if src.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) && !drop {
        return Err(native::unsupported_error(target, &["n"]));
    }
    src.remove("n");
    for k in native::IGNORED_CHAT {
        src.remove(*k);
    }

    let mut out = Map::new();
    out.insert("model".into(), json!(target.model));
    let messages = src
        .remove("messages")
        .and_then(|m| m.as_array().cloned())
        .unwrap_or_default();
    out.insert("messages".into(), json!(messages_of(target, &messages)?));

    // Ollama-specific options sent as `options` are kept; OpenAI parameters fill in the rest.
    let mut options = match src.remove("options") {
        Some(Value::Object(o)) => o,
        _ => Map::new(),
    };
    for (openai, ollama) in OPTIONS {
        if let Some(v) = src.remove(*openai).filter(|v| !v.is_null()) {
            options.insert((*ollama).into(), v);
        }
    }
    if let Some(stop) = src.remove("stop").filter(|v| !v.is_null()) {
        options.insert("stop".into(), Value::Array(native::stop_list(&stop)));
    }
    if !options.is_empty() {
        out.insert("options".into(), Value::Object(options));
    }

    let tools = src
        .remove("tools")
        .and_then(|t| t.as_array().cloned())
        .unwrap_or_default();
    let send_tools = match src.remove("tool_choice") {
        None | Some(Value::Null) => true,
        Some(Value::String(c)) if c == "auto" => true,
        Some(Value::String(c)) if c == "none" => false,
        Some(_) if drop => true,
        Some(_) => return Err(native::unsupported_error(target, &["tool_choice"])),
    };
    if send_tools && !tools.is_empty() {
        let tools: Vec<Value> = tools
            .into_iter()
            .map(|mut t| {
                if let Some(f) = t.get_mut("function").and_then(Value::as_object_mut) {
                    f.remove("strict");
                }
                t
            })
            .collect();
        out.insert("tools".into(), Value::Array(tools));
    }

    if let Some(rf) = src.remove("response_format").filter(|v| !v.is_null()) {
        match rf.get("type").and_then(Value::as_str) {
            Some("text") | None => {}
            Some("json_object") => {
                out.insert("format".into(), json!("json"));
            }
            Some("json_schema") => {
                let schema = rf
                    .pointer("/json_schema/schema")
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object"}));
                out.insert("format".into(), schema);
            }
            Some(other) => {
                return Err(native::bad_request(
                    target,
                    format!("unsupported response_format type '{other}'"),
                ))
            }
        }
    }

    src.remove("model");
    src.remove("stream");
    out.insert("stream".into(), json!(req.stream));
    // Ollama's own top-level fields (`keep_alive`, `think`…) pass as they are.
    for (k, v) in src {
        if !v.is_null() {
            out.entry(k).or_insert(v);
        }
    }
    Ok(out)
}

fn messages_of(target: &Target, messages: &[Value]) -> Result<Vec<Value>, GatewayError> {
    // Tool results name their function in Ollama (`tool_name`); OpenAI gives the call id.
    let mut call_names: Vec<(String, String)> = Vec::new();
    let mut out = Vec::with_capacity(messages.len());
    for m in messages {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        let msg = match role {
            "system" | "developer" => {
                json!({"role": "system", "content": native::content_text(m.get("content"))})
            }
            "user" => {
                let mut msg =
                    json!({"role": "user", "content": native::content_text(m.get("content"))});
                let images = images_of(target, m.get("content"))?;
                if !images.is_empty() {
                    msg["images"] = json!(images);
                }
                msg
            }
            "assistant" => {
                let mut msg =
                    json!({"role": "assistant", "content": native::content_text(m.get("content"))});
                if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                    let calls: Vec<Value> = calls
                        .iter()
                        .map(|c| {
                            let name = c
                                .pointer("/function/name")
                                .and_then(Value::as_str)
                                .unwrap_or_default();
                            if let Some(id) = c.get("id").and_then(Value::as_str) {
                                call_names.push((id.to_string(), name.to_string()));
                            }
                            let args = match c.pointer("/function/arguments") {
                                Some(Value::String(s)) => {
                                    serde_json::from_str(s).unwrap_or_else(|_| json!({}))
                                }
                                Some(Value::Object(o)) => Value::Object(o.clone()),
                                _ => json!({}),
                            };
                            json!({"function": {"name": name, "arguments": args}})
                        })
                        .collect();
                    if !calls.is_empty() {
                        msg["tool_calls"] = json!(calls);
                    }
                }
                msg
            }
            "tool" => {
                let mut msg =
                    json!({"role": "tool", "content": native::content_text(m.get("content"))});
                let id = m.get("tool_call_id").and_then(Value::as_str);
                if let Some((_, name)) = call_names.iter().find(|(i, _)| Some(i.as_str()) == id) {
                    msg["tool_name"] = json!(name);
                }
                msg
            }
            other => {
                return Err(native::bad_request(
                    target,
                    format!("message role '{other}' is not supported"),
                ))
            }
        };
        out.push(msg);
    }
    Ok(out)
}

/// The base64 payloads of a user message's `data:` image URLs. Ollama takes no image URLs, and the
/// gateway does not fetch them on a client's behalf.
fn images_of(target: &Target, content: Option<&Value>) -> Result<Vec<String>, GatewayError> {
    let Some(Value::Array(parts)) = content else {
        return Ok(Vec::new());
    };
    let mut images = Vec::new();
    for p in parts {
        match p.get("type").and_then(Value::as_str) {
            Some("text") => {}
            Some("image_url") => {
                let url = match p.get("image_url") {
                    Some(Value::String(u)) => u.as_str(),
                    Some(o) => o.get("url").and_then(Value::as_str).unwrap_or_default(),
                    None => "",
                };
                match url
                    .strip_prefix("data:")
                    .and_then(|r| r.split_once(";base64,"))
                {
                    Some((_, data)) => images.push(data.to_string()),
                    None => {
                        return Err(native::bad_request(
                            target,
                            "Ollama takes images as base64 data: URLs, not links",
                        ))
                    }
                }
            }
            other => {
                return Err(native::bad_request(
                    target,
                    format!("content part type {other:?} is not supported"),
                ))
            }
        }
    }
    Ok(images)
}

fn embed_body(
    deployment: &Deployment,
    target: &Target,
    req: &LlmRequest,
) -> Result<Map<String, Value>, GatewayError> {
    let mut src = native::openai_body(deployment, target, req, &[])?;
    let texts = native::input_texts(target, src.get("input"))?;
    if src.get("encoding_format").and_then(Value::as_str) == Some("base64") {
        return Err(native::unsupported_error(target, &["encoding_format"]));
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(target.model));
    out.insert("input".into(), Value::Array(texts));
    for k in ["dimensions", "truncate", "keep_alive", "options"] {
        if let Some(v) = src.remove(k).filter(|v| !v.is_null()) {
            out.insert(k.into(), v);
        }
    }
    Ok(out)
}

fn finish_reason(v: &Value, tool_calls: bool) -> &'static str {
    if tool_calls {
        return "tool_calls";
    }
    match v.get("done_reason").and_then(Value::as_str) {
        Some("length") => "length",
        _ => "stop",
    }
}

fn usage_of(v: &Value) -> Usage {
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    native::usage(n("prompt_eval_count"), n("eval_count"), 0)
}

/// Ollama's NDJSON lines → OpenAI chunks.
struct OllamaStream {
    lines: Lines,
    out: ChunkWriter,
    started: bool,
    ended: bool,
    tool_calls: u32,
}

impl OllamaStream {
    fn new(model: &str) -> Self {
        Self {
            lines: Lines::default(),
            out: ChunkWriter::new(format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()), model),
            started: false,
            ended: false,
            tool_calls: 0,
        }
    }

    fn line(&mut self, line: &str) -> Result<(), GatewayError> {
        if self.ended {
            return Ok(());
        }
        let v = native::stream_event(PROVIDER, line)?;
        if !self.started {
            self.started = true;
            if let Some(m) = v.get("model").and_then(Value::as_str) {
                self.out.model = m.to_string();
            }
            self.out.delta(0, Delta::start(), None);
        }
        // `/api/generate` lines carry `response` text instead of a message.
        let generated = v
            .get("response")
            .and_then(Value::as_str)
            .map(|text| json!({"content": text}));
        let message = v.get("message").or(generated.as_ref());
        if let Some(thinking) = message
            .and_then(|m| m.get("thinking"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            self.out.delta(0, Delta::reasoning(thinking), None);
        }
        if let Some(text) = message
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            self.out.delta(0, Delta::text(text), None);
        }
        if let Some(calls) = message
            .and_then(|m| m.get("tool_calls"))
            .and_then(Value::as_array)
        {
            for c in calls {
                let call = native::tool_call(c).at(self.tool_calls);
                self.tool_calls += 1;
                self.out.delta(0, Delta::tool_call(call), None);
            }
        }
        if v.get("done").and_then(Value::as_bool) == Some(true) {
            let finish = finish_reason(&v, self.tool_calls > 0);
            self.out.delta(0, Delta::default(), Some(finish));
            self.out.usage(&usage_of(&v));
            self.out.done();
            self.ended = true;
        }
        Ok(())
    }
}

impl StreamTranslator for OllamaStream {
    fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, GatewayError> {
        for line in self.lines.push(chunk) {
            self.line(&line)?;
        }
        Ok(self.out.take())
    }

    fn finish(&mut self) -> Result<Bytes, GatewayError> {
        if let Some(line) = self.lines.finish() {
            self.line(&line)?;
        }
        Ok(self.out.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::UpstreamErrorKind;
    use crate::providers::testing::{deployment, request};

    #[test]
    fn chat_request_translation() {
        let d = deployment("{model: ollama_chat/llama3.2-vision, max_tokens: 99}");
        let t = d.target_for("g").expect("target");
        assert_eq!(t.api_base, "http://localhost:11434");
        let body = json!({
            "model": "g",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_9", "content": "22C"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "strict": true, "parameters": {"type": "object"}}}],
            "temperature": 0.1, "top_p": 0.8, "seed": 3, "stop": "END",
            "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}},
            "keep_alive": "10m", "user": "u"
        });
        let p = OLLAMA
            .prepare(&d, &t, &request(CallKind::Chat, body))
            .expect("prepared");
        assert_eq!(p.url, "http://localhost:11434/api/chat");
        assert!(!p.headers.iter().any(|(k, _)| k == "authorization"));
        let v: Value = serde_json::from_slice(&p.body).expect("json");
        assert_eq!(v["model"], "llama3.2-vision");
        assert_eq!(v["stream"], false);
        assert_eq!(v["messages"][1]["content"], "What is in this image?");
        assert_eq!(v["messages"][1]["images"], json!(["iVBORw0KGgo="]));
        assert_eq!(
            v["messages"][2]["tool_calls"][0],
            json!({"function": {"name": "get_weather", "arguments": {"city": "Paris"}}})
        );
        assert_eq!(
            v["messages"][3],
            json!({"role": "tool", "content": "22C", "tool_name": "get_weather"})
        );
        assert_eq!(
            v["options"],
            json!({"temperature": 0.1, "top_p": 0.8, "seed": 3, "num_predict": 99, "stop": ["END"]})
        );
        assert_eq!(v["format"]["properties"]["a"]["type"], "string");
        assert!(v["tools"][0]["function"].get("strict").is_none());
        assert_eq!(v["keep_alive"], "10m");
        assert!(v.get("user").is_none() && v.get("temperature").is_none());

        // JSON mode, streaming, a key, and refusals.
        let d =
            deployment("{model: ollama/llama3.1, api_base: 'http://gpu:11434/', api_key: ol-k}");
        let t = d.target_for("g").expect("target");
        let p = OLLAMA
            .prepare(&d, &t, &request(CallKind::Chat, json!({"model": "g", "stream": true,
                "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}})))
            .expect("prepared");
        assert_eq!(p.url, "http://gpu:11434/api/chat");
        assert!(p
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == "Bearer ol-k"));
        let v: Value = serde_json::from_slice(&p.body).expect("json");
        assert_eq!(
            (v["stream"].clone(), v["format"].clone()),
            (json!(true), json!("json"))
        );
        let link = json!({"model": "g", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]});
        assert!(OLLAMA
            .prepare(&d, &t, &request(CallKind::Chat, link))
            .is_err());
        let required = json!({"model": "g", "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required"});
        let err = OLLAMA
            .prepare(&d, &t, &request(CallKind::Chat, required))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("tool_choice"));
    }

    #[test]
    fn chat_and_embed_responses_from_docs() {
        let req = request(
            CallKind::Chat,
            json!({"model": "g", "messages": [{"role": "user", "content": "x"}]}),
        );
        let body = br#"{"model":"llama3.2","created_at":"2023-12-12T14:13:43.416799Z","message":{"role":"assistant","content":"Hello! How are you today?"},"done":true,"done_reason":"stop","total_duration":5191566416,"load_duration":2154458,"prompt_eval_count":26,"prompt_eval_duration":383809000,"eval_count":298,"eval_duration":4799921000}"#;
        let r = OLLAMA
            .translate_response(&req, Bytes::from_static(body))
            .expect("ok");
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v["model"], "llama3.2");
        assert_eq!(
            v["choices"][0]["message"]["content"],
            "Hello! How are you today?"
        );
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["usage"]["prompt_tokens"], 26);
        assert_eq!(r.usage.expect("u").total_tokens, 324);

        let tools = br#"{"model":"llama3.2","created_at":"2024-07-22T20:33:28.123648Z","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_current_weather","arguments":{"format":"celsius","location":"Paris, FR"}}}]},"done_reason":"stop","done":true,"prompt_eval_count":10,"eval_count":5}"#;
        let r = OLLAMA
            .translate_response(&req, Bytes::from_static(tools))
            .expect("ok");
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        let call = &v["choices"][0]["message"]["tool_calls"][0];
        assert!(call["id"].as_str().is_some_and(|s| s.starts_with("call_")));
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().expect("string"))
                .expect("json");
        assert_eq!(args["location"], "Paris, FR");
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(v["choices"][0]["message"]["content"], Value::Null);

        let length = br#"{"model":"m","message":{"role":"assistant","content":"a","thinking":"hmm"},"done":true,"done_reason":"length","eval_count":1}"#;
        let r = OLLAMA
            .translate_response(&req, Bytes::from_static(length))
            .expect("ok");
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert_eq!(v["choices"][0]["message"]["reasoning_content"], "hmm");

        let req = request(
            CallKind::Embedding,
            json!({"model": "g", "input": ["why is the sky blue?", "why is the grass green?"]}),
        );
        let d = deployment("{model: ollama/all-minilm}");
        let t = d.target_for("g").expect("t");
        let p = OLLAMA.prepare(&d, &t, &req).expect("prepared");
        assert_eq!(p.url, "http://localhost:11434/api/embed");
        let sent: Value = serde_json::from_slice(&p.body).expect("json");
        assert_eq!(
            sent,
            json!({"model": "all-minilm", "input": ["why is the sky blue?", "why is the grass green?"]})
        );
        let body = br#"{"model":"all-minilm","embeddings":[[0.010071029,-0.0017594862],[-0.0098027075,0.06042469]],"total_duration":14143917,"load_duration":1019500,"prompt_eval_count":8}"#;
        let r = OLLAMA
            .translate_response(&req, Bytes::from_static(body))
            .expect("ok");
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v["data"][1]["embedding"][1], 0.06042469);
        assert_eq!(v["usage"]["prompt_tokens"], 8);
    }

    #[test]
    fn errors() {
        let d = deployment("{model: ollama_chat/llama3, api_key: ol-leaky-key}");
        let t = d.target_for("g").expect("t");
        let e = OLLAMA.translate_error(
            &t,
            404,
            None,
            br#"{"error":"model 'llama3' not found, try pulling it first"}"#,
        );
        assert!(matches!(
            e,
            GatewayError::Upstream {
                kind: UpstreamErrorKind::NotFound,
                status: 404,
                ..
            }
        ));
        assert!(
            e.to_string()
                .starts_with("NotFoundError: OllamaException - model 'llama3' not found"),
            "{e}"
        );
        let e = OLLAMA.translate_error(&t, 500, None, br#"{"error":"bad key ol-leaky-key"}"#);
        assert!(!e.to_string().contains("ol-leaky-key"));
        let e = OLLAMA.translate_error(
            &t,
            400,
            None,
            br#"{"error":"the input length exceeds the context length"}"#,
        );
        assert_eq!(e.code(), "context_length_exceeded");
    }

    fn run(raw: &str, split: usize) -> Result<String, GatewayError> {
        let mut s = OllamaStream::new("llama3.2");
        let mut out = Vec::new();
        for piece in raw.as_bytes().chunks(split) {
            out.extend_from_slice(&s.feed(piece)?);
        }
        out.extend_from_slice(&s.finish()?);
        Ok(String::from_utf8(out).expect("utf8"))
    }

    #[test]
    fn ndjson_stream() {
        let raw = "{\"model\":\"llama3.2\",\"created_at\":\"2023-08-04T08:52:19.385406455-07:00\",\"message\":{\"role\":\"assistant\",\"content\":\"The\"},\"done\":false}\n{\"model\":\"llama3.2\",\"created_at\":\"2023-08-04T08:52:19.4Z\",\"message\":{\"role\":\"assistant\",\"content\":\" sky\"},\"done\":false}\n{\"model\":\"llama3.2\",\"created_at\":\"2023-08-04T19:22:45.499127Z\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"total_duration\":4883583458,\"load_duration\":1334875,\"prompt_eval_count\":26,\"prompt_eval_duration\":342546000,\"eval_count\":282,\"eval_duration\":4535599000}\n";
        for split in [1, 9, 4096] {
            let text = run(raw, split).expect("ok");
            assert!(text.ends_with("data: [DONE]\n\n"));
            let chunks: Vec<Value> = text
                .split("\n\n")
                .filter_map(|e| e.strip_prefix("data: "))
                .filter(|d| *d != "[DONE]")
                .map(|d| serde_json::from_str(d).expect("json"))
                .collect();
            assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
            let content: String = chunks
                .iter()
                .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
                .collect();
            assert_eq!(content, "The sky");
            assert!(text.contains("\"finish_reason\":\"stop\""));
            assert_eq!(chunks.last().expect("usage")["usage"]["total_tokens"], 308);
        }
        // Tool calls arrive whole, with object arguments.
        let tools = "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":{\"a\":1}}},{\"function\":{\"name\":\"g\",\"arguments\":{}}}]},\"done\":false}\n{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":1,\"eval_count\":2}\n";
        let text = run(tools, 5).expect("ok");
        assert!(text.contains("\"index\":1"));
        assert!(text.contains("\"arguments\":\"{\\\"a\\\":1}\""), "{text}");
        assert!(text.contains("\"finish_reason\":\"tool_calls\""));
        // No done line: no [DONE]. An error line: an error.
        assert!(!run(&raw[..raw.rfind("{\"model\"").expect("last")], 7)
            .expect("ok")
            .contains("[DONE]"));
        assert!(run("{\"error\":\"model crashed\"}\n", 4096).is_err());
    }
}
