//! Amazon SageMaker endpoints (`sagemaker/` TGI and GPT-J containers, `sagemaker_chat/` OpenAI
//! messages API) through the real gateway, against the mock provider's SageMaker runtime. The mock
//! recomputes every SigV4 signature (service `sagemaker`) with the known secret, so a 200 proves
//! the signing.

mod common;

use common::*;
use serde_json::{json, Value};

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const DEFAULT_REPLY: &str = "Hello from the Tollgate mock provider. This is a deterministic reply.";

fn config(mock: &Mock) -> String {
    let url = &mock.proc.url;
    format!(
        r#"
model_list:
  - model_name: llama
    litellm_params:
      model: sagemaker/jumpstart-dft-meta-textgeneration-llama-2-7b-f
      api_base: "{url}"
      aws_region_name: eu-west-1
      aws_access_key_id: {AKID}
      aws_secret_access_key: "{SECRET}"
  - model_name: tgi-env
    litellm_params:
      model: sagemaker/my-tgi-endpoint
  - model_name: chat-container
    litellm_params:
      model: sagemaker_chat/my-chat-completions-endpoint
      api_base: "{url}"
      aws_access_key_id: {AKID}
      aws_secret_access_key: "{SECRET}"
  - model_name: gptj
    litellm_params:
      model: sagemaker/jumpstart-dft-gpt-j-6b-embedding
      api_base: "{url}"
    model_info:
      mode: embedding
  - model_name: templated
    litellm_params:
      model: sagemaker/my-mistral-endpoint
      api_base: "{url}"
      roles: {{"system": {{"pre_message": "<<", "post_message": ">>"}}, "user": {{"pre_message": "[INST] ", "post_message": " [/INST]"}}}}
      bos_token: "<s>"
      final_prompt_value: "\n"
  - model_name: wrong-secret
    litellm_params:
      model: sagemaker/my-tgi-endpoint
      api_base: "{url}"
      aws_access_key_id: {AKID}
      aws_secret_access_key: not-the-secret
general_settings:
  master_key: {MASTER_KEY}
  proxy_batch_write_at: 0.2
"#
    )
}

fn start() -> (Mock, Gateway) {
    let mock = Mock::start(&["--stream-chunks", "4"]);
    let url = mock.proc.url.clone();
    let gw = Gateway::start(
        &config(&mock),
        &[],
        &[
            ("AWS_ACCESS_KEY_ID", AKID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_REGION", "ap-south-1"),
            ("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", url.as_str()),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ],
    );
    (mock, gw)
}

async fn new_key(gw: &Gateway) -> String {
    let (status, _, created) = post(&gw.url("/key/generate"), Some(MASTER_KEY), &json!({})).await;
    assert_eq!(status, 200, "{created}");
    created["key"].as_str().unwrap().to_string()
}

fn messages() -> Value {
    json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello"}
    ])
}

#[actix_rt::test]
async fn tgi_chat_is_signed_templated_and_logged_with_tokens() {
    let (mock, gw) = start();
    let key = new_key(&gw).await;
    let url = gw.url("/v1/chat/completions");
    let body = json!({"model": "llama", "messages": messages(), "max_tokens": 50, "temperature": 0.2, "stop": ["END"]});
    let (status, headers, v) = post(&url, Some(&key), &body).await;
    assert_eq!(status, 200, "{v}\n{}", gw.proc.logs());
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], DEFAULT_REPLY);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let prompt_tokens = v["usage"]["prompt_tokens"].as_u64().unwrap_or(0);
    let completion_tokens = v["usage"]["completion_tokens"].as_u64().unwrap_or(0);
    assert!(prompt_tokens > 0 && completion_tokens > 0, "{v}");

    let last = mock.last_request().await;
    assert_eq!(
        last["path"],
        "/endpoints/jumpstart-dft-meta-textgeneration-llama-2-7b-f/invocations"
    );
    let auth = last["headers"]["authorization"].as_str().unwrap_or("");
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
            && auth.contains("/eu-west-1/sagemaker/aws4_request, "),
        "{auth}"
    );
    assert_eq!(
        last["body"],
        json!({
            "inputs": "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nSay hello [/INST]",
            "parameters": {"max_new_tokens": 50, "temperature": 0.2, "stop": ["END"]}
        })
    );

    // The spend row carries the tokens.
    let call_id = headers
        .get("x-litellm-call-id")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let rows = spend_logs_when(&gw, &format!("request_id={call_id}"), 1).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["prompt_tokens"].as_u64(), Some(prompt_tokens));
    assert_eq!(
        rows[0]["completion_tokens"].as_u64(),
        Some(completion_tokens)
    );
    assert_eq!(rows[0]["model_group"], "llama");

    // The mock recomputes the signature: a wrong secret is refused, and the secret never shows.
    let (status, _, v) = post(&url, Some(&key), &chat("wrong-secret")).await;
    assert_eq!(status, 401, "{v}");
    assert_envelope(&v);
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("SagemakerException") && m.contains("signature")),
        "{v}"
    );
    assert!(!v.to_string().contains("not-the-secret"));
}

#[actix_rt::test]
async fn tgi_stream_decodes_event_stream_payload_parts() {
    let (mock, gw) = start();
    let key = new_key(&gw).await;
    let url = gw.url("/v1/chat/completions");
    let body = json!({"model": "llama", "messages": messages(), "stream": true,
                      "stream_options": {"include_usage": true}});
    let (status, headers, text) = stream_text(&url, Some(&key), &body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    assert_eq!(chat_stream_text(&text), DEFAULT_REPLY);

    let last = mock.last_request().await;
    assert_eq!(
        last["path"],
        "/endpoints/jumpstart-dft-meta-textgeneration-llama-2-7b-f/invocations-response-stream"
    );
    assert_eq!(
        last["headers"]["accept"],
        "application/vnd.amazon.eventstream"
    );
    assert_eq!(
        last["body"]["inputs"],
        "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nSay hello [/INST]"
    );
}

#[actix_rt::test]
async fn endpoint_and_credentials_from_the_environment() {
    let (mock, gw) = start();
    let (status, _, v) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &json!({"model": "tgi-env", "messages": messages()}),
    )
    .await;
    assert_eq!(status, 200, "{v}\n{}", gw.proc.logs());
    assert_eq!(v["choices"][0]["message"]["content"], DEFAULT_REPLY);
    let last = mock.last_request().await;
    assert_eq!(last["path"], "/endpoints/my-tgi-endpoint/invocations");
    let auth = last["headers"]["authorization"].as_str().unwrap_or("");
    assert!(
        auth.contains("/ap-south-1/sagemaker/aws4_request"),
        "{auth}"
    );
    // Not a Llama-2 chat endpoint: the messages as `role: content` lines.
    assert_eq!(last["body"]["inputs"], "system: Be brief.\nuser: Say hello");
}

#[actix_rt::test]
async fn sagemaker_chat_speaks_openai_chat() {
    let (mock, gw) = start();
    let url = gw.url("/v1/chat/completions");
    let body = json!({"model": "chat-container", "messages": messages(), "max_tokens": 40});
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{v}\n{}", gw.proc.logs());
    assert_eq!(v["choices"][0]["message"]["content"], DEFAULT_REPLY);
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap_or(0) > 0, "{v}");
    let last = mock.last_request().await;
    assert_eq!(
        last["path"],
        "/endpoints/my-chat-completions-endpoint/invocations"
    );
    assert_eq!(last["body"]["messages"], messages());
    assert_eq!(last["body"]["max_tokens"], 40);
    assert!(last["headers"]["authorization"]
        .as_str()
        .is_some_and(|a| a.contains("/sagemaker/aws4_request")));

    let mut body = body;
    body["stream"] = json!(true);
    let (status, _, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{text}");
    let (chunks, done) = parse_chunks(&text);
    assert!(done, "{text}");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, DEFAULT_REPLY);
    assert_eq!(
        mock.last_request().await["path"],
        "/endpoints/my-chat-completions-endpoint/invocations-response-stream"
    );
}

#[actix_rt::test]
async fn gptj_embeddings() {
    let (mock, gw) = start();
    let (status, _, v) = post(
        &gw.url("/v1/embeddings"),
        Some(MASTER_KEY),
        &json!({"model": "gptj", "input": ["hello world", "second"]}),
    )
    .await;
    assert_eq!(status, 200, "{v}\n{}", gw.proc.logs());
    assert_eq!(v["object"], "list");
    let data = v["data"].as_array().expect("data");
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    assert!(data[0]["embedding"]
        .as_array()
        .is_some_and(|e| !e.is_empty()));
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap_or(0) > 0, "{v}");
    let last = mock.last_request().await;
    assert_eq!(
        last["path"],
        "/endpoints/jumpstart-dft-gpt-j-6b-embedding/invocations"
    );
    assert_eq!(
        last["body"],
        json!({"text_inputs": ["hello world", "second"]})
    );
}

#[actix_rt::test]
async fn a_prompt_template_writes_the_tgi_prompt() {
    let (mock, gw) = start();
    let (status, _, v) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &json!({"model": "templated", "messages": messages()}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        mock.last_request().await["body"]["inputs"],
        "<s><<Be brief.>>[INST] Say hello [/INST]\n"
    );
}
