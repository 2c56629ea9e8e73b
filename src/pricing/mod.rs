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
    pub input_cost_per_token_batches: Option<f64>,
    pub output_cost_per_token_batches: Option<f64>,
    pub input_cost_per_second: Option<f64>,
    pub output_cost_per_second: Option<f64>,
    pub input_cost_per_image: Option<f64>,
    pub output_cost_per_image: Option<f64>,
    pub input_cost_per_pixel: Option<f64>,
    pub output_cost_per_pixel: Option<f64>,
    pub input_cost_per_image_token: Option<f64>,
    pub output_cost_per_image_token: Option<f64>,
    pub input_cost_per_character: Option<f64>,
    pub input_cost_per_query: Option<f64>,
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

/// What one deployment costs: prices per token (and per second), from `litellm_params`
/// (`input_cost_per_token`, `output_cost_per_token`, `input_cost_per_second`,
/// `output_cost_per_second`, `cache_read_input_token_cost`), else the bundled table entry of the
/// model (or of `model_info.base_model`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prices {
    pub input_per_token: f64,
    pub output_per_token: f64,
    /// Cached prompt tokens; `None` bills them as ordinary input.
    pub cache_read_per_token: Option<f64>,
    /// Reasoning tokens; `None` bills them as ordinary output.
    pub reasoning_per_token: Option<f64>,
    pub input_per_second: f64,
    pub output_per_second: f64,
    /// Batch API prices (`input_cost_per_token_batches`, `output_cost_per_token_batches`);
    /// `None` bills batches at half the regular price, as [`Prices::batch_cost`] says.
    pub input_batch_per_token: Option<f64>,
    pub output_batch_per_token: Option<f64>,
}

impl Prices {
    /// Prices from a table entry, with custom per-deployment values winning field by field.
    pub fn resolve(
        entry: Option<&ModelPrice>,
        custom: &serde_json::Map<String, serde_json::Value>,
    ) -> Option<Prices> {
        let num = |k: &str| {
            custom.get(k).and_then(|v| {
                v.as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
        };
        let has_custom = [
            "input_cost_per_token",
            "output_cost_per_token",
            "input_cost_per_second",
            "output_cost_per_second",
        ]
        .iter()
        .any(|k| num(k).is_some());
        if entry.is_none() && !has_custom {
            return None;
        }
        let e = entry.cloned().unwrap_or_default();
        Some(Prices {
            input_per_token: num("input_cost_per_token")
                .or(e.input_cost_per_token)
                .unwrap_or(0.0),
            output_per_token: num("output_cost_per_token")
                .or(e.output_cost_per_token)
                .unwrap_or(0.0),
            cache_read_per_token: num("cache_read_input_token_cost")
                .or(e.cache_read_input_token_cost),
            reasoning_per_token: num("output_cost_per_reasoning_token")
                .or(e.output_cost_per_reasoning_token),
            input_per_second: num("input_cost_per_second")
                .or(e.input_cost_per_second)
                .unwrap_or(0.0),
            output_per_second: num("output_cost_per_second")
                .or(e.output_cost_per_second)
                .unwrap_or(0.0),
            input_batch_per_token: num("input_cost_per_token_batches")
                .or(e.input_cost_per_token_batches),
            output_batch_per_token: num("output_cost_per_token_batches")
                .or(e.output_cost_per_token_batches),
        })
    }

    /// The cost in USD of one call: cached prompt tokens and reasoning tokens at their own prices
    /// when the model has them, and per-second prices times the call's duration.
    pub fn cost(&self, usage: &crate::llm::Usage, duration: std::time::Duration) -> f64 {
        let cached = usage.cached_tokens.min(usage.prompt_tokens);
        let reasoning = usage.reasoning_tokens.min(usage.completion_tokens);
        let input = (usage.prompt_tokens - cached) as f64 * self.input_per_token
            + cached as f64 * self.cache_read_per_token.unwrap_or(self.input_per_token);
        let output = (usage.completion_tokens - reasoning) as f64 * self.output_per_token
            + reasoning as f64 * self.reasoning_per_token.unwrap_or(self.output_per_token);
        let seconds = duration.as_secs_f64() * (self.input_per_second + self.output_per_second);
        input + output + seconds
    }
}

impl Prices {
    /// The cost in USD of a batch's usage, as LiteLLM's batch cost calculator works it out:
    /// prompt tokens at `input_cost_per_token_batches` when the model has it, else its billable
    /// (uncached) prompt tokens at half the regular input price plus its cached tokens at half
    /// the cache-read price; completion tokens at `output_cost_per_token_batches`, else at half
    /// the regular output price (OpenAI bills batches at half price).
    pub fn batch_cost(&self, usage: &crate::llm::Usage) -> f64 {
        let input = match self.input_batch_per_token {
            Some(price) => usage.prompt_tokens as f64 * price,
            None => {
                let cached = usage.cached_tokens.min(usage.prompt_tokens);
                ((usage.prompt_tokens - cached) as f64 * self.input_per_token
                    + cached as f64 * self.cache_read_per_token.unwrap_or(0.0))
                    / 2.0
            }
        };
        let output = match self.output_batch_per_token {
            Some(price) => usage.completion_tokens as f64 * price,
            None => usage.completion_tokens as f64 * self.output_per_token / 2.0,
        };
        input + output
    }
}

/// What one image request asked for and got, for its cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ImageBill<'a> {
    /// `size` as asked (`1024x1024`; `auto` or none: 1024×1024).
    pub size: Option<&'a str>,
    /// `quality` as asked (`standard`, `hd`, `low`, `medium`, `high`).
    pub quality: Option<&'a str>,
    /// The images the provider returned (else `n` as asked).
    pub images: u64,
    /// GPT Image models' usage: text and image input tokens, image output tokens.
    pub text_tokens: u64,
    pub image_input_tokens: u64,
    pub output_tokens: u64,
}

/// The cost in USD of an image generation or edit, as LiteLLM's image cost calculator works it
/// out. The entry is the first of `{quality}/{W}-x-{H}/{model}`, `{W}-x-{H}/{model}`,
/// `medium/{W}-x-{H}/{model}` and `{model}` in the table (each tried with the provider's prefix
/// first); `custom` (the deployment's `litellm_params`) wins field by field. The price is, in this
/// order: `input_cost_per_image` × images, `output_cost_per_image` × images,
/// `input_cost_per_pixel` (+ `output_cost_per_pixel`) × W × H × images, else the token prices of
/// the usage (`input_cost_per_token` for text, `input_cost_per_image_token` for image input,
/// `output_cost_per_image_token` for the output); 0 when nothing prices it.
pub fn image_cost(
    provider: &str,
    model: &str,
    custom: &serde_json::Map<String, serde_json::Value>,
    bill: &ImageBill<'_>,
) -> f64 {
    let size = bill
        .size
        .filter(|s| !s.eq_ignore_ascii_case("auto"))
        .unwrap_or("1024x1024");
    let size = if size.contains("-x-") {
        size.to_string()
    } else {
        size.replacen('x', "-x-", 1)
    };
    let (w, h) = size
        .split_once("-x-")
        .and_then(|(w, h)| Some((w.trim().parse::<u64>().ok()?, h.trim().parse::<u64>().ok()?)))
        .unwrap_or((1024, 1024));
    let quality = bill.quality.filter(|q| !q.eq_ignore_ascii_case("auto"));
    let mut names = Vec::with_capacity(4);
    if let Some(q) = quality {
        names.push(format!("{q}/{size}/{model}"));
    }
    names.push(format!("{size}/{model}"));
    names.push(format!("medium/{size}/{model}"));
    names.push(model.to_string());
    let entry = names.iter().find_map(|n| lookup(Some(provider), n));
    let num = |k: &str| {
        custom.get(k).and_then(|v| {
            v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
    };
    let e = entry.cloned().unwrap_or_default();
    let images = bill.images as f64;
    let per_image = num("input_cost_per_image")
        .or(e.input_cost_per_image)
        .filter(|p| *p > 0.0)
        .or(num("output_cost_per_image").or(e.output_cost_per_image));
    if let Some(price) = per_image.filter(|p| *p > 0.0) {
        return price * images;
    }
    let per_pixel = num("input_cost_per_pixel")
        .or(e.input_cost_per_pixel)
        .unwrap_or(0.0)
        + num("output_cost_per_pixel")
            .or(e.output_cost_per_pixel)
            .unwrap_or(0.0);
    if per_pixel > 0.0 {
        return per_pixel * (w * h) as f64 * images;
    }
    let text = num("input_cost_per_token")
        .or(e.input_cost_per_token)
        .unwrap_or(0.0);
    let image_in = num("input_cost_per_image_token")
        .or(e.input_cost_per_image_token)
        .unwrap_or(text);
    let image_out = num("output_cost_per_image_token")
        .or(e.output_cost_per_image_token)
        .or(num("output_cost_per_token").or(e.output_cost_per_token))
        .unwrap_or(0.0);
    bill.text_tokens as f64 * text
        + bill.image_input_tokens as f64 * image_in
        + bill.output_tokens as f64 * image_out
}

/// What a call priced by units other than tokens consumed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Units {
    /// Seconds of audio transcribed or translated.
    AudioSeconds(f64),
    /// Characters of text spoken (`/audio/speech`).
    Characters(u64),
    /// A rerank call: its search units, and the tokens the provider counted (Jina).
    Rerank { search_units: u64, tokens: u64 },
}

/// The cost in USD of a call priced per unit, with `custom` (the deployment's `litellm_params`)
/// winning over the table entry field by field:
/// * audio seconds × `input_cost_per_second` (else `output_cost_per_second`), as LiteLLM prices
///   Whisper;
/// * characters × `input_cost_per_character`;
/// * search units × `input_cost_per_query`, else the provider's tokens × `input_cost_per_token`.
///
/// 0 when nothing prices it.
pub fn unit_cost(
    entry: Option<&ModelPrice>,
    custom: &serde_json::Map<String, serde_json::Value>,
    units: Units,
) -> f64 {
    let num = |k: &str| {
        custom.get(k).and_then(|v| {
            v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
    };
    let e = entry.cloned().unwrap_or_default();
    let positive = |p: Option<f64>| p.filter(|p| *p > 0.0);
    match units {
        Units::AudioSeconds(seconds) => {
            let per_second = positive(num("input_cost_per_second").or(e.input_cost_per_second))
                .or(num("output_cost_per_second").or(e.output_cost_per_second))
                .unwrap_or(0.0);
            per_second * seconds.max(0.0)
        }
        Units::Characters(chars) => {
            num("input_cost_per_character")
                .or(e.input_cost_per_character)
                .unwrap_or(0.0)
                * chars as f64
        }
        Units::Rerank {
            search_units,
            tokens,
        } => match positive(num("input_cost_per_query").or(e.input_cost_per_query)) {
            Some(per_query) => per_query * search_units as f64,
            None => {
                num("input_cost_per_token")
                    .or(e.input_cost_per_token)
                    .unwrap_or(0.0)
                    * tokens as f64
            }
        },
    }
}

/// Number of models in the bundled table.
pub fn len() -> usize {
    table().len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Usage;
    use std::time::Duration;

    fn usage(prompt: u64, completion: u64, cached: u64, reasoning: u64) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            cached_tokens: cached,
            reasoning_tokens: reasoning,
        }
    }

    #[test]
    fn image_costs_follow_litellms_lookup_order() {
        let none = serde_json::Map::new();
        let bill = |size, quality, images| ImageBill {
            size,
            quality,
            images,
            ..ImageBill::default()
        };
        // Per image: `medium/1024-x-1024/gpt-image-1` (0.042), also when no quality is given.
        let medium = image_cost(
            "openai",
            "gpt-image-1",
            &none,
            &bill(Some("1024x1024"), Some("medium"), 2),
        );
        assert!((medium - 0.084).abs() < 1e-12, "{medium}");
        let unset = image_cost("openai", "gpt-image-1", &none, &bill(None, None, 1));
        assert!((unset - 0.042).abs() < 1e-12, "{unset}");
        // Per pixel: Azure's `hd/1024-x-1024/dall-e-3`.
        let hd = image_cost(
            "azure",
            "dall-e-3",
            &none,
            &bill(Some("1024x1024"), Some("hd"), 1),
        );
        assert!((hd - 8.39233e-08 * 1024.0 * 1024.0).abs() < 1e-12, "{hd}");
        // The deployment's own price wins.
        let mut custom = serde_json::Map::new();
        custom.insert("output_cost_per_image".into(), serde_json::json!(0.5));
        let own = image_cost("openai", "my-model", &custom, &bill(None, None, 3));
        assert!((own - 1.5).abs() < 1e-12, "{own}");
        // Unknown models cost nothing.
        assert_eq!(
            image_cost("openai", "nope", &none, &bill(None, None, 1)),
            0.0
        );
    }

    #[test]
    fn unit_costs_of_audio_speech_and_rerank() {
        let none = serde_json::Map::new();
        let whisper = lookup(Some("openai"), "whisper-1");
        let c = unit_cost(whisper, &none, Units::AudioSeconds(30.0));
        assert!((c - 0.003).abs() < 1e-12, "{c}");
        let tts = lookup(Some("openai"), "tts-1");
        let c = unit_cost(tts, &none, Units::Characters(1000));
        assert!((c - 0.015).abs() < 1e-12, "{c}");
        let rerank = lookup(Some("cohere"), "rerank-v3.5");
        let units = Units::Rerank {
            search_units: 2,
            tokens: 0,
        };
        assert!((unit_cost(rerank, &none, units) - 0.004).abs() < 1e-12);
        // Jina prices tokens.
        let jina = lookup(Some("jina_ai"), "jina-reranker-v2-base-multilingual");
        let units = Units::Rerank {
            search_units: 1,
            tokens: 1000,
        };
        assert!((unit_cost(jina, &none, units) - 5e-5).abs() < 1e-12);
        // The deployment's own price wins.
        let mut custom = serde_json::Map::new();
        custom.insert("input_cost_per_query".into(), serde_json::json!("0.5"));
        let units = Units::Rerank {
            search_units: 3,
            tokens: 0,
        };
        assert!((unit_cost(None, &custom, units) - 1.5).abs() < 1e-12);
        assert_eq!(unit_cost(None, &none, Units::AudioSeconds(5.0)), 0.0);
    }

    #[test]
    fn cost_of_each_usage_shape() {
        let gpt = lookup(Some("openai"), "gpt-4o").cloned();
        let p = Prices::resolve(gpt.as_ref(), &serde_json::Map::new()).unwrap();
        let (i, o) = (p.input_per_token, p.output_per_token);
        let plain = p.cost(&usage(1000, 100, 0, 0), Duration::ZERO);
        assert!((plain - (1000.0 * i + 100.0 * o)).abs() < 1e-12);
        // Cached prompt tokens are cheaper when the table says so.
        let cache = p
            .cache_read_per_token
            .expect("gpt-4o has a cache-read price");
        let cached = p.cost(&usage(1000, 100, 400, 0), Duration::ZERO);
        assert!((cached - (600.0 * i + 400.0 * cache + 100.0 * o)).abs() < 1e-12);
        assert!(cached < plain);
        // Custom prices win; per-second prices bill the duration.
        let custom: serde_json::Map<String, serde_json::Value> =
            serde_json::from_value(serde_json::json!({"input_cost_per_token": 0.001, "output_cost_per_token": 0.002, "input_cost_per_second": 0.5})).unwrap();
        let c = Prices::resolve(None, &custom).unwrap();
        assert!(
            (c.cost(&usage(10, 5, 0, 0), Duration::from_secs(2)) - (0.01 + 0.01 + 1.0)).abs()
                < 1e-12
        );
        // Reasoning tokens at their own price when the model has one, else as output.
        let r = Prices {
            reasoning_per_token: Some(1.0),
            ..Prices::default()
        };
        assert_eq!(r.cost(&usage(0, 10, 0, 4), Duration::ZERO), 4.0);
        // Embeddings: prompt tokens only.
        let emb = lookup(Some("openai"), "text-embedding-3-small").cloned();
        let e = Prices::resolve(emb.as_ref(), &serde_json::Map::new()).unwrap();
        assert!(e.cost(&usage(1000, 0, 0, 0), Duration::ZERO) > 0.0);
        // Unknown model, no custom prices: no prices (costs 0, with a warning at start).
        assert!(Prices::resolve(None, &serde_json::Map::new()).is_none());
    }

    #[test]
    fn batches_cost_their_own_prices_else_half_the_regular_ones() {
        let half = Prices {
            input_per_token: 0.002,
            output_per_token: 0.004,
            cache_read_per_token: Some(0.001),
            ..Prices::default()
        };
        // 10 prompt tokens (4 cached) and 5 completion tokens, at half price.
        let used = usage(10, 5, 4, 0);
        let expected = (6.0 * 0.002 + 4.0 * 0.001) / 2.0 + 5.0 * 0.004 / 2.0;
        assert!((half.batch_cost(&used) - expected).abs() < 1e-15);
        let custom: serde_json::Map<String, serde_json::Value> = serde_json::from_value(
            serde_json::json!({"input_cost_per_token": 0.002, "output_cost_per_token": 0.004, "input_cost_per_token_batches": 0.0001, "output_cost_per_token_batches": 0.0003}),
        )
        .unwrap();
        let own = Prices::resolve(None, &custom).unwrap();
        assert!((own.batch_cost(&used) - (10.0 * 0.0001 + 5.0 * 0.0003)).abs() < 1e-15);
    }

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
