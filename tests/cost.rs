//! `x-litellm-response-cost`: the bundled price table, custom per-deployment prices,
//! `model_info.base_model`, and 0 for a model nobody prices.

mod common;

use common::*;
use serde_json::Value;

fn cost_of(headers: &Headers) -> f64 {
    headers
        .get("x-litellm-response-cost")
        .expect("cost header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn tokens(body: &Value) -> (f64, f64) {
    (
        body["usage"]["prompt_tokens"].as_f64().unwrap(),
        body["usage"]["completion_tokens"].as_f64().unwrap(),
    )
}

#[actix_rt::test]
async fn response_cost_header_from_table_custom_prices_and_base_model() {
    let mock = Mock::start(&[]);
    let base = mock.api_base();
    let cfg = format!(
        r#"model_list:
  - model_name: table-priced
    litellm_params: {{model: openai/gpt-4o-mini, api_base: {base}, api_key: sk-x}}
  - model_name: custom-priced
    litellm_params: {{model: openai/in-house, api_base: {base}, api_key: sk-x, input_cost_per_token: 0.001, output_cost_per_token: 0.002}}
  - model_name: based
    litellm_params: {{model: openai/my-finetune, api_base: {base}, api_key: sk-x}}
    model_info: {{base_model: gpt-4o}}
  - model_name: unpriced
    litellm_params: {{model: openai/no-such-model-anywhere, api_base: {base}, api_key: sk-x}}
general_settings:
  master_key: {MASTER_KEY}
"#
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    let url = gw.url("/v1/chat/completions");

    let (status, headers, body) = post(&url, Some(MASTER_KEY), &chat("custom-priced")).await;
    assert_eq!(status, 200, "{body}");
    let (p, c) = tokens(&body);
    assert!(
        (cost_of(&headers) - (p * 0.001 + c * 0.002)).abs() < 1e-9,
        "{headers:?}"
    );

    let (_, mini_headers, _) = post(&url, Some(MASTER_KEY), &chat("table-priced")).await;
    let (_, based_headers, _) = post(&url, Some(MASTER_KEY), &chat("based")).await;
    let (mini, based) = (cost_of(&mini_headers), cost_of(&based_headers));
    assert!(
        mini > 0.0 && based > mini,
        "gpt-4o (base_model) costs more than gpt-4o-mini: {based} vs {mini}"
    );

    let (status, headers, _) = post(&url, Some(MASTER_KEY), &chat("unpriced")).await;
    assert_eq!(status, 200);
    assert_eq!(cost_of(&headers), 0.0);
    assert!(
        gw.proc.logs().contains("no price known"),
        "an unknown model warns at start"
    );
}

/// Each provider reports usage its own way (Anthropic's cache reads and writes, Gemini's thoughts,
/// Bedrock's cache fields, Ollama's eval counts…); once translated, the cost follows the OpenAI
/// usage: uncached prompt tokens, cached prompt tokens, reasoning and other completion tokens, each
/// at its price.
#[actix_rt::test]
async fn cost_of_each_providers_usage_shape() {
    let mock = Mock::start(&[]);
    let root = mock.proc.url.clone();
    let prices = "input_cost_per_token: 0.001, output_cost_per_token: 0.002, cache_read_input_token_cost: 0.0001, output_cost_per_reasoning_token: 0.003";
    let providers = [
        ("openai", format!("model: openai/mock-gpt, api_base: \"{root}/v1\", api_key: k")),
        ("anthropic", format!("model: anthropic/claude-sonnet-4-5, api_base: \"{root}\", api_key: k")),
        ("bedrock", format!("model: \"bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0\", api_base: \"{root}\", aws_region_name: us-east-1, aws_access_key_id: AKIDEXAMPLE, aws_secret_access_key: \"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\"")),
        ("cohere", format!("model: cohere_chat/command-a-03-2025, api_base: \"{root}\", api_key: k")),
        ("ollama", format!("model: ollama_chat/llama3.1, api_base: \"{root}\"")),
        ("huggingface", format!("model: huggingface/tgi, api_base: \"{root}\", api_key: k")),
        ("gemini", format!("model: gemini/gemini-2.5-flash, api_base: \"{root}\", api_key: AIza-k")),
    ];
    let mut config = String::from("model_list:\n");
    for (name, params) in &providers {
        config.push_str(&format!(
            "  - model_name: {name}\n    litellm_params: {{{params}, {prices}}}\n"
        ));
    }
    config.push_str(&format!("general_settings:\n  master_key: {MASTER_KEY}\n"));
    let gw = Gateway::start(&config, &[], &[]);
    let mut saw_cached = false;
    let mut saw_reasoning = false;
    for (name, _) in &providers {
        let mut request = chat(name);
        match *name {
            // Prompt caching asked for: Anthropic reports cache reads and writes.
            "anthropic" => {
                request["messages"] = serde_json::json!([{"role": "user", "content": [
                    {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}]);
            }
            // Thinking asked for: Gemini reports thought tokens.
            "gemini" => request["reasoning_effort"] = serde_json::json!("low"),
            _ => {}
        }
        let (status, headers, body) =
            post(&gw.url("/v1/chat/completions"), Some(MASTER_KEY), &request).await;
        assert_eq!(status, 200, "{name}: {body}");
        let u = &body["usage"];
        let n = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
        let (prompt, completion) = (n(&u["prompt_tokens"]), n(&u["completion_tokens"]));
        let cached = n(&u["prompt_tokens_details"]["cached_tokens"]);
        let reasoning = n(&u["completion_tokens_details"]["reasoning_tokens"]);
        assert!(prompt > 0.0 && completion > 0.0, "{name}: {u}");
        assert_eq!(n(&u["total_tokens"]), prompt + completion, "{name}: {u}");
        saw_cached |= cached > 0.0;
        saw_reasoning |= reasoning > 0.0;
        let expected = (prompt - cached) * 0.001
            + cached * 0.0001
            + (completion - reasoning) * 0.002
            + reasoning * 0.003;
        let cost: f64 = headers
            .get("x-litellm-response-cost")
            .unwrap_or_else(|| panic!("{name}: no cost header"))
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (cost - expected).abs() < 1e-9,
            "{name}: cost {cost}, expected {expected} from {u}"
        );
    }
    assert!(saw_cached, "a provider's mock reports cached tokens");
    assert!(saw_reasoning, "a provider's mock reports reasoning tokens");
}

/// Embeddings cost their input tokens (from the table, or custom prices).
#[actix_rt::test]
async fn embeddings_cost_their_input_tokens() {
    let mock = Mock::start(&[]);
    let base = mock.api_base();
    let cfg = format!(
        r#"model_list:
  - model_name: embed-custom
    litellm_params: {{model: openai/mock-embedding, api_base: {base}, api_key: sk-x, input_cost_per_token: 0.0001}}
    model_info: {{mode: embedding}}
  - model_name: embed-table
    litellm_params: {{model: openai/text-embedding-3-small, api_base: {base}, api_key: sk-x}}
    model_info: {{mode: embedding}}
general_settings:
  master_key: {MASTER_KEY}
"#
    );
    let gw = Gateway::start(&cfg, &[], &[]);
    let url = gw.url("/v1/embeddings");
    let body =
        |model: &str| serde_json::json!({"model": model, "input": ["one text", "and another"]});
    let (status, headers, resp) = post(&url, Some(MASTER_KEY), &body("embed-custom")).await;
    assert_eq!(status, 200, "{resp}");
    let prompt = resp["usage"]["prompt_tokens"].as_f64().unwrap();
    assert!(prompt > 0.0, "{resp}");
    assert!(
        (cost_of(&headers) - prompt * 0.0001).abs() < 1e-12,
        "{headers:?}"
    );
    let (status, headers, _) = post(&url, Some(MASTER_KEY), &body("embed-table")).await;
    assert_eq!(status, 200);
    assert!(
        cost_of(&headers) > 0.0,
        "the bundled table prices text-embedding-3-small"
    );
}
