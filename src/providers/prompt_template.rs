//! Custom prompt templates for raw-completion models (LiteLLM's `initial_prompt_value`, `roles`,
//! `final_prompt_value`, `bos_token`, `eos_token` in `litellm_params`): the chat messages become
//! one prompt, as LiteLLM's `custom_prompt` writes it. A `bos_token` opens the prompt and every
//! system or user turn that follows an assistant turn; an `eos_token` closes each assistant turn;
//! each message is its role's `pre_message`, its text, its role's `post_message`.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// The `litellm_params` that make a prompt template.
pub const KEYS: &[&str] = &[
    "initial_prompt_value",
    "roles",
    "final_prompt_value",
    "bos_token",
    "eos_token",
];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PromptTemplate {
    initial: String,
    last: String,
    bos: String,
    eos: String,
    /// Role → (pre_message, post_message).
    roles: HashMap<String, (String, String)>,
}

impl PromptTemplate {
    /// The template a deployment's `litellm_params` give, when they name any of [`KEYS`].
    pub fn from_params(get: impl Fn(&str) -> Option<Value>) -> Option<Self> {
        if KEYS.iter().all(|k| get(k).is_none_or(|v| v.is_null())) {
            return None;
        }
        let text = |k: &str| {
            get(k)
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        };
        let roles = get("roles")
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default()
            .into_iter()
            .map(|(role, v)| {
                let part = |k: &str| {
                    v.get(k)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                (role, (part("pre_message"), part("post_message")))
            })
            .collect();
        Some(Self {
            initial: text("initial_prompt_value"),
            last: text("final_prompt_value"),
            bos: text("bos_token"),
            eos: text("eos_token"),
            roles,
        })
    }

    /// The prompt for OpenAI chat `messages` (text parts joined; other parts left out).
    pub fn render(&self, messages: &[Value]) -> String {
        let mut prompt = format!("{}{}", self.bos, self.initial);
        let mut bos_open = true;
        for m in messages {
            let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
            if matches!(role, "system" | "user" | "human") && !bos_open {
                prompt.push_str(&self.bos);
                bos_open = true;
            }
            let (pre, post) = self
                .roles
                .get(role)
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .unwrap_or(("", ""));
            prompt.push_str(pre);
            prompt.push_str(&message_text(m));
            prompt.push_str(post);
            if role == "assistant" {
                prompt.push_str(&self.eos);
                bos_open = false;
            }
        }
        prompt.push_str(&self.last);
        prompt
    }
}

/// A message's text: its string content, or its text parts joined.
pub fn message_text(m: &Value) -> String {
    match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// The template of a deployment's `litellm_params` map.
pub fn of_params(params: &Map<String, Value>) -> Option<PromptTemplate> {
    PromptTemplate::from_params(|k| params.get(k).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_seed_template_renders_as_litellm_writes_it() {
        let params = json!({
            "initial_prompt_value": "\n",
            "roles": {"system": {"pre_message": "<|im_start|>system\n", "post_message": "<|im_end|>"},
                      "assistant": {"pre_message": "<|im_start|>assistant\n", "post_message": "<|im_end|>"},
                      "user": {"pre_message": "<|im_start|>user\n", "post_message": "<|im_end|>"}},
            "final_prompt_value": "\n",
            "bos_token": "<s>",
            "eos_token": "</s>"
        });
        let t = of_params(params.as_object().unwrap()).expect("a template");
        let messages = [
            json!({"role": "system", "content": "Be brief."}),
            json!({"role": "user", "content": [{"type": "text", "text": "Hi"}]}),
            json!({"role": "assistant", "content": "Hello."}),
            json!({"role": "user", "content": "Bye"}),
        ];
        assert_eq!(
            t.render(&messages),
            "<s>\n<|im_start|>system\nBe brief.<|im_end|><|im_start|>user\nHi<|im_end|><|im_start|>assistant\nHello.<|im_end|></s><s><|im_start|>user\nBye<|im_end|>\n"
        );
        assert_eq!(
            of_params(json!({"max_tokens": 5}).as_object().unwrap()),
            None
        );
    }
}
