//! Replicate (`replicate/owner/model:version`, `replicate/owner/model`,
//! `replicate/deployments/owner/name`) through the real gateway, against the mock provider's
//! Replicate API: predictions created (answered at once under `Prefer: wait`, or polled), streamed,
//! failed, and cancelled when the client goes away.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};

const KEY: &str = "r8_mockReplicateToken42";
const VERSION: &str = "02e509c789964a7ea8736978a43525956ef40397be9033abf9fd2badfe68c9e3";
const DEFAULT_REPLY: &str = "Hello from the Tollgate mock provider. This is a deterministic reply.";

fn config(mock: &Mock) -> String {
    let base = mock.api_base();
    format!(
        r#"
model_list:
  - model_name: llama-versioned
    litellm_params:
      model: replicate/meta/llama-2-70b-chat:{VERSION}
      api_base: "{base}"
      api_key: {KEY}
  - model_name: llama
    litellm_params:
      model: replicate/meta/llama-2-7b-chat
  - model_name: deployed
    litellm_params:
      model: replicate/deployments/acme/my-model
      api_base: "{base}"
      api_key: {KEY}
  - model_name: mistral-7b
    litellm_params:
      model: replicate/mistralai/mistral-7b-instruct-v0.2
      api_base: "{base}"
      api_key: {KEY}
      initial_prompt_value: "\n"
      roles: {{"system":{{"pre_message":"<|im_start|>system\n", "post_message":"<|im_end|>"}}, "assistant":{{"pre_message":"<|im_start|>assistant\n","post_message":"<|im_end|>"}}, "user":{{"pre_message":"<|im_start|>user\n","post_message":"<|im_end|>"}}}}
      final_prompt_value: "\n"
      bos_token: "<s>"
      eos_token: "</s>"
      max_tokens: 4096
  - model_name: wrong-key
    litellm_params:
      model: replicate/meta/llama-2-7b-chat
      api_base: "{base}"
      api_key: r8_not-the-key
general_settings:
  master_key: {MASTER_KEY}
  proxy_batch_write_at: 0.2
"#
    )
}

fn start() -> (Mock, Gateway) {
    let mock = Mock::start(&["--api-key", KEY, "--stream-chunks", "4"]);
    let base = mock.api_base();
    let gw = Gateway::start(
        &config(&mock),
        &[],
        &[
            ("REPLICATE_API_BASE", base.as_str()),
            ("REPLICATE_API_TOKEN", KEY),
        ],
    );
    (mock, gw)
}

fn messages() -> Value {
    json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello"}
    ])
}

/// The mock's predictions, newest first.
async fn predictions(mock: &Mock) -> Vec<Value> {
    let (status, _, v) = get(&format!("{}/predictions", mock.api_base()), Some(KEY)).await;
    assert_eq!(status, 200, "{v}");
    v["results"].as_array().cloned().unwrap_or_default()
}

#[actix_rt::test]
async fn versioned_unversioned_and_deployment_models_reach_their_paths() {
    let (mock, gw) = start();
    let url = gw.url("/v1/chat/completions");

    // owner/model:version → POST /predictions naming the version; answered at once.
    let body = json!({"model": "llama-versioned", "messages": messages(), "max_tokens": 50,
                      "temperature": 0.2, "stop": ["END", "###"], "top_k": 3});
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{v}\n{}", gw.proc.logs());
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], DEFAULT_REPLY);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    // The mock's metrics: 4 output parts, the prompt and system prompt at four characters a token.
    assert_eq!(v["usage"]["completion_tokens"], 4, "{v}");
    let last = mock.last_request().await;
    assert_eq!(last["path"], "/v1/predictions");
    assert_eq!(last["headers"]["authorization"], format!("Bearer {KEY}"));
    assert_eq!(last["headers"]["prefer"], "wait=60");
    assert_eq!(
        last["body"],
        json!({"version": VERSION, "input": {
            "prompt": "<s>[INST] Say hello [/INST]",
            "system_prompt": "Be brief.",
            "max_new_tokens": 50, "max_tokens": 50, "temperature": 0.2,
            "stop_sequences": "END,###", "top_k": 3
        }})
    );
    let prompt_chars = "<s>[INST] Say hello [/INST]".len() + "Be brief.".len();
    assert_eq!(
        v["usage"]["prompt_tokens"].as_u64(),
        Some(prompt_chars.div_ceil(4) as u64)
    );

    // owner/model → POST /models/owner/model/predictions; base and key from the environment.
    let (status, headers, v) = post(&url, Some(MASTER_KEY), &chat("llama")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], DEFAULT_REPLY);
    let last = mock.last_request().await;
    assert_eq!(last["path"], "/v1/models/meta/llama-2-7b-chat/predictions");
    assert_eq!(last["headers"]["authorization"], format!("Bearer {KEY}"));
    assert_eq!(
        last["body"],
        json!({"input": {"prompt": "<s>[INST] Say hello [/INST]"}})
    );
    // The spend row carries the tokens and their cost (the table's replicate/meta/llama-2-7b-chat).
    let call_id = headers
        .get("x-litellm-call-id")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let rows = spend_logs_when(&gw, &format!("request_id={call_id}"), 1).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (prompt, completion) = (
        v["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
        v["usage"]["completion_tokens"].as_u64().unwrap_or(0),
    );
    assert!(prompt > 0 && completion > 0, "{v}");
    assert_eq!(rows[0]["prompt_tokens"].as_u64(), Some(prompt));
    assert_eq!(rows[0]["completion_tokens"].as_u64(), Some(completion));
    assert_eq!(rows[0]["model_group"], "llama");
    let cost = prompt as f64 * 5e-08 + completion as f64 * 2.5e-07;
    let spend = rows[0]["spend"].as_f64().unwrap_or(0.0);
    assert!((spend - cost).abs() < 1e-12, "{spend} != {cost}");

    // deployments/owner/name → POST /deployments/owner/name/predictions; not a Llama-2 chat
    // model: the turns as `role: content` lines.
    let body = json!({"model": "deployed", "messages": messages()});
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{v}");
    let last = mock.last_request().await;
    assert_eq!(last["path"], "/v1/deployments/acme/my-model/predictions");
    assert_eq!(
        last["body"],
        json!({"input": {"prompt": "user: Say hello", "system_prompt": "Be brief."}})
    );

    // Text completions send the prompt as it is.
    let (status, _, v) = post(
        &gw.url("/v1/completions"),
        Some(MASTER_KEY),
        &json!({"model": "deployed", "prompt": "Once upon a time", "max_tokens": 3}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], "Hello from the");
    assert_eq!(v["usage"]["completion_tokens"], 3, "{v}");
    let last = mock.last_request().await;
    assert_eq!(
        last["body"]["input"],
        json!({"prompt": "Once upon a time", "max_new_tokens": 3, "max_tokens": 3})
    );

    // A refused key, in Replicate's words; embeddings are not Replicate's.
    let (status, _, v) = post(&url, Some(MASTER_KEY), &chat("wrong-key")).await;
    assert_eq!(status, 401, "{v}");
    assert_envelope(&v);
    assert!(
        v["error"]["message"].as_str().is_some_and(
            |m| m.contains("ReplicateException") && m.contains("valid authentication token")
        ),
        "{v}"
    );
    assert!(!v.to_string().contains("r8_not-the-key"));
    let (status, _, v) = post(
        &gw.url("/v1/embeddings"),
        Some(MASTER_KEY),
        &json!({"model": "deployed", "input": "x"}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not supported for provider replicate")),
        "{v}"
    );
}

/// The seeds' Mistral block on Replicate: the template writes the whole prompt.
#[actix_rt::test]
async fn the_seed_prompt_template_writes_the_prompt() {
    let (mock, gw) = start();
    let messages = json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Bye"}
    ]);
    let (status, _, v) = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER_KEY),
        &json!({"model": "mistral-7b", "messages": messages}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], DEFAULT_REPLY);
    let last = mock.last_request().await;
    assert_eq!(
        last["path"],
        "/v1/models/mistralai/mistral-7b-instruct-v0.2/predictions"
    );
    assert_eq!(
        last["body"]["input"],
        json!({
            "prompt": "<s>\n<|im_start|>system\nBe brief.<|im_end|><|im_start|>user\nHi<|im_end|><|im_start|>assistant\nHello.<|im_end|></s><s><|im_start|>user\nBye<|im_end|>\n",
            "max_new_tokens": 4096,
            "max_tokens": 4096
        })
    );
}

#[actix_rt::test]
async fn a_running_prediction_is_polled_to_its_end_within_the_timeout() {
    let (mock, gw) = start();
    let url = gw.url("/v1/chat/completions");
    // Three polls see it `processing`; the fourth sees it succeed.
    let body = json!({"model": "deployed", "messages": messages(), "mock_polls": 3});
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{v}\n{}", gw.proc.logs());
    assert_eq!(v["choices"][0]["message"]["content"], DEFAULT_REPLY);
    assert_eq!(v["usage"]["completion_tokens"], 4, "{v}");
    let all = predictions(&mock).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["status"], "succeeded");
    assert_eq!(all[0]["input"]["mock_polls"], 3);

    // A prediction that outlasts the attempt's timeout: a timeout, and the prediction cancelled.
    let body = json!({"model": "deployed", "messages": messages(), "mock_polls": 100000,
                      "timeout": 1, "num_retries": 0});
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 408, "{v}");
    assert_eq!(
        mock.last_request().await["headers"]["prefer"],
        "wait=1",
        "the wait asked for is the request's timeout"
    );
    // Cancelled off the request's path, shortly after.
    wait_for(Duration::from_secs(10), || async {
        predictions(&mock).await[0]["status"] == "canceled"
    })
    .await;
}

#[actix_rt::test]
async fn a_failed_prediction_is_a_provider_error() {
    let (mock, gw) = start();
    let url = gw.url("/v1/chat/completions");
    for polls in [0, 2] {
        let body = json!({"model": "deployed", "messages": messages(), "num_retries": 0,
                          "mock_polls": polls, "mock_prediction_error": "CUDA out of memory"});
        let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
        assert_eq!(status, 500, "{v}");
        assert_envelope(&v);
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("ReplicateException") && message.contains("CUDA out of memory"),
            "{v}"
        );
    }
    let all = predictions(&mock).await;
    assert!(all.iter().all(|p| p["status"] == "failed"), "{all:?}");

    // An HTTP error of the create keeps its status.
    let body = json!({"model": "llama", "messages": messages(), "num_retries": 0,
                      "mock_fail": "429"});
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 429, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("throttled")),
        "{v}"
    );
}

#[actix_rt::test]
async fn streams_are_translated_to_chunks() {
    let (mock, gw) = start();
    let url = gw.url("/v1/chat/completions");
    let reply = "Hello there.\nSecond line\n\nand a last one.";
    let body = json!({"model": "llama-versioned", "messages": messages(), "stream": true,
                      "stream_options": {"include_usage": true}, "mock_reply": reply});
    let (status, headers, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{text}\n{}", gw.proc.logs());
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    assert_eq!(chat_stream_text(&text), reply);
    let last = mock.last_request().await;
    assert_eq!(last["path"], "/v1/predictions");
    assert_eq!(last["body"]["stream"], true);
    assert!(last["headers"].get("prefer").is_none(), "{last}");
    // A stream read to its end leaves the prediction finished, not cancelled.
    assert_eq!(predictions(&mock).await[0]["status"], "succeeded");

    // Without `include_usage`: no usage chunk. Text completions stream text chunks.
    let body = json!({"model": "deployed", "prompt": "Once", "stream": true});
    let (status, _, text) = stream_text(&gw.url("/v1/completions"), Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{text}");
    let (chunks, done) = parse_chunks(&text);
    assert!(done, "{text}");
    assert!(
        chunks.iter().all(|c| c["object"] == "text_completion"),
        "{text}"
    );
    assert!(
        chunks
            .iter()
            .all(|c| c.get("usage").is_none_or(Value::is_null)),
        "{text}"
    );
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(content, DEFAULT_REPLY);
}

#[actix_rt::test]
async fn a_client_that_goes_away_cancels_the_prediction() {
    let (mock, gw) = start();
    let body = json!({"model": "deployed", "messages": messages(), "stream": true,
                      "mock_chunk_delay_ms": 400});
    let mut response = client()
        .post(gw.url("/v1/chat/completions"))
        .insert_header(("content-type", "application/json"))
        .insert_header(("authorization", format!("Bearer {MASTER_KEY}")))
        .send_body(body.to_string())
        .await
        .expect("request sent");
    assert_eq!(response.status().as_u16(), 200);
    let first = response
        .next()
        .await
        .expect("a first chunk")
        .expect("bytes");
    assert!(contains(&first, "chat.completion.chunk"), "{first:?}");
    assert_eq!(predictions(&mock).await[0]["status"], "processing");
    drop(response);
    wait_for(Duration::from_secs(10), || async {
        predictions(&mock).await[0]["status"] == "canceled"
    })
    .await;
}

/// A listener on another loopback port that keeps what every connection to it sent, and answers
/// each with a 500.
struct Foreign {
    origin: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl Foreign {
    fn start() -> Foreign {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let origin = format!("http://{}", listener.local_addr().expect("address"));
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = vec![0u8; 16 * 1024];
                let n = conn.read(&mut buf).unwrap_or(0);
                // Recorded even when nothing was read: a connection is a contact.
                kept.lock().expect("lock").push(buf[..n].to_vec());
                let _ = conn.write_all(
                    b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        Foreign { origin, seen }
    }

    fn contacts(&self) -> Vec<Vec<u8>> {
        self.seen.lock().expect("lock").clone()
    }
}

#[actix_rt::test]
async fn urls_on_another_host_are_never_contacted() {
    let (mock, gw) = start();
    let foreign = Foreign::start();
    let url = gw.url("/v1/chat/completions");

    // Polled: the mock's `urls.get` points at the foreign port; the polls go to the api_base.
    let body = json!({"model": "deployed", "messages": messages(), "mock_polls": 2,
                      "mock_urls_origin": foreign.origin});
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{v}\n{}", gw.proc.logs());
    assert_eq!(v["choices"][0]["message"]["content"], DEFAULT_REPLY);
    let shown = &predictions(&mock).await[0];
    assert_eq!(shown["status"], "succeeded", "{shown}");
    let get = shown["urls"]["get"].as_str().unwrap_or_default();
    assert!(get.starts_with(&foreign.origin), "{shown}");

    // Streamed: a stream on another host is not read; the prediction is polled at the api_base
    // and its output replayed.
    let body = json!({"model": "llama-versioned", "messages": messages(), "stream": true,
                      "stream_options": {"include_usage": true}, "mock_urls_origin": foreign.origin});
    let (status, _, text) = stream_text(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 200, "{text}\n{}", gw.proc.logs());
    assert_eq!(chat_stream_text(&text), DEFAULT_REPLY);
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let shown = &predictions(&mock).await[0];
    assert_eq!(shown["status"], "succeeded", "{shown}");
    assert!(
        shown["urls"]["stream"]
            .as_str()
            .is_some_and(|u| u.starts_with(&foreign.origin)),
        "{shown}"
    );

    // Left behind: cancelled at the api_base, not at the foreign `urls.cancel`.
    let body = json!({"model": "deployed", "messages": messages(), "mock_polls": 100000,
                      "timeout": 1, "num_retries": 0, "mock_urls_origin": foreign.origin});
    let (status, _, v) = post(&url, Some(MASTER_KEY), &body).await;
    assert_eq!(status, 408, "{v}");
    wait_for(Duration::from_secs(10), || async {
        predictions(&mock).await[0]["status"] == "canceled"
    })
    .await;

    let contacts = foreign.contacts();
    assert!(
        contacts.is_empty(),
        "the foreign host was contacted: {:?}",
        contacts
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
    );
    assert!(!contacts.iter().any(|c| contains(c, KEY)));
    assert!(
        gw.proc.logs().contains("not followed"),
        "{}",
        gw.proc.logs()
    );
}
