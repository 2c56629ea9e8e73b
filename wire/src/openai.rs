//! OpenAI's response shapes on the wire: `chat.completion`, `chat.completion.chunk`,
//! `text_completion` and the embedding `list`. The gateway's provider adapters write them (the
//! gateway's internal model is OpenAI-shaped), the mock provider answers with them.
//!
//! Fields serialize in OpenAI's order; optional ones are left out when empty, and `extra` holds
//! what a writer adds beyond them (it serializes after the typed fields and collects unknown
//! fields when reading). Strings are [`Cow`]s so a writer can borrow what it already holds.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

/// The role of every message and first delta the writers produce.
pub const ASSISTANT: &str = "assistant";

/// Token usage of a completion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
    /// Anthropic's cache counts, passed on for cost accounting (as LiteLLM does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    #[serde(default)]
    pub cached_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletionTokensDetails {
    #[serde(default)]
    pub reasoning_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_prediction_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_prediction_tokens: Option<u64>,
}

impl Usage {
    /// Counts without the details objects (legacy completions); the total is their sum.
    pub fn basic(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            ..Self::default()
        }
    }

    /// Counts with the cached and reasoning token details, as chat completions report them.
    pub fn with_details(self, cached_tokens: u64, reasoning_tokens: u64) -> Self {
        Self {
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens,
                ..PromptTokensDetails::default()
            }),
            completion_tokens_details: Some(CompletionTokensDetails {
                reasoning_tokens,
                ..CompletionTokensDetails::default()
            }),
            ..self
        }
    }
}

/// A function tool call: whole in a message, or a piece of one in a stream delta (with its
/// `index`; the first piece has the `id`, `type` and `name`, later ones only `arguments`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Cow<'a, str>>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Cow<'a, str>>,
    pub function: FunctionCall<'a>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Cow<'a, str>>,
    #[serde(default)]
    pub arguments: Cow<'a, str>,
}

impl<'a> ToolCall<'a> {
    /// A whole call of function `name` with JSON-encoded `arguments`.
    pub fn function(
        id: impl Into<Cow<'a, str>>,
        name: impl Into<Cow<'a, str>>,
        arguments: impl Into<Cow<'a, str>>,
    ) -> Self {
        Self {
            index: None,
            id: Some(id.into()),
            kind: Some(Cow::Borrowed("function")),
            function: FunctionCall {
                name: Some(name.into()),
                arguments: arguments.into(),
            },
        }
    }

    /// A later piece of the streamed call at `index`: more of its arguments.
    pub fn arguments(index: u32, arguments: impl Into<Cow<'a, str>>) -> Self {
        Self {
            index: Some(index),
            id: None,
            kind: None,
            function: FunctionCall {
                name: None,
                arguments: arguments.into(),
            },
        }
    }

    /// This call as the first piece of the streamed call at `index`.
    pub fn at(self, index: u32) -> Self {
        Self {
            index: Some(index),
            ..self
        }
    }
}

/// The assistant message of a `chat.completion` choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessage<'a> {
    pub role: Cow<'a, str>,
    /// Always present: `null` when the answer is only tool calls.
    pub content: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<Cow<'a, str>>,
    /// Anthropic's thinking blocks, as LiteLLM passes them on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thinking_blocks: Vec<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl<'a> AssistantMessage<'a> {
    pub fn new(content: Option<Cow<'a, str>>) -> Self {
        Self {
            role: Cow::Borrowed(ASSISTANT),
            content,
            tool_calls: Vec::new(),
            reasoning_content: None,
            thinking_blocks: Vec::new(),
            extra: Map::new(),
        }
    }
}

/// One choice of a `chat.completion`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice<'a> {
    pub index: u32,
    pub message: AssistantMessage<'a>,
    /// Always present; `null` unless log probabilities were asked for.
    #[serde(default)]
    pub logprobs: Option<Value>,
    pub finish_reason: Option<Cow<'a, str>>,
}

impl<'a> Choice<'a> {
    pub fn new(
        index: u32,
        message: AssistantMessage<'a>,
        finish_reason: impl Into<Cow<'a, str>>,
    ) -> Self {
        Self {
            index,
            message,
            logprobs: None,
            finish_reason: Some(finish_reason.into()),
        }
    }
}

/// What `chat.completion`, `chat.completion.chunk` and `text_completion` objects share; they
/// differ in their choices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion<'a, C> {
    pub id: Cow<'a, str>,
    pub object: Cow<'a, str>,
    pub created: u64,
    pub model: Cow<'a, str>,
    pub choices: Vec<C>,
    /// Absent; `null` (`Some(None)`: a stream's chunks but the last when the client asked for
    /// usage); or the usage (a whole completion, or a stream's last chunk, with no choices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<Usage>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A `chat.completion`.
pub type ChatCompletion<'a> = Completion<'a, Choice<'a>>;

/// A `chat.completion.chunk`.
pub type ChatCompletionChunk<'a> = Completion<'a, ChunkChoice<'a>>;

/// A `text_completion` (a whole one, or a streamed chunk of one).
pub type TextCompletion<'a> = Completion<'a, TextChoice<'a>>;

impl<'a> Completion<'a, Choice<'a>> {
    pub fn new(
        id: impl Into<Cow<'a, str>>,
        created: u64,
        model: impl Into<Cow<'a, str>>,
        choices: Vec<Choice<'a>>,
        usage: Usage,
    ) -> Self {
        Self {
            id: id.into(),
            object: Cow::Borrowed("chat.completion"),
            created,
            model: model.into(),
            choices,
            usage: Some(Some(usage)),
            extra: Map::new(),
        }
    }
}

/// What a `chat.completion.chunk` choice adds to the message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Cow<'a, str>>,
    /// Absent, or `Some(None)`: `"content": null` (a first delta that starts with tool calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Option<Cow<'a, str>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall<'a>>,
}

impl<'a> Delta<'a> {
    /// The first delta of a choice: `{"role": "assistant", "content": ""}`.
    pub fn start() -> Self {
        Self::text("").with_role()
    }

    /// More of the answer's text.
    pub fn text(text: impl Into<Cow<'a, str>>) -> Self {
        Self {
            content: Some(Some(text.into())),
            ..Self::default()
        }
    }

    /// More of the reasoning text.
    pub fn reasoning(text: impl Into<Cow<'a, str>>) -> Self {
        Self {
            reasoning_content: Some(text.into()),
            ..Self::default()
        }
    }

    /// A piece of a tool call.
    pub fn tool_call(call: ToolCall<'a>) -> Self {
        Self {
            tool_calls: vec![call],
            ..Self::default()
        }
    }

    /// This delta as a choice's first: with the role, and `content: null` when it starts with
    /// tool calls.
    pub fn with_role(self) -> Self {
        let content = match self.content {
            None if !self.tool_calls.is_empty() => Some(None),
            content => content,
        };
        Self {
            role: Some(Cow::Borrowed(ASSISTANT)),
            content,
            ..self
        }
    }
}

/// One choice of a `chat.completion.chunk`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice<'a> {
    pub index: u32,
    pub delta: Delta<'a>,
    #[serde(default)]
    pub logprobs: Option<Value>,
    pub finish_reason: Option<Cow<'a, str>>,
}

impl<'a> Completion<'a, ChunkChoice<'a>> {
    /// A chunk with one choice.
    pub fn delta(
        id: impl Into<Cow<'a, str>>,
        created: u64,
        model: impl Into<Cow<'a, str>>,
        index: u32,
        delta: Delta<'a>,
        finish_reason: Option<&'a str>,
    ) -> Self {
        Self {
            id: id.into(),
            object: Cow::Borrowed("chat.completion.chunk"),
            created,
            model: model.into(),
            choices: vec![ChunkChoice {
                index,
                delta,
                logprobs: None,
                finish_reason: finish_reason.map(Cow::Borrowed),
            }],
            usage: None,
            extra: Map::new(),
        }
    }

    /// The final usage chunk (`choices: []`), as OpenAI sends it with `include_usage`.
    pub fn usage(
        id: impl Into<Cow<'a, str>>,
        created: u64,
        model: impl Into<Cow<'a, str>>,
        usage: Usage,
    ) -> Self {
        Self {
            id: id.into(),
            object: Cow::Borrowed("chat.completion.chunk"),
            created,
            model: model.into(),
            choices: Vec::new(),
            usage: Some(Some(usage)),
            extra: Map::new(),
        }
    }
}

/// One choice of a `text_completion`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextChoice<'a> {
    pub text: Cow<'a, str>,
    pub index: u32,
    #[serde(default)]
    pub logprobs: Option<Value>,
    pub finish_reason: Option<Cow<'a, str>>,
}

/// An embedding: floats, or a base64 string of little-endian `f32`s (`encoding_format`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingVector {
    /// Numbers as a provider sent them.
    Float(Vec<Number>),
    Base64(String),
    /// `f32`s a writer computed (written as `f32` prints them; read back as `Float`).
    Float32(Vec<f32>),
}

impl EmbeddingVector {
    /// A provider's vector as JSON: a list of numbers (anything else in it is dropped) or a
    /// base64 string.
    pub fn from_json(v: Value) -> Self {
        match v {
            Value::String(s) => Self::Base64(s),
            Value::Array(items) => Self::Float(
                items
                    .into_iter()
                    .filter_map(|x| match x {
                        Value::Number(n) => Some(n),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => Self::Float(Vec::new()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding<'a> {
    pub object: Cow<'a, str>,
    pub index: usize,
    pub embedding: EmbeddingVector,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingUsage {
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}

/// An embedding `list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingList<'a> {
    pub object: Cow<'a, str>,
    pub data: Vec<Embedding<'a>>,
    pub model: Cow<'a, str>,
    pub usage: EmbeddingUsage,
}

impl<'a> EmbeddingList<'a> {
    /// The list of `vectors`, in order, for `prompt_tokens` of input.
    pub fn new(
        model: impl Into<Cow<'a, str>>,
        vectors: impl IntoIterator<Item = EmbeddingVector>,
        prompt_tokens: u64,
    ) -> Self {
        Self {
            object: Cow::Borrowed("list"),
            data: vectors
                .into_iter()
                .enumerate()
                .map(|(index, embedding)| Embedding {
                    object: Cow::Borrowed("embedding"),
                    index,
                    embedding,
                })
                .collect(),
            model: model.into(),
            usage: EmbeddingUsage {
                prompt_tokens,
                total_tokens: prompt_tokens,
            },
        }
    }
}

/// One generated image: base64 data (`b64_json`) or a link (`url`), with the prompt as the model
/// rewrote it (DALL·E 3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Image<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b64_json: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revised_prompt: Option<Cow<'a, str>>,
}

/// `usage` of an image response (GPT Image models): text and image input tokens, image output
/// tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ImageUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(default)]
    pub input_tokens_details: ImageInputTokens,
}

/// `usage.input_tokens_details` of an image response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ImageInputTokens {
    #[serde(default)]
    pub text_tokens: u64,
    #[serde(default)]
    pub image_tokens: u64,
}

/// The answer of `/images/generations` and `/images/edits`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagesResponse<'a> {
    pub created: u64,
    pub data: Vec<Image<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ImageUsage>,
}

/// One input's moderation verdict: flagged, and per category a verdict and a score (categories
/// kept as maps, so new ones pass through).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModerationResult {
    pub flagged: bool,
    pub categories: Map<String, Value>,
    pub category_scores: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_applied_input_types: Option<Map<String, Value>>,
}

/// The answer of `/moderations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModerationResponse<'a> {
    pub id: Cow<'a, str>,
    pub model: Cow<'a, str>,
    pub results: Vec<ModerationResult>,
}

/// OpenAI's moderation categories, in its order.
pub const MODERATION_CATEGORIES: [&str; 13] = [
    "sexual",
    "sexual/minors",
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "violence",
    "violence/graphic",
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chat_completion_serializes_in_openai_order() {
        let mut message = AssistantMessage::new(None);
        message
            .tool_calls
            .push(ToolCall::function("call_1", "f", "{}"));
        let out = ChatCompletion::new(
            "chatcmpl-1",
            7,
            "m",
            vec![Choice::new(0, message, "tool_calls")],
            Usage::basic(2, 3).with_details(1, 0),
        );
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            r#"{"id":"chatcmpl-1","object":"chat.completion","created":7,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5,"prompt_tokens_details":{"cached_tokens":1},"completion_tokens_details":{"reasoning_tokens":0}}}"#
        );
        let back: ChatCompletion =
            serde_json::from_str(&serde_json::to_string(&out).unwrap()).expect("reads back");
        assert_eq!(back, out);
    }

    #[test]
    fn deltas_and_chunks() {
        let first = Delta::tool_call(ToolCall::function("c", "f", "").at(0)).with_role();
        assert_eq!(
            serde_json::to_value(&first).unwrap(),
            json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}]})
        );
        assert_eq!(
            serde_json::to_string(&Delta::start()).unwrap(),
            r#"{"role":"assistant","content":""}"#
        );
        let chunk = ChatCompletionChunk::delta("x", 1, "m", 0, Delta::default(), Some("stop"));
        assert_eq!(
            serde_json::to_string(&chunk).unwrap(),
            r#"{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}"#
        );
        let last = ChatCompletionChunk::usage("x", 1, "m", Usage::basic(1, 1));
        assert_eq!(
            serde_json::to_value(&last).unwrap()["usage"]["total_tokens"],
            2
        );
    }

    #[test]
    fn embeddings_keep_the_numbers_as_given() {
        let list = EmbeddingList::new(
            "e",
            [
                EmbeddingVector::from_json(json!([0, 0.25])),
                EmbeddingVector::from_json(json!("AAAA")),
            ],
            3,
        );
        assert_eq!(
            serde_json::to_string(&list).unwrap(),
            r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0,0.25]},{"object":"embedding","index":1,"embedding":"AAAA"}],"model":"e","usage":{"prompt_tokens":3,"total_tokens":3}}"#
        );
        assert_eq!(
            serde_json::to_string(&EmbeddingVector::Float32(vec![0.1])).unwrap(),
            "[0.1]"
        );
    }
}
