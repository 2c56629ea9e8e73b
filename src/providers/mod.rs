//! Provider adapters (hub and spoke): each adapter translates the internal model ([`crate::llm`])
//! to one provider's wire format and back. Adding a provider means adding one adapter, never a
//! translation between two providers.
//!
//! This module also holds the provider registry: the `provider/` prefixes LiteLLM configs use, with
//! each provider's wire format, default base URL and API-key environment variables.

pub mod anthropic;
pub mod bedrock;
pub mod cohere;
pub mod gemini;
pub mod huggingface;
pub mod images;
pub mod native;
pub mod ollama;
pub mod openai;
pub mod prompt_template;
pub mod replicate;
pub mod sagemaker;
pub mod stream;
pub mod tgi;
pub mod urls;
pub mod vertex;

use std::borrow::Cow;

use futures_util::future::LocalBoxFuture;

use bytes::Bytes;
use tollgate_wire::openai::{AssistantMessage, ChatCompletion, EmbeddingList, ToolCall};

use crate::deployment::{Deployment, Target};
use crate::error::GatewayError;
use crate::llm::{CallKind, LlmRequest, Usage};

/// How a provider is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// The OpenAI REST API (`{api_base}/chat/completions`, bearer auth).
    OpenAi,
    /// Azure OpenAI (`{api_base}/openai/deployments/{deployment}/…?api-version=`, `api-key` header).
    Azure,
    /// Anthropic Messages API.
    Anthropic,
    /// Google AI Studio (Gemini API, `generateContent`).
    Gemini,
    /// Vertex AI (Gemini models through `aiplatform.googleapis.com`, OAuth from a service account).
    VertexAi,
    /// AWS Bedrock Converse / ConverseStream (SigV4 or Bedrock API keys).
    Bedrock,
    /// Cohere v2 chat and embed.
    Cohere,
    /// Ollama's native `/api/chat` and `/api/embed`.
    Ollama,
    /// Hugging Face Inference Endpoints and TGI.
    HuggingFace,
    /// Amazon SageMaker endpoints (InvokeEndpoint, SigV4 service `sagemaker`).
    SageMaker,
    /// Replicate predictions (created, then polled or streamed to their end).
    Replicate,
    /// A provider with its own wire format whose adapter this build does not include.
    Native,
    /// A provider that no longer exists upstream: its deployments load, and every call (and
    /// health check) is refused with what replaces it ([`retired`]).
    Retired,
}

/// A provider prefix and everything needed to reach it.
#[derive(Debug)]
pub struct ProviderSpec {
    /// The `provider/` prefix, as LiteLLM spells it.
    pub name: &'static str,
    pub wire: Wire,
    pub default_api_base: Option<&'static str>,
    /// Environment variables consulted, in order, for the base URL when `api_base` is not set.
    pub api_base_env: &'static [&'static str],
    /// Environment variables consulted, in order, for the key when `api_key` is not set.
    pub api_key_env: &'static [&'static str],
    /// OpenAI parameters this provider rejects (dropped with `drop_params`, else a 400).
    pub unsupported_params: &'static [&'static str],
}

const fn openai_like(
    name: &'static str,
    default_api_base: Option<&'static str>,
    api_base_env: &'static [&'static str],
    api_key_env: &'static [&'static str],
    unsupported_params: &'static [&'static str],
) -> ProviderSpec {
    ProviderSpec {
        name,
        wire: Wire::OpenAi,
        default_api_base,
        api_base_env,
        api_key_env,
        unsupported_params,
    }
}

const fn native(name: &'static str) -> ProviderSpec {
    ProviderSpec {
        name,
        wire: Wire::Native,
        default_api_base: None,
        api_base_env: &[],
        api_key_env: &[],
        unsupported_params: &[],
    }
}

const fn gone(name: &'static str) -> ProviderSpec {
    ProviderSpec {
        name,
        wire: Wire::Retired,
        default_api_base: None,
        api_base_env: &[],
        api_key_env: &[],
        unsupported_params: &[],
    }
}

/// Why a provider or model can no longer be called, and what to use instead: `palm/` (Google shut
/// the PaLM API down), `petals/` (the public swarm is gone), and AI21's retired Jurassic-2 names.
/// Calls answer 400 with this text; `/health` shows it.
pub fn retired(spec: &ProviderSpec, model: &str) -> Option<&'static str> {
    match spec.name {
        "palm" => Some(
            "Google shut the PaLM API down: palm/ models cannot be called any more. Use Gemini instead: gemini/<model> (for example gemini/gemini-2.5-flash) with GEMINI_API_KEY, or vertex_ai/<model>.",
        ),
        "petals" => Some(
            "The Petals network no longer serves models: petals/ models cannot be called any more. Serve the model behind an OpenAI-compatible server instead (hosted_vllm/<model>, ollama/<model> or huggingface/<model>).",
        ),
        "ai21" | "ai21_chat" if is_jurassic(model) => Some(
            "AI21 retired its Jurassic-2 models (j2-light, j2-mid, j2-ultra): use AI21's current Jamba models instead, for example ai21/jamba-mini-1.7 or ai21/jamba-large-1.7.",
        ),
        _ => None,
    }
}

/// AI21's Jurassic names (`j2-light`, `j2-mid`, `j2-ultra`, `j2-grande-instruct`…).
fn is_jurassic(model: &str) -> bool {
    let m = model.to_ascii_lowercase();
    m.starts_with("j2-") || m.starts_with("j1-") || m.starts_with("jurassic")
}

/// AWS Bedrock: the base URL is derived from the region unless set (`{region}` is filled in by the
/// adapter); `api_key` / `AWS_BEARER_TOKEN_BEDROCK` is a Bedrock API key, else requests are SigV4
/// signed.
const fn bedrock_spec(name: &'static str) -> ProviderSpec {
    ProviderSpec {
        name,
        wire: Wire::Bedrock,
        default_api_base: Some(bedrock::DEFAULT_ENDPOINT),
        api_base_env: &["AWS_BEDROCK_RUNTIME_ENDPOINT"],
        api_key_env: &["AWS_BEARER_TOKEN_BEDROCK"],
        unsupported_params: &[],
    }
}
/// OpenAI parameters the Gemini API and Vertex AI have no equivalent for.
const GOOGLE_UNSUPPORTED: &[&str] = &[
    "logit_bias",
    "service_tier",
    "prediction",
    "audio",
    "store",
    "web_search_options",
];

/// Every provider prefix the gateway knows.
pub static PROVIDERS: &[ProviderSpec] = &[
    openai_like(
        "openai",
        Some("https://api.openai.com/v1"),
        &["OPENAI_BASE_URL", "OPENAI_API_BASE"],
        &["OPENAI_API_KEY"],
        &[],
    ),
    openai_like(
        "text-completion-openai",
        Some("https://api.openai.com/v1"),
        &["OPENAI_BASE_URL", "OPENAI_API_BASE"],
        &["OPENAI_API_KEY"],
        &[],
    ),
    openai_like(
        "custom_openai",
        None,
        &["OPENAI_BASE_URL", "OPENAI_API_BASE"],
        &["OPENAI_API_KEY"],
        &[],
    ),
    openai_like("openai_like", None, &[], &[], &[]),
    ProviderSpec {
        name: "azure",
        wire: Wire::Azure,
        default_api_base: None,
        api_base_env: &["AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"],
        api_key_env: &["AZURE_API_KEY", "AZURE_OPENAI_API_KEY"],
        unsupported_params: &[],
    },
    ProviderSpec {
        name: "azure_text",
        wire: Wire::Azure,
        default_api_base: None,
        api_base_env: &["AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"],
        api_key_env: &["AZURE_API_KEY", "AZURE_OPENAI_API_KEY"],
        unsupported_params: &[],
    },
    openai_like(
        "hosted_vllm",
        None,
        &["HOSTED_VLLM_API_BASE"],
        &["HOSTED_VLLM_API_KEY"],
        &[],
    ),
    openai_like(
        "vllm",
        None,
        &["HOSTED_VLLM_API_BASE", "VLLM_API_BASE"],
        &["HOSTED_VLLM_API_KEY", "VLLM_API_KEY"],
        &[],
    ),
    openai_like(
        "xinference",
        Some("http://127.0.0.1:9997/v1"),
        &["XINFERENCE_API_BASE"],
        &["XINFERENCE_API_KEY"],
        &[],
    ),
    openai_like(
        "groq",
        Some("https://api.groq.com/openai/v1"),
        &["GROQ_API_BASE"],
        &["GROQ_API_KEY"],
        &["logprobs", "top_logprobs", "logit_bias"],
    ),
    openai_like(
        "together_ai",
        Some("https://api.together.xyz/v1"),
        &["TOGETHER_AI_API_BASE", "TOGETHERAI_API_BASE"],
        &[
            "TOGETHERAI_API_KEY",
            "TOGETHER_AI_API_KEY",
            "TOGETHER_API_KEY",
        ],
        &[],
    ),
    openai_like(
        "mistral",
        Some("https://api.mistral.ai/v1"),
        &["MISTRAL_API_BASE"],
        &["MISTRAL_API_KEY"],
        &["logit_bias", "logprobs", "top_logprobs"],
    ),
    openai_like(
        "deepseek",
        Some("https://api.deepseek.com/v1"),
        &["DEEPSEEK_API_BASE"],
        &["DEEPSEEK_API_KEY"],
        &[],
    ),
    openai_like(
        "fireworks_ai",
        Some("https://api.fireworks.ai/inference/v1"),
        &["FIREWORKS_AI_API_BASE", "FIREWORKS_API_BASE"],
        &[
            "FIREWORKS_AI_API_KEY",
            "FIREWORKS_API_KEY",
            "FIREWORKSAI_API_KEY",
        ],
        &[],
    ),
    openai_like(
        "openrouter",
        Some("https://openrouter.ai/api/v1"),
        &["OPENROUTER_API_BASE"],
        &["OPENROUTER_API_KEY", "OR_API_KEY"],
        &[],
    ),
    openai_like(
        "perplexity",
        Some("https://api.perplexity.ai"),
        &["PERPLEXITY_API_BASE"],
        &["PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"],
        &["tools", "tool_choice", "logit_bias", "logprobs", "n"],
    ),
    openai_like(
        "xai",
        Some("https://api.x.ai/v1"),
        &["XAI_API_BASE"],
        &["XAI_API_KEY"],
        &[],
    ),
    openai_like(
        "lm_studio",
        Some("http://localhost:1234/v1"),
        &["LM_STUDIO_API_BASE"],
        &["LM_STUDIO_API_KEY"],
        &[],
    ),
    openai_like(
        "deepinfra",
        Some("https://api.deepinfra.com/v1/openai"),
        &["DEEPINFRA_API_BASE"],
        &["DEEPINFRA_API_KEY"],
        &[],
    ),
    openai_like(
        "cerebras",
        Some("https://api.cerebras.ai/v1"),
        &["CEREBRAS_API_BASE"],
        &["CEREBRAS_API_KEY"],
        &[],
    ),
    openai_like(
        "nvidia_nim",
        Some("https://integrate.api.nvidia.com/v1"),
        &["NVIDIA_NIM_API_BASE"],
        &["NVIDIA_NIM_API_KEY"],
        &[],
    ),
    openai_like(
        "sambanova",
        Some("https://api.sambanova.ai/v1"),
        &["SAMBANOVA_API_BASE"],
        &["SAMBANOVA_API_KEY"],
        &[],
    ),
    openai_like(
        "github",
        Some("https://models.inference.ai.azure.com"),
        &["GITHUB_API_BASE"],
        &["GITHUB_API_KEY"],
        &[],
    ),
    openai_like(
        "anyscale",
        Some("https://api.endpoints.anyscale.com/v1"),
        &["ANYSCALE_API_BASE"],
        &["ANYSCALE_API_KEY"],
        &[],
    ),
    openai_like(
        "litellm_proxy",
        None,
        &["LITELLM_PROXY_API_BASE"],
        &["LITELLM_PROXY_API_KEY"],
        &[],
    ),
    // Jina AI: OpenAI-compatible embeddings, and `/v1/rerank` in Cohere's shape.
    openai_like(
        "jina_ai",
        Some("https://api.jina.ai/v1"),
        &["JINA_AI_API_BASE"],
        &["JINA_AI_API_KEY"],
        &[],
    ),
    ProviderSpec {
        name: "anthropic",
        wire: Wire::Anthropic,
        default_api_base: Some("https://api.anthropic.com"),
        api_base_env: &["ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"],
        api_key_env: &["ANTHROPIC_API_KEY"],
        unsupported_params: &[
            "n",
            "seed",
            "presence_penalty",
            "frequency_penalty",
            "logit_bias",
            "logprobs",
            "top_logprobs",
            "functions",
            "function_call",
            "modalities",
            "audio",
            "prediction",
            "store",
            "web_search_options",
            "verbosity",
            "prompt_cache_key",
            "safety_identifier",
        ],
    },
    bedrock_spec("bedrock"),
    bedrock_spec("bedrock_converse"),
    ProviderSpec {
        name: "vertex_ai",
        wire: Wire::VertexAi,
        default_api_base: Some(vertex::VERTEX_DEFAULT_API_BASE),
        api_base_env: &[],
        api_key_env: &[],
        unsupported_params: GOOGLE_UNSUPPORTED,
    },
    ProviderSpec {
        name: "vertex_ai_beta",
        wire: Wire::VertexAi,
        default_api_base: Some(vertex::VERTEX_DEFAULT_API_BASE),
        api_base_env: &[],
        api_key_env: &[],
        unsupported_params: GOOGLE_UNSUPPORTED,
    },
    ProviderSpec {
        name: "gemini",
        wire: Wire::Gemini,
        default_api_base: Some("https://generativelanguage.googleapis.com/v1beta"),
        api_base_env: &["GEMINI_API_BASE"],
        api_key_env: &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        unsupported_params: GOOGLE_UNSUPPORTED,
    },
    ProviderSpec {
        name: "cohere",
        wire: Wire::Cohere,
        default_api_base: Some("https://api.cohere.com"),
        api_base_env: &["COHERE_API_BASE"],
        api_key_env: &["COHERE_API_KEY", "CO_API_KEY"],
        unsupported_params: &[],
    },
    ProviderSpec {
        name: "cohere_chat",
        wire: Wire::Cohere,
        default_api_base: Some("https://api.cohere.com"),
        api_base_env: &["COHERE_API_BASE"],
        api_key_env: &["COHERE_API_KEY", "CO_API_KEY"],
        unsupported_params: &[],
    },
    ProviderSpec {
        name: "ollama",
        wire: Wire::Ollama,
        default_api_base: Some("http://localhost:11434"),
        api_base_env: &["OLLAMA_API_BASE"],
        api_key_env: &["OLLAMA_API_KEY"],
        unsupported_params: &[],
    },
    ProviderSpec {
        name: "ollama_chat",
        wire: Wire::Ollama,
        default_api_base: Some("http://localhost:11434"),
        api_base_env: &["OLLAMA_API_BASE"],
        api_key_env: &["OLLAMA_API_KEY"],
        unsupported_params: &[],
    },
    ProviderSpec {
        name: "huggingface",
        wire: Wire::HuggingFace,
        default_api_base: Some("https://router.huggingface.co/v1"),
        api_base_env: &["HF_API_BASE", "HUGGINGFACE_API_BASE"],
        api_key_env: &["HF_TOKEN", "HUGGINGFACE_API_KEY"],
        unsupported_params: &[],
    },
    // AI21's chat API (Jamba) speaks OpenAI's format at /studio/v1/chat/completions.
    openai_like(
        "ai21",
        Some("https://api.ai21.com/studio/v1"),
        &["AI21_API_BASE"],
        &["AI21_API_KEY"],
        &[],
    ),
    openai_like(
        "ai21_chat",
        Some("https://api.ai21.com/studio/v1"),
        &["AI21_API_BASE"],
        &["AI21_API_KEY"],
        &[],
    ),
    sagemaker::spec("sagemaker"),
    sagemaker::spec("sagemaker_chat"),
    native("watsonx"),
    replicate::spec(),
    gone("palm"),
    gone("petals"),
];

/// The OpenAI chat-completion parameters (LiteLLM's list for OpenAI chat models).
pub const OPENAI_CHAT_PARAMS: &[&str] = &[
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "max_tokens",
    "max_completion_tokens",
    "modalities",
    "prediction",
    "n",
    "presence_penalty",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "function_call",
    "functions",
    "parallel_tool_calls",
    "audio",
    "response_format",
    "user",
    "reasoning_effort",
    "service_tier",
    "store",
    "web_search_options",
];

/// The OpenAI embedding parameters.
pub const OPENAI_EMBEDDING_PARAMS: &[&str] = &["dimensions", "encoding_format", "user"];

/// The OpenAI parameters a provider's adapter does not take (refused, or dropped with
/// `drop_params`): the registry's list plus the adapter's own list, the constants the adapters
/// enforce. One table per provider, shown by `/utils/supported_openai_params` and
/// `/model_group/info`.
pub fn rejected_params(spec: &ProviderSpec) -> Vec<&'static str> {
    let adapter: &[&str] = match spec.wire {
        Wire::Cohere | Wire::Ollama => native::UNSUPPORTED_CHAT,
        Wire::Bedrock => bedrock::UNSUPPORTED,
        // The TGI container; `sagemaker_chat/` speaks OpenAI's chat.
        Wire::SageMaker if spec.name == "sagemaker" => sagemaker::UNSUPPORTED,
        Wire::Replicate => replicate::UNSUPPORTED,
        _ => &[],
    };
    let mut out: Vec<&'static str> = spec.unsupported_params.to_vec();
    for p in adapter {
        if !out.contains(p) {
            out.push(p);
        }
    }
    // Cohere, Ollama, Replicate and SageMaker's TGI answer one choice only (`n` other than 1 is
    // refused).
    let one_choice = matches!(spec.wire, Wire::Cohere | Wire::Ollama | Wire::Replicate)
        || (spec.wire == Wire::SageMaker && spec.name == "sagemaker");
    if one_choice && !out.contains(&"n") {
        out.push("n");
    }
    out
}

/// The OpenAI parameters a deployment of `spec` accepts for calls of `kind` (chat and
/// completions share the chat list); none for providers whose adapter this build lacks.
pub fn supported_openai_params(
    spec: &ProviderSpec,
    kind: crate::llm::CallKind,
) -> Vec<&'static str> {
    if matches!(spec.wire, Wire::Native | Wire::Retired) {
        return Vec::new();
    }
    let all = match kind {
        crate::llm::CallKind::Embedding => OPENAI_EMBEDDING_PARAMS,
        _ => OPENAI_CHAT_PARAMS,
    };
    let rejected = rejected_params(spec);
    all.iter()
        .copied()
        .filter(|p| !rejected.contains(p))
        .collect()
}

/// The provider for a `provider/` prefix.
pub fn by_name(name: &str) -> Option<&'static ProviderSpec> {
    PROVIDERS.iter().find(|p| p.name == name)
}

/// A request ready to send: URL, headers and body bytes. Never logged as is: the headers carry the
/// provider credential (see [`PreparedRequest::redacted_headers`]).
pub struct PreparedRequest {
    pub url: String,
    pub headers: Vec<(Cow<'static, str>, String)>,
    pub body: Bytes,
}

impl PreparedRequest {
    /// A request with a JSON body.
    pub fn json(
        url: String,
        headers: Vec<(Cow<'static, str>, String)>,
        body: &impl serde::Serialize,
    ) -> Result<Self, GatewayError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| GatewayError::internal(format!("cannot encode upstream request: {e}")))?;
        Ok(Self {
            url,
            headers,
            body: Bytes::from(body),
        })
    }

    /// Headers for debug logs: names kept, every value masked (a configured header may carry a
    /// credential under any name).
    pub fn redacted_headers(&self) -> Vec<(String, String)> {
        crate::secret::mask_headers(&self.headers)
    }
}

/// A provider response translated to the internal (OpenAI) shape.
pub struct TranslatedResponse {
    pub body: Bytes,
    pub usage: Option<Usage>,
    /// The response's `id`, when the adapter read it anyway (else the pipeline reads it from the
    /// body for the spend log).
    pub response_id: Option<String>,
}

impl TranslatedResponse {
    /// A `chat.completion` an adapter built: its JSON, its usage, and its id for the spend log.
    pub fn completion(out: &ChatCompletion<'_>, usage: Usage) -> Result<Self, GatewayError> {
        Ok(Self {
            body: encode(out)?,
            usage: Some(usage),
            response_id: Some(out.id.to_string()),
        })
    }

    /// An embedding list an adapter built; its usage is the list's prompt tokens.
    pub fn embeddings(out: &EmbeddingList<'_>) -> Result<Self, GatewayError> {
        let prompt = out.usage.prompt_tokens;
        Ok(Self {
            body: encode(out)?,
            usage: Some(native::usage(prompt, 0, 0)),
            response_id: None,
        })
    }
}

/// The usage of an OpenAI images response (GPT Image models' `input_tokens` / `output_tokens`) in
/// the internal terms: input as prompt tokens, output as completion tokens. No usage counts 0.
pub fn image_usage(body: &[u8]) -> Result<Usage, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default)]
        usage: Option<tollgate_wire::openai::ImageUsage>,
    }
    let usage = serde_json::from_slice::<Probe>(body)?
        .usage
        .unwrap_or_default();
    Ok(native::usage(usage.input_tokens, usage.output_tokens, 0))
}

fn encode(out: &impl serde::Serialize) -> Result<Bytes, GatewayError> {
    serde_json::to_vec(out)
        .map(Bytes::from)
        .map_err(|e| GatewayError::internal(format!("cannot encode response: {e}")))
}

/// The assistant message of a completion: the text (`null` when there is none but tool calls),
/// the reasoning text when there is some, and the tool calls.
pub fn assistant_message(
    text: String,
    reasoning: String,
    tool_calls: Vec<ToolCall<'_>>,
) -> AssistantMessage<'_> {
    let content = (!text.is_empty() || tool_calls.is_empty()).then(|| text.into());
    let mut message = AssistantMessage::new(content);
    message.reasoning_content = (!reasoning.is_empty()).then(|| reasoning.into());
    message.tool_calls = tool_calls;
    message
}

/// Now, in unix seconds: the `created` of the responses and chunks adapters write.
pub fn now_secs() -> u64 {
    (crate::time::now_ms() / 1000).max(0) as u64
}

/// A provider's error answer: its status, `retry-after` and body, from the deployment's target.
#[derive(Clone, Copy)]
pub struct ErrorReply<'a> {
    pub target: &'a Target,
    pub status: u16,
    pub retry_after: Option<std::time::Duration>,
    pub body: &'a [u8],
}

impl<'a> ErrorReply<'a> {
    /// Target, status, `retry-after` and body.
    pub fn parts(&self) -> (&'a Target, u16, Option<std::time::Duration>, &'a [u8]) {
        (self.target, self.status, self.retry_after, self.body)
    }
}

/// An attempt whose provider answered with a job rather than its result (Replicate's
/// predictions): what [`ProviderAdapter::follow_up`] needs to follow the job to its end.
pub struct FollowUp<'a> {
    /// The deployment called.
    pub deployment: &'a Deployment,
    /// Its target for this call (URL, key).
    pub target: &'a Target,
    /// The request as the adapter prepared it (chat for a Responses request).
    pub req: &'a LlmRequest,
    /// The provider's 2xx answer to the request [`ProviderAdapter::prepare`] wrote, unread.
    pub created: &'a mut crate::upstream::UpstreamResponse,
    /// When the attempt sent its request.
    pub started: std::time::Instant,
    /// How long the attempt may take from `started` (for a stream: until the stream's head).
    pub timeout: std::time::Duration,
}

/// The end of a follow-up: the provider's final answer, translated as a first answer would be.
pub enum FollowedUp {
    /// A body for [`ProviderAdapter::translate_response`].
    Body(Bytes),
    /// The answer to a streaming request: its bytes, and the translator that reads them when the
    /// follow-up brings its own (one that holds the job's state, such as the cancellation of a
    /// job left behind); `None`: the translator of [`ProviderAdapter::stream_translator_for`].
    Stream {
        body: crate::outcome::ByteStream,
        translator: Option<Box<dyn stream::StreamTranslator>>,
    },
}

/// One provider's translation, in both directions.
///
/// Adapters are stateless statics; everything a call needs comes from the deployment, the target
/// and the request.
pub trait ProviderAdapter {
    /// Internal request → provider request for this deployment.
    fn prepare(
        &self,
        deployment: &Deployment,
        target: &Target,
        req: &LlmRequest,
    ) -> Result<PreparedRequest, GatewayError>;

    /// Whether this adapter translates `kind` (chat, completions and embeddings unless it says
    /// more); the pipeline answers 400 "… is not supported for provider X" for the rest.
    fn supports(&self, kind: CallKind) -> bool {
        matches!(
            kind,
            CallKind::Chat | CallKind::Completion | CallKind::Embedding
        )
    }

    /// Provider success body → internal (OpenAI) body and usage.
    fn translate_response(
        &self,
        req: &LlmRequest,
        body: Bytes,
    ) -> Result<TranslatedResponse, GatewayError>;

    /// Provider error → gateway error (status, OpenAI type, and the class the router acts on).
    fn error(&self, reply: &ErrorReply<'_>) -> GatewayError;

    /// [`Self::error`] of a reply given in parts.
    fn translate_error(
        &self,
        target: &Target,
        status: u16,
        retry_after: Option<std::time::Duration>,
        body: &[u8],
    ) -> GatewayError {
        self.error(&ErrorReply {
            target,
            status,
            retry_after,
            body,
        })
    }

    /// [`Self::stream_translator`] for a call on `deployment` (adapters whose stream format
    /// depends on the deployment's settings override this one).
    fn stream_translator_for(
        &self,
        _deployment: &Deployment,
        target: &Target,
        req: &LlmRequest,
    ) -> Option<Box<dyn stream::StreamTranslator>> {
        self.stream_translator(target, req)
    }

    /// The translator for this provider's stream, or `None` when the provider already streams
    /// OpenAI `chat.completion.chunk` events.
    fn stream_translator(
        &self,
        _target: &Target,
        _req: &LlmRequest,
    ) -> Option<Box<dyn stream::StreamTranslator>> {
        None
    }

    /// Final, possibly asynchronous, step before sending: credentials that must be fetched or
    /// computed over the finished request (OAuth tokens, request signatures). The default sends
    /// the request as prepared.
    fn authorize<'a>(
        &'a self,
        _deployment: &'a Deployment,
        _target: &'a Target,
        prepared: PreparedRequest,
    ) -> LocalBoxFuture<'a, Result<PreparedRequest, GatewayError>> {
        Box::pin(std::future::ready(Ok(prepared)))
    }

    /// For providers whose answer is a job rather than its result: the future that follows the
    /// job from the provider's (2xx) answer to its final answer, polling or streaming it; its
    /// errors fail the attempt as an error answer would. `None` (the default): the answer is the
    /// result.
    fn follow_up<'a>(
        &'a self,
        _call: FollowUp<'a>,
    ) -> Option<LocalBoxFuture<'a, Result<FollowedUp, GatewayError>>> {
        None
    }
}

/// The adapter for a wire format, or `None` when this build has no adapter for it.
pub fn adapter_for(wire: Wire) -> Option<&'static dyn ProviderAdapter> {
    match wire {
        Wire::OpenAi => Some(&openai::OPENAI),
        Wire::Azure => Some(&openai::AZURE),
        Wire::Anthropic => Some(&anthropic::ANTHROPIC),
        Wire::Bedrock => Some(&bedrock::BEDROCK),
        Wire::Cohere => Some(&cohere::COHERE),
        Wire::Ollama => Some(&ollama::OLLAMA),
        Wire::HuggingFace => Some(&huggingface::HUGGINGFACE),
        Wire::Gemini => Some(&gemini::GEMINI),
        Wire::VertexAi => Some(&vertex::VERTEX),
        Wire::SageMaker => Some(&sagemaker::SAGEMAKER),
        Wire::Replicate => Some(&replicate::REPLICATE),
        Wire::Native | Wire::Retired => None,
    }
}

/// Helpers the adapters' unit tests share.
#[cfg(test)]
pub(crate) mod testing {
    use serde_json::Value;

    use crate::config::ProxyConfig;
    use crate::deployment::{CliDefaults, Deployment};
    use crate::llm::{CallKind, LlmRequest};

    /// The first deployment of a config.
    pub fn deployment_from(yaml: &str) -> Deployment {
        let cfg = ProxyConfig::parse(yaml, "t").expect("valid");
        Deployment::from_entry(&cfg.model_list[0], &CliDefaults::default())
    }

    /// A deployment of model group `g` with these `litellm_params` (a YAML flow mapping).
    pub fn deployment(params: &str) -> Deployment {
        deployment_from(&format!(
            "model_list:\n  - model_name: g\n    litellm_params: {params}\n"
        ))
    }

    /// A client request of this kind with this body.
    pub fn request(kind: CallKind, body: Value) -> LlmRequest {
        LlmRequest::parse(kind, body.to_string().as_bytes(), None).expect("valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_are_unique_and_openai_like_ones_have_a_base_or_env() {
        for (i, p) in PROVIDERS.iter().enumerate() {
            assert!(
                PROVIDERS[i + 1..].iter().all(|q| q.name != p.name),
                "duplicate {}",
                p.name
            );
        }
        for name in [
            "openai",
            "groq",
            "together_ai",
            "mistral",
            "deepseek",
            "fireworks_ai",
            "openrouter",
            "perplexity",
            "xai",
            "lm_studio",
            "xinference",
        ] {
            let p = by_name(name).expect(name);
            assert_eq!(p.wire, Wire::OpenAi);
            assert!(p.default_api_base.is_some(), "{name}");
        }
        for name in ["hosted_vllm", "vllm"] {
            assert!(!by_name(name).expect(name).api_base_env.is_empty());
        }
    }

    #[test]
    fn retired_providers_and_models_say_what_replaces_them() {
        let palm = by_name("palm").expect("palm");
        assert!(retired(palm, "chat-bison").unwrap().contains("gemini/"));
        let petals = by_name("petals").expect("petals");
        assert!(retired(petals, "petals-team/StableBeluga2")
            .unwrap()
            .contains("OpenAI-compatible"));
        let ai21 = by_name("ai21").expect("ai21");
        for old in ["j2-light", "j2-mid", "J2-Ultra"] {
            assert!(retired(ai21, old).unwrap().contains("jamba"), "{old}");
        }
        assert_eq!(retired(ai21, "jamba-mini-1.7"), None);
        assert_eq!(retired(by_name("openai").unwrap(), "j2-light"), None);
    }
}

/// A provider's answer that is not the JSON its API promises: a 502 the router may retry.
pub(crate) fn invalid_body(e: impl std::fmt::Display) -> GatewayError {
    GatewayError::Upstream {
        kind: crate::error::UpstreamErrorKind::Server,
        status: 502,
        message: format!("Provider returned a body that is not valid JSON: {e}"),
        code: None,
        param: None,
        retry_after: None,
    }
}
