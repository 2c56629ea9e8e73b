//! `/model_group/info`, `/v2/model/info`, `/utils/supported_openai_params`, `/utils/token_counter`
//! and comma-separated models on `/chat/completions` (LiteLLM's batch completions), against the
//! real binary and the mock provider.

mod common;

use common::*;
use serde_json::{json, Value};

/// Two `gpt-4o` deployments (priced by the model table), a Claude group, a group whose upstream
/// never answers, a second mock group, and a group with a Hugging Face `custom_tokenizer`.
fn config(mock: &Mock) -> String {
    format!(
        r#"
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_base: {base}
      api_key: sk-mock-upstream-secret-42
      rpm: 10
      tpm: 1000
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_base: {base}
      api_key: sk-mock-upstream-secret-42
      rpm: 5
  - model_name: claude
    litellm_params:
      model: anthropic/claude-haiku-4-5
      api_base: {base}
      api_key: sk-mock-upstream-secret-42
  - model_name: mock-gpt
    litellm_params:
      model: openai/mock-gpt
      api_base: {base}
      api_key: sk-mock-upstream-secret-42
  - model_name: second
    litellm_params:
      model: openai/mock-gpt-2
      api_base: {base}
      api_key: sk-mock-upstream-secret-42
  - model_name: never
    litellm_params:
      model: openai/mock-fail-hang
      api_base: {base}
      api_key: sk-mock-upstream-secret-42
  - model_name: deepseek
    litellm_params:
      model: openai/deepseek-chat
      api_base: {base}
      api_key: sk-mock-upstream-secret-42
    model_info:
      custom_tokenizer:
        identifier: deepseek-ai/DeepSeek-V3-Base
        revision: main
general_settings:
  master_key: {MASTER_KEY}
"#,
        base = mock.api_base()
    )
}

async fn key_for(gw: &Gateway, models: &[&str]) -> String {
    let (status, _, body) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"models": models}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["key"].as_str().unwrap().to_string()
}

fn groups(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["model_group"].as_str().unwrap().to_string())
        .collect()
}

fn params(v: &Value) -> Vec<&str> {
    let v = v.get("supported_openai_params").unwrap_or(v);
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect()
}

#[actix_rt::test]
async fn model_group_info_describes_each_group_the_caller_may_use() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);

    let (status, _, all) = get(&gw.url("/model_group/info"), Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{all}");
    let mut names = groups(&all);
    names.sort();
    assert_eq!(
        names,
        ["claude", "deepseek", "gpt-4o", "mock-gpt", "never", "second"]
    );
    let gpt = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["model_group"] == "gpt-4o")
        .unwrap();
    assert_eq!(gpt["providers"], json!(["openai"]));
    assert_eq!(gpt["max_input_tokens"], 128000.0);
    assert_eq!(gpt["max_output_tokens"], 16384.0);
    assert!(gpt["input_cost_per_token"].as_f64().unwrap() > 0.0);
    assert!(gpt["output_cost_per_token"].as_f64().unwrap() > 0.0);
    assert_eq!(gpt["mode"], "chat");
    // The group's deployments together: 10 + 5 requests a minute; only one sets tpm.
    assert_eq!(gpt["rpm"], 15);
    assert_eq!(gpt["tpm"], 1000);
    assert_eq!(gpt["supports_function_calling"], true);
    assert_eq!(gpt["supports_vision"], true);
    assert_eq!(gpt["supports_web_search"], false);
    let gpt_params = params(&gpt["supported_openai_params"]);
    assert!(gpt_params.contains(&"temperature") && gpt_params.contains(&"logit_bias"));

    // One group asked for; Anthropic's adapter takes no logit_bias.
    let (status, _, one) = get(
        &gw.url("/model_group/info?model_group=claude"),
        Some(MASTER_KEY),
    )
    .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(groups(&one), ["claude"]);
    let claude = &one["data"][0];
    assert_eq!(claude["providers"], json!(["anthropic"]));
    assert_eq!(claude["max_input_tokens"], 200000.0, "{claude}");
    let claude_params = params(&claude["supported_openai_params"]);
    assert!(claude_params.contains(&"tools") && claude_params.contains(&"max_tokens"));
    assert!(!claude_params.contains(&"logit_bias"), "{claude_params:?}");

    // A key restricted to one model sees only it.
    let key = key_for(&gw, &["claude"]).await;
    let (status, _, mine) = get(&gw.url("/model_group/info"), Some(&key)).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(groups(&mine), ["claude"]);
    let (_, _, hidden) = get(&gw.url("/model_group/info?model_group=gpt-4o"), Some(&key)).await;
    assert_eq!(hidden["data"], json!([]));
    let (status, _, _) = get(&gw.url("/model_group/info"), None).await;
    assert_eq!(status, 401);
}

#[actix_rt::test]
async fn v2_model_info_pages_and_filters_the_callers_deployments() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);

    let (status, _, all) = get(&gw.url("/v2/model/info"), Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["total_count"], 7);
    assert_eq!(all["current_page"], 1);
    assert_eq!(all["total_pages"], 1);
    assert_eq!(all["size"], 50);
    assert_eq!(all["data"].as_array().unwrap().len(), 7);
    // Secrets stripped as in /model/info.
    assert!(!all.to_string().contains("sk-mock-upstream-secret-42"));
    let first = &all["data"][0];
    assert_eq!(first["model_name"], "gpt-4o");
    assert_eq!(first["litellm_params"]["model"], "openai/gpt-4o");
    assert!(first["model_info"]["id"].is_string());

    let (_, _, gpt) = get(&gw.url("/v2/model/info?model=gpt-4o"), Some(MASTER_KEY)).await;
    assert_eq!(gpt["total_count"], 2);
    let ids: Vec<&str> = gpt["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["model_info"]["id"].as_str().unwrap())
        .collect();
    let (_, _, page2) = get(
        &gw.url("/v2/model/info?model=gpt-4o&size=1&page=2"),
        Some(MASTER_KEY),
    )
    .await;
    assert_eq!(page2["total_pages"], 2);
    assert_eq!(page2["current_page"], 2);
    assert_eq!(page2["data"].as_array().unwrap().len(), 1);
    assert_eq!(page2["data"][0]["model_info"]["id"], ids[1]);
    let (_, _, by_id) = get(
        &gw.url(&format!("/v2/model/info?modelId={}", ids[0])),
        Some(MASTER_KEY),
    )
    .await;
    assert_eq!(by_id["total_count"], 1);
    let (status, _, bad) = get(&gw.url("/v2/model/info?page=0"), Some(MASTER_KEY)).await;
    assert_eq!(status, 400, "{bad}");

    // A key restricted to one model sees only its deployment.
    let key = key_for(&gw, &["claude"]).await;
    let (_, _, mine) = get(&gw.url("/v2/model/info"), Some(&key)).await;
    assert_eq!(mine["total_count"], 1);
    assert_eq!(mine["data"][0]["model_name"], "claude");

    // user_models_only: the models the caller added itself.
    let (_, _, none) = get(
        &gw.url("/v2/model/info?user_models_only=true"),
        Some(MASTER_KEY),
    )
    .await;
    assert_eq!(none["total_count"], 0, "{none}");
    let (status, _, added) = post(
        &gw.url("/model/new"),
        Some(MASTER_KEY),
        &json!({"model_name": "added", "litellm_params": {"model": "openai/mock-gpt", "api_base": mock.api_base(), "api_key": "sk-x"}}),
    )
    .await;
    assert_eq!(status, 200, "{added}");
    let url = gw.url("/v2/model/info?user_models_only=true");
    // The added model is listed as the admin's own once the router has loaded it.
    wait_for(std::time::Duration::from_secs(20), || async {
        get(&url, Some(MASTER_KEY)).await.2["total_count"] == 1
    })
    .await;
    let (_, _, own) = get(&url, Some(MASTER_KEY)).await;
    assert_eq!(own["data"][0]["model_name"], "added");
}

fn names(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["model_name"].as_str().unwrap().to_string())
        .collect()
}

#[actix_rt::test]
async fn v2_model_info_sorts_and_filters_by_team() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);

    let (_, _, asc) = get(
        &gw.url("/v2/model/info?sortBy=model_name"),
        Some(MASTER_KEY),
    )
    .await;
    let mut expected = names(&asc);
    expected.sort();
    assert_eq!(names(&asc), expected);
    let (_, _, desc) = get(
        &gw.url("/v2/model/info?sortBy=model_name&sortOrder=desc"),
        Some(MASTER_KEY),
    )
    .await;
    expected.reverse();
    assert_eq!(names(&desc), expected);
    // By input cost: priced models first, cheapest first; unpriced ones last.
    let (status, _, costs) = get(&gw.url("/v2/model/info?sortBy=costs"), Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{costs}");
    let prices: Vec<Option<f64>> = costs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["model_info"]["input_cost_per_token"].as_f64())
        .collect();
    let priced: Vec<f64> = prices.iter().map_while(|p| *p).collect();
    assert!(priced.len() >= 3, "{prices:?}");
    assert!(priced.windows(2).all(|w| w[0] <= w[1]), "{prices:?}");
    assert!(
        prices[priced.len()..].iter().all(Option::is_none),
        "{prices:?}"
    );
    for bad in ["sortBy=price", "sortBy=model_name&sortOrder=sideways"] {
        let (status, _, body) =
            get(&gw.url(&format!("/v2/model/info?{bad}")), Some(MASTER_KEY)).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // teamId: what that team's keys may use.
    let (status, _, team) = post(
        &gw.url("/team/new"),
        Some(MASTER_KEY),
        &json!({"team_alias": "claude-team", "models": ["claude", "second"]}),
    )
    .await;
    assert_eq!(status, 200, "{team}");
    let team_id = team["team_id"].as_str().unwrap();
    let url = gw.url(&format!(
        "/v2/model/info?teamId={team_id}&sortBy=model_name"
    ));
    let (status, _, of_team) = get(&url, Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{of_team}");
    assert_eq!(names(&of_team), ["claude", "second"]);
    // A caller who cannot read the team is told it does not exist.
    let (status, _, user) = post(
        &gw.url("/user/new"),
        Some(MASTER_KEY),
        &json!({"user_role": "internal_user"}),
    )
    .await;
    assert_eq!(status, 200, "{user}");
    let (status, _, body) = get(&url, user["key"].as_str()).await;
    assert_eq!(status, 404, "{body}");
    let (status, _, body) = get(
        &gw.url("/v2/model/info?teamId=no-such-team"),
        Some(MASTER_KEY),
    )
    .await;
    assert_eq!(status, 404, "{body}");
}

#[actix_rt::test]
async fn supported_openai_params_follow_the_provider() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let ask = |model: &str| gw.url(&format!("/utils/supported_openai_params?model={model}"));

    let (status, _, openai) = get(&ask("gpt-4o"), Some(MASTER_KEY)).await;
    assert_eq!(status, 200, "{openai}");
    let openai = params(&openai);
    assert!(openai.contains(&"logit_bias") && openai.contains(&"seed"));
    let (_, _, claude) = get(&ask("claude"), Some(MASTER_KEY)).await;
    let claude = params(&claude);
    assert!(claude.contains(&"temperature") && claude.contains(&"tool_choice"));
    assert!(!claude.contains(&"logit_bias") && !claude.contains(&"n"));
    // Not a model group: a provider/model name, then the model table.
    let (_, _, groq) = get(&ask("groq/llama3-8b-8192"), Some(MASTER_KEY)).await;
    let groq = params(&groq);
    assert!(groq.contains(&"temperature") && !groq.contains(&"logprobs"));
    let (_, _, bedrock) = get(
        &ask("bedrock/anthropic.claude-3-haiku-20240307-v1:0"),
        Some(MASTER_KEY),
    )
    .await;
    assert!(!params(&bedrock).contains(&"seed"));
    let (_, _, embed) = get(&ask("text-embedding-3-small"), Some(MASTER_KEY)).await;
    assert_eq!(
        embed,
        json!({"supported_openai_params": ["dimensions", "encoding_format", "user"]})
    );
    let (status, _, unknown) = get(&ask("no-such-model-xyz"), Some(MASTER_KEY)).await;
    assert_eq!(status, 400, "{unknown}");
    assert_envelope(&unknown);
    let (status, _, _) = get(&gw.url("/utils/supported_openai_params"), Some(MASTER_KEY)).await;
    assert_eq!(status, 400);
}

#[actix_rt::test]
async fn token_counter_counts_with_tiktoken_and_names_its_tokenizer() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let count = |body: Value| {
        let url = gw.url("/utils/token_counter");
        async move { post(&url, Some(MASTER_KEY), &body).await }
    };

    let (status, _, prompt) = count(json!({"model": "gpt-4o", "prompt": "hello world"})).await;
    assert_eq!(status, 200, "{prompt}");
    assert_eq!(prompt["total_tokens"], 2);
    assert_eq!(prompt["request_model"], "gpt-4o");
    assert_eq!(prompt["model_used"], "gpt-4o");
    assert_eq!(prompt["tokenizer_type"], "openai_tokenizer");
    assert_eq!(prompt["tokenizer"], "o200k_base");
    assert_eq!(prompt["tokenizer_fallback"], Value::Null);

    // OpenAI's message formula: 3 + "user" + "hello world" + 3.
    let (_, _, messages) = count(json!({"model": "gpt-4o",
        "messages": [{"role": "user", "content": "hello world"}]}))
    .await;
    assert_eq!(messages["total_tokens"], 9);
    // An Anthropic-style `system` counts as a leading system message: 3 + "system" + "hello world".
    let (_, _, with_system) = count(
        json!({"model": "gpt-4o", "system": [{"type": "text", "text": "hello world"}],
        "messages": [{"role": "user", "content": "hello world"}]}),
    )
    .await;
    assert_eq!(with_system["total_tokens"], 15);

    // Not a model group: the name itself picks the encoding (cl100k_base for gpt-4).
    let (_, _, gpt4) = count(json!({"model": "gpt-4", "prompt": "tiktoken is great!"})).await;
    assert_eq!(gpt4["total_tokens"], 6);
    assert_eq!(gpt4["tokenizer"], "cl100k_base");
    assert_eq!(gpt4["model_used"], "gpt-4");

    // The group's provider model is what is counted; a Hugging Face tokenizer cannot be loaded,
    // and the answer says what was used instead.
    let (_, _, custom) = count(json!({"model": "deepseek", "prompt": "hello world"})).await;
    assert_eq!(custom["model_used"], "deepseek-chat");
    assert_eq!(custom["tokenizer_type"], "openai_tokenizer");
    assert_eq!(custom["tokenizer"], "cl100k_base");
    assert_eq!(
        custom["tokenizer_fallback"],
        "huggingface_tokenizer deepseek-ai/DeepSeek-V3-Base"
    );
    assert_eq!(custom["total_tokens"], 2);

    let (status, _, neither) = count(json!({"model": "gpt-4o"})).await;
    assert_eq!(status, 400, "{neither}");
    assert_envelope(&neither);
}

#[actix_rt::test]
async fn comma_separated_models_answer_one_completion_per_group() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let url = gw.url("/v1/chat/completions");

    let (status, _, list) = post(&url, Some(MASTER_KEY), &chat("mock-gpt, second")).await;
    assert_eq!(status, 200, "{list}");
    let list = list.as_array().expect("a JSON list").clone();
    assert_eq!(list.len(), 2);
    for completion in &list {
        assert_eq!(completion["object"], "chat.completion", "{completion}");
        assert!(completion["choices"][0]["message"]["content"].is_string());
    }
    let stats = mock.stats().await;
    assert_eq!(stats["by_model"]["mock-gpt"], 1, "{stats}");
    assert_eq!(stats["by_model"]["mock-gpt-2"], 1, "{stats}");

    // Each group is its own request: a key allowed one of them gets the other's refusal in its
    // place of the list, and only the allowed one reaches the provider.
    let key = key_for(&gw, &["mock-gpt"]).await;
    let (status, _, mixed) = post(&url, Some(&key), &chat("mock-gpt,second")).await;
    assert_eq!(status, 200, "{mixed}");
    assert_eq!(mixed[0]["object"], "chat.completion", "{mixed}");
    assert_envelope(&mixed[1]);
    assert_eq!(mock.stats().await["by_model"]["mock-gpt-2"], 1);

    // A list of streams has no wire form: refused.
    let mut streamed = chat("mock-gpt,second");
    streamed["stream"] = json!(true);
    let (status, _, refused) = post(&url, Some(MASTER_KEY), &streamed).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["param"], "stream");
}

#[actix_rt::test]
async fn fastest_response_returns_the_first_success_and_drops_the_rest() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let url = gw.url("/chat/completions");

    // `never` hangs for an hour: the answer comes from mock-gpt, and the hanging call is dropped.
    let mut body = chat("never,mock-gpt");
    body["fastest_response"] = json!(true);
    let (status, headers, one) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["object"], "chat.completion", "{one}");
    assert_eq!(headers.get("x-litellm-model-group").unwrap(), "mock-gpt");
    assert_eq!(
        headers
            .get("x-litellm-fastest_response_batch_completion")
            .unwrap(),
        "True"
    );
    assert!(headers.contains_key("x-litellm-model-id"));
    // `fastest_response` is the gateway's: never forwarded.
    let sent = mock.last_request().await;
    assert!(sent["body"].get("fastest_response").is_none(), "{sent}");

    // Streaming: the first stream to start is relayed.
    body["stream"] = json!(true);
    let (status, headers, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers.get("x-litellm-model-group").unwrap(), "mock-gpt");
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));

    // Every group failing: the failure, in the OpenAI envelope.
    let mut failing = chat("no-such-a,no-such-b");
    failing["fastest_response"] = json!(true);
    let (status, _, err) = post(&url, Some(MASTER_KEY), &failing).await;
    assert_eq!(status, 400, "{err}");
    assert_envelope(&err);
}
