//! Amazon SageMaker endpoints (`sagemaker/<endpoint>` and `sagemaker_chat/<endpoint>`).
//!
//! - `sagemaker/`: the Hugging Face TGI container's format. `POST {base}/endpoints/{endpoint}/invocations`
//!   with `{"inputs": <prompt>, "parameters": {max_new_tokens, temperature, top_p, stop, …}}`,
//!   answered with `[{"generated_text": "…"}]` (or one such object). The chat messages become one
//!   prompt: the deployment's prompt template when it gives one (`initial_prompt_value`, `roles`…,
//!   `super::prompt_template`), else Llama-2's chat template for Llama-2 chat endpoints (a name with `llama-2`/`llama2` and
//!   `chat` or a JumpStart `-f` suffix), else `role: content` lines. Token counts are estimated
//!   (prompt characters / 4) unless the container returns `details`.
//!   Embeddings (the GPT-J container): `{"text_inputs": [...]}` → `{"embedding": [[...], ...]}`.
//! - `sagemaker_chat/`: the OpenAI-compatible (messages API) container: OpenAI chat in and out,
//!   only the URL and the signature differ from OpenAI.
//! - Streams: InvokeEndpointWithResponseStream (`…/invocations-response-stream`), AWS event-stream
//!   frames whose `PayloadPart` payloads carry the container's SSE lines (TGI's
//!   `data:{"token":{"text":…}}`, or OpenAI chunks).
//! - Endpoint: `api_base`, else `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`, else `AWS_ENDPOINT_URL`, else
//!   `https://runtime.sagemaker.{region}.amazonaws.com`; region and credentials as for Bedrock,
//!   requests signed with the Bedrock adapter's SigV4 signer for service `sagemaker`.

use std::borrow::Cow;

use bytes::Bytes;
use futures_util::future::LocalBoxFuture;
use serde_json::{json, Map, Value};

use super::bedrock::{self, eventstream};
use super::native::{self, upstream_error};
use super::openai::{classify, OPENAI};
use super::stream::{SseEvents, StreamTranslator};
use super::{ErrorReply, PreparedRequest, ProviderAdapter, ProviderSpec, TranslatedResponse, Wire};
use crate::deployment::{Deployment, Target};
use crate::error::{GatewayError, UpstreamErrorKind};
use crate::llm::{CallKind, LlmRequest};

/// The SigV4 service name of the SageMaker runtime.
pub const SIGNING_SERVICE: &str = "sagemaker";
/// The runtime endpoint; `{region}` is filled in from the deployment.
pub const DEFAULT_ENDPOINT: &str = "https://runtime.sagemaker.{region}.amazonaws.com";

const PROVIDER: &str = "Sagemaker";

/// OpenAI parameters the TGI container has no equivalent for.
pub(crate) const UNSUPPORTED: &[&str] = &[
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "parallel_tool_calls",
    "response_format",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "presence_penalty",
    "modalities",
    "audio",
    "prediction",
    "web_search_options",
];

/// Fields of the OpenAI body that are not passed on as TGI parameters.
const CONSUMED: &[&str] = &[
    "model",
    "messages",
    "prompt",
    "n",
    "stream",
    "stream_options",
    "user",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "stop",
    "store",
    "metadata",
    "service_tier",
    "reasoning_effort",
];

/// The registry entry of `sagemaker` and `sagemaker_chat`.
pub const fn spec(name: &'static str) -> ProviderSpec {
    ProviderSpec {
        name,
        wire: Wire::SageMaker,
        default_api_base: Some(DEFAULT_ENDPOINT),
        api_base_env: &["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "AWS_ENDPOINT_URL"],
        api_key_env: &[],
        unsupported_params: &[],
    }
}

pub struct SageMakerAdapter;

pub static SAGEMAKER: SageMakerAdapter = SageMakerAdapter;

/// The runtime endpoint with the region filled in, without a trailing `/`.
pub fn endpoint(deployment: &Deployment, target: &Target) -> String {
    target
        .api_base
        .replace("{region}", &bedrock::region(deployment))
        .trim_end_matches('/')
        .to_string()
}

fn is_chat_container(target: &Target) -> bool {
    target.spec.name == "sagemaker_chat"
}

/// Whether an endpoint serves a Llama-2 chat model (JumpStart names its chat variants `…-f`).
pub fn is_llama2_chat(endpoint: &str) -> bool {
    let m = endpoint.to_ascii_lowercase();
    (m.contains("llama-2") || m.contains("llama2")) && (m.contains("chat") || m.contains("-f"))
}

/// The chat messages as one prompt: Llama-2's chat template for Llama-2 chat endpoints, else
/// `role: content` lines.
pub fn prompt(endpoint: &str, messages: &[Value]) -> String {
    if is_llama2_chat(endpoint) {
        return llama2_chat_prompt(messages);
    }
    messages
        .iter()
        .map(|m| {
            format!(
                "{}: {}",
                m.get("role").and_then(Value::as_str).unwrap_or("user"),
                native::content_text(m.get("content"))
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `<s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] {user} [/INST]`.
fn llama2_chat_prompt(messages: &[Value]) -> String {
    let mut system = String::new();
    let mut out = String::new();
    let mut open = false;
    for m in messages {
        let text = native::content_text(m.get("content"));
        match m.get("role").and_then(Value::as_str).unwrap_or("user") {
            "system" | "developer" => {
                if !system.is_empty() {
                    system.push('\n');
                }
                system.push_str(&text);
            }
            "assistant" => {
                if !open {
                    out.push_str("<s>[INST]  [/INST]");
                }
                out.push_str(&format!(" {} </s>", text.trim()));
                open = false;
            }
            _ => {
                if open {
                    // Two user turns in a row: one instruction.
                    out.truncate(out.len() - " [/INST]".len());
                    out.push_str(&format!("\n{} [/INST]", text.trim()));
                    continue;
                }
                out.push_str("<s>[INST] ");
                if !system.is_empty() {
                    out.push_str(&format!("<<SYS>>\n{}\n<</SYS>>\n\n", system.trim()));
                    system.clear();
                }
                out.push_str(&format!("{} [/INST]", text.trim()));
                open = true;
            }
        }
    }
    out
}

fn messages(body: &Map<String, Value>) -> &[Value] {
    body.get("messages")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The TGI request body for a chat call.
fn tgi_body(
    deployment: &Deployment,
    target: &Target,
    req: &LlmRequest,
) -> Result<Value, GatewayError> {
    let src = native::openai_body(deployment, target, req, UNSUPPORTED)?;
    // One answer per call: `n` above 1 is refused (or dropped with `drop_params`).
    if src.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1)
        && !native::drop_params(deployment, req)
    {
        return Err(native::unsupported_error(target, &["n"]));
    }
    let mut parameters = Map::new();
    if let Some(n) = src
        .get("max_completion_tokens")
        .or_else(|| src.get("max_tokens"))
        .filter(|v| !v.is_null())
    {
        parameters.insert("max_new_tokens".into(), n.clone());
    }
    if let Some(t) = src.get("temperature").and_then(Value::as_f64) {
        // TGI refuses a temperature of 0 ("must be strictly positive"); greedy is the closest.
        parameters.insert("temperature".into(), json!(if t <= 0.0 { 0.01 } else { t }));
    }
    if let Some(stop) = src.get("stop").filter(|v| !v.is_null()) {
        parameters.insert("stop".into(), Value::Array(native::stop_list(stop)));
    }
    // `top_p`, `seed`, `frequency_penalty` and the container's own parameters (`top_k`,
    // `do_sample`, `repetition_penalty`…) go as they are.
    for (k, v) in &src {
        if !CONSUMED.contains(&k.as_str()) && !v.is_null() {
            parameters.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    // The deployment's own prompt template (`initial_prompt_value`, `roles`…) comes first.
    let template = super::prompt_template::PromptTemplate::from_params(|k| {
        deployment.provider_params.get(k).cloned()
    });
    let inputs = match src.get("messages") {
        Some(Value::Array(m)) => match &template {
            Some(t) => t.render(m),
            None => prompt(&target.model, m),
        },
        _ => return Err(native::bad_request(target, "messages are required")),
    };
    let mut body = json!({ "inputs": inputs, "parameters": parameters });
    if req.stream {
        body["stream"] = json!(true);
    }
    Ok(body)
}

/// The InvokeEndpoint URL. An `api_base` that is already an endpoint's full URL (LiteLLM takes
/// `…/endpoints/{name}/invocations` there) is used as it is, its last word set for the call.
fn invocations_url(deployment: &Deployment, target: &Target, stream: bool) -> String {
    let action = if stream {
        "invocations-response-stream"
    } else {
        "invocations"
    };
    let base = endpoint(deployment, target);
    if let Some(full) = base
        .strip_suffix("/invocations-response-stream")
        .or_else(|| base.strip_suffix("/invocations"))
    {
        return format!("{full}/{action}");
    }
    format!(
        "{base}/endpoints/{}/{action}",
        bedrock::sigv4::uri_encode(&target.model, false),
    )
}

fn aws_headers(deployment: &Deployment, stream: bool) -> Vec<(Cow<'static, str>, String)> {
    let mut headers: Vec<(Cow<'static, str>, String)> = vec![
        (Cow::Borrowed("content-type"), "application/json".into()),
        (
            Cow::Borrowed("accept"),
            if stream {
                "application/vnd.amazon.eventstream"
            } else {
                "application/json"
            }
            .into(),
        ),
    ];
    headers.extend(native::extra_headers(deployment).filter(|(k, _)| {
        !matches!(
            k.as_ref(),
            "host" | "authorization" | "x-amz-date" | "x-amz-security-token" | "accept"
        )
    }));
    headers
}

impl ProviderAdapter for SageMakerAdapter {
    fn prepare(
        &self,
        deployment: &Deployment,
        target: &Target,
        req: &LlmRequest,
    ) -> Result<PreparedRequest, GatewayError> {
        let stream = req.stream && req.kind == CallKind::Chat;
        let url = target.url(invocations_url(deployment, target, stream));
        match req.kind {
            CallKind::Chat if is_chat_container(target) => {
                let mut prepared = OPENAI.prepare(deployment, target, req)?;
                prepared.url = url;
                prepared.headers = aws_headers(deployment, stream);
                Ok(prepared)
            }
            CallKind::Chat => PreparedRequest::json(
                url,
                aws_headers(deployment, stream),
                &tgi_body(deployment, target, req)?,
            ),
            CallKind::Embedding => {
                let src = native::openai_body(deployment, target, req, &[])?;
                let texts = native::input_texts(target, src.get("input"))?;
                PreparedRequest::json(
                    url,
                    aws_headers(deployment, false),
                    &json!({ "text_inputs": texts }),
                )
            }
            kind => Err(native::unsupported_call(target, kind)),
        }
    }

    fn supports(&self, kind: CallKind) -> bool {
        matches!(kind, CallKind::Chat | CallKind::Embedding)
    }

    fn authorize<'a>(
        &'a self,
        deployment: &'a Deployment,
        _target: &'a Target,
        mut prepared: PreparedRequest,
    ) -> LocalBoxFuture<'a, Result<PreparedRequest, GatewayError>> {
        let result = bedrock::credentials(deployment).and_then(|creds| {
            let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
            bedrock::sign_for_service(
                SIGNING_SERVICE,
                "POST",
                &mut prepared,
                &creds,
                &bedrock::region(deployment),
                &amz_date,
            )?;
            Ok(prepared)
        });
        Box::pin(std::future::ready(result))
    }

    fn translate_response(
        &self,
        req: &LlmRequest,
        body: Bytes,
    ) -> Result<TranslatedResponse, GatewayError> {
        let v: Value = serde_json::from_slice(&body).map_err(|e| native::bad_body(PROVIDER, e))?;
        match req.kind {
            CallKind::Embedding => {
                let vectors = v
                    .get("embedding")
                    .or_else(|| v.get("embeddings"))
                    .and_then(Value::as_array)
                    .cloned()
                    .ok_or_else(|| native::bad_body(PROVIDER, "no `embedding` list"))?;
                let prompt = req.estimated_prompt_tokens();
                TranslatedResponse::embeddings(&native::embedding_list(&req.model, vectors, prompt))
            }
            // The OpenAI-compatible container answers a chat completion.
            _ if v.get("choices").is_some() => OPENAI.translate_response(req, body),
            _ => super::tgi::chat_response(req, &body),
        }
    }

    fn error(&self, reply: &ErrorReply<'_>) -> GatewayError {
        let (target, status, retry_after, body) = reply.parts();
        // A container error is a 424 `ModelError` whose `OriginalMessage` is the container's.
        let mut message = native::error_text(
            status,
            body,
            &["OriginalMessage", "message", "Message", "error"],
        );
        if let Some(Value::String(inner)) = serde_json::from_str::<Value>(&message)
            .ok()
            .and_then(|v| v.get("error").cloned())
        {
            message = inner;
        }
        let lower = message.to_ascii_lowercase();
        let kind = if lower.contains("`inputs` tokens + `max_new_tokens` must be")
            || lower.contains("input validation error: `inputs` must have less than")
        {
            UpstreamErrorKind::ContextWindowExceeded
        } else if status == 403 && (lower.contains("signature") || lower.contains("token")) {
            UpstreamErrorKind::Authentication
        } else if status == 424 {
            UpstreamErrorKind::Server
        } else {
            classify(status, None, &message)
        };
        // As for Bedrock: a refused signature is a 401, like a refused key elsewhere.
        let status = if kind == UpstreamErrorKind::Authentication {
            401
        } else {
            status
        };
        upstream_error(target, PROVIDER, status, kind, &message, retry_after)
    }

    fn stream_translator(
        &self,
        target: &Target,
        req: &LlmRequest,
    ) -> Option<Box<dyn StreamTranslator>> {
        let prompt_chars = if is_chat_container(target) {
            None
        } else {
            Some(prompt(&target.model, messages(&req.body)).chars().count())
        };
        Some(Box::new(ResponseStream::new(
            req.model.clone(),
            prompt_chars,
        )))
    }
}

fn estimate(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

/// InvokeEndpointWithResponseStream frames → OpenAI chunks. `PayloadPart` payloads are the
/// container's SSE bytes: TGI token events (translated; `prompt_chars` is then the prompt's
/// length, for the estimated usage) or, from the OpenAI-compatible container, OpenAI chunks
/// (passed on as they are).
pub struct ResponseStream {
    decoder: eventstream::Decoder,
    /// TGI's token events, translated; `None` for the OpenAI-compatible container, whose chunks
    /// pass as they are.
    tgi: Option<super::tgi::TgiStream>,
    sse: SseEvents,
}

impl ResponseStream {
    pub fn new(model: String, prompt_chars: Option<usize>) -> Self {
        Self {
            decoder: eventstream::Decoder::default(),
            tgi: prompt_chars.map(|c| super::tgi::TgiStream::for_prompt(model, estimate(c))),
            sse: SseEvents::default(),
        }
    }

    fn payload(&mut self, bytes: &[u8]) -> Result<Bytes, GatewayError> {
        if let Some(tgi) = &mut self.tgi {
            return tgi.feed(bytes);
        }
        // OpenAI chunks, `[DONE]` included, as the container wrote them.
        let mut out = Vec::new();
        for event in self.sse.push(bytes) {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(event.data.trim().as_bytes());
            out.extend_from_slice(b"\n\n");
        }
        Ok(Bytes::from(out))
    }
}

impl StreamTranslator for ResponseStream {
    fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, GatewayError> {
        let messages = self
            .decoder
            .push(chunk)
            .map_err(|e| native::stream_error(PROVIDER, &e))?;
        let mut out = Vec::new();
        for m in messages {
            match m.header(":message-type").unwrap_or("event") {
                "event" => {
                    if m.header(":event-type").unwrap_or("PayloadPart") == "PayloadPart" {
                        out.extend_from_slice(&self.payload(&m.payload)?);
                    }
                }
                _ => {
                    let kind = m
                        .header(":exception-type")
                        .or_else(|| m.header(":error-code"))
                        .unwrap_or("ModelStreamError");
                    let payload: Value = serde_json::from_slice(&m.payload).unwrap_or(Value::Null);
                    let message = payload
                        .get("Message")
                        .or_else(|| payload.get("message"))
                        .and_then(Value::as_str)
                        .or_else(|| m.header(":error-message"))
                        .unwrap_or("")
                        .to_string();
                    return Err(native::stream_error(
                        PROVIDER,
                        &format!("{kind}: {message}"),
                    ));
                }
            }
        }
        Ok(Bytes::from(out))
    }

    fn finish(&mut self) -> Result<Bytes, GatewayError> {
        if let Some(tgi) = &mut self.tgi {
            return tgi.finish();
        }
        Ok(match self.sse.finish() {
            Some(last) => Bytes::from(format!("data: {}\n\n", last.data.trim())),
            None => Bytes::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{deployment, request};

    #[test]
    fn llama2_chat_template() {
        let m = vec![
            json!({"role": "system", "content": "Be brief."}),
            json!({"role": "user", "content": "Hi"}),
            json!({"role": "assistant", "content": "Hello"}),
            json!({"role": "user", "content": "Bye"}),
        ];
        assert_eq!(
            prompt("jumpstart-dft-meta-textgeneration-llama-2-7b-f", &m),
            "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello </s><s>[INST] Bye [/INST]"
        );
        assert_eq!(
            prompt("my-gptj", &m),
            "system: Be brief.\nuser: Hi\nassistant: Hello\nuser: Bye"
        );
        assert!(!is_llama2_chat("meta-textgeneration-llama-3-8b-instruct"));
    }

    #[test]
    fn tgi_body_url_and_signature() {
        let d = deployment(
            "{model: sagemaker/llama-2-7b-chat, aws_region_name: eu-west-1, aws_access_key_id: AKIDEXAMPLE, aws_secret_access_key: s}",
        );
        let t = d.target_for("g").expect("t");
        let req = request(
            CallKind::Chat,
            json!({"model": "g", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5, "temperature": 0, "stop": "\n", "top_k": 3}),
        );
        let p = SAGEMAKER.prepare(&d, &t, &req).expect("p");
        assert_eq!(
            p.url,
            "https://runtime.sagemaker.eu-west-1.amazonaws.com/endpoints/llama-2-7b-chat/invocations"
        );
        let v: Value = serde_json::from_slice(&p.body).expect("json");
        assert_eq!(
            v,
            json!({"inputs": "<s>[INST] x [/INST]", "parameters": {"max_new_tokens": 5, "temperature": 0.01, "stop": ["\n"], "top_k": 3}})
        );
        let signed = futures_executor_block_on(SAGEMAKER.authorize(&d, &t, p)).expect("signed");
        let auth = &signed
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .expect("auth")
            .1;
        assert!(auth.contains("/eu-west-1/sagemaker/aws4_request"), "{auth}");
    }

    #[test]
    fn refused_parameters_embeddings_and_the_chat_container() {
        let d =
            deployment("{model: sagemaker/tgi, aws_access_key_id: a, aws_secret_access_key: s}");
        let t = d.target_for("g").expect("t");
        let msgs = json!([{"role": "user", "content": "x"}]);
        for extra in [json!({"n": 2}), json!({"tools": []})] {
            let mut body = json!({"model": "g", "messages": msgs});
            body.as_object_mut()
                .expect("object")
                .extend(extra.as_object().expect("object").clone());
            let e = SAGEMAKER
                .prepare(&d, &t, &request(CallKind::Chat, body))
                .err()
                .expect("refused");
            assert!(e.to_string().contains("UnsupportedParamsError"), "{e}");
        }
        let ok = request(
            CallKind::Chat,
            json!({"model": "g", "messages": msgs, "n": 1}),
        );
        assert!(SAGEMAKER.prepare(&d, &t, &ok).is_ok());

        let emb = request(
            CallKind::Embedding,
            json!({"model": "g", "input": "a b c d"}),
        );
        let p = SAGEMAKER.prepare(&d, &t, &emb).expect("p");
        assert_eq!(
            serde_json::from_slice::<Value>(&p.body).expect("json"),
            json!({"text_inputs": ["a b c d"]})
        );
        let r = SAGEMAKER
            .translate_response(&emb, Bytes::from_static(b"{\"embedding\": [[0.5, 0.25]]}"))
            .expect("ok");
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v["data"][0]["embedding"], json!([0.5, 0.25]));

        let d = deployment("{model: sagemaker_chat/ep, api_base: 'http://h/', aws_access_key_id: a, aws_secret_access_key: s}");
        let t = d.target_for("g").expect("t");
        let mut chat = json!({"model": "g", "messages": msgs, "stream": true, "tools": []});
        chat["n"] = json!(2);
        let p = SAGEMAKER
            .prepare(&d, &t, &request(CallKind::Chat, chat))
            .expect("p");
        assert_eq!(p.url, "http://h/endpoints/ep/invocations-response-stream");
        let v: Value = serde_json::from_slice(&p.body).expect("json");
        assert_eq!(v["model"], "ep");
        assert_eq!(v["n"], 2);
        assert!(!p.headers.iter().any(|(k, _)| k == "authorization"));
        let d = deployment("{model: sagemaker/x, api_base: 'https://r.example/endpoints/other/invocations', aws_access_key_id: a, aws_secret_access_key: s}");
        let t = d.target_for("g").expect("t");
        let mut streamed = json!({"model": "g", "messages": msgs, "stream": true});
        let p = SAGEMAKER
            .prepare(&d, &t, &request(CallKind::Chat, streamed.clone()))
            .expect("p");
        assert_eq!(
            p.url,
            "https://r.example/endpoints/other/invocations-response-stream"
        );
        streamed["stream"] = json!(false);
        let p = SAGEMAKER
            .prepare(&d, &t, &request(CallKind::Chat, streamed))
            .expect("p");
        assert_eq!(p.url, "https://r.example/endpoints/other/invocations");
    }

    fn futures_executor_block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt")
            .block_on(f)
    }

    #[test]
    fn tgi_stream_translates_tokens() {
        let mut s = ResponseStream::new("g".into(), Some(8));
        let part = |data: &str| {
            eventstream::encode(
                &[(":event-type", "PayloadPart"), (":message-type", "event")],
                data.as_bytes(),
            )
        };
        let mut raw = part("data:{\"token\":{\"text\":\"Hel\"}}\n\n");
        raw.extend(part("data:{\"token\":{\"text\":\"lo\"},\"generated_text\":\"Hello\",\"details\":{\"finish_reason\":\"length\",\"generated_tokens\":2}}\n\n"));
        let mut out = Vec::new();
        for piece in raw.chunks(7) {
            out.extend_from_slice(&s.feed(piece).expect("feed"));
        }
        out.extend_from_slice(&s.finish().expect("finish"));
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains("\"content\":\"Hel\""), "{text}");
        assert!(text.contains("\"finish_reason\":\"length\""), "{text}");
        assert!(text.contains("\"completion_tokens\":2"), "{text}");
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    }
}
