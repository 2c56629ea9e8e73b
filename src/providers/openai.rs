//! The OpenAI wire format, spoken by OpenAI and every OpenAI-compatible provider, and by Azure
//! OpenAI with its own URL layout and `api-key` header. The internal model is OpenAI's shape, so
//! translation is mostly the identity: set the provider's model name, apply deployment defaults and
//! `drop_params`, and ask for usage on streams so the gateway can account for them.

use super::ErrorReply;
use std::borrow::Cow;

use bytes::Bytes;
use serde_json::{json, Value};

use super::{urls, PreparedRequest, ProviderAdapter, TranslatedResponse};
use crate::deployment::{Deployment, Target};
use crate::error::{GatewayError, UpstreamErrorKind};
use crate::llm::{CallKind, LlmRequest, UsageEnvelope};
use crate::secret::scrub;

/// Azure's GA API version, used when neither the deployment nor `AZURE_API_VERSION` sets one.
pub const AZURE_DEFAULT_API_VERSION: &str = "2024-10-21";

/// The API version of Azure's Responses API when the deployment sets none (the GA chat version
/// predates it).
pub const AZURE_RESPONSES_API_VERSION: &str = "2025-04-01-preview";

pub struct OpenAiAdapter {
    azure: bool,
}

pub static OPENAI: OpenAiAdapter = OpenAiAdapter { azure: false };
pub static AZURE: OpenAiAdapter = OpenAiAdapter { azure: true };

impl OpenAiAdapter {
    /// The deployment's credentials (Azure: `api-key`, else a Microsoft Entra ID bearer token;
    /// OpenAI: a bearer key), its `openai-organization` and its `extra_headers`.
    fn credentials(
        &self,
        deployment: &Deployment,
        target: &Target,
        headers: &mut Vec<(Cow<'static, str>, String)>,
    ) {
        if self.azure {
            if let Some(key) = &target.api_key {
                headers.push((Cow::Borrowed("api-key"), key.expose().to_string()));
            } else if let Some(token) = azure_ad_token(deployment) {
                // Microsoft Entra ID: a bearer token instead of the resource key.
                headers.push((Cow::Borrowed("authorization"), format!("Bearer {token}")));
            }
        } else if let Some(key) = &target.api_key {
            headers.push((
                Cow::Borrowed("authorization"),
                format!("Bearer {}", key.expose()),
            ));
        }
        if let Some(org) = &deployment.organization {
            headers.push((Cow::Borrowed("openai-organization"), org.clone()));
        }
        headers.extend(super::native::extra_headers(deployment));
    }

    /// A call to one of OpenAI's resource APIs (`/files`, `/files/{id}/content`, `/batches`…)
    /// on this deployment: the URL of `path` with `query` (pairs already percent-encoded by the
    /// caller's [`urls::segment`]) and the deployment's credentials. OpenAI:
    /// `{api_base}{path}`; Azure: `{api_base}/openai{path}?api-version=…` (resources are not
    /// per model deployment there). The body is the caller's.
    pub fn resource(
        &self,
        deployment: &Deployment,
        target: &Target,
        path: &str,
        query: &[(&str, String)],
        body: Bytes,
    ) -> PreparedRequest {
        let mut pairs: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", urls::segment(v)))
            .collect();
        let url = if self.azure {
            pairs.push(format!(
                "api-version={}",
                urls::segment(azure_api_version(deployment))
            ));
            format!(
                "{}/openai{path}",
                target.api_base.trim_end_matches("/openai")
            )
        } else {
            format!("{}{path}", target.api_base)
        };
        let url = if pairs.is_empty() {
            url
        } else {
            format!("{url}?{}", pairs.join("&"))
        };
        let mut headers = Vec::with_capacity(4);
        self.credentials(deployment, target, &mut headers);
        PreparedRequest {
            url: target.url(url),
            headers,
            body,
        }
    }
}

/// The deployment's Azure `api-version` (else [`AZURE_DEFAULT_API_VERSION`]).
fn azure_api_version(deployment: &Deployment) -> &str {
    deployment
        .api_version
        .as_deref()
        .unwrap_or(AZURE_DEFAULT_API_VERSION)
}

impl ProviderAdapter for OpenAiAdapter {
    fn prepare(
        &self,
        deployment: &Deployment,
        target: &Target,
        req: &LlmRequest,
    ) -> Result<PreparedRequest, GatewayError> {
        // Deployment defaults, `additional_drop_params`, and the provider's unsupported
        // parameters dropped (`drop_params`) or refused.
        // Serialized from the client's body in place, never a copy of it.
        let mut body = super::native::OpenAiBody::new(deployment, target, req, &[])?;
        body.insert("model", Value::String(target.model.clone()));
        let responses = req.kind == CallKind::Responses;
        if responses {
            // The Responses API's own `metadata` (the gateway reads it too, and keeps it out of
            // chat bodies).
            if let Some(metadata) = req.gateway.metadata.as_ref().filter(|m| m.is_object()) {
                body.insert("metadata", metadata.clone());
            }
        }

        if req.stream && !responses {
            // Always ask for the usage chunk so streams are accounted; the relay hides it from
            // clients that did not ask for it.
            let mut opts = match body.get("stream_options") {
                Some(Value::Object(o)) => Value::Object(o.clone()),
                Some(other) => other.clone(),
                None => json!({}),
            };
            if let Value::Object(o) = &mut opts {
                o.insert("include_usage".into(), Value::Bool(true));
            }
            body.insert("stream_options", opts);
        }

        let path = req.kind.path();
        let mut headers: Vec<(Cow<'static, str>, String)> = Vec::with_capacity(4);
        // `/images/edits` and the audio uploads go as a form, their files as they arrived;
        // everything else as JSON.
        let form = req.kind.form_file().is_some().then(|| {
            let fields = body.to_map();
            crate::multipart::encode(fields.iter().map(|(k, v)| (k.as_str(), v)), &req.uploads)
        });
        let content_type = match &form {
            Some((content_type, _)) => content_type.clone(),
            None => "application/json".into(),
        };
        headers.push((Cow::Borrowed("content-type"), content_type));
        let url = if self.azure {
            let default_version = if responses {
                AZURE_RESPONSES_API_VERSION
            } else {
                AZURE_DEFAULT_API_VERSION
            };
            let version = deployment.api_version.as_deref().unwrap_or(default_version);
            let base = target.api_base.trim_end_matches("/openai");
            if responses {
                // Azure's Responses API is not under a deployment: the body's `model` names it.
                if version.starts_with("v1") || version == "preview" || version == "latest" {
                    format!("{base}/openai/v1/responses")
                } else {
                    format!(
                        "{base}/openai/responses?api-version={}",
                        urls::segment(version)
                    )
                }
            } else {
                format!(
                    "{}/openai/deployments/{}{}?api-version={}",
                    base,
                    urls::segment(&target.model),
                    path,
                    urls::segment(version)
                )
            }
        } else {
            format!("{}{}", target.api_base, path)
        };
        self.credentials(deployment, target, &mut headers);
        match form {
            Some((_, form)) => Ok(PreparedRequest {
                url: target.url(url),
                headers,
                body: form,
            }),
            None => PreparedRequest::json(target.url(url), headers, &body),
        }
    }

    /// Everything OpenAI's API has; Azure OpenAI has no rerank.
    fn supports(&self, kind: CallKind) -> bool {
        !(self.azure && kind == CallKind::Rerank)
    }

    fn translate_response(
        &self,
        req: &LlmRequest,
        body: Bytes,
    ) -> Result<TranslatedResponse, GatewayError> {
        let not_json = super::invalid_body;
        match req.kind {
            // Transcripts pass as the provider wrote them (JSON, or text, SRT, WebVTT).
            CallKind::Transcription | CallKind::Translation | CallKind::Speech => {
                return Ok(TranslatedResponse {
                    body,
                    usage: None,
                    response_id: None,
                })
            }
            // Cohere-compatible servers (Jina among them) answer in Cohere's shape or close to it.
            CallKind::Rerank => return crate::rerank::normalize(req, &body),
            _ => {}
        }
        if req.kind.is_image() {
            // Images are OpenAI's shape already; GPT Image models count tokens their own way.
            let usage = super::image_usage(&body).map_err(not_json)?;
            return Ok(TranslatedResponse {
                body,
                usage: Some(usage),
                response_id: None,
            });
        }
        if req.kind == CallKind::Responses {
            // A Responses object: its usage counts input and output tokens.
            let object = serde_json::from_slice::<Value>(&body).map_err(not_json)?;
            return Ok(TranslatedResponse {
                usage: crate::responses_api::usage_of(&object),
                response_id: object.get("id").and_then(Value::as_str).map(str::to_string),
                body,
            });
        }
        let envelope = serde_json::from_slice::<UsageEnvelope>(&body).map_err(not_json)?;
        Ok(TranslatedResponse {
            body,
            usage: envelope.usage,
            response_id: envelope.id,
        })
    }

    fn error(&self, reply: &ErrorReply<'_>) -> GatewayError {
        let (target, status, retry_after, body) = reply.parts();
        let err = super::native::error_object(body);
        let err = err.as_ref();
        let text = |key: &str| {
            err.and_then(|e| e.get(key)).and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        let message = text("message")
            .or_else(|| err.and_then(Value::as_str).map(str::to_string))
            .or_else(|| text("detail"))
            .unwrap_or_else(|| super::native::raw_error_text(status, body));
        let code = text("code");
        let param = text("param");
        let kind = classify(status, code.as_deref(), &message);
        let class = kind.class_name(status);
        let provider = if self.azure {
            "AzureException"
        } else {
            "OpenAIException"
        };
        let message = scrub(
            &format!("{class}: {provider} ({}) - {message}", target.spec.name),
            target.api_key.as_ref(),
        );
        // Keeps the provider's string code (`rate_limit_exceeded`, `context_length_exceeded`…)
        // where the kind has no standard one.
        super::native::upstream(kind, status, message, code, param, retry_after)
    }
}

/// An Entra ID token for Azure: `litellm_params.azure_ad_token`, else `AZURE_AD_TOKEN`.
fn azure_ad_token(deployment: &Deployment) -> Option<String> {
    deployment
        .provider_params
        .str("azure_ad_token")
        .or_else(|| std::env::var("AZURE_AD_TOKEN").ok())
        .map(|t| t.trim().trim_start_matches("Bearer ").to_string())
        .filter(|t| !t.is_empty())
}

/// What an upstream error means for routing, from status, code and message.
pub fn classify(status: u16, code: Option<&str>, message: &str) -> UpstreamErrorKind {
    let lower = message.to_ascii_lowercase();
    let code = code.unwrap_or("");
    let context = code == "context_length_exceeded"
        || lower.contains("maximum context length")
        || lower.contains("context length")
        || lower.contains("context_length_exceeded")
        || lower.contains("prompt is too long")
        || lower.contains("too many tokens")
        || lower.contains("input is too long");
    let policy = code == "content_policy_violation"
        || code == "content_filter"
        || lower.contains("content management policy")
        || lower.contains("safety system")
        || lower.contains("content policy");
    match status {
        400 | 413 | 422 if context => UpstreamErrorKind::ContextWindowExceeded,
        400 | 422 if policy => UpstreamErrorKind::ContentPolicy,
        401 => UpstreamErrorKind::Authentication,
        403 => UpstreamErrorKind::PermissionDenied,
        404 => UpstreamErrorKind::NotFound,
        408 => UpstreamErrorKind::Timeout,
        429 => UpstreamErrorKind::RateLimit,
        400..=499 => UpstreamErrorKind::BadRequest,
        _ => UpstreamErrorKind::Server,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::deployment_from as deployment;
    use std::time::Duration;

    fn request(body: Value) -> LlmRequest {
        crate::providers::testing::request(CallKind::Chat, body)
    }

    #[test]
    fn openai_request_has_bearer_model_defaults_and_stream_usage() {
        let d = deployment("model_list:\n  - model_name: g\n    litellm_params: {model: openai/gpt-4o, api_key: sk-upstream-key, temperature: 0.2, api_base: 'http://h/v1'}\n");
        let t = d.target_for("g").expect("target");
        let req = request(
            json!({"model": "g", "messages": [{"role": "user", "content": "x"}], "stream": true}),
        );
        let p = OPENAI.prepare(&d, &t, &req).expect("prepared");
        assert_eq!(p.url, "http://h/v1/chat/completions");
        assert!(p
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == "Bearer sk-upstream-key"));
        let body: Value = serde_json::from_slice(&p.body).expect("json");
        assert_eq!(body["model"], "gpt-4o");
        assert_eq!(body["temperature"], 0.2);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert!(p
            .redacted_headers()
            .iter()
            .all(|(_, v)| !v.contains("upstream-key")));
    }

    #[test]
    fn azure_url_and_api_key_header() {
        let d = deployment("model_list:\n  - model_name: g\n    litellm_params: {model: azure/my-dep, api_key: k, api_base: 'https://r.openai.azure.com/', api_version: '2025-01-01-preview'}\n");
        let t = d.target_for("g").expect("target");
        let p = AZURE
            .prepare(
                &d,
                &t,
                &request(json!({"model": "g", "messages": [{"role": "user", "content": "x"}]})),
            )
            .expect("prepared");
        assert_eq!(p.url, "https://r.openai.azure.com/openai/deployments/my-dep/chat/completions?api-version=2025-01-01-preview");
        assert!(p.headers.iter().any(|(k, v)| k == "api-key" && v == "k"));
    }

    #[test]
    fn azure_deployment_names_are_one_segment_and_the_base_query_follows_the_version() {
        let d = deployment("model_list:\n  - model_name: 'azure/*'\n    litellm_params: {model: 'azure/*', api_key: k, api_base: 'https://r.openai.azure.com/?tenant=t1', api_version: '2025-01-01-preview'}\n");
        let t = d.target_for("azure/x&api-version=evil:1").expect("target");
        let p = AZURE
            .prepare(
                &d,
                &t,
                &request(json!({"model": "g", "messages": [{"role": "user", "content": "x"}]})),
            )
            .expect("prepared");
        assert_eq!(p.url, "https://r.openai.azure.com/openai/deployments/x%26api-version%3Devil%3A1/chat/completions?api-version=2025-01-01-preview&tenant=t1");
    }

    #[test]
    fn azure_entra_token_is_a_bearer_header_when_there_is_no_key() {
        let d = deployment("model_list:\n  - model_name: g\n    litellm_params: {model: azure/my-dep, azure_ad_token: eyJ-entra-token, api_base: 'https://r.openai.azure.com'}\n");
        let t = d.target_for("g").expect("target");
        let p = AZURE
            .prepare(
                &d,
                &t,
                &request(json!({"model": "g", "messages": [{"role": "user", "content": "x"}]})),
            )
            .expect("prepared");
        assert!(p
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == "Bearer eyJ-entra-token"));
        assert!(p.headers.iter().all(|(k, _)| k != "api-key"));
        assert!(p
            .redacted_headers()
            .iter()
            .all(|(_, v)| !v.contains("entra-token")));
    }

    #[test]
    fn unsupported_params_error_or_drop() {
        let d = deployment(
            "model_list:\n  - model_name: g\n    litellm_params: {model: groq/llama, api_key: k}\n",
        );
        let t = d.target_for("g").expect("target");
        let body = json!({"model": "g", "messages": [{"role": "user", "content": "x"}], "logit_bias": {"1": 2}});
        let err = OPENAI
            .prepare(&d, &t, &request(body.clone()))
            .err()
            .expect("unsupported");
        assert!(err.to_string().contains("logit_bias"));
        let mut dropping = body;
        dropping["drop_params"] = json!(true);
        let p = OPENAI.prepare(&d, &t, &request(dropping)).expect("dropped");
        assert!(!String::from_utf8_lossy(&p.body).contains("logit_bias"));
    }

    #[test]
    fn errors_are_classified_from_real_bodies() {
        let d = deployment("model_list:\n  - model_name: g\n    litellm_params: {model: openai/gpt-4o, api_key: sk-leaky-secret-1}\n");
        let t = d.target_for("g").expect("target");
        let ctx = br#"{"error":{"message":"This model's maximum context length is 8192 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
        let e = OPENAI.translate_error(&t, 400, None, ctx);
        assert_eq!(e.code(), "context_length_exceeded");
        assert_eq!(e.param(), Some("messages"));
        let rl = OPENAI.translate_error(
            &t,
            429,
            Some(Duration::from_secs(3)),
            br#"{"error":{"message":"Rate limit","type":"requests","code":"rate_limit_exceeded"}}"#,
        );
        assert_eq!(rl.error_type(), "rate_limit_error");
        assert_eq!(rl.retry_after(), Some(Duration::from_secs(3)));
        let leak = OPENAI.translate_error(
            &t,
            401,
            None,
            br#"{"error":{"message":"Incorrect API key provided: sk-leaky-secret-1"}}"#,
        );
        assert!(!leak.to_string().contains("sk-leaky-secret-1"));
        let plain = OPENAI.translate_error(&t, 502, None, b"<html>bad gateway</html>");
        assert_eq!(plain.error_type(), "internal_server_error");
    }
}
