//! Local token counts (`POST /utils/token_counter`): OpenAI's BPE encodings (tiktoken's, from the
//! `tiktoken-rs` crate, which compiles the encoding files in: nothing is fetched at run time).
//!
//! The encoding is chosen as LiteLLM chooses it: the model's own encoding when OpenAI publishes
//! one (`gpt-4o` → `o200k_base`, `gpt-4` → `cl100k_base`…), else `cl100k_base`. Where LiteLLM would
//! load a Hugging Face tokenizer (a deployment's `model_info.custom_tokenizer`, Cohere Command-R,
//! Llama 2 and 3, pre-3 Claude models), this gateway cannot (it never downloads tokenizers): it
//! counts with `cl100k_base` and says so in the answer ([`Count::fallback_from`]).
//!
//! Chat messages are counted with OpenAI's published formula, as LiteLLM does: 3 tokens per
//! message, the tokens of each of its string fields, 1 more for a `name`, and 3 for the reply's
//! priming; text parts of a content list are counted, and each image part adds 85 tokens (the
//! low-detail price; the real cost of a high-detail image depends on its size, which is not
//! fetched).

use serde_json::Value;
use tiktoken_rs::tokenizer::{get_tokenizer, Tokenizer};
use tiktoken_rs::CoreBPE;

/// LiteLLM's `tokenizer_type` for tiktoken encodings.
pub const OPENAI_TOKENIZER: &str = "openai_tokenizer";

/// Tokens an image part adds (OpenAI's low-detail price).
const IMAGE_TOKENS: usize = 85;

/// The encoding a count used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub encoding: Tokenizer,
    /// The tokenizer LiteLLM would have used instead, when it is one this gateway cannot load.
    pub fallback_from: Option<String>,
}

/// A count: the tokens and how they were counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub total_tokens: usize,
    pub encoding: &'static str,
    pub fallback_from: Option<String>,
}

/// The name tiktoken gives an encoding.
pub fn encoding_name(t: Tokenizer) -> &'static str {
    match t {
        Tokenizer::O200kHarmony => "o200k_harmony",
        Tokenizer::O200kBase => "o200k_base",
        Tokenizer::Cl100kBase => "cl100k_base",
        Tokenizer::P50kBase => "p50k_base",
        Tokenizer::R50kBase => "r50k_base",
        Tokenizer::P50kEdit => "p50k_edit",
        Tokenizer::Gpt2 => "gpt2",
    }
}

fn bpe(t: Tokenizer) -> &'static CoreBPE {
    match t {
        Tokenizer::O200kHarmony => tiktoken_rs::o200k_harmony_singleton(),
        Tokenizer::O200kBase => tiktoken_rs::o200k_base_singleton(),
        Tokenizer::Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
        Tokenizer::P50kBase => tiktoken_rs::p50k_base_singleton(),
        Tokenizer::P50kEdit => tiktoken_rs::p50k_edit_singleton(),
        Tokenizer::R50kBase | Tokenizer::Gpt2 => tiktoken_rs::r50k_base_singleton(),
    }
}

/// The Hugging Face tokenizer LiteLLM loads for `model` (its `_select_tokenizer`), if any.
fn litellm_hf_tokenizer(model: &str) -> Option<&'static str> {
    let m = model.to_ascii_lowercase();
    if m.contains("command-r") {
        Some("Xenova/c4ai-command-r-v01-tokenizer")
    } else if m.contains("llama-3") || m.contains("llama3") {
        Some("Xenova/llama-3-tokenizer")
    } else if m.contains("llama-2") || m.contains("llama2") {
        Some("hf-internal-testing/llama-tokenizer")
    } else if m.starts_with("claude") && !m.contains("claude-3") && !m.contains("claude-4") {
        // LiteLLM's bundled Claude tokenizer covers the models before Claude 3 only.
        let newer = ["claude-sonnet", "claude-opus", "claude-haiku"];
        (!newer.iter().any(|n| m.starts_with(n))).then_some("claude tokenizer (Claude 1/2)")
    } else {
        None
    }
}

/// The encoding for `model` (the provider's model name, without its `provider/` prefix);
/// `custom_tokenizer` is a deployment's `model_info.custom_tokenizer`.
pub fn choose(model: &str, custom_tokenizer: Option<&Value>) -> Choice {
    if let Some(custom) = custom_tokenizer {
        let id = custom
            .get("identifier")
            .and_then(Value::as_str)
            .or_else(|| custom.as_str())
            .unwrap_or("custom_tokenizer");
        return Choice {
            encoding: Tokenizer::Cl100kBase,
            fallback_from: Some(format!("huggingface_tokenizer {id}")),
        };
    }
    if let Some(t) = get_tokenizer(model) {
        return Choice {
            encoding: t,
            fallback_from: None,
        };
    }
    Choice {
        encoding: Tokenizer::Cl100kBase,
        fallback_from: litellm_hf_tokenizer(model).map(|hf| format!("huggingface_tokenizer {hf}")),
    }
}

fn count_text(bpe: &CoreBPE, text: &str) -> usize {
    // Special-token text counts as ordinary text (tiktoken's `disallowed_special=()`).
    bpe.encode_ordinary(text).len()
}

/// The tokens of one message's `content` (a string or a list of parts).
fn count_content(bpe: &CoreBPE, content: &Value) -> usize {
    match content {
        Value::String(s) => count_text(bpe, s),
        Value::Array(parts) => parts
            .iter()
            .map(|part| match part.get("type").and_then(Value::as_str) {
                Some("text") => part
                    .get("text")
                    .and_then(Value::as_str)
                    .map_or(0, |t| count_text(bpe, t)),
                Some("image_url") | Some("image") => IMAGE_TOKENS,
                _ => 0,
            })
            .sum(),
        _ => 0,
    }
}

/// The tokens of a chat conversation (OpenAI's formula).
pub fn count_messages(choice: &Choice, messages: &[Value]) -> Count {
    let bpe = bpe(choice.encoding);
    let mut total = 0;
    for message in messages {
        total += 3;
        let Some(fields) = message.as_object() else {
            continue;
        };
        for (key, value) in fields {
            match (key.as_str(), value) {
                ("content", v) => total += count_content(bpe, v),
                ("tool_calls", Value::Array(calls)) => {
                    for call in calls {
                        if let Some(f) = call.get("function") {
                            for field in ["name", "arguments"] {
                                if let Some(s) = f.get(field).and_then(Value::as_str) {
                                    total += count_text(bpe, s);
                                }
                            }
                        }
                    }
                }
                ("name", Value::String(s)) => total += count_text(bpe, s) + 1,
                (_, Value::String(s)) => total += count_text(bpe, s),
                _ => {}
            }
        }
    }
    total += 3;
    Count {
        total_tokens: total,
        encoding: encoding_name(choice.encoding),
        fallback_from: choice.fallback_from.clone(),
    }
}

/// The tokens of a plain prompt (no message overhead).
pub fn count_prompt(choice: &Choice, prompt: &str) -> Count {
    Count {
        total_tokens: count_text(bpe(choice.encoding), prompt),
        encoding: encoding_name(choice.encoding),
        fallback_from: choice.fallback_from.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_tiktoken_counts() {
        let gpt4o = choose("gpt-4o", None);
        assert_eq!(gpt4o.encoding, Tokenizer::O200kBase);
        assert_eq!(count_prompt(&gpt4o, "hello world").total_tokens, 2);
        let gpt4 = choose("gpt-4", None);
        assert_eq!(gpt4.encoding, Tokenizer::Cl100kBase);
        assert_eq!(count_prompt(&gpt4, "hello world").total_tokens, 2);
        // Special-token text is ordinary text.
        assert!(count_prompt(&gpt4, "<|endoftext|>").total_tokens > 1);
        // 3 + "user" (1) + "hello world" (2) + 3
        let msgs = [json!({"role": "user", "content": "hello world"})];
        assert_eq!(count_messages(&gpt4o, &msgs).total_tokens, 9);
        let named = [
            json!({"role": "user", "name": "bob", "content": [{"type": "text", "text": "hello world"}]}),
        ];
        assert_eq!(count_messages(&gpt4o, &named).total_tokens, 11);
    }

    #[test]
    fn unknown_models_fall_back_to_cl100k_and_say_so() {
        let plain = choose("some-private-model", None);
        assert_eq!(plain.encoding, Tokenizer::Cl100kBase);
        assert_eq!(plain.fallback_from, None);
        let llama = choose("meta-llama/Llama-3-8b", None);
        assert_eq!(llama.encoding, Tokenizer::Cl100kBase);
        assert!(llama.fallback_from.unwrap().contains("llama-3"));
        let custom = choose(
            "deepseek-chat",
            Some(&json!({"identifier": "deepseek-ai/DeepSeek-V3-Base", "revision": "main"})),
        );
        assert_eq!(
            custom.fallback_from.as_deref(),
            Some("huggingface_tokenizer deepseek-ai/DeepSeek-V3-Base")
        );
        assert_eq!(choose("claude-sonnet-4-5", None).fallback_from, None);
        assert!(choose("claude-2.1", None).fallback_from.is_some());
    }
}
