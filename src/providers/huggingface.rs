//! Hugging Face: chat is OpenAI's wire format (the Inference Providers router
//! `https://router.huggingface.co/v1`, and TGI / Inference Endpoints at their `api_base`), so the
//! OpenAI adapter does the work once the URL and model name are chosen. Embeddings use the
//! feature-extraction pipeline (`{"inputs": [...]}` → a list of vectors), as LiteLLM does.
//!
//! URL rules, after LiteLLM's: a configured `api_base` is a dedicated endpoint or TGI server, and
//! `/v1/chat/completions` is appended unless it already ends with `/v1` or `/chat/completions`;
//! embeddings are posted to it as is. Without one, chat goes to the router: `huggingface/<org>/<model>`
//! as `org/model`, and `huggingface/<provider>/<org>/<model>` as `org/model:provider` (the router's
//! way to pick a provider; LiteLLM instead looks the provider's model id up on the Hub first).
//! Embeddings go to `router.huggingface.co/hf-inference/pipeline/feature-extraction/<model>`.
//! A model given as a URL is not supported: the model can come from the request (wildcard
//! deployments), and a request must never choose where traffic goes.

use super::ErrorReply;

use bytes::Bytes;
use serde_json::Value;

use super::native::{self, upstream_error};
use super::openai::{classify, OPENAI};
use super::{urls, PreparedRequest, ProviderAdapter, TranslatedResponse};
use crate::deployment::{Deployment, Target};
use crate::error::{GatewayError, UpstreamErrorKind};
use crate::llm::{CallKind, LlmRequest};

pub struct HuggingFaceAdapter;

pub static HUGGINGFACE: HuggingFaceAdapter = HuggingFaceAdapter;

const PROVIDER: &str = "Huggingface";
const ROUTER: &str = "https://router.huggingface.co";

fn is_router(api_base: &str) -> bool {
    let base = api_base.trim_end_matches('/');
    base == ROUTER || base == format!("{ROUTER}/v1")
}

/// The OpenAI-style base (`…/v1`) for chat, and the model name to send.
fn chat_target(target: &Target) -> (String, String) {
    if is_router(&target.api_base) {
        let parts: Vec<&str> = target.model.splitn(2, '/').collect();
        let model = match parts.as_slice() {
            [provider, rest] if rest.contains('/') => format!("{rest}:{provider}"),
            _ => target.model.clone(),
        };
        return (format!("{ROUTER}/v1"), model);
    }
    let base = target.api_base.trim_end_matches('/');
    let base = match base.strip_suffix("/chat/completions") {
        Some(b) => b.to_string(),
        None if base.ends_with("/v1") => base.to_string(),
        None => format!("{base}/v1"),
    };
    (base, target.model.clone())
}

/// The deployment's prompt template (`initial_prompt_value`, `roles`…), which sends its chat to
/// TGI's own `/generate` API; none on the router, which takes chat messages only.
fn template(
    deployment: &Deployment,
    target: &Target,
) -> Option<super::prompt_template::PromptTemplate> {
    if is_router(&target.api_base) {
        return None;
    }
    super::prompt_template::PromptTemplate::from_params(|k| {
        deployment.provider_params.get(k).cloned()
    })
}

impl ProviderAdapter for HuggingFaceAdapter {
    fn stream_translator_for(
        &self,
        deployment: &Deployment,
        target: &Target,
        req: &LlmRequest,
    ) -> Option<Box<dyn super::stream::StreamTranslator>> {
        (req.kind == CallKind::Chat && template(deployment, target).is_some()).then(|| {
            Box::new(super::tgi::TgiStream::new(req)) as Box<dyn super::stream::StreamTranslator>
        })
    }

    fn prepare(
        &self,
        deployment: &Deployment,
        target: &Target,
        req: &LlmRequest,
    ) -> Result<PreparedRequest, GatewayError> {
        match req.kind {
            CallKind::Chat if template(deployment, target).is_some() => {
                // A prompt template: TGI's own API with the rendered prompt.
                let template = template(deployment, target).unwrap_or_default();
                let src = native::openai_body(deployment, target, req, &[])?;
                let messages = src
                    .get("messages")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let body = super::tgi::generate_body(template.render(&messages), &src);
                let root = target.api_base.trim_end_matches('/');
                let root = root.strip_suffix("/v1").unwrap_or(root);
                let method = if req.stream {
                    "generate_stream"
                } else {
                    "generate"
                };
                let url = target.url(format!("{root}/{method}"));
                PreparedRequest::json(
                    url,
                    native::json_headers(deployment, target, req.stream),
                    &body,
                )
            }
            CallKind::Chat => {
                let (api_base, model) = chat_target(target);
                let chat = Target {
                    api_base,
                    model,
                    ..target.clone()
                };
                OPENAI.prepare(deployment, &chat, req)
            }
            CallKind::Embedding => {
                let mut src = native::openai_body(deployment, target, req, &[])?;
                let texts = native::input_texts(target, src.get("input"))?;
                if src.get("encoding_format").and_then(Value::as_str) == Some("base64") {
                    return Err(native::unsupported_error(target, &["encoding_format"]));
                }
                // Like LiteLLM, parameters other than OpenAI's go along (TEI's `normalize`,
                // `truncate`, `prompt_name`, `dimensions`…).
                let mut body = serde_json::Map::new();
                body.insert("inputs".into(), Value::Array(texts));
                for k in ["model", "input", "user", "encoding_format"] {
                    src.remove(k);
                }
                for (k, v) in src {
                    if !v.is_null() {
                        body.entry(k).or_insert(v);
                    }
                }
                let url = if is_router(&target.api_base) {
                    format!(
                        "{ROUTER}/hf-inference/pipeline/feature-extraction/{}",
                        urls::segments(&target.model)
                    )
                } else {
                    target.api_base.clone()
                };
                let url = target.url(url);
                PreparedRequest::json(url, native::json_headers(deployment, target, false), &body)
            }
            CallKind::ImageGeneration
            | CallKind::ImageEdit
            | CallKind::Moderation
            | CallKind::Transcription
            | CallKind::Translation
            | CallKind::Speech
            | CallKind::Rerank
            | CallKind::Responses => {
                Err(crate::providers::native::unsupported_call(target, req.kind))
            }
            CallKind::Completion => Err(native::bad_request(
                target,
                "text completions are not available for Hugging Face here; use /chat/completions",
            )),
        }
    }

    fn translate_response(
        &self,
        req: &LlmRequest,
        body: Bytes,
    ) -> Result<TranslatedResponse, GatewayError> {
        if req.kind == CallKind::Chat && super::tgi::is_generate_answer(&body) {
            return super::tgi::chat_response(req, &body);
        }
        if req.kind != CallKind::Embedding {
            return OPENAI.translate_response(req, body);
        }
        let v: Value = serde_json::from_slice(&body).map_err(|e| native::bad_body(PROVIDER, e))?;
        let rows = v.as_array().ok_or_else(|| {
            native::bad_body(PROVIDER, "feature-extraction did not return a list")
        })?;
        // One vector per input; a model without pooling returns one vector per token, of which
        // the first (the CLS token) is kept.
        let vectors: Vec<Value> = rows
            .iter()
            .map(|r| match r.as_array().and_then(|a| a.first()) {
                Some(Value::Array(_)) => r[0].clone(),
                _ => r.clone(),
            })
            .collect();
        // The pipeline reports no token counts: estimate them as for rate limits.
        let prompt = req.estimated_prompt_tokens();
        TranslatedResponse::embeddings(&native::embedding_list(&req.model, vectors, prompt))
    }

    fn error(&self, reply: &ErrorReply<'_>) -> GatewayError {
        let (target, status, retry_after, body) = reply.parts();
        let message = native::error_text(status, body, &["error", "message", "detail"]);
        let code = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
            v.pointer("/error/code")
                .and_then(Value::as_str)
                .map(String::from)
        });
        let lower = message.to_ascii_lowercase();
        // TGI: "`inputs` tokens + `max_new_tokens` must be <= 4096"; TEI: "`inputs` must have
        // less than 512 tokens".
        let kind = if matches!(status, 400 | 413 | 422)
            && (lower.contains("`inputs` tokens + `max_new_tokens` must be")
                || (lower.contains("must have less than") && lower.contains("tokens")))
        {
            UpstreamErrorKind::ContextWindowExceeded
        } else {
            classify(status, code.as_deref(), &message)
        };
        upstream_error(target, PROVIDER, status, kind, &message, retry_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{deployment, request};
    use serde_json::json;

    fn chat_url_and_model(params: &str) -> (String, Value) {
        let d = deployment(params);
        let t = d.target_for("g").expect("target");
        let p = HUGGINGFACE
            .prepare(
                &d,
                &t,
                &request(
                    CallKind::Chat,
                    json!({"model": "g", "messages": [{"role": "user", "content": "x"}]}),
                ),
            )
            .expect("prepared");
        let v: Value = serde_json::from_slice(&p.body).expect("json");
        (p.url, v["model"].clone())
    }

    #[test]
    fn chat_urls_and_models() {
        assert_eq!(
            chat_url_and_model(
                "{model: huggingface/meta-llama/Llama-3.1-8B-Instruct, api_key: hf_x}"
            ),
            (
                "https://router.huggingface.co/v1/chat/completions".into(),
                json!("meta-llama/Llama-3.1-8B-Instruct")
            )
        );
        assert_eq!(
            chat_url_and_model(
                "{model: huggingface/together/deepseek-ai/DeepSeek-R1, api_key: hf_x}"
            ),
            (
                "https://router.huggingface.co/v1/chat/completions".into(),
                json!("deepseek-ai/DeepSeek-R1:together")
            )
        );
        assert_eq!(
            chat_url_and_model(
                "{model: huggingface/tgi, api_base: 'https://abc.endpoints.huggingface.cloud'}"
            )
            .0,
            "https://abc.endpoints.huggingface.cloud/v1/chat/completions"
        );
        assert_eq!(
            chat_url_and_model("{model: huggingface/tgi, api_base: 'http://tgi:8080/v1/'}").0,
            "http://tgi:8080/v1/chat/completions"
        );
        assert_eq!(
            chat_url_and_model(
                "{model: huggingface/tgi, api_base: 'http://tgi:8080/v1/chat/completions'}"
            )
            .0,
            "http://tgi:8080/v1/chat/completions"
        );
        let d = deployment("{model: huggingface/m/n, api_key: hf_secret}");
        let t = d.target_for("g").expect("t");
        let p = HUGGINGFACE
            .prepare(
                &d,
                &t,
                &request(
                    CallKind::Chat,
                    json!({"model": "g", "messages": [{"role": "user", "content": "x"}]}),
                ),
            )
            .expect("p");
        assert!(p
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == "Bearer hf_secret"));
    }

    #[test]
    fn embeddings() {
        let d = deployment("{model: huggingface/BAAI/bge-small-en-v1.5, api_key: hf_x}");
        let t = d.target_for("g").expect("t");
        let req = request(
            CallKind::Embedding,
            json!({"model": "g", "input": ["a b", "c"], "user": "u", "normalize": false}),
        );
        let p = HUGGINGFACE.prepare(&d, &t, &req).expect("p");
        assert_eq!(
            p.url,
            "https://router.huggingface.co/hf-inference/pipeline/feature-extraction/BAAI/bge-small-en-v1.5"
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&p.body).expect("json"),
            json!({"inputs": ["a b", "c"], "normalize": false})
        );
        let d = deployment(
            "{model: huggingface/bge, api_base: 'https://e.endpoints.huggingface.cloud'}",
        );
        let t = d.target_for("g").expect("t");
        assert_eq!(
            HUGGINGFACE.prepare(&d, &t, &req).expect("p").url,
            "https://e.endpoints.huggingface.cloud"
        );

        let r = HUGGINGFACE
            .translate_response(&req, Bytes::from_static(b"[[0.1,0.2],[0.3,0.4]]"))
            .expect("ok");
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v["data"][1]["embedding"], json!([0.3, 0.4]));
        assert!(r.usage.expect("u").prompt_tokens > 0);
        let tokens = HUGGINGFACE
            .translate_response(
                &req,
                Bytes::from_static(b"[[[1.0,2.0],[3.0,4.0]],[[5.0,6.0]]]"),
            )
            .expect("ok");
        let v: Value = serde_json::from_slice(&tokens.body).expect("json");
        assert_eq!(v["data"][0]["embedding"], json!([1.0, 2.0]));
    }

    #[test]
    fn errors() {
        let d = deployment("{model: huggingface/tgi, api_base: 'http://tgi', api_key: hf_leaky}");
        let t = d.target_for("g").expect("t");
        let e = HUGGINGFACE.translate_error(&t, 422, None, br#"{"error":"Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 4000 `inputs` tokens and 200 `max_new_tokens`","error_type":"validation"}"#);
        assert_eq!(e.code(), "context_length_exceeded");
        assert!(
            e.to_string()
                .starts_with("ContextWindowExceededError: HuggingfaceException - Input validation"),
            "{e}"
        );
        let e = HUGGINGFACE.translate_error(&t, 413, None, br#"{"error":"Input validation error: `inputs` must have less than 512 tokens. Given: 600","error_type":"validation"}"#);
        assert_eq!(e.code(), "context_length_exceeded");
        let e = HUGGINGFACE.translate_error(
            &t,
            429,
            None,
            br#"{"error":{"message":"rate limited hf_leaky","code":"rate_limit_exceeded"}}"#,
        );
        assert_eq!(e.error_type(), "rate_limit_error");
        assert!(!e.to_string().contains("hf_leaky"));
        let e = HUGGINGFACE.translate_error(
            &t,
            503,
            None,
            br#"{"error":"Model is overloaded","error_type":"overloaded"}"#,
        );
        assert!(matches!(
            e,
            GatewayError::Upstream {
                kind: UpstreamErrorKind::Server,
                status: 503,
                ..
            }
        ));
    }
}
