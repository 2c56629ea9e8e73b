//! A deployment: one `model_list` entry resolved into everything needed to call it (provider, base
//! URL, credential, timeouts, default parameters). Deployments are what the router actor supervises.

use std::borrow::Cow;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::config::{as_f64, truthy, ModelEntry};
use crate::error::GatewayError;
use crate::llm::{CallKind, LlmRequest};
use crate::providers::{self, ProviderSpec};
use crate::secret::{is_secret_key, Secret};

/// Where and how to call, for one request.
#[derive(Clone)]
pub struct Target {
    pub spec: &'static ProviderSpec,
    /// The model name the provider expects (no `provider/` prefix).
    pub model: String,
    /// The configured base URL without its query string and trailing `/`; adapters join their
    /// paths onto it and finish the URL with [`Target::url`].
    pub api_base: String,
    /// The query string of the configured base URL (`?api-key=…`), kept after the joined path.
    pub base_query: Option<String>,
    pub api_key: Option<Secret>,
}

impl Target {
    /// A URL built on `api_base`, with the base's own query string added (after any query the
    /// adapter put on it).
    pub fn url(&self, url: String) -> String {
        providers::urls::with_query(url, self.base_query.as_deref())
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("spec", &self.spec.name)
            .field("model", &self.model)
            .field("api_base", &crate::secret::display_url(&self.api_base))
            .field("api_key", &self.api_key)
            .finish()
    }
}

/// Overrides from the command line (`--model` quick start and friends).
#[derive(Debug, Clone, Default)]
pub struct CliDefaults {
    pub api_base: Option<String>,
    pub api_version: Option<String>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u64>,
    pub drop_params: bool,
    pub request_timeout: Option<Duration>,
    /// `router_settings.default_max_parallel_requests`.
    pub max_parallel_requests: Option<u64>,
}

pub struct Deployment {
    pub id: String,
    pub model_name: String,
    /// `litellm_params.model` as configured.
    pub litellm_model: String,
    /// Resolved once at load for ordinary deployments; `None` for `model: "*"`, which resolves the
    /// provider from each request's model name.
    target: Option<Target>,
    /// Why this deployment cannot be called (an unset environment variable, an unknown provider…).
    pub problem: Option<String>,
    pub api_version: Option<String>,
    pub organization: Option<String>,
    pub extra_headers: Vec<(String, String)>,
    /// OpenAI parameters from `litellm_params` used when the request does not set them.
    pub defaults: Map<String, Value>,
    pub drop_params: Option<bool>,
    pub additional_drop_params: Vec<String>,
    pub timeout: Option<Duration>,
    pub stream_timeout: Option<Duration>,
    pub weight: Option<f64>,
    /// Requests / tokens per minute this deployment may take (`rpm`, `tpm`).
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    /// `order`: 1 is tried first; higher orders only when every lower one is unavailable.
    pub order: Option<u32>,
    /// `num_retries` for calls routed to this deployment.
    pub num_retries: Option<u32>,
    /// Input + output price per token (custom `litellm_params` prices, else the price table).
    pub cost_per_token: Option<f64>,
    /// Context window (`model_info.max_input_tokens`, else the price table).
    pub max_input_tokens: Option<u64>,
    /// What a call costs; `None` when neither the config nor the bundled table prices the model
    /// (wildcard deployments are priced per requested model, see [`Deployment::prices_for`]).
    pub prices: Option<crate::pricing::Prices>,
    /// `litellm_params` price overrides, for wildcard deployments priced per request.
    custom_prices: Map<String, Value>,
    pub mock_response: Option<Value>,
    pub model_info: Map<String, Value>,
    /// `litellm_params` as shown by `/model/info` and `/health`: secret-named fields left out, and
    /// the rest shown by [`crate::secret::redact_json`] (URLs without userinfo or query values,
    /// header values masked). Never a source of settings: read [`Deployment::provider_params`].
    pub public_params: Map<String, Value>,
    /// The base URL as shown everywhere (`x-litellm-model-api-base`, `/health`, `/metrics`, spend
    /// logs): [`crate::secret::display_url`] of the base actually called.
    display_base: Option<String>,
    /// Every `litellm_params` entry, secrets included, for the native adapters' own settings
    /// (`aws_region_name`, `vertex_project`, `vertex_credentials`…). Debug output shows keys only.
    pub provider_params: ProviderParams,
    /// `litellm_params.ssl_verify`: this deployment's own certificate check, when it has one.
    pub trust: Option<crate::outbound::Trust>,
    /// `litellm_params.max_parallel_requests` (else `router_settings.default_max_parallel_requests`):
    /// slots for calls in flight on this deployment; a call waits for one.
    pub parallel: Option<ParallelLimit>,
    /// `litellm_params.mock_timeout: true`: every call waits its timeout, then fails as a timeout.
    pub mock_timeout: bool,
    /// The deployment's region for region routing (`eu`, `us`, or another region's own name):
    /// `region_name`, else the provider's region (see [`crate::region`]); `None` when unknown.
    pub region: Option<String>,
}

/// A deployment's `max_parallel_requests`: calls in flight at once, on this instance.
#[derive(Clone)]
pub struct ParallelLimit {
    pub limit: u64,
    pub slots: std::sync::Arc<tokio::sync::Semaphore>,
}

impl ParallelLimit {
    fn new(limit: u64) -> Self {
        let permits = limit.clamp(1, tokio::sync::Semaphore::MAX_PERMITS as u64) as usize;
        Self {
            limit,
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(permits)),
        }
    }
}

/// Shows what `/model/info` shows: header values, URL credentials and keys never appear.
impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment")
            .field("id", &self.id)
            .field("model_name", &self.model_name)
            .field("litellm_model", &self.litellm_model)
            .field("target", &self.target)
            .field("problem", &self.problem)
            .field("public_params", &self.public_params)
            .field("provider_params", &self.provider_params)
            .finish_non_exhaustive()
    }
}

/// A deployment's `litellm_params`, as configured (environment references resolved). Never logged:
/// its `Debug` lists the keys without values.
#[derive(Clone, Default)]
pub struct ProviderParams(Map<String, Value>);

impl ProviderParams {
    pub fn new(params: Map<String, Value>) -> Self {
        Self(params)
    }

    /// A string (or number, as text) parameter; empty strings count as unset.
    pub fn str(&self, key: &str) -> Option<String> {
        string_param(&self.0, key)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }
}

impl std::fmt::Debug for ProviderParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// OpenAI request parameters a deployment may set as defaults.
pub(crate) const DEFAULTABLE_PARAMS: &[&str] = &[
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "seed",
    "response_format",
    "tool_choice",
    "parallel_tool_calls",
    "user",
    "reasoning_effort",
    "service_tier",
    "logprobs",
    "top_logprobs",
    "modalities",
    "dimensions",
    "encoding_format",
    "top_k",
    "repetition_penalty",
    "min_p",
    "extra_body",
];

fn string_param(params: &Map<String, Value>, key: &str) -> Option<String> {
    params
        .get(key)
        .and_then(|v| match v {
            Value::String(s) => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .filter(|s| !s.is_empty())
}

fn first_env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

/// LiteLLM's deployment id: sha256 of the model name and every `litellm_params` key and value.
fn deployment_id(entry: &ModelEntry) -> String {
    if let Some(id) = string_param(&entry.model_info, "id") {
        return id;
    }
    let mut hasher = Sha256::new();
    hasher.update(entry.model_name.as_bytes());
    for (k, v) in &entry.litellm_params {
        hasher.update(k.as_bytes());
        match v {
            Value::String(s) => hasher.update(s.as_bytes()),
            other => hasher.update(other.to_string().as_bytes()),
        }
    }
    hex::encode(hasher.finalize())
}

/// Split `provider/model` when the prefix is a known provider; otherwise resolve a bare model name
/// through the bundled model table, as LiteLLM does (`gpt-4o` → openai), and any bare `claude-…`
/// name to Anthropic even when the table lacks it.
pub fn resolve_provider(
    model: &str,
    custom_provider: Option<&str>,
    has_api_base: bool,
) -> Result<(&'static ProviderSpec, String), String> {
    if let Some(name) = custom_provider {
        let spec = providers::by_name(name)
            .ok_or_else(|| format!("unknown custom_llm_provider '{name}'"))?;
        let bare = model.strip_prefix(&format!("{name}/")).unwrap_or(model);
        return Ok((spec, bare.to_string()));
    }
    if let Some((prefix, rest)) = model.split_once('/') {
        if let Some(spec) = providers::by_name(prefix) {
            return Ok((spec, rest.to_string()));
        }
    }
    if let Some(provider) = crate::pricing::provider_of(model) {
        let name = if provider.starts_with("vertex_ai") {
            "vertex_ai"
        } else {
            provider
        };
        if let Some(spec) = providers::by_name(name) {
            return Ok((spec, model.to_string()));
        }
    }
    // Every Claude model is Anthropic's, including names the price table does not list yet
    // (`claude-2`, `claude-instant-1`, dated releases newer than the table).
    if model.starts_with("claude-") || model == "claude" {
        if let Some(spec) = providers::by_name("anthropic") {
            return Ok((spec, model.to_string()));
        }
    }
    if has_api_base {
        // An unprefixed model with its own api_base: an OpenAI-compatible server.
        if let Some(spec) = providers::by_name("openai") {
            return Ok((spec, model.to_string()));
        }
    }
    Err(format!(
        "cannot tell which provider serves model '{model}': prefix it with a provider (for example 'openai/{model}') or set custom_llm_provider"
    ))
}

/// Refuse a model name chosen by the client (wildcard deployments) that could steer the upstream
/// URL: path syntax (`..`, `?`, `#`, `%`, `\`), control characters, and `/` for providers that
/// put the model into the URL path and never use `/` in names (Azure deployments, Gemini, Vertex
/// AI). Whatever passes is still percent-encoded by the adapters.
fn check_client_model(spec: &ProviderSpec, model: &str) -> Result<(), GatewayError> {
    let slash_free = matches!(
        spec.wire,
        providers::Wire::Azure | providers::Wire::Gemini | providers::Wire::VertexAi
    );
    let problem = if model.is_empty() {
        Some("is empty".to_string())
    } else if model.chars().any(char::is_control) {
        Some("contains a control character".to_string())
    } else if model.contains("..") {
        Some("contains '..'".to_string())
    } else if let Some(c) = model.chars().find(|c| matches!(c, '?' | '#' | '%' | '\\')) {
        Some(format!("contains '{c}'"))
    } else if slash_free && model.contains('/') {
        Some("contains '/' (not part of this provider's model names)".to_string())
    } else {
        None
    };
    match problem {
        Some(p) => Err(GatewayError::bad_param(
            "model",
            format!("Invalid model name: '{}' {p}", model.escape_default()),
        )),
        None => Ok(()),
    }
}

/// `mock_response` deployments never call a provider; they need no price.
fn mock_model(params: &Map<String, Value>) -> Option<&Value> {
    params.get("mock_response").filter(|v| !v.is_null())
}

impl Deployment {
    pub fn from_entry(entry: &ModelEntry, cli: &CliDefaults) -> Self {
        let params = &entry.litellm_params;
        let litellm_model = string_param(params, "model").unwrap_or_default();
        let mut problems: Vec<String> = entry
            .unresolved
            .iter()
            .map(|(path, var)| format!("environment variable {var} ({path}) is not set"))
            .collect();

        let configured_base = string_param(params, "api_base")
            .or_else(|| string_param(params, "base_url"))
            .or_else(|| cli.api_base.clone());
        let configured_key = string_param(params, "api_key").map(Secret::new);

        let target = if litellm_model == "*" {
            None
        } else {
            match resolve_provider(
                &litellm_model,
                string_param(params, "custom_llm_provider").as_deref(),
                configured_base.is_some(),
            ) {
                Ok((spec, model)) => match Self::make_target(
                    spec,
                    model,
                    configured_base.clone(),
                    configured_key.clone(),
                ) {
                    Ok(t) => Some(t),
                    Err(p) => {
                        problems.push(p);
                        None
                    }
                },
                Err(p) => {
                    problems.push(p);
                    None
                }
            }
        };

        let mut defaults = Map::new();
        for key in DEFAULTABLE_PARAMS {
            if let Some(v) = params.get(*key).filter(|v| !v.is_null()) {
                defaults.insert((*key).to_string(), v.clone());
            }
        }
        if let Some(t) = cli.temperature {
            defaults.entry("temperature").or_insert(json!(t));
        }
        if let Some(m) = cli.max_tokens {
            defaults.entry("max_tokens").or_insert(json!(m));
        }
        // Keys that do not act are warned about when the config is read (`crate::config_keys`).

        let extra_headers = params
            .get("extra_headers")
            .or_else(|| params.get("headers"))
            .and_then(Value::as_object)
            .map(|h| {
                h.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();

        let secs = |key: &str| {
            params
                .get(key)
                .and_then(as_f64)
                .filter(|s| *s > 0.0)
                .map(crate::config::config_seconds)
        };
        let weight = params
            .get("weight")
            .or_else(|| params.get("rpm"))
            .or_else(|| params.get("tpm"))
            .and_then(as_f64);

        let count = |key: &str| {
            params
                .get(key)
                .and_then(as_f64)
                .filter(|n| *n >= 0.0)
                .map(|n| n as u64)
        };
        let price_entry = target.as_ref().and_then(|t| {
            let base_model = entry.model_info.get("base_model").and_then(Value::as_str);
            crate::pricing::lookup(Some(t.spec.name), base_model.unwrap_or(&t.model))
        });
        let custom_cost = match (
            params.get("input_cost_per_token").and_then(as_f64),
            params.get("output_cost_per_token").and_then(as_f64),
        ) {
            (None, None) => None,
            (i, o) => Some(i.unwrap_or(0.0) + o.unwrap_or(0.0)),
        };
        let cost_per_token = custom_cost.or_else(|| {
            price_entry.and_then(
                |p| match (p.input_cost_per_token, p.output_cost_per_token) {
                    (None, None) => None,
                    (i, o) => Some(i.unwrap_or(0.0) + o.unwrap_or(0.0)),
                },
            )
        });
        let max_input_tokens = entry
            .model_info
            .get("max_input_tokens")
            .or_else(|| entry.model_info.get("max_tokens"))
            .and_then(as_f64)
            .map(|n| n as u64)
            .or_else(|| price_entry.and_then(|p| p.max_input_tokens.or(p.max_tokens)));

        let prices = crate::pricing::Prices::resolve(price_entry, params);
        if prices.is_none() && target.is_some() && mock_model(params).is_none() {
            tracing::warn!(
                model_name = entry.model_name,
                model = litellm_model,
                "no price known for this model (not in the bundled table, no input_cost_per_token): its calls cost 0"
            );
        }
        let custom_prices = params
            .iter()
            .filter(|(k, _)| k.contains("cost_per") || k.as_str() == "cache_read_input_token_cost")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();

        let public_params = params
            .iter()
            .filter(|(k, _)| {
                !is_secret_key(k) && !k.starts_with("aws_") && !k.starts_with("vertex_credentials")
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Map<String, Value>>();
        let public_params = match crate::secret::redact_json(&Value::Object(public_params)) {
            Value::Object(m) => m,
            _ => Map::new(),
        };

        let trust = match params
            .get("ssl_verify")
            .map(crate::outbound::Trust::from_ssl_verify)
        {
            Some(Ok(t)) => t,
            Some(Err(e)) => {
                problems.push(e);
                None
            }
            None => None,
        };

        let parallel = count("max_parallel_requests")
            .filter(|n| *n >= 1)
            .or(cli.max_parallel_requests)
            .map(ParallelLimit::new);
        let mut deployment = Self {
            parallel,
            mock_timeout: params.get("mock_timeout").is_some_and(truthy),
            trust,
            id: deployment_id(entry),
            model_name: entry.model_name.clone(),
            litellm_model,
            target,
            problem: (!problems.is_empty()).then(|| problems.join("; ")),
            api_version: string_param(params, "api_version")
                .or_else(|| cli.api_version.clone())
                .or_else(|| std::env::var("AZURE_API_VERSION").ok()),
            organization: string_param(params, "organization"),
            extra_headers,
            defaults,
            drop_params: params
                .get("drop_params")
                .map(truthy)
                .or(cli.drop_params.then_some(true)),
            additional_drop_params: params
                .get("additional_drop_params")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            timeout: secs("timeout").or(cli.request_timeout),
            stream_timeout: secs("stream_timeout"),
            weight,
            rpm: count("rpm"),
            tpm: count("tpm"),
            order: count("order").map(|n| n.min(u32::MAX as u64) as u32),
            num_retries: count("num_retries")
                .or_else(|| count("max_retries"))
                .map(|n| n.min(100) as u32),
            cost_per_token,
            max_input_tokens,
            prices,
            custom_prices,
            mock_response: params
                .get("mock_response")
                .cloned()
                .filter(|v| !v.is_null()),
            model_info: entry.model_info.clone(),
            public_params,
            display_base: None,
            provider_params: ProviderParams::new(params.clone()),
            region: None,
        };
        deployment.region = deployment.resolve_region();
        // Endpoints that depend on other parameters (Bedrock's region, Vertex AI's location) are resolved once, so
        // `/health` and `x-litellm-model-api-base` show the URL actually called.
        let resolved = deployment.target.as_ref().and_then(|t| match t.spec.wire {
            providers::Wire::Bedrock => Some(providers::bedrock::endpoint(&deployment, t)),
            providers::Wire::SageMaker => Some(providers::sagemaker::endpoint(&deployment, t)),
            providers::Wire::VertexAi => {
                Some(providers::vertex::resolved_base(&deployment, &t.api_base))
            }
            _ => None,
        });
        if let (Some(base), Some(t)) = (resolved, deployment.target.as_mut()) {
            t.api_base = base;
        }
        deployment.display_base = deployment
            .target
            .as_ref()
            .map(|t| crate::secret::display_url(&t.url(t.api_base.clone())));
        deployment
    }

    /// `litellm_params.region_name`, else the region the provider is called in: Bedrock's AWS
    /// region, Vertex AI's location.
    fn resolve_region(&self) -> Option<String> {
        if let Some(name) = self.provider_params.str("region_name") {
            return crate::region::normalize(&name);
        }
        let provider = match self.target.as_ref().map(|t| t.spec.wire)? {
            providers::Wire::Bedrock | providers::Wire::SageMaker => {
                providers::bedrock::region(self)
            }
            providers::Wire::VertexAi => providers::vertex::location(self),
            _ => return None,
        };
        crate::region::normalize(&provider)
    }

    fn make_target(
        spec: &'static ProviderSpec,
        model: String,
        configured_base: Option<String>,
        configured_key: Option<Secret>,
    ) -> Result<Target, String> {
        if spec.wire == providers::Wire::Retired {
            // Nothing to reach: every call is refused with what replaces the provider
            // (`providers::retired`), with the deployment's own name in the error.
            return Ok(Target {
                spec,
                model,
                api_base: String::new(),
                base_query: None,
                api_key: configured_key,
            });
        }
        if providers::adapter_for(spec.wire).is_none() {
            return Err(format!(
                "provider '{}' needs its native adapter, which this Tollgate version does not include yet",
                spec.name
            ));
        }
        let api_base = configured_base
            .or_else(|| first_env(spec.api_base_env))
            .or_else(|| spec.default_api_base.map(str::to_string))
            .ok_or_else(|| {
                let envs = spec.api_base_env.join(" or ");
                format!(
                    "provider '{}' needs an api_base: set litellm_params.api_base{}",
                    spec.name,
                    if envs.is_empty() {
                        String::new()
                    } else {
                        format!(" or {envs}")
                    }
                )
            })?;
        let api_key = configured_key.or_else(|| first_env(spec.api_key_env).map(Secret::new));
        let (api_base, base_query) = providers::urls::split_query(&api_base);
        Ok(Target {
            spec,
            model,
            api_base: api_base.to_string(),
            base_query: base_query.map(str::to_string),
            api_key,
        })
    }

    /// Whether `litellm_params.model` is a pattern (`openai/*`, `*`).
    /// The prices for a call of `requested` (a wildcard deployment looks the requested model up).
    pub fn prices_for(&self, target: &Target) -> Option<crate::pricing::Prices> {
        if self.prices.is_some() || !self.is_wildcard() {
            return self.prices.clone();
        }
        crate::pricing::Prices::resolve(
            crate::pricing::lookup(Some(target.spec.name), &target.model),
            &self.custom_prices,
        )
    }

    /// The cost of an image call on this deployment (`model_info.base_model`, else the provider's
    /// model, priced by [`crate::pricing::image_cost`] with this deployment's own prices first).
    pub fn image_cost(&self, target: &Target, bill: &crate::pricing::ImageBill<'_>) -> f64 {
        let base_model = self.model_info.get("base_model").and_then(Value::as_str);
        crate::pricing::image_cost(
            target.spec.name,
            base_model.unwrap_or(&target.model),
            &self.custom_prices,
            bill,
        )
    }

    /// Why calls to this deployment are refused, when its provider or model is retired.
    pub fn retired(&self) -> Option<&'static str> {
        let t = self.target.as_ref()?;
        providers::retired(t.spec, &t.model)
    }

    /// The cost of a call priced per unit (audio seconds, characters, search units) on this
    /// deployment: `model_info.base_model`, else the provider's model, in the table, this
    /// deployment's own prices first ([`crate::pricing::unit_cost`]).
    pub fn unit_cost(&self, target: &Target, units: crate::pricing::Units) -> f64 {
        let base_model = self.model_info.get("base_model").and_then(Value::as_str);
        let entry =
            crate::pricing::lookup(Some(target.spec.name), base_model.unwrap_or(&target.model));
        crate::pricing::unit_cost(entry, &self.custom_prices, units)
    }

    pub fn is_wildcard(&self) -> bool {
        self.litellm_model.ends_with('*')
    }

    /// Where to send a request for `requested` (the client's model name). For wildcard deployments
    /// the requested model is substituted into the pattern.
    pub fn target_for(&self, requested: &str) -> Result<Cow<'_, Target>, GatewayError> {
        if let Some(problem) = &self.problem {
            return Err(GatewayError::DeploymentMisconfigured {
                message: format!(
                    "Deployment of model '{}' cannot be called: {problem}",
                    self.model_name
                ),
            });
        }
        match &self.target {
            Some(t) if !self.is_wildcard() => Ok(Cow::Borrowed(t)),
            Some(t) => {
                let prefix = format!("{}/", t.spec.name);
                let model = requested.strip_prefix(&prefix).unwrap_or(requested);
                check_client_model(t.spec, model)?;
                Ok(Cow::Owned(Target {
                    model: model.to_string(),
                    ..t.clone()
                }))
            }
            None => {
                let base = self
                    .provider_params
                    .str("api_base")
                    .or_else(|| self.provider_params.str("base_url"));
                let (spec, model) = resolve_provider(requested, None, false)
                    .map_err(|message| GatewayError::DeploymentMisconfigured { message })?;
                check_client_model(spec, &model)?;
                let key = None;
                Self::make_target(spec, model, base, key)
                    .map(Cow::Owned)
                    .map_err(|message| GatewayError::DeploymentMisconfigured { message })
            }
        }
    }

    /// The resolved provider and model (`None` for `model: "*"`).
    pub fn target(&self) -> Option<&Target> {
        self.target.as_ref()
    }

    /// The bundled model table's entry for this deployment's model (or `model_info.base_model`).
    pub fn price_entry(&self) -> Option<&'static crate::pricing::ModelPrice> {
        let t = self.target.as_ref()?;
        string_param(&self.model_info, "base_model")
            .and_then(|base| crate::pricing::lookup(Some(t.spec.name), &base))
            .or_else(|| crate::pricing::lookup(Some(t.spec.name), &t.model))
    }

    /// The OpenAI parameters this deployment's provider accepts for its mode.
    pub fn supported_openai_params(&self) -> Vec<&'static str> {
        self.target.as_ref().map_or_else(Vec::new, |t| {
            crate::providers::supported_openai_params(t.spec, self.mode())
        })
    }

    /// Provider name for display (`openai`, `azure`…).
    pub fn provider_name(&self) -> &str {
        self.target
            .as_ref()
            .map(|t| t.spec.name)
            .or_else(|| self.litellm_model.split_once('/').map(|(p, _)| p))
            .unwrap_or("unknown")
    }

    /// The base URL as it may be shown (`x-litellm-model-api-base`, `/health`, `/metrics`, spend
    /// logs): no userinfo, query values masked (see [`crate::secret::display_url`]).
    pub fn api_base(&self) -> Option<&str> {
        self.display_base.as_deref()
    }

    /// `model_info.mode`, else the model table's mode, else chat.
    pub fn mode(&self) -> CallKind {
        let mode = string_param(&self.model_info, "mode").or_else(|| {
            self.target.as_ref().and_then(|t| {
                crate::pricing::lookup(Some(t.spec.name), &t.model).and_then(|p| p.mode.clone())
            })
        });
        match mode.as_deref() {
            Some("embedding") => CallKind::Embedding,
            Some("completion") => CallKind::Completion,
            Some("image_generation") => CallKind::ImageGeneration,
            Some("moderation") => CallKind::Moderation,
            Some("audio_transcription") => CallKind::Transcription,
            Some("audio_speech") => CallKind::Speech,
            Some("rerank") => CallKind::Rerank,
            _ => CallKind::Chat,
        }
    }

    /// A `model_list` entry as `/model/info` shows it (secrets stripped).
    pub fn info(&self) -> Value {
        let mut model_info = self.model_info.clone();
        model_info.insert("id".into(), json!(self.id));
        model_info.entry("db_model").or_insert(json!(false));
        if let Some(region) = &self.region {
            model_info.insert("region".into(), json!(region));
        }
        if let Some(t) = &self.target {
            model_info
                .entry("litellm_provider")
                .or_insert(json!(t.spec.name));
            if let Some(p) = crate::pricing::lookup(Some(t.spec.name), &t.model) {
                let fields = [
                    ("max_input_tokens", p.max_input_tokens.map(|v| json!(v))),
                    ("max_output_tokens", p.max_output_tokens.map(|v| json!(v))),
                    ("max_tokens", p.max_tokens.map(|v| json!(v))),
                    (
                        "input_cost_per_token",
                        p.input_cost_per_token.map(|v| json!(v)),
                    ),
                    (
                        "output_cost_per_token",
                        p.output_cost_per_token.map(|v| json!(v)),
                    ),
                    ("mode", p.mode.as_ref().map(|v| json!(v))),
                    (
                        "supports_function_calling",
                        p.supports_function_calling.map(|v| json!(v)),
                    ),
                    ("supports_vision", p.supports_vision.map(|v| json!(v))),
                ];
                for (k, v) in fields {
                    if let Some(v) = v {
                        model_info.entry(k).or_insert(v);
                    }
                }
            }
        }
        json!({
            "model_name": self.model_name,
            "litellm_params": self.public_params,
            "model_info": model_info,
        })
    }

    /// The request body for a health probe: the smallest real call for the deployment's mode.
    fn probe_request(&self) -> Result<(LlmRequest, String), String> {
        let model = if self.is_wildcard() {
            string_param(&self.model_info, "health_check_model").ok_or_else(|| {
                "wildcard deployment: set model_info.health_check_model to probe it".to_string()
            })?
        } else {
            self.model_name.clone()
        };
        let kind = self.mode();
        let body = match kind {
            // `mode` never names the Responses API: a chat probe.
            CallKind::Chat | CallKind::Responses => {
                json!({"model": model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1})
            }
            CallKind::Completion => json!({"model": model, "prompt": "ping", "max_tokens": 1}),
            CallKind::Embedding | CallKind::Moderation => {
                json!({"model": model, "input": "health check"})
            }
            // As LiteLLM's health check: one image from a short prompt.
            CallKind::ImageGeneration | CallKind::ImageEdit => {
                json!({"model": model, "prompt": "health check", "n": 1})
            }
            // A tenth of a second of silence to transcribe; a short text to speak.
            CallKind::Transcription | CallKind::Translation => json!({"model": model}),
            CallKind::Speech => json!({"model": model, "input": "health check", "voice": "alloy"}),
            CallKind::Rerank => {
                json!({"model": model, "query": "health check", "documents": ["health check"]})
            }
        };
        let mut req = LlmRequest::parse(kind, body.to_string().as_bytes(), None)
            .map_err(|e| e.to_string())?;
        if kind.is_audio_input() {
            req.uploads.push(crate::llm::Upload {
                field: "file".into(),
                filename: Some("health_check.wav".into()),
                content_type: Some("audio/wav".into()),
                data: crate::audio::silence_wav(0.1).into(),
            });
        }
        Ok((req, model))
    }
}

impl tollgate_actors::Upstream for Deployment {
    fn id(&self) -> &str {
        &self.id
    }

    fn model_group(&self) -> &str {
        &self.model_name
    }

    fn weight(&self) -> Option<f64> {
        self.weight
    }

    fn rpm(&self) -> Option<u64> {
        self.rpm
    }

    fn tpm(&self) -> Option<u64> {
        self.tpm
    }

    fn order(&self) -> Option<u32> {
        self.order
    }

    fn cost_per_token(&self) -> Option<f64> {
        self.cost_per_token
    }

    fn max_input_tokens(&self) -> Option<u64> {
        self.max_input_tokens
    }

    fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    fn probe(self: std::sync::Arc<Self>) -> LocalBoxFuture<'static, Result<(), String>> {
        let timeout = string_param(&self.model_info, "health_check_timeout")
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| *s > 0.0)
            .map(crate::config::config_seconds)
            .unwrap_or(Duration::from_secs(60));
        Box::pin(async move {
            let (req, model) = self.probe_request()?;
            let target = self.target_for(&model).map_err(|e| e.to_string())?;
            if let Some(reason) = providers::retired(target.spec, &target.model) {
                return Err(reason.to_string());
            }
            let adapter = providers::adapter_for(target.spec.wire)
                .ok_or_else(|| format!("no adapter for provider '{}'", target.spec.name))?;
            let prepared = adapter
                .prepare(&self, &target, &req)
                .map_err(|e| e.to_string())?;
            // Signed or token-authenticated providers need their credentials on probes too.
            let prepared = adapter
                .authorize(&self, &target, prepared)
                .await
                .map_err(|e| e.to_string())?;
            crate::upstream::probe(
                prepared,
                timeout,
                target.api_key.as_ref(),
                self.trust.as_ref(),
            )
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProxyConfig;
    use actix_web::ResponseError;

    fn deployments(yaml: &str) -> Vec<Deployment> {
        let cfg = ProxyConfig::parse(yaml, "t").expect("valid");
        cfg.model_list
            .iter()
            .map(|e| Deployment::from_entry(e, &CliDefaults::default()))
            .collect()
    }

    /// Every bare Claude name the LiteLLM docs use (as models and as model groups), whether or
    /// not the bundled price table lists it, resolves to Anthropic.
    #[test]
    fn bare_claude_names_resolve_to_anthropic() {
        for name in [
            "claude-2",
            "claude-2.1",
            "claude-3",
            "claude-instant-1",
            "claude-3-haiku-20240307",
            "claude-3-opus-20240229",
            "claude-3-5-haiku-20241022",
            "claude-sonnet-4-20250514",
            "claude-haiku",
            "claude-sonnet",
            "claude-opus-9-20991231",
        ] {
            for has_base in [false, true] {
                let (spec, model) = resolve_provider(name, None, has_base).expect(name);
                assert_eq!(spec.name, "anthropic", "{name}");
                assert_eq!(model, name);
            }
        }
        // Other providers' Claude names keep their provider.
        let (spec, _) = resolve_provider("bedrock/anthropic.claude-v2", None, false).unwrap();
        assert_eq!(spec.name, "bedrock");
        let (spec, _) = resolve_provider("claudette", None, true).unwrap();
        assert_eq!(spec.name, "openai");
    }

    #[test]
    fn resolves_prefixes_bare_names_and_defaults() {
        let ds = deployments(
            r#"
model_list:
  - model_name: a
    litellm_params: {model: openai/gpt-4o, api_key: sk-a}
  - model_name: b
    litellm_params: {model: gpt-4o-mini, api_key: sk-b}
  - model_name: c
    litellm_params: {model: groq/llama3-8b-8192, api_key: gk}
  - model_name: d
    litellm_params: {model: hosted_vllm/facebook/opt-125m}
  - model_name: e
    litellm_params: {model: my-local-model, api_base: "http://127.0.0.1:8000/v1/"}
"#,
        );
        let t = |i: usize| ds[i].target_for("x").map(|t| t.into_owned());
        let a = t(0).expect("a");
        assert_eq!(
            (a.spec.name, a.model.as_str(), a.api_base.as_str()),
            ("openai", "gpt-4o", "https://api.openai.com/v1")
        );
        assert_eq!(t(1).expect("b").spec.name, "openai");
        assert_eq!(t(2).expect("c").api_base, "https://api.groq.com/openai/v1");
        let d = t(3).expect_err("vllm needs a base");
        assert!(d.to_string().contains("HOSTED_VLLM_API_BASE"), "{d}");
        let e = t(4).expect("e");
        assert_eq!(
            (e.spec.name, e.api_base.as_str()),
            ("openai", "http://127.0.0.1:8000/v1")
        );
    }

    #[test]
    fn unresolved_env_marks_the_deployment_not_the_process() {
        let ds = deployments(
            "model_list:\n  - model_name: a\n    litellm_params: {model: azure/dep, api_base: 'https://x', api_key: os.environ/TOLLGATE_TEST_NOPE_KEY}\n",
        );
        let err = ds[0].target_for("a").expect_err("misconfigured");
        let msg = err.to_string();
        assert!(
            msg.contains("TOLLGATE_TEST_NOPE_KEY") && msg.contains("'a'"),
            "{msg}"
        );
    }

    #[test]
    fn wildcard_substitutes_requested_model() {
        let ds = deployments(
            "model_list:\n  - model_name: 'openai/*'\n    litellm_params: {model: 'openai/*', api_key: k}\n",
        );
        let t = ds[0].target_for("openai/gpt-4.1").expect("target");
        assert_eq!(t.model, "gpt-4.1");
    }

    #[test]
    fn ids_are_stable_and_secrets_are_not_public() {
        let yaml = "model_list:\n  - model_name: a\n    litellm_params: {model: openai/gpt-4o, api_key: sk-secret-123456, rpm: 10}\n";
        let (a, b) = (deployments(yaml), deployments(yaml));
        assert_eq!(a[0].id, b[0].id);
        assert_eq!(a[0].id.len(), 64);
        assert!(!a[0].public_params.contains_key("api_key"));
        assert!(!a[0].info().to_string().contains("sk-secret"));
        assert_eq!(a[0].weight, Some(10.0));
    }

    #[test]
    fn base_query_is_kept_for_calls_and_masked_when_shown() {
        let ds = deployments(
            "model_list:\n  - model_name: a\n    litellm_params: {model: openai/gpt-4o, api_key: sk-key-0123456789, api_base: 'https://u:pw-secret-1@h/v1/?key=qs-secret-2&v=1', extra_headers: {X-My-Token: hdr-secret-3}}\n",
        );
        let t = ds[0].target_for("a").expect("target");
        assert_eq!(t.api_base, "https://u:pw-secret-1@h/v1");
        assert_eq!(t.base_query.as_deref(), Some("key=qs-secret-2&v=1"));
        assert_eq!(
            t.url(format!("{}/chat/completions", t.api_base)),
            "https://u:pw-secret-1@h/v1/chat/completions?key=qs-secret-2&v=1"
        );
        assert_eq!(ds[0].api_base(), Some("https://h/v1?key=****&v=****"));
        let info = ds[0].info().to_string();
        let debug = format!("{t:?} {:?}", ds[0]);
        for secret in ["pw-secret-1", "qs-secret-2", "hdr-secret-3", "0123456789"] {
            assert!(!info.contains(secret), "{secret} in {info}");
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert_eq!(
            ds[0].info()["litellm_params"]["extra_headers"]["X-My-Token"],
            "hdr...et-3"
        );
    }

    #[test]
    fn client_model_names_with_path_syntax_are_refused() {
        let ds = deployments(
            "model_list:\n  - model_name: 'azure/*'\n    litellm_params: {model: 'azure/*', api_base: 'https://r', api_key: k}\n  - model_name: 'openai/*'\n    litellm_params: {model: 'openai/*', api_key: k}\n  - model_name: '*'\n    litellm_params: {model: '*', api_base: 'http://h'}\n",
        );
        let refused = |i: usize, model: &str| {
            let err = ds[i].target_for(model).expect_err(model);
            assert_eq!(err.status_code().as_u16(), 400, "{model}");
            assert_eq!(err.param(), Some("model"), "{model}");
        };
        for model in [
            "azure/x/embeddings?api-version=evil&x=#",
            "azure/x/y",
            "azure/..",
            "azure/a%2Fb",
            "azure/a\\b",
            "azure/a\nb",
            "azure/",
        ] {
            refused(0, model);
        }
        for model in ["openai/../x", "openai/x?y", "openai/x#y", "openai/x%00"] {
            refused(1, model);
        }
        for model in ["gemini/a/b", "vertex_ai/a/b", "azure/a?b", "ollama/a#b"] {
            refused(2, model);
        }
        // '/' is part of model names where the name goes in the body or is encoded as one segment.
        assert_eq!(
            ds[1].target_for("openai/org/model.v1:2").expect("ok").model,
            "org/model.v1:2"
        );
        assert_eq!(ds[0].target_for("azure/x&y=1").expect("ok").model, "x&y=1");
        assert!(ds[2].target_for("ollama/library/llama3:8b").is_ok());
    }

    #[test]
    fn a_deployment_region_is_region_name_else_the_provider_region() {
        let ds = deployments(
            r#"
model_list:
  - model_name: explicit
    litellm_params: {model: openai/gpt-4o, api_key: sk-a, region_name: eu}
  - model_name: explicit-provider-region
    litellm_params: {model: azure/gpt-4o, api_base: "https://x.openai.azure.com", api_key: k, region_name: swedencentral}
  - model_name: bedrock
    litellm_params: {model: bedrock/anthropic.claude-3-haiku-20240307-v1:0, aws_region_name: eu-west-3, aws_access_key_id: AKIDEXAMPLE, aws_secret_access_key: s}
  - model_name: bedrock-named
    litellm_params: {model: bedrock/anthropic.claude-3-haiku-20240307-v1:0, aws_region_name: eu-west-3, region_name: us, aws_access_key_id: AKIDEXAMPLE, aws_secret_access_key: s}
  - model_name: vertex
    litellm_params: {model: vertex_ai/gemini-2.5-flash, vertex_project: p, vertex_location: europe-west4}
  - model_name: vertex-us
    litellm_params: {model: vertex_ai/gemini-2.5-flash, vertex_project: p, vertex_location: us-east4}
  - model_name: tokyo
    litellm_params: {model: bedrock/anthropic.claude-3-haiku-20240307-v1:0, aws_region_name: ap-northeast-1, aws_access_key_id: AKIDEXAMPLE, aws_secret_access_key: s}
  - model_name: unknown
    litellm_params: {model: openai/gpt-4o, api_key: sk-a}
  - model_name: any
    litellm_params: {model: "*", region_name: US}
"#,
        );
        let regions: Vec<Option<&str>> = ds.iter().map(|d| d.region.as_deref()).collect();
        assert_eq!(
            regions,
            [
                Some("eu"),
                Some("eu"),
                Some("eu"),
                Some("us"),
                Some("eu"),
                Some("us"),
                Some("ap-northeast-1"),
                None,
                Some("us"),
            ]
        );
        // `/model/info` shows it; `region_name` stays as configured.
        let info = ds[2].info();
        assert_eq!(info["model_info"]["region"], "eu");
        let info = ds[1].info();
        assert_eq!(info["litellm_params"]["region_name"], "swedencentral");
        assert_eq!(info["model_info"]["region"], "eu");
        assert!(ds[7].info()["model_info"].get("region").is_none());
    }
}
