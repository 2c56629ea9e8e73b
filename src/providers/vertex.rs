//! Vertex AI (`vertex_ai/`, Gemini models): the `generateContent` JSON of [`super::gemini`] at
//! `https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:…`,
//! authorized with an OAuth access token obtained from a service account.
//!
//! The token comes from a JWT assertion (RS256, signed with the service account's key) exchanged
//! at the account's `token_uri`. Tokens are cached per service account for the whole process (all
//! worker threads share one cache), reused until five minutes before they expire, and fetched by
//! one request at a time per account: concurrent requests wait for that fetch instead of starting
//! their own.

use super::ErrorReply;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use futures_util::future::LocalBoxFuture;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::gemini::{self, Flavor, GeminiStream};
use super::stream::StreamTranslator;
use super::{native, urls, PreparedRequest, ProviderAdapter, TranslatedResponse};
use crate::deployment::{Deployment, Target};
use crate::error::{GatewayError, UpstreamErrorKind};
use crate::llm::{CallKind, LlmRequest};
use crate::secret::Secret;

/// The registry's default base: `{location}` is filled from the deployment's location
/// (`global` uses `https://aiplatform.googleapis.com`).
pub const VERTEX_DEFAULT_API_BASE: &str = "https://{location}-aiplatform.googleapis.com";
pub const DEFAULT_LOCATION: &str = "us-central1";
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Tokens are refreshed this long before they expire.
const REFRESH_EARLY: Duration = Duration::from_secs(300);
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);

pub struct VertexAdapter;

pub static VERTEX: VertexAdapter = VertexAdapter;

/// Model families Vertex serves through other publishers and wire formats (Anthropic's
/// `rawPredict`, OpenAI-compatible endpoints), which this adapter does not speak.
const PARTNER_PREFIXES: &[&str] = &[
    "claude",
    "llama",
    "meta/",
    "mistral",
    "codestral",
    "jamba",
    "deepseek",
    "qwen",
    "openai/",
];

impl ProviderAdapter for VertexAdapter {
    fn prepare(
        &self,
        deployment: &Deployment,
        target: &Target,
        req: &LlmRequest,
    ) -> Result<PreparedRequest, GatewayError> {
        let model = target.model.as_str();
        if PARTNER_PREFIXES.iter().any(|p| model.starts_with(p))
            || (!model.is_empty() && model.chars().all(|c| c.is_ascii_digit()))
        {
            return Err(GatewayError::bad_request(format!(
                "vertex_ai/{model}: only Google's own models (publishers/google: Gemini, text embeddings) are supported by this gateway's Vertex AI adapter; partner models and custom endpoints are not"
            )));
        }
        let project = project(deployment)?;
        let location = location(deployment);
        let (method, body) = match req.kind {
            CallKind::Chat => (
                if req.stream {
                    "streamGenerateContent?alt=sse"
                } else {
                    "generateContent"
                },
                Value::Object(gemini::chat_request(deployment, target, req)?),
            ),
            CallKind::Embedding => ("predict", embed_request(deployment, target, req)?),
            CallKind::ImageGeneration => ("predict", imagen_request(req)?),
            CallKind::Rerank => {
                // The Discovery Engine ranking API, not a model method.
                let url = rank_url(&target.api_base, &project);
                let body = Value::Object(crate::rerank::vertex_body(model, &req.body));
                let mut headers: Vec<(Cow<'static, str>, String)> =
                    vec![(Cow::Borrowed("content-type"), "application/json".into())];
                headers.push((Cow::Borrowed("x-goog-user-project"), project.clone()));
                headers.extend(super::native::extra_headers(deployment));
                return PreparedRequest::json(target.url(url), headers, &body);
            }
            CallKind::ImageEdit
            | CallKind::Moderation
            | CallKind::Transcription
            | CallKind::Translation
            | CallKind::Speech
            | CallKind::Responses => {
                return Err(crate::providers::native::unsupported_call(target, req.kind))
            }
            CallKind::Completion => return Err(gemini::no_legacy_completions(target)),
        };
        let url = vertex_url(&target.api_base, &project, &location, model, method);
        let mut headers: Vec<(Cow<'static, str>, String)> =
            vec![(Cow::Borrowed("content-type"), "application/json".into())];
        headers.extend(super::native::extra_headers(deployment));
        PreparedRequest::json(target.url(url), headers, &body)
    }

    fn authorize<'a>(
        &'a self,
        deployment: &'a Deployment,
        _target: &'a Target,
        mut prepared: PreparedRequest,
    ) -> LocalBoxFuture<'a, Result<PreparedRequest, GatewayError>> {
        Box::pin(async move {
            let account = account_for(deployment)?.ok_or_else(|| {
                GatewayError::DeploymentMisconfigured {
                    message: format!(
                        "Deployment of model '{}' cannot be called: no Vertex AI credentials (set litellm_params.vertex_credentials to a service-account JSON file or its text, or GOOGLE_APPLICATION_CREDENTIALS)",
                        deployment.model_name
                    ),
                }
            })?;
            let token = account.token().await?;
            prepared.headers.push((
                Cow::Borrowed("authorization"),
                format!("Bearer {}", token.expose()),
            ));
            Ok(prepared)
        })
    }

    fn supports(&self, kind: CallKind) -> bool {
        matches!(
            kind,
            CallKind::Chat
                | CallKind::Completion
                | CallKind::Embedding
                | CallKind::ImageGeneration
                | CallKind::Rerank
        )
    }

    fn translate_response(
        &self,
        req: &LlmRequest,
        body: Bytes,
    ) -> Result<TranslatedResponse, GatewayError> {
        match req.kind {
            CallKind::Embedding => translate_predictions(req, &body),
            CallKind::ImageGeneration => imagen_response(&body),
            CallKind::Rerank => crate::rerank::from_vertex(req, &body),
            _ => gemini::translate_chat_response(req, &body),
        }
    }

    fn error(&self, reply: &ErrorReply<'_>) -> GatewayError {
        let (target, status, retry_after, body) = reply.parts();
        if status == 401 {
            // A token Google no longer accepts (revoked, rotated key): fetch new ones rather than
            // failing until the cached ones expire.
            forget_cached_tokens();
        }
        gemini::google_error(Flavor::Vertex, target, status, retry_after, body)
    }

    fn stream_translator(
        &self,
        target: &Target,
        _req: &LlmRequest,
    ) -> Option<Box<dyn StreamTranslator>> {
        Some(Box::new(GeminiStream::new(
            Flavor::Vertex,
            &target.model,
            None,
        )))
    }
}

fn setting(deployment: &Deployment, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| deployment.provider_params.str(k))
}

fn env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
}

/// The Google Cloud project a deployment is called in: `vertex_project`, else
/// `VERTEXAI_PROJECT`, else its service account's project.
pub fn project(deployment: &Deployment) -> Result<String, GatewayError> {
    let account = account_for(deployment)?;
    setting(deployment, &["vertex_project", "vertex_ai_project"])
        .or_else(|| env(&["VERTEXAI_PROJECT", "VERTEX_PROJECT"]))
        .or_else(|| account.as_ref().and_then(|a| a.project_id.clone()))
        .ok_or_else(|| GatewayError::DeploymentMisconfigured {
            message: format!(
                "Deployment of model '{}' cannot be called: set litellm_params.vertex_project (or VERTEXAI_PROJECT)",
                deployment.model_name
            ),
        })
}

/// The Vertex AI location a deployment is called in.
pub fn location(deployment: &Deployment) -> String {
    setting(deployment, &["vertex_location", "vertex_ai_location"])
        .or_else(|| env(&["VERTEXAI_LOCATION", "VERTEX_LOCATION"]))
        .unwrap_or_else(|| DEFAULT_LOCATION.to_string())
}

/// The deployment's endpoint host, with the default base's `{location}` filled in (resolved once,
/// when the deployment is loaded, so `/health` and `x-litellm-model-api-base` show it).
pub fn resolved_base(deployment: &Deployment, base: &str) -> String {
    if !base.contains("{location}") {
        return base.to_string();
    }
    let location = location(deployment);
    if location == "global" {
        "https://aiplatform.googleapis.com".to_string()
    } else {
        base.replace("{location}", &location)
    }
}

/// The URL of a model method. A base holding `{location}` (the default) is filled in; a base that
/// already names a resource (`…/projects/…`, `…/models/…`, `…/endpoints/…`, LiteLLM's custom
/// `api_base` form) gets only `:{method}`; any other base is a host to put the standard path on.
pub fn vertex_url(base: &str, project: &str, location: &str, model: &str, method: &str) -> String {
    let base = if base.contains("{location}") {
        if location == "global" {
            "https://aiplatform.googleapis.com".to_string()
        } else {
            base.replace("{location}", location)
        }
    } else {
        base.trim_end_matches('/').to_string()
    };
    if ["/projects/", "/models/", "/endpoints/"]
        .iter()
        .any(|p| base.contains(p))
    {
        format!("{base}:{method}")
    } else {
        format!(
            "{base}/v1/projects/{}/locations/{}/publishers/google/models/{}:{method}",
            urls::segment(project),
            urls::segment(location),
            urls::segment(model)
        )
    }
}

/// The ranking API's URL: Discovery Engine's host for the default base, else the configured host
/// (a proxy, a test server), with the project's default ranking config.
fn rank_url(base: &str, project: &str) -> String {
    let host = if base.contains("{location}") || base.contains("aiplatform.googleapis.com") {
        "https://discoveryengine.googleapis.com".to_string()
    } else {
        base.trim_end_matches('/').to_string()
    };
    format!(
        "{host}/v1/projects/{}/locations/global/rankingConfigs/default_ranking_config:rank",
        urls::segment(project)
    )
}

/// `:predict` for Vertex text-embedding models.
fn embed_request(
    deployment: &Deployment,
    target: &Target,
    req: &LlmRequest,
) -> Result<Value, GatewayError> {
    let body = gemini::effective_body(deployment, target, req)?;
    let texts = gemini::embedding_texts(&body)?;
    let task = body.get("task_type").and_then(Value::as_str);
    let instances: Vec<Value> = texts
        .iter()
        .map(|t| match task {
            Some(task) => json!({"content": t, "task_type": task}),
            None => json!({"content": t}),
        })
        .collect();
    let mut out = json!({ "instances": instances });
    if let Some(d) = body.get("dimensions").filter(|v| !v.is_null()) {
        out["parameters"] = json!({ "outputDimensionality": d });
    }
    Ok(out)
}

/// `{"predictions":[{"embeddings":{"values":[…],"statistics":{"token_count":N}}}]}` → the OpenAI
/// embedding list.
/// Imagen's `:predict` body: the prompt as the one instance; `n` as `sampleCount`, `size` as an
/// `aspectRatio`, `negative_prompt` and `seed` as Imagen names them.
fn imagen_request(req: &LlmRequest) -> Result<Value, GatewayError> {
    let ask = crate::providers::images::ImageAsk::of(req)?;
    let mut parameters = serde_json::Map::new();
    parameters.insert("sampleCount".into(), json!(ask.n));
    if let Some(ratio) = ask.aspect_ratio() {
        parameters.insert("aspectRatio".into(), json!(ratio));
    }
    if let Some(n) = ask.negative_prompt {
        parameters.insert("negativePrompt".into(), json!(n));
    }
    if let Some(seed) = ask.seed {
        parameters.insert("seed".into(), json!(seed));
    }
    Ok(json!({"instances": [{"prompt": ask.prompt}], "parameters": parameters}))
}

/// Imagen's predictions (`bytesBase64Encoded` each) as OpenAI's images response.
fn imagen_response(body: &[u8]) -> Result<TranslatedResponse, GatewayError> {
    #[derive(serde::Deserialize)]
    struct Predictions {
        #[serde(default)]
        predictions: Vec<Prediction>,
    }
    #[derive(serde::Deserialize)]
    struct Prediction {
        #[serde(rename = "bytesBase64Encoded")]
        bytes: Option<String>,
    }
    let p: Predictions = serde_json::from_slice(body).map_err(crate::providers::invalid_body)?;
    crate::providers::images::openai_images(
        p.predictions.into_iter().filter_map(|p| p.bytes).collect(),
    )
}

fn translate_predictions(
    req: &LlmRequest,
    body: &[u8],
) -> Result<TranslatedResponse, GatewayError> {
    let v: Value = serde_json::from_slice(body).map_err(gemini::invalid_body)?;
    let predictions = v
        .get("predictions")
        .and_then(Value::as_array)
        .ok_or_else(|| gemini::invalid_body("no predictions in the response"))?;
    let mut tokens = 0u64;
    let mut vectors = Vec::with_capacity(predictions.len());
    for p in predictions {
        let e = p.get("embeddings").unwrap_or(&Value::Null);
        vectors.push(e.get("values").cloned().unwrap_or_else(|| json!([])));
        tokens += e
            .pointer("/statistics/token_count")
            .and_then(Value::as_f64)
            .unwrap_or(0.0) as u64;
    }
    if tokens == 0 {
        tokens = gemini::estimate_tokens(req);
    }
    TranslatedResponse::embeddings(&native::embedding_list(&req.model, vectors, tokens))
}

// ---------------------------------------------------------------------------------------------
// Service accounts and their access tokens
// ---------------------------------------------------------------------------------------------

/// How an account gets its tokens.
enum Grant {
    /// A service-account key: JWT-bearer assertions signed with it.
    ServiceAccount {
        key_id: Option<String>,
        key: RsaKeyPair,
    },
    /// User credentials from `gcloud auth application-default login`: a refresh token.
    AuthorizedUser {
        client_id: String,
        client_secret: Secret,
        refresh_token: Secret,
    },
}

/// A Google identity (a service account, or user credentials) with its cached access token.
pub struct Account {
    /// The service account's email, or `user credentials (client …)`; for messages and logs.
    pub identity: String,
    pub token_uri: String,
    pub project_id: Option<String>,
    grant: Grant,
    /// The current token and when to stop using it.
    token: RwLock<Option<(Secret, Instant)>>,
    /// Held by the one request fetching a token for this account.
    refresh: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("identity", &self.identity)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

/// Loaded accounts, by credential source (file path, or a hash of the JSON text).
static ACCOUNTS: LazyLock<Mutex<HashMap<String, Arc<Account>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn misconfigured(message: String) -> GatewayError {
    GatewayError::DeploymentMisconfigured { message }
}

/// The deployment's service account: `vertex_credentials` (a path, the JSON text, or a mapping in
/// the config), else `VERTEXAI_CREDENTIALS`, else `GOOGLE_APPLICATION_CREDENTIALS`. `None` when
/// none is set. Loaded once per source and process.
pub fn account_for(deployment: &Deployment) -> Result<Option<Arc<Account>>, GatewayError> {
    let source = match deployment
        .provider_params
        .get("vertex_credentials")
        .or_else(|| deployment.provider_params.get("vertex_ai_credentials"))
    {
        Some(Value::Object(o)) => Some(Value::Object(o.clone()).to_string()),
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => env(&["VERTEXAI_CREDENTIALS", "GOOGLE_APPLICATION_CREDENTIALS"]),
    };
    let Some(source) = source else {
        return Ok(None);
    };
    let inline = source.starts_with('{');
    let cache_key = if inline {
        format!("json:{}", hex::encode(Sha256::digest(source.as_bytes())))
    } else {
        format!("path:{source}")
    };
    if let Some(a) = ACCOUNTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&cache_key)
    {
        return Ok(Some(a.clone()));
    }
    let text = if inline {
        source
    } else {
        std::fs::read_to_string(&source).map_err(|e| {
            misconfigured(format!(
                "Deployment of model '{}' cannot be called: cannot read the Vertex AI credentials file {source}: {e}",
                deployment.model_name
            ))
        })?
    };
    let account = Arc::new(Account::from_json(&text).map_err(|e| {
        misconfigured(format!(
            "Deployment of model '{}' cannot be called: Vertex AI credentials: {e}",
            deployment.model_name
        ))
    })?);
    let mut accounts = ACCOUNTS.lock().unwrap_or_else(PoisonError::into_inner);
    Ok(Some(accounts.entry(cache_key).or_insert(account).clone()))
}

/// Drops every cached access token; the next request of each account fetches a new one.
pub fn forget_cached_tokens() {
    let accounts: Vec<Arc<Account>> = ACCOUNTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
        .cloned()
        .collect();
    for a in accounts {
        *a.token.write().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// How long a token that lives `lifetime` is used: until five minutes before it expires (half its
/// life for short-lived tokens).
fn usable_for(lifetime: Duration) -> Duration {
    if lifetime > REFRESH_EARLY * 2 {
        lifetime - REFRESH_EARLY
    } else {
        lifetime / 2
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The DER bytes of a PEM block (`PRIVATE KEY` = PKCS#8, `RSA PRIVATE KEY` = PKCS#1).
fn pem_der(pem: &str) -> Result<(bool, Vec<u8>), String> {
    let pem = pem.replace("\\n", "\n");
    for (label, pkcs8) in [("PRIVATE KEY", true), ("RSA PRIVATE KEY", false)] {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        if let Some(start) = pem.find(&begin) {
            let rest = &pem[start + begin.len()..];
            let stop = rest
                .find(&end)
                .ok_or_else(|| format!("private_key has no '{end}' line"))?;
            let b64: String = rest[..stop]
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| "private_key is not valid base64 PEM".to_string())?;
            return Ok((pkcs8, der));
        }
    }
    Err("private_key is not a PEM RSA private key".into())
}

impl Account {
    /// A service-account key file (`"type": "service_account"`) or user credentials
    /// (`"type": "authorized_user"`, as `gcloud auth application-default login` writes them).
    pub fn from_json(text: &str) -> Result<Self, String> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| format!("not a JSON credentials file: {e}"))?;
        let field = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let token_uri = field("token_uri").unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string());
        match field("type").as_deref() {
            Some("service_account") | None => {}
            Some("authorized_user") => {
                let client_id = field("client_id").ok_or("client_id is missing")?;
                return Ok(Self {
                    identity: format!("user credentials (client {client_id})"),
                    token_uri,
                    project_id: field("quota_project_id"),
                    grant: Grant::AuthorizedUser {
                        client_id,
                        client_secret: Secret::new(
                            field("client_secret").ok_or("client_secret is missing")?,
                        ),
                        refresh_token: Secret::new(
                            field("refresh_token").ok_or("refresh_token is missing")?,
                        ),
                    },
                    token: RwLock::new(None),
                    refresh: tokio::sync::Mutex::new(()),
                });
            }
            Some(other) => {
                return Err(format!(
                    "credentials of type '{other}' are not supported; use a service-account key or authorized_user credentials"
                ))
            }
        }
        let client_email = field("client_email").ok_or("client_email is missing")?;
        let pem = field("private_key").ok_or("private_key is missing")?;
        let (pkcs8, der) = pem_der(&pem)?;
        let key = if pkcs8 {
            RsaKeyPair::from_pkcs8(&der)
        } else {
            RsaKeyPair::from_der(&der)
        }
        .map_err(|e| format!("private_key is not a usable RSA key: {e}"))?;
        Ok(Self {
            identity: client_email,
            token_uri,
            project_id: field("project_id"),
            grant: Grant::ServiceAccount {
                key_id: field("private_key_id"),
                key,
            },
            token: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
        })
    }

    /// The signed JWT assertion for a token request at `now` (Unix seconds).
    pub fn assertion(&self, now: u64) -> Result<String, String> {
        let Grant::ServiceAccount { key_id, key } = &self.grant else {
            return Err("user credentials sign no assertions".into());
        };
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = key_id {
            header["kid"] = json!(kid);
        }
        let claims = json!({
            "iss": self.identity,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + 3600,
        });
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let mut signature = vec![0u8; key.public().modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            input.as_bytes(),
            &mut signature,
        )
        .map_err(|_| "cannot sign the token request".to_string())?;
        Ok(format!("{input}.{}", b64url(&signature)))
    }

    fn cached(&self) -> Option<Secret> {
        let guard = self.token.read().unwrap_or_else(PoisonError::into_inner);
        guard
            .as_ref()
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(t, _)| t.clone())
    }

    /// A valid access token: the cached one, else one fetched now (by one caller at a time).
    pub async fn token(&self) -> Result<Secret, GatewayError> {
        if let Some(t) = self.cached() {
            return Ok(t);
        }
        let _fetching = self.refresh.lock().await;
        if let Some(t) = self.cached() {
            return Ok(t);
        }
        let (token, lifetime) = self.fetch().await?;
        *self.token.write().unwrap_or_else(PoisonError::into_inner) =
            Some((token.clone(), Instant::now() + usable_for(lifetime)));
        Ok(token)
    }

    async fn fetch(&self) -> Result<(Secret, Duration), GatewayError> {
        let fail = |kind: UpstreamErrorKind, status: u16, why: String| GatewayError::Upstream {
            kind,
            status,
            message: format!(
                "{}: VertexAIException - cannot get an access token for {}: {why}",
                if kind == UpstreamErrorKind::Authentication {
                    "AuthenticationError"
                } else {
                    "APIConnectionError"
                },
                self.identity
            ),
            code: None,
            param: None,
            retry_after: None,
        };
        let response = match &self.grant {
            Grant::ServiceAccount { .. } => {
                let now = (crate::time::now_ms() / 1000).max(0) as u64;
                let assertion = self.assertion(now).map_err(GatewayError::internal)?;
                crate::upstream::post_form(
                    &self.token_uri,
                    &[("grant_type", JWT_BEARER), ("assertion", &assertion)],
                    TOKEN_TIMEOUT,
                )
                .await
            }
            Grant::AuthorizedUser {
                client_id,
                client_secret,
                refresh_token,
            } => {
                crate::upstream::post_form(
                    &self.token_uri,
                    &[
                        ("grant_type", "refresh_token"),
                        ("client_id", client_id),
                        ("client_secret", client_secret.expose()),
                        ("refresh_token", refresh_token.expose()),
                    ],
                    TOKEN_TIMEOUT,
                )
                .await
            }
        };
        let (status, body) = response.map_err(|e| fail(UpstreamErrorKind::Connection, 502, e))?;
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            let why = match (
                v.get("error").and_then(Value::as_str),
                v.get("error_description").and_then(Value::as_str),
            ) {
                (Some(e), Some(d)) => format!("{e}: {d}"),
                (Some(e), None) => e.to_string(),
                _ => format!("the token endpoint answered {status}"),
            };
            return Err(if status >= 500 {
                fail(UpstreamErrorKind::Connection, 502, why)
            } else {
                fail(UpstreamErrorKind::Authentication, 401, why)
            });
        }
        let token = v
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                fail(
                    UpstreamErrorKind::Connection,
                    502,
                    "the token endpoint sent no access_token".into(),
                )
            })?;
        let lifetime = v.get("expires_in").and_then(Value::as_u64).unwrap_or(3600);
        tracing::debug!(
            identity = self.identity,
            expires_in = lifetime,
            "fetched a Vertex AI access token"
        );
        Ok((Secret::new(token), Duration::from_secs(lifetime)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};

    const TEST_KEY: &str = include_str!("../../tests/fixtures/vertex-test-key.pem");

    fn service_account(token_uri: &str) -> String {
        json!({
            "type": "service_account",
            "project_id": "proj-from-key",
            "private_key_id": "kid-1",
            "private_key": TEST_KEY,
            "client_email": "tollgate-test@proj.iam.gserviceaccount.com",
            "token_uri": token_uri,
        })
        .to_string()
    }

    fn deployment(params: &str) -> Deployment {
        crate::providers::testing::deployment_from(&format!(
            "model_list:\n  - model_name: v\n    litellm_params: {params}\n"
        ))
    }

    fn chat(stream: bool) -> LlmRequest {
        let body =
            json!({"model": "v", "messages": [{"role": "user", "content": "x"}], "stream": stream});
        LlmRequest::parse(CallKind::Chat, body.to_string().as_bytes(), None).expect("valid")
    }

    #[test]
    fn urls_for_regions_global_hosts_and_full_resource_bases() {
        assert_eq!(
            vertex_url(VERTEX_DEFAULT_API_BASE, "p", "europe-west4", "gemini-2.0-flash", "generateContent"),
            "https://europe-west4-aiplatform.googleapis.com/v1/projects/p/locations/europe-west4/publishers/google/models/gemini-2.0-flash:generateContent"
        );
        assert_eq!(
            vertex_url(VERTEX_DEFAULT_API_BASE, "p", "global", "gemini-2.5-pro", "streamGenerateContent?alt=sse"),
            "https://aiplatform.googleapis.com/v1/projects/p/locations/global/publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            vertex_url("http://127.0.0.1:9/", "p", "us-central1", "m", "predict"),
            "http://127.0.0.1:9/v1/projects/p/locations/us-central1/publishers/google/models/m:predict"
        );
        assert_eq!(
            vertex_url("https://gw.example/v1/projects/p/locations/l/publishers/google/models/m", "x", "y", "z", "generateContent"),
            "https://gw.example/v1/projects/p/locations/l/publishers/google/models/m:generateContent"
        );
        assert_eq!(
            vertex_url("http://h", "p/x", "l?y", "m:countTokens", "generateContent"),
            "http://h/v1/projects/p%2Fx/locations/l%3Fy/publishers/google/models/m%3AcountTokens:generateContent"
        );
    }

    #[test]
    fn prepare_uses_project_location_and_falls_back_to_the_key_project() {
        let creds = service_account("http://127.0.0.1:1/token");
        let params = format!(
            "{{model: vertex_ai/gemini-2.0-flash, vertex_location: europe-west1, vertex_credentials: {}}}",
            serde_json::to_string(&creds).expect("yaml string")
        );
        let d = deployment(&params);
        let t = d.target_for("v").expect("target");
        let p = VERTEX.prepare(&d, &t, &chat(true)).expect("prepared");
        assert_eq!(
            p.url,
            "https://europe-west1-aiplatform.googleapis.com/v1/projects/proj-from-key/locations/europe-west1/publishers/google/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
        );
        assert!(
            p.headers.iter().all(|(k, _)| k != "authorization"),
            "added by authorize"
        );
        let body: Value = serde_json::from_slice(&p.body).expect("json");
        assert_eq!(body["contents"][0]["role"], "user");

        let claude =
            deployment("{model: vertex_ai/claude-3-5-sonnet-v2@20241022, vertex_project: p}");
        let t = claude.target_for("v").expect("target");
        assert!(VERTEX.prepare(&claude, &t, &chat(false)).is_err());
    }

    #[test]
    fn assertion_is_an_rs256_jwt_with_the_google_claims() {
        let account =
            Account::from_json(&service_account("https://oauth2.example/token")).expect("loads");
        let jwt = account.assertion(1_700_000_000).expect("signed");
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |s: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .expect("b64url")
        };
        let header: Value = serde_json::from_slice(&decode(parts[0])).expect("json");
        assert_eq!(
            header,
            json!({"alg": "RS256", "typ": "JWT", "kid": "kid-1"})
        );
        let claims: Value = serde_json::from_slice(&decode(parts[1])).expect("json");
        assert_eq!(claims["iss"], "tollgate-test@proj.iam.gserviceaccount.com");
        assert_eq!(claims["aud"], "https://oauth2.example/token");
        assert_eq!(claims["scope"], SCOPE);
        assert_eq!(claims["exp"].as_u64(), Some(1_700_003_600));
        let Grant::ServiceAccount { key, .. } = &account.grant else {
            panic!("a service account");
        };
        let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.public().as_ref());
        let signed = format!("{}.{}", parts[0], parts[1]);
        public
            .verify(signed.as_bytes(), &decode(parts[2]))
            .expect("signature verifies with the account's public key");
    }

    #[test]
    fn bad_credentials_are_reported_without_the_key() {
        let e = Account::from_json(r#"{"type": "service_account", "client_email": "a@b", "private_key": "-----BEGIN PRIVATE KEY-----\nnot-base64!\n-----END PRIVATE KEY-----\n"}"#)
            .expect_err("fails");
        assert!(e.contains("base64"), "{e}");
        let e = Account::from_json(r#"{"type": "external_account", "audience": "x"}"#)
            .expect_err("fails");
        assert!(e.contains("external_account"), "{e}");
        let e = Account::from_json(
            r#"{"type": "authorized_user", "client_id": "c", "refresh_token": "r"}"#,
        )
        .expect_err("fails");
        assert!(e.contains("client_secret"), "{e}");
        let d = deployment("{model: vertex_ai/gemini-2.0-flash, vertex_project: p, vertex_credentials: /nonexistent/sa.json}");
        let msg = account_for(&d).expect_err("unreadable").to_string();
        assert!(msg.contains("/nonexistent/sa.json"), "{msg}");
    }

    #[test]
    fn tokens_are_used_until_five_minutes_before_expiry() {
        assert_eq!(
            usable_for(Duration::from_secs(3599)),
            Duration::from_secs(3299)
        );
        assert_eq!(
            usable_for(Duration::from_secs(600)),
            Duration::from_secs(300)
        );
        assert_eq!(usable_for(Duration::from_secs(60)), Duration::from_secs(30));
    }

    async fn token_requests(port: u16) -> u64 {
        let mut resp = awc::Client::default()
            .get(format!("http://127.0.0.1:{port}/mock/google/stats"))
            .send()
            .await
            .expect("stats");
        let v: Value = resp.json().await.expect("json");
        v["token_requests"].as_u64().expect("count")
    }

    #[actix_web::test]
    async fn tokens_are_fetched_once_cached_and_refreshed_when_stale() {
        use tollgate_mock::{configure, MockProviderArgs, MockState};
        let state = actix_web::web::Data::new(MockState::new(&MockProviderArgs::default()));
        let app_state = state.clone();
        let server = actix_web::HttpServer::new(move || {
            let state = app_state.clone();
            actix_web::App::new().configure(move |cfg| configure(cfg, state))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .expect("bind");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);

        let account =
            Account::from_json(&service_account(&format!("http://127.0.0.1:{port}/token")))
                .expect("loads");
        let tokens = futures_util::future::join_all((0..8).map(|_| account.token())).await;
        let first = tokens[0].as_ref().expect("token").clone();
        assert!(first.expose().starts_with("ya29.mock-"));
        assert!(tokens.iter().all(|t| t.as_ref().ok() == Some(&first)));
        assert_eq!(
            token_requests(port).await,
            1,
            "concurrent callers share one fetch"
        );
        assert_eq!(account.token().await.expect("cached"), first);
        assert_eq!(token_requests(port).await, 1);

        // Past its refresh time, the token is replaced.
        *account.token.write().expect("lock") = Some((first.clone(), Instant::now()));
        let second = account.token().await.expect("refreshed");
        assert_ne!(second, first);
        assert_eq!(token_requests(port).await, 2);

        // gcloud user credentials use the refresh-token grant.
        let user = Account::from_json(
            &json!({"type": "authorized_user", "client_id": "cid.apps.googleusercontent.com",
                "client_secret": "csecret", "refresh_token": "1//refresh", "quota_project_id": "qp",
                "token_uri": format!("http://127.0.0.1:{port}/token")})
            .to_string(),
        )
        .expect("loads");
        assert_eq!(user.project_id.as_deref(), Some("qp"));
        assert!(user
            .token()
            .await
            .expect("user token")
            .expose()
            .starts_with("ya29.mock-"));
        assert_eq!(token_requests(port).await, 3);

        // A token endpoint that refuses is an authentication error naming the account.
        let refused = Account::from_json(&service_account(&format!(
            "http://127.0.0.1:{port}/no-token-here"
        )))
        .expect("loads");
        let e = refused.token().await.expect_err("refused");
        assert_eq!(e.error_type(), "authentication_error");
        assert!(e.to_string().contains("tollgate-test@proj.iam"), "{e}");
        handle.stop(false).await;
    }

    #[test]
    fn predictions_become_an_embedding_list() {
        let body = json!({"model": "v", "input": ["hello", "world"]});
        let req = LlmRequest::parse(CallKind::Embedding, body.to_string().as_bytes(), None)
            .expect("valid");
        let raw = br#"{"predictions": [
            {"embeddings": {"values": [0.1, 0.2], "statistics": {"token_count": 2, "truncated": false}}},
            {"embeddings": {"values": [0.3, 0.4], "statistics": {"token_count": 3, "truncated": false}}}],
            "metadata": {"billableCharacterCount": 10}}"#;
        let out = VERTEX
            .translate_response(&req, Bytes::from_static(raw))
            .expect("ok");
        let v: Value = serde_json::from_slice(&out.body).expect("json");
        assert_eq!(v["data"][1]["embedding"], json!([0.3, 0.4]));
        assert_eq!(v["usage"]["prompt_tokens"], 5);
        assert_eq!(out.usage.expect("usage").total_tokens, 5);
    }
}
