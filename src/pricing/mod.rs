//! The bundled model table: provider, mode, context window and prices for 4,240 public models.
//! Provenance and refresh instructions: `src/pricing/PROVENANCE.md`.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;

const TABLE: &str = include_str!("model_prices.json");

/// One model's entry, with LiteLLM's field names.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ModelPrice {
    pub litellm_provider: String,
    pub mode: Option<String>,
    pub max_input_tokens: Option<u64>,
    pub max_output_tokens: Option<u64>,
    pub max_tokens: Option<u64>,
    pub input_cost_per_token: Option<f64>,
    pub output_cost_per_token: Option<f64>,
    pub cache_read_input_token_cost: Option<f64>,
    pub cache_creation_input_token_cost: Option<f64>,
    pub output_cost_per_reasoning_token: Option<f64>,
    pub input_cost_per_second: Option<f64>,
    pub output_cost_per_second: Option<f64>,
    pub supports_function_calling: Option<bool>,
    pub supports_vision: Option<bool>,
    pub supports_response_schema: Option<bool>,
    pub supports_prompt_caching: Option<bool>,
    pub supports_reasoning: Option<bool>,
}

fn table() -> &'static HashMap<String, ModelPrice> {
    static PARSED: OnceLock<HashMap<String, ModelPrice>> = OnceLock::new();
    PARSED.get_or_init(|| match serde_json::from_str(TABLE) {
        Ok(t) => t,
        Err(e) => {
            // The table is compiled in and checked by a unit test; this cannot happen in a release.
            tracing::error!(error = %e, "bundled price table is unreadable; costs will be 0");
            HashMap::new()
        }
    })
}

/// Look a model up: `provider/model` first, then the bare model name.
pub fn lookup(provider: Option<&str>, model: &str) -> Option<&'static ModelPrice> {
    let t = table();
    if let Some(p) = provider {
        if let Some(hit) = t.get(&format!("{p}/{model}")) {
            return Some(hit);
        }
    }
    t.get(model)
}

/// The provider a bare model name belongs to (`gpt-4o` → `openai`, `claude-3-5-sonnet…` →
/// `anthropic`), as the table records it.
pub fn provider_of(model: &str) -> Option<&'static str> {
    table().get(model).map(|p| p.litellm_provider.as_str())
}

/// Number of models in the bundled table.
pub fn len() -> usize {
    table().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_table_parses_and_has_known_models() {
        assert!(len() > 4000, "{}", len());
        let gpt = lookup(None, "gpt-4o").expect("gpt-4o");
        assert_eq!(gpt.litellm_provider, "openai");
        assert_eq!(gpt.max_input_tokens, Some(128_000));
        assert!(gpt.input_cost_per_token.unwrap_or(0.0) > 0.0);
        assert_eq!(provider_of("gpt-4o-mini"), Some("openai"));
        assert_eq!(provider_of("claude-haiku-4-5"), Some("anthropic"));
        assert!(lookup(Some("azure"), "gpt-4o").is_some());
        assert!(lookup(None, "no-such-model-xyz").is_none());
    }
}
