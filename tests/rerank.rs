//! `/rerank`, `/v1/rerank` and `/v2/rerank` in Cohere's shape through the whole pipeline against
//! the mock provider: Cohere natively (`/v2/rerank`), Jina (`/v1/rerank`), an OpenAI-compatible
//! base with `mode: rerank` and Bedrock's agent runtime (SigV4), each answered in Cohere's shape; key model access, retries and
//! fallbacks, spend-log rows with `call_type: arerank` and the cost per search unit (or per token
//! for Jina), and the OpenAI error envelope for bad input and providers without rerank.

mod common;

use common::*;
use serde_json::{json, Value};

fn config(mock: &Mock) -> String {
    format!(
        r#"model_list:
  - model_name: cohere-rerank
    litellm_params: {{model: cohere/rerank-v3.5, api_base: {base}, api_key: sk-x}}
  - model_name: jina-rerank
    litellm_params: {{model: jina_ai/jina-reranker-v2-base-multilingual, api_base: {base}, api_key: sk-x}}
  - model_name: compat-rerank
    litellm_params: {{model: openai/my-reranker, api_base: {base}, api_key: sk-x, input_cost_per_query: 0.01}}
    model_info: {{mode: rerank}}
  - model_name: rerank-broken
    litellm_params: {{model: cohere/mock-fail-500, api_base: {base}, api_key: sk-x}}
  - model_name: bedrock-rerank
    litellm_params: {{model: bedrock/amazon.rerank-v1:0, aws_region_name: us-west-2, aws_access_key_id: AKIAEXAMPLE, aws_secret_access_key: secret, api_base: {root}}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-3-5-haiku-latest, api_base: {base}, api_key: sk-x}}
router_settings:
  num_retries: 1
  fallbacks: [{{"rerank-broken": ["cohere-rerank"]}}]
general_settings:
  master_key: {MASTER_KEY}
  proxy_batch_write_at: 0.2
"#,
        base = mock.api_base(),
        root = mock.api_base().trim_end_matches("/v1"),
    )
}

fn header(headers: &Headers, name: &str) -> String {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("header {name}"))
        .to_str()
        .unwrap()
        .to_string()
}

async fn spend_row(gw: &Gateway, call_id: &str) -> Value {
    spend_logs_when(gw, &format!("request_id={call_id}"), 1)
        .await
        .remove(0)
}

fn body(model: &str) -> Value {
    json!({
        "model": model,
        "query": "What is the capital of France?",
        "documents": [
            "Berlin is the capital of Germany.",
            {"text": "Paris is the capital of France."},
            "France is a country in Europe.",
        ],
        "top_n": 2,
        "return_documents": true,
    })
}

fn cost(headers: &Headers) -> f64 {
    header(headers, "x-litellm-response-cost").parse().unwrap()
}

#[actix_rt::test]
async fn cohere_answers_on_every_path_priced_per_search_unit() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    for path in ["/rerank", "/v1/rerank", "/v2/rerank"] {
        let (status, headers, out) =
            post(&gw.url(path), Some(MASTER_KEY), &body("cohere-rerank")).await;
        assert_eq!(status, 200, "{path}: {out}");
        // Word overlap: the Paris document first, the France one second; Cohere v2 returns no
        // documents, the gateway fills them in from the request.
        let results = out["results"].as_array().expect("results");
        assert_eq!(results.len(), 2, "top_n: {out}");
        assert_eq!(results[0]["index"], 1, "{out}");
        assert_eq!(results[1]["index"], 0, "{out}");
        let score = |i: usize| results[i]["relevance_score"].as_f64().unwrap();
        assert!(score(0) > score(1) && score(1) > 0.0, "{out}");
        assert_eq!(
            results[0]["document"],
            json!({"text": "Paris is the capital of France."})
        );
        assert_eq!(
            results[1]["document"],
            json!({"text": "Berlin is the capital of Germany."})
        );
        assert!(out["id"].as_str().unwrap().starts_with("rerank-"), "{out}");
        assert_eq!(out["meta"]["billed_units"]["search_units"], 1);
        // rerank-v3.5: $0.002 a search unit.
        assert!((cost(&headers) - 0.002).abs() < 1e-12);
        let row = spend_row(&gw, &header(&headers, "x-litellm-call-id")).await;
        assert_eq!(row["call_type"], "arerank", "{row}");
        assert!(
            (row["spend"].as_f64().unwrap() - 0.002).abs() < 1e-12,
            "{row}"
        );
        // Cohere's v2 body: documents as strings, the provider's model name.
        let sent = mock.last_request().await;
        assert_eq!(sent["path"], "/v2/rerank");
        assert_eq!(
            sent["body"],
            json!({
                "model": "rerank-v3.5",
                "query": "What is the capital of France?",
                "documents": [
                    "Berlin is the capital of Germany.",
                    "Paris is the capital of France.",
                    "France is a country in Europe.",
                ],
                "top_n": 2,
            })
        );
    }
}

#[actix_rt::test]
async fn jina_and_openai_compatible_bases_answer_in_cohere_shape() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let (status, headers, out) = post(
        &gw.url("/v1/rerank"),
        Some(MASTER_KEY),
        &body("jina-rerank"),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["results"][0]["index"], 1, "{out}");
    assert_eq!(out["results"].as_array().unwrap().len(), 2);
    assert_eq!(
        out["results"][0]["document"],
        json!({"text": "Paris is the capital of France."})
    );
    let tokens = out["meta"]["tokens"]["input_tokens"]
        .as_u64()
        .expect("tokens");
    assert!(tokens > 0, "{out}");
    // Jina prices tokens: $0.00000005 each.
    assert!((cost(&headers) - tokens as f64 * 5e-8).abs() < 1e-15);
    let sent = mock.last_request().await;
    assert_eq!(sent["path"], "/v1/rerank");
    assert_eq!(sent["body"]["model"], "jina-reranker-v2-base-multilingual");
    assert_eq!(
        sent["body"]["documents"][1],
        json!({"text": "Paris is the capital of France."})
    );
    let row = spend_row(&gw, &header(&headers, "x-litellm-call-id")).await;
    assert_eq!(row["call_type"], "arerank", "{row}");
    assert!(row["spend"].as_f64().unwrap() > 0.0, "{row}");

    // An OpenAI-compatible base with `mode: rerank` and its own price per query.
    let mut ask = body("compat-rerank");
    ask["return_documents"] = json!(false);
    let (status, headers, out) = post(&gw.url("/rerank"), Some(MASTER_KEY), &ask).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["results"][0]["index"], 1, "{out}");
    assert!(out["results"][0].get("document").is_none(), "{out}");
    assert!((cost(&headers) - 0.01).abs() < 1e-12);
    assert_eq!(mock.last_request().await["body"]["model"], "my-reranker");
}

#[actix_rt::test]
async fn bedrock_reranks_through_the_agent_runtime_signed() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let (status, headers, out) = post(
        &gw.url("/v1/rerank"),
        Some(MASTER_KEY),
        &body("bedrock-rerank"),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let results = out["results"].as_array().expect("results");
    assert_eq!(results.len(), 2, "{out}");
    assert_eq!(results[0]["index"], 1, "{out}");
    assert!(
        results[0]["relevance_score"].as_f64().unwrap() > 0.0,
        "{out}"
    );
    assert_eq!(
        results[0]["document"],
        json!({"text": "Paris is the capital of France."})
    );
    assert_eq!(out["meta"]["billed_units"]["search_units"], 1);
    // amazon.rerank-v1:0: $0.001 a query.
    assert!((cost(&headers) - 0.001).abs() < 1e-12);
    let row = spend_row(&gw, &header(&headers, "x-litellm-call-id")).await;
    assert_eq!(row["call_type"], "arerank", "{row}");
    let sent = mock.last_request().await;
    assert_eq!(sent["path"], "/rerank");
    assert_eq!(
        sent["body"]["queries"],
        json!([{"type": "TEXT", "textQuery": {"text": "What is the capital of France?"}}])
    );
    assert_eq!(
        sent["body"]["sources"][1],
        json!({"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": "Paris is the capital of France."}}})
    );
    assert_eq!(
        sent["body"]["rerankingConfiguration"],
        json!({"type": "BEDROCK_RERANKING_MODEL", "bedrockRerankingConfiguration": {
            "numberOfResults": 2,
            "modelConfiguration": {"modelArn": "arn:aws:bedrock:us-west-2::foundation-model/amazon.rerank-v1:0"}}})
    );
    let auth = sent["headers"]["authorization"].as_str().expect("signed");
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/")
            && auth.contains("/us-west-2/bedrock/aws4_request"),
        "{auth}"
    );
}

#[actix_rt::test]
async fn key_model_access_and_fallbacks_apply() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let (status, _, key) = post(
        &gw.url("/key/generate"),
        Some(MASTER_KEY),
        &json!({"models": ["jina-rerank"]}),
    )
    .await;
    assert_eq!(status, 200, "{key}");
    let key = key["key"].as_str().unwrap().to_string();
    let (status, _, out) = post(&gw.url("/v1/rerank"), Some(&key), &body("cohere-rerank")).await;
    assert_eq!(status, 401, "{out}");
    assert_envelope(&out);
    assert!(out["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not allowed to access model"));
    let (status, headers, out) =
        post(&gw.url("/v2/rerank"), Some(&key), &body("jina-rerank")).await;
    assert_eq!(status, 200, "the key's own model: {out}");
    let row = spend_row(&gw, &header(&headers, "x-litellm-call-id")).await;
    assert_eq!(row["call_type"], "arerank", "{row}");
    assert_ne!(row["api_key"], "", "{row}");

    let (status, headers, out) =
        post(&gw.url("/rerank"), Some(MASTER_KEY), &body("rerank-broken")).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(header(&headers, "x-litellm-model-group"), "cohere-rerank");
    assert_eq!(header(&headers, "x-litellm-attempted-fallbacks"), "1");
    let stats = mock.stats().await;
    assert_eq!(stats["by_model"]["mock-fail-500"], 2, "{stats}");
    assert_eq!(stats["by_route"]["/v2/rerank"], 3, "{stats}");
}

#[actix_rt::test]
async fn bad_input_and_providers_without_rerank_are_refused_with_the_openai_envelope() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    let cases = [
        (
            json!({"model": "cohere-rerank", "documents": ["a"]}),
            "query",
        ),
        (json!({"model": "cohere-rerank", "query": "q"}), "documents"),
        (
            json!({"model": "cohere-rerank", "query": "q", "documents": []}),
            "documents",
        ),
        (
            json!({"model": "cohere-rerank", "query": "q", "documents": [1]}),
            "documents",
        ),
        (
            json!({"model": "cohere-rerank", "query": "q", "documents": ["a"], "top_n": 0}),
            "top_n",
        ),
        (
            json!({"model": "cohere-rerank", "query": "q", "documents": ["a"], "return_documents": "yes"}),
            "return_documents",
        ),
    ];
    for (ask, param) in cases {
        let (status, _, out) = post(&gw.url("/v1/rerank"), Some(MASTER_KEY), &ask).await;
        assert_eq!(status, 400, "{ask}: {out}");
        assert_envelope(&out);
        assert_eq!(out["error"]["param"], param, "{out}");
    }
    for (model, provider) in [("claude", "anthropic")] {
        let (status, _, out) = post(&gw.url("/rerank"), Some(MASTER_KEY), &body(model)).await;
        assert_eq!(status, 400, "{model}: {out}");
        assert_envelope(&out);
        let message = out["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("rerank is not supported for provider {provider}")),
            "{out}"
        );
    }
    assert_eq!(
        mock.stats().await["total"],
        0,
        "nothing reached the provider"
    );
}

#[actix_rt::test]
async fn health_probes_rerank_one_document() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock), &[], &[]);
    // rerank-v3.5 is a `rerank` model in the price table; the compatible one says so itself.
    for (model, route) in [
        ("cohere-rerank", "/v2/rerank"),
        ("compat-rerank", "/v1/rerank"),
    ] {
        let (status, _, body) =
            get(&gw.url(&format!("/health?model={model}")), Some(MASTER_KEY)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["healthy_count"], 1, "{model}: {body}");
        assert_eq!(mock.last_request().await["path"], route);
    }
}
