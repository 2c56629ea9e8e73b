//! Every config key Tollgate knows, in one place: for each section of LiteLLM's `config.yaml`, each
//! key either **acts** (and what it does) or is a **no-op** (accepted, with the reason it does
//! nothing). A key that is not listed is **unknown**. The start-up warnings come from this table
//! ([`check`]), `tollgate config-keys --markdown` prints it, and the generated section of
//! `docs/CONFIG.md` is checked against it by a test (`tests/config_keys.rs`).
//!
//! Adding a setting: read it where it acts, then list it here as [`Status::Acts`]; the test that
//! compares `docs/CONFIG.md` prints the command that regenerates the docs.

use serde_json::{Map, Value};

/// A part of the config file whose keys are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// The document's top level.
    Top,
    LitellmSettings,
    RouterSettings,
    GeneralSettings,
    /// One `model_list` entry.
    ModelEntry,
    /// `model_list[].litellm_params`.
    LitellmParams,
    /// `model_list[].model_info`.
    ModelInfo,
}

impl Section {
    pub const ALL: [Section; 7] = [
        Section::Top,
        Section::ModelEntry,
        Section::LitellmParams,
        Section::ModelInfo,
        Section::LitellmSettings,
        Section::RouterSettings,
        Section::GeneralSettings,
    ];

    /// How the section is written in the docs and in warnings.
    pub fn title(self) -> &'static str {
        match self {
            Section::Top => "top level",
            Section::LitellmSettings => "litellm_settings",
            Section::RouterSettings => "router_settings",
            Section::GeneralSettings => "general_settings",
            Section::ModelEntry => "model_list[]",
            Section::LitellmParams => "model_list[].litellm_params",
            Section::ModelInfo => "model_list[].model_info",
        }
    }
}

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Read and used; the text says what it does (short).
    Acts(&'static str),
    /// Accepted without effect; the text is the reason, shown in the start-up warning.
    NoOp(&'static str),
}

/// One registered key. A `name` ending in `*` matches every key with that prefix.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub section: Section,
    pub name: &'static str,
    pub status: Status,
    /// Whether `POST /config/update` may change it at run time: the gateway applies a new value
    /// without a restart (see `crate::runtime_settings`). Every other key needs a restart.
    pub live: bool,
}

impl Key {
    /// What the key does, or why it does nothing.
    pub fn what(&self) -> &'static str {
        match self.status {
            Acts(what) | NoOp(what) => what,
        }
    }

    fn matches(&self, key: &str) -> bool {
        match self.name.strip_suffix('*') {
            Some(prefix) => key.starts_with(prefix),
            None => self.name == key,
        }
    }
}

use Section::*;
use Status::*;

const fn acts(section: Section, name: &'static str, what: &'static str) -> Key {
    Key {
        section,
        name,
        status: Acts(what),
        live: false,
    }
}

/// A key that acts and that `POST /config/update` may change at run time.
const fn live(section: Section, name: &'static str, what: &'static str) -> Key {
    Key {
        section,
        name,
        status: Acts(what),
        live: true,
    }
}

const fn noop(section: Section, name: &'static str, why: &'static str) -> Key {
    Key {
        section,
        name,
        status: NoOp(why),
        live: false,
    }
}

const ROUTER_TOO: &str = "as in router_settings (router_settings wins when both set it)";
const DEFAULT_PARAM: &str = "OpenAI parameter sent when the request does not set it";
const SHOWN: &str = "returned as configured by /model/info";

/// The registry. Order is the docs' order.
pub static KEYS: &[Key] = &[
    // ---- top level ----
    acts(Top, "model_list", "the deployments (model groups) clients can call"),
    acts(Top, "litellm_settings", "gateway-wide settings (below)"),
    acts(Top, "router_settings", "routing, retries, cooldowns, fallbacks, shared Redis (below)"),
    acts(Top, "general_settings", "keys, database, limits, alerting (below)"),
    live(Top, "environment_variables", "exported into the process environment before `os.environ/` references resolve"),
    acts(Top, "credential_list", "named credentials merged into the `litellm_params` that name them (`litellm_credential_name`)"),
    acts(Top, "cache_settings", "response cache settings, as `litellm_settings.cache_params` (docs/CACHING.md)"),
    noop(Top, "guardrails", "guardrails are not implemented: requests are not checked by any guardrail"),
    noop(Top, "finetune_settings", "the fine-tuning API is not implemented"),
    noop(Top, "files_settings", "the files API is not implemented"),
    noop(Top, "assistant_settings", "the assistants API is not implemented"),
    noop(Top, "callback_settings", "per-callback settings are not read; callbacks take their settings from the environment"),
    noop(Top, "mcp_servers", "the MCP gateway is not implemented"),
    noop(Top, "search_tools", "search tools are not implemented"),
    noop(Top, "vector_store_registry", "vector stores are not implemented"),
    noop(Top, "include", "included files are not read: merge them into this file"),
    noop(Top, "model_group_settings", "per-group settings are not implemented"),
    noop(Top, "pass_through_endpoints", "read under general_settings only (as in LiteLLM)"),
    // ---- model_list[] ----
    acts(ModelEntry, "model_name", "the name clients request (a model group; `*` and `openai/*` are wildcards)"),
    acts(ModelEntry, "litellm_params", "how to call the deployment (below)"),
    acts(ModelEntry, "model_info", "the deployment's id, mode and metadata (below)"),
    // ---- model_list[].litellm_params ----
    acts(LitellmParams, "model", "`provider/model` to call; a bare name resolves through the model table"),
    acts(LitellmParams, "api_key", "the provider credential"),
    acts(LitellmParams, "api_base", "the provider's base URL"),
    acts(LitellmParams, "base_url", "as `api_base`"),
    acts(LitellmParams, "api_version", "Azure's `api-version`"),
    acts(LitellmParams, "organization", "`OpenAI-Organization` header; a list makes one deployment per organization"),
    acts(LitellmParams, "custom_llm_provider", "the provider when `model` has no prefix"),
    acts(LitellmParams, "litellm_credential_name", "merge this `credential_list` entry's values"),
    acts(LitellmParams, "azure_ad_token", "Entra ID bearer token for Azure (else `AZURE_AD_TOKEN`)"),
    acts(LitellmParams, "aws_*", "AWS settings for Bedrock (region, credentials, endpoint; docs/PROVIDERS.md)"),
    acts(LitellmParams, "vertex_*", "Vertex AI settings (project, location, credentials; docs/PROVIDERS.md)"),
    acts(LitellmParams, "timeout", "seconds a non-streaming call may take"),
    acts(LitellmParams, "stream_timeout", "seconds to first byte and between chunks of a stream"),
    acts(LitellmParams, "num_retries", "retries for calls routed here"),
    acts(LitellmParams, "max_retries", "as `num_retries`"),
    acts(LitellmParams, "weight", "simple-shuffle weight"),
    acts(LitellmParams, "order", "priority: 1 first; higher orders only when lower ones are unavailable"),
    acts(LitellmParams, "rpm", "requests per minute this deployment takes (also the shuffle weight)"),
    acts(LitellmParams, "tpm", "tokens per minute this deployment takes"),
    acts(LitellmParams, "max_parallel_requests", "requests in flight on this deployment at once (per instance); more wait for a slot"),
    acts(LitellmParams, "input_cost_per_token", "custom price"),
    acts(LitellmParams, "output_cost_per_token", "custom price"),
    acts(LitellmParams, "input_cost_per_second", "custom price"),
    acts(LitellmParams, "output_cost_per_second", "custom price"),
    acts(LitellmParams, "output_cost_per_reasoning_token", "custom price"),
    acts(LitellmParams, "cache_read_input_token_cost", "custom price"),
    acts(LitellmParams, "input_cost_per_token_batches", "custom price of a prompt token in a batch (else half of `input_cost_per_token`)"),
    acts(LitellmParams, "output_cost_per_token_batches", "custom price of a completion token in a batch (else half of `output_cost_per_token`)"),
    acts(LitellmParams, "input_cost_per_image", "custom price per image (image generation and edits)"),
    acts(LitellmParams, "output_cost_per_image", "custom price per image (image generation and edits)"),
    acts(LitellmParams, "input_cost_per_pixel", "custom price per pixel of each image (image generation and edits)"),
    acts(LitellmParams, "input_cost_per_character", "custom price per character of input (text to speech)"),
    acts(LitellmParams, "input_cost_per_query", "custom price per search unit (rerank)"),
    acts(LitellmParams, "extra_headers", "headers sent upstream"),
    acts(LitellmParams, "headers", "as `extra_headers`"),
    acts(LitellmParams, "drop_params", "drop parameters the provider does not support"),
    acts(LitellmParams, "additional_drop_params", "parameters always dropped"),
    acts(LitellmParams, "ssl_verify", "this deployment's certificate check: `false` or a CA bundle path"),
    acts(LitellmParams, "mock_response", "answer with this content without calling the provider"),
    acts(LitellmParams, "mock_timeout", "`true`: wait the deployment's `timeout`, then fail as a timeout, without calling the provider"),
    acts(LitellmParams, "temperature", DEFAULT_PARAM),
    acts(LitellmParams, "top_p", DEFAULT_PARAM),
    acts(LitellmParams, "max_tokens", DEFAULT_PARAM),
    acts(LitellmParams, "max_completion_tokens", DEFAULT_PARAM),
    acts(LitellmParams, "n", DEFAULT_PARAM),
    acts(LitellmParams, "stop", DEFAULT_PARAM),
    acts(LitellmParams, "presence_penalty", DEFAULT_PARAM),
    acts(LitellmParams, "frequency_penalty", DEFAULT_PARAM),
    acts(LitellmParams, "logit_bias", DEFAULT_PARAM),
    acts(LitellmParams, "seed", DEFAULT_PARAM),
    acts(LitellmParams, "response_format", DEFAULT_PARAM),
    acts(LitellmParams, "tool_choice", DEFAULT_PARAM),
    acts(LitellmParams, "parallel_tool_calls", DEFAULT_PARAM),
    acts(LitellmParams, "user", DEFAULT_PARAM),
    acts(LitellmParams, "reasoning_effort", DEFAULT_PARAM),
    acts(LitellmParams, "service_tier", DEFAULT_PARAM),
    acts(LitellmParams, "logprobs", DEFAULT_PARAM),
    acts(LitellmParams, "top_logprobs", DEFAULT_PARAM),
    acts(LitellmParams, "modalities", DEFAULT_PARAM),
    acts(LitellmParams, "dimensions", DEFAULT_PARAM),
    acts(LitellmParams, "encoding_format", DEFAULT_PARAM),
    acts(LitellmParams, "top_k", DEFAULT_PARAM),
    acts(LitellmParams, "repetition_penalty", DEFAULT_PARAM),
    acts(LitellmParams, "min_p", DEFAULT_PARAM),
    acts(LitellmParams, "extra_body", "fields added to the upstream body when the request does not set them"),
    noop(LitellmParams, "tags", "kept on the deployment and shown by /model/info; tag routing (`enable_tag_filtering`) is not implemented, so every deployment of the group serves every request"),
    acts(LitellmParams, "region_name", "the deployment's region (`eu`, `us`, or a provider region such as `eu-west-3`): an end user's `allowed_model_region` routes only to deployments in that region; `x-litellm-model-region`"),
    acts(LitellmParams, "use_in_pass_through", "`true`: this deployment's credential serves its provider's pass-through route (`/openai/*`…) when the request names no model"),
    noop(LitellmParams, "configurable_clientside_auth_params", "clients cannot pass their own credentials or base URLs"),
    noop(LitellmParams, "merge_reasoning_content_in_choices", "reasoning stays in `reasoning_content`, never merged into the message content"),
    noop(LitellmParams, "use_litellm_proxy", "Tollgate calls providers itself"),
    acts(LitellmParams, "initial_prompt_value", "prompt template: text the prompt starts with (Hugging Face TGI endpoints, Ollama, SageMaker TGI and Replicate: chat goes as the rendered prompt)"),
    acts(LitellmParams, "final_prompt_value", "prompt template: text the prompt ends with (Hugging Face TGI endpoints, Ollama, SageMaker TGI and Replicate: chat goes as the rendered prompt)"),
    acts(LitellmParams, "roles", "prompt template: each role's `pre_message` / `post_message` (Hugging Face TGI endpoints, Ollama, SageMaker TGI and Replicate: chat goes as the rendered prompt)"),
    acts(LitellmParams, "bos_token", "prompt template: opens the prompt and each turn after an assistant's (Hugging Face TGI endpoints, Ollama, SageMaker TGI and Replicate: chat goes as the rendered prompt)"),
    acts(LitellmParams, "eos_token", "prompt template: closes each assistant turn (Hugging Face TGI endpoints, Ollama, SageMaker TGI and Replicate: chat goes as the rendered prompt)"),
    // ---- model_list[].model_info ----
    acts(ModelInfo, "id", "the deployment id (default: a hash of `model_name` and `litellm_params`)"),
    acts(ModelInfo, "mode", "`chat`, `completion` or `embedding`: how /health probes it"),
    acts(ModelInfo, "base_model", "the model priced and sized from the bundled table"),
    acts(ModelInfo, "max_input_tokens", "context window, for `enable_pre_call_checks`"),
    acts(ModelInfo, "max_tokens", "context window when `max_input_tokens` is absent"),
    acts(ModelInfo, "health_check_model", "model probed for wildcard deployments"),
    acts(ModelInfo, "health_check_timeout", "seconds a health probe may take"),
    acts(ModelInfo, "supported_environments", "left out unless `LITELLM_ENVIRONMENT` (default production) is listed"),
    acts(ModelInfo, "access_groups", "access groups a key's `models` may name"),
    acts(ModelInfo, "db_model", "set by the gateway: whether the deployment lives in the database"),
    acts(ModelInfo, "region", "set by the gateway: the deployment's region for region routing (`region_name`, else the provider's region)"),
    acts(ModelInfo, "description", SHOWN),
    acts(ModelInfo, "version", SHOWN),
    acts(ModelInfo, "max_output_tokens", SHOWN),
    acts(ModelInfo, "litellm_provider", SHOWN),
    acts(ModelInfo, "supports_*", SHOWN),
    noop(ModelInfo, "input_cost_per_token", "shown by /model/info but not used for pricing: set prices in `litellm_params`"),
    noop(ModelInfo, "output_cost_per_token", "shown by /model/info but not used for pricing: set prices in `litellm_params`"),
    acts(ModelInfo, "custom_tokenizer", "named by /utils/token_counter as the tokenizer its count stands in for: Hugging Face tokenizers are not loaded (counts use tiktoken's `cl100k_base`), and request-time estimates stay about 4 bytes per token"),
    acts(ModelInfo, "team_id", "team-scoped model: only that team's keys see and call the model group"),
    acts(ModelInfo, "team_public_model_name", "with `team_id`: the team's keys call and list the model by this name; its `model_name` is internal and listed to no one"),
    // ---- litellm_settings ----
    acts(LitellmSettings, "drop_params", "drop OpenAI parameters a provider does not support instead of answering 400"),
    live(LitellmSettings, "request_timeout", "default upstream timeout in seconds (default 600)"),
    acts(LitellmSettings, "json_logs", "JSON log lines"),
    acts(LitellmSettings, "set_verbose", "`true`: debug logs for the gateway (as `--debug` / `LITELLM_LOG=DEBUG`)"),
    acts(LitellmSettings, "ssl_verify", "provider certificate check: `false`, a CA bundle path, or `true`"),
    acts(LitellmSettings, "ssl_certificate", "PEM CA bundle provider certificates must chain to"),
    acts(LitellmSettings, "cache", "response caching (docs/CACHING.md)"),
    acts(LitellmSettings, "cache_params", "response cache settings (docs/CACHING.md)"),
    acts(LitellmSettings, "cache_ttl", "response cache lifetime in seconds"),
    acts(LitellmSettings, "success_callback", "logging callbacks, `prometheus`, `otel` (docs/OBSERVABILITY.md)"),
    acts(LitellmSettings, "failure_callback", "logging callbacks, `prometheus`, `otel` (docs/OBSERVABILITY.md)"),
    acts(LitellmSettings, "callbacks", "logging callbacks, `prometheus`, `otel` (docs/OBSERVABILITY.md)"),
    acts(LitellmSettings, "s3_callback_params", "the `s3` callback's bucket, region, credentials, endpoint"),
    acts(LitellmSettings, "turn_off_message_logging", "`true`: prompts and completions redacted from callbacks and debug logs"),
    acts(LitellmSettings, "require_auth_for_metrics_endpoint", "`true`: `/metrics` needs the master key"),
    live(LitellmSettings, "budget_exceeded_status_code", "HTTP status of budget-exceeded errors (default 400)"),
    live(LitellmSettings, "allowed_fails", ROUTER_TOO),
    live(LitellmSettings, "num_retries", ROUTER_TOO),
    live(LitellmSettings, "cooldown_time", ROUTER_TOO),
    live(LitellmSettings, "disable_cooldowns", ROUTER_TOO),
    live(LitellmSettings, "fallbacks", ROUTER_TOO),
    live(LitellmSettings, "context_window_fallbacks", ROUTER_TOO),
    live(LitellmSettings, "content_policy_fallbacks", ROUTER_TOO),
    live(LitellmSettings, "default_fallbacks", ROUTER_TOO),
    live(LitellmSettings, "max_fallbacks", ROUTER_TOO),
    acts(LitellmSettings, "model_group_alias", ROUTER_TOO),
    live(LitellmSettings, "retry_policy", ROUTER_TOO),
    live(LitellmSettings, "model_group_retry_policy", ROUTER_TOO),
    live(LitellmSettings, "routing_strategy", ROUTER_TOO),
    live(LitellmSettings, "routing_strategy_args", ROUTER_TOO),
    live(LitellmSettings, "enable_pre_call_checks", ROUTER_TOO),
    live(LitellmSettings, "retry_after", ROUTER_TOO),
    noop(LitellmSettings, "max_budget", "the gateway-wide budget is shown by /global/spend but not enforced; set budgets on keys, users or teams"),
    noop(LitellmSettings, "budget_duration", "the gateway-wide budget is not enforced"),
    noop(LitellmSettings, "service_callback", "service-health callbacks are not implemented"),
    noop(LitellmSettings, "max_end_user_budget", "end-user budgets come from their budget records only"),
    noop(LitellmSettings, "default_team_settings", "per-team callback settings are not implemented"),
    acts(LitellmSettings, "default_key_generate_params", "defaults `/key/generate` fills in when a request leaves them out"),
    acts(LitellmSettings, "upperbound_key_generate_params", "caps on what `/key/generate` accepts (400 above them)"),
    noop(LitellmSettings, "key_generation_settings", "who may generate keys follows the roles only"),
    noop(LitellmSettings, "max_internal_user_budget", "internal users get no default budget"),
    noop(LitellmSettings, "internal_user_budget_duration", "internal users get no default budget"),
    noop(LitellmSettings, "default_internal_user_params", "new users get no defaults from the config"),
    noop(LitellmSettings, "redact_user_api_key_info", "key details are not sent to callbacks' metadata beyond their hash and alias"),
    noop(LitellmSettings, "redact_messages_in_exceptions", "error messages never carry the prompt"),
    noop(LitellmSettings, "telemetry", "Tollgate sends no telemetry"),
    noop(LitellmSettings, "modify_params", "requests are not rewritten to suit a provider"),
    noop(LitellmSettings, "enable_caching_on_provider_specific_optional_params", "the cache key covers every request parameter"),
    noop(LitellmSettings, "network_mock", "use `mock_response` or the mock provider"),
    noop(LitellmSettings, "context_window_fallback_dict", "use `context_window_fallbacks`"),
    noop(LitellmSettings, "enable_preview_features", "no preview features"),
    noop(LitellmSettings, "return_response_headers", "provider response headers are not returned"),
    noop(LitellmSettings, "enable_json_schema_validation", "responses are not validated against `response_format`"),
    noop(LitellmSettings, "disable_end_user_cost_tracking", "end-user spend is always tracked"),
    noop(LitellmSettings, "mcp_aliases", "the MCP gateway is not implemented"),
    noop(LitellmSettings, "langfuse_default_tags", "Langfuse traces get Tollgate's fixed tags"),
    noop(LitellmSettings, "force_ipv4", "connections use whatever address the name resolves to"),
    // ---- router_settings ----
    live(RouterSettings, "routing_strategy", "simple-shuffle, least-busy, usage-based, latency-based, cost-based"),
    live(RouterSettings, "routing_strategy_args", "`lowest_latency_buffer` for latency-based routing"),
    acts(RouterSettings, "model_group_alias", "`{alias: group}` or `{alias: {model, hidden}}`"),
    live(RouterSettings, "timeout", "default upstream timeout when `request_timeout` is absent"),
    live(RouterSettings, "stream_timeout", "stream timeout for deployments that set none"),
    live(RouterSettings, "allowed_fails", "failures per minute before a deployment cools down (default 3)"),
    live(RouterSettings, "allowed_fails_policy", "failures allowed per error class"),
    live(RouterSettings, "cooldown_time", "seconds a cooled-down deployment is skipped (default 5)"),
    live(RouterSettings, "disable_cooldowns", "never cool deployments down"),
    live(RouterSettings, "num_retries", "retries per request (default 2)"),
    live(RouterSettings, "retry_policy", "retries per error class"),
    live(RouterSettings, "model_group_retry_policy", "`retry_policy` per model group"),
    live(RouterSettings, "retry_after", "least seconds before a retry on the same deployment"),
    live(RouterSettings, "enable_pre_call_checks", "skip deployments whose context window is too small"),
    live(RouterSettings, "fallbacks", "`[{group: [fallback, …]}]`"),
    live(RouterSettings, "context_window_fallbacks", "fallbacks for context-window errors"),
    live(RouterSettings, "content_policy_fallbacks", "fallbacks for content-policy errors"),
    live(RouterSettings, "default_fallbacks", "fallbacks for groups without an entry"),
    live(RouterSettings, "max_fallbacks", "most fallbacks tried per request (default 5)"),
    acts(RouterSettings, "redis_host", "Redis shared by every instance's router (and limits)"),
    acts(RouterSettings, "redis_port", "Redis shared by every instance's router (and limits)"),
    acts(RouterSettings, "redis_password", "Redis shared by every instance's router (and limits)"),
    acts(RouterSettings, "redis_url", "Redis shared by every instance's router (and limits)"),
    acts(RouterSettings, "cache_responses", "`true`: turn the response cache on"),
    acts(RouterSettings, "default_max_parallel_requests", "`max_parallel_requests` for deployments that set none"),
    noop(RouterSettings, "enable_tag_filtering", "tag routing is not implemented: deployments' `tags` do not restrict which requests they serve"),
    noop(RouterSettings, "provider_budget_config", "provider budgets are not implemented"),
    noop(RouterSettings, "optional_pre_call_checks", "only `enable_pre_call_checks` (context window) is implemented"),
    noop(RouterSettings, "client_ttl", "each worker keeps one pooled client; there is nothing to recreate"),
    noop(RouterSettings, "polling_interval", "there is no request queue to poll"),
    noop(RouterSettings, "default_litellm_params", "not applied: set the parameters on each deployment"),
    // ---- general_settings ----
    acts(GeneralSettings, "master_key", "the admin key (else `LITELLM_MASTER_KEY`)"),
    acts(GeneralSettings, "dangerously_permit_weak_or_unset_master_key", "allow a weak or missing key on a non-loopback address"),
    acts(GeneralSettings, "key_management_system", "a secret manager `os.environ/NAME` reads first (`hashicorp_vault`, `aws_secret_manager`, `aws_secret_manager_v2`, `azure_key_vault`, `google_secret_manager`), falling back to the environment"),
    acts(GeneralSettings, "key_management_settings", "`hosted_keys`: the only names read from the secret manager; `refresh_interval`: seconds between reads (default 3600, 0: never); other fields have no effect"),
    acts(GeneralSettings, "litellm_key_header_name", "an extra header to read the key from"),
    acts(GeneralSettings, "moderation_model", "the model group `/moderations` uses when a request names none (a request's own `model` wins)"),
    live(GeneralSettings, "max_request_size_mb", "larger request bodies answer 413 (default 32)"),
    acts(GeneralSettings, "max_parallel_requests", "requests in flight through the whole gateway"),
    acts(GeneralSettings, "global_max_parallel_requests", "requests in flight through the whole gateway"),
    acts(GeneralSettings, "database_url", "the database (also `DATABASE_URL`); default the SQLite file `tollgate.db`"),
    acts(GeneralSettings, "database_connection_pool_limit", "Postgres connections at most (default 10)"),
    acts(GeneralSettings, "database_connection_timeout", "seconds to open a Postgres connection (default 10)"),
    acts(GeneralSettings, "proxy_batch_write_at", "seconds between spend-log batch writes (default 1)"),
    acts(GeneralSettings, "disable_spend_logs", "`true`: no spend-log rows"),
    acts(GeneralSettings, "store_prompts_in_spend_logs", "`true`: spend-log rows keep the request and response"),
    acts(GeneralSettings, "maximum_spend_logs_retention_period", "older spend-log rows are deleted"),
    acts(GeneralSettings, "alerting", "Slack / webhook alerts"),
    acts(GeneralSettings, "alert_types", "which alerts are sent"),
    acts(GeneralSettings, "alerting_threshold", "seconds after which a call is slow"),
    acts(GeneralSettings, "alert_to_webhook_url", "per-alert-type webhook URLs"),
    acts(GeneralSettings, "otel", "`true`: OpenTelemetry traces"),
    acts(GeneralSettings, "background_health_checks", "probe deployments in the background"),
    acts(GeneralSettings, "health_check_interval", "seconds between background probes (default 300)"),
    noop(GeneralSettings, "store_model_in_db", "models added through `/model/new` are always stored in the database"),
    noop(GeneralSettings, "proxy_budget_rescheduler_min_time", "budgets reset when a request or the hourly sweep finds them due"),
    noop(GeneralSettings, "proxy_budget_rescheduler_max_time", "budgets reset when a request or the hourly sweep finds them due"),
    noop(GeneralSettings, "infer_model_from_keys", "models come from `model_list` and the database only"),
    acts(GeneralSettings, "pass_through_endpoints", "routes relayed to a fixed target: `{path, target, headers, auth, forward_headers, include_subpath}` (docs/PROVIDERS.md)"),
    noop(GeneralSettings, "allowed_routes", "gateway-wide route restrictions are not implemented (keys' `allowed_routes` are)"),
    noop(GeneralSettings, "custom_auth", "custom auth hooks (Python) cannot be loaded"),
    noop(GeneralSettings, "user_api_key_cache_ttl", "the key cache has its own fixed lifetime"),
    noop(GeneralSettings, "allow_requests_on_db_unavailable", "with the database down, the master key and cached keys keep working anyway"),
    noop(GeneralSettings, "enforce_user_param", "requests without `user` are not refused"),
    noop(GeneralSettings, "forward_client_headers_to_llm_api", "client headers are not forwarded to providers"),
    noop(GeneralSettings, "use_redis_transaction_buffer", "spend is written in batches by each instance"),
    noop(GeneralSettings, "ui_access_mode", "the UI is for admins and internal users with a password"),
    noop(GeneralSettings, "return_wildcard_routes", "`/models` lists wildcard groups as configured"),
    noop(GeneralSettings, "disable_master_key_return", "the master key is never returned"),
    noop(GeneralSettings, "disable_reset_budget", "budgets always reset at their duration"),
    noop(GeneralSettings, "disable_adding_master_key_hash_to_db", "the master key's hash is not stored"),
    noop(GeneralSettings, "enable_jwt_auth", "JWT auth is not implemented"),
    noop(GeneralSettings, "litellm_jwtauth", "JWT auth is not implemented"),
    noop(GeneralSettings, "public_routes", "the set of public routes is fixed"),
    noop(GeneralSettings, "admin_only_routes", "the set of admin routes is fixed"),
    noop(GeneralSettings, "max_response_size_mb", "response sizes are not capped"),
    noop(GeneralSettings, "proxy_batch_polling_interval", "the batches API is not implemented"),
    noop(GeneralSettings, "health_check_details", "`/health` always answers with its details"),
    noop(GeneralSettings, "allow_public_health_readiness_details", "`/health/readiness` shows its fixed fields"),
    noop(GeneralSettings, "include_call_id_in_error_body", "error bodies carry the call id in the `x-litellm-call-id` header"),
];

/// The registered key `key` of `section`, if any.
pub fn lookup(section: Section, key: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.section == section && k.matches(key))
}

/// The sections other than `section` that know `key` (to say where an unknown key belongs).
fn known_elsewhere(section: Section, key: &str) -> Vec<Section> {
    [
        Section::RouterSettings,
        Section::LitellmSettings,
        Section::GeneralSettings,
        Section::Top,
        Section::ModelEntry,
        Section::LitellmParams,
        Section::ModelInfo,
    ]
    .into_iter()
    .filter(|s| *s != section && lookup(*s, key).is_some_and(|k| k.name == key))
    .collect()
}

/// The start-up warning for `key` of `section`, written at `path` (e.g. `litellm_settings.foo`,
/// `model_list[2].litellm_params.foo`); `None` when the key acts.
pub fn warning(section: Section, key: &str, path: &str) -> Option<String> {
    match lookup(section, key).map(|k| k.status) {
        Some(Acts(_)) => None,
        Some(NoOp(why)) => Some(format!("{path} has no effect in Tollgate: {why}; ignored")),
        None => {
            let elsewhere = known_elsewhere(section, key);
            Some(match elsewhere.first() {
                Some(s) => format!(
                    "unknown config key {path}; ignored (Tollgate reads it in {})",
                    s.title()
                ),
                None => format!("unknown config key {path}; ignored"),
            })
        }
    }
}

/// Why `POST /config/update` refuses to change `key` of `section` at run time; `None` when the
/// key is [`Key::live`].
pub fn runtime_refusal(section: Section, key: &str) -> Option<String> {
    match lookup(section, key) {
        Some(k) if k.live => None,
        Some(Key {
            status: NoOp(why), ..
        }) => Some(format!("has no effect in Tollgate ({why})")),
        Some(_) => Some("needs a restart: change it in config.yaml".into()),
        None => Some(match known_elsewhere(section, key).first() {
            Some(s) => format!("unknown key (Tollgate reads it in {})", s.title()),
            None => "unknown key".into(),
        }),
    }
}

/// Warn about every key of `map` that does not act. `prefix` is written before each key
/// (`litellm_settings.`, `model_list[0].litellm_params.`), `suffix` after it (` (gpt-4o)`).
pub fn check(
    section: Section,
    map: &Map<String, Value>,
    prefix: &str,
    suffix: &str,
    warnings: &mut Vec<String>,
) {
    for key in map.keys() {
        if let Some(w) = warning(section, key, &format!("{prefix}{key}{suffix}")) {
            warnings.push(w);
        }
    }
}

/// The start and end markers of the generated section of `docs/CONFIG.md`.
pub const DOC_BEGIN: &str =
    "<!-- BEGIN config-keys: generated by `tollgate config-keys --markdown`; do not edit -->";
pub const DOC_END: &str = "<!-- END config-keys -->";

/// The registry as Markdown: one table per section (the body of the generated section).
pub fn markdown() -> String {
    let mut out = String::new();
    for section in Section::ALL {
        out.push_str(&format!("\n### `{}`\n\n", section.title()));
        out.push_str("| key | status | what it does, or why it does nothing |\n|---|---|---|\n");
        for key in KEYS.iter().filter(|k| k.section == section) {
            let (status, text) = match key.status {
                Acts(_) if key.live => ("acts, live", key.what()),
                Acts(what) => ("acts", what),
                NoOp(why) => ("no-op", why),
            };
            out.push_str(&format!("| `{}` | {status} | {text} |\n", key.name));
        }
    }
    out
}

/// `docs/CONFIG.md` text with its generated section replaced by [`markdown`]; `None` when the
/// markers are missing.
pub fn regenerate_doc(doc: &str) -> Option<String> {
    let start = doc.find(DOC_BEGIN)? + DOC_BEGIN.len();
    let end = doc[start..].find(DOC_END)? + start;
    Some(format!(
        "{}\n{}\n{}",
        &doc[..start],
        markdown(),
        &doc[end..]
    ))
}

/// `tollgate config-keys`: the registry as text, as Markdown, or written into a docs file.
pub fn command(args: &crate::cli::ConfigKeysArgs) -> i32 {
    if let Some(path) = &args.write_docs {
        let doc = match std::fs::read_to_string(path) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return 1;
            }
        };
        let Some(new) = regenerate_doc(&doc) else {
            eprintln!(
                "error: {} has no generated section (the lines {DOC_BEGIN} and {DOC_END})",
                path.display()
            );
            return 1;
        };
        if let Err(e) = std::fs::write(path, new) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return 1;
        }
        println!("{} updated", path.display());
        return 0;
    }
    if args.markdown {
        print!("{}", markdown());
        return 0;
    }
    for key in KEYS {
        let (status, text) = match key.status {
            Acts(what) => ("acts ", what),
            NoOp(why) => ("no-op", why),
        };
        let path = match key.section {
            Section::Top => key.name.to_string(),
            s => format!("{}.{}", s.title(), key.name),
        };
        let live = if key.live {
            " (live: POST /config/update changes it at run time)"
        } else {
            ""
        };
        println!("{status}  {path}: {text}{live}");
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_is_registered_twice() {
        for (i, a) in KEYS.iter().enumerate() {
            for b in &KEYS[i + 1..] {
                assert!(
                    !(a.section == b.section && a.name == b.name),
                    "{} {} registered twice",
                    a.section.title(),
                    a.name
                );
            }
        }
    }

    #[test]
    fn every_default_parameter_a_deployment_takes_acts() {
        for p in crate::deployment::DEFAULTABLE_PARAMS {
            assert!(
                matches!(
                    lookup(Section::LitellmParams, p).map(|k| k.status),
                    Some(Acts(_))
                ),
                "{p}"
            );
        }
    }

    #[test]
    fn warnings_say_unknown_or_give_the_reason() {
        assert_eq!(warning(Section::LitellmSettings, "drop_params", "x"), None);
        assert_eq!(
            warning(Section::LitellmSettings, "telemetry", "litellm_settings.telemetry"),
            Some(
                "litellm_settings.telemetry has no effect in Tollgate: Tollgate sends no telemetry; ignored"
                    .into()
            )
        );
        assert_eq!(
            warning(Section::LitellmSettings, "flux", "litellm_settings.flux"),
            Some("unknown config key litellm_settings.flux; ignored".into())
        );
        // A key of another section says where it belongs.
        assert_eq!(
            warning(Section::LitellmSettings, "stream_timeout", "litellm_settings.stream_timeout"),
            Some(
                "unknown config key litellm_settings.stream_timeout; ignored (Tollgate reads it in router_settings)"
                    .into()
            )
        );
        // Prefix entries.
        assert_eq!(
            warning(Section::LitellmParams, "aws_region_name", "x"),
            None
        );
        assert_eq!(warning(Section::ModelInfo, "supports_vision", "x"), None);
    }

    #[test]
    fn config_update_refuses_keys_that_are_not_live_and_says_why() {
        assert_eq!(
            runtime_refusal(Section::RouterSettings, "num_retries"),
            None
        );
        assert_eq!(runtime_refusal(Section::Top, "environment_variables"), None);
        assert_eq!(
            runtime_refusal(Section::GeneralSettings, "database_url").as_deref(),
            Some("needs a restart: change it in config.yaml")
        );
        assert_eq!(
            runtime_refusal(Section::RouterSettings, "flux").as_deref(),
            Some("unknown key")
        );
        assert_eq!(
            runtime_refusal(Section::LitellmSettings, "stream_timeout").as_deref(),
            Some("unknown key (Tollgate reads it in router_settings)")
        );
        assert!(runtime_refusal(Section::LitellmSettings, "telemetry")
            .is_some_and(|r| r.starts_with("has no effect in Tollgate")));
        // Every live key acts, and no prefix entry is live.
        for k in KEYS.iter().filter(|k| k.live) {
            assert!(
                matches!(k.status, Acts(_)) && !k.name.ends_with('*'),
                "{}",
                k.name
            );
        }
    }

    #[test]
    fn regenerating_replaces_only_the_marked_section() {
        let doc = format!("before\n{DOC_BEGIN}\nstale\n{DOC_END}\nafter\n");
        let new = regenerate_doc(&doc).expect("markers");
        assert!(new.starts_with("before\n"));
        assert!(new.ends_with(&format!("{DOC_END}\nafter\n")));
        assert!(!new.contains("stale"));
        assert!(new.contains("| `mock_timeout` | acts |"));
        assert_eq!(regenerate_doc(&new).as_deref(), Some(new.as_str()));
        assert_eq!(regenerate_doc("no markers"), None);
    }
}
