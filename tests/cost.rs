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
